"""Layouts real jobs use (issue 10): interleaved pipelines, context parallelism, device counts
and pipeline depths that are not powers of two (docs/planning.md P10, P11, P3, P21-P23)."""

from __future__ import annotations

import numpy as np
import pytest

import planner
from planner import TrainingJob, load_catalog, rank, search
from planner.plan.memory import activation_bytes_per_device
from planner.plan.search import _device_counts, _pipeline_depths, context_parallel_seconds
from planner.plan.steptime import pipeline_bubble_frac, pipeline_step_time_s, training_profile

CATALOG = load_catalog()


def test_interleaving_divides_the_bubble_by_the_virtual_stages():
    # Narayanan et al. 2021, Sec. 2.2.2: bubble (p-1)/v per m micro-batches.
    # p = 4, m = 8: 1F1B 3/11 = 0.2727; v = 2: 1.5/9.5 = 0.1579; span (8 + 1.5) x 1 s = 9.5 s
    assert pipeline_bubble_frac(pp=4, n_micro_batches=8) == pytest.approx(3 / 11)
    assert pipeline_bubble_frac(pp=4, n_micro_batches=8, virtual_stages=2) == pytest.approx(
        1.5 / 9.5)
    assert pipeline_step_time_s(stage_micro_batch_s=1.0, pp=4, n_micro_batches=8,
                                virtual_stages=2) == pytest.approx(9.5)


def test_interleaving_and_context_parallelism_in_activation_memory():
    # P3: 8 layers of 10 bytes, no outer layers, p = 4, m = 8, mb = 1, t = 1:
    # 1F1B first stage 2 blocks x 10 x 4 in flight = 80; interleaved v = 2: x (1 + 3/8) = 110;
    # cp = 2 halves it: 55 (Korthikanti 2022, Sec. 4.2.3; each rank keeps half the sequence)
    kw = dict(layer_bytes=10.0, first_bytes=0.0, last_bytes=0.0, n_layers=8, pp=4, tp=1,
              micro_batch_size=1, n_micro_batches=8)
    assert activation_bytes_per_device(**kw) == pytest.approx(80)
    assert activation_bytes_per_device(**kw, virtual_stages=2) == pytest.approx(110)
    assert activation_bytes_per_device(**kw, virtual_stages=2, cp=2) == pytest.approx(55)


def test_context_parallel_exchange_is_an_all_gather_and_a_reduce_scatter_of_k_and_v():
    # P22, Llama 3 405B at 131,072 tokens, tp 8, cp 16 (8 KV heads of 128, bf16): each rank
    # gathers K and V of the whole sequence, 2 x 131,072 x 1 head x 128 x 2 B = 67,108,864 B,
    # over 16 ranks (tp x cp = 128 GPUs: beyond one 8-GPU node, the scale-out tier), and
    # reduce-scatters their gradients; a full recompute gathers once more
    prof = training_profile(planner.model("llama-3.1-405b"), seq_len=131072, precision="bf16",
                            optimizer="adamw", flash_attention=True, causal_attention="full")
    job = TrainingJob(model="llama-3.1-405b", n_tokens=1e12, seq_len=131072,
                      global_batch_size=128)
    dev = planner.plan.search.device_columns(CATALOG.get("nvidia_h100_sxm"), job)
    msg = 2 * 131072 * 1 * 128 * 2
    assert msg == 67_108_864
    ag = planner.collective_time_s("nvidia_h100_sxm", "all_gather", msg, 16, "scale_out")
    rs = planner.collective_time_s("nvidia_h100_sxm", "reduce_scatter", msg, 16, "scale_out")
    got = context_parallel_seconds(prof, dev, tp=8.0, cp=16.0, n=16384.0, mb=1.0, rc=0)
    assert float(got[0]) == pytest.approx(ag + rs, rel=1e-9)
    full = context_parallel_seconds(prof, dev, tp=8.0, cp=16.0, n=16384.0, mb=1.0, rc=2)
    assert float(full[0]) == pytest.approx(2 * ag + rs, rel=1e-9)


def test_llama3_405b_at_131k_with_meta_layout_is_feasible_with_a_plausible_mfu():
    # Llama 3 (Dubey et al. 2024, Table 4): 16,384 H100, TP8 CP16 PP16 DP8, seq 131,072,
    # 16M tokens per batch (128 sequences): 38 % BF16 MFU. Without context parallelism and
    # interleaving the best layout was one micro-batch per replica and a 48 % bubble.
    job = TrainingJob(model="llama-3.1-405b", n_tokens=8e11, seq_len=131072,
                      global_batch_size=128, n_devices=16384, tp=8, cp=16, pp=16, zero_stage=1)
    row = rank(job, CATALOG, devices=["nvidia_h100_sxm"]).iloc[0]
    assert row["feasible"], row["reason"]
    assert (row["tp"], row["cp"], row["pp"], row["dp"]) == (8, 16, 16, 8)
    assert row["virtual_stages"] > 1 and row["bubble_frac"] < 0.3
    assert 0.25 <= row["mfu"] <= 0.55
    one_f_one_b = search(job.model_copy(update={"virtual_stages": 1}), CATALOG,
                         devices=["nvidia_h100_sxm"])
    assert one_f_one_b["bubble_frac"].min() == pytest.approx(15 / 31)


def test_an_interleaved_schedule_needs_micro_batches_in_multiples_of_pp():
    job = TrainingJob(model="llama-2-70b", n_tokens=1e10, seq_len=4096, global_batch_size=6,
                      n_devices=16, tp=8, pp=2, virtual_stages=2, micro_batch_size=2,
                      zero_stage=1, recompute="full")
    row = rank(job, CATALOG, devices=["nvidia_h100_sxm"]).iloc[0]
    # m = 6 / (1 x 2) = 3 micro-batches, not a multiple of pp = 2
    assert not row["feasible"]
    assert "3 micro-batches is not a multiple of pp=2" in row["reason"]


def test_device_counts_and_pipeline_depths_beyond_powers_of_two():
    counts = _device_counts(16384, [8, 72])
    assert {24, 48, 6144, 72, 144, 9216} <= set(counts) and 100 not in counts
    # 126 layers (Llama 3.1 405B): 14 stages of 9 layers, 18 of 7, 21 of 6 ...
    assert {1, 2, 3, 6, 7, 9, 14, 18, 21, 42, 63, 4, 8, 16, 32, 64} == set(
        _pipeline_depths(64, 126))
    # 6,144 GPUs (3 x 2,048) can be asked and planned, and 126 layers over 14 stages
    job = TrainingJob(model="llama-3.1-405b", n_tokens=1e12, seq_len=8192,
                      global_batch_size=1536, n_devices=6144, tp=8, pp=16)
    row = rank(job, CATALOG, devices=["nvidia_h100_sxm"]).iloc[0]
    assert row["feasible"], row["reason"]
    assert (row["n_devices"], row["dp"]) == (6144, 48)
    fourteen = rank(job.model_copy(update={"n_devices": 1792, "pp": 14}), CATALOG,
                    devices=["nvidia_h100_sxm"]).iloc[0]
    assert fourteen["feasible"], fourteen["reason"]
    assert (fourteen["pp"], fourteen["dp"]) == (14, 16)
    grid = search(job.model_copy(update={"n_devices": None, "pp": None, "max_devices": 8192}),
                  CATALOG, devices=["nvidia_h100_sxm"])
    assert {6144, 3072, 1536} <= set(grid["n_devices"]) and {14, 18, 21} <= set(grid["pp"])
    assert np.isin(grid["virtual_stages"], [1, 2, 3, 4, 5, 6, 7, 8]).all()


def test_fp8_and_fp4_recipes_keep_the_lm_head_in_bf16():
    # A22: Transformer Engine (and NVFP4 pretraining) run the blocks' linear layers in fp8/fp4;
    # the embedding and LM head stay bf16, so their time equals the bf16 job's
    from planner.plan.search import device_columns, micro_batch_times

    times = {}
    for precision in ("bf16", "fp8", "fp4"):
        job = TrainingJob(model="llama-3-8b", n_tokens=1e10, seq_len=8192,
                          global_batch_size=64, precision=precision)
        prof = training_profile(job.model, seq_len=8192, precision=precision,
                                optimizer="adamw", flash_attention=True,
                                causal_attention="full", fused_swiglu=True)
        dev = device_columns(CATALOG.get("nvidia_b200_hgx"), job)
        times[precision] = [float(np.asarray(t).ravel()[0])
                            for t in micro_batch_times(prof, dev, tp=1.0, mb=1.0, rc=0)]
    block, first, last = zip(*(times[p] for p in ("bf16", "fp8", "fp4")), strict=True)
    assert first[1] == pytest.approx(first[0])  # the embedding, too
    assert last[1] == pytest.approx(last[0]) and last[2] == pytest.approx(last[0])
    assert block[2] < block[1] < block[0]  # the blocks' GEMMs at the fp8 and fp4 peaks


def test_fp4_training_needs_an_fp4_peak():
    job = TrainingJob(model="llama-3-8b", n_tokens=1e10, seq_len=8192, global_batch_size=64,
                      precision="fp4")
    df = rank(job, CATALOG, devices=["nvidia_b200_hgx", "nvidia_h100_sxm"]).set_index("device")
    assert df.loc["nvidia_b200_hgx", "feasible"]
    assert df.loc["nvidia_b200_hgx", "peak_dtype"] == "fp4"
    assert df.loc["nvidia_h100_sxm", "reason"].startswith("no dense fp4 peak in the catalog")


def _deepseek(**pins) -> TrainingJob:
    return TrainingJob(model="deepseek-v3", n_tokens=14.8e12, seq_len=4096,
                       global_batch_size=3840, n_devices=2048, precision="fp8", **pins)


def test_expert_parallel_all_to_all_of_deepseek_v3():
    # P29: one 4,096-token sequence per rank (tp 1, cp 1), top-8 of 7,168-wide tokens in
    # bf16: 4,096 x 8 x 7,168 x 2 = 469,762,048 B per all-to-all, over 64 ranks (beyond one
    # 8-GPU node: the scale-out tier); 2 in forward and 2 in backward per MoE block; the
    # average block carries 58/61 of a MoE block
    from planner.plan.search import device_columns, expert_parallel_seconds

    job = _deepseek()
    prof = training_profile(job.model, seq_len=4096, precision="fp8", optimizer="adamw",
                            flash_attention=True, causal_attention="full", fused_swiglu=True)
    msg = 4096 * 8 * 7168 * 2
    assert msg == 469_762_048 and prof.moe.dispatch_bytes_per_token * 4096 == msg
    dev = device_columns(CATALOG.get("nvidia_h800_sxm"), job)
    a2a = planner.collective_time_s("nvidia_h800_sxm", "all_to_all", msg, 64, "scale_out")
    got = expert_parallel_seconds(job, prof, dev, tp=1.0, cp=1.0, ep=64.0, n=2048.0, mb=1.0,
                                  rc=0)
    assert float(np.ravel(got)[0]) == pytest.approx(4 * a2a * 58 / 61, rel=1e-9)


def test_expert_parallelism_splits_the_experts_state():
    # DeepSeek-V3's routed experts: 256 x 3 x 7,168 x 2,048 weights x 2 B = 22.55 GB per MoE
    # block; a 16-stage pipeline holds ceil(61/16) = 4 average blocks, 4 x 58/61 MoE blocks =
    # 85.77 GB of experts; ep 64 keeps 1/64 of them: 84.43 GB less per device
    per_block = 256 * 3 * 7168 * 2048 * 2
    assert per_block == pytest.approx(22.55e9, rel=1e-3)
    stage = 4 * 58 / 61 * per_block
    rows = {}
    for ep in (1, 64):
        grid = search(_deepseek(tp=1, pp=16, ep=ep, zero_stage=1, micro_batch_size=1,
                                recompute="full", virtual_stages=1), CATALOG,
                      devices=["nvidia_h800_sxm"])
        rows[ep] = grid.iloc[0]
    saved = rows[1]["weight_mem_bytes"] - rows[64]["weight_mem_bytes"]
    assert saved == pytest.approx(stage * 63 / 64, rel=1e-6)
    assert rows[1]["ep_comm_time_s"] == 0 and rows[64]["ep_comm_time_s"] > 0


def test_deepseek_v3_on_2048_h800_gets_a_feasible_plan_with_ep_and_pp():
    row = rank(_deepseek(), CATALOG, devices=["nvidia_h800_sxm"]).iloc[0]
    assert row["feasible"], row["reason"]
    assert row["ep"] > 1 and row["pp"] > 1
    # DeepSeek's own layout (PP16, EP64, ZeRO-1, no TP) is feasible with recomputation
    own = rank(_deepseek(tp=1, pp=16, ep=64, zero_stage=1), CATALOG,
               devices=["nvidia_h800_sxm"]).iloc[0]
    assert own["feasible"], own["reason"]


def test_overlapped_expert_all_to_alls_are_hidden_behind_the_computation():
    # A23: with overlap_expert_comm a micro-batch's all-to-alls cost only what exceeds its
    # computation t_stage (compute_time_s = (m + p - 1) t_stage for v = 1)
    pins = dict(tp=4, pp=2, ep=32, zero_stage=1, micro_batch_size=1, recompute="none",
                virtual_stages=1)
    exposed = search(_deepseek(**pins), CATALOG, devices=["nvidia_h800_sxm"]).iloc[0]
    hidden = search(_deepseek(overlap_expert_comm=True, **pins), CATALOG,
                    devices=["nvidia_h800_sxm"]).iloc[0]
    m = exposed["n_micro_batches"]
    stage = exposed["compute_time_s"] / (m + 1)
    per_micro = exposed["ep_comm_time_s"] / m
    assert per_micro > 0
    assert hidden["ep_comm_time_s"] == pytest.approx(m * max(per_micro - stage, 0.0), rel=1e-9)
    assert hidden["step_time_s"] < exposed["step_time_s"]


def test_expert_parallelism_gives_each_expert_gemm_the_tokens_of_ep_ranks():
    # P29b: 4,096 tokens x top-8 over 256 experts is 128 rows per expert GEMM on one rank;
    # with ep 64 each rank runs 4 experts on the tokens of 64 ranks, 8,192 rows: the same
    # FLOPs at a higher GEMM rate, so the micro-batch computes faster
    pins = dict(tp=1, pp=16, zero_stage=1, micro_batch_size=1, recompute="full",
                virtual_stages=1)
    one = search(_deepseek(ep=1, **pins), CATALOG, devices=["nvidia_h800_sxm"]).iloc[0]
    many = search(_deepseek(ep=64, **pins), CATALOG, devices=["nvidia_h800_sxm"]).iloc[0]
    assert many["compute_time_s"] < 0.9 * one["compute_time_s"]


def test_without_sequence_parallelism_the_norm_and_linear_inputs_stay_whole():
    # P3b (Korthikanti et al. 2022, Eq. 2 vs 4): Llama-2-7B at 4,096 tokens saves 32.16 s·h
    # bytes per block with flash attention (34 s·b·h less dropout, with a fused SwiGLU), of
    # which 8 s·h (2 norm inputs, the q and up inputs, 2 bytes each) are not split by t
    # without sequence parallelism: at t = 8, (32.16 - 8)/8 + 8 = 11.02 s·h instead of 4.02
    prof = training_profile(planner.model("llama-2-7b"), seq_len=4096, precision="bf16",
                            optimizer="adamw", flash_attention=True, causal_attention="full",
                            fused_swiglu=True)
    sh = 4096 * 4096
    assert prof.block_activation_bytes[0] / sh == pytest.approx(32.15625)
    assert prof.block_sp_activation_bytes[0] / sh == pytest.approx(8.0)
    rows = {}
    for sp in (True, False):
        job = TrainingJob(model="llama-2-7b", n_tokens=1e10, seq_len=4096, global_batch_size=64,
                          n_devices=8, tp=8, pp=1, zero_stage=1, micro_batch_size=1,
                          recompute="none", sequence_parallel=sp)
        rows[sp] = search(job, CATALOG, devices=["nvidia_h100_sxm"]).iloc[0]
    extra = rows[False]["activation_mem_bytes"] - rows[True]["activation_mem_bytes"]
    assert extra == pytest.approx(32 * 8.0 * sh * 7 / 8, rel=1e-9)  # 32 blocks, R(t-1)/t


def test_405b_pretraining_is_ranked_on_thousands_of_mi300x_trainium2_and_multislice_v5p():
    # every one of them has a scale-out network in the catalog now (AMD, AWS EFA, TPU DCN),
    # so none stops at one scale-up domain; v5p's largest slice is 6,144 chips, beyond which
    # slices join over the data-centre network
    job = TrainingJob(model="llama-3.1-405b", n_tokens=15.6e12, seq_len=8192,
                      global_batch_size=2048, n_devices=8192)
    df = rank(job, CATALOG, devices=["amd_mi300x", "aws_trainium2",
                                     "google_tpu_v5p"]).set_index("device")
    assert df["feasible"].all(), df["reason"]
    assert (df["n_devices"] == 8192).all()
    assert 0.2 < df.loc["google_tpu_v5p", "mfu"] < 0.7
    assert df.loc["google_tpu_v5p", "goodput_frac"] == pytest.approx(
        float(job.goodput(8192)))


def _llama3_131k(**changes) -> TrainingJob:
    pins = dict(model="llama-3.1-405b", n_tokens=8e11, seq_len=131072, global_batch_size=128,
                n_devices=16384, tp=8, cp=16, pp=16, zero_stage=1, micro_batch_size=1,
                recompute="full", virtual_stages=2)
    return TrainingJob(**{**pins, **changes})


def _row(job: TrainingJob, device: str = "nvidia_h100_sxm"):
    return search(job, CATALOG, devices=[device]).iloc[0]


def test_every_communication_term_is_in_the_step():
    # P11: step = (m + (p-1)/v) x (stage + tp + cp + ep + pp per micro-batch) + dp + optimizer;
    # the *_time_s columns hold m x the per-micro-batch terms
    r = _row(_llama3_131k())
    m, p, v = r["n_micro_batches"], r["pp"], r["virtual_stages"]
    slots = (m + (p - 1) / v) / m
    comm = r["tp_comm_time_s"] + r["cp_comm_time_s"] + r["ep_comm_time_s"] + r["pp_comm_time_s"]
    assert r["cp_comm_time_s"] > 0
    assert r["step_time_s"] == pytest.approx(
        r["compute_time_s"] + slots * comm + r["dp_comm_exposed_s"] + r["optimizer_time_s"],
        rel=1e-9)
    # P23: each micro-batch crosses v stage boundaries each way: v = 4 doubles v = 2's sends
    four = _row(_llama3_131k(virtual_stages=4))
    assert four["pp_comm_time_s"] == pytest.approx(2 * r["pp_comm_time_s"], rel=1e-9)


def test_zero_shards_over_the_data_and_context_parallel_ranks():
    # P22: Megatron's distributed optimizer shards over d x c ranks: halving d and doubling c
    # (same n) keeps the optimizer state per device
    a = _row(_llama3_131k(cp=8, n_devices=8192))   # d = 8, c = 8: 64 ranks
    b = _row(_llama3_131k(cp=16, n_devices=8192))  # d = 4, c = 16: 64 ranks
    assert (a["dp"], b["dp"]) == (8, 4)
    assert a["optimizer_mem_bytes"] == pytest.approx(b["optimizer_mem_bytes"], rel=1e-9)


def test_all_to_all_scales_with_capacity_recompute_and_tensor_parallel_tokens():
    # P29: bytes x the capacity factor; 6 all-to-alls under full recompute, 4 without;
    # each tp rank sends its 1/t of the (sequence-parallel) tokens
    from planner.plan.search import device_columns, expert_parallel_seconds

    job = _deepseek()
    prof = training_profile(job.model, seq_len=4096, precision="fp8", optimizer="adamw",
                            flash_attention=True, causal_attention="full", fused_swiglu=True)
    dev = device_columns(CATALOG.get("nvidia_h800_sxm"), job)

    def t(j=job, **kw):
        args = dict(tp=1.0, cp=1.0, ep=8.0, n=2048.0, mb=1.0, rc=0) | kw
        return float(np.ravel(expert_parallel_seconds(j, prof, dev, **args))[0])

    a2a = planner.collective_time_s("nvidia_h800_sxm", "all_to_all", 4096 * 114_688, 8,
                                    "scale_up")
    assert t() == pytest.approx(4 * a2a * 58 / 61, rel=1e-9)  # ep 8 inside one node
    assert t(rc=2) == pytest.approx(1.5 * t(), rel=1e-9)
    big = job.model_copy(update={"moe_capacity_factor": 1.25})
    a2a_cf = planner.collective_time_s("nvidia_h800_sxm", "all_to_all", 1.25 * 4096 * 114_688,
                                       8, "scale_up")
    assert t(big) == pytest.approx(4 * a2a_cf * 58 / 61, rel=1e-9)
    a2a_tp = planner.collective_time_s("nvidia_h800_sxm", "all_to_all", 1024 * 114_688, 2,
                                       "scale_up")
    assert t(tp=4.0, ep=2.0) == pytest.approx(4 * a2a_tp * 58 / 61, rel=1e-9)


def test_zero3_gathers_only_the_ranks_share_of_the_experts():
    # P2b with P29: the gather buffer holds 2 blocks' weights, the experts' 1/ep of them:
    # DeepSeek-V3's average block carries 58/61 x 22.55 GB of experts
    pins = dict(tp=1, pp=16, zero_stage=3, micro_batch_size=1, recompute="full",
                virtual_stages=1)
    rows = {ep: _row(_deepseek(ep=ep, **pins), "nvidia_h800_sxm") for ep in (1, 64)}
    experts = 58 / 61 * 256 * 3 * 7168 * 2048 * 2
    buffer_gap = rows[1]["activation_mem_bytes"] - rows[64]["activation_mem_bytes"]
    assert buffer_gap == pytest.approx(2 * experts * 63 / 64, rel=1e-6)


def test_a_pinned_virtual_stage_count_keeps_only_the_pipelines_it_fits():
    job = TrainingJob(model="llama-2-7b", n_tokens=1e10, seq_len=4096, global_batch_size=64,
                      virtual_stages=4, max_devices=64)
    grid = search(job, CATALOG, devices=["nvidia_h100_sxm"])
    assert (grid["virtual_stages"] == 4).all() and (grid["pp"] > 1).all()
    assert (grid["pp"] * 4 <= 32).all()


def test_evaluate_training_broadcasts_tp_for_a_moe_model():
    # the public evaluate_training takes arrays: Mixtral's expert state must split per tp value
    from planner.plan.search import device_columns, evaluate_training

    job = TrainingJob(model="mixtral-8x7b", n_tokens=1e10, seq_len=4096, global_batch_size=64)
    prof = training_profile(job.model, seq_len=4096, precision="bf16", optimizer="adamw",
                            flash_attention=True, causal_attention="full", fused_swiglu=True)
    dev = device_columns(CATALOG.get("nvidia_h100_sxm"), job)
    tp = np.array([1.0, 2.0, 4.0])
    q = evaluate_training(job, prof, dev, n=8.0, tp=tp, pp=1.0, zero=0.0, mb=1.0, rc=0)
    w = np.asarray(q.weight_mem_bytes)
    assert w == pytest.approx(w[0] / tp, rel=0.02)  # weights ÷ t (replicated norms aside)


def test_the_context_parallel_exchange_is_charged_once_per_block_and_micro_batch():
    # P22 in the step: Llama 3 405B at 131k, t8 c16 p16 d8, full recompute: ceil(126/16) = 8
    # blocks per stage, m = 128 / (8 x 1) = 16 micro-batches, each block 2 all-gathers and 1
    # reduce-scatter of 67,108,864 B over 16 ranks on the scale-out tier
    r = _row(_llama3_131k())
    msg = 67_108_864
    ag = planner.collective_time_s("nvidia_h100_sxm", "all_gather", msg, 16, "scale_out")
    rs = planner.collective_time_s("nvidia_h100_sxm", "reduce_scatter", msg, 16, "scale_out")
    assert r["n_micro_batches"] == 16
    assert r["cp_comm_time_s"] == pytest.approx(16 * 8 * (2 * ag + rs), rel=1e-9)
