"""rnnkit.Dropout: the compiled engine's hashed mask behaves as torch.nn.Dropout: keeps each
element with probability 1 - p, scales it by 1 / (1 - p), backward is the same mask, eval mode
is the identity, masks follow torch's seed, every floating dtype keeps its dtype."""

from __future__ import annotations

import io
import math

import pytest
import torch

import rnnkit
from rnnkit.engine.dropout import dropout, explain_dropout

N = 1 << 20


def kept_fraction_bound(p: float, n: int) -> float:
    return 6 * math.sqrt(p * (1 - p) / n)  # six standard deviations of the binomial


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_keeps_each_element_with_probability_one_minus_p_and_scales_it(p):
    torch.manual_seed(0)
    x = torch.rand(N) + 0.5  # no zeros: a zero output is a dropped element
    y = dropout(x, p)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < kept_fraction_bound(p, N)
    torch.testing.assert_close(y[kept], x[kept] / (1 - p), rtol=1e-6, atol=0)
    # neighbours are independent (two draws of one hash go to elements 2k and 2k + 1)
    both = (kept[0::2] & kept[1::2]).float().mean().item()
    assert abs(both - (1 - p) ** 2) < kept_fraction_bound((1 - p) ** 2, N // 2)
    # and so are the halves of the tensor (a counter-based hash, not a short cycle)
    first, second = kept[: N // 2], kept[N // 2 :]
    agree = (first == second).float().mean().item()
    expected = (1 - p) ** 2 + p**2
    assert abs(agree - expected) < kept_fraction_bound(expected, N // 2)


def test_backward_is_the_same_mask():
    torch.manual_seed(1)
    x = (torch.rand(4096, dtype=torch.float64) + 0.5).requires_grad_()
    weight = torch.randn(4096, dtype=torch.float64)
    y = dropout(x, 0.4)
    (y * weight).sum().backward()
    expected = torch.where(y != 0, weight / 0.6, torch.zeros_like(weight))
    torch.testing.assert_close(x.grad, expected, rtol=1e-15, atol=0)


def test_masks_follow_torchs_seed_and_differ_between_calls():
    x = torch.ones(10_000)
    torch.manual_seed(7)
    a, b = dropout(x, 0.5), dropout(x, 0.5)
    torch.manual_seed(7)
    c = dropout(x, 0.5)
    assert torch.equal(a, c) and not torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_every_floating_dtype_keeps_its_dtype(dtype):
    torch.manual_seed(2)
    x = torch.randn(3, 5, 7, dtype=dtype, requires_grad=True)
    y = dropout(x, 0.25)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    scale = torch.tensor(1 / 0.75, dtype=compute)
    expected = (x.detach().to(compute) * scale).to(dtype)  # then rounded once, to nearest even
    assert torch.equal(y[kept], expected[kept])
    y.sum().backward()
    assert x.grad.dtype == dtype


def test_non_contiguous_input_and_nan_stay_visible():
    x = torch.randn(64, 32).t()  # not contiguous
    y = dropout(x, 0.5)
    assert y.shape == x.shape
    nan = dropout(torch.full((1000,), math.nan), 0.5)
    assert torch.isnan(nan).all()  # a dropped nan is nan * 0, as in torch


def test_the_module_is_nn_dropout_and_identity_in_eval():
    layer = rnnkit.Dropout(0.3)
    assert isinstance(layer, torch.nn.Dropout) and layer.p == 0.3
    x = torch.randn(100)
    layer.eval()
    assert layer(x) is x
    assert rnnkit.Dropout(0.0).train()(x) is x
    assert torch.equal(rnnkit.Dropout(1.0).train()(x), torch.zeros(100))
    assert "compiled dropout" in layer.explain(x)
    assert "torch's dropout" in explain_dropout(torch.zeros(3, dtype=torch.float16))


def test_a_whole_model_with_it_loads_with_weights_only():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), rnnkit.Dropout(0.2))
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    # the client allowlists its own classes, as for torch.nn.LSTM; rnnkit's are allowlisted
    with torch.serialization.safe_globals([torch.nn.Sequential, torch.nn.Linear]):
        loaded = torch.load(buffer, weights_only=True)
    assert isinstance(loaded[1], rnnkit.Dropout) and loaded[1].p == 0.2


def test_the_language_model_uses_it():
    from rnnkit.models import LanguageModel, LanguageModelConfig

    model = LanguageModel(LanguageModelConfig(vocab_size=10, hidden_size=8, dropout=0.2))
    assert isinstance(model.dropout, rnnkit.Dropout)
