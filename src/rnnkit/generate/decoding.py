"""Text generation from a recurrent language model: greedy, sampling (temperature, top-k, top-p)
and beam search.

The model is anything with the LanguageModel contract:

    model(ids (B, T) long, state) -> (logits (B, T, V), state)
    model.begin_state(batch_size, device=None) -> state (a tensor or a tuple of tensors)

`generate` primes the state by running the start tokens through the model once (d2l's
`predict_ch8('time traveller', 10, net, vocab)`), then feeds one token per step, carrying the
state. Character models start from the prefix (a newline when it is empty); word models start
from <bos> followed by the prefix's tokens and stop at <eos>.

The lower-level pieces are public and work on whole tensors, with no Python loop over the
vocabulary:

    sample_next(logits (..., V), ...) -> ids (...)   one draw per row
    beam_search(model, start_ids, length, beam_size, ...) -> (ids, score)

Decoders: greedy and sampled decoding of an rnnkit LanguageModel on the CPU run fused
(rnnkit.generate.fused: the whole loop in one call into the cell's compiled library, sampling
included, several times faster); beam search and every other model run eagerly, one model call
per token. `generate(..., decoder=)` chooses ("auto", "fused" or "eager"; an explicit "fused"
that cannot serve the call raises) and the returned text says which ran (`text.decoder`,
`text.reason`). The fused sampler draws from its own splitmix64 stream: the same seed gives the
same text, but not the eager path's text for that seed.

Shapes: B batch (or beams), T time steps, V vocabulary size.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import is_int, is_number

__all__ = ["DECODERS", "GeneratedText", "beam_search", "filter_logits", "generate", "sample_next"]

DECODERS = ("auto", "fused", "eager")
_log = logging.getLogger(__name__)


# ---------------------------------------------------------------- argument checks


def _check_length(length) -> None:
    if not is_int(length) or length < 0:
        raise ValueError(f"generate: length must be an integer >= 0; got {length!r}")


def _check_temperature(temperature) -> None:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(
            f"generate: temperature must be a finite number > 0 (1 = the model's distribution; "
            f"use greedy=True for argmax); got {temperature!r}"
        )


def _check_top_k(top_k) -> None:
    if top_k is not None and (not is_int(top_k) or top_k < 1):
        raise ValueError(f"generate: top_k must be None or an integer >= 1; got {top_k!r}")


def _check_top_p(top_p) -> None:
    if top_p is not None and (not is_number(top_p) or not 0 < top_p <= 1):
        raise ValueError(f"generate: top_p must be None or a number in (0, 1]; got {top_p!r}")


def _check_decoder(decoder) -> None:
    if decoder not in DECODERS:
        raise ValueError(f"generate: decoder must be one of {', '.join(DECODERS)}; got {decoder!r}")


def _check_beam_size(beam_size) -> None:
    if beam_size is not None and (not is_int(beam_size) or beam_size < 1):
        raise ValueError(f"generate: beam_size must be None or an integer >= 1; got {beam_size!r}")


# ---------------------------------------------------------------- sampling


def filter_logits(
    logits: Tensor, *, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """Set to -inf every logit outside the top-k and outside the nucleus (top-p).

    logits: (..., V). top-k keeps the k largest (exactly k, even with ties). top-p keeps
    the smallest set of most probable tokens whose probabilities sum to >= p, and always at
    least the most probable one. Applied in that order, as in most samplers.
    """
    if top_k is not None and top_k < logits.shape[-1]:
        kept = logits.topk(top_k, dim=-1).indices  # (..., k)
        mask = torch.ones_like(logits, dtype=torch.bool).scatter_(-1, kept, False)
        logits = logits.masked_fill(mask, -math.inf)
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (..., V)
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above
        drop_sorted = mass_before >= top_p  # the first token has mass_before 0 < p: always kept
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, -math.inf)
    return logits


def sample_next(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one token id per row of `logits` (..., V) -> (...) long.

    The distribution is softmax(logits / temperature), restricted to the top-k and then to the
    top-p nucleus and renormalized. Tokens whose logit is -inf (masked) are never drawn.
    `generator` makes the draw reproducible without touching torch's global generator.
    """
    _check_temperature(temperature)
    _check_top_k(top_k)
    _check_top_p(top_p)
    scaled = filter_logits(logits.float() / temperature, top_k=top_k, top_p=top_p)
    probs = scaled.softmax(dim=-1).reshape(-1, logits.shape[-1])  # (N, V)
    ids = torch.multinomial(probs, 1, generator=generator)  # (N, 1)
    return ids.reshape(logits.shape[:-1])


# ---------------------------------------------------------------- model plumbing


def _map_state(state, fn):
    """Apply `fn(tensor)` to every tensor of a (nested tuple/list) state."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return fn(state)
    return type(state)(_map_state(s, fn) for s in state)


def _flatten_state(state) -> list[Tensor]:
    if state is None:
        return []
    if isinstance(state, Tensor):
        return [state]
    return [t for s in state for t in _flatten_state(s)]


def _state_batch_dims(model: nn.Module, device) -> list[int]:
    """The batch dimension of every tensor of the model's state, found by comparing the
    shapes of begin_state(1) and begin_state(2) (rnnkit layers keep it at dim 1)."""
    one = _flatten_state(model.begin_state(1, device=device))
    two = _flatten_state(model.begin_state(2, device=device))
    dims = []
    for a, b in zip(one, two, strict=True):
        differing = [d for d in range(a.dim()) if a.shape[d] != b.shape[d]]
        if len(differing) != 1:
            raise ValueError(
                f"generate: cannot find the batch dimension of a state tensor of shape "
                f"{tuple(a.shape)} (begin_state(2) gives {tuple(b.shape)})"
            )
        dims.append(differing[0])
    return dims


def _index_state(state, index: Tensor, batch_dims: list[int]):
    """Pick (and repeat) batch entries of every state tensor: the beams' parents."""
    dims = iter(batch_dims)
    return _map_state(state, lambda t: t.index_select(next(dims), index))


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _banned_mask(vocab_size: int, banned: Sequence[int], device) -> Tensor:
    """(V,) bool, True for the ids that must never be generated."""
    mask = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    mask[list(banned)] = True
    if bool(mask.all()):
        raise ValueError(
            "generate: every token of the vocabulary is a special token; nothing to generate"
        )
    return mask


def _last_logits(model: nn.Module, ids: Tensor, state) -> tuple[Tensor, object]:
    """Run ids (B, T) and return the logits of the last step (B, V) and the new state."""
    logits, state = model(ids, state)  # (B, T, V)
    return logits[:, -1, :], state


# ---------------------------------------------------------------- beam search


def beam_search(
    model: nn.Module,
    start_ids: Sequence[int] | Tensor,
    length: int,
    beam_size: int,
    *,
    eos_id: int | None = None,
    banned_ids: Sequence[int] = (),
    length_penalty: float = 1.0,
) -> tuple[list[int], float]:
    """The most probable continuation of `start_ids` that beam search finds.

    Keeps `beam_size` live hypotheses ranked by total log-probability. Each step scores every
    (hypothesis, token) pair at once, (beams, V), and keeps the 2 × beam_size best candidates:
    those ending in `eos_id` (and ranking within the first beam_size, so beam_size = 1 is
    exactly greedy decoding) become finished hypotheses, the rest refill the live beams.
    Finished and, at `length` tokens, live hypotheses compete on
    score / (generated tokens) ** length_penalty (the <eos> counts as a token): 0 compares raw
    log-probabilities, which favour short texts; 1 (the default) compares the mean per token.
    The search stops early once beam_size hypotheses have finished and the best live one,
    normalized at its current length, is no better than the worst of them (the usual heuristic).

    Returns (generated ids without the start and without a final <eos>, total log-probability).
    `banned_ids` are never generated. Runs under the caller's grad/eval mode.
    """
    _check_beam_size(beam_size)
    device = _model_device(model)
    start = torch.as_tensor(start_ids, dtype=torch.long, device=device).reshape(1, -1)  # (1, T)
    if start.shape[1] == 0:
        raise ValueError("beam_search: start_ids must hold at least one token")
    if length == 0:
        return [], 0.0
    batch_dims = _state_batch_dims(model, device)

    logits, state = _last_logits(model, start, model.begin_state(1, device=device))
    banned = _banned_mask(logits.shape[-1], banned_ids, device)

    def normalized(score: float, n_tokens: int) -> float:
        return score / n_tokens**length_penalty

    live_tokens = torch.empty(1, 0, dtype=torch.long, device=device)  # (beams, t)
    live_scores = torch.zeros(1, device=device)  # (beams,)
    finished: list[tuple[float, float, list[int]]] = []  # (normalized, score, ids), best first

    for step in range(length):
        log_probs = logits.float().masked_fill(banned, -math.inf).log_softmax(dim=-1)  # (beams, V)
        candidates = (live_scores[:, None] + log_probs).reshape(-1)  # (beams * V,)
        k = min(2 * beam_size, candidates.numel())
        top_scores, top_flat = candidates.topk(k)
        vocab_size = log_probs.shape[-1]
        parents, tokens = top_flat // vocab_size, top_flat % vocab_size

        keep = []
        for rank, (score, parent, token) in enumerate(
            zip(top_scores.tolist(), parents.tolist(), tokens.tolist(), strict=True)
        ):
            if score == -math.inf:
                break
            if eos_id is not None and token == eos_id:
                if rank < beam_size:
                    ids = live_tokens[parent].tolist()
                    finished.append((normalized(score, step + 1), score, ids))
                continue
            keep.append(rank)
            if len(keep) == beam_size:
                break
        finished = sorted(finished, key=lambda f: f[0], reverse=True)[:beam_size]
        if not keep:
            break
        keep_t = torch.tensor(keep, device=device)
        parents, tokens = parents[keep_t], tokens[keep_t]
        live_scores = top_scores[keep_t]
        live_tokens = torch.cat([live_tokens[parents], tokens[:, None]], dim=1)
        if len(finished) >= beam_size and (
            normalized(float(live_scores[0]), step + 1) <= finished[-1][0]
        ):
            break
        if step + 1 < length:
            state = _index_state(state, parents, batch_dims)
            logits, state = _last_logits(model, tokens[:, None], state)  # feed (beams, 1)

    n_live = live_tokens.shape[1]
    for score, ids in zip(live_scores.tolist(), live_tokens.tolist(), strict=True):
        if n_live > 0:
            finished.append((normalized(score, n_live), score, ids))
    if not finished:
        return [], 0.0
    _, best_score, best_ids = max(finished, key=lambda f: f[0])
    return best_ids, best_score


# ---------------------------------------------------------------- generate


class GeneratedText(str):
    """The generated continuation (a str), plus which decoder produced it and why:
    `decoder` is "fused", "eager" or "beam"; `reason` is one line."""

    decoder: str
    reason: str

    def __new__(cls, text: str, decoder: str = "eager", reason: str = "") -> GeneratedText:
        self = super().__new__(cls, text)
        self.decoder, self.reason = decoder, reason
        return self


def _choose_decoder(model, decoder: str, beam_size) -> tuple[str, str]:
    """("fused" | "eager" | "beam", why), or a one-line error when decoder="fused" cannot run."""
    if beam_size is not None:
        if decoder == "fused":
            raise ValueError(
                "generate: decoder='fused' cannot run beam search; use decoder='auto' or 'eager'"
            )
        return "beam", "beam search runs eagerly (one model call per step for all beams)"
    if decoder == "eager":
        return "eager", "decoder='eager' asked for explicitly"
    from .fused import unavailable_reason

    reason = unavailable_reason(model)
    if reason is None:
        why = "asked for explicitly" if decoder == "fused" else "decoder='auto' and it serves"
        return "fused", f"fused decoder (one compiled loop): {why} this model"
    if decoder == "fused":
        raise ValueError(f"generate: decoder='fused' cannot serve this model: {reason}")
    return "eager", f"eager decoder: the fused one cannot serve this model ({reason})"


def generate(
    model: nn.Module,
    vocab,
    tokenizer,
    prefix: str = "",
    length: int = 100,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    beam_size: int | None = None,
    seed: int | None = None,
    stop_at_eos: bool | None = None,
    start_with_bos: bool | None = None,
    decoder: str = "auto",
) -> GeneratedText:
    """Continue `prefix` with up to `length` tokens and return the continuation as text.

    Strategies: `greedy=True` takes the argmax at every step (temperature, top_k and top_p
    cannot change the argmax, so they are ignored); otherwise each token is drawn from
    softmax(logits / temperature) restricted to the top_k tokens and the top_p nucleus;
    `beam_size=B` runs `beam_search` (deterministic; not combinable with greedy or the sampling
    options). <unk>, <pad> and <bos> are never generated; <eos> ends a word model's text
    (stop_at_eos, default True for word models and False for character models) and is never
    generated when stop_at_eos is False, so the text then has exactly `length` tokens.
    `start_with_bos` (default: word models) primes the model with <bos> before the prefix, for
    models trained on framed texts; a character model without it starts from the prefix, or a
    newline when the prefix is empty.
    `seed` draws from a local torch.Generator: the same seed gives the same text and torch's
    global generator is left alone (without a seed the global generator is used).

    The returned continuation is the detokenized prefix + generation minus the detokenized
    prefix, so `prefix + generate(...)` reads right (word models get their joining space).
    The model is put in eval mode under torch.no_grad() and its training flag restored.

    `decoder`: "auto" (fused for greedy and sampling when the model allows it, else eager),
    "fused" (raise if it cannot serve) or "eager". The result is a `GeneratedText` whose
    `decoder` and `reason` say what ran; the choice is also logged at DEBUG level. The fused
    sampler's random stream is not the eager one's (same seed, same text, per decoder).
    """
    _check_length(length)
    _check_temperature(temperature)
    _check_top_k(top_k)
    _check_top_p(top_p)
    _check_beam_size(beam_size)
    _check_decoder(decoder)
    if not isinstance(prefix, str):
        raise TypeError(f"generate: prefix must be a str; got {type(prefix).__name__}")
    if beam_size is not None and (greedy or top_k is not None or top_p is not None):
        raise ValueError("generate: beam_size cannot be combined with greedy, top_k or top_p")
    if beam_size is not None and temperature != 1.0:
        raise ValueError("generate: beam_size cannot be combined with temperature != 1")

    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab_size is not None and vocab_size != len(vocab):
        raise ValueError(
            f"generate: the model predicts {vocab_size} tokens but the vocabulary has "
            f"{len(vocab)}; load the vocabulary saved with the model"
        )
    word = tokenizer.kind == "word"
    if stop_at_eos is None:
        stop_at_eos = word
    if start_with_bos is None:
        start_with_bos = word
    prefix_tokens = tokenizer.tokenize(prefix)
    if start_with_bos:
        start_ids = [vocab.bos_id, *vocab.encode(prefix_tokens)]
    else:
        start_ids = vocab.encode(prefix_tokens if prefix_tokens else tokenizer.tokenize("\n"))
    banned = [vocab.unk_id, vocab.pad_id, vocab.bos_id]
    if not stop_at_eos:
        banned.append(vocab.eos_id)
    eos_id = vocab.eos_id if stop_at_eos else None
    chosen, reason = _choose_decoder(model, decoder, beam_size)
    _log.debug("generate: %s", reason)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if beam_size is not None:
                new_ids, _ = beam_search(
                    model, start_ids, length, beam_size, eos_id=eos_id, banned_ids=banned
                )
            else:
                decode = _decode_step_by_step
                if chosen == "fused":
                    from .fused import fused_decode as decode
                new_ids = decode(
                    model,
                    start_ids,
                    length,
                    banned=banned,
                    eos_id=eos_id,
                    greedy=greedy,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    seed=seed,
                )
    finally:
        model.train(was_training)
    text = _continuation_text(vocab, tokenizer, prefix_tokens, new_ids)
    return GeneratedText(text, chosen, reason)


def _decode_step_by_step(
    model, start_ids, length, *, banned, eos_id, greedy, temperature, top_k, top_p, seed
) -> list[int]:
    """Greedy or sampled decoding: prime with the start tokens, then one token per step."""
    device = _model_device(model)
    generator = None
    if seed is not None and not greedy:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
    if length == 0:
        return []
    start = torch.tensor([start_ids], dtype=torch.long, device=device)  # (1, T)
    logits, state = _last_logits(model, start, model.begin_state(1, device=device))  # (1, V)
    banned_mask = _banned_mask(logits.shape[-1], banned, device)

    new_ids: list[int] = []
    for step in range(length):
        logits = logits.masked_fill(banned_mask, -math.inf)
        if greedy:
            next_id = logits.argmax(dim=-1)  # (1,)
        else:
            next_id = sample_next(
                logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
            )
        token = int(next_id)
        if token == eos_id:
            break
        new_ids.append(token)
        if step + 1 < length:
            logits, state = _last_logits(model, next_id.reshape(1, 1), state)
    return new_ids


def _continuation_text(vocab, tokenizer, prefix_tokens: list[str], new_ids: list[int]) -> str:
    """Detokenize prefix + generation and cut the prefix off, so joins (spaces) come out right."""
    new_tokens = vocab.decode(new_ids)
    full = tokenizer.detokenize([*prefix_tokens, *new_tokens])
    head = tokenizer.detokenize(prefix_tokens)
    if full.startswith(head):
        return full[len(head) :]
    return tokenizer.detokenize(new_tokens)
