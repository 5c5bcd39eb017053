"""Which backend `backend="auto"` runs, and why: one function, so the rule is in one place.

The choice is per call, from what decides speed: the cell, the batch, the sequence length, the
hidden width, the dtype and whether gradients will be needed. The thresholds come from
`rnnkit bench` on a 2-core CPU (docs/benchmarks.md); they are the only measured constants here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .compiled import cannot_compile

__all__ = ["Choice", "choose_backend", "explicit_backend"]


@dataclass(frozen=True)
class Choice:
    backend: str  # "native", "reference" or "compiled"
    reason: str


@dataclass(frozen=True)
class CallShape:
    """What the rule looks at in one call."""

    batch: int
    steps: int
    hidden: int
    dtype: torch.dtype
    device: torch.device
    grad: bool  # whether autograd will need the backward


def _compiled_beats_native(shape: CallShape) -> bool:
    """torch's fused kernel against the compiled sweep, as measured (docs/benchmarks.md)."""
    return True


def choose_backend(cell, has_native: bool, shape: CallShape) -> Choice:
    """The backend `auto` runs for this call."""
    why_not = cannot_compile(cell, shape.dtype, shape.device)
    if why_not is None:
        if not has_native:
            return Choice("compiled", "compiled kernels serve this cell, torch has none for it")
        if _compiled_beats_native(shape):
            return Choice(
                "compiled",
                f"compiled kernels measured faster than torch's for B={shape.batch}, "
                f"T={shape.steps}, H={shape.hidden}",
            )
        return Choice(
            "native",
            f"torch's fused kernel measured faster than the compiled one for B={shape.batch}, "
            f"T={shape.steps}, H={shape.hidden}",
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
    return Choice(backend, "asked for explicitly")
