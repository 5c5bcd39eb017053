"""Activation functions and their derivatives written in terms of the activation's output.

Cells save post-activation values in the forward step (as haste does) and form the backward step
from them: tanh' = 1 - y², sigmoid' = y(1 - y), relu' = [y > 0], identity' = 1. Keeping the
forward value and the derivative side by side here means every cell and kernel uses the same pair.
The compiled engine's C++ twin is rnnkit/engine/compiled/vecmath.h; `Activation.code` is the
number both sides use for an activation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ACTIVATIONS", "IDENTITY", "RELU", "SIGMOID", "TANH", "Activation", "get_activation"]


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity y = f(x) and its derivative dy/dx expressed through y.

    `forward(x, out)` writes into `out` when given; `backward(grad_y, y, out)` returns
    dL/dx = dL/dy * f'(x) computed from y, with torch's fused backward kernels where they exist
    (one pass instead of three elementwise ops).
    """

    name: str
    _forward: Callable[..., Tensor]
    _backward: Callable[..., Tensor] | None  # (grad_y, y, out) -> grad_x; None for identity
    code: int  # rnnkit::Activation in vecmath.h

    @property
    def is_identity(self) -> bool:
        return self._backward is None

    def forward(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        if out is None:
            return self._forward(x)
        return self._forward(x, out=out)

    def backward(self, grad_output: Tensor, output: Tensor, out: Tensor | None = None) -> Tensor:
        """dL/dx from dL/dy and y."""
        if self._backward is None:
            return grad_output if out is None else out.copy_(grad_output)
        return self._backward(grad_output, output, out)


def _tanh_backward(grad: Tensor, y: Tensor, out: Tensor | None) -> Tensor:
    """grad * (1 - y²)"""
    if out is None:
        return torch.ops.aten.tanh_backward(grad, y)
    return torch.ops.aten.tanh_backward.grad_input(grad, y, grad_input=out)


def _sigmoid_backward(grad: Tensor, y: Tensor, out: Tensor | None) -> Tensor:
    """grad * y * (1 - y)"""
    if out is None:
        return torch.ops.aten.sigmoid_backward(grad, y)
    return torch.ops.aten.sigmoid_backward.grad_input(grad, y, grad_input=out)


def _relu_backward(grad: Tensor, y: Tensor, out: Tensor | None) -> Tensor:
    """grad * [y > 0]"""
    if out is None:
        return torch.ops.aten.threshold_backward(grad, y, 0)
    return torch.ops.aten.threshold_backward.grad_input(grad, y, 0, grad_input=out)


def _relu(x: Tensor, out: Tensor | None = None) -> Tensor:
    return torch.clamp_min(x, 0) if out is None else torch.clamp_min(x, 0, out=out)


def _identity(x: Tensor, out: Tensor | None = None) -> Tensor:
    return x if out is None else out.copy_(x)


IDENTITY = Activation("identity", _identity, None, 0)
TANH = Activation("tanh", torch.tanh, _tanh_backward, 1)
RELU = Activation("relu", _relu, _relu_backward, 2)
SIGMOID = Activation("sigmoid", torch.sigmoid, _sigmoid_backward, 3)

ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (TANH, SIGMOID, RELU, IDENTITY)}


def get_activation(
    name: str, *, argument: str = "nonlinearity", allowed=None, owner: str | None = None
) -> Activation:
    """Look an activation up by name; unknown names raise a ValueError naming `argument` (and
    the layer `owner`, when given)."""
    choices = tuple(allowed) if allowed is not None else tuple(ACTIVATIONS)
    if not isinstance(name, str) or name not in choices:
        prefix = f"{owner}: " if owner else ""
        raise ValueError(
            f"{prefix}{argument} must be one of {', '.join(map(repr, choices))}; got {name!r}"
        )
    return ACTIVATIONS[name]
