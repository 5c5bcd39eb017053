"""Hand-written autograd loops: the oracle the tests compare rnnkit's engines with, and the
"naive loop" the benchmarks time them against.

`equations_loop(layer, x, hx, lengths)` runs any rnnkit layer as the loop a user would write:
every layer and direction one time step at a time through the cell's own plain-torch
`equations`, the output projection and stacking in plain ops, all differentiated by autograd.
The layer-norm loops below write those two cells out once more, independently of the cells'
modules.

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

__all__ = ["equations_loop", "layer_norm_gru_loop", "layer_norm_lstm_loop"]

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


def equations_loop(layer, x: Tensor, hx=None, lengths=None, observe=None):
    """An rnnkit layer (rnnkit.Recurrent) run step by step through its cell's equations.

    x: (T, B, I) padded, time first; hx: None or the layer call's states (r (L*D, B, R), then
    the carried ones); lengths: None or (B,) per-sequence lengths (steps past a length output
    zeros and leave the state alone). Returns (output (T, B, D*R), finals as the layer call
    returns them). Dropout is not applied (compare in eval mode).

    observe(index, t, r_t, carried_t, probes), when given, sees every step as it is made: the
    sweep's index (layer * D + direction), the time step, the new recurrent vector r_t (B, R),
    which the rest of the loop uses as it is (so its .grad after a backward is dL/dr_t), the
    new carried states, and the activations the cell's equations report (`Cell.probe_kinds`;
    {} for a cell without).
    """
    cell = layer.cell
    L, D = layer.num_layers, 2 if layer.bidirectional else 1
    T, B = x.shape[0], x.shape[1]
    R, H, k = layer.recurrent_size, layer.hidden_size, cell.num_carried
    if hx is None:
        states = [x.new_zeros(L * D, B, R)] + [x.new_zeros(L * D, B, H) for _ in range(k)]
    else:
        states = list(hx) if isinstance(hx, (tuple, list)) else [hx]
    projection = cell.output_activation
    finals = [[] for _ in range(1 + k)]
    layer_input = x
    for depth in range(L):
        outputs = []
        for direction in range(D):
            index = depth * D + direction
            weights = layer._weights_for(depth, direction)
            w_out, b_out = weights[4], weights[5]
            r = states[0][index]
            carried = tuple(s[index] for s in states[1:])
            out = [None] * T
            for t, mask in _time_steps(layer_input, lengths, direction == 1):
                probes = {} if observe is not None and cell.probe_kinds() else None
                extra = {} if probes is None else {"probes": probes}
                m, new_carried = cell.equations(layer_input[t], r, carried, weights, **extra)
                new_r = m
                if projection is not None:
                    new_r = projection.forward(F.linear(m, w_out, b_out))
                if observe is not None:
                    observe(index, t, new_r, new_carried, probes or {})
                r = _keep(mask, new_r, r)
                carried = tuple(
                    _keep(mask, n, o) for n, o in zip(new_carried, carried, strict=True)
                )
                out[t] = new_r if mask is None else new_r * mask
            outputs.append(torch.stack(out))
            for collected, final in zip(finals, (r, *carried), strict=True):
                collected.append(final)
        layer_input = torch.cat(outputs, dim=-1)
    result = tuple(torch.stack(f) for f in finals)
    return layer_input, (result if len(result) > 1 else result[0])
