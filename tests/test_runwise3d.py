"""Run-wise BKG_3D models: group rates interpolated per run through the same seam as BKG_2D."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from test_smoothing3d import evaluator, integrate

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.engine.runwise import interpolate_log
from bkgdask.models import read_models
from bkgdask.models.table_kind import BUILD_COLUMNS
from bkgdask.sim.simulate3d import Simulation3DConfig, simulate_store_3d
from bkgdask.sim.truth import TruthModel
from bkgdask.sim.truth3d import Truth3D

BINNING = {
    "energy": {"edges": [0.1, 0.4, 100.0], "unit": "TeV"},
    "fov_lon": {"min": "-2 deg", "max": "2 deg", "nbin": 6},
    "fov_lat": {"min": "-2 deg", "max": "2 deg", "nbin": 6},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Runs at Dec -30 deg over +-3 h of hour angle: zenith angles of about 7 to 45 deg."""
    truth = Truth3D(
        alignment="ALTAZ", gradient=0.25, spectrum=TruthModel(norm=8e-4, offset_max=3.0)
    )
    config = Simulation3DConfig(n_obs=8, seed=5, duration=600.0, truth=truth)
    return simulate_store_3d(tmp_path_factory.mktemp("runwise3d") / "store", config)


def build(store, smoothing: str):
    config = BuildConfig().updated(
        {
            "model": {"kind": "bkg_3d", "fov_alignment": "altaz", "smoothing": smoothing},
            "binning": BINNING,
            "grouping": {"zenith": {"edges": [0, 25, 90], "unit": "deg"}, "interpolate": True},
            "compute": {"scheduler": "sync", "progress": False},
        }
    )
    return bkgdask.build(store, config)


def test_run_at_a_group_node_gets_the_group_model_and_others_lie_between(store):
    result = build(store, "none")
    assert len(result.totals) == 2
    rates = {label: result.kind.finalize(total) for label, total in result.totals.items()}
    low, high = np.minimum(*rates.values()), np.maximum(*rates.values())
    for obs_id in result.assignment:
        rate = result.run_rate(obs_id, rates)
        assert rate.shape == (2, 6, 6)
        assert np.all(rate >= low * (1 - 1e-12)) and np.all(rate <= high * (1 + 1e-12))
    for label in result.totals:
        obs_id = result.totals[label].attrs["obs_ids"][0]
        node = result._nodes[label]["zenith"]
        result.values["zenith"][result._row[obs_id]] = np.rad2deg(np.arccos(node))
        np.testing.assert_allclose(result.run_rate(obs_id, rates), rates[label], rtol=1e-12)


@pytest.mark.parametrize("smoothing", ["none", "pspline"])
def test_gammapy_gives_each_run_its_own_altaz_model(store, tmp_path, smoothing):
    from gammapy.data import DataStore as GammapyStore
    from gammapy.irf import Background3D

    result = build(store, smoothing)
    path = result.write(tmp_path / "bkg.fits.gz")
    hdus = result.model_hdus()
    gp = GammapyStore.from_file(path)
    for obs_id in gp.obs_ids:
        bkg = gp.obs(obs_id, required_irf=[]).bkg
        assert isinstance(bkg, Background3D) and bkg.fov_alignment.name == "ALTAZ"
        hdu = hdus[f"run-{obs_id}"]
        assert hdu.name == f"BKG_RUN_{obs_id}"
        np.testing.assert_allclose(bkg.data, hdu.data["BKG"][0].T, rtol=1e-6)
        assert np.all(np.isfinite(bkg.data)) and np.any(bkg.data > 0)
    assert len(gp.obs_ids) == 8


def interpolation_terms(header) -> list[list[tuple[str, float]]]:
    """Per grouping column, the (group HDU, weight) terms a run's header names."""
    terms: dict[str, list] = {}
    k = 1
    while f"INT{k}HDU" in header:
        term = (header[f"INT{k}HDU"], header[f"INT{k}WGT"])
        terms.setdefault(header[f"INT{k}COL"], []).append(term)
        k += 1
    return list(terms.values())


@pytest.mark.parametrize("smoothing", ["none", "pspline"])
def test_run_hdus_hold_bkg_alone_and_name_the_group_models_of_their_build(
    store, tmp_path, smoothing
):
    from gammapy.data import DataStore as GammapyStore

    result = build(store, smoothing)
    path = result.write(tmp_path / "bkg.fits.gz")
    rates = result.rates
    groups = {g.hdu_name for g in result.groups.values()}
    gp = GammapyStore.from_file(path)
    between = 0
    with fits.open(path) as hdus:
        build_rates = {name: hdus[name].data["BKG_RATE"][0].T for name in groups}
        for name in groups:
            formats = {c.name: c.format[-1] for c in hdus[name].columns}
            assert formats["BKG"] == "E"
            assert all(formats[column] == "D" for column, _ in BUILD_COLUMNS)
        for obs_id in result.assignment:
            run = hdus[f"BKG_RUN_{obs_id}"]
            assert run.columns.names == [
                *(f"{axis}_{end}" for axis in ("ENERG", "DETX", "DETY") for end in ("LO", "HI")),
                "BKG",
            ]
            assert run.columns["BKG"].format[-1] == "E"
            # the header finds the build columns: the run's bin-average rate from its groups'
            home, terms = run.header["BKGGROUP"], interpolation_terms(run.header)
            assert {home} | {name for pairs in terms for name, _ in pairs} <= groups
            between += len(terms[0]) == 2
            rate = result.run_rate(obs_id, rates)
            build_rate = rate if smoothing == "none" else rate.bin_average()
            rebuilt = interpolate_log(home, terms, build_rates)
            np.testing.assert_allclose(rebuilt, build_rate, rtol=1e-12)
            # gammapy reads the float32 model: it predicts as the float64 one would
            bkg = gp.obs(obs_id, required_irf=[]).bkg
            exact = rate if smoothing == "none" else result.kind.node_table(rate)[-1]
            np.testing.assert_allclose(bkg.data, exact, rtol=1e-7)
            exact_bkg = type(bkg)(axes=bkg.axes, data=exact, unit=bkg.unit, fov_alignment="ALTAZ")
            energy, fov = np.logspace(-1, 2, 7), np.linspace(-2, 2, 5)
            np.testing.assert_allclose(
                integrate(evaluator(bkg), energy, fov, fov),
                integrate(evaluator(exact_bkg), energy, fov, fov),
                rtol=1e-6,
            )
    assert between > 0  # runs between the two groups' nodes
    # bkgdask's readers of build columns read the group models only
    models, _ = read_models(path)
    assert set(models) == groups and all(m.counts is not None for m in models.values())
