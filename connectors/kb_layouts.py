"""The layouts of the national knowledge batches, one kind each, and how their rows become table rows.

A kind names the sheets it needs (found by header, not by position), the output columns it writes
and the identity of a knowledge point (for ``kb diff``). Builders turn data rows into output rows
through a Collector, which adds the provenance columns and records every row it cannot use.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .kb_read import RowError, SheetSpec, name_key, nfkc
from .kb_rows import DATE_FIELDS, Collector, DataRow, point_of, rendered, required
from .kb_values import count_unit, pair_scope, parse_count, parse_course, parse_days, restriction_of, restriction_values

ALIASES = {
    "seq": ("序号", "编号"),
    "drug_name": ("药品通用名", "药品通用名称", "通用名", "通用名称", "药品名称"),
    "item_name": ("项目名称", "医疗服务项目名称", "服务项目名称"),
    "description": ("药品说明", "项目说明", "限定说明", "限定支付范围", "医保支付范围", "说明"),
    "restriction_type": ("限定类型", "限制类型"),
    "restriction_value": ("限定对象", "限定值域", "限定性别", "限定值", "限定内容", "限定范围"),
    "drug_code": ("国标代码", "药品代码", "医保药品代码", "国家医保药品代码", "医保代码", "药品国家代码"),
    "item_code": ("国标代码", "项目代码", "医保项目代码", "国家医保项目代码", "医保代码", "项目国家代码"),
    "frequency": ("频度", "频次范围", "时间范围"),
    "main_name": ("主项名称", "主项目名称"),
    "main_code": ("主项代码", "主项目代码"),
    "sub_name": ("从项名称", "从项目名称"),
    "sub_code": ("从项代码", "从项目代码"),
    "note": ("备注",),
    "course_text": ("备注", "限定说明", "疗程说明"),
    "max_count": ("限制数量", "限定数量", "数量上限", "最大数量"),
    "unit": ("数量单位", "单位"),
    "max_times": ("频次上限", "次数上限", "限制次数", "最大次数"),
    "period_days": ("疗程周期", "周期", "周期天数"),
    "effective_from": ("生效日期", "开始日期", "起始日期", "执行日期", "有效期起", "生效时间"),
    "effective_to": ("失效日期", "终止日期", "结束日期", "截止日期", "有效期止", "失效时间"),
}


def spec(role: str, required: tuple, optional: tuple = ()) -> SheetSpec:
    optional = optional + DATE_FIELDS
    return SheetSpec(role, required, optional, {f: ALIASES[f] for f in required + optional})


@dataclass(frozen=True)
class OutColumn:
    name: str
    type: str  # text | number | date | list
    role: str | None = None


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    sheets: tuple[SheetSpec, ...]  # the first is the main sheet; the others are optional companions
    columns: tuple[OutColumn, ...]  # kind-specific columns (between the key and the provenance)
    identity: tuple[str, ...]  # with the key, what makes a knowledge point the same one across batches
    build: Callable
    extra_provenance: tuple[OutColumn, ...] = ()
    key: str = "code"  # the key column (matched by prefix)
    partner: str | None = None  # the B side of a pair table (matched by prefix)


TAIL = (OutColumn("text", "text", "text"), OutColumn("source", "text", "source"), OutColumn("batch", "text"),
        OutColumn("source_file", "text"), OutColumn("source_row", "number"))
DATES = (OutColumn("imported_on", "date"), OutColumn("effective_from", "date", "effective_from"),
         OutColumn("effective_to", "date", "effective_to"))


def all_columns(kind: Kind) -> tuple[OutColumn, ...]:
    head = (OutColumn("point_id", "text", "id"), OutColumn(kind.key, "text"))
    return head + kind.columns + TAIL + kind.extra_provenance + DATES


# ---- restrictions (drugs and service items) ----------------------------------------------------

RESTRICTION_COLUMNS = (
    OutColumn("restriction", "text"), OutColumn("restriction_type", "text"), OutColumn("restriction_value", "text"),
    OutColumn("gend", "text"), OutColumn("min_age", "number"), OutColumn("max_age", "number"),
    OutColumn("min_age_days", "number"), OutColumn("max_age_days", "number"), OutColumn("insutypes", "list"),
    OutColumn("hosp_lvs", "list"), OutColumn("med_types", "list"), OutColumn("course_days", "number"),
)
_RESTRICTION_VALUES = tuple(c.name for c in RESTRICTION_COLUMNS[3:])


@dataclass
class Restriction:
    row: DataRow
    name: str
    columns: dict  # restriction columns, every one present (None where the type does not use it)
    text: str
    dates: dict
    used: bool = False


def parse_restriction(row: DataRow, name_field: str, what: str, c: Collector, name_required: bool) -> Restriction:
    """A restriction row; a drug's generic name is required (it joins the code sheet), an item's is not."""
    name = required(row, name_field, what) if name_required else row.text(name_field)
    type_text, value_text = row.text("restriction_type"), row.text("restriction_value")
    restriction = restriction_of(type_text)
    columns = dict.fromkeys(_RESTRICTION_VALUES)
    columns.update(restriction_values(restriction, value_text, c.values))
    columns.update(restriction=restriction, restriction_type=type_text, restriction_value=value_text)
    text = row.text("description") or f"{type_text}：{value_text}"
    return Restriction(row, name, columns, text, c.dates(row))


def build_item_restriction(sheets: dict, c: Collector) -> None:
    for row in sheets["main"]:
        try:
            r = parse_restriction(row, "item_name", "项目名称", c, False)
            codes = c.codes(row, "item_code")
            for i, code in enumerate(codes, start=1):
                c.emit(row, code, {"item_name": r.name, **r.columns}, r.text, point_of(row.number, i, len(codes)),
                       r.dates)
        except RowError as e:
            c.reject(row, e)


def build_drug_restriction(sheets: dict, c: Collector) -> None:
    """One output row per (code, restriction row): codes from the code sheet, joined on the generic name
    (and the restriction type where the code sheet gives it), or from a code column of the main sheet."""
    restrictions, failed = _drug_restrictions(sheets["main"], c)
    if "codes" not in sheets:
        _codes_from_main(restrictions, c)
    else:
        _codes_from_code_sheet(sheets["codes"], restrictions, failed, c)
    for r in restrictions:
        if not r.used:
            c.reject(r.row, RowError("drug_name", f"药品通用名'{r.name}'在代码表中没有国标代码，未导入"))


def _drug_restrictions(rows: list[DataRow], c: Collector) -> tuple[list[Restriction], dict[str, list[DataRow]]]:
    """The restriction rows understood, and the rows rejected by generic name (code rows cite them)."""
    out, failed = [], {}
    for row in rows:
        try:
            out.append(parse_restriction(row, "drug_name", "药品通用名", c, True))
        except RowError as e:
            c.reject(row, e)
            failed.setdefault(name_key(row.text("drug_name")), []).append(row)
    return out, failed


def _codes_from_main(restrictions: list[Restriction], c: Collector) -> None:
    for r in restrictions:
        try:
            codes = c.codes(r.row, "code")
            for i, code in enumerate(codes, start=1):
                c.emit(r.row, code, {"drug_name": r.name, **r.columns}, r.text, point_of(r.row.number, i, len(codes)),
                       r.dates, {"code_row": r.row.number})
        except RowError as e:
            c.reject(r.row, e)
        r.used = True


def _codes_from_code_sheet(code_rows: list[DataRow], restrictions: list[Restriction], failed: dict,
                           c: Collector) -> None:
    by_name: dict[str, list[Restriction]] = {}
    for r in restrictions:
        by_name.setdefault(name_key(r.name), []).append(r)
    seen: dict[tuple, int] = {}
    for row in code_rows:
        try:
            _emit_code_row(row, by_name, failed, seen, c)
        except RowError as e:
            c.reject(row, e)


def _emit_code_row(row: DataRow, by_name: dict, failed: dict, seen: dict, c: Collector) -> None:
    name = required(row, "drug_name", "药品通用名")
    code = c.codes(row, "code")
    if len(code) != 1:
        raise RowError("code", "代码表一行只能有一个国标代码")
    candidates = by_name.get(name_key(name), [])
    type_text = row.text("restriction_type")
    if type_text:
        wanted = restriction_of(type_text)
        candidates = [r for r in candidates if r.columns["restriction"] == wanted]
    if not candidates:
        of_type = f"（限定类型'{type_text}'）" if type_text else ""
        rejected = failed.get(name_key(name))
        if rejected:
            rows = "、".join(f"第{r.number}行" for r in rejected)
            raise RowError("drug_name", f"药品通用名'{name}'{of_type}的限定行（{rejected[0].sheet.name}{rows}）未导入，"
                           "此代码也未导入")
        raise RowError("drug_name", f"药品通用名'{name}'{of_type}在限定表中没有对应的行")
    for r in candidates:
        key = (code[0], r.row.number)
        if key in seen:
            raise RowError("code", f"与{row.sheet.name}第{seen[key]}行重复")
        seen[key] = row.number
        c.emit(r.row, code[0], {"drug_name": r.name, **r.columns}, r.text, f"{r.row.number}-{row.number}",
               c.dates(row, r.dates), {"code_row": row.number}, f"（{row.sheet.name}第{row.number}行）")
        r.used = True


# ---- pairs, frequencies, cycles, courses -------------------------------------------------------

def build_duplicate_charge(sheets: dict, c: Collector) -> None:
    for row in sheets["main"]:
        try:
            main = c.codes(row, "main_code")
            sub = c.codes(row, "sub_code")
            if len(main) != 1 or len(sub) != 1:
                raise RowError("main_code" if len(main) != 1 else "sub_code", "一行只能有一个主项编码和一个从项编码")
            columns = {"main_name": row.text("main_name"), "sub_code": sub[0], "sub_name": row.text("sub_name"),
                       "scope": pair_scope(row.text("frequency")), "scope_text": row.text("frequency"),
                       "note": row.text("note")}
            text = row.text("note") or rendered(row, ("frequency", "main_name", "main_code", "sub_name", "sub_code"))
            c.emit(row, main[0], columns, text, str(row.number), c.dates(row))
        except RowError as e:
            c.reject(row, e)


def _per_code(row: DataRow, c: Collector, columns: dict, text: str) -> None:
    codes, dates = c.codes(row, "item_code"), c.dates(row)
    for i, code in enumerate(codes, start=1):
        c.emit(row, code, columns, text, point_of(row.number, i, len(codes)), dates)


def build_frequency_limit(sheets: dict, c: Collector) -> None:
    for row in sheets["main"]:
        try:
            unit = row.text("unit")
            counted, per = count_unit(unit)
            columns = {"item_name": row.text("item_name"),
                       "max_count": parse_count(required(row, "max_count", "限制数量"), "max_count", "限制数量"),
                       "unit": unit, "count_unit": counted, "per": per}
            _per_code(row, c, columns, rendered(row, ("item_name", "max_count", "unit")))
        except RowError as e:
            c.reject(row, e)


def with_header_unit(row: DataRow, name: str, what: str) -> str:
    """A bare number in a column whose header names its unit ('疗程周期（周）') takes that unit."""
    value = required(row, name, what)
    m = re.search(r"\((天|日|周|星期|个月|月|年)\)", nfkc(row.title(name)))
    return value + m.group(1) if m and re.fullmatch(r"\d+(\.\d+)?", nfkc(value)) else value


def build_cycle_limit(sheets: dict, c: Collector) -> None:
    for row in sheets["main"]:
        try:
            columns = {"item_name": row.text("item_name"),
                       "max_times": parse_count(required(row, "max_times", "频次上限"), "max_times", "频次上限"),
                       "period_days": parse_days(with_header_unit(row, "period_days", "疗程周期"), "period_days",
                                                 "疗程周期"),
                       "note": row.text("note")}
            _per_code(row, c, columns, rendered(row, ("item_name", "max_times", "period_days", "note")))
        except RowError as e:
            c.reject(row, e)


def build_course_limit(sheets: dict, c: Collector) -> None:
    for row in sheets["main"]:
        try:
            parsed = parse_course(row.text("course_text"))
            columns = {"item_name": row.text("item_name"), "max_total_days": parsed.get("max_total_days"),
                       "min_interval_days": parsed.get("min_interval_days")}
            _per_code(row, c, columns, row.text("course_text"))
        except RowError as e:
            c.reject(row, e)


# ---- the kinds ---------------------------------------------------------------------------------

_DRUG_MAIN = spec("限定表（药品通用名、药品说明、限定类型、限定对象）",
                  ("drug_name", "restriction_type", "restriction_value"), ("seq", "description", "drug_code"))
_DRUG_CODES = spec("代码表（药品通用名、国标代码）", ("drug_name", "drug_code"), ("seq", "restriction_type"))


def _renamed(s: SheetSpec, old: str, new: str) -> SheetSpec:
    rename = {old: new}
    return SheetSpec(s.role, tuple(rename.get(f, f) for f in s.required), tuple(rename.get(f, f) for f in s.optional),
                     {rename.get(f, f): a for f, a in s.aliases.items()})


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("drug_restriction", "药品限定（性别、年龄、保险类型、机构等级、就医方式、支付疗程）",
         (_renamed(_DRUG_MAIN, "drug_code", "code"), _renamed(_DRUG_CODES, "drug_code", "code")),
         (OutColumn("drug_name", "text"),) + RESTRICTION_COLUMNS, ("restriction",), build_drug_restriction,
         (OutColumn("code_row", "number"),)),
    Kind("item_restriction", "诊疗项目限定（性别、年龄、保险类型、机构等级、就医方式、支付疗程）",
         (spec("项目限定表（项目名称、项目代码、限定类型、限定对象）",
               ("item_name", "item_code", "restriction_type", "restriction_value"), ("seq", "description")),),
         (OutColumn("item_name", "text"),) + RESTRICTION_COLUMNS, ("restriction",), build_item_restriction),
    Kind("duplicate_charge", "项目重复收费（主项 × 从项）",
         (spec("重复收费表（频度、主项名称、主项编码、从项名称、从项编码）", ("main_code", "sub_code"),
               ("seq", "frequency", "main_name", "sub_name", "note")),),
         (OutColumn("main_name", "text"), OutColumn("sub_code", "text"), OutColumn("sub_name", "text"),
          OutColumn("scope", "text"), OutColumn("scope_text", "text"), OutColumn("note", "text")),
         ("sub_code",), build_duplicate_charge, key="main_code", partner="sub_code"),
    Kind("frequency_limit", "限定频次（限制数量、数量单位）",
         (spec("频次表（项目名称、限制数量、数量单位、项目编码）", ("item_name", "max_count", "unit", "item_code"),
               ("seq",)),),
         (OutColumn("item_name", "text"), OutColumn("max_count", "number"), OutColumn("unit", "text"),
          OutColumn("count_unit", "text"), OutColumn("per", "text")),
         ("per",), build_frequency_limit),
    Kind("cycle_limit", "周期超频次（频次上限、疗程周期）",
         (spec("周期表（项目名称、频次上限、疗程周期、项目代码）", ("item_name", "max_times", "period_days", "item_code"),
               ("seq", "note")),),
         (OutColumn("item_name", "text"), OutColumn("max_times", "number"), OutColumn("period_days", "number"),
          OutColumn("note", "text")),
         (), build_cycle_limit),
    Kind("course_limit", "限支付疗程（备注中的总时间、间隔时间）",
         (spec("疗程表（项目名称、备注、项目代码）", ("item_name", "course_text", "item_code"), ("seq",)),),
         (OutColumn("item_name", "text"), OutColumn("max_total_days", "number"),
          OutColumn("min_interval_days", "number")),
         (), build_course_limit),
)}
SHEET_ROLES = ("main", "codes")  # the names builders get their sheets' rows under
