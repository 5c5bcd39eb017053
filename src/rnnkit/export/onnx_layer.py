"""Any rnnkit layer, of any registered cell, as an ONNX model with dynamic batch and time.

torch's exporters write every layer too (the default one after `import rnnkit.export`, as
Scans; the legacy one as Loops over a traced step, rnnkit.engine.traced_loop); `export_layer`
needs neither and names the model's inputs and outputs by the layer's states. It writes the
recurrence as ONNX itself: each layer and direction is one
ONNX `Scan` over time, whose body is the cell's step (`Cell.equations`, the textbook form every
engine is tested against, and the output projection r_t = g(W_out m_t + b_out) of the cells
that have one) exported by torch with a dynamic batch. The backward direction scans in
reverse; a stack feeds each layer the concatenated directions of the one below.

    export_layer(rnnkit.LayerNormLSTM(8, 16, num_layers=2, bidirectional=True), "ln.onnx")

The model takes `input` (T, B, I), or (B, T, I) for batch_first, and the initial states by the
layer's state names (h_0, then c_0 for LSTM-like cells: (L*D, B, width)); it returns `output`
and the final states (`h_n`, `c_n`, ...), as the layer's call with those states does. Padded
batches only (no lengths). The layer runs in float32, as exported.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from .. import _atomic as atomic
from .traced import traced_onnx

__all__ = ["export_layer"]


class _Step(nn.Module):
    """One step of one layer and direction: (r_{t-1}, *carried_{t-1}, x_t) ->
    (r_t, *carried_t, r_t), the Scan body's state variables and then its scan output."""

    def __init__(self, layer, depth: int, direction: int) -> None:
        super().__init__()
        self.cell = layer.cell
        weights = layer._weights_for(depth, direction)
        self.weights = tuple(None if w is None else w.detach().float() for w in weights)

    def forward(self, r, *rest):
        *carried, x = rest
        return step_outputs(self.cell, x, r, tuple(carried), self.weights)


def step_outputs(cell, x, r, carried: tuple, weights: tuple) -> tuple:
    """One step as a Scan body returns it: (r_t, *carried_t, r_t), through the cell's
    equations and its output projection, if any."""
    r_new, new_carried = cell.advance(x, r, carried, weights)
    return (r_new, *new_carried, r_new.clone())


def _step_graph(layer, depth: int, direction: int, prefix: str):
    """The ONNX graph of one step with a dynamic batch, its names prefixed (Scan bodies share
    the outer graph's namespace)."""
    import onnx

    k = layer.cell.num_carried
    width = layer._layer_input_size(depth)
    R, H = layer.recurrent_size, layer.hidden_size
    example = (torch.zeros(2, R), *(torch.zeros(2, H) for _ in range(k)), torch.zeros(2, width))
    inputs = ["r", *(f"c{i}" for i in range(k)), "x"]
    outputs = ["r_out", *(f"c{i}_out" for i in range(k)), "y"]
    axes = {name: {0: "batch"} for name in inputs + outputs}
    step = traced_onnx(_Step(layer, depth, direction), example, inputs, outputs, axes)
    model = onnx.load_from_string(step)
    graph = model.graph
    renames = {}
    for value in [*graph.input, *graph.output, *graph.initializer, *graph.value_info]:
        renames[value.name] = prefix + value.name
    for node in graph.node:
        for name in [*node.input, *node.output]:
            if name:
                renames.setdefault(name, prefix + name)
        node.name = prefix + node.name
    for value in [*graph.input, *graph.output, *graph.initializer, *graph.value_info]:
        value.name = renames[value.name]
    for node in graph.node:
        node.input[:] = [renames.get(n, n) if n else n for n in node.input]
        node.output[:] = [renames.get(n, n) if n else n for n in node.output]
    graph.name = prefix + "step"
    return graph, model.opset_import


def _check_exportable(layer) -> None:
    from ..layers.recurrent import Recurrent

    if not isinstance(layer, Recurrent):
        raise TypeError(
            f"export_layer takes an rnnkit layer (rnnkit.Recurrent); got {type(layer).__name__}"
        )
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise NotImplementedError(
            "export_layer needs the onnx package: pip install 'rnnkit[export]' (or onnx)"
        ) from None


def layer_nodes(layer, x: str, starts: list[str], finals: list[str]):
    """The ONNX nodes of `layer` reading the time-major input `x` (T, B, I) and the initial
    states `starts` ((L*D, B, width) each, the layer's state order), writing the final states
    `finals`. Returns (nodes, initializers, opset imports, the name of the output (T, B, D*R))."""
    from onnx import TensorProto, helper

    L, D = layer.num_layers, 2 if layer.bidirectional else 1
    nodes, initializers, opsets = [], [], None
    collected = [[] for _ in starts]  # every sweep's final of each state
    for depth in range(L):
        outputs = []
        for direction in range(D):
            index = depth * D + direction
            prefix = f"l{depth}d{direction}_"
            body, opsets = _step_graph(layer, depth, direction, prefix)
            position = f"{prefix}index"
            initializers.append(helper.make_tensor(position, TensorProto.INT64, [], [index]))
            sweep_starts = []
            for name in starts:  # this sweep's initial states, (B, width)
                sweep_starts.append(f"{prefix}{name}")
                nodes.append(helper.make_node("Gather", [name, position], [sweep_starts[-1]]))
            ends = [f"{prefix}{name}_end" for name in finals]
            y = f"{prefix}y_all"
            nodes.append(
                helper.make_node(
                    "Scan",
                    [*sweep_starts, x],
                    [*ends, y],
                    body=body,
                    num_scan_inputs=1,
                    scan_input_directions=[direction],
                    scan_output_directions=[direction],
                )
            )
            outputs.append(y)
            for bucket, end in zip(collected, ends, strict=True):
                bucket.append(end)
        x = outputs[0]
        if D == 2:
            x = f"l{depth}_output"
            nodes.append(helper.make_node("Concat", outputs, [x], axis=2))
    zero = "axis_zero"
    initializers.append(helper.make_tensor(zero, TensorProto.INT64, [1], [0]))
    for final, bucket in zip(finals, collected, strict=True):
        lifted = []
        for end in bucket:
            lifted.append(end + "_lifted")
            nodes.append(helper.make_node("Unsqueeze", [end, zero], [lifted[-1]]))
        nodes.append(helper.make_node("Concat", lifted, [final], axis=0))
    return nodes, initializers, list(opsets), x


def export_layer(layer, path: str | os.PathLike) -> None:
    """Write `layer` (an rnnkit layer of any cell) to `path` as an ONNX model with dynamic batch
    and time dimensions (see the module docstring for its inputs and outputs)."""
    _check_exportable(layer)
    import onnx
    from onnx import TensorProto, helper

    L, D = layer.num_layers, 2 if layer.bidirectional else 1
    names = list(layer.state_names)  # h_0, c_0, ...
    finals = [n.replace("_0", "_n") for n in names]
    widths = layer.state_sizes()
    x, nodes = "input", []
    if layer.batch_first:
        nodes.append(helper.make_node("Transpose", ["input"], ["time_major"], perm=[1, 0, 2]))
        x = "time_major"
    body, initializers, opsets, x = layer_nodes(layer, x, names, finals)
    nodes += body
    output = "output"
    if layer.batch_first:
        nodes.append(helper.make_node("Transpose", [x], [output], perm=[1, 0, 2]))
    else:
        nodes.append(helper.make_node("Identity", [x], [output]))
    float32 = TensorProto.FLOAT
    io_shape = ["batch", "steps"] if layer.batch_first else ["steps", "batch"]
    graph = helper.make_graph(
        nodes,
        f"rnnkit_{type(layer).__name__}",
        [helper.make_tensor_value_info("input", float32, [*io_shape, layer.input_size])]
        + [
            helper.make_tensor_value_info(name, float32, [L * D, "batch", width])
            for name, width in zip(names, widths, strict=True)
        ],
        [helper.make_tensor_value_info(output, float32, [*io_shape, D * layer.recurrent_size])]
        + [
            helper.make_tensor_value_info(name, float32, [L * D, "batch", width])
            for name, width in zip(finals, widths, strict=True)
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=opsets, producer_name="rnnkit")
    onnx.checker.check_model(model)
    atomic.write_bytes(os.fspath(path), model.SerializeToString())


def run_layer(path: str | os.PathLike, input: Tensor, states: tuple[Tensor, ...]) -> list:
    """onnxruntime's outputs of an exported layer: [output, *final states]."""
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = dict(zip(names, [input, *states], strict=True))
    return session.run(None, {n: t.detach().float().numpy() for n, t in feeds.items()})
