"""Runs' counts against a model's prediction, stacked per energy bin, offset ring and FoV pixel."""

from __future__ import annotations

import numpy as np

from .model_check import ratio_with_error
from .runs import RunResult, RunValidationSettings, significance_map


def _rows(counts, predicted, edges, name: str, unit: str) -> list[dict]:
    ratio, error = ratio_with_error(counts, predicted)
    return [
        {
            f"{name}_lo_{unit}": float(lo),
            f"{name}_hi_{unit}": float(hi),
            "counts": float(n),
            "predicted": float(p),
            "ratio": float(r),
            "error": float(e),
        }
        for lo, hi, n, p, r, e in zip(edges[:-1], edges[1:], counts, predicted, ratio, error)
    ]


def binned_tables(results: list[RunResult], settings: RunValidationSettings) -> dict:
    """Counts, prediction and counts/prediction (Poisson error) per energy bin and offset ring.

    Sums over the runs, inside each run's safe mask and outside the
    exclusions; the prediction is the model's, before any norm fit.

    Returns
    -------
    dict
        ``{"energy": [row, ...], "offset": [row, ...]}``; rows hold the bin
        edges (TeV or deg), ``counts``, ``predicted``, ``ratio``, ``error``.
    """
    counts = sum(r.binned_counts for r in results)
    predicted = sum(r.binned_predicted for r in results)
    energy = np.asarray(settings.energy_edges, dtype=float)
    return {
        "energy": _rows(counts.sum(axis=1), predicted.sum(axis=1), energy, "energy", "tev"),
        "offset": _rows(
            counts.sum(axis=0), predicted.sum(axis=0), settings.ring_edges, "offset", "deg"
        ),
    }


def stacked_significance(results: list[RunResult], settings: RunValidationSettings):
    """Significance map in FoV coordinates: counts and FoV-normalised prediction stacked over runs.

    Every run's grid is the same tangent plane centred on its pointing, so
    pixel (i, j) is the same FoV position (along RA and Dec) in each run.

    Returns
    -------
    significance : numpy.ndarray
        (ny, nx); NaN where not kept (outside ``offset_max`` minus the
        correlation radius, or touching an excluded, empty pixel).
    half_width : float
        Half the map's width, deg (the extent is ± ``half_width``).
    """
    n = sum(r.image_counts for r in results)
    b = sum(r.image_predicted for r in results)
    ny, nx = n.shape
    y, x = np.mgrid[:ny, :nx]
    offset = np.hypot(x - (nx - 1) / 2, y - (ny - 1) / 2) * settings.binsz
    # Inside the FoV cut, pixels with no prediction are excluded ones.
    outside = (b > 0) | (offset >= settings.offset_max)
    return significance_map(n, b, outside, offset, settings), nx * settings.binsz / 2
