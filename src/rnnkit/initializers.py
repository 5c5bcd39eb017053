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

__all__ = ["RECURRENT_INITS", "init_recurrent_", "shift_forget_bias_"]

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
        # matrices only: an IndRNN's weight_hh is a vector of per-unit recurrent weights
        if name.startswith("weight_hh_l") and weight.dim() == 2:
            # the gates' (H, H) blocks are stacked along dim 0; a projected LSTM's blocks are
            # (H, P), made semi-orthogonal
            for block in weight.split(hidden):
                nn.init.orthogonal_(block)
    return layer


@torch.no_grad()
def shift_forget_bias_(layer: nn.Module, shift: float) -> nn.Module:
    """Add `shift` to the forget-gate bias of every layer and direction of an LSTM.

    torch's gate order is (input, forget, cell, output), so the forget gate is rows H..2H of
    `bias_ih_l*`. Keras' `unit_forget_bias` adds +1 to remember longer from the start; a
    negative shift forgets faster, which measured better for short character-LM budgets
    (docs/benchmarks.md). Returns `layer`.
    """
    hidden = layer.hidden_size
    biases = [b for name, b in layer.named_parameters() if name.startswith("bias_ih_l")]
    if not biases:
        raise ValueError("shift_forget_bias_: the layer has no biases (built with bias=False)")
    for bias in biases:
        bias[hidden : 2 * hidden] += shift
    return layer
