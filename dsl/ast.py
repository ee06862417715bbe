"""Typed, immutable syntax tree of a rule file. Every node carries the span it came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Span:
    file: str
    line: int
    col: int  # 1-based, in characters
    end_line: int
    end_col: int  # exclusive

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


# ---- expressions -----------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: Any  # str | float | int | date | datetime | bool | None
    kind: str  # text | number | date | datetime | bool | null
    span: Span


@dataclass(frozen=True)
class QuantityLit:
    number: float
    unit: str
    span: Span
    unit_span: Span


@dataclass(frozen=True)
class Name:
    name: str
    span: Span


@dataclass(frozen=True)
class Qualified:
    qualifier: str  # the lookup binding, e.g. ``k``
    name: str
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple
    span: Span


@dataclass(frozen=True)
class SetLit:
    items: tuple
    span: Span


@dataclass(frozen=True)
class Unary:
    op: str  # "not" | "neg"
    operand: Any
    span: Span


@dataclass(frozen=True)
class Binary:
    op: str  # and or == != < <= > >= in "not in" startswith + - * /
    left: Any
    right: Any
    span: Span


# ---- declarations ----------------------------------------------------------------


@dataclass(frozen=True)
class Meta:
    key: str
    value: Any
    span: Span


@dataclass(frozen=True)
class RulesetDecl:
    name: str
    meta: tuple  # of Meta
    span: Span


@dataclass(frozen=True)
class TypeSpec:
    base: str
    arg: str | None
    span: Span


@dataclass(frozen=True)
class ColumnDecl:
    name: str
    type: TypeSpec
    role: str | None
    is_key: bool
    match: str | None  # exact | prefix, only for the key (and partner) column
    span: Span
    role_span: Span | None = None
    match_span: Span | None = None
    is_partner: bool = False  # the B side of a pair / requires table


@dataclass(frozen=True)
class TableDecl:
    name: str
    path: str
    columns: tuple  # of ColumnDecl
    span: Span
    path_span: Span


@dataclass(frozen=True)
class Attr:
    """One keyword statement of a rule (``result 明确``); ``value`` depends on the keyword."""

    keyword: str
    value: Any
    span: Span


@dataclass(frozen=True)
class Lookup:
    binding: str
    table: str
    key: Any
    span: Span
    table_span: Span


@dataclass(frozen=True)
class WindowScope:
    name: str  # encounter | prescription | day | month | quarter | year | insurance_year | patient | institution
    rolling: Any  # expression giving N days, or None
    span: Span


@dataclass(frozen=True)
class CrossLine:
    """``window``, ``pair`` or ``requires``: what a rule sees of the other lines."""

    kind: str  # window | pair | requires
    binding: str
    scope: WindowScope
    span: Span
    whole: bool = False  # window: aggregate over the whole group, not up to this line
    same: tuple | None = None  # window: ("k",) same knowledge row, ("k", "col"), or ("field",); None = lines
    where: Any = None  # window: condition on the lines counted
    table: str | None = None  # pair / requires
    key: Any = None
    unordered: bool = False
    table_span: Span | None = None
    same_span: Span | None = None


@dataclass(frozen=True)
class FieldValue:
    name: str
    value: Any
    span: Span


@dataclass(frozen=True)
class Expectation:
    kind: str  # none | flagged | insufficient
    labels: tuple
    amount: float | None
    span: Span


@dataclass(frozen=True)
class Example:
    name: str
    patient: tuple  # of FieldValue
    encounter: tuple
    lines: tuple  # of (label, tuple[FieldValue], Span, encounter label or None)
    expectations: tuple
    span: Span
    encounters: tuple = ()  # of (label, tuple[FieldValue], Span): further encounters of the patient


@dataclass(frozen=True)
class RuleDecl:
    code: str
    name: str
    attrs: tuple  # of Attr, in source order
    examples: tuple
    span: Span
    code_span: Span

    def attr(self, keyword: str) -> Attr | None:
        for a in self.attrs:
            if a.keyword == keyword:
                return a
        return None


@dataclass(frozen=True)
class RuleFile:
    path: str
    text: str
    ruleset: tuple  # RulesetDecl (0 or more; more than one is an error)
    tables: tuple
    rules: tuple
    diagnostics: tuple = field(default=())
