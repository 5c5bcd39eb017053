"""`rnnkit bench`: the options, and the run that ties the suites, the plan and the report."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .compile_cost import run_compile_cost
from .contenders import CELLS
from .flops import gemm_peak
from .inference import run_inference
from .machine import Machine
from .plan import GRID_B, GRID_H, GRID_T, TARGET_SIZES, plan_rows, quick_configs, suite_configs
from .report import judge_targets, markdown_report, results_json, suite_table, targets_table
from .scan import run_scan
from .streaming import EXTERNAL_SUITES, run_external
from .train_step import run_train_step
from .varlen import estimate_seconds as varlen_estimate
from .varlen import run_varlen

__all__ = ["add_bench_arguments", "run_bench"]

SUITES = {
    "train-step": "forward + backward of one layer at the target sizes, every cell",
    "inference": "the forward pass without gradients: compiled and auto vs torch.nn",
    "scan": "MinGRU's parallel scan vs its step loop and torch.nn.GRU at T = 1024",
    "varlen": "variable-length batches: packed and padded with lengths= vs torch.nn packed",
    "streaming": "batch-1 step latency of the drop-in layer call, stream() and step()",
    "generation": "characters per second of a 2x256 character LSTM, fused vs eager",
    "compile-cost": "first use of the kernels: compiling, from the cache, prebuilt (opt-in)",
}
DEFAULT_SUITES = ("train-step", "inference", "scan", "varlen", "streaming", "generation")
RUN_ORDER = (
    "compile-cost",
    "streaming",
    "generation",
    "scan",
    "inference",
    "varlen",
    "train-step",
)  # budgeted last
DEFAULT_CELLS = tuple(CELLS)
DEFAULT_MAX_MINUTES = 9.5
EXTERNAL_RESERVE_S = {False: 60.0, True: 10.0}  # streaming + generation, not estimated here
COMPILE_RESERVE_S = 120.0  # compile-cost: two processes, one compiling from an empty cache
PEAK_SIZE = {False: 2048, True: 512}


def _names(allowed, what: str) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: a comma-separated list of names from `allowed`."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in allowed]
        if not names or unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)}; "
                f"choose from {', '.join(allowed)} (comma-separated)"
            )
        return names

    return parse


def _number_at_least(kind: type, minimum: float, strictly: bool = False):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (strictly and value == minimum):
            relation = ">" if strictly else ">="
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'} {relation} {minimum}; "
                f"got {text!r}"
            )
        return value

    return parse


def _epilog() -> str:
    sizes = ", ".join(f"B{b} T{t} I{i} H{h}" for b, t, i, h in TARGET_SIZES)
    return (
        "contenders per train-step row (identical weights, same input, interleaved rounds):\n"
        "  compiled   rnnkit layer, backend='compiled' (the C++ engine): the headline\n"
        "  reference  rnnkit layer, backend='reference' (rnnkit's engine in torch ops)\n"
        "  native     same layer, backend='native' (torch.nn's kernel; none for the others)\n"
        "  naive      Python loop over nn.RNNCell/LSTMCell/GRUCell with autograd (Jordan: a\n"
        "             hand-written loop; layer-norm cells: rnnkit.baselines; other cells:\n"
        "             their own equations, rnnkit.baselines.equations_loop)\n"
        "  twin       torch.nn.LSTM / GRU of the same sizes beside a layer-norm cell (timed,\n"
        "             not compared)\n"
        "\n"
        f"sizes (--grid targets, the default): {sizes} (the last: d2l's Time Machine model);\n"
        f"other grids: B {GRID_B} x T {GRID_T} x H {GRID_H}, I = O = H/4, float32, 1 layer\n"
        "(full: all 48 per cell, latin: 16, diagonal: 8).\n"
        "Rows are planned from a cost model to fit --max-minutes; --plan shows the plan.\n"
        "\n"
        "output: median ms per step; 'A vs B' = time_B / time_A per round, median [q1-q3]\n"
        "(above 1x A is faster); GFLOP/s and % of the GEMM peak measured in the same run;\n"
        "a summary of the engine's targets, met or not. Files: --out DIR writes bench.json and\n"
        "bench.md.\n"
        "\n"
        "examples:\n"
        "  rnnkit bench --quick                          seconds: a smoke test for CI\n"
        "  rnnkit bench --plan                           what a full run would time, estimated\n"
        "  rnnkit bench --out benchmarks/results/$(date +%F)   the full run, < 10 minutes\n"
        "  rnnkit bench --suite train-step --cells lstm --grid full --max-minutes 20\n"
    )


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rnnkit bench`."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _epilog()
    parser.add_argument(
        "--suite",
        type=_names(tuple(SUITES), "suite"),
        default=DEFAULT_SUITES,
        metavar="NAMES",
        help=f"suites to run, comma-separated, from {', '.join(SUITES)} "
        f"(default: {','.join(DEFAULT_SUITES)}; compile-cost is opt-in, about a minute)",
    )
    parser.add_argument(
        "--cells",
        type=_names(tuple(CELLS), "cell"),
        default=DEFAULT_CELLS,
        metavar="NAMES",
        help=f"cells of the train-step suite, from {', '.join(CELLS)} "
        f"(default: {','.join(DEFAULT_CELLS)})",
    )
    parser.add_argument(
        "--grid",
        choices=("targets", "full", "latin", "diagonal"),
        default="targets",
        help="train-step configurations: the target sizes, or a design of the B x T x H grid "
        "('full' = all 48 per cell: far over 10 minutes) (default: %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one tiny row per cell and suite, 3 rounds: a smoke test for CI that finishes in "
        "seconds; its figures mean little",
    )
    parser.add_argument(
        "--max-minutes",
        type=_number_at_least(float, 0.0, strictly=True),
        metavar="M",
        help=f"time budget of the whole run: the plan fits its estimate into it and rows that "
        f"would start after it are reported as not run (default: {DEFAULT_MAX_MINUTES}; "
        "none with --quick)",
    )
    parser.add_argument(
        "--repeats",
        type=_number_at_least(int, 1),
        metavar="N",
        help="timed rounds per row, instead of the planned 3-15 (no budget cut then)",
    )
    parser.add_argument(
        "--plan",
        action="store_true",
        help="print the train-step plan (rows, contenders, rounds, estimated time) and exit",
    )
    parser.add_argument(
        "--threads",
        type=_number_at_least(int, 1),
        metavar="N",
        help="torch.set_num_threads(N) before timing (default: torch's default, "
        f"{torch.get_num_threads()} here)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed for weights and inputs (default: 0)"
    )
    parser.add_argument(
        "--out", metavar="DIR", help="write DIR/bench.json (every row) and DIR/bench.md"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the JSON to PATH")
    parser.add_argument("--markdown", metavar="PATH", help="also write the markdown to PATH")


def _check_writable(path: Path, directory: bool = False) -> None:
    """Fail before timing, not after, when an output cannot be written."""
    if directory and path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--out {path} is a file, not a directory")
    if not directory and path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name")
    parent = path if directory else path.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write {path}: {parent} is not writable")


def _outputs(args) -> dict[str, Path]:
    outputs = {}
    if args.out:
        _check_writable(Path(args.out), directory=True)
        outputs = {"json": Path(args.out) / "bench.json", "md": Path(args.out) / "bench.md"}
    if args.json:
        outputs["json_extra"] = Path(args.json)
    if args.markdown:
        outputs["md_extra"] = Path(args.markdown)
    for key in ("json_extra", "md_extra"):
        if key in outputs:
            _check_writable(outputs[key])
    return outputs


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _plan_lines(rows) -> list[str]:
    lines = []
    for row in rows:
        left = "; ".join(f"{n}: {r}" for n, r in row.left_out.items())
        lines.append(
            f"  {row.config.label:34} {','.join(row.contenders):32} x{row.rounds:<3} "
            f"~{row.estimate_s:6.1f} s" + (f"   [{left}]" if left else "")
        )
    return lines


def run_bench(args: argparse.Namespace) -> int:
    """Plan, run the suites asked for, print the tables and the targets, write the files."""
    started = time.monotonic()
    outputs = _outputs(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    quick = args.quick
    max_minutes = args.max_minutes or (None if quick else DEFAULT_MAX_MINUTES)
    deadline = started + 60 * max_minutes if max_minutes else None
    suites = [s for s in RUN_ORDER if s in args.suite]
    machine = Machine.collect()
    peak = gemm_peak(PEAK_SIZE[quick], repeats=3 if quick else 5)

    budget = None
    if max_minutes:
        budget = 60 * max_minutes - (time.monotonic() - started)
        if "varlen" in suites:
            budget -= varlen_estimate(quick, peak["gflops"], args.repeats)
        budget -= EXTERNAL_RESERVE_S[quick] * sum(s in suites for s in EXTERNAL_SUITES)
        budget -= COMPILE_RESERVE_S if "compile-cost" in suites else 0.0
        budget = max(budget, 0.0)
    configs = quick_configs(args.cells) if quick else suite_configs(args.cells, args.grid)
    rows, plan_notes = plan_rows(configs, peak["gflops"], budget, quick=quick, rounds=args.repeats)
    estimate = sum(r.estimate_s for r in rows) if "train-step" in suites or args.plan else 0.0
    settings = {
        "suites": suites,
        "cells": list(args.cells),
        "grid": args.grid,
        "quick": quick,
        "max_minutes": max_minutes,
        "repeats": args.repeats,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "train_step_estimate_s": estimate,
    }
    header = [
        f"rnnkit bench: suites {', '.join(suites)}" + (" (--quick)" if quick else ""),
        *machine.lines(),
        f"GEMM peak: {peak['gflops']:.1f} GFLOP/s (float32 torch.mm {peak['size']}^3, best of "
        f"{peak['repeats']}, {peak['threads']} threads)",
    ]
    if "train-step" in suites or args.plan:
        header.append(
            f"plan    : train-step {len(rows)} rows, estimated {estimate / 60:.1f} min; budget "
            + (f"{max_minutes:g} min for the whole run" if max_minutes else "none")
            + (f" ({'; '.join(plan_notes)})" if plan_notes else "")
        )
    print("\n".join(header), flush=True)
    if args.plan:
        print("\n".join(_plan_lines(rows)))
        return 0
    print(file=sys.stderr)

    results: dict[str, list[dict]] = {}
    notes: dict[str, str] = {}
    for suite in suites:
        if suite == "compile-cost":
            results[suite], notes[suite] = run_compile_cost()
        elif suite == "inference":
            results[suite] = run_inference(args.cells, quick=quick, seed=args.seed)
        elif suite == "scan":
            results[suite] = run_scan(quick=quick, seed=args.seed)
        elif suite in EXTERNAL_SUITES:
            results[suite], notes[suite] = run_external(suite, quick=quick)
        elif suite == "varlen":
            results[suite] = run_varlen(
                quick=quick,
                seed=args.seed,
                rounds=args.repeats,
                peak_gflops=peak["gflops"],
                deadline=deadline,
            )
        else:
            results[suite] = run_train_step(
                rows, seed=args.seed, peak_gflops=peak["gflops"], deadline=deadline
            )
    ordered = {s: results[s] for s in SUITES if s in results}
    elapsed = time.monotonic() - started
    header.append(f"elapsed : {elapsed / 60:.1f} min")
    report = results_json(
        machine,
        settings,
        peak,
        ordered,
        {k: v for k, v in notes.items() if v},
        header,
        plan_notes,
        elapsed,
    )

    print("\nTargets (issue 6)\n" + targets_table(judge_targets(ordered)))
    for suite, suite_rows in ordered.items():
        note = report["suite_notes"].get(suite, "")
        print(f"\nSuite {suite}" + (f": {note}" if note else ""))
        print(suite_table(suite, suite_rows))
    print(f"\nelapsed {elapsed / 60:.1f} min", file=sys.stderr)

    text = json.dumps(report, indent=2) + "\n"
    markdown = markdown_report(report)
    for key, path in outputs.items():
        _write(path, text if key.startswith("json") else markdown)
    return 0
