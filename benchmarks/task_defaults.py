"""The measurement that chose the defaults of `rnnkit train --task tag` and `--task classify`.

Each setting is a real `rnnkit train` run with `--data TRAIN --max-time T` (plus the flags under
test), scored by `rnnkit evaluate` on TEST, beside the classical baseline run on the same split:

  tag       sklearn-crfsuite, a feature CRF (word, lower case, prefixes and suffixes of 1-3
            characters, shape, the same for the neighbours at -2..+2; L-BFGS, c1 = c2 = 0.1),
            scored with rnnkit's entity F1 (seqeval's default mode).
  classify  TF-IDF over word 1-2-grams and character 2-5-grams + logistic regression
            (scikit-learn, C chosen from 1, 3, 10 on the last tenth of TRAIN; the words are
            the ones rnnkit's --tokens word reads, so Chinese is cut by jieba for both).

    python benchmarks/task_defaults.py tag --train ned.train --test ned.testb \
        --setting defaults= --setting "softmax=--no-crf --no-char-features"
    python benchmarks/task_defaults.py classify --train sst2/train.tsv --test sst2/test.tsv

Inputs as the public sets come: CoNLL-2002/2003 files with space-separated columns (the first is
the token, the last the tag; converted to token<TAB>tag) and GLUE's SST-2 TSV with its
`label<TAB>sentence` header line (dropped). A `--setting NAME=FLAGS` is one run; the default is
the task's defaults alone. Results go to stdout as JSON lines and a Markdown table; the runs stay
under --work. Run on an idle machine: the budget is wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path


def conll_sentences(path: Path) -> list[list[tuple[str, str]]]:
    """(token, tag) sentences of a CoNLL file with tab- or space-separated columns."""
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("\t") if "\t" in line else line.split()
        if not fields or not line.strip():
            if current:
                sentences.append(current)
            current = []
            continue
        if fields[0].startswith("-DOCSTART-"):
            continue
        current.append((fields[0], fields[-1]))
    if current:
        sentences.append(current)
    return sentences


def write_conll(sentences, path: Path) -> None:
    path.write_text(
        "".join("".join(f"{t}\t{g}\n" for t, g in s) + "\n" for s in sentences), encoding="utf-8"
    )


def tsv_rows(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition("\t")
        if not text.strip() or label.strip().lower() == "label":
            continue
        rows.append((label.strip(), text.strip()))
    return rows


# ------------------------------------------------------------------ baselines


def token_features(words: list[str], i: int) -> dict:
    features = {"bias": 1.0}
    for offset in (-2, -1, 0, 1, 2):
        j = i + offset
        if not 0 <= j < len(words):
            features[f"{offset}:pad"] = 1.0
            continue
        w = words[j]
        features[f"{offset}:lower={w.lower()}"] = 1.0
        features[f"{offset}:title"] = float(w.istitle())
        features[f"{offset}:upper"] = float(w.isupper())
        features[f"{offset}:digit"] = float(w.isdigit())
        if abs(offset) <= 1:
            for k in (1, 2, 3):
                features[f"{offset}:pre{k}={w[:k]}"] = 1.0
                features[f"{offset}:suf{k}={w[-k:]}"] = 1.0
            shape = "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit()
                            else c for c in w)  # fmt: skip
            features[f"{offset}:shape={shape[:6]}"] = 1.0
    return features


def crf_baseline(train, test) -> dict:
    import sklearn_crfsuite

    from rnnkit.tasks import metrics

    started = time.perf_counter()
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100)
    words = [[t for t, _ in s] for s in train]
    crf.fit(
        [[token_features(w, i) for i in range(len(w))] for w in words],
        [[g for _, g in s] for s in train],
    )
    test_words = [[t for t, _ in s] for s in test]
    predicted = crf.predict([[token_features(w, i) for i in range(len(w))] for w in test_words])
    gold = [[g for _, g in s] for s in test]
    scores = metrics.entity_f1(gold, predicted)
    return {"entity_f1": scores["f1"], "seconds": round(time.perf_counter() - started, 1)}


def tfidf_baseline(train, test) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    started = time.perf_counter()

    from rnnkit.data import make_tokenizer

    words = make_tokenizer("word").tokenize  # the words rnnkit reads (Chinese cut by jieba)

    def model(c: float):
        features = make_union(
            TfidfVectorizer(
                ngram_range=(1, 2), sublinear_tf=True, tokenizer=words, token_pattern=None
            ),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        )
        return make_pipeline(features, LogisticRegression(C=c, max_iter=3000))

    cut = len(train) - len(train) // 10
    texts, labels = [t for _, t in train], [y for y, _ in train]
    best = max(
        (1.0, 3.0, 10.0),
        key=lambda c: model(c).fit(texts[:cut], labels[:cut]).score(texts[cut:], labels[cut:]),
    )
    fitted = model(best).fit(texts, labels)
    accuracy = fitted.score([t for _, t in test], [y for y, _ in test])
    return {"accuracy": accuracy, "C": best, "seconds": round(time.perf_counter() - started, 1)}


# ------------------------------------------------------------------ rnnkit runs


def rnnkit(*args: str) -> str:
    command = [sys.executable, "-m", "rnnkit", *args]
    return subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout


def rnnkit_run(task, train_file, test_file, run_dir, max_time, flags, seed) -> dict:
    trained = json.loads(
        rnnkit(
            "train", "--task", task, "--data", str(train_file), "--out", str(run_dir),
            "--max-time", str(max_time), "--seed", str(seed), "--force", "--quiet", *flags,
        )
    )  # fmt: skip
    figures = json.loads(rnnkit("evaluate", "--checkpoint", str(run_dir), "--data", str(test_file)))
    return {
        **figures,
        "train_seconds": round(trained["wall_time"], 1),
        "steps": trained["steps"],
        "best_step": trained["best_step"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=("tag", "classify"))
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--max-time", type=float, default=180.0)
    parser.add_argument(
        "--setting",
        action="append",
        metavar="NAME=FLAGS",
        help="a run: its name and the rnnkit train flags it adds (repeatable; default: defaults=)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("runs/task-defaults"))
    args = parser.parse_args(argv)

    work = args.work / args.task
    work.mkdir(parents=True, exist_ok=True)
    if args.task == "tag":
        train, test = conll_sentences(args.train), conll_sentences(args.test)
        train_file, test_file = work / "train.conll", work / "test.conll"
        write_conll(train, train_file)
        write_conll(test, test_file)
        metric, baseline_name, baseline = "entity_f1", "sklearn-crfsuite feature CRF", crf_baseline
    else:
        train, test = tsv_rows(args.train), tsv_rows(args.test)
        train_file, test_file = work / "train.tsv", work / "test.tsv"
        for rows, path in ((train, train_file), (test, test_file)):
            path.write_text("".join(f"{y}\t{t}\n" for y, t in rows), encoding="utf-8")
        metric, baseline = "accuracy", tfidf_baseline
        baseline_name = "TF-IDF word 1-2 + char 2-5, LR"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}"
    print(json.dumps({"train": len(train), "test": len(test), "machine": machine}), flush=True)

    table = []
    if not args.no_baseline:
        result = baseline(train, test)
        print(json.dumps({"setting": baseline_name, **result}), flush=True)
        table.append((baseline_name, [result[metric]], result["seconds"]))
    for setting in args.setting or ["defaults="]:
        name, _, flags = setting.partition("=")
        scores, seconds = [], 0.0
        for seed in args.seeds:
            run_dir = work / f"run-{name.replace(' ', '_')}-{seed}"
            result = rnnkit_run(
                args.task, train_file, test_file, run_dir, args.max_time, shlex.split(flags), seed
            )
            print(json.dumps({"setting": name, "flags": flags, "seed": seed, **result}), flush=True)
            scores.append(result[metric])
            seconds = result["train_seconds"]
        table.append((f"rnnkit {name} {flags}".strip(), scores, seconds))
    print(f"\n| {args.task} on {args.train.name} | {metric} (test) | seconds |\n|---|---|---|")
    for name, scores, seconds in table:
        shown = " / ".join(f"{s:.4f}" for s in scores)
        print(f"| {name} | {shown} | {seconds} |")


if __name__ == "__main__":
    main()
