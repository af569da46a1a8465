"""A measured multi-process training step: data parallel over `dp` ranks and Megatron tensor
parallel over `tp` ranks, on real torch.distributed process groups (gloo on a CPU), compared
term by term with the planner's prediction for that local "cluster".

Each rank runs the reference model (planner.measure.torch_models) of its shard: under TP the
attention heads, KV heads and dense MLP width are split tp ways (Megatron's column/row-parallel
layers, Shoeybi et al. 2019 §3: an all-reduce of the block's output after attention and after
the MLP in the forward, and of the input gradient before each in the backward); embeddings,
norms and the LM head are replicated. A mixture-of-experts model's experts (moe_d_ff, router,
shared experts) are not sharded: it runs with tp 1 only (data parallel), tp > 1 is refused.
After the backward the data-parallel ranks all-reduce one persistent flat fp32 gradient buffer
that the gradients are views of (DDP's gradient_as_bucket_view; no overlap with the backward:
each term is timed alone), then AdamW steps.

Predicted, per term (docs/validation.md, "A measured multi-process step"):
* forward, backward, optimizer: the roofline of `planner.measure.calibration.predict_times` for
  one rank's shard, with ceilings measured by every rank at once (the cores are shared as in
  the step);
* tp_comm: 4 · n_layers all-reduces of b·s·d·4 bytes over tp ranks;
* dp_comm: one all-reduce of the shard's gradient bytes over dp ranks;
  both with the α–β tiers of `calibrate_collectives` (measured first, or given);
* sync_wait: measured only, the time ranks wait at a barrier before each all-reduce for the
  slower rank (skew on a shared machine); predicted 0 (the planner runs ranks in lockstep);
* step: the sum (nothing overlaps in this step).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from planner.errors import InputError, check_int
from planner.hardware.kernels import CollectiveOp, Tier
from planner.measure.collectives import (
    MAX_LOCAL_RANKS,
    CollectiveFit,
    alpha_beta_time_s,
    calibrate_collectives,
    fit_collectives,
    share_threads,
    spawn_ranks,
    threads_per_rank,
)
from planner.measure.validate import check_fits_in_memory
from planner.model.layers import layer_table
from planner.model.spec import ModelSpec
from planner.model.spec import model as find_model

TERMS = ("forward", "backward", "tp_comm", "dp_comm", "sync_wait", "optimizer", "step")
FP32_BYTES = 4


def shard_spec(spec: ModelSpec, tp: int) -> ModelSpec:
    """One tensor-parallel rank's model: heads, KV heads and MLP width split `tp` ways.

    Dense MLPs only: the experts of a mixture-of-experts model (moe_d_ff, the router, shared
    experts) are not sharded here, so tp > 1 with a MoE model is refused before anything else
    is checked (tp 1, pure data parallelism, runs it)."""
    if tp == 1:
        return spec
    if spec.is_moe:
        raise InputError("tp", f"{tp} with a mixture-of-experts model ({spec.n_experts} "
                               f"experts of width {spec.expert_d_ff}): the measured step "
                               "shards attention heads and dense MLPs (d_ff), not experts "
                               "(moe_d_ff); use tp 1 (data parallel) for a MoE model")
    for field, value in (("n_heads", spec.n_heads), ("n_kv_heads", spec.kv_heads),
                         ("d_ff", spec.d_ff)):
        if value % tp:
            raise InputError("tp", f"{tp} does not divide {field} = {value}")
    return spec.with_(n_heads=spec.n_heads // tp, n_kv_heads=spec.kv_heads // tp,
                      head_dim=spec.d_head, d_ff=spec.d_ff // tp,
                      name=f"{spec.name} (1/{tp} tp shard)")


def predict_terms(spec: ModelSpec, *, seq_len: int, batch_size: int, tp: int, dp: int,
                  ceilings: Any, collectives: CollectiveFit) -> dict[str, float]:
    """The planner's seconds per term for one rank of this layout (see the module doc)."""
    from planner.measure.calibration import predict_times

    shard = shard_spec(spec, tp)
    table = layer_table(shard, seq_len=seq_len, batch_size=batch_size, mode="train",
                        precision="fp32")
    t = predict_times(shard, table, ceilings, seq_len=seq_len, batch_size=batch_size,
                      mode="train", act_bytes=FP32_BYTES)
    out = {"forward": t["forward"], "backward": t["backward"], "optimizer": t["optimizer"],
           "tp_comm": 0.0, "dp_comm": 0.0, "sync_wait": 0.0}
    fit = collectives.get(Tier.SCALE_UP, CollectiveOp.ALL_REDUCE)
    if fit is None:
        raise InputError("collectives", "no scale_up all_reduce in the calibration")
    if tp > 1:
        msg = batch_size * seq_len * spec.d_model * FP32_BYTES
        out["tp_comm"] = 4 * spec.n_layers * float(
            alpha_beta_time_s(CollectiveOp.ALL_REDUCE, msg, tp, fit.latency_s,
                              fit.busbw_bytes_per_s))
    if dp > 1:
        grad = float(table["grad_bytes"].sum())
        out["dp_comm"] = float(alpha_beta_time_s(CollectiveOp.ALL_REDUCE, grad, dp,
                                                 fit.latency_s, fit.busbw_bytes_per_s))
    out["step"] = sum(out.values())
    return out


# ---- inside each rank -------------------------------------------------------------------------
def _tp_functions():
    import torch
    import torch.distributed as dist

    class Clock:
        comm_s = 0.0  # inside all-reduces
        wait_s = 0.0  # at the barrier before each: waiting for the slower rank

    def reduce(x: torch.Tensor, group: Any) -> torch.Tensor:
        Clock.wait_s += timed_barrier(group)
        t0 = time.perf_counter()
        dist.all_reduce(x, group=group)
        Clock.comm_s += time.perf_counter() - t0
        return x

    class ReduceFwd(torch.autograd.Function):
        """Row-parallel output: all-reduce forward, identity backward."""

        @staticmethod
        def forward(ctx, x, group):  # type: ignore[override]
            return reduce(x.clone(), group)

        @staticmethod
        def backward(ctx, grad):  # type: ignore[override]
            return grad, None

    class ReduceBwd(torch.autograd.Function):
        """Column-parallel input: identity forward, all-reduce of the gradient backward."""

        @staticmethod
        def forward(ctx, x, group):  # type: ignore[override]
            ctx.group = group
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):  # type: ignore[override]
            return reduce(grad.contiguous().clone(), ctx.group), None

    return Clock, ReduceFwd, ReduceBwd


def timed_barrier(group: Any) -> float:
    """Seconds this rank waits at a barrier: the skew between ranks, kept out of the
    communication terms (the planner runs ranks in lockstep and predicts no wait)."""
    import torch.distributed as dist

    t0 = time.perf_counter()
    dist.barrier(group=group)
    return time.perf_counter() - t0


def _install_tp(net: Any, group: Any) -> Any:
    clock, reduce_fwd, reduce_bwd = _tp_functions()
    for block in net.blocks:
        for module in (block.attn, block.mlp):
            module.register_forward_pre_hook(
                lambda _m, args: (reduce_bwd.apply(args[0], group), *args[1:]))
            module.register_forward_hook(lambda _m, _a, out: reduce_fwd.apply(out, group))
    return clock


def run_rank(rank: int, spec_json: dict[str, Any]) -> None:
    """One rank of `validate_distributed` (started by planner.measure.rank_main)."""
    import torch
    import torch.distributed as dist

    from planner.measure.calibration import measure_ceilings
    from planner.measure.counters import MasterAdamW
    from planner.measure.torch_models import build_reference

    world, tp = int(spec_json["world"]), int(spec_json["tp"])
    share_threads(world)
    dist.init_process_group("gloo", init_method=spec_json["init"], rank=rank, world_size=world)
    out_dir = Path(spec_json["out_dir"])
    try:
        # Ceilings measured by every rank at once: the cores and memory are shared as in the step.
        ceilings = measure_ceilings("cpu", "fp32", optimizer=True)
        dist.barrier()
        tp_groups = [dist.new_group(list(range(s, s + tp))) for s in range(0, world, tp)]
        dp_groups = [dist.new_group(list(range(i, world, tp))) for i in range(tp)]
        tp_group, dp_group = tp_groups[rank // tp], dp_groups[rank % tp]
        dp = world // tp
        spec = ModelSpec.model_validate(spec_json["model"])
        shard = shard_spec(spec, tp)
        net = build_reference(shard, seed=rank // tp).train()
        clock = _install_tp(net, tp_group) if tp > 1 else None
        params = [p for p in net.parameters() if p.requires_grad]
        # Gradients live in one persistent flat buffer (DDP's gradient_as_bucket_view): the
        # data-parallel all-reduce runs on it in place, with no copy in or out.
        flat = torch.zeros(sum(p.numel() for p in params))
        off = 0
        for p in params:
            p.grad = flat[off:off + p.numel()].view_as(p)
            off += p.numel()
        opt = MasterAdamW(params)
        g = torch.Generator().manual_seed(1000 + rank // tp)
        b, s = int(spec_json["batch_size"]), int(spec_json["seq_len"])
        ids = torch.randint(0, spec.vocab_size, (b, s), generator=g)
        labels = torch.randint(0, spec.vocab_size, (b, s), generator=g)
        samples: dict[str, list[float]] = {k: [] for k in TERMS}
        warmup, repeats = int(spec_json["warmup"]), int(spec_json["repeats"])
        counter = out_dir / "progress"
        for i in range(warmup + repeats):
            flat.zero_()
            dist.barrier()
            if clock is not None:
                clock.comm_s = clock.wait_s = 0.0
            t0 = time.perf_counter()
            loss = net(ids, labels)
            t1 = time.perf_counter()
            tp_fwd = (clock.comm_s + clock.wait_s) if clock is not None else 0.0
            loss.backward()
            t2 = time.perf_counter()
            tp_comm = clock.comm_s if clock is not None else 0.0
            wait = clock.wait_s if clock is not None else 0.0
            tp_all = tp_comm + wait
            dp_comm = 0.0
            if dp > 1:
                wait += timed_barrier(dp_group)
                t_dp = time.perf_counter()
                dist.all_reduce(flat, group=dp_group)
                flat /= dp  # the mean, as DDP takes it
                dp_comm = time.perf_counter() - t_dp
            t3 = time.perf_counter()
            opt.step()
            t4 = time.perf_counter()
            if i >= warmup:
                samples["forward"].append(t1 - t0 - tp_fwd)
                samples["backward"].append(t2 - t1 - (tp_all - tp_fwd))
                samples["tp_comm"].append(tp_comm)
                samples["dp_comm"].append(dp_comm)
                samples["sync_wait"].append(wait)
                samples["optimizer"].append(t4 - t3)
                samples["step"].append(t4 - t0)
            if rank == 0:
                with counter.open("a") as f:
                    f.write(".")
        medians = torch.tensor([statistics.median(samples[k]) for k in TERMS],
                               dtype=torch.float64)
        dist.all_reduce(medians, op=dist.ReduceOp.MAX)  # the slowest rank sets the step
        if rank == 0:
            (out_dir / "result.json").write_text(json.dumps({
                "measured": dict(zip(TERMS, medians.tolist(), strict=True)),
                "ceilings": ceilings.model_dump(exclude={"sweep"}),
                "loss": float(loss.detach())}), encoding="utf-8")
    finally:
        dist.destroy_process_group()


# ---- the public function ------------------------------------------------------------------------
def validate_distributed(model: ModelSpec | str, *, seq_len: int, batch_size: int,
                         nproc: int = 2, tp: int = 1, n_layers: int | None = None,
                         repeats: int = 3, warmup: int = 1,
                         collectives: CollectiveFit | None = None,
                         progress: bool = True) -> pd.DataFrame:
    """Run a training step on `nproc` local gloo processes (tp-way tensor parallel, nproc/tp
    data parallel; `batch_size` sequences per data-parallel rank) and compare it with the
    planner's prediction per term. Returns one row per term (forward, backward, tp_comm,
    dp_comm, sync_wait, optimizer, step): measured_s (median over `repeats` steps, the
    slowest rank),
    predicted_s, and measured/predicted. `collectives`: a `fit_collectives` result for this
    machine; None measures one first (all_reduce, 1 KiB up to the gradient size, within
    16-64 MiB).
    `result.attrs["layout"]` holds the layout and sizes."""
    from planner.measure.calibration import Ceilings

    spec = find_model(model)
    n = check_int(nproc, "nproc", minimum=2, maximum=MAX_LOCAL_RANKS)
    tp = check_int(tp, "tp", minimum=1, maximum=n)
    if n % tp:
        raise InputError("tp", f"{tp} does not divide nproc = {n}")
    seq_len = check_int(seq_len, "seq_len", minimum=1, maximum=spec.max_seq_len)
    batch_size = check_int(batch_size, "batch_size", minimum=1, maximum=4096)
    repeats = check_int(repeats, "repeats", minimum=1, maximum=1000)
    warmup = check_int(warmup, "warmup", minimum=0, maximum=1000)
    if n_layers is not None:
        spec = spec.with_(n_layers=check_int(n_layers, "n_layers", minimum=1))
    shard = shard_spec(spec, tp)
    # What the torch reference does not build (MLA, multi-token prediction, a window shorter
    # than the sequence): refused here in one line, not inside a spawned rank.
    from planner.measure.torch_models import check_reference

    check_reference(spec, seq_len)
    table = layer_table(shard, seq_len=seq_len, batch_size=batch_size, mode="train",
                        precision="fp32")
    check_fits_in_memory(table, copies=n)
    if collectives is None:
        grad = float(table["grad_bytes"].sum())
        top = min(64 * 2**20, max(16 * 2**20, 1 << int(grad).bit_length()))
        sizes = [1024 * 4**k for k in range(12) if 1024 * 4**k <= top]
        collectives = fit_collectives(calibrate_collectives(
            n, "gloo", sizes, ops=["all_reduce"], repeats=5, progress=progress))
    with tempfile.TemporaryDirectory(prefix="planner_dist_") as tmp:
        payload = {"tp": tp, "model": spec.model_dump(mode="json"), "seq_len": seq_len,
                   "batch_size": batch_size, "repeats": repeats, "warmup": warmup}
        spawn_ranks(n, "validate", payload, Path(tmp), total=warmup + repeats,
                    desc="distributed step", progress=progress)
        result = json.loads((Path(tmp) / "result.json").read_text(encoding="utf-8"))
    ceilings = Ceilings.model_validate(result["ceilings"])
    predicted = predict_terms(spec, seq_len=seq_len, batch_size=batch_size, tp=tp, dp=n // tp,
                              ceilings=ceilings, collectives=collectives)
    df = pd.DataFrame({"term": TERMS,
                       "measured_s": [result["measured"][k] for k in TERMS],
                       "predicted_s": [predicted[k] for k in TERMS]})
    df["measured_over_predicted"] = df["measured_s"] / df["predicted_s"].where(
        df["predicted_s"] > 0)
    df.attrs["layout"] = {"model": spec.name, "n_layers": spec.n_layers, "nproc": n, "tp": tp,
                          "dp": n // tp, "seq_len": seq_len, "batch_size": batch_size,
                          "threads_per_rank": threads_per_rank(n),
                          "loss": result["loss"]}
    return df
