"""Benchmarks of the streaming step and of fused generation, for `rnnkit bench`.

Both suites follow rnnkit.bench's method: every contender is built with identical weights,
checked to agree before timing, warmed up, then timed in `repeats` rounds in which each runs once,
interleaved in a rotating order so that a drift of the machine hits all alike. A sample is the
mean over a block of calls (one call is a few microseconds, too short to time alone); rows report
medians of the samples and the median of the per-round ratios.

    streaming_suite(quick)   batch-1 step latency, µs per step: rnnkit `layer.stream()` and
                             `layer.step()` vs torch.nn's layer called the same way (one step, T=1,
                             with the state) and vs a loop over nn.*Cell (one cell per layer)
    generation_suite(quick)  characters per second of a character language model: the fused
                             decoder vs an eager nn.LSTM sampling loop and vs rnnkit's eager path
    compile_costs()          the kernels' first-call cost in a fresh process with an empty numba
                             cache, and in a second process that loads them from that cache

Every row is a flat dict: configuration, times, ratios, the issue's target and whether it is met.
torch runs on one thread while the suites time (its fastest setting for batch-1 work, and immune
to a busy second core), and so does the BLAS numba calls (scipy's OpenBLAS, through threadpoolctl
when it is installed): a single-core latency comparison. On a loaded machine a second OpenBLAS
thread waiting for a core turned single calls into milliseconds. The rows record both settings;
the previous ones are restored afterwards.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["compile_costs", "generation_suite", "streaming_suite"]

STREAM_TARGET_SPEEDUP, STREAM_TARGET_US = 5.0, 25.0
GENERATION_TARGET_SPEEDUP = 5.0


def _time_rounds(
    contenders: dict[str, Callable[[], None]], calls: int, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Per contender, `repeats` samples of the mean seconds per call over blocks of `calls`."""
    for _ in range(warmup):
        for run in contenders.values():
            for _ in range(calls):
                run()
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc.disable()
    try:
        for round_ in range(repeats):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                run = contenders[name]
                start = time.perf_counter()
                for _ in range(calls):
                    run()
                samples[name].append((time.perf_counter() - start) / calls)
    finally:
        gc.enable()
    return samples


@contextmanager
def _single_threaded() -> Iterator[dict]:
    """torch and (when threadpoolctl is there) the BLAS on one thread; yields the row fields
    that record it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = None
    else:
        limits = threadpool_limits(limits=1, user_api="blas")
    try:
        yield {"torch_threads": 1, "blas_threads": 1 if limits is not None else "default"}
    finally:
        if limits is not None:
            limits.restore_original_limits()
        torch.set_num_threads(before)


def _busy_fields(before) -> dict:
    """others_cpu_share (share of all CPUs other processes used since `before`) and busy, with
    rnnkit.bench's threshold, so a row timed on a loaded machine is flagged."""
    from ..bench.timing import BUSY_SHARE, cpu_ticks, others_share

    share = others_share(before, cpu_ticks())
    return {"others_cpu_share": share, "busy": share is not None and share > BUSY_SHARE}


def _ticks():
    from ..bench.timing import cpu_ticks

    return cpu_ticks()


def _median_ratio(slow: list[float], fast: list[float]) -> float:
    return statistics.median(s / f for s, f in zip(slow, fast, strict=True))


# --------------------------------------------------------------------------- streaming

_TORCH = {"lstm": (nn.LSTM, nn.LSTMCell), "gru": (nn.GRU, nn.GRUCell), "rnn": (nn.RNN, nn.RNNCell)}


def _stream_contenders(cell: str, hidden: int, layers: int, dtype) -> tuple[dict, float]:
    """The four contenders for one configuration (input size = hidden size) and the largest
    difference between rnnkit's stream and torch.nn over a few steps."""
    import rnnkit

    torch.manual_seed(0)
    ours_class = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}[cell]
    layer_class, cell_class = _TORCH[cell]
    native = layer_class(hidden, hidden, layers, dtype=dtype).eval()
    ours = ours_class(hidden, hidden, layers, dtype=dtype).eval()
    ours.load_state_dict(native.state_dict())
    cells = []
    for k in range(layers):
        c = cell_class(hidden, hidden, dtype=dtype)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(c, name).data.copy_(getattr(native, f"{name}_l{k}"))
        cells.append(c)
    lstm = cell == "lstm"
    x = torch.randn(1, hidden, dtype=dtype)
    zeros = torch.zeros(layers, 1, hidden, dtype=dtype)
    box = {"native": (zeros, zeros.clone()) if lstm else zeros, "step": None}
    cell_state = [(zeros[k], zeros[k].clone()) if lstm else zeros[k] for k in range(layers)]
    stream = ours.stream(batch_size=1)

    def run_stream() -> None:
        stream(x)

    def run_step() -> None:
        box["step"] = ours.step(x, box["step"])[1]

    def run_native() -> None:
        box["native"] = native(x.unsqueeze(0), box["native"])[1]

    def run_cells() -> None:
        inp = x
        for k, c in enumerate(cells):
            cell_state[k] = c(inp, cell_state[k])
            inp = cell_state[k][0] if lstm else cell_state[k]

    with torch.no_grad():  # agreement over a few steps from zeros
        check_stream = ours.stream(batch_size=1)
        state = None
        for _ in range(5):
            y_ours = check_stream(x)
            out, state = native(x.unsqueeze(0), state)
        difference = (y_ours - out[0]).abs().max().item()
    contenders = {
        "stream": run_stream,
        "step": run_step,
        "native": run_native,
        "cell_loop": run_cells,
    }
    return contenders, difference


STREAM_CONFIGS = [(c, h, n) for c in ("lstm", "gru", "rnn") for h in (128, 256) for n in (1, 2)]
QUICK_STREAM_CONFIGS = [("lstm", 128, 1), ("lstm", 256, 2), ("gru", 128, 1), ("rnn", 128, 1)]


def streaming_suite(quick: bool = False) -> list[dict]:
    """Batch-1 step latency (float32, input size = hidden size), one row per configuration."""
    configs = QUICK_STREAM_CONFIGS if quick else STREAM_CONFIGS
    repeats, calls, warmup = (7, 100, 1) if quick else (21, 200, 2)
    rows = []
    with torch.no_grad(), _single_threaded() as threads:
        for cell, hidden, layers in configs:
            contenders, difference = _stream_contenders(cell, hidden, layers, torch.float32)
            before = _ticks()
            samples = _time_rounds(contenders, calls, repeats, warmup)
            busy = _busy_fields(before)
            us = {name: statistics.median(s) * 1e6 for name, s in samples.items()}
            vs_native = _median_ratio(samples["native"], samples["stream"])
            targeted = cell == "lstm" and hidden == 128 and layers == 1
            rows.append(
                {
                    "suite": "streaming",
                    "cell": cell,
                    "hidden_size": hidden,
                    "input_size": hidden,
                    "num_layers": layers,
                    "batch": 1,
                    "dtype": "float32",
                    **threads,
                    "stream_us": us["stream"],
                    "step_us": us["step"],
                    "native_us": us["native"],
                    "cell_loop_us": us["cell_loop"],
                    "stream_vs_native": vs_native,
                    "stream_vs_cell_loop": _median_ratio(samples["cell_loop"], samples["stream"]),
                    "step_vs_native": _median_ratio(samples["native"], samples["step"]),
                    "max_abs_difference": difference,
                    "repeats": repeats,
                    "calls_per_sample": calls,
                    **busy,
                    "target": (
                        f"stream >= {STREAM_TARGET_SPEEDUP:g}x nn.LSTM and <= "
                        f"{STREAM_TARGET_US:g} us"
                        if targeted
                        else None
                    ),
                    "target_met": (
                        vs_native >= STREAM_TARGET_SPEEDUP and us["stream"] <= STREAM_TARGET_US
                        if targeted
                        else None
                    ),
                }
            )
    return rows


# --------------------------------------------------------------------------- generation


def _char_model(vocab_size: int, hidden: int, layers: int, embedding_dim: int):
    from ..models.language_model import LanguageModel, LanguageModelConfig

    torch.manual_seed(0)
    config = LanguageModelConfig(
        vocab_size=vocab_size,
        cell="lstm",
        embedding_dim=embedding_dim,
        hidden_size=hidden,
        num_layers=layers,
    )
    return LanguageModel(config).eval()


def _eager_nn_lstm_loop(model, lstm, start: list[int], length: int, generator) -> list[int]:
    """The sampling loop a user writes with torch.nn: embedding -> nn.LSTM -> linear -> softmax
    -> multinomial, one token per step, carrying (h, c)."""
    ids = torch.tensor([start])
    out, state = lstm(model.embedding(ids), None)
    logits = model.head(out[:, -1])
    tokens = []
    for _ in range(length):
        token = torch.multinomial(logits.softmax(-1), 1, generator=generator)  # (1, 1)
        tokens.append(int(token))
        out, state = lstm(model.embedding(token), state)
        logits = model.head(out[:, -1])
    return tokens


GENERATION_MODEL = (65, 256, 2, 64)  # vocabulary, hidden size, layers, embedding width
QUICK_GENERATION_TOKENS = 200


def generation_suite(quick: bool = False) -> list[dict]:
    """Characters per second of a 2-layer, 256-unit character LSTM (random weights, V = 65,
    embedding 64, float32), sampling at temperature 1 and greedy."""
    from ..generate import _decode_step_by_step
    from .generation import fused_decode

    V, H, L, E = GENERATION_MODEL
    model = _char_model(V, H, L, E)
    lstm = nn.LSTM(E, H, L, batch_first=True).eval()
    lstm.load_state_dict(model.layers.state_dict())
    length = QUICK_GENERATION_TOKENS if quick else 1000
    repeats = 3 if quick else 7
    start = [1, 2, 3, 4]
    generator = torch.Generator().manual_seed(0)
    rows = []
    with torch.no_grad(), _single_threaded() as threads:
        greedy_fused = fused_decode(model, start, 50, greedy=True)
        greedy_eager = _decode_step_by_step(
            model,
            start,
            50,
            banned=[],
            eos_id=None,
            greedy=True,
            temperature=1.0,
            top_k=None,
            top_p=None,
            seed=None,
        )
        agrees = greedy_fused == greedy_eager
        for mode in ("sample", "greedy"):
            greedy = mode == "greedy"
            contenders = {
                "fused": lambda g=greedy: fused_decode(model, start, length, greedy=g, seed=1),
                "eager_nn_lstm": lambda: _eager_nn_lstm_loop(model, lstm, start, length, generator),
                "rnnkit_eager": lambda g=greedy: _decode_step_by_step(
                    model,
                    start,
                    length,
                    banned=[],
                    eos_id=None,
                    greedy=g,
                    temperature=1.0,
                    top_k=None,
                    top_p=None,
                    seed=1,
                ),
            }
            if greedy:
                del contenders["eager_nn_lstm"]  # the hand-written loop samples
            before = _ticks()
            samples = _time_rounds(contenders, 1, repeats, 1)
            busy = _busy_fields(before)
            rate = {name: length / statistics.median(s) for name, s in samples.items()}
            row = {
                "suite": "generation",
                "model": f"char LSTM {L}x{H}, V {V}, embedding {E}",
                "mode": mode,
                "dtype": "float32",
                "tokens": length,
                **threads,
                "fused_chars_per_s": rate["fused"],
                "rnnkit_eager_chars_per_s": rate["rnnkit_eager"],
                "fused_vs_rnnkit_eager": _median_ratio(samples["rnnkit_eager"], samples["fused"]),
                "greedy_fused_equals_eager": agrees,
                "repeats": repeats,
                **busy,
            }
            if not greedy:
                speedup = _median_ratio(samples["eager_nn_lstm"], samples["fused"])
                row.update(
                    eager_nn_lstm_chars_per_s=rate["eager_nn_lstm"],
                    fused_vs_eager_nn_lstm=speedup,
                    target=f"fused >= {GENERATION_TARGET_SPEEDUP:g}x the eager nn.LSTM loop",
                    target_met=speedup >= GENERATION_TARGET_SPEEDUP,
                )
            else:
                row.update(target=None, target_met=None)
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- compile cost

_FIRST_CALL = """
import time, torch
t0 = time.perf_counter()
import rnnkit
from rnnkit.stream.generation import fused_decode
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
t1 = time.perf_counter()
layer = rnnkit.LSTM(8, 8).eval()
with torch.no_grad():
    layer.step(torch.zeros(1, 8))
t2 = time.perf_counter()
model = LanguageModel(LanguageModelConfig(vocab_size=10, hidden_size=8)).eval()
with torch.no_grad():
    fused_decode(model, [1], 5, seed=0)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def compile_costs() -> list[dict]:
    """First float32 step and first fused generation, in a process with an empty numba cache
    (compiles) and in a second process reading that cache (loads), in seconds."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for process in ("first (empty cache: compiles)", "second (loads the cache)"):
            result = subprocess.run(
                [sys.executable, "-c", _FIRST_CALL],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            imports, step, generation = (float(v) for v in result.stdout.split())
            rows.append(
                {
                    "suite": "compile-cost",
                    "process": process,
                    "import_s": imports,
                    "first_step_s": step,
                    "first_generation_s": generation,
                    "target": None,
                    "target_met": None,
                }
            )
    return rows
