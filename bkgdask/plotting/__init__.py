"""Figures of a bundle: plot_bundle (bundle), BKG_2D (offset), BKG_3D (fov), shared (common)."""

from .bundle import SELECTION, draw_coverage, draw_selection, plot_bundle
from .common import RATE_LABEL, Curve, model_error, pyplot
from .fov import (
    draw_fov_image,
    draw_fov_images,
    draw_lat_profiles,
    fov_band,
    lat_profile,
    lat_ratio,
)
from .offset import (
    ENERGY_POWER,
    curve_rate_vs_energy,
    curve_rate_vs_offset,
    draw_image,
    draw_rate_vs_energy,
    draw_rate_vs_offset,
    safe_threshold,
)

__all__ = [
    "ENERGY_POWER",
    "RATE_LABEL",
    "SELECTION",
    "Curve",
    "curve_rate_vs_energy",
    "curve_rate_vs_offset",
    "draw_coverage",
    "draw_fov_image",
    "draw_fov_images",
    "draw_image",
    "draw_lat_profiles",
    "draw_rate_vs_energy",
    "draw_rate_vs_offset",
    "draw_selection",
    "fov_band",
    "lat_profile",
    "lat_ratio",
    "model_error",
    "plot_bundle",
    "pyplot",
    "safe_threshold",
]
