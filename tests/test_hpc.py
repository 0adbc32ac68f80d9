"""Batch clusters: deploy files checked; real builds on a single-node SLURM and PBS front end."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dask
import dask_jobqueue  # noqa: F401 - its config defaults must be in place before any test
import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import ROOT
from helpers import OFF

import bkgdask
from bkgdask.compute.backends import backend_class
from bkgdask.compute.config import ComputeConfig
from bkgdask.compute.hpc import load_dask_config, parse_adapt
from bkgdask.config import BuildConfig
from bkgdask.errors import BkgdaskError

DEPLOY = ROOT / "deploy"


def job_script(scheduler: str, section: str | None = None) -> str:
    config = ComputeConfig(scheduler=scheduler, cluster_config=section)
    return backend_class(scheduler)(config).job_script()


@pytest.fixture
def dask_config():
    """Restore Dask's global configuration after the test."""
    saved = copy.deepcopy(dask.config.config)
    yield
    dask.config.config.clear()
    dask.config.config.update(saved)


EXPECTED_DIRECTIVES = {
    "slurm": [
        "#SBATCH -p short",
        "#SBATCH -A cta",
        "#SBATCH --mem=24G",
        "--constraint=cpu",
        "--nworkers 8",
        "--interface ib0",
        "source ~/venvs/bkgdask/bin/activate",
    ],
    "pbs": ["#PBS -q workq", "#PBS -A hess", "select=1:ncpus=8:mem=24GB", "walltime=01:00:00"],
    "sge": ["#$ -q all.q", "#$ -P veritas", "h_vmem=4G", "h_rt=01:00:00"],
    "htcondor": ["RequestCpus", '+JobFlavour = "longlunch"', "AlmaLinux9"],
    "lsf": ["#BSUB -q normal", '#BSUB -P "magic"', "#BSUB -W 01:00"],
}


@pytest.mark.parametrize("scheduler", sorted(EXPECTED_DIRECTIVES))
def test_site_examples_give_the_expected_job_scripts(dask_config, scheduler):
    load_dask_config(DEPLOY / "jobqueue.yaml")
    script = job_script(scheduler, f"{scheduler}-site")
    for directive in EXPECTED_DIRECTIVES[scheduler]:
        assert directive in script, (directive, script)


@pytest.mark.parametrize(("scheduler", "prefix"), [("slurm", "#SBATCH"), ("pbs", "#PBS")])
def test_single_node_sections(dask_config, scheduler, prefix):
    load_dask_config(DEPLOY / "slurm" / "jobqueue.yaml")
    script = job_script(scheduler, f"single-node-{scheduler}")
    assert f"{prefix} -q debug" in script or f"{prefix} -p debug" in script
    assert "--interface lo" in script and "--nthreads 1" in script


def test_job_script_command_and_errors(dask_config, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "bkgdask.cli",
        "cluster",
        "job-script",
        "--scheduler",
        "slurm",
        "--dask-config",
        str(DEPLOY / "jobqueue.yaml"),
        "--cluster-config",
        "slurm-site",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#!/usr/bin/env bash") and "#SBATCH -p short" in proc.stdout
    assert not (tmp_path / "slurm-site").exists()
    with pytest.raises(BkgdaskError, match=r"jobqueue\.nowhere"):
        job_script("slurm", "nowhere")
    with pytest.raises(BkgdaskError, match="cores and memory"):
        job_script("slurm")
    assert parse_adapt("2:10") == (2, 10)
    for bad in ("10:2", "x", "3"):
        with pytest.raises(ValueError, match="MIN:MAX"):
            parse_adapt(bad)
    with pytest.raises(BkgdaskError, match="not both"):
        BuildConfig().updated({"compute": {"jobs": 2, "adapt": "1:4"}})


def test_container_recipes():
    dockerfile = (DEPLOY / "container" / "Dockerfile").read_text().splitlines()
    instructions = [line.split()[0] for line in dockerfile if line and not line.startswith("#")]
    assert instructions[0] == "FROM" and "RUN" in instructions and "ENTRYPOINT" in instructions
    for line in dockerfile:
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert any("pip install ." in line for line in dockerfile)
    definition = (DEPLOY / "container" / "bkgdask.def").read_text()
    header = dict(
        line.split(":", 1)
        for line in definition.splitlines()[:10]
        if ":" in line and line[0] != "#"
    )
    assert header["Bootstrap"].strip() == "docker"
    sections = [line.split()[0] for line in definition.splitlines() if line.startswith("%")]
    assert sections == ["%files", "%post", "%environment", "%runscript", "%labels"]
    for line in definition.split("%files")[1].split("%post")[0].strip().splitlines():
        assert (ROOT / line.split()[0]).exists()


def test_kubernetes_operator_manifest():
    doc = yaml.safe_load((DEPLOY / "kubernetes" / "daskcluster.yaml").read_text())
    assert doc["apiVersion"] == "kubernetes.dask.org/v1" and doc["kind"] == "DaskCluster"
    worker = doc["spec"]["worker"]["spec"]["containers"][0]
    scheduler = doc["spec"]["scheduler"]["spec"]["containers"][0]
    assert worker["image"] == scheduler["image"]
    assert worker["args"][0] == "dask-worker" and "--nthreads" in worker["args"]
    assert scheduler["args"] == ["dask-scheduler"]
    ports = {p["containerPort"] for p in scheduler["ports"]}
    assert ports == {8786, 8787}
    mounts = worker["volumeMounts"][0]
    assert mounts["readOnly"] is True  # never write into the data store


def test_slurm_conf_recipe(tmp_path):
    out = subprocess.run(
        [str(DEPLOY / "slurm" / "make-conf"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    conf = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and line[0] != "#")
    assert conf["ProctrackType"] == "proctrack/linuxproc" and conf["TaskPlugin"] == "task/none"
    node = dict(kv.split("=") for kv in ("NodeName=" + conf["NodeName"]).split())
    assert node["NodeAddr"] == "127.0.0.1" and int(node["CPUs"]) == len(os.sched_getaffinity(0))
    assert 0 < int(node["RealMemory"])
    assert conf["SlurmctldPidFile"].startswith(str(tmp_path))


# -- a real single-node SLURM -------------------------------------------------


@pytest.fixture(scope="module")
def slurm():
    """Start the single-node SLURM of deploy/slurm, stop it (by PID) afterwards."""
    if shutil.which("slurmctld") is None:
        pytest.fail("slurm tests need Debian's slurmctld, slurmd, munge (see .ci/run)")
    state = Path(os.environ.get("BKGDASK_SLURM_DIR", "/tmp/bkgdask-slurm"))
    proc = subprocess.run(
        [str(DEPLOY / "slurm" / "start")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    os.environ["SLURM_CONF"] = str(state / "slurm.conf")
    yield state
    subprocess.run([str(DEPLOY / "slurm" / "stop")], check=True, timeout=60)
    for name in ("slurmctld", "slurmd"):
        assert not (state / f"{name}.pid").exists()


@pytest.fixture(scope="module")
def local_models(hess_dir):
    config = BuildConfig().updated(
        {"selection": OFF, "compute": {"scheduler": "sync", "progress": False}}
    )
    return bkgdask.build(hess_dir, config)


@pytest.mark.slurm
@pytest.mark.requires_data
@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_build_on_batch_system_equals_local(slurm, local_models, hess_dir, tmp_path, scheduler):
    out = tmp_path / f"{scheduler}.fits.gz"
    cmd = [
        sys.executable,
        "-m",
        "bkgdask.cli",
        "build",
        str(hess_dir),
        "-o",
        str(out),
        "--select",
        OFF,
        "--scheduler",
        scheduler,
        "--jobs",
        "2",
        "--no-progress",
        "--dask-config",
        str(DEPLOY / "slurm" / "jobqueue.yaml"),
        "--cluster-config",
        f"single-node-{scheduler}",
    ]
    work = tmp_path / "cwd"
    work.mkdir()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "45 runs" in proc.stderr
    # Job logs go beside the bundle, never into the current folder.
    assert list(work.iterdir()) == []
    assert (tmp_path / f"{out.name}.jobs").is_dir()
    from bkgdask.models import read_models

    models, _ = read_models(out)
    local, _ = read_models(local_models.write(tmp_path / "local.fits.gz"))
    for label, total in local_models.totals.items():
        name = local_models.groups[label].hdu_name
        model = models[name]
        np.testing.assert_array_equal(model.counts, total["counts"].values)
        np.testing.assert_allclose(model.exposure, total["exposure"].values, rtol=1e-12)
        np.testing.assert_allclose(model.rate, local[name].rate, rtol=1e-9, atol=0)
        assert sorted(model.obs_ids) == sorted(total.attrs["obs_ids"])
    # The batch jobs are gone once the build is over.
    queue = subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout
    assert queue.strip() == ""


@pytest.mark.slurm
@pytest.mark.requires_data
def test_api_build_on_slurm(slurm, local_models, hess_dir, dask_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_dask_config(DEPLOY / "slurm" / "jobqueue.yaml")
    config = BuildConfig().updated(
        {
            "selection": OFF,
            "compute": {
                "scheduler": "slurm",
                "jobs": 2,
                "cluster_config": "single-node-slurm",
                "progress": False,
            },
        }
    )
    result = bkgdask.build(hess_dir, config)
    assert list(tmp_path.iterdir()) == []  # no job log in the current folder
    for label, total in result.totals.items():
        xr.testing.assert_identical(total["counts"], local_models.totals[label]["counts"])
