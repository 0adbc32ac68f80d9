"""The command line as a user runs it: a real process, a real LocalCluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from gammapy.data import DataStore as GammapyDataStore
from helpers import OFF, small_store

from bkgdask.cli import ONE_BLAS_THREAD


def bkgdask(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bkgdask.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_build_on_local_cluster(tmp_path):
    store = small_store(tmp_path / "store")
    out = tmp_path / "models" / "bkg.fits.gz"
    proc = bkgdask(
        "build", str(store), "-o", str(out), "--select", OFF, "--n-workers", "2",
        "--scheduler", "local",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert re.search(r"Dask dashboard: http://127\.0\.0\.1:\d+/status", proc.stderr)
    assert "% Completed" in proc.stderr  # the progress bar
    summary = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r".*bkgdask: 4 runs, 1,600 events, 3 models, [\d.]+ s, [\d,]+ events/s -> .*bkg\.fits\.gz",
        summary,
    ), summary
    store_obs = GammapyDataStore.from_file(out)
    assert sorted(store_obs.hdu_table[store_obs.hdu_table["HDU_TYPE"] == "bkg"]["OBS_ID"]) == [
        100,
        101,
        102,
        103,
        900,
    ]
    # The source run (zenith 35) gets the 20-40 model though it was not selected.
    assert store_obs.obs(900, required_irf=["bkg"]).bkg is not None


def test_options_override_config(tmp_path):
    store = small_store(tmp_path / "store")
    config = tmp_path / "c.yaml"
    config.write_text(
        "grouping:\n  zenith: {edges: [0, 90], unit: deg}\ncompute: {scheduler: sync}\n"
    )
    out = tmp_path / "bkg.fits"
    proc = bkgdask(
        "--log-level",
        "WARNING",
        "build",
        str(store),
        "-o",
        str(out),
        "--config",
        str(config),
        "--zenith-edges",
        "0,25,60",
        "--energy-edges",
        "0.1,1,10,100 TeV",
        "--offset-edges",
        "0,1,2,3",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    from astropy.io import fits

    with fits.open(out) as hdus:
        names = [h.name for h in hdus]
        assert names == ["PRIMARY", "HDU_INDEX", "OBS_INDEX", "BKG_ZEN_0_25", "BKG_ZEN_25_60"]
        assert len(hdus["BKG_ZEN_0_25"].data["CNT_ENERG_LO"][0]) == 3
        assert len(hdus["BKG_ZEN_0_25"].data["CNT_THETA_LO"][0]) == 3


@pytest.mark.parametrize("args", [["--help"], ["build", "--help"], ["--version"]])
def test_help_is_fast_and_light(args):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bkgdask.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}
    assert not {"dask", "gammapy", "xarray", "astropy"} & imported


def test_console_script_starts_and_exits_quickly():
    """After any command, even a failing one, the objects alive are out of the collector's
    way and it is on; the configuration was made without looking for pydantic plugins."""
    probe = (
        "import gc, sys\n"
        "from bkgdask.cli import main\n"
        "sys.argv = ['bkgdask'] + sys.argv[1:]\n"
        "try:\n    main()\n"
        "except SystemExit as exit:\n"
        "    from pydantic.plugin import _loader\n"
        "    frozen, on = gc.get_freeze_count() > 1000, gc.isenabled()\n"
        "    print(exit.code, frozen, on, _loader._plugins, file=sys.stderr)\n"
    )
    for args, code in (
        (["--version"], "0"),
        (["build", "/no/such/store", "-o", "/no/x.fits"], "1"),
    ):
        proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
        assert proc.stderr.strip().splitlines()[-1] == f"{code} True True None", proc.stderr


@pytest.mark.parametrize("users", [None, "2"], ids=["default", "user's own"])
def test_the_command_runs_blas_on_one_thread_unless_told_otherwise(users):
    """numpy's BLAS, loaded by the command, has one thread; a user's own setting is kept."""
    probe = (
        "import sys\n"
        "from bkgdask.cli import main\n"
        "sys.argv = ['bkgdask', 'build', '/no/such/store', '-o', '/no/x.fits']\n"
        "try:\n    main()\n"
        "except SystemExit:\n"
        "    from threadpoolctl import threadpool_info\n"
        "    assert 'numpy' in sys.modules\n"
        "    print([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ONE_BLAS_THREAD}
    if users:
        env["OPENBLAS_NUM_THREADS"] = users
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"[{users or 1}]"


def test_build_turns_the_collector_on_before_it_opens_the_store(tmp_path):
    """The collector is off only while ``build`` imports: on, with the imports frozen, after."""
    store = small_store(tmp_path / "store")
    probe = (
        "import gc, sys\n"
        "from bkgdask.cli import main\n"
        "from bkgdask.io.store import DataStore\n"
        "opened = DataStore.open.__func__\n"
        "def spy(cls, path):\n"
        "    print('collector', gc.isenabled(), gc.get_freeze_count() > 100000, file=sys.stderr)\n"
        "    return opened(cls, path)\n"
        "DataStore.open = classmethod(spy)\n"
        "sys.argv = ['bkgdask'] + sys.argv[1:]\n"
        "main()\n"
    )
    out = tmp_path / "bkg.fits.gz"
    args = ["build", str(store), "--select", OFF, "-o", str(out), "--no-progress"]
    proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "collector True True" in proc.stderr
