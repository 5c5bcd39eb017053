"""The classify task: file formats and their errors, the classifier model, learning, the CLI
end to end (train -> predict -> evaluate), the Python API, and the digits example."""

import json
import random
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier
from rnnkit.models.encoder import RecurrentEncoder
from rnnkit.tasks import TaskModel, TextClassifier, task_config
from rnnkit.tasks.classify import ClassifyTask

FAST = {"backend": "native", "threads": 1}  # tiny models: torch's kernel, one thread


def sentiment_lines(n: int, seed: int = 0) -> list[str]:
    """label<TAB>text lines whose label is set by one cue word among filler words."""
    rng = random.Random(seed)
    cues = {"pos": ["good", "great", "fine", "lovely"], "neg": ["bad", "awful", "poor", "dull"]}
    filler = ["the", "a", "movie", "film", "was", "is", "plot", "actor", "very", "quite"]
    lines = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = [rng.choice(filler) for _ in range(rng.randint(2, 8))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(cues[label]))
        lines.append(f"{label}\t{' '.join(words)}")
    return lines


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_task(**options) -> ClassifyTask:
    return ClassifyTask(task_config("classify", **options))


# ---------------------------------------------------------------- formats and errors


@pytest.mark.parametrize(
    "lines, message",
    [
        (
            ["pos\tgood film", "just text"],
            r"data.tsv:2: expected 2 tab-separated columns "
            r"\(label<TAB>text\), found 1",
        ),
        (["pos\tgood\tfilm"], r"data.tsv:1: expected 2 tab-separated columns .* found 3"),
        (["pos\tgood", "neg\t   "], r"data.tsv:2: the text is empty"),
        (["\tgood film"], r"data.tsv:1: the label \(first column\) is empty"),
        (["", "  "], r"holds no examples"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, lines, message):
    path = write(tmp_path / "data.tsv", lines)
    with pytest.raises(ValueError, match=message):
        make_task().read_examples(path)


def test_empty_file(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        make_task().read_examples(path)


def test_numbers_format_and_errors(tmp_path):
    task = make_task(tokens="numbers")
    path = write(tmp_path / "n.tsv", ["a\t1 2; 3,4", "b\t5 6;7 8;9 10"])
    examples = task.read_examples(path)
    assert examples[0].tokens == [[1, 2], [3, 4]] and len(examples[1].tokens) == 3
    bad = write(tmp_path / "bad.tsv", ["a\t1 2; 3 x"])
    with pytest.raises(ValueError, match=r"bad.tsv:1: 'x' is not a number"):
        task.read_examples(bad)
    ragged = write(tmp_path / "ragged.tsv", ["a\t1 2; 3"])
    with pytest.raises(ValueError, match=r"ragged.tsv:1: time step 2 has 1 values"):
        task.read_examples(ragged)
    width = write(tmp_path / "width.tsv", ["a\t1 2", "b\t1 2 3"])
    with pytest.raises(ValueError, match=r"width.tsv:2: 3 values per time step"):
        task.read_examples(width)


def test_predict_inputs_accept_the_answer_column(tmp_path):
    task = make_task()
    path = write(tmp_path / "in.txt", ["good film", "neg\tawful film"])
    inputs = task.read_inputs(path)
    assert [e.tokens for e in inputs] == [["good", "film"], ["awful", "film"]]
    assert all(e.label is None for e in inputs)
    # a blank line is named with the form predict reads, not the training file's
    with pytest.raises(ValueError, match=r"in.txt:2: the text is empty; every line needs a text"):
        task.read_inputs(write(tmp_path / "in.txt", ["good film", ""]))
    with pytest.raises(ValueError, match=r"in.txt:1: .* every line needs label<TAB>text"):
        task.read_inputs(write(tmp_path / "in.txt", ["neg\t"]))


def test_n_gram_settings_the_model_would_not_use_are_refused():
    """Given settings that the resolved model leaves unused are one-line errors, not ignored."""
    with pytest.raises(ValueError, match="--ngram-weight weighs the two experts"):
        task_config("classify", ngram_combination="sum", ngram_weight=0.3)
    with pytest.raises(ValueError, match="--ngram-weight sets the n-gram path, which "):
        task_config("classify", ngram_buckets=0, ngram_weight=0.3)
    with pytest.raises(ValueError, match=r"--ngram-scaling sets .* --tokens numbers leaves out"):
        task_config("classify", tokens="numbers", ngram_scaling="none")
    with pytest.raises(ValueError, match=r"--ngram-buckets sets .* --tokens numbers leaves out"):
        task_config("classify", tokens="numbers", ngram_buckets=1024)
    with pytest.raises(ValueError, match=r"--feature-scaling sets the feature path, which"):
        task_config("tag", feature_buckets=0, feature_scaling="nb")
    assert task_config("classify", ngram_weight=0.6).ngram_weight == 0.6
    assert task_config("classify", ngram_combination="sum").ngram_weight == 0.75  # unused


def test_options_of_other_tasks_are_rejected():
    with pytest.raises(ValueError, match="--seq-len applies to --task lm, not --task classify"):
        task_config("classify", seq_len=10)
    with pytest.raises(ValueError, match="--crf applies to --task tag, not --task classify"):
        task_config("classify", crf=True)
    with pytest.raises(ValueError, match=r"unknown setting 'poolng' \(did you mean pooling\?\)"):
        task_config("classify", poolng="mean")
    # initialization is every task's (the trainer's)
    assert task_config("classify", recurrent_init="chrono", cell="gru").recurrent_init == "chrono"
    config = task_config("classify")
    assert config.tokens == "word" and config.pooling == "max"  # the task's own defaults


# ---------------------------------------------------------------- the model


def test_encoder_last_state_is_the_output_at_each_end():
    torch.manual_seed(0)
    encoder = RecurrentEncoder("lstm", 3, 5, num_layers=2, bidirectional=True, backend="native")
    x = torch.randn(3, 6, 3)
    lengths = torch.tensor([6, 2, 4])
    outputs, last = encoder(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(last[b, :5], outputs[b, n - 1, :5])  # forward: after its last step
        assert torch.allclose(last[b, 5:], outputs[b, 0, 5:])  # backward: after the first
        assert torch.all(outputs[b, n:] == 0)  # nothing past the length


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "jordan"])
def test_padding_does_not_change_a_prediction(pooling, cell):
    torch.manual_seed(0)
    model = SequenceClassifier(
        ClassifierConfig(
            num_classes=3,
            vocab_size=20,
            cell=cell,
            hidden_size=8,
            pooling=pooling,
            backend="reference",
        )
    ).eval()
    seqs = [torch.randint(4, 20, (n,)) for n in (7, 3, 5)]
    lengths = torch.tensor([7, 3, 5])
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=1)
    together = model(padded, lengths)
    for b, seq in enumerate(seqs):
        alone = model(seq[None], torch.tensor([len(seq)]))
        assert torch.allclose(together[b], alone[0], atol=1e-6)


def test_bad_classifier_config():
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        ClassifierConfig(num_classes=2)
    with pytest.raises(ValueError, match="pooling must be one of"):
        ClassifierConfig(num_classes=2, vocab_size=5, pooling="sum")


# ---------------------------------------------------------------- learning, API, CLI


def test_learns_and_predicts_from_python(one_thread):
    lines = sentiment_lines(300)
    texts = [line.split("\t")[1] for line in lines]
    labels = [line.split("\t")[0] for line in lines]
    clf = TextClassifier(max_steps=60, eval_every=30, **FAST).fit(texts, labels)
    assert clf.metrics_["accuracy"] >= 0.9
    assert clf.predict(["the film was great", "a dull plot"]) == ["pos", "neg"]
    # an unknown word maps to <unk>; an unknown label counts as wrong, not a crash
    assert clf.predict(["zzyzx qwerty"])[0] in ("pos", "neg")
    result = clf.evaluate(["great film", "dull film"], ["pos", "mixed"])
    assert result["accuracy"] == 0.5 and result["unknown_labels"] == 1


def test_numeric_sequences_learn(one_thread):
    """Class = which half of the sequence holds the larger values: order matters."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(240, 6, 2, generator=g)
    y = (x[:, :3].sum((1, 2)) > x[:, 3:].sum((1, 2))).long()
    clf = TextClassifier(tokens="numbers", max_steps=120, eval_every=60, **FAST)
    clf.fit(list(x[:200]), y[:200].tolist())
    assert clf.evaluate(list(x[200:]), y[200:].tolist())["accuracy"] >= 0.8


def test_cli_train_predict_evaluate(tmp_path, capsys, one_thread):
    data = write(tmp_path / "train.tsv", sentiment_lines(200))
    out = tmp_path / "run"
    args = ["train", "--task", "classify", "--data", str(data), "--out", str(out)]
    args += ["--max-steps", "40", "--eval-every", "20", "--backend", "native", "--quiet"]
    assert main(args) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["task"] == "classify" and metrics["steps"] == 40
    for name in ("config.json", "task.json", "log.jsonl", "metrics.json", "loss_curve.png"):
        assert (out / name).is_file()
    for name in ("latest", "best"):
        assert (out / name / "weights.safetensors").is_file()
    task_state = json.loads((out / "task.json").read_text())
    assert task_state["state"]["labels"] == ["neg", "pos"]

    inputs = write(tmp_path / "in.txt", ["the film was great", "neg\ta dull plot", "qqq"])
    assert main(["predict", "--checkpoint", str(out), "--data", str(inputs)]) == 0
    predicted = capsys.readouterr().out.splitlines()
    assert len(predicted) == 3 and predicted[:2] == ["pos", "neg"]

    test = write(tmp_path / "test.tsv", sentiment_lines(60, seed=1))
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(test)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["task"] == "classify" and result["accuracy"] >= 0.8
    assert 0 <= result["macro_f1"] <= 1
    assert captured.err == ""
    # a file of none of the model's labels is scored, and said to be the wrong file, likely
    other = write(tmp_path / "other.tsv", ["B-PER\tthe film", "O\ta plot"])
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(other)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["unknown_labels"] == 2
    assert "warning: no label in" in captured.err and "is it the right file" in captured.err


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = write(tmp_path / "data.tsv", ["pos\tgood", "oops"])
    code = main(["train", "--task", "classify", "--data", str(bad), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().endswith(
        "data.tsv:2: expected 2 tab-separated columns (label<TAB>text), found 1"
    )
    assert len(err.strip().splitlines()) == 1
    code = main(["train", "--task", "classify", "--out", str(tmp_path / "r")])
    assert code == 2 and "--data FILE is required" in capsys.readouterr().err
    code = main(["predict", "--checkpoint", str(tmp_path / "nothing"), "--data", str(bad)])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_saved_model_loads_back(tmp_path, one_thread):
    lines = sentiment_lines(120)
    texts, labels = [x.split("\t")[1] for x in lines], [x.split("\t")[0] for x in lines]
    clf = TextClassifier(max_steps=20, **FAST).fit(texts, labels)
    clf.save(tmp_path / "model")
    again = TaskModel.load(tmp_path / "model")
    assert again.predict(texts[:20]) == clf.predict(texts[:20])
    with pytest.raises(ValueError, match="not trained"):
        TextClassifier().predict(["x"])


def test_digits_example_short(one_thread):
    sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
    try:
        import digits_classify
    finally:
        sys.path.pop(0)
    split = digits_classify.load_split(0)
    result = digits_classify.rnn_classifier(*split, max_steps=150, **FAST)
    assert result["accuracy"] >= 0.8  # chance is 0.1


def test_cli_numeric_sequences(tmp_path, capsys, one_thread):
    """--tokens numbers from the command line: which of two steps holds the larger values."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(120, 2, 3, generator=g)
    rows = []
    for seq in x:
        label = "first" if seq[0].sum() > seq[1].sum() else "second"
        rows.append(label + "\t" + "; ".join(" ".join(f"{v:.3f}" for v in step) for step in seq))
    data = write(tmp_path / "n.tsv", rows)
    out = tmp_path / "run"
    args = ["train", "--task", "classify", "--tokens", "numbers", "--data", str(data)]
    args += ["--out", str(out), "--max-steps", "80", "--lr", "1e-2", "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] >= 0.8
    wrong = write(tmp_path / "wrong.txt", ["1 2; 3 4"])  # 2 values per step, trained on 3
    assert main(["predict", "--checkpoint", str(out), "--data", str(wrong)]) == 2
    assert "wrong.txt:1: 2 values per time step, but the model was trained on 3" in (
        capsys.readouterr().err
    )


def test_a_held_out_part_of_labels_never_trained_is_refused_or_noticed(tmp_path, capsys):
    """Held-out examples whose label the training part lacks cannot be scored: when all of
    them are such, training is refused with one line before --out is written (their loss
    would read 0.0, a perfect fit); when some are, a notice says how many, and the held-out
    loss is the mean over the others."""
    lines = sentiment_lines(57)
    neutral = ["neutral\tso so", "neutral\tfine i guess", "neutral\tit was a film"]
    every = write(tmp_path / "every.tsv", [*lines, *neutral])  # the last 3 of 60 held out
    out = tmp_path / "run"
    args = ["train", "--task", "classify", "--data", str(every), "--out", str(out)]
    assert main([*args, "--max-steps", "2", "--hidden-size", "8", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "lacks (neutral)" in err and "--val-data" in err and err.count("\n") == 1
    assert not out.exists()
    some = write(tmp_path / "some.tsv", [*lines, neutral[0], *lines[:2]])
    args = ["train", "--task", "classify", "--data", str(some), "--out", str(out)]
    assert main([*args, "--max-steps", "2", "--hidden-size", "8", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "1 of 3 held-out examples have a label the training part lacks" in captured.err
    metrics = json.loads(captured.out)
    assert metrics["unknown_labels"] == 1 and metrics["val_loss"] > 0.1
