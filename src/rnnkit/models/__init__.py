"""Task models built from rnnkit's layers."""

from .classifier import ClassifierConfig, SequenceClassifier
from .crf import CRF
from .encoder import RecurrentEncoder
from .language_model import CELLS, LanguageModel, LanguageModelConfig
from .tagger import TaggerConfig, TaggingModel

__all__ = [
    "CELLS",
    "CRF",
    "ClassifierConfig",
    "LanguageModel",
    "LanguageModelConfig",
    "RecurrentEncoder",
    "SequenceClassifier",
    "TaggerConfig",
    "TaggingModel",
]
