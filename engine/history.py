"""Batch execution of cross-line rules (``window``, ``pair``, ``requires``), with the semantics of
engine/window.py.

A cross-line rule cannot be decided one batch at a time: a line's window reaches into other batches.
So each batch only *collects* lines (when every rule's key is a plain text field, its good lines; the
matching is then done once per distinct code over the whole input); after the last batch the lines some
rule can look at are put in order and each rule is *resolved* over them:

1. the total order (patient, time, encounter id, line id): a counting sort by patient, then a natural
   merge sort of each patient's lines, with line ids compared in place in Arrow's buffers
   (kernels/_window.pyx ``total_order``); each line's group per scope is a dense integer
   (``contiguous_groups`` for patient-led scopes, whose groups are stretches of the order);
2. each line's (knowledge row, side) entries come from one CSR per distinct code (``expand_entries``);
3. pairs and requires over patient-led scopes: one pass over the entries, group by group, with a small
   hash table of the rows seen on each side (``pair_sweep``); other scopes, and windows: members are
   sorted by (group, same value, order) with a counting sort and per-group merge sorts (``group_runs``),
   and a line's window is a range of its run (``run_bounds``); counts and sums come from prefix sums over
   the ranges, distinct values and overlapping supply from ``range_distinct`` / ``range_overlap``;
4. the window values join the line's other values and the rule's scope, condition and amount are
   evaluated over (line, knowledge row) pairs by the same numpy evaluator as line-level families.

Every kernel has a Python twin (kernels/window_twin.py) and a test that they agree. Results never
depend on batch boundaries: the collected lines are the same however the input was cut. Input larger
than memory is split by patient first and audited one partition at a time (engine/partitioned.py).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from claimaudit.dsl import ir
from claimaudit.dsl.schema import CLAIM_FIELDS
from claimaudit.dsl.units import Quantity

from .columns import MICROS_PER_DAY, LineColumns, text_ranks_at, values_at
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
    def key_field(self) -> str | None:
        """The text claim field the lookup key reads as is (then lines are matched per distinct code over the
        whole input at once), or None."""
        lk = self.rule.lookup
        if lk is None or not isinstance(lk.key, ir.Field) or CLAIM_FIELDS.get(lk.key.name) is None:
            return None
        return lk.key.name if CLAIM_FIELDS[lk.key.name].type == "text" else None

    def code_matches(self, dictionary: list) -> np.ndarray:
        """Per distinct code of ``dictionary``, whether some knowledge row matches it on either side."""
        codes = pa.array(dictionary, pa.string())
        out = np.zeros(len(dictionary), bool)
        for index in self.indexes.values():
            starts, _ = index.candidates(codes)
            out |= np.diff(starts) > 0
        return out

    def candidates(self, lines: LineColumns, good: np.ndarray, cache: dict) -> np.ndarray:
        """Lines of a batch this rule may look at (as the window's line or as a member / partner)."""
        if self.every_line:
            return good.copy()
        key, starts, _, _ = self._code_entries(lines, cache)
        has_entry = np.append(np.diff(starts) > 0, False)  # code -1 (null) matches nothing
        matched = has_entry[key.val]
        matched[self.unknown_keys(lines, good, cache)] = True
        return matched & good

    def _code_entries(self, lines: LineColumns, cache: dict):
        """The lookup key's values (dictionary codes per line) and, per distinct code, its knowledge rows
        with the sides they match (bit 1 key, bit 2 partner), as CSR: (key, starts, rows, flags)."""
        ev = FamilyEvaluator(lines, self.prep["params"], _EMPTY, _EMPTY, self.engine.kernels, cache)
        key = ev.eval(self.rule.lookup.key)
        if key.kind != "text" or key.dom != "line":
            raise NotVectorizable("a lookup key that is not a text field")
        ck = ("history-code-entries", id(self), id(key.dictionary))
        if ck not in cache:
            dictionary = pa.array(key.dictionary, pa.string())
            sides = []
            for side in ("key", "partner"):
                if side in self.indexes:
                    starts, rows = self.indexes[side].candidates(dictionary)
                    sides.append((np.repeat(np.arange(starts.size - 1, dtype=np.int64), np.diff(starts)), rows))
                else:
                    sides.append((_EMPTY, _EMPTY))
            code, row, flag = self._kernels().merge_sides(*(np.ascontiguousarray(a, np.int64) for p in sides for a in p))
            starts = np.searchsorted(code, np.arange(len(key.dictionary) + 1, dtype=np.int64)).astype(np.int64)
            cache[ck] = (key, starts, row, flag)  # key kept: its dictionary's id stays its own
        _, starts, row, flag = cache[ck]
        return key, starts, row, flag

    def _entries(self, lines, good, cache):
        """Every (line, row) matched on either side of the table, in (line, row) order, with its side flags."""
        ck = ("history-entries", id(self))
        if ck not in cache:
            key, starts, row, flag = self._code_entries(lines, cache)
            cache[ck] = self._kernels().expand_entries(np.ascontiguousarray(key.val, np.int32), good.view(np.uint8),
                                                       starts, row, flag)
        return cache[ck]

    def _matched(self, lines: LineColumns, side: str, within: np.ndarray, cache: dict):
        """(line, row) pairs whose lookup key matches the ``side`` column of the table, in line order, for
        the lines ``within`` (a subset of the good lines)."""
        line, row, flag = self._entries(lines, ~lines.bad, cache)
        keep = within[line] & ((flag & (1 if side == "key" else 2)) != 0)
        return line[keep], row[keep]

    def unknown_keys(self, lines: LineColumns, good: np.ndarray, cache: dict) -> np.ndarray:
        if self.table is None:
            return _EMPTY
        ev = FamilyEvaluator(lines, self.prep["params"], _EMPTY, _EMPTY, self.engine.kernels, cache)
        return np.flatnonzero(good & ~ev.known(ev.eval(self.rule.lookup.key)))

    def relevant(self, pos: np.ndarray, point: np.ndarray, lines: LineColumns, order: "TotalOrder", cache: dict):
        """Positions among the collected lines whose values can enter the windows of this rule's hits at
        ``pos`` (knowledge rows ``point``): the hit lines, and the lines of their group that match the same
        knowledge row (or value, or any line for rules that count every line). Rendering re-derives a
        finding with the reference over these lines only, not over a patient's whole history."""
        group, _ = order.groups(self.window.scope)
        g = group[pos]
        placed = g >= 0
        if self.table is None or self.every_line:
            picked = np.flatnonzero(np.isin(group, np.unique(g[placed])) & (group >= 0))
            return np.union1d(picked, pos)
        e_line, e_row, _ = self._entries(lines, ~lines.bad, cache)
        same = self.window.same
        value = self._knowledge_codes(same[1]) if self.window.kind == "window" and same and same[0] == "knowledge" \
            else np.arange(len(self.table), dtype=np.int64)
        span = int(value.max(initial=0)) + 2
        points = point[placed]
        # (a hit without a knowledge row, an unknown key, needs only its own line)
        hit_value = np.where(points >= 0, value[np.clip(points, 0, None)] if value.size else -1, -1)
        wanted = np.unique(g[placed] * span + (hit_value + 1))
        e_group = group[e_line]
        keep = (e_group >= 0) & np.isin(e_group * span + (value[e_row] + 1), wanted)
        return np.union1d(e_line[keep], pos)

    # ---- after the last batch ---------------------------------------------------------------------
    def resolve(self, lines: LineColumns, order: "TotalOrder", cache: dict, source: tuple):
        """Hits of the rule over ``lines`` (in total order); ``source`` = (table, rows) they were taken from."""
        self.source = source
        try:
            return self._resolve(lines, order, cache)
        except NotVectorizable as why:
            self.engine.fused_fallbacks.append((self.prep["fam"].family_id, f"cross-line: {why}"))
            return (self._by_reference(lines),)

    def _by_reference(self, lines: LineColumns):
        """A construct the vector path does not take: the reference decides, over the same lines."""
        from claimaudit.connectors.claims import typed_records
        from .batch import _point_of, OUTCOME_INSUFFICIENT, OUTCOME_VIOLATION, Hits
        from .findings import VIOLATION
        from .reference import ReferenceEngine
        good = np.flatnonzero(~lines.bad)
        source, rows = self.source  # every column of the lines (the typed ones hold only what rules read)
        dicts = typed_records(source.take(pa.array(rows[good], pa.int64())))
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
        group, group_known = order.groups(self.window.scope)
        placed = group_known & order.datable
        if self.window.kind != "window" and self._sweepable(order):
            ev = self._swept_pairs(lines, order, group, placed, good, cache)
        else:
            ev = self._evaluator(lines, order, group, placed, good, cache)
        hits = self.engine.evaluate_numpy(self.prep, self._only_deciding(ev), lines)
        unknown = self.unknown_keys(lines, good, cache)
        return hits, (self.engine._unknown_key_hits(self.prep, unknown) if unknown.size else None)

    def _only_deciding(self, ev):
        """When the condition is the partner test alone (``p`` of a pair, ``not q`` of a requires) and there is
        no scope, the (line, row) pairs whose test is known to fail give no finding: they are dropped before
        the condition and amounts are evaluated over millions of pairs."""
        partner = ev.window.get("partner")
        if partner is None or self.rule.scope is not None:
            return ev
        test, c = ir.WindowValue("partner", "bool"), self.rule.condition
        if c == test:
            fails = partner.known & ~np.asarray(partner.val, bool)
        elif isinstance(c, ir.Op) and c.op == "not" and c.args == (test,):
            fails = partner.known & np.asarray(partner.val, bool)
        else:
            return ev
        return ev.subset(np.flatnonzero(~fails)) if fails.any() else ev

    def _sweepable(self, order) -> bool:
        """Pairs are found in one pass over the lines when the scope's groups are contiguous in the total
        order (a patient and a period, or the patient), unless a rolling window spans the whole group."""
        w = self.window
        return order.contiguous(w.scope) and (w.rolling_days is None or w.looks_back or w.unordered)

    def _swept_pairs(self, lines, order, group, placed, good, cache):
        """Pair and requires rules by ``pair_sweep`` (kernels/_window.pyx) over the lines' (row, side)
        entries in total order; the lines the rule evaluates are those matched on its lookup side."""
        w = self.window
        line, row, flag = self._entries(lines, good, cache)
        side = self.rule.lookup.side
        query = (flag & {"key": 1, "partner": 2, "either": 3}[side]) != 0
        if query.all():  # (no copies of millions of entries when every entry is evaluated)
            query = slice(None)
        ev = HistoryEvaluator(lines, self.prep["params"], line[query], row[query], self.engine.kernels, cache)
        known = placed[ev.pair_line]
        first_day = _EMPTY
        if w.rolling_days is not None:
            rolling_known, q_first = _first_days(self._rolling_days(ev), order.day[ev.pair_line])
            known &= rolling_known
            first_day = np.full(line.size, np.iinfo(np.int64).min, np.int64)
            first_day[query] = q_first
        looks = 2 if w.kind == "pair" and w.unordered else (1 if w.kind == "requires" else 0)
        k = self._kernels()
        # a line's group is -1 exactly when it is not placed (see TotalOrder._group)
        partner = k.pair_sweep(line, row, flag, group, (placed & good).view(np.uint8), order.day64, first_day,
                               looks, int(bool(w.looks_back or w.unordered)))
        ev.window = {"partner": V("bool", "pair", partner[query].view(bool), known)}
        return ev

    def _evaluator(self, lines, order, group, placed, good, cache):
        """The general path: windows, and pairs over groups that are not contiguous (per encounter, per
        prescription, per institution), by runs of members sorted per group (``_Runs``)."""
        pair_line, pair_row, sides = self._line_pairs(lines, good, cache)
        ev = HistoryEvaluator(lines, self.prep["params"], pair_line, pair_row, self.engine.kernels, cache)
        if self.window.kind == "window":
            ev.window = self._window_values(ev, lines, order, group, placed, good, cache)
        else:
            ev.window = {"partner": self._partner_values(ev, lines, order, group, placed, good, sides, cache)}
        return ev

    def _line_pairs(self, lines, good, cache):
        """(line, row, matched-side flags) of the lines the rule evaluates, in (line, row) order without
        repeats; flags bit 1 key, bit 2 partner."""
        if self.table is None:
            li = np.flatnonzero(good).astype(np.int64)
            return li, np.zeros(li.size, np.int64), np.ones(li.size, np.int8)
        line, row, flag = self._entries(lines, good, cache)
        keep = (flag & {"key": 1, "partner": 2, "either": 3}[self.rule.lookup.side]) != 0
        return line[keep], row[keep], flag[keep]

    # ---- windows ----
    def _window_values(self, ev, lines, order, group, placed, good, cache) -> dict:
        w = self.window
        same_l, same_known = self._same_of_pairs(ev, lines)
        m_line, m_same = self._members(ev, lines, order, placed, good, cache)
        ql = ev.pair_line
        q_known = placed[ql] & same_known
        runs = _Runs(order, self._kernels(), m_line, group[m_line], m_same)
        rolling_known, first_day = np.ones(ql.size, bool), None
        if w.rolling_days is not None:
            rolling_known, first_day = _first_days(self._rolling_days(ev), order.day[ql])
        lo, hi, _ = runs.bounds(ql, np.where(q_known, group[ql], -1), same_l, 0 if w.whole else 1, first_day)
        return _aggregates(self._used_values(), runs, lo, hi, q_known & rolling_known, lines, self.engine)

    def _kernels(self):
        return window_kernels.backend(self.engine.kernel_name)

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
        """(line, same value) of every line that counts in some window: placed, passing ``where``; in line
        (= total) order."""
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
        line, row = self._matched(lines, "key", ok, cache)
        if same[0] == "point":
            return line, row.astype(np.int64)
        v = self._knowledge_codes(same[1])[row]
        keep = v >= 0
        # one member per (line, value): rows sharing a value count the line once
        line, row, _ = self._kernels().merge_sides(line[keep], v[keep], _EMPTY, _EMPTY)
        return line, row

    # ---- pairs and requires ----
    def _partner_values(self, ev, lines, order, group, placed, good, sides, cache) -> V:
        w = self.window
        ql = ev.pair_line
        q_group = np.where(placed[ql], group[ql], -1)
        strict = w.looks_back or w.unordered
        first_day, known = None, placed[ql].copy()
        if w.rolling_days is not None:
            rolling_known, first_day = _first_days(self._rolling_days(ev), order.day[ql])
        count = np.zeros(ql.size, np.int64)
        ok = placed & good
        for side, bit in (("key", 1), ("partner", 2)):
            if side not in self.indexes:
                continue
            # which lines look for partners on this side: the other side of the one they matched
            if w.kind == "pair" and not w.unordered:
                looks = np.full(ql.size, side == "key")
            elif w.kind == "requires":
                looks = np.full(ql.size, side == "partner")
            else:
                looks = (sides & (3 - bit)) != 0
            if not looks.any():
                continue
            m_line, m_row = self._matched(lines, side, ok, cache)
            runs = _Runs(order, self._kernels(), m_line, group[m_line], m_row)
            lo, hi, own = runs.bounds(ql, np.where(looks, q_group, -1), ev.pair_row, 2 if strict else 0, first_day)
            c = hi - lo
            if not strict:  # the whole group: a line never partners itself
                c = c - own
            count += np.where(looks, np.maximum(c, 0), 0)
            if first_day is not None:
                known &= rolling_known | ~looks
        return V("bool", "pair", count > 0, known)


def _keyed(table, column: str):
    for r, row in enumerate(table.rows):
        v = row.get(column)
        for k in (v if isinstance(v, tuple) else (v,)):
            if k is not None:
                yield r, k


class _Runs:
    """Window members sorted by (group, same value, total order): the members of one group sharing a value
    are a contiguous run, and a line's window is a range [lo, hi) of its run (kernels/_window.pyx)."""

    def __init__(self, order: "TotalOrder", k, m_line, m_group, m_key):
        self.order, self.k = order, k
        placed = m_group >= 0
        m_line, m_group, m_key = (np.ascontiguousarray(a[placed], np.int64) for a in (m_line, m_group, m_key))
        n_groups = int(m_group.max()) + 1 if m_group.size else 0
        perm, self.group_start = k.group_runs(m_group, n_groups, m_key)
        self.m_line, self.m_key = m_line[perm], m_key[perm]
        self.m_rank = np.ascontiguousarray(order.rank[self.m_line], np.int64)
        self.m_day = order.day[self.m_line]
        sorted_group = m_group[perm]
        change = np.ones(self.m_line.size, bool)
        change[1:] = (sorted_group[1:] != sorted_group[:-1]) | (self.m_key[1:] != self.m_key[:-1])
        self.m_g = np.cumsum(change) - 1  # run number of each sorted member
        self.q_line = self.q_day = None

    def bounds(self, q_line, q_group, q_key, mode: int, first_day=None):
        """(lo, hi, line is a member of its run) per query; mode 0 whole run, 1 running, 2 strictly before;
        ``first_day`` per query raises lo (rolling windows)."""
        self.q_line, self.q_day = q_line, self.order.day[q_line]
        n = q_line.size
        if first_day is None:
            first_day = np.full(n, np.iinfo(np.int64).min, np.int64)
        q_group = np.where(q_group < self.group_start.size - 1, q_group, -1)  # groups without any member
        return self.k.run_bounds(self.m_key, self.m_rank, self.m_day.astype(np.int64), self.group_start,
                                 np.ascontiguousarray(q_group, np.int64), np.ascontiguousarray(q_key, np.int64),
                                 np.ascontiguousarray(self.order.rank[q_line], np.int64),
                                 np.ascontiguousarray(first_day, np.int64), mode)


def _first_days(days: V, q_day: np.ndarray):
    """``rolling N``: the window's first day per query, N days ending on the line's day; N unknown or not
    positive is insufficient data (known False)."""
    known = days.known & (days.val > 0)
    # (day - d) < N  <=>  d >= day - ceil(N) + 1, for whole and fractional N alike
    n_days = np.where(known, np.ceil(days.val), 1).astype(np.int64)
    return known, q_day.astype(np.int64) - n_days + 1


def _aggregates(wanted: set, r: _Runs, lo, hi, known, lines: LineColumns, engine) -> dict:
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


def _previous_same(r: _Runs, col) -> np.ndarray:
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
    """Lines given in total order (patient, time, encounter id, line id): each line's rank is its position;
    per scope, each line's group as a dense number (-1 when the line has no place in that scope)."""

    @staticmethod
    def of_rows(table: pa.Table, rows: np.ndarray, kernel_name: str | None = None) -> tuple:
        """The permutation that puts ``rows`` of ``table`` in total order, and the order keys of the lines
        so ordered (for ``TotalOrder(lines, keys)``). Read from the order fields
        alone: patients and encounter ids as ranks of their (trimmed) texts, line ids as UTF-8 bytes
        compared only where patient, time and encounter tie (kernels/_window.pyx ``total_order``)."""
        take = pa.array(rows, pa.int64())
        n = rows.size

        def ranks(name):
            return text_ranks_at(table.column(name), rows) if name in table.column_names else (
                np.full(n, -1, np.int64), 0)
        patient, n_patients = ranks("psn_no")
        encounter, _ = ranks("mdtrt_id")
        micros, known = _times(table.column("fee_ocur_time") if "fee_ocur_time" in table.column_names else None,
                               rows, take)
        k = window_kernels.backend(kernel_name)
        sn = table.column("feedetl_sn") if "feedetl_sn" in table.column_names else None
        sn_addr, sn_len, alive = _line_ids(sn, rows, k)
        perm = k.total_order(patient, n_patients, micros, known.view(np.uint8), encounter, sn_addr, sn_len)
        del alive  # the buffers the addresses point into: kept until the sort is done
        return perm, (patient[perm], micros[perm], known[perm])

    def __init__(self, lines: LineColumns, keys: tuple | None = None):
        """``keys``: (patient rank, microseconds, has a time) per line, as ``of_rows`` returns them (else
        read from ``lines``)."""
        self.lines = lines
        self.n = lines.n
        if keys is not None:
            self.patient, micros, known = keys
        else:
            self.patient = _codes(lines, "psn_no")
            t = lines.get("fee_ocur_time")
            if t is None:
                micros, known = np.zeros(self.n, np.int64), np.zeros(self.n, bool)
            else:
                micros = t.micros if t.micros is not None else t.days.astype(np.int64) * MICROS_PER_DAY
                known = t.known
        self.datable = np.asarray(known, bool)
        self.day = np.floor_divide(micros, MICROS_PER_DAY).astype(np.int32)
        self.day64 = self.day.astype(np.int64)
        self.rank = np.arange(self.n, dtype=np.int64)
        self._groups: dict = {}

    def contiguous(self, scope: str) -> bool:
        """Whether each group of ``scope`` is a contiguous stretch of the total order (patient-led scopes)."""
        return scope not in ("encounter", "prescription", "institution")

    def groups(self, scope: str):
        if scope not in self._groups:
            self._groups[scope] = self._group(scope)
        return self._groups[scope]

    def _group(self, scope: str):
        if scope == "encounter":
            parts = [_codes(self.lines, "mdtrt_id")]
        elif scope == "prescription":
            parts = [_codes(self.lines, "mdtrt_id"), _codes(self.lines, "rxno")]
        elif scope == "patient":
            parts = [self.patient]
        elif scope == "institution":
            parts = [self.patient, _codes(self.lines, "fixmedins_code")]
        else:
            parts = [self.patient, _period(scope, self.day)]
        if self.contiguous(scope):  # (patient, calendar period) follows the total order: one pass
            period = parts[1] if len(parts) > 1 else np.zeros(self.n, np.int64)
            group = window_kernels.backend().contiguous_groups(
                np.ascontiguousarray(self.patient, np.int64), np.ascontiguousarray(period, np.int64),
                self.datable.view(np.uint8))
            return group, group >= 0
        known = np.all([p >= 0 for p in parts], axis=0) & self.datable
        combined = np.zeros(self.n, np.int64)
        for p in parts:
            combined = combined * (int(p.max(initial=0)) + 2) + (p + 1)
        _, dense = np.unique(combined, return_inverse=True)
        return np.where(known, dense, -1).astype(np.int64), known


def _codes(lines: LineColumns, name: str) -> np.ndarray:
    col = lines.get(name)
    return col.codes.astype(np.int64) if col is not None else np.full(lines.n, -1, np.int64)


def _times(col, rows: np.ndarray, take: pa.Array):
    """Microseconds since the epoch and whether the line has a time, typed as the row reader types it:
    read in place from a timestamp column, else typed from the values at ``rows``."""
    n = rows.size
    if col is None:
        return np.zeros(n, np.int64), np.zeros(n, bool)
    if pa.types.is_timestamp(col.type) and col.type.unit == "us":
        return values_at(col, rows, np.int64)
    t = LineColumns(pa.table({"fee_ocur_time": col.take(take)}), identity_checked=True).get("fee_ocur_time")
    micros = t.micros if t.micros is not None else t.days.astype(np.int64) * MICROS_PER_DAY
    return np.ascontiguousarray(micros, np.int64), np.ascontiguousarray(t.known, bool)


def _line_ids(col, rows: np.ndarray, k):
    """Where each line's id lies in Arrow's buffers: (address, length in bytes) per line of ``rows``
    (ascending), read in place; and the arrays owning those buffers. Null and blank ids are empty (the
    reference orders them as ""); ids are trimmed first only if some may have surrounding whitespace."""
    n = rows.size
    if col is None:
        return np.zeros(n, np.int64), np.zeros(n, np.int64), None
    chunks = [c if pa.types.is_string(c.type) else pc.cast(c, pa.string()) for c in col.chunks]
    addr, length = _addresses(chunks, rows)
    if sum(c.null_count for c in chunks) or k.edges_may_be_blank(addr, length):
        chunks = [pc.utf8_trim_whitespace(pa.chunked_array(chunks, pa.string()).take(pa.array(rows, pa.int64())))
                  .fill_null("").combine_chunks()]
        addr, length = _addresses(chunks, np.arange(n, dtype=np.int64))
    return addr, length, chunks


def _addresses(chunks: list, rows: np.ndarray):
    """(address, length) of the string at each of ``rows`` (ascending) across string ``chunks``."""
    addr, length = np.zeros(rows.size, np.int64), np.zeros(rows.size, np.int64)
    start = 0
    for c in chunks:
        lo, hi = np.searchsorted(rows, [start, start + len(c)])
        if hi > lo:
            bufs = c.buffers()
            offsets = np.frombuffer(bufs[1], np.int32, count=c.offset + len(c) + 1).astype(np.int64)
            local = rows[lo:hi] - start + c.offset
            base = bufs[2].address if bufs[2] is not None else 0
            addr[lo:hi] = base + offsets[local]
            length[lo:hi] = offsets[local + 1] - offsets[local]
        start += len(c)
    return addr, length


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
