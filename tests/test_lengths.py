"""Padded batches with lengths=: each sequence gives what it gives alone, on every backend."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.layers.lengths import pad_packed

I, H, O = 3, 5, 4
LENGTHS = [2, 6, 1, 4]  # deliberately unsorted, with a length-1 and a full-length sequence
T = max(LENGTHS)


def _layer(kind: str, backend: str, batch_first: bool = False):
    torch.manual_seed(0)
    common = dict(num_layers=2, bidirectional=True, batch_first=batch_first, dtype=torch.float64)
    if kind == "JordanRNN":
        return rnnkit.JordanRNN(I, H, O, backend=backend, **common)
    return getattr(rnnkit, kind)(I, H, backend=backend, **common)


def _finals(finals):
    return list(finals) if isinstance(finals, tuple) else [finals]


CASES = [
    ("RNN", "compiled"),
    ("LSTM", "compiled"),
    ("GRU", "compiled"),
    ("JordanRNN", "compiled"),
    ("LSTM", "reference"),
    ("GRU", "native"),
    ("LayerNormLSTM", "reference"),
]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize(("kind", "backend"), CASES)
def test_each_sequence_gives_what_it_gives_alone(kind, backend, batch_first):
    layer = _layer(kind, backend, batch_first)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(len(LENGTHS), T, I, dtype=torch.float64, generator=generator)
    padded = x if batch_first else x.transpose(0, 1)
    output, finals = layer(padded, lengths=torch.tensor(LENGTHS))
    output = output if batch_first else output.transpose(0, 1)
    for b, n in enumerate(LENGTHS):
        alone_out, alone_finals = layer(x[b : b + 1, :n] if batch_first else x[b, :n, None])
        alone_out = alone_out[0] if batch_first else alone_out[:, 0]
        torch.testing.assert_close(output[b, :n], alone_out, atol=1e-12, rtol=0)
        assert torch.all(output[b, n:] == 0), "outputs past a sequence's length are zero"
        for got, alone in zip(_finals(finals), _finals(alone_finals), strict=True):
            torch.testing.assert_close(got[:, b], alone[:, 0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_matches_torch_packed_call_with_gradients(kind):
    ours = _layer(kind, "compiled")
    theirs = getattr(nn, kind)(I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(T, len(LENGTHS), I, dtype=torch.float64)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, finals = ours(x_ours, lengths=LENGTHS)
    packed = pack_padded_sequence(x_theirs, torch.tensor(LENGTHS), enforce_sorted=False)
    packed_out, expected_finals = theirs(packed)
    expected, _ = pad_packed_sequence(packed_out, total_length=T)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    for a, e in zip(_finals(finals), _finals(expected_finals), strict=True):
        torch.testing.assert_close(a, e, atol=1e-10, rtol=0)
    weights = torch.randn(out.shape, dtype=torch.float64)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, atol=1e-10, rtol=0)
    for a, e in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a.grad, e.grad, atol=1e-10, rtol=0)


def test_initial_states_follow_the_callers_batch_order():
    layer = _layer("LSTM", "compiled")
    x = torch.randn(T, len(LENGTHS), I, dtype=torch.float64)
    h0 = torch.randn(4, len(LENGTHS), H, dtype=torch.float64)
    c0 = torch.randn(4, len(LENGTHS), H, dtype=torch.float64)
    out, _ = layer(x, (h0, c0), lengths=LENGTHS)
    b, n = 2, LENGTHS[2]
    alone, _ = layer(x[:n, b : b + 1], (h0[:, b : b + 1], c0[:, b : b + 1]))
    torch.testing.assert_close(out[:n, b], alone[:, 0], atol=1e-12, rtol=0)


BAD = [
    ([2, 3], "lengths must be 1-D with one entry per sequence \\(batch = 4\\); got shape \\(2,\\)"),
    ([0, 1, 2, 3], "lengths must lie in 1..6 \\(the padded input has 6 steps\\); got values"),
    ([1, 2, 3, 7], "lengths must lie in 1..6"),
    (torch.tensor([1.0, 2.0, 3.0, 4.0]), "lengths must have an integer dtype; got torch.float32"),
    ([1, 2, 3.5, 4], "lengths must be integers"),
    ("1234", "lengths must be a 1-D integer tensor or a list of ints; got str"),
]


@pytest.mark.parametrize(("lengths", "message"), BAD)
def test_bad_lengths_are_one_line_errors(lengths, message):
    layer = _layer("GRU", "compiled")
    x = torch.randn(T, 4, I, dtype=torch.float64)
    with pytest.raises((ValueError, TypeError), match=f"^GRU: {message}") as info:
        layer(x, lengths=lengths)
    assert "\n" not in str(info.value)


def test_lengths_refused_with_packed_or_unbatched_input():
    layer = _layer("GRU", "compiled")
    packed = pack_padded_sequence(torch.randn(T, 4, I, dtype=torch.float64), LENGTHS, False, False)
    with pytest.raises(ValueError, match="a PackedSequence already carries its lengths"):
        layer(packed, lengths=LENGTHS)
    with pytest.raises(ValueError, match="lengths= needs a batched 3-D padded input"):
        layer(torch.randn(T, I, dtype=torch.float64), lengths=[3])


# ---------------------------------------------------------------- unpacking in one gather


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=7),
    sort=st.booleans(),
    batch_first=st.booleans(),
    extra=st.integers(0, 3),
)
def test_pad_packed_is_torchs_unpacking_in_values_and_gradients(lengths, sort, batch_first, extra):
    """rnnkit's pad_packed must give pad_packed_sequence's tensor and its gradient exactly."""
    if sort:
        lengths = sorted(lengths, reverse=True)
    g = torch.Generator().manual_seed(len(lengths) * 31 + sum(lengths))
    x = torch.randn(len(lengths), max(lengths), 3, generator=g, dtype=torch.float64)
    x.requires_grad_(True)
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=sort)
    total = max(lengths) + extra
    expected, _ = pad_packed_sequence(packed, batch_first=batch_first, total_length=total)
    got = pad_packed(packed, total, batch_first)
    assert torch.equal(got, expected)
    weights = torch.randn(expected.shape, generator=g, dtype=torch.float64)
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), x, retain_graph=True)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), x)
    assert torch.equal(grad_got, grad_expected)


def test_pad_packed_refuses_a_total_length_shorter_than_the_batch():
    packed = pack_padded_sequence(torch.zeros(2, 4, 1), torch.tensor([4, 2]), batch_first=True)
    with pytest.raises(ValueError, match="total_length 3 is shorter than the longest sequence"):
        pad_packed(packed, 3)
