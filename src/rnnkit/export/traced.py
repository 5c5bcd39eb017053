"""torch's legacy (tracing) ONNX exporter, called the one way rnnkit's exports call it."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import torch
from torch import nn

__all__ = ["exported_onnx", "traced_onnx"]


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


@contextlib.contextmanager
def _quiet_logger(name: str):
    """`name`'s logger at ERROR for the block (its handlers write to the real stderr)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def exported_onnx(module: nn.Module, inputs, names, outputs, axes) -> bytes:
    """The ONNX model of `module` by torch's default (torch.export-based) exporter, for graphs
    holding rnnkit::sweep operators (rnnkit.export.onnx_sweep translates them), with the same
    arguments as traced_onnx."""
    # each input's dynamic axes, their relations (equal batches) left to torch.export; one
    # entry, as rnnkit's graph modules take their inputs as *inputs
    shapes = (tuple({axis: torch.export.Dim.AUTO for axis in axes.get(n, {})} for n in names),)
    # the exporter prints its steps, the graph it failed on and its optimizer's notes; the
    # caller reports the outcome in one line
    printed = io.StringIO()
    with (
        warnings.catch_warnings(),
        torch.no_grad(),
        contextlib.redirect_stdout(printed),
        contextlib.redirect_stderr(printed),
        _quiet_logger("torch.onnx"),  # e.g. "torchvision is not installed", per op
    ):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            tuple(inputs),
            input_names=list(names),
            output_names=list(outputs),
            dynamic_shapes=shapes,
            verbose=False,
        )
    return program.model_proto.SerializeToString()
