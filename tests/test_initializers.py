"""rnnkit.initializers: each scheme sets what its paper says, in every layer and direction of
every registered cell (orthogonal and Xavier gate blocks, the IRNN's identity, chrono's gate
biases), the forget-gate bias shift, nothing else touched, clear errors."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.cells import CELLS
from rnnkit.initializers import (
    Initialization,
    init_recurrent_,
    initialize_,
    recurrent_layers,
    shift_forget_bias_,
)
from rnnkit.layers import make_layer

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
    with pytest.raises(ValueError, match="chrono init needs chrono_tmax, an integer >= 2"):
        Initialization(recurrent="chrono", chrono_tmax=1)
    with pytest.raises(ValueError, match="input init must be one of"):
        Initialization(input="ones")


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


# ---------------------------------------------------------------- every scheme, every cell


def matrix_blocks(layer, prefix: str, gates: int) -> list[torch.Tensor]:
    blocks = []
    for name, weight in layer.named_parameters():
        if name.startswith(prefix) and weight.dim() == 2:
            blocks += list(weight.detach().split(weight.shape[0] // gates))
    return blocks


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("scheme", ["orthogonal", "uniform", "xavier", "identity"])
def test_each_scheme_sets_what_its_paper_says_on_every_cell(cell, scheme):
    torch.manual_seed(0)
    layer = make_layer(cell, I, H, num_layers=2, bidirectional=True)
    before = snapshot(layer)
    initialize_(layer, Initialization(recurrent=scheme))
    ((_, gates, _),) = recurrent_layers(layer)
    blocks = matrix_blocks(layer, "weight_hh_l", gates)
    for block in blocks:
        fan_out, fan_in = block.shape
        if scheme == "orthogonal":  # Saxe et al. 2014: W^T W = I
            assert_orthonormal_columns(block)
        elif scheme == "identity":  # Le et al. 2015: W_hh = I
            torch.testing.assert_close(block, torch.eye(fan_out, fan_in), atol=0, rtol=0)
        elif scheme == "xavier":  # Glorot & Bengio 2010: U(-a, a), a = sqrt(6 / (in + out))
            assert block.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5 + 1e-7
    for name, weight in layer.named_parameters():
        recurrent_matrix = name.startswith("weight_hh_l") and weight.dim() == 2
        bias = name.startswith("bias_")
        if scheme == "identity" and bias:  # the IRNN starts with zero biases
            assert torch.count_nonzero(weight) == 0, name
        elif not recurrent_matrix or scheme == "uniform":
            torch.testing.assert_close(weight, before[name], atol=0, rtol=0)


@pytest.mark.parametrize("cell", list(CELLS))
def test_chrono_sets_the_keeping_and_writing_gate_biases(cell):
    """Tallec & Ollivier 2018: b_keep = log(u), u ~ U[1, T_max - 1]; an LSTM's b_input = -b_f;
    b_hh of those gates 0, so the sum is that."""
    torch.manual_seed(0)
    layer = make_layer(cell, I, H, num_layers=2, bidirectional=True)
    chrono = CELLS[cell].cell.chrono_gates
    scheme = Initialization(recurrent="chrono", chrono_tmax=50)
    if not chrono:
        with pytest.raises(ValueError, match="has no gate that keeps its state"):
            initialize_(layer, scheme)
        return
    initialize_(layer, scheme)
    ((_, gates, _),) = recurrent_layers(layer)
    for block in matrix_blocks(layer, "weight_hh_l", gates):
        assert_orthonormal_columns(block)
    params = dict(layer.named_parameters())
    for name, bias_ih in params.items():
        if not name.startswith("bias_ih_l"):
            continue
        bias_hh = params[name.replace("bias_ih", "bias_hh")]
        total = (bias_ih + bias_hh).detach()
        (keep, _), *writes = chrono
        kept = total[keep * H : (keep + 1) * H]
        assert kept.min() >= 0 and kept.max() <= torch.log(torch.tensor(49.0)) + 1e-6
        assert kept.std() > 0.3  # spread over the range, not one value
        for gate, sign in writes:
            torch.testing.assert_close(total[gate * H : (gate + 1) * H], sign * kept)


def test_lstm_and_gru_keep_the_gates_torch_has():
    """The cells' chrono gates are torch's forget gate (LSTM i,f,g,o) and update gate (GRU
    r,z,n: h = (1 - z) n + z h_prev)."""
    assert CELLS["lstm"].cell.chrono_gates == ((1, 1.0), (0, -1.0))
    assert CELLS["gru"].cell.chrono_gates == ((1, 1.0),)


@pytest.mark.parametrize("scheme", ["xavier", "orthogonal"])
def test_input_init_per_gate(scheme):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H)
    before = snapshot(layer)
    initialize_(layer, Initialization(recurrent="uniform", input=scheme))
    for block in matrix_blocks(layer, "weight_ih_l", 4):
        if scheme == "orthogonal":
            assert_orthonormal_columns(block)  # (H, I), I < H: orthonormal columns
        else:
            assert block.abs().max() <= (6 / (I + H)) ** 0.5 + 1e-7
    torch.testing.assert_close(layer.weight_hh_l0, before["weight_hh_l0"], atol=0, rtol=0)


def test_a_model_is_initialized_layer_by_layer():
    """initialize_ walks a whole model: every recurrent layer inside it."""
    model = torch.nn.ModuleDict({"a": rnnkit.GRU(I, H), "b": rnnkit.LSTM(H, H)})
    initialize_(model, Initialization(recurrent="identity", forget_bias=2.0))
    torch.testing.assert_close(model["a"].weight_hh_l0.detach()[:H], torch.eye(H))
    torch.testing.assert_close(model["b"].bias_ih_l0.detach()[H : 2 * H], torch.full((H,), 2.0))
