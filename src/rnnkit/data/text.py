"""Text in and out: read a corpus file with clear errors, the built-in corpus, the train/val split.

Every failure a user can cause (wrong path, binary file, wrong encoding) is a one-line ValueError
that names the file, says what was wrong and how to fix it, because these messages reach the
command line unchanged.
"""

from __future__ import annotations

import codecs
import functools
import numbers
import os
from pathlib import Path

from .. import _atomic

__all__ = ["builtin_corpus", "read_text", "split_train_val", "write_text_atomic"]

# Encodings in which a NUL byte is ordinary text (every ASCII character has a zero byte).
_WIDE_ENCODINGS = ("utf-16", "utf-32")


def _as_path(owner: str, path) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{owner}: path must be a str or os.PathLike; got {type(path).__name__}")
    return Path(path)


def _codec_name(path: Path, encoding) -> str:
    if not isinstance(encoding, str):
        raise TypeError(
            f"read_text: encoding must be a codec name such as 'utf-8'; got "
            f"{type(encoding).__name__} {encoding!r}"
        )
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(
            f"{path}: unknown encoding {encoding!r}; pass a codec Python knows "
            "(e.g. --encoding utf-8 or --encoding latin-1)"
        ) from None


def read_text(path: str | os.PathLike, encoding: str = "utf-8", if_missing: str = "") -> str:
    """The text of the file at `path`, decoded with `encoding`, newlines kept as they are.

    A leading UTF-8 byte-order mark is dropped: it marks the encoding and is not text (Project
    Gutenberg files start with one). Raises ValueError, naming the path and the fix, for a missing
    file, a directory, an empty file, a binary file (NUL bytes) and bytes `encoding` cannot decode.
    `if_missing` is the caller's other way out, added to the missing file's message.
    """
    path = _as_path("read_text", path)
    codec = _codec_name(path, encoding)
    if not path.exists():
        raise ValueError(f"{path} does not exist; check the path{if_missing}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; pass a text file, not a directory")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(
            f"{path} cannot be read ({error.strerror}); check its permissions"
        ) from None
    if not data:
        raise ValueError(f"{path} is empty; pass a file that contains text")
    if not codec.startswith(_WIDE_ENCODINGS):
        nul = data.find(b"\x00")
        if nul >= 0:
            raise ValueError(
                f"{path} looks binary (NUL byte at byte offset {nul}); pass a plain text file "
                "(or --encoding utf-16 if it is UTF-16 text)"
            )
    if codec == "utf-8":
        codec = "utf-8-sig"  # the same decoding, minus a leading byte-order mark
    try:
        return data.decode(codec)
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not valid {encoding} at byte offset {error.start}; pass --encoding "
            "(e.g. --encoding latin-1)"
        ) from None


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` so that a reader sees either the old file or the whole new one
    (a temporary file in the same directory, fsync, os.replace: see rnnkit._atomic)."""
    path = _as_path("write_text_atomic", path)
    if not path.parent.is_dir():
        raise ValueError(
            f"{path.parent} does not exist; create the directory before writing {path}"
        )
    _atomic.write_text(path, text, encoding)


@functools.cache
def builtin_corpus() -> str:
    """About 465 KB of English: CPython's pydoc topic help, topics joined in sorted key order.

    It ships with every CPython (`pydoc_data.topics`), so training works without a download;
    sorting the keys makes the text identical on every run of one Python version.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise ValueError(
            "the built-in corpus needs CPython's pydoc_data module, which this Python lacks; "
            "pass --data FILE with a text file instead"
        ) from None
    return "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"


def split_train_val(text: str, val_fraction: float) -> tuple[str, str]:
    """(train, val): the last round(len(text) * val_fraction) characters are held out as val.

    Holding out the end (not a random sample) keeps val text unseen as context during training.
    Raises ValueError if val_fraction is not in (0, 1) or either part would be empty.
    """
    if not isinstance(text, str):
        raise TypeError(f"split_train_val: text must be a str; got {type(text).__name__}")
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, numbers.Real)
        or not 0 < val_fraction < 1
    ):
        raise ValueError(
            f"split_train_val: val_fraction must be a fraction strictly between 0 and 1 "
            f"(e.g. --val-fraction 0.1); got {val_fraction!r}"
        )
    num_val = round(len(text) * val_fraction)
    if num_val == 0 or num_val == len(text):
        part = "validation" if num_val == 0 else "training"
        raise ValueError(
            f"split_train_val: --val-fraction {val_fraction} of a {len(text)}-character text "
            f"leaves the {part} part empty; use a longer text or a "
            f"{'larger' if num_val == 0 else 'smaller'} --val-fraction"
        )
    cut = len(text) - num_val
    return text[:cut], text[cut:]
