"""Opening a GADF data store: the HDU index, the observation index, run files."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..errors import RunError, StoreError
from .fitsread import read_header
from .gadf import HDU_INDEX_COLUMNS, string_column
from .runs import READ_ERRORS, RunInput, read_failure

log = logging.getLogger(__name__)

HDU_INDEX_NAMES = ("hdu-index.fits.gz", "hdu-index.fits")
OBS_INDEX_NAMES = ("obs-index.fits.gz", "obs-index.fits")


def _find(base_dir: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (base_dir / name).is_file():
            return base_dir / name
    raise StoreError(f"no {what} ({' or '.join(names)}) in {base_dir}")


def _read_index(path: Path, what: str) -> Table:
    try:
        return Table.read(path)
    except Exception as exc:  # astropy raises many types for broken files
        raise StoreError(f"cannot read {what} {path}: {exc}") from exc


def _float_or_nan(table: Table, column: str) -> np.ndarray:
    if column not in table.colnames:
        return np.full(len(table), np.nan)
    values = table[column]
    if hasattr(values, "filled"):
        values = values.filled(np.nan)
    return np.asarray(values, dtype=np.float64)


@dataclass
class DataStore:
    """A GADF DL3 data store: index tables and the folder they resolve against.

    Parameters
    ----------
    base_dir : Path
        Folder of the HDU index; ``FILE_DIR`` entries are relative to it.
    hdu_index, obs_index : astropy.table.Table
        The two index tables as read.
    """

    base_dir: Path
    hdu_index: Table
    obs_index: Table
    _file_paths: np.ndarray | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> DataStore:
        """Open a store folder holding ``hdu-index.fits[.gz]`` and ``obs-index.fits[.gz]``."""
        base_dir = Path(path).expanduser().resolve()
        if not base_dir.is_dir():
            raise StoreError(f"data store {path} is not a folder")
        hdu_index = _read_index(_find(base_dir, HDU_INDEX_NAMES, "HDU index"), "HDU index")
        obs_index = _read_index(_find(base_dir, OBS_INDEX_NAMES, "observation index"), "obs index")
        missing = [c for c in HDU_INDEX_COLUMNS if c not in hdu_index.colnames]
        if missing:
            raise StoreError(f"HDU index of {base_dir} lacks columns {missing}")
        if "OBS_ID" not in obs_index.colnames:
            raise StoreError(f"observation index of {base_dir} lacks column OBS_ID")
        return cls(base_dir=base_dir, hdu_index=hdu_index, obs_index=obs_index)

    @property
    def obs_ids(self) -> np.ndarray:
        """Every observation of the obs-index, in its order."""
        return np.asarray(self.obs_index["OBS_ID"], dtype=np.int64)

    def file_paths(self) -> np.ndarray:
        """Absolute, normalised path of every HDU-index row's file (computed once)."""
        if self._file_paths is None:
            base = str(self.base_dir)
            file_dir = string_column(self.hdu_index["FILE_DIR"])
            file_name = string_column(self.hdu_index["FILE_NAME"])
            paths = [
                os.path.normpath(os.path.join(base, d, n)) for d, n in zip(file_dir, file_name)
            ]
            self._file_paths = np.array(paths, dtype=object)
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

        From obs-index ``ZEN_PNT``, else 90 − ``ALT_PNT`` of the obs-index, else
        from the EVENTS header (``ZEN_PNT`` or 90 − ``ALT_PNT``).
        """
        zenith = _float_or_nan(self.obs_index, "ZEN_PNT")
        from_alt = 90.0 - _float_or_nan(self.obs_index, "ALT_PNT")
        zenith = np.where(np.isfinite(zenith), zenith, from_alt)
        missing = np.flatnonzero(~np.isfinite(zenith))
        if missing.size:
            events = self.hdu_locations("events")
            for i in missing:
                zenith[i] = self._zenith_from_header(int(self.obs_ids[i]), events)
        return zenith

    def column_units(self) -> dict[str, str]:
        """obs-index column -> its unit ('' where none)."""
        return {c: str(self.obs_index[c].unit or "") for c in self.obs_index.colnames}

    def group_values(self, columns: list[str]) -> dict[str, np.ndarray]:
        """Per grouping column, every observation's value: ``zenith`` (deg) first."""
        values = {"zenith": self.zenith_deg()}
        for column in columns:
            values[column] = _float_or_nan(self.obs_index, column)
        return values

    def _zenith_from_header(self, obs_id: int, events: dict[int, tuple[str, str]]) -> float:
        if obs_id not in events:
            raise RunError(obs_id, "HDU index", "no events HDU in the HDU index")
        path, hdu = events[obs_id]
        try:
            header = read_header(path, hdu)
        except READ_ERRORS as exc:
            raise read_failure(obs_id, path, exc) from exc
        for key, convert in (("ZEN_PNT", lambda v: v), ("ALT_PNT", lambda v: 90.0 - v)):
            value = header.get(key)
            if isinstance(value, (int, float)) and np.isfinite(value):
                return float(convert(value))
        raise RunError(obs_id, path, "no zenith: ZEN_PNT/ALT_PNT in neither obs-index nor header")

    def run_inputs(self, obs_ids, zenith_deg: dict[int, float]) -> list[RunInput]:
        """Describe the selected runs for the workers, checking their files exist."""
        events = self.hdu_locations("events")
        gtis = self.hdu_locations("gti")
        ra = dict(zip(self.obs_ids.tolist(), _float_or_nan(self.obs_index, "RA_PNT")))
        dec = dict(zip(self.obs_ids.tolist(), _float_or_nan(self.obs_index, "DEC_PNT")))
        runs = []
        for obs_id in map(int, obs_ids):
            for what, table in (("events", events), ("gti", gtis)):
                if obs_id not in table:
                    raise RunError(obs_id, "HDU index", f"no {what} HDU in the HDU index")
                if not os.path.isfile(table[obs_id][0]):
                    raise RunError(obs_id, table[obs_id][0], "file not found")
            runs.append(
                RunInput(
                    obs_id=obs_id,
                    events_file=events[obs_id][0],
                    events_hdu=events[obs_id][1],
                    gti_file=gtis[obs_id][0],
                    gti_hdu=gtis[obs_id][1],
                    zenith_deg=float(zenith_deg[obs_id]),
                    ra_pnt_deg=float(ra[obs_id]) if np.isfinite(ra[obs_id]) else None,
                    dec_pnt_deg=float(dec[obs_id]) if np.isfinite(dec[obs_id]) else None,
                )
            )
        return runs

    def contains(self, path: str | Path) -> bool:
        """Whether ``path`` is inside the store folder or is one of its files."""
        target = Path(path).expanduser().resolve()
        if target.is_relative_to(self.base_dir):
            return True
        return str(target) in set(self.file_paths())
