"""A one-step-ahead forecaster over rnnkit layers, its scaler and its sliding windows.

Shapes: B batch, W window length, C = 1 + K input columns (the target series, then K exogenous
columns), H hidden_size, N series length.

    window (B, W, C) -> rnnkit layers (B, W, H) -> last step (B, H) -> dropout -> linear -> (B,)

Row s of a window holds [y_s, x_{s+1}]: the target at time s and the exogenous values of the
NEXT time, so the forecast of y_{t+1} sees x_{t+1}. A forecast therefore needs the exogenous
values of every time it forecasts (for a multi-step forecast: all `horizon` future rows).

Everything the network sees is standardised with a `Scaler` fitted on the training part only;
forecasts are mapped back to the series' units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .._checks import BACKENDS, dataclass_from_dict, is_int, is_number
from .language_model import CELLS, _make_layers

__all__ = [
    "ForecasterConfig",
    "ForecasterModel",
    "Scaler",
    "make_inputs",
    "one_step_forecasts",
    "recursive_forecast",
    "sliding_windows",
]


@dataclass
class ForecasterConfig:
    """Architecture of a `ForecasterModel`; everything needed to rebuild it before loading."""

    n_exogenous: int = 0  # K: exogenous columns beside the target series
    cell: str = "lstm"  # one of CELLS: "rnn", "gru", "lstm", "jordan"
    hidden_size: int = 64  # H
    num_layers: int = 1
    dropout: float = 0.0  # between stacked layers and before the head
    backend: str = "auto"

    def __post_init__(self) -> None:
        _check_config(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ForecasterConfig:
        return dataclass_from_dict(cls, data, "forecaster model config")


def _check_config(config: ForecasterConfig) -> None:
    for name, minimum in (("n_exogenous", 0), ("hidden_size", 1), ("num_layers", 1)):
        value = getattr(config, name)
        if not is_int(value) or value < minimum:
            raise ValueError(f"ForecasterModel: {name} must be an int >= {minimum}; got {value!r}")
    if config.cell not in CELLS:
        raise ValueError(
            f"ForecasterModel: cell must be one of {', '.join(CELLS)}; got {config.cell!r}"
        )
    if config.backend not in BACKENDS:
        raise ValueError(
            f"ForecasterModel: backend must be one of {', '.join(BACKENDS)}; got {config.backend!r}"
        )
    dropout = config.dropout
    if not is_number(dropout) or not 0 <= dropout < 1:
        raise ValueError(f"ForecasterModel: dropout must be in [0, 1); got {dropout!r}")


class ForecasterModel(nn.Module):
    """Call: windows (B, W, C) standardised -> the next standardised target value (B,)."""

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = _make_layers(config, 1 + config.n_exogenous)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, 1)

    def forward(self, windows: Tensor) -> Tensor:
        C = 1 + self.config.n_exogenous
        if not isinstance(windows, Tensor) or windows.dim() != 3 or windows.shape[-1] != C:
            raise ValueError(
                f"ForecasterModel: windows must be a (B, W, {C}) tensor; got "
                f"{tuple(getattr(windows, 'shape', ()))}"
            )
        output, _ = self.layers(windows.to(self.head.weight.dtype))  # (B, W, H)
        return self.head(self.dropout(output[:, -1])).squeeze(-1)  # (B,)


class Scaler:
    """Per-column standardisation (x - mean) / std, fitted once on training rows.

    A constant column gets std 1, so it maps to 0 instead of dividing by zero.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, rows: np.ndarray) -> Scaler:
        rows = np.asarray(rows, dtype=np.float64)  # (N, C)
        std = rows.std(axis=0)
        return cls(rows.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, rows: np.ndarray) -> np.ndarray:
        return (np.asarray(rows, dtype=np.float64) - self.mean) / self.std

    def inverse_target(self, values: np.ndarray) -> np.ndarray:
        """Standardised target values (column 0) back in the series' units."""
        return np.asarray(values, dtype=np.float64) * self.std[0] + self.mean[0]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Scaler:
        return cls(np.array(data["mean"]), np.array(data["std"]))


def make_inputs(target: np.ndarray, exogenous: np.ndarray | None) -> np.ndarray:
    """The network's rows (N - 1, C) when exogenous (N, K) is given: row s = [y_s, x_{s+1}];
    without exogenous columns, (N, 1) rows [y_s]. A window of rows ending at row t forecasts
    y_{t+1}."""
    target = np.asarray(target, dtype=np.float64).reshape(-1, 1)  # (N, 1)
    if exogenous is None or exogenous.shape[1] == 0:
        return target
    return np.concatenate([target[:-1], exogenous[1:]], axis=1)  # (N - 1, 1 + K)


def sliding_windows(rows: np.ndarray, target: np.ndarray, window: int) -> tuple[Tensor, Tensor]:
    """Every window of `window` consecutive rows and the target value that follows it.

    rows (M, C) as from make_inputs, target (N,) with row s followed by target[s + 1].
    Returns inputs (M - window + 1, window, C) and targets (M - window + 1,) as float tensors
    (possibly empty when the series is shorter than window + 1).
    """
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    count = min(len(rows), len(target) - 1) - window + 1
    if count <= 0:
        return torch.zeros(0, window, rows.shape[1]), torch.zeros(0)
    view = np.lib.stride_tricks.sliding_window_view(rows[: count + window - 1], window, axis=0)
    inputs = torch.from_numpy(view.transpose(0, 2, 1).copy())  # (M', W, C), writable
    targets = torch.from_numpy(np.asarray(target[window : window + count], dtype=np.float64))
    return inputs.float(), targets.float()


# ---------------------------------------------------------------- forecasting with a trained model


def _check_exogenous(n_exogenous: int, exogenous, rows: int, what: str) -> np.ndarray | None:
    """exogenous as a (rows, K) float array, or None when the model has no exogenous columns."""
    if n_exogenous == 0:
        if exogenous is not None and np.asarray(exogenous).size:
            raise ValueError(
                f"forecast: the model was trained without exogenous columns; drop {what}"
            )
        return None
    if exogenous is None:
        raise ValueError(
            f"forecast: the model was trained with {n_exogenous} exogenous column(s), so {what} "
            f"must give them: an array of shape ({rows}, {n_exogenous})"
        )
    values = np.asarray(exogenous, dtype=np.float64).reshape(len(exogenous), -1)
    if values.shape != (rows, n_exogenous):
        raise ValueError(
            f"forecast: {what} must have shape ({rows}, {n_exogenous}); got {values.shape}"
        )
    return values


@torch.no_grad()
def one_step_forecasts(
    model: ForecasterModel,
    scaler: Scaler,
    window: int,
    target,
    exogenous=None,
    start: int | None = None,
) -> np.ndarray:
    """Forecasts of target[start:], each from the true values before it (the last `window`).

    target (N,), exogenous (N, K) aligned with it (the model's K columns, None for K = 0).
    start defaults to `window`, the first point with a full window before it. Returns (N - start,)
    forecasts in the series' units: the rolling-origin, one-step-ahead evaluation.
    """
    target = np.asarray(target, dtype=np.float64).reshape(-1)
    start = window if start is None else start
    if not window <= start <= len(target):
        raise ValueError(
            f"forecast: the first forecast needs {window} points before it (the window); got "
            f"start={start} in a series of {len(target)}"
        )
    K = model.config.n_exogenous
    exo = _check_exogenous(K, exogenous, len(target), "exogenous")
    columns = target[:, None] if exo is None else np.concatenate([target[:, None], exo], axis=1)
    scaled = scaler.transform(columns)  # (N, C)
    rows = make_inputs(scaled[:, 0], None if exo is None else scaled[:, 1:])
    # windows ending at rows start-1 .. N-2 forecast target[start] .. target[N-1]
    inputs, _ = sliding_windows(rows[start - window :], scaled[start - window :, 0], window)
    if len(inputs) == 0:
        return np.zeros(0)
    model.eval()
    return scaler.inverse_target(model(inputs).double().numpy())


@torch.no_grad()
def recursive_forecast(
    model: ForecasterModel,
    scaler: Scaler,
    window: int,
    history,
    horizon: int,
    history_exogenous=None,
    future_exogenous=None,
) -> np.ndarray:
    """The next `horizon` values after `history`, each forecast fed back as the next input.

    history (N,) with N >= window; with exogenous columns, history_exogenous (N, K) and
    future_exogenous (horizon, K): the values of the times being forecast, which the
    forecasts need (a model cannot forecast them itself). Returns (horizon,) in series units.
    """
    if not is_int(horizon) or horizon < 1:
        raise ValueError(f"forecast: horizon must be a positive int; got {horizon!r}")
    values = list(np.asarray(history, dtype=np.float64).reshape(-1))
    if len(values) < window:
        raise ValueError(
            f"forecast: the history must hold at least {window} points (the window); got "
            f"{len(values)}"
        )
    K = model.config.n_exogenous
    past = _check_exogenous(K, history_exogenous, len(values), "history_exogenous")
    future = _check_exogenous(K, future_exogenous, horizon, "future_exogenous")
    model.eval()
    forecasts = []
    for step in range(horizon):
        target = np.array(values[-window:])  # the last `window` points
        if K:
            # rows need x at the `window` times after each point: the last window-1 known ones
            # (from history or earlier steps) and the exogenous values of the time forecast now
            exo = np.concatenate([past, future[: step + 1]])[-window:]  # (window, K)
            rows = scaler.transform(np.concatenate([target[:, None], exo], axis=1))  # [y_s, x_s+1]
        else:
            rows = scaler.transform(target[:, None])
        prediction = model(torch.from_numpy(rows).float()[None])  # (1,)
        forecasts.append(float(scaler.inverse_target(prediction.double().numpy())[0]))
        values.append(forecasts[-1])
    return np.array(forecasts)
