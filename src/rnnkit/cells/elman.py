"""Elman cell (seeds 000, 001, 003): the hidden state is fed back.

    h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   f in {tanh, relu}

Parameter layout (torch.nn.RNN's): weight_ih (H, I), weight_hh (H, H), bias_ih (H), bias_hh (H).
Backward, from the saved output h_t (seed 003's rnn_cell_backward):

    dL/da_t = dL/dh_t * f'(a_t),  with tanh' = 1 - h_t², relu' = [h_t > 0]
"""

from __future__ import annotations

from torch import Tensor

from ..activations import get_activation
from .base import Cell, CellKernel, StepBackward, StepForward, affine
from .registry import register_cell

__all__ = ["ElmanCell"]

# The compiled engine's row step: m = f(a), da = dm f'(a) from m; options[0] is f's code.
KERNEL = CellKernel(
    "Elman",
    r"""
struct Elman {
  template <class T> static void forward(const rnnkit::Forward<T>& s) {
    rnnkit::activate_into_n<T>(s.options[0], s.gates, s.m, s.H);
  }
  template <class T> static void backward(const rnnkit::Backward<T>& s) {
    rnnkit::times_derivative_into_n<T>(s.options[0], s.grad_m, s.m, s.grad_gates, s.H);
  }
};
""",
)


class ElmanCell(Cell):
    num_gates = 1
    kernel = KERNEL

    def __init__(self, nonlinearity: str = "tanh") -> None:
        self.activation = get_activation(nonlinearity, allowed=("tanh", "relu"))

    def step(self, gates: Tensor, hidden_gates, r_prev, carried_prev, m_out) -> StepForward:
        h = self.activation.forward(gates, out=m_out)  # (n, H)
        return (), h

    def step_backward(
        self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_gates_out
    ) -> StepBackward:
        h = saved
        self.activation.backward(grad_m, h, out=grad_gates_out)
        return None, ()

    def kernel_options(self) -> tuple[int, ...]:
        return (self.activation.code,)

    def probe_kinds(self) -> dict[str, str]:
        return {"hidden": self.activation.name}

    def equations(self, x, r_prev, carried, weights, probes=None):
        w_ih, w_hh, b_ih, b_hh = weights[:4]
        a = affine(x, w_ih, b_ih) + affine(r_prev, w_hh, b_hh)
        h = self.activation.forward(a)
        if probes is not None:
            probes["hidden"] = h
        return h, ()

    def extra_repr(self) -> str:
        return f"nonlinearity={self.activation.name!r}"


register_cell(
    "rnn",
    ElmanCell,
    layer="RNN",
    summary="Elman RNN: h = f(W_ih x + b_ih + W_hh h_prev + b_hh), tanh or relu",
    options={"nonlinearity": ("tanh", "relu")},
    torch_twin="RNN",
)
