"""Writing files safely: atomically (temporary file + rename), never inside an input store."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import OutputError
from .fitswrite import BinTable, fits_file


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    Readers never see a partial file, and a failure leaves any existing
    ``path`` untouched. The file gets the umask's permissions. The temporary
    name keeps the suffixes (``.fits.gz``) so writers pick the right format.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(data: bytes, path: str | Path) -> int:
    """Write ``data`` to ``path`` atomically (fsync'd); return its size."""
    with atomic_path(path) as tmp, open(tmp, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return len(data)


def write_fits_atomic(tables: Iterable[BinTable], path: str | Path) -> Path:
    """Write an empty primary HDU and ``tables`` atomically (``.gz``: gzip, isal's igzip).

    Compression level 1 makes files of float64 tables within 1 % of zlib's
    level 9 in a twentieth of the time (BKG_3D node grids of a few MB each).
    """
    data = fits_file(tables)
    if Path(path).suffix == ".gz":
        from isal import igzip

        data = igzip.compress(data, compresslevel=1)
    write_bytes_atomic(data, path)
    return Path(path)


def check_output(path: str | Path, forbidden: list[Path], what: str = "output") -> Path:
    """Refuse ``path`` inside any of the ``forbidden`` folders, or with an unusable parent.

    Raises
    ------
    OutputError
        Naming the path and the reason.
    """
    path = Path(path).expanduser()
    target = path.resolve()
    for folder in forbidden:
        if target == folder or target.is_relative_to(folder):
            raise OutputError(f"refusing to write {what} {path} inside the input store {folder}")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {what} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {what} {path}: {parent} is not writable")
    return path
