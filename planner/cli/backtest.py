"""`planner backtest`: published training runs (or, with `--kind serving`, published serving
numbers) against the planner's default predictions."""

from __future__ import annotations

import argparse
import math
from typing import Any

import pandas as pd

from planner.cli.args import add_json_flag, check_output_path, print_json
from planner.plan.backtest import BACKTEST_KINDS, backtest, backtest_summary
from planner.report.tables import to_csv


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "backtest", help="predict published training runs with the default rules and compare",
        description="Predict each curated published run (LLaMA, Llama 2, BLOOM, OPT, MT-NLG, "
                    "PaLM, GPT-3, Megatron 2021, MosaicML MPT) with its published configuration "
                    "pinned and the kernel-level rates, and print the signed errors and "
                    "the median absolute error. Device-hours include the default goodput; "
                    "throughput and MFU are steady state.")
    p.add_argument("--kind", choices=BACKTEST_KINDS, default="training",
                   help="training (default): published training runs; serving: published "
                   "serving throughput and latency (gpt-fast, TensorRT-LLM, MLPerf Inference, "
                   "NIM, Gaudi, JetStream, ML.ENERGY)")
    p.add_argument("--csv", metavar="PATH", help="also write the full table (one row per "
                   "published number, with sources) as CSV")
    add_json_flag(p, "the full table (one row per published number)")
    p.set_defaults(handler=_backtest)


def format_value(metric: str, value: float) -> str:
    """A published or predicted value in the unit its metric names."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if metric == "device_hours":
        return f"{value:,.0f} h"
    if metric == "mfu":
        return f"{100 * value:.1f}% MFU"
    if metric == "tflops_per_device":
        return f"{value:.1f} TFLOP/s"
    if metric == "tokens_per_s_per_device":
        return f"{value:,.0f} tok/s"
    if metric == "time_to_train_minutes":
        return f"{value:,.1f} min"
    if metric == "output_tokens_per_s":
        return f"{value:,.0f} tok/s"
    if metric == "output_tokens_per_s_per_user":
        return f"{value:,.1f} tok/s/user"
    if metric in ("ttft_s", "tpot_s"):
        return f"{1e3 * value:,.1f} ms"
    return f"{value:.4g}"


def _pct(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:+.1f}%"


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """The backtest table for the screen: run, device x count, layout, values, signed error."""
    def layout(row: pd.Series) -> str:
        parts = [f"{k}{int(row[k])}" for k in ("tp", "cp", "pp", "dp") if pd.notna(row[k])
                 and not (k == "cp" and int(row[k]) == 1)]
        if pd.notna(row["virtual_stages"]) and int(row["virtual_stages"]) > 1:
            parts.insert(-1, f"v{int(row['virtual_stages'])}")
        return " ".join(parts) or "searched"

    return pd.DataFrame({
        "run": df["run"],
        "device": df["device"] + " x" + df["n_devices"].astype(str),
        "layout": df.apply(layout, axis=1),
        **_compared(df),
        "in median": df["headline"].map({True: "yes", False: "no (weak)"}),
    })


def _compared(df: pd.DataFrame) -> dict[str, Any]:
    """The metric, the published and predicted values in its unit, the signed error."""
    def values(column: str) -> list[str]:
        return [format_value(m, v) for m, v in zip(df["metric"], df[column], strict=True)]

    return {"metric": df["metric"], "published": values("published"),
            "predicted": values("predicted"), "error": df["signed_error_frac"].map(_pct)}


def serving_display_table(df: pd.DataFrame) -> pd.DataFrame:
    """The serving backtest for the screen: run, device x count, the layout used, values,
    signed error and the note (why a prediction is blank, or the engine's verdict)."""
    def layout(row: pd.Series) -> str:
        parts = [f"{k}{int(row[k])}" for k in ("tp", "pp") if pd.notna(row[k])
                 and not (k == "pp" and int(row[k]) == 1)]
        if pd.notna(row["batch_size"]):
            parts.append(f"b{int(row['batch_size'])}")
        return " ".join(parts) or "—"

    return pd.DataFrame({
        "run": df["run_id"],
        "device": df["device"] + " x" + df["n_devices"].astype(str),
        "mode": df["mode"],
        "layout": df.apply(layout, axis=1),
        **_compared(df),
        "note": df["note"].fillna(""),
    })


def _serving(df: pd.DataFrame) -> None:
    print(serving_display_table(df).to_string(index=False))
    s = backtest_summary(df)
    print(f"\nmedian |error|: {100 * s['median_abs_error_frac']:.1f}% over {s['n_runs']} "
          f"published numbers (median signed error {_pct(s['median_signed_error_frac'])}; "
          "signed error = predicted / published - 1, for times too)")
    for title, key in (("by family", "by_family"), ("by metric", "by_metric")):
        print(f"{title}:")
        for name, g in s[key].items():
            print(f"  {name}: {100 * g['median_abs_error_frac']:.1f}% (n={g['n']})")
    if s["n_missing"]:
        print(f"  {s['n_missing']} rows without a prediction (see the note column)")
    print("offline = best throughput over the batches that fit; closed = the published "
          "concurrency; latency = batch 1; docs/backtest.md explains each row")


def _backtest(args: argparse.Namespace) -> int:
    csv_path = check_output_path(args.csv, "--csv") if args.csv is not None else None
    if args.json:
        df = backtest(kind=args.kind)
        if csv_path is not None:
            to_csv(df, csv_path)
        print_json(df)
        return 0
    if args.kind == "serving":
        df = backtest(kind="serving")
        _serving(df)
        if csv_path is not None:
            print(f"wrote {to_csv(df, csv_path)}")
        return 0
    df = backtest()
    print(display_table(df).to_string(index=False))
    s = backtest_summary(df)
    print(f"\nmedian |error|: {100 * s['median_abs_error_frac']:.1f}% over {s['n_runs']} "
          f"published numbers with confirmed sources (median signed error "
          f"{_pct(s['median_signed_error_frac'])}); "
          f"{100 * s['median_abs_error_frac_all']:.1f}% over all {s['n_all']} rows")
    for metric, g in s["by_metric"].items():
        print(f"  {metric}: {100 * g['median_abs_error_frac']:.1f}% (n={g['n']})")
    if s["n_missing"]:
        print(f"  {s['n_missing']} rows without a prediction (see the reason column)")
    print("device-hours include the default goodput; throughput and MFU are steady state "
          "(goodput 1); docs/backtest.md explains each row")
    if csv_path is not None:
        print(f"wrote {to_csv(df, csv_path)}")
    return 0
