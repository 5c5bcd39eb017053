"""MinGRU's scan mode equals its sequential mode and its step mode, and both scans agree."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit.cells import MinGRUCell
from rnnkit.engine.compiled.library import library_for
from rnnkit.engine.scan import compiled_scan, doubling_scan

F64 = torch.float64


def _pair(**kwargs):
    torch.manual_seed(0)
    sequential = rnnkit.MinGRU(3, 5, dtype=F64, **kwargs)
    scan = rnnkit.MinGRU(3, 5, dtype=F64, scan=True, **kwargs)
    scan.load_state_dict(sequential.state_dict())
    return sequential, scan


@pytest.mark.parametrize(
    "kwargs", [{}, {"num_layers": 2, "bidirectional": True}, {"batch_first": True}]
)
def test_scan_mode_equals_the_sequential_mode_with_gradients(kwargs):
    sequential, scan = _pair(**kwargs)
    x = (
        torch.randn(4, 9, 3, dtype=F64)
        if sequential.batch_first
        else torch.randn(9, 4, 3, dtype=F64)
    )
    x.requires_grad_()
    h0 = torch.randn(
        sequential.num_layers * (2 if sequential.bidirectional else 1), 4, 5, dtype=F64
    )
    h0.requires_grad_()
    results = []
    for layer in (sequential, scan):
        out, h = layer(x, h0)
        grads = torch.autograd.grad(
            (out * out.detach().sin()).sum() + h.sum(), [x, h0, *layer.parameters()]
        )
        results.append((out, h, grads))
    assert "'scan'" in scan.explain() and "compiled engine's linear scan" in scan.explain()
    (o1, h1, g1), (o2, h2, g2) = results
    torch.testing.assert_close(o2, o1, atol=1e-12, rtol=0)
    torch.testing.assert_close(h2, h1, atol=1e-12, rtol=0)
    for a, e in zip(g2, g1, strict=True):
        torch.testing.assert_close(a, e, atol=1e-11, rtol=0)


def test_scan_mode_equals_the_step_mode():
    sequential, scan = _pair()
    x = torch.randn(7, 2, 3, dtype=F64)
    with torch.no_grad():
        whole, final = scan(x)
        state, steps = None, []
        for x_t in x:
            y, state = sequential.step(x_t, state)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps), whole, atol=1e-12, rtol=0)
    torch.testing.assert_close(state, final, atol=1e-12, rtol=0)


def test_the_compiled_scan_equals_the_doubling_scan_and_passes_gradcheck():
    library = library_for(MinGRUCell.kernel)
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(37, 3, 4, dtype=F64, generator=generator).requires_grad_()
    b = torch.randn(37, 3, 4, dtype=F64, generator=generator).requires_grad_()
    h0 = torch.randn(3, 4, dtype=F64, generator=generator).requires_grad_()
    torch.testing.assert_close(compiled_scan(a, b, h0, library), doubling_scan(a, b, h0))
    assert gradcheck(lambda a, b, h: compiled_scan(a, b, h, library), (a[:5], b[:5], h0))
    assert gradcheck(doubling_scan, (a[:5], b[:5], h0))


def test_packed_input_runs_the_sequential_engine_and_says_so():
    sequential, scan = _pair()
    x = torch.randn(6, 3, 3, dtype=F64)
    packed = pack_padded_sequence(x, torch.tensor([6, 2, 4]), enforce_sorted=False)
    out, h = scan(packed)
    expected, h_expected = sequential(packed)
    torch.testing.assert_close(out.data, expected.data, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, h_expected, atol=1e-12, rtol=0)
    assert "runs padded batches only" in scan.explain()


def test_scan_needs_a_linear_recurrence():
    with pytest.raises(ValueError, match=r"scan=True needs a cell whose recurrence is linear"):
        rnnkit.IndRNN(3, 5, scan=True)
