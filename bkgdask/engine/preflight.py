"""Checks made before any work: every output outside the input store, with room to be written."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from ..config import BuildConfig
from ..errors import OutputError
from ..io.files import check_output
from ..io.store import DataStore

#: Bytes a bundle takes per HDU-index row, per OBS_INDEX row and per model bin (generous).
BYTES_PER_INDEX_ROW = 400
BYTES_PER_OBS_ROW = 2000
BYTES_PER_BIN = 8 * 4
#: Room left free beyond the estimate, bytes.
SPARE_BYTES = 1 << 20


def bundle_size_estimate(store: DataStore, config: BuildConfig) -> int:
    """An upper estimate of the bundle's size, bytes (uncompressed, every group populated)."""
    n_groups = len(config.grouping.zenith.to_values("deg")) - 1
    for axis in config.grouping.group_by.values():
        n_groups *= len(axis.to_values(axis.unit or str(axis.min.unit))) - 1
    n_bins = math.prod(config.binning_of_kind().shape)
    rows = len(store.hdu_index) + len(store.obs_index)
    return (
        n_groups * n_bins * BYTES_PER_BIN
        + rows * BYTES_PER_INDEX_ROW
        + len(store.obs_index) * BYTES_PER_OBS_ROW
    )


def check_free_space(path: str | Path, n_bytes: int, what: str) -> None:
    """Refuse ``path`` if its file system has less than ``n_bytes`` free (OutputError)."""
    folder = Path(path).expanduser().resolve().parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < n_bytes + SPARE_BYTES:
        raise OutputError(
            f"cannot write {what} {path}: {free / 1e6:.1f} MB free in {folder}, "
            f"about {(n_bytes + SPARE_BYTES) / 1e6:.1f} MB needed"
        )


def check_build_outputs(
    store: DataStore,
    config: BuildConfig,
    output: str | Path,
    report: str | Path | None = None,
    job_logs: str | Path | None = None,
) -> None:
    """Refuse, before any work, outputs inside the store, unwritable or without room.

    Parameters
    ----------
    store : DataStore
        The input store (nothing may be written inside it).
    config : BuildConfig
        The build's configuration (its ``cache`` folder is an output too).
    output : str or Path
        The bundle.
    report, job_logs : str or Path, optional
        The performance report and the batch jobs' log folder.

    Raises
    ------
    OutputError
        Naming the output and the reason.
    """
    forbidden = [store.base_dir]
    check_output(output, forbidden, "bundle")
    for path, what in ((report, "report"), (job_logs, "job logs"), (config.cache, "cache")):
        if path is not None:
            check_output(path, forbidden, what)
    check_free_space(output, bundle_size_estimate(store, config), "bundle")
