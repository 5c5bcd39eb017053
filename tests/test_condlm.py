"""condlm, conditioned generation: the model's two ways in for a condition, withholding it,
the TSV format and its errors, category and vector conditions, learning what a condition says,
generate/predict/evaluate from the command line, resume and the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from resumed_runs import assert_same_weights, whole_and_resumed
from rnnkit.cells import CELLS
from rnnkit.cli import main
from rnnkit.models.conditioned_lm import (
    CONDITION_AT,
    ConditionedLanguageModel,
    ConditionedLMConfig,
)
from rnnkit.tasks import ConditionalGenerator, task_config, train_task
from rnnkit.tasks.condlm import ConditionedLMTask, parse_vector, resolve_condition_type
from rnnkit.train.config import TrainConfig

FAST = {"backend": "native", "threads": 1}


def make_model(cell="lstm", condition_at="both", categories=3, width=0, layers=2, seed=0):
    config = ConditionedLMConfig(
        vocab_size=9,
        num_conditions=categories,
        condition_size=width,
        condition_dim=4,
        condition_at=condition_at,
        cell=cell,
        embedding_dim=5,
        hidden_size=6,
        num_layers=layers,
        backend="reference",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ConditionedLanguageModel(config).double().eval()
        with torch.no_grad():  # a withheld encoding unlike the zeros it starts from
            model.withheld_condition.normal_()
    return model


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_bound_model_is_the_model_for_one_condition(cell):
    """Every registered cell: generation's view (conditioned_on) computes what forward does,
    step by step with the state carried, and a withheld condition is the learned vector."""
    model = make_model(cell)
    ids = torch.randint(0, 9, (1, 7))
    condition = torch.tensor([2])
    logits, _ = model(ids, condition)
    bound = model.conditioned_on(condition)
    state = bound.begin_state(1)
    steps = []
    for t in range(7):
        out, state = bound(ids[:, t : t + 1], state)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, 1), logits)
    withheld, _ = model(ids, condition, withheld=torch.tensor([True]))
    torch.testing.assert_close(model.conditioned_on(None)(ids)[0], withheld)
    assert not torch.allclose(withheld, logits)


@pytest.mark.parametrize("condition_at", CONDITION_AT)
def test_the_condition_enters_where_asked(condition_at):
    model = make_model("gru", condition_at)
    encoded = model.encode_condition(torch.tensor([0, 1]))
    state = model.begin_state(encoded)
    assert state.shape == (2, 2, 6)
    assert bool(state.abs().sum() > 0) == (condition_at != "input")
    inputs = model.step_inputs(torch.zeros(2, 3, dtype=torch.long), encoded)
    assert inputs.shape[-1] == 5 + (4 if condition_at != "state" else 0)
    # each row follows its own condition: changing row 1's leaves row 0 as it was
    ids = torch.randint(0, 9, (2, 4))
    a, _ = model(ids, torch.tensor([0, 1]))
    b, _ = model(ids, torch.tensor([0, 2]))
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1])


def test_gradients_reach_the_condition_encoders():
    model = make_model("lstm", "both", categories=0, width=3, layers=1)
    ids = torch.randint(0, 9, (2, 4))
    condition = torch.randn(2, 3, dtype=torch.float64)
    withheld = torch.tensor([False, True])

    def logits_of(weight, vector):
        with torch.nn.utils.stateless._reparametrize_module(
            model, {"condition_encoder.weight": weight, "withheld_condition": vector}
        ):
            return model(ids, condition, withheld=withheld)[0]

    weight = model.condition_encoder.weight.detach().clone().requires_grad_()
    vector = model.withheld_condition.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(logits_of, (weight, vector))


def test_model_config_errors():
    with pytest.raises(ValueError, match="either num_conditions"):
        ConditionedLMConfig(vocab_size=5, num_conditions=2, condition_size=2)
    with pytest.raises(ValueError, match="condition_at must be one of state, input, both"):
        ConditionedLMConfig(vocab_size=5, num_conditions=2, condition_at="x")
    with pytest.raises(ValueError, match="cell must be one of"):
        ConditionedLMConfig(vocab_size=5, num_conditions=2, cell="nope")


# ---------------------------------------------------------------- conditions


def test_condition_types():
    assert parse_vector("0.5, 1e-3 2") == [0.5, 0.001, 2.0]
    assert parse_vector("nan") is None and parse_vector("x 1") is None
    assert resolve_condition_type(["1", "5", "3"], "auto") == "category"  # star ratings
    assert resolve_condition_type(["0.5", "1"], "auto") == "vector"
    assert resolve_condition_type(["1 2", "3 4"], "auto") == "vector"
    assert resolve_condition_type(["1 2", "3"], "auto") == "category"
    assert resolve_condition_type(["Italian", "0.5"], "auto") == "category"
    assert resolve_condition_type(["0.5", "1"], "category") == "category"


def pattern_rows(n: int) -> list[str]:
    """Condition a: texts of a and b; condition x: texts of x, y and z. Only the condition says
    which alphabet a text uses."""
    rows = []
    for i in range(n):
        if i % 2:
            rows.append("a\t" + "ab"[i % 2 :] * (1 + i % 3) + "a" * (i % 4))
        else:
            rows.append("x\t" + "xyz"[i % 3 :] + "zy" * (1 + i % 2))
    return rows


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(pattern_rows(120)) + "\n")
    return path


def test_held_out_examples_are_taken_from_every_category(data):
    task = ConditionedLMTask(TrainConfig(task="condlm", data=str(data), val_fraction=0.1))
    loaded = task.load_data()
    held = {e.condition for e in loaded.val}
    assert held == {"a", "x"} and len(loaded.val) == 12
    assert {e.condition for e in loaded.train} == {"a", "x"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a\tab\nno tab here\n", r"train\.tsv:2: expected 2 tab-separated columns"),
        ("a\tab\n\tab\n", r"train\.tsv:2: the condition \(first column\) is empty"),
        ("a\tab\nx\t \n", r"train\.tsv:2: the text is empty"),
        ("\n\n", "holds no examples"),
        ("a\tab\n", "no condition has two examples"),
    ],
)
def test_bad_training_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "train.tsv"
    path.write_text(content)
    config = task_config("condlm", data=str(path), out=str(tmp_path / "run"), max_steps=2)
    with pytest.raises(ValueError, match=message):
        train_task(config, progress=False)
    assert not (tmp_path / "run" / "latest").exists()


# ---------------------------------------------------------------- training and use


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("condlm")
    path = root / "train.tsv"
    path.write_text("\n".join(pattern_rows(160)) + "\n")
    config = task_config(
        "condlm",
        data=str(path),
        out=str(root / "run"),
        max_steps=300,
        hidden_size=32,
        eval_every=100,
        seed=0,
        **FAST,
    )
    train_task(config, progress=False)
    return root


def test_the_condition_is_learned_and_evaluation_shows_its_worth(trained):
    metrics = json.loads((trained / "run" / "metrics.json").read_text())
    assert metrics["condition_type"] == "category" and metrics["conditions"] == 2
    # withheld, the model must guess the alphabet at the first letter (ideally ln 2 nats per
    # text; more, as only a tenth of the training texts taught it), then the text says it
    per_text = metrics["condition_gain_nats_per_token"] * metrics["tokens"] / metrics["examples"]
    assert per_text > 0.5, per_text
    assert metrics["perplexity"] < metrics["perplexity_condition_withheld"]
    gen = ConditionalGenerator.load(trained / "run")
    for seed in range(5):
        assert set(gen.generate("a", seed=seed)) <= set("ab")
        assert set(gen.generate("x", seed=seed)) <= set("xyz")
    assert gen.generate("a", greedy=True) and gen.generate("x", beam_size=3)
    result = gen.evaluate(["a", "x"], ["abab", "xyzzy"])
    assert set(result["per_condition"]) == {"a", "x"}
    for figures in result["per_condition"].values():
        assert figures["perplexity"] < figures["perplexity_condition_withheld"]


def test_command_line_generate_predict_evaluate(trained, capsys):
    run = str(trained / "run")
    assert main(["generate", "--checkpoint", run, "--condition", "x", "--seed", "1"]) == 0
    assert set(capsys.readouterr().out.strip()) <= set("xyz")
    assert main(["generate", "--checkpoint", run, "--condition", "a", "--prefix", "b"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("b") and set(out) <= set("ab")
    conditions = trained / "conditions.txt"
    conditions.write_text("a\nx\tthe text column is ignored\na\n")
    assert main(["predict", "--checkpoint", run, "--data", str(conditions)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and set(lines[1]) <= set("xyz") and set(lines[2]) <= set("ab")
    assert main(["evaluate", "--checkpoint", run, "--data", str(trained / "train.tsv")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "condlm" and result["examples"] == 160
    assert result["per_condition"]["a"]["examples"] == 80


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate"], "holds a condlm model: pass --condition VALUE; the model knows a, x"),
        (["generate", "--condition", "q"], "condition 'q' was never seen in training"),
        (["generate", "--condition", "a", "--decoder", "fused"], "--decoder fused cannot serve"),
    ],
)
def test_command_line_errors(trained, capsys, argv, message):
    assert main([*argv, "--checkpoint", str(trained / "run")]) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_predict_refuses_a_blank_condition_line_that_would_shift_the_outputs(trained, capsys):
    """One output line per input line: a blank line inside the file is a FILE:LINE error
    (skipping it would print the later texts a line early); blank lines at its end are not."""
    run = str(trained / "run")
    conditions = trained / "gap.txt"
    conditions.write_text("a\n\nx\n")
    assert main(["predict", "--checkpoint", run, "--data", str(conditions)]) == 2
    err = capsys.readouterr().err
    assert "gap.txt:2: the condition is empty" in err and err.count("\n") == 1
    conditions.write_text("a\nx\n\n\n")
    assert main(["predict", "--checkpoint", run, "--data", str(conditions)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_evaluate_names_the_line_of_an_unseen_condition(trained, capsys):
    before = {p.name: p.read_bytes() for p in (trained / "run" / "best").iterdir()}
    path = trained / "unseen.tsv"
    path.write_text("a\tab\nq\tab\n")
    assert main(["evaluate", "--checkpoint", str(trained / "run"), "--data", str(path)]) != 0
    assert "unseen.tsv:2: condition 'q' was never seen in training" in capsys.readouterr().err
    assert before == {p.name: p.read_bytes() for p in (trained / "run" / "best").iterdir()}


def test_generate_refuses_condition_for_a_language_model(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("hello world\n" * 200)
    run = str(tmp_path / "lm")
    args = ["train", "--data", str(text), "--out", run, "--max-steps", "2", "--batch-size", "2"]
    assert main([*args, "--hidden-size", "8", "--seq-len", "8"]) == 0
    capsys.readouterr()
    assert main(["generate", "--checkpoint", run, "--condition", "a"]) != 0
    assert "--condition applies to condlm models" in capsys.readouterr().err


def test_vector_conditions(tmp_path):
    """A number decides the alphabet: below 0 texts of a/b, above of x/y/z."""
    rows = []
    for i in range(120):
        value = (i % 7 + 1) * 0.37
        rows.append(f"{-value:.2f}\t{'ab' * (1 + i % 3)}" if i % 2 else f"{value:.2f}\txyzxy")
    gen = ConditionalGenerator(max_steps=300, hidden_size=32, **FAST).fit(
        [r.split("\t")[0] for r in rows], [r.split("\t")[1] for r in rows]
    )
    assert gen.task.condition_type == "vector"
    assert set(gen.generate([-1.5], seed=0)) <= set("ab")
    assert set(gen.generate("1.5", seed=0)) <= set("xyz")
    with pytest.raises(ValueError, match="the condition must be 1 numbers"):
        gen.generate("1 2")
    result = gen.evaluate(["0.37", "-0.74"], ["xyzxy", "abab"])
    assert result["perplexity"] < result["perplexity_condition_withheld"]


def test_resume_continues_exactly(tmp_path, data, one_thread):
    """Condition dropout draws from torch's generator, which latest/ saves."""
    options = {"data": str(data), "max_steps": 8, "eval_every": 4, "save_every": 2}
    options |= {"hidden_size": 8, "condition_dropout": 0.5, **FAST}
    assert_same_weights(*whole_and_resumed("condlm", tmp_path, options))
