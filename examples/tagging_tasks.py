"""Two synthetic BIO tagging tasks that show what bidirectional layers and a CRF are for.

    python examples/tagging_tasks.py                    # full runs (docs/benchmarks.md)
    python examples/tagging_tasks.py --max-steps 150    # short ones

right_context: an entity is one or two names followed by a marker word outside it ("acme
  inc" -> B-ORG O, "rome city" -> B-LOC O, "ann said" -> B-PER O); names come from one shared
  pool, so a name's type is known only from the word to its right. A left-to-right tagger must
  guess; a bidirectional one sees the marker.

end_cue: an entity is one to three names and a suffix inside it that gives the type
  ("acme beta corp" -> B-ORG I-ORG I-ORG, "rome town" -> B-LOC I-LOC, "ann jr" -> B-PER I-PER).
  A left-to-right tagger reads the names before the type is known. Per-token softmax must
  commit to each tag on the spot, so it breaks entities; a CRF scores whole tag sequences, and
  its transitions (I-X only after B-X or I-X) carry the suffix's evidence back to the first name.

Both tasks print entity F1 (seqeval's definition) and token accuracy on held-out sentences.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from rnnkit.tasks import SequenceTagger

NAMES = [f"{a}{b}" for a in ("ka", "lo", "mi", "ru", "se", "ta", "vo", "ze") for b in "ntrs"]
FILLER = ["the", "a", "of", "and", "to", "was", "met", "with", "from", "near", "then", "we"]
MARKERS = {"inc": "ORG", "city": "LOC", "said": "PER"}  # right_context: after the entity, O
SUFFIXES = {"corp": "ORG", "town": "LOC", "jr": "PER"}  # end_cue: the entity's last token


def right_context(n: int, seed: int = 0) -> tuple[list, list]:
    """(sentences, tags) of the right_context task."""
    rng = random.Random(seed)
    sentences, tags = [], []
    for _ in range(n):
        words, labels = [], []
        for _ in range(rng.randint(3, 6)):
            if rng.random() < 0.5:
                words.append(rng.choice(FILLER))
                labels.append("O")
                continue
            marker = rng.choice(list(MARKERS))
            kind = MARKERS[marker]
            names = [rng.choice(NAMES) for _ in range(rng.randint(1, 2))]
            words += [*names, marker]
            labels += [f"B-{kind}"] + [f"I-{kind}"] * (len(names) - 1) + ["O"]
        sentences.append(words)
        tags.append(labels)
    return sentences, tags


def end_cue(n: int, seed: int = 0) -> tuple[list, list]:
    """(sentences, tags) of the end_cue task."""
    rng = random.Random(seed)
    sentences, tags = [], []
    for _ in range(n):
        words, labels = [], []
        for _ in range(rng.randint(3, 6)):
            if rng.random() < 0.5:
                words.append(rng.choice(FILLER))
                labels.append("O")
                continue
            suffix = rng.choice(list(SUFFIXES))
            kind = SUFFIXES[suffix]
            names = [rng.choice(NAMES) for _ in range(rng.randint(1, 3))]
            words += [*names, suffix]
            labels += [f"B-{kind}"] + [f"I-{kind}"] * len(names)
        sentences.append(words)
        tags.append(labels)
    return sentences, tags


def run(make, *, train: int = 800, test: int = 300, **options) -> dict:
    """Train a SequenceTagger on `train` sentences of `make`, score `test` fresh ones."""
    x, y = make(train, seed=1)
    x_test, y_test = make(test, seed=2)
    started = time.perf_counter()
    tagger = SequenceTagger(**{"char_features": False, "feature_buckets": 0, **options}).fit(x, y)
    seconds = time.perf_counter() - started
    result = tagger.evaluate(x_test, y_test)
    return {
        "entity_f1": result["entity_f1"],
        "token_accuracy": result["token_accuracy"],
        "seconds": seconds,
    }


# Word-level only (char_features and the token-feature path off: the features read the words
# two steps either side, which would show a left-to-right tagger the marker): the names carry
# no cue in their spelling, and the comparisons are of direction and output layer.
SETTINGS = {
    "right_context": [
        ("unidirectional, softmax", {"unidirectional": True, "crf": False}),
        ("bidirectional, softmax", {"crf": False}),
    ],
    "end_cue": [
        ("unidirectional, softmax", {"unidirectional": True, "crf": False}),
        ("unidirectional, CRF", {"unidirectional": True, "crf": True}),
        ("bidirectional, softmax", {"crf": False}),
        ("bidirectional, CRF", {"crf": True}),
    ],
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=400, help="training steps per model")
    parser.add_argument("--hidden-size", type=int, default=32, help="hidden units per direction")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    makers = {"right_context": right_context, "end_cue": end_cue}
    results: dict = {}
    for task, settings in SETTINGS.items():
        for label, options in settings:
            results[f"{task}: {label}"] = run(
                makers[task],
                max_steps=args.max_steps,
                hidden_size=args.hidden_size,
                seed=args.seed,
                **options,
            )
            print(f"{task}: {label}: {json.dumps(results[f'{task}: {label}'])}", flush=True)
    return results


if __name__ == "__main__":
    main()
