"""Inline executor: one prescription at a time, no DataFrame.

Everything that can be done before a request arrives is done when the ruleset loads: the request
mapping is prepared for the fields the rules and findings read (connectors.request.RequestMapper),
each line-level family's template becomes one compiled decision function over its parameter rows,
indexed by code prefix (inline_decide), and each rule's message, evidence and amount are compiled into
a render program (inline_render) that gives exactly the reference's findings. A request then costs a
dict lookup per line and prefix length, one call per family with rows for the line's code, and a few
string joins per finding. The hot loops are Cython (engine/kernels/_inline.pyx); ``CLAIMAUDIT_KERNELS=
python`` selects their pure-Python twins. Cross-line rules are compiled apart (inline_cross);
``compile_expr`` below is their closure compiler.

``screen`` without a local profile builds the 3101 response's entries directly (``screen_entries``: a
violation's ``result[]`` entry from its render program, an insufficient-data one from its rule and reason),
never making the Finding records a profile's marks or ``screen_lines`` callers need.

    screener = Screener.from_path("rulesets/demo")
    response = screener.screen(request_dict)      # 3101-shaped dict in, 3101-shaped dict out
"""
from __future__ import annotations

import operator
import time

from claimaudit.connectors.request import RequestMapper
from claimaudit.dsl import ir
from claimaudit.dsl.ruleset import Ruleset, load_ruleset
from claimaudit.dsl.schema import CLAIM_FIELDS, DERIVED_INPUTS
from claimaudit.dsl.units import Quantity

from . import reference as ref
from .findings import VIOLATION, Finding, insufficient_entry, respond, screen_response, to_3101_result
from .inline_cross import CrossLineRules
from .inline_decide import DecisionIndex, ordered_hits
from .inline_render import Renderers
from .plan import Plan, build_plan
from .values import Unknown

DEFAULT_STAGES = ("事前", "事中")
_PREPARED_RULES = 2000  # line-level rules whose renderers are compiled at load (more: on first finding)
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
        self._build()
        used = set(_FINDING_FIELDS)
        for r in self.reference.rules:
            for f in r.fields_used() | r.window_fields():  # a window's lines: their identity, order, group, sums
                used.update(DERIVED_INPUTS.get(f, (f,)))
        self.fields = tuple((n, CLAIM_FIELDS[n]) for n in CLAIM_FIELDS if n in used)
        self.mapper = RequestMapper(self.fields)  # the request mapping, generated for these fields

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
        line_families = []  # decided by compiled families (inline_decide), rendered by render programs
        cross = []  # cross-line rules: compiled apart (inline_cross)
        for fam in self.plan.families:
            if len(fam.rules) == 1 and rules[fam.rules[0]].window is not None:
                if id(rules[fam.rules[0]]) in self._active:
                    cross.append(rules[fam.rules[0]])
                continue
            line_families.append(fam)
        self.decisions = DecisionIndex(line_families, self.ruleset, self._active)
        self.renderers = Renderers(self.ruleset, self.reference)
        fired = sorted({r for d in self.decisions.deciders for r in d.rule_indexes})
        if len(fired) <= _PREPARED_RULES:  # else each rule's renderer is made on its first finding
            self.renderers.prepare(fired)
        self.cross = CrossLineRules(self.ruleset, self.reference, cross, compile_expr)
        self.cross_rules = self.cross.rules

    # ---- screening ----
    def screen(self, request: dict) -> dict:
        """A 3101-shaped request dict -> a 3101-shaped response dict (see connectors.request)."""
        started = time.perf_counter()
        req = self.mapper.request(request)
        if self.ruleset.profile is not None:  # its marks read whole findings: render them in full
            findings = self.screen_lines(req.lines, req.current, req.rule_ids)
            return screen_response(findings, self.ruleset, self.executor_name, (time.perf_counter() - started) * 1e6)
        results, insufficient = self.screen_entries(req.lines, req.current, req.rule_ids)
        return respond(results, insufficient, self.ruleset, self.executor_name, (time.perf_counter() - started) * 1e6)

    def screen_entries(self, lines: list, current=None, rule_ids=()) -> tuple:
        """(result[], insufficient_data[]) of the response, without a profile: what ``screen_response`` makes of
        ``screen_lines``' findings, each entry built directly (no Finding for a line-level hit, and of an
        insufficient-data one only its rule, line and reason)."""
        wanted = set(rule_ids) if rule_ids else None
        cross = self.cross.request(lines, wanted) if self.cross.rules else None
        return self.entries(lines, current, self.decisions.decide_lines(lines, current), wanted, cross)

    def entries(self, lines: list, current, decided: dict, wanted=None, cross=None) -> tuple:
        """``screen_entries`` after deciding: the entries of the decided hits (``decide_lines``) and of the
        cross-line rules (``cross``: their request) on each current line, in the order screen_lines finds them."""
        results, insufficient = [], []
        rules, renderers = self.ruleset.rules, self.renderers
        made = renderers.made  # rule index -> its renderer, once made
        indexes = self.cross.kernels.current_lines(lines, current)
        cross_hits = dict(cross.decide_current(indexes)) if cross is not None else None
        for i in indexes:
            line = lines[i]
            got = decided.get(i)
            if got is not None:
                lv, hits = got
                for rule_index, point, outcome in ordered_hits(hits):
                    if wanted is not None and rules[rule_index].code not in wanted:
                        continue
                    renderer = made.get(rule_index) or renderers[rule_index]
                    violation, entry = renderer.result(line, lv, point, outcome)
                    (results if violation else insufficient).append(entry)
            if cross_hits:
                for f in cross.render_hits(cross_hits.get(i)):
                    if f.outcome == VIOLATION:
                        results.append(to_3101_result(f))
                    else:
                        insufficient.append(insufficient_entry(f))
        return results, insufficient

    def screen_lines(self, lines: list, current=None, rule_ids=(), brief: bool = False) -> list[Finding]:
        """Findings on the current lines; history lines (curr_drord_flag 0) are only looked at, and appear in
        cross-line findings as involved lines (涉及项). ``brief``: line-level insufficient-data findings carry
        only what ``screen_response`` shows of them (inline_render.BriefInsufficient)."""
        out = []
        wanted = set(rule_ids) if rule_ids else None
        cross = self.cross.request(lines, wanted) if self.cross.rules else None  # ordered and indexed once
        decided = self.decisions.decide_lines(lines, current)  # every line's candidates in one kernel call
        indexes = self.cross.kernels.current_lines(lines, current)
        cross_hits = dict(cross.decide_current(indexes)) if cross is not None else None
        for i in indexes:
            if i in decided:
                out.extend(self._render_hits(lines[i], *decided[i], wanted, brief))
            if cross_hits:
                out.extend(cross.render_hits(cross_hits.get(i)))
        return out

    def decide_line(self, line: dict, lv: dict | None = None) -> list:
        """(rule index, point, outcome) of the line-level candidates a line trips, in report order (no
        findings rendered). ``lv`` collects the line's derived values for rendering."""
        return ordered_hits(self.decisions.decide(line, {} if lv is None else lv))

    def _render_hits(self, line: dict, lv: dict, hits: list, wanted, brief: bool) -> list[Finding]:
        """The findings of a line's hits (``lv``: the derived values its decisions computed)."""
        rules, renderers, out = self.ruleset.rules, self.renderers, []
        for rule_index, point, outcome in ordered_hits(hits):
            if wanted is not None and rules[rule_index].code not in wanted:
                continue
            out.append(renderers[rule_index].render(line, lv, point, outcome, brief))
        return out
