"""Tests for bkgdask.io.query, the safe run-selection language."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bkgdask.errors import SelectionError
from bkgdask.io.index_table import IndexTable, read_index
from bkgdask.io.query import evaluate_columns, select_rows, validate_expression

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def table() -> IndexTable:
    """A small obs-index-like table with FITS-style byte strings and NaN (null) entries."""
    return IndexTable(
        {
            "OBS_ID": np.array([20136, 20137, 20151, 23523, 23526], dtype=np.int64),
            "TARGET_NAME": np.array(
                [b"Crab Nebula  ", b"Crab Nebula", b"Off data    ", b"MSH 15-52", b"crab nebula"],
                dtype="S13",
            ),
            "TARGET_TAG": np.array(["crab ", "crab", "off", "msh1552", "crab"]),
            "ZEN_PNT": np.array([15.0, 25.5, 45.0, np.nan, np.nan]),
            "SAFE": np.array([True, False, True, True, False]),
        }
    )


def rows(table: IndexTable, expression: str) -> list[int]:
    mask = select_rows(table, expression)
    assert mask.dtype == bool
    assert mask.shape == (len(table),)
    return [int(obs_id) for obs_id in table["OBS_ID"][mask]]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("OBS_ID == 20136", [20136]),
        ("OBS_ID != 20136", [20137, 20151, 23523, 23526]),
        ("OBS_ID < 20151", [20136, 20137]),
        ("OBS_ID <= 20151", [20136, 20137, 20151]),
        ("OBS_ID > 23523", [23526]),
        ("OBS_ID >= 23523", [23523, 23526]),
        ("20137 < OBS_ID", [20151, 23523, 23526]),
        ("OBS_ID > 2.0136e4", [20137, 20151, 23523, 23526]),
        ("ZEN_PNT > -1", [20136, 20137, 20151]),
        ("ZEN_PNT > -1.5e1", [20136, 20137, 20151]),
        ("ZEN_PNT < +20", [20136]),
        ("20 <= ZEN_PNT < 40", [20137]),
        ("10 < ZEN_PNT <= 25.5", [20136, 20137]),
        ("OBS_ID in [20136, 23523, 99999]", [20136, 23523]),
        ("OBS_ID in (20136,)", [20136]),
        ("OBS_ID not in [20136, 23523]", [20137, 20151, 23526]),
        ("OBS_ID in []", []),
        ("OBS_ID not in []", [20136, 20137, 20151, 23523, 23526]),
        ("TARGET_NAME == 'Crab Nebula'", [20136, 20137]),
        ('TARGET_NAME == "Off data"', [20151]),
        ("TARGET_NAME != 'Crab Nebula'", [20151, 23523, 23526]),
        ("TARGET_NAME in ['Crab Nebula', 'Off data']", [20136, 20137, 20151]),
        ("TARGET_NAME not in ['Crab Nebula', 'Off data']", [23523, 23526]),
        ("TARGET_NAME == 'Crab Nebula  '", []),
        ("TARGET_NAME < 'D'", [20136, 20137]),
        ("TARGET_TAG == 'crab'", [20136, 20137, 23526]),
        ("SAFE == True", [20136, 20151, 23523]),
        ("SAFE != True", [20137, 23526]),
        ("SAFE in [False]", [20137, 23526]),
        ("OBS_ID < 20150 and ZEN_PNT > 20", [20137]),
        ("OBS_ID == 20136 or OBS_ID == 23526", [20136, 23526]),
        ("not OBS_ID == 20136", [20137, 20151, 23523, 23526]),
        ("not (OBS_ID == 20136 or OBS_ID == 23526)", [20137, 20151, 23523]),
        ("OBS_ID == 20136 or OBS_ID == 20137 and ZEN_PNT > 30", [20136]),
        ("(OBS_ID == 20136 or OBS_ID == 20137) and ZEN_PNT > 20", [20137]),
        ("not OBS_ID == 20136 and not OBS_ID == 20137", [20151, 23523, 23526]),
        ("OBS_ID not in [1] and not TARGET_NAME in ['Off data'] and SAFE == True", [20136, 23523]),
        ("  OBS_ID == 20136", [20136]),
        ("(OBS_ID == 20136\n or OBS_ID == 20137)", [20136, 20137]),
        ("ZEN_PNT == ZEN_PNT", [20136, 20137, 20151]),
        ("OBS_ID > ZEN_PNT", [20136, 20137, 20151]),
    ],
)
def test_select_rows(table, expression, expected):
    assert rows(table, expression) == expected


def test_masked_and_nan_never_satisfy_a_comparison(table):
    # rows 3 and 4 are NaN: neither satisfies <, >= or ==.
    assert rows(table, "ZEN_PNT < 100") == [20136, 20137, 20151]
    assert rows(table, "ZEN_PNT >= -100") == [20136, 20137, 20151]
    assert rows(table, "ZEN_PNT in [38.0]") == []
    # a NaN compares False, so its negation is True (documented)
    assert 23526 in rows(table, "not ZEN_PNT < 100")
    # so does a masked entry of a masked array, whatever value it hides
    masked = {"ZEN_PNT": np.ma.masked_array([15.0, 38.0], mask=[False, True])}
    assert evaluate_columns("ZEN_PNT in [38.0]", masked).tolist() == [False, False]
    assert evaluate_columns("not ZEN_PNT < 100", masked).tolist() == [False, True]


def test_unicode_trailing_spaces_stripped():
    table = IndexTable({"NAME": ["a  ", "b", " a"]})
    assert select_rows(table, "NAME == 'a'").tolist() == [True, False, False]


def test_zero_length_table(table):
    empty = table.take(slice(0, 0))
    for expression in ["OBS_ID > 0", "TARGET_NAME in ['Off data']", "not ZEN_PNT < 3"]:
        mask = select_rows(empty, expression)
        assert mask.dtype == bool
        assert mask.shape == (0,)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("OBS_ID ==", "syntax error at end of expression"),
        ("OBS_ID == == 1", "syntax error at position 11"),
        ("OBS_ID = 1", "syntax error"),
        ("(OBS_ID > 1", "syntax error"),
        ("TARGET_NAME == 'Crab", "syntax error"),
        ("OBS_ID", "must be a comparison"),
        ("42", "must be a comparison"),
        ("'Crab'", "must be a comparison"),
        ("True", "must be a comparison"),
        ("not SAFE", "must be a comparison"),
        ("OBS_ID > 1 and ZEN_PNT", "must be a comparison"),
        ("FOO == 1", "unknown column 'FOO'; available columns: OBS_ID, TARGET_NAME"),
        ("obs_id == 1", "unknown column 'obs_id'"),
        ("OBS_ID in [1, BAR]", "expected a literal, got column 'BAR'"),
        ("DATE-OBS == 1", "unsupported arithmetic"),
        ("10 < ZEN_PNT <= 25.5 < 30", "comparison 25.5 < 30 involves no column"),
        ("OBS_ID == 'x'", "type mismatch"),
        ("TARGET_NAME == 3", "type mismatch"),
        ("TARGET_NAME in ['Crab', 1]", "mixes literal types"),
        ("TARGET_NAME in [1, 2]", "type mismatch"),
        ("SAFE == 1", "type mismatch"),
        ("ZEN_PNT < TARGET_NAME", "type mismatch"),
        ("1 < 2", "involves no column"),
        ("'a' in ['a']", "left side of 'in' must be a column"),
        ("OBS_ID in OBS_ID", "right side of 'in' must be a list"),
        ("OBS_ID in [[1]]", "unsupported syntax (List)"),
        ("[1] == OBS_ID", "list is only allowed after 'in'"),
        ("OBS_ID == None", "unsupported literal None"),
        ("OBS_ID == b'x'", "unsupported literal"),
        ("ZEN_PNT * 2 > 40", "unsupported arithmetic"),
        ("ZEN_PNT + 1 > 40", "unsupported arithmetic"),
        ("-ZEN_PNT < 20", "unsupported arithmetic"),
        ("OBS_ID == 2 ** 10", "unsupported arithmetic"),
        ("OBS_ID == -True", "unsupported arithmetic"),
        ("OBS_ID > 1 & ZEN_PNT < 2", "unsupported operator '&'"),
        ("(OBS_ID > 1) | (ZEN_PNT < 2)", "unsupported operator '|'"),
        ("~(OBS_ID > 1)", "unsupported operator '~'"),
        ("OBS_ID is 1", "unsupported operator 'is'"),
        ("OBS_ID is not 1", "unsupported operator 'is not'"),
        ("abs(ZEN_PNT) < 20", "unsupported function calls"),
        ("TARGET_NAME.lower() == 'crab'", "unsupported"),
        ("OBS_ID[0] == 1", "unsupported subscripts"),
        ("(lambda: 1)() == 1", "unsupported"),
        ("[x for x in OBS_ID] == 1", "unsupported comprehensions"),
        ("OBS_ID in {1, 2}", "right side of 'in' must be a list"),
        ("TARGET_NAME == f'{OBS_ID}'", "unsupported f-strings"),
        ("(OBS_ID := 1) == 1", "unsupported assignment expressions"),
        ("OBS_ID == (1 if True else 2)", "unsupported conditional expressions"),
        ("__import__('os').system('echo hi')", "unsupported function calls"),
        ("().__class__", "unsupported attribute access"),
        ("().__class__.__bases__[0].__subclasses__() == 1", "unsupported"),
        ("OBS_ID == __import__('os').system('echo hi')", "unsupported function calls"),
        ("__builtins__ == 1", "unknown column '__builtins__'"),
        ("OBS_ID > 1; OBS_ID < 2", "syntax error"),
        ("import os", "syntax error"),
    ],
)
def test_errors(table, expression, fragment):
    with pytest.raises(SelectionError) as excinfo:
        select_rows(table, expression)
    message = str(excinfo.value)
    assert fragment in message
    assert repr(expression) in message  # the message quotes the expression


def test_malicious_expression_is_never_executed(table, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    for expression in [
        f"__import__('os').system('touch {marker}')",
        f"OBS_ID == __import__('pathlib').Path('{marker}').touch()",
        f"OBS_ID in [open('{marker}', 'w')]",
    ]:
        with pytest.raises(SelectionError, match="unsupported"):
            select_rows(table, expression)
        with pytest.raises(SelectionError, match="unsupported"):
            validate_expression(expression, table.colnames)
    assert not marker.exists()


def test_dashed_column_name_is_explained():
    table = IndexTable({"DATE-OBS": ["2004-01-01"], "OBS_ID": [1]})
    with pytest.raises(SelectionError, match="column name containing '-' \\('DATE-OBS'\\)"):
        select_rows(table, "DATE-OBS == '2004-01-01'")


def test_unsupported_column_dtype():
    columns = {"TELLIST": np.zeros((2, 4), dtype=int), "OBS_ID": np.array([1, 2])}
    with pytest.raises(SelectionError, match=r"'TELLIST'.*is not comparable"):
        evaluate_columns("TELLIST == 1", columns)


def test_non_string_expression(table):
    with pytest.raises(SelectionError, match="must be a string"):
        select_rows(table, None)  # type: ignore[arg-type]


def test_validate_expression_without_table():
    columns = ["OBS_ID", "ZEN_PNT", "TARGET_NAME"]
    validate_expression("20 <= ZEN_PNT < 40 and TARGET_NAME in ['Crab']", columns)
    validate_expression("not OBS_ID in [1, 2] or OBS_ID > 3", iter(columns))
    with pytest.raises(SelectionError, match="unknown column 'ZEN'; available columns: OBS_ID"):
        validate_expression("ZEN < 20", columns)
    with pytest.raises(SelectionError, match="unknown column 'OBS_ID'; available columns: \\(none"):
        validate_expression("OBS_ID == 1", [])
    with pytest.raises(SelectionError, match="syntax error"):
        validate_expression("ZEN_PNT <", columns)
    with pytest.raises(SelectionError, match="must be a comparison"):
        validate_expression("ZEN_PNT", columns)
    with pytest.raises(SelectionError, match="unsupported function calls"):
        validate_expression("len(OBS_ID) > 1", columns)
    with pytest.raises(SelectionError, match="mixes literal types"):
        validate_expression("OBS_ID in [1, 'a']", columns)
    # column dtypes are unknown without a table, so type mismatches pass validation
    validate_expression("OBS_ID == 'a'", columns)


def _hess_index() -> Path:
    base = os.environ.get("GAMMAPY_DATA") or str(REPO.parent / "shared" / "data")
    return Path(base) / "hess-dl3-dr1" / "obs-index.fits.gz"


@pytest.mark.requires_data
def test_hess_dl3_dr1_index():
    path = _hess_index()
    if not path.exists():
        pytest.skip(f"H.E.S.S. DL3 DR1 index not found at {path}")
    table = read_index(path, "obs index")
    assert select_rows(table, "TARGET_NAME == 'Off data'").sum() == 45
    assert select_rows(table, "TARGET_NAME == 'Off data' and ZEN_PNT < 20").sum() == 11
    validate_expression("TARGET_NAME == 'Off data' and ZEN_PNT < 20", table.colnames)
