"""`planner fits MODEL --device ID`: does the model fit on that GPU for serving, how many
sequences does it hold, how long a context, and how fast does it decode?

    planner fits llama-2-70b --device nvidia_h100_sxm --precision int4
    planner fits llama-2-70b --device nvidia_h100_sxm --n-devices 2 --json

The screen shows GB, ms and tokens/s; `--json` prints the answer as one JSON object (the one
question has one answer; the other table commands print a list of such row objects) and
`--csv` writes it as one row, both in SI units with the same columns
(planner.plan.fits.FitResult), missing values null.
"""

from __future__ import annotations

import argparse
import json

from planner.cli.args import check_output_path, positive_int
from planner.model.precision import POLICIES
from planner.plan.fits import DEFAULT_OUTPUT_LEN, DEFAULT_PROMPT_LEN, FitResult, fits
from planner.report.tables import json_records, to_csv
from planner.units import bytes_str, duration_str


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fits", help="does a model fit on a GPU for serving? max batch, context, tokens/s",
        description="Whether one serving replica of MODEL fits on N devices of one kind "
        "(tensor parallel), the most sequences it holds beside the weights, the longest "
        "context, and its decode speed at that batch, from the same serving model "
        "`planner rank --serve` uses.")
    p.add_argument("model", help="preset name (see `planner models`), a config.json path, "
                   "or a Hugging Face id (owner/name) from the local cache")
    p.add_argument("--device", required=True, metavar="ID",
                   help="catalog id, e.g. nvidia_h100_sxm (see `planner catalog list`)")
    p.add_argument("--n-devices", type=positive_int, default=1, metavar="N",
                   help="devices in the replica, tensor parallel (default 1)")
    p.add_argument("--precision", choices=list(POLICIES), default="bf16",
                   help="precision policy (default bf16; int8, int4 are weight-only)")
    p.add_argument("--prompt-len", type=positive_int, default=DEFAULT_PROMPT_LEN, metavar="N",
                   help=f"input tokens per sequence (default {DEFAULT_PROMPT_LEN})")
    p.add_argument("--output-len", type=positive_int, default=DEFAULT_OUTPUT_LEN, metavar="N",
                   help=f"output tokens per sequence (default {DEFAULT_OUTPUT_LEN})")
    p.add_argument("--kv-precision", default=None, metavar="DTYPE",
                   help="KV cache dtype, e.g. fp8 (default: the serving model's)")
    p.add_argument("--csv", metavar="PATH", help="also write the answer (SI units) as CSV")
    p.add_argument("--json", action="store_true",
                   help="print the answer as one JSON object (SI units) instead")
    p.set_defaults(handler=_fits)


def _tokens_per_s(value: float) -> str:
    return f"{value:,.0f} tokens/s" if value >= 100 else f"{value:.3g} tokens/s"


def describe(r: FitResult) -> list[str]:
    """The answer for the screen, a few lines with units."""
    verdict = "fits" if r.fits else "does NOT fit"
    lines = [f"{r.model} ({r.precision}, {r.prompt_len:,} + {r.output_len:,} tokens) on "
             f"{r.n_devices} × {r.device_name} ({r.device}): {verdict}"]
    if not r.fits:
        lines.append(f"  why          {r.reason}")
    if r.max_batch_size:
        lines += [f"  max batch    {r.max_batch_size:,} sequences of "
                  f"{r.prompt_len + r.output_len:,} tokens",
                  f"  decode       {_tokens_per_s(r.tokens_per_s)} at that batch, "
                  f"{_tokens_per_s(r.tokens_per_s_per_user)} per user (TPOT "
                  f"{duration_str(r.tpot_s)}, TTFT {duration_str(r.ttft_s)})"]
    context = (f"{r.max_context_len:,} tokens (one sequence)" if r.max_context_len
               else "none: not even a 1-token prompt fits")
    lines += [f"  max context  {context}",
              f"  weights      {bytes_str(r.weight_bytes)} per device, "
              f"{bytes_str(r.usable_memory_bytes)} usable",
              f"  KV cache     {bytes_str(r.kv_bytes_per_token)} per token of context",
              f"  layout       tp={r.tp}, pp={r.pp}"]
    return lines


def _fits(args: argparse.Namespace) -> int:
    csv_path = check_output_path(args.csv, "--csv") if args.csv is not None else None
    result = fits(args.model, args.device, args.n_devices, args.precision,
                  prompt_len=args.prompt_len, output_len=args.output_len,
                  kv_cache_precision=args.kv_precision)
    frame = result.to_frame()
    if args.json:
        if csv_path is not None:
            to_csv(frame, csv_path)
        print(json.dumps(json_records(frame)[0], ensure_ascii=False, allow_nan=False))
        return 0
    print("\n".join(describe(result)))
    if csv_path is not None:
        print(f"wrote {to_csv(frame, csv_path)}")
    return 0
