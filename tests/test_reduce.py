"""The reduction: fan-in bounded by split_every, tree equals serial, only group results return."""

from __future__ import annotations

import re

import dask
import numpy as np
import pytest
import xarray as xr
from dask.core import get_dependencies
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin
from helpers import raise_if_dask_computes, random_run, small_store

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.engine.build import plan_build
from bkgdask.engine.reduce import tree_reduce
from bkgdask.io.store import DataStore
from bkgdask.models import get_kind
from bkgdask.models.base import labelled
from bkgdask.models.binning import Binning
from bkgdask.sim.store_writer import write_store

BKG_2D = get_kind("bkg_2d")


def _partial(obs_id: int, rng) -> xr.Dataset:
    binning = Binning.of(energy=[0.1, 1, 10, 100], offset=[0, 1, 2])
    counts = rng.integers(0, 100, size=binning.shape)
    exposure = BKG_2D.exposure(binning, rng.uniform(100, 2000))
    attrs = {"obs_id": obs_id, "zenith": rng.uniform(0, 60), "observation_time": 1.0, "n_events": 7}
    return labelled(counts, exposure, binning, attrs)


@pytest.mark.parametrize("n_parts", [1, 2, 7, 8, 9, 64, 100])
@pytest.mark.parametrize("split_every", [2, 3, 8])
def test_tree_equals_serial_and_bounds_fan_in(n_parts, split_every):
    rng = np.random.default_rng(n_parts * 10 + split_every)
    parts = [_partial(i, rng) for i in range(n_parts)]
    with raise_if_dask_computes():
        root = tree_reduce([dask.delayed(p) for p in parts], BKG_2D.combine, split_every, "r")
    graph = dict(root.__dask_graph__())
    combine_keys = [k for k in graph if str(k).startswith("r")]
    assert combine_keys, "at least one combine task"
    for key in combine_keys:
        assert 1 <= len(get_dependencies(graph, key)) <= split_every, key
    tree = root.compute(scheduler="sync")
    serial = parts[0]
    for part in parts[1:]:
        serial = BKG_2D.combine([serial, part])
    serial = BKG_2D.combine([serial]) if n_parts == 1 else serial
    xr.testing.assert_identical(tree["counts"], serial["counts"])
    np.testing.assert_allclose(tree["exposure"], serial["exposure"], rtol=1e-14)
    assert tree.attrs["obs_ids"] == list(range(n_parts))
    assert tree.attrs["n_runs"] == n_parts
    assert tree.attrs["n_events"] == 7 * n_parts


def test_planning_computes_nothing(tmp_path):
    store = DataStore.open(small_store(tmp_path / "store"))
    with raise_if_dask_computes():
        plan = plan_build(store, BuildConfig())
    assert sorted(plan.graphs) == [0, 1, 2]


def test_build_graph_fan_in_and_names(tmp_path):
    runs = [random_run(i, 5.0 * i, 0.0, 50, zenith=25.0, seed=i)[0] for i in range(1, 31)]
    store = DataStore.open(write_store(tmp_path / "store", runs))
    config = BuildConfig().updated({"compute": {"split_every": 4}})
    plan = plan_build(store, config)
    (root,) = plan.graphs.values()
    graph = dict(root.__dask_graph__())
    histogram_keys = {k for k in graph if k.startswith("histogram-")}
    assert histogram_keys == {f"histogram-{i}" for i in range(1, 31)}
    reduce_keys = [k for k in graph if k.startswith("reduce-zen-20-40")]
    assert root.key == "reduce-zen-20-40"
    # 30 runs, fan-in 4: 8 + 2 + 1 combine tasks.
    assert len(reduce_keys) == 11
    for key in reduce_keys:
        assert len(get_dependencies(graph, key)) <= 4


class _RecordWanted(SchedulerPlugin):
    """Records the keys clients ask the scheduler for."""

    def __init__(self):
        self.wanted: set[str] = set()

    def update_graph(self, scheduler, *, keys, **kwargs):
        self.wanted.update(str(k) for k in keys)


def test_client_receives_only_group_results(tmp_path):
    store = small_store(tmp_path / "store")
    plugin = _RecordWanted()
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        cluster.scheduler.add_plugin(plugin)  # the scheduler runs in this process
        config = BuildConfig().updated({"compute": {"progress": False, "split_every": 2}})
        result = bkgdask.build(store, config, client=client)
    assert plugin.wanted == {"reduce-zen-0-20", "reduce-zen-20-40", "reduce-zen-40-90"}
    assert set(result.totals) == {"zen-0-20", "zen-20-40", "zen-40-90"}
    assert result.totals["zen-0-20"].attrs["obs_ids"] == [100, 101]


def test_batched_histogram_tasks_equal_one_task_per_run(tmp_path):
    runs = [
        random_run(i, 7.0 * i % 360, 10.0, 40, zenith=10.0 + i % 50, seed=i)[0]
        for i in range(1, 201)
    ]
    store = DataStore.open(write_store(tmp_path / "store", runs))
    auto = plan_build(store, BuildConfig())
    keys = {
        k for g in auto.graphs.values() for k in dict(g.__dask_graph__()) if k.startswith("hist")
    }
    # 200 runs: 4 runs per task (about 64 tasks), named by their first and last run.
    assert len(keys) == sum(-(-len(group) // 4) for group in auto.runs.values())
    assert all(re.fullmatch(r"histogram-\d+(\.\.\d+)?", k) for k in keys)
    assert sum(1 for k in keys if ".." in k) >= len(keys) - 3
    sync = {"compute": {"scheduler": "sync", "progress": False}}
    batched = bkgdask.build(store, BuildConfig().updated(sync))
    single = bkgdask.build(
        store, BuildConfig().updated({**sync, "compute": {**sync["compute"], "runs_per_task": 1}})
    )
    for label, total in single.totals.items():
        xr.testing.assert_identical(batched.totals[label]["counts"], total["counts"])
        np.testing.assert_allclose(batched.totals[label]["exposure"], total["exposure"], rtol=1e-14)
        assert sorted(batched.totals[label].attrs["obs_ids"]) == sorted(total.attrs["obs_ids"])
