"""Client side: models as gammapy ``Background2D``, the merged HDU index, the bundle file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table

from . import __version__
from .grouping import Group
from .reduce import background_rate

RATE_UNIT = "s-1 MeV-1 sr-1"


def to_background2d(total):
    """A group's summed counts and exposure -> gammapy ``Background2D``.

    Parameters
    ----------
    total : xarray.Dataset
        Output of the group's reduction (counts, exposure, edges as coords).

    Returns
    -------
    gammapy.irf.Background2D
        Rate in s-1 MeV-1 sr-1 over reconstructed energy (TeV) and offset (deg).
    """
    from gammapy.irf import Background2D
    from gammapy.maps import MapAxis

    e_edges = np.append(total["energy_lo"].values, total["energy_hi"].values[-1])
    o_edges = np.append(total["offset_lo"].values, total["offset_hi"].values[-1])
    energy_axis = MapAxis.from_energy_edges(e_edges * u.TeV)
    offset_axis = MapAxis.from_edges(o_edges * u.deg, name="offset")
    rate = background_rate(total)
    return Background2D(axes=[energy_axis, offset_axis], data=rate.values, unit=RATE_UNIT)


GADF_BKG_2D = {
    "HDUCLASS": "GADF",
    "HDUDOC": "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats",
    "HDUVERS": "0.2",
    "HDUCLAS1": "RESPONSE",
    "HDUCLAS2": "BKG",
    "HDUCLAS3": "FULL-ENCLOSURE",
    "HDUCLAS4": "BKG_2D",
}


def bkg_2d_hdu(energy_edges, offset_edges, rate) -> fits.BinTableHDU:
    """A GADF BKG_2D table HDU (as gammapy writes it), without importing gammapy.

    Parameters
    ----------
    energy_edges : numpy.ndarray
        Reconstructed energy edges, TeV.
    offset_edges : numpy.ndarray
        Offset edges, deg.
    rate : numpy.ndarray
        s-1 MeV-1 sr-1, shape (n_energy, n_offset).
    """
    n_e, n_o = len(energy_edges) - 1, len(offset_edges) - 1

    def column(name, values, unit, dim):
        values = np.asarray(values, dtype=np.float64)[None, ...]
        return fits.Column(name, f"{values[0].size}D", unit=unit, dim=dim, array=values)

    columns = [
        column("ENERG_LO", energy_edges[:-1], "TeV", f"({n_e})"),
        column("ENERG_HI", energy_edges[1:], "TeV", f"({n_e})"),
        column("THETA_LO", offset_edges[:-1], "deg", f"({n_o})"),
        column("THETA_HI", offset_edges[1:], "deg", f"({n_o})"),
        # GADF axis order: the FITS array is (offset, energy), energy fastest.
        column("BKG", np.asarray(rate).T, "MeV-1 s-1 sr-1", f"({n_e},{n_o})"),
    ]
    hdu = fits.BinTableHDU.from_columns(columns)
    hdu.header.update(GADF_BKG_2D)
    return hdu


def model_hdu(group: Group, total) -> fits.BinTableHDU:
    """The GADF BKG_2D HDU of one group, with provenance keywords."""
    e_edges = np.append(total["energy_lo"].values, total["energy_hi"].values[-1])
    o_edges = np.append(total["offset_lo"].values, total["offset_hi"].values[-1])
    hdu = bkg_2d_hdu(e_edges, o_edges, background_rate(total).values)
    hdu.name = group.hdu_name
    header = hdu.header
    header["ZEN_LO"] = (group.zenith_lo, "[deg] zenith group lower edge (inclusive)")
    header["ZEN_HI"] = (group.zenith_hi, "[deg] zenith group upper edge (exclusive)")
    for k, (column, lo, hi) in enumerate(group.bounds[1:], start=1):
        header[f"GRP{k}COL"] = (column, f"obs-index column of grouping axis {k}")
        header[f"GRP{k}LO"] = (lo, f"{column} lower edge (inclusive)")
        header[f"GRP{k}HI"] = (hi, f"{column} upper edge (exclusive)")
    header["ZEN_MIN"] = (total.attrs["zenith_min"], "[deg] lowest zenith of the runs used")
    header["ZEN_MAX"] = (total.attrs["zenith_max"], "[deg] highest zenith of the runs used")
    header["NRUNS"] = (int(total.attrs["n_runs"]), "number of runs in the model")
    header["OBSTIME"] = (float(total.attrs["observation_time"]), "[s] total observation time")
    header["NEVENTS"] = (int(total.attrs["n_events"]), "events read from the runs")
    header["NCOUNTS"] = (int(total["counts"].sum()), "events inside the model bins")
    header["CREATOR"] = (f"bkgdask {__version__}", "software that made this model")
    header["BKGDVER"] = (__version__, "bkgdask version")
    return hdu


def _strip(column) -> list[str]:
    if hasattr(column, "filled"):
        column = column.filled("")
    return [str(v).strip() for v in column]


def merged_hdu_index(
    hdu_index: Table, file_paths: np.ndarray, assignment: dict[int, Group], bundle_name: str
) -> Table:
    """The store's HDU index with absolute file paths and one ``bkg`` row per observation.

    Existing ``bkg`` rows are dropped; every observation in ``assignment``
    gets a ``bkg_2d`` row pointing at its group's HDU in the bundle itself
    (``FILE_DIR = '.'``, so the bundle may be moved as long as the store is
    not).
    """
    types = np.char.lower(np.array(_strip(hdu_index["HDU_TYPE"]), dtype=str))
    keep = types != "bkg"
    paths = [Path(p) for p in np.asarray(file_paths)[keep]]
    rows = {
        "OBS_ID": np.asarray(hdu_index["OBS_ID"], dtype=np.int64)[keep].tolist(),
        "HDU_TYPE": np.array(_strip(hdu_index["HDU_TYPE"]))[keep].tolist(),
        "HDU_CLASS": np.array(_strip(hdu_index["HDU_CLASS"]))[keep].tolist(),
        "FILE_DIR": [str(p.parent) for p in paths],
        "FILE_NAME": [p.name for p in paths],
        "HDU_NAME": np.array(_strip(hdu_index["HDU_NAME"]))[keep].tolist(),
    }
    for obs_id in sorted(assignment):
        for column, value in zip(
            rows, (obs_id, "bkg", "bkg_2d", ".", bundle_name, assignment[obs_id].hdu_name)
        ):
            rows[column].append(value)
    table = Table(rows)
    table["OBS_ID"] = table["OBS_ID"].astype(np.int64)
    table.sort(["OBS_ID", "HDU_TYPE"])
    table.meta.update(
        {"EXTNAME": "HDU_INDEX", "HDUCLASS": "GADF", "HDUCLAS1": "INDEX", "HDUCLAS2": "HDU"}
    )
    return table


def bundle_obs_index(obs_index: Table, assignment: dict[int, Group], used: set[int]) -> Table:
    """The store's obs-index plus ``BKG_HDU`` (each run's model) and ``BKG_USED`` (in a model)."""
    table = obs_index.copy()
    table["BKG_HDU"] = [assignment[int(o)].hdu_name for o in table["OBS_ID"]]
    table["BKG_USED"] = [int(o) in used for o in table["OBS_ID"]]
    table.meta["EXTNAME"] = "OBS_INDEX"
    return table


def write_atomic(hdus: fits.HDUList, path: str | Path, overwrite: bool = True) -> Path:
    """Write ``hdus`` to ``path`` via a temporary file in the same folder and a rename.

    Readers never see a partial file, and a failed write leaves any existing
    ``path`` untouched. A ``.gz`` suffix gzip-compresses.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (use overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".fits", dir=path.parent)
    os.close(fd)
    try:
        hdus.writeto(tmp, overwrite=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
