"""Goodput from scale (planner/plan/goodput.py; docs/planning.md P24-P28, A19-A21):
hand-derived values, a simulation of the failure process, the Llama 3 check, relations, bounds and
every error message."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import InputError
from planner.plan.goodput import (
    DEFAULT_GOODPUT,
    GOODPUT_FLOOR_FRAC,
    GoodputModel,
    checkpoint_interval_s,
    goodput_breakdown,
    goodput_frac,
    mtbf_s,
)

# λ = 0.36 per device-hour: one device's MTBF is 3,600 / 0.36 = 10,000 s
ROUND = GoodputModel(interruptions_per_device_hour=0.36, checkpoint_write_s=50.0, restart_s=100.0)


def test_default_rate_is_llama3s_unexpected_interruptions():
    # Llama 3 Sec. 3.3.4: 419 unexpected interruptions in 54 days on 16,384 H100s:
    # 419 / (54 x 24 h x 16,384) = 419 / 21,233,664 device-hours = 1.97328e-5
    assert DEFAULT_GOODPUT.interruptions_per_device_hour == pytest.approx(1.97328e-5, rel=1e-5)
    assert DEFAULT_GOODPUT.checkpoint_write_s == 6.3  # PyTorch DCP async stall, 7B
    assert DEFAULT_GOODPUT.restart_s == 600.0  # PyTorch's default NCCL timeout, 10 min
    assert DEFAULT_GOODPUT.other_overhead_frac == 0.0


def test_mtbf_by_hand():
    # on Llama 3's 16,384 GPUs the job MTBF is the snapshot over its interruptions:
    # 1,296 h / 419 = 3.0931 h = 11,135.1 s
    assert float(mtbf_s(16384)) == pytest.approx(11135.08, rel=1e-6)
    # 16x fewer devices, 16x longer: 49.49 h
    assert float(mtbf_s(1024)) == pytest.approx(16 * 11135.08, rel=1e-6)
    assert float(mtbf_s(1, ROUND)) == pytest.approx(10_000.0)


def test_checkpoint_interval_by_hand():
    # Daly (2006), M = 10,000 s, δ = 50 s: δ/2M = 0.0025, √ = 0.05; √(2δM) = 1,000 s (Young);
    # 1,000 x (1 + 0.05/3 + 0.0025/9) - 50 = 1,016.944 - 50 = 966.944 s
    assert float(checkpoint_interval_s(1, ROUND)) == pytest.approx(966.944, abs=1e-3)
    # default, 16,384 GPUs: √(2 x 6.3 x 11,135.08) = 374.569 s (Young);
    # δ/2M = 2.8289e-4: 374.569 x (1 + 0.016819/3 + 2.8289e-4/9) - 6.3 = 370.381 s (6.2 min)
    assert float(checkpoint_interval_s(16384)) == pytest.approx(370.381, abs=1e-3)
    # δ ≥ 2M (Daly): checkpoint once per MTBF. λ = 3,600 per hour → M = 1 s < 50/2
    busy = GoodputModel(interruptions_per_device_hour=1.0, checkpoint_write_s=50.0, restart_s=0.0)
    assert float(checkpoint_interval_s(3600, busy)) == pytest.approx(1.0)


def test_goodput_by_hand():
    # Daly's exact ratio with M = 10,000 s, τ = 966.944 s, δ = 50 s, R = 100 s:
    # x = 1,016.944 / 10,000 = 0.1016944, e^x - 1 = 0.1070452; e^(-0.01) = 0.9900498
    # G = 0.0966944 x 0.9900498 / 0.1070452 = 0.894317
    assert float(goodput_frac(1, ROUND)) == pytest.approx(0.894317, abs=1e-6)
    # first order (Young), for comparison: 1 - 50/1,000 - (500 + 100)/10,000 = 0.89
    assert float(goodput_frac(1, ROUND)) == pytest.approx(0.89, abs=0.005)


def test_breakdown_by_hand():
    b = goodput_breakdown(1, ROUND)
    # expected wall time per checkpoint period E = M e^r (e^x - 1)
    # = 10,000 x 1.0100502 x 0.1070452 = 1,081.21 s
    assert b.mtbf_s == pytest.approx(10_000.0) and b.interval_s == pytest.approx(966.944, abs=1e-3)
    assert b.goodput_frac == pytest.approx(966.944 / 1081.21, abs=1e-5)  # 0.894317
    assert b.checkpoint_frac == pytest.approx(50.0 / 1081.21, abs=1e-5)  # 0.046244
    # failed attempts: M(e^x - 1) - (τ + δ) = 1,070.452 - 1,016.944 = 53.508 s
    assert b.lost_work_frac == pytest.approx(53.508 / 1081.21, abs=1e-5)  # 0.049489
    # restarts: 1 - e^(-R/M) = 1 - e^(-0.01) = 0.0099502
    assert b.restart_frac == pytest.approx(0.0099502, abs=1e-7)
    total = b.goodput_frac + b.checkpoint_frac + b.lost_work_frac + b.restart_frac
    assert total + b.other_overhead_frac == pytest.approx(1.0, abs=1e-12)
    assert goodput_breakdown(1, ROUND).goodput_frac == float(goodput_frac(1, ROUND))


def test_goodput_matches_a_simulated_failure_process():
    """Daly's expectation against a direct simulation: exponential interruptions (MTBF
    10,000 s) that can strike during work, checkpoint writes and restarts alike."""
    mtbf, write, restart = 10_000.0, 50.0, 100.0
    tau = float(checkpoint_interval_s(1, ROUND))
    rng = np.random.default_rng(1974)
    draws = iter(rng.exponential(mtbf, size=400_000).tolist())
    wall = useful = 0.0
    for _ in range(20_000):  # checkpoint periods
        while (up := next(draws)) < tau + write:  # interrupted: lose the attempt, restart
            wall += up
            while (up := next(draws)) < restart:  # the restart itself is interrupted
                wall += up
            wall += restart
        wall += tau + write
        useful += tau
    assert useful / wall == pytest.approx(float(goodput_frac(1, ROUND)), abs=0.004)


def test_llama3_check():
    # Meta: "higher than 90% effective training time" on 16,384 H100s (Llama 3 Sec. 3.3.4).
    # M = 11,135.08 s, τ = 370.381 s, x = 376.681 / 11,135.08 = 0.033828, e^x - 1 = 0.034407,
    # r = 600 / 11,135.08 = 0.053884, e^-r = 0.947542:
    # G = 0.033263 x 0.947542 / 0.034407 = 0.91602
    g = float(goodput_frac(16384))
    assert g == pytest.approx(0.91602, abs=1e-5)
    assert 0.90 < g < 0.93
    # first order: 1 - 6.3/374.569 - (187.28 + 600)/11,135.08 = 1 - 0.01682 - 0.07070 = 0.91248
    assert g == pytest.approx(0.91248, abs=0.005)
    b = goodput_breakdown(16384)
    # the restarts dominate: 1 - e^-0.053884 = 0.05246
    assert b.restart_frac == pytest.approx(0.05246, abs=1e-5)
    assert b.restart_frac > b.lost_work_frac > b.checkpoint_frac


def test_worked_numbers():
    # docs/planning.md, "Worked numbers"
    for n, expected in [(8, 0.99923), (1024, 0.98828), (16384, 0.91602), (100_000, 0.66156)]:
        assert float(goodput_frac(n)) == pytest.approx(expected, abs=1e-5), n


def test_the_old_constant_is_reached_near_twenty_thousand_devices():
    # A1's 0.9 for every job is the model's value at ~20,500 devices; below, goodput is higher
    n = np.arange(1, 40_001)
    crossing = int(n[np.argmax(goodput_frac(n) < 0.9)])
    assert 20_000 < crossing < 21_000


def test_goodput_falls_with_the_device_count():
    n = np.unique(np.geomspace(1, 1e7, 2000).round())
    g = goodput_frac(n)
    assert (np.diff(g) <= 0).all()
    above_floor = g[:-1] > GOODPUT_FLOOR_FRAC
    assert (np.diff(g)[above_floor] < 0).all()
    # and the interval shortens as 1/√n while δ ≪ M: 4x the devices, half the interval
    assert float(checkpoint_interval_s(4096) / checkpoint_interval_s(1024)) == \
        pytest.approx(0.5, rel=0.005)


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(1e-7, 1.0), write=st.floats(1e-3, 86_400.0),
       restart=st.floats(0.0, 86_400.0), other=st.floats(0.0, 0.99))
def test_goodput_falls_with_the_device_count_for_any_model(rate, write, restart, other):
    model = GoodputModel(interruptions_per_device_hour=rate, checkpoint_write_s=write,
                         restart_s=restart, other_overhead_frac=other)
    # up to the scale where the checkpoint takes half the MTBF (δ = M/2), well inside Daly's
    # δ < 2M branch: n ≤ 3,600 / (2 δ λ)
    n_max = max(1.0, 3600.0 / (2.0 * write * rate))
    n = np.geomspace(1.0, n_max, 50)
    g = goodput_frac(n, model)
    assert ((GOODPUT_FLOOR_FRAC <= g) & (g <= 1.0 - other + 1e-12)).all()
    assert (np.diff(g) <= 1e-12).all()


def test_bounds():
    assert 0.999 < float(goodput_frac(1)) <= 1.0
    # at 10 million devices M = 18.2 s: restarts of 600 s never finish, the floor holds
    assert float(goodput_frac(1e7)) == GOODPUT_FLOOR_FRAC
    # no interruptions: only the fixed overhead, and no checkpoints needed
    calm = GoodputModel(interruptions_per_device_hour=0.0, checkpoint_write_s=6.3,
                        restart_s=600.0, other_overhead_frac=0.05)
    assert float(goodput_frac(100_000, calm)) == pytest.approx(0.95)
    assert float(checkpoint_interval_s(8, calm)) == math.inf
    b = goodput_breakdown(100_000, calm)
    assert (b.mtbf_s, b.interval_s, b.restart_frac, b.goodput_frac) == (math.inf, math.inf, 0.0,
                                                                        pytest.approx(0.95))


def test_other_overhead_multiplies():
    model = replace(DEFAULT_GOODPUT, other_overhead_frac=0.1)
    # (1 - 0.1) x 0.91602 = 0.82442
    assert float(goodput_frac(16384, model)) == pytest.approx(0.82442, abs=1e-5)
    b = goodput_breakdown(16384, model)
    parts = b.goodput_frac + b.checkpoint_frac + b.lost_work_frac + b.restart_frac
    assert parts + b.other_overhead_frac == pytest.approx(1.0, abs=1e-12)


def test_vectorized_over_millions_of_candidates():
    n = np.arange(1, 2**21 + 1, dtype=np.int64)  # 2,097,152 device counts
    g = goodput_frac(n)
    assert g.shape == n.shape and g.dtype == np.float64
    assert g[[7, 1023, 16383]] == pytest.approx([0.99923, 0.98828, 0.91602], abs=1e-5)
    grid = goodput_frac(n.reshape(1024, 2048))
    assert grid.shape == (1024, 2048) and (grid.ravel() == g).all()
    assert checkpoint_interval_s(n).shape == n.shape
    assert np.ndim(goodput_frac(16384)) == 0  # a scalar in, a 0-d array out


def test_model_is_frozen_and_holds_floats():
    model = GoodputModel(interruptions_per_device_hour=0, checkpoint_write_s=6, restart_s=600)
    assert isinstance(model.checkpoint_write_s, float)
    with pytest.raises(FrozenInstanceError):
        model.restart_s = 1.0  # type: ignore[misc]


_GOOD = dict(interruptions_per_device_hour=2e-5, checkpoint_write_s=6.3, restart_s=600.0)


@pytest.mark.parametrize("change, message", [
    (dict(interruptions_per_device_hour=-1), "interruptions_per_device_hour: must be ≥ 0, got -1"),
    (dict(interruptions_per_device_hour=2), "interruptions_per_device_hour: must be ≤ 1, got 2"),
    (dict(checkpoint_write_s=0), "checkpoint_write_s: must be > 0, got 0"),
    (dict(checkpoint_write_s=1e6), "checkpoint_write_s: must be ≤ 86400, got 1e+06"),
    (dict(checkpoint_write_s="6"), "checkpoint_write_s: must be a number, got '6'"),
    (dict(restart_s=-5), "restart_s: must be ≥ 0, got -5"),
    (dict(restart_s=math.nan), "restart_s: must be a finite number, got nan"),
    (dict(other_overhead_frac=1), "other_overhead_frac: must be ≤ 0.999999, got 1"),
    (dict(other_overhead_frac=True), "other_overhead_frac: must be a number, got True"),
])
def test_bad_model_inputs(change, message):
    with pytest.raises(InputError) as err:
        GoodputModel(**(_GOOD | change))
    assert str(err.value) == message and "\n" not in str(err.value)


@pytest.mark.parametrize("call, message", [
    (lambda: goodput_frac(0), "n_devices: must be ≥ 1 and finite, got 0"),
    (lambda: goodput_frac([8, np.nan]), "n_devices: must be ≥ 1 and finite, got nan"),
    (lambda: checkpoint_interval_s(-8), "n_devices: must be ≥ 1 and finite, got -8"),
    (lambda: goodput_frac(True), "n_devices: must be a device count (a number ≥ 1), got True"),
    (lambda: goodput_frac("8"), "n_devices: must be a device count (a number ≥ 1), got '8'"),
    (lambda: goodput_frac(8, "llama3"), "model: must be a GoodputModel, got 'llama3'"),
    (lambda: goodput_breakdown(0.5), "n_devices: must be ≥ 1, got 0.5"),
    (lambda: goodput_breakdown(np.array([8, 16])),
     "n_devices: must be a number, got array([ 8, 16])"),
])
def test_bad_device_counts(call, message):
    with pytest.raises(InputError) as err:
        call()
    assert str(err.value) == message
