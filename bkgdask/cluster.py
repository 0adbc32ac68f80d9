"""Where the graph runs: sync, threads, a LocalCluster, or an existing scheduler."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence

import dask

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Cores available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def local_cluster(n_workers: int | None, dashboard_address: str) -> Iterator:
    """A LocalCluster of single-threaded worker processes, with a client."""
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.worker-saturation": "inf"}):
        cluster = LocalCluster(
            n_workers=n_workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=dashboard_address,
        )
    with cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def open_client(
    scheduler: str,
    n_workers: int | None = None,
    dashboard_address: str = "127.0.0.1:8787",
    announce: Callable[[str], None] | None = None,
) -> Iterator:
    """Yield a distributed Client for ``local`` or ``tcp://...``, or None for ``sync``/``threads``.

    Parameters
    ----------
    scheduler : str
        ``local``, ``threads``, ``sync`` or a scheduler address.
    n_workers : int, optional
        Workers of a LocalCluster, threads of ``threads``; default: cores.
    dashboard_address : str
        Where a LocalCluster's dashboard listens.
    announce : callable, optional
        Called with the dashboard link once the cluster is up.
    """
    if scheduler in ("sync", "threads"):
        yield None
        return
    if scheduler == "local":
        context = local_cluster(n_workers, dashboard_address)
    else:
        from distributed import Client

        context = Client(scheduler)
    with context as client:
        link = client.dashboard_link
        (announce or log.info)(f"Dask dashboard: {link}")
        yield client


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
    graphs: Sequence, client, scheduler: str, n_workers: int | None, progress: bool
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
    """
    if client is not None:
        futures = client.compute(list(graphs))
        if progress:
            _StderrProgressBar.run(futures)
        return client.gather(futures)
    kwargs = {"scheduler": "synchronous" if scheduler == "sync" else "threads"}
    if scheduler == "threads":
        kwargs["num_workers"] = n_workers or default_workers()
    bar = contextlib.nullcontext()
    if progress:
        from dask.diagnostics import ProgressBar

        bar = ProgressBar(out=sys.stderr)
    with bar:
        return list(dask.compute(*graphs, **kwargs))
