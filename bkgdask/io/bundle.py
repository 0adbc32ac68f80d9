"""The bundle file: HDU index, OBS_INDEX and model HDUs, written atomically and read back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BkgdaskError, StoreError
from .files import write_fits_atomic
from .fitswrite import BinTable
from .gadf import string_column
from .index_table import IndexTable, read_index

if TYPE_CHECKING:
    from astropy.io import fits

#: Header keyword of a run-wise model's HDU: the HDU of the run's own group model.
GROUP_KEYWORD = "BKGGROUP"


def merged_hdu_index(
    hdu_index: IndexTable,
    file_paths: np.ndarray,
    assignment: dict[int, tuple[str, str]],
    bundle_name: str,
) -> IndexTable:
    """The store's HDU index with absolute file paths and one ``bkg`` row per observation.

    Existing ``bkg`` rows are dropped; every observation in ``assignment``
    (obs_id -> (HDU name, HDU class such as ``bkg_2d``)) gets a ``bkg`` row
    pointing at its model in the bundle itself (``FILE_DIR = '.'``, so the
    bundle may be moved as long as the store is not).
    """
    types = np.char.lower(string_column(hdu_index["HDU_TYPE"]))
    keep = types != "bkg"
    paths = [os.path.split(p) for p in np.asarray(file_paths)[keep].tolist()]
    rows = {
        "OBS_ID": np.asarray(hdu_index["OBS_ID"], dtype=np.int64)[keep].tolist(),
        "HDU_TYPE": string_column(hdu_index["HDU_TYPE"])[keep].tolist(),
        "HDU_CLASS": string_column(hdu_index["HDU_CLASS"])[keep].tolist(),
        "FILE_DIR": [directory or "." for directory, _ in paths],
        "FILE_NAME": [name for _, name in paths],
        "HDU_NAME": string_column(hdu_index["HDU_NAME"])[keep].tolist(),
    }
    for obs_id in sorted(assignment):
        hdu_name, hdu_class = assignment[obs_id]
        for column, value in zip(rows, (obs_id, "bkg", hdu_class, ".", bundle_name, hdu_name)):
            rows[column].append(value)
    columns = {
        name: np.array(values, dtype=np.int64 if name == "OBS_ID" else str)
        for name, values in rows.items()
    }
    order = np.lexsort((columns["HDU_TYPE"], columns["OBS_ID"]))
    meta = {"EXTNAME": "HDU_INDEX", "HDUCLASS": "GADF", "HDUCLAS1": "INDEX", "HDUCLAS2": "HDU"}
    return IndexTable({name: values[order] for name, values in columns.items()}, meta=meta)


def bundle_obs_index(
    obs_index: IndexTable, hdu_names: dict[int, str], used: set[int]
) -> IndexTable:
    """The store's obs-index plus ``BKG_HDU`` (each run's model) and ``BKG_USED`` (in a model)."""
    obs_ids = np.asarray(obs_index["OBS_ID"], dtype=np.int64).tolist()
    table = obs_index.with_column("BKG_HDU", np.array([hdu_names[o] for o in obs_ids], dtype=str))
    table = table.with_column("BKG_USED", np.array([o in used for o in obs_ids], dtype=bool))
    table.meta["EXTNAME"] = "OBS_INDEX"
    return table


def index_hdu(table: IndexTable, extname: str) -> BinTable:
    """An index table as the binary-table HDU ``extname``: its columns, units and meta."""
    meta = {key: value for key, value in table.meta.items() if key != "EXTNAME"}
    return BinTable(extname, table.columns, table.units, meta)


def write_bundle(
    path: str | Path, hdu_index: IndexTable, obs_index: IndexTable, models: list[BinTable]
) -> Path:
    """Write HDU_INDEX, OBS_INDEX and the model HDUs to ``path`` atomically."""
    indexes = [index_hdu(hdu_index, "HDU_INDEX"), index_hdu(obs_index, "OBS_INDEX")]
    return write_fits_atomic([*indexes, *models], path)


def read_bundle_hdus(
    path: str | Path,
) -> tuple[dict[str, tuple[fits.Header, object]], IndexTable]:
    """The group model HDUs of a bundle (name -> (header, table data)) and its OBS_INDEX.

    A run-wise bundle's per-run HDUs (header :data:`GROUP_KEYWORD`, the run's
    group model) are left out: they hold only the axes and ``BKG``, for
    gammapy; the build columns are their group models'.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path) as hdus:
            names = [h.name for h in hdus]
            if "OBS_INDEX" not in names:
                raise BkgdaskError(f"{path} is not a bkgdask bundle (no OBS_INDEX HDU)")
            models = {
                h.name: (h.header.copy(), h.data.copy())
                for h in hdus
                if str(h.header.get("HDUCLAS2", "")).strip() == "BKG"
                and GROUP_KEYWORD not in h.header
            }
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise BkgdaskError(f"cannot read bundle {path}: {exc}") from exc
    obs_index = read_index(path, "bundle OBS_INDEX", "OBS_INDEX")
    if "HDU_INDEX" in names:
        check_bundle_name(path, read_index(path, "bundle HDU_INDEX", "HDU_INDEX"))
    if "BKG_USED" not in obs_index:
        raise BkgdaskError(f"{path} is not a bkgdask bundle (OBS_INDEX has no BKG_USED)")
    return models, obs_index


def check_bundle_name(path: Path, hdu_index: IndexTable) -> None:
    """Refuse a bundle whose HDU index names another file for its models (it was renamed).

    gammapy finds the models through ``FILE_DIR``/``FILE_NAME`` of the ``bkg``
    rows, resolved against the bundle's folder, so a renamed bundle would send
    it to a missing or different file.

    Raises
    ------
    StoreError
        Saying which name the bundle must have.
    """
    types = np.char.lower(string_column(hdu_index["HDU_TYPE"]))
    dirs = string_column(hdu_index["FILE_DIR"])[types == "bkg"]
    names = set(string_column(hdu_index["FILE_NAME"])[types == "bkg"][dirs == "."].tolist())
    if names and path.name not in names:
        named = sorted(names)[0]
        raise StoreError(
            f"bundle {path} was renamed: its HDU index finds the models in {named!r}; "
            f"rename it back to {named} (or rebuild it under the new name)"
        )


def bundle_store_folder(path: str | Path) -> Path | None:
    """The folder holding every input file the bundle's HDU index names (None if none)."""
    try:
        hdu_index = read_index(path, "bundle HDU_INDEX", "HDU_INDEX")
    except StoreError:
        return None
    types = np.char.lower(string_column(hdu_index["HDU_TYPE"]))
    dirs = [d for d in string_column(hdu_index["FILE_DIR"])[types != "bkg"] if d.startswith("/")]
    return Path(os.path.commonpath(dirs)) if dirs else None
