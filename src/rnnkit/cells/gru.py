"""GRU cell, torch.nn.GRU's formulation and gate order (r, z, n).

    r = σ(W_ir x + b_ir + W_hr h_{t-1} + b_hr)
    z = σ(W_iz x + b_iz + W_hz h_{t-1} + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}

The reset gate multiplies (W_hn h + b_hn), so the hidden-side pre-activations gh stay apart from
the input side gi (separate_hidden). Parameter layout: weight_ih (3H, I) = [W_ir|W_iz|W_in],
weight_hh (3H, H) = [W_hr|W_hz|W_hn], bias_ih (3H), bias_hh (3H).

Backward, from the saved r, z, n, W_hn h + b_hn and h_{t-1}:

    dz = dh * (h_{t-1} - n),   dn = dh * (1 - z),   dL/dh_{t-1} (direct) = dh * z
    da_n = dn * (1 - n²),      dr = da_n * (W_hn h + b_hn)
    dgi = [dr σ'(r), dz σ'(z), da_n],   dgh = [dr σ'(r), dz σ'(z), da_n * r]
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..activations import SIGMOID, TANH
from .base import Cell, StepBackward, StepForward

__all__ = ["GRUCell"]


class GRUCell(Cell):
    num_gates = 3
    separate_hidden = True

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

    def step_backward(
        self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_gates_out
    ) -> StepBackward:
        rz, n, hidden_n, h_prev = saved
        H = n.shape[1]
        reset, update = rz[:, :H], rz[:, H:]
        grad_rz = grad_gates_out[:, : 2 * H]
        grad_a_n = grad_gates_out[:, 2 * H :]
        grad_direct = grad_m * update  # dh * z, straight to h_prev
        TANH.backward(grad_m - grad_direct, n, out=grad_a_n)  # dn = dh * (1 - z), through tanh
        torch.mul(grad_a_n, hidden_n, out=grad_rz[:, :H])  # d reset
        torch.mul(grad_m, h_prev - n, out=grad_rz[:, H:])  # d update
        SIGMOID.backward(grad_rz, rz, out=grad_rz)
        grad_hidden_gates_out[:, : 2 * H] = grad_rz
        torch.mul(grad_a_n, reset, out=grad_hidden_gates_out[:, 2 * H :])
        return grad_direct, ()
