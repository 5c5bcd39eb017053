"""The encoder-decoder (rnnkit.models.seq2seq): shapes, masking, attention, decoding, learning."""

from __future__ import annotations

import pytest
import torch

from rnnkit.models.seq2seq import (
    ATTENTIONS,
    BOS_ID,
    EOS_ID,
    PAD_ID,
    Seq2SeqConfig,
    Seq2SeqModel,
    beam_decode,
    greedy_decode,
)

CONFIGS = [
    ("gru", "bahdanau", True, 1),
    ("lstm", "dot", True, 2),
    ("rnn", "luong", False, 1),
    ("lstm", "bahdanau", False, 2),
    ("gru", "luong", True, 2),
]
# Attention "none" (seed 000's plain encoder-decoder) has no weights, but decodes like the others.
DECODING_CONFIGS = [*CONFIGS, ("gru", "none", True, 2)]


def make_model(cell="gru", attention="bahdanau", bidirectional=True, num_layers=1, seed=0):
    config = Seq2SeqConfig(
        source_vocab_size=11,
        target_vocab_size=13,
        cell=cell,
        attention=attention,
        bidirectional=bidirectional,
        num_layers=num_layers,
        embedding_dim=6,
        hidden_size=8,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Seq2SeqModel(config).double().eval()


def random_batch(lengths, vocab=11, seed=1):
    """Sources with the given lengths padded with <pad>, ids drawn from the non-special tokens."""
    generator = torch.Generator().manual_seed(seed)
    source = torch.full((len(lengths), max(lengths)), PAD_ID, dtype=torch.long)
    for b, n in enumerate(lengths):
        source[b, :n] = torch.randint(4, vocab, (n,), generator=generator)
    return source, torch.tensor(lengths)


@pytest.mark.parametrize(("cell", "attention", "bidirectional", "num_layers"), CONFIGS)
def test_shapes_and_attention_weights_sum_to_one(cell, attention, bidirectional, num_layers):
    model = make_model(cell, attention, bidirectional, num_layers)
    source, lengths = random_batch([5, 3, 1])
    memory, state = model.encode(source, lengths)
    target_in = torch.randint(4, 13, (3, 4))
    logits, _, weights = model.decode(target_in, state, memory)
    assert logits.shape == (3, 4, 13)
    assert weights.shape == (3, 4, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, dtype=weights.dtype))
    # padded source positions get exactly zero weight
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(weights[b, :, n:] == 0)
        assert torch.all(weights[b, :, :n] > 0)


@pytest.mark.parametrize(("cell", "attention", "bidirectional", "num_layers"), DECODING_CONFIGS)
def test_padding_does_not_change_results(cell, attention, bidirectional, num_layers):
    """A source decoded alone equals the same source inside a padded batch of longer ones,
    also when the pad positions hold arbitrary ids (they must be ignored, not only embedded as
    zeros)."""
    model = make_model(cell, attention, bidirectional, num_layers)
    source, lengths = random_batch([7, 3, 5])
    source[1, 3:] = 9  # garbage after the end of source 1
    target_in = torch.randint(4, 13, (3, 4))
    batched = model(source, lengths, target_in)
    for b, n in enumerate(lengths.tolist()):
        alone = model(source[b : b + 1, :n], lengths[b : b + 1], target_in[b : b + 1])
        torch.testing.assert_close(batched[b : b + 1], alone, rtol=1e-10, atol=1e-10)
    # the same holds for decoded outputs
    greedy = greedy_decode(model, source, lengths, max_length=6)
    for b, n in enumerate(lengths.tolist()):
        assert greedy[b] == greedy_decode(model, source[b : b + 1, :n], lengths[b : b + 1], 6)[0]


@pytest.mark.parametrize(("cell", "attention", "bidirectional", "num_layers"), DECODING_CONFIGS)
def test_beam_size_one_equals_greedy(cell, attention, bidirectional, num_layers):
    for seed in range(3):
        model = make_model(cell, attention, bidirectional, num_layers, seed=seed)
        source, lengths = random_batch([6, 2, 4, 1], seed=seed)
        greedy = greedy_decode(model, source, lengths, max_length=7)
        assert beam_decode(model, source, lengths, max_length=7, beam_size=1) == greedy


def test_greedy_output_is_the_teacher_forced_argmax():
    """Decoding step by step is the training pass: teacher-forcing the greedy output gives the
    same tokens as the argmax at every step (the step path and the whole-sequence path agree)."""
    for attention in ATTENTIONS:
        model = make_model("lstm", attention, True, 2)
        source, lengths = random_batch([5, 4])
        for b in range(2):
            ids = greedy_decode(model, source[b : b + 1], lengths[b : b + 1], max_length=8)[0]
            target_in = torch.tensor([[BOS_ID, *ids]])
            logits = model(source[b : b + 1], lengths[b : b + 1], target_in)[0]  # (T, V)
            logits[:, [0, 1, 2]] = float("-inf")
            expected = [*ids, EOS_ID] if len(ids) < 8 else ids
            assert logits.argmax(-1).tolist()[: len(expected)] == expected


def test_beam_search_finds_a_target_at_least_as_probable_as_greedy():
    """With no length normalisation beam search ranks by total log-probability; on these random
    models its best hypothesis is never less probable than the greedy one."""

    @torch.no_grad()
    def log_prob(model, source, length, ids):
        target_in = torch.tensor([[BOS_ID, *ids]])
        logits = model(source, length, target_in)[0]
        logits[:, [0, 1, 2]] = float("-inf")
        log_probs = logits.log_softmax(-1)
        return float(log_probs[torch.arange(len(ids) + 1), torch.tensor([*ids, EOS_ID])].sum())

    compared = 0
    for seed in range(4):
        model = make_model("gru", "bahdanau", True, 1, seed=seed)
        source, lengths = random_batch([5], seed=seed)
        greedy = greedy_decode(model, source, lengths, 12)[0]
        beam = beam_decode(model, source, lengths, 12, beam_size=4, length_penalty=0.0)[0]
        if len(greedy) < 12 and len(beam) < 12:  # both finished with <eos>
            best, first = (
                log_prob(model, source, lengths, beam),
                log_prob(model, source, lengths, greedy),
            )
            assert best >= first - 1e-9
            compared += 1
    assert compared >= 2


def test_gradients_reach_every_parameter():
    model = make_model("lstm", "bahdanau", True, 2).train()
    source, lengths = random_batch([4, 2])
    logits = model(source, lengths, torch.randint(4, 13, (2, 3)))
    logits.sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cell": "jordan"}, "cell must be one of rnn, gru, lstm"),
        ({"attention": "general"}, "attention must be one of bahdanau, luong, dot, none"),
        ({"hidden_size": 0}, "hidden_size must be >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"target_vocab_size": 4}, "target_vocab_size must be >= 5"),
    ],
)
def test_bad_config_is_a_clear_error(change, message):
    arguments = {"source_vocab_size": 10, "target_vocab_size": 10, **change}
    with pytest.raises((ValueError, TypeError), match=message):
        Seq2SeqConfig(**arguments)


def test_bad_source_batch_is_a_clear_error():
    model = make_model()
    with pytest.raises(ValueError, match="source must be a \\(B, S\\) long tensor"):
        model.encode(torch.zeros(2, 3), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="lengths must be a \\(B,\\) tensor with B = 2"):
        model.encode(torch.ones(2, 3, dtype=torch.long), torch.tensor([3]))
