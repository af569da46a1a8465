"""planner.report.plots: pure DataFrame -> plotly Figure functions (no streamlit)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import planner
from planner.report import plots


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return planner.layer_table("gpt2", seq_len=128, batch_size=2)


def _ranking() -> pd.DataFrame:
    return pd.DataFrame(dict(
        device=["a100", "h100", "tpu-v5p", "fpga-x", "big"],
        kind=["gpu", "gpu", "tpu", "fpga", "gpu"],
        feasible=[True, True, True, False, True],
        reason=["", "", "", "no bf16 peak", ""],
        n_devices=[64, 32, 64, 0, 8],
        tp=[1, 2, 1, 0, 8], pp=[1, 1, 1, 0, 1], dp=[64, 16, 64, 0, 1],
        time_s=[10 * 86400.0, 8 * 86400.0, 9 * 86400.0, np.nan, 30 * 86400.0],
        cost_usd=[1.0e6, 1.2e6, 0.9e6, np.nan, 2.0e6],
        pareto=[False, True, True, False, False],
        mem_per_device_bytes=[70e9, 60e9, 80e9, np.nan, 90e9],
        memory_capacity_bytes=[80e9, 80e9, 95e9, 64e9, 80e9],
        weight_mem_bytes=[20e9, 20e9, 30e9, np.nan, 30e9],
        activation_mem_bytes=[50e9, 40e9, 50e9, np.nan, 60e9],
    ))


def test_layer_flops_figure_has_one_bar_trace_per_layer_kind(table):
    fig = plots.layer_flops_figure(table)
    assert isinstance(fig, go.Figure)
    assert {t.name for t in fig.data} == set(table["kind"])
    # every layer appears exactly once across the traces
    assert sum(len(t.x) for t in fig.data) == len(table)
    # the bars are fwd + bwd = 3 x fwd in training (backward = 2 x forward)
    first = fig.data[0]
    rows = table[table["kind"] == first.name]
    np.testing.assert_allclose(first.y, 3 * rows["fwd_flops"])


def test_layer_bytes_figure_stacks_only_nonzero_components_in_gb(table):
    fig = plots.layer_bytes_figure(table)
    names = [t.name for t in fig.data]
    assert names == ["weights", "gradients", "optimizer state", "activations"]  # no KV in train
    np.testing.assert_allclose(fig.data[0].y, table["weight_bytes"] / 1e9)
    assert fig.layout.barmode == "stack"


def test_memory_breakdown_sums_the_table(table):
    fig = plots.memory_breakdown_figure(table)
    assert [t.name for t in fig.data] == [v[0] for v in plots.MEMORY_COMPONENTS.values()]
    total_gb = sum(t.x[0] for t in fig.data)
    expected = sum(table[c].sum() for c in plots.MEMORY_COMPONENTS) / 1e9
    assert total_gb == pytest.approx(expected)


def test_inference_table_shows_kv_cache():
    inf = planner.layer_table("gpt2", seq_len=128, batch_size=2, mode="inference")
    fig = plots.layer_bytes_figure(inf)
    assert "KV cache" in [t.name for t in fig.data]


def test_pareto_figure_colours_by_kind_and_skips_infeasible():
    fig = plots.pareto_figure(_ranking())
    kinds = [t.name for t in fig.data if t.mode == "markers"]
    assert kinds == ["GPU", "TPU"]  # the infeasible FPGA row is not drawn
    front = next(t for t in fig.data if t.name == "Pareto frontier")
    assert list(front.text) == ["h100", "tpu-v5p"]  # sorted by time
    assert fig.layout.xaxis.title.text == "time (days)"
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_pareto_figure_with_nothing_feasible_says_so():
    df = _ranking().assign(feasible=False)
    fig = plots.pareto_figure(df)
    assert not fig.data
    assert "no feasible" in fig.layout.annotations[0].text


def test_memory_capacity_stacks_components_and_flags_overflow():
    fig = plots.memory_capacity_figure(_ranking())
    assert [t.name for t in fig.data[:3]] == ["weights", "activations", "capacity"]
    assert list(fig.data[0].x) == ["a100", "h100", "tpu-v5p", "big"]  # no estimate: left out
    np.testing.assert_allclose(fig.data[1].y, [50, 40, 50, 60])  # GB
    assert list(fig.data[-1].x) == ["big"]  # 90 GB > 80 GB capacity
    assert fig.data[-1].text == ("does not fit",)


def test_layout_memory_figure_has_capacity_line():
    row = _ranking().iloc[0]
    fig = plots.layout_memory_figure(row)
    assert [t.name for t in fig.data] == ["weights", "activations"]
    assert fig.layout.shapes[0].x0 == 80.0


def test_validation_figure_groups_analytic_and_measured():
    df = pd.DataFrame(dict(layer=["q", "k"], fwd_flops_analytic=[4.0, 8.0],
                           fwd_flops_measured=[4.0, 7.0]))
    fig = plots.validation_figure(df, quantity="fwd_flops")
    assert [t.name for t in fig.data] == ["analytic", "measured"]
    assert list(fig.data[1].y) == [4.0, 7.0]
    assert fig.layout.yaxis.title.text == "fwd_flops (FLOP)"


def test_backtest_figure_has_identity_line():
    df = pd.DataFrame(dict(run_id=["r1", "r2"], metric=["time_s", "mfu_frac"],
                           published=[100.0, 0.5], predicted=[110.0, 0.45]))
    fig = plots.backtest_figure(df)
    assert {"time_s", "mfu_frac", "y = x"} <= {t.name for t in fig.data}


def test_missing_column_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match=r"ranking: missing column.*cost_usd"):
        plots.pareto_figure(pd.DataFrame(dict(device=[], kind=[], feasible=[], time_s=[])))


def test_plots_never_import_streamlit():
    code = "import sys, planner.report.plots; sys.exit('streamlit' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_pareto_money_axis_reads_dollars_not_milli_dollars():
    # serving costs per million tokens under $1: plotly's "$~s" printed $0.90 as "$900m"
    df = _ranking().assign(cost_usd=[0.9, 1.2, 0.45, np.nan, 3.0])
    fig = plots.pareto_figure(df)
    y = fig.layout.yaxis
    assert y.type == "log" and y.tickmode == "array"
    assert list(y.ticktext) == ["$0.50", "$1.00", "$2.00"]  # cents throughout under $10
    assert not any(t.endswith("m") for t in y.ticktext)


def test_catalog_log_axes_label_only_chosen_ticks():
    # the catalog's bandwidth axis spans under two decades: plotly labelled its minor ticks
    # "3 4 ... 9 1 2"; now 1-2-5 steps, and decades on the compute axis
    frame = planner.load_catalog().to_frame()
    fig = plots.catalog_figure(frame)
    x, y = fig.layout.xaxis, fig.layout.yaxis
    assert x.tickmode == "array" and y.tickmode == "array"
    assert set(x.ticktext) <= {"0.1", "0.2", "0.5", "1", "2", "5", "10", "20"}
    assert list(y.ticktext) == ["10", "100", "1k"]


def test_value_axis_switches_to_log_beyond_two_decades():
    assert plots.value_axis([1.0, 99.0])["type"] == "linear"
    axis = plots.value_axis([1.0, 1000.0], money=True)
    assert axis["type"] == "log" and axis["ticktext"] == ["$1", "$10", "$100", "$1k"]
    assert plots.value_axis([0.0, 1000.0])["type"] == "linear"  # zero cannot sit on a log axis
