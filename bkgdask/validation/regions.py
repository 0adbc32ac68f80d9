"""Exclusion regions from the command line."""

from __future__ import annotations

from pathlib import Path

from ..errors import BkgdaskError


def parse_regions(specs) -> list:
    """Sky regions from DS9 strings or region files.

    Parameters
    ----------
    specs : iterable of str
        Each a DS9 region string (``'icrs;circle(83.63,22.01,0.3)'``) or a path
        to a region file.

    Returns
    -------
    list of regions.SkyRegion
    """
    from regions import Regions

    out = []
    for spec in specs:
        try:
            if Path(spec).is_file():
                parsed = Regions.read(spec, format="ds9")
            else:
                parsed = Regions.parse(spec, format="ds9")
        except Exception as exc:  # regions raises several types for bad input
            raise BkgdaskError(f"cannot read exclusion region {spec!r}: {exc}") from exc
        for region in parsed:
            if not hasattr(region, "to_pixel"):
                raise BkgdaskError(f"exclusion region {spec!r} is not a sky region")
            out.append(region)
    return out
