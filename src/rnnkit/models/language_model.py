"""A token-level language model: input encoding -> recurrent stack -> dropout -> linear head.

Shapes: B batch, T time steps, V vocabulary size, E embedding_dim (V for one-hot input),
H hidden_size, L num_layers.

    ids (B, T) -> embedding (B, T, E) -> layers (B, T, H) -> dropout -> head -> logits (B, T, V)

The recurrent stack is one rnnkit layer (`RNN`, `GRU`, `LSTM` or `JordanRNN`, batch_first) whose
`num_layers` and `dropout` give stacking and dropout between layers. A Jordan network feeds back
its output y_t, whose width is set to H, so every cell hands the head an H-wide feature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .._checks import BACKENDS, dataclass_from_dict, is_int, is_number
from ..cells import CELLS as _REGISTRY
from ..data import OneHot
from ..layers import Dropout, make_layer

CELLS = tuple(_REGISTRY)  # every registered cell: rnn, lstm, gru, jordan, lnlstm, lngru, ...

State = Tensor | tuple[Tensor, ...]


@dataclass
class LanguageModelConfig:
    """Architecture of a `LanguageModel`; everything needed to rebuild it before loading weights."""

    vocab_size: int
    cell: str = "lstm"  # one of CELLS (rnnkit.cells.registry): "rnn" (tanh Elman), "lstm", ...
    embedding_dim: int = 64  # learned embedding width; 0 feeds one-hot vectors (width V)
    hidden_size: int = 256  # H: state width of every layer
    num_layers: int = 1  # L: stacked layers
    dropout: float = 0.0  # between stacked layers and before the head
    tie_weights: bool = False  # share the embedding matrix with the head (needs E == H)
    backend: str = "auto"  # rnnkit backend of the layers: "auto", "native", "reference"
    # the cell's activation where it has a choice (rnn, jordan, indrnn); None: the cell's own
    nonlinearity: str | None = None

    def __post_init__(self) -> None:
        _check_config(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LanguageModelConfig:
        if isinstance(data, dict):
            # Models saved before initialization moved to the trainer (rnnkit.initializers)
            # recorded how they were initialized; a trained model's weights say it all.
            data = {k: v for k, v in data.items() if k not in _INIT_KEYS}
        return dataclass_from_dict(cls, data, "model config")


_INIT_KEYS = ("recurrent_init", "forget_bias")


def _check_int(name: str, value, minimum: int) -> None:
    if not is_int(value):
        raise TypeError(f"LanguageModel: {name} must be an int; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"LanguageModel: {name} must be >= {minimum}; got {value}")


def _check_config(config: LanguageModelConfig) -> None:
    _check_int("vocab_size", config.vocab_size, 1)
    _check_int("embedding_dim", config.embedding_dim, 0)
    _check_int("hidden_size", config.hidden_size, 1)
    _check_int("num_layers", config.num_layers, 1)
    if config.cell not in CELLS:
        raise ValueError(
            f"LanguageModel: cell must be one of {', '.join(CELLS)}; got {config.cell!r}"
        )
    dropout = config.dropout
    if not is_number(dropout) or not 0 <= dropout < 1:
        raise ValueError(f"LanguageModel: dropout must be in [0, 1); got {dropout!r}")
    if not isinstance(config.tie_weights, bool):
        raise TypeError("LanguageModel: tie_weights must be True or False")
    if config.backend not in BACKENDS:
        raise ValueError(
            f"LanguageModel: backend must be one of {', '.join(BACKENDS)}; got {config.backend!r}"
        )
    choices = _REGISTRY[config.cell].options.get("nonlinearity")
    if config.nonlinearity is not None and config.nonlinearity not in (choices or ()):
        allowed = f"one of {', '.join(choices)}" if choices else "None (the cell has no choice)"
        raise ValueError(
            f"LanguageModel: nonlinearity of cell {config.cell!r} must be {allowed}; got "
            f"{config.nonlinearity!r}"
        )
    if config.tie_weights and config.embedding_dim != config.hidden_size:
        raise ValueError(
            "LanguageModel: tie_weights needs embedding_dim == hidden_size (the head reads "
            f"H-wide features into the embedding matrix); got embedding_dim="
            f"{config.embedding_dim}, hidden_size={config.hidden_size}"
        )


def _make_layers(config: LanguageModelConfig, input_size: int) -> nn.Module:
    """The recurrent stack, batch_first, with dropout between layers when there are several."""
    between = float(config.dropout) if config.num_layers > 1 else 0.0
    common = {
        "num_layers": config.num_layers,
        "batch_first": True,
        "dropout": between,
        "backend": config.backend,
    }
    nonlinearity = getattr(config, "nonlinearity", None)  # other models reuse this stack
    if nonlinearity is not None:
        common["nonlinearity"] = nonlinearity
    return make_layer(config.cell, input_size, config.hidden_size, **common)


def _check_ids(ids) -> None:
    if not isinstance(ids, Tensor):
        raise TypeError(
            f"LanguageModel: ids must be a (B, T) long tensor; got {type(ids).__name__}"
        )
    if ids.dim() != 2 or ids.dtype != torch.long:
        raise ValueError(
            "LanguageModel: ids must be a (B, T) long tensor; got "
            f"{ids.dtype} tensor of shape {tuple(ids.shape)}"
        )


class LanguageModel(nn.Module):
    """Predicts the next token at every position.

    Call: (ids (B, T) long, state=None) -> (logits (B, T, V), state). `state` is the layer
    stack's: (h, c) each (L, B, H) for LSTM, one (L, B, H) tensor for the other cells; None
    starts from zeros. Carry it (detached) across consecutive windows for truncated BPTT.
    """

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        self.config = config
        V, E, H = config.vocab_size, config.embedding_dim, config.hidden_size
        self.embedding = nn.Embedding(V, E) if E > 0 else OneHot(V)
        # torch.nn's initialization; the trainer applies the run's scheme (rnnkit.initializers)
        self.layers = _make_layers(config, E if E > 0 else V)
        self.dropout = Dropout(config.dropout)  # torch's, with the compiled mask
        self.head = nn.Linear(H, V)
        if config.tie_weights:
            self.head.weight = self.embedding.weight  # (V, H) == (V, E)

    @property
    def tied(self) -> bool:
        return self.config.tie_weights

    def begin_state(self, batch_size: int, device=None) -> State:
        """Zero initial state for `batch_size` sequences."""
        weight = self.head.weight
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        zeros = lambda: torch.zeros(shape, dtype=weight.dtype, device=device or weight.device)  # noqa: E731
        carried = getattr(self.layers, "cell", None)
        if carried is not None and carried.num_carried:
            return (zeros(), *(zeros() for _ in range(carried.num_carried)))
        return zeros()

    def forward(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        _check_ids(ids)
        features = self.embedding(ids)  # (B, T, E)
        output, state = self.layers(features, state)  # (B, T, H)
        logits = self.head(self.dropout(output))  # (B, T, V)
        return logits, state
