"""The run cache: each run's labelled partial on disk, keyed by its files' bytes and the options.

A build with ``cache`` set looks every run up in the worker before reading
it, and stores what it computed (netCDF, written atomically, one file per
run). An interrupted build resumes from what is cached; another selection or
grouping reuses it. The key is a BLAKE2b digest of the run's file bytes (so
neither a copy, a ``touch`` nor an edit that keeps size and mtime can fool it)
and of everything that changes a partial: the model kind and its parameters,
the binning, the configuration other than selection, grouping and compute,
and the bkgdask version.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .. import __version__
from ..io.checks import MAX_DROPPED_FRACTION
from ..io.event_filter import EventFilter
from ..io.files import write_bytes_atomic

log = logging.getLogger(__name__)

#: Bytes read at a time when hashing a run's files.
HASH_BLOCK = 1 << 20

#: Configuration sections that do not change a run's partial (left out of the key).
NOT_IN_KEY = ("selection", "grouping", "compute", "cache")


def file_digest(path: str | Path) -> str:
    """BLAKE2b (128 bit) of a file's bytes, hex."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class RunCache:
    """A folder of per-run partials and the digest of the options they depend on.

    Parameters
    ----------
    folder : str
        Where the ``<obs_id>-<key>.nc`` files are.
    options_key : str
        Digest of everything besides the run's files that changes a partial.
    """

    folder: str
    options_key: str

    @classmethod
    def for_build(cls, folder: str | Path, kind, binning, config_data: dict) -> RunCache:
        """The cache of a build: ``config_data`` is the configuration as plain data."""
        kept = {k: v for k, v in sorted(config_data.items()) if k not in NOT_IN_KEY}
        edges = [(axis.name, axis.unit, axis.edges.tobytes()) for axis in binning.axes]
        payload = pickle.dumps((__version__, type(kind).__qualname__, kind.tag, edges, repr(kept)))
        folder = Path(folder).expanduser().resolve()
        return cls(str(folder), hashlib.blake2b(payload, digest_size=16).hexdigest())

    def path_of(self, run) -> Path:
        """The cache file of ``run`` as its files are now."""
        digest = hashlib.blake2b(self.options_key.encode(), digest_size=16)
        for path in dict.fromkeys((run.events_file, run.gti_file)):
            digest.update(file_digest(path).encode())
        digest.update(f"{run.events_hdu}/{run.gti_hdu}".encode())
        # The run's exclusion regions (a shape without a stable repr is never served again).
        digest.update(repr(run.exclusion).encode())
        return Path(self.folder) / f"{run.obs_id}-{digest.hexdigest()}.nc"

    def load(self, path: Path) -> xr.Dataset | None:
        """The cached partial at ``path``, or None if absent or unreadable."""
        if not path.is_file():
            return None
        try:
            partial = xr.load_dataset(io.BytesIO(path.read_bytes()), engine="scipy")
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring unreadable cache file %s: %s", path, exc)
            return None
        partial["counts"] = partial["counts"].astype(np.int64)  # netCDF3 keeps int32
        return partial

    def store(self, partial: xr.Dataset, path: Path) -> None:
        """Write ``partial`` to ``path`` atomically (a failure is only logged).

        The netCDF bytes are made in memory: a file target would take a cluster-wide
        lock on a distributed worker, for no gain with one file per run.
        """
        try:
            write_bytes_atomic(partial.to_netcdf(engine="scipy"), path)
        except (OSError, ValueError) as exc:
            log.warning("cannot cache run partial %s: %s", path, exc)


@dataclass(frozen=True)
class TaskOptions:
    """What a per-run task needs besides the run, kind and binning.

    Parameters
    ----------
    cache : RunCache or None
        Where partials are looked up and stored (None: no cache).
    max_dropped_fraction : float
        Largest fraction of a run's events that may be dropped.
    event_filter : EventFilter or None
        Keep only the events it passes, before binning (None: every event).
    """

    cache: RunCache | None = None
    max_dropped_fraction: float = MAX_DROPPED_FRACTION
    event_filter: EventFilter | None = None
