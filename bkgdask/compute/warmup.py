"""Worker preload: import and exercise the per-run code before tasks arrive.

Passed to LocalCluster workers (``preload``), so the imports (xarray builds
its first Dataset with pandas indexes) overlap the client's planning instead
of delaying the first tasks.
"""

from __future__ import annotations

import numpy as np

from ..io.runs import RunEvents
from ..models import get_kind
from ..models.binning import Binning


def warm_up() -> None:
    """One labelled partial of three events with the numpy loop."""
    ones = np.ones(3)
    events = RunEvents(0, ones, ones, ones, 1.0, 1.0, 1.0, {})
    get_kind("bkg_2d").chunk(events, Binning.default(), compiled=False)


warm_up()
