"""The forecast task: a numeric series from a CSV file -> a sliding-window RNN forecaster.

File format: CSV with a header row; `--column NAME` picks the series (default: the last column
whose first value is a number); `--exogenous A,B` adds columns the model reads beside it. A file
whose first row is all numbers has no header (columns are then named 1, 2, ...), so a plain
list of numbers, one per line, is a valid series. Blank lines are skipped.

Training: the last `--holdout N` points (default: the last `--val-fraction` of them) are held
out; the scaler (standardisation of every column) is fitted on the points before them only.
Each example is one window of `--window W` points and the point after it; the loss is the mean
squared error in standardised units.

`rnnkit predict` prints the next `--horizon H` values after the series, each forecast fed back
as the input of the next (recursive). With exogenous columns the forecasts need the exogenous
values of the forecast times: give them as H rows at the end of the file whose series cell is
empty.

`rnnkit evaluate` scores one-step-ahead forecasts of the last `--holdout N` points (default:
every point with --window points before it), each from the true points before it (rolling
origin): RMSE, MAE and MASE (scale: the naive one-step forecast's mean absolute error over the
training part).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import Option, is_int
from ..models.forecaster import (
    ForecasterConfig,
    ForecasterModel,
    Scaler,
    make_inputs,
    recursive_forecast,
)
from . import metrics
from .base import Batch, Task, line_error, read_lines

__all__ = ["ForecastTask", "Point", "Window"]


@dataclass
class Point:
    """One row of the series: its value (None for a future row), exogenous values, file line."""

    value: float | None
    exogenous: tuple[float, ...] = ()
    line: int | None = None


@dataclass
class Window:
    """A training/held-out example: `points` are the window followed by the point to forecast;
    `position` is the index of that last point in the series."""

    points: list[Point]
    position: int


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _describe_columns(header: list[str]) -> str:
    return ", ".join(repr(h) for h in header)


class ForecastTask(Task):
    name = "forecast"
    own_options = (
        Option(
            "column",
            None,
            "the CSV column to forecast; default: the last numeric column",
            kind=str,
            metavar="NAME",
        ),
        Option(
            "window",
            12,
            "past points the model reads for each forecast (sliding-window length)",
            metavar="N",
            minimum=1,
        ),
        Option(
            "exogenous",
            None,
            "comma-separated CSV columns fed to the model beside the series (forecasting "
            "needs their values at the forecast times)",
            kind=str,
            metavar="NAMES",
        ),
        Option(
            "holdout",
            None,
            "hold out the last N points of the series for validation (instead of --val-fraction)",
            kind=int,
            metavar="N",
            minimum=1,
        ),
    )
    # Measured on statsmodels' yearly sunspots (examples/sunspots_forecast.py, docs/benchmarks.md).
    defaults: ClassVar[dict] = {
        # the initialization and arithmetic these defaults were measured with
        "recurrent_init": "uniform",
        "precision": "float32",
        "cell": "lstm",
        "hidden_size": 32,
        "batch_size": 32,
        "lr": 3e-3,
        "weight_decay": 0.0,
        "warmup_steps": 20,
        "max_steps": 1000,  # ~8 s on one core; sunspots RMSE 15.3 (3 seeds) vs AR(9)'s 17.2
        "threads": 1,  # tiny ops: a second thread only adds synchronisation
    }
    best_by = ("loss", "min")
    predict_flags: ClassVar[dict] = {
        "horizon": {
            "type": int,
            "default": 1,
            "metavar": "H",
            "help": "forecast: how many values after the series to forecast (default 1)",
        },
    }
    evaluate_flags: ClassVar[dict] = {
        "holdout": {
            "type": int,
            "default": None,
            "metavar": "N",
            "help": "forecast: score one-step forecasts of the last N points (default: every "
            "point with --window points before it)",
        },
    }

    def __init__(self, config) -> None:
        super().__init__(config)
        _reject_text_options(config)
        self.window = config.window
        self.scaler: Scaler | None = None
        self.naive_scale: float | None = None  # MASE denominator of the training part
        self.held_out = config.holdout  # how many points training held out (set by split)
        self.n_exogenous = len(self.exogenous_names)  # K, from the data once fitted

    @property
    def exogenous_names(self) -> list[str]:
        text = self.config.exogenous
        return [name.strip() for name in text.split(",")] if text else []

    # ------------------------------------------------------------ data

    def _read_csv(self, path, allow_future: bool) -> list[Point]:
        rows = []
        for number, line in enumerate(read_lines(path, self.config.encoding), 1):
            if line.strip():
                rows.append((number, next(csv.reader([line]))))
        if not rows:
            raise ValueError(f"{path}: no rows found; expected a CSV series with a header")
        _, first = rows[0]
        if all(_number(cell) is not None for cell in first):
            header = [str(i) for i in range(1, len(first) + 1)]  # no header row
        else:
            header = [cell.strip() for cell in first]
            rows = rows[1:]
            if not rows:
                raise ValueError(f"{path}: the header has no data rows under it")
        for number, cells in rows:
            if len(cells) != len(header):
                raise line_error(
                    path,
                    number,
                    f"expected {len(header)} comma-separated columns (as the header), found "
                    f"{len(cells)}",
                )
        target = self._target_column(path, header, rows[0][1])
        exogenous = []
        for name in self.exogenous_names:
            if name not in header:
                raise ValueError(
                    f"{path}: no column {name!r} for --exogenous; the header has "
                    f"{_describe_columns(header)}"
                )
            if header.index(name) == target:
                raise ValueError(f"--exogenous {name!r} is the forecast column itself; drop it")
            exogenous.append(header.index(name))
        points = []
        for number, cells in rows:
            text = cells[target].strip()
            value = _number(text)
            if value is None and not (allow_future and text == ""):
                problem = "is empty" if text == "" else f"holds {text!r}, not a number"
                raise line_error(path, number, f"column {header[target]!r} {problem}")
            if value is not None and points and points[-1].value is None:
                raise line_error(
                    path,
                    number,
                    "a value after a row with an empty series cell; only the last rows (the "
                    "future exogenous values) may leave it empty",
                )
            exo = []
            for index in exogenous:
                x = _number(cells[index].strip())
                if x is None:
                    raise line_error(
                        path,
                        number,
                        f"column {header[index]!r} holds {cells[index].strip()!r}, not a number",
                    )
                exo.append(x)
            points.append(Point(value, tuple(exo), number))
        return points

    def _target_column(self, path, header: list[str], first: list[str]) -> int:
        if self.config.column is not None:
            if self.config.column not in header:
                raise ValueError(
                    f"{path}: no column {self.config.column!r} for --column; the header has "
                    f"{_describe_columns(header)}"
                )
            return header.index(self.config.column)
        for index in reversed(range(len(header))):
            if _number(first[index].strip()) is not None:
                return index
        raise ValueError(
            f"{path}: no numeric column in the first data row; choose the series with --column NAME"
        )

    def read_examples(self, path: str | os.PathLike) -> list[Window]:
        """Every window of the file's series: one example per point with --window points
        before it."""
        return self.windows(self._read_csv(path, allow_future=False), where=str(path))

    def read_inputs(self, path: str | os.PathLike) -> list[Point]:
        return self._read_csv(path, allow_future=True)

    def examples_from_python(self, inputs, targets) -> list[Point]:
        """inputs: the series, (N,), or (N, 1 + K) with the series first and K exogenous
        columns; a list, numpy array or tensor. `targets` must be None (the series is both)."""
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], Window):
            return list(inputs)  # windows made earlier (SeriesForecaster's validation_data)
        if targets is not None:
            raise ValueError(
                "forecast: pass the series as the inputs and no targets (the series is its own "
                "target: each point is forecast from the ones before it)"
            )
        values = inputs.detach().cpu().numpy() if isinstance(inputs, Tensor) else inputs
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                "forecast: the series must be numbers: a list, numpy array or tensor of shape "
                "(N,) or (N, 1 + K)"
            ) from None
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or len(array) == 0:
            raise ValueError(f"forecast: the series must be (N,) or (N, 1 + K); got {array.shape}")
        K = array.shape[1] - 1
        if self.config.exogenous is not None and len(self.exogenous_names) != K:
            raise ValueError(
                f"forecast: exogenous={self.config.exogenous!r} names {len(self.exogenous_names)} "
                f"column(s) but the series has {K} beside the target"
            )
        if self.config.exogenous is None and K:
            raise ValueError(
                f"forecast: the series has {K} column(s) beside the target; name them with "
                "exogenous='A,B' (the names a CSV file would give them)"
            )
        if not np.isfinite(array[:, 1:]).all():
            raise ValueError("forecast: the exogenous columns must be finite numbers")
        points = []
        for i, row in enumerate(array):
            value = float(row[0]) if np.isfinite(row[0]) else None
            if value is None and not np.isnan(row[0]):
                raise ValueError(f"forecast: series[{i}] is {row[0]}, not a finite number")
            points.append(Point(value, tuple(float(x) for x in row[1:]), i + 1))
        return points

    def windows(self, examples: list, where: str = "the series") -> list[Window]:
        """`examples` as Windows: a series (Points) becomes one window per point that has
        --window points before it; Windows pass through."""
        if examples and isinstance(examples[0], Window):
            return list(examples)
        _check_complete(examples, where)
        if len(examples) <= self.window:
            raise ValueError(
                f"{where} has {len(examples)} points; --window {self.window} needs at least "
                f"{self.window + 1} (give a longer series, or train with a smaller --window)"
            )
        return [
            Window(examples[i - self.window : i + 1], i) for i in range(self.window, len(examples))
        ]

    def split(self, examples: list, val_fraction: float) -> tuple[list, list]:
        """Training windows before the last `--holdout` points (default: the last val_fraction
        of the points), held-out windows forecasting each of them."""
        windows = self.windows(examples)
        n = windows[-1].position + 1  # points in the series
        held_out = self.config.holdout or max(1, round(n * val_fraction))
        if held_out >= len(windows):
            raise ValueError(
                f"the series has {n} points: holding out {held_out} leaves {n - held_out}, too "
                f"few for --window {self.window} (it needs at least {self.window + 1}); lower "
                "--window or --holdout"
            )
        self.held_out = held_out
        return windows[:-held_out], windows[-held_out:]

    # ------------------------------------------------------------ preprocessing state

    def fit(self, examples: list) -> None:
        """The scaler and the MASE scale, from the points the training windows cover."""
        covered: dict[int, Point] = {}
        for window in self.windows(examples):
            for offset, point in enumerate(window.points):
                covered[window.position - self.window + offset] = point
        series = [covered[i] for i in sorted(covered)]
        self.n_exogenous = len(series[0].exogenous)
        self.scaler = Scaler.fit(_columns(series))
        try:
            self.naive_scale = metrics.naive_scale([p.value for p in series])
        except ValueError:  # a constant training part: MASE is undefined, evaluate omits it
            self.naive_scale = None

    def state_dict(self) -> dict:
        if self.scaler is None:
            raise RuntimeError("forecast: the task has no scaler yet; call fit first")
        return {
            "window": self.window,
            "exogenous": self.exogenous_names,
            "n_exogenous": self.n_exogenous,
            "scaler": self.scaler.to_dict(),
            "naive_scale": self.naive_scale,
            "held_out": self.held_out,
        }

    def load_state_dict(self, state: dict) -> None:
        self.window = int(state["window"])
        self.config.exogenous = ",".join(state["exogenous"]) or None
        self.n_exogenous = int(state["n_exogenous"])
        self.scaler = Scaler.from_dict(state["scaler"])
        self.naive_scale = state["naive_scale"]
        self.held_out = state["held_out"]

    # ------------------------------------------------------------ model

    def build_model(self, model_config: dict | None = None) -> ForecasterModel:
        if model_config is not None:
            return ForecasterModel(ForecasterConfig.from_dict(model_config))
        c = self.config
        return ForecasterModel(
            ForecasterConfig(
                n_exogenous=self.n_exogenous,
                cell=c.cell,
                hidden_size=c.hidden_size,
                num_layers=c.num_layers,
                dropout=c.dropout,
                backend=c.backend,
            )
        )

    # ------------------------------------------------------------ training

    def encode(self, example: Window) -> tuple[Tensor, Tensor]:
        scaled = self.scaler.transform(_columns(example.points))  # (W + 1, C)
        rows = make_inputs(scaled[:, 0], scaled[:, 1:] if scaled.shape[1] > 1 else None)
        inputs = torch.from_numpy(rows[: self.window]).float()  # (W, C)
        return inputs, torch.tensor(scaled[-1, 0], dtype=torch.float32)

    def collate(self, items: list[tuple[Tensor, Tensor]]) -> Batch:
        inputs = torch.stack([x for x, _ in items])  # (B, W, C)
        targets = torch.stack([y for _, y in items])  # (B,)
        return Batch(
            {"inputs": inputs, "targets": targets},
            size=len(items),
            tokens=inputs.shape[0] * inputs.shape[1],
        )

    def loss(self, model: ForecasterModel, batch: Batch) -> Tensor:
        return F.mse_loss(model(batch.tensors["inputs"]), batch.tensors["targets"])

    # ------------------------------------------------------------ inference

    def predict(self, model: ForecasterModel, inputs: list[Point], horizon: int = 1) -> list[float]:
        """The next `horizon` values after the series in `inputs` (recursive forecasts)."""
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"--horizon must be a positive whole number of steps; got {horizon!r}")
        history = [p for p in inputs if p.value is not None]
        future = [p for p in inputs if p.value is None]
        K = model.config.n_exogenous
        if K and len(future) < horizon:
            raise ValueError(
                f"forecasting {horizon} step(s) with exogenous columns needs their future "
                f"values: end the file with {horizon} row(s) whose series cell is empty (found "
                f"{len(future)})"
            )
        if not K and future:
            raise ValueError(
                f"the series has {len(future)} empty cell(s) at the end; only a model with "
                "--exogenous columns reads future rows"
            )
        forecasts = recursive_forecast(
            model,
            self.scaler,
            self.window,
            [p.value for p in history],
            horizon,
            history_exogenous=[p.exogenous for p in history] if K else None,
            future_exogenous=[p.exogenous for p in future[:horizon]] if K else None,
        )
        return [float(v) for v in forecasts]

    def format_output(self, output: float) -> str:
        return f"{output:.8g}"  # 8 significant digits: float32 forecasts hold about 7

    def evaluate(self, model: ForecasterModel, examples: list, holdout: int | None = None) -> dict:
        """RMSE, MAE and MASE of the one-step forecasts of the last `holdout` windows (None: all
        of them), each from the true points before it. MASE divides by the mean absolute error
        of the naive one-step forecast over the training part (Hyndman & Koehler 2006)."""
        windows = self.windows(examples)
        if holdout is not None:
            if not is_int(holdout) or holdout < 1:
                raise ValueError(f"--holdout must be a positive int; got {holdout!r}")
            if holdout > len(windows):
                raise ValueError(
                    f"--holdout {holdout} is more than the {len(windows)} points that have "
                    f"--window {self.window} points before them; lower --holdout"
                )
            windows = windows[-holdout:]
        actual = np.array([w.points[-1].value for w in windows])
        forecasts = self._forecast_windows(model, windows)
        result = {
            "rmse": metrics.rmse(actual, forecasts),
            "mae": metrics.mae(actual, forecasts),
            "points": len(actual),
        }
        if self.naive_scale:  # metrics.mase, with the scale kept from the training part
            result["mase"] = result["mae"] / self.naive_scale
        return result

    @torch.no_grad()
    def _forecast_windows(self, model: ForecasterModel, windows: list[Window]) -> np.ndarray:
        model.eval()
        inputs = torch.stack([self.encode(w)[0] for w in windows])  # (N, W, C)
        return self.scaler.inverse_target(model(inputs).double().numpy())


def _reject_text_options(config) -> None:
    """A series has no tokens: text options set away from their defaults are a mistake."""
    from dataclasses import fields

    defaults = {f.name: f.default for f in fields(config)}
    for name in ("tokens", "vocab_size", "min_freq", "embedding_dim", "word_vectors"):
        if getattr(config, name) != defaults[name]:
            flag = "--" + name.replace("_", "-")
            raise ValueError(
                f"{flag} does not apply to --task forecast (a numeric series); drop it"
            )


def _columns(points: Sequence[Point]) -> np.ndarray:
    """(N, 1 + K) array: each point's value, then its exogenous values."""
    return np.array([(p.value, *p.exogenous) for p in points], dtype=np.float64)


def _check_complete(points: list[Point], what: str) -> None:
    missing = [p for p in points if p.value is None]
    if missing:
        where = f" (line {missing[0].line})" if missing[0].line else ""
        raise ValueError(f"{what} has an empty value{where}; every point needs a number")


TASK = ForecastTask
