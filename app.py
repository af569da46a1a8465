"""planner's Streamlit app: `streamlit run app.py`.

Thin by design: collect inputs, call the `planner` API, draw with `planner.report.plots`, offer each
table as a CSV report (`planner.to_csv_text`: SI numbers, unit-suffixed columns, formula-safe).
No physics here. Pages are lazy tabs (only the open one runs), bound to the `?page=` query
parameter so a page can be linked. Bad input is shown with `st.error`, never a traceback.
"""

from __future__ import annotations

import json
import tempfile
import time
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
    money_str,
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
    """The layer table, bounded: beyond MAX_SHOWN_BLOCKS blocks the rest are summed
    (bounded_layers), so a 100,000-layer model stays a few thousand rows on the page."""
    spec = planner.ModelSpec.model_validate_json(spec_json)
    table = planner.layer_table(spec, seq_len=seq_len, batch_size=batch_size, mode=mode,
                                precision=precision, recompute=recompute,
                                flash_attention=flash_attention)
    return bounded_layers(table, spec)


# Blocks shown one by one on the Model page; beyond, the blocks of each row name are summed into
# one row (every block of a kind is alike), so a huge model cannot freeze the browser.
MAX_SHOWN_BLOCKS = 200


def bounded_layers(table: pd.DataFrame, spec: planner.ModelSpec,
                   max_blocks: int = MAX_SHOWN_BLOCKS) -> pd.DataFrame:
    """`table` when the model has at most `max_blocks` blocks; else the rows outside the
    blocks, blocks 0 to max_blocks - 1 (and the first block of each kind), and one row per
    row name summing the other blocks: 'blocks.200-99999.attn.q', block = n_layers. Column
    sums are unchanged."""
    n = spec.n_layers
    if n <= max_blocks:
        return table
    kept_blocks = set(range(max_blocks)) | {first for _, _, first in block_kind_summary(spec)}
    block = table["block"]
    keep = (block < 0) | block.isin(kept_blocks)
    rest = table[~keep]
    row_name = rest["layer"].str.split(".", n=2).str[2]
    numeric = [c for c in rest.columns if pd.api.types.is_numeric_dtype(rest[c])
               and rest[c].dtype != bool and c != "block"]
    summed = rest.groupby([row_name, rest["kind"]], sort=False, observed=True)[numeric].sum()
    summed = summed.reset_index(names=["row", "kind"])
    first_rest = int(rest["block"].min())
    summed.insert(0, "layer", [f"blocks.{first_rest}-{n - 1}.{r}" for r in summed.pop("row")])
    summed.insert(1, "block", n)
    for col in table.columns:
        if col not in summed:
            summed[col] = rest.groupby([row_name, rest["kind"]], sort=False,
                                       observed=True)[col].first().to_numpy()
    first_block_row = int((block >= 0).to_numpy().argmax())
    head, body = table.iloc[:first_block_row], table[keep].iloc[first_block_row:]
    inner, tail = body[body["block"] >= 0], body[body["block"] < 0]
    out = pd.concat([head, inner, summed[table.columns], tail], ignore_index=True)
    return out.astype(table.dtypes.to_dict())


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


# ---- numbers the user types ---------------------------------------------------------------------
# A number_input's min/max are enforced in the browser: a typed 0, negative or 150 % stays on
# screen while the old value is used, silently. So the app's number inputs carry no min/max;
# each value is checked here and a bad one is named in an st.error before anything is computed.
_INVALID: dict[str, str] = {}  # widget key -> "label: problem"; the script reruns afresh
_SHOWN_INVALID: set[str] = set()


def number_field(where: Any, label: str, *, key: str, value: float, step: float,
                 minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, disabled: bool = False, **kwargs: Any) -> Any:
    """st.number_input without a silent clamp: a value out of range (below `minimum`, not
    above `above`, over `maximum`) is recorded for `show_invalid` to name."""
    got = where.number_input(label, value=value, step=step, key=key, disabled=disabled,
                             **kwargs)
    problem = range_problem(got, minimum=minimum, maximum=maximum, above=above)
    if problem and not disabled:
        _INVALID[key] = f"{label}: {problem}"
    return got


def range_problem(value: float, *, minimum: float | None, maximum: float | None,
                  above: float | None) -> str:
    """'' when value is within the bounds, else what is wrong and what is allowed."""
    low = (above is not None and not value > above) or (minimum is not None and value < minimum)
    if not (low or (maximum is not None and value > maximum)):
        return ""
    def text(x: float) -> str:
        return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e18 else f"{x:,g}"

    if above is not None:
        lower = f"above {text(above)}"
    elif minimum is not None:
        lower = f"at least {text(minimum)}"
    else:
        lower = ""
    upper = f"at most {text(maximum)}" if maximum is not None else ""
    return f"{text(value)} is not allowed; allowed: {' and '.join(p for p in (lower, upper) if p)}"


def show_invalid(*prefixes: str) -> bool:
    """Show each recorded bad number whose widget key starts with one of `prefixes` as an
    st.error line (once per run); True when any is bad, so the caller stops."""
    bad = [k for k in _INVALID if k.startswith(prefixes)]
    for key in bad:
        if key not in _SHOWN_INVALID:
            _SHOWN_INVALID.add(key)
            st.error(_INVALID[key], icon=":material/error:")
    return bool(bad)


# ---- readable tables: human headers, money as "$1.15 M", durations as "21.3 d" ----------------
def number_str(value: float) -> str:
    """'1,307', '42.03', '0.6317'; '' when missing."""
    if value is None or pd.isna(value):
        return ""
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def time_str(seconds: float) -> str:
    """planner.units.duration_str, '' when missing."""
    if seconds is None or pd.isna(seconds):
        return ""
    return "0 s" if seconds == 0 else duration_str(float(seconds))


COLUMN_LABELS = {
    "rank": "#", "device": "Device", "kind": "Kind", "feasible": "Feasible",
    "reason": "Why not", "n_devices": "Devices", "tp": "TP", "cp": "CP", "pp": "PP",
    "virtual_stages": "Chunks/stage", "ep": "EP", "dp": "DP", "zero_stage": "ZeRO",
    "recompute": "Recompute", "micro_batch_size": "Micro-batch", "batch_size": "Batch",
    "replicas": "Replicas", "mfu": "MFU (%)", "pareto": "Pareto", "step_time_s": "Step",
    "ttft_s": "TTFT", "ttft_p50_s": "TTFT p50", "ttft_p99_s": "TTFT p99", "tpot_s": "TPOT",
    "tpot_p50_s": "TPOT p50", "tpot_p99_s": "TPOT p99", "prefill_s": "Prefill",
    "decode_s": "Decode", "queue_wait_s": "Queue wait",
    "cost_price_provider": "Price from", "cost_price_date": "Price date",
    "cost_price_contract": "Contract", "cost_note": "Cost note",
    "usd_per_device_hour": "Price ($/device-h)", "usd_per_hour": "Cluster ($/h)",
    "over": "Swept", "value": "Value",
}


def column_label(col: str, mode: str) -> str:
    """A ranking or sweep column's header: what it is, with its unit; serving costs and
    energy are per million output tokens."""
    per_m = " per M output tokens" if mode == "inference" else ""
    if col == "time_s":
        return "Time" if mode == "train" else "Latency"
    if col == "cost_usd":
        return f"Cost ($){per_m}"
    if col == "energy_j":
        return f"Energy (kWh){per_m}"
    if col.endswith("_cost_usd"):
        return f"{col.removesuffix('_cost_usd').replace('_', ' ').capitalize()} cost ($){per_m}"
    if col in COLUMN_LABELS:
        return COLUMN_LABELS[col]
    if col.endswith("_s") and "_per_" not in col:
        return col.removesuffix("_s").replace("_", " ").capitalize()
    unit = display_unit(col, pd.Series(dtype=float))
    label = unit[1] if unit else col.replace("_", " ")
    return label[:1].upper() + label[1:]


def readable_frame(df: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A ranking or sweep frame for the eye: durations as '21.3 d', money as '$1.15 M', other
    SI columns in a display unit, missing values blank; column keys unchanged (the headers
    are column_config labels)."""
    shown = pd.DataFrame(index=df.index)
    config: dict[str, Any] = {}
    for col in df.columns:
        values, label = df[col], column_label(str(col), mode)
        if values.dtype == bool or pd.api.types.is_integer_dtype(values):
            shown[col] = values
        elif pd.api.types.is_numeric_dtype(values):
            name = str(col)
            if name.endswith("usd") or "usd_per" in name:
                shown[col] = values.map(money_str)
            elif name.endswith("_s") and "_per_" not in name:
                shown[col] = values.map(time_str)
            else:
                unit = display_unit(name, values)
                scaled = values / unit[0] if unit else values
                shown[col] = scaled.map(number_str)
        else:
            shown[col] = values.astype(object).where(values.notna(), "").map(
                lambda v: "" if v is None else str(v) if not isinstance(v, bool) else v)
        config[col] = st.column_config.Column(label)
    return shown, config


def show_readable_table(df: pd.DataFrame, *, mode: str, key: str, file_name: str,
                        height: int | None = None) -> None:
    """A ranking-like table with human headers and values; the CSV keeps SI snake_case."""
    shown, config = readable_frame(df, mode)
    st.dataframe(shown, column_config=config, hide_index=True, height=height or "auto",
                 key=f"{key}_table")
    st.download_button("Download CSV (SI units, snake_case columns)", planner.to_csv_text(df),
                       file_name=file_name, mime="text/csv", key=f"{key}_csv",
                       icon=":material/download:")


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
            value = number_field(st, dim, minimum=1, maximum=MAX_WIDGET_INT,
                                 value=int(current), step=1, key=f"dim_{spec.name}_{dim}")
            if value != current:
                changes[dim] = int(value)
    bad = [k for k in _INVALID if k.startswith(f"dim_{spec.name}_")]
    if bad:
        raise ValueError("; ".join(_INVALID.pop(k) for k in bad))
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
    seq_len = number_field(
        st.sidebar, "Sequence length (tokens)", minimum=1, maximum=MAX_WIDGET_INT,
        value=min(max_len, DEFAULT_SEQ_LEN), step=128,
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
    batch = number_field(c1, "Batch (sequences per step)", minimum=1, maximum=MAX_WIDGET_INT,
                         value=1, step=1, key="model_batch")
    recompute = c2.selectbox("Activation recomputation", ["none", "selective", "full"],
                             key="model_recompute", disabled=work["mode"] != "train")
    flash = c3.toggle("Fused (flash) attention", value=planner.DEFAULT_FLASH_ATTENTION,
                      key="model_flash")
    if show_invalid("model_", "seq_len"):
        return
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
    n = spec.n_layers
    what = (f"all {n} blocks" if n <= MAX_SHOWN_BLOCKS
            else f"the first {MAX_SHOWN_BLOCKS} of {n:,} blocks")
    every = st.toggle(f"Chart {what} (default: {default})", value=False,
                      key="model_all_blocks")
    charted = table[table["block"] < n] if every else first_block_of_each_kind(table, spec)
    if n > MAX_SHOWN_BLOCKS:
        st.caption(f"{n:,} blocks: the charts show at most the first {MAX_SHOWN_BLOCKS:,} "
                   f"({n - MAX_SHOWN_BLOCKS:,} omitted; every block of a kind is alike), and "
                   f"the table sums blocks {MAX_SHOWN_BLOCKS:,}-{n - 1:,} into one row per "
                   "row name (totals unchanged). `planner layers` lists every row.",
                   help=None)
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
SEARCHED = "search"  # a layout select left to the search
# The sweep panel's fields (any numeric job field works in the API; these are the usual ones)
# and the values it starts with, as multiples of the job's value (None: these counts).
SWEEP_FIELDS = {
    "train": {"seq_len": "Sequence length (tokens)", "n_tokens": "Training tokens",
              "global_batch_size": "Global batch (sequences)", "n_devices": "Devices"},
    "inference": {"prompt_len": "Prompt (tokens)", "output_len": "Output (tokens)",
                  "requests_per_s": "Load (requests/s)"},
}
SWEEP_MULTIPLES = (0.5, 1.0, 2.0, 4.0)
SWEEP_DEVICE_COUNTS = (64, 256, 1024, 4096)
MAX_SWEEP_VALUES = 12


@st.cache_data(show_spinner="Searching devices and layouts...", max_entries=32)
def cached_rank(job_kind: str, job_json: str, devices: tuple[str, ...], kinds: tuple[str, ...],
                objective: str, cost_json: str, catalog_name: str, catalog_text: str
                ) -> pd.DataFrame:
    job = job_from_json(job_kind, job_json)
    cost = planner.CostOptions.model_validate_json(cost_json)
    catalog = cached_catalog(catalog_name, catalog_text) if catalog_text else cached_catalog()
    return planner.rank(job, catalog, devices=list(devices) or None, kinds=list(kinds) or None,
                        objective=objective, cost=cost)


def job_from_json(job_kind: str, job_json: str) -> Any:
    job_type = planner.TrainingJob if job_kind == "train" else planner.InferenceJob
    return job_type.model_validate_json(job_json)


@st.cache_resource(show_spinner=False, max_entries=32)
def cached_plan_figures(*query: Any) -> dict[str, Any]:
    """The Plan page's two overview figures, built once per query (a rerun only sends them)."""
    ranking = cached_rank(*query)
    return {"pareto": plots.pareto_figure(ranking, title=plan_scatter_title(query[0])),
            "memory": plots.memory_capacity_figure(ranking[ranking["feasible"]])}


@st.cache_resource(show_spinner=False, max_entries=64)
def cached_layout_figure(device: str, *query: Any) -> Any:
    ranking = cached_rank(*query)
    row = ranking[ranking["device"] == device].iloc[0]
    return plots.layout_memory_figure(row, title=f"Memory on one {device}")


@st.cache_data(show_spinner="Sweeping: one search per value...", max_entries=16)
def cached_sweep(job_kind: str, job_json: str, devices: tuple[str, ...],
                 kinds: tuple[str, ...], objective: str, cost_json: str, catalog_name: str,
                 catalog_text: str, over: str, values: tuple[float, ...]) -> pd.DataFrame:
    job = job_from_json(job_kind, job_json)
    catalog = cached_catalog(catalog_name, catalog_text) if catalog_text else cached_catalog()
    return planner.sweep(job, over=over, values=list(values), devices=list(devices) or None,
                         kinds=list(kinds) or None, objective=objective, catalog=catalog,
                         cost=planner.CostOptions.model_validate_json(cost_json))


def plan_inputs(spec: planner.ModelSpec, work: dict[str, Any]) -> dict[str, Any]:
    """The workload's main fields (train or serve) from the page's first row of inputs."""
    if work["mode"] == "train":
        c1, c2, c3 = st.columns(3)
        tokens_b = number_field(c1, "Training tokens (billions)", above=0.0,
                                value=DEFAULT_TOKENS / 1e9, step=100.0, key="plan_tokens_b")
        batch = number_field(c2, "Global batch (sequences)", minimum=1,
                             value=DEFAULT_GLOBAL_BATCH, step=64, key="plan_global_batch")
        deadline_d = number_field(c3, "Deadline (days, 0 = none)", minimum=0.0,
                                  value=DEFAULT_DEADLINE_DAYS, step=1.0, key="plan_deadline_d",
                                  help="With a deadline, Fastest is the quickest plan and "
                                  "Cheapest the cheapest plan that meet it.")
        f1, f2, f3 = st.columns(3)
        adapter = f1.selectbox("Fine-tuning", ["none", "lora", "qlora"], key="plan_adapter",
                               help="LoRA adapters on a frozen base, or QLoRA (4-bit base); "
                               "none trains every weight (docs/planning.md P30-P32).")
        lora_rank = number_field(f2, "LoRA rank", minimum=1, value=16, step=8,
                                 key="plan_lora_rank", disabled=adapter == "none")
        offload = f3.checkbox("Optimizer in host memory", key="plan_offload",
                              help="ZeRO-Offload: gradients and optimizer state on the CPU.")
        tuning = dict(adapter=adapter, lora_rank=int(lora_rank)) if adapter != "none" else {}
        return dict(model=spec, n_tokens=float(tokens_b) * 1e9, seq_len=work["seq_len"],
                    global_batch_size=int(batch), precision=work["precision"],
                    deadline_s=float(deadline_d) * SECONDS_PER_DAY if deadline_d > 0 else None,
                    optimizer_offload=bool(offload), **tuning)
    encoder = not (spec.causal and spec.lm_head)
    c1, c2, c3, c4, c5 = st.columns(5)
    prompt = number_field(c1, "Prompt (tokens)", minimum=1, step=128,
                          value=1024 if not encoder else 128, key="plan_prompt_len")
    output = number_field(c2, "Output (tokens)", minimum=0, value=256 if not encoder else 0,
                          step=64, key="plan_output_len",
                          help="0 serves an encoder (or scores prompts): one forward pass "
                          "per request.")
    rate = number_field(c3, "Load (requests/s)", above=0.0, value=10.0, step=1.0,
                        key="plan_requests_per_s")
    ttft_ms = number_field(c4, "TTFT target (ms, 0 = none)", minimum=0.0, value=0.0,
                           step=100.0, key="plan_ttft_ms")
    tpot_ms = number_field(c5, "TPOT target (ms, 0 = none)", minimum=0.0, value=0.0,
                           step=10.0, key="plan_tpot_ms")
    return dict(model=spec, prompt_len=int(prompt), output_len=int(output),
                requests_per_s=float(rate), precision=work["precision"],
                ttft_s=ttft_ms / 1e3 if ttft_ms > 0 else None,
                tpot_s=tpot_ms / 1e3 if tpot_ms > 0 else None)


def plan_options(mode: str, catalog: Any) -> tuple[list[str], dict[str, Any]]:
    """(devices to consider, [] = all; job fields) from the Options expander: devices, a fixed
    cluster, layout pins and efficiency overrides. Untouched, it changes nothing."""
    train = mode == "train"
    with st.expander("Options: devices, my cluster, layout pins, efficiency"):
        devices = st.multiselect("Devices", catalog.ids(), key="plan_devices",
                                 placeholder="all devices in the catalog",
                                 format_func=device_name)
        o1, o2, o3 = st.columns(3)
        count = number_field(
            o1, "I have N devices (0 = search)" if train else "At most N devices (0 = 16,384)",
            minimum=0, maximum=MAX_WIDGET_INT, value=0, step=8, key=f"plan_fixed_n_{mode}",
            help="Training: plan on exactly this many devices (n_devices). Serving: the "
            "replicas may use at most this many (max_devices).")
        tp = number_field(o2, "TP (0 = search)", minimum=0, value=0, step=1,
                          key=f"plan_tp_{mode}")
        pp = number_field(o3, "PP (0 = search)", minimum=0, value=0, step=1,
                          key=f"plan_pp_{mode}")
        fields: dict[str, Any] = {}
        if count:
            fields["n_devices" if train else "max_devices"] = int(count)
        fields.update({k: int(v) for k, v in (("tp", tp), ("pp", pp)) if v})
        l1, l2, l3 = st.columns(3)
        if train:
            zero = l1.selectbox("ZeRO stage", [SEARCHED, 0, 1, 2, 3], key="plan_zero")
            micro = number_field(l2, "Micro-batch (0 = search)", minimum=0, value=0, step=1,
                                 key="plan_micro_batch")
            recompute = l3.selectbox("Recompute", [SEARCHED, "none", "selective", "full"],
                                     key="plan_recompute")
            if zero != SEARCHED:
                fields["zero_stage"] = int(zero)
            if micro:
                fields["micro_batch_size"] = int(micro)
            if recompute != SEARCHED:
                fields["recompute"] = recompute
        else:
            batch = number_field(l1, "Batch per replica (0 = search)", minimum=0, value=0,
                                 step=8, key="plan_batch_size")
            max_batch = number_field(l2, "Max batch searched", minimum=1, value=512, step=64,
                                     key="plan_max_batch")
            if batch:
                fields["batch_size"] = int(batch)
            if max_batch != 512:
                fields["max_batch_size"] = int(max_batch)
        e1, e2, e3, e4 = st.columns(4)
        flat = e1.toggle("Flat fraction of peak", key="plan_flat",
                         help="Replace the kernel tables by one fraction of the dense peak for "
                         "every GEMM and attention kernel (compute_frac); not an MFU.")
        frac = e2.slider("Fraction of peak (%)", 1, 100, 50, key="plan_compute_frac",
                         disabled=not flat)
        network = number_field(e3, "Network rate × (1 = tables)", above=0.0, maximum=1e6,
                               value=1.0, step=0.1, key="plan_network_scale",
                               help="Multiplies the collective rates (network_scale).")
        memory = number_field(e4, "Memory rate × (1 = tables)", above=0.0, maximum=1e6,
                              value=1.0, step=0.1, key="plan_memory_scale",
                              help="Multiplies the memory-copy rates (memory_scale).")
        if flat:
            fields["compute_frac"] = frac / 100
        overrides = {k: float(v) for k, v in (("network_scale", network),
                                              ("memory_scale", memory)) if v != 1.0}
        if overrides:
            fields["efficiency_overrides"] = overrides
    return list(devices), fields


def serving_options(spec: planner.ModelSpec) -> dict[str, Any]:
    """The serving features (docs/planning.md P19-P19k) as InferenceJob fields; defaults are
    the API's, so an untouched expander changes nothing."""
    with st.expander("Serving options: percentiles, chunked prefill, KV cache, speculation"):
        o1, o2, o3, o4 = st.columns(4)
        percentile = o1.selectbox("Targets apply at", [99.0, 95.0, 90.0, 50.0],
                                  format_func=lambda p: f"p{p:g}", key="plan_percentile")
        chunk = number_field(o2, "Prefill chunk (tokens per step, 0 = none)", minimum=0,
                             value=8192, step=512, key="plan_prefill_chunk",
                             help="vLLM's max_num_batched_tokens: decodes and prompt chunks "
                             "share each step (Sarathi-Serve).")
        kv = o3.selectbox("KV cache dtype", ["auto", "bf16", "fp16", "fp8"], key="plan_kv",
                          help="auto: fp8 under fp8/fp4 serving, else 16-bit.")
        util = number_field(o4, "Target utilization (%)", above=0.0, maximum=100.0,
                            value=80.0, step=5.0, key="plan_target_util",
                            help="Replicas are sized so the load uses at most this share "
                            "of their capacity (queueing headroom).")
        s1, s2, s3, s4 = st.columns(4)
        hit = number_field(s1, "Prefix-cache hits (%)", minimum=0.0, maximum=99.0,
                           value=0.0, step=10.0, key="plan_prefix_hit")
        spec_tokens = number_field(s2, "Speculative tokens (0 = off)", minimum=0,
                                   maximum=16, value=0, step=1, key="plan_spec_tokens")
        accept = number_field(s3, "Acceptance rate (%)", above=0.0, maximum=99.0,
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
    if spec_tokens > 0:
        fields.update(speculative_tokens=int(spec_tokens),
                      acceptance_rate=float(accept) / 100.0, draft_model=draft)
    return fields


CHEAPEST_PROVIDER = "cheapest of each device's providers"
CONTRACTS = ["on-demand", "reserved", "spot", "capacity-block", "any"]


def plan_cost_options(catalog: Any) -> dict[str, Any]:
    """CostOptions fields from the Money and energy expander (built once every input on the
    page is checked)."""
    defaults = planner.CostOptions()
    with st.expander("Money and energy: cloud or ownership, provider, my own price, "
                     "electricity, PUE, lifetime, servers and facility"):
        c1, c2, c3, c4, c5 = st.columns(5)
        basis = c1.radio("Cost basis", ["cloud", "ownership"], key="plan_basis",
                         help="cloud: rent at the cheapest of each provider's latest on-demand "
                         "prices in the catalog (a larger offer for a job beyond one node, "
                         "or flagged); ownership: chips, servers, network and facility "
                         "amortized over the lifetime, plus electricity")
        providers = sorted({p.provider for d in catalog for p in d.prices
                            if p.kind == "cloud"})
        provider = c2.selectbox("Cloud provider", [CHEAPEST_PROVIDER, *providers],
                                key="plan_provider", disabled=basis != "cloud",
                                help="A device this provider does not list has no cloud price.")
        contract = c3.selectbox("Contract", CONTRACTS, key="plan_contract",
                                disabled=basis != "cloud")
        own_hour = number_field(c4, "My price ($/device-hour, 0 = catalog)", minimum=0.0,
                                maximum=1e4, value=0.0, step=0.25, key="plan_usd_per_hour",
                                disabled=basis != "cloud",
                                help="One cloud price for every device, instead of the "
                                "catalog's.")
        own_buy = number_field(c5, "My purchase price ($/device, 0 = catalog)", minimum=0.0,
                               maximum=1e8, value=0.0, step=1000.0, key="plan_purchase_usd",
                               disabled=basis != "ownership")
        e1, e2, e3, e4 = st.columns(4)
        kwh = number_field(e1, "Electricity ($/kWh)", minimum=0.0, maximum=10.0,
                           value=defaults.usd_per_kwh, step=0.01, format="%.3f",
                           key="plan_usd_per_kwh")
        pue = number_field(e2, "PUE", minimum=1.0, maximum=3.0, value=defaults.pue, step=0.05,
                           key="plan_pue")
        years = number_field(e3, "Lifetime (years)", above=0.0, maximum=50.0,
                             value=defaults.lifetime_years, step=0.5, key="plan_lifetime")
        util = number_field(e4, "Utilization (%)", above=0.0, maximum=100.0,
                            value=defaults.ownership_utilization_frac * 100, step=5.0,
                            key="plan_utilization",
                            help="share of its lifetime an owned device does paid work")
        d1, d2, d3, d4 = st.columns(4)
        server = number_field(d1, "Server cost factor", minimum=1.0, maximum=10.0,
                              value=defaults.server_cost_factor, step=0.05,
                              key="plan_server_factor",
                              help="server cost over its accelerators' (Epoch AI: 1.3-2.1)")
        network = number_field(d2, "Network cost factor", minimum=1.0, maximum=10.0,
                               value=defaults.network_cost_factor, step=0.01,
                               key="plan_network_factor",
                               help="cluster with interconnect over servers (Epoch AI: "
                               "1.07-1.32)")
        facility = number_field(d3, "Facility ($/kW-month)", minimum=0.0, maximum=1e4,
                                value=defaults.facility_usd_per_kw_month, step=10.0,
                                key="plan_facility",
                                help="colocation per kW of system power (CBRE H2 2024 "
                                "average: $184.06); 0 leaves it out")
        power = number_field(d4, "Busy draw (% of TDP above idle)", above=0.0,
                             maximum=100.0, value=defaults.power_frac * 100, step=5.0,
                             key="plan_power_frac")
    prices: dict[str, Any] = {}
    if basis == "cloud":
        prices = dict(provider=None if provider == CHEAPEST_PROVIDER else provider,
                      contract=None if contract == "any" else contract,
                      usd_per_device_hour=float(own_hour) if own_hour > 0 else None)
    elif own_buy > 0:
        prices = dict(purchase_usd=float(own_buy))
    return dict(basis=basis, usd_per_kwh=kwh, pue=pue, lifetime_years=years,
                ownership_utilization_frac=util / 100, server_cost_factor=server,
                network_cost_factor=network, facility_usd_per_kw_month=facility,
                power_frac=power / 100, **prices)


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
    n = number_field(c2, "Devices", minimum=1, maximum=1024, value=1, step=1,
                     key="fits_n_devices", help="one replica: tensor parallel, or tp × pp "
                     "pipeline stages where that holds more sequences")
    policies = list(planner.PRECISION_POLICIES)
    precision = c3.selectbox("Precision", policies, index=policies.index("bf16"),
                             key="fits_precision")
    # defaults within the model's context (GPT-2: 768 + 256); keyed per model, so they reset
    output_default = max(1, min(256, spec.max_seq_len // 4))
    prompt = number_field(c4, "Prompt (tokens)", minimum=1, step=128,
                          value=max(1, min(1024, spec.max_seq_len - output_default)),
                          key=f"fits_prompt_len_{spec.name}")
    output = number_field(c5, "Output (tokens)", minimum=1, value=output_default, step=64,
                          key=f"fits_output_len_{spec.name}")
    if show_invalid("fits_"):
        return
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
    cols[2].metric("Max context (tokens)", f"{r['max_context_len']:,}")
    speed = r["tokens_per_s"]
    cols[3].metric("Decode (tok/s)", "—" if speed is None else f"{speed:,.0f}",
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
    fields = plan_inputs(spec, work)
    devices, options = plan_options(work["mode"], catalog)
    if work["mode"] == "inference":
        fields |= serving_options(spec)
    c1, c2 = st.columns([3, 2])
    all_kinds = sorted({d.kind for d in catalog})
    kinds = c1.multiselect("Kinds of hardware", all_kinds, key="plan_kinds",
                           placeholder="all kinds", format_func=str.upper)
    objective = c2.radio("Objective", list(OBJECTIVES), index=1, key="plan_objective",
                         horizontal=True,
                         format_func=lambda o: f"{o} ({OBJECTIVES[o]} first)")
    cost_fields = plan_cost_options(catalog)
    if show_invalid("plan_", "seq_len"):
        return
    job = (planner.TrainingJob if work["mode"] == "train" else planner.InferenceJob)(
        **fields, **options)
    cost = planner.CostOptions(**cost_fields)
    name, text = catalog_source()
    if text and catalog is cached_catalog():
        st.warning(f"Your catalog file {name} is invalid and not used; the Catalog page says "
                   "why.")
        name, text = "", ""
    elif text:
        st.caption(f"Using your catalog file {name} on top of the built-in catalog.")
    query = (work["mode"], job.model_dump_json(), tuple(devices), tuple(kinds), objective,
             cost.model_dump_json(), name, text)
    ranking = cached_rank(*query)
    # Each headline card comes from the ranking by its own objective: the fastest plan is not
    # among the cheapest plans per device, and vice versa (all cached, ~0.1 s each cold).
    by_objective = {o: ranking if o == objective else cached_rank(*with_objective(query, o))
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
    per_m = "; serving costs and energy are per million output tokens" if (
        work["mode"] == "inference") else ""
    st.markdown(f"**Ranking** (best configuration per device; infeasible devices last, with "
                f"the reason{per_m})")
    order = [c for c in RANKING_FIRST if c in ranking] + [
        c for c in ranking if c not in RANKING_FIRST]
    show_readable_table(ranking[order], mode=work["mode"], key="plan_ranking",
                        file_name="ranking.csv", height=380)
    plan_layout(ranking, query)
    plan_sweep(job, query)


def with_objective(query: tuple[Any, ...], objective: str) -> tuple[Any, ...]:
    """The Plan page's query (mode, job, devices, kinds, objective, cost, catalog) for
    another objective."""
    return (*query[:4], objective, *query[5:])


def plan_scatter_title(mode: str) -> str:
    if mode == "train":
        return "Time to train vs cost (Pareto frontier dotted)"
    return "Request latency vs cost per million output tokens"


HEADLINE_CARDS = [("Fastest", "time", "time_s"), ("Cheapest", "cost", "cost_usd"),
                  ("Least energy", "energy", "energy_j")]


def infeasible_text(job: Any, ranking: pd.DataFrame) -> str:
    """Why nothing is feasible: the library's one-line summary (the failed constraint and how
    far the best plan is), capitalized as a sentence."""
    text = planner.infeasible_summary(job, ranking)
    return text[:1].upper() + text[1:]


def card_value(best: pd.Series, metric: str, mode: str) -> str:
    """A headline card's value: its own figure first, then the other that matters beside it
    ('$1.15 M · 9.6 y')."""
    per_m = "/M tok" if mode == "inference" else ""
    time, money = time_str(best["time_s"]), money_str(best["cost_usd"])
    money = f"{money}{per_m}" if money else "no price"
    if metric == "time_s":
        return f"{time} · {money}"
    if metric == "cost_usd":
        return f"{money} · {time}"
    return f"{energy_str(best['energy_j'])}{per_m} · {time}"


def plan_headline(job: Any, mode: str, by_objective: dict[str, pd.DataFrame]) -> None:
    if mode == "train":
        within = f" within {duration_str(job.deadline_s)}" if job.deadline_s else ""
        st.subheader(f"Train {job.model.name} on {si(job.n_tokens, '').replace(' ', '')} "
                     f"tokens{within}: who is fastest and cheapest?")
    else:
        st.subheader(f"Serve {job.model.name} at {job.requests_per_s:g} requests/s "
                     f"({job.prompt_len} in, {job.output_len} out): who is fastest and "
                     "cheapest?")
    for warning in job.warnings:
        st.warning(warning, icon=":material/warning:")
    if not any(df["feasible"].any() for df in by_objective.values()):
        st.warning(infeasible_text(job, by_objective["time"]), icon=":material/block:")
        return
    cols = st.columns(3)
    for col, (label, objective, metric) in zip(cols, HEADLINE_CARDS, strict=True):
        ranking = by_objective[objective]
        valid = ranking[ranking["feasible"]].dropna(subset=[metric])
        if valid.empty:
            col.metric(label, "—", help=f"no feasible plan has a {metric} "
                       "(no price or no power figure in the catalog)")
            continue
        best = valid.loc[valid[metric].idxmin()]
        col.metric(f"{label}: {int(best['n_devices'])} × **{device_name(best['device'])}**",
                   card_value(best, metric, mode),
                   help=f"{time_str(best['time_s'])}, {money_str(best['cost_usd']) or 'no price'}"
                   f"{' per M output tokens' if mode == 'inference' else ''}, "
                   f"{energy_str(best['energy_j'])}; TP {best['tp']} · PP {best['pp']} · "
                   f"DP {best['dp']}")


def device_name(device_id: str) -> str:
    try:
        return active_catalog().get(device_id).name
    except ValueError:
        return device_id


def sweep_values(text: str, over: str) -> list[float]:
    """The comma-separated values of the sweep panel; InputError naming the field when one is
    not a number or there are none or too many."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise InputError(f"values of {over}", "none given; allowed: comma-separated numbers")
    if len(parts) > MAX_SWEEP_VALUES:
        raise InputError(f"values of {over}", f"{len(parts)} given; allowed: at most "
                         f"{MAX_SWEEP_VALUES} (each is one search)")
    values = []
    for part in parts:
        try:
            values.append(float(part.replace("_", "")))
        except ValueError:
            raise InputError(f"values of {over}", f"{clip(part)} is not a number") from None
    return values


def default_sweep_text(job: Any, over: str) -> str:
    """Values to start from: the job's own value halved, kept, doubled and quadrupled."""
    current = getattr(job, over, None)
    if over == "n_devices" or current is None:
        return ", ".join(f"{n:,}".replace(",", "") for n in SWEEP_DEVICE_COUNTS)
    values = [current * m for m in SWEEP_MULTIPLES]
    if isinstance(current, int):
        return ", ".join(str(max(1, round(v))) for v in values)
    return ", ".join(f"{v:g}" for v in values)


def plan_sweep(job: Any, query: tuple[Any, ...]) -> None:
    """Sweep one job field: each value's best plan per device, cost and time against it."""
    with st.expander("Sweep a parameter: cost and time against sequence length, tokens, "
                     "batch, devices or load"):
        mode = query[0]
        fields = SWEEP_FIELDS[mode]
        c1, c2, c3 = st.columns([2, 4, 1])
        over = c1.selectbox("Field", list(fields), format_func=lambda f: fields[f],
                            key=f"plan_sweep_over_{mode}")
        text = c2.text_input("Values (comma-separated)", value=default_sweep_text(job, over),
                             key=f"plan_sweep_values_{mode}_{over}",
                             help="Each value is one full search; the other inputs as above.")
        values = tuple(sweep_values(text, over))
        inputs = (*query, over, values)
        c3.markdown("&nbsp;")  # align the button with the inputs
        if c3.button("Run", key="plan_sweep_run", type="primary"):
            st.session_state["plan_sweep_result"] = (inputs, cached_sweep(*inputs))
        stored = st.session_state.get("plan_sweep_result")
        if stored is None:
            st.caption("Press Run: one search per value, a few seconds each for training.")
            return
        if stored[0] != inputs:
            st.caption("The inputs changed since this sweep; press Run to sweep again.")
        result = stored[1]
        left, right = st.columns(2)
        left.plotly_chart(plots.sweep_figure(result, metric="cost_usd"),
                          key="plan_sweep_cost_fig")
        right.plotly_chart(plots.sweep_figure(result, metric="time_s"),
                           key="plan_sweep_time_fig")
        show_readable_table(result, mode=stored[0][0], key="plan_sweep",
                            file_name=f"sweep_{stored[0][-2]}.csv", height=300)


def plan_layout(ranking: pd.DataFrame, query: tuple[Any, ...]) -> None:
    ok = ranking[ranking["feasible"]]
    if ok.empty:
        return
    st.markdown("**Chosen layout**")
    device = st.selectbox("Device", list(ok["device"]), key="plan_layout_device",
                          format_func=device_name)
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
    plan_breakeven(row, query)


def plan_breakeven(row: pd.Series, query: tuple[Any, ...]) -> None:
    """Renting against owning the chosen plan's devices, by months of use."""
    n = int(row["n_devices"])
    result = cached_breakeven(str(row["device"]), n, *query[5:])
    with st.expander(f"Rent or buy {n:,} × {device_name(str(row['device']))}? Cost against "
                     "months of use"):
        st.plotly_chart(plots.breakeven_figure(result), key="plan_breakeven_fig")
        if result.note:
            st.caption(result.note)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_breakeven(device: str, n_devices: int, cost_json: str, catalog_name: str,
                     catalog_text: str) -> Any:
    catalog = cached_catalog(catalog_name, catalog_text) if catalog_text else cached_catalog()
    return planner.breakeven(device, n_devices=n_devices, catalog=catalog,
                             cost=planner.CostOptions.model_validate_json(cost_json))


# ---- Validate page ------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def torch_devices() -> list[str]:
    """Devices a measured run can use here (imports torch, once, when the page opens)."""
    try:
        import torch
    except ImportError:
        return []
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


# Wall time of the Validate page's default run (GPT-2, 2 layers, 128 × 2 tokens, train, CPU,
# timing on; torch imported) on the 2-core build machine, 2026-12-03: 13.0 and 13.8 s.
VALIDATE_DEFAULT_S = 14.0


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
        start = time.perf_counter()
        result = run_validation(*inputs)
        st.session_state["val_result"] = (inputs, result, time.perf_counter() - start)
    stored = st.session_state.get("val_result")
    if stored is None:
        st.info(f"Press the button to measure: GPT-2 with 2 layers took {VALIDATE_DEFAULT_S:.0f} s "
                "on a 2-core CPU with timing on (measured 2026-12-03); more layers, longer "
                "sequences and the timing take longer.")
        return
    st.caption(f"This run took {duration_str(stored[2])} on this machine.")
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
