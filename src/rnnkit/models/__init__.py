"""Task models built from rnnkit's layers."""

from .language_model import CELLS, LanguageModel, LanguageModelConfig

__all__ = ["CELLS", "LanguageModel", "LanguageModelConfig"]
