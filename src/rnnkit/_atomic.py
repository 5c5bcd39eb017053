"""Crash-safe writes: a file or a directory appears complete or not at all.

Files are written to a temporary file in the same directory, flushed and fsync'ed, then
os.replace'd over the target (atomic on POSIX), and the directory is fsync'ed so the rename
survives a power cut. A directory (a checkpoint) is filled under a temporary name and renamed
into place; the old one is first moved aside to `.NAME.old` and deleted afterwards, and
`recover_dir` puts it back if a kill fell between the two renames.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()
FILE_MODE = 0o666 & ~_UMASK  # what open() would give: tempfile's files and dirs are private
DIR_MODE = 0o777 & ~_UMASK


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename in `path` durable; best effort, since not every platform opens directories."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    write_bytes(path, text.encode(encoding))


def _json_safe(value):
    """JSON has no inf/nan: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def dumps(obj, indent: int | None = 2) -> str:
    return json.dumps(_json_safe(obj), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, dumps(obj) + "\n")


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    write_text(path, "".join(dumps(row, indent=None) + "\n" for row in rows))


def read_json(path: str | os.PathLike, what: str = "file"):
    """Parse a JSON file; a one-line ValueError names the file if it is missing or damaged."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: {what} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: {what} is not valid JSON ({error}); it is damaged") from None


def temp_dir_for(final: str | os.PathLike) -> Path:
    """A fresh empty directory next to `final` to fill before `replace_dir`."""
    final = Path(final)
    path = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    os.chmod(path, DIR_MODE)
    return path


def _old_name(final: Path) -> Path:
    return final.parent / f".{final.name}.old"


def replace_dir(filled: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move the complete directory `filled` to `final`, replacing what was there."""
    filled, final = Path(filled), Path(final)
    for entry in filled.iterdir():
        if entry.is_file():
            os.chmod(entry, FILE_MODE)
            with open(entry, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(filled)
    old = _old_name(final)
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.rename(final, old)
    os.rename(filled, final)
    fsync_dir(final.parent)
    if old.exists():
        shutil.rmtree(old)


def dir_or_aside_exists(final: str | os.PathLike) -> bool:
    """Whether `final` exists, or its old copy that a `replace_dir` cut short left aside."""
    final = Path(final)
    return final.exists() or _old_name(final).exists()


def recover_dir(final: str | os.PathLike) -> None:
    """Undo a `replace_dir` cut short by a kill, and drop half-written temporary directories."""
    final = Path(final)
    old = _old_name(final)
    if not final.exists() and old.exists():
        os.rename(old, final)
    elif old.exists():
        shutil.rmtree(old)
    for stale in final.parent.glob(f".{final.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
