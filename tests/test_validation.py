"""Models against the simulator's truth, and the validation report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster
from scipy import stats

import bkgdask
from bkgdask.cli import cli
from bkgdask.config import BuildConfig
from bkgdask.io.store import DataStore
from bkgdask.models import read_models
from bkgdask.sim.simulate import SimulationConfig, simulate_store
from bkgdask.sim.truth import TruthModel
from bkgdask.validation.runs import RunValidationSettings, significance_summary, validate_run
from bkgdask.validation.truth_check import compare_bundle_to_truth

N_RUNS = 200


@pytest.fixture(scope="session")
def client():
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def simulated(tmp_path_factory, client):
    """Simulated stores and their bundles, made once per (seed, runs, smoothing) per session."""
    made = {}
    root = tmp_path_factory.mktemp("simulated")

    def get(seed: int, n_runs: int = N_RUNS, smoothing: str = "none"):
        if (seed, n_runs) not in made:
            store = root / f"store-{seed}-{n_runs}"
            config = SimulationConfig(n_obs=n_runs, seed=seed, compress=False)
            simulate_store(store, config, client=client)
            build = BuildConfig().updated({"compute": {"progress": False}})
            result = bkgdask.build(store, build, client=client)
            made[seed, n_runs] = store, result, config
        store, result, config = made[seed, n_runs]
        bundle = root / f"bkg-{seed}-{n_runs}-{smoothing}.fits"
        if not bundle.exists():
            result.model = result.model.model_copy(update={"smoothing": smoothing})
            result.write(bundle)
        return store, bundle, config

    return get


def _truth_p_value(simulated, seed: int, smoothing: str = "none") -> float:
    store, bundle, config = simulated(seed, smoothing=smoothing)
    models, _ = read_models(bundle)
    assert sum(len(m.obs_ids) for m in models.values()) == N_RUNS
    comparisons = compare_bundle_to_truth(models, DataStore.open(store), config.truth)
    # Bins with >= 10 expected counts; a smooth model: its effective number of parameters.
    min_ndf = 80 if smoothing == "none" else 10
    assert len(comparisons) == 3 and all(c.ndf > min_ndf for c in comparisons)
    chi2 = sum(c.chi2 for c in comparisons)
    ndf = sum(c.ndf for c in comparisons)
    p_value = stats.chi2.sf(chi2, ndf)
    assert p_value > 1e-3, (seed, [c.summary() for c in comparisons])
    return p_value


def test_models_agree_with_truth_for_3_seeds(simulated):
    """Default binning, 200 runs: the pull χ² over all models' bins has p > 0.001 (quick)."""
    for seed in range(3):
        _truth_p_value(simulated, seed)


def test_smoothed_models_agree_with_truth_for_3_seeds(simulated):
    """The P-spline models' predictions pass the same χ² against the truth (quick)."""
    for seed in range(3):
        _truth_p_value(simulated, seed, "pspline")


@pytest.mark.slow
@pytest.mark.parametrize("smoothing", ["none", "pspline"])
def test_models_agree_with_truth_for_20_seeds(simulated, smoothing):
    """As above for 20 seeds; the histogram's p-values are uniform."""
    p_values = [_truth_p_value(simulated, seed, smoothing) for seed in range(20)]
    if smoothing == "pspline":
        # The fit's Bayesian covariance allows for the smoothing's bias: p-values lie
        # nearer 1 than uniform (a 2 % bias still gives p ~ 1e-50, test below).
        assert np.mean(p_values) > 0.25, p_values
        return
    # p-values of a correct model are uniform: none bunched at 1 (which would hide a bias
    # behind a too-wide error), mean near 1/2.
    assert 0.25 < np.mean(p_values) < 0.75, p_values
    assert stats.kstest(p_values, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("smoothing", ["none", "pspline"])
def test_truth_check_catches_a_two_percent_bias(simulated, smoothing):
    """The same comparison rejects a model whose rate (counts) is 2 % off."""
    store, bundle, config = simulated(0, smoothing=smoothing)
    models, _ = read_models(bundle)
    for model in models.values():
        model.rate = model.rate * 1.02
        model.counts = np.rint(model.counts * 1.02)
    comparisons = compare_bundle_to_truth(models, DataStore.open(store), config.truth)
    chi2 = sum(c.chi2 for c in comparisons)
    ndf = sum(c.ndf for c in comparisons)
    assert stats.chi2.sf(chi2, ndf) < 1e-9, [c.summary() for c in comparisons]


def test_significance_distribution_is_unit_gaussian(simulated):
    """Models applied to simulated runs: significances outside exclusions ~ N(0, 1)."""
    from gammapy.data import DataStore as GammapyDataStore

    _store, bundle, config = simulated(1, smoothing="pspline")
    data_store = GammapyDataStore.from_file(bundle)
    settings = RunValidationSettings()
    truth = config.truth
    results = []
    for row in data_store.obs_table[::10]:
        obs = data_store.obs(int(row["OBS_ID"]), required_irf=["bkg"])
        # The simulated store has no safe energies: twice the truth's threshold (94 % of
        # the plateau) plays the store's SAFE_ENERGY_LO.
        cos_z = np.cos(np.deg2rad(row["ZEN_PNT"]))
        safe = (2 * truth.threshold * cos_z ** (-truth.threshold_zenith_index), np.nan)
        results.append(validate_run(obs, obs.bkg, "bkgdask", settings, safe_energy=safe))
    summary = significance_summary(results)
    assert summary["n_pixels"] > 50_000
    assert abs(summary["mean"]) < 0.1, summary
    assert 0.9 <= summary["width"] <= 1.1, summary
    # The fitted norms scatter around the groups' average within the zenith spread.
    norms = np.array([r.norm for r in results])
    assert np.all((norms > 0.5) & (norms < 2.0))
    # The norm errors are the fit's Poisson ones: norm / sqrt(counts) per run.
    errors = np.array([r.norm_error for r in results])
    counts = np.array([r.counts for r in results])
    np.testing.assert_allclose(errors * np.sqrt(counts) / norms, 1.0, rtol=0.05)
    for r in results:
        assert r.energy_threshold >= 2 * truth.threshold * 0.999
        assert r.binned_counts.sum() == pytest.approx(r.counts)


def test_validate_command_writes_report(tmp_path, simulated):
    store, bundle, _ = simulated(5, n_runs=30)
    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli,
        ["validate", str(bundle), "--store", str(store), "-o", str(out), "--kfold", "3",
         "--max-runs", "6", "--exclude", "icrs;circle(10,10,0.5)"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert {"truth", "runs", "crossval", "figures"} <= set(report)
    assert len(report["runs"]["bkgdask"]["runs"]) == 6
    ours = report["runs"]["bkgdask"]
    total = sum(r["counts"] for r in ours["runs"])
    for key in ("energy", "offset"):  # the binned tables hold every counted event
        assert sum(r["counts"] for r in ours["binned"][key]) == pytest.approx(total)
    assert all(0 < r["norm_error"] < 0.2 for r in ours["runs"])
    assert {"significance map", "binned"} <= set(report["figures"])
    assert len(report["crossval"]["exact"]["runs"]) == 30
    assert {r["fold"] for r in report["crossval"]["exact"]["runs"]} == {0, 1, 2}
    assert 0.7 < report["crossval"]["exact"]["ratio"]["mean"] < 1.3
    for name in report["figures"].values():
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000
    markdown = (out / "report.md").read_text()
    assert "χ²/ndf" in markdown and "cross-validation" in markdown
    assert "per energy bin" in markdown and "FoV norm by target" in markdown
    assert not list(out.glob(".folds-*")), "fold bundles are cleaned up"


def test_validate_rejects_bad_input(tmp_path):
    runner = CliRunner()
    bundle = tmp_path / "nothing.fits"
    bundle.write_bytes(b"not fits")
    result = runner.invoke(
        cli, ["validate", str(bundle), "--store", str(tmp_path), "-o", str(tmp_path / "r")]
    )
    assert result.exit_code != 0
    assert "nothing.fits" in result.output
    result = runner.invoke(
        cli,
        ["validate", str(bundle), "--store", str(tmp_path), "-o", str(tmp_path / "r"),
         "--exclude", "icrs;circle(10,10"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "exclusion region" in result.output


def test_truth_round_trip(tmp_path):
    truth = TruthModel(norm=1e-4, index=2.5)
    assert TruthModel.read(truth.write(tmp_path / "t.yaml")) == truth
    # Expected counts add up over bins and runs.
    edges_e, edges_o = np.logspace(-1, 2, 7), np.linspace(0, 3, 4)
    both = truth.expected_counts(edges_e, edges_o, [20.0, 40.0], [1000.0, 500.0])
    one = truth.expected_counts(edges_e, edges_o, 20.0, 1000.0)
    two = truth.expected_counts(edges_e, edges_o, 40.0, 500.0)
    np.testing.assert_allclose(both, one + two, rtol=1e-12)
    coarse = truth.expected_counts(edges_e[::2], edges_o, 20.0, 1000.0)
    np.testing.assert_allclose(coarse.sum(), one.sum(), rtol=1e-9)
