"""BKG_2D: rate over reconstructed energy and FoV offset (radially symmetric).

With ``model.smoothing: pspline`` (the default) the rate is a Poisson
P-spline fit (:mod:`.smoothing`) and ``BKG`` holds its values on a fine node
grid on which gammapy's interpolation reproduces the fit's bin integrals
(:mod:`.gadf_nodes`); with ``none`` it is the histogram, counts / exposure,
on the build's bins. Either way the HDU also carries, on the build's bins
(``CNT_ENERG_LO/HI``, ``CNT_THETA_LO/HI``), the ``COUNTS`` and ``EXPOSURE``
the model was made from, the model's bin-average rate ``BKG_RATE`` and its
1-sigma error ``BKG_ERR``; ``SMMETHOD`` and ``SM*`` keywords say how.
"""

from __future__ import annotations

import functools

import numpy as np
from astropy.io import fits

from ..errors import SelectionError
from ..io.gadf import BKG_COLUMN_UNIT
from .base import RATE_UNIT, Model, ModelKind
from .binning import Binning
from .exclusion import ring_excluded_fraction
from .gadf_table import bkg_table_hdu, edge_columns, row_edges, table_column
from .kernel2d import count_events, hav_edges

#: Columns on the build's bins: (name, unit), each (offset, energy) like ``BKG``.
BUILD_COLUMNS = (
    ("COUNTS", ""),
    ("EXPOSURE", "s MeV sr"),
    ("BKG_RATE", BKG_COLUMN_UNIT),
    ("BKG_ERR", BKG_COLUMN_UNIT),
)


class Bkg2D(ModelKind):
    """GADF ``BKG_2D``: energy (TeV) x offset (deg), read by gammapy as ``Background2D``."""

    tag = "bkg_2d"
    hdu_class = "BKG_2D"
    dims = ("energy", "offset")
    image_dims = ("offset", "energy")

    def binning(self, config) -> Binning:
        return Binning.of(
            energy=config.energy.to_values("TeV"), offset=config.offset.to_values("deg")
        )

    def solid_angles_sr(self, binning: Binning) -> np.ndarray:
        """Ring solid angles 2π(cos θ_lo − cos θ_hi), sr."""
        cos_edges = np.cos(np.deg2rad(binning["offset"]))
        return 2 * np.pi * (cos_edges[:-1] - cos_edges[1:])

    def excluded_fraction(self, pointing, regions, binning: Binning) -> np.ndarray:
        """Excluded fraction of each offset ring: exact for circles (see models/exclusion.py).

        Rings about the pointing (a :class:`bkgdask.models.fov.RunPointing`) are fixed on the sky.
        """
        return ring_excluded_fraction(binning["offset"], (pointing.ra, pointing.dec), regions)

    def count(self, events, binning: Binning, compiled: bool | None) -> np.ndarray:
        return count_events(
            events.energy,
            events.ra,
            events.dec,
            events.ra_pnt,
            events.dec_pnt,
            binning["energy"],
            _hav_edges(binning["offset"].tobytes()),
            compiled=compiled,
        )

    def finalize(self, total, model=None):
        """Histogram rate (``model`` None or ``smoothing: none``), or a fitted :class:`SmoothRate`.

        Raises
        ------
        SelectionError
            If a smoothed group holds no counts inside the model's bins.
        """
        if getattr(model, "smoothing", "none") != "pspline":
            return super().finalize(total)
        if not total["counts"].values.sum() > 0:
            raise SelectionError(
                "a group has no counts inside the model bins: nothing to smooth "
                "(widen the bins or use smoothing: none)"
            )
        from .smoothing import fit_group_rate  # scipy: only where models are finalized

        return fit_group_rate(total)

    def to_hdu(self, total, rate) -> fits.BinTableHDU:
        """BKG on the node grid of a :class:`SmoothRate`, or on the build's bins of a histogram."""
        energy = np.append(total["energy_lo"].values, total["energy_hi"].values[-1])
        offset = np.append(total["offset_lo"].values, total["offset_hi"].values[-1])
        counts, exposure = total["counts"].values, total["exposure"].values
        if not isinstance(rate, np.ndarray):  # a SmoothRate
            from .gadf_nodes import gadf_bkg_2d_nodes

            table = gadf_bkg_2d_nodes(rate)
            build_rate, error = rate.bin_average(), rate.rate_error()
            keywords = rate.parameters
        else:
            table = (energy, offset, rate)
            build_rate, error = rate, raw_rate(counts, exposure)[1]
            keywords = {"SMMETHOD": ("NONE", "histogram: counts / exposure")}
        grids = (counts, exposure, build_rate, error)
        hdu = bkg_2d_hdu(*table, extra=build_columns(energy, offset, grids))
        hdu.header.update(keywords)
        return hdu

    def from_hdu(self, name: str, header, data) -> Model:
        """The model on the build's bins (``CNT_*`` columns when present), node grid aside."""
        gadf_binning = Binning.of(
            energy=row_edges(data, "ENERG_LO", "ENERG_HI"),
            offset=row_edges(data, "THETA_LO", "THETA_HI"),
        )
        # GADF stores BKG as (offset, energy); bkgdask works in (energy, offset).
        rate = np.asarray(data["BKG"][0], dtype=np.float64).T
        if "CNT_ENERG_LO" not in data.names:
            return Model(name, self, gadf_binning, rate, dict(header))
        binning = Binning.of(
            energy=row_edges(data, "CNT_ENERG_LO", "CNT_ENERG_HI"),
            offset=row_edges(data, "CNT_THETA_LO", "CNT_THETA_HI"),
        )
        counts, exposure, build_rate, error = (
            np.asarray(data[column][0], dtype=np.float64).T for column, _ in BUILD_COLUMNS
        )
        nodes = None if binning == gadf_binning else (gadf_binning, rate)
        return Model(
            name, self, binning, build_rate, dict(header), [], counts, exposure, error, nodes
        )

    def to_gammapy(self, model: Model):
        """gammapy ``Background2D`` in s-1 MeV-1 sr-1 (on the node grid when there is one)."""
        import astropy.units as u
        from gammapy.irf import Background2D
        from gammapy.maps import MapAxis

        binning, rate = model.nodes or (model.binning, model.rate)
        energy_axis = MapAxis.from_energy_edges(binning["energy"] * u.TeV)
        offset_axis = MapAxis.from_edges(binning["offset"] * u.deg, name="offset")
        return Background2D(axes=[energy_axis, offset_axis], data=rate, unit=RATE_UNIT)


def raw_rate(counts, exposure) -> tuple[np.ndarray, np.ndarray]:
    """The histogram estimate: counts / exposure and its Poisson error sqrt(counts) / exposure.

    Both are 0 where a bin holds no counts.
    """
    counts = np.asarray(counts, dtype=np.float64)
    exposure = np.asarray(exposure, dtype=np.float64)
    return counts / exposure, np.sqrt(counts) / exposure


def build_columns(energy_edges, offset_edges, grids) -> list[fits.Column]:
    """Edge columns ``CNT_*`` of the build's bins and the :data:`BUILD_COLUMNS` on them.

    Parameters
    ----------
    energy_edges, offset_edges : numpy.ndarray
        The build's bin edges, TeV and deg.
    grids : sequence of numpy.ndarray
        Counts, exposure (s MeV sr), rate and its error (s-1 MeV-1 sr-1), each
        (n_energy, n_offset).
    """
    n_e, n_o = len(energy_edges) - 1, len(offset_edges) - 1
    columns = [*edge_columns("CNT_ENERG", energy_edges, "TeV")]
    columns += edge_columns("CNT_THETA", offset_edges, "deg")
    for (name, unit), grid in zip(BUILD_COLUMNS, grids):
        columns.append(table_column(name, np.asarray(grid).T, unit, f"({n_e},{n_o})"))
    return columns


def bkg_2d_hdu(energy_edges, offset_edges, rate, extra=()) -> fits.BinTableHDU:
    """A GADF BKG_2D table HDU (as gammapy writes it), without importing gammapy.

    Parameters
    ----------
    energy_edges : numpy.ndarray
        Reconstructed energy edges, TeV.
    offset_edges : numpy.ndarray
        Offset edges, deg.
    rate : numpy.ndarray
        s-1 MeV-1 sr-1, shape (n_energy, n_offset).
    extra : sequence of astropy.io.fits.Column
        Further one-row columns (e.g. :func:`build_columns`).
    """
    axes = [("ENERG", energy_edges, "TeV"), ("THETA", offset_edges, "deg")]
    return bkg_table_hdu(axes, rate, Bkg2D.hdu_class, extra)


@functools.lru_cache(maxsize=16)
def _hav_edges(offset_edges: bytes) -> np.ndarray:
    return hav_edges(np.frombuffer(offset_edges, dtype=np.float64))
