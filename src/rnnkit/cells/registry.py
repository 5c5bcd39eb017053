"""The registry of cells: every cell rnnkit ships, by the name the CLI and the configs use.

A cell registers itself at the end of its own module (`register_cell(...)`), and the package
imports every cell module, so adding a cell is its file plus that import. What reads the
registry: rnnkit.layers (a layer class for each cell that has no hand-written one, and
`make_layer(name, ...)`), the models' and the CLI's `--cell` choices, `rnnkit bench`'s rows,
and the tests, which run every registered cell through every engine without new test code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CELLS", "CellEntry", "cell_entry", "register_cell"]


@dataclass(frozen=True)
class CellEntry:
    """name: the --cell value. cell: the Cell class. layer: the public layer's name in rnnkit
    (rnnkit.layers makes the class when no hand-written layer exists). summary: one line for
    --help. options: the cell's constructor options and their allowed values, the first the
    default (e.g. {"nonlinearity": ("relu", "tanh")}). torch_twin: the torch.nn layer with the
    same math (the tests compare with it), or None. layer_args: (input_size, hidden_size) ->
    the layer's positional arguments (JordanRNN feeds back an output as wide as the hidden
    layer)."""

    name: str
    cell: type
    layer: str
    summary: str
    options: dict[str, tuple] = field(default_factory=dict)
    torch_twin: str | None = None
    layer_args: Callable[[int, int], tuple] = lambda input_size, hidden_size: (
        input_size,
        hidden_size,
    )


CELLS: dict[str, CellEntry] = {}


def register_cell(name: str, cell: type, **entry) -> CellEntry:
    """Add a cell to the registry (a name registered twice is an error)."""
    if name in CELLS:
        raise ValueError(f"a cell named {name!r} is registered already ({CELLS[name].cell})")
    CELLS[name] = CellEntry(name, cell, **entry)
    return CELLS[name]


def cell_entry(name: str, owner: str = "rnnkit") -> CellEntry:
    """The entry of `name`, or a one-line error listing the registered cells."""
    if name not in CELLS:
        raise ValueError(f"{owner}: cell must be one of {', '.join(CELLS)}; got {name!r}")
    return CELLS[name]
