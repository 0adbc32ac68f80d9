"""Smooth rates (models.smoothing) and their BKG_2D node grids (models.gadf_nodes)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from helpers import astropy_hdu
from scipy import stats

from bkgdask.models import get_kind
from bkgdask.models.binning import Binning
from bkgdask.models.bkg2d import bkg_2d_hdu
from bkgdask.models.gadf_nodes import gadf_bkg_2d_nodes, node_edges
from bkgdask.models.smoothing import fit_smooth_rate
from bkgdask.models.table_kind import raw_rate
from bkgdask.sim.truth import TruthModel

N_RUNS, RUN_TIME_S, ZENITH_DEG = 50, 1680.0, 30.0
TUTORIAL = (np.logspace(-1, 2, 20), np.sqrt(np.linspace(0, 9, 10)))
FINE = (np.logspace(-1, 2, 61), np.sqrt(np.linspace(0, 9, 31)))


def simulated(edges, seed):
    """Truth's expected counts, Poisson counts drawn from them, and the exposure."""
    energy, offset = edges
    expected = TruthModel().expected_counts(
        energy, offset, np.full(N_RUNS, ZENITH_DEG), np.full(N_RUNS, RUN_TIME_S)
    )
    counts = np.random.default_rng(seed).poisson(expected)
    binning = Binning.of(energy=energy, offset=offset)
    return expected, counts, get_kind("bkg_2d").exposure(binning, N_RUNS * RUN_TIME_S)


def fit(edges, counts, exposure):
    return fit_smooth_rate(counts, exposure, list(edges), ["log", "square"], ["flat", "ring"])


def integrate_rings(function, energy_edges, offset_edges, n_points=8):
    """Average of ``function(E, θ)`` over (energy, offset-ring) bins: dE and sin θ dθ."""
    nodes, weights = np.polynomial.legendre.leggauss(n_points)
    ln_e = np.log(energy_edges)
    e_mid, e_half = 0.5 * (ln_e[1:] + ln_e[:-1]), 0.5 * np.diff(ln_e)
    energy = np.exp(e_mid[:, None] + e_half[:, None] * nodes)  # (n_e, q)
    o_mid, o_half = 0.5 * (offset_edges[1:] + offset_edges[:-1]), 0.5 * np.diff(offset_edges)
    offset = o_mid[:, None] + o_half[:, None] * nodes  # (n_o, q)
    w_e = weights * energy
    w_o = weights * np.sin(np.deg2rad(offset))
    values = function(energy[:, :, None, None], offset[None, None, :, :])
    total = np.einsum("aibj,ai,bj->ab", values, w_e, w_o)
    return total / np.outer(w_e.sum(axis=1), w_o.sum(axis=1))


def pull_chi2(model, predicted, expected, exposure):
    """χ² of the bin integrals against the truth in the model's own covariance.

    The smoothed integrals are correlated (rank about the effective number of
    parameters), so the residual is projected on the ``ceil(edf)`` leading
    eigenvectors of their covariance: χ² with ``ceil(edf)`` degrees of freedom.
    """
    scale = exposure.ravel()
    covariance = model.rate_covariance() * np.outer(scale, scale)
    values, vectors = np.linalg.eigh(covariance)
    n_dof = int(np.ceil(model.edf))
    residual = (predicted - expected).ravel()
    chi2 = np.sum((vectors[:, -n_dof:].T @ residual) ** 2 / values[-n_dof:])
    return stats.chi2.sf(chi2, n_dof)


@pytest.mark.parametrize("seed", range(5))
def test_smoothed_integrals_agree_with_truth(seed):
    expected, counts, exposure = simulated(TUTORIAL, seed)
    model = fit(TUTORIAL, counts, exposure)
    predicted = model.bin_average() * exposure
    assert pull_chi2(model, predicted, expected, exposure) > 1e-3
    # a 2 % bias is detected
    assert pull_chi2(model, 1.02 * predicted, expected, exposure) < 1e-3
    # the smoothed integrals scatter less than the counts do
    filled = expected >= 10
    assert np.sum((predicted - expected)[filled] ** 2 / expected[filled]) < filled.sum()
    assert abs(predicted.sum() / counts.sum() - 1) < 0.01


def test_positive_and_finite_everywhere():
    _, counts, exposure = simulated(TUTORIAL, 1)
    assert np.any(counts == 0)
    model = fit(TUTORIAL, counts, exposure)
    energy = np.logspace(-2, 3, 101)[:, None]  # 10 GeV to 1 PeV, beyond the last event
    offset = np.linspace(0, 5, 51)[None, :]
    rate = model.rate_at(energy, offset)
    assert np.all(np.isfinite(rate)) and np.all(rate > 0)
    for values in (model.bin_average(), model.rate_error()):
        assert np.all(np.isfinite(values)) and np.all(values > 0)
    # beyond the last event the rate falls as a power law (log-linear in E)
    slopes = np.diff(np.log(model.rate_at(np.array([200.0, 400.0, 800.0]), 1.0)))
    assert slopes[0] < 0 and slopes[0] == pytest.approx(slopes[1], rel=1e-6)


def test_raw_rate_and_header_keywords():
    _, counts, exposure = simulated(TUTORIAL, 2)
    rate, error = raw_rate(counts, exposure)
    np.testing.assert_allclose(rate * exposure, counts)
    np.testing.assert_allclose((error * exposure) ** 2, counts)
    header = fits.Header()
    header.update(fit(TUTORIAL, counts, exposure).parameters)
    assert header["SMMETHOD"] == "PSPLINE" and header["SMSCAL1"] == "log"
    assert header["SMLAM2"] > 0 and 0 < header["SMEDF"] < counts.size


def test_node_edges_put_centres_on_the_ends():
    edges = node_edges(0.0, 3.0, 60)
    centres = 0.5 * (edges[1:] + edges[:-1])
    assert edges[0] == 0 and np.all(np.diff(edges) > 0)
    assert centres[0] < 1e-4 and centres[-1] == pytest.approx(3.0)
    log_edges = node_edges(-1.0, 2.0, 96)
    log_centres = 0.5 * (log_edges[1:] + log_edges[:-1])
    assert log_centres[[0, -1]] == pytest.approx([-1.0, 2.0])


def gammapy_background(model):
    from gammapy.irf import Background2D

    energy_edges, offset_edges, rate = gadf_bkg_2d_nodes(model)
    hdu = astropy_hdu(bkg_2d_hdu(energy_edges, offset_edges, rate))
    return Background2D.from_table(Table.read(hdu))


@pytest.mark.parametrize("binning", [TUTORIAL, FINE], ids=["19x9", "60x30"])
def test_gammapy_integrates_to_the_model(binning):
    _, counts, exposure = simulated(binning, 3)
    model = fit(binning, counts, exposure)
    background = gammapy_background(model)

    def evaluate(energy, offset):
        return background.evaluate(energy=energy * u.TeV, offset=offset * u.deg).value

    for n_energy in (19, 57):
        analysis = (np.logspace(-1, 2, n_energy + 1), np.linspace(0, 2, 11))
        ratio = integrate_rings(evaluate, *analysis) / model.bin_average(*analysis, n_points=8)
        assert np.max(np.abs(ratio - 1)) < 0.01, np.max(np.abs(ratio - 1))
    # at the ends of the range: no extrapolation blow-up, no drop to 0
    energy = np.array([0.1, 1.0, 100.0])[:, None]
    offset = np.array([0.0, 1e-3, 3.0])[None, :]
    np.testing.assert_allclose(evaluate(energy, offset), model.rate_at(energy, offset), rtol=0.01)


@pytest.mark.requires_data
def test_hess_off_runs(hess_dir):
    import bkgdask
    from bkgdask.config import BuildConfig
    from bkgdask.models.smoothing import fit_group_rate

    config = BuildConfig().updated(
        {
            "selection": "TARGET_NAME == 'Off data'",
            "compute": {"scheduler": "sync", "progress": False},
        }
    )
    result = bkgdask.build(hess_dir, config)
    label = max(result.totals, key=lambda k: int(result.totals[k]["counts"].sum()))
    total = result.totals[label]
    counts, exposure = total["counts"].values, total["exposure"].values
    model = fit_group_rate(total)
    predicted = model.bin_average() * exposure
    assert np.all(np.isfinite(predicted)) and np.all(predicted > 0)
    assert np.all(model.rate_at(np.logspace(-1, 2.5, 50)[:, None], np.linspace(0, 3, 31)) > 0)
    full = counts > 400
    assert full.sum() >= 10
    np.testing.assert_allclose(predicted[full], counts[full], rtol=0.05)
    # elsewhere: Poisson pulls, of which ~5 % exceed 2 sigma by chance
    pulls = (predicted - counts)[~full] / np.sqrt(np.maximum(counts, predicted))[~full]
    assert np.mean(np.abs(pulls) < 2) > 0.9 and np.all(np.abs(pulls) < 4)
    *_, rate = gadf_bkg_2d_nodes(model)
    assert np.all(np.isfinite(rate)) and np.all(rate > 0)
