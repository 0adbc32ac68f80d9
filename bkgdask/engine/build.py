"""The build: select runs, plan per-run tasks and per-group reductions, compute, make models."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from dask.delayed import Delayed

from .. import __version__
from ..compute.backends import Backend, DistributedBackend, make_backend
from ..compute.reporting import default_workers
from ..config import BuildConfig, ModelConfig
from ..errors import OutputError, SelectionError
from ..io.bundle import bundle_obs_index, merged_hdu_index, write_bundle
from ..io.checks import RUN_COUNTERS, with_run_counters
from ..io.event_filter import compile_event_filter
from ..io.files import check_output
from ..io.index_table import IndexTable
from ..io.query import select_rows
from ..io.runs import RunInput
from ..io.store import DataStore
from ..models import Model, ModelKind
from ..models.binning import Binning
from ..models.kernel2d import HAVE_NUMBA
from ..models.smooth_rate import one_blas_thread
from .adaptive import adaptive_zenith_edges
from .exclusion import with_exclusions
from .graph import combine_layers, delayed_of, histogram_task
from .grouping import ZENITH, Group, assign_models, group_of, make_groups
from .inputs import BuildInputs
from .runcache import RunCache, TaskOptions

log = logging.getLogger(__name__)


@dataclass
class BuildPlan:
    """The lazy part of a build: the graph and what it was made from.

    Attributes
    ----------
    store : DataStore
        The input store.
    kind : ModelKind
        The model kind.
    binning : Binning
        Its bins.
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
    kind: ModelKind
    binning: Binning
    groups: list[Group]
    runs: dict[int, list[RunInput]]
    graphs: dict[int, Delayed]
    values: dict[str, np.ndarray]

    @property
    def n_runs(self) -> int:
        return sum(map(len, self.runs.values()))


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


def _runs_by_group(store, config, groups, values) -> dict[int, list[RunInput]]:
    selected = select_obs_ids(store, config.selection)
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
    zenith = dict(zip(store.obs_ids.tolist(), values[ZENITH].tolist()))
    group_index = dict(zip(selected.tolist(), home.tolist()))
    runs: dict[int, list[RunInput]] = {}
    for run in store.run_inputs(selected[home >= 0], zenith):
        runs.setdefault(group_index[run.obs_id], []).append(run)
    if not runs:
        raise SelectionError("no selected run falls inside the group edges")
    return runs


def plan_build(store: DataStore, config: BuildConfig) -> BuildPlan:
    """Build the task graph without computing anything.

    Each selected run is histogrammed by a ``histogram-<obs_id>`` task (or, for
    large selections, batches of runs by ``histogram-<first>..<last>`` tasks,
    see :func:`runs_per_task`); each populated group is reduced by a tree of
    ``reduce-<group>`` tasks of fan-in ``config.compute.split_every``.
    """
    kind, binning = config.kind, config.binning_of_kind()
    extra = config.grouping.extra_edges(store.column_units())
    zenith_edges = config.grouping.zenith.to_values("deg")
    if config.grouping.min_time is not None:
        selected = select_obs_ids(store, config.selection)
        span = (zenith_edges[0], zenith_edges[-1])
        min_time = config.grouping.min_time.to_value("s")
        zenith_edges = adaptive_zenith_edges(store, selected, min_time, span)
    groups = make_groups(zenith_edges, extra)
    values = store.group_values(list(extra))
    runs = _runs_by_group(store, config, groups, values)
    runs = with_exclusions(store, config.exclusion, runs, binning)
    n_runs = sum(map(len, runs.values()))
    per_task = runs_per_task(config.compute.runs_per_task, n_runs)
    compiled = use_compiled_kernel(config.compute.kernel, n_runs)
    options = task_options(config, kind, binning)
    graphs = {}
    for index, group_runs in sorted(runs.items()):
        graph: dict = {}
        for i in range(0, len(group_runs), per_task):
            batch = group_runs[i : i + per_task]
            key = _histogram_key(batch)
            graph[key] = histogram_task(key, batch, kind, binning, compiled, options)
        name = f"reduce-{groups[index].label}"
        root = combine_layers(graph, list(graph), kind.combine, config.compute.split_every, name)
        graphs[index] = delayed_of(graph, root)
    return BuildPlan(store, kind, binning, groups, runs, graphs, values)


def task_options(config: BuildConfig, kind: ModelKind, binning: Binning) -> TaskOptions:
    """The per-run tasks' options: the run cache (if ``config.cache``) and the drop limit."""
    cache = None
    if config.cache:
        cache = RunCache.for_build(config.cache, kind, binning, config.model_dump(mode="json"))
    event_filter = compile_event_filter(config.events)
    return TaskOptions(cache, config.checks.max_dropped_fraction, event_filter)


def runs_per_task(setting: int | str, n_runs: int) -> int:
    """Runs per histogram task: ``auto`` keeps tasks near 64 in number and <= 64 runs each.

    Up to 64 runs every run is its own task; beyond, batches keep the scheduler's
    per-task cost (milliseconds) small against the work (~2 ms per run).

    >>> runs_per_task("auto", 45), runs_per_task("auto", 6000), runs_per_task(3, 10)
    (1, 64, 3)
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
    kind : ModelKind
        The model kind built.
    totals : dict of str to xarray.Dataset
        Per group label: summed counts and exposure (s MeV sr).
    groups : dict of str to Group
        Per group label: the group.
    assignment : dict of int to Group
        Every observation of the store -> the group whose model it uses.
    summary : dict
        Runs, events, seconds.
    model : ModelConfig, optional
        The ``model`` section (smoothing) handed to the kind's ``finalize``.
    """

    store: DataStore
    kind: ModelKind
    totals: dict[str, xr.Dataset]
    groups: dict[str, Group]
    assignment: dict[int, Group]
    summary: dict = field(default_factory=dict)
    inputs: BuildInputs | None = None
    model: ModelConfig | None = None

    @property
    def rates(self) -> dict:
        """Per group label: what the kind's ``finalize`` makes of it, computed once per ``model``.

        The groups are fitted side by side on this process's cores (threads:
        the fits' linear algebra leaves the GIL), each with BLAS on one thread,
        so a fit gives the same model bit for bit whatever runs beside it.
        """
        key = None if self.model is None else self.model.model_dump_json()
        cache = self.__dict__.setdefault("_rates", {})
        if key not in cache:
            cache[key] = _finalize_groups(self.kind, self.totals, self.model)
        return cache[key]

    def model_hdus(self) -> dict:
        """Per group label: the model's GADF HDU, with provenance keywords."""
        hdus = {}
        for label, total in self.totals.items():
            group = self.groups[label]
            hdu = self.kind.to_hdu(total, self.rates[label])
            hdu.name = group.hdu_name
            hdu.header.update(group.header_cards())
            hdu.header.update(_provenance(total))
            if self.inputs is not None:
                self.inputs.label(hdu.header, total)
            hdus[label] = hdu
        return hdus

    @property
    def models(self) -> dict:
        """Per group label: the gammapy IRF object (``Background2D`` for bkg_2d)."""
        out = {}
        for label, hdu in self.model_hdus().items():
            model: Model = self.kind.from_hdu(hdu.name, hdu.header, hdu.data)
            out[label] = self.kind.to_gammapy(model)
        return out

    def hdu_index(self, bundle_name: str = "bkg-models.fits.gz") -> IndexTable:
        """The merged HDU index for a bundle file named ``bundle_name``."""
        rows = {o: (g.hdu_name, self.kind.tag) for o, g in self.assignment.items()}
        return merged_hdu_index(self.store.hdu_index, self.store.file_paths(), rows, bundle_name)

    def obs_index(self) -> IndexTable:
        """The store's obs-index with each run's model (``BKG_HDU``) and use (``BKG_USED``)."""
        used = {int(o) for total in self.totals.values() for o in total.attrs["obs_ids"]}
        names = {o: g.hdu_name for o, g in self.assignment.items()}
        stats = {
            o: s for total in self.totals.values() for o, s in total.attrs["run_stats"].items()
        }
        return with_run_counters(bundle_obs_index(self.store.obs_index, names, used), stats)

    def write(self, path: str | Path) -> Path:
        """Write the bundle (HDU_INDEX, OBS_INDEX, model HDUs) atomically to ``path``.

        Raises
        ------
        OutputError
            If ``path`` is inside the input store or its folder is not writable.
        """
        path = check_output(path, [self.store.base_dir], "bundle")
        hdus = list(self.model_hdus().values())
        try:
            return write_bundle(path, self.hdu_index(path.name), self.obs_index(), hdus)
        except OSError as exc:
            raise OutputError(f"cannot write bundle {path}: {exc.strerror or exc}") from None


def _finalize_groups(kind: ModelKind, totals: dict, model) -> dict:
    """Per group label, ``kind.finalize`` of its total; the groups on up to one thread a core.

    A group's error (e.g. no counts to smooth) is raised as the groups come in order.
    """
    threads = min(len(totals), default_workers())
    if threads < 2:
        return {label: kind.finalize(total, model) for label, total in totals.items()}
    with one_blas_thread(), ThreadPoolExecutor(threads) as pool:
        fits = {label: pool.submit(kind.finalize, total, model) for label, total in totals.items()}
        return {label: fit.result() for label, fit in fits.items()}


def _provenance(total: xr.Dataset) -> dict:
    attrs = total.attrs
    return {
        "ZEN_MIN": (attrs["zenith_min"], "[deg] lowest zenith of the runs used"),
        "ZEN_MAX": (attrs["zenith_max"], "[deg] highest zenith of the runs used"),
        "NRUNS": (int(attrs["n_runs"]), "number of runs in the model"),
        "OBSTIME": (float(attrs["observation_time"]), "[s] total observation time"),
        "NEVENTS": (int(attrs["n_events"]), "events read from the runs"),
        "NCOUNTS": (int(total["counts"].sum()), "events inside the model bins"),
        **{kw: (int(attrs.get(key, 0)), text) for key, (kw, _, text) in RUN_COUNTERS.items()},
        "CREATOR": (f"bkgdask {__version__}", "software that made this model"),
        "BKGDVER": (__version__, "bkgdask version"),
    }


def build(
    store: str | Path | DataStore,
    config: BuildConfig | None = None,
    *,
    backend: Backend | None = None,
    client=None,
    announce=None,
    report: str | Path | None = None,
) -> BuildResult:
    """Build grouped background models from a DL3 store.

    Parameters
    ----------
    store : str, Path or DataStore
        The store (folder, index file or release folder).
    config : BuildConfig, optional
        Selection, model kind, binning, groups and scheduler.
    backend : Backend, optional
        Where the graph runs, possibly already starting; closed by the caller.
        Default: the one ``config.compute`` asks for, closed here.
    client : distributed.Client, optional
        Compute on this client instead (it stays open).
    announce : callable, optional
        Receives one-line messages for the user (the dashboard link).
    report : str or Path, optional
        Write a Dask performance report (HTML, works offline) here.

    Returns
    -------
    BuildResult
        Models and indexes; nothing is written until ``BuildResult.write``.
    """
    config = config or BuildConfig()
    start = time.perf_counter()
    owned = None
    if client is not None:
        backend = DistributedBackend.of_client(client, config.compute)
    elif backend is None:
        backend = owned = make_backend(config.compute, announce).start()
    try:
        store = store if isinstance(store, DataStore) else DataStore.open(store)
        inputs = BuildInputs.of(store, config)
        plan = plan_build(store, config)
        backend.weigh([run for runs in plan.runs.values() for run in runs])
        backend.prepare(plan.n_runs)
        keys = sorted(plan.graphs)
        results = backend.compute([plan.graphs[k] for k in keys], report=report)
    finally:
        if owned is not None:
            owned.close()
    totals = {plan.groups[k].label: total for k, total in zip(keys, results)}
    totals = inputs.finish(totals)
    assignment = assign_models(store.obs_ids, plan.values, plan.groups, set(keys))
    seconds = time.perf_counter() - start
    n_events = sum(int(t.attrs["n_events"]) for t in totals.values())
    summary = {
        "runs": sum(int(t.attrs["n_runs"]) for t in totals.values()),
        "events": n_events,
        "models": len(totals),
        "seconds": seconds,
        "events_per_second": n_events / seconds if seconds > 0 else float("nan"),
        **{key: sum(int(t.attrs.get(key, 0)) for t in totals.values()) for key in RUN_COUNTERS},
        "cached": sum(int(t.attrs.get("n_cached", 0)) for t in totals.values()),
    }
    groups = {plan.groups[k].label: plan.groups[k] for k in keys}
    result = BuildResult(
        store, plan.kind, totals, groups, assignment, summary, inputs=inputs, model=config.model
    )
    from .runwise import runwise  # runwise.py extends BuildResult, defined above

    return runwise(result, plan.values, config.grouping.interpolate)
