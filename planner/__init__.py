"""planner: what it costs, in time, money and energy, to train or serve a transformer on each
kind of accelerator, with the analytic numbers checked against measured PyTorch runs.

The public API is re-exported here. `import planner` never imports torch; the measurement
code in `planner.measure` imports it when called.
"""

from planner.layers import layer_table
from planner.models import ModelSpec, list_models, model, model_from_hf_config
from planner.precision import POLICIES as PRECISION_POLICIES
from planner.precision import PrecisionPolicy
from planner.report import to_csv, to_csv_text
from planner.seed import seed_example

# -- catalog (issue 3) --
from planner.catalog import (
    Catalog,
    Device,
    Efficiency,
    Price,
    load_catalog,
    validate_catalog_file,
)
# -- workloads, search and ranking (issue 4) --
from planner.cost import CostOptions
from planner.rank import pareto_mask, rank, search
from planner.workloads import (
    InferenceJob,
    TrainingJob,
    conll2003_bert_finetune,
    list_workloads,
    workload,
)
# -- measured validation (issue 5) --
from planner.validate import calibrate, validate  # torch is imported only when called

__all__ = [
    "Catalog",
    "Device",
    "Efficiency",
    "Price",
    "load_catalog",
    "validate_catalog_file",
    "calibrate",
    "validate",
    "CostOptions",
    "InferenceJob",
    "TrainingJob",
    "conll2003_bert_finetune",
    "list_workloads",
    "pareto_mask",
    "rank",
    "search",
    "workload",
    "PRECISION_POLICIES",
    "ModelSpec",
    "PrecisionPolicy",
    "layer_table",
    "list_models",
    "model",
    "model_from_hf_config",
    "seed_example",
    "to_csv",
    "to_csv_text",
]

__version__ = "0.1.0"
