"""Run the examples written next to each rule (``claimaudit test``) and report rule coverage."""
from __future__ import annotations

from dataclasses import dataclass, field

from claimaudit.dsl import ir
from claimaudit.dsl.ruleset import Ruleset

from .findings import INSUFFICIENT, VIOLATION
from .reference import ReferenceEngine

EXAMPLE_ENCOUNTER_ID = "EXAMPLE-MDTRT"
EXAMPLE_PERSON_ID = "EXAMPLE-PSN"


@dataclass
class ExampleResult:
    rule: ir.Rule
    example: ir.Example
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def location(self) -> str:
        s = self.example.span or self.rule.span
        return f"{s.file}:{s.line}:{s.col}" if s else self.rule.code


@dataclass
class TestReport:
    results: list[ExampleResult]
    untested: list[ir.Rule]
    total_rules: int

    @property
    def failures(self) -> list[ExampleResult]:
        return [r for r in self.results if not r.passed]

    @property
    def coverage(self) -> float:
        return 1.0 if not self.total_rules else (self.total_rules - len(self.untested)) / self.total_rules


def example_lines(example: ir.Example) -> list[dict]:
    """Claim lines of an example. Defaults keep examples short; each is documented in the README:
    line id = the label, fee_ocur_time = the encounter's begntime, det_item_fee_sumamt = cnt × pric,
    inscp_scp_amt = det_item_fee_sumamt; a line ``at E2`` takes the named encounter E2 (whose mdtrt_id is
    E2 unless given, other fields as the default encounter unless given)."""
    from claimaudit.dsl.schema import CLAIM_FIELDS
    base = {name: None for name in CLAIM_FIELDS}
    base.update({"mdtrt_id": EXAMPLE_ENCOUNTER_ID, "psn_no": EXAMPLE_PERSON_ID})
    base.update(dict(example.patient))
    base.update(dict(example.encounter))
    encounters = {}
    for label, fields in example.encounters:  # a named encounter starts from the default one
        enc = dict(base, mdtrt_id=label)
        enc.update(dict(fields))
        encounters[label] = enc
    lines = []
    for ex_line in example.lines:
        line = dict(encounters[ex_line.encounter] if ex_line.encounter else base)
        line["feedetl_sn"] = ex_line.label
        line.update(dict(ex_line.fields))
        if line["fee_ocur_time"] is None:
            line["fee_ocur_time"] = line["begntime"]
        if line["det_item_fee_sumamt"] is None and line["cnt"] is not None and line["pric"] is not None:
            line["det_item_fee_sumamt"] = line["cnt"] * line["pric"]
        if line["inscp_scp_amt"] is None:
            line["inscp_scp_amt"] = line["det_item_fee_sumamt"]
        for k in ("cnt", "pric", "det_item_fee_sumamt", "inscp_scp_amt", "prd_days", "fulamt_ownpay_amt"):
            if isinstance(line.get(k), int):
                line[k] = float(line[k])
        lines.append(line)
    return lines


def check_example(rule: ir.Rule, example: ir.Example, findings) -> ExampleResult:
    result = ExampleResult(rule, example)
    flagged = {f.line_id for f in findings if f.outcome == VIOLATION}
    insufficient = {f.line_id for f in findings if f.outcome == INSUFFICIENT}
    want_flagged, want_insufficient = set(example.expect_flagged), set(example.expect_insufficient)
    if flagged != want_flagged:
        result.problems.append(f"expected flagged {_labels(want_flagged)}, got {_labels(flagged)}")
    if insufficient != want_insufficient:
        reasons = "; ".join(sorted({f.reason for f in findings if f.outcome == INSUFFICIENT}))
        result.problems.append(f"expected insufficient data on {_labels(want_insufficient)}, got {_labels(insufficient)}"
                               + (f" ({reasons})" if reasons else ""))
    if example.expect_amount is not None:
        total = round(sum(f.amount or 0.0 for f in findings if f.outcome == VIOLATION), 2)
        if abs(total - example.expect_amount) > 0.005:
            formulas = "; ".join(f.amount_formula for f in findings if f.outcome == VIOLATION)
            result.problems.append(f"expected amount {example.expect_amount:.2f}, got {total:.2f} ({formulas})")
    return result


def run_examples(ruleset: Ruleset, engine_factory=ReferenceEngine) -> TestReport:
    """Each example runs its own rule only, through the executor ``engine_factory`` builds."""
    results, untested = [], []
    for rule in ruleset.rules:
        if not rule.examples:
            untested.append(rule)
            continue
        engine = engine_factory(ruleset, rule_codes=[rule.code])
        for example in rule.examples:
            findings = list(engine.run(example_lines(example)))
            results.append(check_example(rule, example, findings))
    return TestReport(results, untested, len(ruleset.rules))


def _labels(labels) -> str:
    return "{" + ", ".join(sorted(labels)) + "}" if labels else "none"
