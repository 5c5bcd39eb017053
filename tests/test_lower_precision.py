"""bfloat16 autocast through rnnkit's engines (rnnkit.engine.lower_precision), for every
registered cell: the sweep fed its input projection already made (`w_ih` None) is exactly
the sweep that makes it, and under autocast the projection really runs in bfloat16 while the
rest stays float32, within bfloat16 rounding of a float32 call, gradients included."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import rnnkit
from rnnkit.cells import CELLS
from rnnkit.engine import lower_precision
from rnnkit.engine.compiled import compiled_sweep
from rnnkit.engine.lower_precision import LOWER_FROM_FEATURES
from rnnkit.engine.reference import SweepSpec, sweep

SWEEPS = {"reference": sweep, "compiled": compiled_sweep}
BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}


def _moved(layer, seed=1):
    """Parameters off their init values (γ = 1, β = 0 would hide layer-norm mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, dtype=p.dtype, generator=generator))
    return layer


def _sweep_inputs(name, dtype=torch.float64, batch_sizes=(3, 3, 2, 1)):
    torch.manual_seed(0)
    layer = _moved(rnnkit.make_layer(name, 5, 4, dtype=dtype))
    weights = layer._weights_for(0, 0)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(sum(batch_sizes), 5, dtype=dtype, generator=g, requires_grad=True)
    B = batch_sizes[0]
    widths = layer.state_sizes()
    r0 = torch.randn(B, widths[0], dtype=dtype, generator=g, requires_grad=True)
    carried = tuple(
        torch.randn(B, w, dtype=dtype, generator=g, requires_grad=True) for w in widths[1:]
    )
    return SweepSpec(layer.cell, batch_sizes), x, r0, carried, weights


@pytest.mark.parametrize("engine", list(SWEEPS))
@pytest.mark.parametrize("name", list(CELLS))
def test_a_sweep_given_its_input_projection_equals_the_sweep_that_makes_it(name, engine):
    fn = SWEEPS[engine]
    spec, x, r0, carried, weights = _sweep_inputs(name)
    w_ih = weights[0]
    leaves = [x, r0, *carried, *(w for w in weights if w is not None)]
    outputs = fn(spec, x, r0, carried, weights)
    given = fn(spec, x @ w_ih.t(), r0, carried, (None, *weights[1:]))
    flat = lambda result: (result[0], result[1], *result[2])  # noqa: E731
    for a, b in zip(flat(outputs), flat(given), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    probe = [torch.randn_like(t) for t in flat(outputs)]
    grads = torch.autograd.grad(flat(outputs), leaves, probe)
    given_grads = torch.autograd.grad(flat(given), leaves, probe, allow_unused=True)
    for name_, a, b in zip(range(len(leaves)), grads, given_grads, strict=True):
        assert b is not None, f"leaf {name_} got no gradient through the given projection"
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("engine", list(SWEEPS))
@pytest.mark.parametrize("name", ["lstm", "lnlstm", "gru"])
def test_the_given_projection_passes_gradcheck_and_gradgradcheck(name, engine):
    fn = SWEEPS[engine]
    spec, x, r0, carried, weights = _sweep_inputs(name, batch_sizes=(2, 1))
    gates = (x @ weights[0].t()).detach().requires_grad_()
    rest = tuple(w.detach().requires_grad_() if w is not None else None for w in weights[1:])

    def run(gates, r0, *tensors):
        k = len(carried)
        out, r, c = fn(spec, gates, r0, tuple(tensors[:k]), (None, *_fill(rest, tensors[k:])))
        return (out, r, *c)

    inputs = (gates, r0, *carried, *(w for w in rest if w is not None))
    assert gradcheck(run, inputs)
    assert torch.autograd.gradgradcheck(run, inputs)


def _fill(template, tensors):
    it = iter(tensors)
    return tuple(next(it) if t is not None else None for t in template)


@pytest.fixture
def fast_bfloat16(monkeypatch):
    """The rule as on a CPU with native bfloat16 products, whatever this one has (the products
    are right either way; only their speed differs)."""
    monkeypatch.setattr(lower_precision, "cpu_has_fast_bfloat16", lambda: True)


def _layer(name, backend, **kwargs):
    torch.manual_seed(0)
    return _moved(rnnkit.make_layer(name, LOWER_FROM_FEATURES, 6, backend=backend, **kwargs))


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("name", list(CELLS))
def test_under_autocast_the_input_projection_runs_in_bfloat16(name, backend, fast_bfloat16):
    layer = _layer(name, backend, num_layers=2, bidirectional=True)
    x = torch.randn(7, 3, LOWER_FROM_FEATURES, requires_grad=True)
    expected, _ = layer(x)
    probe = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, [x, *layer.parameters()], probe)
    with torch.autocast(**BF16):
        output, _ = layer(x)
    assert "multiply in torch.bfloat16" in layer.explain()
    assert output.dtype == torch.float32  # the recurrence and the states stay float32
    # the first layer's projection was rounded to bfloat16: not float32's result, but near it
    assert not torch.equal(output, expected)
    torch.testing.assert_close(output, expected, rtol=0.02, atol=0.15)
    assert (output - expected).abs().mean() < 0.01 * expected.abs().mean()
    grads = torch.autograd.grad(output, [x, *layer.parameters()], probe)
    for grad, want in zip(grads, expected_grads, strict=True):
        assert grad.dtype == torch.float32
        # the direction of each gradient, as mixed-precision training needs it (a layer norm
        # of the rounded projection magnifies its rounding: cosine 0.97 for lnlstm's gains)
        cosine = torch.nn.functional.cosine_similarity(grad.flatten(), want.flatten(), dim=0)
        assert cosine > 0.95, f"{tuple(grad.shape)}: cosine {float(cosine):.4f}"


def test_a_bfloat16_projection_matches_its_own_arithmetic_exactly(fast_bfloat16):
    """Under autocast a one-layer LSTM on the reference engine computes exactly what the float32
    sweep computes from gates rounded as torch's bfloat16 GEMM rounds them."""
    layer = _layer("lstm", "reference")
    x = torch.randn(5, 2, LOWER_FROM_FEATURES)
    with torch.autocast(**BF16):
        output, _ = layer(x)
    w_ih, w_hh, b_ih, b_hh = (p.detach() for p in layer.parameters())
    with torch.autocast(**BF16):
        gates = torch.nn.functional.linear(x.reshape(10, -1), w_ih)
    spec = SweepSpec(layer.cell, (2,) * 5)
    zeros = torch.zeros(2, 6)
    weights = (None, w_hh, b_ih, b_hh, None, None)
    want, _, _ = sweep(spec, gates.float(), zeros, (zeros,), weights)
    assert torch.equal(output.reshape(10, -1), want)


def test_without_native_bfloat16_the_engines_keep_float32_and_say_why(monkeypatch):
    monkeypatch.setattr(lower_precision, "cpu_has_fast_bfloat16", lambda: False)
    layer = _layer("gru", "compiled")
    x = torch.randn(6, 2, LOWER_FROM_FEATURES)
    expected, _ = layer(x)
    with torch.autocast(**BF16):
        output, _ = layer(x)
    assert torch.equal(output, expected)
    assert "emulates bfloat16" in layer.explain()


def test_float64_weights_are_not_lowered(fast_bfloat16):
    layer = _layer("lnlstm", "compiled").double()
    x = torch.randn(6, 2, LOWER_FROM_FEATURES, dtype=torch.float64)
    expected, _ = layer(x)
    with torch.autocast(**BF16):
        output, _ = layer(x)
    assert torch.equal(output, expected)
    assert "these weights are torch.float64" in layer.explain()
