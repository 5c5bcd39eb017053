"""backend='auto': which backend each call runs, and the reason explain() gives."""

from __future__ import annotations

import copy

import pytest
import torch

import rnnkit


def _ran(layer, steps: int, batch: int, grad: bool) -> str:
    x = torch.randn(steps, batch, layer.input_size)
    with torch.set_grad_enabled(grad):
        layer(x)
    return layer.resolved_backend


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_unfused_torch_cells_run_compiled_except_short_training_calls(kind):
    layer = getattr(rnnkit, kind)(4, 32)
    assert _ran(layer, 35, 8, grad=True) == "compiled"
    assert "measured faster than torch's kernel for training at B=8, T=35, H=32" in (
        layer.explain()
    )
    assert _ran(layer, 2, 8, grad=True) == "native"
    assert "training at B=8, T=2" in layer.explain()
    assert _ran(layer, 35, 64, grad=False) == "compiled"
    assert _ran(layer, 1, 1, grad=False) == "compiled"


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN", "JordanRNN", "LayerNormGRU"])
@pytest.mark.parametrize("form", ["padded", "batch_first", "unbatched"])
def test_short_calls_without_gradients_run_the_compiled_fast_path_exactly(kind, form):
    torch.manual_seed(0)
    extra = {"proj_size": 3} if kind == "LSTM" else {}
    common = dict(num_layers=2, batch_first=form == "batch_first", dtype=torch.float64)
    if kind == "JordanRNN":
        layer = rnnkit.JordanRNN(4, 6, 5, **common)
    else:
        layer = getattr(rnnkit, kind)(4, 6, **common, **extra)
    reference = copy.deepcopy(layer)
    reference.backend = "reference"
    shape = {"padded": (3, 2, 4), "batch_first": (2, 3, 4), "unbatched": (3, 4)}[form]
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        _, state = reference(x)
        got, got_state = layer(x, state)
        expected, expected_state = reference(x, state)
    assert ("-> 'compiled'" in layer.explain() and "inference" in layer.explain()) or (
        "torch has none" in layer.explain()
    )
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
    for a, e in zip(_flat(got_state), _flat(expected_state), strict=True):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=0)


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def test_calls_the_fast_path_cannot_take_run_the_general_path_to_the_same_result():
    torch.manual_seed(1)
    for layer in (
        rnnkit.GRU(4, 8, bidirectional=True),
        rnnkit.GRU(4, 8, num_layers=2, dropout=0.5),
    ):
        twin = copy.deepcopy(layer)
        twin.backend = "reference"
        x = torch.randn(3, 2, 4)
        with torch.no_grad():
            torch.manual_seed(2)
            got = layer(x)[0]
            torch.manual_seed(2)
            torch.testing.assert_close(got, twin(x)[0], atol=1e-6, rtol=0)
        assert layer.resolved_backend == "compiled"


def test_lstm_runs_compiled_but_long_inference_calls_on_onednn():
    layer = rnnkit.LSTM(4, 32)
    assert _ran(layer, 35, 8, grad=True) == "compiled"
    assert _ran(layer, 2, 8, grad=True) == "compiled"
    assert _ran(layer, 35, 8, grad=False) == "native"
    assert "torch's kernel measured faster than the compiled engine for inference" in (
        layer.explain()
    )
    assert _ran(layer, 1, 1, grad=False) == "compiled"


def test_projected_lstm_which_onednn_refuses_follows_the_unfused_rule():
    assert _ran(rnnkit.LSTM(4, 128, proj_size=64), 35, 8, grad=True) == "compiled"
    assert _ran(rnnkit.LSTM(4, 128, proj_size=64), 35, 8, grad=False) == "compiled"
    assert _ran(rnnkit.LSTM(4, 128, proj_size=64), 2, 8, grad=True) == "native"


@pytest.mark.parametrize("kind", ["JordanRNN", "LayerNormLSTM", "LayerNormGRU", "IndRNN", "MinGRU"])
def test_cells_torch_lacks_always_run_compiled(kind):
    layer = rnnkit.JordanRNN(4, 8, 3) if kind == "JordanRNN" else getattr(rnnkit, kind)(4, 8)
    assert _ran(layer, 35, 64, grad=True) == "compiled"
    assert "torch has none" in layer.explain()
    assert _ran(layer, 1, 1, grad=False) == "compiled"


def test_explicit_backend_is_obeyed_and_said():
    layer = rnnkit.LSTM(4, 8, backend="compiled")
    assert _ran(layer, 35, 8, grad=True) == "compiled"
    assert layer.explain() == "backend='compiled' -> 'compiled' for last call: asked for explicitly"


def test_explain_before_any_call_describes_a_typical_call():
    assert "no call yet" in rnnkit.GRU(4, 8).explain()


# ---------------------------------------------------------------- autocast (bfloat16 training)

BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}


def test_under_autocast_lstm_runs_torchs_fused_kernel_in_bfloat16():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(4, 32)
    twin = torch.nn.LSTM(4, 32)
    twin.load_state_dict(layer.state_dict())
    x = torch.randn(35, 8, 4, requires_grad=True)
    with torch.autocast(**BF16):
        output, _ = layer(x)
        expected, _ = twin(x)
    assert layer.resolved_backend == "native"
    assert "autocast" in layer.explain()
    assert output.dtype == torch.bfloat16  # the products really ran in bfloat16
    assert torch.equal(output, expected)  # torch.nn's own call under autocast
    output.float().sum().backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
    assert all(p.grad.dtype == torch.float32 for p in layer.parameters())


@pytest.mark.parametrize("kind", ["JordanRNN", "LayerNormLSTM", "GRU"])
@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_under_autocast_narrow_inputs_compute_in_the_weights_dtype(kind, backend):
    """A sweep whose input is narrower than LOWER_FROM_FEATURES gains nothing from bfloat16
    (measured), so it runs as if autocast were off, on float32 inputs, including a bfloat16
    input or state handed over by a layer that ran in bfloat16. (torch's GRU is not autocast
    either, so a GRU keeps its float32 rule.)"""
    torch.manual_seed(0)
    if kind == "JordanRNN":
        layer = rnnkit.JordanRNN(4, 6, 5, backend=backend)
    else:
        layer = getattr(rnnkit, kind)(4, 6, backend=backend)
    x = torch.randn(12, 3, 4)
    _, state = layer(x)
    with torch.autocast(**BF16):
        output, _ = layer(x.bfloat16())
    assert output.dtype == torch.float32
    assert "narrower projections compute in torch.float32" in layer.explain()  # and says so
    torch.testing.assert_close(output, layer(x.bfloat16().float())[0], rtol=0, atol=0)
    with torch.autocast(**BF16):  # a state in bfloat16, as an autocast LSTM hands it over
        low = tuple(s.bfloat16() for s in state) if isinstance(state, tuple) else state.bfloat16()
        again, _ = layer(x, low)
    assert again.dtype == torch.float32
    high = tuple(s.bfloat16().float() for s in low) if isinstance(low, tuple) else low.float()
    torch.testing.assert_close(again, layer(x, high)[0], rtol=0, atol=0)
    assert "autocast" not in layer.explain()
