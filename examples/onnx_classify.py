"""Classify texts with an exported rnnkit classifier, using onnxruntime, numpy and the standard
library alone (no rnnkit, no torch): the tokenizer, the vocabulary lookup and the hashed n-grams
are rebuilt from model.json's "preprocessing" section.

    rnnkit train --task classify --data reviews.tsv --out runs/sentiment
    rnnkit export --checkpoint runs/sentiment --out sentiment.onnx
    python examples/onnx_classify.py sentiment.onnx "a gripping film" "dull and long"

Prints one line per text: the label and its probability. A run of Chinese characters is cut by
the segmenter model.json names: "char" and "none" need nothing more, "jieba" needs jieba
installed (pip install jieba); without it a text in Chinese is refused, never tokenized wrongly.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime


def segment(run: str, segmenter: str) -> list[str]:
    """The words of a run of Chinese characters, as rnnkit's segmenter of that name cuts it."""
    if segmenter == "none":
        return [run]
    if segmenter == "char":
        return list(run)
    if segmenter != "jieba":
        raise SystemExit(f"model.json names the segmenter {segmenter!r}, which this example lacks")
    try:
        import jieba
    except ImportError:
        raise SystemExit(
            "this model cuts Chinese text with jieba, which is not installed: pip install jieba"
        ) from None
    return [word for word in _jieba(jieba).lcut(run, HMM=True) if word]


_TOKENIZERS: dict = {}

OLDER_EXPORT = (
    "model.json was written by an older rnnkit export that does not say how it cut Chinese "
    "text; export the model again with `rnnkit export`"
)


def _jieba(jieba):
    if "jieba" not in _TOKENIZERS:  # its own dictionary, as rnnkit loads it
        jieba.setLogLevel(logging.WARNING)
        _TOKENIZERS["jieba"] = jieba.Tokenizer()
    return _TOKENIZERS["jieba"]


def tokenize(text: str, spec: dict) -> list[str]:
    if spec["tokens"] == "char":
        return list(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    tokens = re.findall(spec["word_pattern"], text)
    han = spec.get("han_run")
    if han is None:  # a model.json of before the pattern was written down
        if spec.get("segmenter", "none") == "none":  # such a model never cut a run
            return tokens
        raise SystemExit(OLDER_EXPORT)
    out = []
    for token in tokens:
        start = 0
        for run in re.finditer(han, token):
            out += re.findall(spec["word_pattern"], token[start : run.start()])
            out += segment(run.group(), spec["segmenter"])
            start = run.end()
        out += re.findall(spec["word_pattern"], token[start:])
    return out


def chunks(words: list[str], spec: dict) -> list[str]:
    """The words the character n-grams are of: with han_runs, each run of consecutive words
    wholly of Chinese characters joined into one."""
    if "han_runs" not in spec:  # its chunks may or may not have joined Han runs
        raise SystemExit(OLDER_EXPORT)
    if not spec["han_runs"]:
        return words
    out, joining = [], False
    for word in words:
        han = re.fullmatch(spec["han_run"], word) is not None
        if han and joining:
            out[-1] += word
        else:
            out.append(word)
        joining = han
    return out


def grams(words: list[str], spec: dict) -> list[str]:
    lowered = [w.lower() for w in words]
    out = []
    for n in range(1, spec["word_n"] + 1):
        out += [f"w{n}:" + " ".join(lowered[i : i + n]) for i in range(len(lowered) - n + 1)]
    lo, hi = spec["char_range"]
    for word in chunks(lowered, spec):
        framed = f" {word} "
        for n in range(lo, hi + 1):
            out += [f"c{n}:" + framed[i : i + n] for i in range(len(framed) - n + 1)]
    return out


def bag(tokens: list[str], spec: dict, kind: str) -> tuple[list[int], list[float]]:
    words = tokens if kind == "word" else "".join(tokens).split()
    counts = Counter(zlib.crc32(g.encode("utf-8")) % spec["buckets"] for g in grams(words, spec))
    norm = math.sqrt(sum(c * c for c in counts.values())) or 1.0
    ids = sorted(counts)
    return ids, [counts[i] / norm for i in ids]


def encode(texts: list[str], description: dict) -> dict[str, np.ndarray]:
    """The graph's inputs for a batch of texts, as rnnkit's collate makes them."""
    spec = description["preprocessing"]
    index = {t: i for i, t in enumerate(description["task_state"]["vocab"]["tokens"])}
    tokenized = [tokenize(t, spec) for t in texts]
    longest = max(len(t) for t in tokenized)
    ids = np.full((len(texts), longest), spec["pad_id"], dtype=np.int64)
    for row, tokens in enumerate(tokenized):
        ids[row, : len(tokens)] = [index.get(t, spec["unk_id"]) for t in tokens]
    feeds = {"ids": ids, "lengths": np.array([len(t) for t in tokenized], dtype=np.int64)}
    if "ngrams" in spec:
        bags = [bag(tokens, spec["ngrams"], spec["tokens"]) for tokens in tokenized]
        sizes = np.array([len(b[0]) for b in bags], dtype=np.int64)
        feeds["ngram_ids"] = np.array([i for b in bags for i in b[0]], dtype=np.int64)
        feeds["ngram_offsets"] = np.cumsum(sizes) - sizes
        feeds["ngram_weights"] = np.array([w for b in bags for w in b[1]], dtype=np.float32)
    return feeds


def classify(model: str, texts: list[str]) -> list[tuple[str, float, np.ndarray]]:
    """(label, probability, logits) of each text."""
    description = json.loads(Path(model).with_suffix(".json").read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, encode(texts, description))
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    probabilities = shifted / shifted.sum(1, keepdims=True)
    labels = description["labels"]
    best = probabilities.argmax(1)
    rows = zip(best, probabilities, logits, strict=True)
    return [(labels[b], float(p[b]), row) for b, p, row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the .onnx file rnnkit export wrote (model.json beside it)")
    parser.add_argument("texts", nargs="+", help="texts to classify")
    args = parser.parse_args()
    results = classify(args.model, args.texts)
    for text, (label, probability, _) in zip(args.texts, results, strict=True):
        print(f"{label}\t{probability:.3f}\t{text}")


if __name__ == "__main__":
    main()
