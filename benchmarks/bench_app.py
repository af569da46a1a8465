"""Warm rerun time of the app's default page, measured with streamlit's AppTest.

    .venv/bin/python benchmarks/bench_app.py [--reruns 20] [--page Plan]

The first run fills the caches (catalog, ranking, figures); each later rerun is what a user
waits for after touching a widget that does not change the inputs of the cached work. Prints
the cold time and the median and maximum warm rerun in milliseconds, twice: as AppTest runs it
(it recompiles app.py on every run) and with the compiled script kept between reruns, as
`streamlit run` does (its ScriptCache holds the bytecode).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import streamlit.testing.v1.app_test as app_test
from streamlit.runtime.scriptrunner.script_cache import ScriptCache
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app.py"


def measure(*, reruns: int, page: str | None, keep_bytecode: bool) -> dict[str, float]:
    shared = ScriptCache()
    app_test.ScriptCache = (lambda: shared) if keep_bytecode else ScriptCache  # type: ignore
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
    for keep, label in ((False, "AppTest (recompiles app.py)"),
                        (True, "bytecode kept, as the server")):
        result = measure(reruns=args.reruns, page=args.page, keep_bytecode=keep)
        cold = f"cold={result['cold_ms']:.0f} ms  " if not keep else ""
        print(f"page={args.page or 'default'} {label}: {cold}"
              f"warm median={result['warm_median_ms']:.0f} ms  "
              f"max={result['warm_max_ms']:.0f} ms ({args.reruns} reruns)")


if __name__ == "__main__":
    main()
