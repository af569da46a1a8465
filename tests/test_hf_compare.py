"""The analytic model against Hugging Face `transformers` implementations: code nobody here wrote.

For each architecture: build the model from a config (no download), read the same config with
`planner.model_from_hf_config`, and compare
- the parameter count, for a tiny config and for the full-size config on the meta device;
- FLOPs per layer group, forward and backward, measured on a tiny CPU run with eager
  attention (exact), and the forward with the default SDPA attention, whose fused CPU kernel
  FlopCounterMode misses (counted here by `planner.measure.counters.extra_flop_formulas`).
Layer groups: q+k+v (GPT-2 fuses them), attention matmuls (QKᵀ and softmax·V, computed inside
the attention module), attention output, MLP input (up+gate; Mixtral fuses them), MLP down,
MoE router, MoE experts (all experts), pooler, LM head.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from planner.measure.counters import count_module_flops  # noqa: E402
from planner.model.layers import layer_table  # noqa: E402
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
    }


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
    }


ARCHS = list(_configs())

# HF module name -> analytic layer group; {i} is the block index.
HF_GROUPS = [
    (r"model\.layers\.(\d+)\.self_attn\.[qkv]_proj", "blocks.{}.qkv"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj", "blocks.{}.attn_out"),
    (r"model\.layers\.(\d+)\.self_attn", "blocks.{}.attn_matmuls"),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up)_proj", "blocks.{}.mlp_in"),
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
    assert sum(p.numel() for p in net.parameters()) == spec.n_params


@pytest.mark.parametrize("arch", ARCHS)
def test_hf_parameter_count_equals_analytic_full_size_on_meta(arch):
    cls, cfg, preset = _full_configs()[arch]
    with torch.device("meta"):
        net = cls(cfg)
    n = sum(p.numel() for p in net.parameters())
    assert n == model_from_hf_config(cfg.to_dict()).n_params
    assert n == model(preset).n_params  # and the preset of the same model


@pytest.mark.parametrize("arch", ARCHS)
def test_hf_flops_per_layer_equal_analytic(arch):
    net, spec = _build(arch, "eager")
    ids = torch.randint(1, 256, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    fwd, bwd = count_module_flops(net, lambda: _run(net, ids))
    assert _grouped(fwd) == _analytic_groups(spec, "fwd_flops")
    assert _grouped(bwd) == _analytic_groups(spec, "bwd_flops")  # backward = 2 × forward


@pytest.mark.parametrize("arch", ["llama", "gpt2", "bert"])
def test_hf_sdpa_on_cpu_is_counted(arch):
    # The default attention on the CPU is the fused SDPA kernel; FlopCounterMode alone would
    # count 0 for it. Forward only: its backward recomputes QKᵀ (2.5 × forward, as torch
    # counts the CUDA flash kernel), while the analytic model uses 2 × forward.
    net, spec = _build(arch, "sdpa")
    ids = torch.randint(1, 256, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    fwd, _ = count_module_flops(net, lambda: _run(net, ids), backward=False)
    assert _grouped(fwd) == _analytic_groups(spec, "fwd_flops")
