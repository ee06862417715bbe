"""Restriction values of the national batches turned into the claim fields' codes and numbers.

Each parser takes the original text and returns normalised values, or raises RowError naming what it
did not understand; nothing is guessed. The code tables map names to the national dictionaries the
claim fields use (gend, insutype, hosp_lv, med_type); ``--code-map`` adds or replaces entries.

Ages follow the legal reading of 以上/以下/以内 (民法典第1259条: they include the number; 不满/
未满/超过 do not). Bounds are inclusive and in full years (``age_years``) or days (``age_days``):
儿童 = younger than ``child_under`` years (default 18, so max_age 17), 新生儿 = younger than 28 days
(max_age_days 27), 成人/成年人 = min_age 18, 老年人 = min_age 60 (老年人权益保障法).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .kb_read import RowError, nfkc

HOSP_LEVELS = {  # national hosp_lv dictionary
    "三级特等": "01", "三级甲等": "02", "三级乙等": "03", "三级丙等": "04",
    "二级甲等": "05", "二级乙等": "06", "二级丙等": "07",
    "一级甲等": "08", "一级乙等": "09", "一级丙等": "10",
}
_TIERS = {"三级": ("01", "02", "03", "04"), "二级": ("05", "06", "07"), "一级": ("08", "09", "10")}
_TIER_ORDER = ("一级", "二级", "三级")

DEFAULT_CODE_MAPS: dict[str, dict[str, tuple[str, ...]]] = {
    "gend": {"男": ("1",), "男性": ("1",), "女": ("2",), "女性": ("2",)},
    "insutype": {
        "工伤": ("410",), "生育": ("510",), "职工": ("310",), "城镇职工": ("310",), "职工医保": ("310",),
        "职工基本医疗": ("310",), "居民": ("390",), "城乡居民": ("390",), "居民医保": ("390",),
        "城乡居民基本医疗": ("390",), "离休": ("340",), "离休人员": ("340",),
    },
    "med_type": {
        "住院": ("21", "22", "23", "24", "52"), "普通住院": ("21",), "生育住院": ("52",),
        "门诊": ("11", "12", "13", "14", "51"), "普通门诊": ("11",), "急诊": ("13",),
        "门诊慢特病": ("14",), "门慢门特": ("14",), "门特": ("14",), "门慢": ("14",), "生育门诊": ("51",),
        "药店购药": ("41",), "定点药店购药": ("41",), "药店": ("41",),
    },
    "hosp_lv": {**{k: (v,) for k, v in HOSP_LEVELS.items()}, **dict(_TIERS),
                "三甲": ("02",), "三乙": ("03",), "二甲": ("05",), "二乙": ("06",)},
}
CODE_MAP_FIELDS = tuple(DEFAULT_CODE_MAPS)
_VALUE_SEPARATORS = re.compile(r"[/、,;|]|和|或|及(?!以)")
_LEADING = re.compile(r"^(仅限|限于|限定|限)")
_TRAILING = re.compile(r"(参保人员|参保人|人员|患者|使用|支付|基本医疗保险|医疗保险|保险|医保|医疗机构|医院|机构)+$")

RESTRICTIONS = {  # canonical restriction -> words that name it in 限定类型
    "gend": ("性别",), "age": ("年龄",), "insutype": ("保险类型", "险种", "保险"),
    "hosp_lv": ("机构等级", "医院等级", "机构级别", "医院级别", "等级", "级别"),
    "med_type": ("就医方式", "就医类型", "就诊方式", "就诊类型", "医疗类别"), "course": ("疗程",),
}


@dataclass
class ValueContext:
    child_under: int = 18
    code_maps: dict = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_CODE_MAPS.items()})


def parse_code_map(option: str) -> tuple[str, str, tuple[str, ...]]:
    """'insutype:工伤=410' or 'med_type:住院=21,22' -> (field, name, codes). Raises ValueError."""
    m = re.fullmatch(r"\s*(\w+)\s*:\s*([^=]+?)\s*=\s*(.+?)\s*", option)
    if not m or m.group(1) not in CODE_MAP_FIELDS:
        raise ValueError(f"'{option}' is not FIELD:NAME=CODES with FIELD one of {', '.join(CODE_MAP_FIELDS)} "
                         "(e.g. insutype:工伤=410 or med_type:住院=21,22)")
    codes = tuple(c for c in re.split(r"[,;，；\s]+", nfkc(m.group(3))) if c)
    return m.group(1), nfkc(m.group(2)), codes


def restriction_of(type_text: str) -> str:
    """'限定性别对象' -> 'gend' … Raises RowError for a type this importer does not know."""
    s = re.sub(r"\s", "", nfkc(type_text))
    if not s:
        raise RowError("restriction_type", "限定类型为空")
    for name, words in RESTRICTIONS.items():
        if any(w in s for w in words):
            return name
    raise RowError("restriction_type", f"限定类型'{type_text}'不认识（认识：性别、年龄、保险类型、机构等级、"
                   "就医方式、支付疗程）", type_text)


def restriction_values(restriction: str, value_text: str, ctx: ValueContext) -> dict:
    """The normalised columns of one restriction row."""
    if not nfkc(value_text):
        raise RowError("restriction_value", "限定对象/限定值域为空")
    if restriction == "gend":
        codes = mapped_codes("gend", value_text, ctx, "性别")
        if len(set(codes)) != 1:
            raise RowError("restriction_value", f"性别限定'{value_text}'同时含男和女", value_text)
        return {"gend": codes[0]}
    if restriction == "age":
        return parse_age(value_text, ctx.child_under)
    if restriction == "insutype":
        return {"insutypes": mapped_codes("insutype", value_text, ctx, "保险类型")}
    if restriction == "hosp_lv":
        return {"hosp_lvs": hosp_levels(value_text, ctx)}
    if restriction == "med_type":
        return {"med_types": mapped_codes("med_type", value_text, ctx, "就医方式")}
    return {"course_days": parse_days(value_text, "restriction_value", "支付疗程")}


def _tokens(value_text: str) -> list[str]:
    return [t for t in (re.sub(r"\s", "", p) for p in _VALUE_SEPARATORS.split(nfkc(value_text))) if t]


def mapped_codes(field_name: str, value_text: str, ctx: ValueContext, what: str) -> list[str]:
    """Each name in the value looked up in the field's code table; codes written as digits are kept."""
    table, codes = ctx.code_maps[field_name], []
    for token in _tokens(value_text):
        found = _lookup(table, token)
        if found is None:
            raise RowError("restriction_value", f"{what}'{token}'不在代码对照表中（可用 --code-map "
                           f"{field_name}:{token}=代码 补充）", value_text)
        codes.extend(c for c in found if c not in codes)
    return codes


def _lookup(table: dict, token: str):
    if token.isdigit():
        return (token,)
    for candidate in (token, _LEADING.sub("", token), _TRAILING.sub("", _LEADING.sub("", token))):
        if candidate in table:
            return table[candidate]
    return None


def hosp_levels(value_text: str, ctx: ValueContext) -> list[str]:
    """'二级/三级', '二级及以上', '三级甲等' -> national hosp_lv codes."""
    codes = []
    for token in _tokens(value_text):
        m = re.fullmatch(r"(?:限)?([一二三]级)(?:医疗机构|医院)?(及)?(以上|以下)(?:医疗机构|医院)?(?:使用)?", token)
        if m:
            i = _TIER_ORDER.index(m.group(1))
            tiers = _TIER_ORDER[i:] if m.group(3) == "以上" else _TIER_ORDER[:i + 1]
            found = tuple(c for t in reversed(tiers) for c in _TIERS[t])
        else:
            found = _lookup(ctx.code_maps["hosp_lv"], token)
        if found is None:
            raise RowError("restriction_value", f"机构等级'{token}'不认识（可用 --code-map hosp_lv:{token}=代码 补充）",
                           value_text)
        codes.extend(c for c in found if c not in codes)
    return sorted(codes)


# ---- ages and days -----------------------------------------------------------------------------

_NUM = r"(\d+(?:\.\d+)?)"
_AGE_UNIT = r"(周岁|岁|天|日龄|日|个月|月龄|月)"
_RANGE = re.compile(rf"{_NUM}\s*{_AGE_UNIT}?\s*(?:-|~|至|到|—)\s*{_NUM}\s*{_AGE_UNIT}")
_AFTER = re.compile(rf"{_NUM}\s*{_AGE_UNIT}\s*(及以上|以上|及以下|以下|以内|内)")
_BEFORE = re.compile(rf"(>=|≥|大于等于|不小于|不低于|年满|满|>|大于|超过|<=|≤|小于等于|不大于|不超过|<|小于|低于|不满|未满)"
                     rf"\s*{_NUM}\s*{_AGE_UNIT}")
_NAMED_AGES = ("新生儿", "儿童", "小儿", "成年人", "成人", "老年人", "老年")


def parse_age(value_text: str, child_under: int = 18) -> dict:
    """Age bounds (inclusive): min_age/max_age in full years, min_age_days/max_age_days in days."""
    s = re.sub(r"\s", "", nfkc(value_text))
    for parse in (_age_range, _age_after, _age_before, lambda t: _named_age(t, child_under)):
        bounds = parse(s)
        if bounds is not None:
            return bounds
    raise RowError("restriction_value", f"年龄限定'{value_text}'看不懂（可写 儿童、新生儿、18岁以下、60岁及以上、"
                   "6-12岁、<28天）", value_text)


def _age_unit(unit: str | None, value_text: str) -> str:
    if unit in (None, "周岁", "岁"):
        return "age"
    if unit in ("天", "日", "日龄"):
        return "age_days"
    raise RowError("restriction_value", f"年龄限定'{value_text}'以月计，不是固定天数；请改写为天或岁", value_text)


def _whole(number: str, value_text: str) -> int:
    v = float(number)
    if not v.is_integer():
        raise RowError("restriction_value", f"年龄限定'{value_text}'不是整数", value_text)
    return int(v)


def _age_range(s: str):
    m = _RANGE.search(s)
    if not m:
        return None
    unit = _age_unit(m.group(4) or m.group(2), s)
    return {f"min_{unit}": _whole(m.group(1), s), f"max_{unit}": _whole(m.group(3), s)}


def _age_after(s: str):
    m = _AFTER.search(s)
    if not m:
        return None
    unit, n = _age_unit(m.group(2), s), _whole(m.group(1), s)
    return {f"min_{unit}": n} if m.group(3).endswith("以上") else {f"max_{unit}": n}


def _age_before(s: str):
    m = _BEFORE.search(s)
    if not m:
        return None
    op, unit, n = m.group(1), _age_unit(m.group(3), s), _whole(m.group(2), s)
    if op in (">=", "≥", "大于等于", "不小于", "不低于", "年满", "满"):
        return {f"min_{unit}": n}
    if op in (">", "大于", "超过"):
        return {f"min_{unit}": n + 1}
    if op in ("<=", "≤", "小于等于", "不大于", "不超过"):
        return {f"max_{unit}": n}
    return {f"max_{unit}": n - 1}  # <, 小于, 低于, 不满, 未满


def _named_age(s: str, child_under: int):
    for name in _NAMED_AGES:
        if name in s:
            return {"新生儿": {"max_age_days": 27}, "儿童": {"max_age": child_under - 1},
                    "小儿": {"max_age": child_under - 1}, "成年人": {"min_age": 18}, "成人": {"min_age": 18},
                    "老年人": {"min_age": 60}, "老年": {"min_age": 60}}[name]
    return None


_DAYS = re.compile(rf"{_NUM}\s*(天|日|周|星期|个月|月|年)?")


def parse_days(text, field_name: str, what: str) -> int:
    """'14', '14天', '2周' -> days. Months and years are not a fixed number of days: RowError."""
    s = re.sub(r"^(限|支付|使用|累计|不超过|不得超过|最多|最长|≤|<=)+", "", re.sub(r"\s", "", nfkc(text)))
    m = _DAYS.fullmatch(s)
    if not m:
        raise RowError(field_name, f"{what}'{text}'不是天数", text)
    n, unit = float(m.group(1)), m.group(2)
    if unit in ("个月", "月", "年"):
        raise RowError(field_name, f"{what}'{text}'以{unit}计，不是固定天数；请改写为天", text)
    days = n * 7 if unit in ("周", "星期") else n
    if not days.is_integer() or days <= 0:
        raise RowError(field_name, f"{what}'{text}'不是正整数天", text)
    return int(days)


def parse_count(text, field_name: str, what: str) -> float:
    """A positive number ('2', '2次')."""
    m = re.fullmatch(rf"{_NUM}\s*[^\d.]*", nfkc(text))
    if not m or float(m.group(1)) <= 0:
        raise RowError(field_name, f"{what}'{text}'不是正数", text)
    return float(m.group(1))


# ---- windows of pairs and frequencies ---------------------------------------------------------

_SCOPES = (("day", ("单日", "同日", "同天", "当日", "当天", "每日", "每天", "自然日", "同时")),
           ("encounter", ("单次", "同次", "当次", "每次", "次住院", "次就诊", "次门诊")))


def pair_scope(text) -> str:
    """频度 of a duplicate-charge pair -> 'day' (same calendar day) or 'encounter' (same mdtrt_id).
    No time word means the same encounter."""
    s = re.sub(r"\s", "", nfkc(text))
    if not s:
        return "encounter"
    for scope, words in _SCOPES:
        if any(w in s for w in words):
            return scope
    raise RowError("frequency", f"频度'{text}'不认识（认识：单日、同日、同时、单次、同次、当次住院…）", text)


_PERIODS = (("day", ("日", "天")), ("encounter", ("次住院", "住院", "次就诊", "就诊", "次门诊", "门诊")),
            ("week", ("周", "星期")), ("month", ("月",)), ("year", ("年",)))


def count_unit(unit_text) -> tuple[str, str | None]:
    """数量单位 '次/日' -> ('次', 'day'); '次' -> ('次', None): a unit that names no period."""
    s = re.sub(r"\s", "", nfkc(unit_text))
    if "/" not in s and "每" not in s:
        return s, None
    count, _, per = s.partition("/") if "/" in s else (s.split("每")[0], "", s.split("每", 1)[1])
    for period, words in _PERIODS:
        if any(per == w or per.endswith(w) for w in words):
            return count, period
    raise RowError("unit", f"数量单位'{unit_text}'的时间范围'{per}'不认识", unit_text)


# ---- course limits from free text -------------------------------------------------------------

_CLAUSE_SEPARATORS = re.compile(r"[,;，；。、]")
_DAY_AMOUNT = r"(\d+)\s*(天|日|周|星期|个月|月|年)"
_COURSE_PATTERNS = (
    ("max_total_days", re.compile(rf"(?:总时间|总时长|总天数|累计(?:时间|天数)?|疗程|总疗程|总计)[^\d]{{0,6}}"
                                  rf"(?:不超过|不得超过|不大于|≤|<=|最长|最多)\s*{_DAY_AMOUNT}")),
    ("min_interval_days", re.compile(rf"间隔[^\d]{{0,6}}(?:不短于|不少于|不小于|不低于|≥|>=|至少|大于等于)\s*{_DAY_AMOUNT}")),
    ("min_interval_days", re.compile(rf"间隔\s*{_DAY_AMOUNT}\s*(?:及)?以上")),
)


def parse_course(text) -> dict:
    """'总时间不超过90天，评定间隔时间不短于14天' -> max_total_days 90, min_interval_days 14. Every
    clause must be understood; one that is not makes the row a reject."""
    s = nfkc(text)
    if not s:
        raise RowError("course_text", "备注为空，没有疗程限定")
    found: dict[str, int] = {}
    for clause in (c.strip() for c in _CLAUSE_SEPARATORS.split(s)):
        if clause:
            name, days = _course_clause(clause, text)
            if name in found and found[name] != days:
                raise RowError("course_text", f"备注'{text}'给了两个不同的{name}", text)
            found[name] = days
    return found


def _course_clause(clause: str, text) -> tuple[str, int]:
    for name, pattern in _COURSE_PATTERNS:
        m = pattern.search(clause)
        if m:
            return name, parse_days(m.group(1) + m.group(2), "course_text", "疗程天数")
    raise RowError("course_text", f"备注中'{clause}'看不懂（认识：总时间不超过N天、间隔时间不短于N天）", text)
