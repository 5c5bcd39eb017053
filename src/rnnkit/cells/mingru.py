"""minGRU cell (Feng, Tung, Ahmed, Bengio, Hajimirsadeghi 2024, "Were RNNs All We Needed?"):
a GRU whose gate and candidate read the input only, so the recurrence is linear in h.

    z_t = σ(W_z x_t + b_z),   h̃_t = W_h x_t + b_h
    h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

No recurrent matrix (recurrent_weight = False): a step is pointwise work only. Because h_t =
a_t ⊙ h_{t-1} + b_t with a_t = 1 - z_t and b_t = z_t ⊙ h̃_t depending on the input alone, the
whole sequence can also be computed by a parallel scan over time (`linear_recurrence`,
rnnkit.engine.scan; rnnkit.MinGRU(..., scan=True)). Parameter layout: weight_ih (2H, I) =
[W_z | W_h], bias_ih (2H) = [b_z | b_h] (bias=True only).

Backward, from the saved z, h̃ and r_{t-1} = h_{t-1}:

    dz = dL/dh_t (h̃ - h_{t-1}) σ'(z),   dh̃ = dL/dh_t z,   dL/dh_{t-1} (direct) = dL/dh_t (1 - z)
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..activations import SIGMOID
from .base import Cell, CellKernel, StepBackward, StepForward, affine
from .registry import register_cell

__all__ = ["MinGRUCell"]

# The compiled engine's row step. gates: [W_z x + b_z | W_h x + b_h], left as [z | h̃].
KERNEL = CellKernel(
    "MinGRU",
    r"""
struct MinGRU {
  template <class T> static void forward(const rnnkit::Forward<T>& s) {
    const int64_t H = s.H;
    T* __restrict a = s.gates;
    const T* __restrict h_prev = s.r_prev;
    T* __restrict m = s.m;
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T z = rnnkit::sigmoid(a[j]);
      a[j] = z;
      m[j] = h_prev[j] + z * (a[H + j] - h_prev[j]);
    }
  }
  template <class T> static void backward(const rnnkit::Backward<T>& s) {
    const int64_t H = s.H;
    const T* __restrict a = s.gates;
    const T* __restrict h_prev = s.r_prev;
    const T* __restrict dh = s.grad_m;
    T* __restrict da = s.grad_gates;
    T* __restrict dh_prev = s.grad_r_prev;
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T z = a[j];
      da[j] = dh[j] * (a[H + j] - h_prev[j]) * z * (T(1) - z);
      da[H + j] = dh[j] * z;
      dh_prev[j] += dh[j] * (T(1) - z);
    }
  }
};
""",
)


class MinGRUCell(Cell):
    num_gates = 2
    recurrent_weight = False
    kernel = KERNEL
    engine_parameters = {"w_ih": "weight_ih", "b_ih": "bias_ih"}  # noqa: RUF012

    def step(self, gates: Tensor, hidden_gates, r_prev, carried_prev, m_out) -> StepForward:
        H = r_prev.shape[1]
        z = gates[:, :H].sigmoid_()
        candidate = gates[:, H:]
        torch.lerp(r_prev, candidate, z, out=m_out)  # h_prev + z (h̃ - h_prev)
        return (), (z, candidate, r_prev)

    def step_backward(
        self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_gates_out
    ) -> StepBackward:
        z, candidate, h_prev = saved
        H = z.shape[1]
        SIGMOID.backward(grad_m * (candidate - h_prev), z, out=grad_gates_out[:, :H])
        torch.mul(grad_m, z, out=grad_gates_out[:, H:])
        return grad_m * (1 - z), ()

    def linear_recurrence(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        """(a, b) of h_t = a_t ⊙ h_{t-1} + b_t from the input projection (..., 2H)."""
        gate, candidate = gates.chunk(2, dim=-1)
        z = torch.sigmoid(gate)
        return 1 - z, z * candidate

    def probe_kinds(self) -> dict[str, str]:
        return {"update": "sigmoid"}

    def equations(self, x, r_prev, carried, weights, probes=None):
        w_ih, _, b_ih = weights[:3]
        gate, candidate = affine(x, w_ih, b_ih).chunk(2, dim=-1)
        z = torch.sigmoid(gate)
        if probes is not None:
            probes["update"] = z
        return (1 - z) * r_prev + z * candidate, ()


register_cell(
    "mingru",
    MinGRUCell,
    layer="MinGRU",
    summary="minGRU (Feng et al. 2024): h = (1 - z) h_prev + z W_h x, z = sigmoid(W_z x)",
)
