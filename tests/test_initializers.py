"""rnnkit.initializers: orthogonal gate blocks in every layer and direction, semi-orthogonal
blocks of a projected LSTM, the forget-gate bias shift, nothing else touched, clear errors."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.initializers import init_recurrent_, shift_forget_bias_

I, H = 5, 6


def snapshot(layer) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in layer.named_parameters()}


def assert_orthonormal_columns(block: torch.Tensor) -> None:
    eye = torch.eye(block.shape[1], dtype=block.dtype)
    torch.testing.assert_close(block.T @ block, eye, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("make", "gates"),
    [
        (lambda: rnnkit.RNN(I, H, num_layers=2, bidirectional=True), 1),
        (lambda: rnnkit.GRU(I, H, num_layers=2, bidirectional=True), 3),
        (lambda: rnnkit.LSTM(I, H, num_layers=2, bidirectional=True), 4),
        (lambda: torch.nn.LSTM(I, H, num_layers=2), 4),
    ],
    ids=["rnn", "gru", "lstm", "torch-lstm"],
)
def test_every_gate_block_becomes_orthogonal_and_nothing_else_changes(make, gates):
    torch.manual_seed(0)
    layer = make()
    before = snapshot(layer)
    assert init_recurrent_(layer) is layer
    recurrent = [n for n in before if n.startswith("weight_hh_l")]
    assert len(recurrent) == 2 * (1 + layer.bidirectional)
    for name, weight in layer.named_parameters():
        if name in recurrent:
            blocks = weight.detach().split(H)
            assert len(blocks) == gates
            for block in blocks:
                assert_orthonormal_columns(block)
            # independent draws: no two gates share a matrix
            assert all(not torch.equal(blocks[0], b) for b in blocks[1:])
        else:
            torch.testing.assert_close(weight, before[name], atol=0, rtol=0)


def test_projected_lstm_blocks_are_semi_orthogonal():
    layer = torch.nn.LSTM(I, H, proj_size=3)
    init_recurrent_(layer)
    blocks = layer.weight_hh_l0.detach().split(H)  # four (H, P) blocks
    assert [tuple(b.shape) for b in blocks] == [(H, 3)] * 4
    for block in blocks:
        assert_orthonormal_columns(block)


def test_uniform_and_jordan_are_left_alone():
    for layer, kind in ((rnnkit.LSTM(I, H), "uniform"), (rnnkit.JordanRNN(I, H, H), "orthogonal")):
        before = snapshot(layer)
        init_recurrent_(layer, kind)
        for name, weight in layer.named_parameters():
            torch.testing.assert_close(weight, before[name], atol=0, rtol=0)


def test_orthogonal_init_keeps_float64_and_gradients():
    layer = init_recurrent_(rnnkit.GRU(I, H, dtype=torch.float64))
    assert layer.weight_hh_l0.dtype == torch.float64
    assert layer.weight_hh_l0.requires_grad
    out, _ = layer(torch.randn(4, 2, I, dtype=torch.float64))
    out.sum().backward()
    assert layer.weight_hh_l0.grad is not None


def test_bad_kind_is_one_clear_error():
    with pytest.raises(ValueError, match="recurrent init must be one of orthogonal, uniform"):
        init_recurrent_(rnnkit.RNN(I, H), "zeros")


def test_forget_bias_shift_moves_only_the_forget_rows_of_every_layer_and_direction():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, num_layers=2, bidirectional=True)
    before = snapshot(layer)
    assert shift_forget_bias_(layer, -1.0) is layer
    shifted = [n for n in before if n.startswith("bias_ih_l")]
    assert len(shifted) == 4
    for name, weight in layer.named_parameters():
        expected = before[name].clone()
        if name in shifted:
            expected[H : 2 * H] -= 1.0  # gate order (input, forget, cell, output)
        torch.testing.assert_close(weight, expected, atol=0, rtol=0)


def test_forget_bias_shift_needs_biases():
    with pytest.raises(ValueError, match="no biases"):
        shift_forget_bias_(rnnkit.LSTM(I, H, bias=False), -1.0)
