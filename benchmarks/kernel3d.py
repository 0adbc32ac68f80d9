"""Speed of the BKG_3D kernel against the 2D kernel on the same events (one core).

    python benchmarks/kernel3d.py [--repeat 7]

Reads the EVENTS columns of the 45 H.E.S.S. DL3 DR1 off runs once (as
bkgdask.engine.tasks does), then times, per run and summed over the runs, the
2D kernel ``bkgdask.models.kernel2d.count_events`` (19 energy x 9 offset bins)
and the 3D kernel ``bkgdask.models.kernel3d.count_fov_events`` (19 energy x
60 x 60 FoV bins of 0.1 deg) for the RADEC and ALTAZ alignments, compiled and
numpy. In each repeat the three kernels take turns; speeds are medians over
the repeats, ratios to the 2D kernel the median (and quartiles) of the
repeats' own ratios. Last, the per-run cost of setting up the ALTAZ field
rotation (``bkgdask.models.rotation.field_rotation``, ERFA), which the kernel
times leave out. Prints events/s per core and the ratios.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from bkgdask.io.fitsread import read_tables
from bkgdask.models.binning import DEFAULT_ENERGY_EDGES_TEV, DEFAULT_OFFSET_EDGES_DEG
from bkgdask.models.kernel2d import count_events, hav_edges
from bkgdask.models.kernel3d import DEFAULT_FOV_EDGES_DEG, count_fov_events
from bkgdask.models.rotation import field_rotation

ROOT = Path(__file__).resolve().parent.parent
HESS = Path(os.environ.get("GAMMAPY_DATA") or ROOT.parent / "shared" / "data") / "hess-dl3-dr1"


def off_runs() -> list:
    """EVENTS (ENERGY, RA, DEC, TIME and header) of the store's off runs."""
    from bkgdask.engine.build import select_obs_ids
    from bkgdask.io.store import DataStore

    store = DataStore.open(HESS)
    zenith = dict(zip(store.obs_ids.tolist(), store.zenith_deg().tolist()))
    runs = store.run_inputs(select_obs_ids(store, "TARGET_NAME == 'Off data'"), zenith)
    wanted = ["ENERGY", "RA", "DEC", "TIME"]
    return [read_tables(run.events_file, {run.events_hdu: wanted})[run.events_hdu] for run in runs]


def seconds_side_by_side(funcs: dict, events: list, repeat: int) -> dict:
    """Per function, the time for calling it on every run, once in each repeat, taking turns."""
    totals = {name: [] for name in funcs}
    for _ in range(repeat):
        for name, func in funcs.items():
            start = time.perf_counter()
            for table in events:
                func(table)
            totals[name].append(time.perf_counter() - start)
    return {name: np.array(values) for name, values in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    events = off_runs()
    n_events = sum(table.columns["ENERGY"].size for table in events)
    offset_hav = hav_edges(DEFAULT_OFFSET_EDGES_DEG)
    edges = DEFAULT_FOV_EDGES_DEG
    rotations = {id(t): field_rotation(t.header, t.columns["TIME"].min(), t.columns["TIME"].max())
                 for t in events}  # fmt: skip

    def kernel2d(compiled):
        return lambda t: count_events(
            *(t.columns[c] for c in ("ENERGY", "RA", "DEC")), t.header["RA_PNT"],
            t.header["DEC_PNT"], DEFAULT_ENERGY_EDGES_TEV, offset_hav, compiled=compiled,
        )  # fmt: skip

    def kernel3d(compiled, altaz):
        return lambda t: count_fov_events(
            *(t.columns[c] for c in ("ENERGY", "RA", "DEC")), t.header["RA_PNT"],
            t.header["DEC_PNT"], DEFAULT_ENERGY_EDGES_TEV, edges, edges, time=t.columns["TIME"],
            rotation=rotations[id(t)] if altaz else None, compiled=compiled,
        )  # fmt: skip

    for func in (kernel2d(True), kernel3d(True, False), kernel3d(True, True)):
        func(events[0])  # compile
    print(f"{len(events)} off runs, {n_events:,} events; median of {args.repeat} repeats")
    for compiled in (True, False):
        label = "compiled" if compiled else "numpy"
        funcs = {"2D": kernel2d(compiled), "3D RADEC": kernel3d(compiled, False)}
        funcs["3D ALTAZ"] = kernel3d(compiled, True)
        seconds = seconds_side_by_side(funcs, events, args.repeat)
        for name, values in seconds.items():
            rate = n_events / np.median(values) / 1e6
            speed = f"{label:9s} {name:8s} kernel {rate:6.2f} M events/s"
            if name == "2D":
                print(speed)
                continue
            ratios = seconds["2D"] / values  # the repeats' ratios, each measured side by side
            low, median, high = np.percentile(ratios, [25, 50, 75])
            quartiles = f"quartiles {low:.2f}-{high:.2f}"
            print(f"{speed}, {median:.2f} of the 2D kernel's speed ({quartiles})")

    def rotation(t):
        return field_rotation(t.header, t.columns["TIME"].min(), t.columns["TIME"].max())

    seconds = seconds_side_by_side({"rotation": rotation}, events, max(1, args.repeat // 3))
    per_run = np.median(seconds["rotation"]) / len(events)
    print(f"ALTAZ field rotation (ERFA, per run): {per_run * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
