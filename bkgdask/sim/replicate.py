"""Large indexes over few files: many OBS_IDs pointing at one store's run files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.bundle import index_hdu
from ..io.files import write_fits_atomic
from ..io.index_table import IndexTable
from ..io.store import DataStore

#: Row types of the HDU index a build reads.
RUN_HDU_TYPES = ("events", "gti")


def write_replicated_index(source: str | Path, outdir: str | Path, n_obs: int) -> Path:
    """Write an index of ``n_obs`` observations that reuse the run files of ``source``.

    Observation ``i`` (``OBS_ID = i + 1``) is a copy of the obs-index row of
    source observation ``i mod n_source`` and points at its EVENTS and GTI
    HDUs by absolute ``FILE_DIR``, so a store of a few small files stands for
    one of any size when only planning, graph submission or the reduction is
    measured. Only the ``events`` and ``gti`` rows of the HDU index are kept.

    Parameters
    ----------
    source : str or Path
        A data store (as :meth:`DataStore.open` takes it).
    outdir : str or Path
        Folder for ``obs-index.fits.gz`` and ``hdu-index.fits.gz``, created if needed;
        a ``FileExistsError`` if it already holds an HDU index.
    n_obs : int
        Number of observations, >= 1.

    Returns
    -------
    Path
        ``Path(outdir)``.
    """
    if n_obs < 1:
        raise ValueError(f"n_obs must be >= 1, not {n_obs}")
    outdir = Path(outdir)
    if (outdir / "hdu-index.fits.gz").exists():
        raise FileExistsError(f"{outdir} already contains an HDU index")
    store = DataStore.open(source)
    copy_of = np.arange(n_obs) % len(store.obs_ids)
    new_ids = np.arange(1, n_obs + 1, dtype=np.int64)
    obs_index = store.obs_index.take(copy_of).with_column("OBS_ID", new_ids)
    hdu_index = _replicated_hdu_rows(store, copy_of, new_ids)
    outdir.mkdir(parents=True, exist_ok=True)
    write_fits_atomic([index_hdu(obs_index, "OBS_INDEX")], outdir / "obs-index.fits.gz")
    write_fits_atomic([index_hdu(hdu_index, "HDU_INDEX")], outdir / "hdu-index.fits.gz")
    return outdir


def _replicated_hdu_rows(store: DataStore, copy_of: np.ndarray, new_ids: np.ndarray) -> IndexTable:
    """HDU-index rows (events, gti) of every new observation, absolute FILE_DIR.

    ``copy_of`` holds, per new observation, the obs-index row of the source it copies.
    """
    rows = {"OBS_ID": [], "HDU_TYPE": [], "FILE_DIR": [], "FILE_NAME": [], "HDU_NAME": []}
    for hdu_type in RUN_HDU_TYPES:
        where = store.hdu_locations(hdu_type)
        missing = set(store.obs_ids.tolist()) - set(where)
        if missing:
            raise ValueError(f"source observations without a {hdu_type} HDU: {sorted(missing)}")
        paths = np.array([where[int(o)][0] for o in store.obs_ids], dtype=str)[copy_of]
        names = np.array([where[int(o)][1] for o in store.obs_ids], dtype=str)[copy_of]
        rows["OBS_ID"].append(new_ids)
        rows["HDU_TYPE"].append(np.full(new_ids.size, hdu_type))
        rows["FILE_DIR"].append(np.char.rpartition(paths, "/")[:, 0])
        rows["FILE_NAME"].append(np.char.rpartition(paths, "/")[:, 2])
        rows["HDU_NAME"].append(names)
    columns = {name: np.concatenate(parts) for name, parts in rows.items()}
    columns["HDU_CLASS"] = columns["HDU_TYPE"]
    order = ("OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME")
    return IndexTable({name: columns[name] for name in order}, meta={"EXTNAME": "HDU_INDEX"})
