"""Second derivatives through every registered cell on both engines: gradgradcheck in float64
of the input, the initial states and every parameter, padded and variable-length, one-way and
bidirectional, and a Hessian-vector product equal to torch.nn's."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradgradcheck
from torch.func import functional_call

import rnnkit
from rnnkit.cells import CELLS
from rnnkit.engine import SweepSpec, sweep

F64 = torch.float64


def _layer(name, backend, **options):
    torch.manual_seed(0)
    layer = rnnkit.make_layer(name, 3, 2, dtype=F64, backend=backend, **options)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # off the init values (γ = 1, β = 0 would hide mistakes)
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, dtype=F64, generator=generator))
    return layer.eval()


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("shape", ["padded", "lengths", "bidirectional"])
@pytest.mark.parametrize("name", list(CELLS))
def test_second_derivatives_of_every_cell(name, shape, backend):
    layer = _layer(name, backend, bidirectional=shape == "bidirectional")
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in layer.named_parameters()]
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(3, 2, 3, dtype=F64, generator=generator).requires_grad_()
    D = 2 if layer.bidirectional else 1
    states = [
        torch.randn(D, 2, width, dtype=F64, generator=generator).requires_grad_()
        for width in layer.state_sizes()
    ]
    lengths = torch.tensor([3, 2]) if shape == "lengths" else None

    def run(x, *rest):
        given, weights = rest[: len(states)], rest[len(states) :]
        hx = tuple(given) if len(given) > 1 else given[0]
        output, finals = functional_call(
            layer, dict(zip(names, weights, strict=True)), (x, hx), {"lengths": lengths}
        )
        finals = finals if isinstance(finals, tuple) else (finals,)
        return (output, *finals)

    assert gradgradcheck(run, (x, *states, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_a_hessian_vector_product_equals_torch_nn(backend):
    torch.manual_seed(0)
    ours = rnnkit.LSTM(3, 4, num_layers=2, dtype=F64, backend=backend)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, dtype=F64)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3, dtype=F64)
    vectors = [torch.randn_like(p) for p in ours.parameters()]

    def hvp(layer):
        params = list(layer.parameters())
        loss = layer(x)[0].pow(2).sum()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vectors, strict=True))
        return torch.autograd.grad(dot, params)

    for a, b in zip(hvp(ours), hvp(theirs), strict=True):
        torch.testing.assert_close(a, b)


def test_a_cell_without_equations_says_what_second_derivatives_need():
    from rnnkit.cells import ElmanCell

    class Opaque(ElmanCell):
        def equations(self, *args, **kwargs):
            raise NotImplementedError("Opaque states no equations")

    spec = SweepSpec(Opaque("tanh"), (2, 2))
    data = torch.randn(4, 3, dtype=F64, requires_grad=True)
    r0 = torch.zeros(2, 2, dtype=F64)
    weights = (torch.randn(2, 3, dtype=F64), torch.randn(2, 2, dtype=F64), None, None, None, None)
    outputs, _, _ = sweep(spec, data, r0, (), weights)
    torch.autograd.grad(outputs.sum(), data)  # first derivatives need no equations
    with pytest.raises(RuntimeError, match=r"Opaque states none: define Cell\.equations"):
        outputs, _, _ = sweep(spec, data, r0, (), weights)
        torch.autograd.grad(outputs.sum(), data, create_graph=True)


@pytest.mark.parametrize("library", [True, False], ids=["compiled-scan", "torch-scan"])
def test_second_derivatives_through_the_scan(library):
    """scan=True layers (cells with a linear recurrence) on the compiled scan and in torch ops."""
    from rnnkit.engine.scan import linear_scan

    compiled = None
    if library:
        from rnnkit.engine.compiled.library import library_for

        compiled = library_for(rnnkit.make_layer("mingru", 3, 2).cell.kernel)
        assert compiled is not None
    generator = torch.Generator().manual_seed(3)
    a, b = (torch.rand(4, 2, 3, dtype=F64, generator=generator).requires_grad_() for _ in "ab")
    h0 = torch.randn(2, 3, dtype=F64, generator=generator).requires_grad_()
    assert gradgradcheck(lambda a, b, h0: linear_scan(a, b, h0, compiled), (a, b, h0))


def test_second_derivatives_through_rnnkit_dropout():
    dropout = rnnkit.Dropout(0.4).train()
    x = torch.randn(6, 5, dtype=F64, requires_grad=True)

    def run(x):
        torch.manual_seed(0)  # the same mask at every call of the check
        return dropout(x).pow(2)

    assert "compiled dropout" in dropout.explain(x)
    assert gradgradcheck(run, (x,))
