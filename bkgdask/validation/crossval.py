"""k-fold cross-validation: build on k−1 folds of the off runs, predict the held-out fold."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config import BuildConfig
from ..engine.build import build
from ..engine.tasks import histogram_run
from ..io.store import DataStore
from ..models import Model, get_kind, read_models

log = logging.getLogger(__name__)


def folds(obs_ids, k: int) -> list[list[int]]:
    """Deal sorted obs_ids round-robin into ``k`` folds (deterministic)."""
    ids = sorted(map(int, obs_ids))
    if not 2 <= k <= len(ids):
        raise ValueError(f"k-fold needs 2 <= k <= {len(ids)} runs, got k={k}")
    return [ids[i::k] for i in range(k)]


def config_like(models: dict[str, Model], scheduler: str = "sync") -> BuildConfig:
    """A build config with the binning, zenith groups and smoothing of a bundle's models."""
    first = next(iter(models.values()))
    zenith = sorted({m.zenith_lo for m in models.values()} | {m.zenith_hi for m in models.values()})
    return BuildConfig.validated(
        {
            "binning": {
                "energy": {"edges": first.binning["energy"].tolist(), "unit": "TeV"},
                "offset": {"edges": first.binning["offset"].tolist(), "unit": "deg"},
            },
            "grouping": {"zenith": {"edges": zenith, "unit": "deg"}},
            "model": {"smoothing": "pspline" if first.smoothed else "none"},
            "compute": {"scheduler": scheduler, "progress": False},
        }
    )


def held_out(store: DataStore, obs_id: int, zenith: float, model: Model):
    """Counts of one run and the model's prediction, per bin of the model, (n_energy, n_offset)."""
    (run,) = store.run_inputs([obs_id], {obs_id: zenith})
    partial = histogram_run(run, get_kind("bkg_2d"), model.binning)
    return partial["counts"].values, model.rate * partial["exposure"].values


def cross_validate(
    store: DataStore, models: dict[str, Model], k: int, workdir: Path, offset_max: float = 2.0
) -> tuple[list[dict], dict[int, Path], dict[str, dict]]:
    """Per held-out run: observed/predicted counts from the model built without its fold.

    Parameters
    ----------
    store : DataStore
        The store the bundle was built from.
    models : dict of str to Model
        The bundle's models; their runs are the ones folded, their bins,
        zenith groups and smoothing are the folds' (:func:`config_like`).
    k : int
        Number of folds.
    workdir : Path
        Where the fold bundles are written.
    offset_max : float
        Largest offset (deg) of the bins counted in ``rows``.

    Returns
    -------
    rows : list of dict
        One per held-out run: obs_id, fold, model, counts, predicted, ratio.
    bundles : dict of int to Path
        obs_id -> the fold bundle that predicts it.
    binned : dict of str to dict
        Per model name: held-out ``counts`` and ``predicted`` summed over its
        held-out runs per bin of the model, (n_energy, n_offset), and ``obs_ids``.
    """
    config = config_like(models).updated({"cache": str(workdir / "run-cache")})  # runs read once
    obs_ids = sorted(o for m in models.values() for o in m.obs_ids)
    zenith = dict(zip(store.obs_ids.tolist(), store.zenith_deg().tolist()))
    inside = next(iter(models.values())).binning["offset"][1:] <= offset_max + 1e-9
    rows, bundles, binned = [], {}, {}
    for index, held in enumerate(folds(obs_ids, k)):
        train = sorted(set(obs_ids) - set(held))
        result = build(store, config.updated({"selection": f"OBS_ID in {train}"}))
        path = result.write(workdir / f"fold-{index}.fits.gz")
        fold_models, _ = read_models(path)
        for obs_id in held:
            name = result.assignment[obs_id].hdu_name
            counts, predicted = held_out(store, obs_id, zenith[obs_id], fold_models[name])
            total = binned.setdefault(name, {"counts": 0, "predicted": 0, "obs_ids": []})
            total["counts"] = total["counts"] + counts
            total["predicted"] = total["predicted"] + predicted
            total["obs_ids"].append(obs_id)
            n, mu = float(counts[:, inside].sum()), float(predicted[:, inside].sum())
            ratio = n / mu if mu > 0 else float("nan")
            rows.append(
                dict(obs_id=obs_id, fold=index, model=name, counts=n, predicted=mu, ratio=ratio)
            )
            bundles[obs_id] = path
        log.info("fold %d/%d: built on %d runs, predicted %d", index + 1, k, len(train), len(held))
    return rows, bundles, binned


def ratio_summary(values) -> dict:
    """Mean, standard deviation and count of finite ratios."""
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if values.size == 0:
        return {"n": 0, "mean": None, "std": None}
    return {"n": int(values.size), "mean": float(values.mean()), "std": float(values.std())}
