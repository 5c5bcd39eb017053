"""Activation functions and their derivatives written in terms of the activation's output.

Cells save post-activation values in the forward step (as haste does) and form the backward step
from them: tanh' = 1 - y², sigmoid' = y(1 - y), relu' = [y > 0]. Keeping the forward value and the
derivative side by side here means every cell and kernel uses the same pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ACTIVATIONS", "IDENTITY", "RELU", "SIGMOID", "TANH", "Activation", "get_activation"]


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity y = f(x) and its derivative dy/dx expressed through y."""

    name: str
    forward: Callable[[Tensor], Tensor]
    derivative_from_output: Callable[[Tensor], Tensor]

    @property
    def is_identity(self) -> bool:
        return self.name == "identity"

    def backward(self, grad_output: Tensor, output: Tensor) -> Tensor:
        """dL/dx from dL/dy and y."""
        if self.is_identity:
            return grad_output
        return grad_output * self.derivative_from_output(output)


def _tanh_derivative(y: Tensor) -> Tensor:
    return 1.0 - y * y


def _sigmoid_derivative(y: Tensor) -> Tensor:
    return y * (1.0 - y)


def _relu_derivative(y: Tensor) -> Tensor:
    return (y > 0).to(y.dtype)


def _identity(x: Tensor) -> Tensor:
    return x


def _ones_like(y: Tensor) -> Tensor:
    return torch.ones_like(y)


TANH = Activation("tanh", torch.tanh, _tanh_derivative)
SIGMOID = Activation("sigmoid", torch.sigmoid, _sigmoid_derivative)
RELU = Activation("relu", torch.relu, _relu_derivative)
IDENTITY = Activation("identity", _identity, _ones_like)

ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (TANH, SIGMOID, RELU, IDENTITY)}


def get_activation(name: str, *, argument: str = "nonlinearity", allowed=None) -> Activation:
    """Look an activation up by name; unknown names raise a ValueError naming `argument`."""
    choices = tuple(allowed) if allowed is not None else tuple(ACTIVATIONS)
    if not isinstance(name, str) or name not in choices:
        raise ValueError(f"{argument} must be one of {', '.join(map(repr, choices))}; got {name!r}")
    return ACTIVATIONS[name]
