"""--ema-decay: held-out evaluations and best/ read the exponential moving average of the
weights (rnnkit.train.averaging), and a resumed run continues the same average."""

import json

import pytest
import torch
from safetensors.torch import load_file

from resumed_runs import assert_same_weights, whole_and_resumed
from rnnkit.cli import main
from rnnkit.tasks import task_config, train_task
from rnnkit.train.averaging import WeightAverage

FAST = {"backend": "native", "threads": 1}


def test_the_average_follows_the_ramped_decay():
    model = torch.nn.Linear(2, 1, bias=False)
    average = WeightAverage(model, decay=0.9)
    expected = None
    for n, value in enumerate([1.0, 3.0, -2.0, 5.0, 0.5] * 4):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update(model)
        if expected is None:
            expected = value  # the first update copies
        else:
            decay = min(0.9, (1 + n) / (10 + n))  # n updates averaged so far
            expected = decay * expected + (1 - decay) * value
        assert average.model.weight[0, 0].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert model.weight[0, 0].item() == 0.5  # training keeps its own weights


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def data(tmp_path):
    rows = []
    for i in range(64):
        label, cue = ("pos", "good") if i % 2 else ("neg", "bad")
        rows.append(f"{label}\tthe {cue} film {'plot' if i % 3 else 'a'}")
    path = tmp_path / "data.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_best_holds_the_average_and_a_resume_continues_it(tmp_path, data, one_thread):
    options = {"data": str(data), "max_steps": 8, "eval_every": 4, "save_every": 2}
    options |= {"dropout": 0.3, "ema_decay": 0.5, **FAST}
    runs = whole_and_resumed("classify", tmp_path, options)
    for kept in ("best", "latest"):
        assert_same_weights(*runs, kept)
    losses = [r["val_loss"] for r in _rows(tmp_path / "whole" / "log.jsonl") if "val_loss" in r]
    assert losses == [
        r["val_loss"] for r in _rows(tmp_path / "split" / "log.jsonl") if "val_loss" in r
    ]
    # best/ is the average, not the weights training ended with
    best = load_file(tmp_path / "whole" / "best" / "weights.safetensors")
    latest = load_file(tmp_path / "whole" / "latest" / "weights.safetensors")
    assert any(not torch.equal(best[name], latest[name]) for name in best)
    # without the average, the same run's best/ (its last evaluation) is latest/'s weights
    plain = task_config("classify", out=str(tmp_path / "plain"), **(options | {"ema_decay": 0}))
    train_task(plain, progress=False)
    plain_rows = [r for r in _rows(tmp_path / "plain" / "log.jsonl") if "val_loss" in r]
    if max(plain_rows, key=lambda r: r["accuracy"])["step"] == 8:
        best = load_file(tmp_path / "plain" / "best" / "weights.safetensors")
        latest = load_file(tmp_path / "plain" / "latest" / "weights.safetensors")
        assert all(torch.equal(best[name], latest[name]) for name in best)


@pytest.mark.parametrize("value", ["1", "-0.1"])
def test_a_decay_outside_the_unit_interval_is_refused(value, data, tmp_path, capsys):
    args = ["train", "--task", "classify", "--data", str(data), "--out", str(tmp_path / "r")]
    assert main([*args, "--ema-decay", value, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--ema-decay" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()
