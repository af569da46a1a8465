"""Why a candidate is infeasible: one enum per mode, each member with the text reports show.
The search marks every grid cell with the first failing check (planner.plan.search), in the
order of the members (a later reason got further); the ranking turns it into one line with
the numbers behind it (planner.plan.ranking)."""

from __future__ import annotations

from enum import IntEnum

# A candidate whose numbers overflowed (an extreme input: a tiny efficiency, a huge overhead)
# or came out negative or zero: never presented as a plan.
NON_FINITE_TEXT = "time, cost or energy overflowed (infinite, negative, or a zero time)"


class TrainReason(IntEnum):
    """Why a training candidate is infeasible: the first failing check, in this order (a later
    reason got further). OK = feasible. `text` is what reports show."""

    OK = 0
    NO_TRAINING_STACK = 1
    NO_PEAK = 2
    NO_MEMORY_BW = 3
    TP_BEYOND_DOMAIN = 4
    TP_HEADS = 5
    BATCH_NOT_DIVISIBLE = 6
    ZERO_WITH_PP = 7
    INTERLEAVE_MICRO_BATCHES = 8
    EP_NOT_DIVIDING = 9
    NO_LINK_BW = 10
    NO_FIT = 11
    NON_FINITE = 12
    DEADLINE = 13

    @property
    def text(self) -> str:
        return TRAIN_REASONS[self]


class InferReason(IntEnum):
    """Why a serving candidate is infeasible (first failing check); OK = feasible."""

    OK = 0
    NO_PEAK = 1
    NO_MEMORY_BW = 2
    TP_BEYOND_DOMAIN = 3
    TP_HEADS = 4
    NO_LINK_BW = 5
    NO_FIT = 6
    NON_FINITE = 7
    TTFT = 8
    TPOT = 9
    MAX_DEVICES = 10

    @property
    def text(self) -> str:
        return INFER_REASONS[self]


TRAIN_REASONS = (
    "",
    "no training software stack for this device (an FPGA, or an inference-only chip)",
    "no dense peak for the compute dtype",
    "memory bandwidth unknown",
    "tp beyond the scale-up domain",
    "tp does not divide the attention or KV heads",
    "global batch not divisible by dp × micro-batch",
    "ZeRO-2/3 with pipeline parallelism (DeepSpeed refuses it; Megatron-LM shards only the "
    "optimizer state, ZeRO-1)",
    "interleaved pipeline with micro-batches not a multiple of pp (Megatron-LM requires it)",
    "ep does not divide the data-parallel size (experts are split over data-parallel ranks)",
    "link bandwidth unknown",
    "does not fit in memory",
    NON_FINITE_TEXT,
    "misses the deadline",
)
INFER_REASONS = (
    "",
    "no dense peak for the compute dtype",
    "memory bandwidth unknown",
    "tp beyond the scale-up domain",
    "tp does not divide the attention or KV heads",
    "link bandwidth unknown",
    "does not fit in memory",
    NON_FINITE_TEXT,
    "misses the time-to-first-token target",
    "misses the time-per-output-token target",
    "needs more than max_devices",
)
