"""The diagnostics' pictures (matplotlib, Agg, no pyplot): gradient flow and gate saturation."""

from __future__ import annotations

import os

from torch import Tensor

__all__ = ["plot_gate_saturation", "plot_gradient_flow"]


def _figure(width: float = 7.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def plot_gradient_flow(
    path: str | os.PathLike,
    curves: dict[str, Tensor],
    *,
    title: str,
    reverse: dict[str, bool] | None = None,
) -> None:
    """‖∂L/∂h_t‖ against the distance from the loss's step (log scale), one line per curve.
    `curves` maps a label to a (T,) norm in time order; `reverse[label]` marks a reverse
    sweep, whose loss enters at t = 0, so its distance runs the other way."""
    figure = _figure()
    axes = figure.add_subplot(1, 1, 1)
    for label, norms in curves.items():
        values = norms.detach().double().cpu()
        if not (reverse or {}).get(label, False):
            values = values.flip(0)  # distance 0 is the last step
        floor = values[values > 0].min() if (values > 0).any() else 1.0
        axes.semilogy(range(len(values)), values.clamp_min(float(floor) * 1e-3), label=label)
    axes.set_xlabel("distance from the step the loss reads (steps)")
    axes.set_ylabel("‖∂L/∂h_t‖")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def plot_gate_saturation(path: str | os.PathLike, over_time: dict[str, Tensor], *, title: str):
    """The fraction of saturated units of each gate at every step, one line per gate."""
    figure = _figure()
    axes = figure.add_subplot(1, 1, 1)
    for label, fraction in over_time.items():
        axes.plot(range(len(fraction)), fraction.detach().cpu().numpy(), label=label)
    axes.set_xlabel("time step")
    axes.set_ylabel("fraction of units saturated")
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if over_time:
        axes.legend(fontsize="small", ncol=2)
    else:
        axes.text(0.5, 0.5, "this cell reports no gates", ha="center", transform=axes.transAxes)
    figure.tight_layout()
    figure.savefig(path)
