"""Models against the simulator's truth: per-bin pulls, χ² and its p-value.

A histogram model is its counts: they are compared with the truth's
expectation under Poisson errors. A smoothed model (header ``SMMETHOD``
other than ``NONE``) is its prediction, rate x exposure on the build's
bins; the fit is redone from the counts and exposure the model stores, and
the residual is measured in the fit's own covariance, projected on its
``ceil(edf)`` leading eigenvectors (a χ² with that many degrees of
freedom). :func:`compare_to_truth` takes a BKG_2D model and the 2-D truth;
:func:`compare_to_expected` any model and expected counts on its bins (a
BKG_3D truth's, summed over the model's runs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..io.store import DataStore
from ..models import Model
from ..models.base import labelled
from ..sim.truth import TruthModel
from .observation_times import observation_times


@dataclass
class TruthComparison:
    """One model against the truth.

    Attributes
    ----------
    hdu_name : str
        The model.
    counts, expected : numpy.ndarray
        Counts in the model (its prediction if smoothed) and truth's
        expectation for the same runs, per bin.
    used : numpy.ndarray of bool
        Bins entering the χ² (expected >= ``min_expected``).
    chi2 : float
        Σ pull² over used bins.
    ndf : int
        Number of used bins (the truth has no free parameter).
    p_value : float
        P(χ²_ndf >= chi2).
    """

    hdu_name: str
    counts: np.ndarray
    expected: np.ndarray
    used: np.ndarray
    chi2: float
    ndf: int
    p_value: float

    @property
    def pulls(self) -> np.ndarray:
        """(counts − expected) / √expected in used bins, NaN elsewhere."""
        out = np.full(self.counts.shape, np.nan)
        out[self.used] = (self.counts - self.expected)[self.used] / np.sqrt(
            self.expected[self.used]
        )
        return out

    def summary(self) -> dict:
        ratio = self.counts[self.used].sum() / self.expected[self.used].sum()
        return {
            "model": self.hdu_name,
            "chi2": self.chi2,
            "ndf": self.ndf,
            "chi2_per_ndf": self.chi2 / self.ndf,
            "p_value": self.p_value,
            "counts_over_expected": ratio,
        }


def compare_to_truth(
    model: Model,
    truth: TruthModel,
    zenith: dict[int, float],
    time: dict[int, float],
    min_expected: float = 10.0,
) -> TruthComparison:
    """Compare one model's prediction (rate x the runs' exposure) with the truth's expectation.

    Parameters
    ----------
    model : Model
        The model (its runs in ``model.obs_ids``).
    truth : TruthModel
        The simulator's rate.
    zenith, time : dict of int to float
        Zenith (deg) and observation time (s) of each run.
    min_expected : float
        Bins with fewer expected counts are left out of the χ².
    """
    zen = np.array([zenith[o] for o in model.obs_ids])
    seconds = np.array([time[o] for o in model.obs_ids])
    b = model.binning
    expected = truth.expected_counts(b["energy"], b["offset"], zen, seconds)
    return compare_to_expected(model, expected, min_expected)


def compare_to_expected(model: Model, expected, min_expected: float = 10.0) -> TruthComparison:
    """Compare one model's prediction (rate x the runs' exposure) with expected counts.

    Any kind: ``expected`` holds the truth's expected counts of the model's
    runs on the model's bins (for BKG_3D e.g. the sum over the runs of
    :meth:`bkgdask.sim.truth3d.Truth3D.expected_counts`).

    Parameters
    ----------
    model : Model
        The model.
    expected : numpy.ndarray
        Expected counts, shape of the model's binning.
    min_expected : float
        Bins with fewer expected counts are left out of the histogram's χ².
    """
    # The model's prediction over the runs' whole exposure: with exclusion regions the
    # stored counts and exposure lack the excluded areas, which the truth integrates.
    exposure = model.kind.exposure(model.binning, model.observation_time)
    counts = model.rate * exposure
    used = expected >= min_expected
    if model.smoothed:
        chi2, ndf = _smooth_chi2(model, counts, expected, exposure)
    else:  # Poisson pulls of the histogram
        chi2, ndf = float((((counts - expected) ** 2) / expected)[used].sum()), int(used.sum())
    return TruthComparison(
        model.name, counts, expected, used, chi2, ndf, float(stats.chi2.sf(chi2, ndf))
    )


def _smooth_chi2(model: Model, predicted, expected, exposure) -> tuple[float, int]:
    """χ² of a smooth model's bin integrals against the truth, in the fit's own covariance.

    The fit is redone from the counts and exposure the model stores (the same
    deterministic fit). Its bin integrals are correlated, of rank about the
    effective number of parameters: the residual is projected on the
    ``ceil(edf)`` leading eigenvectors of their covariance, a χ² with that many
    degrees of freedom (for BKG_3D found from the coefficients' side,
    :meth:`~bkgdask.models.grid_rate.GridSmoothRate.projected_chi2`).
    """
    from ..models.grid_rate import GridSmoothRate

    fit = model.kind.fit(labelled(model.counts, model.exposure, model.binning, {}))
    if isinstance(fit, GridSmoothRate):
        return fit.projected_chi2(predicted - expected, exposure)
    scale = exposure.ravel()
    values, vectors = np.linalg.eigh(fit.rate_covariance() * np.outer(scale, scale))
    n_dof = int(np.ceil(fit.edf))
    residual = (predicted - expected).ravel()
    return float(np.sum((vectors[:, -n_dof:].T @ residual) ** 2 / values[-n_dof:])), n_dof


def compare_bundle_to_truth(
    models: dict[str, Model], store: DataStore, truth: TruthModel, min_expected: float = 10.0
) -> list[TruthComparison]:
    """Every model of a bundle against the truth, runs' zenith and time from the store."""
    zenith = dict(zip(store.obs_ids.tolist(), store.zenith_deg().tolist()))
    obs_ids = sorted({o for m in models.values() for o in m.obs_ids})
    time = observation_times(store, obs_ids)
    return [compare_to_truth(m, truth, zenith, time, min_expected) for m in models.values()]
