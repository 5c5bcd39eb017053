"""Token ids -> vectors: one-hot encoding and pretrained word vectors (GloVe, word2vec, fastText).

One-hot is the seeds' first vectorization (seed 004's language model feeds one-hot vectors to the
RNN); pretrained vectors initialize an nn.Embedding with `nn.Embedding.from_pretrained(matrix)`.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from .._checks import is_int
from .vocab import Vocab

__all__ = ["OneHot", "load_word_vectors"]


class OneHot(nn.Module):
    """ids (B, T) long -> one-hot vectors (B, T, V) of `dtype`, V = num_classes.

    Works for any leading shape: (*,) -> (*, V). No parameters; the same as an nn.Embedding whose
    weight is the identity matrix, without the V×V matrix.
    """

    def __init__(self, num_classes: int, dtype: torch.dtype = torch.float32):
        super().__init__()
        if not is_int(num_classes) or num_classes < 1:
            raise ValueError(
                f"OneHot: num_classes must be a positive int (the vocabulary size); "
                f"got {num_classes!r}"
            )
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"OneHot: dtype must be a floating torch.dtype; got {dtype!r}")
        self.num_classes = num_classes
        # An empty, non-persistent buffer: model.double() / .to(dtype) convert it, so the
        # one-hot vectors follow the model's dtype like an embedding's weight would.
        self.register_buffer("_dtype_of", torch.empty(0, dtype=dtype), persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype_of.dtype

    @dtype.setter
    def dtype(self, value: torch.dtype) -> None:
        self._dtype_of = self._dtype_of.to(value)

    def forward(self, ids: Tensor) -> Tensor:
        if not isinstance(ids, Tensor) or ids.is_floating_point() or ids.is_complex():
            got = ids.dtype if isinstance(ids, Tensor) else type(ids).__name__
            raise TypeError(f"OneHot: ids must be an integer (long) tensor; got {got}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.num_classes):
            raise ValueError(
                f"OneHot: ids must lie in [0, {self.num_classes}); got values in "
                f"[{int(ids.min())}, {int(ids.max())}] (is num_classes the vocabulary size?)"
            )
        # scatter into zeros of the target dtype: F.one_hot would build an int64 (*, V) first.
        out = torch.zeros(*ids.shape, self.num_classes, dtype=self.dtype, device=ids.device)
        return out.scatter_(-1, ids.long().unsqueeze(-1), 1.0)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, dtype={self.dtype}"


def _open_text(path: Path):
    # GloVe and fastText are distributed gzipped as often as not.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


def _word2vec_header(first: list[str], second: list[str] | None) -> int | None:
    """The dimension if `first` is a word2vec header "count dim", else None (a GloVe file).

    A GloVe line can look like a header ("3 5": the word "3" with a 1-d vector), so the next
    line must also have dim numbers after its word.
    """
    if len(first) != 2 or not (first[0].isdigit() and first[1].isdigit()):
        return None
    dim = int(first[1])
    if dim < 1 or (second is not None and len(second) - 1 != dim):
        return None
    return dim


def load_word_vectors(
    path: str | os.PathLike, vocab: Vocab, *, dim: int | None = None, seed: int = 0
) -> tuple[Tensor, int]:
    """(vectors (V, D) float32, found): pretrained vectors for the V = len(vocab) tokens of `vocab`.

    `path` is a text file (optionally .gz) in GloVe form ("word v1 ... vD" per line) or word2vec /
    fastText .vec form (the same after a first line "count D"). Row i holds the file's vector for
    vocab.token(i); a token missing from the file takes the vector of its lowercase form if the
    file has it (GloVe is lowercase), else a random normal row with the found vectors' standard
    deviation (seeded by `seed`), and <pad> a zero row. `found` counts the tokens with a vector.
    `dim`, if given, must match the file's D. Only the rows the vocabulary needs are parsed, so a
    large file costs one pass of line splitting. Raises ValueError naming the file and line for
    ragged lines, non-numeric values and binary (non-text) files.
    """
    if not isinstance(vocab, Vocab):
        raise TypeError(f"load_word_vectors: vocab must be a Vocab; got {type(vocab).__name__}")
    if dim is not None and (not is_int(dim) or dim < 1):
        raise ValueError(f"load_word_vectors: dim must be None or a positive int; got {dim!r}")
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ValueError(f"{path} {what}; pass a GloVe or word2vec text file")

    exact_ids = {token: i for i, token in enumerate(vocab.tokens)}
    lower_ids: dict[str, list[int]] = {}
    for token, i in exact_ids.items():
        lower_ids.setdefault(token.lower(), []).append(i)

    rows: dict[int, Tensor] = {}
    exact_rows: set[int] = set()
    file_dim = None
    try:
        with _open_text(path) as handle:
            lines = iter(handle)
            first_line = next(lines, None)
            if first_line is None or not first_line.strip():
                raise ValueError(f"{path}:1: empty first line; the file holds no word vectors")
            second_line = next(lines, None)
            first = first_line.split()
            second = second_line.split() if second_line is not None else None
            file_dim = _word2vec_header(first, second)
            header = file_dim is not None
            if not header:
                file_dim = len(first) - 1
                if file_dim < 1:
                    raise ValueError(
                        f"{path}:1: expected 'word v1 v2 ...' (GloVe) or 'count dim' (word2vec); "
                        f"got {first_line.strip()[:60]!r}"
                    )
            if dim is not None and dim != file_dim:
                raise ValueError(
                    f"load_word_vectors: {path} holds {file_dim}-dimensional vectors but dim={dim} "
                    f"was asked; pass dim={file_dim} or a file with {dim}-d vectors"
                )
            body = [] if header else [(1, first_line)]
            if second_line is not None:
                body.append((2, second_line))
            count = 0
            for line_number, line in _chain_numbered(body, lines, start=3):
                parts = line.split()
                if not parts:
                    continue  # blank lines (a trailing newline) carry no vector
                count += 1
                if len(parts) - 1 != file_dim:
                    raise ValueError(
                        f"{path}:{line_number}: expected a word and {file_dim} numbers, got "
                        f"{len(parts) - 1} numbers; every line must have the same length "
                        "(is the file truncated or a word split by a space?)"
                    )
                word = parts[0]
                exact = exact_ids.get(word)
                if exact in exact_rows:
                    exact = None  # a repeated word: the first vector wins
                # A lowercase file word also serves the vocabulary's other casings of it
                # ("the" for "The"), unless those have a vector already.
                fallback = (
                    [i for i in lower_ids.get(word, ()) if i not in rows and i != exact]
                    if word == word.lower()
                    else []
                )
                if exact is None and not fallback:
                    continue
                vector = _parse_vector(path, line_number, parts[1:])
                if exact is not None:
                    rows[exact] = vector
                    exact_rows.add(exact)
                for i in fallback:
                    rows[i] = vector
            if header and count != int(first[0]):
                raise ValueError(
                    f"{path}: the header says {first[0]} vectors but the file has {count}; "
                    "the file looks truncated (download it again)"
                )
    except UnicodeDecodeError:
        raise ValueError(
            f"{path} is not UTF-8 text; binary word2vec files must be converted to text "
            "(gensim: KeyedVectors.load_word2vec_format(p, binary=True).save_word2vec_format(q))"
        ) from None
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} cannot be read ({error}); check the file") from None
    return _assemble(vocab, rows, file_dim, seed), len(rows)


def _chain_numbered(head: list[tuple[int, str]], rest, start: int):
    yield from head
    yield from enumerate(rest, start=start)


def _parse_vector(path: Path, line_number: int, fields: list[str]) -> Tensor:
    try:
        return torch.tensor([float(field) for field in fields], dtype=torch.float32)
    except ValueError:
        bad = next(f for f in fields if not _is_float(f))
        raise ValueError(
            f"{path}:{line_number}: {bad!r} is not a number; vector values must be decimal "
            "numbers such as 0.418 or -1.2e-3"
        ) from None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _assemble(vocab: Vocab, rows: dict[int, Tensor], dim: int, seed: int) -> Tensor:
    """(V, D): the found rows; the rest random at the found vectors' scale; <pad> zero."""
    found = torch.stack(list(rows.values())) if rows else None
    # Random rows at the pretrained vectors' scale, so unknown words are neither louder nor
    # quieter than known ones; 0.1 when nothing was found.
    std = float(found.std()) if found is not None and found.numel() > 1 else 0.1
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(len(vocab), dim, generator=generator) * std
    if rows:
        matrix[list(rows)] = found
    if vocab.pad_id not in rows:
        matrix[vocab.pad_id] = 0.0
    return matrix
