"""Recurrence cells: one module per cell, each a step forward and a hand-derived step backward."""

from .base import Cell
from .elman import ElmanCell
from .gru import GRUCell
from .jordan import JordanCell
from .layernorm_gru import LayerNormGRUCell
from .layernorm_lstm import LayerNormLSTMCell
from .lstm import LSTMCell

__all__ = [
    "Cell",
    "ElmanCell",
    "GRUCell",
    "JordanCell",
    "LSTMCell",
    "LayerNormGRUCell",
    "LayerNormLSTMCell",
]
