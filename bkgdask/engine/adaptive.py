"""Adaptive zenith groups: edges chosen so that each group holds a minimum observation time."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, StoreError
from ..io.store import DataStore
from ..quantities import unit_factor


def adaptive_zenith_edges(
    store: DataStore, obs_ids: np.ndarray, min_time_s: float, span_deg=(0.0, 90.0)
) -> np.ndarray:
    """Zenith edges (deg) splitting the runs, in zenith order, into groups of >= ``min_time_s``.

    A group closes as soon as its runs' ``ONTIME`` reaches ``min_time_s``; an
    edge lies halfway between the last zenith of one group and the first of
    the next; a short remainder joins the last group. The outer edges are
    ``span_deg``.

    Parameters
    ----------
    store : DataStore
        The store (``ONTIME`` from its obs-index, s).
    obs_ids : numpy.ndarray
        The selected runs.
    min_time_s : float
        Least observation time of a group, s.
    span_deg : tuple of float
        Lowest and highest edge, deg.
    """
    table = store.obs_index
    if "ONTIME" not in table:
        raise ConfigError("adaptive grouping needs ONTIME in the obs-index")
    row = {int(o): i for i, o in enumerate(store.obs_ids)}
    rows = np.array([row[int(o)] for o in obs_ids], dtype=np.int64)
    zenith = store.zenith_deg()[rows]
    try:  # GADF gives ONTIME in s: a column without a unit is taken as s
        scale = unit_factor(table.units["ONTIME"] or "s", "s")
    except ValueError as exc:
        raise StoreError(f"obs-index of {store.base_dir}: ONTIME: {exc}") from exc
    time = np.asarray(table["ONTIME"], dtype=np.float64)[rows] * scale
    order = np.argsort(zenith, kind="stable")
    zenith, time = zenith[order], time[order]
    edges, filled = [span_deg[0]], 0.0
    for k in range(zenith.size - 1):
        filled += time[k]
        rest = time[k + 1 :].sum()
        if filled >= min_time_s and rest >= min_time_s and zenith[k + 1] > zenith[k]:
            edges.append(0.5 * (zenith[k] + zenith[k + 1]))
            filled = 0.0
    return np.array([*edges, span_deg[1]])
