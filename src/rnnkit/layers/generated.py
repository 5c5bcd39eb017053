"""Layers for the registered cells that have no hand-written layer (rnnkit.IndRNN, MinGRU, and
any cell a user registers): a Recurrent subclass made from the registry entry.

The class takes rnnkit's common layer arguments, `scan=` for a cell with a linear recurrence,
and the entry's cell options as keywords (e.g. IndRNN(..., nonlinearity="tanh")); its docstring
is the cell module's. `make_layer(name, input_size, hidden_size, **common)` builds the layer of
any registered cell by its --cell name, hand-written or made here.
"""

from __future__ import annotations

import sys

from ..cells import CELLS, CellEntry, cell_entry
from .recurrent import Recurrent

__all__ = ["layer_class", "make_layer"]

_MADE: dict[str, type] = {}


def _check_options(entry: CellEntry, options: dict) -> dict:
    """The cell's options with defaults filled in; a one-line error for an unknown or
    disallowed one."""
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        known = ", ".join(entry.options) or "none"
        raise TypeError(f"{entry.layer}: unknown option {unknown[0]!r} (options: {known})")
    chosen = {}
    for name, allowed in entry.options.items():
        value = options.get(name, allowed[0])
        if value not in allowed:
            raise ValueError(
                f"{entry.layer}: {name} must be one of {', '.join(map(repr, allowed))}; got "
                f"{value!r}"
            )
        chosen[name] = value
    return chosen


def _made_layer(entry: CellEntry) -> type:
    def construct(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        backend: str = "auto",
        device=None,
        dtype=None,
        *,
        scan: bool = False,
        **options,
    ) -> None:
        chosen = _check_options(entry, options)
        Recurrent.__init__(
            self,
            entry.cell(**chosen),
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
            scan=scan,
            device=device,
            dtype=dtype,
        )
        self.cell_options = chosen

    def _make_cell(self):
        return entry.cell(**self.cell_options)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        s += "".join(f", {k}={v!r}" for k, v in self.cell_options.items())
        if self.scan:
            s += ", scan=True"
        return s + self._options_repr()

    doc = sys.modules[entry.cell.__module__].__doc__ or entry.summary
    namespace = {
        "__init__": construct,
        "_make_cell": _make_cell,
        "extra_repr": extra_repr,
        "__doc__": f"{entry.summary}.\n\n{doc}\nLayer arguments as rnnkit.Recurrent's.",
        "__module__": "rnnkit.layers",
    }
    return type(entry.layer, (Recurrent,), namespace)


def layer_class(name: str) -> type:
    """The layer class of the registered cell `name` (hand-written or made here)."""
    entry = cell_entry(name)
    from . import torch_layers, jordan, layernorm  # noqa: I001 (the hand-written layers)

    for module in (torch_layers, jordan, layernorm):
        if hasattr(module, entry.layer):
            return getattr(module, entry.layer)
    if entry.layer not in _MADE:
        _MADE[entry.layer] = _made_layer(entry)
    return _MADE[entry.layer]


def make_layer(name: str, input_size: int, hidden_size: int, **common) -> Recurrent:
    """The layer of the registered cell `name` (its --cell value) with rnnkit's common keyword
    arguments (num_layers, bias, batch_first, dropout, bidirectional, backend, device, dtype)."""
    entry = cell_entry(name)
    return layer_class(name)(*entry.layer_args(input_size, hidden_size), **common)


def made_layers() -> dict[str, type]:
    """The layer classes made for every registered cell without a hand-written layer."""
    return {CELLS[name].layer: layer_class(name) for name in CELLS}
