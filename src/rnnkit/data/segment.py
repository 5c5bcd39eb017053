"""Word segmentation of Chinese text, which writes no spaces between words.

The word tokenizer's pattern takes a run of letters as one word; a run of Chinese characters is
a whole phrase or sentence (我爱北京天安门), so the word tokenizer hands each such run to a
segmenter:

- "jieba" (the default): jieba's dictionary and HMM segmenter, 我爱北京天安门 -> 我 / 爱 / 北京 /
  天安门. jieba is loaded the first time a run of Chinese characters is met, so text without
  any never loads it.
- "char": one token per Chinese character (the character model's unit, beside word tokens for
  the other scripts).
- "none": the run stays one token, as the word tokenizer did before segmenters existed (runs
  saved then load with it).

The choice is per run of Chinese characters, not per text: a mostly Chinese text is segmented
throughout, and a Chinese phrase inside English text is segmented too, where keeping it as one
token would only make a rare word of it.
"""

from __future__ import annotations

import logging
import re
from functools import cache

__all__ = ["HAN_CHARACTERS", "HAN_RUN", "SEGMENTERS", "check_segmenter", "is_han", "segment_han"]

SEGMENTERS = ("jieba", "char", "none")

# Han ideographs: the unified block, extensions A to G and the compatibility block.
HAN_CHARACTERS = (
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ebef"
    "\U00030000-\U0003134f"
)
HAN_RUN = re.compile(f"[{HAN_CHARACTERS}]+")
_HAN_CHAR = re.compile(f"[{HAN_CHARACTERS}]")


def is_han(text: str) -> bool:
    """Whether `text` is non-empty and made of Han ideographs only."""
    return bool(text) and HAN_RUN.fullmatch(text) is not None


def check_segmenter(name: str) -> str:
    if name not in SEGMENTERS:
        raise ValueError(
            f"unknown segmenter {name!r}: choose --segmenter from {', '.join(SEGMENTERS)}"
        )
    return name


@cache
def _jieba():
    try:
        import jieba
    except ImportError as error:  # a dependency of rnnkit: only a broken install lacks it
        raise RuntimeError(
            "the jieba segmenter is not installed: pip install jieba, or pass --segmenter char"
        ) from error
    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading lines are not the user's
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def segment_han(run: str, segmenter: str) -> list[str]:
    """The words of `run`, a run of Han ideographs, by `segmenter` (module docstring)."""
    if segmenter == "none":
        return [run]
    if segmenter == "char":
        return list(run)
    check_segmenter(segmenter)
    return [word for word in _jieba().lcut(run, HMM=True) if word]
