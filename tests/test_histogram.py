"""The per-run kernel on stores with known contents: RA=0, a pole, several GTIs."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord
from helpers import make_store, random_run

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.engine.tasks import RunBatch, histogram_run, histogram_runs
from bkgdask.io.store import DataStore
from bkgdask.models import get_kind
from bkgdask.models.binning import Binning
from bkgdask.models.kernel2d import (
    HAV32_FLOOR,
    HAV32_TOLERANCE,
    count_events,
    hav_edges,
    haversine,
    haversine32,
    max_haversine,
    offset_bins,
    separation_deg,
)
from bkgdask.sim.store_writer import events_from_offsets

BINNING = Binning.default()
SYNC = {"compute": {"scheduler": "sync", "progress": False}}


def expected_counts(run, offsets) -> np.ndarray:
    """Counts from the placed offsets and the file's float32 energies."""
    energy = run.energy.astype(np.float32).astype(np.float64)
    return np.histogram2d(energy, offsets, bins=(BINNING["energy"], BINNING["offset"]))[0]


def _one_run_partial(tmp_path, run):
    store = DataStore.open(make_store(tmp_path / "store", [run]))
    zenith = dict(zip(store.obs_ids.tolist(), store.zenith_deg().tolist()))
    (run_input,) = store.run_inputs(store.obs_ids, zenith)
    return histogram_run(run_input, get_kind("bkg_2d"), BINNING)


@pytest.mark.parametrize(
    ("ra_pnt", "dec_pnt"),
    [(359.7, -20.0), (0.2, 45.0), (123.0, 90.0), (0.0, -90.0), (200.0, 0.0)],
    ids=["ra-wrap-high", "ra-wrap-low", "north-pole", "south-pole", "equator"],
)
def test_offsets_exact_across_ra0_and_poles(tmp_path, ra_pnt, dec_pnt):
    run, offsets = random_run(7, ra_pnt, dec_pnt, 3000, seed=3, binning=BINNING)
    if ra_pnt > 359 or ra_pnt < 1:
        assert run.ra.min() < 1 and run.ra.max() > 359, "events straddle RA = 0"
    partial = _one_run_partial(tmp_path, run)
    np.testing.assert_array_equal(partial["counts"].values, expected_counts(run, offsets))
    assert partial["counts"].sum() > 2500


def test_several_gtis_time_is_their_sum(tmp_path):
    gti = [(1e8, 1e8 + 600.0), (1e8 + 1000.0, 1e8 + 1300.0), (1e8 + 2000.0, 1e8 + 2050.0)]
    run, _ = random_run(8, 30.0, -10.0, 500, gti=gti, seed=4)
    partial = _one_run_partial(tmp_path, run)
    assert partial.attrs["observation_time"] == pytest.approx(950.0, rel=1e-12)
    widths = np.diff(BINNING["energy"] * u.TeV).to_value(u.MeV)
    cos = np.cos(np.deg2rad(BINNING["offset"]))
    expected = 950.0 * widths[:, None] * (2 * np.pi * (cos[:-1] - cos[1:]))[None, :]
    np.testing.assert_allclose(partial["exposure"].values, expected, rtol=1e-12)


def test_labelled_output(tmp_path):
    run, _ = random_run(9, 10.0, 10.0, 200, zenith=33.0, seed=5)
    partial = _one_run_partial(tmp_path, run)
    assert partial["counts"].dims == ("energy", "offset")
    assert partial["counts"].dtype == np.int64
    assert partial["exposure"].dtype == np.float64
    assert partial["exposure"].attrs["units"] == "s MeV sr"
    np.testing.assert_array_equal(partial["energy_lo"].values, BINNING["energy"][:-1])
    np.testing.assert_array_equal(partial["offset_hi"].values, BINNING["offset"][1:])
    assert partial.attrs["obs_id"] == 9
    assert partial.attrs["zenith"] == pytest.approx(33.0)
    assert partial.attrs["n_events"] == 200


def test_separation_matches_astropy_float64():
    rng = np.random.default_rng(1)
    lon1, lon2 = rng.uniform(0, 360, 2000), rng.uniform(0, 360, 2000)
    lat1 = np.concatenate([[90.0, -90.0, 89.9999], rng.uniform(-90, 90, 1997)])
    lat2 = rng.uniform(-90, 90, 2000)
    ours = np.concatenate(
        [separation_deg(a, b, c, d) for a, b, c, d in zip(lon1, lat1, lon2, lat2)]
    )
    theirs = SkyCoord(lon1, lat1, unit="deg").separation(SkyCoord(lon2, lat2, unit="deg")).deg
    fov = theirs < 90  # haversine is exact in the field of view; not used near 180 deg
    np.testing.assert_allclose(ours[fov], theirs[fov], rtol=0, atol=1e-10)
    # Tiny separations keep full float64 precision, across RA = 0 too.
    tiny = separation_deg(359.9999999, 0.0, np.array([0.0000001]), np.array([0.0]))
    assert tiny[0] == pytest.approx(2e-7, rel=1e-9)


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
def test_bins_are_half_open(compiled):
    energy_edges, offset_edges = np.array([1.0, 2.0, 4.0]), np.array([0.0, 1.0, 2.0])
    energy = np.array([1.0, 2.0, 3.999, 4.0, 0.5, 1.5, 1.5])
    # Pointing at (0, 0), events on the meridian: the offset is the declination.
    dec = np.array([0.0, 1.0, 1.999, 0.5, 0.5, 2.0, -0.5])
    counts = count_events(
        energy,
        np.zeros_like(dec),
        dec,
        0.0,
        0.0,
        energy_edges,
        hav_edges(offset_edges),
        compiled=compiled,
    )
    np.testing.assert_array_equal(counts, [[2, 0], [0, 2]])


def test_compiled_and_numpy_kernels_agree():
    rng = np.random.default_rng(4)
    n = 50_000
    for ra_pnt, dec_pnt in ((359.9, -30.0), (10.0, 90.0), (200.0, -89.5)):
        ra = (ra_pnt + rng.normal(0, 3, n)) % 360
        dec = np.clip(dec_pnt + rng.normal(0, 2, n), -90, 90)
        energy = 10 ** rng.uniform(-1.5, 2.5, n)
        edges = (BINNING["energy"], hav_edges(BINNING["offset"]))
        fused = count_events(energy, ra, dec, ra_pnt, dec_pnt, *edges, compiled=True)
        vectorised = count_events(energy, ra, dec, ra_pnt, dec_pnt, *edges, compiled=False)
        np.testing.assert_array_equal(fused, vectorised)
        assert fused.sum() > n / 4
        largest = [max_haversine(ra_pnt, dec_pnt, ra, dec, compiled=c) for c in (True, False)]
        assert largest[0] == pytest.approx(largest[1], rel=1e-14)
        assert largest[1] == np.max(haversine(ra_pnt, dec_pnt, ra, dec))


def test_float32_offsets_give_the_float64_bins():
    """Events on, just beside and between the offset edges: float32 where its bound
    allows, float64 near the edges, the bins of float64 (which float32 alone misses)."""
    edges = hav_edges(BINNING["offset"])
    rng = np.random.default_rng(12)
    for ra_pnt, dec_pnt in ((359.95, -30.0), (83.6, 22.0), (200.0, 76.0), (10.0, -76.5)):
        shift = rng.choice([-1e-12, 0.0, 1e-12, -3e-6, 3e-6, -3e-5, 3e-5], 50 * edges.size)
        on_edges = np.repeat(BINNING["offset"], 50) * (1 + shift)
        theta = np.concatenate([on_edges, rng.uniform(0, 3.5, 5000)])
        ra, dec = events_from_offsets(ra_pnt, dec_pnt, theta, rng.uniform(0, 360, theta.size))
        rough, exact = haversine32(ra_pnt, dec_pnt, ra, dec), haversine(ra_pnt, dec_pnt, ra, dec)
        assert np.all(np.abs(rough - exact) <= (HAV32_TOLERANCE * exact + HAV32_FLOOR) / 4)
        expected = np.searchsorted(edges, exact, "right") - 1
        np.testing.assert_array_equal(offset_bins(ra_pnt, dec_pnt, ra, dec, edges), expected)
        assert np.any(np.searchsorted(edges, rough, "right") - 1 != expected)


def test_float32_offsets_only_where_their_bound_holds():
    one = np.array([1.0])
    assert haversine32(10.0, 20.0, one, one) is not None
    for ra_pnt, dec_pnt, ra, dec in (
        (10.0, 81.0, one, one),  # the pointing near a pole
        (10.0, 20.0, one, np.array([-80.5])),  # an event near a pole
        (10.0, 20.0, np.array([np.nan]), one),
        (np.inf, 20.0, one, one),
        (10.0, 20.0, np.array([]), np.array([])),
    ):
        assert haversine32(ra_pnt, dec_pnt, ra, dec) is None


def compiled_haversines():
    """Every event's haversine by the compiled loops' own per-event function."""
    numba = pytest.importorskip("numba")
    from bkgdask.models import kernel2d

    kernel2d._compiled()
    hav_of = kernel2d._hav_of  # now compiled

    @numba.njit
    def every_event(ra_pnt, dec_pnt, ra, dec):
        deg = np.pi / 180.0
        ra0, dec0 = ra_pnt * deg, dec_pnt * deg
        hav = np.empty(ra.size)
        for k in range(ra.size):
            hav[k] = hav_of(ra[k] * deg, dec[k] * deg, ra0, dec0, np.cos(dec0), np.sin(dec0))
        return hav

    return every_event


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
def test_largest_offset_skips_only_events_that_cannot_be_it(compiled):
    """The largest haversine, which skips events by a bound, equals the maximum of all."""
    every_event = compiled_haversines() if compiled else haversine
    rng = np.random.default_rng(8)
    for case in range(400):
        ra_pnt = rng.uniform(0, 360)
        dec_pnt = (90.0, -90.0, 89.9999999, 0.0, rng.uniform(-90, 90))[case % 5]
        spread = (1e-9, 1e-4, 0.1, 3.0, 40.0, 200.0)[case % 6]
        n = int(rng.integers(1, 2000))
        ra = (ra_pnt + rng.normal(0, spread, n)) % 360
        dec = np.clip(dec_pnt + rng.normal(0, spread, n), -90, 90)
        expected = np.max(every_event(ra_pnt, dec_pnt, ra, dec))
        assert max_haversine(ra_pnt, dec_pnt, ra, dec, compiled=compiled) == expected, case
    with np.errstate(invalid="ignore"):  # (the sine of infinity)
        for ra in ([1.0, np.nan], [np.inf, 1.0], [1e300, 1.0]):
            largest = max_haversine(1.0, 1.0, np.array(ra), np.array([3.0, 1.0]), compiled=False)
            np.testing.assert_equal(largest, np.max(haversine(1.0, 1.0, ra, [3.0, 1.0])))


def test_zenith_from_events_header_when_index_lacks_it(tmp_path):
    """MAGIC-like obs-index without ZEN_PNT/ALT_PNT: zenith comes from the EVENTS header."""
    runs = [random_run(i, 83.6, 22.0, 100, zenith=z, seed=i)[0] for i, z in ((1, 12.0), (2, 31.0))]
    path = make_store(tmp_path / "store", runs, obs_index_columns=["OBS_ID", "RA_PNT", "DEC_PNT"])
    store = DataStore.open(path)
    assert "ZEN_PNT" not in store.obs_index.colnames
    np.testing.assert_allclose(store.zenith_deg(), [12.0, 31.0])
    result = bkgdask.build(path, BuildConfig().updated(SYNC))
    assert set(result.totals) == {"zen-0-20", "zen-20-40"}
    assert {o: g.label for o, g in result.assignment.items()} == {1: "zen-0-20", 2: "zen-20-40"}


def test_compressed_and_plain_files_agree(tmp_path):
    run, _ = random_run(11, 50.0, -40.0, 300, seed=11)
    gz = bkgdask.build(make_store(tmp_path / "gz", [run]), BuildConfig().updated(SYNC))
    plain = bkgdask.build(
        make_store(tmp_path / "plain", [run], compress=False), BuildConfig().updated(SYNC)
    )
    xr.testing.assert_identical(gz.totals["zen-20-40"], plain.totals["zen-20-40"])


def test_a_batch_equals_the_combined_partials_of_its_runs(tmp_path):
    runs = [random_run(20 + i, 30.0 * i, -10.0 + 5 * i, 300 + 50 * i, seed=i)[0] for i in range(4)]
    store = DataStore.open(make_store(tmp_path / "store", runs))
    zenith = dict(zip(store.obs_ids.tolist(), store.zenith_deg().tolist()))
    inputs = store.run_inputs(store.obs_ids, zenith)
    kind = get_kind("bkg_2d")
    batch = histogram_runs(RunBatch(inputs), kind, BINNING)
    per_run = kind.combine([histogram_run(run, kind, BINNING) for run in inputs])
    xr.testing.assert_identical(batch, per_run)
    assert batch.attrs == per_run.attrs and batch.attrs["n_runs"] == 4
