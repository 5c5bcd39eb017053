"""Argument checks shared by every layer: each names the argument, what was expected and what came.

Never `assert` on user input (python -O strips asserts); raise TypeError for a wrong kind of
value and ValueError for a wrong value or shape.
"""

from __future__ import annotations

import dataclasses
import numbers

import torch
from torch import Tensor

BACKENDS = ("auto", "native", "reference", "compiled")


def check_positive_int(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be an int; got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer; got {value}")


def check_bool(owner: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(
            f"{owner}: {name} must be True or False; got {type(value).__name__} {value!r}"
        )


def check_dropout(owner: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(
            f"{owner}: dropout must be a probability in [0, 1] (the chance of zeroing an element "
            f"between layers); got {value!r}"
        )


def check_proj_size(owner: str, proj_size, hidden_size: int) -> None:
    if isinstance(proj_size, bool) or not isinstance(proj_size, int):
        raise TypeError(
            f"{owner}: proj_size must be an int (0 for no projection); got "
            f"{type(proj_size).__name__} {proj_size!r}"
        )
    if proj_size < 0 or proj_size >= hidden_size:
        raise ValueError(
            f"{owner}: proj_size must be 0 (no projection) or in 1..hidden_size-1 = "
            f"1..{hidden_size - 1}; got proj_size={proj_size} with hidden_size={hidden_size}"
        )


def check_backend(owner: str, backend) -> str:
    if backend not in BACKENDS:
        raise ValueError(
            f"{owner}: backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}"
        )
    return backend


def describe(value) -> str:
    """A short description of a value for error messages: type, and shape for tensors."""
    if isinstance(value, Tensor):
        return f"Tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def autocast_enabled(device: torch.device) -> bool:
    """Whether autocast is on for `device`'s type (False for types autocast does not know)."""
    try:
        return torch.is_autocast_enabled(device.type)
    except RuntimeError:  # e.g. "meta": no autocast dispatch key
        return False


def check_tensor_matches(owner: str, name: str, tensor: Tensor, reference: Tensor) -> None:
    """`tensor` must share dtype and device with the layer's weights (`reference`); under
    autocast any floating dtype is taken, as torch.nn takes it (the call casts)."""
    autocasting = torch.is_floating_point(tensor) and autocast_enabled(reference.device)
    if tensor.dtype != reference.dtype and not autocasting:
        fix = f"convert with {name}.to({reference.dtype})"
        if torch.is_floating_point(tensor):  # a layer can only take a floating dtype
            fix += f" or the layer with .to({tensor.dtype})"
        raise ValueError(
            f"{owner}: {name} has dtype {tensor.dtype} but the layer's weights are "
            f"{reference.dtype}; {fix}"
        )
    if tensor.device != reference.device:
        raise ValueError(
            f"{owner}: {name} is on device {tensor.device} but the layer's weights are on "
            f"{reference.device}; move one of them with .to(device)"
        )


def check_floating(
    owner: str, name: str, tensor: Tensor, target: torch.dtype | None = None
) -> None:
    """`tensor` must be floating point; `target` (the layer's dtype) names the conversion."""
    if not torch.is_floating_point(tensor):
        fix = f"{name}.to({target})" if target is not None else f"{name}.float()"
        raise TypeError(
            f"{owner}: {name} must be a floating-point tensor; got dtype {tensor.dtype} "
            f"(convert with {fix})"
        )


def dataclass_from_dict(cls, data, what: str):
    """`cls(**data)` for a config dataclass read from JSON, with one-line errors naming `what`
    for a non-object, unknown keys and missing required keys."""
    if not isinstance(data, dict):
        raise ValueError(f"a {what} must be a JSON object; got {type(data).__name__}")
    fields = dataclasses.fields(cls)
    unknown = sorted(set(data) - {f.name for f in fields})
    if unknown:
        raise ValueError(f"unknown {what} keys: {', '.join(unknown)}")
    required = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    return cls(**data)
