"""The per-run BKG_3D kernel: counts in (energy, FoV lon, FoV lat) bins in one pass.

Per event: energy bin, the event's Cartesian vector in the RADEC FoV frame
(short Taylor series around the pointing, as :mod:`bkgdask.models.kernel2d`), for the
ALTAZ alignment the run's field rotation at the event's time applied to it
(:class:`bkgdask.models.rotation.FieldRotation`: a fixed near-identity remainder,
then the turn about the pointing from cubic splines of its cos and sin), then
the FoV bins found without inverse trigonometry: longitude through y/x
against tan(lon edges), latitude through z/|v| against sin(lat edges), both
monotonic. Compiled with numba when installed; otherwise the same arithmetic
in vectorised numpy, giving the same counts.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from .fov import pixel_solid_angles
from .fov import radec_fov_vectors as _radec_fov_vectors
from .kernel2d import HAVE_NUMBA, _bin_of, _cos_small, _sin_small, _wrapped
from .rotation import DEFAULT_N_NODES, FieldRotation, field_rotation, unit_scale

#: FoV alignments of GADF BKG_3D models (header keyword ``FOVALIGN``).
ALIGNMENTS = ("RADEC", "ALTAZ")
#: Proposed FoV binning: 0.1 deg bins over +-3 deg (H.E.S.S. DR1's models: 0.1 deg over +-2.5 deg).
DEFAULT_FOV_EDGES_DEG = np.round(np.linspace(-3.0, 3.0, 61), 10)
#: The loop's name of :func:`bkgdask.models.rotation.unit_scale` (compiled in place by
#: ``_compiled``).
_unit_scale = unit_scale
_NO_ROTATION = FieldRotation(0.0, 0.0, np.zeros((0, 4, 2)), np.zeros((0, 9)))


def kernel_fov_edges(lon_edges_deg, lat_edges_deg) -> tuple[np.ndarray, np.ndarray]:
    """FoV bin edges as the kernel compares them: tan of the longitudes, sin of the latitudes.

    Parameters
    ----------
    lon_edges_deg, lat_edges_deg : array-like
        Strictly increasing FoV longitude edges within (-90, 90) deg and latitude
        edges within [-90, 90] deg.

    Returns
    -------
    tan_lon_edges, sin_lat_edges : numpy.ndarray
        float64, read-only (cached: a build asks for the same edges once a run).
    """
    lon = np.ascontiguousarray(lon_edges_deg, dtype=np.float64)
    lat = np.ascontiguousarray(lat_edges_deg, dtype=np.float64)
    return _cached_kernel_edges(lon.tobytes(), lon.ndim, lat.tobytes(), lat.ndim)


@functools.lru_cache(maxsize=16)
def _cached_kernel_edges(lon_bytes, lon_ndim, lat_bytes, lat_ndim):
    """:func:`kernel_fov_edges` of edges given by their float64 bytes and dimensions."""
    kernel_edges = []
    for name, raw, ndim in (("lon", lon_bytes, lon_ndim), ("lat", lat_bytes, lat_ndim)):
        edges = np.frombuffer(raw, dtype=np.float64)
        if ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"FoV {name} edges must be strictly increasing, got {edges.tolist()}")
        if not np.all(np.abs(edges) <= 90.0) or (name == "lon" and np.any(np.abs(edges) == 90)):
            raise ValueError(f"FoV {name} edges out of range, got {edges.tolist()}")
        values = np.tan(np.radians(edges)) if name == "lon" else np.sin(np.radians(edges))
        values.flags.writeable = False
        kernel_edges.append(values)
    return tuple(kernel_edges)


def _bin_near_uniform(edges, value, n_bins, inverse_width):
    """Index i with edges[i] <= value < edges[i + 1], for nearly equally spaced edges.

    A guess from equal spacing (``inverse_width`` = n_bins / (edges[-1] - edges[0])),
    corrected by walking; needs edges[0] <= value < edges[-1].
    """
    index = min(int((value - edges[0]) * inverse_width), n_bins - 1)
    while value < edges[index]:
        index -= 1
    while value >= edges[index + 1]:
        index += 1
    return index


def _counts_loop(
    energy, ra, dec, time, ra_pnt, dec_pnt, energy_edges, tan_lon_edges, sin_lat_edges,
    turn, rest, time_start, inverse_step,
):  # fmt: skip
    """One pass: energy bin, RADEC FoV vector, field rotation (ALTAZ), FoV bins, count."""
    n_energy, n_lon, n_lat = energy_edges.size - 1, tan_lon_edges.size - 1, sin_lat_edges.size - 1
    counts = np.zeros((n_energy, n_lon, n_lat), dtype=np.int64)
    n_segments = turn.shape[0]
    deg = np.pi / 180.0
    ra0, dec0 = ra_pnt * deg, dec_pnt * deg
    cos_dec0, sin_dec0 = np.cos(dec0), np.sin(dec0)
    e_lo, e_hi = energy_edges[0], energy_edges[-1]
    t_lo, t_hi = tan_lon_edges[0], tan_lon_edges[-1]
    s_lo, s_hi = sin_lat_edges[0], sin_lat_edges[-1]
    lon_scale, lat_scale = n_lon / (t_hi - t_lo), n_lat / (s_hi - s_lo)
    for k in range(energy.size):
        e = energy[k]
        if not (e >= e_lo and e < e_hi):
            continue
        d_dec = dec[k] * deg - dec0
        d_ra = _wrapped(ra[k] * deg - ra0)
        if abs(d_dec) <= 0.2 and abs(d_ra) <= 0.2:
            sin_dd, cos_dd = _sin_small(d_dec), _cos_small(d_dec)
            sin_dra, versine = _sin_small(d_ra), 1.0 - _cos_small(d_ra)
        else:
            sin_dd, cos_dd = np.sin(d_dec), np.cos(d_dec)
            sin_dra, versine = np.sin(d_ra), 2.0 * np.sin(0.5 * d_ra) ** 2
        cos_dec = cos_dec0 * cos_dd - sin_dec0 * sin_dd
        x = cos_dd - cos_dec0 * cos_dec * versine
        y = -cos_dec * sin_dra
        z = sin_dd + sin_dec0 * cos_dec * versine
        if n_segments > 0:
            position = (time[k] - time_start) * inverse_step
            segment = min(max(int(position), 0), n_segments - 1)
            f = position - segment
            c, n = turn[segment], rest[segment]
            cos_turn = ((c[0, 0] * f + c[1, 0]) * f + c[2, 0]) * f + c[3, 0]
            sin_turn = ((c[0, 1] * f + c[1, 1]) * f + c[2, 1]) * f + c[3, 1]
            x1 = n[0] * x + n[1] * y + n[2] * z
            y1 = n[3] * x + n[4] * y + n[5] * z
            z1 = n[6] * x + n[7] * y + n[8] * z
            x, y, z = x1, cos_turn * y1 + sin_turn * z1, sin_turn * y1 - cos_turn * z1
            z = z * _unit_scale(x * x + y * y + z * z - 1.0)
        if not x > 0:
            continue
        tan_lon = y / x
        if not (tan_lon >= t_lo and tan_lon < t_hi and z >= s_lo and z < s_hi):
            continue
        counts[
            _bin_of(energy_edges, e, n_energy),
            _bin_near_uniform(tan_lon_edges, tan_lon, n_lon, lon_scale),
            _bin_near_uniform(sin_lat_edges, z, n_lat, lat_scale),
        ] += 1
    return counts


def _counts_numpy(
    energy, ra, dec, time, ra_pnt, dec_pnt, energy_edges, tan_lon_edges, sin_lat_edges,
    turn, rest, time_start, inverse_step,
):  # fmt: skip
    """The same arithmetic as :func:`_counts_loop`, vectorised."""
    x, y, z = _radec_fov_vectors(ra, dec, ra_pnt, dec_pnt)
    if turn.shape[0] > 0:
        x, y, z = FieldRotation(time_start, inverse_step, turn, rest).apply(time, x, y, z)
        z = z * unit_scale(x * x + y * y + z * z - 1.0)
    front = x > 0
    tan_lon = np.where(front, y / np.where(front, x, 1.0), np.inf)
    shape = (energy_edges.size - 1, tan_lon_edges.size - 1, sin_lat_edges.size - 1)
    indices = [
        np.searchsorted(edges, values, side="right") - 1
        for edges, values in ((energy_edges, energy), (tan_lon_edges, tan_lon), (sin_lat_edges, z))
    ]
    inside = np.ones(energy.shape, dtype=bool)
    for index, n_bins in zip(indices, shape):
        inside &= (index >= 0) & (index < n_bins)
    flat = np.ravel_multi_index([index[inside] for index in indices], shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).astype(np.int64).reshape(shape)


@functools.cache
def _compiled():
    """The loop compiled by numba (imported here: loading numba costs ~0.4 s)."""
    from numba import njit

    inline = njit(inline="always")
    helpers = {"_sin_small": _sin_small, "_cos_small": _cos_small, "_bin_of": _bin_of}
    helpers["_wrapped"] = _wrapped
    helpers["_bin_near_uniform"] = _bin_near_uniform
    helpers["_unit_scale"] = unit_scale
    # kernel.py may have compiled its helpers in place already: compile the Python functions.
    globals().update({name: inline(getattr(f, "py_func", f)) for name, f in helpers.items()})
    return njit(cache=True, nogil=True)(_counts_loop)


def count_fov_events(
    energy, ra, dec, ra_pnt, dec_pnt, energy_edges, lon_edges_deg, lat_edges_deg,
    *, time=None, rotation: FieldRotation | None = None, compiled: bool | None = None,
) -> np.ndarray:  # fmt: skip
    """Counts in half-open (energy, fov_lon, fov_lat) bins.

    Parameters
    ----------
    energy : numpy.ndarray
        Event energies, TeV, float64.
    ra, dec : numpy.ndarray
        Event positions (ICRS), deg, float64.
    ra_pnt, dec_pnt : float
        Pointing (ICRS), deg.
    energy_edges : numpy.ndarray
        Energy bin edges, TeV.
    lon_edges_deg, lat_edges_deg : array-like
        FoV longitude and latitude bin edges, deg (:func:`kernel_fov_edges`).
    time : numpy.ndarray, optional
        Event times in the EVENTS ``TIME`` units, float64; needed with ``rotation``.
    rotation : FieldRotation, optional
        The run's field rotation (:func:`bkgdask.models.rotation.field_rotation`): ALTAZ
        alignment; None: RADEC alignment.
    compiled : bool, optional
        The compiled loop (True) or numpy (False); default: compiled if numba is there.

    Returns
    -------
    numpy.ndarray
        int64, shape (n_energy, n_lon, n_lat).
    """
    tan_lon_edges, sin_lat_edges = kernel_fov_edges(lon_edges_deg, lat_edges_deg)
    if rotation is None:
        rotation, time = _NO_ROTATION, energy[:0]
    elif time is None:
        raise ValueError("the ALTAZ alignment (a rotation) needs the event times")
    loop = _compiled() if (HAVE_NUMBA if compiled is None else compiled) else _counts_numpy
    return loop(
        energy, ra, dec, time, float(ra_pnt), float(dec_pnt), np.asarray(energy_edges, float),
        tan_lon_edges, sin_lat_edges, rotation.turn, rotation.rest, float(rotation.time_start),
        float(rotation.inverse_step),
    )  # fmt: skip


def histogram_fov(
    columns: Mapping[str, np.ndarray],
    header: Mapping,
    energy_edges,
    lon_edges_deg=DEFAULT_FOV_EDGES_DEG,
    lat_edges_deg=DEFAULT_FOV_EDGES_DEG,
    alignment: str = "RADEC",
    *,
    compiled: bool | None = None,
    n_nodes: int = DEFAULT_N_NODES,
) -> tuple[np.ndarray, np.ndarray]:
    """Counts and pixel solid angles of one run for a BKG_3D model.

    Parameters
    ----------
    columns : Mapping of str to numpy.ndarray
        EVENTS columns as float64: ``ENERGY`` (TeV), ``RA``, ``DEC`` (deg, ICRS)
        and, for ALTAZ, ``TIME`` (``TIMEUNIT`` of the header).
    header : Mapping
        EVENTS header: ``RA_PNT``, ``DEC_PNT`` (deg); for ALTAZ also ``MJDREFI``,
        ``MJDREFF``, ``TIMESYS``, ``TIMEREF``, ``TIMEUNIT``, ``GEOLON``, ``GEOLAT``
        and ``ALTITUDE`` (or ``GEOALT``).
    energy_edges : array-like
        Energy bin edges, TeV.
    lon_edges_deg, lat_edges_deg : array-like, optional
        FoV bin edges, deg; default :data:`DEFAULT_FOV_EDGES_DEG`.
    alignment : {"RADEC", "ALTAZ"}
        FoV alignment (``FOVALIGN`` of the model).
    compiled : bool, optional
        The compiled loop (True) or numpy (False); default: compiled if numba is there.
    n_nodes : int, optional
        Spline nodes of the field rotation over the run (ALTAZ).

    Returns
    -------
    counts : numpy.ndarray
        int64, (n_energy, n_lon, n_lat).
    solid_angles : numpy.ndarray
        float64, (n_lon, n_lat), sr: multiply by the observation time and the
        energy-bin widths for the exposure.
    """
    alignment = alignment.upper()
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if str(header.get("OBS_MODE", "POINTING")).strip().upper() == "DRIFT":
        raise ValueError("drift-scan runs have no fixed RA/Dec pointing")
    energy, ra, dec = columns["ENERGY"], columns["RA"], columns["DEC"]
    time, rotation = None, None
    if alignment == "ALTAZ":
        time = columns["TIME"]
        if time.size:
            rotation = field_rotation(header, float(time.min()), float(time.max()), n_nodes)
    counts = count_fov_events(
        energy, ra, dec, header["RA_PNT"], header["DEC_PNT"], energy_edges,
        lon_edges_deg, lat_edges_deg, time=time, rotation=rotation, compiled=compiled,
    )  # fmt: skip
    return counts, pixel_solid_angles(lon_edges_deg, lat_edges_deg)
