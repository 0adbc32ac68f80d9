"""Simulate off-run DL3 data stores whose background is known exactly.

Every run is one Dask task (``simulate-<obs_id>``) that draws its pointing and
events from :class:`~bkgdask.sim.truth.TruthModel` with its own random generator,
``SeedSequence(seed, spawn_key=(obs_id,))``, writes its event file and returns
only its index rows. The store is therefore the same, byte for byte, whatever
the scheduler or the number of workers. The client writes the obs-index and
HDU index last, next to ``truth.yaml`` (the model) and ``simulation.yaml``
(this configuration)::

    from bkgdask.sim.simulate import SimulationConfig, simulate_store
    simulate_store("sim", SimulationConfig(n_obs=200, seed=1), scheduler="local")
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dask
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..compute.backends import DistributedBackend, make_backend
from ..compute.config import ComputeConfig
from ..errors import OutputError
from .sources import PointSource, source_events, source_of_run, source_pointing
from .store_writer import RunRows, RunSpec, events_from_offsets, write_indexes, write_run
from .truth import TRUTH_FILE, TruthModel

__all__ = [
    "SIMULATION_FILE",
    "TARGET_NAME",
    "SimulationConfig",
    "simulate_run",
    "simulate_store",
    "simulation_tasks",
]

SIMULATION_FILE = "simulation.yaml"
TARGET_NAME = "Off data"
#: MET (s) of the start of the first run.
T_START = 1.0e8
#: Pause (s) between the last GTI of one run and the first of the next.
RUN_GAP = 600.0
#: Pointings of the first two runs with ``special_pointings``: (RA, Dec), deg.
SPECIAL_POINTINGS = ((359.9, -30.0), (0.0, 90.0))


class SimulationConfig(BaseModel):
    """What to simulate: runs, pointings, GTIs and the true background model.

    Attributes
    ----------
    n_obs : int
        Number of runs, >= 1.
    seed : int
        Seed, >= 0; run ``obs_id`` uses ``SeedSequence(seed, spawn_key=(obs_id,))``.
    zenith_min, zenith_max : float
        Zenith angles (deg) are drawn uniformly in ``[zenith_min, zenith_max)``,
        ``0 <= zenith_min <= zenith_max < 90``.
    duration : float
        Observation time (s) of each run: the sum of its GTIs.
    n_gti : int
        GTIs per run, of ``duration / n_gti`` s each.
    gti_gap : float
        Time (s) between consecutive GTIs of one run.
    special_pointings : bool
        If True, the first run points at (RA, Dec) = (359.9, -30) deg, so that its
        events straddle RA = 0, and the second at Dec = +90 deg exactly; the others
        are drawn at random.
    obs_id_start : int
        OBS_ID of the first run; the others follow consecutively.
    compress : bool
        Gzip the run files.
    truth : TruthModel
        The background rate the events are drawn from.
    sources : list of PointSource
        Gaussian sources added on top of the background; of every
        ``len(sources) + 1`` runs, one points at each source (``wobble`` away,
        target name the source's) and one is an off run at random.
    """

    model_config = ConfigDict(extra="forbid")

    n_obs: int = Field(ge=1)
    seed: int = Field(0, ge=0)
    zenith_min: float = Field(0.0, ge=0.0, lt=90.0)
    zenith_max: float = Field(60.0, ge=0.0, lt=90.0)
    duration: float = Field(1680.0, gt=0.0)
    n_gti: int = Field(1, ge=1)
    gti_gap: float = Field(120.0, ge=0.0)
    special_pointings: bool = False
    obs_id_start: int = Field(1, ge=0)
    compress: bool = True
    truth: TruthModel = Field(default_factory=TruthModel)
    sources: list[PointSource] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_zenith(self) -> SimulationConfig:
        if self.zenith_max < self.zenith_min:
            raise ValueError(f"zenith_max {self.zenith_max} < zenith_min {self.zenith_min}")
        return self

    @property
    def obs_ids(self) -> list[int]:
        """OBS_ID of every run, in order."""
        return list(range(self.obs_id_start, self.obs_id_start + self.n_obs))

    def gti(self, index: int) -> list[tuple[float, float]]:
        """GTIs ``(start, stop)`` (MET s) of run number ``index`` (0-based)."""
        piece = self.duration / self.n_gti
        t0 = T_START + index * (self.duration + self.n_gti * self.gti_gap + RUN_GAP)
        starts = [t0 + k * (piece + self.gti_gap) for k in range(self.n_gti)]
        return [(start, start + piece) for start in starts]

    def write(self, path: str | Path) -> Path:
        """Write the configuration as YAML."""
        path = Path(path)
        path.write_text(yaml.safe_dump(self.model_dump(), sort_keys=False))
        return path

    @classmethod
    def read(cls, path: str | Path) -> SimulationConfig:
        """Read a configuration written by :meth:`write`."""
        return cls(**yaml.safe_load(Path(path).read_text()))


def simulate_run(config: SimulationConfig, index: int) -> RunSpec:
    """Draw run number ``index`` (0-based) of a simulation; deterministic.

    Parameters
    ----------
    config : SimulationConfig
        The simulation.
    index : int
        Position of the run, ``0 <= index < config.n_obs``.

    Returns
    -------
    RunSpec
        Pointing (deg), GTIs (MET s), event energies (TeV) and positions (deg). Event
        times are left to :func:`~bkgdask.store_writer.write_run` (uniform in the GTIs).
    """
    if not 0 <= index < config.n_obs:
        raise IndexError(f"run index {index} outside 0..{config.n_obs - 1}")
    obs_id = config.obs_id_start + index
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(obs_id,)))
    ra_pnt = rng.uniform(0.0, 360.0)
    dec_pnt = float(np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0))))  # uniform on the sphere
    zenith = rng.uniform(config.zenith_min, config.zenith_max)
    az_pnt = rng.uniform(0.0, 360.0)
    if config.special_pointings and index < len(SPECIAL_POINTINGS):
        ra_pnt, dec_pnt = SPECIAL_POINTINGS[index]
    energy, offset = config.truth.sample(rng, zenith, config.duration)
    position_angle = rng.uniform(0.0, 360.0, size=energy.size)
    source = source_of_run(config.sources, index)
    if source is not None:
        ra_pnt, dec_pnt = source_pointing(rng, source)
    ra, dec = events_from_offsets(ra_pnt, dec_pnt, offset, position_angle)
    if source is not None:
        extra = source_events(rng, source, config.duration)
        energy, ra, dec = (np.concatenate(pair) for pair in zip((energy, ra, dec), extra))
    return RunSpec(
        obs_id=obs_id,
        ra_pnt=float(ra_pnt),
        dec_pnt=float(dec_pnt),
        alt_pnt=90.0 - float(zenith),
        az_pnt=float(az_pnt),
        gti=config.gti(index),
        energy=energy,
        ra=ra,
        dec=dec,
        target_name=TARGET_NAME if source is None else source.name,
    )


def _simulate_and_write(outdir: str, config: SimulationConfig, index: int) -> RunRows:
    """Task body: draw one run, write its file, return only its index rows."""
    return write_run(outdir, simulate_run(config, index), compress=config.compress)


def simulation_tasks(outdir: str | Path, config: SimulationConfig) -> list:
    """One Dask task per run that writes ``outdir/data/run_<obs_id>.fits[.gz]``.

    Parameters
    ----------
    outdir : str or Path
        Store folder (made absolute, so workers with another working directory
        write to the same place).
    config : SimulationConfig
        The simulation.

    Returns
    -------
    list of dask.delayed.Delayed
        Task ``simulate-<obs_id>`` per run, in OBS_ID order; each computes to the
        run's :class:`~bkgdask.sim.store_writer.RunRows`. Nothing is written until computed.
    """
    outdir = str(Path(outdir).absolute())
    task = dask.delayed(_simulate_and_write, pure=True)
    return [
        task(outdir, config, index, dask_key_name=f"simulate-{obs_id}")
        for index, obs_id in enumerate(config.obs_ids)
    ]


def _check_empty(outdir: Path) -> None:
    """Refuse a folder that already holds a store or run files."""
    if any((outdir / f"hdu-index.{ext}").exists() for ext in ("fits.gz", "fits")):
        raise OutputError(f"{outdir} already contains an HDU index")
    data = outdir / "data"
    if data.is_dir() and any(data.iterdir()):
        raise OutputError(f"{data} is not empty")
    if data.exists() and not data.is_dir():
        raise OutputError(f"{data} exists and is not a folder")


def simulate_store(
    outdir: str | Path,
    config: SimulationConfig,
    *,
    client=None,
    scheduler: Literal["sync", "threads", "local"] = "sync",
    n_workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Simulate a GADF DL3 store of off runs drawn from ``config.truth``.

    Writes ``outdir/data/run_<obs_id:06d>.fits[.gz]`` (one Dask task per run, see
    :func:`simulation_tasks`), then ``truth.yaml`` and ``simulation.yaml``, and last
    ``obs-index.fits.gz`` and ``hdu-index.fits.gz``: a simulation that fails leaves no
    index, so never a store that looks complete. Only the index rows of the runs come
    back to this process, never events.

    Parameters
    ----------
    outdir : str or Path
        Store folder, created if needed.
    config : SimulationConfig
        The simulation.
    client : distributed.Client, optional
        Run the tasks on this client's cluster; ``scheduler`` is then ignored.
    scheduler : {"sync", "threads", "local"}
        Without a client: dask's synchronous or threaded scheduler, or a temporary
        ``LocalCluster`` of single-threaded worker processes (dashboard on a free
        port of 127.0.0.1).
    n_workers : int, optional
        Workers of the LocalCluster or threads of ``threads``; default: cores.
    progress : bool
        Draw a progress bar on stderr.

    Returns
    -------
    Path
        ``Path(outdir)``; open it with ``gammapy.data.DataStore.from_dir``.

    Raises
    ------
    OutputError
        If ``outdir`` already holds an HDU index, or ``outdir/data`` holds any file.
    ValueError
        If ``scheduler`` is unknown.
    """
    if scheduler not in ("sync", "threads", "local"):
        raise ValueError(f"scheduler must be 'sync', 'threads' or 'local', got {scheduler!r}")
    outdir = Path(outdir)
    _check_empty(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = compute_tasks(simulation_tasks(outdir, config), client, scheduler, n_workers, progress)
    config.truth.write(outdir / TRUTH_FILE)
    config.write(outdir / SIMULATION_FILE)
    return write_indexes(outdir, rows)


def compute_tasks(tasks: list, client, scheduler: str, n_workers: int | None, progress: bool):
    """Compute simulation tasks on ``client`` or a temporary backend of ``scheduler``."""
    compute = ComputeConfig(
        scheduler=scheduler, n_workers=n_workers, progress=progress, dashboard_address="127.0.0.1:0"
    )
    if client is not None:
        backend = DistributedBackend.of_client(client, compute)
    else:
        backend = make_backend(compute)
    with backend:
        return backend.compute(tasks)
