"""Writing FITS files of a primary HDU and binary tables: header cards, column layout, bytes."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping

import numpy as np

from .fitsheader import BLOCK, CARD

#: FITS ``TFORM`` letter of each numpy type a numeric column may hold (kind and size).
TFORM_LETTERS = {"b1": "L", "u1": "B", "i2": "I", "i4": "J", "i8": "K", "f4": "E", "f8": "D"}

#: Keywords the writer sets itself from the table's layout and name.
_RESERVED = re.compile(
    r"(SIMPLE|XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|TFIELDS|THEAP|EXTEND|EXTNAME|END"
    r"|COMMENT|HISTORY|CONTINUE|T(TYPE|FORM|UNIT|DIM|NULL|SCAL|ZERO|DISP)\d+)"
)
_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}")
#: Longest piece of a long string value, and of its comment, per ``CONTINUE`` card.
_LONG_VALUE, _LONG_COMMENT = 67, 64
#: Characters of a ``COMMENT`` card's text.
_COMMENTARY = CARD - 8


class HeaderCards(MutableMapping):
    """Header keywords of a table HDU beyond its layout: keyword -> value, each with a comment.

    Values are str, int, float (finite) or bool; setting a ``(value, comment)``
    tuple sets the comment too, a bare value keeps the keyword's comment (as
    ``astropy.io.fits.Header`` does). Keywords are upper-cased.

    Raises
    ------
    ValueError
        For a keyword longer than 8 characters or not of ``A-Z 0-9 - _``, a
        keyword the writer sets itself (``NAXIS2``, ``TTYPE1``, ``EXTNAME``),
        a non-finite or unsupported value, or text that is not printable ASCII.
    """

    def __init__(self, cards: Mapping | Iterable = ()):
        self._cards: dict[str, tuple[str | int | float | bool, str]] = {}
        #: Texts of the ``COMMENT`` cards, written after the keywords.
        self.comments: list[str] = []
        self.update(cards)

    def __getitem__(self, key: str):
        return self._cards[key.upper()][0]

    def __setitem__(self, key: str, value) -> None:
        key = _keyword(key)
        if isinstance(value, tuple):
            value, comment = value
        else:
            comment = self._cards.get(key, (None, ""))[1]
        self._cards[key] = (_value(key, value), _text(str(comment or ""), key))

    def __delitem__(self, key: str) -> None:
        del self._cards[key.upper()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cards)

    def __len__(self) -> int:
        return len(self._cards)

    def __repr__(self) -> str:
        return f"HeaderCards({dict(self)!r})"

    def add_comment(self, text: str) -> None:
        """Add a ``COMMENT`` card (several if ``text`` is longer than a card holds)."""
        self.comments.append(_text(text, "COMMENT"))

    def images(self) -> list[str]:
        """The 80-character cards: the keywords in order, then the comments."""
        cards = [_card(key, value, comment) for key, (value, comment) in self._cards.items()]
        for text in self.comments:
            pieces = range(0, max(len(text), 1), _COMMENTARY)
            cards += [f"{'COMMENT':8}{text[i : i + _COMMENTARY]:{_COMMENTARY}}" for i in pieces]
        return cards


class BinTable:
    """A binary-table HDU to write: name, header keywords, columns and their units.

    Parameters
    ----------
    name : str
        ``EXTNAME`` ('' for none).
    columns : mapping of str to array_like
        Column name -> values, the row axis first, in the order to write them.
        Numbers (bool, uint8, int16/32/64, float32/64) keep their type; an
        array of more than one axis is a vector column (``TDIMn`` its cell's
        shape, fastest axis first as FITS counts it). Strings are fixed-width
        ASCII (``rA``, ``r`` the longest, at least 1).
    units : mapping of str to str, optional
        ``TUNITn`` of columns ('' or absent: none).
    header : mapping, optional
        Further keywords (see :class:`HeaderCards`).

    Attributes
    ----------
    data : numpy.ndarray
        The rows as a structured array, numbers big-endian as FITS stores them:
        ``data["BKG"][0]`` is the first row's cell.

    Raises
    ------
    ValueError
        For columns of different lengths, an unsupported type, non-ASCII
        strings, or a unit of a column that does not exist.
    """

    def __init__(
        self,
        name: str = "",
        columns: Mapping[str, object] | None = None,
        units: Mapping[str, str] | None = None,
        header: Mapping | Iterable = (),
    ):
        self.name = name
        self.data = _records(columns or {})
        self.units = {column: unit for column, unit in (units or {}).items() if unit}
        unknown = sorted(set(self.units) - set(self.data.dtype.names))
        if unknown:
            raise ValueError(f"units given for columns {unknown} that the table does not have")
        self.header = HeaderCards(header)

    def __repr__(self) -> str:
        return f"BinTable({self.name!r}, {len(self.data)} rows, columns {self.data.dtype.names})"

    def to_bytes(self) -> bytes:
        """The HDU as FITS stores it: header blocks (blank-padded), data blocks (zero-padded)."""
        return b"".join(self._blocks())

    def _blocks(self) -> list:
        """The header's bytes, the rows' bytes (not copied where they can be) and the padding."""
        cards = [
            _card("XTENSION", "BINTABLE", "binary table extension"),
            _card("BITPIX", 8, "array data type"),
            _card("NAXIS", 2, "number of array dimensions"),
            _card("NAXIS1", self.data.dtype.itemsize, "length of dimension 1"),
            _card("NAXIS2", len(self.data), "length of dimension 2"),
            _card("PCOUNT", 0, "number of group parameters"),
            _card("GCOUNT", 1, "number of groups"),
            _card("TFIELDS", len(self.data.dtype.names), "number of table fields"),
        ]
        for i, name in enumerate(self.data.dtype.names, start=1):
            cards += _column_cards(i, name, self.data.dtype[name], self.units.get(name))
        if self.name:
            cards.append(_card("EXTNAME", self.name, "extension name"))
        cards += self.header.images()
        rows = self._rows()
        return [_header_bytes(cards), rows.data, bytes(-rows.nbytes % BLOCK)]

    def _rows(self) -> np.ndarray:
        """The rows as FITS stores them: :attr:`data`, logical columns as ``T``/``F``."""
        dtype = self.data.dtype
        logical = [name for name in dtype.names if dtype[name].base.kind == "b"]
        if not logical:
            return self.data
        layout = [(n, "S1" if n in logical else dtype[n].base, dtype[n].shape) for n in dtype.names]
        rows = np.empty(len(self.data), np.dtype(layout))
        for name in dtype.names:
            values = self.data[name]
            rows[name] = np.where(values, b"T", b"F") if name in logical else values
        return rows


def fits_file(tables: Iterable[BinTable]) -> bytes:
    """A FITS file: an empty primary HDU, then ``tables``."""
    primary = [
        _card("SIMPLE", True, "conforms to FITS standard"),
        _card("BITPIX", 8, "array data type"),
        _card("NAXIS", 0, "number of array dimensions"),
        _card("EXTEND", True),
    ]
    return b"".join([_header_bytes(primary), *(b for t in tables for b in t._blocks())])


def _records(columns: Mapping[str, object]) -> np.ndarray:
    """The columns as one structured array of FITS types (numbers big-endian)."""
    arrays = {name: _column_array(name, values) for name, values in columns.items()}
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"table columns differ in length (rows): {lengths}")
    dtype = np.dtype([(name, array.dtype, array.shape[1:]) for name, array in arrays.items()])
    records = np.empty(next(iter(lengths.values()), 0), dtype)
    for name, array in arrays.items():
        records[name] = array
    return records


def _column_array(name: str, values) -> np.ndarray:
    """A column's values in the type FITS stores: big-endian numbers, bool, or ASCII bytes."""
    array = np.asarray(values)
    if array.ndim == 0:
        raise ValueError(f"column {name!r} has no row axis (a scalar)")
    kind = array.dtype.kind
    if kind in "SU":
        if array.ndim > 1:
            raise ValueError(f"column {name!r}: string columns hold one string a row")
        try:
            encoded = np.char.encode(array, "ascii") if kind == "U" else array
        except UnicodeEncodeError:
            raise ValueError(f"column {name!r} holds non-ASCII strings") from None
        return encoded.astype(f"S{max(1, int(np.char.str_len(encoded).max(initial=0)))}")
    if f"{kind}{array.dtype.itemsize}" not in TFORM_LETTERS:
        raise ValueError(
            f"column {name!r} has type {array.dtype}, not one FITS tables hold "
            "(bool, uint8, int16/32/64, float32/64, str)"
        )
    return array if kind == "b" else array.astype(array.dtype.newbyteorder(">"), copy=False)


def _column_cards(i: int, name: str, dtype: np.dtype, unit: str | None) -> list[str]:
    """``TTYPEi``, ``TFORMi``, ``TUNITi`` (with a unit), ``TDIMi`` (a vector column)."""
    base, shape = dtype.base, dtype.shape
    if base.kind == "S":
        tform = f"{base.itemsize}A"
    else:
        letter = TFORM_LETTERS[f"{base.kind}{base.itemsize}"]
        tform = f"{math.prod(shape)}{letter}" if shape else letter
    cards = [_card(f"TTYPE{i}", name), _card(f"TFORM{i}", tform)]
    if unit:
        cards.append(_card(f"TUNIT{i}", unit))
    if shape:
        cards.append(_card(f"TDIM{i}", "(" + ",".join(map(str, reversed(shape))) + ")"))
    return cards


def _keyword(key) -> str:
    """``key`` upper-cased, checked: 1 to 8 of ``A-Z 0-9 - _``, not set by the writer."""
    keyword = str(key).upper()
    if not _KEYWORD.fullmatch(keyword):
        raise ValueError(f"FITS keyword {key!r} must be 1 to 8 characters of A-Z, 0-9, '-' and '_'")
    if _RESERVED.fullmatch(keyword):
        raise ValueError(f"FITS keyword {keyword} is set by the writer from the table itself")
    return keyword


def _value(key: str, value) -> str | int | float | bool:
    """A header value as a Python str, int, float or bool (numpy scalars converted)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return _text(value, key)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"FITS keyword {key}: {value} is not a finite number")
    if not isinstance(value, int | float):
        raise ValueError(f"FITS keyword {key}: a value of type {type(value).__name__}")
    return value


def _text(text: str, key: str) -> str:
    """``text`` if it is printable ASCII (what FITS header cards hold)."""
    if not (text.isascii() and text.isprintable()):
        raise ValueError(f"FITS keyword {key}: {text!r} is not printable ASCII")
    return text


def _card(key: str, value, comment: str = "") -> str:
    """One 80-character card (several ``CONTINUE`` cards for a long string), as astropy writes.

    A comment that does not fit beside a short value is cut.
    """
    if isinstance(value, str):
        quoted = "'" + f"{_text(value, key).replace(chr(39), chr(39) * 2):8}" + "'"
        text = f"{quoted:20}"
    elif isinstance(value, bool):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, float):
        mantissa, e, exponent = repr(value).upper().partition("E")
        text = f"{mantissa if '.' in mantissa else mantissa + '.0'}{e}{exponent}".rjust(20)
    else:
        text = f"{value:>20d}"
    card = f"{key:8}= {text}" + (f" / {_text(comment, key)}" if comment else "")
    if len(card) <= CARD:
        return f"{card:{CARD}}"
    if isinstance(value, str) and len(text) > CARD - 10:
        return _long_string(key, value, comment)
    return card[:CARD]


def _long_string(key: str, value: str, comment: str) -> str:
    """The ``CONTINUE`` cards of a long string value: ``&`` ends every piece but the last."""
    pieces = _pieces(value.replace("'", "''"), _LONG_VALUE)
    cards = []
    for i, piece in enumerate(pieces):
        head = f"{key:8}= " if i == 0 else "CONTINUE  "
        more = "&" if comment or i < len(pieces) - 1 else ""
        cards.append(f"{head}'{piece}{more}'")
    if comment:
        notes = _pieces(comment, _LONG_COMMENT)
        ends = ["&"] * (len(notes) - 1) + [""]
        cards += [f"CONTINUE  '{end}' / {note}" for end, note in zip(ends, notes)]
    return "".join(f"{card:{CARD}}" for card in cards)


def _pieces(text: str, width: int) -> list[str]:
    """``text`` cut into pieces of at most ``width``: after a blank if one fits, never in ``''``."""
    pieces = []
    while len(text) > width:
        cut = text.rfind(" ", 0, width) + 1 or width
        quotes = cut - len(text[:cut].rstrip("'"))
        cut -= quotes % 2  # an escaped quote stays whole
        pieces.append(text[:cut])
        text = text[cut:]
    return [*pieces, text]


def _header_bytes(cards: list[str]) -> bytes:
    """The header blocks: ``cards``, ``END``, blank padding."""
    text = "".join(cards) + f"{'END':{CARD}}"
    return (text + " " * (-len(text) % BLOCK)).encode("ascii")
