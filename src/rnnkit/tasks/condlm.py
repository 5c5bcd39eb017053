"""condlm: one-to-many generation, a language model conditioned on a category or a vector.

Data: `condition<TAB>text` lines (blank lines skipped). The condition is a category ("Italian",
"positive") or a vector of numbers ("0.3 1.5", spaces or commas); `--condition-type auto` reads
the conditions as vectors when every one of them is numbers and some have several values or a
fraction, so integer labels (star ratings, digits) stay categories. Vectors are standardized
per feature with the training part's mean and standard deviation.

Every text is framed `<bos> tokens <eos>` (`--tokens char` or `word`), so generation starts
from `<bos>` and stopping at `<eos>` is learned. The condition sets the initial state, enters
every step, or both (`--condition-at`); on `--condition-dropout` of the training examples it is
withheld (a learned "no condition" encoding), so the same model scores text without it.

Held out: the categories' examples are held out per category (the last --val-fraction of each
category with two or more examples), vectors as the tail of the file. Metrics: loss (nats per
token, <eos> included), perplexity, the same with the condition withheld, what the condition
gains, and per category. `rnnkit generate --checkpoint RUN --condition VALUE` samples a text;
`rnnkit predict` samples one per condition line.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import Option
from ..data import Vocab, make_tokenizer, pad_sequences
from ..data.segment import check_segmenter
from ..models.conditioned_lm import (
    CONDITION_AT,
    ConditionedLanguageModel,
    ConditionedLMConfig,
)
from .base import Batch, Task, batches_of, line_error, read_lines, read_pairs

__all__ = ["ConditionedExample", "ConditionedLMTask"]

CONDITION_TYPES = ("auto", "category", "vector")
_VALUES = re.compile(r"[\s,]+")
# Per-condition figures are listed for up to this many distinct vector conditions.
MAX_LISTED_VECTORS = 50


@dataclass
class ConditionedExample:
    """One example: the condition as written, and the text (None for a condition to sample)."""

    condition: str
    text: str | None
    where: str  # "FILE:LINE" or "conditions[i]", for errors


def parse_vector(text: str) -> list[float] | None:
    """'0.3 1.5' -> [0.3, 1.5]; None when the text is not all finite numbers."""
    values = []
    for part in _VALUES.split(text.strip()):
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        values.append(value)
    return values or None


def resolve_condition_type(conditions: Sequence[str], requested: str) -> str:
    """ "category" or "vector" for these conditions (see the module's docstring)."""
    if requested != "auto":
        return requested
    vectors = [parse_vector(c) for c in conditions]
    if any(v is None for v in vectors) or len({len(v) for v in vectors}) != 1:
        return "category"
    several = len(vectors[0]) > 1
    fraction = any(value != int(value) for v in vectors for value in v)
    return "vector" if several or fraction else "category"


class ConditionedLMTask(Task):
    name = "condlm"
    own_options = (
        Option(
            "condition_type",
            "auto",
            "read the condition column as categories or as vectors of numbers; auto: vectors "
            "when every condition is numbers and some have several values or a fraction",
            choices=CONDITION_TYPES,
        ),
        Option(
            "condition_at",
            "both",
            "where the condition enters: the initial state of every layer, the input of every "
            "step, or both",
            choices=CONDITION_AT,
        ),
        Option(
            "condition_dim",
            32,
            "width of the learned encoding of the condition",
            metavar="N",
            minimum=1,
        ),
        Option(
            "condition_dropout",
            0.1,
            "fraction of training examples whose condition is withheld, so the model also "
            "learns text without it (what evaluate compares against)",
            minimum=0.0,
            below=1.0,
            what="a fraction",
        ),
    )
    defaults: ClassVar[dict] = {
        "recurrent_init": "uniform",
        "precision": "float32",
        "embedding_dim": 32,
        "hidden_size": 128,
        "dropout": 0.1,
        "lr": 3e-3,
        "warmup_steps": 20,
        "batch_size": 32,
        # an evaluation of 2,000 names took 0.25 s: every 100 steps (0.7 s of training) it
        # was a quarter of a 60 s run's time
        "eval_every": 500,
        "save_every": 500,
        "threads": 1,  # small models, one example of a few dozen steps per row
    }
    best_by = ("loss", "min")
    predict_flags: ClassVar[dict] = {
        "temperature": {
            "type": float,
            "default": 1.0,
            "metavar": "T",
            "help": "condlm: sample from softmax(logits / T) (default 1)",
        },
        "seed": {
            "type": int,
            "default": 0,
            "metavar": "N",
            "help": "condlm: seed of the samples (default 0)",
        },
    }

    def __init__(self, config) -> None:
        super().__init__(config)
        self.segmenter = config.segmenter
        self.vocab: Vocab | None = None
        self.condition_type: str | None = None
        self.conditions: list[str] = []  # categories, in id order
        self.mean: list[float] | None = None  # vectors: per-feature standardization
        self.std: list[float] | None = None
        self.max_tokens = 0  # the longest training text, in tokens

    @classmethod
    def check_config(cls, config) -> None:
        if config.tokens == "numbers":
            raise ValueError(
                "--tokens numbers applies to --task classify; condlm texts are char or word"
            )

    @property
    def tokenizer(self):
        return make_tokenizer(self.config.tokens, self.segmenter)

    # ------------------------------------------------------------ reading

    def _example(self, condition: str, text: str | None, where: str) -> ConditionedExample:
        condition = condition.strip()
        if not condition:
            raise ValueError(f"{where}: the condition (first column) is empty")
        if text is not None and not (text.strip() and self.tokenizer.tokenize(text)):
            raise ValueError(f"{where}: the text is empty; every line needs condition<TAB>text")
        example = ConditionedExample(condition, text, where)
        if self.condition_type is not None:
            self.condition_value(example)  # a condition the model cannot take: fail here
        return example

    def read_examples(self, path) -> list[ConditionedExample]:
        examples = []
        for number, condition, text in read_pairs(path, self.config.encoding, "condition<TAB>text"):
            examples.append(self._example(condition, text, f"{path}:{number}"))
        if not examples:
            raise ValueError(f"{path} holds no examples; expected condition<TAB>text lines")
        return examples

    def read_inputs(self, path) -> list[ConditionedExample]:
        inputs = []
        lines = read_lines(path, self.config.encoding)
        while lines and not lines[-1].strip():  # blank lines at the end align with nothing
            lines.pop()
        for number, line in enumerate(lines, 1):
            if not line.strip():  # skipped, it would shift every later output a line up
                raise line_error(
                    path, number, "the condition is empty; give one condition per line"
                )
            columns = line.split("\t")
            if len(columns) > 2:
                raise line_error(
                    path,
                    number,
                    "expected a condition or condition<TAB>text, found "
                    f"{len(columns)} tab-separated columns",
                )
            inputs.append(self._example(columns[0], None, f"{path}:{number}"))
        if not inputs:
            raise ValueError(f"{path} holds no conditions; expected one condition per line")
        return inputs

    def examples_from_python(self, inputs: Sequence, targets: Sequence | None):
        if targets is not None and len(targets) != len(inputs):
            raise ValueError(
                f"condlm: {len(inputs)} conditions but {len(targets)} texts; give one text each"
            )
        examples = []
        for i, condition in enumerate(inputs):
            if not isinstance(condition, str):
                if isinstance(condition, Sequence | Tensor):
                    values = torch.as_tensor(condition).flatten()
                    condition = " ".join(str(float(v)) for v in values)
                else:
                    condition = str(condition)
            text = None if targets is None else str(targets[i])
            examples.append(self._example(condition, text, f"conditions[{i}]"))
        return examples

    def split(self, examples: list, val_fraction: float) -> tuple[list, list]:
        """Categories: the last val_fraction of every category with two or more examples, so
        each held-out condition was seen in training. Vectors: the tail of the file."""
        kind = resolve_condition_type([e.condition for e in examples], self.config.condition_type)
        if kind == "vector":
            return super().split(examples, val_fraction)
        groups: dict[str, list[int]] = defaultdict(list)
        for index, example in enumerate(examples):
            groups[example.condition].append(index)
        held = set()
        for indices in groups.values():
            if len(indices) >= 2:
                count = min(len(indices) - 1, max(1, round(len(indices) * val_fraction)))
                held.update(indices[-count:])
        if not held:
            raise ValueError(
                "no condition has two examples, so none can be held out for validation (give "
                "more examples per condition, or --val-data FILE)"
            )
        train = [e for i, e in enumerate(examples) if i not in held]
        val = [e for i, e in enumerate(examples) if i in held]
        return train, val

    # ------------------------------------------------------------ fitted state

    def fit(self, examples: list[ConditionedExample]) -> None:
        conditions = [e.condition for e in examples]
        self.condition_type = resolve_condition_type(conditions, self.config.condition_type)
        if self.condition_type == "category":
            self.conditions = sorted(set(conditions))
        else:
            vectors = []
            for example in examples:
                vector = parse_vector(example.condition)
                if vector is None:
                    raise ValueError(
                        f"{example.where}: {example.condition!r} is not a vector of numbers "
                        "(--condition-type vector: values separated by spaces or commas)"
                    )
                if vectors and len(vector) != len(vectors[0]):
                    raise ValueError(
                        f"{example.where}: the condition has {len(vector)} values but the first "
                        f"has {len(vectors[0])}; every condition needs the same number"
                    )
                vectors.append(vector)
            values = torch.tensor(vectors, dtype=torch.float64)
            self.mean = values.mean(0).tolist()
            self.std = [s if s > 0 else 1.0 for s in values.std(0, correction=0).tolist()]
        token_lists = [self.tokenizer.tokenize(e.text) for e in examples]
        self.max_tokens = max(len(t) for t in token_lists)
        self.vocab = Vocab.build(
            (t for tokens in token_lists for t in tokens),
            max_size=self.config.vocab_size,
            min_freq=self.config.min_freq,
        )

    def state_dict(self) -> dict:
        return {
            "vocab": self.vocab.to_dict(),
            "condition_type": self.condition_type,
            "conditions": self.conditions,
            "mean": self.mean,
            "std": self.std,
            "max_tokens": self.max_tokens,
            "segmenter": self.segmenter,
        }

    def load_state_dict(self, state: dict) -> None:
        self.vocab = Vocab.from_dict(state["vocab"])
        if state["condition_type"] not in ("category", "vector"):
            raise ValueError("condition_type must be category or vector")
        self.condition_type = state["condition_type"]
        self.conditions = list(state["conditions"])
        self.mean, self.std = state["mean"], state["std"]
        self.max_tokens = int(state["max_tokens"])
        self.segmenter = check_segmenter(state["segmenter"])
        if self.condition_type == "category" and not self.conditions:
            raise ValueError("a category model stores its categories")
        if self.condition_type == "vector" and (self.mean is None or self.std is None):
            raise ValueError("a vector model stores its standardization")

    def run_files(self) -> dict[str, dict]:
        return {"vocab.json": self.vocab.to_dict()}

    # ------------------------------------------------------------ conditions

    def condition_value(self, example: ConditionedExample) -> int | list[float]:
        """The condition as the model takes it: a category id or standardized values."""
        if self.condition_type == "category":
            try:
                return self.conditions.index(example.condition)
            except ValueError:
                known = ", ".join(self.conditions[:10])
                more = ", ..." if len(self.conditions) > 10 else ""
                raise ValueError(
                    f"{example.where}: condition {example.condition!r} was never seen in "
                    f"training; the model knows {len(self.conditions)}: {known}{more}"
                ) from None
        vector = parse_vector(example.condition)
        if vector is None or len(vector) != len(self.mean):
            raise ValueError(
                f"{example.where}: the condition must be {len(self.mean)} numbers separated by "
                f"spaces or commas (as in training); got {example.condition!r}"
            )
        return [(v - m) / s for v, m, s in zip(vector, self.mean, self.std, strict=True)]

    def condition_tensor(self, values: list) -> Tensor:
        if self.condition_type == "category":
            return torch.tensor(values, dtype=torch.long)
        return torch.tensor(values, dtype=torch.float32)

    # ------------------------------------------------------------ model

    def build_model(self, model_config: dict | None = None) -> ConditionedLanguageModel:
        if model_config is not None:
            return ConditionedLanguageModel(ConditionedLMConfig.from_dict(model_config))
        c = self.config
        category = self.condition_type == "category"
        return ConditionedLanguageModel(
            ConditionedLMConfig(
                vocab_size=len(self.vocab),
                num_conditions=len(self.conditions) if category else 0,
                condition_size=0 if category else len(self.mean),
                condition_dim=c.condition_dim,
                condition_at=c.condition_at,
                cell=c.cell,
                embedding_dim=c.embedding_dim,
                hidden_size=c.hidden_size,
                num_layers=c.num_layers,
                dropout=c.dropout,
                backend=c.backend,
                nonlinearity=c.nonlinearity,
            )
        )

    def init_model(self, model: ConditionedLanguageModel, data) -> None:
        super().init_model(model, data)
        self.copy_word_vectors(model.embedding)

    # ------------------------------------------------------------ batches and loss

    def encode(self, example: ConditionedExample) -> tuple[Tensor, int | list[float]]:
        ids = [self.vocab.bos_id, *self.vocab.encode(self.tokenizer.tokenize(example.text))]
        ids.append(self.vocab.eos_id)
        return torch.tensor(ids, dtype=torch.long), self.condition_value(example)

    def collate(self, items: list) -> Batch:
        ids, lengths = pad_sequences([x for x, _ in items], self.vocab.pad_id)
        return Batch(
            {
                "x": ids[:, :-1],
                "y": ids[:, 1:],
                "condition": self.condition_tensor([c for _, c in items]),
            },
            size=len(items),
            tokens=int(lengths.sum()) - len(items),
        )

    def token_losses(
        self, model: ConditionedLanguageModel, batch: Batch, withheld: Tensor | None = None
    ) -> Tensor:
        """(B, T) cross-entropy of every target token, 0 at padding."""
        t = batch.tensors
        logits, _ = model(t["x"], t["condition"], withheld=withheld)
        losses = F.cross_entropy(
            logits.transpose(1, 2), t["y"], ignore_index=self.vocab.pad_id, reduction="none"
        )
        return losses

    def _mean(self, losses: Tensor, batch: Batch) -> Tensor:
        return losses.sum() / (batch.tensors["y"] != self.vocab.pad_id).sum()

    def loss(self, model: ConditionedLanguageModel, batch: Batch) -> Tensor:
        return self._mean(self.token_losses(model, batch), batch)

    def loss_weight(self, batch: Batch) -> float:
        return int((batch.tensors["y"] != self.vocab.pad_id).sum())  # the target tokens

    def train_loss(self, model: ConditionedLanguageModel, batch: Batch, carry):
        withheld = None
        if self.config.condition_dropout > 0:
            # torch's global generator: the trainer saves and restores it, so resume is exact
            withheld = torch.rand(batch.size) < self.config.condition_dropout
        return self._mean(self.token_losses(model, batch, withheld), batch), None

    # ------------------------------------------------------------ evaluation

    @torch.no_grad()
    def _scores(self, model, examples: list[ConditionedExample]) -> tuple[list, list, list]:
        """Per example: (nats with the condition, nats withheld, target tokens)."""
        items = [self.encode(e) for e in examples]
        given, withheld, counts = [], [], []
        for batch in batches_of(self, items, self.config.batch_size):
            mask = torch.ones(batch.size, dtype=torch.bool)
            given += self.token_losses(model, batch).sum(1).tolist()
            withheld += self.token_losses(model, batch, mask).sum(1).tolist()
            counts += (batch.tensors["y"] != self.vocab.pad_id).sum(1).tolist()
        return given, withheld, counts

    @staticmethod
    def _figures(given: float, withheld: float, tokens: int) -> dict:
        loss, loss_withheld = given / tokens, withheld / tokens
        return {
            "loss": loss,
            "perplexity": math.exp(loss),
            "loss_condition_withheld": loss_withheld,
            "perplexity_condition_withheld": math.exp(loss_withheld),
            "condition_gain_nats_per_token": loss_withheld - loss,
        }

    def evaluate(self, model, examples: list[ConditionedExample], **options) -> dict:
        """Overall and per-condition loss and perplexity, with the condition and withheld."""
        if options:
            raise ValueError(f"condlm takes no evaluation options; got {', '.join(options)}")
        model.eval()
        given, withheld, counts = self._scores(model, examples)
        result = {
            **self._figures(sum(given), sum(withheld), sum(counts)),
            "examples": len(examples),
            "tokens": sum(counts),
        }
        groups: dict[str, list[int]] = defaultdict(list)
        for index, example in enumerate(examples):
            groups[example.condition].append(index)
        if self.condition_type == "category" or len(groups) <= MAX_LISTED_VECTORS:
            per = {}
            for condition in sorted(groups):
                idx = groups[condition]
                figures = self._figures(
                    sum(given[i] for i in idx),
                    sum(withheld[i] for i in idx),
                    sum(counts[i] for i in idx),
                )
                per[condition] = {"examples": len(idx), **figures}
            result["per_condition"] = per
        return result

    @torch.no_grad()
    def evaluate_held_out(self, model, data) -> dict:
        result = self.evaluate(model, data.val)
        result.pop("per_condition", None)
        return {"val_loss": result.pop("loss"), **result}

    def describe_eval(self, row: dict) -> str:
        from .base import describe_train_loss

        return (
            f"step {row['step']}: {describe_train_loss(row)}, val loss {row['val_loss']:.4f} "
            f"(perplexity {row['perplexity']:.2f}, condition withheld "
            f"{row['perplexity_condition_withheld']:.2f}), grad norm "
            f"{row.get('grad_norm', float('nan')):.3g}, lr {row['lr']:.2e}, {row['elapsed']:.1f} s"
        )

    def run_metrics(self, data, model) -> dict:
        return {
            **super().run_metrics(data, model),
            "condition_type": self.condition_type,
            "conditions": len(self.conditions) if self.condition_type == "category" else None,
            "vocab_size": len(self.vocab),
        }

    # ------------------------------------------------------------ generation

    def generate_text(
        self,
        model: ConditionedLanguageModel,
        condition: str | None,
        prefix: str = "",
        length: int | None = None,
        **sampling,
    ):
        """Sample a text for `condition` (as written in the data; None: withheld) with every
        option of rnnkit.generate.generate (temperature, top_k, top_p, greedy, beam_size, seed,
        decoder). `length` None: twice the longest training text, plus 10 tokens."""
        from ..generate import generate

        if condition is None:
            bound = model.conditioned_on(None)
        else:
            value = self.condition_value(self._example(str(condition), None, "--condition"))
            bound = model.conditioned_on(self.condition_tensor([value]))
        if length is None:
            length = 2 * self.max_tokens + 10
        return generate(
            bound,
            self.vocab,
            self.tokenizer,
            prefix,
            length,
            start_with_bos=True,
            stop_at_eos=True,
            **sampling,
        )

    def predict(self, model, inputs: list[ConditionedExample], **options) -> list[str]:
        """One sampled text per condition (seeded: the same seed, the same texts)."""
        temperature = options.pop("temperature", 1.0)
        seed = options.pop("seed", 0)
        if options:
            raise ValueError(f"condlm: unknown prediction options {', '.join(options)}")
        model.eval()
        return [
            str(
                self.generate_text(
                    model, e.condition, temperature=temperature, seed=seed + i, decoder="eager"
                )
            )
            for i, e in enumerate(inputs)
        ]

    def format_output(self, output: str) -> str:
        return output


TASK = ConditionedLMTask
