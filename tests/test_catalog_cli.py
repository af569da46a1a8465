"""Tests for `planner catalog list | show | validate | schema` (planner/cli/catalog.py)."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from planner.cli import catalog as cli
from planner.cli import main
from planner.hardware.catalog import CATALOG_DIR, FRAME_COLUMNS

EXAMPLE = CATALOG_DIR / "examples" / "my_prices.toml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["catalog", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_register_adds_catalog_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="planner")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["catalog", "list", "--kind", "tpu", "fpga"])
    assert args.handler is cli.cmd_list and args.kind == ["tpu", "fpga"]
    args = parser.parse_args(["catalog", "show", "nvidia_h100_sxm"])
    assert args.handler is cli.cmd_show
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["catalog", "list", "--kind", "npu"])
    assert info.value.code == 2


def test_list_shows_every_device_with_units(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "bf16 TFLOP/s" in out and "mem GB/s" in out and "$/h" in out
    assert "nvidia_h100_sxm" in out and "amd_alveo_u280" in out and "40 devices" in out
    h100 = next(line for line in out.splitlines() if line.startswith("nvidia_h100_sxm"))
    assert "989.4" in h100 and "2.69" in h100 and "2026-11-09" in h100


def test_list_filters_by_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--kind", "tpu", "--kind", "fpga")
    rows = [line.split()[0] for line in out.splitlines()[2:] if line and not line[0].isdigit()]
    assert code == 0 and "15 devices" in out
    assert all(r.startswith(("google_tpu", "amd_alveo", "amd_versal", "amd_virtex", "intel_"))
               for r in rows)


def test_list_csv_has_si_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.csv"
    code, out, _ = run(capsys, "list", "--csv", str(path), "--provider", "AWS")
    assert code == 0 and "wrote 40 devices" in out
    frame = pd.read_csv(path).set_index("id")
    assert tuple(frame.reset_index().columns) == FRAME_COLUMNS
    assert frame.loc["nvidia_h100_sxm", "memory_bw_bytes_per_s"] == 3.35e12
    assert frame.loc["nvidia_h100_sxm", "cloud_usd_per_hour"] == 6.88
    assert frame.loc["google_tpu_v4", "memory_bytes"] == 32 * 2**30


def test_csv_neutralises_formula_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = tmp_path / "evil.toml"
    user.write_text('[[device]]\nid = "nvidia_t4"\nname = "=HYPERLINK(\\"x\\")"\n'
                    'price_note = "+1 call"\n', encoding="utf-8")
    path = tmp_path / "out.csv"
    assert run(capsys, "list", "--catalog", str(user), "--csv", str(path))[0] == 0
    row = pd.read_csv(path).set_index("id").loc["nvidia_t4"]
    assert row["name"] == "'=HYPERLINK(\"x\")" and row["price_note"] == "'+1 call"
    assert row["memory_bytes"] == 16e9  # numbers untouched


def test_show_device(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "nvidia_h100_sxm")
    assert code == 0
    assert "989.4 TFLOP/s   (2:4-sparse headline 1979)" in out
    assert "450 GB/s per direction, domain 8" in out
    assert "*  RunPod" in out and "$2.69/h" in out and "2026-11-09" in out
    assert "glennklockwood.com/garden/processors/h100" in out
    assert "defined in hardware_catalog/nvidia.toml" in out


def test_show_with_user_file_and_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "nvidia_h100_sxm", "--catalog", str(EXAMPLE),
                       "--provider", "Acme Cloud", "--contract", "reserved")
    assert code == 0
    chosen = [line for line in out.splitlines() if line.lstrip().startswith("*")]
    assert any("Acme Cloud" in line and "$2.2/h" in line for line in chosen)
    assert "Kernels       measured: bf16 GEMM 8192^3 0.61 of peak (sustained)" in out


def test_show_unknown_id_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "show", "h100")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "unknown device 'h100'; did you mean nvidia_h100_sxm, nvidia_h100_pcie" in err


def test_validate_good_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(EXAMPLE), str(CATALOG_DIR / "google_tpu.toml"))
    assert code == 0
    assert "adds nvidia_a100_80gb_pcie; changes nvidia_h100_sxm" in out
    assert "5 entries; defines google_tpu_v4" in out


def test_validate_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent("""
        [[device]]
        id = "nvidia_h100_sxm"
        memory_bw_bytes_per_s = -1
    """), encoding="utf-8")
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{bad}: entry 'nvidia_h100_sxm': memory_bw_bytes_per_s: Input should be greater" in err


def test_schema_check_and_print(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", "--check")
    assert code == 0 and "up to date" in out
    code, out, _ = run(capsys, "schema")
    assert code == 0 and '"title": "planner hardware catalog file"' in out


