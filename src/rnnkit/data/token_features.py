"""Hashed spelling and context features of each token of a sentence: a feature CRF's inputs.

The features of token i are those of the classical NER feature CRF (the sklearn-crfsuite
tutorial's, widened to two words of context): for each position j = i-2 .. i+2, the lower-cased
word at j (or a sentence-boundary marker) and whether it is title-case, upper-case or digits;
for j = i-1 .. i+1 also its prefixes and suffixes of 1-3 characters and its shape (upper ->
X, lower -> x, digit -> d, other characters kept; the first 6). Each feature string, prefixed
by its offset ("0:suf3=ing"), is hashed with CRC-32 into one of `buckets` ids (Python's hash()
is salted per process), as rnnkit.data.ngrams does; a token's ids are the distinct hashes,
each of weight one.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["AFFIX_CONTEXT", "CONTEXT", "feature_strings", "hashed_token_features"]

CONTEXT = 2  # words each side whose form and case flags are features
AFFIX_CONTEXT = 1  # words each side whose affixes and shape are features
AFFIXES = (1, 2, 3)
SHAPE_CHARS = 6


def _shape(word: str) -> str:
    return "".join(
        "X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c
        for c in word[:SHAPE_CHARS]
    )


def feature_strings(words: Sequence[str], i: int) -> list[str]:
    """The features of token i of `words`, as strings."""
    out = ["bias"]
    for offset in range(-CONTEXT, CONTEXT + 1):
        j = i + offset
        if not 0 <= j < len(words):
            out.append(f"{offset}:pad")
            continue
        word = words[j]
        out.append(f"{offset}:lower={word.lower()}")
        if word.istitle():
            out.append(f"{offset}:title")
        if word.isupper():
            out.append(f"{offset}:upper")
        if word.isdigit():
            out.append(f"{offset}:digit")
        if abs(offset) <= AFFIX_CONTEXT:
            for k in AFFIXES:
                out.append(f"{offset}:pre{k}={word[:k]}")
                out.append(f"{offset}:suf{k}={word[-k:]}")
            out.append(f"{offset}:shape={_shape(word)}")
    return out


def hashed_token_features(words: Sequence[str], buckets: int) -> list[list[int]]:
    """Each token's distinct feature ids in [0, buckets), ascending."""
    if buckets < 1:
        raise ValueError(f"hashed_token_features: buckets must be >= 1; got {buckets}")
    return [
        sorted({zlib.crc32(f.encode("utf-8")) % buckets for f in feature_strings(words, i)})
        for i in range(len(words))
    ]
