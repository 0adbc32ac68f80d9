"""What every figure of a bundle shares: pyplot, bin lookup, statistical errors, titles, marks.

matplotlib (Agg backend) is imported only when drawing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..models import Model

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: (bin edges, rate in s-1 MeV-1 sr-1, its statistical error in s-1 MeV-1 sr-1)
Curve = tuple[np.ndarray, np.ndarray, np.ndarray]
RATE_LABEL = "rate (s$^{-1}$ MeV$^{-1}$ sr$^{-1}$)"


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bin_index(edges: np.ndarray, value: float, name: str, unit: str) -> int:
    """Index of the half-open bin ``[lo, hi)`` of ``edges`` that contains ``value``."""
    if not (np.isfinite(value) and edges[0] <= value < edges[-1]):
        raise ConfigError(
            f"{name} {value} {unit} is outside the model's {name} bins "
            f"[{edges[0]:g}, {edges[-1]:g}) {unit}"
        )
    return int(np.searchsorted(edges, value, side="right") - 1)


def _error(rate: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Statistical error rate / sqrt(counts); NaN where there are no counts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, rate / np.sqrt(counts), np.nan)


def model_error(model: Model) -> np.ndarray:
    """Statistical error of the rate: the fit's for a smoothed model, else rate / sqrt(counts).

    s-1 MeV-1 sr-1; NaN where a histogram bin has no counts.
    """
    if model.smoothed and model.error is not None:
        return model.error
    return _error(model.rate, model.counts)


def model_title(model: Model) -> str:
    return (
        f"{model.name}: zenith [{model.zenith_lo:g}, {model.zenith_hi:g}) deg, "
        f"{len(model.obs_ids)} runs, {model.observation_time / 3600:.2f} h"
    )


def mark_empty(ax: Axes, centres, rate, color) -> None:
    """Mark bins whose rate is 0 or missing: open triangles at the bottom of the Axes."""
    empty = ~(np.isfinite(rate) & (rate > 0))
    if np.any(empty):
        ax.plot(
            centres[empty],
            np.full(empty.sum(), 0.03),
            "v",
            mfc="none",
            color=color,
            transform=ax.get_xaxis_transform(),
        )


def on_axes(draw: Callable, *args) -> Callable[[Figure], object]:
    """A figure's drawing function: ``draw(ax, *args)`` on the figure's one Axes."""
    return lambda fig: draw(fig.subplots(), *args)


def draw_curves(ax: Axes, model: Model, values, curve, edges, name, unit, fmt) -> list[Curve]:
    """Step curves with error bars, one per distinct bin of ``edges`` that ``values`` select.

    Bins with a zero or missing rate are marked (:func:`_mark_empty`).
    """
    curves: dict[int, tuple] = {}
    for value in values:
        i = bin_index(edges, value, name, unit)
        if i in curves:  # two values in one bin: one curve
            continue
        x_edges, rate, error = curves[i] = curve(model, value)
        label = f"{name} {edges[i]:{fmt}}–{edges[i + 1]:{fmt}} {unit}"
        step = ax.stairs(rate, x_edges, baseline=None, lw=1.5, label=label)
        lo, hi = x_edges[:-1], x_edges[1:]
        centres = np.sqrt(lo * hi) if name == "offset" else 0.5 * (lo + hi)
        ok = np.isfinite(error) & (rate > 0)
        color = step.get_edgecolor()
        ax.errorbar(centres[ok], rate[ok], yerr=error[ok], fmt="none", color=color, lw=1)
        mark_empty(ax, centres, rate, color)
    ax.set_yscale("log")
    ax.margins(y=0.25)  # headroom for the legend
    ax.set_ylabel(RATE_LABEL)
    ax.set_title(model_title(model), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    return list(curves.values())
