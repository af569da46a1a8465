"""`planner rank`: which hardware trains or serves a model fastest, cheapest or with the least
energy, on how many devices, laid out how.

    planner rank --model llama-2-7b --train-tokens 2e12 --seq-len 4096 --global-batch 1024
    planner rank --model llama-2-70b --serve --prompt-len 1024 --output-len 256 \\
        --requests-per-s 10
    planner rank --workload conll2003-bert-finetune --objective cost

The screen shows readable units (days, $, kWh); `--csv` writes every column in SI units.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

import pandas as pd
from pydantic import ValidationError

from planner.cli.args import (
    add_json_flag,
    check_output_path,
    nonnegative_int,
    positive_int,
    print_json,
)
from planner.errors import InputError, clip, one_line
from planner.hardware.catalog import CLOUD_CONTRACTS, KINDS, load_catalog
from planner.model.precision import POLICIES
from planner.model.spec import model
from planner.plan.cost import CostOptions
from planner.plan.ranking import rank
from planner.plan.search import OBJECTIVES
from planner.plan.workloads import (
    InferenceJob,
    TrainingJob,
    list_workloads,
    workload,
)
from planner.report.tables import to_csv
from planner.units import (
    JOULES_PER_KWH,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    SECONDS_PER_YEAR,
    duration_str,
    energy_str,
    usd_str,
)

_DASH = "—"
_DURATION_UNITS = {"s": 1.0, "min": 60.0, "h": SECONDS_PER_HOUR, "d": SECONDS_PER_DAY,
                   "w": 7 * SECONDS_PER_DAY, "y": SECONDS_PER_YEAR}


def parse_duration_s(text: str) -> float:
    """'3600', '12h', '30d', '2.5 w' -> seconds; ValueError naming --deadline otherwise."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-z]*)\s*", str(text))
    if not match or match.group(2) not in ("", *_DURATION_UNITS):
        raise InputError("--deadline", f"cannot read {clip(text)}; give seconds or a number "
                         f"with a unit ({', '.join(_DURATION_UNITS)}), e.g. 30d")
    return float(match.group(1)) * _DURATION_UNITS.get(match.group(2) or "s", 1.0)


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "rank", help="rank devices by time, cost or energy for a training or serving job",
        description="Search device × count × parallel layout for a workload and rank the best "
        "configuration per device. Prices carry their provider and date (in the CSV).")
    what = p.add_argument_group("workload")
    what.add_argument("--model", help="preset name (`planner models`), a config.json path or a "
                      "Hugging Face id in the local cache")
    what.add_argument("--workload", choices=list_workloads(), metavar="NAME",
                      help=f"a preset workload: {', '.join(list_workloads())}")
    what.add_argument("--precision", choices=list(POLICIES), default=None,
                      help="precision policy (default bf16)")
    what.add_argument("--compute-frac", type=float, metavar="FRAC",
                      help="one flat fraction of the dense peak for every GEMM and attention "
                      "kernel on every device, replacing the measured kernel tables (default: "
                      "the tables, hardware_catalog/kernels.toml). Not an MFU: MFU is an "
                      "output, lower once communication, the bubble and memory-bound ops count")
    train = p.add_argument_group("training")
    train.add_argument("--train-tokens", type=float, metavar="N", help="training tokens")
    train.add_argument("--seq-len", type=positive_int, help="tokens per sequence")
    train.add_argument("--global-batch", type=positive_int, metavar="SEQS",
                       help="sequences per optimizer step")
    train.add_argument("--optimizer", default=None,
                       help="adamw (default), adam, sgd or adamw8bit (8-bit moments)")
    train.add_argument("--adapter", choices=["none", "lora", "qlora"], default=None,
                       help="fine-tune a frozen base: LoRA adapters, or QLoRA (4-bit NF4 "
                            "base); default none (every weight trains)")
    train.add_argument("--lora-rank", type=positive_int, metavar="R",
                       help="LoRA rank (default 16; with --adapter)")
    train.add_argument("--lora-targets", metavar="NAMES",
                       help="comma-separated layers with adapters: all-linear (default), "
                            "attention, mlp or row names such as attn.q,attn.v")
    train.add_argument("--optimizer-offload", action="store_true", default=None,
                       help="ZeRO-Offload: gradients and optimizer state in host memory, the "
                            "update on the CPU (a PCIe transfer per step)")
    train.add_argument("--deadline", metavar="TIME",
                       help="finish within TIME (e.g. 30d, 12h): cheapest layout meeting it")
    train.add_argument("--tp", type=positive_int, help="pin tensor parallelism")
    train.add_argument("--pp", type=positive_int,
                       help="pin pipeline parallelism (training and serving)")
    train.add_argument("--cp", type=positive_int, help="pin context parallelism")
    train.add_argument("--ep", type=positive_int,
                       help="pin expert parallelism (MoE; training and serving)")
    train.add_argument("--virtual-stages", type=positive_int, metavar="V",
                       help="pin interleaved pipeline chunks per stage (1 = plain 1F1B)")
    train.add_argument("--zero", type=int, choices=[0, 1, 2, 3], help="pin the ZeRO stage")
    train.add_argument("--recompute", choices=["none", "selective", "full"],
                       help="pin activation recomputation")
    train.add_argument("--micro-batch", type=positive_int, help="pin the micro-batch size")
    train.add_argument("--goodput", type=float, metavar="FRAC",
                       help="pin the productive share of wall time (default: from the device "
                            "count, interruptions and checkpoints)")
    train.add_argument("--restart-s", type=float, metavar="S",
                       help="seconds from an interruption to training again (default 600)")
    train.add_argument("--checkpoint-write-s", type=float, metavar="S",
                       help="seconds a checkpoint stalls training (default 6.3)")
    train.add_argument("--interruptions-per-device-hour", type=float, metavar="RATE",
                       help="job-stopping interruptions per device-hour (default 1.97e-5, "
                            "Llama 3)")
    serve = p.add_argument_group("serving")
    serve.add_argument("--serve", action="store_true", help="plan inference instead")
    serve.add_argument("--prompt-len", type=positive_int, help="input tokens per request")
    serve.add_argument("--output-len", type=nonnegative_int,
                       help="output tokens per request (0: an encoder, one forward pass)")
    serve.add_argument("--requests-per-s", type=float, metavar="RATE", help="arrival rate")
    serve.add_argument("--concurrent", type=positive_int, metavar="N", help="concurrent requests")
    serve.add_argument("--ttft", type=float, metavar="S",
                       help="time-to-first-token target, s (at --percentile)")
    serve.add_argument("--tpot", type=float, metavar="S",
                       help="time-per-output-token target, s (at --percentile)")
    serve.add_argument("--percentile", type=float, metavar="P",
                       help="percentile the latency targets apply to (default 99; 50 = median)")
    serve.add_argument("--kv-precision", default=None,
                       help="KV cache dtype (default: fp8 under fp8/fp4 serving, else 16-bit)")
    serve.add_argument("--batch", type=positive_int, help="pin the batch per micro-batch")
    serve.add_argument("--max-batch", type=positive_int, help="largest batch per replica searched")
    serve.add_argument("--prefill-chunk", type=nonnegative_int, metavar="TOKENS",
                       help="token budget of a step with chunked prefill (default 8192; 0 = "
                            "each prompt prefilled alone)")
    serve.add_argument("--prefix-hit", type=float, metavar="FRAC",
                       help="share of each prompt found in the prefix cache (default 0)")
    serve.add_argument("--speculative-tokens", type=nonnegative_int, metavar="K",
                       help="draft tokens per step (speculative decoding; default 0)")
    serve.add_argument("--acceptance-rate", type=float, metavar="A",
                       help="probability a draft token is accepted (with --speculative-tokens)")
    serve.add_argument("--draft-model", metavar="MODEL",
                       help="draft model preset, or mtp for the model's own MTP module")
    serve.add_argument("--disaggregated", action="store_true", default=None,
                       help="prefill and decode on separate device pools")
    serve.add_argument("--target-utilization", type=float, metavar="FRAC",
                       help="share of a replica's capacity the load may use (default 0.8)")
    where = p.add_argument_group("hardware and cost")
    where.add_argument("--objective", choices=OBJECTIVES, default=None,
                       help="what to minimize (default: cost for serving and for training "
                            "with a deadline, time otherwise)")
    where.add_argument("--kinds", help=f"comma-separated device kinds ({','.join(KINDS)})")
    where.add_argument("--devices", type=positive_int, metavar="N",
                       help="fixed device count (training); for serving, the most devices")
    where.add_argument("--device-ids", metavar="IDS", help="comma-separated catalog ids only")
    where.add_argument("--catalog", action="append", default=[], metavar="PATH",
                       help="extra catalog file or directory (repeatable)")
    where.add_argument("--provider", default=None, help="cloud provider (default: cheapest)")
    where.add_argument("--contract", default="on-demand", choices=(*CLOUD_CONTRACTS, "any"))
    where.add_argument("--price", type=float, metavar="USD_PER_H",
                       help="use this $/device-hour for every device")
    where.add_argument("--cost-basis", choices=["cloud", "ownership"], default="cloud")
    where.add_argument("--usd-per-kwh", type=float, help="electricity price (ownership)")
    where.add_argument("--pue", type=float, help="power usage effectiveness")
    where.add_argument("--power-frac", type=float, metavar="F",
                       help="device's dynamic draw while busy, fraction of TDP above idle "
                            "(default 0.8)")
    where.add_argument("--server-cost-factor", type=float, metavar="F",
                       help="ownership: server cost over its accelerators' (default 1.65)")
    where.add_argument("--network-cost-factor", type=float, metavar="F",
                       help="ownership: cluster with interconnect over servers (default 1.19)")
    where.add_argument("--facility-usd-per-kw-month", type=float, metavar="USD",
                       help="ownership: data-centre space and power per kW of system power "
                            "per month (default 184.06; 0 leaves it out)")
    p.add_argument("--top", type=positive_int, default=None, metavar="N", help="show only N rows")
    p.add_argument("--csv", metavar="PATH", help="write every column (SI units) as CSV")
    add_json_flag(p, "every ranked row (as the CSV, whatever --top)")
    p.set_defaults(handler=_rank)
    return p


def _given(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


# Flags that belong to one mode only (--tp, --precision, --compute-frac, --devices: both).
TRAINING_FLAGS = {"--train-tokens": "train_tokens", "--seq-len": "seq_len",
                  "--global-batch": "global_batch", "--optimizer": "optimizer",
                  "--adapter": "adapter", "--lora-rank": "lora_rank",
                  "--lora-targets": "lora_targets", "--optimizer-offload": "optimizer_offload",
                  "--deadline": "deadline", "--zero": "zero", "--cp": "cp",
                  "--virtual-stages": "virtual_stages",
                  "--recompute": "recompute", "--micro-batch": "micro_batch",
                  "--goodput": "goodput", "--restart-s": "restart_s",
                  "--checkpoint-write-s": "checkpoint_write_s",
                  "--interruptions-per-device-hour": "interruptions_per_device_hour"}
SERVING_FLAGS = {"--prompt-len": "prompt_len", "--output-len": "output_len",
                 "--requests-per-s": "requests_per_s", "--concurrent": "concurrent",
                 "--ttft": "ttft", "--tpot": "tpot", "--kv-precision": "kv_precision",
                 "--max-batch": "max_batch", "--batch": "batch", "--percentile": "percentile",
                 "--prefill-chunk": "prefill_chunk", "--prefix-hit": "prefix_hit",
                 "--speculative-tokens": "speculative_tokens",
                 "--acceptance-rate": "acceptance_rate", "--draft-model": "draft_model",
                 "--disaggregated": "disaggregated",
                 "--target-utilization": "target_utilization"}


def _check_mode_flags(args: argparse.Namespace, *, serve: bool, workload_name: str | None
                      ) -> None:
    """A flag of the other mode would be silently ignored: refuse it, naming the flag."""
    if serve:
        for flag, dest in TRAINING_FLAGS.items():
            if getattr(args, dest) is not None:
                fix = (f"the workload {workload_name} is a serving job" if workload_name
                       else "drop --serve")
                raise InputError(flag, f"only for training jobs ({fix})")
        return
    if args.serve and workload_name:
        raise InputError("--serve", f"the workload {workload_name} is a training job")
    for flag, dest in SERVING_FLAGS.items():
        if getattr(args, dest) is not None:
            fix = (f"the workload {workload_name} is a training job" if workload_name
                   else "add --serve")
            raise InputError(flag, f"only for serving jobs ({fix})")


def build_job(args: argparse.Namespace) -> TrainingJob | InferenceJob:
    """The job the arguments describe (a preset with overrides, or built from flags).
    A flag of the other mode (a training flag with --serve, a serving flag without it, or
    either against a preset of the other kind) raises ValueError naming the flag."""
    common = _given(precision=args.precision, compute_frac=args.compute_frac)
    if args.workload:
        job = workload(args.workload)
        if args.model:
            common["model"] = model(args.model)
        serve = isinstance(job, InferenceJob)
    else:
        if not args.model:
            raise InputError("--model", "give a model (or --workload NAME)")
        common["model"] = model(args.model)
        serve = args.serve
    _check_mode_flags(args, serve=serve, workload_name=args.workload)
    if serve:
        fields = _given(prompt_len=args.prompt_len, output_len=args.output_len,
                        requests_per_s=args.requests_per_s,
                        concurrent_requests=args.concurrent, ttft_s=args.ttft,
                        tpot_s=args.tpot, kv_cache_precision=args.kv_precision, tp=args.tp,
                        pp=args.pp, ep=args.ep, batch_size=args.batch,
                        latency_percentile=args.percentile,
                        prefill_chunk_tokens=args.prefill_chunk,
                        prefix_cache_hit_frac=args.prefix_hit,
                        speculative_tokens=args.speculative_tokens,
                        acceptance_rate=args.acceptance_rate, draft_model=args.draft_model,
                        disaggregated=args.disaggregated,
                        target_utilization=args.target_utilization,
                        max_batch_size=args.max_batch, max_devices=args.devices, **common)
        if args.workload:
            return type(job)(**{**job.model_dump(exclude_unset=True), **fields})
        for flag, value in (("--prompt-len", args.prompt_len),
                            ("--output-len", args.output_len)):
            if value is None:
                raise InputError(flag, "required with --serve")
        return InferenceJob(**fields)
    deadline = parse_duration_s(args.deadline) if args.deadline else None
    fields = _given(n_tokens=args.train_tokens, seq_len=args.seq_len,
                    global_batch_size=args.global_batch, optimizer=args.optimizer,
                    adapter=args.adapter, lora_rank=args.lora_rank,
                    lora_targets=args.lora_targets.split(",") if args.lora_targets else None,
                    optimizer_offload=args.optimizer_offload, n_devices=args.devices,
                    deadline_s=deadline, tp=args.tp, pp=args.pp,
                    cp=args.cp, virtual_stages=args.virtual_stages, ep=args.ep,
                    zero_stage=args.zero, recompute=args.recompute,
                    micro_batch_size=args.micro_batch, goodput_frac=args.goodput,
                    restart_s=args.restart_s, checkpoint_write_s=args.checkpoint_write_s,
                    interruptions_per_device_hour=args.interruptions_per_device_hour,
                    **common)
    if args.workload:
        return type(job)(**{**job.model_dump(exclude_unset=True), **fields})
    for flag, key in (("--train-tokens", "n_tokens"), ("--seq-len", "seq_len"),
                      ("--global-batch", "global_batch_size")):
        if key not in fields:
            raise InputError(flag, "required for a training job (or use --serve)")
    return TrainingJob(**fields)


def _cost_options(args: argparse.Namespace) -> CostOptions:
    contract = None if args.contract == "any" else args.contract
    return CostOptions(contract=contract, **_given(
        basis=args.cost_basis, provider=args.provider,
        usd_per_device_hour=args.price, usd_per_kwh=args.usd_per_kwh, pue=args.pue,
        power_frac=args.power_frac, server_cost_factor=args.server_cost_factor,
        network_cost_factor=args.network_cost_factor,
        facility_usd_per_kw_month=args.facility_usd_per_kw_month))


def _fmt(value: Any, fn) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return _DASH
    return fn(value)


def _note(reason: str, feasible: bool, cost_note: str, scale_note: str = "") -> str:
    """The reason (infeasible), or the scale-out limit and the first clause of the cost note,
    shortened for a screen; the CSV keeps the whole text."""
    parts = [str(scale_note), str(cost_note).split(";")[0]]
    text = reason if not feasible else "; ".join(p for p in parts if p)
    width = 160 if not feasible else 100
    return text if len(text) <= width else text[:width - 1] + "…"


def _notes(df: pd.DataFrame) -> list[str]:
    scale = df["scale_note"] if "scale_note" in df.columns else [""] * len(df)
    return [_note(r, ok, n, sc) for r, ok, n, sc in zip(df["reason"], df["feasible"],
                                                        df["cost_note"], scale, strict=True)]


def _layout(tp: int, cp: int, pp: int, vs: int, dp: int, ep: int = 1) -> str:
    """t×c×p×d, the pipeline with its interleaved chunks ("16v7"), the data-parallel size
    with its expert-parallel share ("256e32")."""
    return f"{tp}×{cp}×{pp}{f'v{vs}' if vs > 1 else ''}×{dp}{f'e{ep}' if ep > 1 else ''}"


def _training_screen(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "#": df["rank"],
        "device": df["device"].astype(str),
        "kind": df["kind"].astype(str),
        "devices": df["n_devices"],
        "tp×cp×pp×dp": [_layout(t, c, p, v, d, e) for t, c, p, v, d, e in zip(
            df["tp"], df["cp"], df["pp"], df["virtual_stages"], df["dp"], df["ep"],
            strict=True)],
        "zero": df["zero_stage"], "mb": df["micro_batch_size"],
        "recompute": df["recompute"].astype(str),
        "goodput": [_fmt(v, lambda x: f"{100 * x:.1f}%") for v in df["goodput_frac"]],
        "time": [_fmt(v, duration_str) for v in df["time_s"]],
        "cost": [_fmt(v, usd_str) for v in df["cost_usd"]],
        "energy": [_fmt(v, energy_str) for v in df["energy_j"]],
        "MFU": [_fmt(v, lambda x: f"{100 * x:.1f}%") for v in df["mfu"]],
        "pareto": ["*" if p else "" for p in df["pareto"]],
        "note": _notes(df),
    })


def _serving_screen(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "#": df["rank"],
        "device": df["device"].astype(str),
        "kind": df["kind"].astype(str),
        "devices": df["n_devices"],
        "tp×pp×ep": [f"{t}×{p}×{e}" for t, p, e in zip(df["tp"], df["pp"], df["ep"],
                                                      strict=True)],
        "batch": df["batch_size"], "replicas": df["replicas"],
        "TTFT": [_fmt(v, duration_str) for v in df["ttft_s"]],
        "TTFT p99": [_fmt(v, duration_str) for v in df["ttft_p99_s"]],
        "TPOT": [_fmt(v, duration_str) for v in df["tpot_s"]],
        "TPOT p99": [_fmt(v, duration_str) for v in df["tpot_p99_s"]],
        "latency": [_fmt(v, duration_str) for v in df["time_s"]],
        "$/M tok": [_fmt(v, usd_str) for v in df["cost_usd"]],
        "kWh/M tok": [_fmt(v, lambda j: f"{j / JOULES_PER_KWH:.3g}") for v in df["energy_j"]],
        "tok/s/dev": [_fmt(v, lambda x: f"{x:,.0f}") for v in df["tokens_per_s_per_device"]],
        "pareto": ["*" if p else "" for p in df["pareto"]],
        "note": _notes(df),
    })


def _header(job: TrainingJob | InferenceJob, objective: str, cost: CostOptions) -> str:
    spec = job.model
    if isinstance(job, TrainingJob):
        what = (f"train {spec.name} ({spec.n_params / 1e9:.3g}B params) on {job.n_tokens:.3g} "
                f"tokens, seq {job.seq_len}, batch {job.global_batch_size} seqs "
                f"({job.n_steps:,} steps), {job.precision}, goodput "
                f"{'from scale' if job.goodput_frac is None else f'{job.goodput_frac:g}'}")
        if job.adapter != "none":
            what += (f", {job.adapter} r={job.lora_rank} on {','.join(job.lora_targets)} "
                     "(base frozen; MFU counts 6N as full training)")
        if job.optimizer_offload:
            what += ", optimizer offloaded to the host"
        if job.deadline_s:
            what += f", deadline {duration_str(job.deadline_s)}"
    else:
        load = (f"{job.requests_per_s:g} req/s" if job.requests_per_s is not None
                else f"{job.load_concurrency} concurrent")
        what = (f"serve {spec.name}: {job.prompt_len} in / {job.output_len} out tokens, {load}, "
                f"{job.precision}")
    price = (f"{cost.contract or 'any'} cloud price"
             + (f" from {cost.provider}" if cost.provider else " (cheapest provider)")
             if cost.basis == "cloud" else "ownership (purchase amortized + electricity)")
    return f"{what}\nranked by {objective}; cost = {price}"


# API field -> the flag that sets it, so that an error names what the user typed.
FIELD_FLAGS = {
    "model": "--model", "precision": "--precision", "compute_frac": "--compute-frac",
    "n_tokens": "--train-tokens", "seq_len": "--seq-len", "global_batch_size": "--global-batch",
    "optimizer": "--optimizer", "n_devices": "--devices", "max_devices": "--devices",
    "adapter": "--adapter", "lora_rank": "--lora-rank", "lora_targets": "--lora-targets",
    "optimizer_offload": "--optimizer-offload",
    "deadline_s": "--deadline", "tp": "--tp", "pp": "--pp", "zero_stage": "--zero",
    "cp": "--cp", "virtual_stages": "--virtual-stages", "ep": "--ep",
    "recompute": "--recompute", "micro_batch_size": "--micro-batch", "goodput_frac": "--goodput",
    "restart_s": "--restart-s", "checkpoint_write_s": "--checkpoint-write-s",
    "interruptions_per_device_hour": "--interruptions-per-device-hour",
    "prompt_len": "--prompt-len", "output_len": "--output-len",
    "requests_per_s": "--requests-per-s", "concurrent_requests": "--concurrent",
    "ttft_s": "--ttft", "tpot_s": "--tpot", "kv_cache_precision": "--kv-precision",
    "batch_size": "--batch", "latency_percentile": "--percentile",
    "prefill_chunk_tokens": "--prefill-chunk", "prefix_cache_hit_frac": "--prefix-hit",
    "speculative_tokens": "--speculative-tokens", "acceptance_rate": "--acceptance-rate",
    "draft_model": "--draft-model", "disaggregated": "--disaggregated",
    "target_utilization": "--target-utilization",
    "max_batch_size": "--max-batch", "usd_per_device_hour": "--price",
    "usd_per_kwh": "--usd-per-kwh", "pue": "--pue", "provider": "--provider",
    "power_frac": "--power-frac", "server_cost_factor": "--server-cost-factor",
    "network_cost_factor": "--network-cost-factor",
    "facility_usd_per_kw_month": "--facility-usd-per-kw-month",
    "basis": "--cost-basis", "contract": "--contract", "devices": "--device-ids",
    "kinds": "--kinds",
}


def as_flag_error(err: Exception) -> InputError:
    """The API's one-line error with its leading field replaced by the CLI flag that set it
    ("n_tokens: ..." -> "--train-tokens: ...")."""
    text = one_line(err) if isinstance(err, ValidationError) else str(err)
    field, sep, rest = text.partition(": ")
    flag = FIELD_FLAGS.get(field)
    return InputError(flag, rest) if sep and flag else InputError("", text)


def device_filters(args: argparse.Namespace) -> tuple[list[str] | None, list[str] | None]:
    """(--kinds, --device-ids) as lists, None where not given."""
    def items(text: str | None) -> list[str] | None:
        return [v.strip() for v in text.split(",") if v.strip()] if text else None

    return items(args.kinds), items(args.device_ids)


def objective_for(args: argparse.Namespace, job: TrainingJob | InferenceJob) -> str:
    """--objective, else the usual question: the cheapest serving plan (under its latency
    targets), the cheapest training plan within a deadline, the fastest without one."""
    if args.objective:
        return str(args.objective)
    if isinstance(job, InferenceJob) or job.deadline_s is not None:
        return "cost"
    return "time"


def _rank(args: argparse.Namespace) -> int:
    csv_path = check_output_path(args.csv, "--csv") if args.csv is not None else None
    catalog = load_catalog(*args.catalog)
    kinds, ids = device_filters(args)
    try:
        job = build_job(args)
        cost = _cost_options(args)
        objective = objective_for(args, job)
        df = rank(job, catalog, devices=ids, kinds=kinds, objective=objective, cost=cost)
    except (ValidationError, ValueError) as err:
        raise as_flag_error(err) from None
    if args.json:
        if csv_path is not None:
            to_csv(df, csv_path)
        print_json(df)
        return 0
    shown = df.head(args.top) if args.top else df
    screen = _training_screen(shown) if isinstance(job, TrainingJob) else _serving_screen(shown)
    print(_header(job, objective, cost))
    print(screen.to_string(index=False))
    if isinstance(job, InferenceJob):
        if job.output_len:
            print("latency = TTFT + (output − 1) × TPOT (means, with the queue's mean wait); "
                  "p99 from an M/M/c queue per replica; cost and energy per million output "
                  "tokens at the load")
        else:
            print("an encoder: latency = one forward pass + the queue's mean wait; p99 from an "
                  "M/M/c queue per replica; cost and energy per million input tokens at the "
                  "load")
    print("* on the time-cost Pareto front. Prices: provider and date in the CSV "
          "(cost_price_provider, cost_price_date). Assumptions: docs/planning.md")
    if csv_path is not None:
        print(f"wrote {to_csv(df, csv_path)}")
    return 0
