"""Suite "compile-cost": what the first use of the compiled engine costs on a fresh install.

The built-in cells' kernels are compiled at install time (setup.py); a user's cell compiles on
its first use and is cached on disk (rnnkit.engine.compiled.build). The suite runs one script in
three fresh processes: with an empty kernel cache and the prebuilt kernels ignored (every kernel
compiles: what an install without the build step would pay), again with that cache (it loads),
and with the install's prebuilt kernels (what a fresh install pays: the target). The script
imports rnnkit, loads every registered cell's kernel, then runs a first LSTM step.

Opt-in (`--suite compile-cost`): compiling every kernel takes some seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

__all__ = ["SUITE", "run_compile_cost"]

SUITE = "compile-cost"

_FIRST_CALL = """
import time, torch
t0 = time.perf_counter()
import rnnkit
from rnnkit.cells import CELLS
from rnnkit.engine.compiled.library import library_for
t1 = time.perf_counter()
seconds = {}
for name, entry in CELLS.items():
    start = time.perf_counter()
    library_for(entry.cell.kernel)
    seconds[name] = time.perf_counter() - start
t2 = time.perf_counter()
layer = rnnkit.LSTM(8, 8).eval()
with torch.no_grad():
    layer.step(torch.zeros(1, 8))
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, max(seconds.values()))
"""


def compile_costs() -> list[dict]:
    """Import, loading every built-in kernel and a first LSTM step, in seconds: in a process
    with an empty kernel cache that may not use the prebuilt kernels (every kernel compiles, as
    without an install-time build), in a second process that finds that cache, and in one that
    uses the install's prebuilt kernels (what a fresh install runs)."""
    from ..engine.compiled import build

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for process, prebuilt in (
            ("first (empty cache, no prebuilt kernels: compiles)", False),
            ("second (loads that cache)", False),
            ("installed (the prebuilt kernels)", True),
        ):
            env = {**os.environ, "RNNKIT_CACHE_DIR": cache}
            if not prebuilt:
                env["RNNKIT_NO_PREBUILT"] = "1"
            result = subprocess.run(
                [sys.executable, "-c", _FIRST_CALL],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=900,
            )
            imports, kernels, step, slowest = (float(v) for v in result.stdout.split())
            rows.append(
                {
                    "suite": SUITE,
                    "process": process,
                    "import_s": imports,
                    "all_kernels_s": kernels,
                    "slowest_kernel_s": slowest,
                    "first_step_s": step,
                    "prebuilt_kernels": len(list(build.PREBUILT.glob("*.so"))),
                    "target": "no command spends more than 5 s compiling" if prebuilt else None,
                    "target_met": kernels + step <= 5.0 if prebuilt else None,
                }
            )
    return rows


def run_compile_cost(progress=sys.stderr) -> tuple[list[dict], str]:
    if progress is not None:
        print(f"  [{SUITE}] three fresh processes", file=progress)
    return compile_costs(), ""
