"""The tag task: CoNLL-style files and their errors, the tagger (+CRF, char features), the two
synthetic tasks of examples/tagging_tasks.py in short form, and the CLI end to end."""

import json
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.models.tagger import TaggerConfig, TaggingModel
from rnnkit.tasks import SequenceTagger, task_config
from rnnkit.tasks.tag import TagTask

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
import tagging_tasks

sys.path.pop(0)

FAST = {"backend": "native", "threads": 1}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def conll(sentences, tags) -> str:
    blocks = [
        "\n".join(f"{w}\t{t}" for w, t in zip(s, g, strict=True))
        for s, g in zip(sentences, tags, strict=True)
    ]
    return "\n\n".join(blocks) + "\n"


def make_task(**options) -> TagTask:
    return TagTask(task_config("tag", **options))


# ---------------------------------------------------------------- formats and errors


def test_reads_conll_sentences(tmp_path):
    text = "-DOCSTART-\tO\n\nJohn\tB-PER\nlives\tO\n\n\n\nRome\tB-LOC\n"
    sentences = make_task().read_examples(write(tmp_path / "d.conll", text))
    assert [s.tokens for s in sentences] == [["John", "lives"], ["Rome"]]
    assert [s.tags for s in sentences] == [["B-PER", "O"], ["B-LOC"]]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "John\tB-PER\nlives\n",
            r"d.conll:2: expected 2 tab-separated columns \(token<TAB>tag\), found 1",
        ),
        ("John B-PER\n", r"d.conll:1: .*found 1 \(space-separated\? use a tab\)"),
        ("John\tB-PER\tx\n", r"d.conll:1: expected 2 tab-separated columns .* found 3"),
        ("John\tB-PER\n\tO\n", r"d.conll:2: the token \(first column\) is empty"),
        ("John\t \n", r"d.conll:1: the tag \(second column\) is empty"),
        ("\n\n  \n", r"holds no sentences"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        make_task().read_examples(write(tmp_path / "d.conll", text))


def test_empty_file(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        make_task().read_examples(write(tmp_path / "d.conll", ""))


def test_predict_input_accepts_tag_column(tmp_path):
    inputs = make_task().read_inputs(write(tmp_path / "in.txt", "John\tB-PER\nlives\n\nRome\n"))
    assert [s.tokens for s in inputs] == [["John", "lives"], ["Rome"]]
    assert all(s.tags is None for s in inputs)


def test_bio_constraints_only_when_the_data_obeys_them():
    task = make_task(crf=True)
    task.fit(task.examples_from_python([["a", "b"]], [["B-X", "I-X"]]))
    assert task.bio_constraints
    task.fit(task.examples_from_python([["a", "b"]], [["O", "I-X"]]))  # IOB1-style data
    assert not task.bio_constraints
    task.fit(task.examples_from_python([["a", "b"]], [["NN", "VB"]]))  # not BIO at all
    assert not task.bio_constraints and task.best_by == ("token_accuracy", "max")


def test_options_of_other_tasks_are_rejected():
    with pytest.raises(ValueError, match="--pooling applies to --task classify, not --task tag"):
        task_config("tag", pooling="mean")
    with pytest.raises(ValueError, match="--tokens char does not apply to --task tag"):
        make_task(tokens="char")


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize("crf", [False, True])
def test_padding_does_not_change_tags(crf):
    torch.manual_seed(0)
    model = TaggingModel(
        TaggerConfig(
            vocab_size=30,
            num_tags=4,
            hidden_size=8,
            crf=crf,
            char_vocab_size=10,
            backend="reference",
        )
    ).eval()
    lengths = [5, 2, 4]
    ids = [torch.randint(4, 30, (n,)) for n in lengths]
    chars = torch.randint(4, 10, (3, 5, 3))
    char_lengths = torch.tensor([[3, 2, 1, 3, 2], [1, 3, 0, 0, 0], [2, 2, 3, 1, 0]])
    padded = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=1)
    emissions = model(padded, torch.tensor(lengths), chars, char_lengths)
    together = model.decode(emissions, torch.tensor(lengths))
    for b, n in enumerate(lengths):
        alone_e = model(
            ids[b][None], torch.tensor([n]), chars[b : b + 1, :n], char_lengths[b : b + 1, :n]
        )
        assert torch.allclose(alone_e[0], emissions[b, :n], atol=1e-6)
        assert model.decode(alone_e, torch.tensor([n]))[0] == together[b]


def test_token_features_are_the_feature_crfs():
    from rnnkit.data.token_features import feature_strings, hashed_token_features

    words = ["Jan", "woont", "in", "Amsterdam", "2024"]
    first = feature_strings(words, 0)
    assert {"bias", "-2:pad", "-1:pad", "0:lower=jan", "0:title", "0:suf2=an"} <= set(first)
    assert {"0:pre3=Jan", "0:shape=Xxx", "1:lower=woont", "2:lower=in"} <= set(first)
    assert "2:suf1=n" not in first  # affixes only at -1..+1
    last = set(feature_strings(words, 4))
    assert {"0:digit", "0:shape=dddd", "1:pad", "-1:title", "-2:lower=in"} <= last
    ids = hashed_token_features(words, 64)
    assert len(ids) == 5 and all(i == sorted(set(i)) and max(i) < 64 for i in ids)
    assert hashed_token_features(words, 64) == ids  # CRC-32: the same in every process


@pytest.mark.parametrize("ratios", [False, True])
def test_the_feature_path_matches_its_features_alone_when_the_network_says_nothing(ratios):
    """With the head zeroed, the emissions are the sum of each token's feature weights (with
    the ratios, the weights times the ratios); the padding positions' empty bags add nothing."""
    from rnnkit.tasks.tag import _feature_bags

    torch.manual_seed(0)
    config = TaggerConfig(
        vocab_size=30, num_tags=3, hidden_size=8, feature_buckets=50, feature_ratios=ratios
    )
    model = TaggingModel(config).eval()
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    torch.nn.init.normal_(model.features.weight)
    if ratios:
        torch.nn.init.normal_(model.features.ratios)
    features = [[[1, 4], [7]], [[2], [3, 9], [0, 5, 8]]]
    bags = _feature_bags(features, 3)
    ids = torch.tensor([[5, 6, 1], [7, 8, 9]])
    emissions = model(ids, torch.tensor([2, 3]), None, None, **bags)
    weight = model.features.weight * (model.features.ratios if ratios else 1.0)
    for b, sentence in enumerate(features):
        for t, token in enumerate(sentence):
            torch.testing.assert_close(emissions[b, t], weight[token].sum(0))
    assert torch.equal(emissions[0, 2], torch.zeros(3))
    with pytest.raises(ValueError, match="feature_ids and feature_offsets must be given"):
        model(ids, torch.tensor([2, 3]))


def test_the_task_fills_the_feature_ratios_from_its_training_tokens():
    from rnnkit.data.feature_ratios import log_count_ratios
    from rnnkit.tasks.base import TaskData

    sentences = [(["Ann", "went", "home"], ["B-PER", "O", "O"]), (["Bo", "sat"], ["B-PER", "O"])]
    task = TagTask(task_config("tag", feature_buckets=211, feature_scaling="nb"))
    examples = task.examples_from_python(*zip(*sentences, strict=True))
    task.fit(examples)
    model = task.build_model()
    task.init_model(model, TaskData(train=examples, val=[], source={}))
    bags, tags = [], []
    for e in examples:
        _, t, _, features = task.encode(e)
        bags += features
        tags += t.tolist()
    assert torch.equal(model.features.ratios, log_count_ratios(bags, tags, 211, len(task.tags)))
    assert not TaggerConfig(vocab_size=3, num_tags=2, feature_buckets=4).feature_ratios
    with pytest.raises(ValueError, match="set feature_buckets > 0"):
        TaggerConfig(vocab_size=3, num_tags=2, feature_ratios=True)


def test_the_feature_path_learns_a_spelling_cue_the_embeddings_cannot_see(
    tmp_path, capsys, one_thread
):
    """Entities are the words ending in -ville, each seen once, beside as many words ending
    in -town that are not: both are <unk> to the word embedding and no character encoder
    runs, so only the suffix features tell them apart."""
    import random

    rng = random.Random(0)
    filler = ["the", "a", "went", "to", "from", "and", "saw", "big"]

    def sentences(n, start):
        out = []
        for k in range(n):
            words = [rng.choice(filler) for _ in range(5)]
            at, other = rng.sample(range(5), 2)
            words[at] = f"q{start + k}ville"
            words[other] = f"q{start + k}town"
            out.append((words, ["B-LOC" if i == at else "O" for i in range(5)]))
        return out

    def write_conll(rows, name):
        text = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(*r, strict=True)) for r in rows)
        return write(tmp_path / name, text + "\n")

    train = write_conll(sentences(300, 0), "train.conll")
    test = write_conll(sentences(60, 1000), "test.conll")
    scores = {}
    for buckets in (0, 4096):
        out = tmp_path / f"run{buckets}"
        args = ["train", "--task", "tag", "--data", str(train), "--out", str(out)]
        args += ["--max-steps", "80", "--eval-every", "80", "--hidden-size", "16", "--lr", "1e-2"]
        args += ["--no-char-features", "--feature-buckets", str(buckets), "--min-freq", "2"]
        args += ["--backend", "native", "--quiet"]
        assert main(args) == 0
        capsys.readouterr()
        assert main(["evaluate", "--checkpoint", str(out / "best"), "--data", str(test)]) == 0
        scores[buckets] = json.loads(capsys.readouterr().out)["entity_f1"]
    assert scores[4096] >= 0.9 and scores[4096] > scores[0] + 0.3


# ---------------------------------------------------------------- learning


def test_bidirectional_wins_when_the_cue_is_on_the_right(one_thread):
    common = {"max_steps": 100, "lr": 1e-2, "hidden_size": 32, "train": 400, "test": 150, **FAST}
    uni = tagging_tasks.run(tagging_tasks.right_context, unidirectional=True, crf=False, **common)
    bi = tagging_tasks.run(tagging_tasks.right_context, crf=False, **common)
    assert bi["entity_f1"] >= 0.9
    assert bi["entity_f1"] > uni["entity_f1"] + 0.3


def test_crf_beats_softmax_when_the_type_comes_last(one_thread):
    common = {"max_steps": 100, "lr": 1e-2, "hidden_size": 32, "train": 400, "test": 150, **FAST}
    common["unidirectional"] = True
    softmax = tagging_tasks.run(tagging_tasks.end_cue, crf=False, **common)
    crf = tagging_tasks.run(tagging_tasks.end_cue, crf=True, **common)
    assert crf["entity_f1"] >= 0.9
    assert crf["entity_f1"] > softmax["entity_f1"] + 0.3


def test_python_api_unknown_words_and_tags(one_thread):
    x, y = tagging_tasks.right_context(200, seed=1)
    tagger = SequenceTagger(max_steps=60, hidden_size=16, crf=True, char_features=True, **FAST)
    tagger.fit(x, y)
    out = tagger.predict([["qqq", "zzz", "said"], ["the"]])
    assert [len(t) for t in out] == [3, 1]
    result = tagger.evaluate([["the", "kan"]], [["O", "B-NEW"]])  # B-NEW never seen: wrong
    assert result["unknown_tags"] == 1 and result["token_accuracy"] <= 0.5
    with pytest.raises(ValueError, match="sentence 0 has 2 tokens but 1 tags"):
        tagger.evaluate([["a", "b"]], [["O"]])


# ---------------------------------------------------------------- CLI


def test_cli_train_predict_evaluate(tmp_path, capsys, one_thread):
    x, y = tagging_tasks.right_context(240, seed=1)
    data = write(tmp_path / "train.conll", conll(x, y))
    out = tmp_path / "run"
    args = ["train", "--task", "tag", "--data", str(data), "--out", str(out), "--crf"]
    args += ["--max-steps", "60", "--eval-every", "30", "--hidden-size", "32"]
    args += ["--backend", "native", "--quiet"]
    assert main(args) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["task"] == "tag" and metrics["steps"] == 60
    state = json.loads((out / "task.json").read_text())["state"]
    assert state["bio_constraints"] and "B-PER" in state["tags"]

    x_test, y_test = tagging_tasks.right_context(40, seed=2)
    test = write(tmp_path / "test.conll", conll(x_test, y_test))
    inputs = write(tmp_path / "in.txt", "\n\n".join("\n".join(s) for s in x_test) + "\n")
    assert main(["predict", "--checkpoint", str(out), "--data", str(inputs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(x_test)
    assert [len(line.split()) for line in lines] == [len(s) for s in x_test]
    # the evaluation file itself (tags included) is accepted as predict input
    assert main(["predict", "--checkpoint", str(out), "--data", str(test)]) == 0
    assert capsys.readouterr().out.splitlines() == lines

    assert main(["evaluate", "--checkpoint", str(out / "best"), "--data", str(test)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "tag" and result["sentences"] == 40
    assert result["token_accuracy"] >= 0.7 and 0 <= result["entity_f1"] <= 1

    code = main(["predict", "--checkpoint", str(out), "--data", str(test), "--horizon", "3"])
    assert code == 2 and "--horizon does not apply to a tag model" in capsys.readouterr().err


def test_crf_and_char_features_are_on_by_default_and_can_be_turned_off(tmp_path, capsys):
    """The defaults measured best on NER (benchmarks/task_defaults.py); --no-X turns one off."""
    config = task_config("tag")
    assert config.crf is True and config.char_features is True
    assert config.feature_buckets == 2**18
    x, y = tagging_tasks.right_context(30, seed=1)
    data = write(tmp_path / "train.conll", conll(x, y))
    runs = {}
    for name, flags in (("default", []), ("off", ["--no-crf", "--no-char-features"])):
        out = tmp_path / name
        args = ["train", "--task", "tag", "--data", str(data), "--out", str(out), *flags]
        args += ["--max-steps", "2", "--hidden-size", "8", "--backend", "native", "--quiet"]
        assert main(args) == 0
        capsys.readouterr()
        runs[name] = json.loads((out / "config.json").read_text())["train"]["options"]
    assert runs["default"]["crf"] is True and runs["default"]["char_features"] is True
    assert runs["off"]["crf"] is False and runs["off"]["char_features"] is False
