"""Cross-line rules (``window``, ``pair``, ``requires``) in the inline screener, compiled at load.

The reference decides a cross-line rule by indexing the request's lines (window.LineSet) and scanning
them again for every line and knowledge row. Here each rule is prepared once, when the screener loads:
its scope and condition become closures (``inline.compile_expr``; knowledge columns and window values are
read as parameters ``k.col`` and ``w.count``), and what a code means for every rule — the knowledge rows it
matches on each side of the rule's table, with their parameters, effective dates and rolling lengths — is
worked out on the code's first appearance and remembered across requests. A request is indexed by a kernel
(engine/kernels/_cross.pyx, or its Python twin cross_twin.py as ``CLAIMAUDIT_KERNELS`` selects): each line's
time and what its code means, and the pools present with their lines (sorted when a rule first asks for
them). A current line that is a candidate of no rule but pairs none of whose partners is in the request is
passed over at once (one kernel call); a line's place in the total order is worked out when a window first
needs it, and a current line's window is a filter over a short, sorted list of lines followed by the
aggregates the rule reads (the usual ``same k`` window in one function, ``_decide_window``). The usual shapes —
plain pairs, and windows over a knowledge row's or a group's lines whose condition compares one window value
with a number or a knowledge column — are decided by a kernel (engine/kernels/_crossdecide.pyx, twin
crossdecide_twin.py) over C time keys, which leaves anything outside the plain case to the path above
(``CompiledCrossRule.kernel_shape``, ``Point.fast``); it also lists a pair's partners for rendering. Only hits are
rendered: a violation by the rule's compiled render program (inline_cross_render), which gives the
reference's finding field for field — messages, evidence, amounts and involved lines (涉及项); insufficient
data is rendered (and checked) by the reference itself, which finds the reason.

Semantics are engine/window.py's: total order (patient, time, encounter, line id); running and ``all``
windows; history scopes; ``unordered`` pairs flag the later line; undatable lines are insufficient data and
left out of windows; history lines are looked at, never flagged. Lines come out in the reference's order
wherever order shows (sums, involved lines): windows over a knowledge row in the total order, windows over
a whole group in the reference's per-patient order (they differ only when one encounter mixes patients).

What is not compiled is decided by the reference, and said so: a rule with a construct not taken here is
listed in ``fallbacks`` with the reason; where two lines matching a knowledge row share a place in the total
order (the same time, encounter and line id: their order is the reference's input-order tie-break), the
reference decides that line and row (counted in ``reference_decisions``).
"""
from __future__ import annotations

import datetime as dt
from array import array
from itertools import compress, repeat
from operator import eq, is_, itemgetter

from claimaudit.dsl import ir
from claimaudit.dsl.schema import CLAIM_FIELDS

from . import reference as ref
from .findings import INSUFFICIENT, VIOLATION, Finding
from .inline_cross_render import CrossRenderer
from .kernels import cross as cross_kernels
from .kernels import crossdecide, crossrender
from .kernels.crossdecide_twin import AGGREGATES as KERNEL_AGGREGATES, GROUP_WINDOW, OPS, PAIR, POINT_WINDOW
from .values import Unknown, service_date
from .window import MAX_INVOLVED, NO_TIME, _rolling_days, group_of, line_time, lookup_points

_MEMO_LIMIT = 200_000  # codes remembered per key field (codes repeat from request to request)
_UNSET = object()
_NO_FACTS = (b"", (), None)  # a line without a code: in no pool, a candidate of nothing
_FIRST = itemgetter(0)


def _slot(hit: tuple) -> int:
    return hit[0]


class NotCompiled(Exception):
    """A construct the compiled path does not take; the rule is decided by the reference."""


# ---- compiling a rule's expressions ------------------------------------------------------------------


def _as_params(expr):
    """The rule's own IR with knowledge columns and window values read as parameters (``k.col``, ``w.name``),
    so ``compile_expr`` takes it; the plan's family template is not used, so no pass can have moved a test."""
    if isinstance(expr, ir.WindowValue):
        return ir.Param(f"w.{expr.name}", expr.type)
    if isinstance(expr, ir.KnowledgeField):
        return ir.Param(f"k.{expr.column}", expr.type)
    if isinstance(expr, ir.Op):
        return ir.Op(expr.op, tuple(_as_params(a) for a in expr.args), expr.type)
    if isinstance(expr, ir.Call):
        return ir.Call(expr.func, tuple(_as_params(a) for a in expr.args), expr.type)
    if isinstance(expr, (ir.Const, ir.Field)):
        return expr
    raise NotCompiled(f"{type(expr).__name__} in an expression")


def _compile(expr, compile_expr):
    try:
        return compile_expr(_as_params(expr))
    except NotCompiled:
        raise
    except Exception as why:  # noqa: BLE001 - any node compile_expr does not take
        raise NotCompiled(f"expression not compiled ({type(why).__name__}: {why})") from why


def _refuse_unsupported(rule: ir.Rule) -> None:
    """Raise NotCompiled for a construct the compiled path does not take (the reference decides the rule)."""
    w, lk = rule.window, rule.lookup
    if lk is not None and not (isinstance(lk.key, ir.Field) and lk.key.name in CLAIM_FIELDS):
        raise NotCompiled("the lookup key is not a claim field")
    if _reads(w.where, (ir.KnowledgeField, ir.WindowValue)):
        raise NotCompiled("'where' reads more than the window line's own fields")
    if _reads(w.rolling_days, ir.WindowValue):
        raise NotCompiled("the rolling length reads a window value")
    wrong = [n for n in _window_names(rule) if n not in (_AGGREGATES if w.kind == "window" else ("partner",))]
    if wrong:
        raise NotCompiled(f"a {w.kind} rule reading {', '.join(wrong)}")


def _reads(expr, kind) -> bool:
    return expr is not None and any(isinstance(n, kind) for n in ir.walk(expr))


def _field_equals(scope):
    """(field, text) for a scope ``field == "text"`` on a text claim field (plain equality), else None."""
    if not (isinstance(scope, ir.Op) and scope.op == "==" and len(scope.args) == 2):
        return None
    a, b = scope.args
    if isinstance(a, ir.Const):
        a, b = b, a
    if isinstance(a, ir.Field) and a.name in CLAIM_FIELDS and a.type == "text" and isinstance(b, ir.Const) \
            and type(b.value) is str:
        return a.name, b.value
    return None


def _window_names(rule: ir.Rule) -> tuple:
    """Window values the rule reads anywhere (scope, condition, amount, message)."""
    names = []
    for e in (rule.scope, rule.condition, rule.amount, *[p for p in rule.message.parts if not isinstance(p, str)]):
        for node in ir.walk(e) if e is not None else ():
            if isinstance(node, ir.WindowValue) and node.name not in names:
                names.append(node.name)
    return tuple(names)


def _knowledge_columns(rule: ir.Rule) -> tuple:
    cols = []
    for e in (rule.scope, rule.condition):
        for node in ir.walk(e) if e is not None else ():
            if isinstance(node, ir.KnowledgeField) and node.column not in cols:
                cols.append(node.column)
    return tuple(cols)


class LineTests:
    """Conditions on a line's own fields (``where``, a scope without knowledge or window), compiled once per
    distinct expression and evaluated once per request line, whichever rules share them."""

    def __init__(self, compile_expr):
        self.compile_expr = compile_expr
        self.fns: list = []
        self.shapes: list = []  # (field, text) of a test ``field == "text"``, else None
        self._ids: dict = {}

    def add(self, expr) -> int:
        tid = self._ids.get(expr)
        if tid is None:
            tid = self._ids[expr] = len(self.fns)
            self.fns.append(_compile(expr, self.compile_expr))
            self.shapes.append(_field_equals(expr))
        return tid


# ---- one rule ---------------------------------------------------------------------------------------


class CompiledCrossRule:
    """A cross-line rule ready to decide on a request."""

    def __init__(self, slot: int, rule: ir.Rule, ruleset, compile_expr, tests: LineTests, pool_id, reference,
                 render_kernel):
        _refuse_unsupported(rule)
        self.slot, self.rule, self.pool_id = slot, rule, pool_id
        w = self.window = rule.window
        lk = rule.lookup
        self.table = ruleset.tables[lk.table] if lk else None
        self.key_field = lk.key.name if lk else None
        self.side = lk.side if lk else None
        self.kind, self.scope_name, self.whole, self.same = w.kind, w.scope, w.whole, w.same
        self.strict = w.looks_back or w.unordered  # partners strictly before this line
        self.names = _window_names(rule)
        self.wkeys = tuple(f"w.{n}" for n in self.names)
        self.aggregates = tuple((f"w.{n}", _AGGREGATES[n]) for n in self.names if n != "partner")
        self.columns = _knowledge_columns(rule)
        # a scope on the line's own fields is shared by every rule that has it; else it runs per knowledge row
        line_scope = rule.scope is not None and not _reads(rule.scope, (ir.KnowledgeField, ir.WindowValue))
        self.scope_test = tests.add(rule.scope) if line_scope else None
        self.scope_equals = _field_equals(rule.scope)  # (field, text): indexed when the rule has no lookup
        self.scope_fn = _compile(rule.scope, compile_expr) if rule.scope is not None and not line_scope else None
        self.scope_reads_window = _reads(rule.scope, ir.WindowValue)
        self.condition_fn = _compile(rule.condition, compile_expr)
        self.condition_reads_window = _reads(rule.condition, ir.WindowValue)
        self.where_test = tests.add(w.where) if w.where is not None else None
        self.rolling_reads_line = _reads(w.rolling_days, ir.Field)
        self._points: dict = {}  # knowledge row -> Point
        # the usual pair (requires): no scope, and the condition is only whether a partner is (not) in scope
        partner = ir.WindowValue("partner", "bool")
        self.violation_if_partner = {partner: True, ir.Op("not", (partner,), "bool"): False}.get(rule.condition) \
            if w.kind != "window" and rule.scope is None and not self.rolling_reads_line else None
        if self.violation_if_partner is not None:
            self.decide = self._decide_by_partner
        # the usual window rule: no scope, no 'where', a rolling length known from the row, the condition on the
        # window of the row's own lines (``same k``)
        if w.kind == "window" and rule.scope is None and w.where is None and self.condition_reads_window \
                and not self.rolling_reads_line and self.same == ("point",):
            self.decide = self._decide_window
        self.threshold_column = None  # the knowledge column the kernel's condition compares with (kernel_shape)
        self.shape = self.kernel_shape(tests)
        self.points_all = ((self.point(-1), ()),) if lk is None else ()  # without a lookup: every line, once
        try:  # violations rendered by a compiled program; the reference's renderer where it does not compile
            self.renderer = CrossRenderer(rule, self.table, reference, ruleset.profile, compile_expr, _as_params,
                                          self.wkeys, render_kernel)
        except Exception:  # noqa: BLE001 - any node compile_expr does not take
            self.renderer = None

    def kernel_shape(self, tests: LineTests):
        """The rule as the decision kernel (kernels/crossdecide) takes it, or None (decided here): a plain pair, or
        a window over a knowledge row's or the whole group's lines (``where`` and scope ``field == "text"``) whose
        condition compares one window value with a number or a knowledge column; scopes whose group is made of
        fields (or the patient's day)."""
        scoped = _KERNEL_SCOPES.get(self.scope_name)
        if scoped is None or self.rolling_reads_line:
            return None
        fields, by_day = scoped
        if self.kind != "window":
            if self.violation_if_partner is None:
                return None
            return PAIR, fields, by_day, self.strict, self.violation_if_partner, 0, None, None, None, self.slot
        if self.same == ("point",) and self.table is not None:
            kind = POINT_WINDOW
        elif self.same is None:
            kind = GROUP_WINDOW
        else:
            return None
        rule = self.rule
        if rule.scope is not None and (self.scope_test is None or self.scope_equals is None):
            return None
        where = tests.shapes[self.where_test] if self.where_test is not None else None
        if self.where_test is not None and where is None:
            return None
        compared = _compared_window_value(rule.condition)
        if compared is None:
            return None
        name, op, const, self.threshold_column = compared
        scope = self.scope_equals if rule.scope is not None else None
        return (kind, fields, by_day, self.whole, KERNEL_AGGREGATES.index(name), OPS.index(op), const, where, scope,
                self.slot)

    # ---- what a code means for this rule (remembered per code) ----
    def plain_pair(self, points) -> bool:
        """A pair that flags a line only when a partner is in scope, and whose window is known wherever the line
        has a time and a group (its rolling length is known): without any partner line it decides nothing."""
        return self.violation_if_partner is True and all(type(pt.rolling) is not Unknown for pt, _ in points)

    def point(self, p: int) -> "Point":
        got = self._points.get(p)
        if got is None:
            got = self._points[p] = Point(self, p)
        return got

    def code_facts(self, code) -> tuple:
        """(pools a line with this code belongs to, (Point, partner pools) for each row it is a candidate of)."""
        table, side, pool_id = self.table, self.side, self.pool_id
        rows = lookup_points(table, side, code)
        if self.kind == "window":
            if self.same == ("point",):
                pools = [pool_id(self.slot, side, p) for p in rows]
            elif self.same is not None and self.same[0] == "knowledge":
                values = {table.rows[p].get(self.same[1]) for p in rows}
                pools = [pool_id(self.slot, "value", v) for v in values if v is not None and v == v]
            else:
                pools = []
            return pools, tuple((self.point(p), ()) for p in rows)
        pools = [pool_id(self.slot, s, p) for s in _pool_sides(side) for p in lookup_points(table, s, code)]
        return pools, tuple((self.point(p), tuple(pool_id(self.slot, s, p) for s in self._partner_sides(code, p)))
                            for p in rows)

    def _partner_sides(self, code, point) -> tuple:
        """Which column a partner must match: the other side of the one this line matched (window.py)."""
        if self.side == "key":
            return ("partner",)
        if self.side == "partner":
            return ("key",)
        on_key = point in lookup_points(self.table, "key", code)
        on_partner = point in lookup_points(self.table, "partner", code)
        return ("partner", "key") if on_key and on_partner else (("partner",) if on_key else ("key",))

    # ---- deciding one (line, knowledge row) ----
    def decide(self, req: "CrossRequest", i: int, pt: "Point", partner_pools: tuple):
        """(outcome, window or None) as ReferenceEngine._evaluate_point decides it, or None."""
        day = None
        if pt.start or pt.end:
            day = service_date(req.lines[i])
            if type(day) is not Unknown and ((pt.start and day < pt.start) or (pt.end and day > pt.end)):
                return None
        window = None
        env = req.env(i)
        env.row = pt.row
        if self.scope_test is not None:
            s = req.test(self.scope_test, i)
            if type(s) is Unknown:
                return INSUFFICIENT, None
            if not s:
                return None
        elif self.scope_fn is not None:
            if self.scope_reads_window:
                window = self.fill(env, pt, self.window_of(req, i, pt, partner_pools, False))
            s = self.scope_fn(env)
            if type(s) is Unknown:
                return INSUFFICIENT, None
            if not s:
                return None
        if window is None and self.condition_reads_window:
            window = self.fill(env, pt, self.window_of(req, i, pt, partner_pools, False))
        c = self.condition_fn(env)
        if type(c) is Unknown or type(day) is Unknown:
            return (INSUFFICIENT, None) if (type(c) is Unknown or c) else None
        return (VIOLATION, window) if c else None

    def _decide_by_partner(self, req: "CrossRequest", i: int, pt: "Point", partner_pools: tuple):
        """decide() when the condition is ``p.partner`` (or ``not q.partner``): the first partner decides."""
        if pt.start or pt.end:
            return CompiledCrossRule.decide(self, req, i, pt, partner_pools)
        groups = req.groups(self.scope_name)
        group = groups[i]
        if req.times[i] is None or group is None or type(pt.rolling) is Unknown:
            return INSUFFICIENT, None  # the window is unknown
        if req.present.isdisjoint(partner_pools):  # no line matches the other side
            found = False
        else:
            me = req.okey[i] or req.place(i)
            found = bool(self._partners(req, i, groups, group, me, pt.rolling, partner_pools, False))
        return (VIOLATION, None) if found is self.violation_if_partner else None

    def _decide_window(self, req: "CrossRequest", i: int, pt: "Point", partner_pools: tuple):
        """decide() for the usual window rule (see __init__), in one function: the same steps as decide(),
        window_of() and _members() take for it."""
        if pt.start or pt.end:
            return CompiledCrossRule.decide(self, req, i, pt, partner_pools)
        okey = req.okey
        me = okey[i] or req.place(i)
        env = req.env(i)
        if me is None:
            window = NO_TIME
        else:
            groups = req.groups(self.scope_name)
            group = groups[i]
            rolling = pt.rolling
            if group is None:
                window = group_of(self.scope_name, req.lines[i])
            elif type(rolling) is Unknown:
                window = rolling
            else:
                key = (self.slot, group, pt.pool)
                members = req.windows.get(key)
                if members is None:
                    members = req.windows[key] = [m for m in req.pool(pt.pool) if groups[m] == group]
                if len(members) == 1 and members[0] == i:  # the line alone: in its own window unless 'rolling 0'
                    if rolling is not None and not 0 < rolling:
                        members = []
                elif rolling is None:
                    if not self.whole:
                        members = [m for m in members if not okey[m] > me]
                else:
                    dord = req.dord
                    today = dord[i]
                    if self.whole:
                        members = [m for m in members if today - dord[m] < rolling]
                    else:
                        members = [m for m in members if not okey[m] > me and today - dord[m] < rolling]
                aggregates = self.aggregates
                if len(aggregates) == 1:
                    name, f = aggregates[0]
                    window = ({name: f(req, i, members)}, members)
                else:
                    window = ({k: f(req, i, members) for k, f in aggregates}, members)
        if type(window) is Unknown:
            env.row = {**pt.row, **dict.fromkeys(self.wkeys, window)}
        else:
            env.row = {**pt.row, **window[0]}
        c = self.condition_fn(env)
        if type(c) is Unknown:
            return INSUFFICIENT, None
        return (VIOLATION, window) if c else None

    def fill(self, env, pt: "Point", window):
        """Put the window values where the compiled condition reads them (``w.<name>`` in the row); the row is
        a copy, so the knowledge row's parameters are never written to."""
        if type(window) is Unknown:  # unknown as a whole: so is every value
            env.row = {**pt.row, **dict.fromkeys(self.wkeys, window)}
        else:
            env.row = {**pt.row, **window[0]}
        return window

    def window_of(self, req: "CrossRequest", i: int, pt: "Point", partner_pools: tuple, full: bool):
        """(values by ``w.<name>``, member / partner line indexes) or Unknown, as window.window_values.
        Unless ``full``, a pair stops at its first partner (enough to decide)."""
        me = req.okey[i] or req.place(i)
        if me is None:
            return NO_TIME
        groups = req.groups(self.scope_name)
        group = groups[i]
        if group is None:
            return group_of(self.scope_name, req.lines[i])
        rolling = pt.rolling if not self.rolling_reads_line else pt.rolling_for(req.lines[i])
        if type(rolling) is Unknown:
            return rolling
        if self.kind == "window":
            members = self._members(req, i, pt, groups, group, me, rolling)
            if type(members) is Unknown:
                return members
            return {k: f(req, i, members) for k, f in self.aggregates}, members
        partners = self._partners(req, i, groups, group, me, rolling, partner_pools, full)
        return {"w.partner": bool(partners)}, (partners if self.kind == "pair" else ())

    def _members(self, req, i, pt, groups, group, me, rolling):
        """The lines of this line's window, in the reference's order."""
        same = self.same
        if same is None:
            key = (self.slot, group)
        elif same[0] == "point":
            key = (self.slot, group, pt.pool)
        elif same[0] == "knowledge":
            if type(pt.value) is Unknown:
                return pt.value
            key = (self.slot, group, pt.value_pool)
        else:
            value = req.lines[i].get(same[1])
            if value is None:
                return Unknown(f"{same[1]} is missing")
            key = (self.slot, group, "field", value)
        pool = req.windows.get(key)
        if pool is None:
            pool = req.windows[key] = self._group_lines(req, i, pt, groups, group)
        okey, dord, today = req.okey, req.dord, req.dord[i]
        if not self.whole:
            pool = [m for m in pool if not okey[m] > me]
        if rolling is not None:
            pool = [m for m in pool if today - dord[m] < rolling]
        return pool

    def _group_lines(self, req, i, pt, groups, group) -> list:
        """The lines of the group this line's window takes its lines from (same row, value or field, and
        ``where``), wherever they are in the order: the same for every line of the group."""
        same = self.same
        if same is not None and same[0] != "field":
            pool = [m for m in req.pool(pt.pool if same[0] == "point" else pt.value_pool) if groups[m] == group]
            if same[0] == "knowledge" and self.scope_name in ("encounter", "prescription"):
                pool = req.in_patient_order(pool)  # groups that may mix patients
        else:
            pool = req.in_group(self.scope_name, group)
            if same is not None:
                lines, value = req.lines, req.lines[i].get(same[1])
                pool = [m for m in pool if lines[m].get(same[1]) == value]
        if self.where_test is not None:
            holds = req.holds(self.where_test)
            pool = list(compress(pool, map(holds.__getitem__, pool)))
        return pool

    def _partners(self, req, i, groups, group, me, rolling, partner_pools, full: bool) -> tuple:
        """Lines matching the other side of the row in scope (strictly before this line where the rule looks
        back or is unordered), in the total order."""
        okey, dord, today, strict = req.okey, req.dord, req.dord[i], self.strict
        found = []
        for pid in partner_pools:
            if pid not in req.present:
                continue
            for m in req.pool(pid):
                if m == i or groups[m] != group or (strict and not okey[m] < me) or \
                        (rolling is not None and today - dord[m] >= rolling):
                    continue
                if not full:
                    return (m,)
                found.append(m)
        if len(partner_pools) > 1:  # a line may match both sides: once each, in the total order
            found = sorted(set(found), key=okey.__getitem__)
            if any(okey[a] == okey[b] for a, b in zip(found, found[1:])):
                raise Tied
        return tuple(found)

    # ---- rendering a hit ----
    def _full_window(self, req: "CrossRequest", i: int, pt: "Point", partner_pools: tuple):
        """window_of(..., full=True); a pair's partners listed by the decision kernel where it takes the row."""
        if self.shape is not None and self.kind != "window":
            found = req.rules.decider.partners(req.timeline(), self.shape, pt.fast, partner_pools, i)
            if found is not None:
                return {"w.partner": bool(found)}, (tuple(found) if self.kind == "pair" else ())
        return self.window_of(req, i, pt, partner_pools, True)

    def render(self, req: "CrossRequest", i: int, pt: "Point", partner_pools: tuple, window, reference) -> Finding:
        """The violation from this window's values and lines: by the compiled render program, or the
        reference's renderer for a rule whose message or amount it does not compile."""
        if self.kind == "pair" or window is None:  # a pair cites every partner; the decision stopped at one
            window = self._full_window(req, i, pt, partner_pools)
        lines = req.lines
        if self.renderer is not None:  # compiled (inline_cross_render): the reference's finding, field for field
            if type(window) is Unknown:
                return self.renderer.violation(req.env(i), pt.index, window, ())
            values, involved = window
            if self.kind == "window":  # the latest other lines of the window (by identity, as the reference)
                line = lines[i]
                involved = [m for m in involved if lines[m] is not line][-MAX_INVOLVED:]
            return self.renderer.violation(req.env(i), pt.index, values, tuple([lines[m] for m in involved]))
        table = self.table
        env = ref.Env(lines[i], table.rows[pt.index] if table is not None else None)
        if type(window) is Unknown:
            env.window = window
        else:
            values, involved = window
            env.window = {k[2:]: v for k, v in values.items()}
            if self.kind == "window":
                line = lines[i]
                involved = [m for m in involved if lines[m] is not line][-MAX_INVOLVED:]
            env.involved = tuple(lines[m] for m in involved)
        return reference._finding(self.rule, env, (table, pt.index) if table is not None else None, None)


class Point:
    """One knowledge row of a rule (or the rule itself, without a lookup), with what it needs at decision."""

    __slots__ = ("rule", "index", "row", "start", "end", "rolling", "pool", "value", "value_pool", "fast")

    def __init__(self, rule: CompiledCrossRule, index: int):
        self.rule, self.index = rule, index
        table = rule.table
        knowledge = table.rows[index] if table is not None else {}
        # the compiled condition's parameters (window values join them in a copy per decision)
        self.row = {f"k.{c}": knowledge.get(c) for c in rule.columns}
        self.start, self.end = ref.effective_window(rule.rule, table, index if table is not None else None)
        self.rolling = None if rule.window.rolling_days is None or rule.rolling_reads_line else self.rolling_for({})
        self.pool = self.value_pool = None
        self.value = None
        if table is not None and rule.kind == "window":
            self.pool = rule.pool_id(rule.slot, rule.side, index) if rule.same == ("point",) else None
            if rule.same is not None and rule.same[0] == "knowledge":
                v = knowledge.get(rule.same[1])
                self.value = Unknown(f"knowledge column {rule.same[1]} is empty") if v is None else v
                if v is not None:
                    self.value_pool = rule.pool_id(rule.slot, "value", v)
        self.fast = self._kernel_facts(rule, knowledge)

    def _kernel_facts(self, rule: CompiledCrossRule, knowledge: dict):
        """(pool, rolling length, threshold) as the decision kernel reads them; None where the kernel does not
        decide this row: dates, an unknown rolling length, a threshold that is not a number."""
        if rule.shape is None or self.start or self.end:
            return None
        if self.rolling is not None and not _exact_number(self.rolling):
            return None
        threshold = None
        if rule.threshold_column is not None:
            threshold = knowledge.get(rule.threshold_column)
            if not _exact_number(threshold):
                return None
        return self.pool, self.rolling, threshold

    def rolling_for(self, line: dict):
        """N of ``rolling N`` (window._rolling_days): a number of days, or Unknown."""
        r = self.rule
        return _rolling_days(r.rule, ref.Env(line, r.table.rows[self.index] if r.table is not None else None),
                             ref.evaluate)


def _exact_number(v) -> bool:
    """A float, or an int a double holds exactly (the kernel compares doubles)."""
    return type(v) is float or (type(v) is int and abs(v) < 2 ** 53)


_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _compared_window_value(cond):
    """(window value, operator, number, knowledge column) of a condition ``w.name op number`` or ``w.name op
    k.col`` (either way round), else None."""
    if not (isinstance(cond, ir.Op) and cond.op in _FLIPPED and len(cond.args) == 2):
        return None
    (a, b), op = cond.args, cond.op
    if not isinstance(a, ir.WindowValue):
        a, b, op = b, a, _FLIPPED[op]
    if not isinstance(a, ir.WindowValue) or a.name not in KERNEL_AGGREGATES:
        return None
    if isinstance(b, ir.Const) and _exact_number(b.value):
        return a.name, op, b.value, None
    if isinstance(b, ir.KnowledgeField):
        return a.name, op, None, b.column
    return None


# scopes whose group the decision kernel compares: the fields it is made of, and whether the day of service too
_KERNEL_SCOPES = {"encounter": (("mdtrt_id",), False), "prescription": (("mdtrt_id", "rxno"), False),
                  "patient": (("psn_no",), False), "institution": (("psn_no", "fixmedins_code"), False),
                  "day": (("psn_no",), True)}


def _pool_sides(side: str) -> tuple:
    return {"key": ("partner",), "partner": ("key",)}.get(side, ("key", "partner"))


# ---- window aggregates (window._aggregates, over line indexes in the reference's order) ---------------


def _sum(name: str):
    def total(req, i, members):
        lines, out = req.lines, 0.0
        for m in members:
            v = lines[m].get(name)
            if v is None:
                return Unknown(f"{name} is missing on line {lines[m].get('feedetl_sn')} of the window")
            out += v
        return out
    return total


def _distinct(name: str):
    def distinct(req, i, members):
        lines = req.lines
        return float(len({v for v in (lines[m].get(name) for m in members) if v is not None}))
    return distinct


def _span_days(req, i, members):
    dord = req.dord
    return float(dord[i] - min(dord[m] for m in members) + 1) if members else 0.0


def _overlap_days(req, i, members):
    """Days of supply from earlier lines still running on this line's day."""
    lines, okey, dord, me, today = req.lines, req.okey, req.dord, req.okey[i], req.dord[i]
    overlap = 0.0
    for m in members:
        supply = lines[m].get("prd_days")
        if okey[m] < me and supply is not None:
            overlap = max(overlap, float(dord[m] - today + supply))
    return overlap


_AGGREGATES = {
    "count": lambda req, i, members: float(len(members)),
    "quantity": _sum("cnt"),
    "amount": _sum("det_item_fee_sumamt"),
    "supply_days": _sum("prd_days"),
    "days": lambda req, i, members: float(len({req.dord[m] for m in members})),
    "span_days": _span_days,
    "overlap_days": _overlap_days,
    "codes": _distinct("med_list_codg"),
    "encounters": _distinct("mdtrt_id"),
}


# ---- the screener's cross-line rules ---------------------------------------------------------------


class CrossLineRules:
    """Every cross-line rule of a screener: compiled ones, and the reference for the rest (``fallbacks``)."""

    def __init__(self, ruleset, reference, rules: list, compile_expr, kernels: str | None = None):
        """``rules``: the screener's active cross-line rules, in plan order; ``kernels``: 'cython' or 'python'
        (default: as ``CLAIMAUDIT_KERNELS`` selects)."""
        self.ruleset, self.reference, self.rules = ruleset, reference, list(rules)
        self.tests = LineTests(compile_expr)
        self._pool_ids: dict = {}  # (rule slot, side or "value", knowledge row or value) -> pool id
        self.compiled: list[CompiledCrossRule] = []
        self.fallbacks: list[tuple] = []  # (rule code, why the reference decides it)
        self.by_reference: list[tuple] = []  # (slot, rule)
        render_kernel = crossrender.backend(kernels)
        for slot, rule in enumerate(self.rules):
            try:
                c = CompiledCrossRule(slot, rule, ruleset, compile_expr, self.tests, self.pool_id, reference,
                                      render_kernel)
            except NotCompiled as why:
                self.fallbacks.append((rule.code, str(why)))
                self.by_reference.append((slot, rule))
                continue
            self.compiled.append(c)
        self.keyed: dict[str, list] = {}  # key field -> compiled rules looking up on it
        for c in self.compiled:
            if c.key_field is not None:
                self.keyed.setdefault(c.key_field, []).append(c)
        self.keyed_items = tuple(self.keyed.items())
        # rules without a lookup meet every line; those scoped to one value of a text field are indexed by it
        self.scoped: dict[str, dict] = {}  # field -> value -> rules
        self.scoped_all: dict[str, list] = {}  # field -> rules (a line without the field: scope unknown)
        self.unscoped: list = []
        for c in self.compiled:
            if c.key_field is not None:
                continue
            if c.scope_equals is None:
                self.unscoped.append(c)
                continue
            field, value = c.scope_equals
            self.scoped.setdefault(field, {}).setdefault(value, []).append(c)
            self.scoped_all.setdefault(field, []).append(c)
        self._codes: dict[str, dict] = {f: {} for f in self.keyed}  # key field -> code -> (pools, candidates)
        self.key_fields = tuple(self.keyed)
        self.memos = tuple(self._codes[f] for f in self.key_fields)
        # one key field and every rule keyed on it: a line whose code has no candidate is decided at once
        self.quick = len(self.keyed) == 1 and not self.scoped and not self.unscoped and not self.by_reference
        self.kernels = cross_kernels.backend(kernels)
        self.decider = crossdecide.backend(kernels)
        self.reference_decisions = 0  # (line, row) decided by the reference: lines sharing a place in the order

    def pool_id(self, slot: int, side: str, value) -> int:
        """The id of a pool: ints from 0, as the index kernels keep them (in C)."""
        key = (slot, side, value)
        got = self._pool_ids.get(key)
        if got is None:
            got = self._pool_ids[key] = len(self._pool_ids)
        return got

    def code_facts(self, field: str, code) -> tuple:
        """What a code means, remembered: (pool ids it belongs to, candidates, plain pairs). A candidate is
        (rule, ((Point, partner pools), ...)); plain pairs are the candidates that only ask whether a partner is
        in scope (no scope, dates or unknown rolling length), kept apart as (their partner pools, the fields
        their groups are made of, candidates) so that a line none of whose partners is in the request skips
        them at once."""
        memo = self._codes[field]
        got = memo.get(code)
        if got is None:
            pools, cands, plain = [], [], []
            for c in self.keyed[field]:
                p, points = c.code_facts(code)
                pools.extend(p)
                if points:
                    (plain if c.plain_pair(points) else cands).append((c, points))
            if plain:
                partners = tuple(dict.fromkeys(pid for _, points in plain for _, pids in points for pid in pids))
                needs = tuple(dict.fromkeys(n for c, _ in plain for n in _GROUP_NEEDS[c.scope_name]))
                plain = (partners, needs, tuple(plain))
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            got = memo[code] = (pool_ids(pools), tuple(cands), plain or None)
        return got

    def request(self, lines: list, wanted) -> "CrossRequest":
        return CrossRequest(self, lines, wanted)


def pool_ids(pids) -> bytes:
    """Pool ids packed as C ints: the request index reads a line's pools from one small object (a tuple of int
    objects cost a cache miss per pool id on a cold request)."""
    return array("i", pids).tobytes()


class Tied(Exception):
    """Two lines of a pool share a place in the total order: their order would be the reference's input-order
    tie-break, so the reference decides this knowledge row."""


class CrossRequest:
    """One request's lines, indexed once for every cross-line rule. A line's place in the total order is
    worked out when a window first needs it, and each list of lines is sorted when first used."""

    def __init__(self, rules: CrossLineRules, lines: list, wanted):
        if type(lines) is not list:  # the index kernels take a list (the same line objects)
            lines = list(lines)
        self.rules, self.lines, self.wanted = rules, lines, wanted
        self._cursor = 0  # where the next current line is looked for (they come in order)
        self._groups: dict = {}  # scope -> line index -> group (None: unknown), each worked out on first use
        self._in_group: dict = {}  # (scope, group) -> line indexes in the reference's order
        self._group_keys: dict = {}  # scope -> each line's group as a comparable key (no time: none)
        self._holds: dict = {}  # line test id -> whether it holds, per line
        self._tests: dict = {}  # line test id -> value per line
        self._envs: dict = {}
        self.windows: dict = {}  # (rule slot, group, pool or value) -> the lines a window takes from
        self._patients = None
        self._reference_ready = False
        self.tied: set = set()  # pools in which two lines share a place in the total order
        # each line's time of service, what its codes mean (remembered across requests) and the pools present: a
        # pool is the lines with a time of service whose code matches a knowledge row (or value) on one side of a
        # table; the index lists its lines as it goes, and they are sorted when a rule first asks for them (``pool``)
        self.kernels = kernels = rules.kernels
        self.times, self.facts, self.present = kernels.index_request(lines, rules.key_fields, rules.memos,
                                                                     rules.code_facts, _NO_FACTS)
        self.pools: dict = {}  # pool id -> its lines, in the total order
        self.okey = [None] * len(lines)  # each line's place in the total order, made when first needed
        self.dord = _Days(self.okey)
        self._timeline = None  # the decision kernel's view of the lines, made when a rule first asks for it

    @property
    def untimed(self) -> list:
        """Lines without a time of service (in no window: window.LineSet)."""
        return list(compress(range(len(self.lines)), map(is_, self.times, repeat(None))))

    def place(self, i: int):
        """Line ``i``'s place in the total order (window.order_key), or None without a time of service."""
        t = self.times[i]
        if t is None:
            return None
        line = self.lines[i]
        if type(t) is not dt.datetime:
            t = line_time(line)
        m, s = line.get("mdtrt_id"), line.get("feedetl_sn")
        k = self.okey[i] = (t, m if type(m) is str else str(m or ""), s if type(s) is str else str(s or ""))
        return k

    def pool(self, pid) -> list:
        """Lines whose code matches a knowledge row (or value) on one side, in the total order (listed and sorted
        when first asked for)."""
        members = self.pools.get(pid)
        if members is None:
            members = self.pools[pid] = self.present.members(pid)
            if self._sort(members):
                self.tied.add(pid)
        if pid in self.tied:
            raise Tied
        return members

    def _sort(self, members: list) -> bool:
        """Sort lines into the total order (stable: ties keep input order, as LineSet's sorts); True on a tie."""
        okey = self.okey
        for m in members:
            if okey[m] is None:
                self.place(m)
        if len(members) < 2:
            return False
        members.sort(key=okey.__getitem__)
        return any(okey[a] == okey[b] for a, b in zip(members, members[1:]))

    # ---- groups ----
    def groups(self, scope: str) -> "_Groups":
        got = self._groups.get(scope)
        if got is None:
            got = self._groups[scope] = _Groups(self.lines, _GROUP_OF[scope])
        return got

    def in_group(self, scope: str, group) -> list:
        """The lines of a group in the reference's order (LineSet.in_group: by patient, then total order)."""
        members = self._in_group.get((scope, group))
        if members is None:
            keys = self._group_keys.get(scope)
            if keys is None:
                keys = self._group_keys[scope] = _group_keys(scope, self.lines, self.groups(scope))
                for k in self.untimed:
                    keys[k] = _UNSET
            members = list(compress(range(len(self.lines)), map(eq, keys, repeat(group))))
            self._sort(members)  # ties keep input order, as in the reference: no tie-break question
            members = self._in_group[(scope, group)] = self.in_patient_order(members)
        return members

    def in_patient_order(self, members: list) -> list:
        """Lines in the total order, put in the order the reference lists a group's lines: patients by first
        appearance. Differs only when one encounter mixes patients."""
        lines = self.lines
        first = lines[members[0]].get("psn_no") if members else None
        if all(lines[m].get("psn_no") == first for m in members):
            return members
        if self._patients is None:
            self._patients = {}
            for line in lines:
                if line.get("fee_ocur_time") is not None:
                    self._patients.setdefault(line.get("psn_no"), len(self._patients))
        return sorted(members, key=lambda m: self._patients[lines[m].get("psn_no")])

    def env(self, i: int) -> ref.Env:
        """What the compiled closures read on line ``i`` (derived values computed once per line)."""
        env = self._envs.get(i)
        if env is None:
            env = self._envs[i] = ref.Env(self.lines[i], None)
        return env

    def holds(self, tid: int) -> list:
        """Whether a line test holds (is true) on each line; a test ``field == "text"`` without its closure."""
        got = self._holds.get(tid)
        if got is None:
            shape = self.rules.tests.shapes[tid]
            if shape is not None:
                field, value = shape
                got = [line.get(field) == value for line in self.lines]
            else:
                got = [self.test(tid, i) is True for i in range(len(self.lines))]
            self._holds[tid] = got
        return got

    def test(self, tid: int, i: int):
        """A line test's value on line ``i`` (True / False / Unknown), evaluated once per request."""
        values = self._tests.get(tid)
        if values is None:
            values = self._tests[tid] = [_UNSET] * len(self.lines)
        v = values[i]
        if v is _UNSET:
            v = values[i] = self.rules.tests.fns[tid](self.env(i))
        return v

    # ---- screening the current lines ----
    def decide_current(self, indexes: list) -> list:
        """(line index, hits) of the current lines ``indexes`` (ascending) that have hits, each line's hits as
        ``decisions`` gives them: the usual request (every rule keyed on one field, no rule filter) in one kernel
        call."""
        if self.rules.quick and self.wanted is None:
            return self.kernels.decide_current(self, indexes, _NO_FACTS, _slot, self.rules.decider.decide)
        lines, out = self.lines, []
        for i in indexes:
            hits = self.decisions(lines[i], i)
            if hits:
                out.append((i, hits))
        return out

    def screen(self, line: dict) -> list[Finding]:
        """Findings of every cross-line rule on one current line, in rule order."""
        return self.render_hits(self.decisions(line))

    def render_hits(self, hits) -> list[Finding]:
        """The findings of one line's hits (``decisions``; None or []: none)."""
        return [f for hit in hits for f in self.render(hit)] if hits else []

    def decisions(self, line: dict, i: int | None = None) -> list:
        """What every cross-line rule decides on one current line, in rule order, before rendering: hits
        (slot, rule, line index, Point or None, partner pools, outcome, window); where the reference decided (a
        rule not compiled), its findings as (slot, findings)."""
        if i is None:
            i = self._index_of(line)
        rules, wanted = self.rules, self.wanted
        if rules.quick and self.kernels.passed_over(self.facts[0], self.times, self.present, line, i, _NO_FACTS):
            return []  # one key field, every rule keyed on it: most lines are decided by their code alone
        hits = []
        for f, (field, keyed) in enumerate(rules.keyed_items):
            code = line.get(field)
            if code is None:  # the lookup key itself is unknown: insufficient data for every such rule
                hits.extend((c.slot, c, i, None, (), INSUFFICIENT, None) for c in keyed
                            if wanted is None or c.rule.code in wanted)
                continue
            facts = self.facts[f][i]
            if facts[2] is not None and not self._alone(i, line, facts[2]):
                for c, points in facts[2][2]:
                    if wanted is None or c.rule.code in wanted:
                        self._decide(c, i, points, hits)
            for c, points in facts[1]:
                if wanted is None or c.rule.code in wanted:
                    self._decide(c, i, points, hits)
        if rules.scoped:
            for field, by_value in rules.scoped.items():
                value = line.get(field)
                for c in by_value.get(value, ()) if value is not None else rules.scoped_all[field]:
                    if wanted is None or c.rule.code in wanted:
                        self._decide(c, i, c.points_all, hits)
        for c in rules.unscoped:
            if wanted is None or c.rule.code in wanted:
                self._decide(c, i, c.points_all, hits)
        for slot, rule in rules.by_reference:
            if wanted is None or rule.code in wanted:
                hits.append((slot, self._by_reference(line, rule)))
        if len(hits) > 1:
            hits.sort(key=_slot)
        return hits

    def _alone(self, i: int, line: dict, plain: tuple) -> bool:
        """No line of the request matches the other side of any plain pair of line ``i``, whose window is known
        (a time of service, a group: the fields that make the pairs' groups are there): those pairs flag
        nothing."""
        partners, needs, _ = plain
        if self.times[i] is None or not self.present.isdisjoint(partners):
            return False
        for name in needs:
            if line.get(name) is None:
                return False
        return True

    def _index_of(self, line: dict) -> int:
        i = self.kernels.position(self.lines, line, self._cursor)
        if i < 0:
            raise KeyError("the line is not one of the request's lines")
        self._cursor = i + 1
        return i

    def _decide(self, c: CompiledCrossRule, i: int, points, hits: list) -> None:
        if c.shape is None:
            for pt, partner_pools in points:
                self._decide_point(c, i, pt, partner_pools, hits)
            return
        got = self.rules.decider.decide(self._timeline or self.timeline(), c.shape, points, i)
        if got is not None:  # None, the usual answer: no row flags the line
            self.verdicts(c, i, got, hits)

    def verdicts(self, c: CompiledCrossRule, i: int, got: list, hits: list) -> None:
        """The hits of what the decision kernel said of line ``i``'s knowledge rows (``decider.decide``)."""
        for pt, partner_pools, verdict in got:
            if verdict is None:  # outside the kernel's plain case
                self._decide_point(c, i, pt, partner_pools, hits)
            else:
                window = None if verdict is True else self._window(c, i, verdict)
                hits.append((c.slot, c, i, pt, partner_pools, VIOLATION, window))

    def timeline(self):
        """The decision kernel's view of the lines (kernels/crossdecide), made when a rule first asks for it."""
        if self._timeline is None:
            self._timeline = self.rules.decider.Timeline(self.lines, self.times, self.present)
        return self._timeline

    def _decide_point(self, c: CompiledCrossRule, i: int, pt: "Point", partner_pools: tuple, hits: list) -> None:
        try:
            got = c.decide(self, i, pt, partner_pools)
        except Tied:
            hits.append((c.slot, self._reference_point(c, i, pt)))
            return
        if got is not None:
            hits.append((c.slot, c, i, pt, partner_pools, got[0], got[1]))

    def _window(self, c: CompiledCrossRule, i: int, members: list) -> tuple:
        """(values, members) of a window the kernel found violated, its values computed as window_of does."""
        okey = self.okey
        for m in (i, *members):
            if okey[m] is None:
                self.place(m)
        return {k: f(self, i, members) for k, f in c.aggregates}, members

    def render(self, hit: tuple) -> list[Finding]:
        """The findings of one hit of ``decisions``: a violation by the reference's renderer from the compiled
        window; insufficient data by the reference, which finds (and checks) the reason."""
        if len(hit) == 2:
            return hit[1]
        _, c, i, pt, partner_pools, outcome, window = hit
        if outcome != VIOLATION:
            self._reference_lines()
            return [self.rules.reference.render_hit(c.rule, self.lines[i], pt.index if pt else -1, outcome)]
        try:
            return [c.render(self, i, pt, partner_pools, window, self.rules.reference)]
        except Tied:  # listing every partner met a tie the decision did not need to look at
            return self._reference_point(c, i, pt)

    def render_decided(self, c: CompiledCrossRule, i: int, point: int, outcome: str) -> list[Finding] | None:
        """The findings of a hit decided elsewhere (the batch executor): rule ``c`` on line ``i`` for knowledge
        row ``point`` (-1: a rule without a lookup), rendered as ``render`` renders a hit of ``decisions``
        (the window listed in full), without deciding the line again. None when the line is not a candidate
        of that row."""
        if c.table is None:
            pt, partner_pools = c.points_all[0]
        else:  # the row among the line's candidates, as the index found them
            _, cands, plain = self.facts[self.rules.key_fields.index(c.key_field)][i]
            found = next((cand for rule, points in (*cands, *(plain[2] if plain else ())) if rule is c
                          for cand in points if cand[0].index == point), None)
            if found is None:
                return None
            pt, partner_pools = found
        return self.render((c.slot, c, i, pt, partner_pools, outcome, None))

    def _reference_point(self, c: CompiledCrossRule, i: int, pt: "Point") -> list[Finding]:
        """A knowledge row whose lines tie in the total order: the reference decides it (its input-order
        tie-break)."""
        self.rules.reference_decisions += 1
        self._reference_lines()
        return self.rules.reference._evaluate_point(c.rule, self.lines[i], c.table,
                                                    pt.index if c.table is not None else None)

    def _by_reference(self, line: dict, rule: ir.Rule) -> list[Finding]:
        """A rule not compiled: the reference decides it, as the screener did before rules were compiled."""
        self._reference_lines()
        lk = rule.lookup
        if lk is not None and isinstance(lk.key, ir.Field) and line.get(lk.key.name) is not None and \
                not lookup_points(self.rules.ruleset.tables[lk.table], lk.side, line[lk.key.name]):
            return []  # the line matches no knowledge row of this rule
        return self.rules.reference.evaluate_rule(rule, line)

    def _reference_lines(self) -> None:
        if not self._reference_ready:
            self.rules.reference.use_lines(self.lines)
            self._reference_ready = True


class _Days(dict):
    """Line index -> the ordinal of its day of service (from its place in the order), on first lookup."""

    def __init__(self, okey: list):
        super().__init__()
        self.okey = okey

    def __missing__(self, i: int) -> int:
        d = self[i] = self.okey[i][0].toordinal()
        return d


def _group_keys(scope: str, lines: list, groups) -> list:
    """Every line's group for ``scope`` as a key equal to its group where that is known (a key made of a missing
    field is never a line's group, so it matches nothing)."""
    fields = _GROUP_FIELDS.get(scope)
    if fields is None:
        return [groups[i] for i in range(len(lines))]
    if len(fields) == 1:
        return [line.get(fields[0]) for line in lines]
    a, b = fields
    return [(line.get(a), line.get(b)) for line in lines]


# the fields a line's group is made of, per scope: the group is unknown (None) exactly when one is missing
_GROUP_NEEDS = {"encounter": ("mdtrt_id",), "prescription": ("mdtrt_id", "rxno"), "patient": ("psn_no",),
                "institution": ("psn_no", "fixmedins_code"), "day": ("psn_no", "fee_ocur_time"),
                "month": ("psn_no", "fee_ocur_time"), "quarter": ("psn_no", "fee_ocur_time"),
                "year": ("psn_no", "fee_ocur_time"), "insurance_year": ("psn_no", "fee_ocur_time")}

_GROUP_FIELDS = {"encounter": ("mdtrt_id",), "prescription": ("mdtrt_id", "rxno"), "patient": ("psn_no",),
                 "institution": ("psn_no", "fixmedins_code")}


class _Groups(dict):
    """Line index -> the line's group for one scope (None: unknown), worked out on first lookup."""

    def __init__(self, lines: list, group_of):
        super().__init__()
        self.lines, self.group_of = lines, group_of

    def __missing__(self, i: int):
        g = self[i] = self.group_of(self.lines[i])
        return g


# A line's group per scope as window.group_of gives it, without the scope name (None: unknown): equal exactly
# when group_of's are. Periods are of the date of service (a datetime's date, or a date).
def _encounter(line):
    return line.get("mdtrt_id")


def _prescription(line):
    m, rx = line.get("mdtrt_id"), line.get("rxno")
    return None if m is None or rx is None else (m, rx)


def _patient(line):
    return line.get("psn_no")


def _institution(line):
    p, h = line.get("psn_no"), line.get("fixmedins_code")
    return None if p is None or h is None else (p, h)


def _in_period(period):
    def group_of(line):
        p, t = line.get("psn_no"), line.get("fee_ocur_time")
        return None if p is None or t is None else (p, period(t))
    return group_of


def _day(line):  # the most common period: without the general one's extra call
    p, t = line.get("psn_no"), line.get("fee_ocur_time")
    return None if p is None or t is None else (p, t.toordinal())


_GROUP_OF = {
    "encounter": _encounter, "prescription": _prescription, "patient": _patient, "institution": _institution,
    "day": _day,
    "month": _in_period(lambda t: (t.year, t.month)),
    "quarter": _in_period(lambda t: (t.year, (t.month - 1) // 3)),
    "year": _in_period(lambda t: t.year),
    "insurance_year": _in_period(lambda t: t.year),
}
