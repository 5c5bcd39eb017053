"""The recurrent encoder the task models share: (embedded) inputs -> packed stacked (bi)RNN.

Shapes: B batch, T longest length, E input width, H hidden_size, D directions (2 if
bidirectional), L num_layers.

    features (B, T, E), lengths (B,) -> pack -> rnnkit layer stack -> outputs (B, T, D*H)
                                                                    (zero past each length)
                                                                  -> last (B, D*H)

`last` is the final state of the top layer: the forward direction's state after each
sequence's own last step and the backward direction's after its first step, which is what
packing buys over running padded batches (padding never enters a state).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from .._checks import BACKENDS, is_int, is_number
from ..layers import make_layer
from ..layers.lengths import pad_packed
from .language_model import CELLS


def check_encoder_args(owner: str, *, cell, hidden_size, num_layers, dropout, backend) -> None:
    """One-line errors for the settings every task model shares."""
    if cell not in CELLS:
        raise ValueError(f"{owner}: cell must be one of {', '.join(CELLS)}; got {cell!r}")
    for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers)):
        if not is_int(value) or value < 1:
            raise ValueError(f"{owner}: {name} must be an int >= 1; got {value!r}")
    if not is_number(dropout) or not 0 <= dropout < 1:
        raise ValueError(f"{owner}: dropout must be in [0, 1); got {dropout!r}")
    if backend not in BACKENDS:
        raise ValueError(f"{owner}: backend must be one of {', '.join(BACKENDS)}; got {backend!r}")


def make_recurrent(
    cell: str,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = True,
    dropout: float = 0.0,
    backend: str = "auto",
) -> nn.Module:
    """An rnnkit layer stack (batch_first), dropout between layers when there are several."""
    common = {
        "num_layers": num_layers,
        "batch_first": True,
        "dropout": float(dropout) if num_layers > 1 else 0.0,
        "bidirectional": bidirectional,
        "backend": backend,
    }
    # every cell hands on H features (Jordan's fed-back output y is H wide: its registry entry)
    return make_layer(cell, input_size, hidden_size, **common)


class RecurrentEncoder(nn.Module):
    """Packed variable-length sequences through a stacked (bi)directional rnnkit layer."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.directions = 2 if bidirectional else 1
        self.output_size = self.directions * hidden_size
        self.rnn = make_recurrent(
            cell,
            input_size,
            hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            backend=backend,
        )

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(outputs (B, T, D*H) zero-padded, last (B, D*H)) for features (B, T, E)."""
        total = features.shape[1]
        packed = pack_padded_sequence(
            features, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, state = self.rnn(packed)
        outputs = pad_packed(out, total)  # (B, T, DH)
        h = state[0] if isinstance(state, tuple) else state  # (L*D, B, H): LSTM's (h, c) -> h
        last = torch.cat(list(h[-self.directions :]), dim=-1)  # (B, D*H)
        return outputs, last


def length_mask(lengths: Tensor, total: int) -> Tensor:
    """(B, T) bool: True at the real steps of each sequence."""
    return torch.arange(total, device=lengths.device)[None, :] < lengths[:, None]
