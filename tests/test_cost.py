"""Cloud cost, ownership cost and energy (docs/planning.md P15-P17), with prices that carry
their provider and date."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.hardware.catalog import Device, Price
from planner.plan.cost import (
    CostOptions,
    PriceColumns,
    cloud_cost_usd,
    costs,
    device_power_w,
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
    # P16a: an H100 SXM in a DGX H100 (10.2 kW / 8 GPUs = 1,275 W per GPU, NVIDIA DGX H100 user
    # guide), idle 70 W: host share 1,275 - 700 = 575 W + 70 + (700 - 70) x 0.8 = 1,149 W
    power = device_power_w(tdp_w=700.0, idle_w=70.0, system_w=1275.0, power_frac=0.8)
    assert power == pytest.approx(1149.0)
    # without an idle figure: 575 + 700 x 0.8 = 1,135 W
    assert device_power_w(tdp_w=700.0, idle_w=np.nan, system_w=1275.0,
                          power_frac=0.8) == pytest.approx(1135.0)
    # at full load the system draws its 1,275 W: 1.275 kWh per device-hour (issue 12: a
    # system-level 1.0-1.5 kWh, not the chip's 0.7)
    full = device_power_w(tdp_w=700.0, idle_w=70.0, system_w=1275.0, power_frac=1.0)
    assert energy_j(n_devices=1, power_w=full, time_s=3600, pue=1.0) / JOULES_PER_KWH == \
        pytest.approx(1.275)
    # P16: 8 x 1,149 W x 3,600 s x 1.2 = 39,709,440 J = 11.0304 kWh
    e = energy_j(n_devices=8, power_w=power, time_s=3600, pue=1.2)
    assert e == pytest.approx(39_709_440)
    assert e / JOULES_PER_KWH == pytest.approx(11.0304)


def test_ownership_cost_by_hand():
    lifetime = 4 * SECONDS_PER_YEAR  # 126,230,400 s
    assert lifetime == 126_230_400
    e = energy_j(n_devices=8, power_w=560.0, time_s=36_000, pue=1.2)  # 53.76 kWh
    got = ownership_cost_usd(n_devices=8, time_s=36_000, purchase_usd=30_000, lifetime_s=lifetime,
                             utilization_frac=0.8, energy_j=e, usd_per_kwh=0.10)
    # chips alone: 8 * 30000 * 36000 / (126,230,400 * 0.8) = 85.558 capital + 5.376 electricity
    assert got == pytest.approx(8 * 30_000 * 36_000 / (lifetime * 0.8) + 5.376)
    assert got == pytest.approx(90.93, abs=0.01)
    # with servers and network (A14: 1.65 x 1.19 = 1.9635, Epoch AI's midpoints) and the
    # facility (A15: $184.06 per kW-month, CBRE H2 2024) on a 1,275 W system per GPU:
    # capital 85.558 x 1.9635 = 167.99; facility 8 x 1.275 kW x 184.06 x 10 h / (730 h x 0.8)
    # = 32.15; electricity at 1,149 W: 8 x 1,149 x 36,000 x 1.2 J = 110.30 kWh = $11.03
    e = energy_j(n_devices=8, power_w=1149.0, time_s=36_000, pue=1.2)
    full = ownership_cost_usd(n_devices=8, time_s=36_000, purchase_usd=30_000,
                              lifetime_s=lifetime, utilization_frac=0.8, energy_j=e,
                              usd_per_kwh=0.10, capital_factor=1.65 * 1.19, system_w=1275.0,
                              facility_usd_per_kw_month=184.06)
    assert full == pytest.approx(167.99 + 32.15 + 11.03, abs=0.02)


def _cols(usd, purchase, power, system, *, offer=np.inf, scale_usd=np.nan,
          scale_offer=np.nan) -> PriceColumns:
    def a(v):
        return np.atleast_1d(np.asarray(v, dtype=float))
    return PriceColumns(usd_per_device_hour=a(usd), offer_devices=a(offer),
                        scale_usd_per_device_hour=a(scale_usd), scale_offer_devices=a(scale_offer),
                        purchase_usd=a(purchase), power_w=a(power), system_w=a(system))


def test_costs_choose_the_basis_and_propagate_missing_values():
    opts = CostOptions(server_cost_factor=1.0, network_cost_factor=1.0,
                       facility_usd_per_kw_month=0.0)
    out = costs(n_devices=np.array([8, 8]), time_s=36_000.0,
                prices=_cols([2.5, np.nan], [30_000, 1], [560.0, np.nan], [700.0, np.nan]),
                options=opts)
    assert out["cost_usd"][0] == 200.0 and math.isnan(out["cost_usd"][1])
    assert math.isnan(out["energy_j"][1])  # no power: no energy
    # ...but the ownership cost keeps the amortized purchase (electricity left out):
    # 8 * $1 * 36,000 s / (126,230,400 s * 0.8) = $0.0028519
    assert out["ownership_cost_usd"][1] == pytest.approx(8 * 36_000 / (126_230_400 * 0.8))
    assert out["ownership_cost_usd"][1] == pytest.approx(0.0028519, rel=1e-4)
    assert math.isnan(costs(n_devices=8, time_s=36_000.0,
                            prices=_cols(2.5, np.nan, np.nan, np.nan),
                            options=opts)["ownership_cost_usd"][0])  # no price: NaN
    owned = costs(n_devices=8, time_s=36_000.0, prices=_cols(2.5, 30_000, 560.0, 700.0),
                  options=opts.model_copy(update=dict(basis="ownership")))
    assert owned["cost_usd"][0] == owned["ownership_cost_usd"][0] == pytest.approx(90.93,
                                                                                   abs=0.01)
    # the default options add servers, network and facility (A14, A15): 211.17 as above
    full = costs(n_devices=8, time_s=36_000.0, prices=_cols(2.5, 30_000, 1149.0, 1275.0),
                 options=CostOptions(basis="ownership"))
    assert full["cost_usd"][0] == pytest.approx(211.17, abs=0.02)


def test_a_large_job_is_priced_at_an_offer_that_serves_it_or_flagged():
    # A16: RunPod's on-demand rate states no scale (one node: 8 devices); "BigCloud" offers
    # 4,096 devices at $3.50
    dev = _device("a", prices=[_cloud("RunPod", 2.69),
                               Price(kind="cloud", provider="BigCloud", basis="test",
                                     contract="on-demand", usd_per_hour=3.5, date="2026-01-01",
                                     source="test", max_devices=4096)])
    p = device_prices([dev], CostOptions())
    assert p.usd_per_device_hour[0] == 2.69 and p.offer_devices[0] == 8
    assert p.scale_usd_per_device_hour[0] == 3.5 and p.scale_offer_devices[0] == 4096
    n = np.array([8.0, 1024.0, 16_384.0])
    out = costs(n_devices=n, time_s=3600.0, prices=p.columns(slice(None), (-1,)),
                options=CostOptions())
    assert list(out["usd_per_device_hour"]) == [2.69, 3.5, 3.5]
    assert list(out["price_at_scale"]) == [False, True, True]
    assert list(out["price_beyond_offer"]) == [False, False, True]
    assert out["cloud_cost_usd"][1] == pytest.approx(1024 * 3.5)
    # without a larger offer, a 16,384-device job keeps the node price and is flagged
    alone = device_prices([_device("b", prices=[_cloud("RunPod", 2.69)])], CostOptions())
    flagged = costs(n_devices=n, time_s=3600.0, prices=alone.columns(slice(None), (-1,)),
                    options=CostOptions())
    assert list(flagged["price_beyond_offer"]) == [False, True, True]
    assert list(flagged["usd_per_device_hour"]) == [2.69] * 3


def test_an_estimated_price_and_an_estimated_system_power_are_said():
    est = Price(kind="cloud", provider="Est", basis="estimate: B200 rate x 1.2",
                contract="on-demand", usd_per_hour=5.0, date="2026-01-01", source="test",
                estimate=True)
    p = device_prices([_device("a", prices=[est])], CostOptions())
    assert "estimated price (B200 rate x 1.2)" in p.note[0]
    # no system power in the catalog: 1.8 x TDP (A13), so 700 W -> 1,260 W system
    assert p.system_w[0] == pytest.approx(1260.0)
    assert "system power estimated as 1.8 x TDP" in p.note[0]
    # P16a with it: 560 W host share + 700 x 0.8 = 1,120 W
    assert p.power_w[0] == pytest.approx(1120.0)


def test_device_prices_carry_provider_and_date_and_say_why_missing():
    cheap = _device("a", prices=[_cloud("RunPod", 2.69, "2026-11-09"), _cloud("AWS", 6.88)])
    none = _device("b", tdp_w=None, price_note="No cloud price in the reference data.")
    p = device_prices([cheap, none], CostOptions())
    assert p.usd_per_device_hour[0] == 2.69 and p.provider[0] == "RunPod"
    assert p.date[0] == "2026-11-09" and p.contract[0] == "on-demand"
    assert math.isnan(p.usd_per_device_hour[1]) and p.provider[1] == ""
    assert p.note[0] == "system power estimated as 1.8 x TDP (A13)"
    assert p.note[1] == ("no cloud on-demand price in the catalog; TDP unknown: no energy; "
                         "No cloud price in the reference data.")
    owned = device_prices([none, _device("c", tdp_w=None, prices=[_purchase(25_000)])],
                          CostOptions(basis="ownership"))
    assert owned.note[0].startswith("no purchase price in the catalog; TDP unknown: no energy")
    assert owned.note[1] == ("ownership cost excludes electricity and facility: power unknown "
                             "(no energy)")
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


def test_power_of_devices_with_only_one_power_figure():
    from planner.hardware.catalog import load_catalog

    catalog = load_catalog()
    p = device_prices([catalog.get("google_tpu_v4"), catalog.get("google_tpu_v7")],
                      CostOptions())
    # TPU v4: system 625 W, TDP 192 W (measured max), idle 90 W (measured min):
    # (625 - 192) + 90 + (192 - 90) x 0.8 = 604.6 W
    assert p.power_w[0] == pytest.approx(604.6)
    # TPU v7: system 1,085 W and no TDP: TDP = 1,085 / 1.8 = 602.78 W (A13), so
    # (1,085 - 602.78) + 602.78 x 0.8 = 964.44 W
    assert p.power_w[1] == pytest.approx(964.44, abs=0.01)
    assert "device power estimated as system power / 1.8" in p.note[1]


def _offer(provider, usd, *, contract="on-demand", date="2026-01-01", max_devices=None):
    return Price(kind="cloud", provider=provider, basis="test", contract=contract,
                 usd_per_hour=usd, date=date, source="test", max_devices=max_devices)


def test_rows_at_scale_carry_the_larger_offer_and_its_labels():
    from planner import TrainingJob, rank

    dev = _device("big_gpu", prices=[
        _offer("RunPod", 2.69),
        _offer("BigCloud", 3.5, max_devices=4096),
        _offer("BigCloud", 1.0, date="2025-01-01", max_devices=100_000),  # superseded
        _offer("Spotty", 0.5, contract="spot", max_devices=100_000),      # another contract
    ])
    dev = dev.model_copy(update={"memory_bw_bytes_per_s": 3e12, "scaleup_bw_bytes_per_s": 450e9,
                                 "scaleup_domain_size": 8, "scaleout_bw_bytes_per_s": 50e9})

    def row(n):
        job = TrainingJob(model="llama-2-7b", n_tokens=1e9, seq_len=2048,
                          global_batch_size=1024, n_devices=n)
        return rank(job, [dev]).iloc[0]

    small, big = row(8), row(1024)
    assert (small["cost_price_provider"], small["usd_per_device_hour"]) == ("RunPod", 2.69)
    assert not small["price_at_scale"] and not small["price_beyond_offer"]
    assert (big["cost_price_provider"], big["cost_price_contract"]) == ("BigCloud", "on-demand")
    assert big["usd_per_device_hour"] == 3.5 and big["cost_price_date"] == "2026-01-01"
    assert big["price_at_scale"] and not big["price_beyond_offer"]
    assert "1,024 devices priced at the larger offer: BigCloud on-demand $3.5/device-h" in \
        big["cost_note"]
    assert big["cost_usd"] == pytest.approx(1024 * big["time_s"] / 3600 * 3.5)
