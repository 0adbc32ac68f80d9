"""What P-spline smoothing costs a BKG_3D build: H.E.S.S. DR1 off runs, fits and whole processes.

Run: ``python benchmarks/smoothing3d.py [--repeats 5] [--store $GAMMAPY_DATA/hess-dl3-dr1]``.
For each FoV alignment (radec, altaz):

* the CPU seconds of each zenith group's fit (``Bkg3D.finalize``, one
  process, after one warm-up fit), with the fit's iterations and effective
  number of parameters, and of writing the smoothed models' HDUs (node
  grid, bin averages and their errors);
* whole ``python -m bkgdask.cli build STORE --select "TARGET_NAME == 'Off
  data'" --model bkg_3d`` processes with ``--smoothing none`` and
  ``pspline`` alternating (:func:`smoothing.time_modes`): median wall and
  CPU (user + system) seconds.

Prints JSON. On a loaded machine the CPU seconds grow too (caches, memory
bandwidth): compare the two modes of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smoothing import time_modes

SELECTION = "TARGET_NAME == 'Off data'"
STORE = Path(os.environ.get("GAMMAPY_DATA", "../shared/data")) / "hess-dl3-dr1"


def fit_seconds(store: Path, alignment: str) -> dict:
    """CPU seconds of each group's fit and of the smoothed models' HDUs, in this process."""
    import bkgdask
    from bkgdask.config import BuildConfig

    config = BuildConfig().updated(
        {
            "selection": SELECTION,
            "model": {"kind": "bkg_3d", "fov_alignment": alignment},
            "compute": {"scheduler": "sync", "progress": False},
        }
    )
    result = bkgdask.build(store, config)
    first = next(iter(result.totals.values()))
    result.kind.finalize(first, result.model)  # warm-up: imports, caches
    groups = {}
    for label, total in result.totals.items():
        start = time.process_time()
        fit = result.kind.finalize(total, result.model)
        seconds = time.process_time() - start
        groups[label] = {"cpu_s": seconds, "n_iter": fit.n_iter, "edf": round(fit.edf, 1)}
    rates = result.rates
    start = time.process_time()
    for label, total in result.totals.items():
        result.kind.to_hdu(total, rates[label])
    return {
        "fits_cpu_s": sum(g["cpu_s"] for g in groups.values()),
        "groups": groups,
        "hdus_cpu_s": time.process_time() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store", type=Path, default=STORE)
    args = parser.parse_args()
    report = {"store": str(args.store), "repeats": args.repeats}
    for alignment in ("radec", "altaz"):
        options = ["--select", SELECTION, "--model", "bkg_3d", "--fov-alignment", alignment]
        with tempfile.TemporaryDirectory() as scratch:
            processes = time_modes(args.store, args.repeats, Path(scratch), options)
        report[alignment] = {"in_process": fit_seconds(args.store, alignment), **processes}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
