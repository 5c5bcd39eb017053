"""Hashed bags of word and character n-grams: the features of a linear text model.

A text's words give word n-grams (1..`word_n`) and, from every word framed by spaces, character
n-grams (`chars` = (lo, hi), as scikit-learn's "char_wb" analyzer), all lower-cased. With
`han_runs` the Chinese words a segmenter cut from one run of Han characters are framed as that
run, so the character n-grams also span the cuts, as char_wb's do over the text itself: Chinese
is written without spaces, and a segmenter's cut is its guess, not the text's (a logistic
regression on the bag, ChnSentiCorp: 0.905 against 0.888 with the grams inside each word). Each is
hashed to one of `buckets` ids with CRC-32 (Python's hash() is salted per process, so saved
models would not agree with themselves), the feature kinds kept apart by a prefix. Weights make
the bag's L2 norm 1, as TF-IDF's normalization does, so long and short texts weigh alike.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence

from .segment import is_han

WORD_N = 2
CHAR_RANGE = (2, 5)


def character_chunks(words: Sequence[str]) -> list[str]:
    """The words, each run of consecutive all-Han words joined (北京, 天安门 -> 北京天安门)."""
    chunks: list[str] = []
    joining = False  # whether the last chunk is a run of Han words
    for word in words:
        han = is_han(word)
        if han and joining:
            chunks[-1] += word
        else:
            chunks.append(word)
        joining = han
    return chunks


def ngrams(
    words: Sequence[str],
    word_n: int = WORD_N,
    chars: tuple = CHAR_RANGE,
    han_runs: bool = True,
) -> list[str]:
    """The n-grams of one text, each prefixed by its kind ("w2:new york", "c3: ne"); with
    `han_runs` the character n-grams are of `character_chunks(words)`."""
    lowered = [w.lower() for w in words]
    out = []
    for n in range(1, word_n + 1):
        out += [f"w{n}:" + " ".join(lowered[i : i + n]) for i in range(len(lowered) - n + 1)]
    lo, hi = chars
    for word in character_chunks(lowered) if han_runs else lowered:
        framed = f" {word} "
        for n in range(lo, hi + 1):
            out += [f"c{n}:" + framed[i : i + n] for i in range(len(framed) - n + 1)]
    return out


def hashed_bag(
    words: Sequence[str], buckets: int, han_runs: bool = True
) -> tuple[list[int], list[float]]:
    """(ids, weights): the text's distinct n-gram buckets and their L2-normalized counts."""
    if buckets < 1:
        raise ValueError(f"hashed_bag: buckets must be >= 1; got {buckets}")
    grams = ngrams(words, han_runs=han_runs)
    counts = Counter(zlib.crc32(g.encode("utf-8")) % buckets for g in grams)
    if not counts:
        return [], []
    norm = math.sqrt(sum(c * c for c in counts.values()))
    ids = sorted(counts)
    return ids, [counts[i] / norm for i in ids]
