"""Mixed precision in rnnkit's engines: each sweep's input projection in bfloat16 under autocast.

A sweep has two kinds of matrix product: the input projection X W_ih^T, one GEMM over every step at
once (N x I x G), and the recurrent product of each step (B x R x G), small and sequential. Under
CPU autocast to bfloat16 the first runs as torch's bfloat16 GEMM (oneDNN, float32 accumulation;
forward and backward 1.5-2.1x faster than float32 on this project's AVX512-BF16 machine, N
1280-2240, I 64-512, G 512-2048), and the sweep takes its result, rounded to bfloat16 and widened
to the weights' float32, as given gates (`w_ih` None: rnnkit.engine.reference and .compiled then
skip their own projection). The recurrence, the cell's row step and every state stay float32 in the
engines' own kernels; dX and dW_ih are autograd's, through the same bfloat16 GEMM. Where the CPU
would emulate bfloat16 (slower than float32), with another autocast dtype or float64 weights, the
engines keep the weights' dtype and `explain()` says so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "LOWER_FROM_FEATURES",
    "cpu_has_fast_bfloat16",
    "lowering",
    "projected_sweep",
]

# The narrowest input whose projection is lowered. Measured on the 2-core AVX512-BF16 EPYC (one
# training step, forward and backward, B 32, T 50, two cells at H 128 and 320; docs/engine.md):
# 64 input features 1.00-1.04x (the casts cost what the GEMM saves), 128: 1.03-1.14x, 256:
# 1.10-1.17x, 512: 1.32-1.45x. Below it a sweep keeps float32 throughout.
LOWER_FROM_FEATURES = 128


@functools.cache
def cpu_has_fast_bfloat16() -> bool:
    """True when this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    except RuntimeError:  # a torch build without the CPU capability probes
        return False


def lowering(weight_dtype: torch.dtype, device: torch.device) -> tuple[torch.dtype | None, str]:
    """(the dtype a sweep's input projection multiplies in under the current autocast, or None
    for the weights' own; what the call computes in, and why, for `explain()`)."""
    lower = torch.get_autocast_dtype("cpu")
    if device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        reason = "autocast is off on the CPU"
    elif weight_dtype != torch.float32:
        reason = f"autocast lowers float32 products, and these weights are {weight_dtype}"
    elif lower != torch.bfloat16:
        reason = f"rnnkit's engines lower their products to bfloat16 only, not {lower}"
    elif not cpu_has_fast_bfloat16():
        reason = "this CPU emulates bfloat16 products (no AVX512-BF16 or AMX): slower than float32"
    else:
        return lower, (
            f"under autocast the input projections of {LOWER_FROM_FEATURES} or more features "
            f"multiply in {lower} (float32 accumulation); the recurrence and narrower "
            f"projections compute in {weight_dtype}"
        )
    return None, f"under autocast it computes in {weight_dtype}, the weights' dtype ({reason})"


def projected_sweep(sweep_fn: Callable, dtype: torch.dtype) -> Callable:
    """`sweep_fn` (an engine's sweep) with its input projection run by torch in `dtype`."""

    def sweep(spec, data, r0, carried0, weights):
        w_ih = weights[0]
        if data.shape[1] < LOWER_FROM_FEATURES:
            return sweep_fn(spec, data, r0, carried0, weights)
        with torch.autocast("cpu", dtype=dtype):
            gates = F.linear(data, w_ih)  # (N, G); the bias joins inside the sweep
        return sweep_fn(spec, gates.to(w_ih.dtype), r0, carried0, (None, *weights[1:]))

    return sweep
