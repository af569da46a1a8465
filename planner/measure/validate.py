"""`validate()`: the analytic per-layer model beside a real PyTorch run, row by row.

The analytic rows come from `planner.model.layers.layer_table`; the measured rows from
`planner.measure.counters` (a reference torch model whose module names are the row names). They are
joined by layer name. Rows the analytic model does not have (`blocks.i.other`, `other`: what
torch saved or computed outside any row module) are kept, so block and model totals are
honest. docs/validation.md explains every column and shows the current errors.

This module imports torch only inside `validate()` and `calibrate()`, so `import planner`
stays torch-free.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from planner.errors import InputError, check_int, clip
from planner.model.layers import MAX_BATCH_SIZE, layer_table
from planner.model.precision import Mode, precision_policy
from planner.model.spec import MAX_N_LAYERS, MAX_SEQ_LEN, ModelSpec
from planner.model.spec import model as find_model  # `model` is validate()'s argument

ELEMENTWISE_KINDS = frozenset({"norm", "softmax", "activation", "loss"})
NOT_COUNTED = "element-wise: FLOPs by convention, not counted by FlopCounterMode"
NOT_A_ROW = "not an analytic row: saved/computed outside any row module"
DTYPES = ("fp32", "bf16", "fp16")

TRAIN_QUANTITIES = {  # measured column -> analytic column
    "fwd_flops": "fwd_flops", "bwd_flops": "bwd_flops", "param_bytes": "weight_bytes",
    "grad_bytes": "grad_bytes", "optimizer_bytes": "optimizer_bytes",
    "activation_bytes": "activation_bytes",
}
INFERENCE_QUANTITIES = {
    "fwd_flops": "fwd_flops", "decode_flops": "decode_flops", "param_bytes": "weight_bytes",
    "kv_cache_bytes": "kv_cache_bytes",
}


def rel_err(measured, analytic):
    """(measured − analytic) / analytic; 0 when both are 0; ±inf when only analytic is 0."""
    m, a = np.asarray(measured, float), np.asarray(analytic, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = (m - a) / a
    return np.where((a == 0) & (m == 0), 0.0, err)


MAX_REPEATS = 1000


def _check(mode: str, device: Any, dtype: str, seq_len: int, batch_size: int,
           n_layers: int | None, repeats: int, warmup: int) -> None:
    """The same rules as validate_distributed (planner.errors.check_*): whole numbers, not
    bools, within bounds; a device cpu, cuda, cuda:N or meta."""
    if mode not in ("train", "inference"):
        raise InputError("mode", f"{clip(mode)} is not allowed; use 'train' or 'inference'")
    if not (isinstance(device, str)
            and re.fullmatch(r"cpu|meta|cuda(:\d{1,3})?", device)):
        raise InputError("device", f"{clip(device)} is not allowed; use cpu, cuda, cuda:N or "
                                   "meta")
    if dtype not in DTYPES:
        raise InputError("dtype", f"{clip(dtype)} is not allowed; use one of "
                                  f"{', '.join(DTYPES)}")
    check_int(seq_len, "seq_len", minimum=1, maximum=MAX_SEQ_LEN)
    check_int(batch_size, "batch_size", minimum=1, maximum=MAX_BATCH_SIZE)
    if n_layers is not None:
        check_int(n_layers, "n_layers", minimum=1, maximum=MAX_N_LAYERS)
    check_int(repeats, "repeats", minimum=1, maximum=MAX_REPEATS)
    check_int(warmup, "warmup", minimum=0, maximum=MAX_REPEATS)


def validate(
    model: ModelSpec | str,
    *,
    seq_len: int,
    batch_size: int,
    mode: Mode = "train",
    device: str = "cpu",
    n_layers: int | None = None,
    dtype: str | None = None,
    repeats: int = 3,
    warmup: int = 1,
    seed: int = 0,
    time_it: bool = True,
    ceilings: Any = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per layer: analytic and measured FLOPs and bytes, with relative errors.

    model: preset name, ModelSpec or config.json path; `n_layers` shortens it for a real run.
    device: "cpu", "cuda" or "meta" (meta: FLOPs and parameter bytes only, any size, no
    memory). dtype: fp32 (default on cpu/meta), bf16 (default on cuda) or fp16; the analytic
    side uses the precision policy of the same name (bf16: bf16 weights and gradients, fp32
    master and AdamW moments, as `MasterAdamW` really allocates).
    ceilings: a `planner.measure.calibration.Ceilings` to time against; None measures them now (when
    timing a real device).

    Columns: layer, block, kind, is_matmul, note, then for each quantity Q
    `Q_analytic`, `Q_measured`, `Q_rel_err` (train: fwd_flops, bwd_flops, param_bytes,
    grad_bytes, optimizer_bytes, activation_bytes; inference: fwd_flops (prefill),
    decode_flops, param_bytes, kv_cache_bytes). Element-wise rows have measured FLOPs NaN
    (FlopCounterMode counts matmuls only). `result.attrs["summary"]` holds totals, max errors,
    per-block activation errors, predicted vs measured step time and peak memory.
    """
    # NB: `from planner.x import y`, not `from planner import x`: the package exports the
    # function `validate`, which shadows the submodule of the same name.
    from planner.measure.calibration import measure_ceilings, predict_times
    from planner.measure.counters import measure_inference, measure_train
    from planner.measure.torch_models import check_reference

    spec = find_model(model)
    dtype = dtype or ("bf16" if isinstance(device, str) and device.startswith("cuda")
                      else "fp32")
    _check(mode, device, dtype, seq_len, batch_size, n_layers, repeats, warmup)
    if n_layers is not None:
        spec = spec.with_(n_layers=n_layers)
    # What the torch reference does not build (MLA, multi-token prediction, a sliding window
    # shorter than the sequence) is refused now, in one line, before any calibration.
    check_reference(spec, seq_len)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device: 'cuda' requested but torch.cuda.is_available() is False; "
                             "use cpu or meta")
    # The analytic side first: it rejects impossible sizes (e.g. seq_len beyond learned
    # positions) with a ValueError before torch builds anything.
    analytic = layer_table(spec, seq_len=seq_len, batch_size=batch_size, mode=mode,
                           precision=dtype)
    say = progress or (lambda _msg: None)
    real = not device.startswith("meta")

    if real:
        have = None
        if device.startswith("cuda"):
            import torch

            have = float(torch.cuda.mem_get_info(torch.device(device))[0])
        check_fits_in_memory(analytic, have_bytes=have)
    if time_it and real and ceilings is None:
        say("calibrating matmul FLOP/s, memory bandwidth and per-op overhead")
        ceilings = measure_ceilings(device, dtype, optimizer=mode == "train")
    run = measure_train if mode == "train" else measure_inference
    try:
        m = run(spec, seq_len=seq_len, batch_size=batch_size, device=device, dtype=dtype,
                repeats=repeats, warmup=warmup, seed=seed, time_it=time_it and real,
                progress=progress)
    except (MemoryError, RuntimeError) as err:  # torch's OutOfMemoryError is a RuntimeError
        text = str(err).lower()
        if isinstance(err, RuntimeError) and not any(
                s in text for s in ("out of memory", "can't allocate memory",
                                    "cannot allocate memory")):
            raise
        raise InputError("model", f"ran out of memory on {device} "
                                  f"({' '.join(str(err).split())[:120]}); use fewer blocks "
                                  "(n_layers), a smaller batch_size or seq_len, or a "
                                  "narrower model") from None
    say("joining analytic and measured rows")
    df = _join(analytic, m.table, mode)
    policy = precision_policy(dtype, mode=mode)
    predicted = (predict_times(spec, analytic, ceilings, seq_len=seq_len,
                                   batch_size=batch_size, mode=mode,
                                   act_bytes=policy.activation_bytes) if ceilings else {})
    df.attrs["summary"] = _summary(df, spec, m, mode=mode, seq_len=seq_len,
                                   batch_size=batch_size, ceilings=ceilings,
                                   predicted=predicted)
    return df


def available_memory_bytes() -> float:
    """Memory the OS can still give (Linux: MemAvailable; else physical pages free)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


def _gb(n_bytes: float) -> str:
    gb = n_bytes / 1e9
    return f"{gb:,.0f} GB" if gb >= 100 else f"{gb:.3g} GB"


def check_fits_in_memory(table: pd.DataFrame, *, copies: int = 1, what: str = "model",
                         have_bytes: float | None = None) -> float:
    """Bytes a run of `table` holds (weights, gradients, optimizer state, saved activations,
    KV cache: whichever columns it has, × `copies` processes, plus a quarter for
    temporaries); InputError, before anything is allocated, when that is more than the memory
    available now (`have_bytes`, default this machine's)."""
    cols = [c for c in ("weight_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes",
                        "kv_cache_bytes") if c in table]
    need = 1.25 * copies * float(table[cols].to_numpy(dtype=float).sum())
    have = available_memory_bytes() if have_bytes is None else have_bytes
    if need > have:
        raise InputError(what, f"this run needs about {_gb(need)} here and "
                               f"{_gb(have)} are available; use fewer blocks (n_layers, "
                               "--layers), a smaller batch_size or seq_len, or a narrower "
                               "model (--set d_model=...)")
    return need


def _join(analytic: pd.DataFrame, measured: pd.DataFrame, mode: str) -> pd.DataFrame:
    quantities = TRAIN_QUANTITIES if mode == "train" else INFERENCE_QUANTITIES
    a = analytic.set_index("layer")
    names = list(a.index) + [n for n in measured.index if n not in a.index]
    out = pd.DataFrame(index=pd.Index(names, name="layer"))
    out["block"] = [int(a.at[n, "block"]) if n in a.index else int(measured.at[n, "block"])
                    for n in names]
    out["kind"] = [a.at[n, "kind"] if n in a.index else "other" for n in names]
    out["is_matmul"] = [bool(a.at[n, "is_matmul"]) if n in a.index else False for n in names]
    elementwise = out["kind"].isin(ELEMENTWISE_KINDS)
    out["note"] = np.where(out["kind"] == "other", NOT_A_ROW,
                           np.where(elementwise, NOT_COUNTED, ""))
    for q, qa in quantities.items():
        an = a[qa].reindex(names) if qa in a else pd.Series(np.nan, index=names)
        me = measured[q].reindex(names) if q in measured else pd.Series(np.nan, index=names)
        me = me.fillna(0.0) if q in measured else me
        if q.endswith("_flops"):
            me = me.where(~elementwise, np.nan)
        out[f"{q}_analytic"] = an.astype(float)
        out[f"{q}_measured"] = me.astype(float)
        out[f"{q}_rel_err"] = rel_err(out[f"{q}_measured"], out[f"{q}_analytic"])
    return out.reset_index()


def block_activations(df: pd.DataFrame) -> pd.DataFrame:
    """Saved-activation bytes per block (rows inside the block plus its 'other'), both sides."""
    if "activation_bytes_measured" not in df:
        return pd.DataFrame(columns=["block", "activation_bytes_analytic",
                                     "activation_bytes_measured", "activation_bytes_rel_err"])
    g = df.groupby("block")[["activation_bytes_analytic", "activation_bytes_measured"]].sum(
        min_count=1).reset_index()
    g["activation_bytes_rel_err"] = rel_err(g["activation_bytes_measured"],
                                            g["activation_bytes_analytic"])
    return g


def _max_abs(series: pd.Series) -> float:
    s = series.replace([np.inf, -np.inf], np.nan).dropna().abs()
    return float(s.max()) if len(s) else float("nan")


def _summary(df, spec, m, *, mode, seq_len, batch_size, ceilings, predicted) -> dict[str, Any]:
    quantities = TRAIN_QUANTITIES if mode == "train" else INFERENCE_QUANTITIES
    rows = df[df["kind"] != "other"]
    s: dict[str, Any] = dict(
        model=spec.name, mode=mode, device=m.device, device_name=m.device_name, dtype=m.dtype,
        seq_len=seq_len, batch_size=batch_size, n_layers=spec.n_layers,
        n_params=spec.n_params)
    for q in quantities:
        comparable = rows[rows["is_matmul"]] if q.endswith("_flops") else rows
        s[f"{q}_analytic_total"] = float(df[f"{q}_analytic"].sum(min_count=1))
        s[f"{q}_measured_total"] = float(df[f"{q}_measured"].sum(min_count=1))
        if q.endswith("_flops"):  # matmul rows only: what FlopCounterMode can see
            s[f"{q}_analytic_total"] = float(rows.loc[rows["is_matmul"], f"{q}_analytic"].sum())
        s[f"{q}_max_abs_rel_err"] = _max_abs(comparable[f"{q}_rel_err"])
    blocks = block_activations(df)
    inside = blocks[blocks["block"] >= 0]
    s["activation_bytes_block_max_abs_rel_err"] = _max_abs(inside["activation_bytes_rel_err"])
    s.update({f"{k}_flopcountermode_total": v for k, v in m.extras.items()
              if k.endswith("_flopcountermode")})
    s["optimizer_scalar_bytes"] = m.extras.get("optimizer_scalar_bytes", float("nan"))
    for phase, t in predicted.items():
        s[f"{phase}_s_predicted"] = t
    for phase, t in m.times_s.items():  # median; `_min` phases: the fastest repeat
        key = (f"{phase[:-4]}_s_measured_min" if phase.endswith("_min")
               else f"{phase}_s_measured")
        s[key] = t
    if ceilings is not None:
        s["ceiling_matmul_flops_per_s"] = ceilings.matmul_flops_per_s
        s["ceiling_memory_bw_bytes_per_s"] = ceilings.memory_bw_bytes_per_s
        s["ceiling_op_overhead_s"] = ceilings.op_overhead_s
        s["ceiling_adamw_tensor_overhead_s"] = ceilings.adamw_tensor_overhead_s
        s["ceiling_skinny_matmul_bw_bytes_per_s"] = ceilings.skinny_matmul_bw_bytes_per_s
    s.update(_peak_memory(df, mode, m.peak_bytes))
    return s


def _peak_memory(df: pd.DataFrame, mode: str, peaks: dict[str, float]) -> dict[str, float]:
    """Predicted peak: train = weights + gradients + optimizer state + saved activations (an
    upper bound: everything alive at once); inference = weights + KV cache. Measured: the
    largest CUDA max_memory_allocated over the phases (NaN off CUDA)."""
    a = lambda col: float(df[f"{col}_analytic"].sum())  # noqa: E731
    if mode == "train":
        pred = sum(a(c) for c in ("param_bytes", "grad_bytes", "optimizer_bytes",
                                  "activation_bytes"))
    else:
        pred = a("param_bytes") + a("kv_cache_bytes")
    vals = [v for v in peaks.values() if np.isfinite(v)]
    out = {"peak_bytes_predicted": pred, "peak_bytes_measured": max(vals) if vals else np.nan}
    out.update({f"peak_bytes_measured_{k}": v for k, v in peaks.items()})
    return out


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The summary of a `validate()` result as a two-column DataFrame (quantity, value)."""
    return pd.DataFrame(list(df.attrs.get("summary", {}).items()), columns=["quantity", "value"])


def check_save_path(path: str | Path, name: str = "save_toml") -> Path:
    """The path a catalog file will be written to, checked before anything is measured: it
    must end in .toml (load_catalog reads only those) and not be a folder or lie under a file;
    ValueError in one line otherwise."""
    p = Path(path)
    if p.suffix != ".toml":
        raise ValueError(f"{name}: {str(p)!r} must end in .toml (catalog files are TOML)")
    if p.is_dir():
        raise ValueError(f"{name}: {str(p)!r} is a folder; give a file path ending in .toml")
    parent = next((q for q in (p.parent, *p.parent.parents) if q.exists()), Path("."))
    if not parent.is_dir():
        raise ValueError(f"{name}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{name}: cannot write into {str(parent)!r} (no permission)")
    return p


def check_device_id(device_id: str, name: str = "device_id") -> str:
    """A catalog id: lower-case snake case (the Device schema's pattern)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", device_id):
        raise ValueError(f"{name}: {device_id!r} must be lower-case snake case, "
                         "e.g. 'my_workstation'")
    return device_id


def calibrate(device: str = "cpu", dtype: str = "fp32", *, save_toml: str | Path | None = None,
              device_id: str | None = None, progress: Callable[[str], None] | None = None,
              **sweep: Any):
    """Measure this machine's kernel sweep and ceilings (`planner.measure.calibration`):
    GEMM FLOP/s by size, copy bandwidth by size, fused attention (scaled_dot_product_attention,
    causal or not, forward and backward) by sequence length, and the roofline ceilings
    `validate` uses. About 3-4 s on a 2-core CPU.

    With `save_toml`, also write a catalog user file: one `[[device]]` entry (peak = the best
    GEMM in `dtype`, memory bandwidth = the best copy, id `device_id` or
    local_<cpu|cuda>_<name>) and its `[[kernels]]` table (the measured rates as fractions of
    those); `planner.hardware.catalog.load_catalog(path)` loads it. `sweep` passes sizes to
    `measure_ceilings` (matmul_sizes, copy_sizes, attention={...}, repeats, ...).
    """
    from planner.measure.calibration import measure_ceilings, to_catalog_toml

    path = check_save_path(save_toml) if save_toml is not None else None
    if device_id is not None:
        check_device_id(device_id)
    sweep.setdefault("attention", True)
    ceilings = measure_ceilings(device, dtype, progress=progress, **sweep)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_catalog_toml(ceilings, device_id=device_id), encoding="utf-8")
    return ceilings
