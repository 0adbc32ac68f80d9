"""Exclusion regions of a build: from the config, region files and run targets, onto each run."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from ..config import CircleConfig, ExclusionConfig
from ..errors import ConfigError
from ..io.runs import RunInput
from ..io.store import DataStore
from ..models.binning import Binning
from ..models.exclusion import Circle, SkyShape, separation_deg

log = logging.getLogger(__name__)

#: Pixel size (deg) of the local grid on which non-circular regions are tested.
SHAPE_PIXEL_DEG = 0.002


class RegionContains:
    """Picklable inside test of a ``regions`` sky region, on a local TAN grid at its centre."""

    def __init__(self, region, ra: float, dec: float):
        self.region, self.ra, self.dec = region, ra, dec

    def _wcs(self):
        from astropy.wcs import WCS

        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [self.ra, self.dec]
        wcs.wcs.cdelt = [-SHAPE_PIXEL_DEG, SHAPE_PIXEL_DEG]
        return wcs

    def __call__(self, ra, dec):
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        sky = SkyCoord(np.ravel(ra) * u.deg, np.ravel(dec) * u.deg)
        inside = self.region.contains(sky, self._wcs())
        return np.reshape(inside, np.shape(ra))


def sky_region(region) -> Circle | SkyShape:
    """A ``regions`` sky region as a :class:`Circle` or :class:`SkyShape` (ICRS, deg)."""
    from regions import CircleSkyRegion

    center = region.center.icrs
    ra, dec = float(center.ra.deg), float(center.dec.deg)
    if isinstance(region, CircleSkyRegion):
        return Circle(ra, dec, float(region.radius.to_value("deg")))
    contains = RegionContains(region, ra, dec)
    box = region.to_pixel(contains._wcs()).bounding_box
    half = max(abs(v) for v in (box.ixmin, box.ixmax, box.iymin, box.iymax))
    return SkyShape(contains, ra, dec, float(np.sqrt(2) * (half + 1) * SHAPE_PIXEL_DEG))


def _read_regions(spec: str, is_file: bool) -> list:
    from regions import Regions

    try:
        if is_file:
            fmt = "crtf" if Path(spec).suffix.lower() == ".crtf" else "ds9"
            parsed = Regions.read(spec, format=fmt)
        else:
            parsed = Regions.parse(spec, format="ds9")
        out = [sky_region(r) for r in parsed]
    except Exception as exc:  # regions raises many types for bad input
        raise ConfigError(f"cannot read exclusion region {spec!r}: {exc}") from None
    if not out:
        raise ConfigError(f"no region in exclusion region {spec!r}")
    return out


def fixed_regions(config: ExclusionConfig) -> list[Circle | SkyShape]:
    """The regions excluded from every run: config circles, DS9 strings and region files."""
    out = []
    for region in config.regions:
        if isinstance(region, CircleConfig):
            out.append(Circle(*region.to_deg()))
        else:
            out += _read_regions(region, is_file=False)
    for path in config.files:
        if not Path(path).is_file():
            raise ConfigError(f"exclusion region file {path} not found")
        out += _read_regions(path, is_file=True)
    return out


def target_circles(store: DataStore, radius_deg: float) -> dict[int, Circle]:
    """Per observation with a finite ``RA_OBJ``/``DEC_OBJ``: a circle around its target."""
    table = store.obs_index
    if "RA_OBJ" not in table or "DEC_OBJ" not in table:
        log.warning("the obs-index has no RA_OBJ/DEC_OBJ: no target is excluded")
        return {}
    ra = np.asarray(table["RA_OBJ"], dtype=np.float64)
    dec = np.asarray(table["DEC_OBJ"], dtype=np.float64)
    return {
        int(o): Circle(float(r), float(d), radius_deg)
        for o, r, d in zip(store.obs_ids, ra, dec)
        if np.isfinite(r) and np.isfinite(d)
    }


def with_exclusions(
    store: DataStore, config: ExclusionConfig, runs: dict[int, list[RunInput]], binning: Binning
) -> dict[int, list[RunInput]]:
    """The runs of each group with their exclusion regions attached (those within the FoV).

    Parameters
    ----------
    store : DataStore
        The store (targets from its obs-index).
    config : ExclusionConfig
        What to exclude.
    runs : dict of int to list of RunInput
        Selected runs per group.
    binning : Binning
        The kind's bins: regions outside their field of view are not attached.
    """
    if not config.active:
        return runs
    fov_deg = fov_radius_deg(binning)
    fixed = fixed_regions(config)
    targets = {}
    if config.target_radius is not None:
        targets = target_circles(store, config.target_radius.to_value("deg"))
    out = {}
    for index, group_runs in runs.items():
        out[index] = []
        for run in group_runs:
            candidates = [*fixed, *([targets[run.obs_id]] if run.obs_id in targets else [])]
            near = tuple(r for r in candidates if _may_touch(run, r, fov_deg))
            out[index].append(dataclasses.replace(run, exclusion=near) if near else run)
    return out


def fov_radius_deg(binning: Binning) -> float:
    """Radius (deg) of a circle that holds every spatial bin (corners of square FoV bins too)."""
    reach = [np.max(np.abs(axis.edges)) for axis in binning.axes[1:]]
    if not reach:
        return 180.0
    return float(np.hypot.reduce(reach)) if len(reach) > 1 else float(reach[0])


def _may_touch(run: RunInput, region, fov_deg: float) -> bool:
    """False only if the region surely lies outside the run's field of view."""
    if run.ra_pnt_deg is None or not np.isfinite(run.ra_pnt_deg):
        return True
    distance = separation_deg(run.ra_pnt_deg, run.dec_pnt_deg, region.ra, region.dec)
    return bool(distance < fov_deg + region.radius + 0.1)
