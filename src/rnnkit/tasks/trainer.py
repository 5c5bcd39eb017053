"""The trainer of every task model: the language model's run machinery around a `Task`.

It reuses rnnkit.train's pieces: the run directory rules (rundir: --out, --resume, --force),
AdamW/SGD (`build_optimizer`), the warm-up + cosine schedule, gradient clipping, the progress bar
and log.jsonl (progress), loss_curve.png (plots), the clock (`Clock`) and atomic safetensors
checkpoints. What differs from the language model: examples instead of a token stream, so a
batch is a shuffled set of whole examples (`EpochOrder`: a fresh permutation per epoch, seeded by
(seed, epoch)), and `best/` is chosen by the task's held-out figure (`Task.best_by`).

Resume restores weights, optimizer, schedule, clock, the epoch order's position and torch's RNG
state, so a resumed run continues where it stopped (tests/test_tasks_framework.py checks it
against an uninterrupted run).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import _atomic as atomic
from ..train import rundir
from ..train.checkpoint import TrainingState
from ..train.config import TrainConfig
from ..train.loop import Clock, build_optimizer
from ..train.plots import plot_loss_curve
from ..train.progress import Progress, RunLog
from ..train.schedule import LRSchedule, set_lr
from ..train.session import (
    SessionBudget,
    after_step,
    drive,
    keeping_torch_state,
    lr_schedule,
    open_run_dir,
    resuming,
)
from .base import Batch, Task, check_options, make_task, task_class
from .checkpoint import (
    TASK_JSON,
    load_task_training_state,
    restore_task,
    save_task_checkpoint,
    task_file,
)

PYTHON_SOURCE = "python:examples"


def task_config(task: str, **given) -> TrainConfig:
    """A TrainConfig for `task`: the task's own defaults, then the options `given`."""
    if task == "lm":
        return TrainConfig(task="lm", **given)
    cls = task_class(task)
    config = TrainConfig(**{**cls.defaults, **given, "task": task})
    check_options(cls, config)
    return config


# ---------------------------------------------------------------- batches


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


def batches_of(task: Task, items: list, batch_size: int):
    """Consecutive batches of encoded items, in order (for evaluation)."""
    for start in range(0, len(items), batch_size):
        yield task.collate(items[start : start + batch_size])


# ---------------------------------------------------------------- data


@dataclass
class TaskData:
    train: list
    val: list
    source: dict  # {"data", "sha256", "val_data"}: what the run was trained on


def _digest(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def load_task_data(task: Task, config: TrainConfig, train=None, val=None) -> TaskData:
    """Training and held-out examples from config.data/val_data, or given from Python."""
    if train is None:
        if config.data is None:
            raise ValueError(f"--data FILE is required for --task {config.task}")
        examples = task.read_examples(config.data)
        source = {"data": config.data, "sha256": _digest(config.data)}
    else:
        examples = train
        source = {"data": PYTHON_SOURCE, "sha256": None}
    if val is None and config.val_data is not None:
        val = task.read_examples(config.val_data)
        source["val_data"] = config.val_data
    if val is None:
        train_part, val_part = task.split(examples, config.val_fraction)
    else:
        train_part, val_part = examples, val
    if not train_part or not val_part:
        raise ValueError("both the training part and the held-out part need examples")
    return TaskData(train=list(train_part), val=list(val_part), source=source)


# ---------------------------------------------------------------- steps and evaluation


def train_step(task: Task, model: nn.Module, optimizer, batch: Batch, clip: float) -> float:
    """One optimizer step on `batch`; returns the loss."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = task.loss(model, batch)
    loss.backward()
    if clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def held_out_loss(task: Task, model: nn.Module, items: list, batch_size: int) -> float:
    """Mean of the task's loss over the held-out examples (each batch weighted by its size)."""
    was_training = model.training
    model.eval()
    try:
        total, count = 0.0, 0
        for batch in batches_of(task, items, batch_size):
            total += float(task.loss(model, batch)) * batch.size
            count += batch.size
    finally:
        model.train(was_training)
    return total / count


def evaluate_model(task: Task, model: nn.Module, examples: list, items: list, batch_size: int):
    """{"val_loss", **task metrics} on the held-out examples."""
    was_training = model.training
    model.eval()
    try:
        metrics = task.evaluate(model, examples)
    finally:
        model.train(was_training)
    return {"val_loss": held_out_loss(task, model, items, batch_size), **metrics}


# ---------------------------------------------------------------- the run


@dataclass
class TaskClock(Clock):
    """The language model's clock plus the best held-out figure of the task."""

    best_score: float | None = None
    best_metrics: dict = field(default_factory=dict)


@dataclass
class TaskRun(SessionBudget):
    config: TrainConfig
    out: Path
    task: Task
    data: TaskData
    train_items: list
    val_items: list
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    order: EpochOrder
    clock: TaskClock
    log: RunLog
    progress: Progress | None = None
    session_start: float = 0.0
    wall_at_start: float = 0.0
    last_saved_step: int | None = None


def _better(task: Task, score: float, loss: float, clock: TaskClock) -> bool:
    """Is this evaluation better than the best so far? Ties go to the lower held-out loss."""
    best = clock.best_score
    if best is None:
        return True
    if score == best:
        return clock.best_val_loss is None or loss < clock.best_val_loss
    return score > best if task.best_by[1] == "max" else score < best


def _describe(row: dict, task: Task) -> str:
    name = task.best_by[0]
    figure = "" if name == "loss" else f", {name} {row.get(name, float('nan')):.4f}"
    return (
        f"step {row['step']}: train loss {row['train_loss']:.4f}, val loss "
        f"{row['val_loss']:.4f}{figure}, lr {row['lr']:.2e}, {row['elapsed']:.1f} s"
    )


def evaluate_run(run: TaskRun) -> dict:
    started = time.perf_counter()
    clock = run.clock
    result = evaluate_model(run.task, run.model, run.data.val, run.val_items, run.config.batch_size)
    train_loss, rate = clock.close_window()
    row = {
        "step": clock.step,
        "train_loss": train_loss,
        **result,
        "lr": clock.last_lr,
        "tokens_per_s": rate,
        "elapsed": clock.train_time,
        "eval_time": time.perf_counter() - started,
    }
    clock.last_eval_step = clock.step
    name, _ = run.task.best_by
    score = result["val_loss"] if name == "loss" else result[name]
    if _better(run.task, score, result["val_loss"], clock):
        clock.best_score, clock.best_step = score, clock.step
        clock.best_val_loss = result["val_loss"]
        clock.best_metrics = dict(result)
        save_task_checkpoint(
            run.out / rundir.BEST, run.task, run.model, step=clock.step, metrics=result
        )
    run.log.append(row)
    plot_loss_curve(run.out / rundir.PLOT, clock.curve, run.log.rows)
    if run.progress is not None:
        run.progress.message(_describe(row, run.task))
    return row


def save_latest(run: TaskRun) -> None:
    clock_json = asdict(run.clock)
    clock_json["wall_time"] = run.wall_time()
    trainer = {
        "clock": clock_json,
        "schedule": run.schedule.state_dict(),
        "order": run.order.state_dict(),
    }
    save_task_checkpoint(
        run.out / rundir.LATEST,
        run.task,
        run.model,
        step=run.clock.step,
        metrics=run.clock.best_metrics or None,
        training=TrainingState(
            optimizer=run.optimizer, trainer=trainer, tensors={"torch_rng": torch.get_rng_state()}
        ),
    )
    run.last_saved_step = run.clock.step


def restore_latest(run: TaskRun, directory: Path) -> None:
    trainer, tensors = load_task_training_state(directory, run.model, run.optimizer)
    try:
        clock = TaskClock(**trainer["clock"])
        run.schedule.load_state_dict(trainer["schedule"])
        run.order.load_state_dict(trainer["order"])
        torch.set_rng_state(tensors["torch_rng"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{directory}: the trainer state is damaged ({error!r})") from None
    run.clock = clock
    run.wall_at_start = clock.wall_time
    run.last_saved_step = clock.step


def collect_metrics(run: TaskRun) -> dict:
    clock = run.clock
    last = run.log.rows[-1] if run.log.rows else {}
    skip = {"step", "lr", "elapsed", "eval_time", "tokens_per_s"}
    return {
        "task": run.task.name,
        **{k: v for k, v in last.items() if k not in skip},
        "best_step": clock.best_step,
        "best": {k: v for k, v in clock.best_metrics.items()},
        "tokens_per_s": clock.tokens / clock.train_time if clock.train_time > 0 else 0.0,
        "steps": clock.step,
        "wall_time": run.wall_time(),
        "train_time": clock.train_time,
        "train_examples": len(run.data.train),
        "val_examples": len(run.data.val),
        "parameters": sum(p.numel() for p in run.model.parameters()),
    }


def run_steps(run: TaskRun, stop_at_step: int | None = None) -> None:
    config, clock = run.config, run.clock
    while not run.budget_spent() and (stop_at_step is None or clock.step < stop_at_step):
        started = time.perf_counter()
        batch = run.task.collate([run.train_items[i] for i in run.order.next_indices()])
        lr = run.schedule.lr(clock.step, clock.train_time)
        set_lr(run.optimizer, lr)
        loss = train_step(run.task, run.model, run.optimizer, batch, config.clip)
        seconds = time.perf_counter() - started
        after_step(run, loss, batch.tokens, seconds, lr, evaluate_run, save_latest)


def _stored_config(out: Path) -> TrainConfig:
    data = atomic.read_json(out / rundir.CONFIG, "run config")
    if not isinstance(data, dict) or data.get("format") != rundir.RUN_FORMAT:
        raise ValueError(f"{out / rundir.CONFIG} is not an rnnkit run config")
    try:
        return TrainConfig.from_dict(data["train"])
    except (KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{out / rundir.CONFIG} has a bad train config ({detail})") from None


def stored_task(out: str) -> str:
    """The --task of the run in `out` (for `rnnkit train --resume`)."""
    rundir.check_out(Path(out), resume=True, force=False)
    return _stored_config(Path(out)).task


def config_for_resume(out: str, overrides: dict) -> TrainConfig:
    """The stored task run's config with `overrides` (options given again)."""
    rundir.check_out(Path(out), resume=True, force=False)
    return _stored_config(Path(out)).with_overrides(**{"out": out, **overrides})


def train_task(
    config: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    stop_at_step: int | None = None,
    train_examples: list | None = None,
    val_examples: list | None = None,
) -> dict:
    """Train the task model `config` describes; return the metrics (also in metrics.json).

    resume / force / progress / stop_at_step as in rnnkit.train.train. train_examples and
    val_examples (lists of the task's examples) replace --data / the held-out split (the Python
    API). Global torch state (RNG, threads) is restored afterwards.
    """
    return keeping_torch_state(
        config.threads,
        lambda: _train(config, resume, force, progress, stop_at_step, train_examples, val_examples),
    )


def _prepare(config: TrainConfig, resume: bool, force: bool, train, val):
    """Check everything that can fail before the run directory is touched."""
    if config.out is None:
        raise ValueError("--out is required: the directory to write the run to")
    out = Path(config.out)
    mode = rundir.check_out(out, resume=resume, force=force)
    task = make_task(config)
    if mode == "resume":
        stored = _stored_config(out)
        rundir.check_resume_matches(stored, config)
        task = restore_task(out, config)  # the vocabularies the run started with
    data = load_task_data(task, config, train, val)
    if mode == "resume":
        before = atomic.read_json(out / rundir.CONFIG, "run config").get("data", {})
        if before.get("sha256") not in (None, data.source["sha256"]):
            raise ValueError(
                f"--resume: {data.source['data']} differs from the file the run started on "
                f"({before.get('data')}); resume on the same data"
            )
    else:
        task.fit(data.train)
    return out, mode, task, data


def _train(config, resume, force, show, stop, train, val) -> dict:
    session_start = time.perf_counter()
    out, mode, task, data = _prepare(config, resume, force, train, val)
    torch.manual_seed(config.seed)
    model = task.build_model()
    latest = out / rundir.LATEST
    restoring = resuming(out, mode)
    if not restoring:
        task.init_model(model)
    optimizer = build_optimizer(config, model)
    schedule = lr_schedule(config)
    run = TaskRun(
        config=config,
        out=out,
        task=task,
        data=data,
        train_items=[task.encode(e) for e in data.train],
        val_items=[task.encode(e) for e in data.val],
        model=model,
        optimizer=optimizer,
        schedule=schedule,
        order=EpochOrder(len(data.train), config.batch_size, config.seed),
        clock=TaskClock(),
        log=RunLog(out / rundir.LOG),
        session_start=session_start,
    )
    if restoring:
        atomic.recover_dir(latest)
        restore_latest(run, latest)

    # Everything is checked: only now is the directory changed.
    if mode == "replace":
        (out / TASK_JSON).unlink(missing_ok=True)
    open_run_dir(out, replace=mode == "replace")
    atomic.write_json(
        out / rundir.CONFIG,
        {
            "format": rundir.RUN_FORMAT,
            "train": config.to_dict(),
            "model": model.config.to_dict(),
            "data": data.source,
        },
    )
    atomic.write_json(out / TASK_JSON, task_file(task))

    return drive(
        run,
        out,
        show=show,
        stop=stop,
        steps=run_steps,
        evaluate=evaluate_run,
        save=save_latest,
        metrics=collect_metrics,
    )
