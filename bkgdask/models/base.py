"""What a model kind is: axes, per-run chunk, combine, finalize, its GADF HDU out and back in.

A kind is one object, in the spirit of flox's ``Aggregation(chunk=, combine=,
finalize=)`` and of gammapy's IRF classes (``tag``, ``from_table``/``to_table``):

* ``binning(config)``: its axes from the binning configuration;
* ``chunk(events, binning)``: one run's counts and exposure (s MeV sr);
* ``combine(parts)``: partial sums, additive (shared by all kinds);
* ``finalize(total)``: counts and exposure to a rate, s-1 MeV-1 sr-1;
* ``to_hdu(...)`` / ``from_hdu(hdu)``: the GADF HDU, written and read back;
* ``image_dims``: the two axes plotting draws as an image.

A new kind is one module defining a subclass and one :func:`register` call.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import xarray as xr

from .binning import Binning
from .exclusion import rim_subdivisions, sampled_excluded_fraction
from .inputs import combine_input_attrs
from .rotation import RunPointing

RATE_UNIT = "s-1 MeV-1 sr-1"

#: Run bookkeeping summed by :meth:`ModelKind.combine`.
ADDITIVE_ATTRS = ("observation_time", "n_events", "n_runs")

#: Per-run event counters (see ``bkgdask.io.checks``), summed and kept per run by combine.
RUN_COUNTERS = ("n_used", "n_drop_gti", "n_drop_bad", "n_cached")


@dataclass
class Model:
    """One model as stored in a bundle, read back.

    Attributes
    ----------
    name : str
        ``EXTNAME`` of its HDU.
    kind : ModelKind
        Its kind.
    binning : Binning
        Its bins (TeV, deg).
    rate : numpy.ndarray
        s-1 MeV-1 sr-1, shape ``binning.shape``.
    header : dict
        Header keywords (provenance: ``OBSTIME`` s, ``ZEN_LO``/``ZEN_HI`` deg, ...).
    obs_ids : list of int
        Runs the model was built from.
    counts : numpy.ndarray, optional
        Counts of the model's runs per bin; default rate x exposure, rounded
        (exact for a histogram model).
    exposure : numpy.ndarray, optional
        Exposure of the model's runs per bin, s MeV sr; default observation
        time (header ``OBSTIME``) x bin widths x solid angle.
    error : numpy.ndarray, optional
        1-sigma statistical error of ``rate``, s-1 MeV-1 sr-1 (None if not stored).
    nodes : (Binning, numpy.ndarray), optional
        The grid and rate of the HDU's ``BKG`` table (float32 values) beside
        its build columns: a smoothed model's node grid, a histogram's own
        bins; for gammapy only, which so gets the table it reads from the bundle.

    All arrays are on the build's bins (``binning``), whatever grid the HDU
    hands to gammapy.
    """

    name: str
    kind: ModelKind
    binning: Binning
    rate: np.ndarray
    header: dict
    obs_ids: list[int] = field(default_factory=list)
    counts: np.ndarray | None = None
    exposure: np.ndarray | None = None
    error: np.ndarray | None = None
    nodes: tuple[Binning, np.ndarray] | None = None

    def __post_init__(self):
        if self.exposure is None and "OBSTIME" in self.header:
            self.exposure = self.kind.exposure(self.binning, self.observation_time)
        if self.counts is None and self.exposure is not None:
            self.counts = np.rint(self.rate * self.exposure)

    @property
    def smoothed(self) -> bool:
        """Whether the rate is a fit (header ``SMMETHOD`` other than ``NONE``)."""
        return str(self.header.get("SMMETHOD", "NONE")).strip().upper() != "NONE"

    @property
    def predicted(self) -> np.ndarray:
        """Counts the model predicts for its own runs: rate x exposure per bin."""
        return self.rate * self.exposure

    @property
    def observation_time(self) -> float:
        return float(self.header["OBSTIME"])

    @property
    def zenith_lo(self) -> float:
        return float(self.header["ZEN_LO"])

    @property
    def zenith_hi(self) -> float:
        return float(self.header["ZEN_HI"])


class ModelKind:
    """Base class of model kinds; subclasses set the class attributes and the marked methods."""

    #: HDU_CLASS of the HDU index (``bkg_2d``) and key of the registry.
    tag: ClassVar[str]
    #: ``HDUCLAS4`` of its HDU (``BKG_2D``).
    hdu_class: ClassVar[str]
    #: Axes of the binning, energy first.
    dims: ClassVar[tuple[str, ...]]
    #: Two axes plotting draws as an image.
    image_dims: ClassVar[tuple[str, str]]
    #: EVENTS columns :meth:`count` needs beyond ``ENERGY``, ``RA`` and ``DEC`` (in ``columns``).
    event_columns: tuple[str, ...] = ()

    def binning(self, config) -> Binning:
        """The kind's axes from a :class:`bkgdask.config.BinningConfig` (subclass)."""
        raise NotImplementedError

    def solid_angles_sr(self, binning: Binning) -> np.ndarray:
        """Solid angle of each spatial bin, sr, shape ``binning.shape[1:]`` (subclass)."""
        raise NotImplementedError

    def count(self, events, binning: Binning, compiled: bool | None) -> np.ndarray:
        """Counts of one run's events (int64, ``binning.shape``) (subclass)."""
        raise NotImplementedError

    def to_hdu(self, total: xr.Dataset, rate: np.ndarray, build_columns: bool = True):
        """The GADF HDU (a :class:`~bkgdask.io.fitswrite.BinTable`) of a total and its rate.

        With or without the build columns (subclass).
        """
        raise NotImplementedError

    def from_hdu(self, name: str, header, data) -> Model:
        """A model from its HDU's header (a mapping) and rows (subclass).

        ``data`` is a structured array, the written HDU's
        (:attr:`bkgdask.io.fitswrite.BinTable.data`) or astropy's reading of a
        file: columns by name, the row axis first, names in ``data.dtype.names``.
        """
        raise NotImplementedError

    def to_gammapy(self, model: Model):
        """The gammapy IRF object of a model (subclass)."""
        raise NotImplementedError

    def sky_samples(
        self, pointing: RunPointing, binning: Binning, n_sub: int = 1, where=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sky positions (deg) of equal-solid-angle sub-samples of the spatial bins (subclass).

        The map from the kind's spatial coordinates to the sky that
        :meth:`excluded_fraction` integrates over, at each of the kind's epochs
        of the run: one for a frame fixed to the sky; for a frame that turns
        against it, times standing for equal shares of the run's good time.

        Parameters
        ----------
        pointing : RunPointing
            The run.
        binning : Binning
            The kind's bins.
        n_sub : int
            Sub-samples per spatial axis: ``n_sub**2`` per bin and epoch, each
            standing for the same solid angle; with 1, the bin's centre.
        where : numpy.ndarray of bool, optional
            Shape ``binning.shape[1:] + (n_epochs,)``: the (bin, epoch) pairs to sample.

        Returns
        -------
        ra, dec : numpy.ndarray
            Shape ``binning.shape[1:] + (n_epochs, n_sub**2)``, or ``(where.sum(), n_sub**2)``.
        """
        raise NotImplementedError

    def bin_reach_deg(self, binning: Binning) -> np.ndarray:
        """Angle (deg) within which each spatial bin lies around its centre sample (subclass).

        Shape ``binning.shape[1:]``; the centre is :meth:`sky_samples` with ``n_sub=1``.
        """
        raise NotImplementedError

    def excluded_fraction(self, pointing: RunPointing, regions, binning: Binning) -> np.ndarray:
        """Fraction of each spatial bin's solid angle inside ``regions`` over one run.

        Generic: bins whose centre lies farther from every region than the
        bin's reach are out, bins within a circle by their reach are in, at each
        epoch; the others are the mean of the regions' inside test over their
        :meth:`sky_samples` (:func:`rim_subdivisions` per axis,
        :func:`sampled_excluded_fraction`).
        Kinds with exact geometry override it.

        Parameters
        ----------
        pointing : RunPointing
            The run: its pointing and, for frames that turn against the sky,
            its good time and observatory.
        regions : sequence of bkgdask.models.exclusion.Circle or SkyShape
            Exclusion regions.
        binning : Binning
            The kind's bins.

        Returns
        -------
        numpy.ndarray
            Shape ``binning.shape[1:]``, in [0, 1]: the mean over the run's epochs.
        """
        ra, dec = self.sky_samples(pointing, binning)
        n_sub = rim_subdivisions(ra.shape[-2])
        return sampled_excluded_fraction(
            ra[..., 0],
            dec[..., 0],
            self.bin_reach_deg(binning),
            regions,
            lambda where: self.sky_samples(pointing, binning, n_sub, where),
        )

    # -- shared by every kind ------------------------------------------------------------

    def with_model_config(self, model_config) -> ModelKind:
        """The kind as a :class:`bkgdask.config.ModelConfig` sets it up (itself by default)."""
        return self

    def exposure(self, binning: Binning, observation_time_s: float) -> np.ndarray:
        """Exposure of one run: time x energy width x spatial solid angle, s MeV sr."""
        widths = binning.energy_widths_mev()
        solid = np.asarray(self.solid_angles_sr(binning), dtype=np.float64)
        return observation_time_s * np.multiply.outer(widths, solid)

    def chunk_arrays(self, events, binning: Binning, compiled: bool | None = None):
        """One run's ``counts`` and ``exposure`` (s MeV sr) as plain arrays over the kind's axes."""
        return self.count(events, binning, compiled), self.exposure(
            binning, events.observation_time
        )

    def chunk(self, events, binning: Binning, compiled: bool | None = None) -> xr.Dataset:
        """One run's labelled partial: ``counts`` and ``exposure`` over the kind's axes."""
        return labelled(*self.chunk_arrays(events, binning, compiled), binning, {})

    @staticmethod
    def combine(parts: Sequence[xr.Dataset]) -> xr.Dataset:
        """Sum partials bin by bin, with the runs' bookkeeping alongside.

        Returns a Dataset with the same variables and coordinates and the
        attributes of :func:`combined_attrs`.
        """
        if not parts:
            raise ValueError("combine needs at least one partial")
        first = parts[0]
        data = {name: first[name].values.copy() for name in first.data_vars}
        for part in parts[1:]:
            for name, values in data.items():
                if part[name].shape != values.shape:
                    raise ValueError("partials have different binning")
                values += part[name].values
        out = first.copy(data=data)
        out.attrs = combined_attrs([p.attrs for p in parts])
        return out

    def finalize(self, total: xr.Dataset, model=None) -> np.ndarray:
        """Rate = counts / exposure, s-1 MeV-1 sr-1 (0 where no counts).

        ``model`` is the build's :class:`bkgdask.config.ModelConfig` (e.g. its
        ``smoothing``); a kind that smooths returns instead a fitted rate that
        its :meth:`to_hdu` accepts. The histogram estimate ignores it.
        """
        exposure = total["exposure"].values
        if np.any(exposure <= 0):
            raise ValueError("exposure must be positive in every bin")
        return total["counts"].values / exposure


def combined_attrs(attrs: Sequence[dict]) -> dict:
    """The bookkeeping of summed partials from theirs (per-run or already combined).

    ``obs_ids`` (list), ``n_runs``, ``observation_time`` (s), ``n_events``,
    ``zenith_min`` and ``zenith_max`` (deg), the run counters (summed and per
    run in ``run_stats``) and the input attributes of
    :func:`bkgdask.models.inputs.combine_input_attrs`.
    """
    run_attrs = [_run_attrs(a) for a in attrs]
    return {
        "obs_ids": [obs for a in run_attrs for obs in a["obs_ids"]],
        **{key: sum(a[key] for a in run_attrs) for key in ADDITIVE_ATTRS},
        "zenith_min": min(a["zenith_min"] for a in run_attrs),
        "zenith_max": max(a["zenith_max"] for a in run_attrs),
        **{key: sum(a.get(key, 0) for a in run_attrs) for key in RUN_COUNTERS},
        "run_stats": {o: s for a in run_attrs for o, s in a.get("run_stats", {}).items()},
        **combine_input_attrs(attrs),
    }


def _run_attrs(attrs: dict) -> dict:
    """Attributes of a partial in combined form (a single run's become a one-run group)."""
    if "obs_ids" in attrs:
        return attrs
    return {
        "obs_ids": [int(attrs["obs_id"])],
        "observation_time": float(attrs["observation_time"]),
        "n_events": int(attrs["n_events"]),
        "n_runs": 1,
        "zenith_min": float(attrs["zenith"]),
        "zenith_max": float(attrs["zenith"]),
        **{key: int(attrs.get(key, 0)) for key in RUN_COUNTERS},
        "run_stats": {
            int(attrs["obs_id"]): {
                key: int(attrs.get(key, 0)) for key in ("n_events", *RUN_COUNTERS)
            }
        },
    }


def labelled(counts: np.ndarray, exposure: np.ndarray, binning: Binning, attrs: dict):
    """Counts and exposure as a labelled Dataset (coordinates shared per binning)."""
    out = _template(binning).copy(data={"counts": counts, "exposure": exposure})
    out.attrs = dict(attrs)
    return out


def edges_of(total: xr.Dataset, dims: Sequence[str]) -> Binning:
    """The binning of a labelled partial, from its ``<dim>_lo``/``<dim>_hi`` coordinates."""
    return Binning.of(
        **{d: np.append(total[f"{d}_lo"].values, total[f"{d}_hi"].values[-1]) for d in dims}
    )


@functools.lru_cache(maxsize=16)
def _template(binning: Binning) -> xr.Dataset:
    coords = {}
    for axis in binning.axes:
        units = {"units": axis.unit}
        coords[axis.name] = (axis.name, axis.centers, units)
        coords[f"{axis.name}_lo"] = (axis.name, axis.edges[:-1], units)
        coords[f"{axis.name}_hi"] = (axis.name, axis.edges[1:], units)
    dims, shape = binning.dims, binning.shape
    return xr.Dataset(
        {
            "counts": (dims, np.zeros(shape, np.int64), {"units": ""}),
            "exposure": (dims, np.zeros(shape), {"units": "s MeV sr"}),
        },
        coords=coords,
    )
