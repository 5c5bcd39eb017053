"""A task run trained in one session beside the same run stopped early and resumed, in
`root`/whole and `root`/split, and the comparison of their saved weights: what the resume
tests check."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from rnnkit.tasks import task_config, train_task


def whole_and_resumed(task: str, root: Path, options: dict, stop_at_step: int = 5):
    """(whole, split): the run directories, the second stopped at `stop_at_step`, resumed."""
    whole = task_config(task, out=str(root / "whole"), **options)
    train_task(whole, progress=False)
    split = task_config(task, out=str(root / "split"), **options)
    train_task(split, progress=False, stop_at_step=stop_at_step)
    train_task(split, resume=True, progress=False)
    return root / "whole", root / "split"


def assert_same_weights(a: Path, b: Path, kept: str = "latest") -> None:
    """The two run directories' `kept` checkpoints hold the same tensors, bit for bit."""
    first = load_file(a / kept / "weights.safetensors")
    second = load_file(b / kept / "weights.safetensors")
    assert first.keys() == second.keys(), kept
    for name in first:
        assert torch.equal(first[name], second[name]), (kept, name)
