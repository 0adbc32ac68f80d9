"""Whether a store's IRFs are full-enclosure or point-like, and the evidence for it.

Point-like IRFs (GADF ``HDUCLAS3 = 'POINT-LIKE'``) come with a direction cut
(``RAD_MAX``); background models built from such stores must say so. The
answer comes from the cheapest source that has it:

1. an ``HDU_CLASS3``-like column of the HDU index (``HDU_CLASS3``,
   ``HDUCLAS3``), over its ``aeff`` and ``edisp`` rows;
2. ``rad_max`` rows in the HDU index (``HDU_TYPE`` or ``HDU_CLASS``): only
   point-like stores have them;
3. the headers of the ``aeff`` (else ``edisp``) HDUs of a few runs (the first,
   middle and last of the obs-index): ``HDUCLAS3``, else a ``RAD_MAX`` keyword
   means point-like, else full-enclosure.

A store without ``aeff``/``edisp`` HDUs (events and GTIs only) is taken as
full-enclosure, and the evidence says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import StoreError
from .fitsread import read_header
from .gadf import string_column
from .runs import READ_ERRORS, read_failure
from .store import DataStore

FULL_ENCLOSURE = "FULL-ENCLOSURE"
POINT_LIKE = "POINT-LIKE"
CLASS3_COLUMNS = ("HDU_CLASS3", "HDUCLAS3")
IRF_TYPES = ("aeff", "edisp")

__all__ = ["FULL_ENCLOSURE", "POINT_LIKE", "IrfClass", "store_irf_class"]


@dataclass(frozen=True)
class IrfClass:
    """The IRF class of a store and where it was read.

    Attributes
    ----------
    irf_class : str
        ``'FULL-ENCLOSURE'`` or ``'POINT-LIKE'``.
    file : str
        File the evidence is in (an index file or a run file).
    hdu : str
        HDU (``EXTNAME``) of that file, or the index column looked at.
    reason : str
        What was found, e.g. ``"HDUCLAS3 = 'POINT-LIKE'"``.
    """

    irf_class: str
    file: str
    hdu: str
    reason: str

    @property
    def point_like(self) -> bool:
        """Whether the IRFs are point-like."""
        return self.irf_class == POINT_LIKE

    def __str__(self) -> str:
        return f"{self.irf_class}: {self.reason} ({self.file} [{self.hdu}])"


def _from_index_column(store: DataStore, irf_rows: np.ndarray) -> IrfClass | None:
    for column in CLASS3_COLUMNS:
        if column not in store.hdu_index.colnames or not irf_rows.size:
            continue
        values = set(np.char.upper(string_column(store.hdu_index[column])[irf_rows]).tolist())
        values.discard("")
        if len(values) > 1:
            raise StoreError(f"HDU index {store.index_path} mixes IRF classes {sorted(values)}")
        if values:
            value = values.pop()
            if value not in (FULL_ENCLOSURE, POINT_LIKE):
                raise StoreError(f"HDU index {store.index_path}: unknown {column} {value!r}")
            return IrfClass(value, str(store.index_path), column, f"{column} = {value!r}")
    return None


def _from_rad_max_rows(store: DataStore) -> IrfClass | None:
    types = np.char.lower(string_column(store.hdu_index["HDU_TYPE"]))
    classes = np.char.lower(string_column(store.hdu_index["HDU_CLASS"]))
    rows = np.flatnonzero((types == "rad_max") | np.char.startswith(classes, "rad_max"))
    if not rows.size:
        return None
    row = int(rows[0])
    obs_id = int(store.hdu_index["OBS_ID"][row])
    reason = f"the HDU index lists {rows.size} rad_max HDUs (e.g. of run {obs_id})"
    hdu = string_column(store.hdu_index["HDU_NAME"])[row]
    return IrfClass(POINT_LIKE, str(store.file_paths()[row]), hdu, reason)


def _from_header(path: str, hdu: str, obs_id: int) -> IrfClass:
    try:
        header = read_header(path, hdu)
    except READ_ERRORS as exc:
        raise read_failure(obs_id, path, exc) from exc
    value = str(header.get("HDUCLAS3") or "").strip().upper()
    if value in (FULL_ENCLOSURE, POINT_LIKE):
        return IrfClass(value, path, hdu, f"HDUCLAS3 = {value!r}")
    if header.get("RAD_MAX") is not None:
        return IrfClass(POINT_LIKE, path, hdu, f"no HDUCLAS3, RAD_MAX = {header['RAD_MAX']}")
    return IrfClass(FULL_ENCLOSURE, path, hdu, "neither HDUCLAS3 nor RAD_MAX: assumed")


def _sample_runs(obs_ids: list[int], max_runs: int) -> list[int]:
    if len(obs_ids) <= max_runs:
        return obs_ids
    picks = np.linspace(0, len(obs_ids) - 1, max_runs).round().astype(int)
    return [obs_ids[i] for i in dict.fromkeys(picks.tolist())]


def store_irf_class(store: DataStore, max_runs: int = 3) -> IrfClass:
    """Say whether a store's IRFs are full-enclosure or point-like.

    Parameters
    ----------
    store : DataStore
        The opened store.
    max_runs : int
        Runs whose IRF headers are read when the HDU index does not tell
        (spread over the obs-index: first, middle, last).

    Returns
    -------
    IrfClass
        The class and the evidence (file, HDU, what was found).

    Raises
    ------
    StoreError
        If the index or the runs read disagree about the class.
    RunError
        If an IRF header cannot be read (names the run and the file).
    """
    types = np.char.lower(string_column(store.hdu_index["HDU_TYPE"]))
    irf_rows = np.flatnonzero(np.isin(types, IRF_TYPES))
    found = _from_index_column(store, irf_rows) or _from_rad_max_rows(store)
    if found is not None:
        return found
    for hdu_type in IRF_TYPES:
        locations = store.hdu_locations(hdu_type)
        with_irf = [o for o in store.obs_ids.tolist() if o in locations]
        if not with_irf:
            continue
        answers = [_from_header(*locations[o], o) for o in _sample_runs(with_irf, max_runs)]
        classes = {answer.irf_class for answer in answers}
        if len(classes) > 1:
            listed = "; ".join(map(str, answers))
            raise StoreError(f"runs of {store.base_dir} mix IRF classes: {listed}")
        return answers[0]
    reason = "no aeff or edisp HDU in the HDU index: assumed"
    return IrfClass(FULL_ENCLOSURE, str(store.index_path), "HDU_TYPE", reason)
