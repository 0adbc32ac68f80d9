"""Observation time (sum of GTIs) of runs, read with the lean reader."""

from __future__ import annotations

from ..errors import RunError
from ..io.fitsread import read_tables
from ..io.runs import READ_ERRORS, observation_time_s, read_failure
from ..io.store import DataStore


def observation_times(store: DataStore, obs_ids) -> dict[int, float]:
    """obs_id -> sum of its GTIs, s."""
    gtis = store.hdu_locations("gti")
    out = {}
    for obs_id in map(int, obs_ids):
        if obs_id not in gtis:
            raise RunError(obs_id, "HDU index", "no gti HDU in the HDU index")
        path, hdu = gtis[obs_id]
        try:
            out[obs_id] = observation_time_s(read_tables(path, {hdu: ["START", "STOP"]})[hdu])
        except READ_ERRORS as exc:
            raise read_failure(obs_id, path, exc) from exc
    return out
