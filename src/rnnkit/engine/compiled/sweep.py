"""The compiled engine: the reference engine's sweep with the time loop in numba kernels.

Same contract as rnnkit.engine.reference.sweep (packed layout, one autograd.Function per layer
and direction, weights (w_ih, w_hh, b_ih, b_hh, w_out, b_out)); what changes is where the work
runs. Around the kernels torch does what it is best at: the input projection of all steps is one
GEMM before the loop and every weight gradient is one GEMM after the backward sweep. Inside, the
loop over time, each step's recurrent product and the cell's pointwise math run in
rnnkit.engine.compiled.kernels without returning to Python.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...cells import Cell, ElmanCell, GRUCell, JordanCell, LSTMCell
from ..gradients import SweepGrads, input_and_weight_grads
from ..reference import SweepSpec
from . import kernels
from .threads import per_step_blas_threads
from .vecmath import scratch_for

__all__ = ["builtin_compiled_sweep", "cannot_compile_builtin"]

_ACT_CODES = {
    "identity": kernels.IDENTITY,
    "tanh": kernels.TANH,
    "relu": kernels.RELU,
    "sigmoid": kernels.SIGMOID,
}
_DTYPES = (torch.float32, torch.float64)


def _kernel_codes(cell: Cell) -> tuple[int, int, int]:
    """(kind, activation, projection activation) of a built-in cell."""
    projection = cell.output_activation
    proj_act = _ACT_CODES[projection.name] if projection is not None else kernels.IDENTITY
    kind = type(cell)
    if kind is LSTMCell:
        return kernels.LSTM, kernels.IDENTITY, proj_act
    if kind is GRUCell:
        return kernels.GRU, kernels.IDENTITY, proj_act
    return kernels.ELMAN, _ACT_CODES[cell.activation.name], proj_act


def cannot_compile_builtin(cell: Cell, dtype: torch.dtype, device: torch.device) -> str | None:
    """Why these kernels cannot run this sweep, or None when they can."""
    if type(cell) not in (ElmanCell, JordanCell, LSTMCell, GRUCell):
        return f"no compiled kernel for {type(cell).__name__}"
    if dtype not in _DTYPES:
        return f"compiled kernels run float32 and float64, not {dtype}"
    if device.type != "cpu":
        return f"compiled kernels run on the CPU, not {device.type}"
    return None


def _np(tensor: Tensor | None, empty_shape: tuple[int, ...], dtype) -> np.ndarray:
    """A numpy view of a tensor (no copy), or an empty array standing for an absent one."""
    if tensor is None:
        return np.empty(empty_shape, dtype=dtype)
    return tensor.detach().contiguous().numpy()


def _numpy_dtype(like: Tensor) -> type:
    return np.float64 if like.dtype == torch.float64 else np.float32


def _gru_hidden_bias(b_hh: Tensor | None, G: int, dtype) -> np.ndarray:
    """GRU's b_hh, zeros without bias (the kernel always adds it)."""
    return np.zeros(G, dtype) if b_hh is None else b_hh.detach().contiguous().numpy()


@functools.lru_cache(maxsize=256)
def _packed_index(batch_sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(sizes, offsets) of the packed layout; cached (callers only read them)."""
    sizes = np.asarray(batch_sizes, dtype=np.int64)
    offsets = np.zeros_like(sizes)
    np.cumsum(sizes[:-1], out=offsets[1:])
    return sizes, offsets


@dataclass
class _Forward:
    """What the forward sweep produced: the results and, as numpy arrays, what backward reads."""

    outputs: Tensor
    r_final: Tensor
    c_final: Tensor | None
    outputs_array: np.ndarray  # the memory of `outputs`, for backward (see _CompiledSweep)
    gates: np.ndarray
    m_all: np.ndarray
    r_prev_all: np.ndarray
    c_prev_all: np.ndarray
    aux_all: np.ndarray


def _forward(spec: SweepSpec, data: Tensor, r0: Tensor, carried0, weights) -> _Forward:
    """Run the forward kernel (no autograd). Arrays are numpy buffers wrapped as tensors only
    where torch needs them: the call's per-array cost is what small calls pay."""
    cell = spec.cell
    w_ih, w_hh, b_ih, b_hh, w_out, b_out = weights
    kind, act, proj_act = _kernel_codes(cell)
    separate = cell.separate_hidden
    dtype = _numpy_dtype(data)
    with torch.no_grad():
        input_bias = b_ih
        if not separate and b_hh is not None:
            input_bias = b_hh if b_ih is None else b_ih + b_hh
        gates = data @ w_ih.t() if input_bias is None else torch.addmm(input_bias, data, w_ih.t())
    N, B, R, G = data.shape[0], r0.shape[0], r0.shape[1], w_ih.shape[0]
    H = w_out.shape[1] if w_out is not None else R
    outputs = np.empty((N, R), dtype)
    m_all = np.empty((N, H), dtype) if w_out is not None else outputs
    r_state = r0.detach().numpy().copy()
    c_state = carried0[0].detach().numpy().copy() if carried0 else np.empty((B, 0), dtype)
    r_prev_all = np.empty((N, R), dtype)
    c_prev_all = np.empty((N, H if kind == kernels.LSTM else 0), dtype)
    aux_all = np.empty((N, H if kind != kernels.ELMAN else 0), dtype)
    width = max(G, R)
    with per_step_blas_threads():
        kernels.forward_sweep(
            kind,
            act,
            proj_act,
            spec.reverse,
            *_packed_index(spec.batch_sizes),
            gates.numpy(),
            _gru_hidden_bias(b_hh, G, dtype) if separate else np.zeros(0, dtype),
            _np(w_hh, (), dtype),
            _np(w_out, (0, H), dtype),
            _np(b_out, (0,), dtype),
            r_state,
            c_state,
            outputs,
            m_all,
            r_prev_all,
            c_prev_all,
            aux_all,
            np.empty((B, G), dtype),
            np.empty(width, dtype),
            *scratch_for(width, dtype),
        )
    c_final = torch.from_numpy(c_state) if carried0 else None
    return _Forward(
        torch.from_numpy(outputs),
        torch.from_numpy(r_state),
        c_final,
        outputs,
        gates.numpy(),
        m_all,
        r_prev_all,
        c_prev_all,
        aux_all,
    )


class _CompiledSweep(torch.autograd.Function):
    """Forward: (spec, data, r0, *carried0, w_ih, w_hh, b_ih, b_hh, w_out, b_out) ->
    (outputs (N, R), r_final (B, R), *carried_final), as reference._Sweep."""

    @staticmethod
    def forward(ctx, spec: SweepSpec, data, r0, *rest):
        k = spec.cell.num_carried
        result = _forward(spec, data, r0, rest[:k], rest[k:])
        ctx.spec = spec
        ctx.codes = _kernel_codes(spec.cell)
        # ctx must not hold the returned tensors: they hold this node, which holds ctx, and the
        # cycle would keep every step's buffers alive until the garbage collector runs (it
        # counts objects, not bytes: a training loop grew by gigabytes). Arrays only.
        ctx.saved = dataclasses.replace(result, outputs=None, r_final=None, c_final=None)
        # Inputs only: the internals live on ctx.saved (nothing outside can modify them).
        ctx.save_for_backward(data, *rest[k:])
        finals = (result.c_final,) if k else ()
        return (result.outputs, result.r_final, *finals)

    @staticmethod
    def backward(ctx, grad_outputs, grad_r_final, *grad_carried_final):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "rnnkit's compiled engine does not support double backward "
                "(create_graph=True through a recurrent layer); use backend='native' for "
                "second derivatives of RNN, LSTM and GRU"
            )
        spec: SweepSpec = ctx.spec
        kind, act, proj_act = ctx.codes
        data, *weights = ctx.saved_tensors
        w_ih, w_hh, _, _, w_out, _ = weights
        saved: _Forward = ctx.saved
        outputs = torch.from_numpy(saved.outputs_array)
        separate = spec.cell.separate_hidden
        N, R, H, G = outputs.shape[0], outputs.shape[1], saved.m_all.shape[1], w_ih.shape[0]
        B = spec.batch_sizes[0]
        dtype = _numpy_dtype(data)

        grad_outputs = (
            torch.zeros_like(outputs) if grad_outputs is None else grad_outputs.contiguous()
        )
        grad_r = (
            torch.zeros((B, R), dtype=data.dtype)
            if grad_r_final is None
            else grad_r_final.clone(memory_format=torch.contiguous_format)
        )
        k = spec.cell.num_carried
        grad_c_final = grad_carried_final[0] if k else None
        if k and grad_c_final is not None:
            grad_c = grad_c_final.clone(memory_format=torch.contiguous_format)
        else:
            grad_c = data.new_zeros((B, H if k else 0))
        grad_gates = data.new_empty((N, G))
        grad_hidden = data.new_empty((N, G)) if separate else grad_gates
        grad_pre = data.new_empty((N, R)) if w_out is not None else None

        with per_step_blas_threads():
            kernels.backward_sweep(
                kind,
                act,
                proj_act,
                spec.reverse,
                *_packed_index(spec.batch_sizes),
                grad_outputs.numpy(),
                grad_r.numpy(),
                grad_c.numpy(),
                saved.gates,
                _np(w_hh, (), dtype),
                _np(w_out, (0, H), dtype),
                outputs.numpy(),
                saved.m_all,
                saved.r_prev_all,
                saved.c_prev_all,
                saved.aux_all,
                grad_gates.numpy(),
                grad_hidden.numpy(),
                (grad_pre if grad_pre is not None else data.new_empty((N, 0))).numpy(),
                np.empty((B, H), dtype=dtype),
                np.empty((B, R), dtype=dtype),
            )

        # Input and weight gradients as single GEMMs over all steps.
        needs = ctx.needs_input_grad  # (spec, data, r0, *carried0, w_ih, w_hh, b_ih, ...)
        m_all = torch.from_numpy(saved.m_all)
        grad_data, *weight_grads = input_and_weight_grads(
            needs[1],
            needs[3 + k :],
            data,
            weights,
            SweepGrads(grad_gates, grad_hidden, separate, grad_pre, m_all),
            lambda: grad_hidden.t() @ torch.from_numpy(saved.r_prev_all),
        )
        return (
            None,
            grad_data,
            grad_r,
            *((grad_c,) if k else ()),
            *weight_grads,
        )


def builtin_compiled_sweep(
    spec: SweepSpec,
    data: Tensor,
    r0: Tensor,
    carried0: tuple[Tensor, ...],
    weights: tuple[Tensor | None, ...],
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """rnnkit.engine.reference.sweep on these kernels (a built-in cell: see
    cannot_compile_builtin)."""
    data = data.contiguous()
    r0 = r0.contiguous()
    carried0 = tuple(c.contiguous() for c in carried0)
    if torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (data, r0, *carried0, *weights)
    ):
        outputs, r_final, *carried_final = _CompiledSweep.apply(spec, data, r0, *carried0, *weights)
        return outputs, r_final, tuple(carried_final)
    # Nothing to differentiate: skip autograd's bookkeeping (it dominates calls of one step).
    result = _forward(spec, data, r0, carried0, weights)
    return result.outputs, result.r_final, (result.c_final,) if carried0 else ()
