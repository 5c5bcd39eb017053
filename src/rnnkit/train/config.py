"""`TrainConfig`: the settings of one training run, shared by every task, and the task's own.

A run config has two parts:

- the run-wide settings below (data, model size, initialization, optimizer, schedule, gradient
  clipping, budget, precision, threads, seed, output), the same for every task; their defaults
  are the language model's measured recipe, and each task may replace some (`Task.defaults`);
- `options`: the settings of the task itself, declared beside the task (`Task.own_options`:
  `--seq-len` for lm, `--crf` for tag, `--window` for forecast, ...). They read as attributes
  too: `config.seq_len`.

The command line is generated from these declarations (`rnnkit.cli`), and every value is
checked by its `rnnkit._checks.Option`, so a setting is declared, documented and checked once.
`benchmarks/lm_sweep.py` is the sweep that chose the language model's defaults.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

from .._checks import UNSET, Option, flag_name, suggest
from ..initializers import INPUT_INITS, RECURRENT_INITS
from ..models import CELLS
from .precision import PRECISIONS

__all__ = [
    "DEFAULT_MAX_TIME",
    "OPTION_GROUPS",
    "TrainConfig",
    "flag_name",
    "run_options",
    "task_config",
]

# rnnkit.tasks.base.TASKS, kept in step
TASKS = ("lm", "classify", "tag", "seq2seq", "forecast", "condlm", "transcribe")

DEFAULT_MAX_TIME = 300.0  # seconds of training when neither max_time nor max_steps is given
# Task settings whose default changed after the flat config format (every setting at the top
# level) was written: runs of other tasks saved then hold the old default, which is no choice.
FLAT_FORMAT_DEFAULTS = {"crf": False, "char_features": False}

# The automatic dropout (`--dropout` not given) of the language model. Measured with the default
# model in 100 s runs (docs/benchmarks.md): tiny shakespeare (about 7 passes over its text)
# trains best without dropout, the built-in corpus (15 passes) and The Time Machine (35 passes)
# gain 0.05 and 0.14 nats/char from dropout 0.2. With the orthogonal init and the forget-bias
# shift the model fits faster and needs 0.3 there (3,000 steps: pydoc 1.1031 at 0.2, 1.0869 at
# 0.3; The Time Machine 2.485 and 2.379). With the compiled dropout (rnnkit.Dropout, 2026-12-04)
# 100 s of tiny shakespeare are 13 passes, and 0.2 beat both 0 and 0.3 on each of three seeds
# (median 1.4100 against 1.4139 and 1.4138 nats/char; benchmarks/results/2026-12-04-lm). A time
# budget is turned into passes at the default model's measured speed on a 2-core CPU (126k-141k
# tokens/s in those runs), so the choice depends on the settings and the text, not on the
# machine.
AUTO_DROPOUT = ((10.0, 0.0), (15.0, 0.2), (math.inf, 0.3))  # (up to this many passes, dropout)
NOMINAL_TOKENS_PER_S = 130_000.0


def auto_dropout(passes: float) -> float:
    """The language model's dropout for a budget of `passes` over its training text."""
    return next(p for most, p in AUTO_DROPOUT if passes <= most)


# The LSTM's forget-gate bias shift at init (`--forget-bias` not given). At 3,500 steps on
# tiny shakespeare: +0.5: +0.025 nats/char, -0.5: -0.004, -1: -0.008, -2: -0.004 (benchmarks/
# lm_sweep_results.md, third sweep).
DEFAULT_FORGET_BIAS = -1.0

# AdamW's beta1 for the language model (`--beta1` not given): at 3,500 steps on tiny
# shakespeare 0.85 beat 0.9 by 0.004 and 0.010 on two seeds (lm_sweep_results.md, third sweep).
DEFAULT_LM_BETA1 = 0.85

# Settings a resumed run may change; every other one must match the stored run.
RESUMABLE_OVERRIDES = (
    "out",
    "data",
    "max_time",
    "max_steps",
    "max_epochs",
    "eval_every",
    "log_every",
    "save_every",
    "threads",
)

# The headings of `rnnkit train --help`, in order; every run-wide setting names one.
OPTION_GROUPS = {
    "run": "the run",
    "data": "data",
    "model": "model",
    "init": "initialization",
    "optimizer": "optimizer and schedule",
    "gradients": "gradients",
    "budget": "budget, evaluation, checkpoints",
    "machine": "arithmetic and threads",
}


def _setting(default, help: str, group: str, **spec):
    """A run-wide setting: a dataclass field whose metadata describes its `Option`."""
    return field(default=default, metadata={"help": help, "group": group, **spec})


@dataclass(init=False)
class TrainConfig:
    """Settings of one training run (see `rnnkit train --help`).

    TrainConfig(**settings): keyword arguments that are not run-wide settings are the task's
    own (`TrainConfig(seq_len=128)`, `TrainConfig(task="tag", crf=True)`) and end up in
    `options`; the task's defaults of its run-wide settings are applied by `task_config`.
    """

    task: str = _setting(
        "lm",
        "what to train: lm (language model on plain text), classify (label<TAB>text lines), "
        "tag (token<TAB>tag lines, blank line between sentences), seq2seq (source<TAB>target "
        "lines), forecast (CSV with a header), condlm (condition<TAB>text lines: text generated "
        "from a category or a vector), transcribe (audio.wav<TAB>transcript lines: speech to text "
        "with CTC); each task has defaults of its own",
        "run",
        choices=TASKS,
    )
    out: str | None = _setting(
        None,
        "run directory to write (created; must not hold another run)",
        "run",
        kind=str,
        metavar="DIR",
        path=True,
    )
    # --- data
    data: str | None = _setting(
        None,
        "file to train on; the language model's default: the built-in corpus (CPython's pydoc "
        "topics, about 465 KB of English prose)",
        "data",
        kind=str,
        metavar="FILE",
        path=True,
    )
    encoding: str = _setting("utf-8", "text encoding of --data (e.g. latin-1)", "data")
    val_fraction: float = _setting(
        0.1,
        "hold out the last FRACTION of the data for evaluation (the language model: of the "
        "file's characters; the tasks: of the examples)",
        "data",
        metavar="FRACTION",
        minimum=0.0,
        exclusive=True,
        below=1.0,
        what="a fraction",
    )
    val_data: str | None = _setting(
        None,
        "hold out this file (same format as --data) instead of the last --val-fraction "
        "(task models)",
        "data",
        kind=str,
        metavar="FILE",
        path=True,
    )
    tokens: str = _setting(
        "char",
        "token unit: characters or words (word language models frame every line with <bos> "
        "... <eos>); numbers (classify only): the text column is a sequence of numeric "
        "vectors, time steps separated by ';', values by spaces or commas",
        "data",
        choices=("char", "word", "numbers"),
    )
    segmenter: str = _setting(
        "jieba",
        "with --tokens word, how a run of Chinese characters (no spaces between its words) "
        "is split: jieba's dictionary segmenter (我爱北京天安门 -> 我 / 爱 / 北京 / 天安门), "
        "char (one token per character) or none (the run is one token); text without Chinese "
        "is not affected",
        "data",
        choices=("jieba", "char", "none"),
    )
    vocab_size: int | None = _setting(
        None,
        "keep at most N tokens, most frequent first (the 4 specials count); "
        "default: every token of the training part",
        "data",
        kind=int,
        metavar="N",
        minimum=5,
    )
    min_freq: int = _setting(
        1,
        "drop tokens seen fewer than N times in the training part",
        "data",
        metavar="N",
        minimum=1,
    )
    word_vectors: str | None = _setting(
        None,
        "initialize the embedding from GloVe or word2vec text vectors (FILE's width must "
        "equal --embedding-dim)",
        "data",
        kind=str,
        metavar="FILE",
        path=True,
    )
    # --- model
    cell: str = _setting("lstm", "recurrent cell", "model", choices=CELLS)
    nonlinearity: str | None = _setting(
        None,
        "the cell's activation where it has one: tanh or relu (rnn, jordan, indrnn); "
        "default: the cell's own (tanh; relu for indrnn). --cell rnn --nonlinearity relu "
        "--recurrent-init identity is the IRNN of Le et al. 2015",
        "model",
        kind=str,
        choices=("tanh", "relu"),
    )
    embedding_dim: int = _setting(
        64, "input embedding width; 0 feeds one-hot vectors", "model", metavar="N", minimum=0
    )
    hidden_size: int = _setting(320, "hidden units per layer", "model", metavar="N", minimum=1)
    num_layers: int = _setting(1, "stacked recurrent layers", "model", metavar="N", minimum=1)
    dropout: float | None = _setting(
        None,
        "dropout between layers and before the output layer; default for lm: by the passes "
        "the budget covers over the training text, "
        + ", ".join(
            f"{p:g} up to {most:g}" if math.isfinite(most) else f"{p:g} beyond"
            for most, p in AUTO_DROPOUT
        )
        + " (small texts overfit otherwise); the task models: their own",
        "model",
        kind=float,
        metavar="P",
        minimum=0.0,
        below=1.0,
        what="a probability",
    )
    backend: str = _setting(
        "auto",
        "rnnkit layer backend: auto picks per call what measured fastest (torch's kernel or "
        "rnnkit's compiled engine; the reference engine where neither can run); native is "
        "torch's kernel, compiled rnnkit's C++ engine, reference the plain-torch engine (see "
        "docs/engine.md)",
        "model",
        choices=("auto", "native", "reference", "compiled"),
    )
    # --- initialization
    recurrent_init: str = _setting(
        "orthogonal",
        "hidden-to-hidden weights at the start: orthogonal per gate (Keras' default; trains "
        "to a lower loss in the same steps), uniform (torch.nn's ±1/sqrt(H)), xavier (Glorot "
        "uniform per gate), identity (W_hh = I and zero biases, Le et al. 2015's IRNN), "
        "chrono (orthogonal weights and the gate biases of Tallec & Ollivier 2018 for "
        "memories of up to --chrono-tmax steps; LSTM and GRU cells)",
        "init",
        choices=RECURRENT_INITS,
    )
    input_init: str = _setting(
        "uniform",
        "input-to-hidden weights at the start: uniform (torch.nn's ±1/sqrt(H)), xavier "
        "(Glorot uniform per gate) or orthogonal (per gate)",
        "init",
        choices=INPUT_INITS,
    )
    forget_bias: float | None = _setting(
        None,
        "LSTM: added to the forget-gate bias at initialization; default "
        f"{DEFAULT_FORGET_BIAS:g} (forgets faster at first: measured lower loss in short "
        "budgets; Keras' unit_forget_bias is +1); with --recurrent-init chrono: 0",
        "init",
        kind=float,
        metavar="B",
        what="a finite number",
    )
    chrono_tmax: int | None = _setting(
        None,
        "--recurrent-init chrono: the longest dependency, in steps, the gates should keep "
        "at first; default: the language model's --seq-len, the longest training example "
        "for the other tasks",
        "init",
        kind=int,
        metavar="T",
        minimum=2,
    )
    # --- optimizer and schedule
    batch_size: int = _setting(
        32,
        "sequences per batch (under torchrun the global batch, split across the processes)",
        "optimizer",
        metavar="N",
        minimum=1,
    )
    optimizer: str = _setting("adamw", "optimizer", "optimizer", choices=("adamw", "sgd"))
    lr: float = _setting(
        1.5e-2, "peak learning rate", "optimizer", metavar="LR", minimum=0.0, exclusive=True
    )
    weight_decay: float = _setting(
        0.1, "decoupled weight decay (AdamW) or L2 (SGD)", "optimizer", metavar="W", minimum=0.0
    )
    momentum: float = _setting(0.0, "SGD momentum", "optimizer", metavar="M", minimum=0.0)
    beta1: float | None = _setting(
        None,
        f"AdamW's first-moment (momentum) decay; default {DEFAULT_LM_BETA1:g} for the language "
        "model (measured), 0.9 (torch's) for the task models",
        "optimizer",
        kind=float,
        metavar="B",
        minimum=0.0,
        below=1.0,
    )
    beta2: float = _setting(
        0.999, "AdamW's second-moment decay", "optimizer", metavar="B", minimum=0.0, below=1.0
    )
    ema_decay: float = _setting(
        0.0,
        "evaluate, and keep in best/, the exponential moving average of the weights with this "
        "decay per step (0.999: about the last 1,000 steps; rnnkit.train.averaging); 0: off",
        "optimizer",
        metavar="D",
        minimum=0.0,
        below=1.0,
    )
    warmup_steps: int = _setting(
        100, "linear learning-rate warm-up steps", "optimizer", metavar="N", minimum=0
    )
    schedule: str = _setting(
        "cosine",
        "after warm-up: cosine or linear decay to zero over the budget, or constant",
        "optimizer",
        choices=("cosine", "linear", "constant"),
    )
    # --- gradients
    clip: float = _setting(
        1.0,
        "clip the gradients to this global L2 norm (all parameters together); 0 disables. "
        "The norm before clipping is logged (grad_norm in log.jsonl, grad_norm.png)",
        "gradients",
        metavar="NORM",
        minimum=0.0,
    )
    clip_value: float | None = _setting(
        None,
        "clip every gradient element to [-V, V] (before --clip, if both are given); default: off",
        "gradients",
        kind=float,
        metavar="V",
        minimum=0.0,
        exclusive=True,
    )
    # --- budget, evaluation, checkpoints
    max_time: float | None = _setting(
        None,
        f"training budget in seconds, evaluation and checkpointing excluded; default "
        f"{DEFAULT_MAX_TIME:g} when --max-steps is not given either (a task's default step "
        "budget gives way to --max-time)",
        "budget",
        kind=float,
        metavar="SECONDS",
        minimum=0.0,
        exclusive=True,
    )
    max_steps: int | None = _setting(
        None,
        "training budget in optimizer steps (with --max-time too, whichever ends first)",
        "budget",
        kind=int,
        metavar="N",
        minimum=1,
    )
    max_epochs: float | None = _setting(
        None,
        "training budget in passes over the training examples, beside --max-steps and "
        "--max-time (whichever ends first), so that a long --max-time does not train past "
        "the point where the model overfits (the 300 s default time budget still holds "
        "unless --max-time or --max-steps is given); tag sets one, measured on public data "
        "(docs/tasks.md), which gives way to a given --max-steps; a given --max-epochs "
        "replaces a task's default step budget. The task models only (not --task lm)",
        "budget",
        kind=float,
        metavar="E",
        minimum=0.0,
        exclusive=True,
    )
    eval_every: int = _setting(
        500,
        "evaluate on the held-out part every N steps (and always at the end)",
        "budget",
        metavar="N",
        minimum=1,
    )
    log_every: int = _setting(
        100,
        "write the training loss, the gradient norm before clipping and the fraction of steps "
        "clipped to log.jsonl every N steps",
        "budget",
        metavar="N",
        minimum=1,
    )
    save_every: int = _setting(
        200,
        "save the latest/ checkpoint every N steps (and always at the end, and on Ctrl-C)",
        "budget",
        metavar="N",
        minimum=1,
    )
    seed: int = _setting(
        0, "random seed (initialization, batch order, dropout)", "budget", metavar="N", minimum=0
    )
    precision: str = _setting(
        "auto",
        "arithmetic of the training steps: bfloat16 multiplies in bfloat16 with float32 "
        "weights, gradients and optimizer (autocast; 1.5-2x faster where the CPU has "
        "AVX512-BF16 or AMX), float32 throughout; auto: bfloat16 where the CPU multiplies it "
        "natively. Evaluation, generation and checkpoints are float32",
        "machine",
        choices=PRECISIONS,
    )
    threads: int | None = _setting(
        None,
        "torch CPU threads; default: torch's choice (all cores) for lm, 1 for the task models; "
        "under torchrun, lm's default is the machine's cores divided among its processes",
        "machine",
        kind=int,
        metavar="N",
        minimum=1,
    )
    # --- the task's own settings (Task.own_options), by name
    options: dict = field(default_factory=dict, metadata={"group": None})

    def __init__(self, **settings) -> None:
        options = dict(settings.pop("options", None) or {})
        for f in fields(self):
            if f.name == "options":
                continue
            default = f.default_factory() if f.default is MISSING else f.default
            setattr(self, f.name, settings.pop(f.name, default))
        options.update(settings)  # what is left is the task's own
        self.options = _resolve_task_options(self.task, options)
        validate(self)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: the task's own settings read as attributes.
        if name.startswith("__") or name == "options":
            raise AttributeError(name)
        options = self.__dict__.get("options") or {}
        if name in options:
            return options[name]
        raise AttributeError(
            f"TrainConfig of task {self.__dict__.get('task')!r} has no setting {name!r}"
        )

    def budget(self, steps_per_epoch: int | None = None) -> tuple[int | None, float | None]:
        """(max_steps, max_time) with the default time budget filled in; with
        `steps_per_epoch` (the batch source's), --max-epochs as steps joins --max-steps."""
        max_steps = self.max_steps
        if self.max_epochs is not None and steps_per_epoch is not None:
            epoch_steps = max(1, math.ceil(self.max_epochs * steps_per_epoch))
            max_steps = epoch_steps if max_steps is None else min(max_steps, epoch_steps)
        if self.max_steps is None and self.max_time is None:
            return max_steps, DEFAULT_MAX_TIME
        return max_steps, self.max_time

    def resolved_beta1(self) -> float:
        """--beta1, or the default: DEFAULT_LM_BETA1 for the language model, 0.9 for tasks."""
        if self.beta1 is not None:
            return float(self.beta1)
        return DEFAULT_LM_BETA1 if self.task == "lm" else 0.9

    def resolved_forget_bias(self) -> float:
        """--forget-bias, or the default shift for an LSTM (0 for the other cells and under
        the chrono init, which sets the gate biases itself)."""
        if self.forget_bias is not None:
            return float(self.forget_bias)
        if self.cell == "lstm" and self.recurrent_init != "chrono":
            return DEFAULT_FORGET_BIAS
        return 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A config from `to_dict()`'s JSON, or from the flat JSON of rnnkit before the task
        settings moved beside the tasks (every setting at the top level). A task setting the
        JSON lacks takes its `saved_before` value if it has one (what runs did before the
        setting existed), else its default."""
        if not isinstance(data, dict):
            raise ValueError(f"a train config must be a JSON object; got {type(data).__name__}")
        shared = {f.name for f in fields(cls)}
        task = data.get("task", "lm")
        own = _task_option_specs(task) if task in TASKS else {}
        settings, options = {}, dict(data.get("options") or {})
        for name, value in data.items():
            if name in shared:
                if name != "options":
                    settings[name] = value
            elif name in own:
                options[name] = value
            elif name in _any_task_option_defaults():
                if value != _any_task_option_defaults()[name] and not (
                    name in FLAT_FORMAT_DEFAULTS and value == FLAT_FORMAT_DEFAULTS[name]
                ):
                    raise ValueError(
                        f"train config: {name}={value!r} belongs to another task than {task}"
                    )
            else:
                raise ValueError(f"unknown train config keys: {name}")
        for name, option in own.items():  # a setting the run was saved without
            if name not in options and option.saved_before is not UNSET:
                options[name] = option.saved_before
        return cls(**settings, options=options)

    def with_overrides(self, **changes) -> TrainConfig:
        """A copy with `changes` applied, run-wide settings and task settings alike."""
        shared = {f.name for f in fields(self)} - {"options"}
        options = dict(self.options)
        run = {}
        for name, value in changes.items():
            (run if name in shared else options)[name] = value
        if "task" in run and run["task"] != self.task:
            options = {k: v for k, v in options.items() if k in changes}
        return replace(self, **run, options=options)


def run_options() -> list[tuple[Option, str]]:
    """Every run-wide setting as (Option, group) in declaration order."""
    found = []
    for f in fields(TrainConfig):
        meta = dict(f.metadata)
        group = meta.pop("group", None)
        if group is None:
            continue
        default = None if f.default is MISSING else f.default
        found.append((Option(name=f.name, default=default, **meta), group))
    return found


def _run_option_map() -> dict[str, Option]:
    return {option.name: option for option, _ in run_options()}


# ---------------------------------------------------------------- task settings


def _task_option_specs(task: str) -> dict[str, Option]:
    from ..tasks.base import task_class

    return {option.name: option for option in task_class(task).own_options}


def _any_task_option_defaults() -> dict[str, object]:
    """name -> default of every task's own settings (for reading old flat configs)."""
    from ..tasks.base import task_class

    defaults = {}
    for task in TASKS:
        try:
            specs = task_class(task).own_options
        except (ValueError, NotImplementedError):
            continue
        defaults.update({option.name: option.default for option in specs})
    return defaults


def tasks_with_option(name: str) -> list[str]:
    from ..tasks.base import task_class

    return [task for task in TASKS if name in {o.name for o in task_class(task).own_options}]


def _resolve_task_options(task: str, given: dict) -> dict:
    """The task's own settings: `given` checked, the rest at their defaults."""
    if task not in TASKS:
        return dict(given)  # validate() reports the unknown task
    if not isinstance(given, dict):
        raise ValueError(f"options must be a dict of the task's settings; got {given!r}")
    specs = _task_option_specs(task)
    for name, value in given.items():
        if name not in specs:
            raise unknown_setting(name, task)
        specs[name].check(value)
    return {name: given.get(name, option.default) for name, option in specs.items()}


def unknown_setting(name: str, task: str) -> ValueError:
    """The error for a setting `task` does not take: whose it is, or what was meant."""
    users = tasks_with_option(name)
    if users:
        return ValueError(
            f"{flag_name(name)} applies to --task {' or '.join(users)}, not --task {task}; drop it"
        )
    known = [*_run_option_map(), *_task_option_specs(task)]
    return ValueError(f"unknown setting {name!r}{suggest(name, known)}")


def task_config(task: str = "lm", **given) -> TrainConfig:
    """The TrainConfig of `task`: its defaults (`Task.defaults`), then the settings `given`,
    run-wide and the task's own alike.

    A task's default step budget gives way to a --max-time given without --max-steps (and a
    default time budget to a given --max-steps), so --max-time means the same for every task;
    a task's default epoch budget gives way to a given --max-steps, not to --max-time (it is
    there to stop a long time budget short of overfitting), and a task's default step budget
    to a given --max-epochs.
    """
    from ..tasks.base import task_class

    defaults = dict(task_class(task).defaults)
    if "max_time" in given and "max_steps" not in given:
        defaults.pop("max_steps", None)
    if "max_steps" in given and "max_time" not in given:
        defaults.pop("max_time", None)
    if "max_steps" in given:  # a step count asked for is trained whole
        defaults.pop("max_epochs", None)
    if "max_epochs" in given and "max_steps" not in given:
        defaults.pop("max_steps", None)
    settings = {**defaults, **given, "task": task}
    shared = {f.name for f in fields(TrainConfig)} - {"options"}
    run = {k: v for k, v in settings.items() if k in shared}
    options = {k: v for k, v in settings.items() if k not in shared}
    config = TrainConfig(**run, options=options)
    task_class(task).check_given(given, config)
    return config


# ---------------------------------------------------------------- checks across settings


def validate(config: TrainConfig) -> None:
    """Raise a one-line ValueError naming the first bad setting (flag and field)."""
    for name, option in _run_option_map().items():
        option.check(getattr(config, name))
    if config.forget_bias is not None and config.cell != "lstm":
        raise ValueError(f"--forget-bias applies to --cell lstm; got --cell {config.cell}; drop it")
    if config.nonlinearity is not None and config.cell not in ("rnn", "jordan", "indrnn"):
        raise ValueError(
            f"--nonlinearity applies to --cell rnn, jordan or indrnn; got --cell {config.cell}; "
            "drop it"
        )
    if config.chrono_tmax is not None and config.recurrent_init != "chrono":
        raise ValueError(
            "--chrono-tmax applies to --recurrent-init chrono; add it or drop --chrono-tmax"
        )
    if config.recurrent_init == "chrono" and config.cell not in ("lstm", "gru", "lnlstm", "lngru"):
        raise ValueError(
            f"--recurrent-init chrono sets the gate biases of an LSTM or GRU cell (lstm, gru, "
            f"lnlstm, lngru); got --cell {config.cell}"
        )
    if config.max_epochs is not None and config.task == "lm":
        raise ValueError(
            "--max-epochs applies to the task models: --task lm reads its text as one stream; "
            "give its budget as --max-steps or --max-time"
        )
    if config.word_vectors is not None and config.embedding_dim == 0:
        raise ValueError("--word-vectors needs a learned embedding; got --embedding-dim 0")
    if config.word_vectors is not None and config.tokens != "word":
        raise ValueError("--word-vectors needs --tokens word")
    if config.task in TASKS:
        from ..tasks.base import task_class

        task_class(config.task).check_config(config)
