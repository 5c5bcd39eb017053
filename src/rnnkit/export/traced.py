"""torch's legacy (tracing) ONNX exporter, called the one way rnnkit's exports call it."""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn

__all__ = ["traced_onnx"]


def traced_onnx(module: nn.Module, inputs, names, outputs, axes) -> bytes:
    """The ONNX model of `module` traced on `inputs` (input and output names, dynamic axes as
    torch.onnx.export takes them), without gradients and without the exporter's notes."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            tuple(inputs),
            buffer,
            dynamo=False,
            input_names=list(names),
            output_names=list(outputs),
            dynamic_axes=axes,
        )
    return buffer.getvalue()
