"""Observatory time and Earth orientation with ERFA: event times to UTC, UT1 - UTC and polar
motion, and directions from ICRS to observed Alt/Az as astropy's ``AltAz`` frame gives them.

ERFA is the library under astropy's coordinates; called directly, one run's
few dozen times cost about a millisecond, and neither ``astropy.coordinates``
nor ``astropy.time`` is imported nor astropy's IERS table loaded (1.6-3 s a
process). :func:`time_reference_and_unit` and :func:`observatory_location`
give the astropy objects of a header, for the simulation and the tests.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

DEG = np.pi / 180.0
#: Seconds per unit of the ``TIMEUNIT`` keyword.
TIME_UNIT_TO_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
#: ``TIMEREF`` values whose times are those of the observatory to well under a second.
TOPOCENTRIC_TIMEREFS = {"", "LOCAL", "TOPOCENTER", "GEOCENTER"}
#: Seconds to add to a time of these scales (``TIMESYS``) for TAI (TDB taken as TT: < 2 ms).
SCALE_TO_TAI_S = {"TT": -32.184, "TDB": -32.184, "TAI": 0.0, "GPS": 19.0}
#: Longest spacing (s) of the knots of the Earth's motion and precession-nutation (linear between).
SLOW_KNOT_SPACING_S = 3600.0


def seconds_per_time_unit(header: Mapping) -> float:
    """Seconds per unit of the ``TIME`` column (``TIMEUNIT``, default s) of an EVENTS header.

    Raises ValueError if ``TIMEREF`` is not topocentric to well under a second
    (barycentric times would put the field rotation off by minutes) or
    ``TIMEUNIT`` is not a time unit.
    """
    timeref = str(header.get("TIMEREF", "")).strip().upper()
    if timeref not in TOPOCENTRIC_TIMEREFS:
        raise ValueError(f"TIMEREF = {timeref!r}: event times are not those of the observatory")
    unit = str(header.get("TIMEUNIT", "s")).strip().lower()
    if unit not in TIME_UNIT_TO_S:
        raise ValueError(f"TIMEUNIT = {unit!r} is not a time unit")
    return TIME_UNIT_TO_S[unit]


def time_reference_and_unit(header: Mapping):
    """Reference time (astropy Time) and seconds per ``TIME`` unit of an EVENTS header.

    ``MJDREFI`` + ``MJDREFF`` in the scale ``TIMESYS`` (default TT, as gammapy);
    the unit and checks of :func:`seconds_per_time_unit`.
    """
    from astropy.time import Time

    seconds = seconds_per_time_unit(header)
    scale = str(header.get("TIMESYS", "TT")).strip().lower()
    reference = Time(float(header["MJDREFI"]), float(header["MJDREFF"]), format="mjd", scale=scale)
    return reference, seconds


def observatory_location(header: Mapping):
    """The observatory of an EVENTS header, an astropy ``EarthLocation`` (:func:`site_of`)."""
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    longitude, latitude, height = site_of(header)
    return EarthLocation(lon=longitude * u.rad, lat=latitude * u.rad, height=height * u.m)


def utc_dates(header: Mapping, times) -> tuple[np.ndarray, np.ndarray]:
    """UTC, as ERFA's two-part quasi Julian dates, of event times of an EVENTS header.

    ``MJDREFI`` + ``MJDREFF`` in the scale ``TIMESYS`` (default TT, as gammapy),
    plus the times as elapsed seconds (``TIMEUNIT``, default s), as gammapy adds
    them. TT, TAI, GPS and UTC are converted with ERFA (its leap-second table,
    as astropy's); TDB is taken as TT (they differ by < 2 ms, which moves the
    field by < 1e-4 arcsec); other scales go through astropy's ``Time``. Raises
    ValueError as :func:`seconds_per_time_unit`.

    Parameters
    ----------
    header : Mapping
        EVENTS header.
    times : array-like
        Times in the units of the ``TIME`` column.

    Returns
    -------
    utc1, utc2 : numpy.ndarray
        float64, same shape as ``times``.
    """
    import erfa

    seconds = np.asarray(times, dtype=np.float64) * seconds_per_time_unit(header)
    reference = 2400000.5 + float(header["MJDREFI"]), float(header["MJDREFF"])
    scale = str(header.get("TIMESYS", "TT")).strip().upper()
    if scale == "UTC":  # elapsed SI seconds, as gammapy adds them (leap seconds count)
        reference = erfa.utctai(*reference)
    elif scale in SCALE_TO_TAI_S:
        reference = reference[0], reference[1] + SCALE_TO_TAI_S[scale] / 86400.0
    else:
        from astropy import units as u
        from astropy.time import Time

        utc = (Time(*reference, format="jd", scale=scale.lower()) + seconds * u.s).utc
        return utc.jd1, utc.jd2
    day1 = np.full(seconds.shape, float(reference[0]))
    return erfa.taiutc(day1, float(reference[1]) + seconds / 86400.0)


def site_of(header: Mapping) -> tuple[float, float, float]:
    """Geodetic (WGS84) east longitude and latitude (rad) and height (m) of the observatory.

    ``GEOLON``, ``GEOLAT`` (deg) and ``GEOALT`` or else ``ALTITUDE`` (m), as gammapy reads them.
    """
    height = header.get("GEOALT", header.get("ALTITUDE"))
    if height is None:
        raise KeyError("the GEOALT or ALTITUDE header keyword must be set")
    return float(header["GEOLON"]) * DEG, float(header["GEOLAT"]) * DEG, float(height)


@functools.cache
def _iers_b_layout() -> tuple[str, int, int, int, int] | None:
    """Where the daily rows of astropy's bundled IERS-B file are: (path, offset, row length,
    first MJD, number of rows), or None if the file is not there or not laid out as expected."""
    try:
        from astropy_iers_data import IERS_B_FILE
    except ImportError:
        return None
    try:
        with open(IERS_B_FILE, "rb") as file:
            head = file.read(16384)
            size = file.seek(0, 2)
        offset = 0
        for line in head.splitlines(keepends=True):
            if not line.startswith(b"#"):
                break
            offset += len(line)
        length = len(line)
        first_mjd = float(line[16:26])
        if not line.endswith(b"\n") or first_mjd != int(first_mjd) or length < 62:
            return None
        return IERS_B_FILE, offset, length, int(first_mjd), (size - offset) // length
    except (OSError, ValueError):
        return None


def _iers_b_rows(days: np.ndarray) -> np.ndarray | None:
    """(MJD, PM_x arcsec, PM_y arcsec, UT1-UTC s) rows of the IERS-B file for integer MJDs.

    Reads only those rows (fixed-length lines, seek by MJD); None if any is
    missing or does not read as the expected day.
    """
    layout = _iers_b_layout()
    if layout is None:
        return None
    path, offset, length, first, n_rows = layout
    rows = np.empty((days.size, 4))
    with open(path, "rb") as file:
        for k, day in enumerate(days.tolist()):
            if not first <= day < first + n_rows:
                return None
            file.seek(offset + (day - first) * length)
            line = file.read(length)
            try:
                rows[k] = [float(line[16:26]), float(line[26:38]), float(line[38:50]),
                           float(line[50:62])]  # fmt: skip
            except ValueError:
                return None
            if rows[k, 0] != day:
                return None
    return rows


def earth_orientation(utc1, utc2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UT1 - UTC (s) and polar motion x, y (rad) at UTC dates, as astropy interpolates them.

    Linear interpolation between the daily values of the IERS-B table that
    astropy bundles (``astropy_iers_data``; a jump of a leap second taken out of
    UT1 - UTC), which is what astropy's default IERS table holds for all dates
    that table covers, read row by row without loading the table. Dates it does
    not cover (recent ones) are asked of astropy's ``earth_orientation_table``.
    """
    utc1, utc2 = np.broadcast_arrays(np.asarray(utc1, float), np.asarray(utc2, float))
    mjd = np.floor(utc1 - 2400000.5 + utc2)
    fraction = utc1 - (2400000.5 + mjd) + utc2
    days = np.unique(mjd).astype(np.int64)
    rows = _iers_b_rows(np.union1d(days, days + 1)) if days.size else np.empty((0, 4))
    if rows is None:
        from astropy.time import Time
        from astropy.utils import iers

        when = Time(utc1, utc2, format="jd", scale="utc")
        table = iers.earth_orientation_table.get()
        x, y = table.pm_xy(when)
        return np.asarray(table.ut1_utc(when).to_value("s")), x.to_value("rad"), y.to_value("rad")
    index = np.searchsorted(rows[:, 0], mjd)
    low, high = rows[index], rows[index + 1]
    step = high - low
    step[:, 3] -= np.round(step[:, 3])  # a leap second between the two days
    values = low + fraction[..., None] * step
    arcsec = DEG / 3600.0
    return values[..., 3], values[..., 1] * arcsec, values[..., 2] * arcsec


def observer_astrometry(utc1, utc2, dut1, xp, yp, longitude, latitude, height) -> np.ndarray:
    """ERFA's ICRS-to-observed parameters (``eraASTROM``) at each UTC date, no refraction.

    ``erfa.apco13`` for each date, but with its slow and costly parts, the
    Earth's position and velocity and the CIP (precession-nutation), computed
    at knots at most :data:`SLOW_KNOT_SPACING_S` apart and interpolated
    linearly in between (as astropy's ``ErfaAstromInterpolator``; the error is
    < 1e-5 arcsec at that spacing); the Earth rotation angle (UT1), polar
    motion and TIO locator are exact at each date.
    """
    import erfa

    tt1, tt2 = erfa.taitt(*erfa.utctai(utc1, utc2))
    era = erfa.era00(*erfa.utcut1(utc1, utc2, dut1))
    days = (tt1 - tt1[0]) + tt2  # days since tt1[0]
    span = float(days.max() - days.min())
    n_knots = max(2, int(np.ceil(span * 86400.0 / SLOW_KNOT_SPACING_S)) + 1)
    knots = np.linspace(days.min(), days.max(), n_knots)
    knot1 = np.full(n_knots, tt1[0])
    heliocentric, barycentric = erfa.epv00(knot1, knots)
    cip_x, cip_y, cio_s = erfa.xys06a(knot1, knots)

    def interpolated(values):
        return np.stack(
            [np.interp(days, knots, column) for column in np.reshape(values, (n_knots, -1)).T], -1
        )

    earth = np.empty(days.shape, dtype=barycentric.dtype)
    earth["p"] = interpolated(barycentric["p"])
    earth["v"] = interpolated(barycentric["v"])
    x, y, s = (interpolated(v)[:, 0] for v in (cip_x, cip_y, cio_s))
    return erfa.apco(
        tt1, tt2, earth, interpolated(heliocentric["p"]), x, y, s, era,
        longitude, latitude, height, xp, yp, erfa.sp00(tt1, tt2), 0.0, 0.0,
    )  # fmt: skip


def icrs_to_observed(header: Mapping, times, ra_rad, dec_rad) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and zenith distance (rad) of ICRS directions at event times, no refraction.

    As astropy's ``AltAz`` frame (pressure 0) at the header's observatory:
    Earth ephemeris, light deflection, annual and diurnal aberration,
    precession-nutation, Earth rotation with UT1 - UTC and polar motion
    (:func:`earth_orientation`); agrees with astropy to ~1e-6 arcsec.

    Parameters
    ----------
    header : Mapping
        EVENTS header: time reference keywords (:func:`utc_dates`) and
        observatory (:func:`site_of`).
    times : array-like
        1-d array of times, ``TIME`` units.
    ra_rad, dec_rad : numpy.ndarray
        1-d arrays of directions (ICRS), rad.

    Returns
    -------
    azimuth, zenith : numpy.ndarray
        (n_times, n_directions), rad; azimuth from north through east.
    """
    import erfa

    longitude, latitude, height = site_of(header)
    utc1, utc2 = utc_dates(header, np.asarray(times, dtype=np.float64).ravel())
    dut1, xp, yp = earth_orientation(utc1, utc2)
    astrom = observer_astrometry(utc1, utc2, dut1, xp, yp, longitude, latitude, height)[:, None]
    azimuth, zenith, *_ = erfa.atioq(*erfa.atciqz(ra_rad, dec_rad, astrom), astrom)
    return azimuth, zenith
