"""Reports: DataFrames written as CSV with SI numbers in unit-suffixed columns.

One header row, no index, numbers as plain SI values (no thousands separators, no unit
strings), and every text cell that a spreadsheet would run as a formula (starting with
=, +, -, @, tab or carriage return) prefixed with a single quote (OWASP "CSV injection").
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _neutralize(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def safe_for_spreadsheet(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot be run as spreadsheet formulas; numbers are untouched."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(_neutralize)
    out.columns = [_neutralize(str(c)) for c in out.columns]
    return out


def to_csv_text(df: pd.DataFrame) -> str:
    """The CSV report as text (for download buttons)."""
    buf = io.StringIO()
    safe_for_spreadsheet(df).to_csv(buf, index=False)
    return buf.getvalue()


def to_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the CSV report to `path` (parent folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_csv_text(df), encoding="utf-8")
    return path
