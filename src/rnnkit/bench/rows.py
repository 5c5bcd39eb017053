"""One measured row: agreement check, interleaved timing, paired speedups, GFLOP/s.

Used by every suite that times training steps (train-step, varlen), so they report alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .timing import (
    AGREEMENT_TOLERANCE,
    BUSY_SHARE,
    Contender,
    check_agreement,
    cpu_ticks,
    others_share,
    paired_ratio,
    time_interleaved,
    train_step,
)

__all__ = ["fixed_grads", "measure_row", "not_run_row", "ratio_key"]


def ratio_key(fast: str, slow: str) -> str:
    """'compiled_vs_native': time_native / time_compiled, per round (above 1: compiled wins)."""
    return f"{fast}_vs_{slow}"


def fixed_grads(outputs: Sequence[Tensor], seed: int) -> tuple[Tensor, ...]:
    """Random dL/d(output), dL/d(final states): the projection every training step
    backpropagates, the same for every contender of a row."""
    generator = torch.Generator().manual_seed(seed + 1)
    return tuple(torch.randn(o.shape, generator=generator, dtype=o.dtype) for o in outputs)


def not_run_row(suite: str, config: dict, reason: str, left_out=None) -> dict:
    return {
        "suite": suite,
        "config": config,
        "status": f"not run: {reason}",
        "contenders": [],
        "left_out": dict(left_out or {}),
        "timings": {},
        "ratios": {},
    }


def measure_row(
    suite: str,
    config: dict,
    contenders: Sequence[Contender],
    inputs: Sequence[Tensor],
    *,
    oracle: str,
    ratio_pairs: Sequence[tuple[str, str]],
    rounds: int,
    warmup: int,
    seed: int = 0,
    flops: int | None = None,
    peak_gflops: float | None = None,
    left_out: dict[str, str] | None = None,
    tolerance: float = AGREEMENT_TOLERANCE,
    checked_in: tuple[Sequence[Contender], Sequence[Tensor]] | None = None,
) -> dict:
    """Check the contenders against `oracle`, time those that agree, and describe the row.

    A contender whose outputs or gradients differ from the oracle's by more than `tolerance`
    (relative) is refused: it is not timed and the row lists it with its difference.
    `checked_in`: (contenders, inputs) to check instead, the same computations in float64
    (where float32 rounding, amplified through a long sequence, would refuse a right one).
    """
    left_out = dict(left_out or {})
    by_name = {c.name: c for c in contenders}
    check_contenders, check_inputs = checked_in or (contenders, inputs)
    check_oracle = {c.name: c for c in check_contenders}[oracle]
    with torch.no_grad():
        check_grads = fixed_grads(check_oracle.forward(), seed)
    agreement = check_agreement(check_contenders, check_inputs, check_grads, oracle, tolerance)
    with torch.no_grad():
        grads = fixed_grads(by_name[oracle].forward(), seed)
    if checked_in is not None:  # the timed contenders' first step, as the check is otherwise
        for c in contenders:
            train_step(c, grads if c.checked else [torch.ones_like(o) for o in c.forward()])
    refused = agreement.refused
    timed = [c for c in contenders if c.name not in refused]
    before = cpu_ticks()
    own_grads = {
        c.name: tuple(torch.ones_like(o) for o in c.forward()) for c in timed if not c.checked
    }
    timings = time_interleaved(
        timed, lambda c: train_step(c, own_grads.get(c.name, grads)), inputs, rounds, warmup
    )
    share = others_share(before, cpu_ticks())
    ratios = {}
    for fast, slow in ratio_pairs:
        if fast in timings and slow in timings:
            median, q1, q3 = paired_ratio(timings[slow], timings[fast])
            ratios[ratio_key(fast, slow)] = {"median": median, "q1": q1, "q3": q3}
    row = {
        "suite": suite,
        "config": config,
        "status": "ok",
        "contenders": [c.name for c in timed],
        "left_out": left_out,
        "agreement": {
            "oracle": oracle,
            "dtype": "float64" if checked_in is not None else "as timed",
            "tolerance": tolerance,
            "max_relative_difference": agreement.differences,
            "refused": refused,
        },
        "rounds": rounds,
        "warmup": warmup,
        "timings": {name: t.to_dict() for name, t in timings.items()},
        "ratios": ratios,
        "others_cpu_share": share,
        "busy": share is not None and share > BUSY_SHARE,
    }
    if flops is not None:
        row["flops"] = flops
        row["gflops"] = {n: flops / (t.median * 1e-3) / 1e9 for n, t in timings.items()}
        if peak_gflops:
            row["percent_of_peak"] = {n: 100.0 * g / peak_gflops for n, g in row["gflops"].items()}
    return row
