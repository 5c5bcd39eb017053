"""The compiled engine: any cell's sweep with the time loop, its matrix products and the cell's
row step in C++ (engine.h), compiled once per cell from the cell's own CellKernel (build.py),
loaded with ctypes and run on torch's BLAS and threads (library.py, sweep.py).

A new cell joins by defining its kernel beside its reference step; nothing here changes.
"""

from __future__ import annotations

from .library import KernelUnavailableError
from .sweep import SweepPlan, cannot_compile, compiled_sweep

__all__ = ["KernelUnavailableError", "SweepPlan", "cannot_compile", "compiled_sweep"]
