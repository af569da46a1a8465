"""Bad input never gets through: CSV injection in every channel that writes CSV, CLI output
files checked before any work, and one-line errors however long or odd the input."""

from __future__ import annotations

import csv
import io
import os
import textwrap
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

import planner
from planner.cli import error_line, main
from planner.cli.args import check_output_path
from planner.errors import InputError
from planner.report.tables import runs_as_formula, safe_for_spreadsheet

PAYLOAD = "=cmd|' /C calc'!A0"
CR_NAME = "GPU\r" + PAYLOAD  # the example: a CR, then a formula
FORMULA_CHARS = "=+-@"

# A user catalog with one new device. Names are one line of printable text (the catalog refuses
# a CR there), so the name carries a bare formula and the free-text price note a CR: the note
# reaches the catalog CSV (price_note) and the rank CSV (cost_note: the device has no price).
EVIL_CATALOG = textwrap.dedent("""\
    [[device]]
    id = "acme_x1"
    vendor = "Acme"
    name = "=cmd|' /C calc'!A0"
    kind = "asic"
    launch_year = 2025
    memory_bytes = "64 GB"
    memory_bw_bytes_per_s = "2 TB/s"
    price_note = "GPU\\r=cmd|' /C calc'!A0"
    checked_on = "2026-11-01"
    sources = ["Acme X1 datasheet rev 2"]

    [device.peak_flops_per_s]
    bf16 = "500 TFLOP/s"
    """)

RANK_ARGS = ["rank", "--model", "gpt2", "--train-tokens", "1e9", "--seq-len", "1024",
             "--global-batch", "8"]


def visible_start(cell: str) -> str:
    """The cell without leading whitespace and invisible characters, full-width folded."""
    i = 0
    while i < len(cell) and (cell[i].isspace()
                             or unicodedata.category(cell[i]) in ("Cf", "Cc", "Zs")):
        i += 1
    return unicodedata.normalize("NFKC", cell[i:])


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def assert_no_formula(rows: list[list[str]]) -> None:
    """No text cell starts with a formula character, however it is dressed (numbers may)."""
    for row in rows:
        for cell in row:
            assert not cell.startswith(("\t", "\r", "\n")), cell
            first = visible_start(cell)[:1]
            assert is_number(cell) or first == "" or first not in FORMULA_CHARS, cell


def read_back(text: str) -> tuple[list[list[str]], pd.DataFrame]:
    """The CSV as Python's csv module and pandas read it."""
    return (list(csv.reader(io.StringIO(text, newline=""))),
            pd.read_csv(io.StringIO(text), keep_default_na=False))


def write_catalog(tmp_path: Path) -> Path:
    path = tmp_path / "evil.toml"
    path.write_text(EVIL_CATALOG, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# planner.to_csv_text / planner.to_csv
# ---------------------------------------------------------------------------------------------


def test_to_csv_text_quotes_a_carriage_return_so_no_second_row() -> None:
    text = planner.to_csv_text(pd.DataFrame({"name": [CR_NAME], "x": [1]}))
    assert text == "name,x\n\"GPU\r=cmd|' /C calc'!A0\",1\n"
    rows, frame = read_back(text)
    assert rows == [["name", "x"], [CR_NAME, "1"]]
    assert len(frame) == 1 and frame.loc[0, "name"] == CR_NAME and frame.loc[0, "x"] == 1
    assert_no_formula(rows)


def test_to_csv_text_neutralises_a_cell_starting_with_cr() -> None:
    text = planner.to_csv_text(pd.DataFrame({"name": ["\r" + PAYLOAD], "x": [1]}))
    assert text == "name,x\n\"'\r=cmd|' /C calc'!A0\",1\n"
    rows, frame = read_back(text)
    assert len(rows) == 2 and len(frame) == 1
    assert_no_formula(rows)


def test_to_csv_text_quotes_lf_comma_and_quote() -> None:
    df = pd.DataFrame({"name": ["a\nb", "a,b", 'say "hi"', "a\r\nb"]})
    text = planner.to_csv_text(df)
    assert text == 'name\n"a\nb"\n"a,b"\n"say ""hi"""\n"a\r\nb"\n'
    rows, frame = read_back(text)
    assert rows[1:] == [["a\nb"], ["a,b"], ['say "hi"'], ["a\r\nb"]]
    assert frame["name"].tolist() == ["a\nb", "a,b", 'say "hi"', "a\r\nb"]


@pytest.mark.parametrize("lead", [
    " ",          # space
    "   ",        # several spaces
    "\n",         # newline
    "\t",         # tab
    "\xa0",       # no-break space
    "\u200b",     # zero-width space (Cf)
    "\ufeff",     # byte-order mark (Cf)
    "\u2060",     # word joiner (Cf)
    "\u3000",     # ideographic space
    " \u200b\n",  # a mix
])
def test_formula_behind_invisible_characters_is_neutralised(lead: str) -> None:
    text = planner.to_csv_text(pd.DataFrame({"name": [lead + "=1+1"]}))
    rows, frame = read_back(text)
    assert rows == [["name"], ["'" + lead + "=1+1"]]
    assert len(frame) == 1 and frame.loc[0, "name"] == "'" + lead + "=1+1"
    assert_no_formula(rows)


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20",
                                   "\ufe66", "\ufe62"])
def test_formula_start_including_full_width_forms_is_neutralised(start: str) -> None:
    rows, _ = read_back(planner.to_csv_text(pd.DataFrame({"name": [start + "SUM(A1)"]})))
    assert rows == [["name"], ["'" + start + "SUM(A1)"]]


def test_header_is_neutralised() -> None:
    text = planner.to_csv_text(pd.DataFrame({"\u200b=HYPERLINK(1)": [1], "\r=x": [2]}))
    assert text == "'\u200b=HYPERLINK(1),\"'\r=x\"\n1,2\n"
    rows, frame = read_back(text)
    assert len(rows) == 2 and len(frame) == 1
    assert_no_formula(rows)


def test_plain_text_is_unchanged() -> None:
    df = pd.DataFrame({"name": ["H100 SXM", "a=b", "x-1", "—", "", "'=already"]})
    rows, _ = read_back(planner.to_csv_text(df))
    assert [r[0] for r in rows[1:]] == ["H100 SXM", "a=b", "x-1", "—", "", "'=already"]


def test_numeric_negatives_stay_numbers() -> None:
    df = pd.DataFrame({"delta_s": [-1.5, -2.0, 3.0], "n": [-1, 0, 2], "name": ["-x", "y", "z"]})
    text = planner.to_csv_text(df)
    assert text == "delta_s,n,name\n-1.5,-1,'-x\n-2.0,0,y\n3.0,2,z\n"
    frame = pd.read_csv(io.StringIO(text))
    assert frame["delta_s"].tolist() == [-1.5, -2.0, 3.0]
    assert frame["n"].tolist() == [-1, 0, 2]
    assert pd.api.types.is_float_dtype(frame["delta_s"])
    assert pd.api.types.is_integer_dtype(frame["n"])


def test_object_column_with_none_and_numbers_passes_through() -> None:
    df = pd.DataFrame({"v": pd.Series([None, -3, 2.5, "=1", True], dtype=object)})
    safe = safe_for_spreadsheet(df)
    assert safe["v"][0] is None and safe["v"].tolist()[1:] == [-3, 2.5, "'=1", True]
    assert planner.to_csv_text(df) == "v\n\"\"\n-3\n2.5\n'=1\nTrue\n"


def test_categorical_text_is_neutralised() -> None:
    df = pd.DataFrame({"note": pd.Categorical(["=1", "ok", "=1"])})
    assert planner.to_csv_text(df) == "note\n'=1\nok\n'=1\n"


def test_runs_as_formula() -> None:
    assert runs_as_formula("\u200b\ufeff\xa0=1") and runs_as_formula("\rhello")
    assert not runs_as_formula("hello=1") and not runs_as_formula("   ")
    assert not runs_as_formula("")


def test_to_csv_file_round_trips_one_row(tmp_path: Path) -> None:
    # the channel `planner validate --csv` and every other CLI --csv use
    df = pd.DataFrame({"layer": [CR_NAME, "\ufeff@SUM(1)"], "fwd_flops": [-1.0, 2e12]})
    path = planner.to_csv(df, tmp_path / "out.csv")
    raw = path.read_bytes().decode("utf-8")
    assert raw == ("layer,fwd_flops\n\"GPU\r=cmd|' /C calc'!A0\",-1.0\n"
                   "'\ufeff@SUM(1),2000000000000.0\n")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    frame = pd.read_csv(path)
    assert len(rows) == 3 and len(frame) == 2
    assert frame["fwd_flops"].tolist() == [-1.0, 2e12]
    assert_no_formula(rows)


def test_to_csv_api_still_creates_parent_folders(tmp_path: Path) -> None:
    path = planner.to_csv(pd.DataFrame({"a": [1]}), tmp_path / "new" / "deep" / "a.csv")
    assert path.read_text(encoding="utf-8") == "a\n1\n"


# ---------------------------------------------------------------------------------------------
# CLI channels: planner rank --csv, planner catalog list --csv
# ---------------------------------------------------------------------------------------------


def test_rank_csv_with_user_catalog_keeps_one_row_per_device(tmp_path: Path, capsys) -> None:
    path = tmp_path / "rank.csv"
    code = main([*RANK_ARGS, "--device-ids", "acme_x1", "--catalog", str(write_catalog(tmp_path)),
                 "--csv", str(path)])
    assert code == 0, capsys.readouterr().err
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    frame = pd.read_csv(path, keep_default_na=False)
    assert len(rows) == 2 and len(frame) == 1
    assert frame.loc[0, "device"] == "acme_x1" and frame.loc[0, "rank"] == 1
    assert frame.loc[0, "cost_note"].endswith("GPU\r" + PAYLOAD)  # kept whole, in its cell
    assert_no_formula(rows)


def test_catalog_list_csv_with_user_catalog(tmp_path: Path, capsys) -> None:
    path = tmp_path / "catalog.csv"
    code = main(["catalog", "list", "--catalog", str(write_catalog(tmp_path)),
                 "--csv", str(path)])
    assert code == 0, capsys.readouterr().err
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    frame = pd.read_csv(path, keep_default_na=False).set_index("id")
    n = len(planner.load_catalog()) + 1  # the built-in devices + acme_x1
    assert len(rows) == n + 1 and len(frame) == n
    assert frame.loc["acme_x1", "name"] == "'" + PAYLOAD
    assert frame.loc["acme_x1", "price_note"] == "GPU\r" + PAYLOAD
    assert frame.loc["acme_x1", "memory_bytes"] == 64e9
    assert_no_formula(rows)


def test_catalog_list_csv_to_stdout(tmp_path: Path, capsys) -> None:
    code = main(["catalog", "list", "--catalog", str(write_catalog(tmp_path)), "--csv", "-"])
    out = capsys.readouterr().out
    assert code == 0
    rows, frame = read_back(out)
    n = len(planner.load_catalog()) + 1
    assert len(rows) == n + 1 and len(frame) == n
    assert_no_formula(rows)


# ---------------------------------------------------------------------------------------------
# CLI output files: checked before any work, never a created folder
# ---------------------------------------------------------------------------------------------

CSV_COMMANDS = {
    "rank": RANK_ARGS,
    "catalog list": ["catalog", "list"],
    "models": ["models"],
    "layers": ["layers", "gpt2"],
    "seed": ["seed"],
    "backtest": ["backtest"],
}


@pytest.mark.parametrize("command", list(CSV_COMMANDS))
def test_csv_into_missing_folder_is_refused(command: str, capsys) -> None:
    assert not os.path.exists("/nonexistent")
    code = main([*CSV_COMMANDS[command], "--csv", "/nonexistent/x.csv"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == ("planner: error: --csv: folder '/nonexistent' does not exist "
                   "(create it first)\n")
    assert out == ""  # refused before any work
    assert not os.path.exists("/nonexistent")


def test_csv_into_missing_nested_folder_under_tmp(tmp_path: Path, capsys) -> None:
    target = tmp_path / "a" / "b" / "x.csv"
    assert main(["models", "--csv", str(target)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--csv: folder " in err
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("command", list(CSV_COMMANDS))
def test_csv_into_a_directory_is_refused(command: str, tmp_path: Path, capsys) -> None:
    code = main([*CSV_COMMANDS[command], "--csv", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == f"planner: error: --csv: {str(tmp_path)!r} is a directory; give a file path " \
                  "inside it\n"
    assert out == ""
    assert list(tmp_path.iterdir()) == []


def test_csv_under_a_file_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "f.txt").write_text("x", encoding="utf-8")
    assert main(["models", "--csv", str(tmp_path / "f.txt" / "x.csv")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"planner: error: --csv: {str(tmp_path / 'f.txt')!r} is not a folder\n"


def test_empty_csv_path_is_refused(capsys) -> None:
    assert main(["models", "--csv", ""]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "planner: error: --csv: give a file path, got an empty one\n"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write anywhere")
def test_csv_into_read_only_folder_is_refused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(["models", "--csv", str(folder / "x.csv")]) == 2
    finally:
        folder.chmod(0o700)
    out, err = capsys.readouterr()
    assert out == "" and "--csv: cannot create" in err and err.count("\n") == 1


def test_check_output_path_accepts_a_new_file_and_returns_it(tmp_path: Path) -> None:
    assert check_output_path(str(tmp_path / "x.csv"), "--out") == tmp_path / "x.csv"
    assert check_output_path("x.csv", "--out") == Path("x.csv")  # the current folder


def test_check_output_path_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        check_output_path(str(tmp_path / "missing" / "x.csv"), "--summary-csv")
    assert info.value.field == "--summary-csv"
    assert str(info.value).startswith("--summary-csv: folder ")
    assert not (tmp_path / "missing").exists()


def test_check_output_path_clips_a_path_too_long_for_the_system() -> None:
    with pytest.raises(InputError) as info:
        check_output_path("/nonexistent/" + "d" * 5000 + "/x.csv", "--csv")
    message = str(info.value)
    assert message.startswith("--csv: cannot use '/nonexistent/ddd")
    assert message.endswith(": File name too long") and len(message) < 250


def test_check_output_path_refuses_a_nul(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^--csv: '.*\\x00x.csv' holds a NUL character$"):
        check_output_path(f"{tmp_path}/\0x.csv", "--csv")


# ---------------------------------------------------------------------------------------------
# One line, short, exit 2
# ---------------------------------------------------------------------------------------------


def test_long_unknown_model_name_is_one_short_line(capsys) -> None:
    code = main(["layers", "x" * 5000])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and len(err) < 300
    assert err.startswith("planner: error: ") and "unknown" in err and "…" in err


def test_long_unknown_model_name_in_rank_is_one_short_line(capsys) -> None:
    code = main(["rank", "--model", "x" * 5000, "--train-tokens", "1e9", "--seq-len", "128",
                 "--global-batch", "8"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and len(err) < 300


def test_long_unknown_device_id_is_one_short_line(capsys) -> None:
    code = main(["catalog", "show", "y" * 5000])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and len(err) < 300


def test_long_bad_deadline_is_clipped(capsys) -> None:
    code = main([*RANK_ARGS, "--deadline", "9" * 5000 + "q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and len(err) < 300
    assert err.startswith("planner: error: --deadline: cannot read '999")


def test_error_line_collapses_line_breaks_and_long_words() -> None:
    assert error_line("bad\ninput\r\n  here") == "bad input here"
    assert error_line("a" * 5000) == "a" * 80 + "…" + "a" * 39
    assert len(error_line("word " * 1000)) == 1000


def _raise(exc: BaseException):
    def handler(args) -> int:
        raise exc
    return handler


@pytest.mark.parametrize("exc,line", [
    (InputError("--csv", "two\nlines"), "planner: error: --csv: two lines\n"),
    (ValueError("a\nb"), "planner: error: a b\n"),
    (IsADirectoryError(21, "Is a directory", "/tmp/out"),
     "planner: error: '/tmp/out': Is a directory\n"),
    (PermissionError(13, "Permission denied", "/x.csv"),
     "planner: error: '/x.csv': Permission denied\n"),
    (OSError("disk full"), "planner: error: disk full\n"),
    (MemoryError(), "planner: error: out of memory: the problem is too large (try smaller "
                    "inputs)\n"),
    (RecursionError("maximum recursion depth exceeded"),
     "planner: error: input nested too deeply to process\n"),
])
def test_main_turns_errors_into_one_line_exit_2(exc, line, monkeypatch, capsys) -> None:
    monkeypatch.setattr("planner.cli.models._models", _raise(exc))
    assert main(["models"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == line
