"""`rnnkit experiment long-range`: seed 001's long-range experiments, table and plots.

Writes to --out: results.json (every run with its learning curve and gradient flow), table.md
(the score of every cell per task and length beside the score of a model that remembers
nothing), long_range.png (scores against T) and gradient_flow.png (each cell's ‖∂L/∂h_t‖ at
initialization and after training, per task at the longest T).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
from pathlib import Path

import torch

from .. import _atomic
from .long_range import CELLS, TASKS, LongRangeResult, train_one

__all__ = ["add_experiment_arguments", "run_experiment"]

EXPERIMENT_DESCRIPTION = (
    "Run seed 001's long-range experiments: the adding problem and the copy task at several "
    "lengths T for the tanh RNN, the IRNN (ReLU, identity init), LSTM and GRU, each cell on the "
    "same wall-clock budget; writes a table, plots and the gradient flow of every cell."
)


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers like 50,100,200; got {text!r}"
        ) from None
    if any(v < 2 for v in values):
        raise argparse.ArgumentTypeError(f"lengths must be >= 2; got {text!r}")
    return values


def _names(allowed):
    def parse(text: str) -> list[str]:
        names = [v.strip() for v in text.split(",") if v.strip()]
        wrong = [n for n in names if n not in allowed]
        if wrong or not names:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}; got {text!r}")
        return names

    return parse


def add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", choices=["long-range"], help="the experiment to run")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the outputs go")
    parser.add_argument(
        "--tasks", type=_names(tuple(TASKS)), default=list(TASKS), help="adding,copy (both)"
    )
    parser.add_argument(
        "--lengths", type=_positive_ints, default=[50, 100, 200], help="T values (50,100,200)"
    )
    parser.add_argument(
        "--cells", type=_names(tuple(CELLS)), default=list(CELLS), help="tanh,irnn,lstm,gru"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="wall-clock training budget of each run (default: %(default)s)",
    )
    parser.add_argument("--hidden-size", type=int, default=128, help="units (default: 128)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    parser.add_argument("--force", action="store_true", help="replace an earlier --out")


def _table(results: list[LongRangeResult], seconds: float, hidden: int) -> str:
    lines = [
        f"Budget: {seconds:g} s of training per run, hidden {hidden}, batch 64, Adam (lr 1e-3, "
        f"IRNN 1e-4), clip 1.0; "
        f"{platform.machine()} with {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.",
        "",
        "| task | T | metric | remembers nothing | " + " | ".join(CELLS) + " |",
        "|---|---|---|---|" + "---|" * len(CELLS),
    ]
    keys = sorted({(r.task, r.steps) for r in results}, key=lambda k: (k[0], k[1]))
    for task, steps in keys:
        row = {r.cell: r for r in results if r.task == task and r.steps == steps}
        first = next(iter(row.values()))
        cells = " | ".join(
            f"{row[c].score:.3g} ({row[c].train_steps} steps)" if c in row else "-" for c in CELLS
        )
        lines.append(f"| {task} | {steps} | {first.metric} | {first.trivial:.3f} | {cells} |")
    return "\n".join(lines) + "\n"


def _plots(out: Path, results: list[LongRangeResult]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = sorted({r.task for r in results})
    figure = Figure(figsize=(5 * len(tasks), 4), dpi=110)
    FigureCanvasAgg(figure)
    for i, task in enumerate(tasks):
        axes = figure.add_subplot(1, len(tasks), i + 1)
        runs = [r for r in results if r.task == task]
        for cell in CELLS:
            mine = sorted((r for r in runs if r.cell == cell), key=lambda r: r.steps)
            if mine:
                axes.plot([r.steps for r in mine], [r.score for r in mine], "o-", label=cell)
        axes.axhline(runs[0].trivial, color="grey", ls="--", label="remembers nothing")
        axes.set_xlabel("T (steps between the inputs and the answer)")
        axes.set_ylabel(runs[0].metric)
        if task == "adding":
            axes.set_yscale("log")
        axes.set_title(task)
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out / "long_range.png")

    figure = Figure(figsize=(5 * len(tasks), 4), dpi=110)
    FigureCanvasAgg(figure)
    for i, task in enumerate(tasks):
        axes = figure.add_subplot(1, len(tasks), i + 1)
        longest = max(r.steps for r in results if r.task == task)
        for r in results:
            if r.task != task or r.steps != longest:
                continue
            colour = f"C{list(CELLS).index(r.cell)}"  # one colour per cell, init and trained
            for values, style, when in ((r.flow_at_init, "--", "init"), (r.flow_trained, "-", "")):
                v = torch.tensor(values).flip(0).clamp_min(1e-30)
                label = f"{r.cell} {when}".strip()
                axes.semilogy(range(len(v)), v, style, color=colour, label=label)
        axes.set_xlabel("distance from the last step")
        axes.set_ylabel("‖∂L/∂h_t‖ (0 drawn at 1e-30)")
        axes.set_title(f"{task}, T={longest}: at init (dashed) and trained")
        axes.legend(fontsize="x-small", ncol=2)
    figure.tight_layout()
    figure.savefig(out / "gradient_flow.png")


def run_experiment(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if (out / "results.json").exists() and not args.force:
        raise ValueError(f"--out {out} holds an earlier experiment; pass --force to replace it")
    if args.seconds <= 0:
        raise ValueError(f"--seconds must be > 0; got {args.seconds}")
    if args.hidden_size < 1:
        raise ValueError(f"--hidden-size must be >= 1; got {args.hidden_size}")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    runs = [(t, s, c) for t in args.tasks for s in args.lengths for c in args.cells]
    for k, (task, steps, cell) in enumerate(runs, 1):

        def progress(task, cell, steps, point, k=k):
            step, elapsed, score = point
            print(
                f"\r[{k}/{len(runs)}] {task} T={steps} {cell}: step {step}, {elapsed:.0f} s, "
                f"held-out {TASKS[task].metric} {score:.4f}   ",
                end="",
                file=sys.stderr,
                flush=True,
            )

        result = train_one(
            task,
            cell,
            steps,
            seconds=args.seconds,
            hidden=args.hidden_size,
            seed=args.seed,
            progress=progress,
        )
        results.append(result)
        print(
            f"\r[{k}/{len(runs)}] {task} T={steps} {cell}: {result.metric} {result.score:.4f} "
            f"after {result.train_steps} steps ({result.seconds:.0f} s)      ",
            file=sys.stderr,
            flush=True,
        )
        _atomic.write_json(out / "results.json", [dataclasses.asdict(r) for r in results])
    table = _table(results, args.seconds, args.hidden_size)
    _atomic.write_text(out / "table.md", table)
    _plots(out, results)
    print(table)
    return 0
