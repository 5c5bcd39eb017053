"""Task models on rnnkit's layers: classify, tag (+CRF), seq2seq, forecast.

Each task is a `Task` (rnnkit.tasks.base) that the shared trainer (rnnkit.tasks.trainer), the
`rnnkit train --task / predict / evaluate` commands and the Python API drive the same way.
See docs/tasks.md.
"""

from . import metrics
from .base import TASK_MODULES, TASKS, Batch, Task, available_tasks, make_task, task_class

__all__ = [
    "TASKS",
    "TASK_MODULES",
    "Batch",
    "Task",
    "available_tasks",
    "make_task",
    "metrics",
    "task_class",
]
