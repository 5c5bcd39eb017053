"""rnnkit.generate on fake language models whose next-token distributions are set by hand.

The fakes keep LanguageModel's contract, forward(ids (B, T), state) -> (logits (B, T, V), state)
and begin_state(batch_size), without any training:

- `TableModel`: logits = table[previous token, current token], the previous token carried in the
  state, so a wrong state (e.g. beams mixed up) changes the result; a bigram table ignores it.
- `CounterModel`: the state counts the tokens seen; the favoured next token depends on that
  count only, so the whole prefix, not just its last token, decides the continuation.

Vocabulary and tokenizers are small fakes with rnnkit.data's interface (specials first).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rnnkit.generate import beam_search, filter_logits, generate, sample_next

SPECIALS = ("<unk>", "<pad>", "<bos>", "<eos>")
UNK, PAD, BOS, EOS = range(4)


class FakeVocab:
    def __init__(self, tokens):
        self.tokens = [*SPECIALS, *tokens]
        self._ids = {t: i for i, t in enumerate(self.tokens)}

    unk_id, pad_id, bos_id, eos_id = UNK, PAD, BOS, EOS

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, token):
        return self._ids.get(token, UNK)

    def encode(self, tokens):
        return [self[t] for t in tokens]

    def decode(self, ids):
        return [self.tokens[i] for i in ids]


class CharTok:
    kind = "char"

    def tokenize(self, text):
        return list(text)

    def detokenize(self, tokens):
        return "".join(tokens)


class WordTok:
    kind = "word"

    def tokenize(self, text):
        return text.split()

    def detokenize(self, tokens):
        return " ".join(tokens)


CHARS = FakeVocab(["\n", "a", "b", "c", "d", "e"])  # ids 4..9
V = len(CHARS)


class TableModel(nn.Module):
    """logits[b, t] = table[prev, ids[b, t]] with prev the token before ids[b, t] (the state)."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table, dtype=torch.float32))  # (V, V, V)
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device
        self.calls = []  # (training, grad enabled, ids) of every forward

    @classmethod
    def bigram(cls, rows):
        """rows (V, V): logits of the next token given the current one; the state is ignored."""
        rows = torch.as_tensor(rows, dtype=torch.float32)
        return cls(rows.expand(rows.shape[0], -1, -1).clone())

    def begin_state(self, batch_size, device=None):
        return torch.zeros(1, batch_size, 1, device=device)  # (L=1, B, 1): previous token id

    def forward(self, ids, state=None):
        self.calls.append((self.training, torch.is_grad_enabled(), ids.clone()))
        prev = (state if state is not None else self.begin_state(ids.shape[0]))[0, :, 0].long()
        steps = []
        for t in range(ids.shape[1]):
            steps.append(self.table[prev, ids[:, t]])  # (B, V)
            prev = ids[:, t]
        return torch.stack(steps, dim=1), prev.float().reshape(1, -1, 1)


class CounterModel(nn.Module):
    """The state counts the tokens read; after n tokens the next token is `favourites[n % k]`."""

    def __init__(self, favourites, vocab_size):
        super().__init__()
        self.favourites = torch.tensor(favourites)
        self.vocab_size = vocab_size
        self.anchor = nn.Parameter(torch.zeros(()))

    def begin_state(self, batch_size, device=None):
        return torch.zeros(1, batch_size, 1, device=device)

    def forward(self, ids, state=None):
        count = (state if state is not None else self.begin_state(ids.shape[0]))[0, :, 0]
        steps = []
        for _ in range(ids.shape[1]):
            count = count + 1
            fav = self.favourites[count.long() % len(self.favourites)]  # (B,)
            steps.append(nn.functional.one_hot(fav, self.vocab_size).float() * 5.0)
        return torch.stack(steps, dim=1), count.reshape(1, -1, 1)


def random_bigram(seed, vocab_size=V):
    g = torch.Generator().manual_seed(seed)
    return TableModel.bigram(torch.randn(vocab_size, vocab_size, generator=g) * 2)


def hand_greedy(model, start_ids, length):
    """Argmax decoding written out: feed every start token one at a time (d2l's warm-up)."""
    state, out = model.begin_state(1), []
    for i in start_ids:
        logits, state = model(torch.tensor([[i]]), state)
    for _ in range(length):
        row = logits[0, -1].clone()
        row[[UNK, PAD, BOS, EOS]] = -math.inf
        nxt = int(row.argmax())
        out.append(nxt)
        logits, state = model(torch.tensor([[nxt]]), state)
    return out


def sequence_log_prob(model, start_ids, ids, banned=(UNK, PAD, BOS, EOS)):
    """log P(ids | start) under the model with the banned tokens masked out."""
    logits, state = model(torch.tensor([start_ids]), model.begin_state(1))
    total = 0.0
    for i in ids:
        row = logits[0, -1].clone()
        row[list(banned)] = -math.inf
        total += float(row.log_softmax(-1)[i])
        logits, state = model(torch.tensor([[i]]), state)
    return total


# ---------------------------------------------------------------- greedy


def test_greedy_follows_the_argmax_chain():
    rows = torch.zeros(V, V)
    chain = {4: 5, 5: 6, 6: 7, 7: 5}  # \n -> a -> b -> c -> a -> ...
    for cur, nxt in chain.items():
        rows[cur, nxt] = 3.0
    rows[:, UNK] = 10.0  # the most likely token of every row is a special: it must be skipped
    model = TableModel.bigram(rows)
    assert generate(model, CHARS, CharTok(), "", 7, greedy=True) == "abcabca"
    assert generate(model, CHARS, CharTok(), "c", 4, greedy=True) == "abca"


@pytest.mark.parametrize("seed", range(3))
def test_greedy_equals_a_hand_written_loop(seed):
    model = random_bigram(seed)
    text = generate(model, CHARS, CharTok(), "ab", 20, greedy=True)
    assert text == "".join(CHARS.decode(hand_greedy(model, CHARS.encode("ab"), 20)))


@pytest.mark.parametrize("seed", range(3))
def test_top_k_1_and_tiny_top_p_are_greedy(seed):
    model = random_bigram(seed)
    greedy = generate(model, CHARS, CharTok(), "a", 30, greedy=True)
    assert generate(model, CHARS, CharTok(), "a", 30, top_k=1, seed=seed) == greedy
    assert generate(model, CHARS, CharTok(), "a", 30, top_p=1e-6, seed=seed) == greedy
    # greedy ignores the sampling options: they cannot move the argmax
    assert generate(model, CHARS, CharTok(), "a", 30, greedy=True, temperature=3.0) == greedy


def test_tiny_temperature_is_greedy():
    model = random_bigram(7)
    greedy = generate(model, CHARS, CharTok(), "a", 40, greedy=True)
    assert generate(model, CHARS, CharTok(), "a", 40, temperature=1e-3, seed=1) == greedy


# ---------------------------------------------------------------- sampling distribution


def test_sampling_frequencies_follow_the_softmax():
    logits = torch.tensor([1.0, 0.5, 0.0, -0.5, -1.0, 2.0])
    n = 40_000
    draws = sample_next(logits.expand(n, -1), generator=torch.Generator().manual_seed(0))
    assert draws.shape == (n,)
    counts = torch.bincount(draws, minlength=6).double()
    expected = logits.double().softmax(-1) * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 20.5  # chi-square, 5 degrees of freedom: P(> 20.5) ≈ 0.001


def test_generated_tokens_follow_the_masked_softmax():
    """Every row the same distribution: generate's draws match its softmax over the ordinary
    tokens (the specials are removed and the rest renormalized)."""
    row = torch.tensor([3.0, 3.0, 3.0, 3.0, 0.0, 1.0, 0.5, -0.5, 0.2, -1.0])  # specials likeliest
    model = TableModel.bigram(row.expand(V, V))
    text = generate(model, CHARS, CharTok(), "a", 5000, seed=3)
    assert len(text) == 5000
    counts = torch.tensor([text.count(c) for c in "\nabcde"], dtype=torch.float64)
    expected = row[4:].double().softmax(-1) * 5000
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 20.5


def test_temperature_sharpens_and_flattens():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    n = 20_000
    g = torch.Generator().manual_seed(0)
    cold = sample_next(logits.expand(n, -1), temperature=0.05, generator=g)
    assert (cold == 0).all()  # e^{-20}: no other token in 20 000 draws
    hot = sample_next(logits.expand(n, -1), temperature=100.0, generator=g)
    freq = torch.bincount(hot, minlength=4).double() / n
    assert (freq - 0.25).abs().max() < 0.02  # softmax(logits / 100) is within 0.008 of uniform
    tempered = sample_next(logits.expand(n, -1), temperature=2.0, generator=g)
    freq = torch.bincount(tempered, minlength=4).double() / n
    assert torch.allclose(freq, (logits.double() / 2).softmax(-1), atol=0.015)


def test_top_k_and_top_p_restrict_and_renormalize():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    logits = probs.log()
    n = 20_000
    g = torch.Generator().manual_seed(1)
    k2 = torch.bincount(sample_next(logits.expand(n, -1), top_k=2, generator=g), minlength=4)
    assert k2[0] == 0 and k2[2] == 0
    assert abs(float(k2[1]) / n - 0.5 / 0.8) < 0.015
    p = torch.bincount(sample_next(logits.expand(n, -1), top_p=0.9, generator=g), minlength=4)
    assert p[0] == 0 and p[1] > 0 and p[2] > 0 and p[3] > 0  # 0.5 + 0.3 < 0.9 <= 0.95
    # temperature with top-p: the nucleus is taken on the tempered distribution
    hot = sample_next(logits.expand(n, -1), temperature=50.0, top_p=0.5, generator=g)
    assert set(hot.unique().tolist()) == {1, 3}  # near uniform: the two best make 0.5


def test_filter_logits_examples():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0], [5.0, 5.0, 5.0, 1.0]])
    kept = filter_logits(logits, top_k=2).isfinite()
    assert kept[0].tolist() == [False, True, False, True]
    assert kept[1].sum() == 2 and not kept[1, 3]  # exactly k, even among tied logits
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    for p, n_kept in [(0.4, 1), (0.5, 1), (0.75, 2), (0.85, 3), (0.99, 4), (1.0, 4)]:
        assert int(filter_logits(probs.log(), top_p=p).isfinite().sum()) == n_kept, p


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=12),
    st.floats(0.01, 1.0),
)
def test_nucleus_is_the_smallest_set_reaching_p(values, p):
    logits = torch.tensor(values, dtype=torch.float64)
    kept = filter_logits(logits, top_p=p).isfinite()
    probs = logits.softmax(-1)
    assert kept.any()
    if not kept.all():  # the kept tokens are the most probable ones
        assert probs[kept].min() >= probs[~kept].max()
    mass = float(probs[kept].sum())
    assert mass >= p - 1e-9 or kept.all()
    if kept.sum() > 1:  # minimal: without its least probable token the set falls short of p
        assert mass - float(probs[kept].min()) < p + 1e-9


# ---------------------------------------------------------------- specials, seeds, modes


def test_specials_are_never_generated():
    row = torch.full((V,), -2.0)
    row[[UNK, PAD, BOS, EOS]] = 4.0  # 98 % of the raw mass on the specials
    model = TableModel.bigram(row.expand(V, V))
    text = generate(model, CHARS, CharTok(), "", 1000, seed=0, temperature=5.0)
    assert len(text) == 1000 and set(text) <= set("\nabcde")
    assert "<" not in generate(model, CHARS, CharTok(), "", 50, beam_size=3)


def test_same_seed_same_text_and_the_global_rng_is_untouched():
    model = random_bigram(11)
    before = torch.get_rng_state()
    a = generate(model, CHARS, CharTok(), "ab", 60, seed=5, top_p=0.95)
    b = generate(model, CHARS, CharTok(), "ab", 60, seed=5, top_p=0.95)
    assert a == b
    assert torch.equal(torch.get_rng_state(), before)
    texts = {generate(model, CHARS, CharTok(), "ab", 60, seed=s) for s in range(5)}
    assert len(texts) >= 4


def test_eval_mode_and_no_grad_during_generation_training_flag_restored():
    model = random_bigram(0)
    model.train()
    generate(model, CHARS, CharTok(), "ab", 5, seed=0)
    generate(model, CHARS, CharTok(), "ab", 5, beam_size=2)
    assert model.training
    assert all(not training and not grad for training, grad, _ in model.calls)
    model.eval()
    generate(model, CHARS, CharTok(), "ab", 5, greedy=True)
    assert not model.training


def test_the_prefix_primes_the_state_in_one_forward():
    model = random_bigram(0)
    generate(model, CHARS, CharTok(), "abc", 4, greedy=True)
    ids = [call[2] for call in model.calls]
    assert ids[0].tolist() == [CHARS.encode("abc")]  # the whole prefix at once
    assert [i.shape for i in ids[1:]] == [(1, 1)] * 3  # then one token per step, 4 tokens in all
    model.calls.clear()
    generate(model, CHARS, CharTok(), "", 2, greedy=True)
    assert model.calls[0][2].tolist() == [[CHARS["\n"]]]  # empty prefix: start from a newline


def test_the_prefix_state_decides_the_continuation():
    """After n tokens the counter model favours favourites[n % 3]: the same last character
    with a different history continues differently."""
    favourites = [CHARS["a"], CHARS["b"], CHARS["c"]]
    model = CounterModel(favourites, V)
    assert generate(model, CHARS, CharTok(), "d", 4, greedy=True) == "bcab"
    assert generate(model, CHARS, CharTok(), "dd", 4, greedy=True) == "cabc"
    assert generate(model, CHARS, CharTok(), "ddd", 4, greedy=True) == "abca"
    assert generate(model, CHARS, CharTok(), "ddd", 4, beam_size=2) == "abca"


# ---------------------------------------------------------------- word models


WORDS = FakeVocab(["the", "cat", "sat", "."])  # ids 4..7


def word_model(rows_by_token):
    """A bigram word model: rows_by_token maps a token id to {next id: probability}."""
    rows = torch.full((len(WORDS), len(WORDS)), -30.0)
    for cur, nexts in rows_by_token.items():
        for nxt, prob in nexts.items():
            rows[cur, nxt] = math.log(prob)
    return TableModel.bigram(rows)


def test_word_model_starts_at_bos_and_stops_at_eos():
    model = word_model(
        {BOS: {4: 0.9, 5: 0.1}, 4: {5: 0.9, 6: 0.1}, 5: {6: 0.9, 7: 0.1}, 6: {EOS: 0.8, 7: 0.2}}
    )
    assert generate(model, WORDS, WordTok(), "", 20, greedy=True) == "the cat sat"
    assert model.calls[0][2].tolist() == [[BOS]]
    # the continuation carries its joining space so prefix + continuation reads right
    assert generate(model, WORDS, WordTok(), "the", 20, greedy=True) == " cat sat"
    assert model.calls[-3][2].tolist() == [[BOS, 4]]
    # without stopping, <eos> is masked and exactly `length` tokens come out
    text = generate(model, WORDS, WordTok(), "the", 5, greedy=True, stop_at_eos=False)
    assert text.split() == ["cat", "sat", ".", "the", "cat"]  # "." has a flat row: first wins
    # sampling stops at <eos> too: the text never runs to the length limit here
    for seed in range(5):
        assert len(generate(model, WORDS, WordTok(), "", 50, seed=seed).split()) < 50


def test_word_prefix_of_unknown_words_is_fed_as_unk():
    model = word_model({UNK: {4: 1.0}, 4: {EOS: 1.0}})
    assert generate(model, WORDS, WordTok(), "zebra quagga", 5, greedy=True) == " the"
    assert model.calls[0][2].tolist() == [[BOS, UNK, UNK]]


def test_char_model_does_not_stop_at_eos_unless_asked():
    rows = torch.full((V, V), 0.0)
    rows[:, EOS] = 5.0
    rows[:, CHARS["a"]] = 4.0
    model = TableModel.bigram(rows)
    assert generate(model, CHARS, CharTok(), "b", 6, greedy=True) == "aaaaaa"
    assert generate(model, CHARS, CharTok(), "b", 6, greedy=True, stop_at_eos=True) == ""


# ---------------------------------------------------------------- beam search


def myopic_model():
    """Greedy takes 'a' (0.5) but every continuation of 'a' is flat (0.2 each), while 'b' (0.4)
    is followed by 'c' with 0.9: P(bc) = 0.36 > P(a?) = 0.1."""
    probs = torch.full((V, V), 1e-12)
    for cur in range(V):
        probs[cur, 4:] = 1.0 / 6  # uniform over ordinary tokens unless set below
    probs[CHARS["\n"], 4:] = torch.tensor([0.02, 0.5, 0.4, 0.04, 0.02, 0.02])
    probs[CHARS["a"], 4:] = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.1, 0.1])
    probs[CHARS["b"], 4:] = torch.tensor([0.02, 0.02, 0.02, 0.9, 0.02, 0.02])
    return TableModel.bigram(probs.log())


def test_beam_search_beats_myopic_greedy():
    model = myopic_model()
    start = [CHARS["\n"]]
    greedy = generate(model, CHARS, CharTok(), "", 2, greedy=True)
    beam = generate(model, CHARS, CharTok(), "", 2, beam_size=2)
    assert greedy[0] == "a" and beam == "bc"
    g_lp = sequence_log_prob(model, start, CHARS.encode(greedy))
    ids, score = beam_search(model, start, 2, 2, banned_ids=[UNK, PAD, BOS, EOS])
    assert CHARS.decode(ids) == ["b", "c"]
    assert score == pytest.approx(sequence_log_prob(model, start, ids), abs=1e-5)
    assert score > g_lp + 1.0  # log 0.36 vs log 0.1


@pytest.mark.parametrize("seed", range(4))
def test_beam_size_1_is_greedy(seed):
    model = random_bigram(seed)
    assert generate(model, CHARS, CharTok(), "ab", 25, beam_size=1) == generate(
        model, CHARS, CharTok(), "ab", 25, greedy=True
    )


@pytest.mark.parametrize("seed", range(6))
def test_beam_size_1_is_greedy_for_word_models_with_eos(seed):
    g = torch.Generator().manual_seed(seed)
    model = TableModel.bigram(torch.randn(len(WORDS), len(WORDS), generator=g) * 2)
    assert generate(model, WORDS, WordTok(), "the", 30, beam_size=1) == generate(
        model, WORDS, WordTok(), "the", 30, greedy=True
    )


def test_beam_size_1_keeps_following_greedy_past_an_unlikely_eos():
    """<eos> ranks second after <bos> (0.45 < 0.55): a single beam must not keep it as a
    finished hypothesis and later prefer it over the greedy path (mean log-prob -0.8 beats
    the greedy path's -0.88 per token)."""
    rows = {BOS: {4: 0.55, EOS: 0.45}, 4: {5: 0.4, 6: 0.3, 7: 0.3}, 5: {4: 0.4, 6: 0.3, 7: 0.3}}
    model = word_model(rows)
    greedy = generate(model, WORDS, WordTok(), "", 10, greedy=True)
    assert greedy == "the cat the cat the cat the cat the cat"
    assert generate(model, WORDS, WordTok(), "", 10, beam_size=1) == greedy


@pytest.mark.parametrize("seed", range(3))
def test_wide_beam_is_exhaustive_search_with_state(seed):
    """A trigram table (the state holds the previous token): a beam as wide as all
    (length-1)-token hypotheses cannot miss the best sequence, which brute force finds. Mixing
    up the beams' states would score other sequences."""
    g = torch.Generator().manual_seed(seed)
    model = TableModel(torch.randn(V, V, V, generator=g) * 2)
    start, length, ordinary = CHARS.encode("ab"), 3, range(4, V)
    banned = [UNK, PAD, BOS, EOS]
    best = max(
        itertools.product(ordinary, repeat=length),
        key=lambda ids: sequence_log_prob(model, start, ids),
    )
    ids, score = beam_search(model, start, length, len(ordinary) ** 2, banned_ids=banned)
    assert tuple(ids) == best
    assert score == pytest.approx(sequence_log_prob(model, start, best), abs=1e-4)
    small_ids, small_score = beam_search(model, start, length, 3, banned_ids=banned)
    assert small_score <= score + 1e-6
    assert small_score == pytest.approx(sequence_log_prob(model, start, small_ids), abs=1e-4)


def test_beam_length_penalty_decides_between_short_and_long_endings():
    """<eos> at once: log 0.6 = -0.51 for 1 token. 'the <eos>': log(0.4 × 0.95) = -0.97 for 2
    tokens, -0.48 per token. Raw scores pick the empty text, per-token scores the longer one."""
    model = word_model({BOS: {EOS: 0.6, 4: 0.4}, 4: {EOS: 0.95, 5: 0.05}})
    start, banned = [BOS], [UNK, PAD, BOS]
    ids, score = beam_search(model, start, 10, 2, eos_id=EOS, banned_ids=banned, length_penalty=0)
    assert ids == [] and score == pytest.approx(math.log(0.6), abs=1e-4)
    ids, score = beam_search(model, start, 10, 2, eos_id=EOS, banned_ids=banned)
    assert ids == [4] and score == pytest.approx(math.log(0.4 * 0.95), abs=1e-4)
    assert generate(model, WORDS, WordTok(), "", 10, beam_size=2) == "the"


def test_beam_search_respects_the_length_limit():
    model = random_bigram(3)
    for length in (0, 1, 7):
        assert len(generate(model, CHARS, CharTok(), "a", length, beam_size=3)) == length


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"beam_size": 0}, "beam_size"),
        ({"length": -1}, "length"),
        ({"beam_size": 2, "top_k": 3}, "beam_size"),
        ({"beam_size": 2, "greedy": True}, "beam_size"),
        ({"beam_size": 2, "temperature": 0.5}, "beam_size"),
    ],
)
def test_bad_arguments_raise_one_line_value_errors(kwargs, message):
    model = random_bigram(0)
    args = {"length": 5, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        generate(model, CHARS, CharTok(), "a", **args)
    assert "\n" not in str(info.value)


def test_length_zero_gives_empty_text():
    model = random_bigram(0)
    assert generate(model, CHARS, CharTok(), "abc", 0) == ""
    assert generate(model, CHARS, CharTok(), "abc", 0, greedy=True) == ""


# ---------------------------------------------------------------- with rnnkit's own modules


TEXT = "the cat sat on the mat. the dog sat on the log.\nthe end.\n"


def tiny_language_model(vocab_size, cell):
    from rnnkit.models import LanguageModel, LanguageModelConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = LanguageModelConfig(vocab_size, cell=cell, embedding_dim=8, hidden_size=16)
        return LanguageModel(config)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm", "jordan"])
def test_beam_scores_with_a_real_language_model(cell):
    """LanguageModel states ((h, c) for LSTM) are reordered correctly between beams: every
    returned score is the sequence's log-probability recomputed step by step."""
    from rnnkit.data import CharTokenizer, Vocab

    tokenizer = CharTokenizer()
    vocab = Vocab.build(tokenizer.tokenize(TEXT))
    model = tiny_language_model(len(vocab), cell)
    start = vocab.encode("the ")
    banned = [UNK, PAD, BOS, EOS]
    with torch.no_grad():
        for beam_size in (1, 3, 8):
            ids, score = beam_search(model, start, 6, beam_size, banned_ids=banned)
            assert len(ids) == 6
            assert score == pytest.approx(sequence_log_prob(model, start, ids), abs=1e-4)
    greedy = generate(model, vocab, tokenizer, "the ", 20, greedy=True)
    assert len(greedy) == 20
    assert generate(model, vocab, tokenizer, "the ", 20, beam_size=1) == greedy


@pytest.mark.parametrize("cell", ["lstm", "jordan"])
def test_real_word_model_and_tokenizer(cell):
    from rnnkit.data import Vocab, WordTokenizer

    tokenizer = WordTokenizer()
    vocab = Vocab.build(tokenizer.tokenize(TEXT))
    model = tiny_language_model(len(vocab), cell)
    a = generate(model, vocab, tokenizer, "the cat", 15, seed=1, top_k=5, temperature=0.8)
    assert a == generate(model, vocab, tokenizer, "the cat", 15, seed=1, top_k=5, temperature=0.8)
    assert len(tokenizer.tokenize(a)) <= 15 and "<" not in a
    greedy = generate(model, vocab, tokenizer, "the cat", 15, greedy=True)
    assert generate(model, vocab, tokenizer, "the cat", 15, beam_size=1) == greedy
    text = generate(model, vocab, tokenizer, "the cat", 15, stop_at_eos=False, seed=0)
    assert len(tokenizer.tokenize(text)) == 15 and "<eos>" not in text


def test_model_and_vocabulary_sizes_must_agree():
    from rnnkit.data import CharTokenizer, Vocab

    vocab = Vocab.build("abc")
    model = tiny_language_model(len(vocab) + 1, "rnn")
    with pytest.raises(ValueError, match="predicts 8 tokens but the vocabulary has 7"):
        generate(model, vocab, CharTokenizer(), "a", 5)
