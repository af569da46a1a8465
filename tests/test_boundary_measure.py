"""The measured side's boundary (issue 13): `planner validate` refuses a run that cannot fit in
memory before it allocates anything, and an allocation failure is one line, not a traceback."""

from __future__ import annotations

import pandas as pd
import pytest

import planner
from planner.cli import main
from planner.errors import InputError
from planner.measure.validate import check_fits_in_memory


def test_memory_need_is_the_sum_of_the_held_bytes_plus_a_quarter():
    # 1 GB weights + 1 GB gradients + 2 GB AdamW moments + 1 GB activations = 5 GB, × 1.25
    # for temporaries = 6.25 GB; two processes hold 12.5 GB.
    table = pd.DataFrame({"weight_bytes": [1e9], "grad_bytes": [1e9],
                          "optimizer_bytes": [2e9], "activation_bytes": [1e9]})
    assert check_fits_in_memory(table, have_bytes=7e9) == pytest.approx(6.25e9)
    with pytest.raises(InputError, match=r"model: this run needs about 12.5 GB here and 7 GB"):
        check_fits_in_memory(table, copies=2, have_bytes=7e9)


@pytest.fixture
def only_64_gb(monkeypatch):
    # The guard compares with the memory available now; pin it so the test does not depend on
    # (or allocate on) the machine it runs on.
    from planner.measure import validate as v

    monkeypatch.setattr(v, "available_memory_bytes", lambda: 64e9)


def test_validate_refuses_a_model_that_cannot_fit_before_allocating(only_64_gb):
    # Llama-2-70B in fp32 with AdamW: 69e9 parameters × 16 B = 1.1 TB (+ a quarter).
    with pytest.raises(InputError, match=r"^model: this run needs about 1,3[0-9]{2} GB here "
                                         r"and 64 GB are available"):
        planner.validate("llama-2-70b", seq_len=16, batch_size=1, device="cpu")


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(device="cpu:xyz"), "device: 'cpu:xyz' is not allowed"),
    (dict(device=5), "device: 5 is not allowed"),
    (dict(repeats=10**9), "repeats: must be ≤ 1,000"),
    (dict(batch_size=True), "batch_size: must be a whole number, got True"),
    (dict(mode="serve"), "mode: 'serve' is not allowed"),
])
def test_validate_arguments_are_one_line(kwargs, message):
    args = dict(seq_len=8, batch_size=1, n_layers=1, time_it=False) | kwargs
    with pytest.raises(InputError, match=message):
        planner.validate("gpt2", **args)


def test_cli_validate_too_big_is_one_line_exit_2(only_64_gb, capsys):
    assert main(["validate", "llama-2-70b", "--seq-len", "16", "--batch-size", "1"]) == 2
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("planner: error: model: this run needs about 1,3")


def test_an_allocation_failure_is_one_line(monkeypatch):
    from planner.measure import counters

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 4000000000 bytes.")

    monkeypatch.setattr(counters, "measure_train", out_of_memory)
    with pytest.raises(InputError, match=r"^model: ran out of memory on cpu \(\[enforce"):
        planner.validate("gpt2", n_layers=1, seq_len=8, batch_size=1, time_it=False)
