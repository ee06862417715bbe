"""Rendering a cross-line violation without the reference's interpretation.

Per rule, the message template, the amount, its explanation by values (``reference.expr_text``) and the
evidence are compiled once into closures (``inline.compile_expr`` over the rule's own IR, knowledge columns
and window values read as parameters ``k.col`` / ``w.name``, as inline_cross decides them); per knowledge
row what never changes (the knowledge point, its evidence, the finding id's prefix, the parameters the
message and amount read) is worked out on first use. Rendering a hit is then a few closure calls, string
joins and one SHA-1.

The result is the finding ``ReferenceEngine._finding`` gives for a violation, field for field, from the
same window values and involved lines (tests/test_inline_cross.py compares every finding with the
reference's). Insufficient data is not rendered here: the reference renders it and finds the reason.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from claimaudit.dsl import ir
from claimaudit.dsl.schema import CLAIM_FIELDS

from . import reference as ref
from .findings import ROLE_INVOLVED, ROLE_VIOLATING, VIOLATION, Finding
from .inline_render import format_fast
from .profiles import mark_with_profile
from .values import Unknown, format_money, format_value, round_money

_sha1 = hashlib.sha1
_new = object.__new__
_set = object.__setattr__
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
                 wkeys: tuple):
        """``wkeys``: the window values the rule reads, as parameters (``w.<name>``)."""
        self.rule, self.table, self.profile, self.wkeys = rule, table, profile, wkeys
        facts = reference.facts(rule)
        self.evidence_fields = facts.evidence_fields
        self.window_evidence = tuple(f"w.{n}" for n in facts.window_values)
        self.knowledge_columns = facts.knowledge_columns
        self.amount_names = facts.amount_names
        self.amount = compile_expr(as_params(rule.amount))
        self.amount_text = _values_text(rule.amount, compile_expr, as_params)
        self.message = _message_parts(rule, compile_expr, as_params)
        # the message shows {amount}, {rule_code} ...: those values are gathered for it (else not)
        self.message_extra = any(isinstance(p, ir.Field) and p.name.startswith("@") and p.name != "@involved"
                                 for p in rule.message.parts)
        self.location = f"{rule.span.file}:{rule.span.line}" if rule.span else ""
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
        self.template = dict.fromkeys(("finding_id", "message", "line_id", "mdtrt_id", "psn_no", "fixmedins_code",
                                       "bilg_dept_codg", "bilg_dr_codg", "med_list_codg", "service_date",
                                       "knowledge", "evidence", "amount", "amount_formula", "lines"))
        self.template = {**self.static, **self.template}

    def point(self, index: int) -> tuple:
        """(knowledge point, id prefix, knowledge evidence, parameters, text, source) of a row (-1: none)."""
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
            got = self._points[index] = (kp, prefix, evidence, params, (kp.text or "") if kp else "",
                                         (kp.source or "") if kp else "")
        return got

    def violation(self, env: ref.Env, index: int, window, involved: tuple):
        """The finding on ``env.line`` for knowledge row ``index`` (-1: none) with the window's values (by
        ``w.<name>``, or an Unknown for the whole window) and its involved lines. ``env`` is the line's (its
        derived values are reused); its ``row`` is replaced."""
        kp, prefix, kevidence, params, ktext, ksource = self.point(index)
        line = env.line
        if type(window) is Unknown:
            row = {**params, **dict.fromkeys(self.wkeys, window)}
            wevidence = ()
        else:
            row = {**params, **window}
            wevidence = tuple([(key, format_fast(window[key])) for key in self.window_evidence])
        env.row = row
        value = self.amount(env)
        names = self.amount_names
        if type(value) is Unknown:
            amount, formula = None, f"{names}: cannot compute ({value.reason})"
        else:
            amount = round_money(float(value))
            values = self.amount_text(env)
            formula = f"{names} = {values} = {amount:.2f}" if names != values else f"{names} = {amount:.2f}"
        extra = None
        if self.message_extra:
            extra = {"amount": format_money(amount), "rule_code": self.rule.code, "rule_name": self.rule.name,
                     "knowledge_text": ktext, "knowledge_source": ksource}
        message = "".join([_shown(p, line, env, involved, extra) for p in self.message])
        line_id = str(line.get("feedetl_sn"))
        mdtrt_id = line.get("mdtrt_id")
        t = line.get("fee_ocur_time")
        field = env.field
        values = self.template.copy()
        values["finding_id"] = _sha1(f"{prefix}{mdtrt_id}\x1f{line_id}".encode()).hexdigest()[:16]
        values["message"] = message
        values["line_id"] = line_id
        values["mdtrt_id"] = mdtrt_id
        values["psn_no"] = line.get("psn_no")
        values["fixmedins_code"] = line.get("fixmedins_code")
        values["bilg_dept_codg"] = line.get("bilg_dept_codg")
        values["bilg_dr_codg"] = line.get("bilg_dr_codg")
        values["med_list_codg"] = line.get("med_list_codg")
        values["service_date"] = None if t is None else _iso(t)
        values["knowledge"] = kp
        values["evidence"] = tuple([(n, v if type(v := line.get(n)) is str else format_fast(field(n)))
                                    for n in self.evidence_fields]) + kevidence + wevidence
        values["amount"] = amount
        values["amount_formula"] = formula
        values["lines"] = ((line_id, ROLE_VIOLATING),) + tuple([(str(m.get("feedetl_sn")), ROLE_INVOLVED)
                                                                for m in involved])
        found = _new(Finding)  # as findings.new_finding, without copying the values once more
        _set(found, "__dict__", values)
        return found if self.profile is None else mark_with_profile(found, self.profile)


def _shown(part, line: dict, env, involved, extra) -> str:
    """One part of a message (see _message_parts) as text."""
    if type(part) is str:
        return part
    name, fn = part
    if name is not None:  # a claim field that is text shows as itself
        v = line.get(name)
        if type(v) is str:
            return v
    return fn(env, involved, extra)


def _message_parts(rule: ir.Rule, compile_expr, as_params) -> list:
    """The message template as literal texts and (claim field or None, function ``(env, involved lines, extra)
    -> text``): a claim field's text value is shown without the function."""
    out = []
    for part in rule.message.parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, ir.Field) and part.name == "@involved":
            out.append((None, lambda env, involved, extra: _involved_text(involved)))
        elif isinstance(part, ir.Field) and part.name.startswith("@"):
            out.append((None, lambda env, involved, extra, name=part.name[1:]: extra.get(name, "")))
        else:
            fn = compile_expr(as_params(part))
            name = part.name if isinstance(part, ir.Field) and part.name in CLAIM_FIELDS else None
            out.append((name, lambda env, involved, extra, fn=fn: format_fast(fn(env))))
    return out


def _values_text(expr, compile_expr, as_params):
    """``env -> reference.expr_text(expr, env)``: the structure is fixed, only the leaves' values vary."""
    def leaf(e):
        fn = compile_expr(as_params(e))
        return lambda env: format_fast(fn(env))
    merged = ref.expr_text_parts(expr, leaf)
    if all(type(p) is str for p in merged):
        constant = "".join(merged)
        return lambda env: constant
    return lambda env: "".join([p if type(p) is str else p(env) for p in merged])
