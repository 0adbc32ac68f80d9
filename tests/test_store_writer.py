"""Tests of bkgdask.sim.store_writer: GADF stores readable by gammapy, exact offsets."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from gammapy.data import DataStore

from bkgdask.sim.store_writer import RunSpec, events_from_offsets, write_store


def _run(obs_id, ra_pnt, dec_pnt, gti, n, *, seed=0, max_offset=2.5, **kwargs):
    rng = np.random.default_rng(seed)
    offset = max_offset * np.sqrt(rng.uniform(size=n))
    pa = rng.uniform(0, 360, size=n)
    ra, dec = events_from_offsets(ra_pnt, dec_pnt, offset, pa)
    energy = 10 ** rng.uniform(-1, 2, size=n)
    return RunSpec(obs_id, ra_pnt, dec_pnt, 65.0, 180.0, gti, energy, ra, dec, **kwargs)


@pytest.fixture
def runs():
    return [
        _run(1001, 359.8, -20.0, [(1.0e8, 1.0e8 + 1680.0)], 500, seed=1),
        _run(1002, 123.0, 90.0, [(1.1e8, 1.1e8 + 900.0)], 300, seed=2, target_name="Pole"),
        _run(1003, 83.6, 22.0, [(1.2e8, 1.2e8 + 600), (1.2e8 + 700, 1.2e8 + 1000),
                               (1.2e8 + 1500, 1.2e8 + 1600.5)], 400, seed=3),
    ]  # fmt: skip


@pytest.fixture
def store(tmp_path, runs):
    return write_store(tmp_path / "store", runs)


def test_gammapy_reads_store_without_warnings(store, runs):
    data_store = DataStore.from_dir(store)
    assert list(data_store.obs_table["OBS_ID"]) == [1001, 1002, 1003]
    assert list(data_store.hdu_table["OBS_ID"]) == [1001, 1001, 1002, 1002, 1003, 1003]
    for run in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            obs = data_store.obs(run.obs_id, required_irf=[])
            events, gti = obs.events, obs.gti
            pointing = obs.get_pointing_icrs(obs.tmid)
        assert len(events.table) == len(run.energy)
        np.testing.assert_allclose(events.energy.to_value("TeV"), run.energy, rtol=1e-6)
        np.testing.assert_allclose(events.radec.dec.deg, run.dec, atol=1e-5)
        gti_sum = sum(stop - start for start, stop in run.gti)
        assert gti.time_sum.to_value("s") == pytest.approx(gti_sum, abs=1e-5)
        assert pointing.separation(SkyCoord(run.ra_pnt, run.dec_pnt, unit="deg")).deg < 1e-9
        # default event times lie inside the GTIs
        met = (events.time - gti.time_ref).to_value("s")
        inside = np.zeros(len(met), bool)
        for start, stop in run.gti:
            inside |= (met >= start - 1e-6) & (met <= stop + 1e-6)
        assert inside.all()
    row = data_store.obs_table[2]
    assert row["ONTIME"] == pytest.approx(1000.5)
    assert row["LIVETIME"] == pytest.approx(0.9 * 1000.5)
    assert row["ZEN_PNT"] == pytest.approx(25.0)
    assert row["EVENT_COUNT"] == 400
    assert data_store.obs_table[1]["TARGET_NAME"] == "Pole"


def test_pointing_across_ra_zero_has_events_on_both_sides(runs):
    ra = runs[0].ra
    assert (ra > 359.0).any() and (ra < 1.0).any()
    assert ((ra >= 0) & (ra < 360)).all()


def test_file_layout_and_dtypes(store, runs):
    path = store / "data" / "run_001003.fits.gz"
    with fits.open(path) as hdul:
        assert [hdu.name for hdu in hdul] == ["PRIMARY", "EVENTS", "GTI"]
        assert hdul[0].data is None
        events, gti = hdul["EVENTS"], hdul["GTI"]
        assert events.columns.names == ["EVENT_ID", "TIME", "RA", "DEC", "ENERGY"]
        assert events.columns.formats == ["1K", "1D", "1E", "1E", "1E"]
        assert events.columns.units == ["", "s", "deg", "deg", "TeV"]
        assert events.data["RA"].dtype == np.dtype(">f4")
        assert events.data["TIME"].dtype == np.dtype(">f8")
        assert gti.columns.formats == ["1D", "1D"]
        h = events.header
        assert (h["HDUCLASS"], h["HDUCLAS1"], h["OBS_ID"]) == ("GADF", "EVENTS", 1003)
        assert (h["TSTART"], h["TSTOP"]) == (1.2e8, 1.2e8 + 1600.5)
        assert h["ONTIME"] == 1000.5 and h["DEADC"] == 0.9
        assert h["MJDREFI"] == 51910 and h["TIMESYS"] == "TT"
        assert gti.header["HDUCLAS1"] == "GTI" and gti.header["TSTOP"] == 1.2e8 + 1600.5
    with fits.open(store / "hdu-index.fits.gz") as hdul:
        table = hdul["HDU_INDEX"]
        assert table.header["HDUCLAS2"] == "HDU"
        row = table.data[5]
        assert (row["HDU_TYPE"], row["HDU_CLASS"], row["HDU_NAME"]) == ("gti", "gti", "GTI")
        assert row["FILE_DIR"] == "data" and row["FILE_NAME"] == path.name
        assert row["SIZE"] == path.stat().st_size
    with fits.open(store / "obs-index.fits.gz") as hdul:
        assert hdul["OBS_INDEX"].header["HDUCLAS2"] == "OBS"
        assert hdul["OBS_INDEX"].data["OBS_ID"].dtype == np.dtype(">i8")
    assert not list(store.rglob("*.tmp"))


def test_uncompressed_and_existing_store(tmp_path, runs, store):
    out = write_store(tmp_path / "plain", runs[:1], compress=False)
    assert (out / "data" / "run_001001.fits").exists()
    assert len(DataStore.from_dir(out).obs(1001, required_irf=[]).events.table) == 500
    with pytest.raises(FileExistsError):
        write_store(store, runs)


def test_time_default_is_deterministic(tmp_path, runs):
    a = write_store(tmp_path / "a", runs[2:])
    b = write_store(tmp_path / "b", runs[2:])
    name = "data/run_001003.fits.gz"
    assert (a / name).read_bytes() == (b / name).read_bytes()


def test_obs_index_columns_subset(tmp_path, runs):
    out = write_store(tmp_path / "magic", runs, obs_index_columns=["RA_PNT", "DEC_PNT"])
    with fits.open(out / "obs-index.fits.gz") as hdul:
        assert hdul["OBS_INDEX"].columns.names == ["OBS_ID", "RA_PNT", "DEC_PNT"]
    assert "ZEN_PNT" not in DataStore.from_dir(out).obs_table.colnames


@pytest.mark.parametrize(
    ("dec_pnt", "ra_pnt"),
    [(-20.0, 359.8), (0.0, 0.0), (45.0, 10.0), (89.9, 200.0), (90.0, 123.0), (-90.0, 0.0)],
)
def test_events_from_offsets_round_trip(ra_pnt, dec_pnt):
    offset = np.array([0.0, 1e-6, 0.1, 0.5, 1.0, 2.5, 10.0, 90.0, 170.0])[:, None]
    pa = np.linspace(0.0, 360.0, 13)[None, :]
    ra, dec = events_from_offsets(ra_pnt, dec_pnt, offset, pa)
    assert ra.dtype == np.float64 and ra.shape == (9, 13)
    assert ((ra >= 0) & (ra < 360)).all()
    pointing = SkyCoord(ra_pnt * u.deg, dec_pnt * u.deg)
    points = SkyCoord(ra * u.deg, dec * u.deg)
    sep = pointing.separation(points).deg
    np.testing.assert_allclose(sep, np.broadcast_to(offset, sep.shape), rtol=0, atol=1e-9)
    if abs(dec_pnt) < 89:  # position angle is defined away from the pole
        # from 0.1 deg on: at tiny offsets float64 RA/Dec rounding dominates the angle
        pa_back = pointing.position_angle(points[2:]).deg
        diff = (pa_back - np.broadcast_to(pa, pa_back.shape) + 180.0) % 360.0 - 180.0
        np.testing.assert_allclose(diff, 0.0, atol=1e-9)


def test_events_from_offsets_across_ra_zero_and_pole():
    ra, dec = events_from_offsets(359.8, 0.0, 0.5, [90.0, 270.0])
    np.testing.assert_allclose(ra, [0.3, 359.3], atol=1e-12)
    ra, dec = events_from_offsets(0.0, 90.0, 1.0, [0.0, 90.0, 180.0])
    np.testing.assert_allclose(dec, 89.0, atol=1e-12)
    np.testing.assert_allclose(ra, [180.0, 90.0, 0.0], atol=1e-9)


def _bad(**changes):
    run = _run(7, 10.0, 10.0, [(0.0, 10.0)], 5)
    for key, value in changes.items():
        setattr(run, key, value)
    return run


@pytest.mark.parametrize(
    "runs",
    [
        [_bad(ra=np.zeros(4))],
        [_bad(energy=np.ones((5, 1)))],
        [_bad(time=np.zeros(3))],
        [_bad(gti=[(10.0, 10.0)])],
        [_bad(gti=[(0.0, 10.0), (20.0, 15.0)])],
        [_bad(gti=[(0.0, 10.0), (5.0, 15.0)])],
        [_bad(gti=[])],
        [_bad(obs_id=-1)],
        [_bad(obs_id=7.0)],
        [_bad(), _bad()],
    ],
)
def test_invalid_input_raises(tmp_path, runs):
    with pytest.raises(ValueError):
        write_store(tmp_path / "bad", runs)
    assert not (tmp_path / "bad").exists()  # nothing written before validation


def test_unknown_obs_index_column(tmp_path):
    with pytest.raises(ValueError, match="unknown"):
        write_store(tmp_path / "bad", [_bad()], obs_index_columns=["OBS_ID", "NOPE"])
