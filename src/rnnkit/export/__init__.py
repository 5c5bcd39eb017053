"""Export of trained models for deployment outside Python: ONNX step graphs of language models
(rnnkit.export.onnx_lm), whole-sequence graphs of task models (rnnkit.export.onnx_task) and any
layer of any cell with dynamic batch and time (rnnkit.export.onnx_layer, or torch's own default
exporter with rnnkit.export.onnx_sweep's translation table)."""

from .onnx_layer import export_layer
from .onnx_lm import FORMAT, export_language_model, export_model
from .onnx_sweep import onnx_translations, register_with_torch

__all__ = [
    "FORMAT",
    "export_language_model",
    "export_layer",
    "export_model",
    "onnx_translations",
    "register_with_torch",
]

register_with_torch()  # torch.onnx.export then writes every layer (rnnkit.export.onnx_sweep)
