"""``claimaudit lint``: a deliberately broken copy of the demo pack, one problem of each kind, each
found with its stable code and location; the shipped demo pack lints without errors; exemptions
that match nothing; the command's output, options and exit status."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from claimaudit.dsl.diagnostics import display_width
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.cli import main
from claimaudit.engine.lint import (CODES, ERROR, WARNING, LintFinding, lint_exemptions, lint_path, lint_ruleset,
                                    render_finding)
from claimaudit.engine.lint_tables import DIAG, EXACT, ITEM, PREFIX, check_code

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "rulesets" / "demo"

# ---- the broken pack ---------------------------------------------------------------------------------

BROKEN_RULES = """\
table empty_tab from "knowledge/empty.csv" {
  key    code      text match prefix
  column point_id  text role id
  column limit     number
}

table dated from "knowledge/dated.csv" {
  key    code      text match prefix
  column point_id  text role id
  column valid_from date role effective_from
  column valid_to   date role effective_to
  column limit     number
}

table unused_items from "knowledge/unused_items.csv" {   # no rule uses it: judged by its values
  key    code     text match prefix
  column point_id text role id
}

table unused_depts from "knowledge/unused_depts.csv" {
  key    dept     text match prefix
  column point_id text role id
}

rule BAD_SEX "性别矛盾" {
  result  明确
  when    med_list_codg startswith "XG04CBF036" and gend == "1" and gend == "2"
  message "性别矛盾"
  example "只写了不违规的例子" {
    patient   { gend: "1" }
    encounter { begntime: 2025-01-01T08:00 }
    line L1 { med_list_codg: "XG04CBF036A001010101234", cnt: 1, pric: 1 }
    expect none
  }
}

rule BAD_AGE "年龄矛盾" {
  result  明确
  scope   age_years < 5
  when    med_list_codg startswith "XG04CBF036" and age_years > 10
  message "年龄矛盾"
}

rule BAD_FOLD "恒假" {
  result  明确
  when    med_list_codg startswith {"XJ01CAA040", "XB0１"} and 1 > 2
  message "恒假"
}

rule BAD_EMPTY "空表" {
  result  明确
  lookup  k = empty_tab[med_list_codg]
  when    cnt > k.limit
  message "空表"
}

rule BAD_EFFECTIVE "生效期倒置" {
  result    明确
  effective 2025-01-01 to 2024-01-01
  when      med_list_codg startswith "XJ01CAA040" and cnt > 1
  message   "生效期倒置"
}

rule BAD_WINDOW "知识行均不在规则生效期内" {
  result    明确
  effective 2025-01-01 to 2025-12-31
  lookup    k = dated[med_list_codg]
  when      cnt > k.limit
  message   "m"
  example "e" {
    encounter { begntime: 2025-06-01T08:00 }
    line L1 { med_list_codg: "XJ01CAA040E001010100890", cnt: 9, pric: 1 }
    expect none
  }
}

rule GOOD_RANGE "区间可满足" {
  result  可疑
  when    med_list_codg startswith "XB05AAR023" and age_years >= 5 and age_years <= 5 and gend != "1"
          and med_type startswith "1" and not (med_type startswith "14")
  message "m"
  example "5岁女孩门诊" {
    patient   { gend: "2", brdy: 2020-01-01 }
    encounter { med_type: "11", begntime: 2025-06-01T08:00 }
    line L1 { med_list_codg: "XB05AAR023B002010100999", cnt: 1, pric: 1 }
    expect flagged L1
  }
}
"""


def append_rows(path: Path, rows: list[str]) -> list[int]:
    """Append CSV lines; return their file row numbers (the header is row 1)."""
    text = path.read_text(encoding="utf-8-sig")
    if not text.endswith("\n"):
        text += "\n"
    first = len(text.splitlines()) + 1
    path.write_text(text + "".join(r + "\n" for r in rows), encoding="utf-8")
    return list(range(first, first + len(rows)))


def demo_row(csv_name: str, code: str) -> int:
    """File row of the demo table's row keyed ``code`` (the header is row 1)."""
    lines = (DEMO / "knowledge" / csv_name).read_text(encoding="utf-8-sig").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if f",{code}," in line)


def where(text: str, snippet: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, column in characters) of the nth occurrence of snippet in text."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(snippet, at + 1)
    before = text[:at]
    return before.count("\n") + 1, at - (before.rfind("\n") + 1) + 1


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    pack = tmp_path_factory.mktemp("lint") / "pack"
    shutil.copytree(DEMO, pack, ignore=shutil.ignore_patterns("examples"))
    k = pack / "knowledge"
    rows = {}
    rows["sex"] = append_rows(k / "drug_sex.csv", [
        "SEX-0901,XG04CBF036,非那雄胺,1,男性,限男性使用,示例 第9批",        # duplicates SEX-0001 (row 2)
        "SEX-0902,XG04CAT021,坦索罗辛,2,女性,限女性使用,示例 第9批",        # contradicts SEX-0002 (row 3)
    ])
    rows["dose"] = append_rows(k / "drug_daily_dose.csv", [
        "DOSE-0901,XA10BAE098,二甲双胍,3g,成人每日最大剂量3g,示例 第9批",   # 3g vs 2g, row 2
        "DOSE-0902,XN05AHA142A001,奥氮平片,30,每日剂量不超过30mg,示例 第9批",  # nested under XN05AHA142 (20)
    ])
    rows["age"] = append_rows(k / "drug_age_min.csv", [
        "AGE-0901,ＸJ01MAZ075,全角,18,t,s",
        "AGE-0902,XJ01MAZ076 ,尾随空格,18,t,s",
        "AGE-0903,XJ01 MAZ077,中间空格,18,t,s",
        "AGE-0904,XJ01MA1074,第6位应为字母,18,t,s",
        "AGE-0905,Z01234567890123456789,中成药过长,18,t,s",
        "AGE-0906,T00010A202,饮片含字母,18,t,s",
        "AGE-0907,C0102A,耗材含字母,18,t,s",
        "AGE-0908,xJ01MAZ078,小写,18,t,s",
        "AGE-0909,Y12345,未知类别,18,t,s",
        "AGE-0910,,空键,18,t,s",
        "AGE-0911,XJ01MAZ07400101010047801,超长西药,18,t,s",
    ])
    rows["price"] = append_rows(k / "item_price_cap.csv", [
        "PRICE-0901,00331001014000,十四位项目,1,t,s",
        "PRICE-0902,C0020105001000000000000000,二十六位耗材,1,t,s",
        "PRICE-0903,C00201050010000000000000001,完整耗材,1,t,s",
    ])
    rows["ind"] = append_rows(k / "drug_indication.csv", [
        "IND-0901,XB01ACA057,示例,I6３;1I63;E11.9000;K35.800x001,t,s",
    ])
    (k / "empty.csv").write_text("code,point_id,limit\n", encoding="utf-8")
    (k / "dated.csv").write_text("code,point_id,valid_from,valid_to,limit\n"
                                 "XJ01CAA040,D-1,2023-01-01,2023-12-31,5\n"
                                 "XJ01CAA040,D-2,2026-01-01,,5\n", encoding="utf-8")
    (k / "unused_items.csv").write_text("code,point_id\nXA10BAE098,U-1\nXJ01CAA040,U-2\nXJ01CAA04O,U-3\n",
                                        encoding="utf-8")
    (k / "unused_depts.csv").write_text("dept,point_id\nA15,D-1\nA03.01,D-2\n", encoding="utf-8")
    (pack / "broken.rules").write_text(BROKEN_RULES, encoding="utf-8")
    report = lint_path(pack)
    return pack, rows, report


def findings(report, code, **attrs) -> list[LintFinding]:
    out = [f for f in report.findings if f.code == code]
    for name, value in attrs.items():
        out = [f for f in out if getattr(f, name) == value]
    return out


def table_finding(report, code, csv_name, row, column=None) -> LintFinding:
    hits = [f for f in findings(report, code, row=row) if f.file and f.file.endswith(csv_name)
            and (column is None or f.column == column)]
    assert len(hits) == 1, f"expected one {code} at {csv_name} row {row}, got {hits}\nall: " + "\n".join(
        f"{f.location} {f.code} {f.message}" for f in report.findings)
    return hits[0]


def rule_finding(report, code, line, col) -> LintFinding:
    hits = [f for f in findings(report, code) if f.span and f.span.file.endswith("broken.rules")
            and (f.span.line, f.span.col) == (line, col)]
    assert len(hits) == 1, f"expected one {code} at broken.rules:{line}:{col}, got: " + "\n".join(
        f"{f.location} {f.code} {f.message}" for f in report.findings if f.span)
    return hits[0]


# ---- the shipped pack -----------------------------------------------------------------------------


def test_history_demo_pack_lints_without_errors():
    report = lint_path(ROOT / "rulesets" / "demo_history")
    assert report.ruleset.ok and report.ruleset.rules
    errors = [f for f in report.findings if f.severity == ERROR]
    assert not errors, "\n".join(render_finding(f, report.ruleset.sources) for f in errors)


def test_demo_pack_lints_without_errors():
    report = lint_path(DEMO)
    assert report.ruleset.ok
    errors = [f for f in report.findings if f.severity == ERROR]
    assert not errors, "\n".join(render_finding(f, report.ruleset.sources) for f in errors)
    result = CliRunner().invoke(main, ["lint", str(DEMO)])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output


# ---- L001 / L002: knowledge rows ------------------------------------------------------------------------


def test_duplicate_row(broken):
    _, rows, report = broken
    f = table_finding(report, "L001", "drug_sex.csv", rows["sex"][0])
    first = demo_row("drug_sex.csv", "XG04CBF036")
    assert f.severity == ERROR and f.other_row == first and f.column == "code" and f.table == "drug_sex"
    assert f"duplicates row {first}" in f.message


def test_contradicting_rows_same_key(broken):
    _, rows, report = broken
    f = table_finding(report, "L002", "drug_sex.csv", rows["sex"][1])
    first = demo_row("drug_sex.csv", "XG04CAT021")
    assert f.severity == ERROR and f.other_row == first and f.column == "gend"
    assert f"gend 2 here, 1 in row {first}" in f.message
    g = table_finding(report, "L002", "drug_daily_dose.csv", rows["dose"][0])
    metformin = demo_row("drug_daily_dose.csv", "XA10BAE098")
    assert g.other_row == metformin and g.column == "max_daily_dose" and f"3g here, 2g in row {metformin}" in g.message


def test_contradicting_rows_nested_prefix(broken):
    _, rows, report = broken
    f = table_finding(report, "L002", "drug_daily_dose.csv", rows["dose"][1])
    olanzapine = demo_row("drug_daily_dose.csv", "XN05AHA142")
    assert f.other_row == olanzapine and "codes starting with XN05AHA142A001" in f.message
    assert f"30mg here, 20mg in row {olanzapine}" in f.message and f.severity == ERROR


def test_rows_with_different_codes_are_not_reported(broken):
    _, _, report = broken
    # the demo's own rows of drug_sex have distinct keys and are not duplicates of each other
    own = {demo_row("drug_sex.csv", c) for c in ("XG04CBF036", "XG04CAT021", "XG03DAH062")}
    reported = [f for f in findings(report, "L001") + findings(report, "L002") if f.file.endswith("drug_sex.csv")]
    assert len(reported) == 2 and not [f for f in reported if f.row in own]


PAIR_RULES = """\
table herbs from "herbs.csv" {
  key     herb_a   text match prefix
  partner herb_b   text match prefix
  column  point_id text role id
  column  name_a   text
  column  name_b   text
  column  text     text role text
}

table charges from "charges.csv" {
  key     main_code text match exact
  partner sub_code  text match exact
  column  point_id  text role id
  column  text      text role text
}

rule HERBS "配伍禁忌" {
  result  明确
  pair    p = herbs[med_list_codg] within prescription unordered
  message "m"
}

rule CHARGES "重复收费" {
  result  明确
  pair    p = charges[med_list_codg] within day
  message "m"
}
"""


def test_pair_tables(tmp_path):
    (tmp_path / "pairs.rules").write_text(PAIR_RULES, encoding="utf-8")
    (tmp_path / "herbs.csv").write_text(
        "point_id,herb_a,name_a,herb_b,name_b,text\n"
        "H-1,T000100001,甘草,T000200001,甘遂,甘草反甘遂\n"
        "H-2,T000100001,甘草,T000200002,京大戟,甘草反大戟\n"     # same A, another B: another point
        "H-3,T000200001,甘遂,T000100001,甘草,甘草反甘遂\n",      # H-1 the other way round
        encoding="utf-8")
    (tmp_path / "charges.csv").write_text(
        "point_id,main_code,sub_code,text\n"
        "C-1,003107000010000,003107000030000,不得同日收取\n"
        "C-2,003107000030000,003107000010000,反向\n"             # ordered: B×A is another point
        "C-3,003107000010000,003107000030000,不得同日收取\n",    # C-1 again
        encoding="utf-8")
    report = lint_path(tmp_path)
    assert report.ruleset.ok, report.ruleset.render_diagnostics()
    rows = [(Path(f.file).name, f.row, f.other_row, f.code, f.severity) for f in report.findings if f.file]
    assert rows == [("charges.csv", 4, 2, "L001", ERROR), ("herbs.csv", 4, 2, "L001", ERROR)], rows
    herb = next(f for f in report.findings if f.file and f.file.endswith("herbs.csv"))
    assert "other way round" in herb.message


# ---- L003: codes ---------------------------------------------------------------------------------------

BAD_CODES = [  # (rows key, index, csv, column, severity, message part, caret position in the cell)
    ("age", 0, "drug_age_min.csv", "code", ERROR, "full-width character 'Ｘ' at position 1", 0),
    ("age", 1, "drug_age_min.csv", "code", WARNING, "stray whitespace", 10),
    ("age", 2, "drug_age_min.csv", "code", ERROR, "space inside it (position 5)", 4),
    ("age", 3, "drug_age_min.csv", "code", ERROR, "'1' at position 7, expected a letter", 6),
    ("age", 4, "drug_age_min.csv", "code", ERROR, "too long for a Chinese-patent-medicine code", 20),
    ("age", 5, "drug_age_min.csv", "code", ERROR, "'A' at position 7, expected a digit", 6),
    ("age", 6, "drug_age_min.csv", "code", ERROR, "not a consumable code prefix", 5),
    ("age", 7, "drug_age_min.csv", "code", ERROR, "lower-case 'x' at position 1", 0),
    ("age", 8, "drug_age_min.csv", "code", ERROR, "does not start like a national code", 0),
    ("age", 9, "drug_age_min.csv", "code", ERROR, "empty key", None),
    ("age", 10, "drug_age_min.csv", "code", ERROR, "too long for a western-drug code", 23),
    ("price", 0, "item_price_cap.csv", "code", ERROR, "not a complete service-item code: 14 characters", 13),
    ("price", 1, "item_price_cap.csv", "code", ERROR, "not a complete consumable code: 26 characters", 25),
]


@pytest.mark.parametrize("key,index,csv_name,column,severity,part,position", BAD_CODES,
                         ids=[f"{c[0]}-{c[1]}" for c in BAD_CODES])
def test_bad_code_in_table(broken, key, index, csv_name, column, severity, part, position):
    _, rows, report = broken
    f = table_finding(report, "L003", csv_name, rows[key][index], column)
    assert f.severity == severity and part in f.message, f.message
    assert f.position == position


def test_well_formed_codes_in_tables_are_not_reported(broken):
    _, rows, report = broken
    complete_consumable = rows["price"][2]
    assert not [f for f in findings(report, "L003", row=complete_consumable) if f.file.endswith("item_price_cap.csv")]
    ind = [f for f in findings(report, "L003", row=rows["ind"][0]) if f.file.endswith("drug_indication.csv")]
    assert all("K35.800x001" not in f.message for f in ind)


def test_tables_no_rule_uses_are_judged_by_their_values(broken):
    _, _, report = broken
    f = table_finding(report, "L003", "unused_items.csv", 4, "code")
    assert "'O' at position 10, expected a digit" in f.message
    assert not [g for g in report.findings if g.file and g.file.endswith("unused_items.csv") and g.row != 4]
    assert not [g for g in report.findings if g.file and g.file.endswith("unused_depts.csv")]


def test_bad_diagnosis_codes_in_list_column(broken):
    _, rows, report = broken
    hits = [f for f in findings(report, "L003", row=rows["ind"][0]) if f.file.endswith("drug_indication.csv")]
    assert all(f.column == "diag_prefixes" for f in hits)
    messages = sorted((f.position, f.message) for f in hits)
    cell = "I6３;1I63;E11.9000;K35.800x001"
    assert [p for p, _ in messages] == [cell.index("３"), cell.index("1I63"), cell.index("E11.9000") + 7]
    assert "full-width character '３'" in messages[0][1]
    assert "ICD-10" in messages[1][1] and "expected a letter" in messages[1][1]
    assert "expected 'x'" in messages[2][1]


def test_bad_code_in_rule_condition(broken):
    _, _, report = broken
    line, col = where(BROKEN_RULES, '"XB0１"')
    f = rule_finding(report, "L003", line, col)
    assert f.severity == ERROR and f.rule == "BAD_FOLD" and "full-width character '１'" in f.message
    assert f.span.end_col == col + len('"XB0１"')


def test_table_finding_renders_caret_under_wide_character(broken):
    _, rows, report = broken
    f = table_finding(report, "L003", "drug_age_min.csv", rows["age"][0], "code")
    text = render_finding(f, report.ruleset.sources).splitlines()
    assert text[0].startswith(f"{f.file}:{f.row}:code: error[L003 bad-code]:")
    value_line, caret_line = text[1], text[2]
    assert value_line.endswith("code = ＸJ01MAZ075")
    bar = value_line.index("| ") + 2
    assert caret_line[bar:] == "       ^^"  # "code = " is 7 cells; the full-width Ｘ is 2 cells wide
    assert display_width(value_line[bar:bar + 7]) == 7


# ---- L004: rules that never fire ------------------------------------------------------------------------


def test_contradictory_equalities(broken):
    _, _, report = broken
    line, col = where(BROKEN_RULES, 'gend == "2"')
    f = rule_finding(report, "L004", line, col)
    assert f.severity == ERROR and f.rule == "BAD_SEX"
    assert '\'gend == "1"\' and \'gend == "2"\' cannot both hold' in f.message


def test_contradictory_ranges_across_scope_and_when(broken):
    _, _, report = broken
    line, col = where(BROKEN_RULES, "age_years > 10")
    f = rule_finding(report, "L004", line, col)
    assert f.rule == "BAD_AGE" and "'age_years < 5'" in f.message and f"(line {line - 1})" in f.message


def test_condition_folds_to_false(broken):
    _, _, report = broken
    line, col = where(BROKEN_RULES, 'med_list_codg startswith {"XJ01CAA040"')
    f = rule_finding(report, "L004", line, col)
    assert f.rule == "BAD_FOLD" and "'when' condition is always false" in f.message


def test_lookup_on_empty_table(broken):
    _, _, report = broken
    line, col = where(BROKEN_RULES, "lookup  k = empty_tab")
    f = rule_finding(report, "L004", line, col)
    assert f.rule == "BAD_EMPTY" and "'empty_tab' has no rows" in f.message


def test_effective_window_that_ends_before_it_starts(broken):
    _, _, report = broken
    line, col = where(BROKEN_RULES, "2024-01-01")
    f = rule_finding(report, "L004", line, col)
    assert f.rule == "BAD_EFFECTIVE" and "ends (2024-01-01) before it starts (2025-01-01)" in f.message
    # check's own bad_date at the same place is not repeated as L000
    assert not [g for g in findings(report, "L000") if g.span and (g.span.line, g.span.col) == (line, col)]


def test_no_knowledge_row_effective_in_rule_window(broken):
    _, _, report = broken
    line, col = where(BROKEN_RULES, "lookup    k = dated")
    f = rule_finding(report, "L004", line, col)
    assert f.rule == "BAD_WINDOW" and "no row of table 'dated'" in f.message


def test_satisfiable_conditions_are_not_reported(broken):
    _, _, report = broken
    assert not [f for f in report.findings if f.rule == "GOOD_RANGE"]
    assert not [f for f in findings(report, "L004") if f.span and not f.span.file.endswith("broken.rules")]


def test_rule_without_stages_never_fires():
    rs = load_ruleset(DEMO)
    target = rs.rules[0]
    rs2 = dataclasses.replace(rs, rules=(dataclasses.replace(target, stages=frozenset()),) + rs.rules[1:])
    hits = [f for f in lint_ruleset(rs2) if f.code == "L004" and f.rule == target.code]
    assert len(hits) == 1 and "runs at no stage" in hits[0].message
    assert not [f for f in lint_ruleset(rs) if f.code == "L004"]


# ---- L005 / L006: examples ----------------------------------------------------------------------------


def test_rule_without_examples(broken):
    _, _, report = broken
    for code in ("BAD_AGE", "BAD_FOLD", "BAD_EMPTY"):
        line, col = where(BROKEN_RULES, f"rule {code} ")
        f = rule_finding(report, "L005", line, col + len("rule "))
        assert f.severity == WARNING and f.rule == code and f.span.end_col == col + len("rule ") + len(code)


def test_rule_whose_examples_never_flag(broken):
    _, _, report = broken
    line, col = where(BROKEN_RULES, "rule BAD_SEX ")
    f = rule_finding(report, "L006", line, col + len("rule "))
    assert f.severity == WARNING and f.rule == "BAD_SEX"
    assert [g.rule for g in findings(report, "L006") if g.span.file.endswith("broken.rules")] == ["BAD_SEX",
                                                                                                   "BAD_WINDOW"]


# ---- L000: what check reports ---------------------------------------------------------------------------


def test_check_errors_are_findings_and_the_rest_is_still_linted(tmp_path):
    (tmp_path / "r.rules").write_text('rule A "a" {\n  result 明确\n  when cnt > 1 and no_such_field == 1\n'
                                      '  message "m"\n}\n'
                                      'rule B "b" {\n  result 明确\n  when cnt > 2 and cnt < 1\n  message "m"\n}\n',
                                      encoding="utf-8")
    report = lint_path(tmp_path)
    l0 = findings(report, "L000")
    assert [(f.check_code, f.span.line, f.span.col) for f in l0] == [("unknown_field", 3, 20)]
    assert [(f.rule, f.span.line) for f in findings(report, "L004")] == [("B", 8)]


# ---- L007: exemptions -----------------------------------------------------------------------------------


def test_exemptions_that_match_nothing():
    rs = load_ruleset(DEMO)
    exemptions = [
        {"rule": "GZ10000301004000", "fixmedins_code": "H001"},                  # 0 fine
        {"rule": "GZ10000301004001", "bilg_dept_codg": "A15"},                   # 1 unknown rule (typo)
        {"point_id": "SEX-0001", "psn_no": "P1"},                                # 2 fine
        {"point_id": "SEX-9999"},                                                # 3 unknown point
        {"rule": "DEMO_AGE_MIN", "point_id": "SEX-0001"},                       # 4 rule never cites the point
        {"rule": "GZ10000301004000", "point_id": "SEX-0001", "period": ("2025-01-01", "2025-12-31")},  # 5 fine
        {"rule": "GZ10000301004000", "period": {"from": "2023-01-01", "to": "2023-06-30"}},  # 6 before effective
        {"bilg_dr_codg": "D01", "period": "2025-06-01/2025-01-01"},            # 7 period ends before it starts
        {"rule": "DEMO_NEWBORN", "point_id": "AGE-0001"},                       # 8 rule has no table
        {"rule": "NOPE", "file": "profiles/local.toml", "line": 12},             # 9 unknown rule, with a location
        {"knowledge_id": "DOSE-0002", "period": "not a period"},                # 10 unreadable period
    ]
    out = lint_exemptions(exemptions, rs)
    assert all(f.code == "L007" and f.severity == WARNING for f in out)
    flagged = sorted({int(f.message.split("#")[1].split(":")[0]) - 1 for f in out})
    assert flagged == [1, 3, 4, 6, 7, 8, 9, 10]
    by_index = {int(f.message.split("#")[1].split(":")[0]) - 1: f for f in out}
    assert "rule GZ10000301004001 is not in the pack" in by_index[1].message
    assert by_index[1].hint == "did you mean GZ10000301004000?"
    assert "knowledge point SEX-9999" in by_index[3].message
    assert "never cites knowledge point SEX-0001" in by_index[4].message and "drug_age_min" in by_index[4].message
    assert "not in effect" in by_index[6].message
    assert "ends (2025-01-01) before it starts (2025-06-01)" in by_index[7].message
    assert "looks up no table" in by_index[8].message
    span = by_index[9].span
    assert span is not None and (span.file, span.line) == ("profiles/local.toml", 12)
    assert by_index[9].location == "profiles/local.toml:12:1"
    assert "cannot be read" in by_index[10].message


# ---- code formats -------------------------------------------------------------------------------------

GOOD = [
    ("XB01ACA056B002020101763", ITEM, EXACT), ("XB01ACA056", ITEM, PREFIX), ("XB01", ITEM, PREFIX),
    ("ZA01AAA0001010101536", ITEM, EXACT), ("T000100001", ITEM, EXACT), ("003310010140000", ITEM, EXACT),
    ("00331001", ITEM, PREFIX), ("C00201050010000000000000001", ITEM, EXACT), ("C0020105", ITEM, PREFIX),
    ("I63", DIAG, PREFIX), ("I6", DIAG, PREFIX), ("I10.x00", DIAG, EXACT), ("A00.000x001", DIAG, EXACT),
    ("E11.9", DIAG, EXACT), ("I63", DIAG, EXACT),
]
BAD = [
    ("XB01ACA056", ITEM, EXACT, "not a complete western-drug code"), ("XB0IACA056", ITEM, PREFIX, "position 4"),
    ("T0001000011", ITEM, PREFIX, "too long"), ("0033100101400001", ITEM, PREFIX, "too long"),
    ("00331001014000A", ITEM, PREFIX, "expected a digit"), ("I63.", DIAG, EXACT, "not a complete"),
    ("I6A", DIAG, PREFIX, "position 3"), ("A00.000y001", DIAG, PREFIX, "expected 'x'"),
    ("Ｉ63", DIAG, PREFIX, "full-width"), ("I63\u3000", DIAG, PREFIX, "stray whitespace"),
]


@pytest.mark.parametrize("code,domain,mode", GOOD)
def test_well_formed_codes(code, domain, mode):
    assert check_code(code, domain, mode) == []


@pytest.mark.parametrize("code,domain,mode,part", BAD)
def test_malformed_codes(code, domain, mode, part):
    problems = check_code(code, domain, mode)
    assert problems and part in problems[0].message


def test_lower_case_diagnosis_is_only_a_warning():
    # has_diag compares upper-cased, so a lower-case prefix still matches; an item code would not
    assert [p.severity for p in check_code("i63", DIAG, PREFIX)] == [WARNING]
    assert [p.severity for p in check_code("xB01ACA056", ITEM, PREFIX)] == [ERROR]


# ---- the command ---------------------------------------------------------------------------------------


def test_cli_text_output_and_exit_status(broken):
    pack, rows, _ = broken
    result = CliRunner().invoke(main, ["lint", str(pack)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    line, col = where(BROKEN_RULES, 'gend == "2"')
    assert f"broken.rules:{line}:{col}: error[L004 never-fires]:" in result.output
    assert f"drug_sex.csv:{rows['sex'][0]}:code: error[L001 duplicate-row]:" in result.output
    assert "error(s)" in result.output and "L003" in result.output


def test_cli_json(broken):
    pack, rows, report = broken
    result = CliRunner().invoke(main, ["lint", "--json", str(pack)])
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["summary"]["errors"] == report.count(ERROR) and doc["summary"]["warnings"] == report.count(WARNING)
    dup = [f for f in doc["findings"] if f["code"] == "L001" and f["row"] == rows["sex"][0]]
    assert len(dup) == 1 and dup[0]["file"].endswith("drug_sex.csv") and dup[0]["column"] == "code"
    assert dup[0]["name"] == "duplicate-row" and dup[0]["other_row"] == 2 and dup[0]["line"] is None
    line, col = where(BROKEN_RULES, "age_years > 10")
    never = [f for f in doc["findings"] if f["code"] == "L004" and f["rule"] == "BAD_AGE"]
    assert [(f["line"], f["col"]) for f in never] == [(line, col)] and never[0]["file"].endswith("broken.rules")


def test_cli_fail_on_warning(tmp_path):
    (tmp_path / "r.rules").write_text('rule W "无例子" {\n  result 可疑\n  when med_list_codg startswith "XJ01" '
                                      'and cnt > 3\n  message "m"\n}\n', encoding="utf-8")
    default = CliRunner().invoke(main, ["lint", str(tmp_path)])
    assert default.exit_code == 0, default.output
    assert "L005" in default.output and "0 error(s), 1 warning(s)" in default.output
    strict = CliRunner().invoke(main, ["lint", "--fail-on", "warning", str(tmp_path)])
    assert strict.exit_code == 1
    bad = CliRunner().invoke(main, ["lint", "--fail-on", "never", str(tmp_path)])
    assert bad.exit_code == 2


@pytest.mark.parametrize("make", ["missing", "no_rules"])
def test_cli_bad_path(tmp_path, make):
    path = tmp_path / "nothing-here" if make == "missing" else tmp_path
    result = CliRunner().invoke(main, ["lint", str(path)])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert ("does not exist" if make == "missing" else "no .rules files") in result.output


def test_every_lint_code_is_documented():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code, (name, _) in CODES.items():
        assert f"`{code}`" in readme and name in readme, f"{code} {name} is not in the README"


def test_rows_of_one_code_with_different_restriction_kinds_are_not_contradictions(tmp_path):
    """An imported drug batch may restrict one drug by sex and by age: two knowledge points."""
    (tmp_path / "t.csv").write_text("point_id,code,restriction,gend,max_age,text\n"
                                    "P1,XG04CBF036,gend,1,,限男性\nP2,XG04CBF036,age,,17,儿童禁用\n"
                                    "P3,XG04CAT021,gend,1,,限男性\nP4,XG04CAT021,gend,2,,限女性\n", encoding="utf-8")
    (tmp_path / "r.rules").write_text(
        'table t from "t.csv" {\n  key code text match prefix\n  column point_id text role id\n'
        '  column restriction text\n  column gend text\n  column max_age number\n  column text text role text\n}\n'
        'rule R1 "限性别" {\n  result 明确\n  lookup k = t[med_list_codg]\n'
        '  when k.restriction == "gend" and gend != k.gend\n  message "m"\n}\n', encoding="utf-8")
    from claimaudit.engine.lint import lint_path
    found = [(f.code, f.row) for f in lint_path(tmp_path).findings if f.code == "L002"]
    assert found == [("L002", 5)]  # only the real contradiction: XG04CAT021 both 男 and 女
