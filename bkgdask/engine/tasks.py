"""The per-run task: read one observation, let the model kind histogram it, label the result.

This is what one Dask task runs. It imports neither gammapy nor astropy: the
lean reader gives plain numpy columns and the kind's kernel bins them.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from ..errors import RunError
from ..io.checks import check_dropped
from ..io.runs import RunInput
from ..models.base import ModelKind, combined_attrs, labelled
from ..models.binning import Binning
from ..models.exclusion import without_excluded
from ..models.rotation import RunPointing
from .filtered import input_attrs, read_filtered_run
from .runcache import TaskOptions


def histogram_run(
    run: RunInput,
    kind: ModelKind,
    binning: Binning,
    compiled: bool | None = None,
    options: TaskOptions | None = None,
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
    options : TaskOptions, optional
        Run cache (looked up first, filled after), the largest fraction of
        events that may be dropped, and the event filter.

    Returns
    -------
    xarray.Dataset
        ``counts`` (int64) and ``exposure`` (float64, s MeV sr) over the
        kind's dims, with bin edges as coordinates; attributes ``obs_id``,
        ``zenith`` (deg), ``observation_time`` (s, union of GTIs),
        ``n_events`` (events read, in range or not), ``n_used``,
        ``n_drop_gti``, ``n_drop_bad``, ``n_cached`` (1 if from the cache) and
        those of :func:`bkgdask.engine.filtered.input_attrs` (events kept, their extent).
        Events inside the run's exclusion regions are dropped and each bin's
        exposure loses the excluded part of its solid angle.

    Raises
    ------
    RunError
        On any problem with the run's files, naming the run and the file.
    """
    options = options or TaskOptions()
    cache_path = options.cache.path_of(run) if options.cache else None
    cached = options.cache.load(cache_path) if cache_path else None
    if cached is not None:
        cached.attrs.update(obs_id=run.obs_id, zenith=run.zenith_deg, n_cached=1)
        return cached
    counts, exposure, attrs = _run_arrays(run, kind, binning, compiled, options)
    partial = labelled(counts, exposure, binning, attrs)
    if cache_path:
        options.cache.store(partial, cache_path)
    return partial


def _run_arrays(run: RunInput, kind: ModelKind, binning: Binning, compiled, options):
    """One run's counts, exposure and attributes (see :func:`histogram_run`), unlabelled."""
    events, _ = read_filtered_run(run, options.event_filter, kind.event_columns)
    check_dropped(run.obs_id, run.events_file, events.counts, options.max_dropped_fraction)
    events = without_excluded(events, run.exclusion)
    counts, exposure = kind.chunk_arrays(events, binning, compiled)
    if run.exclusion:
        kept = 1.0 - _excluded_fraction(run, events, kind, binning)
        exposure = exposure * kept
    attrs = {
        "obs_id": run.obs_id,
        "zenith": run.zenith_deg,
        "observation_time": events.observation_time,
        **events.counts.as_attrs(),
        "n_cached": 0,
        **input_attrs(events, compiled),
    }
    return counts, exposure, attrs


def _excluded_fraction(run: RunInput, events, kind: ModelKind, binning: Binning):
    """The kind's excluded fraction of each spatial bin over the run (RunError if it cannot)."""
    pointing = RunPointing(events.ra_pnt, events.dec_pnt, events.header, events.gti)
    try:
        return kind.excluded_fraction(pointing, run.exclusion, binning)
    except (KeyError, ValueError) as exc:
        reason = f"cannot place the exclusion regions in its field of view: {exc}"
        raise RunError(run.obs_id, run.events_file, reason) from None


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
    options: TaskOptions | None = None,
) -> xr.Dataset:
    """Histogram several runs in one task and sum them (the chunk step).

    Equal to :meth:`ModelKind.combine` of the runs' :func:`histogram_run`
    partials; without a run cache the runs' arrays are summed and labelled
    once, which saves a labelled Dataset per run.
    """
    runs = runs.runs if isinstance(runs, RunBatch) else runs
    options = options or TaskOptions()
    if len(runs) == 1 or options.cache:
        partials = [histogram_run(run, kind, binning, compiled, options) for run in runs]
        return partials[0] if len(partials) == 1 else kind.combine(partials)
    counts, exposure, attrs = _run_arrays(runs[0], kind, binning, compiled, options)
    counts, exposure, run_attrs = counts.copy(), exposure.copy(), [attrs]
    for run in runs[1:]:
        run_counts, run_exposure, attrs = _run_arrays(run, kind, binning, compiled, options)
        counts += run_counts
        exposure += run_exposure
        run_attrs.append(attrs)
    return labelled(counts, exposure, binning, combined_attrs(run_attrs))
