"""Tree reduction of per-run partials: chunk / combine / finalize.

* chunk: :func:`bkgdask.histogram.histogram_run`, one task per observation,
  returns additive counts and exposure;
* combine: :func:`combine_partials` sums at most ``split_every`` partials;
  partials stay additive, nothing is divided;
* finalize: :func:`background_rate` divides counts by exposure, on the client,
  once per group.

The group's result is the only thing the client receives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr
from dask.delayed import Delayed, delayed

#: Attributes summed by :func:`combine_partials`.
ADDITIVE_ATTRS = ("observation_time", "n_events", "n_runs")


def _run_attrs(part: xr.Dataset) -> dict:
    """Attributes of a partial in combined form (a single run's become a one-run group)."""
    attrs = part.attrs
    if "obs_ids" in attrs:
        return attrs
    return {
        "obs_ids": [int(attrs["obs_id"])],
        "observation_time": float(attrs["observation_time"]),
        "n_events": int(attrs["n_events"]),
        "n_runs": 1,
        "zenith_min": float(attrs["zenith"]),
        "zenith_max": float(attrs["zenith"]),
    }


def combine_partials(parts: Sequence[xr.Dataset]) -> xr.Dataset:
    """Sum partials: counts and exposure bin by bin, run bookkeeping alongside.

    Parameters
    ----------
    parts : sequence of xarray.Dataset
        Outputs of :func:`~bkgdask.histogram.histogram_run` or of this
        function, all on the same bins.

    Returns
    -------
    xarray.Dataset
        Same variables and coordinates; attributes ``obs_ids`` (list),
        ``n_runs``, ``observation_time`` (s), ``n_events``, ``zenith_min`` and
        ``zenith_max`` (deg).
    """
    if not parts:
        raise ValueError("combine_partials needs at least one partial")
    first = parts[0]
    counts = first["counts"].values.copy()
    exposure = first["exposure"].values.copy()
    for part in parts[1:]:
        if part["counts"].shape != counts.shape:
            raise ValueError("partials have different binning")
        counts += part["counts"].values
        exposure += part["exposure"].values
    run_attrs = [_run_attrs(p) for p in parts]
    attrs = {
        "obs_ids": [obs for a in run_attrs for obs in a["obs_ids"]],
        **{key: sum(a[key] for a in run_attrs) for key in ADDITIVE_ATTRS},
        "zenith_min": min(a["zenith_min"] for a in run_attrs),
        "zenith_max": max(a["zenith_max"] for a in run_attrs),
    }
    out = first.copy(data={"counts": counts, "exposure": exposure})
    out.attrs = attrs
    return out


def background_rate(total: xr.Dataset) -> xr.DataArray:
    """Finalize: rate = counts / exposure, s-1 MeV-1 sr-1 (0 where no counts)."""
    exposure = total["exposure"]
    if np.any(exposure.values <= 0):
        raise ValueError("exposure must be positive in every bin")
    # Plain numpy division: xarray arithmetic would import dask.array on first use.
    rate = total["counts"].copy(data=total["counts"].values / exposure.values)
    rate.attrs = {"units": "s-1 MeV-1 sr-1"}
    return rate.rename("rate")


def tree_reduce(
    parts: Sequence[Delayed],
    combine: Callable[[Sequence], object],
    split_every: int,
    name: str,
) -> Delayed:
    """Reduce delayed partials by a tree of ``combine`` tasks.

    Every combine task takes at most ``split_every`` inputs; levels are
    added until one task remains. A single input still passes through one
    combine task, so every group's result has the same form.

    Parameters
    ----------
    parts : sequence of Delayed
        The chunk results.
    combine : callable
        Takes a list of partials, returns one partial.
    split_every : int
        Fan-in of each combine task, >= 2.
    name : str
        Prefix of the task keys: ``{name}-{level}-{index}``; the root is
        ``{name}``.

    Returns
    -------
    Delayed
        The root of the tree.
    """
    if split_every < 2:
        raise ValueError(f"split_every must be >= 2, got {split_every}")
    if not parts:
        raise ValueError(f"nothing to reduce for {name}")
    level = 0
    layer = list(parts)
    while True:
        level += 1
        groups = [layer[i : i + split_every] for i in range(0, len(layer), split_every)]
        if len(groups) == 1:
            return delayed(combine, pure=True)(groups[0], dask_key_name=name)
        layer = [
            delayed(combine, pure=True)(group, dask_key_name=f"{name}-{level}-{i}")
            for i, group in enumerate(groups)
        ]
