"""Finite-difference checks of every cell's hand-written backward, through the reference engine.

Each cell runs through `rnnkit.engine.sweep` (one layer, one direction) on packed and padded
layouts, forward and reverse, and `torch.autograd.gradcheck` compares the engine's gradients of
the input, the initial states and every weight with central differences in float64. A toy cell
defined here proves a new cell gets the engine without editing it.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck
from torch.nn.utils.rnn import pack_sequence

import rnnkit
from rnnkit.activations import SIGMOID, TANH
from rnnkit.cells import Cell, ElmanCell, GRUCell, JordanCell, LSTMCell
from rnnkit.engine import SweepSpec, sweep
from rnnkit.engine.compiled import compiled_sweep

I, H, P, O = 3, 4, 2, 3  # input, hidden, projection and Jordan output widths


class MinimalGatedCell(Cell):
    """A toy cell unknown to the engine: h_t = (1 - z) * h_{t-1} + z * tanh(a),
    [z, a] = W_ih x + W_hh h + b (a minimal gated unit)."""

    num_gates = 2

    def step(self, gates, hidden_gates, r_prev, carried_prev, m_out):
        z = SIGMOID.forward(gates[:, :H])
        a = TANH.forward(gates[:, H:])
        torch.addcmul(r_prev, z, a - r_prev, out=m_out)
        return (), (z, a, r_prev)

    def step_backward(self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_out):
        z, a, h_prev = saved
        grad_gates_out[:, :H] = SIGMOID.backward(grad_m * (a - h_prev), z)
        grad_gates_out[:, H:] = TANH.backward(grad_m * z, a)
        return grad_m * (1 - z), ()


def _cell_setups():
    """(name, cell, recurrent width R, carried widths, output projection width or None)."""
    return [
        ("elman-tanh", ElmanCell("tanh"), H, (), None),
        ("elman-relu", ElmanCell("relu"), H, (), None),
        ("lstm", LSTMCell(), H, (H,), None),
        ("lstm-proj", LSTMCell(projected=True), P, (H,), P),
        ("gru", GRUCell(), H, (), None),
        ("jordan-tanh-tanh", JordanCell("tanh", "tanh"), O, (), O),
        ("jordan-relu-sigmoid", JordanCell("relu", "sigmoid"), O, (), O),
        ("jordan-tanh-identity", JordanCell("tanh", "identity"), O, (), O),
        ("toy-minimal-gated", MinimalGatedCell(), H, (), None),
    ]


def _weights(cell: Cell, R: int, out_width, bias: bool, generator):
    G = cell.num_gates * H

    def param(*shape):
        return (
            torch.randn(*shape, dtype=torch.float64, generator=generator) * 0.5
        ).requires_grad_()

    w_ih, w_hh = param(G, I), param(G, R)
    b_ih, b_hh = (param(G), param(G)) if bias else (None, None)
    if isinstance(cell, JordanCell):
        b_hh = None  # Jordan has a single hidden bias
    w_out = param(out_width, H) if out_width else None
    b_out = param(out_width) if out_width and bias and isinstance(cell, JordanCell) else None
    return (w_ih, w_hh, b_ih, b_hh, w_out, b_out)


@pytest.mark.parametrize("engine", [sweep, compiled_sweep], ids=["reference", "compiled"])
@pytest.mark.parametrize("layout", ["padded", "packed"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("setup", _cell_setups(), ids=lambda s: s[0])
def test_engine_gradcheck(setup, bias, reverse, layout, engine):
    name, cell, R, carried_widths, out_width = setup
    if engine is compiled_sweep and name.startswith("toy"):
        pytest.skip("a cell written in torch ops has no compiled kernel (see the test below)")
    generator = torch.Generator().manual_seed(7)
    if layout == "packed":
        lengths = [4, 3, 1]
        packed = pack_sequence(
            [torch.randn(n, I, dtype=torch.float64, generator=generator) for n in lengths]
        )
        data, batch_sizes = packed.data, tuple(packed.batch_sizes.tolist())
    else:
        T, B = 3, 2
        data = torch.randn(T * B, I, dtype=torch.float64, generator=generator)
        batch_sizes = (B,) * T
    B = batch_sizes[0]
    data.requires_grad_()
    r0 = torch.randn(B, R, dtype=torch.float64, generator=generator).requires_grad_()
    carried0 = tuple(
        torch.randn(B, w, dtype=torch.float64, generator=generator).requires_grad_()
        for w in carried_widths
    )
    weights = _weights(cell, R, out_width, bias, generator)
    spec = SweepSpec(cell, batch_sizes, reverse=reverse)
    present = [w for w in weights if w is not None]
    k = len(carried0)

    def run(data, r0, *rest):
        carried, given = rest[:k], list(rest[k:])
        full = tuple(given.pop(0) if w is not None else None for w in weights)
        outputs, r_final, carried_final = engine(spec, data, r0, carried, full)
        return (outputs, r_final, *carried_final)

    assert gradcheck(run, (data, r0, *carried0, *present), eps=1e-6, atol=1e-7)


def test_compiled_engine_refuses_a_cell_without_kernels():
    data, r0 = torch.zeros(2, I, dtype=torch.float64), torch.zeros(1, H, dtype=torch.float64)
    spec = SweepSpec(MinimalGatedCell(), (1, 1))
    weights = (
        torch.zeros(2 * H, I, dtype=torch.float64),
        torch.zeros(2 * H, H, dtype=torch.float64),
    )
    with pytest.raises(NotImplementedError, match="no compiled kernel for MinimalGatedCell"):
        compiled_sweep(spec, data, r0, (), (*weights, None, None, None, None))


def test_engine_matches_hand_written_loop_for_toy_cell():
    """The engine over a cell it has never seen equals a plain autograd loop over the steps."""
    generator = torch.Generator().manual_seed(1)
    cell = MinimalGatedCell()
    T, B = 5, 3
    x = torch.randn(T, B, I, dtype=torch.float64, generator=generator)
    h0 = torch.randn(B, H, dtype=torch.float64, generator=generator)
    w_ih, w_hh, b_ih, b_hh, _, _ = _weights(cell, H, None, True, generator)

    outputs, h_final, _ = sweep(
        SweepSpec(cell, (B,) * T), x.reshape(T * B, I), h0, (), (w_ih, w_hh, b_ih, b_hh, None, None)
    )

    h, expected = h0, []
    for t in range(T):
        gates = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        z, a = torch.sigmoid(gates[:, :H]), torch.tanh(gates[:, H:])
        h = (1 - z) * h + z * a
        expected.append(h)
    expected = torch.stack(expected).reshape(T * B, H)
    torch.testing.assert_close(outputs, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_final, h, atol=1e-12, rtol=0)

    weights = [w_ih, w_hh, b_ih, b_hh]
    ours = torch.autograd.grad(outputs.sum() + h_final.square().sum(), weights)
    theirs = torch.autograd.grad(expected.sum() + h.square().sum(), weights)
    for a, e in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=0)


@pytest.mark.parametrize("output_nonlinearity", ["tanh", "sigmoid", "identity", "relu"])
def test_jordan_layer_matches_its_equations(output_nonlinearity):
    """JordanRNN equals h_t = f(W_x x_t + W_r y_{t-1} + b), y_t = g(W_y h_t + b_y), y_0 given."""
    torch.manual_seed(2)
    layer = rnnkit.JordanRNN(I, H, O, output_nonlinearity=output_nonlinearity, dtype=torch.float64)
    T, B = 6, 2
    x = torch.randn(T, B, I, dtype=torch.float64)
    y0 = torch.randn(1, B, O, dtype=torch.float64)
    y, y_last = layer(x, y0)

    g = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "identity": lambda v: v}[
        output_nonlinearity
    ]
    prev, expected = y0[0], []
    for t in range(T):
        h = torch.tanh(x[t] @ layer.weight_ih_l0.T + prev @ layer.weight_yh_l0.T + layer.bias_h_l0)
        prev = g(h @ layer.weight_hy_l0.T + layer.bias_y_l0)
        expected.append(prev)
    expected = torch.stack(expected)
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(y_last[0], prev, atol=1e-12, rtol=0)

    params = list(layer.parameters())
    ours = torch.autograd.grad((y * expected.detach()).sum(), params)
    theirs = torch.autograd.grad((expected * expected.detach()).sum(), params)
    for a, e in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU", "JordanRNN"])
def test_layer_gradcheck_stacked_bidirectional_packed(kind, backend):
    """Whole layers (2 layers, both directions, packed input, initial states) pass gradcheck."""
    torch.manual_seed(4)
    if kind == "JordanRNN":
        layer = rnnkit.JordanRNN(
            I, H, O, num_layers=2, bidirectional=True, dtype=torch.float64, backend=backend
        )
        widths = [O]
    else:
        extra = {"proj_size": 2} if kind == "LSTM" else {}
        layer = getattr(rnnkit, kind)(
            I,
            H,
            num_layers=2,
            bidirectional=True,
            dtype=torch.float64,
            backend=backend,
            **extra,
        )
        widths = [2, H] if kind == "LSTM" else [H]
    sequences = [torch.randn(n, I, dtype=torch.float64) for n in (3, 4, 1)]
    states = [torch.randn(4, 3, w, dtype=torch.float64, requires_grad=True) for w in widths]
    params = list(layer.parameters())
    names = [name for name, _ in layer.named_parameters()]

    def run(*tensors):
        seqs, hx, weights = tensors[:3], tensors[3 : 3 + len(states)], tensors[3 + len(states) :]
        packed = pack_sequence(list(seqs), enforce_sorted=False)
        hx = tuple(hx) if kind == "LSTM" else hx[0]
        output, finals = torch.func.functional_call(
            layer, dict(zip(names, weights, strict=True)), (packed, hx)
        )
        finals = finals if isinstance(finals, tuple) else (finals,)
        return (output.data, *finals)

    inputs = (
        [s.requires_grad_() for s in sequences]
        + states
        + [p.detach().clone().requires_grad_() for p in params]
    )
    assert gradcheck(run, tuple(inputs), eps=1e-6, atol=1e-7)
