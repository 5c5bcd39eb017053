"""Export of trained models for deployment outside Python: ONNX (rnnkit.export.onnx_lm)."""

from .onnx_lm import FORMAT, export_language_model

__all__ = ["FORMAT", "export_language_model"]
