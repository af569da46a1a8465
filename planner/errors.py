"""One-line error messages: 'field: what is wrong' from a pydantic ValidationError."""

from __future__ import annotations

from pydantic import ValidationError


def one_line(err: ValidationError) -> str:
    """The first problem of a ValidationError as 'field: message'.

    A model-level validator's message already starts with the field ("n_heads: 7 heads do
    not divide ..."); pydantic's "Value error, " prefix is dropped and the field not repeated.
    """
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    if not loc or msg.startswith(f"{loc}:"):
        return msg if ":" in msg.split(" ")[0] else f"{err.title}: {msg}"
    return f"{loc}: {msg}"
