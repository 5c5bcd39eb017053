"""Which backend `backend="auto"` runs, and why: one function, so the rule is in one place.

The choice is per call, from what decides speed: the cell, the batch, the sequence length, the
hidden width, the dtype and whether gradients will be needed. The thresholds come from
`rnnkit bench` on a 2-core CPU (docs/benchmarks.md); they are the only measured constants here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cells import LSTMCell
from .compiled import cannot_compile

__all__ = ["Choice", "choose_backend", "explicit_backend"]


@dataclass(frozen=True)
class Choice:
    backend: str  # "native", "reference" or "compiled"
    reason: str
    route: str = "sweep"  # compiled only: "sweep" (the engine) or "stream" (step kernel)


@dataclass(frozen=True)
class CallShape:
    """What the rule looks at in one call."""

    batch: int
    steps: int
    hidden: int
    dtype: torch.dtype
    device: torch.device
    grad: bool  # whether autograd will need the backward
    streamable: bool = False  # one direction, padded input, no active dropout
    autocast: bool = False  # CPU autocast to a lower precision is on (e.g. bfloat16 training)


# Measured with `rnnkit bench` on an idle 2-core x86 CPU (docs/benchmarks.md, 2026-11-23 12:59):
# torch.nn time / compiled time of a training step over B in {1, 8, 32, 64}, T in {35, 100, 500},
# H in {64, ..., 512}.
#  - Calls of a few steps are dominated by per-call costs, where torch's C++ path is leaner
#    (without gradients they go to the streaming kernel instead, see _streams).
#  - torch's LSTM is oneDNN's fused kernel: the compiled sweep is 0.3x-0.9x of it, except at
#    batch 1 with H = 512 (1.0x-1.2x).
#  - torch's GRU, Elman RNN and projected LSTM (proj_size: oneDNN refuses it) are not fused on
#    the CPU: the compiled sweep wins (1.2x-13x; projected LSTM 1.2x-8.5x, measured by hand)
#    while the per-step product is small, and loses (0.75x-0.95x) once B * H^2 reaches 2^21
#    (B8 H512, B32 H256 and up): its per-step products run on one BLAS thread (threads.py),
#    torch's on two.
FEW_STEPS = 4
LARGE_PRODUCT = 2**21  # B * H^2 from which torch's two-thread per-step GEMMs win
LARGE_INFERENCE = 8 * 256  # B * H from which torch's GRU/RNN inference is as fast or faster


def _compiled_beats_native(cell, shape: CallShape) -> bool:
    """torch's kernel against the compiled sweep, by the measurements above."""
    if shape.steps <= FEW_STEPS:
        return False
    if _is_plain_lstm(cell):  # oneDNN has no projected LSTM
        return shape.grad and shape.batch == 1 and shape.hidden >= 512
    if shape.batch * shape.hidden**2 >= LARGE_PRODUCT:
        return False
    return shape.grad or shape.batch * shape.hidden < LARGE_INFERENCE


def _streams(shape: CallShape) -> bool:
    """Short calls without gradients go to the streaming kernel (rnnkit.stream): one fused call
    per step for the whole stack, several times cheaper than any sweep's per-call cost."""
    return shape.streamable and not shape.grad and shape.steps <= FEW_STEPS


STREAM_REASON = (
    "a short call without gradients: the streaming kernel runs the whole stack in one fused "
    "call per step"
)


# Under CPU autocast only torch's kernels multiply in the lower precision; rnnkit's engines
# compute in the weights' dtype. torch's fused (oneDNN) LSTM in bfloat16 measured 1.3x-2.2x
# faster per training step than in float32 on an AVX512-BF16 CPU (docs/benchmarks.md), so it
# beats the compiled engine further. torch's GRU is not autocast at all, and its Elman RNN and
# projected LSTM are unfused step loops, so those cells keep the float32 rule.
AUTOCAST_REASON = (
    "autocast: torch's fused LSTM kernel multiplies in the lower precision, rnnkit's engines do not"
)


def _is_plain_lstm(cell) -> bool:
    return type(cell) is LSTMCell and not cell.projected


def choose_backend(cell, has_native: bool, shape: CallShape) -> Choice:
    """The backend `auto` runs for this call."""
    if shape.autocast and _is_plain_lstm(cell):
        return Choice("native", AUTOCAST_REASON)
    why_not = cannot_compile(cell, shape.dtype, shape.device)
    if why_not is None and _streams(shape):
        return Choice("compiled", STREAM_REASON, route="stream")
    if why_not is None:
        if not has_native:
            return Choice("compiled", "compiled kernels serve this cell, torch has none for it")
        if _compiled_beats_native(cell, shape):
            mode = "training" if shape.grad else "inference"
            return Choice(
                "compiled",
                f"compiled kernels measured faster than torch's for {mode} at "
                f"B={shape.batch}, T={shape.steps}, H={shape.hidden}",
            )
        mode = "training" if shape.grad else "inference"
        return Choice(
            "native",
            f"torch's kernel measured faster than the compiled one for {mode} at "
            f"B={shape.batch}, T={shape.steps}, H={shape.hidden}",
        )
    if has_native:
        return Choice("native", f"torch's fused kernel ({why_not})")
    return Choice("reference", f"the reference engine in torch ops ({why_not})")


def explicit_backend(owner: str, backend: str, cell, shape: CallShape) -> Choice:
    """The backend asked for by name, or a one-line error when it cannot serve this call."""
    if backend == "compiled":
        why_not = cannot_compile(cell, shape.dtype, shape.device)
        if why_not is not None:
            raise NotImplementedError(
                f"{owner}: backend='compiled' cannot run this call: {why_not}; use "
                "backend='auto' (it says what ran via layer.explain()) or 'reference'"
            )
        if _streams(shape):
            return Choice(backend, f"asked for explicitly; {STREAM_REASON}", route="stream")
    return Choice(backend, "asked for explicitly")
