"""Per-device memory (docs/planning.md P1-P5): golden values by hand and monotonic relations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import TrainingJob
from planner.hardware.catalog import load_catalog
from planner.model.spec import model
from planner.plan.memory import (
    activation_bytes_per_device,
    inference_weight_bytes_per_device,
    kv_cache_bytes_per_device,
    pipeline_stage_bytes,
    zero3_gather_buffer_bytes,
    zero_sharded_bytes,
)
from planner.plan.search import device_columns, evaluate_training
from planner.plan.steptime import inference_profile, training_profile


def test_llama2_70b_fp16_weights_and_kv_cache_golden():
    prof = inference_profile(model("llama-2-70b"), prompt_len=1024, output_len=256,
                             precision="fp16", kv_cache_precision=None)
    # 68,976,648,192 parameters x 2 bytes
    assert prof.weight_bytes == 137_953_296_384
    assert inference_weight_bytes_per_device(weight_bytes=prof.weight_bytes, tp=1) / 1e9 == \
        pytest.approx(137.95, abs=0.005)
    # K and V: 2 * 80 layers * 8 KV heads * 128 * 2 bytes = 327,680 bytes per token
    assert prof.kv_bytes_per_token == 327_680
    # fp8 KV cache halves it
    fp8 = inference_profile(model("llama-2-70b"), prompt_len=1024, output_len=256,
                            precision="fp16", kv_cache_precision="fp8")
    assert fp8.kv_bytes_per_token == 163_840


def test_kv_cache_splits_over_kv_heads_then_replicates():
    kw = dict(kv_bytes_per_token=327_680, context_len=1280, batch_size=64, n_kv_heads=8)
    # 64 * 1280 * 327680 = 26,843,545,600 bytes in total
    assert kv_cache_bytes_per_device(tp=1, **kw) == 26_843_545_600
    assert kv_cache_bytes_per_device(tp=4, **kw) == 26_843_545_600 / 4
    # beyond t = K = 8 each device keeps a whole KV head: no further split
    assert kv_cache_bytes_per_device(tp=16, **kw) == 26_843_545_600 / 8


def test_serving_weights_split_kv_projections_over_min_t_k():
    """P5: beyond t = K the K and V projections are replicated (t/K copies of each KV head)."""
    prof = inference_profile(model("llama-2-70b"), prompt_len=1024, output_len=256,
                             precision="fp16", kv_cache_precision=None)
    # K and V projections: 80 layers * 2 * 8192 * (8 KV heads * 128) * 2 bytes
    kv = 80 * 2 * 8192 * 1024 * 2
    assert prof.kv_proj_weight_bytes == kv == 2_684_354_560
    w = prof.weight_bytes
    kw = dict(weight_bytes=w, kv_weight_bytes=kv, n_kv_heads=8)
    # t <= K: everything / t
    assert inference_weight_bytes_per_device(tp=8, **kw) == pytest.approx(w / 8)
    # t = 16 > K = 8: (137,953,296,384 - 2,684,354,560) / 16 + 2,684,354,560 / 8
    #               = 8,454,308,864 + 335,544,320 = 8,789,853,184 bytes
    assert inference_weight_bytes_per_device(tp=16, **kw) == 8_789_853_184
    assert inference_weight_bytes_per_device(tp=16, **kw) > w / 16


def test_training_replicates_a_multi_query_kv_head():
    """P5b: with K = 1 every one of the t devices keeps the whole K and V projections."""
    spec = model("llama-2-7b").with_(n_kv_heads=1)
    job = TrainingJob(model=spec, n_tokens=1e9, seq_len=512, global_batch_size=8)
    prof = training_profile(spec, seq_len=512, precision="bf16", optimizer="adamw",
                            flash_attention=True, causal_attention="full")
    kv = 2 * 4096 * 128 * 2  # K and V: 4096 x (1 head x 128) each, bf16 = 2,097,152 bytes
    assert prof.block_kv_state_bytes[0] == kv
    q = evaluate_training(job, prof, _DEV, n=4, tp=4, pp=1, zero=0, mb=1, rc=0)
    whole = 2 * spec.n_params
    # t = 4: everything / 4, plus the 3 extra copies of the K/V projections per device / 4
    # = (whole + 32 layers * 3 * kv) / 4
    assert float(q.weight_mem_bytes) == (whole + 32 * 3 * kv) / 4


def test_pipeline_stage_bytes_llama2_70b_by_hand():
    prof = training_profile(model("llama-2-70b"), seq_len=4096, precision="bf16",
                            optimizer="adamw", flash_attention=True, causal_attention="full")
    # block: q, o 8192^2; k, v 8192*1024; up, gate, down 8192*28672; 2 RMSNorms 8192
    block_params = 2 * 8192**2 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192
    assert prof.block_weight_bytes == 2 * block_params == 1_711_308_800
    last = prof.last_state_bytes[0]  # head 32000*8192 + final norm 8192, bf16
    assert last == 2 * (32000 * 8192 + 8192) == 524_304_384
    got = pipeline_stage_bytes(block_bytes=prof.block_weight_bytes,
                               first_bytes=prof.first_state_bytes[0], last_bytes=last,
                               n_layers=80, pp=4)
    assert got == 20 * 1_711_308_800 + 524_304_384 == 34_750_480_384
    # p = 1: everything
    whole = pipeline_stage_bytes(block_bytes=prof.block_weight_bytes,
                                 first_bytes=prof.first_state_bytes[0], last_bytes=last,
                                 n_layers=80, pp=1)
    assert whole == 2 * model("llama-2-70b").n_params


def test_zero_stages_shard_optimizer_then_gradients_then_weights():
    # 1000 parameters, bf16 + AdamW: W 2000, G 2000, O 12000 bytes; d = 4
    kw = dict(weight_bytes=2000.0, grad_bytes=2000.0, optimizer_bytes=12000.0, dp=4)
    expect = {0: (2000, 2000, 12000), 1: (2000, 2000, 3000), 2: (2000, 500, 3000),
              3: (500, 500, 3000)}
    for stage, values in expect.items():
        assert tuple(float(x) for x in zero_sharded_bytes(zero_stage=stage, **kw)) == values
    # ZeRO-3 keeps two blocks gathered (current + prefetch), only when d > 1
    assert zero3_gather_buffer_bytes(block_weight_bytes=100.0, tp=2, dp=4, zero_stage=3) == 100
    assert zero3_gather_buffer_bytes(block_weight_bytes=100.0, tp=2, dp=1, zero_stage=3) == 0
    assert zero3_gather_buffer_bytes(block_weight_bytes=100.0, tp=2, dp=4, zero_stage=2) == 0


def test_activations_under_1f1b_by_hand():
    kw = dict(layer_bytes=10.0, first_bytes=1.0, last_bytes=5.0, n_layers=8, micro_batch_size=2)
    # p = 1: (8 * 10 + 1 + 5) * 2 sequences / t=2 = 86
    assert activation_bytes_per_device(pp=1, tp=2, n_micro_batches=4, **kw) == 86
    # p = 4, m = 4: first stage holds 4 micro-batches of 2 layers: (2*10 + 1) * 4 * 2 = 168
    assert activation_bytes_per_device(pp=4, tp=1, n_micro_batches=4, **kw) == 168
    # m = 2 < p: only 2 in flight: (20 + 1) * 2 * 2 = 84 (last stage: (20 + 5) * 2 = 50)
    assert activation_bytes_per_device(pp=4, tp=1, n_micro_batches=2, **kw) == 84


def test_more_recompute_saves_activation_memory():
    prof = training_profile(model("llama-2-7b"), seq_len=4096, precision="bf16",
                            optimizer="adamw", flash_attention=False, causal_attention="full")
    none, selective, full = prof.block_activation_bytes
    assert none > selective > full
    # full recompute keeps only the block input: s * h * 2 bytes = 4096 * 4096 * 2
    assert full == 4096 * 4096 * 2


_DEV = device_columns(load_catalog().get("nvidia_h100_sxm"),
                      TrainingJob(model="gpt2", n_tokens=1e9, seq_len=512, global_batch_size=8))


@settings(max_examples=30, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), pp=st.sampled_from([1, 2, 4]),
       zero=st.integers(0, 3), mb=st.sampled_from([1, 2, 4]), rc=st.integers(0, 2),
       model_name=st.sampled_from(["gpt2", "llama-2-7b", "bert-base-cased"]))
def test_more_devices_never_raise_per_device_memory(tp, pp, zero, mb, rc, model_name):
    seq = 512
    job = TrainingJob(model=model_name, n_tokens=1e9, seq_len=seq, global_batch_size=256)
    prof = training_profile(job.model, seq_len=seq, precision="bf16", optimizer="adamw",
                            flash_attention=True, causal_attention="full")
    n = np.array([1, 2, 4, 8, 16, 32, 64, 128]) * tp * pp  # dp = 1 ... 128
    q = evaluate_training(job, prof, _DEV, n=n, tp=tp, pp=pp, zero=zero, mb=mb,
                          rc=rc)
    mem = np.broadcast_to(q.mem_per_device_bytes, n.shape)
    assert np.all(np.diff(mem) <= 1e-6 * mem[:-1])
    # and the model state per device never grows with more pipeline stages (P1). NB: the
    # activations may: 1F1B keeps min(p, m) micro-batches in flight on the first stage.
    p = np.array([1, 2, 4, 8, 16])
    state = [pipeline_stage_bytes(block_bytes=prof.block_weight_bytes,
                                  first_bytes=prof.first_state_bytes[0],
                                  last_bytes=prof.last_state_bytes[0],
                                  n_layers=job.model.n_layers, pp=p)]
    assert np.all(np.diff(state[0]) <= 0)
