"""Claim lines as typed columns (numpy over Arrow), read the same way ``connectors.claims`` reads a row.

Text is dictionary-encoded once: every text function (parsing a dose, a frequency, a date written
as text) runs on distinct values only and is broadcast back by code. A value that cannot be read
as its field's type quarantines the row, with the same field and reason as the row-by-row reader.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from claimaudit.connectors import claims as row_reader
from claimaudit.dsl.schema import CLAIM_FIELDS, LINE_IDENTITY

EPOCH = dt.date(1970, 1, 1)
MICROS_PER_DAY = 86_400_000_000
_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1e-3}


def micros_since_epoch(v: dt.datetime) -> int:
    d = v - dt.datetime(1970, 1, 1)
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def _is_native(kind: str, t) -> bool:
    """An Arrow type a field of ``kind`` is read from without any conversion that could fail."""
    if kind == "number":
        return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    if kind in ("date", "datetime"):
        return pa.types.is_date(t) or pa.types.is_timestamp(t)
    if kind == "list":
        return pa.types.is_list(t) or pa.types.is_large_list(t) or _is_text(t)  # text lists split, never fail
    return True


def _is_text(t) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (
        pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)))


@dataclass
class TextCol:
    codes: np.ndarray  # int32, -1 = null
    dictionary: list  # of str

    @property
    def known(self):
        return self.codes >= 0


@dataclass
class NumCol:
    values: np.ndarray  # float64
    known: np.ndarray  # bool


@dataclass
class DayCol:
    """A date or a date-time: whole days since 1970-01-01, plus microseconds for date-times."""

    days: np.ndarray  # int32
    known: np.ndarray
    micros: np.ndarray | None = None  # int64 microseconds since 1970, date-times only


@dataclass
class ListCol:
    ids: np.ndarray  # int32 per line into the distinct lists, -1 = null
    offsets: np.ndarray  # int64, per distinct list
    items: np.ndarray  # int32 codes into ``dictionary``
    dictionary: list

    @property
    def known(self):
        return self.ids >= 0


def _chunked(col) -> pa.ChunkedArray:
    return col if isinstance(col, pa.ChunkedArray) else pa.chunked_array([col])


def _distinct_arrow(col: pa.ChunkedArray):
    """Per-line index into the distinct values (-1 for null), and the distinct values as an Arrow array."""
    col = _chunked(col)
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    col = col.unify_dictionaries()
    if col.num_chunks == 0:
        return np.zeros(0, np.int32), pa.array([], pa.string())
    idx = pa.chunked_array([c.indices for c in col.chunks]).combine_chunks() if col.num_chunks > 1 else col.chunk(0).indices
    ids = idx.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return ids, col.chunk(0).dictionary


def _text_column(col: pa.ChunkedArray) -> TextCol:
    """Text as the row reader reads it (trimmed; blank is null), trimmed in Arrow on the distinct values.
    Values that differ only by surrounding blanks share one code."""
    ids, dictionary = _distinct_arrow(col)
    trimmed = pc.utf8_trim_whitespace(dictionary.cast(pa.string()))
    blank = pc.equal(trimmed, "").fill_null(True).to_numpy(zero_copy_only=False).astype(bool)
    codes, uniq = _distinct(trimmed)  # trimmed values that coincide get one code
    remap = np.append(np.where(blank, -1, codes), -1).astype(np.int32)
    return TextCol(remap[ids], uniq)


def _null_or_blank(col: pa.ChunkedArray) -> np.ndarray:
    """Rows whose value is null or only whitespace (a dictionary column is tested on its dictionary)."""
    if not len(col):
        return np.zeros(0, bool)
    if pa.types.is_dictionary(col.type):  # per chunk, on its own dictionary: no unification of a huge one
        parts = []
        for chunk in col.chunks:
            blank = pc.equal(pc.utf8_trim_whitespace(chunk.dictionary.cast(pa.string())), "").fill_null(True)
            table = np.append(blank.to_numpy(zero_copy_only=False).astype(bool), True)
            parts.append(table[chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False)])
        return np.concatenate(parts) if parts else np.zeros(0, bool)
    if not _is_text(col.type):
        col = pc.cast(col, pa.string())
    blank = pc.equal(pc.utf8_trim_whitespace(col), "")
    return pc.or_kleene(pc.is_null(col), blank).to_numpy(zero_copy_only=False).astype(bool)


def _distinct(col: pa.ChunkedArray):
    ids, dictionary = _distinct_arrow(col)
    return ids, dictionary.to_pylist()


def _list_from_text(dictionary: pa.Array):
    """Lists written as text ('I10.x00;E11.900', any of ; | , ， ；) split in Arrow, not per value in Python:
    (offsets per distinct text, item codes, item dictionary). Same rule as the row reader: items are
    trimmed and empty ones dropped."""
    text = dictionary.cast(pa.string())
    for sep in row_reader._LIST_SEPARATORS[1:]:
        text = pc.replace_substring(text, sep, ";")
    parts = pc.split_pattern(text, ";")
    lengths = pc.list_value_length(parts).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    items = pc.utf8_trim_whitespace(pc.list_flatten(parts))
    keep = pc.not_equal(items, "").to_numpy(zero_copy_only=False).astype(bool) if len(items) else np.zeros(0, bool)
    codes, item_dict = _distinct(items)
    csum = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    ends = np.cumsum(lengths)
    counts = csum[ends] - csum[ends - lengths]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return offsets, codes[keep].astype(np.int32), item_dict


class LineColumns:
    """The typed columns of one batch of claim lines; derived values are computed once and cached."""

    def __init__(self, table: pa.Table):
        self.table = table
        self.n = table.num_rows
        self.cols: dict = {}
        self.bad = np.zeros(self.n, dtype=bool)
        self.bad_reason: dict[int, tuple[str, str]] = {}
        self.cache: dict = {}
        self._validate()

    # ---- reading ------------------------------------------------------------------------------
    def _validate(self) -> None:
        """Quarantine rows the row reader would refuse, before any rule runs. Only a non-text field stored
        in some other type (a CSV column, a date as an integer) can hold a value that does not read; those
        are typed now, the rest on first use."""
        present = set(self.table.column_names)
        for name, info in CLAIM_FIELDS.items():
            if name in present and info.type != "text" and not _is_native(info.type, self.table.column(name).type):
                self.cols[name] = self._read(name, info.type, self.table.column(name))
        for name in LINE_IDENTITY:
            if name in present:
                missing = _null_or_blank(_chunked(self.table.column(name)))
            else:
                missing = np.ones(self.n, bool)
            why = "line id" if name == "feedetl_sn" else "national code; map the local code first"
            self._quarantine(missing, name, f"{name} ({why}) is empty")

    def _quarantine(self, mask: np.ndarray, field: str, reason) -> None:
        """Mark rows bad; the first field that failed (in schema order) is the one reported."""
        new = mask & ~self.bad
        for i in np.flatnonzero(new):
            self.bad_reason[int(i)] = (field, reason(int(i)) if callable(reason) else reason)
        self.bad |= new

    def _read(self, name: str, kind: str, col: pa.ChunkedArray):
        col = _chunked(col)
        t = col.type
        if kind == "number" and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
            arr = pc.cast(col, pa.float64()).combine_chunks() if col.num_chunks != 1 else pc.cast(col.chunk(0), pa.float64())
            known = arr.is_valid().to_numpy(zero_copy_only=False)
            return NumCol(arr.fill_null(0.0).to_numpy(zero_copy_only=False), known)
        if kind in ("date", "datetime") and (pa.types.is_date(t) or pa.types.is_timestamp(t)):
            return self._days(col, kind)
        if kind == "list" and (pa.types.is_list(t) or pa.types.is_large_list(t)):
            return self._typed_list(col)
        return self._by_distinct(name, kind, col)

    def _days(self, col: pa.ChunkedArray, kind: str) -> DayCol:
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        known = arr.is_valid().to_numpy(zero_copy_only=False)
        if pa.types.is_timestamp(arr.type):
            per_unit = _MICROS[arr.type.unit]
            raw = pc.cast(arr, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
            micros = raw * per_unit if per_unit >= 1 else np.floor_divide(raw, int(round(1 / per_unit)))
            days = np.floor_divide(micros, MICROS_PER_DAY).astype(np.int32)
            return DayCol(days, known, micros if kind == "datetime" else None)
        days = pc.cast(pc.cast(arr, pa.date32()), pa.int32()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int32)
        return DayCol(days, known, days.astype(np.int64) * MICROS_PER_DAY if kind == "datetime" else None)

    def _typed_list(self, col: pa.ChunkedArray) -> ListCol:
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        known = arr.is_valid().to_numpy(zero_copy_only=False)
        lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = pc.utf8_trim_whitespace(pc.cast(pc.list_flatten(arr), pa.string()))
        codes, dictionary = _distinct(flat)
        # keep the row reader's rule: null or blank items do not count
        blank = np.array([not (s or "").strip() for s in dictionary] + [True])
        keep = ~blank[codes]
        csum = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
        ends = np.cumsum(lengths)
        counts = csum[ends] - csum[ends - lengths]
        new_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        ids = np.where(known, np.arange(len(arr), dtype=np.int32), -1).astype(np.int32)
        return ListCol(ids, new_offsets, codes[keep].astype(np.int32), dictionary)

    def _by_distinct(self, name: str, kind: str, col: pa.ChunkedArray):
        if kind == "list" and _is_text(col.type):
            ids, dictionary = _distinct_arrow(col)
            offsets, items, item_dict = _list_from_text(dictionary)
            return ListCol(ids, offsets, items, item_dict)
        if kind == "text" and _is_text(col.type):
            return _text_column(col)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_dictionary(col.type):
            ids, raw = _distinct(col)
        else:  # e.g. a code stored as an integer: type each distinct value as the row reader would
            seen: dict = {}
            ids = np.array([-1 if v is None else seen.setdefault(v, len(seen)) for v in col.to_pylist()], np.int32)
            raw = list(seen)
        convert = row_reader._CONVERT[kind]
        values, failed = [], []
        for v in raw:
            if v is None or not str(v).strip():
                values.append(None)
                failed.append(False)
                continue
            try:
                values.append(convert(v))
                failed.append(False)
            except (ValueError, TypeError):
                values.append(None)
                failed.append(True)
        if any(failed):
            failed_arr = np.array(failed + [False])
            mask = failed_arr[ids]
            shown = name not in row_reader.IDENTIFIER_FIELDS
            word = row_reader._TYPE_WORDS[kind]
            self._quarantine(mask, name, lambda i: "value" + (f" '{raw[ids[i]]}'" if shown else "") + f" is not {word}")
        present = np.array([v is not None for v in values] + [False])
        line_known = present[ids]
        if kind == "text":
            uniq, remap = {}, np.full(len(values) + 1, -1, np.int32)
            for j, v in enumerate(values):
                if v is not None:
                    remap[j] = uniq.setdefault(v, len(uniq))
            return TextCol(remap[ids], list(uniq))
        if kind == "number":
            vals = np.array([v if v is not None else 0.0 for v in values] + [0.0], dtype=np.float64)
            return NumCol(vals[ids], line_known)
        if kind in ("date", "datetime"):
            if kind == "date":
                d = np.array([(v - EPOCH).days if v is not None else 0 for v in values] + [0], np.int32)
                return DayCol(d[ids], line_known)
            micros = np.array([micros_since_epoch(v) if v is not None else 0 for v in values] + [0], np.int64)
            m = micros[ids]
            return DayCol(np.floor_divide(m, MICROS_PER_DAY).astype(np.int32), line_known, m)
        # list written as text
        dictionary, codes, offsets = {}, [], [0]
        for v in values:
            for item in (v or ()):
                codes.append(dictionary.setdefault(item, len(dictionary)))
            offsets.append(len(codes))
        lids = np.where(line_known, ids, -1).astype(np.int32)
        return ListCol(lids, np.array(offsets, np.int64), np.array(codes, np.int32), list(dictionary))

    # ---- access -----------------------------------------------------------------------------
    def get(self, name: str):
        """The typed column of a claim field (read on first use), or None when the input lacks it."""
        if name not in self.cols:
            info = CLAIM_FIELDS.get(name)
            if info is None or name not in self.table.column_names:
                return None
            self.cols[name] = self._read(name, info.type, self.table.column(name))
        return self.cols[name]

    def row_dict(self, i: int) -> dict:
        """One line as the row reader would type it (for rendering findings with the reference)."""
        raw = {k: v for k, v in self.table.slice(i, 1).to_pylist()[0].items()}
        line, _ = row_reader.coerce_row(raw)
        return line

    def quarantined(self) -> list:
        rows = self.table.take(pa.array(sorted(self.bad_reason), pa.int64())).to_pylist() if self.bad_reason else []
        out = []
        for (i, (f, why)), raw in zip(sorted(self.bad_reason.items()), rows):
            out.append(row_reader.QuarantinedRow(i + 1, f, why, row_reader.coerce_row(raw)[0]))
        return out
