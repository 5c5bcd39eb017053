"""The forecaster: windows, scaling on the training part only, one-step and recursive forecasts,
exogenous columns, the CSV format and its errors, and learning on small series."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from resumed_runs import assert_same_weights, whole_and_resumed
from rnnkit.models.forecaster import (
    ForecasterConfig,
    ForecasterModel,
    Scaler,
    make_inputs,
    one_step_forecasts,
    recursive_forecast,
    sliding_windows,
)
from rnnkit.tasks import SeriesForecaster
from rnnkit.tasks.forecast import ForecastTask, Point, Window
from rnnkit.train.config import TrainConfig


def make_task(**options) -> ForecastTask:
    return ForecastTask(TrainConfig(task="forecast", **options))


def make_model(n_exogenous=0, cell="gru", seed=0) -> ForecasterModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ForecasterModel(ForecasterConfig(n_exogenous, cell=cell, hidden_size=8)).eval()


# ---------------------------------------------------------------- windows and scaling


def test_sliding_windows_pair_each_window_with_the_next_point():
    series = np.arange(10.0)
    inputs, targets = sliding_windows(make_inputs(series, None), series, 3)
    assert inputs.shape == (7, 3, 1)
    assert inputs[0, :, 0].tolist() == [0, 1, 2]
    assert targets.tolist() == [3, 4, 5, 6, 7, 8, 9]
    assert torch.equal(inputs[:, -1, 0] + 1, targets)


def test_exogenous_rows_hold_the_next_times_values():
    """Row s = [y_s, x_{s+1}]: the forecast of y_{t+1} sees x_{t+1}."""
    y = np.arange(6.0)
    x = 100 + np.arange(6.0)[:, None]  # x_t = 100 + t
    rows = make_inputs(y, x)
    assert rows.tolist() == [[t, 101 + t] for t in range(5)]
    inputs, targets = sliding_windows(rows, y, 2)
    assert inputs[0].tolist() == [[0, 101], [1, 102]] and targets[0] == 2


def test_scaler_standardises_and_maps_back():
    rows = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    scaler = Scaler.fit(rows)
    scaled = scaler.transform(rows)
    np.testing.assert_allclose(scaled[:, 0].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(scaled[:, 0].std(), 1)
    assert np.all(scaled[:, 1] == 0)  # a constant column maps to 0, no division by zero
    np.testing.assert_allclose(scaler.inverse_target(scaled[:, 0]), rows[:, 0])
    assert Scaler.from_dict(scaler.to_dict()).to_dict() == scaler.to_dict()


def test_scaler_is_fitted_on_the_training_part_only():
    """The held-out tail (here huge values) must not leak into the scaling."""
    series = [*np.sin(np.arange(60) / 3).tolist(), *([1000.0] * 10)]
    task = make_task(window=5, holdout=10)
    train, val = task.split(task.examples_from_python(series, None), 0.1)
    task.fit(train)
    assert len(val) == 10 and all(w.position >= 60 for w in val)
    np.testing.assert_allclose(task.scaler.mean, [np.mean(series[:60])])
    np.testing.assert_allclose(task.scaler.std, [np.std(series[:60])])
    assert task.naive_scale == pytest.approx(np.mean(np.abs(np.diff(series[:60]))))


# ---------------------------------------------------------------- forecasting


@pytest.mark.parametrize("n_exogenous", [0, 2])
def test_recursive_forecast_equals_feeding_back_one_step_forecasts(n_exogenous):
    model = make_model(n_exogenous)
    rng = np.random.default_rng(0)
    history = rng.normal(size=20)
    exo = rng.normal(size=(20 + 4, n_exogenous)) if n_exogenous else None
    scaler = Scaler.fit(np.column_stack([history, exo[:20]]) if n_exogenous else history[:, None])
    window, horizon = 6, 4
    forecasts = recursive_forecast(
        model,
        scaler,
        window,
        history,
        horizon,
        history_exogenous=exo[:20] if n_exogenous else None,
        future_exogenous=exo[20:] if n_exogenous else None,
    )
    series = list(history)
    for step in range(horizon):
        # a one-step forecast of the point after `series`: append a placeholder point and ask
        # one_step_forecasts for it (its value is never read, only the points before it)
        extended = np.array([*series, np.nan])
        n = len(extended)
        one = one_step_forecasts(
            model, scaler, window, extended, exo[:n] if n_exogenous else None, start=n - 1
        )
        assert one.shape == (1,)
        np.testing.assert_allclose(forecasts[step], one[0], rtol=1e-6)
        series.append(one[0])


def test_one_step_forecasts_use_only_the_points_before():
    """Changing a point changes the forecasts after it, never the one of itself or before."""
    model = make_model()
    series = np.sin(np.arange(30) / 2)
    scaler = Scaler.fit(series[:, None])
    base = one_step_forecasts(model, scaler, 5, series, start=10)
    changed = series.copy()
    changed[20] += 3.0
    after = one_step_forecasts(model, scaler, 5, changed, start=10)
    np.testing.assert_array_equal(base[: 20 - 10 + 1], after[: 20 - 10 + 1])
    assert not np.allclose(base[11:], after[11:])


def test_task_evaluate_matches_one_step_forecasts():
    task = make_task(window=4, holdout=6, hidden_size=8)
    series = np.cos(np.arange(40) / 3) * 10
    train, _ = task.split(task.examples_from_python(series, None), 0.1)
    task.fit(train)
    model = task.build_model().eval()
    result = task.evaluate(model, task.examples_from_python(series, None), holdout=6)
    expected = one_step_forecasts(model, task.scaler, 4, series, start=34)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((expected - series[34:]) ** 2)))
    assert result["points"] == 6
    assert result["mase"] == pytest.approx(result["mae"] / task.naive_scale)


def test_forecast_needs_the_future_exogenous_values():
    model = make_model(n_exogenous=1)
    scaler = Scaler(np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match=r"future_exogenous must give them.*\(3, 1\)"):
        recursive_forecast(model, scaler, 4, np.zeros(10), 3, history_exogenous=np.zeros((10, 1)))
    with pytest.raises(ValueError, match="history must hold at least 4 points"):
        recursive_forecast(make_model(), Scaler(np.zeros(1), np.ones(1)), 4, [1.0, 2.0], 1)


# ---------------------------------------------------------------- the CSV format


def write(tmp_path, text, name="series.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_default_column_is_the_last_numeric_one(tmp_path):
    path = write(tmp_path, "date,value,note\n" + "".join(f"d{i},{i},x\n" for i in range(8)))
    windows = make_task(window=3).read_examples(path)
    assert [w.points[-1].value for w in windows] == [3, 4, 5, 6, 7]
    assert windows[0].points[-1].line == 5  # header is line 1, so value 3 is line 5


def test_csv_column_and_exogenous_by_name(tmp_path):
    path = write(tmp_path, "a,b,c\n" + "".join(f"{i},{10 * i},{-i}\n" for i in range(6)))
    task = make_task(window=2, column="a", exogenous="c")
    window = task.read_examples(path)[0]
    assert [(p.value, p.exogenous) for p in window.points] == [(0, (0,)), (1, (-1,)), (2, (-2,))]


def test_predict_input_may_end_with_future_exogenous_rows(tmp_path):
    task = make_task(window=2, column="y", exogenous="x")
    path = write(tmp_path, "t,y,x\n1,1,5\n2,2,6\n3,,7\n4,,8\n")
    points = task.read_inputs(path)
    assert [(p.value, p.exogenous) for p in points[2:]] == [(None, (7,)), (None, (8,))]
    with pytest.raises(ValueError, match=r"series.csv:4: column 'y' is empty"):
        task.read_examples(path)  # training data needs every value
    gap = write(tmp_path, "t,y,x\n1,,5\n2,2,6\n", "gap.csv")
    with pytest.raises(ValueError, match=r"gap.csv:3: a value after a row with an empty series"):
        task.read_inputs(gap)


def test_headerless_numbers_are_a_series(tmp_path):
    path = write(tmp_path, "1\n2\n3\n\n4\n")
    inputs = make_task(window=2).read_inputs(path)
    assert [p.value for p in inputs] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("t,v\n1,2\n2,x\n3,4\n", {}, r"series.csv:3: column 'v' holds 'x', not a number"),
        ("t,v\n1,2\n2,3,4\n", {}, r"series.csv:3: expected 2 comma-separated columns .*found 3"),
        ("t,v\n1,2\n2,\n", {}, r"series.csv:3: column 'v' is empty"),
        ("t,v\n1,2\n", {"column": "w"}, r"no column 'w' for --column; the header has 't', 'v'"),
        ("t,v\n1,2\n", {"exogenous": "z"}, r"no column 'z' for --exogenous"),
        ("a,b\nx,y\n", {}, r"no numeric column in the first data row"),
        ("v\n1\n2\n", {"window": 5}, r"has 2 points; --window 5 needs at least 6"),
        ("", {}, r"empty"),
    ],
)
def test_malformed_csv_names_file_and_line(tmp_path, text, options, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message):
        make_task(**options).read_examples(path)


@pytest.mark.parametrize(
    ("option", "flag"),
    [({"tokens": "word"}, "--tokens"), ({"embedding_dim": 8}, "--embedding-dim")],
)
def test_text_options_are_rejected(option, flag):
    with pytest.raises(ValueError, match=f"{flag} does not apply to --task forecast"):
        make_task(**option)


def test_split_leaves_enough_points_for_a_window():
    task = make_task(window=5, holdout=10)
    with pytest.raises(ValueError, match="holding out 10 leaves 2, too few for --window 5"):
        task.split(task.examples_from_python(list(range(12)), None), 0.1)


def test_python_series_must_be_numbers():
    task = make_task()
    with pytest.raises(TypeError, match="the series must be numbers"):
        task.examples_from_python(["a", "b"], None)
    with pytest.raises(ValueError, match="pass the series as the inputs and no targets"):
        task.examples_from_python([1.0, 2.0], [3.0])
    points = task.examples_from_python(torch.arange(5.0), None)
    assert [p.value for p in points] == [0, 1, 2, 3, 4] and isinstance(points[0], Point)
    windows = make_task(window=3).windows(points)
    assert [w.position for w in windows] == [3, 4] and isinstance(windows[0], Window)


# ---------------------------------------------------------------- learning, API, CLI

FAST = {"backend": "native", "threads": 1}  # tiny models: torch's kernel, one thread


def write_named(tmp_path, name, text):
    return write(tmp_path, text, name)


def csv_text(series) -> str:
    return "day,reading\n" + "".join(f"{i},{v}\n" for i, v in enumerate(series))


def sine(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 * np.sin(2 * np.pi * t / 16) + 50 + rng.normal(0, 0.3, n)


def test_sine_forecast_beats_the_naive_forecast(one_thread):
    series = sine(300)
    model = SeriesForecaster(window=12, max_steps=300, **FAST).fit(series[:250])
    result = model.evaluate(series, holdout=50)
    naive = np.sqrt(np.mean((series[250:] - series[249:-1]) ** 2))
    assert result["points"] == 50
    assert result["rmse"] < 0.3 * naive  # naive: about 3.9; noise floor 0.3
    assert result["mase"] < 0.3
    # a multi-step forecast is the one-step forecast fed back, and follows the wave
    forecasts = model.forecast(series[:250], horizon=4)
    assert forecasts.shape == (4,)
    again = model.forecast([*series[:250], forecasts[0]], horizon=3)
    np.testing.assert_allclose(again, forecasts[1:], rtol=1e-5)
    assert np.sqrt(np.mean((forecasts - series[250:254]) ** 2)) < 0.5 * naive


def test_exogenous_columns_are_read_at_the_forecast_time(one_thread):
    """y_t = 2 x_t with x white noise: only a model that sees x_{t+1} can forecast y_{t+1}."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    data = np.column_stack([2 * x, x])  # the series first, then the exogenous column
    model = SeriesForecaster(window=4, exogenous="x", max_steps=300, **FAST).fit(data[:350])
    assert model.evaluate(data, holdout=50)["rmse"] < 0.3  # y's std is 2
    history = data[:352].copy()
    history[-2:, 0] = np.nan  # two future rows: their x is known, y is asked for
    np.testing.assert_allclose(model.forecast(history, horizon=2), 2 * x[350:352], atol=0.5)
    with pytest.raises(ValueError, match=r"needs their future values: end the file with 3 row"):
        model.forecast(history, horizon=3)


def test_cli_train_predict_evaluate(tmp_path, capsys, one_thread):
    from rnnkit.cli import main

    series = sine(200)
    data = write_named(tmp_path, "s.csv", csv_text(series))
    out = tmp_path / "run"
    args = ["train", "--task", "forecast", "--data", str(data), "--out", str(out), "--quiet"]
    args += ["--max-steps", "300", "--backend", "native", "--holdout", "20"]
    assert main(args) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["task"] == "forecast" and metrics["val_examples"] == 20
    assert metrics["rmse"] < 1.5 and metrics["mase"] < 0.5

    history = write_named(tmp_path, "h.csv", csv_text(series[:150]))
    assert (
        main(["predict", "--checkpoint", str(out), "--data", str(history), "--horizon", "3"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    np.testing.assert_allclose([float(v) for v in lines], series[150:153], atol=2.0)
    code = main(["predict", "--checkpoint", str(out), "--data", str(history), "--horizon", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--horizon must be a positive whole number of steps; got 0" in err

    assert main(["evaluate", "--checkpoint", str(out), "--data", str(data), "--holdout", "30"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "forecast" and result["points"] == 30
    assert set(result) >= {"rmse", "mae", "mase"} and result["rmse"] < 1.5

    bad = write_named(tmp_path, "bad.csv", "day,reading\n1,2.0\n2,oops\n")
    code = main(["predict", "--checkpoint", str(out), "--data", str(bad)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("bad.csv:3: column 'reading' holds 'oops', not a number")
    assert len(err.splitlines()) == 1
    code = main(["evaluate", "--checkpoint", str(out), "--data", str(data), "--beam-size", "2"])
    assert code == 2 and "--beam-size does not apply to a forecast model" in capsys.readouterr().err


# ---------------------------------------------------------------- the examples, short


def load_example(name: str):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_seed000_next_number_through_the_forecast_task(one_thread):
    example = load_example("seed000_forecast_task")
    model = example.train(**FAST)
    assert model.forecast([1, 2, 3, 4], 1)[0] == pytest.approx(5, abs=0.3)
    assert model.forecast([5, 6, 7], 1)[0] == pytest.approx(8, abs=0.3)


def test_sunspots_example_short(one_thread):
    example = load_example("sunspots_forecast")
    result = example.compare(seed=0, max_steps=300, **FAST)
    assert 16.5 < result["ar9"]["rmse"] < 18  # statsmodels' AR(9): about 17, as documented
    assert result["rnnkit"]["rmse"] < result["naive"]["rmse"]  # naive: 32.5
    assert result["rnnkit"]["rmse"] < 20


def test_a_separate_validation_series(one_thread):
    series = sine(200)
    model = SeriesForecaster(window=8, max_steps=20, **FAST)
    model.fit(series[:120], validation_data=series[120:])
    assert model.metrics_["val_examples"] == 80 - 8  # every point with 8 before it
    assert model.metrics_["train_examples"] == 120 - 8
    np.testing.assert_allclose(model.task.scaler.mean, [series[:120].mean()])


def test_resume_continues_exactly(tmp_path, one_thread):

    data = write_named(tmp_path, "s.csv", csv_text(sine(80)))
    options = {"data": str(data), "max_steps": 8, "eval_every": 4, "save_every": 2}
    options |= {"dropout": 0.3, "hidden_size": 8, "num_layers": 2, "window": 6, "holdout": 10}
    assert_same_weights(*whole_and_resumed("forecast", tmp_path, options))
    whole_metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    split_metrics = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert whole_metrics["rmse"] == split_metrics["rmse"]
