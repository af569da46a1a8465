"""`planner models`, `planner layers`, `planner seed`: output, CSV and one-line errors."""

from __future__ import annotations

import pandas as pd
import pytest

from planner.cli import main


def test_models_lists_presets(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "llama-2-70b" in out and "mixtral-8x7b" in out


def test_layers_prints_units_and_writes_si_csv(tmp_path, capsys):
    path = tmp_path / "gpt2.csv"
    assert main(["layers", "gpt2", "--seq-len", "128", "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    assert "GFLOP" in out and "MB" in out
    df = pd.read_csv(path)
    assert {"layer", "fwd_flops", "weight_bytes", "activation_bytes"} <= set(df.columns)
    assert df["n_params"].sum() == 124_439_808
    # SI numbers: 2 * 128 tokens * 768 * 768 for the q projection
    q = df.set_index("layer").loc["blocks.0.attn.q", "fwd_flops"]
    assert q == 2 * 128 * 768 * 768


def test_layers_from_hf_config(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, '
                   '"vocab_size": 100, "n_positions": 32}')
    assert main(["layers", str(cfg), "--seq-len", "16"]) == 0
    assert "blocks.0.attn.q" in capsys.readouterr().out


def test_seed_command(capsys):
    assert main(["seed"]) == 0
    assert "1.546e+11" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["layers", "gtp2"], "model: unknown preset 'gtp2'; did you mean gpt2"),
    (["layers", "gpt2", "--batch-size", "0"],
     "argument --batch-size: must be a positive whole number, got '0'"),
    (["layers", "gpt2", "--seq-len", "0"], "argument --seq-len: must be a positive whole number"),
    (["layerz"], "argument COMMAND: invalid choice: 'layerz'"),
    (["layers", "gpt2", "--csv", "/"], "--csv: '/' is a directory"),
    (["layers", "gpt2", "--seq-len", "4096"], "seq_len: 4096 exceeds gpt2's max_seq_len"),
    (["layers", "/nope/config.json"], "config.json: no such file"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("planner: error: ")
    assert message in err
    assert err.count("\n") == 1
