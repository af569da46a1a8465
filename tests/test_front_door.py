"""The front door (issue 14, part 9-10): `--json` on every table command, exact parameter
counts, no `nan` on screen, the validate headline, one flash-attention default, Hugging Face
model ids from the local cache, and a quiet `streamlit run app.py`."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import planner
from planner.cli import main
from planner.cli.validate import _summary_lines
from planner.model.layers import DEFAULT_FLASH_ATTENTION
from planner.model.spec import hf_cache_dir, hf_cached_config, model
from planner.report.tables import to_json_text

ROOT = Path(__file__).resolve().parents[1]


def _no_constant(name: str) -> None:
    raise AssertionError(f"JSON holds {name}, which is not JSON")


def _json_and_csv(argv: list[str], tmp_path: Path, capsys) -> tuple[list[dict], pd.DataFrame]:
    """Run `argv --json --csv FILE`; stdout must be one line of JSON (a list of objects with
    the CSV's columns, in order, one per CSV row) and nothing else."""
    path = tmp_path / "table.csv"
    assert main([*argv, "--json", "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1, out[:300]
    rows = json.loads(out, parse_constant=_no_constant)
    csv = pd.read_csv(path)
    assert isinstance(rows, list) and len(rows) == len(csv) > 0
    assert all(list(row) == list(csv.columns) for row in rows)
    frame = pd.DataFrame(rows)
    for col in csv.columns:  # the same SI numbers; missing ones are null
        if pd.api.types.is_numeric_dtype(csv[col]):
            got = pd.to_numeric(frame[col]).astype(float).to_numpy()
            np.testing.assert_allclose(got, csv[col].astype(float).to_numpy(), rtol=1e-12,
                                       equal_nan=True, err_msg=col)
    return rows, csv


# ---- --json: a list of row objects, the CSV's columns, SI units --------------------------------
def test_models_json(tmp_path, capsys):
    rows, _ = _json_and_csv(["models"], tmp_path, capsys)
    by_name = {r["model"]: r for r in rows}
    assert len(rows) == len(planner.list_models())
    # exact integers, as Python ints (numpy int64 converted): tests/test_models.py cites them
    assert by_name["llama-2-7b"]["n_params"] == 6_738_415_616
    assert type(by_name["llama-2-7b"]["n_params"]) is int
    assert by_name["mixtral-8x7b"]["n_active_params"] == 12_879_925_248
    assert by_name["gpt2"]["source_url"].startswith("https://huggingface.co/")


def test_layers_json(tmp_path, capsys):
    rows, _ = _json_and_csv(["layers", "gpt2", "--seq-len", "16"], tmp_path, capsys)
    q = next(r for r in rows if r["layer"] == "blocks.0.attn.q")
    assert q["fwd_flops"] == 2 * 16 * 768 * 768  # 2 · tokens · d_model² = 18,874,368
    assert len({r["block"] for r in rows if r["block"] >= 0}) == 12  # every block, not one


def test_layers_json_encoder_decode_is_null(tmp_path, capsys):
    # an encoder has no decode step: NaN in the table, null in JSON, empty in the CSV
    rows, csv = _json_and_csv(["layers", "bert-base-cased", "--seq-len", "16", "--mode",
                               "inference"], tmp_path, capsys)
    assert all(r["decode_flops"] is None for r in rows)
    assert csv["decode_flops"].isna().all()


def test_seed_json(tmp_path, capsys):
    rows, _ = _json_and_csv(["seed"], tmp_path, capsys)
    rate = next(r for r in rows if r["unit"] == "FLOP/s")
    assert rate["document"] == 2.6e12 and rate["per_layer_model"] is None
    assert rows[0]["recomputed"] == 12 * 768 * 2**24  # 154,618,822,656


def test_catalog_list_json(tmp_path, capsys):
    rows, _ = _json_and_csv(["catalog", "list", "--kind", "tpu"], tmp_path, capsys)
    assert {r["kind"] for r in rows} == {"tpu"}
    v5p = next(r for r in rows if r["id"] == "google_tpu_v5p")
    assert v5p["peak_bf16_flops_per_s"] == 459e12  # SI FLOP/s, not TFLOP/s


def test_catalog_list_json_and_csv_on_stdout_is_refused(capsys):
    assert main(["catalog", "list", "--json", "--csv", "-"]) == 2
    err = capsys.readouterr().err
    assert err == ("planner: error: --csv: '-' (stdout) cannot go with --json, which prints on "
                   "stdout; give --csv a file path\n")


def test_rank_json(tmp_path, capsys):
    rows, _ = _json_and_csv(["rank", "--model", "gpt2", "--train-tokens", "1e9", "--seq-len",
                             "128", "--global-batch", "8", "--device-ids",
                             "nvidia_h100_sxm,nvidia_t4", "--top", "1"], tmp_path, capsys)
    assert [r["rank"] for r in rows] == [1, 2]  # every row, as the CSV, whatever --top
    assert all(isinstance(r["feasible"], bool) and r["time_s"] > 0 for r in rows)


def test_backtest_json(tmp_path, capsys):
    rows, _ = _json_and_csv(["backtest"], tmp_path, capsys)
    llama = next(r for r in rows if r["run_id"] == "llama1_7b" and r["metric"] == "device_hours")
    assert llama["published"] == 82_432  # published A100 hours of LLaMA-1 7B (Touvron et al. 2023)


def test_validate_json(tmp_path, capsys):
    rows, _ = _json_and_csv(["validate", "gpt2", "--layers", "1", "--seq-len", "16",
                             "--batch-size", "1", "--no-timing"], tmp_path, capsys)
    q = next(r for r in rows if r["layer"] == "blocks.0.attn.q")
    # forward 2 · 16 tokens · 768² = 18,874,368 FLOP, measured by FlopCounterMode exactly
    assert q["fwd_flops_analytic"] == q["fwd_flops_measured"] == 18_874_368
    assert q["fwd_flops_rel_err"] == 0


def test_calibrate_json(tmp_path, capsys, monkeypatch):
    from planner.measure import calibration

    monkeypatch.setattr(calibration, "CPU_MATMUL_SIZES", (64, 128))
    monkeypatch.setattr(calibration, "CPU_COPY_SIZES", (1e5, 1e6))
    monkeypatch.setattr(calibration, "CPU_SKINNY_SIZES", (128,))
    monkeypatch.setattr(calibration, "CPU_ATTENTION",
                        dict(seq_lens=(32, 64), head_dim=64, heads=2, tokens=128))
    rows, _ = _json_and_csv(["calibrate", "--repeats", "1"], tmp_path, capsys)
    assert {r["kernel"] for r in rows} == {"gemm", "copy", "attention"}


def test_fits_json_is_one_object_with_the_csv_columns(tmp_path, capsys):
    path = tmp_path / "fit.csv"
    assert main(["fits", "gpt2", "--device", "nvidia_t4", "--prompt-len", "512",
                 "--output-len", "128", "--json", "--csv", str(path)]) == 0
    row = json.loads(capsys.readouterr().out, parse_constant=_no_constant)
    assert list(row) == list(pd.read_csv(path).columns)
    assert row["kv_cache_precision"] is None and row["fits"] is True


def test_json_writer_converts_numpy_and_missing_values():
    df = pd.DataFrame({"n": np.array([1, 2], dtype=np.int64), "x": [np.nan, np.inf],
                       "ok": np.array([True, False]), "name": ["a", None],
                       "when": pd.to_datetime(["2025-01-02", None])})
    assert json.loads(to_json_text(df)) == [
        {"n": 1, "x": None, "ok": True, "name": "a", "when": "2025-01-02T00:00:00"},
        {"n": 2, "x": None, "ok": False, "name": None, "when": None}]


# ---- screens: exact counts, no nan --------------------------------------------------------------
def test_models_screen_shows_exact_parameter_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for count in ("6,738,415,616", "68,976,648,192", "46,702,792,704", "12,879,925,248",
                  "108,310,272"):
        assert count in out
    assert " M " not in out and " G " not in out  # no 4-significant-digit forms


_MISSING = re.compile(r"\b(nan|NaN|None|<NA>|NaT|null)\b")


@pytest.mark.parametrize("argv", [
    ["seed"],
    ["models"],
    ["layers", "bert-base-cased", "--seq-len", "16", "--mode", "inference"],
    ["catalog", "list", "--kind", "fpga"],
    ["rank", "--model", "llama-2-70b", "--serve", "--prompt-len", "128", "--output-len", "64",
     "--devices", "1", "--device-ids", "nvidia_t4"],
])
def test_screens_show_no_nan(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert not _MISSING.search(out), _MISSING.search(out)


def test_seed_shows_a_dash_where_the_document_has_no_value(capsys):
    assert main(["seed"]) == 0
    out = capsys.readouterr().out
    assert "per-layer model: — FLOP/s" in out  # the GPU rate has no model counterpart
    assert "document: —   recomputed: —   per-layer model: 2.834e+15 FLOP" in out


# ---- validate: the headline is the error of the totals -------------------------------------------
def _summary(mode: str, **values: float) -> dict:
    qs = (["fwd_flops", "bwd_flops", "param_bytes", "grad_bytes", "optimizer_bytes",
           "activation_bytes"] if mode == "train"
          else ["fwd_flops", "decode_flops", "param_bytes", "kv_cache_bytes"])
    s: dict = {"device": "cpu", "dtype": "fp32"}
    for q in qs:
        s |= {f"{q}_analytic_total": 1e6, f"{q}_measured_total": 1e6, f"{q}_max_abs_rel_err": 0.0}
    return s | values


def _headline_row(lines: list[str], quantity: str) -> list[str]:
    return next(line.split() for line in lines if line.split()[:1] == [quantity])


def test_validate_headline_is_0_percent_for_equal_totals():
    # The run of the README (gpt2, 2 blocks, 128 tokens, batch 2): attn.context's row holds
    # 786 kB analytic, 2.36 MB measured (+200 %: torch saves the probabilities with the next
    # op), yet both totals are 86.3 MB. The total is the headline; the worst activation
    # figure is per block (+0.02 %), where the rows of a block are summed.
    s = _summary("train", activation_bytes_analytic_total=86_335_488.0,
                 activation_bytes_measured_total=86_335_488.0,
                 activation_bytes_max_abs_rel_err=2.0,
                 activation_bytes_block_max_abs_rel_err=0.0002)
    lines = _summary_lines(s, "train")
    assert _headline_row(lines, "activation_bytes") == [
        "activation_bytes", "0%", "+0.02%*", "86.3", "MB", "86.3", "MB"]
    assert _headline_row(lines, "fwd_flops")[1:3] == ["0%", "0%"]
    assert not any("200" in line for line in lines)


def test_validate_headline_totals_of_zero_say_so():
    s = _summary("inference", kv_cache_bytes_analytic_total=0.0,
                 kv_cache_bytes_measured_total=0.0,
                 decode_flops_analytic_total=0.0, decode_flops_measured_total=5.0,
                 decode_flops_max_abs_rel_err=math.inf,
                 param_bytes_measured_total=1.01e6, param_bytes_max_abs_rel_err=0.05)
    lines = _summary_lines(s, "inference")
    assert _headline_row(lines, "kv_cache_bytes")[1:3] == ["both", "0"]
    assert _headline_row(lines, "decode_flops")[1:3] == ["analytic", "0"]
    assert _headline_row(lines, "param_bytes")[1:3] == ["+1.00%", "+5.00%"]  # 1.01e6 / 1e6 - 1


# ---- one flash-attention default -----------------------------------------------------------------
def _layer_rows(argv: list[str], capsys) -> dict[str, dict]:
    assert main([*argv, "--json"]) == 0
    return {r["layer"]: r for r in json.loads(capsys.readouterr().out)}


def test_layers_defaults_to_flash_attention_like_rank(capsys):
    assert DEFAULT_FLASH_ATTENTION is True
    assert planner.TrainingJob.model_fields["flash_attention"].default is DEFAULT_FLASH_ATTENTION
    on = _layer_rows(["layers", "gpt2", "--seq-len", "16"], capsys)
    off = _layer_rows(["layers", "gpt2", "--seq-len", "16", "--no-flash-attention"], capsys)
    # eager: softmax output (2 B) + dropout mask (1 B) + dropout output (2 B) per score,
    # 5 · heads · s² = 5 · 12 · 16² = 15,360 B (Korthikanti et al. 2022, 5as²b); flash: none
    assert off["blocks.0.attn.softmax"]["activation_bytes"] == 15_360
    assert on["blocks.0.attn.softmax"]["activation_bytes"] == 0
    # flash keeps an fp32 log-sum-exp per query row instead: 4 B · 12 heads · 16 = 768 B
    assert (on["blocks.0.attn.context"]["activation_bytes"]
            - off["blocks.0.attn.context"]["activation_bytes"]) == 768


def test_layers_screen_says_which_attention(capsys):
    assert main(["layers", "gpt2", "--seq-len", "16"]) == 0
    assert "flash attention on" in capsys.readouterr().out.splitlines()[0]
    assert main(["layers", "gpt2", "--seq-len", "16", "--no-flash-attention"]) == 0
    assert "flash attention off" in capsys.readouterr().out.splitlines()[0]


# ---- Hugging Face model ids from the local cache -------------------------------------------------
TINY_GPT2 = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100,
             "n_positions": 32}
# wte 100·64 + wpe 32·64 + 2 blocks × (2 LN 2·128 + qkv 64·192+192 + proj 64·64+64
# + fc 64·256+256 + proj 256·64+64 = 49,984) + ln_f 128, head tied:
# 6,400 + 2,048 + 99,968 + 128 = 108,544
TINY_GPT2_PARAMS = 108_544


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """An empty Hugging Face cache under tmp_path/hf (HF_HOME), no other cache variable."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path / "hf"


def _cache(hub: Path, repo: str, commit: str, config: dict, *, main_ref: bool = False) -> Path:
    folder = hub / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if main_ref:
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot / "config.json"


def test_model_id_from_the_local_cache(hf_home):
    path = _cache(hf_home / "hub", "acme/tiny", "abc", TINY_GPT2)
    assert hf_cache_dir() == hf_home / "hub"
    assert hf_cached_config("acme/tiny") == path
    spec = model("acme/tiny")
    assert spec.name == "acme/tiny" and spec.n_params == TINY_GPT2_PARAMS
    assert spec.source_url == "https://huggingface.co/acme/tiny/blob/abc/config.json"


def test_model_id_takes_the_snapshot_refs_main_names(hf_home):
    _cache(hf_home / "hub", "acme/tiny", "old", {**TINY_GPT2, "n_layer": 1})
    _cache(hf_home / "hub", "acme/tiny", "fed", TINY_GPT2, main_ref=True)
    assert model("acme/tiny").n_layers == 2


def test_hf_hub_cache_wins_over_hf_home(hf_home, tmp_path, monkeypatch):
    _cache(tmp_path / "hub2", "acme/tiny", "abc", {**TINY_GPT2, "n_layer": 3})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub2"))
    assert model("acme/tiny").n_layers == 3


def test_cli_takes_a_cached_model_id(hf_home, capsys):
    _cache(hf_home / "hub", "acme/tiny", "abc", TINY_GPT2)
    assert main(["layers", "acme/tiny", "--seq-len", "16"]) == 0
    assert capsys.readouterr().out.startswith(f"acme/tiny: {TINY_GPT2_PARAMS:,} parameters")


def test_model_id_not_cached_is_one_line(hf_home, capsys):
    message = (f"model: meta-llama/Llama-2-7b-hf is not in the local Hugging Face cache "
               f"({hf_home / 'hub'}) and is not a preset; download its config.json (`hf download "
               "meta-llama/Llama-2-7b-hf config.json`) or give a config.json path")
    with pytest.raises(ValueError) as err:
        model("meta-llama/Llama-2-7b-hf")
    assert str(err.value) == message
    assert main(["layers", "meta-llama/Llama-2-7b-hf"]) == 2
    assert capsys.readouterr().err == f"planner: error: {message}\n"


def test_default_cache_is_shown_under_home(tmp_path, monkeypatch):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"cache \(~/\.cache/huggingface/hub\) and"):
        model("acme/missing")


def test_model_id_of_an_unsupported_type_names_the_id_and_the_key(hf_home):
    _cache(hf_home / "hub", "acme/bloomy", "abc", {"model_type": "bloom"})
    with pytest.raises(ValueError, match=r"^model: acme/bloomy \(config.json in the Hugging Face "
                                         r"cache\): model_type: 'bloom' is not supported; "
                                         r"supported: bert, gpt2, llama"):
        model("acme/bloomy")


def test_a_name_that_is_no_model_id_is_still_an_unknown_preset(hf_home):
    with pytest.raises(ValueError, match=r"^model: unknown preset 'acme/--x'"):
        model("acme/--x")


# ---- a quiet `streamlit run app.py` -------------------------------------------------------------
def test_streamlit_config_sends_no_statistics_and_does_not_watch_the_venv():
    from streamlit import config

    path = ROOT / ".streamlit" / "config.toml"
    settings = tomllib.loads(path.read_text(encoding="utf-8"))
    assert settings["browser"]["gatherUsageStats"] is False
    # poll: the app's own files only (no inotify watch on every folder, .venv included)
    assert settings["server"]["fileWatcherType"] == "poll"
    assert ".venv" in settings["server"]["folderWatchBlacklist"]
    options = config.get_config_options()
    for section, values in settings.items():
        for key in values:
            assert f"{section}.{key}" in options  # a key the installed streamlit knows


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs git and a checkout")
def test_streamlit_config_is_not_git_ignored():
    result = subprocess.run(["git", "check-ignore", "-q", ".streamlit/config.toml"], cwd=ROOT,
                            check=False)
    assert result.returncode == 1  # 1: not ignored


def test_money_reads_as_people_write_it():
    from planner.units import money_str

    # the examples: $1.15 M, not 1150000; blank for a missing price
    assert money_str(1_150_000) == "$1.15 M"
    assert money_str(196_000) == "$196 k"
    assert money_str(2_345) == "$2,345"
    assert money_str(0.93) == "$0.93"
    assert money_str(0.0042) == "$0.0042"
    assert money_str(None) == money_str(float("nan")) == ""
