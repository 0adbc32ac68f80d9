"""Every kind of bad input: one clear error naming run and file, exit != 0, nothing written."""

from __future__ import annotations

import gzip
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner
from helpers import small_store

from bkgdask.cli import cli
from bkgdask.errors import RunError

BROKEN = 101  # obs_id of the run the tests break


def run_file(store: Path, obs_id: int = BROKEN) -> Path:
    return store / "data" / f"run_{obs_id:06d}.fits.gz"


def rewrite(path: Path, edit) -> None:
    """Rewrite a run file through astropy after ``edit(hdulist)`` changed it."""
    with fits.open(path) as hdus:
        hdus = fits.HDUList([h.copy() for h in hdus])
    edit(hdus)
    path.unlink()
    hdus.writeto(path)


def _drop(name):
    def edit(hdus):
        del hdus[name]

    return edit


def _drop_column(hdus):
    events = hdus["EVENTS"]
    columns = [c for c in events.columns if c.name != "ENERGY"]
    hdus["EVENTS"] = fits.BinTableHDU.from_columns(columns, header=events.header, name="EVENTS")


def _zero_time(hdus):
    hdus["GTI"].data["STOP"] = hdus["GTI"].data["START"]


def _corrupt_gzip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\x00" * 64
    path.write_bytes(bytes(data))


def _not_fits(path: Path) -> None:
    path.write_bytes(gzip.compress(b"this is not a FITS file\n" * 500))


def _truncated(path: Path) -> None:
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:4000]))


RUN_BREAKERS = {
    "missing-file": (lambda p: p.unlink(), "file not found"),
    "corrupt-gzip": (_corrupt_gzip, "cannot read"),
    "not-fits": (_not_fits, "not a FITS file"),
    "truncated-fits": (_truncated, "ends"),
    "missing-events-hdu": (lambda p: rewrite(p, _drop("EVENTS")), "no EVENTS HDU"),
    "missing-gti-hdu": (lambda p: rewrite(p, _drop("GTI")), "no GTI HDU"),
    "missing-column": (lambda p: rewrite(p, _drop_column), "no column 'ENERGY'"),
    "zero-time": (lambda p: rewrite(p, _zero_time), "zero observation time"),
}


def invoke(store: Path, out: Path, *args: str):
    runner = CliRunner()
    return runner.invoke(
        cli,
        ["build", str(store), "-o", str(out), "--scheduler", "sync", "--no-progress", *args],
        catch_exceptions=False,
    )


@pytest.fixture
def store(tmp_path):
    return small_store(tmp_path / "store")


@pytest.mark.parametrize("breaker", sorted(RUN_BREAKERS))
def test_bad_run_file(store, tmp_path, breaker):
    breaking, message = RUN_BREAKERS[breaker]
    path = run_file(store)
    breaking(path)
    out = tmp_path / "out" / "bundle.fits.gz"
    result = invoke(store, out)
    assert result.exit_code != 0
    assert f"run {BROKEN}" in result.output
    assert str(path) in result.output
    assert message in result.output
    assert result.output.count("Error:") == 1
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


SELECTION_ERRORS = {
    "unknown-column": ("NOPE_COL < 3", "NOPE_COL"),
    "bad-syntax": ("ZEN_PNT <", "ZEN_PNT <"),
    "empty-selection": ("ZEN_PNT > 89", "no observation"),
    "unsafe": ("__import__('os').system('true')", "__import__"),
}


@pytest.mark.parametrize("case", sorted(SELECTION_ERRORS))
def test_bad_selection(store, tmp_path, case):
    expression, message = SELECTION_ERRORS[case]
    out = tmp_path / "bundle.fits"
    result = invoke(store, out, "--select", expression)
    assert result.exit_code != 0
    assert message in result.output
    assert result.output.count("Error:") == 1
    assert not out.exists()


def test_existing_output_left_untouched(store, tmp_path):
    out = tmp_path / "bundle.fits"
    assert invoke(store, out).exit_code == 0
    before = out.read_bytes()
    run_file(store).unlink()
    result = invoke(store, out)
    assert result.exit_code != 0
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.fits", "store"]


def test_refuses_to_write_into_the_store(store):
    before = sorted(p.name for p in store.rglob("*"))
    result = invoke(store, store / "bkg.fits")
    assert result.exit_code != 0
    assert "inside the input store" in result.output
    assert sorted(p.name for p in store.rglob("*")) == before


def test_bad_config_and_edges(store, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("binning:\n  energy: {min: 0.1 TeV, max: 100 TeV, nbin: 5, colour: red}\n")
    result = invoke(store, tmp_path / "a.fits", "--config", str(config))
    assert result.exit_code != 0 and "colour" in result.output
    result = invoke(store, tmp_path / "b.fits", "--energy-edges", "1,10 deg")
    assert result.exit_code != 0 and "energy" in result.output
    result = invoke(store, tmp_path / "c.fits", "--zenith-edges", "40,20")
    assert result.exit_code != 0 and "increasing" in result.output
    assert not any(tmp_path.glob("*.fits"))


@pytest.mark.parametrize("scheduler", ["local", "processes"])
def test_run_error_crosses_processes_intact(store, tmp_path, scheduler):
    """A worker process's failure (LocalCluster, forked) reaches the user as the same error."""
    error = RunError(5, "/x/y.fits", "zero observation time")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
    _zero_time_file = run_file(store)
    rewrite(_zero_time_file, _zero_time)
    out = tmp_path / "bundle.fits.gz"
    cmd = [
        sys.executable,
        "-m",
        "bkgdask.cli",
        "build",
        str(store),
        "-o",
        str(out),
        "--scheduler",
        scheduler,
        "--n-workers",
        "2",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"run {BROKEN} ({_zero_time_file}): zero observation time" in proc.stderr
    assert not out.exists()
    assert np.all([not p.name.startswith(".") for p in tmp_path.iterdir()])
