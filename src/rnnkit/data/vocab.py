"""Tokenizers (text <-> tokens) and Vocab (tokens <-> integer ids).

Text vectorization as the seeds teach it: split text into tokens, keep a dictionary of the most
frequent ones, and map every token to its integer id (rare and unseen tokens share `<unk>`).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Protocol

import numpy as np
import torch

from .._checks import is_int
from .segment import HAN_RUN, check_segmenter, segment_han
from .text import read_text, write_text_atomic

__all__ = [
    "SPECIALS",
    "CharTokenizer",
    "Tokenizer",
    "Vocab",
    "WordTokenizer",
    "make_tokenizer",
]

UNK, PAD, BOS, EOS = "<unk>", "<pad>", "<bos>", "<eos>"
SPECIALS = (UNK, PAD, BOS, EOS)  # always ids 0..3, in this order

_VOCAB_FORMAT = "rnnkit.vocab"
_VOCAB_VERSION = 1


class Tokenizer(Protocol):
    """What the language model, trainer and generator need from a tokenizer."""

    kind: str

    def tokenize(self, text: str) -> list[str]: ...

    def detokenize(self, tokens: Iterable[str]) -> str: ...


class CharTokenizer:
    """One token per character; detokenize(tokenize(text)) == text exactly."""

    kind = "char"

    def tokenize(self, text: str) -> list[str]:
        return list(text)

    def detokenize(self, tokens: Iterable[str]) -> str:
        return "".join(tokens)

    def __repr__(self) -> str:
        return "CharTokenizer()"


# A word token is one of: a newline; a number with inner separators (3.14, 1,000, 12:30); a run of
# word characters with inner apostrophes (don't, o'er); one punctuation mark. Spaces and tabs only
# separate tokens. Only the number and word patterns span punctuation, so detokenize never merges
# two tokens into one as long as it puts a space between words and never writes `word'word` or
# `digit.digit` (an apostrophe or closing mark never hugs both of its neighbours).
_WORD_PATTERN = re.compile(r"\n|\d+(?:[.,:]\d+)+|\w+(?:['’]\w+)*|[^\w\s]")  # noqa: RUF001

# How detokenize spaces punctuation: "closing" marks hug the token before them, "opening" marks
# the token after them, "joining" marks both (well-known, and/or).
_CLOSING = frozenset(".,;:!?)]}%”»…")
_OPENING = frozenset("([{“‘«¿¡")  # noqa: RUF001 (typographic quotes are meant)
_JOINING = frozenset("-–—/")  # noqa: RUF001 (hyphen, en dash, em dash)
_APOSTROPHES = frozenset("'’")  # noqa: RUF001
# CJK and fullwidth punctuation (，。、！？：；「」《》（）...): Chinese writes no spaces around it.
# (The blocks' letters and digits, ０ or 々, are word characters and never glue.)
_CJK_BLOCKS = re.compile(r"[\u3000-\u303f\uff00-\uffef]")
# Words that an apostrophe elides at their front ('tis, 'twas): the apostrophe opens, not closes.
_FRONT_ELISIONS = frozenset(
    "tis twas twere twill twould twixt tween t s em gainst fore bout mongst scape larum".split()  # noqa: SIM905
)


class WordTokenizer:
    """Words, numbers and punctuation marks as tokens; each newline is a "\\n" token.

    Tokens: a newline; a number with inner separators (3.14, 1,000); a run of letters/digits
    with inner apostrophes (don't, o'er); a single punctuation mark. Spaces and tabs only
    separate tokens; case is kept. A run of Chinese characters, which has no spaces between its
    words, is split by `segmenter` (rnnkit.data.segment: "jieba", the default, gives 我 / 爱 /
    北京 / 天安门 for 我爱北京天安门; "char" one token per character; "none" keeps the run).

    detokenize writes one space between tokens except: none around newlines, before closing marks
    (`, . ; : ! ? )`), after opening marks (`(`), around joining marks (`-`, `/`) and CJK
    punctuation (`，。「」`), between two Chinese words (unless the segmenter is "none", whose
    words were apart in the text); straight double quotes alternate opening/closing within a
    line; an apostrophe opens at a line start or before 'tis/'twas..., and closes otherwise (o'
    the, kings'). So text comes back in a normal form (single spaces, no indentation, `\\r\\n` as
    `\\n`): detokenize(tokenize(t)) == t for text already in that form, and
    tokenize(detokenize(tokenize(t))) == tokenize(t) for any text with the "char" and "none"
    segmenters. jieba may cut a run it sees whole differently from the runs it was given apart
    (北京 天安门 written without the space), so with it the second holds for Chinese written,
    as it is, without spaces.
    """

    kind = "word"

    def __init__(self, segmenter: str = "jieba") -> None:
        self.segmenter = check_segmenter(segmenter)

    def tokenize(self, text: str) -> list[str]:
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        tokens = _WORD_PATTERN.findall(text)
        if HAN_RUN.search(text) is None:
            return tokens
        split: list[str] = []
        for token in tokens:
            start = 0
            for run in HAN_RUN.finditer(token):
                # what is left beside a run is tokenized again, so that an apostrophe next to
                # it (北's) becomes the mark it would be beside any other word
                split += _WORD_PATTERN.findall(token[start : run.start()])
                split += segment_han(run.group(), self.segmenter)
                start = run.end()
            split += _WORD_PATTERN.findall(token[start:])
        return split

    def detokenize(self, tokens: Iterable[str]) -> str:
        tokens = list(tokens)
        pieces: list[str] = []
        glue_next = True  # no space before the next token (start of text or line, after "(")
        quote_open = False  # an odd number of straight double quotes so far on this line
        glue_han = self.segmenter != "none"
        previous = before_previous = ""
        for i, token in enumerate(tokens):
            if token == "\n":
                pieces.append(token)
                glue_next, quote_open, previous, before_previous = True, False, "", ""
                continue
            glue_before, glue_after = False, False
            if token in _CLOSING:
                glue_before = True
            elif token in _OPENING:
                glue_after = True
            elif token in _JOINING or _is_cjk_punctuation(token):
                glue_before = glue_after = True
            elif token == '"':
                glue_before, glue_after = quote_open, not quote_open
                quote_open = not quote_open
            elif token in _APOSTROPHES:
                # Within a line a lone apostrophe mostly closes (o' the, kings' crowns, so.');
                # it opens at a line start, after an opening mark, or before 'tis, 'twas.
                following = tokens[i + 1] if i + 1 < len(tokens) else ""
                glue_after = glue_next or following.lower() in _FRONT_ELISIONS
                glue_before = not glue_after
            elif glue_han and HAN_RUN.match(token):
                # Chinese words follow each other unspaced, also across the ASCII marks much
                # Chinese text is typed with (大家好,我是)
                glue_before = _ends_han(previous) or (
                    previous in _CLOSING and _ends_han(before_previous)
                )
            if not (glue_next or glue_before):
                pieces.append(" ")
            pieces.append(token)
            glue_next, previous, before_previous = glue_after, token, previous
        return "".join(pieces)

    def __repr__(self) -> str:
        return f"WordTokenizer(segmenter={self.segmenter!r})"


def _is_cjk_punctuation(token: str) -> bool:
    return _CJK_BLOCKS.fullmatch(token) is not None and not (token.isalnum() or token == "_")


def _ends_han(token: str) -> bool:
    return bool(token) and HAN_RUN.match(token[-1]) is not None


def frame_lines(tokens: Iterable[str]) -> list[str]:
    """Word tokens with every non-empty line framed as <bos> ... <eos>: the line's newline
    becomes its <eos>, blank lines vanish. A language model trained on framed text learns to
    start a sentence after <bos> and to end it with <eos>."""
    framed: list[str] = []
    line: list[str] = []
    for token in [*tokens, "\n"]:
        if token != "\n":
            line.append(token)
        elif line:
            framed += [BOS, *line, EOS]
            line = []
    return framed


_TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer}


def make_tokenizer(kind: str, segmenter: str = "jieba") -> CharTokenizer | WordTokenizer:
    """The tokenizer for `kind`: "char" or "word" (the `--tokens` option); word tokenizers split
    runs of Chinese characters by `segmenter` (the `--segmenter` option)."""
    if kind not in _TOKENIZERS:
        raise ValueError(
            f"make_tokenizer: kind must be one of {', '.join(map(repr, _TOKENIZERS))}; got {kind!r}"
        )
    return WordTokenizer(segmenter) if kind == "word" else CharTokenizer()


class Vocab:
    """A fixed list of tokens; a token's id is its index. Specials come first: <unk>=0, <pad>=1,
    <bos>=2, <eos>=3. Unknown tokens map to <unk>.

    Build one from a token stream with `Vocab.build`; `Vocab(tokens)` takes the full list
    (specials included) as stored by `to_dict`.
    """

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(
                f"Vocab: tokens must start with the specials {list(SPECIALS)}; got "
                f"{tokens[: len(SPECIALS)]} (use Vocab.build to make a vocabulary from text)"
            )
        for token in tokens:
            if not isinstance(token, str):
                raise TypeError(
                    f"Vocab: every token must be a str; got {type(token).__name__} {token!r}"
                )
        self._tokens = tokens
        self._index = {token: i for i, token in enumerate(tokens)}
        if len(self._index) != len(tokens):
            duplicate = next(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"Vocab: tokens must be unique; {duplicate!r} appears twice")

    @classmethod
    def build(cls, tokens: Iterable[str], max_size: int | None = None, min_freq: int = 1) -> Vocab:
        """The specials, then the tokens seen at least `min_freq` times, most frequent first.

        Ties are broken by first appearance, so the same text always gives the same ids.
        `max_size` (None = no limit) counts the specials too: max_size=100 keeps 96 text tokens.
        """
        if max_size is not None and (not is_int(max_size) or max_size < len(SPECIALS)):
            raise ValueError(
                f"Vocab.build: max_size (--vocab-size) must be None or an int >= {len(SPECIALS)} "
                f"(it counts the {len(SPECIALS)} specials); got {max_size!r}"
            )
        if not is_int(min_freq) or min_freq < 1:
            raise ValueError(
                f"Vocab.build: min_freq (--min-freq) must be an int >= 1; got {min_freq!r}"
            )
        counts = Counter(tokens)  # a dict: keys keep first-appearance order
        for special in SPECIALS:
            counts.pop(special, None)
        # sorted() is stable, so equal counts keep first-appearance order.
        ranked = sorted(counts.items(), key=lambda item: -item[1])
        kept = [token for token, count in ranked if count >= min_freq]
        if max_size is not None:
            kept = kept[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self._tokens)

    def __getitem__(self, token: str) -> int:
        return self._index.get(token, 0)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self._tokens == other._tokens

    __hash__ = None  # mutable-looking container semantics: equal by content, so not hashable

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)})"

    def token(self, index: int) -> str:
        """The token with id `index`."""
        if not is_int(index):
            raise TypeError(f"Vocab.token: id must be an int; got {type(index).__name__}")
        if not 0 <= index < len(self._tokens):
            raise ValueError(
                f"Vocab.token: id {index} is out of range for a vocabulary of {len(self)}"
            )
        return self._tokens[index]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of `tokens` (a list of tokens, or a str for a char vocabulary); unknown -> unk_id."""
        # map over dict.get runs in C: about 30 ms per million tokens.
        return list(map(self._index.get, tokens, repeat(0)))

    def encode_tensor(self, tokens: Iterable[str] | str) -> torch.Tensor:
        """encode(tokens) as a (N,) long tensor, the input LMBatchStream takes.

        A str (char vocabulary) goes through a code-point lookup table in numpy: a 1 MB text
        takes milliseconds, where torch.tensor(list of a million ints) alone takes ~0.2 s.
        """
        if isinstance(tokens, str):
            codes = np.frombuffer(tokens.encode("utf-32-le", "surrogatepass"), dtype="<u4")
            if not len(codes):
                return torch.zeros(0, dtype=torch.long)
            table = np.full(int(codes.max()) + 1, self.unk_id, dtype=np.int64)
            for token, index in self._index.items():
                if len(token) == 1 and ord(token) < len(table):
                    table[ord(token)] = index
            return torch.from_numpy(table[codes])
        ids = self.encode(tokens)
        return torch.from_numpy(np.array(ids, dtype=np.int64).reshape(len(ids)))

    def decode(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Tokens of `ids` (a list of ints or a 1-D integer tensor)."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex():
                raise ValueError(
                    f"Vocab.decode: ids must be a 1-D integer tensor; got {ids.dim()}-D {ids.dtype}"
                )
            ids = ids.tolist()
        ids = list(ids)
        tokens = self._tokens
        try:
            if ids and (min(ids) < 0 or max(ids) >= len(tokens)):
                bad = next(i for i in ids if not 0 <= i < len(tokens))
                raise ValueError(
                    f"Vocab.decode: id {bad} is out of range for a vocabulary of {len(tokens)}"
                )
            return [tokens[i] for i in ids]
        except TypeError:
            bad = next(i for i in ids if not is_int(i))
            raise TypeError(
                f"Vocab.decode: ids must be ints; got {type(bad).__name__} {bad!r}"
            ) from None

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order (a copy)."""
        return list(self._tokens)

    @property
    def unk_id(self) -> int:
        return 0

    @property
    def pad_id(self) -> int:
        return 1

    @property
    def bos_id(self) -> int:
        return 2

    @property
    def eos_id(self) -> int:
        return 3

    def to_dict(self) -> dict:
        """A JSON-able description: {"format", "version", "tokens"}."""
        return {"format": _VOCAB_FORMAT, "version": _VOCAB_VERSION, "tokens": list(self._tokens)}

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        """The Vocab that `to_dict` described."""
        if not isinstance(data, dict) or data.get("format") != _VOCAB_FORMAT:
            raise ValueError(
                f"Vocab.from_dict: expected a dict with format {_VOCAB_FORMAT!r} (as written by "
                f"Vocab.save); got {_describe(data)}"
            )
        if data.get("version") != _VOCAB_VERSION:
            raise ValueError(
                f"Vocab.from_dict: this rnnkit reads vocabulary version {_VOCAB_VERSION}; got "
                f"version {data.get('version')!r} (was it written by a newer rnnkit?)"
            )
        tokens = data.get("tokens")
        if not isinstance(tokens, list):
            raise ValueError(f"Vocab.from_dict: 'tokens' must be a list; got {_describe(tokens)}")
        return cls(tokens)

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON, atomically (a crash never leaves half a file)."""
        write_text_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """The vocabulary that `save` wrote to `path`."""
        text = read_text(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: "
                f"{error.msg}); pass the vocab.json that training wrote"
            ) from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as error:
            detail = " ".join(str(error).split())
            raise ValueError(f"{path} is not a valid vocabulary ({detail})") from None


def _describe(value) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))[:6]}"
    return f"{type(value).__name__}"
