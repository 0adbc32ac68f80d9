"""GADF names: HDU-index columns and the header keywords of background HDUs."""

from __future__ import annotations

import numpy as np

#: Columns of a GADF HDU index.
HDU_INDEX_COLUMNS = ("OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME")

#: Header keywords common to every background HDU; ``HDUCLAS4`` names the kind.
GADF_BKG_HEADER = {
    "HDUCLASS": "GADF",
    "HDUDOC": "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats",
    "HDUVERS": "0.2",
    "HDUCLAS1": "RESPONSE",
    "HDUCLAS2": "BKG",
    "HDUCLAS3": "FULL-ENCLOSURE",
}

#: Unit of the BKG column as GADF writes it.
BKG_COLUMN_UNIT = "MeV-1 s-1 sr-1"


def string_column(column) -> np.ndarray:
    """A string column of an :class:`~bkgdask.io.index_table.IndexTable` as stripped ``str``.

    >>> string_column(np.array(["events ", " gti"])).tolist()
    ['events', 'gti']
    """
    return np.char.strip(np.asarray(column, dtype=str))


def string_codes(column) -> tuple[np.ndarray, np.ndarray]:
    """A string column factorised: ``values[codes]`` equals :func:`string_column`.

    Hash-based and O(rows); only the distinct values are stripped, so an
    index of millions of rows naming a few files costs milliseconds.

    Returns
    -------
    codes : numpy.ndarray
        Per row, the position of its value in ``values`` (int).
    values : numpy.ndarray
        The distinct values as stripped ``str``.
    """
    import pandas as pd

    codes, distinct = pd.factorize(np.asarray(column))
    return codes, string_column(np.asarray(distinct))
