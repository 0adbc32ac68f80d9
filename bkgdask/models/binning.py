"""Bin edges of the background models and the exposure of one run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Tutorial defaults: energy edges logspace(-1, 2, 20) TeV.
DEFAULT_ENERGY_EDGES_TEV = np.logspace(-1, 2, 20)
#: Tutorial defaults: offset edges sqrt(linspace(0, 9, 10)) deg (equal steps in offset²).
DEFAULT_OFFSET_EDGES_DEG = np.sqrt(np.linspace(0, 9, 10))
#: Tutorial defaults: zenith groups [0, 20), [20, 40), [40, 90) deg.
DEFAULT_ZENITH_EDGES_DEG = np.array([0.0, 20.0, 40.0, 90.0])

TEV_TO_MEV = 1e6


def check_edges(edges, name: str, minimum: float | None = None) -> np.ndarray:
    """Return ``edges`` as float64, checking they are finite and strictly increasing."""
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"{name} edges need at least two values, got {edges.tolist()}")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"{name} edges must be finite, got {edges.tolist()}")
    if np.any(np.diff(edges) <= 0):
        raise ValueError(f"{name} edges must be strictly increasing, got {edges.tolist()}")
    if minimum is not None and edges[0] < minimum:
        raise ValueError(f"{name} edges must be >= {minimum}, got {edges.tolist()}")
    return edges


@dataclass(frozen=True)
class Binning:
    """Energy and FoV-offset bins of a background model.

    Bins are half-open, ``[lo, hi)``: an event exactly on an upper edge falls
    in the next bin, and one on the last upper edge is outside the model.

    Parameters
    ----------
    energy_edges : array-like
        Reconstructed-energy bin edges, TeV, > 0.
    offset_edges : array-like
        Field-of-view offset bin edges, deg, >= 0.
    """

    energy_edges: np.ndarray
    offset_edges: np.ndarray

    def __post_init__(self):
        energy = check_edges(self.energy_edges, "energy")
        if energy[0] <= 0:
            raise ValueError(f"energy edges must be > 0 TeV, got {energy.tolist()}")
        offset = check_edges(self.offset_edges, "offset", minimum=0.0)
        if offset[-1] > 180:
            raise ValueError(f"offset edges must be <= 180 deg, got {offset.tolist()}")
        object.__setattr__(self, "energy_edges", energy)
        object.__setattr__(self, "offset_edges", offset)

    @classmethod
    def default(cls) -> Binning:
        """The binning of gammapy's "Make template background model" tutorial."""
        return cls(DEFAULT_ENERGY_EDGES_TEV, DEFAULT_OFFSET_EDGES_DEG)

    @property
    def shape(self) -> tuple[int, int]:
        """(number of energy bins, number of offset bins)."""
        return self.energy_edges.size - 1, self.offset_edges.size - 1

    def energy_widths_mev(self) -> np.ndarray:
        """Energy bin widths, MeV."""
        return np.diff(self.energy_edges) * TEV_TO_MEV

    def ring_solid_angles_sr(self) -> np.ndarray:
        """Solid angle of each offset ring, 2π(cos θ_lo − cos θ_hi), sr."""
        cos_edges = np.cos(np.deg2rad(self.offset_edges))
        return 2 * np.pi * (cos_edges[:-1] - cos_edges[1:])

    def exposure(self, observation_time_s: float) -> np.ndarray:
        """Exposure of one run in every bin: time x energy width x ring solid angle, s MeV sr."""
        return observation_time_s * np.outer(self.energy_widths_mev(), self.ring_solid_angles_sr())
