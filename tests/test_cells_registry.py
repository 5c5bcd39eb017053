"""Every registered cell through every engine, without test code of its own.

For each entry of rnnkit.cells.registry (rnn, lstm, gru, jordan, lnlstm, lngru, indrnn, mingru,
and whatever is registered next) and each of rnnkit's engines:

- the layer equals the cell's textbook equations run step by step under autograd
  (rnnkit.baselines.equations_loop) in float64: outputs, final states and the gradients of the
  input, the initial states and every parameter, over stacked, bidirectional, packed,
  unbatched, batch_first and lengths= calls;
- finite differences (gradcheck) agree with the engine's hand-written backward;
- the compiled engine in float32 stays within float32 rounding of float64;
- an inference call (the compiled fast path) equals the training path, and streaming one step
  at a time equals the whole-sequence call;
- a whole model holding the layer round-trips through torch.save and
  torch.load(weights_only=True).
"""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.baselines import equations_loop
from rnnkit.cells import CELLS

F64 = torch.float64
TOLERANCE = 1e-9
ENGINES = ["reference", "compiled"]
NAMES = list(CELLS)


def _layer(name, backend="compiled", dtype=F64, seed=0, **kwargs):
    """A small layer of the registered cell, its parameters moved off their init values (γ = 1,
    β = 0 would hide mistakes in the layer-norm gradients)."""
    torch.manual_seed(seed)
    layer = rnnkit.make_layer(name, 3, 4, dtype=dtype, backend=backend, **kwargs)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, dtype=dtype, generator=generator))
    return layer.eval()


def _states(layer, batch, generator, dtype=F64):
    D = 2 if layer.bidirectional else 1
    shape = (layer.num_layers * D, batch)
    states = [
        torch.randn(*shape, width, dtype=dtype, generator=generator).requires_grad_()
        for width in layer.state_sizes()
    ]
    return tuple(states) if len(states) > 1 else states[0]


def _leaves(value):
    if value is None:
        return []
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for v in value for t in _leaves(v)]


FORMS = [
    # (layer kwargs, input form, with hx)
    ({}, "padded", False),
    ({"num_layers": 2, "bidirectional": True}, "padded", True),
    ({"num_layers": 2, "bias": False}, "lengths", True),
    ({"bidirectional": True}, "packed", True),
    ({"batch_first": True}, "padded", True),
    ({"num_layers": 2}, "unbatched", True),
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f"{','.join(f[0]) or 'plain'}-{f[1]}")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", NAMES)
def test_layer_equals_the_cells_equations(name, engine, form):
    kwargs, kind, with_hx = form
    layer = _layer(name, engine, **kwargs)
    generator = torch.Generator().manual_seed(5)
    T, B = 5, 1 if kind == "unbatched" else 3
    x = torch.randn(T, B, 3, dtype=F64, generator=generator, requires_grad=True)
    hx = _states(layer, B, generator) if with_hx else None
    lengths = torch.tensor([5, 2, 4]) if kind in ("packed", "lengths") else None

    if kind == "packed":
        out, finals = layer(pack_padded_sequence(x, lengths, enforce_sorted=False), hx)
        out = pad_packed_sequence(out, total_length=T)[0]
    elif kind == "lengths":
        out, finals = layer(x, hx, lengths=lengths)
    elif kind == "unbatched":
        squeeze = (lambda s: tuple(t[:, 0] for t in s)) if isinstance(hx, tuple) else None
        given = squeeze(hx) if squeeze else hx[:, 0]
        out, finals = layer(x[:, 0], given)
        out = out.unsqueeze(1)
        finals = (
            tuple(f.unsqueeze(1) for f in finals)
            if isinstance(finals, tuple)
            else finals.unsqueeze(1)
        )
    elif layer.batch_first:
        out, finals = layer(x.transpose(0, 1), hx)
        out = out.transpose(0, 1)
    else:
        out, finals = layer(x, hx)
    expected_out, expected_finals = equations_loop(layer, x, hx, lengths)

    ours, theirs = [out, *_leaves(finals)], [expected_out, *_leaves(expected_finals)]
    for a, e in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, e, atol=TOLERANCE, rtol=0)
    weights = [torch.randn(t.shape, dtype=F64, generator=generator) for t in ours]
    inputs = [x, *_leaves(hx), *layer.parameters()]

    def grads(outputs):
        total = sum((t * w).sum() for t, w in zip(outputs, weights, strict=True))
        return torch.autograd.grad(total, inputs, allow_unused=True)

    for a, e in zip(grads(ours), grads(theirs), strict=True):
        if e is None:
            assert a is None or torch.count_nonzero(a) == 0
        else:
            torch.testing.assert_close(a, e, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", NAMES)
def test_engine_backward_passes_gradcheck(name, engine, reverse):
    layer = _layer(name, engine, bidirectional=reverse)
    generator = torch.Generator().manual_seed(9)
    x = torch.randn(4, 2, 3, dtype=F64, generator=generator, requires_grad=True)
    lengths = torch.tensor([4, 2])
    hx = _states(layer, 2, generator)
    params = list(layer.parameters())

    def run(x, *rest):
        states, values = rest[: len(_leaves(hx))], rest[len(_leaves(hx)) :]
        with torch.nn.utils.stateless._reparametrize_module(
            layer, dict(zip([n for n, _ in layer.named_parameters()], values, strict=True))
        ):
            state = tuple(states) if len(states) > 1 else states[0]
            out, finals = layer(x, state, lengths=lengths)
        return (out, *_leaves(finals))

    assert gradcheck(run, (x, *_leaves(hx), *params), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_compiled_float32_is_float64_within_float32_rounding(name):
    exact = _layer(name, "reference", num_layers=2, bidirectional=True)
    single = _layer(name, "compiled", dtype=torch.float32, num_layers=2, bidirectional=True)
    single.load_state_dict({k: v.float() for k, v in exact.state_dict().items()})
    x = torch.randn(6, 3, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    x64, x32 = x.clone().requires_grad_(), x.float().requires_grad_()
    out64, out32 = exact(x64)[0], single(x32)[0]
    torch.testing.assert_close(out32.double(), out64, atol=2e-5, rtol=1e-4)
    (g64,), (g32,) = (
        torch.autograd.grad(out64.sum(), [x64]),
        torch.autograd.grad(out32.sum(), [x32]),
    )
    torch.testing.assert_close(g32.double(), g64, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("name", NAMES)
def test_inference_path_and_streaming_equal_the_training_path(name, dtype):
    layer = _layer(name, "compiled", dtype=dtype, num_layers=2)
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(5, 2, 3, dtype=dtype, generator=generator)
    hx = _states(layer, 2, generator, dtype)
    hx = tuple(h.detach() for h in hx) if isinstance(hx, tuple) else hx.detach()
    trained_out, trained_finals = layer(x.clone().requires_grad_(), hx)
    with torch.no_grad():
        fast_out, fast_finals = layer(x, hx)
        assert "-> 'compiled'" in layer.explain()
        state, steps = hx, []
        for x_t in x:
            y, state = layer.step(x_t, state)
            steps.append(y)
    tolerance = TOLERANCE if dtype == F64 else 1e-6
    for a, e in zip(
        [fast_out, torch.stack(steps), *_leaves(fast_finals), *_leaves(state)],
        [trained_out, trained_out, *_leaves(trained_finals), *_leaves(trained_finals)],
        strict=True,
    ):
        torch.testing.assert_close(a, e.detach(), atol=tolerance, rtol=0)


class _Model(nn.Module):
    """A client's own model around an rnnkit layer."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.head = nn.Linear(layer.recurrent_size, 2)

    def forward(self, x):
        return self.head(self.layer(x)[0])


@pytest.mark.parametrize("name", NAMES)
def test_a_whole_model_loads_with_weights_only(name):
    model = _Model(_layer(name, "auto", dtype=torch.float32))
    x = torch.randn(4, 2, 3)
    with torch.no_grad():
        expected = model(x)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals([_Model, nn.Linear]):
        loaded = torch.load(buffer, weights_only=True)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected)
    assert type(loaded.layer) is type(model.layer)
