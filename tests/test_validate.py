"""planner.validate(), `planner validate`, calibration and the GPU script's CPU path."""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.cli import main
from planner.measure.calibration import (
    Ceilings,
    KernelSweep,
    attention_flops,
    experts_touched_frac,
    markdown_table,
    measure_ceilings,
    predict_times,
    roofline_row_times,
    sweep_frame,
    sweep_tables,
    to_catalog_toml,
)
from planner.measure.validate import (
    NOT_COUNTED,
    block_activations,
    rel_err,
    summary_frame,
    validate,
)
from planner.model.layers import layer_table
from planner.model.spec import model

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_layers=2, d_model=64, n_heads=4, d_ff=128, vocab_size=256)


def _tiny(name="llama-3-8b"):
    return model(name).with_(**TINY, **({"n_kv_heads": 2} if model(name).n_kv_heads else {}))


@pytest.fixture(scope="module")
def train_result():
    return validate(_tiny(), seq_len=32, batch_size=2, time_it=False)


def test_import_planner_does_not_import_torch():
    code = "import sys, planner, planner.measure.validate; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_validate_has_the_issue_columns(train_result):
    df = train_result
    for col in ["layer", "kind", "fwd_flops_analytic", "fwd_flops_measured", "bwd_flops_analytic",
                "bwd_flops_measured", "param_bytes_analytic", "param_bytes_measured",
                "activation_bytes_analytic", "activation_bytes_measured", "fwd_flops_rel_err",
                "activation_bytes_rel_err", "grad_bytes_rel_err", "optimizer_bytes_rel_err"]:
        assert col in df, col
    assert df["layer"].iloc[0] == "embed.tokens"


def test_validate_errors_are_zero_for_flops_and_state_bytes(train_result):
    s = train_result.attrs["summary"]
    for q in ["fwd_flops", "bwd_flops", "param_bytes", "grad_bytes", "optimizer_bytes"]:
        assert s[f"{q}_max_abs_rel_err"] == 0, q
    assert s["activation_bytes_block_max_abs_rel_err"] < 0.10
    assert s["fwd_flops_measured_total"] == s["fwd_flops_analytic_total"]


def test_elementwise_rows_are_not_counted_not_zero(train_result):
    df = train_result.set_index("layer")
    row = df.loc["blocks.0.attn.softmax"]
    assert row["fwd_flops_analytic"] > 0 and math.isnan(row["fwd_flops_measured"])
    assert math.isnan(row["fwd_flops_rel_err"]) and row["note"] == NOT_COUNTED


def test_block_activation_table_adds_other_rows(train_result):
    blocks = block_activations(train_result).set_index("block")
    # 2 RMSNorms × 64 tokens × 4 B of rstd per block are not in the analytic model
    assert (blocks.loc[0, "activation_bytes_measured"]
            - blocks.loc[0, "activation_bytes_analytic"]) == 512


def test_validate_moe_keeps_routing_bookkeeping_as_other_rows():
    df = validate(_tiny("mixtral-8x7b"), seq_len=32, batch_size=2, time_it=False)
    other = df[df["layer"] == "blocks.0.other"]
    assert len(other) == 1 and other["activation_bytes_measured"].iloc[0] > 0
    assert math.isnan(other["activation_bytes_rel_err"].iloc[0])
    assert df.attrs["summary"]["activation_bytes_block_max_abs_rel_err"] < 0.02


def test_validate_inference_columns():
    df = validate(_tiny("gpt2"), seq_len=16, batch_size=2, mode="inference", time_it=False)
    s = df.attrs["summary"]
    assert {"decode_flops_measured", "kv_cache_bytes_measured"} <= set(df.columns)
    assert "bwd_flops_measured" not in df
    assert s["decode_flops_max_abs_rel_err"] == 0 and s["kv_cache_bytes_max_abs_rel_err"] == 0


def test_validate_meta_full_size():
    df = validate("llama-2-7b", seq_len=64, batch_size=1, device="meta", n_layers=2)
    s = df.attrs["summary"]
    assert s["fwd_flops_max_abs_rel_err"] == 0 and s["param_bytes_max_abs_rel_err"] == 0
    assert df["activation_bytes_measured"].isna().all()


def test_validate_times_against_calibrated_ceilings():
    c = Ceilings(device="cpu", device_name="test", dtype="fp32", matmul_flops_per_s=1e10,
                 memory_bw_bytes_per_s=1e10, matmul_n=8, copy_bytes=8, n_threads=1,
                 memory_bytes=1e9, measured_on="2026-11-28")
    df = validate(_tiny(), seq_len=16, batch_size=1, ceilings=c, repeats=1, warmup=0)
    s = df.attrs["summary"]
    for phase in ["forward", "backward", "optimizer", "step"]:
        assert s[f"{phase}_s_predicted"] > 0 and s[f"{phase}_s_measured"] > 0
    assert s["step_s_predicted"] == pytest.approx(
        s["forward_s_predicted"] + s["backward_s_predicted"] + s["optimizer_s_predicted"])
    assert set(summary_frame(df).columns) == {"quantity", "value"}


@pytest.mark.parametrize("kwargs,message", [
    (dict(mode="serve"), "mode: 'serve' is not allowed"),
    (dict(device="tpu"), "device: 'tpu' is not allowed"),
    (dict(dtype="fp8"), "dtype: 'fp8' is not allowed"),
    (dict(n_layers=0), "n_layers: must be ≥ 1, got 0"),
])
def test_validate_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        validate("gpt2", seq_len=8, batch_size=1, **kwargs)


def test_validate_cuda_without_a_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="device: 'cuda' requested but"):
        validate("gpt2", seq_len=8, batch_size=1, device="cuda")


@pytest.mark.cuda
def test_validate_on_cuda_bf16():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    df = validate(_tiny(), seq_len=32, batch_size=2, device="cuda", repeats=2)
    s = df.attrs["summary"]
    assert s["fwd_flops_max_abs_rel_err"] == 0 and s["param_bytes_max_abs_rel_err"] == 0
    assert s["activation_bytes_block_max_abs_rel_err"] < 0.10
    assert s["peak_bytes_measured"] > 0 and s["dtype"] == "bf16"


def test_rel_err_conventions():
    assert list(rel_err([0.0, 1.0, 3.0], [0.0, 0.0, 2.0])) == [0.0, np.inf, 0.5]


# ---- roofline and calibration --------------------------------------------------------------------
def test_roofline_row_time_by_hand():
    spec = _tiny()
    table = layer_table(spec, seq_len=16, batch_size=2, precision="fp32")
    c = Ceilings(device="cpu", device_name="x", dtype="fp32", matmul_flops_per_s=1e9,
                 memory_bw_bytes_per_s=1e8, matmul_n=8, copy_bytes=8, n_threads=1,
                 memory_bytes=1e9, measured_on="2026-11-28")
    rows = roofline_row_times(spec, table, c, seq_len=16, batch_size=2, act_bytes=4).set_index(
        "layer")
    # lm_head: FLOPs 2·32·64·256 = 1,048,576 -> 1.048576 ms at 1 GFLOP/s;
    # bytes 64·256·4 (weights) + 32·(64 + 256)·4 (in + out) = 65,536 + 40,960 = 106,496
    # -> 1.06496 ms at 100 MB/s; the row is memory-bound
    assert rows.at["lm_head", "fwd_bytes_moved"] == 106_496
    assert rows.at["lm_head", "fwd_s"] == pytest.approx(1.06496e-3)
    assert rows.at["lm_head", "bwd_s"] == pytest.approx(2 * 1.06496e-3)  # 2× bytes, 2× FLOPs
    t = predict_times(spec, table, c, seq_len=16, batch_size=2, mode="train", act_bytes=4)
    # AdamW: (2·4 + 4 + 2·8) B per parameter = 28 B · n_params at 100 MB/s
    assert t["optimizer"] == pytest.approx(28 * spec.n_params / 1e8)


def test_measure_ceilings_is_quick_and_positive():
    c = measure_ceilings("cpu", "fp32", matmul_sizes=(128,), copy_bytes=4_000_000, repeats=1)
    assert c.matmul_flops_per_s > 1e6 and c.memory_bw_bytes_per_s > 1e6
    assert c.device == "cpu" and c.matmul_n == 128
    # a tiny nn.Linear call costs microseconds, a tiny tensor's AdamW update ~10 of them
    assert 0 < c.op_overhead_s < 1e-3 and 0 < c.adamw_tensor_overhead_s < 1e-2


def _floor_only(op_overhead_s=1e-3, adamw_tensor_overhead_s=0.0):
    """Ceilings so high that every row is overhead-bound."""
    return Ceilings(device="cpu", device_name="x", dtype="fp32", matmul_flops_per_s=1e30,
                    memory_bw_bytes_per_s=1e30, matmul_n=8, copy_bytes=8, n_threads=1,
                    memory_bytes=1e9, measured_on="2026-11-28", op_overhead_s=op_overhead_s,
                    adamw_tensor_overhead_s=adamw_tensor_overhead_s)


def test_predict_times_adds_the_op_overhead_floor():
    spec = _tiny()  # Llama: RMSNorm, rotary, SwiGLU, no biases, no dropout
    table = layer_table(spec, seq_len=16, batch_size=2, precision="fp32")
    rows = roofline_row_times(spec, table, _floor_only(), seq_len=16, batch_size=2,
                              act_bytes=4, training=True).set_index("layer")
    assert (rows["fwd_s"] >= 1e-3).all()  # negligible FLOPs and bytes: every row takes ≥ 1 ms
    # RMSNorm: pow, mean, add, rsqrt, mul, mul = 6 kernels -> 6 ms; backward 2 × 6
    assert rows.at["blocks.0.attn_norm", "fwd_s"] == pytest.approx(6e-3)
    assert rows.at["blocks.0.attn_norm", "bwd_s"] == pytest.approx(12e-3)
    # q: 1 mm + rotary (mul, neg, cat, mul, add) = 6; decode k: + the cache cat = 7
    assert rows.at["blocks.0.attn.q", "fwd_s"] == pytest.approx(6e-3)
    assert rows.at["blocks.0.attn.k", "decode_s"] == pytest.approx(7e-3)
    assert rows.at["blocks.0.mlp.act", "fwd_s"] == pytest.approx(2e-3)  # silu(gate) · up
    t = predict_times(spec, table, _floor_only(), seq_len=16, batch_size=2, mode="train",
                      act_bytes=4)
    # 21 parameter tensors (embedding, 2 × (2 norms + 7 linears), final norm, LM head),
    # 10 AdamW kernels each at 1 ms: 210 ms
    assert t["optimizer"] == pytest.approx(0.210)
    measured = _floor_only(adamw_tensor_overhead_s=5e-3)  # a measured per-tensor cost wins
    assert predict_times(spec, table, measured, seq_len=16, batch_size=2, mode="train",
                         act_bytes=4)["optimizer"] == pytest.approx(21 * 5e-3)


def test_ceilings_without_overhead_keep_the_plain_roofline():
    c = Ceilings(device="cpu", device_name="x", dtype="fp32", matmul_flops_per_s=1e30,
                 memory_bw_bytes_per_s=1e30, matmul_n=8, copy_bytes=8, n_threads=1,
                 memory_bytes=1e9, measured_on="2026-11-28")  # saved before op_overhead_s
    assert c.op_overhead_s == 0
    spec = _tiny()
    table = layer_table(spec, seq_len=16, batch_size=2, precision="fp32")
    t = predict_times(spec, table, c, seq_len=16, batch_size=2, mode="train", act_bytes=4)
    assert t["step"] < 1e-12


def test_mixed_precision_optimizer_writes_the_weights_once():
    spec = _tiny()
    table = layer_table(spec, seq_len=16, batch_size=2, precision="bf16")
    c = _floor_only(op_overhead_s=0.0).model_copy(update={"memory_bw_bytes_per_s": 1e8})
    t = predict_times(spec, table, c, seq_len=16, batch_size=2, mode="train", act_bytes=2)
    # W + G + 2·O = 2 + 2 + 2·(4 master + 8 moments) = 28 B per parameter (P14), not 2W + ...
    assert t["optimizer"] == pytest.approx(28 * spec.n_params / 1e8)


@pytest.mark.parametrize("name", ["gpt2", "llama-3-8b", "mixtral-8x7b"])
def test_kernel_counts_match_the_reference_model(name):
    """row_op_counts against the kernels torch dispatches (views excluded) on the CPU."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from planner.measure.calibration import row_op_counts
    from planner.measure.torch_models import build_reference

    class Kernels(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            view = any(r.alias_info for r in func._schema.returns)
            if not view and func._overloadpacket.__name__ not in ("_unsafe_view",
                                                                  "promote_types"):
                self.n += 1
            return func(*args, **(kwargs or {}))

    spec, seq, batch = _tiny(name), 16, 2
    net = build_reference(spec).eval()
    ids = torch.randint(0, spec.vocab_size, (batch, seq))
    table = layer_table(spec, seq_len=seq, batch_size=batch, mode="inference",
                        precision="fp32")
    ops = row_op_counts(spec, table, seq_len=seq, batch_size=batch)
    with torch.no_grad():
        with Kernels() as prefill:
            net(ids)
        cache = [{} for _ in range(spec.n_layers)]
        net(ids[:, :-1], caches=cache)
        with Kernels() as decode:
            net(ids[:, -1:], caches=cache, start=seq - 1)
    assert ops["fwd_ops"].sum() == pytest.approx(prefill.n, rel=0.10)
    assert ops["decode_ops"].sum() == pytest.approx(decode.n, rel=0.10)


def test_ceilings_without_a_sweep_save_a_device_entry_only(tmp_path):
    catalog = pytest.importorskip("planner.hardware.catalog")
    c = Ceilings(device="cpu", device_name="AMD EPYC", dtype="fp32", matmul_flops_per_s=1.5e11,
                 memory_bw_bytes_per_s=3.2e10, matmul_n=1536, copy_bytes=64_000_000,
                 n_threads=2, memory_bytes=2.5e10, measured_on="2026-11-28")
    path = tmp_path / "my_machine.toml"
    text = to_catalog_toml(c)
    data = tomllib.loads(text)
    assert "kernels" not in data and "efficiency" not in data["device"][0]
    path.write_text(text, encoding="utf-8")
    cat = catalog.load_catalog(path)
    dev = cat.get("local_cpu_amd_epyc")
    assert dev.peak("fp32") == 1.5e11 and dev.memory_bw_bytes_per_s == 3.2e10
    assert dev.kind == "other" and "local_cpu_amd_epyc" not in cat.kernels


# A sweep with round numbers: fractions by hand.
_SWEEP = KernelSweep(
    gemm_sizes=(128, 256, 512), gemm_flops_per_s=(1e10, 4e10, 8e10),
    copy_sizes=(1e5, 1e6, 1e8), copy_bytes_per_s=(2e10, 4e10, 1e10),
    attention_seq_lens=(128, 256), attention_head_dim=64, attention_heads=4,
    attention_tokens=1024,
    attention_flops_per_s={"fwd": (2e10, 4e10), "fwd_causal": (1e10, 2e10),
                           "bwd": (2e10, 9e10), "bwd_causal": (1e10, 3e10)})


def _swept(sweep=_SWEEP, device="cpu"):
    return Ceilings(device=device, device_name="Test CPU", dtype="fp32",
                    matmul_flops_per_s=8e10, memory_bw_bytes_per_s=1e10, matmul_n=512,
                    copy_bytes=50_000_000, n_threads=2, memory_bytes=1e10,
                    measured_on="2026-12-02", sweep=sweep)


def _kernel_tables(path, device_id):
    from planner.hardware.catalog import load_catalog

    cat = load_catalog(path)
    return cat, cat.get(device_id), cat.kernels[device_id]


def test_calibrated_toml_holds_device_and_kernel_tables_by_hand(tmp_path):
    path = tmp_path / "me.toml"
    text = to_catalog_toml(_swept(), device_id="test_box")
    assert "efficiency" not in tomllib.loads(text)["device"][0]
    path.write_text(text, encoding="utf-8")
    _, dev, k = _kernel_tables(path, "test_box")
    # peak = the best GEMM (8e10), memory bandwidth = the best copy (4e10, in the caches)
    assert dev.peak("fp32") == 8e10 and dev.memory_bw_bytes_per_s == 4e10
    assert dev.kind == "other" and dev.scaleup_bw_bytes_per_s is None
    assert dev.sources == ("measured by planner calibrate on 2026-12-02",)
    assert k.devices == ("test_box",) and not k.rule and k.checked_on == "2026-12-02"
    assert k.gemm.size == (128, 256, 512) and k.gemm.fracs["fp32"] == (0.125, 0.5, 1.0)
    assert k.gemm.sustained_frac == 1.0  # a CPU: no tensor-core derate
    assert k.memory.size_bytes == (1e5, 1e6, 1e8) and k.memory.frac == (0.5, 1.0, 0.25)
    curves = {(c.causal, c.direction): c.frac for c in k.attention.curve}
    assert curves[(False, "fwd")] == (0.25, 0.5) and curves[(True, "fwd")] == (0.125, 0.25)
    assert curves[(False, "bwd")] == (0.25, 1.0)  # 9e10 > the GEMM peak: clipped to 1
    assert "1 point(s) above the GEMM peak clipped" in k.attention.source
    for source in (k.gemm.source, k.attention.source, k.memory.source):
        assert source.startswith("measured by planner calibrate on 2026-12-02")
    up = k.collectives.scale_up
    assert up.source.startswith("placeholder rule, not a measurement")
    assert up.latency_s == 1e-5 and up.all_reduce == 1.0 and k.collectives.scale_out is None


def test_calibrated_tables_feed_the_step_model(tmp_path):
    import planner
    from planner.hardware.kernels import kernel_entry, kernel_rates

    path = tmp_path / "me.toml"
    path.write_text(to_catalog_toml(_swept(), device_id="test_box"), encoding="utf-8")
    cat, dev, _ = _kernel_tables(path, "test_box")
    rates = kernel_rates([dev], gemm_dtypes=["fp32"], attention_dtypes=["fp32"],
                         index=cat.kernels)
    assert kernel_entry(dev, cat.kernels)[1] == ""  # its own table, nothing borrowed
    assert rates.gemm(512.0, 0) == pytest.approx(1.0)  # the best size: the peak
    assert rates.gemm(256.0, 0) == pytest.approx(0.5)
    assert rates.memory(1e6, 0) == pytest.approx(1.0)
    # the entry measured fp32 only: an fp32 job (bf16 would be refused: no bf16/fp16 peak)
    job = planner.TrainingJob(model="gpt2", n_tokens=1e6, seq_len=128, global_batch_size=8,
                              precision="fp32")
    row = planner.rank(job, cat, devices=["test_box"]).iloc[0]
    assert row["feasible"] and math.isfinite(row["time_s"]) and row["time_s"] > 0
    assert row["n_devices"] == 1  # no scale-up link: the device runs alone


def test_cuda_entry_is_a_gpu_with_the_sustained_rule(tmp_path):
    path = tmp_path / "gpu.toml"
    path.write_text(to_catalog_toml(_swept(device="cuda"), device_id="test_gpu"),
                    encoding="utf-8")
    _, dev, k = _kernel_tables(path, "test_gpu")
    assert dev.kind == "gpu" and "sustained_frac" not in k.gemm.model_fields_set


TINY_SWEEP = dict(matmul_sizes=(64, 128), copy_sizes=(1e5, 1e6), skinny_sizes=(128,),
                  attention=dict(seq_lens=(32, 64), head_dim=64, heads=2, tokens=128),
                  repeats=1, optimizer=False)


def test_public_calibrate_saves_a_loadable_ranked_entry(tmp_path):
    import planner

    path = tmp_path / "sub" / "me.toml"
    c = planner.calibrate("cpu", "fp32", save_toml=path, device_id="my_cpu", **TINY_SWEEP)
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    assert len(data["device"]) == 1 and len(data["kernels"]) == 1
    assert "efficiency" not in data["device"][0]
    sw = c.sweep
    assert sw is not None and sw.gemm_sizes == (64, 128) and sw.attention_seq_lens == (32, 64)
    assert c.matmul_flops_per_s == max(sw.gemm_flops_per_s)
    assert c.memory_bw_bytes_per_s == sw.copy_bytes_per_s[-1]  # the largest copy
    cat, dev, k = _kernel_tables(path, "my_cpu")
    assert dev.peak("fp32") == pytest.approx(max(sw.gemm_flops_per_s), rel=1e-5)
    assert dev.memory_bw_bytes_per_s == pytest.approx(max(sw.copy_bytes_per_s), rel=1e-5)
    fracs = [*k.gemm.fracs["fp32"], *k.memory.frac,
             *(f for curve in k.attention.curve for f in curve.frac)]
    assert all(0 < f <= 1 for f in fracs)
    gemm = k.gemm.fracs["fp32"]
    assert max(gemm) == 1.0 and gemm[int(np.argmax(sw.gemm_flops_per_s))] == 1.0
    assert max(k.memory.frac) == 1.0 and len(k.attention.curve) == 4
    assert {(cv.causal, cv.direction) for cv in k.attention.curve} == {
        (False, "fwd"), (True, "fwd"), (False, "bwd"), (True, "bwd")}
    job = planner.TrainingJob(model="gpt2", n_tokens=1e6, seq_len=128, global_batch_size=8,
                              precision="fp32")
    assert math.isfinite(planner.rank(job, cat, devices=["my_cpu"]).iloc[0]["time_s"])


def test_sweep_frame_and_tables():
    df = sweep_frame(_swept())
    assert list(df["kernel"].value_counts().sort_index()) == [8, 3, 3]  # attention, copy, gemm
    assert df.loc[df["kernel"] == "gemm", "frac"].max() == 1.0
    tables = sweep_tables(_swept())
    assert list(tables["gemm"]["GFLOP/s"]) == [10.0, 40.0, 80.0]
    assert list(tables["attention"]["batch"]) == [8, 4]
    assert markdown_table(tables["copy"]).splitlines()[2] == "| 1e+05 | 20.0 | 0.5 |"


def test_attention_flops_by_hand():
    # 4·b·h·s²·d = 4 · 2 · 4 · 128² · 64 = 33,554,432; causal half; backward × 2.5
    kw = dict(batch=2, heads=4, seq_len=128, head_dim=64)
    assert attention_flops(**kw, causal=False, backward=False) == 33_554_432
    assert attention_flops(**kw, causal=True, backward=True) == 33_554_432 * 0.5 * 2.5


# ---- CLI and GPU script --------------------------------------------------------------------------
def test_cli_validate_writes_csv(tmp_path, capsys):
    out = tmp_path / "v.csv"
    rc = main(["validate", "gpt2", "--layers", "1", "--seq-len", "16", "--batch-size", "1",
               "--no-timing", "--csv", str(out), "--summary-csv", str(tmp_path / "s.csv")])
    text = capsys.readouterr().out
    assert rc == 0 and "max |relative error|" in text and "activations per block" in text
    df = pd.read_csv(out)
    assert df.loc[df["is_matmul"], "fwd_flops_rel_err"].abs().max() == 0
    assert (tmp_path / "s.csv").exists()


def test_cli_validate_bad_model_is_one_line(capsys):
    assert main(["validate", "gpt-9", "--no-timing"]) == 2
    assert "model: unknown preset 'gpt-9'" in capsys.readouterr().err


def _tiny_defaults(monkeypatch):
    """Shrink the CPU sweep `planner calibrate` runs (the CLI has no size flags)."""
    from planner.measure import calibration

    monkeypatch.setattr(calibration, "CPU_MATMUL_SIZES", (64, 128))
    monkeypatch.setattr(calibration, "CPU_COPY_SIZES", (1e5, 1e6))
    monkeypatch.setattr(calibration, "CPU_SKINNY_SIZES", (128,))
    monkeypatch.setattr(calibration, "CPU_ATTENTION",
                        dict(seq_lens=(32, 64), head_dim=64, heads=2, tokens=128))


def test_cli_calibrate_writes_catalog_and_csv(tmp_path, capsys, monkeypatch):
    _tiny_defaults(monkeypatch)
    out, csv = tmp_path / "me.toml", tmp_path / "sweep.csv"
    rc = main(["calibrate", "--repeats", "1", "--save-catalog", str(out), "--id", "my_box",
               "--csv", str(csv)])
    text = capsys.readouterr().out
    assert rc == 0 and "GEMM, square" in text and "attention (scaled_dot_product_attention" in text
    assert f"wrote {out}: device my_box" in text
    _, dev, k = _kernel_tables(out, "my_box")
    assert max(k.gemm.fracs["fp32"]) == 1.0 and dev.kind == "other"
    assert set(pd.read_csv(csv)["kernel"]) == {"gemm", "copy", "attention"}


@pytest.mark.parametrize("name", ["x.txt", "folder", "file.toml/x.toml"])
def test_cli_calibrate_bad_save_path_is_one_line(tmp_path, capsys, name):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.toml").write_text("", encoding="utf-8")
    target = tmp_path / name
    if name == "folder":
        target = tmp_path / "folder.toml"
        target.mkdir()
    assert main(["calibrate", "--save-catalog", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("planner: error: --save-catalog: ") and "\n" not in err
    assert "Traceback" not in err


def test_cli_calibrate_bad_id_and_validate_bad_save_path(tmp_path, capsys):
    assert main(["calibrate", "--id", "My Box"]) == 2
    assert "--id: 'My Box' must be lower-case snake case" in capsys.readouterr().err
    assert main(["validate", "gpt2", "--no-timing", "--save-ceilings",
                 str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("planner: error: --save-ceilings: ") and "\n" not in err


def test_calibrate_rejects_devices_it_cannot_time():
    with pytest.raises(ValueError, match="device: 'meta' cannot be timed"):
        measure_ceilings("meta", "fp32")


def test_gpu_script_cpu_path(tmp_path):
    out = tmp_path / "gpu.csv"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "validate_gpu.py"), "--device", "cpu", "--tiny",
         "--repeats", "1", "--csv", str(out)], capture_output=True, text=True, cwd=ROOT, check=True)
    last = proc.stdout.strip().splitlines()
    assert out.exists() and "model" in "\n".join(last[-12:])
    df = pd.read_csv(out)
    assert set(df["mode"]) == {"train", "inference"}
    assert (df["fwd_flops_max_abs_rel_err"] == 0).all()
    sweep = pd.read_csv(tmp_path / "gpu_kernels.csv")  # the kernel sweep, one row per point
    assert set(sweep["kernel"]) == {"gemm", "copy", "attention"}
    assert ((sweep["frac"] > 0) & (sweep["rate"] > 0)).all()
    md = (tmp_path / "gpu.md").read_text(encoding="utf-8")
    assert "## Kernel sweep" in md and "| n | GFLOP/s | frac |" in md and "## Runs" in md


@pytest.mark.parametrize("kwargs,message", [
    (dict(repeats=0), "repeats: must be ≥ 1, got 0"),
    (dict(warmup=-1), "warmup: must be ≥ 0, got -1"),
])
def test_validate_rejects_bad_repeat_counts(kwargs, message):
    import planner

    with pytest.raises(ValueError, match=message):
        planner.validate("gpt2", seq_len=8, batch_size=1, n_layers=1, **kwargs)


def _skinny_ceilings(**extra):
    """Matmul and copy ceilings so high that only a skinny weight term can take time."""
    return Ceilings(device="cpu", device_name="x", dtype="fp32", matmul_flops_per_s=1e30,
                    memory_bw_bytes_per_s=1e30, matmul_n=8, copy_bytes=8, n_threads=1,
                    memory_bytes=1e9, measured_on="2026-11-28", **extra)


def test_decode_matmuls_stream_weights_at_the_skinny_ceiling():
    spec = _tiny()  # Llama: untied LM head
    table = layer_table(spec, seq_len=16, batch_size=2, mode="inference", precision="fp32")
    rows = roofline_row_times(spec, table, _skinny_ceilings(skinny_matmul_bw_bytes_per_s=1e9),
                              seq_len=16, batch_size=2, act_bytes=4).set_index("layer")
    w = table.set_index("layer")["weight_bytes"]
    # decode: 2 tokens ≤ SKINNY_MAX_ROWS; lm_head 64 × 256 fp32 = 65,536 B at 1 GB/s = 65.5 µs
    assert w["lm_head"] == 65_536
    assert rows.at["lm_head", "decode_s"] == pytest.approx(65_536 / 1e9)
    matmuls = table.loc[table["is_matmul"], "layer"]
    for name in matmuls:
        assert rows.at[name, "decode_s"] >= w[name] / 1e9 * (1 - 1e-12)
    # prefill: 2 × 16 = 32 tokens > 16, so the copy ceiling (1e30 B/s) applies: ~0 s
    assert rows.loc[matmuls, "fwd_s"].max() < 1e-12
    t = predict_times(spec, table, _skinny_ceilings(skinny_matmul_bw_bytes_per_s=1e9),
                      seq_len=16, batch_size=2, mode="inference", act_bytes=4)
    assert t["decode"] == pytest.approx(w[matmuls].sum() / 1e9)


def test_tied_lm_head_reads_the_embedding_matrix():
    spec = _tiny("gpt2")  # tied: the lm_head row owns no weights
    table = layer_table(spec, seq_len=16, batch_size=2, mode="inference", precision="fp32")
    assert table.set_index("layer").at["lm_head", "weight_bytes"] == 0
    rows = roofline_row_times(spec, table, _skinny_ceilings(skinny_matmul_bw_bytes_per_s=1e9),
                              seq_len=16, batch_size=2, act_bytes=4).set_index("layer")
    # it reads embed.tokens' 256 × 64 fp32 = 65,536 B each step: 65.5 µs at 1 GB/s
    assert rows.at["lm_head", "decode_s"] == pytest.approx(65_536 / 1e9)
    # prefill: 65,536 + 32 · (64 + 256) · 4 = 106,496 B moved
    assert rows.at["lm_head", "fwd_bytes_moved"] == 106_496


def test_ceilings_without_the_skinny_field_keep_the_copy_bandwidth():
    old = Ceilings(device="cpu", device_name="x", dtype="fp32", matmul_flops_per_s=1e9,
                   memory_bw_bytes_per_s=1e8, matmul_n=8, copy_bytes=8, n_threads=1,
                   memory_bytes=1e9, measured_on="2026-11-28")  # saved before the field
    assert old.skinny_matmul_bw_bytes_per_s == 0 and old.skinny_bw_bytes_per_s == 1e8
    same = old.model_copy(update={"skinny_matmul_bw_bytes_per_s": 1e8})
    spec = _tiny()
    table = layer_table(spec, seq_len=16, batch_size=2, mode="inference", precision="fp32")
    kw = dict(seq_len=16, batch_size=2, act_bytes=4)
    a = roofline_row_times(spec, table, old, **kw).set_index("layer")
    # lm_head decode: 65,536 B weights + 2 · (64 + 256) · 4 = 2,560 B activations
    # = 68,096 B at 100 MB/s = 0.68096 ms (FLOPs 2·2·64·256 = 65,536 at 1 GFLOP/s: 65.5 µs)
    assert a.at["lm_head", "decode_s"] == pytest.approx(68_096 / 1e8)
    pd.testing.assert_frame_equal(a, roofline_row_times(spec, table, same, **kw)
                                  .set_index("layer"))


def test_measured_skinny_ceiling_is_positive_and_reported():
    c = measure_ceilings("cpu", "fp32", matmul_sizes=(128,), copy_bytes=4_000_000,
                         skinny_sizes=(256,), repeats=1, optimizer=False)
    assert c.skinny_matmul_bw_bytes_per_s > 1e6
    df = validate(_tiny("gpt2"), seq_len=8, batch_size=2, mode="inference", repeats=1,
                  ceilings=c)
    s = df.attrs["summary"]
    assert s["ceiling_skinny_matmul_bw_bytes_per_s"] == c.skinny_matmul_bw_bytes_per_s
    assert s["decode_s_predicted"] > 0


def test_moe_decode_reads_only_the_experts_that_get_tokens():
    spec = _tiny("mixtral-8x7b")  # 8 experts, top-2
    # 2 decode tokens: 1 − (1 − 2/8)² = 1 − 0.5625 = 0.4375 of the experts get one
    assert experts_touched_frac(spec, 2) == pytest.approx(0.4375)
    assert experts_touched_frac(_tiny(), 2) == 1.0  # dense
    table = layer_table(spec, seq_len=16, batch_size=2, mode="inference", precision="fp32")
    rows = roofline_row_times(spec, table, _skinny_ceilings(skinny_matmul_bw_bytes_per_s=1e9),
                              seq_len=16, batch_size=2, act_bytes=4).set_index("layer")
    w = table.set_index("layer").at["blocks.0.moe.experts.up", "weight_bytes"]
    assert rows.at["blocks.0.moe.experts.up", "decode_s"] == pytest.approx(0.4375 * w / 1e9)


# ---- shapes the torch reference does not build: refused first, before any calibration --------
@pytest.fixture
def no_measuring(monkeypatch):
    """Fail the test if validate() calibrates or measures anything."""
    from planner.measure import calibration, counters

    def fail(*_args, **_kwargs):
        raise AssertionError("measured before refusing")

    for module, name in ((calibration, "measure_ceilings"), (counters, "measure_train"),
                         (counters, "measure_inference")):
        monkeypatch.setattr(module, name, fail)


@pytest.mark.parametrize(("spec", "seq_len", "message"), [
    # Full size: refused before the memory check (terabytes) and the calibration.
    (lambda: model("deepseek-v3"), 8,
     r"^model: deepseek-v3: MLA \(multi-head latent attention, kv_lora_rank\) is not in the "
     r"torch reference yet$"),
    (lambda: _tiny("qwen3-235b-a22b").with_(head_dim=16, moe_d_ff=32, n_experts=4,
                                            experts_top_k=2, n_mtp_layers=1), 8,
     r"^model: qwen3-235b-a22b: multi-token prediction modules \(n_mtp_layers\) are not in "
     r"the torch reference yet; set n_mtp_layers=0$"),
    (lambda: _tiny().with_(sliding_window=16, global_attn_every=2), 32,
     r"^seq_len: 32 exceeds sliding_window=16: the torch reference masks the window"),
])
@pytest.mark.parametrize("mode", ["train", "inference"])
def test_validate_refuses_what_the_reference_cannot_build_before_calibrating(
        no_measuring, spec, seq_len, message, mode):
    from planner.errors import InputError

    with pytest.raises(InputError, match=message):
        validate(spec(), seq_len=seq_len, batch_size=1, mode=mode, time_it=True)


@pytest.mark.parametrize("argv", [["validate", "deepseek-v3"],
                                  ["validate", "deepseek-v3", "--layers", "4", "--device",
                                   "meta"]])
def test_cli_validate_refuses_mla_in_one_line_exit_2(no_measuring, argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last == ("planner: error: model: deepseek-v3: MLA (multi-head latent attention, "
                    "kv_lora_rank) is not in the torch reference yet")
    assert err.count("planner: error:") == 1


def test_cli_validate_shows_the_first_block_of_each_kind(capsys):
    # Qwen3-MoE shape with one dense block first: block 0 dense, block 1 MoE.
    argv = ["validate", "qwen3-235b-a22b", "--layers", "2", "--seq-len", "16",
            "--batch-size", "1", "--no-timing"]
    for change in ("n_dense_layers=1", "d_model=64", "n_heads=4", "n_kv_heads=2",
                   "head_dim=16", "d_ff=128", "moe_d_ff=32", "n_experts=4", "experts_top_k=2",
                   "vocab_size=256"):
        argv += ["--set", change]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("(blocks 0 and 1 shown, the first of each kind; --all for every "
                             "block)")
    assert lines[1] == "blocks by kind: 1 dense (first: block 0), 1 MoE (first: block 1)"
    rows = {line.split()[0]: line.split() for line in lines[3:] if line.split()}
    assert rows["blocks.0.mlp.up"][1] == "dense"
    assert rows["blocks.1.moe.router"][1] == "MoE"
