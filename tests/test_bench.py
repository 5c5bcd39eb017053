"""rnnkit bench: the flop formula, the agreement check, the plan, the report and the CLI.

No timing is ever asserted: the figures depend on the machine; what is checked is that the
bench measures the right things (agreeing contenders, counted flops, planned rows, fields).
"""

from __future__ import annotations

import json
import time

import pytest

from rnnkit.bench.contenders import LayerConfig, build_train_contenders, oracle_of
from rnnkit.bench.flops import gemm_peak, training_flops
from rnnkit.bench.plan import (
    GRID_B,
    GRID_H,
    GRID_T,
    MIN_ROUNDS,
    diagonal_subset,
    full_grid,
    latin_subset,
    plan_rows,
)
from rnnkit.bench.report import judge_targets
from rnnkit.bench.rows import measure_row
from rnnkit.bench.timing import Contender
from rnnkit.bench.train_step import run_train_step
from rnnkit.cli import main

# ---------------------------------------------------------------- flops


def test_lstm_flops_counted_gemm_by_gemm():
    T, B, I, H = 2, 3, 5, 7
    G = 4 * H  # gate rows of W_ih and W_hh
    forward = 2 * T * B * I * G + 2 * T * B * H * G  # x W_ih^T, h W_hh^T
    input_and_state_grads = 2 * T * B * G * I + 2 * T * B * G * H  # dA W_ih, dA W_hh
    weight_grads = 2 * G * T * B * I + 2 * G * T * B * H  # dA^T x, dA^T h
    expected = forward + input_and_state_grads + weight_grads
    assert expected == 12096
    assert training_flops("lstm", B, T, I, H) == expected
    assert training_flops("lnlstm", B, T, I, H) == expected  # the norms are not GEMMs


def test_gate_counts_and_projection():
    T, B, I, H, P = 2, 3, 5, 7, 4
    assert training_flops("rnn", B, T, I, H) == 6 * T * B * H * (I + H) == 3024
    assert training_flops("gru", B, T, I, H) == 3 * 3024
    projected = 6 * T * B * 4 * H * (I + P) + 6 * T * B * H * P  # W_hr: fwd, dh, dW_hr
    assert training_flops("lstm", B, T, I, H, proj_size=P) == projected == 10080


def test_jordan_flops_include_the_output_product():
    T, B, I, H, O = 1, 1, 2, 3, 4
    # forward: x W_x^T (2*I*H), y W_r^T (2*O*H), h W_y^T (2*H*O); backward twice that
    assert training_flops("jordan", B, T, I, H, output_size=O) == 3 * (2 * 2 * 3 + 2 * 2 * 4 * 3)
    assert training_flops("jordan", B, T, I, H, output_size=O) == 6 * T * B * H * (I + 2 * O)


def test_flops_refuse_an_unknown_cell():
    with pytest.raises(ValueError, match="cell must be one of"):
        training_flops("transformer", 1, 1, 1, 1)


def test_gemm_peak_reports_a_rate():
    peak = gemm_peak(64, repeats=2)
    assert peak["gflops"] > 0 and peak["size"] == 64 and peak["best_s"] > 0


# ---------------------------------------------------------------- agreement


def _tiny(cell="lstm"):
    return LayerConfig(cell, 3, 5, 4, 6, output_size=4 if cell == "jordan" else 0)


def _wrong(contender: Contender, scale: float = 1.05) -> Contender:
    """The same computation with every output scaled: close, but not the same."""
    return Contender(
        "wrong", lambda: tuple(o * scale for o in contender.forward()), contender.parameters
    )


def test_a_contender_that_disagrees_is_refused_and_not_timed(one_thread):
    contenders, x, unavailable = build_train_contenders(_tiny(), seed=3)
    assert unavailable == {}
    assert [c.name for c in contenders] == ["compiled", "reference", "native", "naive"]
    naive = next(c for c in contenders if c.name == "naive")
    row = measure_row(
        "train-step",
        {"label": "tiny"},
        [*contenders, _wrong(naive)],
        [x],
        oracle="native",
        ratio_pairs=[("compiled", "native"), ("wrong", "native")],
        rounds=2,
        warmup=0,
    )
    assert set(row["agreement"]["refused"]) == {"wrong"}
    assert row["agreement"]["refused"]["wrong"] > 1e-3
    assert "wrong" not in row["timings"] and "wrong" not in row["contenders"]
    assert set(row["timings"]) == {"compiled", "reference", "native", "naive"}
    assert "wrong_vs_native" not in row["ratios"] and "compiled_vs_native" in row["ratios"]
    for name, difference in row["agreement"]["max_relative_difference"].items():
        if name != "wrong":
            assert difference < 1e-5, name


def test_a_contender_with_other_shapes_is_refused(one_thread):
    contenders, x, _ = build_train_contenders(_tiny("gru"), ("reference", "naive"))
    naive = contenders[1]
    truncated = Contender("short", lambda: naive.forward()[:1], naive.parameters)
    row = measure_row(
        "train-step",
        {"label": "tiny"},
        [*contenders, truncated],
        [x],
        oracle="reference",
        ratio_pairs=[],
        rounds=1,
        warmup=0,
    )
    assert row["agreement"]["refused"] == {"short": float("inf")}


@pytest.mark.parametrize("cell", ["jordan", "lnlstm", "lngru", "rnn"])
def test_every_cell_s_contenders_agree(cell, one_thread):
    contenders, x, unavailable = build_train_contenders(_tiny(cell), seed=1)
    names = [c.name for c in contenders]
    assert "naive" in names and "reference" in names
    if cell in ("jordan", "lnlstm", "lngru"):
        assert "native" in unavailable and "native" not in names
    row = measure_row(
        "train-step",
        {"label": cell},
        contenders,
        [x],
        oracle=oracle_of(names),
        ratio_pairs=[],
        rounds=1,
        warmup=0,
    )
    assert row["agreement"]["refused"] == {}
    assert set(row["timings"]) == set(names)


# ---------------------------------------------------------------- plan


def test_designs_cover_the_grid_levels():
    full = full_grid("lstm")
    assert len(full) == len(GRID_B) * len(GRID_T) * len(GRID_H) == 48
    latin = latin_subset("gru")
    assert len(latin) == 16
    assert {(c.batch, c.hidden_size) for c in latin} == {(b, h) for b in GRID_B for h in GRID_H}
    assert {c.steps for c in latin} == set(GRID_T)
    diagonal = diagonal_subset("jordan")
    assert len(diagonal) == 8
    for level, values in (
        (GRID_B, [c.batch for c in diagonal]),
        (GRID_H, [c.hidden_size for c in diagonal]),
    ):
        assert sorted(values) == sorted(level * 2)
    assert {c.steps for c in diagonal} == set(GRID_T)
    assert all(c.output_size == c.hidden_size // 4 for c in diagonal)
    assert (64, 100, 128, 512) in {(c.batch, c.steps, c.input_size, c.hidden_size) for c in full}


def test_the_budget_cuts_rounds_and_the_reference_never_below_the_minimum():
    configs = full_grid("lstm")
    free, notes = plan_rows(configs, 100.0, None)
    assert notes == []
    total = sum(r.estimate_s for r in free)
    tight, notes = plan_rows(configs, 100.0, total / 4)
    assert notes and sum(r.estimate_s for r in tight) < total
    assert all(r.rounds >= MIN_ROUNDS for r in tight)
    assert any(r.left_out.get("reference") for r in tight)
    # GEMM-bound standard rows leave out the naive loop and say why
    largest = max(free, key=lambda r: r.config.flops)
    assert "naive" not in largest.contenders and "per step" in largest.left_out["naive"]


def test_rows_after_the_deadline_are_reported_not_run():
    rows, _ = plan_rows([_tiny()], 100.0, None, quick=True)
    results = run_train_step(rows, deadline=time.monotonic() - 1, progress=None)
    assert results[0]["status"] == "not run: time budget exhausted"
    assert results[0]["timings"] == {}


# ---------------------------------------------------------------- targets


def _row(cell, size, ratio=None, peak=50.0, naive=None, busy=False, times=None):
    batch, steps, inputs, hidden = size
    ratios = {}
    if ratio is not None:
        ratios["compiled_vs_native"] = {"median": ratio, "q1": ratio, "q3": ratio}
    if naive is not None:
        ratios["compiled_vs_naive"] = {"median": naive, "q1": naive, "q3": naive}
    config = {"cell": cell, "batch": batch, "steps": steps, "input_size": inputs}
    config |= {"hidden_size": hidden, "label": f"{cell} B{batch} T{steps} I{inputs} H{hidden}"}
    return {
        "status": "ok",
        "config": config,
        "ratios": ratios,
        "timings": {k: {"median_ms": v} for k, v in (times or {}).items()},
        "percent_of_peak": {"compiled": peak, "native": 60.0},
        "busy": busy,
    }


SMALL, WIDE, PER_STEP = (32, 35, 28, 256), (64, 100, 128, 512), (8, 200, 32, 128)


def test_targets_are_judged_from_the_rows():
    rows = [
        _row("lstm", SMALL, 1.3),
        _row("lstm", WIDE, 1.1, peak=90.0),
        _row("lstm", PER_STEP, 0.85, busy=True),
        _row("gru", SMALL, 1.2),
        _row("gru", PER_STEP, 1.4, peak=80.0),
        _row("jordan", SMALL, naive=4.0),
        _row("jordan", PER_STEP, naive=2.0),
        _row("lnlstm", SMALL, naive=2.0, times={"compiled": 13.0, "twin": 10.0}),
        _row("mingru", SMALL, naive=2.5),
    ]
    stream = {"target": "call <= 25 us", "target_met": False, "call_us": 30.0}
    scan = {"status": "ok", "config": {"label": "MinGRU B8 T1024 I32 H128"}, "ratios": {}}
    scan["ratios"] = {
        "scan_vs_twin": {"median": 12.0},
        "compiled_vs_twin": {"median": 20.0},
    }
    targets = judge_targets({"train-step": rows, "streaming": [stream], "scan": [scan]})
    by_start = lambda text: [t for t in targets if t.target.startswith(text)]  # noqa: E731
    median, floor, peak = by_start("LSTM: ")
    assert median.met is True and median.measured == "1.10x"
    assert floor.met is False and "0.85x" in floor.measured and "1 of 3 rows busy" in floor.note
    assert peak.met is True and peak.measured.startswith("90%")
    gru_floor, gru_per_step = by_start("GRU: ")
    assert gru_floor.met is True and gru_per_step.met is False and "1.40x" in gru_per_step.measured
    jordan = by_start("JordanRNN: ")
    assert jordan[0].met is True and jordan[1].met is False  # >= 1.5x everywhere; 2x < 3x
    assert jordan[2].met is False  # its small sizes (B x H <= 8192) include the 2x row
    lnlstm_time = next(t for t in by_start("LayerNormLSTM") if "torch.nn.LSTM" in t.target)
    assert lnlstm_time.met is True and "1.30x" in lnlstm_time.measured
    (mingru,) = by_start("MinGRU: ")
    assert mingru.met is False and mingru.goal == ">= 3x everywhere"  # no recurrent GEMM
    (scan_target,) = by_start("MinGRU scan mode")
    assert scan_target.met is True and "12.00x" in scan_target.measured
    (streaming,) = by_start("streaming")
    assert streaming.met is False and "call_us 30.0" in streaming.measured


# ---------------------------------------------------------------- the command


@pytest.fixture
def fake_stream_suites(monkeypatch):
    """Stand-ins for the streaming and generation suites: the wiring is tested here, the
    suites in test_stream.py."""
    from rnnkit.bench import streaming

    monkeypatch.setitem(
        streaming.EXTERNAL_SUITES,
        "streaming",
        lambda quick: [
            {
                "suite": "streaming",
                "cell": "lstm",
                "hidden_size": 128,
                "call_us": 12.0,
                "call_vs_native": 9.0,
                "target": "call <= 25 us and >= 5x nn.LSTM",
                "target_met": True,
            }
        ],
    )
    monkeypatch.setitem(
        streaming.EXTERNAL_SUITES,
        "generation",
        lambda quick: [{"suite": "generation", "model": "char LSTM", "fused_chars_per_s": 9e3}],
    )


def test_quick_run_writes_json_and_markdown(tmp_path, capsys, one_thread, fake_stream_suites):
    out = tmp_path / "results"
    code = main(
        ["bench", "--quick", "--threads", "1", "--cells", "lstm,jordan,lnlstm", "--out", str(out)]
    )
    assert code == 0
    report = json.loads((out / "bench.json").read_text())
    assert report["schema"] == "rnnkit-bench/2"
    for key in ("cpu", "logical_cpus", "torch_version", "compiler", "numpy_version", "source"):
        assert report["machine"][key], key
    assert report["gemm_peak"]["gflops"] > 0
    assert list(report["suites"]) == [
        "train-step",
        "inference",
        "scan",
        "varlen",
        "streaming",
        "generation",
    ]
    lstm, jordan, lnlstm = report["suites"]["train-step"]
    assert lstm["status"] == "ok" and lstm["agreement"]["refused"] == {}
    assert set(lstm["timings"]) == {"compiled", "reference", "native", "naive"}
    assert len(lstm["timings"]["compiled"]["samples_ms"]) == 3
    assert set(lstm["ratios"]) == {
        "compiled_vs_native",
        "compiled_vs_naive",
        "reference_vs_native",
        "reference_vs_naive",
    }
    assert lstm["flops"] == training_flops("lstm", 4, 12, 8, 32)
    assert lstm["gflops"]["compiled"] > 0 and "native" in lstm["percent_of_peak"]
    assert "native" in jordan["left_out"] and "compiled_vs_naive" in jordan["ratios"]
    assert "naive" in lnlstm["timings"]
    varlen = report["suites"]["varlen"][0]
    assert varlen["agreement"]["oracle"] == "native-packed" and varlen["agreement"]["refused"] == {}
    assert report["suites"]["streaming"][0]["suite"] == "streaming"
    targets = {t["target"]: t for t in report["summary"]}
    assert any(t.startswith("LSTM: compiled training step") for t in targets)
    assert any(t.startswith("LSTM inference: compiled vs torch.nn") for t in targets)
    assert any(t.startswith("MinGRU scan mode") for t in targets)
    assert any(t.startswith("streaming") and v["met"] for t, v in targets.items())
    markdown = (out / "bench.md").read_text()
    assert "### Targets" in markdown and "### Suite train-step" in markdown
    assert "compiled vs native" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cells", "lstm,tree"], "unknown cell 'tree'"),
        (["--suite", "speed"], "unknown suite 'speed'"),
        (["--max-minutes", "0"], "expected a number > 0.0"),
    ],
)
def test_bad_options_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", *argv])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and message in err and len(err.splitlines()) == 1


def test_out_pointing_at_a_file_is_refused_before_timing(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["bench", "--quick", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file, not a directory" in err and len(err.splitlines()) == 1


def test_plan_prints_rows_and_times_nothing(capsys, monkeypatch):
    import rnnkit.bench.command as command

    monkeypatch.setattr(
        command,
        "gemm_peak",
        lambda *a, **k: {"gflops": 100.0, "size": 8, "repeats": 1, "threads": 1},
    )
    monkeypatch.setattr(command, "run_train_step", None)  # would fail if called
    assert main(["bench", "--plan", "--cells", "gru"]) == 0
    out = capsys.readouterr().out
    assert "train-step 5 rows" in out and "GRU B64 T100 I128 H512" in out


def test_json_has_no_infinities():
    from rnnkit.bench.report import _finite

    cleaned = _finite({"refused": {"short": float("inf")}, "x": [float("nan"), 1.5]})
    assert cleaned == {"refused": {"short": "inf"}, "x": ["nan", 1.5]}
    json.loads(json.dumps(cleaned, allow_nan=False))


@pytest.mark.slow
def test_compile_cost_rows_from_two_fresh_processes():
    from rnnkit.bench.compile_cost import PROCESSES, engine_first_calls

    rows = engine_first_calls()
    assert [r["process"] for r in rows] == list(PROCESSES)
    for row in rows:
        for key in ("import_s", "lstm_s", "gru_s", "rnn_s", "jordan_s", "lstm_float64_s", "cpu_s"):
            assert row[key] > 0, key


def test_rows_behind_schedule_get_fewer_rounds_never_below_the_minimum():
    from rnnkit.bench.train_step import _fit_remaining

    rows, _ = plan_rows(full_grid("gru")[:6], 100.0, None)
    before = [r.rounds for r in rows]
    _fit_remaining(rows, slowdown=1.0, seconds_left=1e9)
    assert [r.rounds for r in rows] == before
    _fit_remaining(rows, slowdown=4.0, seconds_left=sum(r.estimate_s for r in rows))
    after = [r.rounds for r in rows]
    assert all(MIN_ROUNDS <= a <= b for a, b in zip(after, before, strict=True))
    assert sum(after) < sum(before)
