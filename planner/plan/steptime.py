"""Time over a grid of candidates: a per-op roofline, collectives and the pipeline schedule
(docs/planning.md P6-P14).

The ops come from planner.model.layers at batch 1 (one sequence): FLOPs, weight bytes, and the
activation bytes each op reads and writes. Everything is linear in the batch for a fixed
sequence length, so a grid of micro-batch sizes is a multiplication. Each op then takes

    t_op = max(FLOPs / (peak · compute_frac), bytes / (bandwidth · memory_bw_frac), overhead)

(P6, the roofline of Williams et al. 2009, with a floor for the host's launch overhead).
A routed-expert op reads only the experts its tokens touch (P6b), and the K and V projections
split over min(t, K) devices, as the KV cache does (P5).

Overlap assumption (A3): tensor-parallel collectives and pipeline sends are exposed (they sit
on the critical path between dependent ops). Data-parallel and ZeRO traffic overlaps with
compute: per-step traffic hides behind the backward pass of one micro-batch, per-micro-batch
traffic (ZeRO-2 gradient reduce-scatter, ZeRO-3 all-gathers) behind that micro-batch's forward
and backward; only the remainder is exposed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from planner.model.layers import CausalCounting, Recompute, layer_table
from planner.model.precision import dtype_bytes, precision_policy
from planner.model.spec import ModelSpec

RECOMPUTE_OPTIONS: tuple[Recompute, ...] = ("none", "selective", "full")
LOSS_OUTPUT_BYTES = 4  # cross-entropy writes fp32 log-probabilities (planner.model.layers)

# Megatron tensor parallelism: 2 all-reduces per block forward (after attention and after the
# MLP) and 2 in backward (Shoeybi et al. 2019, Fig. 4); a full recompute repeats the forward's
# two (Korthikanti et al. 2022, Sec. 4.2). With sequence parallelism each all-reduce becomes a
# reduce-scatter + all-gather of the same total volume (Korthikanti 2022, Sec. 4.2.2).
TP_COLLECTIVES_PER_LAYER = {"none": 4, "selective": 4, "full": 6}
TP_COLLECTIVES_PER_LAYER_INFERENCE = 2


# ---- formulas ---------------------------------------------------------------------------------
def op_time_s(*, flops, bytes_moved, peak_flops_per_s, compute_frac, bw_bytes_per_s,
              memory_bw_frac, overhead_s):
    """P6: roofline time of one op, floored by the per-op overhead."""
    compute = flops / (peak_flops_per_s * compute_frac)
    memory = bytes_moved / (bw_bytes_per_s * memory_bw_frac)
    return np.maximum(np.maximum(compute, memory), overhead_s)


def ring_allreduce_bytes(*, message_bytes, n):
    """P7: bytes each device sends in a ring all-reduce of `message_bytes` over n devices,
    2(n−1)/n · message (Patarasuk & Yuan 2009; the NCCL tests' "bus bandwidth" factor).
    Example: 14 GB of bf16 gradients over 8 devices: 2 · 7/8 · 14 GB = 24.5 GB."""
    n = np.asarray(n, dtype=float)
    return 2.0 * (n - 1.0) / n * message_bytes


def reduce_scatter_bytes(*, message_bytes, n):
    """P8: bytes each device sends in a ring reduce-scatter (or all-gather): (n−1)/n · message."""
    n = np.asarray(n, dtype=float)
    return (n - 1.0) / n * message_bytes


all_gather_bytes = reduce_scatter_bytes


def collective_time_s(*, volume_bytes, n, bw_bytes_per_s, network_frac, latency_s):
    """P9: time of a collective moving `volume_bytes` per device over a link of
    `bw_bytes_per_s` per direction: volume / (bw · network_frac) + latency; 0 when n = 1."""
    with np.errstate(invalid="ignore"):
        t = volume_bytes / (bw_bytes_per_s * network_frac) + latency_s
    return np.where(np.asarray(n) > 1, t, 0.0)


def pipeline_bubble_frac(*, pp, n_micro_batches):
    """P10: idle share of a pipelined step, (p−1)/(m+p−1) (GPipe, Huang et al. 2019; 1F1B,
    Narayanan et al. 2021, Eq. 1). Example: p = 4, m = 8: 3/11 = 0.273."""
    pp = np.asarray(pp, dtype=float)
    return (pp - 1.0) / (n_micro_batches + pp - 1.0)


def pipeline_step_time_s(*, stage_micro_batch_s, pp, n_micro_batches):
    """P11: compute span of one step, (m + p − 1) · t_stage: m micro-batches through p stages;
    the share (p−1)/(m+p−1) of it is the bubble (P10)."""
    return (n_micro_batches + np.asarray(pp) - 1.0) * stage_micro_batch_s


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


def data_parallel_traffic(*, weight_bytes, grad_bytes, dp, zero_stage):
    """P13: (per-step bytes, per-micro-batch bytes) each device sends for data parallelism.

    ZeRO 0: all-reduce of the gradients once per step, 2(d−1)/d · G.
    ZeRO 1: reduce-scatter of gradients + all-gather of updated weights per step, (d−1)/d·(G+W).
    ZeRO 2: gradients reduce-scattered every micro-batch (they are kept sharded), weights
            all-gathered once per step.
    ZeRO 3: every micro-batch all-gathers the weights for forward and again for backward and
            reduce-scatters the gradients, (d−1)/d · (2W + G) (ZeRO paper Sec. 7.2: 1.5× the
            all-reduce volume).
    `weight_bytes`, `grad_bytes` are the device's full (tensor/pipeline-sharded) shares.
    """
    z = np.asarray(zero_stage)
    ar = ring_allreduce_bytes(message_bytes=grad_bytes, n=dp)
    rs_g = reduce_scatter_bytes(message_bytes=grad_bytes, n=dp)
    ag_w = all_gather_bytes(message_bytes=weight_bytes, n=dp)
    per_step = np.where(z == 0, ar, np.where(z == 1, rs_g + ag_w, np.where(z == 2, ag_w, 0.0)))
    per_micro = np.where(z == 2, rs_g, np.where(z == 3, 2.0 * ag_w + rs_g, 0.0))
    return per_step, per_micro


def optimizer_step_time_s(*, weight_bytes, grad_bytes, optimizer_bytes, bw_bytes_per_s,
                          memory_bw_frac):
    """P14: the optimizer update is memory-bound: read the gradients, read and write the
    optimizer state (moments and master copy), write the weights: (G + 2·O + W) / (bw · η)."""
    return (grad_bytes + 2.0 * optimizer_bytes + weight_bytes) / (bw_bytes_per_s * memory_bw_frac)


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


def experts_touched_frac(*, route_frac, n_tokens):
    """P6b: expected share of a layer's routed experts that at least one of `n_tokens` tokens
    visits when each token picks k of E experts uniformly: 1 − (1 − k/E)^n_tokens (each expert
    is missed by one token with probability 1 − k/E, independently across tokens; the
    expected number of distinct experts, the occupancy problem). Only the touched experts'
    weights are read in a step. NB: uniform routing is the balanced case a load-balancing loss
    aims for. Mixtral 8x7B (top-2 of 8), batch-1 decode: 1 − (6/8)^1 = 0.25, 2 of 8 experts;
    a 4,096-token prefill: 1 − 0.75^4096 = 1."""
    return 1.0 - (1.0 - np.asarray(route_frac, dtype=float)) ** np.asarray(n_tokens, dtype=float)


def _io_bytes(spec: ModelSpec, name: str, kind: str, *, q_len: float, kv_len: float, a: float,
              decode: bool) -> tuple[float, float]:
    """(activation bytes read + written, KV-cache bytes read) of one op for one sequence.

    Each op reads its inputs and writes its outputs once (a fused kernel keeps its
    intermediates on chip). NB: a convention like FLOPs' "backward = 2 × forward".
    """
    h, hd, H, K, ff, V = (spec.d_model, spec.d_head, spec.n_heads, spec.kv_heads, spec.d_ff,
                          spec.vocab_size)
    T = q_len
    k = spec.experts_top_k if name.startswith("moe.experts") else 1
    kv_side = 2.0 * kv_len * K * hd  # K and V of the whole context
    if kind == "embedding" or kind == "norm":
        return 2.0 * T * h * a, 0.0
    if name == "attn.q":
        return T * (h + H * hd) * a, 0.0
    if name in ("attn.k", "attn.v"):
        return T * (h + K * hd) * a, 0.0
    if name == "attn.core":  # fused attention: q, K, V in, context out
        if decode:
            return 2.0 * T * H * hd * a, kv_side
        return (2.0 * T * H * hd + kv_side) * a, 0.0
    if name == "attn.scores":
        return (T * H * hd + kv_len * K * hd + T * H * kv_len) * a, 0.0
    if name == "attn.softmax":
        return 2.0 * T * H * kv_len * a, 0.0
    if name == "attn.context":
        return (T * H * kv_len + kv_len * K * hd + T * H * hd) * a, 0.0
    if name == "attn.out":
        return T * (H * hd + h) * a, 0.0
    if name.endswith((".up", ".gate")):
        return k * T * (h + ff) * a, 0.0
    if name.endswith(".act"):
        return k * T * ff * (3.0 if spec.gated_mlp else 2.0) * a, 0.0
    if name.endswith(".down"):
        return k * T * (ff + h) * a, 0.0
    if name == "moe.router":
        return T * (h + spec.n_experts) * a, 0.0
    if name == "pooler":
        return 2.0 * h * a, 0.0
    if name == "lm_head":
        return T * (h + V) * a, 0.0
    if name == "loss":
        return T * V * (a + LOSS_OUTPUT_BYTES), 0.0
    raise AssertionError(f"no traffic rule for op {name!r}")  # pragma: no cover


def _weight_read_bytes(spec: ModelSpec, row, linear_weight_bytes: float) -> float:
    """Weight bytes an op reads per pass: a lookup table reads only the rows it needs (counted
    as traffic); a tied LM head reads the token embedding it shares."""
    if row.kind == "embedding":
        return 0.0
    if row.layer == "lm_head" and spec.tied_embeddings:
        return spec.vocab_size * spec.d_model * linear_weight_bytes
    return float(row.weight_bytes)


def _route_frac(spec: ModelSpec, name: str) -> float:
    """k/E for a routed-expert op (P6b), 0 otherwise."""
    if name.startswith("moe.experts") and spec.is_moe:
        return spec.experts_top_k / spec.n_experts
    return 0.0


def _ops_from_rows(spec: ModelSpec, rows: pd.DataFrame, *, flops_col: str, q_len: float,
                   kv_len: float, a: float, w: float, flash: bool, decode: bool, count: float,
                   head_tokens: float | None = None) -> list[dict]:
    """One dict per op; with fused attention the scores, softmax and context rows are one op."""
    ops: list[dict] = []
    core: dict | None = None
    for row in rows.itertuples(index=False):
        name = row.layer.split(".", 2)[-1] if row.block >= 0 else row.layer
        flops = float(getattr(row, flops_col))
        q = q_len
        if name in ("lm_head", "loss") and head_tokens is not None:
            flops *= head_tokens / q_len  # NB: serving computes logits for the last token only
            q = head_tokens
        if flash and row.kind in ("attention", "softmax"):
            if core is None:
                core = dict(name="attn.core", flops=0.0, weight_bytes=0.0, count=count,
                            route_frac=0.0, kv_proj=False)
                core["traffic_bytes"], core["kv_bytes"] = _io_bytes(
                    spec, "attn.core", "attention", q_len=q, kv_len=kv_len, a=a, decode=decode)
                ops.append(core)
            core["flops"] += flops
            continue
        traffic, kv = _io_bytes(spec, name, row.kind, q_len=q, kv_len=kv_len, a=a,
                                decode=decode)
        ops.append(dict(name=name, flops=flops, weight_bytes=_weight_read_bytes(spec, row, w),
                        traffic_bytes=traffic, kv_bytes=kv, count=count,
                        route_frac=_route_frac(spec, name),
                        kv_proj=name in ("attn.k", "attn.v")))
    return ops


def _profile(ops: list[dict], *, tokens_per_seq: float, kv_scale: float = 1.0) -> OpProfile:
    return OpProfile(
        names=tuple(o["name"] for o in ops),
        flops=np.array([o["flops"] for o in ops]),
        traffic_bytes=np.array([o["traffic_bytes"] for o in ops]),
        weight_bytes=np.array([o["weight_bytes"] for o in ops]),
        kv_bytes=np.array([o["kv_bytes"] for o in ops]) * kv_scale,
        count=np.array([o["count"] for o in ops], dtype=float),
        route_frac=np.array([o["route_frac"] for o in ops], dtype=float),
        kv_proj=np.array([o["kv_proj"] for o in ops], dtype=bool),
        tokens_per_seq=float(tokens_per_seq),
    )


@dataclass(frozen=True)
class TrainingProfile:
    """Everything the training search needs from the model, per sequence of `seq_len` tokens."""

    block: OpProfile  # one transformer block
    first: OpProfile  # embedding side (first pipeline stage)
    last: OpProfile  # head side (last pipeline stage)
    block_passes: np.ndarray  # [recompute, op]: 3 (forward + backward) + 1 if recomputed
    block_weight_bytes: float
    block_grad_bytes: float
    block_optimizer_bytes: float
    block_kv_state_bytes: tuple[float, float, float]  # the K and V projections' share
    first_state_bytes: tuple[float, float, float]  # weights, gradients, optimizer state
    last_state_bytes: tuple[float, float, float]
    block_activation_bytes: np.ndarray  # [recompute]
    first_activation_bytes: float
    last_activation_bytes: float
    model_flops_per_seq: float  # forward + backward, no recompute (MFU numerator)
    hardware_flops_per_seq: np.ndarray  # [recompute], recomputed forward included (HFU)
    tp_collectives_per_layer: np.ndarray  # [recompute]
    activation_bytes: float  # bytes per activation element
    n_layers: int
    d_model: int
    n_kv_heads: int
    seq_len: int


def _outer_split(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    outer = table[table["block"] < 0]
    first_names = outer["layer"].str.startswith("embed.")
    return outer[first_names], outer[~first_names]


@lru_cache(maxsize=32)
def training_profile(spec: ModelSpec, *, seq_len: int, precision: str, optimizer: str,
                     flash_attention: bool, causal_attention: CausalCounting
                     ) -> TrainingProfile:
    """The training ops and byte totals of `spec` for one sequence
    (planner.model.layers, batch 1)."""
    policy = precision_policy(precision, mode="train")
    a = policy.activation_bytes
    tables = {r: layer_table(spec, seq_len=seq_len, batch_size=1, mode="train",
                             precision=precision, optimizer=optimizer, recompute=r,
                             flash_attention=flash_attention, causal_attention=causal_attention)
              for r in RECOMPUTE_OPTIONS}
    table = tables["none"]
    block_rows = table[table["block"] == 0]
    first_rows, last_rows = _outer_split(table)
    kw: dict[str, Any] = dict(flops_col="fwd_flops", q_len=float(seq_len),
                              kv_len=float(seq_len), a=a, w=policy.linear_weight_bytes,
                              flash=flash_attention, decode=False)
    block = _profile(_ops_from_rows(spec, block_rows, count=1.0, **kw), tokens_per_seq=seq_len)
    first = _profile(_ops_from_rows(spec, first_rows, count=1.0, **kw), tokens_per_seq=seq_len)
    last = _profile(_ops_from_rows(spec, last_rows, count=1.0, **kw), tokens_per_seq=seq_len)

    attention_core = np.array([n in ("attn.scores", "attn.softmax", "attn.context")
                               for n in block.names])
    passes = np.full((len(RECOMPUTE_OPTIONS), len(block.names)), 3.0)
    passes[1] += attention_core  # selective: the attention core's forward again (Korthikanti)
    passes[2] += 1.0  # full: the whole block's forward again
    extra_fwd = (passes - 3.0) @ block.flops * spec.n_layers

    def state(rows: pd.DataFrame) -> tuple[float, float, float]:
        return (float(rows["weight_bytes"].sum()), float(rows["grad_bytes"].sum()),
                float(rows["optimizer_bytes"].sum()))

    kv_rows = block_rows[block_rows["layer"].str.endswith((".attn.k", ".attn.v"))]

    fwd = float(table["fwd_flops"].sum())
    return TrainingProfile(
        block=block, first=first, last=last, block_passes=passes,
        block_weight_bytes=float(block_rows["weight_bytes"].sum()),
        block_grad_bytes=float(block_rows["grad_bytes"].sum()),
        block_optimizer_bytes=float(block_rows["optimizer_bytes"].sum()),
        block_kv_state_bytes=state(kv_rows), first_state_bytes=state(first_rows),
        last_state_bytes=state(last_rows),
        block_activation_bytes=np.array([
            float(tables[r].loc[tables[r]["block"] == 0, "activation_bytes"].sum())
            for r in RECOMPUTE_OPTIONS]),
        first_activation_bytes=float(first_rows["activation_bytes"].sum()),
        last_activation_bytes=float(last_rows["activation_bytes"].sum()),
        model_flops_per_seq=3.0 * fwd,
        hardware_flops_per_seq=3.0 * fwd + extra_fwd,
        tp_collectives_per_layer=np.array([TP_COLLECTIVES_PER_LAYER[r]
                                           for r in RECOMPUTE_OPTIONS], dtype=float),
        activation_bytes=a, n_layers=spec.n_layers, d_model=spec.d_model,
        n_kv_heads=spec.kv_heads, seq_len=seq_len,
    )


@dataclass(frozen=True)
class InferenceProfile:
    """Serving ops for one sequence: the prefill of the prompt and one decode step at the
    average context (prompt + output / 2)."""

    prefill: OpProfile
    decode: OpProfile
    weight_bytes: float
    kv_proj_weight_bytes: float  # the K and V projections' share of weight_bytes
    kv_bytes_per_token: float  # all layers, K and V
    prefill_model_flops_per_seq: float
    decode_model_flops_per_token: float  # at the average context
    activation_bytes: float
    n_layers: int
    d_model: int
    n_kv_heads: int
    n_heads: int


@lru_cache(maxsize=32)
def inference_profile(spec: ModelSpec, *, prompt_len: int, output_len: int, precision: str,
                      kv_cache_precision: str | None) -> InferenceProfile:
    """Prefill and decode ops of `spec` for one request
    (planner.model.layers, inference, batch 1)."""
    policy = precision_policy(precision, mode="inference")
    a = policy.activation_bytes
    kv_b = dtype_bytes(kv_cache_precision) if kv_cache_precision else a
    avg_context = prompt_len + max(output_len // 2, 1)
    pre = layer_table(spec, seq_len=prompt_len, batch_size=1, mode="inference",
                      precision=policy, kv_cache_dtype=kv_cache_precision)
    dec = layer_table(spec, seq_len=avg_context, batch_size=1, mode="inference",
                      precision=policy, kv_cache_dtype=kv_cache_precision)

    def build(table: pd.DataFrame, *, flops_col: str, q_len: float, kv_len: float,
              decode: bool, head_tokens: float | None, kv_scale: float) -> OpProfile:
        block_rows = table[table["block"] == 0]
        outer = table[table["block"] < 0]
        kw: dict[str, Any] = dict(flops_col=flops_col, q_len=q_len, kv_len=kv_len, a=a,
                  w=policy.linear_weight_bytes, flash=True, decode=decode,
                  head_tokens=head_tokens)
        ops = (_ops_from_rows(spec, block_rows, count=float(spec.n_layers), **kw)
               + _ops_from_rows(spec, outer, count=1.0, **kw))
        return _profile(ops, tokens_per_seq=q_len, kv_scale=kv_scale)

    prefill = build(pre, flops_col="fwd_flops", q_len=float(prompt_len),
                    kv_len=float(prompt_len), decode=False, head_tokens=1.0, kv_scale=1.0)
    decode = build(dec, flops_col="decode_flops", q_len=1.0, kv_len=float(avg_context),
                   decode=True, head_tokens=None, kv_scale=kv_b)
    kv_proj = pre["layer"].str.endswith((".attn.k", ".attn.v"))
    return InferenceProfile(
        prefill=prefill, decode=decode, weight_bytes=float(pre["weight_bytes"].sum()),
        kv_proj_weight_bytes=float(pre.loc[kv_proj, "weight_bytes"].sum()),
        kv_bytes_per_token=float(pre["kv_cache_bytes"].sum()) / prompt_len,
        prefill_model_flops_per_seq=float(pre["fwd_flops"].sum()),
        decode_model_flops_per_token=float(dec["decode_flops"].sum()),
        activation_bytes=a, n_layers=spec.n_layers, d_model=spec.d_model,
        n_kv_heads=spec.kv_heads, n_heads=spec.n_heads,
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


def ops_time_s(profile: OpProfile, *, batch, tp, kv_split, peak_flops_per_s, compute_frac,
               bw_bytes_per_s, memory_bw_frac, overhead_s, passes=None):
    """Σ over ops of count · passes · t_op (P6) for `batch` sequences on one of `tp` devices.

    Arguments broadcast; the op axis is added last and summed. `passes` (optional, [..., op])
    multiplies each op (3 = forward + backward); `kv_split` = min(t, K) divides KV-cache reads
    and the K and V projections (their heads are replicated beyond t = K), `tp` every other
    op. A routed-expert op reads only the experts its tokens touch (P6b).
    """
    x = [np.expand_dims(np.asarray(v, dtype=float), -1)
         for v in (batch, tp, kv_split, peak_flops_per_s, compute_frac, bw_bytes_per_s,
                   memory_bw_frac)]
    batch_, tp_, kv_split_, peak, cf, bw, mf = x
    split = np.where(profile.kv_proj, kv_split_, tp_) if profile.kv_proj.any() else tp_
    weights = op_weight_read_bytes(profile, batch=np.asarray(batch, dtype=float))
    flops = profile.flops * batch_ / split
    moved = (weights + profile.traffic_bytes * batch_) / split \
        + profile.kv_bytes * batch_ / kv_split_
    t = op_time_s(flops=flops, bytes_moved=moved, peak_flops_per_s=peak, compute_frac=cf,
                  bw_bytes_per_s=bw, memory_bw_frac=mf, overhead_s=overhead_s)
    weight = profile.count if passes is None else profile.count * passes
    return (t * weight).sum(axis=-1)
