"""Sequential reading of a plain or gzip-compressed file, every gzip member read checked."""

from __future__ import annotations

import os
import zlib  # its error type is caught beside the fast inflater's
from pathlib import Path

from .fitsheader import FitsFormatError

try:  # Intel ISA-L's inflate, ~1.6x faster than zlib's, when installed
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency, zlib the fallback
    import zlib as _inflate

__all__ = ["INFLATE_ERRORS", "Stream"]

#: Exceptions of the inflaters. :func:`bkgdask.io.fitsread.read_tables` reports a corrupt
#: gzip stream as a :class:`FitsFormatError`; callers may still catch these beside it.
INFLATE_ERRORS = (zlib.error, _inflate.error, EOFError)

CHUNK = 1 << 16  # compressed bytes read from disk at a time
READ_AHEAD = 1 << 16  # least decompressed bytes asked for at a time
DRAIN = 1 << 20  # most decompressed bytes held at a time while verifying


class Stream:
    """Sequential reader over a plain or gzip-compressed file.

    Decompresses only as far as has been asked for; :meth:`finish` inflates
    the rest of the current gzip member so that its CRC32 and length are
    checked.
    """

    def __init__(self, path: str | Path):
        self._raw = open(path, "rb")  # closed in close()
        self._size = os.fstat(self._raw.fileno()).st_size
        self._gzip = self._raw.read(2) == b"\x1f\x8b"
        self._raw.seek(0)
        self._inflater = _inflate.decompressobj(31) if self._gzip else None
        self._members = 1
        self._buffer = bytearray()

    def _inflate(self, limit: int) -> bytes | None:
        """Up to ``limit`` more decompressed bytes; None where the file ends."""
        inflater = self._inflater
        if inflater.eof:  # a further gzip member, or the end of the file
            data = inflater.unused_data or self._raw.read(CHUNK)
            if data:
                inflater = self._inflater = _inflate.decompressobj(31)
                self._members += 1
        else:
            data = inflater.unconsumed_tail or self._raw.read(CHUNK)
        if not data:
            return None
        try:
            return inflater.decompress(data, limit)
        except INFLATE_ERRORS as exc:
            raise FitsFormatError(f"gzip member {self._members} is corrupt: {exc}") from exc

    def read_upto(self, n: int) -> bytes:
        """The next ``n`` bytes, fewer only at the end of the file."""
        if not self._gzip:  # never more than the file holds, whatever a header says
            return self._raw.read(min(n, self._size - self._raw.tell()))
        buffer = self._buffer
        if len(buffer) >= n:
            with memoryview(buffer) as view:
                out = view[:n].tobytes()
            del buffer[:n]
            return out
        # Inflate a little ahead for small reads: asking for a few KB at a time costs
        # more in bookkeeping than inflating 64 KB that may not be needed. Large reads
        # are joined from exactly as many bytes as asked for, copied once.
        parts, missing = [bytes(buffer)], n - len(buffer)
        buffer.clear()
        while missing > 0:
            data = self._inflate(max(missing, READ_AHEAD))
            if data is None:
                break
            parts.append(data)
            missing -= len(data)
        if missing < 0:  # read ahead: keep what was not asked for
            buffer += memoryview(parts[-1])[missing:]
            parts[-1] = memoryview(parts[-1])[:missing]
        return b"".join(parts)

    def read(self, n: int, what: str) -> bytes:
        """Exactly the next ``n`` bytes of ``what``."""
        data = self.read_upto(n)
        if len(data) != n:
            raise FitsFormatError(f"file ends inside {what} (truncated)")
        return data

    def skip(self, n: int, what: str) -> None:
        """Pass over the next ``n`` bytes of ``what``."""
        while n > 0:
            n -= len(self.read(min(n, DRAIN), what))

    def finish(self) -> None:
        """Inflate the current gzip member to its end, dropping the bytes, to check it."""
        while self._gzip and not self._inflater.eof:
            if self._inflate(DRAIN) is None:
                raise FitsFormatError(f"file ends inside gzip member {self._members} (truncated)")

    def close(self) -> None:
        self._raw.close()
