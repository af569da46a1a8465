"""Money and energy: cloud rental, ownership (chips, servers, network and facility amortized,
plus electricity) and energy from the system's power (docs/planning.md P15-P17). All inputs
are explicit, with documented defaults (A4-A8, A13-A15).

A device with no price keeps its time and energy; its cost is NaN and `cost_note` says why.
A device with a purchase price but no power figure gets the amortized capital as its ownership
cost, without electricity (a lower bound), and `cost_note` says so. An estimated price, a
system power estimated from the TDP, and a job larger than the price's offer are said in
`cost_note` too.
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
# A8: the device's average dynamic draw while busy, as a fraction of TDP above idle. TPU v4
# measured 170 W mean against 192 W max (0.89, shared/reference/hardware.csv); LLM training
# keeps GPUs near their power limit, serving less.
DEFAULT_POWER_FRAC = 0.8
# A13: a device without a catalog system power draws SYSTEM_POWER_PER_TDP x TDP at the wall
# per device (host CPUs, memory, NICs, fans, switches): DGX H100 10.2 kW / (8 x 700 W) = 1.82,
# DGX B200 14.3 kW / (8 x 1,000 W) = 1.79 (NVIDIA DGX user guides); one with a system power
# but no TDP (TPU v7) is taken to have system / 1.8. A rule, said in cost_note.
SYSTEM_POWER_PER_TDP = 1.8
# A14: ownership capital beyond the chips (Epoch AI, Cottier et al. 2024, arXiv 2405.21015,
# and its code github.com/epoch-research/training-cost-trends): server = chips x 1.3-2.1 (90 %
# interval; measured 1.54 for P100 and 1.69 for V100 servers, ~1.4 for a DGX H100), cluster
# interconnect = servers x 1.07-1.32. Defaults are the geometric midpoints of those intervals.
DEFAULT_SERVER_COST_FACTOR = 1.65
DEFAULT_NETWORK_COST_FACTOR = 1.19
# A15: the facility, as wholesale colocation: $184.06 per kW of IT power per month, the CBRE
# average asking rate for 250-500 kW across North American primary markets, H2 2024 (CBRE,
# "North America Data Center Trends H2 2024", 2025-02-26). Billed on the system power whether
# the devices are busy or not. A month is 730 h.
DEFAULT_FACILITY_USD_PER_KW_MONTH = 184.06
HOURS_PER_MONTH = 730.0
# A16: a price that does not state how many devices it serves (`Price.max_devices`) is taken as
# one node: the scale-up domain, at least 8 devices (an 8-GPU server). A job larger than its
# price's offer is flagged in cost_note; a larger offer in the catalog is used where one covers it.
NODE_MIN_DEVICES = 8

# Input bounds (sanity limits; every number must also be finite): PUE from 1 (no overhead) to 3
# (far above the Uptime Institute's 2024 average of 1.56); electricity up to $10/kWh (~30x
# retail); a device-hour up to $10,000 and a device up to $100M (~100x the dearest); a
# lifetime up to 50 years; fractions in [1e-6, 1] (planner.plan.workloads.MIN_FRAC).
MAX_PUE = 3.0
MAX_USD_PER_KWH = 10.0
MAX_USD_PER_DEVICE_HOUR = 1e4
MAX_PURCHASE_USD = 1e8
MAX_LIFETIME_YEARS = 50.0
MAX_COST_FACTOR = 10.0
MAX_FACILITY_USD_PER_KW_MONTH = 1e4


COST_RULES: dict[str, Callable[[Any, str], float]] = {
    "usd_per_device_hour": number_rule(positive=True, maximum=MAX_USD_PER_DEVICE_HOUR),
    "purchase_usd": number_rule(positive=True, maximum=MAX_PURCHASE_USD),
    "usd_per_kwh": number_rule(minimum=0.0, maximum=MAX_USD_PER_KWH),
    "pue": number_rule(minimum=1.0, maximum=MAX_PUE),
    "lifetime_years": number_rule(positive=True, maximum=MAX_LIFETIME_YEARS),
    "ownership_utilization_frac": number_rule(minimum=MIN_FRAC, maximum=1.0),
    "power_frac": number_rule(minimum=MIN_FRAC, maximum=1.0),
    "server_cost_factor": number_rule(minimum=1.0, maximum=MAX_COST_FACTOR),
    "network_cost_factor": number_rule(minimum=1.0, maximum=MAX_COST_FACTOR),
    "facility_usd_per_kw_month": number_rule(minimum=0.0,
                                             maximum=MAX_FACILITY_USD_PER_KW_MONTH),
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
                              description="The device's dynamic draw while busy, as a "
                              "fraction of TDP above idle.")
    server_cost_factor: float = Field(
        default=DEFAULT_SERVER_COST_FACTOR, ge=1, le=MAX_COST_FACTOR,
        description="Server cost over the cost of its accelerators (ownership, A14).")
    network_cost_factor: float = Field(
        default=DEFAULT_NETWORK_COST_FACTOR, ge=1, le=MAX_COST_FACTOR,
        description="Cluster cost with its interconnect over the servers' (ownership, A14).")
    facility_usd_per_kw_month: float = Field(
        default=DEFAULT_FACILITY_USD_PER_KW_MONTH, ge=0, le=MAX_FACILITY_USD_PER_KW_MONTH,
        description="Data-centre space and power capacity per kW of system power per month "
                    "(ownership, A15); 0 leaves the facility out.")

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


def device_power_w(*, tdp_w, idle_w, system_w, power_frac):
    """P16a: wall power per busy device: the host's share of the system (system − TDP), drawn
    whole, plus the device's own draw idle + (TDP − idle) · power_frac (TDP · power_frac
    without an idle figure). H100 SXM in a DGX H100 (10.2 kW / 8 = 1,275 W, idle 70 W):
    575 + 70 + 630 · 0.8 = 1,149 W."""
    idle = np.where(np.isnan(idle_w), 0.0, idle_w)
    return (system_w - tdp_w) + idle + (tdp_w - idle) * power_frac


def energy_j(*, n_devices, power_w, time_s, pue):
    """P16: devices × wall power per device (P16a) × time × PUE (the facility's overhead).
    8 × 1,149 W × 3,600 s × 1.2 = 39.71 MJ (11.03 kWh; 1.38 kWh per device-hour)."""
    return n_devices * power_w * time_s * pue


def ownership_cost_usd(*, n_devices, time_s, purchase_usd, lifetime_s, utilization_frac,
                       energy_j, usd_per_kwh, capital_factor=1.0, system_w=0.0,
                       facility_usd_per_kw_month=0.0):
    """P17: the capital (chips × server and network factors, A14) amortized over the busy part
    of the lifetime, the facility (A15) for the busy share of its time, and electricity:
    n · price · f · t / (lifetime · utilization) + n · kW · $/kW-month · t / (730 h ·
    utilization) + energy [kWh] · $/kWh. 8 × $30,000 for 10 h over 4 y at 0.8, f = 1.65 ×
    1.19 = 1.9635: 8 · 30000 · 1.9635 · 36000 / (126,230,400 · 0.8) = $167.99; facility 8 ·
    1.275 kW · $184.06 · 10 h / (730 h · 0.8) = $32.15; 110.3 kWh at $0.10 = $11.03."""
    busy_s = lifetime_s * utilization_frac
    capital = n_devices * purchase_usd * capital_factor * time_s / busy_s
    facility = (n_devices * system_w / 1e3 * facility_usd_per_kw_month
                * (time_s / SECONDS_PER_HOUR) / (HOURS_PER_MONTH * utilization_frac))
    return capital + facility + energy_j / JOULES_PER_KWH * usd_per_kwh


@dataclass(frozen=True)
class PriceColumns:
    """The money inputs of a grid's devices, shaped to broadcast along its axis 0 (NaN where
    unknown): the cloud price and the number of devices its offer serves, the catalog's
    largest offer beside it, the purchase price, and the wall and system power per device."""

    usd_per_device_hour: np.ndarray
    offer_devices: np.ndarray
    scale_usd_per_device_hour: np.ndarray
    scale_offer_devices: np.ndarray
    purchase_usd: np.ndarray
    power_w: np.ndarray
    system_w: np.ndarray


@dataclass(frozen=True)
class DevicePrices:
    """Per-device price arrays (NaN where unknown) and the labels that travel with them.
    `scale_*` is the offer serving the most devices (where larger than the default price's):
    a job larger than the default offer is priced there (A16). `power_w` is P16a's wall power
    per busy device, `system_w` the full-load system power per device (A13 where estimated)."""

    usd_per_device_hour: np.ndarray
    offer_devices: np.ndarray
    provider: tuple[str, ...]
    date: tuple[str, ...]
    contract: tuple[str, ...]
    scale_usd_per_device_hour: np.ndarray
    scale_offer_devices: np.ndarray
    scale_provider: tuple[str, ...]
    scale_date: tuple[str, ...]
    scale_contract: tuple[str, ...]
    purchase_usd: np.ndarray
    power_w: np.ndarray
    system_w: np.ndarray
    note: tuple[str, ...]
    scale_note: tuple[str, ...]

    def columns(self, sl: slice, shape: tuple[int, ...]) -> PriceColumns:
        """The devices `sl`, reshaped to `shape` (e.g. (-1, 1, 1))."""
        def col(values: np.ndarray) -> np.ndarray:
            return values[sl].reshape(shape)
        return PriceColumns(
            usd_per_device_hour=col(self.usd_per_device_hour),
            offer_devices=col(self.offer_devices),
            scale_usd_per_device_hour=col(self.scale_usd_per_device_hour),
            scale_offer_devices=col(self.scale_offer_devices),
            purchase_usd=col(self.purchase_usd), power_w=col(self.power_w),
            system_w=col(self.system_w))


def offer_devices(price: Any, device: Any) -> float:
    """How many devices a price's offer serves (A16): its `max_devices`, else one node (the
    scale-up domain, at least NODE_MIN_DEVICES); unlimited for a user's override."""
    if price.provider == "user override":
        return np.inf
    if price.max_devices is not None:
        return float(price.max_devices)
    return float(max(device.scaleup_domain_size or 1, NODE_MIN_DEVICES))


def _offer_label(price: Any, n: float) -> str:
    est = ", an estimate" if price.estimate else ""
    return (f"{price.provider} {price.contract} ${price.usd_per_hour:.4g}/device-h "
            f"({price.date}{est}), offered for up to {n:,.0f} devices")


def device_prices(devices: Sequence[Any], options: CostOptions) -> DevicePrices:
    """The cloud and purchase price of each device under `options`, the largest offer beside
    the default one, the power per device, and why something is missing or estimated."""
    out: dict[str, list[Any]] = {k: [] for k in (
        "hourly", "offer", "provider", "date", "contract", "s_hourly", "s_offer", "s_provider",
        "s_date", "s_contract", "purchase", "power", "system", "note", "s_note")}
    for d in devices:
        price = d.cloud_price(provider=options.provider, contract=options.contract,
                              override_usd_per_hour=options.usd_per_device_hour)
        buy = d.purchase_price(override_usd=options.purchase_usd)
        offer = offer_devices(price, d) if price else np.nan
        scale = _largest_offer(d, options) if price else None
        scale_n = offer_devices(scale, d) if scale else np.nan
        if scale is None or not scale_n > offer:
            scale, scale_n = None, np.nan
        out["hourly"].append(price.usd_per_hour if price else np.nan)
        out["offer"].append(offer)
        for key, attr in (("provider", "provider"), ("date", "date"), ("contract", "contract")):
            out[key].append(getattr(price, attr) if price else "")
            out["s_" + key].append(getattr(scale, attr) if scale else "")
        out["s_hourly"].append(scale.usd_per_hour if scale else np.nan)
        out["s_offer"].append(scale_n)
        out["purchase"].append(buy.usd if buy else np.nan)
        # A13 both ways: a missing system power is 1.8 x TDP, a missing TDP system / 1.8
        tdp = float(d.tdp_w) if d.tdp_w else np.nan
        system = float(d.system_power_w) if d.system_power_w else tdp * SYSTEM_POWER_PER_TDP
        if np.isnan(tdp):
            tdp = system / SYSTEM_POWER_PER_TDP
        idle = float(d.idle_power_w) if d.idle_power_w else np.nan
        idle = idle if idle < tdp else np.nan
        out["power"].append(float(device_power_w(tdp_w=tdp, idle_w=idle, system_w=system,
                                                 power_frac=options.power_frac)))
        out["system"].append(system)
        note = []
        if options.basis == "cloud" and price is None:
            which = f"{options.contract or 'any'} price"
            if options.provider:
                which += f" from {options.provider}"
            note.append(f"no cloud {which} in the catalog")
        if options.basis == "ownership" and buy is None:
            note.append("no purchase price in the catalog")
        used = price if options.basis == "cloud" else buy
        if used is not None and used.estimate:
            basis = used.basis
            for prefix in ("estimate:", "Estimate:"):  # the basis usually says it already
                basis = basis.removeprefix(prefix).strip()
            note.append(f"estimated price ({basis})")
        if d.tdp_w is None and d.system_power_w is None:
            if options.basis == "ownership" and buy is not None:
                note.append("ownership cost excludes electricity and facility: power unknown "
                            "(no energy)")
            else:
                note.append("TDP unknown: no energy")
        elif d.system_power_w is None:
            note.append(f"system power estimated as {SYSTEM_POWER_PER_TDP:g} x TDP (A13)")
        elif d.tdp_w is None:
            note.append(f"device power estimated as system power / {SYSTEM_POWER_PER_TDP:g} "
                        "(A13)")
        if {"tdp_w", "system_power_w"} & set(d.unconfirmed):
            note.append("energy from a power figure the catalog marks unconfirmed")
        missing = price is None if options.basis == "cloud" else buy is None
        if missing and d.price_note:
            note.append(d.price_note)
        out["note"].append("; ".join(note))
        out["s_note"].append(_offer_label(scale, scale_n) if scale else "")
    arr = {k: np.array(out[k], dtype=float) for k in (
        "hourly", "offer", "s_hourly", "s_offer", "purchase", "power", "system")}
    return DevicePrices(
        usd_per_device_hour=arr["hourly"], offer_devices=arr["offer"],
        provider=tuple(out["provider"]), date=tuple(out["date"]),
        contract=tuple(out["contract"]), scale_usd_per_device_hour=arr["s_hourly"],
        scale_offer_devices=arr["s_offer"], scale_provider=tuple(out["s_provider"]),
        scale_date=tuple(out["s_date"]), scale_contract=tuple(out["s_contract"]),
        purchase_usd=arr["purchase"], power_w=arr["power"], system_w=arr["system"],
        note=tuple(out["note"]), scale_note=tuple(out["s_note"]))


def _largest_offer(device: Any, options: CostOptions) -> Any:
    """Among the current cloud prices (`Device.current_cloud_prices` under the options'
    provider and contract, the same set the default price is the cheapest of), the one whose
    offer serves the most devices, the cheaper on a tie; None when none states `max_devices`
    or the user gave a price."""
    if options.usd_per_device_hour is not None:
        return None
    stated = [p for p in device.current_cloud_prices(provider=options.provider,
                                                      contract=options.contract)
              if p.max_devices is not None]
    if not stated:
        return None
    return max(stated, key=lambda p: (p.max_devices, -p.usd_per_hour))


def cloud_price_at_scale(n_devices, prices: PriceColumns) -> tuple[Any, Any, Any]:
    """(USD per device-hour, True where the larger offer is used, True where no offer in the
    catalog serves `n_devices`) for jobs of `n_devices` (A16; arrays broadcast)."""
    n = np.asarray(n_devices, dtype=float)
    larger = (n > prices.offer_devices) & np.isfinite(prices.scale_usd_per_device_hour)
    usd = np.where(larger, prices.scale_usd_per_device_hour, prices.usd_per_device_hour)
    offer = np.where(larger, prices.scale_offer_devices, prices.offer_devices)
    beyond = (n > offer) & np.isfinite(usd)
    return usd, larger, beyond


def costs(*, n_devices, time_s, prices: PriceColumns,
          options: CostOptions) -> dict[str, np.ndarray]:
    """cloud_cost_usd, ownership_cost_usd, energy_j, cost_usd (the chosen basis), the price
    used per device-hour (usd_per_device_hour), and where it is the larger offer
    (price_at_scale) or no offer covers the job (price_beyond_offer), for a run of `time_s` on
    `n_devices` (arrays broadcast). Without a power figure, energy is NaN and the ownership
    cost is the amortized capital alone (P17: electricity left out, a lower bound;
    device_prices' note says so)."""
    energy = energy_j(n_devices=n_devices, power_w=prices.power_w, time_s=time_s,
                      pue=options.pue)
    no_power = np.isnan(np.asarray(prices.power_w, dtype=float))
    billed_energy = np.where(no_power, 0.0, energy)
    usd, at_scale, beyond = cloud_price_at_scale(n_devices, prices)
    cloud = cloud_cost_usd(n_devices=n_devices, time_s=time_s, usd_per_device_hour=usd)
    owned = ownership_cost_usd(
        n_devices=n_devices, time_s=time_s, purchase_usd=prices.purchase_usd,
        lifetime_s=options.lifetime_years * SECONDS_PER_YEAR,
        utilization_frac=options.ownership_utilization_frac, energy_j=billed_energy,
        usd_per_kwh=options.usd_per_kwh,
        capital_factor=options.server_cost_factor * options.network_cost_factor,
        system_w=np.where(no_power, 0.0, prices.system_w),
        facility_usd_per_kw_month=options.facility_usd_per_kw_month)
    return dict(cloud_cost_usd=cloud, ownership_cost_usd=owned, energy_j=energy,
                cost_usd=cloud if options.basis == "cloud" else owned,
                usd_per_device_hour=usd, price_at_scale=at_scale, price_beyond_offer=beyond)
