"""PNG figures of the validation report (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import pyplot


def significance_histogram(values: dict[str, np.ndarray], path: Path) -> Path:
    """Significance distributions (one per model) against N(0, 1)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(-6, 6, 61)
    for label, data in values.items():
        data = data[np.isfinite(data)]
        if data.size:
            ax.hist(
                data,
                bins=bins,
                density=True,
                histtype="step",
                lw=1.5,
                label=f"{label}: mean {data.mean():.3f}, width {data.std():.3f}",
            )
    x = np.linspace(-6, 6, 400)
    ax.plot(x, np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
    ax.set_yscale("log")
    ax.set_ylim(1e-5, 1)
    ax.set_xlabel("significance outside exclusion regions")
    ax.set_ylabel("pixel density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def pulls(comparison, path: Path) -> Path:
    """Pull image (energy x offset) and pull histogram of one model against the truth."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    image = left.imshow(
        comparison.pulls.T, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-4, vmax=4
    )
    left.set_xlabel("energy bin")
    left.set_ylabel("offset bin")
    left.set_title(f"{comparison.hdu_name}: (counts − truth) / √truth")
    fig.colorbar(image, ax=left)
    values = comparison.pulls[comparison.used]
    right.hist(values, bins=np.linspace(-5, 5, 41), density=True, histtype="step", lw=1.5)
    x = np.linspace(-5, 5, 200)
    right.plot(x, np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi), "k--", lw=1)
    right.set_title(
        f"χ²/ndf = {comparison.chi2:.1f}/{comparison.ndf}, p = {comparison.p_value:.3g}"
    )
    right.set_xlabel("pull")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def ratios(rows: dict[str, list[dict]], key: str, path: Path, xlabel: str = "zenith (deg)") -> Path:
    """Per-run observed/predicted ratios (or norms) against zenith, one series per model.

    Error bars: ``row[key + "_error"]`` where the rows have it (the fitted
    norm's), else the Poisson error of counts / prediction.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, series in rows.items():
        x = [r["zenith"] for r in series]
        y = [r[key] for r in series]
        if series and f"{key}_error" in series[0]:
            error = [r[f"{key}_error"] for r in series]
        else:
            error = [
                r[key] / np.sqrt(r["predicted"]) if r["predicted"] > 0 else np.nan for r in series
            ]
        ax.errorbar(x, y, yerr=error, fmt="o", ms=4, alpha=0.7, label=label)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(key)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def binned_ratios(tables: dict[str, dict], thresholds: dict[str, float], path: Path) -> Path:
    """Counts / prediction per energy bin and per offset ring, Poisson error bars, per model.

    ``thresholds`` (TeV, per model) are drawn as vertical lines: the median
    over the runs of their safe energy threshold. Bins with a prediction but
    no counts are marked at ratio 0.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (label, table), shift in zip(tables.items(), (0.97, 1.03, 1.0)):
        for ax, key, unit in zip(axes, ("energy", "offset"), ("tev", "deg")):
            rows = [r for r in table[key] if np.isfinite(r["ratio"])]
            lo = np.array([r[f"{key}_lo_{unit}"] for r in rows])
            hi = np.array([r[f"{key}_hi_{unit}"] for r in rows])
            x = np.sqrt(lo * hi) * shift if key == "energy" else 0.5 * (lo + hi)
            ratio = np.array([r["ratio"] for r in rows])
            error = np.array([r["error"] for r in rows])
            line = ax.errorbar(x, ratio, yerr=error, fmt="o", ms=3, label=label)[0]
            empty = ratio == 0
            ax.plot(x[empty], ratio[empty], "v", mfc="none", color=line.get_color())
        if label in thresholds and np.isfinite(thresholds[label]):
            axes[0].axvline(thresholds[label], ls=":", color=line.get_color(), lw=1)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("reconstructed energy (TeV); dotted: median safe threshold")
    axes[1].set_xlabel("FoV offset ring centre (deg)")
    for ax in axes:
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_ylabel("counts / prediction")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def significance_maps(maps: dict[str, tuple], offset_max: float, path: Path) -> Path:
    """Stacked significance maps in FoV coordinates, one panel per model, side by side.

    ``maps`` holds ``(significance, half_width_deg)`` per model (see
    :func:`bkgdask.validation.binned.stacked_significance`).
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(maps), figsize=(5 * len(maps), 4.2), squeeze=False)
    for ax, (label, (values, half)) in zip(axes[0], maps.items()):
        extent = (half, -half, -half, half)  # RA grows to the left
        image = ax.imshow(values, origin="lower", extent=extent, cmap="RdBu_r", vmin=-5, vmax=5)
        ax.add_patch(plt.Circle((0, 0), offset_max, fill=False, ls="--", color="k", lw=0.8))
        finite = values[np.isfinite(values)]
        stats = f"mean {finite.mean():.2f}, width {finite.std():.2f}" if finite.size else "empty"
        ax.set_title(f"{label}: {stats}", fontsize=9)
        ax.set_xlabel("FoV ΔRA (deg)")
        ax.set_ylabel("FoV ΔDec (deg)")
        fig.colorbar(image, ax=ax, label="significance (stacked runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
