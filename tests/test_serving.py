"""The serving model (docs/planning.md P19-P19k) against hand-derived and published numbers.

Every layout is pinned (tp, pp, ep, batch_size) and every load closed-loop unless the test is
about queueing, so the numbers do not move with the search. Each formula is checked with the
arithmetic written out here, not recomputed with the code's own function.

Mutation checks (a term multiplied by 5 in planner/plan/search.py, then this file run):
- chunked-prefill demand (`demand = batch * P_ * E / out` in _schedule):
  test_chunked_prefill_lowers_tpot_and_the_unchunked_schedule_composes
- KV block padding (`job.kv_block_tokens / 2.0` in serving_kv_bytes):
  test_paged_kv_cache_bytes_by_hand
- draft cost (the return of _Replica.draft):
  test_speculation_tpot_is_verify_plus_drafts_over_expected_tokens
- queue wait (`wait_mean = mean_wait_s(...)` and `waits[p] = wait_quantile_s(...)` in
  evaluate_inference): test_open_loop_queue_wait_is_the_mm_c_wait_by_hand
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner import InferenceJob, list_models, load_catalog, rank, search
from planner.hardware.kernels import GEMM_ROW_TILE, padded_gemm_size, tile_frac
from planner.plan.queueing import busy_quantile, erlang_c, mean_wait_s, wait_quantile_s
from planner.plan.reasons import InferReason
from planner.plan.search import (
    device_columns,
    evaluate_inference,
    serving_draft_profile,
    serving_profile,
    speculation_tokens_per_step,
)
from planner.plan.steptime import inference_profile

CATALOG = load_catalog()
H100 = "nvidia_h100_sxm"  # 989.4 TFLOP/s bf16 dense, 3.35 TB/s, 80 GB, 50 GB/s scale-out
LLAMA2_70B_KV_BYTES_PER_TOKEN = 2 * 80 * 8 * 128 * 2  # K and V, 80 layers, 8 KV heads: 327,680


def _one(x) -> float:
    return float(np.asarray(x, dtype=float).reshape(-1)[0])


def _evaluate(job: InferenceJob, device: str, *, tp: int, batch: int, pp: int = 1,
              ep: int = 1, **overrides: float):
    """The ServingBreakdown of one pinned layout (its prefill_s and decode_s are not columns
    of search()); `overrides` replace the kernel tables (efficiency_overrides)."""
    if overrides:
        job = job.model_copy(update={"efficiency_overrides": overrides})
    dev = device_columns(CATALOG.get(device), job)
    return evaluate_inference(job, serving_profile(job), dev, tp=tp, pp=pp, ep=ep, batch=batch,
                              draft_prof=serving_draft_profile(job))


def _row(job: InferenceJob, device: str) -> dict:
    """search()'s one row for a fully pinned job on one device."""
    df = search(job, devices=[device])
    assert len(df) == 1
    return df.iloc[0].to_dict()


# ---- P19h: queueing --------------------------------------------------------------------------
def _erlang_c_exact(c: int, a: float) -> float:
    """Erlang C from the Erlang-B recursion B(k) = a·B(k−1) / (k + a·B(k−1)), B(0) = 1
    (Erlang 1917), then C = c·B / (c − a·(1 − B)): a plain loop, no numpy."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def test_erlang_c_worked_number_and_exact_recursion_at_large_c():
    # c = 2, a = 1: B(1) = 1/2, B(2) = (1/2)/(2 + 1/2) = 1/5; C = 2/5 / (2 − 4/5) = 1/3
    assert _one(erlang_c(2, 1.0)) == pytest.approx(1.0 / 3.0, rel=1e-12)
    assert _erlang_c_exact(2, 1.0) == pytest.approx(1.0 / 3.0, rel=1e-12)
    # beyond 64 servers the code uses the Poisson pmf / Wilson-Hilferty cdf; its docstring
    # promises 1e-4 of the recursion at c = 64-4,000 and loads 0.5-0.99 c
    for c, a in ((300, 270.0), (4000, 3800.0), (100, 50.0), (1000, 990.0)):
        assert _one(erlang_c(c, a)) == pytest.approx(_erlang_c_exact(c, a), rel=1e-4), (c, a)
    # unstable (a >= c): every request waits; no load: none does
    assert _one(erlang_c(4, 4.0)) == 1.0
    assert _one(erlang_c(4, 0.0)) == 0.0


def test_wait_quantile_mean_wait_and_busy_quantile_worked_numbers():
    # C = 0.5, c/S − λ = 4/2 − 0 = 2 /s: P(W > t) = 0.5·exp(−2t)
    kw = dict(p_wait=0.5, servers=4, service_s=2.0, arrival_per_s=0.0)
    # p99: ln(0.5/0.01)/2 = ln(50)/2 = 3.91202/2 = 1.95601 s
    assert _one(wait_quantile_s(**kw, percentile=99.0)) == pytest.approx(
        math.log(50.0) / 2.0, rel=1e-12)
    assert _one(wait_quantile_s(**kw, percentile=99.0)) == pytest.approx(1.956, abs=5e-4)
    # p50: C = 0.5 ≤ 1 − 0.5, the median request does not wait
    assert _one(wait_quantile_s(**kw, percentile=50.0)) == 0.0
    # mean: C / (c/S − λ) = 0.5 / 2 = 0.25 s
    assert _one(mean_wait_s(**kw)) == pytest.approx(0.25, rel=1e-12)
    # unstable: c/S − λ = 2 − 3 < 0 -> inf
    assert math.isinf(_one(mean_wait_s(p_wait=1.0, servers=4, service_s=2.0, arrival_per_s=3.0)))
    # the median number of busy servers is the load (z_50 = 0), clipped to [1, c]
    assert _one(busy_quantile(load=27.5, servers=64, percentile=50.0)) == pytest.approx(27.5)
    # p99: 100 + 2.326348·√100 = 123.26
    assert _one(busy_quantile(load=100.0, servers=256, percentile=99.0)) == pytest.approx(
        123.2635, abs=1e-3)
    assert _one(busy_quantile(load=100.0, servers=110, percentile=99.0)) == 110.0


def test_open_loop_queue_wait_is_the_mm_c_wait_by_hand():
    """Llama-2-7B on one H100, batch 4 (c = 4 slots), 2 requests/s. The residence time S is
    the closed-loop latency at full occupancy (4 users, no queue); then by hand:
    a = λ·S, utilization a/c, C from the exact recursion, mean wait C/(c/S − λ), the p99 wait
    ln(C/0.01)/(c/S − λ). Catches a ×5 on the mean wait (queue_wait_s) and on the
    percentile wait (ttft_p99_s)."""
    base = dict(model="llama-2-7b", prompt_len=512, output_len=128, tp=1, pp=1, batch_size=4)
    closed = _row(InferenceJob(**base, concurrent_requests=4), H100)
    lam, c = 2.0, 4
    S = closed["time_s"]  # ≈ 0.99 s: TTFT + 127 · TPOT with 4 in flight
    row = _row(InferenceJob(**base, requests_per_s=lam), H100)
    assert row["replicas"] == 1  # 2 req/s < 0.8 · 4/0.99 ≈ 3.2 req/s of one replica
    a = lam * S  # ≈ 1.98 Erlangs
    assert row["utilization"] == pytest.approx(a / c, rel=1e-9)
    C = _erlang_c_exact(c, a)  # ≈ 0.17
    rate = c / S - lam  # ≈ 2.03 /s
    assert row["queue_wait_s"] == pytest.approx(C / rate, rel=1e-6)
    # the mean TTFT is the schedule's at the median occupancy plus the mean wait; C < 0.5,
    # so the median request does not wait: ttft_s − queue_wait_s = ttft_p50_s
    assert row["ttft_s"] - row["queue_wait_s"] == pytest.approx(row["ttft_p50_s"], rel=1e-9)
    # p99: the p99 wait plus the schedule's TTFT at the p99 occupancy, which lies between the
    # median occupancy's (ttft_p50_s) and the full batch's (the closed-loop ttft_s)
    w99 = math.log(C / 0.01) / rate  # ≈ 1.40 s
    assert w99 > 1.0
    assert row["ttft_p50_s"] * (1 - 1e-9) <= row["ttft_p99_s"] - w99
    assert row["ttft_p99_s"] - w99 <= closed["ttft_s"] * (1 + 1e-9)
    # the TPOT percentiles: no wait in them, the p99 occupancy at most the full batch
    assert row["tpot_p50_s"] <= row["tpot_p99_s"] <= closed["tpot_s"] * (1 + 1e-9)


# ---- P19e: speculative decoding --------------------------------------------------------------
def test_speculation_tokens_per_step_leviathan_eq1():
    # Leviathan et al. 2023, Eq. 1: (1 − α^(γ+1)) / (1 − α); γ = 4, α = 0.8:
    # (1 − 0.32768) / 0.2 = 0.67232 / 0.2 = 3.3616
    assert speculation_tokens_per_step(speculative_tokens=4, acceptance_rate=0.8) == (
        pytest.approx(3.3616, rel=1e-12))
    # γ = 1, α = 0.5: (1 − 0.25)/0.5 = 1.5
    assert speculation_tokens_per_step(speculative_tokens=1, acceptance_rate=0.5) == (
        pytest.approx(1.5))
    assert speculation_tokens_per_step(speculative_tokens=0, acceptance_rate=0.8) == 1.0


def test_speculation_tpot_is_verify_plus_drafts_over_expected_tokens():
    """Llama-3.1-70B on 8 H100 (tp 8), batch 8, closed loop, no chunking, a long output
    (2,048) so prefill interference is small; draft Llama-3.1-8B, γ = 4, α = 0.8 (E = 3.3616).
    TPOT = (γ·t_draft + t_verify + b·E/O·t_prefill) / E, each piece from an independent job:
    t_draft = the 8B's own decode step at tp 8, batch 8; t_verify (8 sequences × 5 query
    tokens, the KV cache read once per sequence) lies between the 70B's plain decode step at
    batch 8 and at batch 40 (40 rows, 5× the KV reads). Catches a ×5 on the draft cost."""
    g, alpha = 4, 0.8
    E = (1 - alpha ** (g + 1)) / (1 - alpha)  # 3.3616
    b, P, n_out = 8, 128, 2048
    common = dict(prompt_len=P, output_len=n_out, tp=8, pp=1, prefill_chunk_tokens=0)

    def plain(name: str, batch: int):
        job = InferenceJob(model=name, batch_size=batch, concurrent_requests=batch, **common)
        return _evaluate(job, H100, tp=8, batch=batch)

    t_draft = _one(plain("llama-3.1-8b", b).decode_s)  # ≈ 5.7 ms
    base = plain("llama-3.1-70b", b)
    t_dec8 = _one(base.decode_s)  # ≈ 18.9 ms
    t_dec40 = _one(plain("llama-3.1-70b", b * (g + 1)).decode_s)  # ≈ 20.0 ms
    spec_job = InferenceJob(model="llama-3.1-70b", batch_size=b, concurrent_requests=b,
                            speculative_tokens=g, acceptance_rate=alpha,
                            draft_model="llama-3.1-8b", **common)
    spec = _evaluate(spec_job, H100, tp=8, batch=b)
    t_prefill = _one(spec.prefill_s)  # one 128-token prompt alone, ≈ 20 ms
    assert t_prefill == pytest.approx(_one(base.prefill_s), rel=1e-12)  # same prompt pass
    # decode_s of the speculative job = one verify + γ drafts
    t_verify = _one(spec.decode_s) - g * t_draft
    assert t_dec8 * (1 - 1e-9) <= t_verify <= t_dec40 * (1 + 1e-9)
    # TPOT: the step (verify + drafts + this step's share of prefills) over E tokens gained
    interference = b * E / n_out * t_prefill  # 8 · 3.3616 / 2048 · 20 ms ≈ 0.27 ms
    lo = (g * t_draft + t_dec8 + interference) / E  # ≈ 12.53 ms
    hi = (g * t_draft + t_dec40 + interference) / E  # ≈ 12.87 ms (2.6 % apart)
    tpot_spec = _one(spec.tpot_s)
    assert lo * (1 - 1e-9) <= tpot_spec <= hi * (1 + 1e-9)
    # without speculation: TPOT = t_dec8 + b/O · t_prefill ≈ 19.0 ms; the draft pays
    tpot_plain = _one(base.tpot_s)
    assert tpot_plain == pytest.approx(t_dec8 + b / n_out * t_prefill, rel=1e-9)
    assert tpot_spec < 0.7 * tpot_plain  # (23 + 19.3) / 3.36 = 12.7 ms vs 19.0 ms
    # the search takes the same path: the pinned row has the same TPOT, and fits
    row = _row(spec_job, H100)
    assert row["feasible"]
    assert row["tpot_s"] == pytest.approx(tpot_spec, rel=1e-9)


def test_mtp_speculation_on_deepseek_v3_lowers_tpot():
    """DeepSeek-V3's own multi-token-prediction module as the draft (one block and the head,
    γ = 1, α = 0.85: E = 1.85) on 8 H200 in fp8: each step gains 1.85 tokens for one verify
    (≈ a decode step) and one one-block draft, so TPOT drops by well over a third."""
    common = dict(model="deepseek-v3", precision="fp8-inference", prompt_len=1024,
                  output_len=1024, tp=8, pp=1, ep=1, batch_size=16, concurrent_requests=16)
    plain = _row(InferenceJob(**common), "nvidia_h200_sxm")
    mtp = _row(InferenceJob(**common, speculative_tokens=1, acceptance_rate=0.85),
               "nvidia_h200_sxm")
    assert plain["feasible"] and mtp["feasible"]
    E = 1 + 0.85  # (1 − 0.85²)/(1 − 0.85) = 1.85
    # TPOT ≈ (t_verify + t_draft)/E with t_verify ≥ t_decode and t_draft ≈ t_decode/61 + head:
    # between 1/E = 0.54 and 0.75 of the plain TPOT
    assert plain["tpot_s"] / E < mtp["tpot_s"] < 0.75 * plain["tpot_s"]
    # the MTP module's weights: one block's share W/L, split over t devices (P19e)
    assert mtp["weight_mem_bytes"] > plain["weight_mem_bytes"]


# ---- P19f: prefix caching --------------------------------------------------------------------
def test_prefix_caching_scales_linear_ops_by_1_minus_h_and_attention_by_1_minus_h2():
    """Llama-2-7B, one 8,192-token prompt on an H100, batch 1, no chunking. With a prefix-hit
    share h = 0.5 the linear ops see P(1 − h) tokens and the causal attention of those
    queries over the whole prefix costs P²(1 − h²)/2. FLOPs per prompt by hand:
    linear: 32 layers × (qkv 2·4096·3·4096 + o 2·4096² + mlp 3·2·4096·11008)
          = 32 × 404,750,336 = 12,952,010,752 per token, × 8,192 = 1.0610e14;
    attention (causal half executed): 32 × 2·8192²·4096 = 1.7592e13.
    At a flat compute fraction (time ∝ FLOPs, the prefill compute-bound) the prefill time
    ratio is (0.5·1.0610e14 + 0.75·1.7592e13) / (1.0610e14 + 1.7592e13) = 0.5356; with the
    kernel tables attention and GEMMs run at different rates: strictly between 1 − h = 0.5
    and 1 − h² = 0.75."""
    h = 0.5
    linear = 32 * (2 * 4096 * 3 * 4096 + 2 * 4096**2 + 3 * 2 * 4096 * 11008) * 8192
    attention = 32 * 2 * 8192**2 * 4096
    assert linear == 106_102_872_080_384 and attention == 17_592_186_044_416
    expected = ((1 - h) * linear + (1 - h * h) * attention) / (linear + attention)
    assert expected == pytest.approx(0.5356, abs=1e-4)

    def job(hit: float) -> InferenceJob:
        return InferenceJob(model="llama-2-7b", prompt_len=8192, output_len=16, tp=1, pp=1,
                            batch_size=1, prefill_chunk_tokens=0, prefix_cache_hit_frac=hit)

    flat = [_evaluate(job(x), H100, tp=1, batch=1, compute_frac=0.5) for x in (0.0, h)]
    # NB: 0.5 %: the memory-bound elementwise ops and the one LM-head row do not scale exactly
    assert _one(flat[1].prefill_s) / _one(flat[0].prefill_s) == pytest.approx(expected,
                                                                             rel=5e-3)
    rows = [_row(job(x), H100) for x in (0.0, h)]
    ratio = rows[1]["ttft_s"] / rows[0]["ttft_s"]  # the decode step (≈ 8 ms) is in both
    assert 1 - h < ratio < 1 - h * h


# ---- P19a: chunked prefill -------------------------------------------------------------------
def test_chunked_prefill_lowers_tpot_and_the_unchunked_schedule_composes():
    """Llama-2-70B on 4 H100 (tp 4), batch 64, prompt 1,024, output 256, closed loop. Without
    chunking each prompt runs alone between decode steps: per output step the batch needs
    b/O = 64/256 = 1/4 of a prompt, TPOT = decode_s + b·prefill_s/O (≈ 25.1 + 20.4 = 45.5 ms;
    the old model gave 47.8 ms with 26 ms of interference). Chunked (8,192-token budget) the
    step fuses 64 decodes with b·P/O = 256 prompt tokens: 320 GEMM rows read the weights once,
    so TPOT is at least the plain decode step and below the unchunked one. Catches a ×5 on the
    chunked-prefill demand (1,280 prompt tokens a step: the GEMM compute alone is then
    2·69e9/4·1,344/989.4e12 = 46.9 ms, above the unchunked TPOT)."""
    def breakdown(chunk: int):
        job = InferenceJob(model="llama-2-70b", prompt_len=1024, output_len=256, tp=4, pp=1,
                           batch_size=64, concurrent_requests=64, prefill_chunk_tokens=chunk)
        return _evaluate(job, H100, tp=4, batch=64)

    whole, chunked = breakdown(0), breakdown(8192)
    decode, prefill = _one(whole.decode_s), _one(whole.prefill_s)
    assert _one(whole.tpot_s) == pytest.approx(decode + 64 * prefill / 256, rel=1e-9)
    # TTFT without chunking: the prompt alone, then one decode step
    assert _one(whole.ttft_s) == pytest.approx(prefill + decode, rel=1e-9)
    # the decode step and the prompt pass do not depend on the chunk budget
    assert _one(chunked.decode_s) == pytest.approx(decode, rel=1e-12)
    tpot = _one(chunked.tpot_s)
    # a fused step of 320 rows: its GEMM FLOPs at the dense peak are a floor,
    # 2 · 68,976,648,192 / 4 · 320 / 989.4e12 = 11.2 ms; it also reads every weight
    floor = max(decode, 2 * 68_976_648_192 / 4 * 320 / 989.4e12)
    assert floor <= tpot < _one(whole.tpot_s)
    # interference: under 3/4 of the unchunked 20.4 ms (one fused pass, not a prompt alone)
    assert tpot - decode < 0.75 * (64 * prefill / 256)


# ---- P4, P19b, P19c: paged KV cache ----------------------------------------------------------
def test_paged_kv_cache_bytes_by_hand():
    """Llama-2-70B (327,680 B per token in fp16/bf16: 2 · 80 · 8 · 128 · 2), prompt 1,024,
    output 256, 16-token blocks. The n = batch · pp sequences of a tensor-parallel group hold
    n·(P + O/2 + block/2) tokens, plus O/2 at the peak (ages evenly staggered), of the
    ceil(L/pp)/L layers of the largest stage, split over min(t, K = 8).
    NB: commit fdb2fd8 had n·(P + O/2 + block/2) without the + O/2; 79fd117 adds it
    (n = 1 then holds its whole context P + O).
    Catches a ×5 on the block padding (block/2 = 8 -> 40 tokens a sequence: +2.7 %)."""
    assert LLAMA2_70B_KV_BYTES_PER_TOKEN == 327_680
    # tp 4, pp 3, batch 16: n = 48, ceil(80/3) = 27 of 80 layers;
    # 48 · (1024 + 128 + 8) + 128 = 55,808 tokens × 327,680 · 27/80 / 4 (= 27,648 B)
    tokens = 48 * (1024 + 128 + 8) + 128
    assert tokens == 55_808
    hand = tokens * 327_680 * 27 / 80 / 4
    assert hand == 1_542_979_584

    def kv(**kw) -> float:
        job = InferenceJob(model="llama-2-70b", prompt_len=1024, output_len=256, tp=4, pp=3,
                           batch_size=16, concurrent_requests=48, **kw)
        return _one(_evaluate(job, H100, tp=4, pp=3, batch=16).kv_mem_bytes)

    assert kv() == pytest.approx(hand, rel=1e-12)
    # tp 4, pp 1, batch 64: (64 · 1160 + 128) · 327,680 / 4 = 74,368 · 81,920 = 6,092,226,560
    job = InferenceJob(model="llama-2-70b", prompt_len=1024, output_len=256, tp=4, pp=1,
                       batch_size=64, concurrent_requests=64)
    assert _row(job, H100)["kv_cache_mem_bytes"] == pytest.approx(6_092_226_560, rel=1e-12)
    # a 128-token block wastes 64 tokens a sequence: 48 · (1024 + 128 + 64) + 128 = 58,496
    assert kv(kv_block_tokens=128) == pytest.approx(58_496 * 27_648, rel=1e-12)
    # P19c: fp8 serving keeps the cache in fp8 (1 byte): half; kv_cache_precision overrides
    assert kv(precision="fp8-inference") == pytest.approx(hand / 2, rel=1e-12)
    assert kv(precision="fp4-inference") == pytest.approx(hand / 2, rel=1e-12)
    assert kv(precision="fp8-inference", kv_cache_precision="bf16") == pytest.approx(
        hand, rel=1e-12)
    assert InferenceJob(model="llama-2-70b", prompt_len=8, output_len=8,
                        precision="fp8-inference").kv_dtype == "fp8"
    assert InferenceJob(model="llama-2-70b", prompt_len=8, output_len=8).kv_dtype is None


# ---- P19d: pipeline-parallel serving ---------------------------------------------------------
def test_llama_405b_bf16_needs_two_h100_nodes_with_pipeline_stages():
    """Llama 3.1 405B: 405,853,388,800 parameters (Llama 3 paper, Table 3: 405B):
    126 layers × (q, o 2·16384² + k, v 2·16384·1024 + mlp 3·16384·53248 + 2 norms 16384)
    = 126 × 3,187,703,808 = 401,650,679,808, plus the embedding and the untied head
    2 · 128,256 · 16,384 = 4,202,692,608, plus the final norm 16,384. In bf16 W = 811.7 GB;
    per device W · ceil(126/pp)/126 / 8: pp 1: 101.46 GB (over 0.9 · 80 GB = 72 GB), pp 2:
    50.73 GB (fits, with a KV cache of well under 1 GB at batch 1)."""
    assert "llama-3.1-405b" in list_models()
    params = (126 * (2 * 16384**2 + 2 * 16384 * 1024 + 3 * 16384 * 53248 + 2 * 16384)
              + 2 * 128256 * 16384 + 16384)
    assert params == 405_853_388_800
    W = 2 * params

    def row(pp: int) -> dict:
        job = InferenceJob(model="llama-3.1-405b", prompt_len=1024, output_len=256, tp=8,
                           pp=pp, batch_size=1, concurrent_requests=pp)
        return _row(job, H100)

    one, two = row(1), row(2)
    assert one["weight_mem_bytes"] == pytest.approx(W * 126 / 126 / 8, rel=1e-12)
    assert one["weight_mem_bytes"] == pytest.approx(101_463_347_200, rel=1e-12)
    assert not one["feasible"] and one["reason"] == InferReason.NO_FIT.text
    assert two["weight_mem_bytes"] == pytest.approx(W * 63 / 126 / 8, rel=1e-12)
    assert two["weight_mem_bytes"] == pytest.approx(50_731_673_600, rel=1e-12)
    assert two["feasible"] and two["n_devices"] == 16  # two 8-GPU nodes
    # pp 3: ceil(126/3) = 42 layers a stage: W · 42/126 / 8 = 33,821,115,733.3
    three = _evaluate(InferenceJob(model="llama-3.1-405b", prompt_len=1024, output_len=256,
                                   tp=8, pp=3, batch_size=1), H100, tp=8, pp=3, batch=1)
    assert _one(three.weight_mem_bytes) == pytest.approx(W * 42 / 126 / 8, rel=1e-12)


# ---- P19g: disaggregated prefill -------------------------------------------------------------
def test_disaggregated_kv_transfer_and_device_count_by_hand():
    """Llama-2-70B fp16, prompt 2,048, tp 8: each prefill device sends its shard
    2,048 · 327,680 / min(8, 8) = 83,886,080 B (83.9 MB) over its 50 GB/s NIC (the H100's
    scale-out bandwidth in the catalog): 1.6777 ms. Devices = decode replicas × tp · pp · ep
    + the prefill pool, itself a whole number of replicas of the same layout."""
    out_bw = CATALOG.get(H100).scaleout_bw_bytes_per_s
    assert out_bw == 50e9
    shard = 2048 * LLAMA2_70B_KV_BYTES_PER_TOKEN / 8
    assert shard == 83_886_080
    common = dict(model="llama-2-70b", precision="fp16", prompt_len=2048, output_len=256,
                  tp=8, pp=1, batch_size=16, requests_per_s=20)
    row = _row(InferenceJob(**common, disaggregated=True), H100)
    assert row["feasible"]
    assert row["kv_transfer_s"] == pytest.approx(shard / out_bw, rel=1e-12)
    assert row["kv_transfer_s"] == pytest.approx(1.6777216e-3, rel=1e-9)
    assert row["prefill_devices"] > 0 and row["prefill_devices"] % 8 == 0
    assert row["n_devices"] == row["replicas"] * 8 * 1 * 1 + row["prefill_devices"]
    # pp 2: each stage's devices send ceil(80/2)/80 = 1/2 of the layers: half the bytes
    two = _row(InferenceJob(**{**common, "pp": 2}, disaggregated=True), H100)
    assert two["kv_transfer_s"] == pytest.approx(shard / 2 / out_bw, rel=1e-12)
    assert two["n_devices"] == two["replicas"] * 16 + two["prefill_devices"]
    # colocated: no pool, no transfer
    plain = _row(InferenceJob(**common), H100)
    assert plain["prefill_devices"] == 0 and plain["kv_transfer_s"] == 0.0
    assert plain["n_devices"] == plain["replicas"] * 8


# ---- P19h: percentiles and targets -----------------------------------------------------------
def test_p99_never_below_p50_over_a_whole_rank_and_targets_read_the_percentile():
    job = InferenceJob(model="llama-2-7b", prompt_len=512, output_len=128, requests_per_s=10)
    df = rank(job)
    for col in ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "queue_wait_s"):
        assert col in df.columns
    ok = df[df["feasible"]]
    assert len(ok) >= 10
    assert (ok["ttft_p99_s"] >= ok["ttft_p50_s"]).all()
    assert (ok["tpot_p99_s"] >= ok["tpot_p50_s"]).all()
    assert (ok["ttft_p50_s"] > 0).all() and (ok["queue_wait_s"] >= 0).all()
    # a TTFT target between p50 (≈ 15 ms) and p99 (≈ 1.4 s: the p99 wait of the M/M/4 queue,
    # see test_open_loop_queue_wait_is_the_mm_c_wait_by_hand) of one pinned H100 layout
    base = dict(model="llama-2-7b", prompt_len=512, output_len=128, tp=1, pp=1, batch_size=4,
                requests_per_s=2.0)
    free = _row(InferenceJob(**base), H100)
    target = 0.5
    assert free["ttft_p50_s"] < target < free["ttft_p99_s"]
    at99 = InferenceJob(**base, ttft_s=target, latency_percentile=99)
    row = _row(at99, H100)
    assert not row["feasible"] and row["reason"] == InferReason.TTFT.text
    assert row["ttft_at_percentile_s"] == pytest.approx(free["ttft_p99_s"], rel=1e-12)
    reason = rank(at99, devices=[H100]).iloc[0]["reason"]
    assert "p99" in reason and "time-to-first-token" in reason
    at50 = _row(InferenceJob(**base, ttft_s=target, latency_percentile=50), H100)
    assert at50["feasible"]


# ---- P19j: encoders --------------------------------------------------------------------------
def test_encoder_serving_ranks_every_device_and_fpgas_serve_bert():
    """bert-base-cased, 128-token prompts, no output, 100 requests/s: one forward pass per
    request; delivered tokens are the inputs, 100 · 128 = 12,800 tokens/s."""
    job = InferenceJob(model="bert-base-cased", prompt_len=128, output_len=0,
                       requests_per_s=100)
    df = rank(job)
    assert len(df) == len(list(CATALOG))
    ok = df[df["feasible"]]
    assert {"gpu", "fpga"} <= set(ok["kind"].astype(str))  # bf16 has FPGA peaks in the catalog
    assert ok["tpot_s"].isna().all()
    assert np.allclose(ok["time_s"], ok["ttft_s"], rtol=1e-12)
    assert np.allclose(ok["tokens_per_s"], 100 * 128, rtol=1e-12)
    assert (ok["kv_cache_mem_bytes"] == 0).all()  # an encoder keeps no cache


# ---- P19i: expert parallelism ----------------------------------------------------------------
def test_expert_parallel_halves_the_routed_experts_per_device():
    """Mixtral 8x7B bf16, tp 1: one MoE block's routed experts are 8 experts × (up, gate,
    down) 3 · 4096 · 14336 × 2 B = 2,818,572,288 B; 32 blocks: 90,194,313,216 B. ep = 2 holds
    half of them per device: 45,097,156,608 B less."""
    expert_block = 8 * 3 * 4096 * 14336 * 2
    assert expert_block == 2_818_572_288
    prof = inference_profile(InferenceJob(model="mixtral-8x7b", prompt_len=8, output_len=8)
                             .model, prompt_len=512, output_len=128, precision="bf16",
                             kv_cache_precision=None)
    assert prof.moe is not None
    assert prof.moe.expert_weight_bytes == expert_block and prof.moe.n_moe_layers == 32
    rows = {}
    for ep in (1, 2):
        job = InferenceJob(model="mixtral-8x7b", prompt_len=512, output_len=128, tp=1, pp=1,
                           ep=ep, batch_size=8, concurrent_requests=8 * ep)
        rows[ep] = _row(job, "nvidia_h200_sxm")
    assert rows[1]["weight_mem_bytes"] - rows[2]["weight_mem_bytes"] == pytest.approx(
        32 * expert_block / 2, rel=1e-12)
    assert 32 * expert_block / 2 == 45_097_156_608
    assert rows[2]["n_devices"] == 2 and rows[1]["n_devices"] == 1
    with pytest.raises(ValueError, match="ep: 3 does not divide the 8 routed experts"):
        InferenceJob(model="mixtral-8x7b", prompt_len=512, output_len=128, ep=3)
    with pytest.raises(ValueError, match="ep: llama-2-7b has no routed experts"):
        InferenceJob(model="llama-2-7b", prompt_len=512, output_len=128, ep=2)


# ---- fp4 serving -----------------------------------------------------------------------------
def test_fp4_inference_weights_and_refusal_without_an_fp4_peak():
    """Llama-2-7B: the linear weights (32 blocks × (4·4096² + 3·4096·11008) = 6,476,005,376,
    plus the LM head 32,000 · 4,096 = 131,072,000, which the policy stores like the other
    linears) at 0.5625 B (NVFP4: 4 bits + an fp8 scale per 16), the embedding and the 65
    norms at 2 B: 6,607,077,376 · 0.5625 + (131,072,000 + 266,240) · 2
    = 3,716,481,024 + 262,676,480 = 3,979,157,504 B; fp8-inference: 6,607,077,376 · 1 +
    262,676,480 = 6,869,753,856 B. On an H100 (no fp4 tensor cores) it is refused."""
    linear = 32 * (4 * 4096**2 + 3 * 4096 * 11008) + 32000 * 4096
    rest = 32000 * 4096 + 65 * 4096
    assert linear + rest == 6_738_415_616  # Llama-2-7B's parameters
    base = dict(model="llama-2-7b", prompt_len=512, output_len=128, tp=1, pp=1, batch_size=1)
    fp4 = search(InferenceJob(**base, precision="fp4-inference"),
                 devices=["nvidia_b200_hgx", H100]).set_index("device")
    fp8 = _row(InferenceJob(**base, precision="fp8-inference"), "nvidia_b200_hgx")
    b200 = fp4.loc["nvidia_b200_hgx"]
    assert b200["feasible"]
    assert b200["weight_mem_bytes"] == pytest.approx(linear * 0.5625 + rest * 2, rel=1e-12)
    assert b200["weight_mem_bytes"] == pytest.approx(3_979_157_504, rel=1e-12)
    assert fp8["weight_mem_bytes"] == pytest.approx(6_869_753_856, rel=1e-12)
    assert b200["tpot_s"] < fp8["tpot_s"]  # fewer weight bytes a memory-bound decode reads
    h100 = fp4.loc[H100]
    assert not h100["feasible"] and h100["reason"] == InferReason.NO_PEAK.text
    reason = rank(InferenceJob(**base, precision="fp4-inference"), devices=[H100]).iloc[0]
    assert "no dense fp4 peak" in reason["reason"]


# ---- K1b: batch-1 decode -----------------------------------------------------------------------
def test_batch1_decode_on_a100_is_memory_bound_and_quantization_orders_it():
    """Llama-2-7B bf16, batch 1, on an A100 80GB (2.039 TB/s): every weight is read per token,
    so 1/TPOT ≤ 2.039e12 / (6,738,415,616 · 2) = 151.3 tokens/s, and a sound model is within
    2× of it. gpt-fast (pytorch-labs, README, Llama-2-7B on a power-limited A100-80GB)
    measured 104.9 (bf16), 155.6 (int8), 196.8 (int4) tokens/s: only the order and the bound
    are asserted."""
    bound = 2.039e12 / (6_738_415_616 * 2)
    assert bound == pytest.approx(151.3, abs=0.05)
    speed = {}
    for p in ("bf16", "int8", "int4"):
        job = InferenceJob(model="llama-2-7b", precision=p, prompt_len=128, output_len=256,
                           tp=1, pp=1, batch_size=1)
        row = _row(job, "nvidia_a100_80gb_sxm")
        assert row["feasible"], p
        speed[p] = 1.0 / row["tpot_s"]
    assert bound / 2 <= speed["bf16"] <= bound
    assert speed["int4"] > speed["int8"] > speed["bf16"]
    # int4: linear weights (with the head) at 0.5 B, the embedding and norms at 2 B:
    # 6,607,077,376 · 0.5 + 262,676,480 = 3,566,215,168 B -> at most 571.8 tokens/s
    assert speed["int4"] <= 2.039e12 / 3_566_215_168


def test_decode_rows_pad_to_the_8_row_mma_tile():
    # K1b: a batch-1 decode GEMM 1 × 4096 × 4096 runs as 8 × 4096 × 4096:
    # s = (8 · 4096 · 4096)^(1/3) = (2^27)^(1/3) = 512, of which 1/8 is useful
    # NB: padded_gemm_size's docstring says s = 645; (2^27)^(1/3) is 512 (645³ = 2^28)
    assert GEMM_ROW_TILE == 8.0
    assert _one(padded_gemm_size(1, 4096, 4096)) == pytest.approx(
        (8 * 4096 * 4096) ** (1 / 3), rel=1e-12)
    assert _one(padded_gemm_size(1, 4096, 4096)) == pytest.approx(512.0, rel=1e-12)
    assert _one(tile_frac(1, 4096)) == pytest.approx(1 / 8)
    assert _one(tile_frac(16, 4096)) == 1.0
    # n under one 128-wide tile: 64/128 of it useful
    assert _one(tile_frac(8, 64)) == pytest.approx(0.5)


def test_a_slot_turns_over_once_per_output_steps_so_short_outputs_cannot_beat_the_peak():
    """Capacity per slot is 1 / max(TTFT + (O − 1)·TPOT, O·TPOT) (P19h): with O = 1 the
    steady-state prefill chunks of every arriving request share each step, so a request
    holds its slot for a whole step cycle, not one chunk's time. Every feasible row keeps
    MFU ≤ 1 and its utilization ≤ the target."""
    for output_len in (1, 2, 16):
        job = InferenceJob(model="llama-2-7b", prompt_len=2048, output_len=output_len,
                           requests_per_s=50, tp=1, pp=1)
        rows = search(job, devices=["nvidia_h100_sxm"])
        ok = rows[rows["feasible"]]
        assert len(ok) and (ok["mfu"] <= 1.0).all(), (output_len, ok["mfu"].max())
        assert (ok["utilization"] <= job.target_utilization + 1e-9).all()


def test_weights_in_a_second_memory_slow_the_sizing_not_only_the_latency():
    """P19b's spill time is part of the schedule replicas are sized with: on a U280 serving
    Llama-2-7B in int8-w8a8 every feasible row stays at or below the target utilization."""
    job = InferenceJob(model="llama-2-7b", prompt_len=512, output_len=128, requests_per_s=0.5,
                       precision="int8-w8a8")
    rows = search(job, devices=["amd_alveo_u280"])
    spilled = rows[rows["feasible"] & (rows["secondary_mem_bytes"] > 0)]
    assert len(spilled)
    assert (spilled["utilization"] <= job.target_utilization + 1e-9).all()
    assert np.isfinite(spilled["queue_wait_s"]).all()


@pytest.mark.parametrize("field", ["acceptance_rate", "prefix_cache_hit_frac"])
def test_fractions_that_must_stay_below_one(field):
    extra = {"speculative_tokens": 2, "draft_model": "llama-7b"} if field == "acceptance_rate" \
        else {}
    with pytest.raises(ValueError, match=f"{field}: must be below 1, got 1"):
        InferenceJob(model="llama-2-7b", prompt_len=128, output_len=16, **extra, **{field: 1})
