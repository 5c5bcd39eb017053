"""Layer-normalized LSTM and GRU layers (torch has no kernel for them: no `native`)."""

from __future__ import annotations

from ..cells import Cell, LayerNormGRUCell, LayerNormLSTMCell
from .recurrent import Recurrent

__all__ = ["LayerNormGRU", "LayerNormLSTM"]


class _LayerNormLayer(Recurrent):
    _cell_type: type[Cell]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            self._cell_type(bias=bias),
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
            device=device,
            dtype=dtype,
        )

    def _make_cell(self) -> Cell:
        return self._cell_type(bias=self.bias)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + self._options_repr()


class LayerNormLSTM(_LayerNormLayer):
    """Layer-normalized LSTM (Ba, Kiros, Hinton 2016), gate order i, f, g, o:

        a   = LN(W_ih x_t; γ_x, β_x) + LN(W_hh h_{t-1}; γ_h, β_h) + b
        [i, f, g, o] = [σ, σ, tanh, σ](a)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(LN(c_t; γ_c, β_c))

    LN normalizes each row over its features (all 4H gate pre-activations together, or the H
    cell units) as torch.nn.LayerNorm does (biased variance, eps 1e-5); details and the backward
    in rnnkit.cells.layernorm_lstm. Call as torch.nn.LSTM: (input, (h_0, c_0)=None) ->
    (output (T, B, D*H), (h_n (L*D, B, H), c_n (L*D, B, H))), padded, batch_first, unbatched
    or PackedSequence. Parameters per layer k (suffix _reverse for the backward direction):
    weight_ih_l{k} (4H, I_k), weight_hh_l{k} (4H, H), bias_l{k} (4H) = b (bias=True only),
    ln_ih_weight_l{k}, ln_ih_bias_l{k} (4H) = γ_x, β_x, ln_hh_weight_l{k}, ln_hh_bias_l{k}
    (4H) = γ_h, β_h, ln_cell_weight_l{k}, ln_cell_bias_l{k} (H) = γ_c, β_c. Weights start
    uniform in ±1/sqrt(H), γ at 1, β and b at 0. backend: "auto" (compiled where it serves the
    call), "compiled" or "reference"; torch has no kernel for this cell, so "native" is refused.
    """

    _cell_type = LayerNormLSTMCell


class LayerNormGRU(_LayerNormLayer):
    """Layer-normalized GRU, torch.nn.GRU's step (gate order r, z, n) on normalized
    pre-activations, as haste's LayerNormGRU (with a shift β in each normalization):

        gi = LN(W_ih x_t; γ_x, β_x) + b_ih,   gh = LN(W_hh h_{t-1}; γ_h, β_h) + b_hh
        r = σ(gi_r + gh_r),   z = σ(gi_z + gh_z),   n = tanh(gi_n + r * gh_n)
        h_t = (1 - z) * n + z * h_{t-1}

    LN normalizes each row over all 3H pre-activations of its side, as torch.nn.LayerNorm does
    (biased variance, eps 1e-5); details and the backward in rnnkit.cells.layernorm_gru. Call
    as torch.nn.GRU: (input, h_0=None) -> (output (T, B, D*H), h_n (L*D, B, H)). Parameters per
    layer k (suffix _reverse for the backward direction): weight_ih_l{k} (3H, I_k),
    weight_hh_l{k} (3H, H), bias_ih_l{k}, bias_hh_l{k} (3H) (bias=True only), ln_ih_weight_l{k},
    ln_ih_bias_l{k} (3H) = γ_x, β_x, ln_hh_weight_l{k}, ln_hh_bias_l{k} (3H) = γ_h, β_h.
    Weights start uniform in ±1/sqrt(H), γ at 1, β and b at 0. backend: "auto", "compiled" or
    "reference" ("native" is refused).
    """

    _cell_type = LayerNormGRUCell
