"""Inline decisions: which (rule, knowledge row) pairs a line violates, or cannot be judged on.

Each line-level family's template becomes one decision function over the family's candidate rows for a
line, ``decide(line, lv, rows, hits)``: a tree of compiled nodes (engine/kernels/_inline.pyx) or, with
``CLAIMAUDIT_KERNELS=python``, generated Python (engine/codegen.py, the twin). A row is a tuple
``(rule index, point[, effective from, effective to], *parameter values)``; parameters whose value is
the same on every row are baked in as constants, knowledge columns left empty are stored as their
Unknown, and has_diag prefixes are upper-cased once here instead of on every call.

The index maps a line's code (exactly, or by each prefix length in use) to ``(decide, rows)`` pairs, so
a line costs one dict lookup per prefix length and one call per family that has rows for its code; the
kernel runs a whole request's lines in one call. Outcomes are the reference's (see
``ReferenceEngine._evaluate_point``): a line outside the effective window is not concerned; an unknown
scope, or an unknown or true condition on an undated line, is insufficient data.
"""
from __future__ import annotations

from claimaudit.dsl import ir

from . import codegen
from .findings import INSUFFICIENT
from .kernels import inline as inline_kernels
from .plan import MATCH_ALL
from .reference import effective_window
from .values import Unknown


class FamilyDecider:
    """One family's template as a function over candidate rows, and its rows by key."""

    def __init__(self, fam, ruleset, active: set, kernels):
        self.family = fam
        rules = ruleset.rules
        picked = [r for r in range(len(fam)) if id(rules[fam.rule_index[r]]) in active]
        self.rule_indexes = sorted({fam.rule_index[r] for r in picked})
        names = [n for n, _ in fam.params]
        seen = {n: self._seen_values(fam, n, picked) for n in names}
        upper = codegen.has_diag_params(fam.scope, fam.condition)
        self.upper = frozenset(n for n in upper if all(_as_upper(v) is not None for v in seen[n]))
        for n in self.upper:
            seen[n] = [_as_upper(v) for v in seen[n]]
        constant = {n: vals[0] for n, vals in seen.items() if vals and _all_same(vals)}
        self.varying = [n for n in names if n not in constant]
        windows = [self._window(fam, r, ruleset) for r in picked]
        self.dated = any(w != (None, None) for w in windows)
        self.rows_by_key: dict = {}
        for j, r in enumerate(picked):
            row = (fam.rule_index[r], fam.point[r]) + (windows[j] if self.dated else ()) + \
                tuple(seen[n][j] for n in self.varying)
            self.rows_by_key.setdefault(fam.keys[r], []).append(row)
        self.decide = self._compile(constant, kernels)

    @staticmethod
    def _seen_values(fam, name: str, picked: list) -> list:
        """A parameter's values as the template sees them (an empty knowledge column is unknown)."""
        column = fam.values[name]
        missing = Unknown(f"knowledge column {name[2:]} is empty") if name.startswith("k.") else None
        return [missing if column[r] is None else column[r] for r in picked]

    @staticmethod
    def _window(fam, r: int, ruleset) -> tuple:
        rule = ruleset.rules[fam.rule_index[r]]
        table = ruleset.tables[rule.lookup.table] if rule.lookup and fam.point[r] >= 0 else None
        return effective_window(rule, table, fam.point[r])

    def _compile(self, constant: dict, kernels):
        slots = {n: (4 if self.dated else 2) + i for i, n in enumerate(self.varying)}
        return kernels.compile_family(self.family.scope, self.family.condition, slots, constant, self.upper,
                                      self.dated, f"family {self.family.family_id}")


def _as_upper(value):
    return value if type(value) is Unknown else codegen.upper_prefixes(value)


def _all_same(values: list) -> bool:
    first = values[0]
    try:
        return all(type(v) is type(first) and v == first for v in values)
    except Exception:  # noqa: BLE001 - values that do not compare: keep them per row
        return False


class DecisionIndex:
    """Every line-level family of a plan, indexed by the line's code."""

    def __init__(self, families: list, ruleset, active: set, kernels: str | None = None):
        self.kernels = inline_kernels.backend(kernels)
        self.ruleset = ruleset
        exact: dict = {}
        prefix: dict = {}
        lengths = set()
        # families not keyed on the code: (decider, None, None, rows) for every line, or
        # (decider, key function, table, rows by knowledge row) for a lookup on another field
        self.others = []
        self.deciders = []
        for fam in families:
            d = FamilyDecider(fam, ruleset, active, self.kernels)
            if not d.rows_by_key:
                continue
            self.deciders.append(d)
            code_key = isinstance(fam.key_expr, ir.Field) and fam.key_expr.name == "med_list_codg"
            if fam.match in ("exact", "prefix") and code_key:  # every line has a code: one shared index
                target = exact if fam.match == "exact" else prefix
                for key, rows in d.rows_by_key.items():
                    target.setdefault(key, []).append((d.decide, tuple(rows)))
                    if fam.match == "prefix":
                        lengths.add(len(key))
            elif fam.match == MATCH_ALL:
                self.others.append((d, None, None, tuple(d.rows_by_key.get(None, ()))))
            else:
                table = ruleset.tables[ruleset.rules[d.rule_indexes[0]].lookup.table]
                by_point: dict = {}
                for rows in d.rows_by_key.values():
                    for row in rows:
                        by_point.setdefault(row[1], []).append(row)
                self.others.append((d, _key_function(fam.key_expr), table, by_point))
        self.exact = {k: tuple(v) for k, v in exact.items()}
        self.prefix = {k: tuple(v) for k, v in prefix.items()}
        self.lengths = tuple(sorted(lengths))
        self.empty = not (exact or prefix or self.others)  # a pack of cross-line rules only: nothing to decide

    def decide(self, line: dict, lv: dict) -> list:
        """(rule index, point, outcome) of every candidate the line trips, unsorted, possibly repeated."""
        hits: list = []
        self.kernels.decide_line(line, lv, self.exact, self.prefix, self.lengths, hits)
        if self.others:
            self._decide_others(line, lv, hits)
        return hits

    def decide_lines(self, lines: list, current=None) -> dict:
        """{index: (lv, hits)} for the lines (current ones only, unless ``current`` is None) that trip any
        candidate; ``lv`` holds the line's derived values for rendering."""
        if self.empty:
            return {}
        out = self.kernels.decide_lines(lines, current, self.exact, self.prefix, self.lengths)
        if self.others:
            for i, line in enumerate(lines):
                if current is not None and line.get("feedetl_sn") not in current:
                    continue
                lv, hits = out.get(i) or ({}, [])
                self._decide_others(line, lv, hits)
                if hits:
                    out[i] = (lv, hits)
        return out

    def _decide_others(self, line: dict, lv: dict, hits: list) -> None:
        """Families the code index does not reach: every line's, and lookups on another field (an unknown
        key makes each of the family's rules insufficient for the line, as the reference says)."""
        for d, key_fn, table, rows in self.others:
            if key_fn is None:  # every line
                d.decide(line, lv, rows, hits)
                continue
            key = key_fn(line, lv)
            if type(key) is Unknown:
                hits.extend((r, -1, INSUFFICIENT) for r in d.rule_indexes)
                continue
            picked = [row for i in table.matches(key) for row in rows.get(i, ())]
            if picked:
                d.decide(line, lv, picked, hits)


def _key_function(expr):
    """``key(line, lv)``: a lookup key that is not the code (a diagnosis, a department ...)."""
    src = codegen.Source()
    em = codegen.ExprEmitter(src)
    value = em.emit(expr)
    src.add(f"return {value}")
    return src.function("key", "line, lv", em.prologue, "lookup key")


def ordered_hits(hits: list) -> list:
    """Hits in (rule, point, outcome) order, each (rule, point) once: the order findings are reported in."""
    if len(hits) < 2:
        return hits
    out, seen = [], set()
    for hit in sorted(hits):
        if hit[:2] not in seen:
            seen.add(hit[:2])
            out.append(hit)
    return out
