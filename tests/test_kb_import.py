"""Importing the national knowledge batches (claimaudit kb import) and comparing versions (kb diff).

Fixtures are built here with openpyxl: merged cells, empty rows, full-width characters, stray spaces,
several date formats, an unknown layout, and a second batch superseding the first.
"""
import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from openpyxl import Workbook
from rich.cells import cell_len

from claimaudit.connectors.kb_diff import diff_tables
from claimaudit.connectors.kb_import import LayoutError, import_batch, write_outputs
from claimaudit.connectors.kb_read import RowError, normalize_code, parse_date
from claimaudit.connectors.kb_values import count_unit, pair_scope, parse_age, parse_course, parse_days
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine.cli import main
from claimaudit.engine.cli_kb import kb

ROOT = Path(__file__).resolve().parents[1]
TODAY = dt.date(2026, 11, 22)

DRUG_MAIN = [
    ["国家医保智能监管知识库 第1批 药品限定"],  # a title row merged across the columns
    ["序号", " 药品通用名 ", "药品说明", "限定类型", "限定对象（值域）"],
    [1, "非那雄胺", "限男性使用", "限定性别对象", "男"],
    [2, "尿促卵泡素", "限工伤或生育保险", "限定保险类型", "工伤/生育"],
    [None, None, None, None, None],
    [3, "头孢哌酮舒巴坦", "限二级及以上医疗机构", "限定机构等级", "二级/三级"],
    [4, "左氧氟沙星", "儿童禁用", "限定年龄对象", "儿童"],
    [5, "牛肺表面活性剂", "限新生儿", "限定年龄对象", "新生儿"],
    [6, "奥扎格雷", "限新发的急性血栓性脑梗死，支付不超过14天", "限定支付疗程", "14天"],
    [7, "奥扎格雷", "限住院", "限定就医方式", "住院"],
]
DRUG_CODES = [
    ["药品通用名", "序号", "国标编码", "限定类型"],
    ["非那雄胺", 1, " ＸＧ04ＣＢＦ036Ａ001010101234 ", "限定性别对象"],  # full-width, stray spaces
    ["尿促卵泡素", 1, "xg03gan185b002010100001", "限定保险类型"],  # lower case
    ["头孢哌酮舒巴坦", 1, "XJ01DDC178B001010100001", "限定机构等级"],
    ["左氧氟沙星", 1, "XJ01MAZ074A001010100478", None],
    [None, 2, "XJ01MAZ074B002010100479", None],  # the name is a merged cell over rows 5-6
    [None, None, None, None],
    ["牛肺表面活性剂", 1, "XR07AAN134B002010104512", "限定年龄对象"],
    ["奥扎格雷", 1, "XB01ACA056B002010100001", None],  # no type: both restrictions of the name
]


def xlsx(path: Path, sheets: dict, merges: dict | None = None) -> Path:
    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
        for rng in (merges or {}).get(name, ()):
            ws.merge_cells(rng)
    wb.save(path)
    return path


def write_csv(path: Path, rows, encoding="utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def drug_batch(tmp_path: Path, name="第1批药品限定.xlsx", main=DRUG_MAIN, codes=DRUG_CODES) -> Path:
    return xlsx(tmp_path / name, {"药品限定": main, "代码表": codes},
                {"药品限定": ["A1:E1"], "代码表": ["A5:A6"]})


def run(*args, **kw):
    result = CliRunner().invoke(main, [str(a) for a in args], **kw)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def by_code(rows, restriction=None):
    return {r["code"]: r for r in rows if restriction is None or r["restriction"] == restriction}


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


# ---- drug restrictions ----------------------------------------------------------------------

def test_drug_batch_joins_codes_and_normalizes_each_restriction(tmp_path):
    result = import_batch("drug_restriction", [drug_batch(tmp_path)], imported_on=TODAY)
    assert result.rejects == []
    assert len(result.rows) == 8  # 7 codes, one of them with two restrictions
    gend = by_code(result.rows, "gend")["XG04CBF036A001010101234"]
    assert (gend["gend"], gend["drug_name"], gend["text"]) == ("1", "非那雄胺", "限男性使用")
    ins = by_code(result.rows, "insutype")["XG03GAN185B002010100001"]
    assert (ins["insutypes"], ins["restriction_value"]) == (["410", "510"], "工伤/生育")
    assert by_code(result.rows, "hosp_lv")["XJ01DDC178B001010100001"]["hosp_lvs"] == \
        ["01", "02", "03", "04", "05", "06", "07"]
    ages = by_code(result.rows, "age")
    assert ages["XJ01MAZ074B002010100479"]["max_age"] == 17  # the merged name cell reached row 6
    assert ages["XJ01MAZ074A001010100478"]["min_age"] is None
    assert ages["XR07AAN134B002010104512"]["max_age_days"] == 27
    assert by_code(result.rows, "course")["XB01ACA056B002010100001"]["course_days"] == 14
    assert by_code(result.rows, "med_type")["XB01ACA056B002010100001"]["med_types"] == ["21", "22", "23", "24", "52"]


def test_drug_rows_carry_provenance_and_stable_point_ids(tmp_path):
    path = drug_batch(tmp_path)
    first = import_batch("drug_restriction", [path], effective_from=dt.date(2025, 1, 1), imported_on=TODAY)
    again = import_batch("drug_restriction", [path], effective_from=dt.date(2025, 1, 1), imported_on=TODAY)
    row = by_code(first.rows, "gend")["XG04CBF036A001010101234"]
    assert first.batch == "第1批药品限定"  # from the file name
    assert row["point_id"] == "第1批药品限定#3-2"
    assert row["source"] == "第1批药品限定 第1批药品限定.xlsx 第3行（代码表第2行）"
    assert (row["source_file"], row["source_row"], row["code_row"]) == ("第1批药品限定.xlsx", 3, 2)
    assert (row["imported_on"], row["effective_from"], row["effective_to"]) == (TODAY, dt.date(2025, 1, 1), None)
    assert [r["point_id"] for r in first.rows] == [r["point_id"] for r in again.rows]
    assert len({r["point_id"] for r in first.rows}) == len(first.rows)


def test_drug_rows_without_a_partner_are_rejected_with_sheet_and_row(tmp_path):
    main_rows = DRUG_MAIN + [[8, "无代码药", "限男性", "限定性别对象", "男"],
                             [9, "某药", "限火星", "限定星球对象", "火星"]]
    codes = DRUG_CODES + [["不存在的药", 1, "XA01AAA001A001010100001", None],
                          ["某药", 1, "XA01AAA002A001010100001", None]]
    result = import_batch("drug_restriction", [drug_batch(tmp_path, main=main_rows, codes=codes)])
    got = {(r.sheet, r.row, r.column): r.reason for r in result.rejects}
    assert set(got) == {("药品限定", 11, "药品通用名"), ("药品限定", 12, "限定类型"), ("代码表", 10, "药品通用名"),
                        ("代码表", 11, "药品通用名")}
    assert "在代码表中没有国标代码" in got[("药品限定", 11, "药品通用名")]
    assert "限定星球对象" in got[("药品限定", 12, "限定类型")]
    assert "在限定表中没有对应的行" in got[("代码表", 10, "药品通用名")]
    assert "药品限定第12行" in got[("代码表", 11, "药品通用名")]  # cites the restriction row that failed  # cites the restriction row that failed


def test_drug_main_sheet_with_its_own_code_column_needs_no_code_sheet(tmp_path):
    path = xlsx(tmp_path / "b.xlsx", {"Sheet1": [["药品通用名", "国标代码", "限定类型", "限定值域"],
                                                 ["非那雄胺", "XG04CBF036；XG04CBF037", "限定性别对象", "男性"]]})
    result = import_batch("drug_restriction", [path])
    assert [(r["code"], r["gend"], r["point_id"]) for r in result.rows] == [
        ("XG04CBF036", "1", "b#2-1"), ("XG04CBF037", "1", "b#2-2")]


# ---- bad input --------------------------------------------------------------------------------

def test_dates_in_several_formats_and_a_bad_one(tmp_path):
    header = ["项目名称", "项目编码", "限定类型", "限定性别", "生效日期"]
    dates = ["2025-01-01", "2025/1/1", "2025年1月1日", dt.datetime(2025, 1, 1), 45658, "20250101", "2025-02-30"]
    rows = [header] + [[f"项目{i}", f"00331001014000{i}", "限定性别", "女", d] for i, d in enumerate(dates)]
    result = import_batch("item_restriction", [xlsx(tmp_path / "items.xlsx", {"项目": rows})])
    assert [r["effective_from"] for r in result.rows] == [dt.date(2025, 1, 1)] * 6
    [bad] = result.rejects
    assert (bad.file, bad.sheet, bad.row, bad.column, bad.value) == ("items.xlsx", "项目", 8, "生效日期", "2025-02-30")
    assert "不是日历上的日期" in bad.reason


def test_rejects_csv_lists_every_row_not_understood(tmp_path):
    rows = [["项目名称", "项目说明", "项目代码", "限定类型", "限定对象"],
            ["A", "", "003310010140001", "限定年龄", "60岁及以上"],
            ["B", "", "003310010140002", "限定年龄", "3个月以下"],
            ["C", "", "003310010140003", "限定就医方式", "日间手术"],
            ["D", "", "", "限定性别", "男"],
            ["E", "", "血常规", "限定性别", "男"],
            ["F", "", "003310010140006", "限定性别", "男/女"],
            [None, None, None, None, None],
            ["G", "限女性", "003310010140007；003310010140008", "限定性别", "女"]]
    src = xlsx(tmp_path / "items.xlsx", {"诊疗项目": rows})
    out = tmp_path / "kb" / "item.csv"
    result = run("kb", "import", "--kind", "item_restriction", src, "-o", out)
    assert result.exit_code == 0, result.output
    rejects = read_csv(tmp_path / "kb" / "item.rejects.csv")
    assert [(r["sheet"], r["row"], r["column"]) for r in rejects] == [
        ("诊疗项目", "3", "限定对象"), ("诊疗项目", "4", "限定对象"), ("诊疗项目", "5", "项目代码"),
        ("诊疗项目", "6", "项目代码"), ("诊疗项目", "7", "限定对象")]
    assert "以月计" in rejects[0]["reason"] and "--code-map med_type:日间手术" in rejects[1]["reason"]
    assert rejects[3]["value"] == "血常规"
    table = read_csv(out)
    assert [(r["code"], r["min_age"], r["gend"]) for r in table] == [
        ("003310010140001", "60", ""), ("003310010140007", "", "2"), ("003310010140008", "", "2")]
    assert len(table) - 1 + len(rejects) == 7  # every non-empty data row is imported or rejected
    assert "5 row(s) rejected" in result.output and "诊疗项目' row 3" in result.output


def test_code_map_option_imports_what_was_rejected(tmp_path):
    rows = [["项目名称", "项目编码", "限定类型", "限定值域"], ["A", "003310010140001", "限定就医方式", "日间手术"]]
    src = xlsx(tmp_path / "items.xlsx", {"S": rows})
    out = tmp_path / "item.csv"
    run("kb", "import", "--kind", "item_restriction", src, "-o", out, "--code-map", "med_type:日间手术=28")
    assert read_csv(out)[0]["med_types"] == "28"
    result = run("kb", "import", "--kind", "item_restriction", src, "-o", out, "--code-map", "nonsense")
    assert result.exit_code == 2 and "FIELD:NAME=CODES" in result.output


def test_unknown_layout_is_an_error_naming_file_sheet_expected_and_found(tmp_path):
    src = xlsx(tmp_path / "weird.xlsx", {"目录": [["说明"], ["药品名", "编号", "备注说明"], ["x", "1", "y"]]})
    out = tmp_path / "t.csv"
    result = run("kb", "import", "--kind", "duplicate_charge", src, "-o", out)
    assert result.exit_code == 2
    assert "weird.xlsx sheet '目录'" in result.output
    assert "主项代码/主项目代码" in result.output  # expected
    assert "closest is row 2: 药品名 | 编号 | 备注说明" in result.output  # found
    assert not out.exists() and not (tmp_path / "t.rejects.csv").exists()
    with pytest.raises(LayoutError, match="expected columns"):
        import_batch("duplicate_charge", [src])


@pytest.mark.parametrize("args, message", [
    (["--effective-from", "2025-02-01", "--effective-to", "2025-01-01"], "is before --effective-from"),
    (["--effective-from", "明年"], "不是日期"),
])
def test_bad_options_are_clear_errors(tmp_path, args, message):
    result = run("kb", "import", "--kind", "drug_restriction", drug_batch(tmp_path), "-o", tmp_path / "d.csv", *args)
    assert result.exit_code == 2 and message in result.output


def test_missing_file_and_bad_output_type_are_clear_errors(tmp_path):
    missing = run("kb", "import", "--kind", "cycle_limit", tmp_path / "nope.xlsx", "-o", tmp_path / "c.csv")
    assert missing.exit_code == 2 and "nope.xlsx: file not found" in missing.output
    bad_out = run("kb", "import", "--kind", "drug_restriction", drug_batch(tmp_path), "-o", tmp_path / "d.json")
    assert bad_out.exit_code == 2 and "unsupported output type '.json'" in bad_out.output


def test_unknown_header_columns_and_unused_sheets_are_reported(tmp_path):
    rows = [["序号", "项目名称", "限制数量", "数量单位", "项目编码", "经办人"], [1, "A", 2, "次/日", "003310010140001", "张三"]]
    src = xlsx(tmp_path / "f.xlsx", {"频次": rows, "填表说明": [["本表由……填写"]]})
    result = run("kb", "import", "--kind", "frequency_limit", src, "-o", tmp_path / "f.csv")
    assert result.exit_code == 0
    assert "column(s) not understood, ignored: 经办人" in result.output
    assert "sheet '填表说明': not used" in result.output


def test_numeric_code_cells_repeated_headers_and_nameless_items(tmp_path):
    rows = [["项目名称", "项目编码", "限定类型", "限定值域"],
            [None, 3310010140000, "限定性别", "女"],  # Excel holds the code as a number; no name
            ["项目名称", "项目编码", "限定类型", "限定值域"],  # the header repeated (a second page)
            ["B", "003310010140002", "限定性别", "男"]]
    src = xlsx(tmp_path / "items.xlsx", {"S": rows})
    result = run("kb", "import", "--kind", "item_restriction", src, "-o", tmp_path / "i.csv")
    assert result.exit_code == 0
    assert [(r["code"], r["item_name"]) for r in read_csv(tmp_path / "i.csv")] == [
        ("3310010140000", ""), ("003310010140002", "B")]
    assert "1 code cell(s) are numbers" in result.output and "row 2" in result.output
    assert "1 repeated header row(s) skipped" in result.output


def test_damaged_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"not a zip file")
    result = run("kb", "import", "--kind", "cycle_limit", bad, "-o", tmp_path / "c.csv")
    assert result.exit_code == 2 and "bad.xlsx: cannot open as an Excel workbook" in result.output
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf")
    result = run("kb", "import", "--kind", "cycle_limit", old, "-o", tmp_path / "c.csv")
    assert result.exit_code == 2 and "save it as .xlsx" in result.output


def test_csv_rows_are_numbered_by_their_first_line(tmp_path):
    src = write_csv(tmp_path / "course.csv", [["项目名称", "备注", "项目代码"],
                                              ["A", "总时间不超过90天，\n评定间隔时间不短于14天", "003310010140001"],
                                              ["B", "看不懂", "003310010140002"]])
    result = import_batch("course_limit", [src])
    assert result.rows[0]["max_total_days"] == 90 and result.rows[0]["source_row"] == 2
    assert [r.row for r in result.rejects] == [4]  # the quoted cell above spans lines 2-3


def test_gbk_csv_is_read(tmp_path):
    src = write_csv(tmp_path / "cycle.csv", [["序号", "项目名称", "频次上限", "疗程周期（天）", "备注", "项目代码"],
                                             [1, "康复评定", 2, "30", "", "003310010140001"]], encoding="gb18030")
    result = import_batch("cycle_limit", [src])
    assert [(r["code"], r["max_times"], r["period_days"]) for r in result.rows] == [("003310010140001", 2.0, 30)]
    assert result.rows[0]["source"] == "cycle cycle.csv 第2行"


# ---- the other kinds --------------------------------------------------------------------------

def test_cycle_period_unit_in_the_header(tmp_path):
    weeks = write_csv(tmp_path / "w.csv", [["项目名称", "频次上限", "疗程周期（周）", "项目代码"], ["A", 1, 2, "1"]])
    assert import_batch("cycle_limit", [weeks]).rows[0]["period_days"] == 14
    months = write_csv(tmp_path / "m.csv", [["项目名称", "频次上限", "疗程周期(月)", "项目代码"], ["A", 1, 3, "1"]])
    result = import_batch("cycle_limit", [months])
    assert result.rows == [] and "以月计" in result.rejects[0].reason and result.rejects[0].column == "疗程周期(月)"


def test_duplicate_charge_pairs_with_scope(tmp_path):
    src = write_csv(tmp_path / "dup.csv", [
        ["序号", "频度", "主项名称", "主项编码", "从项名称", "从项编码", "备注"],
        [1, "单日", "血液透析", "003110000010000", "血液滤过", "003110000020000", ""],
        [2, "单次", "全身麻醉", "003302000010000", "局部浸润麻醉", "003302000020000", "同一次手术"],
        [3, "", "A", "003302000030000", "B", "003302000040000", ""],
        [4, "每季度", "A", "003302000050000", "B", "003302000060000", ""]])
    result = import_batch("duplicate_charge", [src])
    assert [(r["main_code"], r["sub_code"], r["scope"], r["scope_text"]) for r in result.rows] == [
        ("003110000010000", "003110000020000", "day", "单日"),
        ("003302000010000", "003302000020000", "encounter", "单次"),
        ("003302000030000", "003302000040000", "encounter", "")]  # no time word: the same encounter
    assert result.rows[1]["text"] == "同一次手术"
    assert result.rows[0]["text"] == "频度：单日；主项名称：血液透析；主项编码：003110000010000；从项名称：血液滤过；" \
                                     "从项编码：003110000020000"
    [bad] = result.rejects
    assert (bad.row, bad.column, bad.value) == (5, "频度", "每季度")


def test_frequency_limit_units(tmp_path):
    src = write_csv(tmp_path / "freq.csv", [
        ["序号", "项目名称", "限制数量", "数量单位", "项目编码"],
        [1, "A", "2", "次/日", "003310010140001"], [2, "B", "1", "次/住院", "003310010140002"],
        [3, "C", "4", "次", "003310010140003"], [4, "D", "多次", "次/日", "003310010140004"]])
    result = import_batch("frequency_limit", [src])
    assert [(r["max_count"], r["count_unit"], r["per"]) for r in result.rows] == [
        (2.0, "次", "day"), (1.0, "次", "encounter"), (4.0, "次", None)]
    assert [(r.row, r.column) for r in result.rejects] == [(5, "限制数量")]


def test_course_limit_parses_free_text_or_rejects_it(tmp_path):
    src = xlsx(tmp_path / "course.xlsx", {"疗程": [
        ["序号", "项目名称", "备注", "项目代码"],
        [1, "康复评定", "总时间不超过90天，评定间隔时间不短于14天", "003310010140001"],
        [2, "高压氧", "疗程不超过2周", "003310010140002"],
        [3, "针灸", "每周不超过3次", "003310010140003"],
        [4, "理疗", "总时间不超过3个月", "003310010140004"]]})
    result = import_batch("course_limit", [src])
    assert [(r["code"], r["max_total_days"], r["min_interval_days"]) for r in result.rows] == [
        ("003310010140001", 90, 14), ("003310010140002", 14, None)]
    assert result.rows[0]["text"] == "总时间不超过90天，评定间隔时间不短于14天"
    assert [(r.row, r.column) for r in result.rejects] == [(4, "备注"), (5, "备注")]
    assert "每周不超过3次" in result.rejects[0].reason and "以个月计" in result.rejects[1].reason


def test_duplicate_charge_table_is_a_pair_table_for_pair_rules(tmp_path):
    src = write_csv(tmp_path / "dup.csv", [
        ["序号", "频度", "主项名称", "主项编码", "从项名称", "从项编码", "备注"],
        [1, "单日", "静脉输液（第一组）", "003107000010000", "静脉注射", "003107000030000", "同日不得再收静脉注射"]])
    pack = tmp_path / "pack"
    result = run("kb", "import", "--kind", "duplicate_charge", src, "-o", pack / "dup.csv")
    assert result.exit_code == 0, result.output
    snippet = (pack / "dup.table.rules").read_text(encoding="utf-8")
    assert "key     main_code" in snippet and "partner sub_code" in snippet
    (pack / "dup_rule.rules").write_text('''
rule DUP "项目重复收费" {
  result  明确
  pair    p = dup[med_list_codg] within day
  message "同日收取【{p.main_name}】时又收取【{hilist_name}】：{p.text}"
  example "同日" {
    encounter { med_type: "21", begntime: 2025-04-01T08:00 }
    line L1 { med_list_codg: "003107000010000", cnt: 1, pric: 10, fee_ocur_time: 2025-04-02T09:00 }
    line L2 { med_list_codg: "003107000030000", cnt: 1, pric: 5, fee_ocur_time: 2025-04-02T15:00 }
    expect flagged L2 amount 5
  }
}
''', encoding="utf-8")
    tested = run("test", pack)
    assert tested.exit_code == 0 and "1 passed, 0 failed" in tested.output, tested.output


# ---- the table declaration works with the rule language -------------------------------------

RULES = '''
rule KB_GEND "药品区分性别使用" {
  result  明确
  lookup  k = drug_restriction[med_list_codg]
  when    k.restriction == "gend" and gend != k.gend
  message "药品【{hilist_name}】{k.text}（{k.source}）"
  example "女性用限男性药品" {
    patient   { gend: "2", brdy: 1975-04-12 }
    encounter { med_type: "11", begntime: 2025-03-01T09:30 }
    line L1 { med_list_codg: "XG04CBF036A001010101234", cnt: 2, pric: 36.5 }
    line L2 { med_list_codg: "XJ01MAZ074A001010100478", cnt: 1, pric: 10 }
    expect flagged L1 amount 73.00
  }
}
rule KB_CHILD "限儿童" {
  result  明确
  lookup  k = drug_restriction[med_list_codg]
  when    k.restriction == "age" and k.max_age != null and age_years > k.max_age
  message "药品【{hilist_name}】{k.text}"
  example "成人" {
    patient   { gend: "1", brdy: 1980-01-01 }
    encounter { med_type: "11", begntime: 2025-03-01T09:30 }
    line L1 { med_list_codg: "XJ01MAZ074A001010100478", cnt: 1, pric: 10 }
    line L2 { med_list_codg: "XR07AAN134B002010104512", cnt: 1, pric: 10 }
    expect flagged L1
  }
}
rule KB_INSUTYPE "限工伤生育保险" {
  result  明确
  lookup  k = drug_restriction[med_list_codg]
  when    k.restriction == "insutype" and insutype not in k.insutypes
  message "药品【{hilist_name}】{k.text}"
  example "职工医保" {
    patient   { gend: "2", brdy: 1990-01-01, insutype: "310" }
    encounter { med_type: "11", begntime: 2025-03-01T09:30 }
    line L1 { med_list_codg: "XG03GAN185B002010100001", cnt: 1, pric: 10 }
    expect flagged L1
  }
}
rule KB_WINDOW "失效后不审" {
  result  明确
  lookup  k = drug_restriction[med_list_codg]
  when    k.restriction == "gend" and gend != k.gend
  message "m"
  example "失效日之后" {
    patient   { gend: "2", brdy: 1975-04-12 }
    encounter { med_type: "11", begntime: 2027-03-01T09:30 }
    line L1 { med_list_codg: "XG04CBF036A001010101234", cnt: 1, pric: 1 }
    expect none
  }
}
'''


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_generated_table_declaration_loads_and_drives_rules(tmp_path, suffix):
    pack = tmp_path / "pack"
    (pack / "knowledge").mkdir(parents=True)
    out = pack / "knowledge" / f"drug_restriction{suffix}"
    result = run("kb", "import", "--kind", "drug_restriction", drug_batch(tmp_path), "-o", out,
                 "--effective-from", "2025/1/1", "--effective-to", "2026年12月31日", "--batch", "2025第1批")
    assert result.exit_code == 0, result.output
    snippet = (pack / "knowledge" / "drug_restriction.table.rules").read_text(encoding="utf-8")
    assert f'table drug_restriction from "drug_restriction{suffix}"' in snippet
    assert "key    code" in snippet and "match prefix" in snippet
    (pack / "rules.rules").write_text(RULES, encoding="utf-8")
    rs = load_ruleset(pack)
    assert rs.ok, rs.render_diagnostics()
    table = rs.tables["drug_restriction"]
    assert len(table) == 8
    assert table.role_column("effective_to") == "effective_to"
    row = table.rows[table.matches("XG03GAN185B002010100001")[0]]
    assert row["insutypes"] == ("410", "510") and row["effective_to"] == dt.date(2026, 12, 31)
    assert row["source"].startswith("2025第1批 第1批药品限定.xlsx 第4行")
    tested = run("test", pack)
    assert tested.exit_code == 0, tested.output
    assert "4 passed, 0 failed" in tested.output


def test_parquet_output_has_typed_columns(tmp_path):
    out = tmp_path / "d.parquet"
    write_outputs(import_batch("drug_restriction", [drug_batch(tmp_path)]), out)
    schema = pq.read_schema(out)
    assert pa.types.is_list(schema.field("insutypes").type) and schema.field("insutypes").type.value_type == pa.string()
    assert str(schema.field("max_age").type) == "double"
    assert str(schema.field("effective_from").type) == "date32[day]"


# ---- kb diff ----------------------------------------------------------------------------------

def superseding_batch(tmp_path: Path) -> Path:
    main_rows = [r[:] for r in DRUG_MAIN if r[0] != 3]  # 头孢哌酮舒巴坦 removed
    main_rows[5][4] = "6岁以下"  # 左氧氟沙星: 儿童 -> 6岁以下
    main_rows.append([8, "坦索罗辛", "限男性使用", "限定性别对象", "男"])
    codes = [r for r in DRUG_CODES if r[0] != "头孢哌酮舒巴坦"] + [["坦索罗辛", 1, "XG04CAT021A001010100001", None]]
    return xlsx(tmp_path / "第2批药品限定.xlsx", {"药品限定": main_rows, "代码表": codes}, {"代码表": ["A4:A5"]})


@pytest.fixture
def two_versions(tmp_path):
    old, new = tmp_path / "v1.csv", tmp_path / "v2.parquet"
    assert run("kb", "import", "--kind", "drug_restriction", drug_batch(tmp_path), "-o", old).exit_code == 0
    assert run("kb", "import", "--kind", "drug_restriction", superseding_batch(tmp_path), "-o", new,
               "--effective-from", "2026-01-01").exit_code == 0
    return old, new


def test_diff_lists_added_removed_and_changed_points(two_versions):
    result = diff_tables(*two_versions)
    assert result.kind == "drug_restriction" and result.identity == ("code", "restriction")
    assert [r["code"] for r in result.added] == ["XG04CAT021A001010100001"]
    assert [r["code"] for r in result.removed] == ["XJ01DDC178B001010100001"]
    assert sorted(c.identity["code"] for c in result.changed) == ["XJ01MAZ074A001010100478", "XJ01MAZ074B002010100479"]
    change = result.changed[0]
    assert change.changes["max_age"] == ("17", "6") and change.changes["restriction_value"] == ("儿童", "6岁以下")
    assert result.unchanged == 5  # new batch name, rows and effective dates are not changes


def test_diff_cli_prints_an_aligned_table_and_json(two_versions):
    result = run("kb", "diff", *two_versions)
    assert result.exit_code == 0, result.output
    assert "drug_restriction: 1 added, 1 removed, 2 changed, 5 unchanged" in result.output
    for word in ("新增", "删除", "修改", "坦索罗辛", "max_age: 17 → 6"):
        assert word in result.output
    borders = [line for line in result.output.splitlines() if line[:1] in "┏┃┡│├└"]
    assert borders and len({cell_len(line) for line in borders}) == 1  # Chinese counts as two columns
    data = json.loads(run("kb", "diff", "--json", *two_versions).output)
    assert data["summary"] == {"added": 1, "removed": 1, "changed": 2, "unchanged": 5}
    assert data["changed"][0]["changes"]["max_age"] == ["17", "6"]
    assert data["added"][0]["drug_name"] == "坦索罗辛"


def test_diff_refuses_tables_of_different_kinds(tmp_path, two_versions):
    src = write_csv(tmp_path / "c.csv", [["项目名称", "频次上限", "疗程周期", "项目代码"], ["A", 2, 30, "1"]])
    other = tmp_path / "cycle.csv"
    write_outputs(import_batch("cycle_limit", [src]), other)
    result = run("kb", "diff", two_versions[0], other)
    assert result.exit_code == 2 and "a drug_restriction table" in result.output and "a cycle_limit table" in result.output
    missing = run("kb", "diff", two_versions[0], tmp_path / "nope.csv")
    assert missing.exit_code == 2 and "nope.csv: file not found" in missing.output


# ---- value parsers ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, bounds", [
    ("儿童", {"max_age": 17}), ("新生儿", {"max_age_days": 27}), ("18岁以下", {"max_age": 18}),
    ("不满18周岁", {"max_age": 17}), ("60岁及以上", {"min_age": 60}), ("6-12岁", {"min_age": 6, "max_age": 12}),
    ("<28天", {"max_age_days": 27}), ("出生28天内", {"max_age_days": 28}), ("≥65岁", {"min_age": 65}),
    ("大于14岁", {"min_age": 15}),
])
def test_parse_age(text, bounds):
    assert parse_age(text) == bounds


def test_parse_age_child_limit_and_refusals():
    assert parse_age("儿童", child_under=14) == {"max_age": 13}
    for text in ("6个月以下", "青少年", "18.5岁以上"):
        with pytest.raises(RowError):
            parse_age(text)


def test_normalize_code():
    assert normalize_code(" ｘｂ01 ＡＸＡ223\u200b ") == "XB01AXA223"
    assert normalize_code(3310010140000.0) == "3310010140000"
    for bad in ("血常规", "", 1.5):
        with pytest.raises(RowError):
            normalize_code(bad)


def test_parse_date_forms():
    for v in ("2025-01-01", "2025/1/1", "2025.1.1", "2025年1月1日", "２０２５－０１－０１", 45658, "20250101",
              dt.datetime(2025, 1, 1, 8, 30), "2025-01-01 00:00:00"):
        assert parse_date(v) == dt.date(2025, 1, 1), v
    for bad in ("2025-02-30", "明年", 12, True):
        with pytest.raises(ValueError):
            parse_date(bad)


def test_scope_unit_and_course_parsers():
    assert [pair_scope(t) for t in ("单日", "同一天同时", "单次", "当次住院", "")] == \
        ["day", "day", "encounter", "encounter", "encounter"]
    assert [parse_days(t, "f", "x") for t in ("14", "14天", "2周", "支付不超过14天", "14.0")] == [14, 14, 14, 14, 14]
    for bad in ("3个月", "1年", "半个月", "0天"):
        with pytest.raises(RowError):
            parse_days(bad, "f", "x")
    assert count_unit("次/天") == ("次", "day") and count_unit("次每次住院") == ("次", "encounter")
    assert parse_course("累计使用不超过30天；间隔14天以上") == {"max_total_days": 30, "min_interval_days": 14}
    with pytest.raises(RowError):
        count_unit("次/24小时")


# ---- documentation ----------------------------------------------------------------------------

def test_readme_documents_kb_commands_and_every_option():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "claimaudit kb" in readme
    for name, cmd in kb.commands.items():
        assert f"claimaudit kb {name}" in readme, f"kb {name} is not in the README"
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in readme, f"option {opt} of kb {name} is not in the README"
    for kind in ("drug_restriction", "item_restriction", "duplicate_charge", "frequency_limit", "cycle_limit",
                 "course_limit"):
        assert kind in readme
