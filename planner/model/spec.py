"""Transformer model specifications: the `ModelSpec` schema, named presets, and import from a
Hugging Face `config.json` (no `transformers` needed).

A ModelSpec describes the *architecture* only (shapes and which optional pieces exist); the
per-layer numbers (parameters, FLOPs, bytes) are derived from it in `planner.model.layers`.
Parameter counts of every preset equal the released checkpoints' counts exactly
(tests/test_models.py cites each one).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner.errors import InputError, check_bool, check_int, check_number, clip, one_line

Arch = Literal["encoder", "decoder"]

# Bounds on a model's shape: generous (10-1000x past the largest published models) and there
# so that absurd input is refused with one line instead of overflowing or running for minutes.
MAX_N_LAYERS = 10**5  # deepest trained: DeepNet, 1,000 layers (Wang et al. 2022)
MAX_D_MODEL = 10**6  # hidden size; also bounds n_heads, n_kv_heads and head_dim
MAX_D_FF = 10**7  # MLP inner size (per expert)
MAX_VOCAB_SIZE = 10**8  # largest released vocabularies are ~256k (PaLM, Gemma)
MAX_SEQ_LEN = 10**8  # context length, tokens; also bounds layer_table's seq_len
MAX_N_EXPERTS = 10**7  # PEER (He 2024) routes among 1,048,576 experts
MAX_N_PARAMS = 10**15  # total parameters; keeps every per-row count inside int64
# config.json files on the Hub are a few kB; anything past this is not a model configuration.
MAX_CONFIG_BYTES = 10_000_000
MAX_NAME_CHARS = 200  # a model's label in reports and messages


class ModelSpec(BaseModel):
    """Shape of a transformer: enough to count every parameter, FLOP and byte per layer.

    The families people plan for are all expressed with these fields:
    BERT (encoder, learned positions, token types, post-LN, GELU, pooler), GPT-2/3 and OPT
    (decoder, learned positions, pre-LN with bias, GELU/ReLU, tied embeddings), Llama/Mistral/Qwen2
    (RMSNorm, SwiGLU, rotary, grouped-query attention, untied head, optional qkv bias),
    Mixtral-style mixture-of-experts (`n_experts`, `experts_top_k`, `n_shared_experts`), and the
    current shapes: fine-grained experts with their own inner size after dense first blocks
    (`moe_d_ff`, `n_dense_layers`: DeepSeek-V3, Qwen3-MoE), multi-head latent attention
    (`kv_lora_rank` and friends: DeepSeek-V2/V3), multi-token prediction modules
    (`n_mtp_layers`), per-head query/key norms (`qk_norm`: Qwen3, Gemma 3), Gemma's extra norms
    on each sublayer's output (`sandwich_norm`) and sliding-window attention layers
    (`sliding_window`, `global_attn_every`: Gemma 2/3, Phi-3). Every new field's default is the
    behaviour without it. Formulas: docs/formulas.md F19-F24.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS,
                      description="Preset or user name, shown in reports (one line).")
    arch: Arch = Field(description="'encoder' (bidirectional, BERT) or 'decoder' (causal LM).")
    n_layers: int = Field(gt=0, le=MAX_N_LAYERS, description="Number of transformer blocks.")
    d_model: int = Field(gt=0, le=MAX_D_MODEL, description="Hidden size h.")
    n_heads: int = Field(gt=0, le=MAX_D_MODEL, description="Attention (query) heads.")
    n_kv_heads: int | None = Field(
        default=None, gt=0, le=MAX_D_MODEL,
        description="Key/value heads (GQA/MQA); None means = n_heads (MHA).",
    )
    head_dim: int | None = Field(
        default=None, gt=0, le=MAX_D_MODEL,
        description="Per-head size; None means d_model / n_heads.",
    )
    d_ff: int = Field(gt=0, le=MAX_D_FF,
                      description="Dense MLP inner size; also each expert's unless moe_d_ff is "
                                  "given.")
    vocab_size: int = Field(gt=0, le=MAX_VOCAB_SIZE,
                            description="Rows of the token embedding (and LM head).")
    max_seq_len: int = Field(gt=0, le=MAX_SEQ_LEN,
                             description="Longest context the model supports, tokens.")
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_position: Literal["pre", "post"] = Field(
        default="pre", description="'pre' (GPT-2, Llama) or 'post' (original BERT) LayerNorm."
    )
    mlp_act: Literal["gelu", "relu", "silu"] = "gelu"
    gated_mlp: bool = Field(default=False, description="SwiGLU-style gate and up projections.")
    position: Literal["learned", "rotary", "none"] = "learned"
    position_offset: int = Field(
        default=0, ge=0, le=MAX_SEQ_LEN,
        description="Extra learned position rows (OPT reserves 2).",
    )
    n_token_types: int = Field(default=0, ge=0, le=MAX_VOCAB_SIZE,
                               description="BERT segment embeddings (2).")
    tied_embeddings: bool = Field(default=False, description="LM head shares the token embedding.")
    qkv_bias: bool = False
    attn_out_bias: bool = False
    mlp_bias: bool = False
    embedding_norm: bool = Field(default=False, description="LayerNorm after embeddings (BERT).")
    final_norm: bool = Field(default=True, description="Norm after the last block (pre-LN).")
    lm_head: bool = Field(default=True, description="Output projection to the vocabulary.")
    pooler: bool = Field(default=False, description="BERT pooler: dense + tanh on token 0.")
    n_experts: int = Field(default=1, gt=0, le=MAX_N_EXPERTS,
                           description="Routed experts per MoE layer (1 = dense).")
    experts_top_k: int = Field(default=1, gt=0, description="Experts each token is routed to.")
    n_shared_experts: int = Field(default=0, ge=0, le=MAX_N_EXPERTS,
                                  description="Always-on experts (DeepSeek), of moe_d_ff each.")
    moe_d_ff: int | None = Field(
        default=None, gt=0, le=MAX_D_FF,
        description="Inner size of each routed and shared expert when it differs from the "
                    "dense MLP's d_ff (DeepSeek-V3: 2048 against 18432); None = d_ff.")
    n_dense_layers: int = Field(
        default=0, ge=0, le=MAX_N_LAYERS,
        description="Mixture-of-experts models: the first k blocks have a dense MLP of d_ff, "
                    "the rest are MoE (DeepSeek-V3 first_k_dense_replace = 3).")
    q_lora_rank: int | None = Field(
        default=None, gt=0, le=MAX_D_MODEL,
        description="MLA: rank of the compressed query (DeepSeek-V3 1536); None = the query "
                    "is projected from h directly (DeepSeek-V2-Lite).")
    kv_lora_rank: int | None = Field(
        default=None, gt=0, le=MAX_D_MODEL,
        description="MLA (multi-head latent attention, DeepSeek-V2/V3): rank of the "
                    "compressed key-value latent, the part of each token's KV cache that is "
                    "not rotary (512); None = standard attention.")
    qk_nope_head_dim: int | None = Field(
        default=None, gt=0, le=MAX_D_MODEL,
        description="MLA: per-head query/key size without rotary embedding (128).")
    qk_rope_head_dim: int | None = Field(
        default=None, gt=0, le=MAX_D_MODEL,
        description="MLA: per-head query size with rotary embedding; the rotary key of this "
                    "size is shared by all heads and cached (64).")
    v_head_dim: int | None = Field(
        default=None, gt=0, le=MAX_D_MODEL,
        description="MLA: per-head value size (128).")
    qk_norm: bool = Field(
        default=False,
        description="RMSNorm over each query and key head (Qwen3, Gemma 3): 2 x head_dim "
                    "parameters per block.")
    sandwich_norm: bool = Field(
        default=False,
        description="An extra norm on the output of attention and of the MLP before the "
                    "residual add (Gemma 2/3 post_attention/post_feedforward_layernorm).")
    sliding_window: int | None = Field(
        default=None, gt=0, le=MAX_SEQ_LEN,
        description="Keys a local-attention query attends to (Gemma 2: 4096, Gemma 3: 1024 "
                    "or 512); None = every block attends to the whole context.")
    global_attn_every: int = Field(
        default=0, ge=0, le=MAX_N_LAYERS,
        description="With sliding_window: blocks n, 2n, ... (1-based) attend globally, the "
                    "others over the window (Gemma 2: 2, Gemma 3: 6); 0 = every block is "
                    "local (Phi-3-mini, Mistral 7B v0.1).")
    n_mtp_layers: int = Field(
        default=0, ge=0, le=MAX_N_LAYERS,
        description="Multi-token prediction modules after the model (DeepSeek-V3: 1), each "
                    "2 norms, a 2h -> h projection, one block, a norm, and the shared LM head; "
                    "training only.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, allow_inf_nan=False,
                           description="Dropout probability.")
    source_url: str = Field(default="", description="Where the configuration was read.")

    @model_validator(mode="before")
    @classmethod
    def _one_line_name(cls, data: Any) -> Any:
        """The name is shown in tables, CSV files and messages: one line, no control
        characters (a CR or an escape sequence would break all three)."""
        name = data.get("name") if isinstance(data, dict) else None
        if isinstance(name, str):
            bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
            if bad is not None:
                raise ValueError(f"name: control character {bad!r}; a name is one line of "
                                 "printable text")
        return data

    @model_validator(mode="before")
    @classmethod
    def _refuse_bool_numbers(cls, data: Any) -> Any:
        """true/false is not a size or a probability (pydantic would read True as 1)."""
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key) if isinstance(key, str) else None
                if field is not None and isinstance(value, bool) and field.annotation is not bool:
                    raise ValueError(f"{key}: must be a number, got {value!r}")
        return data

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelSpec:
        self._check_new_shapes()
        if not self.is_mla and self.head_dim is None and self.d_model % self.n_heads != 0:
            raise ValueError(
                f"n_heads: {self.n_heads} heads do not divide d_model={self.d_model}; "
                "choose n_heads dividing d_model or give head_dim explicitly"
            )
        if self.n_heads % self.kv_heads != 0:
            raise ValueError(
                f"n_kv_heads: {self.kv_heads} must divide n_heads={self.n_heads} "
                "(grouped-query attention shares each KV head among a whole group)"
            )
        if self.experts_top_k > self.n_experts:
            raise ValueError(
                f"experts_top_k: {self.experts_top_k} exceeds n_experts={self.n_experts}"
            )
        if self.pooler and self.arch != "encoder":
            raise ValueError("pooler: only encoder models (BERT) have a pooler")
        if self.tied_embeddings and not self.lm_head:
            raise ValueError("tied_embeddings: needs lm_head=True")
        n_params = _param_total(self, active=False)
        if n_params > MAX_N_PARAMS:
            raise ValueError(f"n_params: these sizes give {n_params:.3g} parameters; at most "
                             f"{MAX_N_PARAMS:.0e} are supported (MAX_N_PARAMS)")
        return self

    def _check_new_shapes(self) -> None:
        """The current-architecture fields: each only where it means something."""
        mla = ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
        if self.kv_lora_rank is not None:
            missing = [f for f in mla if getattr(self, f) is None]
            if missing:
                raise ValueError(f"{missing[0]}: required with kv_lora_rank (multi-head latent "
                                 "attention)")
            if self.head_dim is not None:
                raise ValueError("head_dim: not used with MLA (kv_lora_rank); its head sizes are "
                                 "qk_nope_head_dim, qk_rope_head_dim and v_head_dim")
            if self.n_kv_heads not in (None, self.n_heads):
                raise ValueError(f"n_kv_heads: MLA decompresses a key and a value for each of "
                                 f"the {self.n_heads} heads; leave it unset")
            if self.position != "rotary":
                raise ValueError("position: MLA caches a rotary key; use 'rotary'")
            if self.qkv_bias or self.qk_norm:
                field = "qkv_bias" if self.qkv_bias else "qk_norm"
                raise ValueError(f"{field}: not supported with MLA (DeepSeek's projections "
                                 "have neither)")
        else:
            for f in ("q_lora_rank", *mla):
                if getattr(self, f) is not None:
                    raise ValueError(f"{f}: only with kv_lora_rank (multi-head latent "
                                     "attention)")
        if not self.is_moe:
            if self.moe_d_ff is not None:
                raise ValueError("moe_d_ff: only for mixture-of-experts models (n_experts > 1)")
            if self.n_dense_layers:
                raise ValueError("n_dense_layers: only for mixture-of-experts models "
                                 "(n_experts > 1)")
        if self.n_dense_layers >= self.n_layers > 0 and self.is_moe:
            raise ValueError(f"n_dense_layers: {self.n_dense_layers} leaves no MoE block of "
                             f"n_layers={self.n_layers}; it must be below n_layers")
        if self.global_attn_every and self.sliding_window is None:
            raise ValueError("global_attn_every: needs sliding_window (the local blocks' span)")
        if self.sandwich_norm and self.norm_position != "pre":
            raise ValueError("sandwich_norm: only with norm_position='pre' (Gemma 2/3)")
        if self.n_mtp_layers and (self.arch != "decoder" or not self.lm_head):
            raise ValueError("n_mtp_layers: multi-token prediction needs a decoder with an "
                             "lm_head")

    # ---- derived shapes ------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        """Key/value heads actually used (n_heads when not grouped; n_heads for MLA, whose
        keys and values are decompressed per head)."""
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def d_head(self) -> int:
        """Per-head query/key size (MLA: qk_nope_head_dim + qk_rope_head_dim)."""
        if self.is_mla:
            return int(self.qk_nope_head_dim or 0) + int(self.qk_rope_head_dim or 0)
        return self.head_dim if self.head_dim is not None else self.d_model // self.n_heads

    @property
    def d_value(self) -> int:
        """Per-head value size (MLA: v_head_dim; otherwise d_head)."""
        return int(self.v_head_dim or 0) if self.is_mla else self.d_head

    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention (DeepSeek-V2/V3)."""
        return self.kv_lora_rank is not None

    @property
    def expert_d_ff(self) -> int:
        """Inner size of each routed and shared expert."""
        return self.moe_d_ff if self.moe_d_ff is not None else self.d_ff

    @property
    def n_moe_layers(self) -> int:
        """Blocks with a mixture-of-experts MLP (the MTP modules' blocks not included)."""
        return self.n_layers - self.n_dense_layers if self.is_moe else 0

    @property
    def kv_cache_elements_per_token(self) -> int:
        """F18/F21: elements one token adds to one global-attention block's KV cache: K and
        V of every KV head, 2 · n_kv_heads · head_dim; with MLA the latent and the shared
        rotary key, kv_lora_rank + qk_rope_head_dim (DeepSeek-V3: 512 + 64 = 576)."""
        if self.is_mla:
            return int(self.kv_lora_rank or 0) + int(self.qk_rope_head_dim or 0)
        return 2 * self.kv_heads * self.d_head

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1

    @property
    def causal(self) -> bool:
        return self.arch == "decoder"

    # ---- parameter counts (from the per-layer structure: one source of truth) ---------------
    @property
    def n_params(self) -> int:
        """Total parameters, every expert included."""
        return round(_param_total(self, active=False))

    @property
    def n_active_params(self) -> int:
        """Parameters used per token: routed experts count top_k / n_experts of theirs (the
        MTP modules included, as in n_params)."""
        return round(_param_total(self, active=True))

    @property
    def n_mtp_params(self) -> int:
        """Parameters of the multi-token prediction modules alone (part of n_params; they
        share the token embedding and LM head with the model, which they do not count)."""
        from planner.model.layers import outer_structure  # layers imports this module

        return sum(r.n_params for r in outer_structure(self)[1] if r.group)

    def with_(self, **changes: Any) -> ModelSpec:
        """A validated copy with some fields changed (e.g. fewer layers for a CPU run)."""
        return ModelSpec.model_validate({**self.model_dump(), **changes})


def _param_total(spec: ModelSpec, *, active: bool) -> float:
    from planner.model.layers import (  # layers imports this module
        block_kind_counts,
        block_structure,
        outer_structure,
    )

    def frac(row: Any) -> float:
        return row.active_frac if active else 1.0

    before, after = outer_structure(spec)
    total = 0.0
    for row in before:
        total += row.n_params * frac(row)
    for kind, count, _first in block_kind_counts(spec):
        for row in block_structure(spec, kind):
            total += row.n_params * frac(row) * count
    for row in after:
        total += row.n_params * frac(row)
    return total


# ---- presets ---------------------------------------------------------------------------------
_HF = "https://huggingface.co/"

_BERT = dict(arch="encoder", norm="layernorm", norm_position="post", mlp_act="gelu",
             position="learned", n_token_types=2, qkv_bias=True, attn_out_bias=True,
             mlp_bias=True, embedding_norm=True, final_norm=False, lm_head=False, pooler=True,
             dropout=0.1)
# GPT-2 family layout (pre-LN with biases, GELU, learned positions, tied embeddings); also used
# by planner.plan.backtest for published GPT-style shapes without a preset.
GPT2_STYLE = dict(arch="decoder", norm="layernorm", norm_position="pre", mlp_act="gelu",
             position="learned", tied_embeddings=True, qkv_bias=True, attn_out_bias=True,
             mlp_bias=True, vocab_size=50257, dropout=0.1)
_LLAMA = dict(arch="decoder", norm="rmsnorm", norm_position="pre", mlp_act="silu",
              gated_mlp=True, position="rotary")
_MEGATRON = dict(GPT2_STYLE, vocab_size=51200, max_seq_len=2048, dropout=0.0)

_PRESETS: dict[str, dict[str, Any]] = {
    "bert-base-cased": dict(_BERT, n_layers=12, d_model=768, n_heads=12, d_ff=3072,
                            vocab_size=28996, max_seq_len=512,
                            source_url=_HF + "google-bert/bert-base-cased/blob/main/config.json"),
    "bert-large-uncased": dict(_BERT, n_layers=24, d_model=1024, n_heads=16, d_ff=4096,
                               vocab_size=30522, max_seq_len=512,
                               source_url=_HF + "google-bert/bert-large-uncased/blob/main/"
                                                "config.json"),
    "gpt2": dict(GPT2_STYLE, n_layers=12, d_model=768, n_heads=12, d_ff=3072, max_seq_len=1024,
                 source_url=_HF + "openai-community/gpt2/blob/main/config.json"),
    "gpt2-medium": dict(GPT2_STYLE, n_layers=24, d_model=1024, n_heads=16, d_ff=4096,
                        max_seq_len=1024,
                        source_url=_HF + "openai-community/gpt2-medium/blob/main/config.json"),
    "gpt2-large": dict(GPT2_STYLE, n_layers=36, d_model=1280, n_heads=20, d_ff=5120,
                        max_seq_len=1024,
                       source_url=_HF + "openai-community/gpt2-large/blob/main/config.json"),
    "gpt2-xl": dict(GPT2_STYLE, n_layers=48, d_model=1600, n_heads=25, d_ff=6400, max_seq_len=1024,
                    source_url=_HF + "openai-community/gpt2-xl/blob/main/config.json"),
    # Brown et al. 2020, Table 2.1: 96 layers, d_model 12288, 96 heads of 128, context 2048.
    "gpt3-175b": dict(GPT2_STYLE, n_layers=96, d_model=12288, n_heads=96, d_ff=4 * 12288,
                      max_seq_len=2048, dropout=0.0,
                      source_url="https://arxiv.org/abs/2005.14165 (Table 2.1)"),
    # Zhang et al. 2022, Table 1; HF OPT configs: ReLU, pre-LN, 2 reserved position rows.
    "opt-175b": dict(GPT2_STYLE, n_layers=96, d_model=12288, n_heads=96, d_ff=49152,
                     vocab_size=50272,
                     max_seq_len=2048, position_offset=2, mlp_act="relu", dropout=0.1,
                     source_url="https://arxiv.org/abs/2205.01068 (Table 1); "
                                + _HF + "facebook/opt-66b/blob/main/config.json (layout)"),
    # LLaMA-1: Touvron et al. 2023, Table 2; layouts as converted on the Hub (huggyllama/*).
    "llama-7b": dict(_LLAMA, n_layers=32, d_model=4096, n_heads=32, d_ff=11008, vocab_size=32000,
                     max_seq_len=2048,
                     source_url=_HF + "huggyllama/llama-7b/blob/main/config.json"),
    "llama-13b": dict(_LLAMA, n_layers=40, d_model=5120, n_heads=40, d_ff=13824, vocab_size=32000,
                      max_seq_len=2048,
                      source_url=_HF + "huggyllama/llama-13b/blob/main/config.json"),
    "llama-33b": dict(_LLAMA, n_layers=60, d_model=6656, n_heads=52, d_ff=17920, vocab_size=32000,
                      max_seq_len=2048,
                      source_url=_HF + "huggyllama/llama-30b/blob/main/config.json"),
    "llama-65b": dict(_LLAMA, n_layers=80, d_model=8192, n_heads=64, d_ff=22016, vocab_size=32000,
                      max_seq_len=2048,
                      source_url=_HF + "huggyllama/llama-65b/blob/main/config.json"),
    "llama-2-7b": dict(_LLAMA, n_layers=32, d_model=4096, n_heads=32, d_ff=11008,
                       vocab_size=32000, max_seq_len=4096,
                       source_url=_HF + "meta-llama/Llama-2-7b-hf/blob/main/config.json"),
    "llama-2-13b": dict(_LLAMA, n_layers=40, d_model=5120, n_heads=40, d_ff=13824,
                        vocab_size=32000, max_seq_len=4096,
                        source_url=_HF + "meta-llama/Llama-2-13b-hf/blob/main/config.json"),
    "llama-2-70b": dict(_LLAMA, n_layers=80, d_model=8192, n_heads=64, n_kv_heads=8, d_ff=28672,
                        vocab_size=32000, max_seq_len=4096,
                        source_url=_HF + "meta-llama/Llama-2-70b-hf/blob/main/config.json"),
    "llama-3-8b": dict(_LLAMA, n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8, d_ff=14336,
                       vocab_size=128256, max_seq_len=8192,
                       source_url=_HF + "meta-llama/Meta-Llama-3-8B/blob/main/config.json"),
    "llama-3-70b": dict(_LLAMA, n_layers=80, d_model=8192, n_heads=64, n_kv_heads=8, d_ff=28672,
                        vocab_size=128256, max_seq_len=8192,
                        source_url=_HF + "meta-llama/Meta-Llama-3-70B/blob/main/config.json"),
    "llama-3.1-405b": dict(_LLAMA, n_layers=126, d_model=16384, n_heads=128, n_kv_heads=8,
                           d_ff=53248, vocab_size=128256, max_seq_len=131072,
                           source_url=_HF + "meta-llama/Llama-3.1-405B/blob/main/config.json"),
    # Llama 3.1 and 3.3 keep Llama 3's shapes with a 128k context (rope_scaling "llama3",
    # no parameters); 3.3 70B is 3.1 70B's architecture.
    "llama-3.1-8b": dict(_LLAMA, n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8,
                         d_ff=14336, vocab_size=128256, max_seq_len=131072,
                         source_url=_HF + "meta-llama/Llama-3.1-8B/blob/main/config.json"),
    "llama-3.1-70b": dict(_LLAMA, n_layers=80, d_model=8192, n_heads=64, n_kv_heads=8,
                          d_ff=28672, vocab_size=128256, max_seq_len=131072,
                          source_url=_HF + "meta-llama/Llama-3.1-70B/blob/main/config.json"),
    "llama-3.3-70b": dict(_LLAMA, n_layers=80, d_model=8192, n_heads=64, n_kv_heads=8,
                          d_ff=28672, vocab_size=128256, max_seq_len=131072,
                          source_url=_HF + "meta-llama/Llama-3.3-70B-Instruct/blob/main/"
                                           "config.json"),
    "mistral-7b": dict(_LLAMA, n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8, d_ff=14336,
                       vocab_size=32000, max_seq_len=32768,
                       source_url=_HF + "mistralai/Mistral-7B-v0.1/blob/main/config.json"),
    "mixtral-8x7b": dict(_LLAMA, n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8,
                         d_ff=14336, vocab_size=32000, max_seq_len=32768, n_experts=8,
                         experts_top_k=2,
                         source_url=_HF + "mistralai/Mixtral-8x7B-v0.1/blob/main/config.json"),
    # Mixtral 8x22B: tokenizer v3 (vocabulary 32,768), as the Instruct config.json and
    # litgpt's config give it; 8 experts of 3 · 6144 · 16384, top-2.
    "mixtral-8x22b": dict(_LLAMA, n_layers=56, d_model=6144, n_heads=48, n_kv_heads=8,
                          d_ff=16384, vocab_size=32768, max_seq_len=65536, n_experts=8,
                          experts_top_k=2,
                          source_url=_HF + "mistralai/Mixtral-8x22B-v0.1/blob/main/config.json"),
    # Qwen3-235B-A22B: 94 MoE blocks of 128 experts (moe_intermediate_size 1536), top-8, no
    # shared expert, no dense block (mlp_only_layers = []; intermediate_size 12288 unused),
    # 64 query and 4 KV heads of 128 with per-head q/k RMSNorm.
    "qwen3-235b-a22b": dict(_LLAMA, n_layers=94, d_model=4096, n_heads=64, n_kv_heads=4,
                            head_dim=128, d_ff=12288, moe_d_ff=1536, vocab_size=151936,
                            max_seq_len=40960, n_experts=128, experts_top_k=8, qk_norm=True,
                            source_url=_HF + "Qwen/Qwen3-235B-A22B/blob/main/config.json"),
    # DeepSeek-V3: 61 blocks, the first 3 dense (18432), then 256 routed experts of 2048, top-8,
    # plus 1 shared; MLA with q_lora 1536, kv_lora 512, heads of 128 + 64 (rotary), values 128;
    # one multi-token prediction module (num_nextn_predict_layers = 1). n_params counts the
    # main model (671,026,404,352) and the MTP module's own 11,610,067,968 (sharing the
    # embedding and head): 682.6 B; the hub's "685B" also counts the MTP's stored copies of
    # embedding and head (README_WEIGHTS.md).
    "deepseek-v3": dict(_LLAMA, n_layers=61, d_model=7168, n_heads=128, d_ff=18432,
                        moe_d_ff=2048, n_dense_layers=3, vocab_size=129280, max_seq_len=163840,
                        n_experts=256, experts_top_k=8, n_shared_experts=1, q_lora_rank=1536,
                        kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
                        v_head_dim=128, n_mtp_layers=1,
                        source_url=_HF + "deepseek-ai/DeepSeek-V3/blob/main/config.json"),
    "qwen2-7b": dict(_LLAMA, n_layers=28, d_model=3584, n_heads=28, n_kv_heads=4, d_ff=18944,
                     vocab_size=152064, max_seq_len=131072, qkv_bias=True,
                     source_url=_HF + "Qwen/Qwen2-7B/blob/main/config.json"),
    # Narayanan et al. 2021 (Megatron-LM, SC'21), Table 1: 530B = 105 layers x 20480 x 128 heads;
    # 1T = 128 layers x 25600 x 160 heads; vocabulary 51,200, sequence 2048.
    "megatron-530b": dict(_MEGATRON, n_layers=105, d_model=20480, n_heads=128, d_ff=4 * 20480,
                          source_url="https://arxiv.org/abs/2104.04473 (Table 1)"),
    "megatron-1t": dict(_MEGATRON, n_layers=128, d_model=25600, n_heads=160, d_ff=4 * 25600,
                        source_url="https://arxiv.org/abs/2104.04473 (Table 1)"),
}


def list_models() -> list[str]:
    """Names of the built-in presets, in catalog order."""
    return list(_PRESETS)


def model(name: str | Path | ModelSpec) -> ModelSpec:
    """The preset called `name`, the model of a Hugging Face `config.json` when `name` is a
    path ending in .json, or of a Hugging Face model id ("owner/name") from the local
    Hugging Face cache (`hf_cached_config`; never the network). A ModelSpec is passed through.

    Raises InputError (a ValueError) naming the closest presets when the name is unknown, and
    naming the id and the cache folder when an id is not cached.
    """
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str | Path):
        raise InputError("model", "must be a preset name, a config.json path or a ModelSpec, "
                                  f"got {_describe(name)}")
    if str(name).endswith(".json"):
        return model_from_hf_config(Path(name))
    key = str(name).strip().lower()
    if key not in _PRESETS and isinstance(name, str) and _HF_REPO_ID.fullmatch(name.strip()):
        return model_from_hf_cache(name.strip())
    if key not in _PRESETS:
        close = difflib.get_close_matches(key, _PRESETS, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError("model", f"unknown preset {clip(str(name))}{hint} (see `planner models` "
                                  f"for all {len(_PRESETS)} presets)")
    return ModelSpec(name=key, **_PRESETS[key])


# ---- Hugging Face model ids, from the local cache only ------------------------------------------
# A Hugging Face repository id, "owner/name": letters, digits, "-", "_", "." (the Hub's rule;
# at most 96 characters each side, no "--" or ".." anywhere, which the cache's folder names
# and paths rely on).
_HF_REPO_ID = re.compile(r"(?!.*(--|\.\.))[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}",
                         re.ASCII)


def hf_cache_dir() -> Path:
    """The local Hugging Face hub cache, where `huggingface_hub` puts downloads: $HF_HUB_CACHE,
    else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
    ~/.cache/huggingface/hub (huggingface_hub's constants.py, same order)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return _expand(os.environ[var])
    if os.environ.get("HF_HOME"):
        return _expand(os.environ["HF_HOME"]) / "hub"
    return _expand(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface" / "hub"


def _expand(text: str) -> Path:
    """`text` as a path with "~" expanded (left as is where no home folder is known)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # no HOME and no password entry
        return Path(text)


def hf_cached_config(repo_id: str) -> Path | None:
    """The cached `config.json` of the model `repo_id` ("owner/name"), or None when the cache
    holds none: hub cache layout `models--owner--name/snapshots/<commit>/config.json`, the
    snapshot `refs/main` points to first, else the most recently written snapshot. Reads only
    the local disk (no network, no `huggingface_hub` needed)."""
    folder = hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    try:
        ref = folder / "refs" / "main"
        if ref.is_file():
            commit = ref.read_text(encoding="utf-8", errors="replace").strip()
            config = folder / "snapshots" / commit / "config.json"
            if re.fullmatch(r"[0-9A-Za-z]+", commit) and config.is_file():
                return config
        snapshots = folder / "snapshots"
        found = [p for p in snapshots.glob("*/config.json") if p.is_file()] \
            if snapshots.is_dir() else []
    except OSError:  # an unreadable cache folder counts as not cached
        return None
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def _shown_dir(path: Path) -> str:
    """A folder for a message, the home folder as "~"."""
    home = _expand("~")
    text = (f"~/{path.relative_to(home)}" if home not in (Path("~"), Path("/"))
            and path.is_relative_to(home)
            else str(path))
    return text if len(text) <= 160 else "…" + text[-159:]


def model_from_hf_cache(repo_id: str) -> ModelSpec:
    """The model of Hugging Face id `repo_id` ("owner/name") from the `config.json` in the
    local cache (hf_cached_config), read by model_from_hf_config and named `repo_id`.

    Raises InputError naming the id: when the cache has no config.json for it (with the cache
    folder and what to do), or when its config cannot be imported (e.g. an unsupported
    model_type, with the supported ones).
    """
    if not _HF_REPO_ID.fullmatch(repo_id):
        raise InputError("model", f"{clip(repo_id)} is not a Hugging Face model id "
                                  "(owner/name)")
    config = hf_cached_config(repo_id)
    if config is None:
        raise InputError("model", f"{repo_id} is not in the local Hugging Face cache "
                                  f"({_shown_dir(hf_cache_dir())}) and is not a preset; "
                                  "download its config.json (`hf download "
                                  f"{repo_id} config.json`) or give a config.json path")
    try:
        spec = model_from_hf_config(config, name=repo_id)
    except InputError as err:
        raise InputError("model", f"{repo_id} (config.json in the Hugging Face cache): {err}"
                         ) from None
    return spec.with_(source_url=f"{_HF}{repo_id}/blob/{config.parent.name}/config.json")


def _describe(value: Any) -> str:
    """User input for a message: short, and safe for containers nested 10^5 deep and integers
    of 10^5 digits (whose repr() would raise)."""
    if isinstance(value, dict):
        return f"a JSON object with {len(value)} keys"
    if isinstance(value, list | tuple):
        return f"a JSON array of {len(value)} items"
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > 512:
            return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
        return f"{value:,}"
    return clip(value)


def _shown_path(path: Path, max_chars: int = 100) -> str:
    """A path for a message: its end (where the file name is) when it is long."""
    text = str(path)
    return repr(text if len(text) <= max_chars else "…" + text[-(max_chars - 1):])


# ---- Hugging Face config.json ------------------------------------------------------------------
# Every reader gets the config with null values dropped: only a missing key or null means "use
# the default"; 0, "false" and the like are values and are checked (_check_hf_values).
def _hf_llama_like(cfg: dict[str, Any]) -> dict[str, Any]:
    n_heads = cfg["num_attention_heads"]
    act = cfg.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise InputError("hidden_act", f"{_describe(act)} not supported for llama-like models "
                                       "(use silu)")
    bias = cfg.get("attention_bias", False)
    out = dict(
        arch="decoder", norm="rmsnorm", norm_position="pre", mlp_act="silu", gated_mlp=True,
        position="rotary", n_layers=cfg["num_hidden_layers"], d_model=cfg["hidden_size"],
        n_heads=n_heads, n_kv_heads=cfg.get("num_key_value_heads", n_heads),
        d_ff=cfg["intermediate_size"], vocab_size=cfg["vocab_size"],
        max_seq_len=cfg.get("max_position_embeddings", 4096),
        tied_embeddings=cfg.get("tie_word_embeddings", False), qkv_bias=bias,
        attn_out_bias=bias, mlp_bias=cfg.get("mlp_bias", False),
    )
    if "head_dim" in cfg:
        out["head_dim"] = cfg["head_dim"]  # ModelSpec validates it (and the head count)
    return out


def _hf_mixtral(cfg: dict[str, Any]) -> dict[str, Any]:
    return dict(_hf_llama_like(cfg), n_experts=cfg["num_local_experts"],
                experts_top_k=cfg["num_experts_per_tok"])


def _hf_qwen2(cfg: dict[str, Any]) -> dict[str, Any]:
    # Qwen2 always has q/k/v biases and no bias on o_proj (transformers Qwen2Attention).
    return dict(_hf_llama_like(cfg), qkv_bias=True, attn_out_bias=False)


def _hf_qwen3(cfg: dict[str, Any]) -> dict[str, Any]:
    # transformers Qwen3Attention: q/k/v/o biases = attention_bias, RMSNorm over each query and
    # key head (q_norm, k_norm), head_dim 128 unless given.
    if cfg.get("use_sliding_window", False) is not False:
        raise InputError("use_sliding_window", "only false is supported for Qwen3 (released "
                                               "configs; windows from max_window_layers on are "
                                               "not modelled)")
    types = cfg.get("layer_types")
    if types is not None and (not isinstance(types, list)
                              or any(t != "full_attention" for t in types)):
        raise InputError("layer_types", "only full_attention blocks are supported for Qwen3, "
                                        f"got {_describe(types)}")
    out = dict(_hf_llama_like(cfg), qk_norm=True)
    out.setdefault("head_dim", 128)
    return out


def _hf_qwen3_moe(cfg: dict[str, Any]) -> dict[str, Any]:
    # transformers Qwen3MoeDecoderLayer: a MoE block unless the block is in mlp_only_layers or
    # (index + 1) is not a multiple of decoder_sparse_step; experts of moe_intermediate_size,
    # no shared expert, a bias-free router.
    step = cfg.get("decoder_sparse_step", 1)
    if step != 1:
        raise InputError("decoder_sparse_step", f"{_describe(step)} is not supported; only 1 "
                                                "(every block MoE, as released)")
    # config.json says num_experts; transformers 5 writes it back as num_local_experts
    experts = cfg["num_local_experts"] if "num_experts" not in cfg and (
        "num_local_experts" in cfg) else cfg["num_experts"]
    return dict(_hf_qwen3(cfg), n_experts=experts,
                experts_top_k=cfg["num_experts_per_tok"], moe_d_ff=cfg["moe_intermediate_size"],
                n_dense_layers=_dense_prefix(cfg.get("mlp_only_layers", []), "mlp_only_layers"))


def _dense_prefix(value: Any, key: str) -> int:
    """k for a list of dense block indices [0, 1, ..., k − 1]; InputError otherwise."""
    if not isinstance(value, list) or any(
            isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise InputError(key, f"must be a list of block indices, got {_describe(value)}")
    if value != list(range(len(value))):
        raise InputError(key, "only dense blocks first ([0, 1, ..., k−1]) are supported")
    return len(value)


def _hf_deepseek_v3(cfg: dict[str, Any]) -> dict[str, Any]:
    # deepseek-ai/DeepSeek-V3 config.json; transformers DeepseekV3: MLA (q_a, q_a_layernorm,
    # q_b or q_proj; kv_a_proj_with_mqa, kv_a_layernorm, kv_b; o_proj), dense MLP of
    # intermediate_size in the first first_k_dense_replace blocks, then MoE blocks of
    # n_routed_experts experts and n_shared_experts shared ones of moe_intermediate_size.
    # Group-limited routing (n_group, topk_group), the scoring function and the FP8
    # quantization_config change no shape and are not read.
    act = cfg.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise InputError("hidden_act", f"{_describe(act)} not supported for DeepSeek (use silu)")
    if cfg.get("attention_bias", False) is not False:
        raise InputError("attention_bias", "only false is supported for DeepSeek MLA (as "
                                           "released)")
    n_heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", n_heads)
    if kv != n_heads:
        raise InputError("num_key_value_heads", f"{_describe(kv)} must equal "
                                                f"num_attention_heads={n_heads:,}: MLA "
                                                "decompresses a key and a value per head")
    if cfg.get("moe_layer_freq", 1) != 1:
        raise InputError("moe_layer_freq", f"{_describe(cfg['moe_layer_freq'])} is not "
                                           "supported; only 1 (every block after the dense "
                                           "ones is MoE)")
    return dict(
        arch="decoder", norm="rmsnorm", norm_position="pre", mlp_act="silu", gated_mlp=True,
        position="rotary", n_layers=cfg["num_hidden_layers"], d_model=cfg["hidden_size"],
        n_heads=n_heads, d_ff=cfg["intermediate_size"], moe_d_ff=cfg["moe_intermediate_size"],
        n_experts=cfg["n_routed_experts"], experts_top_k=cfg["num_experts_per_tok"],
        n_shared_experts=cfg.get("n_shared_experts", 1),
        n_dense_layers=cfg.get("first_k_dense_replace", 3),
        q_lora_rank=cfg.get("q_lora_rank"), kv_lora_rank=cfg["kv_lora_rank"],
        qk_nope_head_dim=cfg["qk_nope_head_dim"], qk_rope_head_dim=cfg["qk_rope_head_dim"],
        v_head_dim=cfg["v_head_dim"], vocab_size=cfg["vocab_size"],
        max_seq_len=cfg.get("max_position_embeddings", 4096),
        tied_embeddings=cfg.get("tie_word_embeddings", False),
        n_mtp_layers=cfg.get("num_nextn_predict_layers", 0),
    )


def _hf_gemma2(cfg: dict[str, Any], *, qk_norm: bool = False, every_default: int = 2,
               max_seq_default: int = 8192) -> dict[str, Any]:
    # transformers Gemma2/Gemma3Text: four RMSNorms per block (input, post_attention,
    # pre_feedforward, post_feedforward), GeGLU (gelu_pytorch_tanh), head_dim 256 unless
    # given, tied embeddings, sliding-window blocks (layer_types, or every n-th global).
    # The embedding scale √h, query_pre_attn_scalar and the logit soft-capping have no
    # parameters and are element-wise (not counted, F5).
    key = "hidden_activation" if "hidden_activation" in cfg else "hidden_act"
    n_heads = cfg["num_attention_heads"]
    bias = cfg.get("attention_bias", False)
    return dict(
        arch="decoder", norm="rmsnorm", norm_position="pre",
        mlp_act=_activation(cfg, key, "gelu_pytorch_tanh"), gated_mlp=True, position="rotary",
        sandwich_norm=True, qk_norm=qk_norm, n_layers=cfg["num_hidden_layers"],
        d_model=cfg["hidden_size"], n_heads=n_heads,
        n_kv_heads=cfg.get("num_key_value_heads", n_heads), head_dim=cfg.get("head_dim", 256),
        d_ff=cfg["intermediate_size"], vocab_size=cfg["vocab_size"],
        max_seq_len=cfg.get("max_position_embeddings", max_seq_default),
        tied_embeddings=cfg.get("tie_word_embeddings", True), qkv_bias=bias,
        attn_out_bias=bias, **_hf_window(cfg, every_default=every_default,
                                         window_default=4096),
    )


def _hf_gemma3_text(cfg: dict[str, Any]) -> dict[str, Any]:
    # Gemma 3 = Gemma 2's block with per-head q/k RMSNorm; 5 local blocks per global one.
    return _hf_gemma2(cfg, qk_norm=True, every_default=6, max_seq_default=131072)


def _hf_phi3(cfg: dict[str, Any]) -> dict[str, Any]:
    # transformers Phi3: fused qkv_proj and gate_up_proj (the same parameters as separate
    # projections), no biases, and a sliding window on every block when sliding_window is set
    # (Phi-3-mini-4k: 2047).
    out = dict(_hf_llama_like(cfg), qkv_bias=False, attn_out_bias=False,
               dropout=cfg.get("resid_pdrop", 0.0))
    return dict(out, **_hf_window(cfg, every_default=0, window_default=None))


def _hf_window(cfg: dict[str, Any], *, every_default: int, window_default: int | None
               ) -> dict[str, Any]:
    """sliding_window and global_attn_every from `layer_types` (a list of
    "sliding_attention" / "full_attention" per block), else `sliding_window` with
    `sliding_window_pattern` (Gemma 3) or the model type's pattern; {} for all-global."""
    window = _hf_int(cfg, "sliding_window", window_default, maximum=MAX_SEQ_LEN)
    types = cfg.get("layer_types")
    if types is None:
        if window is None:
            return {}
        every = _hf_int(cfg, "sliding_window_pattern", every_default, minimum=0,
                        maximum=MAX_N_LAYERS)
        return dict(sliding_window=window, global_attn_every=every)
    kinds = ("sliding_attention", "full_attention")
    if not isinstance(types, list) or any(not isinstance(t, str) or t not in kinds
                                          for t in types):
        raise InputError("layer_types", "must be a list of \"sliding_attention\" and "
                                        f"\"full_attention\", got {_describe(types)}")
    n_layers = cfg["num_hidden_layers"]
    if len(types) != n_layers:
        raise InputError("layer_types", f"has {len(types):,} entries for "
                                        f"num_hidden_layers={n_layers:,}")
    local = [t == "sliding_attention" for t in types]
    if not any(local):
        return {}
    if window is None:
        raise InputError("sliding_window", "required by the sliding_attention blocks of "
                                           "layer_types")
    if all(local):
        return dict(sliding_window=window, global_attn_every=0)
    every = local.index(False) + 1
    if local != [(i + 1) % every != 0 for i in range(n_layers)]:
        raise InputError("layer_types", "only n − 1 sliding_attention blocks then one "
                                        "full_attention block, repeated, is supported")
    return dict(sliding_window=window, global_attn_every=every)


def _hf_int(cfg: dict[str, Any], key: str, default: int | None, *, minimum: int = 1,
            maximum: int) -> int | None:
    """A size a reader reads itself (absent or null: `default`), checked like _HF_INT_KEYS."""
    value = cfg.get(key, default)
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise InputError(key, f"must be a whole number, got {_describe(value)}")
    if isinstance(value, int) and not isinstance(value, bool) and value > maximum:
        raise InputError(key, f"must be ≤ {maximum:,}, got {_describe(value)}")
    return check_int(value, key, minimum=minimum, maximum=maximum)


def _hf_gpt2(cfg: dict[str, Any]) -> dict[str, Any]:
    d_model = cfg["n_embd"]
    return dict(
        GPT2_STYLE, n_layers=cfg["n_layer"], d_model=d_model, n_heads=cfg["n_head"],
        d_ff=cfg.get("n_inner", 4 * d_model), vocab_size=cfg["vocab_size"],
        max_seq_len=cfg.get("n_positions", 1024),
        mlp_act=_activation(cfg, "activation_function", "gelu_new"),
        tied_embeddings=cfg.get("tie_word_embeddings", True),
        dropout=cfg.get("resid_pdrop", 0.1),
    )


def _hf_bert(cfg: dict[str, Any]) -> dict[str, Any]:
    return dict(
        _BERT, n_layers=cfg["num_hidden_layers"], d_model=cfg["hidden_size"],
        n_heads=cfg["num_attention_heads"], d_ff=cfg["intermediate_size"],
        vocab_size=cfg["vocab_size"], max_seq_len=cfg.get("max_position_embeddings", 512),
        n_token_types=cfg.get("type_vocab_size", 2),
        mlp_act=_activation(cfg, "hidden_act", "gelu"),
        dropout=cfg.get("hidden_dropout_prob", 0.1),
    )


def _hf_opt(cfg: dict[str, Any]) -> dict[str, Any]:
    d_model = cfg["hidden_size"]
    if cfg.get("word_embed_proj_dim", d_model) != d_model:
        raise InputError(
            "word_embed_proj_dim", "OPT models with an embedding projection (opt-350m) are not "
            f"supported; it must equal hidden_size={d_model}"
        )
    if not cfg.get("do_layer_norm_before", True):
        raise InputError("do_layer_norm_before", "only pre-LN OPT models are supported (true)")
    bias = cfg.get("enable_bias", True)
    return dict(
        GPT2_STYLE, n_layers=cfg["num_hidden_layers"], d_model=d_model,
        n_heads=cfg["num_attention_heads"], d_ff=cfg["ffn_dim"], vocab_size=cfg["vocab_size"],
        max_seq_len=cfg.get("max_position_embeddings", 2048), position_offset=2,
        mlp_act=_activation(cfg, "activation_function", "relu"),
        tied_embeddings=cfg.get("tie_word_embeddings", True), qkv_bias=bias,
        attn_out_bias=bias, mlp_bias=bias, dropout=cfg.get("dropout", 0.1),
    )


# Hugging Face activation names (transformers ACT2FN) -> the FLOP convention used (F5).
_HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu", "gelu_fast": "gelu",
                   "gelu_pytorch_tanh": "gelu", "relu": "relu", "silu": "silu", "swish": "silu"}


def _activation(cfg: dict[str, Any], key: str, default: str) -> str:
    act = cfg.get(key, default)
    if not isinstance(act, str) or act not in _HF_ACTIVATIONS:
        raise InputError(key, f"{_describe(act)} is not supported; use one of "
                              f"{', '.join(_HF_ACTIVATIONS)}")
    return _HF_ACTIVATIONS[act]


# The config key each ModelSpec field is read from, per model_type, so that a problem ModelSpec
# finds is reported under the user's key ("hidden_size: ...", not "d_model: ...").
_LLAMA_KEYS = dict(n_layers="num_hidden_layers", d_model="hidden_size",
                   n_heads="num_attention_heads", n_kv_heads="num_key_value_heads",
                   d_ff="intermediate_size", max_seq_len="max_position_embeddings",
                   tied_embeddings="tie_word_embeddings", qkv_bias="attention_bias",
                   attn_out_bias="attention_bias", n_experts="num_local_experts",
                   experts_top_k="num_experts_per_tok")
_GPT2_KEYS = dict(n_layers="n_layer", d_model="n_embd", n_heads="n_head", d_ff="n_inner",
                  max_seq_len="n_positions", tied_embeddings="tie_word_embeddings",
                  dropout="resid_pdrop")
_BERT_KEYS = dict(n_layers="num_hidden_layers", d_model="hidden_size",
                  n_heads="num_attention_heads", d_ff="intermediate_size",
                  max_seq_len="max_position_embeddings", n_token_types="type_vocab_size",
                  dropout="hidden_dropout_prob")
_OPT_KEYS = dict(n_layers="num_hidden_layers", d_model="hidden_size",
                 n_heads="num_attention_heads", d_ff="ffn_dim",
                 max_seq_len="max_position_embeddings", tied_embeddings="tie_word_embeddings",
                 qkv_bias="enable_bias", attn_out_bias="enable_bias", mlp_bias="enable_bias")

_QWEN3_KEYS = dict(_LLAMA_KEYS, n_experts="num_experts", moe_d_ff="moe_intermediate_size",
                   n_dense_layers="mlp_only_layers")
_DEEPSEEK_KEYS = dict(_LLAMA_KEYS, n_experts="n_routed_experts",
                      moe_d_ff="moe_intermediate_size", n_dense_layers="first_k_dense_replace",
                      n_mtp_layers="num_nextn_predict_layers")
_GEMMA_KEYS = dict(_LLAMA_KEYS, mlp_act="hidden_activation",
                   global_attn_every="sliding_window_pattern")
_PHI3_KEYS = dict(_LLAMA_KEYS, dropout="resid_pdrop")

# Model types that hold a supported model inside another: where to find it.
_HF_NESTED = {"gemma3": "'gemma3' is the multimodal Gemma 3 (a vision tower, not modelled, "
                        "around a language model); give its text_config, model_type "
                        "gemma3_text"}

# In the order support was added (the first seven before issue 10), alphabetical within.
_HF_READERS: dict[str, tuple[Any, dict[str, str]]] = {
    "bert": (_hf_bert, _BERT_KEYS),
    "gpt2": (_hf_gpt2, _GPT2_KEYS),
    "llama": (_hf_llama_like, _LLAMA_KEYS),
    "mistral": (_hf_llama_like, _LLAMA_KEYS),
    "mixtral": (_hf_mixtral, _LLAMA_KEYS),
    "opt": (_hf_opt, _OPT_KEYS),
    "qwen2": (_hf_qwen2, _LLAMA_KEYS),
    "deepseek_v3": (_hf_deepseek_v3, _DEEPSEEK_KEYS),
    "gemma2": (_hf_gemma2, _GEMMA_KEYS),
    "gemma3_text": (_hf_gemma3_text, _GEMMA_KEYS),
    "phi3": (_hf_phi3, _PHI3_KEYS),
    "qwen3": (_hf_qwen3, _LLAMA_KEYS),
    "qwen3_moe": (_hf_qwen3_moe, _QWEN3_KEYS),
}

# Size keys the readers compute with, with their (minimum, maximum): a string ("4096") would be
# repeated, not multiplied; 0 is a value (refused), not "absent".
_HF_INT_KEYS: dict[str, tuple[int, int]] = {
    **dict.fromkeys(("hidden_size", "n_embd", "word_embed_proj_dim", "num_attention_heads",
                     "n_head", "num_key_value_heads", "head_dim"), (1, MAX_D_MODEL)),
    **dict.fromkeys(("num_hidden_layers", "n_layer"), (1, MAX_N_LAYERS)),
    **dict.fromkeys(("intermediate_size", "n_inner", "ffn_dim"), (1, MAX_D_FF)),
    "vocab_size": (1, MAX_VOCAB_SIZE),
    "type_vocab_size": (0, MAX_VOCAB_SIZE),
    **dict.fromkeys(("max_position_embeddings", "n_positions"), (1, MAX_SEQ_LEN)),
    **dict.fromkeys(("num_local_experts", "num_experts_per_tok"), (1, MAX_N_EXPERTS)),
    # the current shapes (qwen3_moe, deepseek_v3, gemma3_text)
    "moe_intermediate_size": (1, MAX_D_FF),
    **dict.fromkeys(("num_experts", "n_routed_experts"), (1, MAX_N_EXPERTS)),
    "n_shared_experts": (0, MAX_N_EXPERTS),
    **dict.fromkeys(("first_k_dense_replace", "num_nextn_predict_layers"), (0, MAX_N_LAYERS)),
    **dict.fromkeys(("decoder_sparse_step", "moe_layer_freq"), (1, MAX_N_LAYERS)),
    "sliding_window_pattern": (0, MAX_N_LAYERS),
    **dict.fromkeys(("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                     "v_head_dim"), (1, MAX_D_MODEL)),
}
# Switches: JSON true/false only ("false" as a string is truthy in Python).
_HF_BOOL_KEYS = frozenset({"tie_word_embeddings", "attention_bias", "mlp_bias",
                           "do_layer_norm_before", "enable_bias"})
# Dropout probabilities, in [0, 1).
_HF_PROB_KEYS = frozenset({"resid_pdrop", "hidden_dropout_prob", "dropout"})


def _check_hf_values(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config without null values, every size, switch and probability checked."""
    out = {key: value for key, value in cfg.items() if value is not None}
    for key, value in out.items():
        if key in _HF_INT_KEYS:
            low, high = _HF_INT_KEYS[key]
            if isinstance(value, int) and not isinstance(value, bool) and value > high:
                raise InputError(key, f"must be ≤ {high:,}, got {_describe(value)}")
            if isinstance(value, dict | list):
                raise InputError(key, f"must be a whole number, got {_describe(value)}")
            out[key] = check_int(value, key, minimum=low, maximum=high)
        elif key in _HF_BOOL_KEYS:
            if not isinstance(value, bool):
                raise InputError(key, f"must be true or false, got {_describe(value)}")
            out[key] = check_bool(value, key)
        elif key in _HF_PROB_KEYS:
            if isinstance(value, dict | list):
                raise InputError(key, f"must be a number, got {_describe(value)}")
            p = check_number(value, key, minimum=0.0)
            if p >= 1:
                raise InputError(key, f"must be < 1 (a dropout probability), got {p:g}")
            out[key] = p
    return out


_FIELD_NAME = re.compile(r"\b[a-z_]+\b")


def _with_hf_keys(err: ValidationError, keys: dict[str, str]) -> InputError:
    """ModelSpec's one-line error with its field names replaced by the config's keys."""
    field, _, message = one_line(err).partition(": ")
    message = _FIELD_NAME.sub(lambda m: keys.get(m.group(0), m.group(0)), message)
    return InputError(keys.get(field, field), message)


def supported_hf_model_types() -> list[str]:
    """The model_types model_from_hf_config reads, in the order support was added."""
    return list(_HF_READERS)


def model_from_hf_config(source: str | Path | dict[str, Any], *, name: str | None = None
                         ) -> ModelSpec:
    """A ModelSpec from a Hugging Face `config.json` (a path, a JSON string or a dict).

    Supported `model_type`s: bert, gpt2, llama, mistral, mixtral, opt, qwen2, deepseek_v3,
    gemma2, gemma3_text, phi3, qwen3, qwen3_moe ("gemma3", the multimodal config, is refused
    with a pointer to its text_config). DeepSeek-V3's q_lora_rank missing or null means no
    query compression (V2-Lite), num_nextn_predict_layers missing means no MTP module. Any
    problem
    (unreadable, non-UTF-8 or oversized file, missing key, unsupported type, a value of the
    wrong type or out of range, impossible shape) raises InputError (a ValueError) naming the
    config key; a missing key or null takes the model type's default.
    """
    try:
        return _model_from_hf_config(source, name=name)
    except RecursionError:  # NB: a guard; reading and every message avoid deep recursion
        raise InputError("config", "nested too deeply to read; a config.json is a flat JSON "
                                   "object") from None


def _model_from_hf_config(source: str | Path | dict[str, Any], *, name: str | None
                          ) -> ModelSpec:
    cfg, source_label = _read_hf_config(source)
    model_type = cfg.get("model_type")
    supported = ", ".join(supported_hf_model_types())
    if model_type is None:
        raise InputError("model_type", f"missing; supported: {supported}")
    if not isinstance(model_type, str):
        raise InputError("model_type", f"must be a string such as \"llama\", got "
                                       f"{_describe(model_type)}; supported: {supported}")
    if model_type in _HF_NESTED:
        raise InputError("model_type", _HF_NESTED[model_type])
    if model_type not in _HF_READERS:
        raise InputError("model_type", f"{clip(model_type)} is not supported; supported: "
                                       f"{supported}")
    reader, keys = _HF_READERS[model_type]
    values = _check_hf_values(cfg)
    try:
        fields = reader(values)
    except KeyError as err:
        raise InputError(err.args[0], f"required for model_type {model_type!r} but missing "
                                      "(or null)") from None
    path_name = cfg.get("_name_or_path")
    label = name or (_label(path_name) if isinstance(path_name, str) else None)
    fields["source_url"] = source_label
    try:
        return ModelSpec(name=str(label or f"hf-{model_type}"), **fields)
    except ValidationError as err:
        raise _with_hf_keys(err, keys) from None


def _label(text: str) -> str | None:
    """A config's `_name_or_path` as a report label: control and format characters dropped,
    whitespace runs made one space, cut to MAX_NAME_CHARS; None when nothing is left."""
    kept = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text
                   if unicodedata.category(c) != "Cf")
    return " ".join(kept.split())[:MAX_NAME_CHARS] or None


def _read_hf_config(source: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The config as a dict, and where it came from (for source_url)."""
    if isinstance(source, dict):
        return source, "config dict"
    if isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
        if len(source) > MAX_CONFIG_BYTES:
            raise InputError("config", f"JSON text of {len(source):,} characters; a config.json "
                                       f"is at most {MAX_CONFIG_BYTES:,} bytes (MAX_CONFIG_BYTES)")
        return _parse_json(source, field="config", where="the JSON text"), "JSON text"
    if not isinstance(source, str | Path):
        raise InputError("config", "must be a path to a config.json file, its JSON text or a "
                                   f"dict, got {_describe(source)}")
    path = Path(source)
    shown = _shown_path(path)
    try:
        if path.is_dir():
            raise InputError("config.json", f"{shown} is a folder; give the config.json file "
                                            "in it")
        if not path.is_file():
            raise InputError("config.json", f"no such file {shown}")
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except (OSError, ValueError) as err:  # name too long, a NUL byte in it, no permission
        if isinstance(err, InputError):
            raise
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError("config.json", f"cannot read {shown} ({reason})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise InputError("config.json", f"{shown} is larger than {MAX_CONFIG_BYTES:,} bytes "
                                        "(MAX_CONFIG_BYTES); a config.json is a few kB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError("config.json", f"{shown} is not UTF-8 text (byte "
                                        f"0x{data[err.start]:02x} at offset {err.start}); "
                                        "save it as UTF-8") from None
    return _parse_json(text, field="config.json", where=shown), str(path)


def _parse_json(text: str, *, field: str, where: str) -> dict[str, Any]:
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(field, f"not valid JSON ({err.msg} at line {err.lineno}) in {where}"
                         ) from None
    except RecursionError:
        raise InputError(field, f"{where} is nested too deeply to read; a config.json is a "
                                "flat JSON object") from None
    except ValueError as err:  # e.g. an integer of more than 4,300 digits
        raise InputError(field, f"not valid JSON in {where} ({str(err)[:80]})") from None
    if not isinstance(cfg, dict):
        raise InputError(field, f"top level of {where} must be a JSON object {{...}}, got "
                                f"{_describe(cfg)}")
    return cfg
