"""Property-based fuzzing of the input boundary (issue 13, "Bad input never gets through").

Every public entry point either refuses bad input with one clean line naming the field (an
InputError / ValueError, or a pydantic ValidationError shown through `planner.errors.one_line`)
or returns a result that satisfies the invariants: a feasible plan has at least one (whole)
device, a finite time above zero and a cost and energy that are not negative or infinite (NaN
only where no price or TDP is known); a layer table holds finite, non-negative numbers. Never a
TypeError, KeyError, AttributeError, OverflowError, ZeroDivisionError or RecursionError.

This module: API constructors (TrainingJob, InferenceJob, CostOptions, ModelSpec, layer_table,
workload presets, TrainingJob.from_epochs, rank/search arguments), Hugging Face configs,
catalog TOML files (devices and [[kernels]] tables) and CSV cells. The CLI is in
test_fuzz_cli.py, the Streamlit app in test_fuzz_app.py. Each bug the fuzzing found is kept as
an @example and as a plain regression test at the end of the module that found it.

Deterministic in CI (derandomize=True, no example database). The default budget is
PLANNER_FUZZ_EXAMPLES=60 examples per property: the three modules take about 75 s on two
cores. Run more with e.g.

    PLANNER_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz.py

and set PLANNER_FUZZ_SEED=<n> as well to explore other examples than CI's. The examples drawn
and the refusals met are listed with `--hypothesis-show-statistics`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import re
import tomllib
import unicodedata
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import (
    HealthCheck,
    currently_in_test_context,
    event,
    example,
    given,
    seed,
    settings,
)
from hypothesis import strategies as st
from pydantic import ValidationError

import planner
from planner.errors import one_line
from planner.hardware.catalog import CATALOG_DIR

FUZZ_EXAMPLES = int(os.environ.get("PLANNER_FUZZ_EXAMPLES", "60"))
FUZZ_SEED = int(os.environ.get("PLANNER_FUZZ_SEED", "0"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=not FUZZ_SEED,
                database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def fuzz(test):
    """The suite's settings (and PLANNER_FUZZ_SEED, when set, instead of derandomize)."""
    return seed(FUZZ_SEED)(FUZZ(test)) if FUZZ_SEED else FUZZ(test)


# A few devices of different kinds (one without a TDP: energy NaN) keep each rank() fast.
DEVICES = ["nvidia_h100_sxm", "google_tpu_v5p", "amd_mi300x"]
SMALL_MODELS = ["gpt2", "bert-base-cased", "llama-2-7b", "mixtral-8x7b", "opt-175b"]
DECODERS = ["gpt2", "llama-2-7b", "mixtral-8x7b", "qwen2-7b"]

# Values that have broken parsers before: zeros, signs, NaN and infinities, numbers past a
# float or an int64, subnormals, bools and the strings that look like them, containers.
NASTY: list[Any] = [
    0, -1, -0.0, 0.5, 1.5, 7, float("nan"), float("inf"), float("-inf"), 1e300, -1e300,
    1e-320, 2**31, 2**53 + 1, 2**63, 2**64, -(2**64), 10**400, Fraction(10**400, 3),
    np.int64(8), np.float64("nan"), np.array([1, 2]), True, False, "false", "true", "1", "0",
    "", " ", "nan", "1e9", "８", None, [], [1], (1, 2), {}, {"a": 1}, b"1", 1j,
]


def nasty() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(NASTY), st.integers(), st.floats(), st.text(max_size=6))


def maybe_nasty(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, often a nasty one."""
    return st.one_of(valid, valid, nasty())


# Unknown keys a mutation adds, and how a refusal names them ('' is shown quoted).
UNKNOWN_KEYS = {"colour", "nTokens", "", "n_tokens "}
UNKNOWN = (UNKNOWN_KEYS - {""}) | {"''"}


@st.composite
def mutated(draw, base: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]],
            max_changes: int = 3) -> dict[str, Any]:
    """`base` with up to `max_changes` fields set to a drawn value (valid or nasty), deleted,
    or an unknown field added."""
    out = dict(base)
    for _ in range(draw(st.integers(0, max_changes))):
        key = draw(st.sampled_from([*fields, "_unknown"]))
        action = draw(st.sampled_from(["set", "set", "set", "nasty", "delete"]))
        if key == "_unknown":
            out[draw(st.sampled_from(sorted(UNKNOWN_KEYS)))] = 1
        elif action == "delete":
            out.pop(key, None)
        else:
            out[key] = draw(nasty() if action == "nasty" else fields[key])
    return out


# ---- the invariants -------------------------------------------------------------------------
def refusal_line(err: BaseException) -> str:
    """The one line a user sees for a refused input (what the CLI prints and the app shows)."""
    assert isinstance(err, ValueError), f"{type(err).__name__}: {err}"
    text = one_line(err) if isinstance(err, ValidationError) else str(err)
    if currently_in_test_context():  # --hypothesis-show-statistics lists the refusals
        event("refused: " + text.split("fuzz.toml: ")[-1][:60])
    assert text and len(text.splitlines()) == 1 and "\r" not in text, repr(text)
    assert "Value error," not in text and "Traceback" not in text, text
    assert "set_int_max_str_digits" not in text, text  # Python's own words, not ours
    assert len(text) < 2000, text[:300]
    return text


def assert_names_a_field(err: BaseException, fields: set[str]) -> None:
    """The refusal starts with 'field:' (a dotted path's first part is one of `fields`)."""
    text = refusal_line(err)
    head = text.split(": ", 1)[0]
    assert head.split(".")[0] in fields or head.split("[")[0] in fields, text


def assert_plan_invariants(df: pd.DataFrame, job: Any) -> None:
    """What every row of search() and rank() promises."""
    ok = df[df["feasible"].to_numpy(bool)]
    n = ok["n_devices"].to_numpy(float)
    assert (n >= 1).all() and (n == np.round(n)).all(), n
    t = ok["time_s"].to_numpy(float)
    assert np.isfinite(t).all() and (t > 0).all(), t
    for col in ("cost_usd", "energy_j"):
        v = ok[col].to_numpy(float)
        assert not np.isinf(v).any() and not (v < 0).any(), (col, v)
    if isinstance(job, planner.TrainingJob):
        assert (ok["tp"] * ok["pp"] * ok["dp"] == ok["n_devices"]).all()
        if job.n_devices is not None:
            assert (ok["n_devices"] == job.n_devices).all()
        if job.deadline_s is not None:
            assert (t <= job.deadline_s * (1 + 1e-9)).all()
    else:
        replica = ok["tp"] * ok["pp"] * ok["ep"]
        assert (replica * ok["replicas"] + ok["prefill_devices"] == ok["n_devices"]).all()
        # the targets hold at the job's percentile; p99 is never below p50
        if job.ttft_s is not None:
            assert (ok["ttft_at_percentile_s"] <= job.ttft_s * (1 + 1e-9)).all()
        if job.tpot_s is not None:
            assert (ok["tpot_at_percentile_s"] <= job.tpot_s * (1 + 1e-9)).all()
        assert (ok["ttft_p99_s"] >= ok["ttft_p50_s"] * (1 - 1e-12)).all()
        tpot = ok[ok["tpot_p50_s"].notna()]
        assert (tpot["tpot_p99_s"] >= tpot["tpot_p50_s"] * (1 - 1e-12)).all()
    if job.tp is not None:
        assert (ok["tp"] == job.tp).all()
    for reason in df.loc[~df["feasible"].to_numpy(bool), "reason"]:
        assert isinstance(reason, str) and reason and "\n" not in reason, repr(reason)


def check_plans(job: Any, *, cost: Any = None, catalog: Any = None,
                devices: list[str] | None = None) -> None:
    devices = devices or DEVICES
    assert_plan_invariants(planner.search(job, catalog, devices=devices, cost=cost), job)
    ranked = planner.rank(job, catalog, devices=devices, cost=cost)
    assert len(ranked) == len(devices)
    assert_plan_invariants(ranked, job)


def assert_layer_table_ok(table: pd.DataFrame, spec: planner.ModelSpec, mode: str) -> None:
    numeric = table.select_dtypes("number").drop(columns=["block"])
    values = numeric.drop(columns=["decode_flops"], errors="ignore").to_numpy(float)
    assert np.isfinite(values).all() and (values >= 0).all()
    if "decode_flops" in numeric:  # NaN only for an encoder, which never decodes
        decode = numeric["decode_flops"].to_numpy(float)
        if spec.causal:
            assert np.isfinite(decode).all() and (decode >= 0).all()
        else:
            assert np.isnan(decode).all()
    assert table["n_params"].sum() == pytest.approx(spec.n_params, rel=1e-9)
    assert (table["kind"] != "loss").all() if mode == "inference" else True


def assert_spec_ok(spec: planner.ModelSpec) -> None:
    assert isinstance(spec.n_params, int) and 0 < spec.n_params < 10**16
    assert 0 < spec.n_active_params <= spec.n_params
    seq_len = min(128, spec.max_seq_len)
    for mode in ("train", "inference"):
        table = planner.layer_table(spec, seq_len=seq_len, batch_size=1, mode=mode)
        assert_layer_table_ok(table, spec, mode)


# ---- 1. API constructors --------------------------------------------------------------------
PRECISIONS = list(planner.PRECISION_POLICIES)
OVERRIDE_KEYS = ["compute_frac", "memory_bw_frac", "network_frac", "gemm_scale",
                 "attention_scale", "memory_scale", "network_scale", "op_overhead_s",
                 "collective_latency_s"]
FRACTION = st.one_of(st.floats(1e-6, 1.0), st.sampled_from([1e-6, 1.0, 0.5]))
OVERRIDES = st.dictionaries(st.sampled_from(OVERRIDE_KEYS),
                            maybe_nasty(st.floats(0.0, 2.0)), max_size=3)
TINY_SPEC = planner.model("gpt2").with_(name="tiny", n_layers=2, d_model=64, n_heads=4,
                                        d_ff=256, vocab_size=1000, max_seq_len=256)

JOB_COMMON: dict[str, st.SearchStrategy[Any]] = {
    "precision": st.sampled_from([*PRECISIONS, "BF16", "bf32"]),
    "compute_frac": st.one_of(st.none(), FRACTION),
    "efficiency_overrides": OVERRIDES,
    "usable_memory_frac": FRACTION,
    "max_devices": st.one_of(st.integers(1, 64), st.just(10**7)),
    "name": st.text(max_size=8),
    "model": st.one_of(st.sampled_from([*SMALL_MODELS, "GPT2", "gpt-2"]), st.just(TINY_SPEC)),
}
TRAIN_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    **JOB_COMMON,
    "n_tokens": st.one_of(st.floats(1.0, 1e15), st.just(1e18)),
    "seq_len": st.sampled_from([1, 7, 128, 512, 10**8]),
    "global_batch_size": st.one_of(st.integers(1, 4096), st.just(10**9)),
    "optimizer": st.sampled_from(["adamw", "adam", "sgd", "SGD", "lion"]),
    "fused_swiglu": st.booleans(),
    "grad_reduce_dtype": st.sampled_from(["fp32", "bf16", "fp16", "FP32", "fp8"]),
    "n_devices": st.one_of(st.none(), st.integers(1, 64), st.just(10**7)),
    "deadline_s": st.one_of(st.none(), st.floats(1.0, 1e9), st.sampled_from([1e-300, 1e300])),
    "tp": st.one_of(st.none(), st.sampled_from([1, 2, 3, 4, 8])),
    "pp": st.one_of(st.none(), st.sampled_from([1, 2, 4, 12])),
    "micro_batch_size": st.one_of(st.none(), st.integers(1, 64), st.just(10**9)),
    "zero_stage": st.one_of(st.none(), st.integers(0, 3)),
    "recompute": st.sampled_from([None, "none", "selective", "full"]),
    "flash_attention": st.booleans(),
    "causal_attention": st.sampled_from(["full", "half"]),
    "goodput_frac": FRACTION,
}
SERVE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    **JOB_COMMON,
    "model": st.sampled_from([*DECODERS, "bert-base-cased"]),
    "prompt_len": st.one_of(st.integers(1, 600), st.just(10**8)),
    "output_len": st.one_of(st.integers(1, 400), st.just(10**8)),
    "kv_cache_precision": st.sampled_from([None, "fp8", "bf16", "int4", "fp7"]),
    "requests_per_s": st.one_of(st.none(), st.floats(1e-9, 1e4),
                                st.sampled_from([1e-300, 1e300])),
    "concurrent_requests": st.one_of(st.none(), st.integers(1, 1000), st.just(10**9)),
    "ttft_s": st.one_of(st.none(), st.floats(1e-4, 10.0), st.sampled_from([1e-300, 1e300])),
    "tpot_s": st.one_of(st.none(), st.floats(1e-4, 1.0), st.sampled_from([1e-300, 1e300])),
    "tp": st.one_of(st.none(), st.sampled_from([1, 2, 3, 4, 8, 10**7])),
    "batch_size": st.one_of(st.none(), st.integers(1, 256), st.just(10**9)),
    "max_batch_size": st.one_of(st.integers(1, 512), st.just(10**9)),
}
TRAIN_NAMES = set(planner.TrainingJob.model_fields)
SERVE_NAMES = set(planner.InferenceJob.model_fields)


@st.composite
def training_kwargs(draw) -> dict[str, Any]:
    seq_len = draw(st.sampled_from([16, 128, 512]))
    batch = draw(st.integers(1, 1024))
    base = dict(model=draw(st.sampled_from(SMALL_MODELS)), seq_len=seq_len,
                global_batch_size=batch, n_tokens=float(seq_len * batch
                                                        * draw(st.integers(1, 10**6))),
                max_devices=draw(st.sampled_from([8, 64, 16384])))
    return draw(mutated(base, TRAIN_FIELDS, max_changes=4))


@st.composite
def serving_kwargs(draw) -> dict[str, Any]:
    base = dict(model=draw(st.sampled_from(DECODERS)), prompt_len=draw(st.integers(1, 512)),
                output_len=draw(st.integers(1, 256)))
    return draw(mutated(base, SERVE_FIELDS, max_changes=4))


def _build(make, kwargs: dict[str, Any], names: set[str]) -> Any:
    try:
        return make(**kwargs)
    except Exception as err:
        assert_names_a_field(err, names | UNKNOWN)
        return None


@fuzz
@given(training_kwargs())
@example(dict(model="gpt2", n_tokens=10**400, seq_len=128, global_batch_size=8))
@example(dict(model="gpt2", n_tokens=1e9, seq_len=128, global_batch_size=8,
              efficiency_overrides={"gemm_scale": Fraction(10**400, 3)}))
@example(dict(model="gpt2", n_tokens=1e9, seq_len=128, global_batch_size=10**5000))
def test_training_job(kwargs: dict[str, Any]) -> None:
    job = _build(planner.TrainingJob, kwargs, TRAIN_NAMES)
    if job is not None:
        assert job.n_steps >= 1 and job.n_tokens >= job.tokens_per_step
        check_plans(job)


@fuzz
@given(serving_kwargs())
@example(dict(model="llama-2-7b", prompt_len=10**8, output_len=10**8))  # KV cache of 2e8
def test_inference_job(kwargs: dict[str, Any]) -> None:
    job = _build(planner.InferenceJob, kwargs, SERVE_NAMES)
    if job is not None:
        check_plans(job)


@fuzz
@given(st.sampled_from([*planner.list_workloads(), "LLAMA-2-7B-BATCH1", "nope", ""]),
       mutated({}, {k: TRAIN_FIELDS[k] for k in ("n_devices", "deadline_s", "precision",
                                                 "max_devices", "goodput_frac")}
               | {k: SERVE_FIELDS[k] for k in ("requests_per_s", "prompt_len", "tp")},
               max_changes=2))
def test_workload_presets(name: str, changes: dict[str, Any]) -> None:
    job = _build(lambda **kw: planner.workload(name, **kw), changes,
                 TRAIN_NAMES | SERVE_NAMES | {"workload"})
    if job is not None:
        check_plans(job)


@fuzz
@given(mutated(dict(n_samples=14041, epochs=3, seq_len=128, global_batch_size=8),
               dict(n_samples=st.integers(1, 10**12), epochs=st.integers(1, 10**6),
                    seq_len=st.sampled_from([1, 128, 512]),
                    global_batch_size=st.integers(1, 10**9)), max_changes=3))
def test_training_from_epochs(kwargs: dict[str, Any]) -> None:
    def make(**kw: Any) -> planner.TrainingJob:
        return planner.TrainingJob.from_epochs("bert-base-cased", n_devices=1, **kw)

    try:
        job = make(**kwargs)
    except TypeError as err:  # a missing or unknown keyword argument: Python's own refusal
        assert "argument" in str(err), str(err)
        return
    except Exception as err:
        assert_names_a_field(err, TRAIN_NAMES | {"n_samples", "epochs"} | UNKNOWN)
        return
    check_plans(job)


COST_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "basis": st.sampled_from(["cloud", "ownership", "rent"]),
    "provider": st.sampled_from([None, "AWS", "aws", "Lambda", "nobody", ""]),
    "contract": st.sampled_from([None, "on-demand", "reserved", "spot", "capacity-block",
                                 "list"]),
    "usd_per_device_hour": st.one_of(st.none(), st.floats(1e-6, 1e4)),
    "purchase_usd": st.one_of(st.none(), st.floats(1e-3, 1e8)),
    "usd_per_kwh": st.floats(0.0, 10.0),
    "pue": st.floats(1.0, 3.0),
    "lifetime_years": st.floats(1e-3, 50.0),
    "ownership_utilization_frac": FRACTION,
    "power_frac": FRACTION,
}
SMALL_TRAIN = planner.TrainingJob(model="gpt2", n_tokens=1e9, seq_len=128, global_batch_size=8,
                                  max_devices=8)
SMALL_SERVE = planner.InferenceJob(model="gpt2", prompt_len=128, output_len=64,
                                   requests_per_s=2.0)


@fuzz
@given(mutated({}, COST_FIELDS, max_changes=5), st.sampled_from(["time", "cost", "energy"]))
@example({"pue": 10**400}, "time")
def test_cost_options(kwargs: dict[str, Any], objective: str) -> None:
    cost = _build(planner.CostOptions, kwargs, set(planner.CostOptions.model_fields) | UNKNOWN)
    if cost is None:
        return
    for job in (SMALL_TRAIN, SMALL_SERVE):
        check_plans(job, cost=cost)
        assert_plan_invariants(planner.rank(job, devices=DEVICES, cost=cost,
                                            objective=objective), job)


RANK_ARGS: dict[str, st.SearchStrategy[Any]] = {
    "devices": st.sampled_from([DEVICES, "nvidia_h100_sxm", ["nvidia_h100_sxmm"], [],
                                ["nvidia_t4", "nvidia_t4"], [DEVICES], "a,b"]),
    "kinds": st.sampled_from([None, ["gpu"], "gpu,tpu", ["npu"], [], "", ["GPU"]]),
    "objective": st.sampled_from(["time", "cost", "energy", "speed", "Time"]),
    "cost": st.sampled_from([None, planner.CostOptions(basis="ownership")]),
    "catalog": st.sampled_from([None, planner.load_catalog()]),
}


@fuzz
@given(mutated({"devices": DEVICES}, RANK_ARGS, max_changes=3),
       st.sampled_from([SMALL_TRAIN, SMALL_SERVE]))
def test_rank_and_search_arguments(kwargs: dict[str, Any], job: Any) -> None:
    names = set(RANK_ARGS) | {"job", "device", "kind", "kinds"}
    for call in (planner.rank, planner.search):
        args = {k: v for k, v in kwargs.items() if call is planner.rank or k != "objective"}
        try:
            df = call(job, **args)
        except TypeError as err:  # an unknown keyword argument: Python's own refusal
            assert "unexpected keyword argument" in str(err)
            continue
        except Exception as err:
            refusal_line(err)
            assert re.match(r"(unknown (device|kind)|\w+:)", str(err)), str(err)
            assert any(name in str(err) for name in names if name), str(err)
            continue
        assert_plan_invariants(df, job)


SPEC_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": st.text(max_size=6),
    "arch": st.sampled_from(["encoder", "decoder", "seq2seq"]),
    "n_layers": st.integers(1, 48),
    "d_model": st.sampled_from([64, 96, 768, 1000, 4096]),
    "n_heads": st.sampled_from([1, 3, 4, 12, 32]),
    "n_kv_heads": st.sampled_from([None, 1, 2, 4, 5]),
    "head_dim": st.sampled_from([None, 16, 64, 128]),
    "d_ff": st.integers(1, 20000),
    "vocab_size": st.integers(1, 200000),
    "max_seq_len": st.sampled_from([1, 64, 128, 2048, 10**8]),
    "norm": st.sampled_from(["layernorm", "rmsnorm", "batchnorm"]),
    "norm_position": st.sampled_from(["pre", "post"]),
    "mlp_act": st.sampled_from(["gelu", "relu", "silu", "tanh"]),
    "gated_mlp": st.booleans(),
    "position": st.sampled_from(["learned", "rotary", "none", "alibi"]),
    "position_offset": st.integers(0, 4),
    "n_token_types": st.integers(0, 3),
    "tied_embeddings": st.booleans(),
    "qkv_bias": st.booleans(),
    "attn_out_bias": st.booleans(),
    "mlp_bias": st.booleans(),
    "embedding_norm": st.booleans(),
    "final_norm": st.booleans(),
    "lm_head": st.booleans(),
    "pooler": st.booleans(),
    "n_experts": st.sampled_from([1, 2, 8, 64]),
    "experts_top_k": st.sampled_from([1, 2, 8]),
    "n_shared_experts": st.sampled_from([0, 1, 2]),
    "dropout": st.floats(0.0, 0.99),
    "source_url": st.text(max_size=5),
}
SPEC_NAMES = set(planner.ModelSpec.model_fields) | {"n_params"}


@fuzz
@given(st.sampled_from(["gpt2", "bert-base-cased", "llama-2-7b", "mixtral-8x7b", "opt-175b"]),
       mutated({}, SPEC_FIELDS, max_changes=4), st.booleans())
@example("gpt2", {"n_layers": 10**5, "d_model": 10**6, "n_heads": 1}, False)
@example("gpt2", {"vocab_size": 2**64}, True)
def test_model_spec(preset: str, changes: dict[str, Any], via_with: bool) -> None:
    base = planner.model(preset)
    try:
        if via_with:
            spec = base.with_(**changes)
        else:
            spec = planner.ModelSpec(**{**base.model_dump(), **changes})
    except Exception as err:
        assert_names_a_field(err, SPEC_NAMES | UNKNOWN)
        return
    assert_spec_ok(spec)


LAYER_ARGS: dict[str, st.SearchStrategy[Any]] = {
    "seq_len": st.integers(1, 2048),
    "batch_size": st.integers(1, 64),
    "mode": st.sampled_from(["train", "inference", "serve"]),
    "precision": st.sampled_from([*PRECISIONS, "bf17"]),
    "optimizer": st.sampled_from(["adamw", "sgd", "adam", "adagrad"]),
    "recompute": st.sampled_from(["none", "selective", "full", "partial"]),
    "flash_attention": st.booleans(),
    "fused_swiglu": st.booleans(),
    "causal_attention": st.sampled_from(["full", "half", "quarter"]),
    "kv_cache_dtype": st.sampled_from([None, "fp8", "bf16", "int4", "fp3"]),
}
LAYER_NAMES = set(LAYER_ARGS) | {"model"} | UNKNOWN


@fuzz
@given(st.one_of(st.sampled_from(SMALL_MODELS), st.just(TINY_SPEC)),
       mutated({"seq_len": 128, "batch_size": 2}, LAYER_ARGS, max_changes=4))
@example("gpt2", {"seq_len": 10**400, "batch_size": 1})
@example("gpt2", {"seq_len": 128, "batch_size": Fraction(10**400, 3)})
def test_layer_table(model: Any, kwargs: dict[str, Any]) -> None:
    spec = planner.model(model)
    try:
        table = planner.layer_table(model, **kwargs)
    except TypeError as err:  # a missing or unknown keyword argument: Python's own refusal
        assert "argument" in str(err), str(err)
        return
    except Exception as err:
        assert_names_a_field(err, LAYER_NAMES)
        return
    assert_layer_table_ok(table, spec, kwargs.get("mode", "train"))


# ---- 2. Hugging Face configs ----------------------------------------------------------------
# Real config.json files, as published (keys the planner ignores included).
HF_CONFIGS: dict[str, dict[str, Any]] = {
    "llama": {  # meta-llama/Llama-2-7b-hf
        "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
        "intermediate_size": 11008, "max_position_embeddings": 4096, "model_type": "llama",
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
        "tie_word_embeddings": False, "torch_dtype": "float16",
        "transformers_version": "4.31.0.dev0", "use_cache": True, "vocab_size": 32000},
    "gpt2": {  # openai-community/gpt2
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
        "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
        "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
        "resid_pdrop": 0.1, "summary_activation": None, "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
        "vocab_size": 50257},
    "bert": {  # google-bert/bert-base-cased
        "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
        "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
        "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
        "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
        "position_embedding_type": "absolute", "transformers_version": "4.6.0.dev0",
        "type_vocab_size": 2, "use_cache": True, "vocab_size": 28996},
    "opt": {  # facebook/opt-125m
        "_name_or_path": "facebook/opt-125m", "activation_dropout": 0.0,
        "activation_function": "relu", "architectures": ["OPTForCausalLM"],
        "attention_dropout": 0.0, "bos_token_id": 2, "do_layer_norm_before": True,
        "dropout": 0.1, "eos_token_id": 2, "ffn_dim": 3072, "hidden_size": 768,
        "init_std": 0.02, "layerdrop": 0.0, "max_position_embeddings": 2048,
        "model_type": "opt", "num_attention_heads": 12, "num_hidden_layers": 12,
        "pad_token_id": 1, "prefix": "</s>", "torch_dtype": "float16",
        "transformers_version": "4.21.0.dev0", "use_cache": True, "vocab_size": 50272,
        "word_embed_proj_dim": 768},
    "mixtral": {  # mistralai/Mixtral-8x7B-v0.1
        "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
        "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096,
        "initializer_range": 0.02, "intermediate_size": 14336,
        "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32,
        "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "num_local_experts": 8, "output_router_logits": False, "rms_norm_eps": 1e-05,
        "rope_theta": 1e6, "router_aux_loss_coef": 0.02, "sliding_window": None,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.36.0.dev0", "use_cache": True, "vocab_size": 32000},
    "qwen2": {  # Qwen/Qwen2-0.5B
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151643, "hidden_act": "silu",
        "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
        "max_position_embeddings": 131072, "max_window_layers": 24, "model_type": "qwen2",
        "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072,
        "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "transformers_version": "4.40.1", "use_cache": True, "use_sliding_window": False,
        "vocab_size": 151936},
}
# Keys some model types read that the configs above do not all hold.
HF_EXTRA_KEYS = ["head_dim", "attention_bias", "mlp_bias", "n_inner", "enable_bias",
                 "word_embed_proj_dim", "do_layer_norm_before", "num_local_experts",
                 "num_experts_per_tok", "num_key_value_heads", "hidden_act",
                 "activation_function", "type_vocab_size", "tie_word_embeddings", "model_type",
                 "_name_or_path"]
HF_KEYS = sorted({k for cfg in HF_CONFIGS.values() for k in cfg} | set(HF_EXTRA_KEYS))
HF_VALUES = st.one_of(
    st.integers(1, 8192), st.sampled_from([64, 96, 128, 3, 2, 1]),
    st.sampled_from(["silu", "gelu", "relu", "gelu_new", "swish", "tanh", "llama", "gpt2",
                     "bert", "opt", "mixtral", "qwen2", "t5", "LLAMA"]),
    st.booleans(), st.floats(0.0, 1.0), nasty())


@st.composite
def hf_configs(draw) -> dict[str, Any]:
    cfg = dict(HF_CONFIGS[draw(st.sampled_from(sorted(HF_CONFIGS)))])
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(HF_KEYS))
        if draw(st.integers(0, 4)) == 0:
            cfg.pop(key, None)
        else:
            cfg[key] = draw(HF_VALUES)
    return cfg


def _as_json(cfg: dict[str, Any]) -> str | None:
    try:
        return json.dumps(cfg)
    except (TypeError, ValueError):  # bytes, complex, arrays: not JSON
        return None


@fuzz
@given(cfg=hf_configs(), how=st.sampled_from(["dict", "json", "file"]))
@example(cfg={**HF_CONFIGS["llama"], "hidden_size": 10**400}, how="dict")
@example(cfg={**HF_CONFIGS["gpt2"], "resid_pdrop": Fraction(10**400, 3)}, how="dict")
def test_hf_config(cfg: dict[str, Any], how: str, tmp_path_factory) -> None:
    source: Any = cfg
    text = _as_json(cfg)
    if how != "dict" and text is not None:
        source = text
        if how == "file":
            source = tmp_path_factory.mktemp("hf") / "config.json"
            source.write_text(text, encoding="utf-8")
    try:
        spec = planner.model_from_hf_config(source)
    except Exception as err:
        allowed = set(HF_KEYS) | {"model_type", "config", "config.json", "n_params"}
        assert_names_a_field(err, allowed)
        return
    assert_spec_ok(spec)


# ---- 3. catalog TOML ------------------------------------------------------------------------
def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, DEL aside)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) \
            + "}"
    raise TypeError(type(value))


def toml_document(devices: list[dict[str, Any]], kernels: list[dict[str, Any]]) -> str:
    out = []
    for table, entries in (("device", devices), ("kernels", kernels)):
        for entry in entries:
            out.append(f"[[{table}]]")
            out += [f"{toml_key(k)} = {toml_value(v)}" for k, v in entry.items()]
    return "\n".join(out) + "\n"


TODAY = dt.date.today()
FUZZ_DEVICE = {
    "id": "acme_fuzz", "vendor": "Acme", "name": "Fuzz 1", "kind": "gpu", "launch_year": 2025,
    "memory_bytes": "96 GB", "memory_bw_bytes_per_s": "3 TB/s", "scaleup_link": "AcmeLink",
    "scaleup_bw_bytes_per_s": "400 GB/s", "scaleup_domain_size": 8,
    "scaleout_bw_bytes_per_s": "50 GB/s", "tdp_w": 700, "checked_on": "2026-01-15",
    "sources": ["tests/test_fuzz.py"],
    "peak_flops_per_s": {"bf16": "500 TFLOP/s", "fp8": "1000 TFLOP/s"},
    "prices": [{"kind": "cloud", "provider": "Acme Cloud", "basis": "test",
                "contract": "on-demand", "usd_per_hour": 2.5, "date": "2026-01",
                "source": "tests"},
               {"kind": "purchase", "provider": "Acme", "basis": "list", "contract": "list",
                "usd": 30000.0, "date": "2025", "source": "tests"}],
}
QUANTITY_TEXT = st.one_of(
    st.sampled_from(["96 GB", "0 GB", "-1 GB", "1e999 GB", "NaN GB", "inf GB", "1e-400 GB",
                     "96GB", " 96 GB ", "96 gb", "96 GiB/s", "3 TB/s", "50 Gb/s", "500 TFLOP/s",
                     "1_0 W", "1e308 TB", "9" * 400 + " B", "1.5.2 GB", "", "GB", "٣ GB"]),
    st.builds(lambda n, u: f"{n} {u}", st.floats(allow_nan=True, allow_infinity=True),
              st.sampled_from(["B", "GB", "TB/s", "TFLOP/s", "W", "kW", "Gb/s", "PFLOP/s"])))
TOML_SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, -1, 1, 2**63 - 1, -(2**63)]),
    st.floats(), st.sampled_from([float("nan"), float("inf"), 1e300, 1e-320, -0.0]),
    st.booleans(), st.text(max_size=8), QUANTITY_TEXT,
    st.sampled_from(["2026-01-15", "2026-02-30", "1989-12-31", "2025", "2025-13",
                     (TODAY + dt.timedelta(days=1)).isoformat(),
                     (TODAY + dt.timedelta(days=400)).isoformat(), "yesterday",
                     "H100\r\n=cmd", "tab\there", "\u202eevil", "\x00", "=1+1", "a" * 70]),
    st.sampled_from([TODAY, TODAY + dt.timedelta(days=1), dt.date(1900, 1, 1)]),
)
TOML_VALUES = st.one_of(TOML_SCALARS, st.lists(TOML_SCALARS, max_size=3),
                        st.dictionaries(st.sampled_from(["bf16", "fp8", "bf17", "x", ""]),
                                        TOML_SCALARS, max_size=2))


def quantity(*units: str) -> st.SearchStrategy[Any]:
    """A positive SI number, or a string with one of `units`."""
    return st.one_of(st.floats(1e-3, 1e20), st.integers(1, 10**15),
                     st.builds(lambda x, u: f"{x:g} {u}", st.floats(1e-3, 1e6),
                               st.sampled_from(units)))


BYTES, BYTES_PER_S = quantity("GB", "GiB", "TB"), quantity("TB/s", "GB/s", "Gb/s")
FLOPS_PER_S, WATTS = quantity("TFLOP/s", "PFLOP/s", "TOP/s"), quantity("W", "kW")
DEVICE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["acme_fuzz", "nvidia_t4", "Acme-Fuzz", "a" * 65, "acme fuzz", ""]),
    "vendor": st.text(max_size=6), "name": st.text(max_size=6),
    "kind": st.sampled_from(["gpu", "tpu", "fpga", "asic", "other", "npu", "GPU"]),
    "launch_year": st.integers(1980, 2110),
    "memory_bytes": BYTES, "memory_bw_bytes_per_s": BYTES_PER_S,
    "scaleup_link": st.text(max_size=6), "scaleup_bw_bytes_per_s": BYTES_PER_S,
    "scaleup_domain_size": st.integers(0, 100000), "scaleout_bw_bytes_per_s": BYTES_PER_S,
    "tdp_w": WATTS,
    "checked_on": st.sampled_from(["2026-01-15", TODAY.isoformat(), "2026-1-5"]),
    "sources": st.lists(st.text(max_size=6), max_size=2),
    "peak_flops_per_s": st.dictionaries(st.sampled_from(["bf16", "fp16", "fp8", "fp32",
                                                         "int8", "tf32"]), FLOPS_PER_S,
                                        max_size=3),
    "sparse_peak_flops_per_s": st.dictionaries(st.sampled_from(["bf16", "fp8"]), FLOPS_PER_S,
                                               max_size=2),
    "price_note": st.text(max_size=6), "notes": st.text(max_size=6),
    "unconfirmed": st.lists(st.sampled_from(["tdp_w", "peak_flops_per_s.bf16",
                                             "peak_flops_per_s.int4", "colour"]), max_size=2),
    "prices": st.just([]),
    "colour": st.just("red"),
}
PRICE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "kind": st.sampled_from(["cloud", "purchase", "lease"]),
    "provider": st.text(max_size=6), "basis": st.text(max_size=6),
    "contract": st.sampled_from(["on-demand", "reserved", "spot", "list", "street", "?"]),
    "usd_per_hour": st.floats(1e-3, 1e5), "usd": st.floats(1.0, 1e9),
    "date": st.sampled_from(["2026-01", "2025", TODAY.isoformat(), "2026-11-31"]),
    "source": st.text(max_size=6), "currency": st.just("EUR"),
}


_BUILTIN_KERNELS = tomllib.loads((CATALOG_DIR / "kernels.toml").read_text("utf-8"))["kernels"]


@st.composite
def catalog_files(draw) -> tuple[str, str]:
    """(device id, TOML text): the fuzz device (or a change to a built-in one) with fields
    mutated, and sometimes its own [[kernels]] table with numbers mutated."""
    override = draw(st.integers(0, 5)) == 0
    device: dict[str, Any] = ({"id": "nvidia_t4", "tdp_w": 70} if override
                              else json.loads(json.dumps(FUZZ_DEVICE)))
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.sampled_from(["device", "device", "peak", "price"]))
        action = draw(st.sampled_from(["valid", "valid", "valid", "nasty", "delete"]))
        if where == "device":
            key = draw(st.sampled_from(list(DEVICE_FIELDS)))
            target, valid = device, DEVICE_FIELDS[key]
        elif where == "peak" and isinstance(device.get("peak_flops_per_s"), dict):
            key = draw(st.sampled_from(["bf16", "fp8", "fp32", "int8", "bf17"]))
            target, valid = device["peak_flops_per_s"], FLOPS_PER_S
        elif (where == "price" and isinstance(device.get("prices"), list) and device["prices"]
              and isinstance(device["prices"][0], dict)):
            key = draw(st.sampled_from(list(PRICE_FIELDS)))
            target, valid = device["prices"][0], PRICE_FIELDS[key]
        else:
            continue
        if action == "delete":
            target.pop(key, None)
        else:
            target[key] = draw(TOML_VALUES if action == "nasty" else valid)
    kernels = []
    device_id = device.get("id") if isinstance(device.get("id"), str) else "acme_fuzz"
    if draw(st.integers(0, 3)) == 0:
        entry = json.loads(json.dumps(_BUILTIN_KERNELS[0]))
        entry["devices"] = [device_id]
        table = draw(st.sampled_from(["gemm", "memory", "collectives"]))
        if table == "gemm":
            entry["gemm"][draw(st.sampled_from(["size", "bf16", "sustained_frac"]))] = draw(
                st.lists(st.floats(), min_size=1, max_size=7) | TOML_SCALARS)
        elif table == "memory":
            entry["memory"][draw(st.sampled_from(["size_bytes", "frac"]))] = draw(
                st.lists(st.floats(), min_size=5, max_size=5) | TOML_SCALARS)
        else:
            entry["collectives"]["scale_up"][draw(st.sampled_from(
                ["latency_s", "all_reduce", "all_gather", "send_recv"]))] = draw(TOML_SCALARS)
        kernels.append(entry)
    return device_id, toml_document([device], kernels)


@fuzz
@given(case=catalog_files())
@example(case=("acme_fuzz", toml_document([{**FUZZ_DEVICE, "memory_bytes": "1e999 GB"}], [])))
# these loaded: a peak whose GEMM rate underflowed to 0 FLOP/s, and a memory whose ratio in
# rank() overflowed (a RuntimeWarning printed on the CLI's stderr)
@example(case=("acme_fuzz", toml_document([{**FUZZ_DEVICE, "peak_flops_per_s": {
    "bf16": 1e-320}}], [])))
@example(case=("acme_fuzz", toml_document([{**FUZZ_DEVICE, "memory_bytes": 1e-320}], [])))
@example(case=("acme_fuzz", toml_document([FUZZ_DEVICE], [{  # a NaN size used to load
    **_BUILTIN_KERNELS[0], "devices": ["acme_fuzz"],
    "memory": {**_BUILTIN_KERNELS[0]["memory"], "size_bytes": [float("nan"), 1e6, 1e7, 1e8,
                                                               1e9]}}])))
def test_catalog_toml(case: tuple[str, str], tmp_path_factory) -> None:
    device_id, text = case
    path = tmp_path_factory.mktemp("catalog") / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    checked = planner.check_catalog_entries(path)  # a table of problems, never an exception
    for message in checked["message"].astype(str):
        assert len(message.splitlines()) <= 1, message
    try:
        catalog = planner.load_catalog(path)
    except Exception as err:
        assert path.name in refusal_line(err), str(err)
        return
    device = catalog.get(device_id)
    assert device.memory_bytes > 0 and math.isfinite(device.memory_bytes)
    # the kernel tables (the device's own, or the rule of its class) give finite rates
    if device.peak("bf16"):
        for size in (1, 512, 8192, 10**6):
            rate = planner.gemm_flops_per_s(device_id, size, size, size, catalog=catalog)
            assert math.isfinite(rate) and rate > 0, (size, rate)
    if device.memory_bw_bytes_per_s:
        for n_bytes in (1, 1e6, 1e12):
            rate = planner.memory_bytes_per_s(device_id, n_bytes, catalog=catalog)
            assert math.isfinite(rate) and rate > 0, (n_bytes, rate)
    for job in (SMALL_TRAIN, SMALL_SERVE):
        check_plans(job, catalog=catalog, devices=[device_id, "nvidia_h100_sxm"])
        check_plans(job, catalog=catalog, devices=[device_id],
                    cost=planner.CostOptions(basis="ownership"))


# ---- 5. CSV cells ---------------------------------------------------------------------------
TRICKY = ("=+-@'\"\t\r\n ,;|\u00a0\u200b\ufeff\u2028\u3000\u00ad\u034f\u115f\u2800"
          "＝＋－＠﹦﹢﹣﹫1aé")
CELL = st.one_of(
    st.text(max_size=10),
    st.text(alphabet=st.sampled_from(TRICKY), max_size=6),
    st.sampled_from(["=1+1", " =1", "\u200b=cmd|' /C calc'!A0", "\ufeff@SUM(A1)",
                     "＝HYPERLINK(\"x\")", "\r=1", "a\rb", "-", "'=x", "", " ", '""']),
)
FINITE = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def frames(draw) -> pd.DataFrame:
    """Text columns (one maybe categorical), an int64 and a float64 column; headers are
    text too (made unique)."""
    n_rows = draw(st.integers(0, 5))
    n_text = draw(st.integers(1, 3))
    names: list[str] = []
    for name in draw(st.lists(CELL, min_size=n_text + 2, max_size=n_text + 2)):
        while name in names:
            name += "_"
        names.append(name)
    columns: dict[str, pd.Series] = {}
    for name in names[:n_text]:
        columns[name] = pd.Series(draw(st.lists(CELL, min_size=n_rows, max_size=n_rows)),
                                  dtype=object)
    columns[names[-2]] = pd.Series(draw(st.lists(
        st.integers(-(2**63), 2**63 - 1), min_size=n_rows, max_size=n_rows)), dtype="int64")
    columns[names[-1]] = pd.Series(draw(st.lists(st.floats(), min_size=n_rows,
                                                 max_size=n_rows)), dtype="float64")
    if draw(st.booleans()):
        columns[names[0]] = columns[names[0]].astype("category")
    return pd.DataFrame(columns)


def visible_start(cell: str) -> str:
    """The cell without leading whitespace and invisible (Cf, Zs, Cc) characters, NFKC."""
    i = 0
    while i < len(cell) and (cell[i].isspace()
                             or unicodedata.category(cell[i]) in ("Cf", "Cc", "Zs", "Zl", "Zp")):
        i += 1
    return unicodedata.normalize("NFKC", cell[i:])


@fuzz
@given(frames())
@example(pd.DataFrame({"a": [" "], "x": [1]}))
@example(pd.DataFrame({"a": ["\u2028"]}))
def test_csv_cells(df: pd.DataFrame) -> None:
    text = planner.to_csv_text(df)
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert frame.shape == df.shape, (frame.shape, df.shape, text)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == len(df) + 1 and all(len(r) == df.shape[1] for r in rows), rows
    for row in rows:
        for cell in row:
            assert not cell.startswith(("\t", "\r", "\n")), repr(cell)
            first = visible_start(cell)[:1]
            if first in ("=", "+", "-", "@"):
                try:
                    float(cell)  # a number ("-1.5") is data, never neutralised
                except ValueError:
                    raise AssertionError(f"formula cell {cell!r}") from None
    header, body = rows[0], rows[1:]
    for name, shown in zip(df.columns, header, strict=True):
        assert shown in (name, "'" + name), (name, shown)
    for j, col in enumerate(df.columns):
        for i, value in enumerate(df[col].tolist()):
            cell = body[i][j]
            if isinstance(value, str):
                assert cell in (value, "'" + value), (value, cell)
            elif isinstance(value, float) and math.isnan(value):
                assert cell == ""
            else:  # numbers round-trip exactly
                assert type(value)(cell) == value, (value, cell)


# ---- what the fuzzing found, kept as plain regression tests ---------------------------------
def _message(call) -> str:
    with pytest.raises(ValueError) as info:
        call()
    return refusal_line(info.value)


def test_numbers_past_a_float_are_one_line_not_an_overflow_error() -> None:
    # float(10**400) raised OverflowError from check_number
    assert _message(lambda: planner.TrainingJob(
        model="gpt2", n_tokens=10**400, seq_len=128, global_batch_size=8)) == (
        "n_tokens: must be a finite number (at most 1.8e+308), got " + "1" + "0" * 58 + "…")
    assert _message(lambda: planner.CostOptions(pue=Fraction(10**400, 3))).startswith(
        "pue: must be a finite number (at most 1.8e+308), got Fraction(")


def test_ints_python_cannot_print_are_described() -> None:
    # "seq_len: Exceeds the limit (4300 digits) for integer string conversion; use
    # sys.set_int_max_str_digits() ...", or that alone without the field outside pydantic
    assert _message(lambda: planner.layer_table("gpt2", seq_len=10**5000, batch_size=1)) == (
        "seq_len: must be ≤ 100,000,000, got an integer of about 5,000 digits")
    assert _message(lambda: planner.layer_table("gpt2", seq_len=8, batch_size=-(10**5000))) == (
        "batch_size: must be ≥ 1, got an integer of about 5,000 digits")


def test_an_empty_keyword_is_named() -> None:
    # was "CostOptions: Extra inputs are not permitted"
    assert _message(lambda: planner.CostOptions(**{"": 1})) == (
        "'': Extra inputs are not permitted")


def test_a_context_past_the_length_bound_is_refused_by_the_job() -> None:
    # accepted, then rank() failed with "seq_len: must be ≤ 100,000,000, got 150,000,000"
    assert _message(lambda: planner.InferenceJob(
        model="llama-2-7b", prompt_len=10**8, output_len=1)) == (
        "prompt_len: prompt_len + output_len = 100,000,001 tokens; allowed: at most "
        "100,000,000 in all")
    assert planner.InferenceJob(model="llama-2-7b", prompt_len=10**8 - 1,
                                output_len=1).context_len == 10**8


@pytest.mark.parametrize(("change", "message"), [
    ({"memory_bytes": 1e-320}, "memory_bytes: 9.99989e-321 B is outside the allowed range "
                               "1e+06 to 1e+16 B"),
    ({"memory_bytes": 80}, "memory_bytes: 80 B is outside the allowed range 1e+06 to 1e+16 B"),
    ({"peak_flops_per_s": {"bf16": 1e-320}}, "peak_flops_per_s.bf16: 9.99989e-321 FLOP/s is "
                                             "outside the allowed range 1e+09 to 1e+19 FLOP/s"),
    ({"tdp_w": "1e7 W"}, "tdp_w: 1e+07 W is outside the allowed range 0.1 to 1e+06 W"),
])
def test_device_numbers_outside_the_sane_range_are_refused(tmp_path: Path, change, message
                                                           ) -> None:
    # a subnormal peak gave GEMM rates of 0 FLOP/s; a subnormal memory made rank() divide
    # into an overflow (RuntimeWarning)
    path = tmp_path / "fuzz.toml"
    path.write_text(toml_document([{**FUZZ_DEVICE, **change}], []), encoding="utf-8")
    assert _message(lambda: planner.load_catalog(path)) == (
        f"{path}: entry 'acme_fuzz': {message}")
    edge = {**FUZZ_DEVICE, "memory_bytes": 1e6, "peak_flops_per_s": {"bf16": 1e9}}
    path.write_text(toml_document([edge], []), encoding="utf-8")
    assert planner.load_catalog(path).get("acme_fuzz").memory_bytes == 1e6


def test_kernel_table_sizes_must_be_finite_and_positive(tmp_path: Path) -> None:
    # a NaN size loaded; every plan on the device then failed for a wrong reason ("needs a
    # link the catalog has no bandwidth for")
    entry = json.loads(json.dumps(_BUILTIN_KERNELS[0]))
    entry["devices"] = ["acme_fuzz"]
    entry["memory"]["size_bytes"] = [float("nan"), 1e6, 1e7, 1e8, 1e9]
    path = tmp_path / "fuzz.toml"
    path.write_text(toml_document([FUZZ_DEVICE], [entry]), encoding="utf-8")
    assert _message(lambda: planner.load_catalog(path)) == (
        "fuzz.toml: [[kernels]] ['acme_fuzz']: memory: memory.size_bytes: sizes must be finite "
        "numbers > 0, got nan")
