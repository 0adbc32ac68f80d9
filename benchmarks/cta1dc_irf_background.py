"""bkgdask's BKG_2D of the CTA-1DC background events (``MC_ID == 1``) against the 1DC IRF.

The 1DC event lists were simulated (ctobssim) from the ``BACKGROUND`` HDU of the
IRF their HDU index points to (``South_z20_50h``, a ``Background3D`` in FoV
coordinates). This script builds a model from the store's top folder with the
event filter ``MC_ID == 1`` (the background events), averages the IRF over each
offset ring and energy bin of the model, and prints the ratio per bin::

    python benchmarks/cta1dc_irf_background.py [CTA-1DC folder]

The IRF gives rates per second of live time and bkgdask per second of good time
(GTI sum), so the IRF is scaled by the runs' dead-time fraction ``DEADC`` (0.98)
before comparing. A bin counts as well sampled with at least ``MIN_COUNTS``
events (Poisson error <= 2.2 %) inside ``IRF_CORE_DEG``: beyond 3 deg the 1DC
IRF falls steeply at low energies, between nodes 1/3 deg apart, and its ring
average depends on how it is interpolated (gammapy interpolates log values,
the simulation need not have); there the ratios are printed, not checked.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import astropy.units as u
import numpy as np
from gammapy.irf import Background3D

from bkgdask.config import BuildConfig
from bkgdask.engine.build import build
from bkgdask.io.gadf import string_column

ENERGY_EDGES_TEV = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
OFFSET_EDGES_DEG = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
MIN_COUNTS = 2000
IRF_CORE_DEG = 3.0
GRID_STEP_DEG = 0.05
ENERGY_NODES_PER_BIN = 16


def _irf_background(store) -> tuple[Background3D, float]:
    """The Background3D the HDU index points to, and the runs' mean DEADC."""
    types = string_column(store.hdu_index["HDU_TYPE"])
    row = int(np.flatnonzero(types == "bkg")[0])
    path = store.file_paths()[row]
    hdu = string_column(store.hdu_index["HDU_NAME"])[row]
    deadc = float(np.mean(store.obs_index["DEADC"]))
    return Background3D.read(path, hdu=hdu), deadc


def ring_averages(irf: Background3D, energy_edges, offset_edges) -> np.ndarray:
    """IRF rate averaged over each (energy bin, offset ring), s-1 MeV-1 sr-1.

    Energy: the rate integrated over the bin (trapezoid on log-spaced nodes)
    divided by its width. Offset: the mean over a square grid of FoV points
    inside the ring.
    """
    centres = np.arange(-offset_edges[-1], offset_edges[-1], GRID_STEP_DEG) + GRID_STEP_DEG / 2
    lon, lat = np.meshgrid(centres, centres)
    radius = np.hypot(lon, lat)
    out = np.zeros((len(energy_edges) - 1, len(offset_edges) - 1))
    for i, (e_lo, e_hi) in enumerate(itertools.pairwise(energy_edges)):
        energy = np.geomspace(e_lo, e_hi, ENERGY_NODES_PER_BIN)
        rate = irf.evaluate(
            energy=energy[:, None] * u.TeV,
            fov_lon=lon.ravel()[None, :] * u.deg,
            fov_lat=lat.ravel()[None, :] * u.deg,
        ).to_value("s-1 MeV-1 sr-1")
        mean_over_energy = np.trapezoid(rate, energy, axis=0) / (e_hi - e_lo)
        for j, (o_lo, o_hi) in enumerate(itertools.pairwise(offset_edges)):
            ring = ((radius >= o_lo) & (radius < o_hi)).ravel()
            out[i, j] = mean_over_energy[ring].mean()
    return out


def compare(folder: str | Path) -> dict:
    """Build with ``MC_ID == 1`` and compare per bin with the IRF.

    Returns
    -------
    dict
        ``energy`` and ``offset`` edges (TeV, deg), ``counts``, ``model`` and
        ``irf`` rates (s-1 MeV-1 sr-1, IRF scaled by DEADC), ``ratio``
        (model / IRF), ``well_sampled`` (bool), ``index`` (HDU index used).
    """
    config = BuildConfig().updated(
        {
            "events": "MC_ID == 1",
            "binning": {
                "energy": {"edges": ENERGY_EDGES_TEV, "unit": "TeV"},
                "offset": {"edges": OFFSET_EDGES_DEG, "unit": "deg"},
            },
            "grouping": {"zenith": {"edges": [0, 90], "unit": "deg"}},
            "compute": {"scheduler": "sync", "progress": False},
        }
    )
    result = build(folder, config)
    (total,) = result.totals.values()
    model = result.kind.finalize(total)
    irf, deadc = _irf_background(result.store)
    energy = np.append(total["energy_lo"].values, total["energy_hi"].values[-1])
    offset = np.append(total["offset_lo"].values, total["offset_hi"].values[-1])
    expected = deadc * ring_averages(irf, energy, offset)
    counts = total["counts"].values
    return {
        "energy": energy,
        "offset": offset,
        "counts": counts,
        "model": model,
        "irf": expected,
        "ratio": model / expected,
        "well_sampled": (counts >= MIN_COUNTS) & (offset[1:] <= IRF_CORE_DEG)[None, :],
        "index": str(result.store.index_path),
    }


def table(comparison: dict) -> str:
    """The ratios as a Markdown table (counts in brackets; * if not well sampled)."""
    offset = comparison["offset"]
    head = "| E (TeV) | " + " | ".join(f"{a:g}-{b:g} deg" for a, b in itertools.pairwise(offset))
    lines = [head + " |", "|---" * len(offset) + "|"]
    energy = comparison["energy"]
    for i, (e_lo, e_hi) in enumerate(itertools.pairwise(energy)):
        cells = [
            f"{r:.3f} ({n}){'' if ok else '*'}"
            for r, n, ok in zip(
                comparison["ratio"][i], comparison["counts"][i], comparison["well_sampled"][i]
            )
        ]
        lines.append(f"| {e_lo:g}-{e_hi:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    folder = argv[1] if len(argv) > 1 else "../shared/data/cta-1dc"
    comparison = compare(folder)
    print(f"index: {comparison['index']}")
    print(table(comparison))
    ratio = comparison["ratio"][comparison["well_sampled"]]
    print(f"well-sampled bins: {ratio.size}, max |model/IRF - 1| = {np.max(np.abs(ratio - 1)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
