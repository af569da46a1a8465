"""Per-layer analytic model: hand-derived values for tiny configurations, paper formulas, and
relations that must hold for any configuration (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.model.layers import attention_matmul_flops, layer_table, linear_flops, totals
from planner.model.spec import ModelSpec, model

# A Llama-style toy: h=8, 2 query heads of 4, 1 KV head (GQA), SwiGLU d_ff=16, vocab 10.
TINY_LLAMA = ModelSpec(
    name="tiny-llama", arch="decoder", n_layers=1, d_model=8, n_heads=2, n_kv_heads=1, d_ff=16,
    vocab_size=10, max_seq_len=64, norm="rmsnorm", mlp_act="silu", gated_mlp=True,
    position="rotary",
)
# A GPT-2-style toy: h=8, 2 heads, GELU d_ff=32 (4h), LayerNorm, dropout on.
TINY_GPT = ModelSpec(
    name="tiny-gpt", arch="decoder", n_layers=2, d_model=8, n_heads=2, d_ff=32, vocab_size=10,
    max_seq_len=16, tied_embeddings=True, qkv_bias=True, attn_out_bias=True, mlp_bias=True,
    dropout=0.1,
)


def _row(df, name):
    return df.set_index("layer").loc[name]


def test_tiny_llama_forward_flops_by_hand():
    df = layer_table(TINY_LLAMA, seq_len=4, batch_size=2)  # T = 2*4 = 8 tokens
    expected = {
        "blocks.0.attn.q": 2 * 8 * 8 * 8,  # [8, 8] @ [8, 8]: 1024
        "blocks.0.attn.k": 2 * 8 * 8 * 4,  # one KV head of 4: 512
        "blocks.0.attn.v": 2 * 8 * 8 * 4,  # 512
        "blocks.0.attn.scores": 2 * 2 * 2 * 4 * 4 * 4,  # 2*b*heads*s*s*hd = 512
        "blocks.0.attn.softmax": 5 * 2 * 2 * 4 * 4,  # 5 per score: 320
        "blocks.0.attn.context": 2 * 2 * 2 * 4 * 4 * 4,  # 512
        "blocks.0.attn.out": 2 * 8 * 8 * 8,  # 1024
        "blocks.0.mlp.up": 2 * 8 * 8 * 16,  # 2048
        "blocks.0.mlp.gate": 2 * 8 * 8 * 16,  # 2048
        "blocks.0.mlp.act": (4 + 1) * 8 * 16,  # SiLU 4 + gate product 1 per element: 640
        "blocks.0.mlp.down": 2 * 8 * 16 * 8,  # 2048
        "blocks.0.attn_norm": 4 * 8 * 8,  # RMSNorm 4 per element: 256
        "final_norm": 4 * 8 * 8,  # 256
        "lm_head": 2 * 8 * 8 * 10,  # 1280
        "loss": 5 * 8 * 10,  # log-softmax over 10 logits per token: 400
        "embed.tokens": 0,
    }
    for name, flops in expected.items():
        assert _row(df, name)["fwd_flops"] == flops, name
        assert _row(df, name)["bwd_flops"] == 2 * flops, name


def test_tiny_llama_params_and_state_bytes_by_hand():
    df = layer_table(TINY_LLAMA, seq_len=4, batch_size=2, precision="bf16", optimizer="adamw")
    # embed 10*8=80; block: 2 norms 8+8, q 64, k 32, v 32, o 64, up/gate/down 3*128=384
    # -> 592; final norm 8; untied head 80. Total 80 + 592 + 8 + 80 = 760.
    assert df["n_params"].sum() == TINY_LLAMA.n_params == 760
    # bf16 mixed precision, ZeRO Sec. 3.1: 2 bytes weight + 2 grad + (4 master + 8 Adam).
    assert df["weight_bytes"].sum() == 760 * 2
    assert df["grad_bytes"].sum() == 760 * 2
    assert df["optimizer_bytes"].sum() == 760 * 12
    fp32 = layer_table(TINY_LLAMA, seq_len=4, batch_size=2, precision="fp32")
    assert fp32["optimizer_bytes"].sum() == 760 * 8  # no master copy in pure fp32


def test_tiny_llama_activation_bytes_by_hand():
    df = layer_table(TINY_LLAMA, seq_len=4, batch_size=2)  # bf16: a = 2 bytes per element
    tha = 8 * 8 * 2  # tokens * h * a = 128
    expected = {
        "embed.tokens": 8 * 8,  # int64 token ids
        "blocks.0.attn_norm": tha,  # norm input
        "blocks.0.attn.q": tha,  # normed input, shared with k and v
        "blocks.0.attn.k": 0,
        "blocks.0.attn.v": 0,
        "blocks.0.attn.scores": 8 * (2 + 1) * 4 * 2,  # q (2 heads) and k (1 head): 192
        "blocks.0.attn.softmax": 2 * 2 * 4 * 4 * 2,  # b*heads*s*s*a: 128
        "blocks.0.attn.context": 8 * 1 * 4 * 2,  # v: 64
        "blocks.0.attn.out": 8 * 8 * 2,  # attention output: 128
        "blocks.0.mlp_norm": tha,
        "blocks.0.mlp.up": tha,
        "blocks.0.mlp.gate": 0,
        "blocks.0.mlp.act": 3 * 8 * 16 * 2,  # gate out, SiLU out, up out: 768
        "blocks.0.mlp.down": 8 * 16 * 2,  # product: 256
        "final_norm": tha,
        "lm_head": tha,
        "loss": 8 * 10 * 4,  # fp32 log-probabilities: 320
    }
    for name, value in expected.items():
        assert _row(df, name)["activation_bytes"] == value, name


def test_gpt_block_matches_korthikanti_eq_2():
    # Korthikanti et al. 2022, Eq. 2: activations per layer = s*b*h*(34 + 5*a*s/h) bytes with
    # 16-bit activations and dropout. s=4, b=2, h=8, a=2 heads: 64*34 + 5*2*16*2 = 2496.
    df = layer_table(TINY_GPT, seq_len=4, batch_size=2)
    block = df[df["block"] == 0]["activation_bytes"].sum()
    assert block == 4 * 2 * 8 * (34 + 5 * 2 * 4 / 8) == 2496


def test_selective_recompute_drops_the_quadratic_term():
    # Korthikanti Sec. 5: selective recompute keeps 34*s*b*h: 34 * 64 = 2176.
    df = layer_table(TINY_GPT, seq_len=4, batch_size=2, recompute="selective")
    assert df[df["block"] == 0]["activation_bytes"].sum() == 34 * 4 * 2 * 8


def test_full_recompute_keeps_only_block_inputs():
    # Korthikanti Sec. 4.2: 2*s*b*h bytes per layer: 2*4*2*8 = 128.
    df = layer_table(TINY_GPT, seq_len=4, batch_size=2, recompute="full")
    assert df[df["block"] == 1]["activation_bytes"].sum() == 128


def test_flash_attention_saves_no_score_matrix():
    # FlashAttention (Dao et al. 2022) saves q, k, v, the output and a fp32 log-sum-exp per
    # query row instead of the s x s probabilities: no softmax row, + b*heads*s*4 = 64 bytes.
    plain = layer_table(TINY_LLAMA, seq_len=4, batch_size=2)
    flash = layer_table(TINY_LLAMA, seq_len=4, batch_size=2, flash_attention=True)
    assert _row(flash, "blocks.0.attn.softmax")["activation_bytes"] == 0
    assert (_row(flash, "blocks.0.attn.context")["activation_bytes"]
            == _row(plain, "blocks.0.attn.context")["activation_bytes"] + 2 * 2 * 4 * 4)


def test_inference_kv_cache_and_decode():
    df = layer_table(TINY_LLAMA, seq_len=4, batch_size=2, mode="inference")
    # K and V: b*s*kv_heads*hd*bytes = 2*4*1*4*2 = 64 each.
    assert _row(df, "blocks.0.attn.k")["kv_cache_bytes"] == 64
    assert df["kv_cache_bytes"].sum() == 128
    assert df["grad_bytes"].sum() == df["optimizer_bytes"].sum() == 0
    assert df["activation_bytes"].sum() == 0
    assert "loss" not in set(df["layer"])
    # One decode step: 2 tokens (one per sequence) through q: 2*2*8*8 = 256; scores over
    # 4 cached keys: 2*b*heads*1*4*hd = 2*2*2*1*4*4 = 128.
    assert _row(df, "blocks.0.attn.q")["decode_flops"] == 256
    assert _row(df, "blocks.0.attn.scores")["decode_flops"] == 128


def test_llama2_70b_kv_cache_per_token():
    # Reference README Sec. 4: 2 (K,V) * 80 layers * 8 KV heads * 128 * 2 bytes = 327,680 B.
    df = layer_table("llama-2-70b", seq_len=1, batch_size=1, mode="inference",
                     precision="bf16")
    assert df["kv_cache_bytes"].sum() == 327_680


def test_llama2_70b_fp16_weights():
    # 68,976,648,192 parameters * 2 bytes = 137.95 GB (issue 4's golden value).
    df = layer_table("llama-2-70b", seq_len=1, batch_size=1, mode="inference",
                     precision="fp16")
    assert df["weight_bytes"].sum() == 68_976_648_192 * 2
    assert round(df["weight_bytes"].sum() / 1e9, 2) == 137.95


def test_int4_weight_only_quantizes_matmul_weights_only():
    df = layer_table(TINY_LLAMA, seq_len=4, batch_size=1, mode="inference", precision="int4")
    # matmul weights: q 64 + k 32 + v 32 + o 64 + 3*128 + head 80 = 656 at 0.5 byte = 328;
    # embedding 80 and norms 24 stay bf16: 104 * 2 = 208.
    assert df["weight_bytes"].sum() == 328 + 208


def test_causal_half_halves_attention_only():
    full = layer_table("gpt2", seq_len=128, batch_size=1)
    half = layer_table("gpt2", seq_len=128, batch_size=1, causal_attention="half")
    attn = full["kind"].isin(["attention", "softmax"])
    assert np.allclose(half.loc[attn, "fwd_flops"], full.loc[attn, "fwd_flops"] / 2)
    assert np.array_equal(half.loc[~attn, "fwd_flops"], full.loc[~attn, "fwd_flops"])


def test_moe_expert_flops_use_top_k():
    df = layer_table("mixtral-8x7b", seq_len=16, batch_size=1)
    # 16 tokens x top-2 through an h x ff matmul: 2 * 32 * 4096 * 14336.
    assert _row(df, "blocks.0.moe.experts.up")["fwd_flops"] == 2 * 32 * 4096 * 14336
    assert _row(df, "blocks.0.moe.router")["fwd_flops"] == 2 * 16 * 4096 * 8


def test_bert_post_ln_order_and_pooler():
    df = layer_table("bert-base-cased", seq_len=128, batch_size=1)
    names = list(df[df["block"] == 0]["layer"])
    assert names.index("blocks.0.attn_norm") > names.index("blocks.0.attn.out")
    assert _row(df, "pooler")["fwd_flops"] == 2 * 768 * 768  # first token only
    assert "lm_head" not in set(df["layer"])


@pytest.mark.parametrize("kwargs,field", [
    (dict(seq_len=0, batch_size=1), "seq_len"),
    (dict(seq_len=8, batch_size=-2), "batch_size"),
    (dict(seq_len=8, batch_size=1.5), "batch_size"),
    (dict(seq_len=8, batch_size=1, mode="serve"), "mode"),
    (dict(seq_len=8, batch_size=1, precision="fp12"), "precision"),
    (dict(seq_len=8, batch_size=1, precision="int8"), "precision"),  # inference-only
    (dict(seq_len=8, batch_size=1, recompute="some"), "recompute"),
    (dict(seq_len=8, batch_size=1, optimizer="lion"), "optimizer"),
    (dict(seq_len=2048, batch_size=1), "seq_len"),  # gpt2 has 1024 learned positions
    (dict(seq_len=8, batch_size=1, mode="inference", kv_cache_dtype="fp7"), "kv_cache_dtype"),
])
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        layer_table("gpt2", **kwargs)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="model: unknown preset"):
        layer_table("gpt-5", seq_len=8, batch_size=1)


# ---- relations that hold for any configuration --------------------------------------------------
@st.composite
def specs(draw):
    n_kv = draw(st.sampled_from([1, 2, 4]))
    group = draw(st.sampled_from([1, 2]))
    n_heads = n_kv * group
    head_dim = draw(st.sampled_from([2, 4, 8]))
    gated = draw(st.booleans())
    n_experts = draw(st.sampled_from([1, 1, 4]))
    return ModelSpec(
        name="h", arch="decoder", n_layers=draw(st.integers(1, 3)),
        d_model=n_heads * head_dim, n_heads=n_heads, n_kv_heads=n_kv,
        d_ff=draw(st.integers(1, 64)), vocab_size=draw(st.integers(2, 100)), max_seq_len=64,
        norm="rmsnorm" if gated else "layernorm", mlp_act="silu" if gated else "gelu",
        gated_mlp=gated, position="rotary" if gated else "learned",
        tied_embeddings=draw(st.booleans()), qkv_bias=draw(st.booleans()),
        n_experts=n_experts, experts_top_k=min(2, n_experts),
    )


@settings(max_examples=40, deadline=None)
@given(spec=specs(), seq_len=st.integers(1, 64), batch=st.integers(1, 8), k=st.integers(2, 5))
def test_flops_and_activations_are_linear_in_batch(spec, seq_len, batch, k):
    one = layer_table(spec, seq_len=seq_len, batch_size=batch)
    many = layer_table(spec, seq_len=seq_len, batch_size=batch * k)
    for col in ("fwd_flops", "bwd_flops"):
        assert np.allclose(many[col], k * one[col])
    embed_pos = one["layer"] == "embed.positions"  # position ids do not grow with batch
    assert np.allclose(many.loc[~embed_pos, "activation_bytes"],
                       k * one.loc[~embed_pos, "activation_bytes"])


@settings(max_examples=40, deadline=None)
@given(spec=specs(), seq_len=st.integers(1, 64), batch=st.integers(1, 8))
def test_backward_is_twice_forward_for_matmuls(spec, seq_len, batch):
    df = layer_table(spec, seq_len=seq_len, batch_size=batch)
    mm = df[df["is_matmul"]]
    assert np.array_equal(mm["bwd_flops"], 2 * mm["fwd_flops"])


@settings(max_examples=40, deadline=None)
@given(spec=specs(), seq_len=st.integers(1, 64), batch=st.integers(1, 8))
def test_summed_layers_equal_model_totals(spec, seq_len, batch):
    df = layer_table(spec, seq_len=seq_len, batch_size=batch)
    t = totals(df)
    assert t["n_params"] == spec.n_params
    assert np.isclose(t["n_active_params"], spec.n_active_params, atol=0.5)
    assert t["weight_bytes"] == spec.n_params * 2  # bf16
    assert np.isclose(t["fwd_flops"], df["fwd_flops"].sum())


@settings(max_examples=40, deadline=None)
@given(spec=specs(), seq_len=st.integers(1, 64), batch=st.integers(1, 8))
def test_training_flops_per_token_are_6n_plus_attention(spec, seq_len, batch):
    # Kaplan et al. 2020 / PaLM (Chowdhery et al. 2022, App. B): training FLOPs per token =
    # 6 * N_matmul + 12 * L * s * (heads * head_dim), attention counted in full. N_matmul is
    # every weight a token multiplies: all matmul weights (active experts only) + the head.
    df = layer_table(spec, seq_len=seq_len, batch_size=batch)
    h, hd = spec.d_model, spec.d_head
    ff_mats = 3 if spec.gated_mlp else 2
    n_matmul = spec.n_layers * (
        h * spec.n_heads * hd * 2 + h * spec.kv_heads * hd * 2
        + ff_mats * h * spec.d_ff * spec.experts_top_k
        + (h * spec.n_experts if spec.is_moe else 0)
    ) + spec.vocab_size * h
    attention = 12 * spec.n_layers * seq_len * spec.n_heads * hd
    mm = df[df["is_matmul"]]
    per_token = (mm["fwd_flops"].sum() + mm["bwd_flops"].sum()) / (seq_len * batch)
    assert np.isclose(per_token, 6 * n_matmul + attention)


def test_llama2_7b_training_flops_close_to_6n():
    # For a 7B model at 4k context the 6N rule (Kaplan 2020) is within ~10%: the attention term
    # 12*32*4096*4096 = 6.4e9 adds 16% of 6N = 4.04e10 per token; embeddings are not matmuls.
    df = layer_table("llama-2-7b", seq_len=4096, batch_size=1)
    mm = df[df["is_matmul"]]
    per_token = (mm["fwd_flops"].sum() + mm["bwd_flops"].sum()) / 4096
    six_n = 6 * model("llama-2-7b").n_params
    attention = 12 * 32 * 4096 * 4096
    assert per_token == pytest.approx(six_n - 6 * 32000 * 4096 + attention, rel=1e-3)


def test_formula_functions_broadcast_over_grids():
    batch = np.array([1, 2, 4])[:, None]
    seq = np.array([128, 256])[None, :]
    flops = attention_matmul_flops(batch=batch, q_len=seq, kv_len=seq, n_heads=2, head_dim=4)
    assert flops.shape == (3, 2)
    assert flops[2, 1] == 2 * 4 * 2 * 256 * 256 * 4
    assert linear_flops(n_tokens=np.arange(3), d_in=2, d_out=3).tolist() == [0, 12, 24]


def test_encoder_inference_has_no_decode_or_kv_cache():
    df = layer_table("bert-base-cased", seq_len=128, batch_size=2, mode="inference")
    assert df["kv_cache_bytes"].sum() == 0
    assert df["decode_flops"].isna().all()


def test_shared_experts_scale_flops_and_activations():
    # DeepSeek-style: 2 shared experts each see every token; their up projection costs
    # 2 experts * 2 * T * h * ff = 2 * 2 * 8 * 8 * 16 = 4096 FLOPs for T = 8 tokens.
    spec = TINY_LLAMA.with_(n_experts=4, experts_top_k=2, n_shared_experts=2)
    df = layer_table(spec, seq_len=4, batch_size=2)
    assert _row(df, "blocks.0.moe.shared.up")["fwd_flops"] == 2 * 2 * 8 * 8 * 16
    assert _row(df, "blocks.0.moe.shared.up")["n_params"] == 2 * 8 * 16
    # SwiGLU saves 3 tensors of T*ff per expert pass: 3 * (8 * 2) * 16 * 2 bytes = 1536.
    assert _row(df, "blocks.0.moe.shared.act")["activation_bytes"] == 1536


def test_decode_attention_is_never_halved():
    # One query per sequence reads all 4096 cached keys: 2 * 32 heads * 4096 * 128 FLOPs.
    df = layer_table("llama-2-7b", seq_len=4096, batch_size=1, mode="inference",
                     causal_attention="half")
    assert _row(df, "blocks.0.attn.scores")["decode_flops"] == 2 * 32 * 4096 * 128


def test_arrays_are_rejected_by_the_table():
    with pytest.raises(ValueError, match="seq_len: must be a whole number, got array"):
        layer_table("gpt2", seq_len=np.array([128, 256]), batch_size=1)


def test_fused_swiglu_saves_only_its_input():
    """F16b: eager SwiGLU saves gate out, SiLU out and up out (3·T·d_ff elements); a fused
    kernel saves its input, gate and up (2·T·d_ff), and recomputes the SiLU. Llama-2-7B, one
    4,096-token sequence, bf16: 3 · 4096 · 11008 · 2 = 270,532,608 bytes eager,
    180,355,072 fused; the MLP then saves 3·d_ff per token with the down input (Megatron)."""
    kw = dict(seq_len=4096, batch_size=1, mode="train", precision="bf16")
    eager = layer_table("llama-2-7b", **kw)
    fused = layer_table("llama-2-7b", fused_swiglu=True, **kw)
    act = eager["layer"] == "blocks.0.mlp.act"
    assert float(eager.loc[act, "activation_bytes"].iloc[0]) == 270_532_608
    assert float(fused.loc[act, "activation_bytes"].iloc[0]) == 180_355_072
    mlp = eager["layer"].str.match(r"blocks\.0\.mlp\.(act|down)")
    assert float(fused.loc[mlp, "activation_bytes"].sum()) == 3 * 4096 * 11008 * 2
    # GELU models are unchanged
    gpt = layer_table("gpt2", seq_len=512, batch_size=1, mode="train")
    gpt_fused = layer_table("gpt2", seq_len=512, batch_size=1, mode="train", fused_swiglu=True)
    assert gpt["activation_bytes"].sum() == gpt_fused["activation_bytes"].sum()
