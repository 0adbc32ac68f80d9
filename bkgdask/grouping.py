"""Zenith groups: which model each observation gets."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from .binning import check_edges

log = logging.getLogger(__name__)


def _fmt(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Group:
    """One zenith bin ``[zenith_lo, zenith_hi)``, deg."""

    index: int
    zenith_lo: float
    zenith_hi: float

    @property
    def label(self) -> str:
        """Readable label, e.g. ``zen-20-40``; also the reduction task's name."""
        return f"zen-{_fmt(self.zenith_lo)}-{_fmt(self.zenith_hi)}"

    @property
    def hdu_name(self) -> str:
        """``EXTNAME`` of the group's BKG HDU, e.g. ``BKG_ZEN_20_40``."""
        return f"BKG_ZEN_{_fmt(self.zenith_lo)}_{_fmt(self.zenith_hi)}"

    def distance(self, zenith: float) -> float:
        """Zenith distance (deg) of a pointing to this bin, 0 inside it."""
        if zenith < self.zenith_lo:
            return self.zenith_lo - zenith
        if zenith >= self.zenith_hi:
            return zenith - self.zenith_hi
        return 0.0


def make_groups(zenith_edges) -> list[Group]:
    """Groups from zenith edges (deg, strictly increasing, within [0, 180])."""
    edges = check_edges(zenith_edges, "zenith", minimum=0.0)
    if edges[-1] > 180:
        raise ValueError(f"zenith edges must be <= 180 deg, got {edges.tolist()}")
    return [Group(i, float(lo), float(hi)) for i, (lo, hi) in enumerate(itertools.pairwise(edges))]


def group_of(zenith: np.ndarray, groups: list[Group]) -> np.ndarray:
    """Index of the half-open bin holding each zenith, -1 outside all bins."""
    edges = np.array([g.zenith_lo for g in groups] + [groups[-1].zenith_hi])
    index = np.searchsorted(edges, zenith, side="right") - 1
    index[(index >= len(groups)) | ~np.isfinite(zenith)] = -1
    return index


def assign_models(
    obs_ids: np.ndarray, zenith: np.ndarray, groups: list[Group], populated: set[int]
) -> dict[int, Group]:
    """Give every observation the model of its zenith group.

    A run outside every group, or in a group without off runs, gets the
    populated group nearest in zenith (the lower one on a tie); each such
    choice is logged at WARNING level with the run.

    Parameters
    ----------
    obs_ids : numpy.ndarray
        Observations to assign.
    zenith : numpy.ndarray
        Their zenith angles, deg.
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
    home = group_of(np.asarray(zenith, dtype=float), groups)
    assigned = {}
    for obs_id, zen, idx in zip(map(int, obs_ids), zenith, home):
        if idx in populated:
            assigned[obs_id] = groups[idx]
            continue
        best = min(candidates, key=lambda g: (g.distance(zen), g.index))
        where = "outside every zenith group" if idx < 0 else f"in empty group {groups[idx].label}"
        log.warning(
            "run %d (zenith %.2f deg) is %s: using nearest model %s", obs_id, zen, where, best.label
        )
        assigned[obs_id] = best
    return assigned
