"""Golden tests of the compile passes: each file in tests/golden/passes/ holds cases for one pass; a case
is a rule and what the planned rule looks like after the passes up to and including that one.
Regenerate after an intended change with UPDATE_GOLDEN=1 and review the diff."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from claimaudit.dsl import ir
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.passes import PASSES, planned, run_passes

GOLDEN = Path(__file__).parent / "golden" / "passes"
PASS_NAMES = [p.__name__ for p in PASSES]


def describe(p) -> list[str]:
    out = [f"scope:     {ir.show(p.scope)}", f"condition: {ir.show(p.condition)}", f"amount:    {ir.show(p.amount)}"]
    if p.key is not None:
        out.append(f"key:       {p.key.field} {p.key.match} {list(p.key.values) or p.key.table}")
    elif p.unindexed_reason:
        out.append(f"key:       none ({p.unindexed_reason})")
    for name, value, type_ in p.constants:
        out.append(f"param:     ${name} = {ir.show(ir.Const(value, type_))} : {type_}")
    return out


def parse_cases(text: str) -> list[tuple[str, str, list[str]]]:
    """[(title, rule text, expected lines)]"""
    cases, title, rule, expected, mode = [], None, None, [], None
    for line in text.splitlines():
        if line.startswith("=== ") or line.startswith("rule "):
            if rule is not None:
                cases.append((title, rule, expected))
            if line.startswith("=== "):
                title, rule = line[4:], None
            else:
                rule = line
            expected, mode = [], None
        elif line == "--- expected":
            mode = "expected"
        elif mode == "expected" and line.strip():
            expected.append(line)
    if rule is not None:
        cases.append((title, rule, expected))
    return cases


def render_cases(cases, actual) -> str:
    out, last_title = [], None
    for (title, rule, _), got in zip(cases, actual):
        if title != last_title:
            out.append(f"=== {title}")
            last_title = title
        out += [rule, "--- expected", *got]
    return "\n".join(out) + "\n"


def plan_rule(rule_text: str, upto: int, tmp_path: Path):
    (tmp_path / "r.rules").write_text(rule_text + "\n", encoding="utf-8")
    rs = load_ruleset(tmp_path / "r.rules")
    assert rs.ok, rs.render_diagnostics()
    return run_passes(planned(0, rs.rules[0]), PASSES[:upto + 1])


@pytest.mark.parametrize("pass_name", PASS_NAMES)
def test_pass_golden(pass_name, tmp_path):
    path = GOLDEN / f"{pass_name}.txt"
    assert path.exists(), f"no golden file for pass {pass_name}"
    cases = parse_cases(path.read_text(encoding="utf-8"))
    assert cases, f"{path} has no cases"
    upto = PASS_NAMES.index(pass_name)
    actual = [describe(plan_rule(rule, upto, tmp_path)) for _, rule, _ in cases]
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(render_cases(cases, actual), encoding="utf-8")
    for (title, rule, expected), got in zip(cases, actual):
        assert got == expected, f"{path.name}: {title}\n{rule}"


def test_every_pass_has_a_golden_file():
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(PASS_NAMES)


def test_passes_keep_rules_of_one_shape_in_one_family(tmp_path):
    """Two rules written in different orders and with different constants get equal templates."""
    a = plan_rule('rule A "n" { result 明确 when med_list_codg startswith "XA" and cnt > 2 and gend == "2" '
                  'message "m" }', len(PASSES) - 1, tmp_path)
    b = plan_rule('rule B "n" { result 明确 when gend == "1" and not (cnt <= 9) and med_list_codg startswith "XB" '
                  'message "m" }', len(PASSES) - 1, tmp_path)
    assert (a.scope, a.condition, a.amount) == (b.scope, b.condition, b.amount)
    assert [v for _, v, _ in a.constants] != [v for _, v, _ in b.constants]
