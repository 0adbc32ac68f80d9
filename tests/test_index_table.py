"""IndexTable and read_index: the store's indexes as astropy reads them, nulls, bad files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner
from conftest import data_dir
from helpers import small_store

from bkgdask.cli import cli
from bkgdask.errors import StoreError
from bkgdask.io.bundle import index_hdu
from bkgdask.io.files import write_fits_atomic
from bkgdask.io.index_table import IndexTable, read_index
from bkgdask.io.store import DataStore

SHARED_INDEXES = (
    "hess-dl3-dr1",
    "cta-1dc/index/gps",
    "magic/rad_max/data",
    "veritas/crab-point-like-ED",
)


def astropy_values(column) -> np.ndarray:
    """A column as ``Table.read`` gives it, masked entries filled as the lean reader has them."""
    if column.dtype.kind in "SU":
        filled = column.filled("") if hasattr(column, "filled") else column
        return np.char.rstrip(np.asarray(filled).astype(str), " ")
    return np.asarray(column.filled(np.nan) if hasattr(column, "filled") else column)


@pytest.mark.requires_data
@pytest.mark.parametrize("store", SHARED_INDEXES)
@pytest.mark.parametrize("name", ["hdu-index.fits.gz", "obs-index.fits.gz"])
def test_shared_indexes_as_astropy_reads_them(store, name):
    path = data_dir() / store / name
    ours, theirs = read_index(path, "index"), Table.read(path)
    assert ours.colnames == theirs.colnames and len(ours) == len(theirs) > 0
    for column in theirs.colnames:
        expected = astropy_values(theirs[column])
        assert ours[column].dtype.kind == expected.dtype.kind
        assert ours[column].dtype.kind == "U" or ours[column].dtype == expected.dtype.newbyteorder(
            "="
        )
        np.testing.assert_array_equal(ours[column], expected, err_msg=column)
        assert ours.units[column] == str(theirs[column].unit or ""), column
    assert ours.meta == {k: v for k, v in theirs.meta.items() if k != "comments"}


@pytest.mark.requires_data
def test_hess_obs_index_keeps_site_and_time_keywords(hess_dir):
    meta = read_index(hess_dir / "obs-index.fits.gz", "obs index").meta
    assert meta["MJDREFI"] == 51910 and meta["TIMESYS"] == "TT"
    assert meta["GEOLON"] == "16.5002222222222" and meta["EXTNAME"] == "OBS_INDEX"
    assert "TTYPE1" not in meta and "NAXIS2" not in meta


def write_table(path, columns: list[fits.Column], header: dict | None = None, extra=()):
    """A FITS file: primary HDU, ``extra`` HDUs, then one binary table."""
    table = fits.BinTableHDU.from_columns(columns, header=fits.Header(list((header or {}).items())))
    fits.HDUList([fits.PrimaryHDU(), *extra, table]).writeto(path)
    return path


def test_integer_nulls_become_nan_where_present(tmp_path):
    path = write_table(
        tmp_path / "index.fits",
        [
            fits.Column("OBS_ID", "K", array=np.array([1, 2, 3])),
            fits.Column("N_TELS", "J", null=-1, array=np.array([4, -1, 3])),
            fits.Column("QUALITY", "I", null=-1, array=np.array([0, 1, 0])),
            fits.Column("COUNT", "I", null=0, bzero=32768, array=np.array([5, 32768, 7])),
        ],
    )
    table = read_index(path, "index")
    np.testing.assert_array_equal(table["N_TELS"], [4.0, np.nan, 3.0])
    assert table["QUALITY"].dtype == np.int16  # null declared, none present: integers
    np.testing.assert_array_equal(table["COUNT"], [5.0, np.nan, 7.0])
    masked = Table.read(path)["N_TELS"]
    assert masked.mask.tolist() == np.isnan(table["N_TELS"]).tolist()


def test_null_obs_id_is_refused(tmp_path):
    store = small_store(tmp_path / "store")
    path = store / "obs-index.fits.gz"
    index = Table.read(path)
    ids = np.asarray(index["OBS_ID"])
    ids[1] = -1
    hdu = fits.table_to_hdu(index)
    hdu.columns["OBS_ID"].null = -1
    path.unlink()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    with pytest.raises(StoreError, match=r"observation index of .* rows without an OBS_ID"):
        DataStore.open(store)


def test_named_table_and_first_binary_table(tmp_path):
    image = fits.ImageHDU(np.zeros((2, 2)), name="IMAGE")
    first = fits.BinTableHDU.from_columns([fits.Column("A", "K", array=[1])], name="FIRST")
    second = fits.BinTableHDU.from_columns([fits.Column("B", "D", array=[2.0])], name="SECOND")
    path = tmp_path / "tables.fits.gz"
    fits.HDUList([fits.PrimaryHDU(), image, first, second]).writeto(path)
    assert read_index(path, "index").colnames == ["A"]  # the image is passed over
    assert read_index(path, "index", "second")["B"].tolist() == [2.0]
    with pytest.raises(StoreError, match=f"cannot read bundle OBS_INDEX {path}: no OBS_INDEX HDU"):
        read_index(path, "bundle OBS_INDEX", "OBS_INDEX")
    only_image = tmp_path / "image.fits"
    fits.HDUList([fits.PrimaryHDU(), image]).writeto(only_image)
    with pytest.raises(StoreError, match="no binary-table HDU"):
        read_index(only_image, "index")


def _truncated(path):
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) - 3000]))


def _corrupt(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    path.write_bytes(bytes(data))


def _vector_column(path):
    index = Table.read(path)
    index["TELLIST"] = np.zeros((len(index), 4), dtype=np.int16)
    path.unlink()
    index.write(path)


INDEX_BREAKERS = {
    "truncated": (_truncated, "truncated"),
    "corrupt-gzip": (_corrupt, "gzip member 1 is corrupt"),
    "not-fits": (lambda p: p.write_bytes(gzip.compress(b"no FITS\n" * 400)), "not a FITS file"),
    "vector-column": (_vector_column, "column 'TELLIST' has TFORM"),
}


@pytest.mark.parametrize("breaker", sorted(INDEX_BREAKERS))
def test_bad_index_is_one_store_error_naming_the_file(tmp_path, breaker):
    store = small_store(tmp_path / "store")
    path = store / "obs-index.fits.gz"
    breaking, message = INDEX_BREAKERS[breaker]
    breaking(path)
    with pytest.raises(StoreError) as caught:
        DataStore.open(store)
    text = str(caught.value)
    assert text.startswith(f"cannot read obs index {path}: ") and message in text
    assert "\n" not in text


def test_cli_build_on_a_truncated_index_exits_with_one_line(tmp_path):
    store = small_store(tmp_path / "store")
    path = store / "hdu-index.fits.gz"
    _truncated(path)
    out = tmp_path / "out" / "bundle.fits.gz"
    command = ["build", str(store), "-o", str(out), "--scheduler", "sync", "--no-progress"]
    result = CliRunner().invoke(cli, command, catch_exceptions=False)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot read HDU index")
    assert str(path) in lines[0] and "truncated" in lines[0]
    assert not out.exists()


def test_written_and_read_back_unchanged(tmp_path):
    """An IndexTable through the bundle's HDU writer and read_index: columns, units, meta."""
    table = IndexTable(
        {
            "OBS_ID": np.array([3, 1], dtype=np.int64),
            "NAME": np.array(["Crab", ""]),
            "ZEN_PNT": np.array([np.nan, 20.5]),
            "USED": np.array([True, False]),
        },
        units={"ZEN_PNT": "deg"},
        meta={"MJDREFI": 51910, "TIMESYS": "TT", "GEOLON": 16.5},
    )
    path = tmp_path / "index.fits.gz"
    write_fits_atomic([index_hdu(table, "OBS_INDEX")], path)
    back = read_index(path, "index")
    assert back.colnames == table.colnames
    for name in table.colnames:
        np.testing.assert_array_equal(back[name], table[name])
        assert back[name].dtype.kind == table[name].dtype.kind
    assert back.units == {"OBS_ID": "", "NAME": "", "ZEN_PNT": "deg", "USED": ""}
    assert back.meta == {**table.meta, "EXTNAME": "OBS_INDEX"}


def test_table_operations():
    table = IndexTable(
        {"OBS_ID": [5, 6, 7], "ZEN_PNT": [10.0, 20.0, 30.0]}, {"ZEN_PNT": "deg"}, {"A": 1}
    )
    assert len(table) == 3 and "ZEN_PNT" in table and "AZ_PNT" not in table
    taken = table.take(np.array([2, 0]))
    assert taken["OBS_ID"].tolist() == [7, 5] and taken.units["ZEN_PNT"] == "deg"
    assert table.take(table["ZEN_PNT"] > 15)["OBS_ID"].tolist() == [6, 7]
    added = table.with_column("BKG_USED", [True, False, True])
    assert added.colnames == ["OBS_ID", "ZEN_PNT", "BKG_USED"] and "BKG_USED" not in table
    replaced = table.with_column("ZEN_PNT", [1.0, 2.0, 3.0], "rad")
    assert replaced.colnames == table.colnames and replaced.units["ZEN_PNT"] == "rad"
    assert table["ZEN_PNT"].tolist() == [10.0, 20.0, 30.0]
    replaced.meta["A"] = 2
    assert table.meta == {"A": 1}  # each table has its own meta
    assert table.row(1) == {"OBS_ID": 6, "ZEN_PNT": 20.0}
    assert len(IndexTable({})) == 0
    with pytest.raises(ValueError, match="equal length"):
        IndexTable({"A": [1, 2], "B": [1]})
    with pytest.raises(ValueError, match="1-D"):
        IndexTable({"A": np.zeros((2, 2))})
