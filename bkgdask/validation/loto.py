"""Leave-one-target-out check: models built without a target's runs, FoV norms fitted on them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np

from ..config import BuildConfig
from ..engine.build import build
from ..io.files import write_bytes_atomic
from ..io.store import DataStore
from ..models.exclusion import separation_deg
from .runs import RunValidationSettings, _geom

#: Runs whose target lies within this distance (deg) of the left-out one go out with it.
SAME_TARGET_DEG = 0.2


@dataclass
class NormFit:
    """One run's fitted FoV background norm under one model."""

    target: str
    obs_id: int
    model: str
    norm: float
    error: float
    zenith: float

    def row(self) -> dict:
        return {k: (str(v) if k == "target" else v) for k, v in self.__dict__.items()}


def target_runs(store: DataStore, off_name: str = "Off data") -> dict[str, list[int]]:
    """Per target (``TARGET_NAME``, off runs left out): its runs, and those at the same position.

    Targets at the same position (e.g. a flare and a steady state) are one
    target, named after the first.
    """
    table = store.obs_index
    names = np.asarray(table["TARGET_NAME"]).astype(str)
    if "RA_OBJ" in table and "DEC_OBJ" in table:
        ra, dec = (np.asarray(table[c], dtype=float) for c in ("RA_OBJ", "DEC_OBJ"))
    else:  # no target positions: targets by name only
        ra, dec = np.arange(len(table)) * 10.0, np.zeros(len(table))
    out, seen = {}, set()
    for name in dict.fromkeys(names):
        first = int(np.flatnonzero(names == name)[0])
        if name == off_name or int(store.obs_ids[first]) in seen:
            continue
        near = separation_deg(ra[first], dec[first], ra, dec) < SAME_TARGET_DEG
        out[name] = [int(o) for o in store.obs_ids[(near | (names == name)) & (names != off_name)]]
        seen.update(out[name])
    return out


def fit_norm(
    obs, bkg, target_circle, safe_energy_tev, settings: RunValidationSettings
) -> tuple[float, float]:
    """FoVBackgroundMaker norm (and its error) of one run, target excluded, safe energies only.

    Parameters
    ----------
    obs : gammapy.data.Observation
        The run.
    bkg : gammapy.irf.Background2D or Background3D
        The model applied.
    target_circle : regions.CircleSkyRegion
        Excluded from the fit.
    safe_energy_tev : tuple of float
        Safe energy range (TeV): energy bins whose centre lies inside are fitted.
    settings : RunValidationSettings
        Grid and largest offset.
    """
    from gammapy.datasets import MapDataset
    from gammapy.makers import FoVBackgroundMaker, MapDatasetMaker
    from gammapy.maps import Map

    pointing = obs.get_pointing_icrs(obs.tmid)
    geom = _geom(pointing, settings)
    maker = MapDatasetMaker(selection=["counts", "background"])
    obs_with_bkg = obs.copy(in_memory=True, bkg=bkg)
    with np.errstate(divide="ignore", invalid="ignore"):
        background = maker.make_background(geom, obs_with_bkg)
    dataset = MapDataset(counts=maker.make_counts(geom, obs_with_bkg), background=background)
    centers = geom.axes["energy"].center.to_value("TeV")
    energy_ok = (centers >= safe_energy_tev[0]) & (centers <= safe_energy_tev[1])
    in_fov = geom.to_image().separation(pointing).deg < settings.offset_max
    dataset.mask_safe = dataset.counts.copy(data=energy_ok[:, None, None] & in_fov[None])
    exclusion = ~geom.to_image().region_mask([target_circle]).data
    maker = FoVBackgroundMaker(
        method="fit", exclusion_mask=Map.from_geom(geom.to_image(), data=exclusion)
    )
    dataset = maker.run(dataset)
    norm = dataset.background_model.spectral_model.norm
    return float(norm.value), float(norm.error)


def leave_one_target_out(
    store_path,
    config: BuildConfig,
    *,
    targets: list[str] | None = None,
    fit_radius_deg: float = 0.4,
    settings: RunValidationSettings | None = None,
    compare_store_models: bool = True,
    positions: dict[str, tuple[float, float]] | None = None,
) -> list[NormFit]:
    """For each target: build without its runs, fit the FoV norm on each of them.

    Parameters
    ----------
    store_path : str or Path
        The DL3 store.
    config : BuildConfig
        Build configuration (exclusion, interpolation, ...); its selection is
        narrowed to the runs of the other targets.
    targets : list of str, optional
        ``TARGET_NAME`` values to check (default: every target but off runs).
    fit_radius_deg : float
        Radius of the target circle excluded from the norm fit, deg.
    settings : RunValidationSettings, optional
        Sky grid (default 0.05 deg pixels, 2 deg offset).
    compare_store_models : bool
        Also fit with the store's own bkg model of each run, where it has one.
    positions : dict of str to (float, float), optional
        Target positions (RA, Dec, deg) where the obs-index has no ``RA_OBJ``/``DEC_OBJ``.

    Returns
    -------
    list of NormFit
    """
    from astropy.coordinates import SkyCoord
    from gammapy.data import DataStore as GammapyStore
    from regions import CircleSkyRegion

    settings = settings or RunValidationSettings()
    store = DataStore.open(store_path)
    gammapy_store = GammapyStore.from_dir(store.base_dir)
    zenith = dict(zip(store.obs_ids.tolist(), store.zenith_deg().tolist()))
    row_of = {o: store.obs_index.row(i) for i, o in enumerate(store.obs_ids.tolist())}
    units = store.column_units()
    fits = []
    for target, obs_ids in target_runs(store).items():
        if targets is not None and target not in targets:
            continue
        models = _models_without(store, config, obs_ids)
        for obs_id in obs_ids:
            obs = gammapy_store.obs(obs_id, required_irf=[])
            info = row_of[obs_id]
            ra, dec = (positions or {}).get(target) or (info["RA_OBJ"], info["DEC_OBJ"])
            circle = CircleSkyRegion(SkyCoord(ra, dec, unit="deg"), fit_radius_deg * u.deg)
            safe = tuple(
                _tev(info, units, c, d) for c, d in (("SAFE_ENERGY_LO", 0), ("SAFE_ENERGY_HI", 1e9))
            )
            applied = {"bkgdask": models[obs_id]}
            if compare_store_models and obs.bkg is not None:
                applied["official"] = obs.bkg
            for label, bkg in applied.items():
                norm, error = fit_norm(obs, bkg, circle, safe, settings)
                fits.append(NormFit(target, obs_id, label, norm, error, zenith[obs_id]))
    return fits


def _models_without(store: DataStore, config: BuildConfig, obs_ids: list[int]) -> dict:
    """Build without ``obs_ids``; per left-out run, the gammapy IRF of the model it receives."""
    left_out = f"not (OBS_ID in [{', '.join(map(str, obs_ids))}])"
    selection = f"({config.selection}) and {left_out}" if config.selection else left_out
    result = build(store, config.updated({"selection": selection}))
    by_name = {hdu.name: hdu for hdu in result.model_hdus().values()}
    table = result.obs_index()
    names = dict(zip(table["OBS_ID"], table["BKG_HDU"]))
    kind = result.kind
    return {
        o: kind.to_gammapy(
            kind.from_hdu(names[o], by_name[names[o]].header, by_name[names[o]].data)
        )
        for o in obs_ids
    }


def _tev(row: dict, units: dict[str, str], column: str, default: float) -> float:
    """An obs-index energy in TeV (its unit from ``units``, else TeV), ``default`` if absent."""
    if column not in row:
        return default
    return float(u.Quantity(row[column], units[column] or "TeV").to_value("TeV"))


def summary_table(fits: list[NormFit]) -> str:
    """Markdown table: per target and model, mean norm ± standard deviation, and the range."""
    lines = ["| target | runs | bkgdask norm | official norm |", "|---|---|---|---|"]
    for target in dict.fromkeys(f.target for f in fits):
        cells = []
        for model in ("bkgdask", "official"):
            norms = np.array([f.norm for f in fits if f.target == target and f.model == model])
            cells.append(
                f"{norms.mean():.3f} ± {norms.std():.3f} ({norms.min():.2f}–{norms.max():.2f})"
                if norms.size
                else "–"
            )
        n = len({f.obs_id for f in fits if f.target == target})
        lines.append(f"| {target} | {n} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def write_loto(store_path, outdir, config_path=None, compare_store_models: bool = True) -> str:
    """Run the check, write ``loto.json`` and ``loto.md`` into ``outdir``; return the table.

    The build config is read from ``config_path``, else the default one with a
    0.4 deg circle around every target excluded and run-wise interpolation.
    """
    if config_path is not None:
        config = BuildConfig.read(config_path)
    else:
        config = BuildConfig().updated(
            {
                "compute": {"progress": False},
                "exclusion": {"target_radius": "0.4 deg"},
                "grouping": {"interpolate": True},
            }
        )
    fits = leave_one_target_out(store_path, config, compare_store_models=compare_store_models)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    table = summary_table(fits)
    rows = [f.row() for f in fits]
    write_bytes_atomic(json.dumps(rows, indent=1).encode(), outdir / "loto.json")
    write_bytes_atomic((table + "\n").encode(), outdir / "loto.md")
    return table
