"""The ``auto`` scheduler's rule: estimate a build's work before starting anything, pick a backend.

The estimate is one core's seconds for the runs: a fixed cost per run (open,
headers, task) plus inflating and binning its compressed bytes, fitted to the
CPU time (user + sys) of ``--scheduler sync`` builds of 45 H.E.S.S. DR1 runs
(25 MB, 0.31 core-s), 600 and 6,000 simulated runs (54 MB, ~1 core-s; 559 MB,
7.6 core-s), each less that of a 4-run build (the imports). Threads share the
GIL, which the per-run Python (headers, checks) holds: on 2 cores worker
processes forked from this one (``processes``: no start-up, they inherit the
imports) took 5.1 s for 6,000 runs where threads took 7.2 s and sync 7.7 s,
1.8 s for 600 runs against 2.0 s, and lost at 45 runs (1.7 s against 1.5
s; ``benchmarks/schedulers.py``, whole processes); with one of the two
cores kept busy by another process, 7.7 s against 8.8 s for sync. So from
:data:`PROCESSES_MIN_SECONDS` of work they are chosen wherever ``fork`` is
(Linux). A LocalCluster lost to all of them on 2 cores (its workers import
everything afresh), so it is chosen only with 3 or more free cores and a
minute of work, where its dashboard is worth having. Below that, threads;
with one free core, one thread (``sync``), which beat a thread pool there.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

#: One core's fixed cost per run (file open, headers, labelling), s.
SECONDS_PER_RUN = 1.0e-4
#: One core's cost per compressed MB of run file (inflate, verify, bin), s.
SECONDS_PER_MB = 0.0125
#: One core's seconds of work from which forked worker processes are chosen over threads.
PROCESSES_MIN_SECONDS = 0.5
#: One core's seconds of work from which a LocalCluster beats threads in this process.
LOCAL_CLUSTER_MIN_SECONDS = 60.0
#: Fewest free cores for which a LocalCluster can beat threads (with 2, threads won at all sizes).
LOCAL_CLUSTER_MIN_CORES = 3


@dataclass(frozen=True)
class Work:
    """A build's estimated work and the cores to do it.

    Attributes
    ----------
    n_runs : int
        Runs to histogram.
    n_bytes : int
        Compressed bytes of their run files (a file counted once per run reading it).
    cores : int
        Cores available to this process.
    free_cores : int, optional
        Of those, the ones not busy with other processes (default: all).
    """

    n_runs: int
    n_bytes: int
    cores: int
    free_cores: int | None = None

    @property
    def core_seconds(self) -> float:
        """One core's seconds for the work, s."""
        return self.n_runs * SECONDS_PER_RUN + self.n_bytes / 1e6 * SECONDS_PER_MB

    @property
    def free(self) -> int:
        """Cores free for the build: ``free_cores``, or all."""
        return self.cores if self.free_cores is None else self.free_cores


@dataclass(frozen=True)
class CpuReading:
    """The machine's CPU time and this process's own at one moment.

    Attributes
    ----------
    total, idle : int
        Machine-wide CPU time since boot, all and idle + iowait, clock ticks.
    own : float
        This process's CPU time (user + system, all threads), s.
    wall : float
        ``time.monotonic()``, s.
    """

    total: int
    idle: int
    own: float
    wall: float

    @classmethod
    def now(cls) -> CpuReading:
        """A reading now (``OSError``/``ValueError`` where ``/proc/stat`` is missing or odd)."""
        total, idle = _cpu_times()
        own = os.times()
        return cls(total, idle, own.user + own.system, time.monotonic())


def free_cores(cores: int, since: CpuReading | None = None, sample_s: float = 0.05) -> int:
    """Of ``cores``, those not busy with other processes, at least 1.

    The CPUs busy with other processes come from two readings of ``/proc/stat``
    at least ``sample_s`` apart, less this process's own CPU time in between:
    from ``since`` (taken when the build started: no waiting) to now, or
    sleeping ``sample_s``. Without ``/proc/stat``, from the 1-minute load
    average, which lags (a build just finished still counts).
    """
    try:
        before = since or CpuReading.now()
        time.sleep(max(0.0, before.wall + sample_s - time.monotonic()))
        after = CpuReading.now()
        total = after.total - before.total
        own = (after.own - before.own) * os.sysconf("SC_CLK_TCK")
        others = max(0.0, total - (after.idle - before.idle) - own)
        busy = others / total * (os.cpu_count() or cores) if total > 0 else 0.0
    except (OSError, ValueError, IndexError):
        try:
            busy = os.getloadavg()[0]
        except OSError:  # pragma: no cover - neither source on this system
            return cores
    free = (os.cpu_count() or cores) - busy
    return max(1, min(cores, round(free)))


def _cpu_times() -> tuple[int, int]:
    """Machine-wide (all, idle + iowait) CPU time since boot, in clock ticks."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    return sum(fields), fields[3] + fields[4]


def run_file_bytes(runs: Sequence) -> int:
    """Compressed bytes of the runs' events files, each counted once per run reading it.

    Parameters
    ----------
    runs : sequence of RunInput
        The runs (their ``events_file``); each distinct file is measured once.
    """
    uses = Counter(run.events_file for run in runs)
    return sum(_size(path) * count for path, count in uses.items())


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # the reader reports it, naming the run


def choose_scheduler(work: Work, address: str | None = None) -> tuple[str, str]:
    """The scheduler for ``work`` and why, in a few words.

    Parameters
    ----------
    work : Work
        The estimated work.
    address : str, optional
        A scheduler address configured in Dask's config (``scheduler-address``).

    Returns
    -------
    name, reason : str
        ``sync``, ``threads``, ``processes``, ``local`` or the address; the reason
        as shown to the user.
    """
    size = (
        f"{work.n_runs} runs, {work.n_bytes / 1e6:.0f} MB, "
        f"~{work.core_seconds:.1f} core-s, {work.free} of {work.cores} cores free"
    )
    if address:
        return address, f"{size}; Dask's config sets scheduler-address"
    if work.free >= LOCAL_CLUSTER_MIN_CORES and work.core_seconds >= LOCAL_CLUSTER_MIN_SECONDS:
        return "local", f"{size}; enough work to pay a LocalCluster's start"
    if work.cores >= 2 and work.core_seconds >= PROCESSES_MIN_SECONDS and can_fork():
        return "processes", f"{size}; forked workers share no GIL and start with this process"
    if work.free < 2:
        return "sync", f"{size}; one core: no thread pool"
    return "threads", f"{size}; little work: threads in this process"


def can_fork() -> bool:
    """Whether worker processes can be forked cheaply and safely here (Linux)."""
    return sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()


def configured_address() -> str | None:
    """The scheduler address Dask's config names (``scheduler-address``), if any."""
    import dask

    return dask.config.get("scheduler-address", None) or None
