"""Hostile inputs to ``bkgdask build``: exit 1 and one line naming what, or a right model."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner
from conftest import data_dir

from bkgdask.cli import cli
from bkgdask.compute.reporting import MAX_WORKERS_PER_CORE, default_workers

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


# -- 9: one line, before any work -------------------------------------------------------


def test_output_parent_is_a_file(hess, tmp_path):
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "bundle.fits"
    assert_refused(build(hess, out), str(out), "not a folder")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_write_failure_after_build(hess, tmp_path, monkeypatch, code):
    def failing_write(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("bkgdask.engine.build.write_bundle", failing_write)
    out = tmp_path / "bundle.fits"
    assert_refused(build(hess, out), str(out), os.strerror(code), out=out)


def test_no_room_refused_before_work(hess, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "bkgdask.engine.preflight.shutil.disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 0)
    )
    monkeypatch.setattr("bkgdask.engine.build.plan_build", pytest.fail)  # no work may start
    out = tmp_path / "bundle.fits"
    assert_refused(build(hess, out), str(out), "MB free", out=out)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--offset-edges", "0,1,200 deg", ("offset", "180")),
        ("--zenith-edges", "0,20,40,500", ("zenith", "90")),
        ("--energy-edges", "-1,1,10 TeV", ("energy",)),
    ],
)
def test_edges_out_of_range(hess, tmp_path, option, value, words):
    out = tmp_path / "bundle.fits"
    assert_refused(build(hess, out, option, value), *words, out=out)


@pytest.fixture
def not_a_scheduler():
    """A TCP server on 127.0.0.1 that answers every connection with HTTP and closes it."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    server.close()


def test_scheduler_addresses(hess, tmp_path, not_a_scheduler):
    out = tmp_path / "bundle.fits"
    for address, words in (
        ("tcp://127.0.0.1:1", ("tcp://127.0.0.1:1", "refused")),
        ("tcp://no-such-host.invalid:8786", ("unknown host",)),
        (not_a_scheduler, (not_a_scheduler, "Dask scheduler")),
    ):
        result = CliRunner().invoke(
            cli, ["build", str(hess), "-o", str(out), "--scheduler", address]
        )
        assert_refused(result, *words, out=out)


# -- 10, 11: nothing written inside the input store ---------------------------------------


@pytest.mark.parametrize("option", ["-o", "--report", "--cache"])
def test_outputs_inside_store_refused(hess, tmp_path, option):
    out = tmp_path / "bundle.fits"
    inside = hess / "data" / ("x.html" if option == "--report" else "x")
    args = ["build", str(hess), "--scheduler", "sync", "--no-progress"]
    args += ["-o", str(inside)] if option == "-o" else ["-o", str(out), option, str(inside)]
    before = sorted(p.name for p in (hess / "data").iterdir())
    assert_refused(CliRunner().invoke(cli, args), "inside the input store", out=out)
    assert sorted(p.name for p in (hess / "data").iterdir()) == before


def test_job_logs_beside_the_output(hess, tmp_path, monkeypatch):
    from bkgdask.compute import backends

    seen = []

    def recording_backend(config, announce=None):
        seen.append(config.log_directory)
        return backends.Backend(config, announce)

    monkeypatch.setattr(backends, "make_backend", recording_backend)
    out = tmp_path / "out" / "bundle.fits"
    assert build(hess, out).exit_code == 0
    assert seen and all(Path(d) == out.parent / "bundle.fits.jobs" for d in seen)
    assert not Path(seen[0]).resolve().is_relative_to(hess.resolve())


# -- 12: a renamed bundle ------------------------------------------------------------------


def test_renamed_bundle_detected(hess, tmp_path):
    out = tmp_path / "bundle.fits"
    assert build(hess, out).exit_code == 0
    renamed = out.rename(tmp_path / "renamed.fits")
    figures = tmp_path / "figures"
    result = CliRunner().invoke(cli, ["plot", str(renamed), "-o", str(figures)])
    assert_refused(result, str(renamed), "renamed", "bundle.fits")
    assert not figures.exists()


def test_figures_and_validation_inside_store_refused(hess, tmp_path):
    out = tmp_path / "bundle.fits"
    assert build(hess, out).exit_code == 0
    before = sorted(p.name for p in (hess / "data").iterdir())
    inside = hess / "data" / "figures"
    result = CliRunner().invoke(cli, ["plot", str(out), "-o", str(inside)])
    assert_refused(result, "figures folder", "inside the input store")
    args = ["validate", str(out), "--store", str(hess), "-o", str(hess / "report")]
    assert_refused(CliRunner().invoke(cli, args), "validation folder", "inside the input store")
    assert sorted(p.name for p in (hess / "data").iterdir()) == before
    assert not (hess / "report").exists()


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["local", "processes"])
def test_ctrl_c_during_a_build_on_worker_processes(tmp_path, scheduler):
    """SIGINT to the process group of a build on worker processes: one line, exit 130, none left."""
    if not (data_dir() / "hess-dl3-dr1").is_dir():
        pytest.skip("no H.E.S.S. DL3 data")
    out = tmp_path / "bundle.fits"
    command = [sys.executable, "-m", "bkgdask.cli", "build", str(data_dir() / "hess-dl3-dr1")]
    command += ["-o", str(out), "--scheduler", scheduler, "--n-workers", "2", "--no-progress"]
    command += ["--cache", str(tmp_path / "cache")]  # the runs' partials show the work started
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not any((tmp_path / "cache").glob("*.nc")) and process.poll() is None:
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "bkgdask: interrupted"
    assert "Traceback" not in stderr
    assert not out.exists()
    for _ in range(100):  # every worker and nanny of the group gone
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the interrupted build are still running")
