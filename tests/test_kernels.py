"""Kernel-level rates (planner.hardware.kernels, docs/planning.md K1-K5, data in
hardware_catalog/kernels.toml and docs/kernels.md): coverage, the public API by hand, the
collective model against the measured nccl-tests points stored beside it, user overrides."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import planner
from planner.hardware.catalog import load_catalog
from planner.hardware.kernels import (
    SUSTAINED_TENSOR_FRAC,
    CollectiveOp,
    Tier,
    builtin_kernel_entries,
    bus_factor,
    kernel_entry,
    read_kernel_entries,
    ring_steps,
)

CATALOG = load_catalog()
H100_PEAK = 989.4e12


def test_sustained_rule_is_the_gb200_ratio():
    # Azure sustained FP8 GEMM 2,744 TFLOP/s over the MAMF best shape 3,615.6 TFLOP/s
    assert SUSTAINED_TENSOR_FRAC == pytest.approx(0.7589, abs=1e-4)


def test_every_gpu_tpu_and_asic_has_its_own_table_and_fpgas_a_rule():
    owned = {d for e in builtin_kernel_entries() for d in e.devices}
    for device in CATALOG:
        entry, note = kernel_entry(device)
        assert device.id in owned, device.id
        assert note == ""
        if device.kind == "fpga":
            assert entry.rule, device.id
        assert entry.gemm.source and entry.attention.source and entry.memory.source
        assert entry.collectives.scale_up.source


def test_each_device_is_listed_once():
    ids = [d for e in builtin_kernel_entries() for d in e.devices]
    assert len(ids) == len(set(ids))


def test_gemm_rate_h100_by_hand():
    # 8192³ bf16: table 0.80 (MAMF plateau) × sustained 0.759 × 989.4 TFLOP/s = 600.7 TFLOP/s
    rate = planner.gemm_flops_per_s("nvidia_h100_sxm", 8192, 8192, 8192)
    assert rate == pytest.approx(0.80 * SUSTAINED_TENSOR_FRAC * H100_PEAK)
    assert rate == pytest.approx(600.7e12, rel=1e-3)
    # a 16-row GEMM (decode) fills its 8-row MMA tiles (K1b): the table's rate at its size,
    # (16 · 8192²)^(1/3) = 1024: 0.32
    skinny = planner.gemm_flops_per_s("nvidia_h100_sxm", 16, 8192, 8192)
    assert skinny == pytest.approx(H100_PEAK * SUSTAINED_TENSOR_FRAC * 0.32)
    # 4 rows use half of an 8-row tile, at the padded GEMM's size (8 · 8192²)^(1/3) = 812.7
    quarter = planner.gemm_flops_per_s("nvidia_h100_sxm", 4, 8192, 8192)
    assert quarter == pytest.approx(planner.gemm_flops_per_s("nvidia_h100_sxm", 8, 8192, 8192)
                                    / 2)
    # between table points the fraction is interpolated in log(size): 2896 = 2048 · √2
    mid = planner.gemm_flops_per_s("nvidia_h100_sxm", 2896, 2896, 2896)
    frac = 0.68 + (0.792 - 0.68) * math.log(2896 / 2048) / math.log(2)
    assert mid == pytest.approx(H100_PEAK * SUSTAINED_TENSOR_FRAC * frac, rel=1e-6)
    # fp8 has its own (lower) table on the fp8 peak
    fp8 = planner.gemm_flops_per_s("nvidia_h100_sxm", 8192, 8192, 8192, dtype="fp8")
    assert fp8 == pytest.approx(0.72 * SUSTAINED_TENSOR_FRAC * 1978.9e12, rel=1e-3)
    assert fp8 < 2 * rate


def test_larger_gemms_are_more_efficient_up_to_the_plateau():
    rates = [planner.gemm_flops_per_s("nvidia_a100_80gb_sxm", s, s, s) for s in
             (512, 1024, 2048, 4096, 8192)]
    assert rates == sorted(rates)
    assert rates[0] < 0.25 * rates[-1]  # a 512³ GEMM is launch- and wave-bound


def test_attention_rate_h100_by_hand():
    # FlashAttention-3, causal forward at 4k, head dim 128: 0.585 of the peak, sustained
    rate = planner.attention_flops_per_s("nvidia_h100_sxm", 4096, 128, causal=True)
    assert rate == pytest.approx(0.585 * SUSTAINED_TENSOR_FRAC * H100_PEAK)
    bwd = planner.attention_flops_per_s("nvidia_h100_sxm", 4096, 128, causal=True,
                                        backward=True)
    assert bwd == pytest.approx(0.497 * SUSTAINED_TENSOR_FRAC * H100_PEAK)
    assert bwd < rate


def test_memory_rate_h100_by_hand():
    assert planner.memory_bytes_per_s("nvidia_h100_sxm", 1e9) == pytest.approx(0.884 * 3.35e12)
    # a 100 kB copy is launch-bound: under 1 % of the bandwidth
    assert planner.memory_bytes_per_s("nvidia_h100_sxm", 1e5) < 0.01 * 3.35e12


def test_collective_time_h100_by_hand():
    # all-reduce of 1 GB over 8 H100 (NVLink SHARP): min(14, 6) = 6 steps of 7 µs
    # + 2·7/8 · 1 GB / (0.95 · 450 GB/s) = 42 µs + 4.094 ms
    t = planner.collective_time_s("nvidia_h100_sxm", "all_reduce", 1e9, 8)
    assert t == pytest.approx(6 * 7e-6 + 1.75e9 / (0.95 * 450e9))
    assert t == pytest.approx(4.1356e-3, rel=1e-4)
    # one rank: nothing to do
    assert planner.collective_time_s("nvidia_h100_sxm", "all_gather", 1e9, 1) == 0.0


def test_collective_latency_grows_with_the_rank_count():
    assert list(ring_steps("all_gather", [2, 8, 64])) == [1, 7, 63]
    assert list(ring_steps("all_reduce", [2, 8, 64])) == [2, 6, 12]  # tree beyond 4 ranks
    assert list(ring_steps("send_recv", [2, 64])) == [1, 1]
    small = [planner.collective_time_s("nvidia_h100_sxm", "all_gather", 1e3, n, "scale_up")
             for n in (2, 4, 8)]
    assert small == sorted(small) and small[-1] > 5 * small[0]
    # beyond one 8-GPU node the default tier is scale-out: slower per byte
    assert (planner.collective_time_s("nvidia_h100_sxm", "all_reduce", 1e9, 16)
            > planner.collective_time_s("nvidia_h100_sxm", "all_reduce", 1e9, 8))
    assert bus_factor("all_to_all", 8) == pytest.approx(7 / 8)


def test_small_messages_use_the_small_message_latency():
    """K5b on 8 A100 (stas00/ml-engineering, nccl-tests): 32 KiB all-reduce measured 43.8 µs:
    6 tree steps of 7.3 µs + 1.75 · 32,768 / (0.78 · 300e9) = 43.8 + 0.25 µs; at 1 MiB the
    1 MiB point's α, 16 µs (102 µs measured): 6 · 16 + 1.75 · 1,048,576 / 234e9 = 103.8 µs;
    256 KiB in between: α = 7.3 + 0.6 · (16 − 7.3) = 12.52 µs."""
    def t(n_bytes: float) -> float:
        return planner.collective_time_s("nvidia_a100_80gb_sxm", "all_reduce", n_bytes, 8)

    assert t(32_768) == pytest.approx(6 * 7.3e-6 + 1.75 * 32_768 / (0.78 * 300e9))
    assert t(32_768) == pytest.approx(43.8e-6, rel=0.01)
    assert t(8_192) < t(32_768) < 45e-6
    assert t(1 << 20) == pytest.approx(6 * 16e-6 + 1.75 * (1 << 20) / (0.78 * 300e9))
    assert t(1 << 20) == pytest.approx(102e-6, rel=0.02)
    assert t(1 << 18) == pytest.approx(6 * (7.3e-6 + 0.6 * 8.7e-6)
                                       + 1.75 * (1 << 18) / (0.78 * 300e9))
    # a tier without a small-message measurement keeps one α (H100: 7 µs)
    h100 = planner.collective_time_s("nvidia_h100_sxm", "all_reduce", 8_192, 8)
    assert h100 == pytest.approx(6 * 7e-6 + 1.75 * 8_192 / (0.95 * 450e9))


def test_the_collective_model_against_the_measured_points():
    """Every measured nccl-tests point over a whole 8-device domain stored in the catalog: at
    256 MB and above the α–β model is within 30 % of the measured bus bandwidth, from 16 MB
    within 45 %, below within a factor 2 (α comes from the smallest point; NCCL's protocol
    switches are not modelled). NB: 2-rank points on a fully connected mesh (MI300X) are
    excluded: a pair uses one of the 7 links, which the per-device bandwidth does not model
    (docs/kernels.md)."""
    checked = 0
    for entry in builtin_kernel_entries():
        device = CATALOG.get(entry.devices[0])
        for tier in Tier:
            t = getattr(entry.collectives, tier.value)
            if t is None:
                continue
            for m in t.measured:
                if m.n_ranks < (device.scaleup_domain_size or 1):
                    continue
                for n_bytes, busbw in zip(m.message_bytes, m.busbw_bytes_per_s, strict=True):
                    s = planner.collective_time_s(device, m.op.value, n_bytes, m.n_ranks,
                                                  tier.value)
                    predicted = float(bus_factor(m.op, m.n_ranks)) * n_bytes / s
                    ratio = predicted / busbw
                    bound = ((0.7, 1.3) if n_bytes >= 2.5e8 else (0.55, 1.45) if n_bytes >= 1.6e7
                             else (0.5, 2.0))
                    assert bound[0] < ratio < bound[1], (entry.devices, m.op, n_bytes, ratio)
                    checked += 1
    assert checked >= 10


@pytest.mark.parametrize(("call", "message"), [
    (lambda: planner.collective_time_s("nvidia_h100_sxm", "broadcast", 1e6, 8), "op:"),
    (lambda: planner.collective_time_s("nvidia_h100_sxm", "all_reduce", 1e6, 0), "n_ranks:"),
    (lambda: planner.collective_time_s("nvidia_h100_sxm", "all_reduce", -1, 8), "n_bytes:"),
    (lambda: planner.collective_time_s("nvidia_h100_sxm", "all_reduce", 1e6, 8, "dcn"),
     "tier:"),
    (lambda: planner.gemm_flops_per_s("nvidia_h100_sxm", 0, 8, 8), "m:"),
    (lambda: planner.gemm_flops_per_s("nvidia_v100_sxm2_32gb", 8, 8, 8, dtype="bf16"),
     "dtype:"),
    (lambda: planner.gemm_flops_per_s("no_such_gpu", 8, 8, 8), "unknown device"),
    (lambda: planner.memory_bytes_per_s("nvidia_h100_sxm", float("nan")), "n_bytes:"),
    (lambda: planner.attention_flops_per_s("nvidia_h100_sxm", 4096, 0), "head_dim:"),
])
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(ValueError, match=message):
        call()


_USER_KERNELS = """
[[kernels]]
devices = ["nvidia_h100_sxm"]
checked_on = "2026-12-01"
[kernels.gemm]
source = "my own sweep"
size = [1024, 8192]
bf16 = [0.3, 0.4]
sustained_frac = 1.0
[kernels.attention]
source = "my own"
seq_len = [1024, 8192]
[[kernels.attention.curve]]
dtype = "bf16"
head_dim = 128
causal = true
direction = "fwd"
frac = [0.3, 0.3]
[kernels.memory]
source = "my own"
size_bytes = [1e6, 1e9]
frac = [0.5, 0.5]
[kernels.collectives.scale_up]
source = "my own"
latency_s = 1e-5
all_reduce = 0.5
all_gather = 0.5
reduce_scatter = 0.5
all_to_all = 0.5
send_recv = 0.5
"""


def test_a_user_kernel_table_replaces_the_builtin_one(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text(_USER_KERNELS, encoding="utf-8")
    assert [e.devices for e in read_kernel_entries(path)] == [("nvidia_h100_sxm",)]
    mine = load_catalog(path)
    assert mine.kernels["nvidia_h100_sxm"].gemm.source == "my own sweep"
    job = planner.TrainingJob(model="llama-2-7b", n_tokens=1e10, seq_len=2048,
                              global_batch_size=64, n_devices=8)
    default = planner.rank(job, devices=["nvidia_h100_sxm"]).iloc[0]
    slow = planner.rank(job, mine, devices=["nvidia_h100_sxm"]).iloc[0]
    assert slow["time_s"] > 1.2 * default["time_s"]
    # the public rates read the same user table when given the catalog
    assert planner.gemm_flops_per_s("nvidia_h100_sxm", 8192, 8192, 8192, catalog=mine) == (
        pytest.approx(0.4 * H100_PEAK))
    assert planner.memory_bytes_per_s("nvidia_h100_sxm", 1e8, catalog=mine) == (
        pytest.approx(0.5 * 3.35e12))


def test_a_bad_kernel_table_names_the_file_and_field(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text(_USER_KERNELS.replace("bf16 = [0.3, 0.4]", "bf16 = [0.3, 1.4]"),
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.toml: \[\[kernels\]\].*gemm.bf16"):
        load_catalog(path)


def test_collective_enum_and_tier_names():
    assert [o.value for o in CollectiveOp] == ["all_reduce", "all_gather", "reduce_scatter",
                                               "all_to_all", "send_recv"]
    assert [t.value for t in Tier] == ["scale_up", "scale_out"]


# ---- the step-time model reads the tables as K1-K2 say (hand-derived from kernels.toml) --------
def _h100_rates(job):
    from planner.plan.search import device_columns

    return device_columns(CATALOG.get("nvidia_h100_sxm"), job).rates


def test_fused_attention_op_time_from_the_tables_by_hand():
    """Llama-2-7B, one 4,096-token sequence on an H100: the fused causal kernel executes half
    the score matrix, 2 · 2·32·4096²·128 / 2 = 137.44 GFLOP of matmuls + 5·32·4096²/2 =
    1.34 GFLOP of softmax forward; forward at FA3's causal 0.585 of the peak, backward 2.5× the
    FLOPs at 0.497 (K2), both × σ. Compute-bound, so each pass is FLOPs / rate."""
    from planner.plan.steptime import ops_time_s, training_profile

    prof = training_profile(planner.model("llama-2-7b"), seq_len=4096, precision="bf16",
                            optimizer="adamw", flash_attention=True, causal_attention="full")
    core = prof.block.names.index("attn.core")
    flops = 2 * 2 * 32 * 4096**2 * 128 / 2 + 5 * 32 * 4096**2 / 2
    assert prof.block.flops[core] == pytest.approx(flops)
    job = planner.TrainingJob(model="llama-2-7b", n_tokens=1e9, seq_len=4096,
                              global_batch_size=8)
    only = np.eye(len(prof.block.names))[core]
    kw = dict(batch=1, tp=1, kv_split=1, rates=_h100_rates(job))
    fwd = ops_time_s(prof.block, fwd_passes=only, **kw)
    assert fwd == pytest.approx(flops / (H100_PEAK * 0.585 * SUSTAINED_TENSOR_FRAC))
    with_bwd = ops_time_s(prof.block, fwd_passes=only, backward=True, **kw)
    without = ops_time_s(prof.block, fwd_passes=0 * only, backward=True, **kw)
    # with_bwd - without = the core's forward alone (the backward of every op is in both)
    assert with_bwd - without == pytest.approx(fwd)
    core_only = prof.block.__class__(**{**prof.block.__dict__, "count": only})
    bwd = ops_time_s(core_only, fwd_passes=0 * only, backward=True, **kw)
    assert bwd == pytest.approx(2.5 * flops / (H100_PEAK * 0.497 * SUSTAINED_TENSOR_FRAC))


def test_a_decode_gemm_pays_the_tile_share_by_hand():
    """Llama-2-7B's q projection (m × 4096 × 4096) in decode on an H100 with memory at the full
    3.35 TB/s (flat override: the 33.55 MB of weights take 10.0 µs). Batch 4: rows padded to
    the 8-row MMA tile (K1b), s = (8 · 4096²)^(1/3) = 512, table 0.068, half the tile useful:
    2·4·4096² / (989.4e12 · 0.068 · 0.5 · 0.759) = 5.26 µs of compute, so the weight read
    (10.0 µs) sets the time. Batch 256: s = (256 · 4096²)^(1/3) = 1625.5, table
    0.32 + 0.36 · log2(1625.5/1024) = 0.56: 2·256·4096² / (989.4e12 · 0.56 · 0.759) = 20.4 µs,
    compute-bound."""
    from planner.plan.search import device_columns
    from planner.plan.steptime import inference_profile, ops_time_s

    prof = inference_profile(planner.model("llama-2-7b"), prompt_len=128, output_len=128,
                             precision="bf16", kv_cache_precision=None)
    q = prof.decode.names.index("attn.q")
    job = planner.InferenceJob(model="llama-2-7b", prompt_len=128, output_len=128,
                               efficiency_overrides={"memory_bw_frac": 1.0})
    rates = device_columns(CATALOG.get("nvidia_h100_sxm"), job).rates

    def per_layer(batch: int) -> float:
        return ops_time_s(prof.decode, batch=batch, tp=1, kv_split=1, rates=rates,
                          fwd_passes=np.eye(len(prof.decode.names))[q]) / 32

    small = per_layer(4)
    compute = 2 * 4 * 4096**2 / (H100_PEAK * 0.068 * 0.5 * SUSTAINED_TENSOR_FRAC)
    assert compute == pytest.approx(5.26e-6, rel=2e-3)
    weights = 4096**2 * 2 / 3.35e12  # 10.02 µs
    assert small == pytest.approx(weights, rel=5e-3)  # + 4 tokens' 16 kB of activations
    large = per_layer(256)
    frac = 0.32 + (0.68 - 0.32) * math.log(256 ** (1 / 3) * 4096 ** (2 / 3) / 1024, 2)
    assert frac == pytest.approx(0.56, abs=1e-3)
    expected = 2 * 256 * 4096**2 / (H100_PEAK * frac * SUSTAINED_TENSOR_FRAC)
    assert large == pytest.approx(expected)
    assert large == pytest.approx(20.4e-6, rel=3e-3)


def test_head_dim_must_be_whole_and_sizes_not_bools():
    with pytest.raises(ValueError, match="head_dim: must be a whole number"):
        planner.attention_flops_per_s("nvidia_h100_sxm", 4096, 0.5)
    with pytest.raises(ValueError, match="m: expected a number"):
        planner.gemm_flops_per_s("nvidia_h100_sxm", True, 8, 8)


def test_user_kernel_tables_are_checked(tmp_path: Path):
    typo = tmp_path / "typo.toml"
    typo.write_text(_USER_KERNELS.replace("bf16 = [0.3, 0.4]", "bf_16 = [0.3, 0.4]"),
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"gemm\.bf_16: unknown key"):
        load_catalog(typo)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(_USER_KERNELS.replace('devices = ["nvidia_h100_sxm"]',
                                             'devices = ["nvidia_h100_sxmm"]'), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown device 'nvidia_h100_sxmm'; did you mean"):
        load_catalog(unknown)


def test_a_matrix_vector_engine_is_not_padded_to_a_tensor_core_tile():
    # K1b with the FPGA rule's tile of 1: a batch-1 decode GEMV (1 x 4096 x 4096, s = 256) on
    # a U280 in fp16 runs at peak x table x sustained = 12.25e12 x 0.05 x 0.759 = 4.649e11
    # FLOP/s; a tensor-core device pads the row to its 8-row MMA tile (an H100 keeps 1/8 of
    # the 8-row GEMM's rate)
    got = planner.gemm_flops_per_s("amd_alveo_u280", 1, 4096, 4096, "fp16")
    assert got == pytest.approx(12.25e12 * 0.05 * 0.759, rel=1e-3)
    h100_one = planner.gemm_flops_per_s("nvidia_h100_sxm", 1, 4096, 4096, "bf16")
    h100_eight = planner.gemm_flops_per_s("nvidia_h100_sxm", 8, 4096, 4096, "bf16")
    assert h100_one == pytest.approx(h100_eight / 8)


def test_routed_experts_run_as_one_grouped_gemm_by_hand():
    """K1 for a routed-expert op: one grouped GEMM over the touched experts (vLLM's fused MoE,
    Megatron's grouped GEMM), the table read at the whole call's rows. Mixtral 8x7B prefill of
    2,048 tokens, top-2 of 8: every expert touched, 512 rows each, the call 4,096 × 14,336 ×
    4,096: s = (4096 · 14336 · 4096)^(1/3) = 6,183, H100 bf16 table 0.792 + 0.008 ·
    log2(6183/4096) = 0.7968; 2 · 2048 · 2 · 14336 · 4096 FLOPs = 4.81e11 at 989.4e12 ·
    0.7968 · 0.759 = 804 µs, above the 0.94 GB weight read (280 µs at 3.35 TB/s). Each
    expert alone (s = 3,091, table 0.7465) would take 858 µs."""
    from planner.plan.search import device_columns
    from planner.plan.steptime import inference_profile, ops_time_s

    prof = inference_profile(planner.model("mixtral-8x7b"), prompt_len=2048, output_len=16,
                             precision="bf16", kv_cache_precision=None)
    up = prof.prefill.names.index("moe.experts.up")
    job = planner.InferenceJob(model="mixtral-8x7b", prompt_len=2048, output_len=16,
                               efficiency_overrides={"memory_bw_frac": 1.0})
    rates = device_columns(CATALOG.get("nvidia_h100_sxm"), job).rates
    t = ops_time_s(prof.prefill, batch=1, tp=1, kv_split=1, rates=rates,
                   fwd_passes=np.eye(len(prof.prefill.names))[up]) / 32  # one layer
    s = (4096 * 14336 * 4096) ** (1 / 3)
    frac = 0.792 + 0.008 * math.log2(s / 4096)
    assert frac == pytest.approx(0.7968, abs=1e-4)
    flops = 2 * 2048 * 2 * 14336 * 4096
    assert t == pytest.approx(flops / (H100_PEAK * frac * SUSTAINED_TENSOR_FRAC), rel=1e-3)
    assert t == pytest.approx(804e-6, rel=3e-3)
    assert 8 * 14336 * 4096 * 2 / 3.35e12 < 0.4 * t  # compute-bound, not the weight read
