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

    The four families people plan for are all expressed with these fields:
    BERT (encoder, learned positions, token types, post-LN, GELU, pooler), GPT-2/3 and OPT
    (decoder, learned positions, pre-LN with bias, GELU/ReLU, tied embeddings), Llama/Mistral/Qwen2
    (RMSNorm, SwiGLU, rotary, grouped-query attention, untied head, optional qkv bias) and
    Mixtral-style mixture-of-experts (`n_experts`, `experts_top_k`, `n_shared_experts`).
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
    d_ff: int = Field(gt=0, le=MAX_D_FF, description="MLP inner size (per expert for MoE).")
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
                                  description="Always-on experts (DeepSeek).")
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
        if self.head_dim is None and self.d_model % self.n_heads != 0:
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

    # ---- derived shapes ------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        """Key/value heads actually used (n_heads when not grouped)."""
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def d_head(self) -> int:
        """Per-head size."""
        return self.head_dim if self.head_dim is not None else self.d_model // self.n_heads

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
        """Parameters used per token: routed experts count top_k / n_experts of theirs."""
        return round(_param_total(self, active=True))

    def with_(self, **changes: Any) -> ModelSpec:
        """A validated copy with some fields changed (e.g. fewer layers for a CPU run)."""
        return ModelSpec.model_validate({**self.model_dump(), **changes})


def _param_total(spec: ModelSpec, *, active: bool) -> float:
    from planner.model.layers import layer_structure  # layers imports this module

    total = 0.0
    for row in layer_structure(spec):
        n = row.n_params * (row.active_frac if active else 1.0)
        total += n * spec.n_layers if row.block else n
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
    "mistral-7b": dict(_LLAMA, n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8, d_ff=14336,
                       vocab_size=32000, max_seq_len=32768,
                       source_url=_HF + "mistralai/Mistral-7B-v0.1/blob/main/config.json"),
    "mixtral-8x7b": dict(_LLAMA, n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8,
                         d_ff=14336, vocab_size=32000, max_seq_len=32768, n_experts=8,
                         experts_top_k=2,
                         source_url=_HF + "mistralai/Mixtral-8x7B-v0.1/blob/main/config.json"),
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
    """The preset called `name`, or the model of a Hugging Face `config.json` when `name` is a
    path ending in .json (a ModelSpec is passed through).

    Raises InputError (a ValueError) naming the closest presets when the name is unknown.
    """
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str | Path):
        raise InputError("model", "must be a preset name, a config.json path or a ModelSpec, "
                                  f"got {_describe(name)}")
    if str(name).endswith(".json"):
        return model_from_hf_config(Path(name))
    key = str(name).strip().lower()
    if key not in _PRESETS:
        close = difflib.get_close_matches(key, _PRESETS, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError("model", f"unknown preset {clip(str(name))}{hint} (see `planner models` "
                                  f"for all {len(_PRESETS)} presets)")
    return ModelSpec(name=key, **_PRESETS[key])


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

_HF_READERS: dict[str, tuple[Any, dict[str, str]]] = {
    "llama": (_hf_llama_like, _LLAMA_KEYS),
    "mistral": (_hf_llama_like, _LLAMA_KEYS),
    "mixtral": (_hf_mixtral, _LLAMA_KEYS),
    "qwen2": (_hf_qwen2, _LLAMA_KEYS),
    "gpt2": (_hf_gpt2, _GPT2_KEYS),
    "bert": (_hf_bert, _BERT_KEYS),
    "opt": (_hf_opt, _OPT_KEYS),
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
    return sorted(_HF_READERS)


def model_from_hf_config(source: str | Path | dict[str, Any], *, name: str | None = None
                         ) -> ModelSpec:
    """A ModelSpec from a Hugging Face `config.json` (a path, a JSON string or a dict).

    Supported `model_type`s: bert, gpt2, llama, mistral, mixtral, opt, qwen2. Any problem
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
