"""Step time over a grid of candidates, composed per op from kernel-level rates
(docs/planning.md P6-P14, K1-K5).

The ops come from planner.model.layers at batch 1 (one sequence): FLOPs, weight bytes, and the
activation bytes each op reads and writes; planner.model.ops says which kernel each one is.
Everything is linear in the batch for a fixed sequence length, so a grid of micro-batch sizes
is a multiplication. Each op then takes

    t_op = max(FLOPs / rate_op, bytes / (bandwidth · η_mem(bytes)), overhead)

(P6, the roofline of Williams et al. 2009, with a floor for the host's launch overhead), where
rate_op is the achieved rate of that kernel on that device (planner.hardware.kernels): the
GEMM rate at the op's own shape (m = tokens, n and k its features after the tensor-parallel
split), the fused-attention rate at the sequence length (forward or backward), and
element-wise ops as memory traffic only. No input is an MFU; MFU and HFU are outputs.
A routed-expert op reads only the experts its tokens touch (P6b), and the K and V projections
split over min(t, K) devices, as the KV cache does (P5).

Overlap (A3): tensor-parallel collectives and pipeline sends are exposed (on the critical path
between dependent ops). Data-parallel and ZeRO traffic overlaps with compute: per-step traffic
hides behind the backward pass of one micro-batch, per-micro-batch traffic (ZeRO-2 gradient
reduce-scatter, ZeRO-3 all-gathers) behind that micro-batch's forward and backward; only the
remainder is exposed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from planner.hardware.kernels import (
    ATTENTION_BWD_FLOPS_FACTOR,
    GEMM_TILE,
    CollectiveOp,
    KernelRates,
    padded_gemm_size,
    row_tile,
    tile_frac,
)
from planner.model.layers import (
    DEFAULT_LORA_RANK,
    DEFAULT_LORA_TARGETS,
    BlockKind,
    CausalCounting,
    Recompute,
    block_kind_counts,
    kv_cache_bytes,
    layer_table,
    tokens_through,
    window_keys,
)
from planner.model.ops import (
    FUSED_ATTENTION_OP,
    OpKind,
    TpSplit,
    gemm_shape,
    io_bytes,
    op_kind,
    unlisted_elementwise,
)
from planner.model.precision import dtype_bytes, precision_policy
from planner.model.spec import ModelSpec

RECOMPUTE_OPTIONS: tuple[Recompute, ...] = ("none", "selective", "full")

# Megatron tensor parallelism: 2 all-reduces per block forward (after attention and after the
# MLP) and 2 in backward (Shoeybi et al. 2019, Fig. 4); a full recompute repeats the forward's
# two (Korthikanti et al. 2022, Sec. 4.2). With sequence parallelism each all-reduce becomes a
# reduce-scatter + all-gather of the same total volume (Korthikanti 2022, Sec. 4.2.2).
TP_COLLECTIVES_PER_LAYER = {"none": 4, "selective": 4, "full": 6}
TP_COLLECTIVES_PER_LAYER_INFERENCE = 2


# ---- formulas ---------------------------------------------------------------------------------
def op_time_s(*, flops, bytes_moved, compute_flops_per_s, memory_bytes_per_s, overhead_s):
    """P6: roofline time of one op at its achieved rates, floored by the per-op overhead.
    Example: an H100 GEMM of 2·4096³ FLOPs at 0.75 × 989.4 TFLOP/s takes 0.185 ms."""
    with np.errstate(divide="ignore", invalid="ignore"):
        compute = np.asarray(flops, dtype=float) / compute_flops_per_s
        memory = np.asarray(bytes_moved, dtype=float) / memory_bytes_per_s
    return np.maximum(np.maximum(compute, memory), overhead_s)


def pipeline_bubble_frac(*, pp, n_micro_batches, virtual_stages=1):
    """P10: idle share of a pipelined step, ((p−1)/v)/(m + (p−1)/v) (GPipe, Huang et al. 2019;
    1F1B, Narayanan et al. 2021, Eq. 1; with v virtual stages per device, the interleaved
    schedule of the same paper, Sec. 2.2.2: the bubble shrinks by v). Examples: p = 4, m = 8:
    3/11 = 0.273; with v = 2: 1.5/9.5 = 0.158. Zero-bubble schedules are not modelled."""
    pp = np.asarray(pp, dtype=float)
    idle = (pp - 1.0) / np.asarray(virtual_stages, dtype=float)
    return idle / (n_micro_batches + idle)


def pipeline_step_time_s(*, stage_micro_batch_s, pp, n_micro_batches, virtual_stages=1):
    """P11: compute span of one step, (m + (p − 1)/v) · t_stage: m micro-batches through p
    stages of v interleaved chunks each; the share of P10 is the bubble."""
    idle = (np.asarray(pp, dtype=float) - 1.0) / np.asarray(virtual_stages, dtype=float)
    return (n_micro_batches + idle) * stage_micro_batch_s


def stage_time_s(*, layer_s, first_s, last_s, n_layers, pp):
    """P12: time of the slowest stage for one micro-batch: ceil(L/p) blocks plus the outer
    layers (both with p = 1, the larger side with p > 1)."""
    pp = np.asarray(pp)
    outer = np.where(pp == 1, first_s + last_s, np.maximum(first_s, last_s))
    return np.ceil(n_layers / pp) * layer_s + outer


def data_parallel_bw_bytes_per_s(*, tp, dp, domain, up_bw, out_bw):
    """P13b: per-device bandwidth of a data-parallel collective over a group of `dp` devices
    strided by `tp`.

    Inside one scale-up domain it is the scale-up link. Across domains a collective is
    hierarchical (NCCL rings and trees use every NIC of a node at once, one channel per NIC):
    the group's members in one domain, min(dp, floor(domain / tp)) (whole devices, at least
    one), share the cross-domain phase, so each moves its share over `members x out_bw` of
    aggregate NIC bandwidth, never more than the scale-up link that feeds them. Source: NCCL's
    bus-bandwidth model ("busBw" across nodes = per-node aggregate NIC bandwidth;
    NVIDIA/nccl-tests doc/PERFORMANCE.md).
    Example: DGX H100, tp=1, dp=64: min(64, 8) x 50 GB/s = 400 GB/s, capped at 450 GB/s.
    """
    members = np.maximum(np.minimum(dp, np.floor(domain / tp)), 1.0)
    return np.where(tp * dp <= domain, up_bw, np.minimum(up_bw, members * out_bw))


Collective = Callable[[CollectiveOp, Any], Any]  # (op, message bytes) -> seconds


def data_parallel_seconds(*, weight_bytes, grad_bytes, zero_stage, collective: Collective,
                          updated_weight_bytes=None):
    """P13: (per-step seconds, per-micro-batch seconds) of data-parallel traffic, each
    collective priced at its own message size (K5) by `collective(op, n_bytes)`.

    ZeRO 0: all-reduce of the gradients once per step.
    ZeRO 1: reduce-scatter of the gradients + all-gather of the updated weights per step.
    ZeRO 2: gradients reduce-scattered every micro-batch (they are kept sharded), weights
            all-gathered once per step.
    ZeRO 3: every micro-batch all-gathers the weights for forward and again for backward and
            reduce-scatters the gradients (ZeRO paper Sec. 7.2: 1.5× the all-reduce volume).
    `weight_bytes` is the device's full (tensor/pipeline-sharded) weight share, `grad_bytes`
    its gradients in the dtype they are reduced in (fp32 for Megatron's main_grad and FSDP2's
    default reduce_dtype; Llama 3 reduce-scatters in fp32: Dubey et al. 2024, Sec. 3.3.2).
    `updated_weight_bytes` (default `weight_bytes`): the weights a step changes, which ZeRO-1/2
    all-gather after it; with a frozen base only the adapters' (P31), while ZeRO-3 still
    gathers every weight for compute.
    """
    z = np.asarray(zero_stage)
    ar = collective(CollectiveOp.ALL_REDUCE, grad_bytes)
    rs_g = collective(CollectiveOp.REDUCE_SCATTER, grad_bytes)
    ag_w = collective(CollectiveOp.ALL_GATHER, weight_bytes)
    ag_u = ag_w if updated_weight_bytes is None else collective(CollectiveOp.ALL_GATHER,
                                                                updated_weight_bytes)
    per_step = np.where(z == 0, ar, np.where(z == 1, rs_g + ag_u, np.where(z == 2, ag_u, 0.0)))
    per_micro = np.where(z == 2, rs_g, np.where(z == 3, 2.0 * ag_w + rs_g, 0.0))
    return per_step, per_micro


# P32: the host link a device offloads its optimizer over. The catalog has no host-link field;
# this is a rule: PCIe Gen5 x16, 32 GT/s × 16 lanes × 128/130 encoding / 8 bits = 63.0 GB/s
# per direction (PCI-SIG PCIe 5.0 base specification), rounded to the 64 GB/s vendors quote
# for H100/H200/B200/MI300X hosts. NB: A100 and V100 hosts are PCIe Gen4/Gen3 (32 and 16 GB/s),
# Grace-based GH200/GB200 reach their CPU over NVLink-C2C (450 GB/s per direction).
HOST_LINK_BYTES_PER_S = 64e9


def optimizer_offload_seconds(*, grad_bytes, weight_bytes,
                              host_link_bytes_per_s=HOST_LINK_BYTES_PER_S):
    """P32: the optimizer step of ZeRO-Offload (Ren et al. 2021, "ZeRO-Offload", arXiv
    2101.06840, Sec. 4): the device sends its gradients to the host, the host runs the update
    on its fp32 master weights and moments, and the device receives the updated 16-bit weights
    back: (G + W) / host link bandwidth, the two transfers one after the other (the update
    needs every gradient before the new weights exist). Llama-2-7B LoRA (r = 16, all-linear):
    G = W = 39,976,960 · 2 = 79.95 MB, 159.9 MB / 64 GB/s = 2.50 ms. NB: the host's update
    itself (DeepSpeed CPU-Adam) is not counted, nor the overlap of the gradient copy with
    backward that ZeRO-Offload can do."""
    return (np.asarray(grad_bytes, dtype=float) + weight_bytes) / host_link_bytes_per_s


def optimizer_step_bytes(*, weight_bytes, grad_bytes, optimizer_bytes):
    """P14: bytes the optimizer update moves; it is memory-bound: read the gradients, read and
    write the optimizer state (moments and master copy), write the weights: G + 2·O + W. Its
    time is these bytes at the device's copy rate for that size (K3)."""
    return grad_bytes + 2.0 * optimizer_bytes + weight_bytes


# ---- op profiles from the per-layer table ------------------------------------------------------
@dataclass(frozen=True)
class OpProfile:
    """A sequence of ops for one pass over ONE sequence (arrays over ops).

    flops: FLOPs; traffic_bytes: activation bytes read + written (split by tensor parallelism);
    weight_bytes: weights read (split by tensor parallelism; all experts of a routed-expert
    op); kv_bytes: KV cache read (split by min(t, K)); count: how many times the op runs per
    pass (L for block ops); route_frac: k/E for a routed-expert op (the share of the experts
    one token visits), 0 for every other op (P6b); kv_proj: True for the K and V projections,
    whose heads are split over min(t, K) devices, not t (replicated beyond t = K);
    tokens_per_seq: tokens of one sequence that pass through a block op (the sequence for
    training and prefill, 1 for a decode step).

    How each op is priced (planner.model.ops): kind (OpKind per op); for a GEMM its
    n and k features and the rows per token (gemm_n, gemm_k, rows_per_token; 0 elsewhere), and
    which of n (split_n) or k (split_k) tensor parallelism divides; split_flops False for an
    op every tensor-parallel device computes whole (the MoE router). attn_seq_len: the keys
    each query attends to (the fused-attention rate's index); attn_causal: the kernel skips
    the masked half (causal model with flash attention). bwd_mult: the backward's FLOPs and
    bytes over the forward's, per op (2 by F2; 1 for a frozen matmul, P31).
    """

    names: tuple[str, ...]
    flops: np.ndarray
    traffic_bytes: np.ndarray
    weight_bytes: np.ndarray
    kv_bytes: np.ndarray
    count: np.ndarray
    route_frac: np.ndarray
    kv_proj: np.ndarray
    tokens_per_seq: float
    kind: tuple[OpKind, ...]
    gemm_n: np.ndarray
    gemm_k: np.ndarray
    rows_per_token: np.ndarray
    split_n: np.ndarray
    split_k: np.ndarray
    split_flops: np.ndarray
    batched_heads: np.ndarray  # heads of a batched per-head GEMM (eager attention), else 0
    # routed experts of a grouped GEMM (one kernel over the touched experts), else 0
    grouped_experts: np.ndarray
    attn_seq_len: float
    attn_causal: bool
    # backward FLOPs and bytes per forward's (F2: 2, the input and the weight gradient; a
    # frozen matmul or a QLoRA dequantization 1, P31); None: 2 for every op
    bwd_mult: np.ndarray | None = None
    # True for an op outside the blocks (embedding, final norm, LM head); None: none is
    outer: np.ndarray | None = None

    def subset(self, keep: np.ndarray) -> OpProfile:
        """The ops where `keep` is True (a boolean array over ops), in order."""
        keep = np.asarray(keep, dtype=bool)
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                changes[f.name] = value[keep]
            elif isinstance(value, tuple):
                changes[f.name] = tuple(v for v, k in zip(value, keep, strict=True) if k)
        return replace(self, **changes)

    def per_token(self) -> OpProfile:
        """The same ops for a sequence of one token: FLOPs, activation traffic and KV bytes
        divided by tokens_per_seq (the weights are read once per pass either way), so that a
        pass over `batch` sequences is a pass over `batch` tokens (P19a's fused step)."""
        q = self.tokens_per_seq
        return replace(self, flops=self.flops / q, traffic_bytes=self.traffic_bytes / q,
                       kv_bytes=self.kv_bytes / q, tokens_per_seq=1.0)

    @property
    def is_outer(self) -> np.ndarray:
        return (np.zeros(len(self.names), dtype=bool) if self.outer is None
                else self.outer)

    @property
    def is_gemm(self) -> np.ndarray:
        return np.array([k is OpKind.GEMM for k in self.kind], dtype=bool)

    @property
    def is_attention(self) -> np.ndarray:
        return np.array([k is OpKind.ATTENTION for k in self.kind], dtype=bool)


def experts_touched_frac(*, route_frac, n_tokens):
    """P6b: expected share of a layer's routed experts that at least one of `n_tokens` tokens
    visits when each token picks k of E experts uniformly: 1 − (1 − k/E)^n_tokens (each expert
    is missed by one token with probability 1 − k/E, independently across tokens; the
    expected number of distinct experts, the occupancy problem). Only the touched experts'
    weights are read in a step. NB: uniform routing is the balanced case a load-balancing loss
    aims for. Mixtral 8x7B (top-2 of 8), batch-1 decode: 1 − (6/8)^1 = 0.25, 2 of 8 experts;
    a 4,096-token prefill: 1 − 0.75^4096 = 1."""
    return 1.0 - (1.0 - np.asarray(route_frac, dtype=float)) ** np.asarray(n_tokens, dtype=float)


def _weight_read_bytes(spec: ModelSpec, row, name: str, linear_weight_bytes: float) -> float:
    """Weight bytes an op reads per pass: a lookup table reads only the rows it needs (counted
    as traffic); a tied LM head, and an MTP module's head (F24), read the matrix they share."""
    if row.kind == "embedding":
        return 0.0
    if name == "lm_head" and row.n_params == 0:
        return spec.vocab_size * spec.d_model * linear_weight_bytes
    return float(row.weight_bytes)


def _op_name(row) -> str:
    """A table row's op name: relative to its block (blocks.3.attn.q -> attn.q) or to its
    multi-token prediction module (mtp.0.attn.q_a -> attn.q_a); outer rows as they are."""
    if row.block >= 0 or row.layer.startswith("mtp."):
        return row.layer.split(".", 2)[-1]
    return row.layer


def _kv_proj_names(spec: ModelSpec) -> tuple[str, ...]:
    """Ops split over min(t, K) devices instead of t (kv_proj): the K and V projections; with
    MLA the two down-projections q_a and kv_a, whose latents every head needs, so that
    tensor parallelism replicates them (K = 1, planner.model.ops.gemm_shape)."""
    return ("attn.q_a", "attn.kv_a") if spec.is_mla else ("attn.k", "attn.v")


def _route_frac(spec: ModelSpec, name: str) -> float:
    """k/E for a routed-expert op (P6b), 0 otherwise."""
    if name.startswith("moe.experts") and spec.is_moe:
        return spec.experts_top_k / spec.n_experts
    return 0.0


def _op_dict(spec: ModelSpec, name: str, kind: OpKind, *, kv_len: float, q_len: float,
             **fields: Any) -> dict[str, Any]:
    """One op: its numbers plus how it is priced (planner.model.ops)."""
    shape = (gemm_shape(spec, name, kv_len=kv_len, tokens_per_seq=q_len)
             if kind is OpKind.GEMM else None)
    return dict(
        name=name, kind=kind, **fields,
        gemm_n=shape.n if shape else 0.0, gemm_k=shape.k if shape else 0.0,
        rows_per_token=shape.rows_per_token if shape else 0.0,
        split_n=bool(shape and shape.split is TpSplit.COLUMN),
        split_k=bool(shape and shape.split is TpSplit.ROW),
        split_flops=not (shape and shape.split is TpSplit.NONE),
        batched_heads=float(spec.n_heads) if shape and shape.split is TpSplit.HEADS else 0.0,
        grouped_experts=(float(spec.n_experts) if shape and fields.get("route_frac", 0.0) > 0
                         else 0.0))


@dataclass(frozen=True)
class FineTuning:
    """How a frozen-base fine-tuning job prices its ops (P30-P31): `adapter` ("lora" or
    "qlora"), the LoRA rank, and the bytes per weight of the 16-bit copy a QLoRA linear is
    dequantized to before its GEMM (bf16: 2)."""

    adapter: str
    lora_rank: int
    compute_weight_bytes: float = 2.0

    @property
    def quantized(self) -> bool:
        return self.adapter == "qlora"


def _lora_ops(spec: ModelSpec, row: Any, *, q_len: float, kv_len: float, a: float,
              count: float, rank: int, kv_proj_names: tuple[str, ...]) -> list[dict]:
    """P30: the two GEMMs of the LoRA adapter on linear row `base` (k → n), from its table row
    `{base}.lora`: A, [T, k] @ [k, r], and B, [T, r] @ [r, n], the FLOPs and the adapter's
    weights split between them in proportion k : n. Tensor parallelism splits the adapter as
    its base's Megatron layer does: under a column-parallel base A is replicated and B split
    by n; under a row-parallel base A is split by k and B replicated (NB: the all-reduce of
    the [T, r] partial product is not counted). Traffic: A reads x and writes x·A; B reads
    x·A and the base output and writes their sum (an add fused in the GEMM's epilogue).
    A rank under one tensor-core tile (r < 128, A25) makes both memory-bound: r FLOPs per
    byte of x (16 at r = 16, against an H100's 989 TFLOP/s / 3.35 TB/s ≈ 295), so they are
    priced as their traffic at the copy rate (K3), not at K1's GEMM rate with K1b's padding
    of r to a 128-wide tile, which would charge 8× the FLOPs; from r = 128 they are GEMMs.
    Their FLOPs are counted either way (HFU, MFU). NB: LoRA dropout (a masked copy of x) is
    not counted."""
    base = _op_name(row).removesuffix(".lora")
    shape = gemm_shape(spec, base, kv_len=kv_len, tokens_per_seq=q_len)
    k, n = shape.k, shape.n
    tokens = float(tokens_through(spec, base, q_len))
    column, row_split = shape.split is TpSplit.COLUMN, shape.split is TpSplit.ROW
    kind = OpKind.GEMM if rank >= GEMM_TILE else OpKind.MEMORY
    common = dict(kind=kind, kv_bytes=0.0, count=count, route_frac=_route_frac(spec, base),
                  rows_per_token=shape.rows_per_token, batched_heads=0.0, bwd_mult=2.0)
    fwd, weights = float(row.fwd_flops), float(row.weight_bytes)
    lora_a = dict(common, name=base + ".lora_a", flops=fwd * k / (k + n),
                  weight_bytes=weights * k / (k + n), traffic_bytes=tokens * (k + rank) * a,
                  gemm_n=float(rank), gemm_k=k, split_n=False, split_k=row_split,
                  split_flops=row_split, kv_proj=False)
    lora_b = dict(common, name=base + ".lora_b", flops=fwd * n / (k + n),
                  weight_bytes=weights * n / (k + n), traffic_bytes=tokens * (rank + 2.0 * n) * a,
                  gemm_n=n, gemm_k=float(rank), split_n=column, split_k=False,
                  split_flops=column, kv_proj=column and base in kv_proj_names)
    return [lora_a, lora_b]


def _ops_from_rows(spec: ModelSpec, rows: pd.DataFrame, *, flops_col: str, q_len: float,
                   kv_len: float, a: float, w: float, flash: bool, decode: bool, count: float,
                   head_tokens: float | None = None,
                   tuning: FineTuning | None = None) -> list[dict]:
    """One dict per op; with fused attention the scores, softmax and context rows are one op.

    With `tuning` (a frozen base, P31): a frozen matmul's backward moves 1 × its forward
    (bwd_mult 1: the input gradient only), a LoRA row becomes its two GEMMs (_lora_ops), and
    under QLoRA every NF4 linear first runs a dequantization kernel, a memory op that reads
    the 4-bit weights and writes the 16-bit copy the GEMM then reads (again in backward)."""
    ops: list[dict] = []
    core: dict | None = None
    kv_proj_names = _kv_proj_names(spec)
    for row in rows.itertuples(index=False):
        name = _op_name(row)
        if row.kind == "lora" and tuning is not None:
            ops += _lora_ops(spec, row, q_len=q_len, kv_len=kv_len, a=a, count=count,
                             rank=tuning.lora_rank, kv_proj_names=kv_proj_names)
            continue
        flops = float(getattr(row, flops_col))
        q = q_len
        if name in ("lm_head", "loss") and head_tokens is not None:
            flops *= head_tokens / q_len  # NB: serving computes logits for the last token only
            q = head_tokens
        if flash and row.kind in ("attention", "softmax"):
            if core is None:
                traffic, kv = io_bytes(spec, FUSED_ATTENTION_OP, "attention", q_len=q,
                                        kv_len=kv_len, a=a, decode=decode)
                core = _op_dict(spec, FUSED_ATTENTION_OP, OpKind.ATTENTION, kv_len=kv_len,
                                q_len=q, flops=0.0, weight_bytes=0.0, count=count,
                                route_frac=0.0, kv_proj=False, traffic_bytes=traffic,
                                kv_bytes=kv)
                ops.append(core)
            core["flops"] += flops
            continue
        traffic, kv = io_bytes(spec, name, row.kind, q_len=q, kv_len=kv_len, a=a,
                                decode=decode)
        weights = _weight_read_bytes(spec, row, name, w)
        frozen = tuning is not None and row.kind in ("linear", "router")
        dequant = frozen and tuning is not None and tuning.quantized and row.kind == "linear" \
            and name != "lm_head"
        if dequant and tuning is not None:  # P31: read NF4, write the 16-bit copy
            copy = row.n_params * tuning.compute_weight_bytes
            ops.append(_op_dict(spec, name + ".dequant", OpKind.MEMORY, kv_len=kv_len, q_len=q,
                                flops=0.0, weight_bytes=weights + copy, traffic_bytes=0.0,
                                kv_bytes=0.0, count=count, route_frac=_route_frac(spec, name),
                                kv_proj=name in kv_proj_names, bwd_mult=1.0))
            weights = copy
        op = _op_dict(spec, name, op_kind(row.kind), kv_len=kv_len, q_len=q,
                      flops=flops, weight_bytes=weights,
                      traffic_bytes=traffic, kv_bytes=kv, count=count,
                      route_frac=_route_frac(spec, name), kv_proj=name in kv_proj_names,
                      bwd_mult=1.0 if frozen else 2.0)
        if q != q_len:  # the head of a prefill runs on its last token only: fewer GEMM rows
            op["rows_per_token"] *= q / q_len
        ops.append(op)
    return ops


def _elementwise_ops(spec: ModelSpec, *, q_len: float, kv_len: float, a: float,
                     count: float, fp8: bool, kind: BlockKind | None = None) -> list[dict]:
    """The block's unlisted element-wise kernels (planner.model.ops.unlisted_elementwise) as
    memory-only ops for one sequence of q_len tokens."""
    return [_op_dict(spec, name, OpKind.MEMORY, kv_len=kv_len, q_len=q_len, flops=0.0,
                     weight_bytes=0.0, traffic_bytes=elements * q_len * a, kv_bytes=0.0,
                     count=count, route_frac=0.0, kv_proj=False)
            for name, elements in unlisted_elementwise(spec, fp8=fp8, kind=kind)]


def _block_ops(spec: ModelSpec, table: pd.DataFrame, *, count_of: Callable[[int], float],
               kv_len: float, q_len: float, a: float, fp8: bool, **kw: Any) -> list[dict]:
    """The ops of every kind of block (planner.model.layers.block_kind_counts): the rows of
    the kind's first block in `table` and its element-wise kernels, each op with count
    count_of(number of blocks of the kind). A sliding-window kind reads its window of keys
    (F23). One kind (every model whose blocks are alike): exactly the ops of block 0."""
    ops: list[dict] = []
    for kind, n_blocks, first in block_kind_counts(spec):
        keys = float(window_keys(kv_len=kv_len, window=kind.window))
        count = count_of(n_blocks)
        ops += _ops_from_rows(spec, table[table["block"] == first], count=count, kv_len=keys,
                              q_len=q_len, a=a, **kw)
        ops += _elementwise_ops(spec, q_len=q_len, kv_len=keys, a=a, count=count, fp8=fp8,
                                kind=kind)
    return ops


# The rows whose saved activation a tensor-parallel group holds whole without sequence
# parallelism: the norms' inputs and the input of the first (column-parallel) linear of each
# sublayer (q, with k and v sharing it; up, with gate sharing it; MLA's down-projections; the
# router). Korthikanti et al. 2022, Sec. 4.2.2: the 10·s·b·h of Eq. 2 not divided by t.
_SP_ROW_SUFFIXES = (".attn.q", ".attn.q_a", ".attn.kv_a", ".mlp.up", ".moe.router")


def _sequence_parallel_rows(block: pd.DataFrame) -> pd.DataFrame:
    names = block["layer"].astype(str)
    return block[(block["kind"] == "norm") | names.str.endswith(_SP_ROW_SUFFIXES)]


def _block_average(spec: ModelSpec, table: pd.DataFrame, column: str,
                   rows: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> float:
    """Σ over block kinds of (blocks of the kind / L) · the column's sum over its first
    block's rows: the average block (dense-first MoE: 3/61 of a dense block and 58/61 of a
    MoE block for DeepSeek-V3). One kind: block 0's sum × 1.0, unchanged."""
    total = 0.0
    for _kind, n_blocks, first in block_kind_counts(spec):
        block = table[table["block"] == first]
        block = rows(block) if rows is not None else block
        total += n_blocks / spec.n_layers * float(block[column].sum())
    return total


def _profile(ops: list[dict], *, tokens_per_seq: float, attn_seq_len: float,
             attn_causal: bool, kv_scale: float = 1.0) -> OpProfile:
    def col(key: str, dtype: Any = float) -> np.ndarray:
        return np.array([o[key] for o in ops], dtype=dtype)

    return OpProfile(
        names=tuple(o["name"] for o in ops), flops=col("flops"),
        traffic_bytes=col("traffic_bytes"), weight_bytes=col("weight_bytes"),
        kv_bytes=col("kv_bytes") * kv_scale, count=col("count"),
        route_frac=col("route_frac"), kv_proj=col("kv_proj", bool),
        tokens_per_seq=float(tokens_per_seq), kind=tuple(o["kind"] for o in ops),
        gemm_n=col("gemm_n"), gemm_k=col("gemm_k"), rows_per_token=col("rows_per_token"),
        split_n=col("split_n", bool), split_k=col("split_k", bool),
        split_flops=col("split_flops", bool), batched_heads=col("batched_heads"),
        grouped_experts=np.array([o.get("grouped_experts", 0.0) for o in ops], dtype=float),
        attn_seq_len=float(attn_seq_len),
        attn_causal=bool(attn_causal),
        bwd_mult=np.array([o.get("bwd_mult", 2.0) for o in ops], dtype=float),
        outer=np.array([o.get("outer", False) for o in ops], dtype=bool),
    )


@dataclass(frozen=True)
class TrainingProfile:
    """Everything the training search needs from the model, per sequence of `seq_len` tokens.

    A model whose blocks differ (dense-first MoE, sliding-window and global attention:
    planner.model.layers.block_kind_counts) is described by its AVERAGE block: `block` holds
    the ops of every kind with count = blocks of the kind / n_layers, and every block_* byte
    total is averaged the same way, so n_layers × block is the whole stack exactly. The busiest
    pipeline stage of such a model can hold more than ceil(L/p) average blocks: `block_kinds`
    gives each kind's own numbers for that."""

    block: OpProfile  # the average transformer block (one block when all are alike)
    first: OpProfile  # embedding side (first pipeline stage)
    last: OpProfile  # head side (last pipeline stage; with the MTP modules, F24)
    block_fwd_passes: np.ndarray  # [recompute, op]: forward passes, 1 + 1 if recomputed
    block_weight_bytes: float
    block_grad_bytes: float
    block_optimizer_bytes: float
    block_kv_state_bytes: tuple[float, float, float]  # the K and V projections' share
    first_state_bytes: tuple[float, float, float]  # weights, gradients, optimizer state
    last_state_bytes: tuple[float, float, float]
    block_activation_bytes: np.ndarray  # [recompute]
    # [recompute] of which tensor parallelism splits only with sequence parallelism: the
    # inputs of the norms and of the column-parallel linears (Korthikanti 2022, Eq. 2 vs 4)
    block_sp_activation_bytes: np.ndarray
    first_activation_bytes: float
    last_activation_bytes: float
    model_flops_per_seq: float  # forward + backward, no recompute (MFU numerator)
    hardware_flops_per_seq: np.ndarray  # [recompute], recomputed forward included (HFU)
    tp_collectives_per_layer: np.ndarray  # [recompute]
    activation_bytes: float  # bytes per activation element
    grad_bytes: float  # bytes per stored gradient element
    n_layers: int
    d_model: int
    n_kv_heads: int  # heads the KV cache and the kv_proj ops split over (MLA: 1, the latent)
    seq_len: int
    head_dim: int = 128  # of the K/V heads (context-parallel exchange, P22)
    block_kinds: tuple[BlockKindShare, ...] = ()  # per kind of block, in block order
    moe: MoeShape | None = None  # routed-expert sizes for expert parallelism; None: dense
    # the trained weights' bytes per gradient byte (1 in every training policy); with a frozen
    # base only the adapters train, so only they are updated and re-gathered (P31)
    trained_weight_bytes_per_grad_byte: float = 1.0

    def updated_weight_bytes(self, grad_bytes: Any) -> Any:
        """Bytes of the weights an optimizer step writes (P14) and ZeRO-1/2 all-gather (P13)
        on a device holding `grad_bytes` of gradients: the trained weights only (all of them
        in full training; the adapters alone with a frozen base, P31)."""
        return grad_bytes * self.trained_weight_bytes_per_grad_byte

    def grad_reduce_bytes_per_grad_byte(self, reduce_dtype: str) -> float:
        """Bytes on the wire per stored gradient byte when gradients are reduced in
        `reduce_dtype` (fp32 reduction of bf16 gradients: 2)."""
        return dtype_bytes(reduce_dtype) / self.grad_bytes if self.grad_bytes else 0.0


@dataclass(frozen=True)
class BlockKindShare:
    """One kind of block of a training profile (planner.model.layers.BlockKind): how many,
    where the first is, and one such block's resident bytes per sequence."""

    moe: bool
    window: int | None  # sliding-window span, None = global attention
    n_blocks: int
    first_block: int
    weight_bytes: float
    grad_bytes: float
    optimizer_bytes: float
    activation_bytes: np.ndarray  # [recompute]


@dataclass(frozen=True)
class MoeShape:
    """What expert parallelism needs per MoE block (F19): n_moe_layers blocks, each routing
    every token to experts_top_k of n_experts routed experts (plus n_shared_experts always-on
    ones, computed where the token is). One direction of the token all-to-all carries
    dispatch_bytes_per_token = top_k · h · activation bytes per token and MoE block (the
    combine sends the same back); expert_weight_bytes is one MoE block's routed experts'
    weights (what expert parallelism shards). DeepSeek-V3 in bf16: 8 · 7168 · 2 = 114,688 B
    per token per block, over 58 blocks; experts 256 · 3 · 7168 · 2048 · 2 B = 22.5 GB."""

    n_moe_layers: int
    n_experts: int
    experts_top_k: int
    n_shared_experts: int
    dispatch_bytes_per_token: float
    expert_weight_bytes: float


def _moe_shape(spec: ModelSpec, table: pd.DataFrame, a: float) -> MoeShape | None:
    """The MoeShape of `spec` from a layer table (None for a dense model)."""
    if not spec.is_moe:
        return None
    experts = table[table["layer"].str.startswith(f"blocks.{spec.n_dense_layers}.moe.experts")]
    return MoeShape(n_moe_layers=spec.n_moe_layers, n_experts=spec.n_experts,
                    experts_top_k=spec.experts_top_k, n_shared_experts=spec.n_shared_experts,
                    dispatch_bytes_per_token=float(spec.experts_top_k * spec.d_model * a),
                    expert_weight_bytes=float(experts["weight_bytes"].sum()))


def _outer_split(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    outer = table[table["block"] < 0]
    first_names = outer["layer"].str.startswith("embed.")
    return outer[first_names], outer[~first_names]


def _kv_split_heads(spec: ModelSpec) -> int:
    """Heads the KV cache and the kv_proj ops are split over: n_kv_heads, or 1 for MLA, whose
    cached latent serves every head and is kept whole on every tensor-parallel device."""
    return 1 if spec.is_mla else spec.kv_heads


def training_profile_for(job: Any) -> TrainingProfile:
    """training_profile of a planner.plan.workloads.TrainingJob (its model, lengths,
    precision, optimizer, attention and fine-tuning fields)."""
    return training_profile(job.model, seq_len=job.seq_len, precision=job.precision,
                            optimizer=job.optimizer, flash_attention=job.flash_attention,
                            causal_attention=job.causal_attention,
                            fused_swiglu=job.fused_swiglu, adapter=job.adapter,
                            lora_rank=job.lora_rank, lora_targets=tuple(job.lora_targets))


@lru_cache(maxsize=32)
def training_profile(spec: ModelSpec, *, seq_len: int, precision: str, optimizer: str,
                     flash_attention: bool, causal_attention: CausalCounting,
                     fused_swiglu: bool = False, adapter: str = "none",
                     lora_rank: int = DEFAULT_LORA_RANK,
                     lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS) -> TrainingProfile:
    """The training ops and byte totals of `spec` for one sequence
    (planner.model.layers, batch 1); the average block for a model whose blocks differ.

    With an adapter ("lora", "qlora"; P30-P31) the base is frozen: its rows keep weights only,
    its matmuls' backward is the input gradient alone, the LoRA adapters are GEMMs of their
    own, QLoRA dequantizes its NF4 weights before every GEMM. MFU keeps the model-FLOPs
    convention of full training (3 × forward: "6N" counts a frozen base as if it trained,
    P18); HFU counts the FLOPs executed (forward + the backward actually run + recompute)."""
    policy = precision_policy(precision, mode="train")
    a = policy.activation_bytes
    fp8 = policy.compute_dtype == "fp8"
    tune: dict[str, Any] = dict(adapter=adapter, lora_rank=lora_rank, lora_targets=lora_targets)
    tuning = (FineTuning(adapter=adapter, lora_rank=lora_rank,
                         compute_weight_bytes=policy.weight_bytes)
              if adapter != "none" else None)
    tables = {r: layer_table(spec, seq_len=seq_len, batch_size=1, mode="train",
                             precision=precision, optimizer=optimizer, recompute=r,
                             flash_attention=flash_attention, causal_attention=causal_attention,
                             fused_swiglu=fused_swiglu, **tune)
              for r in RECOMPUTE_OPTIONS}
    table = tables["none"]
    # The FLOPs the kernels execute: a fused causal kernel skips the masked blocks, an eager
    # one computes the whole score matrix; the MFU numerator keeps the job's convention.
    executed_causal: CausalCounting = "half" if (flash_attention and spec.causal) else "full"
    executed = table if executed_causal == causal_attention else layer_table(
        spec, seq_len=seq_len, batch_size=1, mode="train", precision=precision,
        optimizer=optimizer, recompute="none", flash_attention=flash_attention,
        causal_attention=executed_causal, **tune)
    first_rows, last_rows = _outer_split(table)
    kw: dict[str, Any] = dict(flops_col="fwd_flops", q_len=float(seq_len), a=a,
                              w=policy.linear_weight_bytes, flash=flash_attention,
                              decode=False, tuning=tuning)
    pkw: dict[str, Any] = dict(tokens_per_seq=seq_len, attn_seq_len=seq_len,
                               attn_causal=executed_causal == "half")
    L = spec.n_layers

    def share(n_blocks: int) -> float:
        return n_blocks / L

    ex_first, ex_last = _outer_split(executed)
    block = _profile(_block_ops(spec, executed, count_of=share, kv_len=float(seq_len),
                                fp8=fp8, **kw), **pkw)
    first = _profile(_ops_from_rows(spec, ex_first, count=1.0, kv_len=float(seq_len), **kw),
                     **pkw)
    last = _profile(_ops_from_rows(spec, ex_last, count=1.0, kv_len=float(seq_len), **kw),
                    **pkw)

    attention_core = np.array([n in ("attn.scores", "attn.softmax", "attn.context")
                               for n in block.names])
    fwd_passes = np.ones((len(RECOMPUTE_OPTIONS), len(block.names)))
    fwd_passes[1] += attention_core  # selective: the attention core's forward again
    fwd_passes[2] += 1.0  # full: the whole block's forward again (Korthikanti 2022, Sec. 4)
    model_block = _profile(_block_ops(spec, table, count_of=share, kv_len=float(seq_len),
                                      fp8=fp8, **kw), **pkw)
    extra_fwd = (fwd_passes - 1.0) @ (model_block.flops * model_block.count) * L

    def state(rows: pd.DataFrame) -> tuple[float, float, float]:
        return (float(rows["weight_bytes"].sum()), float(rows["grad_bytes"].sum()),
                float(rows["optimizer_bytes"].sum()))

    kv_names = tuple("." + n for n in _kv_proj_names(spec))

    def kv_rows(rows: pd.DataFrame) -> pd.DataFrame:
        return rows[rows["layer"].str.endswith(kv_names)]

    kinds = tuple(
        BlockKindShare(moe=kind.moe, window=kind.window, n_blocks=n, first_block=i,
                       **dict(zip(("weight_bytes", "grad_bytes", "optimizer_bytes"),
                                  state(table[table["block"] == i]), strict=True)),
                       activation_bytes=np.array([
                           float(tables[r].loc[tables[r]["block"] == i,
                                               "activation_bytes"].sum())
                           for r in RECOMPUTE_OPTIONS]))
        for kind, n, i in block_kind_counts(spec))
    fwd = float(table["fwd_flops"].sum())
    bwd = float(table["bwd_flops"].sum())  # 2 × fwd in full training (F2); less when frozen
    grads = float(table["grad_bytes"].sum())
    trained = float(table.loc[table["grad_bytes"] > 0, "weight_bytes"].sum())
    return TrainingProfile(
        block=block, first=first, last=last, block_fwd_passes=fwd_passes,
        block_weight_bytes=_block_average(spec, table, "weight_bytes"),
        block_grad_bytes=_block_average(spec, table, "grad_bytes"),
        block_optimizer_bytes=_block_average(spec, table, "optimizer_bytes"),
        block_kv_state_bytes=(_block_average(spec, table, "weight_bytes", kv_rows),
                              _block_average(spec, table, "grad_bytes", kv_rows),
                              _block_average(spec, table, "optimizer_bytes", kv_rows)),
        first_state_bytes=state(first_rows), last_state_bytes=state(last_rows),
        block_activation_bytes=np.array([_block_average(spec, tables[r], "activation_bytes")
                                         for r in RECOMPUTE_OPTIONS]),
        block_sp_activation_bytes=np.array([
            _block_average(spec, tables[r], "activation_bytes", _sequence_parallel_rows)
            for r in RECOMPUTE_OPTIONS]),
        first_activation_bytes=float(first_rows["activation_bytes"].sum()),
        last_activation_bytes=float(last_rows["activation_bytes"].sum()),
        model_flops_per_seq=3.0 * fwd,
        hardware_flops_per_seq=fwd + bwd + extra_fwd,
        tp_collectives_per_layer=np.array([TP_COLLECTIVES_PER_LAYER[r]
                                           for r in RECOMPUTE_OPTIONS], dtype=float),
        activation_bytes=a, grad_bytes=policy.grad_bytes, n_layers=spec.n_layers,
        d_model=spec.d_model, n_kv_heads=_kv_split_heads(spec), seq_len=seq_len,
        head_dim=spec.d_head, block_kinds=kinds, moe=_moe_shape(spec, table, a),
        trained_weight_bytes_per_grad_byte=trained / grads if grads else 0.0,
    )


@dataclass(frozen=True)
class ServingParts:
    """The ops of one serving step, split by how they scale with the step's work (P19a).
    Every profile but prefill_attention is per token (tokens_per_seq = 1), so a pass over
    `batch` is a pass over that many tokens: the GEMMs of a fused step see all its tokens as
    rows and read their weights once. `fused` is False for MLA, whose decode runs absorbed
    projections different from the prefill's (the two then read their weights apart)."""

    decode_tokens: OpProfile  # per-token ops other than attention and the LM head (decode form)
    prefill_tokens: OpProfile  # the same for prompt tokens (prefill form; = decode_tokens if fused)
    decode_attention: OpProfile  # one decode query's attention over the average context
    prefill_attention: OpProfile  # a whole prompt's (causal) attention, per prompt
    head: OpProfile  # the LM head for one token (decodes, the last token of each prompt)
    fused: bool


@dataclass(frozen=True)
class InferenceProfile:
    """Serving ops for one sequence: the prefill of the prompt and one decode step at the
    average context (prompt + output / 2), and the same ops split for a fused step (`parts`).
    Block ops run count = blocks of their kind times per pass (n_layers when all blocks are
    alike)."""

    prefill: OpProfile
    decode: OpProfile  # the prefill's for an encoder (output_len = 0), which never decodes
    parts: ServingParts
    weight_bytes: float
    kv_proj_weight_bytes: float  # the K and V projections' share of weight_bytes (MLA: q_a, kv_a)
    # KV cache per token of context, all layers (F18, F21): K and V, or MLA's latent; with
    # sliding-window blocks (F23) averaged over the full context prompt + output
    kv_bytes_per_token: float
    prefill_model_flops_per_seq: float
    decode_model_flops_per_token: float  # at the average context; 0 for an encoder
    activation_bytes: float
    n_layers: int
    d_model: int
    n_kv_heads: int  # heads the KV cache and the kv_proj ops split over (MLA: 1, the latent)
    n_heads: int
    moe: MoeShape | None = None  # routed-expert sizes for expert parallelism; None: dense


def _serving_parts(prefill: OpProfile, decode: OpProfile | None, *, fused: bool) -> ServingParts:
    """Split the prefill and decode ops for P19a's fused step."""
    def split(prof: OpProfile) -> tuple[OpProfile, OpProfile, OpProfile]:
        head = np.array([n == "lm_head" for n in prof.names], dtype=bool)
        attn = prof.is_attention
        return prof.subset(~attn & ~head), prof.subset(attn), prof.subset(head)

    pre_tok, pre_attn, _ = split(prefill)
    pre_tok = pre_tok.per_token()
    if decode is None:  # an encoder: every token's head (LM head or classifier) runs
        every = prefill.subset(~prefill.is_attention).per_token()
        empty = prefill.subset(np.zeros(len(prefill.names), dtype=bool))
        return ServingParts(decode_tokens=every, prefill_tokens=every,
                            decode_attention=empty, prefill_attention=pre_attn,
                            head=empty, fused=True)
    dec_tok, dec_attn, dec_head = split(decode)
    return ServingParts(decode_tokens=dec_tok, prefill_tokens=dec_tok if fused else pre_tok,
                        decode_attention=dec_attn, prefill_attention=pre_attn, head=dec_head,
                        fused=fused)


@lru_cache(maxsize=32)
def inference_profile(spec: ModelSpec, *, prompt_len: int, output_len: int, precision: str,
                      kv_cache_precision: str | None) -> InferenceProfile:
    """Prefill and decode ops of `spec` for one request
    (planner.model.layers, inference, batch 1). MLA decodes with absorbed weights over the
    cached latent (F21); the multi-token prediction modules are not served (F24). With
    output_len = 0 (an encoder, or prompt scoring) there is no decode and every token's head
    (LM head or classifier) runs."""
    policy = precision_policy(precision, mode="inference")
    a = policy.activation_bytes
    kv_b = dtype_bytes(kv_cache_precision) if kv_cache_precision else a
    avg_context = prompt_len + max(output_len // 2, 1)
    pre = layer_table(spec, seq_len=prompt_len, batch_size=1, mode="inference",
                      precision=policy, kv_cache_dtype=kv_cache_precision)
    # the prefill's fused causal kernel skips the masked half (what it executes)
    pre_exec = pre if not spec.causal else layer_table(
        spec, seq_len=prompt_len, batch_size=1, mode="inference", precision=policy,
        kv_cache_dtype=kv_cache_precision, causal_attention="half")

    def build(table: pd.DataFrame, *, flops_col: str, q_len: float, kv_len: float,
              decode: bool, head_tokens: float | None, kv_scale: float) -> OpProfile:
        outer = table[table["block"] < 0]
        kw: dict[str, Any] = dict(flops_col=flops_col, q_len=q_len, a=a,
                                  w=policy.linear_weight_bytes, flash=True, decode=decode,
                                  head_tokens=head_tokens)
        outer_ops = _ops_from_rows(spec, outer, count=1.0, kv_len=kv_len, **kw)
        for op in outer_ops:
            op["outer"] = True
        ops = _block_ops(spec, table, count_of=float, kv_len=kv_len, fp8=False, **kw) + outer_ops
        return _profile(ops, tokens_per_seq=q_len, kv_scale=kv_scale, attn_seq_len=kv_len,
                        attn_causal=spec.causal and not decode)

    prefill = build(pre_exec, flops_col="fwd_flops", q_len=float(prompt_len),
                    kv_len=float(prompt_len), decode=False,
                    head_tokens=1.0 if output_len else None, kv_scale=1.0)
    decode: OpProfile | None = None
    decode_flops = 0.0
    if output_len:
        dec = layer_table(spec, seq_len=avg_context, batch_size=1, mode="inference",
                          precision=policy, kv_cache_dtype=kv_cache_precision)
        decode = build(dec, flops_col="decode_flops", q_len=1.0, kv_len=float(avg_context),
                       decode=True, head_tokens=None, kv_scale=kv_b)
        decode_flops = float(dec["decode_flops"].sum())
    kv_proj = pre["layer"].str.endswith(tuple("." + n for n in _kv_proj_names(spec)))
    if not output_len and not spec.causal:
        kv_per_token = 0.0  # an encoder keeps no cache
    elif spec.sliding_window is None:
        kv_per_token = float(pre["kv_cache_bytes"].sum()) / prompt_len
    else:  # not linear in the context: its average over the whole context (F23)
        context = prompt_len + output_len
        kv_per_token = kv_cache_bytes(spec, context_len=context, bytes_per_element=kv_b) / context
    return InferenceProfile(
        prefill=prefill, decode=decode if decode is not None else prefill,
        parts=_serving_parts(prefill, decode, fused=not spec.is_mla),
        weight_bytes=float(pre["weight_bytes"].sum()),
        kv_proj_weight_bytes=float(pre.loc[kv_proj, "weight_bytes"].sum()),
        kv_bytes_per_token=kv_per_token,
        prefill_model_flops_per_seq=float(pre["fwd_flops"].sum()),
        decode_model_flops_per_token=decode_flops,
        activation_bytes=a, n_layers=spec.n_layers, d_model=spec.d_model,
        n_kv_heads=_kv_split_heads(spec), n_heads=spec.n_heads, moe=_moe_shape(spec, pre, a),
    )


def op_weight_read_bytes(profile: OpProfile, *, batch):
    """Weight bytes each op reads in one pass over `batch` sequences (before tensor-parallel
    splitting), [..., op]: a routed-expert op reads only the experts its
    batch · tokens_per_seq tokens touch (P6b), every other op all of its weights."""
    if not profile.route_frac.any():
        return profile.weight_bytes
    tokens = np.asarray(batch, dtype=float) * profile.tokens_per_seq
    touched = experts_touched_frac(route_frac=profile.route_frac,
                                   n_tokens=np.expand_dims(tokens, -1))
    return profile.weight_bytes * np.where(profile.route_frac > 0, touched, 1.0)


def weight_read_bytes(profile: OpProfile, *, batch) -> Any:
    """Σ over ops of count · weights read (P6, P6b) for one pass over `batch` sequences on one
    device (no tensor parallelism). Mixtral 8x7B bf16, batch-1 decode: the non-expert
    weights + 1/4 of the experts' (P6b), about 26 GB instead of 93 GB."""
    return (op_weight_read_bytes(profile, batch=batch) * profile.count).sum(axis=-1)


@dataclass(frozen=True)
class DeviceRates:
    """What the step-time model needs of the devices of a grid chunk. Arrays have one entry
    per device, shaped to broadcast along axis 0 of the grid; `index` gives each device's row
    in `kernels` (planner.hardware.kernels.KernelRates)."""

    kernels: KernelRates
    index: np.ndarray
    gemm_peak_flops_per_s: np.ndarray  # dense peak of the matmul dtype
    attention_peak_flops_per_s: np.ndarray  # dense peak of the attention dtype
    memory_bw_bytes_per_s: np.ndarray
    op_overhead_s: float

    def memory_bytes_per_s(self, n_bytes):
        """K3: the copy rate for moving `n_bytes` (broadcast against the device axis)."""
        n_bytes = np.asarray(n_bytes, dtype=float)
        idx = np.reshape(self.index, self.index.shape + (1,) * (n_bytes.ndim
                                                                - self.index.ndim))
        frac = self.kernels.memory(np.maximum(n_bytes, 1.0), idx)
        return np.reshape(self.memory_bw_bytes_per_s, idx.shape) * frac

    def memory_seconds(self, n_bytes):
        """K3: `n_bytes` moved at the copy rate for that size."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(n_bytes, dtype=float) / self.memory_bytes_per_s(n_bytes)


def _pass_time_s(profile: OpProfile, *, batch_, split, kv_split_, rates: DeviceRates,
                 index, backward: bool):
    """[..., op] time of each op's forward (or backward) pass for one of `split` devices."""
    tokens = batch_ * profile.tokens_per_seq
    m = tokens * profile.rows_per_token
    if profile.route_frac.any():  # a routed expert's rows: its tokens over the touched experts
        touched = experts_touched_frac(route_frac=profile.route_frac, n_tokens=tokens)
        m = np.where(profile.route_frac > 0, m / np.maximum(touched, 1e-12), m)
    n = profile.gemm_n / np.where(profile.split_n, split, 1.0)
    k = profile.gemm_k / np.where(profile.split_k, split, 1.0)
    # eager attention: one batched call of (heads / t) · batch GEMMs of [q, d] · [d, kv]: the
    # table is read at the whole call's work, the tile share at one GEMM's q rows (K1, K1b)
    heads = profile.batched_heads / split
    work_m = np.where(profile.batched_heads > 0, m * heads, m)
    if profile.route_frac.any():
        # a routed-expert op is one grouped GEMM over the touched experts (vLLM's fused MoE,
        # Megatron's grouped GEMM): the table at the whole call's work, the tile share at
        # one expert's rows, as for a batched call (K1, K1b)
        experts = profile.grouped_experts * experts_touched_frac(
            route_frac=profile.route_frac, n_tokens=tokens)
        work_m = np.where(profile.grouped_experts > 0, m * np.maximum(experts, 1.0), work_m)
    tile_m = np.where(profile.batched_heads > 0, profile.tokens_per_seq, m)
    tile_n = np.where(profile.batched_heads > 0, np.maximum(n, GEMM_TILE), n)  # 64-wide tiles
    # the table is read at the padded GEMM the kernel computes (K1b): each GEMM's rows raised
    # to one tile, a batched call's work with them. One pass per distinct tile (tensor cores,
    # matrix-vector engines), so that the sizes carry no device axis (the lookup's cost)
    device_tile = rates.kernels.gemm_tile[index]
    g_frac: Any = None
    for tile in np.unique(rates.kernels.gemm_tile[rates.index]):
        pad = np.maximum(tile_m, row_tile(tile)) / np.maximum(tile_m, 1e-9)
        with np.errstate(divide="ignore", invalid="ignore"):
            size = padded_gemm_size(np.maximum(work_m * pad, 1e-9), np.maximum(tile_n, 1.0),
                                    np.maximum(k, 1.0), tile)
        frac = rates.kernels.gemm(size, index) * tile_frac(tile_m, tile_n, tile)
        g_frac = frac if g_frac is None else np.where(device_tile == tile, frac, g_frac)
    a_frac = rates.kernels.attention(profile.attn_seq_len, causal=profile.attn_causal,
                                     direction="bwd" if backward else "fwd", index=index)
    peak_g = np.reshape(rates.gemm_peak_flops_per_s, index.shape)
    peak_a = np.reshape(rates.attention_peak_flops_per_s, index.shape)
    rate = np.where(profile.is_gemm, peak_g * g_frac,
                    np.where(profile.is_attention, peak_a * a_frac, np.inf))
    weights = op_weight_read_bytes(profile, batch=batch_[..., 0])
    flops = profile.flops * batch_ / np.where(profile.split_flops, split, 1.0)
    moved = (weights + profile.traffic_bytes * batch_) / split \
        + profile.kv_bytes * batch_ / kv_split_
    # backward: the input and the weight gradient (F2), the input gradient alone for a frozen
    # matmul (P31)
    bwd = 2.0 if profile.bwd_mult is None else profile.bwd_mult
    mult = bwd if backward else 1.0
    # a fused attention backward executes 2.5× its forward FLOPs, the count its rate uses (K2)
    flops_mult = np.where(profile.is_attention, ATTENTION_BWD_FLOPS_FACTOR, mult) \
        if backward else 1.0
    return op_time_s(flops=flops_mult * flops, bytes_moved=mult * moved,
                     compute_flops_per_s=rate,
                     memory_bytes_per_s=rates.memory_bytes_per_s(mult * moved),
                     overhead_s=rates.op_overhead_s)


def op_times_s(profile: OpProfile, *, batch, tp, kv_split, rates: DeviceRates,
               fwd_passes=None, backward: bool = False, ep=1):
    """[..., op]: count · (fwd_passes · t_fwd + t_bwd) (P6) of each op for `batch` sequences
    on one of `tp` devices; t_bwd only with `backward`.

    Arguments broadcast; the op axis is added last and summed. `fwd_passes` (optional,
    [..., op]) counts forward passes (2 when recomputed); the backward pass of an op moves
    twice its forward FLOPs and bytes at the same GEMM rate, the fused attention at its
    backward rate (K2). `kv_split` = min(t, K) divides KV-cache reads and the K and V
    projections (their heads are replicated beyond t = K), `tp` every other op. A
    routed-expert op reads only the experts its tokens touch (P6b). With `ep` expert-parallel
    ranks a routed-expert op runs 1/ep of the experts on the tokens of ep ranks (P29b): its
    time is that of ep times the batch, divided by ep (the same FLOPs, ep times the rows per
    expert GEMM, 1/ep of the experts' weights).
    """
    batch_, tp_, kv_split_ = (np.expand_dims(np.asarray(v, dtype=float), -1)
                              for v in (batch, tp, kv_split))
    index = np.expand_dims(rates.index, -1)
    split = np.where(profile.kv_proj, kv_split_, tp_) if profile.kv_proj.any() else tp_
    kw: dict[str, Any] = dict(batch_=batch_, split=split, kv_split_=kv_split_, rates=rates,
                              index=index)

    def passes(**changes: Any) -> Any:
        args = {**kw, **changes}
        t = _pass_time_s(profile, backward=False, **args) * (
            1.0 if fwd_passes is None else fwd_passes)
        return t + _pass_time_s(profile, backward=True, **args) if backward else t

    total = passes()
    if profile.route_frac.any() and np.any(np.asarray(ep) > 1):
        ep_ = np.expand_dims(np.asarray(ep, dtype=float), -1)
        total = np.where(profile.route_frac > 0, passes(batch_=batch_ * ep_) / ep_, total)
    return total * profile.count


def ops_time_s(profile: OpProfile, *, batch, tp, kv_split, rates: DeviceRates,
               fwd_passes=None, backward: bool = False, ep=1):
    """Σ over ops of count · (fwd_passes · t_fwd + t_bwd) (P6) for `batch` sequences on one
    of `tp` devices; t_bwd only with `backward` (op_times_s, summed over ops)."""
    return op_times_s(profile, batch=batch, tp=tp, kv_split=kv_split, rates=rates,
                      fwd_passes=fwd_passes, backward=backward, ep=ep).sum(axis=-1)


def serving_step_s(parts: ServingParts, *, decodes, query_tokens, prefill_tokens,
                   prefill_prompts, tp, kv_split, rates: DeviceRates, ep=1, block_frac=1.0,
                   prefill_attention_frac=1.0):
    """P19a: compute and memory time of one serving step of a tensor-parallel group through
    block_frac of the blocks (ceil(L/p)/L for a pipeline stage; the outer ops whole), before
    communication. The step carries `decodes` sequences of `query_tokens` tokens each (1, or
    1 + the draft tokens a speculative verify checks) and `prefill_tokens` prompt tokens, the
    uncached part of `prefill_prompts` whole prompts (chunks), whose attention is
    prefill_attention_frac of a whole prompt's each (1 − h² with a prefix-cache hit share h,
    P19f). The per-token
    ops run once over all the step's tokens (GEMMs of decodes · q + prefill rows, weights read
    once: Sarathi-Serve's fused step, Agrawal et al. 2024); the decode attention reads each
    sequence's KV cache once (the extra FLOPs of q > 1 queries are not counted: decode
    attention is bound by the cache read); the LM head runs for each decode query and for each
    prompt that completes. A part with nothing to do takes no time (no launch overhead)."""
    kw: dict[str, Any] = dict(tp=tp, kv_split=kv_split, rates=rates, ep=ep)
    dec_rows = np.asarray(decodes, dtype=float) * np.asarray(query_tokens, dtype=float)
    prefill_tokens = np.asarray(prefill_tokens, dtype=float)
    prompts = np.asarray(prefill_prompts, dtype=float)

    def part(profile: OpProfile, batch) -> tuple[Any, Any]:
        """(block ops, outer ops) seconds of `profile` over `batch`, 0 where batch is 0."""
        if not profile.names:
            return 0.0, 0.0
        t = op_times_s(profile, batch=np.maximum(batch, 1e-12), **kw)
        on = np.asarray(batch) > 0
        outer = profile.is_outer
        return (np.where(on, (t * ~outer).sum(axis=-1), 0.0),
                np.where(on, (t * outer).sum(axis=-1), 0.0))

    if parts.fused:
        pieces = [part(parts.decode_tokens, dec_rows + prefill_tokens)]
    else:
        pieces = [part(parts.decode_tokens, dec_rows), part(parts.prefill_tokens, prefill_tokens)]
    pieces += [part(parts.decode_attention, decodes),
               part(parts.prefill_attention, prompts * prefill_attention_frac),
               part(parts.head, dec_rows + prompts)]
    blocks = sum(p[0] for p in pieces)
    outer = sum(p[1] for p in pieces)
    return blocks * block_frac + outer


# ---- typed results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingBreakdown:
    """Every quantity of a grid of training candidates (planner.plan.search.evaluate_training);
    each field is an array broadcastable to the grid (a scalar for one candidate). The field
    names are the search table's columns."""

    dp: Any
    n_micro_batches: Any
    mem_per_device_bytes: Any
    weight_mem_bytes: Any
    grad_mem_bytes: Any
    optimizer_mem_bytes: Any
    activation_mem_bytes: Any  # includes the ZeRO-3 gather buffer
    step_time_s: Any  # span + exposed data-parallel traffic + optimizer (P18)
    time_s: Any  # steps × step / goodput
    goodput_frac: Any  # productive share of wall time at this device count (P24-P28)
    compute_time_s: Any  # (m + p − 1) stage times, bubble included (P11)
    tp_comm_time_s: Any
    cp_comm_time_s: Any  # context-parallel K/V exchange, exposed (P22)
    ep_comm_time_s: Any  # expert-parallel all-to-alls, exposed (P29)
    pp_comm_time_s: Any
    dp_comm_exposed_s: Any
    optimizer_time_s: Any
    bubble_frac: Any
    tokens_per_s: Any
    mfu: Any  # model FLOPs per second over peak (an output)
    hfu: Any  # with the recomputed forward


@dataclass(frozen=True)
class ServingBreakdown:
    """Every quantity of a grid of serving candidates (planner.plan.search.evaluate_inference;
    docs/planning.md P19-P19k). Latencies: means with the queue's mean wait (ttft_s, tpot_s),
    percentiles with its waiting-time tail (P19h); the *_at_percentile_s pair is what the
    job's targets are checked against."""

    prefill_s: Any  # one prompt alone through the replica (P' tokens, P19a)
    decode_s: Any  # one decode step of a full micro-batch through the replica, no prefill
    ttft_s: Any
    tpot_s: Any  # NaN for an encoder (no output tokens)
    latency_s: Any  # one request: TTFT + (output − 1) · TPOT
    ttft_p50_s: Any
    ttft_p99_s: Any
    tpot_p50_s: Any
    tpot_p99_s: Any
    ttft_at_percentile_s: Any
    tpot_at_percentile_s: Any
    queue_wait_s: Any  # mean waiting time before admission
    utilization: Any  # offered load over the replica's slots
    replicas: Any  # decode replicas (all replicas without disaggregation)
    n_devices: Any
    prefill_devices: Any  # of n_devices, in the prefill pool (disaggregated; else 0)
    kv_transfer_s: Any  # prefill -> decode KV cache transfer per request (disaggregated)
    delivered_tokens_per_s: Any  # output tokens/s at the load (input tokens for an encoder)
    tokens_per_s_per_device: Any  # a replica's capacity per device
    weight_mem_bytes: Any
    kv_mem_bytes: Any
    mem_per_device_bytes: Any
    secondary_mem_bytes: Any  # of mem_per_device_bytes, held in a slower second tier (P19b)
    mfu: Any
    hours_per_million_tokens: Any
