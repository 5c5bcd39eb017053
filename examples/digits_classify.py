"""sklearn's bundled digits read as sequences: 8 rows of 8 pixels, classified by an rnnkit BiLSTM,
against logistic regression and an RBF SVC on the same split, in the same run.

    python examples/digits_classify.py                 # the full run (docs/benchmarks.md)
    python examples/digits_classify.py --max-steps 150 # a short one

Each image is a sequence of T = 8 time steps (its rows) with F = 8 values (the pixels of the
row), the `tokens="numbers"` input of the classify task; the classical baselines see the
flat 64 pixels. The split is stratified, 80/20, seeded.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from rnnkit.tasks import TextClassifier


def load_split(seed: int = 0):
    """(x_train, x_test, y_train, y_test) with x as (N, 8, 8) arrays, y as digit strings."""
    digits = load_digits()
    x = digits.images.astype(np.float32)  # (N, 8, 8): rows are time steps
    y = digits.target.astype(str)
    return train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)


def baselines(x_train, x_test, y_train, y_test) -> dict:
    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    results = {}
    for name, model in (
        ("logistic_regression", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
        ("svc_rbf", make_pipeline(StandardScaler(), SVC())),
    ):
        started = time.perf_counter()
        model.fit(flat_train, y_train)
        accuracy = float((model.predict(flat_test) == y_test).mean())
        results[name] = {"accuracy": accuracy, "seconds": time.perf_counter() - started}
    return results


def rnn_classifier(x_train, x_test, y_train, y_test, **options) -> dict:
    started = time.perf_counter()
    clf = TextClassifier(tokens="numbers", **options).fit(list(x_train), list(y_train))
    seconds = time.perf_counter() - started
    result = clf.evaluate(list(x_test), list(y_test))
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "seconds": seconds}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=600, help="rnnkit training steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    x_train, x_test, y_train, y_test = load_split(args.seed)
    results = baselines(x_train, x_test, y_train, y_test)
    results["rnnkit_bilstm"] = rnn_classifier(
        x_train, x_test, y_train, y_test, max_steps=args.max_steps, seed=args.seed
    )
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
