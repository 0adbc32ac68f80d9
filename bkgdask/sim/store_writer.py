"""Write small, standard-conforming GADF DL3 data stores from in-memory event lists.

The files mimic the layout and header keywords of the H.E.S.S. DL3 DR1 release
(events and GTI only, no IRFs). Used by the test-suite to build stores with known
contents and by the simulator.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.typing import ArrayLike

from ..io.files import write_bytes_atomic
from ..models.exclusion import destination

__all__ = ["OBS_INDEX_COLUMNS", "RunRows", "RunSpec", "events_from_offsets",
           "write_indexes", "write_run", "write_store"]  # fmt: skip

MJDREFI = 51910
MJDREFF = 0.000742870370370241
DEADC = 0.9
HDUDOC = "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats"
_TIME_KEYS = {"MJDREFI": MJDREFI, "MJDREFF": MJDREFF, "TIMEUNIT": "s", "TIMESYS": "TT",
              "TIMEREF": "local"}  # fmt: skip
_GADF = {"HDUCLASS": "GADF", "HDUDOC": HDUDOC, "HDUVERS": "0.2"}
_SITE = {"GEOLON": 16.5002222222222, "GEOLAT": -23.2717777777778, "ALTITUDE": 1835.0}
OBS_INDEX_COLUMNS = (
    "OBS_ID", "RA_PNT", "DEC_PNT", "ZEN_PNT", "ALT_PNT", "AZ_PNT", "ONTIME", "LIVETIME",
    "DEADC", "TSTART", "TSTOP", "N_TELS", "MUONEFF", "EVENT_COUNT", "TARGET_NAME", "OBJECT",
)  # fmt: skip
HDU_INDEX_COLUMNS = ("OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME",
                     "SIZE")  # fmt: skip
_UNITS = {"RA_PNT": "deg", "DEC_PNT": "deg", "ZEN_PNT": "deg", "ALT_PNT": "deg",
          "AZ_PNT": "deg", "ONTIME": "s", "LIVETIME": "s", "TSTART": "s", "TSTOP": "s"}  # fmt: skip

_INT_COLUMNS = {"OBS_ID", "N_TELS", "EVENT_COUNT", "SIZE"}
_STR_COLUMNS = {"TARGET_NAME", "OBJECT", *HDU_INDEX_COLUMNS[1:-1]}


@dataclass
class RunSpec:
    """Contents of one observation run.

    Attributes
    ----------
    obs_id : int
        Observation ID (non-negative).
    ra_pnt, dec_pnt : float
        Pointing position in ICRS (deg).
    alt_pnt, az_pnt : float
        Mean pointing altitude and azimuth (deg); zenith angle is ``90 - alt_pnt``.
    gti : list of (float, float)
        Good time intervals ``(start, stop)`` in s since MJDREF (MET), in time order.
    energy : numpy.ndarray
        Event energies (TeV), 1-D.
    ra, dec : numpy.ndarray
        Event positions in ICRS (deg), same length as ``energy``.
    target_name : str
        Name written to ``OBJECT`` and ``TARGET_NAME``.
    muoneff : float
        Muon efficiency (dimensionless).
    time : numpy.ndarray or None
        Event times (MET s). If None, drawn uniformly inside the GTIs with a random
        generator seeded by ``obs_id`` (sorted, so deterministic per run).
    """

    obs_id: int
    ra_pnt: float
    dec_pnt: float
    alt_pnt: float
    az_pnt: float
    gti: list[tuple[float, float]]
    energy: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    target_name: str = "Off data"
    muoneff: float = 0.8
    time: np.ndarray | None = None


def events_from_offsets(
    ra_pnt: ArrayLike, dec_pnt: ArrayLike, offset_deg: ArrayLike, position_angle_deg: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions at given great-circle offsets and position angles from a pointing.

    Uses the spherical-trigonometry "destination point" formula, written with
    ``atan2`` for both coordinates so that it stays exact at the poles. At
    ``dec_pnt = +90`` north is the direction towards the ``ra_pnt + 180`` meridian, at
    ``dec_pnt = -90`` towards the ``ra_pnt`` meridian (the limits for fixed ``ra_pnt``).

    Parameters
    ----------
    ra_pnt, dec_pnt : array_like
        Pointing position (deg).
    offset_deg : array_like
        Angular distance from the pointing (deg).
    position_angle_deg : array_like
        Position angle east of north (deg). All inputs are broadcast together.

    Returns
    -------
    ra, dec : numpy.ndarray
        Positions (deg, float64), ``ra`` wrapped to ``[0, 360)``.
    """
    ra, dec = destination(ra_pnt, dec_pnt, offset_deg, position_angle_deg)
    ra = np.where(ra >= 360.0, ra - 360.0, ra)  # np.mod(-tiny, 360) == 360.0
    return ra, dec


def _validate(run: RunSpec) -> tuple[np.ndarray, np.ndarray]:
    """Check one run; return its GTI array (n, 2) and event times (MET s)."""
    name = f"run {run.obs_id}"
    if not isinstance(run.obs_id, int | np.integer) or isinstance(run.obs_id, bool):
        raise ValueError(f"{name}: obs_id must be an integer")
    if run.obs_id < 0:
        raise ValueError(f"{name}: obs_id must be non-negative")
    gti = np.asarray(run.gti, dtype=np.float64)
    if gti.ndim != 2 or gti.shape[0] == 0 or gti.shape[1] != 2 or not np.isfinite(gti).all():
        raise ValueError(f"{name}: needs one or more finite (start, stop) GTIs, got {run.gti}")
    if np.any(gti[:, 1] <= gti[:, 0]):
        raise ValueError(f"{name}: every GTI needs stop > start, got {run.gti}")
    if np.any(gti[1:, 0] < gti[:-1, 1]):
        raise ValueError(f"{name}: GTIs must be in time order and not overlap")
    arrays = {"energy": run.energy, "ra": run.ra, "dec": run.dec}
    if run.time is not None:
        arrays["time"] = run.time
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    if any(len(s) != 1 for s in shapes.values()) or len(set(shapes.values())) != 1:
        raise ValueError(f"{name}: event arrays must be 1-D and of equal length, got {shapes}")
    if run.time is not None:
        return gti, np.asarray(run.time, dtype=np.float64)
    rng = np.random.default_rng(int(run.obs_id))
    durations = gti[:, 1] - gti[:, 0]
    edges = np.concatenate([[0.0], np.cumsum(durations)])
    u = np.sort(rng.uniform(0.0, edges[-1], size=shapes["energy"][0]))
    idx = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, len(gti) - 1)
    return gti, gti[idx, 0] + (u - edges[idx])


def _header(cards: dict) -> fits.Header:
    return fits.Header(list(cards.items()))


def _index_hdu(columns: dict[str, list], kind: str, extra: dict) -> fits.BinTableHDU:
    """Build an ``OBS_INDEX``/``HDU_INDEX`` table; int columns 'K', float 'D', str 'nA'."""
    cols = []
    for name, values in columns.items():
        if name in _INT_COLUMNS:
            cols.append(fits.Column(name, "K", array=np.array(values, dtype=np.int64)))
        elif name in _STR_COLUMNS:
            width = max([1, *(len(v.encode()) for v in values)])
            cols.append(fits.Column(name, f"{width}A", array=np.array(values, dtype=bytes)))
        else:
            array = np.array(values, dtype=np.float64)
            cols.append(fits.Column(name, "D", unit=_UNITS.get(name), array=array))
    header = {"EXTNAME": f"{kind}_INDEX", **_GADF, "HDUCLAS1": "INDEX", "HDUCLAS2": kind}
    return fits.BinTableHDU.from_columns(cols, header=_header({**header, **extra}))


def _run_hdus(run: RunSpec, gti: np.ndarray, time: np.ndarray) -> fits.HDUList:
    """Build the PRIMARY, EVENTS and GTI HDUs of one run."""
    n = len(time)
    ra = np.asarray(run.ra, np.float32)
    ra = np.where(ra >= 360, np.float32(0), ra)  # float32 rounds RA just below 360 up to 360
    ontime = float(np.sum(gti[:, 1] - gti[:, 0]))
    tspan = {"TSTART": float(gti[0, 0]), "TSTOP": float(gti[-1, 1])}
    events = fits.BinTableHDU.from_columns(
        [
            fits.Column("EVENT_ID", "1K", array=np.arange(1, n + 1, dtype=np.int64)),
            fits.Column("TIME", "1D", unit="s", array=time),
            fits.Column("RA", "1E", unit="deg", array=ra),
            fits.Column("DEC", "1E", unit="deg", array=np.asarray(run.dec, np.float32)),
            fits.Column("ENERGY", "1E", unit="TeV", array=np.asarray(run.energy, np.float32)),
        ],
        header=_header({
            "EXTNAME": "EVENTS", "CREATOR": "bkgdask.store_writer", **_GADF,
            "HDUCLAS1": "EVENTS", "TELESCOP": "HESS", "INSTRUME": "H.E.S.S. Phase I",
            "OBS_ID": int(run.obs_id), **tspan, **_TIME_KEYS, "ONTIME": ontime,
            "LIVETIME": DEADC * ontime, "DEADC": DEADC, "OBJECT": run.target_name,
            "RA_PNT": float(run.ra_pnt), "DEC_PNT": float(run.dec_pnt),
            "ALT_PNT": float(run.alt_pnt), "AZ_PNT": float(run.az_pnt),
            "RADECSYS": "ICRS", "EQUINOX": 2000.0, "OBS_MODE": "POINTING", "N_TELS": 4,
            **_SITE, "MUONEFF": float(run.muoneff), "EUNIT": "TeV",
        }),
    )  # fmt: skip
    gti_hdu = fits.BinTableHDU.from_columns(
        [fits.Column(k, "1D", unit="s", array=gti[:, i]) for i, k in enumerate(("START", "STOP"))],
        header=_header({"EXTNAME": "GTI", **_GADF, "HDUCLAS1": "GTI", **_TIME_KEYS, **tspan}),
    )
    return fits.HDUList([fits.PrimaryHDU(), events, gti_hdu])


def _write_atomic(hdul: fits.HDUList, path: Path, compress: bool) -> int:
    """Write ``hdul`` to ``path`` atomically; return the file's size."""
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    data = buffer.getvalue()
    if compress:
        # level 6 (gzip's default): as small as 9 on event data, 8x faster; mtime=0: byte-identical
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return write_bytes_atomic(data, path)


@dataclass(frozen=True)
class RunRows:
    """Index rows of one written run: small and picklable (what a Dask task returns).

    ``obs_row`` is keyed by ``OBS_INDEX_COLUMNS`` (times MET s, angles deg); ``hdu_rows``
    are the ``events`` and ``gti`` rows keyed by ``HDU_INDEX_COLUMNS`` (``SIZE`` bytes).
    """

    obs_row: dict[str, object]
    hdu_rows: tuple[dict[str, object], ...]

    @property
    def obs_id(self) -> int:
        return int(self.obs_row["OBS_ID"])


def _has_hdu_index(outdir: Path) -> bool:
    """Whether ``outdir`` holds ``hdu-index.fits[.gz]``."""
    return any((outdir / f"hdu-index.{ext}").exists() for ext in ("fits.gz", "fits"))


def _check_index(obs_ids: Sequence[int], obs_index_columns: Sequence[str] | None) -> list[str]:
    """Check obs_ids are unique; return the obs-index columns in order, ``OBS_ID`` first."""
    if len(set(obs_ids)) != len(obs_ids):
        raise ValueError(f"obs_id values must be unique, got {list(obs_ids)}")
    columns = list(OBS_INDEX_COLUMNS if obs_index_columns is None else obs_index_columns)
    unknown = set(columns) - set(OBS_INDEX_COLUMNS)
    if unknown:
        raise ValueError(f"unknown obs-index columns {sorted(unknown)}")
    return ["OBS_ID"] + [c for c in OBS_INDEX_COLUMNS[1:] if c in columns]


def _write_checked_run(
    outdir: Path, run: RunSpec, gti: np.ndarray, time: np.ndarray, compress: bool
) -> RunRows:
    """Write one validated run to ``outdir/data``; return its index rows."""
    (outdir / "data").mkdir(parents=True, exist_ok=True)
    fname = f"run_{run.obs_id:06d}{'.fits.gz' if compress else '.fits'}"
    size = _write_atomic(_run_hdus(run, gti, time), outdir / "data" / fname, compress)
    obs_id = int(run.obs_id)
    hdu_rows = tuple(
        dict(zip(HDU_INDEX_COLUMNS, (obs_id, kind, kind, "data", fname, name, size), strict=True))
        for kind, name in (("events", "EVENTS"), ("gti", "GTI"))
    )
    ontime = float(np.sum(gti[:, 1] - gti[:, 0]))
    values = (obs_id, float(run.ra_pnt), float(run.dec_pnt), 90.0 - float(run.alt_pnt),
              float(run.alt_pnt), float(run.az_pnt), ontime, DEADC * ontime, DEADC,
              float(gti[0, 0]), float(gti[-1, 1]), 4, float(run.muoneff), len(time),
              run.target_name, run.target_name)  # fmt: skip
    return RunRows(dict(zip(OBS_INDEX_COLUMNS, values, strict=True)), hdu_rows)


def write_run(outdir: str | Path, run: RunSpec, *, compress: bool = True) -> RunRows:
    """Write one run's file, ``outdir/data/run_<obs_id:06d>.fits[.gz]``, atomically.

    No index is touched: pass the rows of all runs to :func:`write_indexes`.

    Parameters
    ----------
    outdir : str or Path
        Store folder; ``outdir/data`` is created if needed.
    run : RunSpec
        The run; a ``ValueError`` if it is inconsistent (event arrays, GTIs, obs_id).
    compress : bool
        Gzip the file (``.fits.gz``); otherwise write ``.fits``.

    Returns
    -------
    RunRows
        The run's observation-index row and its two HDU-index rows.
    """
    gti, time = _validate(run)
    return _write_checked_run(Path(outdir), run, gti, time, compress)


def write_indexes(
    outdir: str | Path,
    rows: Sequence[RunRows],
    *,
    obs_index_columns: Sequence[str] | None = None,
) -> Path:
    """Write ``obs-index.fits.gz``, then ``hdu-index.fits.gz``, from collected run rows.

    Parameters
    ----------
    outdir : str or Path
        Store folder holding the run files; a ``FileExistsError`` if it already holds
        an HDU index.
    rows : sequence of RunRows
        Rows returned by :func:`write_run`, in table order; ``obs_id`` values unique.
    obs_index_columns : sequence of str or None
        If given, write only these observation-index columns (``OBS_ID`` always).
        Choose from ``OBS_INDEX_COLUMNS``.

    Returns
    -------
    Path
        ``Path(outdir)``.
    """
    outdir = Path(outdir)
    columns = _check_index([r.obs_id for r in rows], obs_index_columns)
    if _has_hdu_index(outdir):
        raise FileExistsError(f"{outdir} already contains an HDU index")
    obs = {c: [r.obs_row[c] for r in rows] for c in columns}
    hdu = {c: [h[c] for r in rows for h in r.hdu_rows] for c in HDU_INDEX_COLUMNS}
    obs_hdu = _index_hdu(obs, "OBS", {**_TIME_KEYS, **_SITE})
    _write_atomic(fits.HDUList([fits.PrimaryHDU(), obs_hdu]), outdir / "obs-index.fits.gz", True)
    hdu_hdu = _index_hdu(hdu, "HDU", {})
    _write_atomic(fits.HDUList([fits.PrimaryHDU(), hdu_hdu]), outdir / "hdu-index.fits.gz", True)
    return outdir


def write_store(
    outdir: str | Path,
    runs: Sequence[RunSpec],
    *,
    compress: bool = True,
    obs_index_columns: Sequence[str] | None = None,
) -> Path:
    """Write a GADF DL3 data store (events and GTIs, no IRFs).

    Writes ``data/run_<obs_id:06d>.fits[.gz]`` per run (:func:`write_run`), then
    ``obs-index.fits.gz`` and last ``hdu-index.fits.gz`` (:func:`write_indexes`), each
    atomically; an interrupted call therefore never leaves a store whose HDU index
    points at missing files. Every run is validated before anything is written.

    Parameters
    ----------
    outdir : str or Path
        Store folder, created if needed.
    runs : sequence of RunSpec
        Runs to write; ``obs_id`` values must be unique.
    compress : bool
        Gzip the run files (``.fits.gz``); otherwise write ``.fits``. The index files
        are always gzipped (the names gammapy looks for by default).
    obs_index_columns : sequence of str or None
        As in :func:`write_indexes`, e.g. to mimic stores without ``ZEN_PNT``.

    Returns
    -------
    Path
        ``Path(outdir)``.

    Raises
    ------
    FileExistsError
        If ``outdir`` already holds an HDU index.
    ValueError
        If a run is inconsistent (event arrays, GTIs, obs_id) or a column is unknown.
    """
    outdir = Path(outdir)
    if _has_hdu_index(outdir):
        raise FileExistsError(f"{outdir} already contains an HDU index")
    _check_index([run.obs_id for run in runs], obs_index_columns)
    checked = [(run, _validate(run)) for run in runs]  # validate everything before writing
    (outdir / "data").mkdir(parents=True, exist_ok=True)
    rows = [_write_checked_run(outdir, run, *gti_time, compress) for run, gti_time in checked]
    return write_indexes(outdir, rows, obs_index_columns=obs_index_columns)
