"""BKG_2D: rate over reconstructed energy and FoV offset (radially symmetric).

The rate is a histogram or a P-spline fit in (``ln E``, ``θ²``)
(:mod:`.smoothing`), written as :mod:`.table_kind` says, the fit on the node
grid of :func:`~bkgdask.models.gadf_nodes.gadf_bkg_2d_nodes`.
"""

from __future__ import annotations

import functools

import numpy as np

from ..io.fitswrite import BinTable
from .binning import Binning
from .exclusion import ring_excluded_fraction
from .kernel2d import count_events, hav_edges
from .table_kind import TableKind


class Bkg2D(TableKind):
    """GADF ``BKG_2D``: energy (TeV) x offset (deg), read by gammapy as ``Background2D``."""

    tag = "bkg_2d"
    hdu_class = "BKG_2D"
    dims = ("energy", "offset")
    image_dims = ("offset", "energy")
    columns = (("ENERG", "TeV"), ("THETA", "deg"))
    gammapy_class = "Background2D"

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

        Rings about the pointing (a :class:`bkgdask.models.rotation.RunPointing`) are fixed
        on the sky.
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

    def fit(self, total):
        """The P-spline fit of a group (:func:`~bkgdask.models.smoothing.fit_group_rate`)."""
        from .smoothing import fit_group_rate  # only where models are finalized

        return fit_group_rate(total)

    def node_table(self, rate) -> tuple:
        """The fit on the node grid of :func:`~bkgdask.models.gadf_nodes.gadf_bkg_2d_nodes`."""
        from .gadf_nodes import gadf_bkg_2d_nodes

        return gadf_bkg_2d_nodes(rate)


def bkg_2d_hdu(energy_edges, offset_edges, rate, extra=()) -> BinTable:
    """A GADF BKG_2D table HDU (as gammapy writes it), without importing gammapy.

    Parameters
    ----------
    energy_edges : numpy.ndarray
        Reconstructed energy edges, TeV.
    offset_edges : numpy.ndarray
        Offset edges, deg.
    rate : numpy.ndarray
        s-1 MeV-1 sr-1, shape (n_energy, n_offset).
    extra : sequence of Column
        Further one-row columns (e.g. :meth:`TableKind.build_columns`).
    """
    return Bkg2D().table_hdu([energy_edges, offset_edges], rate, extra)


@functools.lru_cache(maxsize=16)
def _hav_edges(offset_edges: bytes) -> np.ndarray:
    return hav_edges(np.frombuffer(offset_edges, dtype=np.float64))
