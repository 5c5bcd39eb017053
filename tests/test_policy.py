"""backend='auto': which backend each call runs, and the reason explain() gives."""

from __future__ import annotations

import pytest
import torch

import rnnkit


def _ran(layer, steps: int, batch: int, grad: bool) -> str:
    x = torch.randn(steps, batch, layer.input_size)
    with torch.set_grad_enabled(grad):
        layer(x)
    return layer.resolved_backend


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_unfused_torch_cells_train_compiled_and_short_calls_stay_native(kind):
    layer = getattr(rnnkit, kind)(4, 32)
    assert _ran(layer, 35, 8, grad=True) == "compiled"
    assert "measured faster than torch's for training at B=8, T=35, H=32" in layer.explain()
    assert _ran(layer, 1, 8, grad=False) == "native"
    assert "inference at B=8, T=1" in layer.explain()


def test_lstm_stays_on_torchs_fused_kernel_except_batch_one_training_of_wide_layers():
    assert _ran(rnnkit.LSTM(4, 32), 35, 8, grad=True) == "native"
    assert _ran(rnnkit.LSTM(4, 256), 35, 1, grad=True) == "compiled"
    assert _ran(rnnkit.LSTM(4, 256), 35, 1, grad=False) == "native"


@pytest.mark.parametrize("kind", ["JordanRNN", "LayerNormLSTM", "LayerNormGRU"])
def test_cells_torch_lacks_always_run_compiled(kind):
    layer = rnnkit.JordanRNN(4, 8, 3) if kind == "JordanRNN" else getattr(rnnkit, kind)(4, 8)
    for steps, batch, grad in [(1, 1, False), (35, 64, True)]:
        assert _ran(layer, steps, batch, grad) == "compiled"
        assert "torch has none for it" in layer.explain()


def test_explicit_backend_is_obeyed_and_said():
    layer = rnnkit.LSTM(4, 8, backend="compiled")
    assert _ran(layer, 35, 8, grad=True) == "compiled"
    assert layer.explain() == "backend='compiled' -> 'compiled' for last call: asked for explicitly"


def test_explain_before_any_call_describes_a_typical_call():
    assert "no call yet" in rnnkit.GRU(4, 8).explain()
