"""xarray without dask.array at start: the first Dataset no longer imports it (~0.5 s a process).

xarray asks for ``dask.array.Array`` (to test ``isinstance``) whenever it
wraps data, importing dask.array, and with it scipy.fft, in every process that
makes a Dataset. Nothing can be a dask array before ``dask.array`` is
imported, so xarray's cached answer is given a class whose ``isinstance``
looks at the real one only once it is loaded: the answers stay the same.
"""

from __future__ import annotations

import sys


class _DaskArrayType(type):
    def __instancecheck__(cls, obj) -> bool:
        core = sys.modules.get("dask.array.core")
        return core is not None and isinstance(obj, core.Array)


class DaskArray(metaclass=_DaskArrayType):
    """Stands for ``dask.array.Array`` in ``isinstance`` checks, without importing it."""


def defer_dask_array() -> bool:
    """Give xarray the lazy dask-array type unless it already knows the real one.

    Returns
    -------
    bool
        Whether xarray's cache now holds the lazy type (False: an xarray without
        that cache, dask missing, or dask.array already loaded).
    """
    try:
        import dask
        from packaging.version import Version
        from xarray.namedarray import pycompat
    except ImportError:
        return False
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    module_class = getattr(pycompat, "DuckArrayModule", None)
    if cache is None or module_class is None or "dask" in cache or "dask.array" in sys.modules:
        return False
    entry = object.__new__(module_class)
    entry.module, entry.version = dask, Version(dask.__version__)
    entry.type, entry.available = (DaskArray,), True
    cache["dask"] = entry
    return True
