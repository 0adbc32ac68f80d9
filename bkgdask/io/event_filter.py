"""Event filters: the run-selection language of :mod:`bkgdask.io.query` over EVENTS columns.

A filter such as ``"MC_ID == 1 and ENERGY > 0.1"`` is compiled once on the
client (:func:`compile_event_filter`: syntax checked, column names recorded),
travels to the workers with the runs, and is evaluated per run on the columns
the reader loaded (:func:`select_events`). Integer, float, bool and string
columns compare as in the obs-index selection.

What a filter that keeps nothing does:

- a run of which it keeps no event still counts, with its observation time and
  zero counts: that is a measurement of a low rate, and dropping the run would
  bias the model upwards;
- a filter that keeps no event of any selected run is an error
  (:func:`require_kept_events`, after the histograms): the models would all be
  zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import SelectionError
from .query import evaluate_columns, referenced_columns

__all__ = [
    "EVENT_BASE_COLUMNS",
    "EventFilter",
    "compile_event_filter",
    "require_kept_events",
    "select_events",
]

#: EVENTS columns every run reads whether filtered or not.
EVENT_BASE_COLUMNS = ("ENERGY", "RA", "DEC", "TIME")


@dataclass(frozen=True)
class EventFilter:
    """A compiled selection of events: the query language above, over EVENTS columns.

    Build one with :func:`compile_event_filter`. Values are compared as stored
    in the file, in the units of its ``TUNITn`` (``ENERGY > 0.1`` means 0.1 TeV
    only where ``ENERGY`` is in TeV). Small and picklable: it travels to the
    workers with the runs.

    Attributes
    ----------
    expression : str
        The filter as given, e.g. ``"MC_ID == 1"``.
    columns : tuple of str
        The EVENTS columns the expression names, in order of appearance.
    """

    expression: str
    columns: tuple[str, ...]

    def wanted(self, base: Iterable[str] = EVENT_BASE_COLUMNS) -> list[str]:
        """Columns a reader loads: ``base`` then the filter's own, without repeats."""
        return list(dict.fromkeys([*base, *self.columns]))

    def mask(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Evaluate the filter on one run's events.

        Parameters
        ----------
        columns : mapping of str to numpy.ndarray
            EVENTS columns (1-D, equal length); integer, float, bool, byte or
            unicode string arrays.

        Returns
        -------
        numpy.ndarray
            Boolean mask, True for the events kept.

        Raises
        ------
        SelectionError
            If the filter names a column missing from ``columns`` (the message
            names it and lists those present) or compares it with a literal of
            another type.
        """
        return evaluate_columns(self.expression, columns, "event filter")


def compile_event_filter(expression: str | None) -> EventFilter | None:
    """Check an event filter's syntax once and record the columns it needs.

    Parameters
    ----------
    expression : str or None
        Filter on EVENTS columns in the language of the module docstring, e.g.
        ``"MC_ID == 1 and ENERGY > 0.1"``. None or '' means no filter.

    Returns
    -------
    EventFilter or None
        None when there is nothing to filter.

    Raises
    ------
    SelectionError
        On bad syntax or unsupported constructs (column names are checked per
        run, against the columns of its EVENTS HDU).
    """
    if expression is None or (isinstance(expression, str) and not expression.strip()):
        return None
    return EventFilter(expression, tuple(referenced_columns(expression, "event filter")))


def select_events(
    event_filter: EventFilter | None, columns: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The events of one run that pass a filter: what a per-run task calls after reading.

    Parameters
    ----------
    event_filter : EventFilter or None
        The compiled filter; None keeps every event.
    columns : mapping of str to numpy.ndarray
        The run's EVENTS columns, as read (:meth:`EventFilter.wanted`).

    Returns
    -------
    dict of str to numpy.ndarray
        Every column restricted to the kept events (the same arrays when
        ``event_filter`` is None). A run may keep no event: it still counts with
        its observation time and zero counts, as any run without events in a bin.

    Raises
    ------
    SelectionError
        As :meth:`EventFilter.mask`; the caller adds the run and the file.
    """
    if event_filter is None:
        return dict(columns)
    keep = event_filter.mask(columns)
    return {name: values[keep] for name, values in columns.items()}


def require_kept_events(
    event_filter: EventFilter | None, kept_by_run: Mapping[int, int]
) -> list[int]:
    """Check, after the histograms, that a filter kept events; name the runs left empty.

    Parameters
    ----------
    event_filter : EventFilter or None
        The filter of the build; None checks nothing.
    kept_by_run : mapping of int to int
        obs_id -> events kept by the filter in that run.

    Returns
    -------
    list of int
        The runs of which the filter kept nothing (for a warning).

    Raises
    ------
    SelectionError
        If the filter kept no event of any run: the models would all be zero.
    """
    if event_filter is None:
        return []
    empty = sorted(int(obs_id) for obs_id, kept in kept_by_run.items() if kept == 0)
    if kept_by_run and len(empty) == len(kept_by_run):
        raise SelectionError(
            f"event filter {event_filter.expression!r} keeps no event of any of the "
            f"{len(kept_by_run)} selected runs"
        )
    return empty
