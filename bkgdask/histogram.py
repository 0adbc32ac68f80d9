"""The per-observation kernel: events -> labelled counts and exposure.

This is what one Dask task runs for one observation. It imports neither
gammapy nor astropy tables: the lean reader of :mod:`bkgdask.fitsread` gives
plain numpy columns, offsets are exact float64 spherical separations and the
histogram is one ``bincount``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .binning import Binning
from .errors import RunError
from .fitsread import FitsFormatError, TableHDU, read_tables

ENERGY_TO_TEV = {"tev": 1.0, "gev": 1e-3, "mev": 1e-6, "kev": 1e-9, "ev": 1e-12, "": 1.0}
ANGLE_TO_DEG = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "rad": np.degrees(1.0), "": 1.0}
TIME_TO_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}


@dataclass(frozen=True)
class RunInput:
    """Where one observation's events and GTIs are, and what the index says of it.

    Parameters
    ----------
    obs_id : int
        Observation ID.
    events_file, gti_file : str
        Files holding the EVENTS and GTI HDUs (often the same file).
    events_hdu, gti_hdu : str
        ``EXTNAME`` of those HDUs.
    zenith_deg : float
        Pointing zenith angle used for grouping, deg.
    ra_pnt_deg, dec_pnt_deg : float or None
        Pointing from the obs-index, deg; used only when the EVENTS header
        lacks ``RA_PNT``/``DEC_PNT``.
    """

    obs_id: int
    events_file: str
    events_hdu: str
    gti_file: str
    gti_hdu: str
    zenith_deg: float
    ra_pnt_deg: float | None = None
    dec_pnt_deg: float | None = None


def angular_separation_deg(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle separation by the Vincenty formula, float64 throughout.

    Accurate at all separations, at the poles and across longitude 0.

    Parameters
    ----------
    lon1, lat1, lon2, lat2 : float or numpy.ndarray
        Longitudes and latitudes, deg.

    Returns
    -------
    numpy.ndarray
        Separation, deg.
    """
    lon1, lat1, lon2, lat2 = (
        np.deg2rad(np.asarray(x, dtype=np.float64)) for x in (lon1, lat1, lon2, lat2)
    )
    dlon = lon2 - lon1
    sin_dlon, cos_dlon = np.sin(dlon), np.cos(dlon)
    sin1, cos1 = np.sin(lat1), np.cos(lat1)
    sin2, cos2 = np.sin(lat2), np.cos(lat2)
    num1 = cos2 * sin_dlon
    num2 = cos1 * sin2 - sin1 * cos2 * cos_dlon
    denominator = sin1 * sin2 + cos1 * cos2 * cos_dlon
    return np.rad2deg(np.arctan2(np.hypot(num1, num2), denominator))


def histogram_counts(
    energy_tev: np.ndarray, offset_deg: np.ndarray, binning: Binning
) -> np.ndarray:
    """Count events in half-open ``[lo, hi)`` (energy, offset) bins.

    Returns
    -------
    numpy.ndarray
        int64 counts of shape ``binning.shape``.
    """
    n_energy, n_offset = binning.shape
    i_energy = np.searchsorted(binning.energy_edges, energy_tev, side="right") - 1
    i_offset = np.searchsorted(binning.offset_edges, offset_deg, side="right") - 1
    inside = (i_energy >= 0) & (i_energy < n_energy) & (i_offset >= 0) & (i_offset < n_offset)
    flat = i_energy[inside] * n_offset + i_offset[inside]
    counts = np.bincount(flat, minlength=n_energy * n_offset)
    return counts.astype(np.int64, copy=False).reshape(n_energy, n_offset)


def _unit_factor(table: TableHDU, column: str, factors: dict[str, float], what: str) -> float:
    unit = table.units.get(column, "")
    try:
        return factors[unit.strip().lower()]
    except KeyError:
        raise FitsFormatError(f"column {column!r} has unit {unit!r}, not a {what} unit") from None


def _read_run(run: RunInput) -> tuple[TableHDU, TableHDU]:
    """Read EVENTS and GTI, turning every failure into a RunError naming run and file."""
    wanted = {run.events_file: {run.events_hdu: ["ENERGY", "RA", "DEC"]}}
    wanted.setdefault(run.gti_file, {})[run.gti_hdu] = ["START", "STOP"]
    tables: dict[str, TableHDU] = {}
    for path, hdus in wanted.items():
        try:
            tables.update(read_tables(path, hdus))
        except FileNotFoundError:
            raise RunError(run.obs_id, path, "file not found") from None
        except (FitsFormatError, OSError, EOFError, zlib.error, KeyError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            raise RunError(run.obs_id, path, f"cannot read: {reason}") from exc
    return tables[run.events_hdu], tables[run.gti_hdu]


def observation_time_s(gti: TableHDU) -> float:
    """Sum of the good time intervals, s."""
    factor = _unit_factor(gti, "START", TIME_TO_S, "time")
    start, stop = gti.columns["START"], gti.columns["STOP"]
    if np.any(stop < start):
        raise FitsFormatError("GTI has STOP < START")
    return float(np.sum(stop - start)) * factor


def _pointing(run: RunInput, header: dict) -> tuple[float, float]:
    ra, dec = header.get("RA_PNT"), header.get("DEC_PNT")
    if not isinstance(ra, (int, float)) or not isinstance(dec, (int, float)):
        ra, dec = run.ra_pnt_deg, run.dec_pnt_deg
    if ra is None or dec is None or not (np.isfinite(ra) and np.isfinite(dec)):
        raise RunError(run.obs_id, run.events_file, "no pointing: RA_PNT/DEC_PNT missing")
    return float(ra), float(dec)


def histogram_run(run: RunInput, binning: Binning) -> xr.Dataset:
    """Histogram one observation: the "chunk" step of the reduction.

    Parameters
    ----------
    run : RunInput
        The observation to read.
    binning : Binning
        Energy (TeV) and offset (deg) bins.

    Returns
    -------
    xarray.Dataset
        ``counts`` (int64) and ``exposure`` (float64, s MeV sr) over dims
        ``energy`` and ``offset``, with bin edges as coordinates; attributes
        ``obs_id``, ``zenith`` (deg), ``observation_time`` (s, sum of GTIs)
        and ``n_events`` (events read, in range or not).

    Raises
    ------
    RunError
        On any problem with the run's files, naming the run and the file.
    """
    events, gti = _read_run(run)
    try:
        time_s = observation_time_s(gti)
    except FitsFormatError as exc:
        raise RunError(run.obs_id, run.gti_file, str(exc)) from None
    if not time_s > 0:
        raise RunError(run.obs_id, run.gti_file, f"zero observation time (GTI sum {time_s} s)")
    try:
        e_factor = _unit_factor(events, "ENERGY", ENERGY_TO_TEV, "energy")
        ra_factor = _unit_factor(events, "RA", ANGLE_TO_DEG, "angle")
        dec_factor = _unit_factor(events, "DEC", ANGLE_TO_DEG, "angle")
    except FitsFormatError as exc:
        raise RunError(run.obs_id, run.events_file, str(exc)) from None
    ra_pnt, dec_pnt = _pointing(run, events.header)
    columns = events.columns
    energy = columns["ENERGY"].astype(np.float64) * e_factor
    offset = angular_separation_deg(
        ra_pnt,
        dec_pnt,
        columns["RA"].astype(np.float64) * ra_factor,
        columns["DEC"].astype(np.float64) * dec_factor,
    )
    counts = histogram_counts(energy, offset, binning)
    attrs = {
        "obs_id": run.obs_id,
        "zenith": run.zenith_deg,
        "observation_time": time_s,
        "n_events": int(energy.size),
    }
    return labelled_partial(counts, binning.exposure(time_s), binning, attrs)


def labelled_partial(
    counts: np.ndarray, exposure: np.ndarray, binning: Binning, attrs: dict
) -> xr.Dataset:
    """Wrap counts and exposure arrays as a labelled Dataset."""
    e_lo, e_hi = binning.energy_edges[:-1], binning.energy_edges[1:]
    o_lo, o_hi = binning.offset_edges[:-1], binning.offset_edges[1:]
    coords = {
        "energy": ("energy", np.sqrt(e_lo * e_hi), {"units": "TeV"}),
        "energy_lo": ("energy", e_lo, {"units": "TeV"}),
        "energy_hi": ("energy", e_hi, {"units": "TeV"}),
        "offset": ("offset", 0.5 * (o_lo + o_hi), {"units": "deg"}),
        "offset_lo": ("offset", o_lo, {"units": "deg"}),
        "offset_hi": ("offset", o_hi, {"units": "deg"}),
    }
    dims = ("energy", "offset")
    return xr.Dataset(
        {
            "counts": (dims, counts, {"units": ""}),
            "exposure": (dims, exposure, {"units": "s MeV sr"}),
        },
        coords=coords,
        attrs=attrs,
    )
