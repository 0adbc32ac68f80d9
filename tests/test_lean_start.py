"""A lean start: in-process builds import no distributed, dask.array, scipy, gammapy, astropy.

The indexes are read and the model HDUs and the bundle written by bkgdask's own FITS code.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from astropy.io import fits
from helpers import OFF, small_store

PROBE = """
import json, sys
import bkgdask
from bkgdask.config import BuildConfig
config = BuildConfig().updated({"selection": %r, "compute": {"scheduler": %r, "progress": False}})
bkgdask.build(sys.argv[1], config).write(sys.argv[2])  # smoothed: the default
heavy = ("distributed", "dask.array", "scipy", "gammapy", "astropy")
print(json.dumps({name: name in sys.modules for name in heavy}))
"""


def _probe(code: str, *args) -> str:
    """What ``code`` prints, run in a new interpreter with ``args``; it must succeed."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _modules_after_build(store, scheduler: str, bundle) -> dict:
    return json.loads(_probe(PROBE % (OFF, scheduler), store, bundle).strip().splitlines()[-1])


def test_in_process_builds_import_only_what_they_need(tmp_path):
    store = small_store(tmp_path / "store")
    for scheduler in ("sync", "threads", "processes", "auto"):
        bundle = tmp_path / f"{scheduler}.fits.gz"
        loaded = _modules_after_build(store, scheduler, bundle)
        assert not any(loaded.values()), (scheduler, loaded)
        assert bundle.is_file()


WRITE_WITHOUT_ASTROPY = """
import sys
import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.io.files import write_fits_atomic
config = BuildConfig().updated(
    {"selection": %r, "model": {"kind": %r}, "compute": {"scheduler": "sync", "progress": False}}
)
result = bkgdask.build(sys.argv[1], config)
result.rates  # the fits, before astropy goes


class NoAstropy:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "astropy":
            raise ImportError(f"{name} imported while making and writing model HDUs")


for name in [m for m in sys.modules if m.partition(".")[0] == "astropy"]:
    del sys.modules[name]
sys.meta_path.insert(0, NoAstropy())
write_fits_atomic(result.model_hdus().values(), sys.argv[2])
"""

WRITER_MODULES = (
    "bkgdask.io.fitswrite",
    "bkgdask.io.files",
    "bkgdask.models.gadf_table",
    "bkgdask.models.table_kind",
    "bkgdask.models.bkg2d",
    "bkgdask.models.bkg3d",
)


def test_the_writer_and_the_table_kinds_import_no_astropy():
    probe = f"import json, sys, {', '.join(WRITER_MODULES)}; print(json.dumps(list(sys.modules)))"
    modules = json.loads(_probe(probe))
    assert "bkgdask.io.fitswrite" in modules
    assert not [m for m in modules if m.partition(".")[0] == "astropy"]


@pytest.mark.parametrize("kind", ["bkg_2d", "bkg_3d"])
def test_model_hdus_are_made_and_written_without_astropy(tmp_path, kind):
    store = small_store(tmp_path / "store")
    out = tmp_path / "models.fits.gz"
    _probe(WRITE_WITHOUT_ASTROPY % (OFF, kind), store, out)
    with fits.open(out) as hdus:
        hdus.verify("exception")
        assert {h.header.get("HDUCLAS4") for h in hdus[1:]} == {kind.upper()}


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
