"""k-fold cross-validation: build on k−1 folds of the off runs, predict the held-out fold."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config import BuildConfig
from ..engine.build import build
from ..engine.tasks import histogram_run
from ..io.store import DataStore
from ..models import Model, get_kind

log = logging.getLogger(__name__)


def folds(obs_ids, k: int) -> list[list[int]]:
    """Deal sorted obs_ids round-robin into ``k`` folds (deterministic)."""
    ids = sorted(map(int, obs_ids))
    if not 2 <= k <= len(ids):
        raise ValueError(f"k-fold needs 2 <= k <= {len(ids)} runs, got k={k}")
    return [ids[i::k] for i in range(k)]


def config_like(models: dict[str, Model], scheduler: str = "sync") -> BuildConfig:
    """A build config with the binning and zenith groups of a bundle's models."""
    first = next(iter(models.values()))
    zenith = sorted({m.zenith_lo for m in models.values()} | {m.zenith_hi for m in models.values()})
    return BuildConfig.validated(
        {
            "binning": {
                "energy": {"edges": first.binning["energy"].tolist(), "unit": "TeV"},
                "offset": {"edges": first.binning["offset"].tolist(), "unit": "deg"},
            },
            "grouping": {"zenith": {"edges": zenith, "unit": "deg"}},
            "compute": {"scheduler": scheduler, "progress": False},
        }
    )


def exact_ratio(store: DataStore, obs_id: int, zenith: float, rate, binning, offset_max: float):
    """Observed / predicted counts of one run in the model's own bins (offset <= offset_max)."""
    (run,) = store.run_inputs([obs_id], {obs_id: zenith})
    partial = histogram_run(run, get_kind("bkg_2d"), binning)
    inside = binning["offset"][1:] <= offset_max + 1e-9
    counts = float(partial["counts"].values[:, inside].sum())
    predicted = float((rate * partial["exposure"].values)[:, inside].sum())
    return counts, predicted


def cross_validate(
    store: DataStore, models: dict[str, Model], k: int, workdir: Path, offset_max: float = 2.0
) -> tuple[list[dict], dict[int, Path]]:
    """Per held-out run: observed/predicted counts from models built without its fold.

    Parameters
    ----------
    store : DataStore
        The store the bundle was built from.
    models : dict of str to Model
        The bundle's models; their runs are the ones folded.
    k : int
        Number of folds.
    workdir : Path
        Where the fold bundles are written.
    offset_max : float
        Largest offset (deg) of the bins counted.

    Returns
    -------
    rows : list of dict
        One per held-out run: obs_id, fold, model, counts, predicted, ratio.
    bundles : dict of int to Path
        obs_id -> the fold bundle that predicts it.
    """
    config = config_like(models).updated({"cache": str(workdir / "run-cache")})  # runs read once
    obs_ids = sorted(o for m in models.values() for o in m.obs_ids)
    zenith = dict(zip(store.obs_ids.tolist(), store.zenith_deg().tolist()))
    rows, bundles = [], {}
    for index, held_out in enumerate(folds(obs_ids, k)):
        train = sorted(set(obs_ids) - set(held_out))
        fold_config = config.updated({"selection": f"OBS_ID in {train}"})
        result = build(store, fold_config)
        path = result.write(workdir / f"fold-{index}.fits.gz")
        for obs_id in held_out:
            group = result.assignment[obs_id]
            rate = result.totals[group.label]["counts"] / result.totals[group.label]["exposure"]
            first = next(iter(models.values()))
            counts, predicted = exact_ratio(
                store, obs_id, zenith[obs_id], rate.values, first.binning, offset_max
            )
            rows.append(
                {
                    "obs_id": obs_id,
                    "fold": index,
                    "model": group.hdu_name,
                    "counts": counts,
                    "predicted": predicted,
                    "ratio": counts / predicted if predicted > 0 else float("nan"),
                }
            )
            bundles[obs_id] = path
        log.info(
            "fold %d/%d: built on %d runs, predicted %d", index + 1, k, len(train), len(held_out)
        )
    return rows, bundles


def ratio_summary(values) -> dict:
    """Mean, standard deviation and count of finite ratios."""
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if values.size == 0:
        return {"n": 0, "mean": None, "std": None}
    return {"n": int(values.size), "mean": float(values.mean()), "std": float(values.std())}
