"""The encoder-decoder (rnnkit.models.seq2seq): shapes, masking, attention, decoding, learning."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from resumed_runs import assert_same_weights, whole_and_resumed
from rnnkit.cli import main
from rnnkit.models.seq2seq import (
    ATTENTIONS,
    BOS_ID,
    EOS_ID,
    PAD_ID,
    Seq2SeqConfig,
    Seq2SeqModel,
    beam_decode,
    greedy_decode,
)
from rnnkit.tasks import SequenceToSequence, TaskModel
from rnnkit.tasks.seq2seq import Seq2SeqTask
from rnnkit.train.config import TrainConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = {"backend": "native", "threads": 1}  # tiny models: torch's kernel, one thread

CONFIGS = [
    ("gru", "bahdanau", True, 1),
    ("lstm", "dot", True, 2),
    ("rnn", "luong", False, 1),
    ("lstm", "bahdanau", False, 2),
    ("gru", "luong", True, 2),
]
# Attention "none" (seed 000's plain encoder-decoder) has no weights, but decodes like the others.
DECODING_CONFIGS = [*CONFIGS, ("gru", "none", True, 2)]


def make_model(
    cell="gru", attention="bahdanau", bidirectional=True, num_layers=1, seed=0, backend="native"
):
    config = Seq2SeqConfig(
        backend=backend,
        source_vocab_size=11,
        target_vocab_size=13,
        cell=cell,
        attention=attention,
        bidirectional=bidirectional,
        num_layers=num_layers,
        embedding_dim=6,
        hidden_size=8,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Seq2SeqModel(config).double().eval()


def random_batch(lengths, vocab=11, seed=1):
    """Sources with the given lengths padded with <pad>, ids drawn from the non-special tokens."""
    generator = torch.Generator().manual_seed(seed)
    source = torch.full((len(lengths), max(lengths)), PAD_ID, dtype=torch.long)
    for b, n in enumerate(lengths):
        source[b, :n] = torch.randint(4, vocab, (n,), generator=generator)
    return source, torch.tensor(lengths)


@pytest.mark.parametrize(("cell", "attention", "bidirectional", "num_layers"), CONFIGS)
def test_shapes_and_attention_weights_sum_to_one(cell, attention, bidirectional, num_layers):
    model = make_model(cell, attention, bidirectional, num_layers)
    source, lengths = random_batch([5, 3, 1])
    memory, state = model.encode(source, lengths)
    target_in = torch.randint(4, 13, (3, 4))
    logits, _, weights = model.decode(target_in, state, memory)
    assert logits.shape == (3, 4, 13)
    assert weights.shape == (3, 4, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, dtype=weights.dtype))
    # padded source positions get exactly zero weight
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(weights[b, :, n:] == 0)
        assert torch.all(weights[b, :, :n] > 0)


@pytest.mark.parametrize(("cell", "attention", "bidirectional", "num_layers"), DECODING_CONFIGS)
def test_padding_does_not_change_results(cell, attention, bidirectional, num_layers):
    """A source decoded alone equals the same source inside a padded batch of longer ones,
    also when the pad positions hold arbitrary ids (they must be ignored, not only embedded as
    zeros)."""
    model = make_model(cell, attention, bidirectional, num_layers)
    source, lengths = random_batch([7, 3, 5])
    source[1, 3:] = 9  # garbage after the end of source 1
    target_in = torch.randint(4, 13, (3, 4))
    batched = model(source, lengths, target_in)
    for b, n in enumerate(lengths.tolist()):
        alone = model(source[b : b + 1, :n], lengths[b : b + 1], target_in[b : b + 1])
        torch.testing.assert_close(batched[b : b + 1], alone, rtol=1e-10, atol=1e-10)
    # the same holds for decoded outputs
    greedy = greedy_decode(model, source, lengths, max_length=6)
    for b, n in enumerate(lengths.tolist()):
        assert greedy[b] == greedy_decode(model, source[b : b + 1, :n], lengths[b : b + 1], 6)[0]


@pytest.mark.parametrize(("cell", "attention", "bidirectional", "num_layers"), DECODING_CONFIGS)
def test_beam_size_one_equals_greedy(cell, attention, bidirectional, num_layers):
    for seed in range(3):
        model = make_model(cell, attention, bidirectional, num_layers, seed=seed)
        source, lengths = random_batch([6, 2, 4, 1], seed=seed)
        greedy = greedy_decode(model, source, lengths, max_length=7)
        assert beam_decode(model, source, lengths, max_length=7, beam_size=1) == greedy


def test_greedy_output_is_the_teacher_forced_argmax():
    """Decoding step by step is the training pass: teacher-forcing the greedy output gives the
    same tokens as the argmax at every step (the step path and the whole-sequence path agree)."""
    for attention in ATTENTIONS:
        model = make_model("lstm", attention, True, 2)
        source, lengths = random_batch([5, 4])
        for b in range(2):
            ids = greedy_decode(model, source[b : b + 1], lengths[b : b + 1], max_length=8)[0]
            target_in = torch.tensor([[BOS_ID, *ids]])
            logits = model(source[b : b + 1], lengths[b : b + 1], target_in)[0]  # (T, V)
            logits[:, [0, 1, 2]] = float("-inf")
            expected = [*ids, EOS_ID] if len(ids) < 8 else ids
            assert logits.argmax(-1).tolist()[: len(expected)] == expected


def test_beam_search_finds_a_target_at_least_as_probable_as_greedy():
    """With no length normalisation beam search ranks by total log-probability; on these random
    models its best hypothesis is never less probable than the greedy one."""

    @torch.no_grad()
    def log_prob(model, source, length, ids):
        target_in = torch.tensor([[BOS_ID, *ids]])
        logits = model(source, length, target_in)[0]
        logits[:, [0, 1, 2]] = float("-inf")
        log_probs = logits.log_softmax(-1)
        return float(log_probs[torch.arange(len(ids) + 1), torch.tensor([*ids, EOS_ID])].sum())

    compared = 0
    for seed in range(4):
        model = make_model("gru", "bahdanau", True, 1, seed=seed)
        source, lengths = random_batch([5], seed=seed)
        greedy = greedy_decode(model, source, lengths, 12)[0]
        beam = beam_decode(model, source, lengths, 12, beam_size=4, length_penalty=0.0)[0]
        if len(greedy) < 12 and len(beam) < 12:  # both finished with <eos>
            best, first = (
                log_prob(model, source, lengths, beam),
                log_prob(model, source, lengths, greedy),
            )
            assert best >= first - 1e-9
            compared += 1
    assert compared >= 2


def test_gradients_reach_every_parameter():
    model = make_model("lstm", "bahdanau", True, 2).train()
    source, lengths = random_batch([4, 2])
    logits = model(source, lengths, torch.randint(4, 13, (2, 3)))
    logits.sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cell": "jordan"}, "cell must be one of rnn, gru, lstm"),
        ({"attention": "general"}, "attention must be one of bahdanau, luong, dot, none"),
        ({"hidden_size": 0}, "hidden_size must be >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"target_vocab_size": 4}, "target_vocab_size must be >= 5"),
    ],
)
def test_bad_config_is_a_clear_error(change, message):
    arguments = {"source_vocab_size": 10, "target_vocab_size": 10, **change}
    with pytest.raises((ValueError, TypeError), match=message):
        Seq2SeqConfig(**arguments)


def test_bad_source_batch_is_a_clear_error():
    model = make_model()
    with pytest.raises(ValueError, match="source must be a \\(B, S\\) long tensor"):
        model.encode(torch.zeros(2, 3), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="lengths must be a \\(B,\\) tensor with B = 2"):
        model.encode(torch.ones(2, 3, dtype=torch.long), torch.tensor([3]))


def test_padding_does_not_change_results_on_rnnkits_engine():
    """The same check through rnnkit's reference engine (packed, bidirectional, stacked)."""
    model = make_model("lstm", "bahdanau", True, 2, backend="reference")
    source, lengths = random_batch([6, 2, 4])
    target_in = torch.randint(4, 13, (3, 3))
    batched = model(source, lengths, target_in)
    for b, n in enumerate(lengths.tolist()):
        alone = model(source[b : b + 1, :n], lengths[b : b + 1], target_in[b : b + 1])
        torch.testing.assert_close(batched[b : b + 1], alone, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- the task: format and errors


def reversal_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Short random strings over a-h and their reversals."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 6))) for _ in range(n)]
    return [(w, w[::-1]) for w in words]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_tsv_format_and_errors(tmp_path):
    task = Seq2SeqTask(TrainConfig(task="seq2seq"))
    good = write(tmp_path / "ok.tsv", ["abc\tcba", "", "x y\t"])
    pairs = task.read_examples(good)
    assert [(p.source, p.target, p.line) for p in pairs] == [("abc", "cba", 1), ("x y", "", 3)]
    bad = write(tmp_path / "bad.tsv", ["abc\tcba", "no tab here"])
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected 2 tab-separated columns"):
        task.read_examples(bad)
    bad = write(tmp_path / "bad3.tsv", ["a\tb\tc"])
    with pytest.raises(ValueError, match=r"bad3.tsv:1: .*found 3"):
        task.read_examples(bad)
    # predict input: one source per line; an answer column is ignored; blank lines kept
    inputs = task.read_inputs(write(tmp_path / "in.txt", ["abc\tcba", "", "de"]))
    assert [p.source for p in inputs] == ["abc", "", "de"]
    with pytest.raises(ValueError, match="got 2 sources but 1 targets"):
        task.examples_from_python(["a", "b"], ["a"])
    with pytest.raises(TypeError, match=r"sources\[1\] must be a str"):
        task.examples_from_python(["a", 3], None)


def test_word_tokens_and_unknown_tokens():
    task = Seq2SeqTask(TrainConfig(task="seq2seq", tokens="word"))
    task.fit(task.examples_from_python(["the cat sat", "a dog"], ["le chat", "un chien"]))
    assert "cat" in task.source_vocab and "chien" in task.target_vocab
    source, target = task.encode(task.examples_from_python(["the zebra"], ["le"])[0])
    assert source.tolist() == [task.source_vocab["the"], 0, EOS_ID]  # zebra -> <unk>, then <eos>
    assert target.tolist() == [task.target_vocab["le"]]


def test_cell_and_attention_options_are_checked():
    with pytest.raises(ValueError, match="--cell jordan is not available for --task seq2seq"):
        Seq2SeqTask(TrainConfig(task="seq2seq", cell="jordan"))
    task = Seq2SeqTask(TrainConfig(task="seq2seq"))
    task.fit(task.examples_from_python(["ab"], ["ba"]))
    with pytest.raises(ValueError, match="--beam-size must be a positive int"):
        task.predict(None, [], beam_size=0)
    with pytest.raises(ValueError, match="--max-length must be a positive int"):
        task.predict(None, [], max_length=0)
    plain = Seq2SeqTask(TrainConfig(task="seq2seq", attention="none", hidden_size=4))
    plain.fit(plain.examples_from_python(["ab"], ["ba"]))
    with pytest.raises(ValueError, match="this model has no attention"):
        plain.attention(plain.build_model(), "ab")


# ---------------------------------------------------------------- learning, API, CLI


def test_cli_train_predict_evaluate(tmp_path, capsys, one_thread):
    data = write(tmp_path / "train.tsv", [f"{s}\t{t}" for s, t in reversal_pairs(1500)])
    out = tmp_path / "run"
    args = ["train", "--task", "seq2seq", "--data", str(data), "--out", str(out), "--quiet"]
    args += ["--max-steps", "150", "--lr", "0.01", "--hidden-size", "64"]  # default attention
    assert main(args) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["task"] == "seq2seq" and metrics["steps"] == 150
    assert metrics["exact_match"] >= 0.9  # on the held-out tail; chance is about 1 in 8**3

    inputs = write(tmp_path / "in.txt", ["abc", "hgfed\tdefgh", "", "xyz"])
    assert main(["predict", "--checkpoint", str(out), "--data", str(inputs)]) == 0
    predicted = capsys.readouterr().out.split("\n")
    assert predicted[:3] == ["cba", "defgh", ""] and len(predicted) == 5  # xyz: <unk>s, no crash
    assert (
        main(["predict", "--checkpoint", str(out), "--data", str(inputs), "--beam-size", "4"]) == 0
    )
    assert capsys.readouterr().out.split("\n")[:2] == ["cba", "defgh"]

    test = write(tmp_path / "test.tsv", [f"{s}\t{t}" for s, t in reversal_pairs(100, seed=2)])
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(test)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "seq2seq" and result["exact_match"] >= 0.9
    assert 0 <= result["cer"] <= 0.05 and 0.9 <= result["bleu"] <= 1

    # the run loads in Python; beam search agrees; a saved copy predicts the same
    model = SequenceToSequence.load(out)
    sources = [s for s, _ in reversal_pairs(50, seed=3)]
    greedy = model.predict(sources)
    assert sum(g == s[::-1] for g, s in zip(greedy, sources, strict=True)) >= 45
    beam = model.predict(sources, beam_size=3)
    assert sum(b == s[::-1] for b, s in zip(beam, sources, strict=True)) >= 45
    # attention: rows sum to 1, and reversing attends to the mirrored source letter
    view = model.attention("abcdef")
    assert view["source"] == [*"abcdef", "<eos>"] and view["target"] == [*"fedcba", "<eos>"]
    weights = view["weights"]  # (7, 7)
    np.testing.assert_allclose(weights.sum(1), 1, rtol=1e-6)
    assert all(weights[t, 5 - t] >= 0.2 for t in range(6)), weights.round(2)
    model.save(tmp_path / "copy")
    again = TaskModel.load(tmp_path / "copy")
    assert again.predict(sources) == greedy
    assert again.predict(sources[:10], beam_size=3) == beam[:10]


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = write(tmp_path / "data.tsv", ["abc\tcba", "oops"])
    code = main(["train", "--task", "seq2seq", "--data", str(bad), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.strip().endswith(
        "data.tsv:2: expected 2 tab-separated columns (source<TAB>target), found 1"
    )
    code = main(
        ["train", "--task", "seq2seq", "--data", str(bad), "--out", str(tmp_path / "r"), "--crf"]
    )
    assert code == 2 and "--crf applies to --task tag" in capsys.readouterr().err


# ---------------------------------------------------------------- the examples, short


def load_example(name: str):
    sys.path.insert(0, str(EXAMPLES))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_date_normalization_example_short(one_thread):
    dates = load_example("date_normalization")
    sources, targets = dates.make_pairs(50, seed=3)
    assert len(sources) == 50 and sources != targets
    assert all(len(t) == 10 and t[4] == t[7] == "-" for t in targets)
    assert "March 3, 2021" in dates.human_formats(__import__("datetime").date(2021, 3, 3))
    # a smaller model, Luong attention (cheaper steps) and 150 steps
    _, result = dates.run(
        3000, 300, seed=0, attention="luong", hidden_size=64, max_steps=150, **FAST
    )
    assert result["exact_match"] >= 0.4  # chance is ~0; the full run reaches 1.0


def test_addition_example_short(one_thread):
    addition = load_example("addition")
    questions = addition.make_questions(100, digits=2, seed=0)
    assert len({q for q, _ in questions}) == 100
    assert all(int(a) == sum(map(int, q.split("+"))) for q, a in questions)
    _, result = addition.run(
        3000,
        300,
        digits=2,
        seed=0,
        attention="luong",
        hidden_size=64,
        max_steps=400,
        lr=1e-2,
        **FAST,
    )
    assert result["exact_match"] >= 0.1  # chance is about 0.01 for two-digit sums
    assert result["cer"] <= 0.5


def test_the_attention_flag_offers_every_model_attention():
    option = {o.name: o for o in Seq2SeqTask.own_options}["attention"]
    assert tuple(option.choices) == ATTENTIONS


def test_resume_continues_exactly(tmp_path, one_thread):

    data = write(tmp_path / "train.tsv", [f"{s}\t{t}" for s, t in reversal_pairs(200)])
    options = {"data": str(data), "max_steps": 8, "eval_every": 4, "save_every": 2}
    options |= {"dropout": 0.3, "hidden_size": 16, "embedding_dim": 8, "num_layers": 2}
    assert_same_weights(*whole_and_resumed("seq2seq", tmp_path, options))
