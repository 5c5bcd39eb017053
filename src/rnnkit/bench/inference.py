"""Suite "inference": the forward pass without gradients, rnnkit against torch.nn.

For the cells torch has a kernel for, at the target sizes (rnnkit.bench.plan): the layer with
backend="compiled", the same layer with backend="auto" (what a user gets) and torch.nn's own
kernel, with identical weights, under torch.no_grad(). Outputs are compared with torch's first
(a contender that differs by more than the tolerance is refused); then interleaved rounds.
"""

from __future__ import annotations

import sys

import torch

from .contenders import STANDARD_CELLS, LayerConfig, flatten, make_layer
from .plan import MIN_ROUNDS, target_sizes
from .rows import ratio_key
from .timing import (
    AGREEMENT_TOLERANCE,
    BUSY_SHARE,
    Contender,
    cpu_ticks,
    others_share,
    paired_ratio,
    time_interleaved,
)

__all__ = ["SUITE", "run_inference"]

SUITE = "inference"
CONTENDERS = ("compiled", "auto", "native")
RATIO_PAIRS = (("compiled", "native"), ("auto", "native"))
ROW_SECONDS = 1.5


def _relative(a, b) -> float:
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        worst = max(worst, (x - y).abs().max().item() / max(1.0, y.abs().max().item()))
    return worst


def _row(config: LayerConfig, seed: int, rounds: int | None) -> dict:
    torch.manual_seed(seed)
    master = make_layer(config, "native", torch.float32).eval()
    x = torch.randn(config.steps, config.batch, config.input_size)
    contenders, layers = [], {}
    for name in CONTENDERS:
        layer = layers[name] = make_layer(config, name, torch.float32).eval()
        layer.load_state_dict(master.state_dict())
        contenders.append(Contender(name, lambda layer=layer: flatten(layer(x)), []))
    with torch.no_grad():
        expected = contenders[-1].forward()
        differences = {c.name: _relative(c.forward(), expected) for c in contenders[:-1]}
        refused = {n: d for n, d in differences.items() if not d <= AGREEMENT_TOLERANCE}
        timed = [c for c in contenders if c.name not in refused]
        if rounds is None:  # from one pass of each: ROW_SECONDS of rounds, 3 to 15
            import time

            start = time.perf_counter()
            for c in timed:
                c.forward()
            once = time.perf_counter() - start
            rounds = max(MIN_ROUNDS, min(15, int(ROW_SECONDS / max(once, 1e-6))))
        before = cpu_ticks()
        timings = time_interleaved(timed, lambda c: c.forward(), [], rounds, 1)
        share = others_share(before, cpu_ticks())
    ratios = {}
    for fast, slow in RATIO_PAIRS:
        if fast in timings and slow in timings:
            median, q1, q3 = paired_ratio(timings[slow], timings[fast])
            ratios[ratio_key(fast, slow)] = {"median": median, "q1": q1, "q3": q3}
    return {
        "suite": SUITE,
        "config": config.to_dict(),
        "status": "ok",
        "contenders": [c.name for c in timed],
        "left_out": {},
        "agreement": {
            "oracle": "native",
            "tolerance": AGREEMENT_TOLERANCE,
            "max_relative_difference": differences,
            "refused": refused,
        },
        "rounds": rounds,
        "timings": {name: t.to_dict() for name, t in timings.items()},
        "ratios": ratios,
        "auto_ran": layers["auto"].resolved_backend,
        "others_cpu_share": share,
        "busy": share is not None and share > BUSY_SHARE,
    }


def run_inference(
    cells, *, quick: bool = False, seed: int = 0, rounds: int | None = None, progress=sys.stderr
) -> list[dict]:
    rows = []
    for cell in cells:
        if cell not in STANDARD_CELLS:
            continue
        configs = [LayerConfig(cell, 4, 12, 8, 32)] if quick else target_sizes(cell)
        for index, config in enumerate(configs, 1):
            if progress is not None:
                print(f"  [{SUITE} {cell} {index}/{len(configs)}] {config.label}", file=progress)
            rows.append(_row(config, seed, 3 if quick else rounds))
    return rows
