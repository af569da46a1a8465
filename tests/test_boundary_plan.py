"""Bad input never gets through planner.plan: every nonsense job, cost option or rank/search
argument is refused with one line naming the field and what is allowed, and no row leaves
search() or rank() as feasible with zero devices or a non-finite or negative time, cost or
energy. Each refusal has a valid counterpart with an exact number."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from planner import CostOptions, InferenceJob, TrainingJob, rank, search
from planner.errors import InputError, one_line
from planner.hardware.catalog import Catalog, Device, Price
from planner.plan import search as search_module
from planner.plan.reasons import NON_FINITE_TEXT, InferReason, TrainReason
from planner.plan.search import checked_rows

BIG = 2**64  # 18,446,744,073,709,551,616: used to overflow int64 device counts


def _device(device_id: str = "gpu", **update) -> Device:
    price = Price(kind="cloud", provider="TestCloud", basis="test", contract="on-demand",
                  usd_per_hour=2.5, date="2026-01-02", source="test")
    device = Device(id=device_id, vendor="Test", name=device_id, kind="gpu", launch_year=2023,
                    peak_flops_per_s={"bf16": 989e12, "fp32": 67e12}, memory_bytes=80e9,
                    memory_bw_bytes_per_s=3.35e12, scaleup_bw_bytes_per_s=450e9,
                    scaleup_domain_size=8, scaleout_bw_bytes_per_s=50e9, tdp_w=700.0,
                    prices=(price,), sources=("test",), checked_on="2026-01-01")
    # model_copy does not validate: it can plant numbers the catalog loader would refuse
    return device.model_copy(update=update) if update else device


CATALOG = [_device()]


def _train(**changes) -> TrainingJob:
    fields = dict(model="gpt2", n_tokens=1e9, seq_len=1024, global_batch_size=8, max_devices=8)
    return TrainingJob(**{**fields, **changes})


def _serve(**changes) -> InferenceJob:
    fields = dict(model="gpt2", prompt_len=128, output_len=128)
    return InferenceJob(**{**fields, **changes})


def _refused(make, message: str) -> None:
    """`make()` raises a ValidationError or InputError whose one line is exactly `message`."""
    with pytest.raises((ValidationError, InputError)) as info:
        make()
    err = info.value
    assert (one_line(err) if isinstance(err, ValidationError) else str(err)) == message


# ---- 1. nonsense presented as a feasible plan -------------------------------------------------
def test_a_run_shorter_than_one_optimizer_step_is_refused():
    _refused(lambda: _train(n_tokens=1e-3),
             "n_tokens: 0.001 is less than one optimizer step; allowed: ≥ global_batch_size "
             "× seq_len = 8,192 tokens")
    # 8 sequences x 1,024 tokens = 8,192 tokens: one step exactly, one more token is two
    assert _train(n_tokens=8192).n_steps == 1
    assert _train(n_tokens=8193).n_steps == 2


@pytest.mark.parametrize(("changes", "message"), [
    (dict(efficiency_overrides={"op_overhead_s": 1e300}),
     "efficiency_overrides: op_overhead_s: must be ≤ 1, got 1e+300"),
    (dict(efficiency_overrides={"collective_latency_s": -1e-6}),
     "efficiency_overrides: collective_latency_s: must be ≥ 0, got -1e-06"),
    (dict(efficiency_overrides={"gemm_scale": 1e-320}),
     "efficiency_overrides: gemm_scale: must be ≥ 1e-06, got 9.99989e-321"),
    (dict(efficiency_overrides={"memory_bw_frac": True}),
     "efficiency_overrides: memory_bw_frac: must be a number, got True"),
    (dict(efficiency_overrides=[("compute_frac", 0.5)]),
     "efficiency_overrides: must be a mapping of key to number, got [('compute_frac', 0.5)]; "
     "keys: compute_frac, memory_bw_frac, network_frac, gemm_scale, attention_scale, "
     "memory_scale, network_scale, op_overhead_s, collective_latency_s"),
    (dict(compute_frac=1e-320), "compute_frac: must be ≥ 1e-06, got 9.99989e-321"),
    (dict(goodput_frac=1e-320), "goodput_frac: must be ≥ 1e-06, got 9.99989e-321"),
    (dict(usable_memory_frac=0.0), "usable_memory_frac: must be ≥ 1e-06, got 0"),
])
def test_efficiencies_that_would_overflow_the_time_are_refused(changes, message):
    _refused(lambda: _train(**changes), message)


def test_the_extreme_allowed_efficiencies_still_give_finite_feasible_plans():
    job = _train(compute_frac=1e-6, goodput_frac=1e-6,
                 efficiency_overrides={"op_overhead_s": 1.0, "gemm_scale": 1e-6})
    rows = search(job, CATALOG)
    ok = rows[rows["feasible"]]
    assert len(ok) > 0
    assert np.isfinite(ok[["time_s", "cost_usd", "energy_j"]].to_numpy(float)).all()
    assert (ok["time_s"] > 0).all() and (ok["cost_usd"] > 0).all()


def test_a_candidate_whose_time_overflows_is_infeasible_with_a_reason():
    # a peak of 1e-300 FLOP/s (planted past the loader's checks): every time is infinite
    slow = _device("slow", peak_flops_per_s={"bf16": 1e-300, "fp32": 1e-300})
    rows = search(_train(), [slow])
    assert not rows["feasible"].any()
    # every candidate that passes the layout checks overflows
    assert NON_FINITE_TEXT in set(rows["reason"].astype(str))
    assert set(rows["reason"].astype(str)) <= {NON_FINITE_TEXT, *(
        r.text for r in TrainReason if r in (TrainReason.TP_HEADS, TrainReason.ZERO_WITH_PP,
                                             TrainReason.BATCH_NOT_DIVISIBLE,
                                             TrainReason.INTERLEAVE_MICRO_BATCHES))}
    row = rank(_train(), [slow]).iloc[0]
    assert not row["feasible"]
    assert row["reason"].startswith(
        "time, cost or energy overflowed (infinite, negative, or a zero time): time_s=inf, "
        "cost_usd=inf, energy_j=inf on ")
    assert row["reason"].endswith("check extreme inputs such as compute_frac, goodput_frac or "
                                  "efficiency_overrides")
    served = rank(_serve(), [slow]).iloc[0]
    assert not served["feasible"] and served["reason"].startswith(NON_FINITE_TEXT)


def test_the_new_reasons_keep_the_order_of_the_checks():
    assert TrainReason.NO_FIT < TrainReason.NON_FINITE < TrainReason.DEADLINE
    assert InferReason.NO_FIT < InferReason.NON_FINITE < InferReason.TTFT
    assert TrainReason.NON_FINITE.text == InferReason.NON_FINITE.text == NON_FINITE_TEXT


def test_a_tiny_load_is_served_on_one_replica_at_a_positive_cost():
    job = _serve(requests_per_s=1e-9, tp=1, batch_size=1)
    row = rank(job, CATALOG).iloc[0]
    assert row["feasible"]
    assert (row["n_devices"], row["replicas"]) == (1, 1)
    # one device busy for 1e6 / (1e-9 req/s * 128 tokens) s per million tokens at $2.50/h:
    # 1e6 / (1.28e-7 * 3600) = 2,170,138,888.9 h -> $5,425,347,222.2
    assert row["cost_usd"] == pytest.approx(1e6 / (1e-9 * 128 * 3600) * 2.5, rel=1e-12)
    assert row["cost_usd"] == pytest.approx(5_425_347_222.2, rel=1e-10)


@pytest.mark.parametrize(("changes", "message"), [
    (dict(global_batch_size=BIG),
     "global_batch_size: must be ≤ 1,000,000,000, got 18,446,744,073,709,551,616"),
    (dict(max_devices=BIG), "max_devices: must be ≤ 10,000,000, got 18,446,744,073,709,551,616"),
    (dict(n_devices=BIG), "n_devices: must be ≤ 10,000,000, got 18,446,744,073,709,551,616"),
    (dict(seq_len=10**8 + 1), "seq_len: must be ≤ 100,000,000, got 100,000,001"),
    (dict(n_tokens=1e19), "n_tokens: must be ≤ 1e+18, got 1e+19"),
])
def test_counts_that_would_overflow_int64_are_refused(changes, message):
    _refused(lambda: _train(**changes), message)


def test_the_largest_allowed_counts_give_positive_device_counts():
    # 10^9 sequences x 1,024 tokens per step; up to 10^7 devices: layouts times powers of
    # two and 3 x 2^k, the largest 9 x 2^20 = 9,437,184 (P21)
    job = _train(n_tokens=2e12, global_batch_size=10**9, max_devices=10**7)
    rows = search(job, CATALOG)
    assert rows["n_devices"].min() == 1 and rows["n_devices"].max() == 9_437_184
    assert rows["n_devices"].max() <= 10**7
    ok = rows[rows["feasible"]]
    assert len(ok) > 0 and (ok["n_devices"] >= 1).all()
    assert (ok["n_devices"] == ok["tp"] * ok["pp"] * ok["cp"] * ok["dp"]).all()


@pytest.mark.parametrize(("changes", "message"), [
    (dict(pue=math.inf), "pue: must be a finite number, got inf"),
    (dict(pue=3.5), "pue: must be ≤ 3, got 3.5"),
    (dict(pue=0.9), "pue: must be ≥ 1, got 0.9"),
    (dict(usd_per_kwh=math.nan), "usd_per_kwh: must be a finite number, got nan"),
    (dict(usd_per_kwh=-0.1), "usd_per_kwh: must be ≥ 0, got -0.1"),
    (dict(power_frac=True), "power_frac: must be a number, got True"),
    (dict(lifetime_years=0), "lifetime_years: must be > 0, got 0"),
    (dict(usd_per_device_hour=math.inf), "usd_per_device_hour: must be a finite number, got inf"),
    (dict(purchase_usd=1e9), "purchase_usd: must be ≤ 1e+08, got 1e+09"),
])
def test_cost_options_refuse_non_finite_and_out_of_range_numbers(changes, message):
    _refused(lambda: CostOptions(**changes), message)


def test_cost_options_at_their_bounds_are_accepted():
    options = CostOptions(pue=3, usd_per_kwh=0, usd_per_device_hour=None)
    assert (options.pue, options.usd_per_kwh, options.usd_per_device_hour) == (3.0, 0.0, None)


def test_a_pinned_device_count_above_max_devices_is_refused():
    _refused(lambda: _train(n_devices=1024, max_devices=8),
             "n_devices: 1,024 exceeds max_devices=8; allowed: n_devices ≤ max_devices")
    assert _train(n_devices=8, max_devices=8).n_devices == 8
    # the default max_devices (16,384) does not cap a pinned count
    assert TrainingJob(model="gpt2", n_tokens=1e9, seq_len=1024, global_batch_size=32768,
                       n_devices=32768).n_devices == 32768


@pytest.mark.parametrize(("changes", "message"), [
    (dict(n_samples=None), "n_samples: must be a whole number, got None"),
    (dict(n_samples=0), "n_samples: must be ≥ 1, got 0"),
    (dict(n_samples=math.nan), "n_samples: must be a whole number, got nan"),
    (dict(epochs=None), "epochs: must be a whole number, got None"),
    (dict(epochs=0), "epochs: must be ≥ 1, got 0"),
    (dict(epochs=1.5), "epochs: must be a whole number, got 1.5"),
    (dict(global_batch_size=0), "global_batch_size: must be ≥ 1, got 0"),
    (dict(seq_len=True), "seq_len: must be a whole number, got True"),
])
def test_from_epochs_refuses_missing_zero_and_nan_counts(changes, message):
    fields = dict(n_samples=10, epochs=2, seq_len=128, global_batch_size=8)
    _refused(lambda: TrainingJob.from_epochs("gpt2", **{**fields, **changes}), message)


def test_from_epochs_counts_whole_padded_batches():
    job = TrainingJob.from_epochs("gpt2", n_samples=10, epochs=2, seq_len=128,
                                  global_batch_size=8)
    # ceil(10 / 8) = 2 steps per epoch, 2 epochs: 4 steps of 8 x 128 = 1,024 tokens
    assert (job.n_steps, job.n_tokens) == (4, 4096.0)


# ---- 2. strict types --------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "message"), [
    (dict(seq_len=True), "seq_len: must be a whole number, got True"),
    (dict(seq_len=1024.5), "seq_len: must be a whole number, got 1024.5"),
    (dict(global_batch_size="8"), "global_batch_size: must be a whole number, got '8'"),
    (dict(zero_stage=False), "zero_stage: must be a whole number, got False"),
    (dict(tp=2.5), "tp: must be a whole number, got 2.5"),
    (dict(flash_attention="no"), "flash_attention: must be true or false, got 'no'"),
    (dict(fused_swiglu=1), "fused_swiglu: must be true or false, got 1"),
    (dict(goodput_frac=math.nan), "goodput_frac: must be a finite number, got nan"),
    (dict(deadline_s=math.inf), "deadline_s: must be a finite number, got inf"),
    (dict(n_tokens=math.inf), "n_tokens: must be a finite number, got inf"),
    (dict(restart_s=None), "restart_s: must be a number, got None"),
])
def test_training_fields_refuse_bools_fractions_strings_and_nan(changes, message):
    _refused(lambda: _train(**changes), message)


@pytest.mark.parametrize(("changes", "message"), [
    (dict(prompt_len=True), "prompt_len: must be a whole number, got True"),
    (dict(output_len=0.5), "output_len: must be a whole number, got 0.5"),
    (dict(requests_per_s=math.nan), "requests_per_s: must be a finite number, got nan"),
    (dict(ttft_s=math.inf), "ttft_s: must be a finite number, got inf"),
    (dict(concurrent_requests=True), "concurrent_requests: must be a whole number, got True"),
])
def test_serving_fields_refuse_bools_fractions_and_nan(changes, message):
    _refused(lambda: _serve(**changes), message)


def test_whole_floats_and_real_bools_are_accepted():
    job = _train(seq_len=1024.0, flash_attention=False, tp=None)
    assert (job.seq_len, type(job.seq_len), job.flash_attention, job.tp) == (1024, int, False,
                                                                          None)
    assert _serve(requests_per_s=2).requests_per_s == 2.0


# ---- 3. search() and rank() arguments ---------------------------------------------------------
@pytest.mark.parametrize("fn", [rank, search])
@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(devices=5), "devices: must be a list of device ids (str), got 5"),
    (dict(devices=["gpu", 7]), "devices: must be a list of device ids (str), got 7 in "
                               "['gpu', 7]"),
    (dict(devices=["gpx"]), "devices: unknown device 'gpx'; did you mean gpu? (1 known; "
                            "`planner catalog list`)"),
    (dict(kinds=5), "kinds: must be a list of device kinds (gpu, tpu, fpga, asic, other), "
                    "got 5"),
    (dict(kinds=["quantum"]), "kinds: unknown kind 'quantum'; allowed: gpu, tpu, fpga, asic, "
                              "other"),
    (dict(kinds=["tpu"]), "kinds: no device in the catalog matches the selection "
                          "(devices=None, kinds=['tpu'])"),
    (dict(catalog="x"), "catalog: must be a Catalog (planner.load_catalog()) or a list of "
                        "Device, got 'x'"),
    (dict(catalog=[1]), "catalog: must be a Catalog (planner.load_catalog()) or a list of "
                        "Device, got 1 in it"),
    (dict(catalog=5), "catalog: must be a Catalog (planner.load_catalog()) or a list of "
                      "Device, got 5"),
    (dict(cost={}), "cost: must be a CostOptions (planner.CostOptions(...)), got {}"),
])
def test_bad_arguments_are_one_line_naming_the_parameter(fn, kwargs, message):
    kwargs = {"catalog": CATALOG, **kwargs}
    catalog = kwargs.pop("catalog")
    _refused(lambda: fn(_train(), catalog, **kwargs), message)


def test_bad_job_and_objective_are_one_line():
    _refused(lambda: rank(None, CATALOG), "job: must be a TrainingJob or InferenceJob, got None")
    _refused(lambda: search("gpt2", CATALOG),
             "job: must be a TrainingJob or InferenceJob, got 'gpt2'")
    _refused(lambda: rank(_train(), CATALOG, objective=["time"]),
             "objective: ['time']; allowed: time, cost, energy")


def test_a_catalog_object_and_one_device_id_still_work():
    catalog = Catalog((_device("a"), _device("b")))
    rows = rank(_train(), catalog, devices="b", kinds="gpu")
    assert list(rows["device"].astype(str)) == ["b"]
    assert list(rank(_train(), catalog, kinds=["gpu"])["device"].astype(str)) == ["a", "b"]


# ---- the check on the way out -----------------------------------------------------------------
def test_rows_leaving_search_are_checked():
    inf, nan = math.inf, math.nan
    df = pd.DataFrame(dict(
        n_devices=[1, 0, 1, 1, 1, 1, 1, 1],
        time_s=[1.0, 1.0, 0.0, inf, 1.0, 1.0, 1.0, nan],
        cost_usd=[1.0, 1.0, 1.0, 1.0, -1.0, nan, inf, 1.0],
        energy_j=[1.0, 1.0, 1.0, 1.0, 1.0, nan, 1.0, 1.0],
        feasible=[True] * 8, reason=[""] * 8))
    checked_rows(df, "bad")
    # ok, zero devices, zero time, infinite time, negative cost, unpriced (ok), infinite
    # cost, NaN time
    assert df["feasible"].tolist() == [True, False, False, False, False, True, False, False]
    assert df["reason"].tolist() == ["", "bad", "bad", "bad", "bad", "", "bad", "bad"]


# ---- 4. rank grows linearly with the catalog ---------------------------------------------------
class _CountingId(str):
    """A device id that counts how often it is hashed or compared: a lookup by list scan
    (list.index, `[d for d in devices if d.id == ...]`) compares it once per device."""

    calls = 0

    def __eq__(self, other: object) -> bool:
        _CountingId.calls += 1
        return str.__eq__(self, other)

    def __hash__(self) -> int:
        _CountingId.calls += 1
        return str.__hash__(self)


def _id_operations(n_devices: int) -> int:
    catalog = Catalog(tuple(_device(id=_CountingId(f"gpu{i:05d}")) for i in range(n_devices)))
    _CountingId.calls = 0
    df = rank(_train(), catalog)
    assert len(df) == n_devices and df["feasible"].all()
    return _CountingId.calls


def test_rank_looks_devices_up_in_constant_time(monkeypatch):
    """Benchmark-style check (no timing): with chunks of 4 devices, the id operations of a
    search over 4x the devices are about 4x, not 16x (a list lookup per device or per chunk
    made 8,000 devices take ~3 minutes)."""
    grid = int(np.prod(search_module._train_axes(
        _train(), search_module._table_for(_train(), CATALOG, None, None,
                                           CostOptions())).shape))
    monkeypatch.setattr(search_module, "CHUNK_CANDIDATES", 4 * grid)
    small, large = _id_operations(40), _id_operations(160)
    assert small > 0
    assert large <= 4.5 * small, (small, large)


def test_the_device_table_indexes_ids_once():
    table = search_module._table_for(_train(), [_device("a"), _device("b")], None, None,
                                     CostOptions())
    assert dict(table.position) == {"a": 0, "b": 1}
    codes, dtype = table.labels["device"]
    assert codes.tolist() == [0, 1] and list(dtype.categories) == ["a", "b"]


def test_messages_are_one_line():
    with pytest.raises(ValidationError) as info:
        _train(seq_len=True)
    assert re.fullmatch(r"seq_len: [^\n]+", one_line(info.value))


def test_review_leftovers_are_one_line(tmp_path):
    import copy
    import pickle

    import planner
    from planner.errors import InputError, clip

    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert clip(deep) == "a list nested too deeply to print"
    err = InputError("seq_len", "must be ≥ 1")
    assert str(pickle.loads(pickle.dumps(err))) == str(copy.copy(err)) == "seq_len: must be ≥ 1"
    job = planner.TrainingJob(model="gpt2", n_tokens=1e12, seq_len=1024, global_batch_size=8)
    with pytest.raises(InputError, match=r"^kinds: no device in the catalog matches"):
        planner.search(job, kinds=[])
    # An explicit max_devices equal to the default still bounds a pinned count.
    with pytest.raises(ValueError, match="n_devices: 16,392 exceeds max_devices=16,384"):
        planner.TrainingJob(model="gpt2", n_tokens=1e12, seq_len=1024, global_batch_size=8,
                            max_devices=16384, n_devices=16392)
    with pytest.raises(InputError, match="cannot look up the path"):
        planner.load_catalog("a" * 300 + ".toml")
    with pytest.raises(InputError, match=r"is a folder; give the config\.json file"):
        planner.model_from_hf_config(str(tmp_path))
