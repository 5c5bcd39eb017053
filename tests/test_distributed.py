"""Data-parallel training under torchrun with real gloo processes on this machine: a 2-process
run reproduces the 1-process run (the same seed, the global batch split across the ranks) for
the language model and every task, resumes under torchrun, writes the run directory from rank 0
alone, and stops in one line when a rank dies or the batch does not split."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks.base import TASKS, make_task
from rnnkit.train import config_for_resume, task_config
from rnnkit.train.distributed import World, check_batch_split, world_from_env
from rnnkit.train.trainer import train
from samples import write_sample

SMALL = {"hidden_size": 16, "batch_size": 8, "dropout": 0.0}
SMALL |= {"precision": "float32", "threads": 1, "warmup_steps": 2, "seed": 3}
# Settings that keep each task tiny (and free of random masks, which every rank draws anew).
TASK_SETTINGS = {
    "lm": {"seq_len": 12, "embedding_dim": 8},
    "classify": {"word_dropout": 0.0, "embedding_dim": 8},
    "tag": {"word_dropout": 0.0, "embedding_dim": 8},
    "seq2seq": {"embedding_dim": 8},
    "forecast": {"window": 8},
    "condlm": {"condition_dropout": 0.0, "embedding_dim": 8},
    "transcribe": {},
}


def launch(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """torchrun on this machine with 2 processes (--standalone: a free port)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 -m rnnkit ARGS`."""
    return launch(["-m", "rnnkit", *args])


def flags(settings: dict) -> list[str]:
    out = []
    for name, value in settings.items():
        out += [f"--{name.replace('_', '-')}", str(value)]
    return out


# ---------------------------------------------------------------- in one process


VARIANTS = [(name, {}) for name in TASKS] + [("tag", {"crf": False})]


@pytest.mark.parametrize(("task_name", "variant"), VARIANTS)
def test_the_shares_weights_give_the_global_batch_mean_loss(
    task_name, variant, tmp_path, one_thread
):
    """Each task's loss_weight is what its mean divides by: the weighted means of any split of
    a batch are the batch's mean, so the ranks' averaged gradients are one process's."""
    data = write_sample(task_name, tmp_path)
    settings = {**SMALL, **TASK_SETTINGS[task_name], **variant}
    config = task_config(task_name, data=str(data), **settings)
    task = make_task(config)
    loaded = task.load_data()
    task.fit(loaded.train)
    torch.manual_seed(0)
    model = task.build_model().double().eval()  # eval: no random masks in the comparison
    items = task.encoded(loaded, "train")[:7] if task_name != "lm" else None
    for world_size in (2, 3):
        if task_name == "lm":
            source = task.batch_source(loaded)
            whole = source.next_batch()
            shares = []
            for rank in range(world_size):
                sharded = task.batch_source(loaded)
                sharded.shard(World(rank, world_size, world_size))
                shares.append(sharded.next_batch())
        else:
            whole = task.collate(items)
            worlds = [World(rank, world_size, world_size) for rank in range(world_size)]
            shares = [task.collate(items[slice(*w.share(len(items)))]) for w in worlds]
        with torch.no_grad():
            expected = task.train_loss(model, whole, None)[0].item()
            weights = [task.loss_weight(b) for b in shares]
            losses = [task.train_loss(model, b, None)[0].item() for b in shares]
        combined = sum(w * v for w, v in zip(weights, losses, strict=True)) / sum(weights)
        # rel 1e-6: CTC computes in float32 whatever the model's dtype
        assert combined == pytest.approx(expected, rel=1e-6), world_size


def test_a_rank_left_without_examples_gets_a_stand_in_that_weighs_nothing(tmp_path):
    data = write_sample("classify", tmp_path)
    config = task_config("classify", data=str(data), **SMALL)
    task = make_task(config)
    loaded = task.load_data()
    task.fit(loaded.train)
    source = task.batch_source(loaded)
    source.order.position = len(loaded.train) - 1  # one example left in the epoch
    source.shard(World(1, 2, 2))
    batch = source.next_batch()
    assert batch.extra.get("stand_in") is True and batch.size == 1


def test_an_uneven_split_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    check_batch_split(8, World(0, 2, 2))
    with pytest.raises(ValueError, match=r"--batch-size 10 does not split evenly across 4"):
        check_batch_split(10, World(0, 4, 4))
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    data = write_sample("lm", tmp_path)
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--batch-size", "8"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--batch-size 8 does not split evenly across 3 processes" in err and "6 or 9" in err
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("RANK", "1")  # every rank raises it: rank 0 alone says it
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--batch-size", "8"])
    assert code == 2 and capsys.readouterr().err == ""


def test_the_world_comes_from_torchruns_variables():
    assert world_from_env({}) == World(0, 1, 1)
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}
    assert world_from_env(env) == World(3, 4, 2)
    with pytest.raises(ValueError, match="RANK=4, WORLD_SIZE=4"):
        world_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not a whole number"):
        world_from_env({"WORLD_SIZE": "two"})


# ---------------------------------------------------------------- real gloo processes


def settings_of(task_name: str, data: Path, out: Path, steps: int) -> dict:
    settings = {**SMALL, **TASK_SETTINGS[task_name], "max_steps": steps, "eval_every": steps}
    return {"task": task_name, "data": str(data), "out": str(out), **settings}


def one_process_run(task_name: str, data: Path, out: Path, steps: int) -> dict:
    settings = settings_of(task_name, data, out, steps)
    return train(task_config(settings.pop("task"), **settings), progress=False)


def test_two_processes_reproduce_one_for_every_task(tmp_path):
    """Every task, trained 12 steps by 2 gloo processes (one torchrun launch for all, from a
    script with its own process group) and by one process: the same held-out figures."""
    steps, runs, single = 12, {}, {}
    for name in TASKS:
        data = write_sample(name, tmp_path / "data" / name)
        single[name] = one_process_run(name, data, tmp_path / "one" / name, steps)
        runs[name] = settings_of(name, data, tmp_path / "two" / name, steps)
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    script = Path(__file__).with_name("distributed_runs.py")
    done = launch([str(script), str(tmp_path / "runs.json"), str(tmp_path / "results.json")])
    assert done.returncode == 0, done.stderr[-3000:]
    double = json.loads((tmp_path / "results.json").read_text())
    for name in TASKS:
        one, two = single[name], double[name]
        assert two["steps"] == one["steps"] == steps, name
        assert two["train_tokens"] == one["train_tokens"], name
        assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-5), name
        for metric in one["best"]:
            expected = pytest.approx(one["best"][metric], rel=1e-4, abs=1e-6)
            assert two["best"][metric] == expected, (name, metric)
        saved = json.loads((tmp_path / "two" / name / "metrics.json").read_text())
        assert saved["steps"] == steps, name


def test_resume_under_torchrun_continues_the_run_exactly(tmp_path):
    """The language model carries each rank's rows of state: latest/ gathers them, a resume
    splits them again, and the run ends where the same two sessions end in one process (the
    schedule follows the budget, so a longer budget changes the learning rates of both)."""
    data = write_sample("lm", tmp_path / "data")
    one_process_run("lm", data, tmp_path / "one", 7)
    longer = config_for_resume(str(tmp_path / "one"), {"max_steps": 16})
    single = train(longer, resume=True, progress=False)
    out = tmp_path / "two"
    base = ["train", "--data", str(data), "--out", str(out), "--eval-every", "16", "--quiet"]
    first = torchrun(*base, "--max-steps", "7", *flags({**SMALL, **TASK_SETTINGS["lm"]}))
    assert first.returncode == 0, first.stderr[-3000:]
    trainer_state = json.loads((out / "latest" / "trainer.json").read_text())
    assert trainer_state["world_size"] == 2 and trainer_state["clock"]["step"] == 7
    second = torchrun(*base, "--max-steps", "16", "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = json.loads(second.stdout)
    assert resumed["steps"] == 16
    assert resumed["val_loss"] == pytest.approx(single["val_loss"], rel=1e-5)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "val_loss" in row] == [7, 16]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_a_rank_that_dies_stops_the_run_and_latest_stays_whole(tmp_path):
    data = write_sample("lm", tmp_path / "data")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", "-m", "rnnkit", "train", "--data", str(data)]
    command += ["--out", str(out), "--max-steps", "100000", "--save-every", "5", "--quiet"]
    command += flags({**SMALL, **TASK_SETTINGS["lm"]})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "latest" / "trainer.json").exists():
            assert time.monotonic() < deadline and launcher.poll() is None
            time.sleep(0.2)
        ranks = _children(launcher.pid)
        assert len(ranks) == 2
        os.kill(ranks[-1], signal.SIGKILL)
        _, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    err = err.decode()
    assert "another rank stopped, so this one cannot go on" in err or "SIGKILL" in err, err
    step = json.loads((out / "latest" / "trainer.json").read_text())["clock"]["step"]
    assert step >= 5 and step % 5 == 0
    resumed = main(["train", "--out", str(out), "--resume", "--max-steps", str(step + 2)])
    assert resumed == 0


def test_a_two_process_run_resumes_in_one_process_and_says_so(tmp_path, capsys):
    """latest/ holds the whole run (every rank's rows of carried state): one process continues
    it with the same global batches, and the run says that the random draws start afresh."""
    data = write_sample("lm", tmp_path / "data")
    out = tmp_path / "two"
    base = ["train", "--data", str(data), "--out", str(out), "--eval-every", "16", "--quiet"]
    first = torchrun(*base, "--max-steps", "7", *flags({**SMALL, **TASK_SETTINGS["lm"]}))
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = train(config_for_resume(str(out), {"max_steps": 16}), resume=True, progress=True)
    assert resumed["steps"] == 16
    assert "resuming a run of 2 process(es) with 1" in capsys.readouterr().err
    one_process_run("lm", data, tmp_path / "one", 7)
    single = train(config_for_resume(str(tmp_path / "one"), {"max_steps": 16}), resume=True)
    assert resumed["val_loss"] == pytest.approx(single["val_loss"], rel=1e-5)
