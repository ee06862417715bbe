"""Rule IR -> Python source, compiled once when a ruleset loads (the inline screener's hot path).

An expression becomes straight-line statements with the reference interpreter's semantics: unknown
values propagate (``type(x) is Unknown``), ``and``/``or`` follow Kleene logic, comparisons of unlike
values and unit arithmetic go through the reference's own ``_compare`` / ``_arith``. Compared with
closures (engine/inline.compile_expr) it saves a Python call per node and reads each line field once
per function.

Generated functions see the line dict ``line`` and a per-line cache ``lv`` (derived values and the
encounter's diagnoses, shared by every function that looks at the same line). Knowledge values come
either from parameter slots (``Param``: local variables or constants supplied by the caller) or from
a knowledge row dict ``row`` (``KnowledgeField``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math

from claimaudit.dsl import ir
from claimaudit.dsl.schema import DERIVED_FIELDS, DERIVED_INPUTS
from claimaudit.dsl.units import Quantity, quantize

from . import reference as ref
from .values import Unknown, derive, service_date

_LITERAL_TYPES = (str, int, float, bool, type(None))
_MEMO_LIMIT = 100_000
# derived values worth remembering across lines and requests: pure functions of one or two inputs
# (dose and frequency text, birth date and date of service) that parse text or build objects
_MEMO_INPUTS = {name: DERIVED_INPUTS[name] for name in
                ("single_dose", "daily_frequency", "daily_dose", "age_years", "age_days")}
_memos: dict = {name: {} for name in _MEMO_INPUTS}
# inputs whose equal values always derive equal results (1 == 1.0 == True would not: keep to these)
_MEMO_INPUT_TYPES = (str, dt.date, dt.datetime, type(None))


def derived_value(name: str, line: dict):
    """What ``Env.field(name)`` gives for a derived value (a line may carry it; else it is derived)."""
    v = line.get(name)
    if v is not None:
        return v
    inputs = _MEMO_INPUTS.get(name)
    if inputs is None:
        return derive(name, line)
    key = (line.get(inputs[0]), line.get(inputs[1])) if len(inputs) == 2 else line.get(inputs[0])
    memo = _memos[name]
    try:
        got = memo.get(key)  # only keys of _MEMO_INPUT_TYPES are stored, and equal keys derive alike
    except TypeError:  # an unhashable input (a caller's own line)
        return derive(name, line)
    if got is None:
        got = _daily_dose(line) if name == "daily_dose" else derive(name, line)
        if _memo_type(key):
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[key] = got
    return got


def _daily_dose(line: dict):
    """``derive("daily_dose", line)`` from the single dose and the frequency each remembered by its own text:
    a new pair of texts (the pair's memo misses) is mostly two texts seen before."""
    dose, freq = _remembered("single_dose", line), _remembered("daily_frequency", line)
    if type(dose) is Unknown:
        return dose
    if type(freq) is Unknown:
        return freq
    return new_quantity(quantize(dose.base_value * freq), dose.dimension)


def _remembered(name: str, line: dict):
    """``derive(name, line)`` of a value derived from one text field, remembered by that text."""
    key = line.get(_MEMO_INPUTS[name][0])
    memo = _memos[name]
    got = memo.get(key) if type(key) in _MEMO_INPUT_TYPES else None
    if got is None:
        got = derive(name, line)
        if type(key) in _MEMO_INPUT_TYPES:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[key] = got
    return got


def _memo_type(key) -> bool:
    if type(key) is tuple:
        return type(key[0]) in _MEMO_INPUT_TYPES and type(key[1]) in _MEMO_INPUT_TYPES
    return type(key) in _MEMO_INPUT_TYPES


_diagnoses_memo: dict = {}


def diagnoses(lv: dict, line: dict) -> tuple:
    """The encounter's diagnosis codes as ``reference.has_diag`` reads them, once per line (and once per
    distinct main code and list: lines of an encounter share them)."""
    codes = lv.get("@diagnoses")
    if codes is None:
        key = (line.get("dscg_maindiag_code"), line.get("diag_codes"))
        try:
            codes = _diagnoses_memo.get(key)
        except TypeError:  # a list of codes (a caller's own line): no memo
            codes = ref.diagnoses(line)
        else:
            if codes is None:
                if len(_diagnoses_memo) >= _MEMO_LIMIT:
                    _diagnoses_memo.clear()
                codes = _diagnoses_memo[key] = ref.diagnoses(line)
        lv["@diagnoses"] = codes
    return codes


def has_diag(codes: tuple, prefixes):
    """``reference.has_diag`` on the line's diagnoses."""
    if not codes:
        return ref.NO_DIAGNOSIS
    prefixes = tuple(p.upper() for p in prefixes) if isinstance(prefixes, tuple) else (prefixes.upper(),)
    for c in codes:
        if c.startswith(prefixes):
            return True
    return False


def has_diag_upper(codes: tuple, upper: tuple):
    """``has_diag`` with prefixes already upper-cased at load (see ``upper_prefixes``)."""
    if not codes:
        return ref.NO_DIAGNOSIS
    for c in codes:
        if c.startswith(upper):
            return True
    return False


def upper_prefixes(value):
    """A has_diag argument in the form ``has_diag`` turns it into on every call, or None when that form
    cannot be made ahead (then the generic path runs)."""
    if isinstance(value, tuple) and all(type(p) is str for p in value):
        return tuple(p.upper() for p in value)
    if type(value) is str:
        return (value.upper(),)
    return None


def call_generic(func: str, values: list, types: list, line: dict):
    """days_between, abs, min, max: the reference applies them to the argument values."""
    bound = ir.Call(func, tuple(ir.Const(v, t) for v, t in zip(values, types)), "any")
    return ref._call(bound, ref.Env(line, None))


_object_new = object.__new__


def new_quantity(base_value: float, dimension: str) -> Quantity:
    """``Quantity(base_value, dimension)`` without the frozen-dataclass ``__init__`` (its two
    ``object.__setattr__`` calls dominate unit arithmetic in an amount formula)."""
    q = _object_new(Quantity)
    d = q.__dict__
    d["base_value"] = base_value
    d["dimension"] = dimension
    return q


# what a decision sees when quantities of different dimensions meet: only "unknown" matters there
# (the reason is re-derived by the reference's own code when the finding is rendered)
UNITS_DIFFER = Unknown("quantities of different units")
_units_memo: dict = {}


def units_differ(a: Quantity, b: Quantity) -> Unknown:
    """``reference._compare`` of two quantities of different dimensions (any operator): its Unknown, made
    once per pair of values (its reason shows both, and tablets against a mass limit are common)."""
    if not (a.base_value and b.base_value):  # 0.0 and -0.0 would share a key but print differently
        return ref._compare("==", a, b)
    key = (a.base_value, a.dimension, b.base_value, b.dimension)
    got = _units_memo.get(key)
    if got is None:
        if len(_units_memo) >= _MEMO_LIMIT:
            _units_memo.clear()
        got = _units_memo[key] = ref._compare("==", a, b)
    return got

BASE_NAMESPACE = {
    "Unknown": Unknown, "Quantity": Quantity, "_compare": ref._compare, "_arith": ref._arith, "_q": new_quantity,
    "UNITS_DIFFER": UNITS_DIFFER, "units_differ": units_differ,
    "derived_value": derived_value, "diagnoses": diagnoses, "has_diag": has_diag, "has_diag_upper": has_diag_upper,
    "call_generic": call_generic, "service_date": service_date,
}

_CMP = {"==", "!=", "<", "<=", ">", ">="}


class Source:
    """Lines of Python at an indentation depth, plus the constants they refer to."""

    def __init__(self, namespace: dict | None = None):
        self.lines: list[str] = []
        self.depth = 1
        self.namespace = dict(BASE_NAMESPACE)
        self.namespace.update(namespace or {})
        self.values: dict = {}  # Python expression -> the constant it stands for
        self._names = itertools.count()

    def add(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def fresh(self, stem: str = "t") -> str:
        return f"{stem}{next(self._names)}"

    def const(self, value) -> str:
        """A Python expression for a constant: a literal when it round-trips, else a namespace name."""
        if _is_literal(value):
            name = repr(value)
        else:
            name = self.fresh("K")
            self.namespace[name] = value
        self.values[name] = value
        return name

    def known(self, expr: str) -> bool:
        """Is this expression a constant that is not unknown (so needs no unknown test)?"""
        return expr in self.values and type(self.values[expr]) is not Unknown

    def function(self, name: str, args: str, prologue: list[str], filename: str):
        """Compile ``def name(args): prologue; lines`` and return the function."""
        body = ["    " + p for p in prologue] + self.lines
        text = f"def {name}({args}):\n" + "\n".join(body or ["    pass"]) + "\n"
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        code = compile(text, f"<{filename}:{digest}>", "exec")
        scope = dict(self.namespace)
        exec(code, scope)  # noqa: S102 - source generated from checked rule IR, not from input
        fn = scope[name]
        fn.__source__ = text  # for tests and debugging
        return fn


def _is_literal(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and type(value) is float
    if type(value) is tuple:
        return all(_is_literal(v) for v in value)
    return type(value) in _LITERAL_TYPES


class ExprEmitter:
    """Emits statements computing an expression into ``source``; ``emit`` returns the Python expression
    (a local name or a constant) holding the value.

    ``params`` maps a ``Param`` name to the Python expression giving its value as the template sees it
    (a knowledge column left empty already replaced by its Unknown). ``row`` names the knowledge row dict
    for ``KnowledgeField`` nodes. Line fields are read once in the prologue; derived values lazily, once
    per call, through the per-line cache ``lv``."""

    def __init__(self, source: Source, params: dict | None = None, row: str | None = None,
                 upper_params: frozenset = frozenset(), reasons: bool = True):
        self.src = source
        self.reasons = reasons  # False: an unknown's reason is never read (decisions), so need not be made
        self.params = params or {}
        self.row = row
        self.upper_params = upper_params  # Param names whose slot holds has_diag prefixes upper-cased
        self.prologue: list[str] = []
        self._fields: dict[str, str] = {}
        self._derived: dict[str, str] = {}
        self._knowledge: dict[str, str] = {}
        self._diag: str | None = None

    # ---- leaves ----
    def field(self, name: str) -> str:
        if name in DERIVED_FIELDS:
            return self._derived_value(name)
        var = self._fields.get(name)
        if var is None:
            var = self._fields[name] = f"f_{len(self._fields)}"
            missing = self.src.const(Unknown(f"{name} is missing"))
            self.prologue.append(f"{var} = line.get({name!r})")
            self.prologue.append(f"if {var} is None: {var} = {missing}")
        return var

    def _derived_value(self, name: str) -> str:
        var = self._derived.get(name)
        if var is None:
            var = self._derived[name] = f"d_{len(self._derived)}"
            self.prologue.append(f"{var} = None")
        add = self.src.add
        add(f"if {var} is None:")
        add(f"    {var} = lv.get({name!r})")
        add(f"    if {var} is None:")
        inputs = _MEMO_INPUTS.get(name)
        if inputs is not None:  # the memo lookup inline (derived_value is the slow path)
            memo = self.src.const(_memos[name])
            key = f"(line.get({inputs[0]!r}), line.get({inputs[1]!r}))" if len(inputs) == 2 else \
                f"line.get({inputs[0]!r})"
            add(f"        if line.get({name!r}) is None:")
            add("            try:")
            add(f"                {var} = {memo}.get({key})")
            add("            except TypeError:")
            add("                pass")
        add(f"        if {var} is None: {var} = derived_value({name!r}, line)")
        add(f"        lv[{name!r}] = {var}")
        return var

    def diagnoses(self) -> str:
        if self._diag is None:
            self._diag = "diag"
            self.prologue.append("diag = None")
        self.src.add("if diag is None: diag = diagnoses(lv, line)")
        return "diag"

    def knowledge(self, column: str) -> str:
        var = self._knowledge.get(column)
        if var is None:
            var = self._knowledge[column] = f"k_{len(self._knowledge)}"
            missing = self.src.const(Unknown(f"knowledge column {column} is empty"))
            self.prologue.append(f"{var} = {self.row}.get({column!r})")
            self.prologue.append(f"if {var} is None: {var} = {missing}")
        return var

    # ---- expressions ----
    def emit(self, e) -> str:
        if isinstance(e, ir.Const):
            return self.src.const(e.value)
        if isinstance(e, ir.Field):
            return self.field(e.name)
        if isinstance(e, ir.Param):
            return self.params[e.name]
        if isinstance(e, ir.KnowledgeField):
            return self.knowledge(e.column)
        if isinstance(e, ir.Call):
            return self._call(e)
        if isinstance(e, ir.Op):
            return self._op(e)
        raise TypeError(f"cannot compile {type(e).__name__} for the inline screener")

    def _op(self, e: ir.Op) -> str:
        op, add = e.op, self.src.add
        if op in ("and", "or"):
            return self._logic(e)
        if op == "not":
            x = self.emit(e.args[0])
            if self.src.known(x):  # a parameter every row shares: decided here
                return self.src.const(not self.src.values[x])
            r = self.src.fresh()
            add(f"{r} = {x} if type({x}) is Unknown else (not {x})")
            return r
        if op in ("is_null", "not_null"):
            x = self.emit(e.args[0])
            if x in self.src.values:
                v = self.src.values[x]
                return self.src.const((type(v) is Unknown or v is None) == (op == "is_null"))
            r = self.src.fresh()
            add(f"{r} = (type({x}) is Unknown or {x} is None) == {op == 'is_null'}")
            return r
        if op == "neg":
            x = self.emit(e.args[0])
            r = self.src.fresh()
            add(f"if type({x}) is Unknown: {r} = {x}")
            add(f"elif isinstance({x}, Quantity): {r} = Quantity(-({x}).base_value, ({x}).dimension)")
            add(f"else: {r} = -({x})")
            return r
        return self._binary(e)

    def _logic(self, e: ir.Op) -> str:
        """Kleene and/or as the closures do it: the second side only when the first does not decide."""
        decides, other = (False, True) if e.op == "and" else (True, False)
        add, r = self.src.add, self.src.fresh()
        x = self.emit(e.args[0])
        if x in self.src.values and self.src.values[x] is decides:
            return x  # the second side is never looked at
        if x in self.src.values and self.src.values[x] is other:
            return self.emit(e.args[1])  # Kleene: (other and/or y) is y
        add(f"if {x} is {decides}: {r} = {decides}")
        add("else:")
        self.src.depth += 1
        y = self.emit(e.args[1])
        add(f"if {y} is {decides}: {r} = {decides}")
        add(f"elif {x} is {other} and {y} is {other}: {r} = {other}")
        add(f"elif type({x}) is Unknown: {r} = {x}")
        add(f"else: {r} = {y}")
        self.src.depth -= 1
        return r

    def _binary(self, e: ir.Op) -> str:
        op, add = e.op, self.src.add
        a, b = e.args
        r = self.src.fresh()
        x = self.emit(a)
        known_x = self.src.known(x)
        if not known_x:
            add(f"if type({x}) is Unknown: {r} = {x}")
            add("else:")
            self.src.depth += 1
        y = self.emit(b)
        checks = [] if self.src.known(y) else [f"type({y}) is Unknown: {r} = {y}"]
        head = "if"
        for c in checks:
            add(f"{head} {c}")
            head = "elif"
        if op in _CMP:
            self._compare(op, x, y, r, head)
        elif op in ("+", "-", "*", "/"):
            self._arith(op, x, y, r, head)
        else:
            value = f"{x} {op} {y}" if op in ("in", "not in") else \
                f"str({x}).startswith({y} if isinstance({y}, tuple) else ({y},))"
            add(f"else: {r} = {value}" if checks else f"{r} = {value}")
        if not known_x:
            self.src.depth -= 1
        return r

    def _may_be_quantity(self, *exprs) -> bool:
        return not any(v in self.src.values and type(self.src.values[v]) is not Quantity for v in exprs)

    def _compare(self, op: str, x: str, y: str, r: str, head: str) -> None:
        """Like the closures: values of one type compare directly, quantities by base value in one
        dimension; the rest (date against date-time, unlike units) as ``reference._compare``."""
        add = self.src.add
        add(f"{head} type({x}) is type({y}) and type({x}) is not Quantity: {r} = {x} {op} {y}")
        if self._may_be_quantity(x, y):
            add(f"elif type({x}) is Quantity and type({y}) is Quantity:")
            add(f"    if ({x}).dimension == ({y}).dimension: {r} = ({x}).base_value {op} ({y}).base_value")
            add(f"    else: {r} = {f'units_differ({x}, {y})' if self.reasons else 'UNITS_DIFFER'}")
        add(f"else: {r} = _compare({op!r}, {x}, {y})")

    def _arith(self, op: str, x: str, y: str, r: str, head: str) -> None:
        """``reference._arith`` with its common cases written out: plain floats, and quantities of one
        dimension or scaled by a number (made without the dataclass constructor)."""
        add = self.src.add
        number = "(type({0}) is float or type({0}) is int)"
        if op == "/":
            add(f"{head} type({x}) is float and type({y}) is float and {y} != 0: {r} = {x} / {y}")
        else:
            add(f"{head} type({x}) is float and type({y}) is float: {r} = {x} {op} {y}")
        if self._may_be_quantity(x, y):
            same = f"type({x}) is Quantity and type({y}) is Quantity and ({x}).dimension == ({y}).dimension"
            if op in ("+", "-"):
                add(f"elif {same}: {r} = _q(({x}).base_value {op} ({y}).base_value, ({x}).dimension)")
            elif op == "/":
                add(f"elif {same} and ({y}).base_value != 0: {r} = ({x}).base_value / ({y}).base_value")
                add(f"elif type({x}) is Quantity and {number.format(y)} and {y} != 0: "
                    f"{r} = _q(({x}).base_value / {y}, ({x}).dimension)")
            else:
                for q, n in ((x, y), (y, x)):  # q.base_value * n, in the reference's order
                    add(f"elif type({q}) is Quantity and {number.format(n)}: "
                        f"{r} = _q(({q}).base_value * {n}, ({q}).dimension)")
        add(f"else: {r} = _arith({op!r}, {x}, {y})")

    def _call(self, e: ir.Call) -> str:
        add, r = self.src.add, self.src.fresh()
        if e.func == "coalesce":
            v = self.emit(e.args[0])
            add(f"if type({v}) is Unknown or {v} is None:")
            self.src.depth += 1
            w = self.emit(e.args[1])
            add(f"{r} = {w}")
            self.src.depth -= 1
            add(f"else: {r} = {v}")
            return r
        if e.func == "has_diag":
            arg = e.args[0]
            p = self.emit(arg)
            fast = isinstance(arg, ir.Param) and arg.name in self.upper_params
            add(f"if type({p}) is Unknown: {r} = {p}")
            add("else:")
            self.src.depth += 1
            codes = self.diagnoses()
            add(f"{r} = {'has_diag_upper' if fast else 'has_diag'}({codes}, {p})")
            self.src.depth -= 1
            return r
        values = [self.emit(a) for a in e.args]  # days_between, abs, min, max: rare in templates
        types = self.src.const(tuple(a.type for a in e.args))
        head = "if"
        for v in values:
            add(f"{head} type({v}) is Unknown: {r} = {v}")
            head = "elif"
        add(f"else: {r} = call_generic({e.func!r}, [{', '.join(values)}], {types}, line)")
        return r


def has_diag_params(*exprs) -> frozenset:
    """Param names used only as the argument of has_diag (their slots can hold upper-cased prefixes)."""
    in_diag, elsewhere = set(), set()

    def visit(e, under_diag: bool):
        if isinstance(e, ir.Param):
            (in_diag if under_diag else elsewhere).add(e.name)
        elif isinstance(e, (ir.Op, ir.Call)):
            diag = isinstance(e, ir.Call) and e.func == "has_diag"
            for a in e.args:
                visit(a, diag)
    for e in exprs:
        if e is not None:
            visit(e, False)
    return frozenset(in_diag - elsewhere)


def family_function(scope, condition, slots: dict, constants: dict, upper: frozenset, dated: bool, label: str):
    """A family's decision function ``decide(line, lv, rows, hits)`` as generated Python: for each candidate
    row (rule index, point[, effective from, to], *parameters at ``slots``) the reference's outcome
    (ReferenceEngine._evaluate_point), appended to ``hits`` when it is a violation or insufficient data.
    ``constants``: parameters every row shares, baked in; ``upper``: parameters holding has_diag prefixes
    upper-cased at load."""
    from .findings import INSUFFICIENT, VIOLATION
    src = Source()
    params = {n: src.const(v) for n, v in constants.items()}
    params.update({n: f"p_{i}" for n, i in slots.items()})
    em = ExprEmitter(src, params, upper_params=upper, reasons=False)
    src.depth = 2
    add = src.add
    if dated:
        add("day = None")
        add("if ef is not None or et is not None:")
        add("    if sday is None: sday = service_date(line)")
        add("    day = sday")
        add("    if type(day) is not Unknown and ((ef is not None and day < ef) or (et is not None and day > et)):")
        add("        continue")
    if scope is not None:
        s = em.emit(scope)
        add(f"if type({s}) is Unknown:")
        add(f"    hits.append((ri, pt, {INSUFFICIENT!r}))")
        add("    continue")
        add(f"if not {s}: continue")
    c = em.emit(condition)
    add(f"if type({c}) is Unknown: hits.append((ri, pt, {INSUFFICIENT!r}))")
    if dated:
        add("elif type(day) is Unknown:")
        add(f"    if {c}: hits.append((ri, pt, {INSUFFICIENT!r}))")
    add(f"elif {c}: hits.append((ri, pt, {VIOLATION!r}))")
    width = 1 + max(slots.values(), default=3 if dated else 1)
    names = ["ri", "pt"] + (["ef", "et"] if dated else []) + ["_"] * (width - (4 if dated else 2))
    for n, i in slots.items():
        names[i] = params[n]
    prologue = em.prologue + (["sday = None"] if dated else []) + [f"for {', '.join(names)} in rows:"]
    return src.function("decide", "line, lv, rows, hits", prologue, label)
