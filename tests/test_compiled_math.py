"""The compiled engine's activations (rnnkit/engine/compiled/vecmath.h) against torch in float64.

Each activation runs through a real kernel: an Elman cell of width 1 with input weight 1 and no
recurrent weight, one batch row per value, so the kernel's m = f(gates) is f of the value itself.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.activations import RELU, SIGMOID, TANH
from rnnkit.cells import ElmanCell
from rnnkit.engine import SweepSpec
from rnnkit.engine.compiled import compiled_sweep

BOUNDS = {torch.float32: 4e-7, torch.float64: 4e-15}  # relative: a few ulp
EXACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


def _apply(name: str, x: torch.Tensor) -> torch.Tensor:
    """f(x) for each value of x (1-D) through the compiled Elman kernel."""
    cell = ElmanCell("tanh")
    cell.activation = {"tanh": TANH, "sigmoid": SIGMOID, "relu": RELU}[name]
    n = x.numel()
    one = torch.ones(1, 1, dtype=x.dtype)
    weights = (one, torch.zeros(1, 1, dtype=x.dtype), None, None, None, None)
    outputs, _, _ = compiled_sweep(
        SweepSpec(cell, (n,)), x.view(n, 1), x.new_zeros(n, 1), (), weights
    )
    return outputs.view(n)


def _values(dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    special = [0.0, -0.0, 1e-30, -1e-12, 1e-7, 0.1249, 0.125, 0.1251, -0.125, 0.5, 1.0, -3.0, 9.5]
    spread = [
        torch.randn(500, generator=generator, dtype=torch.float64) * s for s in (0.05, 1, 5, 30)
    ]
    return torch.cat([torch.tensor(special, dtype=torch.float64), *spread]).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu"])
def test_activations_match_torch_to_a_few_ulp(name, dtype):
    x = _values(dtype)
    expected = EXACT[name](x.double())
    got = _apply(name, x).double()
    # below the dtype's exp underflow sigmoid is clamped (documented): compare absolutely there
    tiny = expected.abs() < 1e-30
    assert torch.all((got - expected)[tiny].abs() < 1e-30)
    exact_zero = expected == 0  # relu below 0: compared exactly
    assert torch.equal(got[exact_zero], expected[exact_zero])
    kept = ~tiny & ~exact_zero
    relative = (got - expected)[kept].abs() / expected[kept].abs()
    assert relative.max().item() < BOUNDS[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_nan_propagates_and_infinities_saturate(name, dtype):
    x = torch.tensor([float("nan"), float("inf"), float("-inf"), 1000.0, -1000.0], dtype=dtype)
    got = _apply(name, x)
    assert torch.isnan(got[0])
    low = 0.0 if name == "sigmoid" else -1.0
    torch.testing.assert_close(
        got[1:], torch.tensor([1.0, low, 1.0, low], dtype=dtype), atol=1e-30, rtol=0
    )
