"""Export of trained models for deployment outside Python: ONNX step graphs of language models
(rnnkit.export.onnx_lm), whole-sequence graphs of task models (rnnkit.export.onnx_task) and any
layer of any cell with dynamic batch and time (rnnkit.export.onnx_layer)."""

from .onnx_layer import export_layer
from .onnx_lm import FORMAT, export_language_model, export_model

__all__ = ["FORMAT", "export_language_model", "export_layer", "export_model"]
