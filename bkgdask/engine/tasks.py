"""The per-observation kernel: events -> labelled counts and exposure.

This is what one Dask task runs for one observation. It imports neither
gammapy nor astropy: the lean reader of :mod:`bkgdask.fitsread` gives plain
numpy columns and :mod:`bkgdask.kernel` bins energies and exact float64
offsets in one pass.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .binning import Binning
from .errors import RunError
from .fitsread import INFLATE_ERRORS, FitsFormatError, TableHDU, read_tables
from .kernel import count_events, hav_edges

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
        except (FitsFormatError, OSError, KeyError, ValueError, *INFLATE_ERRORS) as exc:
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


def histogram_run(run: RunInput, binning: Binning, compiled: bool | None = None) -> xr.Dataset:
    """Histogram one observation: the "chunk" step of the reduction.

    Parameters
    ----------
    run : RunInput
        The observation to read.
    binning : Binning
        Energy (TeV) and offset (deg) bins.
    compiled : bool, optional
        Use the numba-compiled loop (default: if numba is installed).

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
    energy, ra, dec = columns["ENERGY"], columns["RA"], columns["DEC"]
    if e_factor != 1.0:
        energy = energy * e_factor
    if ra_factor != 1.0 or dec_factor != 1.0:
        ra, dec = ra * ra_factor, dec * dec_factor
    counts = count_events(
        energy,
        ra,
        dec,
        ra_pnt,
        dec_pnt,
        binning.energy_edges,
        _hav_edges(binning.offset_edges.tobytes()),
        compiled=compiled,
    )
    attrs = {
        "obs_id": run.obs_id,
        "zenith": run.zenith_deg,
        "observation_time": time_s,
        "n_events": int(energy.size),
    }
    return labelled_partial(counts, binning.exposure(time_s), binning, attrs)


class RunBatch:
    """The runs of one histogram task.

    A plain holder rather than a list or dataclass, so that Dask does not walk
    every field of every run when the graph is built (10x faster planning).
    """

    __slots__ = ("runs",)

    def __init__(self, runs):
        self.runs = tuple(runs)

    def __reduce__(self):
        return (RunBatch, (self.runs,))


def histogram_runs(
    runs: RunBatch | list[RunInput], binning: Binning, compiled: bool | None = None
) -> xr.Dataset:
    """Histogram several runs in one task: each run labelled, then summed (the chunk step).

    Returns the single run's partial for one run, else their
    :func:`~bkgdask.reduce.combine_partials` sum.
    """
    from .reduce import combine_partials

    runs = runs.runs if isinstance(runs, RunBatch) else runs
    partials = [histogram_run(run, binning, compiled) for run in runs]
    return partials[0] if len(partials) == 1 else combine_partials(partials)


def labelled_partial(
    counts: np.ndarray, exposure: np.ndarray, binning: Binning, attrs: dict
) -> xr.Dataset:
    """Wrap counts and exposure arrays as a labelled Dataset (coordinates shared per binning)."""
    out = _template(binning.energy_edges.tobytes(), binning.offset_edges.tobytes()).copy(
        data={"counts": counts, "exposure": exposure}
    )
    out.attrs = dict(attrs)
    return out


@functools.lru_cache(maxsize=16)
def _hav_edges(offset_edges: bytes) -> np.ndarray:
    return hav_edges(np.frombuffer(offset_edges, dtype=np.float64))


@functools.lru_cache(maxsize=16)
def _template(energy_edges: bytes, offset_edges: bytes) -> xr.Dataset:
    e_edges = np.frombuffer(energy_edges, dtype=np.float64)
    o_edges = np.frombuffer(offset_edges, dtype=np.float64)
    e_lo, e_hi = e_edges[:-1], e_edges[1:]
    o_lo, o_hi = o_edges[:-1], o_edges[1:]
    coords = {
        "energy": ("energy", np.sqrt(e_lo * e_hi), {"units": "TeV"}),
        "energy_lo": ("energy", e_lo, {"units": "TeV"}),
        "energy_hi": ("energy", e_hi, {"units": "TeV"}),
        "offset": ("offset", 0.5 * (o_lo + o_hi), {"units": "deg"}),
        "offset_lo": ("offset", o_lo, {"units": "deg"}),
        "offset_hi": ("offset", o_hi, {"units": "deg"}),
    }
    dims = ("energy", "offset")
    shape = (e_lo.size, o_lo.size)
    return xr.Dataset(
        {
            "counts": (dims, np.zeros(shape, np.int64), {"units": ""}),
            "exposure": (dims, np.zeros(shape), {"units": "s MeV sr"}),
        },
        coords=coords,
    )
