"""gammapy's "Make template background model" tutorial loop, as a baseline.

The estimator of the tutorial (gammapy docs, tutorials/data/... background_model):
counts in (energy, offset) with np.histogram2d of gammapy's events, exposure =
2π offset x observation time x bin volume, one model per zenith group, written
with HDU_INDEX and OBS_INDEX into one FITS file. Run as a script it is the whole
process the benchmark times; ``run`` is the loop the per-run comparison times.
"""

from __future__ import annotations

import itertools
import sys
import time

import astropy.units as u
import numpy as np
from astropy.io import fits
from gammapy.data import DataStore
from gammapy.irf import Background2D
from gammapy.maps import MapAxis

ZENITH_EDGES = [0, 20, 40, 90]


def run(store: DataStore, obs_ids) -> dict:
    """The tutorial's BackgroundModelEstimator over the given runs; rates per zenith group."""
    energy = MapAxis.from_energy_edges(np.logspace(-1, 2, 20) * u.TeV)
    offset = MapAxis.from_edges(np.sqrt(np.linspace(0, 9, 10)) * u.deg, name="offset")
    obs_table = store.obs_table.select_obs_id(obs_ids)
    rates = {}
    for lo, hi in itertools.pairwise(ZENITH_EDGES):
        sel = (obs_table["ZEN_PNT"] >= lo) & (obs_table["ZEN_PNT"] < hi)
        counts = np.zeros((energy.nbin, offset.nbin))
        exposure = np.zeros_like(counts) * u.Unit("s MeV sr")
        for obs in store.get_observations(obs_table["OBS_ID"][sel], required_irf=[]):
            events = obs.events
            counts += np.histogram2d(
                events.energy.to_value("MeV"),
                events.offset.to_value("deg"),
                bins=(energy.edges.to_value("MeV"), offset.edges.to_value("deg")),
            )[0]
            volume = np.diff(energy.edges)[:, None] * np.diff(offset.edges)[None, :]
            ring = 2 * np.pi * offset.center[None, :]  # the tutorial's 2π θ dθ ring area
            exposure += (ring * obs.observation_time_duration * volume).to("s MeV sr")
        rates[f"{lo}-{hi}"] = Background2D(
            axes=[energy, offset],
            data=np.nan_to_num((counts / exposure).to_value("s-1 MeV-1 sr-1")),
            unit="s-1 MeV-1 sr-1",
        )
    return rates


def main(store_dir: str, out: str) -> None:
    start = time.perf_counter()
    store = DataStore.from_dir(store_dir)
    off = store.obs_table[store.obs_table["TARGET_NAME"] == "Off data"]["OBS_ID"]
    rates = run(store, off)
    hdus = [
        fits.PrimaryHDU(),
        fits.table_to_hdu(store.hdu_table),
        fits.table_to_hdu(store.obs_table),
    ]
    for name, model in rates.items():
        hdu = model.to_table_hdu()
        hdu.name = f"BKG_{name}"
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(out, overwrite=True)
    print(f"tutorial loop: {len(off)} runs in {time.perf_counter() - start:.2f} s -> {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
