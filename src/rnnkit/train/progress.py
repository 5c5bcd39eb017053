"""What a run shows and records as it goes: the progress bar, the evaluation lines, log.jsonl.

The bar (tqdm, on stderr) shows the recent loss, the gradient norm before clipping and the share
of steps clipped, the learning rate and tokens/s; it is on whenever stderr is a terminal.
Evaluation lines go to stderr either way (unless quiet).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .. import _atomic as atomic

REFRESH_SECONDS = 0.25  # redraw the bar at most this often
FALLBACK_SIZE = (100, 24)  # columns, rows of a terminal that reports none


def _terminal_is_sized() -> bool:
    """Whether the terminal stderr writes to reports its columns and rows."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return size.columns > 0 and size.lines > 0


class Progress:
    """A step bar for a step budget, a seconds bar for a time budget."""

    def __init__(
        self,
        enabled: bool,
        *,
        max_steps: int | None,
        max_time: float | None,
        step: int = 0,
        train_time: float = 0.0,
    ) -> None:
        self.enabled = enabled
        self.by_steps = max_steps is not None
        total = max_steps if self.by_steps else max_time
        sized = _terminal_is_sized()
        self.bar = tqdm(
            total=total,
            initial=step if self.by_steps else round(train_time, 1),
            unit="step" if self.by_steps else "s",
            disable=None if enabled else True,  # None: off when stderr is not a TTY
            file=sys.stderr,
            # A terminal that reports no size (a pty under script or docker exec, some IDE
            # consoles) made tqdm hide the bar as "below the screen": give it a size then.
            dynamic_ncols=sized,
            ncols=None if sized else FALLBACK_SIZE[0],
            nrows=None if sized else FALLBACK_SIZE[1],
            leave=True,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
        )
        self.last_refresh = 0.0

    def update(
        self,
        step: int,
        train_time: float,
        loss: float | None,
        lr: float,
        tokens_per_s: float,
        *,
        grad_norm: float | None = None,
        clipped: float | None = None,
    ) -> None:
        """loss: the recent training loss; grad_norm: this step's norm before clipping;
        clipped: the fraction of the run's steps clipped so far."""
        if self.bar.disable:
            return
        self.bar.n = step if self.by_steps else round(min(train_time, self.bar.total), 1)
        parts = [f"step {step}"]
        if loss is not None:
            parts.append(f"loss {loss:.3f}")
        if grad_norm is not None:
            health = f"|g| {grad_norm:.3g}"
            if clipped is not None:
                health += f" ({clipped:.0%} clipped)"
            parts.append(health)
        parts += [f"lr {lr:.2e}", f"{tokens_per_s / 1000:.1f}k tok/s"]
        self.bar.set_postfix_str(", ".join(parts), refresh=False)
        now = time.monotonic()
        if now - self.last_refresh >= REFRESH_SECONDS:
            self.bar.refresh()
            self.last_refresh = now

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar.disable:
            print(text, file=sys.stderr, flush=True)
        else:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


class RunLog:
    """log.jsonl: one JSON object per evaluation, rewritten atomically on every append.

    writes=False keeps the rows in memory only (the ranks of a data-parallel run but rank 0)."""

    def __init__(self, path: Path, rows: list[dict] | None = None, writes: bool = True) -> None:
        self.path = path
        self.rows = list(rows or [])
        self.writes = writes

    @classmethod
    def resume(cls, path: Path, up_to_step: int, writes: bool = True) -> RunLog:
        """The rows of an earlier session up to the checkpoint's step (later ones are redone)."""
        rows = []
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if isinstance(row, dict) and row.get("step", up_to_step + 1) <= up_to_step:
                    rows.append(row)
        log = cls(path, rows, writes)
        log.write()
        return log

    def append(self, row: dict) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        if self.writes:
            atomic.write_jsonl(self.path, self.rows)
