"""Reading the official knowledge batch files: sheets of .xlsx workbooks or CSV files, the header row
found by tolerant matching, and the cell normalisers the importers share.

A merged cell's value is copied into every cell of its range (batch files merge a generic name over
the rows of its restrictions). Row numbers are the ones Excel shows (CSV: the file's line number).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

HEADER_SCAN_ROWS = 30  # the header row must be among the first rows of a sheet
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_CODE_RE = re.compile(r"[A-Z0-9][A-Z0-9.\-]*")
_CODE_SEPARATORS = re.compile(r"[;,、|/\n]+")


class KbImportError(Exception):
    """A batch file that cannot be used at all (unreadable, layout not understood, bad option)."""


class LayoutError(KbImportError):
    """No sheet of the file(s) has a recognisable header row for the kind being imported."""


class RowError(Exception):
    """One row cannot be understood: ``field`` is the logical field it is about (or None)."""

    def __init__(self, field: str | None, reason: str, value=None):
        super().__init__(reason)
        self.field, self.reason, self.value = field, reason, value


@dataclass
class Sheet:
    file: Path
    name: str  # the worksheet name; for a CSV file its file name
    rows: list[tuple[int, list]]  # (row number as Excel shows it, cell values)
    epoch: dt.datetime | None = None  # the workbook's date system, for serial dates

    @property
    def label(self) -> str:
        return self.file.name if self.name == self.file.name else f"{self.file.name} sheet '{self.name}'"


@dataclass
class Header:
    """A recognised header row: which column holds each logical field."""
    row: int
    columns: dict[str, int]  # field -> 0-based column index
    titles: dict[str, str]  # field -> the header text as written in the file
    unknown: list[str] = field(default_factory=list)  # header cells that name no field
    duplicates: list[str] = field(default_factory=list)  # second columns for a field already found


@dataclass(frozen=True)
class SheetSpec:
    """The header a sheet must have: required and optional fields, each with its accepted spellings."""
    role: str  # what the sheet is for, e.g. "限定表", "代码表"
    required: tuple[str, ...]
    optional: tuple[str, ...]
    aliases: dict  # field -> tuple of header spellings (compared after normalize_header)

    def field_of(self, header_text: str) -> str | None:
        key = normalize_header(header_text)
        if not key:
            return None
        bare = re.sub(r"\(.*?\)|\[.*?\]", "", key)
        for name in self.required + self.optional:
            spellings = {normalize_header(a) for a in self.aliases[name]}
            if key in spellings or bare in spellings:
                return name
        return None

    def describe(self) -> str:
        def one(name):
            return "/".join(self.aliases[name])
        return "; ".join(one(n) for n in self.required)


# ---- text normalisation ----------------------------------------------------------------------

def nfkc(value) -> str:
    """NFKC (full-width letters, digits and brackets become ASCII), invisible characters removed,
    stripped. Numbers from Excel lose a spurious '.0'."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFKC", str(value)).translate(_INVISIBLE).strip()


def normalize_header(value) -> str:
    """Header text compared tolerantly: NFKC, no spaces or marks, 编码 and 代码 the same word."""
    s = re.sub(r"[\s*:：]", "", nfkc(value)).lower()
    return s.replace("编码", "代码")


def cell_text(value) -> str:
    """A cell as text: stripped, NFKC for numbers only (names and texts keep their own characters)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    return str(value).translate(_INVISIBLE).strip()


def name_key(value) -> str:
    """A name as a join key: NFKC and no whitespace at all."""
    return re.sub(r"\s", "", nfkc(value))


def normalize_code(value, field_name: str = "code") -> str:
    """A national code: NFKC, every space removed, letters upper-case. Raises RowError if it is not a code."""
    s = re.sub(r"\s", "", nfkc(value)).upper()
    if not s:
        raise RowError(field_name, "代码为空")
    if isinstance(value, float) and not value.is_integer():
        raise RowError(field_name, f"代码'{value}'是小数，不是代码（单元格应设为文本）", value)
    if not _CODE_RE.fullmatch(s):
        raise RowError(field_name, f"'{cell_text(value)}'不是代码（只能含字母、数字、'.'和'-'）", value)
    return s


def split_codes(value, field_name: str = "code") -> list[str]:
    """One or more codes in a cell, separated by ; , 、 | / or line breaks."""
    if not isinstance(value, str):
        return [normalize_code(value, field_name)]
    parts = _CODE_SEPARATORS.split(nfkc(value))
    codes = [normalize_code(p, field_name) for p in parts if p.strip()]
    if not codes:
        raise RowError(field_name, "代码为空")
    return codes


# ---- dates -------------------------------------------------------------------------------------

_DATE_RE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[\sT].*)?")
_EXCEL_SERIAL_RANGE = (20000, 80000)  # 1954 .. 2119: the only numbers taken as Excel serial dates


def parse_date(value, epoch: dt.datetime | None = None) -> dt.date:
    """A date from 2025-01-01, 2025/1/1, 2025.1.1, 2025年1月1日, 20250101, an Excel date cell or an
    Excel serial number (45658 = 2025-01-01). Raises ValueError with the reason."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool):
        raise ValueError(f"'{value}' is not a date")
    if isinstance(value, (int, float)) or re.fullmatch(r"\d+(\.0+)?", nfkc(value)):
        return _date_from_number(float(nfkc(value)) if not isinstance(value, (int, float)) else value, epoch)
    s = nfkc(value)
    m = _DATE_RE.fullmatch(s)
    if not m:
        raise ValueError(f"'{s}'不是日期（可写 2025-01-01、2025/1/1、2025年1月1日）")
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise ValueError(f"'{s}'不是日历上的日期") from None


def _date_from_number(v: float, epoch) -> dt.date:
    if float(v).is_integer() and 19000101 <= v <= 29991231:
        s = str(int(v))
        try:
            return dt.date(int(s[:4]), int(s[4:6]), int(s[6:]))
        except ValueError:
            raise ValueError(f"'{s}'不是日历上的日期") from None
    if _EXCEL_SERIAL_RANGE[0] <= v <= _EXCEL_SERIAL_RANGE[1]:
        from openpyxl.utils.datetime import CALENDAR_WINDOWS_1900, from_excel
        return from_excel(v, epoch or CALENDAR_WINDOWS_1900).date()
    raise ValueError(f"'{v:g}'不是日期（数字只认 Excel 日期序号或 YYYYMMDD）")


# ---- reading files -----------------------------------------------------------------------------

def read_sheets(path: Path) -> list[Sheet]:
    """Every worksheet of an .xlsx file, or the one 'sheet' of a CSV file."""
    if not path.exists():
        raise KbImportError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_workbook(path)
    if suffix == ".csv":
        return [_read_csv(path)]
    if suffix == ".xls":
        raise KbImportError(f"{path}: the old .xls format is not read; save it as .xlsx in Excel or WPS")
    raise KbImportError(f"{path}: unsupported file type '{suffix}' (use .xlsx or .csv)")


def _read_workbook(path: Path) -> list[Sheet]:
    import zipfile

    from openpyxl import load_workbook
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as e:
        raise KbImportError(f"{path}: cannot open as an Excel workbook ({e})") from None
    sheets, title = [], ""
    try:
        for ws in wb.worksheets:
            if not hasattr(ws, "iter_rows"):  # chart sheets
                continue
            title = ws.title
            ws.reset_dimensions()  # a wrong <dimension> in the file would cut rows off
            rows = [(n, list(values)) for n, values in enumerate(ws.iter_rows(values_only=True), start=1)]
            _fill_merged(rows, _merged_ranges(ws))
            sheets.append(Sheet(path, ws.title, rows, wb.epoch))
    except Exception as e:  # a damaged sheet inside a valid zip: openpyxl raises many kinds of errors
        raise KbImportError(f"{path}: sheet '{title}' cannot be read ({type(e).__name__}: {e})") from None
    finally:
        wb.close()
    return sheets


def _merged_ranges(ws) -> list[tuple[int, int, int, int]]:
    """(min_row, min_col, max_row, max_col) of each merged range, read from the sheet XML (a read-only
    worksheet does not expose them)."""
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils.cell import range_boundaries
    ranges = []
    try:
        with ws._get_source() as src:
            for _, elem in iterparse(src, events=("end",)):
                if elem.tag.endswith("}mergeCell"):
                    c1, r1, c2, r2 = range_boundaries(elem.get("ref"))
                    ranges.append((r1, c1, r2, c2))
                elem.clear()
    except (AttributeError, KeyError, ValueError, TypeError):
        return []
    return ranges


def _fill_merged(rows: list[tuple[int, list]], ranges) -> None:
    by_number = {n: cells for n, cells in rows}
    for r1, c1, r2, c2 in ranges:
        top = by_number.get(r1)
        value = top[c1 - 1] if top is not None and len(top) >= c1 else None
        for r in range(r1, r2 + 1):
            cells = by_number.get(r)
            if cells is None:
                continue
            if len(cells) < c2:
                cells.extend([None] * (c2 - len(cells)))
            for c in range(c1, c2 + 1):
                cells[c - 1] = value


def _read_csv(path: Path) -> Sheet:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise KbImportError(f"{path}: neither UTF-8 nor GBK text")
    rows, line = [], 1
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for cells in reader:  # a quoted cell may span lines: a row is numbered by its first line
            rows.append((line, list(cells)))
            line = reader.line_num + 1
    except csv.Error as e:
        raise KbImportError(f"{path}: not a CSV file ({e})") from None
    return Sheet(path, path.name, rows)


# ---- header detection --------------------------------------------------------------------------

def is_empty(cells) -> bool:
    return all(cell_text(c) == "" for c in cells)


def find_header(sheet: Sheet, spec: SheetSpec) -> tuple[Header | None, tuple[int, list[str]]]:
    """The first row (among the first HEADER_SCAN_ROWS) naming every required field, or None with
    the row that came closest (its number and cells) for the error message."""
    best, best_score = (0, []), None
    for number, cells in sheet.rows[:HEADER_SCAN_ROWS]:
        header = _match_row(number, cells, spec)
        if all(f in header.columns for f in spec.required):
            return header, (number, [])
        found = list(dict.fromkeys(cell_text(c) for c in cells if cell_text(c)))  # merged cells repeat
        score = (sum(f in header.columns for f in spec.required), len(header.columns), len(found))
        if found and (best_score is None or score > best_score):
            best, best_score = (number, found), score
    return None, best


def _match_row(number: int, cells: list, spec: SheetSpec) -> Header:
    header = Header(number, {}, {})
    for i, cell in enumerate(cells):
        text = cell_text(cell)
        if not text:
            continue
        name = spec.field_of(text)
        if name is None:
            header.unknown.append(text)
        elif name in header.columns:
            header.duplicates.append(text)
        else:
            header.columns[name], header.titles[name] = i, text
    return header


def layout_error(sheets: list[Sheet], spec: SheetSpec, kind: str, closest: dict) -> LayoutError:
    """What was expected and what each sheet had instead."""
    lines = [f"cannot import --kind {kind}: no sheet has the header of the {spec.role} "
             f"(expected columns: {spec.describe()})"]
    for sheet in sheets:
        number, found = closest.get(id(sheet), (0, []))
        if found:
            missing = [f for f in spec.required if not any(spec.field_of(t) == f for t in found)]
            lines.append(f"  {sheet.label}: closest is row {number}: {' | '.join(found)} "
                         f"(missing: {', '.join('/'.join(spec.aliases[m]) for m in missing)})")
        else:
            lines.append(f"  {sheet.label}: empty")
    return LayoutError("\n".join(lines))
