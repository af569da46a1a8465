"""`planner models`, `planner layers MODEL` and `planner seed`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from planner.cli.args import add_json_flag, check_output_path, positive_int, print_json
from planner.model.layers import (
    DEFAULT_FLASH_ATTENTION,
    block_kind_index,
    block_kind_summary,
    first_block_of_each_kind,
    layer_table,
    totals,
)
from planner.model.precision import POLICIES
from planner.model.seed import seed_example
from planner.model.spec import ModelSpec, list_models, model
from planner.report.tables import to_csv
from planner.units import bytes_str, si


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the model presets")
    p.add_argument("--csv", metavar="PATH", help="also write the list as CSV")
    add_json_flag(p, "the list")
    p.set_defaults(handler=_models)

    p = subparsers.add_parser("layers", help="per-layer compute C and storage S of a model")
    p.add_argument("model", help="preset name (see `planner models`), a config.json path, "
                   "or a Hugging Face id (owner/name) from the local cache")
    p.add_argument("--seq-len", type=positive_int,
                   default=None, help="tokens per sequence (default: "
                   "the model's max_seq_len, capped at 2048)")
    p.add_argument("--batch-size", type=positive_int,
                   default=1, help="sequences per step (default 1)")
    p.add_argument("--mode", choices=["train", "inference"], default="train")
    p.add_argument("--precision", choices=list(POLICIES), default="bf16")
    p.add_argument("--recompute", choices=["none", "selective", "full"], default="none")
    p.add_argument("--flash-attention", action=argparse.BooleanOptionalAction,
                   default=DEFAULT_FLASH_ATTENTION,
                   help="fused (flash) attention kernel: no score matrix saved (default: on, "
                        "as `planner rank` assumes; --no-flash-attention for eager attention)")
    p.add_argument("--all", action="store_true",
                   help="print every block, not only the first block of each kind")
    p.add_argument("--csv", metavar="PATH", help="write the full table (SI units) as CSV")
    add_json_flag(p, "the full table (every block)")
    p.set_defaults(handler=_layers)

    p = subparsers.add_parser("seed", help="the seed document's BERT example, checked")
    p.add_argument("--csv", metavar="PATH", help="write the check as CSV")
    add_json_flag(p, "the check")
    p.set_defaults(handler=_seed)


def _csv_path(args: argparse.Namespace) -> Path | None:
    """The --csv file, checked before any work (None when not asked for)."""
    return check_output_path(args.csv, "--csv") if args.csv is not None else None


def _models(args: argparse.Namespace) -> int:
    csv_path = _csv_path(args)
    rows = []
    for name in list_models():
        spec = model(name)
        rows.append(dict(model=name, arch=spec.arch, n_layers=spec.n_layers,
                         d_model=spec.d_model, n_heads=spec.n_heads, n_kv_heads=spec.kv_heads,
                         n_experts=spec.n_experts, n_params=spec.n_params,
                         n_active_params=spec.n_active_params, max_seq_len=spec.max_seq_len,
                         source_url=spec.source_url))
    df = pd.DataFrame(rows)
    if _json_done(args, df, csv_path):
        return 0
    shown = df.drop(columns="source_url").assign(
        n_params=df["n_params"].map(lambda n: f"{n:,}"),
        n_active_params=df["n_active_params"].map(lambda n: f"{n:,}"))
    print(shown.to_string(index=False))
    if csv_path is not None:
        print(f"wrote {to_csv(df, csv_path)}")
    return 0


def _json_done(args: argparse.Namespace, df: pd.DataFrame, csv_path: Path | None) -> bool:
    """With --json: write the --csv file (if asked), print the rows as JSON and say True."""
    if not args.json:
        return False
    if csv_path is not None:
        to_csv(df, csv_path)
    print_json(df)
    return True


def _layers(args: argparse.Namespace) -> int:
    csv_path = _csv_path(args)
    spec = model(args.model)
    seq_len = args.seq_len if args.seq_len is not None else min(spec.max_seq_len, 2048)
    df = layer_table(spec, seq_len=seq_len, batch_size=args.batch_size, mode=args.mode,
                     precision=args.precision, recompute=args.recompute,
                     flash_attention=args.flash_attention)
    if _json_done(args, df, csv_path):
        return 0
    shown, note, kinds_line = blocks_shown(df, spec, show_all=args.all, of=spec.n_layers)
    print(f"{spec.name}: {spec.n_params:,} parameters, {args.mode}, seq_len={seq_len}, "
          f"batch_size={args.batch_size}, precision={args.precision}, flash attention "
          f"{'on' if args.flash_attention else 'off'}"
          + ("" if args.all else f"  ({note}; --all for every block)"))
    if kinds_line:
        print(kinds_line)
    print(with_block_kinds(_display(shown), shown, spec).to_string(index=False))
    t = totals(df)
    print(f"\ntotal: forward {si(t['fwd_flops'], 'FLOP')}, backward {si(t['bwd_flops'], 'FLOP')}, "
          f"weights {bytes_str(t['weight_bytes'])}, gradients {bytes_str(t['grad_bytes'])}, "
          f"optimizer {bytes_str(t['optimizer_bytes'])}, activations "
          f"{bytes_str(t['activation_bytes'])}, KV cache {bytes_str(t['kv_cache_bytes'])}")
    if csv_path is not None:
        print(f"wrote {to_csv(df, csv_path)}")
    return 0


def blocks_shown(df: pd.DataFrame, spec: ModelSpec, *, show_all: bool, of: int | None = None
                 ) -> tuple[pd.DataFrame, str, str]:
    """(the rows to print; what they show: "block 0 [of N] shown" or "blocks 0 and 3 [of N]
    shown, the first of each kind"; a line counting the blocks of each kind, "" when all
    blocks are alike)."""
    summary = block_kind_summary(spec)
    shown = df if show_all else first_block_of_each_kind(df, spec)
    total = "" if of is None else f" of {of}"
    if len(summary) == 1:
        return shown, f"block 0{total} shown", ""
    firsts = [str(first) for _, _, first in summary]
    note = (f"blocks {', '.join(firsts[:-1])} and {firsts[-1]}{total} shown, the first of "
            "each kind")
    kinds = ", ".join(f"{count:,} {label} (first: block {first})"
                      for label, count, first in summary)
    return shown, note, f"blocks by kind: {kinds}"


def with_block_kinds(display: pd.DataFrame, rows: pd.DataFrame, spec: ModelSpec
                     ) -> pd.DataFrame:
    """`display` (rows of `rows`, same order) with a "block kind" column after "layer" when
    the model's blocks are not all alike ("" outside the blocks); unchanged otherwise."""
    summary = block_kind_summary(spec)
    if len(summary) == 1:
        return display
    labels = [label for label, _, _ in summary]
    kind_of = block_kind_index(spec)
    blocks = rows["block"].to_numpy()
    column = ["" if b < 0 or b >= len(kind_of) else labels[kind_of[b]] for b in blocks]
    out = display.copy()
    out.insert(1, "block kind", column)
    return out


def _display(df: pd.DataFrame) -> pd.DataFrame:
    """Human units for the screen: FLOP counts with SI prefixes, bytes as decimal GB/MB."""
    out = df[["layer", "kind", "n_params"]].copy()
    out["n_params"] = df["n_params"].map(lambda n: f"{n:,}")
    for col in [c for c in df.columns if c.endswith("_flops")]:
        out[col] = df[col].map(lambda v: si(v, "FLOP"))
    for col in [c for c in df.columns if c.endswith("_bytes")]:
        out[col] = df[col].map(bytes_str)
    return out


def _seed(args: argparse.Namespace) -> int:
    csv_path = _csv_path(args)
    df = seed_example()
    if _json_done(args, df, csv_path):
        return 0
    for row in df.itertuples():
        print(f"- {row.item}  [{row.verdict}]\n    document: {_g4(row.document)}   "
              f"recomputed: {_g4(row.recomputed)}   per-layer model: "
              f"{_g4(row.per_layer_model)} {row.unit}\n    {row.explanation}")
    if csv_path is not None:
        print(f"wrote {to_csv(df, csv_path)}")
    return 0


def _g4(value: float | None) -> str:
    """A figure to 4 significant digits, or "—" where the row has none (the document gives no
    value, or the per-layer model has no counterpart; the explanation says which)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}"
