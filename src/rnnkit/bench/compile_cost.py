"""Suite "compile-cost": what the first call of the compiled backend costs, and what the disk
cache saves.

numba compiles the kernels on their first call and caches them on disk (cache=True), so only the
first process on a machine should pay. The suite runs the same script in two fresh processes
sharing an empty NUMBA_CACHE_DIR: the first compiles, the second loads the cache. The script
imports rnnkit and then runs one tiny training step per cell with backend="compiled" (float32 in
the order LSTM, GRU, RNN, Jordan, then LSTM in float64), timing each: kernels shared between
cells compile once, so a later cell's figure is only what it adds. Wall-clock seconds and the
process's CPU seconds are both reported (on a busy machine the CPU time is the steadier figure).
The streaming and generation kernels' first-call costs come from rnnkit.stream.benchmarks'
compile_costs() when it exists.

Opt-in (`--suite compile-cost`): compiling from an empty cache takes tens of seconds.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile

__all__ = ["SUITE", "run_compile_cost"]

SUITE = "compile-cost"
PROCESSES = ("first (empty cache: compiles)", "second (loads the cache)")

_SCRIPT = """
import json, time
start = time.perf_counter()
import torch
import rnnkit
times = {"import_s": time.perf_counter() - start}

def first_step(name, make, dtype=torch.float32):
    began = time.perf_counter()
    layer = make()
    x = torch.randn(5, 2, 4, dtype=dtype, requires_grad=True)
    output, _ = layer(x)
    output.sum().backward()
    times[name] = time.perf_counter() - began

first_step("lstm_s", lambda: rnnkit.LSTM(4, 6, backend="compiled"))
first_step("gru_s", lambda: rnnkit.GRU(4, 6, backend="compiled"))
first_step("rnn_s", lambda: rnnkit.RNN(4, 6, backend="compiled"))
first_step("jordan_s", lambda: rnnkit.JordanRNN(4, 6, 3, backend="compiled"))
first_step(
    "lstm_float64_s",
    lambda: rnnkit.LSTM(4, 6, backend="compiled", dtype=torch.float64),
    torch.float64,
)
times["total_s"] = time.perf_counter() - start
times["cpu_s"] = time.process_time()
print(json.dumps(times))
"""


def engine_first_calls(timeout: float = 900.0) -> list[dict]:
    """One row per process (first: empty cache, second: the cache the first wrote)."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for process in PROCESSES:
            result = subprocess.run(
                [sys.executable, "-c", _SCRIPT],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=timeout,
            )
            times = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append({"suite": SUITE, "what": "compiled engine", "process": process, **times})
    return rows


def run_compile_cost(progress=sys.stderr) -> tuple[list[dict], str]:
    """(rows, note): the engine's first-call costs, then the streaming kernels' if available."""
    if progress is not None:
        print(f"  [{SUITE}] two fresh processes, empty numba cache", file=progress, flush=True)
    rows = engine_first_calls()
    try:
        stream = importlib.import_module("rnnkit.stream.benchmarks")
    except ModuleNotFoundError:
        return rows, "rnnkit.stream.benchmarks not available: streaming kernels not measured"
    costs = getattr(stream, "compile_costs", None)
    if costs is None:
        return rows, "rnnkit.stream.benchmarks has no compile_costs(): streaming not measured"
    return rows + [{"what": "streaming + generation", **row} for row in costs()], ""
