"""Suites "streaming" and "generation": provided by rnnkit.stream.benchmarks.

That module (part of the streaming work) defines `streaming_suite(quick) -> list[dict]` (batch-1
step latency, H 128 and 256, 1 and 2 layers, against nn.LSTM called the same way) and
`generation_suite(quick) -> list[dict]` (characters per second of a 2-layer, 256-unit character
LSTM against the eager sampling loop). This module only calls them and tags their rows; a row
that carries `target` (text) and `met` (bool) feeds the summary of targets.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["EXTERNAL_SUITES", "run_external"]

EXTERNAL_SUITES = {"streaming": "streaming_suite", "generation": "generation_suite"}
_MODULE = "rnnkit.stream.benchmarks"


def run_external(suite: str, *, quick: bool = False, progress=sys.stderr) -> tuple[list, str]:
    """(rows, note): the suite's rows, or no rows and why not."""
    try:
        module = importlib.import_module(_MODULE)
    except ModuleNotFoundError as error:
        if error.name != _MODULE:
            raise
        return [], f"{_MODULE} is not available yet; suite {suite!r} not run"
    function = getattr(module, EXTERNAL_SUITES[suite], None)
    if function is None:
        return [], f"{_MODULE} has no {EXTERNAL_SUITES[suite]}(); suite {suite!r} not run"
    if progress is not None:
        print(f"  [{suite}] {_MODULE}.{EXTERNAL_SUITES[suite]}(quick={quick})", file=progress)
    rows = function(quick)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TypeError(f"{_MODULE}.{EXTERNAL_SUITES[suite]} must return a list of dicts")
    return [{"suite": suite, **row} for row in rows], ""
