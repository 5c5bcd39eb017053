"""The tag task: CoNLL-style `token<TAB>tag` lines -> a many-to-many TaggingModel (+CRF).

File format: one token and its tag per line, separated by a tab; a blank line between
sentences; `-DOCSTART-` lines (CoNLL-2003 document markers) are skipped. Prediction input: one
token per line (a tag column, if present, is ignored), blank lines between sentences; the output
is one line of space-separated tags per sentence.

With `--crf` and BIO tags (O, B-X, I-X) the CRF forbids I-X except after B-X or I-X, in training
and decoding — unless the training data itself breaks that rule (IOB1-style data), in which case
the constraints are left off and the task state says so (`bio_constraints: false`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from .._checks import Option
from ..data import Vocab
from ..data.feature_ratios import log_count_ratios
from ..data.token_features import hashed_token_features
from ..models.crf import bio_constraints
from ..models.tagger import IGNORE, TaggerConfig, TaggingModel
from . import metrics
from .base import UNIDIRECTIONAL, WORD_DROPOUT, Batch, Task, line_error, read_lines

MAX_WORD_CHARS = 30  # characters of a word the char features read (longer words are cut)


@dataclass
class Sentence:
    tokens: list[str]
    tags: list[str] | None  # None for prediction inputs


def _is_bio(tags: Sequence[str]) -> bool:
    return any(t[:2] in ("B-", "I-") for t in tags) and all(
        t == "O" or t[:2] in ("B-", "I-") for t in tags
    )


def _feature_bags(sentences: list[list[list[int]]], steps: int) -> dict[str, Tensor]:
    """The batch's token features as EmbeddingBag takes them: every position of the (B, T)
    grid, row by row, one bag (empty past a sentence's end)."""
    sizes = []
    flat: list[int] = []
    for tokens in sentences:
        for ids in tokens:
            sizes.append(len(ids))
            flat += ids
        sizes += [0] * (steps - len(tokens))
    counts = torch.tensor(sizes, dtype=torch.long)
    return {
        "feature_ids": torch.tensor(flat, dtype=torch.long),
        "feature_offsets": torch.cumsum(counts, 0) - counts,
    }


class TagTask(Task):
    name = "tag"
    own_options = (
        Option(
            "crf",
            True,
            "a linear-chain CRF output layer (Viterbi decoding; BIO transitions I-X only "
            "after B-X or I-X) instead of per-token softmax",
        ),
        Option("char_features", True, "add a character-level BiLSTM encoding of each token"),
        Option(
            "feature_buckets",
            # measured on CoNLL-2002 Dutch NER: +0.018 entity F1 over seeds (docs/tasks.md)
            2**18,
            "a linear path beside the recurrent one: each token's spelling and context "
            "features (the feature CRF's: words at -2..+2, affixes, shape, case), hashed into "
            "this many features, added to the emissions (0 turns it off)",
            minimum=0,
            metavar="N",
            saved_before=0,
        ),
        Option(
            "feature_scaling",
            "none",
            "how the feature path weighs its features: 'nb' scales each feature's weight for "
            "each tag by the feature's naive-Bayes log-count ratio in the training tokens (that "
            "tag against the others; Wang and Manning 2012's NBSVM); 'none' leaves them as "
            "they are",
            choices=("nb", "none"),
            saved_before="none",
        ),
        WORD_DROPOUT,
        UNIDIRECTIONAL,
    )
    defaults: ClassVar[dict] = {
        # the initialization and arithmetic these defaults were measured with
        "recurrent_init": "uniform",
        "precision": "float32",
        "tokens": "word",
        "embedding_dim": 64,
        "hidden_size": 128,
        "dropout": 0.2,
        "lr": 3e-3,
        "warmup_steps": 20,
        "batch_size": 16,
        # every 100 steps the held-out evaluations took 160 s beside a 180 s budget on
        # CoNLL-2002 Dutch (340 s wall against 217 s at 500; benchmarks/task_defaults.py)
        "eval_every": 500,
        "save_every": 500,
        "threads": 1,  # small models: one thread was faster than two (docs/benchmarks.md)
        # CoNLL-2002 Dutch, seed 0: 5 / 7 / 10 passes 0.7919 / 0.8050 / 0.8015, no limit in
        # 600 s (22 passes) 0.7857; 7 passes over seeds 0-2 0.8057 against 0.8005 for 180 s
        # unlimited; on its first 1,500 sentences 7 / 20 / 40 / 60 passes 0.606 / 0.601 / 0.616
        # / 0.609; with --max-time 180 (time ending 2 of 3 runs first) 0.8041 (docs/tasks.md)
        "max_epochs": 7,
    }

    @classmethod
    def check_given(cls, given: dict, config) -> None:
        if "feature_scaling" in given and config.feature_buckets == 0:
            raise ValueError(
                "--feature-scaling sets the feature path, which --feature-buckets 0 leaves out; "
                "drop it"
            )

    def __init__(self, config) -> None:
        if config.tokens != "word":
            raise ValueError(
                f"--tokens {config.tokens} does not apply to --task tag: its file gives one token "
                "per line (--char-features adds each token's characters)"
            )
        super().__init__(config)
        self.vocab: Vocab | None = None
        self.chars: Vocab | None = None
        self.tags: list[str] = []
        self.bio_constraints = False
        self.feature_buckets = 0  # set by fit() or a saved state

    @property
    def best_by(self) -> tuple[str, str]:  # entity F1 for BIO tags, else token accuracy
        return ("entity_f1", "max") if _is_bio(self.tags) else ("token_accuracy", "max")

    # ------------------------------------------------------------ reading

    def _sentences(self, path, with_tags: bool) -> list[Sentence]:
        sentences: list[Sentence] = []
        tokens: list[str] = []
        tags: list[str] = []

        def close() -> None:
            if tokens:
                sentences.append(Sentence(list(tokens), list(tags) if with_tags else None))
                tokens.clear()
                tags.clear()

        expected = "token<TAB>tag" if with_tags else "a token, or token<TAB>tag"
        for number, line in enumerate(read_lines(path, self.config.encoding), 1):
            if not line.strip():
                close()
                continue
            columns = line.split("\t")
            if columns[0].startswith("-DOCSTART-"):
                continue
            if len(columns) > 2 or (with_tags and len(columns) != 2):
                hint = " (space-separated? use a tab)" if " " in line.strip() else ""
                raise line_error(
                    path,
                    number,
                    f"expected 2 tab-separated columns ({expected}), found {len(columns)}{hint}",
                )
            token = columns[0].strip()
            if not token:
                raise line_error(path, number, "the token (first column) is empty")
            tokens.append(token)
            if with_tags:
                tag = columns[1].strip()
                if not tag:
                    raise line_error(path, number, "the tag (second column) is empty")
                tags.append(tag)
        close()
        if not sentences:
            raise ValueError(f"{path} holds no sentences; expected {expected} lines")
        return sentences

    def read_examples(self, path) -> list[Sentence]:
        return self._sentences(path, with_tags=True)

    def read_inputs(self, path) -> list[Sentence]:
        return self._sentences(path, with_tags=False)

    def examples_from_python(self, inputs: Sequence, targets: Sequence | None) -> list[Sentence]:
        if targets is not None and len(targets) != len(inputs):
            raise ValueError(f"tag: {len(inputs)} sentences but {len(targets)} tag sequences")
        out = []
        for i, tokens in enumerate(inputs):
            if isinstance(tokens, str) or not all(isinstance(t, str) and t for t in tokens):
                raise TypeError(f"tag: inputs[{i}] must be a list of non-empty token strings")
            if not tokens:
                raise ValueError(f"tag: inputs[{i}] is an empty sentence")
            tags = None
            if targets is not None:
                tags = [str(t) for t in targets[i]]
                if len(tags) != len(tokens):
                    raise ValueError(
                        f"tag: sentence {i} has {len(tokens)} tokens but {len(tags)} tags"
                    )
            out.append(Sentence(list(tokens), tags))
        return out

    # ------------------------------------------------------------ fitted state

    def fit(self, examples: list[Sentence]) -> None:
        tokens = [t for s in examples for t in s.tokens]
        self.vocab = Vocab.build(
            tokens, max_size=self.config.vocab_size, min_freq=self.config.min_freq
        )
        self.chars = (
            Vocab.build(c for t in tokens for c in t) if self.config.char_features else None
        )
        self.tags = sorted({t for s in examples for t in s.tags})
        self.feature_buckets = self.config.feature_buckets
        self.bio_constraints = False
        if self.config.crf and _is_bio(self.tags):
            allowed, start = bio_constraints(self.tags)
            index = {t: i for i, t in enumerate(self.tags)}
            self.bio_constraints = not any(
                not start[index[s.tags[0]]]
                or any(not allowed[index[a]][index[b]] for a, b in itertools.pairwise(s.tags))
                for s in examples
            )

    def state_dict(self) -> dict:
        return {
            "vocab": self.vocab.to_dict(),
            "chars": self.chars.to_dict() if self.chars is not None else None,
            "tags": self.tags,
            "bio_constraints": self.bio_constraints,
            "feature_buckets": self.feature_buckets,
        }

    def load_state_dict(self, state: dict) -> None:
        self.vocab = Vocab.from_dict(state["vocab"])
        self.chars = Vocab.from_dict(state["chars"]) if state["chars"] is not None else None
        self.tags = list(state["tags"])
        self.bio_constraints = bool(state["bio_constraints"])
        self.feature_buckets = int(state.get("feature_buckets", 0))  # runs before the path

    # ------------------------------------------------------------ model

    def build_model(self, model_config: dict | None = None) -> TaggingModel:
        if model_config is not None:
            return TaggingModel(TaggerConfig.from_dict(model_config))
        c = self.config
        allowed = start = None
        if self.bio_constraints:
            allowed, start = bio_constraints(self.tags)
        return TaggingModel(
            TaggerConfig(
                vocab_size=len(self.vocab),
                num_tags=len(self.tags),
                embedding_dim=c.embedding_dim,
                padding_idx=self.vocab.pad_id,
                unk_idx=self.vocab.unk_id,
                cell=c.cell,
                hidden_size=c.hidden_size,
                num_layers=c.num_layers,
                bidirectional=not c.unidirectional,
                dropout=c.dropout,
                backend=c.backend,
                crf=c.crf,
                word_dropout=(
                    TaggerConfig.word_dropout if c.word_dropout is None else c.word_dropout
                ),
                allowed=allowed,
                allowed_start=start,
                char_vocab_size=len(self.chars) if self.chars is not None else 0,
                feature_buckets=self.feature_buckets,
                feature_ratios=self.feature_buckets > 0 and c.feature_scaling == "nb",
            )
        )

    def init_model(self, model: TaggingModel, data) -> None:
        super().init_model(model, data)
        self.copy_word_vectors(model.embedding)
        if model.config.feature_ratios:  # of the training tokens; saved with the weights
            bags, tags = [], []
            for _, sentence_tags, _, features in self.encoded(data, "train"):
                bags += features
                tags += sentence_tags.tolist()
            ratios = log_count_ratios(bags, tags, self.feature_buckets, len(self.tags))
            model.features.ratios.copy_(ratios)

    # ------------------------------------------------------------ batches

    def encode(self, sentence: Sentence) -> tuple:
        ids = torch.tensor(self.vocab.encode(sentence.tokens), dtype=torch.long)
        index = {t: i for i, t in enumerate(self.tags)}
        tags = None
        if sentence.tags is not None:
            tags = torch.tensor([index.get(t, IGNORE) for t in sentence.tags], dtype=torch.long)
        chars = None
        if self.chars is not None:
            chars = [
                torch.tensor(self.chars.encode(token[:MAX_WORD_CHARS]), dtype=torch.long)
                for token in sentence.tokens
            ]
        features = None
        if self.feature_buckets:
            features = hashed_token_features(sentence.tokens, self.feature_buckets)
        return ids, tags, chars, features

    def collate(self, items: list) -> Batch:
        ids = [i for i, _, _, _ in items]
        lengths = torch.tensor([len(i) for i in ids], dtype=torch.long)
        tensors = {
            "ids": pad_sequence(ids, batch_first=True, padding_value=self.vocab.pad_id),
            "lengths": lengths,
        }
        if all(t is not None for _, t, _, _ in items):
            tensors["tags"] = pad_sequence(
                [t for _, t, _, _ in items], batch_first=True, padding_value=IGNORE
            )
        if self.chars is not None:
            T = int(lengths.max())
            C = max(len(w) for _, _, chars, _ in items for w in chars)
            grid = torch.full((len(items), T, C), self.chars.pad_id, dtype=torch.long)
            char_lengths = torch.zeros(len(items), T, dtype=torch.long)
            for b, (_, _, words, _) in enumerate(items):
                for t, word in enumerate(words):
                    grid[b, t, : len(word)] = word
                    char_lengths[b, t] = len(word)
            tensors["chars"], tensors["char_lengths"] = grid, char_lengths
        if self.feature_buckets:
            tensors |= _feature_bags([f for _, _, _, f in items], int(lengths.max()))
        return Batch(tensors, size=len(items), tokens=int(lengths.sum()))

    def _emissions(self, model: TaggingModel, t: dict) -> Tensor:
        return model(
            t["ids"],
            t["lengths"],
            t.get("chars"),
            t.get("char_lengths"),
            t.get("feature_ids"),
            t.get("feature_offsets"),
        )

    def loss(self, model: TaggingModel, batch: Batch) -> Tensor:
        t = batch.tensors
        return model.loss(self._emissions(model, t), t["tags"], t["lengths"])

    def loss_weight(self, batch: Batch) -> float:
        if self.config.crf:
            return batch.size  # the CRF's loss is a mean over sentences
        return int((batch.tensors["tags"] != IGNORE).sum())  # else over the known tags

    # ------------------------------------------------------------ inference

    @torch.no_grad()
    def predict(self, model: TaggingModel, inputs: list[Sentence], **options) -> list:
        if options:
            raise ValueError(f"tag takes no prediction options; got {', '.join(options)}")
        model.eval()
        size = self.config.batch_size
        out: list[list[str]] = []
        items = [self.encode(Sentence(s.tokens, None)) for s in inputs]
        for start in range(0, len(items), size):
            t = self.collate(items[start : start + size]).tensors
            for path in model.decode(self._emissions(model, t), t["lengths"]):
                out.append([self.tags[i] for i in path])
        return out

    def format_output(self, output: list[str]) -> str:
        return " ".join(output)

    def evaluate(self, model: TaggingModel, examples: list[Sentence], **options) -> dict:
        predicted = self.predict(model, examples, **options)
        gold = [s.tags for s in examples]
        entities = metrics.entity_f1(gold, predicted)
        return {
            "token_accuracy": metrics.token_accuracy(gold, predicted),
            "entity_f1": entities["f1"],
            "entity_precision": entities["precision"],
            "entity_recall": entities["recall"],
            "sentences": len(examples),
            "tokens": sum(len(s.tokens) for s in examples),
            "unknown_tags": sum(t not in self.tags for s in gold for t in s),
        }


TASK = TagTask
