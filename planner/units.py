"""Named unit constants and display formatting.

Everything inside `planner` is in SI base units (FLOP, byte, second, FLOP/s, byte/s, W, J, USD).
The constants below convert *for display or for reading vendor data* only; formulas never use
them to change units mid-way. Counts are never divided by 1024 unless the name says GiB.
"""

from __future__ import annotations

import math

KILO = 1e3
MEGA = 1e6
GIGA = 1e9
TERA = 1e12
PETA = 1e15

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

GB = 1e9
TB = 1e12

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
SECONDS_PER_YEAR = 365.25 * SECONDS_PER_DAY
JOULES_PER_KWH = 3.6e6

BITS_PER_BYTE = 8

_SI_PREFIXES = [(1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"),
                (1e6, "M"), (1e3, "k")]


def si(value: float, unit: str, *, digits: int = 3) -> str:
    """Format `value` with an SI prefix: si(1.5e12, "FLOP") -> '1.5 TFLOP'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    magnitude = abs(value)
    for scale, prefix in _SI_PREFIXES:
        if magnitude >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"


def bytes_str(value: float, *, binary: bool = False, digits: int = 3) -> str:
    """Format a byte count as GB (decimal, default) or GiB (binary): the suffix says which."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if not binary:
        return si(value, "B", digits=digits)
    for scale, suffix in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")]:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {suffix}"
    return f"{value:.{digits}g} B"


def duration_str(seconds: float) -> str:
    """Format seconds as the most readable unit: '3.2 h', '12 d', '45 ms'."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    if math.isinf(seconds):
        return "∞"
    if seconds >= 2 * SECONDS_PER_YEAR:
        return f"{seconds / SECONDS_PER_YEAR:.3g} y"
    if seconds >= 2 * SECONDS_PER_DAY:
        return f"{seconds / SECONDS_PER_DAY:.3g} d"
    if seconds >= 2 * SECONDS_PER_HOUR:
        return f"{seconds / SECONDS_PER_HOUR:.3g} h"
    if seconds >= 120:
        return f"{seconds / 60:.3g} min"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def usd_str(value: float) -> str:
    """Format US dollars with thousands separators: '$1,234,567'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    return f"${value:,.2f}"


def money_str(usd: float | None) -> str:
    """Dollars for a table cell or a card, in thousands, millions ... beyond $10,000:
    '$1.15 M', '$196 k', '$2,345', '$0.93', '$0.0042'; '' when missing (a blank cell)."""
    try:
        value = float(usd)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # None, pd.NA
        return ""
    if not math.isfinite(value):
        return ""
    for above, scale, suffix in ((1e12, 1e12, "T"), (1e9, 1e9, "B"), (1e6, 1e6, "M"),
                                 (1e4, 1e3, "k")):
        if abs(value) >= above:
            return f"${value / scale:.3g} {suffix}"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 0.01 or value == 0:
        return f"${value:,.2f}"
    return f"${value:.3g}"


def energy_str(joules: float) -> str:
    """Format joules as kWh, or MWh from 1,000 kWh: '5.38 kWh', '1.2 MWh'."""
    if joules is None or (isinstance(joules, float) and math.isnan(joules)):
        return "—"
    kwh = joules / JOULES_PER_KWH
    if kwh >= 1e3:
        return f"{kwh / 1e3:.3g} MWh"
    return f"{kwh:.3g} kWh"
