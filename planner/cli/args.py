"""argparse helpers shared by the sub-commands (`planner.cli.<name>`, each with
`register(subparsers)`). A handler returns an exit code; a ValueError it raises is printed as
one line by `planner.cli.main`, which then exits with status 2."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: a whole number > 0 ("--seq-len 0" is refused, not silently defaulted)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}"
                                         ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value
