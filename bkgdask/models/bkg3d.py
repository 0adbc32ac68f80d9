"""BKG_3D: rate over reconstructed energy and FoV lon/lat, aligned with RA/Dec or Alt/Az.

The rate is a histogram or a P-spline fit in (``ln E``, FoV lon, FoV lat)
(:mod:`.smoothing3d`), written as :mod:`.table_kind` says, the fit on the
node grid of :func:`~bkgdask.models.gadf_nodes.gadf_bkg_3d_nodes`. Beside
``BKG`` the HDU holds, on the build's bins, the ``COUNTS`` and ``EXPOSURE``
the model was made from (exclusion regions take events and exposure away).
A pixel that exclusion regions covered in every run has no exposure: the
histogram gives it the rate of the exposed pixels at its FoV offset
(:func:`fill_unexposed`); the fit leaves it out of the likelihood and gives
it the smooth rate.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import RunError
from ..io.fitswrite import BinTable
from .base import edges_of
from .binning import Binning
from .fov import (
    pixel_reach_deg,
    pixel_sample_vectors,
    pixel_solid_angles,
    subpixel_shifts,
    vectors_to_lonlat,
)
from .kernel3d import ALIGNMENTS, histogram_fov
from .rotation import RunPointing
from .table_kind import TableKind

log = logging.getLogger(__name__)


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

    def sky_samples(
        self, pointing: RunPointing, binning: Binning, n_sub: int = 1, where=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sky positions (deg) of sub-pixels of equal solid angle, at the run's epochs.

        Each pixel is cut into ``n_sub`` x ``n_sub`` sub-pixels, uniform in FoV
        lon and in sin(FoV lat) (:func:`~bkgdask.models.fov.pixel_sample_vectors`),
        whose samples sit in the middle at the first epoch and shifted at the
        next ones (:func:`~bkgdask.models.fov.subpixel_shifts`); with
        ``n_sub=1`` the pixel's centre at every epoch. They go back
        to ICRS by the inverse of the FoV projection: for RADEC one epoch, for
        ALTAZ each of the run's epochs
        (:meth:`~bkgdask.models.rotation.RunPointing.fov_to_icrs`). See
        :meth:`ModelKind.sky_samples` for the shapes.
        """
        to_icrs = pointing.fov_to_icrs(self.alignment)
        shape = (*binning.shape[1:], to_icrs.shape[0])
        select = np.ones(shape, dtype=bool) if where is None else np.asarray(where, dtype=bool)
        i, j, epoch = np.nonzero(select)
        shifts = subpixel_shifts(to_icrs.shape[0])[epoch] if n_sub > 1 else 0.5  # 1: centres
        fov = pixel_sample_vectors(binning["fov_lon"], binning["fov_lat"], i, j, n_sub, shifts)
        m = to_icrs[epoch][..., None]  # (k, 3, 3, 1) against (k, n_sub**2) components
        sky = [m[:, r, 0] * fov[0] + m[:, r, 1] * fov[1] + m[:, r, 2] * fov[2] for r in range(3)]
        ra, dec = vectors_to_lonlat(*sky)
        ra = np.mod(ra, 360.0)
        if where is None:
            return ra.reshape(*shape, -1), dec.reshape(*shape, -1)
        return ra, dec

    def bin_reach_deg(self, binning: Binning) -> np.ndarray:
        """Angle (deg) from each pixel's centre sample to its farthest corner."""
        return pixel_reach_deg(binning["fov_lon"], binning["fov_lat"])

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

    def histogram_rate(self, total) -> np.ndarray:
        """Rate = counts / exposure; pixels without exposure filled (:func:`fill_unexposed`)."""
        exposure = total["exposure"].values
        if np.all(exposure > 0):
            return super().histogram_rate(total)
        binning = edges_of(total, self.dims)
        return fill_unexposed(total["counts"].values, exposure, binning)

    def fit(self, total):
        """The P-spline fit of a group (:func:`~bkgdask.models.smoothing3d.fit_fov_rate`)."""
        from .smoothing3d import fit_fov_rate  # only where models are finalized

        return fit_fov_rate(total)

    def node_table(self, rate) -> tuple:
        """The fit on the node grid of :func:`~bkgdask.models.gadf_nodes.gadf_bkg_3d_nodes`."""
        from .gadf_nodes import gadf_bkg_3d_nodes

        return gadf_bkg_3d_nodes(rate)

    def table_hdu(self, edges, rate, extra=()) -> BinTable:
        """The GADF HDU with the kind's ``FOVALIGN``."""
        hdu = super().table_hdu(edges, rate, extra)
        hdu.header["FOVALIGN"] = self.alignment
        return hdu

    def of_header(self, header) -> Bkg3D:
        """The kind of the header's ``FOVALIGN`` (RADEC if absent)."""
        return Bkg3D(header.get("FOVALIGN", "RADEC"))

    def gammapy_options(self) -> dict:
        return {"fov_alignment": self.alignment}


def fill_unexposed(counts, exposure, binning: Binning) -> np.ndarray:
    """Counts / exposure; a pixel without exposure takes the rate of the exposed ones at its offset.

    A pixel that exclusion regions covered in every run of a group has no
    exposure and no counts. It takes, per energy bin, the summed counts over
    the summed exposure of the exposed pixels whose centres lie at the same
    FoV offset to within half a pixel (to within a pixel if there are none);
    0 if there are none either. The build warns of it.

    Parameters
    ----------
    counts, exposure : numpy.ndarray
        (n_energy, n_lon, n_lat); exposure s MeV sr, 0 in the unexposed pixels.
    binning : Binning
        The bins.

    Returns
    -------
    numpy.ndarray
        The rate, s-1 MeV-1 sr-1.
    """
    exposed = np.all(exposure > 0, axis=0)
    rate = np.divide(counts, exposure, out=np.zeros(exposure.shape), where=exposure > 0)
    lon, lat = binning["fov_lon"], binning["fov_lat"]
    i, j = np.indices(exposed.shape).reshape(2, -1)
    x = pixel_sample_vectors(lon, lat, i, j, 1)[0].reshape(exposed.shape)
    offset = np.degrees(np.arccos(np.clip(x, -1.0, 1.0)))
    width = max(np.diff(lon).max(), np.diff(lat).max())
    for i, j in np.argwhere(~exposed):
        distance = np.abs(offset - offset[i, j])
        for tolerance in (0.5 * width, width):
            ring = exposed & (distance <= tolerance)
            if ring.any():
                rate[:, i, j] = counts[:, ring].sum(axis=1) / exposure[:, ring].sum(axis=1)
                break
    log.warning(
        "%d of %d FoV pixels have no exposure outside the exclusion regions (excluded in every "
        "run of a group): they take the rate of the pixels at their FoV offset",
        int((~exposed).sum()),
        exposed.size,
    )
    return rate


def bkg_3d_hdu(energy_edges, lon_edges, lat_edges, rate, alignment: str, extra=()) -> BinTable:
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
    extra : sequence of Column
        Further one-row columns (``COUNTS``, ``EXPOSURE``).
    """
    return Bkg3D(alignment).table_hdu([energy_edges, lon_edges, lat_edges], rate, extra)
