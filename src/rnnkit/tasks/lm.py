"""lm: a token-level language model on plain text, trained by the one trainer as any task.

Data: one text file (`--data`, or the built-in corpus); the last --val-fraction of its characters
is held out (or `--val-data FILE`). Tokens are characters or words (`--tokens`). A word model
frames every non-empty line as `<bos> words... <eos>` (the line's newline becomes its `<eos>`),
so that starting from `<bos>` and stopping at `<eos>`, as `rnnkit generate` does, are learned.

Batches are windows of `--seq-len` tokens over the whole text, `--batch-size` rows side by side
(`LMBatchStream`): in sequential batching each row continues the previous batch's row, so the
state is carried from batch to batch (detached: truncated BPTT) and reset where an epoch starts
again from another offset; random batching starts every batch from zeros.

Held out: the mean cross-entropy over every token of the held-out part (nats per token),
bits per character and perplexity; a word model reports perplexity with and without its
boundary tokens (`perplexity_with_boundaries`, `perplexity_without_boundaries`).
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import Option
from ..data import (
    Vocab,
    builtin_corpus,
    detach_state,
    frame_lines,
    make_tokenizer,
    read_text,
    split_train_val,
)
from ..data.batching import LMBatchStream
from ..data.segment import check_segmenter
from ..models import LanguageModel, LanguageModelConfig
from .base import PYTHON_SOURCE, Batch, Task, TaskData

BUILTIN = "builtin:pydoc_topics"
OR_BUILTIN = " (or omit --data to train on the built-in corpus)"  # for a missing --data
BOUNDARIES = ("none", "line")  # how a text's tokens are framed: as they are, or per line

# The automatic dropout (`--dropout` not given), by passes over the training text: see
# rnnkit.train.config.AUTO_DROPOUT.


class LanguageModelTask(Task):
    name = "lm"
    own_options = (
        Option(
            "seq_len",
            64,
            "time steps per batch (truncated BPTT length)",
            metavar="N",
            minimum=1,
        ),
        Option(
            "batching",
            "sequential",
            "sequential: each batch row continues the previous batch's row and the state is "
            "carried (detached); random: random windows, state reset every batch",
            choices=("sequential", "random"),
        ),
        Option(
            "tie_weights",
            False,
            "share the embedding matrix with the output layer (word models; needs "
            "--embedding-dim equal to --hidden-size)",
        ),
    )
    best_by = ("loss", "min")
    carries: ClassVar[bool] = True

    def __init__(self, config) -> None:
        self.config = config  # the automatic dropout is resolved by fit (it needs the text)
        self.vocab: Vocab | None = None
        self.dropout: float | None = None
        self.boundaries = "line" if config.tokens == "word" else "none"
        self.segmenter = config.segmenter

    @classmethod
    def check_config(cls, config) -> None:
        if config.tokens == "numbers":
            raise ValueError("--tokens numbers applies to --task classify, not the language model")
        if config.tie_weights and config.embedding_dim != config.hidden_size:
            raise ValueError(
                f"--tie-weights needs --embedding-dim equal to --hidden-size (the output layer "
                f"reuses the embedding matrix); got --embedding-dim {config.embedding_dim} and "
                f"--hidden-size {config.hidden_size}"
            )

    @property
    def tokenizer(self):
        return make_tokenizer(self.config.tokens, self.segmenter)

    # ------------------------------------------------------------ data

    def tokens_of(self, text: str) -> list[str]:
        """The text's tokens as the model reads them (framed per line for word models)."""
        tokens = self.tokenizer.tokenize(text)
        return frame_lines(tokens) if self.boundaries == "line" else tokens

    def load_data(self, train=None, val=None) -> TaskData:
        config = self.config
        if train is None:
            if config.data:  # only the language model has a corpus of its own to fall back on
                text = read_text(config.data, config.encoding, if_missing=OR_BUILTIN)
            else:
                text = builtin_corpus()
            name = config.data or BUILTIN
        elif isinstance(train, str):
            text, name = train, PYTHON_SOURCE
        else:
            raise TypeError(f"lm: the training data is a text (str); got {type(train).__name__}")
        if val is None and config.val_data is not None:
            val = read_text(config.val_data, config.encoding)
        if val is None:
            train_text, val_text = split_train_val(text, config.val_fraction)
        else:
            train_text, val_text = text, val
        val_tokens = self.tokens_of(val_text)
        if len(val_tokens) < 2:
            raise ValueError(
                f"the held-out part ({len(val_text)} characters, --val-fraction "
                f"{config.val_fraction}) has {len(val_tokens)} tokens; at least 2 are needed "
                "(use a longer text or a larger --val-fraction)"
            )
        source = {
            "data": name,
            "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
            "characters": len(text),
        }
        if config.val_data is not None:
            source["val_data"] = config.val_data
        data = TaskData(train=self.tokens_of(train_text), val=val_tokens, source=source)
        data.cache["val_characters"] = len(val_text)
        return data

    def read_examples(self, path) -> list[str]:
        return self.tokens_of(read_text(path, self.config.encoding))

    def read_inputs(self, path) -> list:
        raise ValueError(
            "a language model predicts no labels: use rnnkit generate --checkpoint DIR --prefix "
            "TEXT to continue a text, or rnnkit evaluate to score one"
        )

    def examples_from_python(self, inputs, targets) -> list[str]:
        if not isinstance(inputs, str):
            raise TypeError(f"lm: the text must be a str; got {type(inputs).__name__}")
        return self.tokens_of(inputs)

    # ------------------------------------------------------------ preprocessing state

    def fit(self, tokens: list[str]) -> None:
        from ..train.config import auto_dropout

        config = self.config
        self.vocab = Vocab.build(tokens, max_size=config.vocab_size, min_freq=config.min_freq)
        if config.dropout is not None:
            self.dropout = float(config.dropout)
        else:
            passes = planned_passes(config, len(tokens))
            self.dropout = auto_dropout(passes)

    def state_dict(self) -> dict:
        return {
            "vocab": self.vocab.to_dict(),
            "dropout": self.dropout,
            "boundaries": self.boundaries,
            "segmenter": self.segmenter,
        }

    def load_state_dict(self, state: dict) -> None:
        self.vocab = Vocab.from_dict(state["vocab"])
        self.dropout = float(state["dropout"])
        if state["boundaries"] not in BOUNDARIES:
            raise ValueError(f"boundaries must be one of {', '.join(BOUNDARIES)}")
        self.boundaries = state["boundaries"]
        # runs saved before segmenters kept a run of Chinese characters as one word
        self.segmenter = check_segmenter(state.get("segmenter", "none"))

    def run_files(self) -> dict[str, dict]:
        return {"vocab.json": self.vocab.to_dict()}  # the vocabulary, readable on its own

    # ------------------------------------------------------------ model

    def build_model(self, model_config: dict | None = None) -> LanguageModel:
        if model_config is not None:
            return LanguageModel(LanguageModelConfig.from_dict(model_config))
        config = self.config
        return LanguageModel(
            LanguageModelConfig(
                vocab_size=len(self.vocab),
                cell=config.cell,
                embedding_dim=config.embedding_dim,
                hidden_size=config.hidden_size,
                num_layers=config.num_layers,
                dropout=self.dropout,
                tie_weights=config.tie_weights,
                backend=config.backend,
                nonlinearity=config.nonlinearity,
            )
        )

    def init_model(self, model: LanguageModel, data: TaskData) -> None:
        super().init_model(model, data)
        self.copy_word_vectors(model.embedding)

    def chrono_horizon(self, data: TaskData) -> int:
        return max(2, self.config.seq_len)  # the longest dependency a window trains

    # ------------------------------------------------------------ batches and loss

    def ids(self, tokens: list[str]) -> Tensor:
        return torch.tensor(self.vocab.encode(tokens), dtype=torch.long)

    def encode(self, tokens: list[str]) -> Tensor:
        return self.ids(tokens)

    def collate(self, items: list[Tensor]) -> Batch:
        """Windows of equal length (B, T + 1) -> inputs and next-token targets."""
        windows = torch.stack(items)
        x, y = windows[:, :-1], windows[:, 1:]
        return Batch({"x": x, "y": y}, size=x.shape[0], tokens=x.numel())

    def batch_source(self, data: TaskData) -> LMBatches:
        config = self.config
        ids = data.cache.get("train_ids")
        if ids is None:
            ids = data.cache["train_ids"] = self.ids(data.train)
        B, T = config.batch_size, config.seq_len
        if ids.numel() < B * T + 1:
            raise ValueError(
                f"the training part has {ids.numel()} tokens; --batch-size {B} --seq-len {T} "
                f"need at least {B * T + 1} (use a longer text, or lower --batch-size or "
                "--seq-len)"
            )
        return LMBatches(LMBatchStream(ids, B, T, mode=config.batching, seed=config.seed))

    def loss(self, model: LanguageModel, batch: Batch) -> Tensor:
        return self.train_loss(model, batch, None)[0]

    def loss_weight(self, batch: Batch) -> float:
        return batch.tensors["y"].numel()  # the mean is over every target token

    def train_loss(self, model: LanguageModel, batch: Batch, carry):
        x, y = batch.tensors["x"], batch.tensors["y"]
        if carry is None or batch.extra.get("reset", False):
            carry = model.begin_state(x.shape[0])  # rows jump: the carried state is stale
        dtype = model.head.weight.dtype
        logits, state = model(x, carry)  # (B, T, V)
        loss = F.cross_entropy(logits.to(dtype).reshape(-1, logits.shape[-1]), y.reshape(-1))
        return loss, detach_state(state, dtype)

    def carry_tensors(self, carry) -> list[Tensor]:
        if carry is None:
            return []
        return [carry] if isinstance(carry, Tensor) else list(carry)

    def restore_carry(self, tensors: list[Tensor], model: LanguageModel):
        if not tensors:
            return None
        expected = model.begin_state(self.config.batch_size)
        like = [expected] if isinstance(expected, Tensor) else list(expected)
        if [t.shape for t in tensors] != [t.shape for t in like]:
            raise ValueError("the saved LM state does not fit the model")
        return tensors[0] if isinstance(expected, Tensor) else tuple(tensors)

    # ------------------------------------------------------------ evaluation

    def boundary_ids(self) -> tuple[int, ...]:
        if self.boundaries == "none":
            return ()
        return (self.vocab.bos_id, self.vocab.eos_id)

    def evaluate_tokens(self, model, tokens: list[str], characters: int | None, **options):
        from ..train.metrics import evaluate_ids

        return evaluate_ids(
            model,
            self.ids(tokens),
            characters=characters,
            boundary_ids=self.boundary_ids(),
            **options,
        )

    @torch.no_grad()
    def evaluate_held_out(self, model: LanguageModel, data: TaskData) -> dict:
        characters = data.cache["val_characters"] if self.config.tokens != "char" else None
        result = self.evaluate_tokens(model, data.val, characters)
        row = {"val_loss": result.pop("loss")}
        for name in ("tokens", "characters"):
            result.pop(name)
        return {**row, **result}

    def describe_eval(self, row: dict) -> str:
        from .base import describe_train_loss

        return (
            f"step {row['step']}: {describe_train_loss(row)}, val loss {row['val_loss']:.4f} "
            f"({row['bpc']:.3f} bpc), grad norm {row.get('grad_norm', float('nan')):.3g}, lr "
            f"{row['lr']:.2e}, {row['tokens_per_s']:.0f} tokens/s, {row['elapsed']:.1f} s"
        )

    def run_metrics(self, data: TaskData, model: nn.Module) -> dict:
        return {
            "train_tokens_in_text": len(data.train),
            "val_tokens": len(data.val) - 1,
            "vocab_size": len(self.vocab),
            "dropout": self.dropout,
        }

    def evaluate(self, model: LanguageModel, examples: list[str], **options) -> dict:
        """loss (nats per token), bpc, perplexity over the tokens of a text."""
        return self.evaluate_tokens(model, examples, None, **options)

    def predict(self, model, inputs, **options):
        return self.read_inputs(None)

    def format_output(self, output) -> str:
        return str(output)


class LMBatches:
    """The language model's batch source: LMBatchStream's windows as Batches; `reset` marks a
    batch whose rows do not continue the previous batch's. After `shard(world)` each batch is
    this rank's block of rows (row b keeps continuing row b, so each rank carries its rows'
    state)."""

    def __init__(self, stream: LMBatchStream) -> None:
        self.stream = stream
        self.world = None

    def shard(self, world) -> None:
        self.world = world

    def next_batch(self) -> Batch:
        x, y, new_epoch = self.stream.next_batch()
        if self.world is not None and self.world.parallel:
            x, y = self.world.rows(x), self.world.rows(y)
        reset = new_epoch or self.stream.mode == "random"
        return Batch({"x": x, "y": y}, size=x.shape[0], tokens=x.numel(), extra={"reset": reset})

    def state_dict(self) -> dict:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)


def planned_passes(config, train_tokens: int) -> float:
    """How many times the budget goes over `train_tokens` training tokens (a time budget
    counted at the default model's nominal speed, NOMINAL_TOKENS_PER_S)."""
    from ..train.config import NOMINAL_TOKENS_PER_S

    max_steps, max_time = config.budget()
    budgets = []
    if max_steps is not None:
        budgets.append(max_steps * config.batch_size * config.seq_len)
    if max_time is not None:
        budgets.append(max_time * NOMINAL_TOKENS_PER_S)
    return min(budgets) / max(train_tokens, 1)


TASK = LanguageModelTask
