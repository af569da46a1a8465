"""Workloads: what to plan for. A training job (tokens, sequence length, global batch) or an
inference job (prompt and output lengths, a load, latency targets), validated at the boundary.

Every layout field of a job is either pinned (a value) or left to the search (None). Invalid
jobs raise a pydantic ValidationError (a ValueError) whose message names the field and what is
allowed; feasibility problems (does not fit, deadline missed) are not errors but rows with
`feasible=False` and a reason (planner.plan.search).

Types are strict (planner.errors.check_*): a count refuses a bool or a float with a fraction, a
flag refuses anything but true/false, a number refuses NaN and infinity. Bounds that are sanity
limits far beyond any real run, so that every product stays finite and every count fits an
int64 (e.g. global_batch_size=2**64 used to print negative device counts):
- devices (max_devices, n_devices, tp, pp) <= MAX_DEVICES_LIMIT = 10^7 (610x the 16,384 GPUs of
  Llama 3 405B); a pinned n_devices may not exceed a max_devices you set;
- sequences (global_batch_size, micro_batch_size, batch_size, max_batch_size,
  concurrent_requests) <= MAX_SEQUENCES = 10^9; lengths (seq_len, prompt_len, output_len,
  and prompt_len + output_len) <= MAX_SEQ_LEN = 10^8 tokens; n_tokens <= MAX_N_TOKENS = 10^18
  (64,000x Llama 3's 15.6T);
- n_tokens >= one optimizer step (global_batch_size x seq_len tokens): the planner counts whole
  steps, and a run shorter than one step is not a training run;
- fractions (compute_frac, goodput_frac, usable_memory_frac, the *_frac overrides) in
  [MIN_FRAC, 1] with MIN_FRAC = 10^-6, scales (*_scale) in [10^-6, 10^6], fixed costs
  (op_overhead_s, collective_latency_s) in [0, 1] s (the built-in launch floor is microseconds).

Defaults that are assumptions, each documented in docs/planning.md ("Assumptions"):
- goodput_frac = None (A1, A19-A21): the goodput follows from the device count through
  planner.plan.goodput (interruptions at Llama 3's rate, 419 in 54 days on 16,384 H100s,
  Young/Daly checkpointing, a 10-minute restart): 0.999 on 8 devices, 0.916 on 16,384 (Meta
  reports "higher than 90% effective training time"). A number pins it (1.0 for steady-state
  throughput).
- usable_memory_frac = 0.9 (A2): the runtime, allocator fragmentation and workspaces take a
  share of device memory; e.g. B200 has 192 GB physical and reports ~179-180 GB usable (93%,
  shared/reference/README.md §4).
- flash_attention = True: fused attention (FlashAttention, Dao et al. 2022) is the default in
  every current training and serving stack; it removes the s² activation term.
- adapter = "none" (every weight trains); with "lora"/"qlora", lora_rank = 16 and
  lora_targets = ("all-linear",), PEFT's shortcut and QLoRA's recommendation (A24, P30-P31);
  optimizer_offload = False (P32).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from planner.errors import (
    InputError,
    check_bool,
    check_int,
    check_number,
    clip,
    int_rule,
    number_rule,
)
from planner.model.layers import (
    DEFAULT_FLASH_ATTENTION,
    DEFAULT_LORA_RANK,
    DEFAULT_LORA_TARGETS,
    MAX_BATCH_SIZE,
    MAX_LORA_RANK,
    Recompute,
    lora_target_names,
)
from planner.model.precision import (
    ADAPTERS,
    FP8_KV_POLICIES,
    Adapter,
    dtype_bytes,
    optimizer_state_bytes,
    precision_policy,
)
from planner.model.spec import MAX_SEQ_LEN, ModelSpec, model
from planner.plan.goodput import (
    DEFAULT_CHECKPOINT_WRITE_S,
    DEFAULT_INTERRUPTIONS_PER_DEVICE_HOUR,
    DEFAULT_RESTART_S,
    MAX_CHECKPOINT_WRITE_S,
    MAX_INTERRUPTIONS_PER_DEVICE_HOUR,
    MAX_OTHER_OVERHEAD_FRAC,
    MAX_RESTART_S,
    GoodputModel,
    goodput_frac,
)

DEFAULT_USABLE_MEMORY_FRAC = 0.9
DEFAULT_MAX_DEVICES = 16384  # Llama 3 405B trained on 16,384 H100s (Llama 3 paper, Sec. 3.3)
DEFAULT_MAX_BATCH_SIZE = 512  # serving: concurrent sequences per replica searched up to this
FEW_STEPS = 10  # a training run shorter than this many optimizer steps gets a warning
# Serving defaults (docs/planning.md P19-P19k).
# Step token budget with chunked prefill: vLLM's max_num_batched_tokens for its OpenAI server on
# large-memory GPUs (vllm/engine/arg_utils.py, V1 defaults) and TensorRT-LLM's max_num_tokens
# default, both 8192; Sarathi-Serve (Agrawal et al. 2024) used 512-2048 for tight TPOT targets.
DEFAULT_PREFILL_CHUNK_TOKENS = 8192
DEFAULT_KV_BLOCK_TOKENS = 16  # vLLM's default block size (Kwon et al. 2023, Sec. 4.1)
# Replicas are sized to run at most this share of their capacity: queueing delay grows as
# 1/(1 - utilization), and capacity planners keep ~20 % headroom.
DEFAULT_TARGET_UTILIZATION = 0.8
DEFAULT_LATENCY_PERCENTILE = 99.0  # targets on p99, as MLPerf Inference's Server scenario
MAX_LATENCY_PERCENTILE = 99.99
MAX_SPECULATIVE_TOKENS = 16

# efficiency_overrides (planner.hardware.kernels.kernel_rates): flat fractions that replace a
# kernel table for every device, multipliers of the tables' rates, and the fixed costs.
EFFICIENCY_KEYS = ("compute_frac", "memory_bw_frac", "network_frac", "gemm_scale",
                   "attention_scale", "memory_scale", "network_scale", "op_overhead_s",
                   "collective_latency_s")
GRAD_REDUCE_DTYPES = ("fp32", "bf16", "fp16")

# Input bounds: sanity limits far beyond any real run (the module docstring says why each).
MAX_DEVICES_LIMIT = 10**7
MAX_SEQUENCES = MAX_BATCH_SIZE  # 10^9, the bound layer_table has too
MAX_N_TOKENS = 1e18
MIN_FRAC = 1e-6
MAX_SCALE = 1e6
MAX_FIXED_COST_S = 1.0
MAX_SAMPLES = 10**12  # from_epochs
MAX_EPOCHS = 10**6


_FRACTION = number_rule(minimum=MIN_FRAC, maximum=1.0)
_DEVICES = int_rule(1, MAX_DEVICES_LIMIT)
_SEQUENCES = int_rule(1, MAX_SEQUENCES)
_LENGTH = int_rule(1, MAX_SEQ_LEN)
_SECONDS = number_rule(positive=True)


def _below_one(minimum: float) -> Callable[[Any, str], float]:
    """A fraction in [minimum, 1): 1 itself is refused (an acceptance rate of 1 makes the
    expected tokens per step infinite; a prefix hit of 1 leaves nothing to prefill)."""
    def rule(value: Any, field: str) -> float:
        number = check_number(value, field, minimum=minimum)
        if number >= 1.0:
            raise InputError(field, f"must be below 1, got {clip(value)}")
        return number
    return rule


def _adapter_rule(value: Any, field: str) -> str:
    """adapter: one of ADAPTERS, any case."""
    key = str(value).strip().lower() if isinstance(value, str) else None
    if key not in ADAPTERS:
        raise InputError(field, f"{clip(value)}; allowed: {', '.join(ADAPTERS)}")
    return key


def _targets_rule(value: Any, field: str) -> tuple[str, ...]:
    """lora_targets: a name or a non-empty sequence of names (checked against the model in
    TrainingJob, planner.model.layers.lora_target_names)."""
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, (tuple, list)) or not items or not all(
            isinstance(v, str) and v.strip() for v in items):
        raise InputError(field, f"{clip(value)}; allowed: a non-empty list of all-linear, "
                         "attention, mlp or linear row names (attn.q, mlp.down, ...)")
    return tuple(v.strip().lower() for v in items)


# field -> its type-and-range rule (planner.errors), applied before pydantic's own checks
FIELD_RULES: dict[str, Callable[[Any, str], Any]] = {
    "compute_frac": _FRACTION, "usable_memory_frac": _FRACTION, "goodput_frac": _FRACTION,
    "interruptions_per_device_hour": number_rule(minimum=0.0,
                                                 maximum=MAX_INTERRUPTIONS_PER_DEVICE_HOUR),
    "checkpoint_write_s": number_rule(positive=True, maximum=MAX_CHECKPOINT_WRITE_S),
    "restart_s": number_rule(minimum=0.0, maximum=MAX_RESTART_S),
    "other_overhead_frac": number_rule(minimum=0.0, maximum=MAX_OTHER_OVERHEAD_FRAC),
    "max_devices": _DEVICES, "n_devices": _DEVICES, "tp": _DEVICES, "pp": _DEVICES,
    "cp": _DEVICES, "virtual_stages": _DEVICES, "ep": _DEVICES,
    "moe_capacity_factor": number_rule(minimum=1.0, maximum=8.0),
    "global_batch_size": _SEQUENCES, "micro_batch_size": _SEQUENCES, "batch_size": _SEQUENCES,
    "max_batch_size": _SEQUENCES, "concurrent_requests": _SEQUENCES,
    "seq_len": _LENGTH, "prompt_len": _LENGTH, "output_len": int_rule(0, MAX_SEQ_LEN),
    "prefill_chunk_tokens": int_rule(0, MAX_SEQ_LEN), "kv_block_tokens": int_rule(1, 4096),
    "speculative_tokens": int_rule(0, MAX_SPECULATIVE_TOKENS),
    "acceptance_rate": _below_one(MIN_FRAC),
    "prefix_cache_hit_frac": _below_one(0.0),
    "target_utilization": _FRACTION,
    "latency_percentile": number_rule(minimum=50.0, maximum=MAX_LATENCY_PERCENTILE),
    "disaggregated": check_bool,
    "n_tokens": number_rule(positive=True, maximum=MAX_N_TOKENS), "zero_stage": int_rule(0, 3),
    "deadline_s": _SECONDS, "ttft_s": _SECONDS, "tpot_s": _SECONDS,
    "requests_per_s": number_rule(positive=True),
    "flash_attention": check_bool, "fused_swiglu": check_bool,
    "overlap_expert_comm": check_bool, "sequence_parallel": check_bool,
    "adapter": _adapter_rule, "lora_rank": int_rule(1, MAX_LORA_RANK),
    "lora_targets": _targets_rule, "optimizer_offload": check_bool,
}


def _override_bounds(key: str) -> tuple[float, float]:
    """efficiency_overrides[key]'s range: fractions, multipliers or fixed seconds."""
    if key.endswith("_frac"):
        return MIN_FRAC, 1.0
    if key.endswith("_scale"):
        return MIN_FRAC, MAX_SCALE
    return 0.0, MAX_FIXED_COST_S


def _as_model(value: Any) -> Any:
    if isinstance(value, str):
        return model(value)
    return value


def _context_warnings(spec: ModelSpec, length: int, field: str) -> list[str]:
    """A length beyond a rotary/ALiBi model's trained context runs (the formulas hold) but
    the model was not trained for it (learned positions refuse it in _check_length)."""
    if length > spec.max_seq_len:
        return [f"{field}: {length:,} tokens is beyond {spec.name}'s trained context of "
                f"{spec.max_seq_len:,}; the numbers hold, the model's quality there is "
                "unknown"]
    return []


def _check_length(spec: ModelSpec, length: int, *, field: str, what: str = "") -> None:
    """Learned position embeddings have max_seq_len rows and cannot go further (as
    planner.model.layers); rotary, ALiBi and no-position models can, so their max_seq_len (the
    trained context) is not a limit here."""
    if spec.position == "learned" and length > spec.max_seq_len:
        raise ValueError(f"{field}: {what or length} exceeds {spec.name}'s max_seq_len="
                         f"{spec.max_seq_len} (learned position embeddings)")


class _Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelSpec = Field(description="A ModelSpec or a preset name (planner.list_models()).")
    precision: str = Field(default="bf16",
                           description="Precision policy (planner.model.precision).")
    compute_frac: float | None = Field(
        default=None, gt=0, le=1,
        description="A flat fraction of the dense peak for every GEMM and attention kernel on "
        "every device, replacing the measured kernel tables (the same as "
        "efficiency_overrides['compute_frac']). None = the kernel tables "
        "(planner.hardware.kernels); the tile padding of GEMMs under 128 rows still applies. "
        "Not an MFU: MFU is an output, lower once communication, the pipeline bubble and "
        "memory-bound ops are added.")
    efficiency_overrides: dict[str, float] = Field(
        default_factory=dict,
        description="Change the kernel rates: flat fractions compute_frac, memory_bw_frac, "
        "network_frac replace a table; gemm_scale, attention_scale, memory_scale, network_scale "
        "multiply it (capped at the peak); op_overhead_s and collective_latency_s replace the "
        f"fixed costs. Keys: {', '.join(EFFICIENCY_KEYS)}.")
    usable_memory_frac: float = Field(
        default=DEFAULT_USABLE_MEMORY_FRAC, gt=0, le=1,
        description="Share of device memory the model may use (A2).")
    max_devices: int = Field(default=DEFAULT_MAX_DEVICES, ge=1,
                             description="Largest device count the search considers "
                             f"(at most {MAX_DEVICES_LIMIT:,}).")
    name: str = Field(default="", description="Label shown in reports.")

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        return _as_model(value)

    @field_validator("*", mode="before")
    @classmethod
    def _strict(cls, value: Any, info: ValidationInfo) -> Any:
        """Every count, flag and number through its rule (FIELD_RULES); None stays None where
        the field's default is None (left to the search, or no target)."""
        name = info.field_name or ""
        rule = FIELD_RULES.get(name)
        if rule is None or (value is None and cls.model_fields[name].default is None
                            and not cls.model_fields[name].is_required()):
            return value
        return rule(value, name)

    @field_validator("efficiency_overrides", mode="before")
    @classmethod
    def _overrides(cls, value: Any) -> dict[str, float]:
        field = "efficiency_overrides"
        if not isinstance(value, Mapping):
            raise InputError(field, f"must be a mapping of key to number, got {clip(value)}; "
                             f"keys: {', '.join(EFFICIENCY_KEYS)}")
        out = {}
        for key, v in value.items():
            if key not in EFFICIENCY_KEYS:
                raise InputError(field, f"unknown key {clip(key)}; allowed: "
                                 f"{', '.join(EFFICIENCY_KEYS)}")
            lo, hi = _override_bounds(key)
            try:
                out[key] = check_number(v, key, minimum=lo, maximum=hi)
            except InputError as err:
                raise InputError(field, str(err)) from None
        return out

    def kernel_overrides(self) -> dict[str, float]:
        """efficiency_overrides with `compute_frac` folded in (planner.hardware.kernels)."""
        out = dict(self.efficiency_overrides)
        if self.compute_frac is not None:
            out["compute_frac"] = self.compute_frac
        return out


class TrainingJob(_Job):
    """Train (or fine-tune) `model` on `n_tokens` tokens in steps of `global_batch_size`
    sequences of `seq_len` tokens. Layout fields left None are searched by planner.search."""

    n_tokens: float = Field(
        gt=0, allow_inf_nan=False,
        description="Training tokens in total: at least one optimizer step "
        f"(global_batch_size × seq_len), at most {MAX_N_TOKENS:.0e}.")
    seq_len: int = Field(gt=0, description="Tokens per sequence.")
    global_batch_size: int = Field(gt=0, description="Sequences per optimizer step.")
    optimizer: str = Field(
        default="adamw", description="adamw, adam, sgd, or adamw8bit (bitsandbytes' 8-bit "
        "AdamW: 2 bytes of moments per parameter instead of 8; Dettmers et al. 2022).")
    adapter: Adapter = Field(
        default="none",
        description="Fine-tune with a frozen base (P30-P31): 'lora' trains low-rank adapters "
        "(Hu et al. 2021) on lora_targets, the base keeps its weights only (no gradients, no "
        "optimizer state); 'qlora' also stores the base's linears in 4-bit NF4 (Dettmers et "
        "al. 2023) and computes in bf16; 'none' trains every weight.")
    lora_rank: int = Field(
        default=DEFAULT_LORA_RANK, ge=1, le=MAX_LORA_RANK,
        description="LoRA rank r: an adapter on a k → n linear has r·(k + n) parameters "
        "(P30); needs adapter 'lora' or 'qlora'.")
    lora_targets: tuple[str, ...] = Field(
        default=DEFAULT_LORA_TARGETS,
        description="Linear layers that get an adapter: 'all-linear' (default, PEFT's: every "
        "block linear, attention and MLP), 'attention', 'mlp', or row names such as attn.q, "
        "attn.v, mlp.down; needs adapter 'lora' or 'qlora'.")
    optimizer_offload: bool = Field(
        default=False,
        description="ZeRO-Offload (Ren et al. 2021): gradients and optimizer state in host "
        "memory and the update on the host CPU; device memory drops, each step moves the "
        "gradients out and the weights back over PCIe (P32).")
    fused_swiglu: bool = Field(
        default=True,
        description="A fused SwiGLU kernel saves only its input for backward (Megatron-LM, "
        "Transformer Engine, torch.compile); False counts eager PyTorch's three tensors.")
    grad_reduce_dtype: str = Field(
        default="fp32",
        description="dtype gradients are reduced in across data-parallel ranks: fp32 as "
        "Megatron-LM (main_grad), PyTorch FSDP2 (reduce_dtype) and Llama 3 (Dubey et al. 2024, "
        "Sec. 3.3.2) do; bf16 halves the traffic.")
    n_devices: int | None = Field(
        default=None, ge=1, description="Fixed device count; not above a max_devices you set "
        "(the default max_devices does not limit it).")
    deadline_s: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="Finish within this wall-clock time (goodput included); the search picks "
        "the cheapest layout per device that meets it.")
    tp: int | None = Field(default=None, ge=1, description="Tensor-parallel degree (pinned).")
    pp: int | None = Field(default=None, ge=1, description="Pipeline-parallel stages (pinned).")
    cp: int | None = Field(
        default=None, ge=1,
        description="Context-parallel degree (pinned): each sequence split over cp devices, "
        "K/V all-gathered per layer (Llama 3); searched for sequences of 8k tokens and more.")
    ep: int | None = Field(
        default=None, ge=1,
        description="Expert-parallel degree of a MoE model (pinned): its routed experts split "
        "over ep of the data-parallel ranks, tokens exchanged by all-to-all (P29).")
    moe_capacity_factor: float = Field(
        default=1.0, ge=1.0, le=8.0,
        description="Routed tokens per expert over the balanced share on the busiest rank "
        "(1 = dropless and balanced); scales the all-to-all bytes (P29; the busiest rank's "
        "extra expert work is not modelled, A23).")
    sequence_parallel: bool = Field(
        default=True,
        description="Megatron sequence parallelism with tensor parallelism (Korthikanti et al. "
        "2022): norms and dropouts split over tp; False keeps their activations whole on each "
        "tp rank (P3b).")
    overlap_expert_comm: bool = Field(
        default=False,
        description="Hide the expert all-to-alls behind the micro-batch's computation "
        "(DeepSeek-V3's DualPipe overlaps a forward and a backward chunk, Sec. 3.2.1); "
        "False counts them exposed (A23).")
    virtual_stages: int | None = Field(
        default=None, ge=1,
        description="Interleaved 1F1B: model chunks per pipeline stage (pinned); the bubble "
        "shrinks by this factor, pipeline sends grow by it (P10, P11).")
    micro_batch_size: int | None = Field(default=None, ge=1,
                                         description="Sequences per micro-batch (pinned).")
    zero_stage: int | None = Field(default=None, ge=0, le=3,
                                   description="ZeRO/FSDP stage 0-3 (pinned).")
    recompute: Recompute | None = Field(default=None,
                                        description="Activation recomputation (pinned).")
    flash_attention: bool = Field(default=DEFAULT_FLASH_ATTENTION,
                                  description="Fused attention kernel.")
    causal_attention: Literal["full", "half"] = Field(
        default="full", description="Count causal attention in full (PaLM MFU) or halved.")
    goodput_frac: float | None = Field(
        default=None, gt=0, le=1,
        description="Share of wall-clock time spent on productive steps; None = from the "
        "device count (P24-P28: interruptions, checkpoints, restarts); time_s = steps × "
        "step_time_s / goodput.")
    interruptions_per_device_hour: float = Field(
        default=DEFAULT_INTERRUPTIONS_PER_DEVICE_HOUR, ge=0,
        description="Job-stopping interruptions per device-hour (A19: Llama 3's 419 in 54 "
        "days on 16,384 GPUs).")
    checkpoint_write_s: float = Field(
        default=DEFAULT_CHECKPOINT_WRITE_S, gt=0,
        description="Training stalled per checkpoint, s (A20: async checkpoint, 6.3 s).")
    restart_s: float = Field(
        default=DEFAULT_RESTART_S, ge=0,
        description="From an interruption to training again, s (A20: 10 min).")
    other_overhead_frac: float = Field(
        default=0.0, ge=0, lt=1,
        description="Wall time lost to everything else at any scale (evaluations, stalls).")

    def goodput_model(self) -> GoodputModel:
        """The job's interruption and checkpoint inputs (planner.plan.goodput)."""
        return GoodputModel(interruptions_per_device_hour=self.interruptions_per_device_hour,
                            checkpoint_write_s=self.checkpoint_write_s,
                            restart_s=self.restart_s,
                            other_overhead_frac=self.other_overhead_frac)

    def goodput(self, n_devices: Any) -> Any:
        """The productive share of wall time on `n_devices` (an array broadcasts): the
        pinned goodput_frac, else P24-P28."""
        if self.goodput_frac is not None:
            return np.full(np.shape(n_devices), float(self.goodput_frac))
        return goodput_frac(n_devices, self.goodput_model())

    @field_validator("precision")
    @classmethod
    def _precision(cls, value: str) -> str:
        return precision_policy(value, mode="train").name

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, value: str) -> str:
        optimizer_state_bytes(value)
        return value.lower()

    @field_validator("grad_reduce_dtype")
    @classmethod
    def _grad_reduce(cls, value: str) -> str:
        if str(value).lower() not in GRAD_REDUCE_DTYPES:
            raise ValueError(f"grad_reduce_dtype: {value!r}; allowed: "
                             f"{', '.join(GRAD_REDUCE_DTYPES)}")
        return str(value).lower()

    @model_validator(mode="after")
    def _consistent(self) -> TrainingJob:
        spec = self.model
        _check_length(spec, self.seq_len, field="seq_len")
        if self.n_tokens < self.tokens_per_step:
            raise InputError("n_tokens", f"{self.n_tokens:g} is less than one optimizer step; "
                             f"allowed: ≥ global_batch_size × seq_len = "
                             f"{self.tokens_per_step:,} tokens")
        if (self.n_devices is not None and "max_devices" in self.model_fields_set
                and self.n_devices > self.max_devices):
            raise InputError("n_devices", f"{self.n_devices:,} exceeds max_devices="
                             f"{self.max_devices:,}; allowed: n_devices ≤ max_devices")
        if self.micro_batch_size is not None and self.micro_batch_size > self.global_batch_size:
            raise ValueError(f"micro_batch_size: {self.micro_batch_size} exceeds "
                             f"global_batch_size={self.global_batch_size}")
        if self.pp is not None and self.pp > spec.n_layers:
            raise ValueError(f"pp: {self.pp} stages exceed the model's {spec.n_layers} layers")
        if self.cp is not None and self.seq_len % (2 * self.cp) and self.cp > 1:
            raise InputError("cp", f"{self.cp} does not split seq_len={self.seq_len} into 2·cp "
                             "equal chunks (load-balanced causal context parallelism); allowed: "
                             "cp with seq_len divisible by 2·cp")
        if self.ep is not None and self.ep > 1:
            if not spec.is_moe:
                raise InputError("ep", f"{spec.name} has no experts; allowed: ep = 1 for a "
                                 "dense model")
            if spec.n_experts % self.ep:
                raise InputError("ep", f"{self.ep} does not divide the {spec.n_experts} "
                                 "experts; allowed: a divisor of n_experts")
        self._check_fine_tuning()
        if self.virtual_stages is not None and self.virtual_stages > 1:
            stages = self.pp or 1
            if stages == 1 and self.pp is not None:
                raise InputError("virtual_stages", "interleaving needs pp > 1")
            if self.pp is not None and self.pp * self.virtual_stages > spec.n_layers:
                raise InputError("virtual_stages", f"{self.pp} stages × {self.virtual_stages} "
                                 f"chunks exceed the {spec.n_layers} layers; allowed: "
                                 "pp × virtual_stages ≤ n_layers (at least one layer a chunk)")
        if self.n_devices is not None:
            layout = (self.tp or 1) * (self.pp or 1) * (self.cp or 1)
            if self.n_devices % layout:
                raise ValueError(f"n_devices: {self.n_devices} is not divisible by tp×pp×cp="
                                 f"{layout}")
        return self

    def _check_fine_tuning(self) -> None:
        """The adapter fields: LoRA settings only with an adapter, targets the model has, a
        rank that stays low (≤ d_model), QLoRA in a 16/32-bit compute policy."""
        if self.adapter == "none":  # a non-default LoRA setting would be ignored: refuse it
            for field, default in (("lora_rank", DEFAULT_LORA_RANK),
                                   ("lora_targets", DEFAULT_LORA_TARGETS)):
                if getattr(self, field) != default:
                    raise InputError(field, "needs adapter='lora' or 'qlora'; allowed: leave "
                                     "it unset for full training")
            return
        lora_target_names(self.model, self.lora_targets)
        if self.lora_rank > self.model.d_model:
            raise InputError("lora_rank", f"{self.lora_rank} exceeds d_model="
                             f"{self.model.d_model}: not a low-rank adapter; allowed: 1 to "
                             f"{self.model.d_model}")
        if self.adapter == "qlora" and precision_policy(self.precision).compute_dtype not in (
                "bf16", "fp16", "fp32"):
            raise InputError("adapter", f"'qlora' dequantizes its NF4 weights to bf16 for "
                             f"compute; precision {self.precision!r} is not allowed with it; "
                             "allowed: bf16, fp16, fp32")

    @property
    def warnings(self) -> tuple[str, ...]:
        """Valid but unusual inputs worth a second look, one line each (shown beside a
        result): a sequence beyond the model's trained context, a run of only a few optimizer
        steps (fewer than one step is refused)."""
        out = list(_context_warnings(self.model, self.seq_len, "seq_len"))
        if self.n_steps < FEW_STEPS:
            steps = "1 optimizer step" if self.n_steps == 1 else f"{self.n_steps} optimizer steps"
            out.append(f"n_tokens: the run is only {steps} of {self.global_batch_size:,} × "
                       f"{self.seq_len:,} tokens: start-up, compilation and warm-up, which "
                       "the model leaves out, would dominate")
        return tuple(out)

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.seq_len

    @property
    def n_steps(self) -> int:
        """Optimizer steps: ceil(n_tokens / (global_batch_size · seq_len)), at least 1 (n_tokens
        is at least one step)."""
        return math.ceil(self.n_tokens / self.tokens_per_step - 1e-9)

    @classmethod
    def from_epochs(cls, model: ModelSpec | str, *, n_samples: int, epochs: int, seq_len: int,
                    global_batch_size: int, **fields: Any) -> TrainingJob:
        """A fine-tuning job given as samples × epochs: every epoch runs
        ceil(n_samples / global_batch_size) steps (the last batch padded to full size).
        Each count is a whole number ≥ 1 (n_samples ≤ 10^12, epochs ≤ 10^6); InputError
        otherwise."""
        n_samples = check_int(n_samples, "n_samples", maximum=MAX_SAMPLES)
        epochs = check_int(epochs, "epochs", maximum=MAX_EPOCHS)
        seq_len = check_int(seq_len, "seq_len", maximum=MAX_SEQ_LEN)
        global_batch_size = check_int(global_batch_size, "global_batch_size",
                                      maximum=MAX_SEQUENCES)
        steps = math.ceil(n_samples / global_batch_size) * epochs
        return cls(model=model, n_tokens=float(steps * global_batch_size * seq_len),
                   seq_len=seq_len, global_batch_size=global_batch_size, **fields)


class InferenceJob(_Job):
    """Serve `model`: requests of `prompt_len` tokens in, `output_len` tokens out, at a load of
    `requests_per_s` (or `concurrent_requests` users), optionally under latency targets on a
    percentile. The serving model (docs/planning.md P19-P19k): continuous batching with
    chunked prefill, a paged KV cache, tensor, pipeline and expert parallelism, optional
    disaggregated prefill, speculative decoding and prefix caching, and an M/M/c queue per
    replica for the waiting time. `output_len=0` serves an encoder (or scores prompts): one
    forward pass of `prompt_len` tokens per request."""

    prompt_len: int = Field(gt=0, description="Input tokens per request.")
    output_len: int = Field(ge=0, description="Generated tokens per request; 0 = an encoder "
                            "(or prompt scoring): one forward pass per request, no decode.")
    kv_cache_precision: str | None = Field(
        default=None, description="dtype of the KV cache; None = fp8 under fp8-inference and "
        "fp4-inference serving (as TensorRT-LLM and vLLM deploy them), else the activation "
        "dtype.")
    requests_per_s: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                         description="Arrival rate to serve (Poisson).")
    concurrent_requests: int | None = Field(
        default=None, ge=1, description="Users kept in flight at once (closed loop). "
        "Neither given: 1 concurrent request.")
    ttft_s: float | None = Field(default=None, gt=0, description="Time-to-first-token target "
                                 "(at latency_percentile).")
    tpot_s: float | None = Field(default=None, gt=0, description="Time-per-output-token target "
                                 "(at latency_percentile).")
    latency_percentile: float = Field(
        default=DEFAULT_LATENCY_PERCENTILE, ge=50, le=MAX_LATENCY_PERCENTILE,
        description="Percentile the ttft_s and tpot_s targets apply to (50 = the median).")
    tp: int | None = Field(default=None, ge=1, description="Tensor-parallel degree (pinned).")
    pp: int | None = Field(default=None, ge=1, description="Pipeline stages per replica "
                           "(pinned; None = searched).")
    ep: int | None = Field(default=None, ge=1, description="Expert-parallel groups per replica "
                           "(MoE: attention data-parallel over ep groups of tp devices, the "
                           "routed experts split over them; None = searched, 1 for dense).")
    batch_size: int | None = Field(default=None, ge=1, description="Sequences decoded "
                                   "together per micro-batch of a tensor-parallel group "
                                   "(pinned).")
    max_batch_size: int = Field(default=DEFAULT_MAX_BATCH_SIZE, ge=1,
                                description="Largest batch per replica the search considers.")
    prefill_chunk_tokens: int = Field(
        default=DEFAULT_PREFILL_CHUNK_TOKENS, ge=0, description="Token budget of one step "
        "(decodes + prefill chunks, vLLM's max_num_batched_tokens); 0 = no chunking: each "
        "prompt is prefilled alone between decode steps.")
    kv_block_tokens: int = Field(default=DEFAULT_KV_BLOCK_TOKENS, ge=1,
                                 description="Tokens per KV-cache block (paged attention).")
    prefix_cache_hit_frac: float = Field(
        default=0.0, ge=0, lt=1, description="Share of each prompt found in the prefix cache "
        "(its prefill and KV writes skipped).")
    speculative_tokens: int = Field(default=0, ge=0, le=MAX_SPECULATIVE_TOKENS,
                                    description="Draft tokens proposed per step (0 = off).")
    acceptance_rate: float | None = Field(
        default=None, gt=0, lt=1, description="Probability that the target accepts a draft "
        "token (Leviathan et al. 2023's alpha); required with speculative_tokens.")
    draft_model: ModelSpec | Literal["mtp"] | None = Field(
        default=None, description="The draft: a ModelSpec or preset name, or 'mtp' for the "
        "model's own multi-token-prediction module (the default when it has one).")
    disaggregated: bool = Field(default=False, description="Prefill and decode on separate "
                                "pools of devices, the KV cache sent between them.")
    target_utilization: float = Field(
        default=DEFAULT_TARGET_UTILIZATION, gt=0, le=1, description="Share of a replica's "
        "capacity the load may use when sizing replicas (headroom for queueing).")

    @field_validator("precision")
    @classmethod
    def _precision(cls, value: str) -> str:
        return precision_policy(value, mode="inference").name

    @field_validator("kv_cache_precision")
    @classmethod
    def _kv(cls, value: str | None) -> str | None:
        if value is not None:
            dtype_bytes(value, field="kv_cache_precision")
            return value.lower()
        return value

    @field_validator("draft_model", mode="before")
    @classmethod
    def _draft(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "mtp":
            return "mtp"
        return _as_model(value)

    @model_validator(mode="after")
    def _consistent(self) -> InferenceJob:
        spec = self.model
        if self.output_len > 0 and (not spec.causal or not spec.lm_head):
            what = "an encoder" if not spec.causal else "a decoder"
            head = " without an LM head" if not spec.lm_head else ""
            raise ValueError(f"output_len: {spec.name} is {what}{head}; generating tokens "
                             "needs a causal LM (output_len=0 serves it as an encoder)")
        if self.requests_per_s is not None and self.concurrent_requests is not None:
            raise ValueError("requests_per_s: give either requests_per_s or "
                             "concurrent_requests, not both")
        _check_length(spec, self.context_len, field="prompt_len",
                      what=f"prompt_len + output_len = {self.context_len}")
        if self.context_len > MAX_SEQ_LEN:  # the KV cache holds the whole context
            raise InputError("prompt_len", f"prompt_len + output_len = {self.context_len:,} "
                             f"tokens; allowed: at most {MAX_SEQ_LEN:,} in all")
        if self.output_len == 0:
            for name in ("tpot_s", "draft_model", "acceptance_rate"):
                if getattr(self, name) is not None:
                    raise InputError(name, "an encoder job (output_len=0) generates no tokens")
            if self.speculative_tokens:
                raise InputError("speculative_tokens", "an encoder job (output_len=0) "
                                 "generates no tokens")
            if self.disaggregated:
                raise InputError("disaggregated", "an encoder job (output_len=0) has no "
                                 "decode to separate from its prefill")
        if self.ep is not None and self.ep > 1:
            if not spec.is_moe:
                raise InputError("ep", f"{spec.name} has no routed experts; allowed: 1")
            if spec.n_experts % self.ep:
                raise InputError("ep", f"{self.ep} does not divide the {spec.n_experts} "
                                 f"routed experts of {spec.name}")
        if self.pp is not None and self.pp > spec.n_layers:
            raise InputError("pp", f"{self.pp} stages for the {spec.n_layers} layers of "
                             f"{spec.name}; allowed: at most {spec.n_layers}")
        self._check_speculation()
        return self

    def _check_speculation(self) -> None:
        spec = self.model
        if not self.speculative_tokens:
            for name in ("draft_model", "acceptance_rate"):
                if getattr(self, name) is not None:
                    raise InputError(name, "only with speculative_tokens >= 1")
            return
        if self.acceptance_rate is None:
            raise InputError("acceptance_rate", "required with speculative_tokens: the "
                             "probability a draft token is accepted, between 0 and 1 "
                             "(published: about 0.6-0.9; DeepSeek-V3's MTP 0.85-0.9)")
        draft = self.draft_model
        if draft is None and not spec.n_mtp_layers:
            raise InputError("draft_model", f"{spec.name} has no multi-token-prediction "
                             "module; give a draft model (a preset name or ModelSpec)")
        if draft == "mtp" and not spec.n_mtp_layers:
            raise InputError("draft_model", f"'mtp': {spec.name} has no multi-token-"
                             "prediction module; give a draft model")
        if isinstance(draft, ModelSpec):
            if not draft.causal or not draft.lm_head:
                raise InputError("draft_model", f"{draft.name} is not a causal LM")
            if draft.vocab_size != spec.vocab_size:
                raise InputError("draft_model", f"{draft.name}'s vocabulary "
                                 f"({draft.vocab_size:,}) differs from {spec.name}'s "
                                 f"({spec.vocab_size:,}); a draft must share the tokenizer")

    @property
    def context_len(self) -> int:
        return self.prompt_len + self.output_len

    @property
    def warnings(self) -> tuple[str, ...]:
        """Valid but unusual inputs worth a second look, one line each: a context beyond the
        model's trained one, a pinned batch larger than the concurrent users."""
        out = list(_context_warnings(self.model, self.context_len, "prompt_len + output_len"))
        if (self.batch_size is not None and self.requests_per_s is None
                and self.batch_size > self.load_concurrency):
            out.append(f"batch_size: {self.batch_size:,} sequences per micro-batch but only "
                       f"{self.load_concurrency:,} concurrent requests: the batch runs "
                       "part-full")
        return tuple(out)

    @property
    def kv_dtype(self) -> str | None:
        """The KV cache's dtype: kv_cache_precision, else fp8 under fp8/fp4 serving (P19c),
        else None (the activation dtype)."""
        if self.kv_cache_precision is not None:
            return self.kv_cache_precision
        return "fp8" if self.precision in FP8_KV_POLICIES else None

    @property
    def draft(self) -> ModelSpec | Literal["mtp"] | None:
        """The draft of speculative decoding: the given one, else the MTP module (when the
        model has one), None without speculation."""
        if not self.speculative_tokens:
            return None
        return self.draft_model if self.draft_model is not None else "mtp"

    @property
    def load_concurrency(self) -> int:
        """Concurrent requests of a closed-loop load (1 when neither load is given)."""
        if self.requests_per_s is not None:
            raise ValueError("load_concurrency: the job gives an arrival rate")
        return self.concurrent_requests or 1


# ---- presets ----------------------------------------------------------------------------------
CONLL2003_TRAIN_SENTENCES = 14_041  # Tjong Kim Sang & De Meulder 2003, Table 1 (English train)
CONLL2003_EPOCHS = 3  # seed document Sec. 5.2: `for epoch in range(3)`
CONLL2003_BATCH_SIZE = 8  # seed document Sec. 5.2: DataLoader(batch_size=8)
CONLL2003_SEQ_LEN = 128  # NB: padded length; sentences average ~14 words (~23 word pieces)


def conll2003_bert_finetune(**fields: Any) -> TrainingJob:
    """The seed document's Sec. 5 example: fine-tune bert-base-cased for token classification
    on CoNLL-2003 (14,041 training sentences), 3 epochs, batch size 8, AdamW, fp32 (the
    document's code uses no autocast), one device; sequences padded to 128 tokens (an upper
    bound: dynamic padding to each batch's longest sentence does less work).
    ceil(14041 / 8) · 3 = 5,268 steps of 8 · 128 = 1,024 tokens: 5,394,432 tokens."""
    defaults: dict[str, Any] = dict(precision="fp32", optimizer="adamw", n_devices=1,
                                    name="conll2003-bert-finetune")
    return TrainingJob.from_epochs(
        "bert-base-cased", n_samples=CONLL2003_TRAIN_SENTENCES, epochs=CONLL2003_EPOCHS,
        seq_len=CONLL2003_SEQ_LEN, global_batch_size=CONLL2003_BATCH_SIZE,
        **{**defaults, **fields})


def _training(name: str, model_name: str, n_tokens: float, seq_len: int, batch: int,
              **extra: Any) -> Callable[..., TrainingJob]:
    def make(**fields: Any) -> TrainingJob:
        return TrainingJob(**{**dict(model=model_name, n_tokens=n_tokens, seq_len=seq_len,
                                     global_batch_size=batch, name=name, **extra), **fields})
    return make


def _serving(name: str, model_name: str, **spec: Any) -> Callable[..., InferenceJob]:
    def make(**fields: Any) -> InferenceJob:
        return InferenceJob(**{**dict(model=model_name, name=name, **spec), **fields})
    return make


WORKLOADS: dict[str, Callable[..., TrainingJob | InferenceJob]] = {
    "conll2003-bert-finetune": conll2003_bert_finetune,
    # Touvron et al. 2023 (Llama 2), Sec. 2.2: 2T tokens, 4k context, 4M-token batches.
    "llama-2-7b-pretrain": _training("llama-2-7b-pretrain", "llama-2-7b", 2e12, 4096, 1024),
    "llama-2-70b-pretrain": _training("llama-2-70b-pretrain", "llama-2-70b", 2e12, 4096, 1024),
    # Brown et al. 2020, Table 2.1: 300B tokens, 2048 context, 3.2M-token batches (1536 seqs).
    "gpt3-175b-pretrain": _training("gpt3-175b-pretrain", "gpt3-175b", 300e9, 2048, 1536),
    # Llama Team 2024, Sec. 3.4.1: 15.6T tokens, 8k context, up to 16M-token batches.
    "llama-3.1-405b-pretrain": _training("llama-3.1-405b-pretrain", "llama-3.1-405b", 15.6e12,
                                         8192, 2048),
    "llama-2-70b-chat-serving": _serving("llama-2-70b-chat-serving", "llama-2-70b",
                                         prompt_len=1024, output_len=256, requests_per_s=10.0),
    "llama-2-7b-batch1": _serving("llama-2-7b-batch1", "llama-2-7b", prompt_len=128,
                                  output_len=128, concurrent_requests=1),
}


def list_workloads() -> list[str]:
    return list(WORKLOADS)


def workload(name: str, **fields: Any) -> TrainingJob | InferenceJob:
    """The preset workload `name`, with any field changed by keyword."""
    key = str(name).strip().lower()
    if key not in WORKLOADS:
        import difflib

        close = difflib.get_close_matches(key, WORKLOADS, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"workload: unknown preset {name!r}{hint}; known: "
                         f"{', '.join(WORKLOADS)}")
    return WORKLOADS[key](**fields)
