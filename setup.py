"""Install-time step: compile the compiled engine's kernels of the built-in cells.

Everything else about the package is in pyproject.toml. The kernels are compiled by
src/rnnkit/engine/compiled/build.py (standard library only, loaded by path: torch is not
importable here), two at a time, into rnnkit/engine/compiled/_prebuilt/. A machine without a
C++ compiler still installs; the engine then says why it cannot run (layer.explain()).
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PACKAGE = Path(__file__).resolve().parent / "src" / "rnnkit"


def _kernel_builder():
    path = PACKAGE / "engine" / "compiled" / "build.py"
    spec = importlib.util.spec_from_file_location("rnnkit_kernel_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithKernels(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            target = PACKAGE / "engine" / "compiled" / "_prebuilt"
        else:
            target = Path(self.build_lib) / "rnnkit" / "engine" / "compiled" / "_prebuilt"
        for line in _kernel_builder().prebuild(PACKAGE / "cells", target):
            print(line)


setup(cmdclass={"build_py": BuildPyWithKernels})
