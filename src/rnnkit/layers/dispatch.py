"""Which backend `backend="auto"` runs, and why: one function, so the rule is in one place.

The choice is per call, from what decides speed: whether torch has a kernel for the layer and
whether it is fused (oneDNN's LSTM), the batch, the sequence length, the hidden width, the dtype
and whether gradients will be needed. The thresholds come from `rnnkit bench` on a 2-core CPU
(docs/benchmarks.md); they are the only measured constants here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..engine.compiled import cannot_compile

__all__ = ["CallShape", "Choice", "NativeKernel", "choose_backend", "explicit_backend"]


@dataclass(frozen=True)
class Choice:
    backend: str  # "native", "reference" or "compiled"
    reason: str


@dataclass(frozen=True)
class NativeKernel:
    """What torch offers for a layer: a kernel at all, and whether it is one fused kernel
    (oneDNN's LSTM) rather than a loop over per-step operators (GRU, RNN, projected LSTM)."""

    fused: bool


@dataclass(frozen=True)
class CallShape:
    """What the rule looks at in one call."""

    batch: int
    steps: int
    hidden: int
    dtype: torch.dtype
    device: torch.device
    grad: bool  # whether autograd will need the backward
    autocast: bool = False  # CPU autocast to a lower precision is on (e.g. bfloat16 training)


# Under CPU autocast rnnkit's engines lower only each sweep's input projection
# (rnnkit.engine.lower_precision); the recurrence stays in the weights' dtype. torch's fused
# (oneDNN) LSTM in bfloat16 measured 1.3x-2.2x faster per training step than in float32 on an
# AVX512-BF16 CPU (docs/benchmarks.md).
AUTOCAST_REASON = (
    "autocast: torch's fused LSTM kernel multiplies in the lower precision throughout, rnnkit's "
    "engines in their input projections only"
)


# Measured on an idle 2-core x86 CPU (AVX-512, torch 2.13 with MKL and oneDNN; the grid B in
# {1, 8, 32, 64} x T in {1, 35, 100} x H in {128, 256, 512}, I = H/4, float32; docs/engine.md):
#  - training: the compiled engine beats torch at every size with T >= 35 (LSTM 0.96x-1.4x of
#    oneDNN's fused kernel, GRU and RNN 1.2x-4x of torch's per-step loops), but calls of a few
#    steps pay its per-call cost in Python: torch's unfused GRU and RNN kernels win there
#    (compiled 0.56x-0.95x at T = 1) while oneDNN's LSTM still loses (compiled 1.2x-4.9x);
#  - inference: GRU and RNN are faster compiled at every size (1.15x-3.6x); oneDNN's LSTM
#    matches or beats the compiled engine once the call has more than a few steps (compiled
#    0.85x-1.1x), and loses to it on short calls, the streaming case (compiled 1.6x-4.3x).
FEW_STEPS = 4


def _compiled_beats_native(native: NativeKernel, shape: CallShape) -> bool:
    """torch's kernel against the compiled sweep, by the measurements above."""
    if native.fused:
        return shape.grad or shape.steps <= FEW_STEPS
    return not (shape.grad and shape.steps <= FEW_STEPS)


def choose_backend(cell, native: NativeKernel | None, shape: CallShape) -> Choice:
    """The backend `auto` runs for this call."""
    if shape.autocast and native is not None and native.fused:
        return Choice("native", AUTOCAST_REASON)
    why_not = cannot_compile(cell, shape.dtype, shape.device)
    mode = "training" if shape.grad else "inference"
    if why_not is None:
        if native is None:
            return Choice("compiled", "the compiled engine serves this cell, torch has none")
        if _compiled_beats_native(native, shape):
            return Choice(
                "compiled",
                f"the compiled engine measured faster than torch's kernel for {mode} at "
                f"B={shape.batch}, T={shape.steps}, H={shape.hidden}",
            )
        return Choice(
            "native",
            f"torch's kernel measured faster than the compiled engine for {mode} at "
            f"B={shape.batch}, T={shape.steps}, H={shape.hidden}",
        )
    if native is not None:
        return Choice("native", f"torch's kernel ({why_not})")
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
    return Choice(backend, "asked for explicitly")
