"""Model kinds (one module each) and their registry: axes, chunk, combine, finalize, GADF HDU."""

from __future__ import annotations

from .base import Model, ModelKind
from .bkg2d import Bkg2D
from .bkg3d import Bkg3D
from .lean_xarray import defer_dask_array

defer_dask_array()  # the partials are numpy-backed: no dask.array import in any process

#: Model kinds by tag (``bkg_2d``, ...).
KINDS: dict[str, ModelKind] = {}


def register(kind: ModelKind) -> ModelKind:
    """Make ``kind`` known by its tag (config ``model.kind``, HDU index ``HDU_CLASS``)."""
    KINDS[kind.tag] = kind
    return kind


def get_kind(tag: str) -> ModelKind:
    """The registered kind of ``tag`` (KeyError naming the known ones)."""
    try:
        return KINDS[tag]
    except KeyError:
        raise KeyError(f"unknown model kind {tag!r} (known: {', '.join(KINDS)})") from None


def kind_of_hdu(header) -> ModelKind:
    """The kind whose ``hdu_class`` is the header's ``HDUCLAS4``."""
    hdu_class = str(header.get("HDUCLAS4", "")).strip().upper()
    for kind in KINDS.values():
        if kind.hdu_class == hdu_class:
            return kind
    raise KeyError(f"no model kind for HDUCLAS4 {hdu_class!r}")


register(Bkg2D())
register(Bkg3D())

__all__ = ["KINDS", "Model", "ModelKind", "get_kind", "kind_of_hdu", "register"]


def read_models(path) -> tuple[dict[str, Model], object]:
    """The group models of a bundle by HDU name (with the runs that built each), and its OBS_INDEX.

    A run-wise bundle's per-run models are left out (:func:`~bkgdask.io.bundle.read_bundle_hdus`).
    """
    from ..io.bundle import read_bundle_hdus

    hdus, obs_index = read_bundle_hdus(path)
    models = {}
    for name, (header, data) in hdus.items():
        model = kind_of_hdu(header).from_hdu(name, header, data)
        built = obs_index["BKG_HDU"] == name
        if "BKG_GROUP" in obs_index:  # run-wise bundles: group models' own runs
            built |= obs_index["BKG_GROUP"] == name
        model.obs_ids = obs_index["OBS_ID"][built & obs_index["BKG_USED"]].tolist()
        models[name] = model
    return models, obs_index
