"""Hand-written autograd loops for the layer-norm cells: the oracle the tests compare rnnkit's
engine with, and the "naive loop" the benchmarks time it against.

Each function runs one layer in one direction over a padded batch, one time step at a time, in
plain torch ops (F.layer_norm, F.linear, torch.sigmoid, ...) that autograd differentiates; the
equations are those in rnnkit.cells.layernorm_lstm and rnnkit.cells.layernorm_gru, written
independently of them. `params` maps the cell's parameter names (weight_ih, weight_hh and the
names in the cell's `param_names`) to tensors; absent plain biases are simply missing.

Shapes: x (T, B, I); h0, c0 (B, H); outputs (T, B, H). `lengths` (B,) lets each sequence stop
at its own length (its state is then frozen, as with a PackedSequence); with `reverse` each
sequence runs from its own last step back to its first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["layer_norm_gru_loop", "layer_norm_lstm_loop"]

EPS = 1e-5


def _ln(v: Tensor, params: dict, name: str) -> Tensor:
    width = v.shape[-1]
    return F.layer_norm(v, (width,), params[f"{name}_weight"], params[f"{name}_bias"], EPS)


def _time_steps(x: Tensor, lengths, reverse: bool):
    """(t, mask (B, 1) of rows active at step t, or None when all are) in visit order."""
    T, B = x.shape[0], x.shape[1]
    for t in reversed(range(T)) if reverse else range(T):
        if lengths is None:
            yield t, None
        else:
            yield t, (torch.as_tensor(lengths) > t).view(B, 1).to(x.device)


def _keep(mask, new: Tensor, old: Tensor) -> Tensor:
    return new if mask is None else torch.where(mask, new, old)


def layer_norm_lstm_loop(
    x: Tensor, h0: Tensor, c0: Tensor, params: dict, *, lengths=None, reverse: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """LN-LSTM over x: returns (outputs (T, B, H), h_T, c_T); padded steps output zeros."""
    h, c, outputs = h0, c0, [None] * x.shape[0]
    for t, mask in _time_steps(x, lengths, reverse):
        a = _ln(F.linear(x[t], params["weight_ih"]), params, "ln_ih") + _ln(
            F.linear(h, params["weight_hh"]), params, "ln_hh"
        )
        if "bias" in params:
            a = a + params["bias"]
        i, f, g, o = a.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = f * c + i * g
        h_new = o * torch.tanh(_ln(c_new, params, "ln_cell"))
        h, c = _keep(mask, h_new, h), _keep(mask, c_new, c)
        outputs[t] = h_new if mask is None else h_new * mask
    return torch.stack(outputs), h, c


def layer_norm_gru_loop(
    x: Tensor, h0: Tensor, params: dict, *, lengths=None, reverse: bool = False
) -> tuple[Tensor, Tensor]:
    """LN-GRU over x: returns (outputs (T, B, H), h_T); padded steps output zeros."""
    h, outputs = h0, [None] * x.shape[0]
    for t, mask in _time_steps(x, lengths, reverse):
        gi = _ln(F.linear(x[t], params["weight_ih"]), params, "ln_ih")
        gh = _ln(F.linear(h, params["weight_hh"]), params, "ln_hh")
        if "bias_ih" in params:
            gi, gh = gi + params["bias_ih"], gh + params["bias_hh"]
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h_new = (1 - z) * n + z * h
        h = _keep(mask, h_new, h)
        outputs[t] = h_new if mask is None else h_new * mask
    return torch.stack(outputs), h
