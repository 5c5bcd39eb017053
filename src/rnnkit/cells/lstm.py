"""LSTM cell, torch.nn.LSTM's formulation and gate order (i, f, g, o), optional projection.

    [i, f, g, o] = [σ, σ, tanh, σ](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    c_t = f * c_{t-1} + i * g
    m_t = o * tanh(c_t)
    h_t = m_t                      without projection
    h_t = W_hr m_t                 with proj_size > 0 (the engine's output projection)

Parameter layout: weight_ih (4H, I) = [W_ii|W_if|W_ig|W_io], weight_hh (4H, P) where P is
proj_size or H, bias_ih (4H), bias_hh (4H), weight_hr (P, H).
Recurrent vector r = h (width P); carried state c (width H).

Backward, from the saved activated gates, c_{t-1} and tanh(c_t) (the factors that do not depend
on the incoming gradient are formed for all steps at once in prepare_backward):

    dc   = dL/dc_t + dL/dm_t * o * (1 - tanh²(c_t))
    do   = dL/dm_t * tanh(c_t)
    di   = dc * g,  df = dc * c_{t-1},  dg = dc * i,  dL/dc_{t-1} = dc * f
    dL/da = [di, df, dg, do] * [σ', σ', tanh', σ'] (from the gate values)
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..activations import IDENTITY, SIGMOID, TANH
from .base import Cell, CellKernel, StepBackward, StepForward, affine
from .registry import register_cell

__all__ = ["LSTM_PROBES", "LSTMCell"]

# the gates diagnostics report, by torch's names for them (i, f, g, o)
LSTM_PROBES = {"input": "sigmoid", "forget": "sigmoid", "candidate": "tanh", "output": "sigmoid"}

# The compiled engine's row step. gates: a = [i|f|g|o], activated in place and kept for
# backward; carried: c; saved: [c_{t-1} | tanh(c_t)].
KERNEL = CellKernel(
    "LSTM",
    r"""
struct LSTM {
  template <class T> static void forward(const rnnkit::Forward<T>& s) {
    const int64_t H = s.H;
    T* __restrict a = s.gates;
    T* __restrict c = s.carried;
    T* __restrict c_prev = s.saved;
    T* __restrict tanh_c = s.saved + H;
    T* __restrict m = s.m;
    RNNKIT_SIMD
    for (int64_t j = 0; j < 2 * H; ++j) a[j] = rnnkit::sigmoid(a[j]);
    RNNKIT_SIMD
    for (int64_t j = 2 * H; j < 3 * H; ++j) a[j] = rnnkit::tanh(a[j]);
    RNNKIT_SIMD
    for (int64_t j = 3 * H; j < 4 * H; ++j) a[j] = rnnkit::sigmoid(a[j]);
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      c_prev[j] = c[j];
      c[j] = a[H + j] * c[j] + a[j] * a[2 * H + j];
    }
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) tanh_c[j] = rnnkit::tanh(c[j]);
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) m[j] = a[3 * H + j] * tanh_c[j];
  }
  template <class T> static void backward(const rnnkit::Backward<T>& s) {
    const int64_t H = s.H;
    const T* __restrict a = s.gates;
    const T* __restrict saved = s.saved;  // [c_{t-1} | tanh(c_t)]
    const T* __restrict dm = s.grad_m;
    T* __restrict dc = s.grad_carried;
    T* __restrict da = s.grad_gates;
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
      const T c_prev = saved[j], tc = saved[H + j];
      const T d = dc[j] + dm[j] * o * (T(1) - tc * tc);  // dL/dc_t
      da[j] = d * g * i * (T(1) - i);
      da[H + j] = d * c_prev * f * (T(1) - f);
      da[2 * H + j] = d * i * (T(1) - g * g);
      da[3 * H + j] = dm[j] * tc * o * (T(1) - o);
      dc[j] = d * f;
    }
  }
};
""",
)


class LSTMCell(Cell):
    num_gates = 4
    num_carried = 1
    kernel = KERNEL
    engine_parameters = {**Cell.engine_parameters, "w_out": "weight_hr"}  # noqa: RUF012
    state_names = ("h_0", "c_0")
    # chrono init (rnnkit.initializers): the forget gate keeps c, the input gate writes it
    chrono_gates = ((1, 1.0), (0, -1.0))

    def __init__(self, projected: bool = False) -> None:
        self.projected = projected
        # h = W_hr m: a projection without bias or nonlinearity.
        self.output_activation = IDENTITY if projected else None

    def saved_width(self, hidden_size: int, recurrent_size: int) -> int:
        return 2 * hidden_size

    def probe_kinds(self) -> dict[str, str]:
        return dict(LSTM_PROBES)

    def equations(self, x, r_prev, carried, weights, probes=None):
        w_ih, w_hh, b_ih, b_hh = weights[:4]
        i, f, g, o = (affine(x, w_ih, b_ih) + affine(r_prev, w_hh, b_hh)).chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * carried[0] + i * g
        if probes is not None:
            probes.update(input=i, forget=f, candidate=g, output=o)
        return o * torch.tanh(c), (c,)

    def step(self, gates: Tensor, hidden_gates, r_prev, carried_prev, m_out) -> StepForward:
        (c_prev,) = carried_prev
        H = c_prev.shape[1]
        act = gates  # (n, 4H), activated in place: [i|f|g|o]
        act[:, : 2 * H].sigmoid_()
        act[:, 2 * H : 3 * H].tanh_()
        act[:, 3 * H :].sigmoid_()
        i, f, g, o = act[:, :H], act[:, H : 2 * H], act[:, 2 * H : 3 * H], act[:, 3 * H :]
        c = torch.addcmul(f * c_prev, i, g)  # f * c_prev + i * g
        tanh_c = torch.tanh(c)
        torch.mul(o, tanh_c, out=m_out)  # m = o * tanh(c)
        return (c,), (act, c_prev, tanh_c)

    def prepare_backward(self, saved_steps: list) -> list:
        """The backward factors that do not depend on the incoming gradient, for all steps at
        once (a few ops over (N, ·) instead of a dozen per step):

            K = o * tanh'(c)              so that dc = dc_next + dm * K
            P = [g σ'(i) | c_{t-1} σ'(f) | i tanh'(g)]   so that [da_i | da_f | da_g] = dc * P
            Q = tanh(c) σ'(o)             so that da_o = dm * Q
        """
        sizes = [step[0].shape[0] for step in saved_steps]
        act = torch.cat([step[0] for step in saved_steps])  # (N, 4H) [i|f|g|o]
        c_prev = torch.cat([step[1] for step in saved_steps])  # (N, H)
        tanh_c = torch.cat([step[2] for step in saved_steps])  # (N, H)
        N, H = c_prev.shape
        i, f, g, o = act[:, :H], act[:, H : 2 * H], act[:, 2 * H : 3 * H], act[:, 3 * H :]
        K = TANH.backward(o, tanh_c)
        P = act.new_empty((N, 3, H))
        SIGMOID.backward(g, i, out=P[:, 0])
        SIGMOID.backward(c_prev, f, out=P[:, 1])
        TANH.backward(i, g, out=P[:, 2])
        Q = SIGMOID.backward(tanh_c, o)
        return list(
            zip(K.split(sizes), P.split(sizes), Q.split(sizes), f.split(sizes), strict=True)
        )

    def step_backward(
        self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_gates_out
    ) -> StepBackward:
        K, P, Q, f = saved  # from prepare_backward
        (grad_c_next,) = grad_carried
        n, H = f.shape
        dc = torch.addcmul(grad_c_next, grad_m, K)  # dL/dc_t
        # [da_i | da_f | da_g] = dc * P in one broadcast multiply into the gate gradient block
        torch.mul(dc.unsqueeze(1), P, out=grad_gates_out[:, : 3 * H].view(n, 3, H))
        torch.mul(grad_m, Q, out=grad_gates_out[:, 3 * H :])  # da_o
        return None, (dc * f,)

    def extra_repr(self) -> str:
        return f"projected={self.projected}"


register_cell(
    "lstm",
    LSTMCell,
    layer="LSTM",
    summary="LSTM (torch.nn.LSTM's gates i, f, g, o)",
    torch_twin="LSTM",
)
