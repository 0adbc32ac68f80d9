"""Symmetric positive-definite block-banded matrices: Cholesky factor, solves, band of the inverse.

A matrix of ``n`` x ``n`` blocks of size ``m`` whose blocks vanish more
than ``b`` blocks off the diagonal is stored by its lower blocks,
``band[d, i] = A[i + d, i]`` (shape ``(b + 1, n, m, m)``; blocks beyond the
matrix are 0). The penalised information of a tensor-product spline whose
first axis has the fewest non-zero basis functions per bin is such a matrix
(a block per coefficient of that axis).

The factor costs ``~6 b m³`` per block row instead of the ``(n m)³ / 3`` of a
dense Cholesky, and the blocks of the inverse inside the band (all that the
traces of REML, the effective degrees of freedom and the errors of local
averages need) cost about twice that, by the block form of Takahashi's
recursion (Takahashi, Fagan & Chin 1973; Rue & Martino 2007):

    Z_ki = −Σ_l Z_kl L̃_li  (k > i),    Z_ii = (L_ii L_iiᵀ)⁻¹ − Σ_l L̃_liᵀ Z_li,

with ``L̃_li = L_li L_ii⁻¹`` and ``l`` over the ``b`` block rows below ``i``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.linalg import lapack


def dense(band: np.ndarray) -> np.ndarray:
    """The full symmetric matrix of a band, (n m, n m)."""
    n_band, n, m, _ = band.shape
    out = np.zeros((n * m, n * m))
    for d in range(n_band):
        for i in range(n - d):
            out[(i + d) * m : (i + d + 1) * m, i * m : (i + 1) * m] = band[d, i]
            out[i * m : (i + 1) * m, (i + d) * m : (i + d + 1) * m] = band[d, i].T
    return out


class Factor(NamedTuple):
    """Lower block Cholesky factor ``L`` (band layout) and the inverses of its diagonal blocks."""

    band: np.ndarray
    diagonal_inverse: np.ndarray


def cholesky(band: np.ndarray, overwrite: bool = False) -> Factor:
    """Block Cholesky factor of a band (``overwrite``: in the band's own memory).

    Raises
    ------
    numpy.linalg.LinAlgError
        If the matrix is not positive definite.
    """
    n_band, n, m, _ = band.shape
    factor = band if overwrite else band.copy()
    diagonal_inverse = np.empty((n, m, m))
    for i in range(n):
        lower, info = lapack.dpotrf(factor[0, i], lower=1)
        if info == 0:
            inverse, info = lapack.dtrtri(lower, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("block-banded matrix is not positive definite")
        factor[0, i], diagonal_inverse[i] = lower, inverse
        k = min(n_band - 1, n - 1 - i)
        if k == 0:
            continue
        column = factor[1 : k + 1, i].reshape(k * m, m) @ inverse.T
        factor[1 : k + 1, i] = column.reshape(k, m, m)
        for e in range(1, k + 1):
            update = column[(e - 1) * m :] @ column[(e - 1) * m : e * m].T
            factor[: k - e + 1, i + e] -= update.reshape(k - e + 1, m, m)
    return Factor(factor, diagonal_inverse)


def solve(factor: Factor, rhs: np.ndarray) -> np.ndarray:
    """``A⁻¹ rhs`` from the factor of ``A``; ``rhs`` of shape (n m,)."""
    band, inverse = factor
    n_band, n, m, _ = band.shape
    y = rhs.reshape(n, m).astype(np.float64, copy=True)
    for i in range(n):
        for d in range(1, min(n_band - 1, i) + 1):
            y[i] -= band[d, i - d] @ y[i - d]
        y[i] = inverse[i] @ y[i]
    for i in range(n - 1, -1, -1):
        for d in range(1, min(n_band - 1, n - 1 - i) + 1):
            y[i] -= band[d, i].T @ y[i + d]
        y[i] = inverse[i].T @ y[i]
    return y.ravel()


def _window(inverse: np.ndarray, start: int, k: int) -> np.ndarray:
    """The dense (k m, k m) block of the inverse over block rows and columns start..start+k-1."""
    m = inverse.shape[-1]
    out = np.empty((k * m, k * m))
    for d in range(k):
        for e in range(d + 1):
            block = inverse[d - e, start + e]
            out[d * m : (d + 1) * m, e * m : (e + 1) * m] = block
            out[e * m : (e + 1) * m, d * m : (d + 1) * m] = block.T
    return out


def inverse_band(factor: Factor) -> np.ndarray:
    """The blocks of ``A⁻¹`` inside the band of ``A``, from the factor of ``A``, band layout."""
    band, diagonal_inverse = factor
    n_band, n, m, _ = band.shape
    inverse = np.zeros_like(band)
    for i in range(n - 1, -1, -1):
        own = diagonal_inverse[i].T @ diagonal_inverse[i]
        k = min(n_band - 1, n - 1 - i)
        if k:
            unit = band[1 : k + 1, i].reshape(k * m, m) @ diagonal_inverse[i]
            column = -_window(inverse, i + 1, k) @ unit
            inverse[1 : k + 1, i] = column.reshape(k, m, m)
            own -= unit.T @ column
        inverse[0, i] = 0.5 * (own + own.T)
    return inverse


def band_dot(left: np.ndarray, right: np.ndarray) -> float:
    """``Σ_kl A_kl B_kl`` of two symmetric matrices given by their bands (e.g. ``tr(A B)``)."""
    n_band = min(left.shape[0], right.shape[0])
    per_offset = np.einsum("dnij,dnij->d", left[:n_band], right[:n_band])
    return float(per_offset[0] + 2 * per_offset[1:].sum())
