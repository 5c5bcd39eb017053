"""Suites "streaming" and "generation" of `rnnkit bench`.

Both timed suites follow rnnkit.bench's method: every contender is built with identical weights,
checked to agree before timing, warmed up, then timed in `repeats` rounds in which each runs
once, interleaved in a rotating order so that a drift of the machine hits all alike. A sample
is the mean over a block of calls (one call is some microseconds, too short to time alone); rows
report medians of the samples and the median of the per-round ratios.

    streaming_suite(quick)   batch-1 step latency, µs per step: rnnkit's drop-in layer call
                             `layer(x_t.unsqueeze(0), state)`, `layer.stream()` and
                             `layer.step()` vs torch.nn's layer called the same way (one step,
                             T=1, with the state) and vs a loop over nn.*Cell (one per layer)
    generation_suite(quick)  characters per second of a character language model: the fused
                             decoder vs an eager nn.LSTM sampling loop and vs rnnkit's eager path

Every row is a flat dict: configuration, times, ratios, the issue's target and whether it is met.
The suites run with torch's thread setting as it is (the compiled kernels' BLAS calls and row
loops share torch's threads, so every contender gets the same); the row records it.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["EXTERNAL_SUITES", "generation_suite", "run_external", "streaming_suite"]

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
    """The thread setting the rows record (torch's, as it is: every contender shares it)."""
    yield {"torch_threads": torch.get_num_threads()}


def _busy_fields(before) -> dict:
    """others_cpu_share (share of all CPUs other processes used since `before`) and busy, with
    rnnkit.bench's threshold, so a row timed on a loaded machine is flagged."""
    from .timing import BUSY_SHARE, cpu_ticks, others_share

    share = others_share(before, cpu_ticks())
    return {"others_cpu_share": share, "busy": share is not None and share > BUSY_SHARE}


def _ticks():
    from .timing import cpu_ticks

    return cpu_ticks()


def _median_ratio(slow: list[float], fast: list[float]) -> float:
    return statistics.median(s / f for s, f in zip(slow, fast, strict=True))


# --------------------------------------------------------------------------- streaming

_TORCH = {"lstm": (nn.LSTM, nn.LSTMCell), "gru": (nn.GRU, nn.GRUCell), "rnn": (nn.RNN, nn.RNNCell)}


def _stream_contenders(
    cell: str, inputs: int, hidden: int, layers: int, dtype
) -> tuple[dict, float]:
    """The five contenders for one configuration and the largest difference between rnnkit's
    stream and torch.nn over a few steps."""
    import rnnkit

    torch.manual_seed(0)
    ours_class = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}[cell]
    layer_class, cell_class = _TORCH[cell]
    native = layer_class(inputs, hidden, layers, dtype=dtype).eval()
    ours = ours_class(inputs, hidden, layers, dtype=dtype).eval()
    ours.load_state_dict(native.state_dict())
    cells = []
    for k in range(layers):
        c = cell_class(inputs if k == 0 else hidden, hidden, dtype=dtype)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(c, name).data.copy_(getattr(native, f"{name}_l{k}"))
        cells.append(c)
    lstm = cell == "lstm"
    x = torch.randn(1, inputs, dtype=dtype)
    x_seq = x.unsqueeze(0)  # (T=1, B=1, I)
    zeros = torch.zeros(layers, 1, hidden, dtype=dtype)
    box = {
        "native": (zeros, zeros.clone()) if lstm else zeros,
        "call": (zeros, zeros.clone()) if lstm else zeros,
        "step": None,
    }
    cell_state = [(zeros[k], zeros[k].clone()) if lstm else zeros[k] for k in range(layers)]
    stream = ours.stream(batch_size=1)

    def run_stream() -> None:
        stream(x)

    def run_step() -> None:
        box["step"] = ours.step(x, box["step"])[1]

    def run_native() -> None:
        box["native"] = native(x_seq, box["native"])[1]

    def run_call() -> None:
        box["call"] = ours(x_seq, box["call"])[1]

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
        "call": run_call,
        "stream": run_stream,
        "step": run_step,
        "native": run_native,
        "cell_loop": run_cells,
    }
    return contenders, difference


# (cell, input size, hidden size, layers); the targets: LSTM I32 H128 1 layer (<= 25 us and
# >= 5x nn.LSTM) and LSTM H256 2 layers (<= 60 us), both for the drop-in layer call
STREAM_CONFIGS = [
    ("lstm", 32, 128, 1),
    ("lstm", 32, 256, 2),
    *((c, h, h, n) for c in ("lstm", "gru", "rnn") for h in (128, 256) for n in (1, 2)),
]
QUICK_STREAM_CONFIGS = [("lstm", 32, 128, 1), ("lstm", 32, 256, 2), ("gru", 128, 128, 1)]
STREAM_TARGETS = {("lstm", 32, 128, 1): (STREAM_TARGET_US, STREAM_TARGET_SPEEDUP)}
STREAM_TARGETS[("lstm", 32, 256, 2)] = (60.0, None)


def streaming_suite(quick: bool = False) -> list[dict]:
    """Batch-1 step latency (float32, input size = hidden size), one row per configuration."""
    configs = QUICK_STREAM_CONFIGS if quick else STREAM_CONFIGS
    repeats, calls, warmup = (7, 100, 1) if quick else (21, 200, 2)
    rows = []
    with torch.no_grad(), _single_threaded() as threads:
        for cell, inputs, hidden, layers in configs:
            contenders, difference = _stream_contenders(cell, inputs, hidden, layers, torch.float32)
            before = _ticks()
            samples = _time_rounds(contenders, calls, repeats, warmup)
            busy = _busy_fields(before)
            us = {name: statistics.median(s) * 1e6 for name, s in samples.items()}
            vs_native = _median_ratio(samples["native"], samples["call"])
            goal = STREAM_TARGETS.get((cell, inputs, hidden, layers))
            target = met = None
            if goal is not None:
                most_us, speedup = goal
                target = f"call <= {most_us:g} us" + (
                    f" and >= {speedup:g}x nn.LSTM" if speedup else ""
                )
                met = us["call"] <= most_us and (speedup is None or vs_native >= speedup)
            rows.append(
                {
                    "suite": "streaming",
                    "cell": cell,
                    "hidden_size": hidden,
                    "input_size": inputs,
                    "num_layers": layers,
                    "batch": 1,
                    "dtype": "float32",
                    **threads,
                    "call_us": us["call"],
                    "stream_us": us["stream"],
                    "step_us": us["step"],
                    "native_us": us["native"],
                    "cell_loop_us": us["cell_loop"],
                    "call_vs_native": vs_native,
                    "stream_vs_native": _median_ratio(samples["native"], samples["stream"]),
                    "call_vs_cell_loop": _median_ratio(samples["cell_loop"], samples["call"]),
                    "max_abs_difference": difference,
                    "repeats": repeats,
                    "calls_per_sample": calls,
                    **busy,
                    "target": target,
                    "target_met": met,
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
    from ..generate.fused import fused_decode

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


EXTERNAL_SUITES = {"streaming": streaming_suite, "generation": generation_suite}


def run_external(suite: str, *, quick: bool = False, progress=sys.stderr) -> tuple[list, str]:
    """(rows, note) of suite "streaming" or "generation"."""
    if progress is not None:
        print(f"  [{suite}] {EXTERNAL_SUITES[suite].__name__}(quick={quick})", file=progress)
    return EXTERNAL_SUITES[suite](quick), ""
