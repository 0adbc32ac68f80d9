"""BKG_3D on H.E.S.S. DL3 DR1: build time against a gammapy loop, and a 3D analysis check.

1. Whole processes, timed by wall clock (medians of ``--repeats``):
   ``bkgdask build STORE --select "TARGET_NAME == 'Off data'" --model bkg_3d
   --fov-alignment A`` and this script's ``--loop A`` mode, a serial gammapy
   loop of the same binning (per run: gammapy's events, FoV coordinates with
   gammapy/astropy, ``np.histogramdd``, exposure = time x energy width x
   pixel solid angle), which also checks that its counts equal bkgdask's.
2. The Crab and MSH 15-52 runs analysed with gammapy (MapDatasetMaker,
   FoVBackgroundMaker; safe mask: energies >= the obs-index SAFE_ENERGY_LO,
   offset < 2 deg; exclusion: 0.35 deg around RA_OBJ/DEC_OBJ) with the bkgdask
   BKG_3D bundle and with the official BKG_3D models of the run files: FoV
   norms and residual significances outside the exclusion, side by side.

Usage::

    python benchmarks/bkg3d_hess.py [--alignment radec|altaz] [--scheduler local|sync|threads]
        [--repeats 3] [--skip-analysis] [--max-runs N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STORE = Path(os.environ.get("GAMMAPY_DATA", "../shared/data")) / "hess-dl3-dr1"
SELECTION = "TARGET_NAME == 'Off data'"
ZENITH_EDGES = [0, 20, 40, 90]
TARGETS = ("Crab", "MSH 15-52")
EXCLUSION_RADIUS_DEG = 0.35


def binning():
    """The default bkgdask binning of bkg_3d (energy TeV, fov_lon/fov_lat deg)."""
    from bkgdask.config import BuildConfig

    config = BuildConfig().updated({"model": {"kind": "bkg_3d"}})
    return config.binning_of_kind()


def fov_coordinates(obs, alignment: str):
    """FoV lon/lat (deg) of a run's events, computed with gammapy and astropy."""
    from astropy.coordinates import AltAz
    from gammapy.utils.coordinates import sky_to_fov

    events = obs.events
    if alignment == "radec":
        pointing = obs.get_pointing_icrs(obs.tmid)
        lon, lat = sky_to_fov(events.radec.ra, events.radec.dec, pointing.ra, pointing.dec)
    else:
        frame = AltAz(obstime=events.time, location=obs.observatory_earth_location)
        altaz = events.radec.transform_to(frame)
        pointing = obs.get_pointing_altaz(events.time)
        lon, lat = sky_to_fov(altaz.az, altaz.alt, pointing.az, pointing.alt)
    return lon.to_value("deg"), lat.to_value("deg")


def gammapy_loop(alignment: str) -> dict[str, np.ndarray]:
    """Counts and exposure (s MeV sr) per zenith group, run by run with gammapy."""
    from gammapy.data import DataStore

    from bkgdask.models.fov import pixel_solid_angles

    bins = binning()
    edges = (bins["energy"], bins["fov_lon"], bins["fov_lat"])
    solid = pixel_solid_angles(bins["fov_lon"], bins["fov_lat"])
    widths = bins.energy_widths_mev()
    store = DataStore.from_dir(STORE)
    table = store.obs_table[store.obs_table["TARGET_NAME"] == "Off data"]
    out = {}
    for lo, hi in itertools.pairwise(ZENITH_EDGES):
        rows = table[(table["ZEN_PNT"] >= lo) & (table["ZEN_PNT"] < hi)]
        counts, exposure = np.zeros(bins.shape), np.zeros(bins.shape)
        for obs in store.get_observations(rows["OBS_ID"], required_irf=[]):
            lon, lat = fov_coordinates(obs, alignment)
            energy = obs.events.energy.to_value("TeV")
            counts += np.histogramdd((energy, lon, lat), bins=edges)[0]
            seconds = obs.observation_time_duration.to_value("s")
            exposure += seconds * np.multiply.outer(widths, solid)
        out[f"{lo}-{hi}"] = counts
        out[f"{lo}-{hi}-exposure"] = exposure
    return out


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def compare_counts(bundle: Path, loop_file: Path) -> dict:
    """Bins whose counts differ between the bkgdask bundle and the gammapy loop."""
    from bkgdask.models import read_models

    models, _ = read_models(bundle)
    loop = np.load(loop_file)
    out = {}
    for name, model in models.items():
        label = f"{model.zenith_lo:g}-{model.zenith_hi:g}"
        if label in loop:
            differ = np.rint(model.predicted) != loop[label]
            out[name] = {"bins_differing": int(differ.sum()), "counts": int(loop[label].sum())}
    return out


def as_written(obs, bkg):
    """A copy of a H.E.S.S. DR1 run with ``bkg``, which keeps the FOVALIGN of its file.

    gammapy's ``Observation.bkg`` sets ``REVERSE_LON_RADEC`` on the background of
    every run whose events were written by ``SASH FITS::EventListWriter`` (the
    official DR1 models' convention), whatever file the model comes from.
    """
    import copy

    meta = copy.deepcopy(obs._meta)
    meta.optional = {**meta.optional, "CREATOR": "bkgdask benchmark"}
    return obs.copy(in_memory=True, meta=meta), bkg


def analysis(bundle: Path, max_runs: int | None) -> dict:
    """FoV norms and significances of the target runs with both models, per target."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from gammapy.data import DataStore
    from regions import CircleSkyRegion

    from bkgdask.validation.runs import RunValidationSettings, significance_summary, validate_run

    settings = RunValidationSettings()
    official, ours = DataStore.from_dir(STORE), DataStore.from_file(bundle)
    edges = np.asarray(settings.energy_edges)
    out = {}
    for target in TARGETS:
        rows = official.obs_table[official.obs_table["TARGET_NAME"] == target][:max_runs]
        results = {"bkgdask": [], "official": []}
        safe_lo = rows["SAFE_ENERGY_LO"].quantity.to_value("TeV")
        for row, energy_lo in zip(rows, safe_lo, strict=True):
            obs = official.obs(int(row["OBS_ID"]))
            centre = SkyCoord(row["RA_OBJ"] * u.deg, row["DEC_OBJ"] * u.deg)
            region = CircleSkyRegion(centre, EXCLUSION_RADIUS_DEG * u.deg)
            # first energy bin whose lower edge is at or above the safe threshold
            threshold = int(np.searchsorted(edges, energy_lo * (1 - 1e-6)))
            models = {
                "bkgdask": as_written(obs, ours.hdu_table.hdu_location(obs.obs_id, "bkg").load()),
                "official": (obs, obs.bkg),
            }
            for label, (run, bkg) in models.items():
                results[label].append(
                    validate_run(run, bkg, label, settings, [region], threshold_index=threshold)
                )
        out[target] = {
            label: {
                "runs": len(res),
                "norm_mean": float(np.mean([r.norm for r in res])),
                "norm_std": float(np.std([r.norm for r in res])),
                **{f"significance_{k}": v for k, v in significance_summary(res).items()},
            }
            for label, res in results.items()
        }
    return out


def per_run_seconds(alignment: str, n_gammapy_runs: int = 6) -> dict:
    """Warm in-process seconds per run: a bkgdask sync build, and the gammapy loop's body."""
    from gammapy.data import DataStore

    import bkgdask
    from bkgdask.config import BuildConfig

    config = BuildConfig().updated(
        {"selection": SELECTION, "model": {"kind": "bkg_3d", "fov_alignment": alignment},
         "compute": {"scheduler": "sync", "progress": False}}
    )  # fmt: skip
    bkgdask.build(STORE, config)  # imports, astropy's IERS tables, numba
    start = time.perf_counter()
    n_runs = bkgdask.build(STORE, config).summary["runs"]
    ours = (time.perf_counter() - start) / n_runs
    store = DataStore.from_dir(STORE)
    off = store.obs_table[store.obs_table["TARGET_NAME"] == "Off data"]["OBS_ID"]
    observations = store.get_observations(off[: n_gammapy_runs + 1], required_irf=[])
    fov_coordinates(observations[0], alignment)  # warm-up
    start = time.perf_counter()
    for obs in observations[1:]:
        fov_coordinates(obs, alignment)
        obs.events.energy.to_value("TeV")
    theirs = (time.perf_counter() - start) / n_gammapy_runs
    return {"bkgdask_s_per_run": ours, "gammapy_coordinates_s_per_run": theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alignment", choices=("radec", "altaz"), default="radec")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scheduler", default="local", help="of the bkgdask build")
    parser.add_argument("--loop", help="internal: run the gammapy loop, save counts to this .npz")
    parser.add_argument("--skip-analysis", action="store_true")
    parser.add_argument("--per-run", action="store_true", help="warm seconds per run only")
    parser.add_argument("--max-runs", type=int, default=None, help="target runs per target")
    args = parser.parse_args()
    if args.loop:
        np.savez(args.loop, **gammapy_loop(args.alignment))
        return
    if args.per_run:
        print(json.dumps({"alignment": args.alignment, **per_run_seconds(args.alignment)}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        bundle, loop_file = Path(tmp) / "bkg3d.fits.gz", Path(tmp) / "loop.npz"
        build = ["bkgdask", "build", str(STORE), "-o", str(bundle), "--select", SELECTION,
                 "--model", "bkg_3d", "--fov-alignment", args.alignment,
                 "--scheduler", args.scheduler, "--no-progress"]  # fmt: skip
        loop = [sys.executable, __file__, "--loop", str(loop_file), "--alignment", args.alignment]
        t_build = [timed(build) for _ in range(args.repeats)]
        t_loop = [timed(loop) for _ in range(max(1, args.repeats // 2))]
        report = {
            "alignment": args.alignment,
            "bkgdask_build_s": t_build,
            "gammapy_loop_s": t_loop,
            "speedup_of_medians": float(np.median(t_loop) / np.median(t_build)),
            "counts_check": compare_counts(bundle, loop_file),
        }
        print(json.dumps(report, indent=1), flush=True)
        if not args.skip_analysis:
            print(json.dumps(analysis(bundle, args.max_runs), indent=1))


if __name__ == "__main__":
    main()
