"""The default-efficiency rule: what fraction of its peaks a device reaches, for any workload.

One general rule (docs/planning.md P6), never fitted to individual runs:

1. Device kind and generation set the base fractions. They come from the catalog
   (`Device.efficiency`, filled by `planner.hardware.catalog.default_efficiency` from the
   measurements in
   shared/reference/README.md §3-5 and §7): matmuls reach `train_compute_frac` of the dense peak
   in training (`infer_compute_frac` in serving), memory-bound ops `memory_bw_frac` of the
   memory bandwidth, collectives `network_frac` of the per-direction link bandwidth.
2. Model size and sequence length act through the per-layer roofline (planner.plan.steptime): every
   op takes max(FLOPs / (peak · compute), bytes / (bandwidth · memory), op overhead), so small
   models (narrow matmuls, many short kernels) and decode (weights and KV cache read per token)
   lose efficiency without a fitted size factor, and long sequences shift work into attention
   and, through activation memory, into recomputation.
3. The parallel layout acts through exposed time (planner.plan.steptime): tensor-parallel
   collectives
   on the scale-up link, the pipeline bubble (p−1)/(m+p−1), data-parallel and ZeRO traffic not
   hidden behind the backward pass.

The catalog's compute fraction is an MFU measured on well-tuned runs (7B-540B models, 2-4k
context). The planner applies it to matmul FLOPs and adds the exposed losses of each candidate
on top, so for a well-tuned layout its implied MFU is 5-15 % below the catalog value, which is
inside the spread of the measurements it was drawn from (e.g. H100 40-46 %, ref README §5).
FPGAs follow the same rule: their compute fraction is 0.20 (ref §7: "do not use peak DSP TOPS
for prefill without a 20-30 % efficiency factor"), so prefill is slow and decode is
bandwidth-bound, as §7 advises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Time below which a kernel cannot finish: the host has to issue it (driver call, argument
# marshalling, queueing). "A few microseconds" per CUDA launch; NVIDIA's Nsight Systems guide
# measured ~20 µs host-to-device for one eager PyTorch element-wise kernel on a V100 (quoted by
# groundy.com, "Every CUDA kernel pays a launch tax"). 5 µs assumes an asynchronous, mostly
# fused runtime (Megatron, CUDA graphs, XLA). NB: an order of magnitude, not a measurement.
OP_OVERHEAD_S = 5e-6

# Fixed latency of one collective (a ring's start-up). nccl-tests small-message all-reduce on
# 8 NVLink GPUs takes ~10-20 µs; NB: an order of magnitude, used for every link.
COLLECTIVE_LATENCY_S = 10e-6

# Fallback order when the catalog has no dense peak for the job's matmul dtype: a device
# without fp8 runs the fp8 recipe in bf16, etc. (what a framework does). Inference may fall
# back to int8 (FPGA LLM accelerators compute in int8; shared/reference/README.md §7).
_TRAIN_FALLBACK = {
    "fp8": ("fp8", "bf16", "fp16", "fp32"),
    "bf16": ("bf16", "fp16", "fp32"),
    "fp16": ("fp16", "bf16", "fp32"),
    "fp32": ("fp32",),
}
_INFER_EXTRA = ("int8",)


def peak_dtype_chain(compute_dtype: str, *, mode: str) -> tuple[str, ...]:
    """dtypes whose dense peak may stand in for `compute_dtype`, best first."""
    chain = _TRAIN_FALLBACK.get(compute_dtype, (compute_dtype, "bf16", "fp16", "fp32"))
    return chain + (_INFER_EXTRA if mode == "inference" else ())


def device_peak(device: Any, compute_dtype: str, *, mode: str) -> tuple[float, str]:
    """(dense peak FLOP/s, dtype used) for a device; (nan, "") when no dtype of the chain has a
    peak in the catalog."""
    for dtype in peak_dtype_chain(compute_dtype, mode=mode):
        value = device.peak_flops_per_s.get(dtype)
        if value:
            return float(value), dtype
    return float("nan"), ""


@dataclass(frozen=True)
class Efficiencies:
    """Per-device efficiency arrays (one entry per device, in catalog order)."""

    compute_frac: np.ndarray
    memory_bw_frac: np.ndarray
    network_frac: np.ndarray
    op_overhead_s: float
    collective_latency_s: float


def device_efficiencies(devices: Sequence[Any], *, mode: str,
                        compute_frac: float | None = None,
                        overrides: Mapping[str, float] | None = None) -> Efficiencies:
    """The rule's step 1 for each device, with the job's overrides applied.

    `mode` "train" uses the catalog's train_compute_frac, "inference" its infer_compute_frac.
    `compute_frac` (the job's: the fraction of the dense peak matmuls reach, not an MFU)
    replaces the catalog's compute fraction; `overrides` may set compute_frac, memory_bw_frac,
    network_frac, op_overhead_s and collective_latency_s.
    """
    overrides = dict(overrides or {})
    if compute_frac is not None:
        overrides["compute_frac"] = compute_frac
    attr = "train_compute_frac" if mode == "train" else "infer_compute_frac"
    effs = [d.efficiency for d in devices]

    def column(key: str, getter) -> np.ndarray:
        if key in overrides:
            return np.full(len(devices), float(overrides[key]))
        return np.array([float(getter(e)) for e in effs], dtype=float)

    return Efficiencies(
        compute_frac=column("compute_frac", lambda e: getattr(e, attr)),
        memory_bw_frac=column("memory_bw_frac", lambda e: e.memory_bw_frac),
        network_frac=column("network_frac", lambda e: e.network_frac),
        op_overhead_s=float(overrides.get("op_overhead_s", OP_OVERHEAD_S)),
        collective_latency_s=float(overrides.get("collective_latency_s", COLLECTIVE_LATENCY_S)),
    )
