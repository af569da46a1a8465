"""Ranking: the best configuration per device for an objective, the time-cost Pareto front,
and the reasons written out with the numbers behind them (docs/planning.md P18-P20).

planner.plan.search evaluates every candidate; this module picks per device (feasible first,
by the objective among the plans that meet every constraint: a deadline, latency targets,
max_devices), marks the Pareto front, explains infeasible devices and, when no device is
feasible, the whole request (`infeasible_summary`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from planner.hardware.kernels import peak_dtype_chain
from planner.model.precision import PrecisionPolicy, precision_policy
from planner.plan.cost import CostOptions
from planner.plan.reasons import (
    INFER_REASONS,
    NON_FINITE_TEXT,
    TRAIN_REASONS,
    InferReason,
    TrainReason,
)
from planner.plan.search import (
    MAX_DEVICE_COUNT,
    _check,
    _device_columns,
    _DeviceTable,
    _infer_frame,
    _infer_grid,
    _table_for,
    _train_chunks,
    _train_frame,
    checked_rows,
    pareto_mask,
)
from planner.plan.workloads import InferenceJob, TrainingJob
from planner.units import SECONDS_PER_HOUR, bytes_str, duration_str

_FIT_CODE_TRAIN = TrainReason.NO_FIT
_FIT_CODE_INFER = InferReason.NO_FIT


def _pick(code: np.ndarray, valid: np.ndarray, keys: Sequence[np.ndarray],
          closeness: np.ndarray) -> tuple[int, bool, int]:
    """(flat index of a device's chosen candidate, feasible, which key chose it).

    Feasible: the minimum of the first of `keys` that is finite for some feasible candidate
    (the objective, then its stand-ins where it is unknown, e.g. no price). None feasible:
    the candidate that got furthest through the checks, closest by `closeness`."""
    ok = valid & (code == 0)
    if ok.any():
        for level, key in enumerate(keys):
            k = np.where(ok & np.isfinite(key), key, np.inf)
            if np.isfinite(k).any():
                return int(np.argmin(k)), True, level
        return int(np.flatnonzero(ok)[0]), True, len(keys)
    furthest = np.where(valid, code, -1).max()
    c = np.where(valid & (code == furthest), np.nan_to_num(closeness, nan=np.inf), np.inf)
    if not np.isfinite(c).any():
        c = np.where(valid & (code == furthest), 0.0, np.inf)
    return int(np.argmin(c)), False, 0


def _keys(objective: str, basis: str, *, time_s, money: dict, device_s
          ) -> tuple[list[np.ndarray], list[str]]:
    """The key a device's configuration is chosen by, then its stand-ins where the key is
    unknown, with the note each stand-in adds to the row. A cost ranking never falls back to
    speed: a device without a price on the chosen basis is chosen by its ownership cost (when
    the basis is cloud and it has a purchase price), else by device-hours (docs/planning.md P20)."""
    if objective == "time":
        return [time_s], [""]
    if objective == "energy":
        return [money["energy_j"], time_s], ["", "chosen by time: no energy (TDP unknown)"]
    keys, notes = [money["cost_usd"]], [""]
    if basis == "cloud":
        keys.append(money["ownership_cost_usd"])
        notes.append("chosen by ownership cost: no cloud price")
    keys.append(device_s)
    notes.append("chosen by device-hours: no price")
    return keys, notes


def _joined(*notes: Any) -> str:
    return "; ".join(str(n) for n in notes if isinstance(n, str) and n)


def _train_reason_text(job: TrainingJob, table: _DeviceTable, row: pd.Series) -> str:
    code = TrainReason(TRAIN_REASONS.index(str(row["reason"])))
    i = table.position[str(row["device"])]
    extra = (f" cp={row['cp']}" if row["cp"] > 1 else "") + (
        f" v={row['virtual_stages']}" if row["virtual_stages"] > 1 else "") + (
        f" ep={row['ep']}" if row["ep"] > 1 else "")
    layout = (f"tp={row['tp']} pp={row['pp']}{extra} dp={row['dp']} zero={row['zero_stage']} "
              f"micro-batch={row['micro_batch_size']} recompute={row['recompute']}")
    if code is TrainReason.NO_TRAINING_STACK:
        return table.devices[i].no_training_text()
    if code is TrainReason.NO_PEAK:
        return _no_peak_text(precision_policy(job.precision))
    if code is TrainReason.NO_MEMORY_BW:
        return "memory bandwidth unknown in the catalog"
    if code is TrainReason.TP_BEYOND_DOMAIN:
        return f"tp={row['tp']} exceeds the scale-up domain of {int(table.domain[i])} devices"
    if code is TrainReason.TP_HEADS:
        return _heads_text(job.model, int(row["tp"]), serving=False)
    if code is TrainReason.BATCH_NOT_DIVISIBLE:
        return (f"global batch {job.global_batch_size} cannot be split as dp × micro-batch × "
                f"micro-batches on any layout searched")
    if code is TrainReason.ZERO_WITH_PP:
        return (f"ZeRO stage {row['zero_stage']} with pp={row['pp']}: DeepSpeed's pipeline "
                "engine refuses ZeRO-2/3 and Megatron-LM's distributed optimizer shards only "
                "the optimizer state (ZeRO-1); use zero_stage <= 1 with pipelining")
    if code is TrainReason.INTERLEAVE_MICRO_BATCHES:
        return (f"interleaved pipeline ({layout}): {row['n_micro_batches']:g} micro-batches "
                f"is not a multiple of pp={row['pp']} (Megatron-LM's interleaved schedule "
                "requires it)")
    if code is TrainReason.EP_NOT_DIVIDING:
        return (f"ep={row['ep']} does not divide the {row['dp']} data-parallel ranks ({layout}); "
                "the expert-parallel group is taken from them")
    if code is TrainReason.NO_LINK_BW:
        return (f"needs a link the catalog has no bandwidth for ({layout} on "
                f"{row['n_devices']} devices; scale-up domain {int(table.domain[i])})"
                + _straddle_text(int(row["tp"]), row["n_devices"], table.domain[i]))
    if code is TrainReason.NO_FIT:
        usable = job.usable_memory_frac * table.memory[i]
        return (f"does not fit: needs {bytes_str(row['mem_per_device_bytes'])} per device at "
                f"best ({layout} on {row['n_devices']} devices); {bytes_str(usable)} usable of "
                f"{bytes_str(table.memory[i])}")
    if code is TrainReason.NON_FINITE:
        return _non_finite_text(row, layout)
    if code is TrainReason.DEADLINE:
        return (f"misses the deadline of {duration_str(job.deadline_s or 0.0)}: fastest is "
                f"{duration_str(row['time_s'])} on {row['n_devices']} devices ({layout})")
    return ""


def _offer_text(table: _DeviceTable, row: pd.Series) -> str:
    """A16: which offer prices a row that is larger than the default price's offer."""
    i = table.position[str(row["device"])]
    prices, n = table.prices, int(row["n_devices"])
    if row["price_at_scale"]:
        text = f"{n:,} devices priced at the larger offer: {prices.scale_note[i]}"
        offer = prices.scale_offer_devices[i]
    else:
        text, offer = "", prices.offer_devices[i]
    if row["price_beyond_offer"]:
        text = _joined(text, f"no price in the catalog is offered for {n:,} devices: the "
                             f"{row['cost_price_provider']} {row['cost_price_contract']} price "
                             f"used serves up to {offer:,.0f} (flagged; a cluster of this size "
                             "is priced by quote)")
    return text


def _no_peak_text(policy: PrecisionPolicy) -> str:
    """NO_PEAK: the dtypes the policy computes in, none of which the device has."""
    chain = "/".join(peak_dtype_chain(policy.compute_dtype))
    return (f"no dense {chain} peak in the catalog: precision {policy.name!r} computes in "
            f"{policy.compute_dtype} on every device")


def _with_scale_note(text: str, row: pd.Series) -> str:
    """An infeasible row that does not fit or misses the deadline may do so only because the
    device was limited to one scale-up domain: say so after the reason."""
    code = TRAIN_REASONS.index(str(row["reason"]))
    if row["scale_note"] and code in (TrainReason.NO_FIT, TrainReason.DEADLINE):
        return f"{text}; {row['scale_note']}"
    return text


def serving_layout_text(row: pd.Series) -> str:
    """"tp=4 pp=2 batch=64": a serving row's layout, pp and ep only where above 1."""
    parts = [f"tp={row['tp']}"]
    parts += [f"{axis}={row[axis]}" for axis in ("pp", "ep") if int(row.get(axis, 1)) > 1]
    return " ".join([*parts, f"batch={row['batch_size']}"])


def _infer_reason_text(job: InferenceJob, table: _DeviceTable, row: pd.Series) -> str:
    code = InferReason(INFER_REASONS.index(str(row["reason"])))
    i = table.position[str(row["device"])]
    layout = serving_layout_text(row)
    if code is InferReason.NO_PEAK:
        return _no_peak_text(precision_policy(job.precision, mode="inference"))
    if code is InferReason.TP_BEYOND_DOMAIN:
        return f"tp={row['tp']} exceeds the scale-up domain of {int(table.domain[i])} devices"
    if code is InferReason.TP_HEADS:
        return _heads_text(job.model, int(row["tp"]), serving=True)
    if code is InferReason.NO_LINK_BW:
        return (f"needs a link the catalog has no bandwidth for ({layout}; scale-up domain "
                f"{int(table.domain[i])})"
                + _straddle_text(int(row["tp"]), row["n_devices"], table.domain[i]))
    if code is InferReason.NO_FIT:
        total = table.memory[i] + table.memory2[i]
        first = job.usable_memory_frac * table.memory[i]
        kv = float(row["kv_cache_mem_bytes"])
        if table.memory2[i] and kv > first:  # P19b: the KV cache stays in the first tier
            return (f"does not fit: the KV cache needs {bytes_str(kv)} per device at best "
                    f"({layout}) in the fast memory; {bytes_str(first)} usable of "
                    f"{bytes_str(table.memory[i])} (the slower {bytes_str(table.memory2[i])} "
                    "holds only weights)")
        second = (f" (with {bytes_str(table.memory2[i])} of slower memory)"
                  if table.memory2[i] else "")
        return (f"does not fit: needs {bytes_str(row['mem_per_device_bytes'])} per device at "
                f"best ({layout}); {bytes_str(job.usable_memory_frac * total)} usable of "
                f"{bytes_str(total)}{second}")
    if code is InferReason.NON_FINITE:
        return _non_finite_text(row, layout)
    if code is InferReason.TTFT:
        return (f"misses the time-to-first-token target {job.ttft_s:g} s at "
                f"p{job.latency_percentile:g}: best {_at_percentile(row, 'ttft'):.3g} s "
                f"({layout})")
    if code is InferReason.TPOT:
        return (f"misses the time-per-output-token target {job.tpot_s:g} s at "
                f"p{job.latency_percentile:g}: best {_at_percentile(row, 'tpot'):.3g} s "
                f"({layout})")
    if code is InferReason.MAX_DEVICES:
        n = int(row["n_devices"])
        need = f"{n:,}" if n < MAX_DEVICE_COUNT else f"over {MAX_DEVICE_COUNT:.3g}"
        return f"needs {need} devices, more than max_devices={job.max_devices}"
    return code.text


def _at_percentile(row: pd.Series, what: str) -> float:
    """The row's TTFT or TPOT at the job's latency percentile (what the search checked)."""
    return float(row[f"{what}_at_percentile_s"])


def _non_finite_text(row: pd.Series, layout: str) -> str:
    """Reason NON_FINITE with the numbers that overflowed, and where they come from."""
    return (f"{NON_FINITE_TEXT}: time_s={row['time_s']:.3g}, cost_usd={row['cost_usd']:.3g}, "
            f"energy_j={row['energy_j']:.3g} on {row['n_devices']} devices ({layout}); check "
            "extreme inputs such as compute_frac, goodput_frac or efficiency_overrides")


def _heads_text(spec: Any, tp: int, *, serving: bool) -> str:
    """Why t cannot split the heads (reason code 4)."""
    if spec.n_heads % tp:
        return f"tp={tp} does not divide the {spec.n_heads} attention heads of {spec.name}"
    k = spec.kv_heads
    if serving:
        return (f"tp={tp} neither divides nor is a multiple of the {k} KV heads of "
                f"{spec.name}")
    if tp > k:
        return f"tp={tp} exceeds the {k} KV heads of {spec.name}"
    return f"tp={tp} does not divide the {k} KV heads of {spec.name}"


def _straddle_text(tp: int, n_devices: Any, domain: float) -> str:
    """A pinned t that does not tile the scale-up domain needs the scale-out link (P9b)."""
    if tp > 1 and domain % tp and n_devices > domain:
        return (f"; tp={tp} does not divide the scale-up domain of {int(domain)}, so its "
                "collectives cross domains over the scale-out network")
    return ""



def _scale_notes(job: TrainingJob, table: _DeviceTable, df: pd.DataFrame) -> list[str]:
    """What limits a device's scale: its scale-out bandwidth is not in the catalog, so it was
    searched only up to one scale-up domain (a candidate needing more is infeasible, "link
    bandwidth unknown"); or a pinned t that does not tile the domain sends its collectives over
    the scale-out network (P9b)."""
    notes = []
    for device, tp, n in zip(df["device"].astype(str), df["tp"], df["n_devices"], strict=True):
        i = table.position[device]
        domain = table.domain[i]
        parts = []
        if np.isnan(table.out_bw[i]) and domain < (job.n_devices or job.max_devices):
            parts.append(f"scale-out bandwidth unknown: at most {int(domain)} "
                         f"device{'s' if domain != 1 else ''} (one scale-up domain)")
        straddle = _straddle_text(int(tp), n, domain)
        if straddle and not np.isnan(table.out_bw[i]):
            parts.append(straddle.removeprefix("; "))
        notes.append("; ".join(parts))
    return notes


# A12: a training job ranked by cost with no deadline is held to this wall-clock horizon, so
# that "cheapest" is not a plan of years on a handful of devices (docs/planning.md).
DEFAULT_COST_HORIZON_S = 90 * 86400.0
HORIZON_NOTE = "the default horizon of a cost ranking; give a deadline to change it"

RANK_COLUMNS_FIRST = ["device", "kind", "feasible", "reason", "n_devices", "tp", "pp", "dp",
                      "time_s", "cost_usd", "energy_j", "mfu", "pareto"]


def rank(job: TrainingJob | InferenceJob, catalog: Any = None, *,
         devices: Iterable[str] | None = None, kinds: Iterable[str] | None = None,
         objective: str = "time", cost: CostOptions | None = None) -> pd.DataFrame:
    """The best configuration per device, sorted by `objective` ("time", "cost", "energy").

    Feasible devices come first, best first; a device with no price is ranked by time after the
    priced ones when ranking by cost (cost_usd NaN, `cost_note` says why). Its configuration
    is never chosen by speed: by ownership cost when only the cloud price is missing, else by
    fewest device-hours, and `cost_note` says which. Infeasible devices follow with their
    closest candidate and a reason. Each device's configuration is the best by `objective`
    among those meeting the constraints (with a deadline: objective="time" gives its fastest
    plan within it, "cost" its cheapest); ranked by cost without one, a training job is held
    to DEFAULT_COST_HORIZON_S (90 days, A12), and a device that cannot meet it says so.
    Columns start with device, kind, feasible, reason, n_devices, tp, pp, dp, time_s,
    cost_usd, energy_j, mfu, pareto (on the time-cost front); the rest are search()'s columns.
    For inference, time_s is the request latency and cost_usd / energy_j are per million
    output tokens. Arguments are checked as search()'s (InputError naming the parameter), and
    `objective` must be one of "time", "cost", "energy".
    """
    cost = _check(job, objective, cost)
    horizon = (isinstance(job, TrainingJob) and objective == "cost" and job.deadline_s is None)
    if horizon:
        job = job.model_copy(update={"deadline_s": DEFAULT_COST_HORIZON_S})
    table = _table_for(job, catalog, devices, kinds, cost)
    rows: list[pd.DataFrame] = []
    if isinstance(job, TrainingJob):
        for chunk, axes, _ in _train_chunks(job, table, cost):
            full = chunk.shape
            q, money = chunk.q, chunk.cost
            time_s = np.broadcast_to(q.time_s, full)
            n = np.broadcast_to(axes.shaped()["n"], full)
            # the objective among the plans that meet the constraints (a deadline is one)
            keys, key_notes = _keys(objective, cost.basis, time_s=time_s, money=money,
                                    device_s=time_s * n)
            keys = [np.broadcast_to(k, full) for k in keys]
            closeness = np.where(chunk.code == _FIT_CODE_TRAIN,
                                 np.broadcast_to(q.mem_per_device_bytes, full)
                                 / np.broadcast_to(_device_columns(table, slice(
                                     chunk.start, chunk.start + full[0]), 5).memory_bytes, full),
                                 time_s)
            picks, levels = [], []
            for d in range(full[0]):
                flat, _, level = _pick(chunk.code[d].ravel(), chunk.valid[d].ravel(),
                                       [k[d].ravel() for k in keys], closeness[d].ravel())
                picks.append(d * int(np.prod(full[1:])) + flat)
                levels.append(key_notes[level] if level < len(key_notes) else "")
            rows.append(_train_frame(chunk, axes, table, np.array(picks))
                        .assign(_chosen_by=levels))
        df = pd.concat(rows, ignore_index=True) if len(rows) > 1 else rows[0]
        checked_rows(df, NON_FINITE_TEXT)
        df["scale_note"] = _scale_notes(job, table, df)
        reasons = [_with_scale_note(_train_reason_text(job, table, row), row)
                   if not row["feasible"] else "" for _, row in df.iterrows()]
    else:
        shape, valid, q, money, code, axes = _infer_grid(job, table, cost)
        latency = np.broadcast_to(q.latency_s, shape)
        device_s = q.n_devices * q.hours_per_million_tokens * SECONDS_PER_HOUR
        keys, key_notes = _keys(objective, cost.basis, time_s=latency, money=money,
                                device_s=device_s)
        keys = [np.broadcast_to(k, shape) for k in keys]
        mem_ratio = np.broadcast_to(q.mem_per_device_bytes, shape) / np.broadcast_to(
            _device_columns(table, slice(None), len(shape)).memory_bytes, shape)
        closeness = np.where(code == _FIT_CODE_INFER, mem_ratio,
                             np.where(code == InferReason.TTFT,
                                      np.broadcast_to(q.ttft_at_percentile_s, shape),
                                      np.where(code == InferReason.TPOT,
                                               np.broadcast_to(q.tpot_at_percentile_s, shape),
                                               np.broadcast_to(q.n_devices, shape))))
        picks, chosen_by = [], []
        per = int(np.prod(shape[1:]))
        for d in range(shape[0]):
            flat, _, level = _pick(code[d].ravel(), valid[d].ravel(),
                                   [k[d].ravel() for k in keys], closeness[d].ravel())
            picks.append(d * per + flat)
            chosen_by.append(key_notes[level] if level < len(key_notes) else "")
        df = _infer_frame(shape, q, money, code, axes, table, np.array(picks)).assign(
            _chosen_by=chosen_by)
        checked_rows(df, NON_FINITE_TEXT)
        reasons = [_infer_reason_text(job, table, row) if not row["feasible"] else ""
                   for _, row in df.iterrows()]
    if horizon:
        reasons = [f"{r} ({HORIZON_NOTE})" if r.startswith("misses the deadline") else r
                   for r in reasons]
    df["reason"] = reasons
    offers = [_offer_text(table, row) if cost.basis == "cloud" else ""
              for _, row in df.iterrows()]
    df["cost_note"] = [_joined(note, offer, by if ok else "") for note, offer, by, ok in zip(
        df["cost_note"].astype(object), offers, df.pop("_chosen_by"), df["feasible"],
        strict=True)]
    df["pareto"] = pareto_mask(df["time_s"], df["cost_usd"], df["feasible"])
    order_key = df[{"time": "time_s", "cost": "cost_usd", "energy": "energy_j"}[objective]]
    df = df.assign(_infeasible=~df["feasible"], _key=order_key.fillna(np.inf),
                   _time=df["time_s"].fillna(np.inf))
    df = df.sort_values(["_infeasible", "_key", "_time"], kind="stable").drop(
        columns=["_infeasible", "_key", "_time"]).reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    rest = [c for c in df.columns if c not in RANK_COLUMNS_FIRST and c != "rank"]
    return df[["rank", *RANK_COLUMNS_FIRST, *rest]]


def infeasible_summary(job: TrainingJob | InferenceJob, df: pd.DataFrame) -> str:
    """One line for a ranking with no feasible device: the constraint that failed and how far
    the best plan is from it ("" when some device is feasible). A deadline: "no device meets
    the deadline of 7 d: the fastest plan takes 18.8 d (2.7×) on nvidia_h200_sxm"; a latency
    target at a percentile likewise; otherwise the first-ranked device's own reason (the one
    that got furthest through the checks)."""
    if df.empty or df["feasible"].any():
        return ""
    reasons = df["reason"].astype(str)

    def closest(mask: pd.Series, column: str) -> pd.Series:
        return df[mask].sort_values(column, kind="stable").iloc[0]

    deadline = reasons.str.startswith("misses the deadline")
    if isinstance(job, TrainingJob) and deadline.any() and job.deadline_s:
        best = closest(deadline, "time_s")
        return (f"no device meets the deadline of {duration_str(job.deadline_s)}: the fastest "
                f"plan takes {duration_str(best['time_s'])} "
                f"({best['time_s'] / job.deadline_s:.2g}×) on {best['n_devices']:,} "
                f"{best['device']}")
    if isinstance(job, InferenceJob):
        for what, target, label in (("ttft", job.ttft_s, "time-to-first-token"),
                                    ("tpot", job.tpot_s, "time-per-output-token")):
            hit = reasons.str.contains(f"misses the {label} target")
            if target and hit.any():
                column = f"{what}_at_percentile_s"
                best = closest(hit, column)
                return (f"no device meets the p{job.latency_percentile:g} {label} target of "
                        f"{duration_str(target)}: the best is {duration_str(best[column])} "
                        f"({best[column] / target:.2g}×) on {best['device']}")
    return f"no device can run this workload: {df.iloc[0]['device']}: {reasons.iloc[0]}"
