"""Run-wise models interpolated between group models, and each run's coverage by its model.

The reduction is unchanged: one summed partial per group comes back. On the
client every populated group becomes an interpolation node at the mean
``cos(zenith)`` (and mean ``group_by`` column values) of the runs that built
it; a run's model is the group rates (what the kind's ``finalize`` returns)
interpolated linearly in log rate between the two nodes that bracket the
run along each axis, the other axes held at the run's own group:

    log R(run) = log R_home + Σ_axis [log R_axis(run) − log R_home]

so a run at its group's node gets that group's model exactly. Outside the
nodes' range a run gets the end node (clamped, with a warning). Bins where
a bracketing rate is 0 are interpolated linearly. A run's HDU holds its
model's axes and ``BKG`` alone; its header names the group models, whose
HDUs hold the build columns.

Coverage: ``BKG_DZEN`` (deg) and ``BKG_D<COL>`` say how far a run lies
outside the range of the runs that built its model(s), 0 inside.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from ..io.bundle import GROUP_KEYWORD, merged_hdu_index
from ..io.index_table import IndexTable
from .build import BuildResult, _provenance
from .grouping import ZENITH

log = logging.getLogger(__name__)

COVERAGE_PREFIX = "BKG_D"


def coverage_column(column: str) -> str:
    """OBS_INDEX column of a grouping column's coverage: ``BKG_DZEN``, ``BKG_DMUONEFF``."""
    return COVERAGE_PREFIX + ("ZEN" if column == ZENITH else column.upper())


def _node_coordinate(column: str, values: np.ndarray) -> np.ndarray:
    """Interpolation coordinate of a grouping column: cos(zenith), other columns as they are."""
    return np.cos(np.deg2rad(values)) if column == ZENITH else values


@dataclass
class RunwiseResult(BuildResult):
    """A :class:`BuildResult` whose runs get interpolated models and coverage columns.

    Attributes
    ----------
    values : dict of str to numpy.ndarray
        Per grouping column (``zenith`` deg first), every observation's value.
    interpolate : bool
        Give each run its own interpolated model (else the group's, as a plain build).
    """

    values: dict = field(default_factory=dict)
    interpolate: bool = False

    def __post_init__(self):
        self._row = {int(o): i for i, o in enumerate(self.store.obs_ids)}
        self._ranges = {label: self._range(t.attrs["obs_ids"]) for label, t in self.totals.items()}
        self._nodes = {label: self._node(t.attrs["obs_ids"]) for label, t in self.totals.items()}

    def _column_values(self, obs_ids) -> dict[str, np.ndarray]:
        rows = [self._row[int(o)] for o in obs_ids]
        return {c: np.asarray(v, dtype=np.float64)[rows] for c, v in self.values.items()}

    def _range(self, obs_ids) -> dict[str, tuple[float, float]]:
        return {c: (np.nanmin(v), np.nanmax(v)) for c, v in self._column_values(obs_ids).items()}

    def _node(self, obs_ids) -> dict[str, float]:
        cols = self._column_values(obs_ids)
        return {c: float(np.nanmean(_node_coordinate(c, v))) for c, v in cols.items()}

    def run_state(self, obs_id: int) -> dict[str, float]:
        """A run's interpolation coordinates: cos(zenith) and the group_by column values."""
        return {c: float(_node_coordinate(c, v[self._row[obs_id]])) for c, v in self.values.items()}

    def weights(self, obs_id: int) -> dict[str, list[tuple[str, float]]]:
        """Per axis: the (group label, weight) pairs that interpolate run ``obs_id``.

        An axis with a single populated node along it, or a run outside the
        nodes' range, gets its end node with weight 1.
        """
        home = self.assignment[obs_id]
        state = self.run_state(obs_id)
        out = {}
        for k, (column, _, _) in enumerate(home.bounds):
            line = [
                label
                for label, g in self.groups.items()
                if all(g.bounds[j] == home.bounds[j] for j in range(len(home.bounds)) if j != k)
            ]
            out[column] = _bracket(line, [self._nodes[lb][column] for lb in line], state[column])
        return out

    def run_rate(self, obs_id: int, rates: dict):
        """The interpolated rate of one run from the groups' rates.

        Histogram rates (arrays, s-1 MeV-1 sr-1) give an array; smooth rates give an
        :class:`InterpolatedRate` that the kind writes on its node grid as a smooth one.
        """
        home_label = self.assignment[obs_id].label
        axes = list(self.weights(obs_id).values())
        if not isinstance(rates[home_label], np.ndarray):
            return InterpolatedRate(home_label, axes, rates)
        return interpolate_log(home_label, axes, rates)

    def coverage(self) -> IndexTable:
        """Per observation, distance outside the training range of its model(s), 0 inside."""
        columns = {"OBS_ID": self.store.obs_ids}
        for column, values in self.values.items():
            distance = np.zeros(len(self.store.obs_ids))
            for i, obs_id in enumerate(map(int, self.store.obs_ids)):
                lo, hi = self._training_range(obs_id, column)
                value = values[i]
                distance[i] = (value - lo) if value < lo else max(value - hi, 0.0)
            columns[coverage_column(column)] = distance
        return IndexTable(columns)

    def _training_range(self, obs_id: int, column: str) -> tuple[float, float]:
        labels = [self.assignment[obs_id].label]
        if self.interpolate:
            labels += [lb for pairs in self.weights(obs_id).values() for lb, _ in pairs]
        ranges = [self._ranges[lb][column] for lb in labels]
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def run_hdu_name(self, obs_id: int) -> str:
        return f"BKG_RUN_{obs_id}"

    def model_hdus(self) -> dict:
        """Group models, plus with ``interpolate`` one ``BKG_RUN_<obs_id>`` HDU per observation.

        A run's HDU holds its model's axes and ``BKG`` alone; its header names
        the group models it interpolates (:meth:`interpolation_cards`), whose
        HDUs hold the build columns.
        """
        hdus = super().model_hdus()
        if not self.interpolate:
            return hdus
        rates = self.rates
        for obs_id, group in self.assignment.items():
            rate = self.run_rate(obs_id, rates)
            hdu = self.kind.to_hdu(self.totals[group.label], rate, build_columns=False)
            hdu.name = self.run_hdu_name(obs_id)
            hdu.header.update(group.header_cards())
            hdu.header.update(_provenance(self.totals[group.label]))
            hdu.header["OBS_ID"] = (obs_id, "run this model was interpolated for")
            hdu.header[GROUP_KEYWORD] = (group.hdu_name, "model of the run's own group")
            hdu.header.update(self.interpolation_cards(obs_id))
            hdus[f"run-{obs_id}"] = hdu
        return hdus

    def interpolation_cards(self, obs_id: int) -> dict:
        """Header keywords of the group models a run's model interpolates, term by term.

        Term ``k`` (from 1) is the group model HDU ``INTkHDU`` with weight
        ``INTkWGT`` along grouping column ``INTkCOL``: the run's log rate is
        that of its own group (header :data:`~bkgdask.io.bundle.GROUP_KEYWORD`)
        plus, per column, its terms' weighted log rates less its own group's
        (:func:`interpolate_log`); so are its bin averages, from the groups'
        ``BKG_RATE``.
        """
        terms = [(c, lb, w) for c, pairs in self.weights(obs_id).items() for lb, w in pairs]
        cards = {}
        for k, (column, label, weight) in enumerate(terms, start=1):
            cards[f"INT{k}COL"] = (column, f"grouping column of interpolation term {k}")
            cards[f"INT{k}HDU"] = (self.groups[label].hdu_name, f"group model of term {k}")
            cards[f"INT{k}WGT"] = (weight, f"weight of term {k} (log rate)")
        return cards

    def _model_names(self) -> dict[int, str]:
        if self.interpolate:
            return {o: self.run_hdu_name(o) for o in self.assignment}
        return {o: g.hdu_name for o, g in self.assignment.items()}

    def hdu_index(self, bundle_name: str = "bkg-models.fits.gz") -> IndexTable:
        rows = {o: (name, self.kind.tag) for o, name in self._model_names().items()}
        return merged_hdu_index(self.store.hdu_index, self.store.file_paths(), rows, bundle_name)

    def obs_index(self) -> IndexTable:
        """The plain build's OBS_INDEX plus ``BKG_GROUP`` and the coverage columns."""
        table = super().obs_index()
        obs_ids = np.asarray(table["OBS_ID"], dtype=np.int64).tolist()
        groups = [self.assignment[o].hdu_name for o in obs_ids]
        table = table.with_column("BKG_GROUP", np.array(groups, dtype=str))
        if self.interpolate:
            names = self._model_names()
            table = table.with_column("BKG_HDU", np.array([names[o] for o in obs_ids], dtype=str))
        coverage = self.coverage()
        for name in coverage.colnames[1:]:
            table = table.with_column(name, coverage[name])
        return table


def _bracket(labels: list[str], nodes: list[float], value: float) -> list[tuple[str, float]]:
    """Linear weights of the two nodes around ``value`` (clamped to the end nodes)."""
    order = np.argsort(nodes)
    labels, nodes = [labels[i] for i in order], np.asarray(nodes)[order]
    if len(nodes) == 1 or value <= nodes[0] or not np.isfinite(value):
        return [(labels[0], 1.0)]
    if value >= nodes[-1]:
        return [(labels[-1], 1.0)]
    j = int(np.searchsorted(nodes, value, side="right"))
    w = (value - nodes[j - 1]) / (nodes[j] - nodes[j - 1])
    return [(labels[j - 1], 1.0 - w), (labels[j], w)]


def warn_uncovered(result: RunwiseResult, limit: int = 50) -> list[int]:
    """Log a table of the runs outside their model's training range; return their OBS_IDs."""
    coverage = result.coverage()
    columns = coverage.colnames[1:]
    outside = np.any([np.asarray(coverage[c]) != 0 for c in columns], axis=0)
    obs_ids = [int(o) for o in coverage["OBS_ID"][outside]]
    if obs_ids:
        lines = [" ".join(f"{c:>12}" for c in ["OBS_ID", *columns])]
        for i in np.flatnonzero(outside)[:limit]:
            row = coverage.row(i)
            lines.append(
                f"{int(row['OBS_ID']):>12d} " + " ".join(f"{row[c]:>12.4g}" for c in columns)
            )
        log.warning(
            "%d run(s) lie outside the range of the runs that built their model "
            "(distance, 0 inside; columns in deg or the obs-index unit):\n%s",
            len(obs_ids),
            "\n".join(lines),
        )
    return obs_ids


def runwise(result: BuildResult, values: dict, interpolate: bool) -> RunwiseResult:
    """The result with coverage columns and (``interpolate``) run-wise models; warns on coverage."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(BuildResult)}
    out = RunwiseResult(**fields, values=values, interpolate=interpolate)
    warn_uncovered(out)
    return out


def interpolate_log(home: str, axes: list, values: dict) -> np.ndarray:
    """Group values combined in log (linearly where one is 0).

    The home group's value plus, per axis, the weighted neighbours' difference from it.
    """
    used = [values[home]] + [values[lb] for pairs in axes for lb, _ in pairs]
    positive = np.all([v > 0 for v in used], axis=0)

    def combine(transform):
        base = transform(values[home])
        return base + sum(
            sum(w * transform(values[lb]) for lb, w in pairs) - base for pairs in axes
        )

    log_value = combine(lambda v: np.log(np.where(positive, v, 1.0)))
    linear = np.maximum(combine(lambda v: v), 0.0)
    return np.where(positive, np.exp(log_value), linear)


class InterpolatedRate:
    """Smooth group rates interpolated for one run: answers what a smooth rate answers.

    ``rate_at`` and ``bin_average`` interpolate the groups' values in log rate;
    the error is the home group's relative error on the interpolated rate.
    """

    def __init__(self, home: str, axes: list, rates: dict):
        self.home, self.weights, self.rates = home, axes, rates
        self.axes = rates[home].axes

    def _combine(self, method: str, *args, **kwargs) -> np.ndarray:
        labels = {self.home} | {lb for pairs in self.weights for lb, _ in pairs}
        values = {lb: getattr(self.rates[lb], method)(*args, **kwargs) for lb in labels}
        return interpolate_log(self.home, self.weights, values)

    def rate_at(self, *points) -> np.ndarray:
        return self._combine("rate_at", *points)

    def bin_average(self, *edges, **kwargs) -> np.ndarray:
        return self._combine("bin_average", *edges, **kwargs)

    def rate_error(self, *edges, **kwargs) -> np.ndarray:
        home = self.rates[self.home]
        relative = home.rate_error(*edges, **kwargs) / home.bin_average(*edges, **kwargs)
        return relative * self.bin_average(*edges, **kwargs)

    @property
    def parameters(self) -> dict:
        return {
            **self.rates[self.home].parameters,
            "SMINTERP": ("LOG", "group smooth rates interpolated in log rate"),
        }
