"""The text a run trains on: read, split (the held-out part is the end), tokenized, encoded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data import Vocab, builtin_corpus, make_tokenizer, read_text, split_train_val
from .config import TrainConfig

BUILTIN = "builtin:pydoc_topics"


@dataclass
class Corpus:
    train_ids: Tensor  # (N_train,) long
    val_ids: Tensor  # (N_val,) long
    val_characters: int  # characters of the held-out text, for bits per character
    vocab: Vocab
    tokenizer: object
    source: dict  # {"data": path or BUILTIN, "sha256": of the text, "characters": ...}


def load_corpus(config: TrainConfig, vocab: Vocab | None = None) -> Corpus:
    """Read `config.data` (or the built-in corpus), split off the last val_fraction of its
    characters, tokenize, and encode with `vocab` (built from the training part if None)."""
    text = read_text(config.data, config.encoding) if config.data else builtin_corpus()
    train_text, val_text = split_train_val(text, config.val_fraction)
    tokenizer = make_tokenizer(config.tokens)
    train_tokens = tokenizer.tokenize(train_text)
    val_tokens = tokenizer.tokenize(val_text)
    if len(val_tokens) < 2:
        raise ValueError(
            f"the held-out part ({len(val_text)} characters, --val-fraction "
            f"{config.val_fraction}) has {len(val_tokens)} tokens; at least 2 are needed "
            "(use a longer text or a larger --val-fraction)"
        )
    if vocab is None:
        vocab = Vocab.build(train_tokens, max_size=config.vocab_size, min_freq=config.min_freq)
    source = {
        "data": config.data or BUILTIN,
        "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
        "characters": len(text),
    }
    return Corpus(
        train_ids=torch.tensor(vocab.encode(train_tokens), dtype=torch.long),
        val_ids=torch.tensor(vocab.encode(val_tokens), dtype=torch.long),
        val_characters=len(val_text),
        vocab=vocab,
        tokenizer=tokenizer,
        source=source,
    )
