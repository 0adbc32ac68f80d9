"""Bin edges of a model: named axes (energy first), half-open bins ``[lo, hi)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Tutorial defaults: energy edges logspace(-1, 2, 20) TeV.
DEFAULT_ENERGY_EDGES_TEV = np.logspace(-1, 2, 20)
#: Tutorial defaults: offset edges sqrt(linspace(0, 9, 10)) deg (equal steps in offset²).
DEFAULT_OFFSET_EDGES_DEG = np.sqrt(np.linspace(0, 9, 10))

TEV_TO_MEV = 1e6

#: Unit of each known axis (edges are float64 in this unit).
AXIS_UNITS = {"energy": "TeV", "offset": "deg", "fov_lon": "deg", "fov_lat": "deg"}


def check_edges(edges, name: str, minimum: float | None = None) -> np.ndarray:
    """Return ``edges`` as float64, checking they are finite and strictly increasing.

    >>> check_edges([0, 1, 2], "offset").tolist()
    [0.0, 1.0, 2.0]
    >>> check_edges([1, 0], "offset")
    Traceback (most recent call last):
    ValueError: offset edges must be strictly increasing, got [1.0, 0.0]
    """
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
class Axis:
    """One binned axis: name, edges (float64, in ``unit``) and unit."""

    name: str
    edges: np.ndarray
    unit: str

    @property
    def n_bins(self) -> int:
        return self.edges.size - 1

    @property
    def centers(self) -> np.ndarray:
        """Bin centres: geometric for energy, arithmetic otherwise."""
        lo, hi = self.edges[:-1], self.edges[1:]
        return np.sqrt(lo * hi) if self.name == "energy" else 0.5 * (lo + hi)


@dataclass(frozen=True, init=False)
class Binning:
    """The axes of a model, energy first; ``binning["offset"]`` gives an axis's edges.

    >>> b = Binning.of(energy=[0.1, 1, 10], offset=[0, 1, 2, 3])
    >>> b.dims, b.shape
    (('energy', 'offset'), (2, 3))
    """

    axes: tuple[Axis, ...]

    def __init__(self, axes):
        axes = tuple(axes)
        if not axes or axes[0].name != "energy":
            raise ValueError("a binning needs an energy axis first")
        object.__setattr__(self, "axes", axes)

    @classmethod
    def of(cls, **edges) -> Binning:
        """Axes from keyword edges in the axes' units (TeV, deg), checked.

        Energy edges must be > 0; offset edges within [0, 180] deg; FoV
        coordinates within [-90, 90] deg.
        """
        axes = []
        for name, values in edges.items():
            values = check_edges(values, name)
            if name == "energy" and values[0] <= 0:
                raise ValueError(f"energy edges must be > 0 TeV, got {values.tolist()}")
            if name == "offset" and (values[0] < 0 or values[-1] > 180):
                raise ValueError(f"offset edges must be within [0, 180] deg, got {values.tolist()}")
            if name.startswith("fov_") and (values[0] < -90 or values[-1] > 90):
                raise ValueError(
                    f"{name} edges must be within [-90, 90] deg, got {values.tolist()}"
                )
            axes.append(Axis(name, values, AXIS_UNITS.get(name, "")))
        return cls(axes)

    @classmethod
    def default(cls) -> Binning:
        """The binning of gammapy's "Make template background model" tutorial."""
        return cls.of(energy=DEFAULT_ENERGY_EDGES_TEV, offset=DEFAULT_OFFSET_EDGES_DEG)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.axis(name).edges

    def axis(self, name: str) -> Axis:
        for axis in self.axes:
            if axis.name == name:
                return axis
        raise KeyError(f"no {name!r} axis in {self.dims}")

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(axis.name for axis in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(axis.n_bins for axis in self.axes)

    def energy_widths_mev(self) -> np.ndarray:
        """Energy bin widths, MeV."""
        return np.diff(self["energy"]) * TEV_TO_MEV

    def key(self) -> tuple:
        """A hashable identity of the bins (for caches)."""
        return tuple((a.name, a.edges.tobytes()) for a in self.axes)

    def __eq__(self, other) -> bool:
        return isinstance(other, Binning) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())
