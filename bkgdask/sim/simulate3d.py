"""Simulate stores whose FoV background (:class:`Truth3D`) is known exactly.

Runs are observed from the simulated site at fixed declination, with their
mid-run hour angles spread evenly over ``[hour_angle_min, hour_angle_max]``:
the pointing's RA is the local sidereal time at mid-run minus the hour angle,
its Alt/Az (header and obs-index) astropy's at mid-run. With ``ra_pnt`` set
the runs track one target instead (every pointing at ``ra_pnt``), and
``sources`` add the events of Gaussian sources fixed on the sky to every
run. Event times are uniform in the GTIs, so an ALTAZ truth rotates across
RA/Dec during a run.
One Dask task per run, seeded ``SeedSequence(seed, spawn_key=(obs_id,))``::

    from bkgdask.sim.simulate3d import Simulation3DConfig, simulate_store_3d
    simulate_store_3d("sim3d", Simulation3DConfig(n_obs=8, seed=1))
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import astropy.units as u
import dask
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..models.observer import observatory_location, time_reference_and_unit
from ..models.rotation import times_in_gtis
from .simulate import SIMULATION_FILE, TARGET_NAME, SimulationConfig, _check_empty, compute_tasks
from .sources import PointSource, source_events
from .store_writer import _SITE, _TIME_KEYS, RunRows, RunSpec, write_indexes, write_run
from .truth3d import Truth3D

__all__ = ["Simulation3DConfig", "run_header", "simulate_run_3d", "simulate_store_3d"]


class Simulation3DConfig(BaseModel):
    """What to simulate: runs, their hour angles and GTIs, and the FoV truth.

    Attributes
    ----------
    n_obs : int
        Number of runs.
    seed : int
        Seed of the runs' random generators.
    dec_pnt : float
        Declination of every pointing, deg.
    ra_pnt : float, optional
        Right ascension of every pointing, deg: the runs track one target
        (the hour angles are not used); default: from the hour angles.
    hour_angle_min, hour_angle_max : float
        Mid-run hour angles of the first and last run, h.
    duration, n_gti, gti_gap : float, int, float
        Observation time per run (s), GTIs per run, gap between GTIs (s).
    obs_id_start : int
        OBS_ID of the first run.
    compress : bool
        Gzip the run files.
    truth : Truth3D
        The FoV background rate.
    sources : list of PointSource
        Gaussian sources fixed on the sky whose events are added to every run
        (drawn after the background's, which stays that of the same store
        without sources); the runs keep their target name.
    """

    model_config = ConfigDict(extra="forbid")

    n_obs: int = Field(ge=1)
    seed: int = Field(0, ge=0)
    dec_pnt: float = Field(-30.0, ge=-90, le=90)
    ra_pnt: float | None = Field(None, ge=0, lt=360)
    hour_angle_min: float = Field(-3.0, ge=-12, le=12)
    hour_angle_max: float = Field(3.0, ge=-12, le=12)
    duration: float = Field(1680.0, gt=0.0)
    n_gti: int = Field(1, ge=1)
    gti_gap: float = Field(120.0, ge=0.0)
    obs_id_start: int = Field(1, ge=0)
    compress: bool = True
    truth: Truth3D = Field(default_factory=Truth3D)
    sources: list[PointSource] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_hour_angles(self) -> Simulation3DConfig:
        if self.hour_angle_max < self.hour_angle_min:
            raise ValueError("hour_angle_max < hour_angle_min")
        return self

    @property
    def obs_ids(self) -> list[int]:
        return list(range(self.obs_id_start, self.obs_id_start + self.n_obs))

    def gti(self, index: int) -> np.ndarray:
        """GTIs (n_gti, 2) of run ``index``, MET s (laid out as the 2D simulator's)."""
        times = SimulationConfig(
            n_obs=self.n_obs, duration=self.duration, n_gti=self.n_gti, gti_gap=self.gti_gap
        )
        return np.array(times.gti(index))

    def hour_angle(self, index: int) -> float:
        """Mid-run hour angle of run ``index``, h."""
        if self.n_obs == 1:
            return 0.5 * (self.hour_angle_min + self.hour_angle_max)
        fraction = index / (self.n_obs - 1)
        return self.hour_angle_min + fraction * (self.hour_angle_max - self.hour_angle_min)


def run_header(ra_pnt: float, dec_pnt: float) -> dict:
    """Time reference, site and pointing keywords of a simulated run's EVENTS header."""
    return {**_TIME_KEYS, **_SITE, "RA_PNT": float(ra_pnt), "DEC_PNT": float(dec_pnt)}


def _pointing(header: dict, time_s: float, hour_angle_h: float | None, ra: float, dec: float):
    """Pointing RA (deg) and its Alt/Az (deg) at ``time_s``.

    The RA is ``ra``, or with ``hour_angle_h`` (h) the one at that hour angle then.
    """
    from astropy.coordinates import AltAz, SkyCoord

    reference, seconds = time_reference_and_unit(header)
    location = observatory_location(header)
    when = reference + time_s * seconds * u.s
    if hour_angle_h is not None:
        lst = when.sidereal_time("apparent", longitude=location.lon).to_value(u.deg)
        ra = float(np.mod(lst - 15.0 * hour_angle_h, 360.0))
    altaz = SkyCoord(ra * u.deg, dec * u.deg).transform_to(AltAz(obstime=when, location=location))
    return ra, float(altaz.alt.to_value(u.deg)), float(altaz.az.to_value(u.deg))


def simulate_run_3d(config: Simulation3DConfig, index: int) -> RunSpec:
    """Draw run number ``index`` (0-based); deterministic.

    Returns
    -------
    RunSpec
        Pointing (deg), GTIs (MET s), event energies (TeV), positions (deg) and times (s).
    """
    if not 0 <= index < config.n_obs:
        raise IndexError(f"run index {index} outside 0..{config.n_obs - 1}")
    obs_id = config.obs_id_start + index
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(obs_id,)))
    gti = config.gti(index)
    middle = 0.5 * (gti[0, 0] + gti[-1, 1])
    hour_angle = config.hour_angle(index) if config.ra_pnt is None else None
    ra_pnt, alt, az = _pointing(
        run_header(0.0, config.dec_pnt), middle, hour_angle, config.ra_pnt, config.dec_pnt
    )
    if alt <= 0:
        raise ValueError(f"run {obs_id} points below the horizon (alt {alt:.1f} deg)")
    header = run_header(ra_pnt, config.dec_pnt)
    energy, ra, dec, time = config.truth.sample_run(rng, header, gti)
    if config.sources:
        duration = float(np.sum(gti[:, 1] - gti[:, 0]))
        parts = [(energy, ra, dec, time)]
        for source in config.sources:
            extra = source_events(rng, source, duration)
            parts.append((*extra, times_in_gtis(rng.uniform(0.0, duration, extra[0].size), gti)))
        energy, ra, dec, time = (np.concatenate(column) for column in zip(*parts))
        order = np.argsort(time, kind="stable")
        energy, ra, dec, time = energy[order], ra[order], dec[order], time[order]
    return RunSpec(
        obs_id=obs_id,
        ra_pnt=ra_pnt,
        dec_pnt=config.dec_pnt,
        alt_pnt=alt,
        az_pnt=az,
        gti=[tuple(row) for row in gti.tolist()],
        energy=energy,
        ra=ra,
        dec=dec,
        target_name=TARGET_NAME,
        time=time,
    )


def _simulate_and_write_3d(outdir: str, config: Simulation3DConfig, index: int) -> RunRows:
    return write_run(outdir, simulate_run_3d(config, index), compress=config.compress)


def simulate_store_3d(
    outdir: str | Path,
    config: Simulation3DConfig,
    *,
    client=None,
    scheduler: Literal["sync", "threads", "local"] = "sync",
    n_workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Simulate a GADF DL3 store of off runs drawn from ``config.truth``.

    Writes the run files (task ``simulate-<obs_id>`` each), ``simulation.yaml``
    (this configuration, the truth included) and last the two indexes, as
    :func:`bkgdask.sim.simulate.simulate_store`, whose parameters it shares.

    Raises
    ------
    OutputError
        If ``outdir`` already holds an HDU index or run files.
    """
    outdir = Path(outdir)
    _check_empty(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    task = dask.delayed(_simulate_and_write_3d, pure=True)
    tasks = [
        task(str(outdir.absolute()), config, index, dask_key_name=f"simulate-{obs_id}")
        for index, obs_id in enumerate(config.obs_ids)
    ]
    rows = compute_tasks(tasks, client, scheduler, n_workers, progress)
    (outdir / SIMULATION_FILE).write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
    return write_indexes(outdir, rows)
