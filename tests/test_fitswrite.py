"""The FITS writer: valid files astropy reads back as written, its cards as astropy writes them."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from helpers import OFF, small_store

import bkgdask
from bkgdask.config import BuildConfig
from bkgdask.io.fitsheader import BLOCK, CARD
from bkgdask.io.fitswrite import BinTable, HeaderCards, fits_file

#: A value longer than a card, with quotes where its pieces are cut, and its long comment.
LONG = "(MC_ID == 1) & (ENERGY > 0.5) | " * 3 + "'" * 7 + " x" * 30 + "'"
LONG_COMMENT = "what the filter keeps, " * 8


def _columns(n: int = 4) -> dict:
    rng = np.random.default_rng(2)
    return {
        "FLAG": np.arange(n) % 2 == 0,
        "BYTE": np.arange(n, dtype=np.uint8),
        "SHORT": np.arange(n, dtype=np.int16) - 7,
        "INT": np.arange(n, dtype=np.int32) * -100_000,
        "LONG": np.arange(n, dtype=np.int64) << 40,
        "SINGLE": rng.normal(size=n).astype(np.float32),
        "DOUBLE": rng.normal(size=n),
        "NAME": np.array(["a", "", "ccc", "it's"])[:n],
        "TAG": np.array([b"x", b"yy", b"", b"z"])[:n],
        "EDGES": rng.normal(size=(n, 5)),
        "CUBE": rng.normal(size=(n, 2, 3, 4)).astype(np.float32),
        "NAN": np.full(n, np.nan),
    }


def _open(data: bytes) -> fits.HDUList:
    """astropy's reading of ``data``, verified strictly (no warning passes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hdus = fits.open(io.BytesIO(data))
        hdus.verify("exception")
    return hdus


def _table() -> BinTable:
    table = BinTable(
        "EVENTS",
        _columns(),
        units={"DOUBLE": "TeV", "CUBE": "s-1 MeV-1 sr-1", "NAME": ""},
        header={"TELESCOP": ("HESS", "telescope"), "EMPTY": ""},
    )
    table.header.update(
        {
            "PI": (3.141592653589793, "a float as read back"),
            "TINY": 5e-324,
            "HUGE": (1.7976931348623157e308, "largest float64"),
            "ROUND": 1e16,
            "NEG": -1.2345678901234567e-100,
            "NUMPY": np.float32(0.1),
            "COUNT": (np.int64(-3), "a numpy integer"),
            "OK": (True, "logical"),
            "NOTOK": np.False_,
            "quote": "it's",
            "EVTFILT": (LONG, LONG_COMMENT),
            "LONGNOC": LONG,
            "SHORTV": ("x", LONG_COMMENT),
        }
    )
    table.header["OK"] = False  # a bare value keeps the comment
    table.header.add_comment("C" * 150)
    table.header.add_comment("")
    return table


def test_astropy_reads_back_what_was_written():
    table = _table()
    (primary, hdu) = _open(fits_file([table]))
    assert primary.header["SIMPLE"] is True and primary.header["NAXIS"] == 0
    assert hdu.name == "EVENTS" and len(hdu.data) == 4
    for name, values in _columns().items():
        read = hdu.data[name]
        assert read.shape == np.shape(values), name
        if np.asarray(values).dtype.kind in "SU":
            assert read.tolist() == [v.decode() if isinstance(v, bytes) else v for v in values]
        else:
            assert read.dtype.newbyteorder("=") == np.asarray(values).dtype.newbyteorder("=")
            np.testing.assert_array_equal(read, values)
        np.testing.assert_array_equal(read, table.data[name].astype(read.dtype))
    formats = {c.name: (c.format, c.unit, c.dim) for c in hdu.columns}
    assert formats["FLAG"] == ("L", None, None) and formats["BYTE"][0] == "B"
    assert [formats[n][0] for n in ("SHORT", "INT", "LONG", "SINGLE", "DOUBLE")] == list("IJKED")
    assert formats["NAME"] == ("4A", None, None) and formats["TAG"][0] == "2A"
    assert formats["EDGES"] == ("5D", None, "(5)") and formats["DOUBLE"][1] == "TeV"
    assert formats["CUBE"] == ("24E", "s-1 MeV-1 sr-1", "(4,3,2)")
    for key in table.header:
        assert hdu.header[key] == table.header[key], key
        assert type(hdu.header[key]) is type(table.header[key]), key
    assert hdu.header.comments["OK"] == "logical" and hdu.header["EVTFILT"] == LONG
    assert hdu.header.comments["EVTFILT"] == LONG_COMMENT.rstrip()
    assert hdu.header["QUOTE"] == "it's" and hdu.header["EMPTY"] == ""
    assert list(hdu.header["COMMENT"]) == ["C" * 72, "C" * 72, "C" * 6, ""]  # 72 a card


def test_layout_cards_blocks_and_padding():
    """Blocks of 2880 bytes, headers blank-padded after END, data zero-padded; keyword order."""
    data = fits_file([_table(), BinTable("EMPTY", {"X": np.zeros(0)})])
    hdus = _open(data)
    end_of_last = 0
    for hdu in hdus:
        info = hdu.fileinfo()
        assert info["hdrLoc"] == end_of_last and info["datLoc"] % BLOCK == 0
        text = data[info["hdrLoc"] : info["datLoc"]].decode("ascii")
        cards = [text[i : i + CARD] for i in range(0, len(text), CARD)]
        end = cards.index(f"{'END':{CARD}}")
        assert all(card == " " * CARD for card in cards[end + 1 :])
        keys = [card[:8].rstrip() for card in cards[:end]]
        if hdu is not hdus[0]:
            assert keys[:8] == "XTENSION BITPIX NAXIS NAXIS1 NAXIS2 PCOUNT GCOUNT TFIELDS".split()
            expected = []
            for i, column in enumerate(hdu.columns, start=1):
                expected += [f"TTYPE{i}", f"TFORM{i}"]
                expected += [f"TUNIT{i}"] * bool(column.unit) + [f"TDIM{i}"] * bool(column.dim)
            assert keys[8 : 8 + len(expected)] == expected
        span = info["datSpan"]
        used = hdu.header.get("NAXIS1", 0) * hdu.header.get("NAXIS2", 0)
        body = data[info["datLoc"] : info["datLoc"] + span]
        assert span % BLOCK == 0 and span - used < BLOCK and body[used:] == bytes(span - used)
        end_of_last = info["datLoc"] + span
    assert end_of_last == len(data) and len(hdus) == 3


def test_cards_as_astropy_writes_them():
    """Byte for byte astropy's file of the same columns, units, keywords and comments."""
    table = _table()
    # astropy cuts floats to 20 characters, writes 1E+16 for 1.0E+16, and '' unpadded
    for key in ("TINY", "HUGE", "NEG", "ROUND", "EMPTY"):
        del table.header[key]
    theirs = fits.BinTableHDU.from_columns(table.data, name=table.name)
    for column in theirs.columns:
        if column.name in table.units:
            column.unit = table.units[column.name]
    for key in table.header:
        theirs.header[key] = (table.header[key], table.header._cards[key][1])
    for text in table.header.comments:
        theirs.header.add_comment(text)
    expected = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's warnings on the long comment
        fits.HDUList([fits.PrimaryHDU(), theirs]).writeto(expected)
    assert fits_file([table]) == expected.getvalue()


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("NAN", np.nan, "finite"),
        ("INF", -np.inf, "finite"),
        ("TOOLONGKW", 1, "1 to 8 characters"),
        ("BAD KEY", 1, "1 to 8 characters"),
        ("NAXIS2", 3, "set by the writer"),
        ("TTYPE1", "X", "set by the writer"),
        ("EXTNAME", "X", "set by the writer"),
        ("TEXT", "é", "printable ASCII"),
        ("TEXT", "a\nb", "printable ASCII"),
        ("NONE", None, "type NoneType"),
        ("LIST", [1], "type list"),
        ("CMT", (1, "é"), "printable ASCII"),
    ],
)
def test_header_refuses_what_fits_cannot_hold(key, value, match):
    with pytest.raises(ValueError, match=match):
        HeaderCards()[key] = value


@pytest.mark.parametrize(
    ("columns", "units", "match"),
    [
        ({"A": np.zeros(2), "B": np.zeros(3)}, {}, "differ in length"),
        ({"A": np.zeros(2, np.int8)}, {}, "type int8"),
        ({"A": np.zeros(2, np.complex128)}, {}, "type complex128"),
        ({"A": np.array(["é"])}, {}, "non-ASCII"),
        ({"A": np.array([["a"]])}, {}, "one string a row"),
        ({"A": 1.0}, {}, "no row axis"),
        ({"A": np.zeros(2)}, {"B": "m"}, "columns \\['B'\\]"),
    ],
)
def test_table_refuses_what_fits_cannot_hold(columns, units, match):
    with pytest.raises(ValueError, match=match):
        BinTable("X", columns, units)


def test_header_is_a_mapping_as_astropy_s():
    header = HeaderCards({"A": (1, "one")})
    header["a"] = 2
    header.update({"B": ("b", "bee")}, C=1.5)
    assert dict(header) == {"A": 2, "B": "b", "C": 1.5}
    assert "b" in header and header.get("MISSING", 7) == 7
    assert [card[:8].rstrip() for card in header.images()] == ["A", "B", "C"]
    assert header.images()[0].endswith(f"{2:>20} / one".ljust(70))


def test_bundle_indexes_as_astropy_writes_the_tables(tmp_path):
    """HDU_INDEX and OBS_INDEX: columns, values, units, dims and keywords of ``table_to_hdu``."""
    store = small_store(tmp_path / "store")
    config = BuildConfig().updated({"selection": OFF, "compute": {"scheduler": "sync"}})
    result = bkgdask.build(store, config)
    path = result.write(tmp_path / "bkg.fits.gz")
    tables = {"HDU_INDEX": result.hdu_index(path.name), "OBS_INDEX": result.obs_index()}
    with fits.open(path) as hdus:
        hdus.verify("exception")
        for name, table in tables.items():
            ours = hdus[name]
            units = {column: unit for column, unit in table.units.items() if unit}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # EXTNAME in meta
                theirs = fits.table_to_hdu(Table(table.columns, units=units, meta=table.meta))
            assert ours.columns.names == theirs.columns.names
            for a, b in zip(ours.columns, theirs.columns):
                assert (a.unit, a.dim, a.format.format) == (b.unit, b.dim, b.format.format)
                if b.format.format != "A":  # strings: the longest, not the widest
                    assert a.format == b.format
                np.testing.assert_array_equal(ours.data[a.name], theirs.data[b.name])
            skip = {"NAXIS1", *(f"TFORM{i}" for i in range(1, 1000))}
            assert [(k, v) for k, v in ours.header.items() if k not in skip] == [
                (k, v) for k, v in theirs.header.items() if k not in skip
            ]
    assert result.obs_index()["BKG_USED"].dtype == bool


def test_index_nan_and_empty_strings_written_as_they_are(tmp_path):
    from bkgdask.io.bundle import write_bundle
    from bkgdask.io.index_table import IndexTable

    table = IndexTable(
        {"OBS_ID": [1, 2], "RA": [1.0, np.nan], "NAME": ["", "b"]},
        units={"RA": "deg"},
        meta={"MJDREFI": 51910, "EXTNAME": "OBS_INDEX"},
    )
    path = write_bundle(tmp_path / "b.fits", table, table, [])
    with fits.open(path) as hdus:
        data = hdus["OBS_INDEX"].data
        assert np.isnan(data["RA"][1]) and data["RA"][0] == 1.0 and list(data["NAME"]) == ["", "b"]
        assert hdus["HDU_INDEX"].columns["RA"].unit == "deg"
        assert hdus["HDU_INDEX"].header["MJDREFI"] == 51910
