"""rnnkit.tasks.metrics against hand-worked examples and sklearn.metrics."""

import math
import random

import numpy as np
import pytest
from sklearn import metrics as skm

from rnnkit.tasks import metrics as M


def test_accuracy_and_macro_f1_match_sklearn():
    rng = random.Random(0)
    for trial in range(20):
        labels = ["a", "b", "c", "d"][: 2 + trial % 3]
        y_true = [rng.choice(labels) for _ in range(30)]
        y_pred = [rng.choice([*labels, "zz"]) for _ in range(30)]  # "zz": a label never true
        assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
        expected = skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
        assert M.macro_f1(y_true, y_pred) == pytest.approx(expected)


def test_macro_f1_by_hand():
    # a: TP 1 FP 0 FN 1 -> 2/3; b: TP 1 FP 1 FN 1 -> 1/2; c: TP 0 -> 0 => mean 7/18
    assert M.macro_f1(["a", "a", "b", "b"], ["a", "b", "b", "c"]) == pytest.approx(7 / 18)


def test_bio_entities_follow_seqeval():
    assert M.bio_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    # an I- after O starts an entity; an I- of another type starts a new one
    assert M.bio_entities(["O", "I-PER", "I-PER"]) == [("PER", 1, 2)]
    assert M.bio_entities(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]
    # B after B: two entities
    assert M.bio_entities(["B-PER", "B-PER", "O"]) == [("PER", 0, 0), ("PER", 1, 1)]
    assert M.bio_entities(["O", "O"]) == []


def test_entity_f1_seqeval_readme_example():
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    result = M.entity_f1(y_true, y_pred)
    assert result["f1"] == pytest.approx(0.5)
    assert result["precision"] == pytest.approx(0.5)
    assert result["recall"] == pytest.approx(0.5)
    assert M.token_accuracy(y_true, y_pred) == pytest.approx(8 / 10)  # tokens 2 and 3 differ


def test_entity_f1_precision_differs_from_recall():
    y_true = [["B-PER", "O", "B-LOC", "I-LOC"]]
    y_pred = [["B-PER", "O", "B-LOC", "B-LOC"]]  # PER right; LOC split into two wrong ones
    result = M.entity_f1(y_true, y_pred)
    assert result["precision"] == pytest.approx(1 / 3)
    assert result["recall"] == pytest.approx(1 / 2)
    assert result["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_entity_f1_without_entities_is_zero():
    assert M.entity_f1([["O"]], [["O"]])["f1"] == 0.0


def test_levenshtein_and_cer():
    assert M.levenshtein("kitten", "sitting") == 3
    assert M.levenshtein("", "abc") == 3
    assert M.levenshtein("flaw", "lawn") == 2
    assert M.character_error_rate(["kitten", "abc"], ["sitting", "abc"]) == pytest.approx(3 / 9)


def test_exact_match():
    assert M.exact_match(["2021-03-03", "168"], ["2021-03-03", "167"]) == 0.5


def test_corpus_bleu_by_hand():
    refs = ["the cat is on the mat", "a b c d e f"]
    hyps = ["the cat sat on the mat", "a b c d e"]
    # clipped matches / hypothesis n-grams, summed over both pairs (worked out in the docstring
    # order): p1 = (5+5)/(6+5), p2 = (3+4)/(5+4), p3 = (1+3)/(4+3), p4 = (0+2)/(3+2);
    # c = 11, r = 12 -> BP = exp(1 - 12/11)
    p = [10 / 11, 7 / 9, 4 / 7, 2 / 5]
    expected = math.exp(1 - 12 / 11) * math.exp(sum(math.log(x) for x in p) / 4)
    assert M.corpus_bleu(refs, hyps) == pytest.approx(expected)
    assert M.corpus_bleu(refs, refs) == pytest.approx(1.0)
    # the first pair alone has no 4-gram match: BLEU 0 without smoothing
    assert M.corpus_bleu(refs[:1], hyps[:1]) == 0.0
    # token lists work too (character-level BLEU)
    assert M.corpus_bleu([list("abcdef")], [list("abcdef")]) == pytest.approx(1.0)


def test_forecast_errors_by_hand_and_sklearn():
    actual, forecast = [5.0, 6.0], [4.0, 8.0]
    assert M.mae(actual, forecast) == pytest.approx(1.5)
    assert M.rmse(actual, forecast) == pytest.approx(math.sqrt((1 + 4) / 2))
    # naive one-step errors on [1, 3, 2, 4]: 2, 1, 2 -> scale 5/3
    assert M.mase(actual, forecast, [1, 3, 2, 4]) == pytest.approx(1.5 / (5 / 3))
    assert M.naive_scale([1, 3, 2, 4]) == pytest.approx(5 / 3)
    assert M.naive_scale([1, 3, 2, 4], m=2) == pytest.approx((1 + 1) / 2)  # |2-1|, |4-3|
    rng = np.random.default_rng(0)
    a, f = rng.normal(size=50), rng.normal(size=50)
    assert M.rmse(a, f) == pytest.approx(math.sqrt(skm.mean_squared_error(a, f)))
    assert M.mae(a, f) == pytest.approx(skm.mean_absolute_error(a, f))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: M.accuracy([1, 2], [1]), "same length"),
        (lambda: M.accuracy([], []), "no examples"),
        (lambda: M.token_accuracy([["O"]], [["O", "O"]]), "sentence 0"),
        (lambda: M.character_error_rate([""], ["a"]), "empty"),
        (lambda: M.mase([1], [1], [2, 2, 2]), "constant"),
        (lambda: M.mase([1], [1], [2]), "more than"),
    ],
)
def test_metric_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
