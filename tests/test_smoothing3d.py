"""Smooth BKG_3D rates (models.smoothing3d): against a simulated truth, read by gammapy."""

from __future__ import annotations

import dataclasses

import astropy.units as u
import numpy as np
import pytest
from helpers import per_run_expected

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.models import blockband, read_models
from bkgdask.models.base import labelled
from bkgdask.models.glam import GridDesign
from bkgdask.models.smoothing3d import fit_fov_rate
from bkgdask.models.splines import RateAxis, SplineBasis, _to_coord
from bkgdask.sim.simulate3d import Simulation3DConfig, simulate_store_3d
from bkgdask.sim.truth import TruthModel
from bkgdask.sim.truth3d import Truth3D
from bkgdask.validation.truth_check import compare_to_expected

#: Simulated falloff to 4.3 deg: the truth has no edge inside the +-3 deg FoV grid.
TRUTH = Truth3D(alignment="RADEC", gradient=0.15, spectrum=TruthModel(offset_max=4.3))
SIMULATION = Simulation3DConfig(n_obs=10, seed=1, truth=TRUTH)
FINE_ENERGY = {"energy": {"min": "0.1 TeV", "max": "100 TeV", "nbin": 60, "spacing": "log"}}


def build_config(smoothing: str, binning=None) -> BuildConfig:
    return BuildConfig().updated(
        {
            "model": {"kind": "bkg_3d", "fov_alignment": "radec", "smoothing": smoothing},
            "grouping": {"zenith": {"edges": [0, 90], "unit": "deg"}},
            "compute": {"scheduler": "sync", "progress": False},
            **({"binning": binning} if binning else {}),
        }
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return simulate_store_3d(tmp_path_factory.mktemp("smooth3d") / "store", SIMULATION)


@pytest.fixture(scope="module")
def bundles(store, tmp_path_factory):
    """The smoothed and the histogram bundle of the default binning, and the build."""
    folder = tmp_path_factory.mktemp("bundles")
    result = bkgdask.build(store, build_config("pspline"))
    raw = bkgdask.build(store, build_config("none"))
    return result, result.write(folder / "bkg.fits.gz"), raw.write(folder / "raw.fits.gz")


def only_model(bundle):
    models, _ = read_models(bundle)
    (model,) = models.values()
    return model


def truth_counts(store, model) -> np.ndarray:
    return per_run_expected(store, SIMULATION, model.binning, "RADEC").sum(axis=0)


def test_smoothed_model_passes_the_truth_check_and_keeps_the_integral(store, bundles):
    _, smoothed, raw = bundles
    model = only_model(smoothed)
    expected = truth_counts(store, model)
    assert model.header["SMMETHOD"] == "PSPLINE" and model.header["SMNSEG2"] == 4
    for bundle in (smoothed, raw):
        assert compare_to_expected(only_model(bundle), expected).p_value > 1e-3
    # a 5 % bias is caught (the group holds ~50,000 counts)
    biased = dataclasses.replace(model, rate=1.05 * model.rate)
    assert compare_to_expected(biased, expected).p_value < 1e-3
    assert abs(model.predicted.sum() / model.counts.sum() - 1) < 0.01
    # where counts are many, the smoothed integrals scatter less than the counts do
    filled = expected >= 10
    for m in (model, only_model(raw)):
        chi2 = np.sum((m.predicted - expected)[filled] ** 2 / expected[filled]) / filled.sum()
        assert chi2 < (0.5 if m is model else 1.5), chi2


def test_positive_and_finite_everywhere_with_a_documented_extrapolation(bundles):
    result, bundle, _ = bundles
    (total,) = result.totals.values()
    assert np.mean(total["counts"].values == 0) > 0.5  # mostly empty pixels
    (fit,) = result.rates.values()
    energy = np.logspace(-2, 3, 41)[:, None, None]  # 10 GeV to 1 PeV, beyond every event
    fov = np.linspace(-4.5, 4.5, 37)  # beyond the FoV grid
    rate = fit.rate_at(energy, fov[None, :, None], fov[None, None, :])
    assert np.all(np.isfinite(rate)) and np.all(rate > 0)
    for values in (fit.bin_average(), fit.rate_error()):
        assert np.all(np.isfinite(values)) and np.all(values > 0)
    model = only_model(bundle)
    _, node_rate = model.nodes
    assert np.all(np.isfinite(node_rate)) and np.all(node_rate > 0)
    np.testing.assert_allclose(model.rate, fit.bin_average())
    # beyond the last event a power law in energy, beyond the grid exponential in lon/lat
    slopes = np.diff(np.log(fit.rate_at(np.array([200.0, 400.0, 800.0]), 0.5, 0.5)))
    assert slopes[0] < 0 and slopes[0] == pytest.approx(slopes[1], rel=1e-6)
    lon = np.array([3.5, 4.0, 4.5])
    steps = np.diff(np.log(fit.rate_at(np.full(3, 1.0), lon, np.full(3, 1.0))))
    assert steps[0] == pytest.approx(steps[1], rel=1e-6)


def integrate(function, energy_edges, lon_edges, lat_edges, n_points=6):
    """Average of ``function(E, lon, lat)`` over bins: dE, d lon, d lat (Gauss-Legendre)."""
    nodes, weights = np.polynomial.legendre.leggauss(n_points)

    def points(edges, log=False):
        x = np.log(edges) if log else np.asarray(edges, dtype=np.float64)
        mid, half = 0.5 * (x[1:] + x[:-1]), 0.5 * np.diff(x)
        u = mid[:, None] + half[:, None] * nodes
        return (np.exp(u), weights * np.exp(u)) if log else (u, weights * np.ones_like(u))

    (e, we), (x, wx), (y, wy) = points(energy_edges, True), points(lon_edges), points(lat_edges)
    values = function(e.ravel()[:, None, None], x.ravel()[None, :, None], y.ravel()[None, None, :])
    values = values.reshape(e.shape + x.shape + y.shape)
    total = np.einsum("aibjck,ai,bj,ck->abc", values, we, wx, wy)
    return total / np.einsum("ai,bj,ck->abc", we, wx, wy)


def evaluator(background):
    """gammapy's ``Background3D.evaluate`` at (E TeV, lon deg, lat deg), s-1 MeV-1 sr-1."""

    def evaluate(energy, lon, lat):
        shape = np.broadcast_shapes(energy.shape, lon.shape, lat.shape)
        coords = {"energy": energy * u.TeV, "fov_lon": lon * u.deg, "fov_lat": lat * u.deg}
        return np.broadcast_to(background.evaluate(**coords).to_value("s-1 MeV-1 sr-1"), shape)

    return evaluate


def test_gammapy_evaluation_integrates_to_the_model(bundles):
    result, bundle, _ = bundles
    (fit,) = result.rates.values()
    background = result.kind.to_gammapy(only_model(bundle))
    assert type(background).__name__ == "Background3D"
    assert background.fov_alignment.value == "RADEC"
    gammapy = evaluator(background)

    fov = np.linspace(-2.5, 2.5, 6)  # 1 deg analysis pixels, off the model's pixel edges
    for n_energy in (6, 30):  # 0.5 and 0.1 dex analysis bins from 0.1 TeV
        energy = np.logspace(-1, 2, n_energy + 1)
        ratio = integrate(gammapy, energy, fov, fov) / integrate(fit.rate_at, energy, fov, fov)
        assert np.max(np.abs(ratio - 1)) < 0.01, np.max(np.abs(ratio - 1))
    # as a map maker does: log-log trapezoids between analysis energy edges, at pixel centres
    energy, centres = np.logspace(-1, 2, 61), np.linspace(-2.45, 2.45, 50)
    coords = {
        "energy": energy[:, None, None] * u.TeV,
        "fov_lon": centres[None, :, None] * u.deg,
        "fov_lat": centres[None, None, :] * u.deg,
    }
    trapezoids = background.integrate_log_log(axis_name="energy", **coords).to_value("s-1 sr-1")
    exact = energy_integral(fit.rate_at, energy, centres)
    ratio = trapezoids.sum(axis=(1, 2)) / exact.sum(axis=(1, 2))
    assert np.max(np.abs(ratio - 1)) < 0.01, ratio


def energy_integral(function, energy_edges, centres, n_points=8) -> np.ndarray:
    """``∫ function dE`` (s-1 sr-1 for a rate in s-1 MeV-1 sr-1) over energy bins at FoV points."""
    nodes, weights = np.polynomial.legendre.leggauss(n_points)
    x = np.log(energy_edges)
    mid, half = 0.5 * (x[1:] + x[:-1]), 0.5 * np.diff(x)
    energy = np.exp(mid[:, None] + half[:, None] * nodes)
    values = function(energy.ravel()[:, None, None], centres[None, :, None], centres[None, None, :])
    values = values.reshape(*energy.shape, centres.size, centres.size)
    return np.einsum("aqxy,aq->axy", values, half[:, None] * weights * energy) * 1e6  # TeV -> MeV


def test_fine_energy_binning_neither_explodes_nor_moves_the_integrals(store, bundles):
    coarse, _, _ = bundles
    fine = bkgdask.build(store, build_config("pspline", FINE_ENERGY))
    (hdu,) = fine.model_hdus().values()
    assert np.all(np.isfinite(hdu.data["BKG"])) and np.all(hdu.data["BKG"] > 0)
    (fine_fit,) = fine.rates.values()
    (coarse_fit,) = coarse.rates.values()
    (total,) = coarse.totals.values()
    energy = np.append(total["energy_lo"].values, total["energy_hi"].values[-1])
    exposure = total["exposure"].values
    predicted = {
        name: (fit.bin_average(energy, *[a.edges for a in fit.axes[1:]]) * exposure).sum((1, 2))
        for name, fit in (("fine", fine_fit), ("coarse", coarse_fit))
    }
    enough = predicted["coarse"] > 50
    assert enough.sum() >= 8
    pulls = (predicted["fine"] - predicted["coarse"])[enough] / np.sqrt(predicted["coarse"][enough])
    assert np.all(np.abs(pulls) < 3), pulls


def test_pixels_without_exposure_take_the_smooth_rate(bundles):
    result, _, _ = bundles
    (total,) = result.totals.values()
    (fit,) = result.rates.values()
    lon = total["fov_lon"].values
    hole = np.hypot(*np.meshgrid(lon - 0.8, lon + 0.5, indexing="ij")) < 0.4
    counts, exposure = total["counts"].values.copy(), total["exposure"].values.copy()
    counts[:, hole], exposure[:, hole] = 0, 0.0
    holed = fit_fov_rate(labelled(counts, exposure, edges_of(total), dict(total.attrs)))
    inside, outside = holed.bin_average()[:, hole], fit.bin_average()[:, hole]
    assert np.all(np.isfinite(inside)) and np.all(inside > 0)
    where = total["counts"].values.sum(axis=(1, 2)) > 1000
    ratio = inside[where] / outside[where]
    assert np.all(np.abs(ratio - 1) < 0.1), ratio


def edges_of(total):
    from bkgdask.models.base import edges_of as of_dims

    return of_dims(total, ("energy", "fov_lon", "fov_lat"))


def test_block_band_algebra_matches_dense():
    rng = np.random.default_rng(0)
    n_band, n, m = 4, 7, 5
    band = 0.1 * rng.normal(size=(n_band, n, m, m))
    for d in range(n_band):
        band[d, n - d :] = 0
    band[0] = band[0] + band[0].transpose(0, 2, 1) + 2 * n_band * np.eye(m)
    dense = blockband.dense(band)
    factor = blockband.factor(band)
    rhs = rng.normal(size=n * m)
    np.testing.assert_allclose(blockband.solve(factor, rhs), np.linalg.solve(dense, rhs))
    inverse, band_of_inverse = np.linalg.inv(dense), blockband.inverse_band(factor)
    in_band = blockband.dense(np.ones_like(band)) != 0
    np.testing.assert_allclose(blockband.dense(band_of_inverse)[in_band], inverse[in_band])
    assert blockband.band_dot(band_of_inverse, band) == pytest.approx(n * m)  # tr(A⁻¹ A)
    with pytest.raises(np.linalg.LinAlgError):
        blockband.factor(-band)


def test_array_arithmetic_matches_the_jacobian():
    """Score and information by GLAM equal those of a numerical Jacobian (bins across knots)."""
    edges = [np.logspace(-1, 2, 8), np.linspace(-3, 3, 13), np.linspace(-2, 2.5, 10)]
    axes = (RateAxis(edges[0], "log"), RateAxis(edges[1]), RateAxis(edges[2]))
    bases = [SplineBasis(*_to_coord(a.scale, a.edges[[0, -1]]), k) for a, k in zip(axes, (5, 4, 3))]
    design = GridDesign(axes, bases, edges, 3)
    rng = np.random.default_rng(1)
    coef = 0.3 * rng.normal(size=int(np.prod(design.n_coef)))
    jacobian = np.empty((int(np.prod(design.shape)), coef.size))
    for k in range(coef.size):
        step = np.zeros(coef.size)
        step[k] = 1e-6
        jacobian[:, k] = (design.mean(coef + step) - design.mean(coef - step)).ravel() / 2e-6
    weighted = design.weighted_rate(coef)
    per_bin = rng.uniform(0.5, 2.0, size=design.shape)
    score = jacobian.T @ per_bin.ravel()
    transposed = design.transpose(weighted, per_bin)
    np.testing.assert_allclose(transposed, score, atol=1e-7 * np.abs(score).max())
    gram = jacobian.T @ (per_bin.ravel()[:, None] * jacobian)
    band = blockband.dense(design.gram(weighted, per_bin))
    np.testing.assert_allclose(band, gram, atol=1e-7 * np.abs(gram).max())


@pytest.mark.requires_data
def test_hess_off_runs(hess_dir, tmp_path):
    """The 45 off runs: positive, integrals kept, and gammapy reproduces the steep threshold."""
    config = BuildConfig().updated(
        {
            "selection": "TARGET_NAME == 'Off data'",
            "model": {"kind": "bkg_3d"},
            "compute": {"scheduler": "sync", "progress": False},
        }
    )
    result = bkgdask.build(hess_dir, config)
    models, _ = read_models(result.write(tmp_path / "bkg.fits.gz"))
    assert len(models) == 3
    energy, fov = np.logspace(-1, 2, 31), np.linspace(-2.5, 2.5, 6)
    for label, fit in result.rates.items():
        name = result.groups[label].hdu_name
        model = models[name]
        _, node_rate = model.nodes
        assert np.all(np.isfinite(node_rate)) and np.all(node_rate > 0), name
        assert np.all(model.rate > 0) and np.all(np.isfinite(model.error)), name
        assert abs(model.predicted.sum() / model.counts.sum() - 1) < 0.01, name
        counts, predicted = model.counts.sum(axis=(1, 2)), model.predicted.sum(axis=(1, 2))
        many = counts > 400
        assert many.sum() >= 8, name
        # within 5 % or 3 sigma of the counts (the threshold's steep edge is smoothed)
        tolerance = np.maximum(0.05 * counts[many], 3 * np.sqrt(counts[many]))
        assert np.all(np.abs(predicted - counts)[many] < tolerance), (name, predicted, counts)
        gammapy = evaluator(result.kind.to_gammapy(model))
        ratio = integrate(gammapy, energy, fov, fov) / integrate(fit.rate_at, energy, fov, fov)
        assert np.max(np.abs(ratio - 1)) < 0.01, (name, np.max(np.abs(ratio - 1)))
