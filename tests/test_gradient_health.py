"""Gradient health in every run: the norm before clipping, clipping by norm and by value (the
applied update is the clipped gradient), the guard that skips non-finite steps and stops a
diverging run with one line, leaving the last checkpoint as it was."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks.base import Batch
from rnnkit.tasks.lm import LanguageModelTask
from rnnkit.train import TrainConfig, task_config, train, train_step
from rnnkit.train.gradients import MAX_BAD_STEPS, clip_gradients, weights_finite

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"hidden_size": 16, "embedding_dim": 8, "seq_len": 16, "batch_size": 4, "threads": 1}
TEXT = "the time traveller said the machine was ready and the time was now\n" * 40


def data_file(tmp_path: Path) -> str:
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- clipping


def model_with_gradient(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    torch.nn.functional.cross_entropy(model(x), y).mul(50.0).backward()  # a long gradient
    return model


def test_the_norm_is_measured_before_clipping():
    model = model_with_gradient()
    params = list(model.parameters())
    expected = torch.cat([p.grad.flatten() for p in params]).norm().item()
    result = clip_gradients(params, clip=0.0, clip_value=None)
    assert result.norm == pytest.approx(expected, rel=1e-6)
    assert not result.clipped
    clipped = clip_gradients(params, clip=expected / 4, clip_value=None)
    assert clipped.norm == pytest.approx(expected, rel=1e-6) and clipped.clipped
    after = torch.cat([p.grad.flatten() for p in params]).norm().item()
    assert after == pytest.approx(expected / 4, rel=1e-5)


@pytest.mark.parametrize(("clip", "clip_value"), [(0.5, None), (0.0, 0.05), (0.5, 0.05)])
def test_the_applied_update_is_the_clipped_gradient(clip, clip_value):
    """SGD with lr 1: the step moves every weight by exactly minus its clipped gradient."""
    model = model_with_gradient()
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    grads = [p.grad.clone() for p in params]
    if clip_value is not None:  # the elementwise clip first, then the global norm (docstring)
        grads = [g.clamp(-clip_value, clip_value) for g in grads]
    norm = torch.cat([g.flatten() for g in grads]).norm()
    if clip > 0 and norm > clip:
        grads = [g * (clip / norm) for g in grads]
    optimizer = torch.optim.SGD(params, lr=1.0)
    result = clip_gradients(params, clip, clip_value)
    assert result.clipped
    optimizer.step()
    for p, b, g in zip(params, before, grads, strict=True):
        torch.testing.assert_close(b - p.detach(), g, rtol=1e-5, atol=1e-7)


def test_a_non_finite_gradient_is_never_applied():
    task = LanguageModelTask(TrainConfig(**TINY))
    task.fit(list("abcdefgh"))
    model = task.build_model()
    model.head.bias.register_hook(lambda grad: grad * math.inf)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.randint(0, len(task.vocab), (2, 5))
    batch = Batch({"x": x, "y": x.roll(1, 1)}, size=2, tokens=10)
    carry = model.begin_state(2)
    result = train_step(task, model, optimizer, batch, carry)
    assert result.skipped and not math.isfinite(result.grad_norm)
    assert result.carry is carry  # the step never happened
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


# ---------------------------------------------------------------- in a run


def test_every_logged_step_has_the_loss_the_norm_and_the_clipped_fraction(tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(
        data=data_file(tmp_path),
        out=str(out),
        max_steps=30,
        log_every=10,
        eval_every=15,
        clip=1e-6,
        **TINY,
    )
    metrics = train(config, progress=False)
    logged = [r for r in rows(out) if "val_loss" not in r]
    assert [r["step"] for r in logged] == [10, 20, 30]
    for row in logged:
        assert row["clipped_fraction"] == 1.0  # every step is longer than 1e-6
        assert 0 < row["grad_norm"] <= row["grad_norm_max"] and math.isfinite(row["train_loss"])
        assert row["skipped_steps"] == 0
    assert metrics["clipped_fraction_run"] == 1.0
    assert (out / "grad_norm.png").read_bytes()[:4] == b"\x89PNG"
    unclipped = TrainConfig(**{**config.to_dict(), "out": str(tmp_path / "free"), "clip": 0.0})
    assert train(unclipped, progress=False)["clipped_fraction_run"] == 0.0


@pytest.mark.parametrize(
    ("optimizer", "lr", "cause"),
    [
        # SGD's step of 1e30 x a finite gradient makes weights inf: no later step can recover
        ("sgd", "1e30", "the update of step 2 made weights inf or nan"),
        # AdamW's steps are bounded by lr: the weights stay finite and the loss turns inf
        ("adamw", "1e10", f"{MAX_BAD_STEPS} steps in a row were skipped (nothing applied)"),
    ],
)
def test_an_exploding_run_is_stopped_with_one_line_and_its_checkpoint_kept(
    optimizer, lr, cause, tmp_path, capsys
):
    """An exploding learning rate with no clipping: the guard stops the run, names the step and
    the fix, and latest/ keeps the last good step, whole and untouched."""
    out = tmp_path / "run"
    argv = [
        "train",
        "--data",
        data_file(tmp_path),
        "--out",
        str(out),
        "--optimizer",
        optimizer,
        "--lr",
        lr,
        "--clip",
        "0",
        "--warmup-steps",
        "0",
        "--max-steps",
        "50",
        "--save-every",
        "1",
        "--quiet",
    ]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training diverged" in err and cause in err
    assert f"Lower --lr (now {float(lr):g})" in err and "--clip-value" in err
    saved = json.loads((out / "latest" / "checkpoint.json").read_text())["step"]
    assert f"latest/ holds step {saved}, untouched" in err
    last = rows(out)[-1]
    assert last["diverged"]
    if "skipped" in cause:
        assert last["skipped_steps"] == MAX_BAD_STEPS
    # the saved step is whole: its weights load, are finite, and loading changes nothing
    before = tree(out / "latest")
    from rnnkit.train import load_checkpoint

    model, *_ = load_checkpoint(out / "latest")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert tree(out / "latest") == before
    assert not (out / "metrics.json").exists()


def test_an_update_that_breaks_the_weights_is_reported():
    task = LanguageModelTask(TrainConfig(**TINY))
    task.fit(list("abcdefgh"))
    model = task.build_model()
    model.head.bias.register_hook(lambda grad: grad * 1e3)  # finite: 1e38 x it is not
    optimizer = torch.optim.SGD(model.parameters(), lr=1e38)
    x = torch.randint(0, len(task.vocab), (2, 5))
    batch = Batch({"x": x, "y": x.roll(1, 1)}, size=2, tokens=10)
    result = train_step(task, model, optimizer, batch, model.begin_state(2), clip=0.0)
    assert math.isfinite(result.loss) and math.isfinite(result.grad_norm)
    assert result.broke_weights and not result.skipped
    # weights of 1e20 are finite although their L2 norm overflows float32
    for p in model.parameters():
        p.data.fill_(1e20)
    assert weights_finite(list(model.parameters()))
    # finite weights whose sum overflows float32 are finite; one inf or nan among them is not
    for p in model.parameters():
        p.data.fill_(3e38)
    params = list(model.parameters())
    assert weights_finite(params)
    for bad in (math.inf, -math.inf, math.nan):
        params[-1].data.view(-1)[-1] = bad
        assert not weights_finite(params)


# ---------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--clip", "-1"], "--clip (clip) must be a number >= 0; got -1.0"),
        (["--clip-value", "0"], "--clip-value (clip_value) must be a number > 0; got 0.0"),
        (["--recurrent-init", "zeros"], "argument --recurrent-init: invalid choice: 'zeros'"),
        (["--input-init", "ones"], "argument --input-init: invalid choice: 'ones'"),
        (["--recurrent-init", "chrono", "--chrono-tmax", "0"], "must be an integer >= 2; got 0"),
        (["--chrono-tmax", "50"], "--chrono-tmax applies to --recurrent-init chrono"),
        (["--recurrent-init", "chrono", "--cell", "rnn"], "sets the gate biases of an LSTM or"),
        (["--nonlinearity", "relu", "--cell", "gru"], "--nonlinearity applies to --cell rnn"),
        (["--log-every", "0"], "--log-every (log_every) must be an integer >= 1; got 0"),
        (["--hiden-size", "8"], "(did you mean --hidden-size?)"),
        (["--crf"], "--crf applies to --task tag, not --task lm; drop it"),
    ],
)
def test_bad_settings_are_one_line_and_touch_nothing(flags, message, tmp_path, capsys):
    out = tmp_path / "run"
    config = TrainConfig(data=data_file(tmp_path), out=str(out), max_steps=2, **TINY)
    train(config, progress=False)
    before = tree(out)
    argv = ["train", "--data", config.data, "--out", str(out), "--force", *flags]
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert tree(out) == before


# ---------------------------------------------------------------- initialization from the CLI


def test_the_irnn_trains_from_the_command_line(tmp_path, capsys):
    """--cell rnn --nonlinearity relu --recurrent-init identity: Le et al. 2015's IRNN."""
    out = tmp_path / "irnn"
    argv = [
        "train",
        "--data",
        data_file(tmp_path),
        "--out",
        str(out),
        "--cell",
        "rnn",
        "--nonlinearity",
        "relu",
        "--recurrent-init",
        "identity",
        "--lr",
        "1e-9",
        "--max-steps",
        "1",
        "--quiet",
    ]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert main(argv) == 0
    capsys.readouterr()
    from rnnkit.train import load_checkpoint

    model, *_ = load_checkpoint(out / "latest")
    assert model.layers.nonlinearity == "relu"
    torch.testing.assert_close(model.layers.weight_hh_l0.detach(), torch.eye(16), atol=1e-6, rtol=0)
    assert model.layers.bias_ih_l0.abs().max() < 1e-6


def test_chrono_tmax_defaults_to_the_training_seq_len(tmp_path):
    out = tmp_path / "chrono"
    config = TrainConfig(
        data=data_file(tmp_path),
        out=str(out),
        recurrent_init="chrono",
        max_steps=1,
        lr=1e-9,
        **TINY,
    )
    train(config, progress=False)
    from rnnkit.train import load_checkpoint

    model, *_ = load_checkpoint(out / "latest")
    total = (model.layers.bias_ih_l0 + model.layers.bias_hh_l0).detach()
    forget = total[16:32]
    assert forget.min() >= 0 and forget.max() <= math.log(TINY["seq_len"] - 1) + 1e-4
    torch.testing.assert_close(total[:16], -forget)  # the input gate: -b_f


def test_max_time_means_the_same_for_every_task():
    """A task's default step budget gives way to --max-time (forecast defaults to 1000 steps)."""
    assert task_config("forecast").max_steps == 1000
    timed = task_config("forecast", max_time=20.0)
    assert timed.max_steps is None and timed.budget() == (None, 20.0)
    both = task_config("forecast", max_time=20.0, max_steps=5)
    assert both.budget() == (5, 20.0)


def test_a_world_without_torchrun_is_refused_before_anything_is_written(
    tmp_path, capsys, monkeypatch
):
    """WORLD_SIZE set by hand, without the rendezvous torchrun provides: one line, nothing
    written (tests/test_distributed.py trains under torchrun for real)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    out = tmp_path / "run"
    argv = ["train", "--data", data_file(tmp_path), "--out", str(out), "--max-steps", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not join the other processes" in err
    assert "start the run with torchrun" in err
    assert not out.exists()
