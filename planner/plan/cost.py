"""Money and energy: cloud rental, ownership (purchase amortized + electricity) and energy
(docs/planning.md P15-P17). All inputs are explicit, with documented defaults (A4-A8).

A device with no price keeps its time and energy; its cost is NaN and `cost_note` says why.
A device with a purchase price but no TDP gets the amortized purchase as its ownership cost,
without electricity (a lower bound), and `cost_note` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from planner.errors import number_rule
from planner.plan.workloads import MIN_FRAC
from planner.units import JOULES_PER_KWH, SECONDS_PER_HOUR, SECONDS_PER_YEAR

# A4: between the 2024 US average retail prices for industrial (~8 ¢/kWh) and commercial
# (~13 ¢/kWh) customers (EIA, Electric Power Monthly, Table 5.6.A; recalled, not fetched).
DEFAULT_USD_PER_KWH = 0.10
# A5: a modern, efficient facility. Google reports a fleet-wide trailing-twelve-month PUE of
# 1.10 (2023); the Uptime Institute's 2024 survey average is 1.56 (both recalled).
DEFAULT_PUE = 1.2
# A6: accelerator servers are depreciated over 4-6 years by cloud providers; 4 years is the
# economic life commonly assumed for GPUs (NB: a planning assumption, not a measurement).
DEFAULT_LIFETIME_YEARS = 4.0
# A7: share of its lifetime an owned device does paid work (NB: a planning assumption).
DEFAULT_OWNERSHIP_UTILIZATION_FRAC = 0.8
# A8: average power over TDP while busy. TPU v4 measured 170 W mean against 192 W max (0.89,
# shared/reference/hardware.csv); LLM training keeps GPUs near their power limit, serving less.
DEFAULT_POWER_FRAC = 0.8

# Input bounds (sanity limits; every number must also be finite): PUE from 1 (no overhead) to 3
# (far above the Uptime Institute's 2024 average of 1.56); electricity up to $10/kWh (~30x
# retail); a device-hour up to $10,000 and a device up to $100M (~100x the dearest); a
# lifetime up to 50 years; fractions in [1e-6, 1] (planner.plan.workloads.MIN_FRAC).
MAX_PUE = 3.0
MAX_USD_PER_KWH = 10.0
MAX_USD_PER_DEVICE_HOUR = 1e4
MAX_PURCHASE_USD = 1e8
MAX_LIFETIME_YEARS = 50.0


COST_RULES: dict[str, Callable[[Any, str], float]] = {
    "usd_per_device_hour": number_rule(positive=True, maximum=MAX_USD_PER_DEVICE_HOUR),
    "purchase_usd": number_rule(positive=True, maximum=MAX_PURCHASE_USD),
    "usd_per_kwh": number_rule(minimum=0.0, maximum=MAX_USD_PER_KWH),
    "pue": number_rule(minimum=1.0, maximum=MAX_PUE),
    "lifetime_years": number_rule(positive=True, maximum=MAX_LIFETIME_YEARS),
    "ownership_utilization_frac": number_rule(minimum=MIN_FRAC, maximum=1.0),
    "power_frac": number_rule(minimum=MIN_FRAC, maximum=1.0),
}


class CostOptions(BaseModel):
    """How money and energy are counted. Every default is documented (docs/planning.md A4-A8)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    basis: Literal["cloud", "ownership"] = Field(
        default="cloud", description="Which cost fills `cost_usd`: renting or owning.")
    provider: str | None = Field(default=None,
                                 description="Cloud provider to price with; None = cheapest.")
    contract: Literal["on-demand", "reserved", "spot", "capacity-block"] | None = Field(
        default="on-demand", description="Cloud contract; None = any.")
    usd_per_device_hour: float | None = Field(
        default=None, gt=0, description="Override the cloud price for every device.")
    purchase_usd: float | None = Field(
        default=None, gt=0, description="Override the purchase price for every device.")
    usd_per_kwh: float = Field(default=DEFAULT_USD_PER_KWH, ge=0, description="Electricity.")
    pue: float = Field(default=DEFAULT_PUE, ge=1, le=MAX_PUE,
                       description="Power usage effectiveness, 1 to 3.")
    lifetime_years: float = Field(default=DEFAULT_LIFETIME_YEARS, gt=0,
                                  description="Years an owned device is amortized over.")
    ownership_utilization_frac: float = Field(
        default=DEFAULT_OWNERSHIP_UTILIZATION_FRAC, gt=0, le=1,
        description="Share of its lifetime an owned device is busy.")
    power_frac: float = Field(default=DEFAULT_POWER_FRAC, gt=0, le=1,
                              description="Average power draw over TDP while busy.")

    @field_validator("*", mode="before")
    @classmethod
    def _strict(cls, value: Any, info: ValidationInfo) -> Any:
        """Every number finite and within COST_RULES' range (not a bool, not NaN/inf); None
        stays None where it means "from the catalog"."""
        name = info.field_name or ""
        rule = COST_RULES.get(name)
        if rule is None or (value is None and cls.model_fields[name].default is None):
            return value
        return rule(value, name)


def cloud_cost_usd(*, n_devices, time_s, usd_per_device_hour):
    """P15: devices × hours × $/device-hour. 8 devices for 10 h at $2.50: $200."""
    return n_devices * (time_s / SECONDS_PER_HOUR) * usd_per_device_hour


def energy_j(*, n_devices, tdp_w, power_frac, time_s, pue):
    """P16: devices × TDP × power fraction × time × PUE (the facility's overhead on top).
    8 × 700 W × 0.8 × 3,600 s × 1.2 = 19.35 MJ (5.376 kWh)."""
    return n_devices * tdp_w * power_frac * time_s * pue


def ownership_cost_usd(*, n_devices, time_s, purchase_usd, lifetime_s, utilization_frac,
                       energy_j, usd_per_kwh):
    """P17: purchase amortized over the busy part of the lifetime, plus electricity:
    n · price · t / (lifetime · utilization) + energy [kWh] · $/kWh.
    8 × $30,000 for 10 h over 4 y at 0.8: 8 · 30000 · 36000 / (126,230,400 · 0.8) = $85.56,
    plus 53.76 kWh at $0.10 = $5.38."""
    capital = n_devices * purchase_usd * time_s / (lifetime_s * utilization_frac)
    return capital + energy_j / JOULES_PER_KWH * usd_per_kwh


@dataclass(frozen=True)
class DevicePrices:
    """Per-device price arrays (NaN where unknown) and the labels that travel with them."""

    usd_per_device_hour: np.ndarray
    provider: tuple[str, ...]
    date: tuple[str, ...]
    contract: tuple[str, ...]
    purchase_usd: np.ndarray
    tdp_w: np.ndarray
    note: tuple[str, ...]


def device_prices(devices: Sequence[Any], options: CostOptions) -> DevicePrices:
    """The cloud and purchase price of each device under `options`, and why one is missing."""
    hourly, provider, date, contract, purchase, tdp, notes = [], [], [], [], [], [], []
    for d in devices:
        price = d.cloud_price(provider=options.provider, contract=options.contract,
                              override_usd_per_hour=options.usd_per_device_hour)
        buy = d.purchase_price(override_usd=options.purchase_usd)
        hourly.append(price.usd_per_hour if price else np.nan)
        provider.append(price.provider if price else "")
        date.append(price.date if price else "")
        contract.append(price.contract if price else "")
        purchase.append(buy.usd if buy else np.nan)
        tdp.append(float(d.tdp_w) if d.tdp_w else np.nan)
        note = []
        if options.basis == "cloud" and price is None:
            which = f"{options.contract or 'any'} price"
            if options.provider:
                which += f" from {options.provider}"
            note.append(f"no cloud {which} in the catalog")
        if options.basis == "ownership" and buy is None:
            note.append("no purchase price in the catalog")
        if d.tdp_w is None:
            if options.basis == "ownership" and buy is not None:
                note.append("ownership cost excludes electricity: TDP unknown (no energy)")
            else:
                note.append("TDP unknown: no energy")
        missing = price is None if options.basis == "cloud" else buy is None
        if missing and d.price_note:
            note.append(d.price_note)
        notes.append("; ".join(note))
    return DevicePrices(np.array(hourly, dtype=float), tuple(provider), tuple(date),
                        tuple(contract), np.array(purchase, dtype=float),
                        np.array(tdp, dtype=float), tuple(notes))


def costs(*, n_devices, time_s, prices_usd_per_hour, purchase_usd, tdp_w,
          options: CostOptions) -> dict[str, np.ndarray]:
    """cloud_cost_usd, ownership_cost_usd, energy_j and cost_usd (the chosen basis) for a run
    of `time_s` on `n_devices` (arrays broadcast). Without a TDP, energy is NaN and the
    ownership cost is the amortized purchase alone (P17: electricity left out, a lower bound;
    device_prices' note says so)."""
    energy = energy_j(n_devices=n_devices, tdp_w=tdp_w, power_frac=options.power_frac,
                      time_s=time_s, pue=options.pue)
    billed_energy = np.where(np.isnan(np.asarray(tdp_w, dtype=float)), 0.0, energy)
    cloud = cloud_cost_usd(n_devices=n_devices, time_s=time_s,
                           usd_per_device_hour=prices_usd_per_hour)
    owned = ownership_cost_usd(
        n_devices=n_devices, time_s=time_s, purchase_usd=purchase_usd,
        lifetime_s=options.lifetime_years * SECONDS_PER_YEAR,
        utilization_frac=options.ownership_utilization_frac, energy_j=billed_energy,
        usd_per_kwh=options.usd_per_kwh)
    return dict(cloud_cost_usd=cloud, ownership_cost_usd=owned, energy_j=energy,
                cost_usd=cloud if options.basis == "cloud" else owned)
