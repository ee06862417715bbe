"""The reference interpreter: rule by rule, line by line, straight from the IR.

Slow on purpose and written for clarity: it is the oracle every faster executor must agree with.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable, Iterator

from claimaudit.dsl import ir
from claimaudit.dsl.ruleset import Ruleset
from claimaudit.dsl.schema import DERIVED_FIELDS
from claimaudit.dsl.units import Quantity

from .findings import INSUFFICIENT, ROLE_INVOLVED, ROLE_VIOLATING, VIOLATION, Finding, KnowledgePoint, finding_id
from .values import Unknown, derive, format_money, format_value, is_unknown, round_money, service_date
from .profiles import mark_with_profile
from .window import LineSet, lookup_points, window_values


class Env:
    """What an expression sees: the line (with its encounter and patient) and the knowledge row."""

    __slots__ = ("line", "row", "derived", "window", "involved", "window_fn")

    def __init__(self, line: dict, row: dict | None):
        self.line, self.row, self.derived = line, row, {}
        # a cross-line rule's window values and involved lines, computed on first use by window_fn
        self.window, self.involved, self.window_fn = None, (), None

    def window_values(self):
        if self.window is None and self.window_fn is not None:
            self.window_fn(self)
        return self.window

    def field(self, name: str):
        if name in self.derived:
            return self.derived[name]
        v = self.line.get(name)
        if v is None:
            if name in DERIVED_FIELDS:
                v = derive(name, self.line)
                self.derived[name] = v
                return v
            return Unknown(f"{name} is missing")
        return v


def evaluate(expr, env: Env):
    """IR expression -> value or Unknown."""
    if isinstance(expr, ir.Const):
        return expr.value
    if isinstance(expr, ir.Field):
        return env.field(expr.name)
    if isinstance(expr, ir.KnowledgeField):
        v = env.row.get(expr.column) if env.row is not None else None
        return Unknown(f"knowledge column {expr.column} is empty") if v is None else v
    if isinstance(expr, ir.Call):
        return _call(expr, env)
    if isinstance(expr, ir.WindowValue):
        w = env.window_values()
        if w is None:
            return Unknown("the rule's window was not computed")
        return w if is_unknown(w) else w[expr.name]
    op = expr.op
    if op == "and":
        return _and([evaluate(a, env) for a in expr.args])
    if op == "or":
        return _or([evaluate(a, env) for a in expr.args])
    if op == "not":
        v = evaluate(expr.args[0], env)
        return v if is_unknown(v) else (not v)
    if op in ("is_null", "not_null"):
        v = evaluate(expr.args[0], env)
        missing = is_unknown(v) or v is None
        return missing if op == "is_null" else not missing
    args = [evaluate(a, env) for a in expr.args]
    for a in args:
        if is_unknown(a):
            return a
    if op == "neg":
        v = args[0]
        return Quantity(-v.base_value, v.dimension) if isinstance(v, Quantity) else -v
    if op in ("==", "!=", "<", "<=", ">", ">="):
        return _compare(op, *args)
    if op == "in":
        return args[0] in args[1]
    if op == "not in":
        return args[0] not in args[1]
    if op == "startswith":
        prefixes = args[1] if isinstance(args[1], tuple) else (args[1],)
        return any(str(args[0]).startswith(p) for p in prefixes)
    return _arith(op, *args)


def _and(values):
    if any(v is False for v in values):
        return False
    unknown = next((v for v in values if is_unknown(v)), None)
    return unknown if unknown is not None else True


def _or(values):
    if any(v is True for v in values):
        return True
    unknown = next((v for v in values if is_unknown(v)), None)
    return unknown if unknown is not None else False


def _comparable_pair(a, b):
    if isinstance(a, Quantity) and isinstance(b, Quantity):
        if a.dimension != b.dimension:
            return Unknown(f"cannot compare {a} with {b}: different units")
        return a.base_value, b.base_value
    if isinstance(a, dt.datetime) and isinstance(b, dt.date) and not isinstance(b, dt.datetime):
        a = a.date()
    if isinstance(b, dt.datetime) and isinstance(a, dt.date) and not isinstance(a, dt.datetime):
        b = b.date()
    return a, b


def _compare(op, a, b):
    pair = _comparable_pair(a, b)
    if is_unknown(pair):
        return pair
    a, b = pair
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _arith(op, a, b):
    if isinstance(a, Quantity) or isinstance(b, Quantity):
        if isinstance(a, Quantity) and isinstance(b, Quantity):
            if a.dimension != b.dimension:
                return Unknown(f"cannot combine {a} with {b}: different units")
            if op == "/":
                return Unknown("division by a zero quantity") if b.base_value == 0 else a.base_value / b.base_value
            v = a.base_value + b.base_value if op == "+" else a.base_value - b.base_value
            return Quantity(v, a.dimension)
        q, n = (a, b) if isinstance(a, Quantity) else (b, a)
        if op == "/":
            return Unknown("division by zero") if n == 0 else Quantity(q.base_value / n, q.dimension)
        return Quantity(q.base_value * n, q.dimension)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return Unknown("division by zero") if b == 0 else a / b


def diagnoses(line: dict) -> tuple:
    codes = []
    main = line.get("dscg_maindiag_code")
    if main:
        codes.append(main)
    codes.extend(line.get("diag_codes") or ())
    return tuple(c.strip().upper() for c in codes if c and c.strip())


NO_DIAGNOSIS = Unknown("the encounter has no diagnosis code")


def has_diag(env: Env, prefixes):
    """Some diagnosis of the encounter (main, then the list) starts with one of the prefixes."""
    codes = env.derived.get("@diagnoses")
    if codes is None:
        codes = env.derived["@diagnoses"] = diagnoses(env.line)
    if not codes:
        return NO_DIAGNOSIS
    prefixes = tuple(p.upper() for p in prefixes) if isinstance(prefixes, tuple) else (prefixes.upper(),)
    return any(c.startswith(prefixes) for c in codes)


def _call(expr: ir.Call, env: Env):
    f = expr.func
    if f == "coalesce":
        v = evaluate(expr.args[0], env)
        return evaluate(expr.args[1], env) if is_unknown(v) or v is None else v
    args = [evaluate(a, env) for a in expr.args]
    for a in args:
        if is_unknown(a):
            return a
    if f == "has_diag":
        return has_diag(env, args[0])
    if f == "days_between":
        a, b = (x.date() if isinstance(x, dt.datetime) else x for x in args)
        return (b - a).days
    if f == "abs":
        return abs(args[0])
    if f in ("min", "max"):
        pair = _comparable_pair(*args)
        if is_unknown(pair):
            return pair
        pick = (pair[0] <= pair[1]) if f == "min" else (pair[0] >= pair[1])
        return args[0] if pick else args[1]
    raise KeyError(f)


# ---- explaining ------------------------------------------------------------------------------

_OP_TEXT = {"*": "×", "/": "/", "+": "+", "-": "−"}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def expr_text(expr, env: Env | None = None, binding: str = "k") -> str:
    """Render an arithmetic expression by names, or (given ``env``) by values."""
    if isinstance(expr, ir.Const):
        return format_value(expr.value)
    if isinstance(expr, ir.Field):
        return format_value(evaluate(expr, env)) if env else expr.name
    if isinstance(expr, ir.KnowledgeField):
        return format_value(evaluate(expr, env)) if env else f"{binding}.{expr.column}"
    if isinstance(expr, ir.Call):
        return f"{expr.func}({', '.join(expr_text(a, env, binding) for a in expr.args)})"
    if isinstance(expr, ir.WindowValue):
        return format_value(evaluate(expr, env)) if env else f"w.{expr.name}"
    if expr.op == "neg":
        return "−" + expr_text(expr.args[0], env, binding)
    if expr.op in _OP_TEXT:
        parts = []
        for side in expr.args:
            t = expr_text(side, env, binding)
            if isinstance(side, ir.Op) and side.op in _PRECEDENCE and _PRECEDENCE[side.op] < _PRECEDENCE[expr.op]:
                t = f"({t})"
            parts.append(t)
        return f" {_OP_TEXT[expr.op]} ".join(parts)
    return expr.op


def expr_text_parts(expr, leaf) -> list:
    """``expr_text(expr, env)`` as its fixed texts and, for each value it shows (a field, knowledge column or
    window value), ``leaf(node)``, in order, adjacent texts joined: compiled renderers fill in the values."""
    parts: list = []

    def text(e):
        if isinstance(e, ir.Const):
            parts.append(format_value(e.value))
        elif isinstance(e, (ir.Field, ir.KnowledgeField, ir.WindowValue)):
            parts.append(leaf(e))
        elif isinstance(e, ir.Call):
            parts.append(f"{e.func}(")
            for j, a in enumerate(e.args):
                if j:
                    parts.append(", ")
                text(a)
            parts.append(")")
        elif e.op == "neg":
            parts.append("−")
            text(e.args[0])
        elif e.op in _OP_TEXT:
            for j, side in enumerate(e.args):
                if j:
                    parts.append(f" {_OP_TEXT[e.op]} ")
                wrap = isinstance(side, ir.Op) and side.op in _PRECEDENCE and _PRECEDENCE[side.op] < _PRECEDENCE[e.op]
                parts.extend(("(",) if wrap else ())
                text(side)
                parts.extend((")",) if wrap else ())
        else:
            parts.append(e.op)
    text(expr)
    merged: list = []
    for p in parts:
        if type(p) is str and merged and type(merged[len(merged) - 1]) is str:
            merged[len(merged) - 1] += p
        else:
            merged.append(p)
    return merged


class RuleFacts:
    """What rendering a finding needs about a rule, worked out once per rule."""

    __slots__ = ("evidence_fields", "knowledge_columns", "amount_names", "window_values")

    def __init__(self, rule: ir.Rule):
        # evidence is shown to prescribers and in reports; keep the person id out of it
        self.evidence_fields = tuple(n for n in sorted(rule.fields_used()) if n != "psn_no")
        cols = []
        for node in (n for e in (rule.scope, rule.condition, rule.amount) if e is not None for n in ir.walk(e)):
            if isinstance(node, ir.KnowledgeField) and node.column not in cols:
                cols.append(node.column)
        self.knowledge_columns = tuple(cols)
        self.amount_names = expr_text(rule.amount)
        parts = [p for p in rule.message.parts if not isinstance(p, str)]
        names = []
        for node in (n for e in (rule.scope, rule.condition, rule.amount, *parts) if e is not None for n in ir.walk(e)):
            if isinstance(node, ir.WindowValue) and node.name != "partner" and node.name not in names:
                names.append(node.name)
        self.window_values = tuple(names)


def _evidence(facts: RuleFacts, env: Env) -> tuple:
    out = [(name, format_value(env.field(name))) for name in facts.evidence_fields]
    if env.row is not None:
        out.extend((f"k.{c}", format_value(env.row.get(c))) for c in facts.knowledge_columns)
    if facts.window_values and isinstance(env.window, dict):
        out.extend((f"w.{n}", format_value(env.window[n])) for n in facts.window_values)
    return tuple(out)


def _render(template: ir.Template, env: Env, extra: dict) -> str:
    out = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, ir.Field) and part.name == "@involved":
            out.append("、".join(f"【{m.get('hilist_name') or m.get('med_list_codg') or m.get('feedetl_sn')}】"
                                for m in env.involved))
        elif isinstance(part, ir.Field) and part.name.startswith("@"):
            out.append(extra.get(part.name[1:], ""))
        else:
            out.append(format_value(evaluate(part, env)))
    return "".join(out)


# ---- running rules ------------------------------------------------------------------------------


_MISSING = object()


class ReferenceEngine:
    """Evaluates every selected rule on every line. ``stages`` limits rules to those stages."""

    def __init__(self, ruleset: Ruleset, stages: Iterable[str] | None = None, rule_codes: Iterable[str] | None = None):
        self.ruleset = ruleset
        wanted_stages = set(stages) if stages else None
        wanted_codes = set(rule_codes) if rule_codes else None
        self.rules = tuple(r for r in ruleset.rules
                           if r.stages and (wanted_stages is None or r.stages & wanted_stages)
                           and (wanted_codes is None or r.code in wanted_codes))
        self._facts: dict[int, tuple] = {}
        self._point_cache: dict = {}
        self.lineset: LineSet | None = None  # what cross-line rules see; set by run() or use_lines()
        self.has_windows = any(r.window is not None for r in self.rules)

    def facts(self, rule: ir.Rule) -> RuleFacts:
        got = self._facts.get(id(rule))
        if got is None or got[0] is not rule:
            got = (rule, RuleFacts(rule))
            self._facts[id(rule)] = got
        return got[1]

    def use_lines(self, lines: list) -> None:
        """The lines cross-line rules look at (history included)."""
        self.lineset = LineSet(lines)

    def run(self, lines: Iterable[dict], current=None) -> Iterator[Finding]:
        """Findings on every line (or on the lines ``current(line)`` accepts: history lines sent with a
        prescription are looked at, never flagged)."""
        if self.has_windows:
            lines = list(lines)
            self.use_lines(lines)
        for line in lines:
            if current is None or current(line):
                yield from self.evaluate_line(line)

    def evaluate_line(self, line: dict) -> list[Finding]:
        out = []
        for rule in self.rules:
            out.extend(self.evaluate_rule(rule, line))
        return out

    def evaluate_rule(self, rule: ir.Rule, line: dict) -> list[Finding]:
        if rule.lookup is None:
            table, points = None, [None]
        else:
            table = self.ruleset.tables[rule.lookup.table]
            key = evaluate(rule.lookup.key, Env(line, None))
            if is_unknown(key):
                return [self._finding(rule, Env(line, None), None, key)]
            points = lookup_points(table, rule.lookup.side, key)
        out = []
        for i in points:
            out.extend(self._evaluate_point(rule, line, table, i))
        return out

    def _evaluate_point(self, rule, line, table, i) -> list[Finding]:
        """One knowledge point on one line. The effective window (the rule's dates narrowed by the
        knowledge row's) is judged only when scope and condition do not already rule the line out, so an
        undated line is "insufficient data" only for the rules that concern it."""
        env = self.env(rule, line, table, i)
        point = (table, i) if table is not None else None
        start, end = effective_window(rule, table, i)
        day = service_date(line) if (start or end) else None
        if day is not None and not is_unknown(day) and ((start and day < start) or (end and day > end)):
            return []
        unknown = None
        if rule.scope is not None:
            s = evaluate(rule.scope, env)
            if is_unknown(s):
                unknown = s
            elif not s:
                return []
        if unknown is None:
            c = evaluate(rule.condition, env)
            if is_unknown(c):
                unknown = c
            elif not c:
                return []
        if is_unknown(day):
            unknown = day
        return [self._finding(rule, env, point, unknown)]

    def env(self, rule: ir.Rule, line: dict, table, i) -> Env:
        env = Env(line, table.rows[i] if table is not None else None)
        if rule.window is not None:
            if self.lineset is None:
                raise RuntimeError("a cross-line rule needs the lines it may look at: call use_lines() first")
            lineset = self.lineset

            def compute(e: Env) -> None:  # only when scope or condition first needs it
                got = window_values(rule, table, i, e, lineset, evaluate)
                if is_unknown(got):
                    e.window = got
                else:
                    e.window, e.involved = got
            env.window_fn = compute
        return env

    def render_hit(self, rule: ir.Rule, line: dict, point: int, outcome: str) -> Finding:
        """The finding a compiled executor decided on (knowledge row ``point``, -1 for none). A violation
        needs no reason and is rendered straight from its knowledge row; insufficient data is re-evaluated
        here for its exact reason, which also checks that the executor and the reference agree."""
        table = self.ruleset.tables[rule.lookup.table] if rule.lookup else None
        if outcome == VIOLATION and (point >= 0 or table is None):
            env = self.env(rule, line, table, point if table is not None else None)
            return self._finding(rule, env, (table, point) if table is not None else None, None)
        if point < 0 and table is not None:  # the lookup key itself was unknown
            found = self.evaluate_rule(rule, line)
        else:
            found = self._evaluate_point(rule, line, table, point if table is not None else None)
        match = [f for f in found if f.outcome == outcome]
        if len(match) != 1:
            raise AssertionError(f"executor and reference disagree on rule {rule.code}, line "
                                 f"{line.get('feedetl_sn')}: executor says {outcome}, reference says "
                                 f"{[f.outcome for f in found]}")
        return match[0]

    def _finding(self, rule: ir.Rule, env: Env, point, unknown: Unknown | None) -> Finding:
        line = env.line
        if unknown is None:
            env.window_values()  # involved lines and window evidence
        facts = self.facts(rule)
        kp = self._point_cache.get((id(rule), id(point[0]) if point else None, point[1] if point else None), _MISSING)
        if kp is _MISSING:  # knowledge points are immutable: describe each once
            kp = _knowledge_point(rule, point)
            self._point_cache[(id(rule), id(point[0]) if point else None, point[1] if point else None)] = kp
        line_id = str(line.get("feedetl_sn"))
        fid = finding_id(rule.code, f"{kp.table}:{kp.file_row}" if kp and kp.table else "-", line_id,
                         line.get("mdtrt_id"))
        if unknown is not None:
            amount, formula = None, "not computed: insufficient data"
            message = f"数据不足，无法判断【{rule.name}】：{unknown.reason}"
        else:
            value = evaluate(rule.amount, env)
            if is_unknown(value):
                amount, formula = None, f"{facts.amount_names}: cannot compute ({value.reason})"
            else:
                amount = round_money(float(value))
                names, values = facts.amount_names, expr_text(rule.amount, env)
                formula = f"{names} = {values} = {format_money(amount)}" if names != values else f"{names} = {format_money(amount)}"
            extra = {"amount": format_money(amount), "rule_code": rule.code, "rule_name": rule.name,
                     "knowledge_text": (kp.text or "") if kp else "", "knowledge_source": (kp.source or "") if kp else ""}
            message = _render(rule.message, env, extra)
        day = service_date(line)
        found = Finding(
            finding_id=fid, outcome=INSUFFICIENT if unknown is not None else VIOLATION,
            rule_code=rule.code, rule_name=rule.name, rule_class=rule.rule_class, rule_version=rule.version,
            result_type=rule.result_type, severity=rule.severity, message=message, line_id=line_id,
            mdtrt_id=line.get("mdtrt_id"), psn_no=line.get("psn_no"), fixmedins_code=line.get("fixmedins_code"),
            bilg_dept_codg=line.get("bilg_dept_codg"), bilg_dr_codg=line.get("bilg_dr_codg"),
            med_list_codg=line.get("med_list_codg"), service_date=None if is_unknown(day) else day.isoformat(),
            knowledge=kp, evidence=_evidence(facts, env), amount=amount, amount_formula=formula,
            reason=unknown.reason if unknown is not None else None,
            lines=((line_id, ROLE_VIOLATING),) + tuple((str(m.get("feedetl_sn")), ROLE_INVOLVED) for m in env.involved),
            rule_location=f"{rule.span.file}:{rule.span.line}" if rule.span else "")
        profile = self.ruleset.profile
        return found if profile is None else mark_with_profile(found, profile)


def effective_window(rule: ir.Rule, table, i) -> tuple:
    """(from, to) of a knowledge point: the rule's effective dates narrowed by the row's own
    (columns with role effective_from / effective_to); None for an open end."""
    start, end = rule.effective_from, rule.effective_to
    if table is None or i is None or i < 0:
        return start, end
    col_from, col_to = table.role_column("effective_from"), table.role_column("effective_to")
    if col_from or col_to:
        row = table.rows[i]
        if col_from and row.get(col_from) is not None:
            start = max(start, row[col_from]) if start else row[col_from]
        if col_to and row.get(col_to) is not None:
            end = min(end, row[col_to]) if end else row[col_to]
    return start, end


def _knowledge_point(rule: ir.Rule, point) -> KnowledgePoint | None:
    if point is None or point[0] is None:
        if rule.basis is None:
            return None
        return KnowledgePoint(None, None, None, None, rule.basis.text, rule.basis.source)
    table, i = point
    row = table.rows[i]

    def role(r):
        col = table.role_column(r)
        return format_value(row.get(col)) if col and row.get(col) is not None else None
    return KnowledgePoint(table.name, str(row.get(table.key)), table.row_numbers[i], role("id"),
                          role("text") or (rule.basis.text if rule.basis else None),
                          role("source") or (rule.basis.source if rule.basis else None))
