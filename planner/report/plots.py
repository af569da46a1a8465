"""Figures: a DataFrame from the planner API in, a plotly `go.Figure` out.

Every function here is pure (no I/O, no streamlit) so the app, notebooks and tests share them.
Data arrive in SI units (FLOP, byte, second, USD); conversion to display units (TFLOP, GB,
days) happens only here, and every axis title says its unit.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from planner.units import GB, JOULES_PER_KWH, SECONDS_PER_DAY, SECONDS_PER_HOUR, SECONDS_PER_YEAR

if TYPE_CHECKING:
    from planner.plan.breakeven import BreakEven

# One colour per device kind, stable across figures (Okabe-Ito, colour-blind safe).
KIND_COLORS = {
    "gpu": "#0072B2",
    "tpu": "#E69F00",
    "fpga": "#009E73",
    "asic": "#CC79A7",
    "other": "#999999",
}
# Colours for memory components, in stacking order.
MEMORY_COMPONENTS = {
    "weight_bytes": ("weights", "#0072B2"),
    "grad_bytes": ("gradients", "#E69F00"),
    "optimizer_bytes": ("optimizer state", "#009E73"),
    "activation_bytes": ("activations", "#CC79A7"),
    "kv_cache_bytes": ("KV cache", "#D55E00"),
}
LAYER_KIND_COLORS = {
    "embedding": "#999999",
    "norm": "#56B4E9",
    "linear": "#0072B2",
    "attention": "#D55E00",
    "softmax": "#E69F00",
    "activation": "#009E73",
    "router": "#CC79A7",
    "loss": "#000000",
}
MAX_TICK_LABELS = 60  # more layers than this: no per-layer tick labels (hover shows the name)
_LAYOUT = dict(margin=dict(l=60, r=20, t=90, b=40),
               legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0,
                           traceorder="normal"))


def _title(text: str) -> dict:
    """Title at the top left, above the legend (which sits on top of the plot area)."""
    return dict(text=text, x=0.01, xanchor="left", y=0.98, yanchor="top")


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title=_title(title), xaxis_visible=False, yaxis_visible=False, **_LAYOUT)
    return fig


# ---- Model page ---------------------------------------------------------------------------------
def layer_flops_figure(table: pd.DataFrame, *, title: str = "Compute C per layer") -> go.Figure:
    """Bars of forward + backward FLOPs per layer (one trace per layer kind, stacked fwd/bwd)."""
    _require(table, ["layer", "kind", "fwd_flops"], "layer table")
    bwd = table["bwd_flops"] if "bwd_flops" in table else pd.Series(0.0, index=table.index)
    fig = go.Figure()
    for kind, rows in table.groupby("kind", sort=False):
        total = rows["fwd_flops"] + bwd.loc[rows.index]
        fig.add_bar(
            x=rows["layer"], y=total, name=str(kind),
            marker_color=LAYER_KIND_COLORS.get(str(kind), "#999999"),
            customdata=np.stack([rows["fwd_flops"], bwd.loc[rows.index]], axis=-1),
            hovertemplate="%{x}<br>fwd %{customdata[0]:.3s}FLOP<br>bwd %{customdata[1]:.3s}FLOP"
                          "<extra>" + str(kind) + "</extra>",
        )
    label = "forward + backward FLOP" if bwd.sum() > 0 else "forward FLOP"
    fig.update_layout(title=_title(title), barmode="overlay", bargap=0.1,
                      xaxis=dict(title="layer", categoryorder="array",
                                 categoryarray=list(table["layer"]),
                                 showticklabels=len(table) <= MAX_TICK_LABELS, tickangle=-45),
                      yaxis=dict(title=label, tickformat="~s"), **_LAYOUT)
    return fig


def layer_bytes_figure(table: pd.DataFrame, *, title: str = "Storage S per layer") -> go.Figure:
    """Stacked bars of resident bytes per layer: weights, gradients, optimizer, activations, KV."""
    _require(table, ["layer", "weight_bytes"], "layer table")
    fig = go.Figure()
    for col, (label, color) in MEMORY_COMPONENTS.items():
        if col not in table or not (table[col] > 0).any():
            continue
        fig.add_bar(x=table["layer"], y=table[col] / GB, name=label, marker_color=color,
                    hovertemplate="%{x}<br>%{y:.4g} GB<extra>" + label + "</extra>")
    fig.update_layout(title=_title(title), barmode="stack", bargap=0.1,
                      xaxis=dict(title="layer", showticklabels=len(table) <= MAX_TICK_LABELS,
                                 tickangle=-45),
                      yaxis=dict(title="GB (10⁹ bytes)"), **_LAYOUT)
    return fig


def memory_breakdown_figure(table: pd.DataFrame, *, label: str = "whole model",
                            title: str = "Memory breakdown") -> go.Figure:
    """One horizontal stacked bar: total weights, gradients, optimizer, activations, KV cache.

    `table` is a layer table (summed here) or any frame with the *_bytes component columns.
    """
    _require(table, ["weight_bytes"], "memory table")
    fig = go.Figure()
    for col, (name, color) in MEMORY_COMPONENTS.items():
        value = float(table[col].sum()) if col in table else 0.0
        fig.add_bar(y=[label], x=[value / GB], name=name, orientation="h", marker_color=color,
                    text=[f"{value / GB:.3g} GB" if value > 0 else ""], textposition="inside",
                    hovertemplate=name + ": %{x:.4g} GB<extra></extra>")
    fig.update_layout(title=_title(title), barmode="stack", height=230,
                      xaxis=dict(title="GB (10⁹ bytes)"), yaxis=dict(title=""), **_LAYOUT)
    return fig


# ---- Plan page ----------------------------------------------------------------------------------
def _time_unit(seconds: pd.Series) -> tuple[float, str]:
    """Pick years, days, hours, minutes, seconds or milliseconds for an axis from the typical
    value."""
    typical = float(seconds.median()) if len(seconds) else 0.0
    for scale, unit in ((SECONDS_PER_YEAR, "years"), (SECONDS_PER_DAY, "days"),
                        (SECONDS_PER_HOUR, "hours"), (60.0, "minutes")):
        if typical >= 2 * scale:
            return scale, unit
    if 0 < typical < 1:
        return 1e-3, "ms"
    return 1.0, "s"


# ---- axis ticks that read as numbers -----------------------------------------------------------
# Plotly labels the minor ticks of a short log axis "2 3 4 ... 9" and formats money with SI
# prefixes ("$900m" for $0.90). Axes here get explicit ticks: decades on a log axis (1-2-5
# steps when it spans under two decades), "nice" 1-2-2.5-5 steps on a linear one, labelled by
# number_text / money_text.
LOG_SPAN_DECADES = 2.0  # an automatic axis turns logarithmic when its data span more than this
_SHORT_SCALES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_MONEY_SCALES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def number_text(x: float) -> str:
    """A tick label: '0.5', '2,048', '16,384', '10k', '131k', '2M', '1.5T'."""
    if not math.isfinite(x):
        return ""
    a = abs(x)
    if a >= 1e5:
        for scale, suffix in _SHORT_SCALES:
            if a >= scale:
                return f"{x / scale:.3g}{suffix}"
    if a >= 1e3 and float(x / 1e3).is_integer():
        return f"{int(x / 1e3)}k"
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:.3g}"


def money_text(usd: float) -> str:
    """A dollar label: '$0.005', '$0.90', '$12.5', '$950', '$1.5k', '$2M', '$1.2B'."""
    if not math.isfinite(usd):
        return ""
    sign, a = ("-" if usd < 0 else ""), abs(usd)
    for scale, suffix in _MONEY_SCALES:
        if a >= scale:
            return f"{sign}${a / scale:.3g}{suffix}"
    if a >= 1 or a == 0:
        return f"{sign}${a:.3g}"
    if a >= 0.01:
        return f"{sign}${a:.2f}"
    return f"{sign}${a:.2g}"


def _nice_step(span: float, n: int = 6) -> float:
    raw = span / n
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= raw * (1 - 1e-9))


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Decades within [lo, hi]; 1-2-5 steps when fewer than three decades fall inside."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = [10.0 ** k for k in range(k0, k1 + 1) if lo <= 10.0 ** k <= hi]
    if len(decades) >= 3:
        return decades
    steps = [m * 10.0 ** k for k in range(k0, k1 + 1) for m in (1.0, 2.0, 5.0)
             if lo <= m * 10.0 ** k <= hi]
    return steps if len(steps) >= 2 else _linear_ticks(lo, hi)


def _linear_ticks(lo: float, hi: float) -> list[float]:
    step = _nice_step(hi - lo)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def value_axis(values: Any, *, money: bool = False, log: bool | None = None,
               title: str = "", ticks: Any = None) -> dict:
    """Plotly axis settings for `values` (display units) with tick labels that read as
    numbers: logarithmic when `log` is True, or when None and the positive data span more
    than LOG_SPAN_DECADES decades; `money` labels ticks '$0.90', '$1.5k', '$2M'. Only the
    chosen ticks (or the given `ticks`) are labelled: no '3 4 ... 9' minor labels, no
    '$900m'."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if log is None:
        pos = v[v > 0]
        log = bool(len(pos) == len(v) and len(pos)
                   and math.log10(pos.max() / pos.min()) > LOG_SPAN_DECADES)
    if log:
        v = v[v > 0]
    axis: dict[str, Any] = dict(title=title, type="log" if log else "linear")
    if not len(v):
        return axis
    lo, hi = float(v.min()), float(v.max())
    if log:
        pad = 10.0 ** (0.05 * max(math.log10(hi / lo), 1.0))
        lo, hi = lo / pad, hi * pad
        ticks = _log_ticks(lo, hi) if ticks is None else ticks
        axis["range"] = [math.log10(lo), math.log10(hi)]
    else:
        pad = 0.05 * (hi - lo) if hi > lo else (0.1 * abs(hi) or 1.0)
        lo, hi = (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad
        ticks = _linear_ticks(lo, hi) if ticks is None else ticks
        axis["range"] = [lo, hi]
    ticks = [float(t) for t in ticks]
    if not ticks:
        return axis
    if money and max(abs(t) for t in ticks) < 10 and any(not t.is_integer() for t in ticks):
        text = [f"${t:,.2f}" if abs(t) >= 0.01 or t == 0 else money_text(t) for t in ticks]
    else:
        text = [(money_text if money else number_text)(t) for t in ticks]
    axis.update(tickmode="array", tickvals=ticks, ticktext=text)
    return axis


def _layout_text(df: pd.DataFrame) -> pd.Series:
    parts = []
    for col, tag in (("tp", "TP"), ("pp", "PP"), ("dp", "DP")):
        if col in df:
            parts.append(tag + df[col].astype("Int64").astype(str))
    if not parts:
        return pd.Series("", index=df.index)
    out = parts[0]
    for part in parts[1:]:
        out = out + "·" + part
    return out


def pareto_figure(ranking: pd.DataFrame, *, title: str = "Time vs cost") -> go.Figure:
    """Scatter of time (x) against cost (y) for feasible options, coloured by device kind,
    with the Pareto frontier (no option both faster and cheaper) drawn as a step line."""
    _require(ranking, ["device", "kind", "feasible", "time_s", "cost_usd"], "ranking")
    ok = ranking[ranking["feasible"].astype(bool)
                 & np.isfinite(ranking["time_s"].astype(float))
                 & np.isfinite(ranking["cost_usd"].astype(float))]
    if ok.empty:
        return _empty(title, "no feasible option with a price")
    scale, unit = _time_unit(ok["time_s"])
    n_dev = ok["n_devices"].astype(int).astype(str) if "n_devices" in ok else ""
    fig = go.Figure()
    for kind, rows in ok.groupby("kind", sort=True):
        n = n_dev.loc[rows.index] if isinstance(n_dev, pd.Series) else pd.Series("", rows.index)
        fig.add_scatter(
            x=rows["time_s"] / scale, y=rows["cost_usd"], mode="markers", name=str(kind).upper(),
            marker=dict(size=11, color=KIND_COLORS.get(str(kind), "#999999"),
                        line=dict(width=1, color="white")),
            text=rows["device"],
            customdata=np.stack([n, _layout_text(rows), [money_text(c) for c in rows["cost_usd"]]],
                                axis=-1),
            hovertemplate="<b>%{text}</b> × %{customdata[0]}<br>%{customdata[1]}<br>"
                          f"%{{x:.3g}} {unit}<br>%{{customdata[2]}}<extra></extra>",
        )
    if "pareto" in ok:
        front = ok[ok["pareto"].astype(bool)].sort_values("time_s")
        if not front.empty:
            fig.add_scatter(x=front["time_s"] / scale, y=front["cost_usd"], mode="lines+text",
                            name="Pareto frontier", line=dict(color="black", dash="dot",
                                                              shape="hv"),
                            text=front["device"], textposition="top right",
                            hoverinfo="skip")
    fig.update_layout(title=_title(title),
                      xaxis=value_axis(ok["time_s"] / scale, log=True, title=f"time ({unit})"),
                      yaxis=value_axis(ok["cost_usd"], money=True, log=True,
                                       title="cost (USD)"),
                      **_LAYOUT)
    return fig


# Per-device memory components of a ranking row (planner.plan.search), in stacking order.
DEVICE_MEMORY_COMPONENTS = {
    "weight_mem_bytes": ("weights", "#0072B2"),
    "grad_mem_bytes": ("gradients", "#E69F00"),
    "optimizer_mem_bytes": ("optimizer state", "#009E73"),
    "activation_mem_bytes": ("activations", "#CC79A7"),
    "kv_cache_mem_bytes": ("KV cache", "#D55E00"),
}


def memory_capacity_figure(ranking: pd.DataFrame, *, title: str = "Memory per device"
                           ) -> go.Figure:
    """Per device, the bytes it must hold under its chosen layout (stacked by component where
    the ranking has them: weights, gradients, optimizer, activations, KV cache) against its
    memory capacity (black marker); devices that do not fit are labelled."""
    _require(ranking, ["device", "mem_per_device_bytes", "memory_capacity_bytes"], "ranking")
    df = ranking.dropna(subset=["mem_per_device_bytes"])
    if df.empty:
        return _empty(title, "no memory estimate")
    parts = [c for c in DEVICE_MEMORY_COMPONENTS if c in df and df[c].notna().any()]
    fig = go.Figure()
    if parts:
        for col in parts:
            name, color = DEVICE_MEMORY_COMPONENTS[col]
            fig.add_bar(x=df["device"], y=df[col].fillna(0.0) / GB, name=name,
                        marker_color=color,
                        hovertemplate="%{x}<br>" + name + " %{y:.4g} GB<extra></extra>")
    else:
        fig.add_bar(x=df["device"], y=df["mem_per_device_bytes"] / GB, name="needed",
                    marker_color="#0072B2", hovertemplate="%{x}<br>%{y:.4g} GB<extra></extra>")
    fig.add_scatter(x=df["device"], y=df["memory_capacity_bytes"] / GB, mode="markers",
                    name="capacity", marker=dict(symbol="line-ew-open", size=22,
                                                 color="black", line=dict(width=3)),
                    hovertemplate="%{x}<br>capacity %{y:.4g} GB<extra></extra>")
    over = df[df["mem_per_device_bytes"] > df["memory_capacity_bytes"]]
    if not over.empty:
        fig.add_scatter(x=over["device"], y=over["mem_per_device_bytes"] / GB, mode="text",
                        text=["does not fit"] * len(over), textposition="top center",
                        showlegend=False, hoverinfo="skip")
    fig.update_layout(title=_title(title), barmode="stack", xaxis=dict(title="", tickangle=-40),
                      yaxis=dict(title="GB (10⁹ bytes) per device"), **_LAYOUT)
    return fig


def layout_memory_figure(row: pd.Series, *, title: str = "Memory on one device") -> go.Figure:
    """One device's memory under its chosen layout (a ranking row), stacked by component,
    with its capacity as a vertical line."""
    fig = go.Figure()
    for col, (name, color) in DEVICE_MEMORY_COMPONENTS.items():
        value = float(row.get(col, np.nan))
        if np.isfinite(value) and value > 0:
            fig.add_bar(y=[str(row.get("device", ""))], x=[value / GB], name=name,
                        orientation="h", marker_color=color, text=[f"{value / GB:.3g} GB"],
                        textposition="inside", hovertemplate=name + ": %{x:.4g} GB<extra></extra>")
    capacity = float(row.get("memory_capacity_bytes", np.nan))
    if np.isfinite(capacity):
        fig.add_vline(x=capacity / GB, line=dict(color="black", width=2),
                      annotation_text=f"capacity {capacity / GB:.3g} GB")
    fig.update_layout(title=_title(title), barmode="stack", height=230,
                      xaxis=dict(title="GB (10⁹ bytes)"), **_LAYOUT)
    return fig


# ---- Validate page ------------------------------------------------------------------------------
def validation_figure(per_layer: pd.DataFrame, *, quantity: str = "fwd_flops",
                      title: str | None = None) -> go.Figure:
    """Analytic against measured `quantity` per layer (grouped bars), e.g. quantity="fwd_flops"
    uses the columns fwd_flops_analytic and fwd_flops_measured."""
    a_col, m_col = f"{quantity}_analytic", f"{quantity}_measured"
    _require(per_layer, ["layer", a_col, m_col], "validation table")
    unit = "FLOP" if quantity.endswith("flops") else "B" if quantity.endswith("bytes") else ""
    fig = go.Figure()
    fig.add_bar(x=per_layer["layer"], y=per_layer[a_col], name="analytic",
                marker_color="#0072B2", hovertemplate="%{x}<br>%{y:.4s}" + unit +
                "<extra>analytic</extra>")
    fig.add_bar(x=per_layer["layer"], y=per_layer[m_col], name="measured",
                marker_color="#E69F00", hovertemplate="%{x}<br>%{y:.4s}" + unit +
                "<extra>measured</extra>")
    fig.update_layout(title=_title(title or f"{quantity}: analytic vs measured"), barmode="group",
                      xaxis=dict(title="layer", tickangle=-45),
                      yaxis=dict(title=f"{quantity} ({unit})" if unit else quantity,
                                 tickformat="~s"), **_LAYOUT)
    return fig


# ---- Backtest page ------------------------------------------------------------------------------
def backtest_figure(backtest: pd.DataFrame, *, title: str = "Predicted vs published"
                    ) -> go.Figure:
    """Predicted against published value per run (log-log), one colour per metric, with the
    y = x line and a ±25 % band; a point on the line is a perfect prediction."""
    _require(backtest, ["run_id", "metric", "published", "predicted"], "backtest")
    df = backtest[(backtest["published"] > 0) & (backtest["predicted"] > 0)]
    if df.empty:
        return _empty(title, "no run with positive published and predicted values")
    fig = go.Figure()
    for metric, rows in df.groupby("metric", sort=True):
        fig.add_scatter(x=rows["published"], y=rows["predicted"], mode="markers",
                        name=str(metric), marker=dict(size=10), text=rows["run_id"],
                        hovertemplate="<b>%{text}</b><br>published %{x:.4g}<br>"
                                      "predicted %{y:.4g}<extra>" + str(metric) + "</extra>")
    lo = float(min(df["published"].min(), df["predicted"].min())) / 2
    hi = float(max(df["published"].max(), df["predicted"].max())) * 2
    for factor, dash, name in ((1.0, "solid", "y = x"), (1.25, "dot", "±25 %"),
                               (0.75, "dot", None)):
        fig.add_scatter(x=[lo, hi], y=[lo * factor, hi * factor], mode="lines",
                        line=dict(color="grey", dash=dash, width=1), name=name,
                        showlegend=name is not None, hoverinfo="skip")
    fig.update_layout(title=_title(title), xaxis=dict(title="published (metric's own SI unit)",
                                              type="log", dtick=1),
                      yaxis=dict(title="predicted (same unit)", type="log", dtick=1),
                      **_LAYOUT)
    return fig


def backtest_error_figure(backtest: pd.DataFrame, *, title: str = "Signed error per run"
                          ) -> go.Figure:
    """Horizontal bars of (predicted - published) / published per run and metric, in %."""
    _require(backtest, ["run_id", "metric", "signed_error_frac"], "backtest")
    df = backtest[np.isfinite(backtest["signed_error_frac"].astype(float))]
    if df.empty:
        return _empty(title, "no run with a prediction")
    df = df.assign(label=df["run_id"] + " · " + df["metric"]).sort_values("signed_error_frac")
    fig = go.Figure()
    for metric, rows in df.groupby("metric", sort=True):
        fig.add_bar(y=rows["label"], x=rows["signed_error_frac"] * 100, orientation="h",
                    name=str(metric), hovertemplate="%{y}<br>%{x:+.1f} %<extra></extra>")
    fig.update_layout(title=_title(title), barmode="overlay", height=max(300, 18 * len(df) + 120),
                      xaxis=dict(title="(predicted − published) / published (%)", zeroline=True),
                      yaxis=dict(title="", categoryorder="array",
                                 categoryarray=list(df["label"])), **_LAYOUT)
    return fig


# ---- Catalog page -------------------------------------------------------------------------------
def catalog_figure(frame: pd.DataFrame, *, dtype: str = "bf16",
                   title: str | None = None) -> go.Figure:
    """Peak dense FLOP/s in `dtype` against memory bandwidth per device, coloured by kind;
    the ratio is the arithmetic intensity at which a kernel stops being memory-bound."""
    peak_col = f"peak_{dtype}_{'ops' if dtype.startswith('int') else 'flops'}_per_s"
    unit = "TOP/s" if dtype.startswith("int") else "TFLOP/s"
    _require(frame, ["id", "kind", "memory_bw_bytes_per_s", peak_col], "catalog")
    df = frame.dropna(subset=[peak_col, "memory_bw_bytes_per_s"])
    title = title or f"Peak {dtype} compute vs memory bandwidth"
    if df.empty:
        return _empty(title, f"no device with a {dtype} peak")
    fig = go.Figure()
    for kind, rows in df.groupby("kind", sort=True):
        fig.add_scatter(x=rows["memory_bw_bytes_per_s"] / 1e12, y=rows[peak_col] / 1e12,
                        mode="markers", name=str(kind).upper(), text=rows["id"],
                        marker=dict(size=10, color=KIND_COLORS.get(str(kind), "#999999")),
                        hovertemplate="<b>%{text}</b><br>%{x:.3g} TB/s<br>%{y:.4g} " + unit
                                      + "<extra></extra>")
    fig.update_layout(title=_title(title),
                      xaxis=value_axis(df["memory_bw_bytes_per_s"] / 1e12, log=True,
                                       title="memory bandwidth (TB/s)"),
                      yaxis=value_axis(df[peak_col] / 1e12, log=True,
                                       title=f"dense {dtype} peak ({unit})"),
                      **_LAYOUT)
    return fig


# ---- Sweep page ---------------------------------------------------------------------------------
# Units of the swept job fields on the x axis (planner.plan.sweep); *_s fields are durations and
# *_frac fields fractions.
SWEEP_FIELD_UNITS = {
    "seq_len": "tokens", "n_tokens": "tokens", "prompt_len": "tokens", "output_len": "tokens",
    "prefill_chunk_tokens": "tokens", "kv_block_tokens": "tokens",
    "global_batch_size": "sequences", "micro_batch_size": "sequences",
    "batch_size": "sequences", "max_batch_size": "sequences",
    "concurrent_requests": "requests", "requests_per_s": "requests/s",
    "n_devices": "devices", "max_devices": "devices", "tp": "devices", "pp": "stages",
    "cp": "devices", "ep": "groups", "latency_percentile": "percentile",
}
MAX_VALUE_TICKS = 12  # up to this many swept values, the ticks sit at the values themselves
MAX_NAMED = 6  # devices named in the "no line" note; the rest are counted
# Line colours per device (plotly's default sequence, named so that it stays put)
DEVICE_PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692",
                  "#B6E880", "#FF97FF", "#FECB52")


def _is_serving(df: pd.DataFrame) -> bool:
    return "ttft_s" in df.columns


def _metric_display(df: pd.DataFrame, metric: str) -> tuple[float, str, bool]:
    """(divide by, axis title, money?) for a ranking column shown on an axis."""
    serving = _is_serving(df)
    per = " per million tokens" if serving else ""
    if metric == "cost_usd":
        return 1.0, f"cost{per} ($)", True
    if metric == "time_s":
        ok = df["time_s"].astype(float)
        scale, unit = _time_unit(ok[np.isfinite(ok)])
        return scale, f"{'request latency' if serving else 'time to train'} ({unit})", False
    if metric == "energy_j":
        return JOULES_PER_KWH, f"energy{per} (kWh)", False
    if metric in ("mfu", "hfu"):
        return 0.01, f"{metric.upper()} (%)", False
    if metric.endswith("_frac"):
        return 0.01, f"{metric.removesuffix('_frac')} (%)", False
    if metric.endswith("_bytes"):
        return GB, f"{metric.removesuffix('_bytes')} (GB, 10⁹ bytes)", False
    return 1.0, metric, False


def _field_display(over: str, values: pd.Series) -> tuple[float, str]:
    """(divide by, axis title) for the swept field: durations in a readable unit."""
    if over.endswith("_s") and over != "requests_per_s":
        scale, unit = _time_unit(values)
        return scale, f"{over} ({unit})"
    if over.endswith("_frac"):
        return 1.0, f"{over} (fraction)"
    named = SWEEP_FIELD_UNITS.get(over)
    return 1.0, f"{over} ({named})" if named else over


def sweep_figure(df: pd.DataFrame, metric: str = "cost_usd", *,
                 title: str | None = None) -> go.Figure:
    """`metric` (cost_usd, time_s, energy_j, mfu, or another numeric column of a sweep)
    against the swept value, one line per device (planner.sweep's DataFrame). Only feasible
    points are drawn: an infeasible value, or one without a price, is a gap in the line. An
    axis is logarithmic where its data span more than two decades; ticks are labelled as
    numbers ($1k, 10k), the x axis at the swept values when there are at most
    MAX_VALUE_TICKS of them."""
    _require(df, ["over", "value", "device", "feasible", metric], "sweep")
    over = str(df["over"].iloc[0]) if len(df) else "value"
    scale, y_title, money = _metric_display(df, metric)
    values = df["value"].astype(float)
    x_scale, x_title = _field_display(over, values)
    what = y_title.split(" (")[0]
    title = title or f"{what[:1].upper()}{what[1:]} against {over}"
    y = np.where(df["feasible"].astype(bool), df[metric].astype(float), np.nan) / scale
    shown = df.assign(_x=values / x_scale, _y=y)
    drawn = shown[np.isfinite(shown["_y"])]
    if drawn.empty:
        return _empty(title, f"no feasible point with a {metric}")
    time_scale, time_unit = _time_unit(drawn["time_s"].astype(float))
    fig = go.Figure()
    left_out = []
    # a device keeps its colour in every metric's chart, drawn or not
    palette = DEVICE_PALETTE
    color = {d: palette[i % len(palette)] for i, d in enumerate(dict.fromkeys(df["device"]))}
    for device, rows in shown.groupby("device", sort=False):
        rows = rows.sort_values("_x")
        if not np.isfinite(rows["_y"]).any():
            left_out.append(str(device))  # no feasible point (or no price): no line
            continue
        hover = np.stack([
            [number_text(v) for v in rows["value"].astype(float)],
            [money_text(c) for c in rows["cost_usd"].astype(float)],
            [f"{t / time_scale:.3g} {time_unit}" if np.isfinite(t) else ""
             for t in rows["time_s"].astype(float)],
            rows["n_devices"].astype(str) if "n_devices" in rows else [""] * len(rows),
            _layout_text(rows),
        ], axis=-1)
        fig.add_scatter(x=rows["_x"], y=rows["_y"], mode="lines+markers", name=str(device),
                        connectgaps=False, customdata=hover, line=dict(color=color[device]),
                        hovertemplate=f"<b>{device}</b><br>{over} %{{customdata[0]}}<br>"
                                      "%{customdata[1]} · %{customdata[2]}<br>"
                                      "%{customdata[3]} devices, %{customdata[4]}"
                                      "<extra></extra>")
    if left_out:
        names = ", ".join(left_out[:MAX_NAMED]) + (
            f" and {len(left_out) - MAX_NAMED} more" if len(left_out) > MAX_NAMED else "")
        fig.add_annotation(text=f"no line (infeasible or no {metric} at every value): {names}",
                           showarrow=False, x=0, y=-0.2, xref="paper", yref="paper",
                           xanchor="left", yanchor="top", font=dict(size=11, color="grey"))
    xs = np.unique(drawn["_x"])
    fig.update_layout(
        title=_title(title),
        xaxis=value_axis(xs, title=x_title,
                         ticks=xs if len(xs) <= MAX_VALUE_TICKS else None),
        yaxis=value_axis(drawn["_y"], money=money, title=y_title), **_LAYOUT)
    if left_out:
        fig.update_layout(margin_b=110)
    return fig


def breakeven_figure(result: BreakEven, *, title: str | None = None) -> go.Figure:
    """Cumulative cost of renting against owning per month of use (planner.breakeven's
    result), the break-even month marked, and the end of the amortization lifetime; the
    reason in place of the chart when a price is missing."""
    name = f"{result.n_devices:,} × {result.device}" if result.n_devices else result.device
    title = title or f"Rent or buy: {name}"
    table = result.table
    if result.reason or table.empty:
        return _empty(title, result.reason or "no months to show")
    fig = go.Figure()
    for col, label, color in (("rent_cost_usd", f"rent (${result.usd_per_device_hour:.3g}"
                                                 "/device-hour)", "#0072B2"),
                              ("own_cost_usd", "own (purchase, facility, power)", "#D55E00")):
        fig.add_scatter(x=table["month"], y=table[col], mode="lines", name=label,
                        line=dict(color=color, width=2),
                        customdata=[money_text(v) for v in table[col]],
                        hovertemplate="month %{x:.3g}<br>%{customdata}<extra>" + label.split(
                            " (")[0] + "</extra>")
    lo, hi = float(table["month"].min()), float(table["month"].max())
    m = result.breakeven_months
    if m is not None and lo <= m <= hi:
        fig.add_vline(x=m, line=dict(color="black", dash="dash", width=1),
                      annotation_text=f"break-even: month {result.breakeven_month}",
                      annotation_position="top left")
    if lo <= result.lifetime_months <= hi:
        fig.add_vline(x=result.lifetime_months, line=dict(color="grey", dash="dot", width=1),
                      annotation_text=f"end of {result.lifetime_months / 12:g}-year life",
                      annotation_position="bottom right")
    money = pd.concat([table["rent_cost_usd"], table["own_cost_usd"]])
    fig.update_layout(title=_title(title),
                      xaxis=value_axis(table["month"], log=False, title="months of use"),
                      yaxis=value_axis(money, money=True, log=False,
                                       title="cumulative cost ($)"),
                      **_LAYOUT)
    return fig
