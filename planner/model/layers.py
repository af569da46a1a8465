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

The per-op formula functions (linear_flops, attention_matmul_flops, ...) take numpy arrays, so
callers can evaluate a grid at once; `layer_table` is one configuration (scalars), and
`planner.plan.memory` / `planner.plan.steptime` build their grids from it at batch 1, since
everything is
linear in the batch for a fixed sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from planner.errors import InputError, check_bool, check_int, clip
from planner.model.precision import (
    Mode,
    PrecisionPolicy,
    dtype_bytes,
    optimizer_state_bytes,
    precision_policy,
)
from planner.model.spec import MAX_SEQ_LEN, ModelSpec, model

Recompute = Literal["none", "selective", "full"]
CausalCounting = Literal["full", "half"]

MATMUL_KINDS = frozenset({"linear", "attention", "router"})

# NB: element-wise FLOPs per element are conventions, not measurements (docs/formulas.md F5).
LAYERNORM_FLOPS_PER_ELEMENT = 7  # mean, subtract, square, sum, normalize, scale, shift
RMSNORM_FLOPS_PER_ELEMENT = 4  # square, sum, normalize, scale
SOFTMAX_FLOPS_PER_ELEMENT = 5  # max, subtract, exp, sum, divide
ACTIVATION_FLOPS_PER_ELEMENT = {"gelu": 8, "silu": 4, "relu": 1}
INDEX_BYTES = 8  # int64 token / position ids saved by embedding backward
DROPOUT_MASK_BYTES = 1  # torch saves a bool mask per element
LOGITS_BYTES = 4  # fp32 log-probabilities saved by cross-entropy
LOGSUMEXP_BYTES = 4  # fp32 log-sum-exp per query row saved by fused attention
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


def norm_params(spec: ModelSpec) -> int:
    """LayerNorm has a scale and a bias (2h); RMSNorm only a scale (h)."""
    return (2 if spec.norm == "layernorm" else 1) * spec.d_model


# ---- the structure: which rows exist ------------------------------------------------------------
@dataclass(frozen=True)
class LayerDef:
    """One row of the per-layer table, independent of batch and sequence length."""

    name: str  # relative to the block ("attn.q") inside blocks, absolute outside ("lm_head")
    kind: str  # embedding, norm, linear, attention, softmax, activation, router, loss
    n_params: int
    block: bool  # True: repeated in every block as `blocks.{i}.{name}`
    active_frac: float = 1.0  # share of the parameters each token uses (MoE experts)


def layer_structure(spec: ModelSpec) -> list[LayerDef]:
    """The rows of the table: embeddings, one block template (the same for every block), then
    the head."""
    h, hd = spec.d_model, spec.d_head
    q_out, kv_out = spec.n_heads * hd, spec.kv_heads * hd
    rows = [LayerDef("embed.tokens", "embedding", spec.vocab_size * h, block=False)]
    if spec.position == "learned":
        rows.append(LayerDef("embed.positions", "embedding",
                             (spec.max_seq_len + spec.position_offset) * h, block=False))
    if spec.n_token_types:
        rows.append(LayerDef("embed.token_types", "embedding", spec.n_token_types * h,
                             block=False))
    if spec.embedding_norm:
        rows.append(LayerDef("embed.norm", "norm", norm_params(spec), block=False))

    attn = [
        LayerDef("attn.q", "linear", h * q_out + (q_out if spec.qkv_bias else 0), block=True),
        LayerDef("attn.k", "linear", h * kv_out + (kv_out if spec.qkv_bias else 0), block=True),
        LayerDef("attn.v", "linear", h * kv_out + (kv_out if spec.qkv_bias else 0), block=True),
        LayerDef("attn.scores", "attention", 0, block=True),
        LayerDef("attn.softmax", "softmax", 0, block=True),
        LayerDef("attn.context", "attention", 0, block=True),
        LayerDef("attn.out", "linear", q_out * h + (h if spec.attn_out_bias else 0), block=True),
    ]
    mlp = _mlp_rows(spec)
    attn_norm = LayerDef("attn_norm", "norm", norm_params(spec), block=True)
    mlp_norm = LayerDef("mlp_norm", "norm", norm_params(spec), block=True)
    if spec.norm_position == "pre":
        rows += [attn_norm, *attn, mlp_norm, *mlp]
    else:
        rows += [*attn, attn_norm, *mlp, mlp_norm]

    if spec.final_norm:
        rows.append(LayerDef("final_norm", "norm", norm_params(spec), block=False))
    if spec.pooler:
        rows.append(LayerDef("pooler", "linear", h * h + h, block=False))
    if spec.lm_head:
        rows.append(LayerDef("lm_head", "linear",
                             0 if spec.tied_embeddings else spec.vocab_size * h, block=False))
        rows.append(LayerDef("loss", "loss", 0, block=False))  # cross-entropy (training only)
    return rows


def _mlp_rows(spec: ModelSpec) -> list[LayerDef]:
    h, ff = spec.d_model, spec.d_ff
    bias_ff, bias_h = (ff, h) if spec.mlp_bias else (0, 0)

    def ffn(prefix: str, n: int, frac: float) -> list[LayerDef]:
        rows = [LayerDef(f"{prefix}.up", "linear", n * (h * ff + bias_ff), True, frac)]
        if spec.gated_mlp:
            rows.append(LayerDef(f"{prefix}.gate", "linear", n * (h * ff + bias_ff), True, frac))
        rows.append(LayerDef(f"{prefix}.act", "activation", 0, True, frac))
        rows.append(LayerDef(f"{prefix}.down", "linear", n * (ff * h + bias_h), True, frac))
        return rows

    if not spec.is_moe:
        return ffn("mlp", 1, 1.0)
    rows = [LayerDef("moe.router", "router", h * spec.n_experts, block=True)]
    rows += ffn("moe.experts", spec.n_experts, spec.experts_top_k / spec.n_experts)
    if spec.n_shared_experts:
        rows += ffn("moe.shared", spec.n_shared_experts, 1.0)
    return rows


# ---- the numbers: FLOPs and bytes per row --------------------------------------------------------
@dataclass(frozen=True)
class _Shape:
    """Batch and lengths of one pass; arrays broadcast over a grid of configurations."""

    batch: np.ndarray
    q_len: np.ndarray  # tokens processed per sequence in this pass
    kv_len: np.ndarray  # keys each query attends to

    @property
    def n_tokens(self) -> np.ndarray:
        return self.batch * self.q_len


def _row_fwd_flops(spec: ModelSpec, row: LayerDef, shp: _Shape, causal_half: bool):
    """Forward FLOPs of one row (F1–F5)."""
    h, hd, ff = spec.d_model, spec.d_head, spec.d_ff
    T = shp.n_tokens
    name = row.name
    if row.kind == "embedding":
        return 0.0 * T  # a lookup; NB: the position add (T·h) is not counted
    if row.kind == "norm":
        return norm_flops(n_tokens=T, d_model=h, norm=spec.norm)
    if row.kind in ("attention", "softmax"):
        kw = dict(batch=shp.batch, q_len=shp.q_len, kv_len=shp.kv_len, n_heads=spec.n_heads)
        half = causal_half and spec.causal
        if row.kind == "softmax":
            return softmax_flops(**kw) * (0.5 if half else 1.0)
        return attention_matmul_flops(**kw, head_dim=hd, causal_half=half)
    if name == "pooler":  # dense + tanh on the first token of each sequence
        return linear_flops(n_tokens=shp.batch, d_in=h, d_out=h)
    if name == "lm_head":
        return linear_flops(n_tokens=T, d_in=h, d_out=spec.vocab_size)
    if name == "loss":
        return float(SOFTMAX_FLOPS_PER_ELEMENT) * T * spec.vocab_size  # log-softmax over logits
    if row.kind == "router":
        return linear_flops(n_tokens=T, d_in=h, d_out=spec.n_experts)
    routed = _tokens_through(spec, name, T)
    if name.endswith(".act"):
        return activation_flops(n_tokens=routed, d_ff=ff, act=spec.mlp_act, gated=spec.gated_mlp)
    if name.startswith(("mlp.", "moe.")):
        return linear_flops(n_tokens=routed, d_in=h, d_out=ff)  # up, gate, down: h·ff each
    d_out = {"attn.q": spec.n_heads * hd, "attn.k": spec.kv_heads * hd,
             "attn.v": spec.kv_heads * hd, "attn.out": h}[name]
    return linear_flops(n_tokens=T, d_in=h if name != "attn.out" else spec.n_heads * hd,
                        d_out=d_out)


def _row_activation_bytes(spec: ModelSpec, row: LayerDef, shp: _Shape, *, a: float,
                          recompute: Recompute, flash: bool, first_in_block: bool,
                          fused_swiglu: bool = False):
    """Bytes one row saves for backward (F14–F17; Korthikanti et al. 2022, Sec. 4.1).

    Each row saves the inputs its backward needs; a tensor shared by several rows (the norm
    output feeding q, k and v) is counted once, on the first. Without recompute, dropout and
    flash attention, a GPT block sums to s·b·h·(34 + 5·a·s/h) bytes at 2 bytes per element,
    Korthikanti's Eq. 2.
    """
    h, hd, ff = spec.d_model, spec.d_head, spec.d_ff
    T, b = shp.n_tokens, shp.batch
    drop = spec.dropout > 0
    scores = b * spec.n_heads * shp.q_len * shp.kv_len
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
        return T * h * a + mask  # the norm's input
    if name == "attn.q":
        return T * h * a  # normed input, shared with k and v
    if name in ("attn.k", "attn.v", "moe.shared.up") or name.endswith(".gate"):
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
        return T * spec.kv_heads * hd * a + lse  # v (+ log-sum-exp of the fused kernel)
    if name == "attn.out":
        return T * spec.n_heads * hd * a + (T * h * DROPOUT_MASK_BYTES if drop else 0)
    if name == "moe.router":
        # normed input (shared with the shared experts) + the fp32 router probabilities the
        # softmax saves (T·E·4 bytes; HF Mixtral and Megatron both route in fp32; measured in
        # tests/test_measure.py, docs/validation.md)
        return T * h * a + T * spec.n_experts * 4.0
    routed = _tokens_through(spec, name, T)
    if name.endswith(".up"):
        return routed * h * a  # normed input (gathered per expert for routed experts)
    if name.endswith(".act"):
        # GELU saves its input; eager SwiGLU saves gate output, SiLU output and up output; a
        # fused SwiGLU kernel (Megatron's bias_swiglu, Transformer Engine, torch.compile)
        # saves only its input, gate and up, and recomputes the SiLU (F16b).
        return routed * ff * a * ((2 if fused_swiglu else 3) if spec.gated_mlp else 1)
    if name.endswith(".down"):
        # Routed experts: the routing-weight multiply Σ_k w_k·y_k also saves the expert
        # outputs y (T·k·h), which the router's gradient needs (measured, docs/validation.md).
        combine = routed * h * a if name.startswith("moe.experts") else 0.0
        return routed * ff * a + combine + (T * h * DROPOUT_MASK_BYTES if drop else 0)
    if name == "pooler":
        # tanh output + the first-token input, which is a view x[:, 0]: autograd saves the
        # view, so the whole last hidden state [b, s, h] stays alive (measured with
        # saved_tensors_hooks, docs/validation.md; HF BertPooler does the same)
        return T * h * a + b * h * a
    if name == "lm_head":
        return T * h * a
    if name == "loss":
        # NB: cross-entropy saves the log-softmax of the logits, upcast to fp32 (torch autocast).
        return T * spec.vocab_size * LOGITS_BYTES
    raise AssertionError(f"no activation rule for row {name!r}")  # pragma: no cover


def _tokens_through(spec: ModelSpec, name: str, n_tokens):
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


def _row_kv_bytes(spec: ModelSpec, row: LayerDef, shp: _Shape, kv_bytes: float):
    """F18: KV cache of one layer, b · kv_len · n_kv_heads · head_dim · bytes, for K and for V."""
    if row.name in ("attn.k", "attn.v"):
        return shp.batch * shp.kv_len * spec.kv_heads * spec.d_head * kv_bytes
    return 0.0 * shp.batch


def _weight_bytes_per_param(row: LayerDef, policy: PrecisionPolicy) -> float:
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
    is_matmul. Formulas: docs/formulas.md F1–F18.
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
    kv_bytes = dtype_bytes(kv_cache_dtype, field="kv_cache_dtype") if kv_cache_dtype else (
        policy.activation_bytes)
    train = mode == "train"
    opt_bytes = (optimizer_state_bytes(optimizer) + policy.master_bytes) if train else 0.0

    structure = [r for r in layer_structure(spec) if train or r.kind != "loss"]
    full = _Shape(np.asarray(batch_size, float), np.asarray(seq_len, float),
                  np.asarray(seq_len, float))
    decode = _Shape(full.batch, np.asarray(1.0), full.kv_len)
    first_block_row = next(r.name for r in structure if r.block)
    half = causal_attention == "half"

    template = []
    for row in structure:
        fwd = float(_row_fwd_flops(spec, row, full, half))
        act = float(_row_activation_bytes(
            spec, row, full, a=policy.activation_bytes, recompute=recompute,
            flash=flash_attention, first_in_block=row.name == first_block_row,
            fused_swiglu=fused_swiglu)) if train else 0.0
        template.append(dict(
            layer=row.name, block=row.block, kind=row.kind, n_params=row.n_params,
            n_active_params=row.n_params * row.active_frac, fwd_flops=fwd,
            bwd_flops=2.0 * fwd if train else 0.0,
            weight_bytes=row.n_params * _weight_bytes_per_param(row, policy),
            grad_bytes=row.n_params * policy.grad_bytes if train else 0.0,
            optimizer_bytes=row.n_params * opt_bytes,
            activation_bytes=act,
            # An encoder neither decodes nor keeps a KV cache: its decode column is NaN.
            kv_cache_bytes=float(_row_kv_bytes(spec, row, full, kv_bytes))
            if spec.causal and not train else 0.0,
            # NB: one query per sequence reads every cached key: nothing to halve in decode.
            decode_flops=float(_row_fwd_flops(spec, row, decode, False))
            if spec.causal else float("nan"),
        ))
    df = _expand_blocks(pd.DataFrame(template), spec.n_layers)
    df["is_matmul"] = df["kind"].isin(MATMUL_KINDS)
    if train:
        df = df.drop(columns="decode_flops")
    return df


def _expand_blocks(template: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """Repeat the block rows n_layers times (named blocks.{i}.*), keeping the outer rows.

    One positional take, not n_layers concatenations: 10^5 layers (MAX_N_LAYERS) take ~1 s."""
    is_block = template["block"].to_numpy(dtype=bool)
    first, n_block = int(np.argmax(is_block)), int(is_block.sum())
    before, block, after = (template.iloc[:first], template.iloc[first:first + n_block],
                            template.iloc[first + n_block:])
    blocks = block.iloc[np.tile(np.arange(n_block), n_layers)].reset_index(drop=True)
    names = block["layer"].tolist()
    blocks["layer"] = [f"blocks.{i}.{name}" for i in range(n_layers) for name in names]
    blocks["block"] = np.repeat(np.arange(n_layers), n_block)
    out = pd.concat([before.assign(block=-1), blocks, after.assign(block=-1)],
                    ignore_index=True)
    out["block"] = out["block"].astype(int)
    return out


def totals(table: pd.DataFrame) -> pd.Series:
    """Column sums of a layer table (the model totals), numeric columns only."""
    numeric = table.select_dtypes("number").drop(columns=["block"], errors="ignore")
    return numeric.sum()
