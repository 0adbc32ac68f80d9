"""A lean, checked reader for the binary-table HDUs of DL3 files.

Reads only the wanted columns of the wanted HDUs and parses nothing after the
last of them: several times faster than ``astropy.table.Table.read`` on DL3
event lists, whose EVENTS HDU comes first and whose IRF HDUs are large. By
default the gzip member holding them is still inflated to its end, dropping the
bytes, so that its CRC32 and length are checked; the layout keywords the reader
relies on are checked against each other and against the size of the file.

Only columns of one ``L``, ``B``, ``I``, ``J``, ``K``, ``E`` or ``D`` element,
with ``TZERO``/``TSCAL`` scaling, and fixed-width ASCII strings ``rA`` (read as
``str``, trailing blanks and NULs dropped) are read (what DL3 EVENTS and GTI
tables use); anything else in a wanted column is an error, other columns are
skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .fitsheader import BLOCK, CARD, FitsFormatError, Header, parse_header
from .fitsstream import INFLATE_ERRORS, Stream

__all__ = [
    "INFLATE_ERRORS",
    "FitsFormatError",
    "TableHDU",
    "parse_header",
    "read_header",
    "read_table",
    "read_tables",
]

MAX_HEADER_BLOCKS = 1000

# FITS TFORM letter -> bytes per element (X: per 8 elements)
_TFORM_WIDTHS = dict(L=1, X=1, B=1, I=2, J=4, K=8, A=1, E=4, D=8, C=8, M=16, P=8, Q=16)
# TFORM letter -> (numpy big-endian type of the columns this reader reads, type read as)
_READ_TYPES = {
    code: (np.dtype(stored), np.dtype(np.float64 if code in "ED" else stored).newbyteorder("="))
    for code, stored in dict(L="S1", B="u1", I=">i2", J=">i4", K=">i8", E=">f4", D=">f8").items()
}
# TZERO that makes an integer column hold the other-signed type: TFORM letter ->
# (that TZERO, value to XOR the native stored integers with, the type they then hold)
_SIGN_FLIPS = {
    "B": (-128, np.uint8(0x80), np.int8),
    "I": (1 << 15, np.int16(-(1 << 15)), np.uint16),
    "J": (1 << 31, np.int32(-(1 << 31)), np.uint32),
    "K": (1 << 63, np.int64(-(1 << 63)), np.uint64),
}


@dataclass
class TableHDU:
    """Header and selected columns of one binary-table HDU.

    Attributes
    ----------
    header : Header
        Header keywords (str, int, float or bool values; ``COMMENT`` and
        ``HISTORY`` dropped).
    columns : dict of str to numpy.ndarray
        Requested columns, native-endian: ``E``/``D`` as float64, ``L`` as
        bool, integers in their own type (unsigned where ``TZERO`` says so),
        float64 where ``TSCAL``/``TZERO`` scale them.
    units : dict of str to str
        ``TUNITn`` of the requested columns ('' where absent).
    """

    header: Header
    columns: dict[str, np.ndarray]
    units: dict[str, str]


def _read_header(stream: Stream, number: int) -> Header | None:
    """The header of HDU ``number`` (0: primary); None at a clean end of file."""
    blocks = []
    while len(blocks) < MAX_HEADER_BLOCKS:
        block = stream.read_upto(BLOCK)
        if not blocks:
            if not block and number > 0:
                return None
            if number == 0 and not block.startswith(b"SIMPLE  = "):
                raise FitsFormatError("not a FITS file (it does not start with a SIMPLE card)")
            if number > 0 and not block.startswith(b"XTENSION= "):
                raise FitsFormatError(f"HDU {number}: its header does not start with XTENSION")
        if len(block) < BLOCK:
            raise FitsFormatError(f"file ends inside the header of HDU {number} (truncated)")
        blocks.append(block)
        if _has_end_card(block):
            return parse_header(b"".join(blocks))
    raise FitsFormatError(f"HDU {number}: no END card in {MAX_HEADER_BLOCKS} header blocks")


def _has_end_card(block: bytes) -> bool:
    """Whether a header block holds the END card (which starts on a card boundary).

    >>> _has_end_card(b"X" * 3 + b"END     " + b" " * 69), _has_end_card(b" " * 80 + b"END     ")
    (False, True)
    """
    firsts = block[::CARD]  # the first byte of each card
    i = firsts.find(b"E")
    while i >= 0:
        if block[i * CARD : i * CARD + 8] == b"END     ":
            return True
        i = firsts.find(b"E", i + 1)
    return False


def _integer(header: Mapping, key: str, where: str, default: int | None = None) -> int:
    """Keyword ``key`` as a non-negative integer (``default`` if absent and not None)."""
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        shown = "missing" if value is None else f"{value!r}, not an integer >= 0"
        raise FitsFormatError(f"{where}: {key} is {shown}")
    return value


def _data_size(header: Mapping, where: str) -> int:
    """Bytes of the HDU's data unit, padded to whole blocks."""
    bitpix = header.get("BITPIX")
    if bitpix not in (8, 16, 32, 64, -32, -64) or isinstance(bitpix, bool):
        raise FitsFormatError(f"{where}: BITPIX is {bitpix!r}, not a FITS BITPIX")
    naxis = _integer(header, "NAXIS", where)
    if naxis > 999:
        raise FitsFormatError(f"{where}: NAXIS is {naxis}, more than 999")
    if naxis == 0:
        return 0
    elements = 1
    for i in range(1, naxis + 1):
        elements *= _integer(header, f"NAXIS{i}", where)
    pcount = _integer(header, "PCOUNT", where, 0)
    gcount = _integer(header, "GCOUNT", where, 1)
    size = abs(bitpix) // 8 * gcount * (pcount + elements)
    return -(-size // BLOCK) * BLOCK


class _Column(NamedTuple):
    number: int  # n of TTYPEn, TFORMn, ...
    offset: int  # bytes from the start of a row
    tform: str  # as written
    code: str  # TFORM type letter
    repeat: int
    scale_key: str  # TSCALn
    zero_key: str  # TZEROn
    unit_key: str  # TUNITn


#: Column layouts by the value texts of the cards that set them (a store's files share few).
_LAYOUTS: dict[tuple, dict[str, _Column]] = {}
MAX_LAYOUTS = 64
MAX_FIELDS = 999  # of the FITS standard; more are laid out afresh each time, never remembered


def _column_layout(header: Header, where: str) -> dict[str, _Column]:
    """The columns by name, checked against ``NAXIS1``."""
    nfields = _integer(header, "TFIELDS", where)
    if nfields > MAX_FIELDS:
        return _new_layout(header, nfields, where)
    key = header.texts(_layout_keywords(nfields))
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _new_layout(header, nfields, where)
        if len(_LAYOUTS) >= MAX_LAYOUTS:
            _LAYOUTS.clear()
        _LAYOUTS[key] = layout
    return layout


@functools.lru_cache(maxsize=MAX_LAYOUTS)
def _layout_keywords(nfields: int) -> tuple[str, ...]:
    """The keywords that set the layout of a table of ``nfields`` columns."""
    return ("NAXIS1", *(f"{key}{i}" for i in range(1, nfields + 1) for key in ("TFORM", "TTYPE")))


def _new_layout(header: Mapping, nfields: int, where: str) -> dict[str, _Column]:
    """The columns by name from the ``nfields`` TFORMn and TTYPEn, checked against ``NAXIS1``."""
    layout: dict[str, _Column] = {}
    offset = 0
    for i in range(1, nfields + 1):
        tform = header.get(f"TFORM{i}")
        text = str(tform).strip().upper()
        digits = len(text) - len(text.lstrip("0123456789"))
        code = text[digits : digits + 1]
        if not isinstance(tform, str) or code not in _TFORM_WIDTHS:
            raise FitsFormatError(f"{where}: TFORM{i} is {tform!r}, not a binary-table format")
        repeat = int(text[:digits] or 1)
        name = str(header.get(f"TTYPE{i}", f"COL{i}")).strip()
        keys = f"TSCAL{i}", f"TZERO{i}", f"TUNIT{i}"
        layout[name] = _Column(i, offset, tform.strip(), code, repeat, *keys)
        offset += -(-repeat // 8) if code == "X" else repeat * _TFORM_WIDTHS[code]
    naxis1 = _integer(header, "NAXIS1", where)
    if naxis1 != offset:
        raise FitsFormatError(f"{where}: NAXIS1 is {naxis1}, but the TFORMs add up to {offset}")
    return layout


def _check_table(header: Mapping, where: str) -> None:
    """Check the keywords that make an HDU a binary table of one group."""
    if header.get("XTENSION") != "BINTABLE":
        raise FitsFormatError(f"{where}: XTENSION is {header.get('XTENSION')!r}, not 'BINTABLE'")
    for key, value in (("BITPIX", 8), ("NAXIS", 2), ("GCOUNT", 1)):
        if header.get(key) != value:
            raise FitsFormatError(f"{where}: {key} is {header.get(key)!r}, not {value}")
    table_bytes = _integer(header, "NAXIS1", where) * _integer(header, "NAXIS2", where)
    heap_end = table_bytes + _integer(header, "PCOUNT", where)
    theap = _integer(header, "THEAP", where, table_bytes)
    if not table_bytes <= theap <= heap_end:
        raise FitsFormatError(f"{where}: THEAP is {theap}, outside {table_bytes}..{heap_end}")


def _number(header: Mapping, key: str, default: int, where: str) -> int | float:
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FitsFormatError(f"{where}: {key} is {value!r}, not a number")
    return value


def _read_column(
    rows: np.ndarray, name: str, column: _Column, header: Mapping, where: str
) -> np.ndarray:
    """One column of ``rows`` (bytes of the table, one row a line), scaled and native-endian."""
    if column.code == "A" and column.repeat > 0:
        return _read_strings(rows, name, column, where)
    if column.repeat != 1 or column.code not in _READ_TYPES:
        raise FitsFormatError(
            f"{where}: column {name!r} has TFORM{column.number} = {column.tform!r}; "
            "only one L, B, I, J, K, E or D element, or an rA string, per row can be read"
        )
    stored, read_as = _READ_TYPES[column.code]
    values = rows[:, column.offset : column.offset + stored.itemsize].view(stored)[:, 0]
    if column.code == "L":
        return values == b"T"
    scale = _number(header, column.scale_key, 1, where)
    zero = _number(header, column.zero_key, 0, where)
    if column.code == "E":
        with np.errstate(invalid="ignore"):  # signalling NaNs become quiet ones
            native = values.astype(read_as)
    else:  # byte-swapped only, which raises no floating-point flag
        native = values.astype(read_as)
    sign_flip_zero, flip, holds = _SIGN_FLIPS.get(column.code, (None, None, None))
    if scale == 1 and zero == sign_flip_zero:
        return (native ^ flip).view(holds)
    if scale != 1 or zero != 0:
        return native * float(scale) + float(zero)
    return native


def _read_strings(rows: np.ndarray, name: str, column: _Column, where: str) -> np.ndarray:
    """An ``rA`` column as ``str`` (``<U r``), without trailing blanks and NULs."""
    stored = rows[:, column.offset : column.offset + column.repeat]
    if (stored >= 0x80).any():
        raise FitsFormatError(f"{where}: column {name!r} holds bytes that are not ASCII")
    # ASCII bytes widened to UCS-4 are the str (trailing NULs end it): 50x np.char.decode
    text = stored.astype("<u4").view(f"<U{column.repeat}")[:, 0]
    return np.char.rstrip(text, " ")


def _extract(header: Header, data: bytes, where: str, wanted: Iterable[str]) -> TableHDU:
    """The ``wanted`` columns of a binary table from its header and data unit."""
    if not wanted:
        return TableHDU(header=header, columns={}, units={})
    layout = _column_layout(header, where)
    nrows, row_bytes = _integer(header, "NAXIS2", where), _integer(header, "NAXIS1", where)
    rows = np.frombuffer(data, np.uint8, count=nrows * row_bytes).reshape(nrows, row_bytes)
    columns, units = {}, {}
    for name in wanted:
        if name not in layout:
            raise FitsFormatError(f"{where} has no column {name!r}")
        column = layout[name]
        columns[name] = _read_column(rows, name, column, header, where)
        units[name] = str(header.get(column.unit_key, "")).strip()
    return TableHDU(header=header, columns=columns, units=units)


def read_tables(
    path: str | Path, wanted: dict[str, list[str]], verify: bool = True
) -> dict[str, TableHDU]:
    """Read selected columns of selected binary-table HDUs from one file.

    Parameters
    ----------
    path : str or Path
        FITS file, optionally gzip-compressed (one or several members).
    wanted : dict of str to list of str
        ``EXTNAME`` (case-insensitive) -> column names to read. An empty list
        reads only the header.
    verify : bool, optional
        Inflate the gzip member holding the last wanted HDU to its end, so
        that the CRC32 and length of every member read are checked (default).
        False stops right after the last wanted HDU and saves inflating the rest
        of the member (EVENTS and GTI of a H.E.S.S. DR1 run: 1.0 ms instead of
        2.3 ms), but then a corrupt deflate stream can give wrong data unnoticed.

    Returns
    -------
    dict of str to TableHDU
        Keyed like ``wanted``.

    Raises
    ------
    FitsFormatError
        If the file is not FITS, is truncated, its gzip stream is corrupt
        (CRC32, length or deflate data), it lacks a wanted HDU or column, a
        layout keyword is invalid or inconsistent, or a wanted column has a
        format this reader does not handle. The message names the HDU and the
        keyword or column.
    OSError
        If the file cannot be opened or read.
    """
    todo = {name.upper(): name for name in wanted}
    stream = Stream(path)
    try:
        found = _find_tables(stream, todo, wanted)
        if verify:
            stream.finish()
    finally:
        stream.close()
    if todo:
        missing = ", ".join(sorted(todo))
        raise FitsFormatError(f"no {missing} HDU in file")
    return {key: _extract(*found[key], wanted[key]) for key in found}


def _find_tables(stream: Stream, todo: dict[str, str], wanted: dict[str, list[str]]) -> dict:
    """Headers and data units of the wanted HDUs, removing them from ``todo`` as found."""
    found: dict[str, tuple[Header, bytes, str]] = {}
    number = 0
    while todo:
        header = _read_header(stream, number)
        if header is None:
            break
        extname = str(header.get("EXTNAME", "")).strip().upper()
        where = f"HDU {number} ({extname})" if extname else f"HDU {number}"
        size = _data_size(header, where)
        key = todo.pop(extname, None)
        what = f"the data of {where}"
        if key is None:
            stream.skip(size, what)
        else:
            _check_table(header, where)
            data = stream.read(size, what) if wanted[key] else b""
            if not wanted[key] and todo:  # only the header was wanted
                stream.skip(size, what)
            found[key] = (header, data, where)
        number += 1
    return found


def read_header(path: str | Path, extname: str, verify: bool = True) -> Header:
    """Read one binary-table HDU's header; ``verify`` as in :func:`read_tables`."""
    return read_tables(path, {extname: []}, verify)[extname].header


def read_table(path: str | Path, extname: str | None = None) -> TableHDU:
    """Every column of one binary-table HDU: the one named ``extname``, else the first.

    Reads as :func:`read_tables` (checking the gzip member) and raises as it does.
    """
    stream = Stream(path)
    try:
        number, header = 1, _read_header(stream, 0)
        stream.skip(_data_size(header, "HDU 0"), "the data of HDU 0")
        while (header := _read_header(stream, number)) is not None:
            name = str(header.get("EXTNAME", "")).strip().upper()
            where = f"HDU {number} ({name})" if name else f"HDU {number}"
            size = _data_size(header, where)
            wanted = name == extname.upper() if extname else header["XTENSION"] == "BINTABLE"
            if wanted:
                _check_table(header, where)
                data = stream.read(size, f"the data of {where}")
                stream.finish()
                return _extract(header, data, where, list(_column_layout(header, where)))
            stream.skip(size, f"the data of {where}")
            number += 1
    finally:
        stream.close()
    raise FitsFormatError(f"no {extname or 'binary-table'} HDU in file")
