"""Gradient flow through time: how much of a loss's gradient reaches each step's state.

Seed 001's lesson, measured: for a loss at the last step, ‖∂L/∂h_t‖ shrinks (or grows) with the
distance from the end by the product of the step Jacobians, geometrically for a plain RNN and
far less for gated cells. The numbers come from the engine's own backward sweep, which forms
dL/dr_t at every step anyway (rnnkit.engine.probes): one forward and one backward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from ..engine.probes import listening
from ._layers import check_layer, on_own_engine, time_first

__all__ = ["default_loss", "gradient_flow"]

OWNER = "gradient_flow"


def default_loss(output: Tensor, *, batch_first: bool = False, seed: int = 0) -> Tensor:
    """The last step's output against fixed random unit vectors, one per sequence:
    L = Σ_b <o_{T,b}, u_b>, u_b ~ uniform on the unit sphere (drawn from `seed`), so every
    unit of the last output gets a gradient and no direction is preferred."""
    if isinstance(output, PackedSequence):
        raise TypeError(f"{OWNER}: default_loss takes a padded output; pass loss_fn for packed")
    out = output.transpose(0, 1) if batch_first and output.dim() == 3 else output
    last = out[-1]  # (B, F) or (F,) for an unbatched sequence
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(last.shape, generator=generator, dtype=torch.float64).to(last)
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    return (last * u).sum()


def _packed_default_loss(layer, output: PackedSequence) -> Tensor:
    """default_loss at each sequence's own last step."""
    padded, lengths = time_first(layer, output)
    last = padded[lengths - 1, torch.arange(padded.shape[1])]  # (B, F)
    return default_loss(last.unsqueeze(0))


def gradient_flow(
    layer,
    input,
    loss_fn: Callable[[Tensor], Tensor] | None = None,
    *,
    hx=None,
    lengths: Tensor | None = None,
) -> Tensor:
    """‖∂L/∂r_t‖ (over the batch and the units) at every step t, for every layer and direction
    of `layer`: a (num_layers * num_directions, T) tensor, row layer * D + direction, columns in
    time order (for the reverse direction too, whose gradient enters at t = 0). r is the
    layer's recurrent vector: the hidden state h (y for a Jordan network).

    `input` is what the layer takes (padded, batch_first as the layer says, or packed), `hx` and
    `lengths` as in the layer's call. `loss_fn(output)` receives `layer(input)[0]` and returns a
    scalar; by default it is `default_loss` (the last step's output against fixed random unit
    vectors). The layer runs in eval mode on an rnnkit engine (torch's kernel does not show
    its per-step gradients; the compiled engine where it serves the cell, else the reference
    one); no parameter's .grad is touched. A sweep the loss does not depend on gets zeros.
    """
    layer = check_layer(OWNER, layer)
    if isinstance(input, PackedSequence):
        leaf = input.data.detach().requires_grad_(True)
        given = input._replace(data=leaf)
    elif isinstance(input, Tensor):
        if not input.is_floating_point():
            raise TypeError(
                f"{OWNER}: input must be a floating-point tensor (the layer's input features); "
                f"got {input.dtype}: embed token ids first"
            )
        leaf = input.detach().requires_grad_(True)
        given = leaf
    else:
        raise TypeError(
            f"{OWNER}: input must be a Tensor or PackedSequence; got {type(input).__name__}"
        )
    with on_own_engine(layer), torch.enable_grad(), listening() as probe:
        output = layer(given, hx) if lengths is None else layer(given, hx, lengths=lengths)
        output = output[0]
        if loss_fn is not None:
            loss = loss_fn(output)
        elif isinstance(output, PackedSequence):
            loss = _packed_default_loss(layer, output)
        else:
            loss = default_loss(output, batch_first=layer.batch_first)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(
                f"{OWNER}: loss_fn must return a scalar tensor; got "
                f"{tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__}"
            )
        torch.autograd.grad(loss, leaf, allow_unused=True)
    D = 2 if layer.bidirectional else 1
    if len(probe.sweeps) != layer.num_layers * D:
        raise RuntimeError(
            f"{OWNER}: expected {layer.num_layers * D} sweeps from {type(layer).__name__}, the "
            f"engine reported {len(probe.sweeps)}"
        )
    # a sweep the loss does not depend on (a direction loss_fn leaves out) got no gradient
    steps = len(probe.sweeps[0].batch_sizes)
    return torch.stack(
        [
            sweep.step_norms() if sweep.grad is not None else leaf.new_zeros(steps)
            for sweep in probe.sweeps
        ]
    )
