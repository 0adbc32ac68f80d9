"""Models applied to runs through gammapy: observed/predicted counts, FoV norm, significances.

For each run: counts and predicted-background cubes on a sky grid centred on
the pointing (``MapDatasetMaker``), a safe mask (``offset-max`` and an energy
threshold at the peak of the predicted background, ``bkg-peak``), the
background norm fitted outside the exclusion regions (``FoVBackgroundMaker``),
and a significance map: counts and background summed over the safe energies,
correlated with a top-hat of ``correlation_radius``, Cash significance per
pixel, kept where the top-hat lies inside ``offset_max`` and outside every
exclusion region. A correct model gives significances distributed as N(0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
from scipy.ndimage import convolve


@dataclass(frozen=True)
class RunValidationSettings:
    """Sky grid and cuts of the run validation.

    Attributes
    ----------
    energy_edges : tuple of float
        Reconstructed energy edges, TeV.
    offset_max : float
        Largest FoV offset used, deg.
    binsz : float
        Pixel size, deg.
    correlation_radius : float
        Top-hat radius for the significance map, deg.
    """

    energy_edges: tuple[float, ...] = tuple(np.logspace(-1, 2, 20))
    offset_max: float = 2.0
    binsz: float = 0.05
    correlation_radius: float = 0.2


@dataclass
class RunResult:
    """One run under one model."""

    obs_id: int
    model: str
    counts: float
    predicted: float
    norm: float
    energy_threshold: float
    significance: np.ndarray = field(repr=False)
    zenith: float = float("nan")

    @property
    def ratio(self) -> float:
        return self.counts / self.predicted if self.predicted > 0 else float("nan")

    def row(self) -> dict:
        return {
            "obs_id": self.obs_id,
            "model": self.model,
            "counts": self.counts,
            "predicted": self.predicted,
            "ratio": self.ratio,
            "norm": self.norm,
            "energy_threshold_tev": self.energy_threshold,
            "zenith": self.zenith,
        }


def _geom(pointing, settings: RunValidationSettings):
    from gammapy.maps import MapAxis, WcsGeom

    axis = MapAxis.from_energy_edges(np.asarray(settings.energy_edges) * u.TeV)
    width = 2 * (settings.offset_max + settings.correlation_radius) + 4 * settings.binsz
    return WcsGeom.create(
        skydir=pointing, width=width * u.deg, binsz=settings.binsz, axes=[axis], frame="icrs"
    )


def _top_hat(radius_pix: float) -> np.ndarray:
    r = int(np.ceil(radius_pix))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x**2 + y**2 <= radius_pix**2).astype(float)


def _energy_threshold(dataset, offset_mask) -> int:
    """Index of the energy bin where the predicted background (inside the FoV cut) peaks."""
    spectrum = (dataset.npred_background().data * offset_mask).sum(axis=(1, 2))
    return int(np.argmax(spectrum))


def validate_run(
    obs,
    bkg,
    model_name: str,
    settings: RunValidationSettings,
    regions=(),
    threshold_index: int | None = None,
) -> RunResult:
    """One run with one background model.

    Parameters
    ----------
    obs : gammapy.data.Observation
        The run (events, GTI, pointing).
    bkg : gammapy.irf.Background2D or Background3D
        The model to apply (may differ from ``obs.bkg``).
    model_name : str
        Label in the results.
    settings : RunValidationSettings
        Grid and cuts.
    regions : sequence of regions.SkyRegion
        Exclusion regions.
    threshold_index : int, optional
        Energy bin of the threshold; default: peak of this model's prediction.
    """
    from gammapy.datasets import MapDataset
    from gammapy.makers import FoVBackgroundMaker, MapDatasetMaker
    from gammapy.stats import CashCountsStatistic

    pointing = obs.get_pointing_icrs(obs.tmid)
    geom = _geom(pointing, settings)
    image = geom.to_image()
    offset = image.separation(pointing).deg
    obs_with_bkg = obs.copy(in_memory=True, bkg=bkg)
    maker = MapDatasetMaker(selection=["counts", "background"])
    # Log-log interpolation over bins without counts (rate 0) divides by zero; those
    # pixels get 0 background, which is right, so the warning is silenced here only.
    with np.errstate(divide="ignore", invalid="ignore"):
        background = maker.make_background(geom, obs_with_bkg)
    dataset = MapDataset(
        counts=maker.make_counts(geom, obs_with_bkg),
        background=background,
        name=f"{model_name}-{obs.obs_id}",
    )
    in_fov = offset < settings.offset_max
    if threshold_index is None:
        threshold_index = _energy_threshold(dataset, in_fov)
    energy_ok = np.arange(geom.axes["energy"].nbin) >= threshold_index
    mask = energy_ok[:, None, None] & in_fov[None, :, :]
    dataset.mask_safe = dataset.counts.copy(data=mask)
    from gammapy.maps import Map

    if regions:
        outside = image.region_mask(list(regions), inside=False).data
    else:
        outside = np.ones_like(in_fov)
    exclusion = Map.from_geom(image, data=outside.astype(bool))
    counts = float(dataset.counts.data[mask & outside].sum())
    predicted = float(dataset.npred_background().data[mask & outside].sum())
    dataset = FoVBackgroundMaker(method="fit", exclusion_mask=exclusion).run(dataset)
    norm = float(dataset.background_model.spectral_model.norm.value)
    n = (dataset.counts.data * mask).sum(axis=0)
    b = (dataset.npred_background().data * mask).sum(axis=0)
    kernel = _top_hat(settings.correlation_radius / settings.binsz)
    n_corr = convolve(n, kernel, mode="constant")
    b_corr = convolve(b, kernel, mode="constant")
    clean = convolve((~outside.astype(bool)).astype(float), kernel, mode="constant") == 0
    keep = (offset < settings.offset_max - settings.correlation_radius) & clean & (b_corr > 0)
    significance = CashCountsStatistic(n_corr[keep], b_corr[keep]).sqrt_ts
    energy = float(geom.axes["energy"].edges[threshold_index].to_value("TeV"))
    return RunResult(
        int(obs.obs_id),
        model_name,
        counts,
        predicted,
        norm,
        energy,
        np.asarray(significance, dtype=float),
    )


def significance_summary(results: list[RunResult]) -> dict:
    """Mean, width and count of all significance values."""
    values = np.concatenate([r.significance for r in results]) if results else np.array([])
    finite = values[np.isfinite(values)]
    return {
        "n_pixels": int(finite.size),
        "mean": float(np.mean(finite)) if finite.size else None,
        "width": float(np.std(finite)) if finite.size else None,
    }
