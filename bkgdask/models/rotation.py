"""The ALTAZ FoV frame over a run: its field rotation against RA/Dec, and the run's pointing.

ERFA (the engine of astropy's coordinates, called directly, with the UT1 -
UTC and polar motion astropy would use; :mod:`bkgdask.models.observer`)
evaluates the map from the RADEC FoV frame to the ALTAZ FoV frame
(:mod:`bkgdask.models.fov`) on a coarse grid of times per run
(:func:`field_rotation`); per event it is a turn about the pointing (cubic
splines of its cos and sin) after a fixed small remainder
(:class:`FieldRotation`), applied to the RADEC FoV vector. Within 3 deg of
the pointing it agrees with astropy's transformation per event to < 0.1
arcsec on every H.E.S.S. DR1 run (``tests/test_fov.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .fov import offset_frame_matrix, radec_fov_vectors, unit_vectors, vectors_to_lonlat
from .observer import icrs_to_observed, seconds_per_time_unit

#: FoV longitudes and latitudes (deg) of the grid of directions the field rotation is fitted on.
FIT_GRID_DEG = np.linspace(-4.0, 4.0, 3)
#: Spline nodes per run of the field rotation: < 0.1 arcsec within 3 deg on all H.E.S.S. DR1 runs
#: (0.074 arcsec at most, against astropy per event).
DEFAULT_N_NODES = 64
#: Longest share of good time (s) that one epoch of :attr:`RunPointing.epochs` stands for.
EPOCH_S = 60.0


@dataclass(frozen=True)
class FieldRotation:
    """The map from the RADEC to the ALTAZ FoV frame of one run, as a turn spline in time.

    At time t the map is ``turn(t) @ rest``: ``turn`` is the reflection
    ``[[1, 0, 0], [0, cos, sin], [0, sin, -cos]]`` between the right-handed RADEC
    and the left-handed ALTAZ FoV axes about the pointing (the angle is the
    field rotation), its cos and sin cubic splines in time; ``rest`` the small
    remainder (differential aberration, <= 5e-5 off the identity and changing by
    < 1e-7 over a run) per segment, the mean of the nodes at its ends.

    Attributes
    ----------
    time_start : float
        Time of the first node, in the units of the EVENTS ``TIME`` column.
    inverse_step : float
        Inverse of the node spacing, per ``TIME`` unit.
    turn : numpy.ndarray
        (n_nodes - 1, 4, 2) float64: per segment the cubic's coefficients (highest
        power first) of cos and sin, in the segment's fraction [0, 1).
    rest : numpy.ndarray
        (n_nodes - 1, 9) float64: per segment the remainder, row-major.
    """

    time_start: float
    inverse_step: float
    turn: np.ndarray
    rest: np.ndarray

    def _segments(self, time) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per time: cos and sin of the turn (n,) and the segment's remainder (n, 9)."""
        position = (np.asarray(time, dtype=np.float64) - self.time_start) * self.inverse_step
        segment = np.clip(position.astype(np.int64), 0, self.turn.shape[0] - 1)
        fraction = position - segment
        c = self.turn[segment]
        cos_sin = [
            ((c[:, 0, i] * fraction + c[:, 1, i]) * fraction + c[:, 2, i]) * fraction + c[:, 3, i]
            for i in (0, 1)
        ]
        return cos_sin[0], cos_sin[1], self.rest[segment]

    def apply(self, time, x, y, z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The map applied to RADEC FoV vectors at their times; not normalised (|v| - 1 ~ 1e-4).

        The arithmetic of the compiled kernel (:mod:`bkgdask.models.kernel3d`), in numpy.
        """
        cos_turn, sin_turn, n = self._segments(time)
        x1 = n[:, 0] * x + n[:, 1] * y + n[:, 2] * z
        y1 = n[:, 3] * x + n[:, 4] * y + n[:, 5] * z
        z1 = n[:, 6] * x + n[:, 7] * y + n[:, 8] * z
        return x1, cos_turn * y1 + sin_turn * z1, sin_turn * y1 - cos_turn * z1

    def matrices(self, time) -> np.ndarray:
        """The 3x3 matrices (n, 3, 3) at event times (``TIME`` units)."""
        cos_turn, sin_turn, rest = self._segments(time)
        return turn_matrices(cos_turn, sin_turn) @ rest.reshape(-1, 3, 3)


def turn_matrices(cos_turn: np.ndarray, sin_turn: np.ndarray) -> np.ndarray:
    """The turns ``[[1, 0, 0], [0, c, s], [0, s, -c]]`` (n, 3, 3); each is its own inverse."""
    turn = np.zeros((np.size(cos_turn), 3, 3))
    turn[:, 0, 0] = 1.0
    turn[:, 1, 1], turn[:, 1, 2], turn[:, 2, 1], turn[:, 2, 2] = (
        cos_turn, sin_turn, sin_turn, -cos_turn,
    )  # fmt: skip
    return turn


def unit_scale(excess):
    """1 / sqrt(1 + excess) to second order: normalises vectors with |v|² - 1 = excess ~ 1e-4.

    The error is 5/16 excess³ (3e-12 at 2e-4).

    >>> float(unit_scale(0.0))
    1.0
    >>> abs(float(unit_scale(2e-4)) - 1 / (1 + 2e-4) ** 0.5) < 3e-12
    True
    """
    return 1.0 - excess * (0.5 - 0.375 * excess)


def fov_maps(header: Mapping, times) -> np.ndarray:
    """Linear maps from the RADEC FoV frame to the ALTAZ FoV frame at given times.

    The pointing and a grid of directions around it (:data:`FIT_GRID_DEG`) go
    from ICRS to observed Alt/Az at each time as astropy's ``AltAz`` frame takes
    them (:func:`bkgdask.models.observer.icrs_to_observed`, ERFA called
    directly). The 3x3 matrix is the least-squares fit of the
    ALTAZ FoV vectors against the RADEC ones. It is not quite a rotation: it
    also holds the differential aberration (up to ~1 arcsec at 3 deg), so its
    results need normalising.

    UT1 - UTC and polar motion are not negligible near the zenith: the ALTAZ
    frame's orientation is the pointing's azimuth, and there a shift of the
    pointing turns the frame a lot (leaving them out moves H.E.S.S. DR1 events
    at the corners of the +-3 deg field by up to 33 arcsec).

    Parameters
    ----------
    header : Mapping
        EVENTS header: ``RA_PNT``, ``DEC_PNT`` (deg), time reference and
        observatory keywords (:mod:`bkgdask.models.observer`).
    times : array-like
        1-d array of times, ``TIME`` units.

    Returns
    -------
    numpy.ndarray
        (n_times, 3, 3) float64.
    """
    ra_pnt, dec_pnt = float(header["RA_PNT"]), float(header["DEC_PNT"])
    # The pointing first (the centre of the ALTAZ FoV frame), then a lon/lat grid.
    grid_lon, grid_lat = np.meshgrid(FIT_GRID_DEG, FIT_GRID_DEG)
    fov = unit_vectors(np.append(0.0, grid_lon), np.append(0.0, grid_lat))
    icrs = fov @ offset_frame_matrix(ra_pnt, dec_pnt)  # R^T applied to each row
    ra = np.arctan2(icrs[:, 1], icrs[:, 0])
    dec = np.arctan2(icrs[:, 2], np.hypot(icrs[:, 0], icrs[:, 1]))
    azimuth, zenith = icrs_to_observed(header, times, ra, dec)
    az, alt = np.degrees(azimuth), 90.0 - np.degrees(zenith)  # (n_times, n_directions)
    frames = offset_frame_matrix(az[:, 0], alt[:, 0])  # each time's ALTAZ FoV frame
    target = np.einsum("tij,tkj->tki", frames, unit_vectors(az, alt))  # ALTAZ FoV vectors
    # Least squares fov @ M^T = target, one (3, 3) per time, with one pseudo-inverse.
    return np.einsum("jk,tkl->tlj", np.linalg.pinv(fov), target)


@functools.cache
def _not_a_knot_inverse(n: int) -> np.ndarray:
    """Inverse of the system giving a not-a-knot cubic spline's second derivatives (unit steps)."""
    matrix = np.zeros((n, n))
    for i in range(1, n - 1):
        matrix[i, i - 1 : i + 2] = (1.0, 4.0, 1.0)
    matrix[0, :3] = (1.0, -2.0, 1.0)  # third derivative continuous at the second node
    matrix[-1, -3:] = (1.0, -2.0, 1.0)  # and at the last but one
    return np.linalg.inv(matrix)


def spline_coefficients(values: np.ndarray) -> np.ndarray:
    """Per-segment cubic coefficients of the not-a-knot spline through equally spaced values.

    scipy's ``CubicSpline`` (default boundary) in unit steps, without scipy.

    Parameters
    ----------
    values : numpy.ndarray
        (n, m): n >= 4 nodes of m functions.

    Returns
    -------
    numpy.ndarray
        (n - 1, 4, m): per segment the coefficients, highest power first, in
        the fraction of the segment.
    """
    values = np.asarray(values, dtype=np.float64)
    second = np.zeros_like(values)
    second[1:-1] = 6.0 * (values[2:] - 2.0 * values[1:-1] + values[:-2])
    second = _not_a_knot_inverse(values.shape[0]) @ second
    low, high = second[:-1], second[1:]
    return np.stack(
        [(high - low) / 6.0, low / 2.0, values[1:] - values[:-1] - (2.0 * low + high) / 6.0,
         values[:-1]], axis=1,
    )  # fmt: skip


def field_rotation(
    header: Mapping, time_min: float, time_max: float, n_nodes: int = DEFAULT_N_NODES
) -> FieldRotation:
    """Spline of the RADEC-to-ALTAZ FoV map over one run: :func:`fov_maps` at ``n_nodes`` times.

    Parameters
    ----------
    header : Mapping
        EVENTS header: ``RA_PNT``, ``DEC_PNT`` (deg), time reference and
        observatory keywords (:mod:`bkgdask.models.observer`).
    time_min, time_max : float
        Range of the event times to cover, ``TIME`` units (e.g. the events' min and max).
    n_nodes : int, optional
        Number of equally spaced times (>= 4).

    Returns
    -------
    FieldRotation
    """
    if n_nodes < 4:
        raise ValueError(f"n_nodes must be >= 4, got {n_nodes}")
    if not time_max > time_min:
        time_max = time_min + 1.0 / seconds_per_time_unit(header)  # the map hardly changes
    nodes = np.linspace(time_min, time_max, n_nodes)
    maps = fov_maps(header, nodes)
    angle = np.arctan2(maps[:, 1, 2] + maps[:, 2, 1], maps[:, 1, 1] - maps[:, 2, 2])
    cos_sin = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    rest = (turn_matrices(cos_sin[:, 0], cos_sin[:, 1]) @ maps).reshape(n_nodes, 9)
    return FieldRotation(
        time_start=float(nodes[0]),
        inverse_step=float((n_nodes - 1) / (time_max - time_min)),
        turn=np.ascontiguousarray(spline_coefficients(cos_sin)),
        rest=np.ascontiguousarray(0.5 * (rest[:-1] + rest[1:])),
    )


def fov_altaz(ra_deg, dec_deg, time, ra_pnt_deg: float, dec_pnt_deg: float, rotation):
    """FoV coordinates of events in the ALTAZ alignment at their times, deg.

    Parameters
    ----------
    ra_deg, dec_deg : array-like
        Event positions (ICRS), deg.
    time : array-like
        Event times, ``TIME`` column units.
    ra_pnt_deg, dec_pnt_deg : float
        Pointing (ICRS), deg.
    rotation : FieldRotation
        From :func:`field_rotation` for the run.

    Returns
    -------
    fov_lon, fov_lat : numpy.ndarray
        float64, deg; ``fov_lon`` positive towards decreasing azimuth.
    """
    vectors = radec_fov_vectors(ra_deg, dec_deg, ra_pnt_deg, dec_pnt_deg)
    return vectors_to_lonlat(*rotation.apply(np.asarray(time, dtype=np.float64), *vectors))


def times_in_gtis(elapsed: np.ndarray, gti: np.ndarray) -> np.ndarray:
    """Times (s) that are ``elapsed`` seconds of good time after the start of the first GTI."""
    lengths = gti[:, 1] - gti[:, 0]
    ends = np.cumsum(lengths)
    index = np.minimum(np.searchsorted(ends, elapsed, side="right"), len(gti) - 1)
    return gti[index, 0] + elapsed - (ends[index] - lengths[index])


@dataclass(frozen=True, eq=False)
class RunPointing:
    """What maps one run's FoV frame onto the sky: its pointing and, for ALTAZ, when and where.

    The RADEC frame needs the pointing alone. The ALTAZ frame turns against
    RA/Dec during the run (field rotation), so it needs the run's good time
    (:attr:`epochs`) and the observatory and time reference of its EVENTS header.

    Attributes
    ----------
    ra, dec : float
        Pointing (ICRS), deg.
    header : Mapping
        EVENTS header: time reference and observatory keywords
        (:mod:`bkgdask.models.observer`); ALTAZ only.
    gti : numpy.ndarray, optional
        (n, 2) good time intervals, s on the EVENTS header's time reference; ALTAZ only.
    """

    ra: float
    dec: float
    header: Mapping = field(default_factory=dict)
    gti: np.ndarray | None = None

    @cached_property
    def epochs(self) -> np.ndarray:
        """Times (s) in the middle of equal shares of the good time, none longer than EPOCH_S.

        The midpoint rule over the run's good time: an average over these
        times is one over the run's exposure.
        """
        if self.gti is None or len(self.gti) == 0:
            raise ValueError("the run's good time intervals are needed (ALTAZ alignment)")
        gti = np.asarray(self.gti, dtype=np.float64).reshape(-1, 2)
        total = float(np.sum(gti[:, 1] - gti[:, 0]))
        n = max(1, int(np.ceil(total / EPOCH_S)))
        return times_in_gtis((np.arange(n) + 0.5) * total / n, gti)

    @cached_property
    def altaz_maps(self) -> np.ndarray:
        """Maps from the RADEC to the ALTAZ FoV frame at the :attr:`epochs`, (n, 3, 3).

        As :func:`fov_maps` (the kernel's field rotation is a spline through
        those); computed once per run.
        """
        header = {**self.header, "RA_PNT": self.ra, "DEC_PNT": self.dec}
        return fov_maps(header, self.epochs / seconds_per_time_unit(self.header))

    def fov_to_icrs(self, alignment: str) -> np.ndarray:
        """Linear maps from FoV vectors of ``alignment`` to ICRS vectors, (n_epochs, 3, 3).

        One epoch for RADEC (the transpose of :func:`offset_frame_matrix`), the
        :attr:`epochs` for ALTAZ (through the inverse of :attr:`altaz_maps`);
        the images are unit vectors to ~1e-5 (aberration).
        """
        to_icrs = offset_frame_matrix(self.ra, self.dec).T
        if alignment == "RADEC":
            return to_icrs[None]
        if alignment != "ALTAZ":
            raise ValueError(f"alignment must be RADEC or ALTAZ, got {alignment!r}")
        return to_icrs @ np.linalg.inv(self.altaz_maps)
