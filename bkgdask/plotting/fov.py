"""Figures of field-of-view models (BKG_3D): rate and relative-error images, latitude profiles.

Per model, ``fov``: for each energy bin asked for, the rate over (fov_lon,
fov_lat) with its relative statistical error beside it (pixels without
counts hatched, resp. grey); for ALTAZ models also ``lat-profile``: the rate
along fov_lat (the altitude direction) near fov_lon = 0 with its error, and
the ratio of the rate above to the rate below the centre, where a gradient
with altitude shows. :func:`fov_band` and :func:`lat_profile` return exactly
the numbers drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from ..models import Model
from .common import RATE_LABEL, Curve, bin_index, draw_curves, model_error, model_title

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..io.index_table import IndexTable

#: Half width (deg) of the strip about fov_lon = 0 that :func:`lat_profile` averages over.
STRIP_DEG = 0.5
#: Colour of pixels without a value (no counts) in the images.
EMPTY_COLOUR = "0.8"


def fov_band(model: Model, energy_tev: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rate and relative error over the FoV in the energy bin that contains ``energy_tev``.

    Returns
    -------
    rate : numpy.ndarray
        (n_lon, n_lat), s-1 MeV-1 sr-1.
    relative_error : numpy.ndarray
        (n_lon, n_lat): the model's error (:func:`~.common.model_error`) over
        its rate; NaN in empty pixels.
    empty : numpy.ndarray of bool
        (n_lon, n_lat): pixels without counts (or without a positive rate).
    """
    index = bin_index(model.binning["energy"], energy_tev, "energy", "TeV")
    rate, error = model.rate[index], model_error(model)[index]
    empty = ~(np.asarray(model.counts)[index] > 0) | ~(rate > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(empty, np.nan, error / rate)
    return rate, relative, empty


def _band_label(model: Model, energy_tev: float) -> str:
    edges = model.binning["energy"]
    index = bin_index(edges, energy_tev, "energy", "TeV")
    return f"{edges[index]:.3g}–{edges[index + 1]:.3g} TeV"


def draw_fov_image(ax: Axes, model: Model, energy_tev: float, quantity: str = "rate"):
    """Draw the rate (log colours) or its relative error over fov_lon x fov_lat in one energy bin.

    Pixels without counts are hatched on the rate image and grey on the
    relative-error image; the title counts them.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on: fov_lon (deg) on x, fov_lat (deg) on y.
    model : Model
        A BKG_3D model.
    energy_tev : float
        Selects the energy bin.
    quantity : {"rate", "relative-error"}

    Returns
    -------
    matplotlib.collections.QuadMesh
        The mesh; its array is the (lat, lon) image drawn, masked where empty
        (relative error) or not positive (rate).
    """
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    rate, relative, empty = fov_band(model, energy_tev)
    if quantity == "rate":
        values = np.ma.masked_where(~(rate > 0), rate)
        norm, label, cmap = (LogNorm() if values.count() else None), RATE_LABEL, "viridis"
    elif quantity == "relative-error":
        values = np.ma.masked_invalid(relative)
        norm, label, cmap = None, "relative statistical error", "magma"
    else:
        raise ValueError(f"unknown quantity {quantity!r}: 'rate' or 'relative-error'")
    cmap = colormaps[cmap].with_extremes(bad=EMPTY_COLOUR)
    lon, lat = model.binning["fov_lon"], model.binning["fov_lat"]
    mesh = ax.pcolormesh(lon, lat, values.T, norm=norm, cmap=cmap, shading="flat")
    if quantity == "rate" and empty.any():  # hatch exactly the empty pixels
        hatched = np.ma.masked_array(np.zeros(empty.T.shape), mask=~empty.T)
        ax.pcolor(lon, lat, hatched, hatch="xxx", facecolor="none", edgecolor="0.2", lw=0)
    ax.set_aspect("equal")
    ax.set_xlabel("FoV lon (deg)")
    ax.set_ylabel("FoV lat (deg)")
    what = "rate" if quantity == "rate" else "relative error"
    marked = "hatched" if quantity == "rate" else "grey"
    note = f", {int(empty.sum())} empty pixels ({marked})" if empty.any() else ""
    ax.set_title(f"{what}, {_band_label(model, energy_tev)}{note}", fontsize=9)
    ax.figure.colorbar(mesh, ax=ax, label=label, shrink=0.85)
    return mesh


def _distinct_bins(model: Model, energies_tev: Sequence[float]) -> list[float]:
    """The first of ``energies_tev`` in each distinct energy bin (ConfigError if outside)."""
    seen, out = set(), []
    for energy in energies_tev:
        index = bin_index(model.binning["energy"], energy, "energy", "TeV")
        if index not in seen:
            seen.add(index)
            out.append(energy)
    return out


def draw_fov_images(fig: Figure, model: Model, energies_tev: Sequence[float]) -> list:
    """One row per distinct energy bin: the rate image and, beside it, its relative error.

    Returns the meshes, row by row (rate, relative error).
    """
    energies = _distinct_bins(model, energies_tev)
    fig.set_size_inches(10.5, 0.6 + 4.0 * len(energies))
    axes = fig.subplots(len(energies), 2, squeeze=False)
    meshes = []
    for row, energy in zip(axes, energies):
        meshes += [draw_fov_image(row[0], model, energy, "rate")]
        meshes += [draw_fov_image(row[1], model, energy, "relative-error")]
    fig.suptitle(model_title(model), fontsize=10)
    return meshes


def _strip(model: Model, strip_deg: float) -> np.ndarray:
    """The fov_lon bins whose centres lie within ``strip_deg`` of 0 (the nearest one if none)."""
    lon = model.binning["fov_lon"]
    centres = 0.5 * (lon[:-1] + lon[1:])
    inside = np.abs(centres) <= strip_deg
    return inside if inside.any() else np.abs(centres) == np.abs(centres).min()


def lat_profile(model: Model, energy_tev: float, strip_deg: float = STRIP_DEG) -> Curve:
    """Rate along fov_lat in the energy bin containing ``energy_tev``, about fov_lon = 0.

    The exposure-weighted mean over the fov_lon bins of the strip
    ``|fov_lon| <= strip_deg`` (:data:`STRIP_DEG`), and its error.

    Returns
    -------
    lat_edges, rate, error : numpy.ndarray
        deg; s-1 MeV-1 sr-1 per fov_lat bin (rate 0 and error NaN where the strip has no counts).
    """
    index = bin_index(model.binning["energy"], energy_tev, "energy", "TeV")
    columns = _strip(model, strip_deg)
    weight = np.asarray(model.exposure)[index][columns]  # (n_strip, n_lat)
    rate = model.rate[index][columns]
    error = np.nan_to_num(model_error(model)[index][columns])
    counts = np.asarray(model.counts)[index][columns].sum(axis=0)
    total = weight.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(total > 0, (weight * rate).sum(axis=0) / total, 0.0)
        sigma = np.sqrt(((weight * error) ** 2).sum(axis=0)) / total
    return model.binning["fov_lat"], mean, np.where(counts > 0, sigma, np.nan)


def lat_ratio(model: Model, energy_tev: float, strip_deg: float = STRIP_DEG) -> Curve:
    """Rate above over rate below the centre, :func:`lat_profile` at +lat over that at −lat.

    Needs fov_lat edges symmetric about 0.

    Returns
    -------
    lat_edges, ratio, error : numpy.ndarray
        The upper half's edges (deg); the ratio and its error (NaN where either side is empty).
    """
    edges, rate, error = lat_profile(model, energy_tev, strip_deg)
    half = rate.size // 2
    upper, lower = slice(rate.size - half, None), slice(half - 1, None, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = rate[upper] / rate[lower]
        relative = np.hypot(error[upper] / rate[upper], error[lower] / rate[lower])
    ok = np.isfinite(ratio) & np.isfinite(relative) & (rate[upper] > 0) & (rate[lower] > 0)
    return edges[-half - 1 :], np.where(ok, ratio, np.nan), np.where(ok, ratio * relative, np.nan)


def _symmetric(edges: np.ndarray) -> bool:
    return bool(np.allclose(edges, -edges[::-1], atol=1e-9))


def draw_lat_profiles(fig: Figure, model: Model, energies_tev: Sequence[float]) -> list[Curve]:
    """Rate along fov_lat about fov_lon = 0 per energy bin; below, rate above / below the centre.

    The ratio panel needs fov_lat edges symmetric about 0 (else it is left out).
    Returns the :func:`lat_profile` curves, then the :func:`lat_ratio` ones.
    """
    energies = _distinct_bins(model, energies_tev)
    symmetric = _symmetric(model.binning["fov_lat"])
    fig.set_size_inches(7, 8 if symmetric else 4.5)
    axes = fig.subplots(2 if symmetric else 1, 1, squeeze=False)[:, 0]
    edges = model.binning["energy"]
    profile = partial(_strip_profile, lat_profile)
    curves = draw_curves(axes[0], model, energies, profile, edges, "energy", "TeV", ".3g")
    axes[0].set_xlabel("FoV lat (deg), altitude direction")
    lon, strip = model.binning["fov_lon"], _strip(model, STRIP_DEG)
    reach = max(np.abs(lon[:-1][strip]).max(), np.abs(lon[1:][strip]).max())
    axes[0].set_title(f"{model_title(model)}\nmean over |fov_lon| <= {reach:g} deg", fontsize=9)
    if not symmetric:
        return curves
    ratio = partial(_strip_profile, lat_ratio)
    curves += draw_curves(axes[1], model, energies, ratio, edges, "energy", "TeV", ".3g")
    axes[1].set_yscale("linear")
    axes[1].axhline(1.0, color="0.4", lw=0.8, ls="--")
    axes[1].set_xlabel("|FoV lat| (deg)")
    axes[1].set_ylabel("rate at +lat / rate at −lat")
    axes[1].set_title("above over below the FoV centre", fontsize=9)
    return curves


def _strip_profile(curve: Callable, model: Model, energy_tev: float) -> Curve:
    return curve(model, energy_tev, STRIP_DEG)


def fov_figures(
    model: Model, obs_index: IndexTable, offsets_deg: Sequence[float], energies_tev: Sequence[float]
) -> list[tuple[str, Callable]]:
    """The figures of one BKG_3D model: (file suffix, drawing function of a Figure).

    ``fov`` (images at ``energies_tev``) and, for ALTAZ models, ``lat-profile``.
    The energies are checked here (ConfigError outside the model's bins);
    ``obs_index`` and ``offsets_deg`` are not used.
    """
    _distinct_bins(model, energies_tev)
    figures = [("fov", partial(draw_fov_images, model=model, energies_tev=energies_tev))]
    if getattr(model.kind, "alignment", None) == "ALTAZ":
        draw = partial(draw_lat_profiles, model=model, energies_tev=energies_tev)
        figures.append(("lat-profile", draw))
    return figures
