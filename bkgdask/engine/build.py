"""The build: select runs, histogram them in parallel, reduce per group, make models."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from astropy.io import fits
from astropy.table import Table
from dask.delayed import Delayed, delayed

from .bundle import bundle_obs_index, merged_hdu_index, model_hdu, to_background2d, write_atomic
from .cluster import compute, connect, size_local_cluster, start_cluster_soon
from .config import BuildConfig
from .errors import BkgdaskError, SelectionError
from .grouping import ZENITH, Group, assign_models, group_of, make_groups
from .histogram import RunBatch, RunInput, histogram_runs
from .kernel import HAVE_NUMBA
from .query import select_rows
from .reduce import combine_partials, tree_reduce
from .store import DataStore

log = logging.getLogger(__name__)


@dataclass
class BuildPlan:
    """The lazy part of a build: the graph and what it was made from.

    Attributes
    ----------
    store : DataStore
        The input store.
    groups : list of Group
        All groups, populated or not.
    runs : dict of int to list of RunInput
        Selected runs per group index (populated groups only).
    graphs : dict of int to Delayed
        Per group, the root of its reduction tree.
    values : dict of str to numpy.ndarray
        Per grouping column (``"zenith"`` in deg first), every observation's value.
    """

    store: DataStore
    groups: list[Group]
    runs: dict[int, list[RunInput]]
    graphs: dict[int, Delayed]
    values: dict[str, np.ndarray]


def select_obs_ids(store: DataStore, selection: str | None) -> np.ndarray:
    """OBS_IDs of the obs-index rows matching ``selection`` (all rows if None)."""
    if selection is None or not selection.strip():
        obs_ids = store.obs_ids
    else:
        obs_ids = store.obs_ids[select_rows(store.obs_index, selection)]
    if obs_ids.size == 0:
        where = f"selection {selection!r}" if selection else "the obs-index"
        raise SelectionError(f"no observation of {store.base_dir} matches {where}")
    return obs_ids


def plan_build(store: DataStore, config: BuildConfig) -> BuildPlan:
    """Build the task graph without computing anything.

    Each selected run is histogrammed by a ``histogram-<obs_id>`` task (or, for
    large selections, batches of runs by ``histogram-<first>..<last>`` tasks,
    see :func:`runs_per_task`); each populated zenith group is reduced by a tree
    of ``reduce-<group>`` tasks of fan-in ``config.compute.split_every``.
    """
    binning = config.binning.to_binning()
    extra = config.grouping.extra_edges(store.column_units())
    groups = make_groups(config.grouping.zenith.to_values("deg"), extra)
    selected = select_obs_ids(store, config.selection)
    values = store.group_values(list(extra))
    zenith = dict(zip(store.obs_ids.tolist(), values[ZENITH].tolist()))
    row = {int(o): i for i, o in enumerate(store.obs_ids)}
    rows = np.array([row[int(o)] for o in selected], dtype=np.int64)
    home = group_of({c: v[rows] for c, v in values.items()}, groups)
    outside = selected[home < 0]
    if outside.size:
        log.warning(
            "%d selected run(s) outside the group edges are not used: %s",
            outside.size,
            ", ".join(map(str, outside.tolist())),
        )
    group_index = dict(zip(selected.tolist(), home.tolist()))
    runs: dict[int, list[RunInput]] = {}
    for run in store.run_inputs(selected[home >= 0], zenith):
        runs.setdefault(group_index[run.obs_id], []).append(run)
    if not runs:
        raise SelectionError("no selected run falls inside the group edges")
    graphs = {}
    n_runs = sum(map(len, runs.values()))
    per_task = runs_per_task(config.compute.runs_per_task, n_runs)
    compiled = use_compiled_kernel(config.compute.kernel, n_runs)
    for index, group_runs in sorted(runs.items()):
        parts = [
            delayed(histogram_runs, pure=True)(
                RunBatch(batch), binning, compiled, dask_key_name=_histogram_key(batch)
            )
            for batch in (group_runs[i : i + per_task] for i in range(0, len(group_runs), per_task))
        ]
        name = f"reduce-{groups[index].label}"
        graphs[index] = tree_reduce(parts, combine_partials, config.compute.split_every, name)
    return BuildPlan(store=store, groups=groups, runs=runs, graphs=graphs, values=values)


def runs_per_task(setting: int | str, n_runs: int) -> int:
    """Runs per histogram task: ``auto`` keeps tasks near 64 in number and <= 64 runs each.

    Up to 64 runs every run is its own task; beyond, batches keep the scheduler's
    per-task cost (milliseconds) small against the work (~2 ms per run).
    """
    if setting != "auto":
        return int(setting)
    return max(1, min(64, -(-n_runs // 64)))


def use_compiled_kernel(setting: str, n_runs: int) -> bool:
    """The numba loop saves ~0.4 ms a run and costs ~0.4 s a worker to load: from 1000 runs on."""
    if setting == "auto":
        return HAVE_NUMBA and n_runs >= 1000
    return setting == "compiled"


def _histogram_key(batch: list[RunInput]) -> str:
    if len(batch) == 1:
        return f"histogram-{batch[0].obs_id}"
    return f"histogram-{batch[0].obs_id}..{batch[-1].obs_id}"


@dataclass
class BuildResult:
    """Models and indexes of a finished build, before anything is written.

    Attributes
    ----------
    store : DataStore
        The input store.
    totals : dict of str to xarray.Dataset
        Per group label: summed counts and exposure (s MeV sr).
    groups : dict of str to Group
        Per group label: the group.
    assignment : dict of int to Group
        Every observation of the store -> the group whose model it uses.
    summary : dict
        Runs, events, seconds.
    """

    store: DataStore
    totals: dict[str, xr.Dataset]
    groups: dict[str, Group]
    assignment: dict[int, Group]
    summary: dict = field(default_factory=dict)

    @property
    def models(self) -> dict:
        """Per group label: gammapy ``Background2D`` (s-1 MeV-1 sr-1)."""
        return {label: to_background2d(total) for label, total in self.totals.items()}

    def hdu_index(self, bundle_name: str = "bkg-models.fits.gz") -> Table:
        """The merged HDU index for a bundle file named ``bundle_name``."""
        return merged_hdu_index(
            self.store.hdu_index, self.store.file_paths(), self.assignment, bundle_name
        )

    def obs_index(self) -> Table:
        """The store's obs-index with each run's model (``BKG_HDU``) and use (``BKG_USED``)."""
        used = {int(o) for total in self.totals.values() for o in total.attrs["obs_ids"]}
        return bundle_obs_index(self.store.obs_index, self.assignment, used)

    def to_hdulist(self, bundle_name: str) -> fits.HDUList:
        hdus = [fits.PrimaryHDU()]
        hdus.append(fits.table_to_hdu(self.hdu_index(bundle_name)))
        hdus.append(fits.table_to_hdu(self.obs_index()))
        hdus[-1].name = "OBS_INDEX"
        hdus[1].name = "HDU_INDEX"
        for label, total in self.totals.items():
            hdus.append(model_hdu(self.groups[label], total))
        return fits.HDUList(hdus)

    def write(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write the bundle (HDU_INDEX, OBS_INDEX, BKG HDUs) atomically to ``path``.

        Raises
        ------
        BkgdaskError
            If ``path`` is inside the input store or is one of its files.
        """
        path = Path(path)
        if self.store.contains(path):
            raise BkgdaskError(
                f"refusing to write {path} inside the input store {self.store.base_dir}"
            )
        return write_atomic(self.to_hdulist(path.name), path, overwrite=overwrite)


def _close_on_exit(stack: contextlib.ExitStack, cluster) -> None:
    if cluster is not None:
        stack.enter_context(cluster)


def build(
    store: str | Path | DataStore,
    config: BuildConfig | None = None,
    client=None,
    announce: Callable[[str], None] | None = None,
    report: str | Path | None = None,
    starting: Future | None = None,
) -> BuildResult:
    """Build zenith-grouped background models from a DL3 store.

    Parameters
    ----------
    store : str, Path or DataStore
        The store folder (with ``hdu-index.fits.gz`` and ``obs-index.fits.gz``).
    config : BuildConfig, optional
        Selection, binning, groups and scheduler; defaults to the tutorial's.
    client : distributed.Client, optional
        Use this client instead of starting what ``config.compute.scheduler`` says.
    announce : callable, optional
        Receives one-line messages for the user (the dashboard link).
    report : str or Path, optional
        Write a Dask performance report (HTML, works offline) here.
    starting : concurrent.futures.Future, optional
        The configured cluster, already starting
        (:func:`bkgdask.cluster.start_cluster_soon`); closed when the build ends.

    Returns
    -------
    BuildResult
        Models and indexes; nothing is written until ``BuildResult.write``.
    """
    config = config or BuildConfig()
    opts = config.compute
    run = {"progress": opts.progress, "retries": opts.retries, "report": report}
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if starting is None and client is None:
            # Start the cluster while the indexes are read and the graph is planned.
            starting = start_cluster_soon(opts)
        try:
            if not isinstance(store, DataStore):
                store = DataStore.open(store)
            plan = plan_build(store, config)
        except BaseException:
            if starting is not None and starting.exception() is None:
                _close_on_exit(stack, starting.result())
            raise  # the planning error; a cluster that failed to start too is moot
        cluster = starting.result() if starting is not None else None
        _close_on_exit(stack, cluster)
        if cluster is not None:
            size_local_cluster(cluster, opts, sum(map(len, plan.runs.values())))
        keys = sorted(plan.graphs)
        graphs = [plan.graphs[k] for k in keys]
        if client is None and opts.scheduler not in ("sync", "threads"):
            client = stack.enter_context(connect(opts, cluster, announce))
        scheduler = "distributed" if client is not None else opts.scheduler
        results = compute(graphs, client, scheduler, opts.n_workers, **run)
    totals = {plan.groups[k].label: total for k, total in zip(keys, results)}
    assignment = assign_models(store.obs_ids, plan.values, plan.groups, set(keys))
    seconds = time.perf_counter() - start
    n_events = sum(int(t.attrs["n_events"]) for t in totals.values())
    summary = {
        "runs": sum(int(t.attrs["n_runs"]) for t in totals.values()),
        "events": n_events,
        "models": len(totals),
        "seconds": seconds,
        "events_per_second": n_events / seconds if seconds > 0 else float("nan"),
    }
    return BuildResult(
        store=store,
        totals=totals,
        groups={plan.groups[k].label: plan.groups[k] for k in keys},
        assignment=assignment,
        summary=summary,
    )
