"""A training session as a user sees it in a terminal: the progress bar on a terminal that
reports no size, Ctrl-C that saves latest/ so that --resume continues, a second Ctrl-C."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnkit.train.interrupt import StopRequest

TEXT = "the time traveller said the machine was ready and the time was now\n" * 60
TINY = ["--hidden-size", "16", "--embedding-dim", "8", "--seq-len", "16", "--batch-size", "4"]
TINY += ["--threads", "1", "--warmup-steps", "5"]


def command(tmp_path: Path, *flags: str) -> list[str]:
    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    return [sys.executable, "-m", "rnnkit", "train", "--data", str(data), *TINY, *flags]


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def test_the_progress_bar_shows_on_a_terminal_without_a_size(tmp_path):
    """A pty that reports 0 x 0 (script, docker exec) once made tqdm hide the bar."""
    leader, follower = pty.openpty()
    argv = command(tmp_path, "--out", str(tmp_path / "run"), "--max-steps", "40")
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    shown = read_all(leader)
    assert process.wait(timeout=120) == 0
    os.close(leader)
    assert "40/40" in shown and "loss" in shown and "|g|" in shown and "clipped" in shown


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_latest_and_resume_continues(signum, tmp_path):
    """Ctrl-C, and SIGTERM (what a scheduler and torchrun send), save latest/ at the step."""
    out = tmp_path / "run"
    argv = command(tmp_path, "--out", str(out), "--max-time", "120", "--log-every", "5")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "log.jsonl").is_file() or not (out / "log.jsonl").read_text().strip():
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert "interrupted at step" in line and "continue with --resume" in line
    step = int(line.split("interrupted at step ")[1].split(";")[0])
    saved = json.loads((out / "latest" / "checkpoint.json").read_text())
    assert saved["step"] == step > 0
    assert not (out / "metrics.json").exists()
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnkit",
            "train",
            "--out",
            str(out),
            "--resume",
            "--quiet",
            "--max-steps",
            str(step + 3),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == step + 3


def test_a_second_ctrl_c_stops_at_once():
    before = signal.getsignal(signal.SIGINT)  # torch's default, or ignored under nohup
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # the first: a request the loop reads
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the second: out now
    assert signal.getsignal(signal.SIGINT) is before
    terminate = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested
    assert signal.getsignal(signal.SIGTERM) is terminate
