"""Hypothesis properties over random layer configurations and calls.

For RNN, LSTM and GRU, torch.nn with the same constructor arguments (and the same weights) is the
oracle for every shape; the reference backend must reproduce the native backend's values in
float64. JordanRNN has no torch counterpart: its shapes are checked against the documented
contract, and its final states against its own outputs.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit

TOL = {"atol": 1e-9, "rtol": 1e-9}
F64 = torch.float64
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def torch_configs(draw, kinds=("RNN", "LSTM", "GRU")):
    """(kind, constructor kwargs) for one of torch's layers."""
    kind = draw(st.sampled_from(kinds))
    hidden = draw(st.integers(1, 6))
    kwargs = {
        "input_size": draw(st.integers(1, 5)),
        "hidden_size": hidden,
        "num_layers": draw(st.integers(1, 3)),
        "bias": draw(st.booleans()),
        "batch_first": draw(st.booleans()),
        "bidirectional": draw(st.booleans()),
    }
    if kind == "RNN":
        kwargs["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    if kind == "LSTM" and hidden > 1 and draw(st.booleans()):
        kwargs["proj_size"] = draw(st.integers(1, hidden - 1))
    return kind, kwargs


@st.composite
def jordan_configs(draw):
    return {
        "input_size": draw(st.integers(1, 5)),
        "hidden_size": draw(st.integers(1, 6)),
        "output_size": draw(st.integers(1, 4)),
        "nonlinearity": draw(st.sampled_from(["tanh", "relu"])),
        "output_nonlinearity": draw(st.sampled_from(["tanh", "relu", "sigmoid", "identity"])),
        "bias": draw(st.booleans()),
        "batch_first": draw(st.booleans()),
        "num_layers": draw(st.integers(1, 3)),
        "bidirectional": draw(st.booleans()),
    }


calls = st.fixed_dictionaries(
    {
        "form": st.sampled_from(["padded", "unbatched"]),
        "batch": st.integers(1, 4),
        "steps": st.integers(1, 5),
        "with_hx": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
)


def widths(kind: str, kwargs: dict) -> tuple[int, ...]:
    """Feature width of each state: (R,) or LSTM's (R, H)."""
    hidden = kwargs["hidden_size"]
    if kind == "LSTM":
        return (kwargs.get("proj_size", 0) or hidden, hidden)
    if kind == "JordanRNN":
        return (kwargs["output_size"],)
    return (hidden,)


def make_input(kwargs: dict, call: dict) -> torch.Tensor:
    T, B, size = call["steps"], call["batch"], kwargs["input_size"]
    if call["form"] == "unbatched":
        return torch.randn(T, size, dtype=F64)
    return torch.randn((B, T, size) if kwargs["batch_first"] else (T, B, size), dtype=F64)


def make_hx(kind: str, kwargs: dict, call: dict):
    if not call["with_hx"]:
        return None
    L = kwargs["num_layers"] * (2 if kwargs["bidirectional"] else 1)
    lead = (L,) if call["form"] == "unbatched" else (L, call["batch"])
    states = tuple(torch.randn((*lead, width), dtype=F64) for width in widths(kind, kwargs))
    return states if kind == "LSTM" else states[0]


def as_tuple(finals) -> tuple[torch.Tensor, ...]:
    return finals if isinstance(finals, tuple) else (finals,)


def same_weights(kind: str, kwargs: dict, seed: int):
    """torch.nn's layer and rnnkit's (native backend) with the same weights, both in eval mode."""
    torch.manual_seed(seed)
    theirs = getattr(nn, kind)(**kwargs, dtype=F64).eval()
    ours = getattr(rnnkit, kind)(**kwargs, dtype=F64, backend="native").eval()
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def assert_same_shapes(got, want):
    (out, finals), (out_t, finals_t) = got, want
    assert out.shape == out_t.shape
    assert [f.shape for f in as_tuple(finals)] == [f.shape for f in as_tuple(finals_t)]


def assert_same_values(got, want):
    (out, finals), (out_t, finals_t) = got, want
    torch.testing.assert_close(out, out_t, **TOL)
    for f, f_t in zip(as_tuple(finals), as_tuple(finals_t), strict=True):
        torch.testing.assert_close(f, f_t, **TOL)


@SETTINGS
@given(config=torch_configs(), call=calls)
def test_shapes_match_torch_and_reference_matches_native(config, call):
    kind, kwargs = config
    theirs, ours = same_weights(kind, kwargs, call["seed"])
    x, hx = make_input(kwargs, call), make_hx(kind, kwargs, call)

    expected = theirs(x, hx)
    native = ours(x, hx)
    ours.backend = "reference"
    reference = ours(x, hx)

    assert_same_shapes(native, expected)
    assert_same_shapes(reference, expected)
    assert_same_values(native, expected)  # the same kernel: sanity of the dispatch
    assert_same_values(reference, native)


@st.composite
def lengths_lists(draw):
    batch = draw(st.integers(1, 5))
    return draw(st.lists(st.integers(1, 6), min_size=batch, max_size=batch))


@SETTINGS
@given(
    config=torch_configs(),
    lengths=lengths_lists(),
    with_hx=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_packed_input_matches_torch(config, lengths, with_hx, seed):
    kind, kwargs = config
    theirs, ours = same_weights(kind, kwargs, seed)
    ours.backend = "reference"
    T, B = max(lengths), len(lengths)
    shape = (B, T, kwargs["input_size"]) if kwargs["batch_first"] else (T, B, kwargs["input_size"])
    x = torch.randn(shape, dtype=F64)
    packed = pack_padded_sequence(
        x, torch.tensor(lengths), batch_first=kwargs["batch_first"], enforce_sorted=False
    )
    hx = make_hx(kind, kwargs, {"form": "padded", "batch": B, "with_hx": with_hx})

    out_t, finals_t = theirs(packed, hx)
    out, finals = ours(packed, hx)

    assert isinstance(out, PackedSequence)
    assert torch.equal(out.batch_sizes, out_t.batch_sizes)
    assert torch.equal(out.sorted_indices, out_t.sorted_indices)
    assert torch.equal(out.unsorted_indices, out_t.unsorted_indices)
    assert_same_values((out.data, finals), (out_t.data, finals_t))


@SETTINGS
@given(kwargs=jordan_configs(), call=calls, packed=st.booleans())
def test_jordan_shapes(kwargs, call, packed):
    torch.manual_seed(call["seed"])
    layer = rnnkit.JordanRNN(**kwargs, dtype=F64)
    T, B, W = call["steps"], call["batch"], kwargs["output_size"]
    D = 2 if kwargs["bidirectional"] else 1
    L = kwargs["num_layers"]
    if packed:
        call = {**call, "form": "padded"}
    x, y_0 = make_input(kwargs, call), make_hx("JordanRNN", kwargs, call)

    if packed:
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        x = pack_padded_sequence(
            x, lengths, batch_first=kwargs["batch_first"], enforce_sorted=False
        )
    y, y_last = layer(x, y_0)

    if packed:
        assert isinstance(y, PackedSequence)
        assert y.data.shape == (int(lengths.sum()), D * W)
        assert torch.equal(y.batch_sizes, x.batch_sizes)
        assert y_last.shape == (L * D, B, W)
        return
    if call["form"] == "unbatched":
        assert y.shape == (T, D * W)
        assert y_last.shape == (L * D, W)
        y, y_last = y.unsqueeze(1), y_last.unsqueeze(1)
    elif kwargs["batch_first"]:
        assert y.shape == (B, T, D * W)
        y = y.transpose(0, 1)
    else:
        assert y.shape == (T, B, D * W)
    if call["form"] != "unbatched":
        assert y_last.shape == (L * D, B, W)
    # The last layer's final outputs are its outputs at the end of each direction's sweep.
    torch.testing.assert_close(y_last[(L - 1) * D], y[-1, :, :W], **TOL)
    if D == 2:
        torch.testing.assert_close(y_last[L * D - 1], y[0, :, W:], **TOL)


ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda v: v,
}


def jordan_loop(layer, x, y_0):
    """JordanRNN's documented equations as a plain loop: x (T, B, I), y_0 (L * D, B, O).

    h_t = f(W_x x_t + W_r y_{t-1} + b), y_t = g(W_y h_t + b_y); layer k reads layer k-1's y.
    Returns y (T, B, D * O) and y_last (L * D, B, O).
    """
    f, g = ACTIVATIONS[layer.nonlinearity], ACTIVATIONS[layer.output_nonlinearity]
    D = 2 if layer.bidirectional else 1
    T = x.shape[0]
    layer_input, finals = x, []
    for k in range(layer.num_layers):
        outputs = []
        for direction in range(D):
            suffix = f"_l{k}" + ("_reverse" if direction else "")
            w_x, w_r, w_y = (
                getattr(layer, n + suffix) for n in ("weight_ih", "weight_yh", "weight_hy")
            )
            b = getattr(layer, "bias_h" + suffix, None)
            b_y = getattr(layer, "bias_y" + suffix, None)
            y, ys = y_0[k * D + direction], [None] * T
            for t in reversed(range(T)) if direction else range(T):
                h = f(layer_input[t] @ w_x.T + y @ w_r.T + (0 if b is None else b))
                y = g(h @ w_y.T + (0 if b_y is None else b_y))
                ys[t] = y
            outputs.append(torch.stack(ys))
            finals.append(y)
        layer_input = torch.cat(outputs, dim=-1)
    return layer_input, torch.stack(finals)


@SETTINGS
@given(kwargs=jordan_configs(), call=calls, packed=st.booleans())
def test_jordan_values_match_a_plain_loop(kwargs, call, packed):
    torch.manual_seed(call["seed"])
    layer = rnnkit.JordanRNN(**kwargs, dtype=F64)
    T, B, W = call["steps"], call["batch"], kwargs["output_size"]
    LD = kwargs["num_layers"] * (2 if kwargs["bidirectional"] else 1)
    if packed:
        call = {**call, "form": "padded"}
    x, y_0 = make_input(kwargs, call), make_hx("JordanRNN", kwargs, call)
    unbatched, batch_first = call["form"] == "unbatched", kwargs["batch_first"]

    if not packed:
        y, y_last = layer(x, y_0)
        # The oracle's layout: (T, B, .) and (L * D, B, .).
        x_tb = x.unsqueeze(1) if unbatched else (x.transpose(0, 1) if batch_first else x)
        y_tb = y.unsqueeze(1) if unbatched else (y.transpose(0, 1) if batch_first else y)
        if y_0 is None:
            y_0_b = torch.zeros(LD, x_tb.shape[1], W, dtype=F64)
        else:
            y_0_b = y_0.unsqueeze(1) if unbatched else y_0
        want_y, want_last = jordan_loop(layer, x_tb, y_0_b)
        torch.testing.assert_close(y_tb, want_y, **TOL)
        torch.testing.assert_close(y_last.unsqueeze(1) if unbatched else y_last, want_last, **TOL)
        return

    # Packed: every sequence must come out as if run alone over its own length.
    lengths = torch.randint(1, T + 1, (B,))
    y, y_last = layer(
        pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False), y_0
    )
    padded, _ = pad_packed_sequence(y, total_length=T)  # (T, B, D * W)
    x_tb = x.transpose(0, 1) if batch_first else x
    for b, n in enumerate(lengths.tolist()):
        start = torch.zeros(LD, 1, W, dtype=F64) if y_0 is None else y_0[:, b : b + 1]
        want_y, want_last = jordan_loop(layer, x_tb[:n, b : b + 1], start)
        torch.testing.assert_close(padded[:n, b : b + 1], want_y, **TOL)
        torch.testing.assert_close(y_last[:, b : b + 1], want_last, **TOL)


@SETTINGS
@given(config=torch_configs(kinds=("RNN", "LSTM", "GRU", "JordanRNN")), call=calls)
def test_reference_backward_reaches_every_parameter(config, call):
    kind, kwargs = config
    torch.manual_seed(call["seed"])
    if kind == "JordanRNN":
        kwargs = {k: v for k, v in kwargs.items() if k != "proj_size"}
        kwargs["output_size"] = kwargs["hidden_size"]
        layer = rnnkit.JordanRNN(**kwargs, dtype=F64, backend="reference")
    else:
        layer = getattr(rnnkit, kind)(**kwargs, dtype=F64, backend="reference")
    x, hx = make_input(kwargs, call), make_hx(kind, kwargs, call)
    x.requires_grad_(True)
    output, finals = layer(x, hx)
    loss = output.sum() + sum(f.sum() for f in as_tuple(finals))
    loss.backward()

    assert x.grad is not None
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert parameter.grad.shape == parameter.shape
        assert torch.isfinite(parameter.grad).all(), name

    if kind == "JordanRNN":
        return
    # The reference backward agrees with torch's native one.
    reference_grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    layer.backend = "native"
    x_native = x.detach().clone().requires_grad_(True)
    output, finals = layer(x_native, hx)
    (output.sum() + sum(f.sum() for f in as_tuple(finals))).backward()
    torch.testing.assert_close(x.grad, x_native.grad, **TOL)
    for ref, parameter in zip(reference_grads, layer.parameters(), strict=True):
        torch.testing.assert_close(ref, parameter.grad, **TOL)
