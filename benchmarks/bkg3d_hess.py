"""BKG_3D on H.E.S.S. DL3 DR1: whole-process build time against BAccMod and a gammapy loop.

1. Whole processes, timed by wall clock, commands alternated, medians:
   ``bkgdask build STORE --select "TARGET_NAME == 'Off data'" --model bkg_3d
   --fov-alignment radec|altaz -o OUT`` (default scheduler, with ``--smoothing
   none`` and with the default smoothing) against

   * BAccMod (``--baccmod PYTHON``: this script run by a Python where BAccMod
     is installed, ``--run-baccmod``): ``Grid3DAcceptanceMapCreator`` with its
     defaults (stacking, 10x oversampled exposure map, FoV rotation time
     resolution 0.1 s) and bkgdask's default bins: energy 0.1-100 TeV in 19 log
     bins, FoV offset axis 0-3 deg in 30 bins (60 x 60 bins of 0.1 deg over
     +-3 deg), ALTAZ (its only FoV frame), one ``create_model`` per zenith
     group 0-20-40-90 deg of ``ZEN_PNT`` (bkgdask's default groups), the three
     Background3D written to one FITS file. Its counts are compared with
     bkgdask's bin by bin (rate x its own solid angles, bin widths and live time);
   * a serial gammapy loop of the same binning (``--loop``: per run gammapy's
     events, FoV coordinates with gammapy/astropy, ``np.histogramdd``,
     exposure = time x energy width x pixel solid angle), whose counts are
     compared with bkgdask's too.
2. The Crab and MSH 15-52 runs analysed with gammapy (MapDatasetMaker,
   FoVBackgroundMaker; safe mask: the obs-index SAFE_ENERGY_LO/HI, offset
   < 2 deg; exclusion: 0.35 deg around RA_OBJ/DEC_OBJ) with the bkgdask
   BKG_3D bundles and with the official BKG_3D models of the run files: FoV
   norms and residual significances outside the exclusion, side by side.

Usage (BAccMod in its own environment: it pins its gammapy)::

    python3 -m venv /tmp/baccmod-venv && /tmp/baccmod-venv/bin/pip install baccmod==0.4.1
    python benchmarks/bkg3d_hess.py --baccmod /tmp/baccmod-venv/bin/python [--repeats 5]
        [--anchor-repeats 3] [--skip-loop] [--skip-analysis] [--max-runs N]
    python benchmarks/bkg3d_hess.py --per-run [--alignment radec|altaz]

Without ``--baccmod`` (or if that Python does not exist) BAccMod is skipped
with a message, and the gammapy loop is the anchor.
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
ALIGNMENTS = ("radec", "altaz")
#: BAccMod's default oversampling of its exposure map (0.01 deg pixels for 0.1 deg bins).
BACCMOD_OVERSAMPLE = 10


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


def baccmod_build(out: str, oversample: int) -> None:
    """BAccMod's BKG_3D models of the off runs, one per zenith group, and their counts.

    Runs in BAccMod's environment. Writes the three Background3D HDUs to
    ``out`` and, to ``out + ".npz"``, each group's counts recovered from its
    rate (rate x BAccMod's pixel solid angle x energy width x live time).
    """
    import astropy.units as u
    from astropy.io import fits
    from baccmod import Grid3DAcceptanceMapCreator
    from gammapy.data import DataStore
    from gammapy.maps import MapAxis

    energy = MapAxis.from_energy_bounds(0.1 * u.TeV, 100 * u.TeV, nbin=19, name="energy")
    offset = MapAxis.from_edges(np.linspace(0.0, 3.0, 31) * u.deg, name="offset")
    creator = Grid3DAcceptanceMapCreator(energy, offset, oversample_map=oversample)
    store = DataStore.from_dir(STORE)
    table = store.obs_table[store.obs_table["TARGET_NAME"] == "Off data"]
    hdus, counts = [fits.PrimaryHDU()], {}
    for lo, hi in itertools.pairwise(ZENITH_EDGES):
        rows = table[(table["ZEN_PNT"] >= lo) & (table["ZEN_PNT"] < hi)]
        observations = store.get_observations(rows["OBS_ID"], required_irf=[])
        model = creator.create_model(observations)
        hdu = model.to_table_hdu()
        hdu.name = f"BKG_ZEN_{lo}_{hi}"
        hdus.append(hdu)
        live = sum(obs.observation_live_time_duration.to_value("s") for obs in observations)
        half = np.radians(offset.bin_width.to_value("deg")[0]) / 2  # as BAccMod's solid angle
        widths = energy.bin_width.to_value("MeV")[:, None, None]
        counts[f"{lo}-{hi}"] = model.quantity.to_value("s-1 MeV-1 sr-1") * (
            4 * np.sin(half) ** 2 * widths * live
        )
    fits.HDUList(hdus).writeto(out, overwrite=True)
    np.savez(out + ".npz", **counts)


def timed(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def compare_counts(bundle: Path, other_file: Path) -> dict:
    """Per model: bins whose counts differ between the bkgdask bundle and another count's file."""
    from bkgdask.models import read_models

    models, _ = read_models(bundle)
    other = np.load(other_file)
    out = {}
    for name, model in models.items():
        label = f"{model.zenith_lo:g}-{model.zenith_hi:g}"
        if label in other:
            ours, theirs = np.rint(model.counts), np.rint(other[label])
            out[name] = {
                "counts": int(ours.sum()),
                "other_counts": int(theirs.sum()),
                "bins_differing": int((ours != theirs).sum()),
                "abs_difference": int(np.abs(ours - theirs).sum()),
            }
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
    out = {}
    for target in TARGETS:
        rows = official.obs_table[official.obs_table["TARGET_NAME"] == target][:max_runs]
        results = {"bkgdask": [], "official": []}
        safe = zip(*(rows[f"SAFE_ENERGY_{e}"].quantity.to_value("TeV") for e in ("LO", "HI")))
        for row, safe_energy in zip(rows, safe, strict=True):
            obs = official.obs(int(row["OBS_ID"]))
            centre = SkyCoord(row["RA_OBJ"] * u.deg, row["DEC_OBJ"] * u.deg)
            region = CircleSkyRegion(centre, EXCLUSION_RADIUS_DEG * u.deg)
            models = {
                "bkgdask": as_written(obs, ours.hdu_table.hdu_location(obs.obs_id, "bkg").load()),
                "official": (obs, obs.bkg),
            }
            for label, (run, bkg) in models.items():
                results[label].append(
                    validate_run(run, bkg, label, settings, [region], safe_energy=safe_energy)
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


def bkgdask_command(bundle: Path, alignment: str, smoothing: str | None) -> list[str]:
    """The user's command line (the environment's ``bkgdask`` script)."""
    script = Path(sys.executable).with_name("bkgdask")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bkgdask.cli"]
    command += ["build", str(STORE), "-o", str(bundle), "--select", SELECTION,
                "--model", "bkg_3d", "--fov-alignment", alignment, "--no-progress"]  # fmt: skip
    return command + (["--smoothing", smoothing] if smoothing else [])


def commands(tmp: Path, args) -> dict[str, tuple[list[str], dict | None]]:
    """Every timed command by label: bkgdask's, the gammapy loops', BAccMod's."""
    out = {}
    for alignment in ALIGNMENTS:
        for smoothing in ("none", None):
            label = f"bkgdask {alignment} smoothing {smoothing or 'default'}"
            bundle = tmp / f"{alignment}-{smoothing or 'default'}.fits.gz"
            out[label] = bkgdask_command(bundle, alignment, smoothing), None
        if not args.skip_loop:
            loop = [sys.executable, __file__, "--loop", str(tmp / f"loop-{alignment}.npz"),
                    "--alignment", alignment]  # fmt: skip
            out[f"gammapy loop {alignment}"] = loop, None
    if args.baccmod and Path(args.baccmod).exists():
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["GAMMAPY_DATA"] = str(STORE.parent.resolve())
        run = [args.baccmod, __file__, "--run-baccmod", str(tmp / "baccmod.fits"),
               "--baccmod-oversample", str(args.baccmod_oversample)]  # fmt: skip
        out["BAccMod altaz"] = run, env
    elif args.baccmod:
        print(f"BAccMod skipped: no Python at {args.baccmod}", file=sys.stderr)
    else:
        print("BAccMod skipped: no --baccmod PYTHON given", file=sys.stderr)
    return out


def time_alternated(todo: dict, repeats: int, anchor_repeats: int) -> dict[str, list[float]]:
    """Seconds of each command, commands alternated within each round (anchors fewer rounds)."""
    times = {label: [] for label in todo}
    for round_ in range(max(repeats, anchor_repeats)):
        for label, (command, env) in todo.items():
            if round_ < (repeats if label.startswith("bkgdask") else anchor_repeats):
                times[label].append(timed(command, env))
                print(f"{label}: {times[label][-1]:.2f} s", file=sys.stderr, flush=True)
    return times


def summary(times: dict[str, list[float]]) -> dict:
    """Medians and the speed-ups of bkgdask's default command against each anchor."""
    medians = {label: float(np.median(t)) for label, t in times.items()}
    ratios = {}
    for alignment in ALIGNMENTS:
        for anchor in (f"gammapy loop {alignment}", "BAccMod altaz"):
            if anchor in medians:
                for smoothing in ("none", "default"):
                    ours = medians[f"bkgdask {alignment} smoothing {smoothing}"]
                    ratios[f"{anchor} / bkgdask {alignment} {smoothing}"] = medians[anchor] / ours
    return {"median_s": medians, "speedup": ratios}


def print_table(report: dict) -> None:
    medians = report["median_s"]
    print(f"\nwhole process, median (s)     {'radec':>8} {'altaz':>8}")
    rows = [
        ("bkgdask --smoothing none", "bkgdask {} smoothing none"),
        ("bkgdask (default smoothing)", "bkgdask {} smoothing default"),
        ("gammapy serial loop", "gammapy loop {}"),
        ("BAccMod (ALTAZ only)", "BAccMod {}"),
    ]
    for name, key in rows:
        cells = [medians.get(key.format(a)) for a in ALIGNMENTS]
        if any(c is not None for c in cells):
            text = [f"{c:8.2f}" if c is not None else f"{'-':>8}" for c in cells]
            print(f"{name:29s} {' '.join(text)}")
    for label, ratio in report["speedup"].items():
        print(f"{label}: {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alignment", choices=ALIGNMENTS, default="radec", help="of --per-run")
    parser.add_argument("--repeats", type=int, default=5, help="of each bkgdask command")
    parser.add_argument("--anchor-repeats", type=int, default=3, help="of BAccMod and the loops")
    parser.add_argument("--baccmod", help="a Python with BAccMod installed")
    parser.add_argument("--baccmod-oversample", type=int, default=BACCMOD_OVERSAMPLE)
    parser.add_argument("--skip-loop", action="store_true", help="no gammapy loops")
    parser.add_argument("--loop", help="internal: run the gammapy loop, save counts to this .npz")
    parser.add_argument("--run-baccmod", help="internal: run BAccMod, write its models here")
    parser.add_argument("--skip-analysis", action="store_true")
    parser.add_argument("--per-run", action="store_true", help="warm seconds per run only")
    parser.add_argument("--max-runs", type=int, default=None, help="target runs per target")
    args = parser.parse_args()
    if args.loop:
        np.savez(args.loop, **gammapy_loop(args.alignment))
        return
    if args.run_baccmod:
        baccmod_build(args.run_baccmod, args.baccmod_oversample)
        return
    if args.per_run:
        print(json.dumps({"alignment": args.alignment, **per_run_seconds(args.alignment)}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        todo = commands(tmp, args)
        times = time_alternated(todo, args.repeats, args.anchor_repeats)
        report = {"times_s": times, **summary(times), "counts_check": {}}
        for alignment in ALIGNMENTS:
            bundle = tmp / f"{alignment}-none.fits.gz"
            others = {"gammapy loop": tmp / f"loop-{alignment}.npz"}
            if alignment == "altaz":
                others["BAccMod"] = tmp / "baccmod.fits.npz"
            for name, path in others.items():
                if path.exists():
                    report["counts_check"][f"{name} {alignment}"] = compare_counts(bundle, path)
        print(json.dumps(report, indent=1), flush=True)
        print_table(report)
        if not args.skip_analysis:
            for alignment in ALIGNMENTS:
                bundle = tmp / f"{alignment}-default.fits.gz"
                print(alignment, json.dumps(analysis(bundle, args.max_runs), indent=1))


if __name__ == "__main__":
    main()
