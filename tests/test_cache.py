"""The run cache: keyed by file bytes and options, and a build killed at random points resumes."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from bkgdask.config import BuildConfig
from bkgdask.engine.build import build, task_options
from bkgdask.io.store import DataStore
from bkgdask.sim.simulate import SimulationConfig, simulate_store

N_RUNS = 12


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim") / "store"
    return simulate_store(folder, SimulationConfig(n_obs=N_RUNS, seed=3, zenith_max=50.0))


def sync_config(**changes) -> BuildConfig:
    return BuildConfig().updated({"compute": {"scheduler": "sync", "progress": False}, **changes})


def cache_files(folder: Path) -> dict[str, int]:
    """Complete cache files (temporary ones left by a kill excluded) -> mtime, ns."""
    if not folder.is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("[0-9]*-*.nc")}


def bkg_data(bundle: Path) -> dict[str, bytes]:
    with fits.open(bundle) as hdus:
        return {h.name: h.data.tobytes() for h in hdus if h.header.get("HDUCLAS2") == "BKG"}


def test_cache_key_follows_files_and_options(sim_store, tmp_path):
    store = DataStore.open(sim_store)
    config = sync_config(cache=str(tmp_path / "cache"))
    run = store.run_inputs(store.obs_ids[:1], {int(store.obs_ids[0]): 20.0})[0]

    def key(cfg: BuildConfig, target=run) -> str:
        return task_options(cfg, cfg.kind, cfg.binning_of_kind()).cache.path_of(target).name

    same = key(config)
    assert key(config.updated({"selection": "OBS_ID > 3"})) == same
    assert key(config.updated({"grouping": {"zenith": {"edges": [0, 90], "unit": "deg"}}})) == same
    assert key(config.updated({"checks": {"max_dropped_fraction": 0.5}})) != same
    edges = {"energy": {"edges": [0.1, 1, 10, 100], "unit": "TeV"}}
    assert key(config.updated({"binning": edges})) != same
    copy = tmp_path / "copy.fits.gz"
    data = bytearray(Path(run.events_file).read_bytes())
    copy.write_bytes(bytes(data))
    moved = dataclasses.replace(run, events_file=str(copy), gti_file=str(copy))
    assert key(config, moved) == same  # content, not path or mtime
    data[-10] ^= 1
    copy.write_bytes(bytes(data))
    assert key(config, moved) != same


def test_rebuild_reuses_cache(sim_store, tmp_path):
    cache = tmp_path / "cache"
    first = build(sim_store, sync_config(cache=str(cache), selection="OBS_ID <= 6"))
    assert (first.summary["cached"], len(cache_files(cache))) == (0, 6)
    config = sync_config(cache=str(cache), grouping={"zenith": {"edges": [0, 90], "unit": "deg"}})
    second = build(sim_store, config)
    assert second.summary["cached"] == 6
    assert len(cache_files(cache)) == N_RUNS
    plain = build(sim_store, sync_config(grouping=config.grouping.model_dump(mode="json")))
    (label,) = plain.totals
    for name in ("counts", "exposure"):
        assert np.array_equal(second.totals[label][name].values, plain.totals[label][name].values)


def _killed_build(store: Path, out: Path, cache: Path, stop_after: int) -> None:
    """Start a CLI build with the cache and SIGKILL it once ``stop_after`` runs are cached."""
    command = [sys.executable, "-m", "bkgdask.cli", "build", str(store), "-o", str(out)]
    command += ["--scheduler", "sync", "--no-progress", "--cache", str(cache)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(cache_files(cache)) < stop_after and process.poll() is None:
        assert time.monotonic() < deadline, "the build never cached enough runs"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_build_resumes(sim_store, tmp_path, seed):
    reference = tmp_path / "reference.fits"
    build(sim_store, sync_config()).write(reference)
    cache, out = tmp_path / "cache", tmp_path / "bundle.fits"
    stop_after = int(np.random.default_rng(seed).integers(1, N_RUNS))
    _killed_build(sim_store, out, cache, stop_after)
    assert not out.exists()
    before = cache_files(cache)
    assert 0 < len(before) < N_RUNS + 1
    result = build(sim_store, sync_config(cache=str(cache)))
    result.write(out)
    after = cache_files(cache)
    assert result.summary["cached"] == len(before)  # only the missing runs were read
    assert len(after) == N_RUNS
    assert all(after[name] == mtime for name, mtime in before.items())
    assert bkg_data(out) == bkg_data(reference)


def test_changed_file_not_served_from_cache(sim_store, tmp_path):
    import shutil

    store = shutil.copytree(sim_store, tmp_path / "store")
    cache = tmp_path / "cache"
    build(store, sync_config(cache=str(cache)))
    victim = next(iter(sorted((store / "data").glob("*.fits.gz"))))
    with fits.open(victim) as hdus:
        hdus = fits.HDUList([h.copy() for h in hdus])
    hdus["EVENTS"].data["ENERGY"] *= 1.5
    victim.unlink()
    hdus.writeto(victim)
    os.utime(victim, ns=(0, 0))
    rebuilt = build(store, sync_config(cache=str(cache)))
    assert rebuilt.summary["cached"] == N_RUNS - 1
    fresh = build(store, sync_config())
    for label, total in fresh.totals.items():
        assert np.array_equal(rebuilt.totals[label]["counts"].values, total["counts"].values)
