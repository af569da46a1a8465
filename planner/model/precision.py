"""Precision policies: how many bytes each class of stored tensor takes.

Storage follows the seed document's S = Σ|w_i|·bits_i / 8, applied per class of tensor
(docs/formulas.md F10–F13). The mixed-precision accounting (2 + 2 + 12 bytes per parameter for
bf16/fp16 weights, gradients and fp32 master copy + Adam moments) is Rajbhandari et al. 2020,
"ZeRO", Sec. 3.1 (K = 12).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.errors import InputError, clip

DTYPE_BYTES: dict[str, float] = {
    "fp64": 8.0, "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0,
    "int8": 1.0, "fp4": 0.5, "int4": 0.5,
}

OPTIMIZER_STATE_BYTES_PER_PARAM: dict[str, float] = {
    # Adam/AdamW keep two fp32 moments (m, v): 8 bytes per parameter (Kingma & Ba 2015; ZeRO).
    "adamw": 8.0,
    "adam": 8.0,
    # SGD with momentum keeps one fp32 buffer.
    "sgd": 4.0,
    # 8-bit AdamW (bitsandbytes): both moments block-wise quantized to 8 bits, 2 bytes per
    # parameter instead of 8 (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
    # Quantization", arXiv 2110.02861, Sec. 2). NB: one fp32 absmax per 2,048-element block
    # (2 · 4 / 2048 = 0.004 bytes per parameter) is not counted.
    "adamw8bit": 2.0,
}

# Fine-tuning with a frozen base (planner.model.layers, docs/planning.md P30-P32).
Adapter = Literal["none", "lora", "qlora"]
ADAPTERS: tuple[str, ...] = ("none", "lora", "qlora")
# QLoRA stores the frozen base's linear weights as 4-bit NormalFloat in blocks of 64 with
# double-quantized constants (an 8-bit constant per 64 weights, an fp32 one per 256 of those):
# 8/64 + 32/(64 · 256) = 0.127 bits per parameter on top of the 4 (Dettmers et al. 2023,
# "QLoRA", arXiv 2305.14314, Sec. 3, "Double Quantization"): (4 + 0.126953125) / 8 =
# 0.515869140625 bytes per parameter.
NF4_BITS_PER_PARAM = 4.0
NF4_CONSTANT_BITS_PER_PARAM = 8.0 / 64.0 + 32.0 / (64.0 * 256.0)
NF4_BYTES_PER_PARAM = (NF4_BITS_PER_PARAM + NF4_CONSTANT_BITS_PER_PARAM) / 8.0

# NVFP4 serving weights: 4-bit E2M1 values with one FP8 (E4M3) scale per block of 16 (and an
# fp32 scale per tensor, negligible): (4 + 8/16) / 8 = 0.5625 bytes per weight (NVIDIA,
# "Introducing NVFP4 for efficient and accurate low-precision inference", 2025; MXFP4 uses an
# 8-bit scale per 32: 0.53125, within 6 %).
NVFP4_BYTES_PER_PARAM = (4.0 + 8.0 / 16.0) / 8.0
# Policies whose serving KV cache defaults to fp8 (what TensorRT-LLM and vLLM deploy with an
# fp8 or fp4 checkpoint; docs/planning.md P19c).
FP8_KV_POLICIES = ("fp8-inference", "fp4-inference")

Mode = Literal["train", "inference"]


class PrecisionPolicy(BaseModel):
    """Bytes per element of every stored tensor class, and the dtype matmuls run in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    compute_dtype: str = Field(description="dtype whose peak FLOP/s applies to matmuls")
    weight_bytes: float = Field(gt=0, description="bytes per weight of norms and embeddings")
    linear_weight_bytes: float = Field(gt=0, description="bytes per weight of matmul layers")
    grad_bytes: float = Field(ge=0, description="bytes per gradient element (training)")
    master_bytes: float = Field(ge=0, description="fp32 master copy, counted with optimizer state")
    activation_bytes: float = Field(gt=0, description="bytes per saved activation element")
    train_ok: bool = True
    note: str = ""


POLICIES: dict[str, PrecisionPolicy] = {
    p.name: p
    for p in [
        PrecisionPolicy(name="fp32", compute_dtype="fp32", weight_bytes=4, linear_weight_bytes=4,
                        grad_bytes=4, master_bytes=0, activation_bytes=4,
                        note="everything in fp32 (4 + 4 + 8 bytes per parameter with Adam)"),
        PrecisionPolicy(name="bf16", compute_dtype="bf16", weight_bytes=2, linear_weight_bytes=2,
                        grad_bytes=2, master_bytes=4, activation_bytes=2,
                        note="bf16 mixed precision: bf16 weights/grads/activations, fp32 master "
                             "and Adam moments (ZeRO Sec. 3.1: 2 + 2 + 12 bytes per parameter)"),
        PrecisionPolicy(name="fp16", compute_dtype="fp16", weight_bytes=2, linear_weight_bytes=2,
                        grad_bytes=2, master_bytes=4, activation_bytes=2,
                        note="fp16 mixed precision with loss scaling (Micikevicius et al. 2018)"),
        PrecisionPolicy(name="fp8", compute_dtype="fp8", weight_bytes=2, linear_weight_bytes=2,
                        grad_bytes=2, master_bytes=4, activation_bytes=2,
                        note="FP8 matmuls (Transformer Engine) with bf16 weights and fp32 master; "
                             "NB: TE saves fp8 copies of some matmul inputs, counted here at 2 "
                             "bytes (an upper bound)"),
        PrecisionPolicy(name="fp4", compute_dtype="fp4", weight_bytes=2, linear_weight_bytes=2,
                        grad_bytes=2, master_bytes=4, activation_bytes=2,
                        note="FP4 training (NVFP4 or MXFP4 block-scaled matmuls: NVIDIA, "
                             "'Pretraining Large Language Models with NVFP4', 2025) on devices "
                             "with an fp4 peak (Blackwell, MI355X); attention, embedding and LM "
                             "head in bf16 (A22); NB: the published recipe also keeps ~15 % of "
                             "the linear layers (the last blocks) in bf16, not modelled"),
        PrecisionPolicy(name="int8", compute_dtype="bf16", weight_bytes=2, linear_weight_bytes=1,
                        grad_bytes=0, master_bytes=0, activation_bytes=2, train_ok=False,
                        note="int8 weight-only inference: matmul weights 1 byte, dequantized to "
                             "bf16 for compute; embeddings and norms stay bf16"),
        PrecisionPolicy(name="int4", compute_dtype="bf16", weight_bytes=2, linear_weight_bytes=0.5,
                        grad_bytes=0, master_bytes=0, activation_bytes=2, train_ok=False,
                        note="int4 weight-only inference (GPTQ/AWQ style); NB: group scales "
                             "(~0.25 bit/weight at group size 128) are not counted"),
        PrecisionPolicy(name="int8-w8a8", compute_dtype="int8", weight_bytes=2,
                        linear_weight_bytes=1, grad_bytes=0, master_bytes=0, activation_bytes=2,
                        train_ok=False,
                        note="int8 weights and int8 activations in the matmuls (SmoothQuant, "
                             "Xiao et al. 2023; what FPGA LLM accelerators compute): the int8 "
                             "peak on every device; stored activations stay 16-bit"),
        PrecisionPolicy(name="fp8-inference", compute_dtype="fp8", weight_bytes=2,
                        linear_weight_bytes=1, grad_bytes=0, master_bytes=0, activation_bytes=2,
                        train_ok=False, note="fp8 weights and fp8 matmuls for serving; the KV "
                        "cache in fp8 unless kv_cache_precision says otherwise"),
        PrecisionPolicy(name="fp4-inference", compute_dtype="fp4", weight_bytes=2,
                        linear_weight_bytes=NVFP4_BYTES_PER_PARAM, grad_bytes=0, master_bytes=0,
                        activation_bytes=2, train_ok=False,
                        note="NVFP4 / MXFP4 weights and fp4 matmuls for serving (Blackwell, "
                        "MI355X): 4-bit values plus an fp8 scale per 16 (4.5 bits per weight); "
                        "the KV cache in fp8 unless kv_cache_precision says otherwise"),
    ]
}


def precision_policy(name: str | PrecisionPolicy, *, mode: Mode = "train") -> PrecisionPolicy:
    """Look a policy up by name; InputError (a ValueError) names the field and what is allowed."""
    if isinstance(name, PrecisionPolicy):
        policy = name
    else:
        key = str(name).lower()
        if key not in POLICIES:
            raise InputError("precision", f"unknown policy {clip(name)}; allowed: "
                                          f"{', '.join(POLICIES)}")
        policy = POLICIES[key]
    if mode == "train" and not policy.train_ok:
        allowed = ", ".join(p.name for p in POLICIES.values() if p.train_ok)
        raise InputError("precision", f"{policy.name!r} is inference-only; for mode='train' use "
                                      f"one of {allowed}")
    return policy


def dtype_bytes(dtype: str, *, field: str = "dtype") -> float:
    """Bytes per element of a dtype name; ValueError lists the allowed names."""
    key = str(dtype).lower()
    if key not in DTYPE_BYTES:
        raise InputError(field, f"unknown dtype {clip(dtype)}; allowed: {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[key]


def frozen_linear_weight_bytes(policy: PrecisionPolicy, adapter: str) -> float:
    """Bytes per weight of a frozen base's matmul layer: 4-bit NF4 with its constants under
    QLoRA (0.51587 bytes, Dettmers et al. 2023), else the policy's (bf16: 2)."""
    return NF4_BYTES_PER_PARAM if adapter == "qlora" else policy.linear_weight_bytes


def resident_bytes_per_param(policy: PrecisionPolicy, *, optimizer: str, adapter: str = "none",
                             optimizer_offload: bool = False) -> float:
    """A lower bound of the device-resident bytes per base parameter, for pruning device
    counts: weights + gradients + optimizer moments (no master copy) when every parameter
    trains; the weights alone when the gradients and the optimizer live on the host
    (optimizer_offload, P32) or when the base is frozen (an adapter: its NF4 or 16-bit
    weights; the adapters are ~1 % of it)."""
    if adapter != "none":
        return frozen_linear_weight_bytes(policy, adapter)
    if optimizer_offload:
        return policy.linear_weight_bytes
    return policy.linear_weight_bytes + policy.grad_bytes + optimizer_state_bytes(optimizer)


def optimizer_state_bytes(optimizer: str) -> float:
    """Bytes of optimizer state per parameter, excluding the master copy."""
    key = str(optimizer).lower()
    if key not in OPTIMIZER_STATE_BYTES_PER_PARAM:
        raise InputError("optimizer", f"unknown {clip(optimizer)}; allowed: "
                                      f"{', '.join(OPTIMIZER_STATE_BYTES_PER_PARAM)}")
    return OPTIMIZER_STATE_BYTES_PER_PARAM[key]
