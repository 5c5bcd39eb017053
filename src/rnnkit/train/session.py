"""What every training session does around its own steps, shared by `rnnkit train` (language
models, rnnkit.train.loop) and the task models (rnnkit.tasks.trainer).

A run object of either kind has `config`, `clock`, `progress`, `log`, `last_saved_step` and
`budget_spent()`; the callers pass their own step, evaluation, save and metrics functions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import _atomic as atomic
from . import rundir
from .progress import Progress, RunLog
from .schedule import LRSchedule

__all__ = [
    "SessionBudget",
    "after_step",
    "drive",
    "keeping_torch_state",
    "lr_schedule",
    "open_run_dir",
    "resuming",
]


class SessionBudget:
    """The budget methods of a run (mixed into the language-model and task run dataclasses,
    which hold `config`, `clock`, `session_start` and `wall_at_start`)."""

    def wall_time(self) -> float:
        return self.wall_at_start + (time.perf_counter() - self.session_start)

    def budget_spent(self) -> bool:
        max_steps, max_time = self.config.budget()
        if max_steps is not None and self.clock.step >= max_steps:
            return True
        return max_time is not None and self.clock.train_time >= max_time


def keeping_torch_state(threads: int | None, train: Callable[[], dict]) -> dict:
    """Run `train()` with `threads` torch threads (None: unchanged), then restore torch's
    global RNG and thread count, so a library call leaves no trace on the caller."""
    with torch.random.fork_rng(devices=[]):
        before = torch.get_num_threads()
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            return train()
        finally:
            torch.set_num_threads(before)


def after_step(
    run: Any,
    loss: float,
    tokens: int,
    seconds: float,
    lr: float,
    evaluate: Callable[[Any], dict],
    save: Callable[[Any], None],
) -> None:
    """Record a finished step: refuse a non-finite loss, update the clock and the progress bar,
    evaluate and save on their cadences."""
    clock, config = run.clock, run.config
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"the training loss became {loss} at step {clock.step + 1}; lower --lr or keep "
            "--clip on"
        )
    clock.record_step(loss, tokens, seconds, lr)
    if run.progress is not None:
        rate = clock.tokens / clock.train_time if clock.train_time > 0 else 0.0
        run.progress.update(clock.step, clock.train_time, loss, lr, rate)
    if clock.step % config.eval_every == 0:
        evaluate(run)
    if clock.step % config.save_every == 0:
        save(run)


def resuming(out: Path, mode: str) -> bool:
    """Whether this session continues from the run's latest/ checkpoint."""
    return mode == "resume" and atomic.dir_or_aside_exists(out / rundir.LATEST)


def lr_schedule(config) -> LRSchedule:
    """The learning-rate schedule of `config` over its budget."""
    max_steps, max_time = config.budget()
    return LRSchedule(
        config.lr, config.warmup_steps, config.schedule, max_steps=max_steps, max_time=max_time
    )


def open_run_dir(out: Path, replace: bool) -> None:
    """Make `out` ready for a session once everything is checked: cleared when the run is
    replaced (--force), created, and its checkpoints recovered if a kill interrupted a save."""
    if replace:
        rundir.clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (rundir.LATEST, rundir.BEST):
        atomic.recover_dir(out / name)


def drive(
    run: Any,
    out: Path,
    *,
    show: bool,
    stop: int | None,
    steps: Callable[[Any, int | None], None],
    evaluate: Callable[[Any], dict],
    save: Callable[[Any], None],
    metrics: Callable[[Any], dict],
) -> dict:
    """Continue the run's log and run the session's steps under a progress bar; at the end of
    the budget evaluate once more (unless that step was just evaluated) and save latest/; write
    metrics.json when the run is finished (a session ended by `stop` leaves it to the finished
    run). Returns the metrics."""
    clock = run.clock
    run.log = RunLog.resume(out / rundir.LOG, clock.step)
    max_steps, max_time = run.config.budget()
    run.progress = Progress(
        show, max_steps=max_steps, max_time=max_time, step=clock.step, train_time=clock.train_time
    )
    try:
        steps(run, stop)
        finished = run.budget_spent()
        if finished and (clock.last_eval_step != clock.step or not run.log.rows):
            evaluate(run)
        if run.last_saved_step != clock.step:
            save(run)
    finally:
        run.progress.close()
    result = metrics(run)
    if finished:
        atomic.write_json(out / rundir.METRICS, result)
    return result
