"""BKG_3D: rate over reconstructed energy and FoV lon/lat, aligned with RA/Dec or Alt/Az."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import RunError
from .base import RATE_UNIT, Model, ModelKind
from .binning import Binning
from .fov import pixel_solid_angles
from .gadf_table import bkg_table_hdu, row_edges
from .kernel3d import ALIGNMENTS, histogram_fov

#: GADF names of the FoV axes' edge columns (gammapy's ``fov_lon`` and ``fov_lat``).
FOV_COLUMNS = {"fov_lon": "DETX", "fov_lat": "DETY"}


class Bkg3D(ModelKind):
    """GADF ``BKG_3D``: energy (TeV) x FoV lon x FoV lat (deg), gammapy's ``Background3D``.

    The registered instance is RADEC-aligned; :meth:`with_model_config` gives
    the instance of a model configuration (``fov_alignment``), and
    :meth:`from_hdu` the one of a file's ``FOVALIGN``.

    Parameters
    ----------
    alignment : {"RADEC", "ALTAZ"}
        FoV alignment, the ``FOVALIGN`` header keyword (case-insensitive).
    """

    tag = "bkg_3d"
    hdu_class = "BKG_3D"
    dims = ("energy", "fov_lon", "fov_lat")
    image_dims = ("fov_lon", "fov_lat")

    def __init__(self, alignment: str = "RADEC"):
        alignment = str(alignment).strip().upper()
        if alignment not in ALIGNMENTS:
            raise ValueError(f"FoV alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        self.alignment = alignment

    def __repr__(self) -> str:
        return f"Bkg3D({self.alignment!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Bkg3D) and other.alignment == self.alignment

    def __hash__(self) -> int:
        return hash((self.tag, self.alignment))

    def with_model_config(self, model_config) -> Bkg3D:
        """The kind aligned as ``model_config.fov_alignment`` says (``radec`` or ``altaz``)."""
        return Bkg3D(getattr(model_config, "fov_alignment", self.alignment))

    @property
    def event_columns(self) -> tuple[str, ...]:
        """EVENTS columns beyond energy and position: ``TIME`` for the ALTAZ alignment."""
        return ("TIME",) if self.alignment == "ALTAZ" else ()

    def binning(self, config) -> Binning:
        return Binning.of(
            energy=config.energy.to_values("TeV"),
            fov_lon=config.fov_lon.to_values("deg"),
            fov_lat=config.fov_lat.to_values("deg"),
        )

    def solid_angles_sr(self, binning: Binning) -> np.ndarray:
        """Exact pixel solid angles (lon2 − lon1)(sin lat2 − sin lat1), sr, (n_lon, n_lat)."""
        return pixel_solid_angles(binning["fov_lon"], binning["fov_lat"])

    def count(self, events, binning: Binning, compiled: bool | None) -> np.ndarray:
        columns = {"ENERGY": events.energy, "RA": events.ra, "DEC": events.dec, **events.columns}
        header = {**dict(events.header), "RA_PNT": events.ra_pnt, "DEC_PNT": events.dec_pnt}
        try:
            counts, _ = histogram_fov(
                columns,
                header,
                binning["energy"],
                binning["fov_lon"],
                binning["fov_lat"],
                self.alignment,
                compiled=compiled,
            )
        except (KeyError, ValueError) as exc:
            reason = f"cannot compute {self.alignment} FoV coordinates: {exc}"
            raise RunError(events.obs_id, "EVENTS header", reason) from None
        return counts

    def to_hdu(self, total, rate: np.ndarray) -> fits.BinTableHDU:
        edges = {
            d: np.append(total[f"{d}_lo"].values, total[f"{d}_hi"].values[-1]) for d in self.dims
        }
        return bkg_3d_hdu(edges["energy"], edges["fov_lon"], edges["fov_lat"], rate, self.alignment)

    def from_hdu(self, name: str, header, data) -> Model:
        binning = Binning.of(
            energy=row_edges(data, "ENERG_LO", "ENERG_HI"),
            fov_lon=row_edges(data, "DETX_LO", "DETX_HI"),
            fov_lat=row_edges(data, "DETY_LO", "DETY_HI"),
        )
        # GADF stores BKG as (lat, lon, energy) in numpy order; bkgdask works in (E, lon, lat).
        rate = np.asarray(data["BKG"][0], dtype=np.float64).T
        kind = Bkg3D(header.get("FOVALIGN", "RADEC"))
        return Model(name, kind, binning, rate, dict(header))

    def to_gammapy(self, model: Model):
        """gammapy ``Background3D`` in s-1 MeV-1 sr-1, with the model's ``fov_alignment``."""
        import astropy.units as u
        from gammapy.irf import Background3D
        from gammapy.maps import MapAxis

        axes = [MapAxis.from_energy_edges(model.binning["energy"] * u.TeV)]
        for dim in ("fov_lon", "fov_lat"):
            axes.append(MapAxis.from_edges(model.binning[dim] * u.deg, name=dim))
        return Background3D(
            axes=axes, data=model.rate, unit=RATE_UNIT, fov_alignment=model.kind.alignment
        )


def bkg_3d_hdu(energy_edges, lon_edges, lat_edges, rate, alignment: str) -> fits.BinTableHDU:
    """A GADF BKG_3D table HDU (as gammapy writes it), without importing gammapy.

    Parameters
    ----------
    energy_edges : numpy.ndarray
        Reconstructed energy edges, TeV.
    lon_edges, lat_edges : numpy.ndarray
        FoV longitude and latitude edges, deg.
    rate : numpy.ndarray
        s-1 MeV-1 sr-1, shape (n_energy, n_lon, n_lat).
    alignment : {"RADEC", "ALTAZ"}
        ``FOVALIGN`` of the model.
    """
    axes = [("ENERG", energy_edges, "TeV"), ("DETX", lon_edges, "deg"), ("DETY", lat_edges, "deg")]
    hdu = bkg_table_hdu(axes, rate, Bkg3D.hdu_class)
    hdu.header["FOVALIGN"] = alignment
    return hdu
