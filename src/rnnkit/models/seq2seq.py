"""An encoder-decoder with attention over rnnkit layers: teacher forcing, greedy and beam decoding.

Shapes: B batch, S source length, T target length, E embedding_dim, H hidden_size, D = 2 for a
bidirectional encoder else 1, L num_layers, V target vocabulary size. Ids follow rnnkit's Vocab:
<unk>=0, <pad>=1, <bos>=2, <eos>=3 in both vocabularies.

    source ids (B, S) -> embedding -> encoder (packed, D directions) -> outputs (B, S, D·H)
        outputs -> memory: Linear(D·H -> H)                      values attention reads  (B, S, H)
        final states (L·D, B, H) -> bridge: tanh(Linear(D·H -> H)) initial decoder state (L, B, H)
    <bos> y_1 ... y_{T-1} (B, T) -> embedding -> decoder with attention -> logits (B, T, V)
        trained to predict y_1 ... y_{T-1} <eos> (teacher forcing: the true previous token is fed)

Attention (a padded source position gets weight exactly 0, so padding never changes a result):

    "bahdanau" (additive, Bahdanau et al. 2015): score(s, m) = vᵀ tanh(W_q s + W_k m); the query is
               the decoder's top-layer state BEFORE the step, and the context joins the step's
               input [emb(y_{t-1}); c_t]. The decoder therefore runs step by step.
    "luong"    (Luong et al. 2015, their "general" score): score(s, m) = s · W m; the query is
               the state AFTER the step, so the decoder runs over all T steps in one layer call.
    "dot"      (Luong's "dot" score): score(s, m) = s · m, otherwise as "luong".
    "none"     no attention: the plain encoder-decoder of seed 000, where the source reaches the
               decoder only through its initial state (c_t is left out below).

All then form the attentional state h̃_t = tanh(W_c [s_t; c_t]) and logits = W_o h̃_t.
Decoding one step is `decode` with T = 1, the same code that training runs, so greedy decoding
reproduces what teacher forcing scores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .._checks import BACKENDS, dataclass_from_dict, is_int, is_number
from ..data import pack
from ..generate import beam_search
from ..layers import GRU, LSTM, RNN
from ..layers.lengths import pad_packed

__all__ = [
    "ATTENTIONS",
    "SEQ2SEQ_CELLS",
    "Attention",
    "Seq2SeqConfig",
    "Seq2SeqModel",
    "beam_decode",
    "greedy_decode",
]

UNK_ID, PAD_ID, BOS_ID, EOS_ID = 0, 1, 2, 3  # rnnkit.data.SPECIALS order
NEVER_GENERATED = (UNK_ID, PAD_ID, BOS_ID)  # decoding may only end a target with <eos>

SEQ2SEQ_CELLS = ("rnn", "gru", "lstm")
ATTENTIONS = ("bahdanau", "luong", "dot", "none")
_LAYERS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}

State = Tensor | tuple[Tensor, Tensor]
Memory = tuple[Tensor, Tensor, Tensor]  # (values (B, S, H), keys (B, S, H), mask (B, S) bool)


@dataclass
class Seq2SeqConfig:
    """Architecture of a `Seq2SeqModel`; everything needed to rebuild it before loading weights."""

    source_vocab_size: int
    target_vocab_size: int
    cell: str = "gru"  # one of SEQ2SEQ_CELLS, for encoder and decoder
    embedding_dim: int = 64  # E, both embeddings
    hidden_size: int = 128  # H: every layer's state width, and the attention memory's
    num_layers: int = 1  # L: encoder and decoder each
    bidirectional: bool = True  # the encoder reads the source both ways
    attention: str = "bahdanau"  # one of ATTENTIONS
    dropout: float = 0.0  # on embeddings, between stacked layers and before the head
    backend: str = "auto"  # rnnkit backend of the layers

    def __post_init__(self) -> None:
        _check_config(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Seq2SeqConfig:
        return dataclass_from_dict(cls, data, "seq2seq model config")


def _check_int(name: str, value, minimum: int) -> None:
    if not is_int(value):
        raise TypeError(f"Seq2SeqModel: {name} must be an int; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"Seq2SeqModel: {name} must be >= {minimum}; got {value}")


def _check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"Seq2SeqModel: {name} must be one of {', '.join(choices)}; got {value!r}")


def _check_config(config: Seq2SeqConfig) -> None:
    _check_int("source_vocab_size", config.source_vocab_size, 5)  # specials + one token
    _check_int("target_vocab_size", config.target_vocab_size, 5)
    _check_int("embedding_dim", config.embedding_dim, 1)
    _check_int("hidden_size", config.hidden_size, 1)
    _check_int("num_layers", config.num_layers, 1)
    _check_choice("cell", config.cell, SEQ2SEQ_CELLS)
    _check_choice("attention", config.attention, ATTENTIONS)
    _check_choice("backend", config.backend, BACKENDS)
    if not isinstance(config.bidirectional, bool):
        raise TypeError("Seq2SeqModel: bidirectional must be True or False")
    dropout = config.dropout
    if not is_number(dropout) or not 0 <= dropout < 1:
        raise ValueError(f"Seq2SeqModel: dropout must be in [0, 1); got {dropout!r}")


class Attention(nn.Module):
    """Scores a query against every memory position, masks padding, and averages the values.

    `keys(values)` is computed once per source (it does not depend on the decoder);
    forward(query (B, T, H), memory) -> (context (B, T, H), weights (B, T, S)), each row of
    weights summing to 1 over the unmasked positions and 0 on masked ones.
    """

    def __init__(self, kind: str, hidden_size: int) -> None:
        super().__init__()
        _check_choice("attention", kind, ATTENTIONS)
        self.kind = kind
        H = hidden_size
        if kind == "bahdanau":
            self.key_proj = nn.Linear(H, H, bias=False)  # W_k
            self.query_proj = nn.Linear(H, H)  # W_q (its bias is the additive score's bias)
            self.score_vector = nn.Linear(H, 1, bias=False)  # v
        elif kind == "luong":
            self.key_proj = nn.Linear(H, H, bias=False)  # W: s · W m = s · (W m)

    def keys(self, values: Tensor) -> Tensor:
        """What queries are scored against, (B, S, H): W_k m, W m, or m itself."""
        return self.key_proj(values) if hasattr(self, "key_proj") else values

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        values, keys, mask = memory  # (B, S, H), (B, S, H), (B, S)
        if self.kind == "bahdanau":
            q = self.query_proj(query)  # (B, T, H)
            hidden = torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, H)
            scores = self.score_vector(hidden).squeeze(-1)  # (B, T, S)
        else:
            scores = query @ keys.transpose(1, 2)  # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T, S); every source has >= 1 position
        return weights @ values, weights  # (B, T, H), (B, T, S)


def _map_state(state: State, fn) -> State:
    return tuple(fn(t) for t in state) if isinstance(state, tuple) else fn(state)


class Seq2SeqModel(nn.Module):
    """Encoder-decoder with attention (see the module docstring for the equations).

    `forward(source, source_lengths, target_in)` is the teacher-forced pass training uses:
    source (B, S) long padded with <pad>, source_lengths (B,), target_in (B, T) = <bos> followed
    by the target without its last token -> logits (B, T, V). `encode` and `decode` are its two
    halves; decoding calls `decode` one step at a time.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        E, H, L = config.embedding_dim, config.hidden_size, config.num_layers
        D = 2 if config.bidirectional else 1
        layer = _LAYERS[config.cell]
        between = float(config.dropout) if L > 1 else 0.0
        common = {"num_layers": L, "batch_first": True, "dropout": between}
        common["backend"] = config.backend
        self.source_embedding = nn.Embedding(config.source_vocab_size, E, padding_idx=PAD_ID)
        self.encoder = layer(E, H, bidirectional=config.bidirectional, **common)
        self.memory_proj = nn.Linear(D * H, H)
        n_state = 2 if config.cell == "lstm" else 1
        self.bridges = nn.ModuleList(nn.Linear(D * H, H) for _ in range(n_state))
        self.target_embedding = nn.Embedding(config.target_vocab_size, E, padding_idx=PAD_ID)
        self.additive = config.attention == "bahdanau"
        self.decoder = layer(E + H if self.additive else E, H, **common)
        self.attention = Attention(config.attention, H)
        self.attends = config.attention != "none"
        self.combine = nn.Linear(2 * H if self.attends else H, H)  # W_c
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(H, config.target_vocab_size)  # W_o

    # ------------------------------------------------------------ encoder

    def encode(self, source: Tensor, lengths: Tensor) -> tuple[Memory, State]:
        """(memory, initial decoder state) for a padded source batch.

        The source is packed, so the backward direction starts at each source's own last token
        and the final states are those of the true ends; `memory` masks the padding.
        """
        _check_batch(source, lengths)
        S = source.shape[1]
        embedded = self.dropout(self.source_embedding(source))  # (B, S, E)
        packed_out, final = self.encoder(pack(embedded, lengths))
        outputs = pad_packed(packed_out, S)  # (B, S, DH)
        return self.memory_and_state(outputs, final, lengths)

    def memory_and_state(self, outputs: Tensor, final, lengths: Tensor) -> tuple[Memory, State]:
        """encode's second half: the encoder's outputs (B, S, D*H), zero past each length, and
        final states -> (memory, initial decoder state)."""
        B, S = outputs.shape[0], outputs.shape[1]
        values = self.memory_proj(outputs)  # (B, S, H)
        positions = torch.arange(S, device=outputs.device)
        mask = positions[None, :] < lengths.to(outputs.device)[:, None]  # (B, S)
        memory = (values, self.attention.keys(values), mask)
        finals = final if isinstance(final, tuple) else (final,)
        L, D, H = self.config.num_layers, 2 if self.config.bidirectional else 1, self.hidden_size
        state = []
        for bridge, tensor in zip(self.bridges, finals, strict=True):
            # (L·D, B, H) -> (L, D, B, H) -> (L, B, D·H): both directions of a layer side by side
            joined = tensor.reshape(L, D, B, H).permute(0, 2, 1, 3).reshape(L, B, D * H)
            state.append(torch.tanh(bridge(joined)))  # (L, B, H)
        return memory, (tuple(state) if len(state) == 2 else state[0])

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    # ------------------------------------------------------------ decoder

    def decode(
        self, target_in: Tensor, state: State, memory: Memory
    ) -> tuple[Tensor, State, Tensor]:
        """Teacher-forced decoding of target_in (B, T) from `state`.

        Returns logits (B, T, V), the decoder state after the last step and the attention
        weights (B, T, S) (None for attention "none").
        """
        embedded = self.dropout(self.target_embedding(target_in))  # (B, T, E)
        if self.additive:
            outputs, contexts, weights = [], [], []
            for t in range(target_in.shape[1]):
                top = (state[0] if isinstance(state, tuple) else state)[-1]  # (B, H)
                context, weight = self.attention(top.unsqueeze(1), memory)  # (B, 1, H), (B,1,S)
                step_in = torch.cat([embedded[:, t : t + 1], context], dim=-1)  # (B, 1, E + H)
                output, state = self.decoder(step_in, state)  # (B, 1, H)
                outputs.append(output)
                contexts.append(context)
                weights.append(weight)
            output = torch.cat(outputs, dim=1)  # (B, T, H)
            context, weights = torch.cat(contexts, dim=1), torch.cat(weights, dim=1)
        else:
            output, state = self.decoder(embedded, state)  # (B, T, H)
            if not self.attends:
                attentional = torch.tanh(self.combine(output))  # (B, T, H)
                return self.head(self.dropout(attentional)), state, None
            context, weights = self.attention(output, memory)  # (B, T, H), (B, T, S)
        attentional = torch.tanh(self.combine(torch.cat([output, context], dim=-1)))  # (B,T,H)
        return self.head(self.dropout(attentional)), state, weights

    def forward(self, source: Tensor, lengths: Tensor, target_in: Tensor) -> Tensor:
        memory, state = self.encode(source, lengths)
        logits, _, _ = self.decode(target_in, state, memory)
        return logits  # (B, T, V)


def _check_batch(source, lengths) -> None:
    if not isinstance(source, Tensor) or source.dim() != 2 or source.dtype != torch.long:
        raise ValueError(
            f"Seq2SeqModel: source must be a (B, S) long tensor of ids; got "
            f"{getattr(source, 'dtype', type(source).__name__)} "
            f"{tuple(getattr(source, 'shape', ()))}"
        )
    if not isinstance(lengths, Tensor) or lengths.shape != (source.shape[0],):
        raise ValueError(
            f"Seq2SeqModel: lengths must be a (B,) tensor with B = {source.shape[0]}; got "
            f"{tuple(getattr(lengths, 'shape', ()))}"
        )


# ---------------------------------------------------------------- decoding


def _check_max_length(max_length) -> None:
    if not is_int(max_length) or max_length < 1:
        raise ValueError(f"decode: max_length must be a positive int; got {max_length!r}")


@torch.no_grad()
def greedy_decode(
    model: Seq2SeqModel, source: Tensor, lengths: Tensor, max_length: int
) -> list[list[int]]:
    """The most probable next token at every step, for a whole batch at once.

    Each target stops at its first <eos> (not included) or after `max_length` tokens;
    <unk>, <pad> and <bos> are never produced. Returns one list of target ids per source.
    """
    _check_max_length(max_length)
    memory, state = model.encode(source, lengths)
    B = source.shape[0]
    previous = torch.full((B, 1), BOS_ID, dtype=torch.long, device=source.device)  # (B, 1)
    finished = torch.zeros(B, dtype=torch.bool, device=source.device)
    steps = []
    for _ in range(max_length):
        logits, state, _ = model.decode(previous, state, memory)  # (B, 1, V)
        logits[..., list(NEVER_GENERATED)] = float("-inf")
        previous = logits.argmax(dim=-1)  # (B, 1)
        steps.append(previous.squeeze(1))
        finished |= previous.squeeze(1) == EOS_ID
        if bool(finished.all()):
            break
    ids = torch.stack(steps, dim=1).tolist()  # (B, steps)
    return [row[: row.index(EOS_ID)] if EOS_ID in row else row for row in ids]


class _OneSourceDecoder(nn.Module):
    """One encoded source seen as a language model over target tokens, so that
    rnnkit.generate.beam_search can decode it: the state carries the memory along with the
    decoder state, and begin_state(n) repeats both for n beams."""

    def __init__(self, model: Seq2SeqModel, memory: Memory, state: State) -> None:
        super().__init__()
        self.model = model
        self._memory, self._state = memory, state

    def begin_state(self, batch_size: int, device=None):
        state = _map_state(self._state, lambda t: t.expand(-1, batch_size, -1))  # (L, n, H)
        memory = tuple(t.expand(batch_size, *t.shape[1:]) for t in self._memory)  # (n, S, ...)
        return (state, memory)

    def forward(self, ids: Tensor, state):
        decoder_state, memory = state
        logits, decoder_state, _ = self.model.decode(ids, decoder_state, memory)
        return logits, (decoder_state, memory)


@torch.no_grad()
def beam_decode(
    model: Seq2SeqModel,
    source: Tensor,
    lengths: Tensor,
    max_length: int,
    beam_size: int,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Beam search per source (rnnkit.generate.beam_search): hypotheses end at <eos> and
    compete on log-probability / (tokens, <eos> included) ** length_penalty.
    beam_size = 1 gives exactly greedy_decode's targets."""
    _check_max_length(max_length)
    memory, state = model.encode(source, lengths)
    results = []
    for b in range(source.shape[0]):
        one_memory = tuple(t[b : b + 1] for t in memory)
        one_state = _map_state(state, lambda t, b=b: t[:, b : b + 1])
        ids, _ = beam_search(
            _OneSourceDecoder(model, one_memory, one_state),
            [BOS_ID],
            max_length,
            beam_size,
            eos_id=EOS_ID,
            banned_ids=NEVER_GENERATED,
            length_penalty=length_penalty,
        )
        results.append(ids)
    return results
