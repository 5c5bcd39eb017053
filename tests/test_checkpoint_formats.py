"""Run directories and checkpoints written before one trainer ran every task still load for
generate, predict and evaluate, and say clearly that they cannot be resumed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.train import TrainConfig, load_checkpoint, train
from rnnkit.train.checkpoint import load_task_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = "the time machine said the traveller\nand the time of the machine\n" * 60


def legacy_lm_run(tmp_path: Path) -> Path:
    """A word-model run as rnnkit's earlier language-model trainer wrote it: format
    rnnkit.language_model v1, vocab.json beside the weights, the train config flat (the task
    settings at the top level), the model config with its init keys, no task.json."""
    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "new"
    config = TrainConfig(
        data=str(data),
        out=str(out),
        tokens="word",
        hidden_size=16,
        embedding_dim=8,
        seq_len=8,
        batch_size=4,
        max_steps=3,
        threads=1,
    )
    train(config, progress=False)
    old = tmp_path / "old"
    shutil.copytree(out, old)
    flat = {
        k: v
        for k, v in config.to_dict().items()
        if k
        not in ("options", "log_every", "clip_value", "input_init", "chrono_tmax", "nonlinearity")
    }
    flat.update(config.options, window=12, pooling="max", crf=False, attention="bahdanau")
    for directory in (old / "best", old / "latest"):
        meta = json.loads((directory / "checkpoint.json").read_text())
        model = {**meta["model"], "recurrent_init": "orthogonal", "forget_bias": -1.0}
        del model["nonlinearity"]
        legacy = {
            "format": "rnnkit.language_model",
            "version": 1,
            "step": meta["step"],
            "val_loss": 1.0,
            "tokens": "word",
            "model": model,
            "train": flat,
        }
        (directory / "checkpoint.json").write_text(json.dumps(legacy))
        (directory / "task.json").unlink()
    run = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(
        json.dumps(
            {"format": "rnnkit.run", "train": flat, "model": run["model"], "data": run["data"]}
        )
    )
    (old / "task.json").unlink()
    return old


def test_an_earlier_language_model_run_loads_and_refuses_resume(tmp_path, capsys):
    old = legacy_lm_run(tmp_path)
    _, _, tokenizer, config = load_checkpoint(old)
    assert tokenizer.kind == "word" and config.seq_len == 8
    assert load_task_checkpoint(old).task.boundaries == "none"  # it was trained unframed
    assert main(["generate", "--checkpoint", str(old), "--length", "5", "--seed", "0"]) == 0
    assert capsys.readouterr().out.strip()
    text = tmp_path / "text.txt"
    assert main(["evaluate", "--checkpoint", str(old), "--data", str(text)]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] > 0
    before = {p: p.read_bytes() for p in old.rglob("*") if p.is_file()}
    assert main(["train", "--out", str(old), "--resume", "--max-steps", "6"]) == 2
    err = capsys.readouterr().err
    assert "run format version 1" in err and "start a new run" in err
    assert {p: p.read_bytes() for p in old.rglob("*") if p.is_file()} == before


def test_a_task_setting_a_saved_run_lacks_reads_as_what_the_run_did():
    """A task setting added after runs were saved reads, in a stored config without it, as its
    `saved_before` value (the behaviour of those runs), never as today's default; a stored
    value is kept. Every `saved_before` is a value the setting takes."""
    from rnnkit._checks import UNSET
    from rnnkit.tasks.base import TASKS, task_class

    older = TrainConfig.from_dict({"task": "classify", "options": {"pooling": "mean"}})
    assert older.ngram_combination == "sum" and older.ngram_scaling == "none"
    assert older.ngram_buckets == 0 and older.pooling == "mean"
    assert TrainConfig(task="classify").ngram_combination == "product"  # a new run: the default
    kept = TrainConfig.from_dict({"task": "classify", "options": {"ngram_scaling": "nb"}})
    assert kept.ngram_scaling == "nb"
    marked = 0
    for task in TASKS:
        for option in task_class(task).own_options:
            if option.saved_before is not UNSET:
                option.check(option.saved_before)
                marked += 1
    assert marked >= 5


def test_a_classify_run_saved_before_the_combination_setting_resumes_as_it_was(tmp_path, capsys):
    """A classify run whose config.json, checkpoints and task state predate the n-gram
    path's scaling and its combination with the recurrent path (both then absent: the old
    unscaled sum) resumes training that sum, and says so in its config.json; the new
    defaults (product, NB-scaled) would build another model on the same weights."""
    from samples import write_sample

    data = write_sample("classify", tmp_path / "data")
    out = tmp_path / "run"
    settings = {"hidden_size": 12, "embedding_dim": 8, "batch_size": 8, "threads": 1}
    config = TrainConfig(
        task="classify", data=str(data), out=str(out), max_steps=3, **settings,
        ngram_combination="sum", ngram_scaling="none",
    )  # fmt: skip
    train(config, progress=False)
    run = json.loads((out / "config.json").read_text())
    for name in ("ngram_combination", "ngram_weight", "ngram_scaling"):
        del run["train"]["options"][name]
    (out / "config.json").write_text(json.dumps(run))
    for directory in (out / "best", out / "latest"):
        meta = json.loads((directory / "checkpoint.json").read_text())
        for name in ("ngram_combination", "ngram_weight", "ngram_ratios"):
            del meta["model"][name]
        for name in ("ngram_combination", "ngram_weight", "ngram_scaling"):
            del meta["train"]["options"][name]
        (directory / "checkpoint.json").write_text(json.dumps(meta))
    assert main(["train", "--out", str(out), "--resume", "--max-steps", "6", "--quiet"]) == 0
    options = json.loads((out / "config.json").read_text())["train"]["options"]
    assert options["ngram_combination"] == "sum" and options["ngram_scaling"] == "none"
    resumed = load_task_checkpoint(out / "latest")
    assert resumed.meta["step"] == 6
    assert resumed.model.config.ngram_combination == "sum"
    assert not resumed.model.config.ngram_ratios
