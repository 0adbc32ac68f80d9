"""A lean start: in-process builds import neither distributed, dask.array, scipy nor gammapy."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import OFF, small_store

PROBE = """
import json, sys
import bkgdask
from bkgdask.config import BuildConfig
config = BuildConfig().updated({"selection": %r, "compute": {"scheduler": %r, "progress": False}})
bkgdask.build(sys.argv[1], config).model_hdus()  # smoothed: the default
heavy = ("distributed", "dask.array", "scipy", "gammapy")
print(json.dumps({name: name in sys.modules for name in heavy}))
"""


def _modules_after_build(store, scheduler: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE % (OFF, scheduler), str(store)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_in_process_builds_import_only_what_they_need(tmp_path):
    store = small_store(tmp_path / "store")
    for scheduler in ("sync", "threads", "processes", "auto"):
        loaded = _modules_after_build(store, scheduler)
        assert not any(loaded.values()), (scheduler, loaded)


LAZY_THEN_DASK = """
import sys
import numpy as np
import xarray as xr
from bkgdask.models.lean_xarray import DaskArray, defer_dask_array
defer_dask_array()  # done on import of bkgdask.models; a second call changes nothing
xr.Dataset({"a": ("x", np.arange(3))})
assert "dask.array" not in sys.modules and not isinstance(np.ones(2), DaskArray)
import dask.array as da
array = xr.DataArray(da.ones(4, chunks=2), dims="x")
assert isinstance(array.data, DaskArray) and array.chunks == ((2, 2),)
print(float((array + 1).sum()))
"""


def test_dask_arrays_in_xarray_still_work_after_the_lazy_type():
    proc = subprocess.run(
        [sys.executable, "-c", LAZY_THEN_DASK], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "8.0"
