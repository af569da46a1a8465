#!/usr/bin/env python
"""Run the whole validation matrix on a CUDA GPU (bf16) in under 5 minutes.

    python scripts/validate_gpu.py                      # CUDA, bf16, the matrix below
    python scripts/validate_gpu.py --csv out/gpu.csv --detail-csv out/gpu_layers.csv
    python scripts/validate_gpu.py --device cpu --tiny  # the same code path on a CPU (tests)

Several models and sizes, training and inference; one calibration of the GPU is shared by all
runs: the kernel sweep of `planner calibrate` (bf16 GEMM FLOP/s by size 256..8192, copy
bandwidth by size 1e5..2e9 bytes moved, scaled_dot_product_attention at head_dim 128, causal or
not, forward and backward, seq_len 512..16384) and the roofline ceilings taken from it. Prints
the sweep as markdown tables, one line per run while it goes, a short table last, and writes
the summary CSV (one row per run), the sweep CSV (--kernels-csv, one row per measured point),
a markdown report (--md: sweep and runs) and, optionally, every layer row and the catalog file
of the calibrated GPU (--save-catalog: [[device]] + [[kernels]]). Never needed by the tests
(they run the CPU path with --tiny). Record the result, with the GPU's name and the date, in
docs/validation.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import pandas as pd

from planner.measure.validate import validate
from planner.model.spec import model
from planner.report.tables import to_csv
from planner.units import bytes_str, duration_str

# (preset, blocks or None for all, seq_len, train batch, inference batch): full widths; fewer
# blocks where a full model would not fit one GPU with fp32 master weights and AdamW.
MATRIX = [
    ("gpt2", None, 1024, 8, 8),
    ("bert-large-uncased", None, 512, 8, 8),
    ("llama-2-7b", 8, 2048, 2, 4),
    ("llama-3-8b", 4, 2048, 2, 4),
    ("qwen2-7b", 4, 2048, 2, 4),
    ("mixtral-8x7b", 2, 1024, 2, 4),
]
TINY = dict(n_layers=2, d_model=64, n_heads=4, d_ff=128, vocab_size=256)


def _spec(name: str, n_layers: int | None, tiny: bool):
    spec = model(name)
    if tiny:
        return spec.with_(**TINY, **({"n_kv_heads": 2} if spec.n_kv_heads else {}))
    return spec if n_layers is None else spec.with_(n_layers=n_layers)


def _row(df: pd.DataFrame, name: str, mode: str, elapsed_s: float) -> dict:
    s = df.attrs["summary"]
    keys = [k for k in s if k.endswith(("_max_abs_rel_err", "_s_predicted", "_s_measured",
                                        "_predicted", "_measured", "_min", "_total"))]
    out = dict(preset=name, **{k: s[k] for k in ("model", "mode", "device_name", "dtype",
                                                  "n_layers", "seq_len", "batch_size",
                                                  "n_params")})
    out.update({k: s[k] for k in keys})
    for k in ("ceiling_matmul_flops_per_s", "ceiling_memory_bw_bytes_per_s",
              "ceiling_op_overhead_s", "ceiling_adamw_tensor_overhead_s",
              "ceiling_skinny_matmul_bw_bytes_per_s"):
        out[k] = s.get(k)
    out["activation_bytes_block_max_abs_rel_err"] = s.get(
        "activation_bytes_block_max_abs_rel_err")
    out["wall_s"] = elapsed_s
    out["date"] = dt.date.today().isoformat()
    return out


def _short(rows: list[dict]) -> pd.DataFrame:
    def pct(v):
        return "—" if v is None or pd.isna(v) else ("0" if v == 0 else f"{v:+.2%}")

    out = []
    for r in rows:
        phase = "step" if r["mode"] == "train" else "prefill"
        out.append({
            "model": r["preset"], "mode": r["mode"], "layers": r["n_layers"],
            "seq x batch": f"{r['seq_len']}x{r['batch_size']}",
            "fwd FLOPs": pct(r.get("fwd_flops_max_abs_rel_err")),
            "bwd/decode FLOPs": pct(r.get("bwd_flops_max_abs_rel_err",
                                          r.get("decode_flops_max_abs_rel_err"))),
            "params": pct(r.get("param_bytes_max_abs_rel_err")),
            "act/block": pct(r.get("activation_bytes_block_max_abs_rel_err")),
            "time of": phase,
            "pred": duration_str(r.get(f"{phase}_s_predicted", float("nan"))),
            "meas": duration_str(r.get(f"{phase}_s_measured", float("nan"))),
            "peak pred": bytes_str(r.get("peak_bytes_predicted", float("nan"))),
            "peak meas": bytes_str(r.get("peak_bytes_measured", float("nan"))),
        })
    return pd.DataFrame(out).fillna("—")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"],
                    help="default bf16 on cuda, fp32 on cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny configs (CPU check of the script)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=270.0,
                    help="skip the remaining runs once this much time has passed")
    ap.add_argument("--csv", default="validation_gpu.csv", help="summary CSV, one row per run")
    ap.add_argument("--detail-csv", default=None, help="every layer row of every run")
    ap.add_argument("--kernels-csv", default=None,
                    help="the kernel sweep, one row per point (default: CSV name + _kernels)")
    ap.add_argument("--md", default=None,
                    help="markdown report: sweep and runs (default: CSV name with .md)")
    ap.add_argument("--save-catalog", default=None, metavar="PATH.toml",
                    help="also write the calibrated device's [[device]] + [[kernels]] entries")
    args = ap.parse_args(argv)
    dtype = args.dtype or ("bf16" if args.device == "cuda" else "fp32")

    import torch  # the script, not the library, needs a GPU

    if args.device == "cuda" and not torch.cuda.is_available():
        print("validate_gpu: no CUDA device; use --device cpu --tiny to check the script",
              file=sys.stderr)
        return 2
    from planner.measure.calibration import (
        markdown_table,
        measure_ceilings,
        sweep_frame,
        sweep_tables,
        to_catalog_toml,
    )

    csv = Path(args.csv)
    kernels_csv = args.kernels_csv or str(csv.with_name(csv.stem + "_kernels.csv"))
    md_path = Path(args.md or csv.with_suffix(".md"))
    start = time.perf_counter()
    small = (dict(matmul_sizes=(128, 256), copy_sizes=(1e5, 1.6e7), skinny_sizes=(256,),
                  attention=dict(seq_lens=(64, 128), head_dim=64, heads=2, tokens=256))
             if args.tiny else dict(attention=True))
    ceilings = measure_ceilings(args.device, dtype, **small)
    sweep_md = []
    for key, table in sweep_tables(ceilings).items():
        sweep_md += [f"**{key}** ({dtype}; frac = of the best, as the catalog stores it)", "",
                     markdown_table(table), ""]
    print("\n".join(sweep_md), flush=True)
    print(f"wrote {to_csv(sweep_frame(ceilings), kernels_csv)}")
    if args.save_catalog:
        out = Path(args.save_catalog)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(to_catalog_toml(ceilings), encoding="utf-8")
        print(f"wrote {out}")
    print(f"{ceilings.device_name}: {ceilings.matmul_flops_per_s / 1e12:.1f} TFLOP/s {dtype} "
          f"matmul, {ceilings.memory_bw_bytes_per_s / 1e9:.0f} GB/s copy, "
          f"{ceilings.skinny_bw_bytes_per_s / 1e9:.0f} GB/s few-row matmul weights, "
          f"{ceilings.op_overhead_s * 1e6:.1f} µs per op "
          f"({dt.date.today().isoformat()}, torch {torch.__version__})", flush=True)
    matrix = MATRIX[:3] if args.tiny else MATRIX
    rows, details = [], []
    for name, n_layers, seq, b_train, b_infer in matrix:
        spec = _spec(name, n_layers, args.tiny)
        for mode, batch in (("train", b_train), ("inference", b_infer)):
            if time.perf_counter() - start > args.budget_s:
                print(f"skip {name} {mode}: over the {args.budget_s:.0f} s budget", flush=True)
                continue
            seq_len = min(seq, 32) if args.tiny else seq
            batch = min(batch, 2) if args.tiny else batch
            t0 = time.perf_counter()
            df = validate(spec, seq_len=seq_len, batch_size=batch, mode=mode,
                          device=args.device, dtype=dtype, repeats=args.repeats,
                          ceilings=ceilings)
            rows.append(_row(df, name, mode, time.perf_counter() - t0))
            details.append(df.assign(preset=name, mode=mode))
            del df
            gc.collect()
            if args.device == "cuda":
                torch.cuda.empty_cache()
            print(f"done {name} {mode} in {time.perf_counter() - t0:.1f} s", flush=True)
    summary = pd.DataFrame(rows)
    print(f"wrote {to_csv(summary, args.csv)}")
    if args.detail_csv:
        print(f"wrote {to_csv(pd.concat(details, ignore_index=True), args.detail_csv)}")
    total = f"total {time.perf_counter() - start:.0f} s on {ceilings.device_name}"
    head = (f"# validate_gpu.py on {ceilings.device_name}, {dtype}, "
            f"{dt.date.today().isoformat()}, torch {torch.__version__}")
    short = _short(rows)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join([head, "", "## Kernel sweep", "", *sweep_md, "## Runs", "",
                                   markdown_table(short), "", total, ""]), encoding="utf-8")
    print(f"wrote {md_path}")
    print(total)
    print(short.to_string(index=False))
    _nccl_collectives(args, csv)
    return 0


def _nccl_collectives(args: argparse.Namespace, csv: Path) -> None:
    """The collectives on NCCL (one rank per GPU, 1 KiB to 256 MiB), fitted with the planner's
    α–β form: the GPU path of `planner calibrate --collectives` (docs/validation.md)."""
    import torch

    n_gpu = torch.cuda.device_count() if args.device == "cuda" else 0
    if n_gpu < 2:
        print(f"NCCL collectives: skipped, they need 2 or more GPUs and this machine has "
              f"{n_gpu} (run `planner calibrate --collectives --device cuda --nproc N`)")
        return
    from planner.measure.collectives import calibrate_collectives, fit_collectives

    sizes = [1024 * 4**k for k in range(10)]
    df = calibrate_collectives(n_gpu, "nccl", sizes, progress=False)
    out = csv.with_name(csv.stem + "_collectives.csv")
    print(f"wrote {to_csv(df, out)}")
    print(fit_collectives(df).frame().to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
