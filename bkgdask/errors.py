"""Exceptions raised by bkgdask.

Every error a user can cause (bad data, bad query, bad configuration) is a
:class:`BkgdaskError`; the CLI prints its message and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path


class BkgdaskError(Exception):
    """Base class of all errors bkgdask reports to users."""


class SelectionError(BkgdaskError):
    """A run-selection expression is malformed, unsafe or selects nothing."""


class StoreError(BkgdaskError):
    """A data store's index files are missing or malformed."""


class ConfigError(BkgdaskError):
    """A configuration value or command-line option is invalid."""


class OutputError(BkgdaskError):
    """An output cannot or must not be written where asked."""


class SchedulerError(BkgdaskError):
    """The requested scheduler or cluster cannot be started or reached."""


class RunError(BkgdaskError):
    """Reading or histogramming one observation failed.

    The message always names the observation and the file.

    Parameters
    ----------
    obs_id : int
        Observation ID of the failing run.
    path : str or Path
        File being read when the failure happened.
    reason : str
        What went wrong.
    """

    def __init__(self, obs_id: int, path: str | Path, reason: str):
        self.obs_id = int(obs_id)
        self.path = str(path)
        self.reason = reason
        super().__init__(f"run {self.obs_id} ({self.path}): {reason}")

    def __reduce__(self):
        # Keep the exception picklable so it crosses from Dask workers intact.
        return (type(self), (self.obs_id, self.path, self.reason))
