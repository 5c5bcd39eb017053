"""`rnnkit train / evaluate / generate`: help, outputs, one-line errors (exit 2), refusing to
overwrite a run, and exact resume after SIGKILL.

Most cases call `rnnkit.cli.main(argv)` in-process; a few run the real command as a subprocess
to check exit codes, the absence of tracebacks and a kill -9 in the middle of training.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resumed_runs import assert_same_weights
from rnnkit.cli import main, task_settings
from rnnkit.tasks.base import TASKS
from rnnkit.train.config import run_options

TINY_OPTIONS = {"hidden-size": 16, "embedding-dim": 8, "seq-len": 16, "batch-size": 4}
TINY_OPTIONS.update({"warmup-steps": 5, "threads": 1})
TINY = [*(f"--{k}={v}" for k, v in TINY_OPTIONS.items()), "--quiet"]


# every test here runs its tiny models on one thread (fixture in conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def prose(n_words: int = 1200, seed: int = 0) -> str:
    words = ["the", "a", "time", "machine", "traveller", "said", "and", "of", "to", "in"]
    rng = random.Random(seed)
    return " ".join(rng.choice(words) + ("\n" if i % 12 == 11 else "") for i in range(n_words))


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `rnnkit ARGV` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def assert_one_line_error(code: int, err: str, command: str, pattern: str = "") -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"rnnkit {command}: error: "), err
    if pattern:
        assert pattern in lines[0], err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished tiny character run (module-wide: several tests read it)."""
    tmp = tmp_path_factory.mktemp("cli_run")
    data = tmp / "text.txt"
    data.write_text(prose(), encoding="utf-8")
    threads = torch.get_num_threads()
    try:
        code = main(
            [
                "train",
                "--data",
                str(data),
                "--out",
                str(tmp / "run"),
                "--max-steps",
                "30",
                "--eval-every",
                "10",
                *TINY,
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return tmp / "run"


# ---------------------------------------------------------------- help


def test_train_help_lists_every_option_with_its_default(capsys):
    code, out, _ = cli(["train", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    options = [o for o, _ in run_options()] + [o for o, _ in task_settings().values()]
    for option in options:
        assert option.flag in flat, option.flag
        if option.default is not None and option.kind is not bool:
            assert f"(default: {option.default})" in flat, option.flag
    for words in ("--resume", "--force", "evaluation and checkpointing excluded", "300"):
        assert words in flat
    # every task's own settings under the task's heading
    for task in ("lm", "classify", "tag", "seq2seq", "forecast", "condlm", "transcribe"):
        assert f"--task {task}" in out


@pytest.mark.parametrize("task", TASKS)
def test_train_help_with_a_task_shows_that_tasks_defaults(task, capsys):
    """`rnnkit train --task X --help` shows X's own defaults of the run-wide settings (tag's
    batch of 16, not the language model's 32), every other run-wide default as it is."""
    from rnnkit.tasks.base import task_class

    code, out, _ = cli(["train", "--task", task, "--help"], capsys)
    assert code == 0
    defaults = task_class(task).defaults
    for option, _ in run_options():
        default = defaults.get(option.name, option.default)
        if default is not None and option.kind is not bool:
            assert f"(default: {default})" in option_help(out, option.flag), option.flag
    if task == "tag":
        assert "(default: 16)" in option_help(out, "--batch-size")
        assert f"(default: {defaults['max_epochs']})" in option_help(out, "--max-epochs")
    assert cli(["train", f"--task={task}", "--help"], capsys)[1] == out


def option_help(out: str, flag: str) -> str:
    """The help of one flag in argparse's output: its line and the indented ones below it."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {flag} "))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    "):  # the next flag (two spaces), a heading or a gap
            break
        block.append(line)
    return " ".join(" ".join(block).split())


@pytest.mark.parametrize("command", ["evaluate", "generate", "bench"])
def test_every_subcommand_has_help(command, capsys):
    code, out, _ = cli([command, "--help"], capsys)
    assert code == 0 and "--" in out


# ---------------------------------------------------------------- train outputs


def test_train_writes_the_run(run_dir, capsys):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in (
        "val_loss",
        "train_loss",
        "bpc",
        "perplexity",
        "tokens_per_s",
        "steps",
        "wall_time",
        "train_time",
    ):
        assert key in metrics
    assert metrics["steps"] == 30
    assert metrics["val_loss"] < math.log(metrics["vocab_size"])
    assert (run_dir / "best" / "weights.safetensors").is_file()


def test_train_on_the_builtin_corpus(tmp_path, capsys):
    out = tmp_path / "pydoc"
    code, stdout, err = cli(
        ["train", "--out", str(out), "--max-steps", "40", "--eval-every", "1000", *TINY], capsys
    )
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics == json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["data"] == "builtin:pydoc_topics"
    assert config["data"]["characters"] > 400_000
    assert metrics["val_loss"] < math.log(metrics["vocab_size"]) - 0.5


# ---------------------------------------------------------------- evaluate and generate


def test_evaluate_prints_json(run_dir, tmp_path, capsys):
    data = tmp_path / "other.txt"
    data.write_text(prose(300, seed=3), encoding="utf-8")
    code, out, err = cli(["evaluate", "--checkpoint", str(run_dir), "--data", str(data)], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert {"loss", "bpc", "perplexity", "tokens"} <= set(result)
    assert result["tokens"] == len(data.read_text(encoding="utf-8")) - 1
    assert result["bpc"] == pytest.approx(result["loss"] / math.log(2))
    assert 0 < result["loss"] < 4


def test_generate_prints_text(run_dir, capsys):
    base = ["generate", "--checkpoint", str(run_dir), "--prefix", "the time", "--length", "30"]
    code, out, err = cli([*base, "--seed", "1"], capsys)
    assert code == 0, err
    assert out.startswith("the time") and len(out) == len("the time") + 30 + 1  # + print's \n
    assert cli([*base, "--seed", "1"], capsys)[1] == out  # a seed fixes the sample
    greedy = cli([*base, "--greedy"], capsys)[1]
    assert cli([*base, "--greedy"], capsys)[1] == greedy
    code, out, err = cli(
        [*base, "--beam-size", "3", "--checkpoint", str(run_dir / "latest")], capsys
    )
    assert code == 0 and out.startswith("the time"), err


# ---------------------------------------------------------------- bad input: exit 2, one line


def bad_data(tmp_path: Path, kind: str) -> str:
    path = tmp_path / f"{kind}.txt"
    if kind == "missing":
        return str(path)
    if kind == "directory":
        return str(tmp_path)
    content = {
        "empty": b"",
        "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20,
        "latin1": "caf\xe9 cr\xe8me ".encode("latin-1") * 50,
        "short": b"hello world " * 5,
    }[kind]
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "does not exist"),
        ("directory", "is a directory"),
        ("empty", "is empty"),
        ("binary", "looks binary"),
        ("latin1", "--encoding"),
        ("short", "--batch-size 4 --seq-len 16 need at least 65"),
    ],
)
def test_bad_data(kind, message, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = cli(
        ["train", "--data", bad_data(tmp_path, kind), "--out", str(out), *TINY], capsys
    )
    assert_one_line_error(code, err, "train", message)
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hidden-size", "0"], "--hidden-size (hidden_size) must be an integer >= 1; got 0"),
        (["--lr", "-0.1"], "--lr (lr) must be a number > 0; got -0.1"),
        (["--val-fraction", "0"], "--val-fraction (val_fraction) must be a fraction"),
        (["--val-fraction", "1.5"], "must be a fraction in (0, 1); got 1.5"),
        (["--batch-size", "0"], "--batch-size (batch_size) must be an integer >= 1; got 0"),
        (["--cell", "transformer"], "argument --cell: invalid choice: 'transformer'"),
        (["--hidden-size", "many"], "argument --hidden-size: invalid int value: 'many'"),
        (["--max-time", "0"], "--max-time (max_time) must be a number > 0"),
        (["--beta2", "1"], "--beta2 (beta2) must be a number in [0, 1); got 1.0"),
        (["--beta1", "-0.1"], "--beta1 (beta1) must be a number in [0, 1); got -0.1"),
        (["--dropout", "1"], "--dropout (dropout) must be a probability in [0, 1); got 1.0"),
        (["--precision", "half"], "argument --precision: invalid choice: 'half'"),
        (["--schedule", "step"], "argument --schedule: invalid choice: 'step'"),
        (["--tokens", "word", "--segmenter", "jeiba"], "--segmenter: invalid choice: 'jeiba'"),
        (["--tie-weights"], "--tie-weights needs --embedding-dim equal to --hidden-size"),
        (["--resume", "--force"], "exclude each other"),
        (["--resume"], "holds no run to resume"),
    ],
)
def test_bad_options(flags, message, tmp_path, capsys):
    data = tmp_path / "text.txt"
    data.write_text(prose(300), encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), *TINY, *flags]
    code, _, err = cli(argv, capsys)
    assert_one_line_error(code, err, "train", message)
    assert not out.exists()


def test_missing_out_is_an_error(capsys):
    code, _, err = cli(["train", "--max-steps", "1"], capsys)
    assert_one_line_error(code, err, "train", "the following arguments are required: --out")


def damaged_copy(run_dir: Path, tmp_path: Path, damage: str) -> Path:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in (run_dir / "best").iterdir():
        (ckpt / f.name).write_bytes(f.read_bytes())
    if damage == "truncated":
        weights = (ckpt / "weights.safetensors").read_bytes()
        (ckpt / "weights.safetensors").write_bytes(weights[:100])
    elif damage == "json":
        (ckpt / "checkpoint.json").write_text("{not json")
    elif damage == "vocab":
        stored = json.loads((ckpt / "task.json").read_text())
        stored["state"]["vocab"] = {"tokens": 3}
        (ckpt / "task.json").write_text(json.dumps(stored))
    elif damage == "mismatched":
        meta = json.loads((ckpt / "checkpoint.json").read_text())
        meta["model"]["hidden_size"] = 128  # the weights are 16 wide
        (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    elif damage == "no-weights":
        (ckpt / "weights.safetensors").unlink()
    return ckpt


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncated", "not a readable safetensors file"),
        ("json", "checkpoint.json: checkpoint description is not valid JSON"),
        ("vocab", "task.json is damaged"),
        ("mismatched", "the weights do not belong to this config"),
        ("no-weights", "weights.safetensors is missing"),
    ],
)
@pytest.mark.parametrize("command", ["evaluate", "generate"])
def test_damaged_checkpoint(command, damage, message, run_dir, tmp_path, capsys):
    ckpt = damaged_copy(run_dir, tmp_path, damage)
    data = tmp_path / "text.txt"
    data.write_text(prose(100), encoding="utf-8")
    argv = [command, "--checkpoint", str(ckpt)]
    if command == "evaluate":
        argv += ["--data", str(data)]
    code, _, err = cli(argv, capsys)
    assert_one_line_error(code, err, command, message)


@pytest.mark.parametrize("command", ["evaluate", "generate"])
def test_checkpoint_pointing_at_nothing(command, tmp_path, capsys):
    data = tmp_path / "text.txt"
    data.write_text("some text", encoding="utf-8")
    extra = ["--data", str(data)] if command == "evaluate" else []
    code, _, err = cli([command, "--checkpoint", str(tmp_path / "nope"), *extra], capsys)
    assert_one_line_error(code, err, command, "does not exist")
    code, _, err = cli([command, "--checkpoint", str(tmp_path), *extra], capsys)
    assert_one_line_error(code, err, command, "holds no checkpoint")


def test_evaluate_bad_data(run_dir, tmp_path, capsys):
    code, _, err = cli(
        ["evaluate", "--checkpoint", str(run_dir), "--data", str(tmp_path / "missing.txt")], capsys
    )
    assert_one_line_error(code, err, "evaluate", "does not exist")


def test_generate_bad_options(run_dir, capsys):
    code, _, err = cli(["generate", "--checkpoint", str(run_dir), "--temperature", "0"], capsys)
    assert_one_line_error(code, err, "generate", "temperature must be")


def test_existing_run_is_refused_untouched(run_dir, capsys):
    before = tree_digest(run_dir)
    code, _, err = cli(["train", "--out", str(run_dir), "--max-steps", "5", *TINY], capsys)
    assert_one_line_error(code, err, "train", "already holds a run; pass --resume")
    code, _, err = cli(["train", "--out", str(run_dir), "--force", "--hidden-size", "0"], capsys)
    assert_one_line_error(code, err, "train", "--hidden-size")
    code, _, err = cli(
        ["train", "--out", str(run_dir), "--resume", "--hidden-size", "32", "--quiet"], capsys
    )
    assert_one_line_error(code, err, "train", "--hidden-size is 32 but the run was started with 16")
    assert tree_digest(run_dir) == before


def test_real_command_exit_code_and_debug(tmp_path):
    """The installed entry point: exit 2 and one line; --debug shows the traceback."""
    command = [sys.executable, "-m", "rnnkit.cli", "train", f"--out={tmp_path / 'r'}"]
    command.append(f"--data={tmp_path / 'missing.txt'}")
    plain = subprocess.run(command, capture_output=True, text=True)
    assert_one_line_error(plain.returncode, plain.stderr, "train", "does not exist")
    debug = subprocess.run([*command, "--debug"], capture_output=True, text=True)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "does not exist" in debug.stderr


# ---------------------------------------------------------------- SIGKILL and --resume


def latest_step(run: Path) -> int:
    try:
        return json.loads((run / "latest" / "checkpoint.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    data = tmp_path / "text.txt"
    data.write_text(prose(3000), encoding="utf-8")
    steps = 300
    args = [f"--data={data}", f"--max-steps={steps}", "--save-every=10", "--eval-every=100"]
    args += ["--dropout=0.1", "--num-layers=2", *TINY]
    command = [sys.executable, "-m", "rnnkit.cli", "train"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, "--out", str(killed), *args], env=env)
    try:
        deadline = time.monotonic() + 120
        while latest_step(killed) < 20:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint at step 20 within 2 minutes"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    stopped_at = latest_step(killed)
    assert 20 <= stopped_at < steps, stopped_at
    assert not (killed / "metrics.json").exists()

    resumed = subprocess.run(
        [*command, "--out", str(killed), "--resume", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr

    whole = tmp_path / "whole"
    done = subprocess.run(
        [*command, "--out", str(whole), *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr

    assert_same_weights(whole, killed)
    metrics_a = json.loads((whole / "metrics.json").read_text())
    metrics_b = json.loads((killed / "metrics.json").read_text())
    assert metrics_a["steps"] == metrics_b["steps"] == steps
    assert metrics_a["val_loss"] == metrics_b["val_loss"]


def test_ctrl_c_before_anything_is_saved_says_so(tmp_path, capsys, monkeypatch):
    """Ctrl-C while the data is still being read leaves nothing to resume: the line says so,
    and points to --resume only when the run directory holds a save."""
    import rnnkit.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rnnkit.train, "train", interrupted)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--max-steps", "3"]) == 130
    said = capsys.readouterr().err.strip()
    assert said == "rnnkit train: interrupted; nothing was saved yet: start it again"
    (out / "latest").mkdir(parents=True)
    assert main(["train", "--out", str(out), "--max-steps", "3"]) == 130
    assert "continue with --resume from the last save" in capsys.readouterr().err


def test_a_reader_that_stops_early_is_not_an_error(capsys, monkeypatch):
    """`rnnkit predict ... | head -3`: the closed pipe ends the command quietly (141, the code
    of SIGPIPE), not with "error: [Errno 32] Broken pipe"."""
    from rnnkit import cli as cli_module

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli_module.COMMANDS, "predict", closed)
    assert main(["predict", "--checkpoint", "x", "--data", "y"]) == 141
    assert capsys.readouterr().err == ""


def test_a_missing_data_file_points_to_the_built_in_corpus_only_for_the_language_model(
    tmp_path, capsys
):
    missing = str(tmp_path / "missing.txt")
    assert main(["train", "--data", missing, "--out", str(tmp_path / "a")]) == 2
    assert "omit --data to train on the built-in corpus" in capsys.readouterr().err
    argv = ["train", "--task", "classify", "--data", missing, "--out", str(tmp_path / "b")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "missing.txt does not exist; check the path" in err and "built-in" not in err
