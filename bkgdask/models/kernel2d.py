"""The fused per-event loop: energy bin, exact offset, count, in one pass.

Compiled with numba when it is installed (one pass over the events, no
temporary arrays); otherwise vectorised numpy. Both bin the offset through
sin²(θ/2) of the great-circle separation (haversine), which is monotonic in θ,
in float64, and exact at the poles and across RA = 0. numpy first computes it
in float32 (SIMD sines, ~6x faster), within a proven bound of the float64
value, and computes float64 only for the events that bound leaves too near
an edge: the same bins as float64 throughout.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading

import numpy as np

from .bin_lookup import bin_lookup

#: Whether the compiled loop can be had (numba installed); it is compiled on first use.
HAVE_NUMBA = importlib.util.find_spec("numba") is not None


def hav_edges(offset_edges_deg: np.ndarray) -> np.ndarray:
    """Offset bin edges as sin²(θ/2)."""
    return np.sin(np.radians(offset_edges_deg) / 2) ** 2


def haversine(ra_pnt: float, dec_pnt: float, ra_deg: np.ndarray, dec_deg: np.ndarray):
    """sin²(θ/2) of the separation θ of each event from the pointing (all deg), float64."""
    dec = np.radians(np.array(dec_deg, dtype=np.float64, ndmin=1))
    half_dra = np.radians(np.array(ra_deg, dtype=np.float64, ndmin=1))
    half_dra -= np.radians(ra_pnt)
    half_dra *= 0.5
    half_ddec = dec - np.radians(dec_pnt)
    half_ddec *= 0.5
    sin_ddec = np.sin(half_ddec, out=half_ddec)
    sin_dra = np.sin(half_dra, out=half_dra)
    hav = np.cos(dec, out=dec)
    hav *= np.cos(np.radians(dec_pnt))
    hav *= sin_dra * sin_dra
    hav += sin_ddec * sin_ddec
    return hav


def separation_deg(ra_pnt: float, dec_pnt: float, ra_deg, dec_deg) -> np.ndarray:
    """Great-circle separation from the pointing, deg: 2 arcsin(√haversine)."""
    return np.degrees(2 * np.arcsin(np.sqrt(haversine(ra_pnt, dec_pnt, ra_deg, dec_deg))))


def _max_hav_loop(ra, dec, ra_pnt, dec_pnt):
    """The largest haversine of the events' offsets, in one pass (-1 without events).

    An event's haversine (:func:`_hav_of`) is computed only where a bound of it
    exceeds the largest so far: the same maximum, for a few operations an event.
    """
    deg = np.pi / 180.0
    ra0, dec0 = ra_pnt * deg, dec_pnt * deg
    cos_dec0, sin_dec0 = np.cos(dec0), np.sin(dec0)
    largest = -1.0
    for k in range(ra.size):
        ra_k, dec_k = ra[k] * deg, dec[k] * deg
        d_dec = dec_k - dec0
        d_ra = _wrapped(ra_k - ra0)
        if _hav_bound(d_dec, d_ra, cos_dec0) < largest:
            continue
        largest = max(largest, _hav_of(ra_k, dec_k, ra0, dec0, cos_dec0, sin_dec0))
    return largest


def _hav_bound(d_dec, d_ra, cos_dec0):
    """An upper bound of the haversine of the offsets (Δδ, Δα) from the pointing (rad).

    From |sin x| <= |x| and |cos δ| <= 1, raised by a margin (1e-6 relative,
    1e-12 absolute) far above the rounding of either (~1e-15: every term is at
    most ~1). Scalars (the compiled loop) or arrays.
    """
    bound = 0.25 * (d_dec * d_dec + np.abs(cos_dec0) * (d_ra * d_ra))
    return bound * (1.0 + 1e-6) + 1e-12


def max_haversine(ra_pnt: float, dec_pnt: float, ra_deg, dec_deg, compiled=None) -> float:
    """The largest sin²(θ/2) of :func:`haversine` (-1 without events).

    ``compiled``: one pass of the numba-compiled loop (default: if numba is
    installed), else numpy's temporaries. Either computes the haversine only of
    the events whose bound (:func:`_hav_bound`) reaches the largest: the same
    maximum as of every event's.
    """
    if not len(ra_deg):
        return -1.0
    if HAVE_NUMBA if compiled is None else compiled:
        return float(_compiled()[1](ra_deg, dec_deg, float(ra_pnt), float(dec_pnt)))
    ra, dec = np.asarray(ra_deg, np.float64), np.asarray(dec_deg, np.float64)
    deg = np.pi / 180.0
    with np.errstate(over="ignore", invalid="ignore"):  # (RA, Dec far beyond 360 deg)
        d_ra = np.abs(ra - ra_pnt)
        d_ra = np.minimum(d_ra, np.abs(d_ra - 360.0))  # the RA difference across 0, too
        bound = _hav_bound((dec - dec_pnt) * deg, d_ra * deg, np.cos(dec_pnt * deg))
    top = np.argmax(bound)
    reached = haversine(ra_pnt, dec_pnt, ra[top], dec[top])[0]
    maybe = ~(bound < reached)  # (all where a value is not finite)
    return float(np.max(haversine(ra_pnt, dec_pnt, ra[maybe], dec[maybe])))


def _counts_numpy(energy, ra, dec, ra_pnt, dec_pnt, energy_edges, offset_hav_edges):
    n_energy, n_offset = energy_edges.size - 1, offset_hav_edges.size - 1
    i_e = bin_lookup(energy_edges).index(np.asarray(energy, dtype=np.float64)) - 1
    i_o = offset_bins(ra_pnt, dec_pnt, ra, dec, offset_hav_edges)
    inside = (i_e >= 0) & (i_e < n_energy) & (i_o >= 0) & (i_o < n_offset)
    flat = np.bincount(i_e[inside] * n_offset + i_o[inside], minlength=n_energy * n_offset)
    return flat.astype(np.int64, copy=False).reshape(n_energy, n_offset)


#: Bound of the relative difference between :func:`haversine32` and :func:`haversine`:
#: about 1.2e-6 from float32's roundings (6e-8 each) and its sines and cosines (a few
#: ulp), with cos δ >= 0.17 (:data:`HAV32_MAX_DEC`); taken 8x larger.
HAV32_TOLERANCE = 1e-5
#: And of their absolute difference within ~1e-7 deg of the pointing (1e-18 = sin²(θ/2)
#: at 1.1e-7 deg), where both are the rounding of the positions (float64, ~1e-14 deg).
HAV32_FLOOR = 1e-18
#: Largest |declination| (deg) of the pointing and the events for :func:`haversine32`.
HAV32_MAX_DEC = 80.0


def haversine32(ra_pnt: float, dec_pnt: float, ra: np.ndarray, dec: np.ndarray):
    """:func:`haversine` in float32, its differences formed in float64 (deg in, float64).

    Returns
    -------
    numpy.ndarray or None
        float32 values within :data:`HAV32_TOLERANCE` (relative) plus
        :data:`HAV32_FLOOR` of the float64 ones; None where that is not
        guaranteed: no events, a pointing or an event beyond
        :data:`HAV32_MAX_DEC`, non-finite positions.
    """
    if not (ra.size and abs(dec_pnt) <= HAV32_MAX_DEC and np.abs(dec).max() <= HAV32_MAX_DEC):
        return None
    d_ra = ra - ra_pnt
    reach = np.abs(d_ra).max()
    if not reach <= 180.0:  # across RA = 0 (or not finite)
        if not np.isfinite(reach):
            return None
        d_ra = np.where(d_ra > 180.0, d_ra - 360.0, np.where(d_ra < -180.0, d_ra + 360.0, d_ra))
    half_deg = np.pi / 360.0
    sin_ra = np.sin((d_ra * half_deg).astype(np.float32))
    sin_dec = np.sin(((dec - dec_pnt) * half_deg).astype(np.float32))
    cos_dec = np.cos((dec * (2.0 * half_deg)).astype(np.float32))
    sin_ra *= sin_ra
    sin_ra *= cos_dec
    sin_ra *= np.float32(math.cos(dec_pnt * 2.0 * half_deg))
    sin_dec *= sin_dec
    sin_dec += sin_ra
    return sin_dec


def offset_bins(ra_pnt, dec_pnt, ra, dec, offset_hav_edges: np.ndarray) -> np.ndarray:
    """Each event's offset bin: ``searchsorted(edges, haversine(...), "right") - 1``.

    From :func:`haversine32` where its bound keeps the float64 value inside the
    same bin (:func:`_sure_ranges`), from :func:`haversine` for the rest: the
    bins of float64, for a fraction of its cost. The float32 values' bins
    come from a table (:meth:`~bkgdask.models.bin_lookup.BinLookup.rough`):
    one that is wrong near an edge fails the same check.
    """
    ra, dec = np.asarray(ra, np.float64), np.asarray(dec, np.float64)
    rough = haversine32(ra_pnt, dec_pnt, ra, dec)
    if rough is None:
        return np.searchsorted(offset_hav_edges, haversine(ra_pnt, dec_pnt, ra, dec), "right") - 1
    index = bin_lookup(offset_hav_edges).rough(rough)  # (one off near an edge: unsure below)
    low, high = _sure_ranges(offset_hav_edges.tobytes())
    unsure = ~((rough >= low[index]) & (rough <= high[index]))
    if unsure.any():
        exact = haversine(ra_pnt, dec_pnt, ra[unsure], dec[unsure])
        index[unsure] = np.searchsorted(offset_hav_edges, exact, "right")
    return index - 1


@functools.lru_cache(maxsize=16)
def _sure_ranges(edges: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Per ``searchsorted`` index of a float32 haversine, the float32 values whose float64
    haversine surely has that index: each bin with its edges moved inwards by
    :data:`HAV32_TOLERANCE` (relative; float32's rounding of them, 6e-8, is far
    inside) and :data:`HAV32_FLOOR`.
    """
    edges = np.frombuffer(edges, dtype=np.float64)
    margin = HAV32_TOLERANCE * edges + HAV32_FLOOR
    low = np.concatenate([[-np.inf], edges + margin])
    high = np.concatenate([edges - margin, [np.inf]])
    return low.astype(np.float32), high.astype(np.float32)


def _sin_small(x):
    """sin(x) for |x| <= 0.2 rad: Taylor series to x^15 by Horner (error < 1e-26)."""
    x2 = x * x
    p = -1.0 / 1307674368000.0
    p = p * x2 + 1.0 / 6227020800.0
    p = p * x2 - 1.0 / 39916800.0
    p = p * x2 + 1.0 / 362880.0
    p = p * x2 - 1.0 / 5040.0
    p = p * x2 + 1.0 / 120.0
    p = p * x2 - 1.0 / 6.0
    return x + x * x2 * p


def _cos_small(x):
    """cos(x) for |x| <= 0.2 rad: Taylor series to x^14 by Horner (error < 1e-24)."""
    x2 = x * x
    p = -1.0 / 87178291200.0
    p = p * x2 + 1.0 / 479001600.0
    p = p * x2 - 1.0 / 3628800.0
    p = p * x2 + 1.0 / 40320.0
    p = p * x2 - 1.0 / 720.0
    p = p * x2 + 1.0 / 24.0
    p = p * x2 - 0.5
    return 1.0 + x2 * p


def _wrapped(angle):
    """An angle difference (rad) brought into [-π, π] (RA across 0)."""
    if angle > np.pi:
        return angle - 2 * np.pi
    if angle < -np.pi:
        return angle + 2 * np.pi
    return angle


def _bin_of(edges, value, n_bins):
    """Index i with edges[i] <= value < edges[i + 1], for edges[0] <= value < edges[-1].

    Up to 64 bins a branch-free count of the inner edges at or below the value
    (no mispredicted branches); more bins, bisection.
    """
    if n_bins <= 64:
        index = 0
        for j in range(1, n_bins):
            index += edges[j] <= value
        return index
    lo, hi = 0, n_bins
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if edges[mid] <= value:
            lo = mid
        else:
            hi = mid
    return lo


def _hav_of(ra, dec, ra0, dec0, cos_dec0, sin_dec0):
    """sin²(θ/2) of an event at (ra, dec) from the pointing (ra0, dec0), all rad.

    Within 0.2 rad of the pointing (the field of view) sines and cosines are
    short Taylor series around the pointing, exact to float64 rounding; further
    out (and near the poles, where RA differences are large) libm's.
    """
    d_dec = dec - dec0
    d_ra = _wrapped(ra - ra0)
    if abs(d_dec) <= 0.2 and abs(d_ra) <= 0.2:
        cos_dec = cos_dec0 * _cos_small(d_dec) - sin_dec0 * _sin_small(d_dec)
        s_dec = _sin_small(0.5 * d_dec)
        s_ra = _sin_small(0.5 * d_ra)
    else:
        cos_dec = np.cos(dec0 + d_dec)
        s_dec = np.sin(0.5 * d_dec)
        s_ra = np.sin(0.5 * d_ra)
    return s_dec * s_dec + cos_dec0 * cos_dec * s_ra * s_ra


def _counts_loop(energy, ra, dec, ra_pnt, dec_pnt, energy_edges, offset_hav_edges):
    """One pass: energy bin, haversine of the offset (:func:`_hav_of`), offset bin, count."""
    n_energy, n_offset = energy_edges.size - 1, offset_hav_edges.size - 1
    counts = np.zeros((n_energy, n_offset), dtype=np.int64)
    deg = np.pi / 180.0
    ra0, dec0 = ra_pnt * deg, dec_pnt * deg
    cos_dec0, sin_dec0 = np.cos(dec0), np.sin(dec0)
    e_lo, e_hi = energy_edges[0], energy_edges[-1]
    h_lo, h_hi = offset_hav_edges[0], offset_hav_edges[-1]
    for k in range(energy.size):
        e = energy[k]
        if not (e >= e_lo and e < e_hi):
            continue
        hav = _hav_of(ra[k] * deg, dec[k] * deg, ra0, dec0, cos_dec0, sin_dec0)
        if not (hav >= h_lo and hav < h_hi):
            continue
        counts[_bin_of(energy_edges, e, n_energy), _bin_of(offset_hav_edges, hav, n_offset)] += 1
    return counts


#: Held while the loop compiles: threads of one process must compile it once.
_COMPILING = threading.Lock()


def _compiled():
    """The loops compiled by numba (imported here: it costs ~0.4 s, worth it for many runs)."""
    with _COMPILING:
        return _compile()


@functools.cache
def _compile():
    from numba import njit

    inline = njit(inline="always")
    globals().update(
        _sin_small=inline(_sin_small),
        _cos_small=inline(_cos_small),
        _bin_of=inline(_bin_of),
        _wrapped=inline(_wrapped),
        _hav_of=inline(_hav_of),
        _hav_bound=inline(_hav_bound),
    )
    compile_loop = njit(cache=True, nogil=True)
    return compile_loop(_counts_loop), compile_loop(_max_hav_loop)


def count_events(
    energy,
    ra,
    dec,
    ra_pnt,
    dec_pnt,
    energy_edges,
    offset_hav_edges,
    *,
    compiled: bool | None = None,
) -> np.ndarray:
    """Counts in half-open (energy, offset) bins.

    Parameters
    ----------
    energy : numpy.ndarray
        Event energies, TeV, float64.
    ra, dec : numpy.ndarray
        Event positions, deg, float64.
    ra_pnt, dec_pnt : float
        Pointing, deg.
    energy_edges : numpy.ndarray
        Energy bin edges, TeV.
    offset_hav_edges : numpy.ndarray
        Offset bin edges as sin²(θ/2) (:func:`hav_edges`).
    compiled : bool, optional
        The compiled loop (True) or numpy (False); default: compiled if numba is there.

    Returns
    -------
    numpy.ndarray
        int64, shape (n_energy, n_offset).
    """
    if HAVE_NUMBA if compiled is None else compiled:
        return _compiled()[0](
            energy, ra, dec, float(ra_pnt), float(dec_pnt), energy_edges, offset_hav_edges
        )
    return _counts_numpy(energy, ra, dec, ra_pnt, dec_pnt, energy_edges, offset_hav_edges)
