"""The Task interface: what one kind of model (lm, classify, tag, seq2seq, forecast, condlm,
transcribe) must say so that the one trainer (rnnkit.train.trainer), checkpoints, `rnnkit
predict`/`evaluate` and the Python API run it.

How a task plugs in
-------------------
1. Write `src/rnnkit/tasks/<name>.py` with a subclass of `Task` and a module attribute
   `TASK = <YourTask>`; the registry (`TASK_MODULES` below) maps the task name to that module and
   imports it only when the task is used, so a missing task never breaks the others.
2. Implement the abstract methods. The life cycle, as the trainer calls it::

       task = YourTask(config)                      # config: the run's TrainConfig
       data = task.load_data()                      # read_examples + split (or --val-data)
       task.fit(data.train)                         # vocabularies, label sets, scalers (train only)
       model = task.build_model()                   # nn.Module with a JSON-able .config
       task.init_model(model)                       # the run's initialization scheme, vectors
       source = task.batch_source(data)             # .next_batch() -> Batch, resumable,
                                                    # .shard(world) for data-parallel runs
       loss, carry = task.train_loss(model, batch, carry)    # default: task.loss(model, batch)
       row = task.evaluate_held_out(model, data)    # {"val_loss", **task.evaluate(model, val)}
       outputs = task.predict(model, task.read_inputs(path))   # `predict`
       print(task.format_output(output))            # one result per input, stdout

   Everything `fit` learns is saved by `state_dict()` as JSON (task.json in the run directory
   and in every checkpoint) and restored by `load_state_dict()` before `build_model()` at
   prediction time, so a task never pickles anything. The default `batch_source` shuffles the
   encoded examples each epoch (`ExampleBatches`); a task that streams (the language model)
   returns its own, and carries state from batch to batch through `train_loss`'s `carry`.
3. Settings: the run-wide ones are TrainConfig's fields (rnnkit.train.config); the task's own
   are `own_options`, a tuple of `rnnkit._checks.Option` declared in the task's module (name,
   default, help, kind, range): the CLI flag, its help under the task's heading in `rnnkit
   train --help` and the check of a value all come from it, and the task reads them as
   `config.<name>`. A setting of another task is rejected with a one-line error naming the
   task it belongs to. `defaults` replaces run-wide defaults (tuned for the character LM) for
   the settings the user did not give; `check_config` checks settings against each other.
4. `predict`/`evaluate` take extra keyword options from the command line (`--horizon`,
   `--beam-size`, ...): declare them in `predict_flags` / `evaluate_flags` as argparse keyword
   dicts and the CLI adds them to `rnnkit predict` / `rnnkit evaluate`.
5. Errors in user input are one-line ValueErrors; file errors name FILE:LINE and the fix
   (`FileError` / `line_error` help). Unknown tokens at prediction time map to <unk>; unknown
   labels in `evaluate` count as wrong predictions, never a crash.

See docs/tasks.md for the file formats, the CLI and the Python API.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._checks import Option

# Task name -> module that defines TASK.
TASK_MODULES = {
    "lm": "rnnkit.tasks.lm",
    "classify": "rnnkit.tasks.classify",
    "tag": "rnnkit.tasks.tag",
    "seq2seq": "rnnkit.tasks.seq2seq",
    "forecast": "rnnkit.tasks.forecast",
    "condlm": "rnnkit.tasks.condlm",
    "transcribe": "rnnkit.tasks.transcribe",
}
TASKS = tuple(TASK_MODULES)
PYTHON_SOURCE = "python:examples"  # TaskData.source["data"] of examples given from Python

# Settings several tasks declare alike.
UNIDIRECTIONAL = Option(
    "unidirectional",
    False,
    "run the recurrent layers left to right only (default: bidirectional)",
)
WORD_DROPOUT = Option(
    "word_dropout",
    None,
    "the probability that a training word reads as <unk>, so that the model learns what "
    "unseen words mean (text input; default: 0.25 for classify, 0.05 for tag)",
    kind=float,
    minimum=0.0,
    below=1.0,
    metavar="P",
    what="a probability",
)


@dataclass
class Batch:
    """What `collate` returns: the tensors the task's loss needs, and two counts for the logs."""

    tensors: dict[str, Tensor]  # whatever the model and the loss of this task read
    size: int  # examples in the batch (weights the held-out loss)
    tokens: int  # input time steps in the batch (for tokens/s on the progress bar)
    extra: dict[str, Any] = field(default_factory=dict)  # non-tensor data (e.g. raw strings)


@dataclass
class TaskData:
    """What a run trains and evaluates on, as `Task.load_data` read it."""

    train: list  # training examples (the language model: its training tokens)
    val: list  # held-out examples (the language model: its held-out tokens)
    source: dict  # {"data", "sha256", ...}: what the run was trained on (config.json)
    cache: dict = field(default_factory=dict)  # encodings a task computes once per run


class EpochOrder:
    """Batches of example indices: each epoch a permutation seeded by (seed, epoch), cut into
    consecutive batches (the last one may be smaller). Its state is two ints, so resume is exact."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.position = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=generator).tolist()

    def steps_per_epoch(self) -> int:
        return -(-self.n // self.batch_size)

    def next_indices(self) -> list[int]:
        if self.position >= self.n:
            self.epoch += 1
            self.position = 0
            self._order = self._permutation()
        indices = self._order[self.position : self.position + self.batch_size]
        self.position += len(indices)
        return indices

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation()


class ExampleBatches:
    """The default batch source: shuffled whole examples, a new order each epoch.

    After `shard(world)` (data-parallel training) each batch is this rank's contiguous share of
    the global batch; a rank whose share is empty (a last batch smaller than the world) gets the
    batch's first example marked `extra["stand_in"]`, which the trainer weighs as nothing."""

    def __init__(self, task: Task, items: list, batch_size: int, seed: int) -> None:
        self.task, self.items = task, items
        self.order = EpochOrder(len(items), batch_size, seed)
        self.world = None

    def shard(self, world) -> None:
        self.world = world

    def steps_per_epoch(self) -> int:
        """Batches in one pass over the examples (the global batches, under torchrun too)."""
        return self.order.steps_per_epoch()

    def next_batch(self) -> Batch:
        indices = self.order.next_indices()
        if self.world is None or not self.world.parallel:
            return self.task.collate([self.items[i] for i in indices])
        start, stop = self.world.share(len(indices))
        if start == stop:
            batch = self.task.collate([self.items[indices[0]]])
            batch.extra["stand_in"] = True
            return batch
        return self.task.collate([self.items[i] for i in indices[start:stop]])

    def state_dict(self) -> dict:
        return self.order.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.order.load_state_dict(state)


def batches_of(task: Task, items: list, batch_size: int):
    """Consecutive batches of encoded items, in order (for evaluation)."""
    for start in range(0, len(items), batch_size):
        yield task.collate(items[start : start + batch_size])


def file_digest(path: str | os.PathLike | None) -> str | None:
    """sha256 of a file's bytes (None when there is no file): resume checks the data."""
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


class Task(ABC):
    """One kind of supervised sequence model: data format, preprocessing, model, loss, metrics."""

    name: ClassVar[str]
    # The task's own settings (rnnkit._checks.Option): flags, help and checks come from here.
    own_options: ClassVar[tuple[Option, ...]] = ()
    # Run-wide defaults that differ for this task (applied to settings the user did not give).
    defaults: ClassVar[dict[str, Any]] = {}
    # The held-out figure that picks best/: (metric name in evaluate()'s dict, "max" or "min").
    best_by: ClassVar[tuple[str, str]] = ("loss", "min")
    # The batch dimension of the tensors `carry_tensors` returns (split across data-parallel
    # ranks, gathered for latest/).
    carry_batch_dim: ClassVar[int] = 1
    # Extra flags of `rnnkit predict` / `rnnkit evaluate`: {"horizon": {"type": int, ...}}.
    predict_flags: ClassVar[dict[str, dict]] = {}
    evaluate_flags: ClassVar[dict[str, dict]] = {}

    def __init__(self, config) -> None:
        if config.dropout is None:  # the automatic dropout is the language model's
            config = config.with_overrides(dropout=0.0)
        self.config = config  # the run's TrainConfig

    @classmethod  # noqa: B027 (an optional hook)
    def check_config(cls, config) -> None:
        """Optional: one-line ValueErrors for settings that do not go together for this task
        (each setting's own range is checked by its Option already)."""

    @classmethod  # noqa: B027 (an optional hook)
    def check_given(cls, given: dict, config) -> None:
        """Optional: one-line ValueErrors for settings given (by name, on the command line or
        to task_config) that `config` would leave unused. Not applied to stored runs."""

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

    def load_data(self, train: list | None = None, val: list | None = None) -> TaskData:
        """Training and held-out examples from --data/--val-data, or given from Python."""
        config = self.config
        if train is None:
            if config.data is None:
                raise ValueError(f"--data FILE is required for --task {self.name}")
            examples = self.read_examples(config.data)
            source = {"data": config.data, "sha256": file_digest(config.data)}
        else:
            examples = train
            source = {"data": PYTHON_SOURCE, "sha256": None}
        if val is None and config.val_data is not None:
            val = self.read_examples(config.val_data)
            source["val_data"] = config.val_data
        if val is None:
            train_part, val_part = self.split(examples, config.val_fraction)
        else:
            train_part, val_part = examples, val
        if not train_part or not val_part:
            raise ValueError("both the training part and the held-out part need examples")
        return TaskData(train=list(train_part), val=list(val_part), source=source)

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

    def init_model(self, model: nn.Module, data: TaskData) -> None:
        """After build, before training: the run's initialization scheme on every recurrent
        layer (--recurrent-init, --input-init, --forget-bias, --chrono-tmax). A task that
        loads more (pretrained word vectors) extends this."""
        from ..initializers import Initialization, initialize_

        config = self.config
        tmax = config.chrono_tmax
        if config.recurrent_init == "chrono" and tmax is None:
            tmax = self.chrono_horizon(data)
        scheme = Initialization(
            recurrent=config.recurrent_init,
            input=config.input_init,
            forget_bias=config.resolved_forget_bias(),
            chrono_tmax=tmax,
        )
        initialize_(model, scheme)

    @torch.no_grad()
    def copy_word_vectors(self, embedding: nn.Embedding) -> None:
        """--word-vectors into `embedding`, the rows of the task's vocabulary (`self.vocab`);
        words the file lacks keep their initialization."""
        if self.config.word_vectors is None:
            return
        from ..data import load_word_vectors

        vectors, found = load_word_vectors(
            self.config.word_vectors, self.vocab, dim=self.config.embedding_dim
        )
        if found == 0:
            raise ValueError(f"{self.config.word_vectors} has no vector for any training word")
        embedding.weight.copy_(vectors)

    def chrono_horizon(self, data: TaskData) -> int:
        """--chrono-tmax's default: the longest training example, in steps (at least 2)."""
        longest = max((_steps(item) for item in self.encoded(data, "train")), default=2)
        return max(2, longest)

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

    def loss_weight(self, batch: Batch) -> float:
        """What `loss`'s mean divides by: the examples (default) or the tokens it averages
        over. Data-parallel training weighs each rank's share by it, so that the ranks together
        compute the global batch's mean (tests check it for every task)."""
        return batch.size

    # ------------------------------------------------------------ hooks of the trainer

    def batch_source(self, data: TaskData):
        """What the training steps draw from: `next_batch()` -> Batch, `state_dict()` and
        `load_state_dict()` for exact resume. Default: shuffled examples (ExampleBatches)."""
        items = self.encoded(data, "train")
        return ExampleBatches(self, items, self.config.batch_size, self.config.seed)

    def encoded(self, data: TaskData, part: str) -> list:
        """data.train or data.val encoded once per run (kept in data.cache)."""
        if part not in data.cache:
            data.cache[part] = [self.encode(e) for e in getattr(data, part)]
        return data.cache[part]

    def train_loss(self, model: nn.Module, batch: Batch, carry):
        """(loss, carry) of one training batch. `carry` is what a task threads from batch to
        batch (the language model's detached state); None for tasks of whole examples."""
        return self.loss(model, batch), None

    def carry_tensors(self, carry) -> list[Tensor]:
        """The carry as tensors for latest/ (resume restores it with `restore_carry`)."""
        return []

    def restore_carry(self, tensors: list[Tensor], model: nn.Module):
        return None

    @torch.no_grad()
    def evaluate_held_out(self, model: nn.Module, data: TaskData) -> dict:
        """{"val_loss", **task metrics} on the held-out part (model in eval mode). The loss is
        the mean over what each batch's loss averages (`loss_weight`: examples of a known
        label, target tokens, ...), so a batch counts by what it holds."""
        items = self.encoded(data, "val")
        total, count = 0.0, 0
        for batch in batches_of(self, items, self.config.batch_size):
            weight = self.loss_weight(batch)
            total += float(self.loss(model, batch)) * weight
            count += weight
        # nothing to score (every held-out answer unknown): classify's check_held_out refuses
        # that before training; for the other tasks the loss is NaN and the metrics say why
        val_loss = total / count if count else float("nan")
        return {"val_loss": val_loss, **self.evaluate(model, data.val)}

    def check_held_out(self, data: TaskData) -> list[str]:
        """Notices about the held-out part, once the task is fitted (said when training
        starts); a ValueError if it cannot choose best/. Default: none."""
        return []

    def describe_eval(self, row: dict) -> str:
        """The evaluation line on stderr."""
        name = self.best_by[0]
        figure = "" if name == "loss" else f", {name} {row.get(name, float('nan')):.4f}"
        return (
            f"step {row['step']}: {describe_train_loss(row)}, val loss {row['val_loss']:.4f}"
            f"{figure}, grad norm {row.get('grad_norm', float('nan')):.3g}, lr "
            f"{row['lr']:.2e}, {row['elapsed']:.1f} s"
        )

    def run_metrics(self, data: TaskData, model: nn.Module) -> dict:
        """Figures of the run for metrics.json beside the trainer's."""
        return {"train_examples": len(data.train), "val_examples": len(data.val)}

    def run_files(self) -> dict[str, dict]:
        """Extra JSON files of the run directory, by name (the task's state is task.json)."""
        return {}

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


def read_pairs(path, encoding: str, form: str) -> list[tuple[int, str, str]]:
    """(line number, first column, second column) of every non-blank line of a two-column
    TSV; a line with another number of tab-separated columns is a FILE:LINE error naming the
    expected `form` ("label<TAB>text")."""
    pairs = []
    for number, line in enumerate(read_lines(path, encoding), 1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) != 2:
            raise line_error(
                path, number, f"expected 2 tab-separated columns ({form}), found {len(columns)}"
            )
        pairs.append((number, columns[0], columns[1]))
    return pairs


# ---------------------------------------------------------------- registry


def task_class(name: str) -> type[Task]:
    """The Task subclass registered as `name` (imported on first use)."""
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
    """The Task for `config.task` (its settings were checked by the config)."""
    return task_class(config.task)(config)


def available_tasks() -> dict[str, type[Task]]:
    """The registered tasks whose modules exist (for the CLI's task-specific flags)."""
    found = {}
    for name in TASK_MODULES:
        try:
            found[name] = task_class(name)
        except Exception:  # not built yet, or broken: `--task name` itself reports why
            continue
    return found


def describe_train_loss(row: dict) -> str:
    """The training loss of a log row, named for what it averages."""
    steps = row.get("train_loss_steps")
    over = f" (last {steps} steps)" if steps else ""
    return f"train loss{over} {row['train_loss']:.4f}"


def _steps(item) -> int:
    """Time steps of an encoded example (its first tensor's length)."""
    first = item[0] if isinstance(item, tuple | list) else item
    return int(first.shape[0]) if isinstance(first, Tensor) and first.dim() else 1
