"""The `planner` command line: `planner models`, `planner layers`, `planner catalog`, ...

Each sub-command lives in `planner.cli.<name>` and registers itself with `register()`.
Bad input prints one line on stderr and exits with status 2; the library never prints.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from planner.errors import one_line

# Sub-command modules, in the order `planner --help` lists them.
COMMAND_MODULES = ["models", "catalog", "rank", "backtest", "validate"]


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line ("planner: error: argument --seq-len: ...")
    and exits with status 2, like every other input error; `--help` still prints usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"planner: error: {message} (see `{self.prog} --help`)\n")


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
        print(f"planner: error: {one_line(err)}", file=sys.stderr)
    except (ValueError, OSError) as err:  # OSError: e.g. --csv into a folder or no permission
        print(f"planner: error: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print("planner: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
