"""Suite "varlen": training steps on batches of sequences of different lengths.

A batch of B sequences with lengths drawn uniformly from [T/8, T] (the longest is T), in random
order (nothing sorted), is given three ways:

    compiled-packed   rnnkit, backend="compiled", a PackedSequence built in the step
                      (pack_padded_sequence(x, lengths, enforce_sorted=False))
    compiled-lengths  rnnkit, backend="compiled", the padded batch with layer(x, lengths=...)
    native-packed     torch.nn's kernel (backend="native") on the same PackedSequence

Outputs are compared padded, with the steps past each sequence's length zeroed, together with
the final states (each sequence's state at its own last step), the input gradient and the
weight gradients. The GFLOP/s count only the valid steps: flops(T, B) * sum(lengths) / (T B).
"""

from __future__ import annotations

import inspect
import sys
import time
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .contenders import LayerConfig, flatten, make_layer, why_not
from .plan import QUICK_ROUNDS, estimate_step_seconds
from .rows import measure_row, not_run_row
from .timing import Contender

__all__ = ["FULL_CONFIGS", "QUICK_CONFIGS", "SUITE", "lengths_for", "run_varlen"]

SUITE = "varlen"
FULL_CONFIGS = (
    LayerConfig("lstm", 32, 100, 64, 256),
    LayerConfig("lstm", 64, 500, 32, 128),
    LayerConfig("gru", 32, 100, 64, 256),
    LayerConfig("rnn", 32, 100, 64, 256),
)
QUICK_CONFIGS = (LayerConfig("lstm", 4, 12, 8, 16),)
RATIO_PAIRS = (
    ("compiled-packed", "native-packed"),
    ("compiled-lengths", "native-packed"),
    ("compiled-lengths", "compiled-packed"),
)
FULL_ROUNDS = 7


@dataclass(frozen=True)
class VarlenCase:
    config: LayerConfig
    lengths: Tensor  # (B,) int64, max == T, random order

    def to_dict(self) -> dict:
        lengths = self.lengths.tolist()
        return {
            **self.config.to_dict(),
            "label": f"{self.config.label} varlen",
            "lengths_min": min(lengths),
            "lengths_mean": sum(lengths) / len(lengths),
            "valid_fraction": sum(lengths) / (self.config.steps * self.config.batch),
        }

    @property
    def flops(self) -> int:
        valid = int(self.lengths.sum())
        return self.config.flops * valid // (self.config.steps * self.config.batch)


def lengths_for(batch: int, steps: int, seed: int) -> Tensor:
    """B lengths uniform in [max(1, T // 8), T], the longest exactly T, in random order."""
    generator = torch.Generator().manual_seed(seed + 7)
    low = max(1, steps // 8)
    lengths = torch.randint(low, steps + 1, (batch,), generator=generator)
    lengths[torch.randint(0, batch, (1,), generator=generator)] = steps
    return lengths


def accepts_lengths(layer) -> bool:
    """Whether the layer call takes `lengths=` (the padded variable-length path)."""
    return "lengths" in inspect.signature(layer.forward).parameters


def _masked(output: Tensor, mask: Tensor) -> Tensor:
    return output * mask


def build_varlen_contenders(case: VarlenCase, seed: int = 0):
    """The three contenders (or fewer, with reasons), the shared padded input x (T, B, I)."""
    config, lengths = case.config, case.lengths
    torch.manual_seed(seed)
    dtype = getattr(torch, config.dtype)
    master = make_layer(config, "reference", dtype)
    x = torch.randn(config.steps, config.batch, config.input_size, dtype=dtype)
    x.requires_grad_()
    T = config.steps
    mask = (torch.arange(T).view(T, 1) < lengths.view(1, -1)).unsqueeze(-1).to(dtype)

    def packed_step(layer):
        def forward() -> tuple[Tensor, ...]:
            packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
            output, *finals = flatten(layer(packed))
            padded, _ = pad_packed_sequence(output, total_length=T)
            return (_masked(padded, mask), *finals)

        return forward

    def lengths_step(layer):
        def forward() -> tuple[Tensor, ...]:
            output, *finals = flatten(layer(x, lengths=lengths))
            return (_masked(output, mask), *finals)

        return forward

    contenders, unavailable = [], {}
    for name, backend, make_step in (
        ("compiled-packed", "compiled", packed_step),
        ("compiled-lengths", "compiled", lengths_step),
        ("native-packed", "native", packed_step),
    ):
        try:
            layer = make_layer(config, backend, dtype)
        except (NotImplementedError, ValueError) as error:
            unavailable[name] = why_not(error)
            continue
        if make_step is lengths_step and not accepts_lengths(layer):
            unavailable[name] = (
                f"{type(layer).__name__}(...)(x, lengths=...) is not available in this rnnkit "
                "yet; the padded variable-length path is not measured"
            )
            continue
        layer.load_state_dict(master.state_dict())
        contenders.append(Contender(name, make_step(layer), list(layer.parameters())))
    return contenders, x, unavailable


def run_varlen(
    *,
    quick: bool = False,
    seed: int = 0,
    rounds: int | None = None,
    peak_gflops: float | None = None,
    deadline: float | None = None,
    progress=sys.stderr,
) -> list[dict]:
    configs = QUICK_CONFIGS if quick else FULL_CONFIGS
    rounds = rounds or (QUICK_ROUNDS if quick else FULL_ROUNDS)
    results = []
    for index, config in enumerate(configs, 1):
        case = VarlenCase(config, lengths_for(config.batch, config.steps, seed))
        if deadline is not None and time.monotonic() > deadline:
            results.append(not_run_row(SUITE, case.to_dict(), "time budget exhausted"))
            continue
        if progress is not None:
            print(
                f"  [{SUITE} {index}/{len(configs)}] {config.label} x {rounds} rounds",
                file=progress,
                flush=True,
            )
        contenders, x, unavailable = build_varlen_contenders(case, seed)
        names = [c.name for c in contenders]
        if "native-packed" not in names:
            results.append(not_run_row(SUITE, case.to_dict(), "no torch.nn kernel", unavailable))
            continue
        results.append(
            measure_row(
                SUITE,
                case.to_dict(),
                contenders,
                [x],
                oracle="native-packed",
                ratio_pairs=RATIO_PAIRS,
                rounds=rounds,
                warmup=1,
                seed=seed,
                flops=case.flops,
                peak_gflops=peak_gflops,
                left_out=unavailable,
            )
        )
    return results


def estimate_seconds(quick: bool, peak_gflops: float, rounds: int | None = None) -> float:
    """Rough time of the suite: three contenders at the compiled/native cost model."""
    configs = QUICK_CONFIGS if quick else FULL_CONFIGS
    runs = 2 + (rounds or (QUICK_ROUNDS if quick else FULL_ROUNDS))
    per_step = sum(
        2 * estimate_step_seconds(c, "compiled", peak_gflops)
        + estimate_step_seconds(c, "native", peak_gflops)
        for c in configs
    )
    return 0.6 * runs * per_step  # about 60% of the steps are valid
