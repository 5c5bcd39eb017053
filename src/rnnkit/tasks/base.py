"""The Task interface: what one kind of supervised model (classify, tag, seq2seq, forecast) must
say so that the shared trainer, checkpoints, `rnnkit predict`/`evaluate` and the Python API run it.

How a task plugs in
-------------------
1. Write `src/rnnkit/tasks/<name>.py` with a subclass of `Task` and a module attribute
   `TASK = <YourTask>`; the registry (`TASK_MODULES` below) maps the task name to that module and
   imports it only when the task is used, so a missing task never breaks the others.
2. Implement the abstract methods. The life cycle, as the trainer calls it::

       task = YourTask(config)                      # config: the run's TrainConfig
       examples = task.read_examples(path)          # the training/eval file -> list of examples
       train, val = task.split(examples, config.val_fraction)   # or a --val-data file
       task.fit(train)                              # vocabularies, label sets, scalers (train only)
       model = task.build_model()                   # nn.Module with a JSON-able .config
       items = [task.encode(e) for e in train]      # once, up front
       batch = task.collate(items[i:j])             # -> Batch(tensors, size, tokens)
       loss = task.loss(model, batch)               # scalar mean loss; the trainer does backward
       metrics = task.evaluate(model, val)          # dict of floats (held-out and `evaluate`)
       outputs = task.predict(model, task.read_inputs(path))   # `predict`
       print(task.format_output(output))            # one result per input, stdout

   Everything `fit` learns is saved by `state_dict()` as JSON (task.json in the run directory
   and in every checkpoint) and restored by `load_state_dict()` before `build_model()` at
   prediction time, so a task never pickles anything.
3. Options: the task reads its settings from the TrainConfig fields (add a field to
   src/rnnkit/train/config.py with complete help text: the CLI flag is generated from it) and
   lists in `options` the task-specific fields it understands; a task-specific field set to a
   non-default value for a task that does not list it is rejected with a one-line error
   (`check_options`). `defaults` overrides TrainConfig's defaults (tuned for the character LM)
   for the fields the user did not give.
4. `predict`/`evaluate` take extra keyword options from the command line (`--horizon`,
   `--beam-size`, ...): declare them in `predict_flags` / `evaluate_flags` as argparse keyword
   dicts and the CLI adds them to `rnnkit predict` / `rnnkit evaluate`.
5. Errors in user input are one-line ValueErrors; file errors name FILE:LINE and the fix
   (`FileError` / `line_error` help). Unknown tokens at prediction time map to <unk>; unknown
   labels in `evaluate` count as wrong predictions, never a crash.

See docs/tasks.md for the file formats, the CLI and the Python API.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

# Task name -> module that defines TASK. "lm" is the language model of rnnkit.train, not a Task.
TASK_MODULES = {
    "classify": "rnnkit.tasks.classify",
    "tag": "rnnkit.tasks.tag",
    "seq2seq": "rnnkit.tasks.seq2seq",
    "forecast": "rnnkit.tasks.forecast",
}
TASKS = ("lm", *TASK_MODULES)


@dataclass
class Batch:
    """What `collate` returns: the tensors the task's loss needs, and two counts for the logs."""

    tensors: dict[str, Tensor]  # whatever the model and the loss of this task read
    size: int  # examples in the batch (weights the held-out loss)
    tokens: int  # input time steps in the batch (for tokens/s on the progress bar)
    extra: dict[str, Any] = field(default_factory=dict)  # non-tensor data (e.g. raw strings)


class Task(ABC):
    """One kind of supervised sequence model: data format, preprocessing, model, loss, metrics."""

    name: ClassVar[str]
    # TrainConfig fields that only some tasks use; which of them this task understands.
    options: ClassVar[tuple[str, ...]] = ()
    # TrainConfig defaults that differ for this task (applied to fields the user did not give).
    defaults: ClassVar[dict[str, Any]] = {}
    # The held-out figure that picks best/: (metric name in evaluate()'s dict, "max" or "min").
    best_by: ClassVar[tuple[str, str]] = ("loss", "min")
    # Extra flags of `rnnkit predict` / `rnnkit evaluate`: {"horizon": {"type": int, ...}}.
    predict_flags: ClassVar[dict[str, dict]] = {}
    evaluate_flags: ClassVar[dict[str, dict]] = {}

    def __init__(self, config) -> None:
        if config.dropout is None:  # the automatic dropout is the language model's
            config = config.with_overrides(dropout=0.0)
        self.config = config  # the run's TrainConfig

    # ------------------------------------------------------------ data

    @abstractmethod
    def read_examples(self, path: str | os.PathLike) -> list:
        """Parse a training/evaluation file into examples (input and answer).

        Raises ValueError "FILE:LINE: problem; fix" for malformed lines and for an empty file.
        """

    @abstractmethod
    def read_inputs(self, path: str | os.PathLike) -> list:
        """Parse a prediction file into inputs; lines that still carry the answer are accepted
        and the answer ignored."""

    @abstractmethod
    def examples_from_python(self, inputs: Sequence, targets: Sequence | None) -> list:
        """Examples from Python values (lists, arrays or tensors) for the fit/predict API;
        `targets` None means inputs only (for predict)."""

    def split(self, examples: list, val_fraction: float) -> tuple[list, list]:
        """(train, val): the last `val_fraction` of the examples is held out (at least one each)."""
        return split_tail(examples, val_fraction)

    # ------------------------------------------------------------ preprocessing state

    @abstractmethod
    def fit(self, examples: list) -> None:
        """Learn vocabularies, label sets, scalers... from the training examples only."""

    @abstractmethod
    def state_dict(self) -> dict:
        """What `fit` learned, JSON-able (saved as task.json)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""

    # ------------------------------------------------------------ model

    @abstractmethod
    def build_model(self, model_config: dict | None = None) -> nn.Module:
        """A fresh model. None: from the TrainConfig and the fitted state; a dict: exactly the
        `model.config.to_dict()` stored in a checkpoint. The module's `.config` must have
        `to_dict()`."""

    def init_model(self, model: nn.Module) -> None:  # noqa: B027 (optional hook)
        """Optional: after build, before training (e.g. load pretrained word vectors)."""

    # ------------------------------------------------------------ training

    @abstractmethod
    def encode(self, example) -> Any:
        """One example as ids/tensors, ready for `collate` (called once per example)."""

    @abstractmethod
    def collate(self, items: list) -> Batch:
        """Pad (or pack) encoded examples into one Batch."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Mean loss over the batch (a scalar with grad); the trainer calls backward."""

    # ------------------------------------------------------------ inference

    @abstractmethod
    def predict(self, model: nn.Module, inputs: list, **options) -> list:
        """One output per input, in input order (model in eval mode, no grad)."""

    @abstractmethod
    def format_output(self, output) -> str:
        """One output as the line(s) `rnnkit predict` prints."""

    @abstractmethod
    def evaluate(self, model: nn.Module, examples: list, **options) -> dict:
        """The task's metrics (JSON-able floats and ints) on examples with answers."""


# ---------------------------------------------------------------- helpers for tasks


def split_tail(examples: list, val_fraction: float) -> tuple[list, list]:
    """(train, val): the last round(n * val_fraction) examples, at least 1, are held out."""
    n = len(examples)
    if n < 2:
        raise ValueError(
            f"the data has {n} example(s); at least 2 are needed to hold some out for "
            "validation (or pass --val-data FILE)"
        )
    num_val = min(n - 1, max(1, round(n * val_fraction)))
    return examples[: n - num_val], examples[n - num_val :]


def line_error(path, line_number: int, problem: str) -> ValueError:
    """ValueError "FILE:LINE: problem" (line numbers from 1)."""
    return ValueError(f"{path}:{line_number}: {problem}")


def read_lines(path, encoding: str = "utf-8") -> list[str]:
    """The file's lines without line endings, via rnnkit.data.read_text (missing, empty,
    binary and undecodable files are one-line errors)."""
    from ..data import read_text

    text = read_text(path, encoding)
    return text.splitlines()


# ---------------------------------------------------------------- registry


def task_class(name: str) -> type[Task]:
    """The Task subclass registered as `name` (imported on first use)."""
    if name == "lm":
        raise ValueError(
            "the lm task is the language model of rnnkit.train (rnnkit train --task lm); it "
            "has no Task class"
        )
    if name not in TASK_MODULES:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    try:
        module = importlib.import_module(TASK_MODULES[name])
    except ModuleNotFoundError as error:
        if error.name == TASK_MODULES[name]:
            raise NotImplementedError(f"the {name} task is not built yet") from None
        raise
    return module.TASK


def make_task(config) -> Task:
    """The Task for `config.task`, checked against the options it understands."""
    cls = task_class(config.task)
    check_options(cls, config)
    return cls(config)


def available_tasks() -> dict[str, type[Task]]:
    """The registered tasks whose modules exist (for the CLI's task-specific flags)."""
    found = {}
    for name in TASK_MODULES:
        try:
            found[name] = task_class(name)
        except Exception:  # not built yet, or broken: `--task name` itself reports why
            continue
    return found


# TrainConfig fields that belong to some tasks only; see check_options.
TASK_OPTIONS = (
    "column",
    "window",
    "exogenous",
    "holdout",
    "pooling",
    "crf",
    "attention",
    "unidirectional",
    "char_features",
)
# Fields of the language model that no Task reads (rejected when set for a task).
LM_ONLY = ("seq_len", "batching", "tie_weights", "precision", "recurrent_init", "forget_bias")


def check_options(cls: type[Task], config) -> None:
    """A one-line error for an option set (not at its default) that the task does not use."""
    from dataclasses import fields

    from ..train.config import flag_name

    defaults = {f.name: f.default for f in fields(config)}
    for name in TASK_OPTIONS:
        if name in cls.options or name not in defaults:
            continue
        if getattr(config, name) != defaults[name]:
            users = [t for t, c in available_tasks().items() if name in c.options]
            where = f"--task {' or '.join(users)}" if users else "no built task"
            raise ValueError(
                f"{flag_name(name)} applies to {where}, not --task {cls.name}; drop it"
            )
    for name in LM_ONLY:
        if getattr(config, name) != defaults[name]:
            raise ValueError(
                f"{flag_name(name)} applies to the language model (--task lm) only, not "
                f"--task {cls.name}; drop it"
            )
