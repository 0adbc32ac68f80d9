"""Models applied to runs through gammapy: observed/predicted counts, FoV norm, significances.

For each run: counts and predicted-background cubes on a tangent-plane grid
centred on the pointing (``MapDatasetMaker``; its pixels are FoV coordinates
along RA and Dec), a safe mask (``offset_max`` and the store's safe energy
range, else gammapy's ``aeff-default``), the background norm and its error
fitted outside the exclusion regions (``FoVBackgroundMaker``), counts and
prediction per (energy bin, offset ring), and a significance map: counts and
background summed over the safe energies, correlated with a top-hat of
``correlation_radius``, Cash significance per pixel, kept where the top-hat
lies inside ``offset_max`` and outside every exclusion region. A correct model
gives significances distributed as N(0, 1).
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
    ring_width : float
        Width of the offset rings of the per-ring tables, deg.
    """

    energy_edges: tuple[float, ...] = tuple(np.logspace(-1, 2, 20))
    offset_max: float = 2.0
    binsz: float = 0.05
    correlation_radius: float = 0.2
    ring_width: float = 0.25

    @property
    def ring_edges(self) -> np.ndarray:
        """Offset ring edges, deg."""
        n = max(1, round(self.offset_max / self.ring_width))
        return np.linspace(0.0, self.offset_max, n + 1)


@dataclass
class RunResult:
    """One run under one model.

    ``binned_counts`` and ``binned_predicted`` are per (energy bin, offset
    ring) inside the safe mask and outside the exclusions, the prediction
    before the norm fit; ``image_counts`` and ``image_predicted`` the FoV
    images summed over the safe energies, outside the exclusions, the
    prediction after the norm fit; ``significance`` the kept pixels.
    """

    obs_id: int
    model: str
    counts: float
    predicted: float
    norm: float
    norm_error: float
    energy_threshold: float
    energy_max: float
    significance: np.ndarray = field(repr=False)
    binned_counts: np.ndarray = field(repr=False)
    binned_predicted: np.ndarray = field(repr=False)
    image_counts: np.ndarray = field(repr=False)
    image_predicted: np.ndarray = field(repr=False)
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
            "norm_error": self.norm_error,
            "energy_threshold_tev": self.energy_threshold,
            "energy_max_tev": self.energy_max,
            "zenith": self.zenith,
        }


def _geom(pointing, settings: RunValidationSettings):
    from gammapy.maps import MapAxis, WcsGeom

    axis = MapAxis.from_energy_edges(np.asarray(settings.energy_edges) * u.TeV)
    width = 2 * (settings.offset_max + settings.correlation_radius) + 4 * settings.binsz
    return WcsGeom.create(
        skydir=pointing,
        width=width * u.deg,
        binsz=settings.binsz,
        axes=[axis],
        frame="icrs",
        proj="TAN",
    )


def _top_hat(radius_pix: float) -> np.ndarray:
    r = int(np.ceil(radius_pix))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x**2 + y**2 <= radius_pix**2).astype(float)


def _safe_energy(dataset, obs, safe_energy) -> np.ndarray:
    """Energy bins in the safe range: the store's (TeV, NaN if absent), else ``aeff-default``.

    Without an effective area (a bundle alone) every energy bin is safe.
    """
    from gammapy.makers import SafeMaskMaker

    lo, hi = safe_energy
    if np.isfinite(lo):
        upper = hi * u.TeV if np.isfinite(hi) else None
        mask = dataset.counts.geom.energy_mask(energy_min=lo * u.TeV, energy_max=upper)
    elif obs.aeff is not None:
        mask = SafeMaskMaker.make_mask_energy_aeff_default(dataset, obs)
    else:  # as aeff-default does without thresholds: every energy
        return np.ones(dataset.counts.geom.axes["energy"].nbin, dtype=bool)
    return np.asarray(mask.data, dtype=bool).any(axis=(1, 2))


def _binned(values, offset, ring_edges) -> np.ndarray:
    """Sum of a cube (energy, y, x) per (energy, offset ring), (n_energy, n_rings)."""
    ring = np.digitize(offset, ring_edges) - 1
    inside = (ring >= 0) & (ring < ring_edges.size - 1)
    out = np.zeros((values.shape[0], ring_edges.size - 1))
    for i in range(ring_edges.size - 1):
        out[:, i] = values[:, inside & (ring == i)].sum(axis=1)
    return out


def _dataset(obs, bkg, model_name: str, settings: RunValidationSettings):
    """Counts and background cubes of one run under one model, and the pixels' offsets (deg)."""
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker

    pointing = obs.get_pointing_icrs(obs.tmid)
    geom = _geom(pointing, settings)
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
    return dataset, geom.to_image().separation(pointing).deg


def significance_map(n, b, outside, offset, settings: RunValidationSettings) -> np.ndarray:
    """Cash significance of top-hat-correlated images; NaN on pixels not kept (see module).

    Parameters
    ----------
    n, b : numpy.ndarray
        Counts and predicted background images, (ny, nx).
    outside : numpy.ndarray of bool
        Pixels outside every exclusion region.
    offset : numpy.ndarray
        Pixel offsets from the pointing, deg.
    settings : RunValidationSettings
    """
    from gammapy.stats import CashCountsStatistic

    kernel = _top_hat(settings.correlation_radius / settings.binsz)
    n_corr = convolve(n, kernel, mode="constant")
    b_corr = convolve(b, kernel, mode="constant")
    clean = convolve((~outside).astype(float), kernel, mode="constant") == 0
    keep = (offset < settings.offset_max - settings.correlation_radius) & clean & (b_corr > 0)
    out = np.full(n.shape, np.nan)
    out[keep] = CashCountsStatistic(n_corr[keep], b_corr[keep]).sqrt_ts
    return out


def validate_run(
    obs,
    bkg,
    model_name: str,
    settings: RunValidationSettings,
    regions=(),
    safe_energy=(np.nan, np.nan),
) -> RunResult:
    """One run with one background model.

    Parameters
    ----------
    obs : gammapy.data.Observation
        The run (events, GTI, pointing, effective area for ``aeff-default``).
    bkg : gammapy.irf.Background2D or Background3D
        The model to apply (may differ from ``obs.bkg``).
    model_name : str
        Label in the results.
    settings : RunValidationSettings
        Grid and cuts.
    regions : sequence of regions.SkyRegion
        Exclusion regions.
    safe_energy : tuple of float
        The store's safe energy range of the run, TeV; NaN where it has none
        (then gammapy's ``aeff-default``, the effective area's thresholds).
    """
    from gammapy.makers import FoVBackgroundMaker
    from gammapy.maps import Map

    dataset, offset = _dataset(obs, bkg, model_name, settings)
    image = dataset.counts.geom.to_image()
    energy_ok = _safe_energy(dataset, obs, safe_energy)
    mask = energy_ok[:, None, None] & (offset < settings.offset_max)[None, :, :]
    dataset.mask_safe = dataset.counts.copy(data=mask)
    outside = np.ones_like(offset, dtype=bool)
    if regions:
        outside = image.region_mask(list(regions), inside=False).data.astype(bool)
    kept = mask & outside
    counts, predicted = dataset.counts.data * kept, dataset.npred_background().data * kept
    fov = FoVBackgroundMaker(method="fit", exclusion_mask=Map.from_geom(image, data=outside))
    norm = fov.run(dataset).background_model.spectral_model.norm
    n = (dataset.counts.data * mask).sum(axis=0)
    b = (dataset.npred_background().data * mask).sum(axis=0)
    significance = significance_map(n, b, outside, offset, settings)
    edges = dataset.counts.geom.axes["energy"].edges.to_value("TeV")
    used = np.flatnonzero(energy_ok)
    return RunResult(
        obs_id=int(obs.obs_id),
        model=model_name,
        counts=float(counts.sum()),
        predicted=float(predicted.sum()),
        norm=float(norm.value),
        norm_error=float(norm.error),
        energy_threshold=float(edges[used[0]]) if used.size else float("nan"),
        energy_max=float(edges[used[-1] + 1]) if used.size else float("nan"),
        significance=significance[np.isfinite(significance)],
        binned_counts=_binned(counts, offset, settings.ring_edges),
        binned_predicted=_binned(predicted, offset, settings.ring_edges),
        image_counts=n * outside,
        image_predicted=b * outside,
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
