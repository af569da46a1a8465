"""ModelSpec presets, parameter counts and Hugging Face config import."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

import planner
from planner.model.spec import ModelSpec, model, model_from_hf_config

# Published parameter counts, each the exact number of elements of the released checkpoint,
# as printed by `sum(p.numel() for p in AutoModel.from_config(cfg).parameters())` on the source
# config (the same count the model cards round: "7B", "70B", ...). Where a count is quoted in
# the issue tracker (issue 2), the source is the checkpoint's model card / safetensors index.
PUBLISHED_PARAMS = {
    # BertModel with pooler: google-bert/bert-base-cased (HF model page: "108M params").
    "bert-base-cased": 108_310_272,
    # google-bert/bert-large-uncased: 335,141,888 (BertModel with pooler; "336M" on the card).
    "bert-large-uncased": 335_141_888,
    # openai-community/gpt2*: GPT2Model counts, tied head ("124M", "355M", "774M", "1.5B").
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    # GPT-3 175B (Brown et al. 2020, Table 2.1: 175.0B "n_params"): the shapes of Table 2.1
    # with learned positions and a tied head give 174.6 B; the paper rounds.
    "gpt3-175b": 174_604_259_328,
    # OPT-175B (Zhang et al. 2022): same shapes as GPT-3 with 50,272 vocab, 2 extra positions.
    "opt-175b": 174_604_468_224,
    # LLaMA-1 (Touvron et al. 2023, Table 2: 6.7B, 13.0B, 32.5B, 65.2B); exact counts of the
    # converted checkpoints huggyllama/llama-{7,13,30,65}b.
    "llama-7b": 6_738_415_616,
    "llama-13b": 13_015_864_320,
    "llama-33b": 32_528_943_616,
    "llama-65b": 65_285_660_672,
    # Llama 2 (meta-llama/Llama-2-*-hf safetensors index): issue 2 quotes 7b and 70b.
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    # Llama 3 / 3.1 (meta-llama model cards: 8.03B, 70.6B, 405.9B).
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llama-3.1-405b": 405_853_388_800,
    # Llama 3.1 8B / 70B and 3.3 70B keep Llama 3's shapes (model cards: 8.03B, 70.6B).
    "llama-3.1-8b": 8_030_261_248,
    "llama-3.1-70b": 70_553_706_496,
    "llama-3.3-70b": 70_553_706_496,
    # Mixtral-8x22B ("141B", 39B active; tokenizer v3, 32,768 tokens).
    "mixtral-8x22b": 140_630_071_296,
    # Qwen/Qwen3-235B-A22B: 235,093,634,560 as counted by transformers and published by
    # keras-hub (keras_hub/src/models/qwen3_moe/qwen3_moe_presets.py, qwen3_moe_235b_a22b_en).
    "qwen3-235b-a22b": 235_093_634_560,
    # DeepSeek-V3 (README_WEIGHTS.md): main model "671B" = 671,026,404,352 (transformers'
    # DeepseekV3ForCausalLM count) + the MTP module's "11.5B unique parameters" =
    # 11,610,067,968, sharing the embedding and head (tests/test_model_shapes.py by hand).
    "deepseek-v3": 682_636_472_320,
    # mistralai/Mistral-7B-v0.1 ("7.24B") and Mixtral-8x7B-v0.1 ("46.7B").
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
    # Qwen/Qwen2-7B model card: 7.62B (7,615,616,512).
    "qwen2-7b": 7_615_616_512,
    # Narayanan et al. 2021, Table 1: "529.6" and "1008.0" billion parameters.
    "megatron-530b": 529_600_819_200,
    "megatron-1t": 1_008_038_758_400,
}


def test_every_preset_has_a_published_count():
    assert set(PUBLISHED_PARAMS) == set(planner.list_models())


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_preset_parameter_count_is_exact(name):
    spec = model(name)
    assert spec.n_params == PUBLISHED_PARAMS[name]
    assert spec.source_url


def test_megatron_counts_round_to_table_1():
    # Narayanan et al. 2021 Table 1 prints 529.6 and 1008.0 (billions).
    assert round(model("megatron-530b").n_params / 1e9, 1) == 529.6
    assert round(model("megatron-1t").n_params / 1e9, 1) == 1008.0


def test_mixtral_active_parameters():
    # Mixtral paper (Jiang et al. 2024): "13B active parameters". Per layer: attention
    # 4096*(4096+1024+1024+4096) = 41,943,040, 2 of 8 experts 2*3*4096*14336 = 352,321,536,
    # router 4096*8 = 32,768, norms 2*4096 = 8,192 -> 394,305,536; x32 = 12,617,777,152;
    # + embedding and head 2*32000*4096 = 262,144,000 + final norm 4,096 = 12,879,925,248.
    spec = model("mixtral-8x7b")
    per_layer = 41_943_040 + 352_321_536 + 32_768 + 8_192
    expected = 32 * per_layer + 2 * 32000 * 4096 + 4096
    assert spec.n_active_params == expected == 12_879_925_248
    assert spec.n_params > spec.n_active_params


def test_unknown_model_suggests_closest():
    with pytest.raises(ValueError, match=r"model: unknown preset 'llama2-7b'.*llama-2-7b"):
        model("llama2-7b")


def test_heads_not_dividing_hidden_size_names_the_field():
    with pytest.raises(ValidationError, match="n_heads"):
        model("gpt2").with_(n_heads=7)


def test_kv_heads_must_divide_heads():
    with pytest.raises(ValidationError, match="n_kv_heads"):
        model("llama-2-70b").with_(n_kv_heads=7)


@pytest.mark.parametrize("field,value", [("n_layers", 0), ("d_model", -1), ("vocab_size", 0)])
def test_non_positive_sizes_are_rejected(field, value):
    with pytest.raises(ValidationError, match=field):
        model("gpt2").with_(**{field: value})


def test_unknown_field_is_rejected():
    with pytest.raises(ValidationError, match="n_layerz"):
        ModelSpec.model_validate({**model("gpt2").model_dump(), "n_layerz": 3})


# ---- Hugging Face config.json -------------------------------------------------------------------
LLAMA2_7B_CONFIG = {  # meta-llama/Llama-2-7b-hf config.json (abridged to the fields read)
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "vocab_size": 32000, "max_position_embeddings": 4096, "hidden_act": "silu",
    "tie_word_embeddings": False, "rms_norm_eps": 1e-5,
}
MIXTRAL_CONFIG = {  # mistralai/Mixtral-8x7B-v0.1 config.json
    "model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "vocab_size": 32000, "max_position_embeddings": 32768, "num_local_experts": 8,
    "num_experts_per_tok": 2, "hidden_act": "silu", "tie_word_embeddings": False,
}
GPT2_CONFIG = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
               "vocab_size": 50257, "n_positions": 1024, "activation_function": "gelu_new"}
BERT_CONFIG = {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12,
               "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 28996,
               "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu"}
QWEN2_CONFIG = {  # Qwen/Qwen2-7B config.json
    "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
    "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
    "vocab_size": 152064, "max_position_embeddings": 131072, "hidden_act": "silu",
    "tie_word_embeddings": False,
}
OPT_CONFIG = {  # facebook/opt-66b layout with OPT-175B sizes
    "model_type": "opt", "hidden_size": 12288, "num_hidden_layers": 96,
    "num_attention_heads": 96, "ffn_dim": 49152, "vocab_size": 50272,
    "max_position_embeddings": 2048, "do_layer_norm_before": True,
    "word_embed_proj_dim": 12288, "activation_function": "relu",
}


@pytest.mark.parametrize("config,preset", [
    (LLAMA2_7B_CONFIG, "llama-2-7b"), (MIXTRAL_CONFIG, "mixtral-8x7b"), (GPT2_CONFIG, "gpt2"),
    (BERT_CONFIG, "bert-base-cased"), (QWEN2_CONFIG, "qwen2-7b"), (OPT_CONFIG, "opt-175b"),
])
def test_hf_config_matches_preset_count(config, preset):
    assert model_from_hf_config(config).n_params == model(preset).n_params


def test_hf_config_from_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA2_7B_CONFIG))
    spec = model_from_hf_config(path)
    assert spec.n_params == 6_738_415_616
    assert spec.kv_heads == 32


def test_hf_unsupported_model_type_lists_supported():
    with pytest.raises(ValueError, match=r"model_type: 't5' is not supported; supported: bert, "
                                         r"gpt2, llama, mistral, mixtral, opt, qwen2, "
                                         r"deepseek_v3, gemma2, gemma3_text, phi3, qwen3, "
                                         r"qwen3_moe$"):
        model_from_hf_config({"model_type": "t5"})


def test_hf_missing_key_names_it():
    cfg = {k: v for k, v in LLAMA2_7B_CONFIG.items() if k != "intermediate_size"}
    with pytest.raises(ValueError, match="intermediate_size: required"):
        model_from_hf_config(cfg)


def test_hf_malformed_json_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
        model_from_hf_config(path)


def test_hf_missing_file():
    with pytest.raises(ValueError, match="no such file"):
        model_from_hf_config("/nonexistent/config.json")


def test_hf_impossible_shape_names_field():
    with pytest.raises(ValueError, match="n_heads"):
        model_from_hf_config({**LLAMA2_7B_CONFIG, "num_attention_heads": 33,
                              "num_key_value_heads": 33})


@pytest.mark.parametrize("changes,message", [
    ({"hidden_size": "4096"}, "hidden_size: must be a whole number, got '4096'"),
    ({"num_attention_heads": 0, "head_dim": 128}, "n_heads"),
    ({"hidden_act": "tanh"}, "hidden_act: 'tanh' not supported"),
])
def test_hf_bad_values_are_one_line_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        model_from_hf_config({**LLAMA2_7B_CONFIG, **changes})


def test_hf_gpt2_unknown_activation_and_null_dropout():
    with pytest.raises(ValueError, match="activation_function: 'mish' is not supported"):
        model_from_hf_config({**GPT2_CONFIG, "activation_function": "mish"})
    assert model_from_hf_config({**GPT2_CONFIG, "resid_pdrop": None}).dropout == 0.1
