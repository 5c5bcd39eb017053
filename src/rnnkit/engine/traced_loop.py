"""Sweeps that torch.jit.trace records as loops over time, for any cell.

A trace records the torch operators a call runs and replays them. It would unroll the reference
engine's loop to the traced input's length, and replay the compiled engine's output (computed
outside torch's operators) as a constant. Under a trace each sweep instead calls a TorchScript
function: a loop whose trip count is the input's length and whose body is the cell's step
(`Cell.advance`, itself traced once on a small example with the weights as inputs). A trace
keeps the control flow of the TorchScript it calls, so the traced module is right for any batch
and length, and torch's legacy ONNX exporter, which traces, writes each sweep as an ONNX Loop.

The step is traced on a batch of two rows: shapes the cell computes from its inputs stay
symbolic, widths it reads as Python ints (a layer norm's) are constants, as they are for the
layer. TorchScript cannot call the traced step from a Python closure of varying arity, so the
loop is written as source for the cell's number of states and weights and compiled.
"""

from __future__ import annotations

import contextlib
import itertools
import linecache
import warnings

import torch
from torch import Tensor

from .reference import SweepSpec

__all__ = ["traced_sweep"]

_NUMBERS = itertools.count()
# The loops by the cell's class and settings and the shapes, dtype and device they were
# traced for: a second trace of the same call, also of a copy of the layer (torch.jit.trace's
# check_trace re-traces a deep copy and compares the graphs), calls the same functions.
_LOOPS: dict = {}


@contextlib.contextmanager
def _outside_the_trace():
    """The block runs untraced: tracing the step while the caller's trace records would nest
    two traces, which torch refuses. (torch has no public way to pause a trace.)"""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


def _loop_source(name: str, carried: int, weights: int) -> str:
    """A loop over time calling `step` (r, *carried, *weights) -> (r, *carried)."""
    states = ", ".join(["r", *(f"c{i}" for i in range(carried))])
    given = ", ".join(f"w{i}" for i in range(weights))
    arguments = ", ".join(part for part in (states, given) if part)
    return (
        f"def {name}(x, {arguments}):\n"
        "    outputs = []\n"
        "    for t in range(x.size(0)):\n"
        f"        {states} = step(x[t], {arguments})\n"
        "        outputs.append(r)\n"
        f"    return torch.stack(outputs), {states}\n"
    )


def _scripted(source: str, name: str, names: dict):
    """torch.jit.script of the function `name` defined by `source`, its free names from
    `names`. torch.jit.script reads a function's source through linecache, so the source is
    entered there under a file name of its own; the function belongs to this module, so it
    lands in torch's global compilation unit under a qualified name, where a traced graph's
    call finds it and torch.jit.save writes it."""
    filename = f"<rnnkit {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = dict(names, __name__=__name__)
    exec(compile(source, filename, "exec"), namespace)
    return torch.jit.script(namespace[name])


def _scripted_loop(cell, x: Tensor, r0: Tensor, carried, given, present):
    """The TorchScript loop of one sweep's cell, its step traced on zeros shaped like the call's
    (two rows) in the call's dtype and device. Called outside the trace: reading the call's
    shapes inside it would record them in the caller's graph."""
    signature = (
        type(cell).__module__,
        type(cell).__qualname__,
        # a cell's settings (activations, flags) are its attributes
        repr(sorted(vars(cell).items())),
        present,
        tuple(tuple(t.shape[1:]) for t in (r0, *carried)),
        tuple(tuple(w.shape) for w in given),
        x.shape[2],
        x.dtype,
        x.device,
    )
    if signature not in _LOOPS:
        _LOOPS[signature] = _compiled_loop(cell, present, x, r0, carried, given)
    return _LOOPS[signature]


def _compiled_loop(cell, present, x: Tensor, r0: Tensor, carried, given):
    k = len(carried)

    def step(x_t, r, *rest):
        supplied = iter(rest[k:])
        full = tuple(next(supplied) if p else None for p in present)
        r_new, carried_new = cell.advance(x_t, r, tuple(rest[:k]), full)
        return (r_new, *carried_new) if k else r_new

    # torch registers a traced or scripted function under its qualified name, and a call in
    # a graph finds its callee by that name: every step and loop needs its own
    number = next(_NUMBERS)
    step.__name__ = step.__qualname__ = f"traced_step_{number}"

    def rows(like: Tensor, width: int) -> Tensor:
        return torch.zeros(2, width, dtype=like.dtype, device=like.device)

    example = (
        rows(x, x.shape[2]),
        rows(r0, r0.shape[1]),
        *(rows(c, c.shape[1]) for c in carried),
        *(torch.zeros(w.shape, dtype=w.dtype, device=w.device) for w in given),
    )
    with warnings.catch_warnings():
        # the tracer's notes on widths read as ints: constants of the layer, as intended
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced_step = torch.jit.trace(step, example, check_trace=False)
    name = f"traced_loop_{number}"
    source = _loop_source(name, k, len(given))
    return _scripted(source, name, {"step": traced_step, "torch": torch})


def traced_sweep(spec: SweepSpec, data: Tensor, r0: Tensor, carried, weights):
    """A `sweep_fn` for rnnkit.engine.stack.run_stack over a padded batch (data (T * B, I),
    B the rows of r0) that a trace records as a loop over time."""
    if len(set(spec.batch_sizes)) > 1:
        raise ValueError("traced_sweep runs padded batches only (equal rows at every step)")
    batch = r0.shape[0]
    x = data.view(-1, batch, data.shape[1])
    if spec.reverse:
        x = x.flip(0)
    present = tuple(w is not None for w in weights)
    given = [w for w in weights if w is not None]
    with _outside_the_trace():
        loop = _scripted_loop(spec.cell, x, r0, carried, given, present)
    output, r_final, *carried_final = loop(x, r0, *carried, *given)
    if spec.reverse:
        output = output.flip(0)
    return output.reshape(-1, output.shape[2]), r_final, tuple(carried_final)
