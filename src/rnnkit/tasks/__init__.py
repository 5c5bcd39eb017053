"""The tasks: lm (language model), classify, tag (+CRF), seq2seq, forecast, condlm (conditioned
generation), transcribe (speech to text), on rnnkit's layers.

Each task is a `Task` (rnnkit.tasks.base) that the one trainer (rnnkit.train.trainer), the
`rnnkit train --task / generate / predict / evaluate` commands and the Python API
(rnnkit.tasks.api: `TextClassifier(...).fit(texts, labels).predict(texts)`) drive the same way.
See docs/tasks.md.
"""

from ..train.checkpoint import load_task_checkpoint
from ..train.config import task_config
from . import metrics
from .api import (
    ConditionalGenerator,
    SequenceTagger,
    SequenceToSequence,
    SeriesForecaster,
    SpeechTranscriber,
    TaskModel,
    TextClassifier,
)
from .base import TASK_MODULES, TASKS, Batch, Task, available_tasks, make_task, task_class


def train_task(config, **options) -> dict:
    """rnnkit.train.train under its earlier name for the task models."""
    from ..train import train

    return train(config, **options)


__all__ = [
    "TASKS",
    "TASK_MODULES",
    "Batch",
    "ConditionalGenerator",
    "SequenceTagger",
    "SequenceToSequence",
    "SeriesForecaster",
    "SpeechTranscriber",
    "Task",
    "TaskModel",
    "TextClassifier",
    "available_tasks",
    "load_task_checkpoint",
    "make_task",
    "metrics",
    "task_class",
    "task_config",
    "train_task",
]
