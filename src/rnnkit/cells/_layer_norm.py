"""Layer normalization over the feature axis of each row, forward and hand-derived backward.

torch.nn.LayerNorm's definition (Ba, Kiros, Hinton 2016), biased variance, eps inside the root:

    x̂ = (x - mean(x)) * rstd,   rstd = 1 / sqrt(var(x) + eps)     mean and var over the row
    y  = γ * x̂ + β

Backward, with g = dL/dy * γ and means over the row:

    dL/dx = rstd * (g - mean(g) - x̂ * mean(g * x̂))
    dL/dγ = sum over rows of dL/dy * x̂,   dL/dβ = sum over rows of dL/dy
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

__all__ = ["EPS", "OwnParameters", "layer_norm_backward", "normalize"]

EPS = 1e-5  # torch.nn.LayerNorm's default


def normalize(x: Tensor) -> tuple[Tensor, Tensor]:
    """(x̂, rstd) for each row of x (n, F): x̂ (n, F) zero mean and unit (biased) variance, rstd
    (n, 1). One fused torch kernel computes the row statistics and x̂ together."""
    x_hat, _, rstd = torch.native_layer_norm(x, (x.shape[-1],), None, None, EPS)
    return x_hat, rstd.view(-1, 1)


def layer_norm_backward(
    grad_y: Tensor, gain: Tensor, x_hat: Tensor, rstd: Tensor, out: Tensor | None = None
) -> Tensor:
    """dL/dx of y = γ x̂ + β from dL/dy (n, F), γ (F), and the forward's x̂ (n, F), rstd (n, 1);
    written into `out` when given (it may be grad_y itself)."""
    g = grad_y * gain  # dL/dx̂
    mean_g = g.mean(1, keepdim=True)  # (n, 1)
    mean_gx = torch.linalg.vecdot(g, x_hat).unsqueeze(1).div_(x_hat.shape[1])  # (n, 1)
    g.sub_(mean_g).addcmul_(x_hat, mean_gx, value=-1.0)
    return torch.mul(g, rstd, out=out) if out is not None else g.mul_(rstd)


class OwnParameters:
    """The parameter handling the layer-norm cells share (a mixin for Cell subclasses).

    A subclass lists `initial_values`: (name, width in units of H, initial value) per parameter;
    its `param_names` are those names, minus the plain biases when built with bias=False.
    `bind` returns a copy of the cell whose `params` maps each name to its tensor.
    """

    initial_values: tuple[tuple[str, int, float], ...] = ()
    plain_biases: tuple[str, ...] = ()  # present only with bias=True

    def __init__(self, bias: bool = True) -> None:
        self.bias = bias
        self.param_names = tuple(
            name for name, _, _ in self.initial_values if bias or name not in self.plain_biases
        )
        self.params: dict[str, Tensor] = {}  # filled by bind, for one sweep

    def init_params(self, hidden_size: int, *, device=None, dtype=None) -> tuple[Tensor, ...]:
        return tuple(
            torch.full((width * hidden_size,), value, device=device, dtype=dtype)
            for name, width, value in self.initial_values
            if name in self.param_names
        )

    def bind(self, params: tuple[Tensor, ...]):
        if len(params) != len(self.param_names):
            raise ValueError(
                f"{type(self).__name__} takes parameters ({', '.join(self.param_names)}); "
                f"got {len(params)} tensors"
            )
        bound = copy.copy(self)
        bound.params = dict(zip(self.param_names, params, strict=True))
        return bound

    def param(self, name: str) -> Tensor | None:
        """The bound tensor of `name`, or None for a plain bias the cell was built without."""
        return self.params.get(name)

    def extra_repr(self) -> str:
        return f"bias={self.bias}"
