"""Which configurations the train-step suite times, with how many rounds, within a budget.

By default (`--grid targets`) every cell runs the sizes the engine's targets are stated at:
B32 T35 I28 H256, B64 T100 I128 H512, B8 T200 I32 H128 (where torch's loop is bound by
per-step overhead), B32 T100 I256 H256, and d2l's Time Machine model (the book seed 004
follows: batch 1024, 32 steps, a 28-character one-hot vocabulary, 32 hidden units). Jordan's
output width there is O = max(8, H / 4).

For a wider look, the grid B in {1, 8, 32, 64} x T in {35, 100, 500} x H in {64, 128, 256, 512}
(48 configurations per cell) is there in designs that fit the budget:

    full      all 48 configurations: LSTM, the cell the headline targets are mostly about
    latin     16: every (B, H) pair once, T rotating with (b + h) mod 3 (b, h the level
              indices), so each B, each H and each T level appears 4, 4 and 5-6 times and the
              largest corner (B64 H512) is in: RNN and GRU
    diagonal  8: the (B, H) pairs on both diagonals of the B x H square, T cycling over the
              three levels: each B and each H twice; Jordan and the layer-norm cells, whose
              target is against a hand-written loop, not a fused kernel

The input width is I = H / 4 (so B64 T100 H512 has I128, the issue's reference configuration),
Jordan's output width O = H / 4. One more LSTM row, B32 T35 I28 H256, is the issue's other
reference point.

The time a row takes is estimated before anything runs, from its GEMM flops at a fraction of
the measured GEMM peak plus a per-time-step overhead for each contender (constants below, from
the figures in docs/benchmarks.md; an estimate, printed as one). The planner then:
  - leaves the naive and reference contenders out of standard-cell rows whose step would take
    more than SLOW_STEP_S (they are GEMM-bound there and add seconds without telling anything
    the smaller rows do not), and says so in the row;
  - gives each row ROW_SECONDS of timed rounds, at least MIN_ROUNDS and at most MAX_ROUNDS;
  - if the whole estimate exceeds the budget, cuts rounds (never below MIN_ROUNDS), then the
    reference contender (informational) where the budget still does not fit.
At run time (rnnkit.bench.train_step) the budget is a deadline: when rows run slower than
estimated, the rounds of the rows still to come are cut (never below MIN_ROUNDS, noted in the
row), and rows that would start after the deadline are reported as not run, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import torch

from .contenders import CONTENDERS, STANDARD_CELLS, TWINS, LayerConfig, make_layer, why_not

__all__ = [
    "DESIGNS",
    "GRID_B",
    "GRID_H",
    "GRID_T",
    "PER_STEP_BOUND",
    "TARGET_SIZES",
    "PlannedRow",
    "available_backends",
    "diagonal_subset",
    "estimate_step_seconds",
    "full_grid",
    "latin_subset",
    "plan_rows",
    "quick_configs",
    "suite_configs",
    "target_sizes",
]

GRID_B = (1, 8, 32, 64)
GRID_T = (35, 100, 500)
GRID_H = (64, 128, 256, 512)
# (B, T, I, H) of the targets (module docstring); the last is d2l's Time Machine model
TARGET_SIZES = (
    (32, 35, 28, 256),
    (64, 100, 128, 512),
    (8, 200, 32, 128),
    (32, 100, 256, 256),
    (1024, 32, 28, 32),
)
PER_STEP_BOUND = (8, 200, 32, 128)  # where torch's own loop is bound by per-step overhead

# Cost model (estimates, not measurements): share of the GEMM peak each contender's products
# reach, and its fixed cost per time step of a training step (forward + backward), in s.
RATE = {"compiled": 0.7, "native": 0.7, "reference": 0.5, "naive": 0.5, "twin": 0.7}
STEP_OVERHEAD_S = {
    "compiled": {"default": 6e-6},
    "native": {"lstm": 30e-6, "default": 80e-6},  # LSTM: oneDNN's fused kernel; others: ATen loop
    "reference": {"lnlstm": 250e-6, "lngru": 250e-6, "default": 90e-6},
    "naive": {"lnlstm": 350e-6, "lngru": 350e-6, "default": 150e-6},
    "twin": {"default": 40e-6},
}
ROW_FIXED_S = 0.1  # building the contenders, the agreement bookkeeping, gc: per row
SLOW_STEP_S = 1.0
# How the plan marks what it leaves out (the report's tables show "slow" and "cut").
SLOW_MARK = "slow"
BUDGET_MARK = "cut to fit the time budget"
ROW_SECONDS = 2.5  # timed rounds per row, all contenders together
MIN_ROUNDS, MAX_ROUNDS = 3, 15
QUICK_ROUNDS = 3


def _config(cell: str, batch: int, steps: int, hidden: int) -> LayerConfig:
    width = max(8, hidden // 4)
    return LayerConfig(
        cell, batch, steps, width, hidden, output_size=width if cell == "jordan" else 0
    )


def full_grid(cell: str) -> list[LayerConfig]:
    return [_config(cell, b, t, h) for b in GRID_B for t in GRID_T for h in GRID_H]


def latin_subset(cell: str) -> list[LayerConfig]:
    return [
        _config(cell, b, GRID_T[(bi + hi) % len(GRID_T)], h)
        for bi, b in enumerate(GRID_B)
        for hi, h in enumerate(GRID_H)
    ]


def diagonal_subset(cell: str) -> list[LayerConfig]:
    n = len(GRID_H)
    pairs = [(bi, hi) for bi in range(len(GRID_B)) for hi in range(n) if hi in (bi, n - 1 - bi)]
    return [
        _config(cell, GRID_B[bi], GRID_T[k % len(GRID_T)], GRID_H[hi])
        for k, (bi, hi) in enumerate(pairs)
    ]


def target_sizes(cell: str) -> list[LayerConfig]:
    return [
        LayerConfig(cell, b, t, i, h, output_size=max(8, h // 4) if cell == "jordan" else 0)
        for b, t, i, h in TARGET_SIZES
    ]


DESIGNS = {
    "targets": target_sizes,
    "full": full_grid,
    "latin": latin_subset,
    "diagonal": diagonal_subset,
}


def suite_configs(cells, grid: str | None = None) -> list[LayerConfig]:
    """The train-step configurations for `cells` (the target sizes, or `grid` for all), small
    rows first so that a budget cut falls on the largest."""
    configs = []
    for cell in cells:
        configs += DESIGNS[grid or "targets"](cell)
    return sorted(configs, key=lambda c: (c.flops, c.steps))


def quick_configs(cells) -> list[LayerConfig]:
    """One tiny row per cell: seconds, for CI; the figures mean little."""
    return [
        LayerConfig(cell, 4, 12, 8, 32, output_size=8 if cell == "jordan" else 0) for cell in cells
    ]


@cache
def available_backends(cell: str) -> dict[str, str | None]:
    """For each rnnkit backend: None if it can run `cell` in float32, else the one-line reason."""

    probe = LayerConfig(cell, 1, 1, 2, 2, output_size=2 if cell == "jordan" else 0)
    reasons: dict[str, str | None] = {}
    for backend in ("compiled", "reference", "native"):
        try:
            make_layer(probe, backend, torch.float32)
            reasons[backend] = None
        except (NotImplementedError, ValueError) as error:
            reasons[backend] = why_not(error)
    return reasons


def estimate_step_seconds(config: LayerConfig, contender: str, peak_gflops: float) -> float:
    """Estimated time of one training step of `contender` on `config` (the cost model above)."""
    overheads = STEP_OVERHEAD_S[contender]
    overhead = overheads.get(config.cell, overheads["default"])
    return config.flops / (RATE[contender] * peak_gflops * 1e9) + config.steps * overhead


@dataclass
class PlannedRow:
    """One row to time: which contenders, how many rounds, and what was left out and why."""

    config: LayerConfig
    contenders: tuple[str, ...]
    rounds: int
    warmup: int
    step_estimates_s: dict[str, float]
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def estimate_s(self) -> float:
        """Agreement check + warm-up + rounds, every contender, and the row's fixed cost."""
        runs = 1 + self.warmup + self.rounds
        return ROW_FIXED_S + runs * sum(self.step_estimates_s[c] for c in self.contenders)


def _planned(
    config: LayerConfig, names, peak_gflops: float, quick: bool, rounds: int | None
) -> PlannedRow:
    available = available_backends(config.cell)
    estimates, chosen, left_out = {}, [], {}
    for name in names:
        if available.get(name):
            left_out[name] = available[name]
            continue
        estimates[name] = estimate_step_seconds(config, name, peak_gflops)
        slow = estimates[name] > SLOW_STEP_S and not quick
        if name == "twin" and config.cell not in TWINS:
            continue
        if name in ("naive", "reference") and config.cell in STANDARD_CELLS and slow:
            left_out[name] = f"{SLOW_MARK}: about {estimates[name]:.1f} s per step (estimate)"
            continue
        chosen.append(name)
    round_s = sum(estimates[c] for c in chosen) or 1e-3
    if rounds is None:
        rounds = QUICK_ROUNDS if quick else int(ROW_SECONDS / round_s)
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, rounds))
    warmup = 1 if quick or round_s < 2.0 else 0  # the agreement check is a warm-up too
    return PlannedRow(config, tuple(chosen), rounds, warmup, estimates, left_out)


def plan_rows(
    configs,
    peak_gflops: float,
    budget_s: float | None,
    *,
    quick: bool = False,
    rounds: int | None = None,
    contenders=CONTENDERS,
) -> tuple[list[PlannedRow], list[str]]:
    """Plan every config (module docstring); returns the rows and notes on what was cut."""
    rows = [_planned(c, contenders, peak_gflops, quick, rounds) for c in configs]
    notes: list[str] = []
    total = sum(r.estimate_s for r in rows)
    if budget_s is None or total <= budget_s or rounds is not None:
        return rows, notes
    # 1) fewer rounds, proportionally, never below MIN_ROUNDS
    scale = budget_s / total
    for row in rows:
        row.rounds = max(MIN_ROUNDS, int(row.rounds * scale))
    notes.append(f"rounds scaled by {scale:.2f} to fit the budget (at least {MIN_ROUNDS})")
    # 2) the informational reference contender, largest rows first
    for row in sorted(rows, key=lambda r: -r.estimate_s):
        if sum(r.estimate_s for r in rows) <= budget_s:
            break
        has_other = any(c in row.contenders for c in ("native", "naive"))
        if "reference" in row.contenders and "compiled" in row.contenders and has_other:
            row.contenders = tuple(c for c in row.contenders if c != "reference")
            row.left_out["reference"] = BUDGET_MARK
    if any(r.left_out.get("reference") == BUDGET_MARK for r in rows):
        notes.append("reference left out of the largest rows to fit the budget")
    return rows, notes
