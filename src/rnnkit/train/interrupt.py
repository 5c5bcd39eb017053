"""Ctrl-C during training: the first one stops at the next step boundary, where the trainer saves
latest/ (so "continue with --resume" is always true); a second one exits at once, without
saving (the atomic save leaves the previous checkpoint whole)."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """Installs a SIGINT handler for the duration of a `with` block (main thread only; elsewhere
    Ctrl-C keeps Python's default behaviour)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # the second Ctrl-C: out now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C after saving latest/ at `step`."""

    def __init__(self, step: int) -> None:
        super().__init__(f"interrupted at step {step}; latest/ holds it")
        self.step = step
