"""``plot_bundle``: every figure of a bundle, and the run selection's.

Each model kind's figures come from its module (:mod:`.offset` for BKG_2D,
:mod:`.fov` for BKG_3D); the selection and coverage figures of the runs are
drawn here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..io.bundle import bundle_store_folder
from ..io.files import check_output
from ..models import Model, read_models
from .common import on_axes, pyplot
from .fov import fov_figures
from .offset import offset_figures

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..io.index_table import IndexTable

#: Selection figures: file stem, OBS_INDEX columns (first present is used), axis label.
SELECTION = (
    ("selection-zenith", ("ZEN_PNT",), "zenith angle"),
    ("selection-azimuth", ("AZ_PNT",), "azimuth"),
    ("selection-muoneff", ("MUONEFF",), "muon efficiency"),
    ("selection-time", ("ONTIME", "LIVETIME"), "observation time"),
)


def draw_selection(
    ax: Axes,
    obs_index: IndexTable,
    column: str,
    label: str,
    models: Sequence[str],
    group_edges: Sequence[float] = (),
):
    """Step histograms of one OBS_INDEX column over the runs used in models, one per model.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on.
    obs_index : IndexTable
        The bundle's OBS_INDEX (with ``BKG_HDU`` and ``BKG_USED``).
    column : str
        Column to histogram; its unit (if any) goes into the axis label.
    label : str
        Axis label, without unit.
    models : sequence of str
        Model HDU names, in legend order.
    group_edges : sequence of float
        The models' group edges along ``column`` (its unit), drawn as dashed lines.
    """
    used = np.asarray(obs_index["BKG_USED"], dtype=bool)
    names = np.char.strip(np.asarray(obs_index["BKG_HDU"][used], dtype=str))
    values = np.asarray(obs_index[column][used], dtype=np.float64)
    finite = np.isfinite(values)
    data = values[finite]
    lo, hi = (data.min(), data.max()) if data.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, int(np.clip(np.sqrt(data.size) * 2, 5, 30)) + 1)
    for name in models:
        selected = values[finite & (names == name)]
        ax.hist(selected, bins=bins, histtype="step", lw=1.5, label=f"{name} ({selected.size})")
    for edge in group_edges:
        ax.axvline(edge, ls="--", color="0.4", lw=0.8)
    unit = obs_index.units[column]
    ax.set_xlabel(f"{label}, {column}" + (f" ({unit})" if unit else ""))
    ax.set_ylabel("runs used in models")
    ax.set_title(f"{data.size} runs used in {len(models)} models", fontsize=9)
    ax.legend(fontsize=8)


def draw_coverage(ax: Axes, obs_index: IndexTable, column: str, label: str, models: Sequence[str]):
    """Per group model: the runs that built it (filled) and the runs that receive it (line).

    For bundles with ``BKG_GROUP`` (run-wise or coverage-aware builds): a run
    receives the model of its own group, interpolated or not.
    """
    group = np.char.strip(np.asarray(obs_index["BKG_GROUP"], dtype=str))
    used = np.asarray(obs_index["BKG_USED"], dtype=bool)
    values = np.asarray(obs_index[column], dtype=np.float64)
    finite = np.isfinite(values)
    lo, hi = (values[finite].min(), values[finite].max()) if finite.any() else (0.0, 1.0)
    bins = np.linspace(lo, hi + 1e-9 if hi > lo else lo + 1, 31)
    for k, name in enumerate(models):
        color = f"C{k}"
        mine = finite & (group == name)
        ax.hist(values[mine & used], bins=bins, alpha=0.35, color=color,
                label=f"{name} built by {int((mine & used).sum())}")  # fmt: skip
        ax.hist(values[mine], bins=bins, histtype="step", lw=1.5, color=color,
                label=f"{name} received by {int(mine.sum())}")  # fmt: skip
    unit = obs_index.units[column]
    ax.set_xlabel(f"{label}, {column}" + (f" ({unit})" if unit else ""))
    ax.set_ylabel("runs")
    ax.legend(fontsize=7)


def _coverage_jobs(obs_index: IndexTable, models: list[str]) -> list:
    """``coverage-{zenith,azimuth,muoneff}`` figures of the columns the OBS_INDEX has."""
    jobs = []
    for stem, columns, label in SELECTION[:3]:
        column = next((c for c in columns if c in obs_index), None)
        if column is not None:
            args = (obs_index, column, label, models)
            jobs.append((stem.replace("selection", "coverage"), on_axes(draw_coverage, *args)))
    return jobs


def _zenith_edges(models: dict[str, Model]) -> list[float]:
    """The zenith group edges of the models, deg (none that is 0 or 90)."""
    edges = {m.zenith_lo for m in models.values()} | {m.zenith_hi for m in models.values()}
    return sorted(e for e in edges if 0 < e < 90)


def _kind_figures(model: Model):
    """The figure maker of a model's kind: :func:`.offset_figures` or :func:`.fov_figures`."""
    dims = model.binning.dims
    if "offset" in dims:
        return offset_figures
    if "fov_lat" in dims:
        return fov_figures
    raise ConfigError(f"{model.name}: plot draws BKG_2D and BKG_3D models, not {dims}")


def plot_bundle(
    bundle: str | Path,
    outdir: str | Path,
    *,
    offsets_deg: Sequence[float] = (0.25, 0.75, 1.25, 1.75),
    energies_tev: Sequence[float] = (0.5, 1.0, 3.0, 10.0),
) -> list[Path]:
    """Write the PNG figures of a bkgdask bundle.

    Per BKG_2D model ``<hdu>-{rate-vs-energy,rate-vs-offset,image,relative-error}.png``
    (:func:`.offset.offset_figures`), per BKG_3D model ``<hdu>-fov.png`` and for
    ALTAZ ones ``<hdu>-lat-profile.png`` (:func:`.fov.fov_figures`); then
    ``selection-{zenith,azimuth,muoneff,time}.png`` of the runs used, for the
    OBS_INDEX columns present (ZEN_PNT, AZ_PNT, MUONEFF, ONTIME or LIVETIME).

    Parameters
    ----------
    bundle : str or Path
        A bundle written by bkgdask.
    outdir : str or Path
        Output directory, created if needed.
    offsets_deg : sequence of float
        FoV offsets (deg) of the rate-against-energy curves (BKG_2D).
    energies_tev : sequence of float
        Energies (TeV) of the rate-against-offset curves (BKG_2D) and of the
        energy bins drawn as FoV images and profiles (BKG_3D).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    bkgdask.errors.BkgdaskError
        If ``bundle`` is not a bkgdask bundle, or (ConfigError) an offset or
        energy is outside a model's bins; nothing is written then.
    """
    models, obs_index = read_models(bundle)
    store_folder = bundle_store_folder(bundle)
    check_output(outdir, [store_folder] if store_folder else [], "figures folder")
    runwise = "BKG_GROUP" in obs_index and any(obs_index["BKG_GROUP"] != obs_index["BKG_HDU"])
    if runwise:
        obs_index = obs_index.with_column("BKG_HDU", obs_index["BKG_GROUP"])
    jobs = [  # every model's values checked before anything is written
        (f"{name}-{suffix}", draw)
        for name, model in models.items()
        for suffix, draw in _kind_figures(model)(model, obs_index, offsets_deg, energies_tev)
    ]
    for stem, columns, label in SELECTION:
        column = next((c for c in columns if c in obs_index), None)
        if column is not None:  # skip a figure whose column the OBS_INDEX lacks
            edges = _zenith_edges(models) if column == "ZEN_PNT" else ()
            args = (obs_index, column, label, list(models), edges)
            jobs.append((stem, on_axes(draw_selection, *args)))
    if runwise:
        jobs += _coverage_jobs(obs_index, list(models))
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    written = []
    for stem, draw in jobs:
        fig = plt.figure(figsize=(7, 4.5))
        try:
            draw(fig)
            fig.tight_layout()
            fig.savefig(outdir / f"{stem}.png", dpi=100)
        finally:
            plt.close(fig)
        written.append(outdir / f"{stem}.png")
    return written
