"""FoV frames (RADEC and ALTAZ alignment), RADEC FoV coordinates of events, and FoV pixels.

The definitions are gammapy 2.1's (``FoVICRSFrame`` and ``FoVAltAzFrame`` of
``gammapy.utils.coordinates``): the FoV frame is the sky-offset frame centred
on the pointing, its Cartesian axes ``diag(1, -1, 1) Ry(-lat_pnt) Rz(lon_pnt)``
times those of the sky frame, i.e. ``fov_lon`` is the offset-frame longitude
with its sign reversed (positive towards decreasing RA, resp. decreasing
azimuth) and ``fov_lat`` the offset-frame latitude.

* RADEC: the sky frame is ICRS and the centre the fixed pointing
  ``RA_PNT``/``DEC_PNT`` (as ``FixedPointingInfo.fixed_icrs``); computed here in
  plain float64 numpy.
* ALTAZ: the sky frame is ``AltAz`` at the event's time and the observatory
  (``GEOLON``/``GEOLAT``/``ALTITUDE``, no refraction), the centre the fixed ICRS
  pointing transformed to that ``AltAz`` (as ``FixedPointingInfo.get_altaz``);
  its turn against the RADEC frame over a run is :mod:`bkgdask.models.rotation`'s.
"""

from __future__ import annotations

import numpy as np

from .observer import DEG

#: Steps of the R2 sequence in two dimensions: 1/g and 1/g² with g³ = g + 1 (Roberts 2018).
R2_STEPS = (0.7548776662466927, 0.5698402909980532)


def offset_frame_matrix(lon_pnt_deg, lat_pnt_deg) -> np.ndarray:
    """Rotation from a sky frame's Cartesian axes to those of the FoV frame centred on a point.

    Parameters
    ----------
    lon_pnt_deg, lat_pnt_deg : float or array-like
        Centre of the FoV frame in the sky frame (RA/Dec or Az/Alt), deg.

    Returns
    -------
    numpy.ndarray
        (..., 3, 3) float64: ``diag(1, -1, 1) Ry(-lat) Rz(lon)`` in astropy's
        (passive) rotation convention, as gammapy's FoV frames; one per centre.
    """
    lon, lat = np.radians(lon_pnt_deg), np.radians(lat_pnt_deg)
    cos_lon, sin_lon, cos_lat, sin_lat = np.cos(lon), np.sin(lon), np.cos(lat), np.sin(lat)
    rows = [
        [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat],
        [sin_lon, -cos_lon, np.zeros_like(cos_lon)],
        [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def unit_vectors(lon_deg, lat_deg) -> np.ndarray:
    """Cartesian unit vectors, shape (..., 3), of directions given in deg (broadcast together)."""
    lon, lat = np.broadcast_arrays(np.radians(lon_deg), np.radians(lat_deg))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def vectors_to_lonlat(x, y, z) -> tuple[np.ndarray, np.ndarray]:
    """Longitude in [-180, 180] and latitude, deg, of (not necessarily unit) vectors."""
    return np.degrees(np.arctan2(y, x)), np.degrees(np.arctan2(z, np.hypot(x, y)))


def radec_fov_vectors(ra_deg, dec_deg, ra_pnt_deg: float, dec_pnt_deg: float):
    """Cartesian components (x, y, z) of events in the RADEC FoV frame, float64.

    Written with differences from the pointing (sin and 1 - cos of the RA and
    Dec differences), so that there is no cancellation near the centre; RA
    differences wrap at RA = 0 by themselves.

    Parameters
    ----------
    ra_deg, dec_deg : array-like
        Event positions (ICRS), deg.
    ra_pnt_deg, dec_pnt_deg : float
        Pointing (ICRS), deg.

    Returns
    -------
    x, y, z : numpy.ndarray
        x towards the pointing, y towards decreasing RA, z towards the north
        celestial pole (at the pointing); unit vectors to float64 rounding.
    """
    dec = np.asarray(dec_deg, dtype=np.float64) * DEG
    d_dec = dec - dec_pnt_deg * DEG
    d_ra = (np.asarray(ra_deg, dtype=np.float64) - ra_pnt_deg) * DEG
    cos_dec0, sin_dec0 = np.cos(dec_pnt_deg * DEG), np.sin(dec_pnt_deg * DEG)
    cos_dec = np.cos(dec)
    versine = 2.0 * np.sin(0.5 * d_ra) ** 2  # 1 - cos(d_ra), without cancellation
    x = np.cos(d_dec) - cos_dec0 * cos_dec * versine
    y = -cos_dec * np.sin(d_ra)
    z = np.sin(d_dec) + sin_dec0 * cos_dec * versine
    return x, y, z


def fov_radec(ra_deg, dec_deg, ra_pnt_deg: float, dec_pnt_deg: float):
    """FoV coordinates of events in the RADEC alignment, deg (gammapy's ``sky_to_fov``).

    Returns
    -------
    fov_lon, fov_lat : numpy.ndarray
        float64, deg; ``fov_lon`` in [-180, 180], positive towards decreasing RA.
    """
    return vectors_to_lonlat(*radec_fov_vectors(ra_deg, dec_deg, ra_pnt_deg, dec_pnt_deg))


def pixel_solid_angles(lon_edges_deg, lat_edges_deg) -> np.ndarray:
    """Exact solid angles of the lon/lat pixels of a FoV frame.

    Parameters
    ----------
    lon_edges_deg, lat_edges_deg : array-like
        FoV longitude and latitude bin edges, deg (latitudes within [-90, 90]).

    Returns
    -------
    numpy.ndarray
        (n_lon, n_lat) float64, sr: (lon2 - lon1) (sin lat2 - sin lat1).
    """
    lon = np.radians(np.asarray(lon_edges_deg, dtype=np.float64))
    sin_lat = np.sin(np.radians(np.asarray(lat_edges_deg, dtype=np.float64)))
    return np.outer(np.diff(lon), np.diff(sin_lat))


def subpixel_shifts(n_epochs: int) -> np.ndarray:
    """Where the samples sit in their sub-pixels at successive epochs, (n_epochs, 2) in [0, 1).

    The middle (0.5, 0.5) at the first epoch, then the R2 low-discrepancy
    sequence (Roberts 2018): an average over epochs samples each pixel on a
    finer set of points than any one epoch.
    """
    return np.mod(0.5 + np.arange(n_epochs)[:, None] * np.asarray(R2_STEPS), 1.0)


def pixel_sample_vectors(lon_edges_deg, lat_edges_deg, lon_index, lat_index, n_sub, shifts=0.5):
    """FoV unit vectors of ``n_sub`` x ``n_sub`` sub-pixels of equal solid angle of given pixels.

    A pixel is cut in equal steps of longitude and of sin(latitude), so every
    sub-pixel has the same solid angle; each holds one sample, ``shifts`` of
    the way across it in lon and in sin(lat).

    Parameters
    ----------
    lon_edges_deg, lat_edges_deg : array-like
        FoV pixel edges, deg.
    lon_index, lat_index : numpy.ndarray
        (k,) pixel indices.
    n_sub : int
        Sub-pixels per axis.
    shifts : float or numpy.ndarray
        Position of the sample in its sub-pixel, in [0, 1): a number, or
        (k, 2) per pixel (lon, sin lat); 0.5 is the middle.

    Returns
    -------
    x, y, z : numpy.ndarray
        (k, n_sub**2) each: unit vectors in the FoV frame.
    """
    lon_index, lat_index = np.asarray(lon_index), np.asarray(lat_index)
    shifts = np.broadcast_to(np.asarray(shifts, dtype=np.float64), (lon_index.size, 2))
    lon = np.radians(np.asarray(lon_edges_deg, dtype=np.float64))
    sin_lat = np.sin(np.radians(np.asarray(lat_edges_deg, dtype=np.float64)))
    steps = np.arange(n_sub)
    lon_s = lon[lon_index, None] + np.diff(lon)[lon_index, None] * (steps + shifts[:, :1]) / n_sub
    sin_s = sin_lat[lat_index, None] + np.diff(sin_lat)[lat_index, None] * (
        (steps + shifts[:, 1:]) / n_sub
    )
    cos_s = np.sqrt(np.clip(1.0 - sin_s**2, 0.0, 1.0))
    shape = (lon_index.size, n_sub * n_sub)
    x = (np.cos(lon_s)[:, :, None] * cos_s[:, None, :]).reshape(shape)
    y = (np.sin(lon_s)[:, :, None] * cos_s[:, None, :]).reshape(shape)
    z = np.broadcast_to(sin_s[:, None, :], (lon_index.size, n_sub, n_sub)).reshape(shape)
    return x, y, z


def pixel_reach_deg(lon_edges_deg, lat_edges_deg) -> np.ndarray:
    """Angle (deg) from each pixel's centre sample to its farthest point.

    The centre sample is :func:`pixel_sample_vectors`' with one sub-pixel. The
    distance from a point grows monotonically along a meridian and along a
    parallel away from it, so the farthest point of a lon/lat pixel is a corner.

    Returns
    -------
    numpy.ndarray
        (n_lon, n_lat), deg.
    """
    lon = np.asarray(lon_edges_deg, dtype=np.float64)
    lat = np.asarray(lat_edges_deg, dtype=np.float64)
    i, j = np.indices((lon.size - 1, lat.size - 1)).reshape(2, -1)
    centre = np.concatenate(pixel_sample_vectors(lon, lat, i, j, 1), axis=-1)  # (n, 3)
    reach = np.zeros(i.size)
    for corner_lon in (lon[:-1], lon[1:]):
        for corner_lat in (lat[:-1], lat[1:]):
            chord = np.linalg.norm(unit_vectors(corner_lon[i], corner_lat[j]) - centre, axis=-1)
            reach = np.maximum(reach, np.degrees(2 * np.arcsin(np.clip(chord / 2, 0, 1))))
    return reach.reshape(lon.size - 1, lat.size - 1)
