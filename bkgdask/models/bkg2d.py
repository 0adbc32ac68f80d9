"""BKG_2D: rate over reconstructed energy and FoV offset (radially symmetric)."""

from __future__ import annotations

import functools

import numpy as np
from astropy.io import fits

from ..io.gadf import BKG_COLUMN_UNIT, GADF_BKG_HEADER
from .base import RATE_UNIT, Model, ModelKind
from .binning import Binning
from .exclusion import ring_excluded_fraction
from .kernel2d import count_events, hav_edges


def table_column(name: str, values, unit: str, dim: str) -> fits.Column:
    """A one-row vector column of float64 (GADF IRF tables hold one row)."""
    values = np.asarray(values, dtype=np.float64)[None, ...]
    return fits.Column(name, f"{values[0].size}D", unit=unit, dim=dim, array=values)


def row_edges(data, lo: str, hi: str) -> np.ndarray:
    """Bin edges from the one-row ``lo``/``hi`` columns of a GADF table."""
    return np.append(np.asarray(data[lo][0], float), float(data[hi][0][-1]))


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
        """Excluded fraction of each offset ring: exact for circles (see models/exclusion.py)."""
        return ring_excluded_fraction(binning["offset"], pointing, regions)

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

    def to_hdu(self, total, rate: np.ndarray) -> fits.BinTableHDU:
        energy = np.append(total["energy_lo"].values, total["energy_hi"].values[-1])
        offset = np.append(total["offset_lo"].values, total["offset_hi"].values[-1])
        return bkg_2d_hdu(energy, offset, rate)

    def from_hdu(self, name: str, header, data) -> Model:
        binning = Binning.of(
            energy=row_edges(data, "ENERG_LO", "ENERG_HI"),
            offset=row_edges(data, "THETA_LO", "THETA_HI"),
        )
        # GADF stores BKG as (offset, energy); bkgdask works in (energy, offset).
        rate = np.asarray(data["BKG"][0], dtype=np.float64).T
        return Model(name, self, binning, rate, dict(header))

    def to_gammapy(self, model: Model):
        """gammapy ``Background2D`` in s-1 MeV-1 sr-1."""
        import astropy.units as u
        from gammapy.irf import Background2D
        from gammapy.maps import MapAxis

        energy_axis = MapAxis.from_energy_edges(model.binning["energy"] * u.TeV)
        offset_axis = MapAxis.from_edges(model.binning["offset"] * u.deg, name="offset")
        return Background2D(axes=[energy_axis, offset_axis], data=model.rate, unit=RATE_UNIT)


def bkg_2d_hdu(energy_edges, offset_edges, rate) -> fits.BinTableHDU:
    """A GADF BKG_2D table HDU (as gammapy writes it), without importing gammapy.

    Parameters
    ----------
    energy_edges : numpy.ndarray
        Reconstructed energy edges, TeV.
    offset_edges : numpy.ndarray
        Offset edges, deg.
    rate : numpy.ndarray
        s-1 MeV-1 sr-1, shape (n_energy, n_offset).
    """
    n_e, n_o = len(energy_edges) - 1, len(offset_edges) - 1
    columns = [
        table_column("ENERG_LO", energy_edges[:-1], "TeV", f"({n_e})"),
        table_column("ENERG_HI", energy_edges[1:], "TeV", f"({n_e})"),
        table_column("THETA_LO", offset_edges[:-1], "deg", f"({n_o})"),
        table_column("THETA_HI", offset_edges[1:], "deg", f"({n_o})"),
        # GADF axis order: the FITS array is (offset, energy), energy fastest.
        table_column("BKG", np.asarray(rate).T, BKG_COLUMN_UNIT, f"({n_e},{n_o})"),
    ]
    hdu = fits.BinTableHDU.from_columns(columns)
    hdu.header.update(GADF_BKG_HEADER)
    hdu.header["HDUCLAS4"] = Bkg2D.hdu_class
    return hdu


@functools.lru_cache(maxsize=16)
def _hav_edges(offset_edges: bytes) -> np.ndarray:
    return hav_edges(np.frombuffer(offset_edges, dtype=np.float64))
