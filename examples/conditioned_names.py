"""Names by language of origin: `rnnkit train --task condlm` against character n-gram models.

The data is the PyTorch tutorials' names corpus (data/names/*.txt, one file per language, one
name per line; about 20,000 names in 18 languages), which is not shipped: pass its folder.

    python examples/conditioned_names.py --names data/names --max-time 60

What it does: writes train.tsv and val.tsv (`language<TAB>name`; a random 10% of each
language's names held out, as the task's own split of a shuffled file does), trains a condlm
run with only --data, --val-data and --max-time, and scores the held-out names with `rnnkit
evaluate` and with interpolated absolute-discounting character n-gram models beside it: one
per language backing off to the all-language one (the conditioned baseline), and the
all-language one alone (unconditioned). The n-gram order is the best on the held-out names
(2-5), which flatters the baseline. Then it samples names for a few languages.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

BOS, EOS = "\x02", "\x03"
DISCOUNT = 0.75


class CharNgram:
    """Interpolated absolute discounting over characters (Ney et al. 1994), order n, ending
    in `base` (another CharNgram) or a uniform distribution over the alphabet."""

    def __init__(self, names: list[str], order: int, alphabet: set[str], base=None) -> None:
        self.order, self.base, self.size = order, base, len(alphabet) + 1  # + <eos>
        self.counts: dict[str, Counter] = defaultdict(Counter)
        for name in names:
            text = BOS * (order - 1) + name + EOS
            for i in range(order - 1, len(text)):
                for k in range(order):  # every history length 0 .. order-1
                    self.counts[text[i - k : i]][text[i]] += 1

    def prob(self, history: str, char: str) -> float:
        lower = self.base.prob(history, char) if self.base is not None else 1.0 / self.size
        for k in range(0, self.order):  # shortest history first, each level over the one below
            h = history[len(history) - k :] if k else ""
            seen = self.counts.get(h)
            if not seen:
                break
            total = sum(seen.values())
            lower = (max(seen[char] - DISCOUNT, 0) + DISCOUNT * len(seen) * lower) / total
        return lower

    def nats(self, name: str) -> tuple[float, int]:
        text = BOS * (self.order - 1) + name + EOS
        total = 0.0
        for i in range(self.order - 1, len(text)):
            total -= math.log(self.prob(text[i - self.order + 1 : i], text[i]))
        return total, len(name) + 1


def read_names(folder: Path) -> dict[str, list[str]]:
    languages = {}
    for path in sorted(folder.glob("*.txt")):
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        languages[path.stem] = [n for n in names if n]
    if not languages:
        sys.exit(f"{folder} holds no *.txt files; pass the names corpus's data/names folder")
    return languages


def split(languages: dict[str, list[str]], seed: int) -> tuple[list, list]:
    """The last 10% of each language's names, shuffled first: the files are sorted, so their
    tails are the names that start with the last letters."""
    train, val = [], []
    for language, names in languages.items():
        names = list(names)
        random.Random(f"{seed}-{language}").shuffle(names)
        held = max(1, round(len(names) * 0.1))
        train += [(language, n) for n in names[:-held]]
        val += [(language, n) for n in names[-held:]]
    return train, val


def perplexities(models, val) -> tuple[float, dict[str, float]]:
    per: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for language, name in val:
        nats, tokens = models(language).nats(name)
        per[language][0] += nats
        per[language][1] += tokens
    total = sum(v[0] for v in per.values()) / sum(v[1] for v in per.values())
    return math.exp(total), {k: math.exp(v[0] / v[1]) for k, v in per.items()}


def rnnkit(*args: str) -> str:
    command = [sys.executable, "-m", "rnnkit", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=Path, required=True, help="the data/names folder")
    parser.add_argument("--out", type=Path, default=Path("runs/names"), help="run directory")
    parser.add_argument("--max-time", type=float, default=60.0, help="seconds of training")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    languages = read_names(args.names)
    train, val = split(languages, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files = {"train": args.out.with_name(args.out.name + "-train.tsv")}
    files["val"] = args.out.with_name(args.out.name + "-val.tsv")
    for part, rows in (("train", train), ("val", val)):
        files[part].write_text("".join(f"{c}\t{n}\n" for c, n in rows), encoding="utf-8")

    rnnkit(
        "train", "--task", "condlm", "--data", str(files["train"]), "--val-data",
        str(files["val"]), "--out", str(args.out), "--max-time", str(args.max_time),
        "--seed", str(args.seed), "--force",
    )  # fmt: skip
    scores = rnnkit("evaluate", "--checkpoint", str(args.out), "--data", str(files["val"]))
    result = json.loads(scores)

    alphabet = {ch for _, n in train for ch in n}
    best = None
    for order in range(2, 6):
        every = CharNgram([n for _, n in train], order, alphabet)
        own = {
            language: CharNgram([n for c, n in train if c == language], order, alphabet, every)
            for language in languages
        }
        conditioned = perplexities(own.__getitem__, val)
        unconditioned = perplexities(lambda _, model=every: model, val)
        if best is None or conditioned[0] < best[1][0]:
            best = (order, conditioned, unconditioned)
    order, conditioned, unconditioned = best

    print(f"held-out names: {len(val)} in {len(languages)} languages; perplexity per character")
    print(f"{'':24}{'conditioned':>12}{'withheld':>10}")
    print(
        f"{'rnnkit condlm':24}{result['perplexity']:12.3f}"
        f"{result['perplexity_condition_withheld']:10.3f}"
    )
    print(f"{f'{order}-gram (best order)':24}{conditioned[0]:12.3f}{unconditioned[0]:10.3f}")
    print(f"\n{'language':12}{'names':>6}{'rnnkit':>9}{'withheld':>10}{f'{order}-gram':>9}")
    for language, figures in result["per_condition"].items():
        print(
            f"{language:12}{figures['examples']:6d}{figures['perplexity']:9.3f}"
            f"{figures['perplexity_condition_withheld']:10.3f}{conditioned[1][language]:9.3f}"
        )
    print()
    for language in ("English", "Italian", "Russian", "Japanese", "Chinese", "Greek"):
        if language not in languages:
            continue
        samples = [
            rnnkit(
                "generate", "--checkpoint", str(args.out), "--condition", language,
                "--temperature", "0.8", "--seed", str(seed),
            ).strip()
            for seed in range(5)
        ]  # fmt: skip
        print(f"{language:10} {', '.join(samples)}")


if __name__ == "__main__":
    main()
