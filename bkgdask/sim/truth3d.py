"""A known-truth FoV background R(E, fov_lon, fov_lat), fixed in Alt/Az or in RA/Dec.

The rate, in s-1 MeV-1 sr-1, in the FoV frame of the truth's alignment::

    R = S(E) · exp(-(1 - cos θ) / s0) · (1 + gradient · fov_lat)   for θ <= offset_max

with ``S(E)`` the spectrum of :class:`~bkgdask.sim.truth.TruthModel` at the
fixed zenith ``zenith`` (the rate does not change within or between runs),
``s0 = 1 - cos(width)`` and ``fov_lat`` in deg. With the ALTAZ alignment the
gradient points to the zenith: as the field rotates during a run, it sweeps
across RA/Dec. Events are drawn exactly (Poisson thinning of the radially
symmetric rate); :meth:`Truth3D.expected_counts` integrates numerically: Gauss-
Legendre over each pixel and, when the binning's frame is not the truth's,
the midpoint rule over the run's GTIs (field rotation from ERFA, as the build).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..models.fov import offset_frame_matrix, unit_vectors, vectors_to_lonlat
from ..models.rotation import field_rotation, fov_maps, times_in_gtis
from .truth import TruthModel

#: Gauss-Legendre points per pixel axis of :meth:`Truth3D.expected_counts`.
PIXEL_NODES = 6
#: Longest time step (s) of the midpoint rule over a run's GTIs.
TIME_STEP_S = 60.0


class Truth3D(BaseModel):
    """Parameters of the FoV truth (see the module docstring).

    Attributes
    ----------
    alignment : {"ALTAZ", "RADEC"}
        Frame the rate is fixed in.
    gradient : float
        Relative change of the rate per deg of ``fov_lat``, deg-1; ``|gradient| *
        offset_max < 1``.
    width : float
        FoV falloff width σ0, deg (energy-independent).
    zenith : float
        Zenith angle at which the spectrum of ``spectrum`` is taken, deg.
    spectrum : TruthModel
        Spectrum and simulated ranges (its width parameters are not used).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alignment: Literal["ALTAZ", "RADEC"] = "ALTAZ"
    gradient: float = Field(0.15, description="deg-1, relative rate change per deg of fov_lat")
    width: float = Field(1.4, gt=0, description="deg, FoV falloff width")
    zenith: float = Field(20.0, ge=0, lt=90, description="deg, zenith of the spectrum")
    spectrum: TruthModel = Field(default_factory=lambda: TruthModel(offset_max=3.5))

    @field_validator("alignment", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _positive(self) -> Truth3D:
        if abs(self.gradient) * self.spectrum.offset_max >= 1:
            raise ValueError("|gradient| * offset_max must be < 1 (the rate must stay positive)")
        return self

    @property
    def _radial(self) -> TruthModel:
        """The spectrum's model with the energy-independent falloff of this truth."""
        return self.spectrum.model_copy(update={"width": self.width, "width_index": 0.0})

    def profile(self, x, lat_deg) -> np.ndarray:
        """Spatial factor of the rate at FoV unit vectors with x = cos θ and latitude (deg)."""
        s0 = 1.0 - np.cos(np.deg2rad(self.width))
        inside = x >= np.cos(np.deg2rad(self.spectrum.offset_max))
        return np.where(inside, np.exp(-(1.0 - x) / s0) * (1.0 + self.gradient * lat_deg), 0.0)

    # -- sampling ---------------------------------------------------------
    def sample_run(self, rng: np.random.Generator, header: Mapping, gti: np.ndarray):
        """Draw one run's events.

        Parameters
        ----------
        rng : numpy.random.Generator
            Random generator of the run.
        header : Mapping
            Pointing (``RA_PNT``, ``DEC_PNT``, deg), time reference and observatory
            keywords (:func:`bkgdask.models.rotation.field_rotation`).
        gti : numpy.ndarray
            (n, 2) good time intervals, s in the header's time reference.

        Returns
        -------
        energy, ra, dec, time : numpy.ndarray
            TeV, deg (ICRS), s; sorted in time.
        """
        radial = self._radial
        duration = float(np.sum(gti[:, 1] - gti[:, 0]))
        ceiling = 1.0 + abs(self.gradient) * self.spectrum.offset_max
        energy, offset = radial.sample(rng, self.zenith, duration * ceiling)
        angle = rng.uniform(0.0, 2 * np.pi, size=energy.size)
        theta = np.deg2rad(offset)
        fov = np.stack(
            [np.cos(theta), np.sin(theta) * np.sin(angle), np.sin(theta) * np.cos(angle)], axis=-1
        )
        _, lat = vectors_to_lonlat(*fov.T)
        keep = rng.uniform(size=energy.size) * ceiling < 1.0 + self.gradient * lat
        energy, fov = energy[keep], fov[keep]
        time = np.sort(times_in_gtis(rng.uniform(0.0, duration, size=energy.size), gti))
        if self.alignment == "ALTAZ" and energy.size:
            rotation = field_rotation(header, float(gti[0, 0]), float(gti[-1, 1]))
            fov = np.linalg.solve(rotation.matrices(time), fov[..., None])[..., 0]
            fov /= np.linalg.norm(fov, axis=-1, keepdims=True)
        icrs = fov @ offset_frame_matrix(float(header["RA_PNT"]), float(header["DEC_PNT"]))
        ra, dec = vectors_to_lonlat(*icrs.T)
        return energy, np.mod(ra, 360.0), dec, time

    # -- expectation ------------------------------------------------------
    def expected_counts(
        self,
        energy_edges_tev,
        lon_edges_deg,
        lat_edges_deg,
        alignment: str,
        header: Mapping,
        gti: np.ndarray,
    ) -> np.ndarray:
        """Expected counts of one run in (energy, fov_lon, fov_lat) bins of a FoV frame.

        Parameters
        ----------
        energy_edges_tev : array-like
            Reconstructed-energy edges, TeV.
        lon_edges_deg, lat_edges_deg : array-like
            FoV edges, deg, in the frame of ``alignment``.
        alignment : {"RADEC", "ALTAZ"}
            Frame of the binning (the model's ``FOVALIGN``).
        header : Mapping
            The run's EVENTS header (pointing, time reference, observatory).
        gti : numpy.ndarray
            (n, 2) good time intervals, s.

        Returns
        -------
        numpy.ndarray
            (n_energy, n_lon, n_lat).
        """
        duration = float(np.sum(gti[:, 1] - gti[:, 0]))
        spatial = self._pixel_integrals(lon_edges_deg, lat_edges_deg, alignment, header, gti)
        return duration * np.multiply.outer(self.energy_integrals(energy_edges_tev), spatial)

    def energy_integrals(self, energy_edges_tev) -> np.ndarray:
        """∫ S(E) dE over each energy bin, s-1 sr-1."""
        radial = self._radial
        edges = [0.0, self.spectrum.offset_max]
        per_bin = radial.expected_counts(energy_edges_tev, edges, self.zenith, 1.0)[:, 0]
        return per_bin / radial._ring_integral(np.array([1.0]), edges)[0, 0]

    def _pixel_integrals(self, lon_edges, lat_edges, alignment, header, gti) -> np.ndarray:
        """∫ profile dΩ over each pixel, averaged over the run's time, sr (n_lon, n_lat)."""
        nodes, weights = np.polynomial.legendre.leggauss(PIXEL_NODES)
        lon = np.radians(np.asarray(lon_edges, dtype=np.float64))
        sin_lat = np.sin(np.radians(np.asarray(lat_edges, dtype=np.float64)))
        lon_half, sin_half = 0.5 * np.diff(lon), 0.5 * np.diff(sin_lat)
        lon_nodes = (0.5 * (lon[:-1] + lon[1:]))[:, None] + lon_half[:, None] * nodes
        sin_nodes = (0.5 * (sin_lat[:-1] + sin_lat[1:]))[:, None] + sin_half[:, None] * nodes
        pix_lon, pix_lat = np.meshgrid(
            np.degrees(lon_nodes.ravel()), np.degrees(np.arcsin(sin_nodes.ravel())), indexing="ij"
        )
        vectors = unit_vectors(pix_lon, pix_lat)  # (n_lon * k, n_lat * k, 3)
        node_weights = np.outer(np.tile(weights, lon_half.size), np.tile(weights, sin_half.size))
        cell = np.outer(np.repeat(lon_half, PIXEL_NODES), np.repeat(sin_half, PIXEL_NODES))
        values = np.zeros(pix_lon.shape)
        for matrix, share in self._frame_maps(str(alignment).upper(), header, gti):
            moved = vectors @ matrix.T
            moved /= np.linalg.norm(moved, axis=-1, keepdims=True)
            values += share * self.profile(moved[..., 0], vectors_to_lonlat(*moved.T)[1].T)
        weighted = values * node_weights * cell
        n_lon, n_lat = lon_half.size, sin_half.size
        return weighted.reshape(n_lon, PIXEL_NODES, n_lat, PIXEL_NODES).sum(axis=(1, 3))

    def _frame_maps(self, alignment: str, header, gti) -> list[tuple[np.ndarray, float]]:
        """Maps from the binning's FoV frame to the truth's, with their shares of the run's time."""
        if alignment == self.alignment:
            return [(np.eye(3), 1.0)]
        if alignment not in ("RADEC", "ALTAZ"):
            raise ValueError(f"alignment must be RADEC or ALTAZ, got {alignment!r}")
        times, shares = midpoint_times(gti, TIME_STEP_S)
        maps = fov_maps(header, times)
        if alignment == "ALTAZ":  # binning in Alt/Az, truth fixed in RA/Dec
            maps = np.linalg.inv(maps)
        return list(zip(maps, shares, strict=True))


def midpoint_times(gti: Sequence, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints (s) of equal pieces, at most ``step_s`` long, of every GTI, and their
    shares of the total good time (summing to 1)."""
    gti = np.asarray(gti, dtype=np.float64)
    lengths = gti[:, 1] - gti[:, 0]
    times, shares = [], []
    for (start, _), length in zip(gti, lengths, strict=True):
        n = max(1, int(np.ceil(length / step_s)))
        times.append(start + (np.arange(n) + 0.5) * length / n)
        shares.append(np.full(n, length / n / lengths.sum()))
    return np.concatenate(times), np.concatenate(shares)
