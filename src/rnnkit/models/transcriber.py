"""Speech to text: a bidirectional recurrent encoder over log-mel frames, trained with CTC.

Shapes: B batch, T frames (100 per second), F features per frame (n_mels), K frame_stack,
T' = ceil(T / K) encoder steps, D directions, H hidden_size, V output symbols (blank = 0).

    features (B, T, F) -> stack K frames (B, T', K*F) -> packed stacked (bi)RNN (B, T', D*H)
             -> dropout -> linear -> log-softmax (B, T', V)

Stacking frames (Sak et al. 2015's low frame rate; Deep Speech 2's strides) shortens the
sequence the recurrent layers and backpropagation through time run over by K, and CTC needs
no more steps than the transcript has symbols (plus one between repeated symbols).

Decoding (Graves et al. 2006): `ctc_greedy` takes the most likely symbol of every step, then
merges repeats and drops blanks; `ctc_beam_search` is the prefix beam search, which sums the
probability of every alignment of a prefix and so finds labellings that greedy decoding misses.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .._checks import dataclass_from_dict, is_int
from ..layers import Dropout
from .encoder import RecurrentEncoder, check_encoder_args

BLANK = 0


@dataclass
class TranscriberConfig:
    """Architecture of a `TranscriberModel` (everything needed to rebuild it)."""

    num_features: int
    vocab_size: int  # output symbols, the blank included (id 0)
    frame_stack: int = 3
    cell: str = "gru"
    hidden_size: int = 128
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.0
    backend: str = "auto"

    def __post_init__(self) -> None:
        for name in ("num_features", "frame_stack"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"TranscriberModel: {name} must be an int >= 1")
        if not is_int(self.vocab_size) or self.vocab_size < 2:
            raise ValueError("TranscriberModel: vocab_size must be >= 2 (the blank and a symbol)")
        check_encoder_args(
            "TranscriberModel",
            cell=self.cell,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
            backend=self.backend,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TranscriberConfig:
        return dataclass_from_dict(cls, data, "model config")


def stack_frames(features: Tensor, lengths: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(B, T, F) -> (B, ceil(T / k), k * F): k consecutive frames side by side (zero-padded at
    the end), and each sequence's new length ceil(length / k)."""
    if k == 1:
        return features, lengths
    B, T, F_ = features.shape
    padded = torch.nn.functional.pad(features, (0, 0, 0, (-T) % k))
    return padded.reshape(B, -1, k * F_), (lengths + k - 1) // k


class TranscriberModel(nn.Module):
    """Call: (features (B, T, F), lengths (B,)) -> (log_probs (B, T', V), lengths' (B,))."""

    def __init__(self, config: TranscriberConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = RecurrentEncoder(
            config.cell,
            config.frame_stack * config.num_features,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
            backend=config.backend,
        )
        self.dropout = Dropout(config.dropout)
        self.head = nn.Linear(self.encoder.output_size, config.vocab_size)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        k = self.config.frame_stack
        return (lengths + k - 1) // k

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if features.dim() != 3 or features.shape[-1] != self.config.num_features:
            raise ValueError(
                f"TranscriberModel: features must be (B, T, {self.config.num_features}); got "
                f"shape {tuple(features.shape)}"
            )
        stacked, lengths = stack_frames(features, lengths, self.config.frame_stack)
        outputs, _ = self.encoder(stacked.to(self.head.weight.dtype), lengths)
        return self.head(self.dropout(outputs)).log_softmax(-1), lengths


# ---------------------------------------------------------------- decoding


def ctc_collapse(path: list[int], blank: int = BLANK) -> list[int]:
    """Merge repeated symbols, then drop blanks: [1, 1, 0, 1, 2, 2] -> [1, 1, 2]."""
    out, previous = [], None
    for symbol in path:
        if symbol != previous and symbol != blank:
            out.append(symbol)
        previous = symbol
    return out


def ctc_greedy(log_probs: Tensor, blank: int = BLANK) -> list[int]:
    """The best path's labelling of one utterance's (T, V) log-probabilities."""
    return ctc_collapse(log_probs.argmax(-1).tolist(), blank)


def _logadd(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high = max(a, b)
    return high + math.log1p(math.exp(-abs(a - b)))


def ctc_beam_search(log_probs: Tensor, beam_size: int, blank: int = BLANK) -> list[int]:
    """The most probable labelling that the CTC prefix beam search finds in (T, V)
    log-probabilities: each prefix keeps the total probability of its alignments ending in a
    blank and ending in its last symbol; the `beam_size` most probable prefixes survive each
    step. With a beam as wide as the number of labellings it is exact."""
    if not is_int(beam_size) or beam_size < 1:
        raise ValueError(f"beam_size must be an integer >= 1; got {beam_size!r}")
    table = log_probs.double().tolist()
    # prefix -> (log P(ending in blank), log P(ending in its last symbol))
    beams: dict[tuple, tuple[float, float]] = {(): (0.0, -math.inf)}
    for row in table:
        # the symbols worth extending by: the most likely of this step
        order = sorted(range(len(row)), key=row.__getitem__, reverse=True)[: beam_size + 1]
        grown: dict[tuple, list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (p_blank, p_symbol) in beams.items():
            total = _logadd(p_blank, p_symbol)
            entry = grown[prefix]
            entry[0] = _logadd(entry[0], total + row[blank])  # a blank: the prefix stays
            if prefix:  # its last symbol again, merged: the prefix stays
                entry[1] = _logadd(entry[1], p_symbol + row[prefix[-1]])
            for symbol in order:
                if symbol == blank:
                    continue
                extended = grown[(*prefix, symbol)]
                if prefix and symbol == prefix[-1]:
                    # a repeat is a new symbol only after a blank
                    extended[1] = _logadd(extended[1], p_blank + row[symbol])
                else:
                    extended[1] = _logadd(extended[1], total + row[symbol])
        ranked = sorted(grown.items(), key=lambda item: _logadd(*item[1]), reverse=True)
        beams = {prefix: (pb, ps) for prefix, (pb, ps) in ranked[:beam_size]}
    best = max(beams.items(), key=lambda item: _logadd(*item[1]))
    return list(best[0])
