"""The per-run side of a build's inputs: a run read through the event filter, and its extent.

Imports neither gammapy nor astropy: it runs in every histogram task. The
decisions it implements are described in :mod:`bkgdask.engine.inputs`.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import RunError, SelectionError
from ..io.event_filter import EventFilter
from ..io.fitsread import read_header
from ..io.runs import READ_ERRORS, RunEvents, RunInput, read_run
from ..models.inputs import extent_of
from ..models.kernel2d import max_haversine

__all__ = ["input_attrs", "read_filtered_run"]


def read_filtered_run(
    run: RunInput, event_filter: EventFilter | None, extra_columns: tuple[str, ...] = ()
) -> tuple[RunEvents, int]:
    """Read one run and keep the events an event filter passes.

    Parameters
    ----------
    run : RunInput
        The observation.
    event_filter : EventFilter or None
        The compiled filter; None keeps every event.
    extra_columns : tuple of str
        Further EVENTS columns the model kind needs (e.g. ``TIME``).

    Returns
    -------
    events : RunEvents
        The kept events (TeV, deg), with the run's observation time (s).
    n_read : int
        Events read from the file, before the filter.

    Raises
    ------
    RunError
        On any problem with the run's files, or a filter column missing from
        its EVENTS HDU (naming the column, the run and the file).
    """
    columns = (*extra_columns, *(event_filter.columns if event_filter is not None else ()))
    try:
        events = read_run(run, extra_columns=tuple(dict.fromkeys(columns)))
    except RunError as exc:
        if event_filter is not None:
            _raise_if_column_missing(run, event_filter, exc)
        raise
    n_read = int(events.energy.size)
    if event_filter is None:
        return events, n_read
    try:
        keep = event_filter.mask(events.columns)
    except SelectionError as exc:
        raise RunError(run.obs_id, run.events_file, str(exc)) from None
    columns = {name: values[keep] for name, values in events.columns.items()}
    kept = replace(
        events,
        energy=events.energy[keep],
        ra=events.ra[keep],
        dec=events.dec[keep],
        columns=columns,
    )
    return kept, n_read


def _raise_if_column_missing(run: RunInput, event_filter: EventFilter, cause: RunError) -> None:
    try:
        header = read_header(run.events_file, run.events_hdu)
    except READ_ERRORS:
        return
    present = [str(v).strip() for k, v in header.items() if k.startswith("TTYPE")]
    missing = [c for c in event_filter.columns if c not in present]
    if missing:
        raise RunError(
            run.obs_id,
            run.events_file,
            f"event filter {event_filter.expression!r} needs column {missing[0]!r}, which its "
            f"{run.events_hdu} HDU lacks (columns: {', '.join(present)})",
        ) from cause


def input_attrs(events: RunEvents, compiled: bool | None = None) -> dict:
    """Events kept and their extent (offset deg, energy TeV): attributes of a run's partial.

    ``compiled``: the largest offset by the numba-compiled loop (default: if
    numba is installed) or by numpy.
    """
    hav_max = max_haversine(events.ra_pnt, events.dec_pnt, events.ra, events.dec, compiled)
    return extent_of(events.energy, hav_max)
