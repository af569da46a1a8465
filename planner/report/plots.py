"""Figures: a DataFrame from the planner API in, a plotly `go.Figure` out.

Every function here is pure (no I/O, no streamlit) so the app, notebooks and tests share them.
Data arrive in SI units (FLOP, byte, second, USD); conversion to display units (TFLOP, GB,
days) happens only here, and every axis title says its unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from planner.units import GB, SECONDS_PER_DAY, SECONDS_PER_HOUR

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
    """Pick days or hours for an axis from the typical value."""
    typical = float(seconds.median()) if len(seconds) else 0.0
    if typical >= 2 * SECONDS_PER_DAY:
        return SECONDS_PER_DAY, "days"
    if typical >= 2 * SECONDS_PER_HOUR:
        return SECONDS_PER_HOUR, "hours"
    return 1.0, "s"


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
            text=rows["device"], customdata=np.stack([n, _layout_text(rows)], axis=-1),
            hovertemplate="<b>%{text}</b> × %{customdata[0]}<br>%{customdata[1]}<br>"
                          f"%{{x:.3g}} {unit}<br>$%{{y:,.0f}}<extra></extra>",
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
                      xaxis=dict(title=f"time ({unit})", type="log"),
                      yaxis=dict(title="cost (USD)", type="log", tickformat="$~s"),
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
                      xaxis=dict(title="memory bandwidth (TB/s)", type="log"),
                      yaxis=dict(title=f"dense {dtype} peak ({unit})", type="log"),
                      **_LAYOUT)
    return fig
