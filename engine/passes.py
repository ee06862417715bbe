"""Compile passes over rule IR: a tuple of small functions ``Planned -> Planned``, run in order.

    fold_constants -> normalize -> dedupe_conjuncts -> split_key -> lift_constants

``normalize`` only reorders and rewrites under three-valued logic identities (De Morgan and
double negation hold in Kleene logic), so outcomes never change; messages and reasons are always
rendered from the original rule.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from claimaudit.dsl import ir
from claimaudit.dsl.schema import LINE_IDENTITY

from .reference import Env, evaluate
from .values import is_unknown

KEY_FIELDS = tuple(f for f in LINE_IDENTITY if f != "feedetl_sn")  # fields every line has a value for


@dataclass(frozen=True)
class KeyTest:
    """The indexable part of a rule: ``field`` equals / starts with one of ``values`` (or a table's key)."""

    field: str
    match: str  # exact | prefix
    values: tuple = ()  # constant keys of a rule written without a table
    table: str | None = None  # keyed through a knowledge table's key column


@dataclass(frozen=True)
class Planned:
    rule_index: int
    rule: ir.Rule
    scope: object | None
    condition: object
    amount: object
    key: KeyTest | None = None
    constants: tuple = ()  # ((param name, value, type), ...) lifted out of the templates
    unindexed_reason: str | None = None


def planned(rule_index: int, rule: ir.Rule) -> Planned:
    return Planned(rule_index, rule, rule.scope, rule.condition, rule.amount)


def _map(p: Planned, fn) -> Planned:
    return replace(p, scope=fn(p.scope) if p.scope is not None else None, condition=fn(p.condition),
                   amount=fn(p.amount))


# ---- fold ------------------------------------------------------------------------------------


def _fold(expr):
    if not isinstance(expr, (ir.Op, ir.Call)):
        return expr
    args = tuple(_fold(a) for a in expr.args)
    expr = replace(expr, args=args)
    if isinstance(expr, ir.Op) and expr.op in ("and", "or"):
        absorbing, neutral = (False, True) if expr.op == "and" else (True, False)
        consts = [a for a in args if isinstance(a, ir.Const) and a.type == "bool"]
        if any(c.value is absorbing for c in consts):
            return ir.Const(absorbing, "bool", expr.span)
        rest = [a for a in args if not (isinstance(a, ir.Const) and a.value is neutral)]
        if len(rest) == 1:
            return rest[0]
        if not rest:
            return ir.Const(neutral, "bool", expr.span)
        return expr
    if isinstance(expr, ir.Call) and expr.func in ("has_diag", "coalesce"):
        return expr  # these read the line even with constant arguments
    if all(isinstance(a, ir.Const) for a in args) and not (isinstance(expr, ir.Op) and expr.op in ("is_null", "not_null")):
        value = evaluate(expr, Env({}, None))
        if not is_unknown(value):
            return ir.Const(value, expr.type, expr.span)
    return expr


def fold_constants(p: Planned) -> Planned:
    return _map(p, _fold)


# ---- normalize ----------------------------------------------------------------------------------

_NEGATED = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">", "in": "not in", "not in": "in",
            "is_null": "not_null", "not_null": "is_null"}


def _push_not(expr):
    """not over a comparison flips it; De Morgan over and/or; double negation cancels."""
    if not isinstance(expr, ir.Op):
        return expr
    if expr.op == "not":
        inner = expr.args[0]
        if isinstance(inner, ir.Op):
            if inner.op == "not":
                return _push_not(inner.args[0])
            if inner.op in _NEGATED:  # exact under Kleene logic: unknown stays unknown either way
                return replace(inner, op=_NEGATED[inner.op], args=tuple(_push_not(a) for a in inner.args))
            if inner.op in ("and", "or"):
                flipped = "or" if inner.op == "and" else "and"
                return ir.Op(flipped, tuple(_push_not(ir.Op("not", (a,), "bool")) for a in inner.args), "bool",
                             inner.span)
        return replace(expr, args=(_push_not(inner),))
    return replace(expr, args=tuple(_push_not(a) for a in expr.args))


def conjuncts(expr) -> list:
    if isinstance(expr, ir.Op) and expr.op == "and":
        return [c for a in expr.args for c in conjuncts(a)]
    return [expr]


def conjunction(items: list):
    if not items:
        return ir.Const(True, "bool")
    out = items[0]
    for c in items[1:]:
        out = ir.Op("and", (out, c), "bool")
    return out


def shape(expr) -> str:
    """The structure of an expression with constants blanked: the sort key of conjuncts."""
    return ir.show(_lift(expr, {}, blank=True))


def normalize(p: Planned) -> Planned:
    def canon(expr):
        if expr is None or expr.type != "bool":
            return expr
        return conjunction(sorted(conjuncts(_push_not(expr)), key=shape))
    return replace(p, scope=canon(p.scope), condition=canon(p.condition))


# ---- dedupe -------------------------------------------------------------------------------------


def dedupe_conjuncts(p: Planned) -> Planned:
    def dedupe(expr):
        if expr is None or expr.type != "bool":
            return expr
        seen = []
        for c in conjuncts(expr):
            if c not in seen:
                seen.append(c)
        return conjunction(seen)
    return replace(p, scope=dedupe(p.scope), condition=dedupe(p.condition))


# ---- split the key ---------------------------------------------------------------------------------


def _key_of(c) -> KeyTest | None:
    if not (isinstance(c, ir.Op) and c.op in ("startswith", "==", "in")):
        return None
    left, right = c.args
    if not (isinstance(left, ir.Field) and left.name in KEY_FIELDS and isinstance(right, ir.Const)):
        return None
    if c.op == "==" and right.type == "text":
        return KeyTest(left.name, "exact", (right.value,))
    if c.op == "in" and right.type == "set:text":
        return KeyTest(left.name, "exact", tuple(right.value))
    if c.op == "startswith":
        values = right.value if isinstance(right.value, tuple) else (right.value,)
        return KeyTest(left.name, "prefix", tuple(values))
    return None


def split_key(p: Planned) -> Planned:
    """Take the indexable test out of the condition; what is left is the residual."""
    lk = p.rule.lookup
    if lk is not None:
        if isinstance(lk.key, ir.Field) and lk.key.name in KEY_FIELDS:
            return replace(p, key=KeyTest(lk.key.name, lk.match, (), lk.table))
        return replace(p, unindexed_reason=f"lookup key {ir.show(lk.key)} is not one of {', '.join(KEY_FIELDS)}")
    parts = conjuncts(p.condition)
    for i, c in enumerate(parts):
        key = _key_of(c)
        if key is not None:
            return replace(p, key=key, condition=conjunction(parts[:i] + parts[i + 1:]))
    return replace(p, unindexed_reason=f"its condition has no top-level 'and' test of {' or '.join(KEY_FIELDS)} "
                                       "against a constant (==, in, startswith)")


# ---- lift constants into parameters ----------------------------------------------------------------

_STRUCTURAL = ("null",)


def _lift(expr, consts: dict, blank=False):
    if isinstance(expr, ir.Const) and expr.type not in _STRUCTURAL and not (expr.type == "bool"):
        if blank:
            return ir.Param("_", expr.type)
        name = f"c{len(consts)}"
        consts[name] = (expr.value, expr.type)
        return ir.Param(name, expr.type)
    if isinstance(expr, ir.KnowledgeField):
        return ir.Param(f"k.{expr.column}", expr.type)
    if isinstance(expr, (ir.Op, ir.Call)):
        return replace(expr, args=tuple(_lift(a, consts, blank) for a in expr.args))
    return expr


def lift_constants(p: Planned) -> Planned:
    consts: dict = {}
    scope = _lift(p.scope, consts) if p.scope is not None else None
    condition = _lift(p.condition, consts)
    amount = _lift(p.amount, consts)
    return replace(p, scope=scope, condition=condition, amount=amount,
                   constants=tuple((n, v, t) for n, (v, t) in consts.items()))


PASSES = (fold_constants, normalize, dedupe_conjuncts, split_key, lift_constants)


def run_passes(p: Planned, passes=PASSES) -> Planned:
    for pass_ in passes:
        p = pass_(p)
    return p
