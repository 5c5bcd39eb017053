"""Recurrence cells: one module per cell, each a reference step forward and a hand-derived step
backward, its compiled row step (CellKernel) and its textbook equations, registered by name in
rnnkit.cells.registry (importing a cell module registers it)."""

from .base import Cell, CellKernel
from .elman import ElmanCell
from .gru import GRUCell
from .indrnn import IndRNNCell
from .jordan import JordanCell
from .layernorm_gru import LayerNormGRUCell
from .layernorm_lstm import LayerNormLSTMCell
from .lstm import LSTMCell
from .mingru import MinGRUCell
from .registry import CELLS, CellEntry, cell_entry, register_cell

__all__ = [
    "CELLS",
    "Cell",
    "CellEntry",
    "CellKernel",
    "ElmanCell",
    "GRUCell",
    "IndRNNCell",
    "JordanCell",
    "LSTMCell",
    "LayerNormGRUCell",
    "LayerNormLSTMCell",
    "MinGRUCell",
    "cell_entry",
    "register_cell",
]

# The registry lists the built-in cells in this order (the CLI's choices, the bench's rows);
# cells registered later (a user's) follow.
_ORDER = ("rnn", "lstm", "gru", "jordan", "lnlstm", "lngru", "indrnn", "mingru")
for _name in sorted(CELLS, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER)):
    CELLS[_name] = CELLS.pop(_name)
