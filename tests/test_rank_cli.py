"""`planner rank`: training and serving tables, CSV in SI units, one-line errors."""

from __future__ import annotations

import pandas as pd
import pytest

from planner.cli import main
from planner.cli.rank import parse_duration_s

GPUS = "nvidia_h100_sxm,nvidia_a100_80gb_sxm,google_tpu_v5p,amd_alveo_u280"


def test_rank_training_prints_a_table_and_writes_si_csv(tmp_path, capsys):
    path = tmp_path / "rank.csv"
    code = main(["rank", "--model", "llama-2-7b", "--train-tokens", "2e12", "--seq-len", "4096",
                 "--global-batch", "1024", "--device-ids", GPUS, "--csv", str(path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "train llama-2-7b" in out and "476,838 steps" in out and "ranked by time" in out
    assert "nvidia_h100_sxm" in out and "tp×cp×pp×dp" in out and "goodput" in out
    assert "is an FPGA: no training software stack" in out  # the FPGA cannot train
    df = pd.read_csv(path)
    assert list(df.columns[:14]) == ["rank", "device", "kind", "feasible", "reason",
                                     "n_devices", "tp", "pp", "dp", "time_s", "cost_usd",
                                     "energy_j", "mfu", "pareto"]
    assert len(df) == 4 and df["feasible"].sum() == 3
    assert {"cost_price_provider", "cost_price_date"} <= set(df.columns)
    h100 = df.set_index("device").loc["nvidia_h100_sxm"]
    assert h100["time_s"] > 3600  # SI seconds, not a formatted string


def test_rank_objective_kinds_and_fixed_count(capsys):
    code = main(["rank", "--model", "llama-2-7b", "--train-tokens", "2e11", "--seq-len", "2048",
                 "--global-batch", "512", "--objective", "cost", "--kinds", "gpu,tpu",
                 "--devices", "64", "--top", "3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "ranked by cost" in out
    lines = [line for line in out.splitlines() if line.strip()[:2] in ("1 ", "2 ", "3 ")]
    assert len(lines) == 3 and all(" 64 " in line for line in lines)


def test_rank_serving(tmp_path, capsys):
    path = tmp_path / "serve.csv"
    code = main(["rank", "--model", "llama-2-70b", "--serve", "--prompt-len", "1024",
                 "--output-len", "256", "--requests-per-s", "10", "--device-ids", GPUS,
                 "--csv", str(path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "serve llama-2-70b: 1024 in / 256 out tokens, 10 req/s" in out
    assert "TTFT" in out and "$/M tok" in out
    df = pd.read_csv(path)
    assert {"ttft_s", "tpot_s", "tokens_per_s_per_device", "replicas"} <= set(df.columns)


def test_rank_preset_workload_with_deadline(capsys):
    code = main(["rank", "--workload", "conll2003-bert-finetune", "--objective", "cost",
                 "--device-ids", "nvidia_a100_80gb_sxm,nvidia_t4"])
    assert code == 0
    out = capsys.readouterr().out
    assert "train bert-base-cased" in out and "5,268 steps" in out and "fp32" in out
    code = main(["rank", "--workload", "llama-2-7b-pretrain", "--deadline", "1h",
                 "--device-ids", "nvidia_h100_sxm"])
    assert code == 0
    assert "misses the deadline of 60 min" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["rank", "--model", "llama-2-7b", "--train-tokens", "1e9", "--seq-len", "2048"],
     "--global-batch: required"),
    (["rank", "--model", "llama-2-7b", "--serve", "--output-len", "8"], "--prompt-len: required"),
    (["rank", "--train-tokens", "1e9"], "--model: give a model"),
    (["rank", "--model", "llama-2-7b", "--train-tokens", "1e9", "--seq-len", "2048",
      "--global-batch", "8", "--deadline", "soon"], "--deadline: cannot read 'soon'"),
    (["rank", "--model", "llama-2-7b", "--train-tokens", "1e9", "--seq-len", "2048",
      "--global-batch", "8", "--kinds", "quantum"], "unknown kind 'quantum'"),
    (["rank", "--model", "llama-2-7b", "--train-tokens", "-5", "--seq-len", "2048",
      "--global-batch", "8"], "--train-tokens: must be > 0, got -5"),
    (["rank", "--model", "llama-2-7b", "--train-tokens", "1e9", "--seq-len", "2048",
      "--global-batch", "8", "--device-ids", "nvidia_h101"], "unknown device 'nvidia_h101'"),
    # a flag of the other mode is refused, not silently ignored
    (["rank", "--model", "llama-2-7b", "--serve", "--prompt-len", "128", "--output-len", "8",
      "--deadline", "30d"], "--deadline: only for training jobs (drop --serve)"),
    (["rank", "--model", "llama-2-7b", "--serve", "--prompt-len", "128", "--output-len", "8",
      "--zero", "1"], "--zero: only for training jobs (drop --serve)"),
    (["rank", "--model", "llama-2-7b", "--train-tokens", "1e9", "--seq-len", "2048",
      "--global-batch", "8", "--ttft", "0.5"], "--ttft: only for serving jobs (add --serve)"),
    (["rank", "--workload", "llama-2-70b-chat-serving", "--zero", "2"],
     "--zero: only for training jobs (the workload llama-2-70b-chat-serving is a serving job)"),
    (["rank", "--model", "llama-2-7b", "--serve", "--prompt-len", "128", "--output-len", "0",
      "--tpot", "0.1"], "--tpot: an encoder job (output_len=0) generates no tokens"),
    (["rank", "--model", "llama-2-7b", "--serve", "--prompt-len", "128", "--output-len", "8",
      "--speculative-tokens", "4"], "--acceptance-rate: required with speculative_tokens"),
    (["rank", "--model", "llama-2-7b", "--serve", "--prompt-len", "128", "--output-len", "8",
      "--ep", "2"], "--ep: llama-2-7b has no routed experts; allowed: 1"),
    (["rank", "--workload", "llama-2-7b-pretrain", "--max-batch", "8"],
     "--max-batch: only for serving jobs (the workload llama-2-7b-pretrain is a training job)"),
    (["rank", "--workload", "llama-2-7b-pretrain", "--serve"],
     "--serve: the workload llama-2-7b-pretrain is a training job"),
    (["rank", "--model", "bert-base-cased", "--serve", "--prompt-len", "128", "--output-len",
      "8"], "--output-len: bert-base-cased is an encoder without an LM head"),
    (["rank", "--workload", "llama-2-7b-pretrain", "--facility-usd-per-kw-month", "-1"],
     "--facility-usd-per-kw-month: must be ≥ 0, got -1"),
    (["rank", "--workload", "llama-2-7b-pretrain", "--server-cost-factor", "0.5"],
     "--server-cost-factor: must be ≥ 1, got 0.5"),
])
def test_rank_errors_are_one_line_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_compute_frac_flag_applies_to_both_modes(capsys):
    base = ["rank", "--model", "llama-2-7b", "--serve", "--prompt-len", "128", "--output-len",
            "8", "--device-ids", "nvidia_h100_sxm", "--tp", "2"]
    assert main([*base, "--compute-frac", "0.3"]) == 0
    assert main(["rank", "--model", "gpt2", "--train-tokens", "1e9", "--seq-len", "1024",
                 "--global-batch", "8", "--device-ids", "nvidia_h100_sxm", "--tp", "1",
                 "--compute-frac", "0.3"]) == 0
    capsys.readouterr()
    assert main([*base, "--compute-frac", "1.5"]) == 2
    assert "--compute-frac: must be ≤ 1, got 1.5" in capsys.readouterr().err


def test_an_impossible_load_prints_no_negative_device_counts(tmp_path, capsys):
    path = tmp_path / "huge.csv"
    code = main(["rank", "--model", "llama-2-7b", "--serve", "--prompt-len", "1024",
                 "--output-len", "256", "--requests-per-s", "1e30", "--csv", str(path)])
    assert code == 0
    assert "needs over 9.01e+15 devices, more than max_devices" in capsys.readouterr().out
    df = pd.read_csv(path)
    assert not df["feasible"].any() and (df["n_devices"] >= 0).all()


def test_parse_duration():
    assert parse_duration_s("3600") == 3600
    assert parse_duration_s("12h") == 43_200
    assert parse_duration_s("30d") == 2_592_000
    assert parse_duration_s("1.5 w") == 907_200


def test_ownership_flags_change_the_ownership_cost(tmp_path):
    # A14/A15: servers, network and facility add to the chips; without them (factors 1,
    # facility 0) the ownership cost is lower, and the time is the same
    base = ["rank", "--workload", "llama-2-7b-pretrain", "--device-ids", "nvidia_h100_sxm",
            "--cost-basis", "ownership", "--devices", "64"]
    full, bare = tmp_path / "full.csv", tmp_path / "bare.csv"
    assert main([*base, "--csv", str(full)]) == 0
    assert main([*base, "--server-cost-factor", "1", "--network-cost-factor", "1",
                 "--facility-usd-per-kw-month", "0", "--csv", str(bare)]) == 0
    f, b = pd.read_csv(full).iloc[0], pd.read_csv(bare).iloc[0]
    assert f["time_s"] == b["time_s"]
    assert f["ownership_cost_usd"] > 1.5 * b["ownership_cost_usd"]


def test_power_frac_flag_sets_the_busy_draw(tmp_path):
    # P16a on an H100 SXM (system 1,275 W, TDP 700 W, no idle figure): 575 + 700 x 0.8 =
    # 1,135 W by default, 575 + 700 x 0.5 = 925 W with --power-frac 0.5
    base = ["rank", "--workload", "llama-2-7b-pretrain", "--device-ids", "nvidia_h100_sxm",
            "--devices", "64"]
    default, half = tmp_path / "default.csv", tmp_path / "half.csv"
    assert main([*base, "--csv", str(default)]) == 0
    assert main([*base, "--power-frac", "0.5", "--csv", str(half)]) == 0
    d, h = pd.read_csv(default).iloc[0], pd.read_csv(half).iloc[0]
    assert h["energy_j"] / d["energy_j"] == pytest.approx(925 / 1135)
