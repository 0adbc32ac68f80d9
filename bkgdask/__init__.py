"""bkgdask: template background models for IACT DL3 data, built in parallel with Dask."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["BuildConfig", "BuildResult", "__version__", "build"]


def __getattr__(name: str):
    # Keep `import bkgdask` (and the CLI's start-up) light: load on first use.
    if name in ("build", "BuildResult"):
        from .engine import build as build_module

        return getattr(build_module, name)
    if name == "BuildConfig":
        from .config import BuildConfig

        return BuildConfig
    raise AttributeError(f"module 'bkgdask' has no attribute {name!r}")
