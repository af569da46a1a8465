"""Local ceilings (achieved matmul FLOP/s, memory bandwidth, few-row matmul weight bandwidth,
per-op overhead) and a roofline step time.

`measure_ceilings` times a few square matmuls in the run's dtype, a large tensor copy, a few
few-row ("skinny") matmuls and a chain of tiny `nn.Linear` calls on the local device; the best
repeat is the ceiling (what this machine achieves, not a vendor peak) and the median tiny call
is the per-op overhead (Python module call + dispatcher + kernel launch; on CUDA, the launch
overhead). `predict_times` feeds those ceilings to a per-row roofline with a floor (Williams
et al. 2009; the same form as planner.plan.steptime.op_time_s, docs/planning.md P6):

    t_row = max(FLOPs_row / gemm_rate(size of the row's GEMM),
                bytes_moved_row / achieved_bw_bytes_per_s,
                ops_row × op_overhead_s)

summed over the analytic rows of one phase; the GEMM rate is the measured sweep's at the row's
own shape (planner.model.ops.gemm_shape, the definitions the ranking's step time uses;
interpolated in log size as K1). A matmul row with at most SKINNY_MAX_ROWS tokens
(a decode step: batch × 1) streams its weights at the measured few-row rate instead:
bytes term = weight_bytes / skinny_matmul_bw_bytes_per_s + activation bytes / copy bandwidth.
NB: bytes moved ≈ the row's weights read once (a tied LM head reads the embedding matrix) plus
its input and output activations read/written once (no cache reuse, no fusion); backward moves
2× the forward bytes and runs 2× the forward ops; `ops_row` counts the kernels the reference
models (planner/measure/torch_models.py) launch for the row in eager PyTorch (`row_op_counts`). The
AdamW step moves the fused minimum of bytes (see `adamw_step_bytes`) and pays a measured launch
cost per parameter tensor (`adamw_tensor_overhead_s`). The prediction stays a lower bound:
views, Python glue and the autograd engine's per-node cost are not counted (docs/validation.md).

`measure_kernel_sweep` times GEMMs by size, copies by size and fused attention by sequence
length; `to_catalog_toml` writes them as a catalog user file for this machine: a `[[device]]`
entry (peak = best GEMM, memory bandwidth = best copy) and its `[[kernels]]` table of achieved
fractions (planner.hardware.kernels; `planner calibrate`, docs/validation.md).
Torch is imported here; `import planner` never imports this module.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from planner.hardware.kernels import log_interp
from planner.measure.counters import TORCH_DTYPES, MasterAdamW, device_name
from planner.model.ops import TpSplit, gemm_shape, io_bytes
from planner.model.spec import ModelSpec
from planner.plan.steptime import experts_touched_frac as _touched_frac

# The kernel sweep (`planner calibrate`, docs/validation.md "Calibration feeds the kernel
# tables"): square GEMM sizes n (n×n @ n×n), copy sizes in bytes MOVED (read + written, the
# index of a catalog memory table: a tensor of half that size is copied), and fused attention
# (torch.nn.functional.scaled_dot_product_attention) at a few sequence lengths with a fixed
# number of tokens per call (batch = tokens / seq_len, as the FlashAttention papers time it).
# CPU sizes keep the whole sweep to a few seconds on 2 cores; the largest copy is the old
# 64 MB-tensor copy, beyond the caches.
CPU_MATMUL_SIZES = (128, 256, 512, 1024, 1536)
CUDA_MATMUL_SIZES = (256, 512, 1024, 2048, 4096, 8192)
CPU_COPY_SIZES = (1e5, 1e6, 4e6, 1.6e7, 6.4e7, 1.28e8)
CUDA_COPY_SIZES = (1e5, 1e6, 1e7, 1e8, 1e9, 2e9)
CPU_COPY_BYTES = 64 * 10**6  # tensor bytes of the largest CPU copy (1.28e8 moved)
CUDA_COPY_BYTES = 1000 * 10**6
CPU_ATTENTION = dict(seq_lens=(128, 256, 512, 1024), head_dim=64, heads=4, tokens=1024)
CUDA_ATTENTION = dict(seq_lens=(512, 1024, 2048, 4096, 8192, 16384), head_dim=128, heads=16,
                      tokens=16384)  # FlashAttention-3's setting: hidden 2048, B·S = 16k
ATTENTION_BWD_FLOPS = 2.5  # backward FLOPs / forward FLOPs (FlashAttention papers' convention)
CPU_TARGET_S = 2e-3  # one timed repeat runs back-to-back calls for at least this long
CUDA_TARGET_S = 1e-2
MAX_INNER_CALLS = 1000
POINT_MIN_S = 0.05  # short points repeat their timing for at least this long (see _rate_time_s)
OVERHEAD_WIDTH = 64  # the tiny nn.Linear(64, 64) on a [1, 64] input timed for the op overhead
OVERHEAD_CHAIN = 50  # calls per timed chain
OVERHEAD_CHAINS = 7  # timed chains; the median chain gives op_overhead_s
OPTIMIZER_TENSORS = 16  # tiny [64] parameters stepped to time one tensor's AdamW update
SKINNY_ROWS = (1, 4)  # rows b of the few-row matmuls [b, n] @ [n, n] timed for the skinny ceiling
CPU_SKINNY_SIZES = (1024, 2048)  # n; fp32 weights 4-16 MB, beyond the per-core L2 caches
CUDA_SKINNY_SIZES = (4096, 8192)  # bf16 32-128 MB: long enough that the launch is not the time
# A matmul whose left operand has at most this many rows is weight-streaming bound: GEMM
# libraries block the output in register tiles of about 4-16 rows (e.g. oneDNN/MKL AVX-512
# f32 micro-kernels, CUTLASS/cuBLAS tiles of 16-128 rows), so a left operand shorter than one
# tile re-uses each loaded weight element at most b times and runs as a (batched) GEMV, far
# below the square-matmul FLOP/s and, measured, also below the copy bandwidth. Above it the
# FLOPs term takes over quickly (2·b FLOPs per weight element), so the exact cut matters little.
SKINNY_MAX_ROWS = 16

# torch.optim.AdamW(foreach=False), the optimizer planner.measure.counters.MasterAdamW runs,
# launches per
# parameter tensor: step += 1, p.mul_(1 − lr·wd), m.lerp_, v.mul_, v.addcmul_, step.item(),
# v.sqrt(), div, add_(eps), p.addcdiv_ = 10 kernels (counted with a TorchDispatchMode, torch
# 2.13). With low-precision weights MasterAdamW adds the fp32 gradient copy and the copy back.
ADAMW_KERNELS_PER_TENSOR = 10
MASTER_COPY_KERNELS_PER_TENSOR = 2


ATTENTION_VARIANTS = ("fwd", "fwd_causal", "bwd", "bwd_causal")


class KernelSweep(BaseModel):
    """Achieved rates by size on the local device (`measure_kernel_sweep`): what a catalog
    `[[kernels]]` table records as fractions (planner.hardware.kernels, docs/kernels.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gemm_sizes: tuple[int, ...] = Field(description="n of the timed n×n @ n×n matmuls.")
    gemm_flops_per_s: tuple[float, ...] = Field(description="2n³ / best time, per size.")
    copy_sizes: tuple[float, ...] = Field(
        description="Bytes moved (read + written) per copy: a tensor of half of it is copied.")
    copy_bytes_per_s: tuple[float, ...] = Field(description="Bytes moved / best time, per size.")
    attention_seq_lens: tuple[int, ...] = Field(
        default=(), description="Sequence lengths of the timed fused attention (none: skipped).")
    attention_head_dim: int = Field(default=0, ge=0)
    attention_heads: int = Field(default=0, ge=0)
    attention_tokens: int = Field(default=0, ge=0,
                                  description="batch × seq_len of every attention call.")
    attention_flops_per_s: dict[str, tuple[float, ...]] = Field(
        default_factory=dict,
        description="fwd, fwd_causal, bwd, bwd_causal -> FLOP/s per sequence length, FLOPs "
                    "counted as the FlashAttention papers do: 4·b·h·s²·d forward, × 2.5 "
                    "backward, halved when causal.")

    @property
    def best_gemm_flops_per_s(self) -> float:
        return max(self.gemm_flops_per_s)

    @property
    def best_copy_bytes_per_s(self) -> float:
        return max(self.copy_bytes_per_s)


class Ceilings(BaseModel):
    """What the local device achieved: dense matmul FLOP/s in one dtype and copy bandwidth."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = Field(description="torch device type: 'cpu' or 'cuda'.")
    device_name: str = Field(description="GPU name, or the CPU model name (lscpu).")
    dtype: str = Field(description="dtype of the timed matmuls: fp32, bf16 or fp16.")
    matmul_flops_per_s: float = Field(gt=0, description="Best of the timed n×n matmuls.")
    memory_bw_bytes_per_s: float = Field(
        gt=0, description="Copy of `copy_bytes` (the largest copy of the sweep, beyond the "
                          "caches): 2 × size / best time.")
    matmul_n: int = Field(gt=0, description="Size n of the n×n @ n×n matmul that was fastest.")
    copy_bytes: int = Field(gt=0, description="Bytes of the copied tensor.")
    n_threads: int = Field(gt=0, description="torch intra-op threads (CPU).")
    memory_bytes: float = Field(gt=0, description="Device memory (GPU) or RAM (CPU), bytes.")
    measured_on: str = Field(description="Date of the measurement, YYYY-MM-DD.")
    torch_version: str = ""
    op_overhead_s: float = Field(
        default=0.0, ge=0,
        description="Median wall time of one tiny op (a [1, 64] @ [64, 64] nn.Linear forward, "
                    "no autograd) in a chain: Python module call + dispatch + kernel launch; "
                    "the floor of every kernel's time. 0 (the default, for ceilings saved "
                    "before it was measured) means no floor.")
    adamw_tensor_overhead_s: float = Field(
        default=0.0, ge=0,
        description="Median wall time of one tiny parameter tensor's update in the run's "
                    "optimizer (planner.measure.counters.MasterAdamW: torch AdamW, foreach=False, "
                    "with "
                    "fp32 master copies in bf16/fp16): its 10-12 kernel launches. 0 (ceilings "
                    "saved before it was measured): kernels per tensor × op_overhead_s.")
    skinny_matmul_bw_bytes_per_s: float = Field(
        default=0.0, ge=0,
        description="Weight bytes per second of a few-row matmul ([b, n] @ [n, n], b in "
                    "SKINNY_ROWS, weights n² × dtype bytes): the median over the shapes of the "
                    "best repeat. Used for matmul rows with at most SKINNY_MAX_ROWS tokens "
                    "(decode). 0 (ceilings saved before it was measured): memory_bw_bytes_per_s.")
    sweep: KernelSweep | None = Field(
        default=None,
        description="GEMM, copy and attention rates by size (what `to_catalog_toml` writes as "
                    "a [[kernels]] table); None for ceilings measured without it.")

    @property
    def skinny_bw_bytes_per_s(self) -> float:
        """The few-row matmul weight bandwidth, or the copy bandwidth when not measured."""
        return self.skinny_matmul_bw_bytes_per_s or self.memory_bw_bytes_per_s

    def gemm_flops_per_s_at(self, size: float) -> float:
        """The measured GEMM rate at size s = (m·n·k)^(1/3), interpolated in log s over the
        sweep and clamped at its ends (planner.hardware.kernels K1, the same rule the ranking
        applies to catalog tables); the single best rate when no sweep was measured."""
        if self.sweep is None or not self.sweep.gemm_sizes:
            return self.matmul_flops_per_s
        return float(log_interp(max(size, 1.0), self.sweep.gemm_sizes,
                                self.sweep.gemm_flops_per_s))


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


def measure_op_overhead_s(dev: torch.device, dtype: torch.dtype) -> float:
    """Median seconds per call of a chain of tiny `nn.Linear(64, 64)` forwards on a [1, 64]
    input, without autograd: what one eager op costs when its arithmetic is negligible
    (Python module call, dispatcher, launch). On CUDA the chain is asynchronous, so a call costs
    the launch overhead. About 3 ms on a 2-core CPU."""
    lin = torch.nn.Linear(OVERHEAD_WIDTH, OVERHEAD_WIDTH, device=dev, dtype=dtype)
    x = torch.randn(1, OVERHEAD_WIDTH, device=dev, dtype=dtype)

    def chain() -> None:
        y = x
        for _ in range(OVERHEAD_CHAIN):
            y = lin(y)

    per_call = []
    with torch.no_grad():
        chain()  # warm-up
        _sync(dev)
        for _ in range(OVERHEAD_CHAINS):
            t0 = time.perf_counter()
            chain()
            _sync(dev)
            per_call.append((time.perf_counter() - t0) / OVERHEAD_CHAIN)
    return float(np.median(per_call))


def measure_adamw_tensor_overhead_s(dev: torch.device, dtype: torch.dtype) -> float:
    """Median seconds per parameter tensor of a `MasterAdamW` step over a few tiny ([64])
    tensors: the launch cost of the optimizer's per-tensor kernels, whose arithmetic is
    negligible. About 5 ms on a 2-core CPU."""
    params = [torch.nn.Parameter(torch.zeros(OVERHEAD_WIDTH, device=dev, dtype=dtype))
              for _ in range(OPTIMIZER_TENSORS)]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = MasterAdamW(params)
    per_tensor = []
    for i in range(OVERHEAD_CHAINS + 1):  # the first step (state allocation) is a warm-up
        _sync(dev)
        t0 = time.perf_counter()
        opt.step()
        _sync(dev)
        if i:
            per_tensor.append((time.perf_counter() - t0) / OPTIMIZER_TENSORS)
    return float(np.median(per_tensor))


def measure_skinny_matmul_bw_bytes_per_s(dev: torch.device, dtype: torch.dtype,
                                         sizes: tuple[int, ...], repeats: int) -> float:
    """Weight bytes per second of few-row matmuls `[b, n] @ [n, n]` (b in SKINNY_ROWS, n in
    `sizes`): for each shape the best of `repeats` (n² × dtype bytes / time; the activations
    are b/n of that and are ignored), then the median over the shapes. On this 2-core CPU
    b = 1 (a GEMV) streams at 20-35 GB/s and b = 4 at 7-12 GB/s; the median lies between.
    About 0.05 s on a 2-core CPU."""
    rates = []
    for n in sizes:
        w = torch.randn(n, n, device=dev).to(dtype)
        for b in SKINNY_ROWS:
            x = torch.randn(b, n, device=dev).to(dtype)
            t = _best_time_s(lambda x=x, w=w: torch.mm(x, w), dev, repeats)
            rates.append(w.numel() * w.element_size() / t)
    return float(np.median(rates))


def _rate_time_s(fn, dev: torch.device, repeats: int) -> float:
    """Seconds per call: after a warm-up, each of `repeats` timings runs enough back-to-back
    calls to last about CPU_TARGET_S (CUDA_TARGET_S; one synchronize at the end, so launches
    overlap as in a real step); the best timing's mean is returned. NB: on a CPU shared with
    other jobs a 2-thread kernel waits whenever the OS parks one of its threads (a few ms);
    the best repeat removes most of that, not all (docs/validation.md)."""
    fn()
    _sync(dev)
    first = float("inf")  # the fastest of 3 single calls sizes the batches (one may stall)
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        first = min(first, max(time.perf_counter() - t0, 1e-7))
    target = CUDA_TARGET_S if dev.type == "cuda" else CPU_TARGET_S
    inner = int(min(MAX_INNER_CALLS, max(1, round(target / first))))
    best, n, start = float("inf"), 0, time.perf_counter()
    # at least `repeats` timings; short points keep going for POINT_MIN_S (at most 20 ×
    # repeats), which gives a timing between two stalls of a shared CPU more chances
    while n < repeats or (time.perf_counter() - start < POINT_MIN_S and n < 20 * repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(dev)
        best = min(best, (time.perf_counter() - t0) / inner)
        n += 1
    return best


def measure_gemm_flops_per_s(dev: torch.device, dtype: torch.dtype, size: int,
                             repeats: int) -> float:
    """FLOP/s of [n, n] @ [n, n] (2n³ FLOPs, F1) at its best repeat."""
    a = torch.randn(size, size, device=dev).to(dtype)
    b = torch.randn(size, size, device=dev).to(dtype)
    return 2.0 * size**3 / _rate_time_s(lambda: torch.mm(a, b), dev, repeats)


def measure_copy_bytes_per_s(dev: torch.device, bytes_moved: float, repeats: int) -> float:
    """Bytes moved per second by `dst.copy_(src)` of an fp32 tensor of bytes_moved / 2 bytes
    (one read, one write)."""
    numel = max(1, int(bytes_moved) // 8)
    src = torch.empty(numel, dtype=torch.float32, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    return 2.0 * numel * 4 / _rate_time_s(lambda: dst.copy_(src), dev, repeats)


def attention_flops(*, batch: int, heads: int, seq_len: int, head_dim: int, causal: bool,
                    backward: bool) -> float:
    """FLOPs of fused attention as the FlashAttention papers count them: 4·b·h·s²·d forward
    (QKᵀ and PV), × 2.5 backward, halved when causal (the masked half is skipped)."""
    f = 4.0 * batch * heads * seq_len**2 * head_dim
    return f * (0.5 if causal else 1.0) * (ATTENTION_BWD_FLOPS if backward else 1.0)


def measure_attention_flops_per_s(dev: torch.device, dtype: torch.dtype, *, seq_len: int,
                                  head_dim: int, heads: int, tokens: int, causal: bool,
                                  repeats: int) -> tuple[float, float]:
    """(forward, backward) FLOP/s of `scaled_dot_product_attention` on [b, h, s, d] inputs
    with b = max(1, tokens // s); the backward is `autograd.grad` of the retained graph."""
    import torch.nn.functional as F

    batch = max(1, tokens // seq_len)
    q, k, v = (torch.randn(batch, heads, seq_len, head_dim, device=dev).to(dtype)
               .requires_grad_(True) for _ in range(3))
    with torch.no_grad():
        fwd_s = _rate_time_s(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                             dev, repeats)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    grad = torch.ones_like(out)
    bwd_s = _rate_time_s(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True),
                         dev, repeats)
    fwd = attention_flops(batch=batch, heads=heads, seq_len=seq_len, head_dim=head_dim,
                          causal=causal, backward=False)
    return fwd / fwd_s, fwd * ATTENTION_BWD_FLOPS / bwd_s


def measure_kernel_sweep(dev: torch.device, dtype: torch.dtype, *, gemm_sizes: tuple[int, ...],
                         copy_sizes: tuple[float, ...], attention: dict | None, repeats: int,
                         progress: Callable[[str], None] | None = None) -> KernelSweep:
    """GEMM FLOP/s by size, copy bandwidth by size and (with `attention`: seq_lens, head_dim,
    heads, tokens) fused attention by sequence length, causal or not, forward and backward.
    About 3 s on a 2-core CPU with the default CPU sizes."""
    say = progress or (lambda _msg: None)
    gemm_sizes = tuple(sorted(set(int(n) for n in gemm_sizes)))
    copy_sizes = tuple(sorted(set(float(b) for b in copy_sizes)))
    gemm = []
    for n in gemm_sizes:
        say(f"GEMM {n}x{n}x{n}")
        gemm.append(measure_gemm_flops_per_s(dev, dtype, n, repeats))
    copy = []
    for b in copy_sizes:
        say(f"copy {b:.3g} B")
        copy.append(measure_copy_bytes_per_s(dev, b, repeats))
    attn: dict[str, list[float]] = {}
    seq_lens: tuple[int, ...] = ()
    if attention:
        seq_lens = tuple(sorted(set(int(s) for s in attention["seq_lens"])))
        for s in seq_lens:
            for causal in (False, True):
                say(f"attention s={s}{' causal' if causal else ''}")
                fwd, bwd = measure_attention_flops_per_s(
                    dev, dtype, seq_len=s, head_dim=int(attention["head_dim"]),
                    heads=int(attention["heads"]), tokens=int(attention["tokens"]),
                    causal=causal, repeats=repeats)
                tag = "_causal" if causal else ""
                attn.setdefault(f"fwd{tag}", []).append(fwd)
                attn.setdefault(f"bwd{tag}", []).append(bwd)
    return KernelSweep(
        gemm_sizes=gemm_sizes, gemm_flops_per_s=tuple(gemm), copy_sizes=copy_sizes,
        copy_bytes_per_s=tuple(copy), attention_seq_lens=seq_lens,
        attention_head_dim=int(attention["head_dim"]) if attention else 0,
        attention_heads=int(attention["heads"]) if attention else 0,
        attention_tokens=int(attention["tokens"]) if attention else 0,
        attention_flops_per_s={k: tuple(v) for k, v in attn.items()})


def sweep_settings(device: str = "cpu", *, matmul_sizes: tuple[int, ...] | None = None,
                   copy_bytes: int | None = None, copy_sizes: tuple[float, ...] | None = None,
                   attention: bool | dict = False) -> dict:
    """The sizes `measure_ceilings` will time on `device` (the defaults above unless given),
    and `steps`, the number of progress messages it will send."""
    cuda = torch.device(device).type == "cuda"
    gemm = tuple(matmul_sizes or (CUDA_MATMUL_SIZES if cuda else CPU_MATMUL_SIZES))
    if copy_sizes is None:
        copy_sizes = ((2.0 * copy_bytes,) if copy_bytes
                      else (CUDA_COPY_SIZES if cuda else CPU_COPY_SIZES))
    attn: dict | None = None
    if attention:
        attn = dict(CUDA_ATTENTION if cuda else CPU_ATTENTION)
        if isinstance(attention, dict):
            attn.update(attention)
    n_attn = 2 * len(set(attn["seq_lens"])) if attn else 0
    steps = len(set(gemm)) + len(set(copy_sizes)) + n_attn + 1
    return dict(gemm_sizes=gemm, copy_sizes=tuple(copy_sizes), attention=attn, steps=steps)


def measure_ceilings(device: str = "cpu", dtype: str = "fp32", *,
                     matmul_sizes: tuple[int, ...] | None = None, copy_bytes: int | None = None,
                     skinny_sizes: tuple[int, ...] | None = None, repeats: int = 3,
                     optimizer: bool = True, copy_sizes: tuple[float, ...] | None = None,
                     attention: bool | dict = False,
                     progress: Callable[[str], None] | None = None) -> Ceilings:
    """The kernel sweep (`measure_kernel_sweep`: square matmuls n×n @ n×n over `matmul_sizes`,
    copies over `copy_sizes` bytes moved, or one copy of a `copy_bytes` tensor; with
    `attention` (True, or a dict overriding seq_lens/head_dim/heads/tokens) fused attention
    too), each the best of `repeats` after a warm-up; then the few-row matmul weight bandwidth
    (`measure_skinny_matmul_bw_bytes_per_s`), the per-op overhead (`measure_op_overhead_s`)
    and, with `optimizer`, the optimizer's per-tensor overhead
    (`measure_adamw_tensor_overhead_s`; else 0) on `device`.

    The roofline ceilings: `matmul_flops_per_s` is the best GEMM of the sweep (F1: 2n³ FLOPs),
    `memory_bw_bytes_per_s` the LARGEST copy's rate (beyond the caches). About 1 s on a 2-core
    CPU without attention, 3-4 s with it.
    NB: torch's first optimizer step in a process imports torch._dynamo (~1.5 s here), which a
    training run pays anyway; `validate` passes optimizer=False for inference."""
    if dtype not in TORCH_DTYPES:
        raise ValueError(f"dtype: {dtype!r}; allowed: {', '.join(TORCH_DTYPES)}")
    if str(device).split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"device: {device!r} cannot be timed; use cpu or cuda")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but torch.cuda.is_available() is False; "
                         "use cpu")
    cuda = dev.type == "cuda"
    plan = sweep_settings(device, matmul_sizes=matmul_sizes, copy_bytes=copy_bytes,
                          copy_sizes=copy_sizes, attention=attention)
    sweep = measure_kernel_sweep(dev, TORCH_DTYPES[dtype], gemm_sizes=plan["gemm_sizes"],
                                 copy_sizes=plan["copy_sizes"], attention=plan["attention"],
                                 repeats=repeats, progress=progress)
    best = int(np.argmax(sweep.gemm_flops_per_s))
    (progress or (lambda _msg: None))("few-row matmuls, per-op and optimizer overhead")
    return Ceilings(
        device=dev.type, device_name=device_name(dev), dtype=dtype,
        matmul_flops_per_s=sweep.gemm_flops_per_s[best],
        memory_bw_bytes_per_s=sweep.copy_bytes_per_s[-1],
        matmul_n=sweep.gemm_sizes[best], copy_bytes=max(4, int(sweep.copy_sizes[-1]) // 8 * 4),
        n_threads=torch.get_num_threads(),
        memory_bytes=_memory_bytes(dev), measured_on=dt.date.today().isoformat(),
        torch_version=torch.__version__,
        op_overhead_s=measure_op_overhead_s(dev, TORCH_DTYPES[dtype]),
        skinny_matmul_bw_bytes_per_s=measure_skinny_matmul_bw_bytes_per_s(
            dev, TORCH_DTYPES[dtype],
            skinny_sizes or (CUDA_SKINNY_SIZES if cuda else CPU_SKINNY_SIZES), repeats),
        adamw_tensor_overhead_s=(measure_adamw_tensor_overhead_s(dev, TORCH_DTYPES[dtype])
                                 if optimizer else 0.0),
        sweep=sweep,
    )


# ---- the roofline -------------------------------------------------------------------------------
def _io_bytes(spec: ModelSpec, row, *, batch: float, q_len: float, kv_len: float,
              act_bytes: float) -> float:
    """Activation (and KV-cache) bytes a row reads plus writes in one pass over `batch`
    sequences: planner.model.ops.io_bytes, the rule the ranking's step time uses."""
    traffic, kv = io_bytes(spec, _local(row.layer), row.kind, q_len=q_len, kv_len=kv_len,
                           a=act_bytes, decode=q_len == 1 and kv_len > 1)
    return batch * (traffic + kv)


def _local(name: str) -> str:
    """Row name inside its block: `blocks.3.attn.q` -> `attn.q`."""
    return name.split(".", 2)[2] if name.startswith("blocks.") else name


def _row_ops(spec: ModelSpec, name: str, kind: str, *, tokens: float, q_len: int,
             training: bool, decode: bool, low_precision: bool) -> float:
    """Kernels one forward of the row launches in the eager reference model
    (planner/measure/torch_models.py), views excluded; checked against a dispatch-mode count in
    tests/test_validate.py. Glue between rows is charged to the row it follows: the residual
    add to attn.out and the FFN's down row, rotary embedding to q and k, the KV-cache append to
    k and v, routing to the router. Step constants (position ids, rotary tables, causal mask)
    are charged separately (`_step_constant_ops`)."""
    local = _local(name)
    leaf = local.rsplit(".", 1)[-1]
    drop = int(training and spec.dropout > 0)  # native_dropout
    multi = q_len > 1
    if kind == "embedding":  # lookup, + the add into the running sum after the first
        last = not spec.embedding_norm and local == _last_embedding(spec)
        return 1 + (local != "embed.tokens") + (drop if last else 0)
    if kind == "norm":  # layer_norm is one kernel; RMSNorm: pow, mean, add, rsqrt, mul, mul
        kernels = 1 if spec.norm == "layernorm" else 6 + 2 * low_precision  # (+ fp32 casts)
        return kernels + (drop if local == "embed.norm" else 0)
    if kind == "router":  # mm, softmax; topk, sum, div, argsort, bincount, //, 2 gathers,
        return 2 + low_precision + 13  # empty_like, arange, scatter, weighted-sum mul and sum
    if kind == "attention":  # bmm, + 2 contiguous copies with several query tokens (the
        return 1 + 2 * int(multi)  # folded q and kᵀ; the context back to [b, s, heads·d])
    if kind == "softmax":  # scale, causal-mask add, softmax, dropout
        return 2 + int(multi and spec.causal) + drop
    if kind == "activation":
        return 2 if spec.gated_mlp else 1  # act(gate) · up
    if kind == "loss":  # log_softmax, nll_loss (+ the fp32 cast of the logits)
        return 2 + low_precision
    if kind != "linear":
        return 1
    if local.startswith("moe.experts."):  # one matmul per expert that got tokens, and a cat;
        # E · (expected share of experts that get a token, P6b)
        n = spec.n_experts * experts_touched_frac(spec, tokens) + 1
    else:
        n = 1.0  # addmm (bias fused) or mm
    if leaf in ("q", "k") and local.startswith("attn.") and spec.position == "rotary":
        n += 5  # x·cos + rotate_half(x)·sin: mul, neg, cat, mul, add
    if leaf in ("k", "v") and local.startswith("attn.") and decode:
        n += 1  # cat onto the KV cache
    if local == "attn.out" or local in ("mlp.down", "moe.experts.down"):
        n += 1 + (drop if local != "moe.experts.down" else 0)  # residual add (+ dropout)
    if local == "moe.shared.down":
        n += 1  # routed + shared
    if local == "pooler":
        n += 1  # tanh
    return n


def _last_embedding(spec: ModelSpec) -> str:
    if spec.n_token_types:
        return "embed.token_types"
    return "embed.positions" if spec.position == "learned" else "embed.tokens"


def _step_constant_ops(spec: ModelSpec, *, q_len: int) -> int:
    """Kernels that build the step's constants (charged to embed.tokens, forward only):
    position ids; rotary cos/sin tables (arange, cast, div, pow, reciprocal, 2 mul, cat, cos,
    sin); the causal mask (full, triu, repeat)."""
    return 1 + 10 * (spec.position == "rotary") + 3 * (spec.causal and q_len > 1)


def row_op_counts(spec: ModelSpec, table: pd.DataFrame, *, seq_len: int, batch_size: int,
                  training: bool = False, act_bytes: float = 4) -> pd.DataFrame:
    """Kernels per row: `fwd_ops` (training forward or prefill: seq_len tokens), `bwd_ops`
    (2 × the row's forward ops: one or two gradient kernels per forward kernel, the autograd
    engine's own work uncounted) and `decode_ops` (one new token per sequence)."""
    low = act_bytes < 4
    out = []
    for row in table.itertuples(index=False):
        kw = dict(training=training, low_precision=low)
        fwd = _row_ops(spec, row.layer, row.kind, tokens=batch_size * seq_len, q_len=seq_len,
                       decode=False, **kw)
        dec = _row_ops(spec, row.layer, row.kind, tokens=batch_size, q_len=1, decode=True,
                       training=False, low_precision=low)
        first = row.layer == "embed.tokens"
        out.append(dict(
            layer=row.layer, bwd_ops=2 * fwd,
            fwd_ops=fwd + (_step_constant_ops(spec, q_len=seq_len) if first else 0),
            decode_ops=dec + (_step_constant_ops(spec, q_len=1) if first else 0)))
    return pd.DataFrame(out)


def roofline_row_times(spec: ModelSpec, table: pd.DataFrame, ceilings: Ceilings, *,
                       seq_len: int, batch_size: int, act_bytes: float,
                       training: bool = False) -> pd.DataFrame:
    """Per-row roofline seconds for forward (train/prefill), backward and decode, with the
    per-op floor (ops × op_overhead_s), plus bytes moved and kernels per row.

    NB: a floor (max), as planner.plan.steptime.op_time_s, not a sum: on CUDA the host launches
    asynchronously, so launch overhead hides behind a kernel that runs longer than it and only
    shows when kernels are shorter. On the CPU eager dispatch runs serially before each kernel,
    so the truth lies between max and sum; the difference is at most ops × op_overhead_s per
    row, which is largest where rows are tiny (decode), and the max keeps the prediction a
    lower bound.

    A matmul row with weights whose token count (rows of its left operand: batch × seq_len
    forward, batch in decode) is at most SKINNY_MAX_ROWS reads its weights at the few-row
    rate: bytes term = weight bytes / skinny_bw + activation bytes / copy bandwidth. The
    backward keeps 2 × forward bytes at the copy bandwidth."""
    ops = row_op_counts(spec, table, seq_len=seq_len, batch_size=batch_size,
                        training=training, act_bytes=act_bytes)
    floor = ceilings.op_overhead_s
    bw = ceilings.memory_bw_bytes_per_s
    tied_bytes = _tied_head_weight_bytes(spec, table)
    out = []
    for row, n in zip(table.itertuples(index=False), ops.itertuples(index=False), strict=True):
        fwd_io = _io_bytes(spec, row, batch=batch_size, q_len=seq_len, kv_len=seq_len,
                           act_bytes=act_bytes)
        dec_io = _io_bytes(spec, row, batch=batch_size, q_len=1, kv_len=seq_len,
                           act_bytes=act_bytes)
        if row.kind == "embedding":  # a lookup reads the rows it needs, not the table
            w_fwd = min(row.weight_bytes, batch_size * seq_len * spec.d_model * act_bytes)
            w_dec = min(row.weight_bytes, batch_size * spec.d_model * act_bytes)
        elif row.layer == "lm_head" and row.weight_bytes == 0:
            w_fwd = w_dec = tied_bytes  # a tied head owns no weights but reads the embedding's
        elif _local(row.layer).startswith("moe.experts."):  # only the experts that got tokens
            w_fwd = row.weight_bytes * experts_touched_frac(spec, batch_size * seq_len)
            w_dec = row.weight_bytes * experts_touched_frac(spec, batch_size)
        else:
            w_fwd = w_dec = row.weight_bytes
        fwd_bytes = w_fwd + fwd_io
        dec_bytes = w_dec + dec_io
        dec_flops = getattr(row, "decode_flops", 0.0)
        skinny = bool(row.is_matmul) and row.kind != "embedding"
        fwd_rate, dec_rate = _gemm_rates(spec, row, ceilings, batch_size=batch_size,
                                         seq_len=seq_len)
        out.append(dict(
            layer=row.layer, fwd_bytes_moved=fwd_bytes, decode_bytes_moved=dec_bytes,
            fwd_ops=n.fwd_ops, bwd_ops=n.bwd_ops, decode_ops=n.decode_ops,
            fwd_s=max(row.fwd_flops / fwd_rate,
                      _memory_s(w_fwd, fwd_bytes, ceilings,
                                skinny=skinny and batch_size * seq_len <= SKINNY_MAX_ROWS),
                      n.fwd_ops * floor),
            bwd_s=max(row.bwd_flops / fwd_rate, 2 * fwd_bytes / bw,
                      n.bwd_ops * floor),
            decode_s=max(dec_flops / dec_rate,
                         _memory_s(w_dec, dec_bytes, ceilings,
                                   skinny=skinny and batch_size <= SKINNY_MAX_ROWS),
                         n.decode_ops * floor),
        ))
    return pd.DataFrame(out)


def _gemm_rates(spec: ModelSpec, row, ceilings: Ceilings, *, batch_size: int,
                seq_len: int) -> tuple[float, float]:
    """(forward, decode) GEMM rate of a matmul row at its own shape (planner.model.ops
    gemm_shape: the same op definitions as the ranking's step time): m = the row's tokens
    (× heads for eager attention's batched per-head GEMMs, per touched expert for routed
    experts), as the ranking's step time reads its tables (K1). Non-matmul rows
    get the best rate (their FLOPs are conventions, F5)."""
    if not row.is_matmul or row.kind == "embedding":
        return ceilings.matmul_flops_per_s, ceilings.matmul_flops_per_s
    name = _local(row.layer)
    shape = gemm_shape(spec, name, kv_len=seq_len, tokens_per_seq=seq_len)
    per_head = shape.split is TpSplit.HEADS

    def rate(tokens: float, kv_len: float) -> float:
        if per_head:  # one batched call of [q, d] @ [d, kv] GEMMs, one per head and sequence
            m, n = tokens * spec.n_heads, (kv_len if name == "attn.scores" else shape.n)
            k = shape.k if name == "attn.scores" else kv_len
        else:
            m = tokens * shape.rows_per_token
            if _local(row.layer).startswith("moe.experts."):
                m /= max(experts_touched_frac(spec, tokens), 1e-12)
            n, k = shape.n, shape.k
        return ceilings.gemm_flops_per_s_at(float(np.cbrt(m * n * k)))

    return (rate(batch_size * seq_len, seq_len), rate(batch_size, seq_len))


def experts_touched_frac(spec: ModelSpec, tokens: float) -> float:
    """Expected share of the routed experts that `tokens` tokens touch (planner.plan.steptime P6b,
    docs/planning.md); 1 for a dense model."""
    if not spec.is_moe:
        return 1.0
    return float(_touched_frac(route_frac=spec.experts_top_k / spec.n_experts,
                               n_tokens=tokens))


def _tied_head_weight_bytes(spec: ModelSpec, table: pd.DataFrame) -> float:
    """Bytes a tied LM head reads: the token embedding matrix it shares (its table row owns no
    weights, so that they are counted once in memory). 0 when the head is not tied."""
    if not spec.tied_embeddings:
        return 0.0
    embed = table.loc[table["layer"] == "embed.tokens", "weight_bytes"]
    return float(embed.iloc[0]) if len(embed) else 0.0


def _memory_s(weight_bytes: float, bytes_moved: float, ceilings: Ceilings, *,
              skinny: bool) -> float:
    """Memory term of a row: bytes moved / copy bandwidth; for a few-row matmul the weights at
    the skinny rate and the rest (activations) at the copy bandwidth."""
    bw = ceilings.memory_bw_bytes_per_s
    if not skinny:
        return bytes_moved / bw
    return weight_bytes / ceilings.skinny_bw_bytes_per_s + (bytes_moved - weight_bytes) / bw


def adamw_step_bytes(weight_bytes, grad_bytes, optimizer_bytes, *, master_copy: bool):
    """Bytes one fused AdamW step must move (each tensor read or written once).

    fp32 without a master copy (the weights are the fp32 parameters; optimizer_bytes = the two
    moments): read w, g, m, v, write w, m, v -> 2·W + G + 2·O. Mixed precision with fp32 master
    weights (optimizer_bytes = master + moments, ZeRO Sec. 3.1): read g and the state, write the
    state and the low-precision copy of the weights -> W + G + 2·O, docs/planning.md P14.
    NB: torch's for-loop AdamW moves more (intermediate sqrt/div tensors: about 20 fp32
    accesses per parameter against 7), docs/validation.md."""
    return (1 if master_copy else 2) * weight_bytes + grad_bytes + 2 * optimizer_bytes


def _param_tensors(spec: ModelSpec, name: str, kind: str, n_params: float) -> tuple[int, int]:
    """(matrix tensors, vector tensors) of a row in the reference model: weights, and biases or
    norm scales/shifts. A tied LM head owns none (its weight is the embedding's)."""
    if n_params == 0:
        return 0, 0
    if kind == "norm":
        return 0, 2 if spec.norm == "layernorm" else 1
    local = _local(name)
    if local in ("attn.q", "attn.k", "attn.v"):
        return 1, int(spec.qkv_bias)
    if local == "attn.out":
        return 1, int(spec.attn_out_bias)
    if local == "pooler":
        return 1, 1
    if local.startswith(("mlp.", "moe.experts.", "moe.shared.")):
        return 1, int(spec.mlp_bias)
    return 1, 0


def optimizer_time_s(spec: ModelSpec, table: pd.DataFrame, ceilings: Ceilings) -> float:
    """AdamW step: per row, max(fused bytes / bandwidth, matrices × per-tensor overhead) plus
    vectors × per-tensor overhead (a bias or norm scale moves almost nothing; its 10-12
    launches are its time). The per-tensor overhead is the measured
    `adamw_tensor_overhead_s`, else kernels per tensor × op_overhead_s. Mixed precision (a
    master copy) is recognised by weights under 4 B per parameter."""
    n_params = float(table["n_params"].sum())
    master = n_params > 0 and float(table["weight_bytes"].sum()) / n_params < 4
    kernels = ADAMW_KERNELS_PER_TENSOR + (MASTER_COPY_KERNELS_PER_TENSOR if master else 0)
    launch_s = ceilings.adamw_tensor_overhead_s or kernels * ceilings.op_overhead_s
    total = 0.0
    for row in table.itertuples(index=False):
        n_mat, n_vec = _param_tensors(spec, row.layer, row.kind, row.n_params)
        moved = adamw_step_bytes(row.weight_bytes, row.grad_bytes, row.optimizer_bytes,
                                 master_copy=master)
        total += max(moved / ceilings.memory_bw_bytes_per_s, n_mat * launch_s) + n_vec * launch_s
    return total


def predict_times(spec: ModelSpec, table: pd.DataFrame, ceilings: Ceilings, *, seq_len: int,
                  batch_size: int, mode: str, act_bytes: float) -> dict[str, float]:
    """Roofline seconds per phase: train -> forward, backward, optimizer, step; inference ->
    prefill, decode (one token at context seq_len). `table` is `planner.layer_table`'s."""
    rows = roofline_row_times(spec, table, ceilings, seq_len=seq_len, batch_size=batch_size,
                              act_bytes=act_bytes, training=mode == "train")
    if mode == "train":
        times = {"forward": float(rows["fwd_s"].sum()), "backward": float(rows["bwd_s"].sum()),
                 "optimizer": optimizer_time_s(spec, table, ceilings)}
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


def _frac(value: float, peak: float) -> float:
    """value / peak as a catalog fraction: in (0, 1], 4 significant digits."""
    return min(1.0, max(1e-6, float(f"{value / peak:.4g}")))


def _toml_list(values) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


# Collectives on one device cannot be measured. The placeholder rule the calibrated entry
# carries (its `source` says so): α = 10 µs per step (a host-side synchronisation, an order of
# magnitude) and every bus-bandwidth fraction 1.0 of the device's scale-up link. The entry has
# no scale-up link (`scaleup_bw_bytes_per_s` absent), so the planner never runs a collective on
# it and refuses layouts over more than one device ("needs a link the catalog has no bandwidth
# for"); whoever adds a link should replace this table with nccl-tests numbers.
PLACEHOLDER_LATENCY_S = 1e-5


def kernels_toml(ceilings: Ceilings, device_id: str) -> str:
    """The `[[kernels]]` table of a calibrated device (planner.hardware.kernels): the sweep's
    rates as fractions of the best GEMM (the entry's dense peak in that dtype) and of the best
    copy (its memory bandwidth), so the best point of each is 1.0 and none is above it.
    Attention fractions are of the same GEMM peak (clipped at 1.0, said in the source)."""
    c, sw = ceilings, ceilings.sweep
    if sw is None or not sw.attention_seq_lens:
        raise ValueError("ceilings: no kernel sweep with attention to write as a [[kernels]] "
                         "table; measure with planner calibrate (measure_ceilings(..., "
                         "attention=True))")
    when = c.measured_on
    peak, bw = sw.best_gemm_flops_per_s, sw.best_copy_bytes_per_s
    cpu = c.device == "cpu"
    gemm_src = (f"measured by planner calibrate on {when}: square torch.mm {c.dtype} "
                f"n = {', '.join(str(n) for n in sw.gemm_sizes)} on {c.device_name} "
                f"({c.n_threads} threads, torch {c.torch_version}), best repeat of back-to-back "
                f"calls; GFLOP/s {', '.join(f'{r / 1e9:.4g}' for r in sw.gemm_flops_per_s)}; "
                f"fractions of the best, {peak / 1e9:.4g} GFLOP/s (the entry's dense peak).")
    gemm_src += (" sustained_frac = 1.0: a CPU has no tensor-core power-limit derate (K1c)."
                 if cpu else " sustained_frac left to the K1c rule (a short benchmark, like "
                 "the other GPU tables).")
    attn_src = (f"measured by planner calibrate on {when}: "
                f"torch.nn.functional.scaled_dot_product_attention {c.dtype}, head_dim "
                f"{sw.attention_head_dim}, {sw.attention_heads} heads, {sw.attention_tokens} "
                "tokens per call (batch = tokens / seq_len); backward = autograd.grad of the "
                "retained graph; FLOPs 4·b·h·s²·d forward, × 2.5 backward, halved when causal; "
                f"fractions of the GEMM peak {peak / 1e9:.4g} GFLOP/s. GFLOP/s: "
                + "; ".join(f"{k} " + ", ".join(f"{r / 1e9:.4g}"
                                                 for r in sw.attention_flops_per_s[k])
                            for k in ATTENTION_VARIANTS))
    clipped = sum(r > peak for k in ATTENTION_VARIANTS for r in sw.attention_flops_per_s[k])
    if clipped:
        attn_src += f" {clipped} point(s) above the GEMM peak clipped to 1.0."
    mem_src = (f"measured by planner calibrate on {when}: fp32 tensor copy (dst.copy_(src)), "
               "size = bytes moved (read + written); GB/s "
               f"{', '.join(f'{r / 1e9:.4g}' for r in sw.copy_bytes_per_s)}; fractions of the "
               f"best, {bw / 1e9:.4g} GB/s (the entry's memory bandwidth)."
               + (" On a CPU the small copies run in the caches: the fraction falls with size."
                  if cpu else ""))
    coll_src = ("placeholder rule, not a measurement: one device, no collective can be timed. "
                f"latency_s = {PLACEHOLDER_LATENCY_S:g} (an order of magnitude of a host "
                "synchronisation), every bus-bandwidth fraction 1.0 of the scale-up link. The "
                "device entry has no scale-up link, so the planner runs it alone; if you add "
                "scaleup_bw_bytes_per_s (e.g. the measured copy bandwidth, "
                f"{bw / 1e9:.4g} GB/s, for devices sharing one memory), replace this with "
                "nccl-tests numbers.")
    lines = [
        "[[kernels]]",
        f"devices = [{_toml_str(device_id)}]",
        f'checked_on = "{when}"',
        "rule = false",
        f"notes = {_toml_str(f'measured by planner calibrate on {when} ({c.device_name})')}",
        "",
        "[kernels.gemm]",
        f"source = {_toml_str(gemm_src)}",
        f"size = {_toml_list(sw.gemm_sizes)}",
        *(["sustained_frac = 1.0"] if cpu else []),
        f"{c.dtype} = {_toml_list(_frac(r, peak) for r in sw.gemm_flops_per_s)}",
        "",
        "[kernels.attention]",
        f"source = {_toml_str(attn_src)}",
        f"seq_len = {_toml_list(sw.attention_seq_lens)}",
    ]
    for key in ATTENTION_VARIANTS:
        direction, _, causal = key.partition("_")
        lines += ["[[kernels.attention.curve]]", f'dtype = "{c.dtype}"',
                  f"head_dim = {sw.attention_head_dim}",
                  f"causal = {'true' if causal else 'false'}", f'direction = "{direction}"',
                  f"frac = {_toml_list(_frac(r, peak) for r in sw.attention_flops_per_s[key])}"]
    lines += [
        "",
        "[kernels.memory]",
        f"source = {_toml_str(mem_src)}",
        f"size_bytes = {_toml_list(sw.copy_sizes)}",
        f"frac = {_toml_list(_frac(r, bw) for r in sw.copy_bytes_per_s)}",
        "",
        "[kernels.collectives.scale_up]",
        f"source = {_toml_str(coll_src)}",
        f"latency_s = {PLACEHOLDER_LATENCY_S:g}",
        *(f"{op} = 1.0" for op in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                                   "send_recv")),
        "",
    ]
    return "\n".join(lines)


def device_id_for(ceilings: Ceilings) -> str:
    """The catalog id a calibrated device gets: local_<cpu|cuda>_<name>."""
    return f"local_{ceilings.device}_{_slug(ceilings.device_name)}"


def to_catalog_toml(ceilings: Ceilings, *, device_id: str | None = None) -> str:
    """A catalog user file for this machine (planner.hardware.catalog): one `[[device]]` entry
    whose dense peak in the run's dtype is the best measured GEMM and whose memory bandwidth is
    the best measured copy, plus, when the ceilings carry a kernel sweep with attention
    (`planner calibrate`), its `[[kernels]]` table (`kernels_toml`). Without a sweep the device
    borrows its class's kernel tables (planner.hardware.kernels) and the file says so.
    Load it with `load_catalog(path)`.
    """
    c = ceilings
    kind = "gpu" if c.device == "cuda" else "other"
    vendor = c.device_name.split()[0] if c.device_name.split() else "local"
    did = device_id or device_id_for(c)
    sw = c.sweep
    peak = sw.best_gemm_flops_per_s if sw else c.matmul_flops_per_s
    bw = sw.best_copy_bytes_per_s if sw else c.memory_bw_bytes_per_s
    gemm_n = sw.gemm_sizes[int(np.argmax(sw.gemm_flops_per_s))] if sw else c.matmul_n
    copy_b = sw.copy_sizes[int(np.argmax(sw.copy_bytes_per_s))] if sw else 2 * c.copy_bytes
    note = (f"Calibrated by planner on {c.measured_on}: peak = the best {c.dtype} square matmul "
            f"({gemm_n}x{gemm_n}), memory bandwidth = the best copy ({copy_b:.3g} bytes moved), "
            f"best of repeats, {c.n_threads} threads, torch {c.torch_version}; per-op overhead "
            f"{c.op_overhead_s * 1e6:.1f} us; few-row matmul weight bandwidth "
            f"{c.skinny_bw_bytes_per_s / 1e9:.1f} GB/s. Achieved values, not vendor peaks; "
            "launch_year is the year of the measurement.")
    lines = [
        "# Written by planner.measure.calibration.to_catalog_toml (planner calibrate); "
        "load with load_catalog(this_file).",
        "[[device]]",
        f"id = {_toml_str(did)}",
        f"vendor = {_toml_str(vendor)}",
        f"name = {_toml_str(c.device_name + ' (calibrated)')}",
        f'kind = "{kind}"',
        f"launch_year = {int(c.measured_on[:4])}",
        f"peak_flops_per_s = {{ {c.dtype} = {peak:.6g} }}",
        f"memory_bytes = {c.memory_bytes:.6g}",
        f"memory_bw_bytes_per_s = {bw:.6g}",
        'price_note = "a local machine: no price"',
        f"sources = [{_toml_str(f'measured by planner calibrate on {c.measured_on}')}]",
        f'checked_on = "{c.measured_on}"',
        f"notes = {_toml_str(note)}",
        "",
    ]
    if sw is not None and sw.attention_seq_lens:
        lines.append(kernels_toml(c, did))
    else:
        lines.append("# No [[kernels]] table: these ceilings carry no kernel sweep, so the "
                     f"planner borrows the {kind} class's tables; run planner calibrate for one.")
    return "\n".join(lines) + "\n"


def sweep_frame(ceilings: Ceilings) -> pd.DataFrame:
    """The kernel sweep as one row per measured point: kernel (gemm, copy, attention), variant
    (attention: fwd, fwd_causal, bwd, bwd_causal), size (n, bytes moved, seq_len), rate
    (FLOP/s or bytes/s), unit, frac (of the best GEMM or copy: the catalog fraction), plus the
    device, dtype and date."""
    sw = ceilings.sweep
    rows: list[dict] = []
    if sw is not None:
        peak, bw = sw.best_gemm_flops_per_s, sw.best_copy_bytes_per_s
        rows += [dict(kernel="gemm", variant=ceilings.dtype, size=n, rate=r, unit="FLOP/s",
                      frac=r / peak) for n, r in zip(sw.gemm_sizes, sw.gemm_flops_per_s,
                                                     strict=True)]
        rows += [dict(kernel="copy", variant="bytes moved", size=b, rate=r, unit="B/s",
                      frac=r / bw) for b, r in zip(sw.copy_sizes, sw.copy_bytes_per_s,
                                                   strict=True)]
        for key in ATTENTION_VARIANTS:
            for s, r in zip(sw.attention_seq_lens, sw.attention_flops_per_s.get(key, ()),
                            strict=False):
                rows.append(dict(kernel="attention", variant=f"{key} d{sw.attention_head_dim}",
                                 size=s, rate=r, unit="FLOP/s", frac=r / peak))
    df = pd.DataFrame(rows, columns=["kernel", "variant", "size", "rate", "unit", "frac"])
    return df.assign(device_name=ceilings.device_name, dtype=ceilings.dtype,
                     measured_on=ceilings.measured_on)


def sweep_tables(ceilings: Ceilings) -> dict[str, pd.DataFrame]:
    """The kernel sweep for reading: "gemm" (n, GFLOP/s, frac), "copy" (bytes moved, GB/s,
    frac) and, when measured, "attention" (seq_len, batch, then GFLOP/s and frac for fwd,
    fwd_causal, bwd, bwd_causal). frac is of the best GEMM (copy): what the catalog stores."""
    sw = ceilings.sweep
    if sw is None:
        return {}
    peak, bw = sw.best_gemm_flops_per_s, sw.best_copy_bytes_per_s
    out = {
        "gemm": pd.DataFrame({"n": sw.gemm_sizes,
                              "GFLOP/s": [round(r / 1e9, 2) for r in sw.gemm_flops_per_s],
                              "frac": [round(r / peak, 3) for r in sw.gemm_flops_per_s]}),
        "copy": pd.DataFrame({"bytes moved": [f"{b:.3g}" for b in sw.copy_sizes],
                              "GB/s": [round(r / 1e9, 2) for r in sw.copy_bytes_per_s],
                              "frac": [round(r / bw, 3) for r in sw.copy_bytes_per_s]}),
    }
    if sw.attention_seq_lens:
        attn = pd.DataFrame({"seq_len": sw.attention_seq_lens,
                             "batch": [max(1, sw.attention_tokens // s)
                                       for s in sw.attention_seq_lens]})
        for key in ATTENTION_VARIANTS:
            rates = sw.attention_flops_per_s[key]
            attn[f"{key} GFLOP/s"] = [round(r / 1e9, 2) for r in rates]
            attn[f"{key} frac"] = [round(min(1.0, r / peak), 3) for r in rates]
        out["attention"] = attn
    return out


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (no extra dependency)."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def ceilings_frame(c: Ceilings) -> pd.DataFrame:
    """One-row DataFrame of the ceilings (for CSV)."""
    return pd.DataFrame([c.model_dump(exclude={"sweep"})])


def ratio(measured: float, predicted: float) -> float:
    """measured / predicted, NaN when either is missing."""
    if not (np.isfinite(measured) and np.isfinite(predicted)) or predicted == 0:
        return float("nan")
    return measured / predicted
