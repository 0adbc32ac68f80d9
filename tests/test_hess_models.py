"""H.E.S.S. DR1 off runs: the default (smoothed) models against their counts, read by gammapy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.io.store import DataStore
from bkgdask.models import read_models
from bkgdask.validation.model_check import gammapy_predicted, safe_energy_range

pytestmark = pytest.mark.requires_data
OFF = {
    "selection": "TARGET_NAME == 'Off data'",
    "compute": {"scheduler": "sync", "progress": False},
}
OFFSET_MAX = 2.0


@pytest.fixture(scope="module")
def bundle(hess_dir, tmp_path_factory):
    result = bkgdask.build(hess_dir, BuildConfig().updated(OFF))
    return result.write(tmp_path_factory.mktemp("hess") / "bkg.fits")


def test_no_empty_or_invalid_bkg_value(bundle):
    models, _ = read_models(bundle)
    assert len(models) == 3
    for model in models.values():
        _, node_rate = model.nodes
        assert np.all(np.isfinite(node_rate)) and np.all(node_rate > 0), model.name
        assert np.all(model.rate > 0) and np.all(np.isfinite(model.error))


def test_gammapy_evaluation_matches_training_counts(bundle, hess_dir):
    """Per group, (energy bin, offset < 2 deg) above the safe threshold: ±5 % or 2 sigma."""
    from gammapy.irf import Background2D

    models, _ = read_models(bundle)
    store = DataStore.open(hess_dir)
    for name, model in models.items():
        energy, offset = model.binning["energy"], model.binning["offset"]
        inside = offset[1:] <= OFFSET_MAX + 1e-9
        bkg = Background2D.read(bundle, hdu=name)
        predicted = gammapy_predicted(
            bkg, energy, offset[: inside.sum() + 1], model.observation_time
        )
        predicted = predicted.sum(axis=1)
        counts = model.counts[:, inside].sum(axis=1)
        safe_lo, _ = safe_energy_range(store, model.obs_ids)
        above = energy[:-1] >= np.nanmin(safe_lo)
        many = above & (counts > 400)
        few = above & (counts <= 400) & (predicted > 0)
        assert many.sum() >= 5, name
        np.testing.assert_allclose(counts[many], predicted[many], rtol=0.05, err_msg=name)
        pulls = (counts[few] - predicted[few]) / np.sqrt(predicted[few])
        assert np.all(np.abs(pulls) < 2), (name, pulls)


def test_high_energy_counts_are_consistent(bundle):
    """10-100 TeV, offset < 2 deg: the training counts are Poisson-consistent (p > 0.01)."""
    models, _ = read_models(bundle)
    for model in models.values():
        energy, offset = model.binning["energy"], model.binning["offset"]
        rows = energy[:-1] >= 10 - 1e-9
        cols = offset[1:] <= OFFSET_MAX + 1e-9
        n = model.counts[np.ix_(rows, cols)].sum()
        mu = model.predicted[np.ix_(rows, cols)].sum()
        p_value = 2 * min(stats.poisson.cdf(n, mu), stats.poisson.sf(n - 1, mu))
        assert p_value > 0.01, (model.name, n, mu)
