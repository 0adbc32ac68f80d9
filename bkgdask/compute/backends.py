"""Where a graph runs: one class per backend with the same small interface.

Every backend is a context manager with ``start()`` (begin starting early,
in the background), ``weigh(runs)`` (see the runs' files), ``prepare(n_runs)``
(size itself to the work), ``compute(graphs)`` and ``close()``. ``auto`` (the
default) picks one of the others from the work; ``sync`` and ``threads`` run
in this process, ``processes`` on workers forked from it; ``local`` starts a
LocalCluster; an address connects to a running scheduler; each batch system
(dask-jobqueue) is a subclass overriding ``name`` and ``cluster_class``, like
dask-jobqueue's own classes.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import dask

from ..errors import SchedulerError
from .reporting import (
    CONNECT_TIMEOUT_S,
    StderrProgressBar,
    check_n_workers,
    default_workers,
    performance_report_to,
    probe_address,
)

log = logging.getLogger(__name__)

#: Runs that justify one more local worker: ~0.5 s of work against ~1 s to start it.
RUNS_PER_EXTRA_WORKER = 200


class Backend:
    """Runs graphs in this process with Dask's synchronous scheduler (``sync``).

    Parameters
    ----------
    config : bkgdask.compute.config.ComputeConfig
        Workers, retries, progress, cluster settings.
    announce : callable, optional
        Receives one-line messages for the user (the dashboard link).
    """

    name: ClassVar[str] = "sync"
    #: Whether graphs run on a distributed scheduler (performance reports need one).
    distributed: ClassVar[bool] = False

    def __init__(self, config, announce: Callable[[str], None] | None = None):
        self.config = config
        self.announce = announce or log.info

    def start(self) -> Backend:
        """Begin starting what the backend needs, without waiting (nothing here)."""
        return self

    def prepare(self, n_runs: int) -> None:
        """Size the backend for ``n_runs`` runs (nothing here)."""

    def weigh(self, runs: Sequence) -> None:
        """See the runs before ``prepare`` (their files); nothing here, ``auto`` estimates."""

    def compute(self, graphs: Sequence, report: str | Path | None = None) -> list:
        """Compute delayed objects; only their results come back to this process."""
        if report is not None:
            raise SchedulerError(
                f"a performance report needs a distributed scheduler, not {self.name!r}"
            )
        bar = contextlib.nullcontext()
        if self.config.progress:
            from dask.diagnostics import ProgressBar

            bar = ProgressBar(out=sys.stderr)
        with bar:
            return list(dask.compute(*graphs, **self._dask_options()))

    def _dask_options(self) -> dict:
        # A callable, not a name: a name makes dask import distributed to look for a client.
        from dask.local import get_sync

        return {"scheduler": get_sync}

    def close(self) -> None:
        """Release what the backend started."""

    def __enter__(self) -> Backend:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class ThreadsBackend(Backend):
    """Runs graphs in this process on a thread pool (``threads``)."""

    name = "threads"

    def start(self) -> ThreadsBackend:
        check_n_workers(self.config.n_workers)
        return self

    def _dask_options(self) -> dict:
        from dask.threaded import get

        return {"scheduler": get, "num_workers": self.config.n_workers or default_workers()}


class ProcessesBackend(Backend):
    """Runs graphs on worker processes forked from this one (``processes``).

    Forked after planning, the workers start with this process's imports and
    its first labelled partial made: nothing to start up, and no GIL shared
    between the runs. Each loads the compiled loop itself, in parallel, when
    the build uses it (6,000 runs: 5.2-5.4 s against 5.6 s when this process
    loaded it before the fork). Where ``fork`` is missing (Windows) the
    workers are spawned and import afresh.
    """

    name = "processes"

    def __init__(self, config, announce=None):
        super().__init__(config, announce)
        self._pool = None

    def start(self) -> ProcessesBackend:
        check_n_workers(self.config.n_workers)
        return self

    def compute(self, graphs: Sequence, report: str | Path | None = None) -> list:
        from concurrent.futures.process import BrokenProcessPool

        self._fork_workers()
        try:
            return super().compute(graphs, report)
        except BrokenProcessPool:
            raise SchedulerError(
                "a worker process stopped abruptly (killed, or out of memory); "
                "--scheduler local retries the tasks of lost workers"
            ) from None

    def _fork_workers(self) -> None:
        """The pool, its workers forked now: before the progress bar's thread exists."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from .warmup import ignore_interrupts, warm_up

        if self._pool is not None:
            return
        warm_up()  # before the fork: the workers inherit it
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        self._pool = ProcessPoolExecutor(
            self.config.n_workers or default_workers(),
            mp_context=multiprocessing.get_context(method),
            initializer=ignore_interrupts,
        )
        self._pool.submit(int).result()  # with fork, every worker starts at the first task

    def _dask_options(self) -> dict:
        from dask.multiprocessing import get

        return {"scheduler": get, "pool": self._pool}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        self._pool = None


class DistributedBackend(Backend):
    """Runs graphs through a distributed Client; subclasses say what the client connects to."""

    name = "address"
    distributed = True

    def __init__(self, config, announce=None):
        super().__init__(config, announce)
        self._starting: Future | None = None
        self._cluster = None
        self._client = None
        self._owns_client = True

    @classmethod
    def of_client(cls, client, config) -> DistributedBackend:
        """A backend that computes on a Client the caller owns (and closes)."""
        backend = cls(config)
        backend._client = client
        backend._owns_client = False
        return backend

    def make_cluster(self):
        """The cluster to connect to (None: connect to the configured address)."""
        return None

    def start(self) -> DistributedBackend:
        if self._starting is None and self._client is None and self.name == "address":
            probe_address(self.config.scheduler)
        if self._starting is None:
            pool = ThreadPoolExecutor(max_workers=1)
            self._starting = pool.submit(self.make_cluster)
            pool.shutdown(wait=False)  # the submitted start still runs
        return self

    @property
    def cluster(self):
        """The started cluster (waits for it), or None for an address."""
        self.start()
        if self._cluster is None:
            self._cluster = self._starting.result()
        return self._cluster

    @property
    def client(self):
        """The distributed Client, connected on first use (the dashboard link is announced)."""
        if self._client is None:
            from distributed import Client

            target = self.cluster if self.cluster is not None else self.config.scheduler
            self._client = self.connect(Client, target)
            self.announce(f"Dask dashboard: {self._client.dashboard_link}")
            self.after_connect()
        return self._client

    def connect(self, client_class, target):
        """A Client of ``target`` (an address that is not a Dask scheduler: SchedulerError)."""
        if not isinstance(target, str):
            return client_class(target)
        try:
            return client_class(target, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, MemoryError, ValueError, TypeError) as exc:
            # A server that is not a Dask scheduler answers with bytes distributed
            # reads as a frame length (MemoryError) or not at all (timeout).
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise SchedulerError(
                f"cannot connect to scheduler {target}: is it a Dask scheduler? ({reason})"
            ) from None

    def after_connect(self) -> None:
        """Hook run once the client is connected (batch systems submit jobs here)."""

    def compute(self, graphs: Sequence, report: str | Path | None = None) -> list:
        client = self.client
        try:
            with performance_report_to(report):
                futures = client.compute(list(graphs), retries=self.config.retries)
                if self.config.progress:
                    StderrProgressBar.run(futures)
                return client.gather(futures)
        except KeyboardInterrupt:
            _quiet_shutdown()
            raise

    def close(self) -> None:
        if self._client is not None and self._owns_client:
            self._client.close()
        self._client = None
        if self._starting is not None:
            if not self._starting.cancel() and self._starting.exception() is None:
                cluster = self._starting.result()
                if cluster is not None:
                    cluster.close()
            self._starting = None
            self._cluster = None


class LocalBackend(DistributedBackend):
    """A LocalCluster of single-threaded worker processes on 127.0.0.1 (``local``).

    Without a set number of workers it starts with one (before the heavy
    imports and the planning) and grows with the number of runs, up to one
    worker per core.
    """

    name = "local"

    def start(self) -> LocalBackend:
        check_n_workers(self.config.n_workers)
        return super().start()

    def make_cluster(self):
        from distributed import LocalCluster

        with dask.config.set({"distributed.scheduler.worker-saturation": "inf"}):
            return LocalCluster(
                n_workers=self.config.n_workers or 1,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=self.config.dashboard_address,
                preload=["bkgdask.compute.warmup"],
                silence_logs=logging.ERROR,  # no cancellation warnings on Ctrl-C
            )

    def prepare(self, n_runs: int) -> None:
        if self.config.n_workers is not None:
            return
        wanted = min(default_workers(), max(1, -(-n_runs // RUNS_PER_EXTRA_WORKER)))
        if wanted > len(self.cluster.workers):
            self.cluster.scale(wanted)


class JobqueueBackend(DistributedBackend):
    """A dask-jobqueue cluster of worker jobs; subclasses name the batch system."""

    #: dask-jobqueue class of the batch system.
    cluster_class: ClassVar[str]

    def start(self) -> JobqueueBackend:
        import dask_jobqueue  # noqa: F401 - sets a signal handler: only in the main thread

        return super().start()

    def make_cluster(self):
        from .hpc import make_cluster

        c = self.config
        return make_cluster(self.name, self.cluster_class, c.cluster_config, c.log_directory)

    def after_connect(self) -> None:
        from .hpc import submit_jobs

        submit_jobs(self.cluster, self.client, self.config)

    def job_script(self) -> str:
        """The batch script each worker job would be submitted with (no job submitted)."""
        from .hpc import job_script

        return job_script(self.name, self.cluster_class, self.config.cluster_config)


class SlurmBackend(JobqueueBackend):
    name, cluster_class = "slurm", "SLURMCluster"


class PbsBackend(JobqueueBackend):
    name, cluster_class = "pbs", "PBSCluster"


class SgeBackend(JobqueueBackend):
    name, cluster_class = "sge", "SGECluster"


class HtcondorBackend(JobqueueBackend):
    name, cluster_class = "htcondor", "HTCondorCluster"


class LsfBackend(JobqueueBackend):
    name, cluster_class = "lsf", "LSFCluster"


class AutoBackend(Backend):
    """Chooses sync, threads, processes, a LocalCluster or the configured scheduler (``auto``).

    Nothing starts before :meth:`weigh` and :meth:`prepare` know the runs; the
    choice and its reason are logged in one line (INFO). The rule is
    :func:`bkgdask.compute.auto.choose_scheduler`.
    """

    name = "auto"

    def __init__(self, config, announce=None):
        super().__init__(config, announce)
        self._n_bytes = 0
        self._started = None
        self.chosen: Backend | None = None

    def start(self) -> AutoBackend:
        from .auto import CpuReading

        with contextlib.suppress(OSError, ValueError, IndexError):
            self._started = CpuReading.now()  # others' load is measured from here
        return self

    def weigh(self, runs: Sequence) -> None:
        from .auto import run_file_bytes

        self._n_bytes = run_file_bytes(runs)

    def prepare(self, n_runs: int) -> None:
        from .auto import Work, choose_scheduler, configured_address, free_cores

        cores = self.config.n_workers or default_workers()
        work = Work(n_runs, self._n_bytes, cores, free_cores(cores, since=self._started))
        self._choose(*choose_scheduler(work, configured_address()))
        self.chosen.prepare(n_runs)

    def _choose(self, scheduler: str, reason: str) -> None:
        log.info("scheduler auto -> %s: %s", scheduler, reason)
        config = self.config.model_copy(update={"scheduler": scheduler})
        self.chosen = backend_class(scheduler)(config, self.announce).start()

    def compute(self, graphs: Sequence, report: str | Path | None = None) -> list:
        if self.chosen is None:
            self.prepare(0)
        if report is not None and not self.chosen.distributed:
            self.chosen.close()
            self._choose("local", "a performance report needs a distributed scheduler")
        return self.chosen.compute(graphs, report=report)

    def close(self) -> None:
        if self.chosen is not None:
            self.chosen.close()
        self.chosen = None


#: Backend classes by ``compute.scheduler`` name (an address selects ``address``).
BACKENDS: dict[str, type[Backend]] = {
    cls.name: cls
    for cls in (
        AutoBackend,
        Backend,
        ThreadsBackend,
        ProcessesBackend,
        LocalBackend,
        DistributedBackend,
        SlurmBackend,
        PbsBackend,
        SgeBackend,
        HtcondorBackend,
        LsfBackend,
    )
}

#: The batch systems, by ``--scheduler`` name.
BATCH_SCHEDULERS = tuple(n for n, c in BACKENDS.items() if issubclass(c, JobqueueBackend))


def backend_class(scheduler: str) -> type[Backend]:
    """The backend class of a ``compute.scheduler`` value (``tcp://...`` is an address)."""
    if "://" in scheduler:
        return DistributedBackend
    try:
        return BACKENDS[scheduler]
    except KeyError:
        raise SchedulerError(f"unknown scheduler {scheduler!r}") from None


def make_backend(config, announce: Callable[[str], None] | None = None) -> Backend:
    """The backend the compute configuration asks for (not started)."""
    return backend_class(config.scheduler)(config, announce)


def _quiet_shutdown() -> None:
    """After Ctrl-C: silence the cancelled gathers and closing comms of this process."""
    for name in ("asyncio", "distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
