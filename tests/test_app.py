"""The Streamlit app, page by page, with streamlit.testing.v1.AppTest.

Each page: runs without exception with the defaults; changing a main input changes the output;
bad input shows st.error (never an exception); every table has a CSV download button.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import planner

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT_S = 120

logging.getLogger("streamlit").setLevel(logging.ERROR)


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.query_params["page"] = page
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def download_keys(at: AppTest) -> set[str]:
    return {b.key for b in at.get("download_button")}


# ---- Plan ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plan() -> AppTest:
    return open_page("Plan")


def test_plan_default_answers_who_is_fastest_and_cheapest(plan):
    assert_clean(plan)
    labels = [label.split(":")[0] for label in metrics(plan)]
    assert {"Fastest", "Cheapest", "Least energy"} <= set(labels)
    assert any("Train llama-2-7b on 2T tokens within 30 d" in s.value for s in plan.subheader)
    assert plan.get("plotly_chart"), "the time-vs-cost scatter is missing"
    assert {"plan_ranking_csv"} <= download_keys(plan)


PLAN_DEFAULT_JOB = dict(model="llama-2-7b", n_tokens=2e12, seq_len=4096, global_batch_size=1024,
                        precision="bf16", deadline_s=30 * 86400.0)


def test_plan_objective_changes_the_ranking(plan):
    # The default question is ranked by cost (cheapest within the 30-day deadline); the table
    # shows rank()'s order (its values are readable text: "$70.2 k", "15.2 d").
    job = planner.TrainingJob(**PLAN_DEFAULT_JOB)
    cheapest_first = plan.dataframe[0].value
    assert list(cheapest_first["device"]) == list(planner.rank(job, objective="cost")["device"])
    plan.radio(key="plan_objective").set_value("time").run()
    assert_clean(plan)
    fastest_first = plan.dataframe[0].value
    assert list(fastest_first["device"]) != list(cheapest_first["device"])
    assert list(fastest_first["device"]) == list(planner.rank(job, objective="time")["device"])
    plan.radio(key="plan_objective").set_value("cost").run()


def test_plan_kinds_filter_the_ranking(plan):
    plan.multiselect(key="plan_kinds").set_value(["tpu"]).run()
    assert_clean(plan)
    assert set(plan.dataframe[0].value["kind"]) == {"tpu"}
    plan.multiselect(key="plan_kinds").set_value([]).run()


def test_plan_bad_workload_is_an_error_message():
    at = open_page("Plan")
    at.radio(key="mode").set_value("inference").run()
    at.selectbox(key="model_preset").set_value("gpt2").run()  # learned positions: 1,024 max
    at.number_input(key="plan_prompt_len").set_value(100_000).run()
    assert not at.exception
    assert at.error and "max_seq_len" in at.error[0].value


def test_plan_serving_options_reach_the_ranking():
    """Serving mode: the p99 columns are shown; a p50 target, speculation with a draft model
    and an encoder (output 0) each run without an error and change the table."""
    at = open_page("Plan")
    at.radio(key="mode").set_value("inference").run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert {"ttft_p99_s", "tpot_p99_s"} <= set(table.columns)
    feasible = table[table["feasible"]]
    assert (feasible["ttft_p99_s"] != "").all() and (feasible["tpot_p99_s"] != "").all()
    at.number_input(key="plan_tpot_ms").set_value(50.0).run()
    strict = at.dataframe[0].value
    at.selectbox(key="plan_percentile").set_value(50.0).run()
    assert_clean(at)
    # a target at the median is looser: at least as many devices meet it
    assert at.dataframe[0].value["feasible"].sum() >= strict["feasible"].sum()
    at.number_input(key="plan_spec_tokens").set_value(3).run()
    at.selectbox(key="plan_draft").set_value("llama-7b").run()  # shares llama-2-7b's vocabulary
    assert_clean(at)
    # a draft with another tokenizer is refused in one line, not a traceback
    at.selectbox(key="plan_draft").set_value("gpt2").run()
    assert not at.exception and at.error and "draft_model" in at.error[0].value
    at.selectbox(key="model_preset").set_value("bert-base-cased").run()
    at.number_input(key="plan_prompt_len").set_value(128).run()  # within BERT's 512 positions
    at.number_input(key="plan_spec_tokens").set_value(0).run()
    at.number_input(key="plan_tpot_ms").set_value(0.0).run()
    at.number_input(key="plan_output_len").set_value(0).run()
    assert_clean(at)
    encoder = at.dataframe[0].value
    assert encoder["feasible"].any() and (encoder["tpot_s"] == "").all()  # blank, not None


# ---- Model --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_page() -> AppTest:
    return open_page("Model")


def test_model_page_defaults(model_page):
    assert_clean(model_page)
    assert metrics(model_page)["Parameters"] == "6.738 G"  # llama-2-7b: 6,738,415,616
    assert len(model_page.get("plotly_chart")) >= 3
    assert {"model_layers_csv", "seed_csv"} <= download_keys(model_page)
    seed = next(d.value for d in model_page.dataframe if "verdict" in d.value.columns)
    assert "arithmetic wrong" in set(seed["verdict"])


def test_model_preset_and_batch_change_the_numbers(model_page):
    before = metrics(model_page)
    model_page.selectbox(key="model_preset").set_value("gpt2").run()
    assert_clean(model_page)
    assert metrics(model_page)["Parameters"] == "124.4 M"  # GPT-2: 124,439,808
    compute = metrics(model_page)["Compute C per step"]
    model_page.number_input(key="model_batch").set_value(4).run()
    assert metrics(model_page)["Compute C per step"] != compute
    assert metrics(model_page) != before
    model_page.selectbox(key="model_preset").set_value("llama-2-7b").run()


def test_model_serving_mode_shows_kv_cache():
    at = open_page("Model")
    at.radio(key="mode").set_value("inference").run()
    assert_clean(at)
    assert "Decode step" in metrics(at)


def test_model_page_charts_the_first_block_of_each_kind():
    # DeepSeek-V3: 3 dense blocks, then 58 MoE blocks; the charts show blocks 0 and 3.
    at = open_page("Model")
    at.selectbox(key="model_preset").set_value("deepseek-v3").run()
    assert_clean(at)
    assert at.toggle(key="model_all_blocks").label == (
        "Chart all 61 blocks (default: the outer layers and the first block of each kind: "
        "dense (block 0, 3 such), MoE (block 3, 58 such))")
    flops_chart = at.get("plotly_chart")[0].proto.spec
    assert "blocks.0.mlp.up" in flops_chart and "blocks.3.moe.router" in flops_chart
    assert "blocks.1." not in flops_chart and "blocks.4." not in flops_chart


def test_model_upload_names_every_supported_model_type():
    at = open_page("Model")
    at.radio(key="model_source").set_value("Upload config.json").run()
    assert_clean(at)
    text = " ".join(i.value for i in at.info)
    for model_type in ("bert", "gpt2", "llama", "mistral", "mixtral", "opt", "qwen2",
                       "deepseek_v3", "gemma2", "gemma3_text", "phi3", "qwen3", "qwen3_moe"):
        assert model_type in text


def test_model_uploaded_config_json():
    cfg = dict(model_type="gpt2", n_layer=2, n_embd=128, n_head=4, vocab_size=1000,
               n_positions=256, _name_or_path="tiny-gpt2")
    at = open_page("Model")
    at.radio(key="model_source").set_value("Upload config.json").run()
    at.file_uploader(key="model_upload").set_value(
        ("config.json", json.dumps(cfg).encode(), "application/json")).run()
    assert_clean(at)
    assert any("tiny-gpt2" in s.value for s in at.subheader)


@pytest.mark.parametrize("content, message", [
    (b"{not json", "Expecting property name"),
    (json.dumps(dict(model_type="t5")).encode(), "model_type"),
])
def test_model_bad_config_json_is_an_error_message(content, message):
    at = open_page("Model")
    at.radio(key="model_source").set_value("Upload config.json").run()
    at.file_uploader(key="model_upload").set_value(
        ("config.json", content, "application/json")).run()
    assert not at.exception
    assert any(message in e.value for e in at.error)


def test_model_edited_dimensions_that_cannot_work_are_an_error_message():
    at = open_page("Model")
    at.number_input(key="dim_llama-2-7b_n_heads").set_value(7).run()  # 7 does not divide 4096
    assert not at.exception
    assert any("n_heads" in e.value for e in at.error)


# ---- Catalog ------------------------------------------------------------------------------------
GOOD_OVERRIDE = b"""
[[device]]
id = "nvidia_h100_sxm"

[[device.prices]]
kind = "cloud"
provider = "ExampleCloud"
basis = "test price"
contract = "on-demand"
usd_per_hour = 1.5
date = "2026-01-01"
source = "tests/test_app.py"
"""

BAD_FILE = b"""
[[device]]
id = "nvidia_h100_sxm"
tdp_w = 700

[[device]]
id = "=cmd|calc"
vendor = "Evil"
memory_bytes = "80 GB"
"""


@pytest.fixture(scope="module")
def catalog_page() -> AppTest:
    return open_page("Catalog")


def test_catalog_page_defaults(catalog_page):
    assert_clean(catalog_page)
    assert {"catalog_csv", "catalog_prices_csv"} <= download_keys(catalog_page)
    assert len(catalog_page.dataframe[0].value) >= 10
    assert catalog_page.get("plotly_chart")


def test_catalog_filter_changes_the_table(catalog_page):
    n_all = len(catalog_page.dataframe[0].value)
    catalog_page.text_input(key="catalog_query").set_value("h100").run()
    assert_clean(catalog_page)
    ids = list(catalog_page.dataframe[0].value["id"])
    assert 0 < len(ids) < n_all and all("h100" in i for i in ids)
    catalog_page.text_input(key="catalog_query").set_value("").run()


def test_catalog_upload_bad_file_shows_errors_next_to_the_entry():
    at = open_page("Catalog")
    at.file_uploader(key="catalog_upload").set_value(("mine.toml", BAD_FILE, "text/plain"))
    at.run()
    assert not at.exception
    assert at.error
    check = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert list(check["status"]) == ["changes a built-in device", "error"]
    assert "mine.toml" in check["message"].iloc[1] and "id" in check["message"].iloc[1]


def test_catalog_upload_good_file_is_used():
    at = open_page("Catalog")
    at.file_uploader(key="catalog_upload").set_value(("mine.toml", GOOD_OVERRIDE, "text/plain"))
    at.run()
    assert_clean(at)
    assert at.success
    prices = next(d.value for d in at.dataframe if "provider" in d.value.columns)
    assert "ExampleCloud" in set(prices["provider"])


# ---- Validate -----------------------------------------------------------------------------------
def tiny_validation(at: AppTest) -> AppTest:
    at.number_input(key="val_layers").set_value(1)
    at.number_input(key="val_seq_len").set_value(16)
    at.number_input(key="val_batch").set_value(1)
    at.toggle(key="val_time_it").set_value(False)
    return at


def test_validate_page_waits_for_the_button():
    at = open_page("Validate")
    assert_clean(at)
    assert at.button(key="val_run")
    assert any("Press the button" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_validate_runs_a_tiny_model_and_shows_per_layer_errors():
    at = tiny_validation(open_page("Validate"))
    at.button(key="val_run").click().run()
    assert_clean(at)
    assert metrics(at)["fwd_flops"] == "0.00%"  # matmul FLOPs match exactly (max |error|)
    assert at.get("plotly_chart")
    assert {"val_layers_csv", "val_summary_csv"} <= download_keys(at)
    table = next(d.value for d in at.dataframe if "fwd_flops_measured" in d.value.columns)
    assert "blocks.0.attn.q" in set(table["layer"])
    at.selectbox(key="val_quantity").set_value("param_bytes").run()  # another quantity
    assert_clean(at)


def test_validate_bad_input_is_an_error_message():
    at = tiny_validation(open_page("Validate"))
    at.selectbox(key="val_model").set_value("bert-base-cased")
    at.number_input(key="val_seq_len").set_value(4096)  # > BERT's 512 learned positions
    at.button(key="val_run").click().run()
    assert not at.exception
    assert any("seq_len" in e.value for e in at.error)


# ---- Backtest -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backtest_page() -> AppTest:
    return open_page("Backtest")


def test_backtest_page_defaults(backtest_page):
    assert_clean(backtest_page)
    assert {"Runs", "Median |error|"} <= set(metrics(backtest_page))
    assert len(backtest_page.get("plotly_chart")) == 2
    assert "backtest_csv" in download_keys(backtest_page)


def test_backtest_metric_filter_changes_the_table(backtest_page):
    n_all = len(backtest_page.dataframe[0].value)
    backtest_page.multiselect(key="backtest_metrics").set_value(["mfu"]).run()
    assert_clean(backtest_page)
    shown = backtest_page.dataframe[0].value
    assert 0 < len(shown) < n_all and set(shown["metric"]) == {"mfu"}


# ---- across pages -------------------------------------------------------------------------------
def test_a_valid_catalog_file_is_used_by_the_plan_page():
    at = open_page("Catalog")
    at.file_uploader(key="catalog_upload").set_value(("mine.toml", GOOD_OVERRIDE, "text/plain"))
    at.run()
    at.query_params["page"] = "Plan"
    at.session_state["page"] = "Plan"
    at.run()
    assert_clean(at)
    assert any("mine.toml" in c.value for c in at.caption)
    ranking = at.dataframe[0].value
    h100 = ranking[ranking["device"] == "nvidia_h100_sxm"].iloc[0]
    assert h100["cost_price_provider"] == "ExampleCloud"  # $1.5/h beats the built-in prices
