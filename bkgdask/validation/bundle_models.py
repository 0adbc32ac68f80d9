"""Reading a bkgdask bundle back: each model's bins, rate, counts and runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.registry import IORegistryError
from astropy.table import Table

from ..binning import Binning
from ..errors import BkgdaskError


@dataclass
class BundleModel:
    """One BKG_2D model of a bundle.

    Attributes
    ----------
    hdu_name : str
        ``EXTNAME`` of the model.
    binning : Binning
        Energy (TeV) and offset (deg) bins.
    rate : numpy.ndarray
        s-1 MeV-1 sr-1, shape (n_energy, n_offset).
    observation_time : float
        Total observation time of its runs, s.
    zenith_lo, zenith_hi : float
        Zenith group edges, deg.
    obs_ids : list of int
        Runs the model was built from.
    """

    hdu_name: str
    binning: Binning
    rate: np.ndarray
    observation_time: float
    zenith_lo: float
    zenith_hi: float
    obs_ids: list[int]

    @property
    def counts(self) -> np.ndarray:
        """Counts the model was made of: rate x exposure, rounded to integers."""
        return np.rint(self.rate * self.binning.exposure(self.observation_time))


def read_bundle(path: str | Path) -> tuple[dict[str, BundleModel], Table]:
    """Models of a bundle by HDU name, and its OBS_INDEX table."""
    path = Path(path)
    try:
        obs_index = Table.read(path, hdu="OBS_INDEX")
        with fits.open(path) as hdus:
            headers = {h.name: (h.header, h.data) for h in hdus if h.name.startswith("BKG_")}
    except (OSError, KeyError, ValueError, IORegistryError) as exc:
        raise BkgdaskError(f"cannot read bundle {path}: {exc}") from exc
    if "BKG_USED" not in obs_index.colnames:
        raise BkgdaskError(f"{path} is not a bkgdask bundle (OBS_INDEX has no BKG_USED)")
    models = {}
    for name, (header, data) in headers.items():
        used = obs_index[(obs_index["BKG_HDU"] == name) & obs_index["BKG_USED"]]
        energy = np.append(data["ENERG_LO"][0], data["ENERG_HI"][0][-1])
        offset = np.append(data["THETA_LO"][0], data["THETA_HI"][0][-1])
        # GADF stores BKG as (offset, energy); bkgdask works in (energy, offset).
        rate = np.asarray(data["BKG"][0], dtype=np.float64).T
        models[name] = BundleModel(
            hdu_name=name,
            binning=Binning(energy, offset),
            rate=rate,
            observation_time=float(header["OBSTIME"]),
            zenith_lo=float(header["ZEN_LO"]),
            zenith_hi=float(header["ZEN_HI"]),
            obs_ids=[int(o) for o in used["OBS_ID"]],
        )
    return models, obs_index
