"""Run-wise models interpolated between group models; coverage; the reduction stays per group."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from distributed import Client, LocalCluster
from helpers import small_store
from test_reduce import _RecordWanted

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.engine.adaptive import adaptive_zenith_edges
from bkgdask.errors import StoreError
from bkgdask.io.gadf import HDU_INDEX_COLUMNS
from bkgdask.io.index_table import IndexTable
from bkgdask.io.store import DataStore
from bkgdask.sim.simulate import SimulationConfig, simulate_store
from bkgdask.sim.truth import TruthModel

SYNC = {"compute": {"scheduler": "sync", "progress": False}}
ZENITH_GROUPS = {"zenith": {"edges": [0, 30, 60], "unit": "deg"}}


@pytest.fixture(scope="module")
def cosz_store(tmp_path_factory):
    """Runs whose true rate is linear in cos(zenith) (norm ∝ cos z, fixed threshold)."""
    path = tmp_path_factory.mktemp("cosz") / "store"
    truth = TruthModel(zenith_index=-1.0, threshold_zenith_index=0.0, norm=5e-4)
    config = SimulationConfig(n_obs=60, seed=5, zenith_max=60, compress=False, truth=truth)
    simulate_store(path, config)
    return path, truth


def _build(store, **grouping):
    config = BuildConfig().updated({**SYNC, "grouping": {**ZENITH_GROUPS, **grouping}})
    return bkgdask.build(store, config)


def _chi2_against_truth(rate, kind, binning, truth, zenith, seconds) -> float:
    predicted = rate * kind.exposure(binning, seconds)
    expected = truth.expected_counts(binning["energy"], binning["offset"], [zenith], [seconds])
    used = expected > 1.0
    return float((((predicted - expected) ** 2) / expected)[used].sum())


def test_runwise_models_match_each_run_better_than_groups(cosz_store):
    store, truth = cosz_store
    result = _build(store, interpolate=True)
    kind = result.kind
    binning = kind.binning(BuildConfig().binning)
    rates = {label: kind.finalize(total) for label, total in result.totals.items()}
    zenith = dict(zip(result.store.obs_ids.tolist(), result.values["zenith"].tolist()))
    seconds = 1680.0
    chi2_runwise, chi2_group = [], []
    for obs_id, group in result.assignment.items():
        args = (kind, binning, truth, zenith[obs_id], seconds)
        chi2_runwise.append(_chi2_against_truth(result.run_rate(obs_id, rates), *args))
        chi2_group.append(_chi2_against_truth(rates[group.label], *args))
    ratio = np.array(chi2_runwise) / np.array(chi2_group)
    # Runs beyond the outer nodes are clamped (ratio 1); all others must not get worse.
    assert sum(chi2_runwise) < 0.75 * sum(chi2_group), (sum(chi2_runwise), sum(chi2_group))
    assert np.mean(ratio < 0.99) > 0.5 and np.all(ratio < 1.5)


def test_run_at_group_node_gets_the_group_model_exactly(cosz_store):
    store, _ = cosz_store
    result = _build(store, interpolate=True)
    rates = {label: result.kind.finalize(total) for label, total in result.totals.items()}
    for label in result.totals:
        obs_id = result.totals[label].attrs["obs_ids"][0]
        node = result._nodes[label]["zenith"]
        result.values["zenith"][result._row[obs_id]] = np.rad2deg(np.arccos(node))
        np.testing.assert_allclose(result.run_rate(obs_id, rates), rates[label], rtol=1e-12)


def test_bundle_gives_each_run_its_own_model_through_gammapy(tmp_path, cosz_store):
    from gammapy.data import DataStore as GammapyStore

    store, _ = cosz_store
    result = _build(store, interpolate=True)
    path = result.write(tmp_path / "bkg.fits.gz")
    hdus = result.model_hdus()
    gp = GammapyStore.from_file(path)
    names = set()
    for obs_id in gp.obs_ids[:10]:
        bkg = gp.obs(obs_id, required_irf=[]).bkg
        hdu = hdus[f"run-{obs_id}"]
        np.testing.assert_allclose(bkg.data, hdu.data["BKG"][0].T, rtol=1e-6)
        names.add(hdu.name)
    assert len(names) == 10
    obs_index = result.obs_index()
    assert set(obs_index["BKG_HDU"]) == {f"BKG_RUN_{o}" for o in obs_index["OBS_ID"]}


def test_clamped_runs_get_coverage_distance_and_a_warning(cosz_store, caplog):
    store, _ = cosz_store
    config = BuildConfig().updated(
        {**SYNC, "selection": "ZEN_PNT < 25", "grouping": {**ZENITH_GROUPS, "interpolate": True}}
    )
    with caplog.at_level(logging.WARNING, logger="bkgdask.engine.runwise"):
        result = bkgdask.build(store, config)
    table = result.obs_index()
    zen = DataStore.open(store).zenith_deg()
    high = zen > 25
    assert np.all(np.asarray(table["BKG_DZEN"])[~high] == 0)
    np.testing.assert_allclose(
        np.asarray(table["BKG_DZEN"])[high], zen[high] - zen[~high].max(), rtol=1e-9
    )
    assert "outside the range" in caplog.text
    rates = {label: result.kind.finalize(total) for label, total in result.totals.items()}
    (only,) = rates
    clamped = int(np.asarray(table["OBS_ID"])[np.argmax(zen)])
    np.testing.assert_allclose(result.run_rate(clamped, rates), rates[only], rtol=1e-12)


def test_plain_build_keeps_group_models_and_adds_coverage(cosz_store):
    store, _ = cosz_store
    result = _build(store)
    assert set(result.model_hdus()) == set(result.totals)
    table = result.obs_index()
    assert set(table["BKG_HDU"]) == {g.hdu_name for g in result.groups.values()}
    assert "BKG_DZEN" in table.colnames


def test_client_receives_only_group_results_with_interpolation_and_exclusion(tmp_path):
    store = small_store(tmp_path / "store")
    plugin = _RecordWanted()
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        cluster.scheduler.add_plugin(plugin)
        config = BuildConfig().updated(
            {
                "compute": {"progress": False, "split_every": 2},
                "grouping": {"interpolate": True},
                "exclusion": {
                    "target_radius": "0.3 deg",
                    "regions": ["icrs;circle(10.5,-29.5,0.4)"],
                },
            }
        )
        result = bkgdask.build(store, config, client=client)
    assert plugin.wanted == {"reduce-zen-0-20", "reduce-zen-20-40", "reduce-zen-40-90"}
    assert len(result.model_hdus()) == 3 + len(result.store.obs_ids)


def test_plot_draws_group_models_and_coverage_of_a_runwise_bundle(tmp_path, cosz_store):
    from bkgdask.plotting import plot_bundle

    store, _ = cosz_store
    path = _build(store, interpolate=True).write(tmp_path / "bkg.fits")
    names = {p.name for p in plot_bundle(path, tmp_path / "plots")}
    assert "coverage-zenith.png" in names
    assert not any(n.startswith("BKG_RUN_") for n in names)
    assert {"BKG_ZEN_0_30-image.png", "BKG_ZEN_30_60-image.png"} <= names


def test_adaptive_groups_take_ontime_in_its_unit(tmp_path):
    obs_index = IndexTable(
        {"OBS_ID": [1, 2, 3, 4], "ZEN_PNT": [10.0, 20.0, 30.0, 40.0], "ONTIME": [1.0] * 4},
        units={"ONTIME": "h"},
    )
    hdu_index = IndexTable(
        {c: np.array([], int if c == "OBS_ID" else str) for c in HDU_INDEX_COLUMNS}
    )
    store = DataStore(tmp_path, hdu_index, obs_index)
    edges = adaptive_zenith_edges(store, np.array([1, 2, 3, 4]), min_time_s=7200.0)
    assert edges.tolist() == [0.0, 25.0, 90.0]  # 1 h runs: two to a group
    store.obs_index.units["ONTIME"] = ""  # taken as s: too short for any group of its own
    assert adaptive_zenith_edges(store, np.array([1, 2, 3, 4]), 7200.0).tolist() == [0.0, 90.0]
    store.obs_index.units["ONTIME"] = "fortnight"
    with pytest.raises(StoreError, match="ONTIME: unknown unit 'fortnight'"):
        adaptive_zenith_edges(store, np.array([1, 2, 3, 4]), 7200.0)


def test_adaptive_groups_hold_the_minimum_time(cosz_store):
    store, _ = cosz_store
    config = BuildConfig().updated(
        {**SYNC, "grouping": {"zenith": {"edges": [0, 60], "unit": "deg"}, "min_time": "5 h"}}
    )
    result = bkgdask.build(store, config)
    times = [t.attrs["observation_time"] for t in result.totals.values()]
    assert len(times) == 60 * 1680 // (5 * 3600)  # 28 h of runs in groups of >= 5 h
    assert min(times) >= 5 * 3600 and sum(times) == pytest.approx(60 * 1680)
    zmax = [t.attrs["zenith_max"] for t in result.totals.values()]
    zmin = [t.attrs["zenith_min"] for t in result.totals.values()]
    assert all(hi < lo for hi, lo in zip(zmax[:-1], zmin[1:]))  # groups ordered, disjoint
