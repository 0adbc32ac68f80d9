"""H.E.S.S. DL3 DR1: all 105 runs train with targets excluded; each run gets its own model."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from gammapy.data import DataStore as GammapyDataStore

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.validation.loto import leave_one_target_out

pytestmark = pytest.mark.requires_data

CONFIG = {
    "compute": {"scheduler": "sync", "progress": False},
    "exclusion": {"target_radius": "0.4 deg"},
    "grouping": {"interpolate": True},
}


@pytest.fixture(scope="module")
def runwise_bundle(hess_dir, tmp_path_factory):
    result = bkgdask.build(hess_dir, BuildConfig().updated(CONFIG))
    return result, result.write(tmp_path_factory.mktemp("hess") / "bkg.fits.gz")


def test_every_run_trains_and_gets_its_own_model(runwise_bundle):
    result, path = runwise_bundle
    assert result.summary["runs"] == 105
    store = GammapyDataStore.from_file(path)
    assert len(store.obs_ids) == 105
    rows = store.hdu_table[store.hdu_table["HDU_TYPE"] == "bkg"]
    assert len(set(rows["HDU_NAME"])) == 105
    hdus = {hdu.name: hdu for hdu in result.model_hdus().values()}
    for obs_id in store.obs_ids[::15]:
        bkg = store.obs(obs_id).bkg
        expected = hdus[f"BKG_RUN_{obs_id}"].data["BKG"][0].T
        np.testing.assert_allclose(bkg.data, expected, rtol=1e-6)


def test_3d_analysis_of_one_run_per_target_uses_the_runwise_model(runwise_bundle):
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker
    from gammapy.maps import MapAxis, WcsGeom

    result, path = runwise_bundle
    store = GammapyDataStore.from_file(path)
    table = store.obs_table
    hdus = {hdu.name: hdu for hdu in result.model_hdus().values()}
    energy = MapAxis.from_energy_bounds(0.5, 10, 6, unit="TeV")
    for target in ("Crab", "PKS 2155-304 (steady)", "MSH 15-52", "RX J1713.7-3946"):
        obs_id = int(table["OBS_ID"][table["TARGET_NAME"] == target][0])
        obs = store.obs(obs_id)
        pointing = obs.get_pointing_icrs(obs.tmid)
        geom = WcsGeom.create(skydir=pointing, width=3 * u.deg, binsz=0.05, axes=[energy])
        empty = MapDataset.create(geom, name=f"run-{obs_id}")
        dataset = MapDatasetMaker(selection=["counts", "background"]).run(empty, obs)
        predicted = dataset.npred_background().data.sum()
        counts = dataset.counts.data.sum()
        assert 0.5 < counts / predicted < 3.0, (target, counts, predicted)
        model = hdus[f"BKG_RUN_{obs_id}"].data["BKG"][0].T
        np.testing.assert_allclose(obs.bkg.data, model, rtol=1e-6)


@pytest.mark.slow
def test_leave_one_target_out_crab_norms(hess_dir):
    fits = leave_one_target_out(hess_dir, BuildConfig().updated(CONFIG), targets=["Crab"])
    norms = np.array([f.norm for f in fits if f.model == "bkgdask"])
    official = np.array([f.norm for f in fits if f.model == "official"])
    assert norms.size == official.size == 4
    assert np.all(np.abs(norms - 1) < 0.15), norms
