"""Tree reduction of per-run partials: the combine step, at most ``split_every`` inputs a task.

* chunk: :func:`bkgdask.engine.tasks.histogram_run`, one task per observation
  (or per batch), returns additive counts and exposure;
* combine: the kind's ``combine`` sums at most ``split_every`` partials;
  partials stay additive, nothing is divided;
* finalize: the kind's ``finalize`` divides, on the client, once per group.

The group's result is the only thing the client receives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dask.delayed import Delayed

from .graph import combine_layers, delayed_of


def tree_reduce(
    parts: Sequence[Delayed],
    combine: Callable[[Sequence], object],
    split_every: int,
    name: str,
) -> Delayed:
    """Reduce delayed partials by a tree of ``combine`` tasks.

    Every combine task takes at most ``split_every`` inputs; levels are
    added until one task remains. A single input still passes through one
    combine task, so every group's result has the same form.

    Parameters
    ----------
    parts : sequence of Delayed
        The chunk results.
    combine : callable
        Takes a list of partials, returns one partial.
    split_every : int
        Fan-in of each combine task, >= 2.
    name : str
        Prefix of the task keys: ``{name}-{level}-{index}``; the root is
        ``{name}``.

    Returns
    -------
    Delayed
        The root of the tree.
    """
    if split_every < 2:
        raise ValueError(f"split_every must be >= 2, got {split_every}")
    if not parts:
        raise ValueError(f"nothing to reduce for {name}")
    graph: dict = {}
    for part in parts:
        graph.update(part.__dask_graph__())
    root = combine_layers(graph, [part.key for part in parts], combine, split_every, name)
    return delayed_of(graph, root)
