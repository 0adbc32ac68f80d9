"""Pointing zenith angle computed from a run's sky pointing, time and site.

The last resort of :meth:`bkgdask.io.store.DataStore.zenith_deg`, for stores
whose obs-index and EVENTS headers give neither ``ZEN_PNT`` nor ``ALT_PNT``.
Keywords are looked up in a mapping (an EVENTS header with the obs-index row
and the obs-index header behind it):

- pointing: ``RA_PNT``, ``DEC_PNT`` (deg, ICRS);
- time: ``TSTART``/``TSTOP`` with ``MJDREFI``/``MJDREFF`` (or ``MJDREF``),
  ``TIMESYS`` and ``TIMEUNIT``; else ``DATE-OBS`` (``TIME-OBS``) and
  ``DATE-END`` (``TIME-END``), in ``TIMESYS`` (default UTC);
- site: ``GEOLON``, ``GEOLAT`` (deg), ``ALTITUDE`` (m, default 0).

The zenith is that of the pointing at the run's mid time (start alone when
the end is unknown). Earth-orientation tables are not downloaded: where
astropy's bundled ones do not reach, UT1 − UTC is taken as 0, an error below
0.01° in zenith.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

TIME_UNIT_TO_DAY = {"s": 1 / 86400, "d": 1.0, "day": 1.0, "min": 1 / 1440, "h": 1 / 24}
TIME_SCALES = ("tt", "utc", "tai", "tdb", "tcg", "tcb", "ut1")


@dataclass(frozen=True)
class PointingTime:
    """What the zenith of one run is computed from.

    Attributes
    ----------
    ra_deg, dec_deg : float
        Pointing, ICRS, deg.
    mjd_tt : float
        Mid time of the run, MJD in the TT scale, d.
    lon_deg, lat_deg, height_m : float
        Site: geodetic longitude and latitude (deg) and height (m).
    """

    ra_deg: float
    dec_deg: float
    mjd_tt: float
    lon_deg: float
    lat_deg: float
    height_m: float


def _number(info: Mapping, key: str) -> float | None:
    """A keyword's value as a finite float (strings such as '16.5' too), else None."""
    value = info.get(key)
    if isinstance(value, bool) or value is None or np.ma.is_masked(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _text(info: Mapping, *keys: str) -> str | None:
    for key in keys:
        value = info.get(key)
        if isinstance(value, (str, bytes)) and not np.ma.is_masked(value):
            value = value.decode() if isinstance(value, bytes) else value
            if value.strip():
                return value.strip()
    return None


def _time_scale(info: Mapping, default: str) -> str:
    scale = (_text(info, "TIMESYS") or default).lower()
    if scale not in TIME_SCALES:
        raise ValueError(f"unknown TIMESYS {scale!r}")
    return scale


def _mjd_from_met(info: Mapping) -> float | None:
    """Mid time from TSTART/TSTOP and the MJD reference, as MJD (TT), or None."""
    start, stop = _number(info, "TSTART"), _number(info, "TSTOP")
    mjdref = _number(info, "MJDREF")
    if mjdref is None and _number(info, "MJDREFI") is not None:
        mjdref = _number(info, "MJDREFI") + (_number(info, "MJDREFF") or 0.0)
    if start is None or mjdref is None:
        return None
    unit = (_text(info, "TIMEUNIT") or "s").lower()
    if unit not in TIME_UNIT_TO_DAY:
        raise ValueError(f"unknown TIMEUNIT {unit!r}")
    mid = start if stop is None else 0.5 * (start + stop)
    return _to_tt(mjdref + mid * TIME_UNIT_TO_DAY[unit], _time_scale(info, "tt"))


def _mjd_from_dates(info: Mapping) -> float | None:
    """Mid time from DATE-OBS/TIME-OBS and DATE-END/TIME-END, as MJD (TT), or None."""
    from astropy.time import Time

    stamps = []
    for date_keys, time_keys in ((("DATE-OBS", "DATE_OBS"), ("TIME-OBS", "TIME_OBS")),
                                 (("DATE-END", "DATE_END"), ("TIME-END", "TIME_END"))):  # fmt: skip
        date = _text(info, *date_keys)
        if date is None:
            continue
        clock = _text(info, *time_keys)
        stamps.append(date if "T" in date or clock is None else f"{date}T{clock}")
    if not stamps:
        return None
    mjds = Time(stamps, format="isot", scale=_time_scale(info, "utc")).tt.mjd
    return float(np.mean(mjds))


def _to_tt(mjd: float, scale: str) -> float:
    if scale == "tt":
        return mjd
    from astropy.time import Time

    return float(Time(mjd, format="mjd", scale=scale).tt.mjd)


def pointing_time(info: Mapping) -> tuple[PointingTime | None, str]:
    """Gather pointing, mid time and site of one run from its keywords.

    Parameters
    ----------
    info : mapping
        Keywords of the run (see the module docstring).

    Returns
    -------
    PointingTime or None, str
        The inputs, or None and what is missing (e.g. ``"no site (GEOLON/GEOLAT)"``).
    """
    ra, dec = _number(info, "RA_PNT"), _number(info, "DEC_PNT")
    if ra is None or dec is None:
        return None, "no pointing (RA_PNT/DEC_PNT)"
    lon, lat = _number(info, "GEOLON"), _number(info, "GEOLAT")
    if lon is None or lat is None:
        return None, "no site (GEOLON/GEOLAT)"
    try:
        mjd = _mjd_from_met(info)
        if mjd is None:
            mjd = _mjd_from_dates(info)
    except ValueError as exc:
        return None, f"bad time keywords: {exc}"
    if mjd is None:
        return None, "no time (TSTART with MJDREF, or DATE-OBS)"
    height = _number(info, "ALTITUDE") or 0.0
    return PointingTime(ra, dec, mjd, lon, lat, height), ""


def zenith_of_pointings(pointings: list[PointingTime]) -> np.ndarray:
    """Zenith angle of each pointing at its time and site, deg (one vectorised transform).

    Parameters
    ----------
    pointings : list of PointingTime
        Runs to compute.

    Returns
    -------
    numpy.ndarray
        Zenith angles (90° − altitude, no refraction), deg.
    """
    if not pointings:
        return np.zeros(0)
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers
    from astropy.utils.exceptions import AstropyWarning
    from erfa import ErfaWarning

    columns = {name: np.array([getattr(p, name) for p in pointings]) for name in
               ("ra_deg", "dec_deg", "mjd_tt", "lon_deg", "lat_deg", "height_m")}  # fmt: skip
    location = EarthLocation.from_geodetic(
        columns["lon_deg"] * u.deg, columns["lat_deg"] * u.deg, columns["height_m"] * u.m
    )
    sky = SkyCoord(columns["ra_deg"] * u.deg, columns["dec_deg"] * u.deg, frame="icrs")
    with (
        iers.conf.set_temp("auto_download", False),
        iers.conf.set_temp("auto_max_age", None),
        iers.conf.set_temp("iers_degraded_accuracy", "ignore"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", AstropyWarning)
        warnings.simplefilter("ignore", ErfaWarning)
        frame = AltAz(obstime=Time(columns["mjd_tt"], format="mjd", scale="tt"), location=location)
        altitude = sky.transform_to(frame).alt.deg
    return 90.0 - np.asarray(altitude, dtype=np.float64)
