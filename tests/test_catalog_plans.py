"""Plans on the built-in catalog that issue 12 asked for: FPGAs that serve and are priced, a
70B model split over several FPGAs, honest training refusals, energy from system power, and
prices that hold at the job's scale (docs/planning.md P15b, P16a, P17, P19b)."""

from __future__ import annotations

import numpy as np
import pytest

from planner import InferenceJob, TrainingJob, load_catalog, rank
from planner.plan.cost import CostOptions, device_prices
from planner.units import JOULES_PER_KWH

CATALOG = load_catalog()
FPGAS = [d.id for d in CATALOG if d.kind == "fpga"]


def _serve_7b_int4() -> InferenceJob:
    return InferenceJob(model="llama-2-7b", prompt_len=128, output_len=128, precision="int4",
                        concurrent_requests=1)


def test_three_fpgas_serve_llama2_7b_int4_with_a_price():
    df = rank(_serve_7b_int4(), CATALOG, kinds=["fpga"], objective="cost")
    ok = df[df["feasible"] & np.isfinite(df["cost_usd"]) & np.isfinite(df["energy_j"])]
    assert len(ok) >= 3, df[["device", "reason", "cost_note"]].to_string()
    # weight-only int4 computes in bf16/fp16 on an FPGA as on a GPU (one meaning per policy)
    assert set(ok["peak_dtype"].astype(str)) <= {"bf16", "fp16"}
    # decode is bandwidth-bound: ~3.5 GB of int4 weights per token at most at the HBM peak
    bw = ok["device"].astype(str).map({d.id: d.memory_bw_bytes_per_s for d in CATALOG})
    assert (ok["tpot_s"] >= 3.3e9 / bw).all()


def test_a_70b_int4_model_is_split_over_several_fpgas():
    job = InferenceJob(model="llama-2-70b", prompt_len=128, output_len=128, precision="int4",
                       concurrent_requests=1)
    df = rank(job, CATALOG, kinds=["fpga"])
    split = df[df["feasible"] & (df["tp"] > 1)]
    assert not split.empty, df[["device", "tp", "reason"]].to_string()


def test_fpgas_and_inference_chips_are_refused_for_training_with_the_reason():
    job = TrainingJob(model="llama-2-7b", n_tokens=1e9, seq_len=2048, global_batch_size=64)
    df = rank(job, CATALOG, kinds=["fpga"]).set_index("device")
    assert not df["feasible"].any()
    assert all("no training software stack" in r for r in df["reason"])
    inf2 = rank(job, CATALOG, devices=["aws_inferentia2"]).iloc[0]
    assert not inf2["feasible"] and "inference-only chip" in inf2["reason"]


def test_h100_energy_is_a_system_level_figure():
    # P16a at full load: the DGX H100's 10.2 kW / 8 = 1,275 W per GPU (NVIDIA DGX H100 user
    # guide), 1.0-1.5 kWh per device-hour, not the chip's 0.7
    h100 = CATALOG.get("nvidia_h100_sxm")
    assert h100.system_power_w == pytest.approx(1275.0)
    p = device_prices([h100], CostOptions(power_frac=1.0, pue=1.0))
    assert 1.0 <= p.power_w[0] * 3600 / JOULES_PER_KWH <= 1.5


def test_every_device_has_an_energy_figure_and_a_price():
    p = device_prices(list(CATALOG), CostOptions())
    assert np.isfinite(p.power_w).all()
    for d in CATALOG:
        assert d.cloud_price(contract=None) or d.purchase_price(), d.id


def test_a_job_of_thousands_of_gpus_is_not_priced_at_a_single_node_rate_silently():
    job = TrainingJob(model="llama-2-70b", n_tokens=2e12, seq_len=4096, global_batch_size=1024,
                      n_devices=2048)
    row = rank(job, CATALOG, devices=["nvidia_h100_sxm"]).iloc[0]
    assert row["feasible"]
    assert row["price_at_scale"] or row["price_beyond_offer"]
    if row["price_beyond_offer"]:
        assert "no price in the catalog is offered for 2,048 devices" in row["cost_note"]


def test_weights_beyond_hbm_are_read_from_ddr_on_every_pass():
    # P19b: Llama-2-7B in bf16 on one U280: 13,476,831,232 B of weights and a paged KV cache
    # of one sequence's whole context plus half a block, 128 + 128 + 16/2 = 264 tokens x
    # 524,288 B = 138,412,032 B (P4b), 13.615 GB; 0.9 x 8 GB of HBM usable, so 6.415 GB
    # live in the 32 GB DDR4. Each decode pass reads them at 38.5 GB/s instead of 460 GB/s,
    # at the FPGA copy fraction 0.648 (1 GB and beyond):
    # 6.4152e9 / (0.648 x 38.5e9) - 6.4152e9 / (0.648 x 460e9) = 0.2571 - 0.0215 = 0.2356 s
    job = InferenceJob(model="llama-2-7b", prompt_len=128, output_len=128, precision="bf16",
                       concurrent_requests=1, tp=1, pp=1)
    u280 = CATALOG.get("amd_alveo_u280")
    spilled = rank(job, [u280]).iloc[0]
    assert spilled["feasible"]
    assert spilled["secondary_mem_bytes"] == pytest.approx(
        13_476_831_232 + 138_412_032 - 7.2e9, rel=1e-3)
    big_hbm = u280.model_copy(update={"memory_bytes": 40e9})  # same rates, no spill
    whole = rank(job, [big_hbm]).iloc[0]
    assert whole["secondary_mem_bytes"] == 0
    assert spilled["tpot_s"] - whole["tpot_s"] == pytest.approx(0.2356, rel=0.01)
    # without the DDR tier the model does not fit the card at all
    no_ddr = u280.model_copy(update={"secondary_memory_bytes": None,
                                     "secondary_memory_bw_bytes_per_s": None})
    assert rank(job, [no_ddr]).iloc[0]["reason"].startswith("does not fit")


def test_a_kv_cache_larger_than_hbm_does_not_fit_even_with_ddr_room():
    # P19b keeps the KV cache in HBM: 4 sequences of ~4,048 tokens at 512 KiB per token
    # (Llama-2-7B, bf16 KV) = 8.5 GB > 7.2 GB usable HBM on a U280, though weights + KV
    # (~12 GB with int4 weights) fit the 36 GB usable of HBM + DDR
    job = InferenceJob(model="llama-2-7b", prompt_len=4000, output_len=96, precision="int4",
                       concurrent_requests=4, tp=1, batch_size=4)
    row = rank(job, [CATALOG.get("amd_alveo_u280")]).iloc[0]
    assert not row["feasible"]
    assert row["reason"].startswith("does not fit: the KV cache needs 8.")
    assert "7.2 GB usable of 8 GB" in row["reason"]
