"""Per-layer analytic model: parameters, FLOPs and bytes of every layer of a transformer.

This is the seed document's C = Σ|w_i|·times_i and S = Σ|w_i|·bits_i (Sec. 4.1), made exact
and extended with the terms the document leaves out. Every formula is numbered in
docs/formulas.md (F1…); the docstrings point there.

Counting convention (stated once, used everywhere):
- FLOPs, not MACs: a multiply-add is 2 FLOPs, so a weight used in a matmul costs 2 FLOPs per
  token forward (F1). Bias adds, residual adds, rotary and the 1/sqrt(d) scaling are not counted
  (NB: < 0.5 % of a block), which is also what `torch.utils.flop_counter` does.
- Backward = 2 × forward for every matmul (gradient w.r.t. input and w.r.t. weight, F2); the
  same factor is used as an estimate for the element-wise ops.
- Attention QKᵀ and softmax·V are counted in full by default, as PaLM's MFU and
  `FlopCounterMode` do; `causal_attention="half"` halves them for causal models (F4).

Blocks need not be alike (F19–F24): `block_kind_counts` says how many blocks of each kind a
model has (a dense or a mixture-of-experts MLP, global or sliding-window attention), and the
table gives every block the rows of its kind; multi-token prediction modules are rows after the
head (`mtp.{k}.*`, training only).

The per-op formula functions (linear_flops, attention_matmul_flops, ...) take numpy arrays, so
callers can evaluate a grid at once; `layer_table` is one configuration (scalars), and
`planner.plan.memory` / `planner.plan.steptime` build their grids from it at batch 1, since
everything is
linear in the batch for a fixed sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from planner.errors import InputError, check_bool, check_int, clip
from planner.model.precision import (
    ADAPTERS,
    Adapter,
    Mode,
    PrecisionPolicy,
    dtype_bytes,
    frozen_linear_weight_bytes,
    optimizer_state_bytes,
    precision_policy,
)
from planner.model.spec import MAX_SEQ_LEN, ModelSpec, model

Recompute = Literal["none", "selective", "full"]
CausalCounting = Literal["full", "half"]

MATMUL_KINDS = frozenset({"linear", "attention", "router", "lora"})

# NB: element-wise FLOPs per element are conventions, not measurements (docs/formulas.md F5).
LAYERNORM_FLOPS_PER_ELEMENT = 7  # mean, subtract, square, sum, normalize, scale, shift
RMSNORM_FLOPS_PER_ELEMENT = 4  # square, sum, normalize, scale
SOFTMAX_FLOPS_PER_ELEMENT = 5  # max, subtract, exp, sum, divide
ACTIVATION_FLOPS_PER_ELEMENT = {"gelu": 8, "silu": 4, "relu": 1}
INDEX_BYTES = 8  # int64 token / position ids saved by embedding backward
DROPOUT_MASK_BYTES = 1  # torch saves a bool mask per element
LOGITS_BYTES = 4  # fp32 log-probabilities saved by cross-entropy
LOGSUMEXP_BYTES = 4  # fp32 log-sum-exp per query row saved by fused attention
# LoRA (Hu et al. 2021, arXiv 2106.09685): which linear rows of a block get an adapter. Aliases
# expand per model (MLA's q_a/q_b/kv_a/kv_b, MoE experts); any block linear's row name works too.
# The default is PEFT's "all-linear" (every linear layer but the output layer; QLoRA, Dettmers
# et al. 2023, Sec. 4, found adapters on every linear layer needed to match full fine-tuning).
# NB: the MoE router is never adapted.
LORA_TARGET_ALIASES = ("all-linear", "attention", "mlp")
DEFAULT_LORA_TARGETS: tuple[str, ...] = ("all-linear",)
DEFAULT_LORA_RANK = 16
# Fused (flash) attention, on unless asked otherwise: the default of `planner layers`
# (--no-flash-attention), of TrainingJob.flash_attention (planner.plan.workloads) and of the
# app's Model page, so that every page counts the same saved activations (F17: no s×s score
# matrix saved). `layer_table(flash_attention=False)` keeps eager attention as its own default
# because `planner.measure.validate` compares it with an eager PyTorch run, which saves the
# scores.
DEFAULT_FLASH_ATTENTION = True
MAX_LORA_RANK = 65536
# Readers of the attention block's normed input (one saved tensor, F14)
_ATTN_INPUT_READERS = frozenset({"attn.q", "attn.k", "attn.v", "attn.q_a", "attn.kv_a"})
# Largest batch layer_table accepts (sequences); with seq_len ≤ MAX_SEQ_LEN and the ModelSpec
# bounds every FLOP and byte count of a table stays below 1e45, far from float64's 1.8e308.
MAX_BATCH_SIZE = 10**9

COLUMNS = [
    "layer", "block", "kind", "n_params", "n_active_params", "fwd_flops", "bwd_flops",
    "weight_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes", "kv_cache_bytes",
]


# ---- one function per op kind (F1–F5) -----------------------------------------------------------
def linear_flops(*, n_tokens, d_in, d_out):
    """F1: forward FLOPs of a dense layer, 2 · tokens · d_in · d_out.

    # [n_tokens, d_in] @ [d_in, d_out] -> [n_tokens, d_out]
    """
    return 2.0 * n_tokens * d_in * d_out


def attention_matmul_flops(*, batch, q_len, kv_len, n_heads, head_dim, causal_half=False):
    """F3: FLOPs of QKᵀ (or of softmax·V): 2 · b · heads · q_len · kv_len · head_dim.

    # [b, heads, q_len, d_head] @ [b, heads, d_head, kv_len] -> [b, heads, q_len, kv_len]
    With `causal_half`, only the lower triangle is counted (F4), an ideal causal kernel.
    """
    flops = 2.0 * batch * n_heads * q_len * kv_len * head_dim
    return flops * 0.5 if causal_half else flops


def softmax_flops(*, batch, q_len, kv_len, n_heads):
    """F5: 5 FLOPs per attention score (max, subtract, exp, sum, divide)."""
    return float(SOFTMAX_FLOPS_PER_ELEMENT) * batch * n_heads * q_len * kv_len


def norm_flops(*, n_tokens, d_model, norm: str):
    """F5: LayerNorm 7, RMSNorm 4 FLOPs per element."""
    per = LAYERNORM_FLOPS_PER_ELEMENT if norm == "layernorm" else RMSNORM_FLOPS_PER_ELEMENT
    return float(per) * n_tokens * d_model


def activation_flops(*, n_tokens, d_ff, act: str, gated: bool):
    """F5: GELU 8, SiLU 4, ReLU 1 FLOPs per element, plus 1 for the gate product of GLUs."""
    return (ACTIVATION_FLOPS_PER_ELEMENT[act] + (1 if gated else 0)) * n_tokens * d_ff


def norm_params(spec: ModelSpec, width: int | None = None) -> int:
    """LayerNorm has a scale and a bias (2h); RMSNorm only a scale (h). `width`: a norm over
    something other than h (MLA's latents, one q/k head)."""
    return (2 if spec.norm == "layernorm" else 1) * (spec.d_model if width is None else width)


# ---- the structure: which rows exist ------------------------------------------------------------
@dataclass(frozen=True)
class LayerDef:
    """One row of the per-layer table, independent of batch and sequence length."""

    name: str  # relative to the block ("attn.q") inside blocks, absolute outside ("lm_head")
    kind: str  # embedding, norm, linear, attention, softmax, activation, router, loss
    n_params: int
    block: bool  # True: repeated in every block of its kind as `blocks.{i}.{name}`
    active_frac: float = 1.0  # share of the parameters each token uses (MoE experts)
    group: str = ""  # prefix of an outer row built from block rows ("mtp.0."): the row's
    # table name is group + name, its formulas are those of `name`

    @property
    def full_name(self) -> str:
        return self.group + self.name


@dataclass(frozen=True)
class BlockKind:
    """What can differ between the blocks of one model (F19, F23): a dense MLP of d_ff or a
    mixture of experts, and global attention or a sliding window of `window` keys."""

    moe: bool = False
    window: int | None = None


def block_kind(spec: ModelSpec, index: int) -> BlockKind:
    """The kind of block `index` (0-based; index n_layers is the MTP modules' block)."""
    moe = spec.is_moe and index >= spec.n_dense_layers
    return BlockKind(moe=moe, window=spec.sliding_window if _is_local(spec, index) else None)


def _is_local(spec: ModelSpec, index):
    """Sliding-window blocks: all when global_attn_every = 0, else all but every n-th."""
    if spec.sliding_window is None:
        return np.zeros_like(index, dtype=bool) if isinstance(index, np.ndarray) else False
    g = spec.global_attn_every
    if g == 0:
        return np.ones_like(index, dtype=bool) if isinstance(index, np.ndarray) else True
    return (index + 1) % g != 0


def block_kind_counts(spec: ModelSpec) -> list[tuple[BlockKind, int, int]]:
    """(kind, number of blocks of that kind, index of its first block), in order of first
    appearance; one entry for a model whose blocks are all alike. Counted arithmetically, so
    10^5 layers cost nothing. DeepSeek-V3: (dense, 3, 0), (MoE, 58, 3)."""
    segments = ([(False, 0, spec.n_dense_layers), (True, spec.n_dense_layers, spec.n_layers)]
                if spec.is_moe else [(False, 0, spec.n_layers)])
    out: list[tuple[BlockKind, int, int]] = []
    for moe, lo, hi in segments:
        if hi <= lo:
            continue
        n_global, first_global, first_local = _global_in(spec, lo, hi)
        if n_global:
            out.append((BlockKind(moe=moe), n_global, first_global))
        if hi - lo - n_global:
            out.append((BlockKind(moe=moe, window=spec.sliding_window), hi - lo - n_global,
                        first_local))
    return sorted(out, key=lambda entry: entry[2])


def _global_in(spec: ModelSpec, lo: int, hi: int) -> tuple[int, int, int]:
    """(global blocks in [lo, hi), the first global one, the first local one)."""
    if spec.sliding_window is None:
        return hi - lo, lo, lo
    g = spec.global_attn_every
    if g == 0:
        return 0, lo, lo
    # block i is global when (i + 1) % g == 0: i + 1 runs over the multiples of g in (lo, hi]
    first_global = -(-(lo + 1) // g) * g - 1
    first_local = lo if (lo + 1) % g else lo + 1
    return hi // g - lo // g, first_global, first_local


def block_kind_index(spec: ModelSpec) -> np.ndarray:
    """Per block, the index of its kind in block_kind_counts(spec)."""
    kinds = [k for k, _, _ in block_kind_counts(spec)]
    idx = np.arange(spec.n_layers)
    moe = idx >= spec.n_dense_layers if spec.is_moe else np.zeros(spec.n_layers, dtype=bool)
    local = _is_local(spec, idx)
    out = np.zeros(spec.n_layers, dtype=int)
    for i, kind in enumerate(kinds):
        out[(moe == kind.moe) & (local == (kind.window is not None))] = i
    return out


def block_kind_summary(spec: ModelSpec) -> list[tuple[str, int, int]]:
    """(label, number of blocks, index of the first) per kind, in block_kind_counts' order.
    The label names what differs between the kinds: "dense" / "MoE", "global" /
    "sliding window 4,096", both joined by ", " where both differ; "" for a model whose
    blocks are all alike. DeepSeek-V3: ("dense", 3, 0), ("MoE", 58, 3)."""
    counts = block_kind_counts(spec)
    moe_differs = len({kind.moe for kind, _, _ in counts}) > 1
    window_differs = len({kind.window for kind, _, _ in counts}) > 1

    def label(kind: BlockKind) -> str:
        parts = []
        if moe_differs:
            parts.append("MoE" if kind.moe else "dense")
        if window_differs:
            parts.append("global" if kind.window is None else f"sliding window {kind.window:,}")
        return ", ".join(parts)

    return [(label(kind), count, first) for kind, count, first in counts]


def first_block_of_each_kind(table: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """The rows of `table` (a layer_table or validate() result of `spec`) outside the blocks
    (block -1) and those of the first block of each kind: block 0 alone when all blocks are
    alike; blocks 0 and 3 of DeepSeek-V3 (dense, MoE)."""
    firsts = [first for _, _, first in block_kind_counts(spec)]
    return table[(table["block"] < 0) | table["block"].isin(firsts)]


def block_structure(spec: ModelSpec, kind: BlockKind | None = None) -> list[LayerDef]:
    """The rows of one block of `kind` (default: block 0's), in execution order."""
    kind = block_kind(spec, 0) if kind is None else kind
    attn = _mla_rows(spec) if spec.is_mla else _attention_rows(spec)
    mlp = _mlp_rows(spec, moe=kind.moe)
    attn_norm = LayerDef("attn_norm", "norm", norm_params(spec), block=True)
    mlp_norm = LayerDef("mlp_norm", "norm", norm_params(spec), block=True)
    if spec.norm_position == "post":
        return [*attn, attn_norm, *mlp, mlp_norm]
    if spec.sandwich_norm:  # Gemma: norm in, sublayer, norm out, residual add
        post = [LayerDef(f"{n}_post_norm", "norm", norm_params(spec), block=True)
                for n in ("attn", "mlp")]
        return [attn_norm, *attn, post[0], mlp_norm, *mlp, post[1]]
    return [attn_norm, *attn, mlp_norm, *mlp]


def _attention_rows(spec: ModelSpec) -> list[LayerDef]:
    h, hd = spec.d_model, spec.d_head
    q_out, kv_out = spec.n_heads * hd, spec.kv_heads * hd
    rows = [
        LayerDef("attn.q", "linear", h * q_out + (q_out if spec.qkv_bias else 0), block=True),
        LayerDef("attn.k", "linear", h * kv_out + (kv_out if spec.qkv_bias else 0), block=True),
        LayerDef("attn.v", "linear", h * kv_out + (kv_out if spec.qkv_bias else 0), block=True),
    ]
    if spec.qk_norm:  # one scale of head_dim shared by every head (Qwen3, Gemma 3)
        rows += [LayerDef("attn.q_norm", "norm", norm_params(spec, hd), block=True),
                 LayerDef("attn.k_norm", "norm", norm_params(spec, hd), block=True)]
    return rows + _attention_core_rows(spec, q_out)


def _attention_core_rows(spec: ModelSpec, out_in: int) -> list[LayerDef]:
    return [
        LayerDef("attn.scores", "attention", 0, block=True),
        LayerDef("attn.softmax", "softmax", 0, block=True),
        LayerDef("attn.context", "attention", 0, block=True),
        LayerDef("attn.out", "linear", out_in * spec.d_model
                 + (spec.d_model if spec.attn_out_bias else 0), block=True),
    ]


def _mla_rows(spec: ModelSpec) -> list[LayerDef]:
    """F21: multi-head latent attention (DeepSeek-V2, Sec. 2.1; DeepSeek-V3 config): the query
    through a low-rank bottleneck with a norm (q_a, q_a_norm, q_b), the keys and values from
    one latent of kv_lora_rank plus a rotary key shared by all heads (kv_a, kv_a_norm), the
    latent decompressed to per-head keys and values (kv_b), the output from heads · v_head_dim.
    (DeepSeek's norms are RMSNorms: a scale only.)"""
    h, H = spec.d_model, spec.n_heads
    q_lora, kv_lora = spec.q_lora_rank, int(spec.kv_lora_rank or 0)
    nope, rope, v = int(spec.qk_nope_head_dim or 0), int(spec.qk_rope_head_dim or 0), spec.d_value
    rows = ([LayerDef("attn.q_a", "linear", h * q_lora, block=True),
             LayerDef("attn.q_a_norm", "norm", norm_params(spec, q_lora), block=True),
             LayerDef("attn.q_b", "linear", q_lora * H * (nope + rope), block=True)]
            if q_lora else [LayerDef("attn.q", "linear", h * H * (nope + rope), block=True)])
    rows += [LayerDef("attn.kv_a", "linear", h * (kv_lora + rope), block=True),
             LayerDef("attn.kv_a_norm", "norm", norm_params(spec, kv_lora), block=True),
             LayerDef("attn.kv_b", "linear", kv_lora * H * (nope + v), block=True)]
    return rows + _attention_core_rows(spec, H * v)


def outer_structure(spec: ModelSpec) -> tuple[list[LayerDef], list[LayerDef]]:
    """(rows before the blocks: embeddings; rows after: final norm, pooler, head, loss, then
    the multi-token prediction modules, F24)."""
    h = spec.d_model
    before = [LayerDef("embed.tokens", "embedding", spec.vocab_size * h, block=False)]
    if spec.position == "learned":
        before.append(LayerDef("embed.positions", "embedding",
                               (spec.max_seq_len + spec.position_offset) * h, block=False))
    if spec.n_token_types:
        before.append(LayerDef("embed.token_types", "embedding", spec.n_token_types * h,
                               block=False))
    if spec.embedding_norm:
        before.append(LayerDef("embed.norm", "norm", norm_params(spec), block=False))

    after: list[LayerDef] = []
    if spec.final_norm:
        after.append(LayerDef("final_norm", "norm", norm_params(spec), block=False))
    if spec.pooler:
        after.append(LayerDef("pooler", "linear", h * h + h, block=False))
    if spec.lm_head:
        after.append(LayerDef("lm_head", "linear",
                               0 if spec.tied_embeddings else spec.vocab_size * h, block=False))
        after.append(LayerDef("loss", "loss", 0, block=False))  # cross-entropy (training only)
    for j in range(spec.n_mtp_layers):
        after += _mtp_rows(spec, f"mtp.{j}.")
    return before, after


def _mtp_rows(spec: ModelSpec, group: str) -> list[LayerDef]:
    """F24: one multi-token prediction module (DeepSeek-V3, Sec. 2.2): RMSNorm of the next
    token's embedding (enorm) and of the previous depth's hidden state (hnorm), their
    concatenation projected 2h -> h (eh_proj), one transformer block (a MoE block when the
    model's last blocks are), a final norm, and the LM head and embedding it shares with the
    main model (0 parameters here, FLOPs counted), then its own cross-entropy."""
    h = spec.d_model
    block = [replace(r, block=False, group=group)
             for r in block_structure(spec, block_kind(spec, spec.n_layers))]
    return [LayerDef("enorm", "norm", norm_params(spec), False, group=group),
            LayerDef("hnorm", "norm", norm_params(spec), False, group=group),
            LayerDef("eh_proj", "linear", 2 * h * h, False, group=group),
            *block,
            LayerDef("final_norm", "norm", norm_params(spec), False, group=group),
            LayerDef("lm_head", "linear", 0, False, group=group),
            LayerDef("loss", "loss", 0, False, group=group)]


def block_linear_names(spec: ModelSpec) -> tuple[str, ...]:
    """The linear rows of every kind of block, in order (the rows LoRA can adapt)."""
    names: dict[str, None] = {}
    for kind, _, _ in block_kind_counts(spec):
        names.update((r.name, None) for r in block_structure(spec, kind) if r.kind == "linear")
    return tuple(names)


def lora_target_names(spec: ModelSpec, targets: Any) -> frozenset[str]:
    """The block-relative linear rows that `targets` adapt: aliases (LORA_TARGET_ALIASES:
    "all-linear" every block linear, "attention" the attn.* ones, "mlp" the MLP's and the
    experts') or row names (block_linear_names). InputError names `lora_targets` otherwise.
    Llama: "all-linear" = q, k, v, out, up, gate, down; "attention" = q, k, v, out."""
    if isinstance(targets, str):
        targets = (targets,)
    if not isinstance(targets, (tuple, list)) or not targets:
        raise InputError("lora_targets", f"{clip(targets)}; allowed: a non-empty tuple of "
                         f"{', '.join(LORA_TARGET_ALIASES)} or linear row names")
    linears = block_linear_names(spec)
    out: set[str] = set()
    for target in targets:
        key = str(target).strip().lower()
        if key == "all-linear":
            out.update(linears)
        elif key == "attention":
            out.update(n for n in linears if n.startswith("attn."))
        elif key == "mlp":
            out.update(n for n in linears if n.startswith(("mlp.", "moe.")))
        elif key in linears:
            out.add(key)
        else:
            raise InputError("lora_targets", f"unknown {clip(target)} for {spec.name}; "
                             f"allowed: {', '.join(LORA_TARGET_ALIASES + linears)}")
    return frozenset(out)


def lora_adapter_count(spec: ModelSpec, name: str) -> int:
    """Adapters on one linear row: one per expert of a routed-experts row (E), per shared
    expert (n_shared_experts), else 1."""
    if name.startswith("moe.experts"):
        return spec.n_experts
    if name.startswith("moe.shared"):
        return spec.n_shared_experts
    return 1


def lora_params(spec: ModelSpec, name: str, *, rank: int) -> int:
    """P30: trainable parameters of the LoRA adapter on linear row `name` (k → n):
    A (k × r) and B (r × n), r·(k + n) per adapted matrix (Hu et al. 2021, Sec. 4.1).
    Llama-2-7B attn.q (4096 → 4096) at r = 16: 16 · 8192 = 131,072."""
    d_in, d_out = linear_dims(spec, name)
    return lora_adapter_count(spec, name) * rank * (d_in + d_out)


def _with_lora_rows(spec: ModelSpec, rows: list[LayerDef], targets: frozenset[str],
                    rank: int) -> list[LayerDef]:
    """`rows` with a row `{name}.lora` (kind "lora") after every adapted linear row."""
    out: list[LayerDef] = []
    for row in rows:
        out.append(row)
        if row.kind == "linear" and row.name in targets:
            out.append(LayerDef(f"{row.name}.lora", "lora", lora_params(spec, row.name,
                                                                        rank=rank),
                                row.block, row.active_frac, row.group))
    return out


def layer_structure(spec: ModelSpec, kind: BlockKind | None = None) -> list[LayerDef]:
    """The rows of the table with one block: embeddings, the rows of a block of `kind`
    (default: block 0's kind), then the head and the MTP modules."""
    before, after = outer_structure(spec)
    return [*before, *block_structure(spec, kind), *after]


def _mlp_rows(spec: ModelSpec, *, moe: bool) -> list[LayerDef]:
    h = spec.d_model

    def ffn(prefix: str, n: int, frac: float, ff: int) -> list[LayerDef]:
        bias_ff, bias_h = (ff, h) if spec.mlp_bias else (0, 0)
        rows = [LayerDef(f"{prefix}.up", "linear", n * (h * ff + bias_ff), True, frac)]
        if spec.gated_mlp:
            rows.append(LayerDef(f"{prefix}.gate", "linear", n * (h * ff + bias_ff), True, frac))
        rows.append(LayerDef(f"{prefix}.act", "activation", 0, True, frac))
        rows.append(LayerDef(f"{prefix}.down", "linear", n * (ff * h + bias_h), True, frac))
        return rows

    if not moe:
        return ffn("mlp", 1, 1.0, spec.d_ff)
    ff = spec.expert_d_ff
    rows = [LayerDef("moe.router", "router", h * spec.n_experts, block=True)]
    rows += ffn("moe.experts", spec.n_experts, spec.experts_top_k / spec.n_experts, ff)
    if spec.n_shared_experts:
        rows += ffn("moe.shared", spec.n_shared_experts, 1.0, ff)
    return rows


def ffn_width(spec: ModelSpec, name: str) -> int:
    """Inner size of an MLP row: d_ff for the dense MLP, moe_d_ff for routed and shared
    experts."""
    return spec.d_ff if name.startswith("mlp.") else spec.expert_d_ff


def norm_width(spec: ModelSpec, name: str) -> int:
    """Elements per token a norm row normalizes: h, the query or key latent of MLA, or every
    query (key) head for a per-head QK-norm."""
    if name == "attn.q_a_norm":
        return int(spec.q_lora_rank or 0)
    if name == "attn.kv_a_norm":
        return int(spec.kv_lora_rank or 0)
    if name == "attn.q_norm":
        return spec.n_heads * spec.d_head
    if name == "attn.k_norm":
        return spec.kv_heads * spec.d_head
    return spec.d_model


# ---- the numbers: FLOPs and bytes per row --------------------------------------------------------
@dataclass(frozen=True)
class _Shape:
    """Batch and lengths of one pass; arrays broadcast over a grid of configurations."""

    batch: np.ndarray
    q_len: np.ndarray  # tokens processed per sequence in this pass
    kv_len: np.ndarray  # keys each query attends to
    decode: bool = False  # one new token per sequence against a KV cache

    @property
    def n_tokens(self) -> np.ndarray:
        return self.batch * self.q_len


def window_keys(*, kv_len, window: int | None):
    """F23: keys one query of a block attends to: the context, or at most the window in a
    sliding-window block (Beltagy et al. 2020; Gemma 2, Sec. 2). Gemma 2 at 8,192 tokens:
    local blocks min(8192, 4096) = 4,096 keys, global blocks 8,192."""
    return kv_len if window is None else np.minimum(kv_len, window)


def linear_dims(spec: ModelSpec, name: str) -> tuple[int, int]:
    """(d_in, d_out) of a block's or an MTP module's projection row (F1, F21, F24)."""
    h, H, hd = spec.d_model, spec.n_heads, spec.d_head
    if name.startswith(("mlp.", "moe.")):
        ff = ffn_width(spec, name)
        return (ff, h) if name.endswith(".down") else (h, ff)
    kv_lora, rope = int(spec.kv_lora_rank or 0), int(spec.qk_rope_head_dim or 0)
    nope = int(spec.qk_nope_head_dim or 0)
    dims = {
        "attn.q": (h, H * hd), "attn.k": (h, spec.kv_heads * hd),
        "attn.v": (h, spec.kv_heads * hd), "attn.out": (H * spec.d_value, h),
        "attn.q_a": (h, int(spec.q_lora_rank or 0)), "attn.q_b": (int(spec.q_lora_rank or 0),
                                                                 H * hd),
        "attn.kv_a": (h, kv_lora + rope), "attn.kv_b": (kv_lora, H * (nope + spec.d_value)),
        "eh_proj": (2 * h, h), "pooler": (h, h), "lm_head": (h, spec.vocab_size),
        "moe.router": (h, spec.n_experts),
    }
    return dims[name]


def attention_head_dims(spec: ModelSpec, *, decode: bool) -> tuple[int, int]:
    """(head size of QKᵀ, head size of softmax·V). Standard attention: d_head both. MLA
    (F21) in training and prefill runs on decompressed heads: nope + rope and v_head_dim
    (DeepSeek-V3: 192 and 128). MLA decode is counted with the absorbed weights, as serving
    engines run it (DeepSeek-V2 Sec. 2.1.3; FlashMLA, vLLM, SGLang): each query head is moved
    into the latent space, scores against kv_lora_rank + qk_rope_head_dim cached elements
    (576) and the context is taken in the latent (512), both per cached token; kv_b's two
    halves act on the one new token (its FLOPs are those of kv_b on one token)."""
    if spec.is_mla and decode:
        kv_lora = int(spec.kv_lora_rank or 0)
        return kv_lora + int(spec.qk_rope_head_dim or 0), kv_lora
    return spec.d_head, spec.d_value


def lora_flops(spec: ModelSpec, name: str, *, n_tokens, rank: int):
    """P30: forward FLOPs of the LoRA adapter on linear row `name` (k → n) for n_tokens
    tokens: x·A then (x·A)·B, 2·tokens·r·(k + n) (routed experts: the tokens routed through).

    # [T, k] @ [k, r] -> [T, r];  [T, r] @ [r, n] -> [T, n]
    """
    d_in, d_out = linear_dims(spec, name)
    return 2.0 * tokens_through(spec, name, n_tokens) * rank * (d_in + d_out)


def _row_fwd_flops(spec: ModelSpec, row: LayerDef, shp: _Shape, causal_half: bool,
                   kind: BlockKind | None = None, lora_rank: int = 0):
    """Forward FLOPs of one row (F1–F5, F21, F23, F24; a LoRA adapter, P30)."""
    h = spec.d_model
    T = shp.n_tokens
    name = row.name
    if row.kind == "embedding":
        return 0.0 * T  # a lookup; NB: the position add (T·h) is not counted
    if row.kind == "norm":
        return norm_flops(n_tokens=T, d_model=norm_width(spec, name), norm=spec.norm)
    if row.kind in ("attention", "softmax"):
        return _attention_flops(spec, row, shp, causal_half and spec.causal,
                                None if kind is None else kind.window)
    if name == "pooler":  # dense + tanh on the first token of each sequence
        return linear_flops(n_tokens=shp.batch, d_in=h, d_out=h)
    if name == "lm_head":
        return linear_flops(n_tokens=T, d_in=h, d_out=spec.vocab_size)
    if name == "loss":
        return float(SOFTMAX_FLOPS_PER_ELEMENT) * T * spec.vocab_size  # log-softmax over logits
    if row.kind == "router":
        return linear_flops(n_tokens=T, d_in=h, d_out=spec.n_experts)
    if row.kind == "lora":
        return lora_flops(spec, name.removesuffix(".lora"), n_tokens=T, rank=lora_rank)
    routed = tokens_through(spec, name, T)
    if name.endswith(".act"):
        return activation_flops(n_tokens=routed, d_ff=ffn_width(spec, name), act=spec.mlp_act,
                                gated=spec.gated_mlp)
    if name.startswith(("mlp.", "moe.")):  # up, gate, down: h·ff each
        return linear_flops(n_tokens=routed, d_in=h, d_out=ffn_width(spec, name))
    d_in, d_out = linear_dims(spec, name)
    return linear_flops(n_tokens=T, d_in=d_in, d_out=d_out)


def _attention_flops(spec: ModelSpec, row: LayerDef, shp: _Shape, half: bool,
                     window: int | None):
    """QKᵀ, softmax or softmax·V of one block (F3-F5). A sliding-window block attends to
    min(context, window) keys per query (F23); counted causally ("half") its prefill covers the
    band, T·W − W²/2 query-key pairs when T > W (the triangle T²/2 otherwise), so the share
    of the T × min(T, W) rectangle is 1 − min(T, W) / (2T)."""
    kw = dict(batch=shp.batch, q_len=shp.q_len, n_heads=spec.n_heads)
    qk_dim, v_dim = attention_head_dims(spec, decode=shp.decode)
    head_dim = v_dim if row.name == "attn.context" else qk_dim
    if window is None:
        if row.kind == "softmax":
            return softmax_flops(**kw, kv_len=shp.kv_len) * (0.5 if half else 1.0)
        return attention_matmul_flops(**kw, kv_len=shp.kv_len, head_dim=head_dim,
                                      causal_half=half)
    keys = window_keys(kv_len=shp.kv_len, window=window)
    share = 1.0 - keys / (2.0 * shp.kv_len) if half else 1.0
    if row.kind == "softmax":
        return softmax_flops(**kw, kv_len=keys) * share
    return attention_matmul_flops(**kw, kv_len=keys, head_dim=head_dim) * share


def _row_activation_bytes(spec: ModelSpec, row: LayerDef, shp: _Shape, *, a: float,
                          recompute: Recompute, flash: bool, first_in_block: bool,
                          fused_swiglu: bool = False, kind: BlockKind | None = None,
                          trainable: frozenset[str] | None = None, lora_rank: int = 0):
    """Bytes one row saves for backward (F14–F17; Korthikanti et al. 2022, Sec. 4.1).

    Each row saves the inputs its backward needs; a tensor shared by several rows (the norm
    output feeding q, k and v) is counted once, on the first. Without recompute, dropout and
    flash attention, a GPT block sums to s·b·h·(34 + 5·a·s/h) bytes at 2 bytes per element,
    Korthikanti's Eq. 2.

    With a frozen base (P31) `trainable` names the linear rows that carry an adapter (None:
    every weight trains). A linear row's input is kept only for a weight gradient: a frozen
    linear's backward is dgrad = dy·Wᵀ, which needs W and not x, so an input no trainable row
    reads is not saved; an adapted row's input is (LoRA's A needs it), and its adapter row
    keeps the [T, r] product x·A that B's gradient needs. Norms, attention, activations and
    the loss save what they do in full training (the gradient still flows through them).
    """
    def reads(*names: str) -> bool:  # does a trainable row read this input?
        return trainable is None or any(n in trainable for n in names)

    h, hd = spec.d_model, spec.d_head
    T, b = shp.n_tokens, shp.batch
    drop = spec.dropout > 0
    keys = window_keys(kv_len=shp.kv_len, window=None if kind is None else kind.window)
    scores = b * spec.n_heads * shp.q_len * keys
    name = row.name
    if row.block and recompute == "full":
        # Only the block input is kept; everything else is recomputed (Korthikanti Sec. 4.2).
        return T * h * a if first_in_block else 0.0 * T
    if row.kind == "embedding":
        ids = shp.q_len * INDEX_BYTES if name == "embed.positions" else T * INDEX_BYTES
        mask = T * h * DROPOUT_MASK_BYTES if (drop and _last_embedding_row(spec) == name) else 0
        return ids + mask
    if row.kind == "norm":
        mask = T * h * DROPOUT_MASK_BYTES if (drop and name == "embed.norm") else 0
        return T * norm_width(spec, name) * a + mask  # the norm's input
    if row.kind == "lora":  # x·A, [tokens, r], for B's weight gradient (P31)
        return tokens_through(spec, name.removesuffix(".lora"), T) * lora_rank * a
    if name in ("attn.q", "attn.q_a"):
        # normed input, shared with k and v (MLA: with kv_a)
        return T * h * a if reads(*_ATTN_INPUT_READERS) else 0.0 * T
    if name in ("attn.q_b", "attn.kv_b", "eh_proj"):
        # the normed latent (eh_proj: [e; h])
        return T * linear_dims(spec, name)[0] * a if reads(name) else 0.0 * T
    if name in ("attn.k", "attn.v", "attn.kv_a", "moe.shared.up") or name.endswith(".gate"):
        return 0.0 * T  # input already counted on the row that first reads it
    if name == "attn.scores":
        return T * (spec.n_heads + spec.kv_heads) * hd * a  # q and k
    if name == "attn.softmax":
        if flash or recompute == "selective":
            return 0.0 * T
        extra = scores * (DROPOUT_MASK_BYTES + a) if drop else 0.0
        return scores * a + extra  # softmax output (+ dropout mask and output)
    if name == "attn.context":
        lse = b * spec.n_heads * shp.q_len * LOGSUMEXP_BYTES if flash else 0.0
        return T * spec.kv_heads * spec.d_value * a + lse  # v (+ log-sum-exp of fused kernel)
    if name == "attn.out":
        return (T * spec.n_heads * spec.d_value * a if reads(name) else 0.0 * T) + (
            T * h * DROPOUT_MASK_BYTES if drop else 0)
    if name == "moe.router":
        # normed input (shared with the shared experts) + the fp32 router probabilities the
        # softmax saves (T·E·4 bytes; HF Mixtral and Megatron both route in fp32; measured in
        # tests/test_measure.py, docs/validation.md); a frozen router (P31) still saves the
        # probabilities: the gradient flows through the routing weights
        shared = reads("moe.router", "moe.shared.up", "moe.shared.gate")
        return (T * h * a if shared else 0.0 * T) + T * spec.n_experts * 4.0
    routed = tokens_through(spec, name, T)
    if name.endswith(".up"):
        # normed input (gathered per expert for routed experts)
        prefix = name.removesuffix(".up")
        return routed * h * a if reads(name, prefix + ".gate") else 0.0 * T
    ff = ffn_width(spec, name)
    if name.endswith(".act"):
        # GELU saves its input; eager SwiGLU saves gate output, SiLU output and up output; a
        # fused SwiGLU kernel (Megatron's bias_swiglu, Transformer Engine, torch.compile)
        # saves only its input, gate and up, and recomputes the SiLU (F16b).
        return routed * ff * a * ((2 if fused_swiglu else 3) if spec.gated_mlp else 1)
    if name.endswith(".down"):
        # Routed experts: the routing-weight multiply Σ_k w_k·y_k also saves the expert
        # outputs y (T·k·h), which the router's gradient needs (measured, docs/validation.md).
        combine = routed * h * a if name.startswith("moe.experts") else 0.0
        own = routed * ff * a if reads(name) else 0.0 * T
        return own + combine + (T * h * DROPOUT_MASK_BYTES if drop else 0)
    if name == "pooler":
        # tanh output + the first-token input, which is a view x[:, 0]: autograd saves the
        # view, so the whole last hidden state [b, s, h] stays alive (measured with
        # saved_tensors_hooks, docs/validation.md; HF BertPooler does the same)
        return T * h * a + b * h * a
    if name == "lm_head":
        return T * h * a if reads(name) else 0.0 * T
    if name == "loss":
        # NB: cross-entropy saves the log-softmax of the logits, upcast to fp32 (torch autocast).
        return T * spec.vocab_size * LOGITS_BYTES
    raise AssertionError(f"no activation rule for row {name!r}")  # pragma: no cover


def tokens_through(spec: ModelSpec, name: str, n_tokens):
    """Token-passes through an MLP row: routed experts see each token top_k times (balanced
    routing, NB), the shared experts n_shared_experts times, a dense MLP once."""
    if name.startswith("moe.experts"):
        return n_tokens * spec.experts_top_k
    if name.startswith("moe.shared"):
        return n_tokens * spec.n_shared_experts
    return n_tokens


def _last_embedding_row(spec: ModelSpec) -> str:
    names = [r.name for r in layer_structure(spec) if r.kind == "embedding"]
    return "embed.norm" if spec.embedding_norm else names[-1]


def _row_kv_bytes(spec: ModelSpec, row: LayerDef, shp: _Shape, kv_bytes: float,
                  kind: BlockKind | None = None):
    """F18: KV cache of one layer, b · kv_len · n_kv_heads · head_dim · bytes, for K and for V.
    F21: with MLA the cache is the latent and the shared rotary key, b · kv_len ·
    (kv_lora_rank + qk_rope_head_dim) · bytes, on the kv_a row that produces them. F23: a
    sliding-window block keeps only its last `window` tokens (HF's hybrid cache, vLLM)."""
    keys = window_keys(kv_len=shp.kv_len, window=None if kind is None else kind.window)
    if spec.is_mla:
        if row.name == "attn.kv_a":
            return shp.batch * keys * spec.kv_cache_elements_per_token * kv_bytes
    elif row.name in ("attn.k", "attn.v"):
        return shp.batch * keys * spec.kv_heads * spec.d_head * kv_bytes
    return 0.0 * shp.batch


def kv_cache_bytes(spec: ModelSpec, *, context_len, bytes_per_element: float):
    """F18, F21, F23: KV cache of one sequence of `context_len` tokens over all blocks:
    Σ over block kinds of blocks · min(context, window) · kv_cache_elements_per_token · bytes.
    DeepSeek-V3 (MLA) in bf16: 61 · (512 + 64) · 2 = 70,272 bytes per token. Gemma 2 2B at
    8,192 tokens: 13 global blocks of 8,192 and 13 local ones of 4,096 tokens, each
    2 · 4 · 256 elements per token."""
    total = 0.0
    for kind, count, _ in block_kind_counts(spec):
        keys = window_keys(kv_len=context_len, window=kind.window)
        total = total + count * keys * spec.kv_cache_elements_per_token * bytes_per_element
    return total


def _weight_bytes_per_param(row: LayerDef, policy: PrecisionPolicy,
                            adapter: str = "none") -> float:
    """Bytes per stored weight: matmul layers at the policy's linear bytes, norms and
    embeddings at its other bytes; a LoRA adapter trains in the policy's 16-bit weights (bf16
    in mixed precision); under QLoRA every linear but the LM head is NF4 (P31: Hugging Face's
    bitsandbytes integration keeps the output layer in 16 bits; NB: the router too here)."""
    if row.kind == "lora":
        return policy.weight_bytes
    if row.kind == "linear" and row.name != "lm_head":
        return frozen_linear_weight_bytes(policy, adapter)
    return policy.linear_weight_bytes if row.kind in ("linear", "router") else policy.weight_bytes


def _validate_sizes(spec: ModelSpec, seq_len: Any, batch_size: Any) -> tuple[int, int]:
    """seq_len and batch_size as ints: whole numbers (never bools or arrays) within bounds."""
    seq = check_int(seq_len, "seq_len", maximum=MAX_SEQ_LEN)
    batch = check_int(batch_size, "batch_size", maximum=MAX_BATCH_SIZE)
    if spec.position == "learned" and seq > spec.max_seq_len:
        raise InputError(
            "seq_len", f"{seq} exceeds {spec.name}'s max_seq_len={spec.max_seq_len} "
            "(learned position embeddings cannot go further)"
        )
    return seq, batch


# ---- the public table ---------------------------------------------------------------------------
def layer_table(
    model_or_name: ModelSpec | str,
    *,
    seq_len: int,
    batch_size: int,
    mode: Mode = "train",
    precision: str | PrecisionPolicy = "bf16",
    optimizer: str = "adamw",
    recompute: Recompute = "none",
    flash_attention: bool = False,
    fused_swiglu: bool = False,
    causal_attention: CausalCounting = "full",
    kv_cache_dtype: str | None = None,
    adapter: Adapter = "none",
    lora_rank: int = DEFAULT_LORA_RANK,
    lora_targets: Any = DEFAULT_LORA_TARGETS,
) -> pd.DataFrame:
    """One row per layer with parameters, FLOPs and bytes, in SI units.

    mode="train": one step over `batch_size` sequences of `seq_len` tokens; forward, backward,
    gradients, optimizer state and saved activations. mode="inference": the prefill of the same
    batch (fwd_flops), one decode step at context `seq_len` (decode_flops), and the KV cache of
    `seq_len` tokens; no gradients, optimizer state or saved activations. Encoders (BERT) have
    no decode step (NaN) and no KV cache. `fused_swiglu` counts a fused SwiGLU kernel's saved
    activations (its input only, F16b) instead of eager PyTorch's; the measured validation
    keeps eager counting.

    Columns: layer, block, kind, n_params, n_active_params, fwd_flops, bwd_flops, weight_bytes,
    grad_bytes, optimizer_bytes, activation_bytes, kv_cache_bytes (+ decode_flops in inference),
    is_matmul. Formulas: docs/formulas.md F1–F18, F19–F24 (block kinds, MLA, windows, MTP).

    A model whose blocks differ (dense-first MoE, local and global attention) gets every
    block's own rows; `block` is the block index. The multi-token prediction modules are rows
    `mtp.{j}.*` after the head, in training only.

    Fine-tuning with a frozen base (mode="train", docs/planning.md P30-P31): adapter="lora"
    adds a row `{name}.lora` (kind "lora", r·(k + n) parameters, P30) after every linear row
    `lora_targets` names (lora_target_names), trained in full mixed precision (weights,
    gradients, optimizer state and master copy); every base row keeps its weights only, no
    gradients or optimizer state, and a frozen linear's backward is its input gradient alone
    (bwd_flops = 1 × forward instead of 2 ×). adapter="qlora" also stores the base linears in
    4-bit NF4 (0.51587 bytes per weight, Dettmers et al. 2023) and computes in bf16.
    """
    spec = model(model_or_name)
    if mode not in ("train", "inference"):
        raise InputError("mode", f"{clip(mode)} is not allowed; use 'train' or 'inference'")
    if recompute not in ("none", "selective", "full"):
        raise InputError("recompute", f"{clip(recompute)}; allowed: none, selective, full")
    if causal_attention not in ("full", "half"):
        raise InputError("causal_attention", f"{clip(causal_attention)}; allowed: full, half")
    flash_attention = check_bool(flash_attention, "flash_attention")
    fused_swiglu = check_bool(fused_swiglu, "fused_swiglu")
    seq_len, batch_size = _validate_sizes(spec, seq_len, batch_size)
    policy = precision_policy(precision, mode=mode)
    if adapter not in ADAPTERS:
        raise InputError("adapter", f"{clip(adapter)}; allowed: {', '.join(ADAPTERS)}")
    frozen = adapter != "none" and mode == "train"
    lora_rank = check_int(lora_rank, "lora_rank", maximum=MAX_LORA_RANK)
    trainable = lora_target_names(spec, lora_targets) if frozen else None
    kv_bytes = dtype_bytes(kv_cache_dtype, field="kv_cache_dtype") if kv_cache_dtype else (
        policy.activation_bytes)
    train = mode == "train"
    opt_bytes = (optimizer_state_bytes(optimizer) + policy.master_bytes) if train else 0.0

    before, after = outer_structure(spec)
    if not train:  # the loss and the multi-token prediction modules are training-only (F24)
        after = [r for r in after if r.kind != "loss" and not r.group]
    kinds = block_kind_counts(spec)
    templates = [block_structure(spec, kind) for kind, _, _ in kinds]
    if trainable is not None:
        templates = [_with_lora_rows(spec, rows, trainable, lora_rank) for rows in templates]
        after = _with_lora_rows(spec, after, trainable, lora_rank)
    mtp_kind = block_kind(spec, spec.n_layers)
    full = _Shape(np.asarray(batch_size, float), np.asarray(seq_len, float),
                  np.asarray(seq_len, float))
    decode = _Shape(full.batch, np.asarray(1.0), full.kv_len, decode=True)
    first_block_row = templates[0][0].name
    half = causal_attention == "half"

    def numbers(row: LayerDef, kind: BlockKind | None) -> dict[str, Any]:
        fwd = float(_row_fwd_flops(spec, row, full, half, kind, lora_rank))
        act = float(_row_activation_bytes(
            spec, row, full, a=policy.activation_bytes, recompute=recompute,
            flash=flash_attention, first_in_block=row.name == first_block_row,
            fused_swiglu=fused_swiglu, kind=kind, trainable=trainable,
            lora_rank=lora_rank)) if train else 0.0
        # a frozen base row (P31) keeps no gradient or optimizer state, and a frozen matmul's
        # backward is its input gradient alone (1 × forward, F2)
        fixed = frozen and row.kind != "lora"
        bwd = (1.0 if fixed and row.kind in ("linear", "router") else 2.0) * fwd
        return dict(
            layer=row.full_name, block=row.block, kind=row.kind, n_params=row.n_params,
            n_active_params=row.n_params * row.active_frac, fwd_flops=fwd,
            bwd_flops=bwd if train else 0.0,
            weight_bytes=row.n_params * _weight_bytes_per_param(
                row, policy, adapter if frozen else "none"),
            grad_bytes=row.n_params * policy.grad_bytes if train and not fixed else 0.0,
            optimizer_bytes=0.0 if fixed else row.n_params * opt_bytes,
            activation_bytes=act,
            # An encoder neither decodes nor keeps a KV cache: its decode column is NaN.
            kv_cache_bytes=float(_row_kv_bytes(spec, row, full, kv_bytes, kind))
            if spec.causal and not train else 0.0,
            # NB: one query per sequence reads every cached key: nothing to halve in decode.
            decode_flops=float(_row_fwd_flops(spec, row, decode, False, kind))
            if spec.causal else float("nan"),
        )

    template = ([numbers(r, None) for r in before]
                + [numbers(r, kind) for (kind, _, _), rows in zip(kinds, templates, strict=True)
                   for r in rows]
                + [numbers(r, mtp_kind if r.group else None) for r in after])
    df = _expand_blocks(pd.DataFrame(template), n_before=len(before),
                        block_rows=[len(t) for t in templates],
                        kind_of_block=block_kind_index(spec))
    df["is_matmul"] = df["kind"].isin(MATMUL_KINDS)
    if train:
        df = df.drop(columns="decode_flops")
    return df


def _expand_blocks(template: pd.DataFrame, *, n_before: int, block_rows: list[int],
                   kind_of_block: np.ndarray) -> pd.DataFrame:
    """The table from its template (outer rows before, one block per kind, outer rows after):
    block i gets the rows of kind kind_of_block[i], named blocks.{i}.*, `block` = i.

    One positional take, not n_layers concatenations: 10^5 layers (MAX_N_LAYERS) take ~1 s."""
    lens = np.asarray(block_rows, dtype=int)
    starts = n_before + np.concatenate([[0], np.cumsum(lens)[:-1]])
    per_block = lens[kind_of_block]
    n_layers, n_rows = len(kind_of_block), int(per_block.sum())
    block_of_row = np.repeat(np.arange(n_layers), per_block)
    within = np.arange(n_rows) - np.repeat(np.cumsum(per_block) - per_block, per_block)
    take = np.repeat(starts[kind_of_block], per_block) + within
    after = np.arange(n_before + int(lens.sum()), len(template))
    out = template.iloc[np.concatenate([np.arange(n_before), take, after])].reset_index(
        drop=True)
    names = template["layer"].tolist()
    out["layer"] = (names[:n_before]
                    + [f"blocks.{b}.{names[i]}" for b, i in zip(block_of_row.tolist(),
                                                                take.tolist(), strict=True)]
                    + [names[i] for i in after])
    out["block"] = np.concatenate([np.full(n_before, -1), block_of_row,
                                   np.full(len(after), -1)]).astype(int)
    return out


def totals(table: pd.DataFrame) -> pd.Series:
    """Column sums of a layer table (the model totals), numeric columns only."""
    numeric = table.select_dtypes("number").drop(columns=["block"], errors="ignore")
    return numeric.sum()
