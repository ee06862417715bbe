"""Batch execution of cross-line rules (``window``, ``pair``, ``requires``), with the semantics of
engine/window.py.

A cross-line rule cannot be decided one batch at a time: a line's window reaches into other batches.
So each batch only *collects* the lines a cross-line rule can ever look at (those matching one side of
its knowledge table, or every line for a rule that counts all lines); after the last batch those
candidate lines are typed once and each rule is *resolved* over them:

1. every candidate line gets its place in the total order (patient, time, encounter id, line id) and its
   group for the rule's scope, as integers;
2. the window's members (or the pair's partners) are sorted by (group, order), so a line's window is one
   contiguous range of them, found with ``searchsorted``;
3. counts and sums come from prefix sums over the ranges; distinct values and overlapping supply from the
   range kernels (kernels/_window.pyx, Python twin in kernels/window_twin.py);
4. the window values join the line's other values and the rule's scope, condition and amount are
   evaluated over (line, knowledge row) pairs by the same numpy evaluator as line-level families.

Results therefore never depend on batch boundaries: the collected lines are the same however the input
was cut. (Input larger than memory would be partitioned by ``psn_no`` first; not built yet.)
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from claimaudit.dsl import ir
from claimaudit.dsl.units import Quantity

from .columns import MICROS_PER_DAY, LineColumns
from .kernels import window as window_kernels
from .vector import FamilyEvaluator, NotVectorizable, V

_EMPTY = np.zeros(0, np.int64)


class HistoryEvaluator(FamilyEvaluator):
    """The family evaluator, plus the rule's window values (pair domain) for ``ir.WindowValue``."""

    window: dict = {}

    def eval(self, expr) -> V:
        if isinstance(expr, ir.WindowValue):
            return self.window[expr.name]
        return super().eval(expr)

    def subset(self, idx):
        sub = super().subset(idx)
        sub.window = {k: V(v.kind, "pair", v.val[idx], v.known[idx]) for k, v in self.window.items()}
        return sub


class CrossLineRule:
    """One cross-line rule prepared for batch execution."""

    def __init__(self, engine, rule_index: int, prep: dict):
        self.engine, self.rule_index, self.prep = engine, rule_index, prep
        self.rule: ir.Rule = engine.ruleset.rules[rule_index]
        self.window: ir.Window = self.rule.window
        lk = self.rule.lookup
        self.table = engine.ruleset.tables[lk.table] if lk else None
        self.indexes = {}
        self._codes_by_column: dict = {}
        if self.table is not None:
            from .batch import _FamilyIndex
            t = self.table
            self.indexes["key"] = _FamilyIndex.of_keys(t.match, _keyed(t, t.key))
            if t.partner:
                self.indexes["partner"] = _FamilyIndex.of_keys(t.partner_match, _keyed(t, t.partner))
        w = self.window
        # rules that count lines regardless of the knowledge table need every line
        self.every_line = lk is None or (w.kind == "window" and (w.same is None or w.same[0] == "field"))

    # ---- per batch ----------------------------------------------------------------------------
    def candidates(self, lines: LineColumns, good: np.ndarray, cache: dict) -> np.ndarray:
        """Lines of a batch this rule may look at (as the window's line or as a member / partner)."""
        if self.every_line:
            return good.copy()
        matched = np.zeros(lines.n, bool)
        for side in self.indexes:
            line, _ = self._matches(lines, side, good, cache)
            matched[line] = True
        matched[self.unknown_keys(lines, good, cache)] = True
        return matched & good

    def _matches(self, lines: LineColumns, side: str, good: np.ndarray, cache: dict):
        """(line, row) pairs whose lookup key matches the ``side`` column of the table."""
        ev = FamilyEvaluator(lines, self.prep["params"], _EMPTY, _EMPTY, self.engine.kernels, cache)
        key = ev.eval(self.rule.lookup.key)
        if key.kind != "text" or key.dom != "line":
            raise NotVectorizable("a lookup key that is not a text field")
        ck = ("history-dictionary", id(key.dictionary))
        if ck not in cache:
            cache[ck] = pa.array(key.dictionary, pa.string())
        starts, rows = self.indexes[side].candidates(cache[ck])
        counts = np.append(np.diff(starts), 0)  # code -1 (null) matches nothing
        codes = key.val
        per_line = np.where(good, counts[codes], 0)
        line = np.repeat(np.arange(lines.n, dtype=np.int64), per_line)
        if not line.size:
            return line, _EMPTY
        first = starts[np.where(codes >= 0, codes, 0)][line]
        run_start = np.repeat(np.cumsum(per_line) - per_line, per_line)
        return line, rows[first + (np.arange(line.size) - run_start)]

    def unknown_keys(self, lines: LineColumns, good: np.ndarray, cache: dict) -> np.ndarray:
        if self.table is None:
            return _EMPTY
        ev = FamilyEvaluator(lines, self.prep["params"], _EMPTY, _EMPTY, self.engine.kernels, cache)
        return np.flatnonzero(good & ~ev.known(ev.eval(self.rule.lookup.key)))

    # ---- after the last batch ---------------------------------------------------------------------
    def resolve(self, lines: LineColumns, order: "TotalOrder", cache: dict):
        try:
            return self._resolve(lines, order, cache)
        except NotVectorizable as why:
            self.engine.fused_fallbacks.append((self.prep["fam"].family_id, f"cross-line: {why}"))
            return (self._by_reference(lines),)

    def _by_reference(self, lines: LineColumns):
        """A construct the vector path does not take: the reference decides, over the same lines."""
        from claimaudit.connectors.claims import coerce_row
        from .batch import _point_of, OUTCOME_INSUFFICIENT, OUTCOME_VIOLATION, Hits
        from .findings import VIOLATION
        from .reference import ReferenceEngine
        good = np.flatnonzero(~lines.bad)
        dicts = [coerce_row(r)[0] for r in lines.table.take(pa.array(good, pa.int64())).to_pylist()]
        ref = ReferenceEngine(self.engine.ruleset, rule_codes=[self.rule.code])
        ref.use_lines(dicts)
        out = {"line": [], "point": [], "outcome": [], "amount": []}
        for i, line in zip(good, dicts):
            for f in ref.evaluate_rule(self.rule, line):
                out["line"].append(i)
                out["point"].append(_point_of(self.engine.ruleset, self.rule_index, f))
                out["outcome"].append(OUTCOME_VIOLATION if f.outcome == VIOLATION else OUTCOME_INSUFFICIENT)
                out["amount"].append(np.nan if f.amount is None else f.amount)
        n = len(out["line"])
        return Hits(np.array(out["line"], np.int64), np.full(n, self.rule_index, np.int32),
                    np.array(out["point"], np.int32), np.array(out["outcome"], np.int8),
                    np.array(out["amount"], np.float64))

    def _resolve(self, lines: LineColumns, order: "TotalOrder", cache: dict):
        good = ~lines.bad
        pair_line, pair_row, sides = self._line_pairs(lines, good, cache)
        ev = HistoryEvaluator(lines, self.prep["params"], pair_line, pair_row, self.engine.kernels, cache)
        group, group_known = order.groups(self.window.scope)
        placed = group_known & order.datable
        if self.window.kind == "window":
            ev.window = self._window_values(ev, lines, order, group, placed, good, cache)
        else:
            ev.window = {"partner": self._partner_values(ev, lines, order, group, placed, good, sides, cache)}
        hits = self.engine.evaluate_numpy(self.prep, ev, lines)
        unknown = self.unknown_keys(lines, good, cache)
        return hits, (self.engine._unknown_key_hits(self.prep, unknown) if unknown.size else None)

    def _line_pairs(self, lines, good, cache):
        """(line, row, matched-side flags) of the lines the rule evaluates; flags bit 1 key, bit 2 partner."""
        if self.table is None:
            li = np.flatnonzero(good).astype(np.int64)
            return li, np.zeros(li.size, np.int64), np.ones(li.size, np.int8)
        side = self.rule.lookup.side
        if side != "either":  # one side: the pairs usually come out unique and in (line, row) order already
            line, row = self._matches(lines, side, good, cache)
            combined = line * max(len(self.table), 1) + row
            if not combined.size or bool(np.all(combined[1:] > combined[:-1])):
                return line, row, np.full(line.size, 1 if side == "key" else 2, np.int8)
        wanted = ("key", "partner") if side == "either" else (side,)
        parts = []
        for s in wanted:
            line, row = self._matches(lines, s, good, cache)
            parts.append((line, row, np.full(line.size, 1 if s == "key" else 2, np.int8)))
        line = np.concatenate([p[0] for p in parts])
        row = np.concatenate([p[1] for p in parts])
        flag = np.concatenate([p[2] for p in parts])
        n_rows = max(len(self.table), 1)
        combined = line * n_rows + row
        uniq, inverse = np.unique(combined, return_inverse=True)
        flags = np.zeros(uniq.size, np.int8)
        np.bitwise_or.at(flags, inverse, flag)
        return uniq // n_rows, uniq % n_rows, flags

    # ---- windows ----
    def _window_values(self, ev, lines, order, group, placed, good, cache) -> dict:
        w = self.window
        same_l, same_known = self._same_of_pairs(ev, lines)
        m_line, m_same = self._members(ev, lines, order, placed, good, cache)
        ql, qgroup = ev.pair_line, group[ev.pair_line]
        q_known = placed[ql] & same_known
        ranges = _Ranges(order, m_line, _combine(m_same, group[m_line]), ql, _combine(same_l, qgroup), q_known)
        lo, hi = ranges.bounds(whole=w.whole, strict=False)
        rolling_known = np.ones(ql.size, bool)
        if w.rolling_days is not None:
            lo, rolling_known = ranges.rolling(lo, self._rolling_days(ev))
        known = q_known & rolling_known
        return _aggregates(self._used_values(), ranges, lo, hi, known, lines, self.engine)

    def _used_values(self) -> set:
        r = self.rule
        exprs = [r.scope, r.condition, r.amount] + [p for p in r.message.parts if not isinstance(p, str)]
        return {n.name for e in exprs if e is not None for n in ir.walk(e) if isinstance(n, ir.WindowValue)}

    def _rolling_days(self, ev) -> V:
        """N of ``rolling N``: a constant or a knowledge column, per (line, row) pair."""
        expr, n = self.window.rolling_days, ev.n_pairs
        if isinstance(expr, ir.Const):
            v = expr.value.base_value if isinstance(expr.value, Quantity) else float(expr.value)
            return V("num", "pair", np.full(n, float(v)), np.ones(n, bool))
        if isinstance(expr, ir.KnowledgeField):
            vals = [row.get(expr.column) for row in self.table.rows]
            per_row = np.array([0.0 if v is None else float(v.base_value if isinstance(v, Quantity) else v)
                                for v in vals] + [0.0])
            known = np.array([v is not None for v in vals] + [False])
            return V("num", "pair", per_row[ev.pair_row], known[ev.pair_row])
        raise NotVectorizable("a rolling window length that is neither a constant nor a knowledge column")

    def _same_of_pairs(self, ev, lines):
        """The value a line's window groups by: its knowledge row, a knowledge value, a field, or nothing."""
        same = self.window.same
        n = ev.n_pairs
        if same is None:
            return np.zeros(n, np.int64), np.ones(n, bool)
        if same[0] == "point":
            return ev.pair_row.astype(np.int64), np.ones(n, bool)
        if same[0] == "knowledge":
            codes = self._knowledge_codes(same[1])
            v = codes[ev.pair_row]
            return np.where(v >= 0, v, 0), v >= 0
        col = lines.get(same[1])
        if col is None or not hasattr(col, "codes"):
            raise NotVectorizable(f"'same {same[1]}' on a field that is not text")
        v = col.codes[ev.pair_line].astype(np.int64)
        return np.where(v >= 0, v, 0), v >= 0

    def _knowledge_codes(self, column: str) -> np.ndarray:
        """Dense codes of a knowledge column's values per row (-1 empty); tables never change: once."""
        codes = self._codes_by_column.get(column)
        if codes is None:
            seen: dict = {}
            codes = self._codes_by_column[column] = np.array(
                [-1 if row.get(column) is None else seen.setdefault(row.get(column), len(seen))
                 for row in self.table.rows], np.int64)
        return codes

    def _members(self, ev, lines, order, placed, good, cache):
        """(line, same value) of every line that counts in some window: placed, passing ``where``."""
        w = self.window
        ok = placed & good
        if w.where is not None:
            wv = FamilyEvaluator(lines, self.prep["params"], _EMPTY, _EMPTY, self.engine.kernels, cache).eval(w.where)
            if wv.dom == "const":
                ok &= bool(wv.val)
            else:
                ok &= np.asarray(wv.val, bool) & np.asarray(wv.known, bool)
        same = w.same
        if same is None or same[0] == "field":
            m_line = np.flatnonzero(ok).astype(np.int64)
            if same is None:
                return m_line, np.zeros(m_line.size, np.int64)
            codes = lines.get(same[1]).codes[m_line].astype(np.int64)
            keep = codes >= 0
            return m_line[keep], codes[keep]
        line, row = self._matches(lines, "key", ok, cache)
        if same[0] == "point":
            return line, row.astype(np.int64)
        v = self._knowledge_codes(same[1])[row]
        keep = v >= 0
        both = np.unique(np.stack([line[keep], v[keep]], axis=1), axis=0) if keep.any() else np.zeros((0, 2), np.int64)
        return both[:, 0].astype(np.int64), both[:, 1].astype(np.int64)

    # ---- pairs and requires ----
    def _partner_values(self, ev, lines, order, group, placed, good, sides, cache) -> V:
        w = self.window
        ql = ev.pair_line
        q_known = placed[ql]
        flags = sides
        strict = w.looks_back or w.unordered
        rolling = self._rolling_days(ev) if w.rolling_days is not None else None
        count = np.zeros(ql.size, np.int64)
        known = q_known.copy()
        ok = placed & good
        q_perm = None
        for side, bit in (("key", 1), ("partner", 2)):
            if side not in self.indexes:
                continue
            # which lines look for partners on this side: the other side of the one they matched
            if w.kind == "pair" and not w.unordered:
                looks = np.full(ql.size, side == "key")
            elif w.kind == "requires":
                looks = np.full(ql.size, side == "partner")
            else:
                looks = (flags & (3 - bit)) != 0
            if not looks.any():
                continue
            m_line, m_row = self._matches(lines, side, ok, cache)
            q_key = _combine(ev.pair_row, group[ql])
            q_perm = np.argsort(q_key) if q_perm is None else q_perm
            ranges = _Ranges(order, m_line, _combine(m_row, group[m_line]), ql, q_key, q_known, q_perm)
            lo, hi = ranges.bounds(whole=not strict, strict=strict)
            if rolling is not None:
                lo, r_known = ranges.rolling(lo, rolling)
                known &= r_known | ~looks
            c = np.maximum(hi - lo, 0)
            if not strict:  # the whole group: a line never partners itself
                n_rows = max(len(self.table), 1)
                c = c - np.isin(ql * n_rows + ev.pair_row, m_line * n_rows + m_row)
            count += np.where(looks, np.maximum(c, 0), 0)
        return V("bool", "pair", count > 0, known)


def _keyed(table, column: str):
    for r, row in enumerate(table.rows):
        v = row.get(column)
        for k in (v if isinstance(v, tuple) else (v,)):
            if k is not None:
                yield r, k


def _combine(value: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One integer per (value, group); group -1 (unknown) stays distinguishable and is never queried."""
    return value.astype(np.int64) * (1 << 32) + (group.astype(np.int64) + 1)


class _Ranges:
    """Members sorted by (key, total order); per query line the bounds of its group among them."""

    def __init__(self, order: "TotalOrder", m_line, m_key, q_line, q_key, q_known, q_perm=None):
        self.order = order
        # queries visited in key order make every binary search below walk the members front to back
        self.q_perm = np.argsort(q_key) if q_perm is None else q_perm
        rank = order.rank
        m_rank = rank[m_line]
        if m_rank.size < 2 or bool(np.all(m_rank[1:] >= m_rank[:-1])):  # members built in total order
            perm = np.argsort(m_key, kind="stable")
        else:
            perm = np.lexsort((m_rank, m_key))
        self.m_line, self.m_key, self.m_rank = m_line[perm], m_key[perm], m_rank[perm]
        self.m_day = order.day[self.m_line]
        self.q_line, self.q_key, self.q_known = q_line, q_key, q_known
        self.q_rank = rank[q_line]
        self.q_day = order.day[q_line]
        # groups numbered densely in sorted order (one pass: the members are sorted), so that
        # (group, rank) fits one int64 sort key; a query's group is found among the members' keys,
        # -1 when no member shares it (its ranges are then empty)
        n = self.m_key.size
        change = np.ones(n, bool)
        change[1:] = self.m_key[1:] != self.m_key[:-1]
        self.m_g = np.cumsum(change) - 1
        pos = np.minimum(_search(self.m_key, q_key, "left", self.q_perm), max(n - 1, 0))
        found = (self.m_key[pos] == q_key) if n else np.zeros(q_key.size, bool)
        self.q_g = np.where(found, self.m_g[pos] if n else 0, -1)
        self.span = order.n + 1
        self.m_pos = self.m_g * self.span + self.m_rank

    def bounds(self, whole: bool, strict: bool):
        p = self.q_perm
        start = _search(self.m_pos, self.q_g * self.span, "left", p)
        if whole:
            end = _search(self.m_pos, (self.q_g + 1) * self.span, "left", p)
        else:
            end = _search(self.m_pos, self.q_g * self.span + self.q_rank, "left" if strict else "right", p)
        return start, end

    def rolling(self, lo, days: V):
        """Raise ``lo`` to the first member within the N days ending on the line's day."""
        known = days.known & (days.val > 0)
        # (day - d) < N  <=>  d >= day - ceil(N) + 1, for whole and fractional N alike
        n_days = np.where(known, np.ceil(days.val), 1).astype(np.int64)
        day_pos = self.m_g * (1 << 24) + (self.m_day.astype(np.int64) + (1 << 23))
        first_day = self.q_day.astype(np.int64) - n_days + 1
        # members with day > this line's day minus N (days sorted within a patient's group)
        target = self.q_g * (1 << 24) + (np.maximum(first_day, -(1 << 23) + 1) + (1 << 23))
        return np.maximum(lo, _search(day_pos, target, "left", self.q_perm)), known


def _search(haystack: np.ndarray, needles: np.ndarray, side: str, perm: np.ndarray) -> np.ndarray:
    """``searchsorted`` with the needles taken in ``perm`` order (by group): binary searches in that order
    walk the haystack front to back, several times faster on large inputs than random order."""
    out = np.empty(needles.size, np.int64)
    out[perm] = np.searchsorted(haystack, needles[perm], side)
    return out


def _aggregates(wanted: set, r: _Ranges, lo, hi, known, lines: LineColumns, engine) -> dict:
    out = {}
    count = np.maximum(hi - lo, 0)
    empty = count == 0

    def prefix(values):
        return np.concatenate([[0], np.cumsum(values)])

    for name, field in (("quantity", "cnt"), ("amount", "det_item_fee_sumamt"), ("supply_days", "prd_days")):
        if name in wanted:
            col = lines.get(field)
            vals = col.values[r.m_line] if col is not None else np.zeros(r.m_line.size)
            miss = ~col.known[r.m_line] if col is not None else np.ones(r.m_line.size, bool)
            s, m = prefix(np.where(miss, 0.0, vals)), prefix(miss.astype(np.int64))
            out[name] = V("num", "pair", np.where(empty, 0.0, s[hi] - s[lo]), known & (m[hi] - m[lo] == 0))
    if "count" in wanted:
        out["count"] = V("num", "pair", count.astype(np.float64), known)
    if "days" in wanted:
        new_day = np.ones(r.m_line.size, np.int64)
        new_day[1:] = (r.m_g[1:] != r.m_g[:-1]) | (r.m_day[1:] != r.m_day[:-1])
        c = prefix(new_day)
        # the first member of a range always opens a day
        days = np.where(empty, 0, 1 + c[hi] - c[np.minimum(lo + 1, hi)])
        out["days"] = V("num", "pair", days.astype(np.float64), known)
    if "span_days" in wanted:
        first = r.m_day[np.minimum(lo, max(r.m_line.size - 1, 0))] if r.m_line.size else np.zeros(lo.size, np.int32)
        out["span_days"] = V("num", "pair", np.where(empty, 0.0, (r.q_day - first + 1).astype(np.float64)), known)
    k = window_kernels.backend(engine.kernel_name)
    for name, field in (("codes", "med_list_codg"), ("encounters", "mdtrt_id")):
        if name in wanted:
            out[name] = V("num", "pair", k.range_distinct(lo.astype(np.int64), hi.astype(np.int64),
                                                          _previous_same(r, lines.get(field))), known)
    if "overlap_days" in wanted:
        supply = lines.get("prd_days")
        if supply is None:
            end, s_known = np.zeros(r.m_line.size), np.zeros(r.m_line.size, bool)
        else:
            s_known = supply.known[r.m_line]
            end = r.m_day + np.where(s_known, supply.values[r.m_line], 0.0)
        out["overlap_days"] = V("num", "pair", k.range_overlap(
            lo.astype(np.int64), hi.astype(np.int64), r.m_line, r.q_line.astype(np.int64),
            np.ascontiguousarray(end, np.float64), np.ascontiguousarray(s_known).view(np.uint8),
            r.q_day.astype(np.float64)), known)
    return out


def _previous_same(r: _Ranges, col) -> np.ndarray:
    """Per sorted member, the position of the previous member of its group with the same value; -1 for the
    first, a large number for members without a value (they never count as distinct)."""
    n = r.m_line.size
    big = np.iinfo(np.int64).max
    if col is None or n == 0:
        return np.full(n, big, np.int64)
    codes = col.codes[r.m_line].astype(np.int64)
    pos = np.arange(n, dtype=np.int64)
    perm = np.lexsort((pos, codes, r.m_g))
    prev = np.full(n, -1, np.int64)
    same = (r.m_g[perm][1:] == r.m_g[perm][:-1]) & (codes[perm][1:] == codes[perm][:-1])
    prev[perm[1:][same]] = perm[:-1][same]
    prev[codes < 0] = big
    return prev


class TotalOrder:
    """Each candidate line's rank in (patient, time, encounter id, line id) and its groups per scope."""

    # (the national code too: without it LineColumns would quarantine every row of the key table)
    ORDER_FIELDS = ("psn_no", "fee_ocur_time", "mdtrt_id", "feedetl_sn", "med_list_codg")

    @classmethod
    def of_rows(cls, table: pa.Table, rows: np.ndarray) -> np.ndarray:
        """The permutation that puts ``rows`` of ``table`` in total order, from the order fields alone.
        Lines taken in that order have rank = position, so every member list built in line order is
        already in total order and needs only a stable sort by its group key."""
        present = [c for c in cls.ORDER_FIELDS if c in table.column_names]
        keys = LineColumns(table.select(present).take(pa.array(rows, pa.int64())))
        return np.argsort(cls(keys).rank, kind="stable")

    def __init__(self, lines: LineColumns, presorted: bool = False):
        self.lines = lines
        self.n = lines.n
        t = lines.get("fee_ocur_time")
        if t is None:
            micros, known = np.zeros(self.n, np.int64), np.zeros(self.n, bool)
        else:
            micros = t.micros if t.micros is not None else t.days.astype(np.int64) * MICROS_PER_DAY
            known = t.known
        self.datable = np.asarray(known, bool)
        self.day = np.floor_divide(micros, MICROS_PER_DAY).astype(np.int32)
        # Arrow's multi-key sort compares the id strings only where patient and time tie, instead of
        # ranking every distinct id string first
        self.presorted = presorted
        if presorted:
            self.rank = np.arange(self.n, dtype=np.int64)
        else:
            keys = pa.table({"p": _codes(lines, "psn_no"), "t": micros, "m": _texts(lines, "mdtrt_id"),
                             "s": _texts(lines, "feedetl_sn")})
            perm = _sort_nulls_first(keys, "ptms")
            self.rank = np.empty(self.n, np.int64)
            self.rank[perm] = np.arange(self.n)
        self._groups: dict = {}

    def groups(self, scope: str):
        if scope not in self._groups:
            self._groups[scope] = self._group(scope)
        return self._groups[scope]

    def _group(self, scope: str):
        psn, mdtrt = _codes(self.lines, "psn_no"), _codes(self.lines, "mdtrt_id")
        if scope == "encounter":
            parts = [mdtrt]
        elif scope == "prescription":
            parts = [mdtrt, _codes(self.lines, "rxno")]
        elif scope == "patient":
            parts = [psn]
        elif scope == "institution":
            parts = [psn, _codes(self.lines, "fixmedins_code")]
        else:
            parts = [psn, _period(scope, self.day)]
        known = np.all([p >= 0 for p in parts], axis=0) & self.datable
        combined = np.zeros(self.n, np.int64)
        for p in parts:
            combined = combined * (int(p.max(initial=0)) + 2) + (p + 1)
        if self.presorted and scope not in ("encounter", "prescription", "institution"):
            # (patient, calendar period) follows the total order: its lines are contiguous
            change = np.ones(self.n, bool)
            change[1:] = combined[1:] != combined[:-1]
            dense = np.cumsum(change) - 1
        else:
            _, dense = np.unique(combined, return_inverse=True)
        return np.where(known, dense, -1).astype(np.int64), known


def _codes(lines: LineColumns, name: str) -> np.ndarray:
    col = lines.get(name)
    return col.codes.astype(np.int64) if col is not None else np.full(lines.n, -1, np.int64)


def _sort_nulls_first(table: pa.Table, columns) -> np.ndarray:
    try:  # pyarrow ≥ 25 takes the null placement per key
        idx = pc.sort_indices(table, sort_keys=[(c, "ascending", "at_start") for c in columns])
    except (TypeError, ValueError, pa.ArrowInvalid):
        idx = pc.sort_indices(table, sort_keys=[(c, "ascending") for c in columns], null_placement="at_start")
    return idx.to_numpy()


def _texts(lines: LineColumns, name: str) -> pa.Array:
    """A text field's (trimmed) values as an Arrow string array; missing values are null (sort first)."""
    col = lines.get(name)
    if col is None:
        return pa.nulls(lines.n, pa.string())
    codes = pa.array(col.codes, mask=col.codes < 0)
    return pa.DictionaryArray.from_arrays(codes, pa.array(col.dictionary, pa.string())).dictionary_decode()


def _period(scope: str, day: np.ndarray) -> np.ndarray:
    d = day.astype("datetime64[D]")
    if scope == "day":
        return day.astype(np.int64) + (1 << 30)
    months = d.astype("datetime64[M]").astype(np.int64)  # since 1970-01: quarters start at month 0, 3, 6, 9
    if scope == "month":
        return months + (1 << 20)
    if scope == "quarter":
        return np.floor_divide(months, 3) + (1 << 20)
    return d.astype("datetime64[Y]").astype(np.int64) + (1 << 20)  # year, insurance_year
