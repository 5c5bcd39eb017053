"""The training loop of `rnnkit train`: importable pieces and `train(config)` that joins them.

One step (`train_step`): forward a (B, T) batch from the carried state, mean cross-entropy,
backward, clip the global gradient norm, optimizer step; the new state is detached (truncated
BPTT) and carried into the next batch of the sequential stream.

Exact resume: everything a step reads is either fixed by the config (data, vocab, model shapes,
batch plan per epoch) or saved in latest/ at a step boundary: weights, optimizer tensors and
hyperparameters, the schedule's state, the stream position, the carried state, torch's RNG state
(dropout) and the clocks. Evaluation and checkpointing read the model under no_grad in eval
mode and draw no random numbers, so where they happen never changes the training trajectory.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _atomic as atomic
from ..data import LMBatchStream, detach_state, load_word_vectors
from ..models import LanguageModel, LanguageModelConfig
from . import rundir
from .checkpoint import TrainingState, load_training_state, save_checkpoint
from .config import TrainConfig
from .corpus import Corpus, load_corpus
from .metrics import evaluate_ids
from .plots import plot_loss_curve
from .precision import autocast, resolve_precision
from .progress import Progress, RunLog, describe_eval
from .schedule import LRSchedule, set_lr
from .session import (
    SessionBudget,
    after_step,
    drive,
    keeping_torch_state,
    lr_schedule,
    open_run_dir,
    resuming,
)

CURVE_EVERY = 10  # steps per point of the training-loss curve in loss_curve.png


# ---------------------------------------------------------------- building blocks


def build_model(
    config: TrainConfig, vocab_size: int, dropout: float | None = None
) -> LanguageModel:
    """The model `config` describes; `dropout` is the resolved --dropout (default: as given, 0
    when automatic)."""
    return LanguageModel(
        LanguageModelConfig(
            vocab_size=vocab_size,
            cell=config.cell,
            embedding_dim=config.embedding_dim,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=dropout if dropout is not None else float(config.dropout or 0.0),
            tie_weights=config.tie_weights,
            backend=config.backend,
            recurrent_init=config.recurrent_init,
            forget_bias=config.resolved_forget_bias(),
        )
    )


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


def train_step(
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    state,
    clip: float = 1.0,
    precision: str = "float32",
) -> tuple[float, object]:
    """One optimizer step on batch x, y (B, T) from `state`; returns (loss, detached new state).

    precision "bfloat16" runs the forward under bfloat16 autocast (rnnkit.train.precision); the
    loss, the gradients, the update and the carried state stay in the weights' dtype.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    dtype = model.head.weight.dtype
    with autocast(precision):
        logits, state = model(x, state)  # (B, T, V)
    loss = F.cross_entropy(logits.to(dtype).reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    if clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item(), detach_state(state, dtype)


def state_tensors(state) -> list[Tensor]:
    return [state] if isinstance(state, Tensor) else list(state)


def state_from_tensors(tensors: list[Tensor], like):
    return tensors[0] if isinstance(like, Tensor) else tuple(tensors)


# ---------------------------------------------------------------- run state


@dataclass
class Clock:
    """What accumulates over a run, across resumes; JSON-able."""

    step: int = 0
    train_time: float = 0.0  # seconds inside training steps (the --max-time budget)
    wall_time: float = 0.0  # seconds of every session, evaluation and saving included
    tokens: int = 0  # training tokens seen
    best_val_loss: float | None = None
    best_step: int | None = None
    last_eval_step: int | None = None
    last_lr: float = 0.0
    last_train_loss: float | None = None
    # since the last evaluation: for log.jsonl's train_loss and tokens_per_s
    window_loss: float = 0.0
    window_steps: int = 0
    window_tokens: int = 0
    window_time: float = 0.0
    # the training-loss curve: a point per CURVE_EVERY steps
    curve: list = field(default_factory=list)
    curve_loss: float = 0.0
    curve_steps: int = 0

    def record_step(self, loss: float, tokens: int, seconds: float, lr: float) -> None:
        self.step += 1
        self.train_time += seconds
        self.tokens += tokens
        self.last_lr = lr
        self.window_loss += loss
        self.window_steps += 1
        self.window_tokens += tokens
        self.window_time += seconds
        self.curve_loss += loss
        self.curve_steps += 1
        if self.curve_steps == CURVE_EVERY:
            self.curve.append([self.step, self.curve_loss / self.curve_steps])
            self.curve_loss, self.curve_steps = 0.0, 0

    def close_window(self) -> tuple[float | None, float]:
        """(mean train loss, tokens/s) since the last evaluation; starts a new window."""
        if self.window_steps:
            self.last_train_loss = self.window_loss / self.window_steps
        rate = self.window_tokens / self.window_time if self.window_time > 0 else 0.0
        self.window_loss, self.window_steps, self.window_tokens, self.window_time = 0.0, 0, 0, 0.0
        return self.last_train_loss, rate


@dataclass
class Run(SessionBudget):
    """Everything one training session works on."""

    config: TrainConfig
    out: Path
    corpus: Corpus
    model: LanguageModel
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    stream: LMBatchStream
    clock: Clock
    carried: object  # the LM state carried across sequential batches
    log: RunLog
    progress: Progress | None = None
    session_start: float = 0.0
    wall_at_start: float = 0.0
    last_saved_step: int | None = None
    precision: str = "float32"  # the resolved --precision: "float32" or "bfloat16"


# ---------------------------------------------------------------- evaluation and saving


def evaluate_run(run: Run) -> dict:
    """Evaluate on the held-out part, append to log.jsonl, keep best/ if it improved."""
    started = time.perf_counter()
    clock = run.clock
    result = evaluate_ids(run.model, run.corpus.val_ids, characters=_val_characters(run))
    train_loss, rate = clock.close_window()
    row = {
        "step": clock.step,
        "train_loss": train_loss,
        "val_loss": result["loss"],
        "bpc": result["bpc"],
        "perplexity": result["perplexity"],
        "lr": clock.last_lr,
        "tokens_per_s": rate,
        "elapsed": clock.train_time,
        "eval_time": time.perf_counter() - started,
    }
    clock.last_eval_step = clock.step
    if clock.best_val_loss is None or result["loss"] < clock.best_val_loss:
        clock.best_val_loss, clock.best_step = result["loss"], clock.step
        save_checkpoint(
            run.out / rundir.BEST,
            run.model,
            run.corpus.vocab,
            run.config,
            step=clock.step,
            val_loss=result["loss"],
        )
    run.log.append(row)
    plot_loss_curve(run.out / rundir.PLOT, clock.curve, run.log.rows)
    if run.progress is not None:
        run.progress.message(describe_eval(row))
    return row


def _val_characters(run: Run) -> int | None:
    """Characters for bits per character: the held-out text's for word models."""
    return None if run.config.tokens == "char" else run.corpus.val_characters


def save_latest(run: Run) -> None:
    clock = run.clock
    clock_json = asdict(clock)
    clock_json["wall_time"] = run.wall_time()
    trainer = {
        "clock": clock_json,
        "schedule": run.schedule.state_dict(),
        "stream": run.stream.state_dict(),
        "carried": len(state_tensors(run.carried)),
    }
    tensors = {"torch_rng": torch.get_rng_state()}
    for i, tensor in enumerate(state_tensors(run.carried)):
        tensors[f"state.{i}"] = tensor
    save_checkpoint(
        run.out / rundir.LATEST,
        run.model,
        run.corpus.vocab,
        run.config,
        step=clock.step,
        val_loss=clock.best_val_loss,
        training=TrainingState(optimizer=run.optimizer, trainer=trainer, tensors=tensors),
    )
    run.last_saved_step = clock.step


def restore_latest(run: Run, directory: Path) -> None:
    """Continue from latest/: weights, optimizer, schedule, stream, carried state, RNG, clocks."""
    trainer, tensors = load_training_state(directory, run.model, run.optimizer)
    try:
        clock = Clock(**trainer["clock"])
        run.schedule.load_state_dict(trainer["schedule"])
        run.stream.load_state_dict(trainer["stream"])
        carried = [tensors[f"state.{i}"] for i in range(trainer["carried"])]
        torch.set_rng_state(tensors["torch_rng"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{directory}: the trainer state is damaged ({error!r})") from None
    expected = [t.shape for t in state_tensors(run.carried)]
    if [t.shape for t in carried] != expected:
        raise ValueError(f"{directory}: the saved LM state does not fit the model")
    run.carried = state_from_tensors(carried, run.carried)
    run.clock = clock
    run.wall_at_start = clock.wall_time
    run.last_saved_step = clock.step


def collect_metrics(run: Run) -> dict:
    """The run's figures for metrics.json: the last evaluation's, and totals over the run."""
    clock = run.clock
    last = run.log.rows[-1] if run.log.rows else {}
    metrics = {
        "val_loss": last.get("val_loss"),
        "train_loss": last.get("train_loss"),
        "bpc": last.get("bpc"),
        "perplexity": last.get("perplexity"),
        "tokens_per_s": clock.tokens / clock.train_time if clock.train_time > 0 else 0.0,
        "steps": clock.step,
        "wall_time": run.wall_time(),
        "train_time": clock.train_time,
        "best_val_loss": clock.best_val_loss,
        "best_step": clock.best_step,
        "train_tokens": clock.tokens,
        "val_tokens": run.corpus.val_ids.numel() - 1,
        "vocab_size": len(run.corpus.vocab),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "precision": run.precision,
        "dropout": run.model.config.dropout,
    }
    return metrics


# ---------------------------------------------------------------- the loop


def run_steps(run: Run, stop_at_step: int | None = None) -> None:
    """Train until the budget is spent (or step `stop_at_step`), evaluating and saving on their
    cadences."""
    config, clock = run.config, run.clock
    B, T = config.batch_size, config.seq_len
    while not run.budget_spent() and (stop_at_step is None or clock.step < stop_at_step):
        started = time.perf_counter()
        x, y, new_epoch = run.stream.next_batch()
        if new_epoch or config.batching == "random":
            run.carried = run.model.begin_state(B)  # rows jump: the carried state is stale
        lr = run.schedule.lr(clock.step, clock.train_time)
        set_lr(run.optimizer, lr)
        loss, run.carried = train_step(
            run.model, run.optimizer, x, y, run.carried, config.clip, run.precision
        )
        seconds = time.perf_counter() - started
        after_step(run, loss, B * T, seconds, lr, evaluate_run, save_latest)


def _prepare(config: TrainConfig, resume: bool, force: bool):
    """Check everything that can fail before the run directory is touched."""
    if config.out is None:
        raise ValueError("--out is required: the directory to write the run to")
    out = Path(config.out)
    mode = rundir.check_out(out, resume=resume, force=force)
    stored = None
    if mode == "resume":
        stored = rundir.read_run(out)
        rundir.check_resume_matches(stored.config, config)
    corpus = load_corpus(config, vocab=stored.vocab if stored else None)
    if stored is not None and stored.source.get("sha256") not in (None, corpus.source["sha256"]):
        raise ValueError(
            f"--resume: the text of {corpus.source['data']} differs from the text the run "
            f"started on ({stored.source.get('data')}); resume on the same data"
        )
    # A resumed run keeps the dropout it started with: an automatic choice depends on the
    # budget, which a resume may extend.
    if stored is not None:
        dropout = float(stored.model.get("dropout", 0.0))
    else:
        dropout = config.resolved_dropout(corpus.train_ids.numel())
    return out, mode, corpus, dropout


def _load_vectors(config: TrainConfig, model: LanguageModel, corpus: Corpus) -> None:
    vectors, found = load_word_vectors(config.word_vectors, corpus.vocab, dim=config.embedding_dim)
    with torch.no_grad():
        model.embedding.weight.copy_(vectors)
    if found == 0:
        raise ValueError(f"{config.word_vectors} has no vector for any word of the vocabulary")


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    stop_at_step: int | None = None,
) -> dict:
    """Train a language model as `config` says and return the metrics (also in metrics.json).

    resume: continue the run in config.out from its latest/ checkpoint, exactly as if it had
    not stopped. force: replace the run in config.out (deleted only after config and data have
    been checked). progress: show the bar and evaluation lines on stderr. stop_at_step: end
    this session after that step, saving latest/ but not evaluating, as an interruption
    would; a later resume finishes the run. Global torch state (RNG, threads) is restored.
    """
    return keeping_torch_state(
        config.threads,
        lambda: _train(config, resume=resume, force=force, show=progress, stop=stop_at_step),
    )


def _train(config: TrainConfig, *, resume: bool, force: bool, show: bool, stop) -> dict:
    session_start = time.perf_counter()
    out, mode, corpus, dropout = _prepare(config, resume, force)
    torch.manual_seed(config.seed)
    model = build_model(config, len(corpus.vocab), dropout)
    latest = out / rundir.LATEST
    restoring = resuming(out, mode)
    if config.word_vectors is not None and not restoring:
        _load_vectors(config, model, corpus)
    optimizer = build_optimizer(config, model)
    stream = LMBatchStream(
        corpus.train_ids, config.batch_size, config.seq_len, mode=config.batching, seed=config.seed
    )
    schedule = lr_schedule(config)

    run = Run(
        config=config,
        out=out,
        corpus=corpus,
        model=model,
        optimizer=optimizer,
        schedule=schedule,
        stream=stream,
        clock=Clock(),
        carried=model.begin_state(config.batch_size),
        log=RunLog(out / rundir.LOG),
        session_start=session_start,
        precision=resolve_precision(config.precision),
    )
    if restoring:
        atomic.recover_dir(latest)  # a kill during a save may have left it aside
        restore_latest(run, latest)

    # Everything is checked: only now is the directory changed.
    open_run_dir(out, replace=mode == "replace")
    rundir.write_run_files(out, config, model.config.to_dict(), corpus.vocab, corpus.source)

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
