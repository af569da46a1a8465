"""A small TOML writer for the catalog files the planner writes (`[[device]]`, `[[kernels]]`):
scalars and lists of scalars as `key = value`, nested dicts as `[a.b]` tables, lists of dicts
as `[[a.b]]` arrays of tables. Strings are written as JSON strings (valid TOML basic strings);
non-finite floats are refused (TOML has them, the catalog schema does not)."""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):  # int, numpy integers
        return str(int(value))
    if isinstance(value, numbers.Real):  # float, numpy floats
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"{where}: {x} cannot be written to a catalog file")
        return repr(x)
    if isinstance(value, str):
        # JSON escapes quotes, backslashes and control characters; TOML also wants DEL escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple) and not any(isinstance(v, Mapping) for v in value):
        return "[" + ", ".join(_scalar(v, where) for v in value) + "]"
    raise ValueError(f"{where}: cannot write {type(value).__name__} to TOML")


def _key(key: str) -> str:
    """A bare key where TOML allows one, else a quoted key."""
    return key if _BARE_KEY.fullmatch(key) else _scalar(key, key)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(
        isinstance(v, Mapping) for v in value)


def _table(path: str, table: Mapping[str, Any], header: str, lines: list[str]) -> None:
    lines.append(header)
    nested = []
    for key, value in table.items():
        if value is None:
            continue
        if isinstance(value, Mapping) or _is_table_list(value):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_scalar(value, f'{path}.{key}')}")
    for key, value in nested:
        sub = f"{path}.{_key(key)}"
        if isinstance(value, Mapping):
            _table(sub, value, f"[{sub}]", lines)
        else:
            for item in value:
                _table(sub, item, f"[[{sub}]]", lines)


def dumps(document: Mapping[str, Any], *, comment: str = "") -> str:
    """`document` (top-level keys mapping to lists of tables, e.g. {"device": [...],
    "kernels": [...]}) as TOML text."""
    lines = [f"# {line}" for line in comment.splitlines()]
    for key, value in document.items():
        if not _is_table_list(value):
            raise ValueError(f"{key}: the top level holds arrays of tables only")
        for item in value:
            if lines:
                lines.append("")
            _table(key, item, f"[[{key}]]", lines)
    return "\n".join(lines) + "\n"
