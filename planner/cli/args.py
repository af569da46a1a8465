"""argparse helpers shared by the sub-commands (`planner.cli.<name>`, each with
`register(subparsers)`). A handler returns an exit code; a ValueError it raises is printed as
one line by `planner.cli.main`, which then exits with status 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from planner.errors import InputError, clip
from planner.report.tables import to_json_text

# Longest path echoed back in a message: more than a name (ECHO_MAX_CHARS), as the end of a
# path is what tells the user which file.
PATH_MAX_CHARS = 160


def positive_int(text: str) -> int:
    """argparse type: a whole number > 0 ("--seq-len 0" is refused, not silently defaulted)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {clip(text)}"
                                         ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {clip(text)}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: a whole number ≥ 0 (e.g. --output-len 0 for an encoder)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 0, got {clip(text)}"
                                         ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 0, got {clip(text)}")
    return value


def add_json_flag(parser: argparse.ArgumentParser, what: str = "the table") -> None:
    """`--json`: print `what` on stdout as a JSON list of row objects, the --csv file's
    columns in SI units (NaN as null), and nothing else; --csv still writes its file."""
    parser.add_argument("--json", action="store_true",
                        help=f"print {what} as a JSON list of row objects (SI units, the CSV's "
                             "columns; missing values null) and nothing else on stdout")


def print_json(df: pd.DataFrame) -> None:
    """The --json output: `df`'s rows as one line of JSON on stdout."""
    sys.stdout.write(to_json_text(df) + "\n")


def check_output_path(path: str | os.PathLike[str], flag: str) -> Path:
    """The file an output flag (`--csv PATH`) will write, checked before any work is done.

    Refused with an InputError naming `flag`: an empty path or one with a NUL, a directory, a
    path whose folder does not exist (the CLI never creates folders) or is not a folder, a file
    or folder the user may not write, and a path the system cannot look up (a name too long).
    Returns the path; an existing file is overwritten later.
    """
    text = os.fspath(path)
    if not text.strip():
        raise InputError(flag, "give a file path, got an empty one")
    shown = clip(text, PATH_MAX_CHARS)
    if "\0" in text:
        raise InputError(flag, f"{shown} holds a NUL character")
    out = Path(text)
    try:
        _check_writable(out, text, flag, shown)
    except OSError as err:  # e.g. a name too long for the file system, a symlink loop
        raise InputError(flag, f"cannot use {shown}: {err.strerror or err}") from None
    return out


def _check_writable(out: Path, text: str, flag: str, shown: str) -> None:
    if out.is_dir():
        raise InputError(flag, f"{shown} is a directory; give a file path inside it")
    if text.endswith(("/", os.sep)):
        raise InputError(flag, f"{shown} names a folder; give a file path")
    folder = out.parent
    if not folder.exists():
        raise InputError(flag, f"folder {clip(str(folder), PATH_MAX_CHARS)} does not exist "
                         "(create it first)")
    if not folder.is_dir():
        raise InputError(flag, f"{clip(str(folder), PATH_MAX_CHARS)} is not a folder")
    if out.exists():
        if not os.access(out, os.W_OK):
            raise InputError(flag, f"cannot write {shown}: permission denied")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(flag, f"cannot create {shown}: no write permission in folder "
                         f"{clip(str(folder), PATH_MAX_CHARS)}")
