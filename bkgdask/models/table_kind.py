"""GADF background tables (BKG_2D, BKG_3D): histogram or P-spline rate, the HDU out and back in.

With ``model.smoothing: pspline`` (the default) a group's rate is a Poisson
P-spline fit and ``BKG`` holds its point values on a node grid on which
gammapy's interpolation between bin centres reproduces the fit's bin
integrals (:mod:`.gadf_nodes`); with ``none`` it is the histogram, counts /
exposure, on the build's bins. ``BKG`` is float32, the columns below float64.
Either way a group model's HDU also carries, on the build's bins
(``CNT_<axis>_LO/HI`` columns), the ``COUNTS`` and ``EXPOSURE`` the model was
made from, the model's bin-average rate ``BKG_RATE`` and its 1-sigma error
``BKG_ERR``; ``SMMETHOD`` and the ``SM*`` keywords say how. A run-wise
model's HDU holds its axes and ``BKG`` alone: its build columns are those of
the group models it was interpolated from, which its header names.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import SelectionError
from ..io.fitswrite import BinTable
from ..io.gadf import BKG_COLUMN_UNIT
from .base import RATE_UNIT, Model, ModelKind, edges_of
from .binning import Binning
from .gadf_table import Column, bkg_table_hdu, edge_columns, row_edges, table_column

#: Columns on the build's bins: (name, unit), each in the axis order of ``BKG``.
BUILD_COLUMNS = (
    ("COUNTS", ""),
    ("EXPOSURE", "s MeV sr"),
    ("BKG_RATE", BKG_COLUMN_UNIT),
    ("BKG_ERR", BKG_COLUMN_UNIT),
)

#: Header keywords of a histogram model.
HISTOGRAM_KEYWORDS = {"SMMETHOD": ("NONE", "histogram: counts / exposure")}


def raw_rate(counts, exposure) -> tuple[np.ndarray, np.ndarray]:
    """The histogram estimate: counts / exposure and its Poisson error sqrt(counts) / exposure.

    Both are 0 where a bin holds no counts, NaN where it has no exposure.
    """
    counts = np.asarray(counts, dtype=np.float64)
    exposure = np.asarray(exposure, dtype=np.float64)
    exposed = exposure > 0
    rate = np.divide(counts, exposure, out=np.full(counts.shape, np.nan), where=exposed)
    error = np.divide(np.sqrt(counts), exposure, out=np.full(counts.shape, np.nan), where=exposed)
    return rate, error


class TableKind(ModelKind):
    """A kind written as a GADF background table, its rate a histogram or a P-spline fit.

    Subclasses set :attr:`columns` and :attr:`gammapy_class` and give the fit
    (:meth:`fit`) and its node grid (:meth:`node_table`).
    """

    #: Per axis, in ``dims`` order: GADF column prefix and unit (``("ENERG", "TeV")``).
    columns: ClassVar[tuple[tuple[str, str], ...]]
    #: The ``gammapy.irf`` class that reads the table (``Background2D``).
    gammapy_class: ClassVar[str]

    def fit(self, total):
        """The P-spline fit of a group's summed counts and exposure (subclass)."""
        raise NotImplementedError

    def node_table(self, rate) -> tuple:
        """Edges of every axis and the point rates of a fit's node grid (subclass)."""
        raise NotImplementedError

    def table_hdu(self, edges, rate, extra=()) -> BinTable:
        """The GADF HDU of a rate on ``edges`` (one array per axis), with ``extra`` columns."""
        axes = [(name, e, unit) for (name, unit), e in zip(self.columns, edges)]
        return bkg_table_hdu(axes, rate, self.hdu_class, extra)

    def of_header(self, header) -> TableKind:
        """The kind a model HDU's header describes (itself by default)."""
        return self

    def gammapy_options(self) -> dict:
        """Further arguments of the gammapy class (none by default)."""
        return {}

    def finalize(self, total, model=None):
        """Histogram rate (``model`` None or ``smoothing: none``), or the fit of :meth:`fit`.

        Raises
        ------
        SelectionError
            If a smoothed group holds no counts inside the model's bins.
        """
        if getattr(model, "smoothing", "none") != "pspline":
            return self.histogram_rate(total)
        if not total["counts"].values.sum() > 0:
            raise SelectionError(
                "a group has no counts inside the model bins: nothing to smooth "
                "(widen the bins or use smoothing: none)"
            )
        return self.fit(total)

    def histogram_rate(self, total) -> np.ndarray:
        """The histogram estimate of a group, counts / exposure (s-1 MeV-1 sr-1)."""
        return super().finalize(total)

    def to_hdu(self, total, rate, build_columns: bool = True) -> BinTable:
        """BKG on the node grid of a smooth rate, or on the build's bins of a histogram.

        Parameters
        ----------
        total : xarray.Dataset
            The group's summed counts and exposure (s MeV sr) on the build's bins.
        rate : numpy.ndarray or smooth rate
            The histogram rate (s-1 MeV-1 sr-1) on those bins, or a smooth rate.
        build_columns : bool
            Add :meth:`build_columns` (a group model); without them the HDU holds
            the axes and ``BKG`` alone (a run-wise model).
        """
        binning = edges_of(total, self.dims)
        edges = [binning[d] for d in self.dims]
        smooth = not isinstance(rate, np.ndarray)
        table = self.node_table(rate) if smooth else (*edges, rate)
        extra = self.build_columns(edges, total, rate) if build_columns else ()
        hdu = self.table_hdu(table[:-1], table[-1], extra=extra)
        hdu.header.update(rate.parameters if smooth else HISTOGRAM_KEYWORDS)
        return hdu

    def build_columns(self, edges, total, rate) -> list[Column]:
        """Edge columns ``CNT_*`` of the build's bins and the :data:`BUILD_COLUMNS` on them.

        Parameters
        ----------
        edges : sequence of numpy.ndarray
            The build's bin edges of every axis (TeV, deg).
        total : xarray.Dataset
            Counts and exposure (s MeV sr) on those bins.
        rate : numpy.ndarray or smooth rate
            The histogram rate (s-1 MeV-1 sr-1) on those bins, or a smooth rate
            whose bin averages and errors are written.
        """
        counts, exposure = total["counts"].values, total["exposure"].values
        if isinstance(rate, np.ndarray):
            grids = (counts, exposure, rate, raw_rate(counts, exposure)[1])
        else:
            grids = (counts, exposure, rate.bin_average(), rate.rate_error())
        columns = []
        for (name, unit), e in zip(self.columns, edges):
            columns += edge_columns(f"CNT_{name}", e, unit)
        for (name, unit), grid in zip(BUILD_COLUMNS, grids):
            columns.append(table_column(name, np.asarray(grid).T, unit))
        return columns

    def from_hdu(self, name: str, header, data) -> Model:
        """The model on the build's bins (``CNT_*`` columns when present), ``BKG`` aside."""
        kind = self.of_header(header)
        table_binning = self._binning(data, "")
        # GADF stores BKG with the axes reversed; bkgdask works in (energy, ...).
        rate = np.asarray(data["BKG"][0], dtype=np.float64).T
        if f"CNT_{self.columns[0][0]}_LO" not in data.dtype.names:
            return Model(name, kind, table_binning, rate, dict(header))
        binning = self._binning(data, "CNT_")
        counts, exposure, build_rate, error = (
            np.asarray(data[column][0], dtype=np.float64).T for column, _ in BUILD_COLUMNS
        )
        table = (table_binning, rate)
        return Model(
            name, kind, binning, build_rate, dict(header), [], counts, exposure, error, table
        )

    def _binning(self, data, prefix: str) -> Binning:
        return Binning.of(
            **{
                dim: row_edges(data, f"{prefix}{name}_LO", f"{prefix}{name}_HI")
                for dim, (name, _) in zip(self.dims, self.columns)
            }
        )

    def to_gammapy(self, model: Model):
        """The gammapy IRF in s-1 MeV-1 sr-1 (the HDU's ``BKG`` table when there is one)."""
        import astropy.units as u
        import gammapy.irf
        from gammapy.maps import MapAxis

        binning, rate = model.nodes or (model.binning, model.rate)
        axes = [MapAxis.from_energy_edges(binning["energy"] * u.TeV)]
        axes += [MapAxis.from_edges(binning[d] * u.deg, name=d) for d in self.dims[1:]]
        irf = getattr(gammapy.irf, self.gammapy_class)
        return irf(axes=axes, data=rate, unit=RATE_UNIT, **model.kind.gammapy_options())
