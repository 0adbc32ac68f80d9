"""Zenith groups and the model each observation gets."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bkgdask.grouping import assign_models, group_of, make_groups


def test_half_open_bins():
    groups = make_groups([0, 20, 40, 90])
    zenith = np.array([0.0, 19.999, 20.0, 39.99, 40.0, 89.99, 90.0, -1.0, np.nan])
    np.testing.assert_array_equal(group_of(zenith, groups), [0, 0, 1, 1, 2, 2, -1, -1, -1])
    assert [g.label for g in groups] == ["zen-0-20", "zen-20-40", "zen-40-90"]
    assert groups[1].hdu_name == "BKG_ZEN_20_40"
    assert make_groups([0, 22.5, 45])[0].label == "zen-0-22.5"


def test_nearest_populated_group_is_logged_per_run(caplog):
    groups = make_groups([0, 20, 40, 60])
    obs_ids = np.array([1, 2, 3, 4, 5])
    zenith = np.array([10.0, 45.0, 58.0, 65.0, 30.0])
    with caplog.at_level(logging.WARNING, logger="bkgdask"):
        assigned = assign_models(obs_ids, zenith, groups, populated={0, 1})
    labels = {o: g.label for o, g in assigned.items()}
    assert labels == {1: "zen-0-20", 2: "zen-20-40", 3: "zen-20-40", 4: "zen-20-40", 5: "zen-20-40"}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert any("run 2 " in m and "empty group zen-40-60" in m for m in messages)
    assert any("run 4 " in m and "outside every zenith group" in m for m in messages)


def test_tie_goes_to_lower_group():
    groups = make_groups([0, 10, 20, 30])
    assigned = assign_models(np.array([7]), np.array([15.0]), groups, populated={0, 2})
    assert assigned[7].label == "zen-0-10"


def test_bad_edges():
    with pytest.raises(ValueError, match="increasing"):
        make_groups([0, 40, 20])
    with pytest.raises(ValueError, match="180"):
        make_groups([0, 200])
