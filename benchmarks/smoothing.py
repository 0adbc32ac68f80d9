"""What the P-spline smoothing adds to a whole build: 600 simulated runs, sync scheduler.

Run: ``python benchmarks/smoothing.py [--n-obs 600] [--repeats 3] [--workdir DIR]``.
Times the build plus the models' HDUs (where ``finalize`` runs) with
``smoothing: pspline`` and ``none``, each the median of ``repeats``; the two
alternate, so a change of the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.sim.simulate import SimulationConfig, simulate_store


def time_build(store: Path, smoothing: str) -> float:
    """Seconds of one sync build and its model HDUs."""
    config = BuildConfig().updated(
        {"model": {"smoothing": smoothing}, "compute": {"scheduler": "sync", "progress": False}}
    )
    start = time.perf_counter()
    bkgdask.build(store, config).model_hdus()
    return time.perf_counter() - start


def time_builds(store: Path, repeats: int, modes=("none", "pspline")) -> dict[str, float]:
    """Median seconds of each smoothing mode, the modes alternating."""
    seconds: dict[str, list] = {m: [] for m in modes}
    for _ in range(repeats):
        for mode in modes:
            seconds[mode].append(time_build(store, mode))
    return {m: float(np.median(v)) for m, v in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-obs", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        store = Path(tmp) / "store"
        simulate_store(store, SimulationConfig(n_obs=args.n_obs, seed=0), scheduler="sync")
        times = time_builds(store, args.repeats)
    times["added_fraction"] = times["pspline"] / times["none"] - 1
    print(json.dumps({"n_obs": args.n_obs, "repeats": args.repeats, **times}, indent=2))


if __name__ == "__main__":
    main()
