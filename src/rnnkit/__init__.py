"""rnnkit: recurrent networks for PyTorch with explicit, checked backpropagation through time."""

from .layers import (
    GRU,
    LSTM,
    RNN,
    Dropout,
    IndRNN,
    JordanRNN,
    LayerNormGRU,
    LayerNormLSTM,
    MinGRU,
    Recurrent,
    make_layer,
)

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Dropout",
    "IndRNN",
    "JordanRNN",
    "LayerNormGRU",
    "LayerNormLSTM",
    "MinGRU",
    "Recurrent",
    "__version__",
    "make_layer",
]
