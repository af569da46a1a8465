"""Per-device resident bytes over a grid of layouts: weights, gradients, optimizer state,
activations and KV cache (docs/planning.md P1-P5).

Every function takes numpy arrays (or scalars) that broadcast against each other, so one call
covers a whole grid of (tensor parallel t, pipeline parallel p, data parallel d, ZeRO stage,
micro-batch) candidates. Inputs are per-model totals from planner.model.layers at batch 1; outputs
are bytes on the busiest device.
"""

from __future__ import annotations

import numpy as np


def pipeline_stage_bytes(*, block_bytes, first_bytes, last_bytes, n_layers, pp):
    """P1: bytes on the largest pipeline stage (before tensor-parallel sharding).

    ceil(L / p) transformer blocks plus the outer layers: with p = 1 both the embedding side
    (`first_bytes`) and the head side (`last_bytes`); with p > 1 the larger of the two (the
    embedding sits on the first stage, the head on the last; Narayanan et al. 2021, Sec. 2.2).
    """
    pp = np.asarray(pp)
    blocks = np.ceil(n_layers / pp)
    outer = np.where(pp == 1, first_bytes + last_bytes, np.maximum(first_bytes, last_bytes))
    return blocks * block_bytes + outer


def zero_sharded_bytes(*, weight_bytes, grad_bytes, optimizer_bytes, dp, zero_stage):
    """P2: (weights, gradients, optimizer state) per device after ZeRO sharding over `dp`.

    Stage 1 shards the optimizer state (fp32 master copy and moments), stage 2 also the
    gradients, stage 3 also the weights (Rajbhandari et al. 2020, "ZeRO", Sec. 5, Fig. 1):
    bf16 + AdamW is 2 + 2 + 12 bytes per parameter, 16Ψ at stage 0 and (2 + 2 + 12)Ψ/N_d at 3.
    """
    zero_stage = np.asarray(zero_stage)
    weights = np.where(zero_stage >= 3, weight_bytes / dp, weight_bytes)
    grads = np.where(zero_stage >= 2, grad_bytes / dp, grad_bytes)
    optimizer = np.where(zero_stage >= 1, optimizer_bytes / dp, optimizer_bytes)
    return weights, grads, optimizer


def zero3_gather_buffer_bytes(*, block_weight_bytes, tp, dp, zero_stage):
    """P2b: ZeRO-3 keeps the gathered weights of the block being computed and of the one being
    prefetched: 2 blocks' weights (sharded only by tensor parallelism). NB: DeepSpeed bounds the
    buffer by `stage3_max_live_parameters`; two blocks is the common case."""
    return np.where((np.asarray(zero_stage) >= 3) & (np.asarray(dp) > 1),
                    2.0 * block_weight_bytes / tp, 0.0)


def activation_bytes_per_device(*, layer_bytes, first_bytes, last_bytes, n_layers, pp, tp,
                                micro_batch_size, n_micro_batches, cp=1, virtual_stages=1):
    """P3: activations saved for backward on the busiest device.

    `layer_bytes`, `first_bytes`, `last_bytes` are per sequence (planner.model.layers at batch 1,
    with the job's recompute setting). With 1F1B pipelining the first stage holds min(p, m)
    micro-batches in flight, each of ceil(L/p) layers (Narayanan et al. 2021, Sec. 2.2.1;
    Korthikanti et al. 2022, Sec. 4.2.3, "the first stage must store p micro-batches"); the
    interleaved schedule (v > 1 virtual stages) holds 1 + (p−1)/(p·v) times that (Korthikanti
    2022, Sec. 4.2.3); the last stage holds one micro-batch plus the head (logits in fp32).
    Tensor parallelism with sequence parallelism divides everything by t (Korthikanti 2022,
    Eq. 4 and Sec. 4.2.2); context parallelism splits each sequence over c devices and divides
    it by c (Liu et al. 2023, ring attention; Llama 3, Dubey et al. 2024, Sec. 3.3.2).
    Example: p = 4, v = 2, m ≥ 4: 1 + 3/8 = 1.375 × the 1F1B first stage.
    """
    pp = np.asarray(pp)
    v = np.asarray(virtual_stages, dtype=float)
    blocks = np.ceil(n_layers / pp)
    in_flight = np.minimum(pp, n_micro_batches)
    interleave = np.where(v > 1, 1.0 + (pp - 1.0) / (pp * v), 1.0)
    first_stage = (blocks * layer_bytes * interleave + first_bytes) * in_flight
    last_stage = blocks * layer_bytes + last_bytes
    single = n_layers * layer_bytes + first_bytes + last_bytes
    per_sequence = np.where(pp == 1, single, np.maximum(first_stage, last_stage))
    return per_sequence * micro_batch_size / (tp * np.asarray(cp, dtype=float))


def kv_cache_bytes_per_device(*, kv_bytes_per_token, context_len, batch_size, tp, n_kv_heads):
    """P4: KV cache on one device, b · context · (KV bytes per token, all layers) / min(t, K).

    Tensor parallelism splits the K key/value heads; beyond t = K each head is replicated
    (Pope et al. 2022, "Efficiently Scaling Transformer Inference", Sec. 3.3). Llama-2-70B
    (80 layers, 8 KV heads of 128, fp16): 2 · 80 · 8 · 128 · 2 = 327,680 bytes per token.
    MLA (F21) caches one latent per token that every head reads, so K = 1 (the profiles'
    n_kv_heads) and each tensor-parallel device holds it whole: DeepSeek-V3 in bf16,
    61 · (512 + 64) · 2 = 70,272 bytes per token on every device. Sliding-window blocks (F23)
    make kv_bytes_per_token the average over the context (planner.plan.steptime).
    """
    return batch_size * context_len * kv_bytes_per_token / np.minimum(tp, n_kv_heads)


def inference_weight_bytes_per_device(*, weight_bytes, tp, kv_weight_bytes=0.0, n_kv_heads=None):
    """P5: serving weights per device: sharded over t tensor-parallel devices (vocabulary-
    parallel embedding and head included), except the K and V projections (`kv_weight_bytes`,
    part of `weight_bytes`), whose K heads are split over min(t, K) devices: beyond t = K each
    KV head is replicated on t/K devices (as vLLM does), like the KV cache (P4).
    Llama-2-70B in fp16: 68,976,648,192 · 2 = 137.95 GB; at t = 4, 34.49 GB.
    """
    if n_kv_heads is None:
        return weight_bytes / tp
    return (weight_bytes - kv_weight_bytes) / tp + kv_weight_bytes / np.minimum(tp, n_kv_heads)
