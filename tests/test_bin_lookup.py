"""Bins by table equal ``np.searchsorted``: on, beside and between the edges, outside, NaN."""

from __future__ import annotations

import numpy as np
import pytest

from bkgdask.models.bin_lookup import MAX_CELLS, BinLookup, SearchedBins, bin_lookup
from bkgdask.models.binning import Binning
from bkgdask.models.kernel2d import hav_edges


def _hard_values(edges: np.ndarray, lookup, rng) -> np.ndarray:
    """Edges and their float64 neighbours, cell starts and theirs, random values, outliers."""
    starts = lookup.low + np.arange(lookup.n_cells) / lookup.scale
    marks = np.concatenate([edges, starts])
    span = edges[-1] - edges[0]
    return np.concatenate(
        [
            marks,
            np.nextafter(marks, np.inf),
            np.nextafter(marks, -np.inf),
            rng.uniform(edges[0] - 0.1 * span, edges[-1] + 0.1 * span, 20_000),
            [-np.inf, np.inf, np.nan, -1e300, 1e300, 0.0],
        ]
    )


EDGES = {
    "energy, log": Binning.default()["energy"],
    "offset, haversine": hav_edges(Binning.default()["offset"]),
    "uneven": np.array([-3.0, -2.999, 0.0, 1e-3, 2e-3, 5.0, 5.5, 10.0]),
    "two": np.array([1.0, 2.0]),
}


@pytest.mark.parametrize("name", list(EDGES))
def test_table_equals_searchsorted(name):
    edges = EDGES[name]
    lookup = bin_lookup(edges)
    assert isinstance(lookup, BinLookup)
    values = _hard_values(edges, lookup, np.random.default_rng(len(name)))
    np.testing.assert_array_equal(lookup.index(values), np.searchsorted(edges, values, "right"))


def test_rough_bins_are_off_by_one_at_most_and_only_near_an_edge():
    edges = EDGES["offset, haversine"]
    lookup = bin_lookup(edges)
    values = _hard_values(edges, lookup, np.random.default_rng(3))
    values = values[np.isfinite(values)]
    exact = np.searchsorted(edges, values, "right")
    wrong = lookup.rough(values) != exact
    assert np.all(np.abs(lookup.rough(values) - exact) <= 1)
    near = np.min(np.abs(values[:, None] - edges[None, :]), axis=1) <= 2 / lookup.scale
    assert wrong.any() and not (wrong & ~near).any()


def test_edges_a_table_cannot_hold_are_searched():
    assert isinstance(
        bin_lookup(np.array([0.0, 1e-9, 1.0])), SearchedBins
    )  # a bin of 1e-9 of the range
    assert isinstance(bin_lookup(np.array([0.0, 1.0, 1.0, 2.0])), SearchedBins)  # an empty bin
    assert isinstance(bin_lookup(np.array([1.0])), SearchedBins)
    assert isinstance(bin_lookup(np.array([0.0, np.inf])), SearchedBins)
    assert bin_lookup(np.linspace(0, 1, 1000)).n_cells <= MAX_CELLS
