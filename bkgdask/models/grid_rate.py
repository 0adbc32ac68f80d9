"""Smooth rates over (energy x FoV) grids: bin averages, errors and χ² from a banded covariance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import blockband
from .glam import GridDesign
from .smooth_rate import SmoothRate, _one_blas_thread
from .splines import _to_coord


@dataclass(frozen=True)
class GridSmoothRate(SmoothRate):
    """A :class:`SmoothRate` over energy and two FoV axes whose covariance is held as a band.

    ``covariance`` holds the blocks of the posterior covariance within the
    band of the penalised information ``precision`` (both in the
    :mod:`bkgdask.models.blockband` layout, a block per energy coefficient);
    bin averages take the FoV axes at their bin centres
    (:class:`~bkgdask.models.glam.GridDesign`).
    """

    precision: np.ndarray | None = None

    def _design(self, edges, n_points) -> GridDesign:
        edges = edges or [a.edges for a in self.axes]
        return GridDesign(self.axes, self.bases, edges, n_points)

    def log_rate_at(self, *points) -> np.ndarray:
        """Natural log of the rate at points; on an outer grid (one axis per array) by GLAM."""
        arrays = [np.asarray(p, dtype=np.float64) for p in points]
        outer = all(
            a.ndim == len(arrays) and all(n == 1 for e, n in enumerate(a.shape) if e != d)
            for d, a in enumerate(arrays)
        )
        if not outer:
            return super().log_rate_at(*points)
        matrices = [
            basis.matrix(_to_coord(axis.scale, a.ravel()))
            for axis, basis, a in zip(self.axes, self.bases, arrays)
        ]
        log_rate = matrices[0] @ self.coef.reshape(self.coef.shape[0], -1)
        log_rate = log_rate.reshape(-1, *self.coef.shape[1:])
        for matrix in matrices[1:]:
            log_rate = np.tensordot(log_rate, matrix, axes=([1], [1]))
        return log_rate

    @_one_blas_thread
    def rate_error(self, *edges, n_points: int = 5) -> np.ndarray:
        """1-sigma statistical error of :meth:`bin_average` (same arguments and shape).

        Raises
        ------
        ValueError
            If bins span more energy coefficients than the fitted ones (their
            covariance lies outside the band).
        """
        design = self._design(edges, n_points)
        if design.n_band > self.covariance.shape[0]:
            raise ValueError("bins wider than the fitted ones: their errors are outside the band")
        weighted = design.weighted_rate(self.coef)
        n0, _, width = design.window.shape
        rate = weighted.reshape(n0, weighted.shape[1], -1)
        local = np.einsum("iqs,iqp->ips", rate, design.window)
        spatial = _band_at_centres(self.covariance, design)
        variance = np.zeros(local[:, 0].shape)
        for p in range(width):
            for q in range(width):
                low, high = min(p, q), max(p, q)
                variance += local[:, p] * local[:, q] * spatial[high - low, design.first + low]
        return np.sqrt(np.maximum(variance, 0.0)).reshape(design.shape)

    @_one_blas_thread
    def projected_chi2(self, residual: np.ndarray, scale: np.ndarray) -> tuple[float, int]:
        """χ² of a residual of ``scale`` x :meth:`bin_average` in the fit's own covariance.

        The covariance of the scaled bin averages, ``D J C Jᵀ D`` (``D`` the
        scale, ``J`` their derivatives, ``C`` the coefficients' covariance),
        has the rank of ``C``; the residual is projected on its ``ceil(edf)``
        leading eigenvectors, found from the coefficients' side: with
        ``C = L Lᵀ`` and ``A = D J L``, the eigenvectors of ``A Aᵀ`` are
        ``A w / σ`` for the eigenpairs ``(σ², w)`` of ``Aᵀ A``. A χ² with
        ``ceil(edf)`` degrees of freedom, as the dense fit's
        (:func:`bkgdask.validation.truth_check.compare_to_expected`).

        Parameters
        ----------
        residual, scale : numpy.ndarray
            Per fitted bin: predicted minus expected counts, and exposure.

        Returns
        -------
        chi2 : float
        n_dof : int
        """
        design = self._design((), 5)
        weighted = design.weighted_rate(self.coef)
        factor = np.linalg.cholesky(np.linalg.inv(blockband.dense(self.precision)))
        gram = blockband.dense(design.gram(weighted, scale**2))
        values, vectors = np.linalg.eigh(factor.T @ gram @ factor)
        n_dof = int(np.ceil(self.edf))
        along = factor.T @ design.transpose(weighted, scale * residual)
        projected = vectors[:, -n_dof:].T @ along
        return float(np.sum(projected**2 / values[-n_dof:] ** 2)), n_dof


def _band_at_centres(covariance: np.ndarray, design: GridDesign) -> np.ndarray:
    """``sᵀ C_aa' s`` for every band block and FoV bin centre ``s``, (n_band, K_0, S)."""
    n_band, k0, _, _ = covariance.shape
    k1, k2 = (b.shape[1] for b in design.others)
    blocks = covariance.reshape(n_band * k0, k1, k2, k1, k2).transpose(0, 1, 3, 2, 4)
    blocks = blocks.reshape(n_band * k0, k1 * k1, k2 * k2)
    values = design.rows[0] @ blocks @ design.rows[1].T
    return values.reshape(n_band, k0, -1)
