"""The per-run task: read one observation, let the model kind histogram it, label the result.

This is what one Dask task runs. It imports neither gammapy nor astropy: the
lean reader gives plain numpy columns and the kind's kernel bins them.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from ..io.runs import RunInput, read_run
from ..models.base import ModelKind
from ..models.binning import Binning


def histogram_run(
    run: RunInput, kind: ModelKind, binning: Binning, compiled: bool | None = None
) -> xr.Dataset:
    """Histogram one observation: the "chunk" step of the reduction.

    Parameters
    ----------
    run : RunInput
        The observation to read.
    kind : ModelKind
        The model kind (its axes and kernel).
    binning : Binning
        The kind's bins (TeV, deg).
    compiled : bool, optional
        Use the numba-compiled loop (default: if numba is installed).

    Returns
    -------
    xarray.Dataset
        ``counts`` (int64) and ``exposure`` (float64, s MeV sr) over the
        kind's dims, with bin edges as coordinates; attributes ``obs_id``,
        ``zenith`` (deg), ``observation_time`` (s, sum of GTIs) and
        ``n_events`` (events read, in range or not).

    Raises
    ------
    RunError
        On any problem with the run's files, naming the run and the file.
    """
    events = read_run(run, kind.event_columns)
    partial = kind.chunk(events, binning, compiled)
    partial.attrs = {
        "obs_id": run.obs_id,
        "zenith": run.zenith_deg,
        "observation_time": events.observation_time,
        "n_events": int(events.energy.size),
    }
    return partial


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
    runs: RunBatch | Sequence[RunInput],
    kind: ModelKind,
    binning: Binning,
    compiled: bool | None = None,
) -> xr.Dataset:
    """Histogram several runs in one task: each run labelled, then combined (the chunk step)."""
    runs = runs.runs if isinstance(runs, RunBatch) else runs
    partials = [histogram_run(run, kind, binning, compiled) for run in runs]
    return partials[0] if len(partials) == 1 else kind.combine(partials)
