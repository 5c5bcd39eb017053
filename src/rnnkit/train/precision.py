"""Training precision: float32, or bfloat16 matrix products with float32 weights (autocast).

bfloat16 keeps float32's exponent range, so no loss scaling is needed; the weights, their
gradients and the optimizer state stay float32, and only the matrix products (torch's fused
LSTM/GRU/RNN kernels, the output layer) take bfloat16 inputs and accumulate in float32.
On a CPU with native bfloat16 dot products (AVX512-BF16 or AMX) that makes a training step of
the default language model 1.5-2.2x faster at the same loss per step (docs/benchmarks.md);
without them bfloat16 is emulated and slower, so `auto` picks it only where it pays.

Evaluation, generation and checkpoints are always float32: bfloat16 is a way to train faster,
not a different model.
"""

from __future__ import annotations

import contextlib

import torch

from ..engine.lower_precision import cpu_has_fast_bfloat16

PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_precision(precision: str) -> str:
    """'float32' or 'bfloat16' for a requested precision ('auto' asks the CPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        return "bfloat16" if cpu_has_fast_bfloat16() else "float32"
    return precision


def autocast(precision: str):
    """The context a training forward runs in: bfloat16 autocast, or nothing for float32."""
    if resolve_precision(precision) == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
