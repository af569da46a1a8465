"""Bad input, one way: `InputError` (a ValueError) with one line 'field: what is wrong; what is
allowed', raised at the boundary by every public function and shown unchanged by the CLI (exit 2)
and the app (one st.error). The `check_*` helpers here are the shared range and type rules, so
that every entry point words the same problem the same way."""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

# Longest piece of user text echoed back in a message (an unknown name of 5,000 characters is
# shown as its first characters and "…").
ECHO_MAX_CHARS = 60


class InputError(ValueError):
    """One line naming the user's field (or config key / CLI flag) and what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}" if field else message)

    def __reduce__(self) -> tuple[Any, ...]:  # pickle and copy (e.g. across processes)
        return (type(self), (self.field, self.message))


def shown_int(n: int, *, thousands: bool = True) -> str:
    """n (with thousands separators), or its size when Python cannot print it (an int of more
    than 4,300 digits raises ValueError on str())."""
    if n.bit_length() > 512:
        return f"an integer of about {int(n.bit_length() * 0.30103):,} digits"
    return f"{n:,}" if thousands else str(n)


def clip(value: Any, max_chars: int = ECHO_MAX_CHARS) -> str:
    """repr() of user input, cut to `max_chars` characters ("…" marks the cut)."""
    try:
        text = repr(value)
    except ValueError:  # holds an int of more than 4,300 digits
        text = (shown_int(value) if isinstance(value, int)
                else f"a {type(value).__name__} too large to print")
    except RecursionError:  # nested deeper than repr can follow
        text = f"a {type(value).__name__} nested too deeply to print"
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def one_line(err: ValidationError) -> str:
    """The first problem of a ValidationError as 'field: message'.

    A model-level validator's message already starts with the field ("n_heads: 7 heads do
    not divide ..."); pydantic's "Value error, " prefix is dropped and the field not repeated.
    """
    first = err.errors()[0]
    loc = ".".join(str(p) if p != "" else "''" for p in first["loc"])  # '' for an empty key
    msg = str(first["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if not loc or msg.startswith(f"{loc}:"):
        return msg if ":" in msg.split(" ")[0] else f"{err.title}: {msg}"
    return f"{loc}: {msg}"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(value: Any, field: str, *, positive: bool = False, minimum: float | None = None,
                 maximum: float | None = None) -> float:
    """A finite real number (not a bool, not NaN/inf) within the bounds; returns it as float."""
    if not _is_number(value):
        raise InputError(field, f"must be a number, got {clip(value)}")
    try:
        x = float(value)
    except OverflowError:  # an int or Fraction past the largest float (1.8e308)
        raise InputError(field, f"must be a finite number (at most {sys.float_info.max:.3g}), "
                                f"got {clip(value)}") from None
    if not math.isfinite(x):
        raise InputError(field, f"must be a finite number, got {x}")
    if positive and x <= 0:
        raise InputError(field, f"must be > 0, got {x:g}")
    if minimum is not None and x < minimum:
        raise InputError(field, f"must be ≥ {minimum:g}, got {x:g}")
    if maximum is not None and x > maximum:
        raise InputError(field, f"must be ≤ {maximum:g}, got {x:g}")
    return x


def check_int(value: Any, field: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number (an int, or a float with no fraction; never a bool) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral | float):
        raise InputError(field, f"must be a whole number, got {clip(value)}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise InputError(field, f"must be a whole number, got {value!r}")
    n = int(value)
    if n < minimum:
        raise InputError(field, f"must be ≥ {minimum}, got {shown_int(n, thousands=False)}")
    if maximum is not None and n > maximum:
        raise InputError(field, f"must be ≤ {maximum:,}, got {shown_int(n)}")
    return n


def int_rule(minimum: int, maximum: int | None = None) -> Callable[[Any, str], int]:
    """`check_int` with these bounds, as a (value, field) rule for a table of field rules."""
    return lambda value, field: check_int(value, field, minimum=minimum, maximum=maximum)


def number_rule(*, minimum: float | None = None, maximum: float | None = None,
                positive: bool = False) -> Callable[[Any, str], float]:
    """`check_number` with these bounds, as a (value, field) rule."""
    return lambda value, field: check_number(value, field, positive=positive, minimum=minimum,
                                             maximum=maximum)


def check_bool(value: Any, field: str) -> bool:
    """A real bool (JSON true/false); the strings "false"/"no" and numbers are refused."""
    if not isinstance(value, bool):
        raise InputError(field, f"must be true or false, got {clip(value)}")
    return value
