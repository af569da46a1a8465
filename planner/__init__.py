"""planner: what it costs, in time, money and energy, to train or serve a transformer on each
kind of accelerator, with the analytic numbers checked against measured PyTorch runs.

The public API is re-exported here; nothing else lives in this file. `import planner` never
imports torch: `validate` and `calibrate` import it when called. The modules live in
subpackages by concept: planner.model, planner.hardware, planner.plan, planner.measure,
planner.report, planner.cli.
"""

from planner.hardware.catalog import (
    Catalog,
    Device,
    Price,
    check_catalog_entries,
    load_catalog,
    validate_catalog_file,
)
from planner.hardware.kernels import (
    attention_flops_per_s,
    collective_time_s,
    gemm_flops_per_s,
    memory_bytes_per_s,
)
from planner.measure.collectives import calibrate_collectives, fit_collectives
from planner.measure.distributed import validate_distributed
from planner.measure.validate import calibrate, validate
from planner.model.layers import DEFAULT_FLASH_ATTENTION, layer_table
from planner.model.precision import POLICIES as PRECISION_POLICIES
from planner.model.precision import PrecisionPolicy
from planner.model.seed import seed_example
from planner.model.spec import (
    ModelSpec,
    hf_cache_dir,
    list_models,
    model,
    model_from_hf_cache,
    model_from_hf_config,
)
from planner.plan.backtest import backtest, backtest_summary
from planner.plan.breakeven import BreakEven, breakeven
from planner.plan.cost import CostOptions
from planner.plan.fits import FitResult, fits
from planner.plan.ranking import infeasible_summary, rank
from planner.plan.search import pareto_mask, search
from planner.plan.sweep import sweep, sweepable_fields
from planner.plan.workloads import (
    InferenceJob,
    TrainingJob,
    conll2003_bert_finetune,
    list_workloads,
    workload,
)
from planner.report.tables import to_csv, to_csv_text, to_json_text

__all__ = [
    # models and the per-layer analytic model (issue 2)
    "DEFAULT_FLASH_ATTENTION",
    "PRECISION_POLICIES",
    "ModelSpec",
    "PrecisionPolicy",
    "layer_table",
    "list_models",
    "hf_cache_dir",
    "model",
    "model_from_hf_cache",
    "model_from_hf_config",
    "seed_example",
    # hardware catalog (issue 3)
    "Catalog",
    "Device",
    "Price",
    "check_catalog_entries",
    "load_catalog",
    "validate_catalog_file",
    # kernel-level achieved rates (issue 9)
    "attention_flops_per_s",
    "collective_time_s",
    "gemm_flops_per_s",
    "memory_bytes_per_s",
    # workloads, search, ranking and backtest (issue 4)
    "CostOptions",
    "InferenceJob",
    "TrainingJob",
    "backtest",
    "backtest_summary",
    "conll2003_bert_finetune",
    "list_workloads",
    "infeasible_summary",
    "pareto_mask",
    "rank",
    "search",
    "workload",
    # sweeps and rent-or-buy (issue 14)
    "BreakEven",
    "breakeven",
    "sweep",
    "sweepable_fields",
    # does it fit on my GPU? (serving)
    "FitResult",
    "fits",
    # measured validation (issue 5)
    "calibrate",
    "validate",
    # measured collectives and the multi-process step (issue 15)
    "calibrate_collectives",
    "fit_collectives",
    "validate_distributed",
    # reports
    "to_csv",
    "to_csv_text",
    "to_json_text",
]

__version__ = "0.1.0"
