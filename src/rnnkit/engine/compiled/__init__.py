"""The compiled engine: the reference engine's sweeps with the time loop in numba kernels.

Each family of cells brings its own sweep (same signature as rnnkit.engine.reference.sweep) and
a `cannot_compile(cell, dtype, device)` that returns why it cannot run a sweep, or None:

    sweep.py       Elman (tanh, relu), LSTM (with proj_size), GRU, Jordan
    layernorm.py   LayerNormLSTM, LayerNormGRU

A new cell joins by registering its pair in FAMILIES; layers and `backend="auto"` then find it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..reference import SweepSpec
from .layernorm import cannot_compile_layernorm, layernorm_compiled_sweep
from .sweep import builtin_compiled_sweep, cannot_compile_builtin

__all__ = ["FAMILIES", "cannot_compile", "compiled_sweep"]

# (cannot_compile, sweep) per family of cells, asked in order
FAMILIES = [
    (cannot_compile_builtin, builtin_compiled_sweep),
    (cannot_compile_layernorm, layernorm_compiled_sweep),
]


def _family(cell, dtype: torch.dtype, device: torch.device):
    """(sweep function or None, reason when None)."""
    reasons = []
    for cannot, run in FAMILIES:
        why_not = cannot(cell, dtype, device)
        if why_not is None:
            return run, None
        reasons.append(why_not)
    kernel_reasons = [r for r in reasons if not r.startswith("no compiled")]
    return None, (
        kernel_reasons[0] if kernel_reasons else f"no compiled kernel for {type(cell).__name__}"
    )


def cannot_compile(cell, dtype: torch.dtype, device: torch.device) -> str | None:
    """Why the compiled engine cannot run a sweep of `cell` (or None when it can)."""
    return _family(cell, dtype, device)[1]


def compiled_sweep(
    spec: SweepSpec,
    data: Tensor,
    r0: Tensor,
    carried0: tuple[Tensor, ...],
    weights: tuple[Tensor | None, ...],
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """rnnkit.engine.reference.sweep on compiled kernels; raises NotImplementedError (with the
    reason) for a cell or dtype they do not serve."""
    run, why_not = _family(spec.cell, data.dtype, data.device)
    if run is None:
        raise NotImplementedError(f"the compiled engine cannot run this sweep: {why_not}")
    return run(spec, data, r0, carried0, weights)
