"""Rows of a batch sheet and the Collector that turns them into output rows or rejects.

Every data row under a header is either emitted (one or more output rows, with the provenance
columns added here) or rejected with its file, sheet, row, column, value and reason.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .kb_read import Header, RowError, Sheet, cell_text, is_empty, parse_date, split_codes
from .kb_values import ValueContext

DATE_FIELDS = ("effective_from", "effective_to")


@dataclass
class DataRow:
    sheet: Sheet
    header: Header
    number: int
    cells: list

    def raw(self, name: str):
        i = self.header.columns.get(name)
        return self.cells[i] if i is not None and i < len(self.cells) else None

    def text(self, name: str) -> str:
        return cell_text(self.raw(name))

    def title(self, name: str | None) -> str:
        return self.header.titles.get(name, name or "") if name else ""


def data_rows(sheet: Sheet, header: Header, stats: dict) -> list[DataRow]:
    """The rows under the header; empty rows and repeats of the header row are counted, not returned."""
    titles = [cell_text(c) for c in next(cells for n, cells in sheet.rows if n == header.row)]
    rows = []
    for number, cells in sheet.rows:
        if number <= header.row:
            continue
        if is_empty(cells):
            stats["empty_rows"] = stats.get("empty_rows", 0) + 1
        elif [cell_text(c) for c in cells] == titles:
            stats["repeated_headers"] = stats.get("repeated_headers", 0) + 1
        else:
            rows.append(DataRow(sheet, header, number, cells))
    return rows


@dataclass
class Reject:
    file: str
    sheet: str
    row: int
    column: str
    value: str
    reason: str

    def line(self) -> str:
        col = f" [{self.column}]" if self.column else ""
        return f"{self.file} sheet '{self.sheet}' row {self.row}{col}: {self.reason}"


@dataclass
class Collector:
    key: str  # the name of the key column
    batch: str
    effective_from: dt.date | None
    effective_to: dt.date | None
    imported_on: dt.date
    values: ValueContext
    rows: list[dict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    numeric_codes: list[DataRow] = field(default_factory=list)  # code cells Excel holds as numbers

    def codes(self, row: DataRow, name: str) -> list[str]:
        """The code(s) in the row's ``name`` cell (RowError if it holds none or a non-code)."""
        raw = row.raw(name)
        codes = split_codes(raw, name)
        if isinstance(raw, (int, float)):
            self.numeric_codes.append(row)
        return codes

    def notes(self) -> list[str]:
        if not self.numeric_codes:
            return []
        first = self.numeric_codes[0]
        return [f"{len(self.numeric_codes)} code cell(s) are numbers, not text, in Excel (first: "
                f"{first.sheet.label} row {first.number}): leading zeros may have been lost there"]

    def reject(self, row: DataRow, err: RowError) -> None:
        value = err.value if err.value is not None else row.raw(err.field) if err.field else None
        self.rejects.append(Reject(row.sheet.file.name, row.sheet.name, row.number, row.title(err.field),
                                   cell_text(value), err.reason))

    def emit(self, row: DataRow, code: str, columns: dict, text: str, point: str, dates: dict,
             extra: dict | None = None, source_suffix: str = "") -> None:
        """One output row; ``dates`` from ``self.dates``."""
        out = {"point_id": f"{self.batch}#{point}", self.key: code, **columns, "text": text,
               "source": f"{self.batch} {row.sheet.file.name} 第{row.number}行{source_suffix}",
               "batch": self.batch, "source_file": row.sheet.file.name, "source_row": row.number,
               **(extra or {}), "imported_on": self.imported_on, **dates}
        self.rows.append(out)

    def dates(self, row: DataRow, base: dict | None = None) -> dict:
        """The row's own effective dates where it has them, else ``base`` (default: the table's)."""
        out = dict(base) if base else {"effective_from": self.effective_from, "effective_to": self.effective_to}
        for name in DATE_FIELDS:
            if row.text(name):
                try:
                    out[name] = parse_date(row.raw(name), row.sheet.epoch)
                except ValueError as e:
                    raise RowError(name, str(e)) from None
        if out["effective_from"] and out["effective_to"] and out["effective_to"] < out["effective_from"]:
            raise RowError("effective_to", f"失效日期 {out['effective_to']} 早于生效日期 {out['effective_from']}")
        return out


def point_of(row_number: int, i: int, n: int) -> str:
    """A point's row part: the row, and which of the n codes in its cell."""
    return str(row_number) if n == 1 else f"{row_number}-{i}"


def required(row: DataRow, name: str, what: str) -> str:
    value = row.text(name)
    if not value:
        raise RowError(name, f"{what}为空")
    return value


def rendered(row: DataRow, names: tuple[str, ...]) -> str:
    """The row's own cells as text ('限制数量：2；数量单位：次/日'), for rows without a text column."""
    return "；".join(f"{row.title(n)}：{row.text(n)}" for n in names if row.text(n))
