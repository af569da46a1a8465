"""The Plan page's answers and controls (issue 14), with streamlit.testing.v1.AppTest.

Headline cards that mean what they say (each checked against planner.rank computed here),
an infeasible request that names its constraint, each Options control (devices, a fixed
cluster, a layout pin, my own price), readable tables, the sweep panel, invalid typed values
named in an st.error, and the Model page bounded for a 100,000-layer model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import planner
from planner.units import SECONDS_PER_DAY, duration_str, energy_str

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT_S = 300

logging.getLogger("streamlit").setLevel(logging.ERROR)

# The page's default question (app.py: DEFAULT_* and the sidebar's defaults).
DEFAULT_JOB = dict(model="llama-2-7b", n_tokens=2e12, seq_len=4096, global_batch_size=1024,
                   precision="bf16", deadline_s=30 * SECONDS_PER_DAY)


def open_plan(**radios: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.query_params["page"] = "Plan"
    at.run()
    for key, value in radios.items():
        at.radio(key=key).set_value(value).run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def cards(at: AppTest) -> dict[str, tuple[str, str]]:
    """{'Fastest': (label, value), ...} of the headline cards."""
    out = {}
    for m in at.metric:
        head = m.label.split(":")[0]
        if head in ("Fastest", "Cheapest", "Least energy"):
            out[head] = (m.label, m.value)
    return out


def ranking(at: AppTest):
    """The ranking table as shown (strings for durations and money)."""
    return next(d.value for d in at.dataframe if "rank" in d.value.columns
                and "over" not in d.value.columns)


def best(df, metric: str):
    feasible = df[df["feasible"]].dropna(subset=[metric])
    return feasible.loc[feasible[metric].idxmin()]


@pytest.fixture(scope="module")
def plan() -> AppTest:
    return open_plan()


# ---- headline cards -----------------------------------------------------------------------------
def test_fastest_card_is_the_minimum_time_over_all_feasible_plans(plan):
    assert_clean(plan)
    by_time = planner.rank(planner.TrainingJob(**DEFAULT_JOB), objective="time")
    fastest = best(by_time, "time_s")
    label, value = cards(plan)["Fastest"]
    assert value.split(" · ")[0] == duration_str(fastest["time_s"])
    assert label.startswith(f"Fastest: {int(fastest['n_devices'])} × ")
    # no feasible plan of any device is faster than the card
    assert (by_time[by_time["feasible"]]["time_s"] >= fastest["time_s"]).all()


def test_cheapest_card_shows_its_time_beside_the_cost(plan):
    by_cost = planner.rank(planner.TrainingJob(**DEFAULT_JOB), objective="cost")
    cheapest = best(by_cost, "cost_usd")
    money, time = cards(plan)["Cheapest"][1].split(" · ")
    assert money.startswith("$") and time == duration_str(cheapest["time_s"])


def test_least_energy_card_is_the_minimum_energy(plan):
    by_energy = planner.rank(planner.TrainingJob(**DEFAULT_JOB), objective="energy")
    least = best(by_energy, "energy_j")
    energy, time = cards(plan)["Least energy"][1].split(" · ")
    assert energy == energy_str(least["energy_j"]) and time == duration_str(least["time_s"])


def test_an_impossible_deadline_names_the_deadline():
    at = open_plan()
    at.number_input(key="plan_deadline_d").set_value(0.01).run()  # 14.4 minutes
    assert_clean(at)
    assert not cards(at)
    text = " ".join(w.value for w in at.warning)
    assert "deadline" in text and "14.4 min" in text


def test_job_warnings_are_shown_beside_the_result():
    at = open_plan()
    at.number_input(key="seq_len_llama-2-7b").set_value(8192).run()  # trained on 4,096
    assert not at.exception
    text = " ".join(w.value for w in at.warning)
    assert "seq_len" in text and "4,096" in text


def test_no_deadline_shows_time_beside_cost():
    at = open_plan()
    at.number_input(key="plan_deadline_d").set_value(0.0).run()
    assert_clean(at)
    assert not any("within" in s.value for s in at.subheader)
    money, time = cards(at)["Cheapest"][1].split(" · ")
    assert money.startswith("$") and time[-1] in "hdy"


# ---- readable tables ----------------------------------------------------------------------------
def test_ranking_table_is_readable_and_the_csv_keeps_si(plan):
    table = ranking(plan)
    feasible = table[table["feasible"]]
    assert feasible["time_s"].str.match(r"^[\d.]+ (h|d|y)$").all()  # "15.2 d", not 1313280.0
    priced = feasible[feasible["cost_usd"] != ""]
    assert priced["cost_usd"].str.match(r"^\$[\d.,]+( [kMBT])?$").all()  # "$70.2 k"
    assert not table.isin(["None", "nan", "NaN"]).any().any()
    labels = json.dumps(json.loads(plan.dataframe[0].proto.columns))
    for header in ("Time", "Cost ($)", "Energy (kWh)", "MFU (%)", "Devices"):
        assert f'"{header}"' in labels, header
    csv = next(b for b in plan.get("download_button") if b.key == "plan_ranking_csv")
    assert csv.proto.label.startswith("Download CSV (SI units")


def test_serving_table_labels_costs_per_million_output_tokens():
    at = open_plan(mode="inference")
    assert_clean(at)
    labels = json.loads(at.dataframe[0].proto.columns)
    text = json.dumps(labels)
    assert "Cost ($) per M output tokens" in text and "TTFT p99" in text
    assert cards(at)["Cheapest"][1].split(" · ")[0].endswith("/M tok")


# ---- controls -----------------------------------------------------------------------------------
def test_device_multiselect_restricts_the_rows():
    at = open_plan()
    at.multiselect(key="plan_devices").set_value(["nvidia_h100_sxm", "amd_mi300x"]).run()
    assert_clean(at)
    assert set(ranking(at)["device"]) == {"nvidia_h100_sxm", "amd_mi300x"}


def test_i_have_n_devices_pins_the_count():
    at = open_plan()
    at.multiselect(key="plan_devices").set_value(["nvidia_h100_sxm", "nvidia_a100_80gb_sxm"])
    at.number_input(key="plan_fixed_n_train").set_value(256).run()
    assert_clean(at)
    assert set(ranking(at)["n_devices"]) == {256}
    assert all(label.split(":")[1].startswith(" 256 × ") for label, _ in cards(at).values())


def test_serving_fixed_count_is_a_ceiling():
    at = open_plan(mode="inference")
    at.number_input(key="plan_fixed_n_inference").set_value(4).run()
    assert_clean(at)
    table = ranking(at)
    assert (table[table["feasible"]]["n_devices"] <= 4).all()


def test_tp_pin_reaches_every_row():
    at = open_plan()
    at.multiselect(key="plan_devices").set_value(["nvidia_h100_sxm", "google_tpu_v5p"])
    at.number_input(key="plan_tp_train").set_value(2).run()
    assert_clean(at)
    assert set(ranking(at)["tp"]) == {2}


def test_my_own_price_changes_the_cost():
    at = open_plan()
    at.multiselect(key="plan_devices").set_value(["nvidia_h100_sxm"]).run()
    before = cards(at)["Cheapest"][1]
    at.number_input(key="plan_usd_per_hour").set_value(0.5).run()
    assert_clean(at)
    assert set(ranking(at)["usd_per_device_hour"]) == {"$0.50"}
    assert cards(at)["Cheapest"][1] != before


def test_flat_compute_fraction_changes_the_time():
    at = open_plan()
    at.multiselect(key="plan_devices").set_value(["nvidia_h100_sxm"]).run()
    before = cards(at)["Fastest"][1]
    at.toggle(key="plan_flat").set_value(True).run()
    at.slider(key="plan_compute_frac").set_value(10).run()  # 10 % of peak: slower
    assert_clean(at)
    assert cards(at)["Fastest"][1] != before


# ---- sweep --------------------------------------------------------------------------------------
def test_sweep_panel_draws_cost_and_time_against_the_values():
    at = open_plan()
    at.multiselect(key="plan_devices").set_value(["nvidia_h100_sxm", "amd_mi300x"])
    at.selectbox(key="plan_sweep_over_train").set_value("global_batch_size").run()
    if not any(b.key == "plan_sweep_run" for b in at.button):
        pytest.skip("planner.sweep is not in this version of the library")
    at.text_input(key="plan_sweep_values_train_global_batch_size").set_value("512, 1024").run()
    at.button(key="plan_sweep_run").click().run()
    assert_clean(at)
    swept = next(d.value for d in at.dataframe if "over" in d.value.columns)
    assert set(swept["over"]) == {"global_batch_size"} and set(swept["value"]) == {512, 1024}
    assert set(swept["device"]) == {"nvidia_h100_sxm", "amd_mi300x"}
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert sum("global_batch_size" in spec for spec in charts) >= 2
    assert "plan_sweep_csv" in {b.key for b in at.get("download_button")}


def test_sweep_values_that_are_not_numbers_are_an_error():
    at = open_plan()
    at.text_input(key="plan_sweep_values_train_seq_len").set_value("1024, lots").run()
    assert not at.exception
    assert any(e.value.startswith("values of seq_len") and "lots" in e.value for e in at.error)


# ---- typed values out of range ------------------------------------------------------------------
@pytest.mark.parametrize("key, value, message", [
    ("plan_global_batch", 0, "Global batch (sequences): 0 is not allowed; allowed: at least 1"),
    ("plan_tokens_b", -5.0, "Training tokens (billions): -5 is not allowed; allowed: above 0"),
    ("plan_utilization", 150.0, "Utilization (%): 150 is not allowed; allowed: above 0 and at "
                                "most 100"),
])
def test_an_invalid_typed_value_is_named_not_ignored(key, value, message):
    at = open_plan()
    at.number_input(key=key).set_value(value).run()
    assert not at.exception
    assert [e.value for e in at.error] == [message]
    assert not cards(at)  # nothing computed with the old value


def test_an_invalid_sequence_length_is_named_on_the_model_page():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.query_params["page"] = "Model"
    at.run()
    at.number_input(key="seq_len_llama-2-7b").set_value(-1).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Sequence length (tokens): -1 is not allowed; allowed: at least 1 and at most "
        "9,007,199,254,740,991"]


# ---- bounded rendering --------------------------------------------------------------------------
def test_a_100000_layer_model_is_charted_and_tabled_within_bounds():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.query_params["page"] = "Model"
    at.run()
    at.selectbox(key="model_preset").set_value("mixtral-8x7b").run()
    at.number_input(key="dim_mixtral-8x7b_n_layers").set_value(100_000).run()
    at.toggle(key="model_all_blocks").set_value(True).run()
    assert_clean(at)
    assert at.toggle(key="model_all_blocks").label.startswith(
        "Chart the first 200 of 100,000 blocks")
    assert any("99,800 omitted" in c.value for c in at.caption)
    table = next(d.value for d in at.dataframe if "layer" in d.value.columns)
    # embedding + 200 blocks x 14 rows + 14 summed rows + final norm, LM head, loss
    assert len(table) == 1 + 200 * 14 + 14 + 3
    summed = table[table["layer"] == "blocks.200-99999.attn.q"].iloc[0]
    one = table[table["layer"] == "blocks.0.attn.q"].iloc[0]
    assert summed["fwd_flops"] == pytest.approx(99_800 * one["fwd_flops"])  # alike blocks
    assert all(len(c.proto.spec) < 2_000_000 for c in at.get("plotly_chart"))


def test_rent_or_buy_chart_for_the_chosen_device(plan):
    if not hasattr(planner, "breakeven"):
        pytest.skip("planner.breakeven is not in this version of the library")
    device = plan.selectbox(key="plan_layout_device").value
    assert any(e.label.startswith("Rent or buy ") for e in plan.expander)
    assert any(device in c.proto.spec or "Rent or buy" in c.proto.spec
               for c in plan.get("plotly_chart"))
