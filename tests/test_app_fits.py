"""The Plan page's first question, "Does it fit on my GPU?", with streamlit's AppTest: the
default answer, a model that does not fit (and why), a change of precision and device count,
and bad input as one st.error line.

Hand numbers: Llama-2-7B in bf16 is 2 × 6,738,415,616 = 13,476,831,232 B of weights (13.5 GB)
and 2 · 32 layers · 4096 · 2 B = 524,288 B of KV cache per token; Llama-2-70B in bf16 is
2 × 68,976,648,192 = 137,953,296,384 B (138.0 GB), above the 0.9 × 80 = 72.0 GB usable on
one H100.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT_S = 120

logging.getLogger("streamlit").setLevel(logging.ERROR)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(scope="module")
def plan() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.query_params["page"] = "Plan"
    return at.run()


def test_default_llama_2_7b_fits_on_one_h100(plan):
    assert_clean(plan)
    assert any(e.label.startswith("Does it fit on my GPU?") for e in plan.expander)
    assert plan.selectbox(key="fits_device").value == "nvidia_h100_sxm"
    m = metrics(plan)
    assert m["Fits"] == "✓ yes"
    assert m["Weights / device"] == "13.5 GB"  # 13,476,831,232 B
    assert m["KV cache / token"] == "524 kB"  # 524,288 B
    assert m["Max context (tokens)"] == "4,096"  # the model's whole context
    assert int(m["Max batch"].replace(",", "")) >= 1
    assert float(m["Decode (tok/s)"].replace(",", "")) > 0
    assert not plan.warning


def test_llama_2_70b_does_not_fit_then_int4_and_two_devices_do(plan):
    plan.selectbox(key="model_preset").set_value("llama-2-70b").run()
    assert_clean(plan)
    assert metrics(plan)["Fits"] == "✗ no"
    assert metrics(plan)["Decode (tok/s)"] == "—"
    assert any(w.value.startswith("weights need 138.0 GB per device, 72.0 GB usable")
               for w in plan.warning)
    plan.selectbox(key="fits_precision").set_value("int4").run()
    assert_clean(plan)
    assert metrics(plan)["Fits"] == "✓ yes"
    plan.selectbox(key="fits_precision").set_value("bf16")
    plan.number_input(key="fits_n_devices").set_value(2).run()
    assert_clean(plan)
    assert metrics(plan)["Fits"] == "✓ yes"


def test_bad_input_is_one_error_line_in_the_section():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.query_params["page"] = "Plan"
    at.run()
    at.selectbox(key="model_preset").set_value("gpt2").run()  # learned positions: 1,024 max
    assert not at.exception
    assert not at.error  # the section's defaults stay within GPT-2's context (768 + 256)
    at.number_input(key="fits_prompt_len_gpt2").set_value(100_000).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("prompt_len:") and "max_seq_len" in errors[0]
    assert "Fits" not in metrics(at)
