"""Does a model fit on my GPU? One device id and a count in, one answer out: whether a serving
replica of the model fits, how many sequences it holds beside the weights, the longest context
one sequence can have, and the decode speed at that batch.

Nothing here is a formula of its own: every number comes from the serving model that
`planner.search` ranks with (planner.plan.search, steptime, memory). Fit, batch and speed are
read from search rows of pinned candidates (tp, pp, ep = 1, batch_size = b, and as many users
as the replica has slots, b × pp); the largest batch is found by doubling b until a row is
infeasible and bisecting between the last two (about 2·log2(max batch) calls, ~10 ms each),
the longest context by the same search over prompt_len at batch 1. This assumes feasibility
falls as the batch or the context grows, which holds for memory (the KV cache grows with both).
The KV bytes per token come from planner.plan.steptime.inference_profile, the profile search
itself uses, at the job's KV dtype (InferenceJob.kv_dtype).

Layout: `n_devices` devices serve as one tensor-parallel replica, tp = n_devices; a count that
does not divide the heads, or spans more than one scale-up domain, does not fit, and the
reason says so. Where the serving model has pipeline parallelism (an InferenceJob `pp` field),
every tp × pp = n_devices split is tried and the one holding the largest batch is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from planner.errors import check_int
from planner.hardware.catalog import Device
from planner.model.spec import MAX_SEQ_LEN, ModelSpec
from planner.model.spec import model as preset
from planner.plan.reasons import InferReason
from planner.plan.search import (
    catalog_device,
    infer_tp_divides_heads,
    search,
    serving_profile,
)
from planner.plan.workloads import MAX_DEVICES_LIMIT, MAX_SEQUENCES, InferenceJob

DEFAULT_PROMPT_LEN = 1024  # tokens in: the Plan page's and README's serving example
DEFAULT_OUTPUT_LEN = 256  # tokens out


@dataclass(frozen=True)
class FitResult:
    """Whether `model` fits for serving on `n_devices` × `device`, and what it holds there.
    SI units; NaN for the speeds when it does not fit."""

    model: str
    device: str  # catalog id
    device_name: str  # vendor and product name, for people
    n_devices: int
    precision: str
    kv_cache_precision: str | None  # the KV cache's dtype; None = the activation dtype
    prompt_len: int
    output_len: int
    fits: bool  # one sequence of prompt_len + output_len tokens fits beside the weights
    tp: int  # tensor-parallel degree of the replica
    pp: int  # pipeline stages of the replica (1 where the serving model has none)
    # sequences of prompt_len + output_len tokens the replica holds beside the weights (with
    # pp stages: pp micro-batches in flight); 0 if none
    max_batch_size: int
    max_context_len: int  # longest prompt + output_len one sequence can hold; 0 if none
    tokens_per_s: float  # decode output tokens/s of the replica at max_batch_size, all users
    tokens_per_s_per_user: float  # one sequence's output tokens/s there (1 / tpot_s)
    tpot_s: float  # time per output token at max_batch_size
    ttft_s: float  # time to first token at max_batch_size
    weight_bytes: float  # weights per device
    kv_bytes_per_token: float  # KV cache per token of context, whole model (all layers)
    usable_memory_bytes: float  # per device: usable_memory_frac × memory (both tiers)
    reason: str  # "" when it fits; otherwise one line with the numbers

    def to_dict(self) -> dict[str, Any]:
        """The row as plain Python (JSON-safe: NaN becomes None), SI units."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v
                for k, v in asdict(self).items()}

    def to_frame(self) -> pd.DataFrame:
        """One row with unit-suffixed columns, for planner.to_csv."""
        return pd.DataFrame([asdict(self)])


@dataclass(eq=False)
class _Layout:
    """One replica layout and the search rows it produced, keyed (batch, prompt_len)."""

    tp: int
    pp: int
    rows: dict[tuple[int, int], pd.Series | None] = field(default_factory=dict)


def _layouts(n_devices: int, n_layers: int) -> list[_Layout]:
    """Splits of `n_devices` into one replica: tensor parallel first, then every
    tp × pp = n_devices with pp ≤ n_layers."""
    return [_Layout(n_devices, 1)] + [_Layout(n_devices // p, p)
                                      for p in range(2, min(n_devices, n_layers) + 1)
                                      if n_devices % p == 0]


def _largest(ok: Callable[[int], bool], lo: int, cap: int) -> int:
    """The largest n in [lo, cap] with ok(n), given ok(lo) and ok falling as n grows: double
    from lo until ok fails (or cap is reached), then bisect between the last two."""
    hi = lo * 2
    while hi < cap and ok(hi):
        lo, hi = hi, hi * 2
    if hi >= cap:
        if lo >= cap or ok(cap):
            return cap
        hi = cap
    while hi - lo > 1:  # ok(lo), not ok(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB"


class _Fitter:
    """Search rows of pinned serving candidates for one job on one device."""

    def __init__(self, fields: dict[str, Any], device: Device, n_devices: int,
                 catalog: Any) -> None:
        self.fields = fields  # the job's fields but prompt_len and the layout
        self.job = InferenceJob(**fields, concurrent_requests=1)  # the job as asked
        self.device, self.n_devices, self.catalog = device, n_devices, catalog

    def row(self, layout: _Layout, *, batch: int, prompt_len: int) -> pd.Series | None:
        """The search row of `layout` at `batch` sequences of prompt_len + output_len tokens;
        None when the search has no such candidate (a split it does not model)."""
        key = (batch, prompt_len)
        if key not in layout.rows:
            layout.rows[key] = self._search(layout, batch=batch, prompt_len=prompt_len)
        return layout.rows[key]

    def _search(self, layout: _Layout, *, batch: int, prompt_len: int) -> pd.Series | None:
        # the replica is the n_devices given: no expert-parallel groups
        pin: dict[str, Any] = dict(tp=layout.tp, pp=layout.pp, ep=1)
        # as many users as the replica has slots (batch per micro-batch × pp in flight)
        job = InferenceJob(**{**self.fields, "prompt_len": prompt_len}, **pin,
                           batch_size=batch, concurrent_requests=batch * layout.pp,
                           max_batch_size=batch, max_devices=MAX_DEVICES_LIMIT)
        df = search(job, self.catalog, devices=[self.device.id])
        df = df[(df["tp"] == layout.tp) & (df["pp"] == layout.pp) & (df["batch_size"] == batch)]
        if df.empty:
            return None
        # one candidate when everything is pinned; should the serving model add a choice,
        # its best feasible row
        return df.sort_values(["feasible", "tokens_per_s_per_device"], ascending=False).iloc[0]

    def ok(self, layout: _Layout, *, batch: int, prompt_len: int | None = None) -> bool:
        row = self.row(layout, batch=batch, prompt_len=prompt_len or self.job.prompt_len)
        return row is not None and bool(row["feasible"])

    def max_batch(self, layout: _Layout) -> int:
        """Most sequences of the job's length per micro-batch that fit (given that one
        does); the replica holds pp such micro-batches."""
        return _largest(lambda b: self.ok(layout, batch=b), 1, MAX_SEQUENCES)

    def max_context(self, layout: _Layout) -> int:
        """Longest prompt + output_len one sequence can hold, up to the model's max_seq_len
        (or the job's context when longer; at most MAX_SEQ_LEN); 0 when not even a 1-token
        prompt fits."""
        job = self.job
        p0 = job.prompt_len

        def ok(p: int) -> bool:
            return self.ok(layout, batch=1, prompt_len=p)

        if ok(p0):
            context = min(max(job.model.max_seq_len, job.context_len), MAX_SEQ_LEN)
            cap = context - job.output_len
            longest = _largest(ok, p0, cap)
        elif p0 > 1 and ok(1):
            longest = _largest(ok, 1, p0 - 1)
        else:
            return 0
        return longest + job.output_len

    def speed(self, layout: _Layout, batch: int) -> dict[str, float]:
        """Decode speed of the replica at `batch`: all users, per user, TPOT, TTFT."""
        row = self.row(layout, batch=batch, prompt_len=self.job.prompt_len) if batch else None
        nan = float("nan")
        if row is None:
            return dict(tokens_per_s=nan, tokens_per_s_per_user=nan, tpot_s=nan, ttft_s=nan)
        devices_per_replica = float(row["n_devices"]) / float(row["replicas"])
        tpot = float(row["tpot_s"])
        return dict(tokens_per_s=float(row["tokens_per_s_per_device"]) * devices_per_replica,
                    tokens_per_s_per_user=1.0 / tpot if tpot > 0 else nan, tpot_s=tpot,
                    ttft_s=float(row["ttft_s"]))

    def usable_bytes(self) -> float:
        d = self.device
        return self.job.usable_memory_frac * (d.memory_bytes + (d.secondary_memory_bytes or 0.0))

    def reason(self, layout: _Layout, row: pd.Series, max_context_len: int) -> str:
        """Why one sequence of the job's context does not fit on this layout, with numbers."""
        d, job, spec = self.device, self.job, self.job.model
        where = f"{self.n_devices} × {d.vendor} {d.name}"
        text = str(row["reason"])
        if text == InferReason.NO_FIT.text:
            usable = self.usable_bytes()
            of = f"({job.usable_memory_frac:.0%} of {_gb(d.memory_bytes)} each)"
            weights = float(row["weight_mem_bytes"])
            if weights > usable:
                return (f"weights need {_gb(weights)} per device, {_gb(usable)} usable on "
                        f"{where} {of}; try more devices or a lower precision (int8, int4)")
            kv = float(row["kv_cache_mem_bytes"])
            shorter = (f"; contexts up to {max_context_len:,} tokens fit" if max_context_len
                       else "")
            return (f"weights {_gb(weights)} + KV cache {_gb(kv)} for one sequence of "
                    f"{job.prompt_len:,} + {job.output_len:,} tokens = {_gb(weights + kv)} "
                    f"per device, more than the {_gb(usable)} usable on {where} {of}"
                    f"{shorter}")
        if text == InferReason.TP_HEADS.text:
            domain = d.scaleup_domain_size or self.n_devices
            counts = [t for t in range(1, domain + 1) if infer_tp_divides_heads(spec, t)]
            return (f"tp={layout.tp} does not divide {spec.name}'s {spec.n_heads} attention "
                    f"heads ({spec.kv_heads} KV heads); device counts that do on {d.name}: "
                    f"{', '.join(map(str, counts))}")
        if text == InferReason.TP_BEYOND_DOMAIN.text:
            return (f"tp={layout.tp} spans more than one scale-up domain: "
                    f"{d.scaleup_domain_size} × {d.name} share one; tensor parallelism needs "
                    f"n_devices ≤ {d.scaleup_domain_size}")
        return f"{text} ({where}, tp={layout.tp}, pp={layout.pp})"


def _explained(fitter: _Fitter, layouts: list[_Layout]) -> tuple[_Layout, pd.Series]:
    """The layout to explain a misfit with, and its row at batch 1: a valid one that is only
    too small (the least memory per device), else the first (tensor parallel) one."""
    rows = [(lay, row) for lay in layouts
            if (row := fitter.row(lay, batch=1, prompt_len=fitter.job.prompt_len)) is not None]
    small = [(lay, row) for lay, row in rows if str(row["reason"]) == InferReason.NO_FIT.text]
    if small:
        return min(small, key=lambda pair: float(pair[1]["mem_per_device_bytes"]))
    if not rows:  # the search always rows a pinned candidate; a bug if not
        raise RuntimeError(f"search returned no candidate for tp={layouts[0].tp}")
    return rows[0]


def fits(model: ModelSpec | str, device: str, n_devices: int = 1, precision: str = "bf16", *,
         prompt_len: int = DEFAULT_PROMPT_LEN, output_len: int = DEFAULT_OUTPUT_LEN,
         kv_cache_precision: str | None = None, catalog: Any = None) -> FitResult:
    """Does `model` (a preset name, a config.json path or a ModelSpec) fit for serving on
    `n_devices` × `device` (a catalog id) in `precision`, with sequences of `prompt_len` +
    `output_len` tokens?

    Returns a FitResult: fits, the most such sequences one replica holds, the longest context
    one sequence can hold (up to the model's max_seq_len, or the job's context when longer),
    and at the largest batch the replica's decode tokens/s, per user, TPOT and TTFT, all as
    the serving model (planner.search) predicts them. Bad input raises InputError or a
    pydantic ValidationError (both ValueError) naming the field; an unknown device lists the
    closest ids.
    """
    n = check_int(n_devices, "n_devices", maximum=MAX_DEVICES_LIMIT)
    dev = catalog_device(catalog, device)
    spec = preset(model) if isinstance(model, str) else model
    fitter = _Fitter(dict(model=spec, precision=precision, prompt_len=prompt_len,
                          output_len=output_len, kv_cache_precision=kv_cache_precision),
                     dev, n, catalog)
    job = fitter.job
    layouts = _layouts(n, job.model.n_layers)
    sizes = {lay: fitter.max_batch(lay) for lay in layouts if fitter.ok(lay, batch=1)}
    if sizes:
        best = max(sizes, key=lambda lay: (sizes[lay] * lay.pp,
                                           fitter.speed(lay, sizes[lay])["tokens_per_s"]))
        first = fitter.row(best, batch=1, prompt_len=job.prompt_len)
        if first is None:  # it fitted at batch 1, so the row is there
            raise RuntimeError("search lost the row of a fitting layout")
    else:
        best, first = _explained(fitter, layouts)
    max_context = fitter.max_context(best)
    batch = sizes.get(best, 0)
    kv_dtype = job.kv_dtype  # the serving model's: fp8 under fp8/fp4 serving unless given
    prof = serving_profile(job)
    return FitResult(
        model=job.model.name, device=dev.id, device_name=f"{dev.vendor} {dev.name}",
        n_devices=n, precision=job.precision, kv_cache_precision=kv_dtype,
        prompt_len=job.prompt_len, output_len=job.output_len, fits=bool(sizes), tp=best.tp,
        pp=best.pp, max_batch_size=batch * best.pp, max_context_len=max_context,
        **fitter.speed(best, batch), weight_bytes=float(first["weight_mem_bytes"]),
        kv_bytes_per_token=float(prof.kv_bytes_per_token),
        usable_memory_bytes=fitter.usable_bytes(),
        reason="" if sizes else fitter.reason(best, first, max_context),
    )
