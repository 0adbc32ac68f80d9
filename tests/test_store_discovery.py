"""Finding a store's index, its zenith from any source, and its IRF class."""

from __future__ import annotations

import logging
import os
from collections import ChainMap
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from conftest import data_dir
from helpers import random_run, small_store

from bkgdask.errors import RunError, StoreError
from bkgdask.io.fitsread import read_header
from bkgdask.io.irf_class import FULL_ENCLOSURE, POINT_LIKE, store_irf_class
from bkgdask.io.store import DataStore
from bkgdask.io.zenith import pointing_time, zenith_of_pointings
from bkgdask.sim.store_writer import MJDREFF, MJDREFI, write_store

SITE_LAT, SITE_LON = -23.2717777777778, 16.5002222222222  # the writer's site (H.E.S.S.)


def _shared(name: str) -> Path:
    path = data_dir() / name
    if not path.is_dir():
        pytest.skip(f"no {name} data in {data_dir()}")
    return path


def test_store_folder_and_either_index_file(tmp_path):
    store_dir = small_store(tmp_path / "store")
    for given in (store_dir, store_dir / "hdu-index.fits.gz", store_dir / "obs-index.fits.gz"):
        store = DataStore.open(given)
        assert store.index_path == store_dir.resolve() / "hdu-index.fits.gz"
        assert store.obs_index_path == store_dir.resolve() / "obs-index.fits.gz"
        assert len(store.obs_ids) == 5
        assert all(os.path.isfile(p) for p in store.file_paths())


def test_release_folder_with_one_dataset(tmp_path):
    small_store(tmp_path / "release" / "index" / "gps")
    (tmp_path / "release" / "caldb").mkdir()
    store = DataStore.open(tmp_path / "release")
    assert store.index_path == (tmp_path / "release/index/gps/hdu-index.fits.gz").resolve()
    assert all(os.path.isfile(p) for p in store.file_paths())


def test_release_folder_with_several_datasets_lists_them(tmp_path):
    for dataset in ("agn", "gps"):
        small_store(tmp_path / "release" / "index" / dataset, zeniths=(20.0,), n=10)
    with pytest.raises(StoreError) as info:
        DataStore.open(tmp_path / "release")
    message = str(info.value)
    assert "index/agn" in message and "index/gps" in message
    assert "pass the index folder" in message
    store = DataStore.open(tmp_path / "release" / "index" / "agn")
    assert store.index_path.parent.name == "agn"


@pytest.mark.parametrize("case", ["missing", "empty folder", "other file", "lonely index"])
def test_no_store_is_one_clear_line(tmp_path, case):
    given = tmp_path / "nothing"
    if case == "empty folder":
        given.mkdir()
    elif case == "other file":
        given = tmp_path / "notes.txt"
        given.write_text("not a store")
    elif case == "lonely index":
        store_dir = small_store(tmp_path / "store", zeniths=(20.0,), n=10)
        (store_dir / "obs-index.fits.gz").unlink()
        given = store_dir / "hdu-index.fits.gz"
    with pytest.raises(StoreError) as info:
        DataStore.open(given)
    assert "\n" not in str(info.value)
    assert str(given.name) in str(info.value) or "observation index" in str(info.value)


def _strip_header(path: Path, keys: tuple[str, ...]) -> None:
    """Rewrite a run file without some EVENTS header keywords."""
    with fits.open(path) as hdul:
        for key in keys:
            hdul["EVENTS"].header.remove(key, ignore_missing=True)
        copy = fits.HDUList([hdu.copy() for hdu in hdul])
    copy.writeto(path, overwrite=True)


def _transit_time_met(ra_deg: float) -> float:
    """A MET (s, TT since the writer's MJDREF) at which ``ra_deg`` transits the site."""
    from astropy.time import Time

    start = Time(MJDREFI + MJDREFF + 6000.0, format="mjd", scale="tt")
    lst = start.sidereal_time("mean", longitude=SITE_LON).deg
    days = ((ra_deg - lst) % 360.0) / 360.0 * 0.99726958
    return (start.mjd + days - MJDREFI - MJDREFF) * 86400.0


def test_zenith_from_each_source_in_turn(tmp_path, caplog):
    """Obs-index column, then EVENTS header, then computed at transit (zenith = |lat - dec|)."""
    ra, dec = 120.0, -50.0
    met = _transit_time_met(ra)
    gti = ((met - 600.0, met + 600.0),)
    runs = [random_run(1, ra, dec, 20, zenith=33.0, gti=gti)[0],
            random_run(2, ra, dec, 20, zenith=44.0, gti=gti)[0]]  # fmt: skip
    columns = ["RA_PNT", "DEC_PNT", "TSTART", "TSTOP", "TARGET_NAME"]
    store_dir = write_store(tmp_path / "store", runs, obs_index_columns=columns)
    _strip_header(store_dir / "data" / "run_000002.fits.gz", ("ALT_PNT", "ZEN_PNT"))
    with caplog.at_level(logging.DEBUG, logger="bkgdask.io.store"):
        zenith = DataStore.open(store_dir).zenith_deg()
    assert zenith[0] == pytest.approx(33.0, abs=1e-9)  # header ALT_PNT
    assert zenith[1] == pytest.approx(abs(SITE_LAT - dec), abs=0.2)  # computed at transit
    assert "zenith of 1 of 2 runs from EVENTS header ALT_PNT" in caplog.text
    assert "zenith of 1 of 2 runs from RA/DEC_PNT, mid time and site" in caplog.text

    with_column = write_store(tmp_path / "with-column", runs)
    assert DataStore.open(with_column).zenith_deg() == pytest.approx([33.0, 44.0])


def test_zenith_without_site_names_what_is_missing(tmp_path):
    run = random_run(7, 10.0, -20.0, 20)[0]
    store_dir = write_store(tmp_path / "store", [run], obs_index_columns=["RA_PNT", "DEC_PNT"])
    _strip_header(store_dir / "data" / "run_000007.fits.gz", ("ALT_PNT", "GEOLON", "GEOLAT"))
    index = Table.read(store_dir / "obs-index.fits.gz")
    assert "GEOLON" in index.meta  # the obs-index header has the site: it is used
    assert np.isfinite(DataStore.open(store_dir).zenith_deg()).all()
    for key in ("GEOLON", "GEOLAT"):
        del index.meta[key]
    index.write(store_dir / "obs-index.fits.gz", overwrite=True)
    with pytest.raises(RunError, match=r"run 7 .*no site \(GEOLON/GEOLAT\)"):
        DataStore.open(store_dir).zenith_deg()


def _add_irf_rows(store_dir: Path, headers: dict[int, dict]) -> None:
    """Give runs an 'aeff' HDU (a small table with the given header) in a file of its own."""
    index = Table.read(store_dir / "hdu-index.fits.gz")
    for obs_id, cards in headers.items():
        name = f"irf_{obs_id}.fits"
        table = fits.BinTableHDU.from_columns([fits.Column("ENERG_LO", "D", array=[1.0])])
        table.header.update({"EXTNAME": "EFFECTIVE AREA", **cards})
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(store_dir / "data" / name)
        index.add_row([obs_id, "aeff", "aeff_2d", "data", name, "EFFECTIVE AREA", 0])
    index.write(store_dir / "hdu-index.fits.gz", overwrite=True)


def test_irf_class_from_headers_and_index(tmp_path):
    store_dir = small_store(tmp_path / "store", zeniths=(20.0, 30.0), n=10)
    bare = store_irf_class(DataStore.open(store_dir))
    assert bare.irf_class == FULL_ENCLOSURE and "assumed" in bare.reason

    _add_irf_rows(store_dir, {100: {"HDUCLAS3": "POINT-LIKE"}, 101: {"HDUCLAS3": "POINT-LIKE"}})
    found = store_irf_class(DataStore.open(store_dir))
    assert found.point_like
    assert found.file.endswith("irf_100.fits") and found.hdu == "EFFECTIVE AREA"

    _add_irf_rows(store_dir, {900: {"HDUCLAS3": "FULL-ENCLOSURE"}})
    with pytest.raises(StoreError, match="mix IRF classes"):
        store_irf_class(DataStore.open(store_dir))


def test_irf_class_rad_max_keyword_and_index_column(tmp_path):
    store_dir = small_store(tmp_path / "store", zeniths=(20.0,), n=10)
    _add_irf_rows(store_dir, {100: {"RAD_MAX": 0.1}, 900: {"RAD_MAX": 0.1}})
    assert store_irf_class(DataStore.open(store_dir)).irf_class == POINT_LIKE
    index = Table.read(store_dir / "hdu-index.fits.gz")
    index["HDU_CLASS3"] = ["FULL-ENCLOSURE"] * len(index)
    index.write(store_dir / "hdu-index.fits.gz", overwrite=True)
    from_column = store_irf_class(DataStore.open(store_dir))
    assert (from_column.irf_class, from_column.hdu) == (FULL_ENCLOSURE, "HDU_CLASS3")


@pytest.mark.requires_data
def test_cta_1dc_found_from_its_release_folder():
    top = _shared("cta-1dc")
    store = DataStore.open(top)
    assert store.index_path == top.resolve() / "index" / "gps" / "hdu-index.fits.gz"
    assert len(store.obs_ids) == 4
    assert all(os.path.isfile(path) for path in store.file_paths())
    with pytest.raises(StoreError, match=r"cta-1dc/index/gps"):
        DataStore.open(data_dir())


@pytest.mark.requires_data
@pytest.mark.parametrize(
    "name, irf_class",
    [("magic", POINT_LIKE), ("veritas", POINT_LIKE), ("hess-dl3-dr1", FULL_ENCLOSURE),
     ("cta-1dc", FULL_ENCLOSURE)],
)  # fmt: skip
def test_shared_stores_irf_class(name, irf_class):
    found = store_irf_class(DataStore.open(_shared(name)))
    assert found.irf_class == irf_class
    assert os.path.isfile(found.file)


@pytest.mark.requires_data
def test_magic_zenith_computed_agrees_with_its_header():
    store = DataStore.open(_shared("magic"))
    assert "ZEN_PNT" not in store.obs_index.colnames
    zenith = store.zenith_deg()
    events = store.hdu_locations("events")
    pointings, header_zenith = [], []
    for obs_id in store.obs_ids.tolist():
        header = dict(read_header(*events[obs_id]))
        header_zenith.append(90.0 - header.pop("ALT_PNT"))
        pointing, why = pointing_time(ChainMap(header))
        assert pointing is not None, why
        pointings.append(pointing)
    computed = zenith_of_pointings(pointings)
    assert zenith == pytest.approx(header_zenith)
    assert computed == pytest.approx(header_zenith, abs=0.1)
