"""Exclusion regions of BKG_3D models: pixel fractions (RADEC exact, ALTAZ time-averaged), builds.

Accuracy of :meth:`Bkg3D.excluded_fraction` (generic sampling of rim pixels,
``N_SUB_BIN`` = 32 sub-pixels per axis at one epoch; ALTAZ: 60 s epochs with
shifted 8 x 8 sub-grids):

* RADEC: a pixel half covered by a circle 0.5 within 1e-3; any pixel within
  3e-3 of a fine grid integration; the total excluded solid angle
  2π(1 − cos r) within 2e-4 (relative).
* ALTAZ: each pixel within 0.03 (rms 0.01 over rim pixels) of a brute-force
  average over 240 times of the circle placed in the FoV by astropy and
  gammapy (runs with 16 and 120 deg of field rotation); the total within 2e-3.
  Measured: 0.008 and 0.021 (rms 0.003 and 0.007), the totals within 1e-4.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, SkyCoord
from helpers import per_run_expected
from scipy import stats

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.models.binning import Binning
from bkgdask.models.bkg3d import Bkg3D
from bkgdask.models.exclusion import Circle, SkyShape, destination
from bkgdask.models.fov import (
    fov_radec,
    offset_frame_matrix,
    pixel_sample_vectors,
    unit_vectors,
    vectors_to_lonlat,
)
from bkgdask.models.observer import observatory_location, time_reference_and_unit
from bkgdask.models.rotation import RunPointing, times_in_gtis
from bkgdask.sim.simulate3d import Simulation3DConfig, run_header, simulate_store_3d
from bkgdask.sim.sources import PointSource
from bkgdask.sim.truth import TruthModel
from bkgdask.sim.truth3d import Truth3D

EDGES = np.round(np.linspace(-3.0, 3.0, 61), 10)
BINNING = Binning.of(energy=[0.1, 1.0, 10.0], fov_lon=EDGES, fov_lat=EDGES)
RADEC = Bkg3D("RADEC")


def sky_of_fov(pointing: RunPointing, lon, lat) -> tuple[float, float]:
    """ICRS position (deg) of a RADEC FoV position (deg): the inverse of ``fov_radec``."""
    vector = unit_vectors(lon, lat) @ offset_frame_matrix(pointing.ra, pointing.dec)
    ra, dec = vectors_to_lonlat(*np.moveaxis(vector, -1, 0))
    return float(np.mod(ra, 360.0)), float(dec)


def fine_fraction(i: int, j: int, centre_fov: np.ndarray, radius: float, n: int = 400) -> float:
    """A pixel's fraction inside a circle given in the FoV frame, on an n x n sub-pixel grid."""
    x, y, z = pixel_sample_vectors(EDGES, EDGES, np.array([i]), np.array([j]), n)
    vectors = np.stack([x[0], y[0], z[0]], axis=-1)
    return float((vectors @ centre_fov >= np.cos(np.radians(radius))).mean())


@pytest.mark.parametrize("pointing", [(83.6, 22.0), (0.05, -30.0), (250.0, 89.5)])
def test_sky_samples_invert_the_fov_projection(pointing):
    """The kernel's projection (fov_radec) takes each sample back to its sub-pixel."""
    run = RunPointing(*pointing)
    ra, dec = RADEC.sky_samples(run, BINNING, n_sub=4)
    assert ra.shape == dec.shape == (60, 60, 1, 16)
    lon, lat = fov_radec(ra, dec, *pointing)
    x, y, z = pixel_sample_vectors(EDGES, EDGES, *np.indices((60, 60)).reshape(2, -1), 4)
    lon_0, lat_0 = vectors_to_lonlat(x, y, z)
    np.testing.assert_allclose(lon.reshape(-1, 16), lon_0, atol=1e-9)
    np.testing.assert_allclose(lat.reshape(-1, 16), lat_0, atol=1e-9)
    # equal solid angle: equal steps in sin(lat) within a pixel
    sin_lat = np.sin(np.radians(lat_0[0].reshape(4, 4)[0]))
    np.testing.assert_allclose(np.diff(sin_lat), np.diff(sin_lat)[0], rtol=1e-9)


def test_half_covered_far_and_inside_pixels():
    run = RunPointing(83.6, 22.0)
    i, j = 40, 30  # lon [1.0, 1.1), lat [0.0, 0.1): the rim below runs along fov_lon
    lon_c, lat_c = 1.05, np.degrees(np.arcsin(0.5 * np.sin(np.radians(0.1))))
    # a 10 deg circle whose rim passes through the pixel's centre, nearly straight there
    centre = sky_of_fov(run, lon_c, lat_c + 10.0)
    fraction = RADEC.excluded_fraction(run, [Circle(*centre, 10.0)], BINNING)
    assert abs(fraction[i, j] - 0.5) < 1e-3, fraction[i, j]
    # a 0.5 deg circle on the pixel's corner: any pixel it cuts as a fine grid says
    small = Circle(*sky_of_fov(run, 1.0, 0.0), 0.5)
    fraction = RADEC.excluded_fraction(run, [small], BINNING)
    centre_fov = unit_vectors(1.0, 0.0)
    rim = np.argwhere((fraction > 0) & (fraction < 1))
    assert len(rim) > 20
    for i, j in rim[::4]:
        assert abs(fraction[i, j] - fine_fraction(i, j, centre_fov, 0.5)) < 3e-3, (i, j)
    assert fraction[40, 30] == 1.0 and fraction[41, 31] == 1.0  # well inside
    assert fraction[20, 30] == 0.0 and fraction[40, 40] == 0.0  # far away
    centres = 0.5 * (EDGES[:-1] + EDGES[1:])
    far = np.hypot(centres[:, None] - 1.0, centres[None, :]) > 0.5 + 0.075
    assert np.all(fraction[far] == 0.0)


@pytest.mark.parametrize(
    ("pointing", "offset", "radius"),
    [((83.6, 22.0), 0.7, 0.3), ((0.05, -30.0), 1.3, 0.6), ((250.0, 89.5), 1.0, 1.0)],
)
def test_total_excluded_solid_angle_is_the_caps(pointing, offset, radius):
    run = RunPointing(*pointing)
    circle = Circle(*(float(v) for v in destination(*pointing, offset, 37.0)), radius)
    fraction = RADEC.excluded_fraction(run, [circle], BINNING)
    area = np.sum(fraction * RADEC.solid_angles_sr(BINNING))
    assert area == pytest.approx(2 * np.pi * (1 - np.cos(np.radians(radius))), rel=2e-4)
    # any other shape goes through the sub-samples alone: the same fractions
    shape = SkyShape(circle.contains, circle.ra, circle.dec, circle.radius)
    np.testing.assert_allclose(RADEC.excluded_fraction(run, [shape], BINNING), fraction, atol=3e-3)


def altaz_run(hour_angle_h: float, dec: float = -25.0):
    """A run of two 800 s GTIs centred on ``hour_angle_h`` at the simulated site."""
    gti = np.array([[1.0e8, 1.0e8 + 800.0], [1.0e8 + 920.0, 1.0e8 + 1720.0]])
    header = run_header(0.0, dec)
    reference, _ = time_reference_and_unit(header)
    middle = reference + 0.5 * (gti[0, 0] + gti[-1, 1]) * u.s
    lst = middle.sidereal_time("apparent", longitude=observatory_location(header).lon)
    ra = float(np.mod(lst.to_value(u.deg) - 15.0 * hour_angle_h, 360.0))
    return RunPointing(ra, dec, run_header(ra, dec), gti)


def brute_force_altaz(run: RunPointing, circle: Circle, binning, n_times=240, n_sub=40):
    """Excluded fraction averaged over many times, the circle put in the ALTAZ FoV by gammapy."""
    from gammapy.utils.coordinates import sky_to_fov

    total = float(np.sum(run.gti[:, 1] - run.gti[:, 0]))
    times = times_in_gtis((np.arange(n_times) + 0.5) * total / n_times, run.gti)
    reference, _ = time_reference_and_unit(run.header)
    frame = AltAz(obstime=reference + times * u.s, location=observatory_location(run.header))
    source = SkyCoord(circle.ra * u.deg, circle.dec * u.deg).transform_to(frame)
    pointing = SkyCoord(run.ra * u.deg, run.dec * u.deg).transform_to(frame)
    lon, lat = sky_to_fov(source.az, source.alt, pointing.az, pointing.alt)
    centres = unit_vectors(lon.to_value(u.deg), lat.to_value(u.deg))  # (n_times, 3)
    # pixels the circle can reach at some time
    lon_c = 0.5 * (binning["fov_lon"][:-1] + binning["fov_lon"][1:])
    lat_c = 0.5 * (binning["fov_lat"][:-1] + binning["fov_lat"][1:])
    pixel = unit_vectors(lon_c[:, None], lat_c[None, :])
    reach = np.cos(np.radians(circle.radius + 0.15))
    i, j = np.nonzero(np.max(pixel @ centres.T, axis=-1) >= reach)
    x, y, z = pixel_sample_vectors(binning["fov_lon"], binning["fov_lat"], i, j, n_sub)
    vectors = np.stack([x, y, z], axis=-1)
    inside = np.zeros(i.size)
    for centre in centres:
        inside += (vectors @ centre >= np.cos(np.radians(circle.radius))).mean(axis=-1)
    out = np.zeros(binning.shape[1:])
    out[i, j] = inside / n_times
    return out


@pytest.mark.parametrize(("hour_angle", "rotation"), [(-0.6, 16.0), (0.0, 120.0)])
def test_altaz_fraction_is_the_average_over_the_run(hour_angle, rotation):
    edges = np.round(np.linspace(-2.0, 2.0, 41), 10)
    binning = Binning.of(energy=[0.1, 10.0], fov_lon=edges, fov_lat=edges)
    run = altaz_run(hour_angle)
    maps = run.altaz_maps
    turned = np.degrees(np.arccos((np.trace(maps[-1] @ maps[0].T) - 1) / 2))
    assert turned == pytest.approx(rotation, abs=5.0)
    circle = Circle(*sky_of_fov(run, 0.9, 0.5), 0.4)
    kind = Bkg3D("ALTAZ")
    fraction = kind.excluded_fraction(run, [circle], binning)
    expected = brute_force_altaz(run, circle, binning)
    rim = (expected > 0) & (expected < 1)
    assert rim.sum() > 50
    difference = fraction - expected
    assert np.abs(difference).max() < 0.03
    assert np.sqrt(np.mean(difference[rim] ** 2)) < 0.01
    solid = kind.solid_angles_sr(binning)
    cap = 2 * np.pi * (1 - np.cos(np.radians(circle.radius)))
    assert np.sum(fraction * solid) == pytest.approx(cap, rel=2e-3)
    # the field turned: the time average is not the fraction at mid-run
    middle = 0.5 * (run.gti[0, 0] + run.gti[-1, 1]) + np.array([[-0.5, 0.5]])
    at_middle = RunPointing(run.ra, run.dec, run.header, middle)
    assert np.abs(kind.excluded_fraction(at_middle, [circle], binning) - expected).max() > 0.2


def test_altaz_samples_stay_in_their_pixels():
    """At every epoch the centre samples map to the pixel centres, the others into the pixel."""
    run, kind = altaz_run(0.0), Bkg3D("ALTAZ")
    radec_to_altaz = run.altaz_maps @ offset_frame_matrix(run.ra, run.dec)  # ICRS -> ALTAZ FoV
    for n_sub in (1, 4):
        ra, dec = kind.sky_samples(run, BINNING, n_sub)  # (60, 60, n_epochs, n_sub**2)
        assert ra.shape[2] == len(run.epochs) == 27  # 1600 s of good time, <= 60 s each
        sky = unit_vectors(ra, dec)
        fov = np.einsum("tij,abtnj->abtni", radec_to_altaz, sky)
        lon, lat = vectors_to_lonlat(fov[..., 0], fov[..., 1], fov[..., 2])
        lo, hi = EDGES[:-1], EDGES[1:]
        if n_sub == 1:
            centre_lat = np.degrees(
                np.arcsin(0.5 * (np.sin(np.radians(lo)) + np.sin(np.radians(hi))))
            )
            np.testing.assert_allclose(
                lon[..., 0],
                np.broadcast_to(0.5 * (lo + hi)[:, None, None], lon.shape[:3]),
                atol=1e-5,
            )
            np.testing.assert_allclose(
                lat[..., 0], np.broadcast_to(centre_lat[None, :, None], lat.shape[:3]), atol=1e-5
            )
        else:
            assert np.all(
                (lon > lo[:, None, None, None] - 1e-5) & (lon < hi[:, None, None, None] + 1e-5)
            )
            assert np.all(
                (lat > lo[None, :, None, None] - 1e-5) & (lat < hi[None, :, None, None] + 1e-5)
            )
            assert np.ptp(lon[30, 30, :, 0]) > 0.02  # the sub-grids move from epoch to epoch


def test_altaz_needs_the_runs_times():
    with pytest.raises(ValueError, match="good time"):
        Bkg3D("ALTAZ").excluded_fraction(RunPointing(10.0, -30.0), [Circle(10, -29, 0.3)], BINNING)


# -- builds of simulated stores with a source ---------------------------------------------

#: Fine pixels (0.1 deg), so that the rate hardly changes across the part of a pixel excluded.
BUILD_BINNING = {
    "energy": {"edges": [0.1, 0.4, 100.0], "unit": "TeV"},
    "fov_lon": {"min": "-2 deg", "max": "2 deg", "nbin": 40},
    "fov_lat": {"min": "-2 deg", "max": "2 deg", "nbin": 40},
}
N_RUNS = 6
SPECTRUM_3D = TruthModel(norm=8e-4, offset_max=3.0)
#: A bright Gaussian source 1 deg from the tracked pointing, and the circle excluding it.
SOURCE_OFFSET, SOURCE_RADIUS = 1.0, 0.4


def transit_ra(config: Simulation3DConfig) -> float:
    """RA (deg) at transit in the middle of the runs: runs tracking it turn the field most."""
    header = run_header(0.0, config.dec_pnt)
    reference, _ = time_reference_and_unit(header)
    middle = 0.5 * (config.gti(0)[0, 0] + config.gti(config.n_obs - 1)[-1, 1])
    lst = (reference + middle * u.s).sidereal_time(
        "apparent", longitude=observatory_location(header).lon
    )
    return float(lst.to_value(u.deg))


@pytest.fixture(scope="module", params=["RADEC", "ALTAZ"])
def source_store_3d(request, tmp_path_factory):
    """Runs tracking one pointing with a source beside it; the truth fixed in the given frame."""
    truth = Truth3D(alignment=request.param, gradient=0.25, spectrum=SPECTRUM_3D)
    base = Simulation3DConfig(n_obs=N_RUNS, seed=5, duration=1200.0, truth=truth)
    ra = transit_ra(base)
    src_ra, src_dec = (float(v) for v in destination(ra, base.dec_pnt, SOURCE_OFFSET, 60.0))
    source = PointSource(name="Src", ra=src_ra, dec=src_dec, sigma=0.08, rate=0.1)
    config = base.model_copy(update={"ra_pnt": ra, "sources": [source]})
    store = simulate_store_3d(tmp_path_factory.mktemp("source3d") / "store", config)
    return store, config, request.param


def build_3d(store, alignment: str, exclusion: dict | None = None):
    config = BuildConfig().updated(
        {
            "model": {"kind": "bkg_3d", "fov_alignment": alignment},
            "binning": BUILD_BINNING,
            "grouping": {"zenith": {"edges": [0, 90], "unit": "deg"}},
            "compute": {"scheduler": "sync", "progress": False},
            **({"exclusion": exclusion} if exclusion else {}),
        }
    )
    result = bkgdask.build(store, config)
    (total,) = result.totals.values()
    return result, total, config


def p_value(counts, expected, min_expected=5.0) -> float:
    used = expected >= min_expected
    chi2 = np.sum((counts - expected)[used] ** 2 / expected[used])
    return float(stats.chi2.sf(chi2, used.sum()))


def test_excluded_source_gives_the_background_truth(source_store_3d, caplog):
    """Around an excluded source the model is the no-source truth; not excluding it biases it.

    The histogram model's counts in each pixel are compared with the truth's
    expectation over the pixel's exposure left by the exclusion (the truth's
    whole-pixel expectation times exposure / the full exposure): in the pixels
    the circle cuts (the exposure correction), and in all exposed pixels.
    """
    store, sim, alignment = source_store_3d
    circle = {"ra": f"{sim.sources[0].ra} deg", "dec": f"{sim.sources[0].dec} deg"}
    exclusion = {"regions": [{**circle, "radius": f"{SOURCE_RADIUS} deg"}]}
    with caplog.at_level("WARNING", logger="bkgdask.models.bkg3d"):
        result, total, config = build_3d(store, alignment, exclusion)
    _, plain, _ = build_3d(store, alignment)
    binning = config.binning_of_kind()
    expected = per_run_expected(store, sim, binning, alignment).sum(axis=0)
    full = plain["exposure"].values
    kept = total["exposure"].values / full
    cut = (kept[0] > 0) & (kept[0] < 1 - 1e-9)  # pixels the circle cuts at some time
    assert cut.sum() > 20
    counts = total["counts"].values
    assert p_value(counts[:, cut], (expected * kept)[:, cut]) > 1e-3
    exposed = kept[0] > 0
    assert p_value(counts[:, exposed], (expected * kept)[:, exposed]) > 1e-3
    # without the exclusion the source's events sit in the pixels it touches
    touched = kept[0] < 1 - 1e-9
    assert p_value(plain["counts"].values[:, touched], expected[:, touched]) < 1e-6
    # pixels covered in every run take the rate at their FoV offset (the truth's to 30 %)
    rate = result.kind.finalize(total)
    assert np.all(np.isfinite(rate))
    unexposed = int((~exposed).sum())
    if alignment == "RADEC":  # the source stays put in the RADEC FoV: its middle is never seen
        assert unexposed > 0
        assert f"{unexposed} of 1600 FoV pixels have no exposure" in caplog.text
        filled = np.sum((rate * full)[:, ~exposed], axis=1)
        assert np.all(np.abs(filled / expected[:, ~exposed].sum(axis=1) - 1) < 0.3)
    else:  # the field turns by ~100 deg over the runs: every pixel is seen some of the time
        assert unexposed == 0 and "no exposure" not in caplog.text


def test_cli_excludes_for_bkg_3d(source_store_3d, tmp_path):
    """``--exclude REGION`` and a config file's ``exclusion:`` give the same BKG_3D model."""
    from astropy.io import fits
    from click.testing import CliRunner

    from bkgdask.cli import cli

    store, sim, alignment = source_store_3d
    source = sim.sources[0]
    common = ["build", str(store), "--model", "bkg_3d", "--fov-alignment", alignment.lower(),
              "--zenith-edges", "0,90", "--scheduler", "sync", "--no-progress"]  # fmt: skip
    config = tmp_path / "exclusion.yaml"
    circle = f"{{ra: {source.ra} deg, dec: {source.dec} deg, radius: 0.4 deg}}"
    config.write_text(f"exclusion:\n  regions: [{circle}]\n")
    runs = {
        "option": ["--exclude", f"icrs;circle({source.ra},{source.dec},0.4)"],
        "config": ["--config", str(config)],
        "none": [],
    }
    counts, exposure = {}, {}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.fits"
        result = CliRunner().invoke(cli, [*common, "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        with fits.open(out) as hdul:
            (bkg,) = [h for h in hdul if h.header.get("HDUCLAS4") == "BKG_3D"]
            assert bkg.header["FOVALIGN"] == alignment
            counts[name], exposure[name] = bkg.data["COUNTS"][0], bkg.data["EXPOSURE"][0]
    np.testing.assert_array_equal(counts["option"], counts["config"])
    np.testing.assert_allclose(exposure["option"], exposure["config"], rtol=1e-12)
    assert counts["option"].sum() < counts["none"].sum() - 0.9 * N_RUNS * 1200 * source.rate
    assert np.all(exposure["option"] <= exposure["none"] * (1 + 1e-12))
