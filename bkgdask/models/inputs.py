"""What the runs of a partial contained: events kept by the event filter and the data's extent.

A per-run partial carries, besides its counts and exposure, the attributes
``n_kept`` (events that passed the event filter), ``offset_max`` (deg, largest
offset of a kept event from the pointing), ``energy_min`` and ``energy_max``
(TeV, range of the kept events' energies). :func:`combine_input_attrs` gives
their combined form (sum, max, min, and the runs of which nothing was kept),
which :meth:`bkgdask.models.base.ModelKind.combine` adds to its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Attributes of a per-run partial that describe its input events.
INPUT_ATTRS = ("n_kept", "offset_max", "energy_min", "energy_max")

__all__ = ["INPUT_ATTRS", "combine_input_attrs", "extent_of"]


def extent_of(energy_tev: np.ndarray, hav_max: float) -> dict:
    """The input attributes of one run's kept events.

    Parameters
    ----------
    energy_tev : numpy.ndarray
        Energies of the kept events, TeV.
    hav_max : float
        Their largest offset from the pointing as sin²(θ/2) (the 2D kernel's
        haversine; ignored without events).

    Returns
    -------
    dict
        ``n_kept``; ``offset_max`` (deg, -inf without events); ``energy_min``
        and ``energy_max`` (TeV, +inf and -inf without events).
    """
    if not energy_tev.size:
        return {"n_kept": 0, "offset_max": -np.inf, "energy_min": np.inf, "energy_max": -np.inf}
    hav_max = min(float(hav_max), 1.0)
    return {
        "n_kept": int(energy_tev.size),
        "offset_max": float(np.degrees(2 * np.arcsin(np.sqrt(hav_max)))),
        "energy_min": float(np.min(energy_tev)),
        "energy_max": float(np.max(energy_tev)),
    }


def combine_input_attrs(attrs: Sequence[Mapping]) -> dict:
    """Combine the input attributes of partials (per-run or already combined).

    Parameters
    ----------
    attrs : sequence of mapping
        Attributes of the partials.

    Returns
    -------
    dict
        ``n_kept`` (sum), ``offset_max`` and ``energy_max`` (max), ``energy_min``
        (min) and ``empty_runs`` (obs_ids of the runs of which no event was
        kept); empty if any partial lacks the input attributes.
    """
    if not attrs or not all(all(k in a for k in INPUT_ATTRS) for a in attrs):
        return {}
    empty = []
    for a in attrs:
        if "empty_runs" in a:
            empty.extend(a["empty_runs"])
        elif a["n_kept"] == 0:
            empty.append(int(a["obs_id"]))
    return {
        "n_kept": sum(int(a["n_kept"]) for a in attrs),
        "offset_max": max(float(a["offset_max"]) for a in attrs),
        "energy_min": min(float(a["energy_min"]) for a in attrs),
        "energy_max": max(float(a["energy_max"]) for a in attrs),
        "empty_runs": empty,
    }
