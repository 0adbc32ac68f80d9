"""Figures of a bundle: files written, and plotted values equal to the model."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from helpers import OFF, small_store

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.errors import BkgdaskError
from bkgdask.models import read_models
from bkgdask.plotting import (
    ENERGY_POWER,
    curve_rate_vs_energy,
    curve_rate_vs_offset,
    draw_rate_vs_energy,
    draw_rate_vs_offset,
    draw_selection,
    model_error,
    plot_bundle,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SYNC = {"model": {"smoothing": "none"}, "compute": {"scheduler": "sync", "progress": False}}
MODELS = ("BKG_ZEN_0_20", "BKG_ZEN_20_40", "BKG_ZEN_40_90")
MODEL_FIGURES = ("rate-vs-energy", "rate-vs-offset", "image", "relative-error")
SELECTION_FIGURES = ("zenith", "azimuth", "muoneff", "time")


@pytest.fixture
def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("plotting")
    store = small_store(tmp_path / "store")
    return bkgdask.build(store, BuildConfig().updated(SYNC)).write(tmp_path / "b.fits")


@pytest.fixture(scope="module")
def model(bundle):
    return read_models(bundle)[0]["BKG_ZEN_20_40"]


def expected_names(models=MODELS):
    names = {f"{m}-{f}.png" for m in models for f in MODEL_FIGURES}
    return names | {f"selection-{s}.png" for s in SELECTION_FIGURES}


def check_pngs(paths, min_size=5000):
    for path in paths:
        assert path.is_file(), path
        assert path.read_bytes()[:8] == PNG_SIGNATURE, path
        assert path.stat().st_size > min_size, path


def test_plot_bundle_writes_all_figures(plt, bundle, tmp_path):
    import matplotlib.image as mpimg

    paths = plot_bundle(bundle, tmp_path / "figs")
    assert {p.name for p in paths} == expected_names()
    assert all(p.parent == tmp_path / "figs" for p in paths)
    check_pngs(paths)
    image = mpimg.imread(tmp_path / "figs" / "BKG_ZEN_0_20-image.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.shape[2] in (3, 4)


def test_selection_figure_skipped_without_column(bundle, tmp_path):
    from astropy.io import fits
    from astropy.table import Table

    with fits.open(bundle) as hdus:
        table = Table.read(hdus["OBS_INDEX"])
        table.remove_columns(["MUONEFF", "ONTIME"])
        hdus["OBS_INDEX"] = fits.table_to_hdu(table)
        (tmp_path / "no-muoneff").mkdir()
        hdus.writeto(tmp_path / "no-muoneff" / bundle.name)  # its own name: not "renamed"
    paths = plot_bundle(tmp_path / "no-muoneff" / bundle.name, tmp_path / "figs")
    names = {p.name for p in paths}
    assert "selection-muoneff.png" not in names
    assert "selection-time.png" in names  # from LIVETIME
    assert names == expected_names() - {"selection-muoneff.png"}


def test_curves_equal_model(model):
    offset_edges = np.sqrt(np.linspace(0, 9, 10))
    assert np.array_equal(model.binning["offset"], offset_edges)
    index = int(np.flatnonzero((offset_edges[:-1] <= 0.75) & (0.75 < offset_edges[1:]))[0])
    assert index == 0
    counts = np.rint(model.rate * model.kind.exposure(model.binning, model.observation_time))
    assert np.array_equal(counts, model.counts)

    edges, rate, error = curve_rate_vs_energy(model, 0.75)
    assert np.array_equal(edges, model.binning["energy"])
    assert np.array_equal(rate, model.rate[:, index])
    has = counts[:, index] > 0
    assert has.any()
    np.testing.assert_allclose(error[has], rate[has] / np.sqrt(counts[has, index]), rtol=1e-12)
    assert np.all(np.isnan(error[~has]))

    energy_edges = np.logspace(-1, 2, 20)
    e_index = int(np.flatnonzero((energy_edges[:-1] <= 3.0) & (3.0 < energy_edges[1:]))[0])
    edges, rate, error = curve_rate_vs_offset(model, 3.0)
    assert np.array_equal(edges, model.binning["offset"])
    assert np.array_equal(rate, model.rate[e_index, :])
    has = counts[e_index] > 0
    assert has.any()
    np.testing.assert_allclose(error[has], rate[has] / np.sqrt(counts[e_index, has]), rtol=1e-12)
    assert np.all(np.isnan(error[~has]))


@pytest.mark.parametrize(
    ("draw", "curve", "values", "along"),
    [
        (
            draw_rate_vs_energy,
            partial(curve_rate_vs_energy, energy_power=ENERGY_POWER),
            (0.25, 0.75, 1.25, 1.75),
            "offset",
        ),
        (draw_rate_vs_offset, curve_rate_vs_offset, (0.5, 1.0, 3.0, 10.0), "energy"),
    ],
)
def test_figure_draws_the_curves(plt, model, draw, curve, values, along):
    # one curve per distinct bin: 0.25 and 0.75 deg are both in [0, 1) deg
    edges = model.binning["offset"] if along == "offset" else model.binning["energy"]
    bins = [int(np.flatnonzero((edges[:-1] <= v) & (v < edges[1:]))[0]) for v in values]
    first = [v for k, v in enumerate(values) if bins[k] not in bins[:k]]
    assert len(first) == (3 if along == "offset" else 4)
    fig, ax = plt.subplots()
    try:
        returned = draw(ax, model, values)
        assert len(ax.patches) == len(returned) == len(first)
        assert len(ax.containers) == len(first)
        for patch, container, value, drawn in zip(ax.patches, ax.containers, first, returned):
            edges, rate, error = curve(model, value)
            assert all(
                np.array_equal(a, b, equal_nan=True) for a, b in zip(drawn, (edges, rate, error))
            )
            data = patch.get_data()
            assert np.array_equal(data.values, rate)
            assert np.array_equal(data.edges, edges)
            # error bars: one vertical segment per bin with counts, spanning rate ± error
            ok = np.isfinite(error) & (rate > 0)
            segments = container.lines[2][0].get_segments()
            assert len(segments) == ok.sum() > 0
            np.testing.assert_allclose([s[0][1] for s in segments], rate[ok] - error[ok])
            np.testing.assert_allclose([s[1][1] for s in segments], rate[ok] + error[ok])
        assert ax.get_yscale() == "log"
        assert "MeV" in ax.get_ylabel()
        assert len(ax.get_legend().get_texts()) == len(first)
    finally:
        plt.close(fig)


def test_rate_vs_energy_labels_offset_bin(plt, model):
    fig, ax = plt.subplots()
    try:
        draw_rate_vs_energy(ax, model, [0.75, 1.25])
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert texts == ["offset 0.00–1.00 deg", "offset 1.00–1.41 deg"]
        assert ax.get_xlabel() == "reconstructed energy (TeV)"
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"offsets_deg": (0.5, 5.0)}, r"offset 5\.0 deg"), ({"energies_tev": (500.0,)}, "energy 500")],
)
def test_outside_bins_raises(bundle, model, tmp_path, kwargs, match):
    with pytest.raises(BkgdaskError, match=match):
        plot_bundle(bundle, tmp_path / "figs", **kwargs)
    assert not (tmp_path / "figs").exists()


def test_curve_outside_bins_raises(model):
    with pytest.raises(BkgdaskError, match=r"offset 5\.0 deg"):
        curve_rate_vs_energy(model, 5.0)
    with pytest.raises(BkgdaskError, match=r"energy 500\.0 TeV"):
        curve_rate_vs_offset(model, 500.0)
    with pytest.raises(BkgdaskError, match=r"offset 3\.0 deg"):
        curve_rate_vs_energy(model, 3.0)  # the last upper edge is outside: bins are [lo, hi)


def test_not_a_bundle_raises(tmp_path):
    path = tmp_path / "not-a-bundle.fits"
    path.write_text("hello")
    with pytest.raises(BkgdaskError):
        plot_bundle(path, tmp_path / "figs")


def test_matplotlib_backend_untouched_by_import():
    import subprocess
    import sys

    code = "import sys, bkgdask, bkgdask.plotting; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.requires_data
def test_hess_figures(hess_dir, tmp_path):
    config = BuildConfig().updated({"selection": OFF, **SYNC})
    bundle = bkgdask.build(hess_dir, config).write(tmp_path / "hess-bkg.fits.gz")
    paths = plot_bundle(bundle, tmp_path / "figs")
    assert {p.name for p in paths} == expected_names()
    check_pngs(paths, min_size=1000)


def test_energy_curve_is_scaled_by_a_power_of_energy(model):
    edges, rate, error = curve_rate_vs_energy(model, 0.75)
    _, scaled, scaled_error = curve_rate_vs_energy(model, 0.75, energy_power=ENERGY_POWER)
    centres = np.sqrt(edges[:-1] * edges[1:])
    np.testing.assert_allclose(scaled, rate * centres**ENERGY_POWER, rtol=1e-12)
    np.testing.assert_allclose(scaled_error, error * centres**ENERGY_POWER, rtol=1e-12)


def test_smoothed_model_errors_are_the_fits(tmp_path):
    store = small_store(tmp_path / "store")
    config = BuildConfig().updated({"compute": {"scheduler": "sync", "progress": False}})
    bundle = bkgdask.build(store, config).write(tmp_path / "s.fits")
    smoothed = read_models(bundle)[0]["BKG_ZEN_20_40"]
    assert smoothed.error is not None
    assert np.array_equal(model_error(smoothed), smoothed.error)
    error = model_error(smoothed)
    assert np.all(np.isfinite(error) & (error > 0) & (error < smoothed.rate))
    # the fit's errors are smaller than the histogram's sqrt(counts) ones
    assert np.median(error / (smoothed.rate / np.sqrt(smoothed.counts))) < 1


def test_empty_bins_threshold_and_group_edges_are_marked(plt, model, bundle):
    import copy

    from bkgdask.io.index_table import read_index

    holed = copy.copy(model)
    holed.rate = model.rate.copy()
    holed.rate[[3, 7], 0] = [0.0, np.nan]  # one empty, one missing bin at 0.5 deg
    fig, ax = plt.subplots()
    try:
        draw_rate_vs_energy(ax, holed, [0.5], safe_threshold_tev=0.7)
        markers = [line for line in ax.lines if line.get_marker() == "v"]
        assert len(markers) == 1
        centres = np.sqrt(model.binning["energy"][:-1] * model.binning["energy"][1:])
        np.testing.assert_allclose(markers[0].get_xdata(), centres[[3, 7]])
        assert any(list(line.get_xdata()) == [0.7, 0.7] for line in ax.lines)
        assert "E$^{2.7}$" in ax.get_ylabel()
    finally:
        plt.close(fig)
    obs_index = read_index(bundle, "bundle OBS_INDEX", "OBS_INDEX")
    fig, ax = plt.subplots()
    try:
        draw_selection(ax, obs_index, "ZEN_PNT", "zenith", ["BKG_ZEN_20_40"], [20.0, 40.0])
        vertical = [line.get_xdata()[0] for line in ax.lines]
        assert vertical == [20.0, 40.0]
    finally:
        plt.close(fig)
