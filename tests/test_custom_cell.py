"""A user's own cell, written in a file outside the package (examples/custom_cell.py), gets
rnnkit's layer, both engines and the compiled path; and where no compiler is at hand the
layers fall back visibly, never silently."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.autograd import gradcheck

import rnnkit
from rnnkit.baselines import equations_loop

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "custom_cell.py"


@pytest.fixture(scope="module")
def custom():
    spec = importlib.util.spec_from_file_location("custom_cell", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_a_users_cell_runs_every_layer_form_on_both_engines(custom, backend):
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(
        custom.CoupledGateLSTMCell(),
        3,
        5,
        num_layers=2,
        bidirectional=True,
        dtype=torch.float64,
        backend=backend,
    )
    x = torch.randn(6, 3, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    out, (h, c) = layer(x, lengths=lengths)
    expected, (h_e, c_e) = equations_loop(layer, x, None, lengths)
    for a, e in ((out, expected), (h, h_e), (c, c_e)):
        torch.testing.assert_close(a, e, atol=1e-9, rtol=0)
    params = list(layer.parameters())
    grads = torch.autograd.grad(out.sum() + c.sum(), [x, *params])
    expected_grads = torch.autograd.grad(expected.sum() + c_e.sum(), [x, *params])
    for a, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(a, e, atol=1e-9, rtol=0)
    assert f"-> '{backend}'" in layer.explain()


def test_a_users_cell_passes_gradcheck_on_the_compiled_engine(custom):
    torch.manual_seed(1)
    layer = rnnkit.Recurrent(custom.CoupledGateLSTMCell(), 2, 3, dtype=torch.float64)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x, h, c: layer(x, (h, c))[0], (x, h0, c0), eps=1e-6, atol=1e-7)
    assert "'compiled'" in layer.explain()


def test_the_example_runs(custom):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, check=True
    )
    assert "compiled  vs the equations" in result.stdout and "ms" in result.stdout


_NO_COMPILER = """
import torch, rnnkit
lstm, ind = rnnkit.LSTM(3, 4), rnnkit.IndRNN(3, 4)
x = torch.randn(5, 2, 3)
lstm(x)
ind(x)
print(lstm.explain())
print(ind.explain())
try:
    rnnkit.GRU(3, 4, backend="compiled")
except NotImplementedError as error:
    print(error)
"""


def test_without_a_compiler_auto_falls_back_and_says_why(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "RNNKIT_CXX": "no-such-compiler",
        "RNNKIT_NO_PREBUILT": "1",
        "RNNKIT_CACHE_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", _NO_COMPILER],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env=env,
    )
    lstm, ind, refusal = result.stdout.strip().splitlines()
    assert "-> 'native'" in lstm and "no C++ compiler found" in lstm
    assert "-> 'reference'" in ind and "no C++ compiler found" in ind
    assert "backend='compiled' cannot run this call: no C++ compiler found" in refusal
