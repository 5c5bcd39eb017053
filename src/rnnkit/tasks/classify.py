"""The classify task: `label<TAB>text` lines -> a many-to-one SequenceClassifier.

Inputs are tokenized by `--tokens` (char or word) into a Vocab built on the training part; with
`--tokens numbers` the text column is a sequence of numeric vectors ("1 2 3; 4 5 6": time steps
separated by ';', values by spaces or commas), standardized per feature with the training
part's mean and standard deviation. Labels are the sorted set of training labels; a label the
model has never seen counts as a wrong prediction in `evaluate` and is left out of the loss.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import Option, flag_name
from ..data import Vocab, make_tokenizer
from ..data.feature_ratios import log_count_ratios
from ..data.ngrams import hashed_bag
from ..data.segment import check_segmenter
from ..models.classifier import NGRAM_COMBINATIONS, ClassifierConfig, SequenceClassifier
from . import metrics
from .base import UNIDIRECTIONAL, WORD_DROPOUT, Batch, Task, line_error, read_lines, read_pairs

IGNORE = -100  # label id of a held-out label never seen in training (skipped by the loss)
_SPLIT_VALUES = re.compile(r"[\s,]+")


@dataclass
class Example:
    tokens: list  # list[str] for text, list[list[float]] for --tokens numbers
    label: str | None  # None for prediction inputs


def parse_numbers(text: str, where: str) -> list[list[float]]:
    """'1 2 3; 4 5 6' -> [[1, 2, 3], [4, 5, 6]]; every step the same width."""
    steps = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        try:
            values = [float(v) for v in _SPLIT_VALUES.split(part) if v]
        except ValueError:
            bad = next(v for v in _SPLIT_VALUES.split(part) if v and not _is_float(v))
            raise ValueError(
                f"{where}: {bad!r} is not a number (--tokens numbers: time steps separated by "
                "';', values by spaces or commas)"
            ) from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{where}: values must be finite numbers")
        if steps and len(values) != len(steps[0]):
            raise ValueError(
                f"{where}: time step {len(steps) + 1} has {len(values)} values but the first "
                f"has {len(steps[0])}; every step needs the same number"
            )
        steps.append(values)
    return steps


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class ClassifyTask(Task):
    name = "classify"
    own_options = (
        Option(
            "pooling",
            "max",
            "how the per-step outputs become one vector: the last state of each direction, "
            "or the mean or max over the steps (padding excluded)",
            choices=("last", "mean", "max"),
        ),
        Option(
            "ngram_buckets",
            2**18,
            "a linear path beside the recurrent one: a bag of the text's word 1-2-grams and "
            "character 2-5-grams, hashed into this many features, met with the recurrent path "
            "as --ngram-combination says (text input; 0 turns it off)",
            minimum=0,
            metavar="N",
            saved_before=0,
        ),
        Option(
            "ngram_scaling",
            # nb, three seeds each: SST-2 0.853 against 0.840 (better on each), ChnSentiCorp
            # 0.888 against 0.891 (inside its seeds' spread); docs/tasks.md "Defaults by
            # measurement"
            "nb",
            "how the n-gram path weighs its features: 'nb' scales each feature's weight for "
            "each class by the feature's naive-Bayes log-count ratio in the training texts "
            "(that class against the others; Wang and Manning 2012's NBSVM), so telling "
            "n-grams learn fast and even ones hardly move; 'none' leaves them as they are",
            choices=("nb", "none"),
            saved_before="none",
        ),
        Option(
            "ngram_combination",
            # product at weight 0.75, three seeds each: SST-2 0.8546 against 0.8534 summed,
            # ChnSentiCorp 0.9013 against 0.8929 (TF-IDF + LR: 0.8512, 0.8976); docs/tasks.md
            # "Defaults by measurement"
            "product",
            "how the n-gram path meets the recurrent one: 'product' trains each as a classifier "
            "of its own and multiplies their probabilities, weighted by --ngram-weight (an "
            "ensemble of the two); 'sum' adds the n-gram logits to the recurrent ones under one "
            "loss, so the network learns what the bag misses",
            choices=NGRAM_COMBINATIONS,
            saved_before="sum",
        ),
        Option(
            "ngram_weight",
            # read on the same runs' best/ (training does not depend on it), SST-2 / Chn-
            # SentiCorp means: 0.5 0.8502 / 0.9013, 0.75 0.8571 / 0.9019, 0.8 0.8563 / 0.9017
            0.75,
            "with --ngram-combination product: the n-gram expert's share w of the output, "
            "(1 - w) log p_recurrent + w log p_ngram; the recurrent expert is the more "
            "confident one, so an even share lets it outvote the bag",
            minimum=0.0,
            exclusive=True,
            below=1.0,
            metavar="W",
            what="a share",
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
        # 5e-3 beat 1e-2 on SST-2 (0.845 vs 0.833, two seeds) and ChnSentiCorp (0.897 vs
        # 0.895, three) in 180 s once steps got cheaper; 1e-2 had beaten 3e-3 at the slower step
        # (benchmarks/task_defaults.py, docs/tasks.md "Defaults by measurement")
        "lr": 5e-3,
        "warmup_steps": 20,
        "batch_size": 32,
        # a 5% held-out tail beat 10% on SST-2 (0.845 vs 0.842) and ChnSentiCorp (0.899 vs
        # 0.897), three seeds each: more to train on, and best/ was still chosen well on 5%
        # (311 of ChnSentiCorp's 6,212 reviews)
        "val_fraction": 0.05,
        # every 100 steps the held-out evaluations cost more than the training itself on
        # public sets (SST-2: 245 s over a 180 s budget; benchmarks/task_defaults.py)
        "eval_every": 500,
        "save_every": 500,
        "threads": 1,  # small models: one thread was faster than two (docs/benchmarks.md)
    }
    best_by = ("accuracy", "max")

    def __init__(self, config) -> None:
        super().__init__(config)
        self.vocab: Vocab | None = None
        self.labels: list[str] = []
        self.mean: list[float] | None = None  # numbers: per-feature standardization
        self.std: list[float] | None = None
        self.segmenter = config.segmenter  # of Chinese text, with --tokens word
        self.ngram_buckets = 0  # set by fit() or a saved state
        # the character n-grams span the cuts in a run of Chinese (rnnkit.data.ngrams)
        self.ngram_han_runs = True

    def word_dropout(self) -> float:
        if self.config.word_dropout is None:
            return 0.25  # measured in examples/text_classify.py
        return self.config.word_dropout

    @property
    def numeric(self) -> bool:
        return self.config.tokens == "numbers"

    # ------------------------------------------------------------ reading

    def _tokens(self, text: str, where: str, form: str = "label<TAB>text") -> list:
        if self.numeric:
            tokens = parse_numbers(text, where)
        else:
            tokens = make_tokenizer(self.config.tokens, self.segmenter).tokenize(text)
        if not tokens:
            raise ValueError(f"{where}: the text is empty; every line needs {form}")
        if self.numeric and self.mean is not None and len(tokens[0]) != len(self.mean):
            raise ValueError(
                f"{where}: {len(tokens[0])} values per time step, but the model was trained on "
                f"{len(self.mean)}"
            )
        return tokens

    def read_examples(self, path) -> list[Example]:
        examples = []
        width = None
        for number, label, text in read_pairs(path, self.config.encoding, "label<TAB>text"):
            label = label.strip()
            if not label:
                raise line_error(path, number, "the label (first column) is empty")
            tokens = self._tokens(text, f"{path}:{number}")
            if self.numeric:
                width = width or len(tokens[0])
                if len(tokens[0]) != width:
                    raise line_error(
                        path,
                        number,
                        f"{len(tokens[0])} values per time step, but earlier lines have {width}",
                    )
            examples.append(Example(tokens, label))
        if not examples:
            raise ValueError(f"{path} holds no examples; expected label<TAB>text lines")
        return examples

    def read_inputs(self, path) -> list[Example]:
        inputs = []
        for number, line in enumerate(read_lines(path, self.config.encoding), 1):
            columns = line.split("\t")
            if len(columns) > 2:
                raise line_error(
                    path,
                    number,
                    f"expected text or label<TAB>text, found {len(columns)} tab-separated columns",
                )
            text = columns[-1]  # label<TAB>text: the answer is ignored
            form = "a text to classify" if len(columns) == 1 else "label<TAB>text"
            inputs.append(Example(self._tokens(text, f"{path}:{number}", form), None))
        if not inputs:
            raise ValueError(f"{path} holds no inputs; expected one text per line")
        return inputs

    def examples_from_python(self, inputs: Sequence, targets: Sequence | None) -> list[Example]:
        if targets is not None and len(targets) != len(inputs):
            raise ValueError(
                f"classify: {len(inputs)} inputs but {len(targets)} labels; give one label each"
            )
        examples = []
        for i, item in enumerate(inputs):
            where = f"inputs[{i}]"
            if isinstance(item, str):
                tokens = self._tokens(item, where)
            elif self.numeric:
                tokens = torch.as_tensor(item, dtype=torch.float64).tolist()
                if not tokens or not isinstance(tokens[0], list):
                    raise ValueError(f"{where}: numeric input must be (T, F) values, T >= 1")
            else:
                raise TypeError(
                    f"{where}: expected a str (or (T, F) numbers with tokens='numbers'); got "
                    f"{type(item).__name__}"
                )
            label = None if targets is None else str(targets[i])
            examples.append(Example(tokens, label))
        return examples

    # ------------------------------------------------------------ fitted state

    def fit(self, examples: list[Example]) -> None:
        self.labels = sorted({e.label for e in examples})
        self.ngram_buckets = 0 if self.numeric else self.config.ngram_buckets
        if self.numeric:
            values = torch.tensor([v for e in examples for v in e.tokens], dtype=torch.float64)
            self.mean = values.mean(0).tolist()
            self.std = [s if s > 0 else 1.0 for s in values.std(0, correction=0).tolist()]
        else:
            stream = (t for e in examples for t in e.tokens)
            self.vocab = Vocab.build(
                stream, max_size=self.config.vocab_size, min_freq=self.config.min_freq
            )

    def state_dict(self) -> dict:
        return {
            "labels": self.labels,
            "vocab": self.vocab.to_dict() if self.vocab is not None else None,
            "mean": self.mean,
            "std": self.std,
            "segmenter": self.segmenter,
            "ngram_buckets": self.ngram_buckets,
            "ngram_han_runs": self.ngram_han_runs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.labels = list(state["labels"])
        self.vocab = Vocab.from_dict(state["vocab"]) if state["vocab"] is not None else None
        self.mean, self.std = state["mean"], state["std"]
        # runs saved before segmenters kept a run of Chinese characters as one word
        self.segmenter = check_segmenter(state.get("segmenter", "none"))
        self.ngram_buckets = int(state.get("ngram_buckets", 0))  # runs before the n-gram path
        # runs saved before took character n-grams inside each word only
        self.ngram_han_runs = bool(state.get("ngram_han_runs", False))
        if self.vocab is None and self.mean is None:
            raise ValueError("neither a vocabulary nor a numeric scaler is stored")

    # ------------------------------------------------------------ model

    def build_model(self, model_config: dict | None = None) -> SequenceClassifier:
        if model_config is not None:
            return SequenceClassifier(ClassifierConfig.from_dict(model_config))
        c = self.config
        return SequenceClassifier(
            ClassifierConfig(
                num_classes=len(self.labels),
                vocab_size=len(self.vocab) if self.vocab is not None else 0,
                input_size=len(self.mean) if self.mean is not None else 0,
                embedding_dim=c.embedding_dim,
                cell=c.cell,
                hidden_size=c.hidden_size,
                num_layers=c.num_layers,
                bidirectional=not c.unidirectional,
                pooling=c.pooling,
                dropout=c.dropout,
                word_dropout=0.0 if self.numeric else self.word_dropout(),
                unk_idx=self.vocab.unk_id if self.vocab is not None else 0,
                ngram_buckets=self.ngram_buckets,
                ngram_ratios=self.ngram_buckets > 0 and c.ngram_scaling == "nb",
                ngram_combination=c.ngram_combination,
                ngram_weight=c.ngram_weight,
                backend=c.backend,
            )
        )

    def init_model(self, model: SequenceClassifier, data) -> None:
        super().init_model(model, data)
        self.copy_word_vectors(model.embedding)
        if model.config.ngram_ratios:  # of the training texts; saved with the weights
            items = self.encoded(data, "train")
            ratios = log_count_ratios(
                [bag[0] for _, _, bag in items],
                [label for _, label, _ in items],
                self.ngram_buckets,
                len(self.labels),
            )
            model.ngrams.ratios.copy_(ratios)

    # ------------------------------------------------------------ batches

    def _input_tensor(self, tokens) -> Tensor:
        if self.numeric:
            x = torch.tensor(tokens, dtype=torch.float32)  # (T, F)
            return (x - torch.tensor(self.mean)) / torch.tensor(self.std)
        return torch.tensor(self.vocab.encode(tokens), dtype=torch.long)  # (T,)

    def _bag(self, tokens) -> tuple[list[int], list[float]] | None:
        if not self.ngram_buckets:
            return None
        # the n-grams are of words: character input is split back into them
        words = tokens if self.config.tokens == "word" else "".join(tokens).split()
        return hashed_bag(words, self.ngram_buckets, self.ngram_han_runs)

    def encode(self, example: Example) -> tuple:
        label = IGNORE
        if example.label is not None and example.label in self.labels:
            label = self.labels.index(example.label)
        return self._input_tensor(example.tokens), label, self._bag(example.tokens)

    def collate(self, items: list) -> Batch:
        inputs = [x for x, _, _ in items]
        lengths = torch.tensor([len(x) for x in inputs], dtype=torch.long)
        pad = 0.0 if self.numeric else self.vocab.pad_id
        padded = nn.utils.rnn.pad_sequence(inputs, batch_first=True, padding_value=pad)
        labels = torch.tensor([y for _, y, _ in items], dtype=torch.long)
        tensors = {"inputs": padded, "lengths": lengths, "labels": labels}
        if self.ngram_buckets:
            bags = [bag for _, _, bag in items]
            sizes = torch.tensor([len(ids) for ids, _ in bags], dtype=torch.long)
            flat_ids = [i for ids, _ in bags for i in ids]
            tensors["ngram_ids"] = torch.tensor(flat_ids, dtype=torch.long)
            tensors["ngram_offsets"] = torch.cumsum(sizes, 0) - sizes
            tensors["ngram_weights"] = torch.tensor([w for _, ws in bags for w in ws])
        return Batch(tensors, size=len(items), tokens=int(lengths.sum()))

    @staticmethod
    def _ngrams(t: dict) -> tuple | None:
        """The batch's n-gram bags as the model takes them, or None without the path."""
        if "ngram_ids" not in t:
            return None
        return (t["ngram_ids"], t["ngram_offsets"], t["ngram_weights"])

    @classmethod
    def _logits(cls, model: SequenceClassifier, t: dict) -> Tensor:
        return model(t["inputs"], t["lengths"], cls._ngrams(t))  # (B, C)

    def loss(self, model: SequenceClassifier, batch: Batch) -> Tensor:
        t = batch.tensors
        bags = self._ngrams(t)
        if model.config.ngram_combination == "product" and bags is not None:
            # two experts, each trained on its own loss; the output is their product
            paths = model.path_logits(t["inputs"], t["lengths"], bags)
        else:
            paths = (self._logits(model, t),)
        if (t["labels"] == IGNORE).all():  # no known label in this batch: nothing to learn
            return sum(logits.sum() for logits in paths) * 0.0
        return sum(F.cross_entropy(logits, t["labels"], ignore_index=IGNORE) for logits in paths)

    @classmethod
    def check_given(cls, given: dict, config) -> None:
        path = [n for n in ("ngram_scaling", "ngram_combination", "ngram_weight") if n in given]
        if config.tokens == "numbers" and "ngram_buckets" in given and config.ngram_buckets:
            path.insert(0, "ngram_buckets")
        if path and (config.ngram_buckets == 0 or config.tokens == "numbers"):
            off = "--ngram-buckets 0" if config.ngram_buckets == 0 else "--tokens numbers"
            raise ValueError(
                f"{flag_name(path[0])} sets the n-gram path, which {off} leaves out; drop it"
            )
        if "ngram_weight" in given and config.ngram_combination != "product":
            raise ValueError(
                "--ngram-weight weighs the two experts of --ngram-combination product; with "
                f"{config.ngram_combination} the paths are added unweighted: drop it"
            )

    def loss_weight(self, batch: Batch) -> float:
        return int((batch.tensors["labels"] != IGNORE).sum())  # the examples of known label

    def check_held_out(self, data) -> list[str]:
        from ..train.distributed import on_every_rank  # every rank sees the same split

        unseen = [e.label for e in data.val if e.label not in self.labels]
        if not unseen:
            return []
        names = ", ".join(sorted({"no label" if u is None else str(u) for u in unseen})[:5])
        where = "--val-data" if self.config.val_data else "the held-out part"
        if len(unseen) == len(data.val):
            raise on_every_rank(
                ValueError(
                    f"every example of {where} has a label the training part lacks ({names}): "
                    "nothing there can be scored; spread each label through the file (shuffle "
                    "it) or give --val-data with the training labels"
                )
            )
        return [
            f"{len(unseen)} of {len(data.val)} held-out examples have a label the training "
            f"part lacks ({names}): they count as wrong and are left out of the held-out loss"
        ]

    # ------------------------------------------------------------ inference

    @torch.no_grad()
    def predict(self, model: SequenceClassifier, inputs: list[Example], **options) -> list[str]:
        if options:
            raise ValueError(f"classify takes no prediction options; got {', '.join(options)}")
        model.eval()
        out = []
        size = self.config.batch_size
        items = [self.encode(e) for e in inputs]  # the label, if any, goes unused
        for start in range(0, len(items), size):
            t = self.collate(items[start : start + size]).tensors
            out.extend(self._logits(model, t).argmax(-1).tolist())
        return [self.labels[i] for i in out]

    def format_output(self, output: str) -> str:
        return output

    def evaluate(self, model: SequenceClassifier, examples: list[Example], **options) -> dict:
        predicted = self.predict(model, examples, **options)
        gold = [e.label for e in examples]
        return {
            "accuracy": metrics.accuracy(gold, predicted),
            "macro_f1": metrics.macro_f1(gold, predicted),
            "examples": len(examples),
            "unknown_labels": sum(label not in self.labels for label in gold),
        }


TASK = ClassifyTask
