"""rnnkit::sweep for torch's default ONNX exporter (`torch.onnx.export(..., dynamo=True)`).

Under torch.export a layer of a cell torch has no kernel for records each sweep as the
rnnkit::sweep operator (rnnkit.engine.custom_ops), which ONNX has no function for. This module
is its translation: one ONNX `Scan` over time per sweep, whose body is the cell's step
(`Cell.equations` and the output projection, exported by torch's tracer with a dynamic batch,
as rnnkit.export.onnx_layer does) reading the layer's weights from the outer graph, so the
model keeps one copy of them. Importing rnnkit.export registers it with torch's exporter, so
the plain call writes any layer:

    import rnnkit.export
    torch.onnx.export(layer, (x,), "layer.onnx",
                      dynamic_shapes=({0: torch.export.Dim("T"), 1: torch.export.Dim("B")},))

The registration goes through torch's own table of translations (private, as of torch 2.13);
where it is unavailable, `custom_translation_table=rnnkit.export.onnx_translations()` gives
the exporter the same translation.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from ..engine.custom_ops import _cell, mark_onnx_translation_registered
from .onnx_layer import step_outputs
from .traced import traced_onnx

__all__ = ["onnx_translations", "register_with_torch"]

_BODIES = itertools.count()


class _WeightedStep(nn.Module):
    """One step with the weights as inputs: (r, *carried, x, *weights) -> (r, *carried, r)."""

    def __init__(self, cell, present: list[bool]) -> None:
        super().__init__()
        self.cell, self.present = cell, list(present)

    def forward(self, r, *rest):
        k = self.cell.num_carried
        carried, x, given = rest[:k], rest[k], iter(rest[k + 1 :])
        weights = tuple(next(given) if here else None for here in self.present)
        return step_outputs(self.cell, x, r, tuple(carried), weights)


def _body(cell, present, widths: tuple[int, ...], input_size: int, weight_shapes, prefix: str):
    """The step as an onnx_ir graph whose last len(weight_shapes) inputs are the weights."""
    import onnx
    import onnx_ir as ir

    k = cell.num_carried
    example = (
        *(torch.zeros(2, w) for w in widths),
        torch.zeros(2, input_size),
        *(torch.zeros(shape) for shape in weight_shapes),
    )
    names = ["r", *(f"c{i}" for i in range(k)), "x", *(f"w{i}" for i in range(len(weight_shapes)))]
    outputs = ["r_out", *(f"c{i}_out" for i in range(k)), "y"]
    axes = {name: {0: "batch"} for name in names[: k + 2] + outputs}
    proto = onnx.load_from_string(
        traced_onnx(_WeightedStep(cell, present), example, names, outputs, axes)
    )
    graph = ir.serde.deserialize_graph(proto.graph)
    for value in graph.inputs:
        value.name = prefix + value.name
    for node in graph:
        node.name = prefix + (node.name or "node")
        for value in node.outputs:
            value.name = prefix + value.name
    graph.name = prefix + "step"
    return graph


def _translate_sweep(data, r0, carried, weights, present, cell, reverse):
    from onnxscript import opset18 as op

    # the node builder torch's own Scan translation (torch.ops.higher_order.scan) uses: the one
    # way to give a node a graph attribute under the exporter's tracer (private; torch 2.13)
    from torch.onnx._internal.exporter._torchlib.ops.hop import call_op

    the_cell = _cell(cell)
    k = len(carried)
    widths = (r0.shape[1], *(c.shape[1] for c in carried))
    input_size = data.shape[1]
    shapes = [tuple(int(d) for d in w.shape) for w in weights]
    body = _body(the_cell, present, widths, input_size, shapes, f"rnnkit_sweep{next(_BODIES)}_")
    # the weights: the outer graph's values, read from inside the body
    for inner, outer in zip(list(body.inputs[k + 2 :]), weights, strict=True):
        inner.replace_all_uses_with(outer)
    del body.inputs[k + 2 :]
    batch = op.Shape(r0, start=0, end=1)
    shape = op.Concat(
        op.Constant(value_ints=[-1]), batch, op.Constant(value_ints=[input_size]), axis=0
    )
    steps = op.Reshape(data, shape)  # (T, B, I)
    direction = [int(reverse)]
    results = call_op(
        "Scan",
        r0,
        *carried,
        steps,
        _num_outputs=k + 2,
        body=body,
        num_scan_inputs=1,
        scan_input_directions=direction,
        scan_output_directions=direction,
    )
    outputs = op.Reshape(results[-1], op.Constant(value_ints=[-1, widths[0]]))
    return [outputs, *results[: k + 1]]


def onnx_translations() -> dict:
    """The custom_translation_table that lets torch.onnx.export(dynamo=True) write rnnkit's
    sweep operator."""
    return {torch.ops.rnnkit.sweep.default: _translate_sweep}


def register_with_torch() -> bool:
    """Add the translation to torch's default exporter (every later torch.onnx.export call
    finds it); False where this torch or its onnxscript does not offer the table."""
    try:
        from torch.onnx._internal.exporter._torchlib._torchlib_registry import onnx_impl

        onnx_impl(torch.ops.rnnkit.sweep.default, no_compile=True)(_translate_sweep)
    except (ImportError, AttributeError, TypeError):
        return False
    mark_onnx_translation_registered()
    return True
