"""Sweeps: rank a job once per value of one of its numeric fields (sequence length, tokens,
device count, load, ...) and return one tidy table, one row per (value, device).

Each value rebuilds the job through its validators (a value the job refuses is an InputError
naming `values[i]` before any ranking runs), then `rank` picks each device's best plan for it.
The loop runs over the values only; each `rank` call is vectorized over its candidates.
"""

from __future__ import annotations

import numbers
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from planner.errors import InputError, check_number, clip, one_line
from planner.hardware.catalog import suggest
from planner.plan.cost import CostOptions
from planner.plan.ranking import rank
from planner.plan.workloads import InferenceJob, TrainingJob

# Most values one sweep takes: each value is one rank() call (~0.1 s for a few devices, ~1 s
# for the whole catalog), so 200 values stay within minutes.
MAX_SWEEP_VALUES = 200
_OTHER_LOAD = {"requests_per_s": "concurrent_requests", "concurrent_requests": "requests_per_s"}


def _is_numeric(annotation: Any) -> bool:
    """int, float, int | None or float | None (bool is not a number here)."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and args[0] in (int, float)
    return False


def sweepable_fields(job: TrainingJob | InferenceJob | type[TrainingJob] | type[InferenceJob]
                     ) -> list[str]:
    """The job's numeric fields, in declaration order: the names `sweep(over=...)` takes."""
    cls = job if isinstance(job, type) else type(job)
    return [name for name, f in cls.model_fields.items() if _is_numeric(f.annotation)]


def _check_over(job: TrainingJob | InferenceJob, over: Any) -> str:
    fields = sweepable_fields(job)
    allowed = f"numeric fields of {type(job).__name__}: {', '.join(fields)}"
    if not isinstance(over, str):
        raise InputError("over", f"must be a field name, got {clip(over)}; {allowed}")
    if over in fields:
        return over
    if over in type(job).model_fields:
        raise InputError("over", f"{over!r} is not a numeric field; {allowed}")
    close = suggest(over, fields, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InputError("over", f"unknown field {clip(over)}{hint}; {allowed}")


def _check_values(values: Any) -> list[int | float]:
    """A non-empty sequence of at most MAX_SWEEP_VALUES distinct finite numbers (numpy
    scalars become Python numbers; the job's own rules check each value's type and range)."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, str | bytes | dict) or not isinstance(values, Sequence):
        raise InputError("values", f"must be a list of numbers, got {clip(values)}")
    if not values:
        raise InputError("values", "give at least one value")
    if len(values) > MAX_SWEEP_VALUES:
        raise InputError("values", f"{len(values):,} values; allowed: at most "
                         f"{MAX_SWEEP_VALUES} in one sweep")
    out: list[int | float] = []
    first: dict[float, int] = {}
    for i, v in enumerate(values):
        if isinstance(v, np.generic):
            v = v.item()
        x = check_number(v, f"values[{i}]")
        if x in first:
            raise InputError(f"values[{i}]", f"{v!r} is given twice (values[{first[x]}] and "
                             f"values[{i}]); give each value once")
        first[x] = i
        out.append(int(v) if isinstance(v, numbers.Integral) else x)
    return out


def _job_at(job: TrainingJob | InferenceJob, over: str, value: int | float, i: int
            ) -> TrainingJob | InferenceJob:
    """The job with `over` set to `value`, validated again (a ModelSpec passes unchanged).
    The two serving loads are alternatives: sweeping one drops the other."""
    fields = {name: getattr(job, name) for name in job.model_fields_set
              if name != _OTHER_LOAD.get(over)}
    try:
        return type(job)(**{**fields, over: value})
    except (ValidationError, ValueError) as err:
        text = one_line(err) if isinstance(err, ValidationError) else str(err)
        text = text.removeprefix(f"{over}: ")
        raise InputError(f"values[{i}]", f"{over} = {value!r}: {text}") from None


def sweep(job: TrainingJob | InferenceJob, over: str, values: Sequence[float], *,
          devices: Iterable[str] | None = None, kinds: Iterable[str] | None = None,
          objective: str = "cost", catalog: Any = None, cost: CostOptions | None = None,
          progress: bool = False) -> pd.DataFrame:
    """Rank `job` once per value of its numeric field `over`; one row per (value, device).

    Columns: `over` (the field's name), `value` (the field's validated value: an int for a
    count or length), then rank()'s columns (rank within the value, device, kind, feasible,
    reason, n_devices, tp, pp, dp, time_s, cost_usd, energy_j, mfu, pareto, ...), in SI
    units; rows follow `values` in the given order, then rank() order. For a serving job
    time_s is the request latency and cost_usd / energy_j are per million tokens, as in rank.

    `over` is any numeric field (`sweepable_fields(job)`): seq_len, n_tokens,
    global_batch_size, n_devices, deadline_s, ... for training; prompt_len, output_len,
    requests_per_s, concurrent_requests, batch_size, ttft_s, tpot_s, ... for serving. `values`
    is a list of 1 to MAX_SWEEP_VALUES distinct finite numbers. Every value is checked before
    any ranking: a value the job refuses raises InputError "values[3]: seq_len = 0: must be
    ≥ 1, got 0"; a field that is unknown or not numeric raises InputError naming `over` and
    listing the numeric fields. `devices`, `kinds`, `objective`, `catalog` and `cost` are
    rank()'s. `progress=True` shows a tqdm progress bar on stderr. Sweeping one serving load
    (requests_per_s, concurrent_requests) replaces the other one the job gives.
    """
    if not isinstance(job, TrainingJob | InferenceJob):
        raise InputError("job", f"must be a TrainingJob or InferenceJob, got {clip(job)}")
    over = _check_over(job, over)
    jobs = [_job_at(job, over, v, i) for i, v in enumerate(_check_values(values))]
    if catalog is None:
        from planner.hardware.catalog import load_catalog

        catalog = load_catalog()
    from tqdm.auto import tqdm

    frames = []
    for job_v in tqdm(jobs, desc=f"sweep {over}", unit="value", disable=not progress,
                      leave=False):
        df = rank(job_v, catalog, devices=devices, kinds=kinds, objective=objective,
                  cost=cost)
        df.insert(0, "value", getattr(job_v, over))
        df.insert(0, "over", over)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
