"""Figures of a bkgdask bundle: model rates, their statistical errors, run selection.

The ``curve_*`` functions return exactly the numbers the ``draw_*`` functions
put on an Axes. matplotlib (Agg backend) is imported only when drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import astropy.units as u
import numpy as np

from .errors import ConfigError
from .io.bundle import bundle_store_folder
from .io.files import check_output
from .models import Model, read_models

if TYPE_CHECKING:
    from astropy.table import Table
    from matplotlib.axes import Axes

#: (bin edges, rate in s-1 MeV-1 sr-1, its statistical error in s-1 MeV-1 sr-1)
Curve = tuple[np.ndarray, np.ndarray, np.ndarray]
RATE_LABEL = "rate (s$^{-1}$ MeV$^{-1}$ sr$^{-1}$)"
#: Rate against energy is drawn as E^ENERGY_POWER x rate (E in TeV), near flat for a background.
ENERGY_POWER = 2.7

#: Selection figures: file stem, OBS_INDEX columns (first present is used), axis label.
SELECTION = (
    ("selection-zenith", ("ZEN_PNT",), "zenith angle"),
    ("selection-azimuth", ("AZ_PNT",), "azimuth"),
    ("selection-muoneff", ("MUONEFF",), "muon efficiency"),
    ("selection-time", ("ONTIME", "LIVETIME"), "observation time"),
)


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bin_index(edges: np.ndarray, value: float, name: str, unit: str) -> int:
    """Index of the half-open bin ``[lo, hi)`` of ``edges`` that contains ``value``."""
    if not (np.isfinite(value) and edges[0] <= value < edges[-1]):
        raise ConfigError(
            f"{name} {value} {unit} is outside the model's {name} bins "
            f"[{edges[0]:g}, {edges[-1]:g}) {unit}"
        )
    return int(np.searchsorted(edges, value, side="right") - 1)


def _error(rate: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Statistical error rate / sqrt(counts); NaN where there are no counts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, rate / np.sqrt(counts), np.nan)


def model_error(model: Model) -> np.ndarray:
    """Statistical error of the rate: the fit's for a smoothed model, else rate / sqrt(counts).

    s-1 MeV-1 sr-1; NaN where a histogram bin has no counts.
    """
    if model.smoothed and model.error is not None:
        return model.error
    return _error(model.rate, model.counts)


def _curve(model: Model, axis: str, value: float) -> Curve:
    """Rate along one axis in the bin of the other axis that contains ``value``."""
    b = model.binning
    error = model_error(model)
    if axis == "energy":  # along energy, in an offset bin
        index = _bin_index(b["offset"], value, "offset", "deg")
        return b["energy"], model.rate[:, index], error[:, index]
    index = _bin_index(b["energy"], value, "energy", "TeV")  # along offset, in an energy bin
    return b["offset"], model.rate[index, :], error[index, :]


def curve_rate_vs_energy(model: Model, offset_deg: float, energy_power: float = 0.0) -> Curve:
    """Rate against energy in the offset bin containing ``offset_deg``.

    Parameters
    ----------
    model : Model
        A model of a bundle.
    offset_deg : float
        FoV offset, deg; outside the offset bins raises ConfigError.
    energy_power : float
        Rate and error are multiplied by ``E_c ** energy_power`` (``E_c``
        the bin's geometric centre, TeV); the figures use :data:`ENERGY_POWER`.

    Returns
    -------
    energy_edges, rate, error : numpy.ndarray
        Energy bin edges (TeV); rate in each energy bin (s-1 MeV-1 sr-1, times
        TeV^energy_power); its statistical error (same unit, see :func:`model_error`).
    """
    edges, rate, error = _curve(model, "energy", offset_deg)
    weight = np.sqrt(edges[:-1] * edges[1:]) ** energy_power
    return edges, rate * weight, error * weight


def curve_rate_vs_offset(model: Model, energy_tev: float) -> Curve:
    """Rate against FoV offset in the energy bin containing ``energy_tev``.

    Same as :func:`curve_rate_vs_energy` with the axes swapped: offset edges (deg),
    rate and its error (s-1 MeV-1 sr-1); an energy outside the bins raises ConfigError.
    """
    return _curve(model, "offset", energy_tev)


def _title(model: Model) -> str:
    return (
        f"{model.name}: zenith [{model.zenith_lo:g}, {model.zenith_hi:g}) deg, "
        f"{len(model.obs_ids)} runs, {model.observation_time / 3600:.2f} h"
    )


def _mark_empty(ax: Axes, centres, rate, color) -> None:
    """Mark bins whose rate is 0 or missing: open triangles at the bottom of the Axes."""
    empty = ~(np.isfinite(rate) & (rate > 0))
    if np.any(empty):
        ax.plot(
            centres[empty],
            np.full(empty.sum(), 0.03),
            "v",
            mfc="none",
            color=color,
            transform=ax.get_xaxis_transform(),
        )


def _draw_curves(ax: Axes, model: Model, values, curve, edges, name, unit, fmt) -> list[Curve]:
    """Step curves with error bars, one per distinct bin of ``edges`` that ``values`` select.

    Bins with a zero or missing rate are marked (:func:`_mark_empty`).
    """
    curves: dict[int, tuple] = {}
    for value in values:
        i = _bin_index(edges, value, name, unit)
        if i in curves:  # two values in one bin: one curve
            continue
        x_edges, rate, error = curves[i] = curve(model, value)
        label = f"{name} {edges[i]:{fmt}}–{edges[i + 1]:{fmt}} {unit}"
        step = ax.stairs(rate, x_edges, baseline=None, lw=1.5, label=label)
        lo, hi = x_edges[:-1], x_edges[1:]
        centres = np.sqrt(lo * hi) if name == "offset" else 0.5 * (lo + hi)
        ok = np.isfinite(error) & (rate > 0)
        color = step.get_edgecolor()
        ax.errorbar(centres[ok], rate[ok], yerr=error[ok], fmt="none", color=color, lw=1)
        _mark_empty(ax, centres, rate, color)
    ax.set_yscale("log")
    ax.margins(y=0.25)  # headroom for the legend
    ax.set_ylabel(RATE_LABEL)
    ax.set_title(_title(model), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    return list(curves.values())


def draw_rate_vs_energy(
    ax: Axes, model: Model, offsets_deg: Sequence[float], safe_threshold_tev: float | None = None
) -> list[Curve]:
    """Draw E^2.7 x rate against energy (log-log) with error bars, one step curve per offset bin.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on; ``ax.patches[k]`` is the step curve of the k-th curve returned.
    model : Model
        A model of a bundle.
    offsets_deg : sequence of float
        FoV offsets, deg, each selecting its bin (one curve per distinct bin).
    safe_threshold_tev : float, optional
        Safe energy threshold (TeV), drawn as a dotted vertical line.

    Returns
    -------
    list of tuple
        :func:`curve_rate_vs_energy` (``energy_power=ENERGY_POWER``) of each
        distinct offset bin, in order.
    """
    edges = model.binning["offset"]
    scaled = partial(curve_rate_vs_energy, energy_power=ENERGY_POWER)
    curves = _draw_curves(ax, model, offsets_deg, scaled, edges, "offset", "deg", ".2f")
    ax.set_xscale("log")
    ax.set_xlabel("reconstructed energy (TeV)")
    ax.set_ylabel(f"E$^{{{ENERGY_POWER}}}$ x {RATE_LABEL} (TeV$^{{{ENERGY_POWER}}}$)")
    if safe_threshold_tev is not None and np.isfinite(safe_threshold_tev):
        ax.axvline(safe_threshold_tev, ls=":", color="k", lw=1, label="safe threshold")
        ax.legend(fontsize=8)
    return curves


def draw_rate_vs_offset(ax: Axes, model: Model, energies_tev: Sequence[float]) -> list[Curve]:
    """Draw rate (log) against FoV offset with error bars, one step curve per energy bin.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on; ``ax.patches[k]`` is the step curve of the k-th curve returned.
    model : Model
        A model of a bundle.
    energies_tev : sequence of float
        Energies, TeV, each selecting its bin (one curve per distinct bin).

    Returns
    -------
    list of tuple
        :func:`curve_rate_vs_offset` of each distinct energy bin, in order.
    """
    edges = model.binning["energy"]
    curves = _draw_curves(
        ax, model, energies_tev, curve_rate_vs_offset, edges, "energy", "TeV", ".3g"
    )
    ax.set_xlabel("FoV offset (deg)")
    return curves


def draw_image(ax: Axes, model: Model, quantity: str = "rate"):
    """Draw the rate (log colour scale) or its relative error 1/sqrt(counts) over the bins.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on: energy (TeV, log) on x, FoV offset (deg) on y.
    model : Model
        A model of a bundle.
    quantity : {"rate", "relative-error"}
        Rate (s-1 MeV-1 sr-1, masked where 0) or 1/sqrt(counts) (masked where counts == 0).

    Returns
    -------
    matplotlib.collections.QuadMesh
        The mesh; its data is the (offset, energy) array drawn.
    """
    from matplotlib.colors import LogNorm

    if quantity == "rate":
        values = np.ma.masked_less_equal(model.rate, 0)
        norm = LogNorm() if values.count() else None
        label = RATE_LABEL
    elif quantity == "relative-error":
        counts = model.counts
        with np.errstate(divide="ignore"):
            values = np.ma.masked_where(counts <= 0, 1 / np.sqrt(counts))
        norm, label = None, "relative statistical error 1/√counts"
    else:
        raise ValueError(f"unknown quantity {quantity!r}: 'rate' or 'relative-error'")
    mesh = ax.pcolormesh(
        model.binning["energy"], model.binning["offset"], values.T, norm=norm, shading="flat"
    )
    ax.set_xscale("log")
    ax.set_xlabel("reconstructed energy (TeV)")
    ax.set_ylabel("FoV offset (deg)")
    ax.set_title(_title(model), fontsize=9)
    ax.figure.colorbar(mesh, ax=ax, label=label)
    return mesh


def draw_selection(
    ax: Axes,
    obs_index: Table,
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
    obs_index : astropy.table.Table
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
    used = obs_index[np.asarray(obs_index["BKG_USED"], dtype=bool)]
    names = np.char.strip(np.asarray(used["BKG_HDU"], dtype=str))
    values = np.ma.filled(np.ma.asarray(used[column], dtype=np.float64), np.nan)
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
    unit = obs_index[column].unit
    ax.set_xlabel(f"{label}, {column}" + (f" ({unit})" if unit and str(unit) else ""))
    ax.set_ylabel("runs used in models")
    ax.set_title(f"{data.size} runs used in {len(models)} models", fontsize=9)
    ax.legend(fontsize=8)


def draw_coverage(ax: Axes, obs_index: Table, column: str, label: str, models: Sequence[str]):
    """Per group model: the runs that built it (filled) and the runs that receive it (line).

    For bundles with ``BKG_GROUP`` (run-wise or coverage-aware builds): a run
    receives the model of its own group, interpolated or not.
    """
    group = np.char.strip(np.asarray(obs_index["BKG_GROUP"], dtype=str))
    used = np.asarray(obs_index["BKG_USED"], dtype=bool)
    values = np.ma.filled(np.ma.asarray(obs_index[column], dtype=np.float64), np.nan)
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
    unit = obs_index[column].unit
    ax.set_xlabel(f"{label}, {column}" + (f" ({unit})" if unit and str(unit) else ""))
    ax.set_ylabel("runs")
    ax.legend(fontsize=7)


def _coverage_jobs(obs_index: Table, models: list[str]) -> list:
    """``coverage-{zenith,azimuth,muoneff}`` figures of the columns the OBS_INDEX has."""
    jobs = []
    for stem, columns, label in SELECTION[:3]:
        column = next((c for c in columns if c in obs_index.colnames), None)
        if column is not None:
            args = (obs_index, column, label, models)
            jobs.append((stem.replace("selection", "coverage"),
                         lambda ax, args=args: draw_coverage(ax, *args)))  # fmt: skip
    return jobs


def safe_threshold(obs_index: Table, model: Model) -> float | None:
    """Median ``SAFE_ENERGY_LO`` (TeV) of the model's runs; None if the OBS_INDEX has none."""
    if "SAFE_ENERGY_LO" not in obs_index.colnames:
        return None
    column = obs_index["SAFE_ENERGY_LO"]
    scale = u.Unit(getattr(column, "unit", None) or "TeV").to("TeV")
    runs = np.isin(np.asarray(obs_index["OBS_ID"]), model.obs_ids)
    values = np.asarray(column, dtype=np.float64)[runs] * scale
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def _zenith_edges(models: dict[str, Model]) -> list[float]:
    """The zenith group edges of the models, deg (none that is 0 or 90)."""
    edges = {m.zenith_lo for m in models.values()} | {m.zenith_hi for m in models.values()}
    return sorted(e for e in edges if 0 < e < 90)


def plot_bundle(
    bundle: str | Path,
    outdir: str | Path,
    *,
    offsets_deg: Sequence[float] = (0.25, 0.75, 1.25, 1.75),
    energies_tev: Sequence[float] = (0.5, 1.0, 3.0, 10.0),
) -> list[Path]:
    """Write the PNG figures of a bkgdask bundle.

    Per model ``<hdu>-{rate-vs-energy,rate-vs-offset,image,relative-error}.png``;
    then ``selection-{zenith,azimuth,muoneff,time}.png`` of the runs used, for
    the OBS_INDEX columns present (ZEN_PNT, AZ_PNT, MUONEFF, ONTIME or LIVETIME).

    Parameters
    ----------
    bundle : str or Path
        A bundle written by bkgdask.
    outdir : str or Path
        Output directory, created if needed.
    offsets_deg : sequence of float
        FoV offsets (deg) of the rate-against-energy curves.
    energies_tev : sequence of float
        Energies (TeV) of the rate-against-offset curves.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    bkgdask.errors.BkgdaskError
        If ``bundle`` is not a bkgdask bundle.
    ValueError
        If an offset or energy is outside a model's bins.
    """
    models, obs_index = read_models(bundle)
    store_folder = bundle_store_folder(bundle)
    check_output(outdir, [store_folder] if store_folder else [], "figures folder")
    # Run-wise models (one per run, header OBS_ID) are not drawn one by one.
    models = {n: m for n, m in models.items() if "OBS_ID" not in m.header}
    runwise = "BKG_GROUP" in obs_index.colnames and any(
        np.asarray(obs_index["BKG_GROUP"]) != np.asarray(obs_index["BKG_HDU"])
    )
    if runwise:
        obs_index = obs_index.copy()
        obs_index["BKG_HDU"] = obs_index["BKG_GROUP"]
    for model in models.values():  # fail before writing anything
        if "offset" not in model.binning.dims:
            raise ConfigError(
                f"{model.name}: plot draws offset models (BKG_2D), not {model.kind.hdu_class}"
            )
        for offset in offsets_deg:
            _bin_index(model.binning["offset"], offset, "offset", "deg")
        for energy in energies_tev:
            _bin_index(model.binning["energy"], energy, "energy", "TeV")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    kinds = {
        "rate-vs-energy": lambda ax, m: draw_rate_vs_energy(
            ax, m, offsets_deg, safe_threshold(obs_index, m)
        ),
        "rate-vs-offset": lambda ax, m: draw_rate_vs_offset(ax, m, energies_tev),
        "image": lambda ax, m: draw_image(ax, m, "rate"),
        "relative-error": lambda ax, m: draw_image(ax, m, "relative-error"),
    }
    jobs = [
        (f"{n}-{k}", partial(draw, m=m)) for n, m in models.items() for k, draw in kinds.items()
    ]
    for stem, columns, label in SELECTION:
        column = next((c for c in columns if c in obs_index.colnames), None)
        if column is not None:  # skip a figure whose column the OBS_INDEX lacks
            edges = _zenith_edges(models) if column == "ZEN_PNT" else ()
            args = (obs_index, column, label, list(models), edges)
            jobs.append((stem, lambda ax, args=args: draw_selection(ax, *args)))
    if runwise:
        jobs += _coverage_jobs(obs_index, list(models))
    written = []
    for stem, draw in jobs:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        try:
            draw(ax)
            fig.tight_layout()
            fig.savefig(outdir / f"{stem}.png", dpi=100)
        finally:
            plt.close(fig)
        written.append(outdir / f"{stem}.png")
    return written
