"""Many-to-one sequence classifier: inputs -> stacked (bi)RNN -> pooling -> dropout -> linear.

Shapes: B batch, T longest length, V vocabulary, E embedding_dim, F numeric features per step,
H hidden_size, D directions, C classes.

    ids (B, T) long  -> embedding (B, T, E) ┐
    values (B, T, F) float ─────────────────┴-> dropout -> RecurrentEncoder (packed)
        -> outputs (B, T, D*H), last (B, D*H) -> pooling (B, D*H) -> dropout -> linear (B, C)

Word dropout (token input, training only): each token id becomes <unk> with probability
`word_dropout`, so the <unk> embedding learns to stand for the words a test text has and the
training text had not.

Pooling (padding excluded by the lengths): "last" the final state of each direction, "mean"
the average over the real steps, "max" the element-wise maximum over them.

N-gram path (`ngram_buckets` > 0): a linear model over a bag of hashed n-gram ids beside the
recurrent path (Wang and Manning 2012's NBSVM and fastText are strong on short texts), its
weights zero at the start; how the two paths meet is below. The caller hashes the n-grams
(`ngrams=(ids, offsets, weights)`, the flat form of nn.EmbeddingBag). With `ngram_ratios`
the path's weight for feature j and class c is V[j, c] * R[j, c], R the training texts'
naive-Bayes log-count ratios (rnnkit.models.linear_bag, rnnkit.data.feature_ratios; NBSVM's
scaled features): an n-gram that tells the classes apart learns fast, one that occurs alike
in all of them hardly moves.

How the two paths combine (`ngram_combination`): "sum" adds the n-gram logits to the recurrent
ones and trains both through one loss, so the network learns what the bag misses; "product"
makes each path a classifier of its own, trained on its own loss (`path_logits`), and the
output is (1 - w) log p_rnn + w log p_ngram, w = `ngram_weight`: a weighted product of the two
experts' probabilities (Hinton 2002's product of experts), an ensemble of a bag-of-n-grams
model and a recurrent one. Trained together, the recurrent path fits what the bag would have
learned and the bag stops short of the linear model it can be on its own (on ChnSentiCorp the
bag alone scored 0.878 inside the sum, 0.891 trained apart). The recurrent expert is the more
confident one (a mean margin of about 4 nats on test texts against the bag's 1.5), so the bag
needs more than half the weight to be heard (docs/tasks.md). The losses do not depend on w;
which checkpoint best/ keeps does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .._checks import dataclass_from_dict, is_int, is_real
from .encoder import RecurrentEncoder, check_encoder_args, length_mask
from .linear_bag import LinearBag

POOLINGS = ("last", "mean", "max")
NGRAM_COMBINATIONS = ("sum", "product")


@dataclass
class ClassifierConfig:
    """Architecture of a `SequenceClassifier`; JSON-able, enough to rebuild it before loading."""

    num_classes: int
    vocab_size: int = 0  # > 0: token ids through an embedding; 0: numeric vectors (input_size)
    input_size: int = 0  # F: features per step for numeric input (vocab_size 0)
    embedding_dim: int = 64  # E for token input
    padding_idx: int = 1  # the Vocab's <pad> id (its embedding row stays zero)
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.2  # on the inputs, between layers and before the linear layer
    word_dropout: float = 0.0  # token input: chance of reading a token as <unk> in training
    unk_idx: int = 0  # the Vocab's <unk>
    ngram_buckets: int = 0  # > 0: a linear n-gram path of this many hashed features
    ngram_ratios: bool = False  # the path's weights scaled per feature and class (NBSVM)
    # how the n-gram path meets the recurrent one (module docstring); "sum" for models saved
    # before there was a choice
    ngram_combination: str = "sum"
    # "product": the n-gram expert's share, in (0, 1); the task's default (docs/tasks.md)
    ngram_weight: float = 0.75
    backend: str = "auto"

    def __post_init__(self) -> None:
        owner = "SequenceClassifier"
        check_encoder_args(
            owner,
            cell=self.cell,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
            backend=self.backend,
        )
        for name in ("num_classes", "vocab_size", "input_size", "embedding_dim", "ngram_buckets"):
            value = getattr(self, name)
            if not is_int(value) or value < 0:
                raise ValueError(f"{owner}: {name} must be an int >= 0; got {value!r}")
        if self.num_classes < 1:
            raise ValueError(f"{owner}: num_classes must be >= 1; got {self.num_classes}")
        if (self.vocab_size > 0) == (self.input_size > 0):
            raise ValueError(
                f"{owner}: give exactly one of vocab_size (token input) and input_size (numeric "
                f"input); got vocab_size={self.vocab_size}, input_size={self.input_size}"
            )
        if self.ngram_buckets > 0 and self.vocab_size == 0:
            raise ValueError(f"{owner}: the n-gram path (ngram_buckets > 0) needs token input")
        if not isinstance(self.ngram_ratios, bool):
            raise ValueError(f"{owner}: ngram_ratios must be True or False")
        if self.ngram_ratios and self.ngram_buckets == 0:
            raise ValueError(f"{owner}: ngram_ratios scale the n-gram path: set ngram_buckets > 0")
        if self.vocab_size > 0 and self.embedding_dim < 1:
            raise ValueError(f"{owner}: token input needs embedding_dim >= 1")
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"{owner}: pooling must be one of {', '.join(POOLINGS)}; got {self.pooling!r}"
            )
        if self.ngram_combination not in NGRAM_COMBINATIONS:
            raise ValueError(
                f"{owner}: ngram_combination must be one of {', '.join(NGRAM_COMBINATIONS)}; "
                f"got {self.ngram_combination!r}"
            )
        if not (is_real(self.ngram_weight) and 0 < self.ngram_weight < 1):
            raise ValueError(f"{owner}: ngram_weight must be in (0, 1); got {self.ngram_weight!r}")
        if not 0 <= self.word_dropout < 1:
            raise ValueError(f"{owner}: word_dropout must be in [0, 1); got {self.word_dropout}")
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"{owner}: bidirectional must be True or False")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        return dataclass_from_dict(cls, data, "classifier config")


def pool(outputs: Tensor, last: Tensor, lengths: Tensor, how: str) -> Tensor:
    """(B, D*H) from outputs (B, T, D*H): "last" state, masked "mean" or masked "max"."""
    if how == "last":
        return last
    mask = length_mask(lengths.to(outputs.device), outputs.shape[1])[..., None]  # (B, T, 1)
    if how == "mean":
        return (outputs * mask).sum(1) / lengths.to(outputs)[:, None]
    return outputs.masked_fill(~mask, float("-inf")).amax(1)


class SequenceClassifier(nn.Module):
    """Call: (inputs, lengths) -> logits (B, C). inputs: ids (B, T) long or values (B, T, F)."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        if config.vocab_size > 0:
            self.embedding = nn.Embedding(
                config.vocab_size, config.embedding_dim, padding_idx=config.padding_idx
            )
            width = config.embedding_dim
        else:
            self.embedding = None
            width = config.input_size
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = RecurrentEncoder(
            config.cell,
            width,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
            backend=config.backend,
        )
        self.head = nn.Linear(self.encoder.output_size, config.num_classes)
        self.ngrams = None
        if config.ngram_buckets > 0:
            self.ngrams = LinearBag(config.ngram_buckets, config.num_classes, config.ngram_ratios)

    def features(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """The pooled (B, D*H) representation the linear layer reads."""
        if self.embedding is None:
            x = inputs  # (B, T, F)
        else:
            if self.training and self.config.word_dropout > 0:
                # unseen words read as <unk> at prediction time: teach <unk> what they mean
                drop = torch.rand(inputs.shape) < self.config.word_dropout
                keep = inputs == self.config.padding_idx
                inputs = inputs.masked_fill(drop & ~keep, self.config.unk_idx)
            x = self.embedding(inputs)  # (B, T, E)
        outputs, last = self.encoder(self.dropout(x), lengths)
        return pool(outputs, last, lengths, self.config.pooling)

    def path_logits(
        self, inputs: Tensor, lengths: Tensor, ngrams: tuple | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """(recurrent logits (B, C), n-gram logits (B, C) or None without the path). ngrams:
        (ids (N,) long, offsets (B,) long, weights (N,) float), needed exactly when the model
        has an n-gram path."""
        logits = self.head(self.dropout(self.features(inputs, lengths)))  # (B, C)
        if (self.ngrams is None) != (ngrams is None):
            raise ValueError(
                "SequenceClassifier: ngrams=(ids, offsets, weights) must be given when "
                "ngram_buckets > 0, and only then"
            )
        if self.ngrams is None:
            return logits, None
        ids, offsets, weights = ngrams
        # the bag's own dtype: under bfloat16 autocast the head's logits are bfloat16, the bag
        # float32, and embedding_bag wants its weights and the per-sample weights alike
        return logits, self.ngrams(ids, offsets, per_sample_weights=weights.to(self.ngrams.weight))

    def forward(self, inputs: Tensor, lengths: Tensor, ngrams: tuple | None = None) -> Tensor:
        """The (B, C) logits of both paths combined (module docstring); `path_logits`' args."""
        logits, bag = self.path_logits(inputs, lengths, ngrams)
        if bag is None:
            return logits
        if self.config.ngram_combination == "product":
            w = self.config.ngram_weight
            return (1 - w) * logits.log_softmax(-1) + w * bag.log_softmax(-1)
        return logits + bag

    @torch.no_grad()
    def predict_proba(self, inputs: Tensor, lengths: Tensor, ngrams: tuple | None = None) -> Tensor:
        """(B, C) class probabilities, in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return self(inputs, lengths, ngrams).softmax(-1)
        finally:
            self.train(was_training)
