"""planner's Streamlit app: `streamlit run app.py`.

Thin by design: collect inputs, call the `planner` API, draw with `planner.plots`, offer each
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

import planner
from planner import plots
from planner.units import GB, SECONDS_PER_DAY, SECONDS_PER_HOUR, bytes_str, duration_str, si, usd_str

PAGES = ["Plan", "Model", "Validate", "Catalog", "Backtest"]
DEFAULT_MODEL = "llama-2-7b"
DEFAULT_SEQ_LEN = 4096
DEFAULT_TOKENS = 2e12
DEFAULT_GLOBAL_BATCH = 1024
EDITABLE_DIMS = ["n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size",
                 "max_seq_len", "n_experts", "experts_top_k"]
# Display units per SI column suffix: (divide by, shown label suffix).
DISPLAY_UNITS = [
    ("_flops_per_s", 1e12, "TFLOP/s"),
    ("_bytes_per_s", 1e9, "GB/s"),
    ("_flops", 1e9, "GFLOP"),
    ("_bytes", GB, "GB"),
    ("_usd_per_hour", 1.0, "$/h"),
    ("_usd", 1.0, "$"),
    ("_j", 3.6e6, "kWh"),
    ("_w", 1.0, "W"),
    ("_frac", 0.01, "%"),
]


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
def show_table(df: pd.DataFrame, *, key: str, file_name: str, height: int | None = None,
               hide: tuple[str, ...] = ()) -> None:
    """The table in display units (column headers say which), and its SI CSV download."""
    shown = df.drop(columns=[c for c in hide if c in df.columns])
    config: dict[str, Any] = {}
    for col in shown.columns:
        for suffix, scale, unit in DISPLAY_UNITS:
            if str(col).endswith(suffix) and pd.api.types.is_numeric_dtype(shown[col]):
                shown[col] = shown[col] / scale
                config[col] = st.column_config.NumberColumn(
                    f"{str(col).removesuffix(suffix)} ({unit})", format="%.4g")
                break
        else:
            if str(col).endswith("_s") and pd.api.types.is_numeric_dtype(shown[col]):
                scale, unit = _time_scale(shown[col])
                shown[col] = shown[col] / scale
                config[col] = st.column_config.NumberColumn(
                    f"{str(col).removesuffix('_s')} ({unit})", format="%.4g")
    st.dataframe(shown, column_config=config, hide_index=True, height=height or "auto",
                 key=f"{key}_table")
    st.download_button("Download CSV (SI units)", planner.to_csv_text(df), file_name=file_name,
                       mime="text/csv", key=f"{key}_csv", icon=":material/download:")


def _time_scale(seconds: pd.Series) -> tuple[float, str]:
    typical = float(seconds.median()) if len(seconds.dropna()) else 0.0
    if typical >= 2 * SECONDS_PER_DAY:
        return SECONDS_PER_DAY, "days"
    if typical >= 2 * SECONDS_PER_HOUR:
        return SECONDS_PER_HOUR, "h"
    return 1.0, "s"


def error_message(err: Exception) -> str:
    """One readable line from a ValueError (pydantic's ValidationError is one too)."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ())) or "input"
            return f"{loc}: {first.get('msg', err)}"
        except (IndexError, TypeError, AttributeError):
            pass
    return str(err)


def guarded(render: Callable[..., None], *args: Any) -> None:
    """Run one page; input problems (ValueError) become an in-page error, as does anything
    unexpected, so the user never sees a traceback."""
    try:
        render(*args)
    except ValueError as err:
        st.error(error_message(err), icon=":material/error:")
    except Exception as err:  # noqa: BLE001 - the page must never show a traceback
        st.error(f"Unexpected error ({type(err).__name__}): {err}", icon=":material/bug_report:")


def not_available(what: str) -> None:
    st.info(f"{what} is not available yet in this version of planner.",
            icon=":material/construction:")


# ---- sidebar: the model and the workload shared by every page -------------------------------------
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
                st.sidebar.info("Upload a config.json (bert, gpt2, llama, mistral, mixtral, "
                                "opt, qwen2).")
                return None
            cfg = json.loads(upload.getvalue().decode("utf-8"))
            spec = planner.model_from_hf_config(cfg, name=Path(upload.name).stem
                                                if "_name_or_path" not in cfg else None)
        return edit_dimensions(spec)
    except ValueError as err:
        st.sidebar.error(error_message(err), icon=":material/error:")
        return None


def edit_dimensions(spec: planner.ModelSpec) -> planner.ModelSpec:
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
        key=f"seq_len_{spec.name if spec else ''}")
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

    left, right = st.columns(2)
    left.plotly_chart(plots.layer_flops_figure(table), key="model_flops_fig")
    right.plotly_chart(plots.layer_bytes_figure(table), key="model_bytes_fig")
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
    with st.expander("The document's BERT example beside the per-layer model", expanded=False):
        st.caption("Sec. 4.2–4.3 of the seed document: C = L·H·M³ for BERT and an "
                   "'efficiency' from a 2.6e12 FLOP/s GPU. Each figure recomputed, with what "
                   "is wrong and what the per-layer model gives instead.")
        show_table(cached_seed_example(), key="seed", file_name="seed_example.csv")


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in name)


# ---- Plan page ----------------------------------------------------------------------------------
def page_plan(spec: planner.ModelSpec | None, work: dict[str, Any]) -> None:
    if spec is None:
        st.warning("Choose a model in the sidebar.")
        return
    if not hasattr(planner, "rank"):
        not_available("Ranking hardware (planner.rank)")
        return


# ---- Validate page ------------------------------------------------------------------------------
def page_validate(spec: planner.ModelSpec | None, work: dict[str, Any]) -> None:
    if not hasattr(planner, "validate"):
        not_available("Measured validation (planner.validate)")
        return


# ---- Catalog page -------------------------------------------------------------------------------
def page_catalog() -> None:
    if not hasattr(planner, "load_catalog"):
        not_available("The hardware catalog (planner.load_catalog)")
        return


# ---- Backtest page ------------------------------------------------------------------------------
def page_backtest() -> None:
    if not hasattr(planner, "backtest"):
        not_available("The backtest (planner.backtest)")
        return


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
