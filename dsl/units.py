"""Quantities with units, and the dose / frequency text found on prescriptions.

A quantity is stored in the base unit of its dimension (mass in mg, volume in ml, time in days,
international units in IU); count units (片, 支, 粒 …) are each their own dimension because a
tablet cannot be converted to a vial without knowing the product.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

# unit -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "kg": ("mass", 1e6), "g": ("mass", 1e3), "mg": ("mass", 1.0), "µg": ("mass", 1e-3), "μg": ("mass", 1e-3),
    "ug": ("mass", 1e-3), "mcg": ("mass", 1e-3), "克": ("mass", 1e3), "毫克": ("mass", 1.0), "微克": ("mass", 1e-3),
    "l": ("volume", 1e3), "L": ("volume", 1e3), "ml": ("volume", 1.0), "mL": ("volume", 1.0), "毫升": ("volume", 1.0),
    "升": ("volume", 1e3),
    "IU": ("iu", 1.0), "U": ("iu", 1.0), "单位": ("iu", 1.0), "万U": ("iu", 1e4), "万IU": ("iu", 1e4),
    "万单位": ("iu", 1e4),
    "天": ("days", 1.0), "日": ("days", 1.0), "d": ("days", 1.0), "day": ("days", 1.0), "days": ("days", 1.0),
    "周": ("days", 7.0), "week": ("days", 7.0),
}
BASE_UNIT = {"mass": "mg", "volume": "ml", "iu": "IU", "days": "天"}
COUNT_UNITS = ("片", "粒", "支", "袋", "瓶", "丸", "贴", "枚", "个", "次", "盒", "包", "揿", "喷", "滴", "帖", "剂", "条", "张")
for _u in COUNT_UNITS:
    UNITS[_u] = (f"count:{_u}", 1.0)


@dataclass(frozen=True)
class Quantity:
    base_value: float  # in the dimension's base unit
    dimension: str

    def __str__(self) -> str:
        unit = BASE_UNIT.get(self.dimension) or self.dimension.split(":", 1)[-1]
        v = self.base_value
        if self.dimension == "mass" and v >= 1000:
            return f"{_fmt(v / 1000)}g"
        return f"{_fmt(v)}{unit}"

    @property
    def unit_name(self) -> str:
        return BASE_UNIT.get(self.dimension) or self.dimension.split(":", 1)[-1]


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def unit_of(name: str) -> tuple[str, float] | None:
    return UNITS.get(name) or UNITS.get(name.lower())


def dimension_name(dim: str) -> str:
    if dim.startswith("count:"):
        return f"count of {dim[6:]}"
    return dim


def quantize(base_value: float) -> float:
    """Snap a base-unit value to 1e-9 of its unit (a picogram for mass). Unit factors are not exact in
    binary (100 µg × 3 is 0.30000000000000004 mg), and a dose exactly at its limit must not read as
    over it. Plain float operations, so numpy and SQL executors can do exactly the same."""
    return math.floor(base_value * 1e9 + 0.5) / 1e9


def make_quantity(number: float, unit: str) -> Quantity:
    dim, factor = unit_of(unit)  # caller checked the unit exists
    return Quantity(quantize(number * factor), dim)


_QUANTITY_RE = re.compile(r"^\s*(?:每次|每日)?\s*(\d+(?:\.\d+)?)\s*([^\d\s/]+?)\s*(?:/次|每次)?\s*$")


@functools.lru_cache(maxsize=65536)  # dose texts repeat endlessly across lines; parse each once
def parse_quantity(text: str, default_unit: str | None = None) -> Quantity | None:
    """'0.5g', '500 mg', '2片', '每次0.5g' -> Quantity; a bare number takes ``default_unit``."""
    if text is None:
        return None
    s = str(text).strip().replace("，", ",").replace("．", ".")
    if not s:
        return None
    try:
        number = float(s)
    except ValueError:
        m = _QUANTITY_RE.match(s)
        if not m or unit_of(m.group(2)) is None:
            return None
        return make_quantity(float(m.group(1)), m.group(2))
    if default_unit is None or unit_of(default_unit) is None:
        return None
    return make_quantity(number, default_unit)


# Administrations per day. Irregular orders (prn, st, once) have no daily frequency: a dose
# rule on them is "insufficient data", never a guess.
_FREQ_CODES = {
    "qd": 1.0, "od": 1.0, "qn": 1.0, "qm": 1.0, "qam": 1.0, "qpm": 1.0, "qhs": 1.0, "hs": 1.0,
    "bid": 2.0, "tid": 3.0, "qid": 4.0, "qod": 0.5, "qw": 1 / 7, "biw": 2 / 7, "tiw": 3 / 7,
    "q1h": 24.0, "q2h": 12.0, "q3h": 8.0, "q4h": 6.0, "q6h": 4.0, "q8h": 3.0, "q12h": 2.0, "q24h": 1.0,
    "q48h": 0.5, "q72h": 1 / 3,
    "每日一次": 1.0, "每晚一次": 1.0, "隔日一次": 0.5, "每周一次": 1 / 7,
}
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_PER_DAY_RE = re.compile(r"^(?:每日|每天|一日|1日|日)\s*([0-9一二两三四五六七八九十]+)\s*次$")
_TIMES_PER_DAY_RE = re.compile(r"^([0-9一二两三四五六七八九十]+)\s*次\s*/\s*(?:日|天|d)$")


def _count(token: str) -> float | None:
    if token.isdigit():
        return float(token)
    return float(_CN_DIGITS[token]) if token in _CN_DIGITS else None


@functools.lru_cache(maxsize=65536)
def parse_frequency(text: str | None) -> float | None:
    """'tid' -> 3, 'q8h' -> 3, '每日3次' -> 3, '2次/日' -> 2; None when it is not a regular frequency."""
    if text is None:
        return None
    s = str(text).strip().replace(" ", "")
    if not s:
        return None
    low = s.lower().rstrip(".")
    if low in _FREQ_CODES:
        return _FREQ_CODES[low]
    m = _PER_DAY_RE.match(s) or _TIMES_PER_DAY_RE.match(s)
    if m:
        return _count(m.group(1))
    return None
