"""LanguageModel: shapes and state for every cell and input kind, state carrying, backends,
tied weights, and config validation."""

from __future__ import annotations

import pytest
import torch

from rnnkit.models import CELLS, LanguageModel, LanguageModelConfig

V, E, H, L = 13, 6, 8, 2  # vocabulary, embedding width, hidden size, layers
B, T = 3, 7


def make(cell: str, embedding_dim: int = E, **kwargs) -> LanguageModel:
    torch.manual_seed(0)
    config = LanguageModelConfig(
        vocab_size=V, cell=cell, embedding_dim=embedding_dim, hidden_size=H, num_layers=L, **kwargs
    )
    return LanguageModel(config)


def ids(batch: int = B, steps: int = T) -> torch.Tensor:
    return torch.randint(0, V, (batch, steps), generator=torch.Generator().manual_seed(1))


def as_tuple(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("embedding_dim", [0, E], ids=["one-hot", "embedding"])
@pytest.mark.parametrize("cell", CELLS)
def test_shapes_and_state(cell, embedding_dim):
    model = make(cell, embedding_dim)
    logits, state = model(ids())
    assert logits.shape == (B, T, V)
    assert logits.dtype == torch.float32
    expected_parts = 1 + model.layers.cell.num_carried  # (h, c) for the LSTMs
    parts = as_tuple(state)
    assert len(parts) == expected_parts
    assert all(part.shape == (L, B, H) for part in parts)
    begin = as_tuple(model.begin_state(B))
    assert [p.shape for p in begin] == [p.shape for p in parts]
    assert all(torch.count_nonzero(p) == 0 for p in begin)
    if embedding_dim == 0:
        assert not any(name.startswith("embedding") for name, _ in model.named_parameters())


@pytest.mark.parametrize("cell", CELLS)
def test_begin_state_is_the_default_and_state_carries(cell):
    """Zero state == no state; two halves with the state carried == one pass."""
    model = make(cell).eval()
    x = ids(steps=10)
    with torch.no_grad():
        full, final = model(x)
        same, _ = model(x, model.begin_state(B))
        first, mid = model(x[:, :4])
        second, end = model(x[:, 4:], mid)
    torch.testing.assert_close(same, full)
    torch.testing.assert_close(torch.cat([first, second], dim=1), full)
    for a, b in zip(as_tuple(end), as_tuple(final), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_backends_share_weights_and_results(cell):
    native = make(cell, backend="native").eval()
    reference = make(cell, backend="reference").eval()
    reference.load_state_dict(native.state_dict())
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(reference(x)[0], native(x)[0], rtol=1e-5, atol=1e-5)


def test_gradients_reach_every_parameter():
    model = make("jordan", dropout=0.2).train()
    logits, _ = model(ids())
    logits.sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_tie_weights_shares_the_embedding_with_the_head():
    model = make("lstm", embedding_dim=H, tie_weights=True)
    assert model.head.weight is model.embedding.weight
    untied = make("lstm", embedding_dim=H)
    n_tied = sum(p.numel() for p in model.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied - n_tied == V * H
    logits, _ = model(ids())
    logits.sum().backward()
    assert model.embedding.weight.grad is not None


def test_tie_weights_needs_equal_sizes():
    with pytest.raises(ValueError, match=r"embedding_dim=6, hidden_size=8"):
        make("lstm", embedding_dim=6, tie_weights=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cell": "transformer"}, "cell must be one of"),
        ({"hidden_size": 0}, "hidden_size must be >= 1"),
        ({"num_layers": 0}, "num_layers must be >= 1"),
        ({"embedding_dim": -1}, "embedding_dim must be >= 0"),
        ({"vocab_size": 0}, "vocab_size must be >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"backend": "gpu"}, "backend must be one of"),
        ({"nonlinearity": "relu", "cell": "gru"}, "nonlinearity of cell 'gru' must be None"),
        ({"nonlinearity": "sigmoid", "cell": "rnn"}, "must be one of tanh, relu"),
    ],
)
def test_bad_config(changes, message):
    settings = {"vocab_size": V, **changes}
    with pytest.raises(ValueError, match=message):
        LanguageModelConfig(**settings)


def test_config_round_trip_and_unknown_keys():
    config = LanguageModelConfig(vocab_size=V, cell="gru", embedding_dim=0, dropout=0.1)
    assert LanguageModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown model config keys: colour"):
        LanguageModelConfig.from_dict({**config.to_dict(), "colour": "blue"})


def test_ids_must_be_long_and_two_dimensional():
    model = make("rnn")
    with pytest.raises(ValueError, match=r"\(B, T\) long tensor"):
        model(torch.zeros(B, T))
    with pytest.raises(ValueError, match=r"\(B, T\) long tensor"):
        model(torch.zeros(T, dtype=torch.long))


def _gate_blocks(weight: torch.Tensor) -> list[torch.Tensor]:
    return list(weight.detach().split(H))


def test_the_model_starts_as_torch_nn_and_the_trainer_initializes_it():
    """The model is torch.nn's init; the run's scheme is the trainer's (rnnkit.initializers)."""
    model = make("lstm")
    torch.manual_seed(0)
    torch.nn.Embedding(V, E)  # built first, from the same random stream
    reference = torch.nn.LSTM(E, H, num_layers=L, batch_first=True)
    for name, weight in reference.named_parameters():
        torch.testing.assert_close(getattr(model.layers, name), weight, atol=0, rtol=0)


def test_configs_of_the_earlier_model_still_load():
    """Models saved when the model initialized itself recorded recurrent_init / forget_bias."""
    old = {**LanguageModelConfig(vocab_size=V).to_dict(), "recurrent_init": "orthogonal"}
    old["forget_bias"] = -1.0
    assert LanguageModelConfig.from_dict(old) == LanguageModelConfig(vocab_size=V)


def test_relu_elman_language_model():
    model = make("rnn", nonlinearity="relu")
    assert model.layers.nonlinearity == "relu"
