"""Checkpoint directories of every task: tensors in safetensors, everything else in JSON, never
pickle.

A checkpoint directory holds

    checkpoint.json        format "rnnkit.task_model", version, task name, step, held-out
                           metrics, model config, train config
    task.json              {"task": name, "state": Task.state_dict()}: vocabularies, label
                           sets, scalers (the language model: its vocabulary, dropout, framing)
    weights.safetensors    the model's parameters (a tied output weight is stored once)
    vocab.json ...         files the task adds to be readable on their own (Task.run_files)

and, in the `latest/` checkpoint that a run resumes from,

    optimizer.safetensors  the optimizer's per-parameter tensors ("<param index>.<name>")
    optimizer.json         its param groups (hyperparameters) and non-tensor state
    trainer.safetensors    torch's RNG state (uint8) and the task's carried state ("carry.<i>")
    trainer.json           step, schedule, batch position, clocks, best figures, curves

A checkpoint is written into a temporary directory and renamed into place (`atomic.replace_dir`),
so a kill leaves the previous checkpoint or the new one, never half of one.

Earlier formats still load for generate, predict and evaluate: "rnnkit.language_model" version
1 (the language model's own trainer, with vocab.json) and "rnnkit.task_model" version 1 (the
task settings flat in the train config). A run in those formats cannot be resumed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .. import _atomic as atomic
from .config import TrainConfig

FORMAT = "rnnkit.task_model"
VERSION = 2
LEGACY_LM_FORMAT = "rnnkit.language_model"  # version 1: before the language model was a task
READABLE = {(FORMAT, 2), (FORMAT, 1), (LEGACY_LM_FORMAT, 1)}

META = "checkpoint.json"
TASK_JSON = "task.json"
VOCAB = "vocab.json"
WEIGHTS = "weights.safetensors"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
TRAINER_TENSORS = "trainer.safetensors"
TRAINER_JSON = "trainer.json"


# ---------------------------------------------------------------- tensors <-> files


def unique_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """The module's state_dict with tensors that share memory (tied weights) listed once."""
    seen: set[tuple] = set()
    tensors = {}
    for name, tensor in module.state_dict().items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape)
        if key in seen:
            continue
        seen.add(key)
        tensors[name] = tensor.detach().contiguous()
    return tensors


def read_tensors(path: Path) -> dict[str, Tensor]:
    """Load a safetensors file; a missing or damaged file is a one-line ValueError."""
    if not path.is_file():
        raise ValueError(f"{path} is missing; the checkpoint is incomplete")
    try:
        return load_file(path)
    except Exception as error:  # safetensors raises its own SafetensorError, or OSError
        detail = " ".join(str(error).split())
        raise ValueError(f"{path} is not a readable safetensors file ({detail})") from None


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    if not path.is_file():
        raise ValueError(f"{path} is missing; the checkpoint is incomplete")
    try:
        with safe_open(path, framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
    except Exception as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{path} is not a readable safetensors file ({detail})") from None


def check_weights_match(model: nn.Module, path: Path) -> None:
    """Every stored tensor must exist in the model with the same shape, and none may be missing."""
    stored = _tensor_shapes(path)
    expected = {name: tuple(t.shape) for name, t in unique_state_dict(model).items()}
    config = getattr(model, "config", None)
    described = f" ({_describe_config(config)})" if config is not None else ""
    for name, shape in expected.items():
        if name not in stored:
            raise ValueError(f"{path} lacks {name}: the weights do not match the config{described}")
        if stored[name] != shape:
            raise ValueError(
                f"{path}: {name} has shape {stored[name]} but the config{described} needs "
                f"{shape}; the weights do not belong to this config"
            )
    extra = sorted(set(stored) - set(expected))
    if extra:
        raise ValueError(
            f"{path} has tensors the config{described} has no place for: {', '.join(extra[:3])}"
        )


def _describe_config(config) -> str:
    names = ("cell", "vocab_size", "embedding_dim", "hidden_size", "num_layers")
    return ", ".join(f"{n}={getattr(config, n)}" for n in names if hasattr(config, n))


def load_weights(model: nn.Module, path: Path) -> None:
    check_weights_match(model, path)
    tensors = read_tensors(path)
    model.load_state_dict(tensors, strict=False)  # tied aliases are the only missing keys


# ---------------------------------------------------------------- optimizer


def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """Split optimizer.state_dict() into tensors (for safetensors) and the rest (for JSON)."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    plain: dict[str, dict] = {}
    for index, entries in state_dict["state"].items():
        for name, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"{index}.{name}"] = value.detach().contiguous()
            else:
                plain.setdefault(str(index), {})[name] = value
    groups = [dict(group) for group in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "state": plain}


def optimizer_from_files(tensors: dict[str, Tensor], data: dict) -> dict:
    """The inverse of `optimizer_to_files`: a state_dict for optimizer.load_state_dict."""
    state: dict[int, dict] = {}
    for key, tensor in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = tensor
    for index, entries in data.get("state", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = []
    for group in data["param_groups"]:
        group = {
            k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()
        }
        groups.append(group)
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------- save


@dataclass
class TrainingState:
    """What a resumed run needs beyond the weights: JSON-able values and tensors."""

    optimizer: torch.optim.Optimizer
    trainer: dict  # JSON-able: step, schedule, batch position, clocks, best figures, curves
    tensors: dict[str, Tensor]  # RNG state, the task's carried state


def task_file(task) -> dict:
    return {"task": task.name, "state": task.state_dict()}


def save_checkpoint(
    final: str | os.PathLike,
    task,
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
        for name, content in task.run_files().items():
            atomic.write_json(tmp / name, content)
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


# ---------------------------------------------------------------- load


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint directory from a run directory (its best/, else latest/) or itself."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist; pass a run directory or a checkpoint in it")
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory; pass a run directory or a checkpoint in it")
    if (path / META).exists() or (path / WEIGHTS).exists():
        return path
    for name in ("best", "latest"):
        # .NAME.old is the previous checkpoint while a save renames the new one into place.
        for candidate in (path / name, path / f".{name}.old"):
            if (candidate / META).exists():
                return candidate
    raise ValueError(
        f"{path} holds no checkpoint (no {META}, best/ or latest/); pass the directory that "
        "`rnnkit train --out` wrote, or a checkpoint inside it"
    )


def read_meta(directory: Path) -> dict:
    """checkpoint.json, checked to be a format this rnnkit reads; `task` is filled in for the
    language-model format of version 1."""
    meta = atomic.read_json(directory / META, "checkpoint description")
    if not isinstance(meta, dict) or meta.get("format") not in (FORMAT, LEGACY_LM_FORMAT):
        raise ValueError(f"{directory / META} is not an rnnkit checkpoint")
    if (meta["format"], meta.get("version")) not in READABLE:
        raise ValueError(
            f"{directory / META} has format {meta['format']} version {meta.get('version')!r}; "
            f"this rnnkit reads {FORMAT} versions 1 and 2 and {LEGACY_LM_FORMAT} version 1 "
            "(a newer rnnkit wrote it: upgrade rnnkit)"
        )
    if meta["format"] == LEGACY_LM_FORMAT:
        meta = {**meta, "task": "lm"}
    return meta


def is_current(meta: dict) -> bool:
    return meta.get("format") == FORMAT and meta.get("version") == VERSION


def checkpoint_task(path: str | os.PathLike) -> str:
    """The task of the checkpoint at `path` (a run or checkpoint directory): "lm", "tag", ..."""
    meta = read_meta(resolve_checkpoint(path))
    task = meta.get("task")
    if not isinstance(task, str):
        raise ValueError(f"{path}: {META} names no task")
    return task


def _bad(directory: Path, what: str, error: Exception) -> ValueError:
    detail = " ".join(str(error).split())
    return ValueError(f"{directory / META} has a bad {what} ({detail})")


def _restore_task(directory: Path, meta: dict, config: TrainConfig):
    """The task of `config` with the fitted state stored beside the weights."""
    from ..tasks.base import make_task

    task = make_task(config)
    if meta["format"] == LEGACY_LM_FORMAT:
        from ..data import Vocab

        # The language model's own trainer kept the vocabulary in vocab.json and framed no
        # lines; its dropout is the model's.
        state = {
            "vocab": Vocab.load(directory / VOCAB).to_dict(),
            "dropout": float(meta.get("model", {}).get("dropout", 0.0)),
            "boundaries": "none",
        }
    else:
        data = atomic.read_json(directory / TASK_JSON, "task state")
        if not isinstance(data, dict) or data.get("task") != config.task:
            raise ValueError(
                f"{directory / TASK_JSON} does not describe a {config.task} task; the files do "
                "not belong together"
            )
        state = data.get("state")
    try:
        task.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{directory / TASK_JSON} is damaged ({detail})") from None
    return task


@dataclass
class LoadedTask:
    """A trained model ready for generate, predict and evaluate."""

    task: object  # the rnnkit.tasks.base.Task, its fitted state restored
    model: nn.Module
    config: TrainConfig
    meta: dict
    directory: Path


def load_task_checkpoint(path: str | os.PathLike) -> LoadedTask:
    """The task, its model (eval mode) and config from a run directory (best/) or a checkpoint,
    of any task and of every readable format."""
    directory = resolve_checkpoint(path)
    meta = read_meta(directory)
    try:
        train = dict(meta["train"])
        if meta["format"] == LEGACY_LM_FORMAT:
            train["task"] = "lm"
        config = TrainConfig.from_dict(train)
    except (KeyError, TypeError, ValueError) as error:
        raise _bad(directory, "config", error) from None
    task = _restore_task(directory, meta, config)
    try:
        model = task.build_model(meta["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise _bad(directory, "model config", error) from None
    if config.task == "lm" and len(task.vocab) != model.config.vocab_size:
        raise ValueError(
            f"{directory}: the vocabulary has {len(task.vocab)} tokens but the model config "
            f"says vocab_size={model.config.vocab_size}; the files do not belong together"
        )
    load_weights(model, directory / WEIGHTS)
    model.eval()
    return LoadedTask(task=task, model=model, config=config, meta=meta, directory=directory)


def load_checkpoint(path: str | os.PathLike):
    """(model, vocab, tokenizer, config) of a language model from a run directory (best/) or a
    checkpoint directory. The model is in eval mode; `config` is the run's TrainConfig."""
    loaded = load_task_checkpoint(path)
    if loaded.task.name != "lm":
        raise ValueError(
            f"{path} holds a {loaded.task.name} model, not a language model; use rnnkit predict "
            f"--checkpoint {path} --data FILE (or rnnkit evaluate)"
        )
    return loaded.model, loaded.task.vocab, loaded.task.tokenizer, loaded.config


def load_training_state(
    directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict, dict[str, Tensor]]:
    """Load weights and optimizer from a latest/ checkpoint; return (trainer JSON, tensors)."""
    meta = read_meta(directory)
    if not is_current(meta):
        raise ValueError(
            f"{directory} was written in checkpoint format {meta['format']} version "
            f"{meta.get('version')}, by an rnnkit before one trainer ran every task; it loads "
            "for generate, predict and evaluate but cannot be resumed: start a new run "
            "(--force replaces this one)"
        )
    load_weights(model, directory / WEIGHTS)
    opt_tensors = read_tensors(directory / OPTIMIZER_TENSORS)
    opt_json = atomic.read_json(directory / OPTIMIZER_JSON, "optimizer state")
    try:
        optimizer.load_state_dict(optimizer_from_files(opt_tensors, opt_json))
    except (KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise ValueError(
            f"{directory}: optimizer state does not fit the model ({detail})"
        ) from None
    trainer = atomic.read_json(directory / TRAINER_JSON, "trainer state")
    tensors = read_tensors(directory / TRAINER_TENSORS)
    return trainer, tensors
