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
    side: str = "key"  # key | partner | either: which column of a pair table this line is matched on


@dataclass(frozen=True)
class WindowValue:
    """What a rule's cross-line construct supplies to this line: an aggregate of its window (count,
    quantity, amount, days, span_days, supply_days, overlap_days, codes, encounters) or, for pair and
    requires, whether a partner line is present (partner)."""

    name: str
    type: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Window:
    """A rule's view of the other lines (see docs/language.md, "Cross-line rules").

    kind window: lines of ``scope`` (``same`` knowledge row / knowledge value / field as this line, or all
    lines) satisfying ``where``, up to and including this line in the total order unless ``whole``.
    kind pair: this line matched a row's partner side; a partner is a line in scope matching its key side
    (``unordered``: either side, and the partner must come first). kind requires: this line matched the
    key side; a partner is a line in scope matching the row's partner side."""

    kind: str  # window | pair | requires
    scope: str  # encounter | prescription | day | month | quarter | year | insurance_year | patient | institution
    rolling_days: Any = None  # expression (number of days) or None
    whole: bool = False
    same: tuple | None = None  # ("point",) | ("knowledge", column) | ("field", name) | None for all lines
    where: Any = None
    unordered: bool = False

    @property
    def looks_back(self) -> bool:
        """Partners and window lines come from before this line (patient history), not the whole group."""
        return self.scope in ("patient", "institution") or self.rolling_days is not None


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
    encounter: str | None = None  # label of a named encounter of the example, None for the default one


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
    encounters: tuple = ()  # of (label, fields): further encounters of the same patient


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
    window: Window | None = None

    def fields_used(self) -> frozenset:
        """Claim and derived fields the rule reads (for required-column checks and evidence)."""
        out: set[str] = set()
        for expr in (self.scope, self.condition, self.amount, self.lookup.key if self.lookup else None,
                     *[p for p in self.message.parts if not isinstance(p, str)]):
            _collect(expr, out)
        return frozenset(out)

    def window_fields(self) -> frozenset:
        """Fields the cross-line construct reads from every line of its window (identity, order, scope)."""
        w = self.window
        if w is None:
            return frozenset()
        out = {"psn_no", "mdtrt_id", "feedetl_sn", "fee_ocur_time"}
        out.update(SCOPE_FIELDS.get(w.scope, ()))
        for expr in (w.where, w.rolling_days):
            _collect(expr, out)
        if w.same and w.same[0] == "field":
            out.add(w.same[1])
        out.update(("cnt", "det_item_fee_sumamt", "prd_days", "med_list_codg") if w.kind == "window" else ())
        return frozenset(out)


SCOPE_FIELDS = {"prescription": ("rxno",), "institution": ("fixmedins_code",)}


def _collect(expr, out: set) -> None:
    if isinstance(expr, Field):
        if not expr.name.startswith("@"):  # message specials ({amount}, {involved}) are not claim fields
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
    if isinstance(expr, WindowValue):
        return f"w.{expr.name}"
    if isinstance(expr, Param):
        return f"${expr.name}"
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(show(a) for a in expr.args)})"
    if expr.op in ("not", "neg"):
        return f"{'not ' if expr.op == 'not' else '-'}{show(expr.args[0])}"
    if expr.op in ("is_null", "not_null"):
        return f"{show(expr.args[0])} {'==' if expr.op == 'is_null' else '!='} null"
    return f"({show(expr.args[0])} {expr.op} {show(expr.args[1])})"
