"""Date-format normalisation with rnnkit's encoder-decoder: "March 3, 2021" -> "2021-03-03".

The classic attention demo: a date written in one of many human formats goes in character by
character, its ISO 8601 form comes out. Pairs are generated here from a seed (dates between
1900 and 2099, nine formats, none ambiguous: numeric dates are always US month/day/year):

    March 3, 2021            3 March 2021             Mar 3, 2021
    Wednesday, March 3, 2021 3/3/2021                 3rd of March 2021
    march 3 2021             03-MAR-2021              2021, March 3

The model is the seq2seq task's default (a GRU encoder-decoder, bidirectional encoder, Bahdanau
attention), trained with `rnnkit.tasks.SequenceToSequence` exactly as `rnnkit train --task
seq2seq` would; the test set is drawn from a different seed. Run from the repository root:

    .venv/bin/python examples/date_normalization.py                 # the full run (~2 minutes)
    .venv/bin/python examples/date_normalization.py --max-time 20   # a quick one

`--write-tsv DIR` also writes train.tsv and test.tsv for the command line:

    rnnkit train --task seq2seq --data DIR/train.tsv --out runs/dates --max-time 120
    rnnkit evaluate --checkpoint runs/dates --data DIR/test.tsv
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from pathlib import Path

from rnnkit.tasks import SequenceToSequence

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August")
MONTHS += ("September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FIRST, LAST = dt.date(1900, 1, 1), dt.date(2099, 12, 31)


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def human_formats(d: dt.date) -> list[str]:
    """Nine ways people write the date `d` (month names in English, independent of locale)."""
    month = MONTHS[d.month - 1]
    return [
        f"{month} {d.day}, {d.year}",
        f"{d.day} {month} {d.year}",
        f"{month[:3]} {d.day}, {d.year}",
        f"{WEEKDAYS[d.weekday()]}, {month} {d.day}, {d.year}",
        f"{d.month}/{d.day}/{d.year}",
        f"{_ordinal(d.day)} of {month} {d.year}",
        f"{month.lower()} {d.day} {d.year}",
        f"{d.day:02d}-{month[:3].upper()}-{d.year}",
        f"{d.year}, {month} {d.day}",
    ]


def make_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    """n (source, ISO target) pairs: a random date in a random format, from `seed`."""
    rng = random.Random(seed)
    span = (LAST - FIRST).days
    sources, targets = [], []
    for _ in range(n):
        d = FIRST + dt.timedelta(days=rng.randrange(span + 1))
        sources.append(rng.choice(human_formats(d)))
        targets.append(d.isoformat())
    return sources, targets


def run(
    n_train: int = 20000,
    n_test: int = 1000,
    seed: int = 0,
    **options,
) -> tuple[SequenceToSequence, dict]:
    """Train on n_train generated pairs; return the model and its metrics on n_test new ones.

    `options` are rnnkit train options (max_time=..., max_steps=..., hidden_size=...).
    """
    sources, targets = make_pairs(n_train, seed)
    test_sources, test_targets = make_pairs(n_test, seed + 1_000_003)
    model = SequenceToSequence(seed=seed, **options).fit(sources, targets)
    return model, model.evaluate(test_sources, test_targets)


def write_tsv(directory: Path, n_train: int, n_test: int, seed: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, (sources, targets) in (
        ("train.tsv", make_pairs(n_train, seed)),
        ("test.tsv", make_pairs(n_test, seed + 1_000_003)),
    ):
        lines = "".join(f"{s}\t{t}\n" for s, t in zip(sources, targets, strict=True))
        (directory / name).write_text(lines, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000, help="training pairs")
    parser.add_argument("--max-time", type=float, default=120.0, help="training seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-tsv", type=Path, metavar="DIR", help="also write the data")
    args = parser.parse_args(argv)
    if args.write_tsv:
        write_tsv(args.write_tsv, args.examples, 1000, args.seed)
    model, result = run(args.examples, 1000, args.seed, max_time=args.max_time)
    print(
        f"after {model.metrics_['steps']} steps ({model.metrics_['train_time']:.0f} s): "
        f"exact match {result['exact_match']:.3f}, character error rate {result['cer']:.4f}, "
        f"BLEU {result['bleu']:.3f} on 1000 new dates"
    )
    queries = ["March 3, 2021", "3rd of July 1969", "12/25/2099", "Nov 9, 1989"]
    for query, answer in zip(queries, model.predict(queries), strict=True):
        print(f"{query!r:24} -> {answer}")


if __name__ == "__main__":
    main()
