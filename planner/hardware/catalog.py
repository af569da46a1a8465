"""Hardware catalog: the `Device` schema, loading and validating `hardware_catalog/*.toml`,
lookups with suggestions, and price selection.

Conventions (see `hardware_catalog/README.md`):

* Everything is SI once loaded: bytes, bytes/s, FLOP/s (OP/s for integer types), W, USD.
  A data file may write a number in SI units or a string with an explicit unit, e.g.
  ``"32 GiB"``, ``"820 GiB/s"``, ``"400 Gb/s"`` (bits), ``"989.4 TFLOP/s"``; the unit is
  converted here, once, so GB vs GiB and Gb vs GB stay visible in the data.
* Peaks are **dense** (no 2:4 structured sparsity). The vendor's sparse headline may be kept in
  `sparse_peak_flops_per_s`; a dense peak that is not below it is rejected.
* Link bandwidths are **per direction**; marketing figures are usually bidirectional totals.
* A value nobody knows is absent (`None`, or a missing dtype key), never zero.
* Every price has a provider, a contract, a basis and a date; the date travels with the price.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, get_args

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from planner.errors import ECHO_MAX_CHARS, InputError, clip
from planner.hardware.kernels import (
    MAX_CATALOG_FILE_BYTES,
    KernelEntry,
    builtin_kernel_entries,
    decode_catalog_bytes,
    kernel_entry,
    kernel_index,
    parse_catalog_toml,
    read_catalog_text,
    read_kernel_entries,
)

Dtype = Literal["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "fp4", "int8", "int4"]
Kind = Literal["gpu", "tpu", "fpga", "asic", "other"]
Contract = Literal["on-demand", "reserved", "spot", "capacity-block", "list", "street"]

DTYPES: tuple[str, ...] = get_args(Dtype)
KINDS: tuple[str, ...] = get_args(Kind)
CONTRACTS: tuple[str, ...] = get_args(Contract)
CLOUD_CONTRACTS = ("on-demand", "reserved", "spot", "capacity-block")
PURCHASE_CONTRACTS = ("list", "street")

CATALOG_DIR = Path(__file__).resolve().parents[2] / "hardware_catalog"
SCHEMA_PATH = CATALOG_DIR / "schema.json"

# Bounds on what a catalog may hold (the built-in one has a few dozen devices): files larger
# than MAX_CATALOG_FILE_BYTES (planner.hardware.kernels, 5 MB) are refused unread, a catalog
# (built-in plus user files) holds at most MAX_CATALOG_DEVICES devices, and an id is at most
# MAX_ID_CHARS characters of [a-z0-9_].
MAX_CATALOG_DEVICES = 10_000
MAX_ID_CHARS = 64

# Precision ladder for the "a lower precision is never slower" check: a dtype of higher rank must
# have a peak >= every present dtype of lower rank (bf16 and fp16 share a rank and are not
# compared with each other). Integer types are checked separately (int4 >= int8).
_FLOAT_RANK = {"fp64": 0, "fp32": 1, "tf32": 2, "bf16": 3, "fp16": 3, "fp8": 4, "fp4": 5}
_INT_RANK = {"int8": 0, "int4": 1}


# ---------------------------------------------------------------------------------------------
# Quantities: numbers in SI base units, or strings with an explicit unit.
# ---------------------------------------------------------------------------------------------

# unit -> (power of ten, extra factor): the value is float("<number>e<power>") * factor, so decimal
# prefixes stay exact ("33.3 TOP/s" -> 3.33e13, not 33.3 * 1e12 = 33299999999999.996).
_UNITS: dict[str, dict[str, tuple[int, float]]] = {
    "B": {
        "B": (0, 1.0), "kB": (3, 1.0), "MB": (6, 1.0), "GB": (9, 1.0), "TB": (12, 1.0),
        "KiB": (0, 2.0**10), "MiB": (0, 2.0**20), "GiB": (0, 2.0**30), "TiB": (0, 2.0**40),
    },
    "B/s": {
        "B/s": (0, 1.0), "MB/s": (6, 1.0), "GB/s": (9, 1.0), "TB/s": (12, 1.0),
        "MiB/s": (0, 2.0**20), "GiB/s": (0, 2.0**30), "TiB/s": (0, 2.0**40),
        # bits per second (network links): lower-case b, divided by 8
        "Mb/s": (6, 1 / 8), "Gb/s": (9, 1 / 8), "Tb/s": (12, 1 / 8),
    },
    "FLOP/s": {
        "FLOP/s": (0, 1.0), "GFLOP/s": (9, 1.0), "TFLOP/s": (12, 1.0), "PFLOP/s": (15, 1.0),
        "OP/s": (0, 1.0), "GOP/s": (9, 1.0), "TOP/s": (12, 1.0), "POP/s": (15, 1.0),
    },
    "W": {"W": (0, 1.0), "kW": (3, 1.0)},
}
_QUANTITY_RE = re.compile(
    r"^\s*([0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE]([+-]?[0-9]+))?\s*([A-Za-z/]+)\s*$"
)


def parse_quantity(value: Any, base_unit: str) -> Any:
    """Convert ``"32 GiB"`` to 34359738368.0 (for base unit "B"); numbers pass through as SI.

    Units are case-sensitive: ``Gb/s`` is gigabits, ``GB/s`` gigabytes. Anything else is left for
    pydantic's own type check (so a list or a bool gives the usual "should be a number" error).
    """
    if not isinstance(value, str):
        return value
    units = _UNITS[base_unit]
    match = _QUANTITY_RE.match(value)
    if match is None or match.group(3) not in units:
        raise ValueError(
            f"cannot read {clip(value)}: give a number in {base_unit} or a string "
            "'<number> <unit>' "
            f"with unit one of {', '.join(units)}"
        )
    power, factor = units[match.group(3)]
    exponent = int(match.group(2) or 0) + power
    return float(f"{match.group(1).replace('_', '')}e{exponent}") * factor


def _quantity_json_schema(base_unit: str) -> dict[str, Any]:
    units = "|".join(re.escape(u) for u in _UNITS[base_unit])
    number: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0}
    return {
        "anyOf": [
            number,
            {"type": "string",
             "pattern": rf"^\s*[0-9][0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9]+)?\s*({units})\s*$"},
        ],
        "description": f"{base_unit} (SI number) or a string with a unit: "
        f"{', '.join(_UNITS[base_unit])}",
    }


def _to_si(base_unit: str) -> BeforeValidator:
    return BeforeValidator(lambda v: parse_quantity(v, base_unit))


# Sanity ranges of a device's numbers (SI): 100-1000x past any chip today (the largest: 288 GB,
# 8 TB/s, a few PFLOP/s dense, 1.2 kW; a Cerebras wafer draws 23 kW) and far above zero, so
# that every time, cost and energy computed from them stays finite and non-zero, and a unit
# slip ("memory_bytes = 80" for 80 GB) is refused.
QUANTITY_RANGES: dict[str, tuple[float, float]] = {
    "B": (1e6, 1e16), "B/s": (1e6, 1e16), "FLOP/s": (1e9, 1e19), "W": (0.1, 1e6)}


def _in_range(base_unit: str) -> AfterValidator:
    low, high = QUANTITY_RANGES[base_unit]

    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"{value:g} {base_unit} is outside the allowed range {low:g} to "
                             f"{high:g} {base_unit}")
        return value

    return AfterValidator(check)


_POSITIVE = Field(gt=0, allow_inf_nan=False)
Bytes: TypeAlias = Annotated[
    float, _to_si("B"), _POSITIVE, _in_range("B"), WithJsonSchema(_quantity_json_schema("B"))
]
BytesPerS: TypeAlias = Annotated[
    float, _to_si("B/s"), _POSITIVE, _in_range("B/s"),
    WithJsonSchema(_quantity_json_schema("B/s"))
]
FlopsPerS: TypeAlias = Annotated[
    float, _to_si("FLOP/s"), _POSITIVE, _in_range("FLOP/s"),
    WithJsonSchema(_quantity_json_schema("FLOP/s"))
]
Watts: TypeAlias = Annotated[
    float, _to_si("W"), _POSITIVE, _in_range("W"), WithJsonSchema(_quantity_json_schema("W"))
]

_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def _date_key(date: str) -> tuple[int, int, int]:
    """Sort key for "YYYY", "YYYY-MM" or "YYYY-MM-DD" (missing parts sort first)."""
    year, month, day = [*(int(p) for p in date.split("-")), 0, 0][:3]
    return year, month, day


# A price dated after today is refused; two days of slack keep a machine whose clock is a
# little behind, or in another time zone, loading the built-in prices.
PRICE_DATE_SLACK_DAYS = 2


def _check_date(value: Any, *, day_required: bool, past_only: bool = False) -> Any:
    """A date string (YYYY[-MM[-DD]]) that exists. `past_only` (prices): its first day is not
    after today, else the future price would be taken as today's."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        value = value.isoformat()
    if not isinstance(value, str):
        return value  # pydantic reports "should be a valid string"
    form = "YYYY-MM-DD" if day_required else "YYYY, YYYY-MM or YYYY-MM-DD"
    if not _DATE_RE.match(value) or (day_required and len(value) != 10):
        raise ValueError(f"date {clip(value)} is not {form}")
    fmt = {4: "%Y", 7: "%Y-%m", 10: "%Y-%m-%d"}[len(value)]
    try:
        parsed = dt.datetime.strptime(value, fmt).date()
    except ValueError:
        raise ValueError(f"date {value!r} is not a calendar date ({form})") from None
    today = dt.date.today()
    if past_only and parsed > today + dt.timedelta(days=PRICE_DATE_SLACK_DAYS):
        raise ValueError(f"date {value!r} is in the future (today is {today.isoformat()}); a "
                         "price is dated when it was observed")
    # A year of slack: catches typos (2062) without making the built-in data depend on the
    # machine's clock or time zone.
    if parsed > today + dt.timedelta(days=365):
        raise ValueError(f"date {value!r} is more than a year in the future")
    if parsed.year < 1990:
        raise ValueError(f"date {value!r} is before 1990")
    return value


def _one_line_text(value: str) -> str:
    """Names (vendor, product, link, provider) are one line of printable text: no CR, LF, NUL
    or other control character, which would break the tables, CSV files and messages."""
    for pos, ch in enumerate(value):
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise ValueError(f"control character {ch!r} at position {pos}; a name is one line "
                             "of printable text")
    return value


PriceDate = Annotated[
    str,
    BeforeValidator(lambda v: _check_date(v, day_required=False, past_only=True)),
    WithJsonSchema({"type": "string", "pattern": r"^\d{4}(-\d{2}(-\d{2})?)?$",
                    "description": "YYYY, YYYY-MM or YYYY-MM-DD (as precise as the source)"}),
]
DayDate = Annotated[
    str,
    BeforeValidator(lambda v: _check_date(v, day_required=True)),
    WithJsonSchema({"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$",
                    "description": "YYYY-MM-DD"}),
]


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class Price(BaseModel):
    """One dated price point: a cloud rate per device-hour or a purchase price per device."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["cloud", "purchase"] = Field(
        description="'cloud' (rent, usd_per_hour) or 'purchase' (buy, usd)."
    )
    provider: str = Field(
        min_length=1, description="Who charges it: 'AWS', 'RunPod', 'GCP', 'MSRP', ..."
    )
    basis: str = Field(
        min_length=1,
        description="Instance shape and how the per-device figure was made, "
        "e.g. 'p5.48xlarge $55.04/h / 8 GPUs, us-east-1'.",
    )
    contract: Contract = Field(
        description="Cloud: on-demand, reserved, spot or capacity-block. Purchase: list or street."
    )
    usd_per_hour: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Cloud: USD per device-hour."
    )
    usd: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Purchase: USD per device."
    )
    date: PriceDate = Field(description="When the price was observed (as precise as the source).")
    source: str = Field(min_length=1, description="Where the price was read (URL, repo path).")
    estimate: bool = Field(
        default=False,
        description="True when no observed price exists and this one is an estimate; `basis` "
        "says how it was made. Costs from it are flagged in `cost_note`.",
    )
    max_devices: int | None = Field(
        default=None, ge=1, le=10_000_000,
        description="The largest job (devices) this offer serves, where the source states it "
        "(a cluster or capacity-block offer); None = not stated, taken as one node.",
    )

    @field_validator("provider")
    @classmethod
    def _provider_one_line(cls, value: str) -> str:
        return _one_line_text(value)

    @model_validator(mode="after")
    def _amount_matches_kind(self) -> Price:
        if self.kind == "cloud":
            if self.usd_per_hour is None or self.usd is not None:
                raise ValueError("usd_per_hour: a cloud price needs usd_per_hour and no usd")
            if self.contract not in CLOUD_CONTRACTS:
                raise ValueError(
                    f"contract: a cloud price's contract is one of {', '.join(CLOUD_CONTRACTS)}"
                )
        else:
            if self.usd is None or self.usd_per_hour is not None:
                raise ValueError("usd: a purchase price needs usd and no usd_per_hour")
            if self.contract not in PURCHASE_CONTRACTS:
                raise ValueError(
                    "contract: a purchase price's contract is one of "
                    f"{', '.join(PURCHASE_CONTRACTS)}"
                )
        return self


def _fmt_peak(dtype: str, value: float) -> str:
    return f"{value / 1e12:.6g} {'TOP/s' if dtype.startswith('int') else 'TFLOP/s'}"


class Device(BaseModel):
    """One accelerator (one chip or one card) as a planner sees it. All numbers SI."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_]*$",
        description="Stable id, lower-case snake case, e.g. 'nvidia_h100_sxm'.",
    )
    vendor: str = Field(min_length=1, description="Who makes it.")
    name: str = Field(min_length=1, description="Product name as people say it.")
    kind: Kind = Field(description="gpu, tpu, fpga, asic or other.")
    launch_year: int = Field(
        ge=1990, le=2100, description="Year of launch or general availability."
    )
    peak_flops_per_s: dict[Dtype, FlopsPerS] = Field(
        description="DENSE peak per dtype, FLOP/s (OP/s for int8/int4). A dtype nobody knows, or "
        "the device lacks, is left out. Halve 2:4-sparse vendor headlines."
    )
    sparse_peak_flops_per_s: dict[Dtype, FlopsPerS] = Field(
        default_factory=dict,
        description="The vendor's headline WITH structured sparsity, kept only to catch a sparse "
        "figure copied as dense: each dense peak must be below it.",
    )
    memory_bytes: Bytes = Field(
        description="Device memory capacity in bytes (vendor 'GB' = 1e9, 'GiB' = 2**30)."
    )
    memory_bw_bytes_per_s: BytesPerS | None = Field(
        default=None, description="Peak memory bandwidth, bytes/s; absent when unknown."
    )
    scaleup_link: str | None = Field(
        default=None, description="Scale-up interconnect: 'NVLink 4', 'ICI', 'PCIe Gen4 x16', ..."
    )
    scaleup_bw_bytes_per_s: BytesPerS | None = Field(
        default=None, description="Scale-up bandwidth PER DIRECTION per device, bytes/s."
    )
    scaleup_domain_size: int | None = Field(
        default=None, ge=1, description="Devices in one scale-up domain (8 HGX, 72 NVL72, ...)."
    )
    scaleout_bw_bytes_per_s: BytesPerS | None = Field(
        default=None, description="Scale-out network per device, per direction, bytes/s "
        "(for TPUs the data-centre network between slices)."
    )
    torus_dims: int | None = Field(
        default=None, ge=1, le=3,
        description="Axes of a torus scale-up network (TPU ICI: 2 or 3); None = a switch or "
        "a mesh. A collective gets the links of the axes its group spans (P9c).",
    )
    ici_link_bw_bytes_per_s: BytesPerS | None = Field(
        default=None, description="One torus link, one direction, bytes/s (2 links per axis).",
    )
    slice_max_chips: int | None = Field(
        default=None, ge=1,
        description="Largest slice on one torus (the scale-up domain searched); beyond it, "
        "slices are joined over the scale-out network (multi-slice data parallelism).",
    )
    tdp_w: Watts | None = Field(default=None, description="Board/module power limit, W.")
    idle_power_w: Watts | None = Field(
        default=None, description="The device's own power when idle, W (measured or published)."
    )
    system_power_w: Watts | None = Field(
        default=None,
        description="Full-load wall power of the system per device, W: the server's (node's, "
        "rack's) power with its CPUs, memory, NICs, fans and switches, divided by its devices. "
        "Facility overhead (PUE) is not in it.",
    )
    secondary_memory_bytes: Bytes | None = Field(
        default=None,
        description="A slower second memory on the card beside `memory_bytes` (an FPGA's DDR "
        "beside its HBM), bytes; what does not fit the first tier is read from here.",
    )
    secondary_memory_bw_bytes_per_s: BytesPerS | None = Field(
        default=None, description="Peak bandwidth of the secondary memory, bytes/s."
    )
    inference_only: bool = Field(
        default=False,
        description="True for a chip its vendor ships no training stack for (Inferentia); "
        "training on it is refused with that reason.",
    )
    prices: tuple[Price, ...] = Field(default=(), description="Dated price points.")
    price_note: str = Field(default="", description="Why no price (or no purchase price) is known.")
    sources: tuple[str, ...] = Field(min_length=1, description="Where the numbers come from.")
    checked_on: DayDate = Field(description="When the entry was last checked, YYYY-MM-DD.")
    notes: str = Field(default="", description="Caveats a planner user should know.")
    unconfirmed: tuple[str, ...] = Field(
        default=(),
        description="Fields whose value is not confirmed by a primary source, e.g. 'tdp_w' or "
        "'peak_flops_per_s.int8'.",
    )

    @field_validator("prices", mode="before")
    @classmethod
    def _prices_list(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("id")
    @classmethod
    def _id_length(cls, value: str) -> str:
        if len(value) > MAX_ID_CHARS:
            raise ValueError(f"{len(value):,} characters; an id is at most {MAX_ID_CHARS}")
        return value

    @field_validator("vendor", "name", "scaleup_link")
    @classmethod
    def _names_one_line(cls, value: str | None) -> str | None:
        return None if value is None else _one_line_text(value)

    @model_validator(mode="after")
    def _relations(self) -> Device:
        peaks = self.peak_flops_per_s
        for dtype, sparse in self.sparse_peak_flops_per_s.items():
            if dtype in peaks and peaks[dtype] >= sparse:
                raise ValueError(
                    f"peak_flops_per_s.{dtype}: {_fmt_peak(dtype, peaks[dtype])} is not below the "
                    f"2:4-sparse headline ({_fmt_peak(dtype, sparse)}); peaks must be dense "
                    "(usually the sparse headline / 2)"
                )
        for ranks in (_FLOAT_RANK, _INT_RANK):
            present = [d for d in ranks if d in peaks]
            for low in present:
                for high in present:
                    if ranks[high] > ranks[low] and peaks[high] < peaks[low] * (1 - 1e-9):
                        raise ValueError(
                            f"peak_flops_per_s.{high}: {_fmt_peak(high, peaks[high])} is below "
                            f"the {low} peak ({_fmt_peak(low, peaks[low])}); a lower precision is "
                            "never slower - check for a sparse, per-superchip or vector-unit figure"
                        )
        if self.tdp_w is not None:
            if self.system_power_w is not None and self.system_power_w < self.tdp_w:
                raise ValueError(
                    f"system_power_w: {self.system_power_w:g} W is below tdp_w ({self.tdp_w:g} W); "
                    "the system's power per device includes the device's own")
            if self.idle_power_w is not None and self.idle_power_w >= self.tdp_w:
                raise ValueError(f"idle_power_w: {self.idle_power_w:g} W is not below tdp_w "
                                 f"({self.tdp_w:g} W)")
        if (self.torus_dims is None) != (self.ici_link_bw_bytes_per_s is None):
            raise ValueError("ici_link_bw_bytes_per_s: give torus_dims and the link bandwidth "
                             "together, or neither")
        if (self.secondary_memory_bytes is None) != (self.secondary_memory_bw_bytes_per_s is None):
            raise ValueError("secondary_memory_bw_bytes_per_s: give the secondary memory's size "
                             "and bandwidth together, or neither")
        if not self.prices and not self.price_note.strip():
            raise ValueError(
                "price_note: no price given; add [[device.prices]] or say why none is known"
            )
        known = set(type(self).model_fields)
        for name in self.unconfirmed:
            top, _, sub = name.partition(".")
            value: Any = getattr(self, top, None)
            has_sub = isinstance(value, Mapping) and sub in value
            if top not in known or (sub and not has_sub) or (not sub and not value):
                raise ValueError(
                    f"unconfirmed: {name!r} is not a field with a value here; use a field name "
                    "such as 'tdp_w' or 'peak_flops_per_s.int8'"
                )
        return self

    @property
    def trains(self) -> bool:
        """Whether a training software stack exists for the device: not for an FPGA (no
        framework trains transformers on one; the published FPGA LLM designs, FlightLLM, DFX,
        LoopLynx, serve only) nor for a chip marked `inference_only`."""
        return self.kind != "fpga" and not self.inference_only

    def no_training_text(self) -> str:
        """Why the device is refused for training ("" when it trains)."""
        if self.kind == "fpga":
            return (f"{self.name} is an FPGA: no training software stack exists for "
                    "transformers on FPGAs (FlightLLM, DFX and LoopLynx serve only)")
        if self.inference_only:
            return (f"{self.name} is an inference-only chip: its vendor ships no training "
                    "stack for it")
        return ""

    def peak(self, dtype: str) -> float | None:
        """Dense peak FLOP/s (OP/s for integer types) for `dtype`; None if unknown or absent."""
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {clip(dtype)}; allowed: {', '.join(DTYPES)}")
        return self.peak_flops_per_s.get(dtype)  # type: ignore[call-overload]

    @property
    def cloud_providers(self) -> list[str]:
        """Providers with at least one cloud price, in first-seen order."""
        return list(dict.fromkeys(p.provider for p in self.prices if p.kind == "cloud"))

    def cloud_price(
        self,
        *,
        provider: str | None = None,
        contract: str | None = "on-demand",
        override_usd_per_hour: float | None = None,
    ) -> Price | None:
        """The cloud price to use, with its date.

        With `override_usd_per_hour` a synthetic price (provider "user override", today's date)
        is returned. Otherwise the prices matching `provider` (case-insensitive; None = any) and
        `contract` (None = any) are reduced to each provider's most recent date, and the cheapest
        of those is returned (a newer price from the same provider supersedes an older one).
        None when nothing matches.
        """
        if override_usd_per_hour is not None:
            return Price(
                kind="cloud", provider="user override", basis="given by the user",
                contract=contract or "on-demand",  # type: ignore[arg-type]
                usd_per_hour=override_usd_per_hour, date=dt.date.today().isoformat(),
                source="user override",
            )
        current = self.current_cloud_prices(provider=provider, contract=contract)
        if not current:
            return None
        # the cheapest; on a tie the newest, then the offer that serves the most devices
        return min(current, key=lambda p: (p.usd_per_hour, tuple(-x for x in _date_key(p.date)),
                                           -(p.max_devices or 0)))

    def current_cloud_prices(self, *, provider: str | None = None,
                             contract: str | None = "on-demand") -> list[Price]:
        """The cloud prices matching `provider` (case-insensitive; None = any) and `contract`
        (None = any), each provider's most recent date only (a newer price from the same
        provider supersedes an older one)."""
        if contract is not None and contract not in CLOUD_CONTRACTS:
            raise ValueError(
                f"unknown cloud contract {clip(contract)}; allowed: "
                f"{', '.join(CLOUD_CONTRACTS)}"
            )
        matching = [
            p for p in self.prices
            if p.kind == "cloud"
            and (contract is None or p.contract == contract)
            and (provider is None or p.provider.lower() == provider.lower())
        ]
        latest: dict[str, tuple[int, int, int]] = {}
        for p in matching:
            key = p.provider.lower()
            latest[key] = max(latest.get(key, (0, 0, 0)), _date_key(p.date))
        return [p for p in matching if _date_key(p.date) == latest[p.provider.lower()]]

    def purchase_price(self, *, override_usd: float | None = None) -> Price | None:
        """The most recent purchase price (the lower one on a tie), or a user override."""
        if override_usd is not None:
            return Price(
                kind="purchase", provider="user override", basis="given by the user",
                contract="list", usd=override_usd, date=dt.date.today().isoformat(),
                source="user override",
            )
        purchases = [p for p in self.prices if p.kind == "purchase"]
        if not purchases:
            return None
        return max(purchases, key=lambda p: (_date_key(p.date), -(p.usd or 0.0)))


DEVICE_FIELDS: tuple[str, ...] = tuple(Device.model_fields)
_PEAK_COLUMN = {d: f"peak_{d}_{'ops' if d.startswith('int') else 'flops'}_per_s" for d in DTYPES}
FRAME_COLUMNS: tuple[str, ...] = (
    "id", "vendor", "name", "kind", "launch_year",
    *_PEAK_COLUMN.values(),
    "memory_bytes", "memory_bw_bytes_per_s",
    "scaleup_link", "scaleup_bw_bytes_per_s", "scaleup_domain_size", "scaleout_bw_bytes_per_s",
    "tdp_w",
    "cloud_usd_per_hour", "cloud_price_provider", "cloud_price_contract", "cloud_price_date",
    "purchase_usd", "purchase_price_date", "n_prices", "price_note",
    "gemm_frac", "memory_copy_frac", "kernels_rule",
    "unconfirmed", "checked_on",
)


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


def _nan(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Catalog:
    """An ordered, id-unique collection of devices. `origins` maps id -> files that defined it."""

    devices: tuple[Device, ...]
    origins: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    # device id -> its kernel-rate table (planner.hardware.kernels); the built-in tables when
    # empty. User files' [[kernels]] tables replace the built-in ones of the ids they list.
    kernels: Mapping[str, KernelEntry] = field(default_factory=dict, compare=False)

    def kernel_tables(self) -> Mapping[str, KernelEntry]:
        """device id -> kernel table: this catalog's, or the built-in ones when it has none."""
        return self.kernels or kernel_index(builtin_kernel_entries())

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for device in self.devices:
            if device.id in seen:
                raise ValueError(f"duplicate device id {device.id!r}")
            seen.add(device.id)

    def __iter__(self) -> Iterator[Device]:
        return iter(self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    def __contains__(self, item: object) -> bool:
        device_id = item.id if isinstance(item, Device) else item
        return any(d.id == device_id for d in self.devices)

    def ids(self) -> list[str]:
        return [d.id for d in self.devices]

    def get(self, device_id: str) -> Device:
        """The device with this id; ValueError suggesting the closest ids otherwise."""
        for device in self.devices:
            if device.id == device_id:
                return device
        hints = suggest(device_id, self.ids())
        hint = f"; did you mean {', '.join(hints)}?" if hints else ""
        raise ValueError(
            f"unknown device {clip(device_id)}{hint} ({len(self)} known; "
            "`planner catalog list`)"
        )

    def filter(
        self, *, kinds: Iterable[str] | None = None, ids: Iterable[str] | None = None
    ) -> Catalog:
        """Devices of the given kinds and/or ids (ids keep the catalog's order)."""
        devices = self.devices
        if kinds is not None:
            kinds = list(kinds)
            bad = [k for k in kinds if k not in KINDS]
            if bad:
                raise ValueError(f"unknown kind {clip(bad[0])}; allowed: {', '.join(KINDS)}")
            devices = tuple(d for d in devices if d.kind in kinds)
        if ids is not None:
            wanted = {self.get(i).id for i in ids}
            devices = tuple(d for d in devices if d.id in wanted)
        return Catalog(devices, {d.id: self.origins.get(d.id, ()) for d in devices},
                       self.kernels)

    def to_frame(
        self, *, provider: str | None = None, contract: str | None = "on-demand"
    ) -> pd.DataFrame:
        """One row per device, SI numbers in unit-suffixed columns, NaN where unknown.

        The cloud price columns use `Device.cloud_price(provider=..., contract=...)`; the
        price's provider, contract and date come with it.
        """
        rows = []
        index = self.kernel_tables()
        for d in self.devices:
            cloud = d.cloud_price(provider=provider, contract=contract)
            purchase = d.purchase_price()
            kernels, _ = kernel_entry(d, index)
            row: dict[str, Any] = {
                "id": d.id, "vendor": d.vendor, "name": d.name, "kind": d.kind,
                "launch_year": d.launch_year,
                **{col: _nan(d.peak_flops_per_s.get(dtype)) for dtype, col in _PEAK_COLUMN.items()},  # type: ignore[call-overload]
                "memory_bytes": _nan(d.memory_bytes),
                "memory_bw_bytes_per_s": _nan(d.memory_bw_bytes_per_s),
                "scaleup_link": d.scaleup_link,
                "scaleup_bw_bytes_per_s": _nan(d.scaleup_bw_bytes_per_s),
                "scaleup_domain_size": _nan(d.scaleup_domain_size),
                "scaleout_bw_bytes_per_s": _nan(d.scaleout_bw_bytes_per_s),
                "tdp_w": _nan(d.tdp_w),
                "cloud_usd_per_hour": _nan(cloud.usd_per_hour if cloud else None),
                "cloud_price_provider": cloud.provider if cloud else None,
                "cloud_price_contract": cloud.contract if cloud else None,
                "cloud_price_date": cloud.date if cloud else None,
                "purchase_usd": _nan(purchase.usd if purchase else None),
                "purchase_price_date": purchase.date if purchase else None,
                "n_prices": len(d.prices),
                "price_note": d.price_note,
                # sustained GEMM fraction of the dense peak at 8192³ (bf16 or the device's own
                # matmul dtype) and copy fraction at 1 GB (planner.hardware.kernels)
                "gemm_frac": float(kernels.gemm_frac(8192.0, "bf16")[1]),
                "memory_copy_frac": float(kernels.memory_frac(1e9)),
                "kernels_rule": kernels.rule,
                "unconfirmed": ", ".join(d.unconfirmed),
                "checked_on": d.checked_on,
            }
            rows.append(row)
        return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def suggest(query: str, candidates: Iterable[str], *, n: int = 5) -> list[str]:
    """Closest candidates to `query`: substring matches first, then difflib's close matches."""
    candidates = list(candidates)
    norm = re.sub(r"[\s\-]+", "_", query.strip().lower())
    tokens = [t for t in norm.split("_") if t]
    contains = [c for c in candidates if tokens and all(t in c for t in tokens)]
    close = difflib.get_close_matches(norm, candidates, n=n, cutoff=0.6)
    return list(dict.fromkeys(contains + close))[:n]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

_SUBMODEL_FIELDS = {"prices": tuple(Price.model_fields)}
_APPENDED = ("prices", "sources", "unconfirmed")  # user overrides add to these
_MERGED = ("peak_flops_per_s", "sparse_peak_flops_per_s")  # ... and merge keys here


def _echo(key: str, *, quoted: bool = False) -> str:
    """A key or id from the user's file as written (in quotes when `quoted`), or its clipped
    repr (`clip`) when it is long or holds characters that would break the line."""
    if len(key) + 2 <= ECHO_MAX_CHARS and key.isprintable() and "'" not in key:
        return f"'{key}'" if quoted else key
    return clip(key)


def _entry_label(raw: Any, index: int) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return f"entry {_echo(raw['id'], quoted=True)}"
    return f"entry #{index + 1} (no id)"


def _loc_str(loc: tuple[Any, ...], offsets: Mapping[str, int]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        if isinstance(part, int):
            parent = loc[i - 1] if i else ""
            out += f"[{part - offsets.get(str(parent), 0)}]"
        else:
            out += f".{_echo(str(part))}" if out else _echo(str(part))
    return out


def _format_validation_error(
    where: str, exc: ValidationError, *, offsets: Mapping[str, int] | None = None
) -> str:
    """One line: 'where: field: what is allowed' for the first problem (+ count of others)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    field_name = _loc_str(loc, offsets or {})
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        parent = next((p for p in reversed(loc[:-1]) if isinstance(p, str)), "")
        allowed = _SUBMODEL_FIELDS.get(parent, DEVICE_FIELDS)
        message = f"unknown field; allowed: {', '.join(allowed)}"
    elif first["type"] == "missing":
        message = "required field is missing"
    if not field_name and ": " in message:
        field_name, message = message.split(": ", 1)
    n_more = len(errors) - 1
    more = f" (and {n_more} more problem{'s' if n_more > 1 else ''})" if n_more else ""
    return f"{where}: {field_name or '(entry)'}: {message}{more}"


def _toml_error_line(text: str, message: str) -> str:
    """Best-effort 'entry' for a TOML syntax error: the last `id = ...` before the bad line."""
    match = re.search(r"line (\d+)", message)
    if not match:
        return "entry ?"
    line_no = int(match.group(1))
    entry = "before the first entry"
    for line in text.splitlines()[:line_no]:
        id_match = re.match(r"""\s*id\s*=\s*["']([^"']*)["']""", line)
        if id_match:
            entry = f"entry {_echo(id_match.group(1), quoted=True)}"
    return entry


def _user_path(path: str | Path) -> Path:
    """A catalog file's path; one holding a NUL (which no file name can) is refused naming it
    (the system calls would raise a bare "embedded null byte")."""
    if "\0" in str(path):
        raise InputError(clip(str(path)), "no file name holds a NUL character")
    return Path(path)


def _read_entries(path: Path) -> list[dict[str, Any]]:
    """The `[[device]]` tables of one TOML file; ValueError naming the file otherwise."""
    path = _user_path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    if path.suffix != ".toml":
        raise ValueError(f"{path}: catalog files are TOML and end in .toml")
    text = read_catalog_text(path, str(path))
    try:
        data = parse_catalog_toml(text, str(path))
    except tomllib.TOMLDecodeError as exc:
        where = _toml_error_line(text, str(exc))
        raise ValueError(f"{path}: {where}: (syntax): invalid TOML: {exc}") from None
    unknown = [k for k in data if k not in ("device", "kernels")]
    if unknown:
        raise ValueError(
            f"{path}: top level: {_echo(unknown[0])}: unknown key; a catalog file holds only "
            "[[device]] and [[kernels]] tables"
        )
    if "device" not in data and "kernels" in data:
        return []  # kernel tables only (planner.hardware.kernels reads them)
    entries = data.get("device")
    if not (isinstance(entries, list) and entries and all(isinstance(e, dict) for e in entries)):
        raise ValueError(f"{path}: top level: device: expected one or more [[device]] tables")
    if len(entries) > MAX_CATALOG_DEVICES:
        raise InputError(str(path), f"{len(entries):,} [[device]] entries; a catalog holds at "
                                    f"most {MAX_CATALOG_DEVICES:,} devices")
    return entries


def _new_device(path: Path, index: int, raw: dict[str, Any], known: Iterable[str]) -> Device:
    label = _entry_label(raw, index)
    try:
        return Device.model_validate(raw)
    except ValidationError as exc:
        missing = [str(e["loc"][0]) for e in exc.errors()
                   if e["type"] == "missing" and e["loc"]]
        if missing and isinstance(raw.get("id"), str):
            hints = suggest(raw["id"], known)
            hint = f"; did you mean {', '.join(hints)}?" if hints else ""
            raise ValueError(
                f"{path}: {label}: {missing[0]}: required field is missing (no device has this "
                f"id, so the entry must be complete; missing: {', '.join(missing)}){hint}"
            ) from None
        raise ValueError(_format_validation_error(f"{path}: {label}", exc)) from None


def _apply_override(path: Path, index: int, raw: dict[str, Any], base: Device) -> Device:
    """`base` with the entry's fields replaced; prices/sources/unconfirmed appended; peak and
    tables merged key by key."""
    label = _entry_label(raw, index)
    unknown = [k for k in raw if k not in DEVICE_FIELDS]
    if unknown:
        raise ValueError(
            f"{path}: {label}: {_echo(unknown[0])}: unknown field; allowed: "
            f"{', '.join(DEVICE_FIELDS)}"
        )
    merged: dict[str, Any] = base.model_dump()
    offsets: dict[str, int] = {}
    for key, value in raw.items():
        if key in _APPENDED and isinstance(value, list):
            offsets[key] = len(merged[key])
            merged[key] = [*merged[key], *value]
        elif key in _MERGED and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    try:
        return Device.model_validate(merged)
    except ValidationError as exc:
        raise ValueError(
            _format_validation_error(f"{path}: {label}", exc, offsets=offsets)
        ) from None


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        try:
            is_dir = path.is_dir()
        except OSError as err:  # e.g. a name too long for the file system
            raise InputError(clip(str(path)), f"cannot look up the path ({err.strerror})"
                             ) from None
        if is_dir:
            found = sorted(path.glob("*.toml"))
            if not found:
                raise ValueError(f"{path}: directory has no .toml files")
            out.extend(found)
        else:
            out.append(path)
    return out


def _load_files(
    files: Iterable[Path],
    devices: dict[str, Device],
    origins: dict[str, tuple[str, ...]],
    *,
    allow_override: bool,
) -> None:
    for path in files:
        seen_here: dict[str, int] = {}
        for index, raw in enumerate(_read_entries(path)):
            device_id = raw.get("id")
            label = _entry_label(raw, index)
            if isinstance(device_id, str):
                if device_id in seen_here:
                    raise ValueError(
                        f"{path}: {label}: id: duplicate id (also entry "
                        f"#{seen_here[device_id] + 1} in this file); each id appears once per file"
                    )
                seen_here[device_id] = index
            if isinstance(device_id, str) and device_id in devices:
                if not allow_override:
                    raise ValueError(
                        f"{path}: {label}: id: duplicate id, already defined in "
                        f"{origins[device_id][0]}; built-in ids must be unique"
                    )
                device = _apply_override(path, index, raw, devices[device_id])
            else:
                device = _new_device(path, index, raw, devices)
            devices[device.id] = device
            origins[device.id] = (*origins.get(device.id, ()), str(path))
            if len(devices) > MAX_CATALOG_DEVICES:
                raise ValueError(f"{path}: {label}: more than {MAX_CATALOG_DEVICES:,} devices "
                                 "in the catalog (built-in and user files together)")


@lru_cache(maxsize=1)
def _builtin() -> tuple[tuple[Device, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
    devices: dict[str, Device] = {}
    origins: dict[str, tuple[str, ...]] = {}
    _load_files(sorted(CATALOG_DIR.glob("*.toml")), devices, origins, allow_override=False)
    return tuple(devices.values()), tuple(origins.items())


def load_catalog(*extra_paths: str | Path) -> Catalog:
    """The built-in catalog (`hardware_catalog/*.toml`) plus user files or directories.

    A user entry whose id is new adds a device (all required fields needed). An entry whose id
    exists changes only the fields it gives: `prices`, `sources` and `unconfirmed` are appended,
    `peak_flops_per_s` and `sparse_peak_flops_per_s` are merged key by key, any
    other field is replaced. Later files apply on top of earlier ones.
    Errors are ValueError: "path: entry 'id': field: what is allowed".
    """
    builtin, builtin_origins = _builtin()
    devices = {d.id: d for d in builtin}
    origins = dict(builtin_origins)
    files = _expand(extra_paths)
    _load_files(files, devices, origins, allow_override=True)
    user_kernels = []
    for path in files:
        for entry in read_kernel_entries(path):
            unknown = [d for d in entry.devices if d not in devices]
            if unknown:
                hints = suggest(unknown[0], devices)
                hint = f"; did you mean {', '.join(hints)}?" if hints else ""
                raise ValueError(f"{path}: [[kernels]] devices: unknown device "
                                 f"{clip(unknown[0])}{hint}")
            user_kernels.append(entry)
    kernels = kernel_index([*builtin_kernel_entries(), *user_kernels])
    return Catalog(tuple(devices.values()), origins, kernels)


def validate_catalog_file(path: str | Path) -> list[Device]:
    """Validate one user file on top of the built-in catalog; the devices it adds or changes.

    For a built-in file (one inside `hardware_catalog/`) the whole built-in set is checked.
    """
    path = _user_path(path)
    if path.resolve().parent == CATALOG_DIR:
        devices: dict[str, Device] = {}
        origins: dict[str, tuple[str, ...]] = {}
        _load_files(sorted(CATALOG_DIR.glob("*.toml")), devices, origins, allow_override=False)
        return [devices[str(e.get("id"))] for e in _read_entries(path)]
    catalog = load_catalog(path)
    return [catalog.get(str(e.get("id"))) for e in _read_entries(path)]


def check_catalog_entries(path: str | Path) -> pd.DataFrame:
    """Check every `[[device]]` entry of a user file on its own, on top of the built-in catalog.

    Unlike `load_catalog`, which stops at the first error, this reports each entry: columns
    entry (1-based), id, status ("adds a device", "changes a built-in device" or "error") and
    message (the device, or the error naming file, entry and field). A file that is not valid
    TOML gives a single error row (entry 0).
    """
    path = Path(path)
    columns = ["entry", "id", "status", "message"]
    try:
        entries = _read_entries(path)
    except ValueError as err:
        return pd.DataFrame([dict(entry=0, id="", status="error", message=str(err))],
                            columns=columns)
    builtin, _ = _builtin()
    devices = {d.id: d for d in builtin}
    rows = []
    for index, raw in enumerate(entries):
        device_id = raw.get("id")
        base = devices.get(device_id) if isinstance(device_id, str) else None
        changes = base is not None
        try:
            device = (_apply_override(path, index, raw, base) if base is not None
                      else _new_device(path, index, raw, devices))
        except ValueError as err:
            rows.append(dict(entry=index + 1, id=str(device_id or ""), status="error",
                             message=str(err)))
            continue
        devices[device.id] = device
        rows.append(dict(entry=index + 1, id=device.id,
                         status="changes a built-in device" if changes else "adds a device",
                         message=f"{device.name} ({device.kind})"))
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------------------------
# JSON Schema for editors
# ---------------------------------------------------------------------------------------------


def catalog_json_schema() -> dict[str, Any]:
    """JSON Schema of a catalog file: `[[device]]` entries and `[[kernels]]` tables
    (planner.hardware.kernels). Only `id` is required per device entry,
    because a user entry for an existing id changes just the fields it gives; a new device
    needs every field the `Device` definition requires."""
    device = Device.model_json_schema(mode="validation")
    defs = device.pop("$defs", {})
    entry = {**device, "title": "DeviceEntry", "required": ["id"]}
    defs["Device"] = device
    defs["DeviceEntry"] = entry
    kernels = KernelEntry.model_json_schema(mode="validation")
    defs.update(kernels.pop("$defs", {}))
    defs["KernelEntry"] = kernels
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "planner hardware catalog file",
        "description": "Generated from planner.hardware.catalog "
        "(run `planner catalog schema --write`). "
        "Units are SI; strings with a unit ('80 GB', '32 GiB', '400 Gb/s', '989.4 TFLOP/s') "
        "are accepted. Peaks are dense; link bandwidths per direction.",
        "type": "object",
        "properties": {
            "device": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/DeviceEntry"}},
            "kernels": {"type": "array", "minItems": 1,
                        "items": {"$ref": "#/$defs/KernelEntry"}},
        },
        "anyOf": [{"required": ["device"]}, {"required": ["kernels"]}],
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }


def catalog_json_schema_text() -> str:
    return json.dumps(catalog_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_json_schema(path: str | Path = SCHEMA_PATH) -> Path:
    """Regenerate `hardware_catalog/schema.json` (or write it to `path`)."""
    path = Path(path)
    path.write_text(catalog_json_schema_text(), encoding="utf-8")
    return path


__all__ = [
    "CATALOG_DIR",
    "DTYPES",
    "FRAME_COLUMNS",
    "KINDS",
    "MAX_CATALOG_DEVICES",
    "MAX_CATALOG_FILE_BYTES",
    "SCHEMA_PATH",
    "Catalog",
    "Device",
    "Dtype",
    "Kind",
    "Price",
    "catalog_json_schema",
    "decode_catalog_bytes",
    "load_catalog",
    "parse_quantity",
    "suggest",
    "validate_catalog_file",
    "write_json_schema",
]
