"""Rendering a cross-line violation without the reference's interpretation.

Per rule, the message template, the amount, its explanation by values (``reference.expr_text``) and the
evidence are compiled once into closures (``inline.compile_expr`` over the rule's own IR, knowledge columns
and window values read as parameters ``k.col`` / ``w.name``, as inline_cross decides them); per knowledge
row what never changes (the knowledge point, its evidence, the finding id's prefix, the parameters the
message and amount read, and what the message and the amount's text show of the row alone) is worked out on
first use. Rendering a hit is then one kernel call (kernels/_crossrender.pyx, twin crossrender_twin.py):
the amount (an amount that is one claim field read as it is), the parts that read the line or the window,
the message, evidence and involved lines joined, and the finding id.

The result is the finding ``ReferenceEngine._finding`` gives for a violation, field for field, from the
same window values and involved lines (tests/test_inline_cross.py compares every finding with the
reference's). Insufficient data is not rendered here: the reference renders it and finds the reason.
"""
from __future__ import annotations

import datetime as dt

from claimaudit.dsl import ir
from claimaudit.dsl.schema import CLAIM_FIELDS

from . import reference as ref
from .findings import ROLE_INVOLVED, ROLE_VIOLATING, VIOLATION, Finding
from .inline_render import format_fast
from .profiles import mark_with_profile
from .values import Unknown, format_money, format_value

_ISO: dict = {}  # date -> its ISO text (date.isoformat is slow; days of service repeat)


def _iso(t) -> str:
    d = t.date() if isinstance(t, dt.datetime) else t
    text = _ISO.get(d)
    if text is None:
        if len(_ISO) >= 10_000:
            _ISO.clear()
        text = _ISO[d] = d.isoformat()
    return text


def _involved_text(involved) -> str:
    """``{involved}`` in a message, as reference._render shows it."""
    return "、".join(f"【{m.get('hilist_name') or m.get('med_list_codg') or m.get('feedetl_sn')}】"
                    for m in involved)


class CrossRenderer:
    """The violations of one cross-line rule, as the reference renders them."""

    def __init__(self, rule: ir.Rule, table, reference: ref.ReferenceEngine, profile, compile_expr, as_params,
                 wkeys: tuple, kernel):
        """``wkeys``: the window values the rule reads, as parameters (``w.<name>``); ``kernel``: the module that
        assembles findings (kernels.crossrender)."""
        self.rule, self.table, self.profile, self.wkeys = rule, table, profile, wkeys
        facts = reference.facts(rule)
        self.evidence_fields = facts.evidence_fields
        self.window_evidence = tuple(f"w.{n}" for n in facts.window_values)
        self.knowledge_columns = facts.knowledge_columns
        self.amount_names = facts.amount_names
        self.amount = compile_expr(as_params(rule.amount))
        self.amount_text = ref.expr_text_parts(rule.amount, lambda e: (e, compile_expr(as_params(e))))
        self.message = _message_parts(rule, compile_expr, as_params)
        # the message shows {amount}, {rule_code} ...: those values are gathered for it (else not)
        self.message_extra = any(isinstance(p, ir.Field) and p.name.startswith("@") and p.name != "@involved"
                                 for p in rule.message.parts)
        self.location = f"{rule.span.file}:{rule.span.line}" if rule.span else ""
        # the usual amount is one claim field of the line (its in-scope amount): read and shown as it is, without
        # the closures; and where neither it nor the message reads the row or the window, they are not gathered
        amount = rule.amount
        self.amount_field = amount.name if isinstance(amount, ir.Field) and amount.name in CLAIM_FIELDS else None
        self.reads_row = self.amount_field is None or not all(_shown_without_row(p) for p in rule.message.parts)
        cols = []  # knowledge columns the message and amount read (as parameters)
        for e in (rule.amount, *[p for p in rule.message.parts if not isinstance(p, str)]):
            for node in ir.walk(e) if e is not None else ():
                if isinstance(node, ir.KnowledgeField) and node.column not in cols:
                    cols.append(node.column)
        self.columns = tuple(cols)
        self._points: dict = {}
        # every field of the finding, in the order the reference's has them: each violation copies it and sets
        # what varies (a copy of a dict of the same keys is cheaper than building one)
        self.static = {"rule_code": rule.code, "rule_name": rule.name, "rule_class": rule.rule_class,
                       "rule_version": rule.version, "result_type": rule.result_type, "severity": rule.severity,
                       "rule_location": self.location, "outcome": VIOLATION, "reason": None,
                       "profile": None, "shadow": False, "exemption": None}
        template = dict.fromkeys(("finding_id", "message", "line_id", "mdtrt_id", "psn_no", "fixmedins_code",
                                  "bilg_dept_codg", "bilg_dr_codg", "med_list_codg", "service_date", "knowledge",
                                  "evidence", "amount", "amount_formula", "lines"))
        self.program = kernel.Program({**self.static, **template}, tuple(self.evidence_fields), format_fast, _iso,
                                      ROLE_VIOLATING, ROLE_INVOLVED)
        self.program.bind(self._points, self.point, wkeys, self.window_evidence, self.reads_row, self.amount_field,
                          self.amount, self.amount_names, self._extra if self.message_extra else None, Finding, Unknown,
                          None if profile is None else (lambda f: mark_with_profile(f, profile)))
        # the finding on ``env.line`` for knowledge row ``index`` (-1: none) with the window's values (by
        # ``w.<name>``, or an Unknown for the whole window) and its involved lines (crossrender_twin.violation)
        self.violation = self.program.violation

    def _extra(self, amount, knowledge_text: str, knowledge_source: str) -> dict:
        """The finding's own values a message shows ({amount}, {rule_code} ...)."""
        return {"amount": format_money(amount), "rule_code": self.rule.code, "rule_name": self.rule.name,
                "knowledge_text": knowledge_text, "knowledge_source": knowledge_source}

    def point(self, index: int) -> tuple:
        """(knowledge point, id prefix, knowledge evidence, parameters, text, source, message parts, amount text
        parts) of a row (-1: none); what the message and the amount's text show of the row alone is shown once."""
        got = self._points.get(index)
        if got is None:
            rule, table = self.rule, self.table
            point = (table, index) if table is not None else None
            kp = ref._knowledge_point(rule, point)
            prefix = f"{rule.code}\x1f{f'{kp.table}:{kp.file_row}' if kp and kp.table else '-'}\x1f"
            row = table.rows[index] if table is not None else None
            evidence = () if row is None else tuple((f"k.{c}", format_value(row.get(c)))
                                                    for c in self.knowledge_columns)
            params = {f"k.{c}": (row or {}).get(c) for c in self.columns}
            env = ref.Env({}, params)  # what a part reading only the row sees (no line, no window)
            message = _joined([format_fast(p[2](env)) if type(p) is tuple and p[0] is _ROW else p
                               for p in self.message])
            amount_text = _joined([format_fast(p[1](env)) if type(p) is tuple and _of_row(p[0]) else p
                                   for p in self.amount_text])
            if all(type(p) is str for p in amount_text):  # the row alone: one text
                amount_text = "".join(amount_text)
            got = self._points[index] = (kp, prefix, evidence, params, (kp.text or "") if kp else "",
                                         (kp.source or "") if kp else "", message, amount_text)
        return got

_ROW = object()  # marks a message part that reads only the knowledge row (and constants): shown once per row


def _of_row(expr) -> bool:
    """Whether an expression's value depends on the knowledge row alone (constants, its columns, operators)."""
    return all(isinstance(n, (ir.Const, ir.KnowledgeField, ir.Op)) for n in ir.walk(expr))


def _shown_without_row(part) -> bool:
    """Whether a message part is shown without the knowledge row or window values gathered per violation:
    texts, a claim field, ``{involved}`` and the finding's own values, and parts of the row alone (shown once
    per row by ``point``)."""
    if isinstance(part, str):
        return True
    if isinstance(part, ir.Field):
        return part.name.startswith("@") or part.name in CLAIM_FIELDS
    return _of_row(part)


def _joined(parts: list) -> tuple:
    """Message or amount-text parts with adjacent texts joined."""
    out: list = []
    for p in parts:
        if type(p) is str and out and type(out[-1]) is str:
            out[-1] += p
        else:
            out.append(p)
    return tuple(out)


def _message_parts(rule: ir.Rule, compile_expr, as_params) -> list:
    """The message template as literal texts, (_ROW, expression, function ``env -> value``) for a part that reads
    only the knowledge row, and (claim field or None, function ``(env, involved lines, extra) -> text``) for the
    rest: a claim field's text value is shown without the function (kernels.crossrender)."""
    out = []
    for part in rule.message.parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, ir.Field) and part.name == "@involved":
            out.append((None, lambda env, involved, extra: _involved_text(involved)))
        elif isinstance(part, ir.Field) and part.name.startswith("@"):
            out.append((None, lambda env, involved, extra, name=part.name[1:]: extra.get(name, "")))
        elif _of_row(part):
            out.append((_ROW, part, compile_expr(as_params(part))))
        else:
            fn = compile_expr(as_params(part))
            name = part.name if isinstance(part, ir.Field) and part.name in CLAIM_FIELDS else None
            out.append((name, lambda env, involved, extra, fn=fn: format_fast(fn(env))))
    return out
