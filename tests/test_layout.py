"""The package's import directions and the engine's independence from the cells it runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from rnnkit.cells import CELLS

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "rnnkit"
GATE_WORDS = ("forget gate", "input gate", "output gate", "reset gate", "update gate", "candidate")


def _sources(folder: Path):
    return [
        p for p in folder.rglob("*") if p.suffix in (".py", ".h") and "_prebuilt" not in p.parts
    ]


def test_the_engine_names_no_cell_and_no_gate():
    names = {name for name in CELLS} | {entry.layer for entry in CELLS.values()}
    names |= {entry.cell.__name__ for entry in CELLS.values()} | {"LSTM", "GRU", "Elman"}
    found = []
    for path in _sources(PACKAGE / "engine"):
        text = path.read_text(encoding="utf-8")
        for name in names:
            if re.search(rf"\b{re.escape(name)}\b", text, flags=re.IGNORECASE):
                found.append(f"{path.name}: {name}")
        found += [f"{path.name}: {w}" for w in GATE_WORDS if w in text.lower()]
    assert found == []


def _imports(path: Path) -> set[str]:
    """The rnnkit subpackages a module imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if target.startswith("rnnkit."):
                found.add(target.split(".")[1])
    return found


def test_imports_go_one_way():
    """cells <- engine <- layers <- models / generate: nothing imports back up the chain."""
    below = {
        "cells": {"engine", "layers", "models", "generate", "tasks", "train", "bench"},
        "engine": {"layers", "models", "generate", "tasks", "train", "bench"},
        "layers": {"models", "generate", "tasks", "train", "bench"},
    }
    wrong = []
    for package, forbidden in below.items():
        for path in (PACKAGE / package).rglob("*.py"):
            bad = _imports(path) & forbidden
            if bad:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert wrong == []
