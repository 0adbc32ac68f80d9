"""FITS header cards: the keyword values of one HDU, parsed when first asked for."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from operator import itemgetter

BLOCK = 2880
CARD = 80

__all__ = ["BLOCK", "CARD", "FitsFormatError", "Header", "parse_header"]


class FitsFormatError(ValueError):
    """The file is not a FITS file of the expected layout, or is corrupt or truncated."""


_LOGICAL_OR_NONE = {"T": True, "F": False, "": None}

# One match a card: keyword and value of a card with "= " in columns 9-10, ("", "") of others
_KEY_AND_VALUE = re.compile(r"(.{8})= (.{70})|.{80}", re.DOTALL)
_KEY, _VALUE = itemgetter(0), itemgetter(1)


@functools.lru_cache(maxsize=4096)  # most cards recur from file to file, word for word
def _parse_value(text: str) -> str | int | float | bool | None:
    """The value of a card from its 11th column on: str, int, float, bool, or None if empty."""
    value = text.lstrip()
    if value[:1] == "'":
        # A string ends at the first single quote that is not doubled.
        rest = value[1:]
        end = rest.find("'")
        while end >= 0 and rest[end + 1 : end + 2] == "'":
            end = rest.find("'", end + 2)
        return (rest if end < 0 else rest[:end]).replace("''", "'").rstrip()
    value = value.split("/", 1)[0].rstrip()
    if value in _LOGICAL_OR_NONE:
        return _LOGICAL_OR_NONE[value]
    if not ("." in value or "E" in value or "D" in value or "e" in value):
        try:  # (int() takes none of those characters)
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

    def get(self, key: str, default=None):
        """The value of ``key``, or ``default`` (no exception raised and caught: the hot path)."""
        if key in self._values:
            return self._values[key]
        text = self._cards.get(key)
        if text is None:
            return default
        value = self._values[key] = _parse_value(text)
        return value

    def texts(self, keys: Iterable[str]) -> tuple[str | None, ...]:
        """The value texts of the cards ``keys`` as written (None where absent): what they say."""
        return tuple(map(self._cards.get, keys))

    def __contains__(self, key) -> bool:
        return key in self._cards

    def __iter__(self):
        return iter(self._cards)

    def __len__(self) -> int:
        return len(self._cards)

    def __repr__(self) -> str:
        return f"Header({dict(self)!r})"


def parse_header(raw: bytes) -> Header:
    """The cards of one FITS header (up to and excluding ``END``)."""
    text = raw.decode("ascii", errors="replace")
    pairs = _KEY_AND_VALUE.findall(text, 0, _end_card(text))
    cards = dict(zip(map(str.rstrip, map(_KEY, pairs)), map(_VALUE, pairs)))
    for key in ("COMMENT", "HISTORY", ""):  # "": also the cards that hold no value
        cards.pop(key, None)
    return Header(cards)


def _end_card(text: str) -> int:
    """Where the first card whose keyword is ``END`` starts (FitsFormatError if none does)."""
    firsts = text[::CARD]
    i = firsts.find("E")
    while i >= 0:
        if text[i * CARD : i * CARD + 8].rstrip() == "END":
            return i * CARD
        i = firsts.find("E", i + 1)
    raise FitsFormatError("header has no END card")
