"""Engines: run any cell over a sequence. `reference` is the plain-torch definition."""

from .reference import SweepSpec, sweep
from .stack import run_stack

__all__ = ["SweepSpec", "run_stack", "sweep"]
