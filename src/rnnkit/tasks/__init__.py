"""Task models on rnnkit's layers: classify, tag (+CRF), seq2seq, forecast.

Each task is a `Task` (rnnkit.tasks.base) that the shared trainer (rnnkit.tasks.trainer), the
`rnnkit train --task / predict / evaluate` commands and the Python API (rnnkit.tasks.api:
`TextClassifier(...).fit(texts, labels).predict(texts)`) drive the same way. See docs/tasks.md.
"""

from . import metrics
from .api import SequenceTagger, SequenceToSequence, SeriesForecaster, TaskModel, TextClassifier
from .base import TASK_MODULES, TASKS, Batch, Task, available_tasks, make_task, task_class
from .checkpoint import load_task_checkpoint
from .trainer import task_config, train_task

__all__ = [
    "TASKS",
    "TASK_MODULES",
    "Batch",
    "SequenceTagger",
    "SequenceToSequence",
    "SeriesForecaster",
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
