"""Helpers for tests: small stores with known contents, a compute guard, HDUs for astropy."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import dask
import numpy as np

from bkgdask.io.fitswrite import BinTable, fits_file
from bkgdask.models.binning import Binning
from bkgdask.sim.simulate3d import Simulation3DConfig, run_header
from bkgdask.sim.store_writer import RunSpec, events_from_offsets, write_store

OFF = "TARGET_NAME == 'Off data'"


def random_run(
    obs_id: int,
    ra_pnt: float,
    dec_pnt: float,
    n: int,
    *,
    zenith: float = 25.0,
    gti=((1.0e8, 1.0e8 + 1680.0),),
    seed: int = 0,
    max_offset: float = 2.9,
    binning: Binning | None = None,
    **kwargs,
) -> tuple[RunSpec, np.ndarray]:
    """A run with events uniform in offset² and log energy.

    Returns the run and the exact offsets (deg) the events were placed at.
    With ``binning``, offsets and energies keep 1e-3 (relative) away from bin
    edges, so float32 rounding in the file cannot move an event across one.
    """
    rng = np.random.default_rng(seed)
    offset = max_offset * np.sqrt(rng.uniform(size=n))
    energy = 10 ** rng.uniform(-1.2, 2.1, size=n)
    if binning is not None:
        offset = _away_from(offset, binning["offset"], 2e-3)
        energy = _away_from(energy, binning["energy"], 2e-3 * energy)
    ra, dec = events_from_offsets(ra_pnt, dec_pnt, offset, rng.uniform(0, 360, size=n))
    run = RunSpec(
        obs_id,
        ra_pnt,
        dec_pnt,
        90.0 - zenith,
        180.0,
        [tuple(g) for g in gti],
        energy,
        ra,
        dec,
        **kwargs,
    )
    return run, offset


def _away_from(values: np.ndarray, edges: np.ndarray, margin) -> np.ndarray:
    distance = np.min(np.abs(values[:, None] - edges[None, :]), axis=1)
    return np.where(distance < margin, values + 3 * np.broadcast_to(margin, values.shape), values)


def make_store(path: Path, runs: list[RunSpec], **kwargs) -> Path:
    write_store(path, runs, **kwargs)
    return path


def small_store(path: Path, zeniths=(10.0, 15.0, 30.0, 50.0), n: int = 400) -> Path:
    """A store of off runs at the given zeniths plus one source run."""
    runs = [
        random_run(100 + i, 10.0 * i, -30.0 + 5 * i, n, zenith=z, seed=i)[0]
        for i, z in enumerate(zeniths)
    ]
    runs.append(random_run(900, 83.6, 22.0, n, zenith=35.0, seed=99, target_name="Crab")[0])
    return make_store(path, runs)


class _CountingScheduler:
    """A dask scheduler that fails the test once called more than ``max_computes`` times."""

    def __init__(self, max_computes: int = 0):
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"dask computed {self.total_computes} times; allowed {self.max_computes}"
            )
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0):
    """Fail if anything computes with dask inside the block (as in flox's tests)."""
    scheduler = _CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler


def per_run_expected(store, config: Simulation3DConfig, binning, alignment: str) -> np.ndarray:
    """The truth's expected counts of every run in the model's bins, (n_runs, n_e, n_lon, n_lat)."""
    from astropy.table import Table

    index = Table.read(store / "obs-index.fits.gz")
    ra_pnt = dict(zip(index["OBS_ID"], index["RA_PNT"], strict=True))
    return np.array(
        [
            config.truth.expected_counts(
                binning["energy"],
                binning["fov_lon"],
                binning["fov_lat"],
                alignment,
                run_header(ra_pnt[obs_id], config.dec_pnt),
                config.gti(i),
            )
            for i, obs_id in enumerate(config.obs_ids)
        ]
    )


def astropy_hdu(table: BinTable):
    """astropy's reading of a table HDU as the package writes it (for ``Table.read``, gammapy)."""
    from astropy.io import fits

    return fits.open(io.BytesIO(fits_file([table])))[1]
