"""Argument checks shared by every layer: each names the argument, what was expected and what came.

Never `assert` on user input (python -O strips asserts); raise TypeError for a wrong kind of
value and ValueError for a wrong value or shape.
"""

from __future__ import annotations

import dataclasses
import math
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


# ---------------------------------------------------------------- options of runs and tasks


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()  # Option.saved_before of a setting every saved run has


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting of a run or a task: its default, its meaning and what values it takes.

    The command line's flag (`--hidden-size` for hidden_size), its help and the check of a
    value given from Python or the command line all come from here, so a setting is declared
    once. `kind` is int, float, str or bool; a default of None means "not given" (the help says
    what is used then). Numbers take `minimum` (and `exclusive` to exclude it) and `below`
    (always excluded); strings may have `choices`; `path` marks a file or directory name.
    A setting added after runs were already being saved names in `saved_before` what those
    runs did, so that reading their config.json (to resume, evaluate or export) keeps their
    behaviour rather than the new default.
    """

    name: str
    default: object
    help: str
    kind: type | None = None
    choices: tuple | None = None
    metavar: str | None = None
    minimum: float | None = None
    exclusive: bool = False
    below: float | None = None
    path: bool = False
    what: str = ""  # a word for the value in errors: "a probability", "a fraction"
    saved_before: object = UNSET

    def __post_init__(self) -> None:
        if self.kind is None:
            object.__setattr__(self, "kind", type(self.default))

    @property
    def flag(self) -> str:
        return flag_name(self.name)

    def check(self, value) -> None:
        """A one-line ValueError naming the flag if `value` is not one this option takes."""
        if value is None and self.default is None:
            return
        if self.kind is bool:
            if not isinstance(value, bool):
                raise self.error("true or false", value)
        elif self.choices is not None:
            if value not in self.choices:
                raise self.error(f"one of {', '.join(map(str, self.choices))}", value)
        elif self.kind is int:
            if not is_int(value) or (self.minimum is not None and value < self.minimum):
                raise self.error(f"an integer >= {self.minimum:g}", value)
        elif self.kind is float:
            if not is_real(value) or not self._in_range(float(value)):
                raise self.error(self._range_text(), value)
        elif self.kind is str and (not isinstance(value, str) or not value):
            raise self.error("a file path" if self.path else "a non-empty text", value)

    def _in_range(self, value: float) -> bool:
        low = self.minimum
        if low is not None and (value < low or (self.exclusive and value == low)):
            return False
        return self.below is None or value < self.below

    def _range_text(self) -> str:
        what = self.what or "a number"
        if self.minimum is not None and self.below is not None:
            low = "(" if self.exclusive else "["
            return f"{what} in {low}{self.minimum:g}, {self.below:g})"
        if self.minimum is not None:
            return f"{what} {'>' if self.exclusive else '>='} {self.minimum:g}"
        if self.below is not None:
            return f"{what} < {self.below:g}"
        return self.what or "a finite number"

    def error(self, expected: str, value) -> ValueError:
        return ValueError(f"{self.flag} ({self.name}) must be {expected}; got {value!r}")


def flag_name(name: str) -> str:
    """The command-line flag of a setting: hidden_size -> --hidden-size."""
    return "--" + name.replace("_", "-")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value) -> bool:
    """A finite real number that is not a bool."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def check_count(what: str, value, minimum: int = 1) -> None:
    """An integer setting given outside a config (a CLI flag, a method argument)."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}; got {value!r}")


def suggest(name: str, known) -> str:
    """' (did you mean X?)' for the closest of `known` to a misspelt `name`, else ''."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def is_number(value) -> bool:
    """A real number (finite or not) that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
