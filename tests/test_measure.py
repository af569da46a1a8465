"""Reference torch models and measurement (planner.measure.torch_models, planner.measure.counters,
calibrate).

Real runs use tiny configs on the CPU (2 blocks, d_model 64, seq 32, batch 2); full sizes run
on the meta device only. Every family: FLOPs per matmul row equal exactly, forward and
backward; parameter, gradient and optimizer bytes equal exactly; saved activations per block
within 10 % (in fact within 2 %, see docs/validation.md for what the analytic model leaves out).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from planner.measure.counters import (
    ModuleScope,
    RowFlopCounter,
    count_module_flops,
    count_parameters,
    flop_counter,
    measure_inference,
    measure_train,
    row_names,
)
from planner.measure.torch_models import _FusedRMSNorm, build_reference
from planner.model.layers import layer_table
from planner.model.spec import list_models, model

SEQ, BATCH = 32, 2
TINY = dict(n_layers=2, d_model=64, n_heads=4, d_ff=128, vocab_size=256)


def tiny(name: str, **changes):
    """A preset shrunk for the CPU, keeping its family's structure (GQA keeps 2 KV heads)."""
    base = model(name)
    kv = {"n_kv_heads": 2} if base.n_kv_heads else {}
    return base.with_(**{**TINY, **kv, **changes})


FAMILIES = {  # one preset per ModelSpec family
    "bert": "bert-base-cased",  # encoder, post-LN, token types, pooler, dropout
    "gpt": "gpt2",  # decoder, learned positions, tied head, dropout
    "llama-gqa": "llama-3-8b",  # RMSNorm, SwiGLU, rotary, grouped-query attention
    "moe": "mixtral-8x7b",  # 8 experts, top-2
}


@pytest.mark.parametrize("name", list_models())
def test_reference_has_exactly_the_analytic_parameter_count_for_every_preset(name):
    spec = model(name)
    if spec.is_mla or spec.n_mtp_layers:  # DeepSeek-V3: refused, one line (below)
        with pytest.raises(ValueError, match="not in the torch reference yet"):
            count_parameters(spec)
        return
    assert count_parameters(spec) == spec.n_params  # built on the meta device: no memory


def test_reference_refuses_mla_mtp_and_windows_beyond_the_sequence():
    # MLA and multi-token prediction are not built in torch yet: one line, naming the model
    # (measure_train / measure_inference check first; validate() checks before calibrating,
    # tests/test_validate.py).
    small = model("deepseek-v3").with_(n_layers=2, n_dense_layers=1, d_model=64, n_heads=4,
                                       d_ff=128, moe_d_ff=32, n_experts=4, experts_top_k=2,
                                       vocab_size=256, q_lora_rank=32, kv_lora_rank=16,
                                       qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
    with pytest.raises(ValueError, match=r"^model: deepseek-v3: MLA .* not in the torch "
                                         r"reference yet$"):
        measure_train(small, seq_len=8, batch_size=1, time_it=False)
    no_mla = model("qwen3-235b-a22b").with_(**TINY, n_kv_heads=2, head_dim=16, moe_d_ff=32,
                                            n_experts=4, experts_top_k=2, n_mtp_layers=1)
    with pytest.raises(ValueError, match="multi-token prediction"):
        measure_inference(no_mla, seq_len=8, batch_size=1, time_it=False)
    windowed = tiny("llama-3-8b", sliding_window=16, global_attn_every=2)
    with pytest.raises(ValueError, match=r"^seq_len: 32 exceeds sliding_window=16"):
        measure_train(windowed, seq_len=32, batch_size=1, time_it=False)


# The current shapes the reference builds: dense-first MoE with expert size moe_d_ff and a
# shared expert, per-head q/k norms (Qwen3), Gemma's sandwich norms with GeGLU and a sliding
# window longer than the sequence. Per matmul row, FLOPs equal exactly; parameters exactly.
CURRENT = {
    "qwen3-moe-dense-first": lambda: model("qwen3-235b-a22b").with_(
        **TINY, n_kv_heads=2, head_dim=16, moe_d_ff=32, n_experts=4, experts_top_k=2,
        n_dense_layers=1, n_shared_experts=1),
    "gemma-like": lambda: tiny("llama-3-8b", mlp_act="gelu", sandwich_norm=True, qk_norm=True,
                               tied_embeddings=True, head_dim=32, sliding_window=64,
                               global_attn_every=2),
}


@pytest.mark.parametrize("which", CURRENT)
def test_current_shapes_flops_and_parameters_equal_per_row(which):
    spec = CURRENT[which]()
    m, a = measure_train(spec, seq_len=SEQ, batch_size=BATCH, time_it=False).table, \
        _analytic(spec)
    mm = a[a["is_matmul"]].index
    assert np.array_equal(m.loc[mm, "fwd_flops"], a.loc[mm, "fwd_flops"])
    assert np.array_equal(m.loc[mm, "bwd_flops"], a.loc[mm, "bwd_flops"])
    assert np.array_equal(m.loc[a.index, "param_bytes"], a["weight_bytes"])
    assert count_parameters(spec) == spec.n_params
    measured = m.groupby("block")["activation_bytes"].sum()
    analytic = a.groupby("block")["activation_bytes"].sum()
    for b in range(2):  # a dense and a MoE block; a local and a global one
        assert measured[b] == pytest.approx(analytic[b], rel=0.02), (which, b)


def test_module_names_are_the_analytic_row_names():
    net = build_reference(tiny("mixtral-8x7b"), device="meta")
    modules = {n for n, _ in net.named_modules()}
    assert set(row_names(tiny("mixtral-8x7b"))) <= modules


@pytest.fixture(scope="module")
def train_runs():
    return {fam: measure_train(tiny(name), seq_len=SEQ, batch_size=BATCH, time_it=False)
            for fam, name in FAMILIES.items()}


def _analytic(spec, mode="train", precision="fp32"):
    return layer_table(spec, seq_len=SEQ, batch_size=BATCH, mode=mode,
                       precision=precision).set_index("layer")


@pytest.mark.parametrize("fam", FAMILIES)
def test_train_flops_equal_per_matmul_row(train_runs, fam):
    m, a = train_runs[fam].table, _analytic(tiny(FAMILIES[fam]))
    mm = a[a["is_matmul"]].index
    assert np.array_equal(m.loc[mm, "fwd_flops"], a.loc[mm, "fwd_flops"])
    assert np.array_equal(m.loc[mm, "bwd_flops"], a.loc[mm, "bwd_flops"])
    # nothing is counted outside the rows, and the rows add up to FlopCounterMode's total
    other = m.index.str.endswith("other")
    assert m.loc[other, ["fwd_flops", "bwd_flops"]].to_numpy().sum() == 0
    ex = train_runs[fam].extras
    assert m["fwd_flops"].sum() == ex["fwd_flops_flopcountermode"]
    assert m["bwd_flops"].sum() == ex["bwd_flops_flopcountermode"]


@pytest.mark.parametrize("fam", FAMILIES)
def test_train_parameter_gradient_optimizer_bytes_equal(train_runs, fam):
    m, a = train_runs[fam].table, _analytic(tiny(FAMILIES[fam]))
    rows = a.index
    assert np.array_equal(m.loc[rows, "param_bytes"], a["weight_bytes"])  # 4 B/param in fp32
    assert np.array_equal(m.loc[rows, "grad_bytes"], a["grad_bytes"])  # 4 B/param
    assert np.array_equal(m.loc[rows, "optimizer_bytes"], a["optimizer_bytes"])  # 2 × 4 B/param
    n_tensors = len(list(build_reference(tiny(FAMILIES[fam]), device="meta").parameters()))
    # AdamW's `step` counters (one fp32 scalar per tensor) are reported, not per-element state
    assert train_runs[fam].extras["optimizer_scalar_bytes"] == 4 * n_tensors


@pytest.mark.parametrize("fam", FAMILIES)
def test_saved_activations_within_2_percent_per_block(train_runs, fam):
    m, a = train_runs[fam].table, _analytic(tiny(FAMILIES[fam]))
    measured = m.groupby("block")["activation_bytes"].sum()
    analytic = a.groupby("block")["activation_bytes"].sum()
    for b in range(2):
        assert measured[b] == pytest.approx(analytic[b], rel=0.02), (fam, b)


def test_gpt_block_activations_differ_only_by_layernorm_statistics(train_runs):
    # 2 LayerNorms × T tokens × (mean + rstd) × 4 B = 2 · 64 · 2 · 4 = 1024 B per block
    m, a = train_runs["gpt"].table, _analytic(tiny("gpt2"))
    assert (m.groupby("block")["activation_bytes"].sum()[0]
            - a.groupby("block")["activation_bytes"].sum()[0]) == 1024


def test_llama_block_activations_differ_only_by_rmsnorm_statistics(train_runs):
    # 2 RMSNorms × T tokens × rstd × 4 B = 2 · 64 · 4 = 512 B per block; per row exact otherwise
    m, a = train_runs["llama-gqa"].table, _analytic(tiny("llama-3-8b"))
    blk = [r for r in a.index if r.startswith("blocks.0.")]
    diff = m.loc[blk, "activation_bytes"] - a.loc[blk, "activation_bytes"]
    assert diff.to_dict() == {r: (256.0 if r.endswith("norm") else 0.0) for r in blk}


def test_moe_routing_is_real_and_expert_flops_are_exact_in_aggregate():
    spec = tiny("mixtral-8x7b")
    net = build_reference(spec)
    x = torch.randn(BATCH * SEQ, spec.d_model)
    _, _, counts = net.blocks[0].moe._route(net.blocks[0].moe.router(x))
    assert sum(counts) == BATCH * SEQ * 2 and len(set(counts)) > 1  # imbalanced, all routed
    moe = net.blocks[0].moe
    fwd, _ = count_module_flops(moe, lambda: moe(x.view(BATCH, SEQ, -1)))
    # up + gate + down: 3 × 2 · (T·top_k) · h · ff = 3 · 2 · 128 · 64 · 128
    assert sum(v for k, v in fwd.items() if k.startswith("experts")) == 3 * 2 * 128 * 64 * 128


def test_mixed_precision_bytes_are_2_2_12_per_parameter():
    spec = tiny("llama-3-8b", n_layers=1)
    m = measure_train(spec, seq_len=8, batch_size=1, dtype="bf16", time_it=False).table
    a = layer_table(spec, seq_len=8, batch_size=1, precision="bf16").set_index("layer")
    for col, acol in [("param_bytes", "weight_bytes"), ("grad_bytes", "grad_bytes"),
                      ("optimizer_bytes", "optimizer_bytes")]:
        assert np.array_equal(m.loc[a.index, col], a[acol]), col
    assert m["optimizer_bytes"].sum() == 6 * m["param_bytes"].sum()  # 12 B vs 2 B per param


@pytest.mark.parametrize("fam", ["gpt", "llama-gqa", "moe"])
def test_inference_prefill_decode_flops_and_kv_cache_equal(fam):
    spec = tiny(FAMILIES[fam])
    m = measure_inference(spec, seq_len=SEQ, batch_size=BATCH, time_it=False).table
    a = _analytic(spec, mode="inference")
    mm = a[a["is_matmul"]].index
    assert np.array_equal(m.loc[mm, "fwd_flops"], a.loc[mm, "fwd_flops"])
    assert np.array_equal(m.loc[mm, "decode_flops"], a.loc[mm, "decode_flops"])
    assert np.array_equal(m.loc[a.index, "kv_cache_bytes"], a["kv_cache_bytes"])
    # K (and V) of one block: b · s · kv_heads · d_head · 4 B = 2 · 32 · kv · 16 · 4
    assert m.at["blocks.0.attn.k", "kv_cache_bytes"] == 2 * 32 * spec.kv_heads * 16 * 4


def test_encoder_inference_has_no_decode_step():
    m = measure_inference(tiny("bert-base-cased"), seq_len=SEQ, batch_size=BATCH, time_it=False)
    assert "decode_flops" not in m.table and "kv_cache_bytes" not in m.table


@pytest.mark.parametrize("name,n_layers", [("gpt2", None), ("llama-2-70b", 2),
                                           ("mixtral-8x7b", 2), ("bert-large-uncased", 2)])
def test_full_width_flops_on_meta_equal(name, n_layers):
    spec = model(name) if n_layers is None else model(name).with_(n_layers=n_layers)
    m = measure_train(spec, seq_len=256, batch_size=1, device="meta").table
    a = layer_table(spec, seq_len=256, batch_size=1).set_index("layer")
    mm = a[a["is_matmul"]].index
    assert np.array_equal(m.loc[mm, "fwd_flops"], a.loc[mm, "fwd_flops"])
    assert np.array_equal(m.loc[mm, "bwd_flops"], a.loc[mm, "bwd_flops"])
    assert "activation_bytes" not in m  # needs real storage


# ---- FlopCounterMode's blind spots and how they are closed ---------------------------------------
def test_cpu_fused_attention_is_invisible_to_flopcountermode_but_counted_here():
    q = torch.randn(2, 4, 16, 8)
    with FlopCounterMode(display=False) as plain:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert plain.get_total_flops() == 0  # the blind spot
    with flop_counter() as fixed:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    # QKᵀ + softmax·V: 2 × 2 · b·heads·s·s·d = 2 × 2 · 2·4·16·16·8 = 65536, as on meta
    assert fixed.get_total_flops() == 65536


def test_grouped_mm_formula_counts_ragged_groups():
    if not hasattr(torch, "_grouped_mm"):
        pytest.skip("torch._grouped_mm not available")
    a, w = torch.randn(48, 16), torch.randn(3, 16, 8)
    offs = torch.tensor([10, 30, 48], dtype=torch.int32)
    try:
        with flop_counter() as fc:
            torch._grouped_mm(a, w, offs=offs)
    except RuntimeError as err:  # pragma: no cover - backend without a CPU kernel
        pytest.skip(f"_grouped_mm unsupported here: {err}")
    assert fc.get_total_flops() == 2 * 48 * 16 * 8  # 2 · Σ m_g · k · n = 12288


def test_backward_of_shared_input_is_attributed_once():
    # q, k and v read the same tensor; FlopCounterMode's tracker keeps all three "active"
    # until its gradient is complete and counts k and v's backward more than once.
    spec = tiny("gpt2", n_layers=1)
    net = build_reference(spec)
    ids = torch.randint(0, 256, (1, 8))
    with FlopCounterMode(display=False) as fc:
        net(ids, ids).backward()
    counts = {k.removeprefix("Reference."): sum(v.values())
              for k, v in fc.get_flop_counts().items()}
    fwd_v = 2 * 8 * 64 * 64  # 65536
    assert counts["blocks.0.attn.v"] > 3 * fwd_v  # fwd + 2·fwd expected; tracker overcounts
    scope = ModuleScope(net)
    with RowFlopCounter(scope) as rc:
        with scope:
            loss = net(ids, ids)
        scope.own_backward(loss)
        loss.backward()
    assert rc.flops["blocks.0.attn.v"] == 3 * fwd_v  # forward + backward (2 × forward)


def test_fused_rmsnorm_gradient_is_correct():
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: _FusedRMSNorm.apply(x, w, 1e-5), (x, w))


# ---- the kernel sweep of `planner calibrate` ----------------------------------------------------
def test_kernel_sweep_on_the_cpu_is_positive_and_sorted():
    from planner.measure.calibration import ATTENTION_VARIANTS, measure_kernel_sweep

    sw = measure_kernel_sweep(torch.device("cpu"), torch.float32, gemm_sizes=(128, 64),
                              copy_sizes=(1e6, 1e5),
                              attention=dict(seq_lens=(64, 32), head_dim=64, heads=2,
                                             tokens=128), repeats=1)
    assert sw.gemm_sizes == (64, 128) and sw.copy_sizes == (1e5, 1e6)
    assert sw.attention_seq_lens == (32, 64) and sw.attention_head_dim == 64
    assert set(sw.attention_flops_per_s) == set(ATTENTION_VARIANTS)
    rates = [*sw.gemm_flops_per_s, *sw.copy_bytes_per_s,
             *(r for v in sw.attention_flops_per_s.values() for r in v)]
    assert all(np.isfinite(r) and r > 1e6 for r in rates)
    assert all(len(v) == 2 for v in sw.attention_flops_per_s.values())


def test_kernel_sweep_without_attention_and_the_default_plan():
    from planner.measure.calibration import (
        CPU_COPY_SIZES,
        CPU_MATMUL_SIZES,
        measure_ceilings,
        sweep_settings,
    )

    plan = sweep_settings("cpu", attention=True)
    assert plan["gemm_sizes"] == CPU_MATMUL_SIZES and plan["copy_sizes"] == CPU_COPY_SIZES
    assert plan["attention"]["head_dim"] == 64
    # 5 GEMM sizes + 6 copies + 4 seq_lens × (causal, not) + the overhead step
    assert plan["steps"] == 5 + 6 + 8 + 1
    assert sweep_settings("cpu", copy_bytes=4_000_000)["copy_sizes"] == (8e6,)
    c = measure_ceilings("cpu", "fp32", matmul_sizes=(64,), copy_bytes=1_000_000,
                         skinny_sizes=(64,), repeats=1, optimizer=False)
    assert c.sweep is not None and c.sweep.attention_seq_lens == ()
    assert c.copy_bytes == 1_000_000 and c.sweep.copy_sizes == (2e6,)
