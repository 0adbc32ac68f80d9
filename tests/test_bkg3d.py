"""BKG_3D models against simulated FoV truths: ALTAZ and RADEC alignment, backends, gammapy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner
from distributed import Client, LocalCluster
from helpers import astropy_hdu, per_run_expected
from scipy import stats

import bkgdask
from bkgdask.cli import cli
from bkgdask.config import BuildConfig
from bkgdask.errors import ConfigError
from bkgdask.models import get_kind, read_models
from bkgdask.models.base import Model
from bkgdask.models.bkg3d import Bkg3D, bkg_3d_hdu
from bkgdask.sim.simulate3d import Simulation3DConfig, simulate_store_3d
from bkgdask.sim.truth import TruthModel
from bkgdask.sim.truth3d import Truth3D

#: Coarse bins, so that every bin holds hundreds of events.
BINNING = {
    "energy": {"edges": [0.1, 0.4, 100.0], "unit": "TeV"},
    "fov_lon": {"min": "-2 deg", "max": "2 deg", "nbin": 8},
    "fov_lat": {"min": "-2 deg", "max": "2 deg", "nbin": 8},
}
#: Runs at Dec -30 deg from -3 h to +3 h of hour angle: the field rotates by ~100 deg.
SIMULATION = {"n_obs": 8, "seed": 3, "duration": 1200.0, "hour_angle_min": -3.0}
SPECTRUM = TruthModel(norm=8e-4, offset_max=3.0)
MIN_EXPECTED = 20.0


def build_config(alignment: str, scheduler: str = "sync", smoothing="pspline") -> BuildConfig:
    return BuildConfig().updated(
        {
            "model": {"kind": "bkg_3d", "fov_alignment": alignment, "smoothing": smoothing},
            "binning": BINNING,
            "grouping": {"zenith": {"edges": [0, 90], "unit": "deg"}},
            "compute": {"scheduler": scheduler, "progress": False},
        }
    )


def simulate(path, truth_alignment: str):
    truth = Truth3D(alignment=truth_alignment, gradient=0.25, spectrum=SPECTRUM)
    config = Simulation3DConfig(**SIMULATION, truth=truth)
    return simulate_store_3d(path, config), config


@pytest.fixture(scope="module")
def altaz_store(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("altaz") / "store", "ALTAZ")


@pytest.fixture(scope="module")
def radec_store(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("radec") / "store", "RADEC")


def run_p_values(store, sim_config, alignment: str) -> tuple[np.ndarray, float]:
    """p-values of each run's prediction by the model, and of the model's total counts.

    The model predicts run r as its counts N x T_r / T; the truth expects mu_r.
    With N's Poisson variance M = sum_r mu_r (the model's own noise),
    chi2_r = sum (N - (T / T_r) mu_r)^2 / M over bins with M >= MIN_EXPECTED.
    """
    result = bkgdask.build(store, build_config(alignment))
    (total,) = result.totals.values()
    binning = result.kind.binning(build_config(alignment).binning)
    expected = per_run_expected(store, sim_config, binning, alignment)
    counts, summed = total["counts"].values, expected.sum(axis=0)
    used = summed >= MIN_EXPECTED
    # equal observation times: T / T_r = n_runs
    p_values = []
    for mu in expected:
        chi2 = np.sum((counts - len(expected) * mu)[used] ** 2 / summed[used])
        p_values.append(stats.chi2.sf(chi2, used.sum()))
    total_chi2 = np.sum((counts - summed)[used] ** 2 / summed[used])
    return np.array(p_values), float(stats.chi2.sf(total_chi2, used.sum()))


def test_altaz_model_passes_altaz_truth(altaz_store):
    p_runs, p_total = run_p_values(*altaz_store, "altaz")
    assert p_total > 0.001
    assert np.all(p_runs > 0.001), p_runs


def test_radec_model_fails_rotating_truth_but_sums_right(altaz_store):
    p_runs, p_total = run_p_values(*altaz_store, "radec")
    # the sum over runs is right (the truth's time integral over every run) ...
    assert p_total > 0.001
    # ... but the runs far from transit see the field rotated away from the average
    assert p_runs[0] < 0.001 and p_runs[-1] < 0.001, p_runs


def test_radec_model_passes_radec_truth(radec_store):
    p_runs, p_total = run_p_values(*radec_store, "radec")
    assert p_total > 0.001
    assert np.all(p_runs > 0.001), p_runs


def test_counts_identical_on_every_backend(altaz_store):
    store, _ = altaz_store
    schedulers = ("sync", "threads", "processes")
    counts = [bkgdask.build(store, build_config("altaz", s)).totals for s in schedulers]
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        counts.append(bkgdask.build(store, build_config("altaz"), client=client).totals)
    for other in counts[1:]:
        for label, total in counts[0].items():
            np.testing.assert_array_equal(other[label]["counts"].values, total["counts"].values)
            np.testing.assert_allclose(other[label]["exposure"].values, total["exposure"].values)


ALTAZ_PROBE = """
import json, sys
import bkgdask
from bkgdask.config import BuildConfig
config = BuildConfig().updated({"model": {"kind": "bkg_3d", "fov_alignment": "altaz"},
                                "compute": {"scheduler": "threads", "progress": False}})
bkgdask.build(sys.argv[1], config).write(sys.argv[2])
heavy = ("astropy.coordinates", "astropy.utils.iers", "scipy", "gammapy")
print(json.dumps({name: name in sys.modules for name in heavy}))
"""


def test_altaz_build_loads_no_coordinates_nor_iers_table(altaz_store, tmp_path):
    """The field rotation is ERFA's: no astropy.coordinates, no IERS table (seconds a process)."""
    bundle = tmp_path / "bkg.fits.gz"
    proc = subprocess.run(
        [sys.executable, "-c", ALTAZ_PROBE, str(altaz_store[0]), str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not any(loaded.values()), loaded
    models, _ = read_models(bundle)
    assert {m.kind for m in models.values()} == {Bkg3D("ALTAZ")}


def test_bundle_read_by_gammapy(altaz_store, tmp_path):
    from gammapy.data import DataStore

    store, sim_config = altaz_store
    result = bkgdask.build(store, build_config("altaz", smoothing="none"))
    bundle = result.write(tmp_path / "bkg.fits.gz")
    obs_id = sim_config.obs_ids[2]
    background = DataStore.from_file(bundle).obs(obs_id, required_irf=["bkg"]).bkg
    models, _ = read_models(bundle)
    (model,) = models.values()
    assert type(background).__name__ == "Background3D"
    assert background.fov_alignment.value == "ALTAZ"
    assert model.kind == Bkg3D("ALTAZ") and model.obs_ids == sim_config.obs_ids
    np.testing.assert_allclose(background.data, model.rate, rtol=1e-7)  # BKG is float32
    np.testing.assert_allclose(
        background.axes["fov_lat"].edges.to_value("deg"), np.linspace(-2, 2, 9)
    )
    (total,) = result.totals.values()
    np.testing.assert_array_equal(model.counts, total["counts"].values)
    rows = result.hdu_index(bundle)
    assert set(rows["HDU_CLASS"][rows["HDU_TYPE"] == "bkg"]) == {"bkg_3d"}


def test_hdu_as_gammapy_writes_it():
    from gammapy.irf import Background3D

    kind = Bkg3D("altaz")
    binning = kind.binning(build_config("altaz").binning)
    rate = np.random.default_rng(1).uniform(size=binning.shape)
    table = bkg_3d_hdu(binning["energy"], binning["fov_lon"], binning["fov_lat"], rate, "ALTAZ")
    ours = astropy_hdu(table)
    theirs = kind.to_gammapy(Model("BKG", kind, binning, rate, {})).to_table_hdu()
    assert theirs.header["FOVALIGN"] == ours.header["FOVALIGN"] == "ALTAZ"
    for column in ("ENERG_LO", "DETX_HI", "DETY_LO"):
        np.testing.assert_allclose(theirs.data[column], ours.data[column], rtol=1e-12)
    for column in theirs.columns:
        assert (ours.columns[column.name].unit, ours.columns[column.name].dim) == (
            column.unit,
            column.dim,
        )
    # BKG is float32 (TFORM E), as in the H.E.S.S. DR1 models: rounded to 6e-8.
    assert ours.columns["BKG"].format == f"{rate.size}E"
    np.testing.assert_allclose(theirs.data["BKG"], ours.data["BKG"], rtol=1e-7)
    back = Background3D.from_table(Table.read(ours))
    assert back.fov_alignment.value == "ALTAZ"
    np.testing.assert_allclose(back.quantity.to_value("s-1 MeV-1 sr-1"), rate, rtol=1e-7)
    for header, data in ((table.header, table.data), (ours.header, ours.data)):
        model = kind.from_hdu("BKG", header, data)
        assert model.binning == binning and model.kind == kind
        np.testing.assert_array_equal(model.rate, rate.astype(np.float32))


def test_alignment_configuration():
    assert BuildConfig().updated({"model": {"kind": "bkg_3d"}}).kind == Bkg3D("RADEC")
    altaz = BuildConfig().updated({"model": {"kind": "bkg_3d", "fov_alignment": "ALTAZ"}})
    assert altaz.kind.event_columns == ("TIME",) and get_kind("bkg_3d").event_columns == ()
    with pytest.raises(ConfigError, match="fov_alignment"):
        BuildConfig().updated({"model": {"kind": "bkg_3d", "fov_alignment": "galactic"}})
    with pytest.raises(ConfigError, match="fov_lat"):
        BuildConfig().updated({"binning": {"fov_lat": {"edges": [-95, 0], "unit": "deg"}}})


def test_cli_builds_altaz_models(altaz_store, tmp_path):
    store, _ = altaz_store
    out = tmp_path / "cli.fits"
    args = ["build", str(store), "-o", str(out), "--model", "bkg_3d", "--fov-alignment", "altaz",
            "--zenith-edges", "0,90", "--scheduler", "sync", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with fits.open(out) as hdul:
        (bkg,) = [h for h in hdul if h.header.get("HDUCLAS4") == "BKG_3D"]
        assert bkg.header["FOVALIGN"] == "ALTAZ" and bkg.header["SMMETHOD"] == "PSPLINE"
        assert bkg.data["COUNTS"][0].shape == (60, 60, 19)
        # the smooth rate on its node grid: >= 32 energy nodes a decade, the build's pixels
        assert bkg.data["BKG"][0].shape[:2] == (60, 60) and bkg.data["BKG"][0].shape[2] >= 97


def test_bundle_as_astropy_reads_it(altaz_store, tmp_path):
    """Every model HDU of the bundle reads back as built: keywords, columns, units, cells."""
    result = bkgdask.build(altaz_store[0], build_config("altaz"))
    built = {hdu.name: hdu for hdu in result.model_hdus().values()}
    with fits.open(result.write(tmp_path / "bkg.fits.gz")) as hdus:
        hdus.verify("exception")
        assert [h.name for h in hdus[3:]] == list(built)
        for name, hdu in built.items():
            read = hdus[name]
            assert {k: read.header[k] for k in hdu.header} == dict(hdu.header)
            assert read.columns.names == list(hdu.data.dtype.names)
            for column in read.columns:
                assert column.unit == hdu.units.get(column.name)
                assert read.data[column.name].dtype == hdu.data[column.name].dtype
                np.testing.assert_array_equal(read.data[column.name], hdu.data[column.name])
