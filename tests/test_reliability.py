"""Hostile inputs to ``bkgdask build``: each gives exit 1 and one line naming what, or a right model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner
from conftest import data_dir

from bkgdask.cli import cli
from bkgdask.compute.backends import MAX_WORKERS_PER_CORE, default_workers

OFF_RUN = 20275
OTHER_RUN = 20282
HESS_FILE = "data/hess_dl3_dr1_obs_id_{:06d}.fits.gz"


def copy_hess(dest: Path, obs_ids=(OFF_RUN, OTHER_RUN)) -> Path:
    """A copy of the H.E.S.S. store holding only ``obs_ids`` (indexes filtered, files copied)."""
    source = data_dir() / "hess-dl3-dr1"
    (dest / "data").mkdir(parents=True)
    for name in ("hdu-index.fits.gz", "obs-index.fits.gz"):
        table = Table.read(source / name)
        table[np.isin(table["OBS_ID"], obs_ids)].write(dest / name)
    for obs_id in obs_ids:
        shutil.copy(source / HESS_FILE.format(obs_id), dest / HESS_FILE.format(obs_id))
    return dest


@pytest.fixture
def hess(tmp_path):
    if not (data_dir() / "hess-dl3-dr1").is_dir():
        pytest.skip("no H.E.S.S. DL3 data")
    return copy_hess(tmp_path / "hess")


def edit_run(store: Path, edit, obs_id: int = OFF_RUN) -> Path:
    """Rewrite one run file after ``edit(hdulist)``; return its path."""
    path = store / HESS_FILE.format(obs_id)
    with fits.open(path) as hdus:
        hdus = fits.HDUList([h.copy() for h in hdus])
    edit(hdus)
    path.unlink()
    hdus.writeto(path)
    return path


def build(store: Path, out: Path, *args: str):
    return CliRunner().invoke(
        cli,
        ["build", str(store), "-o", str(out), "--scheduler", "sync", "--no-progress", *args],
        catch_exceptions=False,
    )


def assert_refused(result, *words: str, out: Path | None = None) -> None:
    """Exit 1, one ``Error:`` line holding ``words``, no traceback, nothing written at ``out``."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    for word in words:
        assert word in lines[0], result.output
    assert "Traceback" not in result.output
    if out is not None:
        assert not out.exists()


def bkg_header(bundle: Path) -> fits.Header:
    with fits.open(bundle) as hdus:
        return next(h.header for h in hdus if h.header.get("HDUCLAS2") == "BKG")


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


# -- 1: duplicate OBS_IDs --------------------------------------------------------------


def test_duplicate_obs_id_in_obs_index(hess, tmp_path):
    table = Table.read(hess / "obs-index.fits.gz")
    table.add_row(table[0])
    table.write(hess / "obs-index.fits.gz", overwrite=True)
    out = tmp_path / "bundle.fits"
    assert_refused(build(hess, out), "obs", str(int(table["OBS_ID"][0])), "more than once", out=out)


def test_duplicate_hdu_in_hdu_index(hess, tmp_path):
    table = Table.read(hess / "hdu-index.fits.gz")
    table.add_row(table[0])
    table.write(hess / "hdu-index.fits.gz", overwrite=True)
    out = tmp_path / "bundle.fits"
    assert_refused(build(hess, out), "HDU index", str(int(table["OBS_ID"][0])), out=out)


# -- 2: impossible pointing ------------------------------------------------------------


def test_impossible_pointing(hess, tmp_path):
    path = edit_run(hess, lambda h: h["EVENTS"].header.set("DEC_PNT", 95.0))
    out = tmp_path / "bundle.fits"
    assert_refused(build(hess, out), f"run {OFF_RUN}", str(path), "DEC_PNT=95", out=out)


# -- 4: observation time from the data ---------------------------------------------------


def _double_gti(hdus):
    gti = hdus["GTI"]
    hdus["GTI"] = fits.BinTableHDU.from_columns(
        gti.columns, header=gti.header, nrows=2 * len(gti.data), name="GTI"
    )
    hdus["GTI"].data[len(gti.data) :] = gti.data


def test_overlapping_gtis_counted_once(hess, tmp_path, caplog):
    clean = tmp_path / "clean.fits"
    assert build(hess, clean, "--select", f"OBS_ID == {OFF_RUN}").exit_code == 0
    edit_run(hess, _double_gti)
    twice = tmp_path / "twice.fits"
    result = build(hess, twice, "--select", f"OBS_ID == {OFF_RUN}")
    assert result.exit_code == 0, result.output
    assert bkg_header(twice)["OBSTIME"] == bkg_header(clean)["OBSTIME"]
    assert "GTIs overlap" in caplog.text


def _halve_gti(hdus):
    gti = hdus["GTI"].data
    gti["STOP"] = gti["START"] + 0.5 * (gti["STOP"] - gti["START"])


def test_events_outside_gtis_refused(hess, tmp_path):
    path = edit_run(hess, _halve_gti)
    out = tmp_path / "bundle.fits"
    assert_refused(build(hess, out), f"run {OFF_RUN}", str(path), "outside every GTI", out=out)


def test_events_outside_gtis_dropped_and_counted(hess, tmp_path):
    with fits.open(hess / HESS_FILE.format(OFF_RUN)) as hdus:
        time = np.array(hdus["EVENTS"].data["TIME"])
        gti = hdus["GTI"].data
        half = gti["START"] + 0.5 * (gti["STOP"] - gti["START"])
        outside = int(np.sum(time > half.max()))
    assert outside > 0
    edit_run(hess, _halve_gti)
    config = config_file(tmp_path, "checks: {max_dropped_fraction: 1.0}\n")
    out = tmp_path / "bundle.fits"
    result = build(hess, out, "--config", str(config), "--select", f"OBS_ID == {OFF_RUN}")
    assert result.exit_code == 0, result.output
    header = bkg_header(out)
    assert header["NDROPGTI"] == outside
    assert header["NUSED"] == time.size - outside
    obs_index = Table.read(out, hdu="OBS_INDEX")
    row = obs_index[obs_index["OBS_ID"] == OFF_RUN][0]
    assert (row["N_READ"], row["N_DROP_GTI"]) == (time.size, outside)


# -- 6: invalid events ---------------------------------------------------------------


def _spoil_events(n_bad: int):
    def edit(hdus):
        data = hdus["EVENTS"].data
        data["ENERGY"][:n_bad:4] = np.nan
        data["ENERGY"][1:n_bad:4] = -1.0
        data["ENERGY"][2:n_bad:4] = np.inf
        data["RA"][3:n_bad:4] = np.nan

    return edit


def test_invalid_events_counted(hess, tmp_path, recwarn):
    edit_run(hess, _spoil_events(8))
    out = tmp_path / "bundle.fits"
    result = build(hess, out, "--select", f"OBS_ID == {OFF_RUN}")
    assert result.exit_code == 0, result.output
    header = bkg_header(out)
    assert header["NDROPBAD"] == 8
    assert header["NUSED"] == header["NEVENTS"] - 8 - header["NDROPGTI"]
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_many_invalid_events_refused(hess, tmp_path):
    path = edit_run(hess, _spoil_events(2000))
    out = tmp_path / "bundle.fits"
    assert_refused(build(hess, out), f"run {OFF_RUN}", str(path), "2000 with non-finite", out=out)


# -- 7: a run without events ----------------------------------------------------------


def test_run_without_events(hess, tmp_path):
    def empty(hdus):
        events = hdus["EVENTS"]
        hdus["EVENTS"] = fits.BinTableHDU(data=events.data[:0], header=events.header)

    edit_run(hess, empty)
    out = tmp_path / "bundle.fits"
    result = build(hess, out, "--zenith-edges", "0,90")
    assert result.exit_code == 0, result.output
    obs_index = Table.read(out, hdu="OBS_INDEX")
    row = obs_index[obs_index["OBS_ID"] == OFF_RUN][0]
    assert (row["N_READ"], row["N_USED"]) == (0, 0)
    assert bkg_header(out)["NRUNS"] == 2


# -- 8: too many workers ----------------------------------------------------------------


def test_too_many_workers_refused(hess, tmp_path):
    out = tmp_path / "bundle.fits"
    n = MAX_WORKERS_PER_CORE * default_workers() + 1
    result = CliRunner().invoke(
        cli, ["build", str(hess), "-o", str(out), "--scheduler", "threads", "--n-workers", str(n)]
    )
    assert_refused(result, f"--n-workers {n}", "per core", out=out)


def test_more_workers_than_cores_warns(hess, tmp_path, caplog):
    out = tmp_path / "bundle.fits"
    n = default_workers() + 1
    args = ["build", str(hess), "-o", str(out), "--scheduler", "threads", "--n-workers", str(n)]
    result = CliRunner().invoke(cli, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "compete for the cores" in caplog.text
