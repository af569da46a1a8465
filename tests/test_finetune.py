"""Fine-tuning: LoRA and QLoRA on a frozen base, 8-bit AdamW and optimizer offload
(docs/planning.md P30-P32, A24-A25). Numbers are derived by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from planner import TrainingJob, model, rank, search
from planner.cli import main
from planner.errors import InputError
from planner.model.layers import layer_table, lora_params, lora_target_names, totals
from planner.model.precision import NF4_BYTES_PER_PARAM, optimizer_state_bytes
from planner.plan.steptime import (
    HOST_LINK_BYTES_PER_S,
    data_parallel_seconds,
    optimizer_offload_seconds,
    training_profile,
    training_profile_for,
)

LLAMA7 = model("llama-2-7b")  # h 4096, d_ff 11008, 32 layers, vocab 32,000
LLAMA70 = model("llama-2-70b")  # h 8192, 8 KV heads of 128, d_ff 28672, 80 layers
KW = dict(seq_len=4096, batch_size=1, flash_attention=True, fused_swiglu=True)
# Llama-2-7B's block linears: q, k, v, out 4096 × 4096; up, gate 4096 → 11008; down back
LINEAR_7B = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)  # 6,476,005,376
LORA_7B = 39_976_960


def _job(**fields):
    base = dict(model="llama-2-7b", n_tokens=2048 * 16 * 100, seq_len=2048,
                global_batch_size=16, n_devices=1)
    return TrainingJob(**{**base, **fields})


# ---- P30: what LoRA adds -------------------------------------------------------------------------
def test_lora_parameters_of_llama_2_7b_at_rank_16_on_all_linear_layers():
    # r·(k + n) per adapted matrix (Hu et al. 2021): q, k, v, out 16·(4096 + 4096) = 131,072
    # each; up, gate, down 16·(4096 + 11008) = 241,664 each; a block 4 · 131,072 + 3 · 241,664
    # = 1,249,280; 32 blocks: 39,976,960 (what PEFT prints for this model and config)
    assert lora_params(LLAMA7, "attn.q", rank=16) == 131_072
    assert lora_params(LLAMA7, "mlp.down", rank=16) == 241_664
    table = layer_table(LLAMA7, adapter="lora", lora_rank=16, **KW)
    assert int(table.loc[table["kind"] == "lora", "n_params"].sum()) == LORA_7B
    assert lora_target_names(LLAMA7, ("all-linear",)) == {
        "attn.q", "attn.k", "attn.v", "attn.out", "mlp.up", "mlp.gate", "mlp.down"}


def test_lora_parameters_of_llama_2_70b_on_the_attention_projections():
    # MLPerf's targets (attention): q and out 16·(8192 + 8192) = 262,144, k and v
    # 16·(8192 + 1024) = 147,456; 819,200 a block, 65,536,000 over 80 blocks
    table = layer_table(LLAMA70, adapter="lora", lora_targets=("attention",), **KW)
    assert int(table.loc[table["kind"] == "lora", "n_params"].sum()) == 65_536_000


def test_lora_forward_and_backward_flops():
    # a frozen linear's backward is dgrad alone: 1 × its forward (F2 has 2 ×); the adapter's
    # x·A and (x·A)·B: 2·T·r·(k + n) = 2 · 4096 · 16 · 8192 = 1,073,741,824 for q, trained
    # in full (2 × backward)
    table = layer_table(LLAMA7, adapter="lora", **KW).set_index("layer")
    q, q_lora = table.loc["blocks.0.attn.q"], table.loc["blocks.0.attn.q.lora"]
    assert q["bwd_flops"] == q["fwd_flops"] == 2.0 * 4096 * 4096 * 4096
    assert q_lora["fwd_flops"] == 1_073_741_824
    assert q_lora["bwd_flops"] == 2 * q_lora["fwd_flops"]
    assert table.loc["blocks.0.attn.scores", "bwd_flops"] == (
        2 * table.loc["blocks.0.attn.scores", "fwd_flops"])  # gradients flow through attention


# ---- P31: memory with a frozen base ------------------------------------------------------------
def test_frozen_base_keeps_weights_only_and_the_adapters_train_in_full():
    t = totals(layer_table(LLAMA7, adapter="lora", **KW))
    # the adapters alone: 2-byte gradients and 12 bytes of AdamW state + fp32 master each
    assert t["grad_bytes"] == LORA_7B * 2 == 79_953_920
    assert t["optimizer_bytes"] == LORA_7B * 12 == 479_723_520
    # every base weight stays (bf16), plus the adapters' 2 bytes each
    assert t["weight_bytes"] == LLAMA7.n_params * 2 + LORA_7B * 2


def test_qlora_stores_the_base_linears_in_nf4():
    # (4 + 8/64 + 32/(64·256)) / 8 = 0.515869140625 bytes (QLoRA, Dettmers et al. 2023: 0.127
    # extra bits per parameter with double quantization)
    assert NF4_BYTES_PER_PARAM == 0.515869140625
    t = totals(layer_table(LLAMA7, adapter="qlora", **KW))
    # 6,476,005,376 block linear weights × 0.515869140625 = 3,340,771,328; embedding and LM
    # head stay bf16, 2 × 32,000 · 4096 · 2 = 524,288,000; 65 RMSNorms 65 · 4096 · 2 = 532,480;
    # adapters 79,953,920: 3,945,545,728 bytes (3.95 GB against 13.48 GB in bf16)
    assert LINEAR_7B * NF4_BYTES_PER_PARAM == 3_340_771_328
    assert t["weight_bytes"] == 3_340_771_328 + 524_288_000 + 532_480 + 79_953_920


def test_a_frozen_linear_saves_no_input_of_its_own():
    # attention-only adapters: the MLP's up/gate input (T·h) and down input (T·d_ff) are not
    # kept (dgrad needs W, not x), nor the three MLP adapters' x·A (T·r each):
    # 4096 · (4096 + 11008) · 2 + 3 · 4096 · 16 · 2 = 123,731,968 + 393,216 per block
    all_linear = layer_table(LLAMA7, adapter="lora", **KW)
    attention = layer_table(LLAMA7, adapter="lora", lora_targets=("attention",), **KW)
    full = layer_table(LLAMA7, **KW)

    def block0(t):
        return float(t.loc[t["block"] == 0, "activation_bytes"].sum())

    assert block0(all_linear) - block0(attention) == 123_731_968 + 393_216
    # all-linear saves what full training saves plus the 7 adapters' x·A: 7 · 4096 · 16 · 2
    assert block0(all_linear) - block0(full) == 917_504
    head = all_linear.set_index("layer").loc["lm_head", "activation_bytes"]
    assert head == 0.0  # the frozen head's input is not saved


def test_7b_qlora_fits_one_24_gb_card_and_full_bf16_fine_tuning_does_not():
    qlora = rank(_job(adapter="qlora"), devices=["nvidia_rtx4090"]).iloc[0]
    assert bool(qlora["feasible"])
    assert qlora["mem_per_device_bytes"] < 0.9 * 24e9
    full = rank(_job(), devices=["nvidia_rtx4090"]).iloc[0]
    assert not bool(full["feasible"]) and "does not fit" in full["reason"]
    # 16 bytes per parameter at best: 6,738,415,616 · 16 = 107.8 GB > 21.6 GB usable
    assert full["mem_per_device_bytes"] > 16 * LLAMA7.n_params


def test_70b_lora_runs_on_8_gpus_and_full_fine_tuning_does_not_fit():
    job = dict(model="llama-2-70b", n_tokens=4096 * 64 * 10, seq_len=4096,
               global_batch_size=64, n_devices=8)
    devices = ["nvidia_h100_sxm", "nvidia_a100_80gb_sxm"]
    lora = rank(TrainingJob(adapter="lora", **job), devices=devices)
    assert lora["feasible"].all()
    full = rank(TrainingJob(**job), devices=devices)
    # 68,976,648,192 · 16 / 8 = 138 GB per GPU even fully sharded: more than 72 GB usable
    assert not full["feasible"].any()
    assert full["reason"].str.contains("does not fit").all()


# ---- 8-bit AdamW -------------------------------------------------------------------------------
def test_adamw8bit_keeps_a_quarter_of_the_optimizer_moments():
    # two 8-bit moments, 2 bytes per parameter, instead of two fp32 ones (Dettmers et al. 2022)
    assert optimizer_state_bytes("adamw8bit") * 4 == optimizer_state_bytes("adamw") == 8.0
    kw = dict(seq_len=512, batch_size=1)
    fp32 = [totals(layer_table(LLAMA7, precision="fp32", optimizer=o, **kw))["optimizer_bytes"]
            for o in ("adamw", "adamw8bit")]
    assert fp32[0] == 4 * fp32[1]  # fp32 training has no master copy: 8 vs 2 bytes
    bf16 = [totals(layer_table(LLAMA7, optimizer=o, **kw))["optimizer_bytes"]
            for o in ("adamw", "adamw8bit")]
    assert bf16[0] == 2 * bf16[1]  # with the fp32 master: 8 + 4 vs 2 + 4 bytes


# ---- P32: optimizer offload --------------------------------------------------------------------
def test_offload_moves_the_optimizer_off_the_device_and_adds_a_host_transfer():
    # Llama-2-7B LoRA on one H100, ZeRO-0: the adapters' gradients go to the host and their
    # weights come back, (79,953,920 + 79,953,920) B / 64 GB/s = 2.4986 ms
    assert HOST_LINK_BYTES_PER_S == 64e9
    assert optimizer_offload_seconds(grad_bytes=79_953_920, weight_bytes=79_953_920) == (
        pytest.approx(2.4986e-3, rel=1e-4))
    pin = dict(tp=1, pp=1, cp=1, zero_stage=0, micro_batch_size=1, recompute="none")
    on = search(_job(adapter="lora", optimizer_offload=True, **pin),
                devices=["nvidia_h100_sxm"]).iloc[0]
    off = search(_job(adapter="lora", **pin), devices=["nvidia_h100_sxm"]).iloc[0]
    assert on["optimizer_time_s"] == pytest.approx(159_907_840 / 64e9, rel=1e-12)
    assert on["grad_mem_bytes"] == on["optimizer_mem_bytes"] == 0.0
    assert off["grad_mem_bytes"] == 79_953_920 and off["optimizer_mem_bytes"] == 479_723_520
    assert off["mem_per_device_bytes"] - on["mem_per_device_bytes"] == pytest.approx(
        79_953_920 + 479_723_520)


def test_offload_lets_full_7b_fine_tuning_fit_one_24_gb_card():
    # ZeRO-Offload: 13.48 GB of bf16 weights on the card, the 94 GB of gradients and
    # optimizer state on the host; each step moves 2 · 13,476,831,232 B over PCIe: 0.4211 s
    row = rank(_job(optimizer_offload=True), devices=["nvidia_rtx4090"]).iloc[0]
    assert bool(row["feasible"])
    assert row["grad_mem_bytes"] == row["optimizer_mem_bytes"] == 0.0
    assert row["optimizer_time_s"] == pytest.approx(2 * 13_476_831_232 / 64e9, rel=1e-12)


# ---- P31: time and FLOP conventions --------------------------------------------------------------
def test_frozen_matmuls_run_their_backward_once_and_qlora_dequantizes():
    prof = training_profile(LLAMA7, seq_len=4096, precision="bf16", optimizer="adamw",
                            flash_attention=True, causal_attention="full", fused_swiglu=True,
                            adapter="qlora")
    ops = dict(zip(prof.block.names, range(len(prof.block.names)), strict=True))
    mult = prof.block.bwd_mult
    assert mult[ops["attn.q"]] == 1.0 and mult[ops["mlp.down"]] == 1.0
    assert mult[ops["attn.q.lora_a"]] == mult[ops["attn.q.lora_b"]] == 2.0
    assert mult[ops["attn.core"]] == 2.0
    # dequantization of q (4096² = 16,777,216 weights): read 8,654,848 B of NF4, write
    # 33,554,432 B of bf16, 16,777,216 · (0.515869140625 + 2) = 42,209,280 B; the GEMM then
    # reads the 33,554,432 B copy
    assert prof.block.weight_bytes[ops["attn.q.dequant"]] == 16_777_216 * (
        NF4_BYTES_PER_PARAM + 2.0) == 42_209_280
    assert prof.block.weight_bytes[ops["attn.q"]] == 16_777_216 * 2


def test_mfu_counts_a_frozen_base_as_full_training_and_hfu_what_runs():
    table = layer_table(LLAMA7, adapter="lora", causal_attention="full", **KW)
    job = _job(adapter="lora", seq_len=4096, n_tokens=4096 * 16 * 100)
    prof = training_profile_for(job)
    fwd, bwd = table["fwd_flops"].sum(), table["bwd_flops"].sum()
    assert prof.model_flops_per_seq == pytest.approx(3 * fwd, rel=1e-12)  # "6N"
    assert prof.hardware_flops_per_seq[0] == pytest.approx(fwd + bwd, rel=1e-12)
    # the base's linears skip their weight gradients: about 2/3 of full training's FLOPs
    full = training_profile_for(_job(seq_len=4096, n_tokens=4096 * 16 * 100))
    ratio = prof.hardware_flops_per_seq[0] / full.hardware_flops_per_seq[0]
    assert 0.70 < ratio < 0.74  # (1 + 1) / (1 + 2) for linears, attention 3/3


def test_a_lora_step_is_faster_and_reduces_only_the_adapters():
    pin = dict(n_devices=8, tp=1, pp=1, cp=1, zero_stage=3, micro_batch_size=1,
               recompute="none")
    devices = ["nvidia_h100_sxm"]
    lora = search(_job(adapter="lora", **pin), devices=devices).iloc[0]
    full = search(_job(**pin), devices=devices).iloc[0]
    # the frozen GEMMs drop their weight gradients (FLOPs 0.72 ×, above), while the seven
    # adapters per block add memory-bound traffic (A25): 0.86 × full training's compute here
    ratio = lora["compute_time_s"] / full["compute_time_s"]
    assert 0.72 < ratio < 0.9
    assert lora["optimizer_time_s"] < 0.01 * full["optimizer_time_s"]
    prof = training_profile_for(_job(adapter="lora"))
    assert prof.updated_weight_bytes(79_953_920.0) == 79_953_920.0  # the adapters' weights


def test_zero1_all_gathers_only_the_updated_weights():
    def bytes_as_seconds(_op, n_bytes):
        return np.asarray(n_bytes, dtype=float)

    step, micro = data_parallel_seconds(weight_bytes=100.0, updated_weight_bytes=1.0,
                                        grad_bytes=2.0, zero_stage=np.array([1, 3]),
                                        collective=bytes_as_seconds)
    assert step.tolist() == [2.0 + 1.0, 0.0]  # ZeRO-1: reduce-scatter G, all-gather updates
    assert micro.tolist() == [0.0, 2 * 100.0 + 2.0]  # ZeRO-3 still gathers every weight


# ---- inputs --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "field"), [
    (dict(adapter="dora"), "adapter"),
    (dict(adapter="lora", lora_rank=0), "lora_rank"),
    (dict(adapter="lora", lora_rank=5000), "lora_rank"),
    (dict(lora_rank=8), "lora_rank"),
    (dict(lora_targets=("attention",)), "lora_targets"),
    (dict(adapter="lora", lora_targets=("attn.qkv",)), "lora_targets"),
    (dict(adapter="lora", lora_targets=()), "lora_targets"),
    (dict(adapter="qlora", precision="fp8"), "adapter"),
    (dict(optimizer_offload="yes"), "optimizer_offload"),
    (dict(optimizer="adam4bit"), "optimizer"),
])
def test_invalid_fine_tuning_fields_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        _job(**changes)


def test_lora_targets_accept_aliases_and_row_names():
    job = _job(adapter="LoRA", lora_targets="attn.q")
    assert job.adapter == "lora" and job.lora_targets == ("attn.q",)
    with pytest.raises(InputError, match="lora_targets: unknown"):
        lora_target_names(LLAMA7, ("attn.q_b",))


def test_cli_rank_takes_the_fine_tuning_flags(capsys):
    code = main(["rank", "--model", "llama-2-7b", "--train-tokens", "3.3e6", "--seq-len",
                 "2048", "--global-batch", "16", "--adapter", "qlora", "--lora-rank", "8",
                 "--lora-targets", "attention,mlp", "--optimizer", "adamw8bit",
                 "--optimizer-offload", "--devices", "1", "--device-ids", "nvidia_rtx4090"])
    assert code == 0
    out = capsys.readouterr().out
    assert "qlora r=8 on attention,mlp" in out and "optimizer offloaded" in out
    assert main(["rank", "--model", "llama-2-7b", "--train-tokens", "3.3e6", "--seq-len",
                 "2048", "--global-batch", "16", "--lora-rank", "8"]) == 2
    assert "--lora-rank: needs adapter" in capsys.readouterr().err
