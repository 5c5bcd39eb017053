"""Which book is this fragment from? rnnkit's classify task with its defaults against TF-IDF +
logistic regression (scikit-learn), on real text that ships with the repository and Python.

    python examples/text_classify.py                     # defaults only, as `--data` alone gets
    python examples/text_classify.py --max-time 30       # a shorter budget
    python examples/text_classify.py --sweep             # the settings the defaults came from

The data: fragments of 8 consecutive words from three sources — Tiny Shakespeare and The Time
Machine (shared/data) and CPython's pydoc topics (the built-in corpus) — 1,200 per source, taken
from evenly spaced places, shuffled with a fixed seed; the last 20% are the test set. Every
model sees the same split; rnnkit holds out the last 5% of its training part for best/
(classify's --val-fraction).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from rnnkit.data import builtin_corpus
from rnnkit.tasks import TextClassifier

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = {
    "shakespeare": SHARED / "tinyshakespeare" / "input.txt",
    "time_machine": SHARED / "timemachine" / "timemachine.txt",
    "pydoc": None,  # the built-in corpus
}


def fragments(text: str, count: int, width: int = 8) -> list[str]:
    words = text.split()
    step = (len(words) - width) // count
    return [" ".join(words[i * step : i * step + width]) for i in range(count)]


def load_dataset(per_source: int = 1200, width: int = 8, seed: int = 0):
    """(train_texts, train_labels, test_texts, test_labels)."""
    rows = []
    for label, path in SOURCES.items():
        text = builtin_corpus() if path is None else path.read_text(encoding="utf-8")
        rows += [(label, f) for f in fragments(text, per_source, width)]
    random.Random(seed).shuffle(rows)
    cut = int(len(rows) * 0.8)
    train, test = rows[:cut], rows[cut:]
    return [t for _, t in train], [y for y, _ in train], [t for _, t in test], [y for y, _ in test]


def tfidf_baselines(x, y, x_test, y_test) -> dict:
    results = {}
    for name, vectorizer in (
        ("tfidf_words_lr", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
        (
            "tfidf_chars_lr",
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        ),
    ):
        started = time.perf_counter()
        model = make_pipeline(vectorizer, LogisticRegression(max_iter=2000, C=10))
        model.fit(x, y)
        accuracy = sum(p == t for p, t in zip(model.predict(x_test), y_test, strict=True))
        results[name] = {
            "accuracy": accuracy / len(y_test),
            "seconds": time.perf_counter() - started,
        }
    return results


def rnnkit_classifier(x, y, x_test, y_test, **options) -> dict:
    started = time.perf_counter()
    clf = TextClassifier(**options).fit(x, y)
    seconds = time.perf_counter() - started
    result = clf.evaluate(x_test, y_test)
    return {
        "accuracy": result["accuracy"],
        "macro_f1": result["macro_f1"],
        "seconds": seconds,
        "steps": clf.metrics_["steps"],
    }


SWEEP = {
    "defaults": {},
    "lr 3e-3": {"lr": 3e-3},
    "pooling mean": {"pooling": "mean"},
    "pooling last": {"pooling": "last"},
    "tokens char": {"tokens": "char"},
    "gru": {"cell": "gru"},
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=float, default=60.0, help="rnnkit training seconds")
    parser.add_argument("--sweep", action="store_true", help="also try the alternatives")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, help="rnnkit training steps (instead of time)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--backend", default="auto", help="rnnkit layer backend")
    args = parser.parse_args(argv)
    x, y, x_test, y_test = load_dataset(seed=args.seed)
    results = tfidf_baselines(x, y, x_test, y_test)
    print(json.dumps(results), flush=True)
    settings = SWEEP if args.sweep else {"defaults": {}}
    budget = (
        {"max_time": args.max_time} if args.max_steps is None else {"max_steps": args.max_steps}
    )
    for name, options in settings.items():
        results[f"rnnkit classify ({name})"] = rnnkit_classifier(
            x,
            y,
            x_test,
            y_test,
            seed=args.seed,
            backend=args.backend,
            threads=args.threads,
            **budget,
            **options,
        )
        print(name, json.dumps(results[f"rnnkit classify ({name})"]), flush=True)
    return results


if __name__ == "__main__":
    main()
