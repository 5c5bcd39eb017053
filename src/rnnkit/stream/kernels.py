"""numba kernels for inference: one step of a whole layer stack, and a whole generation loop.

Inference only: nothing here records what a backward pass would need. The math is the cells'
(rnnkit.cells and their docstrings), written as one fused loop per layer after the layer's two
matrix products (numba's np.dot, scipy's BLAS: gemv at batch 1, gemm above):

    gi = W_ih x            (or a precomputed row for layer 0, e.g. a one-hot column)
    gh = W_hh r_prev
    Elman/Jordan: m = f(gi + gh + b)
    LSTM:         [i f g o] = [σ σ tanh σ](gi + gh + b);  c = f c + i g;  m = o tanh(c)
    GRU:          r, z = σ(gi + gh + b)[r, z];  n = tanh(gi_n + b_in + r (gh_n + b_hn));
                  m = n + z (r_prev - n)
    LayerNorm LSTM/GRU: gi, gh -> LN(gi; γ_x, β_x), LN(gh; γ_h, β_h) per row first, then the
                  LSTM/GRU step with the cells' biases (LSTM: m = o tanh(LN(c; γ_c, β_c)))
    r = g(W_out m + b_out) with an output projection (LSTM proj_size, Jordan), else r = m

The kernels read the weights where torch keeps them: `addresses[k]` holds the memory addresses
of layer k's w_ih (G, I_k), w_hh (G, R), b_ih (G), b_hh (G), w_out (R, H) and b_out (R), all
C-contiguous in the states' dtype (rnnkit.stream.weights prepares them and points absent biases at
zeros). So every change of a parameter's values, however it is made, is seen by the next call,
and one compiled signature per dtype serves every stack depth and size; `stack_step` checks
every shape it reads that memory with. The states are updated in place. b_ih and b_hh are added
where torch adds them (GRU: b_hn inside the reset product).
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..cells._layer_norm import EPS as _LAYER_NORM_EPS

# Cell kinds.
ELMAN, LSTM, GRU, LN_LSTM, LN_GRU = 0, 1, 2, 3, 4
# Activation codes; NO_PROJECTION marks a stack without an output projection.
IDENTITY, TANH, RELU, SIGMOID = 0, 1, 2, 3
NO_PROJECTION = -1
# Columns of `addresses`: the engine's six weights, then the layer-norm cells' gains and shifts
# (for W_ih x, W_hh h and the LSTM cell state); a kind reads only the columns it uses.
W_IH, W_HH, B_IH, B_HH, W_OUT, B_OUT = 0, 1, 2, 3, 4, 5
GAIN_X, SHIFT_X, GAIN_H, SHIFT_H, GAIN_C, SHIFT_C = 6, 7, 8, 9, 10, 11
NUM_ADDRESSES = 12
LN_EPS = _LAYER_NORM_EPS  # torch.nn.LayerNorm's default, as the layer-norm cells use

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@intrinsic
def _void_pointer(typingctx, address):
    """An integer memory address as a void pointer, for numba.carray."""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@njit(inline="always", **_JIT)
def _matrix(address, rows, cols, like):
    """The (rows, cols) C-contiguous array at `address`, of like's dtype (no copy)."""
    return carray(_void_pointer(address), (rows, cols), like.dtype)


@njit(inline="always", **_JIT)
def _vector(address, n, like):
    return carray(_void_pointer(address), (n,), like.dtype)


# The activations take `one`, the constant 1 in the arrays' dtype, so float32 stays float32.
# tanh goes through exp (2 σ(2x) - 1): libm's tanh is several times slower than exp, and this
# loses nothing that matters (absolute error ~2e-16 in float64, ~2e-7 in float32).
@njit(inline="always", **_JIT)
def _sigmoid(x, one):
    return one / (one + np.exp(-x))


@njit(inline="always", **_JIT)
def _tanh(x, one):
    two = one + one
    return two / (one + np.exp(-two * x)) - one


@njit(inline="always", **_JIT)
def _activate(act, x, one):
    if act == TANH:
        return _tanh(x, one)
    if act == RELU:
        return x if x > 0 else x * 0
    if act == SIGMOID:
        return _sigmoid(x, one)
    return x


def num_gates(kind: int) -> int:
    return 4 if kind in (LSTM, LN_LSTM) else 3 if kind in (GRU, LN_GRU) else 1


@njit(inline="always", **_JIT)
def _num_gates(kind):
    if kind in (LSTM, LN_LSTM):
        return 4
    if kind in (GRU, LN_GRU):
        return 3
    return 1


@njit(inline="always", **_JIT)
def _layer_norm_row(v, gain, shift, one):
    """v (F,) <- γ (v - mean) / sqrt(var + eps) + β in place (biased variance, as torch)."""
    F = v.shape[0]
    mean = v[0] * 0
    for k in range(F):
        mean += v[k]
    mean /= F
    var = v[0] * 0
    for k in range(F):
        d = v[k] - mean
        var += d * d
    rstd = one / np.sqrt(var / F + LN_EPS)
    for k in range(F):
        v[k] = gain[k] * ((v[k] - mean) * rstd) + shift[k]


@njit(inline="always", **_JIT)
def _matmul_rows(x, w, out):
    """out (B, n) = x (B, k) @ w (n, k)^T: gemv for one row, gemm for several."""
    if x.shape[0] == 1:
        np.dot(w, x[0], out[0])
    else:
        np.dot(x, w.T, out)


@njit(inline="always", **_JIT)
def _gate(gi, gh, b_ih, b_hh, row, k):
    """Pre-activation k of a row, summed as torch sums it: (W_ih x + b_ih) + (W_hh h + b_hh)."""
    return (gi[row, k] + b_ih[k]) + (gh[row, k] + b_hh[k])


@njit(**_JIT)
def _layer_step(kind, act, out_act, x, x_projected, addr, n_in, r_prev, c, gi, gh, m):
    """One layer, one step: r_prev (B, R) and c (B, H) are updated in place.

    x (B, I) is the layer's input, or (B, G) = W_ih x already formed when x_projected.
    gi, gh (B, G) and m (B, H) are scratch; m may be r_prev itself when there is no projection.
    """
    one = np.ones(1, dtype=r_prev.dtype)[0]
    B = r_prev.shape[0]
    R = r_prev.shape[1]
    H = m.shape[1]
    G = _num_gates(kind) * H
    w_hh = _matrix(addr[W_HH], G, R, r_prev)
    b_ih = _vector(addr[B_IH], G, r_prev)
    b_hh = _vector(addr[B_HH], G, r_prev)
    if x_projected:
        gi[:, :] = x
    else:
        _matmul_rows(x, _matrix(addr[W_IH], G, n_in, r_prev), gi)
    _matmul_rows(r_prev, w_hh, gh)
    layer_norm = kind in (LN_LSTM, LN_GRU)
    if layer_norm:  # LN(W_ih x) and LN(W_hh h), each row over all G pre-activations
        gain_x, shift_x = _vector(addr[GAIN_X], G, r_prev), _vector(addr[SHIFT_X], G, r_prev)
        gain_h, shift_h = _vector(addr[GAIN_H], G, r_prev), _vector(addr[SHIFT_H], G, r_prev)
        for row in range(B):
            _layer_norm_row(gi[row], gain_x, shift_x, one)
            _layer_norm_row(gh[row], gain_h, shift_h, one)

    if kind in (LSTM, LN_LSTM):
        for row in range(B):
            for j in range(H):
                i_g = _sigmoid(_gate(gi, gh, b_ih, b_hh, row, j), one)
                f_g = _sigmoid(_gate(gi, gh, b_ih, b_hh, row, H + j), one)
                g_g = _tanh(_gate(gi, gh, b_ih, b_hh, row, 2 * H + j), one)
                o_g = _sigmoid(_gate(gi, gh, b_ih, b_hh, row, 3 * H + j), one)
                c_new = f_g * c[row, j] + i_g * g_g
                c[row, j] = c_new
                if layer_norm:
                    gi[row, 3 * H + j] = o_g  # kept until LN(c) is known
                else:
                    m[row, j] = o_g * _tanh(c_new, one)
        if layer_norm:  # m = o * tanh(LN(c)); c itself stays un-normalized
            gain_c, shift_c = _vector(addr[GAIN_C], H, r_prev), _vector(addr[SHIFT_C], H, r_prev)
            for row in range(B):
                m[row, :] = c[row, :]
                _layer_norm_row(m[row], gain_c, shift_c, one)
                for j in range(H):
                    m[row, j] = gi[row, 3 * H + j] * _tanh(m[row, j], one)
    elif kind in (GRU, LN_GRU):
        for row in range(B):
            for j in range(H):
                reset = _sigmoid(_gate(gi, gh, b_ih, b_hh, row, j), one)
                update = _sigmoid(_gate(gi, gh, b_ih, b_hh, row, H + j), one)
                hidden_n = gh[row, 2 * H + j] + b_hh[2 * H + j]
                n = _tanh(gi[row, 2 * H + j] + b_ih[2 * H + j] + reset * hidden_n, one)
                m[row, j] = n + update * (r_prev[row, j] - n)
    else:
        for row in range(B):
            for j in range(H):
                m[row, j] = _activate(act, _gate(gi, gh, b_ih, b_hh, row, j), one)

    if out_act != NO_PROJECTION:
        b_out = _vector(addr[B_OUT], R, r_prev)
        _matmul_rows(m, _matrix(addr[W_OUT], R, H, r_prev), r_prev)
        for row in range(B):
            for k in range(R):
                r_prev[row, k] = _activate(out_act, r_prev[row, k] + b_out[k], one)


@njit(**_JIT)
def stack_step(kind, act, out_act, x, x_projected, addresses, input_sizes, r, c, gi, gh, m):
    """One step of the whole stack: r (L, B, R) and c (L, B, H) are updated in place.

    x (B, I) feeds layer 0 (or (B, G) = W_ih x when x_projected); layer k > 0 reads r[k - 1].
    gi, gh (B, G), m (B, H): scratch. The stack's output is r[L - 1].
    """
    L = addresses.shape[0]
    H = m.shape[1]
    G = _num_gates(kind) * H
    # The weights are raw addresses: check every shape they are read with, so a wrong call
    # raises instead of reading or writing outside the arrays.
    if gi.shape[1] != G or gh.shape[1] != G or gi.shape[0] != x.shape[0] or r.shape[0] != L:
        raise ValueError("stack_step: scratch or state shapes do not match the stack")
    if c.shape[2] != (H if kind in (LSTM, LN_LSTM) else 0) or c.shape[0] != L:
        raise ValueError("stack_step: the carried state c does not match the cell")
    if x.shape[1] != (G if x_projected else input_sizes[0]) or input_sizes.shape[0] != L:
        raise ValueError("stack_step: the input width does not match layer 0")
    if r.shape[1] != x.shape[0] or c.shape[1] != x.shape[0] or m.shape[0] != x.shape[0]:
        raise ValueError("stack_step: the batch sizes of input, states and scratch differ")
    if out_act == NO_PROJECTION and r.shape[2] != H:
        raise ValueError("stack_step: without a projection the state width must be H")
    for layer in range(L):
        inp = x if layer == 0 else r[layer - 1]
        projected = x_projected and layer == 0
        mm = m if out_act != NO_PROJECTION else r[layer]
        _layer_step(
            kind,
            act,
            out_act,
            inp,
            projected,
            addresses[layer],
            input_sizes[layer],
            r[layer],
            c[layer],
            gi,
            gh,
            mm,
        )


@njit(**_JIT)
def _sample(z, greedy, temperature, top_k, top_p, probs):
    """One token from logits z (V,) (banned entries already -inf), the way
    rnnkit.generate.sample_next defines it: softmax(z / temperature) restricted to the top_k
    (top_k <= 0: all) and then to the top_p nucleus, renormalized; argmax when greedy."""
    V = z.shape[0]
    best = 0
    for v in range(1, V):
        if z[v] > z[best]:
            best = v
    if greedy:
        return best
    zmax = z[best]
    if top_k <= 0 and top_p >= 1.0:
        total = 0.0
        for v in range(V):
            p = np.exp((z[v] - zmax) / temperature)
            probs[v] = p
            total += p
        u = np.random.random() * total
        acc = 0.0
        last = best
        for v in range(V):
            if probs[v] > 0:
                acc += probs[v]
                last = v
                if u < acc:
                    return v
        return last
    order = np.argsort(-z, kind="mergesort")  # descending, ties in index order
    k = V if top_k <= 0 or top_k > V else top_k
    total = 0.0
    for i in range(k):
        p = np.exp((z[order[i]] - zmax) / temperature)
        probs[i] = p
        total += p
    keep = k
    if top_p < 1.0:
        mass_before = 0.0
        for i in range(k):
            if mass_before >= top_p:  # the tokens ranked above already cover top_p
                keep = i
                break
            mass_before += probs[i] / total
    kept_total = 0.0
    for i in range(keep):
        kept_total += probs[i]
    u = np.random.random() * kept_total
    acc = 0.0
    last = order[0]
    for i in range(keep):
        if probs[i] > 0:
            acc += probs[i]
            last = order[i]
            if u < acc:
                return order[i]
    return last


@njit(**_JIT)
def generate_tokens(
    kind,
    act,
    out_act,
    addresses,
    input_sizes,
    hidden_size,
    r,
    c,
    table,
    table_projected,
    head_w,
    head_b,
    start_ids,
    length,
    greedy,
    temperature,
    top_k,
    top_p,
    banned,
    eos_id,
    seed,
    out,
):
    """Prime the stack with start_ids, then generate up to `length` tokens into out; returns
    how many were written (fewer when eos_id, >= 0, is drawn; it is not written).

    table (V, ·): layer 0's input per token (embedding rows, or W_ih^T rows for one-hot input
    when table_projected). head: logits = head_w (V, R) r[L-1] + head_b. banned (V,) bool:
    never generated. The draws come from numba's generator seeded with `seed`.
    """
    np.random.seed(seed)
    L = addresses.shape[0]
    G = _num_gates(kind) * hidden_size
    gi = np.empty((1, G), dtype=r.dtype)
    gh = np.empty((1, G), dtype=r.dtype)
    m = np.empty((1, hidden_size), dtype=r.dtype)
    V = head_w.shape[0]
    logits = np.empty(V, dtype=np.float64)
    probs = np.empty(V, dtype=np.float64)
    scores = np.empty(V, dtype=r.dtype)
    for t in range(start_ids.shape[0]):
        token = start_ids[t]
        stack_step(
            kind,
            act,
            out_act,
            table[token : token + 1],
            table_projected,
            addresses,
            input_sizes,
            r,
            c,
            gi,
            gh,
            m,
        )
    n = 0
    for step in range(length):
        np.dot(head_w, r[L - 1, 0], scores)
        for v in range(V):
            logits[v] = -np.inf if banned[v] else scores[v] + head_b[v]
        token = _sample(logits, greedy, temperature, top_k, top_p, probs)
        if token == eos_id:
            break
        out[n] = token
        n += 1
        if step + 1 < length:
            stack_step(
                kind,
                act,
                out_act,
                table[token : token + 1],
                table_projected,
                addresses,
                input_sizes,
                r,
                c,
                gi,
                gh,
                m,
            )
    return n
