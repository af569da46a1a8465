"""Measured collectives on real torch.distributed process groups (gloo on CPUs, NCCL on NVIDIA,
RCCL on AMD), fitted with the planner's own α–β form (planner.hardware.kernels, K5), and written
as the `[kernels.collectives]` tiers of a catalog file.

    t(op, n_bytes, n) = steps(op, n) · α_op + bus_factor(op, n) · n_bytes / busbw_op

`steps` and `bus_factor` are the planner's (`ring_steps`, `bus_factor`): the fit finds, per
tier and op, the latency per algorithm step α_op and the bus bandwidth busbw_op. Every
measured row is predicted by a fit that left its message size out (leave-one-out), so the
error reported is the error on sizes the fit did not see (docs/validation.md, "Collectives").

Two ways to run it:
* `calibrate_collectives(n_ranks=2)` spawns `n_ranks` local processes (one "node");
  `ranks_per_node` splits them into pretend nodes, which exercises the two-tier path on one
  machine.
* Under `torchrun` (RANK/WORLD_SIZE/LOCAL_WORLD_SIZE set), `planner calibrate --collectives`
  joins the launched group: the scale-up tier is measured inside each node, the scale-out tier
  between one rank per node (a flat collective over one NIC, as the catalog's
  `scaleout_bw_bytes_per_s` is per device).

torch is imported only inside the functions that measure.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from planner.errors import InputError, check_int, clip
from planner.hardware.kernels import (
    CollectiveOp,
    Tier,
    bus_factor,
    collective_seconds,
    ring_steps,
)

# 1 KiB to 64 MiB in steps of 4 (nine sizes); 64 MiB = 67.1 MB.
DEFAULT_SIZES_BYTES: tuple[int, ...] = tuple(1024 * 4**k for k in range(9))
BACKENDS = ("gloo", "nccl")
MAX_LOCAL_RANKS = 64
MAX_MESSAGE_BYTES = 2**32  # 4 GiB per buffer: beyond it a calibration is a memory test
# Samples per repeat: a small message is sampled more often (its time is short and the noisiest),
# up to about 1 MiB moved per repeat.
_BURST_BYTES = 2**20
_MAX_BURST = 20
ELEMENT_BYTES = 4  # fp32 buffers (gloo reduces fp32 everywhere; NCCL any dtype)


@dataclass(frozen=True)
class TierFit:
    """α–β of one op on one tier: `latency_s` per algorithm step and bus bandwidth."""

    tier: Tier
    op: CollectiveOp
    n_ranks: int
    latency_s: float
    busbw_bytes_per_s: float
    median_abs_rel_err: float  # on left-out sizes


@dataclass(frozen=True)
class CollectiveFit:
    """The fitted tiers of one calibration, plus how it was run."""

    fits: tuple[TierFit, ...]
    backend: str
    n_ranks: int
    ranks_per_node: int
    measured_on: str
    host: str

    def get(self, tier: Tier, op: CollectiveOp) -> TierFit | None:
        return next((f for f in self.fits if f.tier is tier and f.op is op), None)

    def tiers(self) -> list[Tier]:
        return [t for t in Tier if any(f.tier is t for f in self.fits)]

    def frame(self) -> pd.DataFrame:
        """One row per (tier, op): n_ranks, latency_s, busbw_bytes_per_s, median_abs_rel_err."""
        return pd.DataFrame([dict(tier=f.tier.value, op=f.op.value, n_ranks=f.n_ranks,
                                  latency_s=f.latency_s, busbw_bytes_per_s=f.busbw_bytes_per_s,
                                  median_abs_rel_err=f.median_abs_rel_err) for f in self.fits])


def alpha_beta_time_s(op: CollectiveOp | str, n_bytes: Any, n_ranks: Any, latency_s: float,
                      busbw_bytes_per_s: float) -> Any:
    """K5 (`planner.hardware.kernels.collective_seconds`) with a measured bus bandwidth:
    steps · α + bus_factor · n_bytes / busbw."""
    return collective_seconds(op, n_bytes=n_bytes, n_ranks=n_ranks,
                              link_bytes_per_s=busbw_bytes_per_s, busbw_frac=1.0,
                              latency_s=latency_s)


def fit_alpha_beta(op: CollectiveOp | str, n_bytes: Sequence[float], n_ranks: int,
                   time_s: Sequence[float]) -> tuple[float, float]:
    """(α per step, bus bandwidth) minimising the squared *relative* error of
    steps·α + bus_factor·n_bytes·γ (γ = 1/busbw) over the points; α ≥ 0 and γ > 0 (a
    non-negative least-squares on two unknowns: when the free solution has α < 0, α = 0 and γ
    is refitted alone; when the bandwidth term is negligible even at the largest size, the
    bandwidth is the best observed, a lower bound, and α is refitted with it). Needs two points of
    different sizes."""
    x = np.asarray(n_bytes, dtype=float)
    t = np.asarray(time_s, dtype=float)
    if x.size < 2 or len(set(x.tolist())) < 2:
        raise ValueError("fit_alpha_beta: needs at least two message sizes")
    if not (np.all(np.isfinite(t)) and np.all(t > 0)):
        raise ValueError("fit_alpha_beta: times must be finite and > 0")
    a = np.full_like(x, float(ring_steps(op, n_ranks))) / t  # rows divided by t: relative error
    b = float(bus_factor(op, n_ranks)) * x / t
    ones = np.ones_like(t)
    alpha, gamma = np.linalg.lstsq(np.column_stack([a, b]), ones, rcond=None)[0]
    if alpha < 0:  # α = 0: bandwidth alone
        alpha, gamma = 0.0, (b @ ones) / (b @ b)
    if gamma * float(np.max(b)) < 1e-3:
        # The sizes never left the latency-bound region (the bandwidth term explains under
        # 0.1 % of the largest message's time): the bandwidth is the best observed (a lower
        # bound on the true one, not an extrapolation to infinity) and α is refitted to what
        # that bandwidth term leaves.
        gamma = 1.0 / float(np.max(float(bus_factor(op, n_ranks)) * x / t))
        alpha = max(0.0, float(a @ (ones - b * gamma)) / float(a @ a))
    return float(alpha), float(1.0 / gamma)


def leave_one_out(df: pd.DataFrame) -> pd.DataFrame:
    """`df` (op, tier, n_bytes, n_ranks, measured_s) with `predicted_s`: each row from a fit
    of the same tier and op that left that row's size out, and `rel_err` = (predicted −
    measured) / measured."""
    out = df.copy()
    pred = np.full(len(df), np.nan)
    for _, g in df.groupby(["tier", "op"], sort=False):
        if g["n_bytes"].nunique() < 3:
            continue  # two sizes left: one point cannot fit two unknowns
        for i in g.index:
            rest = g.drop(index=i)
            alpha, bw = fit_alpha_beta(g.at[i, "op"], rest["n_bytes"], int(g.at[i, "n_ranks"]),
                                       rest["measured_s"])
            pred[df.index.get_loc(i)] = alpha_beta_time_s(
                g.at[i, "op"], g.at[i, "n_bytes"], int(g.at[i, "n_ranks"]), alpha, bw)
    out["predicted_s"] = pred
    out["rel_err"] = (out["predicted_s"] - out["measured_s"]) / out["measured_s"]
    return out


def fit_collectives(df: pd.DataFrame) -> CollectiveFit:
    """Fit every (tier, op) of a `calibrate_collectives` result on all its sizes; the error
    stated with each fit is the median |rel_err| of its left-out predictions."""
    if "predicted_s" not in df:
        df = leave_one_out(df)
    fits = []
    for (tier, op), g in df.groupby(["tier", "op"], sort=False):
        n = int(g["n_ranks"].iloc[0])
        alpha, bw = fit_alpha_beta(op, g["n_bytes"], n, g["measured_s"])
        err = g["rel_err"].abs().dropna()
        fits.append(TierFit(Tier(tier), CollectiveOp(op), n, alpha, bw,
                            float(err.median()) if len(err) else float("nan")))
    up = df.loc[df["tier"] == Tier.SCALE_UP.value, "n_ranks"]
    out = df.loc[df["tier"] == Tier.SCALE_OUT.value, "n_ranks"]
    rpn = int(up.max()) if len(up) else 1
    nodes = int(out.max()) if len(out) else 1

    def info(column: str, default: str) -> str:
        return str(df[column].iloc[0]) if column in df and len(df) else default

    return CollectiveFit(tuple(fits), info("backend", "unknown"), rpn * nodes, rpn,
                         info("measured_on", time.strftime("%Y-%m-%d")),
                         info("host", "unknown host"))


# ---- checks --------------------------------------------------------------------------------
def _ops(ops: Iterable[str] | None) -> tuple[CollectiveOp, ...]:
    if ops is None:
        return tuple(CollectiveOp)
    if isinstance(ops, str) or not isinstance(ops, Iterable):
        raise InputError("ops", f"must be a list of {', '.join(o.value for o in CollectiveOp)}; "
                                f"got {clip(ops)}")
    out = []
    for op in ops:
        try:
            out.append(CollectiveOp(op))
        except ValueError:
            raise InputError("ops", f"{clip(op)} is not one of "
                                    f"{', '.join(o.value for o in CollectiveOp)}") from None
    if not out:
        raise InputError("ops", "give at least one collective")
    return tuple(dict.fromkeys(out))


def _sizes(sizes: Iterable[float] | None) -> tuple[int, ...]:
    if sizes is None:
        return DEFAULT_SIZES_BYTES
    if isinstance(sizes, str) or not isinstance(sizes, Iterable):
        raise InputError("sizes_bytes", f"must be a list of message sizes in bytes, got "
                                        f"{clip(sizes)}")
    out = sorted({check_int(s, "sizes_bytes", minimum=ELEMENT_BYTES, maximum=MAX_MESSAGE_BYTES)
                  for s in sizes})
    if len(out) < 3:
        raise InputError("sizes_bytes", "give at least three different sizes (each is "
                                        "predicted by a fit of the others)")
    return tuple(out)


def check_backend(backend: str, ranks_per_node: int) -> None:
    """The backend is known, compiled into this torch, and has the devices it needs."""
    import torch.distributed as dist

    if backend not in BACKENDS:
        raise InputError("backend", f"{clip(backend)} is not one of {', '.join(BACKENDS)}")
    if not dist.is_available() or not dist.is_backend_available(backend):
        raise InputError("backend", f"{backend} is not available in this torch build"
                                    + ("; use gloo on a CPU machine" if backend == "nccl"
                                       else ""))
    if backend == "nccl":
        import torch

        n_gpu = torch.cuda.device_count()
        if n_gpu < ranks_per_node:
            raise InputError("n_ranks", f"nccl needs one GPU per rank: {ranks_per_node} ranks "
                                        f"per node, {n_gpu} GPU(s) here")


def share_threads(ranks_per_node: int) -> int:
    """Give this rank its share of the machine's cores as torch threads; returns the count.
    (Pinning ranks to cores was tried on a 2-core VM: it put each rank's main thread and its
    gloo thread on one core and made small messages 3-5× slower and noisier, so it is not
    done.)"""
    import torch

    share = threads_per_rank(ranks_per_node)
    torch.set_num_threads(share)
    return share


def threads_per_rank(ranks_per_node: int) -> int:
    """This machine's cores shared by `ranks_per_node` ranks (at least one thread each)."""
    return max(1, (os.cpu_count() or 1) // ranks_per_node)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- measuring (inside each rank) -----------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    backend: str
    ops: tuple[str, ...]
    sizes: tuple[int, ...]
    ranks_per_node: int
    repeats: int
    warmup: int
    progress: bool


def _burst(n_bytes: int) -> int:
    return max(1, min(_MAX_BURST, _BURST_BYTES // max(n_bytes, 1)))


def _runner(op: CollectiveOp, n_elems: int, group: Any, rank_in_group: int, n: int,
            device: Any) -> Callable[[], None]:
    """One call of `op` on a message of n_elems fp32 elements (the full message: the reduced
    buffer, the gathered output, the scattered input), as the planner counts n_bytes."""
    import torch
    import torch.distributed as dist

    ag = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    rs = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    full = torch.ones(n_elems, device=device)
    shard = torch.ones(n_elems // n, device=device)
    if op is CollectiveOp.ALL_REDUCE:
        return lambda: dist.all_reduce(full, group=group)
    if op is CollectiveOp.ALL_GATHER:
        return lambda: ag(full, shard, group=group)
    if op is CollectiveOp.REDUCE_SCATTER:
        return lambda: rs(shard, full, group=group)
    if op is CollectiveOp.ALL_TO_ALL:
        out = torch.empty_like(full)
        return lambda: dist.all_to_all_single(out, full, group=group)
    # send_recv: every rank sends the message to the next and receives from the previous
    # (nccl-tests sendrecv_perf), at once.
    ranks = dist.get_process_group_ranks(group) if group is not None else list(range(n))
    nxt, prv = ranks[(rank_in_group + 1) % n], ranks[(rank_in_group - 1) % n]
    recv = torch.empty_like(full)

    ops = [dist.P2POp(dist.isend, full, nxt, group=group),
           dist.P2POp(dist.irecv, recv, prv, group=group)]

    def send_recv() -> None:
        # Posted together (NCCL groups them; two bare calls can wait on each other once a
        # message outgrows NCCL's buffers).
        for r in dist.batch_isend_irecv(ops):
            r.wait()

    return send_recv


def _time_sizes(runs: Sequence[tuple[Callable[[], None], int]], *, repeats: int, warmup: int,
                group: Any, sync: Callable[[], None]) -> list[list[float]]:
    """Samples (seconds) of each (run, extra), one call after a barrier each, the sizes
    interleaved within each repeat (a slow spell of the machine then lands on every size alike
    instead of on one); a small message is sampled `extra` times per repeat (it is cheap, and
    its time is the noisiest)."""
    import torch.distributed as dist

    for run, _ in runs:
        for _ in range(warmup):
            run()
    sync()
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for (run, extra), out in zip(runs, samples, strict=True):
            for _ in range(extra):
                dist.barrier(group=group)
                t0 = time.perf_counter()
                run()
                sync()
                out.append(time.perf_counter() - t0)
    return samples


def _tier_groups(rank: int, world: int, rpn: int) -> list[tuple[Tier, Any, list[int]]]:
    """(tier, group, its ranks) for this rank's tiers; every rank creates every group (the
    torch.distributed rule), in the same order."""
    import torch.distributed as dist

    n_nodes = world // rpn
    out: list[tuple[Tier, Any, list[int]]] = []
    if rpn >= 2:
        for node in range(n_nodes):
            ranks = list(range(node * rpn, (node + 1) * rpn))
            g = dist.new_group(ranks) if n_nodes > 1 else None
            if rank in ranks:
                out.append((Tier.SCALE_UP, g, ranks))
    if n_nodes >= 2:
        ranks = [node * rpn for node in range(n_nodes)]
        g = dist.new_group(ranks)
        if rank in ranks:
            out.append((Tier.SCALE_OUT, g, ranks))
    return out


def _n_points(plan: _Plan, world: int) -> int:
    tiers = (plan.ranks_per_node >= 2) + (world // plan.ranks_per_node >= 2)
    return tiers * len(plan.ops) * len(plan.sizes)


def _measure_in_rank(rank: int, world: int, plan: _Plan,
                     counter: Path | None = None) -> list[dict[str, Any]]:
    """This rank's part of the sweep; rank 0 returns the rows (measured_s = median over
    repeats of the slowest rank's time)."""
    import torch
    import torch.distributed as dist

    local = rank % plan.ranks_per_node
    if plan.backend == "nccl":
        torch.cuda.set_device(local)
        device: Any = torch.device("cuda", local)

        def sync() -> None:
            torch.cuda.synchronize()
    else:
        device = torch.device("cpu")

        def sync() -> None:
            return None
    rows: list[dict[str, Any]] = []
    tiers = _tier_groups(rank, world, plan.ranks_per_node)
    bar = None
    if plan.progress and rank == 0 and counter is None:
        from tqdm import tqdm

        bar = tqdm(total=_n_points(plan, world), desc="collectives", leave=False)
    for tier in (Tier.SCALE_UP, Tier.SCALE_OUT):
        mine = [t for t in tiers if t[0] is tier]
        # A rank outside the tier (scale-out: one rank per node takes part) waits at the
        # barrier below, so that none leaves the group while a tier is still measuring.
        _, group, ranks = mine[0] if mine else (tier, None, [])
        n = len(ranks)
        for op_name in plan.ops:
            if not mine:
                dist.barrier()  # one per op, so an idle rank never waits a whole tier
                continue
            op = CollectiveOp(op_name)
            elems = [max(n, round(size / ELEMENT_BYTES / n) * n) for size in plan.sizes]
            runs = [(_runner(op, e, group, ranks.index(rank), n, device), _burst(size))
                    for e, size in zip(elems, plan.sizes, strict=True)]
            samples = _time_sizes(runs, repeats=plan.repeats, warmup=plan.warmup, group=group,
                                  sync=sync)
            flat = torch.tensor([t for row in samples for t in row], dtype=torch.float64,
                                device=device)  # NCCL reduces device tensors only
            dist.all_reduce(flat, op=dist.ReduceOp.MAX, group=group)  # the slowest rank
            if rank == ranks[0]:
                slowest = flat.cpu().split([len(row) for row in samples])
                rows += [dict(op=op.value, tier=tier.value, n_bytes=e * ELEMENT_BYTES,
                              n_ranks=n, measured_s=statistics.median(row.tolist()))
                         for e, row in zip(elems, slowest, strict=True)]
            del runs
            if bar is not None:
                bar.update(len(plan.sizes))
            if counter is not None and rank == 0:
                with counter.open("a") as f:  # one byte per point done
                    f.write("." * len(plan.sizes))
            dist.barrier()  # matches the idle ranks' barrier of this op
    if bar is not None:
        bar.close()
    return rows


def run_rank(rank: int, world: int, init_method: str, plan: _Plan, out_dir: str) -> None:
    """One spawned rank (planner.measure.rank_main): join the group, measure, and (rank 0)
    write the rows; progress goes to a counter file the parent reads."""
    import torch.distributed as dist

    share_threads(plan.ranks_per_node)
    dist.init_process_group(plan.backend, init_method=init_method, rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    try:
        rows = _measure_in_rank(rank, world, plan, Path(out_dir) / "progress")
        if rank == 0:
            (Path(out_dir) / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    finally:
        dist.destroy_process_group()


def spawn_ranks(n: int, task: str, payload: dict[str, Any], out_dir: Path, *, total: int,
                desc: str, progress: bool, timeout_s: float = 3600.0) -> None:
    """Start `n` Python processes running planner.measure.rank_main (`task`, `payload` as
    JSON), rank r with RANK=r; show a progress bar from the counter file rank 0 writes; wait.
    A failed rank raises RuntimeError with the last line it printed. Separate interpreters
    (not multiprocessing's spawn) so that a caller's script needs no `__main__` guard."""
    import subprocess
    import sys

    init = f"tcp://127.0.0.1:{_free_port()}"
    spec = json.dumps({"task": task, "world": n, "init": init, "out_dir": str(out_dir),
                       **payload})
    (out_dir / "spec.json").write_text(spec, encoding="utf-8")
    env = {**os.environ, "PYTHONWARNINGS": "ignore::FutureWarning"}
    procs: list[Any] = []
    logs: list[Any] = []
    failed: list[int] = []  # ranks that exited non-zero, in the order they did
    bar = None
    counter = out_dir / "progress"
    deadline = time.monotonic() + timeout_s
    timed_out = False
    try:
        for r in range(n):
            log = open(out_dir / f"rank{r}.log", "w+", encoding="utf-8")
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "planner.measure.rank_main", str(out_dir / "spec.json"),
                 str(r)], stdout=log, stderr=subprocess.STDOUT, env=env))
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=desc, leave=False)
        while True:
            codes = [p.poll() for p in procs]
            failed += [r for r, c in enumerate(codes) if c not in (None, 0) and r not in failed]
            if failed or all(c is not None for c in codes):
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            if bar is not None and counter.exists():
                bar.update(max(0, min(total, counter.stat().st_size) - bar.n))
            time.sleep(0.1)
    finally:  # no rank outlives the call, whatever happened
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        if bar is not None:
            bar.close()
    texts = []
    for log in logs:
        log.seek(0)
        texts.append(log.read())
        log.close()
    if timed_out:
        raise RuntimeError(f"{desc}: no result after {timeout_s:.0f} s; killed the {n} ranks")
    if failed:
        r = failed[0]  # the first to fail; the others were killed or lost their peer
        lines = [ln.strip() for ln in texts[r].splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {procs[r].returncode}"
        raise RuntimeError(f"{desc}: rank {r} of {n} failed: {why[:300]}")


def _frame(rows: list[dict[str, Any]], *, backend: str) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["op", "tier", "n_bytes", "n_ranks", "measured_s"])
    df = leave_one_out(df)
    df["measured_busbw_bytes_per_s"] = (bus_factor_col(df) * df["n_bytes"] / df["measured_s"])
    return df.assign(backend=backend, host=socket.gethostname(),
                     measured_on=time.strftime("%Y-%m-%d"))


def bus_factor_col(df: pd.DataFrame) -> np.ndarray:
    """bus_factor(op, n_ranks) of each row (what nccl-tests multiplies algbw by)."""
    return np.array([float(bus_factor(op, n)) for op, n in zip(df["op"], df["n_ranks"],
                                                                  strict=True)])


def calibrate_collectives(n_ranks: int = 2, backend: str = "gloo",
                          sizes_bytes: Iterable[float] | None = None,
                          ops: Iterable[str] | None = None, *, ranks_per_node: int | None = None,
                          repeats: int = 10, warmup: int = 2,
                          progress: bool = True) -> pd.DataFrame:
    """Measure collectives on `n_ranks` local processes and fit the planner's α–β form.

    Spawns a real process group (torch.multiprocessing, `backend` gloo or nccl), times
    all_reduce, all_gather, reduce_scatter, all_to_all and send_recv (`ops`) at each message
    size (`sizes_bytes`, default 1 KiB to 64 MiB in steps of 4): `warmup` calls, then
    `repeats` rounds over all sizes (interleaved), each sample one call after a barrier
    (messages under 1 MiB sampled up to 20 times per round), timed as the slowest rank;
    `measured_s` is the median sample. Returns
    one row per (tier, op, size): op, tier, n_bytes, n_ranks, measured_s, predicted_s (from
    a fit that left that size out), rel_err and measured_busbw_bytes_per_s.
    `fit_collectives(df)` gives the fitted tiers; `collectives_toml` writes them.

    `ranks_per_node` (default n_ranks) splits the ranks into pretend nodes: the scale-up tier
    is measured inside node 0's ranks, the scale-out tier between the first rank of each.
    """
    n = check_int(n_ranks, "n_ranks", minimum=2, maximum=MAX_LOCAL_RANKS)
    rpn = n if ranks_per_node is None else check_int(ranks_per_node, "ranks_per_node",
                                                     minimum=1, maximum=n)
    if n % rpn:
        raise InputError("ranks_per_node", f"{rpn} does not divide n_ranks = {n}")
    if rpn == 1 and n // rpn < 2:
        raise InputError("ranks_per_node", "one rank per node needs at least two nodes")
    plan = _Plan(backend, tuple(o.value for o in _ops(ops)), _sizes(sizes_bytes), rpn,
                 check_int(repeats, "repeats", minimum=1, maximum=1000),
                 check_int(warmup, "warmup", minimum=0, maximum=1000), bool(progress))
    check_backend(backend, rpn)
    import dataclasses

    with tempfile.TemporaryDirectory(prefix="planner_coll_") as tmp:
        spawn_ranks(n, "collectives", {"plan": dataclasses.asdict(plan)}, Path(tmp),
                    total=_n_points(plan, n), desc="collectives", progress=plan.progress)
        rows = json.loads((Path(tmp) / "rows.json").read_text(encoding="utf-8"))
    return _frame(rows, backend=backend)


def calibrate_collectives_here(backend: str = "gloo", sizes_bytes: Iterable[float] | None = None,
                               ops: Iterable[str] | None = None, *, repeats: int = 10,
                               warmup: int = 2, progress: bool = True) -> pd.DataFrame | None:
    """The same measurement inside a group launched by `torchrun` (RANK, WORLD_SIZE,
    LOCAL_WORLD_SIZE, MASTER_ADDR/PORT set): every rank calls it; rank 0 gets the DataFrame,
    the others None. Nodes are LOCAL_WORLD_SIZE consecutive ranks (torchrun's numbering)."""
    import torch.distributed as dist

    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ["RANK"])
        rpn = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    except (KeyError, ValueError):
        raise InputError("torchrun", "RANK and WORLD_SIZE are not set: launch with torchrun "
                                     "--nproc-per-node N -m planner calibrate --collectives, "
                                     "or use --nproc N here") from None
    if world < 2 or world % rpn:
        raise InputError("torchrun", f"WORLD_SIZE {world} must be ≥ 2 and a multiple of "
                                     f"LOCAL_WORLD_SIZE {rpn}")
    check_backend(backend, rpn)
    plan = _Plan(backend, tuple(o.value for o in _ops(ops)), _sizes(sizes_bytes), rpn,
                 check_int(repeats, "repeats", minimum=1, maximum=1000),
                 check_int(warmup, "warmup", minimum=0, maximum=1000), bool(progress))
    share_threads(rpn)
    dist.init_process_group(backend, timeout=timedelta(seconds=300))
    try:
        rows = _measure_in_rank(rank, world, plan)
    finally:
        dist.destroy_process_group()
    return _frame(rows, backend=backend) if rank == 0 else None


# ---- the catalog entry --------------------------------------------------------------------------
def tier_table(fit: CollectiveFit, tier: Tier, link_bytes_per_s: float) -> dict[str, Any]:
    """The `[kernels.collectives.<tier>]` table: busbw fractions of `link_bytes_per_s` (the
    best op's bandwidth when it is the measured link), per-op latencies, and the source."""
    fits = {f.op: f for f in fit.fits if f.tier is tier}
    if not fits:
        raise ValueError(f"fit: no {tier.value} measurements")
    lat = statistics.median(f.latency_s for f in fits.values())
    first = next(iter(fits.values()))
    table: dict[str, Any] = {
        "source": (f"measured by planner calibrate --collectives on {fit.measured_on} "
                   f"({fit.host}, torch.distributed {fit.backend}, {first.n_ranks} ranks in "
                   f"the {tier.value} tier): α–β fit per op on message sizes; median |error| on "
                   "left-out sizes " + ", ".join(f"{op.value} {f.median_abs_rel_err:.0%}"
                                                 for op, f in fits.items())
                   + f"; link = {link_bytes_per_s / 1e9:.4g} GB/s"),
        "latency_s": float(f"{max(lat, 1e-9):.4g}"),
    }
    for op in CollectiveOp:
        f = fits.get(op)
        frac = f.busbw_bytes_per_s / link_bytes_per_s if f else min(
            g.busbw_bytes_per_s for g in fits.values()) / link_bytes_per_s
        table[op.value] = float(f"{min(1.0, max(1e-6, frac)):.4g}")
    table["op_latency_s"] = {op.value: float(f"{max(f.latency_s, 1e-9):.4g}")
                             for op, f in fits.items()}
    return table


def link_bandwidth(fit: CollectiveFit, tier: Tier) -> float:
    """The tier's link bandwidth as the catalog stores it: the best op's fitted bus bandwidth
    (so that op's fraction is 1.0 and none is above it)."""
    return max(f.busbw_bytes_per_s for f in fit.fits if f.tier is tier)


def measured_tiers_note(fit: CollectiveFit) -> str:
    return ", ".join(f"{t.value} {link_bandwidth(fit, t) / 1e9:.3g} GB/s" for t in fit.tiers())



def _merge_tier(base: dict[str, Any] | None, measured: dict[str, Any], fit: CollectiveFit,
                tier: Tier, *, old_link: float | None, link: float) -> dict[str, Any]:
    """A published tier with the measured ops replaced (fraction and α); the ops not measured
    keep their published α and their absolute bandwidth (fraction rescaled when the link is
    raised to a measured bandwidth above the published one)."""
    if not base:
        return measured
    done = {f.op.value for f in fit.fits if f.tier is tier}
    merged = dict(base)
    for op in CollectiveOp:
        if op.value in done:
            merged[op.value] = measured[op.value]
        elif old_link:
            merged[op.value] = float(f"{min(1.0, base[op.value] * old_link / link):.4g}")
    merged["op_latency_s"] = {**base.get("op_latency_s", {}), **measured["op_latency_s"]}
    merged["source"] = (f"{base['source']} Replaced by measurement for "
                        f"{', '.join(sorted(done))}: {measured['source']}")
    return merged


def collectives_catalog_toml(fit: CollectiveFit, *, base_device: str | None = None,
                             ceilings: Any = None, device_id: str | None = None,
                             catalog: Any = None) -> str:
    """A catalog user file carrying the measured tiers, loadable by `load_catalog` and usable
    by `rank(..., catalog=...)`:

    * `base_device` (a catalog id, e.g. your cluster's nvidia_h100_sxm): a `[[device]]`
      override of that device and its `[[kernels]]` table in which the measured ops of the
      measured tiers replace the published ones (busbw fraction of the device's link, α per
      op); ops and tiers not measured, and the GEMM, attention and memory tables, are kept.
      The link is raised only where a measured bus bandwidth exceeds it; the scale-up domain
      becomes the ranks per node only when a node boundary was measured (a scale-out tier).
    * `ceilings` (a `calibrate()` result of this machine, per rank): a new device, one rank of
      this machine, with its kernel sweep and the measured collectives (link = the best op's
      bus bandwidth; on a CPU each rank has 1/ranks-per-node of the memory, and of the
      scale-out bandwidth, which the node's ranks share).
    """
    from planner.report.toml import dumps

    if (base_device is None) == (ceilings is None):
        raise ValueError("collectives_catalog_toml: give base_device or ceilings (not both)")
    links = {t: link_bandwidth(fit, t) for t in fit.tiers()}
    source = (f"collectives measured by planner calibrate --collectives on {fit.measured_on} "
              f"({fit.host}, {fit.backend}, {fit.n_ranks} ranks, {fit.ranks_per_node} per "
              f"node): {measured_tiers_note(fit)}")
    comment = (f"Written by planner calibrate --collectives on {fit.measured_on}; load with "
               "load_catalog(this_file) or `planner rank ... --catalog this_file`.")
    link_field = {Tier.SCALE_UP: "scaleup_bw_bytes_per_s",
                  Tier.SCALE_OUT: "scaleout_bw_bytes_per_s"}
    if base_device is not None:
        from planner.hardware.catalog import load_catalog
        from planner.hardware.kernels import kernel_entry

        cat = catalog if catalog is not None else load_catalog()
        dev = cat.get(base_device)
        entry, _ = kernel_entry(dev, cat.kernel_tables())
        kernels = entry.model_dump(mode="json", exclude_none=True)
        device: dict[str, Any] = {"id": dev.id, "sources": [source]}
        tables = dict(kernels["collectives"])
        for tier, bw in links.items():
            old = getattr(dev, link_field[tier])
            link = max(old or 0.0, bw)
            if link != old:
                device[link_field[tier]] = float(f"{link:.6g}")
            tables[tier.value] = _merge_tier(tables.get(tier.value),
                                             tier_table(fit, tier, link), fit, tier,
                                             old_link=old, link=link)
        if Tier.SCALE_OUT in links:
            device["scaleup_domain_size"] = fit.ranks_per_node
        if dev.scaleup_link is None:
            device["scaleup_link"] = f"{fit.backend} (measured)"
        kernels.update(devices=[dev.id], checked_on=fit.measured_on, collectives=tables,
                       notes=f"{kernels.get('notes', '')} Collectives: {source}.".strip())
        return dumps({"device": [device], "kernels": [kernels]}, comment=comment)
    import tomllib

    from planner.measure.calibration import to_catalog_toml

    cpu = ceilings.device == "cpu"
    share = fit.ranks_per_node if cpu else 1
    doc = tomllib.loads(to_catalog_toml(ceilings, device_id=device_id))
    device = doc["device"][0]
    tables = {t.value: tier_table(fit, t, bw) for t, bw in links.items()}
    if Tier.SCALE_UP.value not in tables:  # one rank per node: no scale-up tier was measured
        up = dict(tables[Tier.SCALE_OUT.value])
        up["source"] = ("not measured (one rank per node): a copy of the scale_out tier; the "
                        "device's scaleup_domain_size is 1, so the planner does not use it")
        tables = {Tier.SCALE_UP.value: up, **tables}
    for tier, bw in links.items():
        per_rank = bw / share if tier is Tier.SCALE_OUT else bw
        device[link_field[tier]] = float(f"{per_rank:.6g}")
    device.update(scaleup_domain_size=fit.ranks_per_node,
                  scaleup_link=f"{fit.backend} between processes (measured)")
    device["memory_bytes"] = float(f"{device['memory_bytes'] / share:.6g}")
    device["sources"] = [*device.get("sources", []), source]
    device["notes"] = (f"{device.get('notes', '')} One device = one rank of {fit.ranks_per_node} "
                       "per node" + (" (its share of the cores, the memory and the node's "
                                     "scale-out bandwidth)." if cpu else ".")).strip()
    doc["kernels"][0]["collectives"] = tables
    return dumps({"device": [device], "kernels": doc["kernels"]}, comment=comment)


COLLECTIVES_CSV_COLUMNS = ("op", "tier", "n_bytes", "n_ranks", "measured_s")


def read_collectives_csv(path: str | Path, field: str = "path") -> pd.DataFrame:
    """A `planner calibrate --collectives --csv` file back as the DataFrame `fit_collectives`
    takes; every problem is one line naming `field` and the file."""
    where = clip(str(path))
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(field, f"cannot read {where}: {' '.join(str(err).split())[:120]}"
                         ) from None
    missing = [c for c in COLLECTIVES_CSV_COLUMNS if c not in df]
    if missing or df.empty:
        raise InputError(field, f"{where} is not a collectives CSV (missing "
                                f"{', '.join(missing) or 'rows'}); write one with planner "
                                "calibrate --collectives --csv")
    ops, tiers = {o.value for o in CollectiveOp}, {t.value for t in Tier}
    for column, allowed in (("op", ops), ("tier", tiers)):
        bad = [v for v in df[column].unique() if v not in allowed]
        if bad:
            raise InputError(field, f"{where}: {column} {clip(bad[0])} is not one of "
                                    f"{', '.join(sorted(allowed))}")
    for column, minimum in (("n_bytes", 1.0), ("n_ranks", 2.0), ("measured_s", 0.0)):
        values = pd.to_numeric(df[column], errors="coerce")
        ok = values.notna() & np.isfinite(values) & (values >= minimum)
        if column == "measured_s":
            ok &= values > 0
        if not ok.all():
            bad = df[column][~ok].iloc[0]
            shown = clip(bad) if isinstance(bad, str) else str(bad)
            raise InputError(field, f"{where}: {column} {shown} "
                                    f"must be a number ≥ {minimum:g}"
                                    + (" and > 0" if column == "measured_s" else ""))
        df[column] = values
    keep = [c for c in (*COLLECTIVES_CSV_COLUMNS, "backend", "host", "measured_on") if c in df]
    return df[keep]
