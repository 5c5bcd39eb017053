"""Held-out evaluation: mean cross-entropy over every token of a text, bits/character, perplexity.

`evaluate_ids` scores each token of the text exactly once (all but the first, which has no
context). To use a batch, the text is cut into C contiguous chunks that run side by side; each
chunk after the first is first fed the `context` tokens before it (not scored), so its first
scored tokens see almost the context they would in one long pass.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_CHUNK = 512  # scored tokens per chunk at least, so the warm-up context stays a small overhead
CONTEXT = 128  # tokens fed before a chunk's first scored token


def summarize(total_nats: float, tokens: int, characters: int) -> dict:
    """loss (nats/token), bpc (bits/character), perplexity (per token) from a summed loss."""
    loss = total_nats / tokens
    return {
        "loss": loss,
        "bpc": total_nats / math.log(2) / characters,
        "perplexity": math.exp(loss) if loss < 700 else math.inf,
        "tokens": tokens,
        "characters": characters,
    }


def _chunks(ids: Tensor, batch_size: int, context: int) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs, targets (C, L) and a mask (C, L) of the positions to score."""
    n_scored = ids.numel() - 1
    count = max(1, min(batch_size, n_scored // MIN_CHUNK))
    bounds = [round(i * n_scored / count) for i in range(count + 1)]
    rows = []
    for begin, end in itertools.pairwise(bounds):
        start = max(0, begin - context)
        rows.append((start, begin, end))
    length = max(end - start for start, _, end in rows)
    x = torch.zeros(count, length, dtype=torch.long)
    y = torch.zeros(count, length, dtype=torch.long)
    mask = torch.zeros(count, length, dtype=torch.bool)
    for row, (start, begin, end) in enumerate(rows):
        n = end - start
        x[row, :n] = ids[start:end]
        y[row, :n] = ids[start + 1 : end + 1]
        mask[row, begin - start : n] = True
    return x, y, mask


@torch.no_grad()
def evaluate_ids(
    model,
    ids: Tensor,
    *,
    characters: int | None = None,
    batch_size: int = 64,
    seq_len: int = 256,
    context: int = CONTEXT,
    boundary_ids: tuple[int, ...] = (),
) -> dict:
    """Score every next-token prediction of the id sequence `ids` (N,).

    `characters` is the length of the text in characters for bits per character (default: one
    character per scored token, right for character models). `boundary_ids` (a framed word
    model's <bos>, <eos>): also report the figures over the other targets only, as
    `loss_without_boundaries` / `perplexity_without_boundaries` (and `perplexity_with_boundaries`
    beside them, the same as `perplexity`).
    """
    if ids.dim() != 1 or ids.numel() < 2:
        raise ValueError(
            f"the text has {ids.numel()} tokens; at least 2 are needed to evaluate a prediction"
        )
    x, y, mask = _chunks(ids, batch_size, context)  # (C, L) each
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros((), dtype=torch.float64)
        inner = torch.zeros((), dtype=torch.float64)  # over targets that are no boundary
        inner_count = 0
        boundaries = torch.tensor(boundary_ids, dtype=torch.long)
        state = model.begin_state(x.shape[0])
        for t in range(0, x.shape[1], seq_len):
            logits, state = model(x[:, t : t + seq_len], state)  # (C, T, V)
            nll = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                y[:, t : t + seq_len].reshape(-1),
                reduction="none",
            )  # (C * T,)
            scored_here = mask[:, t : t + seq_len].reshape(-1)
            total += nll.double()[scored_here].sum()
            if boundary_ids:
                targets = y[:, t : t + seq_len].reshape(-1)
                keep = scored_here & ~torch.isin(targets, boundaries)
                inner += nll.double()[keep].sum()
                inner_count += int(keep.sum())
    finally:
        model.train(was_training)
    scored = ids.numel() - 1
    result = summarize(float(total), scored, characters if characters is not None else scored)
    if boundary_ids:
        result["perplexity_with_boundaries"] = result["perplexity"]
        loss = float(inner) / max(inner_count, 1)
        result["loss_without_boundaries"] = loss
        result["perplexity_without_boundaries"] = math.exp(loss) if loss < 700 else math.inf
    return result


def evaluate_text(
    model,
    vocab,
    tokenizer,
    text: str,
    batch_size: int = 64,
    seq_len: int = 256,
    framed: bool | None = None,
) -> dict:
    """loss (mean cross-entropy, nats per token, over the whole text), bpc, perplexity, tokens.

    Word models divide the summed loss by the text's characters for bpc; character models by
    the scored tokens, so bpc = loss / ln 2 there. framed: frame every line as <bos> ... <eos>
    as a word model was trained (default: for word tokenizers), and report the figures with and
    without the boundary tokens.
    """
    from ..data import frame_lines

    tokens = tokenizer.tokenize(text)
    if framed is None:
        framed = tokenizer.kind == "word"
    if framed:
        tokens = frame_lines(tokens)
    ids = torch.tensor(vocab.encode(tokens), dtype=torch.long)
    characters = len(text) if tokenizer.kind != "char" else None
    boundaries = (vocab.bos_id, vocab.eos_id) if framed else ()
    return evaluate_ids(
        model,
        ids,
        characters=characters,
        batch_size=batch_size,
        seq_len=seq_len,
        boundary_ids=boundaries,
    )
