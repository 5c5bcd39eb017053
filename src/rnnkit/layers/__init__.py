"""Recurrent layers: rnnkit.Recurrent (any cell as a layer) and the built-in layers over it.

`RNN`, `LSTM` and `GRU` subclass torch.nn's classes and change only dispatch; `JordanRNN`,
`LayerNormLSTM` and `LayerNormGRU` are rnnkit's own. Every layer takes `backend=`:

    "native"     torch's own kernel (RNN, LSTM, GRU)
    "reference"  rnnkit's engine in plain torch ops, every step and gradient explicit
    "compiled"   rnnkit's compiled engine: the cell's C++ row step in one generic sweep
    "auto"       per call, the fastest backend that serves it (rnnkit.layers.dispatch);
                 layer.explain() says which ran and why

The built-in layers are declared safe for torch.load(weights_only=True): their pickles hold
tensors and plain values only (no cell, no cached plan), so a whole model saved with torch.save
loads once the client's own classes are allowlisted, as with torch.nn.LSTM.
"""

import torch

from .dropout import Dropout
from .generated import layer_class, made_layers, make_layer
from .jordan import JordanRNN
from .layernorm import LayerNormGRU, LayerNormLSTM
from .recurrent import Recurrent
from .streaming import LayerStream
from .torch_layers import GRU, LSTM, RNN

# one layer class per registered cell; those without a hand-written layer are made here
LAYERS = made_layers()
IndRNN = LAYERS["IndRNN"]
MinGRU = LAYERS["MinGRU"]

__all__ = [
    "GRU",
    "LAYERS",
    "LSTM",
    "RNN",
    "Dropout",
    "IndRNN",
    "JordanRNN",
    "LayerNormGRU",
    "LayerNormLSTM",
    "LayerStream",
    "MinGRU",
    "Recurrent",
    "layer_class",
    "make_layer",
]

torch.serialization.add_safe_globals([*LAYERS.values(), Dropout])
