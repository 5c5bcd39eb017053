"""Low-latency CPU inference with numba: a streaming step API for every layer
(`layer.step`, `layer.stream`) and fused token generation for rnnkit's LanguageModel.

numba is imported on first use, not when rnnkit is imported.
"""

from .api import LayerStream, StreamingMixin

__all__ = ["LayerStream", "StreamingMixin"]
