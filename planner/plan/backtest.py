"""Backtest: published training runs (and serving numbers, `serving_backtest`), each predicted
with the planner's default rules.

The runs live in `planner/data/training_runs.csv`, curated from the shared reference data: one
row per published number, with its source, its confidence, the configuration it was measured
with (device, count, tensor/pipeline/data layout, ZeRO stage, recompute, batch, sequence length,
precision) and which quantity is compared. Every run is predicted by `planner.search` with that
configuration pinned (a blank field is searched) and the kernel-level rates of the catalog
(hardware_catalog/kernels.toml): nothing is tuned per run and there is no fudge factor.

Two kinds of comparison (reference README §5):

* ``device_hours`` (budgets: LLaMA, Llama 2, BLOOM, PaLM chip-hours) are compared with the
  engine's time **including** its goodput at that device count (interruptions, checkpoints
  and restarts, P24-P28), because published device-hours include restarts; they also include
  evaluations, idle capacity and batch ramp-up, which the goodput model does not count.
* throughput (``mfu``, ``tflops_per_device``, ``tokens_per_s_per_device``) is steady state, so
  it is compared with goodput = 1 (the step time alone).
* ``time_to_train_minutes`` (MLPerf Training time-to-train) is compared with goodput = 1 as
  well: n_tokens / (global batch · seq_len) steady-state steps × the step time. The published
  value still includes MLPerf's in-run evaluations (docs/backtest.md).

A throughput number is only comparable if the FLOPs are counted the way the publisher counted
them. The predicted value is therefore computed from the predicted step time with the
publisher's own formula (`flops_convention`): Megatron's Eq. 3 (hardware FLOPs with the
recomputed forward, also used by MT-NLG and BLOOM), llm-foundry's MFU (6N + attention), or
PaLM's Appendix B (6N + 12·L·H·Q·T). A signed error is then exactly the step-time error.

Values are in the unit their metric names (hours, fraction, TFLOP/s, tokens/s, minutes), the
one place where the planner keeps a non-SI unit: the point of the table is to be read against
the papers.

The serving backtest (`backtest(kind="serving")`, `planner/data/serving_runs.csv`) predicts
each published serving number with `search(InferenceJob(...), devices=[device])`, the published
layout pinned, in one of three modes: "offline" (the best output tokens/s per device over the
batches that fit, times the published devices), "closed" (the published concurrency and
batch) and "latency" (batch 1). Its values are SI (tokens per second, seconds).
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from planner.errors import InputError, clip, one_line
from planner.model.precision import precision_policy
from planner.model.spec import GPT2_STYLE, ModelSpec, model
from planner.units import SECONDS_PER_HOUR, TERA

SECONDS_PER_MINUTE = 60.0

DATA_FILE = "training_runs.csv"
BACKTEST_KINDS = ("training", "serving")

METRICS = ("device_hours", "mfu", "tflops_per_device", "tokens_per_s_per_device",
           "time_to_train_minutes")
FLOPS_CONVENTIONS = ("narayanan2021_eq3", "llmfoundry_mfu", "palm_appendix_b")
_INT_FIELDS = ("n_devices", "tp", "pp", "cp", "virtual_stages", "ep", "dp", "zero_stage",
               "micro_batch_size", "global_batch_seqs", "seq_len", "lora_rank")

_CARRIED = ("run_id", "run", "family", "model", "device", "n_devices", "tp", "pp", "cp",
            "virtual_stages", "ep", "dp",
            "zero_stage", "recompute", "micro_batch_size", "flash_attention", "adapter",
            "metric", "published", "steady_state", "headline", "confidence", "source")
COLUMNS = [
    "run_id", "run", "family", "model", "device", "n_devices", "tp", "pp", "cp",
    "virtual_stages", "ep", "dp", "zero_stage",
    "recompute", "micro_batch_size", "flash_attention", "adapter", "metric", "published",
    "predicted",
    "signed_error_frac", "abs_error_frac", "steady_state", "goodput_frac", "step_time_s",
    "engine_mfu", "headline", "confidence", "feasible", "reason", "source",
]


# ---- models without a planner preset -----------------------------------------------------------
def _gpt_like(name: str, *, n_layers: int, d_model: int, n_heads: int, vocab_size: int,
              max_seq_len: int, source_url: str, **extra: Any) -> ModelSpec:
    """GPT-2-style block (planner.model.spec.GPT2_STYLE): pre-LayerNorm with biases, GELU MLP of
    4·d, tied embeddings; no dropout."""
    fields: dict[str, Any] = dict(
        GPT2_STYLE, dropout=0.0, n_layers=n_layers, d_model=d_model, n_heads=n_heads,
        d_ff=4 * d_model, vocab_size=vocab_size, max_seq_len=max_seq_len, source_url=source_url)
    fields.update(extra)
    return ModelSpec(name=name, **fields)


_NARAYANAN = "https://arxiv.org/abs/2104.04473 (Table 1)"
# Narayanan et al. 2021, Table 1 (layers, hidden, heads); vocabulary 51,200, sequence 2048.
_MEGATRON_GPT = {
    "megatron-gpt-1.7b": (24, 2304, 24),
    "megatron-gpt-3.6b": (30, 3072, 32),
    "megatron-gpt-7.5b": (36, 4096, 32),
    "megatron-gpt-18.4b": (40, 6144, 48),
    "megatron-gpt-39.1b": (48, 8192, 64),
    "megatron-gpt-76.1b": (60, 10240, 80),
    "megatron-gpt-145.6b": (80, 12288, 96),
    "megatron-gpt-310.1b": (96, 16384, 128),
    "megatron-gpt-175b": (96, 12288, 96),  # Table 2's GPT-3 (174.6B with the 51,200 vocabulary)
}
_LLM_FOUNDRY = "mosaicml/llm-foundry scripts/train/yamls/pretrain/mpt-{}.yaml"
# llm-foundry yamls (d_model, n_layers, n_heads; vocab 50,368; expansion 4). The benchmark
# models keep MPTConfig's defaults: learned positions and biases, which reproduces the
# benchmark table's NumParams exactly (e.g. 7b at 2k: 6,658,859,008).
_MPT = {
    "3b": (32, 2560, 20),
    "7b": (32, 4096, 32),
    "13b": (40, 5120, 40),
    "30b": (48, 7168, 56),
    "70b": (80, 8192, 64),
}


def _build_backtest_models() -> dict[str, ModelSpec]:
    out: dict[str, ModelSpec] = {}
    for name, (layers, hidden, heads) in _MEGATRON_GPT.items():
        out[name] = _gpt_like(name, n_layers=layers, d_model=hidden, n_heads=heads,
                              vocab_size=51200, max_seq_len=2048, source_url=_NARAYANAN)
    for size, (layers, hidden, heads) in _MPT.items():
        for seq_len in (2048, 65536):
            name = f"mpt-{size}" + ("" if seq_len == 2048 else f"-s{seq_len // 1024}k")
            out[name] = _gpt_like(name, n_layers=layers, d_model=hidden, n_heads=heads,
                                  vocab_size=50368, max_seq_len=seq_len,
                                  source_url=_LLM_FOUNDRY.format(size))
    # BLOOM: 70 layers, hidden 14336, 112 heads, vocabulary padded to 250,880, ALiBi (no
    # position embedding), LayerNorm after the embedding, GELU, biases, tied head
    # (bigscience tr11-176B-ml README / slurm). 176,247,271,424 parameters, as released.
    out["bloom-176b"] = _gpt_like(
        "bloom-176b", n_layers=70, d_model=14336, n_heads=112, vocab_size=250880,
        max_seq_len=2048, position="none", embedding_norm=True,
        source_url="bigscience-workshop/bigscience train/tr11-176B-ml/README.md")
    # PaLM 540B (Chowdhery et al. 2022, Table 1 and Sec. 2): 118 layers, d_model 18432, 48
    # heads of 256, multi-query attention (1 KV head), SwiGLU with d_ff = 4·d_model = 73728,
    # RoPE, shared input/output embedding of 256k, no biases. NB: PaLM's LayerNorm has no bias
    # and its attention and MLP run in parallel; ModelSpec counts a biased LayerNorm (+8.7M
    # parameters, 540.36B vs 540.35B) and a serial block (same FLOPs).
    out["palm-540b"] = ModelSpec(
        name="palm-540b", arch="decoder", n_layers=118, d_model=18432, n_heads=48,
        n_kv_heads=1, head_dim=256, d_ff=73728, vocab_size=256000, max_seq_len=2048,
        norm="layernorm", mlp_act="silu", gated_mlp=True, position="rotary",
        tied_embeddings=True, source_url="https://arxiv.org/abs/2204.02311 (Table 1, Sec. 2)")
    # Qwen3-32B (the serving backtest's ML.ENERGY row): 64 layers, hidden 5120, 64 query and
    # 8 KV heads of 128 with per-head q/k RMSNorm, SwiGLU of 25,600, vocabulary 151,936,
    # untied head (Qwen/Qwen3-32B config.json).
    out["qwen3-32b"] = ModelSpec(
        name="qwen3-32b", arch="decoder", norm="rmsnorm", norm_position="pre", mlp_act="silu",
        gated_mlp=True, position="rotary", n_layers=64, d_model=5120, n_heads=64,
        n_kv_heads=8, head_dim=128, d_ff=25600, vocab_size=151936, max_seq_len=40960,
        qk_norm=True, source_url="https://huggingface.co/Qwen/Qwen3-32B/blob/main/config.json")
    return out


@cache
def backtest_models() -> dict[str, ModelSpec]:
    """Model shapes the backtest needs that are not planner presets, by name."""
    return _build_backtest_models()


def backtest_model(name: str) -> ModelSpec:
    """A backtest-only shape (BLOOM, PaLM, MPT, Megatron 2021) or else a planner preset."""
    return backtest_models().get(name) or model(name)


# ---- the curated runs --------------------------------------------------------------------------
def load_training_runs() -> pd.DataFrame:
    """The curated published runs (planner/data/training_runs.csv), one row per number.

    Integer configuration fields are pandas nullable integers (<NA> = not published, searched);
    `steady_state` and `headline` are booleans. A fine-tuning run names its `adapter` ("lora",
    "qlora"; blank = full training, "none"), `lora_rank` and `lora_targets` (names separated
    by ";", e.g. "attention").
    """
    with resources.files("planner").joinpath("data", DATA_FILE).open(encoding="utf-8") as f:
        df = pd.read_csv(f, keep_default_na=False, na_values=[""])
    for col in _INT_FIELDS:
        df[col] = df[col].astype("Int64")
    df["n_tokens"] = df["n_tokens"].astype(float)
    df["published"] = df["published"].astype(float)
    for col in ("steady_state", "headline", "flash_attention"):
        df[col] = df[col].map({"true": True, "false": False, True: True, False: False})
    for col in ("recompute", "flops_convention", "assumptions", "tp", "pp", "dp",
                "lora_targets"):
        if df[col].dtype == object:
            df[col] = df[col].where(df[col].notna(), None)
    df["adapter"] = df["adapter"].fillna("none").astype(str)
    return df


def _fine_tuning(run: pd.Series) -> dict[str, Any]:
    """The run's adapter fields as TrainingJob keywords (none for full training)."""
    if run["adapter"] == "none":
        return {}
    out: dict[str, Any] = dict(adapter=run["adapter"])
    if _pin(run["lora_rank"]) is not None:
        out["lora_rank"] = _pin(run["lora_rank"])
    if _pin(run["lora_targets"]) is not None:
        out["lora_targets"] = tuple(str(run["lora_targets"]).split(";"))
    return out


# ---- publishers' FLOP conventions (per optimizer step) -----------------------------------------
def narayanan_flops_per_step(spec: ModelSpec, *, batch_seqs: float, seq_len: float) -> float:
    """Megatron's hardware FLOPs per step with full recompute, Narayanan et al. 2021, Eq. 3.

    F = 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)): per block 24·B·s·h² matmul FLOPs and 4·B·s²·h
    attention FLOPs forward, times 4 (forward, backward = 2×, recomputed forward), plus the
    logit layer 6·B·s·h·V (no recompute). Assumes d_ff = 4h and multi-head attention, true of
    every run it is used for (Megatron GPT, MT-NLG, BLOOM, OPT). Megatron-LM and
    Megatron-DeepSpeed print their "TFLOPs" with it (docs/backtest.md).
    """
    b, s, h = float(batch_seqs), float(seq_len), float(spec.d_model)
    n_layers, v = float(spec.n_layers), float(spec.vocab_size)
    return 96.0 * b * s * n_layers * h * h * (1.0 + s / (6.0 * h) + v / (16.0 * n_layers * h))


def llmfoundry_flops_per_step(spec: ModelSpec, *, batch_seqs: float, seq_len: float) -> float:
    """llm-foundry's MFU numerator per step: 3·(2·N·s + 4·l·d·s²) per sequence.

    mosaicml/llm-foundry scripts/train/benchmarking/README.md: flops_per_seq = 2·n_params·s,
    attn_flops_per_seq = n_layers·2·2·d_model·s², mfu = 3·(both)·seq_per_s / (gpus·peak).
    N counts every parameter, learned position embeddings included.
    """
    s = float(seq_len)
    per_seq = 2.0 * spec.n_params * s + 4.0 * spec.n_layers * spec.d_model * s * s
    return 3.0 * per_seq * float(batch_seqs)


def palm_flops_per_step(spec: ModelSpec, *, batch_seqs: float, seq_len: float) -> float:
    """PaLM's model FLOPs per step (Chowdhery et al. 2022, Appendix B): (6N + 12·L·H·Q·T)·tokens.

    L layers, H heads, Q head size, T sequence length; rematerialisation is not counted.
    """
    t = float(seq_len)
    per_token = 6.0 * spec.n_params + 12.0 * spec.n_layers * spec.n_heads * spec.d_head * t
    return per_token * float(batch_seqs) * t


_CONVENTIONS = {
    "narayanan2021_eq3": narayanan_flops_per_step,
    "llmfoundry_mfu": llmfoundry_flops_per_step,
    "palm_appendix_b": palm_flops_per_step,
}


def convention_flops_per_step(convention: str, spec: ModelSpec, *, batch_seqs: float,
                              seq_len: float) -> float:
    """FLOPs of one step as the publisher counted them (see FLOPS_CONVENTIONS)."""
    if convention not in _CONVENTIONS:
        raise ValueError(f"flops_convention: {convention!r}; allowed: "
                         f"{', '.join(FLOPS_CONVENTIONS)}")
    return _CONVENTIONS[convention](spec, batch_seqs=batch_seqs, seq_len=seq_len)


def predicted_metric(*, metric: str, convention: str | None, spec: ModelSpec, n_devices: int,
                     batch_seqs: float, seq_len: float, step_time_s: float, time_s: float,
                     peak_flops_per_s: float | None, n_tokens: float | None = None) -> float:
    """The published quantity computed from a predicted step time (and total time).

    device_hours = time_s · n / 3600 (time_s includes goodput); tokens_per_s_per_device =
    B·s / (step_time_s · n); time_to_train_minutes = n_tokens / (B·s) steps × step_time_s / 60
    (steady-state steps, goodput 1, fractional steps); tflops_per_device = F / (step_time_s ·
    n) / 1e12; mfu = F / (step_time_s · n · peak), with F the publisher's FLOPs per step.
    """
    if metric == "device_hours":
        return time_s * n_devices / SECONDS_PER_HOUR
    if metric == "tokens_per_s_per_device":
        return batch_seqs * seq_len / (step_time_s * n_devices)
    if metric == "time_to_train_minutes":
        if not n_tokens:
            raise ValueError("n_tokens: needed for a time-to-train comparison")
        steps = n_tokens / (batch_seqs * seq_len)
        return steps * step_time_s / SECONDS_PER_MINUTE
    if metric not in ("mfu", "tflops_per_device"):
        raise ValueError(f"metric: {metric!r}; allowed: {', '.join(METRICS)}")
    flops = convention_flops_per_step(convention or "", spec, batch_seqs=batch_seqs,
                                      seq_len=seq_len)
    per_device_flops_per_s = flops / (step_time_s * n_devices)
    if metric == "tflops_per_device":
        return per_device_flops_per_s / TERA
    if not peak_flops_per_s:
        raise ValueError("peak_flops_per_s: needed for an MFU comparison")
    return per_device_flops_per_s / peak_flops_per_s


# ---- prediction with the engine ----------------------------------------------------------------
def _pin(value: Any) -> Any:
    """A CSV field as a pin: None (searched) for blanks, plain int/str otherwise."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _select_candidate(rows: pd.DataFrame, run: pd.Series) -> tuple[pd.Series | None, str]:
    """The fastest feasible candidate matching the published layout (or the fastest of all)."""
    if rows.empty:
        return None, "the engine returned no candidate"
    match = rows
    for col in ("n_devices", "tp", "pp", "cp", "virtual_stages", "ep", "dp", "zero_stage",
                "micro_batch_size"):
        pin = _pin(run[col])
        if pin is not None and col in match.columns:
            match = match[match[col] == pin]
    if _pin(run["recompute"]) is not None and "recompute" in match.columns:
        match = match[match["recompute"] == run["recompute"]]
    if match.empty:
        return None, "no candidate with the published layout"
    steady = match[np.isfinite(match["step_time_s"].astype(float))]
    feasible = steady[steady["feasible"].astype(bool)]
    if not feasible.empty:
        return feasible.loc[feasible["step_time_s"].astype(float).idxmin()], ""
    if steady.empty:
        return None, str(match["reason"].iloc[0])
    # Published runs did run: an infeasible verdict (e.g. memory) is reported, and the step
    # time of the published layout is still compared.
    best = steady.loc[steady["step_time_s"].astype(float).idxmin()]
    return best, f"engine says infeasible: {best['reason']}"


def _predict(run: pd.Series, catalog: Any) -> dict[str, Any]:
    from planner import TrainingJob, search  # the engine (issue 4); imported lazily

    spec = backtest_model(run["model"])
    batch, seq_len = int(run["global_batch_seqs"]), int(run["seq_len"])
    n_tokens = float(run["n_tokens"])
    job_kwargs: dict[str, Any] = dict(
        model=spec, n_tokens=n_tokens, seq_len=seq_len, global_batch_size=batch,
        precision=run["precision"], n_devices=_pin(run["n_devices"]), tp=_pin(run["tp"]),
        pp=_pin(run["pp"]), cp=_pin(run["cp"]), virtual_stages=_pin(run["virtual_stages"]),
        ep=_pin(run["ep"]) if spec.is_moe else None,
        micro_batch_size=_pin(run["micro_batch_size"]),
        zero_stage=_pin(run["zero_stage"]), recompute=_pin(run["recompute"]),
        flash_attention=bool(run["flash_attention"]), **_fine_tuning(run))
    if run["steady_state"]:
        job_kwargs["goodput_frac"] = 1.0  # throughput is steady state: no restarts, no evals
    job = TrainingJob(**job_kwargs)
    rows = search(job, catalog, devices=[run["device"]])
    best, reason = _select_candidate(rows, run)
    out: dict[str, Any] = dict(feasible=best is not None and not reason, reason=reason)
    if best is None:
        return out | dict(predicted=math.nan, step_time_s=math.nan, engine_mfu=math.nan,
                          goodput_frac=math.nan)
    # the goodput used: 1 for steady-state rows, else the device count's (P24-P28)
    out["goodput_frac"] = float(best["goodput_frac"])
    device = catalog.get(run["device"])
    # the dense peak an MFU is quoted against: the training precision's matmul dtype
    peak = device.peak(precision_policy(run["precision"], mode="train").compute_dtype)
    predicted = predicted_metric(
        metric=run["metric"], convention=run["flops_convention"], spec=spec,
        n_devices=int(best["n_devices"]), batch_seqs=batch, seq_len=seq_len,
        step_time_s=float(best["step_time_s"]), time_s=float(best["time_s"]),
        peak_flops_per_s=peak, n_tokens=n_tokens)
    return out | dict(
        predicted=predicted, step_time_s=float(best["step_time_s"]),
        engine_mfu=float(best.get("mfu", math.nan)),
        **{col: _pin(best[col]) for col in ("tp", "pp", "cp", "virtual_stages", "ep", "dp",
                                             "zero_stage", "recompute", "micro_batch_size")
           if col in best.index})


def backtest(*, kind: str = "training", catalog: Any = None,
             runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predict every curated published run of `kind` ("training", the default, or "serving")
    with the default rules and compare; see `training_backtest` and `serving_backtest` for
    the columns. `runs` defaults to the curated CSV of that kind; `catalog` to the built-in
    hardware catalog. Any other `kind` raises InputError naming the field."""
    if not isinstance(kind, str) or kind not in BACKTEST_KINDS:
        raise InputError("kind", f"unknown backtest kind {clip(kind)}; allowed: "
                                 f"{', '.join(BACKTEST_KINDS)}")
    if kind == "serving":
        return serving_backtest(catalog=catalog, runs=runs)
    return training_backtest(catalog=catalog, runs=runs)


def _predicted_records(runs: pd.DataFrame, carried: tuple[str, ...], predict: Any,
                      catalog: Any) -> list[dict[str, Any]]:
    """One record per run: its `carried` columns and what `predict(run, catalog)` adds."""
    if catalog is None:
        from planner.hardware.catalog import load_catalog

        catalog = load_catalog()
    return [{**{col: _pin(run[col]) for col in carried}, **predict(run, catalog)}
            for _, run in runs.iterrows()]


def training_backtest(*, catalog: Any = None, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predict every curated published training run with the default rules and compare.

    One row per published number: run_id, run, family, model, device, n_devices, the layout the
    engine used (tp, pp, dp, zero_stage, recompute, micro_batch_size; published values where
    published, the engine's choice where searched), metric, published, predicted,
    signed_error_frac = (predicted − published) / published, abs_error_frac, steady_state,
    goodput_frac used, step_time_s, engine_mfu (the engine's own MFU, its FLOP convention),
    headline (counts towards the headline median), confidence, feasible, reason, source.

    `runs` defaults to `load_training_runs()`; `catalog` to the built-in hardware catalog.
    """
    runs = load_training_runs() if runs is None else runs
    df = pd.DataFrame.from_records(_predicted_records(runs, _CARRIED, _predict, catalog))
    df["signed_error_frac"] = (df["predicted"] - df["published"]) / df["published"]
    df["abs_error_frac"] = df["signed_error_frac"].abs()
    return df[COLUMNS]


def backtest_summary(df: pd.DataFrame) -> dict[str, Any]:
    """Median absolute error of a backtest table, overall and by metric and family.

    Keys: median_abs_error_frac and n_runs (headline rows: confirmed numbers only, or every row
    when the frame has no `headline` column), median_abs_error_frac_all and n_all (every row),
    median_signed_error_frac (headline bias), by_metric and by_family
    ({name: {"median_abs_error_frac", "n"}} over headline rows). Rows without a finite error
    are left out and counted in n_missing.
    """
    err = df["signed_error_frac"].astype(float)
    ok = np.isfinite(err)
    head = ok & (df["headline"].astype(bool) if "headline" in df.columns else True)

    def med(mask: pd.Series) -> float:
        return float(err[mask].abs().median()) if mask.any() else math.nan

    def groups(col: str) -> dict[str, dict[str, float | int]]:
        if col not in df.columns:
            return {}
        return {str(k): {"median_abs_error_frac": med(head & (df[col] == k)),
                         "n": int((head & (df[col] == k)).sum())}
                for k in dict.fromkeys(df.loc[head, col])}

    return {
        "median_abs_error_frac": med(head),
        "n_runs": int(head.sum()),
        "median_signed_error_frac": float(err[head].median()) if head.any() else math.nan,
        "median_abs_error_frac_all": med(ok),
        "n_all": int(ok.sum()),
        "n_missing": int((~ok).sum()),
        "by_metric": groups("metric"),
        "by_family": groups("family"),
    }


# ---- serving ------------------------------------------------------------------------------------
SERVING_DATA_FILE = "serving_runs.csv"

# What a serving row compares (all SI): output tokens per second of the whole system, decode
# tokens per second seen by one user (1 / TPOT), time to first token, time per output token.
SERVING_METRICS = ("output_tokens_per_s", "output_tokens_per_s_per_user", "ttft_s", "tpot_s")
# offline: the best throughput over the batches that fit (under the row's latency limits, if
# any); closed: a fixed number of users in flight; latency: one request at a time (batch 1).
SERVING_MODES = ("offline", "closed", "latency")
# Which statistic a published latency is: the engine's mean columns, or its percentile
# columns (ttft_p50_s, tpot_p99_s, ...) where the engine gives them.
SERVING_STATISTICS = ("mean", "median", "p99")
_PERCENTILE_SUFFIX = {"median": "_p50_s", "p99": "_p99_s"}
# Largest batch per replica an offline row searches (powers of two up to it); its load is as
# many concurrent requests, so the load never limits the batch.
OFFLINE_MAX_BATCH_SIZE = 4096

_SERVING_INT_FIELDS = ("n_devices", "tp", "pp", "batch_size", "concurrency", "prompt_len",
                       "output_len")
_SERVING_CARRIED = ("run_id", "family", "model", "device", "n_devices", "mode", "precision",
                    "prompt_len", "output_len", "metric", "statistic", "published", "confidence",
                    "source")
SERVING_COLUMNS = [
    "run_id", "family", "model", "device", "n_devices", "tp", "pp", "batch_size", "mode",
    "precision", "prompt_len", "output_len", "metric", "statistic", "published", "predicted",
    "signed_error_frac", "abs_error_frac", "confidence", "feasible", "note", "source",
]


def load_serving_runs() -> pd.DataFrame:
    """The curated published serving numbers (planner/data/serving_runs.csv), one row each.

    Integer fields (n_devices, tp, pp, batch_size, concurrency, prompt_len, output_len) are
    pandas nullable integers (<NA> = not published: searched); ttft_limit_s and tpot_limit_s
    are the latency limits an offline row must meet (NaN = none) at the percentile
    limit_percentile (MLPerf: 99); kv_cache_precision is None
    for the engine's default. Values are SI (seconds, tokens per second).
    """
    path = resources.files("planner").joinpath("data", SERVING_DATA_FILE)
    with path.open(encoding="utf-8") as f:
        df = pd.read_csv(f, keep_default_na=False, na_values=[""])
    for col in _SERVING_INT_FIELDS:
        df[col] = df[col].astype("Int64")
    for col in ("published", "ttft_limit_s", "tpot_limit_s", "limit_percentile"):
        df[col] = df[col].astype(float)
    for col in ("kv_cache_precision", "notes"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    return df


def _serving_job_fields(run: pd.Series) -> dict[str, Any]:
    """The InferenceJob keywords of a serving row: the published layout pinned, the load of
    its mode (offline: as many users as the largest batch searched; closed: the published
    concurrency; latency: one), and its latency limits as targets."""
    n_devices = int(run["n_devices"])
    fields: dict[str, Any] = dict(model=backtest_model(run["model"]), precision=run["precision"],
                                  prompt_len=int(run["prompt_len"]),
                                  output_len=int(run["output_len"]))
    if run["kv_cache_precision"] is not None:
        fields["kv_cache_precision"] = run["kv_cache_precision"]
    if _pin(run["tp"]) is not None:
        fields["tp"] = _pin(run["tp"])
    pp = _pin(run["pp"])
    if pp is not None and pp > 1:
        fields["pp"] = pp
    for target, limit in (("ttft_s", "ttft_limit_s"), ("tpot_s", "tpot_limit_s")):
        if math.isfinite(float(run[limit])):
            fields[target] = float(run[limit])
    # the percentile the limits apply to
    if math.isfinite(float(run["limit_percentile"])):
        fields["latency_percentile"] = float(run["limit_percentile"])
    mode = run["mode"]
    if mode == "offline":
        # batch b on replicas of tp·pp devices: OFFLINE_MAX_BATCH_SIZE / b replicas at most
        fields.update(max_batch_size=OFFLINE_MAX_BATCH_SIZE,
                      concurrent_requests=OFFLINE_MAX_BATCH_SIZE,
                      max_devices=OFFLINE_MAX_BATCH_SIZE * n_devices)
    elif mode == "closed":
        batch = _pin(run["batch_size"])
        users = _pin(run["concurrency"]) or batch or 1
        if batch is not None:
            fields["batch_size"] = batch
        fields.update(concurrent_requests=users, max_batch_size=max(users, batch or 1))
    elif mode == "latency":
        fields.update(batch_size=1, concurrent_requests=1)
    else:
        raise InputError("mode", f"{clip(mode)} in run {run['run_id']}; allowed: "
                                 f"{', '.join(SERVING_MODES)}")
    return fields


def _replica_devices(rows: pd.DataFrame) -> pd.Series:
    """Devices per replica of each candidate: tp × pp × ep (ep 1 where not given)."""
    ep = rows["ep"].astype(int) if "ep" in rows.columns else 1
    return rows["tp"].astype(int) * rows["pp"].astype(int) * ep


def _select_serving(rows: pd.DataFrame, run: pd.Series) -> tuple[pd.Series | None, str]:
    """The candidate a serving row is compared with, and a note ("" when feasible).

    offline: among feasible candidates whose replicas tile the published device count, the
    highest output tokens/s per device; closed: among candidates on the published device
    count, the highest delivered tokens/s at the load; latency: the shortest request. A
    closed or latency row whose published layout the engine calls infeasible is still
    compared (the run did run), with the engine's reason in the note.
    """
    if rows.empty:
        return None, "the engine returned no candidate"
    n_devices, mode = int(run["n_devices"]), run["mode"]
    if mode == "offline":
        per_replica = _replica_devices(rows)
        match = rows[(per_replica <= n_devices) & (n_devices % per_replica == 0)]
        objective, best_is_max = "tokens_per_s_per_device", True
    else:
        match = rows[rows["n_devices"].astype(int) == n_devices]
        objective, best_is_max = (("tokens_per_s", True) if mode == "closed"
                                  else ("time_s", False))
    if match.empty:
        return None, f"no candidate on {n_devices} devices with the published layout"
    value = match[objective].astype(float)
    finite = match[np.isfinite(value)]
    feasible = finite[finite["feasible"].astype(bool)]

    def best(frame: pd.DataFrame) -> pd.Series:
        col = frame[objective].astype(float)
        return frame.loc[col.idxmax() if best_is_max else col.idxmin()]

    if not feasible.empty:
        return best(feasible), ""
    if mode == "offline" or finite.empty:
        return None, f"engine: no feasible candidate ({match['reason'].iloc[0]})"
    chosen = best(finite)
    return chosen, f"engine says infeasible: {chosen['reason']}"


def serving_metric(row: pd.Series, *, metric: str, mode: str, n_devices: int,
                   statistic: str = "mean") -> float:
    """A published serving quantity from one search candidate (SI units).

    output_tokens_per_s = tokens_per_s_per_device · n_devices for an offline row (the
    capacity of the published devices) and the delivered tokens_per_s at the load otherwise;
    output_tokens_per_s_per_user = 1 / tpot_s; ttft_s and tpot_s as the engine gives them,
    from its percentile column (ttft_p50_s, tpot_p99_s, ...) when `statistic` is "median" or
    "p99" and the row has it, else its mean.
    """
    if metric == "output_tokens_per_s":
        if mode == "offline":
            return float(row["tokens_per_s_per_device"]) * n_devices
        return float(row["tokens_per_s"])

    def latency(name: str) -> float:
        column = name.removesuffix("_s") + _PERCENTILE_SUFFIX.get(statistic, "_s")
        return float(row[column] if column in row.index else row[name])

    if metric == "output_tokens_per_s_per_user":
        return 1.0 / latency("tpot_s")
    if metric in ("ttft_s", "tpot_s"):
        return latency(metric)
    raise InputError("metric", f"{clip(metric)}; allowed: {', '.join(SERVING_METRICS)}")


def _blank(note: str) -> dict[str, Any]:
    return dict(predicted=math.nan, feasible=False, note=note, tp=None, pp=None,
                batch_size=None)


def _predict_serving(run: pd.Series, catalog: Any) -> dict[str, Any]:
    from planner import InferenceJob, search  # the engine; imported lazily

    fields = _serving_job_fields(run)
    try:
        job = InferenceJob(**fields)
    except ValueError as err:  # a row the engine refuses: blank, with its reason
        from pydantic import ValidationError

        return _blank(one_line(err) if isinstance(err, ValidationError) else str(err))
    rows = search(job, catalog, devices=[run["device"]])
    best, note = _select_serving(rows, run)
    if best is None:
        return _blank(note)
    predicted = serving_metric(best, metric=run["metric"], mode=run["mode"],
                               n_devices=int(run["n_devices"]), statistic=run["statistic"])
    return dict(predicted=predicted, feasible=not note, note=note, tp=int(best["tp"]),
                pp=int(best["pp"]), batch_size=int(best["batch_size"]))


def serving_backtest(*, catalog: Any = None, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predict every curated published serving number (planner/data/serving_runs.csv) with
    `planner.search(InferenceJob(...), devices=[device])` and compare.

    One row per published number: run_id, family, model, device, n_devices, the layout the
    engine used (tp, pp, batch_size per replica), mode, precision, prompt_len, output_len,
    metric, statistic, published, predicted, signed_error_frac = predicted / published − 1
    (the same convention for times: +10 % on ttft_s means the engine predicts a 10 % longer
    time), abs_error_frac, confidence, feasible, note (why a prediction is blank, or the
    engine's reason when it calls the published layout infeasible), source.
    """
    runs = load_serving_runs() if runs is None else runs
    records = _predicted_records(runs, _SERVING_CARRIED, _predict_serving, catalog)
    df = pd.DataFrame.from_records(records, columns=[c for c in SERVING_COLUMNS
                                                     if c not in ("signed_error_frac",
                                                                  "abs_error_frac")])
    df["predicted"] = df["predicted"].astype(float)
    df["published"] = df["published"].astype(float)
    df["signed_error_frac"] = df["predicted"] / df["published"] - 1.0
    df["abs_error_frac"] = df["signed_error_frac"].abs()
    return df[SERVING_COLUMNS]


POWER_DATA_FILE = "serving_power_runs.csv"


def power_check(*, catalog: Any = None, options: Any = None) -> pd.DataFrame:
    """The device draw of P16a (idle + (TDP − idle) · power_frac, without the host's share)
    against the average GPU power ML.ENERGY measured while serving with vLLM at batch 64-128
    (`planner/data/serving_power_runs.csv`, curated from measured_runs_2026.csv): a check of
    the power fraction (A8), independent of the time model.

    Columns: run_id, model, device, n_devices, batch_size, measured_w_per_device,
    predicted_w_per_device, signed_error_frac, source.
    """
    from planner.plan.cost import CostOptions, device_power_w

    if catalog is None:
        from planner.hardware.catalog import load_catalog

        catalog = load_catalog()
    options = options or CostOptions()
    path = resources.files("planner").joinpath("data", POWER_DATA_FILE)
    with path.open(encoding="utf-8") as f:
        runs = pd.read_csv(f)
    predicted = []
    for device_id in runs["device"]:
        d = catalog.get(device_id)
        tdp = float(d.tdp_w) if d.tdp_w else math.nan
        idle = float(d.idle_power_w) if d.idle_power_w else math.nan
        predicted.append(float(device_power_w(tdp_w=tdp, idle_w=idle, system_w=tdp,
                                              power_frac=options.power_frac)))
    out = runs.assign(measured_w_per_device=runs["measured_w_all_devices"] / runs["n_devices"],
                      predicted_w_per_device=predicted)
    out["signed_error_frac"] = (out["predicted_w_per_device"] / out["measured_w_per_device"]
                                - 1.0)
    return out[["run_id", "model", "device", "n_devices", "batch_size", "measured_w_per_device",
                "predicted_w_per_device", "signed_error_frac", "source"]]
