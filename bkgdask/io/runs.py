"""One observation's inputs: where its files are, and its events and GTIs read into numpy."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import RunError
from .checks import EventCounts, check_pointing, gti_shift_s, inside_gtis, merged_gtis, valid_events
from .fitsread import INFLATE_ERRORS, FitsFormatError, TableHDU, read_tables

log = logging.getLogger(__name__)

ENERGY_TO_TEV = {"tev": 1.0, "gev": 1e-3, "mev": 1e-6, "kev": 1e-9, "ev": 1e-12, "": 1.0}
ANGLE_TO_DEG = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "rad": np.degrees(1.0), "": 1.0}
TIME_TO_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}

#: EVENTS columns every model reads: energy and sky position.
EVENT_COLUMNS = ("ENERGY", "RA", "DEC")


@dataclass(frozen=True, slots=True)
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
    exclusion : tuple
        Exclusion regions of this run (``bkgdask.models.exclusion.Circle`` or
        ``SkyShape``): their events are dropped and their solid angle removed.
    """

    obs_id: int
    events_file: str
    events_hdu: str
    gti_file: str
    gti_hdu: str
    zenith_deg: float
    ra_pnt_deg: float | None = None
    dec_pnt_deg: float | None = None
    exclusion: tuple = ()


@dataclass
class RunEvents:
    """One run's events in bkgdask's units, with its pointing and observation time.

    Attributes
    ----------
    obs_id : int
        Observation ID.
    energy : numpy.ndarray
        Reconstructed energies, TeV, float64.
    ra, dec : numpy.ndarray
        Event positions, deg, float64.
    ra_pnt, dec_pnt : float
        Pointing, deg.
    observation_time : float
        Sum of the GTIs, s.
    header : Mapping
        The EVENTS header.
    columns : dict of str to numpy.ndarray
        Further EVENTS columns read on request, as stored.
    counts : EventCounts, optional
        Events read, used and dropped.
    gti : numpy.ndarray, optional
        (n, 2) good time intervals, merged, s on the EVENTS header's time reference.
    """

    obs_id: int
    energy: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    ra_pnt: float
    dec_pnt: float
    observation_time: float
    header: object
    columns: dict = field(default_factory=dict)
    counts: EventCounts | None = None
    gti: np.ndarray | None = None


def read_failure(obs_id: int, path: str, exc: BaseException) -> RunError:
    """The :class:`RunError` for any failure to read ``path`` of run ``obs_id``."""
    if isinstance(exc, FileNotFoundError):
        return RunError(obs_id, path, "file not found")
    reason = str(exc) or type(exc).__name__
    return RunError(obs_id, path, f"cannot read: {reason}")


#: Exceptions that mean "this file cannot be read" (turned into RunError by read_failure).
READ_ERRORS = (FitsFormatError, OSError, KeyError, ValueError, *INFLATE_ERRORS)


def unit_factor(table: TableHDU, column: str, factors: dict[str, float], what: str) -> float:
    """Factor from a column's ``TUNIT`` to bkgdask's unit (FitsFormatError if unknown)."""
    unit = table.units.get(column, "")
    try:
        return factors[unit.strip().lower()]
    except KeyError:
        raise FitsFormatError(f"column {column!r} has unit {unit!r}, not a {what} unit") from None


def observation_time_s(gti: TableHDU) -> float:
    """Length of the union of the good time intervals, s (overlaps counted once)."""
    start, stop = gti_intervals_s(gti)
    return float(np.sum(stop - start))


def gti_intervals_s(gti: TableHDU) -> tuple[np.ndarray, np.ndarray]:
    """The GTIs sorted and merged, s on the GTI's time reference (overlaps warned about)."""
    factor = unit_factor(gti, "START", TIME_TO_S, "time")
    start, stop = gti.columns["START"], gti.columns["STOP"]
    if not (np.isfinite(start).all() and np.isfinite(stop).all()):
        raise FitsFormatError("GTI has non-finite START or STOP")
    if (stop < start).any():
        raise FitsFormatError("GTI has STOP < START")
    if factor != 1.0:  # (x * 1.0 == x: the times as they are)
        start, stop = start * factor, stop * factor
    start, stop, overlap = merged_gtis(start, stop)
    if overlap > 0:
        log.warning("GTIs overlap by %.6g s: counted once", overlap)
    return start, stop


def _read_tables(run: RunInput, extra_columns: tuple[str, ...]) -> tuple[TableHDU, TableHDU]:
    wanted = {run.events_file: {run.events_hdu: [*EVENT_COLUMNS, "TIME", *extra_columns]}}
    wanted.setdefault(run.gti_file, {})[run.gti_hdu] = ["START", "STOP"]
    tables: dict[str, TableHDU] = {}
    for path, hdus in wanted.items():
        try:
            tables.update(read_tables(path, hdus))
        except READ_ERRORS as exc:
            raise read_failure(run.obs_id, path, exc) from exc
    return tables[run.events_hdu], tables[run.gti_hdu]


def _pointing(run: RunInput, header) -> tuple[float, float]:
    ra, dec = header.get("RA_PNT"), header.get("DEC_PNT")
    if not isinstance(ra, (int, float)) or not isinstance(dec, (int, float)):
        ra, dec = run.ra_pnt_deg, run.dec_pnt_deg
    if ra is None or dec is None or not (np.isfinite(ra) and np.isfinite(dec)):
        raise RunError(run.obs_id, run.events_file, "no pointing: RA_PNT/DEC_PNT missing")
    return float(ra), float(dec)


def read_run(run: RunInput, extra_columns: tuple[str, ...] = ()) -> RunEvents:
    """Read one run's events (TeV, deg) and observation time (s).

    Raises
    ------
    RunError
        On any problem with the run's files, naming the run and the file.
    """
    extra_wanted = tuple(c for c in extra_columns if c not in (*EVENT_COLUMNS, "TIME"))
    events, gti = _read_tables(run, extra_wanted)
    try:
        gti_start, gti_stop = gti_intervals_s(gti)
        time_s = float(np.sum(gti_stop - gti_start))
    except FitsFormatError as exc:
        raise RunError(run.obs_id, run.gti_file, str(exc)) from None
    if not time_s > 0:
        raise RunError(run.obs_id, run.gti_file, f"zero observation time (GTI sum {time_s} s)")
    try:
        e_factor = unit_factor(events, "ENERGY", ENERGY_TO_TEV, "energy")
        ra_factor = unit_factor(events, "RA", ANGLE_TO_DEG, "angle")
        dec_factor = unit_factor(events, "DEC", ANGLE_TO_DEG, "angle")
        time_factor = unit_factor(events, "TIME", TIME_TO_S, "time")
    except FitsFormatError as exc:
        raise RunError(run.obs_id, run.events_file, str(exc)) from None
    ra_pnt, dec_pnt = _pointing(run, events.header)
    check_pointing(run.obs_id, run.events_file, ra_pnt, dec_pnt)
    columns = events.columns
    time = columns["TIME"] * time_factor if time_factor != 1.0 else columns["TIME"]
    shift_s = gti_shift_s(events.header, gti.header)
    gti_start, gti_stop = gti_start + shift_s, gti_stop + shift_s
    in_gti = inside_gtis(time, gti_start, gti_stop)
    keep, counts = valid_events(columns["ENERGY"], columns["RA"], columns["DEC"], in_gti)
    if counts.n_used < counts.n_events:
        columns = {name: values[keep] for name, values in columns.items()}
    energy, ra, dec = columns["ENERGY"], columns["RA"], columns["DEC"]
    if e_factor != 1.0:
        energy = energy * e_factor
    if ra_factor != 1.0 or dec_factor != 1.0:
        ra, dec = ra * ra_factor, dec * dec_factor
    extra = {c: columns[c] for c in extra_columns}
    gti_s = np.column_stack([gti_start, gti_stop])
    return RunEvents(
        run.obs_id, energy, ra, dec, ra_pnt, dec_pnt, time_s, events.header, extra, counts, gti_s
    )
