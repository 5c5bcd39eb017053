"""The run directory: what `--out` may name, what a resume may change, starting over.

A run directory is recognised by its config.json. A new run needs a missing or empty directory;
an existing run is continued only with `resume` and replaced only with `force` (and then only
once the new run's config and data have been checked, by the caller). A non-empty directory
that is not a run is never touched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import _atomic as atomic
from ..data import Vocab
from .config import RESUMABLE_OVERRIDES, TrainConfig, flag_name

RUN_FORMAT = "rnnkit.run"
CONFIG = "config.json"
VOCAB = "vocab.json"
LOG = "log.jsonl"
METRICS = "metrics.json"
PLOT = "loss_curve.png"
LATEST = "latest"
BEST = "best"
RUN_ENTRIES = (CONFIG, VOCAB, LOG, METRICS, PLOT, LATEST, BEST)


@dataclass
class StoredRun:
    config: TrainConfig
    vocab: Vocab
    source: dict
    model: dict  # the LanguageModelConfig the run was built with


def check_out(out: Path, *, resume: bool, force: bool) -> str:
    """What to do with `out`: "new", "resume" or "replace".

    Raises ValueError, touching nothing, if `out` cannot be used that way.
    """
    if resume and force:
        raise ValueError("--resume and --force exclude each other: continue the run or replace it")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; name a directory for the run")
    is_run = (out / CONFIG).is_file()
    if resume:
        if not is_run:
            raise ValueError(
                f"--out {out} holds no run to resume (no {CONFIG}); start one without --resume"
            )
        return "resume"
    if not out.exists() or not any(out.iterdir()):
        return "new"
    if not is_run:
        raise ValueError(
            f"--out {out} is not empty and holds no rnnkit run; name a new or empty directory"
        )
    if not force:
        raise ValueError(
            f"--out {out} already holds a run; pass --resume to continue it or --force to "
            "replace it"
        )
    return "replace"


def read_run(out: Path) -> StoredRun:
    data = atomic.read_json(out / CONFIG, "run config")
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise ValueError(f"{out / CONFIG} is not an rnnkit run config")
    try:
        config = TrainConfig.from_dict(data["train"])
    except (KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{out / CONFIG} has a bad train config ({detail})") from None
    vocab = Vocab.load(out / VOCAB)
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    return StoredRun(config=config, vocab=vocab, source=data.get("data", {}), model=model)


def config_for_resume(out: str, overrides: dict) -> TrainConfig:
    """The stored run's config with `overrides` (options given again on the command line)."""
    check_out(Path(out), resume=True, force=False)
    stored = read_run(Path(out)).config
    return stored.with_overrides(**{"out": out, **overrides})


def check_resume_matches(stored: TrainConfig, given: TrainConfig) -> None:
    """A resume may change only the budget, cadence, threads and data path (same content)."""
    for name, value in given.to_dict().items():
        if name in RESUMABLE_OVERRIDES:
            continue
        if getattr(stored, name) != value:
            raise ValueError(
                f"--resume: {flag_name(name)} is {value!r} but the run was started with "
                f"{getattr(stored, name)!r}; a resumed run keeps its settings (only "
                "--max-time, --max-steps, --eval-every, --save-every and --threads may change)"
            )


def write_run_files(out: Path, config: TrainConfig, model_config: dict, vocab, source) -> None:
    atomic.write_json(
        out / CONFIG,
        {"format": RUN_FORMAT, "train": config.to_dict(), "model": model_config, "data": source},
    )
    atomic.write_json(out / VOCAB, vocab.to_dict())


def clear_run(out: Path) -> None:
    """Delete the files of the run in `out` (for --force); other files stay."""
    for name in RUN_ENTRIES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for pattern in (".*.tmp", ".*.old"):
        for path in out.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
