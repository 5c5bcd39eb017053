"""Seed 000's next-number example through rnnkit's forecast task: 1, 2, 3, 4 -> 5.

examples/seed000_next_number.py builds seed 000's model by hand (an rnnkit.RNN and a linear
readout). Here the same question goes to the forecast task, which does the windowing, the
scaling and the training itself: the series 1, 2, ..., 20 is cut into windows of 3 numbers,
each followed by the next one, and the model is asked for the number after [1, 2, 3, 4] (it
reads the last 3) and after [5, 6, 7].

The command-line equivalent (numbers.csv holds 1..20, one per line):

    rnnkit train --task forecast --data numbers.csv --out runs/next --window 3 --holdout 2 \
        --hidden-size 16 --lr 0.01 --max-steps 400
    rnnkit predict --checkpoint runs/next --data query.csv --horizon 3    # query: 1 2 3 4

Run from the repository root:

    .venv/bin/python examples/seed000_forecast_task.py
"""

from __future__ import annotations

from rnnkit.tasks import SeriesForecaster

SERIES = list(range(1, 21))
OPTIONS = {"window": 3, "holdout": 2, "hidden_size": 16, "lr": 1e-2, "max_steps": 400, "seed": 0}


def train(**overrides) -> SeriesForecaster:
    """The forecast task on 1..20 with windows of 3 (a few seconds)."""
    return SeriesForecaster(**{**OPTIONS, **overrides}).fit(SERIES)


def main() -> None:
    model = train()
    for history in ([1, 2, 3, 4], [5, 6, 7]):
        print(f"Input: {history}, Predicted Next Number: {model.forecast(history, 1)[0]:.2f}")
    print(f"and the three after [1, 2, 3, 4]: {model.forecast([1, 2, 3, 4], 3).round(2).tolist()}")


if __name__ == "__main__":
    main()
