"""Importing the official national knowledge batches (Excel or CSV) into knowledge tables.

    result = import_batch("drug_restriction", ["第1批药品.xlsx"], effective_from=dt.date(2025, 1, 1))
    paths = write_outputs(result, "knowledge/drug_restriction.csv")

``import_batch`` finds each sheet the kind needs by its header row (tolerant of spaces, full-width
characters and 代码/编码), turns every data row into output rows, and lists every row it cannot use
as a Reject (file, sheet, row, column, value, reason). It raises LayoutError only when no sheet has
the expected header. ``write_outputs`` writes the table (CSV or Parquet), the rejects CSV beside it
and a ``.table.rules`` declaration a rule set picks up like any other rule file.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .kb_layouts import KINDS, Kind, all_columns
from .kb_rows import Collector, Reject, data_rows
from .kb_read import KbImportError, LayoutError, Sheet, find_header, layout_error, nfkc, read_sheets
from .kb_values import ValueContext, parse_code_map

__all__ = ["KINDS", "ImportResult", "KbImportError", "LayoutError", "import_batch", "write_outputs",
           "table_snippet", "default_batch_name"]
OUTPUT_TYPES = (".csv", ".parquet")
REJECT_COLUMNS = ("file", "sheet", "row", "column", "value", "reason")


@dataclass
class ImportResult:
    kind: Kind
    batch: str
    files: list[Path]
    rows: list[dict]
    rejects: list[Reject]
    notes: list[str] = field(default_factory=list)  # what was read but not understood, not a row problem
    data_rows: int = 0  # rows read under the headers
    stats: dict = field(default_factory=dict)  # empty_rows, repeated_headers: rows counted, not data
    sheets: list[str] = field(default_factory=list)  # the sheets read, as 'file sheet'

    @property
    def columns(self):
        return all_columns(self.kind)


def default_batch_name(path: str | Path) -> str:
    """The batch name when none is given: the file name without extension and spaces."""
    return re.sub(r"\s", "", nfkc(Path(path).stem)) or "batch"


def import_batch(kind: str, files, *, batch: str | None = None, effective_from: dt.date | None = None,
                 effective_to: dt.date | None = None, imported_on: dt.date | None = None, child_under: int = 18,
                 code_maps=()) -> ImportResult:
    """Read the batch file(s) of ``kind``. ``code_maps`` are 'FIELD:NAME=CODES' strings."""
    if kind not in KINDS:
        raise KbImportError(f"unknown kind '{kind}' (known: {', '.join(KINDS)})")
    if effective_from and effective_to and effective_to < effective_from:
        raise KbImportError(f"--effective-to {effective_to} is before --effective-from {effective_from}")
    k, paths = KINDS[kind], [Path(f) for f in files]
    if not paths:
        raise KbImportError("no file given")
    sheets = [s for p in paths for s in read_sheets(p)]
    located, notes = _locate(k, sheets)
    collector = Collector(k.key, batch or default_batch_name(paths[0]), effective_from, effective_to,
                          imported_on or dt.date.today(), _values(child_under, code_maps))
    stats: dict = {}
    rows = {role: data_rows(sheet, header, stats) for role, (sheet, header) in located.items()}
    k.build(rows, collector)
    return ImportResult(k, collector.batch, paths, collector.rows, collector.rejects, notes + collector.notes(),
                        sum(len(r) for r in rows.values()), stats, [s.label for s, _ in located.values()])


def _values(child_under: int, code_maps) -> ValueContext:
    if child_under < 1:
        raise KbImportError(f"--child-under must be a positive number of years, not {child_under}")
    ctx = ValueContext(child_under=child_under)
    for option in code_maps:
        try:
            name, value, codes = parse_code_map(option)
        except ValueError as e:
            raise KbImportError(f"--code-map {e}") from None
        ctx.code_maps[name][value] = codes
    return ctx


def _locate(kind: Kind, sheets: list[Sheet]) -> tuple[dict, list[str]]:
    """The sheet for each role, by header: {'main': (sheet, header), 'codes': …} and notes."""
    main_spec, companion = kind.sheets[0], kind.sheets[1] if len(kind.sheets) > 1 else None
    main, closest = _first_match(sheets, main_spec, exclude=None)
    if main is None:
        raise layout_error(sheets, main_spec, kind.name, closest)
    located = {"main": main}
    if companion is not None and "code" not in main[1].columns:
        codes, closest = _first_match(sheets, companion, exclude=main[0])
        if codes is None:
            others = [s for s in sheets if s is not main[0]]
            raise layout_error(others, companion, kind.name, closest)
        located["codes"] = codes
    notes = [n for sheet, header in located.values() for n in _header_notes(sheet, header)]
    used = {id(s) for s, _ in located.values()}
    notes += [f"{s.label}: not used (no header of this kind)" for s in sheets
              if id(s) not in used and any(any(c not in (None, "") for c in cells) for _, cells in s.rows)]
    return located, notes


def _first_match(sheets: list[Sheet], spec, exclude):
    closest = {}
    for sheet in sheets:
        if sheet is exclude:
            continue
        header, near = find_header(sheet, spec)
        if header is not None:
            return (sheet, header), closest
        closest[id(sheet)] = near
    return None, closest


def _header_notes(sheet: Sheet, header) -> list[str]:
    notes = []
    if header.unknown:
        notes.append(f"{sheet.label} row {header.row}: column(s) not understood, ignored: {', '.join(header.unknown)}")
    if header.duplicates:
        notes.append(f"{sheet.label} row {header.row}: column(s) repeating one already read, ignored: "
                     f"{', '.join(header.duplicates)}")
    return notes


# ---- writing ------------------------------------------------------------------------------------

def sibling(out: Path, suffix: str) -> Path:
    """TABLE.csv -> TABLE<suffix> in the same folder."""
    return out.with_name(out.name[: -len(out.suffix)] + suffix) if out.suffix else out.with_name(out.name + suffix)


def table_name_of(out: Path) -> str:
    name = re.sub(r"\W", "_", out.name[: -len(out.suffix)] if out.suffix else out.name)
    return name if name and not name[0].isdigit() else f"t_{name}"


def write_outputs(result: ImportResult, out: str | Path, table_name: str | None = None) -> dict[str, Path]:
    """The table, ``TABLE.rejects.csv`` and ``TABLE.table.rules`` beside it; returns their paths."""
    out = Path(out)
    if out.suffix.lower() not in OUTPUT_TYPES:
        raise KbImportError(f"{out}: unsupported output type '{out.suffix}' (use {' or '.join(OUTPUT_TYPES)})")
    name = table_name or table_name_of(out)
    if not re.fullmatch(r"(?!\d)\w+", name):
        raise KbImportError(f"--table-name '{name}' is not a name (letters, digits, _; not starting with a digit)")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        _atomic(out, _parquet_bytes(result))
    else:
        _atomic(out, _csv_bytes([c.name for c in result.columns],
                                ([_csv_cell(r.get(c.name)) for c in result.columns] for r in result.rows)))
    rejects = sibling(out, ".rejects.csv")
    _atomic(rejects, _csv_bytes(list(REJECT_COLUMNS),
                                ([getattr(r, c) for c in REJECT_COLUMNS] for r in result.rejects)))
    rules = sibling(out, ".table.rules")
    _atomic(rules, table_snippet(result, out.name, name).encode("utf-8"))
    return {"table": out, "rejects": rejects, "rules": rules}


def supersede(result: ImportResult, out: str | Path, effective_from: dt.date | None) -> tuple[int, int]:
    """Keep the table already at ``out`` as the earlier version: its rows still open on ``effective_from``
    end the day before, rows that would only start then are dropped (the new batch replaces them), and
    the new batch's rows follow. Rules then evaluate each claim against the version in force on its date
    of service. Returns (rows closed, rows dropped)."""
    out = Path(out)
    if effective_from is None:
        raise KbImportError("--supersede needs --effective-from: the day the new batch takes over")
    if not out.exists():
        return 0, 0
    if out.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq
        old = pq.read_table(out).to_pylist()
    else:
        import csv
        with out.open(encoding="utf-8-sig", newline="") as fh:
            old = list(csv.DictReader(fh))
    day_before = effective_from - dt.timedelta(days=1)
    kept, closed, dropped = [], 0, 0
    for row in old:
        start, end = _as_date(row.get("effective_from")), _as_date(row.get("effective_to"))
        if start is not None and start >= effective_from:
            dropped += 1
            continue
        if end is None or end >= effective_from:
            row = dict(row, effective_to=day_before)
            closed += 1
        kept.append(row)
    result.rows = kept + list(result.rows)
    return closed, dropped


def _as_date(v):
    if v is None or v == "":
        return None
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10])


def table_snippet(result: ImportResult, file_name: str, name: str) -> str:
    """The ``table`` declaration of the written file, for a rule set to include."""
    width = max(len(c.name) for c in result.columns)
    lines = [f"# 由 claimaudit kb import --kind {result.kind.name} 生成：{result.kind.title}",
             f"# 批次 {result.batch}；来源 {', '.join(p.name for p in result.files)}；"
             f"{len(result.rows)} 行，拒收 {len(result.rejects)} 行",
             f'table {name} from "{file_name}" {{']
    word = 7 if result.kind.partner else 6  # 'partner' is the longest statement word
    for c in result.columns:
        if c.name in (result.kind.key, result.kind.partner):
            statement = "key" if c.name == result.kind.key else "partner"
            lines.append(f"  {statement:<{word}} {c.name:<{width}} text match prefix")
            continue
        type_ = "list text" if c.type == "list" else c.type
        role = f" role {c.role}" if c.role else ""
        lines.append(f"  {'column':<{word}} {c.name:<{width}} {type_}{role}".rstrip())
    lines.append("}")
    return "\n".join(lines) + "\n"


def _csv_cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ";".join(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _csv_bytes(header: list[str], rows) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel shows the Chinese text


def _parquet_bytes(result: ImportResult) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq
    types = {"text": pa.string(), "number": pa.float64(), "date": pa.date32(), "list": pa.list_(pa.string())}
    schema = pa.schema([(c.name, types[c.type]) for c in result.columns])
    data = {c.name: [_arrow_value(r.get(c.name), c.type) for r in result.rows] for c in result.columns}
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(data, schema=schema), sink)
    return sink.getvalue().to_pybytes()


def _arrow_value(v, type_: str):
    if v is None:
        return None
    if type_ == "number":
        return float(v)
    if type_ == "list":
        return list(v)
    return v


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
