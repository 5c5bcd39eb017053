"""rnnkit's reference engine against torch.nn in float64, over a randomized grid of every
constructor argument and every input form: outputs, final states and the gradients of the input,
the initial states and every parameter must agree to 1e-9.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit

TOLERANCE = 1e-9
GRID_SIZE = 48


@dataclass(frozen=True)
class Case:
    kind: str  # "RNN", "LSTM", "GRU"
    kwargs: tuple  # constructor keyword arguments, as sorted items
    input_form: str  # "padded", "unbatched", "packed"
    with_hx: bool
    T: int
    B: int
    seed: int

    def __str__(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.kwargs)
        return f"{self.kind}({args})-{self.input_form}-hx{int(self.with_hx)}-T{self.T}B{self.B}"


def _random_case(rng: random.Random, seed: int) -> Case:
    kind = rng.choice(["RNN", "LSTM", "GRU"])
    hidden = rng.randint(2, 7)
    kwargs = {
        "input_size": rng.randint(1, 6),
        "hidden_size": hidden,
        "num_layers": rng.randint(1, 3),
        "bias": rng.random() < 0.8,
        "batch_first": rng.random() < 0.4,
        "bidirectional": rng.random() < 0.5,
    }
    if kind == "RNN":
        kwargs["nonlinearity"] = rng.choice(["tanh", "relu"])
    if kind == "LSTM" and rng.random() < 0.4:
        kwargs["proj_size"] = rng.randint(1, hidden - 1)
    if kwargs["num_layers"] > 1 and rng.random() < 0.3:
        kwargs["dropout"] = 0.4  # inactive in eval mode; train mode is tested separately
    return Case(
        kind=kind,
        kwargs=tuple(sorted(kwargs.items())),
        input_form=rng.choice(["padded", "padded", "unbatched", "packed"]),
        with_hx=rng.random() < 0.6,
        T=rng.randint(1, 6),
        B=rng.randint(1, 4),
        seed=seed,
    )


CASES = [_random_case(random.Random(1000 + i), i) for i in range(GRID_SIZE)]


def _make_layers(case: Case, backend: str = "reference"):
    """A torch.nn layer and an rnnkit layer (on `backend`) with the same weights."""
    kwargs = dict(case.kwargs)
    torch.manual_seed(case.seed)
    reference = getattr(nn, case.kind)(**kwargs, dtype=torch.float64)
    ours = getattr(rnnkit, case.kind)(**kwargs, dtype=torch.float64, backend=backend)
    ours.load_state_dict(reference.state_dict())
    reference.eval()
    ours.eval()
    return reference, ours


def _make_input(case: Case, layer: nn.RNNBase, generator: torch.Generator):
    kwargs = dict(case.kwargs)
    I = kwargs["input_size"]
    if case.input_form == "unbatched":
        return torch.randn(case.T, I, dtype=torch.float64, generator=generator)
    shape = (case.B, case.T, I) if layer.batch_first else (case.T, case.B, I)
    x = torch.randn(shape, dtype=torch.float64, generator=generator)
    if case.input_form == "packed":
        lengths = torch.randint(1, case.T + 1, (case.B,), generator=generator)
        lengths[torch.randint(0, case.B, (1,), generator=generator)] = case.T
        return pack_padded_sequence(x, lengths, batch_first=layer.batch_first, enforce_sorted=False)
    return x


def _make_hx(case: Case, layer: nn.RNNBase, generator: torch.Generator):
    if not case.with_hx:
        return None
    D = 2 if layer.bidirectional else 1
    batch = () if case.input_form == "unbatched" else (case.B,)
    widths = [layer.proj_size or layer.hidden_size]
    if case.kind == "LSTM":
        widths.append(layer.hidden_size)
    states = [
        torch.randn(layer.num_layers * D, *batch, w, dtype=torch.float64, generator=generator)
        for w in widths
    ]
    return tuple(states) if case.kind == "LSTM" else states[0]


def _leaves(value):
    """The tensors of an input, hx or output structure, in a fixed order."""
    if value is None:
        return []
    if isinstance(value, PackedSequence):
        return [value.data]
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for v in value for t in _leaves(v)]


def _requires_grad(value):
    """A copy of an input or hx structure whose tensors require grad."""
    if value is None:
        return None
    if isinstance(value, PackedSequence):
        data = value.data.detach().clone().requires_grad_()
        return PackedSequence(data, value.batch_sizes, value.sorted_indices, value.unsorted_indices)
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_()
    return tuple(_requires_grad(v) for v in value)


def _run(layer, x, hx, projections):
    """Forward, a loss touching every output, and the gradients of input, hx and parameters."""
    x, hx = _requires_grad(x), _requires_grad(hx)
    output, finals = layer(x, hx)
    outs = _leaves(output) + _leaves(finals)
    loss = sum((o * p).sum() for o, p in zip(outs, projections, strict=True))
    wrt = _leaves(x) + _leaves(hx) + list(layer.parameters())
    grads = torch.autograd.grad(loss, wrt)
    return outs, grads, output


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_engine_matches_torch(case: Case, backend: str):
    torch_layer, ours = _make_layers(case, backend)
    generator = torch.Generator().manual_seed(case.seed)
    x = _make_input(case, torch_layer, generator)
    hx = _make_hx(case, torch_layer, generator)

    with torch.no_grad():
        expected_output, expected_finals = torch_layer(x, hx)
    projections = [
        torch.randn(t.shape, dtype=torch.float64, generator=generator)
        for t in _leaves(expected_output) + _leaves(expected_finals)
    ]

    expected, expected_grads, expected_raw = _run(torch_layer, x, hx, projections)
    actual, actual_grads, actual_raw = _run(ours, x, hx, projections)

    assert type(actual_raw) is type(expected_raw)
    if isinstance(expected_raw, PackedSequence):
        assert torch.equal(actual_raw.batch_sizes, expected_raw.batch_sizes)
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape
        torch.testing.assert_close(a, e, atol=TOLERANCE, rtol=0)
    for a, e in zip(actual_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, e, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_backends_agree_after_switching(kind):
    """Switching backend on one layer never changes results beyond float rounding."""
    torch.manual_seed(3)
    layer = getattr(rnnkit, kind)(5, 8, num_layers=2, bidirectional=True)  # float32
    x = torch.randn(9, 4, 5)
    results = {}
    for backend in ("native", "reference", "compiled", "auto"):
        layer.backend = backend
        output, _ = layer(x)
        grads = torch.autograd.grad(output.square().sum(), list(layer.parameters()))
        results[backend] = (output.detach(), grads)
    for backend in ("reference", "compiled", "auto"):
        torch.testing.assert_close(results[backend][0], results["native"][0], atol=1e-5, rtol=1e-4)
        for a, e in zip(results[backend][1], results["native"][1], strict=True):
            torch.testing.assert_close(a, e, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_dropout_between_layers_matches_torch_in_training(kind):
    """With the same random stream, dropout between layers drops the same elements as torch."""
    torch.manual_seed(5)
    torch_layer = getattr(nn, kind)(3, 6, num_layers=3, dropout=0.5, dtype=torch.float64)
    ours = getattr(rnnkit, kind)(
        3, 6, num_layers=3, dropout=0.5, dtype=torch.float64, backend="reference"
    )
    ours.load_state_dict(torch_layer.state_dict())
    x = torch.randn(7, 4, 3, dtype=torch.float64)
    torch.manual_seed(11)
    expected, _ = torch_layer(x)
    torch.manual_seed(11)
    actual, _ = ours(x)
    torch.testing.assert_close(actual, expected, atol=TOLERANCE, rtol=0)
    # and dropout really acts in training: eval mode gives other values
    ours.eval()
    assert not torch.allclose(ours(x)[0], actual)


def test_layers_are_drop_in_subclasses():
    assert isinstance(rnnkit.LSTM(2, 3), nn.LSTM)
    assert isinstance(rnnkit.GRU(2, 3), nn.GRU)
    assert isinstance(rnnkit.RNN(2, 3, nonlinearity="relu"), nn.RNN)
    torch.manual_seed(0)
    theirs = nn.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3)
    torch.manual_seed(0)
    ours = rnnkit.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3)
    # same names, shapes and init from the same seed
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name, tensor in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], tensor), name
