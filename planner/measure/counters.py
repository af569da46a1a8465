"""Measure one real PyTorch run of a `Reference` model, per analytic row.

What is measured (docs/validation.md says how each number is obtained):
- FLOPs per row, forward and backward, with FlopCounterMode's per-op formulas
  (`torch.utils.flop_counter.flop_registry`) and FlopCounterMode itself for the totals. Rows
  get their FLOPs from `ModuleScope`, which also attributes backward ops correctly (see there).
  Blind spots are closed by `extra_flop_formulas`: the CPU fused attention kernel
  (`_scaled_dot_product_flash_attention_for_cpu`) and `_grouped_mm` (Hugging Face MoE experts)
  are not in torch's registry and would count 0; the reference models use explicit matmuls.
- Bytes of parameters, gradients and optimizer state after a real optimizer step, per row.
- Bytes saved for backward, with `torch.autograd.graph.saved_tensors_hooks`: each saved
  tensor's *storage* is counted once (a view keeps its whole storage alive), on the innermost
  module running when it was first saved; parameters, buffers and the model's constants
  (rotary tables, causal mask) are not activations and are left out.
- KV-cache bytes after one decode step; step time (CPU: median of repeats after warm-up; CUDA:
  CUDA events) and, on CUDA, peak allocated memory per phase.

Torch is imported here; `import planner` never imports this module.
"""

from __future__ import annotations

import platform
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import (
    FlopCounterMode,
    flop_registry,
    sdpa_backward_flop_count,
    sdpa_flop_count,
    shape_wrapper,
)

from planner.measure.torch_models import build_reference, check_reference, row_of
from planner.model.layers import (
    block_kind_counts,
    block_kind_index,
    block_structure,
    outer_structure,
)
from planner.model.spec import ModelSpec

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
Progress = Callable[[str], None]


# ---- FLOP formulas for FlopCounterMode's blind spots -------------------------------------------
def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """CPU fused attention forward: QKᵀ and softmax·V, as torch counts the CUDA kernels."""
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    """CPU fused attention backward: 5 matmuls (QKᵀ is recomputed), as torch counts CUDA's."""
    return sdpa_backward_flop_count(grad_out, query, key, value)


def _grouped_mm_flops(a, b, *args, out_shape=None, **kwargs) -> int:
    """`_grouped_mm`, 2 · Σ_groups m·k·n. 2-D × 3-D (ragged rows): out [M, N], k = a[-1];
    2-D × 2-D (ragged k, the weight gradient): out [G, M, N], Σ k = a[-1]."""
    if len(a) == 2 and len(b) == 2:
        return 2 * out_shape[-2] * out_shape[-1] * a[-1]
    return 2 * int(np.prod(out_shape)) * a[-1]


def extra_flop_formulas() -> dict:
    """Formulas for ops torch's FlopCounterMode does not count (only those it lacks)."""
    extra = {}
    for name, fn in [("_scaled_dot_product_flash_attention_for_cpu", _cpu_sdpa_flops),
                     ("_scaled_dot_product_flash_attention_for_cpu_backward",
                      _cpu_sdpa_backward_flops),
                     ("_grouped_mm", _grouped_mm_flops)]:
        op = getattr(torch.ops.aten, name, None)
        if op is not None and op not in flop_registry:
            extra[op] = fn
    return extra


def flop_counter() -> FlopCounterMode:
    """A quiet FlopCounterMode that also counts CPU fused attention and grouped matmuls."""
    return FlopCounterMode(display=False, custom_mapping=extra_flop_formulas())


# ---- which module is running: forward by hooks, backward by autograd-node ownership ------------
class ModuleScope:
    """The innermost module running, in forward and (after `own_backward`) in backward.

    FlopCounterMode's module tracker misattributes backward: a tensor read by several modules
    (the norm output feeding q, k and v) keeps all of them "active" until its gradient is
    complete, so their backward FLOPs are counted two or three times. Here every autograd node
    is owned by the innermost module whose forward created it (autograd sequence numbers are
    issued in creation order, so a module owns the numbers issued between its forward pre- and
    post-hook), and a pre-hook on each node makes its owner current while the node runs.
    """

    def __init__(self, root: torch.nn.Module):
        self.root = root
        self._stack: list[tuple[str, int]] = []
        self._spans: list[tuple[int, int, int, str]] = []  # (depth, first, end, name)
        self._handles: list = []
        self._backward_owner: str | None = None

    @property
    def current(self) -> str:
        if self._backward_owner is not None:
            return self._backward_owner
        return self._stack[-1][0] if self._stack else ""

    def _push(self, name: str):
        def hook(_module, _args) -> None:
            self._stack.append((name, torch._C._autograd._get_sequence_nr()))
        return hook

    def _pop(self, _module, _args, _output) -> None:  # must return None (else: a new output)
        name, first = self._stack.pop()
        self._spans.append((len(self._stack), first, torch._C._autograd._get_sequence_nr(), name))

    def __enter__(self) -> ModuleScope:
        for name, mod in self.root.named_modules():
            self._handles.append(mod.register_forward_pre_hook(self._push(name)))
            self._handles.append(mod.register_forward_hook(self._pop))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def own_backward(self, output: torch.Tensor) -> None:
        """Give every node of `output`'s graph an owner whose hooks switch `current`."""
        if output.grad_fn is None:
            return
        lo = min((f for _, f, _, _ in self._spans), default=0)
        hi = max((e for _, _, e, _ in self._spans), default=0)
        owner = [""] * max(hi - lo, 0)
        for _depth, first, end, name in sorted(self._spans):  # deeper spans overwrite
            owner[first - lo:end - lo] = [name] * (end - first)
        seen: set = set()
        todo = [output.grad_fn]
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            seq = node._sequence_nr()
            node.register_prehook(self._enter_node(owner[seq - lo] if lo <= seq < hi else ""))
            node.register_hook(self._leave_node)
            todo.extend(n for n, _ in node.next_functions if n is not None)

    def _enter_node(self, name: str):
        def hook(_grad_outputs) -> None:
            self._backward_owner = name
        return hook

    def _leave_node(self, _grad_inputs, _grad_outputs) -> None:
        self._backward_owner = ""


class RowFlopCounter(TorchDispatchMode):
    """FLOPs per innermost module with FlopCounterMode's formulas (+ `extra_flop_formulas`)."""

    def __init__(self, scope: ModuleScope):
        super().__init__()
        self.scope = scope
        self.formulas = dict(flop_registry)
        self.formulas.update({k: shape_wrapper(v) for k, v in extra_flop_formulas().items()})
        self.flops: dict[str, float] = defaultdict(float)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            self.flops[self.scope.current] += formula(*args, **kwargs, out_val=out)
        return out


def count_module_flops(module: torch.nn.Module, forward: Callable[[], torch.Tensor], *,
                       backward: bool = True) -> tuple[dict[str, float], dict[str, float]]:
    """FLOPs per innermost module name of any nn.Module (a Hugging Face model, say).

    `forward()` runs the model and returns a tensor; with `backward`, its sum is
    backpropagated. Returns (forward, backward) dicts {module name: FLOPs}; '' is code
    outside every submodule.
    """
    scope = ModuleScope(module)
    counter = RowFlopCounter(scope)
    with counter:
        with scope:
            out = forward()
        fwd = dict(counter.flops)
        if backward:
            loss = out.float().sum()
            scope.own_backward(loss)
            loss.backward()
    bwd = {k: v - fwd.get(k, 0.0) for k, v in counter.flops.items()}
    return fwd, {k: v for k, v in bwd.items() if v}


class SavedTensorTracker:
    """Bytes saved for backward per innermost module; each storage once; weights excluded."""

    def __init__(self, net: torch.nn.Module, scope: ModuleScope):
        self.net, self.scope = net, scope
        self.bytes_by_module: dict[str, float] = defaultdict(float)
        self._seen: set[int] = set()
        self._static = {t.untyped_storage().data_ptr()
                        for t in [*net.parameters(), *net.buffers()]}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        constants = {c.untyped_storage().data_ptr() for c in getattr(self.net, "constants", [])}
        if ptr not in self._seen and ptr not in self._static and ptr not in constants:
            self._seen.add(ptr)
            self.bytes_by_module[self.scope.current] += storage.nbytes()
        return t

    def __enter__(self) -> SavedTensorTracker:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


# ---- optimizer with fp32 master weights (mixed precision) ---------------------------------------
class MasterAdamW:
    """AdamW on fp32 master copies of low-precision weights (ZeRO Sec. 3.1: 2 + 2 + 12 bytes).

    For fp32 models it is plain `torch.optim.AdamW` on the parameters themselves.
    """

    def __init__(self, params: list[torch.nn.Parameter], lr: float = 1e-4):
        self.params = params
        self.mixed = any(p.dtype != torch.float32 for p in params)
        self.masters = [p.detach().float().clone().requires_grad_(True) if self.mixed else p
                        for p in params]
        self.inner = torch.optim.AdamW(self.masters, lr=lr, foreach=False)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        if self.mixed:
            for p, m in zip(self.params, self.masters, strict=True):
                m.grad = None if p.grad is None else p.grad.float()
        self.inner.step()
        if self.mixed:
            for p, m in zip(self.params, self.masters, strict=True):
                p.copy_(m)
                m.grad = None  # NB: the fp32 gradient copy is transient, as in Megatron

    def state_bytes(self, i: int) -> tuple[float, float]:
        """(per-element state incl. the master copy, scalar state such as `step`), bytes."""
        p, m = self.params[i], self.masters[i]
        per_elem = float(m.untyped_storage().nbytes()) if self.mixed else 0.0
        scalar = 0.0
        for t in self.inner.state.get(m, {}).values():
            if torch.is_tensor(t) and t.numel() == p.numel():
                per_elem += t.untyped_storage().nbytes()
            elif torch.is_tensor(t):
                scalar += t.untyped_storage().nbytes()
        return per_elem, scalar


# ---- results ------------------------------------------------------------------------------------
@dataclass
class Measurement:
    """Measured numbers per analytic row (`table`, index `layer`) and for the whole run."""

    table: pd.DataFrame
    times_s: dict[str, float] = field(default_factory=dict)
    peak_bytes: dict[str, float] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    device_name: str = ""
    dtype: str = "fp32"


def row_names(spec: ModelSpec) -> list[str]:
    """The analytic row names of `spec`, in table order (blocks expanded, each block with the
    rows of its kind)."""
    before, after = outer_structure(spec)
    blocks = [[r.name for r in block_structure(spec, kind)]
              for kind, _, _ in block_kind_counts(spec)]
    kind_of = block_kind_index(spec)
    return ([r.name for r in before]
            + [f"blocks.{i}.{n}" for i in range(spec.n_layers) for n in blocks[kind_of[i]]]
            + [r.full_name for r in after])


def block_of(name: str) -> int:
    """Block index of a row name (`blocks.3.attn.q` -> 3); -1 outside blocks."""
    parts = name.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[0] == "blocks" else -1


def to_rows(by_module: dict[str, float], rows: set[str]) -> dict[str, float]:
    """Per-module values summed per row; a module under no row goes to 'blocks.i.other' or
    'other', so the totals are kept and nothing is silently dropped."""
    out: dict[str, float] = defaultdict(float)
    for name, v in by_module.items():
        row = row_of(name, rows)
        if row is None:
            b = block_of(name)
            row = f"blocks.{b}.other" if b >= 0 else "other"
        out[row] += v
    return out


def _frame(columns: dict[str, dict[str, float]], order: list[str]) -> pd.DataFrame:
    extra = sorted({k for col in columns.values() for k, v in col.items() if k not in order and v},
                   key=lambda n: (block_of(n) < 0, block_of(n), n))
    names = order + extra
    df = pd.DataFrame({c: [float(col.get(n, 0.0)) for n in names] for c, col in columns.items()},
                      index=pd.Index(names, name="layer"))
    df.insert(0, "block", [block_of(n) for n in names])
    return df


def device_name(device: str | torch.device) -> str:
    """Marketing name of the device: the GPU's name, or the CPU's model name."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "meta":
        return "meta"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "cpu"  # pragma: no cover


class _Timer:
    """Per-phase wall time: CUDA events on CUDA, perf_counter elsewhere."""

    def __init__(self, device: torch.device):
        self.device = device
        self.samples: dict[str, list[float]] = defaultdict(list)

    def run(self, phase: str, fn: Callable[[], object]) -> object:
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            torch.cuda.synchronize(self.device)
            self.samples[phase].append(start.elapsed_time(end) / 1e3)  # ms -> s
            return out
        t0 = time.perf_counter()
        out = fn()
        self.samples[phase].append(time.perf_counter() - t0)
        return out

    def medians(self) -> dict[str, float]:
        """Median per phase, and the fastest repeat as `{phase}_min` (less noisy on a
        shared machine)."""
        out = {k: float(np.median(v)) for k, v in self.samples.items()}
        out |= {f"{k}_min": float(np.min(v)) for k, v in self.samples.items()}
        return out


def _peak(device: torch.device, fn: Callable[[], object]) -> tuple[object, float]:
    """Run fn; on CUDA also the peak allocated bytes while it ran (NaN elsewhere)."""
    if device.type != "cuda":
        return fn(), float("nan")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = fn()
    torch.cuda.synchronize(device)
    return out, float(torch.cuda.max_memory_allocated(device))


def _inputs(spec: ModelSpec, batch: int, seq: int, device: torch.device, seed: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, spec.vocab_size, (batch, seq), generator=g)
    labels = torch.randint(0, spec.vocab_size, (batch, seq), generator=g)
    return ids.to(device), labels.to(device)


# ---- training step -------------------------------------------------------------------------------
def measure_train(spec: ModelSpec, *, seq_len: int, batch_size: int, device: str = "cpu",
                  dtype: str = "fp32", repeats: int = 3, warmup: int = 1, seed: int = 0,
                  time_it: bool = True, progress: Progress | None = None) -> Measurement:
    """One instrumented training step (forward, backward, AdamW step), then timed repeats.

    On the meta device only FLOPs and parameter bytes are measured (no data, no optimizer).
    InputError for a model the reference does not build (torch_models.check_reference).
    """
    check_reference(spec, seq_len)
    say = progress or (lambda _msg: None)
    dev = torch.device(device)
    meta = dev.type == "meta"
    names = row_names(spec)
    rows = set(names)
    net = build_reference(spec, device=dev, dtype=TORCH_DTYPES[dtype], seed=seed).train()
    ids, labels = _inputs(spec, batch_size, seq_len, dev, seed)
    params = list(net.parameters())
    opt = None if meta else MasterAdamW(params)
    peaks: dict[str, float] = {}

    say("forward and backward with FLOP counter and saved-tensor hooks")
    total, scope = flop_counter(), ModuleScope(net)
    rowc, saved = RowFlopCounter(scope), SavedTensorTracker(net, scope)
    with total, rowc:
        with scope:
            if meta:
                loss = net(ids, labels)
            else:
                with saved:
                    loss, peaks["forward"] = _peak(dev, lambda: net(ids, labels))
        fwd, fwd_total = dict(rowc.flops), float(total.get_total_flops())
        scope.own_backward(loss)
        _, peaks["backward"] = _peak(dev, loss.backward)
    bwd = {k: rowc.flops[k] - fwd.get(k, 0.0) for k in rowc.flops}
    if opt is not None:
        say("optimizer step")
        _, peaks["optimizer"] = _peak(dev, opt.step)

    columns = {"fwd_flops": to_rows(fwd, rows), "bwd_flops": to_rows(bwd, rows),
               "param_bytes": _param_bytes(net, rows)}
    scalar_opt = 0.0
    if opt is not None:
        grad_b: dict[str, float] = defaultdict(float)
        opt_b: dict[str, float] = defaultdict(float)
        for i, (name, p) in enumerate(net.named_parameters()):
            row = row_of(name, rows) or "other"
            grad_b[row] += 0.0 if p.grad is None else p.grad.untyped_storage().nbytes()
            per_elem, scalar = opt.state_bytes(i)
            opt_b[row] += per_elem
            scalar_opt += scalar
        columns |= {"grad_bytes": grad_b, "optimizer_bytes": opt_b,
                    "activation_bytes": to_rows(saved.bytes_by_module, rows)}
    m = Measurement(
        table=_frame(columns, names), device=dev.type, device_name=device_name(dev),
        dtype=dtype, peak_bytes=peaks,
        extras={"fwd_flops_flopcountermode": fwd_total,
                "bwd_flops_flopcountermode": float(total.get_total_flops()) - fwd_total,
                "optimizer_scalar_bytes": scalar_opt,
                "loss": float("nan") if meta else float(loss.detach())})
    if time_it and not meta:
        say(f"timing: {warmup} warm-up and {repeats} measured steps")
        m.times_s = _time_train(net, opt, ids, labels, dev, repeats=repeats, warmup=warmup)
    return m


def _time_train(net, opt, ids, labels, dev, *, repeats: int, warmup: int) -> dict[str, float]:
    timer = _Timer(dev)
    for i in range(warmup + repeats):
        t = timer if i >= warmup else _Timer(dev)
        opt.zero_grad()
        loss: torch.Tensor = t.run("forward", lambda: net(ids, labels))  # type: ignore[assignment]
        t.run("backward", loss.backward)
        t.run("optimizer", opt.step)
    med = timer.medians()
    steps = [sum(v) for v in zip(*timer.samples.values(), strict=True)]
    med["step"], med["step_min"] = float(np.median(steps)), float(np.min(steps))
    return med


# ---- inference: prefill and one decode step ------------------------------------------------------
@torch.no_grad()
def measure_inference(spec: ModelSpec, *, seq_len: int, batch_size: int, device: str = "cpu",
                      dtype: str = "fp32", repeats: int = 3, warmup: int = 1, seed: int = 0,
                      time_it: bool = True, progress: Progress | None = None) -> Measurement:
    """Prefill of `seq_len` tokens; then one decode step whose KV cache ends at `seq_len`.

    The decode step runs after a prefill of seq_len − 1 tokens, so its new token attends to
    seq_len keys, the analytic convention (kv_len = seq_len). Encoders have no decode step.
    InputError for a model the reference does not build (torch_models.check_reference).
    """
    check_reference(spec, seq_len)
    say = progress or (lambda _msg: None)
    dev = torch.device(device)
    names = [n for n in row_names(spec) if n != "loss"]  # no loss in inference
    rows = set(names)
    net = build_reference(spec, device=dev, dtype=TORCH_DTYPES[dtype], seed=seed).eval()
    ids, _ = _inputs(spec, batch_size, seq_len, dev, seed)
    peaks: dict[str, float] = {}

    say("prefill with FLOP counter")
    columns: dict[str, dict[str, float]] = {}
    columns["fwd_flops"], peaks["prefill"] = _count_forward(net, rows, dev, lambda: net(ids))
    prefix: list[dict[str, torch.Tensor]] | None = None
    if spec.causal and spec.lm_head and seq_len >= 2:
        say("decode step with FLOP counter")
        prefix = [{} for _ in range(spec.n_layers)]
        net(ids[:, :-1], caches=prefix)
        caches = [dict(c) for c in prefix]
        columns["decode_flops"], peaks["decode"] = _count_forward(
            net, rows, dev, lambda: net(ids[:, -1:], caches=caches, start=seq_len - 1))
        if dev.type != "meta":
            columns["kv_cache_bytes"] = {
                f"blocks.{i}.attn.{kv}": float(c[kv].untyped_storage().nbytes())
                for i, c in enumerate(caches) for kv in ("k", "v")}
    columns["param_bytes"] = _param_bytes(net, rows)
    m = Measurement(table=_frame(columns, names), device=dev.type, device_name=device_name(dev),
                    dtype=dtype, peak_bytes=peaks)
    if time_it and dev.type != "meta":
        say(f"timing: {warmup} warm-up and {repeats} measured prefill and decode steps")
        timer = _Timer(dev)
        for i in range(warmup + repeats):
            t = timer if i >= warmup else _Timer(dev)
            t.run("prefill", lambda: net(ids))
            if prefix is not None:
                fresh = [dict(p) for p in prefix]  # the prefill's cache, not the last step's
                t.run("decode", partial(net, ids[:, -1:], caches=fresh, start=seq_len - 1))
        m.times_s = timer.medians()
    return m


def _count_forward(net, rows, dev, fn) -> tuple[dict[str, float], float]:
    scope = ModuleScope(net)
    counter = RowFlopCounter(scope)
    with counter, scope:
        _, peak = _peak(dev, fn)
    return to_rows(counter.flops, rows), peak


def _param_bytes(net: torch.nn.Module, rows: set[str]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for name, p in net.named_parameters():
        out[row_of(name, rows) or "other"] += p.numel() * p.element_size()
    return out


def count_parameters(spec: ModelSpec) -> int:
    """Parameters of the reference model for `spec`, built on the meta device (no memory)."""
    net = build_reference(spec, device="meta")
    return sum(p.numel() for p in net.parameters())
