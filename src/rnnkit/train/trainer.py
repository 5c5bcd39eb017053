"""The one trainer: every task (lm, classify, tag, seq2seq, forecast) trains through this loop.

One step: draw a batch from the task's batch source, forward and loss (`Task.train_loss`, under
bfloat16 autocast when --precision says so), backward, measure the gradient's global norm, clip
it by value and by norm, optimizer step (rnnkit.train.gradients). A step whose loss or gradient
is not finite is skipped; a run of them stops training with a one-line error, leaving the last
checkpoint as it was.

Around the steps: the learning-rate schedule, a row in log.jsonl every --log-every steps (the
recent training loss, the gradient norm before clipping, the fraction of steps clipped), an
evaluation on the held-out part every --eval-every steps (kept in best/ when it beats the best so
far by the task's figure), latest/ every --save-every steps and on Ctrl-C, loss_curve.png and
grad_norm.png, and metrics.json when the budget is spent.

Exact resume: everything a step reads is either fixed by the config (data, vocabulary, model
shapes, batch plan per epoch) or saved in latest/ at a step boundary: weights, optimizer tensors
and hyperparameters, the schedule's state, the batch source's position, the task's carried state,
torch's RNG state (dropout) and the clocks. Evaluation and checkpointing read the model under
no_grad in eval mode and draw no random numbers, so where they happen never changes the
trajectory.

Data-parallel (under torchrun, rnnkit.train.distributed): every rank runs this loop on its share
of each global batch, with the gradients averaged in backward and every decision (skip, stop,
budget) agreed; rank 0 alone evaluates and writes the run directory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from .. import _atomic as atomic
from ..tasks.base import Task, TaskData, make_task
from . import rundir
from .averaging import WeightAverage
from .checkpoint import (
    TrainingState,
    load_training_state,
    save_checkpoint,
    task_file,
)
from .config import TrainConfig
from .distributed import (
    SINGLE,
    Replicas,
    World,
    check_batch_split,
    default_threads,
    on_every_rank,
    process_group,
    rank_seed,
    shard_carry,
    world_from_env,
)
from .gradients import (
    MAX_BAD_STEPS,
    broken_weights_cause,
    clip_gradients,
    divergence_message,
    skipped_cause,
    weights_finite,
)
from .interrupt import Interrupted, StopRequest
from .plots import plot_grad_norm, plot_loss_curve
from .precision import autocast, resolve_precision
from .progress import Progress, RunLog
from .schedule import LRSchedule, set_lr

CURVE_EVERY = 10  # steps per point of the training-loss curve in loss_curve.png
RECENT_STEPS = 50  # the training loss reported is the mean over this many last steps

__all__ = ["build_optimizer", "train", "train_step"]


# ---------------------------------------------------------------- building blocks


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = list(model.parameters())  # tied weights appear once
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    # fused: one kernel for the whole update, measured 5 ms of a 53 ms step saved at H384
    return torch.optim.AdamW(
        params,
        lr=config.lr,
        betas=(config.resolved_beta1(), config.beta2),
        weight_decay=config.weight_decay,
        fused=_can_fuse(params),
    )


def _can_fuse(params) -> bool:
    """torch's fused AdamW takes floating CPU or CUDA tensors of one kind; otherwise foreach."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


@dataclass
class StepResult:
    loss: float
    grad_norm: float  # before clipping
    clipped: bool
    skipped: bool  # nothing was applied: the loss or the gradient was not finite
    carry: object  # the task's carried state after the step (the old one when skipped)
    # the loss and gradient were finite but the update made a weight inf or nan (a learning
    # rate far too large): no later step can recover, so the run ends at once
    broke_weights: bool = False
    tokens: int | None = None  # the global batch's tokens in a data-parallel step


def train_step(
    task: Task,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch,
    carry=None,
    *,
    clip: float = 1.0,
    clip_value: float | None = None,
    precision: str = "float32",
    replicas: Replicas | None = None,
) -> StepResult:
    """One optimizer step on `batch`, or none when its loss or gradient is not finite.

    precision "bfloat16" runs the forward under bfloat16 autocast (rnnkit.train.precision); the
    gradients, the update and the carried state stay in the weights' dtype. replicas: the
    model's data-parallel copies (rnnkit.train.distributed): `batch` is this rank's share, the
    loss reported and checked is the global batch's, and the gradients are averaged.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    copies = _OneProcess(task, model) if replicas is None else replicas
    with autocast(precision):
        loss, new_carry = copies.forward(batch, carry)
    value, objective, tokens = copies.combine(loss, batch)
    if not math.isfinite(value):
        return StepResult(value, math.nan, False, True, carry, tokens=tokens)
    copies.backward(objective)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    clipping = clip_gradients(params, clip, clip_value)
    if not math.isfinite(clipping.norm):
        optimizer.zero_grad(set_to_none=True)
        return StepResult(value, clipping.norm, False, True, carry, tokens=tokens)
    optimizer.step()
    broke = not weights_finite(params)
    return StepResult(
        value, clipping.norm, clipping.clipped, False, new_carry, broke, tokens=tokens
    )


class _OneProcess:
    """Replicas' interface for one process: the task's loss as it is, a plain backward."""

    def __init__(self, task: Task, model: nn.Module) -> None:
        self.task, self.model = task, model

    def forward(self, batch, carry):
        return self.task.train_loss(self.model, batch, carry)

    @staticmethod
    def combine(loss, batch):
        return loss.item(), loss, None  # the tokens are the batch's own

    @staticmethod
    def backward(objective) -> None:
        objective.backward()


# ---------------------------------------------------------------- run state


@dataclass
class Window:
    """Sums over the steps since a row was written (a log row, or an evaluation)."""

    steps: int = 0
    loss: float = 0.0
    tokens: int = 0
    time: float = 0.0
    norm: float = 0.0
    norm_max: float = 0.0
    clipped: int = 0
    skipped: int = 0

    def add(self, result: StepResult, tokens: int, seconds: float) -> None:
        self.time += seconds
        if result.skipped:
            self.skipped += 1
            return
        self.steps += 1
        self.loss += result.loss
        self.tokens += tokens
        self.norm += result.grad_norm
        self.norm_max = max(self.norm_max, result.grad_norm)
        self.clipped += result.clipped

    def row(self) -> dict:
        """The window's figures for a log row; starts a new window."""
        steps = max(self.steps, 1)
        row = {
            "grad_norm": self.norm / steps if self.steps else None,
            "grad_norm_max": self.norm_max if self.steps else None,
            "clipped_fraction": self.clipped / steps if self.steps else None,
            "skipped_steps": self.skipped,
            "tokens_per_s": self.tokens / self.time if self.time > 0 else 0.0,
        }
        self.__init__()
        return row


@dataclass
class Clock:
    """What accumulates over a run, across resumes; JSON-able."""

    step: int = 0
    train_time: float = 0.0  # seconds inside training steps (the --max-time budget)
    wall_time: float = 0.0  # seconds of every session, evaluation and saving included
    tokens: int = 0  # training tokens seen
    best_score: float | None = None  # the task's figure of best/ (Task.best_by)
    best_val_loss: float | None = None
    best_step: int | None = None
    best_metrics: dict = field(default_factory=dict)
    last_eval_step: int | None = None
    last_lr: float = 0.0
    recent: list = field(default_factory=list)  # the losses of the last RECENT_STEPS steps
    clipped_steps: int = 0
    skipped_steps: int = 0
    bad_in_a_row: int = 0
    log_window: Window = field(default_factory=Window)
    eval_window: Window = field(default_factory=Window)
    # the training-loss curve: a point per CURVE_EVERY steps
    curve: list = field(default_factory=list)
    curve_loss: float = 0.0
    curve_steps: int = 0

    def record(self, result: StepResult, tokens: int, seconds: float, lr: float) -> None:
        self.train_time += seconds
        self.last_lr = lr
        self.log_window.add(result, tokens, seconds)
        self.eval_window.add(result, tokens, seconds)
        if result.skipped:
            self.skipped_steps += 1
            self.bad_in_a_row += 1
            return
        self.bad_in_a_row = 0
        self.step += 1
        self.tokens += tokens
        self.clipped_steps += result.clipped
        self.recent = [*self.recent[-(RECENT_STEPS - 1) :], result.loss]
        self.curve_loss += result.loss
        self.curve_steps += 1
        if self.curve_steps == CURVE_EVERY:
            self.curve.append([self.step, self.curve_loss / self.curve_steps])
            self.curve_loss, self.curve_steps = 0.0, 0

    def recent_loss(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Clock:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("log_window", "eval_window"):
            values[name] = Window(**values.get(name, {}))
        return cls(**values)


@dataclass
class Run:
    """Everything one training session works on."""

    config: TrainConfig
    out: Path
    task: Task
    data: TaskData
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    source: object  # the task's batch source
    clock: Clock
    log: RunLog
    carry: object = None  # what the task carries from batch to batch
    progress: Progress | None = None
    session_start: float = 0.0
    wall_at_start: float = 0.0
    last_saved_step: int | None = None
    precision: str = "float32"  # the resolved --precision: "float32" or "bfloat16"
    world: World = SINGLE  # the processes of a data-parallel run
    replicas: Replicas | None = None  # the model's data-parallel copies (None: one process)
    average: WeightAverage | None = None  # --ema-decay's average of the weights
    notices: list = field(default_factory=list)  # said once the progress line is up

    def wall_time(self) -> float:
        return self.wall_at_start + (time.perf_counter() - self.session_start)

    def budget(self) -> tuple[int | None, float | None]:
        """(max_steps, max_time), --max-epochs counted in this run's steps per epoch."""
        return self.config.budget(steps_per_epoch(self.config, self.source))

    def budget_spent(self) -> bool:
        max_steps, max_time = self.budget()
        if max_steps is not None and self.clock.step >= max_steps:
            return True
        return max_time is not None and self.clock.train_time >= max_time


# ---------------------------------------------------------------- rows, evaluation, saving


def _train_fields(run: Run, window: Window) -> dict:
    clock = run.clock
    return {
        "step": clock.step,
        "train_loss": clock.recent_loss(),
        "train_loss_steps": len(clock.recent),
        **window.row(),
        "lr": clock.last_lr,
        "elapsed": clock.train_time,
    }


def log_training(run: Run) -> None:
    """A log.jsonl row of the training figures since the last one."""
    run.log.append(_train_fields(run, run.clock.log_window))


def _better(task: Task, score: float, loss: float, clock: Clock) -> bool:
    """Is this evaluation better than the best so far? Ties go to the lower held-out loss."""
    best = clock.best_score
    if best is None:
        return True
    if score == best:
        return clock.best_val_loss is None or loss < clock.best_val_loss
    return score > best if task.best_by[1] == "max" else score < best


def evaluate_run(run: Run) -> dict:
    """Evaluate on the held-out part, append to log.jsonl, keep best/ if it improved. In a
    data-parallel run rank 0 evaluates while the others wait for it."""
    if not run.world.main:
        run.clock.last_eval_step = run.clock.step
        run.world.barrier()
        return {}
    try:
        return _evaluate(run)
    finally:
        run.world.barrier()


def _evaluate(run: Run) -> dict:
    started = time.perf_counter()
    clock, task = run.clock, run.task
    model = run.model if run.average is None else run.average.model
    was_training = model.training
    model.eval()
    try:
        result = task.evaluate_held_out(model, run.data)
    finally:
        model.train(was_training)
    row = {**_train_fields(run, clock.eval_window), **result}
    row["eval_time"] = time.perf_counter() - started
    clock.last_eval_step = clock.step
    name, _ = task.best_by
    score = result["val_loss"] if name == "loss" else result[name]
    if _better(task, score, result["val_loss"], clock):
        clock.best_score, clock.best_step = score, clock.step
        clock.best_val_loss = result["val_loss"]
        clock.best_metrics = dict(result)
        save_checkpoint(run.out / rundir.BEST, task, model, step=clock.step, metrics=result)
    run.log.append(row)
    plot_loss_curve(run.out / rundir.PLOT, clock.curve, run.log.rows)
    plot_grad_norm(run.out / rundir.GRAD_PLOT, _log_rows(run), run.config.clip)
    if run.progress is not None:
        run.progress.message(task.describe_eval(row))
    return row


def _log_rows(run: Run) -> list[dict]:
    return [row for row in run.log.rows if "val_loss" not in row]


def save_latest(run: Run) -> None:
    """latest/: everything a resume needs. Data-parallel: the ranks' carried rows and random
    generators are gathered first, and rank 0 writes while the others wait."""
    clock, world = run.clock, run.world
    clock_json = clock.to_dict()
    clock_json["wall_time"] = run.wall_time()
    dim = run.task.carry_batch_dim
    carry = [world.gather_rows(t, dim) for t in run.task.carry_tensors(run.carry)]
    generators = world.gather(torch.get_rng_state())
    run.last_saved_step = clock.step
    if not world.main:
        world.barrier()
        return
    trainer = {
        "clock": clock_json,
        "schedule": run.schedule.state_dict(),
        "batches": run.source.state_dict(),
        "carry": len(carry),
        "world_size": world.size,
    }
    # rank 0's generator under the one-process name, so any world size resumes from it
    tensors = {"torch_rng": generators[0]}
    for rank, state in enumerate(generators[1:], start=1):
        tensors[f"torch_rng.rank{rank}"] = state
    for i, tensor in enumerate(carry):
        tensors[f"carry.{i}"] = tensor
    if run.average is not None:
        tensors.update(run.average.state_tensors())
    try:
        _write_latest(run, tensors, trainer)
    finally:
        world.barrier()


def _write_latest(run: Run, tensors: dict, trainer: dict) -> None:
    clock = run.clock
    save_checkpoint(
        run.out / rundir.LATEST,
        run.task,
        run.model,
        step=clock.step,
        metrics=clock.best_metrics or None,
        training=TrainingState(optimizer=run.optimizer, trainer=trainer, tensors=tensors),
    )


def restore_latest(run: Run, directory: Path) -> None:
    """Continue from latest/: weights, optimizer, schedule, batches, carry, RNG, clocks."""
    trainer, tensors = load_training_state(directory, run.model, run.optimizer)
    try:
        clock = Clock.from_dict(trainer["clock"])
        run.schedule.load_state_dict(trainer["schedule"])
        run.source.load_state_dict(trainer["batches"])
        carry = [tensors[f"carry.{i}"] for i in range(trainer["carry"])]
        torch.set_rng_state(_rank_generator(run, trainer, tensors))
    except (KeyError, TypeError) as error:
        raise ValueError(f"{directory}: the trainer state is damaged ({error!r})") from None
    if run.average is not None:
        run.average.load_state_tensors(tensors, str(directory))
    try:
        carry = run.task.restore_carry(carry, run.model)
    except ValueError as error:
        raise ValueError(f"{directory}: {error}") from None
    run.carry = shard_carry(carry, run.world, run.task.carry_batch_dim)
    run.clock = clock
    run.wall_at_start = clock.wall_time
    run.last_saved_step = clock.step
    run.notices.append(f"resuming at step {clock.step} from {directory}")
    saved, now = trainer.get("world_size", 1), run.world.size
    if saved != now:
        draws = (
            "ranks the run did not have draw their random masks (dropout) afresh"
            if now > saved
            else "the random masks (dropout) continue as rank 0's"
        )
        run.notices.append(
            f"resuming a run of {saved} process(es) with {now}: the same global batches, "
            f"split differently; {draws}"
        )


def _rank_generator(run: Run, trainer: dict, tensors: dict) -> torch.Tensor:
    """This rank's saved random generator; a rank the saved run did not have starts its own
    stream from the seed and the step (its dropout masks then differ from an uninterrupted
    run's, which the progress line says)."""
    rank = run.world.rank
    if rank == 0:
        return tensors["torch_rng"]
    name = f"torch_rng.rank{rank}"
    if name in tensors:
        return tensors[name]
    step = Clock.from_dict(trainer["clock"]).step
    return torch.Generator().manual_seed(rank_seed(run.config.seed + step, rank)).get_state()


def collect_metrics(run: Run) -> dict:
    """The run's figures for metrics.json: the last evaluation's, and totals over the run."""
    clock = run.clock
    evaluations = [row for row in run.log.rows if "val_loss" in row]
    last = evaluations[-1] if evaluations else {}
    skip = {"step", "lr", "elapsed", "eval_time", "tokens_per_s"}
    return {
        "task": run.task.name,
        **{k: v for k, v in last.items() if k not in skip},
        "best_step": clock.best_step,
        "best_val_loss": clock.best_val_loss,
        "best": dict(clock.best_metrics),
        "tokens_per_s": clock.tokens / clock.train_time if clock.train_time > 0 else 0.0,
        "steps": clock.step,
        "wall_time": run.wall_time(),
        "train_time": clock.train_time,
        "train_tokens": clock.tokens,
        "clipped_fraction_run": clock.clipped_steps / max(clock.step, 1),
        "skipped_steps_run": clock.skipped_steps,
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "precision": run.precision,
        **run.task.run_metrics(run.data, run.model),
    }


# ---------------------------------------------------------------- the loop


def run_steps(run: Run, stop: StopRequest, stop_at_step: int | None = None) -> None:
    """Train until the budget is spent (or step `stop_at_step`, or Ctrl-C), logging, evaluating
    and saving on their cadences."""
    config, clock, world = run.config, run.clock, run.world
    stopping = False  # agreed by every rank after each step (Ctrl-C on any one of them)
    while not run.budget_spent() and (stop_at_step is None or clock.step < stop_at_step):
        if stopping or (stop.requested and not world.parallel):
            raise Interrupted(clock.step)
        started = time.perf_counter()
        batch = run.source.next_batch()
        lr = run.schedule.lr(clock.step, clock.train_time)
        set_lr(run.optimizer, lr)
        result = train_step(
            run.task,
            run.model,
            run.optimizer,
            batch,
            run.carry,
            clip=config.clip,
            clip_value=config.clip_value,
            precision=run.precision,
            replicas=run.replicas,
        )
        run.carry = result.carry
        seconds = time.perf_counter() - started
        tokens = batch.tokens if result.tokens is None else result.tokens
        if world.parallel:  # the slowest rank's time counts, so every rank ends together
            seconds, stop_flag = world.max([seconds, float(stop.requested)])
            stopping = stop_flag > 0
        clock.record(result, tokens, seconds, lr)
        if result.broke_weights:
            run.log.append({"step": clock.step, "diverged": True})
            raise on_every_rank(
                FloatingPointError(
                    divergence_message(
                        broken_weights_cause(clock.step),
                        config.lr,
                        config.clip,
                        run.last_saved_step,
                    )
                )
            )
        if result.skipped:
            _skipped(run, result)
            continue
        if run.average is not None:
            run.average.update(run.model)
        if run.progress is not None:
            rate = clock.tokens / clock.train_time if clock.train_time > 0 else 0.0
            run.progress.update(
                clock.step,
                clock.train_time,
                clock.recent_loss(),
                lr,
                rate,
                grad_norm=result.grad_norm,
                clipped=clock.clipped_steps / clock.step,
            )
        if clock.step % config.log_every == 0:
            log_training(run)
        if clock.step % config.eval_every == 0:
            evaluate_run(run)
        if clock.step % config.save_every == 0:
            save_latest(run)


def _skipped(run: Run, result: StepResult) -> None:
    """A step with a non-finite loss or gradient: counted, shown, and the end of the run when
    it is one of MAX_BAD_STEPS in a row."""
    clock = run.clock
    what, value = ("loss", result.loss)
    if math.isfinite(result.loss):
        what, value = ("gradient norm", result.grad_norm)
    step = clock.step + 1
    if run.progress is not None:
        run.progress.message(
            f"step {step}: the {what} is {value}; step skipped ({clock.bad_in_a_row} in a row)"
        )
    if clock.bad_in_a_row >= MAX_BAD_STEPS:
        run.log.append({"step": clock.step, "skipped_steps": clock.skipped_steps, "diverged": True})
        raise on_every_rank(
            FloatingPointError(
                divergence_message(
                    skipped_cause(what, value, step),
                    run.config.lr,
                    run.config.clip,
                    run.last_saved_step,
                )
            )
        )


def drive(run: Run, *, show: bool, stop_at_step: int | None) -> dict:
    """Continue the run's log and run the session's steps under a progress bar; at the end of
    the budget evaluate once more (unless that step was just evaluated) and save latest/; write
    metrics.json when the run is finished (a session ended by `stop_at_step` leaves it to the
    finished run). Ctrl-C saves latest/ at the step reached and re-raises."""
    clock, out, world = run.clock, run.out, run.world
    run.log = RunLog.resume(out / rundir.LOG, clock.step, writes=world.main)
    max_steps, max_time = run.budget()
    run.progress = Progress(
        show and world.main,
        max_steps=max_steps,
        max_time=max_time,
        step=clock.step,
        train_time=clock.train_time,
    )
    for notice in run.notices:
        run.progress.message(notice)
    try:
        with StopRequest() as stop:
            try:
                run_steps(run, stop, stop_at_step)
            except Interrupted:
                if run.last_saved_step != clock.step:
                    save_latest(run)
                raise
            finished = run.budget_spent()
            last = finished and (clock.last_eval_step != clock.step or not _evaluations(run))
            if world.from_main(last):  # rank 0 alone knows its evaluations
                evaluate_run(run)
            if run.last_saved_step != clock.step:
                save_latest(run)
    finally:
        run.progress.close()
    result = world.from_main(collect_metrics(run) if world.main else None)
    if finished and world.main:
        atomic.write_json(out / rundir.METRICS, result)
    return result


def _evaluations(run: Run) -> list[dict]:
    return [row for row in run.log.rows if "val_loss" in row]


# ---------------------------------------------------------------- a run from its config


def keeping_torch_state(threads: int | None, train: Callable[[], dict]) -> dict:
    """Run `train()` with `threads` torch threads (None: unchanged), then restore torch's
    global RNG and thread count, so a library call leaves no trace on the caller."""
    with torch.random.fork_rng(devices=[]):
        before = torch.get_num_threads()
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            return train()
        finally:
            torch.set_num_threads(before)


def steps_per_epoch(config: TrainConfig, source) -> int | None:
    """The optimizer steps of one pass over the training examples when --max-epochs needs
    them (None without it); a batch source without epochs refuses the setting."""
    if config.max_epochs is None:
        return None
    count = getattr(source, "steps_per_epoch", None)
    if count is None:
        raise on_every_rank(
            ValueError(
                f"--max-epochs: --task {config.task}'s batches are not counted in epochs; give "
                "the budget as --max-steps or --max-time"
            )
        )
    return count()


def lr_schedule(config: TrainConfig, source=None) -> LRSchedule:
    """The learning-rate schedule of `config` over its budget (--max-epochs counted in the
    steps of `source`, the run's batch source)."""
    max_steps, max_time = config.budget(steps_per_epoch(config, source))
    return LRSchedule(
        config.lr, config.warmup_steps, config.schedule, max_steps=max_steps, max_time=max_time
    )


def _prepare(config: TrainConfig, resume: bool, force: bool, train, val, world: World):
    """Check everything that can fail before the run directory is touched."""
    if config.out is None:
        raise ValueError("--out is required: the directory to write the run to")
    out = Path(config.out)
    mode = rundir.check_out(out, resume=resume, force=force)
    task = make_task(config)
    stored = None
    if mode == "resume":
        stored = rundir.read_run(out)
        rundir.check_resumable(out, stored)
        rundir.check_resume_matches(stored.config, config)
        task = _stored_task(out, config)  # the vocabularies the run started with
    data = task.load_data(train, val)
    if stored is not None:
        if stored.source.get("sha256") not in (None, data.source["sha256"]):
            raise ValueError(
                f"--resume: {data.source['data']} differs from the data the run started on "
                f"({stored.source.get('data')}); resume on the same data"
                if data.source["data"] != stored.source.get("data")
                else f"--resume: the contents of {data.source['data']} changed since the run "
                "started (its SHA-256 differs); resume on the data it started on"
            )
    else:
        task.fit(data.train)
        if world.parallel:  # every rank on rank 0's vocabularies, whatever its hash seed
            task.load_state_dict(world.from_main(task.state_dict()))
    return out, mode, task, data


def _stored_task(out: Path, config: TrainConfig) -> Task:
    stored = atomic.read_json(out / rundir.TASK, "task state")
    if not isinstance(stored, dict) or stored.get("task") != config.task:
        raise ValueError(f"{out / rundir.TASK} does not describe a {config.task} task")
    task = make_task(config)
    try:
        task.load_state_dict(stored["state"])
    except (KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{out / rundir.TASK} is damaged ({detail})") from None
    return task


def _open_run_dir(out: Path, replace: bool) -> None:
    """Make `out` ready for a session once everything is checked: cleared when the run is
    replaced (--force), created, and its checkpoints recovered if a kill interrupted a save."""
    if replace:
        rundir.clear_run(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (rundir.LATEST, rundir.BEST):
        atomic.recover_dir(out / name)


def _train(config: TrainConfig, resume, force, show, stop_at_step, train, val, world) -> dict:
    session_start = time.perf_counter()
    if resume and world.main and config.out is not None:
        # a kill during a save may have left latest/ aside: put it back before any rank reads it
        atomic.recover_dir(Path(config.out) / rundir.LATEST)
    world.barrier()
    out, mode, task, data = _prepare(config, resume, force, train, val, world)
    torch.manual_seed(config.seed)
    model = task.build_model()
    restoring = mode == "resume"
    if not restoring:
        task.init_model(model, data)
    if world.rank > 0:  # each rank its own dropout masks; rank 0 keeps the one-process stream
        torch.manual_seed(rank_seed(config.seed, world.rank))
    optimizer = build_optimizer(config, model)
    source = task.batch_source(data)
    if world.parallel:
        _shard(source, task, world)
    run = Run(
        config=config,
        out=out,
        task=task,
        data=data,
        model=model,
        optimizer=optimizer,
        schedule=lr_schedule(config, source),
        source=source,
        clock=Clock(),
        log=RunLog(out / rundir.LOG, writes=world.main),
        session_start=session_start,
        precision=resolve_precision(config.precision),
        world=world,
    )
    run.notices.extend(task.check_held_out(data))
    if config.ema_decay > 0:
        run.average = WeightAverage(model, config.ema_decay)
    if restoring:
        restore_latest(run, out / rundir.LATEST)
    if world.parallel:
        run.replicas = Replicas(task, model, world)  # also makes every rank's weights rank 0's
    world.barrier()  # every rank has read the run directory: rank 0 may now change it
    if world.main:
        _write_run_files(run, mode)
    world.barrier()
    return drive(run, show=show, stop_at_step=stop_at_step)


def _shard(source, task: Task, world: World) -> None:
    if not hasattr(source, "shard"):
        raise NotImplementedError(
            f"--task {task.name}'s batches cannot be split across processes yet; run it in "
            "one process (without torchrun)"
        )
    source.shard(world)


def _write_run_files(run: Run, mode: str) -> None:
    out, task, data, model, config = run.out, run.task, run.data, run.model, run.config
    # Everything is checked: only now is the directory changed.
    _open_run_dir(out, replace=mode == "replace")
    atomic.write_json(
        out / rundir.CONFIG,
        {
            "format": rundir.RUN_FORMAT,
            "version": rundir.RUN_VERSION,
            "train": config.to_dict(),
            "model": model.config.to_dict(),
            "data": data.source,
        },
    )
    atomic.write_json(out / rundir.TASK, task_file(task))
    for name, content in task.run_files().items():
        atomic.write_json(out / name, content)


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    stop_at_step: int | None = None,
    train_examples=None,
    val_examples=None,
) -> dict:
    """Train the model `config` describes (any task) and return the metrics (also in
    metrics.json).

    resume: continue the run in config.out from its latest/ checkpoint, exactly as if it had
    not stopped (never starts over: no latest/ is an error). force: replace the run in
    config.out (deleted only after config and data have been checked). progress: show the bar
    and evaluation lines on stderr. stop_at_step: end this session after that step, saving
    latest/ but not evaluating, as an interruption would; a later resume finishes the run.
    train_examples / val_examples: the task's examples from Python instead of --data (the
    language model: a text). Global torch state (RNG, threads) is restored afterwards.

    Under torchrun (WORLD_SIZE above 1) the ranks train one model data-parallel
    (rnnkit.train.distributed): config.batch_size is the global batch, split across the ranks;
    each rank's threads default to its machine's cores shared among its ranks; every rank
    returns rank 0's metrics.
    """
    world = world_from_env()
    check_batch_split(config.batch_size, world)
    threads = config.threads
    if threads is None and world.parallel:
        threads = default_threads(world)
    with process_group(world):
        return keeping_torch_state(
            threads,
            lambda: _train(
                config, resume, force, progress, stop_at_step, train_examples, val_examples, world
            ),
        )
