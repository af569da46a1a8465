"""Cloud cost, ownership cost and energy (docs/planning.md P15-P17), with prices that carry
their provider and date."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.hardware.catalog import Device, Price
from planner.plan.cost import (
    CostOptions,
    cloud_cost_usd,
    costs,
    device_prices,
    energy_j,
    ownership_cost_usd,
)
from planner.units import JOULES_PER_KWH, SECONDS_PER_YEAR


def _device(device_id: str, *, prices=(), tdp_w=700.0, price_note="") -> Device:
    return Device(id=device_id, vendor="Test", name=device_id, kind="gpu", launch_year=2023,
                  peak_flops_per_s={"bf16": 1e15}, memory_bytes=80e9, tdp_w=tdp_w,
                  prices=tuple(prices), price_note=price_note or "", sources=("test",),
                  checked_on="2026-01-01")


def _cloud(provider: str, usd: float, date: str = "2026-01-01") -> Price:
    return Price(kind="cloud", provider=provider, basis="test", contract="on-demand",
                 usd_per_hour=usd, date=date, source="test")


def _purchase(usd: float) -> Price:
    return Price(kind="purchase", provider="MSRP", basis="test", contract="list", usd=usd,
                 date="2025-01-01", source="test")


def test_cloud_cost_by_hand():
    # 8 devices x 10 h x $2.50 = $200
    assert cloud_cost_usd(n_devices=8, time_s=36_000, usd_per_device_hour=2.5) == 200.0


def test_energy_by_hand():
    # 8 x 700 W x 0.8 x 3600 s x 1.2 = 19,353,600 J = 5.376 kWh
    e = energy_j(n_devices=8, tdp_w=700, power_frac=0.8, time_s=3600, pue=1.2)
    assert e == pytest.approx(19_353_600)
    assert e / JOULES_PER_KWH == pytest.approx(5.376)


def test_ownership_cost_by_hand():
    lifetime = 4 * SECONDS_PER_YEAR  # 126,230,400 s
    assert lifetime == 126_230_400
    e = energy_j(n_devices=8, tdp_w=700, power_frac=0.8, time_s=36_000, pue=1.2)  # 53.76 kWh
    got = ownership_cost_usd(n_devices=8, time_s=36_000, purchase_usd=30_000, lifetime_s=lifetime,
                             utilization_frac=0.8, energy_j=e, usd_per_kwh=0.10)
    # 8 * 30000 * 36000 / (126,230,400 * 0.8) = 85.558 capital + 5.376 electricity
    assert got == pytest.approx(8 * 30_000 * 36_000 / (lifetime * 0.8) + 5.376)
    assert got == pytest.approx(90.93, abs=0.01)


def test_costs_choose_the_basis_and_propagate_missing_values():
    opts = CostOptions()
    out = costs(n_devices=np.array([8, 8]), time_s=36_000.0,
                prices_usd_per_hour=np.array([2.5, np.nan]), purchase_usd=np.array([30_000, 1]),
                tdp_w=np.array([700.0, np.nan]), options=opts)
    assert out["cost_usd"][0] == 200.0 and math.isnan(out["cost_usd"][1])
    assert math.isnan(out["energy_j"][1])  # no TDP: no energy
    # ...but the ownership cost keeps the amortized purchase (electricity left out):
    # 8 * $1 * 36,000 s / (126,230,400 s * 0.8) = $0.0028519
    assert out["ownership_cost_usd"][1] == pytest.approx(8 * 36_000 / (126_230_400 * 0.8))
    assert out["ownership_cost_usd"][1] == pytest.approx(0.0028519, rel=1e-4)
    assert math.isnan(costs(n_devices=8, time_s=36_000.0, prices_usd_per_hour=2.5,
                            purchase_usd=np.nan, tdp_w=np.nan,
                            options=opts)["ownership_cost_usd"])  # no price: NaN
    owned = costs(n_devices=8, time_s=36_000.0, prices_usd_per_hour=2.5, purchase_usd=30_000,
                  tdp_w=700.0, options=CostOptions(basis="ownership"))
    assert owned["cost_usd"] == owned["ownership_cost_usd"] == pytest.approx(90.93, abs=0.01)


def test_device_prices_carry_provider_and_date_and_say_why_missing():
    cheap = _device("a", prices=[_cloud("RunPod", 2.69, "2026-11-09"), _cloud("AWS", 6.88)])
    none = _device("b", tdp_w=None, price_note="No cloud price in the reference data.")
    p = device_prices([cheap, none], CostOptions())
    assert p.usd_per_device_hour[0] == 2.69 and p.provider[0] == "RunPod"
    assert p.date[0] == "2026-11-09" and p.contract[0] == "on-demand"
    assert math.isnan(p.usd_per_device_hour[1]) and p.provider[1] == ""
    assert p.note[0] == ""
    assert p.note[1] == ("no cloud on-demand price in the catalog; TDP unknown: no energy; "
                         "No cloud price in the reference data.")
    owned = device_prices([none, _device("c", tdp_w=None, prices=[_purchase(25_000)])],
                          CostOptions(basis="ownership"))
    assert owned.note[0].startswith("no purchase price in the catalog; TDP unknown: no energy")
    assert owned.note[1] == "ownership cost excludes electricity: TDP unknown (no energy)"
    aws = device_prices([cheap], CostOptions(provider="aws"))
    assert aws.usd_per_device_hour[0] == 6.88 and aws.provider[0] == "AWS"
    override = device_prices([cheap, none], CostOptions(usd_per_device_hour=1.0))
    assert list(override.usd_per_device_hour) == [1.0, 1.0]
    assert override.provider == ("user override", "user override")


@pytest.mark.parametrize(("field", "value"), [("pue", 0.9), ("lifetime_years", 0),
                                              ("power_frac", 1.5), ("basis", "lease"),
                                              ("contract", "forever")])
def test_cost_options_reject_bad_inputs_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        CostOptions(**{field: value})
