"""Reference PyTorch implementations of every `ModelSpec` family, for measurement only.

One `Reference` module is built from the same `ModelSpec` that `planner.model.layers` reads, and
its module names equal the analytic row names one to one: `embed.tokens`, `blocks.0.attn.q`,
`blocks.0.attn.scores` (a tiny module around the QKᵀ matmul), `blocks.0.moe.experts.up` (all
experts' weights in one [E, d_in, d_out] parameter), `lm_head`, `loss`. So FlopCounterMode's
per-module counts, `named_parameters()` and saved-tensor hooks land on the analytic rows.

Design choices that make the measurement meaningful (docs/validation.md explains each):
- Attention is explicit math (matmul, softmax, matmul), never the fused CPU kernel that
  `FlopCounterMode` cannot see; grouped-query attention folds the query group into the
  sequence axis ([b, kv, group·s, d]) instead of repeating K and V, as fused kernels do.
- RMSNorm saves its input and the fp32 reciprocal RMS, as the fused CUDA kernel does; the CPU
  composite of `F.rms_norm` would save three tensors per element.
- Constant tensors (rotary tables, the causal mask) are kept in `Reference.constants` so the
  measurement can exclude them from activations, like weights.
- Mixture-of-experts routing is real (softmax, top-k, per-expert matmuls) on a real device; on
  the meta device, where data-dependent routing cannot run, tokens are dealt round-robin to
  the experts, which leaves the FLOP total (tokens × top_k per expert matmul) unchanged.

Torch is imported here; `import planner` never imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from planner.errors import InputError
from planner.model.layers import block_kind
from planner.model.spec import ModelSpec

ROPE_THETA = 10_000.0
NORM_EPS = 1e-5
INIT_STD = 0.02


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout as CUDA runs it: `native_dropout`, which saves a 1-byte bool mask.

    NB: `F.dropout` on the CPU multiplies by a float noise tensor and saves that instead
    (4 bytes per element in fp32), which is not what a GPU training run holds.
    """
    if not p or not training:
        return x
    return torch.native_dropout(x, p, True)[0]


# ---- leaves: each is one analytic row ----------------------------------------------------------
class Embedding(nn.Module):
    """A lookup table that adds its rows to the running sum `x` (dropout if it is the last)."""

    def __init__(self, n_rows: int, d_model: int, dropout: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_rows, d_model))
        self.dropout = dropout

    def forward(self, ids: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        e = F.embedding(ids, self.weight)
        out = e if x is None else x + e
        return dropout(out, self.dropout, self.training)


class _FusedRMSNorm(torch.autograd.Function):
    """RMSNorm that saves what the fused CUDA kernel saves: the input and 1/rms (fp32)."""

    @staticmethod
    def forward(ctx, x, weight, eps):  # type: ignore[override]
        acc = torch.promote_types(x.dtype, torch.float32)  # at least fp32 statistics
        xf = x.to(acc)
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, rstd, weight)
        return (xf * rstd).to(x.dtype) * weight

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, rstd, weight = ctx.saved_tensors
        xhat = x.to(rstd.dtype) * rstd
        g = grad.to(rstd.dtype) * weight.to(rstd.dtype)
        # y = x·r·w, r = (mean(x²) + eps)^-½  =>  dL/dx = r·(g − x̂·mean(g·x̂)), g = dL/dy·w
        grad_x = rstd * (g - xhat * (g * xhat).mean(-1, keepdim=True))
        grad_w = (grad.to(rstd.dtype) * xhat).reshape(-1, x.shape[-1]).sum(0)
        return grad_x.to(x.dtype), grad_w.to(weight.dtype), None


class Norm(nn.Module):
    """LayerNorm (scale and shift) or RMSNorm (scale only), with optional dropout after."""

    def __init__(self, d_model: int, kind: str, dropout: float = 0.0):
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if kind == "layernorm" else None
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "layernorm":
            out = F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, NORM_EPS)
        else:
            out = _FusedRMSNorm.apply(x, self.weight, NORM_EPS)
        return dropout(out, self.dropout, self.training)


class Dense(nn.Module):
    """y = x Wᵀ (+ b), then dropout: `attn.q`, `mlp.up`, `lm_head`, ... (F1)."""

    def __init__(self, d_in: int, d_out: int, bias: bool, dropout: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)  # [T, d_in] @ [d_in, d_out] -> [T, d_out]
        return dropout(out, self.dropout, self.training)


class Scores(nn.Module):
    """QKᵀ (F3): q [b, kv, g·s_q, d] @ kᵀ [b, kv, d, s_k] -> [b, kv, g·s_q, s_k]."""

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.matmul(q, k.transpose(-2, -1))


class Softmax(nn.Module):
    """Scale, causal mask (a constant additive bias), softmax, attention dropout."""

    def __init__(self, scale: float, dropout: float):
        super().__init__()
        self.scale = scale
        self.dropout = dropout

    def forward(self, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = scores * self.scale
        if mask is not None:
            x = x + mask
        p = torch.softmax(x, dim=-1)
        return dropout(p, self.dropout, self.training)


class Context(nn.Module):
    """softmax·V (F3): p [b, kv, g·s_q, s_k] @ v [b, kv, s_k, d] -> [b, kv, g·s_q, d]."""

    def forward(self, p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.matmul(p, v)


class Activation(nn.Module):
    """GELU / ReLU of `up`, or SwiGLU silu(gate)·up."""

    def __init__(self, act: str, gated: bool):
        super().__init__()
        self.act, self.gated = act, gated

    def forward(self, up: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        acts: dict[str, Callable[..., torch.Tensor]] = {
            "gelu": F.gelu, "relu": F.relu, "silu": F.silu}
        fn = acts[self.act]
        if self.gated:
            assert gate is not None
            return fn(gate) * up
        return fn(up)


class ExpertDense(nn.Module):
    """Every expert's weights in one [E, d_in, d_out] parameter; rows arrive sorted by expert.

    For expert e: [n_e, d_in] @ [d_in, d_out] -> [n_e, d_out]; the total over experts is
    2 · (tokens · top_k) · d_in · d_out FLOPs, the analytic row (F1 with routed tokens).
    """

    def __init__(self, n_experts: int, d_in: int, d_out: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_experts, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(n_experts, d_out)) if bias else None

    def forward(self, x: torch.Tensor, counts: list[int]) -> torch.Tensor:
        outs = []
        for e, xe in enumerate(x.split(counts)):
            if counts[e] == 0:
                continue
            if self.bias is None:
                outs.append(torch.mm(xe, self.weight[e]))
            else:
                outs.append(torch.addmm(self.bias[e], xe, self.weight[e]))
        return torch.cat(outs) if len(outs) > 1 else outs[0]


class Router(Dense):
    """MoE router: logits [T, h] @ [h, E] -> [T, E], then fp32 softmax probabilities."""

    def __init__(self, d_model: int, n_experts: int):
        super().__init__(d_model, n_experts, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(super().forward(x).float(), dim=-1)


class Pooler(nn.Module):
    """BERT pooler: tanh(x[:, 0] Wᵀ + b) on the first token of each sequence."""

    def __init__(self, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_model, d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(F.linear(x[:, 0], self.weight, self.bias))


class CrossEntropy(nn.Module):
    """Token cross-entropy on fp32 logits (the upcast Llama/GPT-2 implementations make)."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1))


# ---- containers (not rows) ---------------------------------------------------------------------
class Embeddings(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        h, p = spec.d_model, spec.dropout
        names = ["tokens"] + (["positions"] if spec.position == "learned" else []) + (
            ["token_types"] if spec.n_token_types else [])
        last = None if spec.embedding_norm else names[-1]  # where embedding dropout runs
        self.tokens = Embedding(spec.vocab_size, h, p if last == "tokens" else 0.0)
        if spec.position == "learned":
            self.positions = Embedding(spec.max_seq_len + spec.position_offset, h,
                                       p if last == "positions" else 0.0)
        if spec.n_token_types:
            self.token_types = Embedding(spec.n_token_types, h, p if last == "token_types" else 0)
        if spec.embedding_norm:
            self.norm = Norm(h, spec.norm, dropout=p)
        self.offset = spec.position_offset

    def forward(self, ids, pos_ids, type_ids):
        x = self.tokens(ids)
        if hasattr(self, "positions"):
            x = self.positions(pos_ids + self.offset, x)
        if hasattr(self, "token_types"):
            x = self.token_types(type_ids, x)
        return self.norm(x) if hasattr(self, "norm") else x


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        h, hd = spec.d_model, spec.d_head
        self.n_heads, self.kv_heads, self.d_head = spec.n_heads, spec.kv_heads, hd
        self.rotary = spec.position == "rotary"
        self.q = Dense(h, spec.n_heads * hd, spec.qkv_bias)
        self.k = Dense(h, spec.kv_heads * hd, spec.qkv_bias)
        self.v = Dense(h, spec.kv_heads * hd, spec.qkv_bias)
        if spec.qk_norm:  # one RMSNorm of head_dim over every head (Qwen3, Gemma 3)
            self.q_norm = Norm(hd, spec.norm)
            self.k_norm = Norm(hd, spec.norm)
        self.scores = Scores()
        self.softmax = Softmax(1.0 / math.sqrt(hd), spec.dropout)
        self.context = Context()
        self.out = Dense(spec.n_heads * hd, h, spec.attn_out_bias, dropout=spec.dropout)

    def forward(self, x, rope, mask, cache: dict | None = None):
        b, s, _ = x.shape
        kv, g, d = self.kv_heads, self.n_heads // self.kv_heads, self.d_head
        # [b, s, heads·d] -> [b, kv, g, s, d]: the query group is folded next to its KV head.
        q = self.q(x).view(b, s, kv, g, d).permute(0, 2, 3, 1, 4)
        k = self.k(x).view(b, s, kv, d).transpose(1, 2)
        v = self.v(x).view(b, s, kv, d).transpose(1, 2)
        if hasattr(self, "q_norm"):  # before the rotary embedding, as transformers' Qwen3
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rotary:
            cos, sin = rope
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
        if cache is not None:  # inference: append to the KV cache (F18)
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        q = q.reshape(b, kv, g * s, d)
        scores = self.scores(q, k)  # [b, kv, g·s, s_k]
        p = self.softmax(scores, mask)
        ctx = self.context(p, v)  # [b, kv, g·s, d]
        ctx = ctx.view(b, kv, g, s, d).permute(0, 3, 1, 2, 4).reshape(b, s, kv * g * d)
        return self.out(ctx)


class MLP(nn.Module):
    def __init__(self, spec: ModelSpec, d_ff: int | None = None):
        super().__init__()
        h, ff, bias = spec.d_model, d_ff or spec.d_ff, spec.mlp_bias
        self.up = Dense(h, ff, bias)
        self.gate = Dense(h, ff, bias) if spec.gated_mlp else None
        self.act = Activation(spec.mlp_act, spec.gated_mlp)
        self.down = Dense(ff, h, bias, dropout=spec.dropout)

    def forward(self, x):
        up = self.up(x)
        return self.down(self.act(up, self.gate(x) if self.gate is not None else None))


class Experts(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        h, ff, e, bias = spec.d_model, spec.expert_d_ff, spec.n_experts, spec.mlp_bias
        self.up = ExpertDense(e, h, ff, bias)
        self.gate = ExpertDense(e, h, ff, bias) if spec.gated_mlp else None
        self.act = Activation(spec.mlp_act, spec.gated_mlp)
        self.down = ExpertDense(e, ff, h, bias)

    def forward(self, x, counts):
        up = self.up(x, counts)
        gate = self.gate(x, counts) if self.gate is not None else None
        return self.down(self.act(up, gate), counts)


class MoE(nn.Module):
    """Router (softmax, top-k, renormalized weights), routed experts, optional shared experts."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.n_experts, self.top_k = spec.n_experts, spec.experts_top_k
        self.router = Router(spec.d_model, spec.n_experts)
        self.experts = Experts(spec)
        if spec.n_shared_experts:
            self.shared = MLP(spec.with_(dropout=0.0),
                              d_ff=spec.expert_d_ff * spec.n_shared_experts)

    def forward(self, x):
        b, s, h = x.shape
        xf = x.reshape(b * s, h)
        weights, order, counts = self._route(self.router(xf))  # probabilities [T, E]
        token_of = order // self.top_k  # sorted slot -> token
        y = self.experts(xf[token_of], counts)  # [T·k, h], sorted by expert
        unsort = torch.empty_like(order)
        unsort[order] = torch.arange(order.numel(), device=order.device)
        y = y[unsort].view(b * s, self.top_k, h)  # back to token order
        # Σ_k w_k · y_k; the multiply saves y (T·k·h) for the router's gradient. NB: not
        # index_add, whose autograd formula also saves its source, a second T·k·h copy.
        out = (y * weights.unsqueeze(-1).to(y.dtype)).sum(1).view(b, s, h)
        return out + self.shared(x) if hasattr(self, "shared") else out

    def _route(self, probs):
        """Top-k experts per token: (renormalized weights [T, k], slot order, rows per expert)."""
        t, k, e = probs.shape[0], self.top_k, self.n_experts
        if probs.device.type == "meta":  # NB: round-robin; FLOP totals do not depend on it
            slots = torch.arange(t * k, device=probs.device)
            counts = [len(range(i, t * k, e)) for i in range(e)]
            return probs[:, :k], slots, counts
        weights, idx = probs.topk(k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=e).tolist()
        return weights, order, counts


class Block(nn.Module):
    """Block `index` of `spec`: a dense MLP or a mixture of experts by its kind (dense-first
    models), global or sliding-window attention (`window`, which picks the mask)."""

    def __init__(self, spec: ModelSpec, index: int = 0):
        super().__init__()
        kind = block_kind(spec, index)
        self.window = kind.window
        self.pre = spec.norm_position == "pre"
        self.attn_norm = Norm(spec.d_model, spec.norm)
        self.attn = Attention(spec)
        if spec.sandwich_norm:  # Gemma: a norm on each sublayer's output
            self.attn_post_norm = Norm(spec.d_model, spec.norm)
        self.mlp_norm = Norm(spec.d_model, spec.norm)
        if kind.moe:
            self.moe = MoE(spec)
        else:
            self.mlp = MLP(spec)
        if spec.sandwich_norm:
            self.mlp_post_norm = Norm(spec.d_model, spec.norm)

    def forward(self, x, rope, masks, cache=None):
        ffn = self.moe if hasattr(self, "moe") else self.mlp
        mask = masks.get(self.window) if masks is not None else None
        if hasattr(self, "attn_post_norm"):
            x = x + self.attn_post_norm(self.attn(self.attn_norm(x), rope, mask, cache))
            return x + self.mlp_post_norm(ffn(self.mlp_norm(x)))
        if self.pre:
            x = x + self.attn(self.attn_norm(x), rope, mask, cache)
            return x + ffn(self.mlp_norm(x))
        x = self.attn_norm(x + self.attn(x, rope, mask, cache))
        return self.mlp_norm(x + ffn(x))


class Reference(nn.Module):
    """The whole model; `forward(ids, labels)` returns the loss, or logits/hidden states."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        h = spec.d_model
        self.embed = Embeddings(spec)
        self.blocks = nn.ModuleList(Block(spec, i) for i in range(spec.n_layers))
        if spec.final_norm:
            self.final_norm = Norm(h, spec.norm)
        if spec.pooler:
            self.pooler = Pooler(h)
        if spec.lm_head:
            self.lm_head = Dense(h, spec.vocab_size, bias=False)
            if spec.tied_embeddings:
                self.lm_head.weight = self.embed.tokens.weight
            self.loss = CrossEntropy()
        self.constants: list[torch.Tensor] = []  # rotary tables and masks of the last forward

    def forward(self, ids, labels=None, *, caches: list[dict] | None = None, start: int = 0):
        """ids [b, s]; `caches` (one dict per block) turns on the KV cache (inference).

        Returns the loss when `labels` are given and the model has an LM head; otherwise the
        logits (LM) or the sum of the sequence output and the pooled output (encoder).
        """
        s = ids.shape[1]
        pos = torch.arange(start, start + s, device=ids.device)
        types = torch.zeros_like(ids) if hasattr(self.embed, "token_types") else None
        x = self.embed(ids, pos, types)
        rope, masks = self._constants(pos, start + s, x.dtype)
        for i, block in enumerate(self.blocks):
            x = block(x, rope, masks, None if caches is None else caches[i])
        if hasattr(self, "final_norm"):
            x = self.final_norm(x)
        if not self.spec.lm_head:
            pooled = self.pooler(x) if hasattr(self, "pooler") else x[:, 0]
            return x.sum() + pooled.sum()  # NB: a sum saves nothing for backward
        logits = self.lm_head(x)
        return self.loss(logits, labels) if labels is not None else logits

    def _constants(self, pos, kv_len, dtype):
        """Rotary cos/sin for `pos` and the causal mask biases, by window (None: global; a
        sliding-window block's mask also hides keys `window` or more positions back);
        remembered as constants."""
        self.constants = []
        rope = None
        if self.spec.position == "rotary":
            d = self.spec.d_head
            inv = 1.0 / ROPE_THETA ** (torch.arange(0, d, 2, device=pos.device).float() / d)
            ang = pos.float()[:, None] * inv[None, :]
            ang = torch.cat([ang, ang], dim=-1)  # [s, d]
            rope = (ang.cos().to(dtype), ang.sin().to(dtype))
            self.constants += list(rope)
        masks = {}  # window (None: global) -> additive mask
        s = pos.shape[0]
        windows = {getattr(block, "window", None) for block in self.blocks}
        for window in sorted(windows, key=lambda w: -1 if w is None else w):
            if not self.spec.causal or (s == 1 and (window is None or kv_len <= window)):
                continue
            # query i (absolute kv_len - s + i) sees keys 0 … kv_len - s + i
            mask = torch.full((s, kv_len), float("-inf"), device=pos.device, dtype=dtype)
            mask = torch.triu(mask, diagonal=kv_len - s + 1)
            if window is not None:  # … and only the last `window` of them
                mask = mask + torch.tril(torch.full_like(mask, float("-inf")),
                                         diagonal=kv_len - s - window)
            g = self.spec.n_heads // self.spec.kv_heads
            masks[window] = mask.repeat(g, 1)  # rows follow the folded [g·s] query axis
            self.constants.append(masks[window])
        return rope, masks


def check_reference(spec: ModelSpec, seq_len: int | None = None) -> None:
    """InputError (one line) when the reference cannot run `spec` as the analytic model
    counts it: MLA and the multi-token prediction modules are not built here yet, and a
    sliding window shorter than the sequence would be masked, not skipped (its FLOPs and
    saved scores would be those of global attention)."""
    if spec.is_mla:
        raise InputError("model", f"{clip_name(spec)}: MLA (multi-head latent attention, "
                                  "kv_lora_rank) is not in the torch reference yet")
    if spec.n_mtp_layers:
        raise InputError("model", f"{clip_name(spec)}: multi-token prediction modules "
                                  "(n_mtp_layers) are not in the torch reference yet; set "
                                  "n_mtp_layers=0")
    if (seq_len is not None and spec.sliding_window is not None
            and seq_len > spec.sliding_window):
        raise InputError("seq_len", f"{seq_len:,} exceeds sliding_window="
                                    f"{spec.sliding_window:,}: the torch reference masks the "
                                    "window instead of skipping it; use seq_len ≤ "
                                    f"{spec.sliding_window:,}")


def clip_name(spec: ModelSpec) -> str:
    return spec.name if len(spec.name) <= 60 else spec.name[:59] + "…"


def build_reference(spec: ModelSpec, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32, seed: int = 0) -> Reference:
    """A `Reference` for `spec` on `device` ("meta" allocates nothing) in `dtype`;
    InputError for what the reference does not build (check_reference)."""
    check_reference(spec)
    with torch.device(device):
        if torch.device(device).type != "meta":
            torch.manual_seed(seed)
        net = Reference(spec)
        if torch.device(device).type != "meta":
            _init_weights(net)
    return net.to(dtype=dtype)


@torch.no_grad()
def _init_weights(net: nn.Module) -> None:
    for name, p in net.named_parameters():
        if name.endswith("bias"):
            p.zero_()
        elif isinstance(net.get_submodule(name.rsplit(".", 1)[0]), Norm):
            p.fill_(1.0)
        else:
            p.normal_(0.0, INIT_STD)


def row_of(module_name: str, rows: set[str]) -> str | None:
    """The analytic row a module (or parameter) name belongs to: its longest row prefix."""
    parts = module_name.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in rows:
            return cand
    return None
