"""The analytic model against Hugging Face `transformers` implementations: code nobody here wrote.

For each architecture: build the model from a config (no download), read the same config with
`planner.model_from_hf_config`, and compare
- the parameter count, for a tiny config and for the full-size config on the meta device;
- FLOPs per layer group, forward and backward, measured on a tiny CPU run with eager
  attention (exact), and the forward with the default SDPA attention, whose fused CPU kernel
  FlopCounterMode misses (counted here by `planner.measure.counters.extra_flop_formulas`).
Layer groups: q+k+v (GPT-2 and Phi-3 fuse them; MLA's q_a, q_b, kv_a, kv_b), attention
matmuls (QKᵀ and softmax·V, computed inside the attention module), attention output, MLP input
(up+gate; Mixtral and Phi-3 fuse them), MLP down, MoE router, MoE experts (all experts), shared
experts (DeepSeek), pooler, LM head.

The current shapes (issue 10): qwen3 (per-head q/k norms), qwen3_moe (experts of
moe_intermediate_size), gemma2 and gemma3_text (sandwich norms, GeGLU, head_dim 256, sliding
windows, tied head), phi3 (fused projections), deepseek_v3 (dense-first MoE with a shared
expert, MLA). transformers' DeepseekV3ForCausalLM does not build the multi-token prediction
module (it drops model.layers.61 when loading), so it is compared with n_params − n_mtp_params.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from planner.measure.counters import count_module_flops  # noqa: E402
from planner.model.layers import block_kind, layer_table  # noqa: E402
from planner.model.spec import model, model_from_hf_config  # noqa: E402

SEQ, BATCH = 16, 2
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             vocab_size=256, max_position_embeddings=128, bos_token_id=0, eos_token_id=0,
             pad_token_id=0)
LLAMA_LIKE = dict(SMALL, num_key_value_heads=2)


def _configs():
    t = transformers
    return {
        "llama": (t.LlamaForCausalLM, t.LlamaConfig(**LLAMA_LIKE)),
        "mistral": (t.MistralForCausalLM, t.MistralConfig(**LLAMA_LIKE)),
        "mixtral": (t.MixtralForCausalLM,
                    t.MixtralConfig(**LLAMA_LIKE, num_local_experts=4, num_experts_per_tok=2)),
        "qwen2": (t.Qwen2ForCausalLM, t.Qwen2Config(**LLAMA_LIKE)),
        "gpt2": (t.GPT2LMHeadModel, t.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=256,
                                                 n_positions=128, bos_token_id=0,
                                                 eos_token_id=0)),
        "bert": (t.BertModel, t.BertConfig(**SMALL)),
        "qwen3": (t.Qwen3ForCausalLM, t.Qwen3Config(**LLAMA_LIKE, head_dim=32)),
        "qwen3_moe": (t.Qwen3MoeForCausalLM, t.Qwen3MoeConfig(
            **LLAMA_LIKE, head_dim=32, moe_intermediate_size=32, num_experts=4,
            num_experts_per_tok=2, mlp_only_layers=[0])),
        "gemma2": (t.Gemma2ForCausalLM, t.Gemma2Config(**LLAMA_LIKE, head_dim=32,
                                                      sliding_window=8)),
        "gemma3_text": (t.Gemma3ForCausalLM, t.Gemma3TextConfig(**LLAMA_LIKE, head_dim=32)),
        "phi3": (t.Phi3ForCausalLM, t.Phi3Config(**LLAMA_LIKE)),
        "deepseek_v3": (t.DeepseekV3ForCausalLM, t.DeepseekV3Config(
            **SMALL, num_key_value_heads=4, moe_intermediate_size=32, n_routed_experts=4,
            num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1, q_lora_rank=32,
            kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
            n_group=1, topk_group=1)),
    }


def _hf_params(arch: str, spec) -> int:
    """The analytic count of what transformers builds (no MTP module, see the docstring)."""
    return spec.n_params - spec.n_mtp_params


def _full_configs():
    """Released sizes (field values from each model's config.json on the Hub)."""
    t = transformers
    return {
        "llama": (t.LlamaForCausalLM, t.LlamaConfig(), "llama-2-7b"),  # defaults = Llama-2-7B
        "mistral": (t.MistralForCausalLM, t.MistralConfig(), "mistral-7b"),
        "mixtral": (t.MixtralForCausalLM, t.MixtralConfig(), "mixtral-8x7b"),
        "qwen2": (t.Qwen2ForCausalLM, t.Qwen2Config(
            hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
            num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
            max_position_embeddings=131072, tie_word_embeddings=False), "qwen2-7b"),
        "gpt2": (t.GPT2LMHeadModel, t.GPT2Config(), "gpt2"),
        "bert": (t.BertModel, t.BertConfig(vocab_size=28996), "bert-base-cased"),
        # Qwen/Qwen3-235B-A22B config.json
        "qwen3_moe": (t.Qwen3MoeForCausalLM, t.Qwen3MoeConfig(
            hidden_size=4096, intermediate_size=12288, moe_intermediate_size=1536,
            num_hidden_layers=94, num_attention_heads=64, num_key_value_heads=4, head_dim=128,
            vocab_size=151936, max_position_embeddings=40960, num_experts=128,
            num_experts_per_tok=8, tie_word_embeddings=False), "qwen3-235b-a22b"),
        # transformers' defaults are DeepSeek-V3's config.json (MTP excluded, see above)
        "deepseek_v3": (t.DeepseekV3ForCausalLM, t.DeepseekV3Config(
            max_position_embeddings=163840), "deepseek-v3"),
        # mistralai/Mixtral-8x22B-v0.1 (tokenizer v3, 32,768 tokens)
        "mixtral_8x22b": (t.MixtralForCausalLM, t.MixtralConfig(
            hidden_size=6144, intermediate_size=16384, num_hidden_layers=56,
            num_attention_heads=48, num_key_value_heads=8, vocab_size=32768,
            max_position_embeddings=65536), "mixtral-8x22b"),
        # meta-llama/Llama-3.1-8B and Llama-3.3-70B-Instruct config.json
        "llama_3.1_8b": (t.LlamaForCausalLM, t.LlamaConfig(
            hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
            num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
            max_position_embeddings=131072), "llama-3.1-8b"),
        "llama_3.3_70b": (t.LlamaForCausalLM, t.LlamaConfig(
            hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
            num_attention_heads=64, num_key_value_heads=8, vocab_size=128256,
            max_position_embeddings=131072), "llama-3.3-70b"),
    }


# Released small models without a preset, counted by transformers from their config.json and
# published by keras-hub's converters, which assert equality with transformers' count
# (keras_hub/src/models/{qwen3,gemma,gemma3,phi3}/*_presets.py "params").
def _small_released():
    t = transformers
    return {
        # Qwen/Qwen3-0.6B: tied head, q/k norms; keras-hub qwen3_0.6b_en 596,049,920
        "qwen3-0.6b": (t.Qwen3ForCausalLM, t.Qwen3Config(
            hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
            num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=151936,
            max_position_embeddings=40960, tie_word_embeddings=True), 596_049_920),
        # google/gemma-2-2b (transformers' Gemma2Config defaults); keras-hub gemma2_2b_en
        "gemma-2-2b": (t.Gemma2ForCausalLM, t.Gemma2Config(), 2_614_341_888),
        # google/gemma-3-1b-pt; keras-hub gemma3_1b 999,885,952
        "gemma-3-1b": (t.Gemma3ForCausalLM, t.Gemma3TextConfig(
            hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
            num_attention_heads=4, num_key_value_heads=1, head_dim=256, vocab_size=262144,
            sliding_window=512, max_position_embeddings=32768), 999_885_952),
        # microsoft/Phi-3-mini-4k-instruct (Phi3Config defaults + sliding_window 2047);
        # keras-hub phi3_mini_4k_instruct_en 3,821,079,552
        "phi-3-mini": (t.Phi3ForCausalLM, t.Phi3Config(sliding_window=2047), 3_821_079_552),
    }


ARCHS = list(_configs())

# HF module name -> analytic layer group; {i} is the block index.
HF_GROUPS = [
    (r"model\.layers\.(\d+)\.self_attn\.([qkv]|qkv|q_a|q_b|kv_b)_proj", "blocks.{}.qkv"),
    (r"model\.layers\.(\d+)\.self_attn\.kv_a_proj_with_mqa", "blocks.{}.qkv"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj", "blocks.{}.attn_out"),
    (r"model\.layers\.(\d+)\.self_attn", "blocks.{}.attn_matmuls"),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|gate_up)_proj", "blocks.{}.mlp_in"),
    (r"model\.layers\.(\d+)\.mlp\.shared_experts\.(gate|up)_proj", "blocks.{}.shared_in"),
    (r"model\.layers\.(\d+)\.mlp\.shared_experts\.down_proj", "blocks.{}.shared_down"),
    (r"model\.layers\.(\d+)\.mlp\.down_proj", "blocks.{}.mlp_down"),
    (r"model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.gate", "blocks.{}.router"),
    (r"model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.experts(\..*)?", "blocks.{}.experts"),
    (r"transformer\.h\.(\d+)\.attn\.c_attn", "blocks.{}.qkv"),
    (r"transformer\.h\.(\d+)\.attn\.c_proj", "blocks.{}.attn_out"),
    (r"transformer\.h\.(\d+)\.attn", "blocks.{}.attn_matmuls"),
    (r"transformer\.h\.(\d+)\.mlp\.c_fc", "blocks.{}.mlp_in"),
    (r"transformer\.h\.(\d+)\.mlp\.c_proj", "blocks.{}.mlp_down"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)", "blocks.{}.qkv"),
    (r"encoder\.layer\.(\d+)\.attention\.self", "blocks.{}.attn_matmuls"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense", "blocks.{}.attn_out"),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense", "blocks.{}.mlp_in"),
    (r"encoder\.layer\.(\d+)\.output\.dense", "blocks.{}.mlp_down"),
    (r"pooler\.dense", "pooler"),
    (r"lm_head", "lm_head"),
]
ANALYTIC_GROUPS = {
    "attn.q": "qkv", "attn.k": "qkv", "attn.v": "qkv", "attn.scores": "attn_matmuls",
    "attn.context": "attn_matmuls", "attn.out": "attn_out", "mlp.up": "mlp_in",
    "mlp.gate": "mlp_in", "mlp.down": "mlp_down", "moe.router": "router",
    "moe.experts.up": "experts", "moe.experts.gate": "experts", "moe.experts.down": "experts",
    "attn.q_a": "qkv", "attn.q_b": "qkv", "attn.kv_a": "qkv", "attn.kv_b": "qkv",
    "moe.shared.up": "shared_in", "moe.shared.gate": "shared_in", "moe.shared.down": "shared_down",
}


def _hf_group(name: str) -> str:
    for pattern, group in HF_GROUPS:
        m = re.fullmatch(pattern, name)
        if m:
            return group.format(m.group(1)) if "{}" in group else group
    raise AssertionError(f"HF module {name!r} has FLOPs but no analytic group")


def _grouped(flops: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for name, v in flops.items():
        if v:
            out[_hf_group(name)] += v
    return dict(out)


def _analytic_groups(spec, column: str) -> dict[str, float]:
    df = layer_table(spec, seq_len=SEQ, batch_size=BATCH, precision="fp32")
    out: dict[str, float] = defaultdict(float)
    for row in df[df["is_matmul"]].itertuples():
        if row.layer.startswith("mtp."):  # transformers builds no MTP module
            continue
        if row.block >= 0:
            local = row.layer.split(".", 2)[2]
            out[f"blocks.{row.block}.{ANALYTIC_GROUPS[local]}"] += getattr(row, column)
        else:
            out[row.layer] += getattr(row, column)
    return {k: v for k, v in out.items() if v}


def _build(arch: str, attn: str):
    cls, cfg = _configs()[arch]
    torch.manual_seed(0)
    net = cls._from_config(cfg, attn_implementation=attn).eval()
    return net, model_from_hf_config(cfg.to_dict())


def _run(net, ids):
    out = net(ids)
    if hasattr(out, "logits"):
        return out.logits
    return torch.cat([out.last_hidden_state.flatten(), out.pooler_output.flatten()])


@pytest.mark.parametrize("arch", ARCHS)
def test_hf_parameter_count_equals_analytic_small(arch):
    net, spec = _build(arch, "eager")
    assert sum(p.numel() for p in net.parameters()) == _hf_params(arch, spec)


@pytest.mark.parametrize("arch", list(_full_configs()))
def test_hf_parameter_count_equals_analytic_full_size_on_meta(arch):
    cls, cfg, preset = _full_configs()[arch]
    with torch.device("meta"):
        net = cls(cfg)
    n = sum(p.numel() for p in net.parameters())
    assert n == _hf_params(arch, model_from_hf_config(cfg.to_dict()))
    assert n == _hf_params(arch, model(preset))  # and the preset of the same model


@pytest.mark.parametrize("name", list(_small_released()))
def test_hf_parameter_count_of_released_small_models(name):
    cls, cfg, published = _small_released()[name]
    with torch.device("meta"):
        net = cls(cfg)
    n = sum(p.numel() for p in net.parameters())
    assert n == model_from_hf_config(cfg.to_dict()).n_params == published


@pytest.mark.parametrize("arch", ARCHS)
def test_hf_flops_per_layer_equal_analytic(arch):
    net, spec = _build(arch, "eager")
    ids = torch.randint(1, 256, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    fwd, bwd = count_module_flops(net, lambda: _run(net, ids))
    assert _windowed(spec, _grouped(fwd)) == _analytic_groups(spec, "fwd_flops")
    assert _windowed(spec, _grouped(bwd)) == _analytic_groups(spec, "bwd_flops")  # 2 × fwd


def _windowed(spec, groups: dict[str, float]) -> dict[str, float]:
    """transformers' eager attention computes a sliding-window block's whole SEQ × SEQ score
    matrix and masks it; the analytic model counts only the window's keys (F23): SEQ × W.
    Gemma 2 (small, window 8 < SEQ 16): block 0 is local, so its QKᵀ and softmax·V count
    8/16 of transformers'; block 1 is global and equal."""
    out = dict(groups)
    for i in range(spec.n_layers):
        window = block_kind(spec, i).window
        if window is not None and window < SEQ:
            out[f"blocks.{i}.attn_matmuls"] *= window / SEQ
    return out


@pytest.mark.parametrize("arch", ["llama", "gpt2", "bert"])
def test_hf_sdpa_on_cpu_is_counted(arch):
    # The default attention on the CPU is the fused SDPA kernel; FlopCounterMode alone would
    # count 0 for it. Forward only: its backward recomputes QKᵀ (2.5 × forward, as torch
    # counts the CUDA flash kernel), while the analytic model uses 2 × forward.
    net, spec = _build(arch, "sdpa")
    ids = torch.randint(1, 256, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    fwd, _ = count_module_flops(net, lambda: _run(net, ids), backward=False)
    assert _grouped(fwd) == _analytic_groups(spec, "fwd_flops")


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma2", "deepseek_v3"])
def test_hf_kv_cache_bytes_equal_analytic(arch):
    # The cache transformers keeps after a prefill of SEQ tokens against the analytic
    # kv_cache_bytes (F18; F21: DeepSeek-V3 caches the latent, kv_lora_rank + qk_rope_head_dim
    # = 16 + 8 elements per token here, not decompressed keys and values). A sliding-window
    # block (F23, Gemma 2 here: window 8 < SEQ 16) keeps W − 1 tokens in transformers (the
    # W-th arrives with the next query); the analytic cache is the W keys a query attends to.
    net, spec = _build(arch, "eager")
    ids = torch.randint(1, 256, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(ids, use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    measured = sum(t.numel() * t.element_size() for layer in cache.layers
                   for t in (layer.keys, layer.values))
    analytic = layer_table(spec, seq_len=SEQ, batch_size=BATCH, mode="inference",
                           precision="fp32")["kv_cache_bytes"].sum()
    local = sum(1 for i in range(spec.n_layers)
                if (block_kind(spec, i).window or SEQ) < SEQ)
    assert analytic == measured + local * BATCH * spec.kv_cache_elements_per_token * 4
    if arch == "deepseek_v3":
        assert measured == spec.n_layers * BATCH * SEQ * (16 + 8) * 4
