"""The run directory: what `--out` may name, what a resume may change, starting over.

A run directory is recognised by its config.json. A new run needs a missing or empty directory;
an existing run is continued only with `resume` (and only from a latest/ checkpoint: a resume
never starts over) and replaced only with `force` (and then only once the new run's config and
data have been checked, by the caller). A non-empty directory that is not a run is never touched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import _atomic as atomic
from .config import RESUMABLE_OVERRIDES, TrainConfig, flag_name

RUN_FORMAT = "rnnkit.run"
RUN_VERSION = 2  # 1 (no version key): the language model's own trainer, task settings flat
CONFIG = "config.json"
TASK = "task.json"
LOG = "log.jsonl"
METRICS = "metrics.json"
PLOT = "loss_curve.png"
GRAD_PLOT = "grad_norm.png"
LATEST = "latest"
BEST = "best"
# Everything --force deletes: the run's own files (a task's extra files are added by name).
RUN_ENTRIES = (CONFIG, TASK, "vocab.json", LOG, METRICS, PLOT, GRAD_PLOT, LATEST, BEST)


@dataclass
class StoredRun:
    config: TrainConfig
    source: dict  # what the run was trained on: {"data", "sha256", ...}
    model: dict  # the model config the run was built with
    version: int


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
        if not atomic.dir_or_aside_exists(out / LATEST):
            raise ValueError(
                f"--out {out} has no {LATEST}/ checkpoint to resume (the run stopped before "
                "its first save); start it again with --force, which replaces it"
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
    """The run's config.json (any version; `check_resumable` says whether it can continue)."""
    data = atomic.read_json(out / CONFIG, "run config")
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise ValueError(f"{out / CONFIG} is not an rnnkit run config")
    try:
        config = TrainConfig.from_dict(data["train"])
    except (KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{out / CONFIG} has a bad train config ({detail})") from None
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    source = data.get("data") if isinstance(data.get("data"), dict) else {}
    version = data.get("version", 1)
    return StoredRun(config=config, source=source, model=model, version=version)


def check_resumable(out: Path, stored: StoredRun) -> None:
    if stored.version != RUN_VERSION:
        raise ValueError(
            f"--resume: {out} was written by an rnnkit before one trainer ran every task (run "
            f"format version {stored.version}; this rnnkit resumes version {RUN_VERSION}). Its "
            "checkpoints still load for generate, predict and evaluate; start a new run to "
            "train further"
        )


def config_for_resume(out: str, overrides: dict) -> TrainConfig:
    """The stored run's config with `overrides` (options given again on the command line)."""
    check_out(Path(out), resume=True, force=False)
    stored = read_run(Path(out))
    check_resumable(Path(out), stored)
    if "max_steps" in overrides and "max_epochs" not in overrides:
        overrides = {**overrides, "max_epochs": None}  # as task_config: the steps asked for
    return stored.config.with_overrides(**{"out": out, **overrides})


def stored_task(out: str) -> str:
    """The --task of the run in `out` (for `rnnkit train --resume`)."""
    check_out(Path(out), resume=True, force=False)
    return read_run(Path(out)).config.task


def _settings(config: TrainConfig) -> dict:
    settings = config.to_dict()
    return {**{k: v for k, v in settings.items() if k != "options"}, **settings["options"]}


def check_resume_matches(stored: TrainConfig, given: TrainConfig) -> None:
    """A resume may change only the budget, cadence, threads and data path (same content)."""
    before = _settings(stored)
    for name, value in _settings(given).items():
        if name in RESUMABLE_OVERRIDES:
            continue
        if before.get(name) != value:
            changeable = [flag_name(n) for n in RESUMABLE_OVERRIDES if n != "out"]
            raise ValueError(
                f"--resume: {flag_name(name)} is {value!r} but the run was started with "
                f"{before.get(name)!r}; a resumed run keeps its settings (only "
                f"{', '.join(changeable[:-1])} and {changeable[-1]} may change; --data to a "
                "file of the same contents)"
            )


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
