"""Monitoring and failures: the live dashboard, performance reports, a worker killed mid-build."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import xarray as xr
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.sim.simulate import SimulationConfig, simulate_store

QUIET = {"compute": {"progress": False, "runs_per_task": 1}}  # many small tasks to interrupt


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """800 simulated runs: a build of a few seconds on two workers."""
    path = tmp_path_factory.mktemp("monitoring") / "store"
    return simulate_store(path, SimulationConfig(n_obs=800, seed=11), scheduler="threads")


@pytest.fixture(scope="module")
def reference(store):
    return bkgdask.build(
        store, BuildConfig().updated({"compute": {"scheduler": "sync", "progress": False}})
    )


class _Finished(SchedulerPlugin):
    """Counts tasks of a key prefix that finished (reached memory) on the scheduler."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.count = 0

    def transition(self, key, start, finish, *args, **kwargs):
        if finish == "memory" and str(key).startswith(self.prefix):
            self.count += 1


@pytest.mark.slow
def test_worker_killed_mid_build_changes_nothing(store, reference):
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        finished = _Finished("histogram-")
        cluster.scheduler.add_plugin(finished)  # the scheduler runs in this process
        outcome = {}
        thread = threading.Thread(
            target=lambda: outcome.update(
                result=bkgdask.build(store, BuildConfig().updated(QUIET), client=client)
            )
        )
        thread.start()
        deadline = time.monotonic() + 60
        while finished.count < 200:
            assert time.monotonic() < deadline, "build did not progress"
            time.sleep(0.02)
        pids = client.run(os.getpid)
        _, victim_pid = sorted(pids.items())[0]
        os.kill(victim_pid, signal.SIGKILL)
        thread.join(timeout=120)
        assert not thread.is_alive()
        assert finished.count > 800, "tasks of the killed worker ran again"
        still = client.run(os.getpid)
        assert victim_pid not in still.values(), "the worker process was really killed"
    result = outcome["result"]
    for label, total in reference.totals.items():
        xr.testing.assert_identical(result.totals[label]["counts"], total["counts"])
        xr.testing.assert_allclose(result.totals[label]["exposure"], total["exposure"], rtol=1e-14)
        assert sorted(result.totals[label].attrs["obs_ids"]) == sorted(total.attrs["obs_ids"])


BOKEH_STATE = """(() => {
  const docs = window.Bokeh ? Bokeh.documents : [];
  const names = new Set(), titles = new Set();
  for (const doc of docs) for (const m of doc._all_models.values()) {
    if (m.type === 'ColumnDataSource' && m.data && m.data.name)
      for (const n of m.data.name) names.add(String(n));
    if (typeof m.text === 'string') titles.add(m.text);
  }
  const canvases = [];
  const walk = root => { for (const e of root.querySelectorAll('*')) {
      if (e.tagName === 'CANVAS' && e.width > 50 && e.height > 50) canvases.push(e);
      if (e.shadowRoot) walk(e.shadowRoot); } };
  walk(document);
  return {docs: docs.length, names: [...names], titles: [...titles], canvases: canvases.length};
})()"""


@pytest.mark.browser
def test_dashboard_shows_the_build(store, artifacts):
    from browser import Chromium

    stop = threading.Event()
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as client,
    ):

        def builds():
            while not stop.is_set():
                bkgdask.build(store, BuildConfig().updated(QUIET), client=client)

        thread = threading.Thread(target=builds)
        thread.start()
        try:
            assert client.dashboard_link.startswith("http://127.0.0.1:")
            with Chromium() as page:
                page.navigate(client.dashboard_link)
                state = page.wait_for(
                    f"(s => s.names.includes('histogram') && s.names.includes('reduce-zen') && "
                    f"s.titles.some(t => t.startsWith('Progress')) ? s : null)({BOKEH_STATE})",
                    timeout=60,
                )
                page.screenshot(artifacts / "dashboard-status.png")
        finally:
            stop.set()
            thread.join(timeout=120)
    assert "Task Stream" in state["titles"]
    assert state["canvases"] >= 4
    assert (artifacts / "dashboard-status.png").stat().st_size > 20_000


@pytest.mark.browser
def test_performance_report_opens_offline(store, tmp_path, artifacts):
    from browser import Chromium

    report = tmp_path / "report.html"
    config = BuildConfig().updated(
        {
            "compute": {
                "scheduler": "local",
                "n_workers": 2,
                "progress": False,
                "dashboard_address": "127.0.0.1:0",
            }
        }
    )
    bkgdask.build(store, config, report=report)
    html = report.read_text()
    assert "<script" in html and "cdn.bokeh.org" not in html  # resources inline
    with Chromium(offline=True) as page:
        page.navigate(report.as_uri())
        state = page.wait_for(
            f"(s => s.docs > 0 && s.canvases > 0 ? s : null)({BOKEH_STATE})", timeout=60
        )
        page.screenshot(artifacts / "performance-report.png")
    assert "Task Stream" in " ".join(state["titles"])
    assert any(name.startswith("histogram") for name in state["names"])
