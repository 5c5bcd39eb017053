"""Compiled sweeps of the layer-norm cells (rnnkit.cells.layernorm_lstm / layernorm_gru).

The same math as the reference engine with those cells, arranged as the compiled engine arranges
the built-in cells (rnnkit.engine.compiled.sweep): torch does the large ops (the input
projection, the input side's layer norm over all rows, the weight and γ_x gradients as GEMMs and
sums after the sweep), and one numba function per direction runs the time loop: each step's
recurrent product is one BLAS call and each row's layer norms, gates and cell update are a few
fused loops. The kernels accumulate dγ_h (and the LSTM's dγ_c, dβ_c; the GRU's dβ_h) as they
sweep backward, row by row.

Entry point: `layernorm_compiled_sweep(spec, data, r0, carried0, weights)` with the reference
sweep's signature and weights (w_ih, w_hh, None, None, None, None, *cell_params);
`cannot_compile_layernorm(cell, dtype, device)` says why a sweep cannot run here (or None). The
pair is registered in rnnkit.engine.compiled.FAMILIES, so backend="compiled" and "auto" find it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit
from torch import Tensor

from ...cells import LayerNormGRUCell, LayerNormLSTMCell
from ...cells._layer_norm import EPS, layer_norm_backward_from_normalized
from ..reference import SweepSpec
from .kernels import _gru_backward_row
from .threads import per_step_blas_threads
from .vecmath import scratch_for, sigmoid_inplace, tanh_inplace

__all__ = ["cannot_compile_layernorm", "layernorm_compiled_sweep"]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_DTYPES = (torch.float32, torch.float64)


def cannot_compile_layernorm(cell, dtype: torch.dtype, device: torch.device) -> str | None:
    """Why these kernels cannot run this sweep, or None when they can."""
    if type(cell) not in (LayerNormLSTMCell, LayerNormGRUCell):
        return f"no compiled layer-norm kernel for {type(cell).__name__}"
    if dtype not in _DTYPES:
        return f"compiled kernels run float32 and float64, not {dtype}"
    if device.type != "cpu":
        return f"compiled kernels run on the CPU, not {device.type}"
    return None


# --- row functions: one row of one step ---------------------------------------------------------


@njit(**_JIT)
def _normalize_row(x, x_hat, eps):
    """x_hat = (x - mean) * rstd over the row; returns rstd (biased variance, eps inside)."""
    F = x.shape[0]
    mean = 0.0
    for j in range(F):
        mean += x[j]
    mean /= F
    var = 0.0
    for j in range(F):
        d = x[j] - mean
        var += d * d
    rstd = 1.0 / math.sqrt(var / F + eps)
    for j in range(F):
        x_hat[j] = (x[j] - mean) * rstd
    return rstd


@njit(**_JIT)
def _layer_norm_backward_row(grad_y, gain, x_hat, rstd, grad_x):
    """grad_x = rstd * (g - mean(g) - x̂ mean(g x̂)), g = grad_y * γ (grad_x may be grad_y)."""
    F = x_hat.shape[0]
    sum_g = 0.0
    sum_gx = 0.0
    for j in range(F):
        g = grad_y[j] * gain[j]
        sum_g += g
        sum_gx += g * x_hat[j]
    mean_g = sum_g / F
    mean_gx = sum_gx / F
    for j in range(F):
        grad_x[j] = rstd * (grad_y[j] * gain[j] - mean_g - x_hat[j] * mean_gx)


@njit(**_JIT)
def _ln_lstm_forward_row(
    a, hidden, c, c_prev_out, h_hat, c_hat, tanh_y, m_out, g_h, g_c, b_c, eps, scratch
):
    """a: the row's 4H transformed input side (then a, then its activations, in place);
    hidden: W_hh h_{t-1} for the row; c: c_{t-1} in, c_t out. Returns (rstd_h, rstd_c).
    scratch: (e, scale, bits) for rnnkit.engine.compiled.vecmath."""
    H = c.shape[0]
    rstd_h = _normalize_row(hidden, h_hat, eps)
    for k in range(4 * H):
        a[k] += g_h[k] * h_hat[k]
    sigmoid_inplace(a[: 2 * H], *scratch, 2 * H)
    tanh_inplace(a[2 * H : 3 * H], *scratch, H)
    sigmoid_inplace(a[3 * H :], *scratch, H)
    for j in range(H):
        c_prev_out[j] = c[j]
    for j in range(H):
        c[j] = a[H + j] * c[j] + a[j] * a[2 * H + j]
    rstd_c = _normalize_row(c, c_hat, eps)
    for j in range(H):
        tanh_y[j] = g_c[j] * c_hat[j] + b_c[j]
    tanh_inplace(tanh_y, *scratch, H)
    for j in range(H):
        m_out[j] = a[3 * H + j] * tanh_y[j]
    return rstd_h, rstd_c


@njit(**_JIT)
def _ln_lstm_backward_row(
    a, tanh_y, c_prev, h_hat, c_hat, rstd_h, rstd_c, dm, dc, da, dgh, g_h, g_c, acc_h, acc_c,
    dy_c,
):  # fmt: skip
    """dc: dL/dc_t in, dL/dc_{t-1} out; da: dL/d(transformed input side), 4H; dgh: dL/d(W_hh h)
    4H. Accumulates acc_h[0] += da ĥ (dγ_h), acc_c[0] += dy_c ĉ (dγ_c), acc_c[1] += dy_c (dβ_c);
    dy_c: scratch (H)."""
    H = dc.shape[0]
    for j in range(H):
        dy_c[j] = dm[j] * a[3 * H + j] * (1.0 - tanh_y[j] * tanh_y[j])
        acc_c[0, j] += dy_c[j] * c_hat[j]
        acc_c[1, j] += dy_c[j]
    sum_g = 0.0
    sum_gx = 0.0
    for j in range(H):
        g = dy_c[j] * g_c[j]
        sum_g += g
        sum_gx += g * c_hat[j]
    mean_g, mean_gx = sum_g / H, sum_gx / H
    for j in range(H):
        dc[j] += rstd_c * (dy_c[j] * g_c[j] - mean_g - c_hat[j] * mean_gx)
    for j in range(H):
        i, f, g, o = a[j], a[H + j], a[2 * H + j], a[3 * H + j]
        d = dc[j]
        da[j] = d * g * i * (1.0 - i)
        da[H + j] = d * c_prev[j] * f * (1.0 - f)
        da[2 * H + j] = d * i * (1.0 - g * g)
        da[3 * H + j] = dm[j] * tanh_y[j] * o * (1.0 - o)
        dc[j] = d * f
    for k in range(4 * H):
        acc_h[0, k] += da[k] * h_hat[k]
    _layer_norm_backward_row(da, g_h, h_hat, rstd_h, dgh)


@njit(**_JIT)
def _ln_gru_forward_row(a, hidden, h_prev, h_hat, hn_out, m_out, g_h, shift_h, eps, scratch):
    """a: the row's 3H input side gi (activated in place to [r|z|n]); hidden: W_hh h_{t-1}.
    hn_out: gh_n, the normalized hidden n-part with its shift. Returns rstd_h."""
    H = h_prev.shape[0]
    rstd_h = _normalize_row(hidden, h_hat, eps)
    for k in range(2 * H):
        a[k] += g_h[k] * h_hat[k] + shift_h[k]
    sigmoid_inplace(a[: 2 * H], *scratch, 2 * H)
    for j in range(H):
        hn_out[j] = g_h[2 * H + j] * h_hat[2 * H + j] + shift_h[2 * H + j]
    for j in range(H):
        a[2 * H + j] += a[j] * hn_out[j]
    tanh_inplace(a[2 * H :], *scratch, H)
    for j in range(H):
        m_out[j] = (1.0 - a[H + j]) * a[2 * H + j] + a[H + j] * h_prev[j]
    return rstd_h


@njit(**_JIT)
def _ln_gru_backward_row(a, hn, h_prev, h_hat, rstd_h, dh, dgi, dgh_norm, dgh, g_h, acc):
    """dh: dL/dh_t in, the direct dL/dh_{t-1} = dh * z out; dgi: dL/dgi (3H); dgh_norm:
    scratch for dL/dgh (3H, before the layer norm); dgh: dL/d(W_hh h). acc rows: dγ_h, dβ_h."""
    H = dh.shape[0]
    _gru_backward_row(a, hn, h_prev, dh, dgi, dgh_norm, H)  # the GRU step, on normalized gh
    for k in range(3 * H):
        acc[0, k] += dgh_norm[k] * h_hat[k]
        acc[1, k] += dgh_norm[k]
    _layer_norm_backward_row(dgh_norm, g_h, h_hat, rstd_h, dgh)


# --- sweeps ---------------------------------------------------------------------------------------


@njit(**_JIT)
def _forward_sweep(
    is_lstm, reverse, sizes, offsets, gates, w_hhT, r_state, c_state, outputs, r_prev_all,
    c_prev_all, h_hat_all, rstd_h_all, c_hat_all, rstd_c_all, aux_all, g_h, shift_h, g_c, b_c,
    work, eps, work_e, work_scale, work_bits,
):  # fmt: skip
    """gates (N, G): the transformed input side on entry, the activated gates on exit.
    aux_all (N, H): LSTM tanh(LN(c_t)), GRU gh_n. Other arrays as their names say; work (B, G)
    and work_e, work_scale, work_bits (G) are scratch."""
    T = sizes.shape[0]
    scratch = (work_e, work_scale, work_bits)
    for step in range(T):
        t = T - 1 - step if reverse else step
        n, o = sizes[t], offsets[t]
        r_prev = r_state[:n]
        r_prev_all[o : o + n] = r_prev
        hidden = work[:n]
        np.dot(r_prev, w_hhT, hidden)  # W_hh r_{t-1}, one BLAS call for the step
        for i in range(n):
            row = o + i
            if is_lstm:
                rh, rc = _ln_lstm_forward_row(
                    gates[row], hidden[i], c_state[i], c_prev_all[row], h_hat_all[row],
                    c_hat_all[row], aux_all[row], outputs[row], g_h, g_c, b_c, eps, scratch,
                )  # fmt: skip
                rstd_h_all[row] = rh
                rstd_c_all[row] = rc
            else:
                rstd_h_all[row] = _ln_gru_forward_row(
                    gates[row], hidden[i], r_prev[i], h_hat_all[row], aux_all[row],
                    outputs[row], g_h, shift_h, eps, scratch,
                )  # fmt: skip
        r_state[:n] = outputs[o : o + n]


@njit(**_JIT)
def _backward_sweep(
    is_lstm, reverse, sizes, offsets, grad_outputs, grad_r, grad_c, gates, w_hh, r_prev_all,
    c_prev_all, h_hat_all, rstd_h_all, c_hat_all, rstd_c_all, aux_all, grad_gates, grad_hidden,
    g_h, g_c, acc_h, acc_c, work_m, work_r, work_g,
):  # fmt: skip
    """grad_r (B, H), grad_c (B, H): dL/d(final states) on entry, dL/d(initial) on exit.
    Writes dL/d(transformed gi) into grad_gates and dL/d(W_hh h) into grad_hidden (N, G);
    accumulates acc_h (2, G): dγ_h and (GRU) dβ_h, acc_c (2, H): the LSTM's dγ_c, dβ_c."""
    T = sizes.shape[0]
    H = grad_r.shape[1]
    for step in range(T):
        t = step if reverse else T - 1 - step
        n, o = sizes[t], offsets[t]
        grad_m = work_m[:n]
        for i in range(n):
            for j in range(H):
                grad_m[i, j] = grad_outputs[o + i, j] + grad_r[i, j]
        for i in range(n):
            row = o + i
            if is_lstm:
                _ln_lstm_backward_row(
                    gates[row], aux_all[row], c_prev_all[row], h_hat_all[row], c_hat_all[row],
                    rstd_h_all[row], rstd_c_all[row], grad_m[i], grad_c[i], grad_gates[row],
                    grad_hidden[row], g_h, g_c, acc_h, acc_c, work_g[:H],
                )  # fmt: skip
            else:
                _ln_gru_backward_row(
                    gates[row], aux_all[row], r_prev_all[row], h_hat_all[row], rstd_h_all[row],
                    grad_m[i], grad_gates[row], work_g, grad_hidden[row], g_h, acc_h,
                )  # fmt: skip
        new_grad_r = work_r[:n]
        np.dot(grad_hidden[o : o + n], w_hh, new_grad_r)  # through W_hh, one BLAS call
        if is_lstm:
            grad_r[:n] = new_grad_r
        else:
            for i in range(n):
                for j in range(H):
                    grad_r[i, j] = new_grad_r[i, j] + grad_m[i, j]  # + dh * z, direct


# --- the autograd Function ---------------------------------------------------------------------


def _np(tensor: Tensor) -> np.ndarray:
    return tensor.detach().contiguous().numpy()


def _packed_index(batch_sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.asarray(batch_sizes, dtype=np.int64)
    offsets = np.zeros_like(sizes)
    np.cumsum(sizes[:-1], out=offsets[1:])
    return sizes, offsets


class _LayerNormSweep(torch.autograd.Function):
    """Forward: (spec, data, r0, *carried0, w_ih, w_hh, None, None, None, None, *cell_params)
    -> (outputs (N, H), r_final (B, H), *carried_final), as reference._Sweep."""

    @staticmethod
    def forward(ctx, spec: SweepSpec, data, r0, *rest):
        k = spec.cell.num_carried
        carried0, (w_ih, w_hh) = rest[:k], rest[k : k + 2]
        params = rest[k + 6 :]
        cell = spec.cell.bind(params)
        is_lstm = isinstance(cell, LayerNormLSTMCell)
        gates = data @ w_ih.t()  # (N, G)
        x_hat, x_rstd = cell.prepare_inputs(gates)  # the input side's layer norm, in torch
        N, B, H, G = data.shape[0], r0.shape[0], r0.shape[1], gates.shape[1]
        new = data.new_empty
        outputs, r_prev_all, aux_all = new((N, H)), new((N, H)), new((N, H))
        h_hat_all, rstd_h_all = new((N, G)), new((N,))
        c_prev_all, c_hat_all, rstd_c_all = (
            (new((N, H)), new((N, H)), new((N,))) if is_lstm else (new((0, H)),) * 2 + (new(0),)
        )
        dtype = gates.numpy().dtype
        r_state = r0.detach().clone(memory_format=torch.contiguous_format)
        c_state = carried0[0].detach().clone() if k else new((B, 0))
        gain_h = cell.param("ln_hh_weight")
        shift_h = gain_h if is_lstm else cell._shift("hh")  # the LSTM folded its shift into gi
        gain_c = cell.param("ln_cell_weight") if is_lstm else gain_h
        shift_c = cell.param("ln_cell_bias") if is_lstm else gain_h
        with per_step_blas_threads():
            _forward_sweep(
            is_lstm, spec.reverse, *_packed_index(spec.batch_sizes), gates.numpy(),
            _np(w_hh.t()), r_state.numpy(), c_state.numpy(), outputs.numpy(), r_prev_all.numpy(),
            c_prev_all.numpy(), h_hat_all.numpy(), rstd_h_all.numpy(), c_hat_all.numpy(),
            rstd_c_all.numpy(), aux_all.numpy(), _np(gain_h), _np(shift_h), _np(gain_c),
            _np(shift_c), np.empty((B, G), dtype=dtype), EPS, np.empty(G, dtype=dtype),
            *scratch_for(G, dtype),
        )  # fmt: skip
        ctx.spec = spec
        ctx.save_for_backward(
            data, gates, r_prev_all, c_prev_all, h_hat_all, rstd_h_all, c_hat_all, rstd_c_all,
            aux_all, x_hat, x_rstd, w_ih, w_hh, *params,
        )  # fmt: skip
        return (outputs, r_state, *((c_state,) if k else ()))

    @staticmethod
    def backward(ctx, grad_outputs, grad_r_final, *grad_carried_final):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "rnnkit's compiled engine does not support double backward "
                "(create_graph=True through a recurrent layer)"
            )
        spec: SweepSpec = ctx.spec
        (
            data, gates, r_prev_all, c_prev_all, h_hat_all, rstd_h_all, c_hat_all, rstd_c_all,
            aux_all, x_hat, x_rstd, w_ih, w_hh, *params,
        ) = ctx.saved_tensors  # fmt: skip
        cell = spec.cell.bind(tuple(params))
        is_lstm = isinstance(cell, LayerNormLSTMCell)
        k = spec.cell.num_carried
        N, G = gates.shape
        B, H = spec.batch_sizes[0], r_prev_all.shape[1]
        if grad_outputs is None:
            grad_outputs = data.new_zeros((N, H))
        grad_outputs = grad_outputs.contiguous()
        grad_r = (
            data.new_zeros((B, H))
            if grad_r_final is None
            else grad_r_final.clone(memory_format=torch.contiguous_format)
        )
        grad_c_final = grad_carried_final[0] if k else None
        grad_c = (
            grad_c_final.clone(memory_format=torch.contiguous_format)
            if grad_c_final is not None
            else data.new_zeros((B, H if k else 0))
        )
        grad_gates, grad_hidden = data.new_empty((N, G)), data.new_empty((N, G))
        acc_h, acc_c = data.new_zeros((2, G)), data.new_zeros((2, H))
        dtype = gates.numpy().dtype
        gain_h = cell.param("ln_hh_weight")
        gain_c = cell.param("ln_cell_weight") if is_lstm else gain_h
        with per_step_blas_threads():
            _backward_sweep(
            is_lstm, spec.reverse, *_packed_index(spec.batch_sizes), grad_outputs.numpy(),
            grad_r.numpy(), grad_c.numpy(), gates.numpy(), _np(w_hh), r_prev_all.numpy(),
            c_prev_all.numpy(), h_hat_all.numpy(), rstd_h_all.numpy(), c_hat_all.numpy(),
            rstd_c_all.numpy(), aux_all.numpy(), grad_gates.numpy(), grad_hidden.numpy(),
            _np(gain_h), _np(gain_c), acc_h.numpy(), acc_c.numpy(),
            np.empty((B, H), dtype=dtype), np.empty((B, H), dtype=dtype), np.empty(G, dtype=dtype),
        )  # fmt: skip

        # The cell's own parameters, then dGI back through the input side's layer norm.
        grad_ih_shift = grad_gates.sum(0)
        grads = {
            "ln_ih_weight": (grad_gates * x_hat).sum(0),
            "ln_ih_bias": grad_ih_shift,
            "ln_hh_weight": acc_h[0],
        }
        if is_lstm:
            grads.update(
                bias=grad_ih_shift.clone(),
                ln_hh_bias=grad_ih_shift.clone(),
                ln_cell_weight=acc_c[0],
                ln_cell_bias=acc_c[1],
            )
        else:
            grads.update(
                bias_ih=grad_ih_shift.clone(), ln_hh_bias=acc_h[1], bias_hh=acc_h[1].clone()
            )
        layer_norm_backward_from_normalized(
            grad_gates, cell.param("ln_ih_weight"), x_hat, x_rstd, out=grad_gates
        )

        needs = ctx.needs_input_grad  # (spec, data, r0, *carried0, w_ih, w_hh, ...)
        need_w = needs[3 + k :]
        return (
            None,
            grad_gates @ w_ih if needs[1] else None,
            grad_r,
            *((grad_c,) if k else ()),
            grad_gates.t() @ data if need_w[0] else None,
            grad_hidden.t() @ r_prev_all if need_w[1] else None,
            None,
            None,
            None,
            None,
            *(grads[name] for name in cell.param_names),
        )


def layernorm_compiled_sweep(
    spec: SweepSpec,
    data: Tensor,
    r0: Tensor,
    carried0: tuple[Tensor, ...],
    weights: tuple[Tensor | None, ...],
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """rnnkit.engine.reference.sweep for the layer-norm cells, on compiled kernels."""
    why_not = cannot_compile_layernorm(spec.cell, data.dtype, data.device)
    if why_not is not None:
        raise NotImplementedError(f"the compiled engine cannot run this sweep: {why_not}")
    names = spec.cell.param_names
    if len(weights) != 6 + len(names) or any(w is not None for w in weights[2:6]):
        own = "".join(f", {name}" for name in names)
        raise ValueError(
            f"weights must be (w_ih, w_hh, None, None, None, None{own}) for "
            f"{type(spec.cell).__name__}; got {len(weights)} entries"
        )
    data = data.contiguous()
    r0 = r0.contiguous()
    carried0 = tuple(c.contiguous() for c in carried0)
    outputs, r_final, *carried_final = _LayerNormSweep.apply(spec, data, r0, *carried0, *weights)
    return outputs, r_final, tuple(carried_final)
