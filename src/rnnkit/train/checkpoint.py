"""Checkpoint directories: tensors in safetensors, everything else in JSON, never pickle.

A checkpoint directory holds

    checkpoint.json        format, step, tokenizer kind, model config, train config, val loss
    vocab.json             the Vocab
    weights.safetensors    the model's parameters (a tied output weight is stored once)

and, in the `latest/` checkpoint that a run resumes from,

    optimizer.safetensors  the optimizer's per-parameter tensors ("<param index>.<name>")
    optimizer.json         its param groups (hyperparameters) and non-tensor state
    trainer.safetensors    torch's RNG state (uint8) and the carried LM state ("state.<i>")
    trainer.json           step, schedule, data-stream position, clocks, best loss, curves

A checkpoint is written into a temporary directory and renamed into place (`atomic.replace_dir`),
so a kill leaves the previous checkpoint or the new one, never half of one.
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
from ..data import Vocab, make_tokenizer
from ..models import LanguageModel, LanguageModelConfig
from .config import TrainConfig

FORMAT = "rnnkit.language_model"
VERSION = 1

META = "checkpoint.json"
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


def _describe_config(config: LanguageModelConfig) -> str:
    return (
        f"cell={config.cell}, vocab_size={config.vocab_size}, embedding_dim="
        f"{config.embedding_dim}, hidden_size={config.hidden_size}, num_layers={config.num_layers}"
    )


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
    trainer: dict  # JSON-able: step, schedule, stream, clocks, best loss, curves
    tensors: dict[str, Tensor]  # RNG state, carried LM state


def save_checkpoint(
    final: str | os.PathLike,
    model: LanguageModel,
    vocab: Vocab,
    config: TrainConfig,
    *,
    step: int,
    val_loss: float | None = None,
    training: TrainingState | None = None,
) -> None:
    """Write a complete checkpoint directory at `final`, atomically replacing any old one."""
    final = Path(final)
    tmp = atomic.temp_dir_for(final)
    try:
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "step": step,
            "val_loss": val_loss,
            "tokens": config.tokens,
            "model": model.config.to_dict(),
            "train": config.to_dict(),
        }
        with open(tmp / META, "w", encoding="utf-8") as f:
            f.write(atomic.dumps(meta) + "\n")
        with open(tmp / VOCAB, "w", encoding="utf-8") as f:
            f.write(atomic.dumps(vocab.to_dict()) + "\n")
        save_file(unique_state_dict(model), tmp / WEIGHTS, metadata={"format": FORMAT})
        if training is not None:
            opt_tensors, opt_json = optimizer_to_files(training.optimizer)
            save_file(opt_tensors, tmp / OPTIMIZER_TENSORS)
            with open(tmp / OPTIMIZER_JSON, "w", encoding="utf-8") as f:
                f.write(atomic.dumps(opt_json) + "\n")
            save_file(
                {k: v.contiguous() for k, v in training.tensors.items()}, tmp / TRAINER_TENSORS
            )
            with open(tmp / TRAINER_JSON, "w", encoding="utf-8") as f:
                f.write(atomic.dumps(training.trainer) + "\n")
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
    meta = atomic.read_json(directory / META, "checkpoint description")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{directory / META} is not an rnnkit language-model checkpoint")
    if meta.get("version") != VERSION:
        raise ValueError(
            f"{directory / META} has format version {meta.get('version')!r}; this rnnkit reads "
            f"version {VERSION}"
        )
    return meta


def _rebuild(directory: Path, meta: dict) -> tuple[LanguageModel, Vocab, TrainConfig]:
    try:
        model_config = LanguageModelConfig.from_dict(meta["model"])
        config = TrainConfig.from_dict(meta["train"])
    except (KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"{directory / META} has a bad config ({detail})") from None
    vocab = Vocab.load(directory / VOCAB)
    if len(vocab) != model_config.vocab_size:
        raise ValueError(
            f"{directory}: vocab.json has {len(vocab)} tokens but the model config says "
            f"vocab_size={model_config.vocab_size}; the files do not belong together"
        )
    model = LanguageModel(model_config)
    load_weights(model, directory / WEIGHTS)
    return model, vocab, config


def load_checkpoint(path: str | os.PathLike):
    """(model, vocab, tokenizer, config) from a run directory (best/) or a checkpoint directory.

    The model is in eval mode; `config` is the run's TrainConfig.
    """
    directory = resolve_checkpoint(path)
    meta = read_meta(directory)
    model, vocab, config = _rebuild(directory, meta)
    model.eval()
    return model, vocab, make_tokenizer(config.tokens), config


def load_training_state(
    directory: Path, model: LanguageModel, optimizer: torch.optim.Optimizer
) -> tuple[dict, dict[str, Tensor]]:
    """Load weights and optimizer from a latest/ checkpoint; return (trainer JSON, tensors)."""
    read_meta(directory)
    load_weights(model, directory / WEIGHTS)
    return load_state_files(directory, optimizer)


def load_state_files(
    directory: Path, optimizer: torch.optim.Optimizer
) -> tuple[dict, dict[str, Tensor]]:
    """The files every latest/ checkpoint has besides its weights, whatever the model: the
    optimizer's state (loaded into `optimizer`) and the trainer's; returns (trainer JSON,
    trainer tensors). The caller checks the metadata and loads the weights first."""
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
