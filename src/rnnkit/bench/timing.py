"""Timing contenders fairly: agreement first, then interleaved rounds and paired ratios.

A row of a benchmark is a set of contenders that compute the same thing (same weights, same
input, same upstream gradients). Before anything is timed, every contender's outputs, input
gradients and weight gradients are compared with one trusted contender (the oracle); a
contender that disagrees is refused, not timed, so no table ever compares computations that
differ. The rest run `warmup` untimed steps, then `rounds` rounds of one step each, in an order
that rotates from round to round, so a slow patch of a shared machine hits all of them alike.
Ratios are formed per round (paired) and summarized by their median and quartiles.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "AGREEMENT_TOLERANCE",
    "BUSY_SHARE",
    "Agreement",
    "Contender",
    "Timing",
    "check_agreement",
    "cpu_ticks",
    "others_share",
    "paired_ratio",
    "time_interleaved",
    "train_step",
]

AGREEMENT_TOLERANCE = 1e-3  # largest relative difference (float32) a contender may show
BUSY_SHARE = 0.10  # other processes using more than this share of the CPUs flag a row


@dataclass
class Contender:
    """Something to time. `forward()` returns a tuple of output tensors (the same shapes for
    every contender of a row); `parameters` are its weights in the row's canonical order, so
    their gradients pair up across contenders."""

    name: str
    forward: Callable[[], tuple[Tensor, ...]]
    parameters: list[Tensor]
    # False for a contender timed beside the others without computing the same thing (torch's
    # LSTM beside a LayerNormLSTM: the time the cell is judged against); it is not compared
    checked: bool = True

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.grad = None


def train_step(contender: Contender, grads: Sequence[Tensor]) -> None:
    """One training step: forward, then backward of the fixed projection `grads` of the outputs
    (sum over outputs of <output, grad>), which reaches the input and every weight."""
    torch.autograd.backward(contender.forward(), list(grads))


def _relative_difference(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    """max |a - b| / max(1, max |b|) over paired tensors; inf when the shapes differ."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            if x is not y:
                return float("inf")
            continue
        if x.shape != y.shape:
            return float("inf")
        scale = max(1.0, y.abs().max().item()) if y.numel() else 1.0
        difference = (x - y).abs().max().item() if x.numel() else 0.0
        worst = max(worst, difference / scale)
    return worst


def _results(contender: Contender, inputs: Sequence[Tensor], grads) -> list[Tensor | None]:
    """Outputs, input gradients and weight gradients of one training step."""
    contender.zero_grad()
    for x in inputs:
        x.grad = None
    outputs = contender.forward()
    torch.autograd.backward(outputs, list(grads))
    return (
        [o.detach() for o in outputs]
        + [x.grad for x in inputs]
        + [p.grad for p in contender.parameters]
    )


@dataclass
class Agreement:
    """Each contender's largest relative difference from the oracle; who was refused."""

    oracle: str
    differences: dict[str, float] = field(default_factory=dict)
    tolerance: float = AGREEMENT_TOLERANCE

    @property
    def refused(self) -> dict[str, float]:
        return {n: d for n, d in self.differences.items() if not d <= self.tolerance}


def check_agreement(
    contenders: Sequence[Contender],
    inputs: Sequence[Tensor],
    grads: Sequence[Tensor],
    oracle: str,
    tolerance: float = AGREEMENT_TOLERANCE,
) -> Agreement:
    """Compare every contender's training step with the oracle's (outputs, final states, input
    and weight gradients). Also serves as every contender's first warm-up step."""
    by_name = {c.name: c for c in contenders}
    expected = _results(by_name[oracle], inputs, grads)
    agreement = Agreement(oracle, tolerance=tolerance)
    for contender in contenders:
        if not contender.checked:
            _results(contender, inputs, [torch.ones_like(o) for o in contender.forward()])
            continue
        if contender.name != oracle:
            got = _results(contender, inputs, grads)
            try:
                agreement.differences[contender.name] = _relative_difference(got, expected)
            except ValueError:  # a different number of outputs or parameters
                agreement.differences[contender.name] = float("inf")
    return agreement


@dataclass(frozen=True)
class Timing:
    """Wall-clock samples of one contender, in ms, in the order of the rounds."""

    samples_ms: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def quartiles(self) -> tuple[float, float]:
        return quartiles(self.samples_ms)

    def to_dict(self) -> dict:
        q1, q3 = self.quartiles
        return {
            "median_ms": self.median,
            "q1_ms": q1,
            "q3_ms": q3,
            "min_ms": min(self.samples_ms),
            "max_ms": max(self.samples_ms),
            "samples_ms": list(self.samples_ms),
        }


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def paired_ratio(slow: Timing, fast: Timing) -> tuple[float, float, float]:
    """Median and quartiles of the per-round ratios slow / fast: how many times faster `fast`
    is than `slow` (above 1: `fast` wins)."""
    ratios = [s / f for s, f in zip(slow.samples_ms, fast.samples_ms, strict=True)]
    return (statistics.median(ratios), *quartiles(ratios))


def time_interleaved(
    contenders: Sequence[Contender],
    run: Callable[[Contender], None],
    inputs: Sequence[Tensor],
    rounds: int,
    warmup: int,
) -> dict[str, Timing]:
    """Warm every contender up, then `rounds` rounds of one run each, in rotating order.

    Gradients are reset outside the timed region; the garbage collector is off inside it.
    """
    contenders = list(contenders)

    def reset(contender: Contender) -> None:
        contender.zero_grad()
        for x in inputs:
            x.grad = None

    for _ in range(warmup):
        for contender in contenders:
            reset(contender)
            run(contender)
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    gc.collect(1)  # the young generations hold the warm-up's garbage; a full pass costs 0.25 s
    gc.disable()
    try:
        for round_ in range(rounds):
            shift = round_ % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                reset(contender)
                start = time.perf_counter_ns()
                run(contender)
                samples[contender.name].append((time.perf_counter_ns() - start) / 1e6)
    finally:
        gc.enable()
    return {name: Timing(tuple(values)) for name, values in samples.items()}


def cpu_ticks() -> tuple[int, int, int] | None:
    """(busy ticks of all CPUs, ticks of all CPUs, ticks of this process) from /proc, or None
    off Linux. Two readings tell how much CPU other processes took in between."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        with open("/proc/self/stat", encoding="ascii") as own:
            after_name = own.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total, int(after_name[11]) + int(after_name[12])  # utime + stime


def others_share(before, after) -> float | None:
    """Share of all CPUs' time that other processes used between two `cpu_ticks()`."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    busy, total, own = (a - b for a, b in zip(after, before, strict=True))
    return max(0.0, (busy - own) / total)
