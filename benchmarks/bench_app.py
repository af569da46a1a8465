"""Warm rerun time of the app's default page, measured with streamlit's AppTest.

    .venv/bin/python benchmarks/bench_app.py [--reruns 20] [--page Plan]

The first run fills the caches (catalog, ranking); each later rerun is what a user waits for
after touching a widget that does not change the inputs of the cached work. Prints the cold
time and the median and maximum warm rerun in milliseconds.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app.py"


def measure(*, reruns: int, page: str | None) -> dict[str, float]:
    at = AppTest.from_file(str(APP), default_timeout=300)
    if page:
        at.query_params["page"] = page
    start = time.perf_counter()
    at.run()
    cold_s = time.perf_counter() - start
    if at.exception:
        raise SystemExit(f"the app raised: {at.exception[0].message}")
    warm_s = []
    for _ in range(reruns):
        start = time.perf_counter()
        at.run()
        warm_s.append(time.perf_counter() - start)
    return dict(cold_ms=cold_s * 1e3, warm_median_ms=statistics.median(warm_s) * 1e3,
                warm_max_ms=max(warm_s) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=20)
    parser.add_argument("--page", default=None, help="page to open (default: the first)")
    args = parser.parse_args()
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    result = measure(reruns=args.reruns, page=args.page)
    print(f"page={args.page or 'default'} cold={result['cold_ms']:.0f} ms  "
          f"warm median={result['warm_median_ms']:.0f} ms  max={result['warm_max_ms']:.0f} ms "
          f"({args.reruns} reruns)")


if __name__ == "__main__":
    main()
