"""`rnnkit export` of task models: a whole-sequence ONNX graph whose onnxruntime outputs match
the PyTorch model on inputs other than the ones exported with (other batch sizes and lengths),
for every exportable task; the CRF's scores in model.json decode as the model does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.export.onnx_task import EXPORTABLE_TASKS, run_graph
from rnnkit.tasks.base import TASKS
from rnnkit.train import load_task_checkpoint, task_config, train
from samples import write_sample

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_thread")

TAG_INPUTS = ("chars", "char_lengths", "feature_ids", "feature_offsets")  # after ids, lengths
SETTINGS = {"hidden_size": 12, "batch_size": 8, "max_steps": 15, "threads": 1}
TEXT = {"embedding_dim": 8}
VARIANTS = [
    ("classify", TEXT),
    ("classify", {**TEXT, "ngram_buckets": 0, "pooling": "last", "cell": "gru"}),
    ("classify", {**TEXT, "ngram_combination": "sum", "ngram_scaling": "none"}),
    ("tag", TEXT),
    ("tag", {**TEXT, "crf": False, "char_features": False, "num_layers": 2}),
    ("tag", {**TEXT, "feature_buckets": 0}),
    ("tag", {**TEXT, "feature_scaling": "nb"}),
    ("transcribe", {}),
    ("forecast", {"window": 6}),
    ("condlm", TEXT),
    ("condlm", {**TEXT, "cell": "gru", "condition_at": "state", "num_layers": 2}),
    # cells torch has no kernel for: their sweeps exported as rnnkit::sweep Scans
    ("classify", {**TEXT, "cell": "lnlstm", "pooling": "last"}),
    ("tag", {**TEXT, "cell": "indrnn", "num_layers": 2}),
    ("transcribe", {"cell": "lngru"}),
    ("condlm", {**TEXT, "cell": "mingru"}),
    ("forecast", {"window": 6, "cell": "jordan"}),
]


def trained(name: str, settings: dict, tmp_path):
    data = write_sample(name, tmp_path / "data")
    out = tmp_path / "run"
    train(task_config(name, data=str(data), out=str(out), **SETTINGS, **settings), progress=False)
    return data, out


def new_batch(name: str, task, data):
    """Encoded examples unlike the export's example input: 5 of them, of mixed lengths."""
    examples = task.read_examples(data)
    picked = [examples[i % len(examples)] for i in (1, 4, 9, 16, 23)]
    return task.collate([task.encode(e) for e in picked])


def torch_outputs(name: str, model, t: dict) -> list[np.ndarray]:
    with torch.no_grad():
        if name == "classify":
            bag = (
                (t["ngram_ids"], t["ngram_offsets"], t["ngram_weights"])
                if "ngram_ids" in t
                else None
            )
            return [model(t["inputs"], t["lengths"], bag).numpy()]
        if name == "tag":
            given = [t.get(k) for k in TAG_INPUTS]
            return [model(t["ids"], t["lengths"], *given).numpy()]
        if name == "transcribe":
            log_probs, lengths = model(t["features"], t["lengths"])
            return [log_probs.numpy(), lengths.numpy()]
        if name == "condlm":
            return [model(t["x"], t["condition"])[0].numpy()]
        return [model(t["inputs"]).numpy()]


def graph_inputs(name: str, t: dict) -> dict:
    if name == "classify":
        return {"ids": t["inputs"], **t}
    if name == "forecast":
        return {"windows": t["inputs"]}
    if name == "condlm":
        return {"ids": t["x"], "condition": t["condition"]}
    return t


@pytest.mark.parametrize(("name", "settings"), VARIANTS)
def test_the_exported_graph_matches_the_model_on_new_inputs(name, settings, tmp_path, capsys):
    data, out = trained(name, settings, tmp_path)
    onnx_file = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(out), "--out", str(onnx_file)]) == 0
    assert f"({name}: " in capsys.readouterr().out
    description = json.loads(onnx_file.with_suffix(".json").read_text())
    assert description["task"] == name and description["format"] == "rnnkit.onnx_task"
    loaded = load_task_checkpoint(out)
    model = loaded.model.float().eval()
    batch = new_batch(name, loaded.task, data)
    expected = torch_outputs(name, model, batch.tensors)
    got = run_graph(onnx_file, graph_inputs(name, batch.tensors))
    assert len(got) == len(expected) == len(description["outputs"])
    for want, have in zip(expected, got, strict=True):
        assert want.shape == have.shape
        # padded steps are compared too: the graph zeroes them as packing does
        np.testing.assert_allclose(have, want, atol=1e-4, rtol=1e-4)


def viterbi(emissions: np.ndarray, start, end, transitions) -> list[int]:
    """The best tag path of one sentence's (T, K) emissions under the exported CRF scores."""
    score = np.asarray(start) + emissions[0]
    back = []
    for row in emissions[1:]:
        total = score[:, None] + np.asarray(transitions) + row[None, :]
        back.append(total.argmax(0))
        score = total.max(0)
    best = [int((score + np.asarray(end)).argmax())]
    for pointers in reversed(back):
        best.append(int(pointers[best[-1]]))
    return best[::-1]


def test_a_crf_taggers_scores_decode_like_the_model(tmp_path):
    data, out = trained("tag", TEXT, tmp_path)
    onnx_file = tmp_path / "ner.onnx"
    assert main(["export", "--checkpoint", str(out), "--out", str(onnx_file)]) == 0
    description = json.loads(onnx_file.with_suffix(".json").read_text())
    crf = description["crf"]
    loaded = load_task_checkpoint(out)
    batch = new_batch("tag", loaded.task, data)
    (emissions,) = run_graph(onnx_file, batch.tensors)
    model = loaded.model.float().eval()
    with torch.no_grad():
        t = batch.tensors
        expected = model.decode(
            model(t["ids"], t["lengths"], *(t[k] for k in TAG_INPUTS)), t["lengths"]
        )
    for b, n in enumerate(batch.tensors["lengths"].tolist()):
        path = viterbi(emissions[b, :n], crf["start"], crf["end"], crf["transitions"])
        assert path == expected[b]
    assert [description["tags"][i] for i in expected[0]]  # ids name the tags


@pytest.mark.parametrize(
    "settings",
    [TEXT, {**TEXT, "cell": "lstm", "num_layers": 2, "attention": "luong"}],
    ids=["gru-bahdanau", "lstm-2-layers-luong"],
)
def test_a_seq2seq_model_exports_its_encoder_and_a_decoder_step(settings, tmp_path):
    """The encoder graph gives the packed encoder's memory and states (ONNX's sequence_lens:
    the LSTM cell state of each source's own end); greedy decoding with the step graph gives
    rnnkit's greedy targets."""
    from rnnkit.models.seq2seq import greedy_decode

    data, out = trained("seq2seq", settings, tmp_path)
    onnx_file = tmp_path / "s2s.onnx"
    assert main(["export", "--checkpoint", str(out), "--out", str(onnx_file)]) == 0
    description = json.loads(onnx_file.with_suffix(".json").read_text())
    loaded = load_task_checkpoint(out)
    model = loaded.model.float().eval()
    t = new_batch("seq2seq", loaded.task, data).tensors
    encoded = run_graph(onnx_file, {"source": t["source"], "lengths": t["lengths"]})
    with torch.no_grad():
        memory, state = model.encode(t["source"], t["lengths"])
    states = state if isinstance(state, tuple) else (state,)
    for have, want in zip(encoded, [*memory, *states], strict=True):
        np.testing.assert_allclose(have, want.numpy(), atol=1e-4, rtol=1e-4)
    values, keys, mask, *state = encoded
    step = onnx_file.with_name(description["decoder"])
    previous = torch.full((len(values), 1), description["bos"], dtype=torch.long)
    steps = []
    for _ in range(12):
        feeds = [previous, *map(torch.from_numpy, [*state, values, keys, mask])]
        named = dict(zip(description["decoder_inputs"], feeds, strict=True))
        logits, *state = run_graph(step, named)
        logits[:, description["never_generate"]] = -np.inf
        previous = torch.from_numpy(logits.argmax(-1)[:, None])
        steps.append(previous[:, 0].tolist())
    eos = description["eos"]
    rows = [list(row) for row in zip(*steps, strict=True)]
    got = [row[: row.index(eos)] if eos in row else row for row in rows]
    assert got == greedy_decode(model, t["source"], t["lengths"], 12)


def test_missing_and_corrupt_checkpoints_are_one_line_errors(tmp_path, capsys):
    assert set(EXPORTABLE_TASKS) <= set(TASKS)
    _, out = trained("tag", {**TEXT, "cell": "indrnn"}, tmp_path)
    missing = main(["export", "--checkpoint", str(tmp_path / "nope"), "--out", "m.onnx"])
    err = capsys.readouterr().err
    assert missing == 2 and err.count("\n") == 1 and "nope" in err
    (out / "best" / "weights.safetensors").write_bytes(b"not safetensors")
    corrupt = main(["export", "--checkpoint", str(out), "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert corrupt == 2 and err.count("\n") == 1
    assert not (tmp_path / "m.onnx").exists()


def classify_example():
    """examples/onnx_classify.py as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "onnx_classify.py"
    spec = importlib.util.spec_from_file_location("_example_onnx_classify", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def check_example_matches_rnnkit(out, onnx_file, texts) -> None:
    results = classify_example().classify(str(onnx_file), texts)
    loaded = load_task_checkpoint(out)
    task, model = loaded.task, loaded.model.float().eval()
    from rnnkit.tasks.classify import Example

    batch = task.collate([task.encode(Example(task._tokens(t, "text"), None)) for t in texts])
    (expected,) = torch_outputs("classify", model, batch.tensors)
    for (label, _, logits), want in zip(results, expected, strict=True):
        np.testing.assert_allclose(logits, want, atol=1e-4, rtol=1e-4)
        assert label == loaded.task.labels[int(want.argmax())]


def test_the_classify_example_rebuilds_the_inputs_from_model_json_alone(tmp_path):
    """examples/onnx_classify.py (standard library, numpy, onnxruntime; no rnnkit) follows
    model.json's preprocessing: its logits are rnnkit's on texts with punctuation, case and
    unseen words."""
    _, out = trained("classify", TEXT, tmp_path)
    onnx_file = tmp_path / "cls.onnx"
    assert main(["export", "--checkpoint", str(out), "--out", str(onnx_file)]) == 0
    texts = ["The good film, a fine plot!", "dull", "bad bad plot of the unseen-word film"]
    check_example_matches_rnnkit(out, onnx_file, texts)


CHINESE_REVIEWS = [  # with Chinese punctuation, which the tokenizer keeps as marks
    ("pos", "这部电影很好看，演员也很出色。"),  # noqa: RUF001
    ("neg", "剧情无聊，浪费了我两个小时。"),  # noqa: RUF001
    ("pos", "我爱北京天安门，风景太美了！"),  # noqa: RUF001
    ("neg", "服务态度很差，再也不来了。"),  # noqa: RUF001
] * 6


def chinese_classifier(tmp_path, **settings):
    data = tmp_path / "reviews.tsv"
    data.write_text("".join(f"{label}\t{text}\n" for label, text in CHINESE_REVIEWS), "utf-8")
    out = tmp_path / "run"
    config = task_config("classify", data=str(data), out=str(out), **SETTINGS, **TEXT, **settings)
    train(config, progress=False)
    onnx_file = tmp_path / "cls.onnx"
    assert main(["export", "--checkpoint", str(out), "--out", str(onnx_file)]) == 0
    return out, onnx_file


@pytest.mark.parametrize("segmenter", ["jieba", "char", "none"])
def test_the_classify_example_cuts_chinese_as_the_model_did(segmenter, tmp_path):
    """The example cuts a run of Chinese characters with the segmenter model.json names and
    spans the cuts with the character n-grams: its logits are rnnkit's on Chinese text, mixed
    with Latin words and unseen words."""
    out, onnx_file = chinese_classifier(tmp_path, segmenter=segmenter)
    assert load_task_checkpoint(out).task.segmenter == segmenter
    texts = ["这部电影很好看", "无聊的rnnkit电影，我不爱。", "北京's 天安门 OK", "从未见过的词语"]  # noqa: RUF001
    check_example_matches_rnnkit(out, onnx_file, texts)


def test_the_classify_example_refuses_chinese_without_jieba(tmp_path, monkeypatch):
    """A jieba model's text in Chinese is refused when jieba is missing, never cut otherwise;
    text without Chinese characters needs no segmenter."""
    import sys

    _, onnx_file = chinese_classifier(tmp_path, segmenter="jieba")
    example = classify_example()
    monkeypatch.setitem(sys.modules, "jieba", None)  # import jieba raises ImportError
    with pytest.raises(SystemExit, match="pip install jieba"):
        example.classify(str(onnx_file), ["这部电影很好看"])
    assert len(example.classify(str(onnx_file), ["a film"])) == 1


def test_the_classify_example_refuses_a_model_json_that_does_not_say_how_it_cut(tmp_path):
    """A model.json of an older export, which names its segmenter but not the Han-run pattern,
    or has n-grams without saying whether their chunks join Han runs, is refused with one line
    that says to export again, never guessed."""
    import json

    _, onnx_file = chinese_classifier(tmp_path, segmenter="jieba")
    description_file = onnx_file.with_suffix(".json")
    current = json.loads(description_file.read_text(encoding="utf-8"))
    example = classify_example()
    assert len(example.classify(str(onnx_file), ["这部电影很好看"])) == 1
    for section, key in (((), "han_run"), (("ngrams",), "han_runs")):
        older = json.loads(json.dumps(current))
        spec = older["preprocessing"]
        for name in section:
            spec = spec[name]
        del spec[key]
        description_file.write_text(json.dumps(older), encoding="utf-8")
        with pytest.raises(SystemExit, match="export the model again with `rnnkit export`"):
            example.classify(str(onnx_file), ["这部电影很好看"])
