"""A model's prediction as gammapy evaluates it, against counts, with the store's safe energies."""

from __future__ import annotations

import astropy.units as u
import numpy as np

from ..io.store import DataStore


def safe_energy_range(store: DataStore, obs_ids) -> tuple[np.ndarray, np.ndarray]:
    """Per run, the obs-index's ``SAFE_ENERGY_LO`` and ``SAFE_ENERGY_HI`` in TeV.

    Returns
    -------
    lo, hi : numpy.ndarray
        TeV, one value per ``obs_ids``; NaN where the obs-index has no such
        column (use gammapy's ``aeff-default`` there instead).
    """
    table = store.obs_index
    row = {int(o): i for i, o in enumerate(table["OBS_ID"])}
    index = np.array([row[int(o)] for o in obs_ids], dtype=np.int64)
    out = []
    for column in ("SAFE_ENERGY_LO", "SAFE_ENERGY_HI"):
        if column not in table:
            out.append(np.full(index.size, np.nan))
            continue
        scale = u.Unit(table.units[column] or "TeV").to("TeV")
        out.append(np.asarray(table[column], dtype=np.float64)[index] * scale)
    return out[0], out[1]


def gammapy_predicted(bkg, energy_edges, offset_edges, observation_time_s, n_fine: int = 8):
    """Counts a gammapy ``Background2D`` predicts in bins, integrating its evaluation.

    ``bkg.evaluate`` is sampled on ``n_fine`` x ``n_fine`` midpoints per bin
    (log-spaced in energy, in offset weighted by the ring's solid angle).

    Parameters
    ----------
    bkg : gammapy.irf.Background2D
        The model as gammapy reads it.
    energy_edges, offset_edges : numpy.ndarray
        TeV and deg.
    observation_time_s : float
        s.

    Returns
    -------
    numpy.ndarray
        Predicted counts, shape (n_energy, n_offset).
    """
    energy_edges = np.asarray(energy_edges, dtype=np.float64)
    offset_edges = np.asarray(offset_edges, dtype=np.float64)
    log_e = np.log(energy_edges)
    fraction = (np.arange(n_fine) + 0.5) / n_fine
    energy = np.exp(log_e[:-1, None] + np.diff(log_e)[:, None] * fraction)  # (E, f)
    offset = offset_edges[:-1, None] + np.diff(offset_edges)[:, None] * fraction  # (O, f)
    rate = bkg.evaluate(
        energy=energy.reshape(-1, 1) * u.TeV, offset=offset.reshape(1, -1) * u.deg
    ).to_value("s-1 MeV-1 sr-1")
    d_energy_mev = energy * np.diff(log_e)[:, None] / n_fine * 1e6  # dE = E dlnE
    theta = np.deg2rad(offset)
    d_omega = 2 * np.pi * np.sin(theta) * np.deg2rad(np.diff(offset_edges))[:, None] / n_fine
    weight = np.multiply.outer(d_energy_mev, d_omega).reshape(rate.shape)
    per_point = (rate * weight).reshape(energy.shape + offset.shape)
    return observation_time_s * per_point.sum(axis=(1, 3))


def ratio_with_error(counts, predicted) -> tuple[np.ndarray, np.ndarray]:
    """Counts / prediction and its Poisson 1-sigma error √prediction / prediction.

    The error is the prediction's Poisson spread, defined also where no
    count was seen; NaN where nothing is predicted.
    """
    counts = np.asarray(counts, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(predicted > 0, counts / predicted, np.nan)
        error = np.where(predicted > 0, 1 / np.sqrt(predicted), np.nan)
    return ratio, error
