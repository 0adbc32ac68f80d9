"""End-to-end on H.E.S.S. DL3 DR1: models against a direct computation, bundle read by gammapy."""

from __future__ import annotations

import itertools

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord
from gammapy.data import DataStore as GammapyDataStore
from helpers import OFF

import bkgdask
from bkgdask.config import BuildConfig

pytestmark = pytest.mark.requires_data

ZENITH_EDGES = [0, 20, 40, 90]


def tutorial_estimate(hess_dir, obs_ids, energy_edges, offset_edges):
    """The tutorial's estimator computed directly with gammapy and astropy.

    Exact ring solid angle and GTI-sum time; np.histogram2d on gammapy's events
    inside the GTIs (a few events per run lie up to 0.2 s after a GTI's stop).
    """
    store = GammapyDataStore.from_dir(hess_dir)
    counts = np.zeros((len(energy_edges) - 1, len(offset_edges) - 1))
    exposure = np.zeros_like(counts)
    cos_edges = np.cos(offset_edges * u.deg)
    solid_angle = (2 * np.pi * (cos_edges[:-1] - cos_edges[1:])) * u.sr
    energy_width = np.diff(energy_edges * u.TeV).to(u.MeV)
    for obs in store.get_observations(obs_ids, required_irf=[]):
        meta = obs.events.table.meta
        pointing = SkyCoord(meta["RA_PNT"], meta["DEC_PNT"], unit="deg", frame="icrs")
        # float64 positions: gammapy's events.radec keeps the file's float32.
        events = obs.events
        inside = np.zeros(len(events.table), dtype=bool)
        for start, stop in zip(obs.gti.time_start, obs.gti.time_stop):
            inside |= (events.time >= start) & (events.time <= stop)
        table = events.table[inside]
        radec = SkyCoord(table["RA"].astype(float), table["DEC"].astype(float), unit="deg")
        offset = radec.separation(pointing).deg
        counts += np.histogram2d(
            table["ENERGY"].quantity.to_value("TeV"), offset, bins=(energy_edges, offset_edges)
        )[0]
        time = obs.observation_time_duration
        exposure += (time * energy_width[:, None] * solid_angle[None, :]).to_value("s MeV sr")
    return counts, np.nan_to_num(counts / exposure)


@pytest.fixture(scope="module")
def hess_build(hess_dir, tmp_path_factory):
    """The histogram estimate (``smoothing: none``): the tutorial's estimator, exactly."""
    config = BuildConfig().updated(
        {
            "selection": OFF,
            "model": {"smoothing": "none"},
            "compute": {"scheduler": "sync", "progress": False},
        }
    )
    result = bkgdask.build(hess_dir, config)
    bundle = result.write(tmp_path_factory.mktemp("bundle") / "hess-bkg.fits.gz")
    return result, bundle, config


def test_models_equal_direct_computation(hess_build, hess_dir):
    result, bundle, config = hess_build
    binning = config.binning_of_kind()
    obs_table = GammapyDataStore.from_dir(hess_dir).obs_table
    off = obs_table[obs_table["TARGET_NAME"] == "Off data"]
    assert len(off) == 45
    read_back = GammapyDataStore.from_file(bundle)
    for lo, hi in itertools.pairwise(ZENITH_EDGES):
        ids = off["OBS_ID"][(off["ZEN_PNT"] >= lo) & (off["ZEN_PNT"] < hi)].tolist()
        counts, rate = tutorial_estimate(hess_dir, ids, binning["energy"], binning["offset"])
        total = result.totals[f"zen-{lo}-{hi}"]
        assert total.attrs["n_runs"] == len(ids)
        np.testing.assert_array_equal(total["counts"].values, counts)
        model = read_back.obs(ids[0], required_irf=["bkg"]).bkg
        assert model.unit == u.Unit("s-1 MeV-1 sr-1")
        assert counts.sum() > 10_000
        np.testing.assert_allclose(model.data, rate, rtol=1e-7, atol=0)  # BKG is float32
        np.testing.assert_allclose(model.axes["energy"].edges.to_value("TeV"), binning["energy"])
        np.testing.assert_allclose(model.axes["offset"].edges.to_value("deg"), binning["offset"])


def test_every_observation_gets_its_zenith_model(hess_build, hess_dir):
    result, bundle, _ = hess_build
    assert not bundle.resolve().is_relative_to(hess_dir.resolve())
    original = GammapyDataStore.from_dir(hess_dir)
    store = GammapyDataStore.from_file(bundle)
    hdu = store.hdu_table
    bkg = hdu[hdu["HDU_TYPE"] == "bkg"]
    assert len(store.obs_table) == 105
    assert sorted(bkg["OBS_ID"].tolist()) == sorted(store.obs_table["OBS_ID"].tolist())
    assert set(bkg["HDU_CLASS"]) == {"bkg_2d"}
    models = {label: model.data for label, model in result.models.items()}
    for row in store.obs_table:
        obs_id, zenith = int(row["OBS_ID"]), float(row["ZEN_PNT"])
        label = next(
            f"zen-{lo}-{hi}" for lo, hi in itertools.pairwise(ZENITH_EDGES) if lo <= zenith < hi
        )
        obs = store.obs(obs_id)
        np.testing.assert_array_equal(obs.bkg.data, models[label])
        assert row["BKG_HDU"] == result.groups[label].hdu_name
        # Events and IRFs come from the original files.
        reference = original.obs(obs_id, required_irf=[])
        assert len(obs.events.table) == len(reference.events.table)
        assert obs.aeff is not None and obs.edisp is not None and obs.psf is not None
        assert obs.gti.time_sum == reference.gti.time_sum


def test_bundle_keywords(hess_build):
    from astropy.io import fits

    result, bundle, _ = hess_build
    with fits.open(bundle) as hdus:
        assert [h.name for h in hdus[:3]] == ["PRIMARY", "HDU_INDEX", "OBS_INDEX"]
        header = hdus["BKG_ZEN_20_40"].header
        total = result.totals["zen-20-40"]
        assert header["ZEN_LO"] == 20 and header["ZEN_HI"] == 40
        assert header["NRUNS"] == total.attrs["n_runs"] == 25
        assert header["OBSTIME"] == pytest.approx(total.attrs["observation_time"])
        assert header["BKGDVER"] == bkgdask.__version__
        assert header["HDUCLAS2"] == "BKG" and header["HDUCLAS3"] == "FULL-ENCLOSURE"


def test_schedulers_agree(hess_dir):
    """sync, threads, forked processes and a LocalCluster give the same counts and rates."""
    results = {}
    for scheduler in ("sync", "threads", "processes", "local"):
        config = BuildConfig().updated(
            {
                "selection": OFF,
                "compute": {
                    "scheduler": scheduler,
                    "n_workers": 2,
                    "progress": False,
                    "dashboard_address": "127.0.0.1:0",
                },
            }
        )
        results[scheduler] = bkgdask.build(hess_dir, config)
    reference = results.pop("sync")
    for scheduler, result in results.items():
        assert result.totals.keys() == reference.totals.keys()
        for label, total in result.totals.items():
            xr.testing.assert_identical(total["counts"], reference.totals[label]["counts"])
            np.testing.assert_allclose(
                result.models[label].data, reference.models[label].data, rtol=1e-12, atol=0
            )
            assert total.attrs["obs_ids"] == reference.totals[label].attrs["obs_ids"], scheduler


def test_validation_side_by_side_with_official_models(hess_build, hess_dir, tmp_path):
    """bkgdask's and the official H.E.S.S. models on the same source runs, targets excluded."""
    import json

    from click.testing import CliRunner

    from bkgdask.cli import cli

    _, bundle, _ = hess_build
    out = tmp_path / "report"
    args = ["validate", str(bundle), "--store", str(hess_dir), "-o", str(out),
            "--select", "TARGET_NAME == 'Crab' or TARGET_NAME == 'PKS 2155-304 (steady)'",
            "--max-runs", "4", "--compare-store-models",
            "--exclude", "icrs;circle(83.633,22.014,0.3)",
            "--exclude", "icrs;circle(329.717,-30.226,0.3)"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    ours, official = report["runs"]["bkgdask"], report["runs"]["store-bkg"]
    assert [r["obs_id"] for r in ours["runs"]] == [r["obs_id"] for r in official["runs"]]
    for a, b in zip(ours["runs"], official["runs"]):
        # Same runs, same energy threshold, same pixels: only the model differs.
        assert a["energy_threshold_tev"] == b["energy_threshold_tev"]
        assert a["counts"] == b["counts"]
        assert 0.5 < a["ratio"] < 2.0 and 0.5 < b["ratio"] < 2.0
    assert ours["significance"]["n_pixels"] == official["significance"]["n_pixels"] > 10_000
    for section in (ours, official):
        assert abs(section["significance"]["mean"]) < 0.3
        assert 0.8 < section["significance"]["width"] < 1.4
    assert "store-bkg" in (out / "report.md").read_text()
