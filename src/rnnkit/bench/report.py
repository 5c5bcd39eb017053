"""The report of a run: markdown tables per suite, the summary of the engine's targets, JSON.

Targets (judged on this run's rows; thresholds live here, never in tests), suite train-step:
    LSTM: compiled vs torch.nn median over the sizes >= 1.0x, and no size below 0.9x
    GRU and RNN: compiled vs torch.nn >= 1.0x at every size, >= 1.5x at B8 T200 I32 H128
      (where torch's own loop is bound by per-step overhead)
    RNN, LSTM, GRU at B64 T100 I128 H512: compiled reaches >= 85% of the measured GEMM peak
    the cells torch lacks (Jordan, the layer-norm cells, IndRNN, MinGRU, ...): compiled vs the
      hand-written autograd loop >= 1.5x where the loop is not bound by its GEMMs (H < 256; at
      H >= 256 the GEMM time is the limit, reported beside) and >= 3x at B8 T200 I32 H128; IndRNN
      and MinGRU (no recurrent GEMM) >= 3x at every size; Jordan >= 3x at its small sizes
      (B x H <= 8192, where the loop is bound by per-step overhead)
    LayerNormLSTM / LayerNormGRU: training time <= 1.3x torch.nn.LSTM's / GRU's at the same
      size, where the GEMMs bind (H >= 256)
suite inference: compiled (and auto) never below torch.nn (RNN, LSTM, GRU)
suite scan: MinGRU scan mode >= 10x torch.nn.GRU at T = 1024
suites streaming, generation, compile-cost: the rows that carry `target` / `target_met`
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .contenders import CELLS, STANDARD_CELLS, TWINS
from .plan import BUDGET_MARK, PER_STEP_BOUND, SLOW_MARK, SLOW_STEP_S
from .timing import BUSY_SHARE

__all__ = ["Target", "judge_targets", "markdown_report", "results_json", "suite_table"]

SCHEMA = "rnnkit-bench/2"
LSTM_MEDIAN_GOAL, LSTM_FLOOR = 1.0, 0.9
UNFUSED_FLOOR, PER_STEP_GOAL = 1.0, 1.5  # GRU, RNN: every size; at the per-step-bound size
PEAK_GOAL, PEAK_SIZE = 85.0, (64, 100, 128, 512)
LOOP_FLOOR, LOOP_GOAL = 1.5, 3.0  # custom cells against the hand-written loop
ELEMENTWISE_CELLS = ("indrnn", "mingru")  # no recurrent GEMM: >= LOOP_GOAL at every size
# Jordan's "small sizes": where the hand-written loop is bound by per-step overhead, B x H of a
# step at most 8192 (B8 H128, B32 H256; not d2l's B1024 H32, whose steps are wide)
SMALL_STEP = 8192
TWIN_CEILING = 1.3  # layer-norm cells' time / torch's plain layer's, at H >= 256
GEMM_BOUND_HIDDEN = 256  # from this width the hand-written loop is bound by its GEMMs
INFERENCE_FLOOR = 1.0
SCAN_GOAL = 10.0


@dataclass(frozen=True)
class Target:
    target: str  # what is asked, in words
    goal: str  # the threshold
    measured: str  # what this run found
    met: bool | None  # None: not measured in this run
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _ok(rows: Sequence[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok"]


def _ratio(row: dict, key: str) -> float | None:
    value = row.get("ratios", {}).get(key)
    return None if value is None else value["median"]


def _label(row: dict) -> str:
    return row["config"]["label"]


def _busy_note(rows: Sequence[dict]) -> str:
    busy = sum(1 for r in rows if r.get("busy"))
    return f"{busy} of {len(rows)} rows busy: unreliable" if busy else ""


def _rows(values: Sequence) -> str:
    return f"{len(values)} configuration" + ("" if len(values) == 1 else "s")


def _short_by(value: float, goal: float) -> str:
    return "" if value >= goal else f"short by {100 * (goal - value) / goal:.0f}%"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _size(row: dict) -> tuple[int, int, int, int]:
    c = row["config"]
    return (c["batch"], c["steps"], c["input_size"], c["hidden_size"])


def _pairs(rows: list[dict], key: str) -> list[tuple[dict, float]]:
    return [(r, v) for r in rows if (v := _ratio(r, key)) is not None]


def _floor_target(name: str, what: str, pairs, floor: float, against: str) -> Target:
    worst_row, worst = min(pairs, key=lambda p: p[1])
    below = sum(1 for _, v in pairs if v < floor)
    return Target(
        f"{name}: {what}, every size ({_rows(pairs)})",
        f">= {floor:g}x everywhere",
        f"worst {worst:.2f}x ({_label(worst_row)}); {below} of {len(pairs)} below",
        worst >= floor,
        _join(_short_by(worst, floor), _busy_note([r for r, _ in pairs])),
    )


def _at_size(name: str, what: str, pairs, size, goal: float) -> Target | None:
    chosen = [(r, v) for r, v in pairs if _size(r) == size]
    if not chosen:
        return None
    row, value = chosen[0]
    return Target(
        f"{name}: {what} at {_label(row).split(' ', 1)[1]}",
        f">= {goal:g}x",
        f"{value:.2f}x",
        value >= goal,
        _join(_short_by(value, goal), _busy_note([row])),
    )


def _peak_target(name: str, rows: list[dict]) -> Target | None:
    chosen = [
        r for r in rows if _size(r) == PEAK_SIZE and "compiled" in r.get("percent_of_peak", {})
    ]
    if not chosen:
        return None
    row = chosen[0]
    share = row["percent_of_peak"]["compiled"]
    native = row["percent_of_peak"].get("native", float("nan"))
    return Target(
        f"{name}: compiled share of the GEMM peak at {_label(row).split(' ', 1)[1]}",
        f">= {PEAK_GOAL:.0f}%",
        f"{share:.0f}% (torch.nn {native:.0f}%)",
        share >= PEAK_GOAL,
        _join(_short_by(share, PEAK_GOAL), _busy_note([row])),
    )


def _torch_cell_targets(cell: str, rows: list[dict]) -> list[Target]:
    name = CELLS[cell].label
    pairs = _pairs(rows, "compiled_vs_native")
    if not pairs:
        return [Target(f"{name}: compiled vs torch.nn", "measured", "no row", None)]
    targets: list[Target | None] = []
    if cell == "lstm":
        median = statistics.median(v for _, v in pairs)
        targets.append(
            Target(
                f"{name}: compiled training step vs torch.nn, median over {_rows(pairs)}",
                f">= {LSTM_MEDIAN_GOAL:.1f}x",
                f"{median:.2f}x",
                median >= LSTM_MEDIAN_GOAL,
                _join(_short_by(median, LSTM_MEDIAN_GOAL), _busy_note([r for r, _ in pairs])),
            )
        )
        targets.append(_floor_target(name, "compiled vs torch.nn", pairs, LSTM_FLOOR, "native"))
    else:
        targets.append(_floor_target(name, "compiled vs torch.nn", pairs, UNFUSED_FLOOR, "native"))
        targets.append(_at_size(name, "compiled vs torch.nn", pairs, PER_STEP_BOUND, PER_STEP_GOAL))
    targets.append(_peak_target(name, rows))
    return [t for t in targets if t is not None]


def _loop_targets(cell: str, rows: list[dict]) -> list[Target]:
    name = CELLS[cell].label
    pairs = _pairs(rows, "compiled_vs_naive")
    if not pairs:
        reasons = {r.get("left_out", {}).get("compiled", "") for r in rows} - {""}
        why = sorted(reasons)[0] if reasons else "no row"
        return [Target(f"{name}: compiled vs the hand-written loop", "measured", why, None)]
    what = "compiled vs the hand-written autograd loop"
    if cell in ELEMENTWISE_CELLS:  # no recurrent GEMM: never GEMM-bound
        targets = [_floor_target(name, what, pairs, LOOP_GOAL, "naive")]
    else:  # where the loop is bound by its GEMMs the GEMM time is the limit (judged below)
        narrow = [(r, v) for r, v in pairs if _size(r)[3] < GEMM_BOUND_HIDDEN]
        wide = [v for r, v in pairs if _size(r)[3] >= GEMM_BOUND_HIDDEN]
        targets = (
            [_floor_target(name, f"{what}, H < {GEMM_BOUND_HIDDEN}", narrow, LOOP_FLOOR, "")]
            if narrow
            else []
        )
        if wide and targets:
            targets[0] = Target(
                targets[0].target,
                targets[0].goal,
                f"{targets[0].measured}; GEMM-bound H >= {GEMM_BOUND_HIDDEN}: "
                f"{min(wide):.2f}x-{max(wide):.2f}x",
                targets[0].met,
                targets[0].note,
            )
    targets.append(_at_size(name, what, pairs, PER_STEP_BOUND, LOOP_GOAL))
    if cell == "jordan":
        small = [(r, v) for r, v in pairs if _size(r)[0] * _size(r)[3] <= SMALL_STEP]
        if small:
            targets.append(
                _floor_target(name, f"{what}, B x H <= {SMALL_STEP}", small, LOOP_GOAL, "naive")
            )
    if cell in TWINS:
        twin = TWINS[cell].__name__
        wide = [
            (r, r["timings"]["compiled"]["median_ms"] / r["timings"]["twin"]["median_ms"])
            for r in rows
            if _size(r)[3] >= 256 and {"compiled", "twin"} <= set(r.get("timings", {}))
        ]
        if wide:
            worst_row, worst = max(wide, key=lambda p: p[1])
            targets.append(
                Target(
                    f"{name}: training time against torch.nn.{twin}'s at H >= 256 ({_rows(wide)})",
                    f"<= {TWIN_CEILING:g}x",
                    f"worst {worst:.2f}x ({_label(worst_row)})",
                    worst <= TWIN_CEILING,
                    _join(
                        ""
                        if worst <= TWIN_CEILING
                        else f"over by {100 * (worst / TWIN_CEILING - 1):.0f}%",
                        _busy_note([r for r, _ in wide]),
                    ),
                )
            )
    return [t for t in targets if t is not None]


def _inference_targets(rows: list[dict]) -> list[Target]:
    targets = []
    for cell in STANDARD_CELLS:
        mine = [r for r in _ok(rows) if r["config"]["cell"] == cell]
        for contender in ("compiled", "auto"):
            pairs = _pairs(mine, f"{contender}_vs_native")
            if pairs:
                targets.append(
                    _floor_target(
                        f"{CELLS[cell].label} inference",
                        f"{contender} vs torch.nn",
                        pairs,
                        INFERENCE_FLOOR,
                        "native",
                    )
                )
    return targets


def _scan_targets(rows: list[dict]) -> list[Target]:
    targets = []
    for row in _ok(rows):
        value = _ratio(row, "scan_vs_twin")
        if value is not None:
            targets.append(
                Target(
                    f"MinGRU scan mode vs torch.nn.GRU, training, {row['config']['label']}",
                    f">= {SCAN_GOAL:g}x",
                    f"{value:.2f}x (the step loop: {_ratio(row, 'compiled_vs_twin'):.2f}x)",
                    value >= SCAN_GOAL,
                    _join(_short_by(value, SCAN_GOAL), _busy_note([row])),
                )
            )
    return targets


def _external_label(row: dict) -> str:
    """A configuration name for a row of the streaming, generation or compile-cost suites."""
    if "process" in row:
        return str(row["process"])
    if "model" in row:
        return f"{row['model']}, {row.get('mode', '')}".rstrip(", ")
    parts = [str(row.get("cell", "")).upper()]
    if "num_layers" in row and "hidden_size" in row:
        parts.append(f"{row['num_layers']}x{row['hidden_size']}")
    if "batch" in row:
        parts.append(f"batch {row['batch']}")
    return " ".join(p for p in parts if p) or str(row.get("name", ""))


def _external_measured(row: dict) -> str:
    """The figures a streaming/generation target is judged on: times, rates and ratios of
    the contender the target names first (its keys start with that word), else all of them."""
    shown = []
    subject = str(row.get("target", "")).split(" ", 1)[0] + "_"  # "stream_", "fused_"
    keys = [k for k in row if k.startswith(subject)] or list(row)
    for key in keys:
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key.endswith("_us"):
            shown.append(f"{key} {value:.1f}")
        elif key.endswith("_s"):
            shown.append(f"{key} {value:.2f}")
        elif key.endswith("_per_s"):
            shown.append(f"{key} {value:,.0f}")
        elif "_vs_" in key:
            shown.append(f"{key} {value:.2f}x")
    return ", ".join(shown)


def judge_targets(suites: dict[str, list[dict]]) -> list[Target]:
    """Every target this run has rows for (module docstring)."""
    targets: list[Target] = []
    planned = suites.get("train-step", [])
    train = _ok(planned)
    for cell in CELLS:
        rows = [r for r in train if r["config"]["cell"] == cell]
        if rows:
            targets += (
                _torch_cell_targets(cell, rows)
                if cell in STANDARD_CELLS
                else _loop_targets(cell, rows)
            )
        elif any(r["config"]["cell"] == cell for r in planned):
            targets.append(
                Target(f"{CELLS[cell].label}: train-step targets", "-", "no row ran", None)
            )
    targets += _inference_targets(suites.get("inference", []))
    targets += _scan_targets(suites.get("scan", []))
    for suite in ("streaming", "generation", "compile-cost"):
        for row in suites.get(suite, []):
            if row.get("target") is not None:
                met = row.get("met", row.get("target_met"))
                targets.append(
                    Target(
                        f"{suite}: {_external_label(row)}",
                        str(row["target"]),
                        _external_measured(row),
                        None if met is None else bool(met),
                        _join(str(row.get("note", "")), "busy" if row.get("busy") else ""),
                    )
                )
    return targets


# ------------------------------------------------------------------------ tables


def _absent(row: dict, name: str) -> str:
    """Why a contender has no figure in a row, in one word (explained under the table)."""
    if name in row.get("agreement", {}).get("refused", {}):
        return "refused"
    reason = row.get("left_out", {}).get(name, "")
    if reason.startswith(SLOW_MARK):
        return "slow"
    if reason == BUDGET_MARK:
        return "cut"
    return "n/a" if reason else "-"


def _ms(row: dict, name: str) -> str:
    timing = row["timings"].get(name)
    if timing is not None:
        return f"{timing['median_ms']:.2f}"
    return _absent(row, name)


def _x(row: dict, key: str) -> str:
    ratio = row["ratios"].get(key)
    if ratio is None:
        return "-"
    return f"{ratio['median']:.2f}x [{ratio['q1']:.2f}-{ratio['q3']:.2f}]"


def _gflops(row: dict, name: str) -> str:
    value = row.get("gflops", {}).get(name)
    if value is None:
        return "-"
    share = row.get("percent_of_peak", {}).get(name)
    return f"{value:.1f}" + (f" ({share:.0f}%)" if share is not None else "")


def _row_label(row: dict) -> str:
    label = _label(row)
    if row.get("status") != "ok":
        return f"{label} ({row['status']})"
    if row.get("agreement", {}).get("refused"):
        label += " (!)"
    return label + (" (busy)" if row.get("busy") else "")


def _pipe_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A markdown pipe table with padded columns, readable in a terminal and in a document:
    the first `left` columns (text) aligned left, the others (figures) right."""
    table = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in pairs]
        return "| " + " | ".join(cells) + " |"

    rule = "".join(
        "|" + "-" * (w + 2) if i < left else "|" + "-" * (w + 1) + ":" for i, w in enumerate(widths)
    )
    return "\n".join([line(table[0]), rule + "|", *(line(r) for r in table[1:])])


TRAIN_COLUMNS = (
    ("compiled ms", lambda r: _ms(r, "compiled")),
    ("reference ms", lambda r: _ms(r, "reference")),
    ("native ms", lambda r: _ms(r, "native")),
    ("naive ms", lambda r: _ms(r, "naive")),
    ("compiled vs native", lambda r: _x(r, "compiled_vs_native")),
    ("compiled vs naive", lambda r: _x(r, "compiled_vs_naive")),
    ("reference vs native", lambda r: _x(r, "reference_vs_native")),
    ("reference vs naive", lambda r: _x(r, "reference_vs_naive")),
    ("compiled GFLOP/s (% peak)", lambda r: _gflops(r, "compiled")),
    ("native GFLOP/s (% peak)", lambda r: _gflops(r, "native")),
)
TWIN_COLUMNS = (  # the layer-norm cells: torch's plain layer of the same sizes beside
    ("torch.nn twin ms", lambda r: _ms(r, "twin")),
    (
        "compiled / twin time",
        lambda r: (
            f"{r['timings']['compiled']['median_ms'] / r['timings']['twin']['median_ms']:.2f}x"
            if {"compiled", "twin"} <= set(r.get("timings", {}))
            else "-"
        ),
    ),
)
INFERENCE_COLUMNS = (
    ("compiled ms", lambda r: _ms(r, "compiled")),
    ("auto ms", lambda r: _ms(r, "auto")),
    ("native ms", lambda r: _ms(r, "native")),
    ("compiled vs native", lambda r: _x(r, "compiled_vs_native")),
    ("auto vs native", lambda r: _x(r, "auto_vs_native")),
    ("auto ran", lambda r: str(r.get("auto_ran", "-"))),
)
SCAN_COLUMNS = (
    ("scan ms", lambda r: _ms(r, "scan")),
    ("step loop ms", lambda r: _ms(r, "compiled")),
    ("nn.GRU ms", lambda r: _ms(r, "twin")),
    ("scan vs nn.GRU", lambda r: _x(r, "scan_vs_twin")),
    ("step loop vs nn.GRU", lambda r: _x(r, "compiled_vs_twin")),
    ("scan vs step loop", lambda r: _x(r, "scan_vs_compiled")),
)
VARLEN_COLUMNS = (
    ("compiled packed ms", lambda r: _ms(r, "compiled-packed")),
    ("compiled lengths= ms", lambda r: _ms(r, "compiled-lengths")),
    ("native packed ms", lambda r: _ms(r, "native-packed")),
    ("packed vs native", lambda r: _x(r, "compiled-packed_vs_native-packed")),
    ("lengths= vs native", lambda r: _x(r, "compiled-lengths_vs_native-packed")),
    ("lengths= vs packed", lambda r: _x(r, "compiled-lengths_vs_compiled-packed")),
    ("compiled packed GFLOP/s (% peak)", lambda r: _gflops(r, "compiled-packed")),
)


def _timed_table(rows: Sequence[dict], columns, first: str = "configuration") -> str:
    header = (first, *(name for name, _ in columns))
    body = [(_row_label(r), *(cell(r) for _, cell in columns)) for r in rows]
    return _pipe_table(header, body)


def _generic_table(rows: Sequence[dict]) -> str:
    """Rows of the external suites: every scalar field, in first-seen order."""
    keys: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key != "suite" and key not in keys and not isinstance(value, dict | list):
                keys.append(key)

    def show(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    return _pipe_table(keys, [[show(r.get(k)) for k in keys] for r in rows])


def _left_out_notes(rows: Sequence[dict]) -> str:
    """What the words in place of a time mean; each reason a backend cannot run, once."""
    unavailable: dict[tuple[str, str], int] = {}
    marks = set()
    for row in rows:
        for name, reason in row.get("left_out", {}).items():
            if reason.startswith(SLOW_MARK) or reason == BUDGET_MARK:
                marks.add("slow" if reason.startswith(SLOW_MARK) else "cut")
            else:
                unavailable[(name, reason)] = unavailable.get((name, reason), 0) + 1
    lines = [f"- n/a, {name} ({n} rows): {reason}" for (name, reason), n in unavailable.items()]
    if "slow" in marks:
        lines.append(
            "- slow: left out of a standard-cell row whose step would take more than "
            f"{SLOW_STEP_S:g} s (estimated; GEMM-bound there, see the smaller rows)"
        )
    if "cut" in marks:
        lines.append("- cut: left out to fit the time budget (--max-minutes)")
    fewer = sum(1 for row in rows if row.get("rounds_cut"))
    if fewer:
        lines.append(
            f"- {fewer} rows ran fewer rounds than planned: the run was behind its estimate "
            "(rounds_cut in the JSON)"
        )
    return "\n".join(lines)


def suite_table(suite: str, rows: Sequence[dict]) -> str:
    """One suite as markdown: one table per cell for train-step, one table otherwise."""
    if not rows:
        return "(no rows)"
    if suite == "train-step":
        parts = []
        for cell, kind in CELLS.items():
            cell_rows = [r for r in rows if r["config"]["cell"] == cell]
            if cell_rows:
                parts.append(f"**{kind.label}** (naive: {kind.naive})\n\n")
                columns = TRAIN_COLUMNS + (TWIN_COLUMNS if cell in TWINS else ())
                parts[-1] += _timed_table(cell_rows, columns)
        return "\n\n".join([*parts, _left_out_notes(rows)]).rstrip()
    if suite == "varlen":
        return "\n\n".join([_timed_table(rows, VARLEN_COLUMNS), _left_out_notes(rows)]).rstrip()
    if suite == "inference":
        return _timed_table(rows, INFERENCE_COLUMNS)
    if suite == "scan":
        return _timed_table(rows, SCAN_COLUMNS)
    return _generic_table(rows)


def targets_table(targets: Sequence[Target]) -> str:
    if not targets:
        return "(no target is judged from the suites of this run)"

    def met(value: bool | None) -> str:
        return {True: "yes", False: "**no**", None: "n/a"}[value]

    return _pipe_table(
        ("target", "goal", "measured", "met", "note"),
        [(t.target, t.goal, t.measured, met(t.met), t.note) for t in targets],
        left=5,
    )


READING = (
    "Times: median ms per training step (forward + backward) over the interleaved rounds. "
    "`A vs B`: per-round time_B / time_A, median [q1-q3]; above 1x A is faster. GFLOP/s: GEMM "
    "flops of the step (rnnkit.bench.flops) / median time; % of the GEMM peak measured in the "
    "same run. (!): a contender disagreed with the oracle and was refused (not timed); "
    f"(busy): other processes used more than {BUSY_SHARE:.0%} of the CPUs while the row was "
    "timed, its figures are unreliable. In place of a time: n/a = the backend cannot run this "
    "cell (reason below the table), slow = left out of a GEMM-bound row, cut = left out to fit "
    "the time budget, refused = disagreed; - = no figure."
)


def markdown_report(report: dict) -> str:
    """The whole run as a self-contained markdown fragment (what docs/benchmarks.md shows)."""
    parts = ["\n".join(f"- {' '.join(line.split())}" for line in report["header"])]
    parts += ["### Targets", targets_table([Target(**t) for t in report["summary"]])]
    parts.append(READING)
    for suite, rows in report["suites"].items():
        parts.append(f"### Suite {suite}")
        note = report["suite_notes"].get(suite)
        if note:
            parts.append(note)
        parts.append(suite_table(suite, rows))
    return "\n\n".join(parts) + "\n"


def _finite(value):
    """JSON has no infinity or NaN: such floats become the strings "inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def results_json(
    machine,
    settings: dict,
    peak: dict,
    suites: dict,
    suite_notes: dict,
    header: list[str],
    plan_notes: list[str],
    elapsed_s: float,
) -> dict:
    return _finite(
        {
            "schema": SCHEMA,
            "machine": asdict(machine),
            "settings": settings,
            "gemm_peak": peak,
            "plan_notes": plan_notes,
            "elapsed_s": elapsed_s,
            "header": header,
            "summary": [t.to_dict() for t in judge_targets(suites)],
            "suites": suites,
            "suite_notes": suite_notes,
        }
    )
