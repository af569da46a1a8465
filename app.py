"""planner's Streamlit app: `streamlit run app.py`.

Thin by design: collect inputs, call the `planner` API, draw with `planner.report.plots`, offer each
table as a CSV report (`planner.to_csv_text`: SI numbers, unit-suffixed columns, formula-safe).
No physics here. Pages are lazy tabs (only the open one runs), bound to the `?page=` query
parameter so a page can be linked. Bad input is shown with `st.error`, never a traceback.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from pydantic import ValidationError

import planner
from planner.errors import ECHO_MAX_CHARS, InputError, clip, one_line
from planner.hardware.catalog import decode_catalog_bytes
from planner.model.layers import block_kind_summary, first_block_of_each_kind
from planner.model.spec import MAX_CONFIG_BYTES, supported_hf_model_types
from planner.report import plots
from planner.units import (
    GB,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    bytes_str,
    duration_str,
    energy_str,
    si,
    usd_str,
)

PAGES = ["Plan", "Model", "Validate", "Catalog", "Backtest"]
DEFAULT_MODEL = "llama-2-7b"
DEFAULT_SEQ_LEN = 4096
DEFAULT_TOKENS = 2e12
DEFAULT_GLOBAL_BATCH = 1024
DEFAULT_DEADLINE_DAYS = 30.0  # a real question: who finishes within a month, and at what cost?
EDITABLE_DIMS = ["n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size",
                 "max_seq_len", "n_experts", "experts_top_k"]
# Display units per SI column suffix: (divide by, shown label suffix).
DISPLAY_UNITS = [  # (SI name suffix, divide by, shown unit); first match wins
    ("tokens_per_s", 1.0, "tokens/s"),
    ("_flops_per_s", 1e12, "TFLOP/s"),
    ("_ops_per_s", 1e12, "TOP/s"),
    ("_bytes_per_s", 1e9, "GB/s"),
    ("_flops", 1e9, "GFLOP"),
    ("_bytes", GB, "GB"),
    ("usd_per_device_hour", 1.0, "$/device-h"),
    ("usd_per_hour", 1.0, "$/h"),
    ("usd", 1.0, "$"),
    ("_j", 3.6e6, "kWh"),
    ("_w", 1.0, "W"),
    ("_frac", 0.01, "%"),
]
QUANTITY_TAILS = ("", "_analytic", "_measured", "_predicted", "_total")
# Failures bad input can cause: shown as one st.error line, never a traceback.
INPUT_FAILURES = (ValueError, OverflowError, OSError, RecursionError, MemoryError)
# A Hugging Face config.json is a few kB; larger uploads are refused unread.
MAX_CONFIG_JSON_BYTES = MAX_CONFIG_BYTES  # the library's bound (planner.model.spec)
# Largest whole number a number_input can hold (a JavaScript double is exact up to 2**53 - 1).
MAX_WIDGET_INT = 2**53 - 1


# ---- cached calls (plain arguments only) ------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def cached_layer_table(spec_json: str, seq_len: int, batch_size: int, mode: str,
                       precision: str, recompute: str, flash_attention: bool) -> pd.DataFrame:
    spec = planner.ModelSpec.model_validate_json(spec_json)
    return planner.layer_table(spec, seq_len=seq_len, batch_size=batch_size, mode=mode,
                               precision=precision, recompute=recompute,
                               flash_attention=flash_attention)


@st.cache_data(show_spinner=False)
def cached_seed_example() -> pd.DataFrame:
    return planner.seed_example()


# ---- small display helpers --------------------------------------------------------------------
def show_table(df: pd.DataFrame, *, key: str, file_name: str, height: int | None = None
               ) -> None:
    """The table in display units (each header says which), and its SI CSV download."""
    shown = df.copy()
    shown.attrs = {}  # pandas would put them in the Arrow metadata, where NaN is not JSON
    config: dict[str, Any] = {}
    for col in shown.columns:
        if not pd.api.types.is_numeric_dtype(shown[col]) or shown[col].dtype == bool:
            continue
        unit = display_unit(str(col), shown[col])
        if unit is not None:
            scale, label = unit
            shown[col] = shown[col] / scale
            config[col] = st.column_config.NumberColumn(label, format="%.4g")
    st.dataframe(shown, column_config=config, hide_index=True, height=height or "auto",
                 key=f"{key}_table")
    st.download_button("Download CSV (SI units)", planner.to_csv_text(df), file_name=file_name,
                       mime="text/csv", key=f"{key}_csv", icon=":material/download:")


def display_unit(col: str, values: pd.Series) -> tuple[float, str] | None:
    """(divide by, header) to show an SI column in a readable unit; None: show as is."""
    if col in ("mfu", "hfu", "engine_mfu"):
        return 0.01, f"{col.upper()} (%)"
    if col in ("goodput_frac", "bubble_frac"):
        return 0.01, f"{col.removesuffix('_frac')} (%)"
    if col.endswith("_rel_err"):
        return 0.01, f"{col.removesuffix('_rel_err')} error (%)"
    for tail in QUANTITY_TAILS:
        stem = col.removesuffix(tail) if tail else col
        if tail and stem == col:
            continue
        for suffix, scale, unit in DISPLAY_UNITS:
            if stem.endswith(suffix):
                base = stem.removesuffix(suffix).removesuffix("_") or stem
                return scale, f"{base}{tail.replace('_', ' ')} ({unit})"
        if stem.endswith("_s") and "_per_" not in stem:
            scale, unit = _time_scale(values)
            return scale, f"{stem.removesuffix('_s')}{tail.replace('_', ' ')} ({unit})"
    return None


def _time_scale(seconds: pd.Series) -> tuple[float, str]:
    typical = float(seconds.abs().median()) if len(seconds.dropna()) else 0.0
    if typical >= 2 * SECONDS_PER_DAY:
        return SECONDS_PER_DAY, "days"
    if typical >= 2 * SECONDS_PER_HOUR:
        return SECONDS_PER_HOUR, "h"
    if 0 < typical < 1:
        return 1e-3, "ms"
    return 1.0, "s"


def error_message(err: BaseException) -> str:
    """One line for the user: pydantic's first problem as 'field: message'
    (`planner.errors.one_line`), an InputError/ValueError as raised, and a sentence for
    the failures that carry no message of their own."""
    if isinstance(err, ValidationError):
        text = one_line(err)
    elif isinstance(err, RecursionError):
        text = "the input is nested too deeply to read; a config or catalog nests a few levels"
    elif isinstance(err, MemoryError):
        text = "the input is too large: out of memory while reading it"
    elif isinstance(err, OSError):
        text = f"cannot read or write a file: {err.strerror or err}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())  # one line, whatever the message held


def shown_name(file_name: str) -> str:
    """An uploaded file's name for messages: as given, or clipped when long or odd."""
    name = Path(file_name).name
    return name if name.isprintable() and len(name) <= ECHO_MAX_CHARS else clip(name)


def guarded(render: Callable[..., None], *args: Any) -> None:
    """Run one page; input problems (INPUT_FAILURES) become one in-page error line, and
    anything else (a bug) an error too, so the user never sees a traceback."""
    try:
        render(*args)
    except INPUT_FAILURES as err:
        st.error(error_message(err), icon=":material/error:")
    except Exception as err:  # a bug: the page must still never show a traceback
        st.error(f"Unexpected error ({type(err).__name__}): {err}", icon=":material/bug_report:")


# ---- sidebar: the model and the workload shared by every page ----------------------------------
def sidebar_model() -> planner.ModelSpec | None:
    """Preset, uploaded config.json, or a preset with edited dimensions."""
    st.sidebar.header("Model")
    source = st.sidebar.radio("Source", ["Preset", "Upload config.json"], key="model_source",
                              horizontal=True)
    try:
        if source == "Preset":
            names = planner.list_models()
            name = st.sidebar.selectbox("Preset", names, index=names.index(DEFAULT_MODEL),
                                        key="model_preset")
            spec = planner.model(name)
        else:
            upload = st.sidebar.file_uploader("Hugging Face config.json", type=["json"],
                                              key="model_upload")
            if upload is None:
                st.sidebar.info("Upload a Hugging Face config.json; model_type one of "
                                f"{', '.join(supported_hf_model_types())}.")
                return None
            cfg = parse_config_json(upload.name, upload.getvalue())
            spec = planner.model_from_hf_config(cfg, name=Path(upload.name).stem
                                                if "_name_or_path" not in cfg else None)
        return edit_dimensions(spec)
    except INPUT_FAILURES as err:
        st.sidebar.error(error_message(err), icon=":material/error:")
        return None


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true/false", type(None): "null"}


def parse_config_json(file_name: str, data: bytes) -> dict[str, Any]:
    """The object in an uploaded config.json; InputError naming the file when the bytes are
    too many, not UTF-8, not JSON, nested too deeply or not a JSON object."""
    where = shown_name(file_name)
    if len(data) > MAX_CONFIG_JSON_BYTES:
        raise InputError(where, f"{len(data):,} bytes; a config.json is at most "
                                f"{MAX_CONFIG_JSON_BYTES:,} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(where, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        cfg = json.loads(text)
    except RecursionError:
        raise InputError(where, "not readable JSON: nested too deeply; a config.json is one "
                                "object of a few levels") from None
    except ValueError as err:  # JSONDecodeError, or an integer of over 4,300 digits
        raise InputError(where, f"not valid JSON: {str(err).split('; use ')[0]}") from None
    if not isinstance(cfg, dict):
        raise InputError(where, f"expected a JSON object {{...}} of config keys, got "
                                f"{_JSON_KINDS.get(type(cfg), type(cfg).__name__)}")
    return cfg


def edit_dimensions(spec: planner.ModelSpec) -> planner.ModelSpec:
    for dim in EDITABLE_DIMS:
        current = getattr(spec, dim) if dim != "n_kv_heads" else spec.kv_heads
        if current > MAX_WIDGET_INT:
            raise InputError(dim, f"{current:.3g} is too large to edit here; at most "
                                  f"{MAX_WIDGET_INT:,}")
    with st.sidebar.expander("Edit dimensions"):
        changes = {}
        for dim in EDITABLE_DIMS:
            current = getattr(spec, dim) if dim != "n_kv_heads" else spec.kv_heads
            value = st.number_input(dim, min_value=1, value=int(current), step=1,
                                    key=f"dim_{spec.name}_{dim}")
            if value != current:
                changes[dim] = int(value)
    if not changes:
        return spec
    return spec.with_(name=f"{spec.name} (edited)", **changes)


def sidebar_workload(spec: planner.ModelSpec | None) -> dict[str, Any]:
    st.sidebar.header("Workload")
    mode = st.sidebar.radio("Mode", ["train", "inference"], key="mode", horizontal=True,
                            format_func=lambda m: {"train": "Train", "inference": "Serve"}[m])
    policies = [name for name, p in planner.PRECISION_POLICIES.items()
                if mode == "inference" or p.train_ok]
    precision = st.sidebar.selectbox(
        "Precision policy", policies, index=policies.index("bf16"), key=f"precision_{mode}",
        help="; ".join(f"{n}: {planner.PRECISION_POLICIES[n].note}" for n in policies))
    max_len = spec.max_seq_len if spec is not None else DEFAULT_SEQ_LEN
    seq_len = st.sidebar.number_input(
        "Sequence length (tokens)", min_value=1, value=min(max_len, DEFAULT_SEQ_LEN), step=128,
        key=f"seq_len_{spec.name if spec else ''}",
        help="Train: tokens per sequence. Serve: the context length of the Model page's KV "
        "cache (the Plan page takes prompt and output lengths).")
    return dict(mode=mode, precision=precision, seq_len=int(seq_len))


# ---- Model page ---------------------------------------------------------------------------------
def page_model(spec: planner.ModelSpec | None, work: dict[str, Any]) -> None:
    if spec is None:
        st.warning("Choose a model in the sidebar.")
        return
    st.subheader(f"{spec.name}: compute C and storage S per layer")
    if spec.source_url:
        st.caption(f"Configuration: {spec.source_url}")
    c1, c2, c3 = st.columns(3)
    batch = c1.number_input("Batch (sequences per step)", min_value=1, value=1, step=1,
                            key="model_batch")
    recompute = c2.selectbox("Activation recomputation", ["none", "selective", "full"],
                             key="model_recompute", disabled=work["mode"] != "train")
    flash = c3.toggle("Fused (flash) attention", value=False, key="model_flash")
    table = cached_layer_table(spec.model_dump_json(), work["seq_len"], int(batch),
                               work["mode"], work["precision"], recompute, flash)
    model_metrics(spec, table, work["mode"])

    kinds = block_kind_summary(spec)
    if len(kinds) == 1:
        default = "the outer layers and block 0; every block is the same"
    else:
        default = ("the outer layers and the first block of each kind: "
                   + ", ".join(f"{label} (block {first}, {count:,} such)"
                               for label, count, first in kinds))
    every = st.toggle(f"Chart all {spec.n_layers} blocks (default: {default})", value=False,
                      key="model_all_blocks")
    charted = table if every else first_block_of_each_kind(table, spec)
    left, right = st.columns(2)
    left.plotly_chart(plots.layer_flops_figure(charted), key="model_flops_fig")
    right.plotly_chart(plots.layer_bytes_figure(charted), key="model_bytes_fig")
    st.plotly_chart(plots.memory_breakdown_figure(table, label=f"batch {batch}"),
                    key="model_memory_fig")
    st.markdown("**Per-layer table** (C = FLOPs, S = bytes; the CSV is in SI units)")
    show_table(table, key="model_layers", file_name=f"{_safe_name(spec.name)}_layers.csv",
               height=360)
    seed_panel()


def model_metrics(spec: planner.ModelSpec, table: pd.DataFrame, mode: str) -> None:
    sums = table.select_dtypes("number").sum()
    memory = sum(float(sums.get(c, 0.0)) for c in plots.MEMORY_COMPONENTS)
    cols = st.columns(4)
    cols[0].metric("Parameters", si(spec.n_params, "", digits=4),
                   help=f"{spec.n_params:,} ({si(spec.n_active_params, '', digits=4)} active)")
    step = "training step (fwd + bwd)" if mode == "train" else "prefill"
    cols[1].metric("Compute C per step", si(sums["fwd_flops"] + sums.get("bwd_flops", 0.0),
                                            "FLOP"), help=step)
    if "decode_flops" in sums:
        cols[2].metric("Decode step", si(sums["decode_flops"], "FLOP"),
                       help="one new token per sequence at full context")
    else:
        cols[2].metric("Saved activations", bytes_str(sums["activation_bytes"]))
    cols[3].metric("Storage S (total)", bytes_str(memory),
                   help="weights + gradients + optimizer + activations + KV cache, one replica")


def seed_panel() -> None:
    with st.expander("The document's BERT example beside the per-layer model", expanded=True):
        st.caption("Sec. 4.2–4.3 of the seed document: C = L·H·M³ for BERT and an "
                   "'efficiency' from a 2.6e12 FLOP/s GPU. Each figure recomputed, with what "
                   "is wrong and what the per-layer model gives instead.")
        seed = cached_seed_example()
        show_table(seed, key="seed", file_name="seed_example.csv")
        st.markdown("\n".join(f"- **{row.item}** ({row.verdict}): {row.explanation}"
                               for row in seed.itertuples()))


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in name)


# ---- Plan page ----------------------------------------------------------------------------------
OBJECTIVES = {"time": "fastest", "cost": "cheapest", "energy": "least energy"}
RANKING_FIRST = ["rank", "device", "kind", "feasible", "reason", "n_devices", "tp", "cp", "pp",
                 "virtual_stages", "ep", "dp",
                 "zero_stage", "recompute", "micro_batch_size", "batch_size", "replicas",
                 "time_s", "cost_usd", "energy_j", "mfu", "ttft_s", "ttft_p99_s", "tpot_s",
                 "tpot_p99_s", "pareto",
                 "cost_price_provider", "cost_price_date", "cost_note"]


@st.cache_data(show_spinner="Searching devices and layouts...", max_entries=32)
def cached_rank(job_kind: str, job_json: str, kinds: tuple[str, ...], objective: str,
                cost_json: str, catalog_name: str, catalog_text: str) -> pd.DataFrame:
    job_type = planner.TrainingJob if job_kind == "train" else planner.InferenceJob
    job = job_type.model_validate_json(job_json)
    cost = planner.CostOptions.model_validate_json(cost_json)
    catalog = cached_catalog(catalog_name, catalog_text) if catalog_text else cached_catalog()
    return planner.rank(job, catalog, kinds=list(kinds) or None, objective=objective,
                        cost=cost)


@st.cache_resource(show_spinner=False, max_entries=32)
def cached_plan_figures(job_kind: str, job_json: str, kinds: tuple[str, ...], objective: str,
                        cost_json: str, catalog_name: str, catalog_text: str) -> dict[str, Any]:
    """The Plan page's two overview figures, built once per query (a rerun only sends them)."""
    ranking = cached_rank(job_kind, job_json, kinds, objective, cost_json, catalog_name,
                          catalog_text)
    return {"pareto": plots.pareto_figure(ranking, title=plan_scatter_title(job_kind)),
            "memory": plots.memory_capacity_figure(ranking[ranking["feasible"]])}


@st.cache_resource(show_spinner=False, max_entries=64)
def cached_layout_figure(device: str, job_kind: str, job_json: str, kinds: tuple[str, ...],
                         objective: str, cost_json: str, catalog_name: str,
                         catalog_text: str) -> Any:
    ranking = cached_rank(job_kind, job_json, kinds, objective, cost_json, catalog_name,
                          catalog_text)
    row = ranking[ranking["device"] == device].iloc[0]
    return plots.layout_memory_figure(row, title=f"Memory on one {device}")


def plan_job(spec: planner.ModelSpec, work: dict[str, Any]) -> Any:
    """The training or serving job from the page's inputs (ValueError when it is invalid)."""
    if work["mode"] == "train":
        c1, c2, c3 = st.columns(3)
        tokens_b = c1.number_input("Training tokens (billions)", min_value=0.001,
                                   value=DEFAULT_TOKENS / 1e9, step=100.0, key="plan_tokens_b")
        batch = c2.number_input("Global batch (sequences)", min_value=1,
                                value=DEFAULT_GLOBAL_BATCH, step=64, key="plan_global_batch")
        deadline_d = c3.number_input("Deadline (days, 0 = none)", min_value=0.0,
                                     value=DEFAULT_DEADLINE_DAYS,
                                     step=1.0, key="plan_deadline_d",
                                     help="With a deadline each device gets the cheapest "
                                     "layout that meets it.")
        f1, f2, f3 = st.columns(3)
        adapter = f1.selectbox("Fine-tuning", ["none", "lora", "qlora"], key="plan_adapter",
                               help="LoRA adapters on a frozen base, or QLoRA (4-bit base); "
                               "none trains every weight (docs/planning.md P30-P32).")
        lora_rank = f2.number_input("LoRA rank", min_value=1, value=16, step=8,
                                    key="plan_lora_rank", disabled=adapter == "none")
        offload = f3.checkbox("Optimizer in host memory", key="plan_offload",
                              help="ZeRO-Offload: gradients and optimizer state on the CPU.")
        tuning = dict(adapter=adapter, lora_rank=int(lora_rank)) if adapter != "none" else {}
        return planner.TrainingJob(
            model=spec, n_tokens=float(tokens_b) * 1e9, seq_len=work["seq_len"],
            global_batch_size=int(batch), precision=work["precision"],
            deadline_s=float(deadline_d) * SECONDS_PER_DAY if deadline_d > 0 else None,
            optimizer_offload=bool(offload), **tuning)
    encoder = not (spec.causal and spec.lm_head)
    c1, c2, c3, c4, c5 = st.columns(5)
    prompt = c1.number_input("Prompt (tokens)", min_value=1, value=1024 if not encoder else 128,
                             step=128, key="plan_prompt_len")
    output = c2.number_input("Output (tokens)", min_value=0, value=256 if not encoder else 0,
                             step=64, key="plan_output_len",
                             help="0 serves an encoder (or scores prompts): one forward pass "
                             "per request.")
    rate = c3.number_input("Load (requests/s)", min_value=0.001, value=10.0, step=1.0,
                           key="plan_requests_per_s")
    ttft_ms = c4.number_input("TTFT target (ms, 0 = none)", min_value=0.0, value=0.0,
                              step=100.0, key="plan_ttft_ms")
    tpot_ms = c5.number_input("TPOT target (ms, 0 = none)", min_value=0.0, value=0.0,
                              step=10.0, key="plan_tpot_ms")
    options = serving_options(spec)
    return planner.InferenceJob(
        model=spec, prompt_len=int(prompt), output_len=int(output),
        requests_per_s=float(rate), precision=work["precision"],
        ttft_s=ttft_ms / 1e3 if ttft_ms > 0 else None,
        tpot_s=tpot_ms / 1e3 if tpot_ms > 0 else None, **options)


def serving_options(spec: planner.ModelSpec) -> dict[str, Any]:
    """The serving features (docs/planning.md P19-P19k) as InferenceJob fields; defaults are
    the API's, so an untouched expander changes nothing."""
    with st.expander("Serving options: percentiles, chunked prefill, KV cache, speculation"):
        o1, o2, o3, o4 = st.columns(4)
        percentile = o1.selectbox("Targets apply at", [99.0, 95.0, 90.0, 50.0],
                                  format_func=lambda p: f"p{p:g}", key="plan_percentile")
        chunk = o2.number_input("Prefill chunk (tokens per step, 0 = none)", min_value=0,
                                value=8192, step=512, key="plan_prefill_chunk",
                                help="vLLM's max_num_batched_tokens: decodes and prompt chunks "
                                "share each step (Sarathi-Serve).")
        kv = o3.selectbox("KV cache dtype", ["auto", "bf16", "fp16", "fp8"], key="plan_kv",
                          help="auto: fp8 under fp8/fp4 serving, else 16-bit.")
        util = o4.number_input("Target utilization (%)", min_value=1.0, max_value=100.0,
                               value=80.0, step=5.0, key="plan_target_util",
                               help="Replicas are sized so the load uses at most this share "
                               "of their capacity (queueing headroom).")
        s1, s2, s3, s4 = st.columns(4)
        hit = s1.number_input("Prefix-cache hits (%)", min_value=0.0, max_value=99.0,
                              value=0.0, step=10.0, key="plan_prefix_hit")
        spec_tokens = s2.number_input("Speculative tokens (0 = off)", min_value=0,
                                      max_value=16, value=0, step=1, key="plan_spec_tokens")
        accept = s3.number_input("Acceptance rate (%)", min_value=1.0, max_value=99.0,
                                 value=80.0, step=5.0, key="plan_acceptance",
                                 disabled=spec_tokens == 0)
        draft_choices = (["mtp"] if spec.n_mtp_layers else []) + planner.list_models()
        draft = s4.selectbox("Draft model", draft_choices, key="plan_draft",
                             disabled=spec_tokens == 0,
                             help="mtp: the model's own multi-token-prediction module.")
        disaggregated = st.checkbox("Disaggregated prefill and decode pools",
                                    key="plan_disaggregated")
    fields: dict[str, Any] = dict(latency_percentile=float(percentile),
                                  prefill_chunk_tokens=int(chunk),
                                  target_utilization=float(util) / 100.0,
                                  prefix_cache_hit_frac=float(hit) / 100.0,
                                  disaggregated=bool(disaggregated))
    if kv != "auto":
        fields["kv_cache_precision"] = kv
    if spec_tokens:
        fields.update(speculative_tokens=int(spec_tokens),
                      acceptance_rate=float(accept) / 100.0, draft_model=draft)
    return fields


def plan_cost_options() -> Any:
    cost_type = planner.CostOptions
    defaults = cost_type()
    with st.expander("Money and energy: cloud or ownership, electricity, PUE, lifetime, "
                     "servers and facility"):
        c1, c2, c3, c4, c5 = st.columns(5)
        basis = c1.radio("Cost basis", ["cloud", "ownership"], key="plan_basis",
                         help="cloud: rent at the cheapest of each provider's latest on-demand "
                         "prices in the catalog (a larger offer for a job beyond one node, "
                         "or flagged); ownership: chips, servers, network and facility "
                         "amortized over the lifetime, plus electricity")
        kwh = c2.number_input("Electricity ($/kWh)", min_value=0.0, value=defaults.usd_per_kwh,
                              step=0.01, format="%.3f", key="plan_usd_per_kwh")
        pue = c3.number_input("PUE", min_value=1.0, value=defaults.pue, step=0.05,
                              key="plan_pue")
        years = c4.number_input("Lifetime (years)", min_value=0.1,
                                value=defaults.lifetime_years, step=0.5, key="plan_lifetime")
        util = c5.number_input("Utilization (%)", min_value=1.0, max_value=100.0,
                               value=defaults.ownership_utilization_frac * 100, step=5.0,
                               key="plan_utilization",
                               help="share of its lifetime an owned device does paid work")
        d1, d2, d3, d4 = st.columns(4)
        server = d1.number_input("Server cost factor", min_value=1.0, max_value=10.0,
                                 value=defaults.server_cost_factor, step=0.05,
                                 key="plan_server_factor",
                                 help="server cost over its accelerators' (Epoch AI: 1.3-2.1)")
        network = d2.number_input("Network cost factor", min_value=1.0, max_value=10.0,
                                  value=defaults.network_cost_factor, step=0.01,
                                  key="plan_network_factor",
                                  help="cluster with interconnect over servers (Epoch AI: "
                                  "1.07-1.32)")
        facility = d3.number_input("Facility ($/kW-month)", min_value=0.0, max_value=1e4,
                                   value=defaults.facility_usd_per_kw_month, step=10.0,
                                   key="plan_facility",
                                   help="colocation per kW of system power (CBRE H2 2024 "
                                   "average: $184.06); 0 leaves it out")
        power = d4.number_input("Busy draw (% of TDP above idle)", min_value=1.0,
                                max_value=100.0, value=defaults.power_frac * 100, step=5.0,
                                key="plan_power_frac")
    return cost_type(basis=basis, usd_per_kwh=kwh, pue=pue, lifetime_years=years,
                     ownership_utilization_frac=util / 100, server_cost_factor=server,
                     network_cost_factor=network, facility_usd_per_kw_month=facility,
                     power_frac=power / 100)


DEFAULT_FIT_DEVICE = "nvidia_h100_sxm"


@st.cache_data(show_spinner="Fitting the model...", max_entries=64)
def cached_fits(spec_json: str, device: str, n_devices: int, precision: str, prompt_len: int,
                output_len: int, catalog_name: str, catalog_text: str) -> dict[str, Any]:
    spec = planner.ModelSpec.model_validate_json(spec_json)
    catalog = cached_catalog(catalog_name, catalog_text) if catalog_text else cached_catalog()
    return planner.fits(spec, device, n_devices, precision, prompt_len=prompt_len,
                        output_len=output_len, catalog=catalog).to_dict()


def plan_fits(spec: planner.ModelSpec, catalog: Any) -> None:
    """The Plan page's first question: does the model fit for serving on N of one device?"""
    if not spec.causal or not spec.lm_head:
        st.caption(f"{spec.name} generates no tokens (an encoder, or no LM head): this check "
                   "is for serving a causal LM.")
        return
    ids = catalog.ids()
    c1, c2, c3, c4, c5 = st.columns([3, 1, 2, 2, 2])
    device = c1.selectbox("Device", ids, key="fits_device", format_func=device_name,
                          index=ids.index(DEFAULT_FIT_DEVICE) if DEFAULT_FIT_DEVICE in ids
                          else 0)
    n = c2.number_input("Devices", min_value=1, max_value=1024, value=1, step=1,
                        key="fits_n_devices", help="one replica: tensor parallel, or tp × pp "
                        "pipeline stages where that holds more sequences")
    policies = list(planner.PRECISION_POLICIES)
    precision = c3.selectbox("Precision", policies, index=policies.index("bf16"),
                             key="fits_precision")
    # defaults within the model's context (GPT-2: 768 + 256); keyed per model, so they reset
    output_default = max(1, min(256, spec.max_seq_len // 4))
    prompt = c4.number_input("Prompt (tokens)", min_value=1, step=128,
                             value=max(1, min(1024, spec.max_seq_len - output_default)),
                             key=f"fits_prompt_len_{spec.name}")
    output = c5.number_input("Output (tokens)", min_value=1, value=output_default, step=64,
                             key=f"fits_output_len_{spec.name}")
    name, text = catalog_source()
    if text and catalog is cached_catalog():  # an invalid user file is not used
        name, text = "", ""
    r = cached_fits(spec.model_dump_json(), device, int(n), precision, int(prompt),
                    int(output), name, text)
    cols = st.columns(6)
    cols[0].metric("Fits", "✓ yes" if r["fits"] else "✗ no",
                   help=f"tp={r['tp']}, pp={r['pp']}")
    cols[1].metric("Max batch", f"{r['max_batch_size']:,}",
                   help=f"sequences of {r['prompt_len'] + r['output_len']:,} tokens")
    cols[2].metric("Max context", f"{r['max_context_len']:,} tokens")
    speed = r["tokens_per_s"]
    cols[3].metric("Decode", "—" if speed is None else f"{speed:,.0f} tok/s",
                   help=None if speed is None else
                   f"at the max batch; {r['tokens_per_s_per_user']:.3g} tok/s per user, TPOT "
                   f"{duration_str(r['tpot_s'])}, TTFT {duration_str(r['ttft_s'])}")
    cols[4].metric("Weights / device", bytes_str(r["weight_bytes"]),
                   help=f"{bytes_str(r['usable_memory_bytes'])} usable per device")
    cols[5].metric("KV cache / token", bytes_str(r["kv_bytes_per_token"]))
    if not r["fits"]:
        st.warning(r["reason"], icon=":material/memory:")


def page_plan(spec: planner.ModelSpec | None, work: dict[str, Any]) -> None:
    if spec is None:
        st.warning("Choose a model in the sidebar.")
        return
    catalog = active_catalog()
    with st.expander("Does it fit on my GPU? (serving)", expanded=True):
        guarded(plan_fits, spec, catalog)
    job = plan_job(spec, work)
    c1, c2 = st.columns([3, 2])
    all_kinds = sorted({d.kind for d in catalog})
    kinds = c1.multiselect("Kinds of hardware", all_kinds, key="plan_kinds",
                           placeholder="all kinds", format_func=str.upper)
    objective = c2.radio("Objective", list(OBJECTIVES), index=1, key="plan_objective",
                         horizontal=True,
                         format_func=lambda o: f"{o} ({OBJECTIVES[o]} first)")
    cost = plan_cost_options()
    name, text = catalog_source()
    if text and catalog is cached_catalog():
        st.warning(f"Your catalog file {name} is invalid and not used; the Catalog page says "
                   "why.")
        name, text = "", ""
    elif text:
        st.caption(f"Using your catalog file {name} on top of the built-in catalog.")
    query = (work["mode"], job.model_dump_json(), tuple(kinds), objective,
             cost.model_dump_json(), name, text)
    ranking = cached_rank(*query)
    # Each headline figure comes from the ranking by its own objective: the fastest plan is
    # not among the cheapest plans per device, and vice versa (all cached, ~0.1 s each cold).
    by_objective = {o: ranking if o == objective else cached_rank(*query[:3], o, *query[4:])
                    for o in OBJECTIVES}
    plan_headline(job, work["mode"], by_objective)
    figures = cached_plan_figures(*query)
    left, right = st.columns(2)
    left.plotly_chart(figures["pareto"], key="plan_pareto_fig")
    right.plotly_chart(figures["memory"], key="plan_memory_fig")
    unpriced = ranking[ranking["feasible"] & ranking["cost_usd"].isna()]
    if not unpriced.empty:
        st.caption(f"Not on the scatter (no price in the catalog): "
                   f"{', '.join(unpriced['device'])}.")
    st.markdown("**Ranking** (best configuration per device; infeasible devices last, with "
                "the reason)")
    order = [c for c in RANKING_FIRST if c in ranking] + [
        c for c in ranking if c not in RANKING_FIRST]
    show_table(ranking[order], key="plan_ranking", file_name="ranking.csv", height=380)
    plan_layout(ranking, query)


def plan_scatter_title(mode: str) -> str:
    if mode == "train":
        return "Time to train vs cost (Pareto frontier dotted)"
    return "Request latency vs cost per million output tokens"


def plan_headline(job: Any, mode: str, by_objective: dict[str, pd.DataFrame]) -> None:
    if mode == "train":
        within = f" within {duration_str(job.deadline_s)}" if job.deadline_s else ""
        st.subheader(f"Train {job.model.name} on {si(job.n_tokens, '').replace(' ', '')} "
                     f"tokens{within}: who is fastest and cheapest?")
    else:
        st.subheader(f"Serve {job.model.name} at {job.requests_per_s:g} requests/s "
                     f"({job.prompt_len} in, {job.output_len} out): who is fastest and "
                     "cheapest?")
    if not by_objective["time"]["feasible"].any():
        st.warning("No device can run this workload; the reasons are in the table.")
        return
    cols = st.columns(3)
    cost_unit = "" if mode == "train" else " per M tokens"
    for col, (label, objective, metric) in zip(cols, [
            ("Fastest", "time", "time_s"), ("Cheapest", "cost", "cost_usd"),
            ("Least energy", "energy", "energy_j")], strict=True):
        ranking = by_objective[objective]
        valid = ranking[ranking["feasible"]].dropna(subset=[metric])
        if valid.empty:
            col.metric(label, "—", help=f"no device has a {metric}")
            continue
        best = valid.loc[valid[metric].idxmin()]
        value = {"time_s": duration_str(best["time_s"]),
                 "cost_usd": usd_str(best["cost_usd"]) + cost_unit,
                 "energy_j": energy_str(best["energy_j"]) + cost_unit}[metric]
        col.metric(f"{label}: {int(best['n_devices'])} × **{device_name(best['device'])}**",
                   value, help=f"{duration_str(best['time_s'])}, {usd_str(best['cost_usd'])}"
                   f"{cost_unit}; TP {best['tp']} · PP {best['pp']} · DP {best['dp']}")


def device_name(device_id: str) -> str:
    try:
        return active_catalog().get(device_id).name
    except ValueError:
        return device_id


def plan_layout(ranking: pd.DataFrame, query: tuple[Any, ...]) -> None:
    ok = ranking[ranking["feasible"]]
    if ok.empty:
        return
    st.markdown("**Chosen layout**")
    device = st.selectbox("Device", list(ok["device"]), key="plan_layout_device")
    row = ok[ok["device"] == device].iloc[0]
    facts = {"devices": f"{int(row['n_devices'])}", "TP": f"{row['tp']}", "PP": f"{row['pp']}",
             "DP": f"{row['dp']}"}
    if "zero_stage" in row:
        if row["cp"] > 1:
            facts["CP"] = f"{row['cp']}"
        if row["virtual_stages"] > 1:
            facts["interleaved chunks"] = f"{row['virtual_stages']}"
        if row["ep"] > 1:
            facts["EP"] = f"{row['ep']}"
        facts |= {"ZeRO": f"{row['zero_stage']}", "recompute": f"{row['recompute']}",
                  "micro-batch × count": f"{row['micro_batch_size']} × "
                                         f"{int(row['n_micro_batches'])}",
                  "step": duration_str(row["step_time_s"]), "MFU": f"{row['mfu']:.1%}",
                  "goodput": f"{row['goodput_frac']:.1%}"}
    else:
        layout = f"TP {row['tp']} × PP {row['pp']}" + (f" × EP {row['ep']}"
                                                        if row["ep"] > 1 else "")
        facts |= {"replica": layout, "batch per micro-batch": f"{row['batch_size']}",
                  "replicas": f"{row['replicas']}",
                  "TTFT p50 / p99": f"{duration_str(row['ttft_p50_s'])} / "
                                    f"{duration_str(row['ttft_p99_s'])}",
                  "TPOT p50 / p99": f"{duration_str(row['tpot_p50_s'])} / "
                                    f"{duration_str(row['tpot_p99_s'])}"}
    price = row.get("usd_per_device_hour")
    facts["price"] = (f"{usd_str(price)}/device-h ({row['cost_price_provider']}, "
                      f"{row['cost_price_date']})" if pd.notna(price) else "no price")
    st.markdown("| " + " | ".join(facts) + " |\n|" + "---|" * len(facts) + "\n| "
                + " | ".join(facts.values()) + " |")
    if row.get("cost_note"):
        st.caption(str(row["cost_note"]))
    st.plotly_chart(cached_layout_figure(device, *query), key="plan_layout_memory_fig")


# ---- Validate page ------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def torch_devices() -> list[str]:
    """Devices a measured run can use here (imports torch, once, when the page opens)."""
    try:
        import torch
    except ImportError:
        return []
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def page_validate(spec: planner.ModelSpec | None, work: dict[str, Any]) -> None:
    st.caption("Runs the reference PyTorch model on this machine and compares every layer's "
               "measured FLOPs (FlopCounterMode) and bytes with the analytic model. Use a few "
               "layers and a short sequence on a CPU.")
    names = planner.list_models()
    c1, c2, c3, c4, c5, c6 = st.columns(6)
    name = c1.selectbox("Model", names, index=names.index("gpt2"), key="val_model")
    n_layers = c2.number_input("Layers", min_value=1, value=2, step=1, key="val_layers")
    seq_len = c3.number_input("Sequence (tokens)", min_value=1, value=128, step=32,
                              key="val_seq_len")
    batch = c4.number_input("Batch", min_value=1, value=2, step=1, key="val_batch")
    mode = c5.radio("Mode", ["train", "inference"], key="val_mode")
    devices = torch_devices()
    if not devices:
        st.error("PyTorch is not installed: the measured validation needs it.")
        return
    device = c6.radio("Device", devices, key="val_device")
    time_it = st.toggle("Also calibrate this machine's ceilings and time the steps", value=True,
                        key="val_time_it", help="matmul FLOP/s and copy bandwidth, then a "
                        "roofline prediction of the step time beside the measured one")
    inputs = (name, int(n_layers), int(seq_len), int(batch), mode, device, time_it)
    if st.button("Run the measured validation", key="val_run", type="primary"):
        st.session_state["val_result"] = (inputs, run_validation(*inputs))
    stored = st.session_state.get("val_result")
    if stored is None:
        st.info("Press the button to measure (a few seconds for GPT-2 with 2 layers on a CPU).")
        return
    if stored[0] != inputs:
        st.caption("The inputs changed since the last run; press the button to measure again.")
    ran_name, ran_layers = stored[0][:2]
    show_validation(stored[1], planner.model(ran_name).with_(n_layers=ran_layers))


def show_ceilings(summary: dict[str, Any]) -> None:
    """This machine's calibrated ceilings and the roofline step time against the measured."""
    if "ceiling_matmul_flops_per_s" not in summary:
        st.caption("Timing was off: no ceilings were calibrated.")
        return
    st.markdown("**Calibrated ceilings** (this machine, best of the timed runs)")
    c1, c2 = st.columns(2)
    c1.metric(f"Matmul ({summary.get('dtype', '')})",
              si(summary["ceiling_matmul_flops_per_s"], "FLOP/s"))
    c2.metric("Memory bandwidth (copy)", si(summary["ceiling_memory_bw_bytes_per_s"], "B/s"))
    phases = [k.removesuffix("_s_predicted") for k in summary if k.endswith("_s_predicted")]
    times = pd.DataFrame({
        "phase": phases,
        "predicted_s": [summary[f"{p}_s_predicted"] for p in phases],
        "measured_s": [summary.get(f"{p}_s_measured", float("nan")) for p in phases],
    })
    times["measured_over_predicted"] = times["measured_s"] / times["predicted_s"]
    st.caption("Roofline step time from the ceilings (a lower bound: no launch overhead) "
               "beside the measured median.")
    show_table(times, key="val_times", file_name="validation_step_times.csv")


def run_validation(name: str, n_layers: int, seq_len: int, batch: int, mode: str,
                   device: str, time_it: bool) -> pd.DataFrame:
    # The analytic table checks the sizes first (e.g. seq_len beyond learned positions), so a
    # bad input is a clear ValueError rather than an index error deep inside torch.
    planner.layer_table(planner.model(name).with_(n_layers=n_layers), seq_len=seq_len,
                        batch_size=batch, mode=mode)
    bar = st.progress(0.0, text="starting")
    steps = ["calibrating", "forward", "optimizer", "prefill", "decode", "timing", "joining"]
    seen: list[str] = []

    def progress(message: str) -> None:
        seen.append(message)
        bar.progress(min(len(seen) / len(steps), 1.0), text=message)

    result = planner.validate(name, seq_len=seq_len, batch_size=batch, mode=mode, device=device,
                              n_layers=n_layers, time_it=time_it, progress=progress)
    bar.progress(1.0, text="done")
    return result


def show_validation(result: pd.DataFrame, spec: planner.ModelSpec) -> None:
    """The result of a validate() run of `spec` (the preset at the run's n_layers)."""
    summary = result.attrs.get("summary", {})
    st.markdown(f"**{summary.get('model', '')}**, {summary.get('n_layers', '')} layers, "
                f"{summary.get('mode', '')} on {summary.get('device_name', '')} "
                f"({summary.get('dtype', '')}), seq {summary.get('seq_len', '')} × batch "
                f"{summary.get('batch_size', '')}")
    errs = [k for k in summary if k.endswith("_max_abs_rel_err")]
    cols = st.columns(max(len(errs), 1))
    for col, key in zip(cols, errs, strict=False):
        value = summary[key]
        col.metric(key.removesuffix("_max_abs_rel_err"), f"{value:.2%}" if pd.notna(value)
                   else "—", help="largest |measured − analytic| / analytic over the rows "
                   "(matmul rows for FLOPs)")
    quantities = [c.removesuffix("_analytic") for c in result if c.endswith("_analytic")]
    quantity = st.selectbox("Quantity", quantities, key="val_quantity")
    rows = result[result[f"{quantity}_analytic"].notna() | result[f"{quantity}_measured"].notna()]
    if "block" in rows:  # outer layers and the first block of each kind (dense, MoE, ...)
        rows = first_block_of_each_kind(rows, spec)
    st.plotly_chart(plots.validation_figure(rows, quantity=quantity), key="val_fig")
    show_table(result, key="val_layers", file_name="validation.csv", height=360)
    show_ceilings(summary)
    numbers = {k: v for k, v in summary.items() if isinstance(v, int | float)
               and not isinstance(v, bool)}
    with st.expander("Every summary number"):
        show_table(pd.DataFrame({"quantity": list(numbers), "value": list(numbers.values())}),
                   key="val_summary", file_name="validation_summary.csv")


# ---- Catalog page -------------------------------------------------------------------------------
def catalog_source() -> tuple[str, str]:
    """(file name, text) of the user's catalog file in use, or ("", "")."""
    return st.session_state.get("user_catalog", ("", ""))


def _store_upload() -> None:
    """on_change of the catalog uploader: keep the file's text for every page (a widget's own
    state is dropped while its tab is closed)."""
    upload = st.session_state.get("catalog_upload")
    st.session_state.pop("user_catalog", None)
    st.session_state.pop("user_catalog_error", None)
    if upload is None:
        return
    name = _safe_name(Path(upload.name).stem)[:ECHO_MAX_CHARS] + ".toml"
    try:  # size and UTF-8 checked before anything is stored or parsed
        st.session_state["user_catalog"] = (name, decode_catalog_bytes(upload.getvalue(), name))
    except InputError as err:
        st.session_state["user_catalog_error"] = str(err)


def _write_temp(folder: str, name: str, text: str) -> Path:
    path = Path(folder) / (_safe_name(Path(name).stem)[:ECHO_MAX_CHARS] + ".toml")
    path.write_text(text, encoding="utf-8")
    return path


@st.cache_resource(show_spinner="Loading the hardware catalog...")
def cached_catalog(user_name: str = "", user_text: str = "") -> Any:
    """The built-in catalog, plus the user's file when given (ValueError if it is invalid)."""
    if not user_text:
        return planner.load_catalog()
    with tempfile.TemporaryDirectory() as folder:
        try:
            return planner.load_catalog(_write_temp(folder, user_name, user_text))
        except ValueError as err:
            raise ValueError(str(err).replace(folder + "/", "")) from None


@st.cache_data(show_spinner="Checking your catalog file...")
def cached_catalog_check(user_name: str, user_text: str) -> pd.DataFrame:
    """One row per entry of the user's file: its id, and what it does or what is wrong."""
    with tempfile.TemporaryDirectory() as folder:
        checked = planner.check_catalog_entries(_write_temp(folder, user_name, user_text))
    checked["message"] = checked["message"].str.replace(folder + "/", "", regex=False)
    return checked


def active_catalog() -> Any:
    """The catalog every page uses: built-in, plus the user's file when it is valid."""
    name, text = catalog_source()
    if text:
        try:
            return cached_catalog(name, text)
        except ValueError:
            pass  # the Catalog page shows the problem; the other pages use the built-in one
    return cached_catalog()


def page_catalog() -> None:
    catalog_upload_panel()
    catalog = active_catalog()
    frame = catalog.to_frame()
    c1, c2, c3 = st.columns([2, 3, 1])
    kinds = c1.multiselect("Kinds", sorted(frame["kind"].unique()), key="catalog_kinds",
                           placeholder="all kinds")
    query = c2.text_input("Search id, vendor or name", key="catalog_query")
    dtype = c3.selectbox("Peak dtype (chart)", ["bf16", "fp16", "fp8", "fp32", "int8"],
                         key="catalog_dtype")
    shown = frame
    if kinds:
        shown = shown[shown["kind"].isin(kinds)]
    if query.strip():
        text = (shown["id"] + " " + shown["vendor"] + " " + shown["name"]).str.lower()
        shown = shown[text.str.contains(query.strip().lower(), regex=False)]
    st.caption(f"{len(shown)} of {len(frame)} devices. Peaks are dense; link bandwidths per "
               "direction; the cloud price is the cheapest of each provider's latest on-demand "
               "prices, with its provider and date.")
    if shown.empty:
        st.warning("No device matches the filter.")
        return
    st.plotly_chart(plots.catalog_figure(shown, dtype=dtype), key="catalog_fig")
    show_table(shown, key="catalog", file_name="catalog.csv", height=360)
    st.markdown("**Every price, with its date and source**")
    prices = catalog_prices(catalog, list(shown["id"]))
    if prices.empty:
        st.info("No price is known for these devices.")
    else:
        show_table(prices, key="catalog_prices", file_name="catalog_prices.csv")


def catalog_prices(catalog: Any, ids: list[str]) -> pd.DataFrame:
    rows = [dict(device=d.id, **p.model_dump()) for d in catalog if d.id in ids
            for p in d.prices]
    first = ["device", "kind", "provider", "contract", "usd_per_hour", "usd", "date", "source"]
    frame = pd.DataFrame(rows)
    return frame[[c for c in first if c in frame] + [c for c in frame if c not in first]]


def catalog_upload_panel() -> None:
    with st.expander("Your catalog file (TOML)", expanded=bool(catalog_source()[1])):
        st.caption("[[device]] entries with the built-in schema (hardware_catalog/schema.json). "
                   "An entry with a new id adds a device; an existing id changes the fields it "
                   "gives (prices are added). A valid file is used on every page.")
        st.file_uploader("Catalog file", type=["toml"], key="catalog_upload",
                         on_change=_store_upload)
        upload_error = st.session_state.get("user_catalog_error")
        if upload_error:
            st.error(upload_error, icon=":material/error:")
            return
        name, text = catalog_source()
        if not text:
            return
        check = cached_catalog_check(name, text)
        file_level = check[check["entry"] == 0]  # the file as a whole cannot be read
        if not file_level.empty:
            st.error(error_message(ValueError(file_level["message"].iloc[0])),
                     icon=":material/error:")
            return
        try:
            cached_catalog(name, text)
            file_error = ""
        except ValueError as err:
            file_error = str(err)
        n_bad = int((check["status"] == "error").sum())
        if n_bad or file_error:
            st.error(f"{name}: {max(n_bad, 1)} problem(s); the file is not used until they are "
                     f"fixed." + (f" {file_error}" if file_error and not n_bad else ""),
                     icon=":material/error:")
        else:
            st.success(f"{name}: {len(check)} entr{'y' if len(check) == 1 else 'ies'} valid "
                       "and in use.", icon=":material/check_circle:")
        show_table(check, key="catalog_check", file_name="catalog_check.csv")


# ---- Backtest page ------------------------------------------------------------------------------
@st.cache_data(show_spinner="Predicting the published runs...")
def cached_backtest(user_name: str, user_text: str) -> pd.DataFrame:
    return planner.backtest(catalog=cached_catalog(user_name, user_text) if user_text
                            else cached_catalog())


def page_backtest() -> None:
    name, text = catalog_source()
    try:
        cached_catalog(name, text)
    except ValueError:
        name, text = "", ""
    df = cached_backtest(name, text)
    c1, c2 = st.columns(2)
    metrics = c1.multiselect("Metrics", sorted(df["metric"].unique()), key="backtest_metrics",
                             placeholder="all metrics")
    families = c2.multiselect("Families", sorted(df["family"].dropna().unique()),
                              key="backtest_families", placeholder="all families")
    shown = df
    if metrics:
        shown = shown[shown["metric"].isin(metrics)]
    if families:
        shown = shown[shown["family"].isin(families)]
    if shown.empty:
        st.warning("No run matches the filter.")
        return
    err = shown["signed_error_frac"].astype(float)
    cols = st.columns(3)
    cols[0].metric("Runs", f"{err.notna().sum()} of {len(shown)}",
                   help="runs the engine could predict")
    cols[1].metric("Median |error|", f"{err.abs().median():.0%}")
    cols[2].metric("Median signed error", f"{err.median():+.0%}",
                   help="(predicted - published) / published; positive = predicted too high")
    left, right = st.columns(2)
    left.plotly_chart(plots.backtest_figure(shown), key="backtest_fig")
    right.plotly_chart(plots.backtest_error_figure(shown), key="backtest_error_fig")
    st.caption("published and predicted are in each metric's own unit (hours, fraction, "
               "TFLOP/s per device, tokens/s per device), as the papers give them.")
    show_table(shown, key="backtest", file_name="backtest.csv", height=360)


# ---- layout -------------------------------------------------------------------------------------
def main() -> None:
    st.set_page_config(page_title="planner: train or serve a transformer, on what hardware?",
                       page_icon=":material/memory:", layout="wide")
    st.title("planner")
    st.caption("Time, money and energy to train or serve a transformer on GPUs, TPUs, FPGAs "
               "and other accelerators; the analytic model checked against measured runs.")
    spec = sidebar_model()
    work = sidebar_workload(spec)
    tabs = st.tabs(PAGES, key="page", on_change="rerun", bind="query-params")
    renders: dict[str, tuple[Callable[..., None], tuple[Any, ...]]] = {
        "Plan": (page_plan, (spec, work)),
        "Model": (page_model, (spec, work)),
        "Validate": (page_validate, (spec, work)),
        "Catalog": (page_catalog, ()),
        "Backtest": (page_backtest, ()),
    }
    for name, tab in zip(PAGES, tabs, strict=True):
        with tab:
            if tab.open:
                render, args = renders[name]
                guarded(render, *args)


main()
