"""Property-based fuzzing of the Streamlit app's widgets (issue 13): whatever a user types into
the number and text inputs, the page shows no traceback (`at.exception` is empty), no
"Unexpected error" (the app's net for bugs) and every st.error is one line.

AppTest runs take seconds, so this module draws few examples: PLANNER_FUZZ_EXAMPLES // 20 per
property (3 at the default of 60, 12 app runs in all); `PLANNER_FUZZ_EXAMPLES=1000` gives 50
each. Values stay within what a browser can send: whole numbers within ±(2**53 - 1) for
integer inputs, finite doubles for the others. The Plan and Model pages' number inputs have
no min/max (a browser clamps those silently): a value out of range is an st.error naming the
input. The Validate page (torch) is not driven here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hypothesis import (
    HealthCheck,
    currently_in_test_context,
    event,
    example,
    given,
    seed,
    settings,
)
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
logging.getLogger("streamlit").setLevel(logging.ERROR)

FUZZ_EXAMPLES = int(os.environ.get("PLANNER_FUZZ_EXAMPLES", "60"))
FUZZ_SEED = int(os.environ.get("PLANNER_FUZZ_SEED", "0"))
APP_EXAMPLES = max(1, FUZZ_EXAMPLES // 20)
FUZZ = settings(max_examples=APP_EXAMPLES, deadline=None, derandomize=not FUZZ_SEED,
                database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fuzz(test):
    return seed(FUZZ_SEED)(FUZZ(test)) if FUZZ_SEED else FUZZ(test)


MAX_WIDGET_INT = 2**53 - 1  # a JavaScript number is a double
WHOLE = st.one_of(st.integers(1, 64), st.integers(-MAX_WIDGET_INT, MAX_WIDGET_INT),
                  st.sampled_from([0, 1, 3, 7, 10**5, 10**5 + 1, 10**6 + 1, 10**8, 10**9 + 1,
                                   MAX_WIDGET_INT]))
REAL = st.one_of(st.floats(0.0, 100.0), st.floats(allow_nan=False, allow_infinity=False),
                 st.sampled_from([0.0, -0.0, 1e-320, 1e-9, 0.001, 1.0, 1e18, 1e300]))
DIMS = ["n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size", "max_seq_len",
        "n_experts", "experts_top_k"]
PRESET = "llama-2-7b"  # the app's default model


def start(page: str, **radios: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = page
    at.run()
    for key, value in radios.items():
        at.radio(key=key).set_value(value).run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No traceback, no bug report, every error message one line."""
    assert not at.exception, [e.message for e in at.exception]
    for error in at.error:
        text = str(error.value)
        if currently_in_test_context():  # --hypothesis-show-statistics lists them
            event(f"error: {text[:70]}")
        assert text and len(text.splitlines()) == 1, text
        assert "Unexpected error" not in text and "Traceback" not in text, text
        assert "Value error," not in text and "set_int_max_str_digits" not in text, text


def set_numbers(at: AppTest, values: dict[str, Any]) -> AppTest:
    """Set the number inputs that are on the page (by key), then rerun once."""
    keys = {w.key for w in at.number_input}
    for key, value in values.items():
        if key in keys:
            at.number_input(key=key).set_value(value)
    return at.run()


def sidebar_values(draw) -> dict[str, Any]:
    """Edited model dimensions and the sequence length (both in the sidebar)."""
    out: dict[str, Any] = {}
    for dim in draw(st.lists(st.sampled_from(DIMS), max_size=2, unique=True)):
        out[f"dim_{PRESET}_{dim}"] = draw(WHOLE)
    if draw(st.booleans()):
        out[f"seq_len_{PRESET}"] = draw(WHOLE)
    return out


@st.composite
def plan_train_values(draw) -> dict[str, Any]:
    fields = {"plan_tokens_b": REAL, "plan_global_batch": WHOLE, "plan_deadline_d": REAL,
              "plan_usd_per_kwh": REAL, "plan_pue": REAL, "plan_lifetime": REAL,
              "plan_utilization": REAL, "plan_fixed_n_train": WHOLE, "plan_tp_train": WHOLE,
              "plan_pp_train": WHOLE, "plan_micro_batch": WHOLE, "plan_usd_per_hour": REAL,
              "plan_network_scale": REAL, "plan_memory_scale": REAL}
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3,
                           unique=True))
    return {**{k: draw(fields[k]) for k in chosen}, **sidebar_values(draw)}


@st.composite
def plan_serve_values(draw) -> dict[str, Any]:
    fields = {"plan_prompt_len": WHOLE, "plan_output_len": WHOLE, "plan_requests_per_s": REAL,
              "plan_ttft_ms": REAL, "plan_tpot_ms": REAL, "plan_fixed_n_inference": WHOLE,
              "plan_batch_size": WHOLE, "plan_max_batch": WHOLE, "plan_target_util": REAL}
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3,
                           unique=True))
    return {k: draw(fields[k]) for k in chosen}


@fuzz
@given(plan_train_values())
@example({"plan_tokens_b": 1e300})  # n_tokens overflows to inf: one line naming n_tokens
def test_plan_page_training_inputs(values: dict[str, Any]) -> None:
    assert_clean(set_numbers(start("Plan"), values))


@fuzz
@given(plan_serve_values())
def test_plan_page_serving_inputs(values: dict[str, Any]) -> None:
    assert_clean(set_numbers(start("Plan", mode="inference"), values))


@fuzz
@given(st.builds(lambda batch, side: {"model_batch": batch, **side}, WHOLE,
                 st.composite(lambda draw: sidebar_values(draw))()),
       st.sampled_from(["train", "inference"]))
def test_model_page_inputs(values: dict[str, Any], mode: str) -> None:
    assert_clean(set_numbers(start("Model", mode=mode), values))


@fuzz
@given(st.one_of(st.text(max_size=12),
                 st.sampled_from(["nvidia", "H100", ".*", "\\", "(", "\x00", "=1+1", " ",
                                  "\u200b", "x" * 5000])))
def test_catalog_search_text(query: str) -> None:
    at = start("Catalog")
    at.text_input(key="catalog_query").set_value(query).run()
    assert_clean(at)
