"""Bad input never gets through: catalog files (planner.hardware.catalog / kernels) and the
Streamlit app's uploads. Each bad input gives one line naming the file, entry and field (or one
st.error in the app); each has a valid counterpart that loads with exact numbers."""

from __future__ import annotations

import datetime as dt
import json
import logging
import textwrap
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import planner
from planner.errors import ECHO_MAX_CHARS
from planner.hardware import catalog as catalog_module
from planner.hardware.catalog import (
    MAX_CATALOG_DEVICES,
    MAX_CATALOG_FILE_BYTES,
    Catalog,
    Device,
    Price,
    check_catalog_entries,
    decode_catalog_bytes,
    load_catalog,
    validate_catalog_file,
)
from planner.hardware.kernels import read_kernel_entries

APP = str(Path(__file__).resolve().parents[1] / "app.py")
logging.getLogger("streamlit").setLevel(logging.ERROR)

PRICE_FILE = """\
[[device]]
id = "nvidia_t4"

[[device.prices]]
kind = "cloud"
provider = "Acme Cloud"
basis = "test"
contract = "on-demand"
usd_per_hour = 0.25
date = "{date}"
source = "tests/test_boundary_catalog_app.py"
"""

NEW_DEVICE = """\
[[device]]
id = "{id}"
vendor = "Acme"
name = "{name}"
kind = "gpu"
launch_year = 2025
memory_bytes = "96 GB"
price_note = "test device"
checked_on = "2026-01-15"
sources = ["tests"]

[device.peak_flops_per_s]
bf16 = "500 TFLOP/s"
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def write(tmp_path: Path, text: str | bytes, name: str = "user.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def one_line_error(call, *args) -> str:
    """The message of the ValueError `call(*args)` raises; it must be one line."""
    with pytest.raises(ValueError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    return message


# ---- encoding, nesting, size ------------------------------------------------------------------
def test_file_with_utf8_bom_loads_like_without(tmp_path: Path) -> None:
    text = PRICE_FILE.format(date="2026-11-20")
    bom = write(tmp_path, b"\xef\xbb\xbf" + text.encode(), "bom.toml")
    price = load_catalog(bom).get("nvidia_t4").cloud_price(provider="Acme Cloud")
    assert (price.usd_per_hour, price.date) == (0.25, "2026-11-20")
    assert [d.id for d in validate_catalog_file(bom)] == ["nvidia_t4"]
    assert list(check_catalog_entries(bom)["status"]) == ["changes a built-in device"]
    assert read_kernel_entries(bom) == []


@pytest.mark.parametrize("body", ["a = " + "[" * 100_000, "a = " + "{b = " * 100_000,
                                  "[[device]]\nid = 'nvidia_t4'\nnotes = " + "[" * 5_000])
def test_deeply_nested_toml_is_one_line_naming_the_file(tmp_path: Path, body: str) -> None:
    path = write(tmp_path, body.encode(), "deep.toml")
    expected = f"{path}: invalid TOML: arrays or tables nested too deeply for the parser"
    assert one_line_error(load_catalog, path).startswith(expected)
    assert one_line_error(validate_catalog_file, path).startswith(expected)
    rows = check_catalog_entries(path)
    assert list(rows["entry"]) == [0] and rows["message"].iloc[0].startswith(expected)
    assert one_line_error(read_kernel_entries, path).startswith(
        "deep.toml: invalid TOML: arrays or tables nested too deeply")


def test_nesting_the_parser_allows_is_a_field_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[[device]]\nid = 'nvidia_t4'\nnotes = " + "[" * 300 + "]" * 300)
    assert one_line_error(load_catalog, path) == (
        f"{path}: entry 'nvidia_t4': notes: Input should be a valid string")


def test_non_utf8_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, PRICE_FILE.format(date="2026-11-20").replace(
        "Acme Cloud", "Caf\xe9").encode("latin-1"), "latin.toml")
    message = one_line_error(load_catalog, path)
    assert message.startswith(f"{path}: not UTF-8 text (invalid continuation byte at byte ")
    assert message.endswith("save the file as UTF-8")
    assert check_catalog_entries(path)["message"].iloc[0] == message
    assert "latin.toml: not UTF-8 text" in one_line_error(read_kernel_entries, path)


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    assert MAX_CATALOG_FILE_BYTES == 5_000_000
    path = tmp_path / "huge.toml"
    with path.open("wb") as f:  # 50 MB of comments: parsing it took 12 s
        f.write(b"# " + b"x" * 50_000_000 + b"\n")
    start = time.perf_counter()
    message = one_line_error(load_catalog, path)
    assert time.perf_counter() - start < 1.0
    assert message == (f"{path}: file is 50,000,003 bytes; a catalog file is at most "
                       "5,000,000 bytes")
    with pytest.raises(ValueError, match=r"x\.toml: file is 5,000,001 bytes; a catalog file "
                                         r"is at most 5,000,000 bytes"):
        decode_catalog_bytes(b" " * 5_000_001, "x.toml")
    assert decode_catalog_bytes(b"\xef\xbb\xbfa = 1", "x.toml") == "a = 1"


def test_catalog_device_count_is_bounded(tmp_path: Path, monkeypatch) -> None:
    assert MAX_CATALOG_DEVICES == 10_000
    many = write(tmp_path, "".join(f"[[device]]\nid = 'd{i}'\n" for i in range(10_001)))
    assert one_line_error(load_catalog, many) == (
        f"{many}: 10,001 [[device]] entries; a catalog holds at most 10,000 devices")
    # the bound counts the built-in devices too
    n_builtin = len(load_catalog())
    monkeypatch.setattr(catalog_module, "MAX_CATALOG_DEVICES", n_builtin + 1)
    two = write(tmp_path, NEW_DEVICE.format(id="acme_a", name="A")
                + NEW_DEVICE.format(id="acme_b", name="B"), "two.toml")
    assert one_line_error(load_catalog, two) == (
        f"{two}: entry 'acme_b': more than {n_builtin + 1:,} devices in the catalog (built-in "
        "and user files together)")
    one = write(tmp_path, NEW_DEVICE.format(id="acme_a", name="A"), "one.toml")
    assert len(load_catalog(one)) == n_builtin + 1


# ---- dates ------------------------------------------------------------------------------------
def test_price_dated_in_the_future_is_refused(tmp_path: Path) -> None:
    today = dt.date.today()
    tomorrow = (today + dt.timedelta(days=3)).isoformat()  # beyond the 2-day slack
    path = write(tmp_path, PRICE_FILE.format(date=tomorrow))
    assert one_line_error(load_catalog, path) == (
        f"{path}: entry 'nvidia_t4': prices[0].date: date '{tomorrow}' is in the future "
        f"(today is {today.isoformat()}); a price is dated when it was observed")
    next_year = str(today.year + 1)
    with pytest.raises(ValueError, match=f"date '{next_year}' is in the future"):
        Price(kind="cloud", provider="X", basis="b", contract="on-demand", usd_per_hour=1.0,
              date=next_year, source="s")
    # today's date and this month are fine, and the price is the one used
    dated_today = write(tmp_path, PRICE_FILE.format(date=today.isoformat()), "today.toml")
    price = load_catalog(dated_today).get("nvidia_t4").cloud_price(provider="Acme Cloud")
    assert (price.usd_per_hour, price.date) == (0.25, today.isoformat())
    this_month = write(tmp_path, PRICE_FILE.format(date=today.isoformat()[:7]), "month.toml")
    assert load_catalog(this_month).get("nvidia_t4").cloud_price(
        provider="Acme Cloud").date == today.isoformat()[:7]


# ---- names and ids ----------------------------------------------------------------------------
def test_unknown_device_is_clipped_and_still_suggested(catalog: Catalog) -> None:
    message = one_line_error(catalog.get, "nvidia_h100_sxmm" + "x" * 5_000)
    assert message.startswith("unknown device 'nvidia_h100_sxmmxxx")
    assert "…" in message and len(message) < 200
    assert one_line_error(catalog.get, "nvidia_h100_sxmm").startswith(
        "unknown device 'nvidia_h100_sxmm'; did you mean nvidia_h100_sxm")
    with pytest.raises(ValueError) as info:
        catalog.filter(kinds=["npu" * 2_000])
    assert str(info.value).startswith("unknown kind 'npunpu") and len(str(info.value)) < 200
    with pytest.raises(ValueError) as info:
        catalog.get("nvidia_t4").peak("fp" * 2_000)
    assert len(str(info.value)) < 200


def test_long_ids_and_keys_in_a_file_are_clipped(tmp_path: Path) -> None:
    long_id = "acme_" + "x" * 5_000
    path = write(tmp_path, f'[[device]]\nid = "{long_id}"\nvendor = "Acme"\n')
    message = one_line_error(load_catalog, path)
    clipped = "'acme_" + "x" * (ECHO_MAX_CHARS - 7) + "…"  # repr cut to 60 characters
    assert message.startswith(f"{path}: entry {clipped}: name: required field is missing (no "
                              "device has this id, so the entry must be complete; missing: "
                              "name, kind, launch_year")
    assert len(message) < len(str(path)) + 250
    long_key = write(tmp_path, '[[device]]\nid = "nvidia_t4"\n' + "k" * 5_000 + " = 1\n",
                     "key.toml")
    message = one_line_error(load_catalog, long_key)
    clipped = "'" + "k" * (ECHO_MAX_CHARS - 2) + "…"
    assert message.startswith(f"{long_key}: entry 'nvidia_t4': {clipped}: unknown field; "
                              "allowed: id, vendor, name")
    kernels = write(tmp_path, '[[kernels]]\ndevices = ["' + "z" * 5_000 + '"]\n'
                    'checked_on = "2026-01-01"\n', "kernels.toml")
    message = one_line_error(read_kernel_entries, kernels)
    assert message.startswith("kernels.toml: [[kernels]] ['zzz") and len(message) < 300


def test_id_must_be_short_and_of_the_safe_charset(tmp_path: Path) -> None:
    path = write(tmp_path, NEW_DEVICE.format(id="a" * 65, name="A"))
    assert one_line_error(load_catalog, path).endswith(
        ": id: 65 characters; an id is at most 64")
    crlf = write(tmp_path, NEW_DEVICE.format(id="acme_x1\\r\\nfake", name="A"), "crlf.toml")
    assert "entry 'acme_x1\\r\\nfake': id: String should match pattern " \
        "'^[a-z0-9][a-z0-9_]*$'" in one_line_error(load_catalog, crlf)
    ok = write(tmp_path, NEW_DEVICE.format(id="a" * 64, name="A"), "ok.toml")
    assert load_catalog(ok).get("a" * 64).memory_bytes == 96e9


@pytest.mark.parametrize(("name", "shown"), [("H100\\r\\nfake", "'\\r' at position 4"),
                                            ("H100\\u0000", "'\\x00' at position 4"),
                                            ("tab\\there", "'\\t' at position 3")])
def test_name_with_control_characters_is_refused(tmp_path: Path, name: str, shown: str
                                                 ) -> None:
    path = write(tmp_path, NEW_DEVICE.format(id="acme_x1", name=name))
    assert one_line_error(load_catalog, path) == (
        f"{path}: entry 'acme_x1': name: control character {shown}; a name is one line of "
        "printable text")


def test_name_may_hold_any_printable_text(tmp_path: Path) -> None:
    path = write(tmp_path, NEW_DEVICE.format(id="acme_x1", name="Ascend 910B – ½ µ “Ω”"))
    device = load_catalog(path).get("acme_x1")
    assert device.name == "Ascend 910B – ½ µ “Ω”" and device.peak("bf16") == 5e14


def test_provider_and_vendor_are_one_line(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match=r"control character '\\n' at position 1"):
        Price(kind="cloud", provider="X\nY", basis="b", contract="on-demand",
              usd_per_hour=1.0, date="2026-01", source="s")
    t4 = catalog.get("nvidia_t4").model_dump()
    with pytest.raises(ValueError, match=r"vendor\n.*control character '\\r' at position 6"):
        Device.model_validate({**t4, "vendor": "NVIDIA\r"})


def test_kernel_sizes_too_large_for_a_float_are_one_line() -> None:
    message = one_line_error(planner.gemm_flops_per_s, "nvidia_h100_sxm", 10**400, 8, 8)
    assert message.startswith("m: expected a number, got 1000") and "…" in message
    assert len(message) <= len("m: expected a number, got ") + ECHO_MAX_CHARS
    assert planner.gemm_flops_per_s("nvidia_h100_sxm", 8192, 8192, 8192) > 1e14


# ---- the app ----------------------------------------------------------------------------------
TINY_GPT2 = dict(model_type="gpt2", n_layer=2, n_embd=128, n_head=4, vocab_size=1000,
                 n_positions=256, _name_or_path="tiny-gpt2")


def app_with_config(content: bytes) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = "Model"
    at.run()
    at.radio(key="model_source").set_value("Upload config.json").run()
    at.file_uploader(key="model_upload").set_value(
        ("config.json", content, "application/json")).run()
    return at


def only_error(at: AppTest) -> str:
    assert not at.exception, [e.message for e in at.exception]
    messages = [e.value for e in at.error]
    assert len(messages) == 1, messages
    message = messages[0]
    assert "\n" not in message and "Value error" not in message
    assert "Unexpected error" not in message
    return message


@pytest.mark.parametrize(("content", "expected"), [
    (json.dumps({**TINY_GPT2, "vocab_size": 10**30}).encode(), "vocab_size: "),
    (b"[1, 2, 3]", "config.json: expected a JSON object {...} of config keys, got an array"),
    (b'"gpt2"', "config.json: expected a JSON object {...} of config keys, got a string"),
    (b"[" * 100_000, "config.json: not readable JSON: nested too deeply"),
    (b'{"a": ' + b"[" * 100_000, "config.json: not readable JSON: nested too deeply"),
    (b'{"model_type": "gpt2", "n_layer": 2\xff}', "config.json: not UTF-8 text (invalid start "
                                                  "byte at byte 35)"),
    (b'{"vocab_size": ' + b"9" * 5_000 + b"}", "config.json: not valid JSON: Exceeds the limit "
                                               "(4300 digits)"),
    (b" " * 10_000_001, "config.json: 10,000,001 bytes; a config.json is at most 10,000,000 bytes"),
], ids=["vocab-1e30", "array", "string", "deep", "deep-in-object", "not-utf8", "long-int",
        "too-big"])
def test_bad_config_json_is_one_error_and_the_app_keeps_working(content: bytes,
                                                                expected: str) -> None:
    at = app_with_config(content)
    message = only_error(at)
    assert message.startswith(expected), message
    assert any("Choose a model in the sidebar" in w.value for w in at.warning)


def test_after_a_bad_config_other_pages_still_work() -> None:
    at = app_with_config(b"[" * 100_000)
    at.query_params["page"] = "Catalog"
    at.session_state["page"] = "Catalog"
    at.run()
    assert only_error(at).startswith("config.json: not readable JSON")
    assert len(at.dataframe[0].value) >= 10  # the catalog table is there
    # and a good config replaces the error
    at.file_uploader(key="model_upload").set_value(
        ("config.json", json.dumps(TINY_GPT2).encode(), "application/json")).run()
    assert not at.exception and not at.error


def test_validation_errors_are_shown_without_pydantic_prefixes() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = "Model"
    at.run()
    at.number_input(key="dim_llama-2-7b_n_heads").set_value(7).run()
    assert only_error(at) == ("n_heads: 7 heads do not divide d_model=4096; choose n_heads "
                              "dividing d_model or give head_dim explicitly")


def app_with_catalog(content: bytes, name: str = "mine.toml") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = "Catalog"
    at.run()
    at.file_uploader(key="catalog_upload").set_value((name, content, "text/plain"))
    return at.run()


@pytest.mark.parametrize(("content", "expected"), [
    (b"a = " + b"[" * 100_000, "mine.toml: invalid TOML: arrays or tables nested too deeply "
                               "for the parser"),
    (PRICE_FILE.format(date="2026-11-20").replace("Acme", "Caf\xe9").encode("latin-1"),
     "mine.toml: not UTF-8 text (invalid continuation byte at byte "),
    (b" " * (MAX_CATALOG_FILE_BYTES + 1), "mine.toml: file is 5,000,001 bytes; a catalog file "
                                          "is at most 5,000,000 bytes"),
], ids=["deep", "not-utf8", "too-big"])
def test_bad_catalog_upload_is_one_error(content: bytes, expected: str) -> None:
    at = app_with_catalog(content)
    message = only_error(at)
    assert message.startswith(expected), message
    assert len(at.dataframe[0].value) >= 10  # the built-in catalog is still shown


def test_catalog_upload_with_a_future_price_is_one_error_naming_the_entry() -> None:
    tomorrow = (dt.date.today() + dt.timedelta(days=3)).isoformat()  # beyond the slack
    at = app_with_catalog(PRICE_FILE.format(date=tomorrow).encode())
    assert only_error(at).startswith("mine.toml: 1 problem(s); the file is not used")
    check = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert list(check["status"]) == ["error"]
    assert f"entry 'nvidia_t4': prices[0].date: date '{tomorrow}' is in the future" in \
        check["message"].iloc[0]


def test_catalog_upload_with_a_bom_is_used() -> None:
    at = app_with_catalog(b"\xef\xbb\xbf" + PRICE_FILE.format(date="2026-11-20").encode())
    assert not at.exception and not at.error
    assert at.success and "mine.toml: 1 entry valid and in use" in at.success[0].value
    prices = next(d.value for d in at.dataframe if "provider" in d.value.columns)
    acme = prices[prices["provider"] == "Acme Cloud"].iloc[0]
    assert (acme["device"], acme["usd_per_hour"], acme["date"]) == ("nvidia_t4", 0.25,
                                                                    "2026-11-20")


def test_long_unknown_field_of_a_new_device_is_clipped(tmp_path: Path) -> None:
    path = write(tmp_path, NEW_DEVICE.format(id="acme_x1", name="A").replace(
        'vendor = "Acme"', 'vendor = "Acme"\n' + "f" * 5_000 + " = 1"))
    clipped = "'" + "f" * (ECHO_MAX_CHARS - 2) + "…"
    assert one_line_error(load_catalog, path) == (
        f"{path}: entry 'acme_x1': {clipped}: unknown field; allowed: "
        f"{', '.join(catalog_module.DEVICE_FIELDS)}")
