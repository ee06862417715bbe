"""The claim schema rules are checked against: national field names, one row per fee line joined
with its encounter and patient, plus derived values and built-in functions.

Value types: text, number, date, datetime, bool, quantity, list (of text).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str
    level: str  # patient | institution | encounter | line | derived
    meaning: str


_F = FieldInfo
CLAIM_FIELDS: dict[str, FieldInfo] = {f.name: f for f in [
    _F("psn_no", "text", "patient", "人员编号 person id"),
    _F("gend", "text", "patient", "性别 1 男 2 女 0 未知 9 未说明"),
    _F("brdy", "date", "patient", "出生日期 birth date"),
    _F("insutype", "text", "patient", "险种类型 310 职工 390 城乡居民 …"),
    _F("psn_type", "text", "patient", "人员类别"),
    _F("fixmedins_code", "text", "institution", "定点医药机构编号"),
    _F("fixmedins_name", "text", "institution", "定点医药机构名称"),
    _F("hosp_lv", "text", "institution", "医院等级"),
    _F("mdtrt_id", "text", "encounter", "就诊 ID"),
    _F("med_type", "text", "encounter", "医疗类别 11 普通门诊 14 门诊慢特病 21 普通住院 41 定点药店购药 …"),
    _F("begntime", "datetime", "encounter", "开始时间"),
    _F("endtime", "datetime", "encounter", "结束时间"),
    _F("dscg_maindiag_code", "text", "encounter", "主要诊断代码 ICD-10 医保版"),
    _F("diag_codes", "list", "encounter", "全部诊断代码 (list, or text separated by ; , |)"),
    _F("opsp_dise_codg", "list", "encounter", "门慢特病种备案代码"),
    _F("setl_id", "text", "encounter", "结算 ID"),
    _F("feedetl_sn", "text", "line", "费用明细流水号 line id"),
    _F("init_feedetl_sn", "text", "line", "原费用流水号 (refunds)"),
    _F("rxno", "text", "line", "处方号"),
    _F("drord_no", "text", "line", "医嘱号"),
    _F("fee_ocur_time", "datetime", "line", "费用发生时间 time of service"),
    _F("med_list_codg", "text", "line", "医保目录编码 national code"),
    _F("medins_list_codg", "text", "line", "医药机构目录编码 local code"),
    _F("hilist_name", "text", "line", "医保目录名称 item name"),
    _F("list_type", "text", "line", "目录类别 101 西药中成药 102 中药饮片 201 服务项目 301 耗材"),
    _F("med_chrgitm_type", "text", "line", "医疗收费项目类别"),
    _F("chrgitm_lv", "text", "line", "收费项目等级 甲/乙/丙"),
    _F("cnt", "number", "line", "数量"),
    _F("pric", "number", "line", "单价 (元)"),
    _F("det_item_fee_sumamt", "number", "line", "明细项目费用总额 (元)"),
    _F("sin_dos_dscr", "text", "line", "单次剂量描述, e.g. 0.5g"),
    _F("used_frqu_dscr", "text", "line", "使用频次描述, e.g. tid"),
    _F("prd_days", "number", "line", "周期天数 days supplied"),
    _F("medc_way_dscr", "text", "line", "用药途径描述"),
    _F("bilg_dept_codg", "text", "line", "开单科室编码"),
    _F("bilg_dr_codg", "text", "line", "开单医生编码"),
    _F("hosp_appr_flag", "text", "line", "医院审批标志 (1 = restriction declared met)"),
    _F("lmt_used_flag", "text", "line", "限制使用标志"),
    _F("tcmdrug_used_way", "text", "line", "中药使用方式 1 复方 2 单方"),
    _F("inscp_scp_amt", "number", "line", "符合范围金额 (元)"),
    _F("fulamt_ownpay_amt", "number", "line", "全自费金额 (元)"),
    _F("overlmt_amt", "number", "line", "超限价金额 (元)"),
    _F("vali_flag", "text", "line", "有效标志"),
    _F("refd_setl_flag", "text", "line", "退费结算标志"),
]}

# Values computed from the line; the reference engine derives them the same way every executor must.
DERIVED_FIELDS: dict[str, FieldInfo] = {f.name: f for f in [
    _F("service_date", "date", "derived", "date of service: the date part of fee_ocur_time"),
    _F("age_years", "number", "derived", "full years of age on the date of service (brdy, fee_ocur_time)"),
    _F("age_days", "number", "derived", "days of age on the date of service (newborn rules)"),
    _F("single_dose", "quantity", "derived", "sin_dos_dscr parsed, e.g. '0.5g' -> 500 mg"),
    _F("daily_frequency", "number", "derived", "administrations per day parsed from used_frqu_dscr (tid -> 3)"),
    _F("daily_dose", "quantity", "derived", "single_dose x daily_frequency"),
    _F("daily_cnt", "number", "derived", "cnt / prd_days: units dispensed per day supplied"),
]}

# Fields that derived values read: a claims file needs them when a rule uses the derived value.
DERIVED_INPUTS: dict[str, tuple[str, ...]] = {
    "service_date": ("fee_ocur_time",),
    "age_years": ("brdy", "fee_ocur_time"),
    "age_days": ("brdy", "fee_ocur_time"),
    "single_dose": ("sin_dos_dscr",),
    "daily_frequency": ("used_frqu_dscr",),
    "daily_dose": ("sin_dos_dscr", "used_frqu_dscr"),
    "daily_cnt": ("cnt", "prd_days"),
}

# name -> (argument types or None for "any", result type, what it does)
FUNCTIONS: dict[str, tuple[tuple, str, str]] = {
    "has_diag": (("any",), "bool", "true when a diagnosis of the encounter (main or any) starts with one of the prefixes"),
    "coalesce": (("any", "any"), "same", "the first value when present, else the second"),
    "days_between": (("date", "date"), "number", "whole days from the first date to the second"),
    "abs": (("number",), "number", "absolute value"),
    "min": (("any", "any"), "same", "the smaller of two values"),
    "max": (("any", "any"), "same", "the larger of two values"),
    "setting": (("text", "any"), "same", "a threshold a local profile may set: setting(\"name\", default)"),
}

# What a line needs to be identified at all; a row without it is quarantined.
# A line without a national code cannot be matched to any knowledge: it needs a code crosswalk
# first, so it is quarantined with that reason rather than evaluated.
LINE_IDENTITY = ("feedetl_sn", "med_list_codg")

VALUE_TYPES = ("text", "number", "date", "datetime", "bool", "quantity", "list")


def lookup_field(name: str) -> FieldInfo | None:
    return CLAIM_FIELDS.get(name) or DERIVED_FIELDS.get(name)


LIST_SEPARATORS = (";", "|", ",", "，", "；")


def split_list(text: str) -> tuple:
    """A list field written as text ('I10.x00;E11.900', any of ; | , ， ；): trimmed items, empty ones dropped."""
    s = str(text)
    for sep in LIST_SEPARATORS[1:]:
        s = s.replace(sep, ";")
    return tuple(p.strip() for p in s.split(";") if p.strip())
