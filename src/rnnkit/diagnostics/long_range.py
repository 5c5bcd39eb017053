"""Seed 001's long-range experiments: which cells carry information across T steps.

Two synthetic tasks whose answer depends on inputs far in the past, each with a known score for
a model that remembers nothing:

- the adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015): at each
  of T steps a value u ~ U[0, 1] and a marker; two steps are marked, one in each half; the
  target at the end is the sum of the two marked values. Predicting the mean, 1, scores an MSE
  of Var(u1 + u2) = 1/6 ≈ 0.167.
- the copy task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): ten symbols of eight,
  then T blanks, then a delimiter; the model must write the ten symbols back after it. A model
  that forgets them scores 1/8 on those ten outputs.

Each cell (tanh RNN, IRNN = ReLU RNN with identity recurrence (Le et al.), LSTM, GRU) trains on
the same wall-clock budget with fresh batches of the same generator, Adam and gradient clipping;
`gradient_flow` of every cell is taken at initialization and after training on one batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..initializers import Initialization, initialize_
from ..layers import make_layer
from .flow import gradient_flow

__all__ = ["CELLS", "TASKS", "LongRangeResult", "run_long_range"]

COPY_SYMBOLS, COPY_LENGTH = 8, 10  # Arjovsky et al.'s setting


@dataclass(frozen=True)
class CellRecipe:
    """How one contender is built: the registry's cell, its options and its initialization."""

    cell: str
    options: dict = field(default_factory=dict)
    recurrent_init: str = "orthogonal"
    forget_bias: float = 0.0
    lr: float = 1e-3


CELLS = {
    "tanh": CellRecipe("rnn", {"nonlinearity": "tanh"}),
    # a tenth of the gated cells' rate: under ReLU an identity recurrence passes any growth on
    # undamped (Le et al. train it with small rates and clipping); not tuned here
    "irnn": CellRecipe("rnn", {"nonlinearity": "relu"}, recurrent_init="identity", lr=1e-4),
    "lstm": CellRecipe("lstm", forget_bias=1.0),  # Jozefowicz et al. 2015
    "gru": CellRecipe("gru"),
}


def adding_batch(batch: int, steps: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """x (T, B, 2) [value, marker] and the target (B, 1)."""
    values = torch.rand(steps, batch, generator=generator)
    half = max(steps // 2, 1)
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, steps, (batch,), generator=generator)
    markers = torch.zeros(steps, batch)
    rows = torch.arange(batch)
    markers[first, rows] = 1.0
    markers[second, rows] = 1.0
    target = (values * markers).sum(0, keepdim=False).unsqueeze(1)
    return torch.stack((values, markers), dim=2), target


def copy_batch(batch: int, steps: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """x (T + 20, B, 10) one-hot [symbols 0-7, blank 8, delimiter 9], targets (T + 20, B):
    blanks everywhere but the last ten steps, which hold the ten symbols."""
    total = steps + 2 * COPY_LENGTH
    blank, delimiter = COPY_SYMBOLS, COPY_SYMBOLS + 1
    symbols = torch.randint(0, COPY_SYMBOLS, (COPY_LENGTH, batch), generator=generator)
    inputs = torch.full((total, batch), blank, dtype=torch.long)
    inputs[:COPY_LENGTH] = symbols
    inputs[steps + COPY_LENGTH - 1] = delimiter
    targets = torch.full((total, batch), blank, dtype=torch.long)
    targets[-COPY_LENGTH:] = symbols
    return nn.functional.one_hot(inputs, COPY_SYMBOLS + 2).float(), targets


@dataclass(frozen=True)
class Task:
    name: str
    inputs: int
    outputs: int
    metric: str  # what the table reports
    trivial: float  # the score of a model that remembers nothing

    def batch(self, batch: int, steps: int, generator) -> tuple[Tensor, Tensor]:
        return (adding_batch if self.name == "adding" else copy_batch)(batch, steps, generator)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        if self.name == "adding":
            return nn.functional.mse_loss(output[-1], target)
        return nn.functional.cross_entropy(output.flatten(0, 1), target.flatten())

    def score(self, output: Tensor, target: Tensor) -> float:
        """MSE for adding; accuracy on the ten copied symbols for copy."""
        if self.name == "adding":
            return float(nn.functional.mse_loss(output[-1], target))
        guess = output[-COPY_LENGTH:].argmax(-1)
        return float((guess == target[-COPY_LENGTH:]).float().mean())


TASKS = {
    "adding": Task("adding", 2, 1, "MSE", 1 / 6),
    "copy": Task("copy", COPY_SYMBOLS + 2, COPY_SYMBOLS + 2, "accuracy", 1 / COPY_SYMBOLS),
}


class SequenceModel(nn.Module):
    """An rnnkit layer and a linear read-out at every step."""

    def __init__(self, recipe: CellRecipe, task: Task, hidden: int) -> None:
        super().__init__()
        self.rnn = make_layer(recipe.cell, task.inputs, hidden, **recipe.options)
        self.head = nn.Linear(hidden, task.outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)[0])


@dataclass
class LongRangeResult:
    task: str
    cell: str
    steps: int
    score: float
    metric: str
    trivial: float
    train_steps: int
    seconds: float
    flow_at_init: list[float]
    flow_trained: list[float]
    curve: list[tuple[int, float, float]]  # (step, seconds, held-out score)


def _flow(model: SequenceModel, x: Tensor) -> list[float]:
    return [float(v) for v in gradient_flow(model.rnn, x)[0]]


def train_one(
    task_name: str,
    cell_name: str,
    steps: int,
    *,
    seconds: float,
    hidden: int = 128,
    batch: int = 64,
    clip: float = 1.0,
    seed: int = 0,
    evaluate_every: int = 100,
    progress=None,
) -> LongRangeResult:
    """Train one cell on one task and length for `seconds` of wall clock; the score is on a
    held-out batch of 1000 sequences drawn from its own generator."""
    flushing = torch.set_flush_denormal(True)
    try:
        return _train_one(
            task_name, cell_name, steps, seconds, hidden, batch, clip, seed,
            evaluate_every, progress,
        )  # fmt: skip
    finally:
        if flushing:
            torch.set_flush_denormal(False)


def _train_one(
    task_name, cell_name, steps, seconds, hidden, batch, clip, seed, evaluate_every, progress
) -> LongRangeResult:
    # A vanishing gradient ends in subnormal floats, which many CPUs compute many times slower
    # than normal ones: flushed to zero, they cannot make one cell's steps dearer than another's
    # on the same budget, and no gradient above 1e-38 changes.
    task, recipe = TASKS[task_name], CELLS[cell_name]
    torch.manual_seed(seed)
    model = SequenceModel(recipe, task, hidden)
    initialize_(
        model.rnn, Initialization(recurrent=recipe.recurrent_init, forget_bias=recipe.forget_bias)
    )
    held_out = task.batch(1000, steps, torch.Generator().manual_seed(10_000 + seed))
    probe = held_out[0][:, :64]
    flow_at_init = _flow(model, probe)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    generator = torch.Generator().manual_seed(seed)
    start, done, curve = time.perf_counter(), 0, []

    def held_out_score() -> float:
        model.eval()
        with torch.no_grad():
            score = task.score(model(held_out[0]), held_out[1])
        model.train()
        return score

    while time.perf_counter() - start < seconds:
        x, target = task.batch(batch, steps, generator)
        loss = task.loss(model(x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if math.isfinite(float(loss.detach())):
            optimizer.step()
        done += 1
        if done % evaluate_every == 0:
            curve.append((done, time.perf_counter() - start, held_out_score()))
            if progress is not None:
                progress(task_name, cell_name, steps, curve[-1])
    elapsed = time.perf_counter() - start
    score = held_out_score()
    curve.append((done, elapsed, score))
    return LongRangeResult(
        task_name,
        cell_name,
        steps,
        score,
        task.metric,
        task.trivial,
        done,
        elapsed,
        flow_at_init,
        _flow(model, probe),
        curve,
    )


def run_long_range(
    tasks=("adding", "copy"),
    lengths=(50, 100, 200),
    cells=tuple(CELLS),
    *,
    seconds: float = 60.0,
    seed: int = 0,
    progress=None,
) -> list[LongRangeResult]:
    """Every cell on every task and length, one after another on the same budget each."""
    return [
        train_one(task, cell, steps, seconds=seconds, seed=seed, progress=progress)
        for task in tasks
        for steps in lengths
        for cell in cells
    ]
