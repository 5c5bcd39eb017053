"""numba kernels for one sweep (one layer, one direction) of a built-in cell, forward and backward.

The math is the reference engine's (rnnkit.engine.reference and the cells' docstrings); only the
execution differs: the whole time loop runs inside one compiled function, the recurrent product
of every step is one BLAS call (numba's np.dot, scipy's BLAS) and each cell's pointwise work is
one fused loop over the step's rows, with no per-op dispatch and no temporaries.

Layout is the reference engine's packed layout: step t owns rows offsets[t] : offsets[t] + n_t of
every (N, ·) array, n_t = batch_sizes[t]; the running state holds all B rows and a step updates
its first n_t, so inactive rows keep their state (forward in time a finished sequence stops
changing; in reverse a sequence starts from its initial state at its own last step).

Cells are selected by a `kind` code and activations by `act` codes (below); the output
projection r = g(W_out m + b_out) (LSTM's proj_size, Jordan's output layer) is shared by every
kind. Arrays a kind does not use are passed with a zero-length axis.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Cell kinds.
ELMAN, LSTM, GRU = 0, 1, 2
# Activation codes (rnnkit.activations names map to these in the engine).
IDENTITY, TANH, RELU, SIGMOID = 0, 1, 2, 3

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(inline="always", **_JIT)
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@njit(inline="always", **_JIT)
def _activate(act, x):
    if act == TANH:
        return np.tanh(x)
    if act == RELU:
        return x if x > 0 else x * 0
    if act == SIGMOID:
        return _sigmoid(x)
    return x


@njit(inline="always", **_JIT)
def _derivative(act, y):
    """f'(x) written through y = f(x), as rnnkit.activations defines it."""
    if act == TANH:
        return 1 - y * y
    if act == RELU:
        return y * 0 + (1 if y > 0 else 0)
    if act == SIGMOID:
        return y * (1 - y)
    return y * 0 + 1


@njit(**_JIT)
def _project(m, w_outT, b_out, proj_act, out):
    """out = g(m @ W_out^T + b_out): the output projection of one step's rows."""
    np.dot(m, w_outT, out)
    n, R = out.shape
    has_bias = b_out.shape[0] > 0
    for i in range(n):
        for j in range(R):
            v = out[i, j] + b_out[j] if has_bias else out[i, j]
            out[i, j] = _activate(proj_act, v)


@njit(**_JIT)
def forward_sweep(
    kind,
    act,
    proj_act,
    reverse,
    batch_sizes,
    offsets,
    gates,
    b_hh,
    w_hhT,
    w_outT,
    b_out,
    r_state,
    c_state,
    outputs,
    m_all,
    r_prev_all,
    c_prev_all,
    aux_all,
    work,
):
    """Run the sweep forward.

    gates (N, G): W_ih x + biases for every step on entry (b_hh folded in unless kind is GRU);
        on exit the activated gates, saved for backward.
    b_hh (G): GRU's hidden bias (zeros without bias), kept apart because the reset gate
        multiplies W_hn h + b_hn; unused by the other kinds.
    w_hhT (R, G), w_outT (H, R), b_out (R): the recurrent weight and the output projection.
    r_state (B, R), c_state (B, H): initial states on entry, final states on exit.
    outputs (N, R): r_t. m_all (N, H): m_t (the same array as outputs without a projection).
    r_prev_all (N, R): r_{t-1} of every row. c_prev_all (N, H): LSTM's c_{t-1}.
    aux_all (N, H): LSTM's tanh(c_t), GRU's W_hn h_{t-1} + b_hn. work (B, G): scratch.
    """
    T = batch_sizes.shape[0]
    H = m_all.shape[1]
    has_projection = w_outT.shape[0] > 0
    for step in range(T):
        t = T - 1 - step if reverse else step
        n, o = batch_sizes[t], offsets[t]
        r_prev = r_state[:n]
        r_prev_all[o : o + n] = r_prev
        hidden = work[:n]
        np.dot(r_prev, w_hhT, hidden)  # W_hh r_{t-1}, one BLAS call for the step
        for i in range(n):
            row = o + i
            if kind == LSTM:
                for j in range(H):
                    gi = _sigmoid(gates[row, j] + hidden[i, j])
                    gf = _sigmoid(gates[row, H + j] + hidden[i, H + j])
                    gg = np.tanh(gates[row, 2 * H + j] + hidden[i, 2 * H + j])
                    go = _sigmoid(gates[row, 3 * H + j] + hidden[i, 3 * H + j])
                    c_prev = c_state[i, j]
                    c = gf * c_prev + gi * gg
                    tanh_c = np.tanh(c)
                    gates[row, j], gates[row, H + j] = gi, gf
                    gates[row, 2 * H + j], gates[row, 3 * H + j] = gg, go
                    c_prev_all[row, j] = c_prev
                    aux_all[row, j] = tanh_c
                    c_state[i, j] = c
                    m_all[row, j] = go * tanh_c
            elif kind == GRU:
                for j in range(H):
                    hn = hidden[i, 2 * H + j] + b_hh[2 * H + j]
                    r = _sigmoid(gates[row, j] + hidden[i, j] + b_hh[j])
                    z = _sigmoid(gates[row, H + j] + hidden[i, H + j] + b_hh[H + j])
                    nn = np.tanh(gates[row, 2 * H + j] + r * hn)
                    gates[row, j], gates[row, H + j], gates[row, 2 * H + j] = r, z, nn
                    aux_all[row, j] = hn
                    m_all[row, j] = (1 - z) * nn + z * r_prev[i, j]
            else:
                for j in range(H):
                    m_all[row, j] = _activate(act, gates[row, j] + hidden[i, j])
        if has_projection:
            _project(m_all[o : o + n], w_outT, b_out, proj_act, outputs[o : o + n])
        r_state[:n] = outputs[o : o + n]


@njit(**_JIT)
def backward_sweep(
    kind,
    act,
    proj_act,
    reverse,
    batch_sizes,
    offsets,
    grad_outputs,
    grad_r,
    grad_c,
    gates,
    w_hh,
    w_out,
    outputs,
    m_all,
    r_prev_all,
    c_prev_all,
    aux_all,
    grad_gates,
    grad_hidden,
    grad_pre,
    work_m,
    work_r,
):
    """Sweep backward through time, the reverse of forward_sweep's visit order.

    grad_r (B, R), grad_c (B, H): dL/d(final states) on entry, dL/d(initial states) on exit.
    Writes dL/dgi into grad_gates (N, G), dL/dgh into grad_hidden (GRU only; for the other
    kinds they are equal and grad_hidden is grad_gates), dL/d(pre-projection) into grad_pre
    (N, R) when there is a projection. w_hh (G, R), w_out (R, H) as the parameters hold them.
    work_m (B, H), work_r (B, R): scratch.
    """
    T = batch_sizes.shape[0]
    H = m_all.shape[1]
    R = outputs.shape[1]
    has_projection = w_out.shape[0] > 0
    for step in range(T):
        t = step if reverse else T - 1 - step
        n, o = batch_sizes[t], offsets[t]
        grad_m = work_m[:n]
        if has_projection:
            pre = grad_pre[o : o + n]
            for i in range(n):
                for j in range(R):
                    y = outputs[o + i, j]
                    pre[i, j] = (grad_outputs[o + i, j] + grad_r[i, j]) * _derivative(proj_act, y)
            np.dot(pre, w_out, grad_m)
        else:
            for i in range(n):
                for j in range(H):
                    grad_m[i, j] = grad_outputs[o + i, j] + grad_r[i, j]
        for i in range(n):
            row = o + i
            if kind == LSTM:
                for j in range(H):
                    gi, gf = gates[row, j], gates[row, H + j]
                    gg, go = gates[row, 2 * H + j], gates[row, 3 * H + j]
                    tanh_c = aux_all[row, j]
                    dm = grad_m[i, j]
                    dc = grad_c[i, j] + dm * go * (1 - tanh_c * tanh_c)
                    grad_gates[row, j] = dc * gg * gi * (1 - gi)
                    grad_gates[row, H + j] = dc * c_prev_all[row, j] * gf * (1 - gf)
                    grad_gates[row, 2 * H + j] = dc * gi * (1 - gg * gg)
                    grad_gates[row, 3 * H + j] = dm * tanh_c * go * (1 - go)
                    grad_c[i, j] = dc * gf
            elif kind == GRU:
                for j in range(H):
                    r, z, nn = gates[row, j], gates[row, H + j], gates[row, 2 * H + j]
                    dh = grad_m[i, j]
                    da_n = dh * (1 - z) * (1 - nn * nn)
                    da_r = da_n * aux_all[row, j] * r * (1 - r)
                    da_z = dh * (r_prev_all[row, j] - nn) * z * (1 - z)
                    grad_gates[row, j], grad_hidden[row, j] = da_r, da_r
                    grad_gates[row, H + j], grad_hidden[row, H + j] = da_z, da_z
                    grad_gates[row, 2 * H + j] = da_n
                    grad_hidden[row, 2 * H + j] = da_n * r
                    grad_m[i, j] = dh * z  # the direct path to h_{t-1}, added below
            else:
                for j in range(H):
                    grad_gates[row, j] = grad_m[i, j] * _derivative(act, m_all[row, j])
        new_grad_r = work_r[:n]
        np.dot(grad_hidden[o : o + n], w_hh, new_grad_r)  # through W_hh, one BLAS call
        if kind == GRU:
            for i in range(n):
                for j in range(R):
                    grad_r[i, j] = new_grad_r[i, j] + grad_m[i, j]
        else:
            grad_r[:n] = new_grad_r
