"""Search and ranking over a small in-test catalog (and one pass over the built-in catalog):
columns, feasibility, reasons instead of exceptions, Pareto front, and relations that must hold
for any job."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import (
    CostOptions,
    InferenceJob,
    TrainingJob,
    conll2003_bert_finetune,
    pareto_mask,
    rank,
    search,
    workload,
)
from planner.hardware.catalog import Device, Price
from planner.plan.ranking import infeasible_summary
from planner.plan.reasons import TrainReason
from planner.plan.search import (
    candidate_evaluator,
    infer_tp_divides_heads,
    train_tp_divides_heads,
)


def _device(device_id, kind="gpu", *, peaks=None, mem=80e9, bw=3.35e12, up=450e9, domain=8,
            out=50e9, tdp=700.0, usd_per_hour=2.5, purchase=30_000.0, vendor="Test"):
    prices = []
    if usd_per_hour:
        prices.append(Price(kind="cloud", provider="TestCloud", basis="test",
                            contract="on-demand", usd_per_hour=usd_per_hour, date="2026-01-02",
                            source="test"))
    if purchase:
        prices.append(Price(kind="purchase", provider="MSRP", basis="test", contract="list",
                            usd=purchase, date="2025-01-01", source="test"))
    return Device(id=device_id, vendor=vendor, name=device_id, kind=kind, launch_year=2023,
                  peak_flops_per_s=peaks if peaks is not None else {"bf16": 989e12,
                                                                    "fp32": 67e12},
                  memory_bytes=mem, memory_bw_bytes_per_s=bw, scaleup_bw_bytes_per_s=up,
                  scaleup_domain_size=domain, scaleout_bw_bytes_per_s=out, tdp_w=tdp,
                  prices=tuple(prices), price_note="" if prices else "none known",
                  sources=("test",), checked_on="2026-01-01")


CATALOG = [
    _device("big_gpu"),
    _device("small_gpu", peaks={"bf16": 312e12, "fp32": 19.5e12}, mem=24e9, bw=1.5e12,
            up=32e9, usd_per_hour=0.8, purchase=2000.0, tdp=300.0),
    _device("pod_tpu", "tpu", peaks={"bf16": 459e12}, mem=95e9, bw=2.76e12, up=540e9,
            domain=8960, out=None, tdp=None, usd_per_hour=4.0, purchase=None),
    _device("unpriced_asic", "asic", peaks={"bf16": 400e12, "fp32": 40e12}, mem=96e9,
            bw=2.4e12, up=300e9, usd_per_hour=None, purchase=None, tdp=600.0),
    _device("int8_fpga", "fpga", peaks={"int8": 24.5e12}, mem=8e9, bw=460e9, up=None,
            domain=None, out=None, usd_per_hour=None, purchase=None, tdp=225.0),
]

SEARCH_COLUMNS = {"device", "kind", "n_devices", "tp", "pp", "dp", "micro_batch_size",
                  "zero_stage", "recompute", "feasible", "reason", "mem_per_device_bytes",
                  "step_time_s", "time_s", "tokens_per_s", "mfu", "cost_usd", "cost_price_date",
                  "cost_price_provider", "energy_j", "peak_dtype", "pareto"}
RANK_COLUMNS = ["rank", "device", "kind", "feasible", "reason", "n_devices", "tp", "pp", "dp",
                "time_s", "cost_usd", "energy_j", "mfu", "pareto"]


def _job(**changes):
    fields = dict(model="llama-2-7b", n_tokens=2e11, seq_len=2048, global_batch_size=256,
                  max_devices=256)
    return TrainingJob(**{**fields, **changes})


@pytest.fixture(scope="module")
def grid() -> pd.DataFrame:
    return search(_job(), CATALOG)


def test_search_returns_every_candidate_with_the_agreed_columns(grid):
    assert SEARCH_COLUMNS <= set(grid.columns)
    assert set(grid["device"].astype(str)) == {d.id for d in CATALOG}
    assert (grid["n_devices"] == grid["tp"] * grid["pp"] * grid["dp"]).all()
    assert grid["feasible"].any() and not grid["feasible"].all()
    assert (grid.loc[grid["feasible"], "reason"] == "").all()
    assert (grid.loc[~grid["feasible"], "reason"] != "").all()
    # tensor parallelism stays inside the scale-up domain unless pinned
    small = grid[grid["device"] == "small_gpu"]
    assert small["tp"].max() <= 8
    # prices travel with their provider and date
    big = grid[grid["device"] == "big_gpu"].iloc[0]
    assert (big["cost_price_provider"], big["cost_price_date"]) == ("TestCloud", "2026-01-02")


def test_a_candidate_that_does_not_fit_is_never_feasible(grid):
    capacity = grid["device"].astype(str).map({d.id: d.memory_bytes for d in CATALOG})
    over = grid["mem_per_device_bytes"] > 0.9 * capacity
    assert over.any()
    assert not grid.loc[over, "feasible"].any()
    assert set(grid.loc[over, "reason"].astype(str)) <= {
        "does not fit in memory", "global batch not divisible by dp × micro-batch",
        "no dense peak for the compute dtype", "link bandwidth unknown",
        TrainReason.NO_TRAINING_STACK.text, TrainReason.INTERLEAVE_MICRO_BATCHES.text,
        "tp does not divide the attention or KV heads", TrainReason.ZERO_WITH_PP.text}


def test_feasible_rows_obey_the_batch_split(grid):
    ok = grid[grid["feasible"]]
    m = ok["n_micro_batches"]
    assert (m == np.floor(m)).all() and (m >= 1).all()
    assert (ok["dp"] * ok["micro_batch_size"] * m == 256).all()


def test_vectorized_search_equals_one_candidate_at_a_time(grid):
    evaluate = candidate_evaluator(_job(), CATALOG)
    sample = grid.sample(60, random_state=0)
    for _, row in sample.iterrows():
        one = evaluate(str(row["device"]), row["n_devices"], row["tp"], row["pp"],
                       row["zero_stage"], row["micro_batch_size"], str(row["recompute"]),
                       cp=row["cp"], virtual_stages=row["virtual_stages"])
        assert one["feasible"] == row["feasible"]
        assert one["reason"] == str(row["reason"])
        for col in ("mem_per_device_bytes", "step_time_s", "time_s", "mfu", "cost_usd",
                    "energy_j"):
            a, b = one[col], row[col]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12), col


def test_rank_columns_order_and_kinds_together():
    df = rank(_job(), CATALOG)
    assert list(df.columns[:len(RANK_COLUMNS)]) == RANK_COLUMNS
    assert len(df) == len(CATALOG) and list(df["rank"]) == list(range(1, len(CATALOG) + 1))
    assert {"gpu", "tpu", "asic", "fpga"} == set(df["kind"].astype(str))
    feasible = df[df["feasible"]]
    assert list(feasible["time_s"]) == sorted(feasible["time_s"])
    assert df["feasible"].tolist() == sorted(df["feasible"], reverse=True)
    fpga = df.set_index("device").loc["int8_fpga"]
    # an FPGA is refused for training because no training stack exists, not for a missing peak
    assert not fpga["feasible"]
    assert fpga["reason"].startswith("int8_fpga is an FPGA: no training software stack")


def test_rank_by_cost_puts_unpriced_devices_after_priced_ones_ranked_by_time():
    df = rank(_job(), CATALOG, objective="cost")
    feasible = df[df["feasible"]]
    priced = feasible[feasible["cost_usd"].notna()]
    assert list(priced["cost_usd"]) == sorted(priced["cost_usd"])
    unpriced = feasible[feasible["cost_usd"].isna()]
    assert list(unpriced["device"]) == ["unpriced_asic"]
    assert unpriced.index[0] > priced.index.max()
    row = unpriced.iloc[0]
    assert "no cloud on-demand price" in row["cost_note"]
    # A cost ranking never picks by speed: with no cloud and no purchase price, the device's
    # configuration is the one with the fewest device-hours among its feasible candidates.
    assert "chosen by device-hours: no price" in row["cost_note"]
    grid = search(_job(), CATALOG, devices=["unpriced_asic"])
    grid = grid[grid["feasible"]]
    fewest = (grid["n_devices"] * grid["time_s"]).min()
    assert row["n_devices"] * row["time_s"] == pytest.approx(fewest, rel=1e-12)
    fastest = rank(_job(), CATALOG, devices=["unpriced_asic"]).iloc[0]
    assert row["n_devices"] * row["time_s"] < fastest["n_devices"] * fastest["time_s"]


def test_rank_by_cloud_cost_falls_back_to_ownership_cost_where_only_the_purchase_is_known():
    bought = _device("bought_only", usd_per_hour=None, purchase=30_000.0)
    df = rank(_job(), [bought], objective="cost")
    row = df.iloc[0]
    assert row["feasible"] and math.isnan(row["cost_usd"])
    assert "chosen by ownership cost: no cloud price" in row["cost_note"]
    grid = search(_job(), [bought], cost=CostOptions(basis="ownership"))
    grid = grid[grid["feasible"]]
    layout = ["n_devices", "tp", "pp", "micro_batch_size", "zero_stage", "recompute"]
    same = grid[(grid[layout] == row[layout]).all(axis=1)]
    assert len(same) == 1  # the chosen layout costs the least to own
    assert same["cost_usd"].iloc[0] == pytest.approx(grid["cost_usd"].min(), rel=1e-12)


def test_rank_by_energy_and_ownership_cost():
    df = rank(_job(), CATALOG, objective="energy", cost=CostOptions(basis="ownership"))
    feasible = df[df["feasible"] & df["energy_j"].notna()]
    assert list(feasible["energy_j"]) == sorted(feasible["energy_j"])
    big = df.set_index("device").loc["big_gpu"]
    assert big["cost_usd"] == big["ownership_cost_usd"]


def test_pareto_front_by_hand():
    time_s = [1.0, 2.0, 3.0, 2.0, 5.0, np.nan]
    cost = [10.0, 5.0, 6.0, 5.0, 1.0, 0.1]
    # row 2 is dominated by row 1; row 3 ties row 1 (not strictly better): only one is kept
    assert pareto_mask(time_s, cost).tolist() == [True, True, False, False, True, False]
    assert pareto_mask(time_s, cost, [True, False, True, True, True, True]).tolist() == [
        True, False, False, True, True, False]
    df = rank(_job(), CATALOG)
    ok = df[df["pareto"]]
    for _, row in ok.iterrows():  # nothing feasible dominates a front row
        better = df[df["feasible"] & (df["time_s"] <= row["time_s"])
                    & (df["cost_usd"] <= row["cost_usd"])
                    & ((df["time_s"] < row["time_s"]) | (df["cost_usd"] < row["cost_usd"]))]
        assert better.empty


def test_impossible_requests_return_rows_with_reasons_not_exceptions():
    huge = TrainingJob(model="llama-3.1-405b", n_tokens=1e9, seq_len=2048, global_batch_size=8,
                       max_devices=8)
    df = rank(huge, CATALOG, devices=["big_gpu", "small_gpu"])
    assert not df["feasible"].any()
    assert all(r.startswith("does not fit: needs") for r in df["reason"])
    late = _job(deadline_s=3600.0)
    df = rank(late, CATALOG, devices=["big_gpu"])
    assert not df["feasible"].iloc[0]
    assert df["reason"].iloc[0].startswith("misses the deadline of 60 min: fastest is")


def test_deadline_picks_the_cheapest_layout_that_meets_it():
    free = rank(_job(), CATALOG, devices=["big_gpu"]).iloc[0]
    deadline = 3 * free["time_s"]
    df = rank(_job(deadline_s=deadline), CATALOG, devices=["big_gpu"], objective="cost")
    row = df.iloc[0]
    assert row["feasible"] and row["time_s"] <= deadline
    assert row["n_devices"] <= free["n_devices"] and row["cost_usd"] <= free["cost_usd"]
    rows = search(_job(deadline_s=deadline), CATALOG, devices=["big_gpu"])
    assert row["cost_usd"] == rows.loc[rows["feasible"], "cost_usd"].min()


def test_with_a_deadline_objective_time_is_the_fastest_plan_that_meets_it():
    # a deadline is a constraint, not an objective: "time" still gives the fastest plan
    free = rank(_job(), CATALOG, devices=["big_gpu"]).iloc[0]
    within = rank(_job(deadline_s=3 * free["time_s"]), CATALOG, devices=["big_gpu"]).iloc[0]
    assert within["time_s"] == free["time_s"] and within["n_devices"] == free["n_devices"]
    rows = search(_job(deadline_s=3 * free["time_s"]), CATALOG, devices=["big_gpu"])
    assert within["time_s"] == rows.loc[rows["feasible"], "time_s"].min()
    # an impossible deadline: the summary names it and how far the fastest plan is
    late = _job(deadline_s=free["time_s"] / 2)
    df = rank(late, CATALOG, devices=["big_gpu"])
    text = infeasible_summary(late, df)
    assert text.startswith("no device meets the deadline of ")
    assert "(2×) on" in text and "big_gpu" in text
    assert infeasible_summary(_job(), rank(_job(), CATALOG, devices=["big_gpu"])) == ""


def test_pinned_layout_is_respected():
    rows = search(_job(n_devices=64, tp=8, pp=2, zero_stage=1, recompute="full",
                       micro_batch_size=2, virtual_stages=1), CATALOG, devices=["big_gpu"])
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["n_devices"], row["tp"], row["pp"], row["dp"], row["zero_stage"],
            row["micro_batch_size"], row["recompute"]) == (64, 8, 2, 4, 1, 2, "full")
    # a pinned tp beyond the scale-up domain is evaluated and explained
    wide = search(_job(tp=16, n_devices=16), CATALOG, devices=["big_gpu"])
    assert set(wide["reason"].astype(str)) == {"tp beyond the scale-up domain"}


@settings(max_examples=12, deadline=None)
@given(factor=st.floats(1.0, 50.0), objective=st.sampled_from(["time", "cost"]))
def test_more_tokens_never_shorten_training(factor, objective):
    base = rank(_job(), CATALOG, objective=objective, devices=["big_gpu", "pod_tpu"])
    more = rank(_job(n_tokens=2e11 * factor), CATALOG, objective=objective,
                devices=["big_gpu", "pod_tpu"])
    for device in ("big_gpu", "pod_tpu"):
        a = base.set_index("device").loc[device, "time_s"]
        b = more.set_index("device").loc[device, "time_s"]
        if objective == "time":
            assert b >= a * (1 - 1e-12)
    # for any fixed candidate the time grows with the tokens
    g1 = search(_job(), CATALOG, devices=["big_gpu"])["time_s"].to_numpy()
    g2 = search(_job(n_tokens=2e11 * factor), CATALOG, devices=["big_gpu"])["time_s"].to_numpy()
    ok = np.isfinite(g1)
    assert np.all(g2[ok] >= g1[ok] * (1 - 1e-12))


def test_seed_document_bert_example_costs_on_each_device():
    job = conll2003_bert_finetune()
    df = rank(job, CATALOG, objective="cost")
    rows = df.set_index("device")
    assert rows.loc["big_gpu", "feasible"] and rows.loc["big_gpu", "peak_dtype"] == "fp32"
    assert rows.loc["big_gpu", "n_devices"] == 1 and rows.loc["big_gpu", "micro_batch_size"] <= 8
    # 5,268 steps; the step cannot be faster than its FLOPs at the fp32 peak
    flops = 5268 * 8 * 128 * 6 * 108e6
    assert rows.loc["big_gpu", "time_s"] * 67e12 > flops
    assert not rows.loc["pod_tpu", "feasible"]
    assert rows.loc["pod_tpu", "reason"].startswith("no dense fp32 peak in the catalog")


def test_serving_rank_columns_and_targets():
    job = InferenceJob(model="llama-2-70b", prompt_len=1024, output_len=256, requests_per_s=10)
    df = rank(job, CATALOG, objective="cost")
    assert list(df.columns[:len(RANK_COLUMNS)]) == RANK_COLUMNS
    assert {"ttft_s", "tpot_s", "tokens_per_s_per_device", "replicas", "batch_size"} <= set(
        df.columns)
    ok = df[df["feasible"]]
    assert not ok.empty
    # latency = TTFT + (output - 1) x TPOT
    assert np.allclose(ok["time_s"], ok["ttft_s"] + 255 * ok["tpot_s"])
    # decode: per-sequence tokens/s x weight bytes per device <= bandwidth (ref README §8)
    bw = ok["device"].astype(str).map({d.id: d.memory_bw_bytes_per_s for d in CATALOG})
    assert ((1 / ok["tpot_s"]) * ok["weight_mem_bytes"] <= bw).all()
    # bf16 serving computes in bf16 on every device: the FPGA has only an int8 peak, so it is
    # refused for that reason (never computed at its int8 peak)
    fpga = df.set_index("device").loc["int8_fpga"]
    assert fpga["reason"] == ("no dense bf16/fp16 peak in the catalog: precision 'bf16' "
                              "computes in bf16 on every device")
    tight = job.model_copy(update={"ttft_s": 1e-4})
    df = rank(tight, CATALOG, devices=["big_gpu"])
    assert df["reason"].iloc[0].startswith("misses the time-to-first-token target")


def test_serving_a_small_model_on_the_fpga_is_bandwidth_bound():
    job = workload("llama-2-7b-batch1", precision="int8-w8a8")
    df = rank(job, CATALOG, devices=["int8_fpga"])
    row = df.iloc[0]
    assert row["feasible"] and row["peak_dtype"] == "int8"
    # int8 weights (~6.7 GB) read per token at 460 GB/s x 0.7 efficiency: >= 20 ms per token
    assert row["tpot_s"] >= 6.5e9 / (460e9 * 0.7)


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(objective="speed"), "objective"),
    (dict(devices=["nope"]), "nope"),
    (dict(kinds=["quantum"]), "kind"),
])
def test_bad_rank_arguments_raise_value_error(kwargs, field):
    with pytest.raises(ValueError, match=field):
        rank(_job(), CATALOG if "kinds" not in kwargs else _catalog_object(), **kwargs)


def _catalog_object():
    from planner.hardware.catalog import Catalog

    return Catalog(tuple(CATALOG))


def test_selective_recompute_is_not_searched_with_flash_attention(grid):
    # with flash attention "selective" is identical to "none" (the kernel recomputes itself)
    assert set(grid["recompute"].astype(str)) == {"none", "full"}
    plain = search(_job(flash_attention=False), CATALOG, devices=["big_gpu"])
    assert set(plain["recompute"].astype(str)) == {"none", "selective", "full"}
    pinned = search(_job(recompute="selective"), CATALOG, devices=["big_gpu"])
    assert set(pinned["recompute"].astype(str)) == {"selective"}


def test_tp_head_rules():
    from types import SimpleNamespace

    llama70 = SimpleNamespace(n_heads=64, kv_heads=8)
    # training: t divides the 64 heads and the 8 KV heads
    assert train_tp_divides_heads(llama70, np.array([1, 8, 16, 3])).tolist() == [
        True, True, False, False]
    # serving: t divides the heads; K % t == 0 (split) or t % K == 0 (replicated)
    assert infer_tp_divides_heads(llama70, np.array([8, 16, 64])).tolist() == [True] * 3
    # multi-query attention (K = 1) replicates its one K/V head: PaLM's 12-way model parallel
    palm = SimpleNamespace(n_heads=48, kv_heads=1)
    assert train_tp_divides_heads(palm, np.array([12, 5])).tolist() == [True, False]
    odd = SimpleNamespace(n_heads=48, kv_heads=12)
    # t = 4: 12 % 4 = 0; t = 24: 24 % 12 = 0; t = 8, 16: neither 12 % t nor t % 12 is 0
    assert infer_tp_divides_heads(odd, np.array([4, 24, 8, 16])).tolist() == [
        True, True, False, False]


RACK72 = _device("rack72", domain=72, mem=192e9, up=900e9, out=100e9)
RACK64 = _device("rack64", domain=64, mem=192e9, up=900e9, out=100e9)
ISLAND = _device("island", domain=72, mem=192e9, up=900e9, out=None)


def test_training_tp_beyond_the_kv_heads_is_infeasible_with_a_reason():
    job = TrainingJob(model="llama-2-70b", n_tokens=1e10, seq_len=4096, global_batch_size=64,
                      max_devices=512)
    rows = search(job, [RACK72])
    assert not rows.loc[rows["tp"] > 8, "feasible"].any()
    assert set(rows.loc[rows["tp"] > 8, "reason"].astype(str)) == {
        "tp does not divide the attention or KV heads"}
    pinned = rank(job.model_copy(update={"tp": 16, "n_devices": 64}), [RACK72])
    assert pinned["reason"].iloc[0] == "tp=16 exceeds the 8 KV heads of llama-2-70b"


def test_searched_tp_tiles_the_scale_up_domain():
    rows = search(_job(max_devices=512), [RACK72])
    # 72 % 16 != 0: tp = 16 and 32 only where the whole job sits in one rack (n <= 72)
    wide = rows[rows["tp"] >= 16]
    assert not wide.empty and (wide["n_devices"] <= 72).all()
    assert (rows.loc[rows["n_devices"] > 72, "tp"] <= 8).all()


def test_pinned_tp_that_does_not_tile_the_domain_crosses_it_over_scale_out():
    job = _job(tp=16, pp=1, n_devices=128, zero_stage=1, recompute="none",
               micro_batch_size=1)
    r72 = search(job, [RACK72]).iloc[0]
    r64 = search(job, [RACK64]).iloc[0]
    # same device but for the domain: in the 72-GPU rack the tp collectives run at the
    # 100 GB/s scale-out link instead of 900 GB/s NVLink (P9b); the per-step latency, the same
    # order on both tiers for a 16-rank all-reduce of 16.8 MB, narrows the gap to about 2x
    assert r72["tp_comm_time_s"] > 2 * r64["tp_comm_time_s"]
    ranked = rank(job, [RACK72]).iloc[0]
    assert "tp=16 does not divide the scale-up domain of 72" in ranked["scale_note"]
    # without a scale-out bandwidth the layout is infeasible and the reason says why
    island = rank(job, [ISLAND]).iloc[0]
    assert not island["feasible"]
    assert "tp=16 does not divide the scale-up domain of 72" in island["reason"]


def test_serving_tp_beyond_the_kv_heads_replicates_them():
    job = InferenceJob(model="llama-2-70b", prompt_len=1024, output_len=256,
                       concurrent_requests=64, tp=16, pp=1, batch_size=64)
    row = search(job, [RACK64]).iloc[0]
    assert row["feasible"]
    # weights: (137,953,296,384 - 2,684,354,560) / 16 + 2,684,354,560 / 8 (bf16, P5)
    assert row["weight_mem_bytes"] == 8_789_853_184
    # paged KV cache (P4, P4b): 64 staggered sequences of 1024 + 256/2 live tokens plus half
    # a 16-token block each, and 256/2 more at the peak, 327,680 bytes per token, over
    # min(16, 8)
    assert row["kv_cache_mem_bytes"] == pytest.approx(
        (64 * (1024 + 128 + 8) + 128) * 327_680 / 8)
    assert row["kv_cache_mem_bytes"] == pytest.approx(3_046_113_280)


def test_an_impossible_load_is_an_infeasible_row_not_an_overflow():
    job = InferenceJob(model="llama-2-7b", prompt_len=1024, output_len=256,
                       requests_per_s=1e30)
    df = rank(job, CATALOG, devices=["big_gpu", "small_gpu"])
    assert not df["feasible"].any()
    assert (df["n_devices"] >= 0).all() and (df["replicas"] >= 0).all()
    assert df["reason"].iloc[0] == "needs over 9.01e+15 devices, more than max_devices=16384"


def test_infeasible_rows_name_the_scale_out_limit():
    """A device without a scale-out bandwidth is searched up to one scale-up domain; a deadline
    it misses there says so."""
    island8 = _device("island8", domain=8, out=None)
    df = rank(_job(deadline_s=86_400.0), [island8])
    reason = df["reason"].iloc[0]
    assert reason.startswith("misses the deadline of 24 h")
    assert reason.endswith("; scale-out bandwidth unknown: at most 8 devices "
                           "(one scale-up domain)")


def test_compute_frac_sets_the_matmul_fraction():
    # MFU counted as the kernel executes (causal half), so it can only lose to the fraction
    slow = rank(_job(compute_frac=0.2, causal_attention="half"), CATALOG,
                devices=["big_gpu"]).iloc[0]
    fast = rank(_job(compute_frac=0.6, causal_attention="half"), CATALOG,
                devices=["big_gpu"]).iloc[0]
    assert slow["time_s"] > fast["time_s"]
    assert 0.15 < slow["mfu"] < 0.2  # the reported MFU stays below the matmul fraction


def test_builtin_catalog_ranks_gpus_tpus_and_fpgas_together():
    df = rank(workload("llama-2-7b-pretrain"))
    assert {"gpu", "tpu", "fpga"} <= set(df["kind"].astype(str))
    assert df["feasible"].any()
    assert (df.loc[~df["feasible"], "reason"] != "").all()


def test_a_cost_ranking_without_deadline_is_held_to_the_default_horizon():
    from planner.plan.ranking import DEFAULT_COST_HORIZON_S, HORIZON_NOTE

    job = TrainingJob(model="llama-2-70b", n_tokens=2e12, seq_len=4096, global_batch_size=1024)
    capped = rank(job, devices=["nvidia_h100_sxm"], objective="cost").iloc[0]
    assert capped["feasible"] and capped["time_s"] <= DEFAULT_COST_HORIZON_S == 90 * 86400
    # Without the horizon (an explicit, distant deadline) the cheapest plan takes most of a
    # year on fewer devices, for almost no saving: the device-hours are about the same (a
    # smaller job is interrupted less often: its goodput is a little higher, P24-P28).
    far = job.model_copy(update={"deadline_s": 10 * 365 * 86400.0})
    uncapped = rank(far, devices=["nvidia_h100_sxm"], objective="cost").iloc[0]
    assert uncapped["time_s"] > 250 * 86400 and uncapped["n_devices"] < capped["n_devices"]
    assert capped["cost_usd"] == pytest.approx(uncapped["cost_usd"], rel=0.03)
    # A device that cannot meet it says which limit it missed.
    small = job.model_copy(update={"max_devices": 32})
    row = rank(small, devices=["nvidia_h100_sxm"], objective="cost").iloc[0]
    assert not row["feasible"] and row["reason"].startswith("misses the deadline of 90 d")
    assert row["reason"].endswith(f"({HORIZON_NOTE})")
