"""Knowledge tables: typed columns loaded from CSV or Parquet next to the rule file.

A bad cell is reported with file, row and column; the table is still loaded from its good rows so
one typo does not hide every other problem, but the ruleset is refused while errors remain.
"""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from . import ast
from .diagnostics import Diagnostic
from .units import parse_quantity, unit_of

COLUMN_TYPES = ("text", "number", "date", "quantity", "list", "bool")
ROLES = ("id", "text", "source", "effective_from", "effective_to")
MATCH_KINDS = ("exact", "prefix")
_LIST_SEPARATORS = (";", "；", "|", ",", "，", "、")
_MAX_ERRORS_PER_TABLE = 20


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of COLUMN_TYPES
    unit: str | None  # default unit of a quantity column
    role: str | None


class KnowledgeTable:
    """Rows plus an index from key value (or key prefix) to row numbers.

    Rows may be given directly, or by a loader called on first use (a compiled bundle keeps its
    tables in Arrow and only turns them into Python rows when a finding cites one)."""

    def __init__(self, name: str, path: str, columns: tuple[Column, ...], key: str, match: str,
                 rows: list[dict] | None, row_numbers, load_rows=None, n_rows: int | None = None):
        self.name = name
        self.path = path
        self.columns = {c.name: c for c in columns}
        self.key = key
        self.match = match
        self._rows = tuple(rows) if rows is not None else None
        self._load_rows = load_rows
        self._n = len(self._rows) if self._rows is not None else n_rows
        self.row_numbers = row_numbers if isinstance(row_numbers, tuple) else tuple(row_numbers)  # file rows
        self._index: dict[str, list[int]] | None = None
        self._prefix_lengths: list[int] = []
        self.partner: str | None = None  # the B-side column of a pair / requires table
        self.partner_match: str | None = None
        self._partner_index: tuple | None = None

    @property
    def rows(self) -> tuple:
        if self._rows is None:
            self._rows = tuple(self._load_rows())
        return self._rows

    def _build_index(self) -> None:
        self._index, self._prefix_lengths = _column_index(self.rows, self.key, self.match)

    def row_index_of(self, file_row: int) -> int:
        """The row holding file row ``file_row`` (a finding cites file rows)."""
        if not hasattr(self, "_by_file_row"):
            self._by_file_row = {n: i for i, n in enumerate(self.row_numbers)}
        return self._by_file_row[file_row]

    def role_column(self, role: str) -> str | None:
        for c in self.columns.values():
            if c.role == role:
                return c.name
        return None

    def matches(self, value) -> list[int]:
        """Row numbers whose key matches ``value`` (equal, or a prefix of it), in file order."""
        if value is None:
            return []
        if self._index is None:
            self._build_index()
        return _probe(self._index, self._prefix_lengths, self.match, str(value))

    def with_partner(self, column: str, match: str) -> "KnowledgeTable":
        self.partner, self.partner_match = column, match
        return self

    def partner_matches(self, value) -> list[int]:
        """Row numbers whose partner column (a value or a list of values) matches ``value``."""
        if value is None or self.partner is None:
            return []
        if self._partner_index is None:
            self._partner_index = _column_index(self.rows, self.partner, self.partner_match)
        return _probe(*self._partner_index, self.partner_match, str(value))

    def side_matches(self, side: str, value) -> list[int]:
        return self.matches(value) if side == "key" else self.partner_matches(value)

    def __len__(self) -> int:
        return self._n if self._n is not None else len(self.rows)


def _column_index(rows, column: str, match: str) -> tuple[dict, list]:
    index: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        values = row.get(column)
        for k in (values if isinstance(values, tuple) else (values,)):
            if k is not None and i not in index.get(k, ()):
                index.setdefault(k, []).append(i)
    return index, (sorted({len(k) for k in index}) if match == "prefix" else [])


def _probe(index: dict, lengths: list, match: str, value: str) -> list[int]:
    if match == "exact":
        return index.get(value, [])
    hits: list[int] = []
    for n in lengths:
        if n > len(value):
            break
        hits.extend(index.get(value[:n], ()))
    return sorted(set(hits))


def columns_of(decl: ast.TableDecl) -> tuple[list[Column], list[Diagnostic]]:
    cols, diags = [], []
    for c in decl.columns:
        base, arg = c.type.base, c.type.arg
        if base not in COLUMN_TYPES:
            diags.append(Diagnostic("bad_attribute_value", f"column type '{base}' is not one of {', '.join(COLUMN_TYPES)}",
                                    c.type.span))
            continue
        unit = None
        if base == "quantity" and arg is not None:
            if unit_of(arg) is None:
                diags.append(Diagnostic("unknown_unit", f"unknown unit '{arg}'", c.type.span))
                continue
            unit = arg
        elif base == "list" and arg not in (None, "text"):
            diags.append(Diagnostic("bad_attribute_value", "a list column holds text: write 'list text'", c.type.span))
        elif base not in ("quantity", "list") and arg is not None:
            diags.append(Diagnostic("bad_attribute_value", f"type '{base}' takes no argument ('{arg}')", c.type.span))
        if c.role is not None and c.role not in ROLES:
            diags.append(Diagnostic("bad_attribute_value", f"column role '{c.role}' is not one of {', '.join(ROLES)}",
                                    c.role_span))
        elif c.role in ("effective_from", "effective_to") and base != "date":
            diags.append(Diagnostic("bad_attribute_value", f"a column with role {c.role} holds dates: declare it "
                                    f"'date', not '{base}'", c.type.span))
        if (c.is_key or c.is_partner) and c.match not in MATCH_KINDS:
            diags.append(Diagnostic("bad_attribute_value", f"key match '{c.match}' must be exact or prefix", c.match_span))
        cols.append(Column(c.name, base, unit, c.role))
    return cols, diags


def load_table(decl: ast.TableDecl, base_dir: Path) -> tuple[KnowledgeTable | None, list[Diagnostic]]:
    cols, diags = columns_of(decl)
    keys = [c for c in decl.columns if c.is_key]
    if len(keys) != 1:
        diags.append(Diagnostic("missing_attribute", f"table '{decl.name}' needs exactly one key column "
                                f"(found {len(keys)})", decl.span))
        return None, diags
    partners = [c for c in decl.columns if c.is_partner]
    if len(partners) > 1:
        diags.append(Diagnostic("missing_attribute", f"table '{decl.name}' has more than one partner column",
                                partners[1].span))
    elif partners and partners[0].type.base not in ("text", "list"):
        diags.append(Diagnostic("bad_attribute_value", "a partner column holds codes: declare it 'text' or 'list text'",
                                partners[0].type.span))
    if any(d.is_error for d in diags):
        return None, diags
    path = (base_dir / decl.path).resolve()
    if not path.exists():
        return None, diags + [Diagnostic("table_file_missing", f"knowledge table file '{decl.path}' not found "
                                          f"(looked in {base_dir})", decl.path_span)]
    try:
        header, raw_rows, first_row = _read_raw(path)
    except Exception as e:  # unreadable file: report it, never a traceback
        return None, diags + [Diagnostic("table_bad_value", f"cannot read '{decl.path}': {e}", decl.path_span)]
    missing = [c.name for c in cols if c.name not in header]
    if missing:
        return None, diags + [Diagnostic(
            "table_missing_column",
            f"'{decl.path}' has no column {', '.join(repr(m) for m in missing)} (it has: {', '.join(header)})",
            decl.path_span)]
    rows, numbers, errors = [], [], 0
    for offset, raw in enumerate(raw_rows):
        file_row = first_row + offset
        row, bad = {}, False
        for c in cols:
            value, why = convert_cell(raw.get(c.name), c)
            if why:
                bad = True
                errors += 1
                if errors <= _MAX_ERRORS_PER_TABLE:
                    diags.append(Diagnostic("table_bad_value", f"{path.name} row {file_row}, column '{c.name}': {why}",
                                            ast.Span(str(path), file_row, 1, file_row, 2)))
            row[c.name] = value
        if not bad:
            rows.append(row)
            numbers.append(file_row)
    if errors > _MAX_ERRORS_PER_TABLE:
        diags.append(Diagnostic("table_bad_value", f"{path.name}: {errors - _MAX_ERRORS_PER_TABLE} more bad cells "
                                "not shown", decl.path_span))
    key = keys[0]
    table = KnowledgeTable(decl.name, str(path), tuple(cols), key.name, key.match, rows, numbers)
    if partners:
        table.with_partner(partners[0].name, partners[0].match)
    return table, diags


def _read_raw(path: Path) -> tuple[list[str], list[dict], int]:
    """Header, rows as dicts of text/typed cells, and the file row number of the first data row."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq
        table = pq.read_table(path)
        return table.column_names, table.to_pylist(), 1
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        return header, list(reader), 2


def convert_cell(value, col: Column):
    """Cell -> typed value, or (None, reason). Empty cells are null, not errors."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    t = col.type
    if t == "text":
        return str(value).strip(), None
    if t == "number":
        if isinstance(value, (int, float)):
            return value, None
        try:
            return float(str(value).strip()), None
        except ValueError:
            return None, f"'{value}' is not a number"
    if t == "date":
        if isinstance(value, dt.date):
            return (value.date() if isinstance(value, dt.datetime) else value), None
        try:
            return dt.date.fromisoformat(str(value).strip()), None
        except ValueError:
            return None, f"'{value}' is not a date (YYYY-MM-DD)"
    if t == "quantity":
        q = parse_quantity(str(value), col.unit)
        if q is None:
            return None, f"'{value}' is not a quantity" + (f" (a number in {col.unit} or a number with a unit)" if col.unit
                                                            else " (a number with a unit, e.g. 4g)")
        return q, None
    if t == "list":
        if isinstance(value, (list, tuple)):
            return tuple(str(v).strip() for v in value), None
        s = str(value)
        for sep in _LIST_SEPARATORS[1:]:
            s = s.replace(sep, ";")
        return tuple(p.strip() for p in s.split(";") if p.strip()), None
    if t == "bool":
        s = str(value).strip().lower()
        if s in ("1", "true", "是", "y", "yes"):
            return True, None
        if s in ("0", "false", "否", "n", "no"):
            return False, None
        return None, f"'{value}' is not a yes/no value"
    return None, f"unsupported type {t}"
