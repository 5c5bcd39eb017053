"""What every diagnostic does with the layer it is given: check it, run it on an rnnkit engine,
and put its output time first."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..engine.compiled import cannot_compile
from ..layers.dispatch import Choice
from ..layers.recurrent import Recurrent


def check_layer(owner: str, layer) -> Recurrent:
    """The layer itself, or a one-line error for anything that is not an rnnkit layer."""
    if isinstance(layer, Recurrent):
        return layer
    if isinstance(layer, torch.nn.RNNBase):
        name = type(layer).__name__
        raise TypeError(
            f"{owner}: layer must be an rnnkit recurrent layer; got torch.nn.{name}, whose "
            f"kernel shows no per-step gradients: build rnnkit.{name} with the same sizes and "
            f"load_state_dict(layer.state_dict()) into it"
        )
    raise TypeError(
        f"{owner}: layer must be an rnnkit recurrent layer (rnnkit.Recurrent, rnnkit.LSTM, "
        f"rnnkit.GRU, ...); got {type(layer).__name__}"
    )


def own_engine(layer: Recurrent) -> str:
    """The rnnkit engine a diagnostic runs the layer on: the one it asked for, else the compiled
    engine where it serves the cell, else the reference engine (never torch's kernel, whose
    backward keeps its per-step gradients to itself)."""
    if layer.backend in ("compiled", "reference"):
        return layer.backend
    weight = layer.reference_weight()
    return (
        "compiled"
        if cannot_compile(layer.cell, weight.dtype, weight.device) is None
        else ("reference")
    )


@contextlib.contextmanager
def on_own_engine(layer: Recurrent):
    """Run the block with the layer on `own_engine(layer)`, in eval mode (no dropout between
    layers, so the numbers are the layer's and not a draw); restores both after."""
    backend, training = layer.backend, layer.training
    engine = "scan" if layer.__dict__.get("scan") else own_engine(layer)
    try:
        if engine != "scan" and backend != engine:
            layer.backend = engine
        layer.eval()
        yield engine
    finally:
        choice = layer.__dict__.get("_last_choice")
        if layer.backend != backend:
            layer.backend = backend  # forgets the choice made in the block: say it again
            if choice is not None:
                layer.__dict__["_last_choice"] = Choice(
                    choice.backend,
                    "rnnkit.diagnostics ran the layer on rnnkit's own engine, whose backward "
                    "shows the gradient at every step (torch's kernel does not)",
                )
        layer.train(training)


def time_first(layer: Recurrent, output) -> tuple[Tensor, Tensor | None]:
    """A layer call's output as (T, B, F), with the sequences' lengths for a packed one."""
    if isinstance(output, PackedSequence):
        padded, lengths = pad_packed_sequence(output)
        return padded, lengths
    if output.dim() == 2:  # an unbatched sequence (T, F)
        return output.unsqueeze(1), None
    return (output.transpose(0, 1) if layer.batch_first else output), None
