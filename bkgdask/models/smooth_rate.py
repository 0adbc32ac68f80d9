"""A fitted smooth rate: values, bin averages, errors, FITS keywords; BLAS on one thread."""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from .splines import _COEF, BinDesign, _to_coord


@functools.cache
def _blas() -> ThreadpoolController:
    """The loaded BLAS libraries, found once (a search costs about 2 ms)."""
    return ThreadpoolController()


_limit_lock = threading.Lock()
#: Fits now inside :func:`one_blas_thread` and the limiter that set the limit.
_limit_state: dict = {"depth": 0, "limiter": None}


@contextlib.contextmanager
def one_blas_thread():
    """BLAS on one thread while any fit of any thread of this process is inside.

    The matrices are a few hundred wide: BLAS threads cost more than they
    save (10x on a loaded machine). The limit is process-wide, so it is set
    by the first to enter and lifted by the last to leave: fits running side
    by side on threads never see it lifted.
    """
    with _limit_lock:
        if _limit_state["depth"] == 0:
            _limit_state["limiter"] = _blas().limit(limits=1, user_api="blas")
        _limit_state["depth"] += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_state["depth"] -= 1
            if _limit_state["depth"] == 0:
                _limit_state["limiter"].restore_original_limits()


def _one_blas_thread(function):
    """Run ``function`` inside :func:`one_blas_thread`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return function(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class SmoothRate:
    """A fitted smooth rate: ``exp`` of a tensor-product spline over its axes.

    Attributes
    ----------
    axes : tuple of RateAxis
        The fitted bins, scales and measures.
    bases : tuple of SplineBasis
        Per axis, the B-spline basis in the fit coordinate.
    coef : numpy.ndarray
        Spline coefficients of ``log(rate)``, shape (K_1, ..., K_n).
    covariance : numpy.ndarray
        Posterior covariance of the flattened coefficients, (K, K).
    lambdas : tuple of float
        Penalty weight of each axis.
    edf : float
        Effective number of parameters.
    deviance : float
        Poisson deviance of the fitted counts.
    n_bins, n_iter : int
        Number of bins fitted and of penalty-weight updates.
    """

    axes: tuple
    bases: tuple
    coef: np.ndarray
    covariance: np.ndarray
    lambdas: tuple
    edf: float
    deviance: float
    n_bins: int
    n_iter: int

    def log_rate_at(self, *points) -> np.ndarray:
        """Natural log of the rate at points (one array per axis, broadcast together).

        Each axis's basis is evaluated on its own array, so a grid given as
        broadcastable 1-D arrays costs the sum of the axes, not their product.
        """
        points = [np.asarray(p, dtype=np.float64) for p in points]
        if len(points) != len(self.axes):
            raise ValueError(f"need {len(self.axes)} coordinate arrays, got {len(points)}")
        matrices = [
            basis.matrix(_to_coord(axis.scale, p))
            for axis, basis, p in zip(self.axes, self.bases, points)
        ]
        n = len(matrices)
        spec = ",".join("..." + _COEF[d] for d in range(n)) + "," + _COEF[:n] + "->..."
        shape = np.broadcast_shapes(*(p.shape for p in points))
        log_rate = np.einsum(spec, *matrices, self.coef, optimize="greedy")
        return np.broadcast_to(log_rate, shape).copy()

    def rate_at(self, *points) -> np.ndarray:
        """Rate at points (one array per axis in its own unit, broadcast together)."""
        return np.exp(self.log_rate_at(*points))

    def _design(self, edges, n_points) -> BinDesign:
        edges = edges or [a.edges for a in self.axes]
        return BinDesign(self.axes, self.bases, edges, n_points)

    def bin_average(self, *edges, n_points: int = 5) -> np.ndarray:
        """Average rate over every bin of a grid (each bin's own measure).

        Parameters
        ----------
        *edges : array-like
            Bin edges of each axis; default the fitted bins.
        n_points : int
            Gauss-Legendre points per axis and bin.

        Returns
        -------
        numpy.ndarray
            Shape (N_1, ..., N_n), in the unit of counts / exposure.
        """
        return self._design(edges, n_points).mean(self.coef)

    @_one_blas_thread
    def rate_error(self, *edges, n_points: int = 5) -> np.ndarray:
        """1-sigma statistical error of :meth:`bin_average` (same arguments and shape)."""
        design = self._design(edges, n_points)
        jacobian = design.jacobian(design.weighted_rate(self.coef))
        variance = ((jacobian @ self.covariance) * jacobian).sum(axis=1)
        return np.sqrt(np.maximum(variance, 0.0)).reshape(design.shape)

    @_one_blas_thread
    def rate_covariance(self, *edges, n_points: int = 5) -> np.ndarray:
        """Covariance of the flattened :meth:`bin_average` values, (N, N) (same arguments)."""
        design = self._design(edges, n_points)
        jacobian = design.jacobian(design.weighted_rate(self.coef))
        return jacobian @ (jacobian @ self.covariance).T

    @property
    def parameters(self) -> dict:
        """FITS header keywords describing the fit: ``{key: (value, comment)}``."""
        out = {
            "SMMETHOD": ("PSPLINE", "Poisson P-spline of log(rate)"),
            "SMCRIT": ("REML", "penalty weights chosen by REML"),
            "SMDEGREE": (self.bases[0].degree, "B-spline degree"),
            "SMEDF": (round(self.edf, 3), "effective number of parameters"),
            "SMDEV": (round(self.deviance, 3), "Poisson deviance of the fit"),
            "SMNBINS": (self.n_bins, "number of bins fitted"),
        }
        for d, (axis, basis, lam) in enumerate(zip(self.axes, self.bases, self.lambdas), 1):
            out[f"SMSCAL{d}"] = (axis.scale, f"axis {d} fit coordinate")
            out[f"SMNSEG{d}"] = (basis.n_segments, f"axis {d} B-spline segments")
            out[f"SMLAM{d}"] = (float(f"{lam:.6g}"), f"axis {d} penalty weight")
        return out
