"""FoV coordinates (RADEC, ALTAZ), pixel solid angles and the BKG_3D kernel."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import AltAz, SkyCoord, SkyOffsetFrame
from gammapy.utils.coordinates import FoVAltAzFrame, FoVICRSFrame, sky_to_fov

from bkgdask.io.fitsread import read_tables
from bkgdask.models import fov, kernel3d, observer
from bkgdask.models.kernel2d import HAVE_NUMBA
from bkgdask.models.rotation import (
    FIT_GRID_DEG,
    field_rotation,
    fov_altaz,
    fov_maps,
    spline_coefficients,
    unit_scale,
)

ENERGY_EDGES = np.logspace(-1, 2, 20)
FIELD_DEG = 3.0 * np.sqrt(2)  # the corners of the default +-3 deg FoV


def events_around(ra_pnt, dec_pnt, n, radius_deg, seed):
    """Events uniform on the sphere within ``radius_deg`` of a pointing (deg, float64)."""
    rng = np.random.default_rng(seed)
    cos_offset = rng.uniform(np.cos(np.radians(radius_deg)), 1.0, n)
    position_angle = rng.uniform(0, 2 * np.pi, n)
    pointing = SkyCoord(ra_pnt * u.deg, dec_pnt * u.deg)
    events = pointing.directional_offset_by(position_angle * u.rad, np.arccos(cos_offset) * u.rad)
    energy = 10 ** rng.uniform(-1.3, 2.3, n)  # some outside the energy range
    return energy, events.ra.deg, events.dec.deg


def hess_run(path, wanted=("ENERGY", "RA", "DEC", "TIME")):
    table = read_tables(path, {"EVENTS": list(wanted)})["EVENTS"]
    return table.columns, table.header


def astropy_altaz_fov(ra, dec, time, header):
    """astropy per event: event and pointing to AltAz at the event's time, then the offset frame."""
    reference, seconds = observer.time_reference_and_unit(header)
    frame = AltAz(
        obstime=reference + time * seconds * u.s, location=observer.observatory_location(header)
    )
    pointing = SkyCoord(header["RA_PNT"] * u.deg, header["DEC_PNT"] * u.deg).transform_to(frame)
    offset = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
    offset = offset.transform_to(SkyOffsetFrame(origin=pointing))
    return -offset.lon.wrap_at(180 * u.deg).deg, offset.lat.deg


def separation_arcsec(lon1, lat1, lon2, lat2):
    return (
        SkyCoord(lon1 * u.deg, lat1 * u.deg).separation(SkyCoord(lon2 * u.deg, lat2 * u.deg)).arcsec
    )


@pytest.mark.parametrize(
    "ra_pnt, dec_pnt", [(83.63, 22.01), (0.3, -30.0), (359.8, 5.0), (40.0, 89.5), (200.0, -89.2)]
)
def test_radec_matches_gammapy(ra_pnt, dec_pnt):
    """Across RA = 0 and over the poles, to float64 rounding, with gammapy's sign of fov_lon."""
    _, ra, dec = events_around(ra_pnt, dec_pnt, 2000, 10.0, seed=1)
    lon, lat = fov.fov_radec(ra, dec, ra_pnt, dec_pnt)
    ref_lon, ref_lat = sky_to_fov(ra * u.deg, dec * u.deg, ra_pnt * u.deg, dec_pnt * u.deg)
    assert np.max(np.abs(lon - ref_lon.wrap_at(180 * u.deg).deg)) < 1e-10
    assert np.max(np.abs(lat - ref_lat.deg)) < 1e-10
    frame = FoVICRSFrame(origin=SkyCoord(ra_pnt * u.deg, dec_pnt * u.deg))
    framed = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
    assert np.max(np.abs(lon - framed.fov_lon.wrap_at(180 * u.deg).deg)) < 1e-10
    # fov_lon is positive towards decreasing RA (east is left on the sky).
    towards_lower_ra = np.sin(np.radians(ra - ra_pnt)) < -1e-3
    assert np.all(lon[towards_lower_ra & (np.abs(dec) < 85)] > 0)


@pytest.mark.requires_data
def test_altaz_matches_astropy_and_gammapy_frame(hess_dir):
    """One run: the spline against astropy per event; gammapy's FoVAltAzFrame and its signs."""
    columns, header = hess_run(sorted((hess_dir / "data").glob("*.fits.gz"))[80])
    rng = np.random.default_rng(2)
    pick = rng.choice(columns["RA"].size, 300, replace=False)
    ra, dec, time = columns["RA"][pick], columns["DEC"][pick], columns["TIME"][pick]
    rotation = field_rotation(header, columns["TIME"].min(), columns["TIME"].max())
    lon, lat = fov_altaz(ra, dec, time, header["RA_PNT"], header["DEC_PNT"], rotation)
    ref_lon, ref_lat = astropy_altaz_fov(ra, dec, time, header)
    near = np.hypot(ref_lon, ref_lat) < FIELD_DEG
    assert near.sum() > 200
    assert separation_arcsec(lon, lat, ref_lon, ref_lat)[near].max() < 0.1
    # gammapy's frame, at the events' times: the same coordinates, the same sign of fov_lon.
    reference, seconds = observer.time_reference_and_unit(header)
    times = reference + time * seconds * u.s
    location = observer.observatory_location(header)
    origin = SkyCoord(header["RA_PNT"] * u.deg, header["DEC_PNT"] * u.deg).transform_to(
        AltAz(obstime=times, location=location)
    )
    framed = SkyCoord(ra * u.deg, dec * u.deg).transform_to(
        FoVAltAzFrame(origin=origin, location=location, obstime=times)
    )
    gammapy_lon = framed.fov_lon.wrap_at(180 * u.deg).deg
    assert separation_arcsec(lon, lat, gammapy_lon, framed.fov_lat.deg)[near].max() < 0.1
    # ALTAZ differs from RADEC by the field rotation (not the identity).
    radec_lon, radec_lat = fov.fov_radec(ra, dec, header["RA_PNT"], header["DEC_PNT"])
    assert separation_arcsec(lon, lat, radec_lon, radec_lat)[near].max() > 60


def astropy_fov_maps(header, times):
    """The RADEC-to-ALTAZ FoV maps as fov_maps fits them, with astropy's full AltAz."""
    reference, seconds = observer.time_reference_and_unit(header)
    frame = AltAz(
        obstime=(reference + times * seconds * u.s)[:, None],
        location=observer.observatory_location(header),
    )
    grid_lon, grid_lat = np.meshgrid(FIT_GRID_DEG, FIT_GRID_DEG)
    vectors = fov.unit_vectors(np.append(0.0, grid_lon), np.append(0.0, grid_lat))
    icrs = vectors @ fov.offset_frame_matrix(header["RA_PNT"], header["DEC_PNT"])
    ra, dec = fov.vectors_to_lonlat(icrs[:, 0], icrs[:, 1], icrs[:, 2])
    altaz = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
    az, alt = altaz.az.deg, altaz.alt.deg
    maps = []
    for i in range(len(times)):
        target = fov.unit_vectors(az[i], alt[i]) @ fov.offset_frame_matrix(az[i, 0], alt[i, 0]).T
        maps.append(np.linalg.lstsq(vectors, target, rcond=None)[0].T)
    return np.array(maps)


def map_difference_arcsec(maps, reference_maps):
    """Largest distance (arcsec) between the images of the +-3 deg FoV corners and axes."""
    points = fov.unit_vectors(np.array([3, 3, -3, -3, 0, 3, 0]), np.array([3, -3, 3, -3, 3, 0, 0]))
    moved = [np.einsum("nij,kj->nki", m, points) for m in (maps, reference_maps)]
    moved = [v / np.linalg.norm(v, axis=-1, keepdims=True) for v in moved]
    return np.degrees(np.linalg.norm(moved[0] - moved[1], axis=-1)).max() * 3600


@pytest.mark.slow
@pytest.mark.requires_data
def test_accuracy_on_every_hess_run(hess_dir):
    """All 105 DR1 runs, 500 events each: max error against astropy, both alignments.

    ALTAZ: the ERFA maps against astropy's at 4 times per run (the UT1 - UTC and
    polar motion astropy uses, read without its IERS table), and the events'
    coordinates (the spline in time, the linear map) against astropy per event.
    """
    rng = np.random.default_rng(3)
    worst = {"RADEC": 0.0, "ALTAZ maps": 0.0, "ALTAZ": 0.0, "ALTAZ all offsets": 0.0}
    paths = sorted((hess_dir / "data").glob("*.fits.gz"))
    for path in paths:
        columns, header = hess_run(path)
        pick = rng.choice(columns["RA"].size, min(500, columns["RA"].size), replace=False)
        ra, dec, time = columns["RA"][pick], columns["DEC"][pick], columns["TIME"][pick]
        ra_pnt, dec_pnt = header["RA_PNT"], header["DEC_PNT"]
        lon, lat = fov.fov_radec(ra, dec, ra_pnt, dec_pnt)
        ref_lon, ref_lat = sky_to_fov(ra * u.deg, dec * u.deg, ra_pnt * u.deg, dec_pnt * u.deg)
        error = separation_arcsec(lon, lat, ref_lon.wrap_at(180 * u.deg).deg, ref_lat.deg)
        worst["RADEC"] = max(worst["RADEC"], error.max())
        nodes = np.linspace(columns["TIME"].min(), columns["TIME"].max(), 4)
        difference = map_difference_arcsec(fov_maps(header, nodes), astropy_fov_maps(header, nodes))
        worst["ALTAZ maps"] = max(worst["ALTAZ maps"], difference)
        rotation = field_rotation(header, columns["TIME"].min(), columns["TIME"].max())
        lon, lat = fov_altaz(ra, dec, time, ra_pnt, dec_pnt, rotation)
        ref_lon, ref_lat = astropy_altaz_fov(ra, dec, time, header)
        error = separation_arcsec(lon, lat, ref_lon, ref_lat)
        near = np.hypot(ref_lon, ref_lat) < FIELD_DEG
        worst["ALTAZ"] = max(worst["ALTAZ"], error[near].max())
        worst["ALTAZ all offsets"] = max(worst["ALTAZ all offsets"], error.max())
    print(f"\n{len(paths)} runs, max error (arcsec): {worst}")
    assert len(paths) == 105
    assert worst["RADEC"] < 1e-6
    assert worst["ALTAZ maps"] < 1e-4
    assert worst["ALTAZ"] < 0.1


@pytest.mark.requires_data
def test_earth_rotation_matters_near_the_zenith(hess_dir):
    """Without UT1 - UTC and polar motion, a DR1 run near the zenith is off by > 1 arcsec."""
    columns, header = hess_run(hess_dir / "data" / "hess_dl3_dr1_obs_id_027121.fits.gz", ["TIME"])
    nodes = np.linspace(columns["TIME"].min(), columns["TIME"].max(), 4)
    reference = astropy_fov_maps(header, nodes)
    assert map_difference_arcsec(fov_maps(header, nodes), reference) < 1e-4
    zero = np.zeros(nodes.size)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(observer, "earth_orientation", lambda utc1, utc2: (zero, zero, zero))
        assert map_difference_arcsec(fov_maps(header, nodes), reference) > 1.0


@pytest.mark.parametrize(
    "iso", ["2004-03-01 22:10:00", "2005-12-31 23:00:00", "2008-12-31 23:59:30", "2026-10-01 02:00"]
)
def test_earth_orientation_as_astropy(iso):
    """UT1 - UTC and polar motion as astropy's default IERS table gives them, leap seconds too.

    The last date is beyond the bundled IERS-B table: astropy itself is asked.
    """
    from astropy.time import Time
    from astropy.utils import iers

    utc = Time(iso, scale="utc") + np.linspace(0, 7200, 9) * u.s
    dut1, xp, yp = observer.earth_orientation(utc.jd1, utc.jd2)
    table = iers.earth_orientation_table.get()
    np.testing.assert_allclose(dut1, table.ut1_utc(utc).to_value("s"), rtol=0, atol=1e-12)
    ref_x, ref_y = table.pm_xy(utc)
    np.testing.assert_allclose(xp, ref_x.to_value("rad"), rtol=0, atol=1e-16)
    np.testing.assert_allclose(yp, ref_y.to_value("rad"), rtol=0, atol=1e-16)


@pytest.mark.parametrize("scale", ["TT", "TAI", "UTC", "GPS", "TDB", "TCG"])
def test_utc_dates_as_astropy(scale):
    from astropy.time import Time

    header = {"MJDREFI": 51910, "MJDREFF": 7.4287037037e-4, "TIMESYS": scale, "TIMEUNIT": "s"}
    times = np.array([1.5e8, 1.5e8 + 1680.5, 2.3e8])  # 2005, across the 2008-12-31 leap second
    utc1, utc2 = observer.utc_dates(header, times)
    astropy_scale, shift = ("tai", 19.0) if scale == "GPS" else (scale.lower(), 0.0)  # TAI - GPS
    reference = Time(header["MJDREFI"], header["MJDREFF"], format="mjd", scale=astropy_scale)
    reference = reference + (times + shift) * u.s
    seconds = ((utc1 - reference.utc.jd1) + (utc2 - reference.utc.jd2)) * 86400
    assert np.max(np.abs(seconds)) < (2e-3 if scale == "TDB" else 1e-6)  # TDB taken as TT
    minutes = {**header, "TIMEUNIT": "min"}
    np.testing.assert_allclose(observer.utc_dates(minutes, times / 60)[1], utc2, rtol=0, atol=1e-12)


def test_spline_as_scipy():
    from scipy.interpolate import CubicSpline

    rng = np.random.default_rng(7)
    for n in (4, 5, 64):
        values = rng.normal(size=(n, 9))
        expected = np.moveaxis(CubicSpline(np.arange(n), values, axis=0).c, 0, 1)
        np.testing.assert_allclose(spline_coefficients(values), expected, rtol=0, atol=1e-12)


@pytest.mark.requires_data
def test_field_rotation_is_a_turn_after_a_near_identity(hess_dir):
    """The turn-and-remainder form gives ERFA's maps at the nodes; the series normalises."""
    columns, header = hess_run(hess_dir / "data" / "hess_dl3_dr1_obs_id_027121.fits.gz", ["TIME"])
    start, stop = columns["TIME"].min(), columns["TIME"].max()
    rotation = field_rotation(header, start, stop, 16)
    nodes = np.linspace(start, stop, 16)
    maps = fov_maps(header, nodes)
    # A segment's remainder is the mean of its ends': 5e-9 (0.001") off on this run near the zenith.
    np.testing.assert_allclose(rotation.matrices(nodes), maps, rtol=0, atol=1e-8)
    assert np.abs(rotation.rest - np.eye(3).ravel()).max() < 1e-3  # the remainder is small
    # Between the nodes too: the turn's matrices are near rotations, so the series holds.
    halfway = 0.5 * (nodes[1:] + nodes[:-1])
    x, y, z = rotation.apply(halfway, *np.ones((3, halfway.size)) / np.sqrt(3))
    excess = x * x + y * y + z * z - 1.0
    assert np.abs(excess).max() < 1e-3
    error = np.abs(unit_scale(excess) - 1 / np.sqrt(1 + excess))
    assert np.all(error <= 0.33 * np.abs(excess) ** 3 + 1e-15)  # 5/16 excess³ and smaller terms


def test_pixel_solid_angles_against_monte_carlo_and_quadrature():
    from scipy.integrate import dblquad

    lon_edges, lat_edges = np.array([-3.0, -0.5, 1.0, 3.0]), np.array([-3.0, 0.2, 3.0])
    solid = fov.pixel_solid_angles(lon_edges, lat_edges)
    assert solid.shape == (3, 2)
    lo, hi = np.radians(lon_edges[1:3]), np.radians(lat_edges[1:3])
    integral, _ = dblquad(lambda lat, lon: np.cos(lat), lo[0], lo[1], hi[0], hi[1])
    assert solid[1, 1] == pytest.approx(integral, rel=1e-12)
    # Monte Carlo: events uniform within 6 deg of a pointing near the pole, binned in FoV lon/lat.
    n, radius = 2_000_000, 6.0
    _, ra, dec = events_around(10.0, 88.0, n, radius, seed=4)
    lon, lat = fov.fov_radec(ra, dec, 10.0, 88.0)
    counts = np.histogram2d(lon, lat, bins=(lon_edges, lat_edges))[0]
    cap = 2 * np.pi * (1 - np.cos(np.radians(radius)))
    expected = n * solid / cap
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    # The whole sphere.
    whole = fov.pixel_solid_angles(np.linspace(-180, 180, 7), np.linspace(-90, 90, 5))
    assert whole.sum() == pytest.approx(4 * np.pi, rel=1e-14)


def wide_events(seed):
    """Events over the poles, across RA = 0, in and out of the field, energies in and out."""
    parts = [events_around(r, d, 20_000, 8.0, seed + i) for i, (r, d) in
             enumerate([(0.5, -20.0), (120.0, 89.0), (300.0, -30.0)])]  # fmt: skip
    return [np.concatenate(column) for column in zip(*parts)], [(0.5, -20.0), (120.0, 89.0)]


@pytest.mark.skipif(not HAVE_NUMBA, reason="needs numba")
@pytest.mark.parametrize("alignment", ["RADEC", "ALTAZ"])
def test_compiled_and_numpy_counts_identical(alignment):
    (energy, ra, dec), pointings = wide_events(seed=5)
    time = np.sort(np.random.default_rng(6).uniform(1e8, 1e8 + 1680, energy.size))
    header = {"MJDREFI": 51910, "MJDREFF": 7.4287037037e-4, "TIMESYS": "TT", "TIMEUNIT": "s",
              "TIMEREF": "local", "GEOLON": 16.5, "GEOLAT": -23.27, "ALTITUDE": 1835.0}  # fmt: skip
    lon_edges = np.linspace(-3, 3, 61)
    uneven = np.array([-3.0, -2.9, -1.0, 0.0, 0.05, 3.5])  # the bin search walks far from its guess
    for (ra_pnt, dec_pnt), lat_edges in zip(pointings, (np.linspace(-2.5, 3.5, 31), uneven)):
        rotation = None
        if alignment == "ALTAZ":
            header.update(RA_PNT=ra_pnt, DEC_PNT=dec_pnt)
            rotation = field_rotation(header, time.min(), time.max(), 16)
        counts = [
            kernel3d.count_fov_events(
                energy,
                ra,
                dec,
                ra_pnt,
                dec_pnt,
                ENERGY_EDGES,
                lon_edges,
                lat_edges,
                time=time,
                rotation=rotation,
                compiled=compiled,
            )
            for compiled in (True, False)
        ]
        assert counts[0].shape == (19, 60, lat_edges.size - 1)
        assert counts[0].sum() > 1000
        np.testing.assert_array_equal(counts[0], counts[1])
        # An independent path: FoV angles, then numpy's histogramdd.
        if rotation is None:
            lon, lat = fov.fov_radec(ra, dec, ra_pnt, dec_pnt)
        else:
            lon, lat = fov_altaz(ra, dec, time, ra_pnt, dec_pnt, rotation)
        expected = np.histogramdd((energy, lon, lat), bins=(ENERGY_EDGES, lon_edges, lat_edges))[0]
        np.testing.assert_array_equal(counts[0], expected)


@pytest.mark.requires_data
@pytest.mark.parametrize("alignment", ["RADEC", "ALTAZ"])
def test_histogram_fov_on_a_hess_run(hess_dir, alignment):
    columns, header = hess_run(hess_dir / "data" / "hess_dl3_dr1_obs_id_023523.fits.gz")
    counts, solid = kernel3d.histogram_fov(columns, header, ENERGY_EDGES, alignment=alignment)
    assert counts.shape == (19, 60, 60) and solid.shape == (60, 60)
    assert solid.sum() == pytest.approx(np.radians(6) * 2 * np.sin(np.radians(3)), rel=1e-12)
    lon, lat = fov.fov_radec(columns["RA"], columns["DEC"], header["RA_PNT"], header["DEC_PNT"])
    inside = (np.abs(lon) < 3) & (np.abs(lat) < 3) & (columns["ENERGY"] >= 0.1)
    inside &= columns["ENERGY"] < 100
    # The field rotates events in and out of the square: the totals agree to a few per cent.
    assert counts.sum() == pytest.approx(inside.sum(), rel=0 if alignment == "RADEC" else 0.05)


def test_bad_input():
    header = {"RA_PNT": 0.0, "DEC_PNT": 0.0}
    columns = {name: np.zeros(3) for name in ("ENERGY", "RA", "DEC", "TIME")}
    with pytest.raises(ValueError, match="alignment"):
        kernel3d.histogram_fov(columns, header, ENERGY_EDGES, alignment="GALACTIC")
    with pytest.raises(ValueError, match="lon edges out of range"):
        kernel3d.histogram_fov(columns, header, ENERGY_EDGES, [-90.0, 0.0])
    with pytest.raises(ValueError, match="drift"):
        kernel3d.histogram_fov(columns, {**header, "OBS_MODE": "DRIFT"}, ENERGY_EDGES)
    with pytest.raises(ValueError, match="TIMEREF"):
        observer.time_reference_and_unit({"TIMEREF": "SOLARSYSTEM", "MJDREFI": 0, "MJDREFF": 0})
    with pytest.raises(ValueError, match="TIMEREF"):
        observer.utc_dates({"TIMEREF": "SOLARSYSTEM", "MJDREFI": 0, "MJDREFF": 0}, [0.0])
    with pytest.raises(ValueError, match="TIMEUNIT"):
        observer.utc_dates({"TIMEUNIT": "fortnight", "MJDREFI": 0, "MJDREFF": 0}, [0.0])
    with pytest.raises(KeyError, match="ALTITUDE"):
        observer.site_of({"GEOLON": 16.5, "GEOLAT": -23.3})
