"""Many-to-many sequence tagger: one tag per token, by per-token softmax or a CRF.

Shapes: B sentences, T longest sentence, C longest word in characters, V vocabulary, E
embedding_dim, Hc char_hidden_size, H hidden_size, D directions, K tags.

    ids (B, T) -> embedding (B, T, E) ─────────────────────────────┐
    chars (B, T, C) -> char embedding -> char BiLSTM -> (B, T, 2Hc) ┴ concat -> dropout
        -> RecurrentEncoder (packed) (B, T, D*H) -> dropout -> linear -> emissions (B, T, K)
        -> softmax per token, or CRF (Viterbi decoding, optional BIO transition constraints)

Feature path (`feature_buckets` > 0): each token's bag of hashed spelling and context features
(rnnkit.data.token_features: the classical feature CRF's) through a linear map to the tags,
added to the emissions, its weights zero at the start: with the CRF on top, the model holds a
feature CRF and the network learns what it adds (Huang et al. 2015's BiLSTM-CRF with spelling
and context features). The caller hashes the features: `feature_ids` (N,) and
`feature_offsets` (B*T,), each position's first index into feature_ids, padding positions
empty. With `feature_ratios` each feature's weight for tag k is V[j, k] * R[j, k], R a buffer
the task fills with the training tokens' naive-Bayes log-count ratios (that tag against the
others; rnnkit.models.linear_bag), as the classifier's n-gram path does.

Word dropout: while training, each token id is replaced by <unk> with probability
`word_dropout`, so the <unk> embedding learns what unseen words look like at prediction time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import dataclass_from_dict, is_int
from .crf import CRF
from .encoder import RecurrentEncoder, check_encoder_args, length_mask
from .linear_bag import LinearBag

IGNORE = -100  # tag id of padding (and of unknown tags) for the softmax loss


@dataclass
class TaggerConfig:
    """Architecture of a `TaggingModel`; JSON-able, enough to rebuild it before loading."""

    vocab_size: int
    num_tags: int
    embedding_dim: int = 64
    padding_idx: int = 1  # the Vocab's <pad>
    unk_idx: int = 0  # the Vocab's <unk>
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.2
    word_dropout: float = 0.05
    backend: str = "auto"
    crf: bool = False
    allowed: list | None = None  # CRF: (K, K) allowed transitions [from][to]; None: all
    allowed_start: list | None = None  # CRF: (K,) tags that may start a sentence
    char_vocab_size: int = 0  # > 0: add character features (a char BiLSTM per word)
    char_embedding_dim: int = 24
    char_hidden_size: int = 24
    feature_buckets: int = 0  # > 0: a linear path from hashed token features to the emissions
    feature_ratios: bool = False  # the path's weights scaled per feature and tag (NBSVM)

    def __post_init__(self) -> None:
        owner = "TaggingModel"
        check_encoder_args(
            owner,
            cell=self.cell,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
            backend=self.backend,
        )
        for name, low in (
            ("vocab_size", 1),
            ("num_tags", 1),
            ("embedding_dim", 1),
            ("char_vocab_size", 0),
            ("char_embedding_dim", 1),
            ("char_hidden_size", 1),
            ("feature_buckets", 0),
        ):
            value = getattr(self, name)
            if not is_int(value) or value < low:
                raise ValueError(f"{owner}: {name} must be an int >= {low}; got {value!r}")
        if not 0 <= self.word_dropout < 1:
            raise ValueError(f"{owner}: word_dropout must be in [0, 1); got {self.word_dropout}")
        if not isinstance(self.feature_ratios, bool):
            raise ValueError(f"{owner}: feature_ratios must be True or False")
        if self.feature_ratios and self.feature_buckets == 0:
            raise ValueError(
                f"{owner}: feature_ratios scale the feature path: set feature_buckets > 0"
            )
        if (self.allowed is not None or self.allowed_start is not None) and not self.crf:
            raise ValueError(f"{owner}: transition constraints need crf=True")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TaggerConfig:
        return dataclass_from_dict(cls, data, "tagger config")


class CharEncoder(nn.Module):
    """Each word's characters through a BiLSTM: chars (B, T, C) -> (B, T, 2Hc), the final
    forward and backward states (Lample et al. 2016)."""

    def __init__(self, vocab_size: int, dim: int, hidden: int, padding_idx: int, backend: str):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)
        self.encoder = RecurrentEncoder("lstm", dim, hidden, bidirectional=True, backend=backend)
        self.output_size = 2 * hidden

    def forward(self, chars: Tensor, char_lengths: Tensor) -> Tensor:
        B, T, C = chars.shape
        flat = chars.reshape(B * T, C)
        lengths = char_lengths.reshape(B * T)
        real = lengths > 0  # padding positions of the sentence have no characters
        out = torch.zeros(B * T, self.output_size, dtype=self.embedding.weight.dtype)
        if real.any():
            _, last = self.encoder(self.embedding(flat[real]), lengths[real])  # (N, 2Hc)
            out = out.index_put((real.nonzero().squeeze(1),), last)
        return out.reshape(B, T, self.output_size)


class TaggingModel(nn.Module):
    """Call: (ids (B, T), lengths (B,), chars=None, char_lengths=None, feature_ids=None,
    feature_offsets=None) -> emissions (B, T, K)."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(
            config.vocab_size, config.embedding_dim, padding_idx=config.padding_idx
        )
        width = config.embedding_dim
        self.chars = None
        if config.char_vocab_size > 0:
            self.chars = CharEncoder(
                config.char_vocab_size,
                config.char_embedding_dim,
                config.char_hidden_size,
                config.padding_idx,
                config.backend,
            )
            width += self.chars.output_size
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
        self.head = nn.Linear(self.encoder.output_size, config.num_tags)
        self.crf = (
            CRF(config.num_tags, config.allowed, config.allowed_start) if config.crf else None
        )
        self.features = None
        if config.feature_buckets > 0:
            self.features = LinearBag(
                config.feature_buckets, config.num_tags, config.feature_ratios
            )

    def forward(
        self,
        ids: Tensor,
        lengths: Tensor,
        chars=None,
        char_lengths=None,
        feature_ids=None,
        feature_offsets=None,
    ) -> Tensor:
        if self.training and self.config.word_dropout > 0:
            drop = torch.rand(ids.shape) < self.config.word_dropout
            ids = ids.masked_fill(drop & (ids != self.config.padding_idx), self.config.unk_idx)
        x = self.embedding(ids)  # (B, T, E)
        if self.chars is not None:
            if chars is None:
                raise ValueError("TaggingModel: this model reads characters; pass chars")
            x = torch.cat([x, self.chars(chars, char_lengths)], dim=-1)  # (B, T, E + 2Hc)
        outputs, _ = self.encoder(self.dropout(x), lengths)  # (B, T, D*H)
        emissions = self.head(self.dropout(outputs))  # (B, T, K)
        if (self.features is None) != (feature_ids is None):
            raise ValueError(
                "TaggingModel: feature_ids and feature_offsets must be given when "
                "feature_buckets > 0, and only then"
            )
        if self.features is not None:
            B, T, K = emissions.shape
            linear = self.features(feature_ids, feature_offsets)  # (B * T, K)
            emissions = emissions + linear.reshape(B, T, K).to(emissions)
        return emissions

    def loss(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """Mean over sentences of the CRF's NLL, or mean token cross-entropy without a CRF.

        `tags` (B, T) holds IGNORE at padding and at tags unknown to the model.
        """
        mask = length_mask(lengths, emissions.shape[1])
        if self.crf is None:
            return F.cross_entropy(
                emissions.reshape(-1, emissions.shape[-1]), tags.reshape(-1), ignore_index=IGNORE
            )
        # the CRF needs a tag at every real step: an unknown one scores as tag 0
        return self.crf(emissions, tags.clamp(min=0), mask).mean()

    @torch.no_grad()
    def decode(self, emissions: Tensor, lengths: Tensor) -> list[list[int]]:
        """Tag ids of each sentence: Viterbi with a CRF, else the per-token argmax."""
        if self.crf is not None:
            return self.crf.decode(emissions, length_mask(lengths, emissions.shape[1]))
        best = emissions.argmax(-1)
        return [best[b, :n].tolist() for b, n in enumerate(lengths.tolist())]
