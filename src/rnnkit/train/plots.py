"""The run's plots (matplotlib, Agg, no pyplot): loss_curve.png and grad_norm.png."""

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


def plot_grad_norm(path: str | os.PathLike, rows: list[dict], clip: float) -> None:
    """grad_norm.png: the gradient's global norm before clipping against the step (its mean
    and largest value over each logged stretch), log scale, with the --clip threshold."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    points = [r for r in rows if r.get("grad_norm") is not None and r["grad_norm"] > 0]
    if points:
        steps = [r["step"] for r in points]
        axes.plot(steps, [r["grad_norm"] for r in points], color="tab:blue", label="mean")
        if all("grad_norm_max" in r for r in points):
            axes.plot(
                steps,
                [r["grad_norm_max"] for r in points],
                color="tab:blue",
                alpha=0.35,
                linewidth=0.8,
                label="largest",
            )
        axes.set_yscale("log")
    if clip > 0:
        axes.axhline(clip, color="tab:red", linestyle="--", linewidth=1, label=f"--clip {clip:g}")
    axes.set_xlabel("step")
    axes.set_ylabel("gradient L2 norm before clipping")
    axes.grid(alpha=0.3, which="both")
    if points or clip > 0:
        axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic.write_bytes(path, buffer.getvalue())
