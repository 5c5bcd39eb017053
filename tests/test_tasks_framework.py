"""The task framework: registry, option checks, epoch order, run directory, resume, checkpoint
loading and the CLI's dispatch between language models and task models."""

import json
import math
from pathlib import Path

import pytest

from resumed_runs import assert_same_weights
from rnnkit.cli import main
from rnnkit.tasks import TASKS, load_task_checkpoint, task_class, task_config, train_task
from rnnkit.tasks.base import EpochOrder, split_tail
from rnnkit.train import TrainConfig, train
from samples import write_sample

FAST = {"backend": "native", "threads": 1}


def lines(n: int) -> str:
    words = ["good", "bad", "film", "plot", "the", "a"]
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        cue = "good" if i % 2 else "bad"
        rows.append(f"{label}\t{words[i % 6]} {cue} {words[(i * 7) % 6]}")
    return "\n".join(rows) + "\n"


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "data.tsv"
    path.write_text(lines(64))
    return path


def test_registry():
    assert TASKS == ("lm", "classify", "tag", "seq2seq", "forecast", "condlm", "transcribe")
    assert task_class("classify").name == "classify"
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        task_class("nope")
    assert task_class("lm").name == "lm"  # the language model is a task like the others


def test_lm_rejects_task_options():
    with pytest.raises(ValueError, match="--crf applies to --task tag, not --task lm; drop it"):
        TrainConfig(crf=True)
    with pytest.raises(ValueError, match="--tokens numbers applies to --task classify"):
        TrainConfig(tokens="numbers")


def test_split_tail():
    assert split_tail(list(range(10)), 0.2) == (list(range(8)), [8, 9])
    assert split_tail([1, 2], 0.01) == ([1], [2])  # at least one held out
    with pytest.raises(ValueError, match="at least 2"):
        split_tail([1], 0.5)


def test_epoch_order_covers_each_example_once_per_epoch_and_resumes():
    order = EpochOrder(10, 4, seed=3)
    epoch = [i for _ in range(3) for i in order.next_indices()]
    assert sorted(epoch) == list(range(10))  # batches of 4, 4, 2
    second = order.next_indices()
    again = EpochOrder(10, 4, seed=3)
    again.load_state_dict({"epoch": 1, "position": 0})
    assert again.next_indices() == second


def test_resume_continues_exactly(tmp_path, data, one_thread):
    options = {"data": str(data), "max_steps": 8, "eval_every": 4, "save_every": 2, "dropout": 0.3}
    whole = task_config("classify", out=str(tmp_path / "whole"), **options, **FAST)
    train_task(whole, progress=False)
    split = task_config("classify", out=str(tmp_path / "split"), **options, **FAST)
    train_task(split, progress=False, stop_at_step=5)
    assert not (tmp_path / "split" / "metrics.json").exists()
    train_task(split, resume=True, progress=False)
    assert_same_weights(tmp_path / "whole", tmp_path / "split")
    log_a = (tmp_path / "whole" / "log.jsonl").read_text().splitlines()
    log_b = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    strip = lambda row: {k: v for k, v in json.loads(row).items() if "time" not in k}  # noqa: E731
    assert [strip(r)["val_loss"] for r in log_a] == [strip(r)["val_loss"] for r in log_b]


def test_run_directory_rules(tmp_path, data, capsys, one_thread):
    out = tmp_path / "run"
    args = ["train", "--task", "classify", "--data", str(data), "--out", str(out)]
    args += ["--max-steps", "2", "--backend", "native", "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    capsys.readouterr()
    # a resumed task run keeps its settings; the budget may grow
    assert main(["train", "--out", str(out), "--resume", "--max-steps", "4", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 4
    code = main(["train", "--out", str(out), "--resume", "--hidden-size", "8", "--quiet"])
    assert code == 2 and "a resumed run keeps its settings" in capsys.readouterr().err


def test_checkpoint_mismatch_is_a_clear_error(tmp_path, data, one_thread):
    out = tmp_path / "run"
    train_task(
        task_config("classify", data=str(data), out=str(out), max_steps=2, **FAST), progress=False
    )
    meta_path = out / "best" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["model"]["hidden_size"] = 7
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="the weights do not belong to this config"):
        load_task_checkpoint(out)
    (out / "best" / "task.json").write_text("{")
    with pytest.raises(ValueError, match=r"task\.json: task state is not valid JSON"):
        load_task_checkpoint(out)


def test_cli_dispatch_between_lm_and_task_checkpoints(tmp_path, data, capsys, one_thread):
    text = tmp_path / "text.txt"
    text.write_text("hello world, " * 200)
    lm = tmp_path / "lm"
    train(
        TrainConfig(data=str(text), out=str(lm), max_steps=2, hidden_size=16, seq_len=16, **FAST),
        progress=False,
    )
    code = main(["predict", "--checkpoint", str(lm), "--data", str(text)])
    assert (
        code == 2
        and "holds a language model; predict is for task models" in capsys.readouterr().err
    )
    assert main(["evaluate", "--checkpoint", str(lm), "--data", str(text)]) == 0
    assert "bpc" in json.loads(capsys.readouterr().out)  # the language model's evaluate
    code = main(["evaluate", "--checkpoint", str(lm), "--data", str(text), "--holdout", "3"])
    assert code == 2 and "does not apply to a language model" in capsys.readouterr().err


def test_help_lists_the_tasks(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--task {lm,classify,tag,seq2seq,forecast,condlm,transcribe}" in text and "--crf" in text
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "one line of space-separated tags per" in capsys.readouterr().out


def test_val_data_replaces_the_held_out_tail(tmp_path, data, one_thread):
    val = tmp_path / "val.tsv"
    val.write_text(lines(10))
    out = tmp_path / "run"
    config = task_config(
        "classify", data=str(data), val_data=str(val), out=str(out), max_steps=2, **FAST
    )
    metrics = train_task(config, progress=False)
    assert metrics["train_examples"] == 64 and metrics["val_examples"] == 10
    source = json.loads((out / "config.json").read_text())["data"]
    assert source["val_data"] == str(val)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_trains_under_bfloat16_autocast(task, tmp_path):
    """`--precision bfloat16` runs each task's training forward under autocast, whatever
    inputs it takes beside the tokens (classify's n-gram bags, tag's features, audio frames,
    conditions): steps are taken with a finite loss and none skipped, and the run evaluates."""
    data = write_sample(task, tmp_path / "data")
    config = task_config(
        task, data=str(data), out=str(tmp_path / "run"), hidden_size=8, batch_size=4,
        max_steps=3, threads=1, precision="bfloat16",
    )  # fmt: skip
    metrics = train(config, progress=False)
    assert metrics["precision"] == "bfloat16" and metrics["steps"] == 3
    assert metrics["skipped_steps"] == 0 and math.isfinite(metrics["train_loss"])
    assert math.isfinite(metrics["val_loss"])


def test_max_epochs_counts_passes_over_the_training_examples():
    """--max-epochs E is E passes of the batch source's steps (the last pass's batches
    rounded up), beside --max-steps and --max-time, whichever ends first; the default time
    budget still holds when neither of those is given."""
    config = TrainConfig(task="classify", max_epochs=2.5)
    assert config.budget() == (None, 300.0)  # no batch source to count in yet
    assert config.budget(steps_per_epoch=4) == (10, 300.0)
    capped = TrainConfig(task="classify", max_epochs=2.0, max_steps=7, max_time=50.0)
    assert capped.budget(steps_per_epoch=4) == (7, 50.0)
    assert capped.budget(steps_per_epoch=3) == (6, 50.0)
    assert EpochOrder(10, 4, seed=0).steps_per_epoch() == 3
    assert EpochOrder(12, 4, seed=0).steps_per_epoch() == 3


def test_a_run_of_max_epochs_ends_after_that_many_passes(tmp_path):
    """A classify run of --max-epochs 2 over 57 training examples in batches of 8 (8 steps a
    pass) stops at step 16, its cosine schedule ending there, however long --max-time is."""
    data = tmp_path / "d.tsv"
    data.write_text(lines(60))
    config = task_config(
        "classify", data=str(data), out=str(tmp_path / "run"), hidden_size=8, batch_size=8,
        max_epochs=2, max_time=600.0, eval_every=100, warmup_steps=2, **FAST,
    )  # fmt: skip
    metrics = train(config, progress=False)
    assert metrics["train_examples"] == 57 and metrics["steps"] == 16
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    last = [row for row in rows if row.get("step") == 16 and "lr" in row]
    assert last and last[-1]["lr"] < 0.05 * config.lr  # the schedule ended with the passes


def test_a_tasks_default_epoch_budget_gives_way_to_max_steps_not_to_max_time():
    """tag stops after its measured number of passes unless a step count is asked for: a
    long --max-time keeps the cap (it is there to stop short of overfitting)."""
    default = task_class("tag").defaults["max_epochs"]
    assert task_config("tag").max_epochs == default
    assert task_config("tag", max_time=600.0).max_epochs == default
    assert task_config("tag", max_steps=50).max_epochs is None
    assert task_config("tag", max_steps=50, max_epochs=3.0).max_epochs == 3.0
    assert task_config("classify").max_epochs is None
    # a given --max-epochs replaces a task's default step budget (forecast's 1,000 steps)
    assert task_config("forecast").max_steps == 1000
    assert task_config("forecast", max_epochs=50.0).max_steps is None


def test_a_resume_given_max_steps_trains_them_past_the_epoch_limit(tmp_path, capsys):
    """A tag run stopped by its default 7 passes, resumed with --max-steps, trains to that
    step (the steps asked for, as for a new run); resumed with --max-time alone it is done."""
    data = write_sample("tag", tmp_path / "data")
    out = tmp_path / "run"
    config = task_config(
        "tag", data=str(data), out=str(out), hidden_size=8, batch_size=8, max_time=120.0,
        eval_every=1000, **FAST,
    )  # fmt: skip
    first = train(config, progress=False)
    per_pass = -(-first["train_examples"] // 8)
    assert first["steps"] == 7 * per_pass
    args = ["train", "--out", str(out), "--resume", "--quiet"]
    assert main([*args, "--max-time", "240"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 7 * per_pass
    assert main([*args, "--max-steps", str(7 * per_pass + 3)]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 7 * per_pass + 3


def test_the_language_model_refuses_max_epochs(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the time machine " * 200)
    out = tmp_path / "run"
    args = ["train", "--data", str(text), "--out", str(out), "--max-epochs", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--max-epochs" in err and "--max-steps or --max-time" in err and err.count("\n") == 1
    assert not out.exists()
