"""The `planner` command line: `planner models`, `planner layers`, `planner catalog`, ...

Each sub-command lives in `planner.cli.<name>` and registers itself with `register()`.
Bad input prints one line on stderr and exits with status 2; the library never prints.
So does a file that cannot be read or written (OSError), and running out of memory or stack
(MemoryError, RecursionError): one line, never a traceback. A line is kept short: line breaks
are collapsed and an over-long word (a 5,000-character unknown name) is cut in the middle.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from planner.errors import clip, one_line

# Sub-command modules, in the order `planner --help` lists them.
COMMAND_MODULES = ["models", "fits", "catalog", "rank", "sweep", "backtest", "validate"]

# Longest word (a run without spaces) and longest message printed on the error line.
WORD_MAX_CHARS = 120
LINE_MAX_CHARS = 1000
_LONG_WORD = re.compile(rf"\S{{{WORD_MAX_CHARS + 1},}}")


def _cut_word(match: re.Match[str]) -> str:
    word = match.group(0)
    head = 2 * WORD_MAX_CHARS // 3
    return f"{word[:head]}…{word[head + 1 - WORD_MAX_CHARS:]}"


def error_line(message: object) -> str:
    """`message` as one short line: line breaks (and the spaces around them) become one space,
    a word over WORD_MAX_CHARS keeps its start and end around "…", and the whole is cut at
    LINE_MAX_CHARS."""
    text = re.sub(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*", " ", str(message)).strip()
    text = _LONG_WORD.sub(_cut_word, text)
    return text if len(text) <= LINE_MAX_CHARS else text[:LINE_MAX_CHARS - 1] + "…"


def _os_error(err: OSError) -> str:
    """"'/x/y.csv': Permission denied": the file that failed, and why."""
    what = err.strerror or str(err) or type(err).__name__
    files = [os.fsdecode(f) if isinstance(f, str | bytes | os.PathLike) else str(f)
             for f in (err.filename, err.filename2) if f is not None]
    if not files:
        return what
    return f"{' -> '.join(clip(f, 160) for f in files)}: {what}"


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line ("planner: error: argument --seq-len: ...")
    and exits with status 2, like every other input error; `--help` still prints usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"planner: error: {error_line(message)} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="planner",
        description="Time, cost and energy to train or serve transformers on GPUs, TPUs, FPGAs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"planner.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (2, already printed in one line)
        return int(exc.code or 0)
    try:
        return int(args.handler(args) or 0)
    except ValidationError as err:
        message = one_line(err)
    except ValueError as err:  # InputError and the library's other bad-input errors
        message = str(err)
    except BrokenPipeError:  # `planner models | head`: the reader left; not an error
        # NB: stdout is gone; point it at devnull so the interpreter's final flush is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # a file that cannot be read or written, a full disk
        message = _os_error(err)
    except MemoryError:
        message = "out of memory: the problem is too large (try smaller inputs)"
    except RecursionError:
        message = "input nested too deeply to process"
    except KeyboardInterrupt:
        print("planner: interrupted", file=sys.stderr)
        return 130
    print(f"planner: error: {error_line(message)}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
