"""The one trainer of every task: run config, loop, gradient health, checkpoints, exact resume.

Example::

    from rnnkit.train import TrainConfig, train, load_checkpoint, evaluate_text
    metrics = train(TrainConfig(data="input.txt", out="runs/ts", max_time=100))
    model, vocab, tokenizer, config = load_checkpoint("runs/ts")

    from rnnkit.train import task_config
    metrics = train(task_config("tag", data="train.conll", out="runs/ner", crf=True))
"""

from .checkpoint import load_checkpoint, load_task_checkpoint, save_checkpoint
from .config import DEFAULT_MAX_TIME, TrainConfig, task_config
from .metrics import evaluate_ids, evaluate_text
from .rundir import config_for_resume
from .schedule import LRSchedule
from .trainer import build_optimizer, train, train_step

__all__ = [
    "DEFAULT_MAX_TIME",
    "LRSchedule",
    "TrainConfig",
    "build_optimizer",
    "config_for_resume",
    "evaluate_ids",
    "evaluate_text",
    "load_checkpoint",
    "load_task_checkpoint",
    "save_checkpoint",
    "task_config",
    "train",
    "train_step",
]
