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


# ---- blocks of different kinds: the first of each is shown, labelled, and counted -------------
def test_layers_shows_the_first_block_of_each_kind(capsys):
    # DeepSeek-V3: blocks 0-2 dense (d_ff 18432), blocks 3-60 MoE (256 experts of 2048).
    assert main(["layers", "deepseek-v3", "--seq-len", "128"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("(blocks 0 and 3 of 61 shown, the first of each kind; --all for "
                             "every block)")
    assert lines[1] == "blocks by kind: 3 dense (first: block 0), 58 MoE (first: block 3)"
    assert lines[2].split()[:4] == ["layer", "block", "kind", "kind"]
    rows = {line.split()[0]: line.split() for line in lines[3:] if line.strip()}
    assert rows["blocks.0.mlp.up"][1] == "dense"
    assert rows["blocks.3.moe.router"][1] == "MoE"
    assert rows["blocks.3.moe.experts.up"][1] == "MoE"
    assert not any(name.startswith(("blocks.1.", "blocks.2.", "blocks.4.")) for name in rows)
    assert rows["embed.tokens"][1] == "embedding"  # outside the blocks: no block kind


def test_layers_all_labels_every_block_by_kind(capsys):
    assert main(["layers", "deepseek-v3", "--seq-len", "16", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "shown" not in lines[0]
    kind_of = {}
    for line in lines[3:]:
        parts = line.split()
        if parts and parts[0].startswith("blocks."):
            kind_of[int(parts[0].split(".")[1])] = parts[1]
    assert kind_of == {i: "dense" if i < 3 else "MoE" for i in range(61)}


def test_layers_sliding_window_blocks_are_labelled(tmp_path, capsys):
    # Gemma 2 alternates a sliding-window block (even) and a global one (odd).
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "gemma2", "hidden_size": 64, "intermediate_size": 128, '
                   '"num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, '
                   '"head_dim": 16, "vocab_size": 100, "max_position_embeddings": 64, '
                   '"sliding_window": 8}')
    assert main(["layers", str(cfg), "--seq-len", "16"]) == 0
    out = capsys.readouterr().out
    assert "(blocks 0 and 1 of 4 shown, the first of each kind;" in out
    assert ("blocks by kind: 2 sliding window 8 (first: block 0), 2 global (first: block 1)"
            in out)
    names = [line.split()[0] for line in out.splitlines()[3:] if line.strip()]
    assert "blocks.0.attn.scores" in names and "blocks.1.attn.scores" in names
    assert not any(n.startswith(("blocks.2.", "blocks.3.")) for n in names)


@pytest.mark.parametrize("name,n_layers", [("gpt2", 12), ("mixtral-8x7b", 32),
                                            ("qwen3-235b-a22b", 94)])
def test_layers_of_a_model_with_one_block_kind_is_unchanged(name, n_layers, capsys):
    # All blocks alike (MoE in every block counts as one kind): block 0 only, no kind column.
    assert main(["layers", name, "--seq-len", "16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"(block 0 of {n_layers} shown; --all for every block)")
    assert lines[1].split()[:3] == ["layer", "kind", "n_params"]
    assert not any("blocks by kind" in line for line in lines)
    blocks = {line.split()[0].split(".")[1] for line in lines[2:]
              if line.split() and line.split()[0].startswith("blocks.")}
    assert blocks == {"0"}
