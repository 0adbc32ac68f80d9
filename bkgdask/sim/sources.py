"""Gaussian point sources on top of the simulated background, and runs pointed at them."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .store_writer import events_from_offsets


class PointSource(BaseModel):
    """A symmetric Gaussian source with a power-law spectrum (events after selection).

    Runs pointed at it (see :func:`source_pointing`) carry ``name`` as their target.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "Source"
    ra: float = Field(ge=0, lt=360, description="deg, ICRS")
    dec: float = Field(ge=-90, le=90, description="deg, ICRS")
    sigma: float = Field(0.1, gt=0, description="deg, Gaussian width")
    rate: float = Field(1.0, gt=0, description="s-1, events per second of observation")
    index: float = Field(2.5, gt=1, description="spectral index")
    energy_min: float = Field(0.2, gt=0, description="TeV")
    energy_max: float = Field(100.0, gt=0, description="TeV")
    wobble: float = Field(0.7, ge=0, lt=10, description="deg, pointing offset of its runs")


def source_of_run(sources: list[PointSource], index: int) -> PointSource | None:
    """The source run ``index`` points at: of every ``len(sources) + 1`` runs, one is off."""
    if not sources:
        return None
    slot = index % (len(sources) + 1)
    return sources[slot] if slot < len(sources) else None


def source_pointing(rng: np.random.Generator, source: PointSource) -> tuple[float, float]:
    """A pointing (RA, Dec, deg) ``source.wobble`` away from the source at a random angle."""
    ra, dec = events_from_offsets(source.ra, source.dec, source.wobble, rng.uniform(0, 360))
    return float(ra), float(dec)


def source_events(
    rng: np.random.Generator, source: PointSource, duration_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events of one source over ``duration_s``: energies (TeV), RA and Dec (deg)."""
    n = rng.poisson(source.rate * duration_s)
    g = 1.0 - source.index
    lo, hi = source.energy_min**g, source.energy_max**g
    energy = (lo + rng.uniform(size=n) * (hi - lo)) ** (1.0 / g)
    radius = source.sigma * np.sqrt(-2.0 * np.log1p(-rng.uniform(size=n)))
    ra, dec = events_from_offsets(source.ra, source.dec, radius, rng.uniform(0, 360, size=n))
    return energy, ra, dec
