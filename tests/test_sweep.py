"""planner.sweep, planner.breakeven, their figures and `planner sweep` (issue 14).

Kept fast: every sweep is restricted to one to three devices (a rank() call each value)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import planner
from planner.cli import main
from planner.cli.sweep import field_name, parse_values
from planner.errors import InputError
from planner.plan.sweep import MAX_SWEEP_VALUES
from planner.report import plots

H100, MI300X = "nvidia_h100_sxm", "amd_mi300x"
TWO = [H100, MI300X]
SEQ_LENS = [2048, 4096, 8192]


def _training(**fields) -> planner.TrainingJob:
    return planner.TrainingJob(**{**dict(model="llama-2-7b", n_tokens=2e11, seq_len=4096,
                                         global_batch_size=1024), **fields})


def _serving(**fields) -> planner.InferenceJob:
    return planner.InferenceJob(**{**dict(model="llama-2-7b", prompt_len=1024, output_len=256,
                                          requests_per_s=1.0), **fields})


@pytest.fixture(scope="module")
def seq_sweep() -> pd.DataFrame:
    return planner.sweep(_training(), "seq_len", SEQ_LENS, devices=TWO)


# ---- the API ------------------------------------------------------------------------------------
def test_sweep_gives_one_row_per_value_and_device(seq_sweep):
    df = seq_sweep
    assert len(df) == 2 * len(SEQ_LENS)
    assert list(df.columns[:5]) == ["over", "value", "rank", "device", "kind"]
    assert {"feasible", "reason", "n_devices", "tp", "pp", "time_s", "cost_usd", "energy_j",
            "mfu"} <= set(df.columns)
    assert set(df["over"]) == {"seq_len"}
    assert list(df["value"]) == [v for v in SEQ_LENS for _ in TWO]  # given order, then rank
    assert df["value"].dtype.kind == "i"  # a length stays a whole number
    for _, rows in df.groupby("value"):
        assert sorted(rows["device"]) == sorted(TWO) and list(rows["rank"]) == [1, 2]
    assert df["feasible"].all()


def test_sweep_matches_rank_at_each_value(seq_sweep):
    one = planner.rank(_training(seq_len=8192), devices=TWO, objective="cost")
    got = seq_sweep[seq_sweep["value"] == 8192].reset_index(drop=True)
    pd.testing.assert_frame_equal(got.drop(columns=["over", "value"]), one)


def test_doubling_tokens_doubles_cost_when_the_layout_stays():
    # n_devices pinned and a deadline far off (no 90-day horizon), so each device keeps its
    # layout and time = steps × step time / goodput, goodput depending on the count only.
    # Steps are whole: ceil(1e11 / (1024 × 4096)) = 23,842 and ceil(2e11 / 4,194,304) = 47,684
    # = 2 × 23,842 here; in general the rounding moves the ratio by at most one step in
    # 23,842 (4.2e-5), hence rel=1e-4.
    job = _training(n_tokens=1e11, n_devices=8, deadline_s=365 * 86400.0)
    df = planner.sweep(job, "n_tokens", [1e11, 2e11], devices=TWO)
    layout = ["n_devices", "tp", "pp", "dp", "micro_batch_size", "zero_stage", "recompute"]
    for device, rows in df.groupby("device"):
        small, big = (rows[rows["value"] == v].iloc[0] for v in (1e11, 2e11))
        assert list(small[layout]) == list(big[layout]), device
        assert big["cost_usd"] / small["cost_usd"] == pytest.approx(2.0, rel=1e-4), device
        assert big["time_s"] / small["time_s"] == pytest.approx(2.0, rel=1e-4), device


def test_serving_sweep_over_requests_per_s():
    # One H100 serves llama-2-7b at 0.1 and 1 request/s; at $2.00 per device-hour the cost
    # per million output tokens is $2.00 / (load × 256 tokens × 3,600 s / 1e6):
    # 1 r/s -> 2.00 / 0.9216 = $2.1701; 0.1 r/s -> $21.701 (an idle device costs the same).
    cost = planner.CostOptions(usd_per_device_hour=2.0)
    df = planner.sweep(_serving(), "requests_per_s", [0.1, 1, 10], devices=[H100], cost=cost)
    assert list(df["value"]) == [0.1, 1.0, 10.0] and df["feasible"].all()
    by = df.set_index("value")
    assert by.loc[1.0, "n_devices"] == 1 and by.loc[0.1, "n_devices"] == 1
    assert by.loc[1.0, "cost_usd"] == pytest.approx(2.0 / 0.9216, rel=1e-6)
    assert by.loc[0.1, "cost_usd"] == pytest.approx(2.0 / 0.09216, rel=1e-6)
    assert by.loc[10.0, "cost_usd"] < by.loc[1.0, "cost_usd"]  # busier devices, cheaper tokens


def test_sweeping_concurrency_replaces_the_arrival_rate():
    df = planner.sweep(_serving(), "concurrent_requests", [1, 8], devices=[H100])
    assert list(df["value"]) == [1, 8] and df["feasible"].all()
    assert df.loc[1, "tokens_per_s"] > df.loc[0, "tokens_per_s"]  # more users, more tokens


def test_sweepable_fields_are_the_numeric_ones():
    train = planner.sweepable_fields(planner.TrainingJob)
    assert {"seq_len", "n_tokens", "global_batch_size", "n_devices", "micro_batch_size",
            "deadline_s"} <= set(train)
    assert not {"precision", "flash_attention", "recompute", "model"} & set(train)
    serve = planner.sweepable_fields(_serving())
    assert {"prompt_len", "output_len", "requests_per_s", "concurrent_requests", "batch_size",
            "ttft_s", "tpot_s"} <= set(serve)


@pytest.mark.parametrize(("over", "values", "message"), [
    ("seq_len", [2048, 0], r"^values\[1\]: seq_len = 0: must be ≥ 1, got 0$"),
    ("seq_len", [2.5], r"^values\[0\]: seq_len = 2.5: must be a whole number, got 2.5$"),
    ("n_tokens", [1e3], r"^values\[0\]: n_tokens = 1000.0: 1000 is less than one optimizer "
                        r"step"),
    ("seq_len", [2048, float("nan")], r"^values\[1\]: must be a finite number, got nan$"),
    ("seq_len", [True], r"^values\[0\]: must be a number, got True$"),
    ("seq_len", [], r"^values: give at least one value$"),
    ("seq_len", "2048", r"^values: must be a list of numbers, got '2048'$"),
    ("seq_len", [2048, 2048], r"^values\[1\]: 2048 is given twice \(values\[0\] and "
                              r"values\[1\]\); give each value once$"),
    ("seq_len", list(range(1, MAX_SWEEP_VALUES + 2)),
     rf"^values: {MAX_SWEEP_VALUES + 1} values; allowed: at most {MAX_SWEEP_VALUES}"),
    ("precision", [1], r"^over: 'precision' is not a numeric field; numeric fields of "
                       r"TrainingJob: .*seq_len, global_batch_size"),
    ("seq", [1], r"^over: unknown field 'seq' \(did you mean seq_len\?\); numeric fields"),
])
def test_bad_field_or_value_is_one_line_naming_it(over, values, message):
    with pytest.raises(InputError, match=message) as err:
        planner.sweep(_training(), over, values, devices=[H100])
    assert "\n" not in str(err.value)


def test_sweep_checks_every_value_before_ranking(monkeypatch):
    calls = []
    monkeypatch.setattr("planner.plan.sweep.rank", lambda *a, **k: calls.append(1))
    with pytest.raises(InputError, match=r"values\[2\]"):
        planner.sweep(_training(), "seq_len", [2048, 4096, -1], devices=[H100])
    assert calls == []


# ---- break-even ---------------------------------------------------------------------------------
def test_breakeven_month_by_hand():
    # 8 H100 at a given $2.00/device-hour against a given $25,000 purchase, CostOptions
    # defaults otherwise (A4-A15), busy all month (730 h):
    #   rent per device-month      2.00 × 730                            = $1,460.00
    #   capital per device         25,000 × 1.65 × 1.19                  = $49,087.50
    #   electricity per dev-month  1,135 W × 730 h × PUE 1.2 = 994.26 kWh × $0.10 = $99.426
    #     (P16a, catalog: 1,275 W system − 700 W TDP + 700 W × 0.8, no idle figure)
    #   facility per device-month  1.275 kW × $184.06                    = $234.6765
    #   break-even 49,087.5 / (1,460 − 99.426 − 234.6765) = 43.599 months -> month 44
    cost = planner.CostOptions(usd_per_device_hour=2.0, purchase_usd=25_000.0)
    b = planner.breakeven(H100, n_devices=8, cost=cost)
    assert b.reason == "" and b.n_devices == 8
    assert b.capital_usd == pytest.approx(8 * 49_087.5)
    assert b.rent_usd_per_month == pytest.approx(8 * 1_460.0)
    assert b.own_running_usd_per_month == pytest.approx(8 * (99.426 + 234.6765))
    assert b.breakeven_months == pytest.approx(49_087.5 / (1_460 - 99.426 - 234.6765))
    assert b.breakeven_month == 44
    t = b.table.set_index("month")
    assert t.loc[43, "own_cost_usd"] > t.loc[43, "rent_cost_usd"]
    assert t.loc[44, "own_cost_usd"] <= t.loc[44, "rent_cost_usd"]
    assert len(b.table) == 60 and b.lifetime_months == 48


def test_breakeven_takes_the_device_count_of_the_jobs_plan():
    job = _training()
    n = int(planner.rank(job, devices=[H100], objective="cost").iloc[0]["n_devices"])
    b = planner.breakeven(H100, job=job)
    assert b.n_devices == n and b.breakeven_month is not None


@pytest.mark.parametrize(("device", "missing"), [
    ("google_tpu_v5p", "no purchase price in the catalog (give CostOptions(purchase_usd=...))"),
    ("intel_gaudi3", "no on-demand cloud price in the catalog (give "
                     "CostOptions(usd_per_device_hour=...))"),
])
def test_breakeven_without_a_price_gives_the_reason(device, missing):
    b = planner.breakeven(device)
    assert b.reason.startswith(f"{device}: {missing}")
    assert b.table.empty and b.breakeven_month is None
    fig = plots.breakeven_figure(b)
    assert not fig.data and fig.layout.annotations[0].text == b.reason


def test_breakeven_never_when_running_costs_exceed_the_rent():
    b = planner.breakeven(H100, cost=planner.CostOptions(usd_per_device_hour=0.2))
    assert b.breakeven_month is None and "owning never pays back" in b.note


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(device="nope"), r"^device: unknown device 'nope'"),
    (dict(device=H100, n_devices=0), r"^n_devices: must be ≥ 1, got 0$"),
    (dict(device=H100, months=[]), r"^months: give at least one month$"),
    (dict(device=H100, busy_frac=0.0), r"^busy_frac: must be ≥ 1e-06, got 0$"),
])
def test_breakeven_bad_arguments(kwargs, message):
    with pytest.raises(InputError, match=message):
        planner.breakeven(**kwargs)


# ---- figures ------------------------------------------------------------------------------------
def test_sweep_figure_one_line_per_device(seq_sweep):
    fig = plots.sweep_figure(seq_sweep, "cost_usd")
    assert sorted(t.name for t in fig.data) == sorted(TWO)
    assert all(len(t.x) == len(SEQ_LENS) for t in fig.data)
    assert fig.layout.xaxis.title.text == "seq_len (tokens)"
    assert fig.layout.yaxis.title.text == "cost ($)"
    assert list(fig.layout.xaxis.tickvals) == SEQ_LENS  # ticks at the swept values
    assert list(fig.layout.xaxis.ticktext) == ["2,048", "4,096", "8,192"]
    assert all(t.startswith("$") for t in fig.layout.yaxis.ticktext)
    time_fig = plots.sweep_figure(seq_sweep, "time_s")
    assert time_fig.layout.yaxis.title.text == "time to train (days)"


def _synthetic_sweep() -> pd.DataFrame:
    values = [1e9, 1e10, 1e11, 1e12]
    return pd.DataFrame(dict(
        over="n_tokens", value=values * 2, device=["a"] * 4 + ["b"] * 4, kind="gpu",
        feasible=[True, True, True, True, True, False, True, True], n_devices=8, tp=1, pp=1,
        dp=8, time_s=[3.6e3, 3.6e4, 3.6e5, 3.6e6] * 2,
        cost_usd=[0.9, 9.0, 90.0, 900.0, 2.0, np.nan, 200.0, 2000.0]))


def test_sweep_figure_log_axes_read_as_numbers_and_infeasible_is_a_gap():
    fig = plots.sweep_figure(_synthetic_sweep(), "cost_usd")
    b = fig.data[1]
    assert np.isnan(b.y[1]) and not b.connectgaps  # the infeasible value: a gap in b's line
    x, y = fig.layout.xaxis, fig.layout.yaxis
    assert x.type == "log" and y.type == "log"  # 3 decades each
    assert x.tickmode == "array" and list(x.ticktext) == ["1G", "10G", "100G", "1T"]
    # decades only, labelled as money: no "$900m" for $0.90, no "2 3 ... 9" minor labels
    assert list(y.tickvals) == [1.0, 10.0, 100.0, 1000.0]
    assert list(y.ticktext) == ["$1", "$10", "$100", "$1k"]


def test_sweep_figure_names_devices_without_any_point():
    df = _synthetic_sweep()
    df.loc[df["device"] == "a", "feasible"] = False
    fig = plots.sweep_figure(df, "cost_usd")
    assert [t.name for t in fig.data] == ["b"]
    # b keeps its colour from the chart where a is drawn too
    assert fig.data[0].line.color == plots.sweep_figure(_synthetic_sweep()).data[1].line.color
    assert "no line (infeasible or no cost_usd at every value): a" in fig.layout.annotations[0].text


def test_breakeven_figure_marks_the_month():
    cost = planner.CostOptions(usd_per_device_hour=2.0, purchase_usd=25_000.0)
    fig = plots.breakeven_figure(planner.breakeven(H100, n_devices=8, cost=cost))
    assert [t.name.split(" (")[0] for t in fig.data] == ["rent", "own"]
    texts = [a.text for a in fig.layout.annotations]
    assert "break-even: month 44" in texts and "end of 4-year life" in texts
    assert fig.layout.xaxis.title.text == "months of use"
    assert fig.layout.yaxis.ticktext[-1].startswith("$") and "k" in fig.layout.yaxis.ticktext[-1]


@pytest.mark.parametrize(("usd", "text"), [(0.005, "$0.005"), (0.9, "$0.90"), (12.5, "$12.5"),
                                           (950, "$950"), (1500, "$1.5k"), (2e6, "$2M"),
                                           (1.2e9, "$1.2B")])
def test_money_text(usd, text):
    assert plots.money_text(usd) == text


# ---- the CLI ------------------------------------------------------------------------------------
TRAIN_ARGS = ["sweep", "--model", "llama-2-7b", "--train-tokens", "2e11", "--seq-len", "4096",
              "--global-batch", "1024", "--device-ids", H100]


def test_cli_sweep_prints_a_table_and_writes_csv_and_html(tmp_path, capsys):
    csv, html = tmp_path / "s.csv", tmp_path / "s.html"
    code = main([*TRAIN_ARGS, "--over", "seq_len", "--values", "2048,4096", "--csv", str(csv),
                 "--html", str(html)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ranked by cost" in out and "swept seq_len over 2 values" in out
    assert "2,048" in out and "4,096" in out and " d " in out and "$" in out
    df = pd.read_csv(csv)
    assert len(df) == 2 and list(df["value"]) == [2048, 4096] and df["time_s"].min() > 86400
    assert "plotly" in html.read_text(encoding="utf-8")


def test_cli_sweep_json_parses(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    code = main(["sweep", "--workload", "llama-2-7b-batch1", "--over", "prompt-len",
                 "--values", "128,512", "--device-ids", H100, "--json", "--csv", str(csv)])
    out = capsys.readouterr().out
    assert code == 0 and out.count("\n") == 1  # the JSON alone on stdout
    rows = json.loads(out)
    assert [list(r) for r in rows] == [list(pd.read_csv(csv).columns)] * 2
    assert [r["value"] for r in rows] == [128, 512]
    assert {r["over"] for r in rows} == {"prompt_len"} and rows[0]["device"] == H100
    assert all(isinstance(r["cost_usd"], float) for r in rows)


@pytest.mark.parametrize(("args", "line"), [
    (["--over", "precision", "--values", "1"], "planner: error: --over: 'precision' is not a "
                                               "numeric field; numeric fields of TrainingJob:"),
    (["--over", "seq_len", "--values", "0,2048"],
     "planner: error: --values: seq_len = 0: must be ≥ 1, got 0"),
    (["--over", "seq_len", "--values", "2048,x"],
     "planner: error: --values: item 2, 'x', is not a number"),
    (["--over", "seq_len"], "planner: error: the following arguments are required: --values"),
])
def test_cli_sweep_bad_input_exits_2_with_one_line(args, line, capsys):
    code = main([*TRAIN_ARGS, *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith(line) and err.count("\n") == 1


def test_cli_over_and_values_parsing():
    assert field_name("seq-len") == "seq_len" and field_name("--train-tokens") == "n_tokens"
    assert field_name("requests_per_s") == "requests_per_s"
    assert parse_values("2048, 4096", "seq_len") == [2048, 4096]
    assert parse_values("1e11,2.5e11", "n_tokens") == [1e11, 2.5e11]
    assert parse_values("12h,30d", "deadline_s") == [12 * 3600.0, 30 * 86400.0]
    assert math.isclose(parse_values("0.5", "ttft_s")[0], 0.5)
