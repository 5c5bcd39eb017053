"""Task models built from rnnkit's layers."""

from .classifier import ClassifierConfig, SequenceClassifier
from .crf import CRF
from .encoder import RecurrentEncoder
from .forecaster import ForecasterConfig, ForecasterModel
from .language_model import CELLS, LanguageModel, LanguageModelConfig
from .seq2seq import Seq2SeqConfig, Seq2SeqModel
from .tagger import TaggerConfig, TaggingModel

__all__ = [
    "CELLS",
    "CRF",
    "ClassifierConfig",
    "ForecasterConfig",
    "ForecasterModel",
    "LanguageModel",
    "LanguageModelConfig",
    "RecurrentEncoder",
    "Seq2SeqConfig",
    "Seq2SeqModel",
    "SequenceClassifier",
    "TaggerConfig",
    "TaggingModel",
]
