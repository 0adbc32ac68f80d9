"""Figures of offset models (BKG_2D): rate against energy and offset, rate and error images.

The ``curve_*`` functions return exactly the numbers the ``draw_*`` functions
put on an Axes. matplotlib (Agg backend) is imported only when drawing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from ..models import Model
from ..quantities import unit_factor
from .common import RATE_LABEL, Curve, bin_index, draw_curves, model_error, model_title, on_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..io.index_table import IndexTable

#: Rate against energy is drawn as E^ENERGY_POWER x rate (E in TeV), near flat for a background.
ENERGY_POWER = 2.7


def _curve(model: Model, axis: str, value: float) -> Curve:
    """Rate along one axis in the bin of the other axis that contains ``value``."""
    b = model.binning
    error = model_error(model)
    if axis == "energy":  # along energy, in an offset bin
        index = bin_index(b["offset"], value, "offset", "deg")
        return b["energy"], model.rate[:, index], error[:, index]
    index = bin_index(b["energy"], value, "energy", "TeV")  # along offset, in an energy bin
    return b["offset"], model.rate[index, :], error[index, :]


def curve_rate_vs_energy(model: Model, offset_deg: float, energy_power: float = 0.0) -> Curve:
    """Rate against energy in the offset bin containing ``offset_deg``.

    Parameters
    ----------
    model : Model
        A model of a bundle.
    offset_deg : float
        FoV offset, deg; outside the offset bins raises ConfigError.
    energy_power : float
        Rate and error are multiplied by ``E_c ** energy_power`` (``E_c``
        the bin's geometric centre, TeV); the figures use :data:`ENERGY_POWER`.

    Returns
    -------
    energy_edges, rate, error : numpy.ndarray
        Energy bin edges (TeV); rate in each energy bin (s-1 MeV-1 sr-1, times
        TeV^energy_power); its statistical error (same unit, see :func:`model_error`).
    """
    edges, rate, error = _curve(model, "energy", offset_deg)
    weight = np.sqrt(edges[:-1] * edges[1:]) ** energy_power
    return edges, rate * weight, error * weight


def curve_rate_vs_offset(model: Model, energy_tev: float) -> Curve:
    """Rate against FoV offset in the energy bin containing ``energy_tev``.

    Same as :func:`curve_rate_vs_energy` with the axes swapped: offset edges (deg),
    rate and its error (s-1 MeV-1 sr-1); an energy outside the bins raises ConfigError.
    """
    return _curve(model, "offset", energy_tev)


def draw_rate_vs_energy(
    ax: Axes, model: Model, offsets_deg: Sequence[float], safe_threshold_tev: float | None = None
) -> list[Curve]:
    """Draw E^2.7 x rate against energy (log-log) with error bars, one step curve per offset bin.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on; ``ax.patches[k]`` is the step curve of the k-th curve returned.
    model : Model
        A model of a bundle.
    offsets_deg : sequence of float
        FoV offsets, deg, each selecting its bin (one curve per distinct bin).
    safe_threshold_tev : float, optional
        Safe energy threshold (TeV), drawn as a dotted vertical line.

    Returns
    -------
    list of tuple
        :func:`curve_rate_vs_energy` (``energy_power=ENERGY_POWER``) of each
        distinct offset bin, in order.
    """
    edges = model.binning["offset"]
    scaled = partial(curve_rate_vs_energy, energy_power=ENERGY_POWER)
    curves = draw_curves(ax, model, offsets_deg, scaled, edges, "offset", "deg", ".2f")
    ax.set_xscale("log")
    ax.set_xlabel("reconstructed energy (TeV)")
    ax.set_ylabel(f"E$^{{{ENERGY_POWER}}}$ x {RATE_LABEL} (TeV$^{{{ENERGY_POWER}}}$)")
    if safe_threshold_tev is not None and np.isfinite(safe_threshold_tev):
        ax.axvline(safe_threshold_tev, ls=":", color="k", lw=1, label="safe threshold")
        ax.legend(fontsize=8)
    return curves


def draw_rate_vs_offset(ax: Axes, model: Model, energies_tev: Sequence[float]) -> list[Curve]:
    """Draw rate (log) against FoV offset with error bars, one step curve per energy bin.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on; ``ax.patches[k]`` is the step curve of the k-th curve returned.
    model : Model
        A model of a bundle.
    energies_tev : sequence of float
        Energies, TeV, each selecting its bin (one curve per distinct bin).

    Returns
    -------
    list of tuple
        :func:`curve_rate_vs_offset` of each distinct energy bin, in order.
    """
    edges = model.binning["energy"]
    curves = draw_curves(
        ax, model, energies_tev, curve_rate_vs_offset, edges, "energy", "TeV", ".3g"
    )
    ax.set_xlabel("FoV offset (deg)")
    return curves


def draw_image(ax: Axes, model: Model, quantity: str = "rate"):
    """Draw the rate (log colour scale) or its relative error 1/sqrt(counts) over the bins.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on: energy (TeV, log) on x, FoV offset (deg) on y.
    model : Model
        A model of a bundle.
    quantity : {"rate", "relative-error"}
        Rate (s-1 MeV-1 sr-1, masked where 0) or 1/sqrt(counts) (masked where counts == 0).

    Returns
    -------
    matplotlib.collections.QuadMesh
        The mesh; its data is the (offset, energy) array drawn.
    """
    from matplotlib.colors import LogNorm

    if quantity == "rate":
        values = np.ma.masked_less_equal(model.rate, 0)
        norm = LogNorm() if values.count() else None
        label = RATE_LABEL
    elif quantity == "relative-error":
        counts = model.counts
        with np.errstate(divide="ignore"):
            values = np.ma.masked_where(counts <= 0, 1 / np.sqrt(counts))
        norm, label = None, "relative statistical error 1/√counts"
    else:
        raise ValueError(f"unknown quantity {quantity!r}: 'rate' or 'relative-error'")
    mesh = ax.pcolormesh(
        model.binning["energy"], model.binning["offset"], values.T, norm=norm, shading="flat"
    )
    ax.set_xscale("log")
    ax.set_xlabel("reconstructed energy (TeV)")
    ax.set_ylabel("FoV offset (deg)")
    ax.set_title(model_title(model), fontsize=9)
    ax.figure.colorbar(mesh, ax=ax, label=label)
    return mesh


def safe_threshold(obs_index: IndexTable, model: Model) -> float | None:
    """Median ``SAFE_ENERGY_LO`` (TeV) of the model's runs; None if the OBS_INDEX has none."""
    if "SAFE_ENERGY_LO" not in obs_index:
        return None
    scale = unit_factor(obs_index.units["SAFE_ENERGY_LO"] or "TeV", "TeV")
    runs = np.isin(obs_index["OBS_ID"], model.obs_ids)
    values = np.asarray(obs_index["SAFE_ENERGY_LO"], dtype=np.float64)[runs] * scale
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def offset_figures(
    model: Model, obs_index: IndexTable, offsets_deg: Sequence[float], energies_tev: Sequence[float]
) -> list[tuple[str, Callable]]:
    """The figures of one BKG_2D model: (file suffix, drawing function of a Figure).

    ``rate-vs-energy`` (at ``offsets_deg``, the runs' median safe threshold
    marked), ``rate-vs-offset`` (at ``energies_tev``), ``image`` and
    ``relative-error``. The values are checked here: one outside the model's
    bins raises ConfigError before anything is drawn.
    """
    for offset in offsets_deg:
        bin_index(model.binning["offset"], offset, "offset", "deg")
    for energy in energies_tev:
        bin_index(model.binning["energy"], energy, "energy", "TeV")
    threshold = safe_threshold(obs_index, model)
    return [
        ("rate-vs-energy", on_axes(draw_rate_vs_energy, model, offsets_deg, threshold)),
        ("rate-vs-offset", on_axes(draw_rate_vs_offset, model, energies_tev)),
        ("image", on_axes(draw_image, model, "rate")),
        ("relative-error", on_axes(draw_image, model, "relative-error")),
    ]
