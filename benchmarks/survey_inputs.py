"""Survey of the shared stores' events: CTA-1DC MC_ID classes, event offsets of point-like stores.

Run from the repository: ``python benchmarks/survey_inputs.py`` (``$GAMMAPY_DATA``,
default ``../shared/data``). Prints, per CTA-1DC run, the fraction of events
with ``MC_ID == 1`` and the energy and offset ranges of those events; for the
MAGIC and VERITAS stores, the largest event offset from the pointing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bkgdask.io.event_filter import compile_event_filter, select_events
from bkgdask.io.fitsread import read_tables
from bkgdask.io.store import DataStore


def offsets_deg(columns: dict, header) -> np.ndarray:
    """Great-circle offset of each event from the header pointing, deg (haversine)."""
    ra, dec = np.radians(columns["RA"]), np.radians(columns["DEC"])
    ra0, dec0 = np.radians(header["RA_PNT"]), np.radians(header["DEC_PNT"])
    hav = np.sin((dec - dec0) / 2) ** 2 + np.cos(dec) * np.cos(dec0) * np.sin((ra - ra0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(hav)))


def survey_cta(store: DataStore) -> None:
    event_filter = compile_event_filter("MC_ID == 1")
    totals = np.zeros(2, dtype=np.int64)
    print(f"CTA-1DC ({store.index_path}), filter {event_filter.expression!r}")
    for obs_id, (path, hdu) in sorted(store.hdu_locations("events").items()):
        table = read_tables(path, {hdu: event_filter.wanted()})[hdu]
        kept = select_events(event_filter, table.columns)
        ids, counts = np.unique(table.columns["MC_ID"], return_counts=True)
        offset = offsets_deg(kept, table.header)
        totals += (table.columns["MC_ID"].size, kept["MC_ID"].size)
        print(
            f"  run {obs_id}: {kept['MC_ID'].size:,} of {table.columns['MC_ID'].size:,} "
            f"({kept['MC_ID'].size / table.columns['MC_ID'].size:.4f}), {ids.size} MC_IDs, "
            f"next largest {np.sort(counts)[-2] if ids.size > 1 else 0:,}; "
            f"E {kept['ENERGY'].min():.4f}-{kept['ENERGY'].max():.1f} TeV, "
            f"offset {offset.min():.3f}-{offset.max():.3f} deg"
        )
    print(f"  all runs: {totals[1]:,} of {totals[0]:,} ({totals[1] / totals[0]:.4f})")


def largest_offset(store: DataStore, name: str) -> None:
    for obs_id, (path, hdu) in sorted(store.hdu_locations("events").items()):
        table = read_tables(path, {hdu: ["RA", "DEC", "ENERGY"]})[hdu]
        offset = offsets_deg(table.columns, table.header)
        print(
            f"{name} run {obs_id}: {offset.size:,} events, offset max {offset.max():.3f} deg, "
            f"99.9 % below {np.percentile(offset, 99.9):.3f} deg"
        )


def main() -> None:
    data = Path(os.environ.get("GAMMAPY_DATA") or "../shared/data")
    survey_cta(DataStore.open(data / "cta-1dc"))
    for name in ("magic", "veritas"):
        largest_offset(DataStore.open(data / name), name)


if __name__ == "__main__":
    main()
