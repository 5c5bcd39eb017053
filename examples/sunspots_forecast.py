"""Yearly sunspot numbers (1700-2008) forecast with rnnkit, against statsmodels' AR(9), in one run.

The series is the one bundled with statsmodels (`statsmodels.datasets.sunspots`, no download).
Both models see only the years before the last 31; each then makes one-step-ahead forecasts of
those 31 years, every forecast from the true values before it (rolling origin), and RMSE, MAE
and MASE are computed on the same 31 points:

  * rnnkit: the forecast task with its defaults (what `rnnkit train --task forecast --data
    sunspots.csv` does), through `rnnkit.tasks.SeriesForecaster`;
  * AR(9): `statsmodels.tsa.ar_model.AutoReg(train, lags=9)`, the textbook model for this
    series (its one-step RMSE here is about 17);
  * naive: next year = this year, the baseline MASE divides by.

Run from the repository root:

    .venv/bin/python examples/sunspots_forecast.py [--seeds 0 1 2] [--write-csv sunspots.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from statsmodels.datasets import sunspots
from statsmodels.tsa.ar_model import AutoReg

from rnnkit.tasks import SeriesForecaster, metrics

TEST_YEARS = 31
AR_LAGS = 9


def load_sunspots() -> tuple[np.ndarray, np.ndarray]:
    """(years, yearly mean sunspot numbers), 309 points from 1700 to 2008."""
    data = sunspots.load_pandas().data
    return data["YEAR"].to_numpy(dtype=int), data["SUNACTIVITY"].to_numpy(dtype=float)


def ar_one_step(series: np.ndarray, n_test: int, lags: int = AR_LAGS) -> np.ndarray:
    """One-step forecasts of the last n_test points by AR(lags) fitted on the points before.

    y_t = c + sum_i phi_i y_{t-i}, with the coefficients of AutoReg's least-squares fit and the
    true past values (the same rolling origin as the rnnkit forecasts).
    """
    result = AutoReg(series[:-n_test], lags=lags).fit()
    const, phi = result.params[0], result.params[1:]  # phi[i] multiplies y_{t-1-i}
    start = len(series) - n_test
    return np.array([const + phi @ series[t - lags : t][::-1] for t in range(start, len(series))])


def scores(actual: np.ndarray, forecasts: np.ndarray, train: np.ndarray) -> dict:
    return {
        "rmse": metrics.rmse(actual, forecasts),
        "mae": metrics.mae(actual, forecasts),
        "mase": metrics.mase(actual, forecasts, train),
    }


def compare(seed: int = 0, n_test: int = TEST_YEARS, **options) -> dict:
    """{"rnnkit", "ar9", "naive"} -> their scores on the last n_test years; `options` are
    rnnkit train options (none: the forecast task's defaults)."""
    _, series = load_sunspots()
    train = series[:-n_test]
    actual = series[-n_test:]
    model = SeriesForecaster(seed=seed, **options).fit(train)
    rnn = model.evaluate(series, holdout=n_test)
    return {
        "rnnkit": {k: rnn[k] for k in ("rmse", "mae", "mase")},
        "ar9": scores(actual, ar_one_step(series, n_test), train),
        "naive": scores(actual, series[-n_test - 1 : -1], train),
        "steps": model.metrics_["steps"],
        "train_time": model.metrics_["train_time"],
    }


def write_csv(path: Path) -> None:
    years, values = load_sunspots()
    rows = "".join(f"{y},{v}\n" for y, v in zip(years, values, strict=True))
    path.write_text("YEAR,SUNACTIVITY\n" + rows, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write-csv", type=Path, metavar="FILE", help="also write the series")
    args = parser.parse_args(argv)
    if args.write_csv:
        write_csv(args.write_csv)
    print(f"one-step forecasts of the last {TEST_YEARS} years (1978-2008)")
    print(f"{'model':<16} {'RMSE':>7} {'MAE':>7} {'MASE':>6}")
    rnn_rmse = []
    for seed in args.seeds:
        result = compare(seed)
        r = result["rnnkit"]
        rnn_rmse.append(r["rmse"])
        label = f"rnnkit seed {seed}"
        print(f"{label:<16} {r['rmse']:7.2f} {r['mae']:7.2f} {r['mase']:6.3f}", end="")
        print(f"   ({result['steps']} steps, {result['train_time']:.1f} s)")
    for name in ("ar9", "naive"):
        r = result[name]
        print(f"{name.upper():<16} {r['rmse']:7.2f} {r['mae']:7.2f} {r['mase']:6.3f}")
    print(f"rnnkit mean RMSE over {len(rnn_rmse)} seeds: {np.mean(rnn_rmse):.2f}")


if __name__ == "__main__":
    main()
