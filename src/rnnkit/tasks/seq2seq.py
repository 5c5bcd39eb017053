"""The seq2seq task: `source<TAB>target` lines -> an encoder-decoder with attention.

Sources and targets are tokenized with `--tokens char|word` and get separate vocabularies
(fitted on the training pairs; unseen tokens become <unk>). Every source ends with <eos> (so an
empty source is still one step); the decoder is trained with teacher forcing on <bos> + target
to predict target + <eos>, and decodes greedily (`--beam-size 1`) or with beam search until
<eos> or `--max-length` tokens (default: twice the longest training target, plus 10).

Metrics: exact_match (whole target string), cer (character error rate), bleu (corpus BLEU over
the task's tokens: characters for --tokens char, words for --tokens word). The trainer adds the
held-out loss (mean cross-entropy per target token, <eos> included), which picks best/.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import Option, is_int
from ..data import Vocab, make_tokenizer, pad_sequences
from ..models.seq2seq import (
    ATTENTIONS,
    EOS_ID,
    PAD_ID,
    SEQ2SEQ_CELLS,
    Seq2SeqConfig,
    Seq2SeqModel,
    beam_decode,
    greedy_decode,
)
from . import metrics
from .base import UNIDIRECTIONAL, Batch, Task, read_lines, read_pairs

__all__ = ["Pair", "Seq2SeqTask"]

_DECODE_BATCH = 256  # sources decoded at once by predict/evaluate


@dataclass
class Pair:
    """One example: a source string and its target (None for an input to predict)."""

    source: str
    target: str | None = None
    line: int | None = None  # 1-based line in the file it came from


def _decode_flags() -> dict[str, dict]:
    return {
        "beam_size": {
            "type": int,
            "default": 1,
            "metavar": "K",
            "help": "beam width; 1 decodes greedily (default 1)",
        },
        "max_length": {
            "type": int,
            "default": None,
            "metavar": "N",
            "help": "seq2seq: stop a target after N tokens (default: twice the longest "
            "training target, plus 10)",
        },
    }


class Seq2SeqTask(Task):
    name = "seq2seq"
    own_options = (
        Option(
            "attention",
            "bahdanau",
            "attention of the decoder over the encoder states: additive (Bahdanau), Luong's "
            "general s·W·m or dot s·m score, or none (the source reaches the decoder only "
            "through its initial state)",
            choices=("bahdanau", "luong", "dot", "none"),
        ),
        UNIDIRECTIONAL,
    )
    # Measured on the date-normalisation and addition examples (docs/benchmarks.md): a 1-layer
    # GRU of 128 with a bidirectional encoder and additive attention learns both within minutes.
    defaults: ClassVar[dict] = {
        # the initialization and arithmetic these defaults were measured with
        "recurrent_init": "uniform",
        "precision": "float32",
        "cell": "gru",
        "hidden_size": 128,
        "embedding_dim": 64,
        "batch_size": 64,
        "lr": 3e-3,
        "weight_decay": 0.0,
        "warmup_steps": 50,
        # torch's kernel: a training step (B=64, S=20, T=11, H=128, one thread) took 101 ms
        # with it and 341 ms with backend="auto", which sends the packed bidirectional GRU
        # encoder to the compiled sweep (12:35 UTC; 6x at 11:50, before the policy was tuned).
        # Pass --backend auto to compare.
        "backend": "native",
        # Its ops are small (B x H GEMMs, one decoder step at a time): one thread took 155 ms
        # per step where two took 1333 ms on the shared 2-core machine (load ~10); --threads 2
        # may win on an idle one.
        "threads": 1,
    }
    best_by = ("loss", "min")
    predict_flags: ClassVar[dict] = _decode_flags()
    evaluate_flags: ClassVar[dict] = _decode_flags()

    def __init__(self, config) -> None:
        super().__init__(config)
        tokens = config.tokens if config.tokens != "numbers" else "char"
        self.tokenizer = make_tokenizer(tokens, config.segmenter)
        self.source_vocab: Vocab | None = None
        self.target_vocab: Vocab | None = None
        self.max_target_tokens = 0
        if config.tokens == "numbers":
            raise ValueError(
                "--tokens numbers applies to --task classify; seq2seq takes char or word"
            )
        if config.word_vectors is not None:
            raise ValueError("--word-vectors is not supported by --task seq2seq; drop it")
        if config.cell not in SEQ2SEQ_CELLS:
            raise ValueError(
                f"--cell {config.cell} is not available for --task seq2seq; use one of "
                f"{', '.join(SEQ2SEQ_CELLS)}"
            )

    # ------------------------------------------------------------ data

    def read_examples(self, path: str | os.PathLike) -> list[Pair]:
        pairs = []
        # blank lines separate nothing here; read_pairs skips them
        for number, source, target in read_pairs(path, self.config.encoding, "source<TAB>target"):
            pairs.append(Pair(source, target, number))
        if not pairs:
            raise ValueError(f"{path}: no source<TAB>target lines found")
        return pairs

    def read_inputs(self, path: str | os.PathLike) -> list[Pair]:
        """One source per line (a blank line is an empty source, so outputs stay line-aligned);
        a target column after a TAB is ignored."""
        lines = read_lines(path, self.config.encoding)
        return [Pair(line.split("\t", 1)[0], None, n) for n, line in enumerate(lines, 1)]

    def examples_from_python(self, inputs: Sequence, targets: Sequence | None) -> list[Pair]:
        sources = _strings("sources", inputs)
        if targets is None:
            return [Pair(s) for s in sources]
        answers = _strings("targets", targets)
        if len(answers) != len(sources):
            raise ValueError(
                f"seq2seq: got {len(sources)} sources but {len(answers)} targets; give one "
                "target per source"
            )
        return [Pair(s, t) for s, t in zip(sources, answers, strict=True)]

    # ------------------------------------------------------------ preprocessing state

    def fit(self, examples: list[Pair]) -> None:
        sources = [self.tokenizer.tokenize(p.source) for p in examples]
        targets = [self.tokenizer.tokenize(p.target) for p in examples]
        size, min_freq = self.config.vocab_size, self.config.min_freq
        self.source_vocab = Vocab.build((t for s in sources for t in s), size, min_freq)
        self.target_vocab = Vocab.build((t for s in targets for t in s), size, min_freq)
        self.max_target_tokens = max(len(t) for t in targets)

    def state_dict(self) -> dict:
        return {
            "tokens": self.tokenizer.kind,
            "segmenter": getattr(self.tokenizer, "segmenter", "none"),
            "source_vocab": self._fitted().source_vocab.to_dict(),
            "target_vocab": self.target_vocab.to_dict(),
            "max_target_tokens": self.max_target_tokens,
        }

    def load_state_dict(self, state: dict) -> None:
        # runs saved before segmenters kept a run of Chinese characters as one word
        self.tokenizer = make_tokenizer(state["tokens"], state.get("segmenter", "none"))
        self.source_vocab = Vocab.from_dict(state["source_vocab"])
        self.target_vocab = Vocab.from_dict(state["target_vocab"])
        self.max_target_tokens = int(state["max_target_tokens"])

    def _fitted(self) -> Seq2SeqTask:
        if self.source_vocab is None:
            raise RuntimeError("seq2seq: the task has no vocabularies yet; call fit first")
        return self

    # ------------------------------------------------------------ model

    def build_model(self, model_config: dict | None = None) -> Seq2SeqModel:
        if model_config is not None:
            return Seq2SeqModel(Seq2SeqConfig.from_dict(model_config))
        c = self.config
        if c.attention not in ATTENTIONS:
            raise ValueError(
                f"--attention must be one of {', '.join(ATTENTIONS)}; got {c.attention!r}"
            )
        if c.embedding_dim < 1:
            raise ValueError("--task seq2seq needs a learned embedding: --embedding-dim >= 1")
        self._fitted()
        return Seq2SeqModel(
            Seq2SeqConfig(
                source_vocab_size=len(self.source_vocab),
                target_vocab_size=len(self.target_vocab),
                cell=c.cell,
                embedding_dim=c.embedding_dim,
                hidden_size=c.hidden_size,
                num_layers=c.num_layers,
                bidirectional=not c.unidirectional,
                attention=c.attention,
                dropout=c.dropout,
                backend=c.backend,
            )
        )

    # ------------------------------------------------------------ training

    def _source_ids(self, source: str) -> Tensor:
        ids = self.source_vocab.encode(self.tokenizer.tokenize(source))
        return torch.tensor([*ids, EOS_ID], dtype=torch.long)  # (S,), never empty

    def encode(self, example: Pair) -> tuple[Tensor, Tensor]:
        target = self.target_vocab.encode(self.tokenizer.tokenize(example.target))
        return self._source_ids(example.source), torch.tensor(target, dtype=torch.long)

    def collate(self, items: list[tuple[Tensor, Tensor]]) -> Batch:
        source, lengths = pad_sequences([s for s, _ in items], PAD_ID)  # (B, S), (B,)
        bos = torch.tensor([self.target_vocab.bos_id])
        eos = torch.tensor([EOS_ID])
        target_in, _ = pad_sequences([torch.cat([bos, t]) for _, t in items], PAD_ID)  # (B, T)
        target_out, _ = pad_sequences([torch.cat([t, eos]) for _, t in items], PAD_ID)  # (B, T)
        tensors = {
            "source": source,
            "lengths": lengths,
            "target_in": target_in,
            "target_out": target_out,
        }
        return Batch(tensors, size=len(items), tokens=int(lengths.sum()))

    def loss(self, model: Seq2SeqModel, batch: Batch) -> Tensor:
        t = batch.tensors
        logits = model(t["source"], t["lengths"], t["target_in"])  # (B, T, V)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), t["target_out"].reshape(-1), ignore_index=PAD_ID
        )

    def loss_weight(self, batch: Batch) -> float:
        return int((batch.tensors["target_out"] != PAD_ID).sum())  # the target tokens

    # ------------------------------------------------------------ inference

    def predict(
        self, model: Seq2SeqModel, inputs: list[Pair], beam_size: int = 1, max_length=None
    ) -> list[str]:
        self._fitted()
        if not is_int(beam_size) or beam_size < 1:
            raise ValueError(f"--beam-size must be a positive int; got {beam_size!r}")
        if max_length is None:
            max_length = 2 * self.max_target_tokens + 10
        elif not is_int(max_length) or max_length < 1:
            raise ValueError(f"--max-length must be a positive int; got {max_length!r}")
        model.eval()
        outputs = []
        for start in range(0, len(inputs), _DECODE_BATCH):
            chunk = inputs[start : start + _DECODE_BATCH]
            source, lengths = pad_sequences([self._source_ids(p.source) for p in chunk], PAD_ID)
            if beam_size == 1:
                decoded = greedy_decode(model, source, lengths, max_length)
            else:
                decoded = beam_decode(model, source, lengths, max_length, beam_size)
            outputs.extend(self.tokenizer.detokenize(self.target_vocab.decode(d)) for d in decoded)
        return outputs

    def format_output(self, output: str) -> str:
        return output

    @torch.no_grad()
    def attention(self, model: Seq2SeqModel, source: str, target: str | None = None) -> dict:
        """Where the decoder looked: {"source": source tokens + "<eos>", "target": target tokens
        + "<eos>", "weights": (T + 1, S + 1) numpy array, row t = the attention weights while
        producing target token t (each row sums to 1)}. target None: the greedy output, whose
        weights these are exactly (decoding runs the same steps as this teacher-forced pass)."""
        self._fitted()
        if not model.attends:
            raise ValueError("this model has no attention (--attention none)")
        if target is None:
            target = self.predict(model, [Pair(source)])[0]
        model.eval()
        source_ids = self._source_ids(source)[None]  # (1, S + 1)
        target_ids = self.target_vocab.encode(self.tokenizer.tokenize(target))
        target_in = torch.tensor([[self.target_vocab.bos_id, *target_ids]])  # (1, T + 1)
        memory, state = model.encode(source_ids, torch.tensor([source_ids.shape[1]]))
        _, _, weights = model.decode(target_in, state, memory)  # (1, T + 1, S + 1)
        return {
            "source": [*self.tokenizer.tokenize(source), "<eos>"],
            "target": [*self.target_vocab.decode(target_ids), "<eos>"],
            "weights": weights[0].double().numpy(),
        }

    def evaluate(self, model: Seq2SeqModel, examples: list[Pair], **options) -> dict:
        references = [p.target for p in examples]
        hypotheses = self.predict(model, examples, **options)
        split = self.tokenizer.tokenize
        result = {
            "exact_match": metrics.exact_match(references, hypotheses),
            "bleu": metrics.corpus_bleu(
                [split(r) for r in references], [split(h) for h in hypotheses]
            ),
            "examples": len(examples),
        }
        if any(references):
            result["cer"] = metrics.character_error_rate(references, hypotheses)
        return result


def _strings(name: str, values) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"seq2seq: {name} must be a list of strings; got {type(values).__name__}")
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(
                f"seq2seq: {name}[{i}] must be a str; got {type(value).__name__} {value!r}"
            )
    return list(values)


TASK = Seq2SeqTask
