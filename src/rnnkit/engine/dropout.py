"""Dropout with its mask drawn by the compiled engine (rnnkit.Dropout is the module).

torch's CPU dropout draws its mask element by element from one mt19937 stream: at the default
language model's size (B32 T64 H320) that is 6 ms of a 16 ms training step, more than the
recurrent layer's backward. The compiled library's dropout (engine/compiled/dropout.h) keeps
element i when a hash of (seed, i) clears the threshold: a few instructions an element, on every
core, and recomputed from the seed in backward rather than stored. The seed is one draw from
torch's generator per call, so `torch.manual_seed` fixes the masks and a checkpoint's RNG state
resumes them, as with torch's dropout; the masks themselves are other draws than torch's.

Where the compiled engine cannot serve (no compiler, a GPU tensor, an integer dtype) the call is
torch's own dropout, which is the same operation with torch's random stream; `explain()` says
which one runs and why.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["dropout", "explain_dropout"]

_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
_SEED_RANGE = 2**63 - 1


def _library():
    """The compiled library that serves dropout, or the reason there is none."""
    from ..cells import CELLS
    from .compiled import KernelUnavailableError
    from .compiled.library import library_for

    # every compiled library carries the generic ops: the first registered cell's serves
    kernels = [entry.cell.kernel for entry in CELLS.values() if entry.cell.kernel is not None]
    if not kernels:
        return None, "torch's dropout: no registered cell has a compiled kernel"
    try:
        return library_for(kernels[0]), None
    except KernelUnavailableError as error:
        return None, f"torch's dropout: the compiled engine is unavailable ({error})"


def explain_dropout(x: Tensor | None = None) -> str:
    """Which dropout a call on `x` runs, and why."""
    library, reason = _library()
    if library is None:
        return reason
    if x is not None and (x.device.type != "cpu" or x.dtype not in _DTYPES):
        return f"torch's dropout: the compiled one takes CPU {', '.join(map(str, _DTYPES))}"
    return "compiled dropout (engine/compiled/dropout.h): a hashed mask, recomputed in backward"


class _CompiledDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, p: float, library, seed: int | None = None) -> Tensor:
        x = x.contiguous()
        if seed is None:
            seed = int(torch.randint(0, _SEED_RANGE, (1,)).item())  # torch's stream: one draw
        threshold = min(round(p * 2**32), 2**32 - 1)
        scale = 1.0 / (1.0 - p)
        y = torch.empty_like(x)
        library.dropout(x.dtype, x.numel(), x.data_ptr(), y.data_ptr(), seed, threshold, scale)
        ctx.mask = (library, seed, threshold, scale)
        ctx.p = p
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        library, seed, threshold, scale = ctx.mask
        if torch.is_grad_enabled():
            # create_graph=True: the backward is the same mask again, as a node autograd sees
            return _CompiledDropout.apply(grad, ctx.p, library, seed), None, None, None
        grad = grad.contiguous()
        out = torch.empty_like(grad)
        library.dropout(grad.dtype, grad.numel(), grad.data_ptr(), out.data_ptr(), seed,
                        threshold, scale)  # fmt: skip
        return out, None, None, None


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """F.dropout(x, p, training) with the compiled mask where it serves (module docstring)."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    if x.device.type != "cpu" or x.dtype not in _DTYPES or x.numel() == 0:
        return F.dropout(x, p, True)
    library, _ = _library()
    if library is None:
        return F.dropout(x, p, True)
    return _CompiledDropout.apply(x, p, library)
