"""Layer normalization over the feature axis of each row, forward and backward.

torch.nn.LayerNorm's definition (Ba, Kiros, Hinton 2016), biased variance, eps inside the root:

    x̂ = (x - mean(x)) * rstd,   rstd = 1 / sqrt(var(x) + eps)     mean and var over the row
    y  = γ * x̂ + β

Backward, with g = dL/dy * γ and means over the row:

    dL/dx = rstd * (g - mean(g) - x̂ * mean(g * x̂))
    dL/dγ = sum over rows of dL/dy * x̂,   dL/dβ = sum over rows of dL/dy

Per step the cells call torch's fused kernel for dL/dx (one pass over the row, like the fused
tanh and sigmoid backwards in rnnkit.activations), from the step's input, mean and rstd. Once per
sweep, where the input was overwritten (the input projection, normalized in place), the formula
above runs from x̂ in a few ops over all rows. dγ and dβ are summed once per sweep by the cells.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

__all__ = [
    "EPS",
    "OwnParameters",
    "equations_layer_norm",
    "layer_norm_backward",
    "layer_norm_backward_from_normalized",
    "normalize",
]

EPS = 1e-5  # torch.nn.LayerNorm's default


def equations_layer_norm(v: Tensor, own: dict, prefix: str) -> Tensor:
    """LN(v; γ, β) with torch.nn.functional.layer_norm, γ and β the cell's `{prefix}_weight`
    and `{prefix}_bias` (for the cells' plain-torch equations)."""
    import torch.nn.functional as F

    gain, shift = own[f"{prefix}_weight"], own[f"{prefix}_bias"]
    # int(): a constant for tracers (ONNX's LayerNormalization needs one); the width of a
    # cell's gates never varies
    return F.layer_norm(v, (int(v.shape[-1]),), gain, shift, EPS)


def normalize(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(x̂, mean, rstd) for each row of x (n, F): x̂ (n, F) zero mean and unit (biased) variance,
    mean and rstd (n, 1). One fused torch kernel computes all three."""
    return torch.native_layer_norm(x, (x.shape[-1],), None, None, EPS)


def layer_norm_backward(
    grad_y: Tensor, gain: Tensor, x: Tensor, mean: Tensor, rstd: Tensor
) -> tuple[Tensor, Tensor]:
    """(dL/dx, dL/dγ summed over these n rows) of y = γ x̂ + β, from dL/dy (n, F), γ (F) and the
    forward's input x (n, F) and row statistics mean, rstd (n, 1): torch's fused kernel, which
    forms the γ sum in the same pass (dL/dβ, a plain sum of dL/dy, is left to the caller)."""
    grad_x, grad_gain, _ = torch.ops.aten.native_layer_norm_backward(
        grad_y, x, [x.shape[-1]], mean, rstd, gain, None, [True, True, False]
    )
    return grad_x, grad_gain


def layer_norm_backward_from_normalized(
    grad_y: Tensor, gain: Tensor, x_hat: Tensor, rstd: Tensor, out: Tensor | None = None
) -> Tensor:
    """dL/dx of y = γ x̂ + β from dL/dy (n, F), γ (F), x̂ (n, F) and rstd (n, 1), for when x
    itself is gone; written into `out` when given (it may be grad_y itself)."""
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

    def kernel_params(self, params: tuple[Tensor, ...]) -> tuple[Tensor | None, ...]:
        """Every declared parameter in `initial_values` order, None for an absent plain bias."""
        given = dict(zip(self.param_names, params, strict=True))
        return tuple(given.get(name) for name, _, _ in self.initial_values)

    def param(self, name: str) -> Tensor | None:
        """The bound tensor of `name`, or None for a plain bias the cell was built without."""
        return self.params.get(name)

    def extra_repr(self) -> str:
        return f"bias={self.bias}"
