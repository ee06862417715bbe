"""Batch executor: Arrow tables of claim lines in, hits out, families evaluated as vectorised joins.

For each family the line key (e.g. ``med_list_codg``, dictionary-encoded once per batch) is matched
against the family's parameter rows on distinct key values only, candidate (line, row) pairs are
expanded with numpy, and the template is evaluated over the pairs (``vector``). Hits are kept as
arrays; ``findings()`` renders them with the reference's semantics: compiled render programs for
line-level rules with many hits (inline_render), the reference interpreter itself for the rest.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from claimaudit.dsl import ir
from claimaudit.dsl.parse import no_cyclic_gc

from . import fused
from . import kernels as kernel_registry
from .columns import EPOCH, LineColumns, NumCol, TextCol, gatherable, text_codes_at, values_at
from .findings import INSUFFICIENT, VIOLATION, Finding
from .history import CrossLineRule, TotalOrder
from .plan import MATCH_ALL, Family, Plan
from .reference import ReferenceEngine, effective_window
from .vector import FamilyEvaluator, NotVectorizable, ParamColumns, V

OUTCOME_VIOLATION, OUTCOME_INSUFFICIENT = 1, 2
# line fields a finding shows besides those the rules read
_SHOWN_FIELDS = ("feedetl_sn", "mdtrt_id", "psn_no", "fixmedins_code", "bilg_dept_codg", "bilg_dr_codg",
                 "med_list_codg", "fee_ocur_time", "hilist_name")
_NO_DATE_LOW, _NO_DATE_HIGH = np.iinfo(np.int32).min, np.iinfo(np.int32).max


@dataclass
class Hits:
    """What the executor found: one entry per (line, rule, knowledge point)."""

    line: np.ndarray  # int64 row of the input table
    rule: np.ndarray  # int32 index into ruleset.rules
    point: np.ndarray  # int32 knowledge-table row, -1 for none
    outcome: np.ndarray  # int8: 1 violation, 2 insufficient data
    amount: np.ndarray  # float64, NaN when not computed

    def __len__(self):
        return len(self.line)

    @staticmethod
    def concat(parts: list, ordered: bool = False) -> "Hits":
        """One Hits in (line, rule, point) order; ``ordered``: the parts already are, one after another."""
        if not parts:
            return Hits(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int8),
                        np.zeros(0, np.float64))
        h = Hits(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("line", "rule", "point", "outcome", "amount")))
        if ordered:
            return h
        order = np.lexsort((h.point, h.rule, h.line))
        return Hits(h.line[order], h.rule[order], h.point[order], h.outcome[order], h.amount[order])


def round_money_vec(v: np.ndarray) -> np.ndarray:
    """The vector twin of ``values.round_money``: the same float operations in the same order."""
    r = np.floor(np.abs(v) * 100 + 0.5 + 1e-6) / 100
    return np.where(v < 0, -r, r)


class _FamilyIndex:
    """Parameter rows of a family by key, grouped by key length, as Arrow value sets so that the
    distinct line codes of a batch are matched in a few vectorised lookups per length."""

    def __init__(self, fam: Family, active: np.ndarray):
        self._build(fam.match, ((r, key) for r, key in enumerate(fam.keys) if active[r] and key is not None))

    @classmethod
    def of_keys(cls, match: str, keyed) -> "_FamilyIndex":
        """An index over (row, key) pairs, e.g. a pair table's partner column (several keys per row)."""
        index = cls.__new__(cls)
        index._build(match, keyed)
        return index

    def _build(self, match: str, keyed) -> None:
        self.match = match
        by_length: dict = {}
        for r, key in keyed:
            rows = by_length.setdefault(len(key) if match == "prefix" else None, {}).setdefault(key, [])
            if r not in rows:
                rows.append(r)
        self.groups = []  # (length or None, keys as Arrow array, CSR offsets, rows)
        for length, rows_by_key in sorted(by_length.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
            keys = list(rows_by_key)
            offsets = np.concatenate([[0], np.cumsum([len(rows_by_key[k]) for k in keys])]).astype(np.int64)
            rows = np.array([r for k in keys for r in rows_by_key[k]], np.int64)
            self.groups.append((length, pa.array(keys, pa.string()), offsets, rows))

    def candidates(self, codes: pa.Array, memo: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """CSR over the distinct line codes: (offsets, rows) of the matching parameter rows. ``memo`` (a
        batch's cache) shares the code lengths and prefixes of ``codes`` between families."""
        n = len(codes)
        code_parts, row_parts = [], []

        def shared(what, length, make):
            if memo is None:
                return make()
            key = ("@candidates", what, id(codes), length)
            if key not in memo:
                memo[key] = (codes, make())  # codes kept so that its id stays its own
            return memo[key][1]

        lengths = shared("lengths", None, lambda: pc.utf8_length(codes).to_numpy(zero_copy_only=False)) if n \
            else np.zeros(0, np.int64)
        for length, keys, offsets, rows in self.groups:
            probe = codes if length is None else shared("prefix", length,
                                                        lambda: pc.utf8_slice_codeunits(codes, 0, length))
            pos = pc.index_in(probe, value_set=keys).to_numpy(zero_copy_only=False)
            pos = np.where(np.isnan(pos), -1, pos).astype(np.int64) if pos.dtype.kind == "f" else pos.astype(np.int64)
            ok = pos >= 0
            if length is not None:
                ok &= lengths >= length
            code_ids = np.flatnonzero(ok)
            if not code_ids.size:
                continue
            k = pos[code_ids]
            per = offsets[k + 1] - offsets[k]
            code_parts.append(np.repeat(code_ids, per))
            starts = np.repeat(offsets[k], per)
            within = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
            row_parts.append(rows[starts + within])
        if not code_parts:
            return np.zeros(n + 1, np.int64), np.zeros(0, np.int64)
        code_ids = np.concatenate(code_parts)
        cand_rows = np.concatenate(row_parts)
        d_code, d_row = np.diff(code_ids), np.diff(cand_rows)
        if not np.all((d_code > 0) | ((d_code == 0) & (d_row >= 0))):  # one key length: usually in order already
            order = np.lexsort((cand_rows, code_ids))
            code_ids, cand_rows = code_ids[order], cand_rows[order]
        counts = np.bincount(code_ids, minlength=n)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), cand_rows


class BatchEngine:
    def __init__(self, plan: Plan, stages=None, rule_codes=None, kernels: str | None = None):
        self.plan = plan
        self.ruleset = plan.ruleset
        self.kernels = kernel_registry.backend(kernels)
        self.reference = ReferenceEngine(plan.ruleset, stages=stages, rule_codes=rule_codes)
        active_rules = {id(r) for r in self.reference.rules}
        self.rule_active = np.array([id(r) in active_rules for r in self.ruleset.rules], bool)
        self.rules = self.reference.rules
        rules = self.ruleset.rules
        cross = [f for f in plan.families if len(f.rules) == 1 and rules[f.rules[0]].window is not None]
        self._prepared = [self._prepare(f) for f in plan.families if f not in cross]
        self.cross_rules = [CrossLineRule(self, f.rules[0], prep) for f in cross
                            if (prep := self._prepare(f))["active"].any()]
        self.kernel_name = kernels
        self._collected: list = []  # per batch: the lines cross-line rules may look at (table rows)
        self._cross: tuple | None = None  # (table rows, their typed columns) after the last batch
        self.fused_fallbacks: list = []  # (family id, reason) evaluated by numpy because the VM cannot
        self._renderers = None  # compiled render programs of line-level rules (inline_render), made on demand
        self.compile_renderers_at = 16  # hits of a rule from which its findings are rendered by such a program
        self._cross_inline = None  # the cross-line rules compiled as the inline screener compiles them

    def _prepare(self, fam: Family):
        rule_idx = np.array(fam.rule_index, np.int32)
        active = self.rule_active[rule_idx] if len(rule_idx) else np.zeros(0, bool)
        rules = self.ruleset.rules
        windows = [effective_window(rules[i], self.ruleset.tables[rules[i].lookup.table] if rules[i].lookup else None, p)
                   for i, p in zip(fam.rule_index, fam.point)]
        eff_from = np.array([_days(a, _NO_DATE_LOW) for a, _ in windows], np.int32)
        eff_to = np.array([_days(b, _NO_DATE_HIGH) for _, b in windows], np.int32)
        has_eff = np.array([bool(a or b) for a, b in windows], bool)
        index = _FamilyIndex(fam, active) if fam.match != MATCH_ALL else None
        multi = len(set(fam.rule_index)) != len(fam.rule_index) and fam.source == "rules"
        return dict(fam=fam, rule_idx=rule_idx, point=np.array(fam.point, np.int32), active=active,
                    eff_from=eff_from, eff_to=eff_to, has_eff=has_eff, index=index, multi=multi,
                    params=ParamColumns(fam.params, fam.values, len(fam)))

    def input_columns(self) -> list[str]:
        """The claim columns the selected rules read (plus line identity): all a typed (Parquet) input
        needs to be read for; text inputs (CSV) should be read whole, since any column can be malformed."""
        from claimaudit.connectors.claims import needed_columns
        diagnoses = {"dscg_maindiag_code", "diag_codes"} if any(_calls(r, "has_diag") for r in self.rules) else set()
        return sorted(set(needed_columns(self.rules)) | diagnoses)

    def columns_to_read(self, types: dict) -> set:
        """Of a typed (Parquet) input's columns (name -> Arrow type): those an audit needs — what the rules
        read, what findings show, what netting reads — and every claim field stored in a type whose values
        may not read (the row reader quarantines such rows, whichever rule reads the field)."""
        from claimaudit.connectors.netting import NETTING_COLUMNS
        from claimaudit.dsl.schema import CLAIM_FIELDS
        from .columns import _is_native
        wanted = set(self.input_columns()) | set(_SHOWN_FIELDS) | set(NETTING_COLUMNS)
        wanted |= {r for rule in self.rules for r in rule.window_fields()}
        wanted |= {n for n, t in types.items() if n in CLAIM_FIELDS and not _is_native(CLAIM_FIELDS[n].type, t)}
        return {n for n in types if n in wanted}

    # ---- running ----------------------------------------------------------------------------------
    def run_table(self, table: pa.Table, batch_rows: int = 1 << 20) -> tuple[Hits, "LineColumns | BatchedLines"]:
        """Audit a table of claim lines, ``batch_rows`` lines at a time: line-level families carry no state
        between lines, and batches keep the per-line temporaries (and so peak memory) bounded."""
        self._collected, self._cross = [], None
        if table.num_rows <= batch_rows:
            hits, lines = self._run_batch(table, 0)
            return self._resolve_cross_lines(table, hits, lines), lines
        parts, batches = [], []
        for start in range(0, table.num_rows, batch_rows):
            hits, lines = self._run_batch(table.slice(start, batch_rows), start)
            hits.line += start
            parts.append(hits)
            batches.append((start, lines.bad, lines.bad_reason))
        lines = BatchedLines(table, batches)
        return self._resolve_cross_lines(table, Hits.concat(parts, ordered=True), lines), lines

    def _run_batch(self, table: pa.Table, start: int = 0) -> tuple[Hits, LineColumns]:
        lines = LineColumns(table, self.kernels)
        good = ~lines.bad
        cache: dict = {}
        parts = []
        for prep in self._prepared:
            if not prep["active"].any():
                continue
            parts.extend(self._run_family(prep, lines, good, cache))
        if self.cross_rules and self._match_at_end():  # lines matched per distinct code after the last batch
            self._collected.append(start + np.flatnonzero(~lines.bad))
        elif self.cross_rules:  # cross-line rules only collect here; they are decided after the last batch
            wanted = np.zeros(lines.n, bool)
            for rule in self.cross_rules:
                wanted |= rule.candidates(lines, good, cache)
            self._collected.append(start + np.flatnonzero(wanted & ~lines.bad))
        hits = Hits.concat(parts)
        late = lines.bad[hits.line]  # a column typed on first use may quarantine rows after a family ran
        if late.any():
            hits = Hits(*(getattr(hits, f)[~late] for f in ("line", "rule", "point", "outcome", "amount")))
        return hits, lines

    def _resolve_cross_lines(self, table: pa.Table, hits: Hits, lines) -> Hits:
        """Decide the cross-line rules over the lines every batch collected (engine/history.py)."""
        if not self.cross_rules:
            return hits
        rows = np.concatenate(self._collected) if self._collected else np.zeros(0, np.int64)
        key_codes = {}
        if self._match_at_end() and rows.size:
            rows, key_codes = self._matching_rows(table, rows)
        if not rows.size:
            return hits
        perm, keys = TotalOrder.of_rows(table, rows, self.kernel_name)
        sub = self._cross_lines(table, rows, perm, key_codes)
        rows = rows[perm]  # the collected lines in total order
        order, cache, parts = TotalOrder(sub, keys), {}, [hits]
        for rule in self.cross_rules:
            for h in rule.resolve(sub, order, cache, (table, rows)):
                if h is not None and len(h):
                    parts.append(h)
        late = np.flatnonzero(sub.bad)  # a field only cross-line rules read may hold a value that does not read
        for i in late:
            g = int(rows[i])
            if not lines.bad[g]:
                lines.bad[g] = True
                lines.bad_reason[g] = sub.bad_reason[int(i)]
        for h in parts[1:]:
            keep = ~sub.bad[h.line]
            h.line, h.rule, h.point, h.outcome, h.amount = (rows[h.line[keep]], h.rule[keep], h.point[keep],
                                                            h.outcome[keep], h.amount[keep])
        self._cross = (rows, sub, table, order, cache)
        out = Hits.concat(parts)
        drop = lines.bad[out.line]
        return Hits(*(getattr(out, f)[~drop] for f in ("line", "rule", "point", "outcome", "amount"))) if drop.any() else out

    def _pairs(self, prep, lines: LineColumns, good: np.ndarray, cache: dict, probe: FamilyEvaluator):
        fam: Family = prep["fam"]
        if fam.match == MATCH_ALL:
            li = np.flatnonzero(good)
            rows = np.flatnonzero(prep["active"])
            return np.repeat(li, len(rows)).astype(np.int64), np.tile(rows, len(li)).astype(np.int64), None
        key: V = probe.eval(fam.key_expr)
        if key.kind != "text":
            raise NotVectorizable("a lookup key that is not text")
        index: _FamilyIndex = prep["index"]
        dict_key = ("arrow-dictionary", id(key.dictionary))
        if dict_key not in cache:
            cache[dict_key] = (key.dictionary, pa.array(key.dictionary, pa.string()))
        starts, items = index.candidates(cache[dict_key][1], cache)
        # one kernel pass: each good line with a code, once per candidate row of its code (line order)
        pair_line, pair_row = self.kernels.expand_pairs(key.val, good, starts, items)
        unknown_key = good & ~key.known if fam.source.startswith("table:") else None
        return pair_line, pair_row, unknown_key

    def _run_family(self, prep, lines: LineColumns, good: np.ndarray, cache: dict) -> list:
        empty = np.zeros(0, np.int64)
        probe = FamilyEvaluator(lines, prep["params"], empty, empty, self.kernels, cache)
        try:
            pair_line, pair_row, unknown_key = self._pairs(prep, lines, good, cache, probe)
            ev = FamilyEvaluator(lines, prep["params"], pair_line, pair_row, self.kernels, cache)
            hits = self._evaluate(prep, ev, lines)
        except NotVectorizable:
            return [self._fallback(prep, lines, good)]
        out = [hits]
        if unknown_key is not None and unknown_key.any():
            out.append(self._unknown_key_hits(prep, np.flatnonzero(unknown_key)))
        return out

    def _evaluate(self, prep, ev: FamilyEvaluator, lines: LineColumns) -> Hits:
        try:
            return self._evaluate_fused(prep, ev)
        except NotVectorizable as why:  # the numpy evaluator below (or, failing that, the reference)
            self.fused_fallbacks.append((prep["fam"].family_id, str(why)))
        return self.evaluate_numpy(prep, ev, lines)

    def evaluate_numpy(self, prep, ev: FamilyEvaluator, lines: LineColumns) -> Hits:
        fam: Family = prep["fam"]
        n = ev.n_pairs
        row = ev.pair_row
        active = prep["active"][row]
        # effective dates: outside -> not applicable; unknown date of service -> insufficient, but only
        # where scope and condition do not already rule the line out (as ReferenceEngine._evaluate_point)
        has_eff = prep["has_eff"][row]
        if has_eff.any():
            day = ev.to_pair(ev._field("service_date"))
            d_known = day.known
            in_range = (day.val >= prep["eff_from"][row]) & (day.val <= prep["eff_to"][row])
            eff_unknown = has_eff & ~d_known
            eff_ok = ~has_eff | (d_known & in_range)
        else:
            eff_unknown = np.zeros(n, bool)
            eff_ok = np.ones(n, bool)
        s_val, s_known = self._bool(ev, fam.scope, n)
        c_val, c_known = self._bool(ev, fam.condition, n)
        sc_violation = s_known & s_val & c_known & c_val
        sc_insufficient = ~s_known | (s_val & ~c_known)
        violation = active & eff_ok & sc_violation
        insufficient = active & ((eff_unknown & (sc_violation | sc_insufficient)) | (eff_ok & sc_insufficient))
        hit = violation | insufficient
        idx = np.flatnonzero(hit)
        amounts = np.full(idx.size, np.nan)
        v_idx = np.flatnonzero(violation[idx])
        if v_idx.size:
            sub = ev.subset(idx[v_idx])
            amount = sub.to_pair(sub.eval(fam.amount))
            if amount.dom == "const":
                vals, known = np.full(v_idx.size, float(amount.val)), np.ones(v_idx.size, bool)
            else:
                vals, known = amount.val, sub.known(amount)
            amounts[v_idx] = np.where(known, round_money_vec(vals), np.nan)
        h = Hits(ev.pair_line[idx], prep["rule_idx"][row[idx]], prep["point"][row[idx]],
                 np.where(violation[idx], OUTCOME_VIOLATION, OUTCOME_INSUFFICIENT).astype(np.int8), amounts)
        return _dedupe(h) if prep["multi"] else h

    def _evaluate_fused(self, prep, ev: FamilyEvaluator) -> Hits:
        """The family's scope, condition and amount compiled to programs that one kernel loop runs over
        the pairs (fused.py); the same outcomes and amounts as the numpy evaluation below."""
        inputs = fused.compile_family(prep["fam"], ev)
        if prep["has_eff"].any():
            day = ev._field("service_date")
            service_day, service_known = np.ascontiguousarray(day.val, np.int32), np.ascontiguousarray(day.known, bool)
        else:
            service_day, service_known = np.zeros(0, np.int32), np.zeros(0, bool)
        row = ev.pair_row
        outcome, amount = self.kernels.run_family(
            pair_line=ev.pair_line, pair_row=row, service_day=service_day, service_known=service_known,
            eff_from=prep["eff_from"], eff_to=prep["eff_to"], has_eff=prep["has_eff"], active=prep["active"], **inputs)
        idx = np.flatnonzero(outcome)
        h = Hits(ev.pair_line[idx], prep["rule_idx"][row[idx]], prep["point"][row[idx]], outcome[idx], amount[idx])
        return _dedupe(h) if prep["multi"] else h

    def _bool(self, ev: FamilyEvaluator, expr, n):
        if expr is None:
            return np.ones(n, bool), np.ones(n, bool)
        v = ev.to_pair(ev.eval(expr))
        if v.dom == "const":
            return np.full(n, bool(v.val)), np.ones(n, bool)
        return np.asarray(v.val, bool), ev.known(v)

    def _unknown_key_hits(self, prep, lines_idx: np.ndarray) -> Hits:
        rules = sorted({int(r) for r, a in zip(prep["rule_idx"], prep["active"]) if a})
        li = np.repeat(lines_idx, len(rules)).astype(np.int64)
        ri = np.tile(np.array(rules, np.int32), len(lines_idx))
        return Hits(li, ri, np.full(li.size, -1, np.int32), np.full(li.size, OUTCOME_INSUFFICIENT, np.int8),
                    np.full(li.size, np.nan))

    def _fallback(self, prep, lines: LineColumns, good: np.ndarray) -> Hits:
        """A family the vector evaluator cannot take: the reference evaluates it line by line."""
        rules = [int(r) for r in sorted(set(prep["rule_idx"][prep["active"]]))]
        parts = {"line": [], "rule": [], "point": [], "outcome": [], "amount": []}
        for i in np.flatnonzero(good):
            line = lines.row_dict(int(i))
            for r in rules:
                for f in self.reference.evaluate_rule(self.ruleset.rules[r], line):
                    parts["line"].append(i)
                    parts["rule"].append(r)
                    parts["point"].append(_point_of(self.ruleset, r, f))
                    parts["outcome"].append(OUTCOME_VIOLATION if f.outcome == VIOLATION else OUTCOME_INSUFFICIENT)
                    parts["amount"].append(np.nan if f.amount is None else f.amount)
        return Hits(np.array(parts["line"], np.int64), np.array(parts["rule"], np.int32),
                    np.array(parts["point"], np.int32), np.array(parts["outcome"], np.int8),
                    np.array(parts["amount"], np.float64))

    # ---- findings ---------------------------------------------------------------------------------
    def release(self) -> None:
        """Drop what the last run kept for rendering its cross-line findings (its lines and windows), so that a
        partitioned audit holds one partition's lines at a time."""
        self._collected, self._cross = [], None

    def findings(self, hits: Hits, lines: LineColumns) -> list[Finding]:
        """Render hits as findings, exactly as the reference renders them: line-level rules with many hits
        through their compiled render programs (inline_render, checked field for field against the
        reference), the rest (cross-line rules, rules with a few hits) by the reference itself.
        Insufficient-data outcomes are re-evaluated for their exact reason (which checks the decision)."""
        if not len(hits):
            return []
        with no_cyclic_gc():  # the findings live on: see dsl/parse.py
            return self._findings(hits, lines)

    def _findings(self, hits: Hits, lines: LineColumns) -> list[Finding]:
        from claimaudit.connectors.claims import typed_records
        from claimaudit.dsl.schema import CLAIM_FIELDS
        shown = set(self.input_columns()) | set(_SHOWN_FIELDS)
        fields = tuple((n, CLAIM_FIELDS[n]) for n in CLAIM_FIELDS if n in shown)
        line_rows = np.unique(hits.line)
        names = [n for n, _ in fields if n in lines.table.column_names]
        rows = typed_records(lines.table.select(names).take(pa.array(line_rows, pa.int64())), fields)
        by_line = dict(zip(line_rows.tolist(), rows))
        cross = {r.rule_index for r in self.cross_rules}
        rendered: dict = {}  # hit -> its finding, rendered with the other hits of its patient
        if cross and self._cross is not None and np.isin(hits.rule, list(cross)).any():
            relevant = self._cross_line_dicts(hits, cross)
            by_line.update(relevant)
            if len(hits) >= self.compile_renderers_at:
                rendered = self._cross_findings(hits, cross, relevant)
        compiled = self._compiled_renderers(hits, cross)
        derived: dict = {}  # line -> its derived values, shared by the findings on that line
        out = []
        rules = self.ruleset.rules
        for j, (line_row, rule_index, point, code) in enumerate(zip(hits.line.tolist(), hits.rule.tolist(),
                                                                    hits.point.tolist(), hits.outcome.tolist())):
            outcome = VIOLATION if code == OUTCOME_VIOLATION else INSUFFICIENT
            line = by_line[line_row]
            renderer = compiled.get(rule_index)
            if j in rendered:
                out.append(rendered[j])
            elif renderer is None:
                out.append(self.reference.render_hit(rules[rule_index], line, point, outcome))
            else:
                lv = derived.get(line_row)
                if lv is None:
                    lv = derived[line_row] = {}
                out.append(renderer.render(line, lv, point, outcome))
        return out

    def _cross_findings(self, hits: Hits, cross: set, relevant: dict) -> dict:
        """Findings of cross-line hits from the compiled cross-line rules (inline_cross), one patient at a
        time over the lines the reference would render them from (``relevant``): each patient's lines are
        one screening request, and each hit is rendered from it as decided here (its window listed again,
        the line not decided again) and takes the finding with its id and outcome. A hit without one (none
        is expected: inline and reference agree on the same lines) is left to the reference."""
        from .findings import finding_id
        if self._cross_inline is None:
            from .inline import compile_expr
            from .inline_cross import CrossLineRules
            rules = [self.ruleset.rules[r.rule_index] for r in self.cross_rules]
            self._cross_inline = CrossLineRules(self.ruleset, self.reference, rules, compile_expr, self.kernel_name)
        by_patient: dict = {}
        for line in relevant.values():
            by_patient.setdefault(line.get("psn_no"), []).append(line)
        wanted: dict = {}  # patient -> {(finding id, outcome): hit}
        rules, tables = self.ruleset.rules, self.ruleset.tables
        mine = np.flatnonzero(np.isin(hits.rule, list(cross)))
        for j, row, r, point, code in zip(mine.tolist(), hits.line[mine].tolist(), hits.rule[mine].tolist(),
                                          hits.point[mine].tolist(), hits.outcome[mine].tolist()):
            line, rule = relevant.get(row), rules[r]
            if line is None or line.get("psn_no") is None:
                continue
            table = tables[rule.lookup.table] if rule.lookup else None
            if table is not None and point < 0:
                continue
            at = f"{table.name}:{table.row_numbers[point]}" if table is not None else "-"
            fid = finding_id(rule.code, at, str(line.get("feedetl_sn")), line.get("mdtrt_id"))
            outcome = VIOLATION if code == OUTCOME_VIOLATION else INSUFFICIENT
            wanted.setdefault(line["psn_no"], []).append((j, line, rule, point, fid, outcome))
        compiled = {id(c.rule): c for c in self._cross_inline.compiled}
        out = {}
        for patient, patient_hits in wanted.items():
            request = self._cross_inline.request(by_patient[patient], None)
            at = {id(line): i for i, line in enumerate(request.lines)}
            for j, line, rule, point, fid, outcome in patient_hits:
                c = compiled.get(id(rule))
                for f in (request.render_decided(c, at[id(line)], point, outcome) or ()) if c is not None else ():
                    if f.finding_id == fid and f.outcome == outcome:
                        out[j] = f
        return out

    def _compiled_renderers(self, hits: Hits, cross: set) -> dict:
        """Render programs for the line-level rules with enough hits to repay compiling one (a pack written
        one rule per drug has tens of thousands of rules, most with a handful of findings)."""
        counts = np.bincount(hits.rule, minlength=len(self.ruleset.rules))
        many = [int(i) for i in np.flatnonzero(counts >= self.compile_renderers_at) if int(i) not in cross]
        if not many:
            return {}
        if self._renderers is None:
            from .inline_render import Renderers
            self._renderers = Renderers(self.ruleset, self.reference, self.kernel_name)
        return {i: self._renderers[i] for i in many}

    def _match_at_end(self) -> bool:
        """Whether every cross-line rule's lines can be found after the last batch, per distinct code of a
        text field over the whole input (one typing of the field, one index lookup per rule), rather than
        batch by batch."""
        return all(r.every_line or r.key_field() is not None for r in self.cross_rules)

    def _matching_rows(self, table: pa.Table, good_rows: np.ndarray):
        """Of the good rows, those some cross-line rule may look at (a code matching a side of its table, or
        no code: insufficient data), and the key fields typed over the whole table."""
        typed: dict = {}
        wanted: dict = {}  # field -> per distinct code: some rule matches it
        for rule in self.cross_rules:
            if rule.every_line:
                return good_rows, typed
            field = rule.key_field()
            if field not in table.column_names:
                return good_rows, typed
            if field not in typed:
                typed[field] = text_codes_at(table.column(field), None, self.kernels)
                wanted[field] = np.ones(len(typed[field].dictionary) + 1, bool)  # code -1: no code, insufficient
                wanted[field][:-1] = False
            wanted[field][:-1] |= rule.code_matches(typed[field].dictionary)
        keep = np.zeros(good_rows.size, bool)
        for field, has in wanted.items():
            keep |= has[typed[field].codes[good_rows]]
        return good_rows[keep], typed

    def _cross_lines(self, table: pa.Table, collected: np.ndarray, perm: np.ndarray, typed: dict) -> LineColumns:
        """The typed columns cross-line rules read, for the ``collected`` rows (ascending; their batches
        checked them already) put in total order by ``perm``. Text columns are typed from the table's own
        chunks and dictionaries (no unification of Parquet's per-row-group dictionaries), numbers read in
        place from the chunks' buffers; the others are taken from Arrow."""
        rows = collected[perm]
        from claimaudit.dsl.schema import CLAIM_FIELDS
        needed = [c for c in table.column_names if c in self._cross_columns()]
        text = [c for c in needed if CLAIM_FIELDS[c].type == "text"
                and (pa.types.is_dictionary(table.column(c).type) or pa.types.is_string(table.column(c).type))]
        # numbers read in place at the rows (typed as LineColumns types them: floats for number fields)
        numbers = [c for c in needed if c not in text and CLAIM_FIELDS[c].type == "number" and gatherable(table.column(c))]
        rest = [c for c in needed if c not in text and c not in numbers] or text[:1]  # (carries the line count)
        text = [c for c in text if c not in rest]
        sub = LineColumns(table.select(rest).take(pa.array(rows, pa.int64())), self.kernels, identity_checked=True)
        for c in text:
            if c in typed:  # typed over the whole table already
                sub.deferred[c] = (lambda col: lambda: TextCol(col.codes[rows], col.dictionary))(typed[c])
            else:
                sub.deferred[c] = (lambda col: lambda: text_codes_at(col, rows, self.kernels))(table.column(c))
        for c in numbers:
            sub.deferred[c] = (lambda col: lambda: NumCol(*(a[perm] for a in values_at(col, collected, np.float64))))(
                table.column(c))
        return sub

    def _cross_columns(self) -> set:
        """Claim columns the cross-line rules read (the line id only if a rule reads it: the order is
        already settled)."""
        from claimaudit.dsl.schema import DERIVED_INPUTS
        out = {"psn_no", "fee_ocur_time", "mdtrt_id", "med_list_codg"}
        for rule in self.cross_rules:
            r = rule.rule
            for f in r.fields_used() | (r.window_fields() - {"feedetl_sn"}):
                out.update(DERIVED_INPUTS.get(f, (f,)))
        return out

    def _cross_line_dicts(self, hits: Hits, cross: set) -> dict:
        """The lines that can enter the windows of the cross-line hits (see ``CrossLineRule.relevant``), as
        the reference's history: rendering re-derives each window (its values, involved lines and any
        reason) with the reference's code."""
        rows, sub, table, order, cache = self._cross
        by_row = np.argsort(rows)  # collected rows are in total order, not table order
        picked = []
        for rule in self.cross_rules:
            mine = hits.rule == rule.rule_index
            if not mine.any():
                continue
            pos = by_row[np.searchsorted(rows[by_row], hits.line[mine])]
            picked.append(rule.relevant(pos, hits.point[mine].astype(np.int64), sub, order, cache))
        picked = np.unique(np.concatenate(picked)) if picked else np.zeros(0, np.int64)
        picked = picked[~sub.bad[picked]]
        from claimaudit.connectors.claims import typed_records
        from claimaudit.dsl.schema import CLAIM_FIELDS
        # the fields the input has (a field it lacks reads as missing either way: .get gives None)
        fields = tuple((n, info) for n, info in CLAIM_FIELDS.items() if n in table.column_names)
        dicts = typed_records(table.take(pa.array(rows[picked], pa.int64())), fields)
        self.reference.use_lines(dicts)
        return {int(rows[i]): d for i, d in zip(picked, dicts)}


class BatchedLines:
    """What findings() and the quarantine report need from the lines of a table read in batches."""

    def __init__(self, table: pa.Table, batches: list):
        self.table = table
        self.bad = np.concatenate([bad for _, bad, _ in batches])
        self.bad_reason = {start + i: why for start, _, reasons in batches for i, why in reasons.items()}

    def quarantined(self) -> list:
        return LineColumns.quarantined(self)


def _point_of(ruleset, rule_index: int, finding: Finding) -> int:
    kp = finding.knowledge
    if kp is None or kp.table is None:
        return -1
    return ruleset.tables[kp.table].row_index_of(kp.file_row)


def _calls(rule, func: str) -> bool:
    """Whether the rule calls ``func`` anywhere (has_diag reads the diagnosis columns, not a named field)."""
    w = rule.window
    exprs = (rule.scope, rule.condition, rule.amount, rule.lookup.key if rule.lookup else None,
             w.where if w else None, w.rolling_days if w else None,
             *[p for p in rule.message.parts if not isinstance(p, str)])
    return any(isinstance(n, ir.Call) and n.func == func for e in exprs if e is not None for n in ir.walk(e))


def _days(d, default) -> int:
    return default if d is None else (d - EPOCH).days


def _dedupe(h: Hits) -> Hits:
    key = np.stack([h.line, h.rule.astype(np.int64), h.point.astype(np.int64)], axis=1)
    _, first = np.unique(key, axis=0, return_index=True)
    first.sort()
    return Hits(h.line[first], h.rule[first], h.point[first], h.outcome[first], h.amount[first])
