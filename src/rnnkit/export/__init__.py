"""Export of trained models for deployment outside Python: ONNX step graphs of language models
(rnnkit.export.onnx_lm) and whole-sequence graphs of task models (rnnkit.export.onnx_task)."""

from .onnx_lm import FORMAT, export_language_model, export_model

__all__ = ["FORMAT", "export_language_model", "export_model"]
