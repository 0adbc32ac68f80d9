"""GADF IRF tables of one row: edge columns, the BKG column, the HDU, and edges read back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy.io import fits

from ..io.gadf import BKG_COLUMN_UNIT, GADF_BKG_HEADER

#: FITS ``TFORM`` letter of the big-endian float types a column may hold.
TFORM = {">f8": "D", ">f4": "E"}

#: Type of the ``BKG`` column: float32, as the H.E.S.S. DR1 and CTA 1DC models store it.
#: Its relative rounding, 6e-8, lies far below the statistical error of any rate.
BKG_DTYPE = ">f4"


def table_column(name: str, values, unit: str, dim: str, dtype: str = ">f8") -> fits.Column:
    """A one-row vector column of float64 or float32 (GADF IRF tables hold one row).

    The values are held big-endian (``dtype`` a key of :data:`TFORM`), as FITS
    stores them: astropy swaps the bytes of a one-row table element by element
    in Python (0.5 s for a BKG_3D node grid).
    """
    values = np.asarray(values, dtype=dtype)[None, ...]
    return fits.Column(name, f"{values[0].size}{TFORM[dtype]}", unit=unit, dim=dim, array=values)


def edge_columns(name: str, edges, unit: str) -> list[fits.Column]:
    """``<name>_LO`` and ``<name>_HI`` columns of bin edges."""
    edges = np.asarray(edges, dtype=np.float64)
    dim = f"({edges.size - 1})"
    return [
        table_column(f"{name}_LO", edges[:-1], unit, dim),
        table_column(f"{name}_HI", edges[1:], unit, dim),
    ]


def row_edges(data, lo: str, hi: str) -> np.ndarray:
    """Bin edges from the one-row ``lo``/``hi`` columns of a GADF table."""
    return np.append(np.asarray(data[lo][0], float), float(data[hi][0][-1]))


def bkg_table_hdu(
    axes: Sequence[tuple[str, np.ndarray, str]],
    rate,
    hdu_class: str,
    extra: Sequence[fits.Column] = (),
) -> fits.BinTableHDU:
    """A GADF background HDU: edge columns of each axis, then ``BKG`` (float32), then ``extra``.

    Parameters
    ----------
    axes : sequence of (name, edges, unit)
        The axes in bkgdask's order (energy first), e.g. ``("ENERG", edges, "TeV")``.
    rate : numpy.ndarray
        s-1 MeV-1 sr-1, shape (n_axis0, n_axis1, ...).
    hdu_class : str
        ``HDUCLAS4`` (``BKG_2D``, ``BKG_3D``).
    extra : sequence of astropy.io.fits.Column
        Further one-row columns.
    """
    columns = [column for name, edges, unit in axes for column in edge_columns(name, edges, unit)]
    shape = ",".join(str(len(edges) - 1) for _, edges, _ in axes)
    # GADF axis order: the FITS array is reversed (energy fastest).
    columns.append(
        table_column("BKG", np.asarray(rate).T, BKG_COLUMN_UNIT, f"({shape})", BKG_DTYPE)
    )
    hdu = fits.BinTableHDU.from_columns([*columns, *extra])
    hdu.header.update(GADF_BKG_HEADER)
    hdu.header["HDUCLAS4"] = hdu_class
    return hdu
