"""HPC batch systems through dask-jobqueue: SLURM, PBS, SGE, HTCondor, LSF.

Settings come from Dask's configuration, ``jobqueue.<name>`` sections of a
``jobqueue.yaml`` (``~/.config/dask/``, ``$DASK_CONFIG`` or ``--dask-config
FILE``). A named site section (``--cluster-config NAME``) needs to hold only
what differs from the batch system's defaults::

    jobqueue:
      my-site:
        queue: short
        account: cta
        cores: 4
        memory: 16GiB
"""

from __future__ import annotations

import logging
import re
import shlex
import tempfile
from pathlib import Path

import dask
import yaml

from ..errors import ConfigError, SchedulerError

log = logging.getLogger(__name__)


def load_dask_config(path: str | Path) -> None:
    """Merge a YAML file (e.g. a ``jobqueue.yaml``) into Dask's configuration."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read Dask config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Dask config {path}: expected a mapping at the top level")
    dask.config.update(dask.config.config, data, priority="new")


def parse_adapt(text: str) -> tuple[int, int]:
    """``'MIN:MAX'`` -> (min, max) jobs."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text or "")
    if not match or int(match.group(1)) > int(match.group(2)):
        raise ValueError(f"adapt takes MIN:MAX jobs with MIN <= MAX, e.g. 1:20, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def _section(scheduler: str, cluster_config: str | None) -> str:
    """The config section to use; a named one is completed from the scheduler's defaults."""
    import dask_jobqueue  # noqa: F401 - registers the jobqueue defaults in dask.config

    if not cluster_config or cluster_config == scheduler:
        return scheduler
    site = dask.config.get(f"jobqueue.{cluster_config}", default=None)
    if site is None:
        raise ConfigError(
            f"no Dask config section jobqueue.{cluster_config} "
            "(give it in jobqueue.yaml or with --dask-config FILE)"
        )
    defaults = dask.config.get(f"jobqueue.{scheduler}")
    dask.config.set({f"jobqueue.{cluster_config}": {**defaults, **site}})
    return cluster_config


def make_cluster(
    scheduler: str,
    cluster_class: str,
    cluster_config: str | None = None,
    log_directory: str | None = None,
    **kwargs,
):
    """A dask-jobqueue cluster (no jobs submitted yet).

    Parameters
    ----------
    scheduler : str
        ``slurm``, ``pbs``, ``sge``, ``htcondor`` or ``lsf`` (its defaults section).
    cluster_class : str
        The dask-jobqueue class, e.g. ``SLURMCluster``.
    cluster_config : str, optional
        Name of a ``jobqueue.<name>`` config section.
    log_directory : str, optional
        Folder for the jobs' output files (never the current folder: a
        temporary one when not given).
    **kwargs
        Passed to the cluster class, overriding the config.
    """
    import dask_jobqueue

    section = _section(scheduler, cluster_config)
    if log_directory is None and not dask.config.get(f"jobqueue.{section}.log-directory", None):
        log_directory = tempfile.mkdtemp(prefix="bkgdask-jobs-")
    if log_directory is not None:
        Path(log_directory).mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("log_directory", str(log_directory))
    cls = getattr(dask_jobqueue, cluster_class)
    folder = kwargs.get("log_directory") or dask.config.get(f"jobqueue.{section}.log-directory")
    kwargs.setdefault("job_cls", _submitting_in(cls.job_cls, folder))
    try:
        return cls(config_name=section, **kwargs)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ConfigError(f"{scheduler} cluster from jobqueue.{section}: {exc}") from None


def _submitting_in(job_cls, folder: str):
    """``job_cls``, submitting its jobs from ``folder``.

    Batch systems that ignore the script's output directives (e.g. the PBS
    front end of SLURM) then write the job logs there, not in the current folder.
    """

    class Job(job_cls):
        async def _submit_job(self, script_filename):
            command = [*shlex.split(self.submit_command), script_filename]
            return await self._call(command, cwd=folder)

    Job.__name__ = Job.__qualname__ = job_cls.__name__
    return Job


def job_script(scheduler: str, cluster_class: str, cluster_config: str | None = None) -> str:
    """The batch script each worker job would be submitted with.

    The preview's own scheduler listens on the loopback interface (the site's
    ``interface`` may not exist where the preview runs), so the address in the
    worker command is a placeholder; the rest is what would be submitted.
    """
    preview = {"interface": "lo", "dashboard_address": "127.0.0.1:0"}
    with make_cluster(
        scheduler, cluster_class, cluster_config, scheduler_options=preview
    ) as cluster:
        return cluster.job_script()


def submit_jobs(cluster, client, compute_config) -> None:
    """Submit the worker jobs (``jobs``, or ``adapt`` MIN:MAX) and wait for the first worker.

    Waits up to ``worker_timeout`` seconds; the jobs are cancelled when the
    cluster closes.
    """
    c = compute_config
    if c.adapt:
        lo, hi = parse_adapt(c.adapt)
        cluster.adapt(minimum_jobs=max(lo, 1), maximum_jobs=hi)
    else:
        cluster.scale(jobs=c.jobs or 1)
    try:
        client.wait_for_workers(1, timeout=c.worker_timeout)
    except TimeoutError:
        raise SchedulerError(
            f"no {c.scheduler} worker joined within {c.worker_timeout:g} s; "
            f"job script:\n{cluster.job_script()}"
        ) from None
