"""Validated configuration of a build (YAML in, YAML out).

Unknown keys are rejected and every dimensioned value carries its unit::

    binning:
      energy: {min: 0.1 TeV, max: 100 TeV, nbin: 19, spacing: log}
      offset: {min: 0 deg, max: 3 deg, nbin: 9, spacing: square}
    grouping:
      zenith: {edges: [0, 20, 40, 90], unit: deg}

An axis is given either by explicit ``edges`` with a ``unit``, or by ``min``,
``max`` (quantities), ``nbin`` and ``spacing``: ``log`` (equal steps in
log value), ``linear``, or ``square`` (equal steps in value², the tutorial's
offset binning ``sqrt(linspace(0, 9, 10))`` deg).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError, field_validator

from .compute.config import ComputeConfig
from .errors import BkgdaskError, ConfigError
from .io.checks import MAX_DROPPED_FRACTION
from .io.event_filter import compile_event_filter
from .models import KINDS, ModelKind, get_kind
from .models.binning import Binning, check_edges
from .quantities import AxisEdges, QuantityField, _checked, _quantity_within, _Strict

__all__ = ["BuildConfig", "ComputeConfig", "ModelConfig"]


class BinningConfig(_Strict):
    """Energy and offset bins of the models (defaults: the tutorial's)."""

    energy: AxisEdges = AxisEdges(min="0.1 TeV", max="100 TeV", nbin=19, spacing="log")
    offset: AxisEdges = AxisEdges(min="0 deg", max="3 deg", nbin=9, spacing="square")

    @field_validator("energy")
    @classmethod
    def _energy(cls, axis: AxisEdges) -> AxisEdges:
        return _checked(axis, "TeV", "energy", minimum=1e-300)

    @field_validator("offset")
    @classmethod
    def _offset(cls, axis: AxisEdges) -> AxisEdges:
        return _checked(axis, "deg", "offset", minimum=0.0, maximum=180.0)

    #: FoV lon/lat bins of BKG_3D models (default: 0.1 deg over +-3 deg).
    fov_lon: AxisEdges = AxisEdges(min="-3 deg", max="3 deg", nbin=60, spacing="linear")
    fov_lat: AxisEdges = AxisEdges(min="-3 deg", max="3 deg", nbin=60, spacing="linear")

    @field_validator("fov_lon", "fov_lat")
    @classmethod
    def _fov(cls, axis: AxisEdges, info) -> AxisEdges:
        return _checked(axis, "deg", info.field_name, minimum=-89.0, maximum=89.0)


class ModelConfig(_Strict):
    """Which model kind to build (``bkg_2d``, or any registered kind) and how it is smoothed."""

    kind: str = Field(default="bkg_2d", description="model kind: " + ", ".join(KINDS))
    smoothing: Literal["pspline", "none"] = Field(
        default="pspline",
        description="pspline: smooth positive rate (Poisson P-spline); none: counts / exposure",
    )

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        try:
            get_kind(value)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        return value

    fov_alignment: Literal["radec", "altaz"] = Field(
        default="radec", description="bkg_3d: FoV frame aligned with RA/Dec or with Alt/Az"
    )

    @field_validator("fov_alignment", mode="before")
    @classmethod
    def _fov_alignment(cls, value):
        return value.strip().lower() if isinstance(value, str) else value


class GroupingConfig(_Strict):
    """How runs are grouped into models: zenith bins ``[lo, hi)``, times optional further axes.

    ``group_by`` maps obs-index columns to bin edges (``unit`` as the column's,
    ``''`` for dimensionless ones such as ``MUONEFF``); the groups are the
    product of all axes' bins, e.g.::

        grouping:
          zenith: {edges: [0, 20, 40, 90], unit: deg}
          group_by:
            AZ_PNT: {edges: [0, 180, 360], unit: deg}
    """

    zenith: AxisEdges = AxisEdges(edges=[0, 20, 40, 90], unit="deg")
    group_by: dict[str, AxisEdges] = Field(default_factory=dict)
    interpolate: bool = Field(
        default=False,
        description="one model per run, group models interpolated in cos(zenith) and group_by",
    )
    min_time: QuantityField | None = Field(
        default=None,
        description="adaptive zenith groups of at least this observation time, e.g. '5 h'",
    )

    @field_validator("min_time")
    @classmethod
    def _min_time(cls, value):
        return _quantity_within(value, "s", "min_time", 0, np.inf)

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, axes: dict[str, AxisEdges]) -> dict[str, AxisEdges]:
        for column, axis in axes.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", column):
                raise ValueError(f"group_by column {column!r} is not an obs-index column name")
            unit = axis.unit if axis.edges is not None else str(axis.min.unit)
            check_edges(axis.to_values(unit or ""), column)
        return axes

    def extra_edges(self, column_units: dict[str, str]) -> dict[str, np.ndarray]:
        """``group_by`` edges in the units of the obs-index columns."""
        out = {}
        for column, axis in self.group_by.items():
            if column not in column_units:
                raise ConfigError(f"group_by column {column!r} is not in the obs-index")
            try:
                out[column] = axis.to_values(column_units[column])
            except ValueError as exc:
                raise ConfigError(f"group_by {column}: {exc}") from None
        return out

    @field_validator("zenith")
    @classmethod
    def _zenith(cls, axis: AxisEdges) -> AxisEdges:
        return _checked(axis, "deg", "zenith", minimum=0.0, maximum=90.0)


class ChecksConfig(_Strict):
    """What the data checks allow."""

    max_dropped_fraction: float = Field(
        default=MAX_DROPPED_FRACTION,
        ge=0.0,
        le=1.0,
        description="largest fraction of a run's events dropped (outside GTIs, invalid) "
        "before the run is an error",
    )


class CircleConfig(_Strict):
    """A circular exclusion region (ICRS): ``{ra: 83.63 deg, dec: 22.01 deg, radius: 0.3 deg}``."""

    ra: QuantityField
    dec: QuantityField
    radius: QuantityField

    def to_deg(self) -> tuple[float, float, float]:
        """(RA, Dec, radius) in deg; ValueError on a bad unit or value."""
        ra, dec, radius = (q.to_value("deg") for q in (self.ra, self.dec, self.radius))
        if not (-90 <= dec <= 90 and 0 < radius < 90):
            raise ValueError(f"circle needs -90 <= dec <= 90 and 0 < radius < 90 deg: {self}")
        return ra, dec, radius


class ExclusionConfig(_Strict):
    """Sky regions whose events and solid angle are left out of every run at build time.

    ``regions``: circles, or DS9 region strings (``'icrs;circle(83.63,22.01,0.3)'``);
    ``files``: DS9 or CRTF region files; ``target_radius``: a circle of this
    radius around each run's target (obs-index ``RA_OBJ``/``DEC_OBJ``)::

        exclusion:
          regions: [{ra: 83.63 deg, dec: 22.01 deg, radius: 0.3 deg}]
          files: [galactic-sources.reg]
          target_radius: 0.4 deg
    """

    regions: list[CircleConfig | str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    target_radius: QuantityField | None = None

    @field_validator("regions")
    @classmethod
    def _regions(cls, regions: list) -> list:
        for region in regions:
            if isinstance(region, CircleConfig):
                region.to_deg()
        return regions

    @field_validator("target_radius")
    @classmethod
    def _target_radius(cls, radius):
        return _quantity_within(radius, "deg", "target_radius", 0, 90)

    @property
    def active(self) -> bool:
        """Whether anything is excluded."""
        return bool(self.regions or self.files or self.target_radius is not None)


class BuildConfig(_Strict):
    """Everything a build needs besides the data store and the output path."""

    selection: str | None = Field(
        default=None,
        description="obs-index query, e.g. \"TARGET_NAME == 'Off data'\"; all runs if null",
    )
    events: str | None = Field(
        default=None,
        description='event filter on EVENTS columns, e.g. "MC_ID == 1"; all events if null',
    )
    allow_point_like: bool = Field(
        default=False, description="build from point-like stores (models labelled POINT-LIKE)"
    )
    model: ModelConfig = ModelConfig()
    binning: BinningConfig = BinningConfig()
    grouping: GroupingConfig = GroupingConfig()
    compute: ComputeConfig = ComputeConfig()
    exclusion: ExclusionConfig = ExclusionConfig()
    checks: ChecksConfig = ChecksConfig()
    cache: str | None = Field(
        default=None, description="folder of per-run partials a build reuses (resumable builds)"
    )

    @field_validator("events")
    @classmethod
    def _events(cls, expression: str | None) -> str | None:
        try:
            compile_event_filter(expression)
        except BkgdaskError as exc:
            raise ValueError(str(exc)) from None
        return expression

    @property
    def kind(self) -> ModelKind:
        """The model kind to build."""
        return get_kind(self.model.kind).with_model_config(self.model)

    def binning_of_kind(self) -> Binning:
        """The kind's bins from the ``binning`` section (ConfigError if out of range)."""
        try:
            return self.kind.binning(self.binning)
        except ValueError as exc:
            raise ConfigError(f"binning: {exc}") from None

    @classmethod
    def from_yaml(cls, text: str, source: str = "config") -> BuildConfig:
        """Parse and validate YAML; raise :class:`BkgdaskError` with every problem listed."""
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        return cls.validated(data, source)

    @classmethod
    def read(cls, path: str | Path) -> BuildConfig:
        """Read a YAML config file."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        return cls.from_yaml(text, source=str(path))

    @classmethod
    def validated(cls, data: dict, source: str = "config") -> BuildConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{source}: invalid configuration: {_describe(exc)}") from None

    def updated(self, changes: dict, source: str = "options") -> BuildConfig:
        """A copy with nested ``changes`` merged in and everything validated again."""
        return self.validated(_merge(self.model_dump(mode="json"), changes), source)

    def to_yaml(self) -> str:
        """The configuration as YAML (unset optional values left out)."""
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


def _merge(base: dict, changes: dict) -> dict:
    """Merge section by section; a changed key inside a section is replaced whole."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)  # one line: the CLI reports every error in one
