"""What a run shows and records as it goes: the progress bar, the evaluation lines, log.jsonl.

The bar (tqdm, on stderr) shows loss, learning rate and tokens/s; tqdm turns it off by itself
when stderr is not a terminal. Evaluation lines go to stderr either way (unless quiet).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .. import _atomic as atomic

REFRESH_SECONDS = 0.25  # redraw the bar at most this often


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
        self.bar = tqdm(
            total=total,
            initial=step if self.by_steps else round(train_time, 1),
            unit="step" if self.by_steps else "s",
            disable=None if enabled else True,  # None: off when stderr is not a TTY
            file=sys.stderr,
            dynamic_ncols=True,
            leave=True,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
        )
        self.last_refresh = 0.0

    def update(
        self, step: int, train_time: float, loss: float, lr: float, tokens_per_s: float
    ) -> None:
        if self.bar.disable:
            return
        self.bar.n = step if self.by_steps else round(min(train_time, self.bar.total), 1)
        self.bar.set_postfix_str(
            f"step {step}, loss {loss:.3f}, lr {lr:.2e}, {tokens_per_s / 1000:.1f}k tok/s",
            refresh=False,
        )
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


def describe_eval(row: dict) -> str:
    return (
        f"step {row['step']}: train loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f} "
        f"({row['bpc']:.3f} bpc), lr {row['lr']:.2e}, {row['tokens_per_s']:.0f} tokens/s, "
        f"{row['elapsed']:.1f} s"
    )


class RunLog:
    """log.jsonl: one JSON object per evaluation, rewritten atomically on every append."""

    def __init__(self, path: Path, rows: list[dict] | None = None) -> None:
        self.path = path
        self.rows = list(rows or [])

    @classmethod
    def resume(cls, path: Path, up_to_step: int) -> RunLog:
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
        log = cls(path, rows)
        log.write()
        return log

    def append(self, row: dict) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        atomic.write_jsonl(self.path, self.rows)
