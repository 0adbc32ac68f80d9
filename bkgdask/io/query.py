"""Safe run-selection expressions over the columns of an observation index.

The language is a small, whitelisted subset of Python expression syntax. The
string is parsed with :func:`ast.parse` and the tree is walked node by node;
it is never evaluated, executed or compiled to code.

Supported:

- column names, exactly as in the table (case-sensitive), e.g. ``ZEN_PNT``;
- literals: ints, floats (``1.5e3``, ``-20`` via unary minus), strings in
  single or double quotes, ``True`` / ``False``;
- comparisons ``==, !=, <, <=, >, >=``, also chained (``20 <= ZEN_PNT < 40``);
- ``COL in [...]`` / ``COL not in [...]`` with a list or tuple of literals;
- ``and``, ``or``, ``not`` and parentheses, with Python precedence.

Not supported: arithmetic (``ZEN_PNT * 2``, ``-ZEN_PNT``), function calls,
attribute access, subscripts and any other Python construct. Column names that
are not Python identifiers (e.g. ``DATE-OBS``) cannot be referenced.

String columns (byte or unicode, as read from FITS) have trailing whitespace
stripped before comparing; comparisons are case-sensitive. Each comparison of a
masked entry of a masked array (or of NaN, except ``!=``) is False, so
``not (ZEN_PNT < 20)`` is True for a NaN ``ZEN_PNT``.

The same language filters events: :mod:`bkgdask.event_filter` evaluates it on
EVENTS columns (a dict of numpy arrays) rather than on an index.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SelectionError
from .index_table import IndexTable

__all__ = ["evaluate_columns", "referenced_columns", "select_rows", "validate_expression"]

_COMPARE_OPS = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
}
_UNSUPPORTED = {
    "Call": "function calls",
    "Attribute": "attribute access",
    "Subscript": "subscripts",
    "Lambda": "lambda expressions",
    "GeneratorExp": "comprehensions",
    "JoinedStr": "f-strings",
    "NamedExpr": "assignment expressions (':=')",
    "IfExp": "conditional expressions",
    "BitAnd": "operator '&' (use 'and')",
    "BitOr": "operator '|' (use 'or')",
    "Invert": "operator '~' (use 'not')",
    "Is": "operator 'is' (use '==')",
    "IsNot": "operator 'is not' (use '!=')",
}
_ARITHMETIC = "arithmetic (only comparisons of columns with literals are allowed)"
_KINDS = {"S": "str", "U": "str", "b": "bool", "i": "number", "u": "number", "f": "number"}


def _row_count(table: Mapping) -> int:
    """The common length of a mapping's columns."""
    lengths = {len(values) for values in table.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


@dataclass
class _Operand:
    """A column or literal on one side of a comparison."""

    is_column: bool
    text: str
    vtype: str | None  # "str", "number", "bool"; None for a column without a table
    values: Any = None
    mask: np.ndarray | None = None


class _Evaluator:
    """Walk a parsed expression; compute a mask if ``table`` is given, else only check."""

    def __init__(
        self,
        expression: str,
        columns: list[str] | None,
        table: Mapping | None,
        what: str = "selection expression",
    ):
        self.expression = expression
        self.what = what
        self.columns = columns  # None: accept any name, recording it in self.names
        self.table = table
        self.nrows = 0 if table is None else _row_count(table)
        self.names: dict[str, None] = {}  # column names referenced, in order of appearance
        self.lead = 0  # leading blanks stripped before parsing, added back to positions
        self.cache: dict[str, _Operand] = {}

    def fail(self, problem: str, node: ast.AST | None = None) -> SelectionError:
        if node is not None and hasattr(node, "col_offset"):
            problem += f" (at {self.where(node.lineno, node.col_offset + 1)})"
        return SelectionError(f"invalid {self.what} {self.expression!r}: {problem}")

    def where(self, lineno: int, col: int) -> str:
        return f"position {col + self.lead}" if lineno == 1 else f"line {lineno}, column {col}"

    def run(self) -> np.ndarray | None:
        if not isinstance(self.expression, str):
            raise self.fail("expression must be a string")
        text = self.expression.lstrip(" \t")  # ast.parse rejects leading indentation
        self.lead = len(self.expression) - len(text)
        if not text.strip():
            raise self.fail("expression is empty")
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            at = "end of expression" if exc.lineno else "unknown position"
            if exc.lineno and exc.offset and exc.offset > 0:
                at = self.where(exc.lineno, exc.offset)
            raise self.fail(f"syntax error at {at}: {exc.msg}") from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise self.fail(f"cannot parse: {exc}") from None
        try:
            return self.boolean(tree.body)
        except RecursionError:
            raise self.fail("expression is nested too deeply") from None

    def boolean(self, node: ast.AST) -> np.ndarray | None:
        if isinstance(node, ast.BoolOp):
            masks = [self.boolean(value) for value in node.values]
            if self.table is None:
                return None
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            return combine.reduce(masks)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            mask = self.boolean(node.operand)
            return None if mask is None else ~mask
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, (ast.Name, ast.Constant, ast.UnaryOp)):
            operand = self.operand(node)
            kind = "column" if operand.is_column else "literal"
            raise self.fail(f"expression must be a comparison, got bare {kind} {operand.text}")
        raise self.unsupported(node)

    def unsupported(self, node: ast.AST, name: str | None = None) -> SelectionError:
        name = name or type(getattr(node, "op", node)).__name__
        name = "GeneratorExp" if name.endswith("Comp") else name
        what = _UNSUPPORTED.get(name, _ARITHMETIC if hasattr(node, "op") else f"syntax ({name})")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
            dashed = f"{getattr(node.left, 'id', '')}-{getattr(node.right, 'id', '')}"
            if dashed in (self.columns or ()):
                what = f"column name containing '-' ({dashed!r})"
        return self.fail(f"unsupported {what}", node)

    def compare(self, node: ast.Compare) -> np.ndarray | None:
        result = None
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                mask = self.membership(left, isinstance(op, ast.NotIn), right)
            elif type(op) in _COMPARE_OPS:
                mask = self.binary(left, type(op), right, node)
            else:
                raise self.unsupported(node, type(op).__name__)
            result = mask if result is None else result & mask
            left = right
        return result

    def operand(self, node: ast.AST) -> _Operand:
        if isinstance(node, ast.Name):
            return self.column(node)
        if isinstance(node, (ast.List, ast.Tuple)):
            raise self.fail("a list is only allowed after 'in' / 'not in'", node)
        value, vtype = self.literal(node)
        return _Operand(False, repr(value), vtype, value)

    def literal(self, node: ast.AST) -> tuple[Any, str]:
        if isinstance(node, ast.Constant):
            value = node.value
            types = {bool: "bool", int: "number", float: "number", str: "str"}
            if type(value) not in types:
                raise self.fail(f"unsupported literal {value!r}", node)
            return value, types[type(value)]
        if isinstance(node, ast.Name):
            raise self.fail(f"expected a literal, got column {node.id!r}", node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            if isinstance(node.operand, (ast.Constant, ast.UnaryOp)):
                value, vtype = self.literal(node.operand)
                if vtype == "number":
                    return (-value if isinstance(node.op, ast.USub) else value), vtype
        raise self.unsupported(node)

    def column(self, node: ast.Name) -> _Operand:
        name = node.id
        self.names[name] = None
        if self.columns is None:
            return _Operand(True, name, None)
        if name not in self.columns:
            available = ", ".join(self.columns) or "(none)"
            raise self.fail(f"unknown column {name!r}; available columns: {available}", node)
        if self.table is None:
            return _Operand(True, name, None)
        if name not in self.cache:
            col = self.table[name]
            data = np.asarray(np.ma.getdata(col))
            if data.dtype.kind not in _KINDS or data.ndim != 1:
                raise self.fail(f"column {name!r} ({data.dtype}, {data.shape}) is not comparable")
            if data.dtype.kind == "S":
                data = np.char.decode(data, "utf-8", "replace")
            if data.dtype.kind == "U":
                data = np.char.rstrip(data)
            mask = np.ma.getmaskarray(col).reshape(len(data))
            self.cache[name] = _Operand(True, name, _KINDS[col.dtype.kind], data, mask)
        return self.cache[name]

    def check_types(self, a: _Operand, b: _Operand, op: str, node: ast.AST) -> None:
        if a.vtype is not None and b.vtype is not None and a.vtype != b.vtype:
            problem = f"type mismatch in {a.text} {op} {b.text}: {a.vtype} vs {b.vtype}"
            raise self.fail(problem, node)

    def finish(self, values: Any, *operands: _Operand) -> np.ndarray:
        assert self.table is not None
        result = np.broadcast_to(np.asarray(values, dtype=bool), (self.nrows,)).copy()
        for operand in operands:
            if operand.mask is not None:
                result &= ~operand.mask
        return result

    def binary(self, left: ast.AST, op: type, right: ast.AST, node: ast.AST) -> np.ndarray | None:
        a, b = self.operand(left), self.operand(right)
        symbol, func = _COMPARE_OPS[op]
        if not (a.is_column or b.is_column):
            raise self.fail(f"comparison {a.text} {symbol} {b.text} involves no column", node)
        self.check_types(a, b, symbol, node)
        if self.table is None:
            return None
        try:
            with np.errstate(invalid="ignore"):
                values = func(a.values, b.values)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(f"cannot evaluate {a.text} {symbol} {b.text}: {exc}", node) from None
        return self.finish(values, a, b)

    def membership(self, left: ast.AST, negate: bool, right: ast.AST) -> np.ndarray | None:
        symbol = "not in" if negate else "in"
        if not isinstance(left, ast.Name):
            raise self.fail(f"the left side of '{symbol}' must be a column", left)
        if not isinstance(right, (ast.List, ast.Tuple)):
            raise self.fail(f"the right side of '{symbol}' must be a list of literals", right)
        col = self.column(left)
        items = [_Operand(False, repr(v), t, v) for v, t in map(self.literal, right.elts)]
        if len({item.vtype for item in items}) > 1:
            raise self.fail(f"the list after '{symbol}' mixes literal types", right)
        for item in items:
            self.check_types(col, item, symbol, right)
        if self.table is None:
            return None
        try:
            found = np.isin(col.values, [item.values for item in items])
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(f"cannot evaluate {col.text} {symbol} [...]: {exc}", left) from None
        return self.finish(~found if negate else found, col)


def select_rows(table: IndexTable, expression: str) -> np.ndarray:
    """Evaluate a selection expression on the rows of a table.

    Parameters
    ----------
    table : IndexTable
        Observation index (or any table); names in the expression are its columns.
    expression : str
        Selection expression, e.g. ``"TARGET_NAME == 'Crab' and 20 <= ZEN_PNT < 40"``.
        See the module docstring for the language.

    Returns
    -------
    numpy.ndarray
        Boolean mask of shape ``(len(table),)``; True for selected rows.

    Raises
    ------
    SelectionError
        On bad syntax, unknown columns, unsupported constructs or type mismatches.
    """
    return evaluate_columns(expression, table.columns)


def validate_expression(expression: str, columns: Iterable[str]) -> None:
    """Check a selection expression without evaluating it.

    Checks syntax, allowed constructs and column names. Type mismatches between
    columns and literals are only detected by :func:`select_rows`, which knows
    the column dtypes.

    Parameters
    ----------
    expression : str
        Selection expression (see the module docstring).
    columns : iterable of str
        Names of the available columns.

    Raises
    ------
    SelectionError
        If the expression is malformed, unsupported or names an unknown column.
    """
    _Evaluator(expression, list(columns), None).run()


def referenced_columns(expression: str, what: str = "selection expression") -> list[str]:
    """Check an expression's syntax and return the column names it uses, in order.

    Parameters
    ----------
    expression : str
        Selection expression (see the module docstring).
    what : str
        What the expression is, as error messages name it.

    Returns
    -------
    list of str
        Every name the expression compares, once each, as first written.

    Raises
    ------
    SelectionError
        If the expression is malformed or unsupported.
    """
    evaluator = _Evaluator(expression, None, None, what)
    evaluator.run()
    return list(evaluator.names)


def evaluate_columns(
    expression: str, columns: Mapping[str, np.ndarray], what: str = "selection expression"
) -> np.ndarray:
    """Evaluate an expression on equal-length 1-D arrays keyed by column name.

    Parameters
    ----------
    expression : str
        Selection expression (see the module docstring).
    columns : mapping of str to numpy.ndarray
        The columns; integer, float, bool, byte or unicode string arrays.
    what : str
        What the expression is, as error messages name it.

    Returns
    -------
    numpy.ndarray
        Boolean mask over the rows.

    Raises
    ------
    SelectionError
        As :func:`select_rows`; an unknown column's message names it and lists
        the columns present.
    """
    mask = _Evaluator(expression, list(columns), columns, what).run()
    assert mask is not None
    return np.asarray(mask, dtype=bool).reshape(_row_count(columns))
