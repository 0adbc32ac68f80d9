"""Event filters: the query language on EVENTS columns (bkgdask.io.event_filter)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import data_dir

from bkgdask.errors import SelectionError
from bkgdask.io.event_filter import (
    EVENT_BASE_COLUMNS,
    compile_event_filter,
    require_kept_events,
    select_events,
)
from bkgdask.io.fitsread import read_tables
from bkgdask.io.store import DataStore


@pytest.fixture
def events() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 1000
    return {
        "ENERGY": 10 ** rng.uniform(-1.5, 2, n),
        "RA": rng.uniform(0, 360, n),
        "DEC": rng.uniform(-30, 30, n),
        "TIME": np.sort(rng.uniform(0, 1800, n)),
        "MC_ID": rng.integers(1, 4, n).astype(np.int32),
        "TYPE": rng.choice(np.array([b"gamma ", b"proton", b"helium"]), n),
    }


def test_integer_column_keeps_exactly_the_matching_events(events):
    event_filter = compile_event_filter("MC_ID == 1")
    kept = select_events(event_filter, events)
    expected = events["MC_ID"] == 1
    assert 0 < expected.sum() < len(expected)
    assert np.array_equal(kept["ENERGY"], events["ENERGY"][expected])
    assert np.array_equal(kept["TIME"], events["TIME"][expected])
    assert set(kept) == set(events)


def test_float_column_and_combination(events):
    event_filter = compile_event_filter("ENERGY > 0.1 and MC_ID in [2, 3]")
    mask = event_filter.mask(events)
    expected = (events["ENERGY"] > 0.1) & np.isin(events["MC_ID"], [2, 3])
    assert np.array_equal(mask, expected)
    assert 0 < mask.sum() < mask.size


def test_string_columns_bytes_with_padding_and_unicode(events):
    event_filter = compile_event_filter("TYPE == 'gamma'")
    expected = events["TYPE"] == b"gamma "
    assert expected.any()
    assert np.array_equal(event_filter.mask(events), expected)
    unicode_events = {"TYPE": events["TYPE"].astype(str)}
    assert np.array_equal(event_filter.mask(unicode_events), expected)
    assert np.array_equal(compile_event_filter("TYPE != 'gamma'").mask(events), ~expected)


def test_columns_needed_are_the_base_ones_plus_the_filters():
    event_filter = compile_event_filter("(MC_ID == 1 or DETX < 0.5) and ENERGY > 0.1")
    assert event_filter.columns == ("MC_ID", "DETX", "ENERGY")
    assert event_filter.wanted() == [*EVENT_BASE_COLUMNS, "MC_ID", "DETX"]


def test_unknown_column_names_the_column(events):
    event_filter = compile_event_filter("MC_IDX == 1")
    with pytest.raises(SelectionError, match=r"unknown column 'MC_IDX'.*MC_ID") as info:
        event_filter.mask(events)
    assert "event filter" in str(info.value)


@pytest.mark.parametrize(
    "expression, problem",
    [("MC_ID = 1", "syntax error"), ("__import__('os')", "function calls"), ("MC_ID", "bare")],
)
def test_bad_filters_fail_when_compiled(expression, problem):
    with pytest.raises(SelectionError, match=problem):
        compile_event_filter(expression)


def test_type_mismatch_is_an_error(events):
    with pytest.raises(SelectionError, match="type mismatch"):
        compile_event_filter("MC_ID == 'one'").mask(events)


def test_no_filter_keeps_everything(events):
    assert compile_event_filter(None) is None
    assert compile_event_filter("  ") is None
    kept = select_events(None, events)
    assert all(kept[name] is events[name] for name in events)


def test_filter_keeping_nothing_of_a_run_and_of_all_runs(events):
    event_filter = compile_event_filter("MC_ID == 99")
    kept = select_events(event_filter, events)
    assert all(values.size == 0 for values in kept.values())
    assert kept["ENERGY"].dtype == events["ENERGY"].dtype
    assert require_kept_events(event_filter, {1: 0, 2: 17, 3: 0}) == [1, 3]
    with pytest.raises(SelectionError, match="keeps no event of any of the 2 selected runs"):
        require_kept_events(event_filter, {1: 0, 2: 0})
    assert require_kept_events(None, {1: 0}) == []


def test_filter_travels_to_workers(events):
    event_filter = compile_event_filter("MC_ID == 1")
    copy = pickle.loads(pickle.dumps(event_filter))
    assert copy == event_filter
    assert np.array_equal(copy.mask(events), event_filter.mask(events))


@pytest.mark.requires_data
def test_cta_1dc_mc_id_filter_on_the_file_columns():
    store_dir = data_dir() / "cta-1dc"
    if not store_dir.is_dir():
        pytest.skip("no CTA-1DC data")
    store = DataStore.open(store_dir)
    event_filter = compile_event_filter("MC_ID == 1")
    obs_id = int(store.obs_ids[0])
    path, hdu = store.hdu_locations("events")[obs_id]
    table = read_tables(path, {hdu: event_filter.wanted()})[hdu]
    kept = select_events(event_filter, table.columns)
    n_all, n_kept = table.columns["MC_ID"].size, kept["MC_ID"].size
    assert 0 < n_kept < n_all
    assert np.all(kept["MC_ID"] == 1)
