"""Groups of runs: zenith bins, crossed with further obs-index columns; each run's model."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits
from gammapy.data import DataStore as GammapyDataStore
from helpers import make_store, random_run

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.engine.grouping import assign_models, group_of, make_groups
from bkgdask.errors import BkgdaskError


def test_half_open_bins():
    groups = make_groups([0, 20, 40, 90])
    zenith = np.array([0.0, 19.999, 20.0, 39.99, 40.0, 89.99, 90.0, -1.0, np.nan])
    index = group_of({"zenith": zenith}, groups)
    np.testing.assert_array_equal(index, [0, 0, 1, 1, 2, 2, -1, -1, -1])
    assert [g.label for g in groups] == ["zen-0-20", "zen-20-40", "zen-40-90"]
    assert groups[1].hdu_name == "BKG_ZEN_20_40"
    assert make_groups([0, 22.5, 45])[0].label == "zen-0-22.5"


def test_nearest_populated_group_is_logged_per_run(caplog):
    groups = make_groups([0, 20, 40, 60])
    obs_ids = np.array([1, 2, 3, 4, 5])
    zenith = np.array([10.0, 45.0, 58.0, 65.0, 30.0])
    with caplog.at_level(logging.WARNING, logger="bkgdask"):
        assigned = assign_models(obs_ids, {"zenith": zenith}, groups, populated={0, 1})
    labels = {o: g.label for o, g in assigned.items()}
    assert labels == {1: "zen-0-20", 2: "zen-20-40", 3: "zen-20-40", 4: "zen-20-40", 5: "zen-20-40"}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert any("run 2 " in m and "empty group zen-40-60" in m for m in messages)
    assert any("run 4 " in m and "outside every group" in m for m in messages)


def test_tie_goes_to_the_first_group():
    groups = make_groups([0, 10, 20, 30])
    assigned = assign_models(np.array([7]), {"zenith": np.array([15.0])}, groups, {0, 2})
    assert assigned[7].label == "zen-0-10"


def test_bad_edges():
    with pytest.raises(ValueError, match="increasing"):
        make_groups([0, 40, 20])
    with pytest.raises(ValueError, match="180"):
        make_groups([0, 200])


def test_product_of_axes():
    groups = make_groups([0, 30, 60], {"AZ_PNT": np.array([0.0, 180.0, 360.0])})
    assert [g.label for g in groups] == [
        "zen-0-30.az_pnt-0-180",
        "zen-0-30.az_pnt-180-360",
        "zen-30-60.az_pnt-0-180",
        "zen-30-60.az_pnt-180-360",
    ]
    assert groups[3].hdu_name == "BKG_ZEN_30_60_AZ_PNT_180_360"
    values = {
        "zenith": np.array([10.0, 10.0, 45.0, 45.0, 45.0]),
        "AZ_PNT": np.array([90.0, 270.0, 0.0, 359.9, np.nan]),
    }
    np.testing.assert_array_equal(group_of(values, groups), [0, 1, 2, 3, -1])


def test_zenith_times_azimuth_on_a_store(tmp_path):
    """Two-key grouping: every run's index row points at the model of its own (zen, az) bin."""
    cells = [(10.0, 90.0), (15.0, 270.0), (40.0, 100.0), (45.0, 200.0), (50.0, 300.0)]
    runs = []
    for k, (zenith, azimuth) in enumerate(cells * 2):
        run = random_run(500 + k, 30.0 * k, -20.0, 300, zenith=zenith, seed=k)[0]
        run.az_pnt = azimuth
        runs.append(run)
    # A source run outside the zenith edges: the nearest populated group in both axes.
    lonely = random_run(900, 83.6, 22.0, 200, zenith=70.0, seed=9, target_name="Crab")[0]
    lonely.az_pnt = 100.0
    store = make_store(tmp_path / "store", [*runs, lonely])
    config = BuildConfig.from_yaml(
        "selection: \"TARGET_NAME == 'Off data'\"\n"
        "grouping:\n  zenith: {edges: [0, 30, 60], unit: deg}\n"
        "  group_by:\n    AZ_PNT: {edges: [0, 180, 360], unit: deg}\n"
        "compute: {scheduler: sync, progress: false}\n"
    )
    result = bkgdask.build(store, config)
    bundle = result.write(tmp_path / "bkg.fits")
    assert set(result.totals) == {
        "zen-0-30.az_pnt-0-180",
        "zen-0-30.az_pnt-180-360",
        "zen-30-60.az_pnt-0-180",
        "zen-30-60.az_pnt-180-360",
    }
    data_store = GammapyDataStore.from_file(bundle)
    hdu = data_store.hdu_table
    with fits.open(bundle) as hdus:
        for run in [*runs, lonely]:
            zen_bin = "0_30" if 90 - run.alt_pnt < 30 else "30_60"  # run 900 (70 deg): 30_60
            az_bin = "0_180" if run.az_pnt < 180 else "180_360"
            expected = f"BKG_ZEN_{zen_bin}_AZ_PNT_{az_bin}"
            row = hdu[(hdu["OBS_ID"] == run.obs_id) & (hdu["HDU_TYPE"] == "bkg")]
            assert len(row) == 1 and row["HDU_NAME"][0] == expected, (run.obs_id, row)
            model = data_store.obs(run.obs_id, required_irf=["bkg"]).bkg
            np.testing.assert_array_equal(
                model.data, result.models[result.assignment[run.obs_id].label].data
            )
            header = hdus[expected].header
            assert header["GRP1COL"] == "AZ_PNT"
            assert header["GRP1LO"] <= run.az_pnt < header["GRP1HI"]


def test_group_by_unknown_column_or_unit(tmp_path):
    store = make_store(tmp_path / "store", [random_run(1, 0.0, 0.0, 50)[0]])
    bad = BuildConfig().updated(
        {
            "grouping": {"group_by": {"NOPE": {"edges": [0, 1], "unit": ""}}},
            "compute": {"scheduler": "sync", "progress": False},
        }
    )
    with pytest.raises(BkgdaskError, match="NOPE"):
        bkgdask.build(store, bad)
    wrong = bad.updated({"grouping": {"group_by": {"AZ_PNT": {"edges": [0, 1], "unit": "TeV"}}}})
    with pytest.raises(BkgdaskError, match="AZ_PNT"):
        bkgdask.build(store, wrong)
