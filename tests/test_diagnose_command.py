"""`rnnkit diagnose` on language-model and task runs, its bad inputs, and `rnnkit experiment
long-range` on a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.diagnostics.long_range import TASKS, adding_batch, copy_batch

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--hidden-size", "16", "--embedding-dim", "8", "--seq-len", "16", "--batch-size", "4"]
TINY += ["--warmup-steps", "5", "--threads", "1", "--quiet"]
HOSTILE = "</script><script>document.title='x'</script><img src=x onerror=alert(1)>"


def cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code, err, pattern):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert pattern in lines[0], err


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("diagnose_lm")
    text = "the time machine said the traveller <to> & of in a time.\n" * 60
    (tmp / "text.txt").write_text(text, encoding="utf-8")
    out = tmp / "run"
    argv = ["train", "--data", str(tmp / "text.txt"), "--out", str(out), "--max-steps", "30"]
    argv += ["--num-layers", "2", *TINY]
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_diagnose_a_language_model_writes_every_output(lm_run, tmp_path, capsys):
    out = tmp_path / "diag"
    text = "the traveller said " + HOSTILE
    code, stdout, err = cli(["diagnose", str(lm_run), "--text", text, "--out", str(out)], capsys)
    assert code == 0, err
    for name in ("gradient_flow.png", "gates.png", "report.json", "explorer.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
        assert str(out / name) in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == len(text)
    flows = [report["gradient_flow"][k] for k in ("layer 0", "layer 1")]
    assert all(len(f) == len(text) for f in flows)
    assert {row["gate"] for row in report["gates"]["table"]} == {
        "input",
        "forget",
        "candidate",
        "output",
    }
    assert report["run"]["task"] == "lm"
    page = (out / "explorer.html").read_text()
    assert "<img" not in page and "</script><script>document" not in page
    # a second diagnose into the same folder needs --force, and keeps the first until then
    before = (out / "report.json").read_bytes()
    code, _, err = cli(["diagnose", str(lm_run), "--text", "the", "--out", str(out)], capsys)
    one_line_error(code, err, "--force")
    assert (out / "report.json").read_bytes() == before


def test_diagnose_a_task_run(tmp_path, capsys):
    lines = [f"{'pos' if i % 2 else 'neg'}\t{'good' if i % 2 else 'bad'} film" for i in range(60)]
    data = tmp_path / "train.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    argv = ["train", "--task", "classify", "--data", str(data), "--out", str(run)]
    argv += ["--max-steps", "10", "--hidden-size", "8", "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    out = tmp_path / "diag"
    argv = ["diagnose", str(run), "--text", "a good film indeed", "--out", str(out)]
    code, _, err = cli(argv, capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["task"] == "classify"
    assert report["steps"] == 4
    assert set(report["gradient_flow"]) >= {"layer 0", "layer 0 reverse"}
    assert "good " in (out / "explorer.html").read_text()


def test_diagnose_bad_inputs_get_one_line(lm_run, tmp_path, capsys):
    out = str(tmp_path / "d")
    code, _, err = cli(["diagnose", str(tmp_path), "--text", "the", "--out", out], capsys)
    one_line_error(code, err, str(tmp_path))
    code, _, err = cli(["diagnose", str(lm_run), "--text", "ZZZZ", "--out", out], capsys)
    one_line_error(code, err, "no token the model knows")
    code, _, err = cli(["diagnose", str(lm_run), "--data", "missing.txt", "--out", out], capsys)
    one_line_error(code, err, "no such file")
    code, _, err = cli(["diagnose", str(lm_run), "--text", "", "--out", out], capsys)
    one_line_error(code, err, "empty")
    code, _, err = cli(["diagnose", str(lm_run), "--out", out], capsys)
    assert code == 2 and "--text" in err
    assert not Path(out).exists()  # nothing was written for a refused call


def test_diagnose_help_is_complete(capsys):
    code, stdout, _ = cli(["diagnose", "--help"], capsys)
    assert code == 0
    for flag in ("--text", "--data", "--out", "--max-tokens", "--force", "explorer.html"):
        assert flag in stdout


def test_adding_and_copy_batches_hold_what_the_tasks_say():
    g = torch.Generator().manual_seed(0)
    x, target = adding_batch(5, 20, g)
    assert x.shape == (20, 5, 2) and target.shape == (5, 1)
    assert x[:, :, 1].sum(0).eq(2).all()  # two markers per sequence
    assert x[:10, :, 1].sum(0).eq(1).all()  # one in each half
    torch.testing.assert_close(target[:, 0], (x[:, :, 0] * x[:, :, 1]).sum(0))
    x, target = copy_batch(3, 15, g)
    assert x.shape == (35, 3, 10) and target.shape == (35, 3)
    symbols = x[:10].argmax(-1)
    torch.testing.assert_close(target[-10:], symbols)
    assert target[:-10].eq(8).all() and x[24].argmax(-1).eq(9).all()  # blanks, the delimiter
    assert TASKS["adding"].trivial == pytest.approx(1 / 6)


def test_the_long_range_experiment_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "lr"
    argv = ["experiment", "long-range", "--out", str(out), "--lengths", "6", "--cells"]
    argv += ["tanh,lstm", "--seconds", "0.5", "--hidden-size", "8"]
    code, stdout, err = cli(argv, capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert {(r["task"], r["cell"]) for r in results} == {
        (t, c) for t in ("adding", "copy") for c in ("tanh", "lstm")
    }
    for r in results:
        steps = 6 if r["task"] == "adding" else 26  # copy: 10 symbols, T blanks, 10 answers
        assert len(r["flow_at_init"]) == len(r["flow_trained"]) == steps
        assert r["train_steps"] >= 1
    table = (out / "table.md").read_text()
    assert "| adding | 6 | MSE | 0.167 |" in table and table in stdout
    assert (out / "long_range.png").is_file() and (out / "gradient_flow.png").is_file()
    code, _, err = cli(argv, capsys)
    one_line_error(code, err, "--force")
    code, _, err = cli([*argv[:-4], "--cells", "elman"], capsys)
    assert code == 2 and "tanh,irnn,lstm,gru" in err
