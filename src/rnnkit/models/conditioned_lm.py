"""A conditioned language model: one-to-many generation, text from a category or a vector.

Shapes: B batch, T time steps, V vocabulary size, E embedding_dim, C conditions (categories),
F condition width (vectors), D condition_dim, H hidden_size, L num_layers.

    condition (B,) long  or (B, F) float -> encoded e (B, D)   (a learned "withheld" e for
                                                                rows whose condition is withheld)
    e -> tanh(W e + b) -> initial h of every layer (L, B, H)    condition_at "state" or "both"
    ids (B, T) -> embedding (B, T, E) ++ e at every step        condition_at "input" or "both"
           -> layers (B, T, H) -> dropout -> head -> logits (B, T, V)

The two ways in are those of seed 001's one-to-many diagram (the input x enters once, at the
first step, and the network unrolls from it) and of Karpathy's and Graves' conditioned
generators (the condition is an input of every step, so it cannot fade). The "withheld"
encoding is trained on a fraction of the examples (the task's --condition-dropout), so the same
model also knows the unconditioned distribution and evaluation can say what the condition is
worth.

`model.conditioned_on(condition)` returns a module with the LanguageModel contract
(`forward(ids, state)`, `begin_state(batch_size)`), so rnnkit.generate.generate and its beam
search sample from it unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .._checks import dataclass_from_dict, is_int
from ..layers import Dropout
from .language_model import LanguageModelConfig, _make_layers

CONDITION_AT = ("state", "input", "both")

State = Tensor | tuple[Tensor, ...]


@dataclass
class ConditionedLMConfig:
    """Architecture of a `ConditionedLanguageModel` (everything needed to rebuild it)."""

    vocab_size: int
    num_conditions: int = 0  # C categories (0 when the condition is a vector)
    condition_size: int = 0  # F numbers per condition (0 when it is a category)
    condition_dim: int = 32  # D: width of the encoded condition
    condition_at: str = "both"  # "state", "input" or "both"
    cell: str = "lstm"
    embedding_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.0
    backend: str = "auto"
    nonlinearity: str | None = None

    def __post_init__(self) -> None:
        for name in ("num_conditions", "condition_size"):
            value = getattr(self, name)
            if not is_int(value) or value < 0:
                raise ValueError(f"ConditionedLanguageModel: {name} must be an int >= 0")
        if (self.num_conditions > 0) == (self.condition_size > 0):
            raise ValueError(
                "ConditionedLanguageModel: give either num_conditions (categories) or "
                f"condition_size (vectors); got {self.num_conditions} and {self.condition_size}"
            )
        if not is_int(self.condition_dim) or self.condition_dim < 1:
            raise ValueError("ConditionedLanguageModel: condition_dim must be an int >= 1")
        if self.condition_at not in CONDITION_AT:
            raise ValueError(
                f"ConditionedLanguageModel: condition_at must be one of {', '.join(CONDITION_AT)}"
                f"; got {self.condition_at!r}"
            )
        self.stack_config()  # checks the shared settings (cell, sizes, dropout, backend)

    def stack_config(self) -> LanguageModelConfig:
        """The token model's settings, checked as a LanguageModel's."""
        return LanguageModelConfig(
            vocab_size=self.vocab_size,
            cell=self.cell,
            embedding_dim=max(self.embedding_dim, 1),
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
            backend=self.backend,
            nonlinearity=self.nonlinearity,
        )

    @property
    def feeds_input(self) -> bool:
        return self.condition_at in ("input", "both")

    @property
    def sets_state(self) -> bool:
        return self.condition_at in ("state", "both")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ConditionedLMConfig:
        return dataclass_from_dict(cls, data, "model config")


class ConditionedLanguageModel(nn.Module):
    """Predicts the next token at every position given a condition.

    Call: (ids (B, T) long, condition, state=None, withheld=None) -> (logits (B, T, V), state).
    `condition` is (B,) long category ids or (B, F) floats; `withheld` (B,) bool marks rows
    whose condition is replaced by the learned "withheld" encoding. `state` None starts from the
    condition's initial state (`begin_state`).
    """

    def __init__(self, config: ConditionedLMConfig) -> None:
        super().__init__()
        self.config = config
        V, E, D, H, L = (
            config.vocab_size,
            config.embedding_dim,
            config.condition_dim,
            config.hidden_size,
            config.num_layers,
        )
        if config.num_conditions:
            self.condition_encoder: nn.Module = nn.Embedding(config.num_conditions, D)
        else:
            self.condition_encoder = nn.Linear(config.condition_size, D)
        self.withheld_condition = nn.Parameter(torch.zeros(D))
        self.embedding = nn.Embedding(V, E)
        self.layers = _make_layers(config.stack_config(), E + (D if config.feeds_input else 0))
        self.initial_state = nn.Linear(D, L * H) if config.sets_state else None
        self.dropout = Dropout(config.dropout)
        self.head = nn.Linear(H, V)

    def encode_condition(self, condition: Tensor, withheld: Tensor | None = None) -> Tensor:
        """(B,) ids or (B, F) values -> (B, D); withheld rows get the learned withheld vector."""
        if self.config.num_conditions:
            if condition.dim() != 1 or condition.dtype != torch.long:
                raise ValueError(
                    "ConditionedLanguageModel: a category condition is a (B,) long tensor; got "
                    f"{condition.dtype} of shape {tuple(condition.shape)}"
                )
        elif condition.dim() != 2 or condition.shape[1] != self.config.condition_size:
            raise ValueError(
                f"ConditionedLanguageModel: a vector condition is (B, "
                f"{self.config.condition_size}); got shape {tuple(condition.shape)}"
            )
        else:
            condition = condition.to(self.head.weight.dtype)
        encoded = self.condition_encoder(condition)  # (B, D)
        if withheld is not None:
            encoded = torch.where(withheld[:, None], self.withheld_condition, encoded)
        return encoded

    def begin_state(self, encoded: Tensor) -> State:
        """The initial state of the layer stack for encoded conditions (B, D)."""
        config = self.config
        B, L, H = encoded.shape[0], config.num_layers, config.hidden_size
        zeros = encoded.new_zeros(L, B, H)
        if self.initial_state is None:
            h = zeros
        else:
            h = torch.tanh(self.initial_state(encoded)).reshape(B, L, H).transpose(0, 1)
            h = h.contiguous()
        carried = getattr(self.layers, "cell", None)
        if carried is not None and carried.num_carried:
            return (h, *(zeros.clone() for _ in range(carried.num_carried)))
        return h

    def step_inputs(self, ids: Tensor, encoded: Tensor) -> Tensor:
        features = self.embedding(ids)  # (B, T, E)
        if self.config.feeds_input:
            repeated = encoded[:, None, :].expand(-1, ids.shape[1], -1)  # (B, T, D)
            features = torch.cat([features, repeated.to(features.dtype)], dim=-1)
        return features

    def run(self, ids: Tensor, encoded: Tensor, state: State | None) -> tuple[Tensor, State]:
        """Tokens given the encoded condition (B, D): (logits (B, T, V), state)."""
        if state is None:
            state = self.begin_state(encoded)
        output, state = self.layers(self.step_inputs(ids, encoded), state)
        return self.head(self.dropout(output)), state

    def forward(
        self,
        ids: Tensor,
        condition: Tensor,
        state: State | None = None,
        withheld: Tensor | None = None,
    ) -> tuple[Tensor, State]:
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(
                "ConditionedLanguageModel: ids must be a (B, T) long tensor; got "
                f"{ids.dtype} of shape {tuple(ids.shape)}"
            )
        return self.run(ids, self.encode_condition(condition, withheld), state)

    def conditioned_on(self, condition: Tensor | None) -> ConditionBound:
        """A LanguageModel-like module for one condition ((1,) id or (1, F) values; None: the
        condition withheld), for rnnkit.generate.generate."""
        return ConditionBound(self, condition)


class ConditionBound(nn.Module):
    """A ConditionedLanguageModel with its condition fixed: `forward(ids, state)` and
    `begin_state(batch_size)` as a LanguageModel has them (every row gets the condition)."""

    def __init__(self, model: ConditionedLanguageModel, condition: Tensor | None) -> None:
        super().__init__()
        self.model = model
        self.condition = condition
        self.config = model.config

    def _encoded(self, batch_size: int) -> Tensor:
        model = self.model
        if self.condition is None:
            encoded = model.withheld_condition[None, :]
        else:
            encoded = model.encode_condition(self.condition)
        return encoded.expand(batch_size, -1)

    def begin_state(self, batch_size: int, device=None) -> State:
        return self.model.begin_state(self._encoded(batch_size))

    def forward(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return self.model.run(ids, self._encoded(ids.shape[0]), state)
