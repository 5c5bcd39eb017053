"""Training language models: config, loop, evaluation, checkpoints with exact resume.

Example::

    from rnnkit.train import TrainConfig, train, load_checkpoint, evaluate_text
    metrics = train(TrainConfig(data="input.txt", out="runs/ts", max_time=100))
    model, vocab, tokenizer, config = load_checkpoint("runs/ts")
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import DEFAULT_MAX_TIME, TrainConfig
from .loop import build_model, build_optimizer, train, train_step
from .metrics import evaluate_ids, evaluate_text
from .rundir import config_for_resume
from .schedule import LRSchedule

__all__ = [
    "DEFAULT_MAX_TIME",
    "LRSchedule",
    "TrainConfig",
    "build_model",
    "build_optimizer",
    "config_for_resume",
    "evaluate_ids",
    "evaluate_text",
    "load_checkpoint",
    "save_checkpoint",
    "train",
    "train_step",
]
