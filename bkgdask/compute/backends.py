"""Where the graph runs: sync, threads, a LocalCluster, a batch system, or a scheduler address."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import dask

from .errors import BkgdaskError
from .hpc import JOBQUEUE_CLASSES, make_cluster, submit_jobs

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Cores available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def start_local_cluster(n_workers: int | None, dashboard_address: str):
    """A LocalCluster of single-threaded worker processes (to be closed by the caller)."""
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.worker-saturation": "inf"}):
        return LocalCluster(
            n_workers=n_workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=dashboard_address,
            preload=["bkgdask.warmup"],
        )


@contextlib.contextmanager
def local_cluster(n_workers: int | None, dashboard_address: str) -> Iterator:
    """A LocalCluster of single-threaded worker processes, with a client."""
    from distributed import Client

    with start_local_cluster(n_workers, dashboard_address) as cluster, Client(cluster) as client:
        yield client


def start_cluster_soon(compute_config) -> Future | None:
    """Start the configured cluster in a background thread; None when none is needed."""
    if compute_config.scheduler in ("sync", "threads"):
        return None
    if compute_config.scheduler in JOBQUEUE_CLASSES:
        import dask_jobqueue  # noqa: F401 - sets a signal handler: only in the main thread
    pool = ThreadPoolExecutor(max_workers=1)
    starting = pool.submit(start_cluster, compute_config)
    pool.shutdown(wait=False)  # the submitted start still runs
    return starting


#: Runs that justify one more local worker: ~0.5 s of work against ~1 s to start it.
RUNS_PER_EXTRA_WORKER = 200


def size_local_cluster(cluster, compute_config, n_runs: int) -> None:
    """Scale a LocalCluster started with one worker to what ``n_runs`` runs need.

    Up to one worker per core, one more per ``RUNS_PER_EXTRA_WORKER`` runs;
    a configured ``n_workers`` is kept as it is. Does not wait for the workers.
    """
    from distributed import LocalCluster

    if not isinstance(cluster, LocalCluster) or compute_config.n_workers is not None:
        return
    wanted = min(default_workers(), max(1, -(-n_runs // RUNS_PER_EXTRA_WORKER)))
    if wanted > len(cluster.workers):
        cluster.scale(wanted)


def close_started(starting: Future) -> None:
    """Close a cluster from :func:`start_cluster_soon` that was not used."""
    if not starting.cancel() and starting.exception() is None:
        cluster = starting.result()
        if cluster is not None:
            cluster.close()


def start_cluster(compute_config):
    """The cluster the configuration asks for, started but not yet connected to.

    A LocalCluster for ``local``, a dask-jobqueue cluster (no jobs yet) for a
    batch system, None for a scheduler address or ``sync``/``threads``. Safe to
    call from another thread; close it (``with``) in the caller.
    """
    c = compute_config
    if c.scheduler == "local":
        # Without a set number of workers start with one; size_local_cluster adds more
        # once the number of runs is known.
        return start_local_cluster(c.n_workers or 1, c.dashboard_address)
    if c.scheduler in JOBQUEUE_CLASSES:
        return make_cluster(c.scheduler, c.cluster_config)
    return None


@contextlib.contextmanager
def connect(compute_config, cluster, announce: Callable[[str], None] | None = None) -> Iterator:
    """A Client to ``cluster`` (or to the configured address); batch jobs submitted here."""
    from distributed import Client

    c = compute_config
    with Client(cluster if cluster is not None else c.scheduler) as client:
        (announce or log.info)(f"Dask dashboard: {client.dashboard_link}")
        if c.scheduler in JOBQUEUE_CLASSES:
            submit_jobs(cluster, client, c)
        yield client


@contextlib.contextmanager
def open_client(compute_config, announce: Callable[[str], None] | None = None) -> Iterator:
    """Yield a distributed Client for the configured scheduler, or None for ``sync``/``threads``.

    Parameters
    ----------
    compute_config : bkgdask.config.ComputeConfig
        ``local`` (a LocalCluster of ``n_workers`` on ``dashboard_address``), a
        batch system (dask-jobqueue, see :mod:`bkgdask.hpc`), ``tcp://...`` (an
        existing scheduler), or ``threads``/``sync`` (no client).
    announce : callable, optional
        Called with the dashboard link once the cluster is up.
    """
    if compute_config.scheduler in ("sync", "threads"):
        yield None
        return
    with contextlib.ExitStack() as stack:
        cluster = start_cluster(compute_config)
        if cluster is not None:
            stack.enter_context(cluster)
        yield stack.enter_context(connect(compute_config, cluster, announce))


@contextlib.contextmanager
def performance_report_to(path: str | Path | None) -> Iterator:
    """Record a Dask performance report with inline resources, written atomically."""
    if path is None:
        yield
        return
    from distributed import performance_report

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with performance_report(filename=str(tmp), mode="inline"):
            yield
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _StderrProgressBar:
    """distributed's text progress bar, drawn on stderr."""

    @staticmethod
    def run(futures: Sequence) -> None:
        from distributed.diagnostics.progressbar import TextProgressBar

        class Bar(TextProgressBar):
            def _draw_bar(self, remaining, all, **kwargs):
                with contextlib.redirect_stdout(sys.stderr):
                    super()._draw_bar(remaining, all, **kwargs)

            def _draw_stop(self, **kwargs):
                with contextlib.redirect_stdout(sys.stderr):
                    super()._draw_stop(**kwargs)

        Bar(futures, complete=True)


def compute(
    graphs: Sequence,
    client,
    scheduler: str,
    n_workers: int | None,
    progress: bool,
    retries: int = 0,
    report: str | Path | None = None,
) -> list:
    """Compute delayed objects; only their results come back to this process.

    Parameters
    ----------
    graphs : sequence of Delayed
        Roots to compute (one per group).
    client : distributed.Client or None
        Client from :func:`open_client`.
    scheduler : str
        ``sync`` or ``threads`` when ``client`` is None.
    n_workers : int, optional
        Threads for the ``threads`` scheduler.
    progress : bool
        Draw a progress bar on stderr.
    retries : int
        Times a failed task is retried (distributed only).
    report : str or Path, optional
        Write a Dask performance report (self-contained HTML) here.
    """
    if client is not None:
        with performance_report_to(report):
            futures = client.compute(list(graphs), retries=retries)
            if progress:
                _StderrProgressBar.run(futures)
            return client.gather(futures)
    if report is not None:
        raise BkgdaskError("a performance report needs a distributed scheduler, not " + scheduler)
    kwargs = {"scheduler": "synchronous" if scheduler == "sync" else "threads"}
    if scheduler == "threads":
        kwargs["num_workers"] = n_workers or default_workers()
    bar = contextlib.nullcontext()
    if progress:
        from dask.diagnostics import ProgressBar

        bar = ProgressBar(out=sys.stderr)
    with bar:
        return list(dask.compute(*graphs, **kwargs))
