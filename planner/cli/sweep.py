"""`planner sweep`: rank a job once per value of one of its fields and show time and cost
against the value, per device.

    planner sweep --model llama-2-7b --train-tokens 2e11 --seq-len 4096 --global-batch 1024 \\
        --over seq_len --values 2048,4096,8192 --device-ids nvidia_h100_sxm,amd_mi300x
    planner sweep --workload llama-2-70b-chat-serving --over requests_per_s \\
        --values 1,10,100 --objective cost --html sweep.html

The job is described with `planner rank`'s flags (the same parser, built by its `register`);
the screen shows readable units, `--csv` and `--json` every column in SI units, `--html` the
cost and time charts.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any

import pandas as pd
from pydantic import ValidationError

from planner.cli import rank as rank_cli
from planner.cli.args import add_json_flag, check_output_path, print_json
from planner.errors import InputError, clip
from planner.hardware.catalog import load_catalog
from planner.plan.sweep import MAX_SWEEP_VALUES, sweep
from planner.plan.workloads import TrainingJob
from planner.report.tables import to_csv
from planner.units import duration_str, usd_str

_FLAG_FIELDS = {flag.removeprefix("--"): field for field, flag in rank_cli.FIELD_FLAGS.items()
                if field not in ("max_devices",)}  # --devices sets n_devices for training


class _AsSweep:
    """Hands `planner rank`'s register() a parser named "sweep", so that every job, device and
    cost flag (and build_job, which reads them) is shared; "resolve" lets the flags added here
    replace one of rank's of the same name (its --json: the sweep's own help)."""

    def __init__(self, subparsers: Any) -> None:
        self._subparsers = subparsers

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return self._subparsers.add_parser(
            "sweep", conflict_handler="resolve",
            help="rank a job once per value of one field (seq_len, tokens, load, ...)",
            description="Rank a training or serving job once per value of one of its numeric "
            "fields and show each device's time and cost against it. The job is given with "
            "`planner rank`'s flags; --over names the field, --values its values.")


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = rank_cli.register(_AsSweep(subparsers))
    p.set_defaults(objective="cost")
    for action in p._actions:  # rank's help says its default; a sweep ranks by cost
        if action.dest == "objective":
            action.help = "rank each value's devices by (default cost)"
        if action.dest == "top":
            action.help = "show only the best N devices per value"
    what = p.add_argument_group("sweep")
    what.add_argument("--over", required=True, metavar="FIELD",
                      help="the numeric job field to sweep, e.g. seq_len, n_tokens, "
                           "global_batch_size, n_devices, deadline_s, requests_per_s, "
                           "prompt_len (a flag name such as train-tokens works too)")
    what.add_argument("--values", required=True, metavar="V1,V2,...",
                      help=f"comma-separated values (at most {MAX_SWEEP_VALUES}); a duration "
                           "field (deadline_s, ttft_s, ...) also takes 12h, 30d")
    add_json_flag(p, "every row, one per value and device (as the CSV, whatever --top)")
    p.add_argument("--html", metavar="PATH", help="write the cost and time charts (plotly)")
    p.set_defaults(handler=_sweep)
    return p


def field_name(text: str) -> str:
    """--over's text as a job field: 'seq_len', 'seq-len', '--seq-len', 'train-tokens'."""
    key = str(text).strip().removeprefix("--")
    return _FLAG_FIELDS.get(key, key.replace("-", "_"))


def parse_values(text: str, field: str) -> list[float | int]:
    """'2048,4096' -> [2048, 4096]; '1e11,2e11' -> floats; durations ('30d') for *_s fields.
    InputError naming --values and the item otherwise."""
    items = [t.strip() for t in str(text).split(",")]
    if not any(items):
        raise InputError("--values", "give comma-separated numbers, e.g. 2048,4096,8192")
    out: list[float | int] = []
    for i, item in enumerate(items):
        if re.fullmatch(r"[+-]?\d+", item):
            out.append(int(item))
            continue
        try:
            value = float(item)
        except ValueError:
            if field.endswith("_s") and field != "requests_per_s":
                try:
                    value = rank_cli.parse_duration_s(item)
                except ValueError:
                    value = math.nan
            else:
                value = math.nan
            if math.isnan(value):
                raise InputError("--values", f"item {i + 1}, {clip(item)}, is not a number"
                                 ) from None
        out.append(value)
    return out


def _as_flag_error(err: Exception) -> InputError:
    """A sweep error names --over / --values (with the value: "--values: seq_len = 0: must be
    ≥ 1, got 0"); a job error the flag that set the field."""
    text = str(err)
    for field, flag in (("over", "--over"), ("values", "--values")):
        if isinstance(err, InputError) and (err.field == field
                                            or err.field.startswith(f"{field}[")):
            return InputError(flag, err.message)
    if isinstance(err, ValidationError | ValueError):
        return rank_cli.as_flag_error(err)
    return InputError("", text)


def _screen(df: pd.DataFrame, over: str, serving: bool) -> pd.DataFrame:
    value = [duration_str(v) if over.endswith("_s") and over != "requests_per_s"
             else f"{v:,.6g}" for v in df["value"]]
    feasible = df["feasible"].astype(bool)

    def shown(col: str, fmt: Any) -> list[str]:
        return [fmt(v) if ok and isinstance(v, int | float) and math.isfinite(v) else "—"
                for v, ok in zip(df[col], feasible, strict=True)]

    return pd.DataFrame({
        over: value,
        "#": df["rank"],
        "device": df["device"].astype(str),
        "devices": [f"{n:,}" if ok else "—" for n, ok in zip(df["n_devices"], feasible,
                                                             strict=True)],
        "latency" if serving else "time": shown("time_s", duration_str),
        "$/M tok" if serving else "cost": shown("cost_usd", usd_str),
        "note": [rank_cli._note(r, ok, n) for r, ok, n in zip(
            df["reason"], feasible, df["cost_note"], strict=True)],
    })


def _write_html(df: pd.DataFrame, path: Any) -> None:
    from planner.report.plots import sweep_figure

    parts = [sweep_figure(df, metric).to_html(full_html=False,
                                               include_plotlyjs=(i == 0))
             for i, metric in enumerate(("cost_usd", "time_s"))]
    path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>planner sweep"
                    "</title></head><body>" + "".join(parts) + "</body></html>",
                    encoding="utf-8")


def _sweep(args: argparse.Namespace) -> int:
    csv_path = check_output_path(args.csv, "--csv") if args.csv is not None else None
    html_path = check_output_path(args.html, "--html") if args.html is not None else None
    over = field_name(args.over)
    values = parse_values(args.values, over)
    catalog = load_catalog(*args.catalog)
    kinds, ids = rank_cli.device_filters(args)
    try:
        job = rank_cli.build_job(args)
        cost = rank_cli._cost_options(args)
        objective = args.objective  # the parser's default here is "cost"
        df = sweep(job, over, values, devices=ids, kinds=kinds, objective=objective,
                   catalog=catalog, cost=cost, progress=sys.stderr.isatty())
    except (ValidationError, ValueError) as err:
        raise _as_flag_error(err) from None
    if args.json:
        print_json(df)
    else:
        shown = df[df["rank"] <= args.top] if args.top else df
        serving = not isinstance(job, TrainingJob)
        print(rank_cli._header(job, objective, cost))
        print(f"swept {over} over {len(values)} value{'s' if len(values) != 1 else ''}")
        print(_screen(shown, over, serving).to_string(index=False))
        if serving:
            print("latency = mean request latency; $/M tok = cost per million tokens at the "
                  "load")
    if csv_path is not None:
        written = to_csv(df, csv_path)
        if not args.json:
            print(f"wrote {written}")
    if html_path is not None:
        _write_html(df, html_path)
        if not args.json:
            print(f"wrote {html_path}")
    return 0
