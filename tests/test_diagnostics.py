"""Every stable diagnostic code, with its exact file:line:col, and how ``claimaudit check`` shows it.

Columns are 1-based and count characters (a CJK character is one column); the caret line of the
rendered diagnostic pads by display width (a CJK character is two terminal cells).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from claimaudit.dsl.diagnostics import CODES, Diagnostic, display_width, render
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.cli import main

DEMO = Path(__file__).resolve().parent.parent / "rulesets" / "demo"
RULE_FILE = "rules.rules"
# Parser internals that must never reach a user.
LARK_LEAKS = ("Token(", "__ANON", "$END", "$end", "UnexpectedToken", "UnexpectedCharacters", "UnexpectedEOF",
              "lark", "Traceback", "Expected one of")


def src(*lines: str) -> str:
    """Rule text from lines: ``src(a, b)`` puts ``a`` on line 1 and ``b`` on line 2."""
    return "\n".join(lines) + "\n"


# A knowledge table declared with a Chinese name and a Chinese file name; 5 lines long.
TABLE = (
    'table 限价表 from "knowledge/限价.csv" {',
    "  key    code      text match exact",
    "  column max_price number",
    "  column text      text role text",
    "}",
)
TABLE_CSV = {"knowledge/限价.csv": "code,max_price,text\nA001,12.5,限价12.5元\n"}


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    rules: str | bytes | None  # written to RULE_FILE; None writes no rule file
    line: int | None  # expected span; None for a diagnostic about the ruleset as a whole
    col: int | None
    end_col: int | None = None
    snippet: str | None = None  # the source text the span covers (checks the columns count characters)
    file: str | None = RULE_FILE  # the span's file, relative to the ruleset directory
    files: tuple = ()  # (relative path, text) pairs written beside the rule file
    load: str = "."  # what to load, relative to tmp_path
    message: tuple = ()  # substrings of the message
    hint: str | None = None  # substring of the hint
    others: tuple = ()  # codes that legitimately accompany this one


def _files(d: dict) -> tuple:
    return tuple(d.items())


CASES: dict[str, list[Case]] = {
    "syntax_error": [
        Case("single-equals-after-cjk", src('rule R1 "超限价" { result 明确 when cnt = 1 message "x" }'),
             1, 36, 37, "=", message=("unexpected '='",), hint="'=='"),
        Case("curly-quotes", src('rule R1 "名" {', "  result 明确", "  when hilist_name == “阿莫西林”",
                                 '  message "x"', "}"),
             3, 23, 24, "“", message=("unexpected character '“'",), hint="straight double quotes"),
        Case("file-ends-inside-rule", src('rule R1 "名" {', "  result 明确", "  when cnt > 1", '  message "药品超量"'),
             4, 17, message=("the file ends too early",), hint="'{' is probably not closed"),
        Case("string-not-closed", src('rule R1 "名" {', "  result 明确", "  when cnt > 1", '  message "药品超量', "}"),
             4, 11, 12, '"', message=("unexpected character '\"'",), hint="not closed"),
        Case("stray-word", src('rule R1 "名" {', "  result 明确", "  when cnt > 1", '  message "x"', "  严重度 高", "}"),
             5, 3, 6, "严重度", message=("unexpected '严重度'",), hint="not a statement keyword"),
        Case("form-feed-before-bad-character",  # \f is a line break for str.splitlines(), not for the parser
             src('rule R1 "名" {\f', "  result 明确", "  when cnt @ 1", '  message "x"', "}"),
             3, 12, 13, "@", message=("unexpected character '@'",)),
        Case("not-utf8", src('rule R1 "超限价" {', "}").encode("gbk"), 1, 1, message=("not UTF-8",)),
    ],
    "unknown_field": [
        Case("after-cjk-string", src('rule R1 "名" {', "  result 明确", '  when hilist_name == "阿莫西林" and cnt2 > 1',
                                     '  message "x"', "}"),
             3, 34, 38, "cnt2", message=("unknown field 'cnt2'",), hint="did you mean 'cnt'?"),
        Case("cjk-name", src('rule R1 "名" {', "  result 明确", '  when 性别 == "1"', '  message "x"', "}"),
             3, 8, 10, "性别", message=("unknown field '性别'",)),
        Case("qualifier-without-lookup", src('rule R1 "名" {', "  result 明确", "  when pric > k.max_price",
                                             '  message "x"', "}"),
             3, 15, 26, "k.max_price", message=("'k' is not a lookup",)),
    ],
    "unknown_table": [
        Case("cjk-table-name", src('rule R1 "名" {', "  result 明确", "  lookup k = 药品表[med_list_codg]",
                                   "  when cnt > 1", '  message "x"', "}"),
             3, 14, 17, "药品表", message=("unknown table '药品表'",), hint="no table is declared"),
    ],
    "unknown_column": [
        Case("cjk-column", src('rule R1 "限价" {', "  result 明确", "  lookup k = 限价表[med_list_codg]",
                               "  when pric > k.最高价", '  message "x"', "}", *TABLE),
             4, 17, 20, "最高价", files=_files(TABLE_CSV), message=("table '限价表' has no column '最高价'",)),
        Case("placeholder-column-is-checked-too",
             src('rule R1 "限价" {', "  result 明确", "  lookup k = 限价表[med_list_codg]",
                 "  when pric > k.max_pricee", '  message "x"', "}", *TABLE),
             4, 17, 27, "max_pricee", files=_files(TABLE_CSV), hint="did you mean 'max_price'?"),
    ],
    "unknown_function": [
        Case("cjk-function", src('rule R1 "名" {', "  result 明确", "  when 求和(cnt) > 1", '  message "x"', "}"),
             3, 8, 15, "求和(cnt)", message=("unknown function '求和'",)),
    ],
    "wrong_arguments": [
        Case("abs-two-args", src('rule R1 "名" {', "  result 明确", "  when abs(cnt, 1) > 1", '  message "x"', "}"),
             3, 8, 19, "abs(cnt, 1)", message=("abs() takes 1 argument(s), got 2",)),
    ],
    "type_mismatch": [
        Case("number-vs-text", src('rule R1 "名" {', "  result 明确", '  when cnt == "1"', '  message "x"', "}"),
             3, 8, 18, 'cnt == "1"', message=("cannot compare number with text",), hint="quote"),
        Case("and-side-after-cjk", src('rule R1 "名" {', "  result 明确", '  when hilist_name == "阿莫西林" and cnt',
                                       '  message "x"', "}"),
             3, 34, 37, "cnt", message=("'and' joins conditions",)),
        Case("when-not-a-condition", src('rule R1 "名" {', "  result 明确", "  when cnt + 1", '  message "x"', "}"),
             3, 8, 15, "cnt + 1", message=("'when' needs a condition",)),
    ],
    "unit_mismatch": [
        Case("days-vs-mass", src('rule R1 "名" {', "  result 明确", "  when 2 天 > 4 g", '  message "x"', "}"),
             3, 8, 17, "2 天 > 4 g", message=("cannot compare days with mass",)),
        Case("quantity-vs-number", src('rule R1 "名" {', "  result 明确", "  when daily_dose > 4", '  message "x"', "}"),
             3, 8, 22, "daily_dose > 4", message=("a quantity compared with a plain number",), hint="unit"),
    ],
    "unknown_unit": [
        Case("cjk-unit", src('rule R1 "名" {', "  result 明确", "  when daily_dose > 4 斤", '  message "x"', "}"),
             3, 23, 24, "斤", message=("unknown unit '斤'",)),
        Case("table-column-unit", src('table 剂量表 from "d.csv" {', "  key code text match exact",
                                      "  column max_dose quantity 斤", "}"),
             3, 19, 29, "quantity 斤", files=(("d.csv", "code,max_dose\n"),), message=("unknown unit '斤'",)),
    ],
    "bad_date": [
        Case("feb-30", src('rule R1 "名" {', "  result 明确", "  effective 2025-02-30", "  when cnt > 1",
                           '  message "x"', "}"),
             3, 13, 23, "2025-02-30", message=("'2025-02-30' is not a calendar date",)),
        Case("range-ends-before-start", src('rule R1 "名" {', "  result 明确", "  effective 2025-02-03 to 2025-01-01",
                                            "  when cnt > 1", '  message "x"', "}"),
             3, 27, 37, "2025-01-01", message=("ends (2025-01-01) before it starts (2025-02-03)",)),
        Case("example-after-cjk", src('rule R1 "名" {', "  result 明确", "  when cnt > 1", '  message "x"',
                                      '  example "闰年" {', '    patient { gend: "男", brdy: 2023-02-29 }',
                                      "    expect none", "  }", "}"),
             6, 32, 42, "2023-02-29", message=("'2023-02-29' is not a calendar date",)),
        Case("bad-datetime", src('rule R1 "名" {', "  result 明确", "  when fee_ocur_time > 2025-01-01T25:00",
                                 '  message "x"', "}"),
             3, 24, 40, "2025-01-01T25:00", message=("not a valid date-time",)),
    ],
    "duplicate_rule_code": [
        Case("second-rule", src('rule 限01 "甲" {', "  result 明确", "  when cnt > 1", '  message "x"', "}",
                                'rule 限01 "乙" {', "  result 明确", "  when cnt > 2", '  message "y"', "}"),
             6, 6, 9, "限01", message=("rule code 限01 is already used",), hint=f"{RULE_FILE}:1:6"),
    ],
    "duplicate_table": [
        Case("same-name-twice", src(*TABLE, *TABLE), 6, 7, 10, "限价表", files=_files(TABLE_CSV),
             message=("table '限价表' is declared twice",), hint=f"{RULE_FILE}:1:7"),
    ],
    "duplicate_attribute": [
        Case("result-twice", src('rule R1 "名" {', "  result 明确", "  result 可疑", "  when cnt > 1", '  message "x"',
                                 "}"),
             3, 3, 12, "result 可疑", message=("'result' is given twice in rule R1",), hint=f"{RULE_FILE}:2:3"),
    ],
    "unknown_placeholder": [
        Case("after-cjk-text", src('rule R1 "名" {', "  result 明确", "  when cnt > 1",
                                   '  message "药品【{hilist_name}】超出{上限}"', "}"),
             4, 31, 35, "{上限}", message=("placeholder '{上限}'",)),
        Case("after-escaped-quote", src('rule R1 "名" {', "  result 明确", "  when cnt > 1",
                                        '  message "他说\\"好\\"{nope}"', "}"),
             4, 19, 25, "{nope}", message=("placeholder '{nope}'",)),
    ],
    "bad_attribute_value": [
        Case("result-type", src('rule R1 "名" {', "  result 也许", "  when cnt > 1", '  message "x"', "}"),
             2, 10, 12, "也许", message=("result type '也许' is not one of",)),
        Case("third-stage", src('rule R1 "名" {', "  result 明确", "  stages 事前, 事后, 事外", "  when cnt > 1",
                                '  message "x"', "}"),
             3, 18, 20, "事外", message=("stage '事外'",)),
        Case("severity", src('rule R1 "名" {', "  result 明确", "  severity 严重", "  when cnt > 1", '  message "x"', "}"),
             3, 12, 14, "严重", message=("severity '严重'",)),
        Case("match-kind", src('table 限价表 from "knowledge/限价.csv" {', "  key    code      text match 模糊", "}"),
             2, 31, 33, "模糊", files=_files(TABLE_CSV), message=("key match '模糊'",)),
        Case("column-type", src('table 限价表 from "knowledge/限价.csv" {', "  key    code      text match exact",
                                "  column max_price 数字", "}"),
             3, 20, 22, "数字", files=_files(TABLE_CSV), message=("column type '数字'",)),
    ],
    "missing_attribute": [
        Case("no-when", src('rule 限01 "名" {', "  result 明确", '  message "x"', "}"),
             1, 6, 9, "限01", message=("rule 限01 has no 'when'",)),
        Case("no-result", src('rule 限01 "名" {', "  when cnt > 1", '  message "x"', "}"),
             1, 6, 9, "限01", message=("has no 'result'",)),
        Case("table-without-key", src('table 无键表 from "k.csv" {', "  column a text", "}"),
             1, 7, 10, "无键表", message=("needs exactly one key column",)),
    ],
    "table_file_missing": [
        Case("cjk-path", src('table 药品表 from "知识/缺失.csv" {', "  key code text match exact", "}"),
             1, 16, 27, '"知识/缺失.csv"', message=("'知识/缺失.csv' not found",)),
    ],
    "table_missing_column": [
        Case("no-max-price", src(*TABLE), 1, 16, 34, '"knowledge/限价.csv"',
             files=(("knowledge/限价.csv", "code,text\nA001,x\n"),),
             message=("'knowledge/限价.csv' has no column 'max_price'", "it has: code, text")),
    ],
    "table_bad_value": [
        # The span points into the CSV: line = file row (the header is row 1), column 1.
        Case("text-in-number-column", src(*TABLE), 3, 1, file="knowledge/限价.csv",
             files=(("knowledge/限价.csv", "code,max_price,text\nA001,12.5,好\nA002,十二元,坏\n"),),
             message=("限价.csv row 3, column 'max_price'", "'十二元' is not a number")),
    ],
    "bad_example": [
        Case("unknown-field", src('rule R1 "名" {', "  result 明确", "  when cnt > 1", '  message "x"',
                                  '  example "例" {', "    line L1 { 数量: 1 }", "    expect none", "  }", "}"),
             6, 15, 20, "数量: 1", message=("unknown claim field '数量'",)),
        Case("wrong-type", src('rule R1 "名" {', "  result 明确", "  when cnt > 1", '  message "x"',
                               '  example "例" {', '    line L1 { cnt: "1" }', "    expect none", "  }", "}"),
             6, 20, 23, '"1"', message=("field 'cnt' is number, the example gives text",)),
        Case("unknown-line-label", src('rule R1 "名" {', "  result 明确", "  when cnt > 1", '  message "x"',
                                       '  example "例" {', "    line L1 { cnt: 1 }", "    expect flagged L2", "  }",
                                       "}"),
             7, 5, 22, "expect flagged L2", message=("expect names line 'L2'",)),
    ],
    "bad_metadata": [
        Case("unknown-key", src('ruleset "规则包" {', '  作者 "张三"', "}"), 2, 3, 10, '作者 "张三"',
             message=("unknown ruleset field '作者'",)),
        Case("key-twice", src('ruleset "规则包" {', '  version "1"', '  version "2"', "}"), 3, 3, 14, 'version "2"',
             message=("'version' is given twice",)),
        Case("ruleset-twice", src('ruleset "甲" {}', 'ruleset "乙" {}'), 2, 1, 15, 'ruleset "乙" {}',
             message=("declared more than once",)),
    ],
    "no_rules": [
        # About the ruleset as a whole: no file, no line, no column.
        Case("empty-directory", None, None, None, file=None, load="空目录", message=("no .rules files", "空目录")),
        Case("missing-path", None, None, None, file=None, load="不存在", message=("does not exist", "不存在")),
    ],
}

ALL_CASES = [pytest.param(code, case, id=f"{code}-{case.id}") for code, cases in CASES.items() for case in cases]


def write_case(tmp_path: Path, case: Case) -> Path:
    if isinstance(case.rules, bytes):
        (tmp_path / RULE_FILE).write_bytes(case.rules)
    elif case.rules is not None:
        (tmp_path / RULE_FILE).write_text(case.rules, encoding="utf-8")
    for rel, text in case.files:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    target = tmp_path / case.load
    if case.rules is None and case.load == "空目录":
        target.mkdir()
    return target


def test_every_code_has_a_case():
    elsewhere = {"bad_profile"}  # profile files, not rule files: tests/test_profiles.py
    assert set(CASES) | elsewhere == set(CODES), "every diagnostic code needs a case (and no case for an unknown code)"
    assert all(CASES[c] for c in CODES if c not in elsewhere)


@pytest.mark.parametrize("code, case", ALL_CASES)
def test_diagnostic(tmp_path, code, case):
    rs = load_ruleset(write_case(tmp_path, case))
    assert sorted(d.code for d in rs.diagnostics) == sorted((code, *case.others)), rs.render_diagnostics()
    d = next(d for d in rs.diagnostics if d.code == code)
    assert d.is_error and not rs.ok
    for part in case.message:
        assert part in d.message
    if case.hint is not None:
        assert d.hint is not None and case.hint in d.hint
    if case.file is None:
        assert d.span is None
        return
    assert d.span is not None
    assert Path(d.span.file).resolve() == (tmp_path / case.file).resolve()
    assert (d.span.line, d.span.col) == (case.line, case.col)
    if case.end_col is not None:
        assert (d.span.end_line, d.span.end_col) == (case.line, case.end_col)
    if case.snippet is not None:
        text = (tmp_path / case.file).read_bytes().decode("utf-8")
        line = text.split("\n")[d.span.line - 1]
        assert line[d.span.col - 1:d.span.end_col - 1] == case.snippet


def test_undeclared_code_is_refused():
    with pytest.raises(ValueError):
        Diagnostic("no_such_code", "x", None)


def test_byte_order_mark_is_not_a_syntax_error(tmp_path):
    """Notepad saves UTF-8 with a BOM; columns on line 1 are counted without it."""
    (tmp_path / RULE_FILE).write_text("\ufeff" + src('rule R1 "名" { result 明确 when cnt2 > 1 message "x" }'),
                                      encoding="utf-8")
    rs = load_ruleset(tmp_path)
    assert [(d.code, d.span.line, d.span.col) for d in rs.diagnostics] == [("unknown_field", 1, 30)]


# ---- rendering through the CLI ---------------------------------------------------------------------


def run_check(path) -> "click.testing.Result":  # noqa: F821
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


def block_for(output: str, header: str) -> list[str]:
    """The rendered diagnostic starting at ``header``: header, source line, caret line, hint."""
    lines = output.split("\n")
    i = next(i for i, line in enumerate(lines) if line.startswith(header))
    return lines[i:i + 4]


def test_check_shows_code_location_source_and_caret_padded_by_display_width(tmp_path):
    f = tmp_path / RULE_FILE
    f.write_text(src('rule R1 "名" {', "  result 明确", '  when hilist_name == "阿莫西林" and cnt2 > 1',
                     '  message "x"', "}"), encoding="utf-8")
    result = run_check(f)
    assert result.exit_code != 0
    header, source, caret, hint = block_for(result.output, f"{f}:3:34: ")
    assert header == f"{f}:3:34: error[unknown_field]: unknown field 'cnt2'"
    assert source == '    3 |   when hilist_name == "阿莫西林" and cnt2 > 1'
    # 33 characters precede 'cnt2', 4 of them CJK: 37 terminal cells.
    assert caret == "      | " + " " * 37 + "^^^^"
    assert display_width(caret.index("^") * " ") == display_width(source[:source.index("cnt2")])
    assert hint == "      = hint: did you mean 'cnt'?"
    assert "1 error(s)" in result.output


def test_caret_under_cjk_span_is_two_cells_per_character(tmp_path):
    f = tmp_path / RULE_FILE
    f.write_text(src('rule R1 "名" {', "  result 明确", '  message "药品【{hilist_name}】超出{上限}"', "  when 性别 > 1", "}"),
                 encoding="utf-8")
    result = run_check(f)
    assert result.exit_code == 1
    _, source, caret, _ = block_for(result.output, f"{f}:3:31: error[unknown_placeholder]")
    assert source == '    3 |   message "药品【{hilist_name}】超出{上限}"'
    assert caret == "      | " + " " * (2 + 7 + 1 + 1 + 2 * 3 + 13 + 2 * 3) + "^" * 6
    _, source, caret, _ = block_for(result.output, f"{f}:4:8: error[unknown_field]")
    assert caret == "      | " + " " * 7 + "^^^^"


def test_caret_under_span_after_tabs(tmp_path):
    f = tmp_path / RULE_FILE
    f.write_text('rule R1 "名" {\n\tresult 明确\n\twhen\tcnt2 > 1\n\tmessage "x"\n}\n', encoding="utf-8")
    result = run_check(f)
    assert f"{f}:3:7: error[unknown_field]" in result.output
    _, source, caret, _ = block_for(result.output, f"{f}:3:7:")
    assert "\t" not in source and "\t" not in caret  # a terminal would move a tab to its own tab stop
    assert source[caret.index("^"):].startswith("cnt2 > 1")


def test_check_demo_pack_is_clean():
    result = run_check(DEMO)
    assert result.exit_code == 0, result.output
    assert "error[" not in result.output
    assert re.search(r"\d+ file\(s\), \d+ rule\(s\), \d+ table\(s\) .*: 0 error\(s\)", result.output)


def test_check_no_rules_has_no_location(tmp_path):
    result = run_check(tmp_path)
    assert result.exit_code == 1
    assert result.output.startswith(f"<ruleset>: error[no_rules]: no .rules files under '{tmp_path}'")


SYNTAX_ERRORS = {
    "equals": src('rule R1 "名" {', "  result 明确", "  when cnt = 1", "}"),
    "end-of-file": src('rule R1 "名" {', "  result 明确", "  when cnt > 1"),
    "extra-brace": src('rule R1 "名" {', "  result 明确", "  when cnt > 1", '  message "x"', "}", "}"),
    "junk-after-rule": src('rule R1 "名" { result 明确 when cnt > 1 message "x" }', "名称"),
    "missing-code": src('rule "名" {', "}"),
    "two-comparisons": src('rule R1 "名" {', "  when cnt > 1 > 2", "}"),
    "empty-operand": src('rule R1 "名" {', "  when cnt >", "}"),
    "bad-set": src('rule R1 "名" {', "  when cnt in {1,}", "}"),
    "empty-argument": src('rule R1 "名" {', "  when abs(,) > 1", "}"),
    "dotted-twice": src('rule R1 "名" {', "  when a.b.c", "}"),
    "unclosed-bracket": src('rule R1 "名" {', "  lookup k = t[med_list_codg", "}"),
    "record-without-comma": src('rule R1 "名" {', '  example "e" { line L1 { cnt: 1 pric: 2 } }', "}"),
    "amount-not-number": src('rule R1 "名" {', '  example "e" { line L1 { cnt: 1 } expect flagged L1 amount abc }', "}"),
    "fullwidth-punctuation": src('rule R1 "名" {', "  stages 事前，事后", "}"),
    "at-sign": src("@"),
    "only-keyword": src("rule"),
}


@pytest.mark.parametrize("name", sorted(SYNTAX_ERRORS))
def test_syntax_errors_read_friendly(tmp_path, name):
    f = tmp_path / RULE_FILE
    f.write_text(SYNTAX_ERRORS[name], encoding="utf-8")
    result = run_check(f)
    assert result.exit_code == 1
    first = result.output.split("\n", 1)[0]
    assert re.fullmatch(rf"{re.escape(str(f))}:\d+:\d+: error\[syntax_error\]: (unexpected .+|the file ends too early.*)",
                        first), first
    for leak in LARK_LEAKS:
        assert leak not in result.output, f"{leak!r} leaked: {result.output}"
    # the source line and a caret follow the header
    assert re.search(r"^ +\d+ \| ", result.output, re.M) and re.search(r"^ +\| +\^+$", result.output, re.M)


def test_render_without_source_has_no_caret():
    from claimaudit.dsl.ast import Span
    d = Diagnostic("unknown_field", "unknown field 'x'", Span("a.rules", 2, 3, 2, 4), hint="h")
    assert render(d, {}) == "a.rules:2:3: error[unknown_field]: unknown field 'x'\n      = hint: h"


GOLDEN_RULES = src(
    'ruleset "坏规则包" {',
    '  version "1"',
    '  作者 "张三"',
    "}",
    "",
    'rule R1 "限男性用药" {',
    "  result 明确",
    "  result 可疑",
    '  when 性别 == "1"',
    '  message "药品【{hilist_name}】限{gend_name}使用"',
    "}",
    "",
    'rule R1 "重复编码" {',
    "  result 明确",
    "  when cnt > 1",
    '  message "x"',
    "}",
    "",
    'rule R2 "日剂量" {',
    "  result 也许",
    "  when daily_dose > 4",
    "}",
)

GOLDEN_OUTPUT = """\
bad.rules:3:3: error[bad_metadata]: unknown ruleset field '作者'
    3 |   作者 "张三"
      |   ^^^^^^^^^^^
      = hint: known: version, authority, source, description, published
bad.rules:8:3: error[duplicate_attribute]: 'result' is given twice in rule R1
    8 |   result 可疑
      |   ^^^^^^^^^^^
      = hint: first given at bad.rules:7:3
bad.rules:9:8: error[unknown_field]: unknown field '性别'
    9 |   when 性别 == "1"
      |        ^^^^
bad.rules:10:30: error[unknown_placeholder]: placeholder '{gend_name}' names nothing this rule can show
   10 |   message "药品【{hilist_name}】限{gend_name}使用"
      |                                   ^^^^^^^^^^^
bad.rules:13:6: error[duplicate_rule_code]: rule code R1 is already used
   13 | rule R1 "重复编码" {
      |      ^^
      = hint: first used at bad.rules:6:6
bad.rules:20:10: error[bad_attribute_value]: result type '也许' is not one of definite, suspicious, 可疑, 明确
   20 |   result 也许
      |          ^^^^
bad.rules:21:8: error[unit_mismatch]: a quantity compared with a plain number
   21 |   when daily_dose > 4
      |        ^^^^^^^^^^^^^^
      = hint: give the number a unit, e.g. 4 g or 500 mg
bad.rules:19:6: error[missing_attribute]: rule R2 has no 'message'
   19 | rule R2 "日剂量" {
      |      ^^
1 file(s), 0 rule(s), 0 table(s) with 0 knowledge row(s): 8 error(s), 0 warning(s)
"""


def test_golden_check_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("bad.rules").write_text(GOLDEN_RULES, encoding="utf-8")
    result = run_check("bad.rules")
    assert result.exit_code == 1
    assert result.output == GOLDEN_OUTPUT


# ---- regressions: line splitting and follow-on errors ----------------------------------------------


def test_source_line_after_unicode_line_separator(tmp_path):
    f = tmp_path / RULE_FILE
    f.write_text(src('rule R1 "名" {', '  message "第一行\u2028第二行"', "  result 明确", "  when cnt2 > 1", "}"),
                 encoding="utf-8")
    result = run_check(f)
    _, source, caret, _ = block_for(result.output, f"{f}:4:8: error[unknown_field]")
    assert source == "    4 |   when cnt2 > 1"


def test_unknown_table_is_reported_once(tmp_path):
    (tmp_path / RULE_FILE).write_text(src('rule R1 "名" {', "  result 明确", "  lookup k = 药品表[med_list_codg]",
                                          "  when pric > k.max_price", '  message "{k.text}"', "}"), encoding="utf-8")
    rs = load_ruleset(tmp_path)
    assert [d.code for d in rs.diagnostics] == ["unknown_table"]
