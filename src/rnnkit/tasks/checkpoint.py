"""Task checkpoints: the language model's layout (rnnkit.train.checkpoint) with task.json added.

A task checkpoint directory holds

    checkpoint.json        format "rnnkit.task_model", task name, step, held-out metrics,
                           model config, train config
    task.json              {"task": name, "state": Task.state_dict()}: vocabularies, labels,
                           scalers
    weights.safetensors    the model's parameters

and, in latest/, the optimizer and trainer files of rnnkit.train.checkpoint (optimizer tensors in
safetensors, its hyperparameters and the trainer state in JSON, torch's RNG state as a uint8
tensor). Written into a temporary directory and renamed into place; no pickle anywhere.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from .. import _atomic as atomic
from ..train.checkpoint import (
    META,
    OPTIMIZER_JSON,
    OPTIMIZER_TENSORS,
    TRAINER_JSON,
    TRAINER_TENSORS,
    WEIGHTS,
    TrainingState,
    load_state_files,
    optimizer_to_files,
    read_tensors,
    resolve_checkpoint,
    unique_state_dict,
)
from ..train.config import TrainConfig
from .base import Task, make_task

FORMAT = "rnnkit.task_model"
VERSION = 1
TASK_JSON = "task.json"


def task_file(task: Task) -> dict:
    return {"task": task.name, "state": task.state_dict()}


def save_task_checkpoint(
    final: str | os.PathLike,
    task: Task,
    model: nn.Module,
    *,
    step: int,
    metrics: dict | None = None,
    training: TrainingState | None = None,
) -> None:
    """Write a complete checkpoint directory at `final`, atomically replacing any old one."""
    final = Path(final)
    tmp = atomic.temp_dir_for(final)
    try:
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "task": task.name,
            "step": step,
            "metrics": metrics,
            "model": model.config.to_dict(),
            "train": task.config.to_dict(),
        }
        atomic.write_json(tmp / META, meta)
        atomic.write_json(tmp / TASK_JSON, task_file(task))
        save_file(unique_state_dict(model), tmp / WEIGHTS, metadata={"format": FORMAT})
        if training is not None:
            opt_tensors, opt_json = optimizer_to_files(training.optimizer)
            save_file(opt_tensors, tmp / OPTIMIZER_TENSORS)
            atomic.write_json(tmp / OPTIMIZER_JSON, opt_json)
            save_file(
                {k: v.contiguous() for k, v in training.tensors.items()}, tmp / TRAINER_TENSORS
            )
            atomic.write_json(tmp / TRAINER_JSON, training.trainer)
        atomic.replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def checkpoint_format(path: str | os.PathLike) -> str:
    """ "lm" or "task": which kind of checkpoint `path` (a run or checkpoint directory) holds."""
    directory = resolve_checkpoint(path)
    meta = atomic.read_json(directory / META, "checkpoint description")
    return "task" if isinstance(meta, dict) and meta.get("format") == FORMAT else "lm"


def read_task_meta(directory: Path) -> dict:
    meta = atomic.read_json(directory / META, "checkpoint description")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(
            f"{directory / META} is not an rnnkit task-model checkpoint (a language model? use "
            "rnnkit generate / evaluate)"
        )
    if meta.get("version") != VERSION:
        raise ValueError(
            f"{directory / META} has format version {meta.get('version')!r}; this rnnkit reads "
            f"version {VERSION}"
        )
    return meta


def restore_task(directory: Path, config: TrainConfig) -> Task:
    """The Task of `config` with the fitted state of `directory`/task.json."""
    data = atomic.read_json(directory / TASK_JSON, "task state")
    if not isinstance(data, dict) or data.get("task") != config.task:
        raise ValueError(
            f"{directory / TASK_JSON} does not describe a {config.task} task; the files do not "
            "belong together"
        )
    task = make_task(config)
    try:
        task.load_state_dict(data["state"])
    except (KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{directory / TASK_JSON} is damaged ({detail})") from None
    return task


def load_weights(model: nn.Module, path: Path) -> None:
    """Load safetensors weights whose names and shapes must match the model's exactly."""
    stored = read_tensors(path)
    expected = unique_state_dict(model)
    for name, tensor in expected.items():
        if name not in stored:
            raise ValueError(f"{path} lacks {name}: the weights do not match the model config")
        if stored[name].shape != tensor.shape:
            raise ValueError(
                f"{path}: {name} has shape {tuple(stored[name].shape)} but the model config "
                f"needs {tuple(tensor.shape)}; the weights do not belong to this config"
            )
    extra = sorted(set(stored) - set(expected))
    if extra:
        raise ValueError(f"{path} has tensors the model has no place for: {', '.join(extra[:3])}")
    model.load_state_dict(stored, strict=False)  # tied aliases are the only missing keys


@dataclass
class LoadedTask:
    """A trained task model ready for predict/evaluate."""

    task: Task
    model: nn.Module
    config: TrainConfig
    meta: dict
    directory: Path


def load_task_checkpoint(path: str | os.PathLike) -> LoadedTask:
    """The task, its model (eval mode) and config from a run directory (best/) or a checkpoint."""
    directory = resolve_checkpoint(path)
    meta = read_task_meta(directory)
    try:
        config = TrainConfig.from_dict(meta["train"])
    except (KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{directory / META} has a bad config ({detail})") from None
    task = restore_task(directory, config)
    try:
        model = task.build_model(meta["model"])
    except (KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{directory / META} has a bad model config ({detail})") from None
    load_weights(model, directory / WEIGHTS)
    model.eval()
    return LoadedTask(task=task, model=model, config=config, meta=meta, directory=directory)


def load_task_training_state(directory: Path, model: nn.Module, optimizer) -> tuple[dict, dict]:
    """Weights and optimizer from a latest/ checkpoint; returns (trainer JSON, trainer tensors)."""
    read_task_meta(directory)
    load_weights(model, directory / WEIGHTS)
    return load_state_files(directory, optimizer)
