"""`planner catalog ...`: list, show and validate hardware catalog entries; regenerate the schema.

`register(subparsers)` adds the sub-command to the main parser (`planner.cli`); each handler
(`args.handler`) takes the parsed arguments, returns an exit code and raises ValueError (one line)
for a user error. `main()` runs the sub-command on its own and turns a ValueError into one line
on stderr and exit code 2, as `planner.cli.main` does.
Screens show readable units (TFLOP/s, GB, GB/s, $/h); CSV files hold SI numbers.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd

from planner.cli.args import add_json_flag, check_output_path, print_json
from planner.errors import InputError
from planner.hardware.catalog import (
    CLOUD_CONTRACTS,
    KINDS,
    SCHEMA_PATH,
    Catalog,
    Device,
    Price,
    catalog_json_schema_text,
    load_catalog,
    validate_catalog_file,
    write_json_schema,
)
from planner.hardware.kernels import CollectiveOp, kernel_entry
from planner.report.tables import to_csv, to_csv_text

_DASH = "—"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `catalog` with `list`, `show`, `validate` and `schema` to an argparse subparsers."""
    parser = subparsers.add_parser(
        "catalog",
        help="list, show and validate the hardware catalog",
        description="The hardware catalog: built-in devices plus your own TOML files.",
    )
    sub = parser.add_subparsers(dest="catalog_command", required=True, metavar="COMMAND")

    p_list = sub.add_parser("list", help="one line per device (or a CSV with SI numbers)")
    p_list.add_argument("--kind", action="extend", nargs="+", choices=KINDS, metavar="KIND",
                        help=f"only these kinds ({', '.join(KINDS)})")
    p_list.add_argument("--csv", metavar="PATH",
                        help="write every column in SI units to PATH ('-' for stdout)")
    add_json_flag(p_list, "every device")
    _add_price_args(p_list)
    _add_catalog_arg(p_list)
    p_list.set_defaults(handler=cmd_list)

    p_show = sub.add_parser("show", help="everything about one device, with prices and sources")
    p_show.add_argument("id", metavar="ID", help="device id, e.g. nvidia_h100_sxm")
    _add_price_args(p_show)
    _add_catalog_arg(p_show)
    p_show.set_defaults(handler=cmd_show)

    p_validate = sub.add_parser(
        "validate", help="check catalog file(s) on top of the built-in catalog"
    )
    p_validate.add_argument("paths", nargs="+", metavar="PATH", help="TOML file(s)")
    p_validate.set_defaults(handler=cmd_validate)

    p_schema = sub.add_parser("schema", help="print or regenerate hardware_catalog/schema.json")
    group = p_schema.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {SCHEMA_PATH.name}")
    group.add_argument("--check", action="store_true",
                       help="exit 1 if the checked-in schema.json is out of date")
    p_schema.set_defaults(handler=cmd_schema)
    return parser


def _add_catalog_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", action="append", default=[], metavar="PATH",
                        help="extra catalog file or directory (repeatable); adds or overrides")


def _add_price_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", default=None,
                        help="use this provider's cloud price (default: cheapest)")
    parser.add_argument("--contract", default="on-demand", choices=(*CLOUD_CONTRACTS, "any"),
                        help="cloud contract to pick from (default: on-demand)")


def _contract(args: argparse.Namespace) -> str | None:
    return None if args.contract == "any" else args.contract


# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    if args.json and args.csv == "-":
        raise InputError("--csv", "'-' (stdout) cannot go with --json, which prints on stdout; "
                                  "give --csv a file path")
    csv_path = (check_output_path(args.csv, "--csv")
                if args.csv is not None and args.csv != "-" else None)
    catalog = load_catalog(*args.catalog)
    if args.kind:
        catalog = catalog.filter(kinds=args.kind)
    frame = catalog.to_frame(provider=args.provider, contract=_contract(args))
    if args.json:
        if csv_path is not None:
            to_csv(frame, csv_path)
        print_json(frame)
        return 0
    if csv_path is not None:
        print(f"wrote {len(frame)} devices to {to_csv(frame, csv_path)}")
        return 0
    if args.csv == "-":
        sys.stdout.write(to_csv_text(frame))
        return 0
    print(_list_table(frame))
    whose = f"{args.provider}'s latest" if args.provider else "the cheapest current"
    print(f"\n{len(frame)} devices. Peaks dense; scale-up per direction; $/h = {whose} "
          f"{args.contract} price per device-hour. `planner catalog show ID` for sources.")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    catalog = load_catalog(*args.catalog)
    print(_show_text(catalog, catalog.get(args.id), provider=args.provider,
                     contract=_contract(args)))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    builtin = set(load_catalog().ids())
    for path in args.paths:
        devices = validate_catalog_file(path)
        in_builtin_dir = Path(path).resolve().parent == SCHEMA_PATH.parent
        changed = [] if in_builtin_dir else [d.id for d in devices if d.id in builtin]
        added = [d.id for d in devices if d.id not in changed]
        parts = []
        if added:
            parts.append(f"{'defines' if in_builtin_dir else 'adds'} {', '.join(added)}")
        if changed:
            parts.append(f"changes {', '.join(changed)}")
        print(f"OK {path}: {len(devices)} entr{'y' if len(devices) == 1 else 'ies'}; "
              f"{'; '.join(parts)}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    text = catalog_json_schema_text()
    if args.write:
        print(f"wrote {write_json_schema()}")
        return 0
    if args.check:
        current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
        if current != text:
            print(f"{SCHEMA_PATH} is out of date: run `planner catalog schema --write`",
                  file=sys.stderr)
            return 1
        print(f"{SCHEMA_PATH} is up to date")
        return 0
    sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------------------------------------
# Screen formatting
# ---------------------------------------------------------------------------------------------


def _num(value: Any, scale: float = 1.0, fmt: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _DASH
    return format(value / scale, fmt)


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _list_table(frame: pd.DataFrame) -> str:
    headers = ["id", "kind", "bf16 TFLOP/s", "fp16 TFLOP/s", "fp8 TFLOP/s", "int8 TOP/s", "mem GB",
               "mem GB/s", "scale-up GB/s", "domain", "TDP W", "$/h", "price date"]
    rows = []
    for r in frame.itertuples(index=False):
        rows.append([
            r.id, r.kind,
            _num(r.peak_bf16_flops_per_s, 1e12), _num(r.peak_fp16_flops_per_s, 1e12),
            _num(r.peak_fp8_flops_per_s, 1e12),
            _num(r.peak_int8_ops_per_s, 1e12),
            _num(r.memory_bytes, 1e9), _num(r.memory_bw_bytes_per_s, 1e9),
            _num(r.scaleup_bw_bytes_per_s, 1e9), _num(r.scaleup_domain_size, 1, ".0f"),
            _num(r.tdp_w, 1, ".0f"), _num(r.cloud_usd_per_hour, 1, ".2f"),
            r.cloud_price_date if isinstance(r.cloud_price_date, str) else _DASH,
        ])
    return _table(headers, rows, right=set(range(2, 12)))


def _rate(value: float) -> str:
    return f"{value / 1e12:.4g}"


def _qty(value: float | int | None, scale: float, unit: str, fmt: str = ".4g") -> str:
    """'450 GB/s', or a dash alone when unknown."""
    return _DASH if value is None else f"{format(value / scale, fmt)} {unit}"


def _display_path(path: str) -> str:
    root = SCHEMA_PATH.parent.parent
    return str(Path(path).relative_to(root)) if Path(path).is_relative_to(root) else path


def _price_row(price: Price, chosen: tuple[Price | None, ...]) -> list[str]:
    amount = f"${price.usd_per_hour:.4g}/h" if price.kind == "cloud" else f"${price.usd:,.0f}"
    mark = "*" if any(price is c for c in chosen) else " "
    return [mark, price.provider, price.contract, amount, price.date, price.basis]


def _wrap(label: str, text: str) -> str:
    return textwrap.fill(text, width=100, initial_indent=f"{label:<14}",
                         subsequent_indent=" " * 14)


def _show_text(catalog: Catalog, d: Device, *, provider: str | None,
               contract: str | None) -> str:
    out = [f"{d.id}: {d.vendor} {d.name} ({d.kind}, {d.launch_year})", ""]
    out.append("Dense peak" + ("    " + _DASH + " (none known)" if not d.peak_flops_per_s else ""))
    for dtype, value in d.peak_flops_per_s.items():
        unit = "TOP/s" if dtype.startswith("int") else "TFLOP/s"
        sparse = d.sparse_peak_flops_per_s.get(dtype)
        extra = f"   (2:4-sparse headline {_rate(sparse)})" if sparse else ""
        flag = "   [unconfirmed]" if f"peak_flops_per_s.{dtype}" in d.unconfirmed else ""
        out.append(f"  {dtype:<6} {_rate(value):>9} {unit}{extra}{flag}")
    out.append(f"Memory        {_qty(d.memory_bytes, 1e9, 'GB')} "
               f"({_qty(d.memory_bytes, 2**30, 'GiB')}), "
               f"bandwidth {_qty(d.memory_bw_bytes_per_s, 1e9, 'GB/s')}")
    if d.scaleup_link or d.scaleup_bw_bytes_per_s or d.scaleup_domain_size:
        out.append(f"Scale-up      {d.scaleup_link or _DASH}: "
                   f"{_qty(d.scaleup_bw_bytes_per_s, 1e9, 'GB/s')} per direction, "
                   f"domain {d.scaleup_domain_size or _DASH}")
    else:
        out.append(f"Scale-up      {_DASH}")
    out.append(f"Scale-out     {_qty(d.scaleout_bw_bytes_per_s, 1e9, 'GB/s')} per direction")
    out.append(f"TDP           {_qty(d.tdp_w, 1, 'W', '.0f')}")
    kernels, note = kernel_entry(d, catalog.kernel_tables())
    gemm_dtype, gemm = kernels.gemm_frac(8192.0, "bf16")
    copy = kernels.memory_frac(1e9)
    up = kernels.collectives.scale_up
    out.append(f"Kernels       {'rule' if kernels.rule else 'measured'}: {gemm_dtype} GEMM 8192^3 "
               f"{gemm:.2f} of peak (sustained), copy 1 GB {copy:.2f} of bandwidth, "
               f"all-reduce {up.all_reduce:.2f} of the scale-up link, "
               f"{up.latency(CollectiveOp.ALL_REDUCE) * 1e6:g} us per step"
               + (f" ({note})" if note else ""))
    out.append(_wrap("", "source: " + kernels.gemm.source))
    chosen = (d.cloud_price(provider=provider, contract=contract), d.purchase_price())
    if d.prices:
        out += ["", "Prices (* = used: the cheapest of each provider's latest "
                f"{contract or 'any-contract'} cloud prices, per device-hour; the latest "
                "purchase price, per device)"]
        rows = [_price_row(p, chosen) for p in d.prices]
        out.append(textwrap.indent(
            _table(["", "provider", "contract", "USD", "date", "basis"], rows, right={3}), "  "))
    if d.price_note:
        out.append(_wrap("Price note", d.price_note))
    if d.unconfirmed:
        out.append(_wrap("Unconfirmed", ", ".join(d.unconfirmed)))
    if d.notes:
        out += ["", _wrap("Notes", d.notes)]
    out += ["", "Sources"]
    every = dict.fromkeys([*d.sources, *(p.source for p in d.prices)])
    out += [textwrap.fill(s, width=100, initial_indent="  - ", subsequent_indent="    ")
            for s in every]
    files = ", ".join(map(_display_path, catalog.origins.get(d.id, ()))) or _DASH
    out += ["", f"Checked on {d.checked_on}; defined in {files}"]
    return "\n".join(out)

