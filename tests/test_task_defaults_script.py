"""benchmarks/task_defaults.py, the measurement behind the tag and classify defaults: its readers
of the public formats and its two baselines, on tiny data (the real runs stay out of CI)."""

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
try:
    import task_defaults
finally:
    sys.path.pop(0)


def test_reads_space_separated_conll_and_glue_tsv(tmp_path):
    conll = tmp_path / "ned.train"
    conll.write_text(
        "-DOCSTART- -DOCSTART- O\nDe Art O\nAmsterdam N B-LOC\n\nJan N B-PER\n", encoding="utf-8"
    )
    assert task_defaults.conll_sentences(conll) == [
        [("De", "O"), ("Amsterdam", "B-LOC")],
        [("Jan", "B-PER")],
    ]
    written = tmp_path / "out.conll"
    task_defaults.write_conll(task_defaults.conll_sentences(conll), written)
    assert task_defaults.conll_sentences(written) == task_defaults.conll_sentences(conll)
    tsv = tmp_path / "train.tsv"
    tsv.write_text("label\tsentence\n1\ta fine film \n0\t\n0\tdull\n", encoding="utf-8")
    assert task_defaults.tsv_rows(tsv) == [("1", "a fine film"), ("0", "dull")]


def test_baselines_learn_what_the_data_says():
    pytest.importorskip("sklearn_crfsuite")
    rng = random.Random(0)
    names, filler = ["Anna", "Piet", "Joost", "Marie"], ["de", "het", "zag", "en", "een"]
    sentences = []
    for _ in range(120):
        words = [(rng.choice(filler), "O") for _ in range(4)]
        words.insert(rng.randrange(5), (rng.choice(names), "B-PER"))
        sentences.append(words)
    result = task_defaults.crf_baseline(sentences[:100], sentences[100:])
    assert result["entity_f1"] == 1.0

    cues = {"1": ["good", "great"], "0": ["bad", "dull"]}
    rows = []
    for i in range(200):
        label = str(i % 2)
        rows.append((label, " ".join([rng.choice(filler), rng.choice(cues[label]), "film"])))
    result = task_defaults.tfidf_baseline(rows[:160], rows[160:])
    assert result["accuracy"] == 1.0 and result["C"] in (1.0, 3.0, 10.0)
