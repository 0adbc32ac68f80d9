"""Whole processes as a user runs them: the default command against each scheduler and the tutorial.

    python benchmarks/schedulers.py [-o DIR] [--sim-dir DIR] [--sizes 45,600,6000] [--repeat 3]

Per size (45 = the H.E.S.S. DL3 DR1 off runs; other sizes = simulated stores,
written once with ``bkgdask simulate`` into ``--sim-dir``) it runs
``python -m bkgdask.cli build`` with the default scheduler and with
``--scheduler sync|threads|processes|local``, and ``benchmarks/tutorial_loop.py`` (up to
600 runs), after one untimed round, alternating the commands in every round
(in an order drawn afresh each round, seeded), and reports per command
the median wall time, and the ratios measured side by side, each the median
over the rounds of that round's ratio: default over the explicit scheduler of
the lowest median, tutorial over default; and the default's events/s.
Results go to ``DIR/schedulers.json`` (default: a new temporary folder).

The commands run with their compiled bytecode kept, as an installed package
has it: where ``PYTHONDONTWRITEBYTECODE`` is set (as on the machine the README's
numbers come from), every ``bkgdask`` command would otherwise compile bkgdask's
own modules afresh (about 0.1 s). The bytecode goes to a folder of the
temporary folder (``PYTHONPYCACHEPREFIX``), filled by the untimed round; every
command, the tutorial's too, runs in that same environment.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("GAMMAPY_DATA") or ROOT.parent / "shared" / "data")
HESS = DATA / "hess-dl3-dr1"
OFF = "TARGET_NAME == 'Off data'"
SCHEDULERS = ("default", "sync", "threads", "processes", "local")
#: Largest store the tutorial loop is run on (it takes ~45 ms a run).
TUTORIAL_MAX_RUNS = 600
SUMMARY = re.compile(r"bkgdask: (\d+) runs, ([\d,]+) events")


def store_of(size: int, sim_dir: Path) -> Path:
    """The store of ``size`` runs: H.E.S.S. DR1 for 45, else a simulated one (written once)."""
    if size == 45:
        return HESS
    path = sim_dir / f"sim-{size}"
    if not (path / "hdu-index.fits.gz").is_file():
        simulate = [sys.executable, "-m", "bkgdask.cli", "simulate", str(path)]
        subprocess.run([*simulate, "--n-obs", str(size), "--seed", "1"], check=True, cwd=ROOT)
    return path


def commands(store: Path, size: int, out: Path) -> dict[str, list[str]]:
    """The commands compared at one size, by label."""
    build = [sys.executable, "-m", "bkgdask.cli", "build", str(store), "--select", OFF]
    found = {
        name: [*build, "-o", str(out / f"{name}.fits.gz"), "--no-progress"]
        + ([] if name == "default" else ["--scheduler", name])
        for name in SCHEDULERS
    }
    if size <= TUTORIAL_MAX_RUNS:
        tutorial = ROOT / "benchmarks" / "tutorial_loop.py"
        found["tutorial"] = [sys.executable, str(tutorial), str(store), str(out / "t.fits")]
    return found


def user_environment(scratch: Path) -> dict[str, str]:
    """This environment, with compiled bytecode kept in ``scratch/pycache``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(scratch / "pycache")}


def timed(command: list[str], env: dict[str, str]) -> tuple[float, int | None, str]:
    """Wall seconds of a whole process, the events it reports, its stderr."""
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr}")
    match = SUMMARY.search(proc.stderr)
    return seconds, int(match.group(2).replace(",", "")) if match else None, proc.stderr


def bench_size(size: int, sim_dir: Path, repeat: int, out: Path) -> dict:
    """Medians and side-by-side ratios of the commands at one size (``out``: scratch folder)."""
    store = store_of(size, sim_dir)
    cmds = commands(store, size, out)
    env = user_environment(out)
    for command in cmds.values():
        timed(command, env)  # untimed: bytecode compiled, files in the page cache
    seconds: dict[str, list[float]] = {name: [] for name in cmds}
    events, choice = None, ""
    names = list(cmds)
    shuffle = random.Random(size)
    for _ in range(repeat):
        # A new order every round: load changes and whatever a command leaves behind (page
        # cache, exiting workers, memory to reclaim after the tutorial) hit all alike, and
        # no command always follows the same one.
        for name in shuffle.sample(names, len(names)):
            command = cmds[name]
            wall, n_events, stderr = timed(command, env)
            seconds[name].append(wall)
            if name == "default":
                events = n_events
                choice = next((ln for ln in stderr.splitlines() if "scheduler auto" in ln), "")
    median = {name: statistics.median(values) for name, values in seconds.items()}
    fastest = min(SCHEDULERS[1:], key=median.__getitem__)
    ratios = {"default_over_fastest_explicit": paired_ratio(seconds["default"], seconds[fastest])}
    if "tutorial" in median:
        ratios["tutorial_over_default"] = paired_ratio(seconds["tutorial"], seconds["default"])
    if events:
        ratios["default_events_per_s"] = events / median["default"]
    return {"store": str(store), "events": events, "auto_choice": choice, "seconds": seconds,
            "median_s": median, "fastest_explicit": fastest, "ratios": ratios}  # fmt: skip


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over the rounds of each round's ratio: a change of the machine's speed between
    rounds (this VM's drifts by 20-30 % within minutes) cancels in every ratio.

    >>> paired_ratio([2.0, 3.0, 30.0], [1.0, 3.0, 10.0])
    2.0
    """
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output-dir", default=None, help="default: a new temp folder")
    parser.add_argument("--sim-dir", default=str(Path(tempfile.gettempdir()) / "bkgdask-bench"))
    parser.add_argument("--sizes", default="45,600,6000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    out = Path(args.output_dir or tempfile.mkdtemp(prefix="bkgdask-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    results = {"cpus": len(os.sched_getaffinity(0)), "repeat": args.repeat, "sizes": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for size in map(int, args.sizes.split(",")):
            result = bench_size(size, Path(args.sim_dir), args.repeat, Path(scratch))
            results["sizes"][size] = result
            medians = "  ".join(f"{k} {v:6.2f} s" for k, v in result["median_s"].items())
            ratios = "  ".join(f"{k} {v:,.2f}" for k, v in result["ratios"].items())
            print(f"{size:>6} runs: {medians}\n        {ratios} (fastest explicit: "
                  f"{result['fastest_explicit']})\n        {result['auto_choice']}")  # fmt: skip
    path = out / "schedulers.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
