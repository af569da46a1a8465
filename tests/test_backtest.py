"""Backtest: curated published runs, the publishers' FLOP conventions, the summary, the CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from planner.cli import main
from planner.plan.backtest import (
    COLUMNS,
    FLOPS_CONVENTIONS,
    METRICS,
    backtest,
    backtest_model,
    backtest_summary,
    convention_flops_per_step,
    llmfoundry_flops_per_step,
    load_training_runs,
    narayanan_flops_per_step,
    palm_flops_per_step,
    predicted_metric,
)

RUNS = load_training_runs()


# ---- the curated data ----------------------------------------------------------------------------
def test_runs_load_with_a_source_and_a_known_metric():
    assert len(RUNS) >= 40
    assert RUNS["run_id"].is_unique
    assert (RUNS["source"].str.len() > 20).all()
    assert RUNS["confidence"].notna().all() and RUNS["published_text"].notna().all()
    assert set(RUNS["metric"]) <= set(METRICS)
    assert (RUNS["published"] > 0).all()
    conv = RUNS.loc[RUNS["metric"].isin(["mfu", "tflops_per_device"]), "flops_convention"]
    assert set(conv) <= set(FLOPS_CONVENTIONS)


def test_budgets_use_goodput_and_throughput_is_steady_state():
    # README §5: device-hours include restarts etc.; throughput numbers are steady state.
    hours = RUNS["metric"] == "device_hours"
    assert not RUNS.loc[hours, "steady_state"].any()
    assert RUNS.loc[~hours, "steady_state"].all()
    assert RUNS.loc[hours, "n_tokens"].gt(0).all()


def test_recalled_megatron_rows_are_kept_out_of_the_headline():
    # Reference README §5: only Table 1's first and last rows were confirmed.
    t1 = RUNS[RUNS["family"] == "Megatron 2021 T1"].set_index("run_id")
    assert set(t1.index[t1["headline"]]) == {"megatron2021_t1_1.7B", "megatron2021_t1_1008.0B"}


# shared/reference/measured_runs_2026.csv: the training rows the planner can describe
MEASURED_2026 = {
    "torchtitan 2024-25": 8,
    "Megatron-Bridge 2025-26": 6,  # + GB300 rows (CP, interleaving, NVFP4) and DeepSeek-V3 EP64
    "MaxText 2025": 3,
    "MLPerf Training v5.x": 3,  # + v5.1 GB200 x5120 NVFP4
    # Llama 2 70B LoRA fine-tuning (adapter="lora", P30-P32: 2026-12-04)
    "MLPerf Training v5.x LoRA": 4,
    "Gaudi 2 (Intel)": 1,
}


def test_measured_2026_rows_load_with_a_catalog_device_a_preset_and_a_source():
    from planner import list_models
    from planner.hardware.catalog import load_catalog

    new = RUNS[RUNS["family"].isin(list(MEASURED_2026))]
    assert new["family"].value_counts().to_dict() == MEASURED_2026
    assert set(new["device"]) <= set(load_catalog().ids())
    assert set(new["model"]) <= set(list_models())  # planner presets, no backtest-only shapes
    assert new["source"].str.contains("measured_runs_2026.csv").all()
    assert (new["source"].str.len() > 40).all() and new["assumptions"].notna().all()
    assert new["steady_state"].all() and new["flash_attention"].all()
    assert set(new["precision"]) <= {"bf16", "fp8", "fp4"}
    assert not new["flops_convention"].notna().any()
    assert set(new["metric"]) == {"tokens_per_s_per_device", "time_to_train_minutes"}
    # a published layout is consistent: tp · pp · dp = devices where all three are pinned
    full = new.dropna(subset=["tp", "pp", "dp"])
    assert (full["tp"] * full["pp"] * full["cp"].fillna(1) * full["dp"]
            == full["n_devices"]).all()
    # MLPerf: n_tokens are the runs' samples at run_stop, a whole number of global batches
    mlperf = new[new["metric"] == "time_to_train_minutes"]
    steps = mlperf["n_tokens"] / (mlperf["global_batch_seqs"] * mlperf["seq_len"])
    assert np.allclose(steps, steps.round())
    assert set(steps.round()) == {259, 240, 255, 384, 108}  # LoRA: 3,072 / 8 and 6,912 / 64
    lora = new[new["adapter"] != "none"]
    assert set(lora["adapter"]) == {"lora"} and (lora["lora_rank"] == 16).all()
    assert set(lora["lora_targets"]) == {"attention"}  # MLPerf: linear_qkv and linear_proj


@pytest.mark.parametrize("name", sorted(set(RUNS["model"])))
def test_every_model_resolves(name):
    spec = backtest_model(name)
    assert spec.n_params > 0


@pytest.mark.parametrize(("name", "n_params"), [
    ("bloom-176b", 176_247_271_424),  # bigscience/bloom release
    ("mpt-7b", 6_658_859_008),  # llm-foundry benchmark table, 7b at 2k: NumParams
    ("mpt-7b-s64k", 6_918_905_856),  # 7b at 65536: the learned positions grow
    ("mpt-30b", 29_975_214_080),
    ("mpt-70b", 64_862_437_376),
])
def test_backtest_shapes_match_published_parameter_counts(name, n_params):
    assert backtest_model(name).n_params == n_params


def test_palm_shape_is_540b():
    # Chowdhery et al. 2022 Table 1: 540.35B; + 8.7M for LayerNorm biases PaLM does not have.
    assert backtest_model("palm-540b").n_params == pytest.approx(540.35e9, rel=1e-4)


# ---- hand-derived and paper checks ---------------------------------------------------------------
def test_llama_65b_six_n_d_and_derived_mfu():
    # 6·N·D = 6 × 65,285,660,672 × 1.4e12 = 5.4840e23 FLOPs; over 1,022,362 GPU-hours at 312
    # TFLOP/s: 5.4840e23 / (1,022,362 × 3600 × 312e12) = 0.4776, the reference's derived 47.7%.
    n = backtest_model("llama-65b").n_params
    flops = 6 * n * 1.4e12
    assert flops == pytest.approx(5.4840e23, rel=1e-4)
    assert flops / (1_022_362 * 3600 * 312e12) == pytest.approx(0.4776, abs=5e-4)


def test_narayanan_formula_reproduces_mt_nlg_throughput():
    # Smith et al. 2022 Sec. 2.4: GBS 1920 × 2048 on 2240 A100s, 60.1 s/iteration = 126 TFLOP/s.
    spec = backtest_model("megatron-530b")
    flops = narayanan_flops_per_step(spec, batch_seqs=1920, seq_len=2048)
    assert flops / (60.1 * 2240) / 1e12 == pytest.approx(126, abs=0.5)
    assert flops / (44.4 * 3360) / 1e12 == pytest.approx(113, abs=0.5)


def test_narayanan_formula_reproduces_bloom_log_line():
    # bigscience tr11 README: 104.70 s/iteration, GBS 2048, 384 GPUs -> "TFLOPs: 149.77".
    flops = narayanan_flops_per_step(backtest_model("bloom-176b"), batch_seqs=2048,
                                     seq_len=2048)
    assert flops / (104.70 * 384) / 1e12 == pytest.approx(149.77, abs=0.05)


def test_llmfoundry_formula_reproduces_mpt_table():
    # llm-foundry benchmark README, A100-80GB: 7b at 2k, 4641 tokens/s/GPU -> 64.23% MFU;
    # H100: 70b at 2k, 1039 tokens/s/GPU -> 42.57% of 989 TFLOP/s.
    per_token = llmfoundry_flops_per_step(backtest_model("mpt-7b"), batch_seqs=1,
                                          seq_len=2048) / 2048
    assert per_token * 4641 / 312e12 == pytest.approx(0.6423, abs=5e-4)
    per_token = llmfoundry_flops_per_step(backtest_model("mpt-70b"), batch_seqs=1,
                                          seq_len=2048) / 2048
    assert per_token * 1039 / 989e12 == pytest.approx(0.4257, abs=5e-4)


def test_palm_convention_is_six_n_plus_attention():
    # 1 sequence of T=2048: (6N + 12·L·H·Q·T)·T with L=118, H=48, Q=256.
    spec = backtest_model("palm-540b")
    expected = (6 * spec.n_params + 12 * 118 * 48 * 256 * 2048) * 2048
    assert palm_flops_per_step(spec, batch_seqs=1, seq_len=2048) == pytest.approx(expected)


def test_predicted_metric_arithmetic():
    spec = backtest_model("mpt-7b")
    kw = dict(spec=spec, n_devices=8, batch_seqs=16, seq_len=2048, step_time_s=2.0,
              time_s=7200.0, peak_flops_per_s=312e12)
    # 7200 s × 8 devices / 3600 = 16 device-hours; 16 × 2048 / (2 s × 8) = 2048 tokens/s.
    assert predicted_metric(metric="device_hours", convention=None, **kw) == 16.0
    assert predicted_metric(metric="tokens_per_s_per_device", convention=None, **kw) == 2048.0
    f = llmfoundry_flops_per_step(spec, batch_seqs=16, seq_len=2048)
    assert predicted_metric(metric="mfu", convention="llmfoundry_mfu", **kw) == pytest.approx(
        f / (2.0 * 8 * 312e12))
    assert predicted_metric(metric="tflops_per_device", convention="llmfoundry_mfu",
                            **kw) == pytest.approx(f / 16 / 1e12)


def test_predicted_time_to_train_minutes_by_hand():
    # 1e9 tokens in steps of 1024 × 8192 = 8,388,608 tokens: 119.21 steps × 10 s / 60 = 19.87 min
    kw = dict(convention=None, spec=backtest_model("llama-3-8b"), n_devices=64,
              batch_seqs=1024, seq_len=8192, step_time_s=10.0, time_s=0.0,
              peak_flops_per_s=None)
    minutes = predicted_metric(metric="time_to_train_minutes", n_tokens=1e9, **kw)
    assert minutes == pytest.approx(1e9 / 8_388_608 * 10.0 / 60.0)
    assert minutes == pytest.approx(19.87, abs=0.005)
    with pytest.raises(ValueError, match="n_tokens"):
        predicted_metric(metric="time_to_train_minutes", **kw)


def test_unknown_convention_and_metric_are_rejected():
    spec = backtest_model("mpt-7b")
    with pytest.raises(ValueError, match="flops_convention: 'x'"):
        convention_flops_per_step("x", spec, batch_seqs=1, seq_len=2048)
    with pytest.raises(ValueError, match="metric: 'speed'"):
        predicted_metric(metric="speed", convention=None, spec=spec, n_devices=1, batch_seqs=1,
                         seq_len=1, step_time_s=1.0, time_s=1.0, peak_flops_per_s=1.0)


# ---- summary -------------------------------------------------------------------------------------
def test_summary_is_the_median_of_absolute_errors():
    df = pd.DataFrame({
        "metric": ["mfu", "mfu", "device_hours", "device_hours", "mfu"],
        "family": ["A", "A", "B", "B", "C"],
        "signed_error_frac": [-0.30, 0.10, 0.05, -0.20, np.nan],
        "headline": [True, True, True, False, True],
    })
    s = backtest_summary(df)
    # headline finite rows: |-0.30|, |0.10|, |0.05| -> median 0.10
    assert s["median_abs_error_frac"] == pytest.approx(0.10)
    assert s["n_runs"] == 3
    # signed: -0.30, 0.10, 0.05 -> median 0.05
    assert s["median_signed_error_frac"] == pytest.approx(0.05)
    # all finite rows: 0.30, 0.10, 0.05, 0.20 -> median (0.10 + 0.20) / 2 = 0.15
    assert s["median_abs_error_frac_all"] == pytest.approx(0.15)
    assert s["n_all"] == 4 and s["n_missing"] == 1
    assert s["by_metric"]["mfu"] == {"median_abs_error_frac": pytest.approx(0.20), "n": 2}
    assert s["by_metric"]["device_hours"]["n"] == 1
    assert s["by_family"]["A"]["median_abs_error_frac"] == pytest.approx(0.20)


# ---- the backtest itself (runs the engine) -------------------------------------------------------
@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return backtest()


def test_backtest_predicts_every_run(table):
    assert list(table.columns) == COLUMNS
    assert len(table) == len(RUNS)
    assert np.isfinite(table["predicted"].astype(float)).all(), table.loc[
        ~np.isfinite(table["predicted"].astype(float)), ["run_id", "reason"]]
    assert (table["predicted"] > 0).all()
    err = (table["predicted"] - table["published"]) / table["published"]
    assert np.allclose(err, table["signed_error_frac"])


def test_backtest_uses_goodput_only_for_budgets(table):
    hours = table["metric"] == "device_hours"
    assert (table.loc[~hours, "goodput_frac"] == 1.0).all()
    assert (table.loc[hours, "goodput_frac"] < 1.0).all()


def test_backtest_keeps_published_layouts(table):
    pinned = RUNS.set_index("run_id")
    got = table.set_index("run_id")
    for col in ("n_devices", "tp", "pp", "dp", "zero_stage"):
        known = pinned[col].notna()
        assert (got.loc[known, col].astype(int) == pinned.loc[known, col].astype(int)).all(), col


def test_backtest_summary_is_finite(table):
    s = backtest_summary(table)
    assert math.isfinite(s["median_abs_error_frac"])
    assert s["n_runs"] == int(RUNS["headline"].sum())


# Thresholds on the kernel-level model's accuracy (docs/backtest.md). They are where the model
# stands when checked, rounded up, not targets it was tuned to: a change that makes a family
# worse than this turns the test red and has to say why in docs/backtest.md.
FAMILY_MEDIAN_ABS_ERROR_AT_MOST = {
    "Megatron 2021 T1": 0.12,  # Narayanan 2021 Table 1, TP×PP, full recompute (A100)
    "BLOOM": 0.10,
    "MosaicML MPT": 0.15,
    "Megatron-Bridge 2025-26": 0.15,
    # 0.18 until 2026-12-03; the goodput now follows the device count (0.98 on 2,048 GPUs
    # instead of a flat 0.9), and published GPU-hours include evaluations, idle capacity and
    # ramp-up, which it does not count (docs/backtest.md)
    "LLaMA-1": 0.22,
    "Llama 2": 0.25,
    "MT-NLG": 0.25,
}


def test_backtest_medians_stay_within_their_thresholds(table):
    s = backtest_summary(table)
    assert s["median_abs_error_frac"] <= 0.20
    for family, limit in FAMILY_MEDIAN_ABS_ERROR_AT_MOST.items():
        assert s["by_family"][family]["median_abs_error_frac"] <= limit, family


def test_large_tuned_megatron_layouts_reach_their_published_throughput(table):
    """GPT-3 175B with Megatron's PTD-P (TP4-8 × PP8-16, 384-1536 A100): 141-153 TFLOP/s per
    GPU published (Narayanan 2021, Table 2); the model, with no per-run input, within 10 % on
    that layout family. The backtest searches the layout (the table does not give it) and
    finds 12 stages (a divisor of the 96 layers) 8-12 % faster than published."""
    from planner import TrainingJob, search
    from planner.plan.backtest import backtest_model, load_training_runs

    runs = load_training_runs().set_index("run_id")
    rows = table[table["run_id"].str.startswith("megatron2021_t2_ptd_175b")]
    assert len(rows) == 3
    assert (rows["abs_error_frac"] < 0.15).all(), rows[["run_id", "signed_error_frac"]]
    for run_id in rows["run_id"]:
        run = runs.loc[run_id]
        job = TrainingJob(model=backtest_model(run["model"]), n_tokens=float(run["n_tokens"]),
                          seq_len=int(run["seq_len"]), precision=run["precision"],
                          global_batch_size=int(run["global_batch_seqs"]),
                          n_devices=int(run["n_devices"]), zero_stage=0, recompute="full",
                          flash_attention=False, goodput_frac=1.0, virtual_stages=1, cp=1)
        grid = search(job, devices=[run["device"]])
        family = grid[grid["feasible"] & grid["tp"].isin([4, 8]) & grid["pp"].isin([8, 16])]
        step = float(family["step_time_s"].min())
        # the backtest row's per-GPU FLOP/s × its step time = Megatron's Eq. 3 FLOPs per step
        # per GPU, over this layout family's step time
        flops = float(rows.loc[rows["run_id"] == run_id, "predicted"].iloc[0]) * 1e12 * float(
            rows.loc[rows["run_id"] == run_id, "step_time_s"].iloc[0])
        predicted = flops / step / 1e12
        assert abs(predicted / float(run["published"]) - 1) < 0.10, (run_id, predicted)
        # MFU is an output: Megatron's hardware FLOPs at ~45 % of the A100 peak, not an input
        assert predicted / 312 > 0.40


def test_cli_backtest_writes_csv(tmp_path, capsys):
    path = tmp_path / "bt.csv"
    assert main(["backtest", "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    assert "median |error|" in out
    written = pd.read_csv(path)
    assert len(written) == len(RUNS)
    assert {"run_id", "published", "predicted", "signed_error_frac", "source"} <= set(
        written.columns)


def test_power_check_against_ml_energy_serving_power():
    from planner.plan.backtest import power_check

    df = power_check().set_index("run_id")
    # Llama 3.1 70B on 4 H100 (vLLM, batch ~128): ML.ENERGY measured 2,184 W for the 4 GPUs,
    # 546 W each; P16a's device draw without an idle figure is 700 W x 0.8 = 560 W (+2.6 %)
    row = df.loc["mle_l31_70b_h100_128"]
    assert row["measured_w_per_device"] == pytest.approx(546.0)
    assert row["predicted_w_per_device"] == pytest.approx(560.0)
    assert row["signed_error_frac"] == pytest.approx(560 / 546 - 1)
    # B200 at batch 64 drew 617 W of its 1,000 W: the 0.8 default overestimates it by 30 %
    assert df.loc["mle_l31_8b_b200_64", "signed_error_frac"] == pytest.approx(800 / 617 - 1)
