"""FITS header cards: the keyword values of one HDU, parsed when first asked for."""

from __future__ import annotations

from collections.abc import Mapping

BLOCK = 2880
CARD = 80

__all__ = ["BLOCK", "CARD", "FitsFormatError", "Header", "parse_header"]


class FitsFormatError(ValueError):
    """The file is not a FITS file of the expected layout, or is corrupt or truncated."""


_LOGICAL_OR_NONE = {"T": True, "F": False, "": None}


def _parse_value(text: str) -> str | int | float | bool | None:
    """The value of a card from its 11th column on: str, int, float, bool, or None if empty."""
    if text.lstrip().startswith("'"):
        # A string ends at the first single quote that is not doubled.
        rest = text.lstrip()[1:]
        end = rest.find("'")
        while end >= 0 and rest[end + 1 : end + 2] == "'":
            end = rest.find("'", end + 2)
        return (rest if end < 0 else rest[:end]).replace("''", "'").rstrip()
    value = text.split("/", 1)[0].strip()
    if value in _LOGICAL_OR_NONE:
        return _LOGICAL_OR_NONE[value]
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

    def get(self, key: str, default=None):
        """The value of ``key``, or ``default`` (no exception raised and caught: the hot path)."""
        if key in self._values:
            return self._values[key]
        text = self._cards.get(key)
        if text is None:
            return default
        value = self._values[key] = _parse_value(text)
        return value

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
    cards: dict[str, str] = {}
    text = raw.decode("ascii", errors="replace")
    for start in range(0, len(text), CARD):
        key = text[start : start + 8].rstrip()
        if key == "END":
            return Header(cards)
        if text[start + 8 : start + 10] == "= " and key not in ("COMMENT", "HISTORY", ""):
            cards[key] = text[start + 10 : start + CARD]
    raise FitsFormatError("header has no END card")
