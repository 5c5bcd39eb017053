"""LSTM cell, torch.nn.LSTM's formulation and gate order (i, f, g, o), optional projection.

    [i, f, g, o] = [σ, σ, tanh, σ](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    c_t = f * c_{t-1} + i * g
    m_t = o * tanh(c_t)
    h_t = m_t                      without projection
    h_t = W_hr m_t                 with proj_size > 0 (the engine's output projection)

Parameter layout: weight_ih (4H, I) = [W_ii|W_if|W_ig|W_io], weight_hh (4H, P) where P is
proj_size or H, bias_ih (4H), bias_hh (4H), weight_hr (P, H).
Recurrent vector r = h (width P); carried state c (width H).

Backward, from the saved activated gates, c_{t-1} and tanh(c_t):

    dc   = dL/dc_t + dL/dm_t * o * (1 - tanh²(c_t))
    do   = dL/dm_t * tanh(c_t)
    di   = dc * g,  df = dc * c_{t-1},  dg = dc * i,  dL/dc_{t-1} = dc * f
    dL/da = [di, df, dg, do] * [σ', σ', tanh', σ'] (from the gate values)
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..activations import IDENTITY, SIGMOID, TANH
from .base import Cell, StepBackward, StepForward

__all__ = ["LSTMCell"]


class LSTMCell(Cell):
    num_gates = 4
    num_carried = 1

    def __init__(self, projected: bool = False) -> None:
        self.projected = projected
        # h = W_hr m: a projection without bias or nonlinearity.
        self.output_activation = IDENTITY if projected else None

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

    def step_backward(
        self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_gates_out
    ) -> StepBackward:
        act, c_prev, tanh_c = saved
        (grad_c_next,) = grad_carried
        H = c_prev.shape[1]
        i, f, g, o = act[:, :H], act[:, H : 2 * H], act[:, 2 * H : 3 * H], act[:, 3 * H :]
        # dc = dc_next + dm * o * (1 - tanh_c²)
        dc = TANH.backward(grad_m * o, tanh_c).add_(grad_c_next)
        out = grad_gates_out  # (n, 4H): first dL/d(gate value), then dL/d(pre-activation)
        torch.mul(dc, g, out=out[:, :H])  # di
        torch.mul(dc, c_prev, out=out[:, H : 2 * H])  # df
        torch.mul(dc, i, out=out[:, 2 * H : 3 * H])  # dg
        torch.mul(grad_m, tanh_c, out=out[:, 3 * H :])  # do
        # Through the activations, in place, from the gate values: σ' for i, f, o; tanh' for g.
        SIGMOID.backward(out[:, : 2 * H], act[:, : 2 * H], out=out[:, : 2 * H])
        TANH.backward(out[:, 2 * H : 3 * H], g, out=out[:, 2 * H : 3 * H])
        SIGMOID.backward(out[:, 3 * H :], o, out=out[:, 3 * H :])
        return None, (dc * f,)

    def extra_repr(self) -> str:
        return f"projected={self.projected}"
