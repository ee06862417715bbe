"""Inline executor: one prescription at a time, no DataFrame.

Everything that can be done before a request arrives is done when the ruleset loads: the plan's
parameter rows become per-key records in one index over code prefixes, templates are compiled to
Python closures, and the fields the rules read are fixed. A request then costs a few dict lookups
per line and a closure call per candidate; only hits are rendered (through the reference, so the
messages are the same as every other executor's).

    screener = Screener.from_path("rulesets/demo")
    response = screener.screen(request_dict)      # 3101-shaped dict in, 3101-shaped dict out
"""
from __future__ import annotations

import operator
import time
from dataclasses import dataclass

from claimaudit.connectors.request import request_lines
from claimaudit.dsl import ir
from claimaudit.dsl.ruleset import Ruleset, load_ruleset
from claimaudit.dsl.schema import CLAIM_FIELDS, DERIVED_INPUTS
from claimaudit.dsl.units import Quantity

from . import reference as ref
from .findings import INSUFFICIENT, VIOLATION, Finding, screen_response
from .plan import MATCH_ALL, Plan, build_plan
from .values import Unknown, is_unknown, service_date
from .window import lookup_points

DEFAULT_STAGES = ("事前", "事中")
# fields a finding shows besides what the rules read
_FINDING_FIELDS = ("feedetl_sn", "mdtrt_id", "psn_no", "fixmedins_code", "bilg_dept_codg", "bilg_dr_codg",
                   "med_list_codg", "fee_ocur_time", "hilist_name")


# ---- compiling templates to closures ---------------------------------------------------------------


def compile_expr(expr):
    """IR template -> ``fn(env) -> value | Unknown`` with the reference's semantics.

    Written for the hot path: unknowns are tested with ``type(x) is Unknown``, plain claim fields
    read the line dict directly, derived values go through ``Env.field`` (computed once per line).
    """
    if isinstance(expr, ir.Const):
        value = expr.value
        return lambda env: value
    if isinstance(expr, ir.Field):
        name = expr.name
        if name in CLAIM_FIELDS:
            missing = Unknown(f"{name} is missing")

            def field(env):
                v = env.line.get(name)
                return missing if v is None else v
            return field
        return lambda env: env.field(name)
    if isinstance(expr, ir.Param):
        name = expr.name
        missing = Unknown(f"knowledge column {name[2:]} is empty") if name.startswith("k.") else None

        def param(env):
            v = env.row[name]
            return missing if v is None else v
        return param
    if isinstance(expr, ir.Call):
        return _compile_call(expr)
    op = expr.op
    args = [compile_expr(a) for a in expr.args]
    if op == "and":
        a, b = args

        def and_(env):
            x = a(env)
            if x is False:
                return False
            y = b(env)
            if y is False:
                return False
            if x is True and y is True:
                return True
            return x if type(x) is Unknown else y
        return and_
    if op == "or":
        a, b = args

        def or_(env):
            x = a(env)
            if x is True:
                return True
            y = b(env)
            if y is True:
                return True
            if x is False and y is False:
                return False
            return x if type(x) is Unknown else y
        return or_
    if op == "not":
        (a,) = args

        def not_(env):
            v = a(env)
            return v if type(v) is Unknown else (not v)
        return not_
    if op in ("is_null", "not_null"):
        (a,) = args
        want = op == "is_null"

        def null_test(env):
            v = a(env)
            return (type(v) is Unknown or v is None) == want
        return null_test
    if len(args) == 1:  # neg
        (a,) = args

        def neg(env):
            v = a(env)
            if type(v) is Unknown:
                return v
            return Quantity(-v.base_value, v.dimension) if isinstance(v, Quantity) else -v
        return neg
    a, b = args
    if op in _FAST_CMP:
        fast = _FAST_CMP[op]

        def compare(env):
            x = a(env)
            if type(x) is Unknown:
                return x
            y = b(env)
            if type(y) is Unknown:
                return y
            if type(x) is type(y) and type(x) is not Quantity:
                return fast(x, y)
            return ref._compare(op, x, y)
        return compare
    if op == "in":
        def in_(env):
            x = a(env)
            if type(x) is Unknown:
                return x
            y = b(env)
            return y if type(y) is Unknown else (x in y)
        return in_
    if op == "not in":
        def not_in(env):
            x = a(env)
            if type(x) is Unknown:
                return x
            y = b(env)
            return y if type(y) is Unknown else (x not in y)
        return not_in
    if op == "startswith":
        def startswith(env):
            x = a(env)
            if type(x) is Unknown:
                return x
            y = b(env)
            if type(y) is Unknown:
                return y
            return str(x).startswith(y)  # str.startswith takes a tuple of prefixes too
        return startswith

    def arith(env):
        x = a(env)
        if type(x) is Unknown:
            return x
        y = b(env)
        if type(y) is Unknown:
            return y
        return ref._arith(op, x, y)
    return arith


_FAST_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
             ">=": operator.ge}


def _compile_call(expr: ir.Call):
    args = [compile_expr(a) for a in expr.args]
    if expr.func == "coalesce":
        a, b = args

        def coalesce(env):
            v = a(env)
            return b(env) if type(v) is Unknown or v is None else v
        return coalesce
    if expr.func == "has_diag":
        (a,) = args

        def has_diag(env):
            prefixes = a(env)
            return prefixes if type(prefixes) is Unknown else ref.has_diag(env, prefixes)
        return has_diag
    # the rest are rare in templates: bind the argument values and let the reference apply them
    types = [x.type for x in expr.args]

    def call(env):
        values = [f(env) for f in args]
        for v in values:
            if type(v) is Unknown:
                return v
        bound = ir.Call(expr.func, tuple(ir.Const(v, t) for v, t in zip(values, types)), expr.type)
        return ref._call(bound, env)
    return call


# ---- the screener -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One parameter row, ready to evaluate: compiled templates, its values, its rule."""

    rule_index: int
    point: int
    params: dict
    scope: object
    condition: object
    eff_from: object
    eff_to: object


class Screener:
    def __init__(self, plan: Plan, stages=DEFAULT_STAGES, executor_name: str = "inline"):
        self.plan = plan
        self.ruleset: Ruleset = plan.ruleset
        from claimaudit.dsl.check import STAGES
        unknown = [st for st in (stages or ()) if st not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r}: use 事前, 事中, 事后 (or pre, during, post)")
        self.stages = frozenset(STAGES[st] for st in stages) if stages else None
        self.executor_name = executor_name
        self.reference = ref.ReferenceEngine(self.ruleset, stages=self.stages)
        self._active = {id(r) for r in self.reference.rules}
        self._prefix: dict[str, list] = {}  # code prefix (or exact code) -> candidates
        self._exact: dict[str, list] = {}
        self._other: list = []  # (key fn or None, family index, candidates by key) for non-code keys
        self._build()
        used = set(_FINDING_FIELDS)
        for r in self.reference.rules:
            for f in r.fields_used():
                used.update(DERIVED_INPUTS.get(f, (f,)))
        self.fields = tuple((n, CLAIM_FIELDS[n]) for n in CLAIM_FIELDS if n in used)

    @classmethod
    def from_path(cls, path, stages=DEFAULT_STAGES) -> "Screener":
        """A ruleset directory / rule file, or a compiled bundle (see ``bundle``)."""
        from .bundle import is_bundle, load_bundle
        if is_bundle(path):
            return cls(load_bundle(path), stages)
        rs = load_ruleset(path)
        if not rs.ok:
            raise ValueError(f"{path}: the ruleset has errors:\n{rs.render_diagnostics()}")
        return cls(build_plan(rs), stages)

    def _build(self) -> None:
        rules = self.ruleset.rules
        lengths = set()
        self.cross_rules = []  # cross-line rules: decided with the reference's window code over the request
        for fam in self.plan.families:
            if len(fam.rules) == 1 and rules[fam.rules[0]].window is not None:
                if id(rules[fam.rules[0]]) in self._active:
                    self.cross_rules.append(rules[fam.rules[0]])
                continue
            scope = compile_expr(fam.scope) if fam.scope is not None else None
            condition = compile_expr(fam.condition)
            names = [n for n, _ in fam.params]
            by_key: dict = {}
            for r in range(len(fam)):
                rule = rules[fam.rule_index[r]]
                if id(rule) not in self._active:
                    continue
                params = {n: fam.values[n][r] for n in names}
                table = self.ruleset.tables[rule.lookup.table] if rule.lookup and fam.point[r] >= 0 else None
                start, end = ref.effective_window(rule, table, fam.point[r])
                cand = Candidate(fam.rule_index[r], fam.point[r], params, scope, condition, start, end)
                by_key.setdefault(fam.keys[r], []).append(cand)
            code_key = isinstance(fam.key_expr, ir.Field) and fam.key_expr.name == "med_list_codg"
            if fam.match in ("exact", "prefix") and code_key:  # every line has a code: one shared index
                target = self._exact if fam.match == "exact" else self._prefix
                for key, cands in by_key.items():
                    target.setdefault(key, []).extend(cands)
                    if fam.match != "exact":
                        lengths.add(len(key))
            else:
                key_fn = compile_expr(fam.key_expr) if fam.match != MATCH_ALL else None
                self._other.append((key_fn, fam, by_key))
        self._lengths = tuple(sorted(lengths))

    # ---- screening ----
    def screen(self, request: dict) -> dict:
        """A 3101-shaped request dict -> a 3101-shaped response dict (see connectors.request)."""
        started = time.perf_counter()
        req = request_lines(request, self.fields)
        findings = self.screen_lines(req.lines, req.current, req.rule_ids)
        return screen_response(findings, self.ruleset, self.executor_name, (time.perf_counter() - started) * 1e6)

    def screen_lines(self, lines: list, current=None, rule_ids=()) -> list[Finding]:
        """Findings on the current lines; history lines (curr_drord_flag 0) are only looked at, and appear in
        cross-line findings as involved lines (涉及项)."""
        out = []
        wanted = set(rule_ids) if rule_ids else None
        cross = [r for r in self.cross_rules if wanted is None or r.code in wanted]
        if cross:
            self.reference.use_lines(lines)  # a request is small: its history is indexed per call
        for line in lines:
            if current is not None and line["feedetl_sn"] not in current:
                continue
            out.extend(self._screen_line(line, wanted))
            for rule in cross:
                lk = rule.lookup
                if lk is not None and isinstance(lk.key, ir.Field) and line.get(lk.key.name) is not None and \
                        not lookup_points(self.ruleset.tables[lk.table], lk.side, line[lk.key.name]):
                    continue  # the line matches no knowledge row of this rule
                out.extend(self.reference.evaluate_rule(rule, line))
        return out

    def _candidates(self, line: dict) -> list:
        code = line.get("med_list_codg")
        found = []
        if code is not None:
            found.extend(self._exact.get(code, ()))
            prefix = self._prefix
            for n in self._lengths:
                if n > len(code):
                    break
                hit = prefix.get(code[:n])
                if hit:
                    found.extend(hit)
        return found

    def _screen_line(self, line: dict, wanted) -> list[Finding]:
        env = ref.Env(line, None)
        hits = []  # (rule index, point, outcome)
        for cand in self._candidates(line):
            hits.append(self._evaluate(cand, env))
        for key_fn, fam, by_key in self._other:
            if key_fn is None:
                for cand in by_key.get(None, ()):
                    hits.append(self._evaluate(cand, env))
                continue
            key = key_fn(env)
            if is_unknown(key):
                for r in sorted({c.rule_index for cs in by_key.values() for c in cs}):
                    hits.append((r, -1, INSUFFICIENT))
                continue
            table = self.ruleset.tables[self.ruleset.rules[fam.rule_index[0]].lookup.table]
            for i in table.matches(key):
                for cand in by_key.get(table.rows[i].get(table.key), ()):
                    if cand.point == i:
                        hits.append(self._evaluate(cand, env))
        seen, out = set(), []
        for hit in sorted(h for h in hits if h is not None):
            rule_index, point, outcome = hit
            if (rule_index, point) in seen:
                continue
            seen.add((rule_index, point))
            rule = self.ruleset.rules[rule_index]
            if wanted is not None and rule.code not in wanted:
                continue
            out.append(self._render(rule, line, point, outcome))
        return out

    def _evaluate(self, cand: Candidate, env: ref.Env):
        """The reference's outcome for one candidate (see ReferenceEngine._evaluate_point)."""
        env.row = cand.params
        day = None
        if cand.eff_from or cand.eff_to:
            day = service_date(env.line)
            if type(day) is not Unknown and ((cand.eff_from and day < cand.eff_from) or
                                             (cand.eff_to and day > cand.eff_to)):
                return None
        if cand.scope is not None:
            s = cand.scope(env)
            if type(s) is Unknown:
                return (cand.rule_index, cand.point, INSUFFICIENT)
            if not s:
                return None
        c = cand.condition(env)
        if type(c) is Unknown or type(day) is Unknown:
            return (cand.rule_index, cand.point, INSUFFICIENT) if (type(c) is Unknown or c) else None
        return (cand.rule_index, cand.point, VIOLATION) if c else None

    def _render(self, rule, line, point, outcome) -> Finding:
        return self.reference.render_hit(rule, line, point, outcome)
