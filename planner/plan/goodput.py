"""Goodput from scale: the share of a training job's wall-clock time spent on useful steps, as a
function of its device count (docs/planning.md, P24-P28 and A19-A21).

A synchronous job stops whenever any of its n devices (or their hosts, links, software) is
interrupted, so its mean time between interruptions falls as 1/n (P24). The job writes a
checkpoint every τ seconds of training (P25, Young 1974 / Daly 2006), and each interruption
costs a restart of R seconds plus the work done since the last checkpoint. Goodput is Daly's
exact expected ratio of useful time to wall time for exponentially distributed interruptions
(P26), times the share left by any fixed non-failure overhead (P27):

    M(n)  = 3,600 s / (λ · n)                               job MTBF (λ per device-hour)
    τ(n)  = √(2δM) · [1 + ⅓·√(δ/2M) + ⅑·(δ/2M)] − δ         (δ < 2M; else τ = M)
    G(n)  = (1 − o) · (τ/M) · e^(−R/M) / (e^((τ+δ)/M) − 1)  floored at GOODPUT_FLOOR_FRAC

Everything is vectorized over the device count (numpy arrays of any shape, e.g. the millions of
candidates of planner.plan.search); the model's four numbers are scalars.

Defaults (each derived with its arithmetic in docs/planning.md, A19-A21):
- interruptions_per_device_hour = 419 / (54 d × 24 h × 16,384) = 1.973e-5: Llama 3 405B
  pre-training, 419 unexpected interruptions in a 54-day snapshot on 16,384 H100s (Llama Team
  2024, "The Llama 3 Herd of Models", arXiv 2407.21783, Sec. 3.3.4). Other public figures are
  higher: OPT-175B 2.5e-5 to 4.1e-5, a 1,024-GPU job on Meta's RSC-1 A100 cluster 1.2e-4.
- checkpoint_write_s = 6.3 s: the training stall of one asynchronous sharded checkpoint with
  PyTorch DCP (7B model, IBM; PyTorch blog "Reducing Model Checkpointing Times by Over 10x with
  PyTorch Distributed Asynchronous Checkpointing", 2024: 148.8 s synchronous, 6.3 s async).
- restart_s = 600 s: detection + relaunch + checkpoint load; PyTorch's default NCCL watchdog
  timeout alone is 10 min (pytorch/pytorch#110947), and checkpoint-restart takes minutes where
  standby-node systems take 20-150 s (TrainMover arXiv 2412.12636, FlashRecovery 2509.03047).
- other_overhead_frac = 0 (evaluations, data-loader stalls, stragglers: not modelled by default).
With these, 16,384 devices get 0.916, against Meta's "higher than 90% effective training time".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from planner.errors import InputError, check_number, clip, number_rule
from planner.units import SECONDS_PER_HOUR

# A19: Llama 3 405B, 54-day snapshot of pre-training on 16,384 H100s (arXiv 2407.21783,
# Sec. 3.3.4): 466 interruptions, 47 planned and 419 unexpected.
LLAMA3_UNEXPECTED_INTERRUPTIONS = 419
LLAMA3_SNAPSHOT_HOURS = 54 * 24  # 1,296 h
LLAMA3_N_DEVICES = 16384
# 419 / (1,296 h × 16,384) = 419 / 21,233,664 device-hours = 1.9733e-5 per device-hour
DEFAULT_INTERRUPTIONS_PER_DEVICE_HOUR = LLAMA3_UNEXPECTED_INTERRUPTIONS / (
    LLAMA3_SNAPSHOT_HOURS * LLAMA3_N_DEVICES)
DEFAULT_CHECKPOINT_WRITE_S = 6.3  # A20: PyTorch DCP async checkpoint stall, 7B (PyTorch blog)
DEFAULT_RESTART_S = 600.0  # A20: 10 min, PyTorch's default NCCL timeout (pytorch#110947)

# Goodput never goes below this (the smallest goodput_frac a TrainingJob accepts,
# planner.plan.workloads.MIN_FRAC), so time = steps × step / goodput stays finite.
GOODPUT_FLOOR_FRAC = 1e-6
# Input bounds: sanity limits far beyond any reported value (the most failure-prone public
# figure is ~1.2e-4 interruptions per device-hour; checkpoints and restarts take minutes).
MAX_INTERRUPTIONS_PER_DEVICE_HOUR = 1.0
MAX_CHECKPOINT_WRITE_S = 86400.0  # a day
MAX_RESTART_S = 86400.0
MAX_OTHER_OVERHEAD_FRAC = 1.0 - GOODPUT_FLOOR_FRAC

# GoodputModel's fields -> their type-and-range rule (planner.errors)
_MODEL_RULES = {
    "interruptions_per_device_hour": number_rule(minimum=0.0,
                                                 maximum=MAX_INTERRUPTIONS_PER_DEVICE_HOUR),
    "checkpoint_write_s": number_rule(positive=True, maximum=MAX_CHECKPOINT_WRITE_S),
    "restart_s": number_rule(minimum=0.0, maximum=MAX_RESTART_S),
    "other_overhead_frac": number_rule(minimum=0.0, maximum=MAX_OTHER_OVERHEAD_FRAC),
}


@dataclass(frozen=True)
class GoodputModel:
    """What a training job loses to interruptions and other overheads (P24-P27).

    interruptions_per_device_hour: λ, job-stopping interruptions per device per hour of running
        (all causes: GPU, memory, network, host, software); the job's rate is λ·n.
    checkpoint_write_s: δ, seconds of training stalled by writing one checkpoint (for an
        asynchronous checkpoint, the blocking copy, not the background upload).
    restart_s: R, seconds from an interruption to training again: detection, relaunch,
        communicator setup and checkpoint load.
    other_overhead_frac: o, share of wall time lost to everything else, whatever the scale
        (evaluations, data-loader stalls, stragglers); goodput is multiplied by (1 − o).
    """

    interruptions_per_device_hour: float
    checkpoint_write_s: float
    restart_s: float
    other_overhead_frac: float = 0.0

    def __post_init__(self) -> None:
        for field, rule in _MODEL_RULES.items():
            # frozen: store the checked float (an int or numpy scalar becomes a float)
            object.__setattr__(self, field, rule(getattr(self, field), field))


DEFAULT_GOODPUT = GoodputModel(interruptions_per_device_hour=DEFAULT_INTERRUPTIONS_PER_DEVICE_HOUR,
                               checkpoint_write_s=DEFAULT_CHECKPOINT_WRITE_S,
                               restart_s=DEFAULT_RESTART_S)


@dataclass(frozen=True)
class GoodputBreakdown:
    """Where one job's wall time goes (P28); the five *_frac sum to 1 (unless goodput_frac is at
    the floor). mtbf_s and interval_s are inf when the model has no interruptions."""

    n_devices: float
    mtbf_s: float  # M, mean time between job interruptions
    interval_s: float  # τ, training seconds between checkpoints (the period is τ + δ)
    checkpoint_frac: float  # writing the checkpoints that survive
    lost_work_frac: float  # training (and partial checkpoints) redone after interruptions
    restart_frac: float  # restarting, interrupted restarts included
    other_overhead_frac: float  # o
    goodput_frac: float  # useful training


def _devices(n_devices: Any) -> np.ndarray:
    """n_devices as a float array (any shape), each a finite number ≥ 1."""
    field = "n_devices"
    arr = np.asarray(n_devices)
    if arr.dtype.kind not in "iuf":  # bools, strings, objects
        raise InputError(field, f"must be a device count (a number ≥ 1), got {clip(n_devices)}")
    arr = arr.astype(np.float64, copy=False)
    if arr.size and not (np.isfinite(arr).all() and arr.min() >= 1.0):
        bad = arr.ravel()[~(np.isfinite(arr.ravel()) & (arr.ravel() >= 1.0))][0]
        raise InputError(field, f"must be ≥ 1 and finite, got {bad:g}")
    return arr


def _check_model(model: Any) -> GoodputModel:
    if not isinstance(model, GoodputModel):
        raise InputError("model", f"must be a GoodputModel, got {clip(model)}")
    return model


def mtbf_s(n_devices: Any, model: GoodputModel = DEFAULT_GOODPUT) -> np.ndarray:
    """P24. Job mean time between interruptions M = 1 / (λ·n), in seconds (inf when λ = 0).

    Independent interruptions at λ per device-hour add up over the n devices of a synchronous
    job, any one of which stops it. Llama 3 (A19): 1,296 h / 419 = 3.09 h on 16,384 GPUs.
    """
    n = _devices(n_devices)
    rate_per_s = _check_model(model).interruptions_per_device_hour / SECONDS_PER_HOUR
    if rate_per_s == 0.0:
        return np.full_like(n, np.inf)
    return 1.0 / (rate_per_s * n)


def _daly_interval_s(mtbf: np.ndarray, write_s: float) -> np.ndarray:
    """P25 on finite M: Daly (2006)'s higher-order optimum, M when δ ≥ 2M."""
    ratio = write_s / (2.0 * mtbf)  # δ / 2M
    tau = np.sqrt(2.0 * write_s * mtbf) * (1.0 + np.sqrt(ratio) / 3.0 + ratio / 9.0) - write_s
    return np.where(ratio < 1.0, tau, mtbf)


def checkpoint_interval_s(n_devices: Any, model: GoodputModel = DEFAULT_GOODPUT) -> np.ndarray:
    """P25. Training seconds between checkpoints τ that maximize goodput (the checkpoint period
    is τ + δ); inf when λ = 0 (never checkpoint for failures).

    Young (1974), "A first order approximation to the optimum checkpoint interval", CACM 17(9):
    τ = √(2δM). Daly (2006), "A higher order estimate of the optimum checkpoint interval for
    restart dumps", FGCS 22(3): τ = √(2δM)·[1 + ⅓√(δ/2M) + ⅑(δ/2M)] − δ for δ < 2M,
    else τ = M; used here. Default model, 16,384 devices: M = 11,135 s, √(2 × 6.3 × 11,135) =
    374.6 s, Daly 370.4 s (6.2 min).
    """
    model = _check_model(model)
    mtbf = mtbf_s(n_devices, model)
    if model.interruptions_per_device_hour == 0.0:
        return mtbf  # all inf
    return _daly_interval_s(mtbf, model.checkpoint_write_s)


def _failure_terms(n_devices: Any, model: GoodputModel) -> tuple[np.ndarray, ...]:
    """(M, τ, useful, checkpoint, lost work, restart) as shares of wall time with o = 0 (P26,
    P28), for finite M. With x = (τ+δ)/M and r = R/M, Daly's expected wall time per checkpoint
    period is E = M·e^r·(e^x − 1), and E/M splits exactly into
    (τ + δ)/M                       useful + checkpoint (the attempt that succeeds),
    (e^x − 1) − x                   failed attempts (lost work),
    (e^x − 1)·(e^r − 1)             restarts (a restart can be interrupted too).
    1/(e^x − 1) is written e^−x / (1 − e^−x) so that huge x underflows to 0 instead of
    overflowing.
    """
    mtbf = mtbf_s(n_devices, model)
    tau = _daly_interval_s(mtbf, model.checkpoint_write_s)
    x = (tau + model.checkpoint_write_s) / mtbf
    r = model.restart_s / mtbf
    per_attempt = np.exp(-x - r) / -np.expm1(-x)  # e^−r / (e^x − 1) = M / E
    useful = tau / mtbf * per_attempt
    checkpoint = model.checkpoint_write_s / mtbf * per_attempt
    lost = np.exp(-r) - x * per_attempt  # e^−r·(1 − x/(e^x − 1))
    restart = -np.expm1(-r)  # (e^r − 1)/e^r
    return mtbf, tau, useful, checkpoint, lost, restart


def goodput_frac(n_devices: Any, model: GoodputModel = DEFAULT_GOODPUT) -> np.ndarray:
    """P26-P27. Useful share of a training job's wall time on n devices, in
    [GOODPUT_FLOOR_FRAC, 1], with the shape of `n_devices`.

    G = (1 − o) · (τ/M) · e^(−R/M) / (e^((τ+δ)/M) − 1) with τ from P25: Daly (2006)'s
    expected wall time M·e^(R/M)·(e^((τ+δ)/M) − 1) per τ of work, exact for exponentially
    distributed interruptions. To first order (Young 1974) G ≈ 1 − δ/τ − (τ/2 + R)/M. Default
    model, 16,384 devices: (370.4/11,135) × e^(−0.0539) / (e^0.0338 − 1) = 0.916 (Meta:
    "higher than 90% effective training time", Llama 3 Sec. 3.3.4). Wall time = steps ×
    step_time_s / G.
    """
    model = _check_model(model)
    if model.interruptions_per_device_hour == 0.0:
        return np.full_like(_devices(n_devices), 1.0 - model.other_overhead_frac)
    useful = _failure_terms(n_devices, model)[2]
    return np.maximum((1.0 - model.other_overhead_frac) * useful, GOODPUT_FLOOR_FRAC)


def goodput_breakdown(n_devices: Any, model: GoodputModel = DEFAULT_GOODPUT) -> GoodputBreakdown:
    """P28. Where the wall time of one job on `n_devices` devices goes (a number ≥ 1)."""
    model = _check_model(model)
    n = check_number(n_devices, "n_devices", minimum=1.0)
    keep = 1.0 - model.other_overhead_frac
    if model.interruptions_per_device_hour == 0.0:
        return GoodputBreakdown(n_devices=n, mtbf_s=np.inf, interval_s=np.inf,
                                checkpoint_frac=0.0, lost_work_frac=0.0, restart_frac=0.0,
                                other_overhead_frac=model.other_overhead_frac, goodput_frac=keep)
    mtbf, tau, useful, checkpoint, lost, restart = (float(v) for v in _failure_terms(n, model))
    return GoodputBreakdown(
        n_devices=n, mtbf_s=mtbf, interval_s=tau, checkpoint_frac=keep * checkpoint,
        lost_work_frac=keep * lost, restart_frac=keep * restart,
        other_overhead_frac=model.other_overhead_frac,
        goodput_frac=max(keep * useful, GOODPUT_FLOOR_FRAC))
