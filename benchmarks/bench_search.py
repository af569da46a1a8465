"""Candidates evaluated per second: the vectorized search against one candidate at a time.

    .venv/bin/python benchmarks/bench_search.py [--repeat 3] [--sample 3000] [--threads N]

Cases (built-in catalog, every layout searched):
  * llama-3.1-405b pre-training (15.6T tokens, 8k context, batch 2048): the large search;
  * llama-2-7b pre-training (2T tokens, 4k, batch 1024): `planner.plan.search` for one training job;
  * llama-2-70b serving (1024 in / 256 out, 10 req/s).
  * deepseek-v3 serving in fp8 (2000 in / 500 out, 50 req/s; expert parallelism searched).
For each: `rank()` (evaluates the whole grid, keeps the best per device) and `search()` (the
same plus a DataFrame row per candidate), best of --repeat warm runs, then the cold first
call. The same 405B candidates are then evaluated one at a time in a plain Python loop
(`planner.plan.search.candidate_evaluator`, same formulas, scalars) on a random sample and the rate
is extrapolated. Set --threads to pin numpy's BLAS threads (the grid maths is element-wise and
single-threaded either way).
"""

from __future__ import annotations

import argparse
import os
import random
import time


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sample", type=int, default=3000,
                        help="candidates evaluated one at a time (default 3000)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)

    import planner
    from planner.hardware.catalog import load_catalog
    from planner.plan.search import candidate_evaluator

    catalog = load_catalog()
    cases = [
        ("llama-3.1-405b pre-train", planner.workload("llama-3.1-405b-pretrain")),
        ("llama-2-7b pre-train", planner.workload("llama-2-7b-pretrain")),
        ("llama-2-70b serving", planner.workload("llama-2-70b-chat-serving")),
        ("deepseek-v3 serving fp8", planner.InferenceJob(
            model="deepseek-v3", precision="fp8-inference", prompt_len=2000, output_len=500,
            requests_per_s=50)),
    ]
    print(f"catalog: {len(catalog)} devices; cpu count {os.cpu_count()}")
    print(f"{'case':26s} {'candidates':>10s} {'rank cold':>10s} {'rank':>8s} {'search':>8s} "
          f"{'rank cand/s':>12s} {'search cand/s':>14s}")
    big = None
    for label, job in cases:
        start = time.perf_counter()
        planner.rank(job, catalog)  # cold: per-layer table, catalog arrays, first allocations
        cold = time.perf_counter() - start
        rows = planner.search(job, catalog)
        n = len(rows)
        t_rank = _best(lambda job=job: planner.rank(job, catalog), args.repeat)
        t_search = _best(lambda job=job: planner.search(job, catalog), args.repeat)
        print(f"{label:26s} {n:>10,d} {cold:>9.3f}s {t_rank:>7.3f}s {t_search:>7.3f}s "
              f"{n / t_rank:>12,.0f} {n / t_search:>14,.0f}")
        if big is None:
            big = (job, rows, n / t_rank)

    job, rows, vector_rate = big
    evaluate = candidate_evaluator(job, catalog)
    cols = ["device", "n_devices", "tp", "pp", "zero_stage", "micro_batch_size", "recompute"]
    keys = list(rows[cols].astype({"device": str, "recompute": str}).itertuples(
        index=False, name=None))
    random.seed(0)
    sample = random.sample(keys, min(args.sample, len(keys)))
    start = time.perf_counter()
    for key in sample:  # one candidate at a time, plain Python loop
        evaluate(*key)
    loop = time.perf_counter() - start
    rate = len(sample) / loop
    print(f"\none at a time (405B, {len(sample):,} sampled candidates): {rate:,.0f} cand/s; "
          f"the full {len(keys):,} would take {len(keys) / rate:,.1f} s; vectorized rank is "
          f"{vector_rate / rate:,.0f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
