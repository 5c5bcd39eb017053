"""Compiling a cell's kernel into a shared library, and where the libraries are kept.

One library per kernel source: the cell's C++ (its CellKernel) after engine.h, then
RNNKIT_EXPORT_CELL, and the fused generation loop that drives the same sweep
(rnnkit/generate/fused.h). It is plain C++ with no torch headers, so it compiles in about a second;
the matrix products reach torch's BLAS through pointers handed over at load time
(library.py), and its OpenMP resolves to the libgomp torch has already loaded.

Libraries are found, in order, in the package's `_prebuilt/` folder (filled at install time by
setup.py for the built-in cells) and in the user cache ($RNNKIT_CACHE_DIR, else
$XDG_CACHE_HOME/rnnkit/kernels, else ~/.cache/rnnkit/kernels); a library missing from both is
compiled into the cache. A library's file name carries a hash of everything it was built from
(the sources, the flags, the CPU's instruction sets: it is compiled for this CPU), so a stale
one is never loaded.

This module uses the standard library only: setup.py loads it by path, before torch exists.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = [
    "CompileError",
    "builtin_kernels",
    "compile_library",
    "find_or_build",
    "library_name",
    "translation_unit",
]

HERE = Path(__file__).resolve().parent
PREBUILT = HERE / "_prebuilt"
GENERATE = HERE.parent.parent / "generate"
HEADERS = (HERE / "engine.h", HERE / "vecmath.h", HERE / "dropout.h", GENERATE / "fused.h")
# -fno-trapping-math lets gcc turn the activations' selects into vector blends; neither flag
# changes a result (no -ffast-math: float64 parity with torch holds to rounding).
FLAGS = (
    "-O3",
    "-march=native",
    "-mprefer-vector-width=512",  # AVX-512 machines: 512-bit loops (ignored elsewhere)
    "-fno-trapping-math",
    "-fno-math-errno",
    "-fopenmp",
    "-fPIC",
    "-shared",
    "-std=c++17",
)
COMPILE_TIMEOUT = 300  # seconds


class CompileError(RuntimeError):
    """The C++ compiler is missing or refused a kernel; the message says which and why."""


def compiler() -> str | None:
    """The C++ compiler: $RNNKIT_CXX (only it, when set), else $CXX, else g++ or c++ on the
    PATH; None when there is none."""
    chosen = os.environ.get("RNNKIT_CXX")
    if chosen:
        return chosen if shutil.which(chosen) else None
    for name in (os.environ.get("CXX"), "g++", "c++"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_features() -> str:
    """The CPU's model and instruction-set flags (what -march=native compiles for)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.machine() + platform.processor()
    lines = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(lines)))


def translation_unit(struct_name: str, source: str) -> str:
    """The C++ file compiled for a kernel."""
    return (
        '#include "engine.h"\n'
        f"// cell kernel {struct_name}\n"
        f"{source}\n"
        f"RNNKIT_EXPORT_CELL({struct_name})\n"
        '#include "fused.h"\n'
        f"RNNKIT_EXPORT_GENERATION({struct_name})\n"
        '#include "dropout.h"\n'
        "RNNKIT_EXPORT_DROPOUT()\n"
    )


def library_name(struct_name: str, source: str) -> str:
    """The file name of a kernel's library: the struct's name and a hash of its inputs."""
    digest = hashlib.sha256()
    digest.update(translation_unit(struct_name, source).encode())
    for header in HEADERS:
        digest.update(header.read_bytes())
    digest.update(" ".join(FLAGS).encode())
    digest.update(_cpu_features().encode())
    safe = "".join(ch if ch.isalnum() else "_" for ch in struct_name)[:40]
    return f"{safe}-{digest.hexdigest()[:16]}.so"


def cache_dir() -> Path:
    if os.environ.get("RNNKIT_CACHE_DIR"):
        return Path(os.environ["RNNKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnkit" / "kernels"


def compile_library(struct_name: str, source: str, out_dir: Path) -> Path:
    """Compile a kernel into out_dir (atomically: a finished file or none); returns its path."""
    cxx = compiler()
    if cxx is None:
        raise CompileError(
            "no C++ compiler found (g++ or c++ on the PATH, or $RNNKIT_CXX); install g++ to "
            "run the compiled engine"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / library_name(struct_name, source)
    with tempfile.TemporaryDirectory(prefix="rnnkit-build-") as work:
        unit = Path(work) / "kernel.cpp"
        unit.write_text(translation_unit(struct_name, source))
        built = Path(work) / "kernel.so"
        command = [cxx, *FLAGS, f"-I{HERE}", f"-I{GENERATE}", str(unit), "-o", str(built)]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise CompileError(f"{cxx} could not compile kernel {struct_name}: {error}") from None
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if "error" in line]
            first = lines[0] if lines else result.stderr.strip()[:500]
            raise CompileError(f"{cxx} refused kernel {struct_name}: {first}")
        # A unique name in the target folder, then an atomic rename: concurrent builders
        # (test workers) each finish a whole file, and the last rename wins.
        fd, temporary = tempfile.mkstemp(dir=out_dir, prefix=".building-", suffix=".so")
        os.close(fd)
        shutil.copyfile(built, temporary)
        os.replace(temporary, target)
    return target


def find_or_build(struct_name: str, source: str) -> tuple[Path, bool]:
    """(the library's path, whether it was compiled now): prebuilt, cached, or built.
    $RNNKIT_NO_PREBUILT=1 skips the prebuilt folder (to measure the compile itself)."""
    name = library_name(struct_name, source)
    folders = [cache_dir()] if os.environ.get("RNNKIT_NO_PREBUILT") else [PREBUILT, cache_dir()]
    for folder in folders:
        if (folder / name).is_file():
            return folder / name, False
    return compile_library(struct_name, source, cache_dir()), True


def builtin_kernels(cells_dir: Path) -> list[tuple[str, str]]:
    """(struct name, source) of every `CellKernel("Name", r\"\"\"...\"\"\")` written as literals
    in the cell modules, read without importing them (setup.py runs before torch exists)."""
    found = []
    for path in sorted(cells_dir.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "CellKernel"):
                continue
            args = list(node.args) + [k.value for k in node.keywords]
            if len(args) == 2 and all(
                isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args
            ):
                found.append((args[0].value, args[1].value))
    return found


def prebuild(cells_dir: Path, out_dir: Path = PREBUILT) -> list[str]:
    """Compile every built-in kernel into out_dir (two at a time); returns one line per kernel,
    and never raises: a machine without a compiler still installs (the engine says why it
    cannot run)."""
    from concurrent.futures import ThreadPoolExecutor

    kernels = builtin_kernels(cells_dir)

    def one(kernel: tuple[str, str]) -> str:
        name, source = kernel
        try:
            compile_library(name, source, out_dir)
        except CompileError as error:
            return f"rnnkit: kernel {name} not prebuilt: {error}"
        return f"rnnkit: kernel {name} prebuilt"

    with ThreadPoolExecutor(max_workers=2) as pool:
        lines = list(pool.map(one, kernels))
    # libraries of sources that changed since an earlier build are never loaded again
    current = {library_name(name, source) for name, source in kernels}
    for stale in out_dir.glob("*.so"):
        if stale.name not in current:
            stale.unlink(missing_ok=True)
    return lines


if __name__ == "__main__":  # python build.py CELLS_DIR [OUT_DIR]
    cells = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "cells"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else PREBUILT
    for line in prebuild(cells, out):
        print(line)
