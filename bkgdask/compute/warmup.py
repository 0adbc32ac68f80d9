"""Worker preload: import and exercise the per-run code before tasks arrive.

Passed to LocalCluster workers (``preload``), so the imports (xarray builds
its first Dataset with pandas indexes) overlap the client's planning instead
of delaying the first tasks.
"""

from __future__ import annotations

import multiprocessing
import signal

import numpy as np

from ..io.runs import RunEvents
from ..models import get_kind
from ..models.binning import Binning


def warm_up() -> None:
    """One labelled partial of three events with the numpy loop."""
    ones = np.ones(3)
    events = RunEvents(0, ones, ones, ones, 1.0, 1.0, 1.0, {})
    get_kind("bkg_2d").chunk(events, Binning.default(), compiled=False)


def ignore_interrupts() -> None:
    """In a worker process, ignore SIGINT: the client process stops the cluster on Ctrl-C.

    A Ctrl-C reaches every process of the terminal's group; without this each
    worker would print its own traceback while the client shuts it down.
    """
    if multiprocessing.parent_process() is None:
        return  # imported in the client's own process: leave Ctrl-C alone
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: the default stays
        pass


ignore_interrupts()
warm_up()
