"""Index tables (HDU index, obs index) as numpy columns, units and keywords, and reading them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import StoreError
from .fitsheader import FitsFormatError
from .fitsread import INFLATE_ERRORS, read_table

#: Header keywords describing a binary table's layout, not kept in ``meta``
#: (with the per-column keywords :data:`COLUMN_KEYWORD` matches), as astropy drops them.
LAYOUT_KEYWORDS = frozenset(
    ("XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "TFIELDS", "THEAP")
)
COLUMN_KEYWORD = re.compile(
    "(TTYPE|TFORM|TUNIT|TNULL|TSCAL|TZERO|TDISP|TBCOL|TDIM|TCTYP|TCUNI|TCRPX|TCRVL|TCDLT|TRPOS)[0-9]+"
)


class IndexTable:
    """A table of equal-length 1-D columns, with units and header keywords.

    Parameters
    ----------
    columns : mapping of str to array-like
        Column name -> values, in column order; strings as ``str`` arrays.
    units : mapping of str to str, optional
        Column name -> unit as FITS writes it (``TUNITn``); '' or absent: none.
    meta : mapping, optional
        Header keywords of the table (``EXTNAME``, ``MJDREFI``, ``GEOLON`` ...).

    Attributes
    ----------
    columns : dict of str to numpy.ndarray
    units : dict of str to str
        One entry per column, '' where it has no unit.
    meta : dict

    Raises
    ------
    ValueError
        If a column is not 1-D or the columns differ in length.
    """

    def __init__(
        self, columns: Mapping, units: Mapping[str, str] | None = None, meta: Mapping | None = None
    ):
        self.columns = {name: np.asarray(values) for name, values in columns.items()}
        self.units = {name: str((units or {}).get(name) or "") for name in self.columns}
        self.meta = dict(meta or {})
        shapes = {name: values.shape for name, values in self.columns.items()}
        if any(len(shape) != 1 for shape in shapes.values()) or len(set(shapes.values())) > 1:
            raise ValueError(f"columns must be 1-D and of equal length, not {shapes}")

    @property
    def colnames(self) -> list[str]:
        """The column names, in order."""
        return list(self.columns)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __len__(self) -> int:
        """Number of rows."""
        return next((values.size for values in self.columns.values()), 0)

    def __repr__(self) -> str:
        return f"IndexTable({len(self)} rows, columns {self.colnames})"

    def take(self, rows) -> IndexTable:
        """A new table of ``rows`` (integer positions or a boolean mask), same units and meta."""
        return IndexTable(
            {name: values[rows] for name, values in self.columns.items()}, self.units, self.meta
        )

    def with_column(self, name: str, values, unit: str = "") -> IndexTable:
        """A new table with column ``name`` replaced, or appended if new (other columns shared).

        Parameters
        ----------
        name : str
            Column name.
        values : array-like
            One value per row.
        unit : str, optional
            Its unit ('' for none).
        """
        return IndexTable({**self.columns, name: values}, {**self.units, name: unit}, self.meta)

    def row(self, index: int) -> dict:
        """Column name -> value of row ``index``."""
        return {name: values[index] for name, values in self.columns.items()}


def read_index(path: str | Path, what: str, extname: str | None = None) -> IndexTable:
    """Read every column of an index table from a FITS file (plain or gzip-compressed).

    Strings are ``str`` without trailing blanks; floats stay as stored (``E``
    float32, ``D`` float64, NaN included). An integer column with ``TNULLn``
    becomes float64 with NaN at its null entries if it has any (astropy masks
    them), else stays integer.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What it is, as messages name it (``"HDU index"``, ``"obs index"`` ...).
    extname : str or None, optional
        ``EXTNAME`` of the table HDU; None: the first binary table.

    Returns
    -------
    IndexTable
        Columns in file order, ``TUNITn`` units, and the header's keywords
        except the layout and per-column ones (as ``Table.read`` keeps them,
        without ``COMMENT``/``HISTORY``).

    Raises
    ------
    StoreError
        One line naming ``what`` and the file if it cannot be opened, is not
        FITS, is truncated or corrupt, lacks the table, or has a column of a
        type not read (naming the column).
    """
    try:
        hdu = read_table(path, extname)
    except (FitsFormatError, OSError, *INFLATE_ERRORS) as exc:
        raise StoreError(f"cannot read {what} {path}: {exc}") from exc
    header = hdu.header
    meta = {
        key: header[key]
        for key in header
        if key not in LAYOUT_KEYWORDS and not COLUMN_KEYWORD.match(key)
    }
    number = {str(header.get(f"TTYPE{i}", "")).strip(): i for i in range(1, header["TFIELDS"] + 1)}
    columns = {
        name: _as_stored(values, header, number[name]) for name, values in hdu.columns.items()
    }
    return IndexTable(columns, hdu.units, meta)


def _as_stored(values: np.ndarray, header: Mapping, number: int) -> np.ndarray:
    """Column ``number`` in its stored type: ``E`` as float32; integers with NaN at ``TNULLn``."""
    code = str(header.get(f"TFORM{number}")).strip().upper().lstrip("0123456789")[:1]
    scale, zero = header.get(f"TSCAL{number}", 1), header.get(f"TZERO{number}", 0)
    if code == "E" and scale == 1 and zero == 0:
        return values.astype(np.float32)
    null = header.get(f"TNULL{number}")
    if code not in ("B", "I", "J", "K") or not isinstance(null, int) or isinstance(null, bool):
        return values
    is_null = values == (null * scale + zero if values.dtype.kind == "f" else null + zero)
    if not is_null.any():
        return values
    return np.where(is_null, np.nan, values.astype(np.float64))
