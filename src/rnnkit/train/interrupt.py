"""Ctrl-C during training: the first one stops at the next step boundary, where the trainer saves
latest/ (so "continue with --resume" is always true); a second one exits at once, without
saving (the atomic save leaves the previous checkpoint whole). SIGTERM, what a job scheduler
and torchrun send to stop a job, counts the same: the run saves latest/ before it ends."""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Installs SIGINT and SIGTERM handlers for the duration of a `with` block (main thread
    only; elsewhere the signals keep Python's default behaviour)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict | None = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # the second Ctrl-C: out now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous = None


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C after saving latest/ at `step`."""

    def __init__(self, step: int) -> None:
        super().__init__(f"interrupted at step {step}; latest/ holds it")
        self.step = step
