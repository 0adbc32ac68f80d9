"""The lean FITS reader against astropy: values, layouts, gzip members, every error, fuzzing."""

from __future__ import annotations

import gzip
import io
import itertools
import re
import zlib

import numpy as np
import pytest
from astropy.io import fits
from conftest import data_dir

from bkgdask.io import fitsread
from bkgdask.io.fitsread import FitsFormatError, parse_header, read_header, read_tables

N_ROWS = 300


def scalar_columns(rng: np.random.Generator, n: int, byteorder: str) -> dict:
    """Columns of every readable type, as numpy arrays of the given byte order.

    Name -> (TFORM, values written, TZERO, TSCAL). :func:`set_scaling` sets the
    TZERO/TSCAL given here, and the TZERO of unsigned (and signed-byte) columns, in
    the header after writing, so that the stored values are those written.
    """

    def typed(values, dtype):
        return np.asarray(values).astype(np.dtype(dtype).newbyteorder(byteorder))

    ints = rng.integers(-(2**15), 2**15, n)
    return {
        "FLAG": ("L", rng.uniform(size=n) < 0.5, None, None),
        "TEL": ("B", typed(rng.integers(0, 256, n), "u1"), None, None),
        "SBYTE": ("B", typed(rng.integers(-128, 128, n), "i1"), None, None),
        "PATT": ("I", typed(ints, "i2"), None, None),
        "U16": ("I", typed(rng.integers(0, 2**16, n), "u2"), None, None),
        "MULTIP": ("J", typed(rng.integers(-(2**31), 2**31, n), "i4"), None, None),
        "U32": ("J", typed(rng.integers(0, 2**32, n, dtype=np.uint64), "u4"), None, None),
        "EVENT_ID": ("K", typed(rng.integers(-(2**63), 2**63 - 1, n), "i8"), None, None),
        "U64": ("K", typed(rng.integers(0, 2**64 - 1, n, dtype=np.uint64), "u8"), None, None),
        "ENERGY": ("E", typed(10 ** rng.uniform(-1, 2, n), "f4"), None, None),
        "TIME": ("D", typed(1e8 + rng.uniform(0, 1680, n), "f8"), None, None),
        "SCALED_I": ("I", typed(ints, "i2"), 10, 0.5),
        "SCALED_J": ("J", typed(ints, "i4"), -3.25, 1e-3),
        "SCALED_E": ("E", typed(rng.normal(size=n), "f4"), 1.5, 2.0),
        "SCALED_D": ("D", typed(rng.normal(size=n), "f8"), 0, 1e-7),
    }


READABLE = [
    "FLAG", "TEL", "SBYTE", "PATT", "U16", "MULTIP", "U32", "EVENT_ID", "U64",
    "ENERGY", "TIME", "SCALED_I", "SCALED_J", "SCALED_E", "SCALED_D",
]  # fmt: skip


def events_hdu(n: int, byteorder: str = ">", seed: int = 1) -> fits.BinTableHDU:
    """An EVENTS table with every readable column type and some the reader does not read."""
    rng = np.random.default_rng(seed)
    units = {"ENERGY": "TeV", "TIME": "s"}
    columns = [
        fits.Column(k, v[0], array=v[1], unit=units.get(k))
        for k, v in scalar_columns(rng, n, byteorder).items()
    ]
    columns += [
        fits.Column("NAME", "12A", array=np.array([f"ev{i}" for i in range(n)])),
        fits.Column("BITS", "3X", array=rng.uniform(size=(n, 3)) < 0.5),
        fits.Column("VEC", "2E", array=rng.normal(size=(n, 2)).astype(np.float32)),
        fits.Column("CPLX", "C", array=rng.normal(size=n) + 1j),
        fits.Column("VAR", "PE()", array=[np.arange(i % 4, dtype=np.float32) for i in range(n)]),
    ]
    hdu = fits.BinTableHDU.from_columns(columns, name="EVENTS")
    hdu.header["OBJECT"] = "O'Brien's ''field''"
    hdu.header["EMPTYSTR"] = ""
    hdu.header["RA_PNT"] = (83.633, "deg")
    hdu.header["LIVE"] = True
    hdu.header["DEAD"] = False
    for i in range(150):  # a header of several blocks
        hdu.header[f"KEY{i:05d}"] = (i * 1.25 if i % 2 else f"value '{i}'", "a comment")
    return hdu


def irf_hdu(n_offsets: int) -> fits.BinTableHDU:
    """An AEFF-like HDU: one row of array columns, as DL3 files have after EVENTS and GTI.

    Its 80 B per offset bin compress little, so that a reader stopping after GTI
    leaves most of the gzip stream uninflated.
    """
    energy = np.logspace(-1, 2, 21, dtype=np.float32)
    area = np.random.default_rng(3).uniform(size=(1, n_offsets, 20)).astype(np.float32)
    columns = [
        fits.Column("ENERG_LO", "20E", array=energy[None, :-1]),
        fits.Column("ENERG_HI", "20E", array=energy[None, 1:]),
        fits.Column("EFFAREA", f"{20 * n_offsets}E", dim=f"(20,{n_offsets})", array=area),
    ]
    return fits.BinTableHDU.from_columns(columns, name="AEFF")


def dl3_bytes(n: int = N_ROWS, byteorder: str = ">", seed: int = 1, n_offsets: int = 6) -> bytes:
    """An uncompressed DL3-like file: primary, EVENTS, GTI, an IRF table, an image."""
    gti = fits.BinTableHDU.from_columns(
        [
            fits.Column("START", "D", array=[1e8, 1e8 + 900]),
            fits.Column("STOP", "D", array=[1e8 + 800, 1e8 + 1680]),
        ],
        name="GTI",
    )
    image = fits.ImageHDU(np.arange(30, dtype=np.int16).reshape(5, 6), name="IMAGE")
    hdus = fits.HDUList(
        [fits.PrimaryHDU(), events_hdu(n, byteorder, seed), gti, irf_hdu(n_offsets), image]
    )
    buffer = io.BytesIO()
    hdus.writeto(buffer)
    return set_scaling(buffer.getvalue())


def set_scaling(raw: bytes) -> bytes:
    """Add TZERO/TSCAL to the EVENTS columns that have them, through astropy."""
    rng = np.random.default_rng(0)
    specs = list(scalar_columns(rng, 1, ">").values())
    with fits.open(io.BytesIO(raw)) as hdus:
        header = hdus["EVENTS"].header
        for i, (tform, values, zero, scale) in enumerate(specs, start=1):
            if zero is not None:
                header[f"TZERO{i}"], header[f"TSCAL{i}"] = zero, scale
            elif values.dtype.kind == "u" and tform != "B":
                header[f"TZERO{i}"] = 1 << (8 * values.dtype.itemsize - 1)
            elif values.dtype.kind == "i" and tform == "B":
                header[f"TZERO{i}"] = -128
        out = io.BytesIO()
        hdus.writeto(out)
    return out.getvalue()


def gzip_members(raw: bytes, cuts: list[int]) -> bytes:
    """``raw`` gzipped as one member per piece between ``cuts``."""
    edges = [0, *cuts, len(raw)]
    return b"".join(gzip.compress(raw[a:b], mtime=0) for a, b in itertools.pairwise(edges))


def astropy_columns(path, extname: str, names: list[str]) -> dict[str, np.ndarray]:
    with fits.open(path) as hdus:
        return {name: np.array(hdus[extname].data[name]) for name in names}


def assert_same_as_astropy(path, tables) -> None:
    expected = astropy_columns(path, "EVENTS", READABLE)
    for name in READABLE:
        got = tables["EVENTS"].columns[name]
        assert got.dtype.isnative and got.shape == expected[name].shape, name
        np.testing.assert_array_equal(got, expected[name], err_msg=name)
        if expected[name].dtype.kind in "biu":
            assert got.dtype == expected[name].dtype.newbyteorder("="), name
    np.testing.assert_array_equal(
        tables["GTI"].columns["STOP"], astropy_columns(path, "GTI", ["STOP"])["STOP"]
    )
    with fits.open(path) as hdus:
        for key, value in hdus["EVENTS"].header.items():
            if key not in ("COMMENT", "HISTORY", ""):
                assert tables["EVENTS"].header[key] == value, key


WANTED = {"EVENTS": READABLE, "GTI": ["START", "STOP"]}


@pytest.mark.parametrize("byteorder", [">", "<"])
@pytest.mark.parametrize(
    "packing", ["plain", "gzip", "gzip-members", "gzip-tiny-members", "gzip-block-members"]
)
def test_columns_and_header_as_astropy(tmp_path, byteorder, packing):
    raw = dl3_bytes(byteorder=byteorder)
    cuts = {
        "gzip-members": [100, 2880 * 3 + 17, len(raw) // 2],
        "gzip-tiny-members": list(range(7, len(raw), 997)),
        "gzip-block-members": list(range(2880, len(raw), 2880)),
    }
    path = tmp_path / ("run.fits" if packing == "plain" else "run.fits.gz")
    path.write_bytes(raw if packing == "plain" else gzip_members(raw, cuts.get(packing, [])))
    for verify in (True, False):
        tables = read_tables(path, WANTED, verify=verify)
        assert_same_as_astropy(path, tables)
    header = tables["EVENTS"].header
    assert header["OBJECT"] == "O'Brien's ''field''" and header["EMPTYSTR"] == ""
    assert len(header) > 3 * 2880 // 80  # several blocks
    with fits.open(path) as hdus:
        units = {c.name: c.unit or "" for c in hdus["EVENTS"].columns if c.name in READABLE}
    assert tables["EVENTS"].units == units


def test_units_and_types(tmp_path):
    path = tmp_path / "run.fits.gz"
    path.write_bytes(gzip.compress(dl3_bytes()))
    events = read_tables(path, {"events": ["ENERGY", "FLAG", "U64", "SCALED_I"]})["events"]
    assert events.units["ENERGY"] == "TeV"
    assert events.columns["ENERGY"].dtype == np.float64
    assert events.columns["FLAG"].dtype == np.bool_
    assert events.columns["U64"].dtype == np.uint64
    assert events.columns["U64"].max() > 2**63  # exact, not through float64
    assert events.columns["SCALED_I"].dtype == np.float64


@pytest.mark.parametrize("packing", ["plain", "gzip"])
def test_empty_table(tmp_path, packing):
    raw = dl3_bytes(n=0)
    path = tmp_path / f"run.fits{'.gz' if packing == 'gzip' else ''}"
    path.write_bytes(gzip.compress(raw) if packing == "gzip" else raw)
    tables = read_tables(path, WANTED)
    assert_same_as_astropy(path, tables)
    assert all(column.size == 0 for column in tables["EVENTS"].columns.values())


def test_hdus_after_and_headers_only(tmp_path):
    path = tmp_path / "run.fits.gz"
    path.write_bytes(gzip_members(dl3_bytes(), [5000]))
    with fits.open(path) as hdus:
        expected = dict(hdus["AEFF"].header)
    header = read_header(path, "aeff")
    assert {k: header[k] for k in expected if k not in ("COMMENT", "HISTORY")} == {
        k: v for k, v in expected.items() if k not in ("COMMENT", "HISTORY")
    }
    both = read_tables(path, {"GTI": [], "EVENTS": []})
    assert both["GTI"].header["EXTNAME"] == "GTI" and both["EVENTS"].columns == {}
    assert read_tables(path, {}) == {}


def test_layouts_remembered_by_their_cards(tmp_path, monkeypatch):
    """A remembered column layout serves only files whose layout cards say the same."""
    raw = dl3_bytes(n=20)
    renamed = raw.replace(b"TTYPE11 = 'TIME", b"TTYPE11 = 'TIMX")
    for name, blob in (("a.fits", raw), ("b.fits", renamed)):
        (tmp_path / name).write_bytes(blob)
    monkeypatch.setattr(fitsread, "MAX_LAYOUTS", 2)
    monkeypatch.setattr(fitsread, "_LAYOUTS", {})
    for _ in range(2):
        a = read_tables(tmp_path / "a.fits", WANTED)
        assert_same_as_astropy(tmp_path / "a.fits", a)
        b = read_tables(tmp_path / "b.fits", {"EVENTS": ["TIMX", "ENERGY"], "GTI": ["STOP"]})
        np.testing.assert_array_equal(b["EVENTS"].columns["TIMX"], a["EVENTS"].columns["TIME"])
        with pytest.raises(FitsFormatError, match="no column 'TIME'"):
            read_tables(tmp_path / "b.fits", EVENTS)
        assert len(fitsread._LAYOUTS) <= 2  # three layouts met: the oldest were dropped


def test_header_values():
    cards = [
        "SIMPLE  =                    T",
        "DEXP    =               1.5D3 / Fortran exponent",
        "UNDEF   =                      / no value",
        "WORD    = abc",
        "QUOTE   = ''''",
        "OPEN    = 'no end quote",
        "COMMENT   not a value",
        "END",
    ]
    header = parse_header("".join(card.ljust(80) for card in cards).encode())
    assert dict(header) == {
        "SIMPLE": True,
        "DEXP": 1500.0,
        "UNDEF": None,
        "WORD": "abc",
        "QUOTE": "'",
        "OPEN": "no end quote",
    }
    assert "DEXP" in repr(header) and len(header) == 6
    assert "WORD" in header and "COMMENT" not in header and "MISSING" not in header
    assert header.get("DEXP") == 1500.0 and header.get("MISSING", -1) == -1
    with pytest.raises(FitsFormatError, match="no END card"):
        parse_header(b"SIMPLE  =                    T".ljust(80))


# Error paths ---------------------------------------------------------------------------------


def hdu_spans(raw: bytes) -> list[tuple[int, int, int]]:
    """Per HDU: offsets of its header, its data and the end of its (padded) data."""
    with fits.open(io.BytesIO(raw)) as hdus:
        infos = [hdus.fileinfo(i) for i in range(len(hdus))]
    return [(i["hdrLoc"], i["datLoc"], i["datLoc"] + i["datSpan"]) for i in infos]


def set_card(raw: bytes, hdu: int, key: str, value: str | None) -> bytes:
    """Set (value: as written) or blank out (None) one keyword of HDU ``hdu``, in the bytes."""
    start, end, _ = hdu_spans(raw)[hdu]
    header = bytearray(raw[start:end])
    card = f"{key:8s}= {value:>20s}".ljust(80).encode() if value is not None else b" " * 80
    for pos in range(0, len(header), 80):
        if header[pos : pos + 8] == key.ljust(8).encode():
            header[pos : pos + 80] = card
            return raw[:start] + bytes(header) + raw[end:]
        if header[pos : pos + 8] == b"END     ":
            assert header[pos + 80 : pos + 88].strip() == b"", "no room for a card"
            header[pos : pos + 160] = card + b"END".ljust(80)
            return raw[:start] + bytes(header) + raw[end:]
    raise AssertionError(f"no END in HDU {hdu}")


def flip_bit(blob: bytes, bit: int) -> bytes:
    out = bytearray(blob)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _no_end_card(raw: bytes) -> bytes:
    return gzip.compress(b"SIMPLE  =                    T".ljust(2880) + b" " * 2880 * 1000)


def _garbage_after_first_member(raw: bytes) -> bytes:
    return gzip.compress(raw[: hdu_spans(raw)[2][0]]) + b"not a gzip member" * 10


def _corrupt_first_member_crc(raw: bytes) -> bytes:
    first = gzip.compress(raw[:5000], mtime=0)
    return flip_bit(first, 8 * (len(first) - 8)) + gzip.compress(raw[5000:])


EVENTS = {"EVENTS": ["ENERGY", "TIME"]}
NO_BKG = {"BKG": []}
NOT_FITS = "not a FITS file (it does not start with a SIMPLE card)"


def ev(name: str) -> dict:
    return {"EVENTS": [name]}


ERROR_CASES = {
    "empty-file": (lambda raw: b"", EVENTS, NOT_FITS),
    "not-fits": (lambda raw: b"hello world " * 500, EVENTS, NOT_FITS),
    "not-fits-gzip": (lambda raw: gzip.compress(b"hello " * 500), EVENTS, "not a FITS file"),
    "missing-hdu": (lambda raw: raw, {"EVENTS": ["TIME"], "BKG": []}, "no BKG HDU in file"),
    "missing-hdu-gzip": (lambda raw: gzip.compress(raw), NO_BKG, "no BKG HDU in file"),
    "only-primary": (lambda raw: raw[: hdu_spans(raw)[1][0]], EVENTS, "no EVENTS HDU in file"),
    "missing-column": (lambda raw: raw, ev("NOPE"), "HDU 1 (EVENTS) has no column 'NOPE'"),
    "string-not-ascii": (
        lambda raw: raw.replace(b"ev17", b"ev\xe97"),
        ev("NAME"),
        "column 'NAME' holds bytes that are not ASCII",
    ),
    "bit-column": (lambda raw: raw, ev("BITS"), "column 'BITS' has TFORM17 = '3X'"),
    "vector-column": (lambda raw: raw, ev("VEC"), "column 'VEC' has TFORM18 = '2E'"),
    "complex-column": (lambda raw: raw, ev("CPLX"), "column 'CPLX' has TFORM19 = 'C'"),
    "variable-column": (lambda raw: raw, ev("VAR"), "column 'VAR' has TFORM20 = 'PE("),
    "bad-tform": (lambda raw: set_card(raw, 1, "TFORM18", "'2Z'"), EVENTS, "TFORM18 is '2Z'"),
    "tform-number": (lambda raw: set_card(raw, 1, "TFORM1", "5"), EVENTS, "TFORM1 is 5, not"),
    "no-tfields": (lambda raw: set_card(raw, 1, "TFIELDS", None), EVENTS, "TFIELDS is missing"),
    "huge-tfields": (
        lambda raw: set_card(raw, 1, "TFIELDS", str(10**9)),
        EVENTS,
        "TFORM21 is None, not a binary-table format",
    ),
    "naxis1": (
        lambda raw: set_card(raw, 1, "NAXIS1", "99"),
        EVENTS,
        "NAXIS1 is 99, but the TFORMs add up to",
    ),
    "naxis2-negative": (
        lambda raw: set_card(raw, 1, "NAXIS2", "-1"),
        EVENTS,
        "HDU 1 (EVENTS): NAXIS2 is -1, not",
    ),
    "naxis2-float": (
        lambda raw: set_card(raw, 1, "NAXIS2", "1.5"),
        EVENTS,
        "NAXIS2 is 1.5, not an integer",
    ),
    "naxis2-missing": (lambda raw: set_card(raw, 1, "NAXIS2", None), EVENTS, "NAXIS2 is missing"),
    "naxis-skipped": (
        lambda raw: set_card(raw, 3, "NAXIS", "1000"),
        NO_BKG,
        "HDU 3 (AEFF): NAXIS is 1000",
    ),
    "naxis-1": (lambda raw: set_card(raw, 1, "NAXIS", "1"), EVENTS, "NAXIS is 1, not 2"),
    "bitpix": (
        lambda raw: set_card(raw, 1, "BITPIX", "12"),
        EVENTS,
        "BITPIX is 12, not a FITS BITPIX",
    ),
    "bitpix-table": (lambda raw: set_card(raw, 1, "BITPIX", "16"), EVENTS, "BITPIX is 16, not 8"),
    "gcount": (lambda raw: set_card(raw, 1, "GCOUNT", "2"), EVENTS, "GCOUNT is 2, not 1"),
    "pcount": (lambda raw: set_card(raw, 1, "PCOUNT", "-5"), EVENTS, "PCOUNT is -5"),
    "theap": (lambda raw: set_card(raw, 1, "THEAP", "1"), EVENTS, "THEAP is 1, outside"),
    "tscal": (
        lambda raw: set_card(raw, 1, "TSCAL10", "'x'"),
        EVENTS,
        "TSCAL10 is 'x', not a number",
    ),
    "image": (lambda raw: raw, {"IMAGE": ["X"]}, "XTENSION is 'IMAGE', not 'BINTABLE'"),
    "no-xtension": (
        lambda raw: raw[: hdu_spans(raw)[1][0]] + b"x" * 2880,
        EVENTS,
        "HDU 1: its header does not start with XTENSION",
    ),
    "no-end-card": (_no_end_card, EVENTS, "HDU 0: no END card in 1000 header blocks"),
    "truncated-header": (
        lambda raw: raw[: hdu_spans(raw)[1][0] + 100],
        EVENTS,
        "ends inside the header of HDU 1",
    ),
    "truncated-data": (
        lambda raw: raw[: hdu_spans(raw)[1][1] + 500],
        EVENTS,
        "ends inside the data of HDU 1",
    ),
    "truncated-skipped": (
        lambda raw: raw[: hdu_spans(raw)[3][1] + 5],
        NO_BKG,
        "ends inside the data of HDU 3",
    ),
    "huge-naxis2": (
        lambda raw: set_card(raw, 1, "NAXIS2", str(10**15)),
        EVENTS,
        "file ends inside the data of HDU 1 (EVENTS)",
    ),
    "huge-naxis2-gzip": (
        lambda raw: gzip.compress(set_card(raw, 1, "NAXIS2", str(10**15))),
        EVENTS,
        "file ends inside the data of HDU 1 (EVENTS)",
    ),
    "truncated-gzip": (lambda raw: gzip.compress(raw)[:-100], EVENTS, "ends inside gzip member 1"),
    "gzip-crc": (lambda raw: flip_bit(gzip.compress(raw), -64), EVENTS, "gzip member 1 is corrupt"),
    "gzip-isize": (
        lambda raw: flip_bit(gzip.compress(raw), -8),
        EVENTS,
        "gzip member 1 is corrupt",
    ),
    "gzip-first-crc": (_corrupt_first_member_crc, EVENTS, "gzip member 1 is corrupt"),
    "gzip-garbage": (_garbage_after_first_member, {"GTI": ["STOP"]}, "gzip member 2 is corrupt"),
}


@pytest.fixture(scope="module")
def small_raw() -> bytes:
    return dl3_bytes(n=20)


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_name_what_is_wrong(tmp_path, small_raw, case):
    make, wanted, message = ERROR_CASES[case]
    path = tmp_path / "broken.fits"
    path.write_bytes(make(small_raw))
    with pytest.raises(FitsFormatError, match=re.escape(message)):
        read_tables(path, wanted)


def test_verify_checks_the_rest_of_the_member(tmp_path):
    """A corrupt or missing tail after the wanted HDUs: invisible without verify, an error with."""
    blob = gzip.compress(dl3_bytes(n=20, n_offsets=2000), mtime=0)
    clean = read_tables_bytes(tmp_path, blob, EVENTS)
    for broken in (blob[: len(blob) * 3 // 4], flip_bit(blob, -64)):
        tables = read_tables_bytes(tmp_path, broken, EVENTS, verify=False)
        assert same_columns(tables, clean)
        with pytest.raises(FitsFormatError, match="gzip member 1"):
            read_tables_bytes(tmp_path, broken, EVENTS)


def read_tables_bytes(tmp_path, blob: bytes, wanted: dict, verify: bool = True) -> dict:
    path = tmp_path / "file.fits.gz"
    path.write_bytes(blob)
    return read_tables(path, wanted, verify=verify)


def same_columns(tables: dict, clean: dict) -> bool:
    """Whether ``tables`` hold the HDUs, headers and columns (values and types) of ``clean``."""
    return tables.keys() == clean.keys() and all(
        dict(table.header) == dict(clean[key].header)
        and table.columns.keys() == clean[key].columns.keys()
        and all(
            column.dtype == clean[key].columns[name].dtype
            and np.array_equal(column, clean[key].columns[name], equal_nan=column.dtype.kind == "f")
            for name, column in table.columns.items()
        )
        for key, table in tables.items()
    )


def test_fuzz_flips_and_truncations_never_read_wrong_columns(tmp_path):
    """Seeded bit flips and truncations of gzipped files: an error or the clean columns."""
    raw = dl3_bytes(n=200, seed=7, n_offsets=2000)
    blobs = [gzip.compress(raw, mtime=0), gzip_members(raw, [len(raw) // 3, 2 * len(raw) // 3])]
    clean = read_tables_bytes(tmp_path, blobs[0], WANTED)
    rng = np.random.default_rng(2024)
    outcomes = {"error": 0, "clean": 0, "wrong without verify": 0}
    for case in range(200):
        blob = blobs[case % 2]
        if case % 4 >= 2:
            broken = blob[: int(rng.integers(0, len(blob)))]
        else:
            broken = flip_bit(blob, int(rng.integers(0, 8 * len(blob))))
        try:
            tables = read_tables_bytes(tmp_path, broken, WANTED)
        except FitsFormatError:
            outcomes["error"] += 1
        else:
            assert same_columns(tables, clean)
            outcomes["clean"] += 1
        outcomes["wrong without verify"] += _reads_wrong(tmp_path, broken, WANTED, clean)
    # The cases are hard ones: without verification some of them read wrong columns.
    # (Damage to members after the last wanted HDU is not read, hence not an error.)
    assert outcomes["wrong without verify"] > 0 and outcomes["error"] > 0, outcomes


def _reads_wrong(tmp_path, blob: bytes, wanted: dict, clean: dict) -> bool:
    """Whether ``blob`` reads without error into other columns than ``clean`` when not verified."""
    try:
        return not same_columns(read_tables_bytes(tmp_path, blob, wanted, verify=False), clean)
    except FitsFormatError:
        return False


def compressed_span(blob: bytes, start: int, stop: int) -> tuple[int, int]:
    """Compressed byte range of a single-member gzip file that inflates within [start, stop)."""
    inflater = zlib.decompressobj(31)
    produced, first, last = 0, None, None
    for pos in range(0, len(blob), 256):
        produced += len(inflater.decompress(blob[pos : pos + 256]))
        if first is None and produced >= start:
            first = pos + 256
        if produced < stop:
            last = pos
    assert first is not None and last is not None and first < last
    return first, last


@pytest.mark.requires_data
def test_hess_run_with_a_flipped_bit_in_events_is_an_error(tmp_path):
    source = data_dir() / "hess-dl3-dr1" / "data" / "hess_dl3_dr1_obs_id_020136.fits.gz"
    blob = source.read_bytes()
    wanted = {"EVENTS": ["ENERGY", "RA", "DEC", "TIME", "EVENT_ID"], "GTI": ["START", "STOP"]}
    clean = read_tables_bytes(tmp_path, blob, wanted)
    with fits.open(source) as hdus:
        info = hdus.fileinfo(hdus.index_of("EVENTS"))
        np.testing.assert_array_equal(
            clean["EVENTS"].columns["ENERGY"], hdus["EVENTS"].data["ENERGY"]
        )
    first, last = compressed_span(blob, info["datLoc"], info["datLoc"] + info["datSpan"])
    rng = np.random.default_rng(5)
    silently_wrong = 0
    for _ in range(40):
        broken = flip_bit(blob, int(rng.integers(8 * first, 8 * last)))
        try:
            tables = read_tables_bytes(tmp_path, broken, wanted)
        except FitsFormatError as exc:
            assert "gzip member 1" in str(exc) or "HDU" in str(exc)
        else:
            assert same_columns(tables, clean)
        if _reads_wrong(tmp_path, broken, wanted, clean):
            silently_wrong += 1
            if silently_wrong == 3:
                break
    # The flips tried include ones that read wrong columns when not verified.
    assert silently_wrong == 3


@pytest.mark.parametrize("packing", ["plain", "gzip"])
def test_string_columns_as_astropy(tmp_path, packing):
    raw = dl3_bytes()
    path = tmp_path / ("s.fits.gz" if packing == "gzip" else "s.fits")
    path.write_bytes(gzip.compress(raw) if packing == "gzip" else raw)
    got = read_tables(path, {"EVENTS": ["NAME", "TIME"]})["EVENTS"].columns["NAME"]
    expected = astropy_columns(path, "EVENTS", ["NAME"])["NAME"]
    assert got.dtype.kind == "U" and got.shape == (N_ROWS,)
    np.testing.assert_array_equal(got, expected)
    assert got[17] == "ev17" and (got == "ev3").sum() == 1


def test_string_columns_blank_padded(tmp_path):
    names = np.array(["on ", "off", "", "a b"])
    columns = [
        fits.Column("WHERE", "5A", array=names),
        fits.Column("ID", "J", array=np.arange(4)),
    ]
    path = tmp_path / "s.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns, name="T")]).writeto(
        path
    )
    got = read_tables(path, {"T": ["WHERE", "ID"]})["T"].columns
    assert got["WHERE"].tolist() == ["on", "off", "", "a b"]
    assert got["ID"].tolist() == [0, 1, 2, 3]
