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
    """Per-run observed/predicted ratios (or norms) against zenith, one series per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, series in rows.items():
        x = [r["zenith"] for r in series]
        y = [r[key] for r in series]
        ax.plot(x, y, "o", ms=4, alpha=0.7, label=label)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(key)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
