"""Tests for planner.hardware.catalog: every reference device, relations, prices, user files,
schema."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import textwrap
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from planner.hardware import catalog as catalog_module
from planner.hardware.catalog import (
    CATALOG_DIR,
    DTYPES,
    FRAME_COLUMNS,
    SCHEMA_PATH,
    Catalog,
    Device,
    Price,
    catalog_json_schema_text,
    load_catalog,
    parse_quantity,
    validate_catalog_file,
)
from planner.hardware.kernels import builtin_kernel_entries, kernel_entry

REFERENCE_CSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "hardware.csv"

# device_id column of shared/reference/hardware.csv (33 rows, compiled 2026-11-28).
REFERENCE_IDS = [
    "nvidia_v100_sxm2_32gb", "nvidia_t4", "nvidia_a10g", "nvidia_a100_40gb_sxm",
    "nvidia_a100_80gb_sxm", "nvidia_l4", "nvidia_l40s", "nvidia_h100_sxm", "nvidia_h100_pcie",
    "nvidia_h200_sxm", "nvidia_b200_hgx", "nvidia_gb200_per_gpu", "nvidia_rtx4090",
    "amd_mi250x", "amd_mi300x", "amd_mi325x",
    "intel_gaudi2", "intel_gaudi3",
    "google_tpu_v4", "google_tpu_v5e", "google_tpu_v5p", "google_tpu_v6e",
    "aws_trainium1", "aws_trainium2", "aws_inferentia2",
    "amd_alveo_u250", "amd_alveo_u280", "amd_alveo_u55c", "amd_alveo_v80",
    "amd_versal_vck5000", "amd_versal_ve2802", "intel_stratix10_nx", "intel_agilex7_m",
]
# Built-in devices beyond the reference CSV get their own test too: add their ids here.
EXTRA_IDS: list[str] = [
    "nvidia_h800_sxm", "nvidia_b300_hgx", "nvidia_gb300_per_gpu", "amd_mi355x", "google_tpu_v7",
    "amd_virtex_vu47p_f2", "amd_virtex_vu9p_f1",
]

FLOAT_LADDER = ["fp64", "fp32", "tf32", ("bf16", "fp16"), "fp8", "fp4"]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def write(tmp_path: Path, text: str, name: str = "user.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# A complete new device, reused by the user-file tests.
NEW_DEVICE = """
[[device]]
id = "acme_x1"
vendor = "Acme"
name = "X1"
kind = "asic"
launch_year = 2025
memory_bytes = "64 GB"
memory_bw_bytes_per_s = "2 TB/s"
price_note = "prototype, not sold"
checked_on = "2026-11-01"
sources = ["Acme X1 datasheet rev 2"]

[device.peak_flops_per_s]
bf16 = "500 TFLOP/s"
fp8 = "1000 TFLOP/s"
"""


# ---------------------------------------------------------------------------------------------
# One test per device
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device_id", REFERENCE_IDS + EXTRA_IDS)
def test_device_entry(catalog: Catalog, device_id: str) -> None:
    d = catalog.get(device_id)
    assert Device.model_validate(d.model_dump()) == d  # round-trips through validation
    # dense peaks: positive, and a lower precision is never slower
    peaks = d.peak_flops_per_s
    assert all(v > 0 and math.isfinite(v) for v in peaks.values())
    ranked = [[g] if isinstance(g, str) else list(g) for g in FLOAT_LADDER]
    for i, lower in enumerate(ranked):
        for higher in ranked[i + 1:]:
            for lo in lower:
                for hi in higher:
                    if lo in peaks and hi in peaks:
                        assert peaks[hi] >= peaks[lo], (hi, lo)
    if "int8" in peaks and "int4" in peaks:
        assert peaks["int4"] >= peaks["int8"]
    for dtype, sparse in d.sparse_peak_flops_per_s.items():
        assert dtype not in peaks or peaks[dtype] < sparse
    # memory and links positive where known; nothing stored as zero
    assert d.memory_bytes > 0
    for value in (d.memory_bw_bytes_per_s, d.scaleup_bw_bytes_per_s,
                  d.scaleout_bw_bytes_per_s, d.tdp_w):
        assert value is None or value > 0
    assert d.scaleup_domain_size is None or d.scaleup_domain_size >= 1
    # units: reading the whole memory once takes 1 ms to 10 s (a GB-for-MB or bits-for-bytes
    # slip lands outside), and the compute-to-bandwidth ratio is 1 to 5,000 FLOP per byte
    if d.memory_bw_bytes_per_s:
        assert 1e-3 <= d.memory_bytes / d.memory_bw_bytes_per_s <= 10.0
        for value in peaks.values():
            assert 1.0 <= value / d.memory_bw_bytes_per_s <= 5000.0
    if d.secondary_memory_bytes:
        assert d.secondary_memory_bw_bytes_per_s
        assert 1e-2 <= d.secondary_memory_bytes / d.secondary_memory_bw_bytes_per_s <= 10.0
    # every device priced (an observed price, or an estimate that says its basis), each price
    # dated no later than the entry was checked, sourced, and for a cloud price per device-hour
    # between $0.01 and $100, for a purchase $100 to $10M
    assert d.prices, f"{d.id}: no price; add one or a flagged estimate (Price.estimate)"
    checked = dt.date.fromisoformat(d.checked_on)
    for p in d.prices:
        assert p.source.strip() and p.basis.strip()
        assert re.match(r"^\d{4}(-\d{2}(-\d{2})?)?$", p.date)
        assert p.date <= d.checked_on, (p.date, d.checked_on)
        if p.estimate:
            assert "estimate" in p.basis.lower(), p.basis
        if p.kind == "cloud":
            assert 0.01 <= (p.usd_per_hour or 0) <= 100.0, p
        else:
            assert 100.0 <= (p.usd or 0) <= 1e7, p
    # an energy figure: the system's power per device at full load, at least the device's own
    assert d.tdp_w or d.system_power_w, f"{d.id}: no TDP and no system power: no energy"
    if d.tdp_w and d.system_power_w:
        assert d.tdp_w <= d.system_power_w <= 4 * d.tdp_w
    if d.idle_power_w:
        assert d.idle_power_w < (d.tdp_w or d.system_power_w or 0)
    assert checked <= dt.date.today()
    # provenance; achieved rates live in the kernel tables (tests/test_kernels.py)
    assert d.sources and all(s.strip() for s in d.sources)
    dt.date.fromisoformat(d.checked_on)
    assert d.id in catalog.kernels or d.id in {x for e in builtin_kernel_entries()
                                               for x in e.devices}


def test_catalog_holds_exactly_the_reference_devices(catalog: Catalog) -> None:
    assert sorted(catalog.ids()) == sorted(REFERENCE_IDS + EXTRA_IDS)
    assert len(catalog) == 33 + len(EXTRA_IDS)


def test_coverage_tpus_and_fpgas_priced_or_explained(catalog: Catalog) -> None:
    tpus = catalog.filter(kinds=["tpu"])
    fpgas = catalog.filter(kinds=["fpga"])
    assert len(tpus) >= 4 and len(fpgas) >= 5
    for d in [*tpus, *fpgas]:
        assert d.prices or len(d.price_note) > 20, d.id
    assert all(d.cloud_price() is not None for d in tpus)


# ---------------------------------------------------------------------------------------------
# Data traps (reference README §2-§4)
# ---------------------------------------------------------------------------------------------


def test_units_converted_once(catalog: Catalog) -> None:
    assert catalog.get("google_tpu_v4").memory_bytes == 32 * 2**30          # "32 GiB"
    assert catalog.get("aws_trainium2").memory_bytes == 96 * 2**30          # "96 GiB"
    for device_id in ("aws_trainium1", "aws_inferentia2"):
        assert catalog.get(device_id).memory_bw_bytes_per_s == 820 * 2**30  # "820 GiB/s"
    assert catalog.get("nvidia_h100_sxm").memory_bytes == 80e9              # "80 GB"
    assert catalog.get("nvidia_h100_sxm").scaleup_bw_bytes_per_s == 450e9   # 900 bidirectional / 2
    assert catalog.get("nvidia_b200_hgx").scaleup_bw_bytes_per_s == 900e9   # 1,800 / 2
    assert catalog.get("nvidia_h100_sxm").scaleout_bw_bytes_per_s == 50e9   # 400 Gb/s / 8
    assert catalog.get("intel_gaudi3").scaleup_bw_bytes_per_s == 525e9      # 21 x 200 Gb/s / 8


def test_dense_not_sparse_peaks(catalog: Catalog) -> None:
    h100 = catalog.get("nvidia_h100_sxm")
    assert h100.peak("bf16") == 989.4e12          # headline 1,979 with sparsity
    assert h100.sparse_peak_flops_per_s["bf16"] == 1979e12
    assert catalog.get("nvidia_l4").peak("fp16") == 121e12        # 242 sparse / 2
    assert catalog.get("nvidia_gb200_per_gpu").peak("fp4") == 10_000e12  # 40 PF superchip / 4
    assert catalog.get("nvidia_rtx4090").peak("fp16") == 165.2e12  # FP32 accumulate
    assert catalog.get("intel_gaudi3").peak("fp8") == catalog.get("intel_gaudi3").peak("bf16")
    assert catalog.get("amd_alveo_u250").peak("int8") == 33.3e12    # exact decimal, not 33.29..e12


def test_unknown_values_are_absent_not_zero(catalog: Catalog) -> None:
    assert catalog.get("google_tpu_v7").tdp_w is None  # Google publishes none
    assert catalog.get("nvidia_v100_sxm2_32gb").peak("bf16") is None
    assert catalog.get("intel_agilex7_m").peak_flops_per_s == {}  # no DSP clock published
    assert catalog.get("amd_versal_ve2802").memory_bw_bytes_per_s is None
    frame = catalog.to_frame().set_index("id")
    assert math.isnan(frame.loc["google_tpu_v7", "tdp_w"])
    assert math.isnan(frame.loc["amd_versal_ve2802", "memory_bw_bytes_per_s"])
    numeric = frame.select_dtypes("number").drop(columns=["n_prices"])  # a count may be 0
    assert not (numeric == 0).any().any()


def test_peak_rejects_unknown_dtype(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="unknown dtype 'bf17'; allowed: fp64"):
        catalog.get("nvidia_h100_sxm").peak("bf17")


def test_no_device_carries_an_mfu_input() -> None:
    """Issue 9: efficiency is measured per kernel; a catalog entry has no MFU-like field."""
    assert "efficiency" not in Device.model_fields
    with pytest.raises(ValueError, match="efficiency"):
        Device.model_validate({**load_catalog().get("nvidia_h100_sxm").model_dump(),
                               "efficiency": {"train_compute_frac": 0.4}})


def test_values_match_reference_csv(catalog: Catalog) -> None:
    """Every number equals the reference CSV's leading number, except the listed decisions
    (docs/catalog.md explains each)."""
    if not REFERENCE_CSV.exists():
        pytest.skip("shared/reference/hardware.csv not available")
    csv = pd.read_csv(REFERENCE_CSV, dtype=str)
    assert sorted(csv["device_id"]) == sorted(REFERENCE_IDS)
    deliberate = {
        ("google_tpu_v4", "memory_bytes"), ("google_tpu_v5p", "memory_bytes"),
        ("aws_trainium1", "memory_bytes"), ("aws_trainium2", "memory_bytes"),
        ("aws_inferentia2", "memory_bytes"), ("aws_trainium1", "memory_bw_bytes_per_s"),
        ("aws_inferentia2", "memory_bw_bytes_per_s"),                        # GiB converted
        *((i, "fp64") for i in ("nvidia_a100_40gb_sxm", "nvidia_a100_80gb_sxm",
                                "nvidia_h100_sxm", "nvidia_h100_pcie", "nvidia_h200_sxm",
                                "amd_mi250x", "amd_mi300x", "amd_mi325x")),  # matrix rate
        ("amd_mi250x", "fp32"),                                              # packed matrix
        ("nvidia_h100_pcie", "tdp_w"),                                       # 300-350 -> 350
        ("nvidia_a10g", "tdp_w"),            # the A10's 150 W -> G5's nvidia-smi limit 300 W
        ("aws_trainium2", "tdp_w"),          # unconfirmed -> ~500 W (SemiAnalysis)
        ("intel_gaudi2", "scaleup_bw_bytes_per_s"),
        ("intel_gaudi3", "scaleup_bw_bytes_per_s"),                          # 21 of 24 ports
        ("aws_trainium2", "scaleup_bw_bytes_per_s"),
        ("aws_inferentia2", "scaleup_bw_bytes_per_s"),                       # halved, unconfirmed
        *((i, "scaleup_domain_size") for i in ("nvidia_t4", "nvidia_a10g", "nvidia_l4",
                                               "nvidia_l40s", "nvidia_rtx4090")),
        ("amd_alveo_u280", "fp32"),          # a measured INT8 rate, not an FP32 peak
        ("intel_stratix10_nx", "fp16"),      # block FP16 is not IEEE FP16
        ("amd_versal_ve2802", "memory_bytes"),  # board memory (VEK280)
        # FPGA peaks derived from unit counts x ops per cycle x clock, 16-bit floats on the
        # fp32 units where there is no native 16-bit float, card power estimates and FPGA
        # rings (issue 12; each listed in docs/catalog.md and the entry's notes/unconfirmed)
        *((i, "fp16") for i in ("amd_alveo_u250", "amd_alveo_u280", "amd_alveo_u55c",
                                "amd_alveo_v80", "amd_versal_vck5000")),
        *((i, "scaleup_domain_size") for i in ("amd_alveo_u250", "amd_alveo_u280",
                                               "amd_alveo_u55c", "amd_alveo_v80")),
        ("amd_alveo_u55c", "int8"), ("amd_alveo_v80", "int8"), ("amd_alveo_v80", "fp32"),
        ("amd_alveo_v80", "bf16"), ("amd_versal_vck5000", "fp32"),
        ("amd_versal_vck5000", "bf16"), ("amd_versal_ve2802", "bf16"),
        ("amd_versal_ve2802", "int8"), ("amd_versal_ve2802", "int4"),
        *((i, "tdp_w") for i in ("amd_alveo_v80", "amd_versal_vck5000", "amd_versal_ve2802",
                                 "intel_stratix10_nx", "intel_agilex7_m")),
        ("google_tpu_v4", "tdp_w"),  # "90/170/192 W min/mean/max": the 192 W max as TDP
        # TPU/Trainium/Inferentia TDPs derived from the vendors' perf-per-watt ratios
        *((i, "tdp_w") for i in ("google_tpu_v5e", "google_tpu_v5p", "google_tpu_v6e",
                                 "aws_trainium1", "aws_inferentia2")),
    }
    columns = {f"{d}_tflops" if d in ("fp64", "fp32") else
               f"{d}_{'tops' if d.startswith('int') else 'tflops'}_dense": (d, 1e12)
               for d in DTYPES}
    fields = {"mem_gb": ("memory_bytes", 1e9), "mem_bw_gbs": ("memory_bw_bytes_per_s", 1e9),
              "scaleup_bw_gbs_per_direction": ("scaleup_bw_bytes_per_s", 1e9),
              "scaleup_domain_devices": ("scaleup_domain_size", 1.0), "tdp_w": ("tdp_w", 1.0)}

    def leading(cell: object) -> float | None:
        if not isinstance(cell, str):
            return None
        match = re.match(r"\s*(?:up to\s*)?~?([0-9][0-9.,]*)", cell)
        return float(match.group(1).replace(",", "")) if match else None

    mismatches = []
    for row in csv.itertuples(index=False):
        d = catalog.get(row.device_id)
        assert d.launch_year == int(row.launch_year)
        checks = [(col, name, d.peak(name), scale) for col, (name, scale) in columns.items()]
        checks += [(col, name, getattr(d, name), scale) for col, (name, scale) in fields.items()]
        for col, name, value, scale in checks:
            expected = leading(getattr(row, col))
            got = None if value is None else value / scale
            both = expected is not None and got is not None
            same = (expected is None and got is None) or (
                both and math.isclose(expected, got, rel_tol=1e-6))
            if not same and (row.device_id, name) not in deliberate:
                mismatches.append((row.device_id, name, getattr(row, col), got))
    assert mismatches == []


# ---------------------------------------------------------------------------------------------
# Prices
# ---------------------------------------------------------------------------------------------


def test_cloud_price_selection(catalog: Catalog) -> None:
    h100 = catalog.get("nvidia_h100_sxm")
    cheapest = h100.cloud_price()
    assert (cheapest.provider, cheapest.usd_per_hour, cheapest.date) == (
        "RunPod", 2.69, "2026-11-09")
    aws = h100.cloud_price(provider="aws")  # case-insensitive; 2026 price supersedes 2023
    assert (aws.usd_per_hour, aws.date) == (6.88, "2026-11-09")
    block = h100.cloud_price(contract="capacity-block")
    assert (block.usd_per_hour, block.date) == (4.916, "2024")
    assert h100.cloud_price(contract=None).usd_per_hour == 2.69
    assert h100.cloud_price(provider="Oracle") is None
    gb200 = catalog.get("nvidia_gb200_per_gpu").cloud_price()  # $9.08 per superchip / 2
    assert (gb200.provider, gb200.usd_per_hour) == ("Spheron", 4.54)
    # a capacity block states its scale: 64 instances x 8 GPUs (P15b, A16)
    assert block.max_devices == 512
    with pytest.raises(ValueError, match="unknown cloud contract 'list'"):
        h100.cloud_price(contract="list")


def test_price_overrides_are_dated_today(catalog: Catalog) -> None:
    h100 = catalog.get("nvidia_h100_sxm")
    mine = h100.cloud_price(override_usd_per_hour=1.5)
    assert (mine.provider, mine.usd_per_hour, mine.date) == ("user override", 1.5,
                                                              dt.date.today().isoformat())
    bought = h100.purchase_price(override_usd=25_000)
    assert (bought.usd, bought.kind, bought.contract) == (25_000, "purchase", "list")


def test_purchase_price_is_most_recent(catalog: Catalog) -> None:
    price = catalog.get("nvidia_h100_sxm").purchase_price()
    assert (price.usd, price.date) == (30_000, "2025")      # not the 2024-06 $30,678
    assert catalog.get("google_tpu_v4").purchase_price() is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "cloud", "contract": "on-demand", "usd": 3.0}, "needs usd_per_hour"),
        ({"kind": "purchase", "contract": "list", "usd_per_hour": 3.0}, "needs usd"),
        ({"kind": "cloud", "contract": "list", "usd_per_hour": 3.0}, "contract is one of"),
        ({"kind": "cloud", "contract": "on-demand", "usd_per_hour": -1.0}, "greater than 0"),
        ({"kind": "cloud", "contract": "on-demand", "usd_per_hour": 1.0, "date": "2026-13"},
         "not a calendar date"),
        ({"kind": "cloud", "contract": "on-demand", "usd_per_hour": 1.0, "date": "Nov 2026"},
         "is not YYYY"),
        ({"kind": "cloud", "contract": "on-demand", "usd_per_hour": 1.0, "date": "2999-01"},
         "in the future"),
    ],
)
def test_price_validation(fields: dict, message: str) -> None:
    base = {"provider": "X", "basis": "b", "date": "2026-01", "source": "s"}
    with pytest.raises(ValueError, match=message):
        Price.model_validate({**base, **fields})


# ---------------------------------------------------------------------------------------------
# Catalog object
# ---------------------------------------------------------------------------------------------


def test_get_suggests_closest_ids(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="unknown device 'h100'; did you mean nvidia_h100_sxm"):
        catalog.get("h100")
    with pytest.raises(ValueError, match="did you mean google_tpu_v5e"):
        catalog.get("google_tpu_v5")


def test_filter_contains_len(catalog: Catalog) -> None:
    tpus = catalog.filter(kinds=["tpu"])
    assert tpus.ids() == ["google_tpu_v4", "google_tpu_v5e", "google_tpu_v5p", "google_tpu_v6e",
                          "google_tpu_v7"]
    assert "google_tpu_v4" in tpus and "nvidia_h100_sxm" not in tpus
    assert catalog.get("google_tpu_v4") in tpus
    two = catalog.filter(ids=["nvidia_t4", "google_tpu_v4"])
    assert len(two) == 2 and [d.id for d in two] == ["google_tpu_v4", "nvidia_t4"]
    with pytest.raises(ValueError, match="unknown kind 'npu'; allowed: gpu, tpu, fpga"):
        catalog.filter(kinds=["npu"])
    with pytest.raises(ValueError, match="duplicate device id 'nvidia_t4'"):
        Catalog((catalog.get("nvidia_t4"), catalog.get("nvidia_t4")))


def test_to_frame_columns_and_units(catalog: Catalog) -> None:
    frame = catalog.to_frame()
    assert tuple(frame.columns) == FRAME_COLUMNS
    assert {"id", "vendor", "name", "kind", "peak_bf16_flops_per_s", "peak_int8_ops_per_s",
            "memory_bytes", "cloud_usd_per_hour", "cloud_price_date"} <= set(frame.columns)
    row = frame.set_index("id").loc["nvidia_h100_sxm"]
    assert row["peak_bf16_flops_per_s"] == 989.4e12
    assert row["memory_bw_bytes_per_s"] == 3.35e12
    assert (row["cloud_usd_per_hour"], row["cloud_price_provider"], row["cloud_price_date"]) == (
        2.69, "RunPod", "2026-11-09")
    aws = catalog.to_frame(provider="AWS").set_index("id")
    assert aws.loc["nvidia_h100_sxm", "cloud_usd_per_hour"] == 6.88
    assert math.isnan(aws.loc["nvidia_rtx4090", "cloud_usd_per_hour"])


def test_parse_quantity() -> None:
    assert parse_quantity("400 Gb/s", "B/s") == 50e9      # bits / 8
    assert parse_quantity("32 GiB", "B") == 32 * 2**30
    assert parse_quantity("1.5e3 GB", "B") == 1.5e12
    assert parse_quantity(7.0, "B") == 7.0
    with pytest.raises(ValueError, match="unit one of B/s, MB/s, GB/s"):
        parse_quantity("3350 GBps", "B/s")


# ---------------------------------------------------------------------------------------------
# User files: add, override, and every kind of bad file
# ---------------------------------------------------------------------------------------------


def test_add_device_through_user_file(tmp_path: Path) -> None:
    path = write(tmp_path, NEW_DEVICE)
    cat = load_catalog(path)
    x1 = cat.get("acme_x1")
    assert x1.memory_bw_bytes_per_s == 2e12 and x1.peak("fp8") == 1e15
    assert kernel_entry(x1, cat.kernels)[1].startswith("no kernel table for acme_x1")
    assert cat.origins["acme_x1"] == (str(path),)
    assert len(cat) == len(load_catalog()) + 1
    assert [d.id for d in validate_catalog_file(path)] == ["acme_x1"]


def test_override_appends_price_and_keeps_the_rest(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, """
        [[device]]
        id = "nvidia_h100_sxm"
        sources = ["our contract"]

        [[device.prices]]
        kind = "cloud"
        provider = "Acme Cloud"
        basis = "negotiated"
        contract = "on-demand"
        usd_per_hour = 1.80
        date = "2026-11-20"
        source = "contract #1"
    """)
    before = catalog.get("nvidia_h100_sxm")
    after = load_catalog(path).get("nvidia_h100_sxm")
    assert len(after.prices) == len(before.prices) + 1
    assert after.sources == (*before.sources, "our contract")
    assert after.cloud_price().provider == "Acme Cloud"       # now the cheapest on-demand
    assert after.cloud_price(provider="AWS").usd_per_hour == 6.88
    assert after.peak_flops_per_s == before.peak_flops_per_s
    assert load_catalog().get("nvidia_h100_sxm") == before   # built-in untouched


def test_override_merges_peaks_and_replaces_scalars(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [[device]]
        id = "google_tpu_v6e"
        tdp_w = "300 W"

        [device.peak_flops_per_s]
        fp8 = "1836 TFLOP/s"
    """)
    v6e = load_catalog(path).get("google_tpu_v6e")
    assert v6e.tdp_w == 300 and v6e.peak("fp8") == 1.836e15 and v6e.peak("bf16") == 918e12


def test_example_user_file_loads() -> None:
    example = CATALOG_DIR / "examples" / "my_prices.toml"
    cat = load_catalog(example)
    assert "nvidia_a100_80gb_pcie" in cat
    price = cat.get("nvidia_h100_sxm").cloud_price(provider="Acme Cloud", contract="reserved")
    assert (price.usd_per_hour, price.date) == (2.20, "2026-11-15")


def test_directory_of_user_files(tmp_path: Path) -> None:
    write(tmp_path, NEW_DEVICE, "a.toml")
    write(tmp_path, '[[device]]\nid = "acme_x1"\ntdp_w = 400\n', "b.toml")
    x1 = load_catalog(tmp_path).get("acme_x1")
    assert x1.tdp_w == 400                                   # b.toml applies on top of a.toml


BAD_FILES = [
    pytest.param(
        '[[device]]\nid = "nvidia_h100_sxm"\ncolour = "green"\n',
        r"user\.toml: entry 'nvidia_h100_sxm': colour: unknown field; allowed: id, vendor",
        id="unknown-field-override"),
    pytest.param(
        NEW_DEVICE.replace('vendor = "Acme"', 'vendor = "Acme"\nfoo = 1'),
        r"user\.toml: entry 'acme_x1': foo: unknown field; allowed: id, vendor",
        id="unknown-field-new"),
    pytest.param(
        NEW_DEVICE + '\n[[device.prices]]\nkind = "cloud"\nprovider = "A"\nbasis = "b"\n'
        'contract = "on-demand"\nusd_per_month = 3.0\ndate = "2026-01"\nsource = "s"\n',
        r"entry 'acme_x1': prices\[0\]\.usd_per_month: unknown field; allowed: kind, provider",
        id="unknown-price-field"),
    pytest.param(
        NEW_DEVICE.replace('"2 TB/s"', '-5e9'),
        r"entry 'acme_x1': memory_bw_bytes_per_s: Input should be greater than 0",
        id="negative-bandwidth"),
    pytest.param(
        '[[device]]\nid = "nvidia_h100_sxm"\nscaleup_bw_bytes_per_s = "-450 GB/s"\n',
        r"entry 'nvidia_h100_sxm': scaleup_bw_bytes_per_s: cannot read '-450 GB/s'",
        id="negative-bandwidth-string"),
    pytest.param(
        NEW_DEVICE.replace('"2 TB/s"', '"2 TBps"'),
        r"entry 'acme_x1': memory_bw_bytes_per_s: cannot read '2 TBps'.*GB/s",
        id="bad-unit"),
    pytest.param(
        NEW_DEVICE + NEW_DEVICE,
        r"entry 'acme_x1': id: duplicate id \(also entry #1 in this file\)",
        id="duplicate-id"),
    pytest.param(
        NEW_DEVICE.replace('"2026-11-01"', '"2026-02-30"'),
        r"entry 'acme_x1': checked_on: date '2026-02-30' is not a calendar date",
        id="bad-date"),
    pytest.param(
        '[[device]]\nid = "nvidia_t4"\n[[device.prices]]\nkind = "cloud"\nprovider = "A"\n'
        'basis = "b"\ncontract = "on-demand"\nusd_per_hour = 1.0\ndate = "last week"\n'
        'source = "s"\n',
        r"entry 'nvidia_t4': prices\[0\]\.date: date 'last week' is not YYYY",
        id="bad-price-date-override"),
    pytest.param(
        NEW_DEVICE.replace('fp8 = "1000 TFLOP/s"', 'fp8 = "400 TFLOP/s"'),
        r"entry 'acme_x1': peak_flops_per_s\.fp8: 400 TFLOP/s is below the bf16 peak",
        id="fp8-below-bf16"),
    pytest.param(
        '[[device]]\nid = "nvidia_h100_sxm"\n[device.peak_flops_per_s]\nbf16 = "1979 TFLOP/s"\n',
        r"entry 'nvidia_h100_sxm': peak_flops_per_s\.bf16: 1979 TFLOP/s is not below the "
        r"2:4-sparse headline",
        id="sparse-copied-as-dense"),
    pytest.param(
        NEW_DEVICE.replace('bf16 = "500 TFLOP/s"', 'bf17 = "500 TFLOP/s"'),
        r"entry 'acme_x1': peak_flops_per_s\.bf17: Input should be 'fp64', 'fp32'",
        id="unknown-dtype"),
    pytest.param(
        NEW_DEVICE.replace('price_note = "prototype, not sold"', ''),
        r"entry 'acme_x1': price_note: no price given",
        id="no-price-no-reason"),
    pytest.param(
        NEW_DEVICE.replace('id = "acme_x1"', 'id = "nvidia_h100_sxn"').replace(
            'vendor = "Acme"\n', ''),
        r"entry 'nvidia_h100_sxn': vendor: required field is missing.*did you mean "
        r"nvidia_h100_sxm",
        id="typo-id-incomplete"),
    pytest.param(
        NEW_DEVICE.replace('kind = "asic"', 'kind = "npu"'),
        r"entry 'acme_x1': kind: Input should be 'gpu', 'tpu', 'fpga', 'asic' or 'other'",
        id="bad-kind"),
    pytest.param(
        NEW_DEVICE.replace('memory_bytes = "64 GB"', 'memory_bytes = 0'),
        r"entry 'acme_x1': memory_bytes: Input should be greater than 0",
        id="zero-memory"),
    pytest.param(
        NEW_DEVICE.replace('sources = ["Acme X1 datasheet rev 2"]', 'unconfirmed = ["tdp_w"]\n'
                           'sources = ["x"]'),
        r"entry 'acme_x1': unconfirmed: 'tdp_w' is not a field with a value here",
        id="unconfirmed-absent-field"),
    pytest.param(
        '[[device]]\nid = "nvidia_t4"\ntdp_w = 70\nname = = "T4"\n',
        r"user\.toml: entry 'nvidia_t4': \(syntax\): invalid TOML: .*line 4",
        id="bad-toml"),
    pytest.param(
        '[devices]\nid = "x"\n',
        r"user\.toml: top level: devices: unknown key; a catalog file holds only \[\[device\]\]",
        id="bad-top-level"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_user_file_names_file_entry_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as info:
        load_catalog(path)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=message):
        validate_catalog_file(path)


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.toml: no such file"):
        load_catalog(tmp_path / "nope.toml")
    other = tmp_path / "devices.yaml"
    other.write_text("device: []\n")
    with pytest.raises(ValueError, match=r"devices\.yaml: catalog files are TOML"):
        load_catalog(other)


def test_builtin_duplicate_ids_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, NEW_DEVICE, "a.toml")
    write(tmp_path, NEW_DEVICE, "b.toml")
    monkeypatch.setattr(catalog_module, "CATALOG_DIR", tmp_path)
    catalog_module._builtin.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"b\.toml: entry 'acme_x1': id: duplicate id, "
                                             r"already defined in .*a\.toml"):
            load_catalog()
    finally:
        catalog_module._builtin.cache_clear()


# ---------------------------------------------------------------------------------------------
# JSON Schema
# ---------------------------------------------------------------------------------------------


def test_schema_json_is_up_to_date() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == catalog_json_schema_text(), (
        "run `planner catalog schema --write`"
    )


def test_catalog_files_match_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = [*sorted(CATALOG_DIR.glob("*.toml")), CATALOG_DIR / "examples" / "my_prices.toml"]
    for path in files:
        errors = list(validator.iter_errors(tomllib.loads(path.read_text(encoding="utf-8"))))
        assert errors == [], (path, errors[:1])
    bad = {"device": [{"id": "x", "memory_bw_bytes_per_s": "3 GBps"}]}
    assert list(validator.iter_errors(bad))


def test_check_catalog_entries_reports_each_entry(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        '[[device]]\nid = "nvidia_h100_sxm"\n'
        '[[device.prices]]\nkind = "cloud"\nprovider = "Us"\nbasis = "negotiated"\n'
        'contract = "reserved"\nusd_per_hour = 1.5\ndate = "2026-11"\nsource = "our contract"\n'
        '[[device]]\nid = "nvidia_a100_80gb_sxm"\nmemory_bw_bytes_per_s = -1\n'
    )
    from planner.hardware.catalog import check_catalog_entries

    checked = check_catalog_entries(path)
    assert list(checked["status"]) == ["changes a built-in device", "error"]
    assert "mine.toml: entry 'nvidia_a100_80gb_sxm': memory_bw_bytes_per_s: Input should be " \
        "greater than 0" in checked["message"][1]


def test_check_catalog_entries_bad_toml(tmp_path):
    from planner.hardware.catalog import check_catalog_entries

    path = tmp_path / "bad.toml"
    path.write_text("[[device]\nid = 1\n")
    checked = check_catalog_entries(path)
    assert list(checked["status"]) == ["error"] and "invalid TOML" in checked["message"][0]
