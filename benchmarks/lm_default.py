#!/usr/bin/env python
"""Choose the language model's default (cell, size, dropout) by wall-clock runs of `rnnkit train`.

Every recipe trains for the same budget of seconds on the same text, one run at a time (the
machine's two cores are the run's own), seeds interleaved across recipes so that a drift of the
machine's speed spreads over all of them. Each finished run appends one JSON line (recipe, seed,
the run's metrics.json) to --out; the summary prints the median held-out loss per recipe and its
ratio to the reference recipe (the tuned plain nn.LSTM of the language-model issue) measured in
the same session.

    python benchmarks/lm_default.py --data ../shared/data/tinyshakespeare/input.txt \\
        --seconds 100 --seeds 0 1 2 --out benchmarks/results/lm_default.jsonl \\
        --recipes reference default lstm320-dropout0.2 lstm512-dropout0.2
    python benchmarks/lm_default.py --summary benchmarks/results/lm_default.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# name -> the flags of `rnnkit train` beyond --data/--out/--max-time/--seed
RECIPES = {
    # the tuned plain-LSTM recipe of the issue (torch's own kernel, float32, torch's init)
    "reference": [
        "--hidden-size",
        "256",
        "--lr",
        "6e-3",
        "--weight-decay",
        "0.01",
        "--dropout",
        "0",
        "--precision",
        "float32",
        "--recurrent-init",
        "uniform",
        "--forget-bias",
        "0",
        "--beta1",
        "0.9",
        "--backend",
        "native",
    ],
    "default": [],
    "lstm320-dropout0.1": ["--dropout", "0.1"],
    "lstm320-dropout0.2": ["--dropout", "0.2"],
    "lstm320-dropout0.3": ["--dropout", "0.3"],
    "lstm384-dropout0.1": ["--hidden-size", "384", "--dropout", "0.1"],
    "lstm384-dropout0.2": ["--hidden-size", "384", "--dropout", "0.2"],
    "lstm448-dropout0.1": ["--hidden-size", "448", "--dropout", "0.1"],
    "lstm448-dropout0.2": ["--hidden-size", "448", "--dropout", "0.2"],
    "lstm384": ["--hidden-size", "384"],
    "lstm448": ["--hidden-size", "448"],
    "lstm512": ["--hidden-size", "512"],
    "lstm512-lr1e-2": ["--hidden-size", "512", "--lr", "1e-2"],
    "lstm512-dropout0.1": ["--hidden-size", "512", "--dropout", "0.1"],
    "lstm512-dropout0.2": ["--hidden-size", "512", "--dropout", "0.2"],
    "lstm512-dropout0.3": ["--hidden-size", "512", "--dropout", "0.3"],
    "lstm512-dropout0.2-lr1e-2": ["--hidden-size", "512", "--dropout", "0.2", "--lr", "1e-2"],
    "lstm640-dropout0.3": ["--hidden-size", "640", "--dropout", "0.3"],
    "2x320-dropout0.2": ["--num-layers", "2", "--dropout", "0.2"],
    "2x384-dropout0.2": ["--num-layers", "2", "--hidden-size", "384", "--dropout", "0.2"],
    "lnlstm320": ["--cell", "lnlstm"],
    "gru384-dropout0.2": ["--cell", "gru", "--hidden-size", "384", "--dropout", "0.2"],
}


def run(recipe: str, seed: int, data: str, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="lm-default-") as out:
        argv = [
            sys.executable,
            "-m",
            "rnnkit",
            "train",
            "--data",
            data,
            "--out",
            out,
            "--max-time",
            str(seconds),
            "--seed",
            str(seed),
            "--quiet",
            *RECIPES[recipe],
        ]
        started = time.time()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{recipe} seed {seed} failed: {done.stderr.strip()}")
        metrics = json.loads(done.stdout)
        with open(os.path.join(out, "log.jsonl"), encoding="utf-8") as f:
            log = [json.loads(line) for line in f if line.strip()]
    load = os.getloadavg()[0]
    return {
        "recipe": recipe,
        "seed": seed,
        "seconds": seconds,
        "started": started,
        "load_after": load,
        "flags": RECIPES[recipe],
        "metrics": metrics,
        "log": log,
    }


def summary(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    by = {}
    for row in rows:
        by.setdefault(row["recipe"], []).append(row)
    reference = by.get("reference")
    ref = statistics.median(r["metrics"]["val_loss"] for r in reference) if reference else None
    print(f"{'recipe':28} {'seeds':>5} {'median':>8} {'each':28} {'tok/s':>8} {'steps':>6} ratio")
    for recipe, runs in sorted(
        by.items(), key=lambda kv: statistics.median(r["metrics"]["val_loss"] for r in kv[1])
    ):
        losses = [r["metrics"]["val_loss"] for r in sorted(runs, key=lambda r: r["seed"])]
        median = statistics.median(losses)
        rate = statistics.median(r["metrics"]["tokens_per_s"] for r in runs)
        steps = statistics.median(r["metrics"]["steps"] for r in runs)
        ratio = f"{median / ref:.3f}" if ref else "-"
        each = " ".join(f"{v:.4f}" for v in losses)
        print(
            f"{recipe:28} {len(runs):5d} {median:8.4f} {each:28} {rate:8.0f} {steps:6.0f} {ratio}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data")
    parser.add_argument("--seconds", type=float, default=100.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--recipes", nargs="+", default=["reference", "default"], choices=sorted(RECIPES)
    )
    parser.add_argument("--out", help="JSON lines to append every finished run to")
    parser.add_argument("--summary", metavar="JSONL", help="only print the summary of a file")
    args = parser.parse_args()
    if args.summary:
        summary(args.summary)
        return
    for seed in args.seeds:
        for recipe in args.recipes:
            row = run(recipe, seed, args.data, args.seconds)
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            m = row["metrics"]
            print(
                f"{recipe} seed {seed}: {m['val_loss']:.4f} ({m['steps']} steps, "
                f"{m['tokens_per_s']:.0f} tok/s, load {row['load_after']:.2f})",
                flush=True,
            )
    summary(args.out)


if __name__ == "__main__":
    main()
