"""Kernel-level achieved rates per device and dtype: GEMM by shape, fused attention by sequence
length, memory copies by size, collectives by message size and rank count (docs/planning.md
K1-K5, the data and its sources in docs/kernels.md).

The data lives in the catalog folder as `[[kernels]]` tables (hardware_catalog/kernels.toml;
a user catalog file may add its own): measured on the device, or a documented rule by device
class marked `rule = true`. Nothing here is fitted to end-to-end training or serving runs:
those are what the model is checked against (planner.plan.backtest).

The four public functions take a catalog id or a `Device`:

    gemm_flops_per_s(device, m, n, k, dtype="bf16")
    attention_flops_per_s(device, seq_len, head_dim, dtype="bf16", causal=True)
    memory_bytes_per_s(device, n_bytes)
    collective_time_s(device, op, n_bytes, n_ranks, tier=None)

and the step-time model calls the same formulas through `KernelRates`, numpy arrays with one
entry per device, so a whole candidate grid is priced at once.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner.errors import InputError, clip, one_line

KERNELS_FILE = "kernels.toml"

# Largest catalog file (device entries and kernel tables) read at all, bytes. The built-in files
# are under 100 kB; tomllib parses about 4 MB/s, so a 50 MB file would hold a page for 12 s.
MAX_CATALOG_FILE_BYTES = 5_000_000

# Tile padding (K1b): cuBLAS/CUTLASS tensor-core kernels work on output tiles of 128 columns
# (64 for the smaller configurations); an n < 128 still costs a whole tile, so its rate is
# n/128 of the rate at n = 128 (NVIDIA "Matrix Multiplication Background User's Guide",
# sections "Tile quantization" and "Wave quantization"). The token rows pad to GEMM_ROW_TILE.
GEMM_TILE = 128.0
# K1b: the row (token) side of a skinny GEMM is padded to 8, not to a whole 128-row tile:
# tensor cores' smallest MMA is m16n8k16 (PTX ISA, "Warp-level matrix multiply-accumulate
# instructions"), and small-batch kernels (cuBLASLt, TensorRT-LLM) put the batch on its n8
# side; a TPU vector register holds 8 sublanes × 128 lanes, so the MXU's streamed batch pads
# to 8 rows (jax-ml/scaling-book, "All About TPUs"). The weight side keeps the 128-wide tile.
GEMM_ROW_TILE = 8.0

# Sustained tensor-core rate (K1c): kernel benchmarks (MAMF, size sweeps) time a few hundred
# iterations; a training or prefill step keeps the tensor cores busy for hours, at the board's
# power limit, and clocks drop. The one kernel-level measurement of both on the same device:
# GB200, best-shape FP8 torch.matmul 3,615.6 TFLOP/s (stas00/ml-engineering MAMF table) vs
# Azure's sustained FP8 GEMM 2,744 TFLOP/s (techcommunity.microsoft.com, ND GB200 v6; shared
# reference README §4): 2,744 / 3,615.6 = 0.759. NB: a rule from one device, applied to every
# GEMM and attention kernel of every device unless its [kernels.gemm] table gives its own
# `sustained_frac` (1.0 when the table is already a sustained measurement). Never fitted to
# end-to-end runs; `efficiency_overrides["gemm_scale"]` and `["attention_scale"]` undo it.
SUSTAINED_TENSOR_FRAC = 2744.0 / 3615.6

# The FlashAttention papers count a fused attention backward as 2.5× its forward FLOPs (it
# recomputes the scores: 5 matmuls against the forward's 2; Dao 2023, Sec. 4.1), and their
# backward TFLOP/s, hence the tables' backward fractions, use that count (K2).
ATTENTION_BWD_FLOPS_FACTOR = 2.5


class CollectiveOp(StrEnum):
    """The collectives the planner prices (NCCL/RCCL/XLA names)."""

    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    SEND_RECV = "send_recv"


class Tier(StrEnum):
    """Which network a collective crosses: the scale-up domain (NVLink, Infinity Fabric, ICI,
    NeuronLink) or the scale-out network between domains (InfiniBand, RoCE, EFA, DCN)."""

    SCALE_UP = "scale_up"
    SCALE_OUT = "scale_out"


# ---- the data, as read from TOML -----------------------------------------------------------
def _increasing(name: str, values: Sequence[float]) -> None:
    """Table sizes: finite, > 0 (they are interpolated on a log scale) and increasing."""
    bad = next((v for v in values if not (math.isfinite(v) and v > 0)), None)
    if bad is not None:
        raise ValueError(f"{name}: sizes must be finite numbers > 0, got {bad}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"{name}: must be strictly increasing")


def _fractions(name: str, values: Iterable[float]) -> None:
    for v in values:
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name}: fractions must be in (0, 1], got {v}")


class GemmTable(BaseModel):
    """Achieved fraction of the dense peak of each dtype for a GEMM of size s = (m·n·k)^(1/3)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    source: str = Field(min_length=1)
    size: tuple[float, ...] = Field(min_length=1)
    sustained_frac: float = Field(
        default=SUSTAINED_TENSOR_FRAC, gt=0, le=1,
        description="Sustained over benchmarked tensor-core rate (K1c); the rule when absent.")
    tile: float = Field(
        default=GEMM_TILE, ge=1, le=4096,
        description="Rows (and columns) one compute tile spans (K1b): a GEMM dimension under it "
        "wastes the rest of the tile. 128 for GPU tensor cores and TPU/ASIC matrix units; 1 "
        "for matrix-vector engines (FPGA LLM accelerators), which a batch-1 decode fills.")

    @model_validator(mode="before")
    @classmethod
    def _dtype_keys(cls, data: Any) -> Any:
        """Every key besides source, size and sustained_frac is a dtype with its fractions."""
        if not isinstance(data, dict):
            return data
        from planner.hardware.catalog import DTYPES

        for key, value in data.items():
            if key in ("source", "size", "sustained_frac", "tile"):
                continue
            if key not in DTYPES:
                shown = key if len(key) < 40 and key.isprintable() else clip(key)
                raise ValueError(f"gemm.{shown}: unknown key; allowed: source, size, "
                                 f"sustained_frac, tile and a dtype ({', '.join(DTYPES)})")
            if not (isinstance(value, list) and value and all(
                    isinstance(x, int | float) and not isinstance(x, bool) for x in value)):
                raise ValueError(f"gemm.{key}: expected a list of fractions, got {clip(value)}")
        return data

    @model_validator(mode="after")
    def _check(self) -> GemmTable:
        _increasing("gemm.size", self.size)
        for dtype, values in self.fracs.items():
            if len(values) != len(self.size):
                raise ValueError(f"gemm.{dtype}: {len(values)} values for "
                                 f"{len(self.size)} sizes")
            _fractions(f"gemm.{dtype}", values)
        if not self.fracs:
            raise ValueError("gemm: give at least one dtype's fractions, e.g. bf16 = [...]")
        return self

    @property
    def fracs(self) -> dict[str, tuple[float, ...]]:
        """dtype -> benchmarked fractions (before the sustained derate)."""
        extra = self.model_extra or {}
        return {k: tuple(float(x) for x in v) for k, v in extra.items()}


class AttentionCurve(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: str
    head_dim: int = Field(gt=0)
    causal: bool
    direction: str = Field(pattern="^(fwd|bwd)$")
    frac: tuple[float, ...]


class AttentionTable(BaseModel):
    """Fused attention: achieved fraction of the dense peak by sequence length, per curve."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1)
    seq_len: tuple[float, ...] = Field(min_length=1)
    curve: tuple[AttentionCurve, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> AttentionTable:
        _increasing("attention.seq_len", self.seq_len)
        for c in self.curve:
            if len(c.frac) != len(self.seq_len):
                raise ValueError(f"attention.curve ({c.dtype}, head_dim {c.head_dim}): "
                                 f"{len(c.frac)} values for {len(self.seq_len)} lengths")
            _fractions("attention.curve.frac", c.frac)
        return self


class MemoryTable(BaseModel):
    """Achieved fraction of the peak memory bandwidth for a copy of `size_bytes` bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1)
    size_bytes: tuple[float, ...] = Field(min_length=1)
    frac: tuple[float, ...]

    @model_validator(mode="after")
    def _check(self) -> MemoryTable:
        _increasing("memory.size_bytes", self.size_bytes)
        if len(self.frac) != len(self.size_bytes):
            raise ValueError("memory.frac: one value per size_bytes entry")
        _fractions("memory.frac", self.frac)
        return self


class MeasuredCollective(BaseModel):
    """Measured points (nccl-tests style) kept beside the model to check it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: CollectiveOp
    n_ranks: int = Field(ge=2)
    message_bytes: tuple[float, ...]
    busbw_bytes_per_s: tuple[float, ...]
    source: str = ""


class CollectiveTier(BaseModel):
    """α–β parameters of one tier: latency per algorithm step and the large-message bus
    bandwidth of each op as a fraction of the device's per-direction link bandwidth."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1)
    latency_s: float = Field(gt=0, lt=1)
    all_reduce: float = Field(gt=0, le=1)
    all_gather: float = Field(gt=0, le=1)
    reduce_scatter: float = Field(gt=0, le=1)
    all_to_all: float = Field(gt=0, le=1)
    send_recv: float = Field(gt=0, le=1)
    op_latency_s: dict[CollectiveOp, Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=dict,
        description="Per-op latency per step where it was measured (planner calibrate "
                    "--collectives); ops not listed use latency_s.")
    small_message_latency_s: float | None = Field(
        default=None, gt=0, lt=1,
        description="α per step measured on small messages (≤ 32 KiB, where NCCL's low-latency "
        "protocol runs); K5b interpolates to latency_s at 1 MiB. None: latency_s at every "
        "size.")
    measured: tuple[MeasuredCollective, ...] = ()

    def busbw_frac(self, op: CollectiveOp) -> float:
        return float(getattr(self, op.value))

    def latency(self, op: CollectiveOp) -> float:
        """α per algorithm step of `op`: its measured value, else the tier's latency_s."""
        return float(self.op_latency_s.get(op, self.latency_s))

    def small_latency(self, op: CollectiveOp) -> float:
        """α per step of `op` for small messages (K5b): the small-message measurement, else
        latency(op)."""
        if op in self.op_latency_s or self.small_message_latency_s is None:
            return self.latency(op)
        return float(self.small_message_latency_s)


class Collectives(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    scale_up: CollectiveTier
    scale_out: CollectiveTier | None = None


class KernelEntry(BaseModel):
    """One `[[kernels]]` table: the rates of the listed devices."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    devices: tuple[str, ...] = Field(min_length=1)
    checked_on: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    rule: bool = False
    gemm: GemmTable
    attention: AttentionTable
    memory: MemoryTable
    collectives: Collectives
    notes: str = ""

    def gemm_frac(self, size, dtype: str) -> tuple[str, Any]:
        """(dtype of the table used, sustained fraction of the dense peak) for GEMMs of size
        s = (m·n·k)^(1/3) (K1, K1c; no tile share)."""
        used, fracs = gemm_curve(self, dtype)
        return used, log_interp(size, self.gemm.size, fracs) * self.gemm.sustained_frac

    def memory_frac(self, n_bytes) -> Any:
        """Fraction of the peak memory bandwidth for moving `n_bytes` (K3)."""
        return log_interp(n_bytes, self.memory.size_bytes, self.memory.frac)


# ---- loading ---------------------------------------------------------------------------------
def _catalog_dir() -> Path:
    from planner.hardware.catalog import CATALOG_DIR

    return CATALOG_DIR


def decode_catalog_bytes(data: bytes, where: str) -> str:
    """The text of a catalog file's bytes: at most MAX_CATALOG_FILE_BYTES, UTF-8, a leading
    byte-order mark dropped; InputError naming `where` (the file) otherwise."""
    if len(data) > MAX_CATALOG_FILE_BYTES:
        raise InputError(where, f"file is {len(data):,} bytes; a catalog file is at most "
                                f"{MAX_CATALOG_FILE_BYTES:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(where, f"not UTF-8 text ({err.reason} at byte {err.start}); save "
                                "the file as UTF-8") from None


def read_catalog_text(path: Path, where: str) -> str:
    """`decode_catalog_bytes` of a file, its size checked before it is read."""
    try:
        size = path.stat().st_size
        if size > MAX_CATALOG_FILE_BYTES:
            raise InputError(where, f"file is {size:,} bytes; a catalog file is at most "
                                    f"{MAX_CATALOG_FILE_BYTES:,} bytes")
        data = path.read_bytes()
    except OSError as err:
        raise InputError(where, f"cannot read the file ({err.strerror or err})") from None
    return decode_catalog_bytes(data, where)


def parse_catalog_toml(text: str, where: str) -> dict[str, Any]:
    """tomllib.loads, with nesting too deep for the parser as an InputError naming `where`.
    A syntax error is left as tomllib.TOMLDecodeError for the caller to place."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise InputError(where, "invalid TOML: arrays or tables nested too deeply for the "
                                "parser; a catalog file nests a few levels") from None


def read_kernel_entries(path: str | Path) -> list[KernelEntry]:
    """The `[[kernels]]` tables of one TOML file (none is fine); a bad table raises one line
    naming the file, the table and the field."""
    path = Path(path)
    try:
        data = parse_catalog_toml(read_catalog_text(path, path.name), path.name)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path.name}: not valid TOML: {err}") from None
    raw = data.get("kernels", [])
    if not isinstance(raw, list):
        raise ValueError(f"{path.name}: 'kernels' must be an array of tables ([[kernels]])")
    out = []
    for i, entry in enumerate(raw):
        try:
            out.append(KernelEntry.model_validate(entry))
        except ValidationError as err:
            label = entry.get("devices", [f"#{i + 1}"]) if isinstance(entry, dict) else i + 1
            raise ValueError(f"{path.name}: [[kernels]] {clip(label)}: {one_line(err)}"
                             ) from None
    return out


@cache
def builtin_kernel_entries() -> tuple[KernelEntry, ...]:
    """The kernel tables shipped with the catalog (hardware_catalog/kernels.toml)."""
    return tuple(read_kernel_entries(_catalog_dir() / KERNELS_FILE))


def kernel_index(entries: Iterable[KernelEntry]) -> dict[str, KernelEntry]:
    """device id -> its entry; a later entry for the same id replaces an earlier one (a user
    file overrides the built-in tables)."""
    out: dict[str, KernelEntry] = {}
    for e in entries:
        for d in e.devices:
            out[d] = e
    return out


# Fallback for a device without a `[[kernels]]` entry (a user's own device): the entry of the
# closest built-in class, stated in `KernelRates.rule_note`. GPU/TPU/ASIC/other borrow from
# these reference devices; FPGAs use the FPGA rule entry.
_CLASS_FALLBACK = {
    "gpu": "nvidia_a100_80gb_sxm",
    "tpu": "google_tpu_v5p",
    "asic": "intel_gaudi2",
    "other": "intel_gaudi2",
    "fpga": "amd_alveo_u280",
}


def kernel_entry(device: Any, index: Mapping[str, KernelEntry] | None = None
                 ) -> tuple[KernelEntry, str]:
    """(entry, note) for a Device: its own table, or its class's fallback with a note."""
    index = index if index is not None else kernel_index(builtin_kernel_entries())
    if device.id in index:
        return index[device.id], ""
    base = _CLASS_FALLBACK.get(device.kind, "nvidia_a100_80gb_sxm")
    if base not in index:  # pragma: no cover - the shipped file covers every class
        raise ValueError(f"kernels: no table for {device.id!r} and no {device.kind} fallback")
    return index[base], (f"no kernel table for {device.id}: rates borrowed from {base} "
                         f"(same kind, {device.kind}); add a [[kernels]] entry to measure it")


# ---- formulas (scalar or numpy) ------------------------------------------------------------
def log_interp(x, xp: Sequence[float], fp: Sequence[float]):
    """Interpolation in log(x), clamped at both ends of the table."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lx = np.log(np.maximum(np.asarray(x, dtype=float), 1e-30))
    return np.interp(lx, np.log(np.asarray(xp, dtype=float)), np.asarray(fp, dtype=float))


def gemm_size(m, n, k):
    """K1: the size a GEMM table is indexed by, s = (m·n·k)^(1/3) (a cube of the same work)."""
    return np.cbrt(np.asarray(m, dtype=float) * np.asarray(n, dtype=float)
                   * np.asarray(k, dtype=float))


def row_tile(tile):
    """K1b: the rows a GEMM's token side pads to: GEMM_ROW_TILE (8) on a matrix unit, the
    table's tile where smaller (1 on a matrix-vector engine)."""
    return np.minimum(np.asarray(tile, dtype=float), GEMM_ROW_TILE)


def padded_gemm_size(m, n, k, tile=GEMM_TILE):
    """K1 at K1b's padding: the size of the GEMM the kernel actually computes, the rows raised
    to the row tile (8, GEMM_ROW_TILE; 1 on a matrix-vector engine) and n to the tile,
    s = (max(m, 8)·max(n, tile)·k)^(1/3). The table's fraction belongs to that padded GEMM;
    tile_frac then keeps only its useful share. A batch-1 decode GEMM 1 × 4096 × 4096 on a
    tensor-core device runs as 8 × 4096 × 4096 (s = 512), not as a 256³ cube: looking the
    table up at the unpadded size would charge the small-size penalty twice."""
    tile = np.asarray(tile, dtype=float)
    return gemm_size(np.maximum(np.asarray(m, dtype=float), row_tile(tile)),
                     np.maximum(np.asarray(n, dtype=float), tile), k)


def tile_frac(m, n, tile=GEMM_TILE):
    """K1b: share of the computed tile that is useful when a dimension is under one tile,
    min(1, m/r) · min(1, n/tile), r = min(tile, 8) rows (decode: m = batch tokens; tile 128
    on tensor cores and matrix units, 1 on a matrix-vector engine, the kernel table's
    `gemm.tile`)."""
    tile = np.asarray(tile, dtype=float)
    return (np.minimum(1.0, np.asarray(m, dtype=float) / row_tile(tile))
            * np.minimum(1.0, np.asarray(n, dtype=float) / tile))


def ring_steps(op: CollectiveOp | str, n_ranks):
    """K5: latency-bound steps of a collective over n ranks as NCCL runs it. A ring
    all-gather or reduce-scatter takes n−1 steps, a ring all-reduce 2(n−1); NCCL switches to
    a (double binary) tree for latency, 2·⌈log2 n⌉ steps, and uses whichever is faster, so
    the steps are min(2(n−1), 2⌈log2 n⌉) for all-reduce. All-to-all exchanges with each peer
    (n−1 steps); send/recv is one step. 0 when n = 1."""
    op = CollectiveOp(op)
    n = np.asarray(n_ranks, dtype=float)
    log_steps = 2.0 * np.ceil(np.log2(np.maximum(n, 1.0)))
    if op is CollectiveOp.ALL_REDUCE:
        steps = np.minimum(2.0 * (n - 1.0), log_steps)
    elif op is CollectiveOp.SEND_RECV:
        steps = np.ones_like(n)
    else:
        steps = n - 1.0
    return np.where(n > 1, steps, 0.0)


def bus_factor(op: CollectiveOp | str, n_ranks):
    """K5: bytes each rank puts on its link per byte of message (the nccl-tests "bus
    bandwidth" factor): 2(n−1)/n all-reduce, (n−1)/n all-gather, reduce-scatter and
    all-to-all, 1 for send/recv (Patarasuk & Yuan 2009; NVIDIA/nccl-tests
    doc/PERFORMANCE.md). `n_bytes` is the full message: the all-reduced buffer, the gathered
    result, the scattered input."""
    op = CollectiveOp(op)
    n = np.asarray(n_ranks, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if op is CollectiveOp.ALL_REDUCE:
            f = 2.0 * (n - 1.0) / n
        elif op is CollectiveOp.SEND_RECV:
            f = np.ones_like(n)
        else:
            f = (n - 1.0) / n
    return np.where(n > 1, f, 0.0)


SMALL_MESSAGE_BYTES = 32 * 1024  # NCCL's low-latency protocol regime (K5b)
LATENCY_MESSAGE_BYTES = 1 << 20  # where the tables' latency_s was measured


def latency_per_step_s(n_bytes, *, small_s, large_s):
    """K5b: α per step by message size: `small_s` (measured on small messages, NCCL's LL
    protocol) up to 32 KiB, `large_s` (the 1 MiB point) from 1 MiB, interpolated in log size
    between. 8×A100 all-reduce: 43.8 µs at 32 KiB over 6 tree steps → 7.3 µs; 102 µs at 1 MiB
    less its 7.8 µs bandwidth term → 15.7 µs; a 256 KiB message: w = log(8)/log(32) = 0.6,
    7.3 + 0.6 · 8.4 = 12.3 µs."""
    lo, hi = np.log(SMALL_MESSAGE_BYTES), np.log(LATENCY_MESSAGE_BYTES)
    w = np.clip((np.log(np.maximum(np.asarray(n_bytes, dtype=float), 1.0)) - lo) / (hi - lo),
                0.0, 1.0)
    return np.asarray(small_s) * (1.0 - w) + np.asarray(large_s) * w


def collective_seconds(op: CollectiveOp | str, *, n_bytes, n_ranks, link_bytes_per_s,
                       busbw_frac, latency_s):
    """K5, the α–β form: steps(op, n) · α + bus_factor(op, n) · n_bytes / (busbw · link).
    0 when n = 1. Arguments broadcast. Example (DGX H100, ring/tree all-reduce of 1 GB over
    8 GPUs, busbw 0.80 × 450 GB/s, α = 5 µs): 6 · 5 µs + 1.75 · 1e9 / 360e9 = 4.89 ms."""
    steps = ring_steps(op, n_ranks)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = steps * latency_s + bus_factor(op, n_ranks) * np.asarray(n_bytes, dtype=float) / (
            np.asarray(busbw_frac, dtype=float) * np.asarray(link_bytes_per_s, dtype=float))
    return np.where(np.asarray(n_ranks) > 1, t, 0.0)


# ---- per-device rate arrays (what the step-time model uses) -------------------------------
@dataclass(frozen=True)
class KernelRates:
    """The kernel tables of a list of devices, as arrays with one row per device.

    `scale` multiplies the achieved rates ("gemm", "attention", "memory", "network": user
    `efficiency_overrides` gemm_scale, ...); `flat` replaces a table by a constant fraction
    (compute_frac, memory_bw_frac, network_frac overrides). Fractions beyond 1 are clipped.
    """

    gemm_size: np.ndarray  # [k] common grid
    gemm_frac: np.ndarray  # [device, k], each device at its own GEMM dtype
    gemm_tile: np.ndarray  # [device] K1b tile size
    attn_seq: np.ndarray  # [j]
    attn_frac: dict[tuple[bool, str], np.ndarray]  # (causal, direction) -> [device, j]
    mem_size: np.ndarray  # [i]
    mem_frac: np.ndarray  # [device, i]
    latency_s: dict[tuple[Tier, CollectiveOp], np.ndarray]  # [device], at 1 MiB and beyond
    small_latency_s: dict[tuple[Tier, CollectiveOp], np.ndarray]  # [device], ≤ 32 KiB (K5b)
    busbw_frac: dict[tuple[Tier, CollectiveOp], np.ndarray]  # [device]
    rule: np.ndarray  # [device] bool: the table is a rule, not a measurement
    notes: tuple[str, ...] = field(default=())  # [device]: "" or where a borrowed table is from

    def gemm(self, size, index):
        """Fraction of the dense peak for GEMMs of `size` on the devices at rows `index` (an
        int array broadcasting against `size`)."""
        return _interp_rows(size, self.gemm_size, self.gemm_frac, index)

    def attention(self, seq_len, *, causal: bool, direction: str, index):
        return _interp_rows(seq_len, self.attn_seq, self.attn_frac[(causal, direction)], index)

    def memory(self, n_bytes, index):
        return _interp_rows(n_bytes, self.mem_size, self.mem_frac, index)

    def collective(self, tier: Tier, op: CollectiveOp, index,
                   n_bytes=None) -> tuple[np.ndarray, np.ndarray]:
        """(latency per step s, large-message bus-bandwidth fraction) at rows `index`; with
        `n_bytes`, the latency of that message size (K5b, latency_per_step_s)."""
        large = self.latency_s[(tier, op)][index]
        if n_bytes is not None:
            large = latency_per_step_s(n_bytes, small_s=self.small_latency_s[(tier, op)][index],
                                       large_s=large)
        return large, self.busbw_frac[(tier, op)][index]


def _interp_rows(x, xp: np.ndarray, table: np.ndarray, index):
    """Per-device log interpolation, vectorized: `table` is [device, len(xp)]; the result
    broadcasts x against `index` (each cell's device row)."""
    lx = np.log(np.clip(np.asarray(x, dtype=float), xp[0], xp[-1]))
    lxp = np.log(xp)
    pos = np.clip(np.searchsorted(lxp, lx, side="right") - 1, 0, len(xp) - 2)
    w = (lx - lxp[pos]) / (lxp[pos + 1] - lxp[pos])
    return table[index, pos] * (1.0 - w) + table[index, pos + 1] * w


# A common grid for every device's tables (log-spaced), so per-device lookups vectorize.
_GEMM_GRID = np.geomspace(64.0, 65536.0, 31)
_ATTN_GRID = np.geomspace(128.0, 1 << 20, 27)
_MEM_GRID = np.geomspace(1e3, 1e11, 33)
_ATTN_HEAD_DIM = 128  # the curves the step model uses; other head dims via the API


def _attention_curve(entry: KernelEntry, dtype: str, causal: bool, direction: str,
                     head_dim: int = _ATTN_HEAD_DIM) -> tuple[float, ...] | None:
    """The curve closest to the request: same dtype, causal and direction, nearest head dim;
    None when the dtype has none."""
    matches = [c for c in entry.attention.curve
               if c.dtype == dtype and c.causal == causal and c.direction == direction]
    if not matches:  # causal <-> full: the same kernel, masked blocks skipped
        matches = [c for c in entry.attention.curve
                   if c.dtype == dtype and c.direction == direction]
    if not matches:
        return None
    best = min(matches, key=lambda c: (abs(math.log(c.head_dim / head_dim)), c.head_dim))
    return best.frac


def gemm_curve(entry: KernelEntry, dtype: str) -> tuple[str, tuple[float, ...]]:
    """(dtype used, fractions): the dtype's own table, else the closest wider float type
    the device has a table for (a measured bf16 curve stands in for fp16, and so on)."""
    fracs = entry.gemm.fracs
    for dt in (dtype, *_GEMM_TABLE_FALLBACK.get(dtype, ())):
        if dt in fracs:
            return dt, fracs[dt]
    dt = next(iter(fracs))
    return dt, fracs[dt]


_GEMM_TABLE_FALLBACK = {
    "fp4": ("fp8", "bf16", "fp16"), "fp8": ("bf16", "fp16"), "bf16": ("fp16",),
    "fp16": ("bf16",), "tf32": ("fp32", "bf16"), "fp32": ("tf32", "bf16"),
    "int8": ("fp8", "bf16", "fp16"), "int4": ("int8", "fp8", "bf16"),
}


def kernel_rates(devices: Sequence[Any], *, gemm_dtypes: Sequence[str],
                 attention_dtypes: Sequence[str],
                 index: Mapping[str, KernelEntry] | None = None,
                 overrides: Mapping[str, float] | None = None) -> KernelRates:
    """The kernel tables of `devices`, each at its own GEMM and attention dtype (the dtype
    whose peak it runs at), resampled on common grids, with the user's overrides:
    `compute_frac` (flat GEMM and attention fraction), `memory_bw_frac`, `network_frac`
    (flat), and multipliers `gemm_scale`, `attention_scale`, `memory_scale`, `network_scale`."""
    overrides = dict(overrides or {})
    index = index if index is not None else kernel_index(builtin_kernel_entries())
    entries, notes = [], []
    for d in devices:
        e, note = kernel_entry(d, index)
        entries.append(e)
        notes.append(note)
    n = len(devices)
    sustained = np.array([e.gemm.sustained_frac for e in entries])[:, None]
    gemm = sustained * np.array([log_interp(_GEMM_GRID, e.gemm.size, gemm_curve(e, dt)[1])
                                 for e, dt in zip(entries, gemm_dtypes, strict=True)])
    attn: dict[tuple[bool, str], np.ndarray] = {}
    for causal in (True, False):
        for direction in ("fwd", "bwd"):
            rows = []
            for e, dt in zip(entries, attention_dtypes, strict=True):
                fr = (_attention_curve(e, dt, causal, direction)
                      or _attention_curve(e, "bf16", causal, direction)
                      or _attention_curve(e, "bf16", causal, "fwd")
                      or e.attention.curve[0].frac)
                rows.append(log_interp(_ATTN_GRID, e.attention.seq_len, fr))
            attn[(causal, direction)] = sustained * np.array(rows)
    mem = np.array([log_interp(_MEM_GRID, e.memory.size_bytes, e.memory.frac) for e in entries])
    latency: dict[tuple[Tier, CollectiveOp], np.ndarray] = {}
    small: dict[tuple[Tier, CollectiveOp], np.ndarray] = {}
    busbw: dict[tuple[Tier, CollectiveOp], np.ndarray] = {}
    for tier in Tier:
        tiers = [getattr(e.collectives, tier.value) or e.collectives.scale_up for e in entries]
        for op in CollectiveOp:
            latency[(tier, op)] = np.array([t.latency(op) for t in tiers])
            small[(tier, op)] = np.array([t.small_latency(op) for t in tiers])
            busbw[(tier, op)] = np.array([t.busbw_frac(op) for t in tiers])

    def scaled(arr: np.ndarray, flat_key: str, scale_key: str) -> np.ndarray:
        if flat_key in overrides:
            arr = np.full_like(arr, float(overrides[flat_key]))
        return np.minimum(arr * float(overrides.get(scale_key, 1.0)), 1.0)

    gemm = scaled(gemm, "compute_frac", "gemm_scale")
    attn = {k: scaled(v, "compute_frac", "attention_scale") for k, v in attn.items()}
    mem = scaled(mem, "memory_bw_frac", "memory_scale")
    busbw = {k: scaled(v, "network_frac", "network_scale") for k, v in busbw.items()}
    if "collective_latency_s" in overrides:
        latency = {k: np.full(n, float(overrides["collective_latency_s"])) for k in latency}
        small = latency
    return KernelRates(
        gemm_size=_GEMM_GRID, gemm_frac=gemm,
        gemm_tile=np.array([e.gemm.tile for e in entries], dtype=float),
        attn_seq=_ATTN_GRID, attn_frac=attn, mem_size=_MEM_GRID, mem_frac=mem,
        latency_s=latency, small_latency_s=small, busbw_frac=busbw,
        rule=np.array([e.rule for e in entries], dtype=bool), notes=tuple(notes))


# ---- the public API --------------------------------------------------------------------------
def _device(device: Any, catalog: Any = None) -> tuple[Any, dict[str, KernelEntry] | None]:
    """(Device, kernel index): `device` is a catalog id (looked up in `catalog`, the built-in
    catalog by default) or a Device; the index is the catalog's kernel tables (user files
    included), None for the built-in ones."""
    if catalog is None:
        from planner.hardware.catalog import load_catalog

        catalog = load_catalog() if isinstance(device, str) else None
    index = catalog.kernel_tables() if catalog is not None else None
    if isinstance(device, str):
        return catalog.get(device), index
    if not hasattr(device, "peak_flops_per_s"):
        raise ValueError(f"device: expected a catalog id or a Device, got {type(device).__name__}")
    return device, index


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a number, got {clip(value)}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name}: expected a number, got {clip(value)}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name}: must be a finite number > 0, got {clip(value)}")
    return v


def _peak(dev: Any, dtype: str) -> float:
    value = dev.peak_flops_per_s.get(dtype)
    if not value:
        have = ", ".join(sorted(dev.peak_flops_per_s)) or "none"
        raise ValueError(f"dtype: {dev.id} has no dense {dtype} peak in the catalog "
                         f"(it has: {have})")
    return float(value)


def gemm_flops_per_s(device: Any, m: float, n: float, k: float, dtype: str = "bf16", *,
                     catalog: Any = None) -> float:
    """Achieved FLOP/s of one (m × k) · (k × n) GEMM on `device` in `dtype` (K1, K1b):
    dense peak × table fraction at the padded size (max(m, 8)·max(n, 128)·k)^(1/3) ×
    sustained share (K1c) × tile share min(1, m/8)·min(1, n/128).
    The FLOPs are 2·m·n·k; a memory-bound GEMM (decode) is limited by `memory_bytes_per_s`
    in the step-time model, not here."""
    dev, index = _device(device, catalog)
    m, n, k = (_positive(x, v) for x, v in (("m", m), ("n", n), ("k", k)))
    peak = _peak(dev, dtype)
    entry, _ = kernel_entry(dev, index)
    _, frac = entry.gemm_frac(padded_gemm_size(m, n, k, entry.gemm.tile), dtype)
    return float(peak * frac * tile_frac(m, n, entry.gemm.tile))


def attention_flops_per_s(device: Any, seq_len: float, head_dim: int, dtype: str = "bf16",
                          causal: bool = True, backward: bool = False, *,
                          catalog: Any = None) -> float:
    """Achieved FLOP/s of fused (flash) attention (K2) at `seq_len`, counting the FLOPs the
    kernel executes (causal: the masked half is skipped and not counted), forward or
    backward pass."""
    dev, index = _device(device, catalog)
    seq = _positive("seq_len", seq_len)
    hd_value = _positive("head_dim", head_dim)
    if hd_value != int(hd_value):
        raise ValueError(f"head_dim: must be a whole number >= 1, got {clip(head_dim)}")
    hd = int(hd_value)
    peak = _peak(dev, dtype)
    entry, _ = kernel_entry(dev, index)
    direction = "bwd" if backward else "fwd"
    fr = (_attention_curve(entry, dtype, bool(causal), direction, hd)
          or _attention_curve(entry, "bf16", bool(causal), direction, hd)
          or _attention_curve(entry, "bf16", bool(causal), "fwd", hd))
    assert fr is not None
    return float(peak * entry.gemm.sustained_frac
                 * log_interp(seq, entry.attention.seq_len, fr))


def memory_bytes_per_s(device: Any, n_bytes: float, *, catalog: Any = None) -> float:
    """Achieved device-memory bandwidth (K3) for moving `n_bytes` (read + written)."""
    dev, index = _device(device, catalog)
    nb = _positive("n_bytes", n_bytes)
    if dev.memory_bw_bytes_per_s is None:
        raise ValueError(f"device: {dev.id} has no memory bandwidth in the catalog")
    entry, _ = kernel_entry(dev, index)
    return float(dev.memory_bw_bytes_per_s * entry.memory_frac(nb))


def collective_time_s(device: Any, op: str, n_bytes: float, n_ranks: int,
                      tier: str | None = None, *, catalog: Any = None) -> float:
    """Seconds for one collective (K5) of an `n_bytes` message over `n_ranks` devices.

    `op`: all_reduce, all_gather, reduce_scatter, all_to_all, send_recv. `tier`: "scale_up"
    or "scale_out"; None picks scale-up when n_ranks fits in one scale-up domain, else
    scale-out at the device's own per-direction scale-out bandwidth (one NIC's share: a flat
    collective). NB: the planner's data-parallel collectives across nodes are hierarchical and
    use every NIC of a node at once (docs/planning.md P13b), up to 8× faster than this.

    In all four functions `catalog` (a `load_catalog(...)` result) resolves ids and supplies
    its `[[kernels]]` tables, user files included; by default the built-in catalog."""
    dev, index = _device(device, catalog)
    try:
        op_ = CollectiveOp(op)
    except ValueError:
        raise ValueError(f"op: {clip(op)} is not one of "
                         f"{', '.join(o.value for o in CollectiveOp)}") from None
    nb = _positive("n_bytes", n_bytes)
    if isinstance(n_ranks, bool) or not isinstance(n_ranks, (int, np.integer)) or n_ranks < 1:
        raise ValueError(f"n_ranks: must be a whole number >= 1, got {clip(n_ranks)}")
    if tier is None:
        tier_ = (Tier.SCALE_UP if n_ranks <= (dev.scaleup_domain_size or 1)
                 else Tier.SCALE_OUT)
    else:
        try:
            tier_ = Tier(tier)
        except ValueError:
            raise ValueError(f"tier: {clip(tier)} is not one of scale_up, scale_out") from None
    bw = (dev.scaleup_bw_bytes_per_s if tier_ is Tier.SCALE_UP
          else dev.scaleout_bw_bytes_per_s)
    if bw is None:
        raise ValueError(f"device: {dev.id} has no {tier_.value} bandwidth in the catalog")
    entry, _ = kernel_entry(dev, index)
    t = getattr(entry.collectives, tier_.value) or entry.collectives.scale_up
    alpha = latency_per_step_s(nb, small_s=t.small_latency(op_), large_s=t.latency(op_))
    return float(collective_seconds(op_, n_bytes=nb, n_ranks=n_ranks, link_bytes_per_s=bw,
                                    busbw_frac=t.busbw_frac(op_), latency_s=alpha))


# ---- peaks and fixed costs ---------------------------------------------------------------------
# Time below which a kernel cannot finish: the host has to issue it (driver call, argument
# marshalling, queueing). "A few microseconds" per CUDA launch; NVIDIA's Nsight Systems guide
# measured ~20 µs host-to-device for one eager PyTorch element-wise kernel on a V100 (quoted by
# groundy.com, "Every CUDA kernel pays a launch tax"). 5 µs assumes an asynchronous, mostly
# fused runtime (Megatron, CUDA graphs, XLA). NB: an order of magnitude, not a measurement.
OP_OVERHEAD_S = 5e-6


def op_overhead_s(overrides: Mapping[str, float] | None = None) -> float:
    """The per-op launch floor, or the user's `efficiency_overrides["op_overhead_s"]`."""
    return float((overrides or {}).get("op_overhead_s", OP_OVERHEAD_S))


# Which dense peaks may stand in for a policy's matmul dtype, best first: bf16 and fp16 are
# one 16-bit float class (a device without bf16, V100 or T4, runs 16-bit serving in fp16, as
# frameworks do). Every other dtype means itself on every device kind: an fp8 recipe is
# refused on a device without fp8, weight-only int8/int4 computes in bf16 everywhere (GPU,
# TPU or FPGA), and int8 compute (the W8A8 policy) needs an int8 peak. A device without any
# dtype of the chain is refused with that reason (TrainReason/InferReason.NO_PEAK).
_PEAK_CHAIN = {
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
}


def peak_dtype_chain(compute_dtype: str) -> tuple[str, ...]:
    """dtypes whose dense peak may stand in for `compute_dtype`, best first (the same in
    training and serving, on every device kind: docs/planning.md A17)."""
    return _PEAK_CHAIN.get(compute_dtype, (compute_dtype,))


def device_peak(device: Any, compute_dtype: str) -> tuple[float, str]:
    """(dense peak FLOP/s, dtype used) for a device; (nan, "") when no dtype of the chain has a
    peak in the catalog."""
    for dtype in peak_dtype_chain(compute_dtype):
        value = device.peak_flops_per_s.get(dtype)
        if value:
            return float(value), dtype
    return float("nan"), ""


def attention_dtype(compute_dtype: str) -> str:
    """The dtype fused attention (and, in training, the embedding and LM head: A22) runs in:
    fp8 and fp4 recipes keep them in bf16 (Transformer Engine's default; FP8 attention is
    opt-in, `fp8_dpa`; NVFP4 pretraining keeps attention in bf16), every other policy
    computes attention in its matmul dtype."""
    return "bf16" if compute_dtype in ("fp8", "fp4") else compute_dtype
