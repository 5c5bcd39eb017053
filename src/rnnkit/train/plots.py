"""loss_curve.png: training and held-out loss against the step (matplotlib, Agg, no pyplot)."""

from __future__ import annotations

import io
import os

from .. import _atomic as atomic


def plot_loss_curve(
    path: str | os.PathLike, train_curve: list[list[float]], evaluations: list[dict]
) -> None:
    """Write the plot atomically. train_curve: [step, mean loss] points; evaluations: log rows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if train_curve:
        steps, losses = zip(*train_curve, strict=True)
        axes.plot(steps, losses, color="tab:blue", linewidth=1.2, label="train")
    val = [(row["step"], row["val_loss"]) for row in evaluations if row.get("val_loss") is not None]
    if val:
        steps, losses = zip(*val, strict=True)
        axes.plot(steps, losses, "o-", color="tab:orange", linewidth=1.5, label="held-out")
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy (nats per token)")
    axes.grid(alpha=0.3)
    if train_curve or val:
        axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic.write_bytes(path, buffer.getvalue())
