"""Rendering a line-level finding without the reference's interpretation: per rule, the message
template, evidence, amount and its explanation are compiled once into a render program (a compiled
RenderProgram, kernels/_inline.pyx, or its twin SourceProgram: generated Python, engine/render_source.py),
and per knowledge row what never changes (the knowledge point, its evidence, the id prefix, the effective
window) is worked out on first use. Rendering a hit is then a handful of dict reads and string joins.

The result is the finding ``ReferenceEngine.render_hit`` gives, field for field (tests/test_inline_fast.py
checks every example of the shipped packs and random lines). Like ``render_hit``, an insufficient-data
hit is re-evaluated for its reason, which also checks that the decision and the reference agree.
"""
from __future__ import annotations

from claimaudit.dsl import ir
from claimaudit.dsl.units import Quantity

from . import reference as ref
from .findings import INSUFFICIENT, VIOLATION, KnowledgePoint, evidence_parts, insufficient_entry
from .profiles import mark_with_profile
from .kernels import inline as inline_kernels
from .values import Unknown, format_value, service_date

_NOT_CONCERNED = False  # what a rule's point function returns when the line is not concerned
_quantity_text: dict = {}  # (base value, dimension) -> the quantity's text (the compiled kernel reads it too)


def format_fast(v) -> str:
    """``format_value`` with the common types first; a quantity's text made once per value."""
    t = type(v)
    if t is str:
        return v
    if t is float:
        return str(int(v)) if v.is_integer() else f"{v:.6g}"
    if t is Quantity and v.base_value:  # (0.0 and -0.0 are one key but print differently)
        key = (v.base_value, v.dimension)
        text = _quantity_text.get(key)
        if text is None:
            if len(_quantity_text) >= 100_000:
                _quantity_text.clear()
            text = _quantity_text[key] = format_value(v)
        return text
    return format_value(v)


class PointShape:
    """What a rule's knowledge rows have in common, worked out once per rule so that each row's PointFacts is
    quick to make (a request citing a row for the first time pays for it): the table's role columns, the
    rule's basis and dates, the columns its evidence shows."""

    __slots__ = ("rule", "table", "facts", "key", "id", "text", "source", "effective_from", "effective_to")

    def __init__(self, rule: ir.Rule, table, facts: ref.RuleFacts):
        self.rule, self.table, self.facts = rule, table, facts
        if table is not None:
            self.key = table.key
            self.id, self.text, self.source = (table.role_column(r) for r in ("id", "text", "source"))
            self.effective_from, self.effective_to = (table.role_column(r) for r in ("effective_from", "effective_to"))


_new = object.__new__


def _knowledge_point(shape: PointShape, i: int, row: dict) -> KnowledgePoint:
    """reference._knowledge_point of a table row (the dataclass made without its frozen __init__)."""
    basis = shape.rule.basis
    point_id, text, source = (_role(row, c) for c in (shape.id, shape.text, shape.source))
    kp = _new(KnowledgePoint)
    kp.__dict__.update(table=shape.table.name, key=str(row.get(shape.key)), file_row=shape.table.row_numbers[i],
                       point_id=point_id, text=text or (basis.text if basis else None),
                       source=source or (basis.source if basis else None))
    return kp


def _role(row: dict, column: str | None):
    v = row.get(column) if column else None
    return None if v is None else format_fast(v)


class PointFacts:
    """What a finding on one knowledge row of a rule always shows (``i``: the row, None for a rule without a
    table)."""

    __slots__ = ("row", "knowledge", "id_prefix", "knowledge_evidence", "start", "end", "text", "source",
                 "evidence_head", "evidence_tail", "knowledge_shown")

    def __init__(self, shape: PointShape, i: int | None):
        rule, table = shape.rule, shape.table
        if table is None:
            self.row = None
            kp = self.knowledge = ref._knowledge_point(rule, None)
            self.id_prefix = f"{rule.code}\x1f-\x1f"
            self.knowledge_evidence = ()
            self.start, self.end = rule.effective_from, rule.effective_to
        else:
            row = self.row = table.rows[i]
            kp = self.knowledge = _knowledge_point(shape, i, row)
            self.id_prefix = f"{rule.code}\x1f{kp.table}:{kp.file_row}\x1f"
            self.knowledge_evidence = tuple([(f"k.{c}", format_fast(row.get(c))) for c in shape.facts.knowledge_columns])
            start, end = rule.effective_from, rule.effective_to  # reference.effective_window
            if shape.effective_from and row.get(shape.effective_from) is not None:
                start = max(start, row[shape.effective_from]) if start else row[shape.effective_from]
            if shape.effective_to and row.get(shape.effective_to) is not None:
                end = min(end, row[shape.effective_to]) if end else row[shape.effective_to]
            self.start, self.end = start, end
        self.text = (kp.text or "") if kp else ""
        self.source = (kp.source or "") if kp else ""
        # what a 3101 result shows of them (findings.to_3101_result): the evidence text's head (依据：…；) and
        # tail (the knowledge values, joined), and the ``knowledge`` entry (each result gets a copy)
        self.evidence_head, self.knowledge_shown = evidence_parts(kp)
        self.evidence_tail = "；".join([f"{k}={v}" for k, v in self.knowledge_evidence])


class BriefInsufficient:
    """An insufficient-data finding as a screening response shows it (3101 ``insufficient_data[]``): rule,
    line and reason. ``Screener.screen`` asks for these when no profile is in force (nothing is shadowed or
    exempted), which saves rendering evidence and ids nobody reads; ``screen_lines`` makes them only when
    asked (``brief=True``)."""

    __slots__ = ("rule_code", "rule_name", "line_id", "reason")
    outcome = INSUFFICIENT
    shadow = False
    exemption = None

    def __init__(self, rule: ir.Rule, line: dict, unknown: Unknown):
        self.rule_code, self.rule_name = rule.code, rule.name
        self.line_id, self.reason = str(line.get("feedetl_sn")), unknown.reason


class RuleRenderer:
    """Findings of one line-level rule (no window), as ``ReferenceEngine._finding`` renders them: per
    knowledge row what never changes (PointFacts), and a render program for the rest — compiled
    (kernels/_inline.pyx) or generated Python (SourceProgram, its twin)."""

    def __init__(self, rule: ir.Rule, ruleset, reference: ref.ReferenceEngine, kernels=None):
        self.rule = rule
        self.reference = reference
        self.table = ruleset.tables[rule.lookup.table] if rule.lookup else None
        self.profile = ruleset.profile
        self.facts = reference.facts(rule)
        self.shape = PointShape(rule, self.table, self.facts)
        self._points: dict = {}
        location = f"{rule.span.file}:{rule.span.line}" if rule.span else ""
        self.program = (kernels or inline_kernels.backend()).compile_renderer(rule, self.facts, location)

    def point(self, i: int) -> PointFacts:
        got = self._points.get(i)
        if got is None:
            got = self._points[i] = PointFacts(self.shape, i if self.table is not None else None)
        return got

    def render(self, line: dict, lv: dict, point: int, outcome: str, brief: bool = False):
        """The finding; ``brief``: an insufficient-data one as a BriefInsufficient."""
        if outcome == VIOLATION:
            return self._marked(self.program.violation(line, lv, self.point(point)))
        if point < 0 and self.table is not None:  # the lookup key itself was unknown: rare, ask the reference
            return self.reference.render_hit(self.rule, line, point, outcome)
        p = self.point(point)
        unknown = self._reason(line, lv, p)
        if brief:
            return BriefInsufficient(self.rule, line, unknown)
        return self._marked(self.program.insufficient(line, lv, p, unknown))

    def result(self, line: dict, lv: dict, point: int, outcome: str) -> tuple:
        """(is a violation, its 3101 entry): a ``result[]`` entry (to_3101_result of the finding) or an
        ``insufficient_data[]`` one, built directly. Only when no profile is in force (nothing is marked)."""
        if outcome == VIOLATION:
            p = self._points.get(point)
            return True, self.program.result(line, lv, p if p is not None else self.point(point))
        if point < 0 and self.table is not None:  # the lookup key itself was unknown: rare, ask the reference
            return False, insufficient_entry(self.reference.render_hit(self.rule, line, point, outcome))
        rule = self.rule  # what insufficient_entry shows of the BriefInsufficient
        return False, {"rule_id": rule.code, "rule_name": rule.name, "rx_id": str(line.get("feedetl_sn")),
                       "reason": self._reason(line, lv, self.point(point)).reason}

    def _reason(self, line: dict, lv: dict, p: PointFacts) -> Unknown:
        """Why an insufficient-data hit is one, as the reference finds it (which also checks the hit)."""
        unknown = self.program.reason(line, lv, p)
        if type(unknown) is not Unknown:
            said = "nothing" if unknown is _NOT_CONCERNED else VIOLATION
            raise AssertionError(f"executor and reference disagree on rule {self.rule.code}, line "
                                 f"{line.get('feedetl_sn')}: executor says {INSUFFICIENT}, reference says {said}")
        return unknown

    def _marked(self, found):
        return found if self.profile is None else mark_with_profile(found, self.profile)


def service_day(line: dict, lv: dict):
    """The date of service as a finding shows it (ISO text, None when unknown), once per line."""
    day = lv.get("@service_day")
    if day is None:
        d = service_date(line)
        day = lv["@service_day"] = "" if type(d) is Unknown else d.isoformat()
    return day or None


class Renderers:
    """Renderers of a ruleset's line-level rules, made on a rule's first finding (a pack written one rule
    per drug has tens of thousands of rules; most never fire)."""

    def __init__(self, ruleset, reference: ref.ReferenceEngine, kernels: str | None = None):
        self.ruleset = ruleset
        self.reference = reference
        self.kernels = inline_kernels.backend(kernels)
        self._by_rule: dict = {}
        self.made = self._by_rule  # (read-only) the renderers made so far, by rule index

    def __getitem__(self, rule_index: int) -> RuleRenderer:
        got = self._by_rule.get(rule_index)
        if got is None:
            got = self._by_rule[rule_index] = RuleRenderer(self.ruleset.rules[rule_index], self.ruleset,
                                                           self.reference, self.kernels)
        return got

    def prepare(self, rule_indexes) -> None:
        """Make the renderers of these rules now (at load), not on the first request that needs them."""
        for i in rule_indexes:
            self[i]
