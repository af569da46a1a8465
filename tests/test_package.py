"""The package's front door: `import planner` stays light, the public API is complete."""

from __future__ import annotations

import subprocess
import sys

import planner


def test_import_planner_does_not_import_torch_or_streamlit():
    code = ("import sys, planner; "
            "print(sorted(m for m in ('torch', 'streamlit', 'plotly') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_public_names_exist():
    for name in planner.__all__:
        assert hasattr(planner, name), name


def test_cli_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "planner", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "layers" in out and "models" in out
