"""Planning at scale: open the indexes and plan 100,000 and 1,000,000 runs, computing nothing.

    python benchmarks/planning.py [-o DIR] [--sizes 10000,100000,1000000] [--index-dir DIR]

The indexes point at the few files of a small simulated store
(:func:`bkgdask.sim.replicate.write_replicated_index`), so only planning is
measured. Each size runs in its own process (its peak memory is the client's):
seconds to open the indexes and to plan, tasks, the largest task message
(pickled bytes), peak RSS. Results go to ``DIR/planning.json`` (default: a new
temporary folder) with each size's ratios to the smallest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, pickle, resource, sys, time
start = time.perf_counter()
from bkgdask.config import BuildConfig
from bkgdask.engine.build import plan_build
from bkgdask.io.store import DataStore
imported = time.perf_counter()
store = DataStore.open(sys.argv[1])
opened = time.perf_counter()
plan = plan_build(store, BuildConfig())
planned = time.perf_counter()
graph = {k: v for g in plan.graphs.values() for k, v in g.__dask_graph__().items()}
largest = max(len(pickle.dumps(task)) for task in graph.values())
print(json.dumps({"runs": plan.n_runs, "import_s": imported - start, "open_s": opened - imported,
                  "plan_s": planned - opened, "tasks": len(graph), "largest_task_bytes": largest,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def index_of(size: int, index_dir: Path) -> Path:
    """A replicated index of ``size`` runs (written once), over a 4-run simulated store."""
    from bkgdask.sim.replicate import write_replicated_index

    source = index_dir / "source-4"
    if not (source / "hdu-index.fits.gz").is_file():
        simulate = [sys.executable, "-m", "bkgdask.cli", "simulate", str(source), "--n-obs", "4"]
        subprocess.run([*simulate, "--scheduler", "sync"], check=True, cwd=ROOT)
    path = index_dir / f"index-{size}"
    if not (path / "hdu-index.fits.gz").is_file():
        write_replicated_index(source, path, size)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output-dir", default=None, help="default: a new temp folder")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--index-dir", default=str(Path(tempfile.gettempdir()) / "bkgdask-plan"))
    args = parser.parse_args()
    out = Path(args.output_dir or tempfile.mkdtemp(prefix="bkgdask-plan-"))
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for size in map(int, args.sizes.split(",")):
        index = index_of(size, Path(args.index_dir))
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, str(index)], capture_output=True, text=True, check=True
        )
        results[size] = json.loads(proc.stdout.strip().splitlines()[-1])
    smallest = results[min(results)]
    for size, row in results.items():
        scale = size / smallest["runs"]
        row["plan_s_over_linear"] = row["plan_s"] / (smallest["plan_s"] * scale)
        row["tasks_over_linear"] = row["tasks"] / (smallest["tasks"] * scale)
        print(f"{size:>8} runs: open {row['open_s']:.2f} s, plan {row['plan_s']:.2f} s, "
              f"{row['tasks']} tasks, largest task {row['largest_task_bytes']:,} B, "
              f"peak {row['maxrss_mb']:.0f} MB; plan/linear {row['plan_s_over_linear']:.2f}, "
              f"tasks/linear {row['tasks_over_linear']:.2f}")  # fmt: skip
    path = out / "planning.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
