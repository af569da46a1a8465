"""Cloud against ownership: the cumulative cost of renting a cluster and of buying it, month by
month of use, and the month from which owning is no dearer (the break-even).

Renting bills device-hours at the cloud price (P15, with the larger offer for a cluster beyond
the default price's, A16). Owning pays the capital up front (the chips × the server and
network factors, A14: P17's capital, here spent at once instead of amortized) and, each month,
the facility on the system power (A15) and the electricity of the busy hours (P16). Every cost
comes from planner.plan.cost's functions; nothing is re-derived here. The hardware's resale
value is left out (NB: it would bring the break-even earlier).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from planner.errors import InputError, check_int, check_number, clip
from planner.plan.cost import (
    HOURS_PER_MONTH,
    CostOptions,
    cloud_cost_usd,
    cloud_price_at_scale,
    device_prices,
    energy_j,
    ownership_cost_usd,
)
from planner.plan.ranking import rank
from planner.plan.search import catalog_device
from planner.plan.workloads import MAX_DEVICES_LIMIT, MIN_FRAC, InferenceJob, TrainingJob
from planner.units import SECONDS_PER_HOUR, SECONDS_PER_YEAR

SECONDS_PER_MONTH = HOURS_PER_MONTH * SECONDS_PER_HOUR  # A15's month: 730 h
MAX_MONTHS = 1200.0  # 100 years
MAX_MONTH_POINTS = 2000


@dataclass(frozen=True)
class BreakEven:
    """Renting against owning `n_devices` of `device`, per month of use.

    `table`: month, rent_cost_usd and own_cost_usd (cumulative), own_capital_usd and
    own_running_usd (own_cost_usd's parts). `breakeven_months` is the exact crossing
    capital / (rent − running per month), `breakeven_month` the first whole month at which
    owning is no dearer; both None when owning never pays back. `reason` says why there is no
    comparison (a price missing, the job infeasible on the device; `table` is then empty);
    `note` says what the comparison leaves out."""

    device: str
    n_devices: int
    usd_per_device_hour: float
    purchase_usd: float
    capital_usd: float
    rent_usd_per_month: float
    own_running_usd_per_month: float
    breakeven_months: float | None
    breakeven_month: int | None
    lifetime_months: float
    busy_frac: float
    reason: str = ""
    note: str = ""
    table: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False)


def _months(months: Any) -> np.ndarray:
    if isinstance(months, str | bytes) or not isinstance(months, Iterable):
        raise InputError("months", f"must be a list of numbers, got {clip(months)}")
    items = list(months)
    if not items:
        raise InputError("months", "give at least one month")
    if len(items) > MAX_MONTH_POINTS:
        raise InputError("months", f"{len(items):,} points; allowed: at most {MAX_MONTH_POINTS}")
    return np.array([check_number(m, f"months[{i}]", minimum=0.0, maximum=MAX_MONTHS)
                     for i, m in enumerate(items)])


def _empty(device: str, n: int, cost: CostOptions, busy_frac: float, reason: str) -> BreakEven:
    nan = math.nan
    return BreakEven(device=device, n_devices=n, usd_per_device_hour=nan, purchase_usd=nan,
                     capital_usd=nan, rent_usd_per_month=nan, own_running_usd_per_month=nan,
                     breakeven_months=None, breakeven_month=None,
                     lifetime_months=cost.lifetime_years * 12, busy_frac=busy_frac,
                     reason=reason)


def breakeven(device: str, *, job: TrainingJob | InferenceJob | None = None,
              n_devices: int | None = None, months: Iterable[float] = range(1, 61),
              catalog: Any = None, cost: CostOptions | None = None,
              busy_frac: float = 1.0) -> BreakEven:
    """Cumulative cost of renting against owning `device` for `months` of use.

    The cluster is `n_devices` devices, or the device count of `job`'s cheapest plan on the
    device (rank(objective="cost")), or one device when neither is given. Renting: n ×
    $/device-hour × 730 h × busy_frac per month (P15, A16). Owning: n × purchase ×
    server_cost_factor × network_cost_factor at month 0, then per month the facility on the
    system power and the electricity of the busy hours (P16, P17, A15). `busy_frac` is the
    share of each month the cluster works (rented for those hours only). `cost` gives the
    price choice (provider, contract, overrides) and the ownership inputs; its `basis` is
    not used. A missing cloud or purchase price, or a job infeasible on the device, gives a
    BreakEven with `reason` set and an empty table, not an exception; bad arguments raise
    InputError naming them.
    """
    cost = CostOptions() if cost is None else cost
    if not isinstance(cost, CostOptions):
        raise InputError("cost", f"must be a CostOptions, got {clip(cost)}")
    busy_frac = check_number(busy_frac, "busy_frac", minimum=MIN_FRAC, maximum=1.0)
    month = _months(months)
    dev = catalog_device(catalog, device)
    if job is not None and n_devices is not None:
        raise InputError("n_devices", "give either a job or n_devices, not both")
    if job is not None:
        row = rank(job, catalog, devices=[dev.id], objective="cost", cost=cost).iloc[0]
        if not row["feasible"]:
            return _empty(dev.id, 0, cost, busy_frac,
                          f"the job has no feasible plan on {dev.id}: {row['reason']}")
        n = int(row["n_devices"])
    else:
        n = 1 if n_devices is None else check_int(n_devices, "n_devices",
                                                  maximum=MAX_DEVICES_LIMIT)
    prices = device_prices([dev], cost)
    usd, _, beyond = cloud_price_at_scale(n, prices.columns(slice(None), (-1,)))
    hourly, purchase = float(usd[0]), float(prices.purchase_usd[0])
    missing, fixes = [], []
    if not math.isfinite(hourly):
        missing.append(f"no {cost.contract or 'any'} cloud price"
                       + (f" from {cost.provider}" if cost.provider else ""))
        fixes.append("usd_per_device_hour")
    if not math.isfinite(purchase):
        missing.append("no purchase price")
        fixes.append("purchase_usd")
    if missing:
        why = f"; {dev.price_note}" if dev.price_note else ""
        return _empty(dev.id, n, cost, busy_frac,
                      f"{dev.id}: {' and '.join(missing)} in the catalog (give CostOptions("
                      f"{', '.join(f + '=...' for f in fixes)})){why}")
    power_w, system_w = float(prices.power_w[0]), float(prices.system_w[0])
    no_power = not math.isfinite(power_w)
    busy_s = month * SECONDS_PER_MONTH * busy_frac
    rent = cloud_cost_usd(n_devices=n, time_s=busy_s, usd_per_device_hour=hourly)
    capital_factor = cost.server_cost_factor * cost.network_cost_factor
    # P17's capital over a "lifetime" equal to the time used: the whole capital, at once
    capital = float(ownership_cost_usd(
        n_devices=n, time_s=1.0, purchase_usd=purchase, lifetime_s=1.0, utilization_frac=1.0,
        energy_j=0.0, usd_per_kwh=cost.usd_per_kwh, capital_factor=capital_factor))

    def running(m: np.ndarray) -> np.ndarray:
        """Facility over the calendar months and electricity over the busy hours (P16-P17
        with no capital: purchase_usd=0, utilization 1 so that time_s is calendar time)."""
        if no_power:
            return np.zeros_like(m)
        energy = energy_j(n_devices=n, power_w=power_w, time_s=m * SECONDS_PER_MONTH *
                          busy_frac, pue=cost.pue)
        return ownership_cost_usd(
            n_devices=n, time_s=m * SECONDS_PER_MONTH, purchase_usd=0.0,
            lifetime_s=cost.lifetime_years * SECONDS_PER_YEAR, utilization_frac=1.0,
            energy_j=energy, usd_per_kwh=cost.usd_per_kwh, system_w=system_w,
            facility_usd_per_kw_month=cost.facility_usd_per_kw_month)

    run = running(month)
    rent_month = float(cloud_cost_usd(n_devices=n, time_s=SECONDS_PER_MONTH * busy_frac,
                                      usd_per_device_hour=hourly))
    run_month = float(running(np.array([1.0]))[0])
    exact = capital / (rent_month - run_month) if rent_month > run_month else None
    notes = []
    if exact is None:
        notes.append(f"owning never pays back: its running cost (${run_month:,.0f} per month) "
                     f"is not below the rent (${rent_month:,.0f} per month)")
    elif exact > cost.lifetime_years * 12:
        notes.append(f"break-even after the {cost.lifetime_years:g}-year life the capital is "
                     "amortized over (lifetime_years)")
    if no_power:
        notes.append("power unknown: owning excludes electricity and facility (a lower bound)")
    if bool(beyond[0]):
        notes.append(f"no cloud offer in the catalog serves {n:,} devices: priced at the "
                     "largest offer's rate (A16)")
    notes.append("resale value not counted")
    table = pd.DataFrame({"month": month, "rent_cost_usd": rent,
                          "own_cost_usd": capital + run, "own_capital_usd": capital,
                          "own_running_usd": run})
    return BreakEven(
        device=dev.id, n_devices=n, usd_per_device_hour=hourly, purchase_usd=purchase,
        capital_usd=capital, rent_usd_per_month=rent_month, own_running_usd_per_month=run_month,
        breakeven_months=exact,
        breakeven_month=None if exact is None else max(1, math.ceil(exact - 1e-9)),
        lifetime_months=cost.lifetime_years * 12, busy_frac=busy_frac, note="; ".join(notes),
        table=table)
