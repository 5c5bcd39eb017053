"""rnnkit export: a language model as an ONNX step graph that onnxruntime runs, with dynamic
batch and time, whose greedy text is `rnnkit generate --greedy`'s; bad input in one line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from rnnkit.cells import CELLS
from rnnkit.cli import main
from rnnkit.generate import generate
from rnnkit.train import load_task_checkpoint

TEXT = "the time traveller said the machine was ready and the time was now\n" * 60
TINY = ["--hidden-size", "16", "--embedding-dim", "8", "--seq-len", "16", "--batch-size", "8"]


def _train(tmp_path: Path, name: str, *flags: str) -> Path:
    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = tmp_path / name
    argv = ["train", "--data", str(data), "--out", str(out), *TINY, "--max-steps", "30"]
    assert main([*argv, "--threads", "1", "--quiet", *flags]) == 0
    return out


def _example():
    path = Path(__file__).resolve().parents[1] / "examples" / "onnx_generate.py"
    spec = importlib.util.spec_from_file_location("_example_onnx_generate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cell", list(CELLS))
def test_an_exported_model_generates_what_rnnkit_generates(cell, tmp_path, capsys):
    """Every registered cell: lstm, gru and rnn through torch's exporter (their kernels), the
    others as ONNX Scans over their steps (rnnkit.export.onnx_layer)."""
    run = _train(tmp_path, "run", "--cell", cell, "--num-layers", "2")
    onnx = tmp_path / "lm.onnx"
    assert main(["export", "--checkpoint", str(run), "--out", str(onnx)]) == 0
    description = json.loads(onnx.with_suffix(".json").read_text())
    carried = load_task_checkpoint(run).model.layers.cell.num_carried
    assert description["state"] == ["h", "c"][: 1 + carried]
    loaded = load_task_checkpoint(run)
    model, vocab, tokenizer = loaded.model, loaded.task.vocab, loaded.task.tokenizer
    expected = str(generate(model, vocab, tokenizer, "the ", 60, greedy=True))
    assert _example().generate(str(onnx), "the ", 60) == expected

    # logits of several sequences of another length than exported, state carried in
    session = onnxruntime.InferenceSession(str(onnx))
    ids = torch.randint(4, len(vocab), (3, 7))
    state = model.begin_state(3)
    states = state if isinstance(state, tuple) else (state,)
    states = tuple(torch.randn_like(s) for s in states)
    feed = {
        "ids": ids.numpy(),
        **{n: s.numpy() for n, s in zip(description["state"], states, strict=True)},
    }
    logits, *new = session.run(None, feed)
    with torch.no_grad():
        want, want_state = model(ids, states if len(states) > 1 else states[0])
    torch.testing.assert_close(torch.from_numpy(logits), want[:, -1], rtol=1e-4, atol=1e-4)
    want_state = want_state if isinstance(want_state, tuple) else (want_state,)
    for got, expect in zip(new, want_state, strict=True):
        np.testing.assert_allclose(got, expect.numpy(), rtol=1e-4, atol=1e-4)


def _one_line_error(argv, capsys, *pieces):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnkit export: error:"), err
    for piece in pieces:
        assert piece in err, err


def test_bad_exports_are_one_line_and_write_nothing(tmp_path, capsys):
    onnx = tmp_path / "x.onnx"
    export = ["export", "--out", str(onnx), "--checkpoint"]
    _one_line_error([*export, str(tmp_path / "missing")], capsys, "does not exist")
    run = _train(tmp_path, "lstm")
    weights = run / "best" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _one_line_error([*export, str(run)], capsys)
    _one_line_error(["export", "--out", str(tmp_path / "x.txt"), "--checkpoint", str(run)], capsys)
    assert not list(tmp_path.glob("x.*"))


def test_the_language_model_exporter_names_the_one_for_a_task_run(tmp_path):
    """rnnkit export writes task models too (tests/test_export_tasks.py); the language-model
    function given a task run says which to call."""
    from rnnkit.export import export_language_model

    data = tmp_path / "data.tsv"
    data.write_text("".join(f"{'ab'[i % 2]}\tword {i % 7} here\n" for i in range(40)))
    run = tmp_path / "run"
    argv = ["train", "--task", "classify", "--data", str(data), "--out", str(run)]
    assert main([*argv, "--max-steps", "3", "--quiet"]) == 0
    onnx = tmp_path / "x.onnx"
    with pytest.raises(ValueError, match="is a classify run, not a language model: export it"):
        export_language_model(run, onnx)
    assert not onnx.exists()
