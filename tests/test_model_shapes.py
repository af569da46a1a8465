"""The shapes of current models (issue 10): dense-first mixture of experts with fine-grained and
shared experts, multi-head latent attention (MLA), multi-token prediction (MTP), per-head q/k
norms, Gemma's sandwich norms and sliding windows; their presets, Hugging Face import and
what the planner's profiles make of them. Every number is derived by hand in the test, from the
released config.json and the cited sources (docs/formulas.md F19-F24).
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from planner.errors import InputError
from planner.model.layers import block_kind_counts, kv_cache_bytes, layer_table
from planner.model.spec import model, model_from_hf_config
from planner.plan.memory import kv_cache_bytes_per_device
from planner.plan.steptime import inference_profile, training_profile

H, V, L = 7168, 129280, 61  # DeepSeek-V3: hidden size, vocabulary, blocks

# ---- DeepSeek-V3, by hand ------------------------------------------------------------------------
# deepseek-ai/DeepSeek-V3 config.json; README_WEIGHTS.md of github.com/deepseek-ai/DeepSeek-V3:
# main model "671B" total, "36.6B" activated "(including 0.9B for the output Head)"; the MTP
# module "11.5B unique parameters (excluding the shared 0.9B Embedding and 0.9B output Head)".
EMBED = V * H  # 926,679,040, and as much for the untied head
MLA = (H * 1536 + 1536  # q_a 11,010,048 + q_a_norm
       + 1536 * 128 * (128 + 64)  # q_b 37,748,736
       + H * (512 + 64) + 512  # kv_a 4,128,768 + kv_a_norm
       + 512 * 128 * (128 + 128)  # kv_b 16,777,216
       + 128 * 128 * H)  # out 117,440,512
NORMS = 2 * H
DENSE_MLP = 3 * H * 18432  # 396,361,728
ROUTER = 256 * H  # 1,835,008 (the e_score_correction_bias is a buffer, not a parameter)
EXPERT = 3 * H * 2048  # 44,040,192, also the shared expert
MOE = ROUTER + 256 * EXPERT + EXPERT  # 11,320,164,352
MAIN = 2 * EMBED + H + L * (MLA + NORMS) + 3 * DENSE_MLP + 58 * MOE
MTP = 2 * H + 2 * H * H + (MLA + NORMS + MOE) + H  # enorm, hnorm, eh_proj, block, norm


def test_deepseek_v3_main_model_and_mtp_by_hand():
    spec = model("deepseek-v3")
    assert MLA == 187_107_328
    assert MOE == 11_320_164_352
    assert MAIN == 671_026_404_352  # "671B"; transformers' DeepseekV3ForCausalLM counts this
    assert MTP == 11_610_067_968  # "11.5B unique" (the README truncates)
    assert spec.n_mtp_params == MTP
    assert spec.n_params == MAIN + MTP == 682_636_472_320
    # the hub's "685B" also counts the MTP module's stored copies of embedding and head
    assert round((spec.n_params + 2 * EMBED) / 1e9, 1) == 684.5


def test_deepseek_v3_active_parameters_by_hand():
    # per token: 8 of 256 routed experts, the shared expert always, the router always
    moe_active = ROUTER + 8 * EXPERT + EXPERT  # 398,196,736
    main_active = 2 * EMBED + H + L * (MLA + NORMS) + 3 * DENSE_MLP + 58 * moe_active
    mtp_active = 2 * H + 2 * H * H + MLA + NORMS + moe_active + H
    spec = model("deepseek-v3")
    assert spec.n_active_params == main_active + mtp_active
    # README_WEIGHTS: "36.6B" activated, the input embedding (a lookup) not included
    assert main_active - EMBED == 36_625_603_584
    assert round((main_active - EMBED) / 1e9, 1) == 36.6


def test_deepseek_v3_block_kinds_dense_first():
    kinds = block_kind_counts(model("deepseek-v3"))
    assert [(k.moe, k.window, n, first) for k, n, first in kinds] == [
        (False, None, 3, 0), (True, None, 58, 3)]
    table = layer_table("deepseek-v3", seq_len=16, batch_size=1)
    assert "blocks.2.mlp.up" in set(table["layer"]) and "blocks.3.moe.experts.up" in set(
        table["layer"])
    assert table.loc[table["layer"] == "blocks.2.mlp.up", "n_params"].item() == H * 18432
    assert table.loc[table["layer"] == "blocks.3.moe.shared.up", "n_params"].item() == H * 2048
    assert table.loc[table["layer"] == "blocks.60.attn.kv_b", "block"].item() == 60


def test_mla_kv_cache_is_the_latent():
    # F21: per token and block, kv_lora_rank + qk_rope_head_dim = 512 + 64 elements, in bf16:
    # (512 + 64) × 61 × 2 = 70,272 bytes per token (against 2·128·192·61·2 = 5,996,544 if
    # the decompressed keys and values were cached).
    seq = 1024
    table = layer_table("deepseek-v3", seq_len=seq, batch_size=1, mode="inference")
    assert table["kv_cache_bytes"].sum() / seq == (512 + 64) * 61 * 2 == 70_272
    kv_rows = table[table["kv_cache_bytes"] > 0]["layer"]
    assert kv_rows.str.endswith(".attn.kv_a").all() and len(kv_rows) == 61
    prof = inference_profile(model("deepseek-v3"), prompt_len=seq, output_len=128,
                             precision="bf16", kv_cache_precision=None)
    assert prof.kv_bytes_per_token == 70_272
    # the latent serves every head: tensor parallelism keeps it whole (K = 1)
    assert prof.n_kv_heads == 1
    for tp in (1, 8):
        assert kv_cache_bytes_per_device(kv_bytes_per_token=prof.kv_bytes_per_token,
                                         context_len=1, batch_size=1, tp=tp,
                                         n_kv_heads=prof.n_kv_heads) == 70_272
    # q_a and kv_a are replicated over tensor parallelism: 61 · (11,010,048 + 4,128,768) · 2 B
    assert prof.kv_proj_weight_bytes == 61 * (H * 1536 + H * 576) * 2 == 1_846_935_552
    # a decode step reads the cached latent once per block: 70,272 B per token of context
    ctx = seq + 128 // 2
    assert (prof.decode.kv_bytes * prof.decode.count).sum() == 70_272 * ctx
    # serving drops the MTP module and the loss; its weights are the main model's
    assert prof.weight_bytes == MAIN * 2


def test_mla_flops_prefill_decompressed_decode_absorbed():
    spec = model("deepseek-v3")
    s = 64
    t = layer_table(spec, seq_len=s, batch_size=1, mode="inference").set_index("layer")
    # prefill: scores over 192-wide heads (nope + rope), context over 128-wide values
    assert t.loc["blocks.5.attn.scores", "fwd_flops"] == 2 * 128 * s * s * 192
    assert t.loc["blocks.5.attn.context", "fwd_flops"] == 2 * 128 * s * s * 128
    assert t.loc["blocks.5.attn.kv_b", "fwd_flops"] == 2 * s * 512 * 128 * 256
    # decode, absorbed: each head scores against the 576-element latent and takes its context
    # in the 512-wide latent; kv_b's two halves act on the one new token
    assert t.loc["blocks.5.attn.scores", "decode_flops"] == 2 * 128 * s * 576
    assert t.loc["blocks.5.attn.context", "decode_flops"] == 2 * 128 * s * 512
    assert t.loc["blocks.5.attn.kv_b", "decode_flops"] == 2 * 512 * 128 * 256


def test_deepseek_v3_forward_flops_per_token_are_2_active_plus_attention():
    # Matmul FLOPs per token = 2 × the active matmul parameters + attention (F1, F3): every
    # active weight but the embedding lookup and the norm scales, the router included, plus
    # QKᵀ and softmax·V, 2·128·s·(192 + 128) per block. At s = 4,096:
    s = 4096
    mm_params = (L * (MLA - 1536 - 512) + 3 * DENSE_MLP + 58 * (ROUTER + 9 * EXPERT)
                 + EMBED)  # the head
    assert mm_params == 36_624_596_992
    attention = L * 2 * 128 * s * (192 + 128)
    t = layer_table("deepseek-v3", seq_len=s, batch_size=1, mode="inference")
    per_token = t.loc[t["is_matmul"], "fwd_flops"].sum() / s
    assert per_token == 2 * mm_params + attention == 93_717_397_504  # ≈ 2 × 36.6 B + 20.5 G


def test_average_block_profile_reproduces_the_table():
    # A dense-first model's training profile is its average block: 3/61 of a dense block and
    # 58/61 of a MoE block, so L × block + the outer ops are the whole table.
    spec = model("deepseek-v3")
    prof = training_profile(spec, seq_len=512, precision="bf16", optimizer="adamw",
                            flash_attention=False, causal_attention="full")
    table = layer_table(spec, seq_len=512, batch_size=1, precision="bf16")
    blocks = table[table["block"] >= 0]
    dense, moe = (blocks[blocks["block"] == i] for i in (0, 3))
    assert sorted(set(prof.block.count)) == pytest.approx([3 / 61, 58 / 61])
    total = ((prof.block.flops * prof.block.count).sum() * L + prof.first.flops.sum()
             + prof.last.flops.sum())
    assert total == pytest.approx(table["fwd_flops"].sum(), rel=1e-12)
    assert prof.model_flops_per_seq == 3.0 * table["fwd_flops"].sum()
    assert prof.block_weight_bytes == pytest.approx(
        (3 * dense["weight_bytes"].sum() + 58 * moe["weight_bytes"].sum()) / 61, rel=1e-12)
    assert prof.block_weight_bytes * L == pytest.approx(blocks["weight_bytes"].sum(),
                                                        rel=1e-12)
    assert prof.block_activation_bytes[0] * L == pytest.approx(
        blocks["activation_bytes"].sum(), rel=1e-12)
    # the MTP module trains on the last stage, after the head
    assert "eh_proj" in prof.last.names and prof.last_state_bytes[0] == pytest.approx(
        table.loc[table["block"] < 0, "weight_bytes"].sum() - EMBED * 2, rel=1e-12)
    # per kind, for the busiest pipeline stage and expert parallelism
    assert [(k.moe, k.n_blocks, k.first_block) for k in prof.block_kinds] == [
        (False, 3, 0), (True, 58, 3)]
    assert prof.block_kinds[1].weight_bytes == moe["weight_bytes"].sum()
    assert prof.moe is not None and prof.moe.n_moe_layers == 58
    assert prof.moe.dispatch_bytes_per_token == 8 * H * 2  # top-8 copies of h in bf16
    assert prof.moe.expert_weight_bytes == 256 * EXPERT * 2


def test_single_kind_models_keep_count_one():
    prof = training_profile(model("llama-2-7b"), seq_len=256, precision="bf16",
                            optimizer="adamw", flash_attention=True, causal_attention="full")
    assert set(prof.block.count) == {1.0} and len(prof.block_kinds) == 1
    assert prof.moe is None


# ---- Qwen3-235B-A22B and Mixtral-8x22B ---------------------------------------------------------
def test_qwen3_235b_a22b_by_hand():
    # Qwen/Qwen3-235B-A22B: 94 MoE blocks; q 4096·8192, k and v 4096·512, o 8192·4096, q/k
    # norms of 128; 128 experts of 3·4096·1536, router 128·4096; untied head.
    attn = 2 * 4096 * 8192 + 2 * 4096 * 512 + 2 * 128
    expert = 3 * 4096 * 1536
    per_block = attn + 2 * 4096 + 128 * 4096 + 128 * expert
    outer = 2 * 151936 * 4096 + 4096
    spec = model("qwen3-235b-a22b")
    assert spec.n_params == 94 * per_block + outer == 235_093_634_560  # keras-hub's count
    active = 94 * (attn + 2 * 4096 + 128 * 4096 + 8 * expert) + outer
    assert spec.n_active_params == active == 22_190_763_520  # "A22B"


def test_mixtral_8x22b_by_hand():
    attn = 2 * 6144 * 6144 + 2 * 6144 * 1024
    expert = 3 * 6144 * 16384
    outer = 2 * 32768 * 6144 + 6144
    spec = model("mixtral-8x22b")
    assert spec.n_params == 56 * (attn + 2 * 6144 + 8 * 6144 + 8 * expert) + outer
    assert spec.n_params == 140_630_071_296  # "141B"
    assert spec.n_active_params == 56 * (attn + 2 * 6144 + 8 * 6144 + 2 * expert) + outer
    assert spec.n_active_params == 39_161_468_928  # "39B active"


# ---- sliding windows (Gemma 2) -----------------------------------------------------------------
GEMMA2_2B = {  # google/gemma-2-2b config.json
    "architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid",
    "eos_token_id": [1, 107], "final_logit_softcapping": 30.0, "head_dim": 256,
    "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 2304, "initializer_range": 0.02, "intermediate_size": 9216,
    "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8,
    "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0,
    "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
    "sliding_window": 4096, "torch_dtype": "float32", "use_cache": True, "vocab_size": 256000}


def test_gemma2_sliding_window_flops_and_kv_cache():
    spec = model_from_hf_config(GEMMA2_2B)
    assert spec.n_params == 2_614_341_888  # keras-hub gemma2_2b_en (= transformers)
    assert (spec.sliding_window, spec.global_attn_every) == (4096, 2)
    s = 8192
    t = layer_table(spec, seq_len=s, batch_size=1, mode="inference").set_index("layer")
    # block 0 is local (4,096 keys per query), block 1 global (8,192): QKᵀ = 2·8·s·keys·256
    assert t.loc["blocks.0.attn.scores", "fwd_flops"] == 2 * 8 * s * 4096 * 256
    assert t.loc["blocks.1.attn.scores", "fwd_flops"] == 2 * 8 * s * 8192 * 256
    # counted causally, the local prefill covers the band: s·W − W²/2 = 3/4 of s·W here
    half = layer_table(spec, seq_len=s, batch_size=1, mode="inference",
                       causal_attention="half").set_index("layer")
    assert half.loc["blocks.0.attn.scores", "fwd_flops"] == 0.75 * 2 * 8 * s * 4096 * 256
    assert half.loc["blocks.1.attn.scores", "fwd_flops"] == 0.5 * 2 * 8 * s * 8192 * 256
    # a decode step attends to the window only
    assert t.loc["blocks.0.attn.scores", "decode_flops"] == 2 * 8 * 4096 * 256
    # KV cache: 13 global blocks hold 8,192 tokens, 13 local ones 4,096; 2·4·256 elements
    per_block_token = 2 * 4 * 256 * 2  # bytes in bf16
    total = (13 * 8192 + 13 * 4096) * per_block_token
    assert t["kv_cache_bytes"].sum() == total == 654_311_424
    assert kv_cache_bytes(spec, context_len=s, bytes_per_element=2) == total
    prof = inference_profile(spec, prompt_len=4096, output_len=4096, precision="bf16",
                             kv_cache_precision=None)
    assert prof.kv_bytes_per_token == total / s  # the average over the whole context


def test_window_longer_than_the_sequence_changes_nothing():
    base = model("llama-3-8b")
    windowed = base.with_(sliding_window=8192, global_attn_every=2)
    for mode in ("train", "inference"):
        a = layer_table(base, seq_len=1024, batch_size=2, mode=mode)
        b = layer_table(windowed, seq_len=1024, batch_size=2, mode=mode)
        assert np.array_equal(a.drop(columns="layer").to_numpy(),
                              b.drop(columns="layer").to_numpy())


# ---- Hugging Face import -----------------------------------------------------------------------
DEEPSEEK_V3 = {  # deepseek-ai/DeepSeek-V3 config.json (quantization_config and auto_map omitted)
    "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": False,
    "attention_dropout": 0.0, "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1,
    "ep_size": 1, "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168,
    "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512,
    "max_position_embeddings": 163840, "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256,
    "n_shared_experts": 1, "norm_topk_prob": True, "num_attention_heads": 128,
    "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1, "pretraining_tp": 1, "q_lora_rank": 1536,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                     "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "seq_aux": True, "tie_word_embeddings": False, "topk_group": 4,
    "topk_method": "noaux_tc", "torch_dtype": "bfloat16", "transformers_version": "4.33.1",
    "use_cache": True, "v_head_dim": 128, "vocab_size": 129280}
QWEN3_235B = {  # Qwen/Qwen3-235B-A22B config.json
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False,
    "attention_dropout": 0.0, "bos_token_id": 151643, "decoder_sparse_step": 1,
    "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 12288, "max_position_embeddings": 40960,
    "max_window_layers": 94, "mlp_only_layers": [], "model_type": "qwen3_moe",
    "moe_intermediate_size": 1536, "norm_topk_prob": True, "num_attention_heads": 64,
    "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 94,
    "num_key_value_heads": 4, "output_router_logits": False, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "use_cache": True, "use_sliding_window": False, "vocab_size": 151936}
GEMMA3_1B = {  # google/gemma-3-1b-pt config.json
    "architectures": ["Gemma3ForCausalLM"], "attention_bias": False,
    "attention_dropout": 0.0, "attn_logit_softcapping": None, "bos_token_id": 2,
    "cache_implementation": "hybrid", "eos_token_id": 1, "final_logit_softcapping": None,
    "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152,
    "initializer_range": 0.02, "intermediate_size": 6912, "max_position_embeddings": 32768,
    "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 26,
    "num_key_value_heads": 1, "pad_token_id": 0, "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000, "rope_scaling": None,
    "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6,
    "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 262144}
PHI3_MINI = {  # microsoft/Phi-3-mini-4k-instruct config.json (auto_map omitted)
    "architectures": ["Phi3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu",
    "hidden_size": 3072, "initializer_range": 0.02, "intermediate_size": 8192,
    "max_position_embeddings": 4096, "model_type": "phi3", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 32,
    "original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0,
    "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 10000.0,
    "sliding_window": 2047, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "use_cache": True, "vocab_size": 32064}
QWEN3_0_6B = {  # Qwen/Qwen3-0.6B config.json
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000,
    "sliding_window": None, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "use_cache": True, "use_sliding_window": False, "vocab_size": 151936}


@pytest.mark.parametrize("config,preset", [(DEEPSEEK_V3, "deepseek-v3"),
                                           (QWEN3_235B, "qwen3-235b-a22b")])
def test_released_configs_import_as_the_presets(config, preset):
    spec, want = model_from_hf_config(config), model(preset)
    assert spec.model_dump(exclude={"name", "source_url"}) == want.model_dump(
        exclude={"name", "source_url"})


@pytest.mark.parametrize("config,published", [
    (GEMMA3_1B, 999_885_952),  # keras-hub gemma3_1b
    (PHI3_MINI, 3_821_079_552),  # keras-hub phi3_mini_4k_instruct_en
    (QWEN3_0_6B, 596_049_920),  # keras-hub qwen3_0.6b_en
])
def test_released_small_configs_count_exactly(config, published):
    assert model_from_hf_config(config).n_params == published


def test_gemma3_and_phi3_windows_from_their_configs():
    gemma = model_from_hf_config(GEMMA3_1B)
    assert (gemma.sliding_window, gemma.global_attn_every, gemma.qk_norm,
            gemma.sandwich_norm) == (512, 6, True, True)
    # blocks 5, 11, 17, 23 attend globally: 4 global, 22 local
    assert [(k.window, n) for k, n, _ in block_kind_counts(gemma)] == [(512, 22), (None, 4)]
    phi = model_from_hf_config(PHI3_MINI)
    assert (phi.sliding_window, phi.global_attn_every) == (2047, 0)  # every block local
    explicit = {**GEMMA3_1B, "layer_types": ["sliding_attention"] * 5 + ["full_attention"]
                + ["sliding_attention"] * 5 + ["full_attention"] + ["sliding_attention"] * 5
                + ["full_attention"] + ["sliding_attention"] * 5 + ["full_attention"]
                + ["sliding_attention"] * 2}
    assert model_from_hf_config(explicit) == gemma


@pytest.mark.parametrize("config,match", [
    ({**DEEPSEEK_V3, "num_key_value_heads": 8}, r"^num_key_value_heads: 8 must equal "
                                                 r"num_attention_heads=128"),
    ({**DEEPSEEK_V3, "attention_bias": True}, r"^attention_bias: only false"),
    ({**DEEPSEEK_V3, "moe_layer_freq": 2}, r"^moe_layer_freq: 2 is not supported"),
    ({**DEEPSEEK_V3, "first_k_dense_replace": 61}, r"^first_k_dense_replace: 61 leaves no MoE "
                                                   r"block of num_hidden_layers=61"),
    ({**DEEPSEEK_V3, "kv_lora_rank": None}, r"^kv_lora_rank: required"),
    ({**DEEPSEEK_V3, "v_head_dim": 0}, r"^v_head_dim: must be ≥ 1"),
    ({**QWEN3_235B, "decoder_sparse_step": 2}, r"^decoder_sparse_step: 2 is not supported"),
    ({**QWEN3_235B, "mlp_only_layers": [3]}, r"^mlp_only_layers: only dense blocks first"),
    ({**QWEN3_0_6B, "use_sliding_window": True}, r"^use_sliding_window: only false"),
    ({**GEMMA3_1B, "layer_types": ["full_attention", "sliding_attention"] * 13},
     r"^layer_types: only n − 1 sliding_attention blocks then one full_attention"),
    ({**GEMMA3_1B, "layer_types": ["full_attention"] * 3}, r"^layer_types: has 3 entries for "
                                                           r"num_hidden_layers=26"),
    ({**GEMMA3_1B, "sliding_window": "512"}, r"^sliding_window: must be a whole number"),
    ({**GEMMA3_1B, "model_type": "gemma3"}, r"^model_type: 'gemma3' is the multimodal Gemma 3"
                                            r".*text_config"),
    ({**GEMMA2_2B, "hidden_activation": "tanh"}, r"^hidden_activation: 'tanh' is not supported"),
])
def test_unsupported_options_are_one_line_errors_naming_the_key(config, match):
    with pytest.raises(InputError, match=match) as info:
        model_from_hf_config(config)
    assert "\n" not in str(info.value)


def test_qwen3_moe_dense_first_blocks_from_mlp_only_layers():
    spec = model_from_hf_config({**QWEN3_235B, "mlp_only_layers": [0, 1]})
    assert spec.n_dense_layers == 2
    # two dense blocks of 3·4096·12288 instead of two MoE blocks
    moe_block = 128 * 4096 + 128 * 3 * 4096 * 1536
    assert spec.n_params == model("qwen3-235b-a22b").n_params + 2 * (3 * 4096 * 12288
                                                                      - moe_block)


# ---- ModelSpec: each new field only where it means something -----------------------------------
@pytest.mark.parametrize("changes,field", [
    (dict(n_dense_layers=2), "n_dense_layers"),  # a dense model
    (dict(moe_d_ff=1024), "moe_d_ff"),
    (dict(kv_lora_rank=512), "qk_nope_head_dim"),  # MLA without its head sizes
    (dict(q_lora_rank=512), "q_lora_rank"),  # without kv_lora_rank
    (dict(global_attn_every=2), "global_attn_every"),  # without a window
    (dict(sliding_window=0), "sliding_window"),
    (dict(n_mtp_layers=-1), "n_mtp_layers"),
])
def test_new_fields_are_checked_and_named(changes, field):
    with pytest.raises(ValidationError, match=field):
        model("llama-3-8b").with_(**changes)


def test_mla_refuses_grouped_heads_and_head_dim():
    ds = model("deepseek-v3")
    with pytest.raises(ValidationError, match="n_kv_heads: MLA"):
        ds.with_(n_kv_heads=8)
    with pytest.raises(ValidationError, match="head_dim: not used with MLA"):
        ds.with_(head_dim=128)
    with pytest.raises(ValidationError, match="sandwich_norm"):
        model("bert-base-cased").with_(sandwich_norm=True)
    with pytest.raises(ValidationError, match="n_mtp_layers"):
        model("bert-base-cased").with_(n_mtp_layers=1)


def test_mtp_rows_train_only():
    train = layer_table("deepseek-v3", seq_len=32, batch_size=1)
    infer = layer_table("deepseek-v3", seq_len=32, batch_size=1, mode="inference")
    mtp = train[train["layer"].str.startswith("mtp.0.")]
    assert mtp["n_params"].sum() == MTP and (mtp["block"] == -1).all()
    # the shared head computes its logits: 2 · 32 · 7168 · 129,280 FLOPs, no parameters
    head = mtp.set_index("layer").loc["mtp.0.lm_head"]
    assert head["n_params"] == 0 and head["fwd_flops"] == 2 * 32 * H * V
    assert not infer["layer"].str.startswith("mtp.").any()
