"""Where the figures come from: CPU, cores, library versions, the rnnkit commit, the load."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

from .. import __version__

__all__ = ["Machine"]


@dataclass(frozen=True)
class Machine:
    cpu: str
    logical_cpus: int
    usable_cpus: int
    torch_version: str
    torch_threads: int
    compiler: str  # the C++ compiler the compiled engine's kernels are built with
    numpy_version: str
    blas: str
    python: str
    platform: str
    rnnkit_version: str
    source: str  # git commit of the rnnkit checkout, "+modified" when src/ has local changes
    date: str
    load_average: float | None  # 1-minute load before the run: other work skews the figures

    @classmethod
    def collect(cls) -> Machine:
        usable = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
        return cls(
            cpu=_cpu_model(),
            logical_cpus=os.cpu_count() or 0,
            usable_cpus=usable or 0,
            torch_version=torch.__version__,
            torch_threads=torch.get_num_threads(),
            compiler=_compiler(),
            numpy_version=_version("numpy"),
            blas=_math_libraries(),
            python=platform.python_version(),
            platform=platform.platform(),
            rnnkit_version=__version__,
            source=_source_revision(),
            date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        )

    def lines(self) -> list[str]:
        load = (
            f", load average {self.load_average:.2f} before the run"
            if self.load_average is not None
            else ""
        )
        return [
            f"machine : {self.cpu}, {self.logical_cpus} logical CPUs "
            f"({self.usable_cpus} usable), {self.platform}",
            f"software: torch {self.torch_version} ({self.torch_threads} threads; {self.blas}), "
            f"numpy {self.numpy_version}, Python {self.python}; kernels by {self.compiler}",
            f"rnnkit  : {self.rnnkit_version} ({self.source})",
            f"date    : {self.date}{load}",
        ]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _compiler() -> str:
    """The first line of the kernels' compiler's --version (rnnkit.engine.compiled.build)."""
    from ..engine.compiled.build import compiler

    name = compiler()
    if name is None:
        return "no C++ compiler"
    try:
        result = subprocess.run([name, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return name
    return (result.stdout.splitlines() or [name])[0]


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _source_revision() -> str:
    """The git commit rnnkit runs from, marked when its sources differ: figures of an engine
    under work are only comparable with the code they measured."""
    package = Path(__file__).resolve().parent.parent

    def git(*command: str) -> str:
        return subprocess.run(
            ["git", "-C", str(package), *command],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        modified = git("status", "--porcelain", "--", str(package))
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"git {commit}" + ("+modified" if modified else "")


def _math_libraries() -> str:
    found = [
        name
        for name, available in (
            ("MKL", torch.backends.mkl.is_available()),
            ("oneDNN", torch.backends.mkldnn.is_available()),
        )
        if available
    ]
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            words = next((line for line in cpuinfo if line.startswith("flags")), "").split()
        flags = "AVX-512" if "avx512f" in words else "AVX2" if "avx2" in words else ""
    except OSError:
        pass
    return ", ".join(found + ([flags] if flags else [])) or "no MKL/oneDNN"
