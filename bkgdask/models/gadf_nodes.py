"""Node grids of GADF BKG_2D/3D tables on which gammapy's interpolation reproduces a smooth rate.

gammapy's ``Background2D.evaluate`` interpolates ``log(rate)`` linearly
between bin centres (in ``log E`` along energy, in offset along offset),
extrapolates the same way between the outermost centres and the outer
edges, and returns 0 beyond the edges. A table of histogram rates therefore
misses a bin's integral wherever the rate is curved over a bin (at the
threshold, by 15-46 % on the tutorial binning), and explodes where a node is
0 or where it extrapolates far from the centres.

The grid built here stores instead the point values of a smooth rate
(:class:`bkgdask.smoothing.SmoothRate`) on fine, evenly spaced nodes, with
thin end bins so that nodes sit at the ends of the range: at the lowest and
highest energy, at the outer offset, and within ``end_fraction`` of a step
of 0 deg. gammapy then only interpolates between nearby nodes, and its
values integrated over any analysis bin inside the range equal the smooth
rate's integral to well under 1 % (linear interpolation of ``log(rate)``
errs by about ``h² |d² log(rate)| / 12`` averaged over a bin of node
spacing ``h``).

BKG_3D (gammapy's ``Background3D``, interpolated the same way, linearly in
FoV lon and lat) gets the same energy nodes; in FoV lon and lat its nodes
are the build's pixel centres, with the rate's point values. The pixels
(0.1° by default) are far smaller than the scale on which ``log(rate)``
bends across the field of view (spline segments of 1.5°, a falloff of
degrees): linear interpolation between centres ``h`` apart misses by at
most ``h² |∂² log(rate)| / 8`` (about 1e-3 at 0.1°), and gammapy's
extrapolation over the outermost half pixels stays as close.
"""

from __future__ import annotations

import numpy as np


def node_edges(lo: float, hi: float, n_steps: int, end_fraction: float = 1e-3) -> np.ndarray:
    """Bin edges whose (arithmetic) centres are ``lo``, ``n_steps - 1`` even steps, and ``hi``.

    The first and last bins have a width of ``2 · end_fraction`` of a step
    and are centred on ``lo`` and ``hi``; if ``lo`` is 0 (an offset), the
    first bin is ``[0, δ]`` so that no edge is negative.

    Parameters
    ----------
    lo, hi : float
        Range of the nodes, in the coordinate in which gammapy takes centres.
    n_steps : int
        Number of interior bins plus one, >= 2.
    end_fraction : float
        Half-width of the end bins, in units of the interior bin width.

    Returns
    -------
    numpy.ndarray
        ``n_steps + 2`` increasing edges.
    """
    if n_steps < 2 or not hi > lo:
        raise ValueError(f"need hi > lo and n_steps >= 2, got {lo}, {hi}, {n_steps}")
    half = end_fraction * (hi - lo) / n_steps
    start = 0.0 if lo == 0 else lo - half
    interior = np.linspace(lo + half, hi - half, n_steps)
    return np.concatenate([[start], interior, [hi + half]])


def energy_nodes(axis, energy_range=None, nodes_per_decade: int = 32, end_fraction=1e-3):
    """Energy edges of a node grid (TeV) and its nodes, the centres gammapy takes (geometric).

    Parameters
    ----------
    axis : RateAxis
        The fit's energy axis (TeV).
    energy_range : (float, float), optional
        TeV; default the fitted range.
    nodes_per_decade : int
        Energy nodes per decade.
    end_fraction : float
        Half-width of the end bins in units of a step (see :func:`node_edges`).
    """
    e_lo, e_hi = energy_range or axis.edges[[0, -1]]
    e_steps = max(2, int(np.ceil(np.log10(e_hi / e_lo) * nodes_per_decade)))
    log_edges = node_edges(np.log10(e_lo), np.log10(e_hi), e_steps, end_fraction)
    return 10**log_edges, 10 ** (0.5 * (log_edges[:-1] + log_edges[1:]))


def gadf_bkg_2d_nodes(
    model,
    energy_range=None,
    offset_range=None,
    nodes_per_decade: int = 32,
    offset_step: float = 0.05,
    end_fraction: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy and offset edges and node rates of a BKG_2D table for ``model``.

    Parameters
    ----------
    model : bkgdask.smoothing.SmoothRate
        A rate over (energy in TeV, offset in deg).
    energy_range : (float, float), optional
        TeV; default the model's fitted range. Beyond it the rate is the
        model's log-linear extrapolation.
    offset_range : (float, float), optional
        deg; default the model's fitted range.
    nodes_per_decade : int
        Energy nodes per decade.
    offset_step : float
        Offset node spacing, deg.
    end_fraction : float
        Half-width of the end bins in units of a step (see :func:`node_edges`).

    Returns
    -------
    energy_edges : numpy.ndarray
        TeV.
    offset_edges : numpy.ndarray
        deg.
    rate : numpy.ndarray
        Rate at the bin centres as gammapy computes them (geometric in
        energy, arithmetic in offset), shape (n_energy, n_offset), in the
        model's unit; ready for :func:`bkgdask.models.bkg2d.bkg_2d_hdu`.
    """
    energy_axis, offset_axis = model.axes
    energy_edges, energies = energy_nodes(energy_axis, energy_range, nodes_per_decade, end_fraction)
    o_lo, o_hi = offset_range or offset_axis.edges[[0, -1]]
    o_steps = max(2, int(np.ceil((o_hi - o_lo) / offset_step)))
    offset_edges = node_edges(o_lo, o_hi, o_steps, end_fraction)
    offset_nodes = 0.5 * (offset_edges[:-1] + offset_edges[1:])
    rate = model.rate_at(energies[:, None], offset_nodes[None, :])
    return energy_edges, offset_edges, rate


def gadf_bkg_3d_nodes(
    model, energy_range=None, nodes_per_decade: int = 32, end_fraction: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Energy, FoV lon and FoV lat edges and node rates of a BKG_3D table for ``model``.

    Parameters
    ----------
    model : bkgdask.models.smoothing.SmoothRate
        A rate over (energy in TeV, FoV lon and lat in deg).
    energy_range, nodes_per_decade, end_fraction
        As :func:`gadf_bkg_2d_nodes`.

    Returns
    -------
    energy_edges, lon_edges, lat_edges : numpy.ndarray
        TeV, deg (the model's own FoV bins), deg.
    rate : numpy.ndarray
        Rate at the nodes, shape (n_energy, n_lon, n_lat), in the model's
        unit; ready for :func:`bkgdask.models.bkg3d.bkg_3d_hdu`.
    """
    energy_axis, lon_axis, lat_axis = model.axes
    energy_edges, energies = energy_nodes(energy_axis, energy_range, nodes_per_decade, end_fraction)
    lon, lat = lon_axis.edges, lat_axis.edges
    centres = [0.5 * (e[:-1] + e[1:]) for e in (lon, lat)]
    rate = model.rate_at(
        energies[:, None, None], centres[0][None, :, None], centres[1][None, None, :]
    )
    return energy_edges, lon, lat, rate
