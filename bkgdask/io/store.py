"""Opening a GADF data store: the HDU index, the observation index, run files."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections import ChainMap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RunError, StoreError
from .checks import check_unique_ids
from .fitsread import read_header
from .gadf import HDU_INDEX_COLUMNS, string_codes, string_column
from .index_table import IndexTable, read_index
from .runs import READ_ERRORS, RunInput, read_failure
from .zenith import pointing_time, zenith_of_pointings

log = logging.getLogger(__name__)

HDU_INDEX_NAMES = ("hdu-index.fits.gz", "hdu-index.fits")
OBS_INDEX_NAMES = ("obs-index.fits.gz", "obs-index.fits")
SEARCH_DEPTH = 3  # folder levels searched below a release folder for an index


def _find(base_dir: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (base_dir / name).is_file():
            return base_dir / name
    raise StoreError(f"no {what} ({' or '.join(names)}) in {base_dir}")


def _has_hdu_index(folder: Path) -> bool:
    return any((folder / name).is_file() for name in HDU_INDEX_NAMES)


def _index_candidates(root: Path) -> list[Path]:
    """Folders holding an HDU index under ``root``, at most SEARCH_DEPTH levels down.

    A folder with an index is not searched further; hidden folders are skipped.
    """
    found, level = [], [root]
    for _ in range(SEARCH_DEPTH):
        below = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                target = Path(entry.path)
                (found if _has_hdu_index(target) else below).append(target)
        level = below
    return sorted(found)


def locate_index(path: str | Path) -> tuple[Path, Path]:
    """Find the HDU index and observation index a user's path points to.

    Parameters
    ----------
    path : str or Path
        A folder holding the index files; one of the index files (the other is
        looked for beside it); or a release folder with the index further down,
        e.g. CTA-1DC's ``index/<dataset>/``, if it holds exactly one.

    Returns
    -------
    hdu_index, obs_index : Path
        Absolute paths of the two index files.

    Raises
    ------
    StoreError
        If the path does not exist, holds no index, or holds several (the
        message lists them and says to pass one index folder).
    """
    given = Path(path).expanduser()
    if not given.exists():
        raise StoreError(f"data store {path} does not exist")
    given = given.resolve()
    if given.is_file():
        return _pair_of(given)
    if _has_hdu_index(given):
        folder = given
    else:
        candidates = _index_candidates(given)
        if not candidates:
            raise StoreError(
                f"no HDU index ({' or '.join(HDU_INDEX_NAMES)}) in {path} "
                f"or its subfolders ({SEARCH_DEPTH} levels down)"
            )
        if len(candidates) > 1:
            listed = ", ".join(str(c.relative_to(given)) for c in candidates)
            raise StoreError(
                f"{path} holds {len(candidates)} data stores ({listed}); "
                f"pass the index folder of one, e.g. {candidates[0]}"
            )
        folder = candidates[0]
    hdu_index = _find(folder, HDU_INDEX_NAMES, "HDU index")
    return hdu_index, _find(folder, OBS_INDEX_NAMES, "observation index")


def _pair_of(index_file: Path) -> tuple[Path, Path]:
    """(HDU index, obs index) for one index file given by name: the other lies beside it."""
    name = index_file.name
    if name.startswith("hdu-index"):
        partner = index_file.with_name(name.replace("hdu-index", "obs-index", 1))
        names, what = OBS_INDEX_NAMES, "observation index"
    elif name.startswith("obs-index"):
        partner = index_file.with_name(name.replace("obs-index", "hdu-index", 1))
        names, what = HDU_INDEX_NAMES, "HDU index"
    else:
        raise StoreError(
            f"{index_file} is neither a folder nor an index file (hdu-index or obs-index)"
        )
    if not partner.is_file():
        partner = _find(index_file.parent, names, what)
    pair = (index_file, partner) if name.startswith("hdu-index") else (partner, index_file)
    return pair


def _float_or_nan(table: IndexTable, column: str) -> np.ndarray:
    if column not in table:
        return np.full(len(table), np.nan)
    return np.asarray(table[column], dtype=np.float64)


@dataclass
class DataStore:
    """A GADF DL3 data store: index tables and the folder they resolve against.

    Parameters
    ----------
    base_dir : Path
        Folder of the HDU index; ``FILE_DIR`` entries are relative to it.
    hdu_index, obs_index : IndexTable
        The two index tables as read.
    index_path, obs_index_path : Path or None
        The index files read (None for a store built in memory).
    """

    base_dir: Path
    hdu_index: IndexTable
    obs_index: IndexTable
    index_path: Path | None = None
    obs_index_path: Path | None = None
    _file_paths: np.ndarray | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> DataStore:
        """Open a data store from a folder, an index file or a release folder.

        Parameters
        ----------
        path : str or Path
            As :func:`locate_index` takes it. ``index_path`` records the HDU
            index used (``FILE_DIR`` entries resolve against its folder).

        Raises
        ------
        StoreError
            If no single index is found or the index files are unreadable or
            lack required columns.
        """
        index_path, obs_index_path = locate_index(path)
        base_dir = index_path.parent
        hdu_index = read_index(index_path, "HDU index")
        obs_index = read_index(obs_index_path, "obs index")
        missing = [c for c in HDU_INDEX_COLUMNS if c not in hdu_index]
        if missing:
            raise StoreError(f"HDU index of {base_dir} lacks columns {missing}")
        if "OBS_ID" not in obs_index:
            raise StoreError(f"observation index of {base_dir} lacks column OBS_ID")
        check_unique_ids(hdu_index, obs_index, base_dir)
        log.debug("using index %s", index_path)
        return cls(base_dir, hdu_index, obs_index, index_path, obs_index_path)

    @property
    def obs_ids(self) -> np.ndarray:
        """Every observation of the obs-index, in its order."""
        return np.asarray(self.obs_index["OBS_ID"], dtype=np.int64)

    def file_paths(self) -> np.ndarray:
        """Absolute, normalised path of every HDU-index row's file (computed once)."""
        if self._file_paths is None:
            file_dir = string_codes(self.hdu_index["FILE_DIR"])
            file_name = string_codes(self.hdu_index["FILE_NAME"])
            self._file_paths = _joined_paths(str(self.base_dir), file_dir, file_name)
        return self._file_paths

    def hdu_locations(self, hdu_type: str) -> dict[int, tuple[str, str]]:
        """obs_id -> (absolute file path, HDU name) for one HDU type."""
        types = np.char.lower(string_column(self.hdu_index["HDU_TYPE"]))
        rows = np.flatnonzero(types == hdu_type)
        paths = self.file_paths()
        names = string_column(self.hdu_index["HDU_NAME"])
        obs = np.asarray(self.hdu_index["OBS_ID"], dtype=np.int64)
        return {int(obs[i]): (paths[i], names[i]) for i in rows}

    def zenith_deg(self) -> np.ndarray:
        """Pointing zenith of every observation, deg.

        From the first source that has it: obs-index ``ZEN_PNT``; 90 − obs-index
        ``ALT_PNT``; the EVENTS header's ``ZEN_PNT`` or 90 − ``ALT_PNT``; else
        computed from ``RA_PNT``/``DEC_PNT``, the run's mid time and the site
        (EVENTS header, then obs-index row and header; :mod:`bkgdask.zenith`).
        How many runs each source gave is logged at debug level.

        Raises
        ------
        RunError
            For a run whose zenith no source gives, naming what is missing.
        """
        zenith = _float_or_nan(self.obs_index, "ZEN_PNT")
        source = np.where(np.isfinite(zenith), "obs-index ZEN_PNT", "").astype(object)
        from_alt = 90.0 - _float_or_nan(self.obs_index, "ALT_PNT")
        use_alt = ~np.isfinite(zenith) & np.isfinite(from_alt)
        zenith[use_alt], source[use_alt] = from_alt[use_alt], "obs-index ALT_PNT"
        missing = np.flatnonzero(~np.isfinite(zenith))
        if missing.size:
            self._zenith_from_headers(missing, zenith, source)
        for name, count in zip(*np.unique(source.astype(str), return_counts=True)):
            log.debug("zenith of %d of %d runs from %s", count, len(zenith), name)
        return zenith

    def _zenith_from_headers(self, rows: np.ndarray, zenith: np.ndarray, source: np.ndarray):
        """Fill ``zenith``/``source`` at ``rows`` from EVENTS headers, else by computing it."""
        events = self.hdu_locations("events")
        to_compute, pointings = [], []
        for i in rows:
            obs_id = int(self.obs_ids[i])
            path, header = self._events_header(obs_id, events)
            for key, convert in (("ZEN_PNT", lambda v: v), ("ALT_PNT", lambda v: 90.0 - v)):
                value = header.get(key)
                if isinstance(value, (int, float)) and np.isfinite(value):
                    zenith[i], source[i] = float(convert(value)), f"EVENTS header {key}"
                    break
            else:
                row = self.obs_index.row(i)
                pointing, why = pointing_time(ChainMap(header, row, self.obs_index.meta))
                if pointing is None:
                    reason = f"no zenith: no ZEN_PNT/ALT_PNT and cannot compute it: {why}"
                    raise RunError(obs_id, path, reason)
                to_compute.append(i)
                pointings.append(pointing)
        if to_compute:
            zenith[to_compute] = zenith_of_pointings(pointings)
            source[to_compute] = "RA/DEC_PNT, mid time and site"

    def _events_header(self, obs_id: int, events: dict[int, tuple[str, str]]) -> tuple[str, dict]:
        if obs_id not in events:
            raise RunError(obs_id, "HDU index", "no events HDU in the HDU index")
        path, hdu = events[obs_id]
        try:
            return path, read_header(path, hdu)
        except READ_ERRORS as exc:
            raise read_failure(obs_id, path, exc) from exc

    def column_units(self) -> dict[str, str]:
        """obs-index column -> its unit ('' where none)."""
        return dict(self.obs_index.units)

    def group_values(self, columns: list[str]) -> dict[str, np.ndarray]:
        """Per grouping column, every observation's value: ``zenith`` (deg) first."""
        values = {"zenith": self.zenith_deg()}
        for column in columns:
            values[column] = _float_or_nan(self.obs_index, column)
        return values

    def hdu_rows(self, hdu_type: str, obs_ids) -> np.ndarray:
        """HDU-index row of each observation's ``hdu_type`` HDU (the last of several; -1: none)."""
        codes, types = string_codes(self.hdu_index["HDU_TYPE"])
        rows = np.flatnonzero((np.char.lower(types) == hdu_type)[codes])[::-1]
        obs = np.asarray(self.hdu_index["OBS_ID"], dtype=np.int64)[rows]
        return _positions(obs, rows, np.asarray(obs_ids, dtype=np.int64))

    def run_inputs(self, obs_ids, zenith_deg: dict[int, float]) -> list[RunInput]:
        """Describe the selected runs for the workers, checking their files exist.

        Vectorised over the runs; each distinct file is checked once.
        """
        obs_ids = np.asarray(obs_ids, dtype=np.int64)
        rows = {what: self.hdu_rows(what, obs_ids) for what in ("events", "gti")}
        name_codes, distinct_names = string_codes(self.hdu_index["HDU_NAME"])
        paths, names = (
            self.file_paths(),
            np.array(distinct_names.tolist(), dtype=object)[name_codes],
        )
        self._check_run_files(obs_ids, rows, paths)
        index_rows = _positions(self.obs_ids, np.arange(self.obs_ids.size), obs_ids)
        pointing = [
            [None if v != v else v for v in _float_or_nan(self.obs_index, c)[index_rows].tolist()]
            for c in ("RA_PNT", "DEC_PNT")
        ]
        events, gtis = rows["events"], rows["gti"]
        columns = (
            obs_ids.tolist(),
            paths[events].tolist(),
            names[events].tolist(),
            paths[gtis].tolist(),
            names[gtis].tolist(),
            [float(zenith_deg[o]) for o in obs_ids.tolist()],
            *pointing,
        )
        with _gc_paused():  # many new objects, none cyclic: the collector would only rescan
            return [RunInput(*values) for values in zip(*columns)]

    @staticmethod
    def _check_run_files(obs_ids: np.ndarray, rows: dict, paths: np.ndarray) -> None:
        """RunError for the first run without an events/GTI row or whose file is missing."""
        exists = {p: os.path.isfile(p) for p in set(paths[np.concatenate(list(rows.values()))])}
        failures = []
        for what, where in rows.items():
            absent = where < 0
            missing = ~absent & ~np.array([exists[p] for p in paths[where].tolist()], dtype=bool)
            failures += [(absent, what, None), (missing, what, where)]
        bad = np.logical_or.reduce([mask for mask, _, _ in failures])
        if not bad.any():
            return
        run = int(np.argmax(bad))
        for mask, what, where in failures:
            if mask[run] and where is None:
                raise RunError(int(obs_ids[run]), "HDU index", f"no {what} HDU in the HDU index")
            if mask[run]:
                raise RunError(int(obs_ids[run]), str(paths[where[run]]), "file not found")

    def contains(self, path: str | Path) -> bool:
        """Whether ``path`` is inside the store folder or is one of its files."""
        target = Path(path).expanduser().resolve()
        if target.is_relative_to(self.base_dir):
            return True
        return str(target) in set(self.file_paths())


def _positions(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``values`` at the first occurrence of each ``wanted`` in ``keys``, -1 where absent."""
    if keys.size == 0:
        return np.full(wanted.size, -1, dtype=np.int64)
    unique, first = np.unique(keys, return_index=True)
    at = np.clip(np.searchsorted(unique, wanted), 0, unique.size - 1)
    found = unique[at] == wanted
    return np.where(found, values[first[at]], -1)


def _joined_paths(base: str, file_dir: tuple, file_name: tuple) -> np.ndarray:
    """``normpath(base/dir/name)`` per row (object array), each distinct (dir, name) joined once.

    ``file_dir`` and ``file_name`` are (codes, distinct values) as :func:`string_codes` gives.
    """
    (dir_of, dirs), (name_of, names) = file_dir, file_name
    pairs, pair_of = np.unique(dir_of * names.size + name_of, return_inverse=True)
    joined = [
        os.path.normpath(os.path.join(base, dirs[pair // names.size], names[pair % names.size]))
        for pair in pairs.tolist()
    ]
    return np.array(joined, dtype=object)[pair_of.reshape(-1)]


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector (restored as it was)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
