"""`TrainConfig`: every option of `rnnkit train`, its default and its meaning, in one place.

The command line is generated from these fields (`cli_options`), so a default changes here and
nowhere else. Defaults are the measured quality-per-second recipe for a character model on a
2-core CPU; `benchmarks/lm_sweep.py` is the sweep that chooses them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

from .._checks import dataclass_from_dict
from ..initializers import RECURRENT_INITS
from ..models import CELLS
from .precision import PRECISIONS

TASKS = ("lm", "classify", "tag", "seq2seq", "forecast")  # rnnkit.tasks.base.TASKS, kept in step

DEFAULT_MAX_TIME = 300.0  # seconds of training when neither max_time nor max_steps is given

# The automatic dropout (`--dropout` not given). Measured with the default model in 100 s runs
# (docs/benchmarks.md): tiny shakespeare (about 7 passes over its text) trains best without
# dropout, the built-in corpus (15 passes) and The Time Machine (35 passes) gain 0.05 and 0.14
# nats/char from dropout 0.2. With the orthogonal init and the forget-bias shift the model fits
# faster and needs 0.3 there (3,000 steps: pydoc 1.1031 at 0.2, 1.0869 at 0.3; The Time Machine
# 2.485 and 2.379). A time budget is turned into passes at the default model's measured speed on
# a 2-core CPU, so the choice depends on the settings and the text, not on the machine.
AUTO_DROPOUT = 0.3
AUTO_DROPOUT_PASSES = 10.0
NOMINAL_TOKENS_PER_S = 67_000.0

# The LSTM's forget-gate bias shift at init (`--forget-bias` not given). At 3,500 steps on
# tiny shakespeare: +0.5: +0.025 nats/char, -0.5: -0.004, -1: -0.008, -2: -0.004 (benchmarks/
# lm_sweep_results.md, third sweep).
DEFAULT_FORGET_BIAS = -1.0

# AdamW's beta1 for the language model (`--beta1` not given): at 3,500 steps on tiny
# shakespeare 0.85 beat 0.9 by 0.004 and 0.010 on two seeds (lm_sweep_results.md, third sweep).
DEFAULT_LM_BETA1 = 0.85

# Options a resumed run may change; every other one must match the stored run.
RESUMABLE_OVERRIDES = (
    "out",
    "data",
    "max_time",
    "max_steps",
    "eval_every",
    "save_every",
    "threads",
)


def _option(default, help: str, *, kind=None, choices=None, metavar=None):
    """A dataclass field that also describes its command-line option."""
    meta = {"help": help, "kind": kind or type(default), "choices": choices, "metavar": metavar}
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Settings of one language-model training run (see `rnnkit train --help`)."""

    # --- task (lm: this language model; the others: rnnkit.tasks, see docs/tasks.md)
    task: str = _option(
        "lm",
        "what to train: lm (language model on plain text), classify (label<TAB>text lines), "
        "tag (token<TAB>tag lines, blank line between sentences), seq2seq (source<TAB>target "
        "lines), forecast (CSV with a header); each task has defaults of its own",
        choices=TASKS,
    )
    # --- data
    out: str | None = _option(
        None,
        "run directory to write (created; must not hold another run)",
        kind=str,
        metavar="DIR",
    )
    data: str | None = _option(
        None,
        "text file to train on; default: the built-in corpus (CPython's pydoc topics, "
        "about 465 KB of English prose)",
        kind=str,
        metavar="FILE",
    )
    encoding: str = _option("utf-8", "text encoding of --data (e.g. latin-1)")
    val_fraction: float = _option(
        0.1,
        "the last FRACTION of the file's characters is held out for evaluation",
        metavar="FRACTION",
    )
    tokens: str = _option(
        "char",
        "token unit: characters or words; numbers (classify only): the text column is a "
        "sequence of numeric vectors, time steps separated by ';', values by spaces or commas",
        choices=("char", "word", "numbers"),
    )
    val_data: str | None = _option(
        None,
        "tasks other than lm: hold out this file (same format as --data) instead of the last "
        "--val-fraction of the examples",
        kind=str,
        metavar="FILE",
    )
    column: str | None = _option(
        None,
        "forecast: the CSV column to forecast; default: the last numeric column",
        kind=str,
        metavar="NAME",
    )
    window: int = _option(
        12,
        "forecast: past points the model reads for each forecast (sliding-window length)",
        metavar="N",
    )
    exogenous: str | None = _option(
        None,
        "forecast: comma-separated CSV columns fed to the model beside the series (forecasting "
        "needs their values at the forecast times)",
        kind=str,
        metavar="NAMES",
    )
    holdout: int | None = _option(
        None,
        "forecast: hold out the last N points of the series for validation (instead of "
        "--val-fraction)",
        kind=int,
        metavar="N",
    )
    vocab_size: int | None = _option(
        None,
        "keep at most N tokens, most frequent first (the 4 specials count); "
        "default: every token of the training part",
        kind=int,
        metavar="N",
    )
    min_freq: int = _option(
        1, "drop tokens seen fewer than N times in the training part", metavar="N"
    )
    # --- model
    cell: str = _option("lstm", "recurrent cell", choices=CELLS)
    embedding_dim: int = _option(64, "input embedding width; 0 feeds one-hot vectors", metavar="N")
    hidden_size: int = _option(320, "hidden units per layer", metavar="N")
    num_layers: int = _option(1, "stacked recurrent layers", metavar="N")
    dropout: float | None = _option(
        None,
        f"dropout between layers and before the output layer; default: 0 when the budget "
        f"covers at most {AUTO_DROPOUT_PASSES:g} passes over the training text, "
        f"{AUTO_DROPOUT:g} beyond (small texts overfit otherwise); the task models: 0 or their "
        "own default",
        kind=float,
        metavar="P",
    )
    tie_weights: bool = _option(
        False,
        "share the embedding matrix with the output layer (word models; needs "
        "--embedding-dim equal to --hidden-size)",
    )
    word_vectors: str | None = _option(
        None,
        "initialize the embedding from GloVe or word2vec text vectors (FILE's width must "
        "equal --embedding-dim)",
        kind=str,
        metavar="FILE",
    )
    backend: str = _option(
        "auto",
        "rnnkit layer backend: auto picks per call what measured fastest (torch's kernel or "
        "rnnkit's compiled engine; the reference engine where neither can run); native is "
        "torch's kernel, compiled rnnkit's C++ engine, reference the plain-torch engine (see "
        "docs/engine.md)",
        choices=("auto", "native", "reference", "compiled"),
    )
    recurrent_init: str = _option(
        "orthogonal",
        "initial hidden-to-hidden weights: orthogonal per gate (Keras' default; trains to a "
        "lower loss in the same steps) or uniform (torch.nn's ±1/sqrt(H)); the Jordan cell "
        "keeps its own",
        choices=RECURRENT_INITS,
    )
    forget_bias: float | None = _option(
        None,
        "LSTM: added to the forget-gate bias at initialization; default "
        f"{DEFAULT_FORGET_BIAS:g} (forgets faster at first: measured lower loss in short "
        "budgets; Keras' unit_forget_bias is +1)",
        kind=float,
        metavar="B",
    )
    unidirectional: bool = _option(
        False,
        "classify, tag: run the recurrent layers left to right only (default: bidirectional)",
    )
    pooling: str = _option(
        "max",
        "classify: how the per-step outputs become one vector: the last state of each "
        "direction, or the mean or max over the steps (padding excluded)",
        choices=("last", "mean", "max"),
    )
    crf: bool = _option(
        False,
        "tag: a linear-chain CRF output layer (Viterbi decoding; BIO transitions I-X only "
        "after B-X or I-X) instead of per-token softmax",
    )
    char_features: bool = _option(
        False, "tag: add a character-level BiLSTM encoding of each token to its embedding"
    )
    attention: str = _option(
        "bahdanau",
        "seq2seq: attention of the decoder over the encoder states: additive (Bahdanau), "
        "Luong's general s·W·m or dot s·m score, or none (the source reaches the decoder "
        "only through its initial state)",
        choices=("bahdanau", "luong", "dot", "none"),
    )
    # --- batches
    batch_size: int = _option(32, "sequences per batch", metavar="N")
    seq_len: int = _option(64, "time steps per batch (truncated BPTT length)", metavar="N")
    batching: str = _option(
        "sequential",
        "sequential: each batch row continues the previous batch's row and the "
        "state is carried (detached); random: random windows, state reset every batch",
        choices=("sequential", "random"),
    )
    # --- optimizer and schedule
    optimizer: str = _option("adamw", "optimizer", choices=("adamw", "sgd"))
    lr: float = _option(1.5e-2, "peak learning rate", metavar="LR")
    weight_decay: float = _option(0.1, "decoupled weight decay (AdamW) or L2 (SGD)", metavar="W")
    momentum: float = _option(0.0, "SGD momentum", metavar="M")
    beta1: float | None = _option(
        None,
        f"AdamW's first-moment (momentum) decay; default {DEFAULT_LM_BETA1:g} for the language "
        "model (measured), 0.9 (torch's) for the task models",
        kind=float,
        metavar="B",
    )
    beta2: float = _option(0.999, "AdamW's second-moment decay", metavar="B")
    warmup_steps: int = _option(100, "linear learning-rate warm-up steps", metavar="N")
    schedule: str = _option(
        "cosine",
        "after warm-up: cosine or linear decay to zero over the budget, or constant",
        choices=("cosine", "linear", "constant"),
    )
    clip: float = _option(1.0, "clip gradients to this global L2 norm; 0 disables", metavar="NORM")
    # --- budget, evaluation, checkpoints
    max_time: float | None = _option(
        None,
        f"training budget in seconds, evaluation and checkpointing excluded; default "
        f"{DEFAULT_MAX_TIME:g} when --max-steps is not given either",
        kind=float,
        metavar="SECONDS",
    )
    max_steps: int | None = _option(
        None,
        "training budget in optimizer steps (with --max-time too, whichever ends first)",
        kind=int,
        metavar="N",
    )
    eval_every: int = _option(
        500, "evaluate on the held-out part every N steps (and always at the end)", metavar="N"
    )
    save_every: int = _option(
        200, "save the latest/ checkpoint every N steps (and always at the end)", metavar="N"
    )
    seed: int = _option(0, "random seed (initialization, batch order, dropout)", metavar="N")
    precision: str = _option(
        "auto",
        "arithmetic of the training steps: bfloat16 multiplies in bfloat16 with float32 "
        "weights, gradients and optimizer (autocast; 1.5-2x faster where the CPU has "
        "AVX512-BF16 or AMX), float32 throughout; auto: bfloat16 where the CPU multiplies it "
        "natively. Evaluation, generation and checkpoints are float32",
        choices=PRECISIONS,
    )
    threads: int | None = _option(
        None,
        "torch CPU threads; default: torch's choice (all cores) for lm, 1 for the task models",
        kind=int,
        metavar="N",
    )

    def __post_init__(self) -> None:
        validate(self)

    def budget(self) -> tuple[int | None, float | None]:
        """(max_steps, max_time) with the default time budget filled in."""
        if self.max_steps is None and self.max_time is None:
            return None, DEFAULT_MAX_TIME
        return self.max_steps, self.max_time

    def planned_passes(self, train_tokens: int) -> float:
        """How many times the budget goes over `train_tokens` training tokens (a time budget
        counted at NOMINAL_TOKENS_PER_S)."""
        max_steps, max_time = self.budget()
        budgets = []
        if max_steps is not None:
            budgets.append(max_steps * self.batch_size * self.seq_len)
        if max_time is not None:
            budgets.append(max_time * NOMINAL_TOKENS_PER_S)
        return min(budgets) / max(train_tokens, 1)

    def resolved_dropout(self, train_tokens: int) -> float:
        """--dropout, or the automatic choice for a text of `train_tokens` training tokens."""
        if self.dropout is not None:
            return float(self.dropout)
        return AUTO_DROPOUT if self.planned_passes(train_tokens) > AUTO_DROPOUT_PASSES else 0.0

    def resolved_beta1(self) -> float:
        """--beta1, or the default: DEFAULT_LM_BETA1 for the language model, 0.9 for tasks."""
        if self.beta1 is not None:
            return float(self.beta1)
        return DEFAULT_LM_BETA1 if self.task == "lm" else 0.9

    def resolved_forget_bias(self) -> float:
        """--forget-bias, or the default shift for an LSTM (0 for the other cells)."""
        if self.forget_bias is not None:
            return float(self.forget_bias)
        return DEFAULT_FORGET_BIAS if self.cell == "lstm" else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return dataclass_from_dict(cls, data, "train config")

    def with_overrides(self, **changes) -> TrainConfig:
        return replace(self, **changes)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def cli_options() -> list[dict]:
    """One dict per option for the command line: name, flag, kind, default, help, choices."""
    options = []
    for f in fields(TrainConfig):
        default = None if f.default is MISSING else f.default
        options.append(
            {"name": f.name, "flag": flag_name(f.name), "default": default, **f.metadata}
        )
    return options


# ---------------------------------------------------------------- validation


def _fail(name: str, expected: str, value) -> ValueError:
    return ValueError(f"{flag_name(name)} ({name}) must be {expected}; got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _check_int(config, name: str, minimum: int, optional: bool = False) -> None:
    value = getattr(config, name)
    if optional and value is None:
        return
    if not _is_int(value) or value < minimum:
        raise _fail(name, f"an integer >= {minimum}", value)


def _check_real(config, name: str, low: float, *, strict_low: bool, optional=False) -> None:
    value = getattr(config, name)
    if optional and value is None:
        return
    if not _is_real(value) or value < low or (strict_low and value == low):
        raise _fail(name, f"a number {'>' if strict_low else '>='} {low:g}", value)


def _check_unit_interval(config, name: str, expected: str, optional=False) -> None:
    """A number in [0, 1): a decay rate or a probability."""
    value = getattr(config, name)
    if optional and value is None:
        return
    if not _is_real(value) or not 0 <= value < 1:
        raise _fail(name, f"{expected} in [0, 1)", value)


def _check_choice(config, name: str) -> None:
    choices = TrainConfig.__dataclass_fields__[name].metadata["choices"]
    value = getattr(config, name)
    if value not in choices:
        raise _fail(name, f"one of {', '.join(choices)}", value)


def _check_path(config, name: str) -> None:
    value = getattr(config, name)
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(name, "a file path", value)


def validate(config: TrainConfig) -> None:
    """Raise a one-line ValueError naming the first bad option (flag and field)."""
    for name in ("data", "word_vectors", "out"):
        _check_path(config, name)
    for name in (
        "task",
        "tokens",
        "cell",
        "backend",
        "batching",
        "optimizer",
        "schedule",
        "pooling",
        "attention",
        "precision",
        "recurrent_init",
    ):
        _check_choice(config, name)
    if not isinstance(config.encoding, str) or not config.encoding:
        raise _fail("encoding", "a text encoding name", config.encoding)
    vf = config.val_fraction
    if not _is_real(vf) or not 0 < vf < 1:
        raise _fail("val_fraction", "a fraction strictly between 0 and 1", vf)
    _check_int(config, "vocab_size", 5, optional=True)
    _check_int(config, "min_freq", 1)
    _check_int(config, "embedding_dim", 0)
    for name in ("hidden_size", "num_layers", "batch_size", "seq_len", "eval_every"):
        _check_int(config, name, 1)
    _check_int(config, "save_every", 1)
    _check_int(config, "warmup_steps", 0)
    _check_int(config, "seed", 0)
    _check_int(config, "max_steps", 1, optional=True)
    _check_int(config, "threads", 1, optional=True)
    _check_real(config, "lr", 0.0, strict_low=True)
    _check_real(config, "max_time", 0.0, strict_low=True, optional=True)
    for name in ("weight_decay", "clip", "momentum"):
        _check_real(config, name, 0.0, strict_low=False)
    _check_unit_interval(config, "beta1", "a number", optional=True)
    _check_unit_interval(config, "beta2", "a number")
    _check_unit_interval(config, "dropout", "a probability", optional=True)
    if not isinstance(config.tie_weights, bool):
        raise _fail("tie_weights", "true or false", config.tie_weights)
    if config.forget_bias is not None:
        if not _is_real(config.forget_bias):
            raise _fail("forget_bias", "a finite number", config.forget_bias)
        if config.cell != "lstm":
            raise ValueError(
                f"--forget-bias applies to --cell lstm; got --cell {config.cell}; drop it"
            )
    if config.tie_weights and config.embedding_dim != config.hidden_size:
        raise ValueError(
            f"--tie-weights needs --embedding-dim equal to --hidden-size (the output layer "
            f"reuses the embedding matrix); got --embedding-dim {config.embedding_dim} and "
            f"--hidden-size {config.hidden_size}"
        )
    if config.word_vectors is not None and config.embedding_dim == 0:
        raise ValueError("--word-vectors needs a learned embedding; got --embedding-dim 0")
    for name in ("val_data", "column", "exogenous"):
        _check_path(config, name)
    _check_int(config, "window", 1)
    _check_int(config, "holdout", 1, optional=True)
    for name in ("unidirectional", "crf", "char_features"):
        if not isinstance(getattr(config, name), bool):
            raise _fail(name, "true or false", getattr(config, name))
    if config.task == "lm":
        _check_lm_only(config)
    if config.word_vectors is not None and config.tokens != "word":
        raise ValueError("--word-vectors needs --tokens word")


# Fields that only the task models read (rnnkit.tasks); the language model rejects them.
TASK_ONLY = (
    "val_data",
    "column",
    "window",
    "exogenous",
    "holdout",
    "unidirectional",
    "pooling",
    "crf",
    "char_features",
    "attention",
)


def _check_lm_only(config: TrainConfig) -> None:
    if config.tokens == "numbers":
        raise ValueError("--tokens numbers applies to --task classify, not the language model")
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for name in TASK_ONLY:
        if getattr(config, name) != defaults[name]:
            raise ValueError(
                f"{flag_name(name)} applies to the task models (--task classify, tag, seq2seq, "
                "forecast), not the language model (--task lm); drop it"
            )
