"""A line-level rule's render program as generated Python (engine/codegen.py): the twin of the compiled
RenderProgram (engine/kernels/_inline.pyx), selected with ``CLAIMAUDIT_KERNELS=python``. Message, evidence,
amount and its explanation, and the reference's outcome on a knowledge row (for an insufficient-data hit's
reason) each become one function; RuleRenderer (engine/inline_render.py) drives either program."""
from __future__ import annotations

import hashlib

from claimaudit.dsl import ir

from . import codegen
from . import reference as ref
from .findings import INSUFFICIENT, ROLE_VIOLATING, SEVERITY_DEGREE, VIOLATION, new_finding
from .inline_render import PointFacts, format_fast, service_day
from .values import Unknown, format_money, format_value, round_money


class SourceProgram:
    """A rule's render program as generated Python (the twin of the compiled RenderProgram): message,
    evidence, amount and its explanation, and the reference's outcome on a knowledge row for a reason."""

    def __init__(self, rule: ir.Rule, facts: ref.RuleFacts, location: str):
        self.rule, self.facts, self.location = rule, facts, location
        self.evidence = _evidence_function(facts)
        self.amount = _amount_function(rule)
        self.message = _message_function(rule)
        self.point_outcome = _point_function(rule)
        self.insufficient_prefix = f"数据不足，无法判断【{rule.name}】："

    def _amount_formula(self, line: dict, lv: dict, p: PointFacts) -> tuple:
        """(amount, how it was computed), as the reference explains it."""
        value, values_text = self.amount(line, lv, p.row)
        names = self.facts.amount_names
        if type(value) is Unknown:
            return None, f"{names}: cannot compute ({value.reason})"
        amount = round_money(float(value))
        return amount, (f"{names} = {values_text} = {amount:.2f}" if names != values_text else f"{names} = {amount:.2f}")

    def violation(self, line: dict, lv: dict, p: PointFacts):
        amount, formula = self._amount_formula(line, lv, p)
        message = self.message(line, lv, p.row, format_money(amount), p.text, p.source)
        return self._finding(line, lv, p, VIOLATION, message, amount, formula, None)

    def result(self, line: dict, lv: dict, p: PointFacts) -> dict:
        """The violation's 3101 ``result[]`` entry, as findings.to_3101_result shows its finding."""
        amount, formula = self._amount_formula(line, lv, p)
        rule = self.rule
        line_id = str(line.get("feedetl_sn"))
        parts = [f"{k}={v}" for k, v in self.evidence(line, lv)]
        if p.evidence_tail:
            parts.append(p.evidence_tail)
        evidence = p.evidence_head + "；".join(parts)
        return {
            "jr_id": hashlib.sha1(f"{p.id_prefix}{line.get('mdtrt_id')}\x1f{line_id}".encode()).hexdigest()[:16],
            "rule_id": rule.code, "rule_name": rule.name,
            "vola_cont": self.message(line, lv, p.row, format_money(amount), p.text, p.source),
            "sev_deg": SEVERITY_DEGREE[rule.severity], "severity": rule.severity, "result_type": rule.result_type,
            "vola_evid": evidence[:500], "vola_bhvr_type": rule.rule_class, "vola_amt": amount,
            "vola_amt_stas": formula, "rule_version": rule.version,
            "knowledge": None if p.knowledge_shown is None else dict(p.knowledge_shown),
            "judge_result_detail_dtos": [{"rx_id": line_id, "vola_item_type": str(ROLE_VIOLATING)}]}

    def reason(self, line: dict, lv: dict, p: PointFacts):
        """The reference's outcome on the row: False (not concerned), None (violation) or the Unknown."""
        return self.point_outcome(line, lv, p.row, p.start, p.end)

    def insufficient(self, line: dict, lv: dict, p: PointFacts, unknown: Unknown):
        return self._finding(line, lv, p, INSUFFICIENT, self.insufficient_prefix + unknown.reason, None,
                             "not computed: insufficient data", unknown.reason)

    def _finding(self, line, lv, p: PointFacts, outcome, message, amount, formula, reason):
        rule = self.rule
        line_id = str(line.get("feedetl_sn"))
        mdtrt_id = line.get("mdtrt_id")
        return new_finding({
            "finding_id": hashlib.sha1(f"{p.id_prefix}{mdtrt_id}\x1f{line_id}".encode()).hexdigest()[:16],
            "outcome": outcome, "rule_code": rule.code, "rule_name": rule.name, "rule_class": rule.rule_class,
            "rule_version": rule.version, "result_type": rule.result_type, "severity": rule.severity,
            "message": message, "line_id": line_id, "mdtrt_id": mdtrt_id, "psn_no": line.get("psn_no"),
            "fixmedins_code": line.get("fixmedins_code"), "bilg_dept_codg": line.get("bilg_dept_codg"),
            "bilg_dr_codg": line.get("bilg_dr_codg"), "med_list_codg": line.get("med_list_codg"),
            "service_date": service_day(line, lv), "knowledge": p.knowledge,
            "evidence": self.evidence(line, lv) + p.knowledge_evidence, "amount": amount,
            "amount_formula": formula, "reason": reason, "lines": ((line_id, ROLE_VIOLATING),),
            "rule_location": self.location, "profile": None, "shadow": False, "exemption": None})


# ---- the generated functions -------------------------------------------------------------------------------


def _shown(v: str) -> str:
    """``format_value(v)`` inline for text and floats (the usual values); ``format_fast`` for the rest."""
    return (f"({v} if type({v}) is str else (str(int({v})) if ({v}).is_integer() else format({v}, '.6g')) "
            f"if type({v}) is float else fmt({v}))")


def _source() -> codegen.Source:
    return codegen.Source({"fmt": format_fast, "format_money": format_money})


def _evidence_function(facts: ref.RuleFacts):
    """``evidence(line, lv)``: (field, shown value) for each field the rule reads (Env.field semantics)."""
    src = _source()
    em = codegen.ExprEmitter(src)
    pairs = [f"({name!r}, {_shown(em.field(name))})" for name in facts.evidence_fields]
    src.add(f"return ({', '.join(pairs)}{',' if len(pairs) == 1 else ''})")
    return src.function("evidence", "line, lv", em.prologue, "evidence")


def _amount_function(rule: ir.Rule):
    """``amount(line, lv, row) -> (value, values text)``: the amount and ``expr_text`` of it by values."""
    src = _source()
    em = codegen.ExprEmitter(src, row="row")
    value = em.emit(rule.amount)
    src.add(f"if type({value}) is Unknown: return {value}, None")
    text = _values_text(rule.amount, em)
    src.add(f"return {value}, {text}")
    return src.function("amount", "line, lv, row", em.prologue, f"amount of {rule.code}")


_OP_TEXT = {"*": "×", "/": "/", "+": "+", "-": "−"}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def _values_text(expr, em: codegen.ExprEmitter) -> str:
    """A Python expression giving ``reference.expr_text(expr, env)``: the structure is fixed, only the
    leaves' values vary."""
    parts: list[str] = []

    def text(e):
        if isinstance(e, ir.Const):
            parts.append(repr(format_value(e.value)))
        elif isinstance(e, ir.Field):
            parts.append(_shown(em.field(e.name)))
        elif isinstance(e, ir.KnowledgeField):
            parts.append(_shown(em.knowledge(e.column)))
        elif isinstance(e, ir.Call):
            parts.append(repr(f"{e.func}("))
            for j, a in enumerate(e.args):
                if j:
                    parts.append(repr(", "))
                text(a)
            parts.append(repr(")"))
        elif e.op == "neg":
            parts.append(repr("−"))
            text(e.args[0])
        elif e.op in _OP_TEXT:
            for j, side in enumerate(e.args):
                if j:
                    parts.append(repr(f" {_OP_TEXT[e.op]} "))
                wrap = isinstance(side, ir.Op) and side.op in _PRECEDENCE and _PRECEDENCE[side.op] < _PRECEDENCE[e.op]
                if wrap:
                    parts.append(repr("("))
                text(side)
                if wrap:
                    parts.append(repr(")"))
        else:
            parts.append(repr(e.op))
    text(expr)
    return f"''.join(({', '.join(parts)},))"


def _message_function(rule: ir.Rule):
    """``message(line, lv, row, amount text, knowledge text, knowledge source)``, as reference._render."""
    src = _source()
    em = codegen.ExprEmitter(src, row="row")
    extra = {"amount": "amount", "rule_code": repr(rule.code), "rule_name": repr(rule.name),
             "knowledge_text": "ktext", "knowledge_source": "ksource"}
    parts = []
    for part in rule.message.parts:
        if isinstance(part, str):
            parts.append(repr(part))
        elif isinstance(part, ir.Field) and part.name == "@involved":
            parts.append(repr(""))  # a line-level rule has no involved lines
        elif isinstance(part, ir.Field) and part.name.startswith("@"):
            parts.append(extra.get(part.name[1:], repr("")))
        else:
            parts.append(_shown(em.emit(part)))
    src.add(f"return ''.join(({', '.join(parts)},))" if parts else "return ''")
    return src.function("message", "line, lv, row, amount, ktext, ksource", em.prologue, f"message of {rule.code}")


def _point_function(rule: ir.Rule):
    """``point(line, lv, row, start, end)``: the reference's outcome on one knowledge row
    (ReferenceEngine._evaluate_point): False when the line is not concerned, None for a violation, else
    the Unknown that makes it insufficient."""
    src = _source()
    em = codegen.ExprEmitter(src, row="row")
    add = src.add
    add("day = None")
    add("if start is not None or end is not None:")
    add("    day = service_date(line)")
    add("    if type(day) is not Unknown and ((start is not None and day < start) or (end is not None and day > end)):")
    add("        return False")
    add("unknown = None")
    if rule.scope is not None:
        s = em.emit(rule.scope)
        add(f"if type({s}) is Unknown: unknown = {s}")
        add(f"elif not {s}: return False")
    add("if unknown is None:")
    src.depth += 1
    c = em.emit(rule.condition)
    add(f"if type({c}) is Unknown: unknown = {c}")
    add(f"elif not {c}: return False")
    src.depth -= 1
    add("if type(day) is Unknown: unknown = day")
    add("return unknown")
    return src.function("point", "line, lv, row, start, end", em.prologue, f"outcome of {rule.code}")
