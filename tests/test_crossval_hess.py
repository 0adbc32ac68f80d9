"""H.E.S.S. DR1 off runs, 3-fold: default models built on two folds predict the third."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.io.store import DataStore
from bkgdask.models import read_models
from bkgdask.validation.crossval import cross_validate
from bkgdask.validation.model_check import ratio_with_error, safe_energy_range

pytestmark = pytest.mark.requires_data
OFF = {
    "selection": "TARGET_NAME == 'Off data'",
    "compute": {"scheduler": "sync", "progress": False},
}
OFFSET_MAX = 2.0
K = 3


@pytest.fixture(scope="module")
def held_out(hess_dir, tmp_path_factory):
    """Per fold model: held-out counts and predictions, offset < 2 deg, per energy bin."""
    workdir = tmp_path_factory.mktemp("crossval")
    store = DataStore.open(hess_dir)
    bundle = bkgdask.build(store, BuildConfig().updated(OFF)).write(workdir / "bkg.fits")
    models, _ = read_models(bundle)
    assert all(m.header["SMMETHOD"] == "PSPLINE" for m in models.values())
    rows, _, binned = cross_validate(store, models, K, workdir, OFFSET_MAX)
    assert len(rows) == 45 and {r["fold"] for r in rows} == set(range(K))
    out = {}
    for name, total in binned.items():
        model = models[name]
        inside = model.binning["offset"][1:] <= OFFSET_MAX + 1e-9
        safe_lo, _ = safe_energy_range(store, total["obs_ids"])
        out[name] = (
            model.binning["energy"],
            total["counts"][:, inside].sum(axis=1),
            total["predicted"][:, inside].sum(axis=1),
            np.nanmin(safe_lo),
        )
    assert len(out) == 3
    return out


def agreement(energy, counts, predicted, threshold):
    """Whether counts agree with the prediction after one norm per group, above the threshold.

    |ratio - 1| < 5 % where > 400 counts, |pull| < 2 elsewhere. Returns
    (whether both hold, the norm, the number of bins with > 400 counts).
    """
    above = energy[:-1] >= threshold
    norm = counts[above].sum() / predicted[above].sum()
    many = above & (counts > 400)
    few = above & (counts <= 400) & (predicted > 0)
    ratio, error = ratio_with_error(counts, norm * predicted)
    ok = np.all(np.abs(ratio[many] - 1) < 0.05) and np.all(np.abs(ratio[few] - 1) < 2 * error[few])
    return bool(ok), norm, int(many.sum())


def test_held_out_counts_per_energy_bin(held_out):
    """Per group, (energy bin, offset < 2 deg) above the store's safe threshold."""
    for name, (energy, counts, predicted, threshold) in held_out.items():
        ok, norm, n_many = agreement(energy, counts, predicted, threshold)
        assert ok and n_many >= 5, (name, norm, n_many)
        assert 0.8 < norm < 1.25, (name, norm)
        # a spectral tilt of E^0.1 (±15 % over 0.3-10 TeV) is caught
        centres = np.sqrt(energy[:-1] * energy[1:])
        assert not agreement(energy, counts, predicted * centres**0.1, threshold)[0], name


def test_held_out_high_energies_are_consistent(held_out):
    """10-100 TeV, offset < 2 deg: held-out counts Poisson-consistent with the prediction."""
    for name, (energy, counts, predicted, threshold) in held_out.items():
        above = energy[:-1] >= threshold
        norm = counts[above].sum() / predicted[above].sum()
        high = energy[:-1] >= 10 - 1e-9
        n, mu = counts[high].sum(), norm * predicted[high].sum()
        assert mu > 10, name
        p_value = 2 * min(stats.poisson.cdf(n, mu), stats.poisson.sf(n - 1, mu))
        assert p_value > 0.01, (name, n, mu)
