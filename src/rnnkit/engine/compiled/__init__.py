"""The compiled engine: the reference engine's sweeps with the time loop in numba kernels."""

from .sweep import cannot_compile, compiled_sweep

__all__ = ["cannot_compile", "compiled_sweep"]
