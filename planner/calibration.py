"""Local ceilings (achieved matmul FLOP/s and memory bandwidth) and a roofline step time.

`measure_ceilings` times a few square matmuls in the run's dtype and a large tensor copy on
the local device; the best repeat is the ceiling (what this machine achieves, not a vendor
peak). `predict_times` feeds those ceilings to a per-row roofline (Williams et al. 2009):

    t_row = max(FLOPs_row / achieved_matmul_flops_per_s, bytes_moved_row / achieved_bw_bytes_per_s)

summed over the analytic rows of one phase. NB: bytes moved ≈ the row's weights read once plus
its input and output activations read/written once (no cache reuse, no fusion); backward moves
2× the forward bytes; the AdamW step reads weights, gradients and optimizer state and writes
weights and optimizer state. Per-kernel launch and Python dispatch overhead is not modelled, so
the prediction is a lower bound that tightens as matrices grow (docs/validation.md).

`to_catalog_toml` writes the ceilings as a `hardware_catalog` user entry for this machine.
Torch is imported here; `import planner` never imports this module.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from planner.measure import TORCH_DTYPES, device_name
from planner.models import ModelSpec

CPU_MATMUL_SIZES = (1024, 1536)  # NB: CPU GEMM throughput still grows with size; best is kept
CUDA_MATMUL_SIZES = (4096, 8192)
CPU_COPY_BYTES = 64 * 10**6
CUDA_COPY_BYTES = 1024 * 10**6


class Ceilings(BaseModel):
    """What the local device achieved: dense matmul FLOP/s in one dtype and copy bandwidth."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = Field(description="torch device type: 'cpu' or 'cuda'.")
    device_name: str = Field(description="GPU name, or the CPU model name (lscpu).")
    dtype: str = Field(description="dtype of the timed matmuls: fp32, bf16 or fp16.")
    matmul_flops_per_s: float = Field(gt=0, description="Best of the timed n×n matmuls.")
    memory_bw_bytes_per_s: float = Field(gt=0, description="Best copy: 2 × size / time.")
    matmul_n: int = Field(gt=0, description="Size n of the n×n @ n×n matmul that was fastest.")
    copy_bytes: int = Field(gt=0, description="Bytes of the copied tensor.")
    n_threads: int = Field(gt=0, description="torch intra-op threads (CPU).")
    memory_bytes: float = Field(gt=0, description="Device memory (GPU) or RAM (CPU), bytes.")
    measured_on: str = Field(description="Date of the measurement, YYYY-MM-DD.")
    torch_version: str = ""


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _best_time_s(fn, dev: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(dev)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best


def _memory_bytes(dev: torch.device) -> float:
    if dev.type == "cuda":
        return float(torch.cuda.get_device_properties(dev).total_memory)
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def measure_ceilings(device: str = "cpu", dtype: str = "fp32", *,
                     matmul_sizes: tuple[int, ...] | None = None, copy_bytes: int | None = None,
                     repeats: int = 3) -> Ceilings:
    """Achieved matmul FLOP/s (n×n @ n×n, 2n³ FLOPs, F1; best over a few sizes n) and copy
    bandwidth (2 × bytes: one read, one write) on `device`; the best of `repeats` after a
    warm-up. About 1.5 s on a 2-core CPU."""
    if dtype not in TORCH_DTYPES:
        raise ValueError(f"dtype: {dtype!r}; allowed: {', '.join(TORCH_DTYPES)}")
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    sizes = matmul_sizes or (CUDA_MATMUL_SIZES if cuda else CPU_MATMUL_SIZES)
    nbytes = copy_bytes or (CUDA_COPY_BYTES if cuda else CPU_COPY_BYTES)
    best_flops_per_s, n = 0.0, sizes[0]
    for size in sizes:
        a = torch.randn(size, size, device=dev).to(TORCH_DTYPES[dtype])
        b = torch.randn(size, size, device=dev).to(TORCH_DTYPES[dtype])
        # [n, n] @ [n, n] -> [n, n]: 2 n³ FLOPs
        rate = 2.0 * size**3 / _best_time_s(lambda a=a, b=b: torch.mm(a, b), dev, repeats)
        if rate > best_flops_per_s:
            best_flops_per_s, n = rate, size
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    copy_s = _best_time_s(lambda: dst.copy_(src), dev, repeats)
    return Ceilings(
        device=dev.type, device_name=device_name(dev), dtype=dtype,
        matmul_flops_per_s=best_flops_per_s,
        memory_bw_bytes_per_s=2.0 * src.numel() * 4 / copy_s,
        matmul_n=n, copy_bytes=src.numel() * 4, n_threads=torch.get_num_threads(),
        memory_bytes=_memory_bytes(dev), measured_on=dt.date.today().isoformat(),
        torch_version=torch.__version__,
    )


# ---- the roofline -------------------------------------------------------------------------------
def _io_elements(spec: ModelSpec, name: str, *, batch: float, q_len: float, kv_len: float
                 ) -> float:
    """Activation elements a row reads plus writes in one forward (approximate, see module)."""
    h, hd, ff, V = spec.d_model, spec.d_head, spec.d_ff, spec.vocab_size
    T = batch * q_len
    qd, kvd = spec.n_heads * hd, spec.kv_heads * hd
    scores = batch * spec.n_heads * q_len * kv_len
    local = name.split(".", 2)[2] if name.startswith("blocks.") else name
    routed = T * spec.experts_top_k if local.startswith("moe.experts") else T
    ffn = local.rsplit(".", 1)[-1]
    table = {
        "attn.q": T * (h + qd), "attn.k": T * (h + kvd), "attn.v": T * (h + kvd),
        "attn.scores": T * qd + batch * kv_len * kvd + scores,
        "attn.softmax": 2 * scores,
        "attn.context": scores + batch * kv_len * kvd + T * qd,
        "attn.out": T * (qd + h), "moe.router": T * (h + spec.n_experts),
        "pooler": 2 * batch * h, "lm_head": T * (h + V), "loss": T * V + T,
    }
    if local in table:
        return table[local]
    if local.startswith(("mlp.", "moe.")):
        per = {"up": h + ff, "gate": h + ff, "down": ff + h,
               "act": ff * (3 if spec.gated_mlp else 2)}[ffn]
        return routed * per
    return 2 * T * h  # embeddings (rows read, sum written) and norms


def roofline_row_times(spec: ModelSpec, table: pd.DataFrame, ceilings: Ceilings, *,
                       seq_len: int, batch_size: int, act_bytes: float) -> pd.DataFrame:
    """Per-row roofline seconds for forward (train/prefill) and decode, plus bytes moved."""
    out = []
    for row in table.itertuples(index=False):
        fwd_io = _io_elements(spec, row.layer, batch=batch_size, q_len=seq_len, kv_len=seq_len)
        dec_io = _io_elements(spec, row.layer, batch=batch_size, q_len=1, kv_len=seq_len)
        if row.kind == "embedding":  # a lookup reads the rows it needs, not the table
            w_fwd = min(row.weight_bytes, batch_size * seq_len * spec.d_model * act_bytes)
            w_dec = min(row.weight_bytes, batch_size * spec.d_model * act_bytes)
        else:
            w_fwd = w_dec = row.weight_bytes
        fwd_bytes = w_fwd + fwd_io * act_bytes
        dec_bytes = w_dec + dec_io * act_bytes
        dec_flops = getattr(row, "decode_flops", 0.0)
        out.append(dict(
            layer=row.layer, fwd_bytes_moved=fwd_bytes, decode_bytes_moved=dec_bytes,
            fwd_s=max(row.fwd_flops / ceilings.matmul_flops_per_s,
                      fwd_bytes / ceilings.memory_bw_bytes_per_s),
            bwd_s=max(row.bwd_flops / ceilings.matmul_flops_per_s,
                      2 * fwd_bytes / ceilings.memory_bw_bytes_per_s),
            decode_s=max(dec_flops / ceilings.matmul_flops_per_s,
                         dec_bytes / ceilings.memory_bw_bytes_per_s),
        ))
    return pd.DataFrame(out)


def predict_times(spec: ModelSpec, table: pd.DataFrame, ceilings: Ceilings, *, seq_len: int,
                  batch_size: int, mode: str, act_bytes: float) -> dict[str, float]:
    """Roofline seconds per phase: train -> forward, backward, optimizer, step; inference ->
    prefill, decode (one token at context seq_len). `table` is `planner.layer_table`'s."""
    rows = roofline_row_times(spec, table, ceilings, seq_len=seq_len, batch_size=batch_size,
                              act_bytes=act_bytes)
    if mode == "train":
        # AdamW: read w, g, state; write w, state (NB: 2w + g + 2·state bytes per parameter)
        opt_bytes = float(2 * table["weight_bytes"].sum() + table["grad_bytes"].sum()
                          + 2 * table["optimizer_bytes"].sum())
        times = {"forward": float(rows["fwd_s"].sum()), "backward": float(rows["bwd_s"].sum()),
                 "optimizer": opt_bytes / ceilings.memory_bw_bytes_per_s}
        times["step"] = float(sum(times.values()))
        return times
    times = {"prefill": float(rows["fwd_s"].sum())}
    if spec.causal and spec.lm_head:
        times["decode"] = float(rows["decode_s"].sum())
    return times


# ---- a catalog entry for this machine ------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "device"


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_catalog_toml(ceilings: Ceilings, *, device_id: str | None = None) -> str:
    """A `[[device]]` entry in the hardware catalog's user-file format (planner.catalog).

    The achieved ceilings are entered as the peaks, with efficiency fractions of 1.0, so the
    planner's timing uses exactly what was measured. Load it with `load_catalog(path)`.
    """
    c = ceilings
    kind = "gpu" if c.device == "cuda" else "other"
    vendor = c.device_name.split()[0] if c.device_name.split() else "local"
    did = device_id or f"local_{c.device}_{_slug(c.device_name)}"
    note = (f"Calibrated by planner on {c.measured_on}: {c.matmul_n}x{c.matmul_n} {c.dtype} "
            f"matmuls and a {c.copy_bytes / 1e6:.0f} MB copy, best of repeats, "
            f"{c.n_threads} threads, torch {c.torch_version}. Achieved values, not vendor peaks; "
            "launch_year is the year of the measurement.")
    lines = [
        "# Written by planner.calibration.to_catalog_toml; load with load_catalog(this_file).",
        "[[device]]",
        f"id = {_toml_str(did)}",
        f"vendor = {_toml_str(vendor)}",
        f"name = {_toml_str(c.device_name + ' (calibrated)')}",
        f'kind = "{kind}"',
        f"launch_year = {int(c.measured_on[:4])}",
        f"peak_flops_per_s = {{ {c.dtype} = {c.matmul_flops_per_s:.6g} }}",
        f"memory_bytes = {c.memory_bytes:.6g}",
        f"memory_bw_bytes_per_s = {c.memory_bw_bytes_per_s:.6g}",
        'price_note = "a local machine: no price"',
        f"sources = [{_toml_str('planner.calibration.measure_ceilings on this machine')}]",
        f'checked_on = "{c.measured_on}"',
        f"notes = {_toml_str(note)}",
        "",
        "[device.efficiency]",
        "train_compute_frac = 1.0",
        "infer_compute_frac = 1.0",
        "memory_bw_frac = 1.0",
        'source = "measured ceilings entered as peaks: efficiency is already included"',
        "",
    ]
    return "\n".join(lines)


def ceilings_frame(c: Ceilings) -> pd.DataFrame:
    """One-row DataFrame of the ceilings (for CSV)."""
    return pd.DataFrame([c.model_dump()])


def ratio(measured: float, predicted: float) -> float:
    """measured / predicted, NaN when either is missing."""
    if not (np.isfinite(measured) and np.isfinite(predicted)) or predicted == 0:
        return float("nan")
    return measured / predicted
