"""Suite "scan": MinGRU's parallel scan over time against its step loop and torch's GRU.

A training step (forward + backward of a fixed projection, the input requiring grad) of
rnnkit.MinGRU(scan=True), of the same layer on the compiled step loop, and of torch.nn.GRU of
the same sizes (which computes a GRU, not a minGRU: timed beside, not compared), at T = 1024.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from ..layers import MinGRU
from .contenders import flatten
from .rows import measure_row
from .timing import Contender

__all__ = ["SIZES", "SUITE", "run_scan"]

SUITE = "scan"
SIZES = ((8, 1024, 32, 128), (32, 1024, 64, 256))  # (B, T, I, H)
RATIO_PAIRS = (("scan", "twin"), ("compiled", "twin"), ("scan", "compiled"))


def _row(batch, steps, inputs, hidden, seed: int, rounds: int) -> dict:
    torch.manual_seed(seed)
    sequential = MinGRU(inputs, hidden, backend="compiled")
    scan = MinGRU(inputs, hidden, scan=True)
    scan.load_state_dict(sequential.state_dict())
    gru = nn.GRU(inputs, hidden)
    x = torch.randn(steps, batch, inputs, requires_grad=True)
    contenders = [
        Contender("compiled", lambda: flatten(sequential(x)), list(sequential.parameters())),
        Contender("scan", lambda: flatten(scan(x)), list(scan.parameters())),
        Contender("twin", lambda: flatten(gru(x)), list(gru.parameters()), checked=False),
    ]
    config = {
        "cell": "mingru",
        "batch": batch,
        "steps": steps,
        "input_size": inputs,
        "hidden_size": hidden,
        "label": f"MinGRU B{batch} T{steps} I{inputs} H{hidden}",
    }
    return measure_row(
        SUITE,
        config,
        contenders,
        [x],
        oracle="compiled",
        ratio_pairs=RATIO_PAIRS,
        rounds=rounds,
        warmup=1,
        seed=seed,
    )


def run_scan(*, quick: bool = False, seed: int = 0, rounds=None, progress=sys.stderr):
    sizes = ((2, 64, 8, 16),) if quick else SIZES
    rows = []
    for index, size in enumerate(sizes, 1):
        if progress is not None:
            print(f"  [{SUITE} {index}/{len(sizes)}] MinGRU B{size[0]} T{size[1]}", file=progress)
        rows.append(_row(*size, seed, rounds or (3 if quick else 7)))
    return rows
