"""`planner validate MODEL`: the analytic model beside a measured PyTorch run, per layer;
`planner calibrate`: this machine's kernel sweep (GEMM, copy, attention by size) written as a
catalog file (`[[device]]` + `[[kernels]]`, docs/validation.md)."""

from __future__ import annotations

import argparse
import math
import sys

import pandas as pd

from planner.cli.args import add_json_flag, check_output_path, positive_int, print_json
from planner.cli.models import blocks_shown, with_block_kinds
from planner.measure.validate import (
    block_activations,
    calibrate,
    check_device_id,
    check_save_path,
    rel_err,
    summary_frame,
    validate,
)
from planner.model.spec import model
from planner.report.tables import to_csv
from planner.units import bytes_str, duration_str, si


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate", help="check the analytic FLOPs and bytes against a real PyTorch run")
    p.add_argument("model", help="preset name (see `planner models`), a config.json path, "
                   "or a Hugging Face id (owner/name) from the local cache")
    p.add_argument("--seq-len", type=positive_int,
                   default=128, help="tokens per sequence (default 128)")
    p.add_argument("--batch-size", type=positive_int,
                   default=2, help="sequences per step (default 2)")
    p.add_argument("--mode", choices=["train", "inference"], default="train")
    p.add_argument("--layers", type=positive_int, default=None, metavar="N",
                   help="run only N blocks (default: all; full size needs --device meta)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a ModelSpec field for the run, e.g. --set d_model=512 "
                        "(repeatable; a smaller width fits a CPU)")
    p.add_argument("--device", choices=["cpu", "cuda", "meta"], default="cpu",
                   help="meta: FLOPs and parameters only, any size, no memory")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None,
                   help="default fp32 on cpu/meta, bf16 on cuda")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed steps after 1 warm-up")
    p.add_argument("--no-timing", action="store_true",
                   help="skip calibration and step timing (FLOPs and bytes only)")
    p.add_argument("--all", action="store_true",
                   help="print every block, not only the first block of each kind")
    p.add_argument("--csv", metavar="PATH", help="write the per-layer table as CSV")
    add_json_flag(p, "the per-layer table (with --nproc: the per-term table)")
    p.add_argument("--summary-csv", metavar="PATH", help="write the summary as CSV")
    p.add_argument("--save-ceilings", metavar="PATH.toml",
                   help="also write this machine's calibrated ceilings as a catalog entry")
    d = p.add_argument_group(
        "multi-process", "a data-parallel (and with --tp, tensor-parallel) training step on N "
        "local gloo processes, compared per term with the planner's prediction for this "
        "machine's measured collectives (docs/validation.md)")
    d.add_argument("--nproc", type=positive_int, default=None, metavar="N",
                   help="run the step on N processes (2-4 on a laptop); --batch-size is per "
                        "data-parallel rank")
    d.add_argument("--tp", type=positive_int, default=1, metavar="N",
                   help="tensor-parallel ranks (divides N, heads and d_ff; dense models only: "
                        "a MoE model runs data parallel; default 1)")
    d.add_argument("--collectives-csv", metavar="PATH", default=None,
                   help="a `planner calibrate --collectives --csv` file to predict with "
                        "(default: measure all_reduce first, ~20 s)")
    p.set_defaults(handler=_validate)

    c = subparsers.add_parser(
        "calibrate",
        help="time GEMMs, copies and attention on this machine; write them as a catalog file",
        description="Time square GEMMs by size, tensor copies by size and fused attention "
                    "(scaled_dot_product_attention: causal or not, forward and backward) on "
                    "this machine, print them, and with --save-catalog write a catalog file: "
                    "one [[device]] entry (peak = best GEMM, memory bandwidth = best copy) and "
                    "its [[kernels]] table of measured fractions. Load it with "
                    "`planner rank ... --catalog PATH` or load_catalog(PATH).")
    c.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    c.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None,
                   help="default fp32 on cpu, bf16 on cuda")
    c.add_argument("--repeats", type=positive_int, default=None,
                   help="kernels: timed repeats per point after 1 warm-up, the best kept "
                        "(default 3); --collectives: rounds over all sizes, the median kept "
                        "(default 10)")
    c.add_argument("--save-catalog", metavar="PATH.toml",
                   help="write the [[device]] and [[kernels]] entries to this file")
    c.add_argument("--id", dest="device_id", metavar="ID", default=None,
                   help="catalog id of the entry (default local_<device>_<name>)")
    c.add_argument("--csv", metavar="PATH", help="write every measured point as CSV")
    add_json_flag(c, "every measured point")
    g = c.add_argument_group(
        "collectives", "time all_reduce, all_gather, reduce_scatter, all_to_all and send/recv "
        "on a real torch.distributed process group and fit the planner's α–β form per tier "
        "(docs/validation.md, 'Collectives'); under torchrun the launched group is used")
    g.add_argument("--collectives", action="store_true",
                   help="measure collectives instead of kernels")
    g.add_argument("--nproc", type=positive_int, default=None, metavar="N",
                   help="local processes to spawn (default 2; not with torchrun, whose "
                        "ranks are used)")
    g.add_argument("--backend", choices=["gloo", "nccl"], default=None,
                   help="default gloo with --device cpu, nccl with --device cuda")
    g.add_argument("--ranks-per-node", type=positive_int, default=None, metavar="N",
                   help="split the local ranks into pretend nodes of N ranks (a scale-out "
                        "tier on one machine); default: all on one node")
    g.add_argument("--max-bytes", type=positive_int, default=None, metavar="BYTES",
                   help="largest message (default 67108864 = 64 MiB; sizes from 1 KiB in "
                        "steps of 4, up to 4 GiB)")
    g.add_argument("--ops", default=None, metavar="OP,OP",
                   help="collectives to time (default all: all_reduce, all_gather, "
                        "reduce_scatter, all_to_all, send_recv)")
    g.add_argument("--base-device", metavar="ID", default=None,
                   help="with --save-catalog: write the measured tiers onto this catalog "
                        "device (e.g. nvidia_h100_sxm on your cluster) instead of a new "
                        "device for this machine")
    c.set_defaults(handler=_calibrate)


def _check_outputs(args: argparse.Namespace, *flags: str) -> None:
    """Every output path the command will write, checked before anything is measured."""
    for flag in flags:
        value = getattr(args, flag.removeprefix("--").replace("-", "_"), None)
        if value:
            check_output_path(value, flag)
            if flag.startswith("--save"):
                check_save_path(value, flag)


def _calibrate(args: argparse.Namespace) -> int:
    _check_outputs(args, "--csv", "--save-catalog")
    if args.repeats is None:
        args.repeats = 10 if args.collectives else 3
    if args.device_id is not None:
        check_device_id(args.device_id, "--id")
    if args.collectives:
        return _calibrate_collectives(args)
    if args.base_device is not None:
        raise ValueError("--base-device: only with --collectives")
    from planner.measure.calibration import (
        device_id_for,
        sweep_frame,
        sweep_settings,
        sweep_tables,
    )

    dtype = args.dtype or ("bf16" if args.device == "cuda" else "fp32")
    bar, step = _progress(sweep_settings(args.device, attention=True)["steps"], "calibrate")
    try:
        c = calibrate(args.device, dtype, save_toml=args.save_catalog,
                      device_id=args.device_id, repeats=args.repeats, progress=step)
    finally:
        bar.close()
    if args.json:
        if args.csv:
            to_csv(sweep_frame(c), args.csv)
        print_json(sweep_frame(c))
        return 0
    print(f"{c.device_name}, {c.dtype}, {c.n_threads} threads, torch {c.torch_version}, "
          f"{c.measured_on} (best of {args.repeats} repeats; frac = of the best, as the "
          "catalog stores it)")
    tables = sweep_tables(c)
    sw = c.sweep
    assert sw is not None
    titles = {"gemm": "GEMM, square n×n @ n×n:",
              "copy": "copy (dst.copy_(src)), by bytes moved (read + written):",
              "attention": (f"attention (scaled_dot_product_attention, head_dim "
                            f"{sw.attention_head_dim}, {sw.attention_heads} heads, "
                            f"{sw.attention_tokens} tokens per call):")}
    for key, df in tables.items():
        print(f"\n{titles[key]}")
        print(df.to_string(index=False))
    print(f"\nroofline ceilings (planner validate): {si(c.matmul_flops_per_s, 'FLOP/s')} "
          f"matmul, {si(c.memory_bw_bytes_per_s, 'B/s')} copy of {bytes_str(2 * c.copy_bytes)} "
          f"moved, {si(c.skinny_bw_bytes_per_s, 'B/s')} few-row matmul weights, "
          f"{duration_str(c.op_overhead_s)} per op")
    if args.csv:
        print(f"wrote {to_csv(sweep_frame(c), args.csv)}")
    if args.save_catalog:
        print(f"wrote {args.save_catalog}: device {args.device_id or device_id_for(c)} with its "
              "[[kernels]] table (load it with load_catalog(path) or --catalog)")
    return 0


def _calibrate_collectives(args: argparse.Namespace) -> int:
    import os

    from planner.measure.collectives import (
        DEFAULT_SIZES_BYTES,
        MAX_MESSAGE_BYTES,
        calibrate_collectives,
        calibrate_collectives_here,
        collectives_catalog_toml,
        fit_collectives,
    )

    if args.base_device is not None:
        from planner.hardware.catalog import load_catalog

        load_catalog().get(args.base_device)  # an unknown id fails now, not after measuring
    backend = args.backend or ("nccl" if args.device == "cuda" else "gloo")
    sizes = DEFAULT_SIZES_BYTES
    if args.max_bytes is not None:
        if args.max_bytes > MAX_MESSAGE_BYTES:
            raise ValueError(f"--max-bytes: at most {MAX_MESSAGE_BYTES:,} (4 GiB), got "
                             f"{args.max_bytes:,}")
        sizes = tuple(1024 * 4**k for k in range(12) if 1024 * 4**k <= args.max_bytes)
        if len(sizes) < 3:
            raise ValueError(f"--max-bytes: {args.max_bytes} leaves fewer than three sizes "
                             "(1 KiB, 4 KiB, 16 KiB, ...); give at least 16384")
    ops = args.ops.split(",") if args.ops else None
    under_torchrun = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if under_torchrun and (args.nproc is not None or args.ranks_per_node is not None):
        raise ValueError("--nproc/--ranks-per-node: under torchrun the ranks and nodes are "
                         "torchrun's (--nproc-per-node, --nnodes)")
    if under_torchrun:
        df = calibrate_collectives_here(backend, sizes, ops, repeats=args.repeats)
        if df is None:  # not rank 0: rank 0 reports
            return 0
    else:
        df = calibrate_collectives(args.nproc or 2, backend, sizes, ops,
                                   ranks_per_node=args.ranks_per_node, repeats=args.repeats)
    fit = fit_collectives(df)
    if args.json:
        if args.csv:
            to_csv(df, args.csv)
        print_json(df)
    else:
        _print_collectives(df, fit, args.repeats)
        if args.csv:
            print(f"wrote {to_csv(df, args.csv)}")
    if args.save_catalog:
        if args.base_device is not None:
            text = collectives_catalog_toml(fit, base_device=args.base_device)
            did = args.base_device
        else:
            from planner.measure.calibration import device_id_for, sweep_settings
            from planner.measure.collectives import share_threads

            share_threads(fit.ranks_per_node)  # the kernels of one rank, as in the step
            dtype = args.dtype or ("bf16" if args.device == "cuda" else "fp32")

            bar, step = _progress(sweep_settings(args.device, attention=True)["steps"],
                                  "kernels")
            try:
                ceilings = calibrate(args.device, dtype, progress=step)
            finally:
                bar.close()
            did = args.device_id or f"{device_id_for(ceilings)}_{fit.backend}_rank"
            text = collectives_catalog_toml(fit, ceilings=ceilings, device_id=did)
        from pathlib import Path

        Path(args.save_catalog).write_text(text, encoding="utf-8")
        if not args.json:
            print(f"wrote {args.save_catalog}: device {did} with the measured tiers (use it "
                  f"with `planner rank ... --catalog {args.save_catalog}`)")
    return 0


def _print_collectives(df: pd.DataFrame, fit, repeats: int) -> None:
    print(f"collectives: {fit.backend}, {fit.n_ranks} ranks ({fit.ranks_per_node} per node), "
          f"{fit.host}, {fit.measured_on}; median over {repeats} rounds of one-call "
          "samples, each the slowest rank; predicted = α–β fit without that size")
    shown = pd.DataFrame({
        "tier": df["tier"], "op": df["op"], "ranks": df["n_ranks"],
        "message": df["n_bytes"].map(bytes_str),
        "measured": df["measured_s"].map(duration_str),
        "predicted": df["predicted_s"].map(duration_str),
        "error": df["rel_err"].map(_pct),
        "busbw": df["measured_busbw_bytes_per_s"].map(lambda v: si(v, "B/s"))})
    print(shown.to_string(index=False))
    print("\nfit per tier and op (t = steps·α + bus_factor·bytes/busbw):")
    for f in fit.fits:
        print(f"  {f.tier.value:<9} {f.op.value:<15} α {duration_str(f.latency_s):>9} per step, "
              f"busbw {si(f.busbw_bytes_per_s, 'B/s'):>10}, median |error| on left-out sizes "
              f"{f.median_abs_rel_err:.1%}")


def _with_changes(spec, settings: list[str]):
    """Apply `--set FIELD=VALUE` changes (validated by ModelSpec)."""
    changes = {}
    for item in settings:
        field, sep, value = item.partition("=")
        if not sep or field not in type(spec).model_fields or field == "name":
            raise ValueError(f"--set: {item!r} must be FIELD=VALUE with a ModelSpec field "
                             f"such as d_model, n_heads, n_kv_heads, d_ff, vocab_size")
        changes[field] = None if value.lower() == "none" else value
    return spec.with_(**changes) if changes else spec


def _pct(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if x == 0:
        return "0%"
    return "inf" if math.isinf(x) else f"{x:+.2%}"


def _progress(total: int, desc: str = "validate"):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False)

    def step(msg: str) -> None:
        bar.set_description(msg[:60])
        bar.update(1)

    return bar, step


def _validate(args: argparse.Namespace) -> int:
    _check_outputs(args, "--csv", "--summary-csv", "--save-ceilings")
    if args.nproc is not None:
        return _validate_distributed(args)
    if args.tp != 1 or args.collectives_csv:
        raise ValueError("--tp/--collectives-csv: only with --nproc N")
    if args.save_ceilings and args.device == "meta":
        raise ValueError("--save-ceilings: needs a real device (cpu or cuda), not meta")
    spec = _with_changes(model(args.model), args.set)
    timing = not args.no_timing and args.device != "meta"
    if args.mode == "train":
        steps = 2 + (args.device != "meta") + 2 * timing  # fwd+bwd, optimizer, join
    else:
        steps = 2 + (spec.causal and spec.lm_head and args.seq_len >= 2) + 2 * timing
    bar, step = _progress(steps)
    try:
        df = validate(spec, seq_len=args.seq_len, batch_size=args.batch_size,
                      mode=args.mode, device=args.device, n_layers=args.layers,
                      dtype=args.dtype, repeats=args.repeats, time_it=timing, progress=step)
    finally:
        bar.close()
    s = df.attrs["summary"]
    if args.json:
        _write_validate_files(args, df, s, say=False)
        print_json(df)
        return 0
    changed = f" with {', '.join(args.set)}" if args.set else ""
    run = spec.with_(n_layers=args.layers) if args.layers is not None else spec
    shown, note, kinds_line = blocks_shown(df, run, show_all=args.all)
    print(f"{s['model']}{changed}: {s['n_layers']} blocks, {s['mode']}, seq_len={s['seq_len']}, "
          f"batch_size={s['batch_size']}, {s['dtype']} on {s['device']} ({s['device_name']})"
          + ("" if args.all else f"  ({note}; --all for every block)"))
    if kinds_line:
        print(kinds_line)
    print(with_block_kinds(_display(shown, args.mode), shown, run).to_string(index=False))
    if args.mode == "train" and args.device != "meta":
        blocks = block_activations(df)
        print("\nsaved activations per block (rows + 'other'):")
        print(pd.DataFrame({
            "block": blocks["block"],
            "analytic": blocks["activation_bytes_analytic"].map(bytes_str),
            "measured": blocks["activation_bytes_measured"].map(bytes_str),
            "error": blocks["activation_bytes_rel_err"].map(_pct)}).to_string(index=False))
    print()
    for line in _summary_lines(s, args.mode):
        print(line)
    _write_validate_files(args, df, s, say=True)
    return 0


def _write_validate_files(args: argparse.Namespace, df: pd.DataFrame, s: dict, *, say: bool
                          ) -> None:
    """--csv, --summary-csv and --save-ceilings, each with a "wrote" line when `say`."""
    written = []
    if args.csv:
        written.append(f"wrote {to_csv(df, args.csv)}")
    if args.summary_csv:
        written.append(f"wrote {to_csv(summary_frame(df), args.summary_csv)}")
    if args.save_ceilings:
        calibrate(args.device, s["dtype"], save_toml=args.save_ceilings)
        written.append(f"wrote {args.save_ceilings} (load it with load_catalog(path))")
    for line in written if say else []:
        print(line)


def _validate_distributed(args: argparse.Namespace) -> int:
    from planner.measure.collectives import fit_collectives
    from planner.measure.distributed import validate_distributed

    if args.mode != "train" or args.device != "cpu":
        raise ValueError("--nproc: runs a training step on the CPU (gloo): drop --mode "
                         "inference / --device")
    if args.save_ceilings or args.summary_csv or args.no_timing or args.all:
        raise ValueError("--nproc: --save-ceilings, --summary-csv, --no-timing and --all "
                         "are for the single-process run")
    fit = None
    if args.collectives_csv:
        from planner.measure.collectives import read_collectives_csv

        fit = fit_collectives(read_collectives_csv(args.collectives_csv, "--collectives-csv"))
    spec = _with_changes(model(args.model), args.set)
    df = validate_distributed(spec, seq_len=args.seq_len, batch_size=args.batch_size,
                              nproc=args.nproc, tp=args.tp, n_layers=args.layers,
                              repeats=args.repeats, collectives=fit)
    if args.json:
        if args.csv:
            to_csv(df, args.csv)
        print_json(df)
        return 0
    lay = df.attrs["layout"]
    print(f"{lay['model']}: {lay['n_layers']} blocks, train, seq_len={lay['seq_len']}, "
          f"batch_size={lay['batch_size']} per data-parallel rank, {lay['nproc']} gloo "
          f"processes (tp={lay['tp']}, dp={lay['dp']}, {lay['threads_per_rank']} thread(s) "
          f"each); median of {args.repeats} steps, the slowest rank")
    print(pd.DataFrame({
        "term": df["term"], "measured": df["measured_s"].map(duration_str),
        "predicted": df["predicted_s"].map(duration_str),
        "measured/predicted": df["measured_over_predicted"].map(
            lambda v: "—" if pd.isna(v) else f"{v:.2f}")}).to_string(index=False))
    print("predicted: roofline of one rank's shard with ceilings measured by all ranks at "
          "once; comm from the α–β fit of this machine's all_reduce")
    if args.csv:
        print(f"wrote {to_csv(df, args.csv)}")
    return 0


def _display(df: pd.DataFrame, mode: str) -> pd.DataFrame:
    out = df[["layer", "kind"]].copy()
    flops = ["fwd_flops", "bwd_flops"] if mode == "train" else ["fwd_flops", "decode_flops"]
    for q in flops:
        out[q] = df[f"{q}_analytic"].map(lambda v: si(v, "FLOP"))
        out[f"{q.split('_')[0]} err"] = df[f"{q}_rel_err"].map(_pct)
    byte_cols = (["param_bytes", "grad_bytes", "optimizer_bytes"] if mode == "train"
                 else ["param_bytes", "kv_cache_bytes"])
    for q in byte_cols:
        out[f"{q.split('_')[0]} err"] = df[f"{q}_rel_err"].map(_pct)
    if mode == "train":
        out["act analytic"] = df["activation_bytes_analytic"].map(bytes_str)
        out["act measured"] = df["activation_bytes_measured"].map(bytes_str)
    return out


def _summary_lines(s: dict, mode: str) -> list[str]:
    """The headline: per quantity, the relative error of the measured total against the
    analytic one (0% when they are equal, "both 0" when neither has any), the worst row, and
    the two totals."""
    qs = (["fwd_flops", "bwd_flops", "param_bytes", "grad_bytes", "optimizer_bytes",
           "activation_bytes"] if mode == "train"
          else ["fwd_flops", "decode_flops", "param_bytes", "kv_cache_bytes"])
    per_block = mode == "train" and s["device"] != "meta"
    rows = []
    for q in qs:
        analytic, measured = s.get(f"{q}_analytic_total"), s.get(f"{q}_measured_total")
        worst = float(s.get("activation_bytes_block_max_abs_rel_err", float("nan"))
                      if q == "activation_bytes" and per_block
                      else s.get(f"{q}_max_abs_rel_err", float("nan")))
        rows.append({"quantity": q, "total error": _total_err(measured, analytic),
                     "worst row": _pct(worst) + ("*" if q == "activation_bytes" and per_block
                                                 else ""),
                     "analytic": _fmt(q, analytic), "measured": _fmt(q, measured)})
    lines = ["measured against analytic: relative error of the totals, and the max |relative "
             "error| of a row:"]
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
    for cells in [dict(zip(widths, widths, strict=True)), *rows]:
        lines.append("  " + "   ".join(cells[k].ljust(w) if k == "quantity" else cells[k].rjust(w)
                                       for k, w in widths.items()))
    lines.append("  FLOPs: matmul rows only (FlopCounterMode does not count element-wise rows)")
    if per_block:
        lines.append("  * activations: the worst block, as a saved tensor may sit on a "
                     "neighbouring row of the same block (docs/validation.md)")
    if "ceiling_matmul_flops_per_s" in s:
        bw = si(s["ceiling_memory_bw_bytes_per_s"], "B/s")
        skinny = s.get("ceiling_skinny_matmul_bw_bytes_per_s") or 0.0
        skinny_str = (f"{si(skinny, 'B/s')} few-row matmul weights" if skinny
                      else "few-row matmuls at copy bandwidth (not measured)")
        lines.append(f"calibrated ceilings: {si(s['ceiling_matmul_flops_per_s'], 'FLOP/s')} "
                     f"matmul ({s['dtype']}), {bw} copy, {skinny_str}, "
                     f"{duration_str(s.get('ceiling_op_overhead_s', 0.0))} per op")
    phases = [k[:-len("_s_measured")] for k in s if k.endswith("_s_measured")]
    for ph in phases:
        pred, meas = s.get(f"{ph}_s_predicted", float("nan")), s[f"{ph}_s_measured"]
        fastest = s.get(f"{ph}_s_measured_min", float("nan"))
        lines.append(f"  {ph:<10} predicted {duration_str(pred):>9}   measured "
                     f"{duration_str(meas):>9} (fastest {duration_str(fastest)})   "
                     f"measured/predicted {_ratio(meas, pred)}")
    if not math.isnan(s.get("peak_bytes_measured", float("nan"))):
        lines.append(f"peak memory: predicted {bytes_str(s['peak_bytes_predicted'])}, measured "
                     f"{bytes_str(s['peak_bytes_measured'])} (CUDA max_memory_allocated)")
    return lines


def _ratio(numerator: float, denominator: float) -> str:
    """numerator / denominator to 2 decimals, or "—" when either is missing or the
    denominator is 0."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return "—"
    return f"{numerator / denominator:.2f}"


def _total_err(measured: float | None, analytic: float | None) -> str:
    """The relative error of a total: "0%" when equal, "both 0" when neither has any, "—"
    when one is missing, and "analytic 0" (not ±inf) when only the measured total is
    non-zero."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (measured, analytic)):
        return "—"
    if analytic == 0:
        return "both 0" if measured == 0 else "analytic 0"
    return _pct(float(rel_err(measured, analytic)))


def _fmt(q: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return si(v, "FLOP") if q.endswith("_flops") else bytes_str(v)
