"""Configuration values with units: quantities written with their unit, and axis bin edges."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import astropy.units as u
import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from .compute.config import Strict
from .models.binning import check_edges


def _parse_quantity(value) -> u.Quantity:
    if isinstance(value, u.Quantity):
        return value
    if isinstance(value, str):
        try:
            quantity = u.Quantity(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a quantity with unit: {value!r}") from exc
        if quantity.unit == u.dimensionless_unscaled and value.strip() != "0":
            raise ValueError(f"give a unit, e.g. '{value} TeV' or '{value} deg'")
        return quantity
    if value == 0:
        return 0 * u.dimensionless_unscaled
    raise ValueError(f"give a quantity as a string with a unit, e.g. '1 TeV', not {value!r}")


def _format_quantity(quantity: u.Quantity) -> str:
    """``'0.4 deg'``: the shortest number that reads back the same value (no ``.0``), the unit."""
    number = repr(float(quantity.value)).removesuffix(".0")
    return f"{number} {quantity.unit}".strip()


Quantity = Annotated[
    u.Quantity,
    BeforeValidator(_parse_quantity),
    PlainSerializer(_format_quantity, return_type=str),
]


class _Strict(Strict):
    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, validate_assignment=True
    )


class AxisEdges(_Strict):
    """Bin edges of one axis: ``edges`` + ``unit``, or ``min``, ``max``, ``nbin``, ``spacing``."""

    edges: list[float] | None = None
    unit: str | None = None
    min: Quantity | None = None
    max: Quantity | None = None
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
        try:
            if self.edges is not None:
                return (np.asarray(self.edges, float) * u.Unit(self.unit)).to_value(unit)
            lo, hi = self.min.to_value(unit), self.max.to_value(unit)
        except u.UnitsError as exc:
            raise ValueError(str(exc)) from exc
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
    try:
        number = value.to_value(unit)
    except u.UnitsError as exc:
        raise ValueError(str(exc)) from None
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
