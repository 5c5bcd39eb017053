"""JordanRNN (seed 002): the network's output, not its hidden state, is fed back."""

from __future__ import annotations

from .._checks import check_positive_int
from ..activations import get_activation
from ..cells import JordanCell
from .recurrent import Recurrent

__all__ = ["JordanRNN"]


class JordanRNN(Recurrent):
    """Jordan network:

        h_t = f(W_x x_t + W_r y_{t-1} + b)
        y_t = g(W_y h_t + b_y),        y_0 = 0 unless given

    Call: (input, y_0=None) -> (y (T, B, D*O), y_last (L*D, B, O)); input as for torch.nn.RNN
    (padded, batch_first, unbatched or PackedSequence). Stacked layers read the previous layer's
    y. Parameters per layer k (suffix _reverse for the backward direction):
    weight_ih_l{k} (H, I_k) = W_x, weight_yh_l{k} (H, O) = W_r, bias_h_l{k} (H) = b,
    weight_hy_l{k} (O, H) = W_y, bias_y_l{k} (O) = b_y; all start uniform in ±1/sqrt(H).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        nonlinearity: str = "tanh",
        output_nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        backend: str = "auto",
        *,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        check_positive_int("JordanRNN", "output_size", output_size)
        get_activation(nonlinearity, allowed=("tanh", "relu"), owner="JordanRNN")
        get_activation(
            output_nonlinearity,
            argument="output_nonlinearity",
            allowed=JordanCell.output_activations,
            owner="JordanRNN",
        )
        super().__init__(
            JordanCell(nonlinearity, output_nonlinearity),
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
            projection_size=output_size,
            device=device,
            dtype=dtype,
        )
        self.output_size = output_size
        self.nonlinearity, self.output_nonlinearity = nonlinearity, output_nonlinearity

    def _make_cell(self) -> JordanCell:
        return JordanCell(self.nonlinearity, self.output_nonlinearity)

    def forward(self, input, y_0=None, lengths=None):
        return super().forward(input, y_0, lengths=lengths)

    def extra_repr(self) -> str:
        s = (
            f"{self.input_size}, {self.hidden_size}, {self.output_size}, "
            f"nonlinearity={self.nonlinearity!r}, output_nonlinearity={self.output_nonlinearity!r}"
        )
        return s + self._options_repr()
