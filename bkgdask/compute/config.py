"""Where and how a build's graph runs: its configuration (free of astropy, so it loads fast)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """Configuration sections: unknown keys are errors, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ComputeConfig(Strict):
    """Where and how the graph runs."""

    scheduler: str = Field(
        default="auto",
        description="auto | local | processes | threads | sync | slurm | pbs | sge | htcondor | lsf"
        " | tcp://HOST:PORT; auto: threads, forked processes or a LocalCluster by the work",
    )
    n_workers: int | None = Field(default=None, ge=1, description="default: number of cores")
    split_every: int = Field(default=8, ge=2, description="fan-in of each reduction task")
    runs_per_task: int | Literal["auto"] = Field(
        default="auto",
        description="runs histogrammed by one task; auto: 1 up to 64 runs, then ~n/64, <= 64",
    )

    kernel: Literal["auto", "compiled", "numpy"] = Field(
        default="auto",
        description="per-run loop: numba-compiled, numpy, or auto (compiled from 1000 runs on)",
    )

    @field_validator("runs_per_task")
    @classmethod
    def _runs_per_task(cls, value):
        if value != "auto" and value < 1:
            raise ValueError("runs_per_task must be >= 1 or 'auto'")
        return value

    dashboard_address: str = Field(
        default="127.0.0.1:8787", description="LocalCluster dashboard (host:port, port 0 = any)"
    )
    progress: bool = True
    retries: int = Field(default=2, ge=0, description="retries of a failed task (distributed)")
    cluster_config: str | None = Field(
        default=None, description="batch: name of a jobqueue.<name> Dask config section"
    )
    jobs: int | None = Field(default=None, ge=1, description="batch: fixed number of jobs")
    adapt: str | None = Field(default=None, description="batch: adaptive jobs, MIN:MAX")
    worker_timeout: float = Field(default=600.0, gt=0, description="batch: s to wait for a worker")
    log_directory: str | None = Field(
        default=None, description="batch: folder for the jobs' output files"
    )

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str) -> str:
        from .backends import BACKENDS

        if value in BACKENDS and value != "address":
            return value
        if re.fullmatch(r"(tcp|tls|inproc)://\S+", value):
            return value
        names = ", ".join(n for n in BACKENDS if n != "address")
        raise ValueError(f"scheduler must be one of {names} or tcp://HOST:PORT, not {value!r}")

    @field_validator("adapt")
    @classmethod
    def _adapt(cls, value: str | None) -> str | None:
        if value is not None:
            from .hpc import parse_adapt

            parse_adapt(value)
        return value

    @model_validator(mode="after")
    def _jobs_or_adapt(self) -> ComputeConfig:
        if self.jobs is not None and self.adapt is not None:
            raise ValueError("give either 'jobs' or 'adapt', not both")
        return self
