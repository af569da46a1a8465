"""The step-time composition, derived by hand for two layouts (docs/planning.md, "Worked step
times"). Per-op times are given (they have their own tests); every other term is computed here
from the model's dimensions and the H100 catalog entry, with flat kernel fractions so that the
arithmetic stays on paper: network 0.8 of the link, 10 µs per collective step, memory 0.7 of
3.35 TB/s. Each term is asserted, so a broken term (an optimizer step ×5, the data-parallel
overlap removed, a collective's step count) turns a test red.
"""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace

import numpy as np
import pytest

from planner import TrainingJob
from planner.hardware.catalog import load_catalog
from planner.plan.search import device_columns, evaluate_training
from planner.plan.steptime import training_profile

FLAT = {"compute_frac": 0.4, "memory_bw_frac": 0.7, "network_frac": 0.8,
        "collective_latency_s": 1e-5}
H100 = load_catalog().get("nvidia_h100_sxm")  # NVLink 450 GB/s, 8 per node, NIC 50 GB/s

# Llama-2-7B by hand: a block has 4·4096² (attention) + 3·4096·11008 (SwiGLU) + 2·4096
# (RMSNorm) = 202,383,360 parameters; the embedding 32000·4096 = 131,072,000; the head side
# the final norm + the untied head, 131,076,096. 32 blocks: 6,738,415,616 in all.
BLOCK, FIRST, LAST = 202_383_360, 131_072_000, 131_076_096
TOTAL = 32 * BLOCK + FIRST + LAST


def _evaluate(*, n, tp, pp, zero, mb, gb, layer_s, first_s, last_s):
    job = TrainingJob(model="llama-2-7b", n_tokens=1e12, seq_len=4096, global_batch_size=gb,
                      efficiency_overrides=FLAT, goodput_frac=1.0)
    prof = training_profile(job.model, seq_len=4096, precision="bf16", optimizer="adamw",
                            flash_attention=True, causal_attention="full")
    dev = device_columns(H100, job)
    q = evaluate_training(job, prof, dev, n=float(n), tp=float(tp), pp=float(pp),
                          zero=float(zero), mb=float(mb), rc=0,
                          op_times=(layer_s, first_s, last_s))
    return SimpleNamespace(**{f.name: float(np.asarray(getattr(q, f.name)).reshape(-1)[0])
                              for f in fields(q)})


def test_parameter_count_used_below():
    assert TOTAL == 6_738_415_616  # the preset's count (Touvron et al. 2023)


def test_layout_a_tp2_pp2_dp8_zero1_by_hand():
    """32 H100, tp 2 × pp 2 × dp 8, ZeRO-1, micro-batch 1, global batch 64: m = 8."""
    q = _evaluate(n=32, tp=2, pp=2, zero=1, mb=1, gb=64, layer_s=0.01, first_s=0.002,
                  last_s=0.005)
    # stage (P12): ceil(32/2) = 16 blocks + the larger outer side = 0.16 + 0.005 s
    stage = 16 * 0.01 + 0.005
    # TP (K5): 4 all-reduces per block of the micro-batch's activations, 1·4096·4096·2 bytes,
    # over 2 ranks: min(2·1, 2·log2 2) = 2 steps of 10 µs + 2·(1/2)·M / (0.8·450 GB/s)
    message = 4096 * 4096 * 2
    one_tp = 2e-5 + message / 360e9
    tp_comm = 16 * 4 * one_tp
    # PP: forward activation and backward gradient, M/t bytes, send/recv (1 step); 32 devices
    # span 4 nodes, so stage boundaries cross the scale-out network, 0.8 · 50 GB/s
    pp_comm = 2 * (1e-5 + (message / 2) / 40e9)
    micro = stage + tp_comm + pp_comm
    span = (8 + 2 - 1) * micro  # P11: (m + p - 1) micro-batch slots
    assert q.n_micro_batches == 8
    assert q.compute_time_s == pytest.approx(9 * stage)
    assert q.tp_comm_time_s == pytest.approx(8 * tp_comm)
    assert q.pp_comm_time_s == pytest.approx(8 * pp_comm)
    assert q.bubble_frac == pytest.approx(1 / 9)
    # DP (P13, K5): the stage's weights over t: 16 blocks + the head side, 2 bytes each, / 2
    w = (16 * BLOCK + LAST) * 2 / 2
    grads_fp32 = 2 * w  # reduced in fp32 (Megatron main_grad)
    # tp·dp = 16 > 8: hierarchical, min(8, 8/2) = 4 NICs' worth, 200 GB/s, at 0.8 = 160 GB/s;
    # ZeRO-1 reduce-scatters the gradients and all-gathers the weights, 7 steps each
    rs = 7e-5 + 7 / 8 * grads_fp32 / 160e9
    ag = 7e-5 + 7 / 8 * w / 160e9
    assert rs + ag < stage * 2 / 3  # hidden behind one micro-batch's backward (A3)
    assert q.dp_comm_exposed_s == 0.0
    # optimizer (P14): (W + G + 2·O) / dp, O = 12 bytes per parameter, at 0.7 · 3.35 TB/s
    params = w / 2
    optimizer = (2 * params + 2 * params + 2 * 12 * params) / 8 / (0.7 * 3.35e12)
    assert q.optimizer_time_s == pytest.approx(optimizer)
    assert optimizer == pytest.approx(2.514e-3, rel=1e-3)
    assert q.step_time_s == pytest.approx(span + optimizer)
    assert q.step_time_s == pytest.approx(1.5605, rel=1e-4)


def test_layout_b_pure_zero3_with_exposed_gathers_by_hand():
    """64 H100 as dp 64 with ZeRO-3, micro-batch 1, global batch 64 (m = 1): the weight
    all-gathers and the gradient reduce-scatter do not fit behind a short micro-batch."""
    q = _evaluate(n=64, tp=1, pp=1, zero=3, mb=1, gb=64, layer_s=0.002, first_s=0.002,
                  last_s=0.005)
    stage = 32 * 0.002 + 0.002 + 0.005  # pp = 1: both outer sides
    w = TOTAL * 2
    grads_fp32 = TOTAL * 4
    # hierarchical: min(64, 8) = 8 NICs, 400 GB/s (< 450), at 0.8: 320 GB/s; 63 steps each
    ag = 63e-5 + 63 / 64 * w / 320e9
    rs = 63e-5 + 63 / 64 * grads_fp32 / 320e9
    per_micro = 2 * ag + rs  # forward and backward gathers + the scatter (ZeRO Sec. 7.2)
    exposed = per_micro - stage  # one micro-batch, nothing to hide behind beyond its span
    assert q.dp_comm_exposed_s == pytest.approx(exposed)
    assert exposed == pytest.approx(0.09672, rel=1e-3)
    optimizer = (w + w + 12 * TOTAL * 2 / 2 * 2) / 64 / (0.7 * 3.35e12)
    assert q.optimizer_time_s == pytest.approx(optimizer)
    assert q.compute_time_s == pytest.approx(stage)
    assert q.tp_comm_time_s == 0.0 and q.pp_comm_time_s == 0.0
    assert q.step_time_s == pytest.approx(stage + exposed + optimizer)
    assert q.step_time_s == pytest.approx(0.16898, rel=1e-3)
