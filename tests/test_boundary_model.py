"""Bad input never gets through planner.model: every example is one line naming the user's field
or config key and what is allowed, or a correct result (issue "Bad input never gets through").
"""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest
from pydantic import ValidationError

import planner
from planner.errors import InputError
from planner.model.layers import MAX_BATCH_SIZE, layer_table
from planner.model.seed import seed_example
from planner.model.spec import (
    MAX_CONFIG_BYTES,
    MAX_N_LAYERS,
    MAX_SEQ_LEN,
    ModelSpec,
    model,
    model_from_hf_config,
)

LLAMA = {  # meta-llama/Llama-2-7b-hf config.json, the fields read
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "vocab_size": 32000, "max_position_embeddings": 4096, "hidden_act": "silu",
    "tie_word_embeddings": False,
}
LLAMA_PARAMS = 6_738_415_616  # the released checkpoint's count
GPT2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
        "n_positions": 1024, "activation_function": "gelu_new"}
OPT = {"model_type": "opt", "hidden_size": 768, "num_hidden_layers": 12,
       "num_attention_heads": 12, "ffn_dim": 3072, "vocab_size": 50272,
       "max_position_embeddings": 2048, "do_layer_norm_before": True,
       "word_embed_proj_dim": 768, "activation_function": "relu"}
MIXTRAL = {**LLAMA, "model_type": "mixtral", "num_key_value_heads": 8,
           "intermediate_size": 14336, "num_local_experts": 8, "num_experts_per_tok": 2}


def _raises(fn, match: str) -> str:
    """The message of the InputError (a ValueError) `fn` raises; it must be one line."""
    with pytest.raises(InputError, match=match) as info:
        fn()
    text = str(info.value)
    assert "\n" not in text and len(text) < 400, text
    return text


def _hf(cfg, match: str) -> str:
    return _raises(lambda: model_from_hf_config(cfg), match)


def _nested(depth: int) -> dict:
    deep: dict = {}
    for _ in range(depth):
        deep = {"a": deep}
    return deep


# ---- 1. what reaches model_from_hf_config ------------------------------------------------------
def test_model_type_given_as_a_list_is_one_line():
    _hf({"model_type": ["llama"]},
        r"^model_type: must be a string such as \"llama\", got a JSON array of 1 items; "
        r"supported: bert, gpt2")


def test_missing_model_type_lists_supported():
    _hf({"hidden_size": 8}, r"^model_type: missing; supported: bert, gpt2, llama")


@pytest.mark.parametrize("source,shown", [
    (None, "None"), ([LLAMA], "a JSON array of 1 items"), (42, "42"),
])
def test_none_list_or_number_source_is_one_line(source, shown):
    _hf(source, r"^config: must be a path to a config.json file, its JSON text or a dict, got "
        + shown)


def test_json_array_file_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps([LLAMA]))
    _hf(path, r"^config\.json: top level of '.*config\.json' must be a JSON object \{\.\.\.\}, "
              r"got a JSON array of 1 items$")


def test_json_array_text_is_refused():
    _hf(json.dumps([LLAMA]), r"^config: top level of the JSON text must be a JSON object")


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' * 100_000])
def test_deeply_nested_json_file_is_one_line(tmp_path, text):
    path = tmp_path / "config.json"
    path.write_text(text)
    _hf(path, r"^config\.json: '.*config\.json' is nested too deeply to read")
    _hf(text, r"^config: the JSON text is nested too deeply to read")


def test_deeply_nested_dict_is_one_line_and_ignored_where_unread():
    deep = _nested(100_000)
    _hf({**LLAMA, "hidden_size": deep},
        r"^hidden_size: must be a whole number, got a JSON object with 1 keys$")
    _hf({**LLAMA, "tie_word_embeddings": deep}, r"^tie_word_embeddings: must be true or false")
    _hf({**LLAMA, "model_type": deep}, r"^model_type: must be a string")
    # a key the reader does not use may hold anything
    assert model_from_hf_config({**LLAMA, "quantization_config": deep}).n_params == LLAMA_PARAMS


def test_non_utf8_file_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b'{"model_type": "llama\xff"}')
    # offset 21: the byte after '{"model_type": "llama'
    _hf(path, r"^config\.json: '.*config\.json' is not UTF-8 text \(byte 0xff at offset 21\); "
              r"save it as UTF-8$")


def test_oversized_file_is_refused_with_the_bound(tmp_path):
    path = tmp_path / "config.json"
    with path.open("wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)  # sparse: 10 MB + 1 byte of zeros
    _hf(path, r"^config\.json: '.*config\.json' is larger than 10,000,000 bytes "
              r"\(MAX_CONFIG_BYTES\)")
    _hf("{" + " " * MAX_CONFIG_BYTES + "}",
        r"^config: JSON text of 10,000,002 characters; a config.json is at most 10,000,000")


def test_unreadable_path_is_one_line_and_clipped():
    text = _hf("/" + "x" * 5000, r"^config\.json: cannot read '…x{99}' \(File name too long\)$")
    assert "x" * 100 not in text
    _hf("con\0fig.json", r"^config\.json: no such file 'con\\x00fig.json'$")


def test_integer_of_5000_digits_in_json_text_is_one_line():
    _hf('{"model_type": "llama", "vocab_size": ' + "9" * 5000 + "}",
        r"^config: not valid JSON in the JSON text \(Exceeds the limit \(4300 digits\)")


def test_valid_file_through_model(tmp_path):
    path = tmp_path / "llama.json"
    path.write_text(json.dumps(LLAMA))
    spec = model(str(path))
    assert spec.n_params == LLAMA_PARAMS
    assert spec.source_url == str(path)
    assert model_from_hf_config(json.dumps(LLAMA)).source_url == "JSON text"


# ---- 2. silently wrong readings ----------------------------------------------------------------
@pytest.mark.parametrize("base,key,value", [
    (LLAMA, "tie_word_embeddings", "false"),
    (LLAMA, "attention_bias", "true"),
    (LLAMA, "mlp_bias", 0),
    (GPT2, "tie_word_embeddings", 1),
    (OPT, "do_layer_norm_before", "false"),
    (OPT, "enable_bias", "no"),
])
def test_switches_must_be_json_booleans(base, key, value):
    _hf({**base, key: value}, rf"^{key}: must be true or false, got {value!r}$")


def test_tie_word_embeddings_false_and_true_differ_by_the_head():
    # An untied head has its own vocab x d_model matrix: 32000 * 4096 = 131,072,000.
    untied = model_from_hf_config({**LLAMA, "tie_word_embeddings": False}).n_params
    tied = model_from_hf_config({**LLAMA, "tie_word_embeddings": True}).n_params
    assert untied == LLAMA_PARAMS
    assert untied - tied == 32000 * 4096 == 131_072_000
    assert model_from_hf_config({**LLAMA, "tie_word_embeddings": None}).n_params == untied


def test_bias_switches_add_exact_counts():
    # attention_bias: q, k, v and o biases, 4 * 4096 = 16,384 per layer, x 32 = 524,288.
    with_attn = model_from_hf_config({**LLAMA, "attention_bias": True}).n_params
    assert with_attn - LLAMA_PARAMS == 32 * 4 * 4096 == 524_288
    # mlp_bias: gate and up 11008 each, down 4096: 26,112 per layer, x 32 = 835,584.
    with_mlp = model_from_hf_config({**LLAMA, "mlp_bias": True}).n_params
    assert with_mlp - LLAMA_PARAMS == 32 * (2 * 11008 + 4096) == 835_584
    # OPT enable_bias=false drops q, k, v, o (4h) and up, down (ff + h) biases per layer:
    # 12 * (4 * 768 + 3072 + 768) = 82,944.
    biased = model_from_hf_config(OPT).n_params
    assert biased - model_from_hf_config({**OPT, "enable_bias": False}).n_params == 82_944
    _hf({**OPT, "do_layer_norm_before": False},
        r"^do_layer_norm_before: only pre-LN OPT models are supported \(true\)$")


@pytest.mark.parametrize("base,key", [
    (LLAMA, "num_key_value_heads"), (LLAMA, "head_dim"), (GPT2, "n_inner"),
    (LLAMA, "hidden_size"), (OPT, "ffn_dim"),
])
def test_zero_is_a_value_not_absent(base, key):
    _hf({**base, key: 0}, rf"^{key}: must be ≥ 1, got 0$")


def test_null_means_default():
    llama = model_from_hf_config({**LLAMA, "num_key_value_heads": None, "head_dim": None})
    assert (llama.kv_heads, llama.d_head, llama.n_params) == (32, 4096 // 32, LLAMA_PARAMS)
    gpt2 = model_from_hf_config({**GPT2, "n_inner": None})
    assert gpt2.d_ff == 4 * 768 == 3072
    assert gpt2.n_params == 124_439_808  # openai-community/gpt2
    _hf({**LLAMA, "hidden_size": None},
        r"^hidden_size: required for model_type 'llama' but missing \(or null\)$")


@pytest.mark.parametrize("key", ["hidden_size", "num_hidden_layers", "vocab_size"])
def test_sizes_given_as_booleans_are_refused(key):
    _hf({**LLAMA, key: True}, rf"^{key}: must be a whole number, got True$")


@pytest.mark.parametrize("key,value,bound", [
    ("vocab_size", 10**30, "100,000,000"),
    ("hidden_size", 10**7, "1,000,000"),
    ("num_hidden_layers", 10**6, "100,000"),
    ("intermediate_size", 10**8, "10,000,000"),
    ("max_position_embeddings", 10**9, "100,000,000"),
])
def test_absurd_sizes_name_the_bound(key, value, bound):
    _hf({**LLAMA, key: value}, rf"^{key}: must be ≤ {bound}, got {value:,}$")


def test_integer_of_100000_digits_is_one_line():
    _hf({**LLAMA, "vocab_size": 10**100_000},
        r"^vocab_size: must be ≤ 100,000,000, got an integer of about 100000 digits$")


def test_infinite_size_from_json_is_refused():
    _hf(json.dumps(LLAMA).replace("32000", "1e400"), r"^vocab_size: must be a whole number, "
                                                     r"got inf$")


def test_too_many_parameters_in_total_is_refused():
    # One layer of 8 experts x 3 x 1,000,000 x 10,000,000 = 2.4e14 expert weights, plus
    # 4 x 1e12 attention weights: fine; 64 experts make 1.92e15 + 4e12, past MAX_N_PARAMS = 1e15.
    big = {**MIXTRAL, "num_hidden_layers": 1, "hidden_size": 10**6, "num_attention_heads": 10**3,
           "num_key_value_heads": 10**3, "intermediate_size": 10**7, "vocab_size": 1000}
    # + router 8 x 1e6, embedding and head 2 x 1000 x 1e6, two norms and the final norm 3 x 1e6
    assert model_from_hf_config(big).n_params == 8 * 3 * 10**13 + 4 * 10**12 + 8 * 10**6 \
        + 2 * 10**9 + 3 * 10**6
    _hf({**big, "num_local_experts": 64}, r"^n_params: these sizes give 1.92e\+15 parameters; "
                                          r"at most 1e\+15 are supported \(MAX_N_PARAMS\)$")


def test_largest_workload_stays_finite():
    # Every bound at once on a real model: no count overflows to inf.
    df = layer_table("llama-2-7b", seq_len=MAX_SEQ_LEN, batch_size=MAX_BATCH_SIZE,
                     mode="inference")
    numeric = df.select_dtypes("number").to_numpy(dtype=float)
    assert np.isfinite(numeric[:, ~np.isnan(numeric).all(axis=0)]).all()
    # 2 * 1e9 * 32 heads * 1e8 * 1e8 * 128 = 8.192e30 FLOPs in one attention matmul
    scores = df.loc[df["layer"] == "blocks.0.attn.scores", "fwd_flops"].iloc[0]
    assert scores == 2.0 * 1e9 * 32 * 1e8 * 1e8 * 128


# ---- 3. messages name the config key -----------------------------------------------------------
@pytest.mark.parametrize("cfg,message", [
    ({**LLAMA, "hidden_size": 0}, "hidden_size: must be ≥ 1, got 0"),
    ({**LLAMA, "num_attention_heads": 33, "num_key_value_heads": 33},
     "num_attention_heads: 33 heads do not divide hidden_size=4096; choose num_attention_heads "
     "dividing hidden_size or give head_dim explicitly"),
    ({**GPT2, "n_head": 7},
     "n_head: 7 heads do not divide n_embd=768; choose n_head dividing n_embd or give head_dim "
     "explicitly"),
    ({**LLAMA, "num_key_value_heads": 5},
     "num_key_value_heads: 5 must divide num_attention_heads=32 (grouped-query attention shares "
     "each KV head among a whole group)"),
    ({**MIXTRAL, "num_experts_per_tok": 9}, "num_experts_per_tok: 9 exceeds num_local_experts=8"),
    ({**GPT2, "resid_pdrop": 1.0}, "resid_pdrop: must be < 1 (a dropout probability), got 1"),
    ({**GPT2, "resid_pdrop": "0.1"}, "resid_pdrop: must be a number, got '0.1'"),
    ({**GPT2, "n_positions": 2.5}, "n_positions: must be a whole number, got 2.5"),
    ({**GPT2, "activation_function": ["gelu"]},
     "activation_function: a JSON array of 1 items is not supported; use one of gelu"),
])
def test_hf_messages_name_the_config_key(cfg, message):
    text = _hf(cfg, "^" + message.replace("(", r"\(").replace(")", r"\)"))
    for internal in ("d_model", "n_heads", "n_kv_heads", "n_experts", "experts_top_k"):
        assert not re.search(rf"\b{internal}\b", text), text


def test_whole_float_sizes_are_read_as_ints():
    spec = model_from_hf_config({**LLAMA, "hidden_size": 4096.0})
    assert spec.d_model == 4096 and spec.n_params == LLAMA_PARAMS


# ---- 4. layer_table bounds ----------------------------------------------------------------------
def test_million_layers_refused_quickly():
    start = time.perf_counter()
    with pytest.raises(ValidationError, match=r"n_layers\n.*less than or equal to 100000"):
        model("gpt2").with_(n_layers=10**6)
    assert time.perf_counter() - start < 1.0
    _hf({**GPT2, "n_layer": 10**6}, r"^n_layer: must be ≤ 100,000, got 1,000,000$")


def test_deepest_allowed_model_table_is_fast():
    tiny = ModelSpec(name="deep", arch="decoder", n_layers=MAX_N_LAYERS, d_model=8, n_heads=2,
                     d_ff=16, vocab_size=10, max_seq_len=8)
    start = time.perf_counter()
    df = layer_table(tiny, seq_len=4, batch_size=1)
    elapsed = time.perf_counter() - start
    # embed.tokens, embed.positions; 12 rows per block; final_norm, lm_head, loss
    assert len(df) == 2 + 12 * MAX_N_LAYERS + 3
    assert df["layer"].iloc[-4] == f"blocks.{MAX_N_LAYERS - 1}.mlp.down"
    assert elapsed < 30  # ~1 s on one core; the old per-layer concat took minutes at 10^6


@pytest.mark.parametrize("kwargs,message", [
    (dict(seq_len=True, batch_size=1), "seq_len: must be a whole number, got True"),
    (dict(seq_len=8, batch_size=True), "batch_size: must be a whole number, got True"),
    (dict(seq_len="8", batch_size=1), "seq_len: must be a whole number, got '8'"),
    (dict(seq_len=8, batch_size=math.inf), "batch_size: must be a whole number, got inf"),
    (dict(seq_len=10**9, batch_size=1), "seq_len: must be ≤ 100,000,000, got 1,000,000,000"),
    (dict(seq_len=8, batch_size=10**10),
     "batch_size: must be ≤ 1,000,000,000, got 10,000,000,000"),
    (dict(seq_len=8, batch_size=1, flash_attention="no"),
     "flash_attention: must be true or false, got 'no'"),
])
def test_layer_table_sizes_and_switches(kwargs, message):
    _raises(lambda: layer_table("llama-2-7b", **kwargs), "^" + message + "$")


def test_layer_table_whole_floats_equal_ints():
    a = layer_table("gpt2", seq_len=8.0, batch_size=2.0)
    b = layer_table("gpt2", seq_len=8, batch_size=2)
    assert a.equals(b)
    assert b["fwd_flops"].sum() == a["fwd_flops"].sum() > 0


def test_seed_example_batch_size():
    _raises(lambda: seed_example(batch_size=0), r"^batch_size: must be ≥ 1, got 0$")
    _raises(lambda: seed_example(batch_size=True), r"^batch_size: must be a whole number")


# ---- 5. unknown names are clipped ---------------------------------------------------------------
def test_long_unknown_model_name_is_clipped():
    text = _raises(lambda: planner.model("x" * 5000), r"^model: unknown preset 'x+…")
    assert "x" * 100 not in text
    assert "(see `planner models` for all" in text


def test_unknown_model_keeps_suggestions():
    _raises(lambda: planner.model("gpt2-mediun"),
            r"^model: unknown preset 'gpt2-mediun'; did you mean gpt2-medium")


@pytest.mark.parametrize("name", [None, 7, ["gpt2"]])
def test_model_name_of_wrong_type(name):
    _raises(lambda: planner.model(name),
            r"^model: must be a preset name, a config.json path or a ModelSpec, got")


@pytest.mark.parametrize("kwargs,field", [
    (dict(precision="p" * 5000), "precision"), (dict(optimizer="o" * 5000), "optimizer"),
    (dict(mode="m" * 5000), "mode"), (dict(recompute="r" * 5000), "recompute"),
])
def test_long_option_values_are_clipped(kwargs, field):
    text = _raises(lambda: layer_table("gpt2", seq_len=8, batch_size=1, **kwargs),
                   f"^{field}: ")
    assert "…" in text and len(text) < 250


# ---- 6. ModelSpec fields ------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["n_layers", "d_model", "n_kv_heads", "n_experts",
                                   "position_offset", "n_token_types"])
def test_spec_int_fields_refuse_bools(field):
    with pytest.raises(ValidationError, match=rf"{field}: must be a number, got True"):
        model("gpt2").with_(**{field: True})


@pytest.mark.parametrize("value", [math.nan, math.inf, True])
def test_spec_dropout_must_be_a_finite_number(value):
    with pytest.raises(ValidationError, match="dropout"):
        model("gpt2").with_(dropout=value)


def test_spec_valid_counterparts_unchanged():
    # 124,439,808 = openai-community/gpt2; with_ of the same values changes nothing.
    assert model("gpt2").with_(n_layers=12, dropout=0.1).n_params == 124_439_808
    # strings still work for the CLI's --set FIELD=VALUE
    assert model("gpt2").with_(n_layers="6").n_layers == 6


def test_a_model_name_is_one_short_line():
    # A name with a CR would split every table, CSV row and message it is shown in.
    base = planner.model("gpt2").model_dump()
    with pytest.raises(ValueError, match="name: control character '\\\\r'"):
        planner.ModelSpec(**{**base, "name": "gpt\r=cmd"})
    with pytest.raises(ValueError, match="at most 200 characters"):
        planner.ModelSpec(**{**base, "name": "x" * 201})
    # A config's _name_or_path is the user's file, not a choice: it is cleaned, not refused.
    spec = planner.model_from_hf_config({
        "model_type": "gpt2", "n_embd": 64, "n_head": 2, "n_layer": 1, "vocab_size": 100,
        "n_positions": 64, "_name_or_path": "=HYPERLINK(1)\r\n\x1b[31m" + "y" * 3000})
    assert spec.name.startswith("=HYPERLINK(1) [31m") and len(spec.name) == 200
