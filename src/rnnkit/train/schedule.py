"""Learning-rate schedule: linear warm-up, then cosine or linear decay to zero over the budget
(or constant).

The budget is steps, seconds of training, or both; progress through it is

    progress = max(step / max_steps, train_time / max_time)   (over whichever budgets are set)

so a time budget decays the rate by the clock and a step budget by the step count. After
`warmup_steps` steps the cosine runs from the progress reached at the end of warm-up to 1:

    lr = peak * (step + 1) / warmup_steps                     while step < warmup_steps
    lr = peak * (1 + cos(pi * q)) / 2,  q = (progress - p_w) / (1 - p_w)   afterwards (cosine)
    lr = peak * (1 - q)                                                      (linear)

With a step budget p_w = warmup_steps / max_steps is fixed; with a time budget it is measured
once (and saved with the checkpoint, so a resumed run continues the same curve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class LRSchedule:
    peak: float
    warmup_steps: int
    kind: str = "cosine"  # "cosine", "linear" or "constant"
    max_steps: int | None = None
    max_time: float | None = None
    warmup_end_progress: float | None = None  # p_w, fixed when warm-up ends

    def progress(self, step: int, train_time: float) -> float:
        """Fraction of the budget used after `step` steps and `train_time` seconds, in [0, 1]."""
        parts = []
        if self.max_steps is not None:
            parts.append(step / self.max_steps)
        if self.max_time is not None:
            parts.append(train_time / self.max_time)
        return min(1.0, max(parts, default=0.0))

    def lr(self, step: int, train_time: float) -> float:
        """The rate for the step after `step` completed steps and `train_time` seconds."""
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.peak
        if self.warmup_end_progress is None:
            self.warmup_end_progress = self._warmup_end(train_time)
        start = self.warmup_end_progress
        if start >= 1.0:
            return 0.0
        q = (self.progress(step, train_time) - start) / (1.0 - start)
        q = min(1.0, max(0.0, q))
        if self.kind == "linear":
            return self.peak * (1.0 - q)
        return self.peak * 0.5 * (1.0 + math.cos(math.pi * q))

    def _warmup_end(self, train_time: float) -> float:
        if self.max_time is None:  # pure step budget: known in advance, no clock involved
            return self.progress(self.warmup_steps, 0.0)
        return self.progress(self.warmup_steps, train_time)

    def state_dict(self) -> dict:
        return {"warmup_end_progress": self.warmup_end_progress}

    def load_state_dict(self, state: dict) -> None:
        self.warmup_end_progress = state.get("warmup_end_progress")


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
