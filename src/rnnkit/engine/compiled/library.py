"""Loading a cell's compiled library and calling its sweeps.

`library_for(kernel)` returns the loaded `KernelLibrary` of a CellKernel (compiled on first use
when neither the install nor the cache has it, see build.py), or raises `KernelUnavailableError`
with the reason; `unavailable(kernel)` returns that reason or None. Each library is loaded once
per process and handed the addresses of torch's own BLAS (sgemm_/dgemm_ of libtorch_cpu), so
its matrix products run in torch's MKL on torch's threads.

`SweepArgs` mirrors struct rnnkit::SweepArgs of engine.h field for field.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import time

import torch

from ...cells.base import CellKernel
from . import build

__all__ = [
    "GenerateArgs",
    "KernelLibrary",
    "KernelUnavailableError",
    "SweepArgs",
    "library_for",
    "unavailable",
]

ABI_VERSION = 3  # rnnkit::ABI_VERSION in engine.h

_p = ctypes.c_void_p
_i = ctypes.c_int64


class SweepArgs(ctypes.Structure):
    _fields_ = [
        *((name, _i) for name in (
            "steps", "batch", "input_size", "hidden", "recurrent", "gate_width",
            "saved_width", "carried_width", "reverse", "separate", "output_activation",
            "num_params",
        )),
        ("sizes", _p),
        ("offsets", _p),
        ("options", _p),
        *((name, _p) for name in ("x", "w_ih", "b_ih", "w_hh", "b_hh", "w_out", "b_out")),
        ("params", _p),
        ("param_sizes", _p),
        *((name, _p) for name in (
            "r_state", "carried", "gates", "outputs", "m_all", "r_prev_all", "saved",
            "grad_outputs", "grad_r", "grad_carried", "grad_gates", "grad_hidden", "grad_pre",
            "grad_x", "grad_w_ih", "grad_w_hh", "grad_b_ih", "grad_b_hh", "grad_w_out",
            "grad_b_out", "grad_params",
        )),
        ("parallel_rows_from", _i),
        ("gates_given", _i),
        ("grad_r_all", _p),
    ]  # fmt: skip


class GenerateArgs(ctypes.Structure):
    """struct rnnkit::GenerateArgs of rnnkit/generate/fused.h."""

    _fields_ = [
        *((name, _i) for name in ("num_layers", "recurrent", "carried_width", "vocab")),
        ("layers", _p),
        ("r_state", _p),
        ("carried", _p),
        ("table", _p),
        ("table_width", _i),
        ("projected", _i),
        ("head_w", _p),
        ("head_b", _p),
        ("start", _p),
        *((name, _i) for name in ("start_length", "length", "greedy", "top_k")),
        ("temperature", ctypes.c_double),
        ("top_p", ctypes.c_double),
        ("banned", _p),
        ("eos", _i),
        ("seed", ctypes.c_uint64),
        ("out", _p),
    ]  # fmt: skip


class KernelUnavailableError(NotImplementedError):
    """The compiled engine cannot run a kernel here (no compiler, a refused source, no BLAS)."""


@functools.cache
def _torch_blas() -> tuple[int | None, ...]:
    """The addresses of sgemm_ and dgemm_ in torch's CPU library (MKL on x86 builds), and of
    MKL's packed-GEMM functions and its thread-local thread count where it has them (None
    otherwise)."""
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        lib = ctypes.CDLL(path)
        required = [ctypes.cast(lib[name], ctypes.c_void_p).value for name in ("sgemm_", "dgemm_")]
    except (OSError, AttributeError) as error:
        raise KernelUnavailableError(
            f"torch's CPU library exports no BLAS (sgemm_/dgemm_) for the compiled engine: {error}"
        ) from None
    optional = []
    for name in (
        "cblas_sgemm_pack_get_size",
        "cblas_sgemm_pack",
        "cblas_sgemm_compute",
        "MKL_Set_Num_Threads_Local",
    ):
        try:
            optional.append(ctypes.cast(lib[name], ctypes.c_void_p).value)
        except AttributeError:
            optional.append(None)
    if None in optional[:3]:  # the packed GEMM comes whole or not at all
        optional[:3] = [None, None, None]
    return (*required, *optional)


class KernelLibrary:
    """One cell's compiled sweeps: forward(args) and backward(args) per dtype."""

    def __init__(self, path, compile_seconds: float) -> None:
        self.path = str(path)
        self.compile_seconds = compile_seconds  # 0 when it was prebuilt or cached
        lib = ctypes.CDLL(self.path)
        if lib.rnnkit_abi_version() != ABI_VERSION:
            raise KernelUnavailableError(f"{path} was built for another engine version; delete it")
        lib.rnnkit_set_blas(*(ctypes.c_void_p(address) for address in _torch_blas()))
        self._forward, self._backward, self._generate = {}, {}, {}
        for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64")):
            for table, stem in ((self._forward, "forward"), (self._backward, "backward")):
                function = getattr(lib, f"rnnkit_{stem}_{suffix}")
                function.argtypes = [ctypes.POINTER(SweepArgs)]
                function.restype = None
                table[dtype] = function
            function = getattr(lib, f"rnnkit_generate_{suffix}")
            function.argtypes = [ctypes.POINTER(GenerateArgs)]
            function.restype = ctypes.c_int64
            self._generate[dtype] = function
        self._scan = {
            dtype: (
                getattr(lib, f"rnnkit_scan_forward_{suffix}"),
                getattr(lib, f"rnnkit_scan_backward_{suffix}"),
            )
            for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64"))
        }
        for forward, backward in self._scan.values():
            forward.argtypes = [_i, _i, _p, _p, _p, _p]
            backward.argtypes = [_i, _i, _p, _p, _p, _p, _p, _p, _p]
            forward.restype = backward.restype = None
        self._dropout = {}
        for dtype, suffix in (
            (torch.float32, "f32"),
            (torch.float64, "f64"),
            (torch.bfloat16, "bf16"),
        ):
            function = getattr(lib, f"rnnkit_dropout_{suffix}")
            function.argtypes = [_i, _p, _p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_double]
            function.restype = None
            self._dropout[dtype] = function
        self._lib = lib

    def forward(self, dtype: torch.dtype, args: SweepArgs) -> None:
        self._forward[dtype](ctypes.byref(args))

    def forward_function(self, dtype: torch.dtype):
        """The forward entry point itself, for callers that call it with a kept byref."""
        return self._forward[dtype]

    def backward(self, dtype: torch.dtype, args: SweepArgs) -> None:
        self._backward[dtype](ctypes.byref(args))

    def scan_forward(self, dtype, steps: int, columns: int, a, b, h0, h) -> None:
        """h_t = a_t h_{t-1} + b_t over (steps, columns) buffers (addresses), from h0."""
        self._scan[dtype][0](steps, columns, a, b, h0, h)

    def scan_backward(self, dtype, steps: int, columns: int, a, h0, h, g, da, db, dh0) -> None:
        """The scan's gradients (engine.h, linear_scan_backward), into da, db, dh0."""
        self._scan[dtype][1](steps, columns, a, h0, h, g, da, db, dh0)

    def dropout(self, dtype, n: int, x, y, seed: int, threshold: int, scale: float) -> None:
        """y = x * (keep ? scale : 0) over n elements (addresses), the mask from `seed`
        (engine/compiled/dropout.h); x and y may be the same buffer."""
        self._dropout[dtype](n, x, y, seed, threshold, scale)

    def has_dropout(self, dtype) -> bool:
        return dtype in self._dropout

    def generate(self, dtype: torch.dtype, args: GenerateArgs) -> int:
        """Run the fused generation loop (rnnkit/generate/fused.h); returns how many ids it drew."""
        return int(self._generate[dtype](ctypes.byref(args)))


_loaded: dict[tuple[str, str], KernelLibrary | str] = {}
_lock = threading.Lock()


def library_for(kernel: CellKernel) -> KernelLibrary:
    """The kernel's loaded library; raises KernelUnavailableError with the reason it cannot be."""
    key = (kernel.name, kernel.source)
    found = _loaded.get(key)
    if found is None:
        with _lock:
            found = _loaded.get(key)
            if found is None:
                found = _load(kernel)
                _loaded[key] = found
    if isinstance(found, str):
        raise KernelUnavailableError(found)
    return found


def _load(kernel: CellKernel) -> KernelLibrary | str:
    started = time.perf_counter()
    try:
        path, compiled = build.find_or_build(kernel.name, kernel.source)
        return KernelLibrary(path, time.perf_counter() - started if compiled else 0.0)
    except (build.CompileError, KernelUnavailableError, OSError) as error:
        return str(error)


def unavailable(kernel: CellKernel | None) -> str | None:
    """Why the compiled engine cannot run `kernel` (None when it can)."""
    if kernel is None:
        return "the cell has no compiled kernel (CellKernel)"
    try:
        library_for(kernel)
    except KernelUnavailableError as error:
        return str(error)
    return None
