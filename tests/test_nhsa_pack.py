"""The national rule pack (rulesets/nhsa): it checks clean, every example passes through the reference
interpreter, the batch executor gives the same findings on every example, every rule has a flagged and
a clean example, and the framework-1.0 rule codes sit on their official classes."""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from claimaudit.connectors.kb_import import import_batch, write_outputs
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine import kernels
from claimaudit.engine.batch import BatchEngine
from claimaudit.engine.inline import Screener
from claimaudit.engine.plan import build_plan
from claimaudit.engine.reference import ReferenceEngine
from claimaudit.engine.testing import example_lines, run_examples

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "rulesets" / "nhsa"
BACKENDS = kernels.available()
from claims_schema import SCHEMA  # noqa: E402

OFFICIAL = {  # framework 1.0 rule code -> class name
    "GZ10000301004000": "药品区分性别使用",
    "GZ10000101008000": "药品限适应症",
    "GZ10000102012000": "医疗服务项目重复收费",
    "GZ10000204001000": "分解住院",
}

# Seed tables written by `claimaudit kb import` (knowledge/seeds/make_tables.sh): table -> (kind, batch number)
IMPORTED = {
    **{t: ("drug_restriction", 1) for t in ("drug_gend", "drug_newborn", "drug_child", "drug_child_forbidden",
                                            "drug_elderly", "drug_work_injury", "drug_maternity", "drug_med_type",
                                            "drug_hosp_lv", "drug_course")},
    **{t: ("item_restriction", 2) for t in ("item_gend", "item_age", "consumable_gend")},
    "item_dup_charge": ("duplicate_charge", 3), "item_frequency": ("frequency_limit", 4),
    "item_cycle": ("cycle_limit", 5), "item_course": ("course_limit", 6),
}


@pytest.fixture(scope="module")
def ruleset():
    rs = load_ruleset(PACK)
    assert rs.ok, rs.render_diagnostics()
    return rs


@pytest.fixture(scope="module")
def plan(ruleset):
    return build_plan(ruleset)


def _keys(findings) -> list:
    return sorted(f.key() for f in findings)


def _batch_keys(plan, lines: list[dict], backend: str, rule_code: str, batch_rows: int = 1 << 20) -> list:
    engine = BatchEngine(plan, rule_codes=[rule_code], kernels=backend)
    hits, cols = engine.run_table(pa.Table.from_pylist(lines, schema=SCHEMA), batch_rows=batch_rows)
    return _keys(engine.findings(hits, cols))


def test_pack_checks_clean(ruleset):
    errors = [d for d in ruleset.diagnostics if d.is_error]
    assert not errors, ruleset.render_diagnostics()
    assert len(ruleset.rules) >= 30


def test_every_example_passes_in_the_reference(ruleset):
    report = run_examples(ruleset)
    assert not report.untested, [r.code for r in report.untested]
    assert report.coverage == 1.0
    failures = [f"{r.rule.code} {r.example.name} ({r.location}): {'; '.join(r.problems)}" for r in report.failures]
    assert not failures, "\n".join(failures)


def test_every_example_agrees_in_the_batch_executor(plan):
    """Each example runs its own rule (as `claimaudit test` does) through the reference and the batch
    executor (every kernel backend; whole input in one batch and one line per batch)."""
    disagreements = []
    checked = 0
    for rule in plan.ruleset.rules:
        for example in rule.examples:
            lines = example_lines(example)
            want = _keys(ReferenceEngine(plan.ruleset, rule_codes=[rule.code]).run(lines))
            for backend in BACKENDS:
                for size in (1 << 20, 1):
                    got = _batch_keys(plan, lines, backend, rule.code, size)
                    if got != want:
                        disagreements.append(f"{rule.code} '{example.name}' batch-{backend}/{size}: "
                                             f"reference {want} batch {got}")
            checked += 1
    assert checked >= 60
    assert not disagreements, "\n".join(disagreements)


def test_every_rule_has_flagged_and_clean_examples(ruleset):
    missing = []
    for rule in ruleset.rules:
        flagged = [e for e in rule.examples if e.expect_flagged]
        clean = [e for e in rule.examples if not e.expect_flagged and not e.expect_insufficient]
        if len(rule.examples) < 2 or not flagged or not clean:
            missing.append(rule.code)
    assert not missing, f"rules without a flagged and an 'expect none' example: {missing}"


def test_official_rule_codes_sit_on_their_classes(ruleset):
    rules = {r.code: r for r in ruleset.rules}
    for code, name in OFFICIAL.items():
        assert code in rules, f"{code} {name} is missing"
        assert rules[code].rule_class == name or rules[code].name == name, (code, rules[code].rule_class)
    # codes not published in framework 1.0 are not made up: every other code is a readable NHSA_ name
    for code in rules:
        assert code in OFFICIAL or code.startswith("NHSA_"), code


def test_every_rule_states_result_type_stages_and_class(ruleset):
    for rule in ruleset.rules:
        assert rule.result_type in ("明确", "可疑"), rule.code
        assert rule.stages, rule.code
        assert rule.rule_class and rule.rule_class != rule.code, rule.code


def test_every_example_agrees_in_the_inline_screener(plan):
    screener = Screener(plan, stages=None)
    disagreements = []
    for rule in plan.ruleset.rules:
        for example in rule.examples:
            lines = example_lines(example)
            want = _keys(ReferenceEngine(plan.ruleset, rule_codes=[rule.code]).run(lines))
            got = _keys(f for f in screener.screen_lines(lines) if f.rule_code == rule.code)
            if got != want:
                disagreements.append(f"{rule.code} '{example.name}': reference {want} inline {got}")
    assert not disagreements, "\n".join(disagreements)


def _csv_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _declaration(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]


@pytest.mark.parametrize("table", sorted(IMPORTED))
def test_seed_tables_are_what_kb_import_writes(table, tmp_path):
    """Importing the batch-shaped seed file again gives the committed table and declaration (the import
    date aside), so an official batch imported to the same path replaces a seed table as it is."""
    kind, batch_no = IMPORTED[table]
    knowledge = PACK / "knowledge"
    result = import_batch(kind, [knowledge / "seeds" / f"{table}.csv"], batch=f"国家医保局两库2025版第{batch_no}批(示例种子)",
                          effective_from=dt.date(2026, 1, 1))
    assert not result.rejects, [r.line() for r in result.rejects]
    paths = write_outputs(result, tmp_path / f"{table}.csv")
    assert _declaration(paths["rules"]) == _declaration(knowledge / f"{table}.table.rules")
    fresh, committed = _csv_rows(paths["table"]), _csv_rows(knowledge / f"{table}.csv")
    assert list(fresh[0]) == list(committed[0])
    strip = [{k: v for k, v in r.items() if k != "imported_on"} for r in fresh]
    assert strip == [{k: v for k, v in r.items() if k != "imported_on"} for r in committed]


def test_the_whole_pack_agrees_on_all_examples_together(plan):
    """Every rule over the lines of every example at once (one patient per example): rules share
    families and windows here, which running one rule per example does not exercise."""
    lines = []
    n = 0
    for rule in plan.ruleset.rules:
        for example in rule.examples:
            n += 1
            for line in example_lines(example):
                line = dict(line, psn_no=f"P{n}", feedetl_sn=f"P{n}-{line['feedetl_sn']}")
                if line["mdtrt_id"] is not None:
                    line["mdtrt_id"] = f"P{n}-{line['mdtrt_id']}"
                lines.append(line)
    want = _keys(ReferenceEngine(plan.ruleset).run(lines))
    assert len(want) > 100
    for backend in BACKENDS:
        for size in (1 << 20, 7):
            engine = BatchEngine(plan, kernels=backend)
            hits, cols = engine.run_table(pa.Table.from_pylist(lines, schema=SCHEMA), batch_rows=size)
            got = _keys(engine.findings(hits, cols))
            assert got == want, f"batch-{backend} at {size} lines per batch differs: {set(got) ^ set(want)}"
    assert _keys(Screener(plan, stages=None).screen_lines(lines)) == want
