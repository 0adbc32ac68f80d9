"""BKG_2D models as written: smoothing choice, build-bin columns, gammapy reading them back."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner
from helpers import astropy_hdu

import bkgdask
from bkgdask.cli import cli
from bkgdask.config import BuildConfig
from bkgdask.errors import ConfigError
from bkgdask.models import read_models
from bkgdask.sim.simulate import SimulationConfig, simulate_store
from bkgdask.validation.model_check import gammapy_predicted, ratio_with_error

SYNC = {"compute": {"scheduler": "sync", "progress": False}}
FINE = {
    "energy": {"min": "0.1 TeV", "max": "100 TeV", "nbin": 60, "spacing": "log"},
    "offset": {"min": "0 deg", "max": "3 deg", "nbin": 30, "spacing": "square"},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "store"
    simulate_store(path, SimulationConfig(n_obs=40, seed=3, compress=False), scheduler="sync")
    return path


@pytest.fixture(scope="module")
def results(store):
    """Default and histogram builds share the histograms: one build, two model sections."""
    result = bkgdask.build(store, BuildConfig().updated(SYNC))
    raw = bkgdask.build(store, BuildConfig().updated({**SYNC, "model": {"smoothing": "none"}}))
    return result, raw


def test_default_is_smoothed_and_gammapy_reads_the_node_grid(results, tmp_path):
    from gammapy.data import DataStore as GammapyDataStore
    from gammapy.irf import Background2D

    result, _ = results
    assert result.model.smoothing == "pspline"
    bundle = result.write(tmp_path / "bkg.fits")
    models, _ = read_models(bundle)
    for name, model in models.items():
        total = next(
            t for t in result.totals.values() if int(t["counts"].sum()) == model.counts.sum()
        )
        assert model.header["SMMETHOD"] == "PSPLINE" and model.header["SMEDF"] > 3
        np.testing.assert_array_equal(model.counts, total["counts"].values)
        np.testing.assert_allclose(model.exposure, total["exposure"].values, rtol=1e-12)
        node_binning, node_rate = model.nodes
        assert node_binning.shape[0] > 3 * model.binning.shape[0]
        assert np.all(np.isfinite(node_rate)) and np.all(node_rate > 0)
        assert np.all(model.rate > 0) and np.all(model.error > 0)
        # the smoothing keeps the group's integral (the constant is unpenalised)
        assert abs(model.predicted.sum() / model.counts.sum() - 1) < 0.01
        bkg = Background2D.read(bundle, hdu=name)
        assert bkg.data.shape == node_rate.shape
        o = model.binning["offset"]
        predicted = gammapy_predicted(bkg, model.binning["energy"], o, model.observation_time)
        np.testing.assert_allclose(predicted, model.predicted, rtol=0.01)
    obs_id = int(GammapyDataStore.from_file(bundle).obs_table["OBS_ID"][0])
    assert GammapyDataStore.from_file(bundle).obs(obs_id, required_irf=["bkg"]).bkg is not None


def test_histogram_option_writes_counts_over_exposure(results, tmp_path):
    _, raw = results
    models, _ = read_models(raw.write(tmp_path / "raw.fits"))
    for model in models.values():
        assert model.nodes[0] == model.binning and model.header["SMMETHOD"] == "NONE"
        np.testing.assert_allclose(model.nodes[1], model.rate, rtol=1e-7)  # BKG is float32
        np.testing.assert_allclose(model.rate, model.counts / model.exposure, rtol=1e-12)
        np.testing.assert_allclose(model.error, np.sqrt(model.counts) / model.exposure)


def test_smoothed_matches_counts_where_they_are_many(results):
    result, _ = results
    for total, hdu in zip(result.totals.values(), result.model_hdus().values()):
        counts = total["counts"].values
        predicted = np.asarray(hdu.data["BKG_RATE"][0]).T * total["exposure"].values
        ratio, error = ratio_with_error(counts, predicted)
        pulls = (ratio - 1) / error
        assert np.mean(np.abs(pulls) < 2) > 0.85 and np.nanmax(np.abs(pulls)) < 5


def test_finer_binning_gives_the_same_prediction(store, results):
    """60 x 30 bins: no hole, no explosion, and the default bins' integrals within statistics."""
    from gammapy.irf import Background2D

    coarse, _ = results
    fine = bkgdask.build(store, BuildConfig().updated({**SYNC, "binning": FINE}))
    for label, hdu in fine.model_hdus().items():
        assert np.all(np.isfinite(hdu.data["BKG"])) and np.all(hdu.data["BKG"] > 0)
        total = coarse.totals[label]
        energy = np.append(total["energy_lo"].values, total["energy_hi"].values[-1])
        offset = np.append(total["offset_lo"].values, total["offset_hi"].values[-1])
        time = float(total.attrs["observation_time"])
        predicted = {
            name: gammapy_predicted(Background2D.from_table(_table(h)), energy, offset, time)
            for name, h in (("fine", hdu), ("coarse", coarse.model_hdus()[label]))
        }
        enough = predicted["coarse"] > 50
        ratio = predicted["fine"][enough] / predicted["coarse"][enough]
        assert np.all(np.abs(ratio - 1) < 3 / np.sqrt(predicted["coarse"][enough])), ratio


def _table(hdu):
    from astropy.table import Table

    return Table.read(astropy_hdu(hdu))


def test_smoothing_option_and_config(store, tmp_path):
    with pytest.raises(ConfigError, match="smoothing"):
        BuildConfig().updated({"model": {"smoothing": "gaussian"}})
    out = tmp_path / "raw.fits"
    result = CliRunner().invoke(
        cli, ["build", str(store), "-o", str(out), "--scheduler", "sync", "--smoothing", "none"]
    )
    assert result.exit_code == 0, result.output
    with fits.open(out) as hdus:
        assert {h.header.get("SMMETHOD") for h in hdus if h.name.startswith("BKG_")} == {"NONE"}


def test_groups_fitted_side_by_side_equal_one_after_the_other(results, monkeypatch):
    """The group fits run on threads; each must give its model bit for bit, BLAS held at one."""
    from threadpoolctl import threadpool_info

    from bkgdask.engine import build as engine_build

    result, _ = results
    assert len(result.totals) >= 2
    blas_threads = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    monkeypatch.setattr(engine_build, "default_workers", lambda: 1)
    serial = engine_build._finalize_groups(result.kind, result.totals, result.model)
    monkeypatch.setattr(engine_build, "default_workers", lambda: 2)
    side_by_side = engine_build._finalize_groups(result.kind, result.totals, result.model)
    for label, rate in serial.items():
        assert np.array_equal(rate.coef, side_by_side[label].coef), label
        assert rate.parameters == side_by_side[label].parameters
    after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert after == blas_threads  # the limit is lifted once the last fit leaves
