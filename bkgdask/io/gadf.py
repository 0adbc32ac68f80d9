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
    """A FITS string column as stripped ``str``, masked entries as ''.

    >>> string_column([b"events ", "gti"]).tolist()
    ['events', 'gti']
    """
    if hasattr(column, "filled"):
        column = column.filled("")
    array = np.asarray(column)
    if array.dtype.kind == "U":
        return np.char.strip(array)
    if array.dtype.kind == "S":
        try:
            return np.char.strip(array.astype(str))  # ASCII, whole column at once
        except UnicodeDecodeError:
            pass
    values = [v.decode() if isinstance(v, bytes) else str(v) for v in column]
    return np.char.strip(np.array(values, dtype=str))


def string_codes(column) -> tuple[np.ndarray, np.ndarray]:
    """A FITS string column factorised: ``values[codes]`` equals :func:`string_column`.

    Hash-based and O(rows); only the distinct values are decoded and stripped,
    so an index of millions of rows naming a few files costs milliseconds.

    Returns
    -------
    codes : numpy.ndarray
        Per row, the position of its value in ``values`` (int).
    values : numpy.ndarray
        The distinct values as stripped ``str``.
    """
    import pandas as pd

    if hasattr(column, "filled"):
        column = column.filled("")
    codes, distinct = pd.factorize(np.asarray(column))
    return codes, string_column(np.asarray(distinct))
