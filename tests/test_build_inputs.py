"""Event filters, point-like stores and the data's extent, through the whole build."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from conftest import ROOT, data_dir
from helpers import make_store, random_run

from bkgdask.config import BuildConfig
from bkgdask.engine.build import build
from bkgdask.errors import ConfigError, RunError, SelectionError
from bkgdask.io.store import DataStore
from bkgdask.models import read_models

CLASSES = np.array(["gamma", "hadron", "muon"])
SYNC = {
    "compute": {"scheduler": "sync", "progress": False},
    "grouping": {"zenith": {"edges": [0, 90], "unit": "deg"}},
}


def tagged_store(path, n=600, max_offset=2.9, with_columns=(100, 101)):
    """Two runs whose EVENTS have MC_ID (int), GAMMANESS (float) and CLASS (string) columns.

    Returns the store and, per run, the written columns (with ENERGY and offsets).
    """
    runs, truth = [], {}
    for obs_id in (100, 101):
        run, offset = random_run(obs_id, 40.0 * (obs_id - 99), -20.0, n, seed=obs_id,
                                 max_offset=max_offset)  # fmt: skip
        runs.append(run)
        rng = np.random.default_rng(obs_id)
        truth[obs_id] = {
            "MC_ID": rng.integers(1, 4, n).astype(np.int32),
            "GAMMANESS": rng.uniform(size=n),
            "CLASS": CLASSES[rng.integers(0, 3, n)],
            "offset": offset,
        }
    make_store(path, runs)
    store = DataStore.open(path)
    for obs_id, (events_file, hdu) in store.hdu_locations("events").items():
        if obs_id in with_columns:
            _add_columns(events_file, hdu, truth[obs_id])
    return path, truth


def _add_columns(path, hdu_name, values):
    with fits.open(path) as hdus:
        events = hdus[hdu_name]
        columns = [
            *events.columns,
            fits.Column("MC_ID", "J", array=values["MC_ID"]),
            fits.Column("GAMMANESS", "E", array=values["GAMMANESS"].astype(np.float32)),
            fits.Column("CLASS", "8A", array=values["CLASS"]),
        ]
        new = fits.BinTableHDU.from_columns(columns, header=events.header)
        out = fits.HDUList([hdus[0].copy(), new, *[h.copy() for h in hdus[2:]]])
        out.writeto(path, overwrite=True)


def _build(store, **changes):
    return build(store, BuildConfig().updated({**SYNC, **changes}))


@pytest.mark.parametrize(
    "expression, keep",
    [
        ("MC_ID == 1", lambda t: t["MC_ID"] == 1),
        ("GAMMANESS > 0.5 and MC_ID != 3", lambda t: (t["GAMMANESS"] > 0.5) & (t["MC_ID"] != 3)),
        ("CLASS == 'hadron'", lambda t: t["CLASS"] == "hadron"),
    ],
    ids=["int", "float", "string"],
)
def test_filters_on_int_float_string_columns(tmp_path, expression, keep):
    store, truth = tagged_store(tmp_path / "store")
    result = _build(store, events=expression)
    (total,) = result.totals.values()
    kept = sum(int(keep(t).sum()) for t in truth.values())
    assert 0 < kept < 1200
    assert total.attrs["n_kept"] == kept
    assert total.attrs["n_events"] == 1200
    unfiltered = _build(store)
    (all_events,) = unfiltered.totals.values()
    assert 0 < total["counts"].values.sum() < all_events["counts"].values.sum()
    (hdu,) = result.model_hdus().values()
    assert hdu.header["EVTFILT"] == expression
    assert hdu.header["NKEPT"] == kept
    assert hdu.header["HDUCLAS3"] == "FULL-ENCLOSURE"
    assert "EVTFILT" not in next(iter(unfiltered.model_hdus().values())).header


def test_filter_on_a_missing_column_names_column_run_and_file(tmp_path):
    store, _ = tagged_store(tmp_path / "store", with_columns=(100,))
    with pytest.raises(RunError) as info:
        _build(store, events="MC_ID == 1")
    message = str(info.value)
    assert info.value.obs_id == 101
    assert "'MC_ID'" in message and "run 101" in message and "EVENTS" in message
    assert str(info.value.path).endswith(".fits.gz") and "101" in str(info.value.path)


def test_filter_keeping_nothing_of_one_run_warns_and_counts_it(tmp_path, caplog):
    store, _ = tagged_store(tmp_path / "store")
    # Run 100 lies at RA 40, run 101 at RA 80: keep only the events of run 101.
    with caplog.at_level(logging.WARNING, logger="bkgdask"):
        result = _build(store, events="RA > 60")
    (total,) = result.totals.values()
    assert total.attrs["n_runs"] == 2 and total.attrs["empty_runs"] == [100]
    assert total.attrs["observation_time"] == pytest.approx(2 * 1680.0)
    assert "keeps no event of 1 run(s), counted with zero events: 100" in caplog.text


def test_filter_keeping_nothing_at_all_is_an_error(tmp_path):
    store, _ = tagged_store(tmp_path / "store")
    with pytest.raises(SelectionError, match="keeps no event of any of the 2 selected runs"):
        _build(store, events="MC_ID > 10")


def test_bad_filter_syntax_is_a_config_error():
    with pytest.raises(ConfigError, match="events"):
        BuildConfig().updated({"events": "MC_ID =="})


def test_offset_bins_beyond_the_events_are_cut(tmp_path, caplog):
    store, _ = tagged_store(tmp_path / "store", max_offset=1.5)
    edges = {"edges": [0, 0.5, 1.0, 1.4, 2.0, 2.5, 3.0], "unit": "deg"}
    with caplog.at_level(logging.WARNING, logger="bkgdask"):
        result = _build(store, binning={"offset": edges})
    assert "offset bins 2-3 deg cut, beyond the data (events reach 1.5" in caplog.text
    (hdu,) = result.model_hdus().values()
    assert hdu.data["CNT_THETA_HI"][0][-1] == 2.0  # the build bins, cut
    assert hdu.data["THETA_HI"][0][-1] == pytest.approx(2.0, abs=1e-3)  # gammapy's nodes
    assert 1.45 < hdu.header["OFFMAX"] <= 1.5
    model = next(iter(read_models(result.write(tmp_path / "b.fits"))[0].values()))
    assert model.binning["offset"].tolist() == [0, 0.5, 1.0, 1.4, 2.0]
    assert model.counts[:, -1].sum() > 0  # 1.4-2.0 kept: partly inside the data


def bkgdask_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "bkgdask.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


POINT_LIKE = {"veritas": "veritas/crab-point-like-ED", "magic": "magic/rad_max"}


@pytest.mark.requires_data
@pytest.mark.parametrize("name", sorted(POINT_LIKE))
def test_point_like_refused_then_built_labelled(tmp_path, name):
    store = data_dir() / POINT_LIKE[name]
    out = tmp_path / f"{name}.fits"
    refused = bkgdask_cli("build", str(store), "-o", str(out), "--scheduler", "sync")
    assert refused.returncode == 1
    error = refused.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: ") and "point-like" in error and "--allow-point-like" in error
    assert not out.exists()
    proc = bkgdask_cli("build", str(store), "-o", str(out), "--scheduler", "sync",
                       "--no-progress", "--allow-point-like")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "is not excluded" in proc.stderr
    models, _ = read_models(out)
    assert models
    for model in models.values():
        assert model.header["HDUCLAS3"] == "POINT-LIKE" and model.header["TGTEXCL"] is False
        counts = model.counts
        assert counts[:, -1].sum() > 0, "outer offset bin all zero"
        assert model.binning["offset"][-2] < model.header["OFFMAX"]


@pytest.mark.requires_data
def test_cta_1dc_found_from_top_folder_and_index_printed(tmp_path):
    top = data_dir() / "cta-1dc"
    out = tmp_path / "cta.fits"
    options = ["--scheduler", "sync", "--no-progress", "--zenith-edges", "0,90"]
    proc = bkgdask_cli("build", str(top), "-o", str(out), *options, "--events", "MC_ID == 1")
    assert proc.returncode == 0, proc.stderr
    index = top / "index" / "gps" / "hdu-index.fits.gz"
    assert f"bkgdask: index {index}" in proc.stderr.splitlines()
    (model,) = read_models(out)[0].values()
    assert model.header["EVTFILT"] == "MC_ID == 1"
    assert 0 < model.header["NKEPT"] < model.header["NEVENTS"]


@pytest.mark.requires_data
def test_cta_1dc_background_events_match_the_irf(capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import cta1dc_irf_background as benchmark
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    comparison = benchmark.compare(data_dir() / "cta-1dc")
    well = comparison["well_sampled"]
    assert well.sum() >= 10
    np.testing.assert_allclose(comparison["ratio"][well], 1.0, atol=0.05)
    assert "| 0.05-0.1 |" in benchmark.table(comparison)
