"""Rule IR: the checked, resolved form of a rule. Immutable and hashable; spans never take part
in equality, so two rules that differ only in where they were written compare equal.

Types are strings: text, number, date, datetime, bool, list, null, set:<elem>, quantity,
quantity:<dimension>.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .ast import Span


@dataclass(frozen=True)
class Const:
    value: Any
    type: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Field:
    """A claim field or a derived value of the line."""

    name: str
    type: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class KnowledgeField:
    """A column of the knowledge row the rule's lookup matched."""

    column: str
    type: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Param:
    """A slot of a family template: a knowledge column (``k.col``) or a lifted constant (``c0``)."""

    name: str
    type: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple
    type: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Op:
    """and, or, not, neg, is_null, not_null, == != < <= > >=, in, not in, startswith, + - * /."""

    op: str
    args: tuple
    type: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Lookup:
    table: str
    key: Any  # expression giving the value matched against the table's key column
    match: str  # exact | prefix


@dataclass(frozen=True)
class Template:
    """A message: literal text and expressions, in order."""

    parts: tuple  # of str | expression
    source: str


@dataclass(frozen=True)
class Basis:
    """The knowledge point a rule written without a table rests on."""

    text: str
    source: str | None


@dataclass(frozen=True)
class ExampleLine:
    label: str
    fields: tuple  # of (name, value)


@dataclass(frozen=True)
class Example:
    name: str
    patient: tuple  # of (name, value)
    encounter: tuple
    lines: tuple  # of ExampleLine
    expect_flagged: tuple  # labels
    expect_insufficient: tuple
    expect_amount: float | None
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    rule_class: str
    version: str
    result_type: str  # 明确 | 可疑
    severity: str  # block | warn | inform
    stages: frozenset
    effective_from: dt.date | None
    effective_to: dt.date | None
    scope: Any  # expression or None
    lookup: Lookup | None
    condition: Any
    message: Template
    amount: Any
    basis: Basis | None
    examples: tuple = ()
    span: Span | None = field(default=None, compare=False)

    def fields_used(self) -> frozenset:
        """Claim and derived fields the rule reads (for required-column checks and evidence)."""
        out: set[str] = set()
        for expr in (self.scope, self.condition, self.amount, self.lookup.key if self.lookup else None,
                     *[p for p in self.message.parts if not isinstance(p, str)]):
            _collect(expr, out)
        return frozenset(out)


def _collect(expr, out: set) -> None:
    if isinstance(expr, Field):
        out.add(expr.name)
    elif isinstance(expr, (Op, Call)):
        if isinstance(expr, Call) and expr.func == "has_diag":
            out.update(("dscg_maindiag_code", "diag_codes"))
        for a in expr.args:
            _collect(a, out)


def walk(expr):
    """Every node of an expression, depth first."""
    yield expr
    if isinstance(expr, (Op, Call)):
        for a in expr.args:
            yield from walk(a)


def show(expr) -> str:
    """Readable one-line text of an expression (explain output, golden files)."""
    if expr is None:
        return "-"
    if isinstance(expr, Const):
        v = expr.value
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, tuple):
            return "{" + ", ".join(f'"{x}"' if isinstance(x, str) else str(x) for x in v) + "}"
        return str(v)
    if isinstance(expr, Field):
        return expr.name
    if isinstance(expr, KnowledgeField):
        return f"k.{expr.column}"
    if isinstance(expr, Param):
        return f"${expr.name}"
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(show(a) for a in expr.args)})"
    if expr.op in ("not", "neg"):
        return f"{'not ' if expr.op == 'not' else '-'}{show(expr.args[0])}"
    if expr.op in ("is_null", "not_null"):
        return f"{show(expr.args[0])} {'==' if expr.op == 'is_null' else '!='} null"
    return f"({show(expr.args[0])} {expr.op} {show(expr.args[1])})"
