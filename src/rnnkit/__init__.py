"""rnnkit: recurrent networks for PyTorch with explicit, checked backpropagation through time."""

from .layers import GRU, LSTM, RNN, JordanRNN, LayerNormGRU, LayerNormLSTM

__version__ = "0.1.0"

__all__ = ["GRU", "LSTM", "RNN", "JordanRNN", "LayerNormGRU", "LayerNormLSTM", "__version__"]
