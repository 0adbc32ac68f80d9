"""Worker preload: import and exercise the per-run code before tasks arrive.

Passed to LocalCluster workers (``preload``), so the imports (xarray builds
its first Dataset with pandas indexes) overlap the client's planning instead
of delaying the first tasks.
"""

from __future__ import annotations

import numpy as np

from .binning import Binning
from .histogram import labelled_partial
from .kernel import count_events, hav_edges


def warm_up() -> None:
    """One labelled partial and one pass of the numpy loop on three events."""
    binning = Binning.default()
    ones = np.ones(3)
    counts = count_events(
        ones,
        ones,
        ones,
        1.0,
        1.0,
        binning.energy_edges,
        hav_edges(binning.offset_edges),
        compiled=False,
    )
    labelled_partial(counts, binning.exposure(1.0), binning, {})


warm_up()
