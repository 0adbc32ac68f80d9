"""Symmetric positive-definite block-banded matrices: L D Lᵀ factor, solves, band of the inverse.

A matrix of ``n`` x ``n`` blocks of size ``m`` whose blocks vanish more
than ``b`` blocks off the diagonal is stored by its lower blocks,
``band[d, i] = A[i + d, i]`` (shape ``(b + 1, n, m, m)``; blocks beyond the
matrix are 0). The penalised information of a tensor-product spline whose
first axis has the fewest non-zero basis functions per bin is such a matrix
(a block per coefficient of that axis).

The block ``L D Lᵀ`` factor (``L`` unit lower triangular by blocks, ``D``
block diagonal) costs about ``b (b + 1) m³`` per block row instead of the
``(n m)³ / 3`` of a dense Cholesky factor, and the blocks of the inverse
``Z`` inside the band (all that the traces of REML, the effective degrees
of freedom and the errors of local averages need) cost about as much again,
by the block form of Takahashi's recursion (Takahashi, Fagan & Chin 1973;
Rue & Martino 2007):

    Z_ki = −Σ_l Z_kl L_li  (k > i),    Z_ii = D_i⁻¹ − Σ_l L_liᵀ Z_li,

with ``l`` over the ``b`` block rows below ``i``. Only numpy's linear
algebra is used.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


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
    """Block ``L D Lᵀ`` factor: unit lower blocks ``L`` (band layout, identity diagonal
    blocks left out) and the inverses of the diagonal blocks ``D``."""

    band: np.ndarray
    inverse_diagonal: np.ndarray


def factor(band: np.ndarray, overwrite: bool = False) -> Factor:
    """Block ``L D Lᵀ`` factor of a band (``overwrite``: in the band's own memory).

    Raises
    ------
    numpy.linalg.LinAlgError
        If the matrix is not positive definite.
    """
    n_band, n, m, _ = band.shape
    lower = band if overwrite else band.copy()
    inverse_diagonal = np.empty((n, m, m))
    for i in range(n):
        np.linalg.cholesky(lower[0, i])  # raises unless positive definite
        inverse = np.linalg.inv(lower[0, i])
        inverse_diagonal[i] = 0.5 * (inverse + inverse.T)
        k = min(n_band - 1, n - 1 - i)
        if k == 0:
            continue
        column = lower[1 : k + 1, i].reshape(k * m, m)
        unit = column @ inverse_diagonal[i]
        for e in range(1, k + 1):
            update = unit[(e - 1) * m :] @ column[(e - 1) * m : e * m].T
            lower[: k - e + 1, i + e] -= update.reshape(k - e + 1, m, m)
        lower[1 : k + 1, i] = unit.reshape(k, m, m)
    return Factor(lower, inverse_diagonal)


def solve(factor: Factor, rhs: np.ndarray) -> np.ndarray:
    """``A⁻¹ rhs`` from the factor of ``A``; ``rhs`` of shape (n m,)."""
    lower, inverse_diagonal = factor
    n_band, n, m, _ = lower.shape
    y = rhs.reshape(n, m).astype(np.float64, copy=True)
    for i in range(n):
        for d in range(1, min(n_band - 1, i) + 1):
            y[i] -= lower[d, i - d] @ y[i - d]
    y = np.matmul(inverse_diagonal, y[:, :, None])[:, :, 0]
    for i in range(n - 1, -1, -1):
        for d in range(1, min(n_band - 1, n - 1 - i) + 1):
            y[i] -= lower[d, i].T @ y[i + d]
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
    lower, inverse_diagonal = factor
    n_band, n, m, _ = lower.shape
    inverse = np.zeros_like(lower)
    for i in range(n - 1, -1, -1):
        own = inverse_diagonal[i].copy()
        k = min(n_band - 1, n - 1 - i)
        if k:
            unit = lower[1 : k + 1, i].reshape(k * m, m)
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
