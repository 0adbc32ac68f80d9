"""Tests of bkgdask.sim.simulate: stores gammapy reads, events that follow the truth."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from gammapy.data import DataStore
from pydantic import ValidationError
from scipy.stats import chi2

from bkgdask.errors import OutputError
from bkgdask.models.binning import Binning
from bkgdask.sim.simulate import SIMULATION_FILE, SimulationConfig, simulate_store, simulation_tasks
from bkgdask.sim.truth import TRUTH_FILE, TruthModel


def _files(store):
    return {p.name: p.read_bytes() for p in sorted((store / "data").iterdir())}


def _events(store, obs_id):
    """Events of one run with float64 offsets (deg) from the header pointing."""
    path = store / "data" / f"run_{obs_id:06d}.fits.gz"
    events = Table.read(path, hdu="EVENTS")
    pointing = SkyCoord(events.meta["RA_PNT"] * u.deg, events.meta["DEC_PNT"] * u.deg)
    radec = SkyCoord(
        np.asarray(events["RA"], np.float64) * u.deg, np.asarray(events["DEC"], np.float64) * u.deg
    )
    return events, pointing.separation(radec).deg


@pytest.fixture(scope="module")
def store20(tmp_path_factory):
    config = SimulationConfig(n_obs=20, seed=3, zenith_min=10.0, zenith_max=50.0)
    return simulate_store(tmp_path_factory.mktemp("sim") / "store", config), config


def test_gammapy_reads_store_without_warnings(store20):
    store, config = store20
    data_store = DataStore.from_dir(store)
    obs_table = data_store.obs_table
    assert len(obs_table) == 20
    assert list(obs_table["OBS_ID"]) == list(range(1, 21))
    assert set(obs_table["TARGET_NAME"]) == {"Off data"}
    zenith = np.asarray(obs_table["ZEN_PNT"])
    assert ((zenith >= 10.0 - 1e-9) & (zenith < 50.0 + 1e-9)).all()
    assert len(data_store.hdu_table) == 40
    for obs_id in obs_table["OBS_ID"]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            obs = data_store.obs(obs_id, required_irf=[])
            events, gti = obs.events, obs.gti
            pointing = obs.get_pointing_icrs(obs.tmid)
        row = obs_table[obs_table["OBS_ID"] == obs_id][0]
        assert len(events.table) == row["EVENT_COUNT"] > 0
        assert gti.time_sum.to_value("s") == pytest.approx(config.duration)
        expected = SkyCoord(row["RA_PNT"] * u.deg, row["DEC_PNT"] * u.deg)
        assert pointing.separation(expected).deg < 1e-9
        assert events.offset.max().deg < config.truth.offset_max + 1e-3
    assert TruthModel.read(store / TRUTH_FILE) == config.truth
    assert SimulationConfig.read(store / SIMULATION_FILE) == config
    assert not list(store.rglob("*.tmp"))


def test_events_follow_truth(tmp_path):
    truth = TruthModel(width=1.1, index=2.5)
    config = SimulationConfig(n_obs=40, seed=11, special_pointings=True, truth=truth)
    store = simulate_store(tmp_path / "store", config, scheduler="threads", n_workers=4)
    binning = Binning.default()
    obs_index = Table.read(store / "obs-index.fits.gz")
    counts = np.zeros(binning.shape)
    for obs_id in obs_index["OBS_ID"]:
        events, offset = _events(store, obs_id)
        energy = np.asarray(events["ENERGY"], np.float64)
        counts += np.histogram2d(energy, offset, [binning["energy"], binning["offset"]])[0]
    expected = truth.expected_counts(
        binning["energy"], binning["offset"], obs_index["ZEN_PNT"], obs_index["ONTIME"]
    )
    used = expected > 5
    assert used.sum() > 100
    stat = np.sum((counts[used] - expected[used]) ** 2 / expected[used])
    assert chi2.sf(stat, used.sum()) > 1e-3, (stat, used.sum())
    # total counts of the whole simulated range
    total = sum(truth.total_rate(z) * t for z, t in zip(obs_index["ZEN_PNT"], obs_index["ONTIME"]))
    n_events = obs_index["EVENT_COUNT"].sum()
    assert abs(n_events - total) < 5 * np.sqrt(total)


def test_same_seed_same_files_whatever_the_scheduler(tmp_path):
    config = SimulationConfig(n_obs=6, seed=5, duration=600.0, n_gti=2)
    a = simulate_store(tmp_path / "a", config, scheduler="sync")
    b = simulate_store(tmp_path / "b", config, scheduler="threads", n_workers=3)
    c = simulate_store(tmp_path / "c", config.model_copy(update={"seed": 6}), scheduler="sync")
    files_a = _files(a)
    assert len(files_a) == 6
    assert files_a == _files(b)
    assert all(files_a[name] != data for name, data in _files(c).items())
    for name in ("obs-index.fits.gz", "hdu-index.fits.gz"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_special_pointings_and_gtis(tmp_path):
    config = SimulationConfig(
        n_obs=3, special_pointings=True, n_gti=3, duration=900.0, gti_gap=60.0, obs_id_start=7
    )
    store = simulate_store(tmp_path / "store", config)
    events, offset = _events(store, 7)
    ra = np.asarray(events["RA"])
    assert (ra < 1.0).any() and (ra > 359.0).any()
    assert ((ra >= 0.0) & (ra < 360.0)).all()
    assert events.meta["RA_PNT"] == 359.9 and events.meta["DEC_PNT"] == -30.0
    events, offset = _events(store, 8)
    assert events.meta["DEC_PNT"] == 90.0
    assert offset.max() < config.truth.offset_max + 1e-3
    np.testing.assert_allclose(np.asarray(events["DEC"]), 90.0 - offset, atol=1e-4)
    with fits.open(store / "data" / "run_000009.fits.gz") as hdul:
        gti = hdul["GTI"].data
        time = hdul["EVENTS"].data["TIME"]
    assert len(gti) == 3
    assert np.sum(gti["STOP"] - gti["START"]) == pytest.approx(900.0, abs=1e-6)
    np.testing.assert_allclose(gti["START"][1:] - gti["STOP"][:-1], 60.0)
    inside = np.zeros(len(time), bool)
    for start, stop in gti:
        inside |= (time >= start) & (time <= stop)
    assert inside.all()
    # runs follow each other: run 8 starts 600 s after run 7 ends
    obs_index = Table.read(store / "obs-index.fits.gz")
    assert obs_index["TSTART"][1] - obs_index["TSTOP"][0] == pytest.approx(600.0 + 60.0)


def test_refuses_existing_store(tmp_path):
    config = SimulationConfig(n_obs=1, duration=60.0)
    store = simulate_store(tmp_path / "store", config)
    with pytest.raises(OutputError, match="HDU index"):
        simulate_store(store, config)
    (store / "hdu-index.fits.gz").unlink()
    with pytest.raises(OutputError, match="not empty"):
        simulate_store(store, config)
    (tmp_path / "other" / "data").mkdir(parents=True)
    (tmp_path / "other" / "data" / "notes.txt").write_text("hi")
    with pytest.raises(OutputError):
        simulate_store(tmp_path / "other", config)
    # an empty data folder is fine
    (tmp_path / "empty" / "data").mkdir(parents=True)
    assert (simulate_store(tmp_path / "empty", config) / "hdu-index.fits.gz").exists()


def test_tasks_and_config_validation(tmp_path):
    config = SimulationConfig(n_obs=3, obs_id_start=100, duration=60.0, compress=False)
    tasks = simulation_tasks(tmp_path / "store", config)
    assert [t.key for t in tasks] == ["simulate-100", "simulate-101", "simulate-102"]
    assert not (tmp_path / "store").exists()  # nothing written before compute
    rows = tasks[1].compute(scheduler="sync")
    assert rows.obs_id == 101
    assert rows.hdu_rows[0]["FILE_NAME"] == "run_000101.fits"
    assert (tmp_path / "store" / "data" / "run_000101.fits").exists()
    bad = [{"n_obs": 0}, {"nope": 1}, {"zenith_max": 90.0}, {"n_gti": 0}, {"duration": 0.0},
           {"zenith_min": 30.0, "zenith_max": 20.0}]  # fmt: skip
    for changes in bad:
        with pytest.raises(ValidationError):
            SimulationConfig(**{"n_obs": 1, **changes})
    with pytest.raises(ValueError, match="scheduler"):
        simulate_store(tmp_path / "x", config, scheduler="processes")


def test_local_cluster_matches_sync(tmp_path):
    config = SimulationConfig(n_obs=10, seed=2, duration=600.0)
    local = simulate_store(tmp_path / "local", config, scheduler="local", n_workers=2)
    sync = simulate_store(tmp_path / "sync", config, scheduler="sync")
    assert len(_files(local)) == 10
    assert _files(local) == _files(sync)
    assert (local / "hdu-index.fits.gz").read_bytes() == (sync / "hdu-index.fits.gz").read_bytes()
