"""Figures of BKG_3D bundles: FoV images of the rate and its error, ALTAZ latitude profiles."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import bkgdask
from bkgdask.cli import cli
from bkgdask.config import BuildConfig
from bkgdask.errors import ConfigError
from bkgdask.models import read_models
from bkgdask.plotting import (
    draw_fov_image,
    draw_fov_images,
    draw_lat_profiles,
    lat_profile,
    lat_ratio,
    model_error,
    plot_bundle,
)
from bkgdask.sim.simulate3d import Simulation3DConfig, simulate_store_3d
from bkgdask.sim.truth import TruthModel
from bkgdask.sim.truth3d import Truth3D

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ENERGIES = (0.2, 1.0, 3.0)  # one per energy bin
BINNING = {
    "energy": {"edges": [0.1, 0.4, 1.5, 100.0], "unit": "TeV"},
    "fov_lon": {"min": "-2.5 deg", "max": "2.5 deg", "nbin": 20},
    "fov_lat": {"min": "-2.5 deg", "max": "2.5 deg", "nbin": 20},
}
#: The truth's rate grows by 30 % per deg of altitude in the ALTAZ FoV.
GRADIENT = 0.3


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """ALTAZ and RADEC bundles (and an ALTAZ histogram) of a store whose background is in Alt/Az."""
    tmp = tmp_path_factory.mktemp("plot3d")
    truth = Truth3D(gradient=GRADIENT, spectrum=TruthModel(norm=8e-4, offset_max=3.0))
    store = simulate_store_3d(tmp / "store", Simulation3DConfig(n_obs=4, seed=2, truth=truth))
    out = {}
    for key, alignment, smoothing in (
        ("ALTAZ", "ALTAZ", "pspline"),
        ("RADEC", "RADEC", "pspline"),
        ("ALTAZ-histogram", "ALTAZ", "none"),
    ):
        config = BuildConfig().updated(
            {
                "model": {"kind": "bkg_3d", "fov_alignment": alignment, "smoothing": smoothing},
                "binning": BINNING,
                "grouping": {"zenith": {"edges": [0, 90], "unit": "deg"}},
                "compute": {"scheduler": "sync", "progress": False},
            }
        )
        out[key] = bkgdask.build(store, config).write(tmp / f"{key}.fits")
    return out


def model_of(bundle):
    (model,) = read_models(bundle)[0].values()
    return model


@pytest.fixture
def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


@pytest.mark.parametrize("alignment", ["ALTAZ", "RADEC"])
def test_plot_writes_fov_figures(plt, bundles, tmp_path, alignment):
    import matplotlib.image as mpimg

    paths = plot_bundle(bundles[alignment], tmp_path / "figs", energies_tev=ENERGIES)
    names = {p.name for p in paths}
    figures = {"BKG_ZEN_0_90-fov.png"} | (
        {"BKG_ZEN_0_90-lat-profile.png"} if alignment == "ALTAZ" else set()
    )
    selection = {f"selection-{s}.png" for s in ("zenith", "azimuth", "muoneff", "time")}
    assert names == figures | selection
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 5000, path
    image = mpimg.imread(tmp_path / "figs" / "BKG_ZEN_0_90-fov.png")
    assert image.shape[0] > 3 * 300 and image.shape[1] > 800  # three rows of two panels


def test_fov_panels_are_not_blank(plt, bundles):
    """Inside each image panel the rendered pixels take many colours (a constant image: one)."""
    fig = plt.figure()
    try:
        meshes = draw_fov_images(fig, model_of(bundles["RADEC"]), ENERGIES)
        assert len(meshes) == 6
        fig.canvas.draw()
        canvas = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        for mesh in meshes:
            box = mesh.axes.get_window_extent()
            rows = slice(int(canvas.shape[0] - box.y1) + 2, int(canvas.shape[0] - box.y0) - 2)
            panel = canvas[rows, int(box.x0) + 2 : int(box.x1) - 2]
            assert len(np.unique(panel.reshape(-1, 3), axis=0)) > 30, mesh.axes.get_title()
    finally:
        plt.close(fig)


@pytest.mark.parametrize("key", ["ALTAZ", "ALTAZ-histogram"])
def test_fov_images_are_the_models_rate_and_error(plt, bundles, key):
    model = model_of(bundles[key])
    assert model.smoothed == (key == "ALTAZ")
    assert model.counts is not None and model.counts.sum() > 10_000
    fig, axes = plt.subplots(1, 2)
    try:
        for index, energy in enumerate(ENERGIES):
            rate_mesh = draw_fov_image(axes[0], model, energy, "rate")
            error_mesh = draw_fov_image(axes[1], model, energy, "relative-error")
            counts, rate = model.counts[index], model.rate[index]
            drawn = np.ma.asarray(rate_mesh.get_array()).reshape(rate.T.shape)
            np.testing.assert_array_equal(drawn.filled(0), rate.T)
            assert np.ptp(drawn.compressed()) > 0.5 * drawn.max()  # not constant
            error = np.ma.asarray(error_mesh.get_array()).reshape(rate.T.shape)
            has = counts.T > 0
            expected = (model_error(model)[index] / rate).T
            if not model.smoothed:  # the histogram's Poisson error; else the fit's
                np.testing.assert_allclose(expected[has], 1 / np.sqrt(counts.T[has]), rtol=1e-12)
            np.testing.assert_allclose(error[has], expected[has], rtol=1e-12)
            assert np.all(error.mask[~has])  # empty pixels: no error, drawn grey
            assert np.ptp(error.compressed()) > 0
        assert "empty pixels" in axes[1].get_title()  # the highest energy bin has some
        hatched = [c for c in axes[0].collections if c.get_hatch()][-1]  # the last bin's
        assert np.ma.count(hatched.get_array()) == np.sum(model.counts[-1] == 0) > 0
    finally:
        plt.close(fig)


@pytest.mark.parametrize("key", ["ALTAZ-histogram", "ALTAZ"])
def test_lat_profile_shows_the_altitude_gradient(plt, bundles, key):
    model = model_of(bundles[key])
    strip = np.abs(0.5 * (model.binning["fov_lon"][:-1] + model.binning["fov_lon"][1:])) <= 0.5
    edges, rate, error = lat_profile(model, 1.0)
    counts, exposure = model.counts[1][strip].sum(axis=0), model.exposure[1][strip].sum(axis=0)
    if not model.smoothed:  # a histogram's exposure-weighted mean: the strip's counts / exposure
        np.testing.assert_allclose(rate, counts / exposure, rtol=1e-9)
        np.testing.assert_allclose(error, np.sqrt(counts) / exposure, rtol=1e-9)
    _, ratio, ratio_error = lat_ratio(model, 1.0)
    centres = 0.5 * (edges[10:-1] + edges[11:])
    truth = (1 + GRADIENT * centres) / (1 - GRADIENT * centres)
    assert np.all(np.abs(ratio - truth) < 4 * ratio_error), (ratio, truth, ratio_error)
    assert ratio[-4:].mean() > 1.5  # the gradient, far beyond the errors
    fig = plt.figure()
    try:
        curves = draw_lat_profiles(fig, model, ENERGIES)
        top, bottom = fig.axes
        assert len(top.patches) == len(bottom.patches) == len(curves) // 2 == 3
        np.testing.assert_array_equal(top.patches[1].get_data().values, rate)
        segments = top.containers[1].lines[2][0].get_segments()  # error bars of 1 TeV
        np.testing.assert_allclose([s[1][1] - s[0][1] for s in segments], 2 * error[counts > 0])
        np.testing.assert_array_equal(bottom.patches[1].get_data().values, ratio)
    finally:
        plt.close(fig)


def test_energy_outside_the_bins_writes_nothing(bundles, tmp_path):
    with pytest.raises(ConfigError, match="energy 500"):
        plot_bundle(bundles["ALTAZ"], tmp_path / "figs", energies_tev=(1.0, 500.0))
    assert not (tmp_path / "figs").exists()


def test_cli_plots_3d_bundle(bundles, tmp_path):
    result = CliRunner().invoke(
        cli, ["plot", str(bundles["ALTAZ"]), "-o", str(tmp_path / "figs"), "--energies", "0.2,1"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "figs" / "BKG_ZEN_0_90-lat-profile.png").stat().st_size > 5000
