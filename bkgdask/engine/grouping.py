"""Groups of runs, one model each: zenith bins, optionally crossed with other obs-index columns.

Every axis has half-open bins ``[lo, hi)``; the groups are the product of the
axes' bins (e.g. zenith x azimuth). Zenith comes first and is read as
described in :meth:`bkgdask.io.store.DataStore.zenith_deg`; further axes are
obs-index columns (``AZ_PNT``, ``MUONEFF``, ...).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from ..models.binning import check_edges

log = logging.getLogger(__name__)

ZENITH = "zenith"


def _fmt(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class GroupAxis:
    """One grouping axis: a quantity of the runs and its bin edges."""

    column: str
    edges: tuple[float, ...]


@dataclass(frozen=True)
class Group:
    """One bin of every axis; its index counts over the product, zenith slowest.

    Attributes
    ----------
    index : int
        Position among all groups.
    bounds : tuple of (column, lo, hi)
        The group's bin on each axis; the first axis is the zenith (deg).
    """

    index: int
    bounds: tuple[tuple[str, float, float], ...]

    @property
    def zenith_lo(self) -> float:
        return self.bounds[0][1]

    @property
    def zenith_hi(self) -> float:
        return self.bounds[0][2]

    @property
    def label(self) -> str:
        """Readable label, e.g. ``zen-20-40`` or ``zen-20-40.az_pnt-0-180``; names the reduction."""
        parts = []
        for column, lo, hi in self.bounds:
            short = "zen" if column == ZENITH else column.lower()
            parts.append(f"{short}-{_fmt(lo)}-{_fmt(hi)}")
        return ".".join(parts)

    @property
    def hdu_name(self) -> str:
        """``EXTNAME`` of its BKG HDU: ``BKG_ZEN_20_40``, ``BKG_ZEN_20_40_AZ_PNT_0_180``."""
        parts = ["BKG"]
        for column, lo, hi in self.bounds:
            parts += ["ZEN" if column == ZENITH else column.upper(), _fmt(lo), _fmt(hi)]
        return "_".join(parts)

    def header_cards(self) -> dict:
        """Header keywords of its edges (``ZEN_LO``, ``ZEN_HI``, ``GRPkCOL``, ``GRPkLO/HI``)."""
        cards = {
            "ZEN_LO": (self.zenith_lo, "[deg] zenith group lower edge (inclusive)"),
            "ZEN_HI": (self.zenith_hi, "[deg] zenith group upper edge (exclusive)"),
        }
        for k, (column, lo, hi) in enumerate(self.bounds[1:], start=1):
            cards[f"GRP{k}COL"] = (column, f"obs-index column of grouping axis {k}")
            cards[f"GRP{k}LO"] = (lo, f"{column} lower edge (inclusive)")
            cards[f"GRP{k}HI"] = (hi, f"{column} upper edge (exclusive)")
        return cards

    def distance(self, values: dict[str, float]) -> float:
        """Distance of a run to the group in bin widths per axis (0 inside); inf if unknown."""
        total = 0.0
        for column, lo, hi in self.bounds:
            value = values[column]
            if not np.isfinite(value):
                return float("inf")
            gap = lo - value if value < lo else (value - hi if value >= hi else 0.0)
            total += (gap / (hi - lo)) ** 2
        return float(np.sqrt(total))


def make_axes(zenith_edges, extra: dict[str, np.ndarray] | None = None) -> list[GroupAxis]:
    """The zenith axis (deg, within [0, 180]) and further obs-index column axes."""
    zenith = check_edges(zenith_edges, "zenith", minimum=0.0)
    if zenith[-1] > 180:
        raise ValueError(f"zenith edges must be <= 180 deg, got {zenith.tolist()}")
    axes = [GroupAxis(ZENITH, tuple(zenith.tolist()))]
    for column, edges in (extra or {}).items():
        axes.append(GroupAxis(column, tuple(check_edges(edges, column).tolist())))
    return axes


def make_groups(zenith_edges, extra: dict[str, np.ndarray] | None = None) -> list[Group]:
    """Every group: the product of the axes' bins, zenith slowest."""
    axes = make_axes(zenith_edges, extra)
    bins = [[(axis.column, lo, hi) for lo, hi in itertools.pairwise(axis.edges)] for axis in axes]
    return [Group(i, bounds) for i, bounds in enumerate(itertools.product(*bins))]


def group_axes(groups: list[Group]) -> list[GroupAxis]:
    """The axes the groups were made from."""
    axes = []
    for k, (column, _, _) in enumerate(groups[0].bounds):
        edges = sorted({g.bounds[k][1] for g in groups} | {g.bounds[k][2] for g in groups})
        axes.append(GroupAxis(column, tuple(edges)))
    return axes


def group_of(values: dict[str, np.ndarray], groups: list[Group]) -> np.ndarray:
    """Index of the group holding each run (half-open bins), -1 outside all groups.

    Parameters
    ----------
    values : dict of str to numpy.ndarray
        Per axis column (``"zenith"`` first), the runs' values.
    groups : list of Group
        From :func:`make_groups`.
    """
    axes = group_axes(groups)
    n = len(np.atleast_1d(values[axes[0].column]))
    flat = np.zeros(n, dtype=np.int64)
    inside = np.ones(n, dtype=bool)
    for axis in axes:
        edges = np.asarray(axis.edges)
        value = np.atleast_1d(np.asarray(values[axis.column], dtype=np.float64))
        index = np.searchsorted(edges, value, side="right") - 1
        inside &= (index >= 0) & (index < edges.size - 1) & np.isfinite(value)
        flat = flat * (edges.size - 1) + np.clip(index, 0, edges.size - 2)
    return np.where(inside, flat, -1)


def assign_models(
    obs_ids: np.ndarray, values: dict[str, np.ndarray], groups: list[Group], populated: set[int]
) -> dict[int, Group]:
    """Give every observation the model of its group.

    A run outside every group, or in a group without off runs, gets the
    nearest populated group (distance in bin widths over the axes; the first
    on a tie), and a WARNING names the run.

    Parameters
    ----------
    obs_ids : numpy.ndarray
        Observations to assign.
    values : dict of str to numpy.ndarray
        Per axis column, their values (zenith in deg).
    groups : list of Group
        All groups.
    populated : set of int
        Indices of groups that have a model.

    Returns
    -------
    dict of int to Group
    """
    if not populated:
        raise ValueError("no group has any run")
    candidates = [g for g in groups if g.index in populated]
    home = group_of(values, groups)
    columns = list(values)
    assigned = {}
    for k, (obs_id, idx) in enumerate(zip(map(int, obs_ids), home)):
        if idx in populated:
            assigned[obs_id] = groups[idx]
            continue
        run = {c: float(np.atleast_1d(values[c])[k]) for c in columns}
        best = min(candidates, key=lambda g: (g.distance(run), g.index))
        where = "outside every group" if idx < 0 else f"in empty group {groups[idx].label}"
        shown = ", ".join(f"{c} {v:.3g}" for c, v in run.items())
        log.warning("run %d (%s) is %s: using nearest model %s", obs_id, shown, where, best.label)
        assigned[obs_id] = best
    return assigned
