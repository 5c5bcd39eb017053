"""Jordan cell (seed 002): the network's output, not its hidden state, is fed back.

    h_t = f(W_x x_t + W_r y_{t-1} + b)
    y_t = g(W_y h_t + b_y),        y_0 = 0 unless given

The hidden step is an Elman step whose recurrent input is y; the output layer is the engine's
output projection, so the recurrent vector r is y (width O) and nothing else is carried.
Parameter layout (rnnkit.JordanRNN): weight_ih (H, I) = W_x, weight_yh (H, O) = W_r,
bias_h (H) = b, weight_hy (O, H) = W_y, bias_y (O) = b_y.
"""

from __future__ import annotations

from ..activations import get_activation
from .elman import ElmanCell
from .registry import register_cell

__all__ = ["JordanCell"]


class JordanCell(ElmanCell):
    output_activations = ("tanh", "relu", "sigmoid", "identity")
    engine_parameters = {  # noqa: RUF012
        "w_ih": "weight_ih",
        "w_hh": "weight_yh",
        "b_ih": "bias_h",
        "w_out": "weight_hy",
        "b_out": "bias_y",
    }
    state_names = ("y_0",)

    def __init__(self, nonlinearity: str = "tanh", output_nonlinearity: str = "tanh") -> None:
        super().__init__(nonlinearity)
        self.output_activation = get_activation(
            output_nonlinearity,
            argument="output_nonlinearity",
            allowed=self.output_activations,
        )

    def extra_repr(self) -> str:
        return (
            f"nonlinearity={self.activation.name!r}, "
            f"output_nonlinearity={self.output_activation.name!r}"
        )


register_cell(
    "jordan",
    JordanCell,
    layer="JordanRNN",
    summary="Jordan network: the output y (as wide as the hidden layer) is fed back",
    options={"nonlinearity": ("tanh", "relu")},
    layer_args=lambda input_size, hidden_size: (input_size, hidden_size, hidden_size),
)
