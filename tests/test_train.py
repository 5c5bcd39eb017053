"""rnnkit.train: schedule, evaluation, the run directory, checkpoints and exact resume.

Tiny models (hidden 16, sequence 16, batch 4) on a few KB of text written to tmp_path.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnkit import _atomic as atomic
from rnnkit.data import CharTokenizer, Vocab, WordTokenizer, split_train_val
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.tasks.base import Batch
from rnnkit.tasks.lm import LanguageModelTask, planned_passes
from rnnkit.train import (
    LRSchedule,
    TrainConfig,
    evaluate_ids,
    evaluate_text,
    load_checkpoint,
    metrics,
    train,
    train_step,
)
from rnnkit.train.checkpoint import resolve_checkpoint

TINY = {
    "hidden_size": 16,
    "embedding_dim": 8,
    "seq_len": 16,
    "batch_size": 4,
    "warmup_steps": 5,
    "threads": 1,
}


# every test here runs its tiny models on one thread (fixture in conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def prose(n_words: int = 1500, seed: int = 0) -> str:
    """Seeded pseudo-English: learnable, not trivially periodic."""
    words = ["the", "a", "time", "machine", "traveller", "said", "and", "of", "to", "in"]
    rng = random.Random(seed)
    lines, line = [], []
    for i in range(n_words):
        line.append(rng.choice(words))
        if i % 12 == 11:
            lines.append(" ".join(line) + ".")
            line = []
    return "\n".join(lines) + "\n"


def write_text(tmp_path: Path, text: str, name: str = "text.txt") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def config(tmp_path: Path, out: str = "run", text: str | None = None, **changes) -> TrainConfig:
    data = write_text(tmp_path, text if text is not None else prose())
    settings = {**TINY, "data": data, "out": str(tmp_path / out), **changes}
    return TrainConfig(**settings)


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- schedule


def test_schedule_warms_up_then_decays_to_zero_over_steps():
    schedule = LRSchedule(1.0, warmup_steps=10, max_steps=110)
    rates = [schedule.lr(step, 0.0) for step in range(110)]
    assert rates[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert rates[10] == pytest.approx(1.0)
    assert rates[60] == pytest.approx(0.5)
    assert rates[-1] < 1e-3
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))


def test_schedule_by_time_and_constant():
    schedule = LRSchedule(2.0, warmup_steps=0, max_time=100.0)
    assert schedule.lr(0, 0.0) == pytest.approx(2.0)  # warm-up ended at progress 0
    assert schedule.lr(5, 50.0) == pytest.approx(1.0)  # halfway through the seconds
    assert schedule.lr(6, 100.0) == pytest.approx(0.0)
    both = LRSchedule(1.0, warmup_steps=0, max_steps=100, max_time=100.0)
    assert both.progress(10, 80.0) == pytest.approx(0.8)  # whichever budget is further along
    linear = LRSchedule(2.0, warmup_steps=10, kind="linear", max_steps=110)
    assert [linear.lr(s, 0.0) for s in (10, 35, 60, 85)] == pytest.approx([2.0, 1.5, 1.0, 0.5])
    assert linear.lr(110, 0.0) == 0.0
    constant = LRSchedule(3.0, warmup_steps=2, kind="constant", max_steps=10)
    assert [constant.lr(s, 0.0) for s in range(4)] == pytest.approx([1.5, 3.0, 3.0, 3.0])


# ---------------------------------------------------------------- evaluation


def char_model(vocab_size: int) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(
        LanguageModelConfig(vocab_size=vocab_size, embedding_dim=8, hidden_size=16)
    )


def test_evaluate_scores_every_token_once(monkeypatch):
    """With enough context every chunk sees its whole past: one pass over the text."""
    monkeypatch.setattr(metrics, "MIN_CHUNK", 64)  # several chunks of a short text
    text = prose(200)
    vocab = Vocab.build(CharTokenizer().tokenize(text))
    model = char_model(len(vocab)).eval()
    ids = torch.tensor(vocab.encode(list(text)))
    result = evaluate_ids(model, ids, batch_size=8, seq_len=100, context=len(ids))
    assert metrics._chunks(ids, 8, 0)[0].shape[0] == 8
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
        expected = torch.nn.functional.cross_entropy(logits[0], ids[1:]).item()
    assert result["tokens"] == len(ids) - 1
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["bpc"] == pytest.approx(expected / math.log(2), rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    # The default (short) context changes the figure only a little.
    short = evaluate_ids(model, ids, batch_size=8)
    assert short["loss"] == pytest.approx(expected, rel=0.02)


def test_evaluate_text_word_bpc_counts_characters():
    text = prose(300)
    tokenizer = WordTokenizer()
    vocab = Vocab.build(tokenizer.tokenize(text))
    result = evaluate_text(char_model(len(vocab)), vocab, tokenizer, text, framed=False)
    total = result["loss"] * result["tokens"]
    assert result["tokens"] == len(tokenizer.tokenize(text)) - 1
    assert result["bpc"] == pytest.approx(total / math.log(2) / len(text))
    assert "perplexity_without_boundaries" not in result


def test_word_evaluation_frames_lines_and_reports_both_perplexities():
    """<bos> line <eos> per line; without the boundary targets the figure is over words only."""
    from rnnkit.data import frame_lines

    text = prose(300)
    tokenizer = WordTokenizer()
    framed = frame_lines(tokenizer.tokenize(text))
    assert framed[0] == "<bos>" and framed[-1] == "<eos>" and "\n" not in framed
    lines = [line for line in text.splitlines() if line.strip()]
    assert framed.count("<bos>") == framed.count("<eos>") == len(lines)
    vocab = Vocab.build(framed)
    model = char_model(len(vocab)).eval()
    result = evaluate_text(model, vocab, tokenizer, text)
    assert result["tokens"] == len(framed) - 1
    assert result["perplexity_with_boundaries"] == result["perplexity"]
    ids = torch.tensor(vocab.encode(framed))
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
        nll = torch.nn.functional.cross_entropy(logits[0], ids[1:], reduction="none")
    words = ~torch.isin(ids[1:], torch.tensor([vocab.bos_id, vocab.eos_id]))
    expected = nll[words].mean().item()
    assert result["loss_without_boundaries"] == pytest.approx(expected, rel=0.02)
    assert result["perplexity_without_boundaries"] == pytest.approx(math.exp(expected), rel=0.02)


def lm_task():
    return LanguageModelTask(TrainConfig(**TINY))


def lm_batch(x, y) -> Batch:
    return Batch({"x": x, "y": y}, size=x.shape[0], tokens=x.numel())


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_train_step_reduces_loss_on_repetitive_text(precision):
    """And keeps the weights and the carried state float32 when the products are bfloat16."""
    text = "the quick brown fox jumps over the lazy dog. " * 10
    vocab = Vocab.build(list(text))
    ids = torch.tensor(vocab.encode(list(text)))
    model = char_model(len(vocab))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.02)
    x, y = ids[:400].reshape(4, 100), ids[1:401].reshape(4, 100)
    losses, state = [], None
    for _ in range(40):
        step = train_step(
            lm_task(), model, optimizer, lm_batch(x, y), state, clip=1.0, precision=precision
        )
        losses.append(step.loss)
        state = step.carry
    assert losses[-1] < 0.3 * losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(s.dtype == torch.float32 and not s.requires_grad for s in state)


def test_train_step_of_a_float64_model_computes_its_loss_in_float64():
    vocab_size = 12
    model = char_model(vocab_size).double()
    x = torch.randint(0, vocab_size, (3, 9), generator=torch.Generator().manual_seed(1))
    y = torch.roll(x, -1, dims=1)
    with torch.no_grad():
        logits, _ = model(x)
        expected = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    step = train_step(lm_task(), model, optimizer, lm_batch(x, y), None)
    assert step.loss == pytest.approx(expected.item(), rel=1e-14)  # float32 is off by ~1e-8
    assert all(s.dtype == torch.float64 for s in step.carry)


def test_precision_is_resolved_and_reported(tmp_path):
    from rnnkit.train import precision

    expected = "bfloat16" if precision.cpu_has_fast_bfloat16() else "float32"
    assert precision.resolve_precision("auto") == expected
    assert precision.resolve_precision("float32") == "float32"
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16"):
        precision.resolve_precision("fp16")
    with pytest.raises(ValueError, match=r"--precision \(precision\) must be one of"):
        config(tmp_path, precision="half")
    metrics = train(config(tmp_path, max_steps=3, precision="bfloat16"), progress=False)
    assert metrics["precision"] == "bfloat16"
    model, *_ = load_checkpoint(Path(tmp_path / "run" / "latest"))
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_recurrent_init_reaches_the_model_and_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"--recurrent-init \(recurrent_init\) must be one of"):
        config(tmp_path, recurrent_init="zeros")
    for kind in ("orthogonal", "uniform"):
        # lr 1e-9: the saved weights are the initial ones
        train(config(tmp_path, kind, max_steps=1, recurrent_init=kind, lr=1e-9), progress=False)
        stored = json.loads((tmp_path / kind / "config.json").read_text())
        assert stored["train"]["recurrent_init"] == kind
        block = weights(tmp_path / kind)["layers.weight_hh_l0"][:16]  # the input gate's
        eye = torch.eye(16)
        orthogonal = torch.allclose(block @ block.T, eye, atol=1e-4)
        assert orthogonal == (kind == "orthogonal")


def test_forget_bias_default_is_for_the_lstm_only(tmp_path):
    from rnnkit.train.config import DEFAULT_FORGET_BIAS

    assert config(tmp_path).resolved_forget_bias() == DEFAULT_FORGET_BIAS
    assert config(tmp_path, forget_bias=0.5).resolved_forget_bias() == 0.5
    assert config(tmp_path, cell="gru").resolved_forget_bias() == 0.0
    with pytest.raises(ValueError, match="--forget-bias applies to --cell lstm; got --cell gru"):
        config(tmp_path, cell="gru", forget_bias=-1.0)
    with pytest.raises(ValueError, match=r"--forget-bias \(forget_bias\) must be a finite"):
        config(tmp_path, forget_bias=float("inf"))
    train(config(tmp_path, max_steps=1, lr=1e-9), progress=False)
    bias = weights(tmp_path / "run")["layers.bias_ih_l0"]  # torch's init: within ±1/sqrt(16)
    forget, others = bias[16:32], torch.cat([bias[:16], bias[32:]])
    assert (forget - DEFAULT_FORGET_BIAS).abs().max() <= 0.25 + 1e-6
    assert others.abs().max() <= 0.25 + 1e-6


def test_adamw_betas_default_for_the_language_model_and_the_tasks(tmp_path):
    from rnnkit.train.config import DEFAULT_LM_BETA1
    from rnnkit.train.trainer import build_optimizer

    model = torch.nn.Linear(2, 2)
    lm = build_optimizer(config(tmp_path, beta2=0.99), model)
    assert lm.param_groups[0]["betas"] == (DEFAULT_LM_BETA1, 0.99)
    given = build_optimizer(config(tmp_path, beta1=0.7), model)
    assert given.param_groups[0]["betas"] == (0.7, 0.999)
    task = config(tmp_path).with_overrides(task="classify")
    assert task.resolved_beta1() == 0.9


def test_automatic_dropout_follows_the_passes_over_the_text(tmp_path):
    from rnnkit.train.config import NOMINAL_TOKENS_PER_S

    few = config(tmp_path, max_steps=10)  # 10 * 4 * 16 tokens
    assert planned_passes(few, 640) == pytest.approx(1.0)
    assert resolved_dropout(few, 640) == 0.0
    assert resolved_dropout(few, 64) == 0.0  # 10 passes
    assert resolved_dropout(few, 50) == 0.2  # 12.8 passes
    assert resolved_dropout(few, 43) == 0.2  # 14.9 passes
    assert resolved_dropout(few, 32) == 0.3  # the same budget over a 20x smaller text
    timed = config(tmp_path, max_time=100.0)
    assert planned_passes(timed, 1_000_000) == pytest.approx(100 * NOMINAL_TOKENS_PER_S / 1e6)
    both = config(tmp_path, max_time=100.0, max_steps=10)
    assert planned_passes(both, 640) == pytest.approx(1.0)  # whichever budget ends first
    assert resolved_dropout(config(tmp_path, max_steps=10, dropout=0.15), 32) == 0.15
    assert resolved_dropout(config(tmp_path, max_steps=10, dropout=0.0), 32) == 0.0


def resolved_dropout(cfg: TrainConfig, tokens: int) -> float:
    task = LanguageModelTask(cfg)
    task.fit(["a"] * tokens)
    return task.dropout


def test_resume_keeps_the_dropout_the_run_started_with(tmp_path):
    """The automatic dropout depends on the budget; a resume that extends it keeps the model."""
    text = prose(200)
    start = config(tmp_path, text=text, max_steps=5, eval_every=100)
    assert train(start, progress=False)["dropout"] == 0.0
    longer = start.with_overrides(max_steps=200)
    assert resolved_dropout(longer, len(text)) > 0  # a new run would drop
    assert train(longer, resume=True, progress=False)["dropout"] == 0.0
    fresh = train(longer.with_overrides(out=str(tmp_path / "fresh")), progress=False)
    assert fresh["dropout"] == resolved_dropout(longer, fresh["train_tokens_in_text"]) > 0


# ---------------------------------------------------------------- a run


def test_run_writes_every_output(tmp_path):
    cfg = config(tmp_path, max_steps=40, eval_every=15, save_every=10, lr=0.01)
    metrics = train(cfg, progress=False)
    out = Path(cfg.out)
    for name in (
        "config.json",
        "task.json",
        "vocab.json",
        "log.jsonl",
        "metrics.json",
        "loss_curve.png",
        "grad_norm.png",
    ):
        assert (out / name).is_file(), name
    for plot in ("loss_curve.png", "grad_norm.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    for key in ("val_loss", "train_loss", "bpc", "perplexity", "tokens_per_s", "steps"):
        assert metrics[key] is not None and math.isfinite(metrics[key]), key
    assert metrics["steps"] == 40
    assert metrics["wall_time"] >= metrics["train_time"] > 0
    assert metrics["tokens_per_s"] > 0
    assert metrics["val_loss"] < math.log(metrics["vocab_size"])  # learned something
    assert metrics["bpc"] == pytest.approx(metrics["val_loss"] / math.log(2))
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["val_loss"]))
    everything = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    rows = [row for row in everything if "val_loss" in row]
    assert [row["step"] for row in rows] == [15, 30, 40]
    assert [row["step"] for row in everything if "val_loss" not in row] == []  # --log-every 100
    for row in rows:
        assert {
            "step",
            "train_loss",
            "train_loss_steps",
            "val_loss",
            "bpc",
            "lr",
            "grad_norm",
            "grad_norm_max",
            "clipped_fraction",
            "skipped_steps",
            "tokens_per_s",
            "elapsed",
        } <= row.keys()
        assert 0 < row["grad_norm"] <= row["grad_norm_max"]
    assert rows[-1]["val_loss"] == metrics["val_loss"]
    assert rows[0]["elapsed"] < rows[-1]["elapsed"] == pytest.approx(metrics["train_time"])
    for checkpoint in ("latest", "best"):
        files = {p.name for p in (out / checkpoint).iterdir()}
        assert {"checkpoint.json", "vocab.json", "weights.safetensors"} <= files
    assert {"optimizer.safetensors", "optimizer.json", "trainer.json", "trainer.safetensors"} <= {
        p.name for p in (out / "latest").iterdir()
    }
    assert json.loads((out / "latest" / "checkpoint.json").read_text())["step"] == 40
    best = json.loads((out / "best" / "checkpoint.json").read_text())
    best_loss = best["metrics"]["val_loss"]
    assert best_loss == metrics["best_val_loss"] == min(row["val_loss"] for row in rows)
    assert not list(out.glob(".*"))  # no temporary leftovers


def test_best_checkpoint_reproduces_its_loss(tmp_path):
    text = prose()
    cfg = config(tmp_path, text=text, max_steps=25, eval_every=10)
    metrics = train(cfg, progress=False)
    model, vocab, tokenizer, loaded = load_checkpoint(cfg.out)  # the run dir -> best/
    assert loaded == cfg
    _, val_text = split_train_val(text, cfg.val_fraction)
    result = evaluate_text(model, vocab, tokenizer, val_text)
    assert result["loss"] == pytest.approx(metrics["best_val_loss"], rel=1e-6)
    assert resolve_checkpoint(cfg.out) == Path(cfg.out) / "best"
    assert resolve_checkpoint(Path(cfg.out) / "latest") == Path(cfg.out) / "latest"


def test_time_budget_stops_the_run(tmp_path):
    metrics = train(config(tmp_path, max_time=0.5), progress=False)
    assert 0.5 <= metrics["train_time"] < 5
    assert metrics["steps"] > 0


def test_word_model_with_tied_weights_and_word_vectors(tmp_path):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("the 1 2 3 4 5 6 7 8\ntime 0 0 0 0 0 0 0 1\n", encoding="utf-8")
    cfg = config(
        tmp_path,
        tokens="word",
        embedding_dim=8,
        hidden_size=8,
        tie_weights=True,
        word_vectors=str(vectors),
        max_steps=1,
        lr=1e-9,
    )
    metrics = train(cfg, progress=False)
    assert metrics["bpc"] < metrics["val_loss"]  # several characters per word
    weights = load_file(Path(cfg.out) / "latest" / "weights.safetensors")
    assert "head.weight" not in weights  # stored once, as the embedding
    model, vocab, tokenizer, _ = load_checkpoint(Path(cfg.out) / "latest")
    assert tokenizer.kind == "word"
    assert model.head.weight is model.embedding.weight
    row = model.embedding.weight[vocab["the"]].detach()
    torch.testing.assert_close(row, torch.arange(1.0, 9.0), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- resume


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "latest" / "weights.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("stop", [20, 15], ids=["at-a-save", "between-saves"])
def test_resume_is_exact(tmp_path, stop, precision):
    """Uninterrupted 30 steps == stopped at `stop` and resumed, bit for bit (dropout too)."""
    settings = {
        "max_steps": 30,
        "save_every": 10,
        "eval_every": 7,
        "dropout": 0.2,
        "num_layers": 2,
        "precision": precision,
    }
    whole = config(tmp_path, out="whole", **settings)
    train(whole, progress=False)
    parts = config(tmp_path, out="parts", **settings)
    train(parts, progress=False, stop_at_step=stop)
    assert json.loads((Path(parts.out) / "latest" / "checkpoint.json").read_text())["step"] == stop
    train(parts, resume=True, progress=False)
    assert_same_weights(Path(whole.out), Path(parts.out))
    logs = [
        [(r["step"], r["val_loss"], r["train_loss"]) for r in map(json.loads, lines)]
        for lines in (
            (Path(run.out) / "log.jsonl").read_text().splitlines() for run in (whole, parts)
        )
    ]
    assert logs[0] == logs[1]


def test_resume_from_a_kill_mid_checkpoint_swap(tmp_path):
    """A kill between moving latest/ aside and renaming the new one in: the old one is used."""
    settings = {"max_steps": 20, "save_every": 10, "eval_every": 100}
    whole = config(tmp_path, out="whole", **settings)
    train(whole, progress=False)
    parts = config(tmp_path, out="parts", **settings)
    train(parts, progress=False, stop_at_step=10)
    out = Path(parts.out)
    (out / "latest").rename(out / ".latest.old")  # what a kill inside replace_dir leaves
    (out / ".latest.abc.tmp").mkdir()  # and a half-written new checkpoint
    assert resolve_checkpoint(out / ".latest.old") == out / ".latest.old"
    train(parts, resume=True, progress=False)
    assert_same_weights(Path(whole.out), out)
    assert not list(out.glob(".latest*"))


def test_resume_never_starts_over(tmp_path):
    """A run that stopped before its first save (killed): --resume refuses, touching nothing."""
    settings = {"max_steps": 12, "save_every": 100, "eval_every": 100}
    whole = config(tmp_path, out="whole", **settings)
    train(whole, progress=False)
    parts = config(tmp_path, out="parts", **settings)
    Path(parts.out).mkdir()
    (Path(parts.out) / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="has no latest/ checkpoint to resume"):
        train(parts, resume=True, progress=False)
    for name in ("config.json", "task.json", "log.jsonl"):
        atomic.write_bytes(Path(parts.out) / name, (Path(whole.out) / name).read_bytes())
    shutil.copytree(Path(whole.out) / "best", Path(parts.out) / "best")
    before = tree_digest(Path(parts.out))
    with pytest.raises(ValueError, match=r"stopped before its first save\); start it again with"):
        train(parts, resume=True, progress=False)
    assert tree_digest(Path(parts.out)) == before


def test_resume_keeps_settings_but_may_extend_the_budget(tmp_path):
    cfg = config(tmp_path, max_steps=10)
    train(cfg, progress=False)
    started = r"--hidden-size is 32 but the run was started with 16"
    with pytest.raises(ValueError, match=started) as error:
        train(cfg.with_overrides(hidden_size=32), resume=True, progress=False)
    changeable = str(error.value).split("(only ")[1]  # every setting a resume may change
    for flag in ("--max-time", "--max-steps", "--max-epochs", "--eval-every", "--log-every"):
        assert flag in changeable
    metrics = train(cfg.with_overrides(max_steps=15), resume=True, progress=False)
    assert metrics["steps"] == 15


def test_resume_from_a_damaged_checkpoint_fails_cleanly(tmp_path):
    cfg = config(tmp_path, max_steps=10, save_every=5)
    train(cfg, progress=False, stop_at_step=5)
    out = Path(cfg.out)
    assert not (out / "metrics.json").exists()  # the run has not finished
    optimizer = out / "latest" / "optimizer.safetensors"
    optimizer.write_bytes(optimizer.read_bytes()[:50])
    before = tree_digest(out)
    with pytest.raises(ValueError, match=r"optimizer\.safetensors is not a readable"):
        train(cfg, resume=True, progress=False)
    assert tree_digest(out) == before


def test_resume_refuses_other_text(tmp_path):
    cfg = config(tmp_path, max_steps=5)
    train(cfg, progress=False)
    Path(cfg.data).write_text(prose(seed=1), encoding="utf-8")
    with pytest.raises(ValueError, match=r"the contents of .* changed since the run started"):
        train(cfg, resume=True, progress=False)
    other = Path(cfg.data).with_name("other.txt")
    other.write_text(prose(seed=2), encoding="utf-8")
    with pytest.raises(ValueError, match=r"other.txt differs from the data the run started on"):
        train(cfg.with_overrides(data=str(other)), resume=True, progress=False)


# ---------------------------------------------------------------- the run directory


def test_existing_run_is_refused_and_left_untouched(tmp_path):
    cfg = config(tmp_path, max_steps=5)
    train(cfg, progress=False)
    before = tree_digest(Path(cfg.out))
    with pytest.raises(ValueError, match=r"already holds a run; pass --resume .* or --force"):
        train(cfg, progress=False)
    # --force with text too short for one batch: checked before anything is deleted
    short = write_text(tmp_path, "x" * 60, "short.txt")
    with pytest.raises(ValueError, match="--batch-size 4 --seq-len 16 need at least 65"):
        train(cfg.with_overrides(data=short), force=True, progress=False)
    assert tree_digest(Path(cfg.out)) == before
    metrics = train(cfg.with_overrides(max_steps=3), force=True, progress=False)
    assert metrics["steps"] == 3


def test_non_run_directory_is_never_touched(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    cfg = config(tmp_path, out="notes", max_steps=2)
    for force in (False, True):
        with pytest.raises(ValueError, match="holds no rnnkit run"):
            train(cfg, force=force, progress=False)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_invalid_config_creates_no_directory(tmp_path):
    cfg = config(tmp_path, out="never", max_steps=2, batch_size=64, seq_len=512)
    with pytest.raises(ValueError, match="at least"):
        train(cfg, progress=False)
    assert not (tmp_path / "never").exists()


# ---------------------------------------------------------------- damaged checkpoints


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("finished")
    cfg = config(tmp_path, max_steps=3)
    train(cfg, progress=False)
    return Path(cfg.out)


def copy_checkpoint(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    target.mkdir()
    for f in (run / "best").iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    return target


def test_truncated_weights(finished_run, tmp_path):
    ckpt = copy_checkpoint(finished_run, tmp_path)
    data = (ckpt / "weights.safetensors").read_bytes()
    (ckpt / "weights.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_checkpoint(ckpt)


def test_bad_json(finished_run, tmp_path):
    ckpt = copy_checkpoint(finished_run, tmp_path)
    (ckpt / "checkpoint.json").write_text('{"format": "rnnkit.lang')
    with pytest.raises(ValueError, match=r"checkpoint\.json: checkpoint description is not valid"):
        load_checkpoint(ckpt)


def test_mismatched_weights(finished_run, tmp_path):
    ckpt = copy_checkpoint(finished_run, tmp_path)
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["model"]["hidden_size"] = 32
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(
        ValueError, match=r"has shape \(64, 8\) but the config .*hidden_size=32.* needs \(128, 8\)"
    ):
        load_checkpoint(ckpt)


def test_nothing_there(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no checkpoint"):
        load_checkpoint(tmp_path)


def test_no_pickle_anywhere(finished_run):
    """Every file of a run is JSON, JSON lines, PNG or safetensors."""
    for path in finished_run.rglob("*"):
        if path.is_file():
            assert path.suffix in {".json", ".jsonl", ".png", ".safetensors"}, path


# ---------------------------------------------------------------- word models and boundaries


def sentences(n: int = 400, seed: int = 0) -> str:
    rng = random.Random(seed)
    subjects = ["the cat", "a dog", "the traveller", "my friend"]
    verbs = ["sat", "ran", "slept", "spoke"]
    places = ["", " at home", " in the garden", " by the machine"]
    return "".join(
        f"{rng.choice(subjects)} {rng.choice(verbs)}{rng.choice(places)} .\n" for _ in range(n)
    )


def test_a_word_model_learns_to_end_its_sentences(tmp_path):
    """Lines are framed <bos> ... <eos>: generation from <bos> stops at a learned <eos>."""
    from rnnkit.generate import generate

    cfg = config(
        tmp_path,
        text=sentences(),
        tokens="word",
        hidden_size=32,
        embedding_dim=16,
        max_steps=300,
        lr=0.01,
        eval_every=300,
    )
    metrics = train(cfg, progress=False)
    assert metrics["perplexity_with_boundaries"] == metrics["perplexity"]
    assert metrics["perplexity_without_boundaries"] > 1
    model, vocab, tokenizer, _ = load_checkpoint(cfg.out)
    for seed in range(5):
        text = generate(model, vocab, tokenizer, "", 40, seed=seed, temperature=0.7)
        words = tokenizer.tokenize(text)
        assert 3 <= len(words) < 12, text  # one sentence, ended by <eos>, not cut at 40
        assert words[-1] == ".", text
