"""bkgdask benchmarks, side by side in one run on this machine.

    python benchmarks/run.py [-o RESULTS.json] [--sim-dir DIR] [--quick]

1. the gunzip floor: stdlib zlib inflating only the EVENTS and GTI HDUs of the
   45 H.E.S.S. DL3 DR1 off runs;
2. bkgdask's per-run kernel (read + histogram + label, one core), compiled and numpy,
   and what verifying the gzip CRC costs against it;
3. gammapy's tutorial loop over the same runs (in-process);
4. whole processes: ``python benchmarks/tutorial_loop.py`` against ``bkgdask build``
   with its default scheduler (best of three each);
5. scaling on a simulated store of 2,000 runs: 1 and 2 workers, the time outside
   task execution, events/s; client peak memory at 500 and 2,000 runs.

Prints ratios and writes everything to a JSON file (default: in a new temporary folder).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("GAMMAPY_DATA") or ROOT.parent / "shared" / "data")
HESS = DATA / "hess-dl3-dr1"
OFF = "TARGET_NAME == 'Off data'"


def best_of(func, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def hess_runs():
    from bkgdask.engine.build import select_obs_ids
    from bkgdask.io.store import DataStore

    store = DataStore.open(HESS)
    zenith = dict(zip(store.obs_ids.tolist(), store.zenith_deg().tolist()))
    return store.run_inputs(select_obs_ids(store, OFF), zenith)


def events_hdu_bytes(path: str) -> int:
    """Decompressed bytes up to the end of the GTI HDU (EVENTS and GTI come first here)."""
    from astropy.io import fits

    with fits.open(path) as hdus:
        names = [h.name for h in hdus]
        assert names[1:3] == ["EVENTS", "GTI"], names
        info = hdus.fileinfo(2)
        return info["datLoc"] + info["datSpan"]


def bench_kernel(runs, repeat: int) -> dict:
    from bkgdask.engine.tasks import histogram_run as run_histogram
    from bkgdask.models import get_kind
    from bkgdask.models.binning import Binning

    binning = Binning.default()
    kind = get_kind("bkg_2d")

    def histogram_run(run, binning, compiled=None):
        return run_histogram(run, kind, binning, compiled)

    n_events = sum(int(histogram_run(r, binning).attrs["n_events"]) for r in runs)
    compressed = [Path(r.events_file).read_bytes() for r in runs]
    sizes = [events_hdu_bytes(r.events_file) for r in runs]

    def gunzip():
        for data, size in zip(compressed, sizes):
            zlib.decompressobj(31).decompress(data, size)

    floor = best_of(gunzip, repeat)
    out = {
        "runs": len(runs),
        "events": n_events,
        "floor_s": floor,
        "floor_events_per_s": n_events / floor,
    }
    for name, compiled in (("compiled", True), ("numpy", False)):
        histogram_run(runs[0], binning, compiled)  # load numba's code first
        seconds = best_of(lambda c=compiled: [histogram_run(r, binning, c) for r in runs], repeat)
        out[f"kernel_{name}_s"] = seconds
        out[f"kernel_{name}_events_per_s"] = n_events / seconds
        out[f"kernel_{name}_ms_per_run"] = 1e3 * seconds / len(runs)
    return out


def bench_integrity(runs, kernel_ms_per_run: float, repeat: int) -> dict:
    """What verifying the gzip CRC and length costs, against the per-run kernel.

    The check itself is the CRC32 over the inflated member (isal's, as the
    reader's inflater computes it); reaching it means inflating the member to
    its end, which on H.E.S.S. files also holds the IRFs after the GTI.
    """
    import gzip

    from bkgdask.io.fitsread import read_tables

    try:
        from isal import isal_zlib as crc_module
    except ImportError:  # pragma: no cover - isal is a dependency
        crc_module = zlib
    members = [gzip.decompress(Path(r.events_file).read_bytes()) for r in runs]
    crc_s = best_of(lambda: [crc_module.crc32(m) for m in members], repeat)
    wanted = [
        (r.events_file, {r.events_hdu: ["ENERGY", "RA", "DEC", "TIME"], r.gti_hdu: ["START"]})
        for r in runs
    ]
    read_s = {
        verify: best_of(lambda v=verify: [read_tables(p, w, verify=v) for p, w in wanted], repeat)
        for verify in (True, False)
    }
    n = len(runs)
    return {
        "crc_ms_per_run": 1e3 * crc_s / n,
        "crc_over_kernel": 1e3 * crc_s / n / kernel_ms_per_run,
        "read_verified_ms_per_run": 1e3 * read_s[True] / n,
        "read_unverified_ms_per_run": 1e3 * read_s[False] / n,
        "inflate_rest_over_kernel": 1e3 * (read_s[True] - read_s[False]) / n / kernel_ms_per_run,
    }


def bench_tutorial(repeat: int) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gammapy.data import DataStore
    from tutorial_loop import run

    store = DataStore.from_dir(HESS)
    off = store.obs_table[store.obs_table["TARGET_NAME"] == "Off data"]["OBS_ID"]
    seconds = best_of(lambda: run(store, off), repeat)
    return {"tutorial_loop_s": seconds, "tutorial_ms_per_run": 1e3 * seconds / len(off)}


def wall(cmd: list[str], repeat: int) -> float:
    def once():
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)

    return best_of(once, repeat)


def bench_processes(repeat: int, tmp: Path) -> dict:
    tutorial = wall(
        [sys.executable, "benchmarks/tutorial_loop.py", str(HESS), str(tmp / "tutorial.fits")],
        repeat,
    )
    build = wall(
        [
            sys.executable,
            "-m",
            "bkgdask.cli",
            "build",
            str(HESS),
            "--select",
            OFF,
            "-o",
            str(tmp / "bkgdask.fits.gz"),
            "--no-progress",
        ],
        repeat,
    )
    return {"tutorial_process_s": tutorial, "bkgdask_process_s": build}


def simulated_store(sim_dir: Path, n_obs: int) -> Path:
    from bkgdask.sim.simulate import SimulationConfig, simulate_store

    path = sim_dir / f"sim-{n_obs}"
    if not (path / "hdu-index.fits.gz").is_file():
        simulate_store(path, SimulationConfig(n_obs=n_obs, seed=1), scheduler="local")
    return path


SCALING = r"""
import json, sys, time, resource
from distributed import Client, LocalCluster
import bkgdask
from bkgdask.config import BuildConfig
if __name__ == "__main__":
    store, workers = sys.argv[1], int(sys.argv[2])
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0",
                      preload=["bkgdask.compute.warmup"]) as cluster, Client(cluster) as client:
        config = BuildConfig().updated({"compute": {"progress": False}})
        bkgdask.build(store, config, client=client)  # loads the compiled loop on the workers
        client.get_task_stream()
        start = time.perf_counter()
        result = bkgdask.build(store, config, client=client)
        seconds = time.perf_counter() - start
        stream = client.get_task_stream(start=start)
    busy = sum(s["stop"] - s["start"] for t in stream for s in t["startstops"]
               if s["action"] == "compute")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"workers": workers, "seconds": seconds, "events": result.summary["events"],
                      "task_seconds": busy, "outside_fraction": 1 - busy / (workers * seconds),
                      "client_maxrss_mb": rss}))
"""


def bench_scaling(sim_dir: Path, n_large: int, n_small: int) -> dict:
    def one(store: Path, workers: int) -> dict:
        proc = subprocess.run(
            [sys.executable, "-c", SCALING, str(store), str(workers)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        return json.loads(proc.stdout.strip().splitlines()[-1])

    large, small = simulated_store(sim_dir, n_large), simulated_store(sim_dir, n_small)
    one_worker, two_workers = one(large, 1), one(large, 2)
    return {
        "n_runs": n_large,
        "one_worker": one_worker,
        "two_workers": two_workers,
        "speedup_2_over_1": one_worker["seconds"] / two_workers["seconds"],
        "events_per_s_2_workers": two_workers["events"] / two_workers["seconds"],
        "client_peak_mb_small": one(small, 2)["client_maxrss_mb"],
        "client_peak_mb_large": two_workers["client_maxrss_mb"],
        "n_runs_small": n_small,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o",
        "--output",
        default=str(Path(tempfile.mkdtemp(prefix="bkgdask-bench-")) / "results.json"),
    )
    parser.add_argument("--sim-dir", default=str(Path(tempfile.gettempdir()) / "bkgdask-bench"))
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 400/100 runs")
    args = parser.parse_args()
    if args.output is None:
        args.output = str(Path(tempfile.mkdtemp(prefix="bkgdask-bench-")) / "results.json")
    repeat = 2 if args.quick else 5
    sim_dir = Path(args.sim_dir)
    sim_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
    }
    with tempfile.TemporaryDirectory() as tmp:
        runs = hess_runs()
        results["kernel"] = bench_kernel(runs, repeat)
        results["integrity"] = bench_integrity(
            runs, results["kernel"]["kernel_compiled_ms_per_run"], repeat
        )
        results["tutorial"] = bench_tutorial(max(2, repeat // 2))
        results["processes"] = bench_processes(3, Path(tmp))
    results["scaling"] = bench_scaling(
        sim_dir, 400 if args.quick else 2000, 100 if args.quick else 500
    )
    k, t, p, s = results["kernel"], results["tutorial"], results["processes"], results["scaling"]
    ratios = {
        "kernel_Mev_per_s_per_core": k["kernel_compiled_events_per_s"] / 1e6,
        "kernel_over_gunzip_floor": k["kernel_compiled_events_per_s"] / k["floor_events_per_s"],
        "kernel_over_tutorial_loop": t["tutorial_loop_s"] / k["kernel_compiled_s"],
        "crc_check_over_kernel": results["integrity"]["crc_over_kernel"],
        "inflating_rest_of_member_over_kernel": results["integrity"]["inflate_rest_over_kernel"],
        "numpy_kernel_over_tutorial_loop": t["tutorial_loop_s"] / k["kernel_numpy_s"],
        "tutorial_process_over_bkgdask_process": p["tutorial_process_s"] / p["bkgdask_process_s"],
        "speedup_2_workers_over_1": s["speedup_2_over_1"],
        "outside_task_fraction_2_workers": s["two_workers"]["outside_fraction"],
        "client_peak_large_over_small": s["client_peak_mb_large"] / s["client_peak_mb_small"],
        "Mev_per_s_2000_runs_2_workers": s["events_per_s_2_workers"] / 1e6,
    }
    results["ratios"] = ratios
    results["client_maxrss_mb_this_process"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    Path(args.output).write_text(json.dumps(results, indent=1))
    print(
        f"kernel: {k['kernel_compiled_ms_per_run']:.2f} ms/run compiled, "
        f"{k['kernel_numpy_ms_per_run']:.2f} ms/run numpy; gunzip floor "
        f"{k['floor_events_per_s'] / 1e6:.1f} M events/s; "
        f"tutorial {t['tutorial_ms_per_run']:.1f} ms/run"
    )
    print(
        f"whole process: tutorial {p['tutorial_process_s']:.2f} s, bkgdask build "
        f"{p['bkgdask_process_s']:.2f} s"
    )
    print(
        f"scaling ({s['n_runs']} runs): 1 worker {s['one_worker']['seconds']:.2f} s, "
        f"2 workers {s['two_workers']['seconds']:.2f} s"
    )
    width = max(map(len, ratios))
    for key, value in ratios.items():
        print(f"  {key:<{width}}  {value:8.3f}")
    print(f"-> {args.output}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
