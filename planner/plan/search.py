"""Search device × device count × layout, rank the best configuration per device, and mark
the time-cost Pareto front (docs/planning.md P18-P20).

The whole candidate grid is evaluated with numpy broadcasting: training candidates live on a
7-axis grid (device, devices, tensor parallel, pipeline parallel, ZeRO stage, micro-batch,
recompute), inference candidates on a 3-axis grid (device, tensor parallel, batch). Each
quantity is computed on the smallest sub-grid it depends on and broadcast only where it meets
the others; devices are processed in chunks to bound memory. No Python loop runs over
candidates.

Infeasible candidates are rows with `feasible=False` and a `reason`; nothing raises for a
workload that fits nowhere. GPUs, TPUs, FPGAs and ASICs are ranked together. Bad arguments
(a job, catalog, devices, kinds or cost of the wrong kind) raise InputError naming the
parameter. Rows are checked on the way out: a feasible row has at least one device and a
finite, positive time, and a cost and energy that are finite and not negative (or NaN where a
price or TDP is unknown); a candidate whose numbers overflowed is infeasible ("time, cost or
energy is not a finite number").

Everything per device is looked up by position or through a dict built once per search, so
the work grows linearly with the number of devices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from planner.errors import InputError, clip
from planner.hardware.catalog import KINDS, Catalog, Device, suggest
from planner.hardware.kernels import (
    CollectiveOp,
    KernelRates,
    Tier,
    attention_dtype,
    collective_seconds,
    device_peak,
    kernel_rates,
    op_overhead_s,
)
from planner.model.precision import Mode, precision_policy, resident_bytes_per_param
from planner.plan.cost import CostOptions, DevicePrices, PriceColumns, costs, device_prices
from planner.plan.memory import (
    activation_bytes_per_device,
    inference_weight_bytes_per_device,
    kv_cache_bytes_per_device,
    pipeline_stage_bytes,
    zero3_gather_buffer_bytes,
    zero_sharded_bytes,
)
from planner.plan.queueing import busy_quantile, erlang_c, mean_wait_s, wait_quantile_s
from planner.plan.reasons import INFER_REASONS, TRAIN_REASONS, InferReason, TrainReason
from planner.plan.steptime import (
    RECOMPUTE_OPTIONS,
    TP_COLLECTIVES_PER_LAYER_INFERENCE,
    DeviceRates,
    InferenceProfile,
    ServingBreakdown,
    TrainingBreakdown,
    TrainingProfile,
    data_parallel_bw_bytes_per_s,
    data_parallel_seconds,
    inference_profile,
    ops_time_s,
    optimizer_offload_seconds,
    optimizer_step_bytes,
    pipeline_bubble_frac,
    pipeline_step_time_s,
    serving_step_s,
    stage_time_s,
    training_profile_for,
)
from planner.plan.workloads import InferenceJob, TrainingJob
from planner.units import SECONDS_PER_HOUR

OBJECTIVES = ("time", "cost", "energy")
MAX_TP = 64  # largest tensor-parallel degree searched (pinned values may exceed it)
MAX_PP = 64  # largest pipeline depth searched
MAX_MICRO_BATCH = 16  # largest micro-batch searched
MAX_CP = 32  # largest context-parallel degree searched
CP_MIN_TOKENS = 8192  # CP is searched only while each rank keeps at least this many tokens
MAX_VIRTUAL_STAGES = 8  # largest number of interleaved chunks per pipeline stage searched

CHUNK_CANDIDATES = 1 << 20  # grid cells evaluated at once (bounds memory, ~8 MB per array)
MAX_DEVICE_COUNT = 2**53  # device counts above this are clipped in integer columns



# ---- catalog ----------------------------------------------------------------------------------
def _strings(value: Any, field: str, what: str) -> list[str] | None:
    """None, or `value` as a list of strings (a single string is a list of one)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping | bytes) or not isinstance(value, Iterable):
        raise InputError(field, f"must be a list of {what}, got {clip(value)}")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise InputError(field, f"must be a list of {what}, got {clip(item)} in "
                             f"{clip(items)}")
    return items


def _catalog_devices(catalog: Any) -> tuple[list[Device], Any]:
    """(devices, kernel tables or None) of a Catalog, a list of Device, or None (built-in)."""
    if catalog is None:
        from planner.hardware.catalog import load_catalog

        catalog = load_catalog()
    allowed = "a Catalog (planner.load_catalog()) or a list of Device"
    if isinstance(catalog, Catalog):
        return list(catalog.devices), catalog.kernel_tables()
    if isinstance(catalog, str | bytes | Mapping) or not isinstance(catalog, Iterable):
        raise InputError("catalog", f"must be {allowed}, got {clip(catalog)}")
    items = list(catalog)
    seen: set[str] = set()
    for d in items:
        if not isinstance(d, Device):
            raise InputError("catalog", f"must be {allowed}, got {clip(d)} in it")
        if d.id in seen:
            raise InputError("catalog", f"duplicate device id {clip(d.id)}")
        seen.add(d.id)
    return items, None


def resolve_devices(catalog: Any, devices: Iterable[str] | None,
                     kinds: Iterable[str] | None) -> tuple[list[Any], Any]:
    """(the chosen devices in catalog order, the catalog's kernel tables or None); one pass
    over the catalog with a set of the wanted ids (no lookup per device)."""
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    kind_list = _strings(kinds, "kinds", f"device kinds ({', '.join(KINDS)})")
    wanted = _strings(devices, "devices", "device ids (str)")
    pool, kernel_index = _catalog_devices(catalog)
    if kind_list is not None:
        for k in kind_list:
            if k not in KINDS:
                raise InputError("kinds", f"unknown kind {clip(k)}; allowed: {', '.join(KINDS)}")
    if wanted is not None:
        known = {d.id for d in pool}
        for w in wanted:
            if w not in known:
                hints = suggest(w, [d.id for d in pool])
                hint = f"; did you mean {', '.join(hints)}?" if hints else ""
                raise InputError("devices", f"unknown device {clip(w)}{hint} ({len(known)} "
                                 "known; `planner catalog list`)")
    kind_set = None if kind_list is None else set(kind_list)
    wanted_set = None if wanted is None else set(wanted)
    chosen = [d for d in pool if (kind_set is None or d.kind in kind_set)
              and (wanted_set is None or d.id in wanted_set)]
    if not chosen:
        field = "kinds" if kind_list is not None and wanted is None else "devices"
        raise InputError(field, "no device in the catalog matches the selection "
                         f"(devices={clip(wanted)}, kinds={clip(kind_list)})")
    return chosen, kernel_index


def catalog_device(catalog: Any, device: Any) -> Device:
    """The catalog entry `device` names, looked up as `search` does (the catalog's checks,
    "did you mean" for an unknown id); the error names `device`."""
    if not isinstance(device, str) or not device.strip():
        raise InputError("device", f"must be a catalog id (str), got {clip(device)}; "
                         "`planner catalog list` shows the ids")
    try:
        chosen, _ = resolve_devices(catalog, [device], None)
    except InputError as err:
        raise InputError("device" if err.field == "devices" else err.field,
                         err.message) from None
    return chosen[0]


@dataclass(frozen=True)
class _DeviceTable:
    """One entry per device (catalog order): the numbers the grid needs, NaN where unknown."""

    devices: tuple[Any, ...]
    ids: tuple[str, ...]
    kinds: tuple[str, ...]
    peak: np.ndarray
    peak_dtype: tuple[str, ...]
    memory: np.ndarray
    bw: np.ndarray
    up_bw: np.ndarray
    domain: np.ndarray
    out_bw: np.ndarray
    torus_dims: np.ndarray  # torus axes of the scale-up network (NaN: a switch or mesh)
    ici_link_bw: np.ndarray  # one torus link, one direction (NaN where no torus)
    memory2: np.ndarray  # secondary memory per device (0 where none), bytes
    bw2: np.ndarray  # its bandwidth (NaN where none), bytes/s
    trains: np.ndarray  # False where no training stack exists (FPGAs, inference-only chips)
    kernels: KernelRates
    attn_peak: np.ndarray
    outer_kernels: KernelRates  # the embedding and LM head's rates (A22)
    outer_peak: np.ndarray
    op_overhead_s: float
    prices: DevicePrices
    position: Mapping[str, int]  # device id -> its row, for lookups by id
    # label column -> (category code per device, dtype): built once, sliced per chunk
    labels: Mapping[str, tuple[np.ndarray, pd.CategoricalDtype]]


def _labels(values: Sequence[str]) -> tuple[np.ndarray, pd.CategoricalDtype]:
    """Category codes (first-appearance order) and the categorical dtype of a label column."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    return codes.astype(np.int32), pd.CategoricalDtype(categories=list(uniques))


def _device_table(devices: Sequence[Any], *, compute_dtype: str,
                  job: TrainingJob | InferenceJob, cost: CostOptions,
                  kernel_index: Any = None) -> _DeviceTable:
    peaks = [device_peak(d, compute_dtype) for d in devices]
    attn_dtype = attention_dtype(compute_dtype)
    # attention in its dtype; a device without that peak (e.g. fp8 only) runs it at the
    # matmul dtype's, as a framework would
    attn_peaks = [a if np.isfinite(a[0]) else g
                  for a, g in zip((device_peak(d, attn_dtype) for d in devices),
                                  peaks, strict=True)]

    def arr(attr: str) -> np.ndarray:
        return np.array([np.nan if getattr(d, attr) is None else float(getattr(d, attr))
                         for d in devices], dtype=float)

    ids = tuple(d.id for d in devices)
    kinds = tuple(d.kind for d in devices)
    prices = device_prices(devices, cost)
    rates = kernel_rates(devices, gemm_dtypes=[t or compute_dtype for _, t in peaks],
                         attention_dtypes=[t or attn_dtype for _, t in attn_peaks],
                         index=kernel_index, overrides=job.kernel_overrides())
    # A22: an fp8/fp4 recipe keeps the embedding and the LM head in 16-bit (Transformer
    # Engine and NeMo run only the blocks' linear layers in fp8; NVFP4 likewise)
    outer_peaks = attn_peaks if attn_dtype != compute_dtype else peaks
    outer = rates if outer_peaks is peaks else kernel_rates(
        devices, gemm_dtypes=[t or attn_dtype for _, t in outer_peaks],
        attention_dtypes=[t or attn_dtype for _, t in attn_peaks], index=kernel_index,
        overrides=job.kernel_overrides())
    labels = dict(
        device=ids, kind=kinds, peak_dtype=tuple(t for _, t in peaks),
        # the price labels come in two tiers, the default offer then the larger one (A16):
        # row i of device d uses entry d, or d + len(devices) where priced at scale
        cost_price_provider=prices.provider + prices.scale_provider,
        cost_price_date=prices.date + prices.scale_date,
        cost_price_contract=prices.contract + prices.scale_contract, cost_note=prices.note,
        kernels_note=rates.notes)
    return _DeviceTable(
        devices=tuple(devices), ids=ids, kinds=kinds,
        peak=np.array([p for p, _ in peaks], dtype=float),
        peak_dtype=tuple(t for _, t in peaks),
        memory=arr("memory_bytes"), bw=arr("memory_bw_bytes_per_s"),
        up_bw=arr("scaleup_bw_bytes_per_s"),
        # the scale-up domain searched: the largest single slice where a torus says so
        domain=np.array([float(min(d.scaleup_domain_size or 1,
                                   d.slice_max_chips or d.scaleup_domain_size or 1))
                         for d in devices]),
        torus_dims=arr("torus_dims"), ici_link_bw=arr("ici_link_bw_bytes_per_s"),
        out_bw=arr("scaleout_bw_bytes_per_s"),
        memory2=np.nan_to_num(arr("secondary_memory_bytes"), nan=0.0),
        bw2=arr("secondary_memory_bw_bytes_per_s"),
        trains=np.array([d.trains for d in devices], dtype=bool),
        kernels=rates, attn_peak=np.array([p for p, _ in attn_peaks], dtype=float),
        outer_kernels=outer, outer_peak=np.array([p for p, _ in outer_peaks], dtype=float),
        op_overhead_s=op_overhead_s(job.efficiency_overrides), prices=prices,
        position={device_id: i for i, device_id in enumerate(ids)},
        labels={name: _labels(values) for name, values in labels.items()},
    )


@dataclass(frozen=True)
class DeviceColumns:
    """The devices of a grid chunk as `evaluate_training` / `evaluate_inference` take them:
    arrays with one entry per device, shaped to broadcast along axis 0 of the grid (NaN where
    the catalog has no value), and their kernel rates."""

    peak_flops_per_s: np.ndarray  # dense peak of the matmul dtype
    memory_bytes: np.ndarray
    memory_bw_bytes_per_s: np.ndarray
    scaleup_bw_bytes_per_s: np.ndarray
    scaleup_domain_size: np.ndarray
    scaleout_bw_bytes_per_s: np.ndarray
    torus_dims: np.ndarray  # NaN where the scale-up network is not a torus
    ici_link_bw_bytes_per_s: np.ndarray
    secondary_memory_bytes: np.ndarray  # 0 where the device has none
    secondary_memory_bw_bytes_per_s: np.ndarray  # NaN where the device has none
    prices: PriceColumns
    trains: np.ndarray
    rates: DeviceRates
    outer_rates: DeviceRates  # embedding and LM head: 16-bit under an fp8/fp4 recipe (A22)


def _device_columns(table: _DeviceTable, sl: slice, ndim: int) -> DeviceColumns:
    """The devices `sl` of `table`, shaped for an ndim grid."""
    shape = (-1,) + (1,) * (ndim - 1)

    def col(values: np.ndarray) -> np.ndarray:
        return values[sl].reshape(shape)

    peak, bw = col(table.peak), col(table.bw)
    return DeviceColumns(
        peak_flops_per_s=peak, memory_bytes=col(table.memory), memory_bw_bytes_per_s=bw,
        scaleup_bw_bytes_per_s=col(table.up_bw), scaleup_domain_size=col(table.domain),
        scaleout_bw_bytes_per_s=col(table.out_bw),
        torus_dims=col(table.torus_dims), ici_link_bw_bytes_per_s=col(table.ici_link_bw),
        secondary_memory_bytes=col(table.memory2),
        secondary_memory_bw_bytes_per_s=col(table.bw2),
        prices=table.prices.columns(sl, shape), trains=col(table.trains),
        rates=DeviceRates(
            kernels=table.kernels, index=col(np.arange(len(table.ids))),
            gemm_peak_flops_per_s=peak, attention_peak_flops_per_s=col(table.attn_peak),
            memory_bw_bytes_per_s=bw, op_overhead_s=table.op_overhead_s),
        outer_rates=DeviceRates(
            kernels=table.outer_kernels, index=col(np.arange(len(table.ids))),
            gemm_peak_flops_per_s=col(table.outer_peak),
            attention_peak_flops_per_s=col(table.attn_peak),
            memory_bw_bytes_per_s=bw, op_overhead_s=table.op_overhead_s))


def device_columns(device: Any, job: TrainingJob | InferenceJob,
                   cost: CostOptions | None = None) -> DeviceColumns:
    """The per-device numbers of ONE device as `evaluate_training` / `evaluate_inference`
    take them (arrays of one element), e.g. to evaluate a hand-picked layout."""
    return _device_columns(_table_for(job, [device], None, None, cost or CostOptions()),
                           slice(0, 1), 1)


def collective_s(dev: DeviceColumns, op: CollectiveOp, *, n_bytes, n_ranks, link_bw,
                 scale_out):
    """K5 for a grid: one collective of `n_bytes` over `n_ranks` devices at `link_bw` per
    device and direction, with the latency and bus-bandwidth fraction of the scale-out tier
    where `scale_out` is True, of the scale-up tier elsewhere."""
    rates = dev.rates
    lat_up, frac_up = rates.kernels.collective(Tier.SCALE_UP, op, rates.index, n_bytes)
    lat_out, frac_out = rates.kernels.collective(Tier.SCALE_OUT, op, rates.index, n_bytes)
    return collective_seconds(op, n_bytes=n_bytes, n_ranks=n_ranks, link_bytes_per_s=link_bw,
                              busbw_frac=np.where(scale_out, frac_out, frac_up),
                              latency_s=np.where(scale_out, lat_out, lat_up))


def _powers_of_two(limit: int) -> list[int]:
    out, v = [], 1
    while v <= limit:
        out.append(v)
        v *= 2
    return out


# ---- training ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TrainAxes:
    """Axis values of the training grid (device, layout, zero, micro-batch, recompute).

    A layout is a valid (n_devices, tp, pp) triple (tp · pp divides n_devices), so no grid cell
    is spent on impossible layouts; `tp_values` and `tp_index` let tensor-parallel-only
    quantities be computed once per distinct tp and gathered.
    """

    n: np.ndarray
    tp: np.ndarray
    pp: np.ndarray
    cp: np.ndarray
    vs: np.ndarray  # virtual stages (interleaved chunks) per pipeline stage
    ep: np.ndarray  # expert-parallel degree (1 for a dense model)
    zero: np.ndarray
    mb: np.ndarray
    rc: np.ndarray  # indices into RECOMPUTE_OPTIONS
    tp_values: np.ndarray  # distinct (tp, cp, ep) triples: tp ...
    cp_values: np.ndarray  # ... cp ...
    ep_values: np.ndarray  # ... and ep
    tp_index: np.ndarray  # each layout's triple

    def shaped(self) -> dict[str, np.ndarray]:
        """The axis values shaped for the 5-axis grid (axis 0 is the device)."""
        def on(axis: int, v: np.ndarray) -> np.ndarray:
            shape = [1] * 5
            shape[axis] = -1
            return v.reshape(shape)

        return dict(n=on(1, self.n), tp=on(1, self.tp), pp=on(1, self.pp), cp=on(1, self.cp),
                    vs=on(1, self.vs), ep=on(1, self.ep), zero=on(2, self.zero),
                    mb=on(3, self.mb), rc=on(4, self.rc))

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.n), len(self.zero), len(self.mb), len(self.rc))


def _device_counts(limit: int, domains: Iterable[int]) -> list[int]:
    """Data-parallel sizes and device counts searched (P21): powers of two, 3 · 2^k from 3 up
    (6,144 = 3 · 2,048 devices), and each scale-up domain size d above 8 times 2^k (whole
    NVL72 racks: 72, 144, ...; TPU pods), at most `limit`."""
    out = set(_powers_of_two(limit))
    for base in {3, *(int(d) for d in domains if d > 8)}:
        k = base
        while k <= limit:
            out.add(k)
            k *= 2
    return sorted(out)


def _pipeline_depths(limit: int, n_layers: int) -> list[int]:
    """Pipeline depths searched (P21): powers of two and the divisors of the layer count
    (126 layers: 2, 3, 6, 7, 9, 14, 18, 21, 42, 63), at most `limit`. A depth that does not
    divide the layers gives uneven stages, the slowest with ceil(L/p) blocks (P12)."""
    divisors = {d for d in range(2, limit + 1) if n_layers % d == 0}
    return sorted(set(_powers_of_two(limit)) | divisors)


def _context_parallel(job: TrainingJob) -> list[int]:
    """cp searched: 1, and powers of two while each rank keeps CP_MIN_TOKENS tokens and the
    sequence splits into 2·cp equal chunks (load-balanced causal attention)."""
    if job.cp:
        return [job.cp]
    out, c = [1], 2
    while c <= MAX_CP and job.seq_len // c >= CP_MIN_TOKENS and job.seq_len % (2 * c) == 0:
        out.append(c)
        c *= 2
    return out


def _virtual_stages(job: TrainingJob, pp: int) -> list[int]:
    """Interleaved chunks per stage searched when pp > 1 (P21): 1, 2 and 4 (at least one layer
    per chunk, pp · v ≤ L), and the largest v ≤ MAX_VIRTUAL_STAGES that divides the layers per
    stage (Megatron-LM requires pp · v to divide L; Llama 3 ran 126 layers on 16 interleaved
    stages by trimming the first and last, Dubey et al. 2024, Sec. 3.3.2: uneven chunks are
    timed at the slowest stage's ceil(L/p) layers, P12). A few values, not all eight: the
    bubble falls as 1/v, so the gain from 4 to 8 is small next to the grid it would cost."""
    L = job.model.n_layers
    if job.virtual_stages:  # a pinned v applies to the pipelined layouts it fits
        v = job.virtual_stages
        return [v] if v == 1 or (pp > 1 and pp * v <= L) else []
    if pp <= 1:
        return [1]
    out = {1} | {v for v in (2, 4) if pp * v <= L}
    if L % pp == 0:
        per_stage = L // pp
        divisors = [v for v in range(2, MAX_VIRTUAL_STAGES + 1) if per_stage % v == 0]
        out |= set(divisors[-1:])
    return sorted(out)


def _expert_parallel(job: TrainingJob, dp: int) -> list[int]:
    """ep searched for a MoE model: the powers of two dividing both its routed experts and
    the data-parallel size (the expert-parallel group is taken from the data-parallel ranks,
    Megatron-LM); 1 for a dense model; a pinned ep is kept (and refused by the search's
    reasons when it does not divide dp)."""
    if job.ep:
        return [job.ep]
    spec = job.model
    if not spec.is_moe:
        return [1]
    return [e for e in _powers_of_two(min(dp, spec.n_experts))
            if spec.n_experts % e == 0 and dp % e == 0]


def _train_axes(job: TrainingJob, table: _DeviceTable) -> _TrainAxes:
    spec = job.model
    max_domain = int(np.nanmax(table.domain))
    limit = job.n_devices or job.max_devices
    tp_vals = ([job.tp] if job.tp
               else _powers_of_two(min(MAX_TP, spec.n_heads, limit, max_domain)))
    pp_vals = ([job.pp] if job.pp
               else _pipeline_depths(min(MAX_PP, spec.n_layers, limit), spec.n_layers))
    cp_vals = _context_parallel(job)
    if job.n_devices:  # the layouts whose tp · pp · cp divides the fixed count
        shapes = [(job.n_devices, t, p, c) for t in tp_vals for p in pp_vals for c in cp_vals
                  if job.n_devices % (t * p * c) == 0]
    else:  # every layout times a searched data-parallel size (P21): n follows
        # pruned: no more data-parallel ranks than sequences in a step (each needs one), and
        # no count too small to hold the weights, gradients and optimizer state fully
        # sharded on the largest device (P1 with ZeRO-3: a lower bound for every layout)
        state = spec.n_params * resident_bytes_per_param(
            precision_policy(job.precision), optimizer=job.optimizer, adapter=job.adapter,
            optimizer_offload=job.optimizer_offload)
        min_n = state / max(float(np.nanmax(table.memory)), 1.0)
        dps = [d for d in _device_counts(limit, np.unique(table.domain))
               if d <= job.global_batch_size]
        shapes = sorted({(t * p * c * d, t, p, c) for t in tp_vals for p in pp_vals
                         for c in cp_vals for d in dps if min_n <= t * p * c * d <= limit})
    layouts = [(n, t, p, c, v, e) for n, t, p, c in shapes for v in _virtual_stages(job, p)
               for e in _expert_parallel(job, n // (t * p * c))]
    if not layouts:  # pinned tp × pp × cp above every searched count: keep the pins, say why
        layouts = [(t * p * c, t, p, c, v, job.ep or 1) for t in tp_vals for p in pp_vals
                   for c in cp_vals for v in _virtual_stages(job, p)]
    if not layouts:
        raise InputError("virtual_stages", f"{job.virtual_stages} chunks fit no pipeline depth "
                         f"of the {spec.n_layers} layers; allowed: pp > 1 with pp × "
                         "virtual_stages ≤ n_layers")
    n, tp, pp, cp, vs, ep = (np.array(v, dtype=float) for v in zip(*layouts, strict=True))
    zero = [job.zero_stage] if job.zero_stage is not None else [0, 1, 2, 3]
    mb = ([job.micro_batch_size] if job.micro_batch_size
          else _powers_of_two(min(MAX_MICRO_BATCH, job.global_batch_size)))
    rc = ([RECOMPUTE_OPTIONS.index(job.recompute)] if job.recompute
          else [i for i, r in enumerate(RECOMPUTE_OPTIONS)
                if not (r == "selective" and job.flash_attention)])
    keys, key_index = np.unique(np.stack([tp, cp, ep], axis=1), axis=0, return_inverse=True)
    return _TrainAxes(n, tp, pp, cp, vs, ep, np.array(zero, dtype=float),
                      np.array(mb, dtype=float), np.array(rc, dtype=int), keys[:, 0],
                      keys[:, 1], keys[:, 2], key_index.reshape(-1))


def micro_batch_times(prof: TrainingProfile, dev: DeviceColumns, *, tp, mb,
                      rc, cp=1, ep=1) -> tuple[Any, Any, Any]:
    """(one block, embedding side, head side): forward + backward (+ recompute) time of one
    micro-batch of `mb` sequences on one of `tp` × `cp` devices (P6); arguments broadcast.
    Context parallelism gives each rank 1/cp of every sequence's tokens and, with causal load
    balancing, 1/cp of its attention FLOPs: the ops of mb/cp sequences (attention still read
    at the full length's kernel rate)."""
    mb = np.asarray(mb, dtype=float) / np.asarray(cp, dtype=float)
    kw = dict(batch=mb, tp=tp, kv_split=np.minimum(tp, prof.n_kv_heads), rates=dev.rates,
              backward=True, ep=ep)
    outer = dict(kw, rates=dev.outer_rates)
    return (ops_time_s(prof.block, fwd_passes=prof.block_fwd_passes[rc], **kw),
            ops_time_s(prof.first, **outer), ops_time_s(prof.last, **outer))


def tp_tiles_domain(*, tp, n, domain):
    """P9b: a tensor-parallel group stays inside one scale-up domain when t divides the domain
    (the groups tile it) or when all n devices of the job sit in one domain (n ≤ domain).
    Otherwise some group straddles two domains: e.g. t = 16 on a 72-GPU NVL72 rack leaves 8
    GPUs that must pair with another rack's."""
    return (np.fmod(domain, tp) == 0) | (np.asarray(n) <= domain)


def group_link_bw(dev: DeviceColumns, group):
    """P9c: per-device, per-direction scale-up bandwidth of a collective over `group` devices.
    On a switch or a mesh (NVLink, Infinity Fabric) the device's whole scale-up bandwidth. On a
    torus (TPU ICI) the group uses the links of the axes it spans, 2 per axis (a bidirectional
    ring): axes = ceil(log(group) / log(A)) for A = domain^(1/dims) chips per axis, at most
    dims. TPU v5p (3 axes, 90 GB/s links, 6,144-chip slice, A = 18.3): a tensor-parallel group
    of 8 spans 1 axis, 180 GB/s; a data-parallel group of 1,024 spans 3, 540 GB/s. Slices
    without wraparound (under one 4x4x4 cube) would halve a ring's rate: not modelled."""
    dims, link = dev.torus_dims, dev.ici_link_bw_bytes_per_s
    with np.errstate(divide="ignore", invalid="ignore"):
        per_axis = np.power(dev.scaleup_domain_size, 1.0 / dims)
        axes = np.clip(np.ceil(np.log(np.maximum(group, 1.0)) / np.log(per_axis) - 1e-9),
                       1.0, dims)
    return np.where(np.isnan(dims), dev.scaleup_bw_bytes_per_s, 2.0 * axes * link)


def neighbour_link_bw(dev: DeviceColumns):
    """P9c: a pipeline send to the next stage: one torus link on a torus, the scale-up
    bandwidth on a switch."""
    return np.where(np.isnan(dev.torus_dims), dev.scaleup_bw_bytes_per_s,
                    dev.ici_link_bw_bytes_per_s)


def group_fits_domain(*, group, n, domain):
    """P9d: a context- or expert-parallel group stays on the scale-up network when it fits in
    one domain and the job is whole groups (n a multiple of the group): its groups are placed
    inside domains, a domain's spare devices left out of the job (MLPerf's GB200 NVL72 runs
    use 64 of each rack's 72 GPUs: 2,496 = 39 × 64). Tensor parallelism keeps P9b's tiling."""
    group = np.asarray(group, dtype=float)
    return (group <= domain) & (np.fmod(np.asarray(n, dtype=float), group) == 0)


def tp_link_bw(*, tp, n, dev: DeviceColumns):
    """P9b: link of the tensor-parallel collectives: the scale-up link (P9c) when the group
    stays in one domain (tp_tiles_domain), else the scale-out network (a pinned t only; the
    search keeps t that tile the domain)."""
    return np.where(tp_tiles_domain(tp=tp, n=n, domain=dev.scaleup_domain_size),
                    group_link_bw(dev, tp), dev.scaleout_bw_bytes_per_s)


def evaluate_training(job: TrainingJob, prof: TrainingProfile, dev: DeviceColumns, *, n, tp,
                      pp, zero, mb, rc, cp=1, vs=1, ep=1, op_times=None) -> TrainingBreakdown:
    """All quantities of training candidates; every argument broadcasts (scalars work too).

    `dev` holds the device numbers (planner.plan.search._device_columns); `rc` indexes
    RECOMPUTE_OPTIONS; `cp` is the context-parallel degree, `vs` the interleaved chunks per
    pipeline stage; `op_times` optionally gives micro_batch_times() already computed.
    Formulas P1-P14, P22-P23 (docs/planning.md). Rank order (Megatron-LM): tp innermost, then
    cp, then dp, then pp.
    """
    L, seq, gb = prof.n_layers, prof.seq_len, job.global_batch_size
    cp = np.asarray(cp, dtype=float)
    dp = n / (tp * pp * cp)
    m = gb / (dp * mb)
    # the data-parallel group of the gradients and ZeRO shards: dp × cp ranks (Megatron's
    # distributed optimizer shards over the data- and context-parallel group)
    dpc = dp * cp
    # memory (P1-P3); a multi-query K/V head is replicated over t, not split (P5b)
    first_w, first_g, first_o = prof.first_state_bytes
    last_w, last_g, last_o = prof.last_state_bytes
    kv_w, kv_g, kv_o = prof.block_kv_state_bytes
    replicas = tp / np.minimum(tp, prof.n_kv_heads) - 1.0  # extra copies per t devices
    block_w = prof.block_weight_bytes + kv_w * replicas
    w_full = pipeline_stage_bytes(block_bytes=block_w, first_bytes=first_w,
                                  last_bytes=last_w, n_layers=L, pp=pp) / tp
    g_full = pipeline_stage_bytes(block_bytes=prof.block_grad_bytes + kv_g * replicas,
                                  first_bytes=first_g, last_bytes=last_g, n_layers=L, pp=pp) / tp
    o_full = pipeline_stage_bytes(block_bytes=prof.block_optimizer_bytes + kv_o * replicas,
                                  first_bytes=first_o, last_bytes=last_o, n_layers=L, pp=pp) / tp
    # expert parallelism (P29): the routed experts' share of the stage's state is split over
    # ep ranks and sharded by ZeRO over the dp·cp/ep ranks that hold the same experts
    ep = np.asarray(ep, dtype=float)
    e_w, e_g, e_o = ((x / tp for x in expert_state_bytes(prof, pp=pp)) if prof.moe
                     else (0.0, 0.0, 0.0))
    keep = 1.0 / ep
    g_stage = g_full  # the stage's gradients before the expert split (the optimizer share)
    w, g, o = zero_sharded_bytes(weight_bytes=w_full - e_w, grad_bytes=g_full - e_g,
                                 optimizer_bytes=o_full - e_o, dp=dpc, zero_stage=zero)
    we, ge, oe = zero_sharded_bytes(weight_bytes=e_w * keep, grad_bytes=e_g * keep,
                                    optimizer_bytes=e_o * keep, dp=dpc / ep, zero_stage=zero)
    w, g, o = w + we, g + ge, o + oe
    # this rank's unsharded state: the non-expert part and 1/ep of the experts
    w_full, g_full, o_full = (w_full - e_w * (1 - keep), g_full - e_g * (1 - keep),
                              o_full - e_o * (1 - keep))
    if job.optimizer_offload:  # P32: gradients and optimizer state live in host memory
        g, o = g * 0.0, o * 0.0
    # ZeRO-3 gathers one block's weights at a time: its experts only the rank's 1/ep share
    block_experts = (prof.moe.expert_weight_bytes * prof.moe.n_moe_layers / L
                     if prof.moe else 0.0)
    buffer = zero3_gather_buffer_bytes(block_weight_bytes=block_w - block_experts * (1 - keep),
                                       tp=tp, dp=dpc, zero_stage=zero)
    # P3b: without sequence parallelism the norms' and column-parallel linears' inputs stay
    # whole on every tp rank: (L − R)/t + R = (L + R(t − 1))/t
    layer_act = prof.block_activation_bytes[rc]
    if not job.sequence_parallel:
        layer_act = layer_act + prof.block_sp_activation_bytes[rc] * (tp - 1.0)
    act = activation_bytes_per_device(
        layer_bytes=layer_act, first_bytes=prof.first_activation_bytes,
        last_bytes=prof.last_activation_bytes, n_layers=L, pp=pp, tp=tp, micro_batch_size=mb,
        n_micro_batches=np.maximum(m, 1.0), cp=cp, virtual_stages=vs)
    mem = w + g + o + buffer + act
    # compute per micro-batch (P6, P12)
    if op_times is None:
        op_times = micro_batch_times(prof, dev, tp=tp, mb=mb, rc=rc, cp=cp, ep=ep)
    t_layer, t_first, t_last = op_times
    stage = stage_time_s(layer_s=t_layer, first_s=t_first, last_s=t_last, n_layers=L, pp=pp)
    # communication per micro-batch: tensor parallel (P7, P9), context parallel (P22) and
    # pipeline sends, each collective at its own message size and rank count (K5)
    local_tokens = mb * seq / cp
    message = local_tokens * prof.d_model * prof.activation_bytes
    blocks = np.ceil(L / pp)
    tp_out = ~tp_tiles_domain(tp=tp, n=n, domain=dev.scaleup_domain_size)
    tp_comm = (blocks * prof.tp_collectives_per_layer[rc]
               * collective_s(dev, CollectiveOp.ALL_REDUCE, n_bytes=message, n_ranks=tp,
                              link_bw=tp_link_bw(tp=tp, n=n, dev=dev), scale_out=tp_out))
    cp_comm = blocks * context_parallel_seconds(prof, dev, tp=tp, cp=cp, n=n, mb=mb, rc=rc)
    ep_comm = blocks * expert_parallel_seconds(job, prof, dev, tp=tp, cp=cp, ep=ep, n=n, mb=mb,
                                               rc=rc)
    pp_out = n > dev.scaleup_domain_size
    vs = np.asarray(vs, dtype=float)
    # each micro-batch crosses v stage boundaries per device forward and v backward (P23)
    pp_comm = 2.0 * vs * collective_s(dev, CollectiveOp.SEND_RECV, n_bytes=message / tp,
                                      n_ranks=pp,
                                      link_bw=np.where(pp_out, dev.scaleout_bw_bytes_per_s,
                                                       neighbour_link_bw(dev)),
                                      scale_out=pp_out)
    if job.overlap_expert_comm:  # hidden behind the computation, the rest exposed (A23)
        ep_comm = np.maximum(ep_comm - stage, 0.0)
    micro = stage + tp_comm + cp_comm + ep_comm + pp_comm
    span = pipeline_step_time_s(stage_micro_batch_s=micro, pp=pp, n_micro_batches=m,
                                virtual_stages=vs)
    # data parallel and ZeRO (P13), overlapped with compute (A3); gradients are reduced in
    # job.grad_reduce_dtype
    dp_bw = data_parallel_bw_bytes_per_s(
        tp=tp * cp, dp=dp, domain=dev.scaleup_domain_size,
        up_bw=group_link_bw(dev, np.minimum(tp * cp * dp, dev.scaleup_domain_size)),
        out_bw=dev.scaleout_bw_bytes_per_s)
    dp_out = tp * dpc > dev.scaleup_domain_size
    grad_reduce = g_full * prof.grad_reduce_bytes_per_grad_byte(job.grad_reduce_dtype)
    w_upd = prof.updated_weight_bytes(g_full)  # the trained weights (all, or the adapters)
    t_step_comm, t_micro_comm = data_parallel_seconds(
        weight_bytes=w_full, updated_weight_bytes=w_upd, grad_bytes=grad_reduce, zero_stage=zero,
        collective=lambda op, nb: collective_s(dev, op, n_bytes=nb, n_ranks=dpc, link_bw=dp_bw,
                                               scale_out=dp_out))
    backward_window = stage * (2.0 / 3.0)
    dp_exposed = (np.maximum(t_step_comm - backward_window, 0.0)
                  + m * np.maximum(t_micro_comm - stage, 0.0))
    # the share of its state this rank updates: with ZeRO ≥ 1 the non-expert part over dp·cp
    # ranks and its experts over dp·cp/ep, together 1/(dp·cp) of the stage's (P2, P29)
    sharded = np.asarray(zero) >= 1
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(sharded, g_stage / (dpc * g_full), 1.0)
        own = np.where(np.isfinite(own), own, np.where(sharded, 1.0 / dpc, 1.0))
    optimizer = (optimizer_offload_seconds(grad_bytes=g_full * own, weight_bytes=w_upd * own)
                 if job.optimizer_offload else dev.rates.memory_seconds(optimizer_step_bytes(
                     weight_bytes=w_upd * own, grad_bytes=g_full * own,
                     optimizer_bytes=o_full * own)))
    step = span + dp_exposed + optimizer
    goodput = job.goodput(n)  # P24-P28: a function of the device count
    time = job.n_steps * step / goodput
    return TrainingBreakdown(
        dp=dp, n_micro_batches=m, mem_per_device_bytes=mem, weight_mem_bytes=w,
        grad_mem_bytes=g, optimizer_mem_bytes=o, activation_mem_bytes=act + buffer,
        step_time_s=step, time_s=time,
        compute_time_s=pipeline_step_time_s(stage_micro_batch_s=stage, pp=pp,
                                            n_micro_batches=m, virtual_stages=vs),
        tp_comm_time_s=m * tp_comm, cp_comm_time_s=m * cp_comm, ep_comm_time_s=m * ep_comm,
        pp_comm_time_s=m * pp_comm,
        dp_comm_exposed_s=dp_exposed, optimizer_time_s=optimizer, goodput_frac=goodput,
        bubble_frac=pipeline_bubble_frac(pp=pp, n_micro_batches=m, virtual_stages=vs),
        tokens_per_s=gb * seq / step,
        mfu=prof.model_flops_per_seq * gb / (step * n * dev.peak_flops_per_s),
        hfu=prof.hardware_flops_per_seq[rc] * gb / (step * n * dev.peak_flops_per_s),
    )


def expert_state_bytes(prof: TrainingProfile, *, pp) -> np.ndarray:
    """(weights, gradients, optimizer state) of the routed experts on the largest pipeline
    stage, before any split: ceil(L/p) average blocks' share of the n_moe_layers blocks'
    experts, the gradients and optimizer state in the block's own ratio to its weights."""
    moe = prof.moe
    assert moe is not None
    per_block = moe.expert_weight_bytes * moe.n_moe_layers / prof.n_layers
    w = np.ceil(prof.n_layers / np.asarray(pp, dtype=float)) * per_block
    ratio_g = prof.block_grad_bytes / prof.block_weight_bytes
    ratio_o = prof.block_optimizer_bytes / prof.block_weight_bytes
    return np.stack(np.broadcast_arrays(w, w * ratio_g, w * ratio_o))


def expert_parallel_seconds(job: TrainingJob, prof: TrainingProfile, dev: DeviceColumns, *,
                            tp, cp, ep, n, mb, rc):
    """P29: expert-parallel all-to-alls of one (average) block for one micro-batch. Each MoE
    block dispatches every local token's top-k copies to the experts' ranks and combines them
    back: 2 all-to-alls in forward, 2 in backward, 2 more under full recompute (GShard,
    Lepikhin et al. 2020; Megatron-Core MoE), of b_μ · (s/c) / t tokens (sequence-parallel
    tokens per rank) × top_k · h · a bytes × the capacity factor, over ep ranks (stride t·c:
    the scale-up link while t·c·ep tiles the domain, else the scale-out network), not
    overlapped. The average block carries n_moe/L of them. DeepSeek-V3 (top-8, h 7,168, bf16),
    one 4,096-token sequence per rank: 4,096 · 114,688 B = 470 MB per all-to-all."""
    moe = prof.moe
    if moe is None:
        return np.zeros(np.broadcast_shapes(np.shape(tp), np.shape(ep), np.shape(mb)))
    tokens = np.asarray(mb, dtype=float) * prof.seq_len / (np.asarray(cp, dtype=float) * tp)
    n_bytes = tokens * moe.dispatch_bytes_per_token * job.moe_capacity_factor
    group = tp * np.asarray(cp, dtype=float) * ep
    inside = group_fits_domain(group=group, n=n, domain=dev.scaleup_domain_size)
    link = np.where(inside, group_link_bw(dev, group), dev.scaleout_bw_bytes_per_s)
    passes = np.where(np.asarray(rc) == RECOMPUTE_OPTIONS.index("full"), 6.0, 4.0)
    one = collective_s(dev, CollectiveOp.ALL_TO_ALL, n_bytes=n_bytes, n_ranks=ep, link_bw=link,
                       scale_out=~inside)
    return passes * one * moe.n_moe_layers / prof.n_layers


def context_parallel_seconds(prof: TrainingProfile, dev: DeviceColumns, *, tp, cp, n, mb, rc):
    """P22: context-parallel communication of one block for one micro-batch, as Llama 3 runs
    it (Dubey et al. 2024, Sec. 3.3.2: all-gather K and V in forward, reduce-scatter dK and dV
    in backward; not overlapped with compute): K and V of the whole sequence,
    2 · mb · s · (kv heads / t) · head_dim · a bytes, all-gathered over cp ranks in forward
    (again with full recompute) and reduce-scattered in backward. The group (stride t) stays
    on the scale-up link while t · cp tiles the domain. Llama 3 405B at 131k tokens, cp 16,
    tp 8 (8 KV heads of 128, bf16): 2 · 131,072 · 1 · 128 · 2 = 67.1 MB per all-gather."""
    kv_bytes = (2.0 * mb * prof.seq_len * np.maximum(prof.n_kv_heads / tp, 1.0)
                * prof.head_dim * prof.activation_bytes)
    group = tp * np.asarray(cp, dtype=float)
    inside = group_fits_domain(group=group, n=n, domain=dev.scaleup_domain_size)
    link = np.where(inside, group_link_bw(dev, group), dev.scaleout_bw_bytes_per_s)
    gathers = np.where(np.asarray(rc) == RECOMPUTE_OPTIONS.index("full"), 2.0, 1.0)
    kw = dict(n_bytes=kv_bytes, n_ranks=cp, link_bw=link, scale_out=~inside)
    return (gathers * collective_s(dev, CollectiveOp.ALL_GATHER, **kw)
            + collective_s(dev, CollectiveOp.REDUCE_SCATTER, **kw))


def train_tp_divides_heads(spec: Any, tp) -> np.ndarray:
    """Training splits the attention heads and the KV heads over t: t must divide both
    (Megatron-LM requires num_query_groups divisible by the tensor-parallel size). The one
    exception is multi-query attention (K = 1), whose single K/V head every device keeps a
    copy of: PaLM 540B trained so with 12-way model parallelism (Chowdhery et al. 2022,
    Sec. 2 and 4)."""
    t = np.asarray(tp, dtype=int)
    return (spec.n_heads % t == 0) & ((spec.kv_heads % t == 0) | (spec.kv_heads == 1))


def infer_tp_divides_heads(spec: Any, tp) -> np.ndarray:
    """Serving splits the attention heads over t; the K KV heads are split when t divides K and
    replicated on t/K devices each when K divides t (vLLM), otherwise the layout is invalid."""
    t = np.asarray(tp, dtype=int)
    k = spec.kv_heads
    return (spec.n_heads % t == 0) & ((k % t == 0) | (t % k == 0))


def _not_finite(time_s, money: Mapping[str, Any]) -> np.ndarray:
    """Where a candidate's time is not a finite number above zero, or its cost or energy is
    infinite or negative (NaN cost or energy only means no price or TDP)."""
    bad = ~(np.isfinite(time_s) & (np.asarray(time_s) > 0))
    for key in ("cost_usd", "energy_j"):
        v = np.asarray(money[key])
        bad = bad | np.isinf(v) | (v < 0)
    return bad


def _train_reasons(job: TrainingJob, dev: DeviceColumns, q: Any, *, n, tp, pp,
                   zero, tp_pinned: bool, money: Mapping[str, Any], vs=1,
                   ep=1) -> np.ndarray:
    m = q.n_micro_batches
    r = TrainReason
    code = np.where(q.time_s > (job.deadline_s or np.inf), r.DEADLINE, r.OK)
    code = np.where(_not_finite(q.time_s, money), r.NON_FINITE, code)
    usable = job.usable_memory_frac * dev.memory_bytes
    code = np.where(q.mem_per_device_bytes > usable, r.NO_FIT, code)
    code = np.where(np.isnan(q.step_time_s), r.NO_LINK_BW, code)
    code = np.where((np.asarray(zero) >= 2) & (np.asarray(pp) > 1), r.ZERO_WITH_PP, code)
    # Megatron-LM's interleaved schedule needs the micro-batches in multiples of pp
    code = np.where((np.asarray(vs) > 1) & (np.fmod(m, pp) != 0), r.INTERLEAVE_MICRO_BATCHES,
                    code)
    code = np.where((m < 1) | (m != np.floor(m)), r.BATCH_NOT_DIVISIBLE, code)
    code = np.where(np.fmod(q.dp, ep) != 0, r.EP_NOT_DIVIDING, code)
    code = np.where(~train_tp_divides_heads(job.model, tp), r.TP_HEADS, code)
    if tp_pinned:
        code = np.where(tp > dev.scaleup_domain_size, r.TP_BEYOND_DOMAIN, code)
    code = np.where(np.isnan(dev.memory_bw_bytes_per_s), r.NO_MEMORY_BW, code)
    code = np.where(np.isnan(dev.peak_flops_per_s), r.NO_PEAK, code)
    code = np.where(dev.trains, code, r.NO_TRAINING_STACK)
    return code.astype(np.int8)


@dataclass
class _TrainChunk:
    """The evaluated grid of one chunk of devices (arrays broadcastable to `shape`)."""

    start: int
    shape: tuple[int, ...]
    valid: np.ndarray
    q: TrainingBreakdown
    cost: dict[str, Any]
    code: np.ndarray


def _train_chunks(job: TrainingJob, table: _DeviceTable, cost: CostOptions):
    prof = training_profile_for(job)
    axes = _train_axes(job, table)
    grid = axes.shaped()
    per_device = int(np.prod(axes.shape))
    step = max(1, CHUNK_CANDIDATES // per_device)
    n, tp = grid["n"], grid["tp"]
    # op times depend on the layout only through (tp, cp, ep): once per distinct triple,
    # then gathered to the layouts
    tp_unique = axes.tp_values.reshape(1, -1, 1, 1, 1)
    cp_unique = axes.cp_values.reshape(1, -1, 1, 1, 1)
    ep_unique = axes.ep_values.reshape(1, -1, 1, 1, 1)
    for start in range(0, len(table.ids), step):
        sl = slice(start, min(start + step, len(table.ids)))
        dev = _device_columns(table, sl, 5)
        shape = (sl.stop - sl.start, *axes.shape)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            op_times = tuple(np.take(t, axes.tp_index, axis=1) for t in micro_batch_times(
                prof, dev, tp=tp_unique, mb=grid["mb"], rc=grid["rc"], cp=cp_unique,
                ep=ep_unique))
            q = evaluate_training(job, prof, dev, n=n, tp=tp, pp=grid["pp"],
                                  zero=grid["zero"], mb=grid["mb"], rc=grid["rc"],
                                  cp=grid["cp"], vs=grid["vs"], ep=grid["ep"],
                                  op_times=op_times)
            money = costs(n_devices=n, time_s=q.time_s, prices=dev.prices, options=cost)
            code = _train_reasons(job, dev, q, n=n, tp=tp, pp=grid["pp"], zero=grid["zero"],
                                  vs=grid["vs"], ep=grid["ep"], tp_pinned=job.tp is not None,
                                  money=money)
        domain = dev.scaleup_domain_size
        valid = (((tp <= domain) & tp_tiles_domain(tp=tp, n=n, domain=domain))
                 | (job.tp is not None))
        yield _TrainChunk(start, shape, np.broadcast_to(valid, shape), q, money,
                          np.broadcast_to(code, shape)), axes, prof


# ---- inference ----------------------------------------------------------------------------------
MAX_SERVING_PP = 16  # deepest serving pipeline searched (pinned values may exceed it)
MAX_SERVING_EP = 64  # largest expert-parallel group count searched


@dataclass(frozen=True)
class _InferAxes:
    """The serving grid's axes (device × layout × batch): `tp`, `pp`, `ep` give each layout's
    degrees (one entry per layout), `batch` the batch values."""

    tp: np.ndarray
    pp: np.ndarray
    ep: np.ndarray
    batch: np.ndarray

    @property
    def shaped(self) -> dict[str, np.ndarray]:
        return dict(tp=self.tp.reshape(1, -1, 1), pp=self.pp.reshape(1, -1, 1),
                    ep=self.ep.reshape(1, -1, 1), batch=self.batch.reshape(1, 1, -1))


def _infer_axes(job: InferenceJob, table: _DeviceTable, prof: InferenceProfile,
                draft: InferenceProfile | None) -> _InferAxes:
    """tp × pp × ep layouts, pruned: a replica of more than max_devices devices, or one whose
    weights per device exceed the largest usable memory in the table (both tiers), can never
    be feasible and is not evaluated."""
    spec = job.model
    max_domain = int(np.nanmax(table.domain))
    tp = [job.tp] if job.tp else _powers_of_two(min(MAX_TP, spec.n_heads, max_domain))
    pp = [job.pp] if job.pp else _powers_of_two(min(MAX_SERVING_PP, spec.n_layers))
    if job.ep:
        ep = [job.ep]
    elif spec.is_moe:
        ep = [e for e in _powers_of_two(min(MAX_SERVING_EP, spec.n_experts))
              if spec.n_experts % e == 0]
    else:
        ep = [1]
    limit = job.max_batch_size
    if job.requests_per_s is None:
        limit = min(limit, job.load_concurrency)
    b = [job.batch_size] if job.batch_size else _powers_of_two(limit)
    t, p, e = (np.array(v, dtype=float).ravel() for v in np.meshgrid(tp, pp, ep, indexing="ij"))
    largest = np.nanmax(job.usable_memory_frac * (table.memory + table.memory2))
    weights = serving_weight_bytes(job, prof, tp=t, pp=p, ep=e, draft_prof=draft)
    keep = (t * p * e <= job.max_devices) & (weights <= largest)
    if not keep.any():  # nothing can fit: keep the layouts so the rows say why
        keep = t * p * e <= max(job.max_devices, 1)
        keep = keep if keep.any() else np.ones_like(keep)
    return _InferAxes(tp=t[keep], pp=p[keep], ep=e[keep], batch=np.array(b, dtype=float))


def secondary_memory_read(job: InferenceJob, dev: DeviceColumns, *, weights, kv):
    """P19b: a device with a second, slower memory (an FPGA's DDR beside its HBM) keeps the KV
    cache, read and written every step, in the first tier with as many weights as fit beside
    it, and the remaining weights in the second: (weight bytes in the second tier, extra
    seconds per pass to read them there instead). Every prefill and decode pass reads each
    weight once; the spilled bytes move at the second tier's bandwidth at the same K3
    fraction: extra = s/(f·B2) − s/(f·B1). A U280 (8 GB HBM at 460 GB/s, 32 GB DDR4 at
    38 GB/s) holding 3 GB of weights in DDR at f = 0.65:
    3e9/(0.65·38e9) − 3e9/(0.65·460e9) = 121.5 − 10.0 = 111.4 ms per pass. A KV cache larger
    than the first tier does not fit (the caller's fit check)."""
    fast = job.usable_memory_frac * dev.memory_bytes
    has_second = dev.secondary_memory_bytes > 0
    spill = np.where(has_second, np.clip(weights + kv - fast, 0.0, weights), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fast_rate = dev.rates.memory_bytes_per_s(np.maximum(spill, 1.0))
        slow_rate = fast_rate * (dev.secondary_memory_bw_bytes_per_s / dev.memory_bw_bytes_per_s)
        extra = np.where(spill > 0, spill / slow_rate - spill / fast_rate, 0.0)
    return spill, extra


def speculation_tokens_per_step(*, speculative_tokens: int, acceptance_rate: float) -> float:
    """P19e: expected tokens a sequence gains per verify step with γ draft tokens each accepted
    with probability α (Leviathan et al. 2023, Eq. 1): (1 − α^(γ+1)) / (1 − α). γ = 4,
    α = 0.8: (1 − 0.8⁵) / 0.2 = 3.3616."""
    if not speculative_tokens:
        return 1.0
    a = acceptance_rate
    return (1.0 - a ** (speculative_tokens + 1)) / (1.0 - a)


@dataclass(frozen=True)
class _Replica:
    """What one step of a replica costs (P19a–P19g): `stage(decodes, prefill_tokens)` is the
    time of one micro-batch through one pipeline stage, communication included; `draft(d)`
    one draft pass for d sequences."""

    job: InferenceJob
    prof: InferenceProfile
    dev: DeviceColumns
    tp: Any
    pp: Any
    ep: Any
    scale_out: Any
    draft_prof: InferenceProfile | None

    @property
    def block_frac(self):
        return np.ceil(self.prof.n_layers / self.pp) / self.prof.n_layers

    @property
    def uncached_prompt(self) -> float:
        """P' = P · (1 − h): the prompt tokens a request prefills (P19f)."""
        return self.job.prompt_len * (1.0 - self.job.prefix_cache_hit_frac)

    @property
    def query_tokens(self) -> float:
        return 1.0 + self.job.speculative_tokens

    def _links(self):
        dev, tp, pp, ep = self.dev, self.tp, self.pp, self.ep
        replica = tp * pp * ep
        tp_link = np.where(self.scale_out, dev.scaleout_bw_bytes_per_s, group_link_bw(dev, tp))
        group = tp * ep
        ep_inside = group_fits_domain(group=group, n=replica, domain=dev.scaleup_domain_size)
        ep_link = np.where(ep_inside, group_link_bw(dev, group), dev.scaleout_bw_bytes_per_s)
        pp_link = np.where(replica <= dev.scaleup_domain_size, neighbour_link_bw(dev),
                           dev.scaleout_bw_bytes_per_s)
        return tp_link, ep_link, ep_inside, pp_link

    def stage(self, decodes, prefill_tokens):
        """One micro-batch of `decodes` sequences (each with the verify's query tokens) and
        `prefill_tokens` prompt tokens through one stage: compute (P19a), 2 tensor-parallel
        all-reduces per block of the step's tokens, the expert-parallel dispatch and combine
        (P19i), and the send to the next stage (P19d)."""
        prof, dev, tp, pp, ep = self.prof, self.dev, self.tp, self.pp, self.ep
        a, h = prof.activation_bytes, prof.d_model
        prompts = prefill_tokens / self.uncached_prompt
        hit = self.job.prefix_cache_hit_frac
        compute = serving_step_s(
            prof.parts, decodes=decodes, query_tokens=self.query_tokens,
            prefill_tokens=prefill_tokens, prefill_prompts=prompts,
            prefill_attention_frac=1.0 - hit * hit, tp=tp, kv_split=np.minimum(tp, prof.n_kv_heads),
            rates=dev.rates, ep=ep, block_frac=self.block_frac)
        tokens = decodes * self.query_tokens + prefill_tokens
        tp_link, ep_link, ep_inside, pp_link = self._links()
        layers = np.ceil(prof.n_layers / pp)
        on = tokens > 0
        tp_comm = TP_COLLECTIVES_PER_LAYER_INFERENCE * layers * collective_s(
            dev, CollectiveOp.ALL_REDUCE, n_bytes=np.maximum(tokens, 1.0) * h * a, n_ranks=tp,
            link_bw=tp_link, scale_out=self.scale_out)
        comm = np.where(on & (tp > 1), tp_comm, 0.0)
        if prof.moe is not None:
            moe = prof.moe
            n_bytes = np.maximum(tokens, 1.0) / tp * moe.dispatch_bytes_per_token
            a2a = collective_s(dev, CollectiveOp.ALL_TO_ALL, n_bytes=n_bytes, n_ranks=ep,
                               link_bw=ep_link, scale_out=~ep_inside)
            comm = comm + np.where(on & (ep > 1), 2.0 * moe.n_moe_layers * self.block_frac
                                   * a2a, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            send = np.where(on & (pp > 1), tokens * h * a / tp / pp_link, 0.0)
        return compute + comm + send

    def cycle(self, decodes, prefill_tokens):
        """A micro-batch's round trip through the pp stages (pp micro-batches keep every stage
        busy): pp · stage."""
        return self.pp * self.stage(decodes, prefill_tokens)

    def draft(self, decodes):
        """P19e: one draft pass for `decodes` sequences: the model's MTP module (one block and
        the shared head: block_frac 1/L of the decode step) or a draft model's decode step
        at the same tensor parallelism, its all-reduces included."""
        prof, dev, tp = self.prof, self.dev, self.tp
        if not self.job.speculative_tokens:
            return 0.0
        draft = self.draft_prof
        p = prof if draft is None else draft
        kv_split = np.minimum(tp, p.n_kv_heads)
        t = serving_step_s(p.parts, decodes=decodes, query_tokens=1.0, prefill_tokens=0.0,
                           prefill_prompts=0.0, tp=tp, kv_split=kv_split, rates=dev.rates,
                           block_frac=1.0 / p.n_layers if draft is None else 1.0)
        layers = 1.0 if draft is None else float(p.n_layers)
        tp_link = self._links()[0]
        comm = TP_COLLECTIVES_PER_LAYER_INFERENCE * layers * collective_s(
            dev, CollectiveOp.ALL_REDUCE, n_bytes=np.maximum(decodes, 1.0) * p.d_model
            * p.activation_bytes, n_ranks=tp, link_bw=tp_link, scale_out=self.scale_out)
        return t + np.where(tp > 1, comm, 0.0)


@dataclass(frozen=True)
class _Service:
    """A replica's schedule at one occupancy (P19a-P19g): seconds per output token of a
    sequence, a request's time to first token without queueing, its residence time
    (TTFT + (O − 1)·TPOT), and how long it holds a batch slot (slot_s, what capacity and the
    queue use: at least O·TPOT, since in the steady state the prefill chunks of the requests
    that replace finished ones share every step, so a slot turns over once per O output
    steps; the decode pool's O·TPOT when disaggregated)."""

    tpot_s: Any
    ttft_s: Any
    residence_s: Any
    slot_s: Any


def _schedule(r: _Replica, batch, spill_s=0.0) -> _Service:
    """P19a-P19g at `batch` sequences per micro-batch of a tensor-parallel group; `spill_s`
    (P19b) is added to every pass."""
    job = r.job
    out, P_ = job.output_len, r.uncached_prompt
    if out == 0:  # an encoder: whole prompts, a batch at a time (P19j)
        t = r.cycle(0.0, batch * P_) + spill_s
        return _Service(tpot_s=np.full(np.shape(t), np.nan), ttft_s=t, residence_s=t,
                        slot_s=t)
    g = job.speculative_tokens
    E = speculation_tokens_per_step(speculative_tokens=g,
                                    acceptance_rate=job.acceptance_rate or 0.0)
    q = r.query_tokens
    C = float(job.prefill_chunk_tokens)
    if job.disaggregated:  # P19g: decode pool only; the prompt arrives with its KV cache
        cycle = r.cycle(batch, 0.0) + g * r.draft(batch)
        c = C if C > 0 else P_
        chunk = min(c, P_)
        prefill = np.ceil(P_ / chunk) * r.cycle(0.0, chunk)
        ttft = prefill + _kv_transfer_s(r)
    elif C > 0:  # P19a: chunked prefill, decodes first, prompts fill the rest of the budget
        demand = batch * P_ * E / out  # prefill tokens per step
        k = np.maximum(1.0, (batch * q + demand) / C)  # steps per output step
        cycle = k * (r.cycle(batch / k, demand / k) + g * r.draft(batch / k))
        room = np.maximum(C - batch * q / k, 1.0)
        chunk = np.minimum(room, P_)
        ttft = np.ceil(P_ / room) * (r.cycle(batch / k, chunk) + g * r.draft(batch / k))
    else:  # no chunking: each prompt alone between decode steps (Orca / early vLLM)
        prefill = r.cycle(0.0, P_)
        decode = r.cycle(batch, 0.0) + g * r.draft(batch)
        cycle = decode + batch * E / out * prefill
        ttft = prefill + decode
    tpot = cycle / E + spill_s
    ttft = ttft + spill_s
    residence = ttft + (out - 1) * tpot
    slot = out * tpot if job.disaggregated else np.maximum(residence, out * tpot)
    return _Service(tpot_s=tpot, ttft_s=ttft, residence_s=residence, slot_s=slot)


def _kv_transfer_s(r: _Replica):
    """P19g: the prompt's KV cache from the prefill to the decode pool, each device sending
    its shard (P · kv bytes per token · ceil(L/p)/L / min(t, K)) over its scale-out NIC,
    exposed. Llama-2-70B fp16, 2,048 tokens at t = 8: 2,048 · 327,680 / 8 = 83.9 MB per GPU,
    1.68 ms at 50 GB/s."""
    prof = r.prof
    shard = (r.job.prompt_len * prof.kv_bytes_per_token * r.block_frac
             / np.minimum(r.tp, prof.n_kv_heads))
    with np.errstate(divide="ignore", invalid="ignore"):
        return shard / r.dev.scaleout_bw_bytes_per_s


def _prefill_pool(r: _Replica, load_rps):
    """P19g: prefill instances of the same layout, each prefilling a chunk of the step budget
    (or one prompt) per stage time with pp chunks in flight, sized to the target
    utilization: ceil(λ · P' / (ρ · tokens per second of one instance))."""
    job = r.job
    c = float(job.prefill_chunk_tokens) if job.prefill_chunk_tokens else r.uncached_prompt
    rate = c / r.stage(0.0, c)
    return np.maximum(np.ceil(load_rps * r.uncached_prompt / (job.target_utilization * rate)
                              - 1e-9), 1.0)


def serving_weight_bytes(job: InferenceJob, prof: InferenceProfile, *, tp, pp, ep,
                         draft_prof: InferenceProfile | None = None):
    """P5, P19d, P19i: weights per device of the largest pipeline stage. The routed experts
    are split over the ep groups (each holding 1/ep of them, split over its t devices like
    the rest); the stage holds ceil(L/p)/L of the model. A speculative draft adds its weights
    split over t (an MTP module: one block, W/L)."""
    expert = 0.0 if prof.moe is None else prof.moe.expert_weight_bytes * prof.moe.n_moe_layers
    w = prof.weight_bytes - expert * (1.0 - 1.0 / np.asarray(ep, dtype=float))
    per = inference_weight_bytes_per_device(weight_bytes=w, tp=tp,
                                            kv_weight_bytes=prof.kv_proj_weight_bytes,
                                            n_kv_heads=prof.n_kv_heads)
    stage = per * np.ceil(prof.n_layers / np.asarray(pp, dtype=float)) / prof.n_layers
    if not job.speculative_tokens:
        return stage
    draft = (prof.weight_bytes / prof.n_layers if draft_prof is None
             else draft_prof.weight_bytes)
    return stage + draft / np.asarray(tp, dtype=float)


def serving_kv_bytes(job: InferenceJob, prof: InferenceProfile, *, tp, pp, batch,
                     draft_prof: InferenceProfile | None = None):
    """P4b: KV cache per device of the largest stage, paged: the n = pp · batch
    sequences of a group, admitted one after another, hold n · (P + O/2) live tokens plus O/2
    at the peak (ages evenly staggered: n·P + O·(1 + (n−1)/2)); n = 1 holds its whole
    context P + O. Each sequence wastes half a block on average (Kwon et al. 2023: only the
    last block is partly empty). ceil(L/p)/L of the layers; split over min(t, K). A draft
    model keeps its own cache (an MTP module: one layer's). An encoder keeps none; a causal
    model scoring prompts (output_len = 0) holds each prompt's cache during its pass."""
    if job.output_len == 0 and prof.kv_bytes_per_token == 0:
        return np.zeros(np.broadcast_shapes(np.shape(tp), np.shape(pp), np.shape(batch)))
    seqs = np.asarray(batch, dtype=float) * np.asarray(pp, dtype=float)
    live = (job.prompt_len + job.output_len / 2.0 + job.kv_block_tokens / 2.0
            + job.output_len / 2.0 / seqs)
    pp = np.asarray(pp, dtype=float)
    stage = np.ceil(prof.n_layers / pp) / prof.n_layers
    kw = dict(context_len=live, batch_size=np.asarray(batch, dtype=float) * pp, tp=tp)
    kv = kv_cache_bytes_per_device(kv_bytes_per_token=prof.kv_bytes_per_token * stage,
                                   n_kv_heads=prof.n_kv_heads, **kw)
    if not job.speculative_tokens:
        return kv
    # the draft sits whole beside a stage, as its weights do: an MTP module's one layer, or
    # a draft model's cache split over its own KV heads
    if draft_prof is None:
        return kv + kv_cache_bytes_per_device(
            kv_bytes_per_token=prof.kv_bytes_per_token / prof.n_layers,
            n_kv_heads=prof.n_kv_heads, **kw)
    return kv + kv_cache_bytes_per_device(kv_bytes_per_token=draft_prof.kv_bytes_per_token,
                                          n_kv_heads=draft_prof.n_kv_heads, **kw)


def _at_occupancy(r: _Replica, full: _Service, batch, occupancy, spill_s=0.0) -> _Service:
    """The schedule at `occupancy` sequences per micro-batch (≤ batch). On a grid whose last
    axis holds the batch values (ascending, at least two), linearly interpolated along it
    between the evaluated batches (TPOT and TTFT are close to affine in the batch: a weight
    read plus a per-sequence part; clamped at the smallest batch); otherwise evaluated."""
    values = np.asarray(batch, dtype=float)
    if values.ndim == 0 or values.shape[-1] < 2:
        return _schedule(r, occupancy, spill_s)
    b = values.reshape(-1)
    if np.any(np.diff(b) <= 0):
        return _schedule(r, occupancy, spill_s)
    shape = np.broadcast_shapes(np.shape(full.residence_s), np.shape(occupancy))
    target = np.broadcast_to(np.asarray(occupancy, dtype=float), shape)
    pos = np.clip(np.searchsorted(b, target, side="right") - 1, 0, len(b) - 2)
    w = np.clip((target - b[pos]) / (b[pos + 1] - b[pos]), 0.0, 1.0)

    def interp(v: Any) -> np.ndarray:
        v = np.broadcast_to(np.asarray(v, dtype=float), shape)
        lo = np.take_along_axis(v, pos, axis=-1)
        hi = np.take_along_axis(v, pos + 1, axis=-1)
        return lo * (1.0 - w) + hi * w

    return _Service(tpot_s=interp(full.tpot_s), ttft_s=interp(full.ttft_s),
                    residence_s=interp(full.residence_s), slot_s=interp(full.slot_s))


def evaluate_inference(job: InferenceJob, prof: InferenceProfile, dev: DeviceColumns, *, tp,
                       batch, pp=1, ep=1, scale_out=False,
                       draft_prof: InferenceProfile | None = None) -> ServingBreakdown:
    """All quantities of serving candidates (P4, P5, P19-P19k); arguments broadcast.

    A replica is tp · pp · ep devices: ep attention groups of tp devices (tensor parallel)
    per pipeline stage, pp stages, `batch` sequences per micro-batch of a group and pp
    micro-batches in flight, so c = batch · pp · ep sequences per replica. Its schedule
    (P19a: continuous batching with chunked prefill; speculative decoding P19e; prefix
    caching P19f; disaggregated prefill P19g) gives TPOT and TTFT at an occupancy; replicas
    are sized at the target utilization with the schedule at full occupancy, and the waiting
    time and the percentiles come from an M/M/c queue of the c slots (P19h). A closed-loop
    load (concurrent_requests) keeps each replica at its share of the users, no queue.
    """
    r = _Replica(job=job, prof=prof, dev=dev, tp=tp, pp=pp, ep=ep, scale_out=scale_out,
                 draft_prof=draft_prof)
    slots = batch * pp * ep
    n_out = job.output_len
    weights = serving_weight_bytes(job, prof, tp=tp, pp=pp, ep=ep, draft_prof=draft_prof)
    kv = serving_kv_bytes(job, prof, tp=tp, pp=pp, batch=batch, draft_prof=draft_prof)
    # P19b: every pass reads the weights spilled to a second memory tier (before sizing)
    spill_bytes, spill_s = secondary_memory_read(job, dev, weights=weights, kv=kv)
    full = _schedule(r, batch, spill_s)
    out_tokens = n_out if n_out else job.prompt_len  # delivered: outputs (inputs, P19j)
    replica_requests_per_s = slots / full.slot_s  # capacity of one replica
    percentiles = sorted({50.0, 99.0, job.latency_percentile})
    if job.requests_per_s is not None:
        load_requests_per_s = job.requests_per_s
        replicas = np.maximum(np.ceil(load_requests_per_s / (job.target_utilization
                                                             * replica_requests_per_s)
                                      - 1e-9), 1.0)
        per_replica = load_requests_per_s / replicas
        offered_erlangs = per_replica * full.slot_s
        p_wait = erlang_c(slots, offered_erlangs)
        kw = dict(p_wait=p_wait, servers=slots, service_s=full.slot_s,
                  arrival_per_s=per_replica)
        wait_mean = mean_wait_s(**kw)
        at: dict[float, _Service] = {}
        waits: dict[float, Any] = {}
        for p in percentiles:
            busy = busy_quantile(load=offered_erlangs, servers=slots, percentile=p)
            at[p] = _at_occupancy(r, full, batch, busy / (pp * ep), spill_s)
            waits[p] = wait_quantile_s(**kw, percentile=p)
        median = at[50.0]
    else:
        users = job.load_concurrency
        replicas = np.maximum(np.ceil(users / slots - 1e-9), 1.0)
        occupancy = users / replicas
        median = _at_occupancy(r, full, batch, occupancy / (pp * ep), spill_s)
        load_requests_per_s = users / median.slot_s  # Little's law per slot
        offered_erlangs = np.asarray(occupancy, dtype=float)
        wait_mean = 0.0
        at = {p: median for p in percentiles}
        waits = {p: 0.0 for p in percentiles}
    replica_devices = tp * pp * ep
    prefill_devices = (_prefill_pool(r, load_requests_per_s) * replica_devices
                       if job.disaggregated else 0.0)
    n_devices = replicas * replica_devices + prefill_devices
    delivered = load_requests_per_s * out_tokens
    ttft_mean = median.ttft_s + wait_mean
    # a percentile never falls below a lower one (the schedule at a higher occupancy can come
    # out a little faster: a GEMM crossing into a more efficient size), and an upper one not
    # below the mean (the mean holds the wait of the few who queue; its tail is to the right)
    ttft: dict[float, Any] = {}
    tpot: dict[float, Any] = {}
    for lo, p in zip([None, *percentiles], percentiles, strict=False):
        ttft[p] = at[p].ttft_s + waits[p]
        tpot[p] = at[p].tpot_s
        if lo is not None:
            ttft[p] = np.maximum(np.maximum(ttft[p], ttft[lo]), ttft_mean)
            tpot[p] = np.maximum(tpot[p], tpot[lo])
    flops_per_request = (prof.prefill_model_flops_per_seq * (1.0 - job.prefix_cache_hit_frac)
                         + max(n_out - 1, 0) * prof.decode_model_flops_per_token)
    ones = np.ones(np.broadcast_shapes(np.shape(full.residence_s), np.shape(replicas)))
    latency = ttft_mean + max(n_out - 1, 0) * (median.tpot_s if n_out else 0.0)
    decode_s = (r.cycle(batch, 0.0) + job.speculative_tokens * r.draft(batch) + spill_s
                if n_out else np.nan)
    # a replica's capacity per device, its share of a disaggregated prefill pool included
    devices_per_replica = replica_devices + prefill_devices / replicas
    return ServingBreakdown(
        prefill_s=(r.cycle(0.0, r.uncached_prompt) + spill_s) * ones, decode_s=decode_s * ones,
        ttft_s=ttft_mean * ones, tpot_s=median.tpot_s * ones, latency_s=latency * ones,
        ttft_p50_s=ttft[50.0] * ones, ttft_p99_s=ttft[99.0] * ones,
        tpot_p50_s=tpot[50.0] * ones, tpot_p99_s=tpot[99.0] * ones,
        ttft_at_percentile_s=ttft[job.latency_percentile] * ones,
        tpot_at_percentile_s=tpot[job.latency_percentile] * ones,
        queue_wait_s=wait_mean * ones, utilization=offered_erlangs / slots * ones,
        replicas=replicas * ones, n_devices=n_devices * ones,
        prefill_devices=prefill_devices * ones,
        kv_transfer_s=(_kv_transfer_s(r) if job.disaggregated else 0.0) * ones,
        delivered_tokens_per_s=delivered * ones,
        tokens_per_s_per_device=replica_requests_per_s * out_tokens / devices_per_replica
        * ones,
        weight_mem_bytes=weights * ones, kv_mem_bytes=kv * ones,
        mem_per_device_bytes=(weights + kv) * ones, secondary_mem_bytes=spill_bytes * ones,
        mfu=replica_requests_per_s * flops_per_request
        / (devices_per_replica * dev.peak_flops_per_s) * ones,
        hours_per_million_tokens=1e6 / (delivered * SECONDS_PER_HOUR) * ones,
    )


def serving_links_known(job: InferenceJob, dev: DeviceColumns, *, tp, pp, ep) -> np.ndarray:
    """Whether the catalog gives every link a serving layout uses (P19d): the scale-up link
    for t > 1 (the scale-out one beyond a domain), the links of the pipeline and the expert
    all-to-all where p or ep > 1, the scale-out NIC for a disaggregated KV transfer."""
    up = np.isfinite(dev.scaleup_bw_bytes_per_s)
    out = np.isfinite(dev.scaleout_bw_bytes_per_s)
    replica = tp * pp * ep
    inside = replica <= dev.scaleup_domain_size
    ok = (tp <= 1) | np.where(tp_tiles_domain(tp=tp, n=replica, domain=dev.scaleup_domain_size),
                              up, out)
    ok = ok & ((pp <= 1) | np.where(inside, np.isfinite(neighbour_link_bw(dev)), out))
    ok = ok & ((ep <= 1) | np.where(inside, up, out))
    return ok & out if job.disaggregated else ok


def _infer_reasons(job: InferenceJob, dev: DeviceColumns, q: Any, *, tp, pp, ep,
                   money: Mapping[str, Any]) -> np.ndarray:
    r = InferReason
    code = np.where(q.n_devices > job.max_devices, r.MAX_DEVICES, r.OK)
    code = np.where(q.tpot_at_percentile_s > (job.tpot_s or np.inf), r.TPOT, code)
    code = np.where(q.ttft_at_percentile_s > (job.ttft_s or np.inf), r.TTFT, code)
    code = np.where(_not_finite(q.latency_s, money), r.NON_FINITE, code)
    usable = job.usable_memory_frac * (dev.memory_bytes + dev.secondary_memory_bytes)
    in_first_tier = q.mem_per_device_bytes - q.secondary_mem_bytes  # KV and the other weights
    code = np.where((q.mem_per_device_bytes > usable)
                    | (in_first_tier > job.usable_memory_frac * dev.memory_bytes),
                    r.NO_FIT, code)
    code = np.where(~serving_links_known(job, dev, tp=tp, pp=pp, ep=ep), r.NO_LINK_BW, code)
    code = np.where(~infer_tp_divides_heads(job.model, tp), r.TP_HEADS, code)
    code = np.where(tp > dev.scaleup_domain_size, r.TP_BEYOND_DOMAIN, code)
    code = np.where(np.isnan(dev.memory_bw_bytes_per_s), r.NO_MEMORY_BW, code)
    code = np.where(np.isnan(dev.peak_flops_per_s), r.NO_PEAK, code)
    return code.astype(np.int8)


def serving_draft_profile(job: InferenceJob) -> InferenceProfile | None:
    """The draft model's profile (P19e), None without one (no speculation, or the MTP module,
    which is timed from the target's own profile)."""
    draft = job.draft
    if draft is None or draft == "mtp":
        return None
    return inference_profile(draft, prompt_len=job.prompt_len, output_len=job.output_len,
                             precision=job.precision, kv_cache_precision=job.kv_dtype)


def serving_profile(job: InferenceJob) -> InferenceProfile:
    """The job's InferenceProfile (its KV cache dtype by P19c's default)."""
    return inference_profile(job.model, prompt_len=job.prompt_len, output_len=job.output_len,
                             precision=job.precision, kv_cache_precision=job.kv_dtype)


def _infer_grid(job: InferenceJob, table: _DeviceTable, cost: CostOptions):
    prof = serving_profile(job)
    draft = serving_draft_profile(job)
    axes = _infer_axes(job, table, prof, draft)
    ax = axes.shaped
    tp, pp, ep, batch = ax["tp"], ax["pp"], ax["ep"], ax["batch"]
    dev = _device_columns(table, slice(None), 3)
    shape = (len(table.ids), len(axes.tp), len(axes.batch))
    kw: dict[str, Any] = dict(tp=tp, pp=pp, ep=ep, batch=batch, draft_prof=draft)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = evaluate_inference(job, prof, dev, **kw)
        tiles = tp_tiles_domain(tp=tp, n=tp * pp * ep, domain=dev.scaleup_domain_size)
        if job.tp is not None and not np.all(tiles):
            # P9b: a pinned t that does not tile the scale-up domain, beyond one domain: its
            # collectives cross domains over the scale-out network
            out = evaluate_inference(job, prof, dev, scale_out=True, **kw)
            q = ServingBreakdown(**{f.name: np.where(tiles, getattr(q, f.name),
                                                     getattr(out, f.name))
                                    for f in fields(q)})
        # money and energy per million output tokens: devices busy for the hours it takes
        money = costs(n_devices=q.n_devices, time_s=q.hours_per_million_tokens * SECONDS_PER_HOUR,
                      prices=dev.prices, options=cost)
        code = _infer_reasons(job, dev, q, tp=tp, pp=pp, ep=ep, money=money)
    valid = (((tp <= dev.scaleup_domain_size) & tiles) | (job.tp is not None))
    return shape, np.broadcast_to(valid, shape), q, money, np.broadcast_to(code, shape), axes


# ---- rows -------------------------------------------------------------------------------------
def _selector(shape: tuple[int, ...], flat: np.ndarray) -> Any:
    """What to index a grid of `shape` with to take the cells `flat` (C order): a boolean mask
    for many cells (one pass over the grid), a tuple of index arrays for a few."""
    if len(flat) * 8 < int(np.prod(shape)):
        return np.unravel_index(flat, shape)
    mask = np.zeros(int(np.prod(shape)), dtype=bool)
    mask[flat] = True
    return mask.reshape(shape)


def _gather(value: Any, shape: tuple[int, ...], selector: Any) -> np.ndarray:
    return np.broadcast_to(np.asarray(value), shape)[selector]


_PRICE_LABELS = ("cost_price_provider", "cost_price_date", "cost_price_contract")


def _device_cols(table: _DeviceTable, d: np.ndarray, money: Mapping[str, Any]) -> dict[str, Any]:
    """The per-device columns of the rows of devices `d` (`money`: their costs, gathered): the
    label columns from the codes and dtypes built once per table (work proportional to len(d),
    not to the catalog); the price labels of the offer each row is priced at (A16)."""
    tier = d + len(table.ids) * np.asarray(money["price_at_scale"], dtype=int)
    labels = {name: pd.Categorical.from_codes(codes[tier if name in _PRICE_LABELS else d],
                                              dtype=dtype)
              for name, (codes, dtype) in table.labels.items()}
    return dict(
        device=labels["device"], kind=labels["kind"], peak_dtype=labels["peak_dtype"],
        peak_flops_per_s=table.peak[d], memory_capacity_bytes=table.memory[d],
        usd_per_device_hour=money["usd_per_device_hour"],
        price_at_scale=np.asarray(money["price_at_scale"], dtype=bool),
        price_beyond_offer=np.asarray(money["price_beyond_offer"], dtype=bool),
        cost_price_provider=labels["cost_price_provider"],
        cost_price_date=labels["cost_price_date"],
        cost_price_contract=labels["cost_price_contract"], cost_note=labels["cost_note"],
        kernels_rule=table.kernels.rule[d], kernels_note=labels["kernels_note"],
    )


def _train_frame(chunk: _TrainChunk, axes: _TrainAxes, table: _DeviceTable,
                 flat: np.ndarray) -> pd.DataFrame:
    index = np.unravel_index(flat, chunk.shape)
    d = index[0] + chunk.start
    q, shape = chunk.q, chunk.shape
    selector = _selector(shape, flat)

    def g(v: Any) -> np.ndarray:
        return _gather(v, shape, selector)

    code = g(chunk.code)
    m = {k: g(v) for k, v in chunk.cost.items()}
    cols = dict(_device_cols(table, d, m))
    cols.update(
        n_devices=axes.n[index[1]].astype(int), tp=axes.tp[index[1]].astype(int),
        pp=axes.pp[index[1]].astype(int), cp=axes.cp[index[1]].astype(int),
        virtual_stages=axes.vs[index[1]].astype(int), ep=axes.ep[index[1]].astype(int),
        dp=g(q.dp).astype(int),
        micro_batch_size=axes.mb[index[3]].astype(int),
        n_micro_batches=g(q.n_micro_batches),
        zero_stage=axes.zero[index[2]].astype(int),
        recompute=pd.Categorical.from_codes(axes.rc[index[4]], categories=RECOMPUTE_OPTIONS),
        feasible=code == 0,
        reason=pd.Categorical.from_codes(code, categories=TRAIN_REASONS),
        mem_per_device_bytes=g(q.mem_per_device_bytes), weight_mem_bytes=g(q.weight_mem_bytes),
        grad_mem_bytes=g(q.grad_mem_bytes), optimizer_mem_bytes=g(q.optimizer_mem_bytes),
        activation_mem_bytes=g(q.activation_mem_bytes),
        step_time_s=g(q.step_time_s), compute_time_s=g(q.compute_time_s),
        tp_comm_time_s=g(q.tp_comm_time_s), cp_comm_time_s=g(q.cp_comm_time_s),
        ep_comm_time_s=g(q.ep_comm_time_s),
        pp_comm_time_s=g(q.pp_comm_time_s),
        dp_comm_exposed_s=g(q.dp_comm_exposed_s), optimizer_time_s=g(q.optimizer_time_s),
        bubble_frac=g(q.bubble_frac), goodput_frac=g(q.goodput_frac), time_s=g(q.time_s),
        tokens_per_s=g(q.tokens_per_s),
        mfu=g(q.mfu), hfu=g(q.hfu),
        cost_usd=m["cost_usd"], cloud_cost_usd=m["cloud_cost_usd"],
        ownership_cost_usd=m["ownership_cost_usd"], energy_j=m["energy_j"],
    )
    return pd.DataFrame(cols)


def _infer_frame(shape, q, money, code_all, axes: _InferAxes, table: _DeviceTable,
                 flat: np.ndarray) -> pd.DataFrame:
    index = np.unravel_index(flat, shape)
    d = index[0]

    def g(v: Any) -> np.ndarray:
        return _gather(v, shape, index)

    code = g(code_all)
    m = {k: g(v) for k, v in money.items()}
    cols = dict(_device_cols(table, d, m))
    tp = axes.tp[index[1]].astype(int)
    cols.update(
        n_devices=g(q.n_devices), tp=tp, pp=axes.pp[index[1]].astype(int),
        ep=axes.ep[index[1]].astype(int), dp=g(q.replicas),
        batch_size=axes.batch[index[2]].astype(int), replicas=g(q.replicas),
        prefill_devices=g(q.prefill_devices),
        feasible=code == 0, reason=pd.Categorical.from_codes(code, categories=INFER_REASONS),
        mem_per_device_bytes=g(q.mem_per_device_bytes), weight_mem_bytes=g(q.weight_mem_bytes),
        kv_cache_mem_bytes=g(q.kv_mem_bytes), secondary_mem_bytes=g(q.secondary_mem_bytes),
        prefill_s=g(q.prefill_s), decode_s=g(q.decode_s),
        ttft_s=g(q.ttft_s), tpot_s=g(q.tpot_s), ttft_p50_s=g(q.ttft_p50_s),
        ttft_p99_s=g(q.ttft_p99_s), tpot_p50_s=g(q.tpot_p50_s), tpot_p99_s=g(q.tpot_p99_s),
        ttft_at_percentile_s=g(q.ttft_at_percentile_s),
        tpot_at_percentile_s=g(q.tpot_at_percentile_s),
        queue_wait_s=g(q.queue_wait_s), utilization=g(q.utilization),
        kv_transfer_s=g(q.kv_transfer_s), time_s=g(q.latency_s),
        tokens_per_s=g(q.delivered_tokens_per_s),
        tokens_per_s_per_device=g(q.tokens_per_s_per_device), mfu=g(q.mfu),
        cost_usd=m["cost_usd"], cloud_cost_usd=m["cloud_cost_usd"],
        ownership_cost_usd=m["ownership_cost_usd"], energy_j=m["energy_j"],
    )
    for col in ("n_devices", "dp", "replicas", "prefill_devices"):
        # NB: a load no deployment can serve needs astronomically many devices: clip before
        # the integer cast (an int64 overflow would print a negative count); such a row is
        # infeasible ("needs more than max_devices") and its reason gives the float value.
        cols[col] = np.clip(np.nan_to_num(cols[col], nan=0.0, posinf=MAX_DEVICE_COUNT),
                            0, MAX_DEVICE_COUNT).astype(np.int64)
    cols["usd_per_hour"] = cols["n_devices"] * cols["usd_per_device_hour"]
    return pd.DataFrame(cols)


def pareto_mask(time_s, cost_usd, eligible=None) -> np.ndarray:
    """P20: True where no other eligible row is at least as fast and at least as cheap and
    strictly better in one (the time-cost Pareto front). NaN rows are never on it.

    Vectorized: sort by (time, cost); a row is on the front when its cost is below the running
    minimum of all rows before it (ties in both keep the first)."""
    time_s = np.asarray(time_s, dtype=float)
    cost_usd = np.asarray(cost_usd, dtype=float)
    ok = np.isfinite(time_s) & np.isfinite(cost_usd)
    if eligible is not None:
        ok &= np.asarray(eligible, dtype=bool)
    out = np.zeros(len(time_s), dtype=bool)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return out
    order = idx[np.lexsort((cost_usd[idx], time_s[idx]))]
    c = cost_usd[order]
    prev_min = np.concatenate(([np.inf], np.minimum.accumulate(c)[:-1]))
    out[order[c < prev_min]] = True
    return out



# ---- public API -------------------------------------------------------------------------------
def _check(job: Any, objective: Any, cost: Any) -> CostOptions:
    """The arguments every entry point shares, each refused with one line naming it."""
    if not isinstance(job, TrainingJob | InferenceJob):
        raise InputError("job", f"must be a TrainingJob or InferenceJob, got {clip(job)}")
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise InputError("objective", f"{clip(objective)}; allowed: {', '.join(OBJECTIVES)}")
    if cost is None:
        return CostOptions()
    if not isinstance(cost, CostOptions):
        raise InputError("cost", f"must be a CostOptions (planner.CostOptions(...)), got "
                         f"{clip(cost)}")
    return cost


def checked_rows(df: pd.DataFrame, reason: str) -> pd.DataFrame:
    """The check on the way out of search() and rank(): a feasible row needs at least one
    device, a finite time above zero (zero would mean zero steps), and a cost and energy that
    are finite and not negative (NaN is allowed: no price or TDP, `cost_note` says why).
    Any other feasible row becomes infeasible with `reason` (in place; returns `df`)."""
    n = df["n_devices"].to_numpy(float)
    t = df["time_s"].to_numpy(float)
    money = [df[c].to_numpy(float) for c in ("cost_usd", "energy_j")]
    with np.errstate(invalid="ignore"):
        sane = (n >= 1) & np.isfinite(t) & (t > 0)
        for v in money:
            sane &= ~np.isinf(v) & ~(v < 0)
    bad = df["feasible"].to_numpy(bool) & ~sane
    if bad.any():
        df.loc[bad, "feasible"] = False
        df.loc[bad, "reason"] = reason
    return df


def _table_for(job: TrainingJob | InferenceJob, catalog: Any, devices, kinds,
               cost: CostOptions) -> _DeviceTable:
    mode: Mode = "train" if isinstance(job, TrainingJob) else "inference"
    chosen, kernel_index = resolve_devices(catalog, devices, kinds)
    compute_dtype = precision_policy(job.precision, mode=mode).compute_dtype
    return _device_table(chosen, compute_dtype=compute_dtype, job=job, cost=cost,
                         kernel_index=kernel_index)


def search(job: TrainingJob | InferenceJob, catalog: Any = None, *,
           devices: Iterable[str] | None = None, kinds: Iterable[str] | None = None,
           cost: CostOptions | None = None) -> pd.DataFrame:
    """Every evaluated candidate, feasible or not, one row each.

    Training columns: device, kind, n_devices, tp, pp, dp, micro_batch_size, n_micro_batches,
    zero_stage, recompute, feasible, reason, peak_dtype, mem_per_device_bytes (and its parts;
    activation_mem_bytes includes the ZeRO-3 gather buffer),
    step_time_s (and its parts: compute_time_s, tp_comm_time_s, pp_comm_time_s,
    dp_comm_exposed_s, optimizer_time_s, bubble_frac), time_s (steps × step / goodput),
    tokens_per_s, mfu, hfu, cost_usd, cloud_cost_usd, ownership_cost_usd, usd_per_device_hour
    (the cloud price used), price_at_scale (priced at the catalog's larger offer, P15b),
    price_beyond_offer (no offer in the catalog serves that many devices), cost_price_provider,
    cost_price_date, cost_price_contract (of the price used), cost_note, energy_j, pareto.
    Inference columns: the same identity columns plus batch_size, replicas, ttft_s, tpot_s,
    time_s (request latency), tokens_per_s (delivered output tokens/s at the load),
    tokens_per_s_per_device (capacity), kv_cache_mem_bytes, secondary_mem_bytes (weights held
    in a slower second memory, P19b), and cost_usd / energy_j per million output tokens.
    `catalog` is a Catalog (planner.load_catalog()) or a list of Device, None for the built-in
    one; `devices` restricts to catalog ids (a list of str, or one id), `kinds` to device kinds
    (a list of gpu, tpu, fpga, asic, other, or one comma-separated string); `cost` sets prices
    (a CostOptions). Anything else raises InputError naming the parameter and what is allowed.
    """
    cost = _check(job, "time", cost)
    table = _table_for(job, catalog, devices, kinds, cost)
    if isinstance(job, TrainingJob):
        frames = [_train_frame(chunk, axes, table, np.flatnonzero(chunk.valid))
                  for chunk, axes, _ in _train_chunks(job, table, cost)]
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    else:
        shape, valid, q, money, code, axes = _infer_grid(job, table, cost)
        df = _infer_frame(shape, q, money, code, axes, table, np.flatnonzero(valid))
    checked_rows(df, (TrainReason if isinstance(job, TrainingJob)
                      else InferReason).NON_FINITE.text)
    df["pareto"] = pareto_mask(df["time_s"].to_numpy(float), df["cost_usd"].to_numpy(float),
                               df["feasible"].to_numpy(bool))
    return df


def _scalar(x: Any) -> float:
    return float(np.asarray(x, dtype=float).reshape(-1)[0])


def candidate_evaluator(job: TrainingJob, catalog: Any = None, *,
                        devices: Iterable[str] | None = None, cost: CostOptions | None = None):
    """A function that evaluates ONE training candidate at a time with Python scalars,
    through the same formulas as the grid: the slow path `benchmarks/bench_search.py`
    compares with, and a cross-check of the vectorized search.

    The function takes (device_id, n_devices, tp, pp, zero_stage, micro_batch_size, recompute)
    and returns a dict with feasible, reason, mem_per_device_bytes, step_time_s, time_s, mfu,
    cost_usd and energy_j.
    """
    cost = _check(job, "time", cost)
    table = _table_for(job, catalog, devices, None, cost)
    prof = training_profile_for(job)
    per_device = {device_id: _device_columns(table, slice(i, i + 1), 1)
                  for i, device_id in enumerate(table.ids)}

    def evaluate(device_id: str, n_devices: int, tp: int, pp: int, zero_stage: int,
                 micro_batch_size: int, recompute: str, cp: int = 1,
                 virtual_stages: int = 1, ep: int = 1) -> dict[str, Any]:
        dev = per_device[device_id]
        rc = RECOMPUTE_OPTIONS.index(recompute)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            q = evaluate_training(job, prof, dev, n=float(n_devices), tp=float(tp),
                                  pp=float(pp), zero=float(zero_stage),
                                  mb=float(micro_batch_size), rc=rc, cp=float(cp),
                                  vs=float(virtual_stages), ep=float(ep))
            money = costs(n_devices=n_devices, time_s=q.time_s, prices=dev.prices,
                          options=cost)
            code = _scalar(_train_reasons(job, dev, q, n=float(n_devices), tp=float(tp),
                                          pp=float(pp), zero=float(zero_stage),
                                          vs=float(virtual_stages), ep=float(ep),
                                          tp_pinned=job.tp is not None, money=money))
        code = int(code)
        return dict(feasible=code == 0, reason=TRAIN_REASONS[code],
                    mem_per_device_bytes=_scalar(q.mem_per_device_bytes),
                    step_time_s=_scalar(q.step_time_s),
                    time_s=_scalar(q.time_s), mfu=_scalar(q.mfu),
                    cost_usd=_scalar(money["cost_usd"]), energy_j=_scalar(money["energy_j"]))

    return evaluate


