"""Exclusion regions on the sky: which events they drop and which part of a bin's solid angle.

Circles are the main case (:class:`Circle`, exact spherical geometry);
any other shape is a :class:`SkyShape` with a ``contains(ra, dec)`` test
and is integrated numerically on a fine grid. The solid angle of a
spherical cap of radius ``r`` is ``2π(1 − cos r)``; the overlap of two caps
(radii ``a``, ``b``, centres ``d`` apart) is, when their rims cross,

    2 [π − acos((cos d − cos a cos b) / (sin a sin b))
         − cos a · acos((cos b − cos d cos a) / (sin d sin a))
         − cos b · acos((cos a − cos d cos b) / (sin d sin b))]

(Gauss-Bonnet on the lens), the smaller cap when one holds the other, 0
when they are apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

#: Sub-samples per axis and offset ring of the numerical integration.
N_SUB = 64
#: Sub-samples per axis of a bin on a region's rim (generic integration), one epoch.
N_SUB_BIN = 32
#: ... and at least, at each of many epochs (whose sub-grids are shifted against each other).
N_SUB_EPOCH = 8
#: Added to a bin's reach (deg): the ALTAZ maps are rotations to ~1 arcsec (aberration).
REACH_MARGIN_DEG = 1e-3


@dataclass(frozen=True)
class Circle:
    """A circular exclusion region (ICRS), angles in deg."""

    ra: float
    dec: float
    radius: float

    def contains(self, ra, dec) -> np.ndarray:
        """Whether each position (deg) lies inside (on the rim counts as inside)."""
        return separation_deg(self.ra, self.dec, ra, dec) <= self.radius


@dataclass(frozen=True)
class SkyShape:
    """Any other region: a picklable ``contains(ra_deg, dec_deg) -> bool array`` and a bound.

    Attributes
    ----------
    contains_fn : callable
        Inside test of positions in deg.
    ra, dec, radius : float
        A circle (deg) that holds the whole shape (to skip far-away runs).
    """

    contains_fn: object
    ra: float
    dec: float
    radius: float

    def contains(self, ra, dec) -> np.ndarray:
        return np.asarray(self.contains_fn(np.asarray(ra), np.asarray(dec)), dtype=bool)


def separation_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance, deg (haversine, float64)."""
    ra1, dec1, ra2, dec2 = (np.deg2rad(np.asarray(x, dtype=np.float64)) for x in
                            (ra1, dec1, ra2, dec2))  # fmt: skip
    hav = (
        np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    )
    return np.rad2deg(2 * np.arcsin(np.sqrt(np.clip(hav, 0.0, 1.0))))


def inside_any(regions, ra, dec) -> np.ndarray:
    """Whether each position (deg) lies inside at least one region."""
    inside = np.zeros(np.shape(ra), dtype=bool)
    for region in regions:
        inside |= region.contains(ra, dec)
    return inside


def cap_overlap_sr(a_deg, b_deg, d_deg) -> np.ndarray:
    """Solid angle (sr) shared by caps of radii ``a`` and ``b`` whose centres are ``d`` apart."""
    a, b, d = np.broadcast_arrays(
        *(np.deg2rad(np.asarray(x, float)) for x in (a_deg, b_deg, d_deg))
    )
    small = np.minimum(a, b)
    out = np.where(d <= np.abs(a - b), 2 * np.pi * (1 - np.cos(small)), 0.0)
    lens = (d > np.abs(a - b)) & (d < a + b) & (small > 0)
    if np.any(lens):
        a, b, d = a[lens], b[lens], d[lens]
        ca, cb, cd, sa, sb, sd = np.cos(a), np.cos(b), np.cos(d), np.sin(a), np.sin(b), np.sin(d)
        angle = np.arccos(np.clip((cd - ca * cb) / (sa * sb), -1, 1))
        rim_a = np.arccos(np.clip((cb - cd * ca) / (sd * sa), -1, 1))
        rim_b = np.arccos(np.clip((ca - cd * cb) / (sd * sb), -1, 1))
        out = out.copy()
        out[lens] = 2 * (np.pi - angle - ca * rim_a - cb * rim_b)
    return out


def ring_excluded_fraction(offset_edges_deg, pointing, regions) -> np.ndarray:
    """Excluded fraction of each offset ring around a pointing, in [0, 1].

    Exact for circles that do not overlap one another within the field of
    view; overlapping circles and other shapes are integrated on a grid of
    :data:`N_SUB` x ``8 N_SUB`` sub-pixels per ring (equal solid angle).

    Parameters
    ----------
    offset_edges_deg : numpy.ndarray
        Ring edges, deg.
    pointing : tuple of float
        (RA, Dec) of the pointing, deg.
    regions : sequence of Circle or SkyShape
        The exclusion regions.
    """
    edges = np.asarray(offset_edges_deg, dtype=np.float64)
    near = [r for r in regions if separation_deg(*pointing, r.ra, r.dec) < edges[-1] + r.radius]
    if not near:
        return np.zeros(edges.size - 1)
    ring_sr = 2 * np.pi * (np.cos(np.deg2rad(edges[:-1])) - np.cos(np.deg2rad(edges[1:])))
    if all(isinstance(r, Circle) for r in near) and _disjoint(near):
        excluded = np.zeros(edges.size - 1)
        for circle in near:
            d = separation_deg(*pointing, circle.ra, circle.dec)
            cap = cap_overlap_sr(edges, circle.radius, d)
            excluded += np.diff(cap)
        return np.clip(excluded / ring_sr, 0.0, 1.0)
    return _sampled_ring_fraction(edges, pointing, near)


def _disjoint(circles) -> bool:
    for i, c1 in enumerate(circles):
        for c2 in circles[i + 1 :]:
            if separation_deg(c1.ra, c1.dec, c2.ra, c2.dec) < c1.radius + c2.radius:
                return False
    return True


def _sampled_ring_fraction(edges, pointing, regions) -> np.ndarray:
    """Grid integration: sub-rings equal in solid angle, times equal azimuth steps."""
    n_ring = edges.size - 1
    cos_edges = np.cos(np.deg2rad(edges))
    step = (np.arange(N_SUB) + 0.5) / N_SUB
    cos_offset = cos_edges[:-1, None] + (cos_edges[1:] - cos_edges[:-1])[:, None] * step
    offset = np.rad2deg(np.arccos(np.clip(cos_offset, -1, 1)))
    azimuth = (np.arange(8 * N_SUB) + 0.5) * 360.0 / (8 * N_SUB)
    offset_grid = np.broadcast_to(offset[..., None], (n_ring, N_SUB, azimuth.size))
    ra, dec = destination(pointing[0], pointing[1], offset_grid, azimuth)
    return inside_any(regions, ra, dec).reshape(n_ring, -1).mean(axis=1)


def sampled_excluded_fraction(centre_ra, centre_dec, reach_deg, regions, samples) -> np.ndarray:
    """Excluded fraction of spatial bins over a run, from their centres and sub-samples.

    The generic part of :meth:`bkgdask.models.base.ModelKind.excluded_fraction`.
    At each epoch a bin whose centre is farther from every region's bounding
    circle than the bin's reach is out (0), one inside a :class:`Circle` by
    more than its reach is in (1); the others, on a rim, are the mean of the
    regions' inside test over the bin's sub-samples. The result is the mean
    over the epochs.

    Parameters
    ----------
    centre_ra, centre_dec : numpy.ndarray
        Sky positions (deg) of the bins' centres, shape ``spatial_shape + (n_epochs,)``.
    reach_deg : numpy.ndarray
        Shape ``spatial_shape``: every point of a bin lies within this angle of its centre.
    regions : sequence of Circle or SkyShape
    samples : callable
        ``samples(where)`` with ``where`` a bool array shaped as ``centre_ra``
        gives ``ra, dec`` (deg) of the selected (bin, epoch) pairs' sub-samples,
        shape ``(where.sum(), n_sub)``, each standing for the same solid angle.

    Returns
    -------
    numpy.ndarray
        Shape ``spatial_shape``, in [0, 1].
    """
    reach = np.asarray(reach_deg, dtype=np.float64)[..., None] + REACH_MARGIN_DEG
    inside = np.zeros(np.shape(centre_ra), dtype=bool)
    near = np.zeros(np.shape(centre_ra), dtype=bool)
    for region in regions:
        distance = separation_deg(region.ra, region.dec, centre_ra, centre_dec)
        near |= distance < region.radius + reach
        if isinstance(region, Circle):
            inside |= distance + reach <= region.radius
    fraction = inside.astype(np.float64)
    rim = near & ~inside
    if np.any(rim):
        ra, dec = samples(rim)
        fraction[rim] = inside_any(regions, ra, dec).mean(axis=-1)
    return fraction.mean(axis=-1)


def rim_subdivisions(n_epochs: int) -> int:
    """Sub-samples per axis of a rim bin at each of ``n_epochs`` epochs.

    :data:`N_SUB_BIN` for one epoch; with more, about ``N_SUB_BIN**2`` samples
    in all (the epochs' sub-grids are shifted against each other), at least
    :data:`N_SUB_EPOCH` per axis.
    """
    return max(N_SUB_EPOCH, int(np.ceil(N_SUB_BIN / np.sqrt(n_epochs))))


def destination(ra_deg, dec_deg, offset_deg, position_angle_deg):
    """Sky position (deg) at an offset and position angle (east of north) from a point.

    The spherical "destination point" formula with ``atan2`` for both
    coordinates, exact at the poles; RA in [0, 360] (360 possible by rounding).
    """
    ra0, dec0, d, pa = (np.deg2rad(np.asarray(x, dtype=np.float64)) for x in
                        (ra_deg, dec_deg, offset_deg, position_angle_deg))  # fmt: skip
    sin_dec0, cos_dec0 = np.sin(dec0), np.cos(dec0)
    sin_d, cos_d = np.sin(d), np.cos(d)
    # Components of the destination unit vector in the frame of the pointing meridian.
    z = sin_dec0 * cos_d + cos_dec0 * sin_d * np.cos(pa)  # = sin(dec)
    x = cos_dec0 * cos_d - sin_dec0 * sin_d * np.cos(pa)  # = cos(dec) cos(dra)
    y = sin_d * np.sin(pa)  # = cos(dec) sin(dra)
    dec = np.rad2deg(np.arctan2(z, np.hypot(x, y)))
    return np.mod(np.rad2deg(ra0 + np.arctan2(y, x)), 360.0), dec


def without_excluded(events, regions):
    """A run's events (:class:`bkgdask.io.runs.RunEvents`) without those inside ``regions``."""
    if not regions:
        return events
    keep = ~inside_any(regions, events.ra, events.dec)
    columns = {name: values[keep] for name, values in events.columns.items()}
    return dataclasses.replace(
        events,
        energy=events.energy[keep],
        ra=events.ra[keep],
        dec=events.dec[keep],
        columns=columns,
    )
