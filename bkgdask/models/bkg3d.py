"""BKG_3D: rate over reconstructed energy and FoV lon/lat, aligned with RA/Dec or Alt/Az.

The rate is a histogram or a P-spline fit in (``ln E``, FoV lon, FoV lat)
(:mod:`.smoothing3d`), written as :mod:`.table_kind` says, the fit on the
node grid of :func:`~bkgdask.models.gadf_nodes.gadf_bkg_3d_nodes`.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import RunError
from .binning import Binning
from .fov import pixel_solid_angles
from .kernel3d import ALIGNMENTS, histogram_fov
from .table_kind import TableKind


class Bkg3D(TableKind):
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
    columns = (("ENERG", "TeV"), ("DETX", "deg"), ("DETY", "deg"))
    gammapy_class = "Background3D"

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

    def fit(self, total):
        """The P-spline fit of a group (:func:`~bkgdask.models.smoothing3d.fit_fov_rate`)."""
        from .smoothing3d import fit_fov_rate  # only where models are finalized

        return fit_fov_rate(total)

    def node_table(self, rate) -> tuple:
        """The fit on the node grid of :func:`~bkgdask.models.gadf_nodes.gadf_bkg_3d_nodes`."""
        from .gadf_nodes import gadf_bkg_3d_nodes

        return gadf_bkg_3d_nodes(rate)

    def table_hdu(self, edges, rate, extra=()) -> fits.BinTableHDU:
        """The GADF HDU with the kind's ``FOVALIGN``."""
        hdu = super().table_hdu(edges, rate, extra)
        hdu.header["FOVALIGN"] = self.alignment
        return hdu

    def of_header(self, header) -> Bkg3D:
        """The kind of the header's ``FOVALIGN`` (RADEC if absent)."""
        return Bkg3D(header.get("FOVALIGN", "RADEC"))

    def gammapy_options(self) -> dict:
        return {"fov_alignment": self.alignment}


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
    return Bkg3D(alignment).table_hdu([energy_edges, lon_edges, lat_edges], rate)
