"""Weight initializers for rnnkit's recurrent layers.

The layers start as torch.nn's do (every weight uniform in ±1/sqrt(H)), so that they stay drop-in
replacements. The models (`LanguageModel`) then re-initialize the recurrent weights orthogonally,
as Keras does by default: an orthogonal matrix keeps the norm of the state it multiplies, so
gradients through time neither vanish nor explode at the start (Saxe et al., 2014). Measured on
tiny shakespeare, this trains a character LSTM to a lower loss in the same steps
(benchmarks/lm_sweep_results.md, "Third sweep").
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RECURRENT_INITS", "init_recurrent_"]

RECURRENT_INITS = ("orthogonal", "uniform")


@torch.no_grad()
def init_recurrent_(layer: nn.Module, kind: str = "orthogonal") -> nn.Module:
    """Re-initialize the hidden-to-hidden weights of an rnnkit or torch.nn RNN, GRU or LSTM layer.

    kind "orthogonal": each gate's H x H block of every `weight_hh_l*` (both directions, every
    layer) becomes an independent random orthogonal matrix; "uniform": left as built (torch's
    default). Input weights and biases are not touched, nor are layers without `weight_hh_l*`
    parameters (a Jordan network's recurrence runs through its output weights). Returns `layer`.
    """
    if kind not in RECURRENT_INITS:
        raise ValueError(
            f"recurrent init must be one of {', '.join(RECURRENT_INITS)}; got {kind!r}"
        )
    if kind == "uniform":
        return layer
    hidden = layer.hidden_size
    for name, weight in layer.named_parameters():
        if name.startswith("weight_hh_l"):
            # the gates' (H, H) blocks are stacked along dim 0; a projected LSTM's blocks are
            # (H, P), made semi-orthogonal
            for block in weight.split(hidden):
                nn.init.orthogonal_(block)
    return layer
