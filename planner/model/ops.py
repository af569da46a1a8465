"""One definition per op kind: what kernel each op of the per-layer table is, the GEMM it runs,
the bytes it reads and writes, and the element-wise kernels the table does not list.

`planner.model.layers` names the rows (attn.q, mlp.up, ...) and gives their parameters, FLOPs
and saved activations; this module says, per op name, which achieved rate prices it
(planner.hardware.kernels): a GEMM of a given shape, fused attention, or memory traffic only;
how tensor parallelism splits it (Megatron-LM: Shoeybi et al. 2019, Sec. 3); and its
activation and KV-cache traffic. The step-time model asks here; an op name or row kind
without a rule raises, so a new op kind cannot slip through unpriced (MLA's projections, the
QK-norms and the MTP projection have theirs: F20, F21, F24).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from planner.model.layers import (
    BlockKind,
    attention_head_dims,
    ffn_width,
    linear_dims,
    norm_width,
)
from planner.model.spec import ModelSpec


class OpKind(StrEnum):
    """How an op is priced: GEMM (tensor cores at the GEMM rate of its shape), ATTENTION
    (a fused attention kernel at the attention rate), MEMORY (element-wise, normalisation,
    lookup, loss: bytes moved at the copy rate)."""

    GEMM = "gemm"
    ATTENTION = "attention"
    MEMORY = "memory"


class TpSplit(StrEnum):
    """How tensor parallelism over t devices splits a GEMM: COLUMN splits the output features
    n (q, k, v, up, gate, the vocabulary of the head), ROW the input features k (attention
    output, down), HEADS the batch of per-head GEMMs (eager attention) and NONE replicates."""

    COLUMN = "column"
    ROW = "row"
    HEADS = "heads"
    NONE = "none"


@dataclass(frozen=True)
class GemmShape:
    """One GEMM per `rows_per_token` · tokens rows: (m × k) · (k × n), `count` of them."""

    n: float
    k: float
    split: TpSplit
    rows_per_token: float = 1.0


# Row kinds of planner.model.layers -> how they are priced (attention and softmax rows are
# one fused kernel with flash attention, GEMMs + a memory-bound softmax without).
_KIND_OF_ROW = {
    "linear": OpKind.GEMM,
    "router": OpKind.GEMM,
    "attention": OpKind.GEMM,  # eager QKᵀ and softmax·V: batched per-head GEMMs
    "softmax": OpKind.MEMORY,
    "embedding": OpKind.MEMORY,
    "norm": OpKind.MEMORY,
    "activation": OpKind.MEMORY,
    "loss": OpKind.MEMORY,
}

FUSED_ATTENTION_OP = "attn.core"  # the rows scores, softmax, context as one flash kernel
LOSS_OUTPUT_BYTES = 4  # cross-entropy writes fp32 log-probabilities (planner.model.layers)


def op_kind(row_kind: str) -> OpKind:
    """The pricing kind of a table row's kind; ValueError for an unknown kind."""
    try:
        return _KIND_OF_ROW[row_kind]
    except KeyError:
        raise ValueError(f"op kind {row_kind!r} has no pricing rule in planner.model.ops; "
                         f"known: {', '.join(_KIND_OF_ROW)}") from None


def gemm_shape(spec: ModelSpec, name: str, *, kv_len: float, tokens_per_seq: float
               ) -> GemmShape:
    """The GEMM behind op `name` (block ops relative to the block, e.g. "mlp.up").

    Examples (Llama-2-7B, h = 4096, d_ff = 11008): mlp.up is (T × 4096) · (4096 × 11008),
    column-split; mlp.down (T × 11008) · (11008 × 4096), row-split. Mixtral's routed experts
    see T·k/E rows each (balanced routing). MLA (F21): q_b and kv_b are column-split by heads;
    q_a and kv_a produce the latents every head needs, so tensor parallelism replicates them
    (vLLM's ReplicatedLinear, Megatron-Core's duplicated down-projections): they are
    column-"split" over min(t, K) devices like a K/V projection, with K = 1 for MLA
    (planner.plan.steptime's kv_proj). DeepSeek-V3 kv_b: (T × 512) · (512 × 32768)."""
    h, hd, H, K = spec.d_model, spec.d_head, spec.n_heads, spec.kv_heads
    if name == "attn.q":
        return GemmShape(H * hd, h, TpSplit.COLUMN)
    if name in ("attn.k", "attn.v"):
        return GemmShape(K * hd, h, TpSplit.COLUMN)
    if name in ("attn.q_a", "attn.q_b", "attn.kv_a", "attn.kv_b"):
        d_in, d_out = linear_dims(spec, name)
        return GemmShape(d_out, d_in, TpSplit.COLUMN)
    if name == "attn.out":
        return GemmShape(h, H * spec.d_value, TpSplit.ROW)
    if name == "attn.scores":
        return GemmShape(kv_len, hd, TpSplit.HEADS)
    if name == "attn.context":
        return GemmShape(spec.d_value, kv_len, TpSplit.HEADS)
    experts = name.startswith("moe.experts")
    rows = spec.experts_top_k / spec.n_experts if experts and spec.is_moe else 1.0
    if name.startswith(("mlp.", "moe.")) and name.endswith((".up", ".gate")):
        return GemmShape(ffn_width(spec, name), h, TpSplit.COLUMN, rows)
    if name.startswith(("mlp.", "moe.")) and name.endswith(".down"):
        return GemmShape(h, ffn_width(spec, name), TpSplit.ROW, rows)
    if name == "moe.router":
        return GemmShape(spec.n_experts, h, TpSplit.NONE)
    if name == "lm_head":
        return GemmShape(spec.vocab_size, h, TpSplit.COLUMN)
    if name == "eh_proj":  # MTP (F24): [T, 2h] @ [2h, h]; NB: replicated, a small GEMM
        return GemmShape(h, 2 * h, TpSplit.NONE)
    if name == "pooler":  # the first token of each sequence
        return GemmShape(h, h, TpSplit.NONE, 1.0 / tokens_per_seq)
    raise ValueError(f"op {name!r}: no GEMM shape rule in planner.model.ops")


def io_bytes(spec: ModelSpec, name: str, kind: str, *, q_len: float, kv_len: float, a: float,
              decode: bool) -> tuple[float, float]:
    """(activation bytes read + written, KV-cache elements read) of op `name` for one sequence
    of `q_len` tokens attending to `kv_len` keys (a sliding-window block's caller passes its
    window-limited keys, F23), at `a` bytes per activation element.

    Each op reads its inputs and writes its outputs once (a fused kernel keeps its
    intermediates on chip). NB: a convention like FLOPs' "backward = 2 × forward". Example:
    Llama-2-7B's q projection on 4,096 tokens in bf16 reads 4096·4096 and writes 4096·4096
    elements: 67.1 MB. MLA decode (absorbed, F21) reads kv_len · (kv_lora_rank +
    qk_rope_head_dim) cached elements, once for all heads. An op without a rule raises.
    """
    h, hd, H, K, V = (spec.d_model, spec.d_head, spec.n_heads, spec.kv_heads, spec.vocab_size)
    T = q_len
    k = spec.experts_top_k if name.startswith("moe.experts") else 1
    if kind == "embedding":
        return 2.0 * T * h * a, 0.0
    if kind == "norm":
        return 2.0 * T * norm_width(spec, name) * a, 0.0
    if name == "attn.q":
        return T * (h + H * hd) * a, 0.0
    if name in ("attn.k", "attn.v"):
        return T * (h + K * hd) * a, 0.0
    if name in ("attn.q_a", "attn.q_b", "attn.kv_a", "attn.kv_b", "eh_proj"):
        d_in, d_out = linear_dims(spec, name)
        return T * (d_in + d_out) * a, 0.0
    if name == FUSED_ATTENTION_OP or name in ("attn.scores", "attn.context"):
        return _attention_io(spec, name, T=T, kv_len=kv_len, a=a, decode=decode)
    if name == "attn.softmax":
        return 2.0 * T * H * kv_len * a, 0.0
    if name == "attn.out":
        return T * (H * spec.d_value + h) * a, 0.0
    if name.startswith(("mlp.", "moe.")):
        ff = ffn_width(spec, name)
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
    raise ValueError(f"op {name!r}: no traffic rule in planner.model.ops")


def _attention_io(spec: ModelSpec, name: str, *, T: float, kv_len: float, a: float,
                  decode: bool) -> tuple[float, float]:
    """Fused attention (q, K, V in, context out) or an eager QKᵀ / softmax·V."""
    H, K, hd = spec.n_heads, spec.kv_heads, spec.d_head
    if not spec.is_mla:
        kv_side = 2.0 * kv_len * K * hd  # K and V of the whole context
        if name == FUSED_ATTENTION_OP:
            if decode:
                return 2.0 * T * H * hd * a, kv_side
            return (2.0 * T * H * hd + kv_side) * a, 0.0
        if name == "attn.scores":
            return (T * H * hd + kv_len * K * hd + T * H * kv_len) * a, 0.0
        return (T * H * kv_len + kv_len * K * hd + T * H * hd) * a, 0.0
    qk, vd = attention_head_dims(spec, decode=decode)
    # prefill: decompressed per-head keys and values; decode: the shared cached latent
    k_side, v_side = ((spec.kv_cache_elements_per_token, 0.0) if decode
                      else (H * qk, H * vd))
    if name == FUSED_ATTENTION_OP:
        if decode:
            return T * H * (qk + vd) * a, kv_len * k_side
        return (T * H * (qk + vd) + kv_len * (k_side + v_side)) * a, 0.0
    if name == "attn.scores":
        return (T * H * qk + kv_len * k_side + T * H * kv_len) * a, 0.0
    return (T * H * kv_len + kv_len * v_side + T * H * vd) * a, 0.0


def unlisted_elementwise(spec: ModelSpec, *, fp8: bool = False, kind: BlockKind | None = None
                         ) -> tuple[tuple[str, float], ...]:
    """Element-wise kernels every block runs that the per-layer table does not list (they have
    no parameters and, by the FLOP convention, no counted FLOPs), as (name, elements read +
    written per token). They are memory-bound and priced as traffic:

    * residual.attn, residual.mlp: x + f(x), reading two h-vectors and writing one (3·h);
    * rope (rotary models): q and k read and written once, 2·(H + K)·d_head; with MLA only the
      rotary parts, the H query parts and the one shared key, 2·(H + 1)·qk_rope_head_dim;
    * dropout (when the model trains with it): after attention and after the MLP, h read,
      h written and an h-byte mask each, counted as 3·h elements;
    * fp8_cast (FP8 matmuls, Transformer Engine): every GEMM input is quantized before the
      GEMM, reading 2 bytes and writing 1 plus a transposed 1-byte copy for the weight
      gradient, 4 bytes = 2 bf16 elements per input element. The inputs of one block are
      h (q, k, v share theirs), H·d_head (out), h (up and gate share theirs) and d_ff (down)
      (MLA: h, q_lora_rank, kv_lora_rank and H·v_head_dim; a MoE block: k + shared experts'
      d_ff inputs of moe_d_ff); the backward pass casts the output gradients likewise
      (counted by the backward's 2×).

    `kind` is the block's kind (planner.model.layers.BlockKind; default: a MoE block when the
    model has experts). Example (Llama-2-7B, h = 4096, 32 + 32 heads of 128):
    2·3·4096 + 2·64·128 = 40,960 elements per token per block, 80 kB in bf16."""
    h = float(spec.d_model)
    out: list[tuple[str, float]] = [("residual.attn", 3.0 * h), ("residual.mlp", 3.0 * h)]
    if spec.is_mla:
        out.append(("rope", 2.0 * (spec.n_heads + 1) * float(spec.qk_rope_head_dim or 0)))
    elif spec.position == "rotary":
        out.append(("rope", 2.0 * (spec.n_heads + spec.kv_heads) * spec.d_head))
    if spec.dropout > 0:
        out.append(("dropout", 2.0 * 3.0 * h))
    if fp8:
        moe = spec.is_moe if kind is None else kind.moe
        ff = spec.expert_d_ff if moe else spec.d_ff
        if spec.is_mla:
            inputs = (2.0 * h + float(spec.q_lora_rank or 0) + float(spec.kv_lora_rank or 0)
                      + spec.n_heads * spec.d_value + ff)
        else:
            inputs = 2.0 * h + spec.n_heads * spec.d_head + ff
        if moe:
            inputs += (spec.experts_top_k + spec.n_shared_experts - 1) * ff
        out.append(("fp8_cast", 2.0 * inputs))
    return tuple(out)
