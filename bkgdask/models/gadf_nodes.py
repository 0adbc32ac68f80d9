"""Node grids of GADF BKG_2D/3D tables on which gammapy's interpolation reproduces a smooth rate.

gammapy's ``Background2D.evaluate`` interpolates ``log(rate)`` linearly
between bin centres (in ``log E`` along energy, in offset along offset),
extrapolates the same way between the outermost centres and the outer
edges, and returns 0 beyond the edges. A table of histogram rates therefore
misses a bin's integral wherever the rate is curved over a bin (at the
threshold, by 15-46 % on the tutorial binning), and explodes where a node is
0 or where it extrapolates far from the centres.

The grid built here stores instead the point values of a smooth rate
(:class:`bkgdask.models.smooth_rate.SmoothRate`) on fine, evenly spaced nodes, with
thin end bins so that nodes sit at the ends of the range: at the lowest and
highest energy, at the outer offset, and within ``end_fraction`` of a step
of 0 deg. gammapy then only interpolates between nearby nodes, and its
values integrated over any analysis bin inside the range equal the smooth
rate's integral to well under 1 % (linear interpolation of ``log(rate)``
errs by about ``h² |d² log(rate)| / 12`` averaged over a bin of node
spacing ``h``).

BKG_3D (gammapy's ``Background3D``, interpolated the same way, linearly in
FoV lon and lat) gets energy nodes at least as dense, closer where the
spectrum bends (:func:`energy_nodes`: a steep threshold). In FoV lon and
lat its nodes are the build's pixel centres, with the rate's point values:
the pixels (0.1° by default) are far smaller than the scale on which
``log(rate)`` bends across the field of view (spline segments of 1.5°, a
falloff of degrees), so linear interpolation between centres misses by
``h² |∂² log(rate)| / 12`` on average, 0.1-0.5 % on H.E.S.S. DR1 (1° analysis
pixels within 0.9 % of the model in every 0.1-decade energy bin), and
gammapy's extrapolation over the outermost half pixels stays as close.
"""

from __future__ import annotations

import numpy as np

#: Energies per decade at which :func:`energy_nodes` samples how ``log(rate)`` bends.
FINE_PER_DECADE = 256


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


def energy_nodes(
    axis,
    energy_range=None,
    nodes_per_decade: int = 32,
    end_fraction: float = 1e-3,
    log_rate=None,
    tolerance: float = 2e-3,
):
    """Energy edges of a node grid (TeV) and its nodes, the centres gammapy takes (geometric).

    Parameters
    ----------
    axis : RateAxis
        The fit's energy axis (TeV).
    energy_range : (float, float), optional
        TeV; default the fitted range.
    nodes_per_decade : int
        Energy nodes per decade (the most widely spaced, with ``log_rate``).
    end_fraction : float
        Half-width of the end bins in units of a step (see :func:`node_edges`).
    log_rate : callable, optional
        ``log(rate)`` at energies (TeV, 1-D) over a sample of the other axes,
        shape (n_energy, ...). Then the steps ``h`` (in log10 E) shrink where
        it bends, to ``h² c / 12 <= tolerance`` with ``c`` the largest
        ``|∂² log(rate) / ∂(log10 E)²|`` of the sample: linear interpolation
        between nodes then errs by less than ``tolerance`` averaged over a
        step (at a steep threshold the spectrum bends 20 times faster than
        elsewhere).
    tolerance : float
        See ``log_rate``.
    """
    e_lo, e_hi = energy_range or axis.edges[[0, -1]]
    lo, hi = np.log10(e_lo), np.log10(e_hi)
    if log_rate is None:
        e_steps = max(2, int(np.ceil((hi - lo) * nodes_per_decade)))
        log_edges = node_edges(lo, hi, e_steps, end_fraction)
        return 10**log_edges, 10 ** (0.5 * (log_edges[:-1] + log_edges[1:]))
    fine = np.linspace(lo, hi, int(np.ceil((hi - lo) * FINE_PER_DECADE)) + 1)
    bend = np.diff(log_rate(10**fine), n=2, axis=0) / np.diff(fine[:2]) ** 2
    bend = np.abs(bend.reshape(bend.shape[0], -1)).max(axis=1)
    step = np.sqrt(12 * tolerance / np.maximum(np.pad(bend, 1, mode="edge"), 1e-12))
    density = 1 / np.minimum(step, 1 / nodes_per_decade)  # nodes per unit log10 E
    count = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(fine))])
    n_steps = max(2, int(np.ceil(count[-1])))
    u = node_edges(1.0, 2.0, n_steps, end_fraction) - 1.0  # thin end bins around 0 and 1
    inner = np.interp(u[1:-1] * count[-1], count, fine)
    log_edges = np.concatenate([[2 * lo - inner[0]], inner, [2 * hi - inner[-1]]])
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
    model : bkgdask.models.smooth_rate.SmoothRate
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
    model,
    energy_range=None,
    nodes_per_decade: int = 32,
    end_fraction: float = 1e-3,
    tolerance: float = 4e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Energy, FoV lon and FoV lat edges and node rates of a BKG_3D table for ``model``.

    The energy nodes are at least ``nodes_per_decade`` a decade, closer where
    ``log(rate)`` bends (:func:`energy_nodes` with ``log_rate`` sampled on
    every third pixel centre): on the H.E.S.S. DR1 off runs 107 to 118 nodes
    over 3 decades, down to 1/110 decade at the threshold, where
    ``log(rate)`` bends 20 times faster than elsewhere.

    Parameters
    ----------
    model : bkgdask.models.smooth_rate.SmoothRate
        A rate over (energy in TeV, FoV lon and lat in deg).
    energy_range, nodes_per_decade, end_fraction
        As :func:`gadf_bkg_2d_nodes`.
    tolerance : float
        Error of the interpolation averaged over a step (:func:`energy_nodes`).

    Returns
    -------
    energy_edges, lon_edges, lat_edges : numpy.ndarray
        TeV, deg (the model's own FoV bins), deg.
    rate : numpy.ndarray
        Rate at the nodes, shape (n_energy, n_lon, n_lat), in the model's
        unit; ready for :func:`bkgdask.models.bkg3d.bkg_3d_hdu`.
    """
    energy_axis, lon_axis, lat_axis = model.axes
    lon, lat = lon_axis.edges, lat_axis.edges
    centres = [0.5 * (e[:-1] + e[1:]) for e in (lon, lat)]

    def log_rate(energy):
        sample = [c[::3] for c in centres]
        return np.log(model.rate_at(energy[:, None, None], sample[0][:, None], sample[1]))

    energy_edges, energies = energy_nodes(
        energy_axis, energy_range, nodes_per_decade, end_fraction, log_rate, tolerance
    )
    rate = model.rate_at(
        energies[:, None, None], centres[0][None, :, None], centres[1][None, None, :]
    )
    return energy_edges, lon, lat, rate
