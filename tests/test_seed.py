"""The seed document's Sec. 4.2-4.3 BERT example, reproduced and checked."""

from __future__ import annotations

import math

import pytest

import planner


@pytest.fixture(scope="module")
def seed():
    return planner.seed_example().set_index("item")


def _row(seed, prefix):
    return seed[[i.startswith(prefix) for i in seed.index]].iloc[0]


def test_document_c_is_recomputed(seed):
    row = _row(seed, "C = L·H·M³")
    assert row["document"] == 2.17e10  # as printed in Sec. 4.3
    # 12 * 768 * 2**24 = 154,618,822,656
    assert row["recomputed"] == 12 * 768 * 2**24 == 154_618_822_656
    assert row["verdict"] == "arithmetic wrong"


def test_per_layer_model_forward_flops_for_bert_base(seed):
    # 128 tokens, fp32, matmuls: 12 layers * (4*768^2 + 2*768*3072) weights * 2 * 128 tokens
    # = 12 * 7,077,888 * 256 = 21,743,271,936; attention 12 * 2 * (2*12*128*128*64) =
    # 12 * 50,331,648 = 603,979,776; pooler 2*768*768 = 1,179,648; plus element-wise terms.
    row = _row(seed, "C = L·H·M³")
    matmul = 21_743_271_936 + 603_979_776 + 1_179_648
    assert matmul < row["per_layer_model"] < matmul * 1.01


def test_efficiency_is_a_time(seed):
    row = _row(seed, "'Efficiency'")
    assert row["unit"] == "s"
    assert row["document"] == 0.0084
    assert row["recomputed"] == pytest.approx(2.17e10 / 2.6e12)  # 0.00835 s, not a fraction
    assert "seconds" in row["explanation"]


def test_params_per_layer(seed):
    # one BERT-base layer: 4*(768*768+768) + (768*3072+3072) + (3072*768+768) + 2*2*768
    assert _row(seed, "H = 768")["per_layer_model"] == 7_087_872


def test_storage_in_bits_and_bytes(seed):
    row = _row(seed, "S = Σ|w|·bits")
    assert row["recomputed"] == 108_310_272 * 32  # bits
    assert row["per_layer_model"] == 108_310_272 * 4  # bytes


def test_conll_finetune_steps(seed):
    row = _row(seed, "Sec. 5 fine-tune")
    # ceil(14041 / 8) = 1756 steps per epoch, 5268 steps in 3 epochs
    assert "5,268 steps" in row["explanation"]
    assert math.isnan(row["document"])
