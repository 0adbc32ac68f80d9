"""What the P-spline smoothing adds to a whole build: 600 simulated runs, whole processes.

Run: ``python benchmarks/smoothing.py [--n-obs 600] [--repeats 5] [--sim-dir DIR]``.
Times ``python -m bkgdask.cli build STORE -o OUT --smoothing none|pspline``
as a user runs it (default scheduler), the two alternating so that a change
of the machine's load hits both alike, and prints the median wall and CPU
seconds of each and what ``pspline`` adds, as a fraction of ``none``. The
store is written once with ``bkgdask simulate`` into ``--sim-dir``; the
bundles go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schedulers import ROOT, store_of

MODES = ("none", "pspline")


def timed_build(store: Path, smoothing: str, out: Path, options=()) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one whole ``bkgdask build`` process.

    ``options`` are further command-line options (e.g. ``--model bkg_3d``).
    """
    command = [sys.executable, "-m", "bkgdask.cli", "build", str(store), "-o", str(out)]
    command += ["--no-progress", "--smoothing", smoothing, *options]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def time_modes(store: Path, repeats: int, out: Path, options=()) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds of each smoothing mode, the modes alternating."""
    samples: dict[str, list] = {m: [] for m in MODES}
    for _ in range(repeats):
        for mode in MODES:
            samples[mode].append(timed_build(store, mode, out / f"{mode}.fits.gz", options))
    return {
        m: {
            "wall_s": statistics.median(w for w, _ in v),
            "cpu_s": statistics.median(c for _, c in v),
        }
        for m, v in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-obs", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sim-dir", default=str(Path(tempfile.gettempdir()) / "bkgdask-bench"))
    args = parser.parse_args()
    store = store_of(args.n_obs, Path(args.sim_dir))
    with tempfile.TemporaryDirectory() as scratch:
        times = time_modes(store, args.repeats, Path(scratch))
    added = {f"added_{k}": times["pspline"][k] / times["none"][k] - 1 for k in ("wall_s", "cpu_s")}
    print(json.dumps({"n_obs": args.n_obs, "repeats": args.repeats, **times, **added}, indent=2))


if __name__ == "__main__":
    main()
