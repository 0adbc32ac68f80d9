"""Smooth, positive background rates fitted to binned counts and exposure (Poisson P-splines).

Method
------
``log(rate)`` is a tensor-product cubic B-spline surface over the model's
axes, each in a natural coordinate ``u``: ``ln E`` for energy (scale
``"log"``), ``θ²`` for the FoV offset (``"square"``), the angle itself for
FoV longitude and latitude (``"linear"``). Its coefficients ``c`` maximise
the Poisson log-likelihood of the counts ``y_b`` of every bin ``b``,

    μ_b = exposure_b · <rate>_b,     <rate>_b = ∫_b rate dm / ∫_b dm,

minus the penalty ``½ Σ_d λ_d |Δ²_d c|²`` on second differences of the
coefficients along each axis ``d``. The bin average uses the bin's own
measure ``dm`` (``dE`` in energy, the ring's ``sin θ dθ`` in offset), with a
few Gauss-Legendre points per axis in ``u``, so a steep spectrum or the
growth of a ring's solid angle does not bias the bin integrals.

This is the P-spline of Eilers & Marx (Stat. Sci. 11, 89, 1996) in the
Poisson form used for tables of counts over exposure, e.g. mortality rates
(Currie, Durbán & Eilers, Stat. Model. 4, 279, 2004): it has no parameters
tied to a particular instrument, it is positive by construction, and with
small ``λ`` it follows the data as closely as the histogram does. The
penalty weights ``λ_d`` are chosen by the Laplace-approximate restricted
marginal likelihood (REML, the default criterion of R's mgcv), maximised by
the extended Fellner-Schall update of Wood & Fasiolo (Biometrics 73, 1071,
2017), interleaved with penalised Fisher-scoring (IRLS) steps.

Consequences:

* the penalty does not act on ``{1, u_d, u_d u_e}``, so the fitted counts
  add up to the observed ones exactly (the constant is unpenalised), and
  where the data end (empty bins, and beyond the axes' edges, where
  :meth:`~bkgdask.models.smooth_rate.SmoothRate.rate_at` continues
  ``log(rate)`` linearly in ``u``) the rate is log-linear: a power law in
  energy, a Gaussian in offset;
* errors are the Bayesian posterior covariance ``(F + S_λ)⁻¹`` of the
  coefficients (Wahba 1983; Nychka 1988), whose 1-sigma bands cover the
  truth on average across the surface, smoothing bias included.

Any number of axes is handled by the same code: per-axis B-spline matrices
are contracted with ``numpy.einsum`` and the penalty is a Kronecker sum.
The Jacobian is held dense (bins x coefficients), which suits BKG_2D grids;
a 3-D grid (e.g. 20 x 60 x 60 bins) needs it assembled sparse, since every
bin touches only ``(degree + 2)^3`` coefficients.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .smooth_rate import SmoothRate, _one_blas_thread
from .splines import BinDesign, RateAxis, SplineBasis, _to_coord

# Above 1e8 a penalised component is numerically absent (a second difference of
# 1e-4 in log(rate) costs 0.5 in log-likelihood) and the penalised information
# loses digits, which stalls the final scoring steps.
_LAMBDA_RANGE = (1e-8, 1e8)


def _kron_penalties(bases) -> list[np.ndarray]:
    """Per axis, its penalty acting on the flattened coefficients (a Kronecker product)."""
    out = []
    for d in range(len(bases)):
        factors = [b.penalty() if e == d else np.eye(b.n_coef) for e, b in enumerate(bases)]
        full = factors[0]
        for factor in factors[1:]:
            full = np.kron(full, factor)
        out.append(full)
    return out


@functools.cache
def _penalty_eigenvalues(basis: SplineBasis) -> np.ndarray:
    """Eigenvalues of a basis's penalty, 0 on its null space (cached: bases are frozen)."""
    values = np.linalg.eigvalsh(basis.penalty())
    return np.where(values > 1e-9 * values.max(), values, 0.0)


def _penalty_pinv_traces(bases, lambdas) -> np.ndarray:
    """``tr(S_λ⁻ S_d)`` for every axis ``d``, from the per-axis eigenvalues of the penalty."""
    grids = np.meshgrid(*[_penalty_eigenvalues(b) for b in bases], indexing="ij")
    total = sum(lam * g for lam, g in zip(lambdas, grids))
    positive = total > 0
    return np.array([np.sum(g[positive] / total[positive]) for g in grids])


@dataclass(frozen=True)
class _Problem:
    """Counts and exposure (flattened over bins), the bins' design and the axes' penalties."""

    counts: np.ndarray
    exposure: np.ndarray
    design: BinDesign
    penalties: list

    def objective(self, coef: np.ndarray, s_lambda: np.ndarray, mu=None) -> float:
        """Penalised Poisson log-likelihood (up to a constant); ``mu`` if known, expected counts."""
        mu = self.expected(coef) if mu is None else mu
        if not np.all(np.isfinite(mu) & (mu > 0)):
            return -np.inf
        return float(np.sum(self.counts * np.log(mu) - mu) - 0.5 * coef @ s_lambda @ coef)

    def information(self, coef: np.ndarray):
        """Expected counts, score of the likelihood and Fisher information at ``coef``."""
        weighted = self.design.weighted_rate(coef)
        mu = self.exposure * self.design.mean(coef, weighted).ravel()
        scaled = self.design.jacobian(weighted, self.exposure / np.sqrt(mu))
        score = scaled.T @ ((self.counts - mu) / np.sqrt(mu))
        return mu, score, scaled.T @ scaled

    def expected(self, coef: np.ndarray) -> np.ndarray:
        """Expected counts of every bin, (N,)."""
        return self.exposure * self.design.mean(coef).ravel()

    def s_lambda(self, lambdas) -> np.ndarray:
        return sum(lam * s for lam, s in zip(lambdas, self.penalties))


def _inverse_sym(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric matrix, symmetric to the last bit."""
    inverse = np.linalg.inv(matrix)
    return 0.5 * (inverse + inverse.T)


def _scoring_step(problem: _Problem, coef, lambdas, inverse: bool = True):
    """One penalised Fisher-scoring step with step halving.

    Returns
    -------
    coef : numpy.ndarray
        The new coefficients.
    hess_inv : numpy.ndarray or None
        Inverse penalised information at the old coefficients (None unless
        ``inverse``: the step alone needs only a Cholesky solve).
    info : numpy.ndarray
        Fisher information at the old coefficients.
    """
    s_lambda = problem.s_lambda(lambdas)
    mu, score, info = problem.information(coef)
    gradient = score - s_lambda @ coef
    if inverse:
        hess_inv = _inverse_sym(info + s_lambda)
        step = hess_inv @ gradient
    else:
        hess_inv = None
        step = np.linalg.solve(info + s_lambda, gradient)
    current = problem.objective(coef, s_lambda, mu)
    length = 1.0
    while length > 1e-6 and problem.objective(
        coef + length * step, s_lambda
    ) < current - 1e-9 * abs(current):
        length *= 0.5
    return coef + length * step, hess_inv, info


def _update_lambdas(problem: _Problem, bases, lambdas, coef, hess_inv, gains) -> np.ndarray:
    """Extended Fellner-Schall step towards the REML penalty weights (:func:`fellner_schall`)."""
    pinv_traces = _penalty_pinv_traces(bases, lambdas)
    numerators = [t - np.sum(hess_inv * s) for t, s in zip(pinv_traces, problem.penalties)]
    return fellner_schall(lambdas, numerators, [coef @ s @ coef for s in problem.penalties], gains)


def fellner_schall(lambdas, numerators, denominators, gains, max_gain=8.0) -> np.ndarray:
    """New penalty weights from the Fellner-Schall ratios ``tr(S_λ⁻ S_d) − tr(H⁻¹ S_d)`` over
    ``cᵀ S_d c`` (Wood & Fasiolo 2017).

    The step in ``log λ_d`` is the Fellner-Schall one times ``gains[d]``:
    doubled (up to ``max_gain``) while it keeps its sign, reset to 1 when it
    turns (updated in place). A weight creeping towards a bound (the penalised
    component is absent from the data) gets there in a few steps instead
    of dozens; the fixed point, where the ratio is 1, is the same.
    """
    new = np.empty(len(lambdas))
    for d, (lam, numerator, denominator) in enumerate(zip(lambdas, numerators, denominators)):
        ratio = numerator / denominator if denominator > 0 and numerator > 0 else 100.0
        log_step = np.log(np.clip(ratio, 0.01, 100.0))
        if np.sign(log_step) != np.sign(gains[d][1]):
            gains[d][0] = 1.0
        step = np.clip(gains[d][0] * log_step, -np.log(100.0), np.log(100.0))
        gains[d][:] = min(2 * gains[d][0], max_gain), log_step
        new[d] = lam * np.exp(step)
    return np.clip(new, *_LAMBDA_RANGE)


def _fit(problem: _Problem, bases, coef, lambdas, select: bool, max_iter: int):
    """Scoring steps, each followed by a penalty-weight update when ``select``.

    Stops when a step moves no bin's expected counts by more than 1 % of
    their Poisson error and the effective number of parameters by less than
    0.05; then converges the coefficients at the final weights (until the
    expected counts move by < 1e-5 of their error). Returns
    coefficients, weights and the number of steps.
    """
    mu, edf = problem.expected(coef), np.inf
    gains = [[1.0, 0.0] for _ in lambdas]  # per axis: gain, last log-step
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (returned)
        coef, hess_inv, info = _scoring_step(problem, coef, lambdas)
        new_mu, new_edf = problem.expected(coef), float(np.sum(hess_inv * info))
        moved = np.max(np.abs(new_mu - mu) / np.sqrt(mu + 1.0))
        settled = moved < 0.01 and (not select or abs(new_edf - edf) < 0.05)
        if select:
            lambdas = _update_lambdas(problem, bases, lambdas, coef, hess_inv, gains)
        mu, edf = new_mu, new_edf
        if settled:
            break
    for _ in range(20):
        coef, _, _ = _scoring_step(problem, coef, lambdas, inverse=False)
        new_mu = problem.expected(coef)
        moved, mu = np.max(np.abs(new_mu - mu) / np.sqrt(mu + 1.0)), new_mu
        if moved < 1e-5:
            break
    return coef, lambdas, n_iter


def _start(problem: _Problem, lambdas) -> np.ndarray:
    """Starting coefficients: penalised least squares of log((counts + 0.5) / exposure)."""
    average_basis = problem.design.jacobian(problem.design.weight)
    weight = problem.counts + 0.5
    target = np.log(weight / problem.exposure)
    normal = average_basis.T @ (average_basis * weight[:, None])
    rhs = average_basis.T @ (weight * target)
    return np.linalg.solve(normal + problem.s_lambda(lambdas), rhs)


def _default_segments(n_bins: int) -> int:
    return int(np.clip(n_bins, 4, 20))


@_one_blas_thread
def fit_smooth_rate(
    counts,
    exposure,
    edges,
    scales=None,
    measures=None,
    n_segments=None,
    degree: int = 3,
    n_points: int = 3,
    lambdas=None,
    max_iter: int = 100,
) -> SmoothRate:
    """Fit a smooth, positive rate to counts and exposure on a grid of bins.

    Parameters
    ----------
    counts : array-like
        Counts per bin, shape (N_1, ..., N_n), >= 0.
    exposure : array-like
        Exposure per bin, same shape, > 0 (e.g. s MeV sr; the rate comes out
        as counts per unit of exposure, e.g. s-1 MeV-1 sr-1).
    edges : list of array-like
        Bin edges of each axis (N_d + 1 values, the axis's own unit).
    scales, measures : list of str, optional
        Per axis, fit coordinate and bin measure (see :class:`RateAxis`);
        default ``"linear"`` and ``"flat"``.
    n_segments : list of int, optional
        Per axis, B-spline segments; default the number of bins, within [4, 20].
    degree : int
        B-spline degree.
    n_points : int
        Gauss-Legendre points per axis and bin for the bin averages.
    lambdas : list of float, optional
        Fixed penalty weights; default chosen by REML.
    max_iter : int
        Most scoring steps (each with a penalty-weight update).

    Returns
    -------
    SmoothRate
    """
    counts = np.asarray(counts, dtype=np.float64)
    exposure = np.asarray(exposure, dtype=np.float64)
    n_axes = len(edges)
    scales = scales or ["linear"] * n_axes
    measures = measures or ["flat"] * n_axes
    axes = tuple(RateAxis(e, s, m) for e, s, m in zip(edges, scales, measures))
    shape = tuple(a.edges.size - 1 for a in axes)
    if counts.shape != shape or exposure.shape != shape:
        raise ValueError(f"counts and exposure must have shape {shape}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)) or np.any(~(exposure > 0)):
        raise ValueError("counts must be finite and >= 0, exposure > 0 in every bin")
    if counts.sum() <= 0:
        raise ValueError("no counts: a positive rate cannot be estimated")
    n_segments = n_segments or [_default_segments(n) for n in shape]
    bases = tuple(
        SplineBasis(*_to_coord(a.scale, a.edges[[0, -1]]), nseg, degree)
        for a, nseg in zip(axes, n_segments)
    )
    problem = _Problem(
        counts.ravel(),
        exposure.ravel(),
        BinDesign(axes, bases, [a.edges for a in axes], n_points),
        _kron_penalties(bases),
    )
    select = lambdas is None
    start = np.asarray([1.0] * n_axes if select else lambdas, dtype=np.float64)
    coef, lam, n_iter = _fit(problem, bases, _start(problem, start), start, select, max_iter)
    return _result(problem, axes, bases, coef, lam, n_iter)


def _result(problem: _Problem, axes, bases, coef, lambdas, n_iter) -> SmoothRate:
    """Covariance, effective degrees of freedom and deviance at the optimum."""
    mu, _, info = problem.information(coef)
    s_lambda = problem.s_lambda(lambdas)
    np.linalg.cholesky(info + s_lambda)  # raises LinAlgError unless positive definite
    covariance = _inverse_sym(info + s_lambda)
    y = problem.counts
    ratio = np.where(y > 0, y / mu, 1.0)
    deviance = float(2 * np.sum(y * np.log(ratio) - (y - mu)))
    return SmoothRate(
        axes=axes,
        bases=bases,
        coef=coef.reshape([b.n_coef for b in bases]),
        covariance=covariance,
        lambdas=tuple(float(x) for x in lambdas),
        edf=float(np.sum(covariance * info)),
        deviance=deviance,
        n_bins=int(y.size),
        n_iter=int(n_iter),
    )


def fit_group_rate(total, **kwargs) -> SmoothRate:
    """Smooth rate of one group's summed counts and exposure (a reduction's xarray Dataset).

    Energy is fitted in ``ln E`` (bin measure ``dE``), offset in ``θ²``
    (bin measure ``sin θ dθ``); ``kwargs`` go to :func:`fit_smooth_rate`.
    The rate is in s-1 MeV-1 sr-1 over energy (TeV) and offset (deg).
    """
    energy = np.append(total["energy_lo"].values, total["energy_hi"].values[-1])
    offset = np.append(total["offset_lo"].values, total["offset_hi"].values[-1])
    return fit_binned_rate(
        total["counts"].values, total["exposure"].values, energy, offset, **kwargs
    )


def fit_binned_rate(counts, exposure, energy_edges, offset_edges, **kwargs) -> SmoothRate:
    """Smooth rate of counts and exposure on (energy TeV, offset deg) bins, as for a group."""
    return fit_smooth_rate(
        counts,
        exposure,
        [energy_edges, offset_edges],
        scales=["log", "square"],
        measures=["flat", "ring"],
        **kwargs,
    )
