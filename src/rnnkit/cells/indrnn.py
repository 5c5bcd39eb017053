"""IndRNN cell (Li, Li, Cook, Zhu, Gao 2018, "Independently Recurrent Neural Network"): each
unit feeds back only its own previous value, so the recurrence is elementwise.

    h_t = f(W_ih x_t + b_ih + u ⊙ h_{t-1}),   f = relu (the paper's) or tanh

No recurrent matrix: the engine runs no per-step GEMM (recurrent_weight = False), and the
recurrent weights are the vector u, the cell's own parameter `weight_hh` (H), initialized
uniform in [0, 1] as the authors' implementation does (|u| <= 1 keeps a relu IndRNN from
exploding). Parameter layout: weight_ih (H, I), bias_ih (H) (bias=True only), weight_hh (H) = u.

Backward, from the saved output h_t = m_t and r_{t-1}:

    da = dL/dh_t * f'(a)  (from h_t),   dL/dh_{t-1} (direct) = da * u,   du = Σ da * h_{t-1}
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..activations import get_activation
from .base import Cell, CellKernel, StepBackward, StepForward, affine
from .registry import register_cell

__all__ = ["IndRNNCell"]

# The compiled engine's row step. params: [u]; options[0]: f's activation code.
KERNEL = CellKernel(
    "IndRNN",
    r"""
struct IndRNN {
  template <class T> static void forward(const rnnkit::Forward<T>& s) {
    const T* __restrict u = s.params[0];
    const T* __restrict h_prev = s.r_prev;
    T* __restrict a = s.gates;
    RNNKIT_SIMD
    for (int64_t j = 0; j < s.H; ++j) a[j] += u[j] * h_prev[j];
    rnnkit::activate_into_n<T>(s.options[0], a, s.m, s.H);
  }
  template <class T> static void backward(const rnnkit::Backward<T>& s) {
    const T* __restrict u = s.params[0];
    const T* __restrict h_prev = s.r_prev;
    T* __restrict da = s.grad_gates;
    T* __restrict dh_prev = s.grad_r_prev;
    T* du = s.grad_params[0];
    rnnkit::times_derivative_into_n<T>(s.options[0], s.grad_m, s.m, da, s.H);
    RNNKIT_SIMD
    for (int64_t j = 0; j < s.H; ++j) dh_prev[j] += da[j] * u[j];
    if (du) RNNKIT_SIMD for (int64_t j = 0; j < s.H; ++j) du[j] += da[j] * h_prev[j];
  }
};
""",
)


class IndRNNCell(Cell):
    num_gates = 1
    recurrent_weight = False
    kernel = KERNEL
    engine_parameters = {"w_ih": "weight_ih", "b_ih": "bias_ih"}  # noqa: RUF012
    param_names = ("weight_hh",)

    def __init__(self, nonlinearity: str = "relu") -> None:
        self.activation = get_activation(nonlinearity, allowed=("relu", "tanh"))
        self.u: Tensor | None = None  # bound per sweep

    def init_params(self, hidden_size: int, *, device=None, dtype=None) -> tuple[Tensor, ...]:
        return (torch.rand(hidden_size, device=device, dtype=dtype),)

    def bind(self, params: tuple[Tensor, ...]) -> IndRNNCell:
        if len(params) != 1:
            raise ValueError(f"IndRNNCell takes one parameter (weight_hh); got {len(params)}")
        bound = IndRNNCell(self.activation.name)
        bound.u = params[0]
        return bound

    def kernel_options(self) -> tuple[int, ...]:
        return (self.activation.code,)

    def step(self, gates: Tensor, hidden_gates, r_prev, carried_prev, m_out) -> StepForward:
        gates.addcmul_(self.u, r_prev)  # a = W x + b + u ⊙ h_{t-1}
        h = self.activation.forward(gates, out=m_out)
        return (), (h, r_prev)

    def prepare_backward(self, saved_steps: list) -> list:
        """A list collecting each step's share of du, shared by all steps (finish_backward)."""
        shares: list[Tensor] = []
        return [(*step, shares) for step in saved_steps]

    def step_backward(
        self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_gates_out
    ) -> StepBackward:
        h, h_prev, shares = saved
        da = self.activation.backward(grad_m, h, out=grad_gates_out)
        shares.append((da * h_prev).sum(0))
        return da * self.u, ()

    def finish_backward(self, prepared, grad_gates_all, grad_hidden_all, saved_inputs):
        shares = prepared[0][-1] if prepared else []
        return (torch.stack(shares).sum(0),) if shares else (torch.zeros_like(self.u),)

    def probe_kinds(self) -> dict[str, str]:
        return {"hidden": self.activation.name}

    def equations(self, x, r_prev, carried, weights, probes=None):
        w_ih, _, b_ih = weights[:3]
        (u,) = weights[6:]
        h = self.activation.forward(affine(x, w_ih, b_ih) + u * r_prev)
        if probes is not None:
            probes["hidden"] = h
        return h, ()

    def extra_repr(self) -> str:
        return f"nonlinearity={self.activation.name!r}"


register_cell(
    "indrnn",
    IndRNNCell,
    layer="IndRNN",
    summary="IndRNN (Li et al. 2018): h = f(W x + b + u ⊙ h_prev), relu by default",
    options={"nonlinearity": ("relu", "tanh")},
)
