"""A trained language model as an ONNX step graph, for streaming generation without Python's
rnnkit: (ids (B, T), state) -> (logits of the last step (B, V), state).

Feed a prefix in one call (T = its length) and then one token per call, carrying the state,
as rnnkit's own generator does. For rnnkit.LSTM, GRU and RNN the graph comes from torch's
legacy (tracing) ONNX exporter: under a trace they run torch's own kernel, one operator right
for any batch and length (rnnkit.layers.recurrent). For every other cell it is built from ONNX
nodes: the embedding's Gather, a Scan per layer and direction over the cell's step
(rnnkit.export.onnx_layer), the head's Gemm. Either way the batch and time are dynamic. Beside
model.onnx, model.json holds what a sampler needs: the vocabulary, the token unit, the state's
names and shape, the ids generation must never produce.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .. import _atomic as atomic
from ..data.vocab import BOS, EOS, PAD, UNK
from .traced import traced_onnx

__all__ = ["FORMAT", "export_language_model", "export_model"]

FORMAT = "rnnkit.onnx_lm"
VERSION = 1


class _StepGraph(nn.Module):
    """The language model's call with its state as separate tensors, the last step's logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids, *state):
        logits, new = self.model(ids, state if len(state) > 1 else state[0])
        new = new if isinstance(new, tuple) else (new,)
        return (logits[:, -1], *new)


def export_model(checkpoint: str | os.PathLike, out: str | os.PathLike) -> dict:
    """`rnnkit export`: the model of a run directory or checkpoint as `out` (model.onnx) and
    its description beside it (model.json, same stem): a language model's step graph, a task
    model's whole-sequence graph (rnnkit.export.onnx_task). Returns the description."""
    loaded, out = _load_for_export(checkpoint, out)
    if loaded.config.task == "lm":
        return _export_lm(loaded, out)
    from .onnx_task import export_task_model

    return export_task_model(loaded, out)


def export_language_model(checkpoint: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Write `out` (model.onnx) and its description beside it (model.json, same stem) for the
    language model of a run directory or checkpoint; returns the description."""
    loaded, out = _load_for_export(checkpoint, out)
    if loaded.config.task != "lm":
        raise ValueError(
            f"{checkpoint} is a {loaded.config.task} run, not a language model: export it "
            "with export_model (rnnkit export)"
        )
    return _export_lm(loaded, out)


def _load_for_export(checkpoint, out):
    """The checked output path and the loaded checkpoint (one-line errors for either)."""
    from ..train import load_task_checkpoint

    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"--out {out}: name the file .onnx (the description goes beside it)")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; name the .onnx file to write")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: the directory {out.parent} does not exist; create it first")
    try:
        import onnx  # noqa: F401  (torch's exporter needs it; rnnkit does not otherwise)
    except ImportError:
        raise NotImplementedError(
            "rnnkit export needs the onnx package: pip install 'rnnkit[export]' (or onnx)"
        ) from None
    return load_task_checkpoint(checkpoint), out


def _export_lm(loaded, out: Path) -> dict:
    task, model = loaded.task, loaded.model.float().eval()
    state = model.begin_state(1)
    states = state if isinstance(state, tuple) else (state,)
    names = ["h", "c"][: len(states)] if len(states) <= 2 else [f"s{i}" for i in range(len(states))]
    example = torch.zeros(1, 2, dtype=torch.long)
    axes = {"ids": {0: "batch", 1: "steps"}, "logits": {0: "batch"}}
    axes |= {name: {1: "batch"} for name in names}
    axes |= {f"{name}_out": {1: "batch"} for name in names}
    if getattr(model.layers, "traces_as_torch_kernel", False):
        graph = traced_onnx(
            _StepGraph(model),
            (example, *states),
            ["ids", *names],
            ["logits", *(f"{n}_out" for n in names)],
            axes,
        )
    else:  # a cell torch has no kernel for: its steps as ONNX Scans (rnnkit.export.onnx_layer)
        graph = _scan_step_graph(model, names)
    vocab = task.vocab
    never = [vocab[t] for t in (UNK, PAD, BOS)]
    if task.boundaries == "none":
        never.append(vocab[EOS])  # a character model's text has exactly the asked length
    description = {
        "format": FORMAT,
        "version": VERSION,
        "model": out.name,
        "tokens": task.config.tokens,
        "segmenter": getattr(task, "segmenter", "none"),
        "boundaries": task.boundaries,
        "vocab": vocab.tokens,
        "state": names,
        "state_shape": list(states[0].shape[::2]),  # (num_layers, hidden): batch in between
        "never_generate": never,
        "bos": vocab[BOS],
        "eos": vocab[EOS],
    }
    atomic.write_bytes(out, graph)
    atomic.write_json(out.with_suffix(".json"), description)
    return description


def _scan_step_graph(model: nn.Module, names: list[str]) -> bytes:
    """The step graph built from ONNX nodes: the embedding's Gather, the layer stack's Scans,
    the last step's logits (the same inputs and outputs as the traced graph)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .onnx_layer import layer_nodes

    layers = model.layers
    finals = [f"{n}_out" for n in names]
    weights = {
        "embedding_weight": model.embedding.weight,
        "head_weight": model.head.weight,
        "head_bias": model.head.bias,
    }
    initializers = [
        numpy_helper.from_array(t.detach().float().numpy(), name) for name, t in weights.items()
    ]
    initializers.append(helper.make_tensor("last_step", TensorProto.INT64, [], [-1]))
    nodes = [
        helper.make_node("Gather", ["embedding_weight", "ids"], ["embedded"]),  # (B, T, E)
        helper.make_node("Transpose", ["embedded"], ["time_major"], perm=[1, 0, 2]),
    ]
    stack, more, opsets, output = layer_nodes(layers, "time_major", names, finals)
    nodes += stack
    nodes += [
        helper.make_node("Gather", [output, "last_step"], ["last_output"], axis=0),  # (B, R)
        helper.make_node("Gemm", ["last_output", "head_weight", "head_bias"], ["logits"], transB=1),
    ]
    L, float32 = layers.num_layers, TensorProto.FLOAT
    widths = layers.state_sizes()
    graph = helper.make_graph(
        nodes,
        "rnnkit_language_model_step",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "steps"])]
        + [
            helper.make_tensor_value_info(n, float32, [L, "batch", w])
            for n, w in zip(names, widths, strict=True)
        ],
        [helper.make_tensor_value_info("logits", float32, ["batch", len(model.head.bias)])]
        + [
            helper.make_tensor_value_info(n, float32, [L, "batch", w])
            for n, w in zip(finals, widths, strict=True)
        ],
        initializer=initializers + more,
    )
    model_proto = helper.make_model(graph, opset_imports=opsets, producer_name="rnnkit")
    onnx.checker.check_model(model_proto)
    return model_proto.SerializeToString()
