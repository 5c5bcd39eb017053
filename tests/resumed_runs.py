"""A task run trained in one session beside the same run stopped early and resumed, in
`root`/whole and `root`/split: what the resume tests compare."""

from __future__ import annotations

from pathlib import Path

from rnnkit.tasks import task_config, train_task


def whole_and_resumed(task: str, root: Path, options: dict, stop_at_step: int = 5):
    """(whole, split): the run directories, the second stopped at `stop_at_step`, resumed."""
    whole = task_config(task, out=str(root / "whole"), **options)
    train_task(whole, progress=False)
    split = task_config(task, out=str(root / "split"), **options)
    train_task(split, progress=False, stop_at_step=stop_at_step)
    train_task(split, resume=True, progress=False)
    return root / "whole", root / "split"
