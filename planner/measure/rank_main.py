"""Entry point of one rank started by `planner.measure.collectives.spawn_ranks`:
`python -m planner.measure.rank_main SPEC.json RANK`. Not for direct use."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    rank = int(argv[1])
    if spec["task"] == "collectives":
        from planner.measure.collectives import _Plan, run_rank

        plan = _Plan(**{**spec["plan"], "ops": tuple(spec["plan"]["ops"]),
                        "sizes": tuple(spec["plan"]["sizes"])})
        run_rank(rank, spec["world"], spec["init"], plan, spec["out_dir"])
    elif spec["task"] == "validate":
        from planner.measure.distributed import run_rank as run_validate_rank

        run_validate_rank(rank, spec)
    else:
        raise SystemExit(f"unknown task {spec['task']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
