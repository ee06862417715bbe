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

from . import kernels as kernel_registry

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


def _dictionary_column(col) -> pa.ChunkedArray:
    """``col`` dictionary-encoded, every chunk with the same dictionary."""
    col = _chunked(col)
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    return col.unify_dictionaries() if col.num_chunks > 1 else col


def _bitmap(arr: pa.Array) -> np.ndarray:
    """Arrow's validity bitmap of ``arr`` as bytes (empty when it has no nulls); read from bit arr.offset."""
    validity = arr.buffers()[0]
    return np.frombuffer(validity, np.uint8) if validity is not None and arr.null_count else np.zeros(0, np.uint8)


def _chunk_codes(col: pa.ChunkedArray, table: np.ndarray, k) -> np.ndarray:
    """``table[index]`` for every line of a dictionary column whose chunks share one dictionary, -1 for a
    null: one kernel pass over Arrow's index buffers, no intermediate arrays."""
    return _map_chunks(col.chunks, [0] * col.num_chunks, table, k, None)


def _distinct_arrow(col: pa.ChunkedArray, k=None):
    """Per-line index into the distinct values (-1 for null), and the distinct values as an Arrow array."""
    col = _dictionary_column(col)
    if col.num_chunks == 0:
        return np.zeros(0, np.int32), pa.array([], pa.string())
    dictionary = col.chunk(0).dictionary
    ids = _chunk_codes(col, np.arange(len(dictionary), dtype=np.int32), k or kernel_registry.backend())
    return ids, dictionary


def _text_column(col: pa.ChunkedArray, k) -> TextCol:
    """Text as the row reader reads it (trimmed; blank is null), trimmed in Arrow on the distinct values.
    Values that differ only by surrounding blanks share one code."""
    col = _dictionary_column(col)
    if col.num_chunks == 0:
        return TextCol(np.zeros(0, np.int32), [])
    dictionary = col.chunk(0).dictionary
    trimmed = pc.utf8_trim_whitespace(dictionary.cast(pa.string()))
    blank = pc.equal(trimmed, "").fill_null(True).to_numpy(zero_copy_only=False).astype(bool)
    codes, uniq = _distinct(trimmed)  # trimmed values that coincide get one code
    remap = np.where(blank, -1, codes).astype(np.int32)
    return TextCol(_chunk_codes(col, remap, k), uniq)


def _chunk_dictionaries(col: pa.ChunkedArray):
    """A text column's chunks as dictionary chunks, and their distinct dictionaries concatenated with each
    chunk's start in it. Parquet gives the batches of one row group the same dictionary: it is counted
    once, and nothing is hashed (unlike unifying the dictionaries)."""
    col = _chunked(col)
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)  # per chunk
    chunks, parts, bases, seen, base = [], [], [], {}, 0
    for chunk in col.chunks:
        d = chunk.dictionary
        ident = (d.offset, len(d), tuple(b.address if b is not None else 0 for b in d.buffers()))
        if ident not in seen:
            seen[ident] = base
            parts.append(d.cast(pa.string()))
            base += len(d)
        chunks.append(chunk)
        bases.append(seen[ident])
    merged = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
    return chunks, merged, bases


def values_at(col, rows: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(values, known) of a fixed-width column (numbers, timestamps, dates) at ``rows`` (ascending), read from
    each chunk's buffers in place: no take, no combined copy. Null slots read as 0."""
    if rows.size > 1 and not bool(np.all(rows[1:] >= rows[:-1])):
        raise ValueError("values_at: rows must be ascending")
    values, known = np.zeros(rows.size, dtype), np.ones(rows.size, bool)
    start = 0
    for chunk in _chunked(col).chunks:
        lo, hi = np.searchsorted(rows, [start, start + len(chunk)])
        if hi > lo:
            local = rows[lo:hi] - start + chunk.offset
            bufs = chunk.buffers()
            width = chunk.type.bit_width // 8
            raw = np.frombuffer(bufs[1], np.dtype(f"<i{width}") if not pa.types.is_floating(chunk.type)
                                else np.dtype(f"<f{width}"), count=chunk.offset + len(chunk))
            values[lo:hi] = raw[local]
            if chunk.null_count:
                bits = np.frombuffer(bufs[0], np.uint8)
                ok = ((bits[local >> 3] >> (local & 7).astype(np.uint8)) & 1).astype(bool)
                known[lo:hi] = ok
                values[lo:hi][~ok] = 0
        start += len(chunk)
    return values, known


def gatherable(col) -> bool:
    """A column ``values_at`` reads: fixed-width numbers, timestamps, dates (Arrow's native types)."""
    t = col.type
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t) or pa.types.is_date(t)) \
        and t.bit_width in (16, 32, 64)


def _map_chunks(chunks, bases, table: np.ndarray, k, rows: np.ndarray | None) -> np.ndarray:
    """``table[base of the chunk + index]`` per line (-1 for null), at ``rows`` (ascending or not) or for every
    line: one kernel pass per chunk over Arrow's index buffers."""
    table = np.ascontiguousarray(table, np.int32)
    total = sum(len(c) for c in chunks)
    out = np.empty(total, np.int32)
    pos = 0
    for chunk, base in zip(chunks, bases):
        ind = chunk.indices
        n = len(ind)
        if n:
            if ind.type != pa.int32():
                ind = pc.cast(ind, pa.int32())
            idx = np.frombuffer(ind.buffers()[1], np.int32, count=n, offset=ind.offset * 4)
            k.dict_codes(idx, _bitmap(ind), ind.offset, table[base:], out[pos:pos + n])
        pos += n
    return out if rows is None else out[rows]


def text_codes_at(col, rows: np.ndarray | None, k=None) -> TextCol:
    """A text column typed as the row reader reads it (trimmed; blank is null), for the lines at ``rows``
    only, from a column of many chunks without unifying their dictionaries."""
    k = k or kernel_registry.backend()
    chunks, merged, bases = _chunk_dictionaries(col)
    trimmed = pc.utf8_trim_whitespace(merged)
    blank = pc.equal(trimmed, "").fill_null(True).to_numpy(zero_copy_only=False).astype(bool)
    codes, uniq = _distinct(trimmed)
    return TextCol(_map_chunks(chunks, bases, np.where(blank, -1, codes), k, rows), uniq)


def text_ranks_at(col, rows: np.ndarray | None, k=None) -> tuple[np.ndarray, int]:
    """Per line (at ``rows``) the rank of its trimmed text among the column's distinct values, in Python's
    str order (-1 for null or blank), and the number of ranks."""
    k = k or kernel_registry.backend()
    chunks, merged, bases = _chunk_dictionaries(col)
    if not len(merged):
        n = sum(len(c) for c in chunks) if rows is None else len(rows)
        return np.full(n, -1, np.int64), 0
    trimmed = pc.utf8_trim_whitespace(merged)
    blank = pc.equal(trimmed, "").fill_null(True).to_numpy(zero_copy_only=False).astype(bool)
    rank = pc.rank(trimmed, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64) - 1
    table = np.where(blank, -1, rank)
    return _map_chunks(chunks, bases, table, k, rows).astype(np.int64), int(rank.max(initial=-1)) + 1


def _null_or_blank(col: pa.ChunkedArray, k=None) -> np.ndarray:
    """Rows whose value is null or only whitespace (a dictionary column is tested on its dictionary)."""
    if not len(col):
        return np.zeros(0, bool)
    k = k or kernel_registry.backend()
    if pa.types.is_dictionary(col.type):  # per chunk, on its own dictionary: no unification of a huge one
        parts = []
        for chunk in col.chunks:
            blank = pc.equal(pc.utf8_trim_whitespace(chunk.dictionary.cast(pa.string())), "").fill_null(True)
            table = blank.to_numpy(zero_copy_only=False).astype(np.int32)  # 1 blank, 0 not; a null row reads -1
            parts.append(_chunk_codes(pa.chunked_array([chunk]), table, k) != 0)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]
    if not _is_text(col.type):
        col = pc.cast(col, pa.string())
    parts = []
    for arr in col.chunks:  # one kernel pass over each chunk's offsets and UTF-8 bytes
        n = len(arr)
        if not n:
            parts.append(np.zeros(0, bool))
            continue
        bufs = arr.buffers()
        wide = pa.types.is_large_string(arr.type)
        width = 8 if wide else 4
        offsets = np.frombuffer(bufs[1], np.int64 if wide else np.int32, count=n + 1, offset=arr.offset * width)
        data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
        parts.append(k.blank_text(offsets, data, _bitmap(arr), arr.offset))
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


def _distinct(col: pa.ChunkedArray):
    ids, dictionary = _distinct_arrow(col)
    return ids, dictionary.to_pylist()


def _known(arr: pa.Array) -> np.ndarray:
    """The validity of ``arr`` as a bool array (all true without reading a bitmap when it has no nulls)."""
    if arr.null_count == 0:
        return np.ones(len(arr), bool)
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _int_values(arr: pa.Array) -> np.ndarray:
    """The values of an integer array, 0 where null; read in place (read-only) when it has no nulls."""
    if arr.null_count == 0:
        return arr.to_numpy(zero_copy_only=True)
    return arr.fill_null(0).to_numpy(zero_copy_only=False)


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

    def __init__(self, table: pa.Table, kernels=None, identity_checked: bool = False):
        """``identity_checked``: the rows already passed the line-identity checks (lines taken again from
        a batch that was read), so a table without those columns is not quarantined whole."""
        self.identity_checked = identity_checked
        self.deferred: dict = {}  # field -> function typing it elsewhere, on first use (not in ``table``)
        self.table = table
        self.k = kernels if kernels is not None else kernel_registry.backend()
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
        for name in () if self.identity_checked else LINE_IDENTITY:
            if name in present:
                missing = _null_or_blank(_chunked(self.table.column(name)), self.k)
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
            known = _known(arr)
            if arr.null_count:
                arr = arr.fill_null(0.0)
            return NumCol(arr.to_numpy(zero_copy_only=True), known)  # read in place (read-only)
        if kind in ("date", "datetime") and (pa.types.is_date(t) or pa.types.is_timestamp(t)):
            return self._days(col, kind)
        if kind == "list" and (pa.types.is_list(t) or pa.types.is_large_list(t)):
            return self._typed_list(col)
        return self._by_distinct(name, kind, col)

    def _days(self, col: pa.ChunkedArray, kind: str) -> DayCol:
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        known = _known(arr)
        if pa.types.is_timestamp(arr.type):
            per_unit = _MICROS[arr.type.unit]
            raw = _int_values(pc.cast(arr, pa.int64()))
            micros = raw * per_unit if per_unit > 1 else (
                raw if per_unit == 1 else np.floor_divide(raw, int(round(1 / per_unit))))
            days = self.k.floor_days(micros)
            return DayCol(days, known, micros if kind == "datetime" else None)
        days = _int_values(pc.cast(pc.cast(arr, pa.date32()), pa.int32())).astype(np.int32, copy=False)
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
            ids, dictionary = _distinct_arrow(col, self.k)
            offsets, items, item_dict = _list_from_text(dictionary)
            return ListCol(ids, offsets, items, item_dict)
        if kind == "text" and _is_text(col.type):
            return _text_column(col, self.k)
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
            if name in self.deferred:
                self.cols[name] = self.deferred.pop(name)()
                return self.cols[name]
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
