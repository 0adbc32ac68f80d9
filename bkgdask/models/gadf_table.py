"""GADF IRF tables of one row: edge columns, the BKG column, the HDU, and edges read back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..io.fitswrite import BinTable
from ..io.gadf import BKG_COLUMN_UNIT, GADF_BKG_HEADER

#: Type of the ``BKG`` column: float32, as the H.E.S.S. DR1 and CTA 1DC models store it.
#: Its relative rounding, 6e-8, lies far below the statistical error of any rate.
BKG_DTYPE = np.float32

#: A column of a table HDU: name, values (the row axis first), unit.
Column = tuple[str, np.ndarray, str]


def table_column(name: str, values, unit: str, dtype=np.float64) -> Column:
    """A one-row vector column of float64 or float32 (GADF IRF tables hold one row).

    The cell is ``values`` as given: its shape, reversed, is the column's
    ``TDIM`` (FITS counts the fastest axis first).
    """
    return name, np.asarray(values, dtype=dtype)[None, ...], unit


def edge_columns(name: str, edges, unit: str) -> list[Column]:
    """``<name>_LO`` and ``<name>_HI`` columns of bin edges."""
    edges = np.asarray(edges, dtype=np.float64)
    return [
        table_column(f"{name}_LO", edges[:-1], unit),
        table_column(f"{name}_HI", edges[1:], unit),
    ]


def row_edges(data, lo: str, hi: str) -> np.ndarray:
    """Bin edges from the one-row ``lo``/``hi`` columns of a GADF table."""
    return np.append(np.asarray(data[lo][0], float), float(data[hi][0][-1]))


def bkg_table_hdu(
    axes: Sequence[tuple[str, np.ndarray, str]],
    rate,
    hdu_class: str,
    extra: Sequence[Column] = (),
) -> BinTable:
    """A GADF background HDU: edge columns of each axis, then ``BKG`` (float32), then ``extra``.

    Parameters
    ----------
    axes : sequence of (name, edges, unit)
        The axes in bkgdask's order (energy first), e.g. ``("ENERG", edges, "TeV")``.
    rate : numpy.ndarray
        s-1 MeV-1 sr-1, shape (n_axis0, n_axis1, ...).
    hdu_class : str
        ``HDUCLAS4`` (``BKG_2D``, ``BKG_3D``).
    extra : sequence of Column
        Further one-row columns (:func:`table_column`).
    """
    columns = [column for name, edges, unit in axes for column in edge_columns(name, edges, unit)]
    # GADF axis order: the FITS array is reversed (energy fastest).
    columns.append(table_column("BKG", np.asarray(rate).T, BKG_COLUMN_UNIT, BKG_DTYPE))
    columns += extra
    hdu = BinTable(
        columns={name: values for name, values, _ in columns},
        units={name: unit for name, _, unit in columns},
        header=GADF_BKG_HEADER,
    )
    hdu.header["HDUCLAS4"] = hdu_class
    return hdu
