"""`rnnkit bench`: time rnnkit's backends against torch.nn and a naive cell loop, in one run.

Every configuration builds three contenders with identical weights and the same input:

    reference   the rnnkit layer with backend="reference" (rnnkit's engine)
    native      the same layer with backend="native", i.e. torch.nn's fused kernel
    naive       a Python loop over nn.LSTMCell / nn.GRUCell / nn.RNNCell with autograd
                (for JordanRNN, which torch lacks: a hand-written autograd loop over
                h = tanh(x W_x^T + y W_r^T + b), y = tanh(h W_y^T + b_y))

Suites:
    train-step  forward + backward of a fixed random projection of the outputs and the final
                states, i.e. torch.autograd.backward((output, *finals), fixed_grads); the input
                requires grad, as for a layer inside a deeper network
    forward     forward only, under torch.no_grad()

Each contender runs `warmup` times, then `repeats` rounds in which every contender runs once,
interleaved and in a rotating order, so drifts of the machine hit all of them alike. Reported:
the median time per contender with its interquartile range, and rnnkit's speedups
time_other / time_reference (above 1 means rnnkit's reference engine is faster), from the
per-round paired ratios. Before timing, the contenders' outputs and gradients are compared, so a
table never compares computations that differ.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import GRU, LSTM, RNN, JordanRNN, __version__

__all__ = [
    "FULL_CONFIGS",
    "QUICK_CONFIGS",
    "BenchConfig",
    "BenchResult",
    "Machine",
    "Timing",
    "add_bench_arguments",
    "benchmark",
    "run_bench",
]

SUITES = {
    "train-step": "forward + backward of a fixed random projection of outputs and final states",
    "forward": "forward only, under torch.no_grad()",
}
CONTENDERS = ("reference", "native", "naive")
DEFAULT_REPEATS, QUICK_REPEATS = 30, 5
DEFAULT_WARMUP, QUICK_WARMUP = 3, 1
AGREEMENT_TOLERANCE = 1e-3  # largest relative difference accepted between contenders
BUSY_SHARE = 0.10  # other processes using more than this share of the CPUs flag a row


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class BenchConfig:
    """One benchmarked layer: which cell and its sizes (single layer, unidirectional)."""

    cell: str  # "lstm", "gru", "rnn_tanh" or "jordan"
    batch: int
    steps: int
    input_size: int
    hidden_size: int
    output_size: int = 0  # Jordan only
    dtype: str = "float32"

    @property
    def label(self) -> str:
        name = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN(tanh)", "jordan": "Jordan"}
        sizes = f"B{self.batch} T{self.steps} I{self.input_size} H{self.hidden_size}"
        if self.cell == "jordan":
            sizes += f" O{self.output_size}"
        return f"{name[self.cell]} {sizes}"


FULL_CONFIGS = (
    BenchConfig("lstm", 32, 35, 28, 256),
    BenchConfig("lstm", 8, 200, 32, 128),
    BenchConfig("rnn_tanh", 32, 35, 28, 256),
    BenchConfig("gru", 32, 35, 28, 256),
    BenchConfig("jordan", 32, 35, 28, 256, output_size=28),
)
QUICK_CONFIGS = (
    BenchConfig("lstm", 4, 12, 8, 32),
    BenchConfig("rnn_tanh", 4, 12, 8, 32),
    BenchConfig("gru", 4, 12, 8, 32),
    BenchConfig("jordan", 4, 12, 8, 32, output_size=8),
)


# --------------------------------------------------------------------------- contenders


@dataclass
class Contender:
    """Something to time: `forward()` returns (output, *final_states) for the shared input."""

    name: str
    forward: Callable[[], tuple[Tensor, ...]]
    parameters: list[Tensor]

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.grad = None


_LAYERS = {"lstm": (LSTM, nn.LSTMCell), "gru": (GRU, nn.GRUCell), "rnn_tanh": (RNN, nn.RNNCell)}


def _flatten(result) -> tuple[Tensor, ...]:
    """(output, h_n) or (output, (h_n, c_n)) as a flat tuple of tensors."""
    output, finals = result
    return (output, *finals) if isinstance(finals, tuple) else (output, finals)


def _cell_copy(layer: nn.RNNBase, cell_class: type[nn.RNNCellBase]) -> nn.RNNCellBase:
    """An nn.*Cell holding copies of the single-layer `layer`'s weights."""
    extra = {"nonlinearity": "tanh"} if cell_class is nn.RNNCell else {}
    dtype = layer.weight_ih_l0.dtype
    cell = cell_class(layer.input_size, layer.hidden_size, dtype=dtype, **extra)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(layer, f"{name}_l0"))
    return cell


def _naive_cell_loop(cell: nn.RNNCellBase, x: Tensor, is_lstm: bool) -> tuple[Tensor, ...]:
    """The loop a user writes by hand: one nn.*Cell call per step, outputs stacked."""
    h = x.new_zeros(x.shape[1], cell.hidden_size)
    c = h.clone()
    outputs = []
    for x_t in x:
        if is_lstm:
            h, c = cell(x_t, (h, c))
        else:
            h = cell(x_t, h)
        outputs.append(h)
    finals = (h.unsqueeze(0), c.unsqueeze(0)) if is_lstm else (h.unsqueeze(0),)
    return (torch.stack(outputs), *finals)


def _layer_contenders(config: BenchConfig, x: Tensor) -> list[Contender]:
    layer_class, cell_class = _LAYERS[config.cell]
    size = (config.input_size, config.hidden_size)
    reference = layer_class(*size, dtype=x.dtype, backend="reference")
    native = layer_class(*size, dtype=x.dtype, backend="native")
    native.load_state_dict(reference.state_dict())
    cell = _cell_copy(reference, cell_class)
    is_lstm = config.cell == "lstm"
    return [
        Contender("reference", lambda: _flatten(reference(x)), list(reference.parameters())),
        Contender("native", lambda: _flatten(native(x)), list(native.parameters())),
        Contender("naive", lambda: _naive_cell_loop(cell, x, is_lstm), list(cell.parameters())),
    ]


def _naive_jordan_loop(weights: dict[str, Tensor], x: Tensor) -> tuple[Tensor, ...]:
    """Jordan network by hand: h = tanh(x W_x^T + y W_r^T + b), y = tanh(h W_y^T + b_y)."""
    w_x, w_r, b = weights["weight_ih_l0"], weights["weight_yh_l0"], weights["bias_h_l0"]
    w_y, b_y = weights["weight_hy_l0"], weights["bias_y_l0"]
    y = x.new_zeros(x.shape[1], w_y.shape[0])
    outputs = []
    for x_t in x:
        h = torch.tanh(F.linear(x_t, w_x, b) + F.linear(y, w_r))
        y = torch.tanh(F.linear(h, w_y, b_y))
        outputs.append(y)
    return torch.stack(outputs), y.unsqueeze(0)


def _jordan_contenders(config: BenchConfig, x: Tensor) -> list[Contender]:
    sizes = (config.input_size, config.hidden_size, config.output_size)
    reference = JordanRNN(*sizes, dtype=x.dtype, backend="reference")
    weights = {
        name: p.detach().clone().requires_grad_() for name, p in reference.named_parameters()
    }
    return [
        Contender("reference", lambda: _flatten(reference(x)), list(reference.parameters())),
        Contender("naive", lambda: _naive_jordan_loop(weights, x), list(weights.values())),
    ]


def build_contenders(config: BenchConfig, seed: int = 0) -> tuple[list[Contender], Tensor]:
    """The contenders for `config`, identical weights, and their shared input (T, B, I)."""
    torch.manual_seed(seed)
    dtype = getattr(torch, config.dtype)
    x = torch.randn(config.steps, config.batch, config.input_size, dtype=dtype)
    builder = _jordan_contenders if config.cell == "jordan" else _layer_contenders
    return builder(config, x), x.requires_grad_()


# --------------------------------------------------------------------------- one run


def _fixed_grads(outputs: Sequence[Tensor], seed: int) -> tuple[Tensor, ...]:
    """Random dL/d(output), dL/d(final states): the projection the train step backpropagates."""
    generator = torch.Generator().manual_seed(seed + 1)
    return tuple(
        torch.randn(o.shape, generator=generator, dtype=o.dtype, device=o.device) for o in outputs
    )


def _runner(suite: str, grads: tuple[Tensor, ...]) -> Callable[[Contender], None]:
    """The function timed for one contender in `suite`."""
    if suite == "forward":

        def run(contender: Contender) -> None:
            with torch.no_grad():
                contender.forward()

    else:

        def run(contender: Contender) -> None:
            torch.autograd.backward(contender.forward(), grads)

    return run


def _relative_difference(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    """max |a - b| / max(1, max |b|) over paired tensors."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        scale = max(1.0, y.abs().max().item())
        worst = max(worst, (x - y).abs().max().item() / scale)
    return worst


def _outputs_and_grads(contender: Contender, x: Tensor, grads) -> list[Tensor]:
    contender.zero_grad()
    x.grad = None
    outputs = contender.forward()
    torch.autograd.backward(outputs, grads)
    return [o.detach() for o in outputs] + [x.grad] + [p.grad for p in contender.parameters]


def check_agreement(contenders: list[Contender], x: Tensor, grads) -> dict[str, float]:
    """Each contender's largest relative difference from the reference (outputs, final states,
    input gradient and weight gradients)."""
    expected = _outputs_and_grads(contenders[0], x, grads)
    return {
        c.name: _relative_difference(_outputs_and_grads(c, x, grads), expected)
        for c in contenders[1:]
    }


@dataclass(frozen=True)
class Timing:
    """Wall-clock samples of one contender, in ms, in the order of the rounds."""

    samples_ms: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def quartiles(self) -> tuple[float, float]:
        return _quartiles(self.samples_ms)

    def to_dict(self) -> dict:
        q1, q3 = self.quartiles
        return {
            "median_ms": self.median,
            "q1_ms": q1,
            "q3_ms": q3,
            "min_ms": min(self.samples_ms),
            "max_ms": max(self.samples_ms),
            "samples_ms": list(self.samples_ms),
        }


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def time_interleaved(
    contenders: list[Contender],
    run: Callable[[Contender], None],
    x: Tensor,
    repeats: int,
    warmup: int,
) -> dict[str, Timing]:
    """Warm every contender up, then `repeats` rounds of one run each, in rotating order.

    Gradients are reset outside the timed region; the garbage collector is off inside it.
    """
    for _ in range(warmup):
        for contender in contenders:
            contender.zero_grad()
            x.grad = None
            run(contender)
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    gc.collect()
    gc.disable()
    try:
        for round_ in range(repeats):
            shift = round_ % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                contender.zero_grad()
                x.grad = None
                start = time.perf_counter_ns()
                run(contender)
                samples[contender.name].append((time.perf_counter_ns() - start) / 1e6)
    finally:
        gc.enable()
    return {name: Timing(tuple(values)) for name, values in samples.items()}


@dataclass
class BenchResult:
    """One configuration's timings, speedups and agreement check."""

    config: BenchConfig
    suite: str
    timings: dict[str, Timing]
    max_relative_difference: dict[str, float] = field(default_factory=dict)
    others_cpu_share: float | None = None  # CPU share other processes used while timing

    @property
    def busy(self) -> bool:
        return self.others_cpu_share is not None and self.others_cpu_share > BUSY_SHARE

    def speedup(self, other: str) -> tuple[float, float, float] | None:
        """rnnkit reference vs `other`: median and quartiles of the per-round ratios
        time_other / time_reference (above 1: the reference engine is faster)."""
        if other not in self.timings:
            return None
        ratios = [
            o / r
            for o, r in zip(
                self.timings[other].samples_ms, self.timings["reference"].samples_ms, strict=True
            )
        ]
        return (statistics.median(ratios), *_quartiles(ratios))

    @property
    def agrees(self) -> bool:
        return all(d <= AGREEMENT_TOLERANCE for d in self.max_relative_difference.values())

    def to_dict(self) -> dict:
        speedups = {}
        for other in ("native", "naive"):
            ratio = self.speedup(other)
            if ratio is not None:
                speedups[f"vs_{other}"] = dict(zip(("median", "q1", "q3"), ratio, strict=True))
        return {
            "config": {**asdict(self.config), "label": self.config.label},
            "suite": self.suite,
            "timings": {name: t.to_dict() for name, t in self.timings.items()},
            "speedup": speedups,
            "max_relative_difference": self.max_relative_difference,
            "others_cpu_share": self.others_cpu_share,
            "agrees": self.agrees,
        }


def benchmark(
    config: BenchConfig,
    suite: str = "train-step",
    repeats: int = DEFAULT_REPEATS,
    warmup: int = DEFAULT_WARMUP,
    seed: int = 0,
) -> BenchResult:
    """Check that the contenders agree, then time them for one configuration."""
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {', '.join(SUITES)}; got {suite!r}")
    contenders, x = build_contenders(config, seed)
    with torch.no_grad():
        grads = _fixed_grads(contenders[0].forward(), seed)
    differences = check_agreement(contenders, x, grads)
    before = _cpu_ticks()
    timings = time_interleaved(contenders, _runner(suite, grads), x, repeats, warmup)
    return BenchResult(config, suite, timings, differences, _others_share(before, _cpu_ticks()))


def _cpu_ticks() -> tuple[int, int, int] | None:
    """(busy ticks of all CPUs, ticks of all CPUs, ticks of this process) from /proc, or None
    off Linux. Two readings tell how much CPU other processes took in between."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        with open("/proc/self/stat", encoding="ascii") as own:
            after_name = own.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total, int(after_name[11]) + int(after_name[12])  # utime + stime


def _others_share(before, after) -> float | None:
    """Share of all CPUs' time that other processes used between two `_cpu_ticks()`."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    busy, total, own = (a - b for a, b in zip(after, before, strict=True))
    return max(0.0, (busy - own) / total)


# --------------------------------------------------------------------------- reporting


@dataclass(frozen=True)
class Machine:
    """Where the figures come from."""

    cpu: str
    logical_cpus: int
    usable_cpus: int
    torch_version: str
    torch_threads: int
    blas: str
    python: str
    platform: str
    rnnkit_version: str
    source: str  # git commit of the rnnkit checkout, "+modified" when src/ has local changes
    date: str
    load_average: float | None  # 1-minute load before the run: other work skews the figures

    @classmethod
    def collect(cls) -> Machine:
        usable = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
        return cls(
            cpu=_cpu_model(),
            logical_cpus=os.cpu_count() or 0,
            usable_cpus=usable or 0,
            torch_version=torch.__version__,
            torch_threads=torch.get_num_threads(),
            blas=_math_libraries(),
            python=platform.python_version(),
            platform=platform.platform(),
            rnnkit_version=__version__,
            source=_source_revision(),
            date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        )

    def lines(self) -> list[str]:
        return [
            f"machine : {self.cpu}, {self.logical_cpus} logical CPUs "
            f"({self.usable_cpus} usable), {self.platform}",
            f"software: torch {self.torch_version} ({self.torch_threads} threads; {self.blas}), "
            f"Python {self.python}, rnnkit {self.rnnkit_version} ({self.source})",
            f"date    : {self.date}, load average {self.load_average:.2f} before the run"
            if self.load_average is not None
            else f"date    : {self.date}",
        ]


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _source_revision() -> str:
    """The git commit rnnkit runs from, marked when its sources differ; figures of an engine
    under work are only comparable with the code they measured."""
    package = Path(__file__).resolve().parent

    def git(*command: str) -> str:
        return subprocess.run(
            ["git", "-C", str(package), *command],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        modified = git("status", "--porcelain", "--", str(package))
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"git {commit}" + ("+modified" if modified else "")


def _math_libraries() -> str:
    found = [
        name
        for name, available in (
            ("MKL", torch.backends.mkl.is_available()),
            ("oneDNN", torch.backends.mkldnn.is_available()),
        )
        if available
    ]
    return ", ".join(found) or "no MKL/oneDNN"


def _cell_ms(timing: Timing | None) -> str:
    if timing is None:
        return "n/a"
    q1, q3 = timing.quartiles
    return f"{timing.median:.2f} [{q1:.2f}-{q3:.2f}]"


def _cell_ratio(ratio: tuple[float, float, float] | None) -> str:
    if ratio is None:
        return "n/a"
    median, q1, q3 = ratio
    return f"{median:.2f}x [{q1:.2f}-{q3:.2f}]"


TABLE_HEADER = (
    "configuration",
    "reference ms",
    "native ms",
    "naive loop ms",
    "speedup vs native",
    "speedup vs naive",
)


def table_rows(results: Sequence[BenchResult]) -> list[tuple[str, ...]]:
    """One row per result: median [q1-q3] times and speedups of the reference engine."""
    rows = []
    for result in results:
        label = result.config.label + ("" if result.agrees else " (!)")
        label += " (busy)" if result.busy else ""
        rows.append(
            (
                label,
                *(_cell_ms(result.timings.get(name)) for name in CONTENDERS),
                _cell_ratio(result.speedup("native")),
                _cell_ratio(result.speedup("naive")),
            )
        )
    return rows


def format_table(results: Sequence[BenchResult]) -> str:
    """A markdown pipe table with padded columns: readable in a terminal and in a document."""
    rows = [TABLE_HEADER, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]])
    return "\n".join([line(rows[0]), rule + "|", *(line(r) for r in rows[1:])])


def _notes(results: Sequence[BenchResult]) -> list[str]:
    notes = [
        "Times: median [q1-q3] over the repeats, in ms per call. Speedup: per-round "
        "time_other / time_reference, median [q1-q3]; above 1x the reference engine is faster.",
        "naive loop: nn.LSTMCell / nn.RNNCell / nn.GRUCell called per step with autograd; for "
        "Jordan a hand-written autograd loop (torch has no Jordan kernel, hence no native column).",
    ]
    if any(r.busy for r in results):
        notes.append(
            f"(busy): other processes used more than {BUSY_SHARE:.0%} of the CPUs while this "
            "row was timed; its figures are unreliable, run again on a quiet machine."
        )
    if not all(r.agrees for r in results):
        notes.append(
            f"(!): some contender differs from the reference by more than "
            f"{AGREEMENT_TOLERANCE:g} (relative); see max_relative_difference in the JSON."
        )
    return notes


def header_lines(machine: Machine, settings: dict, configs: Sequence[BenchConfig]) -> list[str]:
    """Machine, settings and sizes: what a reader needs to reproduce or discount a figure."""
    return [
        f"rnnkit bench: suite {settings['suite']} ({SUITES[settings['suite']]})",
        *machine.lines(),
        f"timing  : {settings['repeats']} interleaved rounds after {settings['warmup']} warm-up "
        f"run(s) per contender, seed {settings['seed']}",
        f"sizes   : {'; '.join(c.label for c in configs)} "
        f"({', '.join(sorted({c.dtype for c in configs}))}, 1 layer, unidirectional)",
    ]


def markdown_report(machine: Machine, settings: dict, results: Sequence[BenchResult]) -> str:
    """The header as a list, the table and its notes: a self-contained markdown fragment."""
    header = header_lines(machine, settings, [r.config for r in results])
    bullets = [f"- {' '.join(line.split())}" for line in header]
    return "\n\n".join(["\n".join(bullets), format_table(results), *_notes(results)]) + "\n"


def results_json(machine: Machine, settings: dict, results: Sequence[BenchResult]) -> dict:
    return {
        "schema": "rnnkit-bench/1",
        "machine": asdict(machine),
        "settings": settings,
        "results": [r.to_dict() for r in results],
    }


def _check_writable(path: str) -> None:
    """Fail before timing, not after, when an output file cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write {path}: {parent} is not writable")


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- command line


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}; got {text!r}")
        return value

    return parse


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph texts (the description) and keeps multi-line ones (the epilog)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _epilog() -> str:
    def sizes(configs: Sequence[BenchConfig]) -> str:
        return "".join(f"    {c.label}\n" for c in configs)

    return (
        "contenders (identical weights, same input, interleaved):\n"
        "  reference  rnnkit layer, backend='reference' (rnnkit's engine)\n"
        "  native     same layer, backend='native' (torch.nn's fused kernel)\n"
        "  naive      Python loop over nn.LSTMCell/nn.GRUCell/nn.RNNCell with autograd\n"
        "             (Jordan: a hand-written autograd loop; torch has no native Jordan)\n"
        "\n"
        "sizes (float32, 1 layer, unidirectional; B batch, T steps, I input, H hidden, O output):\n"
        f"  default:\n{sizes(FULL_CONFIGS)}"
        f"  --quick:\n{sizes(QUICK_CONFIGS)}"
        "\n"
        "output: median [q1-q3] ms per call; speedup = time_other / time_reference per round,\n"
        "median [q1-q3]; above 1x rnnkit's reference engine is faster.\n"
        "\n"
        "example:\n"
        "  rnnkit bench --json benchmarks/results/$(date +%F).json \\\n"
        "               --markdown benchmarks/results/$(date +%F).md\n"
    )


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rnnkit bench`."""
    parser.formatter_class = _HelpFormatter
    parser.epilog = _epilog()
    parser.add_argument(
        "--suite",
        choices=tuple(SUITES),
        default="train-step",
        help="what to time: 'train-step' = forward + backward of a fixed random projection "
        "of the outputs and final states; 'forward' = forward under no_grad "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes, {QUICK_REPEATS} repeats and {QUICK_WARMUP} warm-up run: a smoke "
        "test for CI that finishes in seconds; its figures mean little",
    )
    parser.add_argument(
        "--repeats",
        type=_int_at_least(1),
        metavar="N",
        help=f"timed rounds per configuration (default: {DEFAULT_REPEATS}, "
        f"or {QUICK_REPEATS} with --quick)",
    )
    parser.add_argument(
        "--warmup",
        type=_int_at_least(0),
        metavar="N",
        help=f"untimed runs per contender before timing (default: {DEFAULT_WARMUP}, "
        f"or {QUICK_WARMUP} with --quick)",
    )
    parser.add_argument(
        "--threads",
        type=_int_at_least(1),
        metavar="N",
        help="torch.set_num_threads(N) before timing (default: leave torch's default, "
        f"{torch.get_num_threads()} here)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed for weights, input and gradients (default: 0)",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write all results, with raw samples, as JSON"
    )
    parser.add_argument(
        "--markdown",
        metavar="PATH",
        help="also write the header and table as a markdown fragment",
    )


def run_bench(args: argparse.Namespace) -> int:
    """Run the suite the parsed `args` ask for; print the table; write the files asked for."""
    for path in (args.json, args.markdown):
        if path:
            _check_writable(path)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    configs = QUICK_CONFIGS if args.quick else FULL_CONFIGS
    settings = {
        "suite": args.suite,
        "quick": args.quick,
        "repeats": args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS),
        "warmup": args.warmup
        if args.warmup is not None
        else (QUICK_WARMUP if args.quick else DEFAULT_WARMUP),
        "seed": args.seed,
        "threads": torch.get_num_threads(),
    }
    machine = Machine.collect()
    print("\n".join(header_lines(machine, settings, configs)), end="\n\n", flush=True)

    results = []
    for config in configs:
        print(f"  timing {config.label} ...", file=sys.stderr, flush=True)
        results.append(
            benchmark(config, args.suite, settings["repeats"], settings["warmup"], args.seed)
        )
    print(format_table(results))
    print("\n" + "\n".join(_notes(results)))

    if args.json:
        _write(args.json, json.dumps(results_json(machine, settings, results), indent=2) + "\n")
    if args.markdown:
        _write(args.markdown, markdown_report(machine, settings, results))
    return 0
