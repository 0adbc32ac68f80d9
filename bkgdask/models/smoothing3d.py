"""Poisson P-spline rates over energy x FoV grids (BKG_3D), by array arithmetic and banded algebra.

The model, likelihood, penalties and REML criterion are those of
:mod:`bkgdask.models.smoothing`: ``log(rate)`` a tensor-product cubic
B-spline in (``ln E``, FoV lon, FoV lat), second-difference penalties along
each axis, weights by the extended Fellner-Schall update. What differs is
the arithmetic: on the default grid (19 x 60 x 60 bins, 22 x 7 x 7 = 1,078
coefficients) a dense Jacobian would take 590 MB and REML would invert the
1,078² penalised information at every step. Here

* the FoV axes get fewer segments than bins (:data:`FOV_SEGMENT_DEG`: the
  background varies over degrees, the pixels are 0.1°), and pixels are
  taken at their centres (:mod:`bkgdask.models.glam`);
* bin averages, the score and the information are array contractions
  (GLAM), never the Jacobian;
* the information is block-banded by energy coefficient (a bin touches 4
  of them), so it is factored by blocks and only the band of its inverse is
  formed (:mod:`bkgdask.models.blockband`): that band is all REML's traces,
  the effective degrees of freedom and the errors of bin averages need.

A fit of a H.E.S.S. DR1 zenith group takes 9 to 12 steps, about 0.2 s.
Where the data end the rate continues log-linearly as in 2-D: below the
first and above the last event in energy (a power law), and in FoV lon/lat
where pixels are empty (an exponential in each coordinate), so the rate is
positive and finite everywhere; bins without exposure are left out of the
likelihood and take the smooth rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import blockband
from .glam import GridDesign
from .grid_rate import GridSmoothRate
from .smooth_rate import _one_blas_thread
from .smoothing import _default_segments, _kron_penalties, _penalty_pinv_traces, fellner_schall
from .splines import RateAxis, SplineBasis, _to_coord

#: FoV spline segment length, deg.
FOV_SEGMENT_DEG = 1.5
#: Largest gain of the penalty-weight steps: the energy and FoV weights trade off against
#: each other, and the dense fit's gain of up to 8 makes them overshoot in turn.
MAX_GAIN = 2.0


@dataclass
class _State:
    """Coefficients with their weighted rates at the quadrature points and expected counts."""

    coef: np.ndarray
    weighted: np.ndarray
    mu: np.ndarray


@dataclass(frozen=True)
class _GridProblem:
    """Counts and exposure on the grid, its design, and the per-axis penalties.

    Bins without exposure (excluded in every run) have no counts and take
    no part in the likelihood.
    """

    counts: np.ndarray
    exposure: np.ndarray
    design: GridDesign
    energy_penalty: np.ndarray
    other_penalties: list

    @property
    def exposed(self) -> np.ndarray:
        return self.exposure > 0

    def state(self, coef: np.ndarray) -> _State:
        weighted = self.design.weighted_rate(coef)
        return _State(coef, weighted, self.exposure * self.design.mean(coef, weighted))

    def objective(self, state: _State, lambdas) -> float:
        """Penalised Poisson log-likelihood (up to a constant)."""
        mu, exposed = state.mu, self.exposed
        if not np.all(np.isfinite(mu) & ((mu > 0) | ~exposed)):
            return -np.inf
        log_mu = np.log(mu, out=np.zeros_like(mu), where=exposed)
        roughness = self.roughness(state.coef)
        return float(np.sum(self.counts * log_mu - mu) - 0.5 * np.dot(lambdas, roughness))

    def per_mu(self, values: np.ndarray, state: _State) -> np.ndarray:
        """``values / μ`` in exposed bins, 0 elsewhere."""
        return np.divide(values, state.mu, out=np.zeros_like(state.mu), where=self.exposed)

    def roughness(self, coef: np.ndarray) -> np.ndarray:
        """``cᵀ S_d c`` of every axis: squared second differences of the coefficients."""
        coef = coef.reshape(self.design.n_coef)
        return np.array([np.sum(np.diff(coef, n=2, axis=d) ** 2) for d in range(coef.ndim)])

    def penalised(self, information: np.ndarray, lambdas) -> np.ndarray:
        """The band of information + ``S_λ`` (a new array)."""
        band = information.copy()
        band[0] += sum(lam * s for lam, s in zip(lambdas[1:], self.other_penalties))
        m = band.shape[-1]
        for d in range(3):
            diagonal = np.diagonal(self.energy_penalty, offset=-d)
            band[d, : diagonal.size] += lambdas[0] * diagonal[:, None, None] * np.eye(m)
        return band

    def penalty_dot(self, coef: np.ndarray, lambdas) -> np.ndarray:
        """``S_λ c``."""
        coef = coef.reshape(self.design.n_coef[0], -1)
        spatial = sum(lam * s for lam, s in zip(lambdas[1:], self.other_penalties))
        return (lambdas[0] * self.energy_penalty @ coef + coef @ spatial).ravel()

    def hess_traces(self, inverse: np.ndarray) -> np.ndarray:
        """``tr(H⁻¹ S_d)`` of every axis from the band of ``H⁻¹``."""
        traces = [np.trace(inverse[0], axis1=1, axis2=2) @ np.diag(self.energy_penalty)]
        for d in (1, 2):
            off = np.diagonal(self.energy_penalty, offset=-d)
            traces[0] += 2 * np.trace(inverse[d, : off.size], axis1=1, axis2=2) @ off
        diagonal_sum = inverse[0].sum(axis=0)
        return np.array(traces + [np.sum(diagonal_sum * s) for s in self.other_penalties])


def _newton(problem: _GridProblem, state: _State, lambdas, inverse: bool = True):
    """One penalised Fisher-scoring step with step halving, from ``state``.

    Returns the new state, the band of the inverse penalised information at
    ``state`` (None unless ``inverse``) and the band of the information.
    """
    design, exposure = problem.design, problem.exposure
    information = design.gram(state.weighted, problem.per_mu(exposure**2, state))
    score = design.transpose(state.weighted, exposure * (problem.per_mu(problem.counts, state) - 1))
    factor = blockband.factor(problem.penalised(information, lambdas), overwrite=True)
    step = blockband.solve(factor, score - problem.penalty_dot(state.coef, lambdas))
    current, length = problem.objective(state, lambdas), 1.0
    new = problem.state(state.coef + step)
    while length > 1e-6 and problem.objective(new, lambdas) < current - 1e-9 * abs(current):
        length *= 0.5
        new = problem.state(state.coef + length * step)
    return new, blockband.inverse_band(factor) if inverse else None, information


def _moved(old: _State, new: _State) -> float:
    """Largest change of a bin's expected counts in units of its Poisson error."""
    return float(np.max(np.abs(new.mu - old.mu) / np.sqrt(old.mu + 1.0)))


def _fit(problem: _GridProblem, bases, state: _State, lambdas, select: bool, max_iter: int):
    """Scoring steps with penalty-weight updates, then steps at fixed weights.

    The stopping rules are those of the dense fit
    (:func:`bkgdask.models.smoothing.fit_smooth_rate`), with the effective
    number of parameters settled to 0.1 % of itself.
    """
    edf, gains = np.inf, [[1.0, 0.0] for _ in lambdas]
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (returned)
        new, inverse, information = _newton(problem, state, lambdas)
        new_edf = blockband.band_dot(inverse, information)
        settled = _moved(state, new) < 0.01 and (not select or abs(new_edf - edf) < 1e-3 * edf)
        if select:
            numerators = _penalty_pinv_traces(bases, lambdas) - problem.hess_traces(inverse)
            denominators = problem.roughness(new.coef)
            lambdas = fellner_schall(lambdas, numerators, denominators, gains, MAX_GAIN)
        state, edf = new, new_edf
        if settled:
            break
    for _ in range(20):
        new, _, _ = _newton(problem, state, lambdas, inverse=False)
        moved, state = _moved(state, new), new
        if moved < 1e-5:
            break
    return state, lambdas, n_iter


def _start(problem: _GridProblem, lambdas) -> np.ndarray:
    """Starting coefficients: penalised least squares of log((counts + 0.5) / exposure)."""
    design = problem.design
    flat = np.broadcast_to(
        design.weight.reshape(design.weight.shape + (1,) * (len(design.shape) - 1)),
        (design.shape[0], design.weight.shape[1], *design.shape[1:]),
    )
    exposed = problem.exposed
    weight = np.where(exposed, problem.counts + 0.5, 0.0)
    target = np.log(np.divide(weight, problem.exposure, out=np.ones_like(weight), where=exposed))
    normal = problem.penalised(design.gram(flat, weight), lambdas)
    rhs = design.transpose(flat, weight * target)
    return blockband.solve(blockband.factor(normal, overwrite=True), rhs)


@_one_blas_thread
def fit_grid_rate(
    counts,
    exposure,
    edges,
    scales=("log", "linear", "linear"),
    n_segments=None,
    degree: int = 3,
    n_points: int = 3,
    lambdas=None,
    max_iter: int = 100,
) -> GridSmoothRate:
    """Fit a smooth, positive rate to counts and exposure on an (energy, FoV lon, FoV lat) grid.

    Parameters
    ----------
    counts, exposure : array-like
        Per bin, shape (N_0, N_1, N_2); counts >= 0, exposure >= 0 (s MeV sr),
        counts 0 where exposure is.
    edges : list of array-like
        Bin edges of each axis (TeV, deg, deg).
    scales : sequence of str
        Fit coordinate of each axis (:class:`~bkgdask.models.splines.RateAxis`).
    n_segments : list of int, optional
        Per axis, B-spline segments; default: energy as the dense fit (the
        number of bins, within [4, 20]), FoV axes one per
        :data:`FOV_SEGMENT_DEG` (at least 4, at most the number of bins).
    degree, n_points, lambdas, max_iter
        As :func:`bkgdask.models.smoothing.fit_smooth_rate` (``n_points``:
        Gauss-Legendre points per energy bin).

    Returns
    -------
    GridSmoothRate
    """
    counts = np.asarray(counts, dtype=np.float64)
    exposure = np.asarray(exposure, dtype=np.float64)
    axes = tuple(RateAxis(e, s) for e, s in zip(edges, scales))
    shape = tuple(a.edges.size - 1 for a in axes)
    if counts.shape != shape or exposure.shape != shape:
        raise ValueError(f"counts and exposure must have shape {shape}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)) or np.any(~(exposure >= 0)):
        raise ValueError("counts must be finite and >= 0, exposure >= 0 in every bin")
    if np.any(counts[exposure == 0] > 0):
        raise ValueError("counts in bins without exposure")
    if counts.sum() <= 0:
        raise ValueError("no counts: a positive rate cannot be estimated")
    n_segments = n_segments or [_default_segments(shape[0])] + [
        _fov_segments(a, n) for a, n in zip(axes[1:], shape[1:])
    ]
    bases = tuple(
        SplineBasis(*_to_coord(a.scale, a.edges[[0, -1]]), nseg, degree)
        for a, nseg in zip(axes, n_segments)
    )
    problem = _GridProblem(
        counts,
        exposure,
        GridDesign(axes, bases, [a.edges for a in axes], n_points),
        bases[0].penalty(),
        _kron_penalties(bases[1:]),
    )
    select = lambdas is None
    start = np.asarray([1.0] * len(axes) if select else lambdas, dtype=np.float64)
    state = problem.state(_start(problem, start))
    state, lam, n_iter = _fit(problem, bases, state, start, select, max_iter)
    return _result(problem, axes, bases, state, lam, n_iter)


def _fov_segments(axis: RateAxis, n_bins: int) -> int:
    """Segments of a FoV axis: one per :data:`FOV_SEGMENT_DEG`, within [4, n_bins] (at least 4)."""
    length = float(np.ptp(_to_coord(axis.scale, axis.edges[[0, -1]])))
    return int(max(4, min(n_bins, round(length / FOV_SEGMENT_DEG))))


def _result(problem: _GridProblem, axes, bases, state: _State, lambdas, n_iter):
    """Bands of the penalised information and of its inverse, effective degrees of freedom
    and deviance at the optimum."""
    information = problem.design.gram(state.weighted, problem.per_mu(problem.exposure**2, state))
    penalised = problem.penalised(information, lambdas)
    covariance = blockband.inverse_band(blockband.factor(penalised))
    y, mu = problem.counts, state.mu
    ratio = np.divide(y, mu, out=np.ones_like(y), where=y > 0)
    return GridSmoothRate(
        axes=axes,
        bases=bases,
        coef=state.coef.reshape([b.n_coef for b in bases]),
        covariance=covariance,
        precision=penalised,
        lambdas=tuple(float(x) for x in lambdas),
        edf=blockband.band_dot(covariance, information),
        deviance=float(2 * np.sum(y * np.log(ratio) - (y - mu))),
        n_bins=int(y.size),
        n_iter=int(n_iter),
    )


def fit_fov_rate(total, **kwargs) -> GridSmoothRate:
    """Smooth rate of one BKG_3D group's summed counts and exposure (a reduction's Dataset).

    Energy is fitted in ``ln E``, FoV lon and lat linearly; ``kwargs`` go to
    :func:`fit_grid_rate`. The rate is in s-1 MeV-1 sr-1 over energy (TeV)
    and FoV lon/lat (deg).
    """
    edges = [
        np.append(total[f"{d}_lo"].values, total[f"{d}_hi"].values[-1])
        for d in ("energy", "fov_lon", "fov_lat")
    ]
    return fit_grid_rate(total["counts"].values, total["exposure"].values, edges, **kwargs)
