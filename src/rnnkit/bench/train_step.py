"""Suite "train-step": forward + backward of one layer, rnnkit against torch.nn and a naive loop.

Each row is one LayerConfig (rnnkit.bench.plan chooses which, and how many rounds); its
contenders (rnnkit.bench.contenders) share weights and input; the step is
torch.autograd.backward((output, *final_states), fixed_grads) with the input requiring grad,
as for a layer inside a deeper network. Reported per row: median [q1-q3] ms per contender, the
paired speedups compiled vs native, compiled vs naive, reference vs native and reference vs
naive, GFLOP/s of every contender (rnnkit.bench.flops) and its share of the measured GEMM peak.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from .contenders import build_train_contenders, oracle_of
from .plan import MIN_ROUNDS, PlannedRow
from .rows import measure_row, not_run_row

__all__ = ["RATIO_PAIRS", "SUITE", "run_train_step"]

SUITE = "train-step"
RATIO_PAIRS = (
    ("compiled", "native"),
    ("compiled", "naive"),
    ("reference", "native"),
    ("reference", "naive"),
)


def run_row(row: PlannedRow, seed: int, peak_gflops: float | None) -> dict:
    contenders, x, unavailable = build_train_contenders(row.config, row.contenders, seed)
    # the agreement check runs on float64 twins: float32 rounding, amplified through a long
    # sequence (the layer-norm cells' normalized cell state), would refuse right contenders
    exact = dataclasses.replace(row.config, dtype="float64")
    check_contenders, check_x, _ = build_train_contenders(exact, row.contenders, seed)
    left_out = {**row.left_out, **unavailable}
    if not contenders:
        return not_run_row(SUITE, row.config.to_dict(), "no contender can run", left_out)
    result = measure_row(
        SUITE,
        row.config.to_dict(),
        contenders,
        [x],
        oracle=oracle_of([c.name for c in contenders]),
        ratio_pairs=RATIO_PAIRS,
        rounds=row.rounds,
        warmup=row.warmup,
        seed=seed,
        flops=row.config.flops,
        peak_gflops=peak_gflops,
        left_out=left_out,
        checked_in=(check_contenders, [check_x]),
    )
    result["estimate_s"] = row.estimate_s
    return result


EVIDENCE_S = 5.0  # estimated seconds of rows run before their pace is trusted


def _behind_schedule(spent: float, estimated: float) -> float:
    """How much slower than estimated the rows so far ran (1 when on or ahead of schedule, or
    before EVIDENCE_S of estimated work: the first tiny rows are all fixed costs)."""
    return max(1.0, spent / estimated) if estimated >= EVIDENCE_S else 1.0


def _fit_remaining(rows: list[PlannedRow], slowdown: float, seconds_left: float) -> None:
    """Cut the rounds of `rows` (never below MIN_ROUNDS) when, at the observed slowdown, they
    would overrun the seconds left."""
    projected = slowdown * sum(r.estimate_s for r in rows)
    if projected <= seconds_left:
        return
    scale = max(0.0, seconds_left) / projected
    for row in rows:
        row.rounds = max(MIN_ROUNDS, int(row.rounds * scale))


def run_train_step(
    rows: list[PlannedRow],
    *,
    seed: int = 0,
    peak_gflops: float | None = None,
    deadline: float | None = None,
    progress=sys.stderr,
) -> list[dict]:
    """Time every planned row within `deadline` (a time.monotonic() value).

    The plan's durations are estimates; when the rows run slower than estimated, the rounds of
    the rows still to come are cut (never below MIN_ROUNDS, and the row says so), and rows that
    would start after the deadline are reported as not run.
    """
    results = []
    spent = estimated = 0.0
    for index, row in enumerate(rows, 1):
        label = row.config.label
        now = time.monotonic()
        if deadline is not None and now > deadline:
            results.append(
                not_run_row(SUITE, row.config.to_dict(), "time budget exhausted", row.left_out)
            )
            continue
        planned_rounds = row.rounds
        if deadline is not None:
            _fit_remaining(rows[index - 1 :], _behind_schedule(spent, estimated), deadline - now)
        if progress is not None:
            print(
                f"  [{SUITE} {index}/{len(rows)}] {label}: {', '.join(row.contenders)} "
                f"x {row.rounds} rounds (est. {row.estimate_s:.1f} s)",
                file=progress,
                flush=True,
            )
        started = time.monotonic()
        result = run_row(row, seed, peak_gflops)
        if index > 1:  # the first row also pays for first calls (kernel cache loads)
            spent += time.monotonic() - started
            estimated += row.estimate_s
        if row.rounds != planned_rounds:
            result["rounds_cut"] = f"{planned_rounds} -> {row.rounds}: running behind the plan"
        results.append(result)
    return results
