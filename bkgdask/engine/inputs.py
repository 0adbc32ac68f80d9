"""What a build takes from its store besides the runs: event filter, IRF class, the data's extent.

Decisions, in the order a build meets them:

- **Point-like stores** (GADF ``HDUCLAS3 = 'POINT-LIKE'``, :mod:`bkgdask.io.irf_class`)
  are refused unless ``allow_point_like`` is set: their events passed
  gamma/hadron cuts tuned for an on-region around the target, and a
  field-of-view model of them is not the full-enclosure background a 3D analysis
  needs. When allowed, the models say ``HDUCLAS3 = 'POINT-LIKE'`` and
  ``TGTEXCL`` says whether the target was excluded; as long as the build has
  no exclusion regions it is not, the build warns, and the target's gamma rays
  are part of the models.
- **Event filters** (:mod:`bkgdask.io.event_filter`) are applied in the per-run
  task, before binning, on the EVENTS columns they name (read only for them).
  A run of which a filter keeps nothing still counts with its observation time
  (a warning names it); a filter that keeps nothing of any run is an error.
  A column missing from a run's EVENTS HDU is an error naming the column, the
  run and the file.
- **The data's extent**: every partial records the largest offset and the energy
  range of its kept events. A model's offset bins whose lower edge lies beyond
  the largest event offset are cut from the model with a warning naming them:
  they were not measured, and a zero there would read as "no background".
  Energy bins entirely outside the events' energy range (below the threshold,
  above the highest event) are kept, as the analysis's energy thresholds deal
  with them, but a warning names them and the header records the range
  (``EVTEMIN``/``EVTEMAX``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..errors import StoreError
from ..io.event_filter import EventFilter, compile_event_filter, require_kept_events
from ..io.irf_class import IrfClass, store_irf_class
from ..io.store import DataStore

log = logging.getLogger(__name__)

__all__ = ["BuildInputs", "check_irf_class", "cut_to_extent"]


def check_irf_class(
    store: DataStore, allow_point_like: bool, target_excluded: bool = False
) -> IrfClass:
    """Refuse a point-like store unless allowed; warn if its target is not excluded.

    Raises
    ------
    StoreError
        If the store's IRFs are point-like and ``allow_point_like`` is False
        (one line saying why and what to pass).
    """
    irf_class = store_irf_class(store)
    if not irf_class.point_like:
        return irf_class
    if not allow_point_like:
        raise StoreError(
            f"{store.index_path or store.base_dir} is point-like ({irf_class.reason}): its "
            "events passed cuts made for an on-region, and a field-of-view model of them is "
            "not the full-enclosure background a 3D analysis needs; pass --allow-point-like "
            "(config allow_point_like: true) to build labelled POINT-LIKE models anyway"
        )
    if not target_excluded:
        log.warning(
            "point-like store %s: the observed target is not excluded, its gamma rays are "
            "counted in the models (labelled POINT-LIKE, TGTEXCL = F)",
            store.base_dir,
        )
    return irf_class


def cut_to_extent(total: xr.Dataset, label: str) -> xr.Dataset:
    """Cut the offset bins of a summed partial that lie beyond its events, with a warning.

    Offset bins whose lower edge lies beyond the largest event offset are
    dropped; energy bins entirely outside the events' energy range are named in
    a warning and kept. ``total`` is returned unchanged if it has no input
    attributes or no offset bin lies beyond the events.
    """
    attrs = total.attrs
    if "offset_max" not in attrs or attrs.get("n_kept", 0) == 0:
        return total
    _warn_energy_beyond(total, label)
    if "offset" not in total.dims:
        return total
    lo, hi = total["offset_lo"].values, total["offset_hi"].values
    keep = lo < attrs["offset_max"]
    if keep.all():
        return total
    log.warning(
        "model %s: offset bins %.4g-%.4g deg cut, beyond the data (events reach %.4g deg)",
        label,
        lo[~keep].min(),
        hi[~keep].max(),
        attrs["offset_max"],
    )
    return total.isel(offset=np.flatnonzero(keep))


def _warn_energy_beyond(total: xr.Dataset, label: str) -> None:
    attrs = total.attrs
    lo, hi = total["energy_lo"].values, total["energy_hi"].values
    measured = (hi > attrs["energy_min"]) & (lo <= attrs["energy_max"])
    if not measured.all():
        log.warning(
            "model %s: energy bins %s hold no event (events span %.4g-%.4g TeV)",
            label,
            ", ".join(f"{a:.4g}-{b:.4g}" for a, b in zip(lo[~measured], hi[~measured])),
            attrs["energy_min"],
            attrs["energy_max"],
        )


@dataclass(frozen=True)
class BuildInputs:
    """The event filter and IRF class of a build, and what they add to its models.

    Attributes
    ----------
    event_filter : EventFilter or None
        The compiled event filter.
    irf_class : IrfClass
        The store's IRF class and the evidence for it.
    target_excluded : bool
        Whether the observed targets were excluded (point-like stores).
    """

    event_filter: EventFilter | None
    irf_class: IrfClass
    target_excluded: bool = False

    @classmethod
    def of(cls, store: DataStore, config, target_excluded: bool = False) -> BuildInputs:
        """Check a store against a :class:`bkgdask.config.BuildConfig` before planning."""
        irf_class = check_irf_class(store, config.allow_point_like, target_excluded)
        return cls(compile_event_filter(config.events), irf_class, target_excluded)

    def finish(self, totals: dict[str, xr.Dataset]) -> dict[str, xr.Dataset]:
        """Check the filter kept events, warn of empty runs, cut bins beyond the data.

        Raises
        ------
        SelectionError
            If the event filter kept no event of any run.
        """
        kept_by_run = {}
        for total in totals.values():
            empty = set(total.attrs.get("empty_runs", ()))
            kept_by_run.update({int(o): int(o not in empty) for o in total.attrs["obs_ids"]})
        empty = require_kept_events(self.event_filter, kept_by_run)
        if empty:
            log.warning(
                "event filter %r keeps no event of %d run(s), counted with zero events: %s",
                self.event_filter.expression,
                len(empty),
                ", ".join(map(str, empty)),
            )
        return {label: cut_to_extent(total, label) for label, total in totals.items()}

    def label(self, header, total: xr.Dataset) -> None:
        """Add to a model's header: IRF class, filter, events kept, the data's extent."""
        header.update(self.cards(total))
        if self.irf_class.point_like:
            header.add_comment(
                "Built from point-like (POINT-LIKE) data: events passed on-region cuts; "
                "not a full-enclosure field-of-view background."
            )

    def cards(self, total: xr.Dataset) -> dict:
        """Header keywords of one model: IRF class, filter, events kept, the data's extent."""
        cards = {"HDUCLAS3": (self.irf_class.irf_class, "IRF class of the input store")}
        if self.irf_class.point_like:
            cards["TGTEXCL"] = (self.target_excluded, "observed targets excluded from the model")
        attrs = total.attrs
        if self.event_filter is not None:
            cards["EVTFILT"] = (self.event_filter.expression, "event filter on EVENTS columns")
        if "n_kept" in attrs:
            cards["NKEPT"] = (int(attrs["n_kept"]), "events kept by the event filter")
        if attrs.get("n_kept", 0) > 0:
            cards["OFFMAX"] = (attrs["offset_max"], "[deg] largest offset of the events")
            cards["EVTEMIN"] = (attrs["energy_min"], "[TeV] lowest energy of the events")
            cards["EVTEMAX"] = (attrs["energy_max"], "[TeV] highest energy of the events")
        return cards
