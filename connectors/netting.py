"""Before any rule runs: invalid lines are set aside and refunds are netted into the lines they refund.

Both are explicit, never silent: every line that is not audited comes back as an ``ExcludedRow`` with
its input row, the field that decided it and the reason, and goes to the quarantine file with the
malformed rows.

* ``vali_flag`` "0" marks an invalid line (作废): not audited.
* A refund line (``init_feedetl_sn`` names another line) adds its quantity and amounts — negative —
  to the line it refunds, and is not audited itself. A line refunded in full (net quantity ≤ 0) is not
  audited either; a partly refunded line is audited with its net quantity and amounts. A refund whose
  original is not in the input cannot be netted and is set aside with that reason.

Every executor audits the netted table, so they agree on refunds by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .claims import _PY_BLANKS

NETTED = ("cnt", "det_item_fee_sumamt", "inscp_scp_amt", "fulamt_ownpay_amt", "overlmt_amt")
NETTING_COLUMNS = ("feedetl_sn", "init_feedetl_sn", "vali_flag", *NETTED)  # what net_table reads


@dataclass(frozen=True)
class ExcludedRow:
    row: int  # 1-based input row
    field: str
    reason: str
    feedetl_sn: str | None

    def to_record(self) -> dict:
        return {"row": self.row, "field": self.field, "reason": self.reason, "feedetl_sn": self.feedetl_sn}


def net_table(table: pa.Table) -> tuple[pa.Table, np.ndarray, list[ExcludedRow]]:
    """(the lines to audit, their 1-based input rows, the lines set aside with reasons)."""
    n = table.num_rows
    rows = np.arange(1, n + 1, dtype=np.int64)
    names = set(table.column_names)
    if n == 0 or not ({"vali_flag", "init_feedetl_sn"} & names) or "feedetl_sn" not in names:
        return table, rows, []
    keep = np.ones(n, bool)
    excluded: dict[int, tuple[str, str]] = {}
    if "vali_flag" in names:
        invalid = _mask(pc.equal(_trimmed(table.column("vali_flag")), "0"))
        for i in np.flatnonzero(invalid):
            excluded[int(i)] = ("vali_flag", "vali_flag = 0: an invalid (voided) line, not audited")
        keep &= ~invalid
    if "init_feedetl_sn" in names:
        sn, orig = _trimmed(table.column("feedetl_sn")), _trimmed(table.column("init_feedetl_sn"))
        refunds = _refund_rows(sn, orig, keep)
        if refunds.any():
            netted = _net_refunds_columnar(table, keep, excluded, sn, orig, refunds)
            table = netted if netted is not None else _net_refunds(table, _text(table, "feedetl_sn"), keep, excluded)
    order = np.array(sorted(excluded), np.int64)
    ids = _arrow_text(table, "feedetl_sn", order)
    out = [ExcludedRow(int(i) + 1, excluded[int(i)][0], excluded[int(i)][1], ids[j]) for j, i in enumerate(order)]
    if keep.all():
        return table, rows, out
    return table.take(pa.array(np.flatnonzero(keep))), rows[keep], out  # (take: faster than filter here)


def _net_refunds_columnar(table: pa.Table, keep: np.ndarray, excluded: dict, sn, orig,
                          refund_rows: np.ndarray) -> pa.Table | None:
    """``_net_refunds`` a column at a time, for numeric netted columns (Parquet), given the line ids and the
    ids they refund as ``_trimmed`` reads them and the refund lines (``_refund_rows``). None where the
    value-by-value path is needed: a netted column held as text (CSV: a cell may not read), or a refund
    that is itself refunded (the order of nettings then matters)."""
    netted = [c for c in NETTED if c in table.column_names]
    if not all(_is_number(table.column(c).type) for c in netted):
        return None
    refunds = np.flatnonzero(refund_rows)
    if not len(refunds):
        return table
    # the line each refund names: the last kept line with that id (as a dict built in row order keeps it)
    holders = np.flatnonzero(keep & _mask(pc.is_valid(sn)))[::-1]
    orig = orig.take(pa.array(refunds))
    found = pc.index_in(orig, value_set=sn.take(pa.array(holders)).combine_chunks())
    named = _mask(pc.is_valid(found))
    target = np.full(len(refunds), -1, np.int64)
    target[named] = holders[found.to_numpy(zero_copy_only=False)[named].astype(np.int64)]
    if np.isin(target[named], refunds).any():
        return None
    keep[refunds] = False
    for i, t, o in zip(refunds.tolist(), target.tolist(), orig.to_pylist()):
        excluded[i] = ("init_feedetl_sn", f"refund netted into line {o}" if t >= 0 else
                       f"refund of line {o}, which is not in this input: cannot be netted")
    into, source = target[named], refunds[named]
    out = table
    for c in netted:
        col = table.column(c).cast(pa.float64())
        values = col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls as NaN
        valid = col.is_valid().to_numpy(zero_copy_only=False).astype(bool)
        add = np.where(valid[source] & (values[source] != 0), values[source], 0.0)  # null (or -0.0) adds 0.0
        ok = valid[into]  # a null stays null
        np.add.at(values, into[ok], add[ok])  # in refund order, like the row-by-row sum
        out = out.set_column(out.column_names.index(c), c, pa.array(values, pa.float64(), mask=~valid))
    if "cnt" in netted:
        cnt = out.column("cnt").to_numpy(zero_copy_only=False)
        for i in np.unique(into).tolist():
            if not np.isnan(cnt[i]) and cnt[i] <= 1e-9:
                keep[i] = False
                excluded[i] = ("init_feedetl_sn", "refunded in full: net quantity is 0, not audited")
    return out


def _is_number(t) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _net_refunds(table, sn: list, keep: np.ndarray, excluded: dict) -> pa.Table:
    orig = _text(table, "init_feedetl_sn")
    position = {s: i for i, s in enumerate(sn) if s is not None and keep[i]}
    refunds = [i for i, o in enumerate(orig) if keep[i] and o is not None and o != sn[i]]
    if not refunds:
        return table
    numbers = {c: _numbers(table, c) for c in NETTED if c in table.column_names}
    for i in refunds:
        target = position.get(orig[i])
        keep[i] = False
        if target is None:
            excluded[i] = ("init_feedetl_sn", f"refund of line {orig[i]}, which is not in this input: cannot be netted")
            continue
        excluded[i] = ("init_feedetl_sn", f"refund netted into line {orig[i]}")
        readable = all(isinstance(v[target], (float, type(None))) and isinstance(v[i], (float, type(None)))
                       for v in numbers.values())
        if not readable:  # a cell that does not read: the row reader quarantines the line as it is
            continue
        for values in numbers.values():
            if values[target] is not None:
                values[target] = values[target] + (values[i] or 0.0)
    cnt = numbers.get("cnt")
    if cnt is not None:
        for i in sorted({position[orig[r]] for r in refunds if orig[r] in position}):
            if isinstance(cnt[i], float) and cnt[i] <= 1e-9:
                keep[i] = False
                excluded[i] = ("init_feedetl_sn", "refunded in full: net quantity is 0, not audited")
    for c, values in numbers.items():
        if pa.types.is_string(table.column(c).type) or pa.types.is_large_string(table.column(c).type):
            column = pa.array([repr(v) if isinstance(v, float) else v for v in values], pa.string())
        else:
            column = pa.array(values, pa.float64())
        table = table.set_column(table.column_names.index(c), c, column)
    return table


def _arrow_text(table: pa.Table, name: str, rows: np.ndarray) -> list:
    """A column's values at ``rows``, trimmed, blank as None (as ``_text`` reads them)."""
    return _trimmed(table.column(name).take(pa.array(rows, pa.int64()))).to_pylist()


def _refund_rows(sn, orig, keep: np.ndarray) -> np.ndarray:
    """Kept lines that name an original line other than themselves (the same test as _net_refunds), from
    the line ids and the ids they refund as ``_trimmed`` reads them."""
    other = pc.or_kleene(pc.not_equal(orig, sn), pc.is_null(sn)).fill_null(True)
    return _mask(pc.and_(pc.is_valid(orig), other)) & keep


def _trimmed(col):
    """Text as ``_text`` reads it, in Arrow: trimmed as str.strip() trims, blank as null."""
    text = pc.utf8_trim(pc.cast(col, pa.string()), _PY_BLANKS)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _mask(values) -> np.ndarray:
    """An Arrow boolean result as a numpy mask, null as False."""
    return values.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)


def _text(table: pa.Table, name: str) -> list:
    values = table.column(name).to_pylist()
    return [None if v is None or not str(v).strip() else str(v).strip() for v in values]


def _numbers(table: pa.Table, name: str) -> list:
    """A numeric column as floats; a cell that does not read stays as it was for the row reader to
    quarantine (netting then leaves that line alone)."""
    col = table.column(name)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type):
        return pc.cast(col, pa.float64()).to_pylist()
    out = []
    for v in col.to_pylist():
        try:
            out.append(None if v is None or not str(v).strip() else float(str(v).strip()))
        except ValueError:
            out.append(v)
    return out
