"""The ``auto`` scheduler's rule: estimate a build's work before starting anything, pick a backend.

The estimate is one core's seconds for the runs: a fixed cost per run (open,
headers, task) plus inflating and binning its compressed bytes. Constants
measured on 2 cores with ``benchmarks/schedulers.py`` (see its results JSON).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

#: One core's fixed cost per run (file open, headers, labelling), s.
SECONDS_PER_RUN = 1.0e-3
#: One core's cost per compressed MB of run file (inflate, verify, bin), s.
SECONDS_PER_MB = 0.12
#: One core's seconds of work from which a LocalCluster beats threads in this process.
LOCAL_CLUSTER_MIN_SECONDS = 60.0
#: Fewest cores for which a LocalCluster can beat threads (with 2, threads won at all sizes).
LOCAL_CLUSTER_MIN_CORES = 3


@dataclass(frozen=True)
class Work:
    """A build's estimated work.

    Attributes
    ----------
    n_runs : int
        Runs to histogram.
    n_bytes : int
        Compressed bytes of their run files (a file counted once per run reading it).
    cores : int
        Cores available to this process.
    """

    n_runs: int
    n_bytes: int
    cores: int

    @property
    def core_seconds(self) -> float:
        """One core's seconds for the work, s."""
        return self.n_runs * SECONDS_PER_RUN + self.n_bytes / 1e6 * SECONDS_PER_MB


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
        ``threads``, ``local`` or the address; the reason as shown to the user.
    """
    size = (
        f"{work.n_runs} runs, {work.n_bytes / 1e6:.0f} MB, "
        f"~{work.core_seconds:.1f} core-s on {work.cores} cores"
    )
    if address:
        return address, f"{size}; Dask's config sets scheduler-address"
    if work.cores < LOCAL_CLUSTER_MIN_CORES:
        return "threads", f"{size}; threads beat worker processes on < 3 cores"
    if work.core_seconds < LOCAL_CLUSTER_MIN_SECONDS:
        limit = LOCAL_CLUSTER_MIN_SECONDS
        return "threads", f"{size}; under {limit:.0f} core-s a LocalCluster does not pay its start"
    return "local", f"{size}; enough work to pay a LocalCluster's start"


def configured_address() -> str | None:
    """The scheduler address Dask's config names (``scheduler-address``), if any."""
    import dask

    return dask.config.get("scheduler-address", None) or None
