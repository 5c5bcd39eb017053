"""Gradient probes: the engines' backward sweeps hand out dL/dr_t while a probe is listening.

Every engine forms, at every step of its backward sweep, the total gradient reaching the
recurrent vector r_t (the output's own gradient plus what flows back from step t+1). It is what
gradient flow through time is made of (rnnkit.diagnostics.gradient_flow), so instead of a second
pass the sweeps keep a copy of it when asked.

    with listening() as probe:
        out = layer(x)[0]
        loss_fn(out).backward()
    probe.sweeps  # one RecordedSweep per sweep, in the order the forward pass ran them

A sweep asks `claim_slot(batch_sizes, reverse)` in its forward; a slot of None (nobody is
listening) costs nothing. The slot goes with the sweep's autograd node, so the backward fills it
wherever autograd runs it. Probes nest: the innermost listener is the one sweeps report to.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["GradientProbe", "RecordedSweep", "claim_slot", "listening"]


@dataclass
class RecordedSweep:
    """One sweep's dL/dr_t: `grad` (N, R) in the sweep's packed layout (step t's rows are the
    first batch_sizes[t] of the batch), None until the backward sweep has run."""

    batch_sizes: tuple[int, ...]
    reverse: bool
    grad: Tensor | None = None

    def step_norms(self) -> Tensor:
        """‖dL/dr_t‖ over the active rows and all units of each step t (time order), (T,)."""
        if self.grad is None:
            raise RuntimeError(
                "the sweep's backward has not run: call backward() on a loss of its output"
            )
        blocks = self.grad.split(self.batch_sizes)
        return torch.stack([torch.linalg.vector_norm(b) for b in blocks])


@dataclass
class GradientProbe:
    """The sweeps that ran while this probe listened, in forward order."""

    sweeps: list[RecordedSweep] = field(default_factory=list)


_LISTENER: contextvars.ContextVar[GradientProbe | None] = contextvars.ContextVar(
    "rnnkit_gradient_probe", default=None
)


@contextlib.contextmanager
def listening():
    """Make the sweeps run inside the block record dL/dr_t for the probe it yields."""
    probe = GradientProbe()
    token = _LISTENER.set(probe)
    try:
        yield probe
    finally:
        _LISTENER.reset(token)


def claim_slot(batch_sizes: tuple[int, ...], reverse: bool) -> RecordedSweep | None:
    """A slot for one sweep's dL/dr_t when a probe listens, else None."""
    probe = _LISTENER.get()
    if probe is None:
        return None
    slot = RecordedSweep(tuple(batch_sizes), bool(reverse))
    probe.sweeps.append(slot)
    return slot
