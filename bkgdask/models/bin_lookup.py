"""Bins of many values without a binary search: a table of the edges over uniform cells.

``np.searchsorted`` costs a mispredicted branch or two per value and level
(about 13 ns a value for 20 edges on unsorted events). Here a value's cell
on a uniform grid over the edges gives its bin from a table, corrected by one
comparison either side: a few vectorised passes, no branches. With cells at
most 1/2.5 of the narrowest bin, a cell misjudged by the rounding of the cell
arithmetic (one off at most) still holds at most one edge between the value
and the cell's start, so the corrections make the result exact.
"""

from __future__ import annotations

import functools

import numpy as np

#: Fewest cells of a table (finer cells: fewer values near an edge, for :meth:`BinLookup.rough`).
MIN_CELLS = 4096
#: Most cells: edges needing more (a bin narrower than 1/26,000 of the range) are searched.
MAX_CELLS = 1 << 16


class BinLookup:
    """``np.searchsorted(edges, values, "right")`` by table (:func:`bin_lookup`).

    Parameters
    ----------
    edges : numpy.ndarray
        Increasing bin edges (float64), at least two, all distinct.
    """

    def __init__(self, edges: np.ndarray):
        self.edges = np.asarray(edges, dtype=np.float64)
        self.low = float(self.edges[0])
        self.n_cells = cells_needed(self.edges)
        self.scale = self.n_cells / (float(self.edges[-1]) - self.low)
        starts = self.low + np.arange(self.n_cells) / self.scale
        inner = np.searchsorted(self.edges, starts, "right")  # >= 1
        # Per cell, with a cell below the edges and one from the last edge on at the ends:
        # the edges at or below its start, the last of them and the next edge (NaN: none,
        # no value compares to it).
        self.base = np.concatenate([[0], inner, [self.edges.size]])
        self.previous = np.concatenate([[np.nan], self.edges[inner - 1], self.edges[-1:]])
        self.next = np.concatenate([self.edges[:1], np.append(self.edges, np.nan)[inner], [np.nan]])

    def _cells(self, values: np.ndarray) -> np.ndarray:
        position = values - self.low
        position *= self.scale
        position += 1.0
        np.fmax(position, 0, out=position)  # (NaN: the cell below)
        np.fmin(position, self.n_cells + 1, out=position)
        return position.astype(np.intp)

    def index(self, values: np.ndarray) -> np.ndarray:
        """Exactly ``np.searchsorted(edges, values, "right")`` for float64 ``values`` (NaN too)."""
        cells = self._cells(values)
        index = self.base[cells]
        index += values >= self.next[cells]
        index -= values < self.previous[cells]
        not_a_number = np.isnan(values)
        if not_a_number.any():
            index[not_a_number] = self.edges.size
        return index

    def rough(self, values: np.ndarray) -> np.ndarray:
        """That index for the values of cells without an edge; one less, or more, in the rest.

        For values whose bin is then checked (a value is inside its bin or not);
        1 / :data:`MIN_CELLS` of the range at most is near an edge per edge.
        """
        return self.base[self._cells(values)]


def cells_needed(edges: np.ndarray) -> int:
    """Cells of a table of ``edges``: 2.5 a narrowest bin, :data:`MIN_CELLS` at least.

    >>> cells_needed(np.array([0.0, 1.0, 1.5, 10.0]))
    4096
    """
    narrowest = np.diff(edges).min()
    return max(MIN_CELLS, int(np.ceil(2.5 * (edges[-1] - edges[0]) / narrowest)))


class SearchedBins:
    """The same answers by ``np.searchsorted``, for edges no table can hold (:func:`bin_lookup`)."""

    def __init__(self, edges: np.ndarray):
        self.edges = np.asarray(edges, dtype=np.float64)

    def index(self, values: np.ndarray) -> np.ndarray:
        """``np.searchsorted(edges, values, "right")``."""
        return np.searchsorted(self.edges, values, "right")

    rough = index


@functools.lru_cache(maxsize=32)
def _lookup_of(edges: bytes) -> BinLookup | SearchedBins:
    values = np.frombuffer(edges, dtype=np.float64)
    if values.size < 2 or not np.all(np.isfinite(values)) or not np.diff(values).min() > 0:
        return SearchedBins(values)
    return BinLookup(values) if cells_needed(values) <= MAX_CELLS else SearchedBins(values)


def bin_lookup(edges: np.ndarray) -> BinLookup | SearchedBins:
    """The table of ``edges`` (cached), or a binary search where a table would be too large.

    >>> lookup = bin_lookup(np.array([0.1, 1.0, 10.0]))
    >>> lookup.index(np.array([0.05, 0.1, 0.99, 1.0, 10.0, np.nan])).tolist()
    [0, 1, 1, 2, 3, 3]
    """
    return _lookup_of(np.ascontiguousarray(edges, dtype=np.float64).tobytes())
