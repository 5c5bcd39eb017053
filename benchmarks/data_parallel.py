"""One process against N data-parallel processes (torchrun) on the same run: held-out loss and
time of each, interleaved in one session.

    python benchmarks/data_parallel.py --max-steps 300 --repeats 2
    python benchmarks/data_parallel.py --nproc 2 -- --task tag --data ned.train --max-steps 200

Every row is a real `rnnkit train` (the language model on the built-in corpus unless flags after
`--` say otherwise) with the same seed and global --batch-size: one process with all cores, one
process with one thread (what each rank gets), and `torchrun --standalone --nproc_per_node N`.
Dropout is 0 and the arithmetic float32 so that the runs are comparable step for step. Prints a
Markdown table; run on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

FIXED = ["--dropout", "0", "--precision", "float32", "--quiet", "--force"]


def run(command: list[str], out: Path) -> dict:
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def contenders(nproc: int, cores: int, flags: list[str]) -> dict[str, list[str]]:
    rnnkit = [sys.executable, "-m", "rnnkit", "train", *FIXED, *flags]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return {
        f"1 process, {cores} threads": [*rnnkit, "--threads", str(cores)],
        "1 process, 1 thread": [*rnnkit, "--threads", "1"],
        f"{nproc} processes (torchrun)": [
            *launcher,
            "--nproc_per_node",
            str(nproc),
            "-m",
            "rnnkit",
            "train",
            *FIXED,
            *flags,
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("flags", nargs="*", help="more rnnkit train flags (after --)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    flags = ["--max-steps", str(args.max_steps), "--eval-every", str(args.max_steps), *args.flags]
    runs = contenders(args.nproc, cores, flags)
    results: dict[str, list[dict]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as work:
        for repeat in range(args.repeats):
            for i, (name, command) in enumerate(runs.items()):
                metrics = run(command, Path(work) / f"run{i}")
                results[name].append(metrics)
                print(
                    f"# {repeat + 1}/{args.repeats} {name}: val loss {metrics['val_loss']:.6f}, "
                    f"train {metrics['train_time']:.1f} s, wall {metrics['wall_time']:.1f} s",
                    file=sys.stderr,
                )
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores; ", end="")
    print(f"rnnkit train {' '.join(flags)} (dropout 0, float32); {args.repeats} runs each\n")
    print("| run | held-out loss | training s (median) | wall s (median) | tokens/s |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        rows.sort(key=lambda m: m["train_time"])
        mid = rows[len(rows) // 2]
        losses = sorted({round(m["val_loss"], 6) for m in rows})
        print(
            f"| {name} | {', '.join(f'{v:.6f}' for v in losses)} | {mid['train_time']:.1f} | "
            f"{mid['wall_time']:.1f} | {mid['tokens_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
