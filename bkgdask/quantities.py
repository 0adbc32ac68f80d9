"""Configuration values with units: quantities written with their unit, and axis bin edges.

Units are the few that a build's options take (energies, angles, times) and
the usual ones of obs-index columns, converted by factors:

>>> Quantity.parse("300 GeV").to_value("TeV")
0.3
>>> Quantity.parse("30 arcmin").to_value("deg")
0.5
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from .compute.config import Strict
from .models.binning import check_edges

_ENERGY = (("", 1e-12), ("k", 1e-9), ("M", 1e-6), ("G", 1e-3), ("T", 1.0), ("P", 1e3))

#: Unit -> (dimension, factor to the dimension's unit: TeV, deg, s, m, Hz).
UNITS = {
    "": ("dimensionless", 1.0),
    **{f"{prefix}eV": ("energy", factor) for prefix, factor in _ENERGY},
    **dict.fromkeys(("deg", "degree", "degrees"), ("angle", 1.0)),
    "arcmin": ("angle", 1 / 60),
    "arcsec": ("angle", 1 / 3600),
    **dict.fromkeys(("rad", "radian"), ("angle", 180 / np.pi)),
    "mrad": ("angle", 0.18 / np.pi),
    **dict.fromkeys(("s", "second"), ("time", 1.0)),
    "ms": ("time", 1e-3),
    "min": ("time", 60.0),
    **dict.fromkeys(("h", "hour"), ("time", 3600.0)),
    **dict.fromkeys(("d", "day"), ("time", 86400.0)),
    **{f"{prefix}m": ("length", f) for prefix, f in (("c", 1e-2), ("", 1.0), ("k", 1e3))},
    **{f"{prefix}Hz": ("frequency", f) for prefix, f in (("", 1.0), ("k", 1e3), ("M", 1e6))},
}

_QUANTITY = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*")


def unit_factor(unit: str, to: str) -> float:
    """The factor that turns values in ``unit`` into values in ``to``.

    >>> unit_factor("GeV", "TeV")
    0.001

    Raises
    ------
    ValueError
        For an unknown unit (the same string on both sides needs none) or
        units of different dimensions.
    """
    unit, to = unit.strip(), to.strip()
    if unit == to:
        return 1.0
    (dimension, factor), (dimension_to, factor_to) = _known(unit), _known(to)
    if dimension != dimension_to:
        raise ValueError(
            f"cannot convert {unit or 'a plain number'} ({dimension}) to {to} ({dimension_to})"
        )
    return factor / factor_to


def _known(unit: str) -> tuple[str, float]:
    """(dimension, factor) of a unit of :data:`UNITS`; ValueError naming the known ones."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; known units: {', '.join(u for u in UNITS if u)}")
    return UNITS[unit]


@dataclass(frozen=True)
class Quantity:
    """A number with its unit as written (``value`` in ``unit``, e.g. 0.4 deg)."""

    value: float
    unit: str

    @classmethod
    def parse(cls, text: str) -> Quantity:
        """From ``'0.4 deg'``; a plain ``'0'`` is zero in any unit.

        Raises
        ------
        ValueError
            If ``text`` is not a number and a known unit.
        """
        match = _QUANTITY.fullmatch(text)
        if not match:
            raise ValueError(f"not a quantity with unit: {text!r}")
        value, unit = float(match.group(1)), match.group(2)
        if not unit and value != 0:
            raise ValueError(f"give a unit, e.g. '{text} TeV' or '{text} deg'")
        _known(unit)
        return cls(value, unit)

    def to_value(self, unit: str) -> float:
        """The value in ``unit`` (ValueError if it cannot be converted)."""
        if self.value == 0 and not self.unit:
            return 0.0
        return self.value * unit_factor(self.unit, unit)

    def __str__(self) -> str:
        """``'0.4 deg'``: the shortest number that reads back the same value (no ``.0``)."""
        number = repr(float(self.value)).removesuffix(".0")
        return f"{number} {self.unit}".strip()


def _parse_quantity(value) -> Quantity:
    if isinstance(value, Quantity):
        return value
    if isinstance(value, str):
        return Quantity.parse(value)
    if hasattr(value, "unit") and hasattr(value, "value"):  # e.g. an astropy Quantity
        return Quantity.parse(f"{float(value.value)!r} {value.unit}")
    if value == 0:
        return Quantity(0.0, "")
    raise ValueError(f"give a quantity as a string with a unit, e.g. '1 TeV', not {value!r}")


#: A configuration field holding a :class:`Quantity`, read from and written as ``'0.4 deg'``.
QuantityField = Annotated[
    Quantity, BeforeValidator(_parse_quantity), PlainSerializer(str, return_type=str)
]


class _Strict(Strict):
    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, validate_assignment=True
    )


class AxisEdges(_Strict):
    """Bin edges of one axis: ``edges`` + ``unit``, or ``min``, ``max``, ``nbin``, ``spacing``."""

    edges: list[float] | None = None
    unit: str | None = None
    min: QuantityField | None = None
    max: QuantityField | None = None
    nbin: int | None = Field(default=None, ge=1)
    spacing: Literal["log", "linear", "square"] = "linear"

    @model_validator(mode="after")
    def _one_form(self) -> AxisEdges:
        explicit = self.edges is not None
        ranged = (self.min, self.max, self.nbin) != (None, None, None)
        if explicit == ranged:
            raise ValueError("give either 'edges' (with 'unit') or 'min', 'max' and 'nbin'")
        if explicit and self.unit is None:
            raise ValueError("'edges' need a 'unit'")
        if ranged and None in (self.min, self.max, self.nbin):
            raise ValueError("'min', 'max' and 'nbin' go together")
        return self

    def to_values(self, unit: str) -> np.ndarray:
        """Edges as float64 in ``unit``; raises ValueError on bad values or units."""
        if self.edges is not None:
            return np.asarray(self.edges, float) * unit_factor(self.unit, unit)
        lo, hi = self.min.to_value(unit), self.max.to_value(unit)
        n = self.nbin + 1
        if self.spacing == "log":
            if lo <= 0:
                raise ValueError("log spacing needs min > 0")
            return np.logspace(np.log10(lo), np.log10(hi), n)
        if self.spacing == "square":
            if lo < 0:
                raise ValueError("square spacing needs min >= 0")
            return np.sqrt(np.linspace(lo**2, hi**2, n))
        return np.linspace(lo, hi, n)

    @classmethod
    def parse(cls, text: str, default_unit: str) -> AxisEdges:
        """From a CLI string: ``'0,20,40,90'`` or ``'0.1,1,10 TeV'``."""
        match = re.fullmatch(r"\s*([-+0-9.eE,\s]+?)\s*([A-Za-z][\w/ -]*)?\s*", text)
        if not match:
            raise ValueError(f"cannot read edges {text!r}: give numbers separated by commas")
        try:
            values = [float(v) for v in match.group(1).split(",") if v.strip()]
        except ValueError:
            raise ValueError(
                f"cannot read edges {text!r}: give numbers separated by commas"
            ) from None
        return cls(edges=values, unit=(match.group(2) or default_unit).strip())


def _quantity_within(value, unit: str, name: str, lo: float, hi: float):
    """``value`` (a quantity or None) if convertible to ``unit`` and within (lo, hi)."""
    if value is None:
        return value
    number = value.to_value(unit)
    if not lo < number < hi:
        raise ValueError(f"{name} must be in ({lo:g}, {hi:g}) {unit}, got {value}")
    return value


def _checked(
    axis: AxisEdges, unit: str, name: str, minimum: float | None, maximum: float | None = None
) -> AxisEdges:
    edges = check_edges(axis.to_values(unit), name, minimum)
    if maximum is not None and edges[-1] > maximum:
        raise ValueError(f"{name} edges must be <= {maximum:g} {unit}, got {edges.tolist()}")
    return axis
