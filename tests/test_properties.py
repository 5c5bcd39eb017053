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
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit

TOL = {"atol": 1e-9, "rtol": 1e-9}
F64 = torch.float64
SETTINGS = settings(
    max_examples=40,
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
