"""Roofline, collectives, the pipeline schedule and serving time (docs/planning.md P6-P14, P19)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import InferenceJob, TrainingJob
from planner.hardware.catalog import load_catalog
from planner.hardware.kernels import CollectiveOp, bus_factor, collective_seconds
from planner.model.layers import layer_table
from planner.model.spec import model
from planner.plan.search import device_columns, evaluate_inference
from planner.plan.steptime import (
    data_parallel_seconds,
    experts_touched_frac,
    inference_profile,
    op_time_s,
    ops_time_s,
    optimizer_step_bytes,
    pipeline_bubble_frac,
    pipeline_step_time_s,
    stage_time_s,
    training_profile,
    weight_read_bytes,
)

H100 = load_catalog().get("nvidia_h100_sxm")  # 989.4 TFLOP/s bf16, 3.35 TB/s, 450 GB/s NVLink
# Flat fractions replace the kernel tables, so the hand-derived numbers below stay simple.
FLAT = {"compute_frac": 0.4, "memory_bw_frac": 0.7, "network_frac": 0.8, "op_overhead_s": 5e-6}


def _flat_h100(job, **changes):
    overrides = {**FLAT, **changes}
    return device_columns(H100, job.model_copy(update={"efficiency_overrides": overrides}))


def test_ring_allreduce_moves_2_n_minus_1_over_n_of_the_gradients():
    grads = 6_738_415_616 * 2  # Llama-2-7B bf16 gradients: 13,476,831,232 bytes
    # 2 * 7/8 * 13,476,831,232 = 23,584,454,656 bytes per device
    assert bus_factor("all_reduce", 8) * grads == 23_584_454_656
    assert bus_factor("reduce_scatter", 8) * grads == 23_584_454_656 / 2
    assert bus_factor("all_gather", 4) * 800.0 == 600.0  # 3/4 * 800
    assert bus_factor("all_reduce", 1) * grads == 0.0


def test_collective_time_and_single_device():
    # all-reduce of 13.71 GB over 8 ranks: bus bytes 2 * 7/8 * 13.71e9 = 24e9 at 0.8 x 450 GB/s
    # = 0.0667 s, plus min(2 * 7, 2 * log2 8) = 6 steps of 10 us (K5)
    t = collective_seconds(CollectiveOp.ALL_REDUCE, n_bytes=24e9 / 1.75, n_ranks=8,
                           link_bytes_per_s=450e9, busbw_frac=0.8, latency_s=1e-5)
    assert t == pytest.approx(24e9 / 360e9 + 6e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # no link needed for one device, even when the link is unknown
        assert collective_seconds(CollectiveOp.ALL_REDUCE, n_bytes=0.0, n_ranks=1,
                                  link_bytes_per_s=np.nan, busbw_frac=0.8,
                                  latency_s=1e-5) == 0.0
    assert np.isnan(collective_seconds(CollectiveOp.ALL_REDUCE, n_bytes=1.0, n_ranks=2,
                                       link_bytes_per_s=np.nan, busbw_frac=0.8,
                                       latency_s=1e-5))


def test_pipeline_bubble_formula():
    assert pipeline_bubble_frac(pp=4, n_micro_batches=8) == pytest.approx(3 / 11)
    assert pipeline_bubble_frac(pp=1, n_micro_batches=8) == 0.0
    # (m + p - 1) stage times: 8 + 4 - 1 = 11
    assert pipeline_step_time_s(stage_micro_batch_s=2.0, pp=4, n_micro_batches=8) == 22.0
    # idle share of the span equals the bubble: (11 - 8) / 11
    span = pipeline_step_time_s(stage_micro_batch_s=1.0, pp=4, n_micro_batches=8)
    assert (span - 8) / span == pytest.approx(pipeline_bubble_frac(pp=4, n_micro_batches=8))
    # stage: ceil(10 / 4) = 3 blocks + the larger outer side
    assert stage_time_s(layer_s=1.0, first_s=0.5, last_s=2.0, n_layers=10, pp=4) == 5.0
    assert stage_time_s(layer_s=1.0, first_s=0.5, last_s=2.0, n_layers=10, pp=1) == 12.5


def test_roofline_takes_the_slower_side_and_the_launch_floor():
    kw = dict(compute_flops_per_s=1e15 * 0.5, memory_bytes_per_s=2e12 * 0.5, overhead_s=5e-6)
    # compute-bound: 1e12 / 5e14 = 2 ms vs 1e8 / 1e12 = 0.1 ms
    assert op_time_s(flops=1e12, bytes_moved=1e8, **kw) == pytest.approx(2e-3)
    # memory-bound: 1e9 bytes / 1e12 = 1 ms
    assert op_time_s(flops=1e9, bytes_moved=1e9, **kw) == pytest.approx(1e-3)
    # tiny op: the 5 us floor
    assert op_time_s(flops=1.0, bytes_moved=1.0, **kw) == 5e-6


def test_data_parallel_traffic_per_zero_stage_by_hand():
    # priced as bytes on the wire (bus factor x message, 4 ranks, 1 byte/s, no latency)
    def wire(op, n_bytes):
        return collective_seconds(op, n_bytes=n_bytes, n_ranks=4, link_bytes_per_s=1.0,
                                  busbw_frac=1.0, latency_s=0.0)

    kw = dict(weight_bytes=100.0, grad_bytes=100.0, collective=wire)
    rows = {z: tuple(float(x) for x in data_parallel_seconds(zero_stage=z, **kw))
            for z in range(4)}
    assert rows[0] == (150.0, 0.0)  # all-reduce: 2 * 3/4 * 100
    assert rows[1] == (150.0, 0.0)  # reduce-scatter G + all-gather W: 75 + 75
    assert rows[2] == (75.0, 75.0)  # W gathered per step, G scattered per micro-batch
    assert rows[3] == (0.0, 225.0)  # per micro-batch: 2 * 75 (W twice) + 75 (G): 1.5x


def test_optimizer_step_worked_number():
    # Llama-2-7B AdamW on one H100: (13.48 + 2 * 80.86 + 13.48) GB / (3.35 TB/s * 0.7) = 80 ms
    n = 6_738_415_616
    moved = optimizer_step_bytes(weight_bytes=2 * n, grad_bytes=2 * n, optimizer_bytes=12 * n)
    assert moved == 28 * n
    job = TrainingJob(model="llama-2-7b", n_tokens=1e9, seq_len=1024, global_batch_size=8)
    t = float(_flat_h100(job).rates.memory_seconds(moved)[0])
    assert t == pytest.approx(28 * n / 2.345e12)
    assert t == pytest.approx(0.0805, abs=5e-4)


def test_training_profile_ops_and_flops():
    prof = training_profile(model("llama-2-7b"), seq_len=4096, precision="bf16",
                            optimizer="adamw", flash_attention=True, causal_attention="full")
    ops = dict(zip(prof.block.names, range(len(prof.block.names)), strict=True))
    assert "attn.core" in ops and "attn.scores" not in ops  # fused attention is one op
    q = ops["attn.q"]
    # [4096, 4096] @ [4096, 4096]: 2 * 4096^3 FLOPs; reads 4096^2 * 2 bytes of weights
    assert prof.block.flops[q] == 2 * 4096**3
    assert prof.block.weight_bytes[q] == 4096**2 * 2
    assert prof.block.traffic_bytes[q] == 4096 * (4096 + 4096) * 2  # in + out, bf16
    # worked number: on an H100 at a flat 0.40 / 0.70 it takes 0.347 ms, compute-bound
    job = TrainingJob(model="llama-2-7b", n_tokens=1e9, seq_len=4096, global_batch_size=8)
    t = ops_time_s(prof.block, batch=1, tp=1, kv_split=1, rates=_flat_h100(job).rates,
                   fwd_passes=np.eye(len(ops))[q])
    assert t == pytest.approx(2 * 4096**3 / (989.4e12 * 0.4))
    assert t == pytest.approx(3.47e-4, rel=1e-3)
    # forward + backward: the backward's two GEMMs of the same shape take twice as long
    fb = ops_time_s(prof.block, batch=1, tp=1, kv_split=1, rates=_flat_h100(job).rates,
                    fwd_passes=np.eye(len(ops))[q], backward=True)
    assert fb > 3 * t  # every other op's backward is added too

    # full recompute adds the blocks' forward: HFU / MFU close to 4/3 (ref README §5)
    assert prof.hardware_flops_per_seq[2] / prof.model_flops_per_seq == pytest.approx(4 / 3,
                                                                                      abs=0.02)
    # with flash attention, selective recompute adds nothing (the kernel recomputes itself)
    assert prof.hardware_flops_per_seq[1] == prof.model_flops_per_seq
    assert list(prof.tp_collectives_per_layer) == [4, 4, 6]


def test_selective_recompute_without_flash_recomputes_the_attention_core():
    prof = training_profile(model("gpt2"), seq_len=1024, precision="bf16", optimizer="adamw",
                            flash_attention=False, causal_attention="full")
    core = [i for i, n in enumerate(prof.block.names)
            if n in ("attn.scores", "attn.softmax", "attn.context")]
    assert len(core) == 3
    assert set(prof.block_fwd_passes[1][core]) == {2.0}
    assert prof.block_fwd_passes[0].tolist() == [1.0] * len(prof.block.names)


@settings(max_examples=25, deadline=None)
@given(batch=st.sampled_from([1, 2, 8, 32, 128]), tp=st.sampled_from([1, 2, 4, 8]),
       mem_frac=st.floats(0.05, 1.0), model_name=st.sampled_from(["llama-2-7b", "llama-2-70b",
                                                                 "gpt2", "mixtral-8x7b"]))
def test_decode_tokens_per_s_times_weight_bytes_within_bandwidth(batch, tp, mem_frac,
                                                                  model_name):
    spec = model(model_name)
    if spec.n_heads % tp:
        return
    job = InferenceJob(model=spec, prompt_len=256, output_len=64, concurrent_requests=batch)
    prof = inference_profile(spec, prompt_len=256, output_len=64, precision="bf16",
                             kv_cache_precision=None)
    dev = _flat_h100(job, memory_bw_frac=mem_frac)
    q = evaluate_inference(job, prof, dev, tp=tp, batch=batch)
    # bytes each device must read per decode step: its share of the weights, less the
    # embedding lookup table (only the rows of the current tokens are read) and, for MoE, the
    # experts no token of the batch visits (P6b)
    read = float(weight_read_bytes(prof.decode, batch=batch)) / tp
    per_sequence_tokens_per_s = 1.0 / q.tpot_s
    assert per_sequence_tokens_per_s * read <= 3.35e12 * (1 + 1e-9)
    # the README §8 check with all weights, at a realistic efficiency (<= 0.9)
    if mem_frac <= 0.9 and model_name.startswith("llama"):
        assert per_sequence_tokens_per_s * prof.weight_bytes / tp <= 3.35e12


def test_decode_is_bandwidth_bound_at_batch_1():
    spec = model("llama-2-7b")
    job = InferenceJob(model=spec, prompt_len=128, output_len=128)
    prof = inference_profile(spec, prompt_len=128, output_len=128, precision="bf16",
                             kv_cache_precision=None)
    q = evaluate_inference(job, prof, _flat_h100(job), tp=1, batch=1)
    # weights read (less the embedding table) over 3.35 TB/s * 0.7: the floor of TPOT
    floor = (prof.weight_bytes - 32000 * 4096 * 2) / (3.35e12 * 0.7)
    assert floor < q.tpot_s.item() < 1.25 * floor


def test_data_parallel_bw_is_scale_up_inside_a_domain_and_all_nics_across():
    """P13b by hand: min(up, min(dp, domain / tp) x out) across domains, up inside one."""
    from planner.plan.steptime import data_parallel_bw_bytes_per_s

    def bw(tp, dp, domain, up=450e9, out=50e9):
        return float(data_parallel_bw_bytes_per_s(tp=tp, dp=dp, domain=domain, up_bw=up,
                                                  out_bw=out))

    # inside a domain: tp * dp = 2 * 4 = 8 <= 8 -> the scale-up link, 450 GB/s
    assert bw(2, 4, 8) == pytest.approx(450e9)
    # across domains: tp * dp = 64 > 8; members = min(64, 8 / 1) = 8; 8 * 50e9 = 400e9 < 450e9
    assert bw(1, 64, 8) == pytest.approx(400e9)
    # capped: members = min(64, 16 / 1) = 16; 16 * 50e9 = 800e9 > 450e9 -> 450e9
    assert bw(1, 64, 16) == pytest.approx(450e9)
    # tp fills the domain: tp * dp = 128 > 8; members = min(16, 8 / 8) = 1 -> one NIC, 50e9
    assert bw(8, 16, 8) == pytest.approx(50e9)
    # whole devices only: tp = 16 in a 72-GPU domain: floor(72 / 16) = 4 members (not 4.5),
    # tp * dp = 128 > 72 -> 4 * 50e9 = 200e9
    assert bw(16, 8, 72) == pytest.approx(200e9)


_MIXTRAL_EXPERT_BYTES = 32 * 8 * 3 * 4096 * 14336 * 2  # layers * experts * (up, gate, down) bf16


def test_mixtral_batch1_decode_reads_two_of_eight_experts():
    """P6b: top-2 of 8 experts at batch 1 touches 1 - (6/8)^1 = 1/4 of each layer's experts."""
    spec = model("mixtral-8x7b")
    prof = inference_profile(spec, prompt_len=256, output_len=64, precision="bf16",
                             kv_cache_precision=None)
    table = layer_table(spec, seq_len=256, batch_size=1, mode="inference")
    experts = float(table.loc[table["layer"].str.contains("moe.experts"), "weight_bytes"].sum())
    assert experts == _MIXTRAL_EXPERT_BYTES == 90_194_313_216
    embed = 32000 * 4096 * 2  # the token lookup reads only its rows
    dense = prof.weight_bytes - experts - embed  # attention, norms, routers, LM head
    read = float(weight_read_bytes(prof.decode, batch=1))
    assert read == pytest.approx(dense + experts / 4)
    # 2.95 GB of non-expert weights + 90.19 / 4 = 22.55 GB of experts = 25.50 GB, not 93.14
    assert dense == 2_949_128_192
    assert read == 2_949_128_192 + 90_194_313_216 / 4 == 25_497_706_496
    assert dense + experts == 93_143_441_408
    # batch 4: 1 - 0.75^4 = 0.68359375 of the experts
    assert float(weight_read_bytes(prof.decode, batch=4)) == pytest.approx(
        dense + 0.68359375 * experts)
    # prefill of 256 tokens: 1 - 0.75^256 = 1 - 1e-32: every expert
    assert float(weight_read_bytes(prof.prefill, batch=1)) == pytest.approx(dense + experts)
    # and the decode step's time follows: bandwidth-bound at batch 1 on one H100-like device
    job = InferenceJob(model=spec, prompt_len=256, output_len=64)
    q = evaluate_inference(job, prof, _flat_h100(job), tp=1, batch=1)
    floor = read / (3.35e12 * 0.7)
    assert floor < q.decode_s.item() < 1.25 * floor


@settings(max_examples=50, deadline=None)
@given(k=st.integers(1, 8), e=st.integers(1, 64), n=st.integers(1, 10_000))
def test_experts_touched_frac_properties(k, e, n):
    if k > e:
        return
    f = float(experts_touched_frac(route_frac=k / e, n_tokens=n))
    g = float(experts_touched_frac(route_frac=k / e, n_tokens=n + 1))
    assert k / e - 1e-12 <= f <= 1.0  # at least one token's k experts, at most all
    assert g >= f  # more tokens never touch fewer experts
    assert float(experts_touched_frac(route_frac=k / e, n_tokens=1)) == pytest.approx(k / e)
    # expected distinct experts never exceed the k * n expert visits
    assert f * e <= k * n + 1e-9


def test_dense_models_read_all_their_weights_at_any_batch():
    spec = model("llama-2-7b")
    prof = inference_profile(spec, prompt_len=128, output_len=128, precision="bf16",
                             kv_cache_precision=None)
    embed = 32000 * 4096 * 2
    for batch in (1, 7, 64):
        assert float(weight_read_bytes(prof.decode, batch=batch)) == prof.weight_bytes - embed


def test_kv_projections_split_over_min_t_k_in_decode():
    """Beyond t = K each device computes and reads a whole KV head's K and V projection."""
    spec = model("llama-2-70b")
    prof = inference_profile(spec, prompt_len=1024, output_len=256, precision="bf16",
                             kv_cache_precision=None)
    k = prof.decode.names.index("attn.k")
    only_k = np.eye(len(prof.decode.names))[k]
    job = InferenceJob(model=spec, prompt_len=1024, output_len=256)
    kw = dict(batch=1, rates=_flat_h100(job, op_overhead_s=0.0).rates, fwd_passes=only_k)
    # t = 16, K = 8: the k projection per device is that of t = 8, not half of it
    t16 = ops_time_s(prof.decode, tp=16, kv_split=8, **kw)
    t8 = ops_time_s(prof.decode, tp=8, kv_split=8, **kw)
    assert t16 == pytest.approx(t8)
    # the weight read: 80 layers * 8192 * 1024 * 2 bytes / 8, memory-bound
    assert t8 == pytest.approx((80 * 8192 * 1024 * 2 + 80 * (8192 + 1024) * 2) / 8
                               / (3.35e12 * 0.7))
