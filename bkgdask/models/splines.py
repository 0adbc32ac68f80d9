"""B-spline bases over bin grids: axes with fit coordinates, bases, and bin-average designs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALES = ("log", "linear", "square")
MEASURES = ("flat", "ring")
_BIN, _QUAD, _COEF = "abcdefg", "hijklmn", "opqrstu"


def _to_coord(scale: str, x):
    return {"log": np.log, "linear": np.asarray, "square": np.square}[scale](x)


def _from_coord(scale: str, u):
    return {"log": np.exp, "linear": np.asarray, "square": np.sqrt}[scale](u)


@dataclass(frozen=True)
class RateAxis:
    """One axis of a rate model: bin edges, fit coordinate and bin measure.

    Parameters
    ----------
    edges : array-like
        Bin edges in the axis's own unit (e.g. TeV, deg), increasing.
    scale : {"log", "linear", "square"}
        Fit coordinate ``u``: ``ln x``, ``x`` or ``x²``.
    measure : {"flat", "ring"}
        What a bin average is taken over: ``dx``, or ``sin x dx`` (``x`` in
        deg, a ring of FoV offset).
    """

    edges: np.ndarray
    scale: str = "linear"
    measure: str = "flat"

    def __post_init__(self):
        edges = np.asarray(self.edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"edges must be increasing, got {edges.tolist()}")
        if self.scale not in SCALES or self.measure not in MEASURES:
            raise ValueError(f"scale must be one of {SCALES}, measure one of {MEASURES}")
        if (self.scale == "log" and edges[0] <= 0) or (self.scale == "square" and edges[0] < 0):
            raise ValueError(f"edges out of range for scale {self.scale!r}")
        object.__setattr__(self, "edges", edges)

    def quadrature(self, edges, n_points: int) -> tuple[np.ndarray, np.ndarray]:
        """Gauss-Legendre points ``u`` and weights of every bin, weights summing to 1 per bin.

        Returns
        -------
        u, weight : numpy.ndarray
            Shape (n_bins, n_points).
        """
        nodes, weights = np.polynomial.legendre.leggauss(n_points)
        u_edges = _to_coord(self.scale, np.asarray(edges, dtype=np.float64))
        half = 0.5 * np.diff(u_edges)[:, None]
        u = 0.5 * (u_edges[:-1] + u_edges[1:])[:, None] + half * nodes
        x = _from_coord(self.scale, u)
        dx_du = {"log": x, "linear": np.ones_like(u), "square": 0.5 / np.maximum(x, 1e-300)}
        density = np.sin(np.deg2rad(x)) if self.measure == "ring" else 1.0
        weight = half * weights * dx_du[self.scale] * density
        return u, weight / weight.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class SplineBasis:
    """B-splines of ``degree`` on ``n_segments`` equal segments of ``[lo, hi]`` (coordinate ``u``).

    Outside ``[lo, hi]`` every function is continued linearly, so a spline
    built on this basis is extrapolated along its tangent.
    """

    lo: float
    hi: float
    n_segments: int
    degree: int = 3

    @property
    def n_coef(self) -> int:
        return self.n_segments + self.degree

    @property
    def step(self) -> float:
        return (self.hi - self.lo) / self.n_segments

    def _basis(self, u: np.ndarray, degree: int) -> np.ndarray:
        """Cox–de Boor on the uniform knots: B-splines of ``degree`` at ``u`` in [lo, hi]."""
        knots = self.lo + self.step * np.arange(-self.degree, self.n_segments + self.degree + 1)
        u = u[..., None]
        basis = ((knots[:-1] <= u) & (u < knots[1:])).astype(np.float64)
        for k in range(1, degree + 1):
            left = (u - knots[: -k - 1]) / (knots[k:-1] - knots[: -k - 1]) * basis[..., :-1]
            right = (knots[k + 1 :] - u) / (knots[k + 1 :] - knots[1:-k]) * basis[..., 1:]
            basis = left + right
        return basis

    def matrix(self, u) -> np.ndarray:
        """Basis functions at ``u``: shape ``u.shape + (n_coef,)``; linear beyond [lo, hi]."""
        u = np.asarray(u, dtype=np.float64)
        inside = np.clip(u, self.lo, self.hi)
        out = self._basis(inside, self.degree)
        outside = u != inside
        if np.any(outside):
            lower = self._basis(inside[outside], self.degree - 1)
            slope = (lower[..., :-1] - lower[..., 1:]) / self.step
            out[outside] += (u[outside] - inside[outside])[:, None] * slope
        return out

    def penalty(self) -> np.ndarray:
        """Second-difference penalty matrix ``D₂ᵀ D₂``, (n_coef, n_coef)."""
        diff = np.diff(np.eye(self.n_coef), n=2, axis=0)
        return diff.T @ diff


def _window(basis_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The coefficients each bin touches: first index (N,) and basis values (N, Q, width)."""
    n_coef = basis_q.shape[-1]
    touched = np.any(basis_q != 0, axis=1)
    first = touched.argmax(axis=1)
    last = n_coef - 1 - touched[:, ::-1].argmax(axis=1)
    width = int(np.max(last - first)) + 1
    first = np.minimum(first, n_coef - width)
    index = first[:, None] + np.arange(width)
    return first, np.take_along_axis(basis_q, index[:, None, :], axis=2)


class BinDesign:
    """Bin averages of ``exp(spline)`` over a grid of bins, and their Jacobian.

    Parameters
    ----------
    axes : sequence of RateAxis
        Axes (scale and measure) of the spline.
    bases : sequence of SplineBasis
        Per axis, the spline basis.
    edges : sequence of array-like
        Per axis, the bin edges (N_d + 1).
    n_points : int
        Gauss-Legendre points per axis and bin.
    """

    def __init__(self, axes, bases, edges, n_points: int):
        n = len(axes)
        quadrature = [a.quadrature(e, n_points) for a, e in zip(axes, edges)]
        self.basis_q = [b.matrix(u).reshape(*u.shape, -1) for b, (u, _) in zip(bases, quadrature)]
        self.shape = tuple(u.shape[0] for u, _ in quadrature)
        self.n_coef = tuple(b.n_coef for b in bases)
        grid = "".join(_BIN[d] + _QUAD[d] for d in range(n))
        self.weight = np.einsum(
            ",".join(_BIN[d] + _QUAD[d] for d in range(n)) + "->" + grid,
            *[w for _, w in quadrature],
        )
        per_axis = [_BIN[d] + _QUAD[d] + _COEF[d] for d in range(n)]
        firsts, self.windows = zip(*[_window(b) for b in self.basis_q])
        self._jac_spec = ",".join([grid, *per_axis]) + "->" + _BIN[:n] + _COEF[:n]
        self._jac_path = np.einsum_path(
            self._jac_spec, self.weight, *self.windows, optimize="greedy"
        )[0]
        self._indices = self._sparsity(firsts)

    def _sparsity(self, firsts) -> np.ndarray:
        """Column of every Jacobian entry, (N, W): bins in C order, window in C order."""
        n = len(firsts)
        strides = np.cumprod((*self.n_coef[1:], 1)[::-1])[::-1]
        columns = 0
        for d, (first, window) in enumerate(zip(firsts, self.windows)):
            index = (first[:, None] + np.arange(window.shape[-1])) * strides[d]
            shape = [1] * (2 * n)
            shape[d], shape[n + d] = index.shape
            columns = columns + index.reshape(shape)
        return columns.reshape(int(np.prod(self.shape)), -1)

    def weighted_rate(self, coef: np.ndarray) -> np.ndarray:
        """Rate x quadrature weight at every point, (N_1, Q, N_2, Q, ...)."""
        # One axis at a time: (K_1, ..., K_n) -> (N_1, Q, ..., N_n, Q); tensordot
        # skips the path search einsum repeats on every call.
        log_rate = coef.reshape(self.n_coef)
        for basis in self.basis_q:
            log_rate = np.tensordot(log_rate, basis, axes=([0], [2]))
        with np.errstate(over="ignore"):
            return np.exp(log_rate) * self.weight

    def mean(self, coef: np.ndarray, weighted=None) -> np.ndarray:
        """Bin averages of the rate, (N_1, ..., N_n)."""
        weighted = self.weighted_rate(coef) if weighted is None else weighted
        return weighted.sum(axis=tuple(range(1, weighted.ndim, 2)))

    def jacobian(self, weighted: np.ndarray, row_scale=None) -> np.ndarray:
        """Derivatives of the flattened bin averages by the flattened coefficients, (N, K).

        ``row_scale`` (N,) multiplies each row. Dense: a BKG_2D grid has a few
        hundred coefficients, and BLAS on the dense matrix beats sparse formats.
        """
        values = np.einsum(self._jac_spec, weighted, *self.windows, optimize=self._jac_path)
        values = values.reshape(self._indices.shape)
        if row_scale is not None:
            values = values * row_scale[:, None]
        out = np.zeros((values.shape[0], int(np.prod(self.n_coef))))
        np.put_along_axis(out, self._indices, values, axis=1)
        return out
