"""What the data must say before a run is used: unique ids, sane pointing, GTIs, valid events."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import RunError, StoreError
from .gadf import string_codes
from .index_table import IndexTable

log = logging.getLogger(__name__)

#: Default largest fraction of a run's events that may be dropped (outside GTIs or invalid).
MAX_DROPPED_FRACTION = 0.01

#: Per-run counters, as partial attributes, header keywords and OBS_INDEX columns.
RUN_COUNTERS = {
    "n_used": ("NUSED", "N_USED", "events used (inside a GTI, valid)"),
    "n_drop_gti": ("NDROPGTI", "N_DROP_GTI", "events dropped: outside every GTI"),
    "n_drop_bad": ("NDROPBAD", "N_DROP_BAD", "events dropped: non-finite or <= 0 values"),
}

SECONDS_PER_DAY = 86400.0


def duplicates(values) -> list:
    """Values that occur more than once, sorted."""
    unique, counts = np.unique(np.asarray(values), return_counts=True)
    return unique[counts > 1].tolist()


def check_unique_ids(hdu_index: IndexTable, obs_index: IndexTable, base_dir) -> None:
    """Refuse null OBS_IDs, repeated OBS_IDs in the obs-index, repeated (OBS_ID, HDU_TYPE).

    Raises
    ------
    StoreError
        Naming the index and the null or repeated ids.
    """
    for what, index in (("HDU index", hdu_index), ("observation index", obs_index)):
        if index["OBS_ID"].dtype.kind == "f" and not np.isfinite(index["OBS_ID"]).all():
            raise StoreError(f"{what} of {base_dir} has rows without an OBS_ID (null)")
    repeated = duplicates(np.asarray(obs_index["OBS_ID"], dtype=np.int64))
    if repeated:
        raise StoreError(
            f"observation index of {base_dir} lists OBS_ID {_listed(repeated)} more than once"
        )
    obs = np.asarray(hdu_index["OBS_ID"], dtype=np.int64)
    codes, types = string_codes(hdu_index["HDU_TYPE"])
    kinds, kind_of = np.unique(np.char.lower(types), return_inverse=True)
    kind = kind_of.reshape(-1)[codes]
    order = np.lexsort((kind, obs))
    again = np.flatnonzero((np.diff(obs[order]) == 0) & (np.diff(kind[order]) == 0)) + 1
    repeated = sorted({f"{obs[i]} {kinds[kind[i]]}" for i in order[again].tolist()})
    if repeated:
        raise StoreError(
            f"HDU index of {base_dir} lists (OBS_ID HDU_TYPE) {_listed(repeated)} more than once"
        )


def _listed(values: list, limit: int = 10) -> str:
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def check_pointing(obs_id: int, path: str, ra_deg: float, dec_deg: float) -> None:
    """Refuse a pointing outside RA [0, 360] deg, Dec [-90, 90] deg (RunError)."""
    if not (0.0 <= ra_deg <= 360.0 and -90.0 <= dec_deg <= 90.0):
        raise RunError(
            obs_id,
            path,
            f"impossible pointing RA_PNT={ra_deg} deg, DEC_PNT={dec_deg} deg "
            "(RA must be in [0, 360], Dec in [-90, 90])",
        )


def merged_gtis(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Sort and merge good time intervals.

    Parameters
    ----------
    start, stop : numpy.ndarray
        Interval bounds, any one time unit.

    Returns
    -------
    start, stop : numpy.ndarray
        Disjoint intervals in time order (touching ones joined).
    overlap : float
        Time counted more than once by the input intervals, same unit.
    """
    given = np.asarray(start)
    start, stop = np.asarray(start, float), np.asarray(stop, float)
    if (given[1:] >= given[:-1]).all() and (start[1:] > stop[:-1]).all():
        # In order and disjoint already: nothing to merge, and no overlap (0, or NaN
        # where a bound is not finite, as the merge below gives).
        total = np.sum(stop - start)
        return start, stop, float(total - total)
    order = np.argsort(given, kind="stable")
    start, stop = start[order], stop[order]
    merged_start, merged_stop = [], []
    for lo, hi in zip(start.tolist(), stop.tolist()):
        if merged_stop and lo <= merged_stop[-1]:
            merged_stop[-1] = max(merged_stop[-1], hi)
        else:
            merged_start.append(lo)
            merged_stop.append(hi)
    out_start, out_stop = np.array(merged_start), np.array(merged_stop)
    overlap = float(np.sum(stop - start) - np.sum(out_stop - out_start))
    return out_start, out_stop, overlap


def inside_gtis(time: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Whether each time lies in one of the sorted, disjoint intervals ``[start, stop]``."""
    if start.size == 1:  # the usual case, without a search
        return (time >= start[0]) & (time <= stop[0])
    index = np.searchsorted(start, time, side="right") - 1
    safe = np.clip(index, 0, None)
    return (index >= 0) & (time <= stop[safe]) if start.size else np.zeros(time.shape, bool)


def mjd_reference(header) -> float | None:
    """The header's time reference, MJD (``MJDREFI`` + ``MJDREFF`` or ``MJDREF``), or None."""
    if "MJDREFI" in header:
        return float(header["MJDREFI"]) + float(header.get("MJDREFF", 0.0))
    value = header.get("MJDREF")
    return float(value) if isinstance(value, (int, float)) else None


def gti_shift_s(events_header, gti_header) -> float:
    """Seconds to add to GTI times to put them on the EVENTS time reference."""
    events_ref, gti_ref = mjd_reference(events_header), mjd_reference(gti_header)
    if events_ref is None or gti_ref is None:
        return 0.0
    return (gti_ref - events_ref) * SECONDS_PER_DAY


@dataclass
class EventCounts:
    """How many of a run's events were read, used and dropped (and why)."""

    n_events: int
    n_used: int
    n_drop_gti: int
    n_drop_bad: int

    def as_attrs(self) -> dict[str, int]:
        """The counters as partial attributes (``n_events`` is read, in range or not)."""
        return asdict(self)


def valid_events(
    energy: np.ndarray, ra: np.ndarray, dec: np.ndarray, in_gti: np.ndarray
) -> tuple[np.ndarray, EventCounts]:
    """Mask of the events to use and the counts of those dropped.

    An event is dropped as bad if its energy is not finite and > 0, or RA/Dec
    is not finite; as outside the GTIs if it is valid but outside every GTI.
    """
    with np.errstate(invalid="ignore"):
        good = np.isfinite(energy) & (energy > 0) & np.isfinite(ra) & np.isfinite(dec)
    keep = good & in_gti
    counts = EventCounts(
        n_events=int(energy.size),
        n_used=int(np.count_nonzero(keep)),
        n_drop_gti=int(np.count_nonzero(good & ~in_gti)),
        n_drop_bad=int(np.count_nonzero(~good)),
    )
    return keep, counts


def check_dropped(obs_id: int, path: str, counts: EventCounts, max_fraction: float) -> None:
    """Refuse a run that lost more than ``max_fraction`` of its events (RunError)."""
    dropped = counts.n_drop_gti + counts.n_drop_bad
    if counts.n_events and dropped > max_fraction * counts.n_events:
        raise RunError(
            obs_id,
            path,
            f"{dropped} of {counts.n_events} events dropped ({counts.n_drop_gti} outside every "
            f"GTI, {counts.n_drop_bad} with non-finite or <= 0 ENERGY/RA/DEC), more than the "
            f"allowed fraction {max_fraction:g} (checks.max_dropped_fraction)",
        )
    if dropped:
        log.debug(
            "run %d: %d of %d events dropped (%d outside every GTI, %d invalid)",
            obs_id,
            dropped,
            counts.n_events,
            counts.n_drop_gti,
            counts.n_drop_bad,
        )


def with_run_counters(obs_index: IndexTable, run_stats: dict[int, dict]) -> IndexTable:
    """The bundle's OBS_INDEX with ``N_READ`` and :data:`RUN_COUNTERS` columns (-1: not read)."""
    obs = np.asarray(obs_index["OBS_ID"], dtype=np.int64)
    table = obs_index
    columns = {"n_events": "N_READ", **{k: v[1] for k, v in RUN_COUNTERS.items()}}
    for key, column in columns.items():
        values = [int(run_stats.get(int(o), {}).get(key, -1)) for o in obs]
        table = table.with_column(column, np.array(values, dtype=np.int64))
    return table
