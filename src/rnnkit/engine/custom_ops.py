"""A sweep as a PyTorch operator (torch.library), so torch.compile and torch.export record
rnnkit's layers whole instead of breaking the graph at the engines' Python and ctypes calls.

`rnnkit::sweep(data, r0, carried, weights, present, cell, reverse)` runs one sweep of a
padded batch (steps x batch rows, time-major: rnnkit.engine.reference's layout) on the compiled
engine where it can run, else on the reference engine, and returns [outputs (N, R), r_final,
*carried_final]. It has a fake (meta) implementation for tracing and an autograd formula,
`rnnkit::sweep_backward`, itself an operator: it runs the sweep again under autograd and
differentiates it, so the backward costs one more forward sweep than the eager engines' (which
keep the forward's buffers; an operator's outputs cannot carry them without becoming part of
its signature).

The cell is named by a key (`cell_key`): operators take tensors, numbers and strings, not
Python objects. A layer registers its cell when it is built or unpickled, outside any trace,
so a compiled or exported graph finds it by its key in this process.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ..cells.base import Cell
from .reference import SweepSpec, sweep

__all__ = [
    "cell_key",
    "library_sweep",
    "mark_onnx_translation_registered",
    "onnx_translation_registered",
]

_CELLS: dict[str, Cell] = {}
# whether torch's default ONNX exporter knows rnnkit::sweep (rnnkit.export.onnx_sweep tells)
_onnx_translation = False


def onnx_translation_registered() -> bool:
    """True once rnnkit.export.onnx_sweep has registered the operator's ONNX translation."""
    return _onnx_translation


def mark_onnx_translation_registered() -> None:
    global _onnx_translation
    _onnx_translation = True


_COUNTER = itertools.count()


def cell_key(cell: Cell, key: str | None = None) -> str:
    """Register `cell` (under `key`, or a new one) for the operators; returns the key."""
    if key is None:
        key = f"{type(cell).__name__}#{next(_COUNTER)}"
    _CELLS[key] = cell
    return key


def _cell(key: str) -> Cell:
    try:
        return _CELLS[key]
    except KeyError:
        raise RuntimeError(
            f"rnnkit::sweep: no cell is registered as {key!r} in this process; a layer "
            "registers its cell when it is built or loaded (a graph exported in another process "
            "needs the layer built there first)"
        ) from None


def _weights(weights: list[Tensor], present: list[bool]) -> tuple[Tensor | None, ...]:
    given = iter(weights)
    return tuple(next(given) if here else None for here in present)


def _run(key, data, r0, carried, weights, present, reverse):
    from .compiled.sweep import cannot_compile, compiled_sweep

    cell = _cell(key)
    # the steps are the rows over the batch: an argument of their own would fix the length of
    # an exported graph (torch.export specializes int arguments)
    steps = data.shape[0] // r0.shape[0]
    spec = SweepSpec(cell, (r0.shape[0],) * steps, reverse=reverse)
    run = compiled_sweep if cannot_compile(cell, data.dtype, data.device) is None else sweep
    return run(spec, data, r0, tuple(carried), _weights(weights, present))


@torch.library.custom_op("rnnkit::sweep", mutates_args=())
def _sweep_op(
    data: Tensor,
    r0: Tensor,
    carried: list[Tensor],
    weights: list[Tensor],
    present: list[bool],
    cell: str,
    reverse: bool,
) -> list[Tensor]:
    with torch.no_grad():
        outputs, r_final, carried_final = _run(cell, data, r0, carried, weights, present, reverse)
    return [outputs, r_final, *carried_final]


@_sweep_op.register_fake
def _(data, r0, carried, weights, present, cell, reverse):
    outputs = data.new_empty((data.shape[0], r0.shape[1]))
    return [outputs, torch.empty_like(r0), *(torch.empty_like(c) for c in carried)]


@torch.library.custom_op("rnnkit::sweep_backward", mutates_args=())
def _sweep_backward_op(
    data: Tensor,
    r0: Tensor,
    carried: list[Tensor],
    weights: list[Tensor],
    present: list[bool],
    cell: str,
    reverse: bool,
    grads: list[Tensor],
) -> list[Tensor]:
    leaves = [t.detach().requires_grad_() for t in (data, r0, *carried, *weights)]
    k = len(carried)
    with torch.enable_grad():
        outputs, r_final, carried_final = _run(
            cell, leaves[0], leaves[1], leaves[2 : 2 + k], leaves[2 + k :], present, reverse
        )
        found = torch.autograd.grad(
            [outputs, r_final, *carried_final], leaves, grads, allow_unused=True
        )
    pairs = zip(found, leaves, strict=True)
    return [torch.zeros_like(leaf) if g is None else g for g, leaf in pairs]


@_sweep_backward_op.register_fake
def _(data, r0, carried, weights, present, cell, reverse, grads):
    return [torch.empty_like(t) for t in (data, r0, *carried, *weights)]


def _setup_context(ctx, inputs, output):
    data, r0, carried, weights, present, cell, reverse = inputs
    ctx.options = (present, cell, reverse)
    ctx.num_carried = len(carried)
    ctx.save_for_backward(data, r0, *carried, *weights, *output)


def _backward(ctx, grads):
    k = ctx.num_carried
    saved = ctx.saved_tensors
    outputs = saved[-(2 + k) :]
    data, r0 = saved[0], saved[1]
    carried, weights = list(saved[2 : 2 + k]), list(saved[2 + k : -(2 + k)])
    grads = [torch.zeros_like(o) if g is None else g for g, o in zip(grads, outputs, strict=True)]
    found = _sweep_backward_op(data, r0, carried, weights, *ctx.options, grads)
    return found[0], found[1], found[2 : 2 + k], found[2 + k :], None, None, None


_sweep_op.register_autograd(_backward, setup_context=_setup_context)


def library_sweep(key: str):
    """A `sweep_fn` for rnnkit.engine.stack.run_stack that runs each sweep as rnnkit::sweep
    over a padded batch (the cell registered under `key`)."""

    def run(spec: SweepSpec, data, r0, carried, weights):
        present = [w is not None for w in weights]
        given = [w for w in weights if w is not None]
        result = _sweep_op(data, r0, list(carried), given, present, key, spec.reverse)
        return result[0], result[1], tuple(result[2:])

    return run
