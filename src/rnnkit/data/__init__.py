"""Text data for recurrent models: reading, tokenizing, vocabularies, vectors and batching.

text -> tokenizer -> Vocab -> ids tensor -> LMBatchStream (B, T) batches -> OneHot / embedding.
"""

from .batching import LMBatchStream, detach_state, pack, pad_sequences
from .embeddings import OneHot, load_word_vectors
from .text import builtin_corpus, read_text, split_train_val, write_text_atomic
from .vocab import (
    SPECIALS,
    CharTokenizer,
    Tokenizer,
    Vocab,
    WordTokenizer,
    frame_lines,
    make_tokenizer,
)

__all__ = [
    "SPECIALS",
    "CharTokenizer",
    "LMBatchStream",
    "OneHot",
    "Tokenizer",
    "Vocab",
    "WordTokenizer",
    "builtin_corpus",
    "detach_state",
    "frame_lines",
    "load_word_vectors",
    "make_tokenizer",
    "pack",
    "pad_sequences",
    "read_text",
    "split_train_val",
    "write_text_atomic",
]
