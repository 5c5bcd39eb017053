"""Stacking and bidirection around any cell: the same for every recurrence.

Layer k of a stack reads the outputs of layer k-1 (both directions concatenated); each direction
of each layer is one sweep of the engine with its own weights and initial states; dropout falls
between layers in training mode and never after the last one (torch.nn's rule).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells.base import Cell
from .reference import SweepSpec, sweep

__all__ = ["run_stack"]

Weights = tuple[Tensor | None, ...]  # (w_ih, w_hh, b_ih, b_hh, w_out, b_out)


def run_stack(
    cell: Cell,
    weights_for: Callable[[int, int], Weights],
    data: Tensor,
    batch_sizes: tuple[int, ...],
    states: tuple[Tensor, ...],
    *,
    num_layers: int,
    bidirectional: bool,
    dropout: float = 0.0,
    training: bool = False,
    sweep_fn: Callable = sweep,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run a stack of recurrent layers over packed data (N, I).

    states: the initial (r, *carried) states, each (L * D, B, width), index layer * D + direction.
    weights_for(layer, direction) gives that sweep's weights; sweep_fn runs one sweep (the
    reference engine's `sweep` or the compiled engine's, which share a signature).
    Returns the last layer's outputs (N, D * R) and the final states in the same layout as
    `states`.
    """
    directions = 2 if bidirectional else 1
    finals: list[list[Tensor]] = [[] for _ in states]
    layer_input = data
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            spec = SweepSpec(cell, batch_sizes, reverse=direction == 1)
            out, r_final, carried_final = sweep_fn(
                spec,
                layer_input,
                states[0][index],
                tuple(s[index] for s in states[1:]),
                weights_for(layer, direction),
            )
            outputs.append(out)
            for collected, final in zip(finals, (r_final, *carried_final), strict=True):
                collected.append(final)
        layer_input = outputs[0] if directions == 1 else torch.cat(outputs, dim=1)
        if dropout > 0 and training and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, p=dropout, training=True)
    return layer_input, tuple(torch.stack(f) for f in finals)
