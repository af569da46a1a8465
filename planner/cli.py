"""The `planner` command line: `planner models`, `planner layers`, `planner catalog`, ...

Each sub-command lives in `planner.commands.<name>` and registers itself with `register()`.
Bad input prints one line on stderr and exits with status 2; the library never prints.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pydantic import ValidationError

# Sub-command modules, in the order `planner --help` lists them.
COMMAND_MODULES = ["models", "catalog", "rank", "backtest", "validate"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="planner",
        description="Time, cost and energy to train or serve transformers on GPUs, TPUs, FPGAs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"planner.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"planner.commands.{name}":
                raise
            continue  # a sub-command not built yet
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or err.title
        print(f"planner: error: {loc}: {first['msg']}", file=sys.stderr)
    except (ValueError, FileNotFoundError) as err:
        print(f"planner: error: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print("planner: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
