"""Claim lines from files (Parquet, CSV) in the national schema, typed and validated.

Rows with a value that cannot be read as its field's type, or without a line id, are quarantined
with row number, field and reason; they are never silently dropped. Messages carry row numbers and
field names, never patient identifiers.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from claimaudit.dsl.schema import CLAIM_FIELDS, DERIVED_INPUTS, LINE_IDENTITY, LIST_SEPARATORS, split_list

IDENTIFIER_FIELDS = frozenset(("psn_no", "mdtrt_id", "setl_id", "brdy"))
_LIST_SEPARATORS = LIST_SEPARATORS


class ClaimsError(Exception):
    """The claims source as a whole cannot be used (unreadable, a needed column missing)."""


@dataclass
class QuarantinedRow:
    row: int  # 1-based data row (CSV: the file line is row + 1, after the header)
    field: str
    reason: str
    record: dict = field(repr=False, default_factory=dict)

    def to_record(self) -> dict:
        return {"row": self.row, "field": self.field, "reason": self.reason,
                "feedetl_sn": self.record.get("feedetl_sn")}


def _text(v):
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None


def _number(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return float(str(v).strip().replace(",", ""))


def _date(v):
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    s = str(v).strip().replace("/", "-")
    if len(s) == 8 and s.isdigit():
        s = f"{s[:4]}-{s[4:6]}-{s[6:]}"
    return dt.date.fromisoformat(s[:10])


def _datetime(v):
    if isinstance(v, dt.datetime):
        return v.replace(tzinfo=None)
    if isinstance(v, dt.date):
        return dt.datetime.combine(v, dt.time())
    s = str(v).strip().replace("/", "-")
    if len(s) == 8 and s.isdigit():
        s = f"{s[:4]}-{s[4:6]}-{s[6:]}"
    return dt.datetime.fromisoformat(s)


def _list(v):
    if isinstance(v, (list, tuple)):
        return tuple(str(x).strip() for x in v if x is not None and str(x).strip())
    return split_list(v)


_CONVERT = {"text": _text, "number": _number, "date": _date, "datetime": _datetime, "list": _list}
_TYPE_WORDS = {"number": "a number", "date": "a date (YYYY-MM-DD)", "datetime": "a date-time (YYYY-MM-DD hh:mm:ss)",
               "text": "text", "list": "a list"}


_ALL_FIELDS = tuple(CLAIM_FIELDS.items())


def coerce_row(raw: dict, fields: tuple | None = None, memo: dict | None = None) -> tuple[dict, tuple[str, str] | None]:
    """Raw record -> typed line; on failure, the first bad (field, reason). ``fields`` limits the work to
    the (name, FieldInfo) pairs a caller reads (the inline screener); the others stay absent (null).
    ``memo`` remembers conversions across the lines of one request (they share patient and encounter)."""
    out, problem = coerce_fields(raw, fields, memo)
    if problem:
        return out, problem
    return out, identity_problem(out)


def identity_problem(line: dict) -> tuple[str, str] | None:
    for name in LINE_IDENTITY:
        if line.get(name) is None:
            why = "line id" if name == "feedetl_sn" else "national code; map the local code first"
            return (name, f"{name} ({why}) is empty")
    return None


def coerce_fields(raw: dict, fields: tuple | None = None, memo: dict | None = None) -> tuple[dict, tuple | None]:
    """Type the given fields of a raw record; no identity check (see coerce_row)."""
    out = {}
    for name, info in fields or _ALL_FIELDS:
        v = raw.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            out[name] = None
            continue
        key = (name, v) if memo is not None and type(v) in (str, int, float) else None
        if key is not None and key in memo:
            out[name] = memo[key]
            continue
        try:
            out[name] = _CONVERT[info.type](v)
        except (ValueError, TypeError):
            shown = "" if name in IDENTIFIER_FIELDS else f" '{v}'"
            return out, (name, f"value{shown} is not {_TYPE_WORDS[info.type]}")
        if key is not None:
            memo[key] = out[name]
    return out, None


def typed_records(table, fields: tuple | None = None, memo: dict | None = None) -> list[dict]:
    """The rows of an Arrow table of lines already found good (every value converts), typed as
    ``coerce_row`` types them: a column at a time. A column whose Arrow type already holds the typed values
    (text without surrounding blanks, numbers, dates, naive timestamps) is taken as it is; any other goes
    value by value, each distinct value converted once (``memo``)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    memo = {} if memo is None else memo
    names, columns = [], []
    for name, info in fields or _ALL_FIELDS:
        names.append(name)
        if name not in table.column_names:
            columns.append([None] * table.num_rows)
            continue
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        columns.append(_column_values(col, info.type, name, memo, pa, pc))
    return [dict(zip(names, row)) for row in zip(*columns)]


def _column_values(col, kind: str, name: str, memo: dict, pa, pc) -> list:
    t = col.type
    if kind == "text" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        if not pc.any(pc.not_equal(col, pc.utf8_trim(col, _PY_BLANKS))).as_py():
            if pc.any(pc.equal(col, "")).as_py():  # blank text is no value
                col = pc.if_else(pc.equal(col, ""), pa.scalar(None, t), col)
            return col.to_pylist()
    elif kind == "number" and (pa.types.is_floating(t) or pa.types.is_integer(t)):
        return col.cast(pa.float64()).to_pylist()
    elif (kind == "date" and pa.types.is_date32(t)) or (kind == "datetime" and pa.types.is_timestamp(t) and t.tz is None):
        return col.to_pylist()
    convert, out = _CONVERT[kind], []
    for v in col.to_pylist():
        if v is None or (type(v) is str and not v.strip()):
            out.append(None)
            continue
        key = (name, v) if type(v) in (str, int, float) else None
        got = memo.get(key, _UNSEEN) if key is not None else _UNSEEN
        if got is _UNSEEN:
            got = convert(v)
            if key is not None:
                memo[key] = got
        out.append(got)
    return out


_UNSEEN = object()
_PY_BLANKS = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # what str.strip() removes


def needed_columns(rules) -> dict[str, list[str]]:
    """Claim column -> codes of the rules that read it."""
    need: dict[str, list[str]] = {n: ["(every line)"] for n in LINE_IDENTITY}
    for r in rules:
        for f in r.fields_used() | r.window_fields():
            for col in DERIVED_INPUTS.get(f, (f,)):
                if col in CLAIM_FIELDS:
                    need.setdefault(col, []).append(r.code)
        if r.effective_from or r.effective_to:
            need.setdefault("fee_ocur_time", []).append(r.code)
    return need


# Columns that may be absent without failing the run: their absence only makes some rules
# insufficient on some lines (e.g. a file without secondary diagnoses still has the main one).
_OPTIONAL = frozenset(("diag_codes", "dscg_maindiag_code", "hosp_appr_flag"))


def check_columns(path: Path, columns: list[str], rules) -> None:
    need = needed_columns(rules)
    missing = [c for c in need if c not in columns and c not in _OPTIONAL]
    if {"diag_codes", "dscg_maindiag_code"} & set(need) and not {"diag_codes", "dscg_maindiag_code"} & set(columns):
        missing.append("dscg_maindiag_code or diag_codes")
    if missing:
        detail = "; ".join(f"'{c}' (needed by {', '.join(sorted(set(need.get(c, ['diagnosis rules']))))[:200]})"
                           for c in missing)
        raise ClaimsError(f"{path}: missing column(s) {detail}")


def read_records(path: Path) -> tuple[list[str], list[dict]]:
    """All rows of a claims file as raw records; CSV cells stay text so we type them ourselves."""
    table = read_table(path)
    return table.column_names, table.to_pylist()


def read_table(path: Path, select=None):
    """A claims file as an Arrow table with stripped column names; CSV cells stay text. ``select``: for
    Parquet, a function from the file's columns (name -> Arrow type) to the names to read; their text
    fields are read as Parquet stores them, as dictionaries (the line ids, unique, as plain text)."""
    if not path.exists():
        raise ClaimsError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq
            table = pq.read_table(path) if select is None else _read_selected(pq, path, select)
        elif suffix in (".csv", ".txt"):
            import pyarrow.csv as pacsv
            with path.open(encoding="utf-8-sig", newline="") as fh:
                names = next(csv.reader(fh), [])
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={n: "string" for n in names}, strings_can_be_null=True))
        else:
            raise ClaimsError(f"{path}: unsupported file type '{suffix}' (use .parquet or .csv)")
    except ClaimsError:
        raise
    except Exception as e:
        raise ClaimsError(f"{path}: cannot read: {_read_problem(path, e)}") from None
    return table.rename_columns([c.strip() for c in table.column_names])


def _read_selected(pq, path: Path, select):
    schema = pq.read_schema(path)
    raw = {n.strip(): n for n in schema.names}
    chosen = select({name: schema.field(r).type for name, r in raw.items()})
    names = [r for name, r in raw.items() if name in chosen]
    import pyarrow as pa
    dictionary = [r for name, r in raw.items() if name in chosen and name in CLAIM_FIELDS and name not in _UNIQUE_TEXT
                  and CLAIM_FIELDS[name].type == "text" and pa.types.is_string(schema.field(r).type)]
    return pq.read_table(path, columns=names, read_dictionary=dictionary)


_UNIQUE_TEXT = frozenset(("feedetl_sn", "init_feedetl_sn"))  # one value per line: a dictionary saves nothing
_RAGGED_RE = re.compile(r"Expected (\d+) columns, got (\d+)")


def _read_problem(path: Path, e: Exception) -> str:
    """What went wrong reading a claims file, without echoing row content (it holds patient ids)."""
    if isinstance(e, UnicodeDecodeError) or "invalid UTF8" in str(e):
        return "the file is not UTF-8 text (save it as UTF-8, e.g. Excel's 'CSV UTF-8')"
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    m = _RAGGED_RE.search(first)
    if m:  # pyarrow appends the offending row's text: find the line ourselves and drop the text
        where = _ragged_line(path, int(m.group(1)))
        where = f"line {where}" if where else "a row"
        return f"{where} has {m.group(2)} fields but the header has {m.group(1)} (check quoting and separators)"
    return first


def _ragged_line(path: Path, n_fields: int) -> int | None:
    import csv
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            start = 1
            for row in reader:
                if row and len(row) != n_fields:
                    return start
                start = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def load_lines(path: str | Path, rules) -> tuple[list[dict], list[QuarantinedRow]]:
    path = Path(path)
    columns, records = read_records(path)
    check_columns(path, columns, rules)
    return lines_from_records(records)


def lines_from_records(records) -> tuple[list[dict], list[QuarantinedRow]]:
    """Typed lines and the quarantined rows (numbered from 1 in ``records`` order)."""
    lines, quarantine = [], []
    for i, raw in enumerate(records, start=1):
        line, problem = coerce_row(raw)
        if problem:
            quarantine.append(QuarantinedRow(i, problem[0], problem[1], line))
        else:
            lines.append(line)
    return lines, quarantine
