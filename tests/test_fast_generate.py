"""Fused generation (rnnkit.stream.generation) and its wiring into rnnkit.generate: the fused
greedy decoder reproduces the eager one token for token, sampling draws from the distribution
sample_next defines (chi-square), seeds reproduce, and the decoder choice is never silent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch import nn

from rnnkit.data import SPECIALS, CharTokenizer, Vocab, WordTokenizer
from rnnkit.generate import _decode_step_by_step, filter_logits, generate
from rnnkit.generate.fused import fused_decode, unavailable_reason
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig

CHARS = list("abcdefghij .,")
VOCAB_SIZE = len(CHARS) + 4  # + rnnkit's special tokens


def _model(cell, embedding_dim, dtype, vocab_size=VOCAB_SIZE, seed=0, num_layers=2):
    torch.manual_seed(seed)
    config = LanguageModelConfig(
        vocab_size=vocab_size,
        cell=cell,
        embedding_dim=embedding_dim,
        hidden_size=24,
        num_layers=num_layers,
        backend="reference" if cell == "jordan" else "native",  # the trusted eager twins
    )
    model = LanguageModel(config).to(dtype).eval()  # .to() reaches OneHot's dtype too
    with torch.no_grad():  # larger weights: a peaked, input-dependent distribution
        for p in model.parameters():
            p.mul_(3)
    return model


def _eager(model, start, length, **options):
    settings = {"greedy": False, "temperature": 1.0, "top_k": None, "top_p": None, "seed": None}
    settings.update(options)
    with torch.no_grad():
        return _decode_step_by_step(model, start, length, banned=[0, 1, 2], eos_id=None, **settings)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("cell", "embedding_dim"), [("lstm", 8), ("gru", 0), ("rnn", 8), ("jordan", 0)]
)
def test_fused_greedy_equals_eager_greedy(cell, embedding_dim, dtype):
    model = _model(cell, embedding_dim, dtype)
    texts = []
    for start in ([5, 6, 7], [8], [12, 4, 4, 9]):
        expected = _eager(model, start, 40, greedy=True)
        got = fused_decode(model, start, 40, banned=[0, 1, 2], greedy=True)
        assert got == expected
        texts.append(tuple(got))
    assert len(set(texts)) > 1  # the start matters: the state really flows


def test_without_a_seed_sampling_follows_torchs_generator_and_greedy_leaves_it_alone():
    model = _model("lstm", 8, torch.float64)
    before = torch.get_rng_state()
    fused_decode(model, [5], 20, banned=[0, 1, 2], greedy=True)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(5)
    a = fused_decode(model, [5], 40, banned=[0, 1, 2], temperature=2.0)
    torch.manual_seed(5)
    assert fused_decode(model, [5], 40, banned=[0, 1, 2], temperature=2.0) == a


def test_top_k_1_is_greedy_and_seeds_reproduce():
    model = _model("lstm", 8, torch.float64)
    greedy = fused_decode(model, [5], 40, banned=[0, 1, 2], greedy=True)
    assert fused_decode(model, [5], 40, banned=[0, 1, 2], top_k=1, seed=3) == greedy
    a = fused_decode(model, [5], 40, banned=[0, 1, 2], temperature=2.0, seed=7)
    b = fused_decode(model, [5], 40, banned=[0, 1, 2], temperature=2.0, seed=7)
    c = fused_decode(model, [5], 40, banned=[0, 1, 2], temperature=2.0, seed=8)
    assert a == b and a != c
    assert not {0, 1, 2} & set(a + c)  # banned ids never drawn


def _constant_model(logits: list[float]) -> LanguageModel:
    """A model whose next-token logits are `logits` whatever the input: head weight zero."""
    model = _model("gru", 4, torch.float64, vocab_size=len(logits), num_layers=1)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor(logits, dtype=torch.float64))
    return model


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"), [(1.0, None, None), (0.7, 4, None), (1.5, None, 0.8)]
)
def test_sampled_tokens_follow_the_filtered_softmax(temperature, top_k, top_p):
    logits = [0.3, -1.0, 1.2, 0.0, 2.0, -0.5]
    model = _constant_model(logits)
    n = 30_000
    draws = fused_decode(model, [0], n, temperature=temperature, top_k=top_k, top_p=top_p, seed=11)
    counts = np.bincount(draws, minlength=len(logits))
    scaled = torch.tensor(logits, dtype=torch.float64) / temperature
    probs = filter_logits(scaled, top_k=top_k, top_p=top_p).softmax(-1).numpy()
    kept = probs > 0
    assert counts[~kept].sum() == 0  # filtered tokens are never drawn
    assert kept.sum() == (top_k or len(logits)) or top_p is not None
    result = chisquare(counts[kept], probs[kept] / probs[kept].sum() * n)
    assert result.pvalue > 1e-4


def _char_setup():
    vocab = Vocab([*SPECIALS, *CHARS])
    return vocab, CharTokenizer()


def test_generate_takes_the_fused_decoder_and_says_so():
    vocab, tokenizer = _char_setup()
    model = _model("lstm", 8, torch.float32, vocab_size=len(vocab))
    fused = generate(model, vocab, tokenizer, "abc", 50, greedy=True)
    eager = generate(model, vocab, tokenizer, "abc", 50, greedy=True, decoder="eager")
    assert fused == eager and len(fused) == 50
    assert fused.decoder == "fused" and "fused" in fused.reason
    assert eager.decoder == "eager" and "explicitly" in eager.reason
    sampled = generate(model, vocab, tokenizer, "abc", 50, seed=4, decoder="fused")
    assert sampled == generate(model, vocab, tokenizer, "abc", 50, seed=4)
    beam = generate(model, vocab, tokenizer, "abc", 10, beam_size=2)
    assert beam.decoder == "beam"


def test_word_model_stops_at_eos_like_the_eager_decoder():
    vocab = Vocab([*SPECIALS, "the", "cat", "sat", "on", "mat"])
    tokenizer = WordTokenizer()
    for seed in range(6):
        model = _model("gru", 8, torch.float64, vocab_size=len(vocab), seed=seed)
        with torch.no_grad():
            model.head.bias[vocab.eos_id] += 4.0  # make <eos> likely
        fused = generate(model, vocab, tokenizer, "the cat", 30, greedy=True)
        eager = generate(model, vocab, tokenizer, "the cat", 30, greedy=True, decoder="eager")
        assert fused == eager and fused.decoder == "fused"


class _NotALanguageModel(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.head = nn.Linear(1, vocab_size)

    def begin_state(self, batch_size, device=None):
        return torch.zeros(1, batch_size, 1)

    def forward(self, ids, state):
        logits = self.head(torch.ones(*ids.shape, 1))
        return logits, state


def test_no_silent_fallback():
    vocab, tokenizer = _char_setup()
    other = _NotALanguageModel(len(vocab))
    text = generate(other, vocab, tokenizer, "a", 5, greedy=True)
    assert text.decoder == "eager" and "not an rnnkit LanguageModel" in text.reason
    with pytest.raises(
        ValueError, match=r"decoder='fused' cannot serve this model: .*not an rnnkit"
    ):
        generate(other, vocab, tokenizer, "a", 5, decoder="fused")
    model = _model("lstm", 8, torch.float32, vocab_size=len(vocab))
    with pytest.raises(ValueError, match="decoder='fused' cannot run beam search"):
        generate(model, vocab, tokenizer, "a", 5, beam_size=2, decoder="fused")
    with pytest.raises(ValueError, match="decoder must be one of auto, fused, eager"):
        generate(model, vocab, tokenizer, "a", 5, decoder="numba")
    bidirectional = _model("lstm", 8, torch.float32, vocab_size=len(vocab))
    bidirectional.layers.bidirectional = True  # as a model with a bidirectional stack would be
    assert "cannot stream" in unavailable_reason(bidirectional) or "bidirectional" in (
        unavailable_reason(bidirectional)
    )


def test_cli_generate_says_which_decoder_ran(tmp_path, capsys, one_thread):
    from rnnkit.cli import main

    data = tmp_path / "text.txt"
    data.write_text("the time machine and the traveller said so\n" * 40, encoding="utf-8")
    tiny = ["--hidden-size=16", "--embedding-dim=8", "--seq-len=16", "--batch-size=4"]
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(run), "--max-steps", "3", *tiny]
    assert main([*argv, "--warmup-steps=1", "--threads=1", "--quiet"]) == 0
    capsys.readouterr()
    common = ["generate", "--checkpoint", str(run), "--prefix", "the", "--length", "20"]
    assert main([*common, "--greedy", "--debug"]) == 0
    captured = capsys.readouterr()
    assert "fused decoder" in captured.err and captured.out.startswith("the")
    assert main([*common, "--greedy", "--decoder", "eager", "--debug"]) == 0
    eager = capsys.readouterr()
    assert "eager" in eager.err and eager.out == captured.out  # greedy: the same text
    code = main([*common, "--beam-size", "2", "--decoder", "fused"])
    err = capsys.readouterr().err
    assert code == 2 and "--decoder fused cannot run beam search" in err
