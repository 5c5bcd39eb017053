"""How many BLAS threads the compiled kernels' per-step products use: one.

numba's np.dot calls scipy's OpenBLAS. Its worker threads spin while they wait, and so do
torch's OpenMP threads after every torch op; on a 2-core machine the two pools take each other's
cores. Measured on this machine while other processes were busy (load average 5): a compiled GRU
training step at B32 T35 H256 took 1588 ms with OpenBLAS's default 2 threads and 125 ms with 1;
an LSTM step 216 ms against 94 ms. One thread loses at most the parallel half of the per-step
products on an idle machine, while torch's threads still run the large GEMMs before and after
the sweep (input projection, weight gradients). So the kernels run with scipy's OpenBLAS held to
PER_STEP_THREADS and restore the user's setting afterwards (a few microseconds per call).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

__all__ = ["PER_STEP_THREADS", "per_step_blas_threads"]

PER_STEP_THREADS = 1


@functools.cache
def _scipy_blas() -> list:
    """threadpoolctl's controllers of scipy's BLAS (the one numba's np.dot calls)."""
    import scipy.linalg  # noqa: F401  (loads the library threadpoolctl then finds)
    from threadpoolctl import ThreadpoolController

    libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    return [lib for lib in libraries if "scipy" in str(lib.filepath)]


@contextlib.contextmanager
def per_step_blas_threads() -> Iterator[None]:
    """Run the block with scipy's BLAS on PER_STEP_THREADS threads, then restore."""
    libraries = _scipy_blas()
    before = [lib.num_threads for lib in libraries]
    for lib in libraries:
        lib.set_num_threads(PER_STEP_THREADS)
    try:
        yield
    finally:
        for lib, n in zip(libraries, before, strict=True):
            lib.set_num_threads(n)
