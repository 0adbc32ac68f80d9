"""Hand-built task graphs: one task per histogram batch and per combine, linear in the runs.

``dask.delayed`` walks every argument (dataclasses field by field) and merges
the graphs of every input at each reduction level; building the tasks
directly keeps planning and submission proportional to the number of tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from dask._task_spec import DataNode, List, Task, TaskRef
from dask.delayed import Delayed

from .tasks import RunBatch, histogram_runs


def histogram_task(key: str, runs: Sequence, kind, binning, compiled: bool, options=None) -> Task:
    """The task histogramming ``runs`` (one or a batch), its arguments passed as data."""
    arguments = (RunBatch(runs), kind, binning, compiled, options)
    return Task(key, histogram_runs, *(DataNode(None, value) for value in arguments))


def combine_layers(
    graph: dict,
    keys: Sequence[str],
    combine: Callable[[Sequence], object],
    split_every: int,
    name: str,
) -> str:
    """Add to ``graph`` a tree of ``combine`` tasks over ``keys``; return the root's key.

    Every combine task takes at most ``split_every`` inputs; levels are added
    until one task remains, keyed ``{name}-{level}-{index}``, the root ``{name}``.
    A single input still passes through one combine task.
    """
    level, layer = 0, list(keys)
    while True:
        level += 1
        groups = [layer[i : i + split_every] for i in range(0, len(layer), split_every)]
        last = len(groups) == 1
        layer = [name if last else f"{name}-{level}-{i}" for i in range(len(groups))]
        for key, group in zip(layer, groups):
            graph[key] = Task(key, combine, List(*(TaskRef(k) for k in group)))
        if last:
            return name


def delayed_of(graph: Mapping, root: str) -> Delayed:
    """The Delayed of ``root`` in a graph of tasks."""
    return Delayed(root, dict(graph))
