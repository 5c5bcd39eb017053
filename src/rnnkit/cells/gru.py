"""GRU cell, torch.nn.GRU's formulation and gate order (r, z, n).

    r = σ(W_ir x + b_ir + W_hr h_{t-1} + b_hr)
    z = σ(W_iz x + b_iz + W_hz h_{t-1} + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}

The reset gate multiplies (W_hn h + b_hn), so the hidden-side pre-activations gh stay apart from
the input side gi (separate_hidden). Parameter layout: weight_ih (3H, I) = [W_ir|W_iz|W_in],
weight_hh (3H, H) = [W_hr|W_hz|W_hn], bias_ih (3H), bias_hh (3H).

Backward, from the saved r, z, n, W_hn h + b_hn and h_{t-1} (gradient-independent factors formed
for all steps at once in prepare_backward):

    dz = dh * (h_{t-1} - n),   dn = dh * (1 - z),   dL/dh_{t-1} (direct) = dh * z
    da_n = dn * (1 - n²),      dr = da_n * (W_hn h + b_hn)
    dgi = [dr σ'(r), dz σ'(z), da_n],   dgh = [dr σ'(r), dz σ'(z), da_n * r]
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..activations import SIGMOID, TANH
from .base import Cell, CellKernel, StepBackward, StepForward, affine
from .registry import register_cell

__all__ = ["GRUCell"]

# The compiled engine's row step. gates: gi = [r|z|n] parts, left as the activated r, z, n;
# hidden: gh = W_hh h_{t-1} + b_hh; saved: gh_n = W_hn h_{t-1} + b_hn.
KERNEL = CellKernel(
    "GRU",
    r"""
struct GRU {
  template <class T> static void forward(const rnnkit::Forward<T>& s) {
    const int64_t H = s.H;
    T* __restrict a = s.gates;
    const T* __restrict gh = s.hidden;
    const T* __restrict h_prev = s.r_prev;
    T* __restrict hn = s.saved;
    T* __restrict m = s.m;
    RNNKIT_SIMD
    for (int64_t j = 0; j < 2 * H; ++j) a[j] = rnnkit::sigmoid(a[j] + gh[j]);
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      hn[j] = gh[2 * H + j];
      a[2 * H + j] = rnnkit::tanh(a[2 * H + j] + a[j] * hn[j]);
    }
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T n = a[2 * H + j];
      m[j] = n + a[H + j] * (h_prev[j] - n);
    }
  }
  template <class T> static void backward(const rnnkit::Backward<T>& s) {
    const int64_t H = s.H;
    const T* __restrict a = s.gates;
    const T* __restrict hn = s.saved;
    const T* __restrict h_prev = s.r_prev;
    const T* __restrict dh = s.grad_m;
    T* __restrict dgi = s.grad_gates;
    T* __restrict dgh = s.grad_hidden;
    T* __restrict dh_prev = s.grad_r_prev;
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T r = a[j], z = a[H + j], n = a[2 * H + j];
      const T da_n = dh[j] * (T(1) - z) * (T(1) - n * n);
      const T da_z = dh[j] * (h_prev[j] - n) * z * (T(1) - z);
      const T da_r = da_n * hn[j] * r * (T(1) - r);
      dgi[j] = da_r;
      dgi[H + j] = da_z;
      dgi[2 * H + j] = da_n;
      dgh[j] = da_r;
      dgh[H + j] = da_z;
      dgh[2 * H + j] = da_n * r;
      dh_prev[j] += dh[j] * z;
    }
  }
};
""",
)


class GRUCell(Cell):
    num_gates = 3
    # chrono init (rnnkit.initializers): h = (1 - z) n + z h_prev, so z keeps the state
    chrono_gates = ((1, 1.0),)
    separate_hidden = True
    kernel = KERNEL

    def saved_width(self, hidden_size: int, recurrent_size: int) -> int:
        return hidden_size

    def probe_kinds(self) -> dict[str, str]:
        return {"reset": "sigmoid", "update": "sigmoid", "candidate": "tanh"}

    def equations(self, x, r_prev, carried, weights, probes=None):
        w_ih, w_hh, b_ih, b_hh = weights[:4]
        xr, xz, xn = affine(x, w_ih, b_ih).chunk(3, dim=-1)
        hr, hz, hn = affine(r_prev, w_hh, b_hh).chunk(3, dim=-1)
        reset, update = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + reset * hn)
        if probes is not None:
            probes.update(reset=reset, update=update, candidate=n)
        return (1 - update) * n + update * r_prev, ()

    def step(
        self, gates: Tensor, hidden_gates: Tensor, r_prev: Tensor, carried_prev, m_out
    ) -> StepForward:
        H = r_prev.shape[1]
        # gates (gi) is this step's own: activate it in place.
        rz = gates[:, : 2 * H].add_(hidden_gates[:, : 2 * H]).sigmoid_()  # (n, 2H) [r|z]
        reset, update = rz[:, :H], rz[:, H:]
        hidden_n = hidden_gates[:, 2 * H :]  # W_hn h + b_hn
        n = gates[:, 2 * H :].addcmul_(reset, hidden_n).tanh_()
        torch.lerp(n, r_prev, update, out=m_out)  # h = n + z * (h_prev - n)
        return (), (rz, n, hidden_n, r_prev)

    def prepare_backward(self, saved_steps: list) -> list:
        """The factors that do not depend on the incoming gradient, for all steps at once:

        A = (h_{t-1} - n) σ'(z)       da_z = dh * A
        Bn = (1 - z) tanh'(n)          da_n = dh * Bn
        C = (W_hn h + b_hn) σ'(r)      da_r = da_n * C
        """
        sizes = [step[0].shape[0] for step in saved_steps]
        rz, n, hidden_n, h_prev = (torch.cat([step[k] for step in saved_steps]) for k in range(4))
        H = n.shape[1]
        reset, update = rz[:, :H], rz[:, H:]
        A = SIGMOID.backward(h_prev - n, update)
        Bn = TANH.backward(1.0 - update, n)
        C = SIGMOID.backward(hidden_n, reset)
        return list(zip(*(x.split(sizes) for x in (A, Bn, C, reset, update)), strict=True))

    def step_backward(
        self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_gates_out
    ) -> StepBackward:
        A, Bn, C, reset, update = saved  # from prepare_backward
        H = A.shape[1]
        grad_a_n = torch.mul(grad_m, Bn, out=grad_gates_out[:, 2 * H :])
        torch.mul(grad_a_n, C, out=grad_gates_out[:, :H])  # da_r
        torch.mul(grad_m, A, out=grad_gates_out[:, H : 2 * H])  # da_z
        grad_hidden_gates_out[:, : 2 * H] = grad_gates_out[:, : 2 * H]
        torch.mul(grad_a_n, reset, out=grad_hidden_gates_out[:, 2 * H :])  # r * da_n
        return grad_m * update, ()  # dh * z, straight to h_prev


register_cell(
    "gru",
    GRUCell,
    layer="GRU",
    summary="GRU (torch.nn.GRU's gates r, z, n)",
    torch_twin="GRU",
)
