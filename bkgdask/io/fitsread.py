"""A lean reader for the binary-table HDUs of DL3 files.

Reads only the columns asked for, from only the HDUs asked for, and stops
reading (and gunzipping) a file as soon as the last wanted HDU has been read.
This is several times faster than ``astropy.table.Table.read`` on DL3 event
lists, whose EVENTS HDU comes first and whose IRF HDUs are large.

Only what DL3 EVENTS and GTI tables use is supported: fixed-width numeric
columns (``L X B I J K E D`` with a repeat count of 1), ``TZERO``/``TSCAL``
scaling and big-endian data. Anything else in a wanted column is an error;
other columns are skipped whatever their type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCK = 2880
CARD = 80

# FITS TFORM letter -> (numpy big-endian type, bytes per element)
_TFORM_TYPES = {
    "L": ("i1", 1),
    "X": (None, 1 / 8),
    "B": ("u1", 1),
    "I": (">i2", 2),
    "J": (">i4", 4),
    "K": (">i8", 8),
    "A": (None, 1),
    "E": (">f4", 4),
    "D": (">f8", 8),
    "C": (None, 8),
    "M": (None, 16),
    "P": (None, 8),
    "Q": (None, 16),
}


class FitsFormatError(ValueError):
    """The file is not a FITS file of the expected layout."""


@dataclass
class TableHDU:
    """Header and selected columns of one binary-table HDU.

    Attributes
    ----------
    header : Header
        Header keywords (str, int, float or bool values; ``COMMENT`` and
        ``HISTORY`` dropped).
    columns : dict of str to numpy.ndarray
        Requested columns, native-endian, scaled by ``TZERO``/``TSCAL``.
    units : dict of str to str
        ``TUNITn`` of the requested columns ('' where absent).
    """

    header: Header
    columns: dict[str, np.ndarray]
    units: dict[str, str]


def _parse_value(text: str) -> str | int | float | bool | None:
    if text.lstrip().startswith("'"):
        # A string ends at the first single quote that is not doubled.
        rest = text.lstrip()[1:]
        end = rest.find("'")
        while end >= 0 and rest[end + 1 : end + 2] == "'":
            end = rest.find("'", end + 2)
        return (rest if end < 0 else rest[:end]).replace("''", "'").rstrip()
    value = text.split("/", 1)[0].strip()
    if value == "T":
        return True
    if value == "F":
        return False
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value.replace("D", "E"))
    except ValueError:
        return value


class Header(Mapping):
    """Header keywords of one HDU; values are parsed from their cards on first access."""

    def __init__(self, cards: dict[str, str]):
        self._cards = cards
        self._values: dict = {}

    def __getitem__(self, key: str):
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = _parse_value(self._cards[key])
            return value

    def __iter__(self):
        return iter(self._cards)

    def __len__(self) -> int:
        return len(self._cards)

    def __repr__(self) -> str:
        return f"Header({dict(self)!r})"


def parse_header(raw: bytes) -> Header:
    """The cards of one FITS header (up to and excluding ``END``)."""
    cards: dict[str, str] = {}
    text = raw.decode("ascii", errors="replace")
    for start in range(0, len(text), CARD):
        key = text[start : start + 8].rstrip()
        if key == "END":
            return Header(cards)
        if text[start + 8 : start + 10] == "= " and key not in ("COMMENT", "HISTORY", ""):
            cards[key] = text[start + 10 : start + CARD]
    raise FitsFormatError("header has no END card")


try:  # Intel ISA-L's inflate, ~1.6x faster than zlib's, when installed
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency, zlib the fallback
    import zlib as _inflate

import zlib  # noqa: E402 - its error type is caught beside the fast inflater's

#: Exceptions a corrupt gzip stream raises.
INFLATE_ERRORS = (zlib.error, _inflate.error, EOFError)

CHUNK = 1 << 16  # compressed bytes read from disk at a time
READ_AHEAD = 1 << 16  # least decompressed bytes asked for at a time


class _Stream:
    """Sequential reader over a plain or gzip-compressed file.

    Decompresses only as far as has been asked for, so a reader that stops
    after the first HDUs never inflates the rest of the file.
    """

    def __init__(self, path: Path):
        self._raw = open(path, "rb")  # closed in close()
        self._gzip = self._raw.read(2) == b"\x1f\x8b"
        self._raw.seek(0)
        self._inflater = _inflate.decompressobj(31) if self._gzip else None
        self._buffer = bytearray()

    def _fill(self, size: int) -> None:
        """Decompress until the buffer holds ``size`` bytes or the file ends."""
        inflater = self._inflater
        while len(self._buffer) < size:
            data = inflater.unconsumed_tail or self._raw.read(CHUNK)
            if not data:
                return
            if inflater.eof:  # a further gzip member
                data = inflater.unused_data + data
                inflater = self._inflater = _inflate.decompressobj(31)
            # Inflate a little ahead: asking for a few KB at a time costs more in
            # bookkeeping than inflating 64 KB that may not be needed.
            self._buffer += inflater.decompress(data, max(size - len(self._buffer), READ_AHEAD))

    def read_upto(self, n: int) -> bytes:
        if not self._gzip:
            return self._raw.read(n)
        self._fill(n)
        if len(self._buffer) <= n:
            out, self._buffer = bytes(self._buffer), bytearray()
            return out
        with memoryview(self._buffer) as view:
            out = view[:n].tobytes()
        del self._buffer[:n]
        return out

    def read(self, n: int) -> bytes:
        data = self.read_upto(n)
        if len(data) != n:
            raise FitsFormatError(f"file ends early (wanted {n} bytes, got {len(data)})")
        return data

    def skip(self, n: int) -> None:
        while n > 0:
            chunk = self.read_upto(min(n, 1 << 20))
            if not chunk:
                raise FitsFormatError("file ends inside a data unit")
            n -= len(chunk)

    def close(self) -> None:
        self._raw.close()


def _read_header(stream: _Stream, first: bool) -> dict | None:
    blocks = []
    while True:
        block = stream.read_upto(BLOCK)
        if not block and not blocks and not first:
            return None  # clean end of file between HDUs
        if first and not blocks and not block.startswith(b"SIMPLE  ="):
            raise FitsFormatError("not a FITS file (no SIMPLE card)")
        if len(block) < BLOCK:
            raise FitsFormatError("file ends inside a header")
        blocks.append(block)
        # The END card starts on a card boundary.
        for pos in range(0, BLOCK, CARD):
            if block[pos : pos + 8] == b"END     ":
                return parse_header(b"".join(blocks))
        if len(blocks) > 1000:
            raise FitsFormatError("header longer than 1000 blocks")


def _data_size(header: dict) -> int:
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    size = abs(int(header.get("BITPIX", 8))) // 8
    for i in range(1, naxis + 1):
        size *= int(header[f"NAXIS{i}"])
    size = int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + size)
    return -(-size // BLOCK) * BLOCK


def _column_layout(header: dict) -> dict[str, tuple[int, str, int]]:
    """Map column name -> (byte offset in row, TFORM code, repeat)."""
    layout: dict[str, tuple[int, str, int]] = {}
    offset = 0
    for i in range(1, int(header["TFIELDS"]) + 1):
        tform = str(header[f"TFORM{i}"]).strip().upper()
        digits = ""
        while tform and tform[0].isdigit():
            digits, tform = digits + tform[0], tform[1:]
        if not tform or tform[0] not in _TFORM_TYPES:
            raise FitsFormatError(f"unsupported TFORM{i} = {header[f'TFORM{i}']!r}")
        code = tform[0]
        repeat = int(digits) if digits else 1
        name = str(header.get(f"TTYPE{i}", f"COL{i}")).strip()
        layout[name] = (offset, code, repeat)
        width = _TFORM_TYPES[code][1]
        offset += -(-repeat // 8) if code == "X" else int(repeat * width)
    return layout


def _extract(header: dict, data: bytes, wanted: Iterable[str], where: str) -> TableHDU:
    layout = _column_layout(header)
    nrows, row_bytes = int(header["NAXIS2"]), int(header["NAXIS1"])
    index = {name: i for i, name in enumerate(layout, start=1)}
    columns, units = {}, {}
    for name in wanted:
        if name not in layout:
            raise FitsFormatError(f"{where} HDU has no column {name!r}")
        offset, code, repeat = layout[name]
        dtype = _TFORM_TYPES[code][0]
        if dtype is None or repeat != 1:
            raise FitsFormatError(f"{where} column {name!r} has unsupported format")
        view = np.ndarray(
            shape=(nrows,), dtype=np.dtype(dtype), buffer=data, offset=offset, strides=(row_bytes,)
        )
        i = index[name]
        scale, zero = header.get(f"TSCAL{i}", 1), header.get(f"TZERO{i}", 0)
        native = np.float64 if code in "ED" else np.dtype(dtype).newbyteorder("=")
        column = view.astype(native)
        if scale != 1 or zero != 0:
            column = column * float(scale) + float(zero)
        columns[name] = column
        units[name] = str(header.get(f"TUNIT{i}", "")).strip()
    return TableHDU(header=header, columns=columns, units=units)


def read_tables(path: str | Path, wanted: dict[str, list[str]]) -> dict[str, TableHDU]:
    """Read selected columns of selected binary-table HDUs from one file.

    Parameters
    ----------
    path : str or Path
        FITS file, optionally gzip-compressed.
    wanted : dict of str to list of str
        ``EXTNAME`` (case-insensitive) -> column names to read. An empty list
        reads only the header.

    Returns
    -------
    dict of str to TableHDU
        Keyed like ``wanted``.

    Raises
    ------
    FitsFormatError
        If the file is not FITS, ends early, lacks a wanted HDU or column, or a
        wanted column has a format this reader does not handle.
    OSError, EOFError, zlib.error
        On unreadable files or corrupt gzip streams.
    """
    todo = {name.upper(): name for name in wanted}
    found: dict[str, TableHDU] = {}
    stream = _Stream(Path(path))
    try:
        first = True
        while todo:
            header = _read_header(stream, first)
            if header is None:
                break
            first = False
            size = _data_size(header)
            extname = str(header.get("EXTNAME", "")).strip().upper()
            if extname in todo and header.get("XTENSION") == "BINTABLE":
                key = todo.pop(extname)
                if wanted[key]:
                    data = stream.read(size) if size else b""
                    found[key] = _extract(header, data, wanted[key], extname)
                else:
                    found[key] = TableHDU(header=header, columns={}, units={})
                    if todo:
                        stream.skip(size)
            else:
                stream.skip(size)
    finally:
        stream.close()
    if todo:
        missing = ", ".join(sorted(todo))
        raise FitsFormatError(f"no {missing} HDU in file")
    return found


def read_header(path: str | Path, extname: str) -> dict:
    """Read one HDU's header, stopping right after it."""
    return read_tables(path, {extname: []})[extname].header
