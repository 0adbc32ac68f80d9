"""Shared fixtures and markers.

Opt-in markers, as in xarray: ``slow``, ``slurm`` and ``browser`` tests run
only with ``--run-slow``, ``--run-slurm``, ``--run-browser`` (CI passes them).
``requires_data`` tests run where ``$GAMMAPY_DATA`` (default ``../shared/data``
beside the repository) holds the public DL3 data, and are skipped elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPT_IN = ("slow", "slurm", "browser")


def data_dir() -> Path:
    return Path(os.environ.get("GAMMAPY_DATA") or ROOT.parent / "shared" / "data").resolve()


def pytest_addoption(parser):
    for marker in OPT_IN:
        parser.addoption(f"--run-{marker}", action="store_true", help=f"run {marker} tests")


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in OPT_IN:
            if item.get_closest_marker(marker) and not config.getoption(f"--run-{marker}"):
                item.add_marker(pytest.mark.skip(reason=f"needs --run-{marker}"))
        if item.get_closest_marker("requires_data") and not (data_dir() / "hess-dl3-dr1").is_dir():
            item.add_marker(pytest.mark.skip(reason=f"no DL3 data in {data_dir()}"))


@pytest.fixture(scope="session")
def hess_dir() -> Path:
    """The H.E.S.S. DL3 DR1 store."""
    return data_dir() / "hess-dl3-dr1"


@pytest.fixture
def artifacts(tmp_path) -> Path:
    """Folder for browser screenshots: ``$BKGDASK_ARTIFACTS`` if set, else a temporary one."""
    folder = Path(os.environ.get("BKGDASK_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
