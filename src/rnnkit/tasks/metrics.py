"""Task metrics, each a plain function of Python lists (or numpy arrays), definitions as cited.

classification   accuracy, macro_f1 (sklearn's f1_score(average="macro"): labels = the union of
                 the true and predicted labels, a label never predicted scores F1 0)
tagging          token_accuracy, entity_f1 (micro F1 over BIO entities with seqeval's default,
                 conlleval-compatible chunking: an I-X after O or after another type starts a
                 new entity), bio_entities
seq2seq          exact_match, character_error_rate (total Levenshtein distance / total reference
                 characters), corpus_bleu (up to 4-grams, clipped counts, brevity penalty, no
                 smoothing: 0 when some n-gram order has no match, as nltk's corpus_bleu)
forecast         rmse, mae, mase (MAE over the in-sample MAE of the one-step naive forecast on
                 the training part, Hyndman & Koehler 2006), naive_scale (that denominator)

Every function validates lengths and says which argument is wrong; an empty input is an error,
not a silent 0 or nan.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = [
    "accuracy",
    "bio_entities",
    "character_error_rate",
    "corpus_bleu",
    "entity_f1",
    "exact_match",
    "levenshtein",
    "macro_f1",
    "mae",
    "mase",
    "naive_scale",
    "rmse",
    "token_accuracy",
    "word_error_rate",
]


def _check_pair(owner: str, y_true: Sequence, y_pred: Sequence) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"{owner}: y_true and y_pred must have the same length; got {len(y_true)} and "
            f"{len(y_pred)}"
        )
    if len(y_true) == 0:
        raise ValueError(f"{owner}: no examples to score (empty y_true)")


# ---------------------------------------------------------------- classification


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Fraction of positions where the prediction equals the truth."""
    _check_pair("accuracy", y_true, y_pred)
    return sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / len(y_true)


def macro_f1(y_true: Sequence, y_pred: Sequence) -> float:
    """Unweighted mean of per-label F1 over every label that is true or predicted somewhere.

    Per label: F1 = 2 TP / (2 TP + FP + FN), which is 0 for a label never predicted correctly
    (sklearn's zero_division=0). A label only predicted (never true, e.g. a mistaken one) counts
    with F1 0, as in sklearn.
    """
    _check_pair("macro_f1", y_true, y_pred)
    labels = set(y_true) | set(y_pred)
    scores = []
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(y_true, y_pred, strict=True))
        fp = sum(t != label and p == label for t, p in zip(y_true, y_pred, strict=True))
        fn = sum(t == label and p != label for t, p in zip(y_true, y_pred, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


# ---------------------------------------------------------------- tagging


def token_accuracy(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> float:
    """Correct tags over all tokens of all sentences (sentences must have matching lengths)."""
    _check_pair("token_accuracy", y_true, y_pred)
    correct = total = 0
    for i, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        if len(t) != len(p):
            raise ValueError(
                f"token_accuracy: sentence {i} has {len(t)} true tags but {len(p)} predicted"
            )
        correct += sum(a == b for a, b in zip(t, p, strict=True))
        total += len(t)
    if total == 0:
        raise ValueError("token_accuracy: the sentences hold no tokens")
    return correct / total


def _split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") from "B-PER"; "O" -> ("O", ""); a tag without a prefix is its own type."""
    if tag == "O":
        return "O", ""
    if len(tag) >= 2 and tag[1] in "-_" and tag[0] in "BIES":
        return tag[0], tag[2:]
    return "I", tag  # conlleval treats a bare label as inside a chunk of that type


def _end_of_chunk(prev_prefix, prev_type, prefix, type_) -> bool:
    """conlleval's endOfChunk: does the chunk holding the previous tag end before this one?"""
    if prev_prefix in ("E", "S"):
        return True
    if prev_prefix == "B" and prefix in ("B", "S", "O"):
        return True
    if prev_prefix == "I" and prefix in ("B", "S", "O"):
        return True
    return prev_prefix not in ("O", "") and prev_type != type_


def _start_of_chunk(prev_prefix, prev_type, prefix, type_) -> bool:
    """conlleval's startOfChunk: does a chunk start at this tag?"""
    if prefix in ("B", "S"):
        return True
    if prev_prefix in ("E", "S", "O", "") and prefix in ("E", "I"):
        return True
    return prefix != "O" and prev_type != type_


def bio_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities (type, start, end inclusive) of one tag sequence, as seqeval.get_entities.

    "B-PER I-PER O I-LOC I-LOC B-LOC" -> [("PER", 0, 1), ("LOC", 3, 4), ("LOC", 5, 5)].
    """
    entities = []
    prev_prefix, prev_type, start = "O", "", None
    for i, tag in enumerate([*tags, "O"]):  # a final O closes an open chunk
        prefix, type_ = _split_tag(tag)
        if start is not None and _end_of_chunk(prev_prefix, prev_type, prefix, type_):
            entities.append((prev_type, start, i - 1))
            start = None
        if _start_of_chunk(prev_prefix, prev_type, prefix, type_):
            start = i
        prev_prefix, prev_type = prefix, type_
    return entities


def entity_f1(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> dict:
    """Micro precision, recall and F1 over entities (an entity counts when type and span match).

    Returns {"precision", "recall", "f1", "true_entities", "predicted_entities"}; with no entity
    on either side every score is 0, as seqeval reports.
    """
    _check_pair("entity_f1", y_true, y_pred)
    true_set, pred_set = set(), set()
    for i, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        if len(t) != len(p):
            raise ValueError(
                f"entity_f1: sentence {i} has {len(t)} true tags but {len(p)} predicted"
            )
        true_set.update((i, *e) for e in bio_entities(t))
        pred_set.update((i, *e) for e in bio_entities(p))
    correct = len(true_set & pred_set)
    precision = correct / len(pred_set) if pred_set else 0.0
    recall = correct / len(true_set) if true_set else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_entities": len(true_set),
        "predicted_entities": len(pred_set),
    }


# ---------------------------------------------------------------- seq2seq


def exact_match(references: Sequence, hypotheses: Sequence) -> float:
    """Fraction of hypotheses identical to their reference."""
    _check_pair("exact_match", references, hypotheses)
    return accuracy(references, hypotheses)


def levenshtein(a: Sequence, b: Sequence) -> int:
    """Edit distance (insertions, deletions, substitutions, each cost 1) between two sequences."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def character_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Sum of Levenshtein distances over the sum of reference lengths (corpus-level CER).

    It can exceed 1 when hypotheses are much longer than references.
    """
    _check_pair("character_error_rate", references, hypotheses)
    chars = sum(len(r) for r in references)
    if chars == 0:
        raise ValueError("character_error_rate: the references are all empty")
    edits = sum(levenshtein(r, h) for r, h in zip(references, hypotheses, strict=True))
    return edits / chars


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Sum of word-level Levenshtein distances over the number of reference words (corpus WER,
    words split on whitespace). It can exceed 1."""
    _check_pair("word_error_rate", references, hypotheses)
    words = sum(len(r.split()) for r in references)
    if words == 0:
        raise ValueError("word_error_rate: the references hold no words")
    edits = sum(
        levenshtein(r.split(), h.split()) for r, h in zip(references, hypotheses, strict=True)
    )
    return edits / words


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _as_tokens(owner: str, item) -> list[str]:
    if isinstance(item, str):
        return item.split()
    if isinstance(item, list | tuple):
        return list(item)
    raise TypeError(f"{owner}: expected a str or a list of tokens; got {type(item).__name__}")


def corpus_bleu(
    references: Sequence[str | Sequence[str]],
    hypotheses: Sequence[str | Sequence[str]],
    max_n: int = 4,
) -> float:
    """Corpus BLEU in [0, 1] with one reference per hypothesis (Papineni et al. 2002).

    Strings are split on whitespace; pass lists of characters for character-level BLEU.
    p_n = clipped n-gram matches / hypothesis n-grams, summed over the corpus, for n = 1..max_n;
    BLEU = BP * exp(mean(log p_n)), BP = exp(1 - r / c) if c < r else 1, with r and c the total
    reference and hypothesis lengths. No smoothing: a p_n of 0 gives BLEU 0 (nltk's corpus_bleu;
    sacrebleu's smooth_method="none" on pre-tokenized text gives the same number x 100).
    """
    _check_pair("corpus_bleu", references, hypotheses)
    matches = [0] * max_n
    totals = [0] * max_n
    ref_len = hyp_len = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        ref, hyp = _as_tokens("corpus_bleu", ref), _as_tokens("corpus_bleu", hyp)
        ref_len += len(ref)
        hyp_len += len(hyp)
        for n in range(1, max_n + 1):
            hyp_counts = _ngrams(hyp, n)
            ref_counts = _ngrams(ref, n)
            matches[n - 1] += sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)


# ---------------------------------------------------------------- forecasting


def _as_arrays(owner: str, actual, forecast) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    f = np.asarray(forecast, dtype=np.float64).reshape(-1)
    _check_pair(owner, a, f)
    return a, f


def rmse(actual, forecast) -> float:
    """Root mean squared error."""
    a, f = _as_arrays("rmse", actual, forecast)
    return float(np.sqrt(np.mean((a - f) ** 2)))


def mae(actual, forecast) -> float:
    """Mean absolute error."""
    a, f = _as_arrays("mae", actual, forecast)
    return float(np.mean(np.abs(a - f)))


def mase(actual, forecast, train, m: int = 1) -> float:
    """MAE of the forecasts over the in-sample MAE of the seasonal naive forecast on `train`.

    scale = mean(|train[t] - train[t - m]|) for t = m..len(train)-1 (m = 1: the one-step naive
    forecast). Below 1: better than naive on average. A constant training part has scale 0: error.
    """
    a, f = _as_arrays("mase", actual, forecast)
    return float(np.mean(np.abs(a - f))) / naive_scale(train, m)


def naive_scale(train, m: int = 1) -> float:
    """MASE's denominator: mean(|train[t] - train[t - m]|) for t = m..len(train)-1, the in-sample
    MAE of the seasonal naive forecast (m = 1: next value = this value). Kept by a fitted
    forecaster so that MASE can be computed later without the training series."""
    history = np.asarray(train, dtype=np.float64).reshape(-1)
    if len(history) <= m:
        raise ValueError(f"mase: train needs more than m={m} points; got {len(history)}")
    scale = float(np.mean(np.abs(history[m:] - history[:-m])))
    if scale == 0:
        raise ValueError("mase: the training series is constant, so the naive error scale is 0")
    return scale
