"""Seed 004: d2l's concise character RNN (section 8.6) on The Time Machine, with rnnkit.

d2l trains `nn.RNN(len(vocab), 256)` on one-hot characters of H. G. Wells' The Time Machine and
generates text greedily from 'time traveller'. This script does the same with rnnkit's pieces:

    d2l                                        here
    read_time_machine()                        read_time_machine(path)  (+ Gutenberg header cut)
    load_corpus_time_machine(max_tokens=10000) load_corpus(path, max_tokens=10000)
    Vocab(tokens), 28 tokens                   rnnkit.data.Vocab: 31 tokens (see below)
    seq_data_iter_sequential(32, 35)           rnnkit.data.LMBatchStream(ids, 32, 35)
    RNNModel(nn.RNN(28, 256), one-hot)         LanguageModel(cell="rnn", embedding_dim=0, 256)
    train_ch8(net, ..., lr=1, num_epochs=500)  train(model, stream, epochs=500, lr=1)
    grad_clipping(net, 1)                      torch.nn.utils.clip_grad_norm_(..., 1)
    predict_ch8('time traveller', 50, ...)     predict('time traveller', 50, ...) via generate

Preprocessing as d2l's: every line becomes re.sub('[^A-Za-z]+', ' ', line).strip().lower(), the
lines' characters are concatenated (d2l's corpus joins them without a separator), the vocabulary
is built over the whole book and the corpus cut to its first 10 000 characters. d2l's copy of the
book has no Project Gutenberg header and footer; this one does, so only the text between the
'*** START OF' and '*** END OF' lines is kept. The book is a different edition from d2l's, so its
first 10 000 characters, and the numbers, differ slightly.

rnnkit's Vocab always puts <unk>, <pad>, <bos>, <eos> first: 31 tokens instead of d2l's 28
(<unk>, space, 26 letters). <pad>, <bos>, <eos> never occur in the corpus, so the model learns
to give them almost no probability, and `generate` never emits them.

Run from the repository root:

    .venv/bin/python examples/seed004_time_machine.py            # 500 epochs, as d2l
    .venv/bin/python examples/seed004_time_machine.py --quick    # a few epochs
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rnnkit.data import CharTokenizer, LMBatchStream, Vocab, detach_state, read_text
from rnnkit.generate import generate
from rnnkit.models import LanguageModel, LanguageModelConfig

DEFAULT_DATA = Path("/work/shared/data/timemachine/timemachine.txt")
QUICK_EPOCHS = 10


@dataclass
class Seed004Config:
    """d2l 8.6's hyperparameters (batch_size, num_steps = 32, 35; lr = 1; num_epochs = 500)."""

    data: Path = DEFAULT_DATA
    max_tokens: int = 10_000  # d2l's load_data_time_machine keeps the first 10 000 characters
    batch_size: int = 32
    seq_len: int = 35  # d2l's num_steps
    hidden_size: int = 256  # d2l's num_hiddens
    lr: float = 1.0
    clip: float = 1.0  # global gradient norm, d2l's grad_clipping(net, 1)
    epochs: int = 500
    backend: str = "auto"
    seed: int = 0
    log_every: int = 10  # d2l prints a prediction and plots perplexity every 10 epochs


# ---------------------------------------------------------------- data


def strip_gutenberg(text: str) -> str:
    """The text between the '*** START OF' and '*** END OF' marker lines, when both are there."""
    start = re.search(r"^\*\*\* ?START OF.*$", text, flags=re.MULTILINE)
    end = re.search(r"^\*\*\* ?END OF.*$", text, flags=re.MULTILINE)
    if start and end and start.end() < end.start():
        return text[start.end() : end.start()]
    return text


def read_time_machine(path: str | Path) -> list[str]:
    """d2l's read_time_machine: the book's lines, letters only, lower case."""
    lines = strip_gutenberg(read_text(path)).splitlines()
    return [re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in lines]


def load_corpus(path: str | Path, max_tokens: int = 10_000) -> tuple[torch.Tensor, Vocab]:
    """d2l's load_corpus_time_machine: character ids of the book (first `max_tokens`; <= 0 keeps
    all) and the vocabulary built over the whole book."""
    tokens = CharTokenizer().tokenize("".join(read_time_machine(path)))
    vocab = Vocab.build(tokens)
    if max_tokens > 0:
        tokens = tokens[:max_tokens]
    return torch.tensor(vocab.encode(tokens), dtype=torch.long), vocab


# ---------------------------------------------------------------- model and training


def build_model(vocab_size: int, hidden_size: int = 256, backend: str = "auto") -> LanguageModel:
    """d2l's RNNModel: one-hot input -> rnnkit.RNN(vocab_size, hidden_size) (tanh) -> linear."""
    config = LanguageModelConfig(
        vocab_size=vocab_size,
        cell="rnn",
        embedding_dim=0,  # one-hot input, as d2l's F.one_hot(inputs.T.long(), vocab_size)
        hidden_size=hidden_size,
        backend=backend,
    )
    return LanguageModel(config)  # nn.RNN's own initialization, as in d2l


def train_epoch(
    model: nn.Module,
    stream: LMBatchStream,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    clip: float,
) -> tuple[float, float]:
    """One pass over the corpus, d2l's train_epoch_ch8 with sequential batches: the state
    starts at zero, then carries from batch to batch, detached (truncated BPTT).

    Returns (perplexity = exp(mean cross-entropy per character), characters per second).
    """
    model.train()
    state = None
    total_loss, total_tokens = 0.0, 0
    start = time.perf_counter()
    for _ in range(stream.batches_per_epoch):
        x, y, new_epoch = stream.next_batch()  # (B, T) each
        state = None if new_epoch else detach_state(state)
        logits, state = model(x, state)  # (B, T, V)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))  # mean over B·T
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total_loss += loss.item() * y.numel()
        total_tokens += y.numel()
    elapsed = time.perf_counter() - start
    return math.exp(total_loss / total_tokens), total_tokens / elapsed


def predict(prefix: str, num_preds: int, model: nn.Module, vocab: Vocab) -> str:
    """d2l's predict_ch8: the prefix primes the state, then `num_preds` argmax characters."""
    return prefix + generate(model, vocab, CharTokenizer(), prefix, num_preds, greedy=True)


@dataclass
class Seed004Result:
    perplexities: list[float]  # one per epoch
    tokens_per_s: float  # of the last epoch
    seconds_per_epoch: float  # mean over all epochs
    predictions: dict[str, str]  # prefix -> prefix + 50 characters
    vocab_size: int


def train(
    model: nn.Module,
    stream: LMBatchStream,
    config: Seed004Config,
    vocab: Vocab,
    log: Callable[[str], None] = print,
    max_seconds: float | None = None,
) -> tuple[list[float], float, float]:
    """d2l's train_ch8: SGD, clipping, perplexity per epoch; logs every `log_every` epochs.
    Stops early after `max_seconds` of training. Returns (perplexities, last tokens/s, seconds
    per epoch)."""
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    perplexities, speed = [], 0.0
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        ppl, speed = train_epoch(model, stream, loss_fn, optimizer, config.clip)
        perplexities.append(ppl)
        out_of_time = max_seconds is not None and time.perf_counter() - start > max_seconds
        if epoch % config.log_every == 0 or epoch == config.epochs or out_of_time:
            sample = predict("time traveller", 50, model, vocab)
            log(f"epoch {epoch:4d}  perplexity {ppl:6.2f}  {speed:8.0f} tokens/s  {sample!r}")
        if out_of_time:
            break
    seconds_per_epoch = (time.perf_counter() - start) / len(perplexities)
    return perplexities, speed, seconds_per_epoch


def run(
    config: Seed004Config,
    log: Callable[[str], None] = print,
    max_seconds: float | None = None,
) -> Seed004Result:
    """Load the book, train, predict. torch's global RNG is seeded inside and restored after."""
    ids, vocab = load_corpus(config.data, config.max_tokens)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(len(vocab), config.hidden_size, config.backend)
        stream = LMBatchStream(ids, config.batch_size, config.seq_len, seed=config.seed)
        log(
            f"{len(ids)} characters, vocabulary of {len(vocab)}, {stream.batches_per_epoch} "
            f"batches of {config.batch_size} x {config.seq_len} per epoch"
        )
        perplexities, speed, per_epoch = train(model, stream, config, vocab, log, max_seconds)
    predictions = {p: predict(p, 50, model, vocab) for p in ("time traveller", "traveller")}
    return Seed004Result(perplexities, speed, per_epoch, predictions, len(vocab))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the book (utf-8 text)")
    parser.add_argument("--epochs", type=int, default=500, help="d2l uses 500 (default)")
    parser.add_argument("--backend", default="auto", help="rnnkit backend: auto, native, reference")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs, for tests")
    parser.add_argument("--max-tokens", type=int, default=10_000, help="corpus length; 0 = all")
    parser.add_argument("--max-time", type=float, default=None, help="stop after SECONDS")
    parser.add_argument("--log-every", type=int, default=None, help="epochs between reports")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    epochs = QUICK_EPOCHS if args.quick else args.epochs
    if epochs < 1:
        parser.error(f"--epochs must be at least 1; got {epochs}")
    log_every = args.log_every or (5 if args.quick else 10)
    config = Seed004Config(
        data=args.data,
        max_tokens=args.max_tokens,
        epochs=epochs,
        backend=args.backend,
        seed=args.seed,
        log_every=log_every,
    )
    try:
        result = run(config, max_seconds=args.max_time)
    except ValueError as error:  # bad file, too short a text, unknown backend: one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    ppl = result.perplexities[-1]
    print(
        f"perplexity {ppl:.2f} after {len(result.perplexities)} epochs, "
        f"{result.tokens_per_s:.0f} tokens/s, {result.seconds_per_epoch:.3f} s/epoch"
    )
    for text in result.predictions.values():
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
