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

from .vecmath import sigmoid_inplace, tanh_inplace, tanh_into

# Cell kinds.
ELMAN, LSTM, GRU = 0, 1, 2
# Activation codes (rnnkit.activations names map to these in the engine).
IDENTITY, TANH, RELU, SIGMOID = 0, 1, 2, 3

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}  # numpy's: no checks, loops vectorize

# Each row function below does one cell's pointwise work for one row of one step. Loops are kept
# short and touch few arrays so LLVM vectorizes them (a loop that stores into many arrays gets
# no SIMD: the aliasing checks it would need are too many).


@njit(**_JIT)
def _activate_into(act, x, out, n, scratch):
    """out[:n] = f(x[:n]) for an activation code, tanh or relu (out a different array)."""
    if act == TANH:
        tanh_into(x, out, *scratch, n)
    elif act == RELU:
        for j in range(n):
            out[j] = x[j] if x[j] > 0 else 0.0
    else:
        for j in range(n):
            out[j] = x[j]


@njit(**_JIT)
def _activate_inplace(act, a, n, scratch):
    """a[:n] = f(a[:n]) for an activation code."""
    if act == TANH:
        tanh_inplace(a, *scratch, n)
    elif act == RELU:
        for j in range(n):
            a[j] = a[j] if a[j] > 0 else 0.0
    elif act == SIGMOID:
        sigmoid_inplace(a, *scratch, n)


@njit(**_JIT)
def _times_derivative(act, grad, y, out, n):
    """out[:n] = grad[:n] * f'(x) written through y = f(x) (rnnkit.activations' convention)."""
    if act == TANH:
        for j in range(n):
            out[j] = grad[j] * (1.0 - y[j] * y[j])
    elif act == RELU:
        for j in range(n):
            out[j] = grad[j] if y[j] > 0 else 0.0
    elif act == SIGMOID:
        for j in range(n):
            out[j] = grad[j] * y[j] * (1.0 - y[j])
    else:
        for j in range(n):
            out[j] = grad[j]


@njit(**_JIT)
def _lstm_forward_row(a, hidden, c, c_prev_out, tanh_c_out, m_out, H, scratch):
    """a: the row's 4H pre-activations [i|f|g|o] (activated in place); c: c_{t-1} in, c_t out."""
    for k in range(4 * H):
        a[k] += hidden[k]
    sigmoid_inplace(a[: 2 * H], *scratch, 2 * H)
    tanh_inplace(a[2 * H : 3 * H], *scratch, H)
    sigmoid_inplace(a[3 * H :], *scratch, H)
    for j in range(H):
        c_prev_out[j] = c[j]
    for j in range(H):
        c[j] = a[H + j] * c[j] + a[j] * a[2 * H + j]
    tanh_into(c, tanh_c_out, *scratch, H)
    for j in range(H):
        m_out[j] = a[3 * H + j] * tanh_c_out[j]


@njit(**_JIT)
def _lstm_backward_row(a, tanh_c, c_prev, dm, dc, da, H):
    """dc: dL/dc_t in, dL/dc_{t-1} out; da: the row's gradient of the 4H pre-activations."""
    for j in range(H):
        dc[j] += dm[j] * a[3 * H + j] * (1.0 - tanh_c[j] * tanh_c[j])
    for j in range(H):
        da[j] = dc[j] * a[2 * H + j] * a[j] * (1.0 - a[j])
    for j in range(H):
        da[H + j] = dc[j] * c_prev[j] * a[H + j] * (1.0 - a[H + j])
    for j in range(H):
        da[2 * H + j] = dc[j] * a[j] * (1.0 - a[2 * H + j] * a[2 * H + j])
    for j in range(H):
        da[3 * H + j] = dm[j] * tanh_c[j] * a[3 * H + j] * (1.0 - a[3 * H + j])
    for j in range(H):
        dc[j] *= a[H + j]


@njit(**_JIT)
def _gru_forward_row(a, hidden, b_hh, h_prev, hn_out, m_out, H, scratch):
    """a: the row's 3H input pre-activations [r|z|n] (activated in place); hidden: W_hh h."""
    for k in range(2 * H):
        a[k] += hidden[k] + b_hh[k]
    n = a[2 * H :]
    sigmoid_inplace(a[: 2 * H], *scratch, 2 * H)
    for j in range(H):
        hn_out[j] = hidden[2 * H + j] + b_hh[2 * H + j]
    for j in range(H):
        n[j] += a[j] * hn_out[j]
    tanh_inplace(n, *scratch, H)
    for j in range(H):
        m_out[j] = (1.0 - a[H + j]) * a[2 * H + j] + a[H + j] * h_prev[j]


@njit(**_JIT)
def _gru_backward_row(a, hn, h_prev, dh, dgi, dgh, H):
    """dh: dL/dh_t in, the direct gradient dL/dh_{t-1} = dh * z out; dgi, dgh: the gradients
    of the input and hidden pre-activations."""
    for j in range(H):
        r, z, n = a[j], a[H + j], a[2 * H + j]
        d = dh[j]
        da_n = d * (1.0 - z) * (1.0 - n * n)
        dgi[2 * H + j] = da_n
        dgh[2 * H + j] = da_n * r
        dgi[j] = da_n * hn[j] * r * (1.0 - r)
        dgi[H + j] = d * (h_prev[j] - n) * z * (1.0 - z)
    for j in range(2 * H):
        dgh[j] = dgi[j]
    for j in range(H):
        dh[j] *= a[H + j]


SMALL_BATCH = 4  # up to this many rows, products skip BLAS (its call and threading cost more)


@njit(**_JIT)
def _matmul(a, b, out):
    """out = a @ b for C-contiguous a (n, K), b (K, M). BLAS for a real batch; for a few rows
    (streaming, batch 1 and the last steps of packed sequences) an axpy loop over b's rows,
    which vectorizes along M and costs no call or thread wake-up."""
    n = a.shape[0]
    if n > SMALL_BATCH:
        np.dot(a, b, out)
        return
    K, M = b.shape
    zero = out.dtype.type(0)
    for i in range(n):
        row, x = out[i], a[i]
        for j in range(M):
            row[j] = zero
        for k in range(K):
            w, v = b[k], x[k]
            for j in range(M):
                row[j] += v * w[j]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _dot(u, v, n):
    """u[:n] . v[:n], reassociated so the sum vectorizes."""
    total = u.dtype.type(0)
    for k in range(n):
        total += u[k] * v[k]
    return total


@njit(**_JIT)
def _matmul_t(a, w, out):
    """out = a @ w^T for C-contiguous a (n, K) and w (M, K) as a layer stores its weights:
    BLAS reads w transposed in place; a few rows take dot products instead."""
    n = a.shape[0]
    if n > SMALL_BATCH:
        np.dot(a, w.T, out)
        return
    M, K = w.shape
    for i in range(n):
        x, row = a[i], out[i]
        for j in range(M):
            row[j] = _dot(w[j], x, K)


@njit(**_JIT)
def _project(m, w_out, b_out, proj_act, out, scratch):
    """out = g(m @ W_out^T + b_out): the output projection of one step's rows."""
    _matmul_t(m, w_out, out)
    n, R = out.shape
    for i in range(n):
        row = out[i]
        if b_out.shape[0] > 0:
            for j in range(R):
                row[j] += b_out[j]
        _activate_inplace(proj_act, row, R, scratch)


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
    w_hh,
    w_out,
    b_out,
    r_state,
    c_state,
    outputs,
    m_all,
    r_prev_all,
    c_prev_all,
    aux_all,
    work,
    work_e,
    work_scale,
    work_bits,
):
    """Run the sweep forward.

    gates (N, G): W_ih x + biases for every step on entry (b_hh folded in unless kind is GRU);
        on exit the activated gates, saved for backward.
    b_hh (G): GRU's hidden bias (zeros without bias), kept apart because the reset gate
        multiplies W_hn h + b_hn; unused by the other kinds.
    w_hh (G, R), w_out (R, H), b_out (R): the recurrent weight and the output projection, as
        the layer holds them.
    r_state (B, R), c_state (B, H): initial states on entry, final states on exit.
    outputs (N, R): r_t. m_all (N, H): m_t (the same array as outputs without a projection).
    r_prev_all (N, R): r_{t-1} of every row. c_prev_all (N, H): LSTM's c_{t-1}.
    aux_all (N, H): LSTM's tanh(c_t), GRU's W_hn h_{t-1} + b_hn. work (B, G): scratch.
    work_e, work_scale (max(G, R)) and work_bits (work_scale's integer view): scratch for
    rnnkit.engine.compiled.vecmath.
    """
    T = batch_sizes.shape[0]
    H = m_all.shape[1]
    G = gates.shape[1]
    has_projection = w_out.shape[0] > 0
    scratch = (work_e, work_scale, work_bits)
    for step in range(T):
        t = T - 1 - step if reverse else step
        n, o = batch_sizes[t], offsets[t]
        r_prev = r_state[:n]
        r_prev_all[o : o + n] = r_prev
        hidden = work[:n]
        _matmul_t(r_prev, w_hh, hidden)  # W_hh r_{t-1}: the step's one matrix product
        for i in range(n):
            row = o + i
            if kind == LSTM:
                _lstm_forward_row(
                    gates[row],
                    hidden[i],
                    c_state[i],
                    c_prev_all[row],
                    aux_all[row],
                    m_all[row],
                    H,
                    scratch,
                )
            elif kind == GRU:
                _gru_forward_row(
                    gates[row], hidden[i], b_hh, r_prev[i], aux_all[row], m_all[row], H, scratch
                )
            else:
                a = gates[row]
                h = hidden[i]
                for k in range(G):
                    a[k] += h[k]
                _activate_into(act, a, m_all[row], H, scratch)
        if has_projection:
            _project(m_all[o : o + n], w_out, b_out, proj_act, outputs[o : o + n], scratch)
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
                g, p, gr = grad_outputs[o + i], pre[i], grad_r[i]
                for j in range(R):
                    p[j] = g[j] + gr[j]
                _times_derivative(proj_act, p, outputs[o + i], p, R)
            _matmul(pre, w_out, grad_m)
        else:
            for i in range(n):
                g, gm, gr = grad_outputs[o + i], grad_m[i], grad_r[i]
                for j in range(H):
                    gm[j] = g[j] + gr[j]
        for i in range(n):
            row = o + i
            if kind == LSTM:
                _lstm_backward_row(
                    gates[row],
                    aux_all[row],
                    c_prev_all[row],
                    grad_m[i],
                    grad_c[i],
                    grad_gates[row],
                    H,
                )
            elif kind == GRU:
                _gru_backward_row(
                    gates[row],
                    aux_all[row],
                    r_prev_all[row],
                    grad_m[i],
                    grad_gates[row],
                    grad_hidden[row],
                    H,
                )
            else:
                _times_derivative(act, grad_m[i], m_all[row], grad_gates[row], H)
        new_grad_r = work_r[:n]
        _matmul(grad_hidden[o : o + n], w_hh, new_grad_r)  # through W_hh
        if kind == GRU:
            for i in range(n):
                gr, ng, direct = grad_r[i], new_grad_r[i], grad_m[i]
                for j in range(R):
                    gr[j] = ng[j] + direct[j]
        else:
            grad_r[:n] = new_grad_r
