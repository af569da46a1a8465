"""Reports: DataFrames written as CSV (or JSON, `to_json_text`) with SI numbers in
unit-suffixed columns.

One header row, no index, numbers as plain SI values (no thousands separators, no unit
strings). Two defences against CSV injection (OWASP "CSV injection"):

- every field holding a quote, comma, carriage return or line feed is quoted, so a text cell
  can never start a new row (Python's csv writer leaves a lone CR unquoted when rows end in LF);
- every text cell and header that a spreadsheet would run as a formula gets a leading single
  quote: one starting with =, +, -, @, tab, CR or LF, also behind leading whitespace or
  invisible characters (spaces, NBSP, zero-width space, BOM, other Unicode format characters)
  and in full-width or small forms (＝ ＋ － ＠ ﹦ ﹢ ﹣ ﹫). Numbers are never touched.
"""

from __future__ import annotations

import csv
import datetime
import enum
import io
import json
import math
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_FORMULA_START = frozenset("=+-@")
_CONTROL_START = ("\t", "\r", "\n")
# Unicode categories a reader does not see before the first visible character: separators,
# control and format characters (zero-width space U+200B, BOM U+FEFF, soft hyphen, ...).
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})
# Blank-looking letters and symbols outside those categories (Hangul fillers, braille blank,
# combining grapheme joiner).
_INVISIBLE_CHARS = frozenset("\u034f\u115f\u1160\u2800\u3164\uffa0")
_NEEDS_QUOTES = re.compile('[",\r\n]')


def _is_invisible(ch: str) -> bool:
    return ch.isspace() or ch in _INVISIBLE_CHARS or unicodedata.category(ch) in \
        _INVISIBLE_CATEGORIES


def runs_as_formula(text: str) -> bool:
    """Whether a spreadsheet could run `text` as a formula: it starts with tab, CR or LF, or its
    first visible character is = + - @ (NFKC folds the full-width and small forms to these)."""
    if text.startswith(_CONTROL_START):
        return True
    for ch in text:
        if not _is_invisible(ch):
            return unicodedata.normalize("NFKC", ch)[:1] in _FORMULA_START
    return False


def _neutralize(value: object) -> object:
    if isinstance(value, str) and runs_as_formula(value):
        return "'" + value
    return value


def safe_for_spreadsheet(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells and headers cannot be run as spreadsheet formulas; numbers and
    other non-text values (None, NaN, numbers in an object column) are untouched."""
    out = df.copy()
    for col in out.columns:
        series = out[col]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        elif not (series.dtype == object or pd.api.types.is_string_dtype(series.dtype)):
            continue
        out[col] = series.map(_neutralize)
    out.columns = [_neutralize(str(c)) for c in out.columns]
    return out


def _field(text: str) -> str:
    """One CSV field, quoted (quotes doubled) when it holds a quote, comma, CR or LF."""
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def to_csv_text(df: pd.DataFrame) -> str:
    """The CSV report as text (for download buttons): rows end in LF; see the module docstring
    for what is quoted and neutralised."""
    buf = io.StringIO()
    # pandas formats the values; with CRLF row ends its csv writer quotes every CR and LF, so
    # the text splits back into exactly the frame's fields, which are then written with
    # `_field` (which also quotes a lone CR) and LF row ends.
    safe_for_spreadsheet(df).to_csv(buf, index=False, lineterminator="\r\n")
    rows = csv.reader(io.StringIO(buf.getvalue(), newline=""))
    # A row of one empty field is written '""', not as a blank line that readers skip.
    return "".join(('""' if row == [""] else ",".join(map(_field, row))) + "\n" for row in rows)


def to_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the CSV report to `path` (parent folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_csv_text(df), encoding="utf-8", newline="")
    return path


# ---- JSON ---------------------------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    """One cell as a plain JSON value: numpy scalars and arrays as Python numbers, bools and
    lists; NaN, ±inf, None and pandas' NA as null (JSON has no NaN); dates as ISO 8601 text;
    enums by their value; anything else as its text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray | list | tuple | set | frozenset):
        return [_json_value(v) for v in (value.tolist() if isinstance(value, np.ndarray)
                                         else value)]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of `df` as JSON-ready objects, one per row with the CSV's columns (SI units,
    unit-suffixed names) in order: missing and non-finite numbers are None, numpy types are
    Python types. The index is dropped, as in the CSV."""
    columns = [str(c) for c in df.columns]
    return [{col: _json_value(value) for col, value in zip(columns, row, strict=True)}
            for row in df.itertuples(index=False, name=None)]


def to_json_text(df: pd.DataFrame) -> str:
    """The report as JSON text: a list of row objects (json_records), UTF-8 characters kept,
    no NaN (null instead), one line."""
    return json.dumps(json_records(df), ensure_ascii=False, allow_nan=False)
