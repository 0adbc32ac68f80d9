"""The ``auto`` scheduler: its rule, its one-line choice, explicit choices kept; linear planning."""

from __future__ import annotations

import logging
import subprocess
import sys

import cloudpickle
import dask
import pytest
import xarray as xr
from helpers import OFF, raise_if_dask_computes, small_store

from bkgdask.compute import auto
from bkgdask.compute.auto import Work, choose_scheduler, run_file_bytes
from bkgdask.compute.backends import (
    AutoBackend,
    LocalBackend,
    ProcessesBackend,
    ThreadsBackend,
    make_backend,
)
from bkgdask.compute.config import ComputeConfig
from bkgdask.config import BuildConfig
from bkgdask.engine.build import plan_build
from bkgdask.io.store import DataStore
from bkgdask.models.kernel2d import HAVE_NUMBA
from bkgdask.sim.replicate import write_replicated_index


def _work(core_seconds: float, cores: int) -> Work:
    """Work of about ``core_seconds`` on one core, all in the per-run cost."""
    return Work(round(core_seconds / auto.SECONDS_PER_RUN), 0, cores)


def test_small_work_runs_in_this_process():
    name, reason = choose_scheduler(_work(auto.PROCESSES_MIN_SECONDS / 2, cores=8))
    assert name == "threads"
    assert "core-s" in reason


@pytest.mark.skipif(not auto.can_fork(), reason="needs fork (Linux)")
def test_seconds_of_work_go_to_forked_processes():
    for seconds, cores, free in ((auto.PROCESSES_MIN_SECONDS * 2, 8, 8), (1e4, 2, 2), (10, 2, 1)):
        name, reason = choose_scheduler(Work(round(seconds / auto.SECONDS_PER_RUN), 0, cores, free))
        assert name == "processes", (seconds, cores, free)
        assert "GIL" in reason


def test_large_work_on_many_cores_starts_a_local_cluster():
    name, _ = choose_scheduler(_work(auto.LOCAL_CLUSTER_MIN_SECONDS * 2, cores=8))
    assert name == "local"


def test_without_fork_few_cores_run_threads_whatever_the_work(monkeypatch):
    cores = auto.LOCAL_CLUSTER_MIN_CORES - 1
    monkeypatch.setattr(auto, "can_fork", lambda: False)  # e.g. macOS
    name, _ = choose_scheduler(_work(auto.LOCAL_CLUSTER_MIN_SECONDS * 100, cores=cores))
    assert name == "threads"


def test_a_busy_machine_runs_in_one_thread(monkeypatch):
    small = Work(round(auto.PROCESSES_MIN_SECONDS / 2 / auto.SECONDS_PER_RUN), 0, 8, 1)
    assert choose_scheduler(small)[0] == "sync"  # too little work for forking, fork or not
    monkeypatch.setattr(auto, "can_fork", lambda: False)
    work = Work(round(auto.LOCAL_CLUSTER_MIN_SECONDS * 2 / auto.SECONDS_PER_RUN), 0, 8, 1)
    name, reason = choose_scheduler(work)
    assert name == "sync"
    assert "1 of 8 cores free" in reason


def test_free_cores_are_between_one_and_all(monkeypatch):
    assert 1 <= auto.free_cores(4, sample_s=0.01) <= 4
    idle = iter([(1000, 0), (2000, 1000)])  # every CPU idle during the sample
    monkeypatch.setattr(auto, "_cpu_times", lambda: next(idle))
    cpus = auto.os.cpu_count()
    assert auto.free_cores(cpus, sample_s=0) == cpus


def test_free_cores_leave_out_this_process(monkeypatch):
    """Over 2 s one CPU was busy, all of it this process: every core is free for the build."""
    ticks, cpus = auto.os.sysconf("SC_CLK_TCK"), auto.os.cpu_count()
    span = 2 * ticks * cpus  # all CPUs' ticks in 2 s
    machine = iter([(1000, 0), (1000 + span, span - 2 * ticks)])
    monkeypatch.setattr(auto, "_cpu_times", lambda: next(machine))
    own = iter([(5.0, 0.0), (6.5, 0.5)])  # user, system: 2 s of CPU for this process
    monkeypatch.setattr(auto.os, "times", lambda: auto.os.times_result((*next(own), 0, 0, 0)))
    assert auto.free_cores(cpus, since=auto.CpuReading.now(), sample_s=0) == cpus


def test_free_cores_fall_back_to_the_load_average(monkeypatch):
    def unreadable():
        raise OSError("no /proc/stat")

    monkeypatch.setattr(auto, "_cpu_times", unreadable)
    monkeypatch.setattr(auto.os, "getloadavg", lambda: (1e6, 0.0, 0.0))
    assert auto.free_cores(8, sample_s=0) == 1  # everything busy: still one core


def test_a_configured_address_wins():
    name, reason = choose_scheduler(_work(0.1, cores=8), address="tcp://10.0.0.1:8786")
    assert name == "tcp://10.0.0.1:8786"
    assert "scheduler-address" in reason


def test_estimate_grows_with_bytes_and_runs():
    small, more_bytes = Work(10, 10**6, 2), Work(10, 10**8, 2)
    assert more_bytes.core_seconds > small.core_seconds > Work(1, 10**6, 2).core_seconds


def test_run_file_bytes_counts_a_shared_file_once_per_run(tmp_path):
    store = DataStore.open(small_store(tmp_path / "store"))
    zenith = dict(zip(store.obs_ids.tolist(), store.zenith_deg().tolist()))
    (run,) = store.run_inputs([100], zenith)
    assert run_file_bytes([run, run, run]) == 3 * run_file_bytes([run]) > 0


def test_auto_is_the_default_and_logs_its_choice(tmp_path, caplog):
    assert ComputeConfig().scheduler == "auto"
    backend = make_backend(ComputeConfig(progress=False))
    assert isinstance(backend, AutoBackend)
    with caplog.at_level(logging.INFO, logger="bkgdask"), backend:
        backend.prepare(3)
        chosen = backend.chosen.name
        assert chosen in ("sync", "threads")  # sync when the machine is busy
        (total,) = backend.compute([dask.delayed(sum)([1, 2])])
    assert total == 3
    lines = [r.getMessage() for r in caplog.records if "scheduler auto" in r.getMessage()]
    assert len(lines) == 1 and f"-> {chosen}:" in lines[0]


def test_explicit_scheduler_is_respected():
    assert isinstance(make_backend(ComputeConfig(scheduler="local")), LocalBackend)
    assert type(make_backend(ComputeConfig(scheduler="threads"))) is ThreadsBackend
    assert type(make_backend(ComputeConfig(scheduler="processes"))) is ProcessesBackend


def test_cli_prints_the_choice_line(tmp_path):
    store = small_store(tmp_path / "store")
    out = tmp_path / "bkg.fits.gz"
    command = ["build", str(store), "-o", str(out), "--select", OFF, "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-m", "bkgdask.cli", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    choice = [line for line in proc.stderr.splitlines() if "scheduler auto ->" in line]
    assert len(choice) == 1 and choice[0].startswith("INFO "), proc.stderr
    assert "Dask dashboard" not in proc.stderr  # 4 runs: no cluster started
    assert out.is_file()


def _plan(index_dir):
    store = DataStore.open(index_dir)
    with raise_if_dask_computes():
        plan = plan_build(store, BuildConfig())
    graphs = [dict(graph.__dask_graph__()) for graph in plan.graphs.values()]
    n_tasks = sum(map(len, graphs))
    return plan, n_tasks, len(cloudpickle.dumps(graphs))


def test_planning_100000_runs_is_linear_and_computes_nothing(tmp_path):
    source = small_store(tmp_path / "store", n=10)
    small_plan, small_tasks, small_bytes = _plan(
        write_replicated_index(source, tmp_path / "index-10k", 10_000)
    )
    plan, n_tasks, n_bytes = _plan(write_replicated_index(source, tmp_path / "index-100k", 100_000))
    assert small_plan.n_runs == 10_000 and plan.n_runs == 100_000
    assert n_tasks <= 11 * small_tasks  # tasks ~ linear in the runs (10x runs)
    assert n_bytes <= 11 * small_bytes  # what is sent to the scheduler: linear too
    # (planning time is measured by benchmarks/planning.py, not asserted here)
    assert {run.events_file for runs in plan.runs.values() for run in runs} <= {
        str(p) for p in (source / "data").iterdir()
    }


@pytest.mark.parametrize("bad", [0, -1])
def test_replicated_index_needs_runs(tmp_path, bad):
    with pytest.raises(ValueError, match="n_obs"):
        write_replicated_index(small_store(tmp_path / "store", n=10), tmp_path / "i", bad)


THREADS_COMPILE = """
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from bkgdask.models.kernel2d import count_events
ones = np.ones(5)
args = (ones, ones, ones, 1.0, 1.0, np.array([0.1, 10.0]), np.array([0.0, 3.0]))
with ThreadPoolExecutor(4) as pool:
    counts = list(pool.map(lambda _: count_events(*args, compiled=True), range(4)))
print(sum(int(c.sum()) for c in counts))
"""


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_threads_load_the_compiled_loop_once():
    """``auto`` runs large builds on threads: their first runs compile the loop together."""
    proc = subprocess.run(
        [sys.executable, "-c", THREADS_COMPILE], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "20"


def test_processes_fork_before_any_thread_of_ours(tmp_path, monkeypatch):
    """Workers fork before the progress bar's thread: no lock of ours is held in a child."""
    import threading

    import bkgdask
    from bkgdask.compute import backends

    store = small_store(tmp_path / "store")
    fork = backends.ProcessesBackend._fork_workers
    threads_at_fork = []

    def counting(backend):
        threads_at_fork.append(threading.active_count())
        fork(backend)

    monkeypatch.setattr(backends.ProcessesBackend, "_fork_workers", counting)
    config = BuildConfig().updated(
        {"selection": OFF, "compute": {"scheduler": "processes", "n_workers": 2, "progress": True}}
    )
    before = threading.active_count()
    processes = bkgdask.build(store, config)
    reference = bkgdask.build(store, config.updated({"compute": {"scheduler": "sync"}}))
    assert threads_at_fork == [before]
    for label, total in reference.totals.items():
        xr.testing.assert_identical(processes.totals[label], total)


def test_a_killed_forked_worker_is_one_clear_error(tmp_path, monkeypatch):
    """A worker process killed mid-build: one SchedulerError saying what happened."""
    import os
    import signal

    import bkgdask
    from bkgdask.engine import graph
    from bkgdask.errors import SchedulerError

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(graph, "histogram_runs", killed)  # the forked workers inherit it
    config = BuildConfig().updated(
        {"selection": OFF, "compute": {"scheduler": "processes", "n_workers": 2, "progress": False}}
    )
    with pytest.raises(SchedulerError, match="worker process stopped abruptly"):
        bkgdask.build(small_store(tmp_path / "store"), config)
