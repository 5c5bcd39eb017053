"""Second derivatives through a sweep (backward with create_graph=True, gradgradcheck).

Both engines' backward sweeps are written by hand, in-place and, for the compiled engine,
outside torch: nothing autograd could differentiate again. When autograd asks a sweep's
backward for a graph (it runs with grad mode on), the engine hands over to this module: it
runs the sweep again through the cell's own `equations` (plain differentiable torch ops, the
definition both engines are tested against) and lets autograd form the vector-Jacobian
product with create_graph=True. The gradients are the same to rounding; they cost one forward
and one backward by autograd, and only when second derivatives are asked for.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["differentiable_backward", "equations_sweep"]


def equations_sweep(spec, data: Tensor, r0: Tensor, carried0, weights) -> tuple[Tensor, ...]:
    """What a sweep's forward returns, (outputs (N, R), r_final, *carried_final), computed
    through `spec.cell.equations` in packed layout (rnnkit.engine.reference's module
    docstring): step t advances the first batch_sizes[t] rows and leaves the rest."""
    cell = spec.cell
    if weights[0] is None:  # `data` is X W_ih^T already (rnnkit.engine.lower_precision)
        identity = torch.eye(data.shape[1], dtype=data.dtype, device=data.device)
        weights = (identity, *weights[1:])
    blocks = data.split(spec.batch_sizes)
    out: list[Tensor | None] = [None] * len(blocks)
    r, carried = r0, tuple(carried0)
    for t in spec.visit_order():
        n = spec.batch_sizes[t]
        new_r, new_carried = cell.advance(blocks[t], r[:n], tuple(c[:n] for c in carried), weights)
        out[t] = new_r
        r = torch.cat((new_r, r[n:])) if n < r.shape[0] else new_r
        carried = tuple(
            torch.cat((c_new, c[n:])) if n < c.shape[0] else c_new
            for c_new, c in zip(new_carried, carried, strict=True)
        )
    return (torch.cat(out), r, *carried)


def differentiable_backward(spec, inputs: tuple, grads: tuple) -> tuple:
    """The gradients of a sweep's tensor inputs `inputs` = (data, r0, *carried0, *weights) for
    the gradients `grads` of its outputs, as tensors autograd can differentiate again."""
    data, r0, *rest = inputs
    k = spec.cell.num_carried
    carried0, weights = rest[:k], rest[k:]
    wanted = [i for i, t in enumerate(inputs) if t is not None and t.requires_grad]
    result: list[Tensor | None] = [None] * len(inputs)
    if not wanted:
        return tuple(result)
    try:
        with torch.enable_grad():
            outputs = equations_sweep(spec, data, r0, carried0, weights)
    except NotImplementedError as error:
        raise RuntimeError(
            f"second derivatives through a recurrent layer differentiate the cell's equations, "
            f"and {type(spec.cell).__name__} states none: define Cell.equations ({error})"
        ) from None
    pairs = [(o, g) for o, g in zip(outputs, grads, strict=True) if g is not None]
    found = torch.autograd.grad(
        [o for o, _ in pairs],
        [inputs[i] for i in wanted],
        [g for _, g in pairs],
        create_graph=True,
        allow_unused=True,
    )
    for i, grad in zip(wanted, found, strict=True):
        result[i] = grad
    return tuple(result)
