"""planner.fits and `planner fits`: does a model fit on a GPU for serving?

Hand numbers: Llama-2-7B has 6,738,415,616 parameters, 32 layers, 32 heads of 128 (no GQA);
Llama-2-70B 68,976,648,192 parameters, 80 layers, 8 KV heads of 128 (Touvron et al. 2023;
the counts of tests/test_models.py). The H100 SXM has 80 GB, of which the planner uses 90%
(usable_memory_frac, docs/planning.md A2): 72 GB.
"""

from __future__ import annotations

import json
import math

import pytest

import planner
from planner.cli import main
from planner.errors import InputError
from planner.plan.fits import FitResult, fits

H100 = "nvidia_h100_sxm"
LLAMA_2_7B_PARAMS = 6_738_415_616
LLAMA_2_70B_PARAMS = 68_976_648_192


@pytest.fixture(scope="module")
def llama7b_h100() -> FitResult:
    return fits("llama-2-7b", H100)


def serving_row(model: str, batch: int, **fields):
    """The search row of one pinned candidate: `batch` sequences of 1,024 + 256 tokens
    (fits' defaults) on one H100."""
    single = {k: 1 for k in ("pp", "ep") if k in planner.InferenceJob.model_fields}
    job = planner.InferenceJob(model=model, prompt_len=1024, output_len=256, tp=1,
                               batch_size=batch, concurrent_requests=batch,
                               max_batch_size=batch, **single, **fields)
    rows = planner.search(job, devices=[H100])
    assert len(rows) == 1  # everything pinned: one candidate
    return rows.iloc[0]


# ---- the API ------------------------------------------------------------------------------------
def test_package_exports_fits():
    assert planner.fits is fits and planner.FitResult is FitResult


def test_llama_2_7b_bf16_fits_on_one_h100(llama7b_h100):
    r = llama7b_h100
    assert r.fits and r.reason == ""
    assert (r.device, r.n_devices, r.tp, r.pp) == (H100, 1, 1, 1)
    assert r.weight_bytes == 2 * 6_738_415_616  # bf16: 2 bytes × every parameter on one device
    assert r.weight_bytes == 13_476_831_232
    assert r.usable_memory_bytes == pytest.approx(0.9 * 80e9)  # 72 GB
    # K and V, 32 layers, 32 heads × 128, 2 bytes: 2 · 32 · 4096 · 2 = 524,288 B per token
    assert r.kv_bytes_per_token == 524_288
    # one 4,096-token sequence (the model's max_seq_len) needs 4096 · 524,288 = 2.1 GB of KV
    # beside the 13.5 GB of weights: far below 72 GB, so the whole context fits
    assert r.max_context_len == 4096
    # 72e9 − 13,476,831,232 = 58,523,168,768 B for KV. Each sequence holds at least its
    # 1,024-token prompt (536,870,912 B): at most 109.01 -> 109 sequences; at most its full
    # 1,280 tokens plus a 16-token page (1,296 · 524,288 = 679,477,248 B): at least 86.13 -> 86
    assert 86 <= r.max_batch_size <= 109
    assert r.tokens_per_s > 0 and r.tpot_s > 0 and r.ttft_s > 0
    assert r.tokens_per_s_per_user == pytest.approx(1 / r.tpot_s)


def test_speeds_are_the_search_rows_at_the_max_batch(llama7b_h100):
    r = llama7b_h100
    row = serving_row("llama-2-7b", r.max_batch_size)
    assert bool(row["feasible"])
    assert r.tpot_s == pytest.approx(float(row["tpot_s"]))
    assert r.ttft_s == pytest.approx(float(row["ttft_s"]))
    assert r.tokens_per_s == pytest.approx(float(row["tokens_per_s_per_device"]))  # 1 device


@pytest.mark.parametrize("model, precision", [("llama-2-7b", "bf16"), ("llama-2-70b", "int4")])
def test_one_more_sequence_than_max_batch_does_not_fit(model, precision):
    r = fits(model, H100, precision=precision)
    assert r.fits and r.max_batch_size >= 1
    assert bool(serving_row(model, r.max_batch_size, precision=precision)["feasible"])
    over = serving_row(model, r.max_batch_size + 1, precision=precision)
    assert not bool(over["feasible"])
    assert str(over["reason"]) == "does not fit in memory"


def test_llama_2_70b_bf16_does_not_fit_on_one_h100():
    r = fits("llama-2-70b", H100)
    assert not r.fits
    assert r.weight_bytes == 2 * 68_976_648_192  # 137,953,296,384 B = 138.0 GB
    # the reason names the weights and both numbers: 138.0 GB needed, 0.9 × 80 = 72.0 GB usable
    assert r.reason.startswith("weights need 138.0 GB per device, 72.0 GB usable on "
                               "1 × NVIDIA H100")
    assert "\n" not in r.reason
    assert (r.max_batch_size, r.max_context_len) == (0, 0)
    assert math.isnan(r.tokens_per_s) and math.isnan(r.tpot_s)


def test_llama_2_70b_int4_fits_on_one_h100():
    r = fits("llama-2-70b", H100, precision="int4")
    assert r.fits and r.reason == ""
    # int4 matmul weights are half a byte: 68,976,648,192 / 2 = 34.5 GB is a floor (norms and
    # embeddings stay 16-bit), the bf16 138 GB a ceiling
    assert LLAMA_2_70B_PARAMS / 2 <= r.weight_bytes < 72e9
    assert r.max_batch_size >= 1 and r.max_context_len == 4096


def test_llama_2_70b_fp16_kv_bytes_per_token():
    r = fits("llama-2-70b", H100, precision="fp16")
    assert r.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2  # K and V · layers · KV heads · d · B
    assert r.kv_bytes_per_token == 327_680


def test_max_batch_is_monotone_in_tokens_per_sequence():
    # fewer tokens per sequence -> at least as many sequences fit
    lengths = [(2048, 512), (1024, 256), (512, 128), (128, 128), (16, 16)]
    batches = [fits("llama-2-7b", H100, prompt_len=p, output_len=o).max_batch_size
               for p, o in lengths]
    assert batches == sorted(batches) and batches[0] >= 1


def test_a_context_too_long_for_one_t4_names_the_kv_cache_and_what_fits():
    # T4: 0.9 × 16 GB = 14.4 GB usable; 14.4e9 − 13,476,831,232 = 923,168,768 B left for KV,
    # / 524,288 B per token = 1,760.8 tokens. The prompt is held whole: at most 1,760 prompt
    # tokens + 256 output = 2,016; the whole context with a 16-token page is at least 1,744
    r = fits("llama-2-7b", "nvidia_t4", prompt_len=4000, output_len=256)
    assert not r.fits
    assert "KV cache" in r.reason and "4,000 + 256 tokens" in r.reason
    assert "14.4 GB usable" in r.reason
    assert 1744 <= r.max_context_len <= 2016
    assert f"up to {r.max_context_len:,} tokens fit" in r.reason


def test_two_h100s_hold_llama_2_70b_bf16():
    r = fits("llama-2-70b", H100, n_devices=2)
    assert r.fits and r.tp * r.pp == 2
    if r.pp == 1:  # tensor parallel: 2 · 68,976,648,192 B / 2 devices
        assert r.weight_bytes == 68_976_648_192


def test_a_device_count_that_does_not_split_the_heads():
    r = fits("llama-2-70b", H100, n_devices=3)  # 64 heads, 8 KV heads: 3 divides neither
    assert r.tp * r.pp == 3
    if r.pp == 1:
        assert not r.fits
        assert r.reason.startswith("tp=3 does not divide llama-2-70b's 64 attention heads")
        assert "1, 2, 4, 8" in r.reason


def test_tensor_parallel_beyond_the_scale_up_domain():
    r = fits("llama-2-7b", H100, n_devices=16)  # 8 H100s per NVLink domain
    assert r.tp * r.pp == 16
    if r.pp == 1:
        assert not r.fits
        assert "scale-up domain" in r.reason and "n_devices ≤ 8" in r.reason


def test_to_dict_is_json_safe_and_si():
    r = fits("llama-2-70b", H100)
    row = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert row["fits"] is False and row["tokens_per_s"] is None
    assert row["weight_bytes"] == 137_953_296_384 and row["usable_memory_bytes"] == 72e9
    assert list(r.to_frame().columns) == list(row)


def test_unknown_device_is_one_line_naming_the_field_and_how_to_list_ids():
    with pytest.raises(InputError, match=r"^device: unknown device 'h100'; did you mean "
                       r"nvidia_h100_sxm.*`planner catalog list`") as err:
        fits("llama-2-7b", "h100")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, field", [
    (dict(n_devices=0), "n_devices"),
    (dict(n_devices=True), "n_devices"),
    (dict(precision="fp9"), "precision"),
    (dict(prompt_len=0), "prompt_len"),
    (dict(kv_cache_precision="fp9"), "kv_cache_precision"),
])
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        fits("llama-2-7b", H100, **kwargs)


# ---- the CLI ------------------------------------------------------------------------------------
def test_cli_prints_the_answer_with_units(capsys):
    assert main(["fits", "llama-2-7b", "--device", H100]) == 0
    out = capsys.readouterr().out
    assert ": fits" in out
    assert "weights      13.5 GB per device, 72 GB usable" in out
    assert "KV cache     524 kB per token" in out
    assert "max context  4,096 tokens" in out and "tokens/s" in out


def test_cli_says_why_it_does_not_fit(capsys):
    assert main(["fits", "llama-2-70b", "--device", H100]) == 0
    out = capsys.readouterr().out
    assert "does NOT fit" in out and "weights need 138.0 GB per device" in out


def test_cli_json_parses(capsys):
    assert main(["fits", "llama-2-70b", "--device", H100, "--precision", "int4",
                 "--prompt-len", "512", "--output-len", "128", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["fits"] is True and row["precision"] == "int4"
    assert (row["prompt_len"], row["output_len"]) == (512, 128)
    assert row["kv_bytes_per_token"] == 327_680 and row["max_batch_size"] >= 1


def test_cli_csv(tmp_path, capsys):
    path = tmp_path / "fit.csv"
    assert main(["fits", "llama-2-7b", "--device", H100, "--csv", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    header, row = path.read_text().splitlines()
    assert "weight_bytes" in header.split(",") and "13476831232.0" in row.split(",")


@pytest.mark.parametrize("argv, start", [
    (["--device", "h100"], "planner: error: device: unknown device 'h100'; did you mean"),
    (["--device", H100, "--n-devices", "0"], "planner: error: argument --n-devices"),
    (["--device", H100, "--kv-precision", "fp9"], "planner: error: kv_cache_precision"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, start, capsys):
    assert main(["fits", "llama-2-7b", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(start) and captured.err.count("\n") == 1
