"""Exclusion regions at build time: exact ring geometry, dropped events, source runs in training."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.errors import ConfigError
from bkgdask.io.store import DataStore
from bkgdask.models import get_kind, read_models
from bkgdask.models.exclusion import (
    Circle,
    SkyShape,
    cap_overlap_sr,
    destination,
    ring_excluded_fraction,
)
from bkgdask.models.rotation import RunPointing
from bkgdask.sim.simulate import SimulationConfig, simulate_store
from bkgdask.sim.sources import PointSource
from bkgdask.validation.truth_check import compare_bundle_to_truth

EDGES = np.sqrt(np.linspace(0, 9, 10))
# The histogram estimate: the truth tests judge the exclusion, not the smoothing.
SYNC = {"model": {"smoothing": "none"}, "compute": {"scheduler": "sync", "progress": False}}


def _monte_carlo_fraction(rng, pointing, circles, lo, hi, n=4_000_000):
    """Fraction of points drawn uniformly (in solid angle) in a ring that fall in the circles."""
    cos_offset = rng.uniform(np.cos(np.deg2rad(hi)), np.cos(np.deg2rad(lo)), n)
    ra, dec = destination(*pointing, np.rad2deg(np.arccos(cos_offset)), rng.uniform(0, 360, n))
    inside = np.zeros(n, bool)
    for circle in circles:
        inside |= circle.contains(ra, dec)
    return inside.mean()


@pytest.mark.parametrize(
    ("pointing", "distance", "radius"),
    [((83.6, 22.0), 0.5, 0.4), ((0.05, -30.0), 1.3, 0.6), ((10.0, 89.5), 1.7, 0.9)],
)
def test_ring_fraction_equals_monte_carlo_area(pointing, distance, radius):
    rng = np.random.default_rng(7)
    ra, dec = destination(*pointing, distance, 60.0)
    circles = [Circle(float(ra), float(dec), radius)]
    exact = ring_excluded_fraction(EDGES, pointing, circles)
    assert exact.max() > 0.01
    for k in np.flatnonzero(exact > 0)[:3]:
        mc = _monte_carlo_fraction(rng, pointing, circles, EDGES[k], EDGES[k + 1])
        assert abs(exact[k] - mc) < 1e-3, (k, exact[k], mc)


def test_cap_overlap_limits():
    cap = 2 * np.pi * (1 - np.cos(np.deg2rad(0.3)))
    assert cap_overlap_sr(1.0, 0.3, 0.2) == pytest.approx(cap, rel=1e-12)  # inside
    assert cap_overlap_sr(1.0, 0.3, 1.31) == 0.0  # apart
    near_touch = cap_overlap_sr(1.0, 0.3, 1.2999)
    assert 0 < near_touch < 1e-3 * cap
    # Continuous where the rims start to cross.
    assert cap_overlap_sr(1.0, 0.3, 0.7001) == pytest.approx(cap, rel=1e-3)


def test_grid_path_matches_exact_geometry():
    """Other shapes are integrated on a grid: a circle given as a generic shape agrees."""
    circle = Circle(84.0, 22.5, 0.5)
    shape = SkyShape(circle.contains, circle.ra, circle.dec, circle.radius)
    pointing = (83.6, 22.0)
    exact = ring_excluded_fraction(EDGES, pointing, [circle])
    sampled = ring_excluded_fraction(EDGES, pointing, [shape])
    np.testing.assert_allclose(sampled, exact, atol=3e-3)


def test_overlapping_circles_are_not_counted_twice():
    pointing = (0.0, 0.0)
    once = ring_excluded_fraction(EDGES, pointing, [Circle(0.5, 0.0, 0.4)])
    twice = ring_excluded_fraction(EDGES, pointing, [Circle(0.5, 0.0, 0.4)] * 2)
    np.testing.assert_allclose(twice, once, atol=3e-3)


def test_generic_excluded_fraction_through_sky_samples():
    """The base-class integration over sub-pixels, given a kind's map to the sky."""
    kind = get_kind("bkg_2d")
    binning = kind.binning(BuildConfig().binning)
    pointing, circles = RunPointing(200.0, -40.0), [Circle(200.0, -39.2, 0.5)]
    u = np.cos(np.deg2rad(binning["offset"]))

    def sky_samples(pointing, binning, n_sub=1, where=None):
        # rings are long and thin: finer in position angle than in offset (one epoch)
        n_offset, n_angle = (1, 1) if n_sub == 1 else (4 * n_sub, 12 * n_sub)
        step = (np.arange(n_offset) + 0.5) / n_offset
        offset = np.rad2deg(np.arccos(u[:-1, None] + np.diff(u)[:, None] * step))
        pa = (np.arange(n_angle) + 0.5) * 360 / n_angle
        ra, dec = destination(pointing.ra, pointing.dec, offset[..., None], pa)
        ra, dec = ra.reshape(len(u) - 1, 1, -1), dec.reshape(len(u) - 1, 1, -1)
        return (ra, dec) if where is None else (ra[where], dec[where])

    def bin_reach_deg(binning):
        # a ring lies within its outer edge of the pointing, its centre sample too
        centre = np.rad2deg(np.arccos(0.5 * (u[:-1] + u[1:])))
        return centre + binning["offset"][1:]

    kind_generic = type(kind)()
    kind_generic.sky_samples, kind_generic.bin_reach_deg = sky_samples, bin_reach_deg
    generic = super(type(kind), kind_generic).excluded_fraction(pointing, circles, binning)
    exact = kind.excluded_fraction(pointing, circles, binning)
    np.testing.assert_allclose(generic, exact, atol=2e-3)


def test_config_exclusion_validates_units():
    config = BuildConfig().updated(
        {
            "exclusion": {
                "regions": [{"ra": "83.6 deg", "dec": "22 deg", "radius": "18 arcmin"}],
                "target_radius": "0.4 deg",
            }
        }
    )
    assert config.exclusion.regions[0].to_deg()[2] == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="radius"):
        BuildConfig().updated({"exclusion": {"target_radius": "0.4 TeV"}})
    with pytest.raises(ConfigError):
        BuildConfig().updated({"exclusion": {"regions": [{"ra": "1 deg", "dec": "2 deg"}]}})


SOURCES = [
    PointSource(name="Src A", ra=40.0, dec=-20.0, sigma=0.1, rate=0.6),
    PointSource(name="Src B", ra=120.0, dec=10.0, sigma=0.15, rate=0.4),
]


@pytest.fixture(scope="module")
def source_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("sources") / "store"
    config = SimulationConfig(
        n_obs=45, seed=3, zenith_min=20, zenith_max=38, compress=False, sources=SOURCES
    )
    simulate_store(path, config)
    return path, config


def _truth_p_value(tmp_path, store, truth, changes):
    one_group = {"grouping": {"zenith": {"edges": [20, 40], "unit": "deg"}}}
    config = BuildConfig().updated({**SYNC, **one_group, **changes})
    result = bkgdask.build(store, config)
    assert result.summary["runs"] == 45
    models, _ = read_models(result.write(tmp_path / "bkg.fits"))
    comparisons = compare_bundle_to_truth(models, DataStore.open(store), truth)
    chi2, ndf = sum(c.chi2 for c in comparisons), sum(c.ndf for c in comparisons)
    return stats.chi2.sf(chi2, ndf)


def test_source_runs_train_with_exclusion_and_fail_without(tmp_path, source_store):
    store, sim = source_store
    regions = [{"ra": f"{s.ra} deg", "dec": f"{s.dec} deg", "radius": "0.5 deg"} for s in SOURCES]
    excluded = _truth_p_value(tmp_path, store, sim.truth, {"exclusion": {"regions": regions}})
    included = _truth_p_value(tmp_path, store, sim.truth, {})
    assert excluded > 1e-3
    assert included < 1e-6


def test_excluded_events_are_dropped_and_exposure_reduced(source_store):
    store, _ = source_store
    ds9 = f"icrs;circle({SOURCES[0].ra},{SOURCES[0].dec},0.5)"
    plain = bkgdask.build(store, BuildConfig().updated(SYNC))
    cut = bkgdask.build(store, BuildConfig().updated({**SYNC, "exclusion": {"regions": [ds9]}}))
    (label,) = set(plain.totals) & set(cut.totals)
    a, b = plain.totals[label], cut.totals[label]
    assert int(b["counts"].sum()) < int(a["counts"].sum())
    ratio = (b["exposure"] / a["exposure"]).values
    assert np.all(ratio <= 1 + 1e-12) and ratio.min() < 0.99
    np.testing.assert_allclose(
        ratio, np.broadcast_to(ratio[:1], ratio.shape), rtol=1e-12
    )  # same in every energy bin


FINE_BINS = {
    "energy": {"min": "0.1 TeV", "max": "100 TeV", "nbin": 57, "spacing": "log"},
    "offset": {"min": "0 deg", "max": "3 deg", "nbin": 30, "spacing": "linear"},
}


def test_leave_one_target_out_on_simulated_sources(source_store):
    """Without a source's runs, the models predict its runs' background: FoV norms near 1.

    Fine bins, as gammapy interpolates BKG_2D between bin centres; run-wise
    interpolation in cos(zenith) narrows the norms' spread.
    """
    from bkgdask.validation.loto import leave_one_target_out, target_runs

    store, _ = source_store
    assert set(target_runs(DataStore.open(store))) == {s.name for s in SOURCES}
    regions = [f"icrs;circle({s.ra},{s.dec},0.5)" for s in SOURCES]
    positions = {s.name: (s.ra, s.dec) for s in SOURCES}
    spread = {}
    for interpolate in (False, True):
        grouping = {"zenith": {"edges": [20, 29, 38], "unit": "deg"}, "interpolate": interpolate}
        config = BuildConfig().updated(
            {**SYNC, "exclusion": {"regions": regions}, "grouping": grouping, "binning": FINE_BINS}
        )
        fits = leave_one_target_out(
            store, config, targets=["Src A"], fit_radius_deg=0.5, positions=positions
        )
        assert {f.model for f in fits} == {"bkgdask"}  # the store has no models of its own
        norms = np.array([f.norm for f in fits])
        assert norms.size == 15 and all(f.error > 0 for f in fits)
        spread[interpolate] = norms.std()
    assert np.all(np.abs(norms - 1) < 0.15) and abs(norms.mean() - 1) < 0.06, norms
    assert spread[True] < spread[False]


def test_unreadable_region_is_a_config_error(source_store):
    store, _ = source_store
    config = BuildConfig().updated({**SYNC, "exclusion": {"regions": ["nonsense("]}})
    with pytest.raises(ConfigError, match="no region"):
        bkgdask.build(store, config)
    config = BuildConfig().updated({**SYNC, "exclusion": {"files": ["/nonexistent.reg"]}})
    with pytest.raises(ConfigError, match="not found"):
        bkgdask.build(store, config)
