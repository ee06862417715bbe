"""Planner: rules that differ only in their constants become one family — a template condition plus
a parameter table — so execution cost grows with families × lines, not rules × lines.

A family is keyed by an expression over the line (usually ``med_list_codg``) matched exactly or by
prefix against each parameter row's key; rules with no indexable test fall back to a family that
every line meets ("all"), and ``explain`` says why.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from claimaudit.dsl import ir
from claimaudit.dsl.ruleset import Ruleset

from .passes import Planned, planned, run_passes

MATCH_ALL = "all"


@dataclass
class Family:
    family_id: int
    key_expr: object | None  # expression over the line giving the value matched against row keys
    match: str  # exact | prefix | all
    scope: object | None  # template (Param slots)
    condition: object
    amount: object
    params: tuple  # ((name, type), ...)
    source: str  # "table:<name>" for a table-driven rule, "rules" for rules written one by one
    rule_index: list = field(default_factory=list)  # per parameter row
    point: list = field(default_factory=list)  # knowledge-table row per parameter row, -1 if none
    keys: list = field(default_factory=list)  # key value per parameter row (None for "all")
    values: dict = field(default_factory=dict)  # param name -> list of values per row
    fallback_reason: str | None = None

    def __len__(self) -> int:
        return len(self.rule_index)

    @property
    def rules(self) -> list:
        return sorted(set(self.rule_index))

    def add_row(self, rule_index: int, point: int, key, values: dict) -> None:
        self.rule_index.append(rule_index)
        self.point.append(point)
        self.keys.append(key)
        for name, _ in self.params:
            self.values.setdefault(name, []).append(values.get(name))


@dataclass
class Plan:
    ruleset: Ruleset
    families: list
    planned: tuple  # per rule, after the passes

    def explain(self) -> str:
        return explain(self)


def template_params(p: Planned) -> tuple:
    """Constants lifted out of the templates, then the knowledge columns they read, in a stable order."""
    found = {}
    for expr in (p.scope, p.condition, p.amount):
        for node in ir.walk(expr) if expr is not None else ():
            if isinstance(node, ir.Param) and node.name.startswith("k."):
                found[node.name] = node.type
    return tuple((n, t) for n, _, t in p.constants) + tuple(sorted(found.items()))


def _family_key(p: Planned) -> tuple:
    params = template_params(p)
    # a cross-line rule is a family of its own (its window is not a parameter)
    alone = p.rule_index if p.rule.window is not None else None
    if p.key is None:
        return (None, MATCH_ALL, alone, p.scope, p.condition, p.amount, params, p.rule.lookup)
    key_expr = p.rule.lookup.key if p.rule.lookup else ir.Field(p.key.field, "text")
    # a table-driven rule is a family of its own: its rows are the table's rows
    own = p.rule_index if p.key.table or alone is not None else None
    return (key_expr, p.key.match, own, p.scope, p.condition, p.amount, params, None)


def build_plan(ruleset: Ruleset) -> Plan:
    done = tuple(run_passes(planned(i, r)) for i, r in enumerate(ruleset.rules))
    groups: dict[tuple, Family] = {}
    for p in done:
        gk = _family_key(p)
        fam = groups.get(gk)
        if fam is None:
            key_expr, match = gk[0], gk[1]
            lk = p.rule.lookup
            if p.key is None and lk is not None:  # unindexed lookup: match through the table per line
                key_expr, match = lk.key, lk.match
            fam = Family(len(groups), key_expr, match, p.scope, p.condition, p.amount, gk[6],
                         f"table:{lk.table}" if lk else "rules",
                         fallback_reason=p.unindexed_reason if p.key is None else None)
            groups[gk] = fam
        _add_rows(fam, p, ruleset)
    return Plan(ruleset, list(groups.values()), done)


def _add_rows(fam: Family, p: Planned, ruleset: Ruleset) -> None:
    consts = {n: v for n, v, _ in p.constants}
    lk = p.rule.lookup
    if lk is not None:
        table = ruleset.tables[lk.table]
        cols = [n[2:] for n, _ in fam.params if n.startswith("k.")]
        for i, row in enumerate(table.rows):
            values = dict(consts)
            values.update({f"k.{c}": row.get(c) for c in cols})
            fam.add_row(p.rule_index, i, row.get(table.key), values)
    elif p.key is not None:
        for key in p.key.values:
            fam.add_row(p.rule_index, -1, key, consts)
    else:
        fam.add_row(p.rule_index, -1, None, consts)


def explain(plan: Plan) -> str:
    rules = plan.ruleset.rules
    lines = [f"{plan.ruleset.name} {plan.ruleset.version}: {len(rules)} rule(s), "
             f"{sum(len(f) for f in plan.families)} parameter row(s) in {len(plan.families)} family(ies)"]
    for fam in plan.families:
        codes = [rules[i].code for i in fam.rules]
        shown = ", ".join(codes[:5]) + (f" … (+{len(codes) - 5})" if len(codes) > 5 else "")
        key = "every line" if fam.match == MATCH_ALL else f"{ir.show(fam.key_expr)} {fam.match}"
        lines.append(f"family {fam.family_id}: {len(fam)} row(s) from {len(codes)} rule(s) [{fam.source}]  key: {key}")
        lines.append(f"  rules:     {shown}")
        if fam.scope is not None:
            lines.append(f"  scope:     {ir.show(fam.scope)}")
        lines.append(f"  condition: {ir.show(fam.condition)}")
        lines.append(f"  amount:    {ir.show(fam.amount)}")
        if fam.params:
            lines.append(f"  params:    {', '.join(f'${n}:{t}' for n, t in fam.params)}")
        w = rules[fam.rules[0]].window if len(fam.rules) == 1 else None
        if w is not None:
            lines.append(f"  window:    {describe_window(w)} (after all batches, over their candidate lines)")
        if fam.fallback_reason:
            lines.append(f"  fallback:  {fam.fallback_reason}")
    fallback = [f for f in plan.families if f.fallback_reason]
    lines.append(f"{len(fallback)} fallback family(ies) covering "
                 f"{sum(len(f.rules) for f in fallback)} rule(s): evaluated on every line")
    return "\n".join(lines)


def describe_window(w: ir.Window) -> str:
    rows = {None: "lines", "point": "same knowledge row"}.get(w.same[0] if w.same else None) if (
        w.same is None or w.same[0] == "point") else f"same {w.same[-1]}"
    what = {"window": f"{'all ' if w.whole else ''}{rows}", "pair": "pair partner", "requires": "required partner"}[w.kind]
    scope = w.scope + (f" rolling {ir.show(w.rolling_days)} days" if w.rolling_days is not None else "")
    extra = (" where " + ir.show(w.where) if w.where is not None else "") + (" unordered" if w.unordered else "")
    return f"{w.kind}: {what} within {scope}{extra}"
