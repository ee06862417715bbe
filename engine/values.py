"""Runtime values shared by every executor: three-valued logic, derived line values, formatting.

A value that cannot be known (missing field, unparsable dose text, incomparable units) is an
``Unknown`` carrying the reason; it propagates through operators (Kleene logic) and a rule whose
outcome depends on it reports "insufficient data" instead of passing or flagging.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from claimaudit.dsl.units import Quantity, parse_frequency, parse_quantity, quantize


@dataclass(frozen=True)
class Unknown:
    reason: str

    def __bool__(self):  # guard against accidental truth tests
        raise TypeError("Unknown has no truth value; use three-valued operators")


def is_unknown(v) -> bool:
    return isinstance(v, Unknown)


def service_date(line: dict):
    t = line.get("fee_ocur_time")
    if t is None:
        return Unknown("fee_ocur_time (date of service) is missing")
    return t.date() if isinstance(t, dt.datetime) else t


def age_years(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def derive(name: str, line: dict):
    """Compute a derived value of a line (see dsl.schema.DERIVED_FIELDS)."""
    if name == "service_date":
        return service_date(line)
    if name in ("age_years", "age_days"):
        d, b = service_date(line), line.get("brdy")
        if is_unknown(d):
            return d
        if b is None:
            return Unknown("brdy (birth date) is missing")
        if isinstance(b, dt.datetime):
            b = b.date()
        if b > d:
            return Unknown(f"brdy {b} is after the date of service {d}")
        return age_years(b, d) if name == "age_years" else (d - b).days
    if name == "single_dose":
        text = line.get("sin_dos_dscr")
        if text is None:
            return Unknown("sin_dos_dscr (single dose) is missing")
        q = parse_quantity(text)
        return q if q is not None else Unknown(f"single dose '{text}' cannot be read as a quantity")
    if name == "daily_frequency":
        text = line.get("used_frqu_dscr")
        if text is None:
            return Unknown("used_frqu_dscr (frequency) is missing")
        f = parse_frequency(text)
        return f if f is not None else Unknown(f"frequency '{text}' is not a regular daily frequency")
    if name == "daily_dose":
        dose, freq = derive("single_dose", line), derive("daily_frequency", line)
        if is_unknown(dose):
            return dose
        if is_unknown(freq):
            return freq
        return Quantity(quantize(dose.base_value * freq), dose.dimension)
    if name == "daily_cnt":
        cnt, days = line.get("cnt"), line.get("prd_days")
        if cnt is None:
            return Unknown("cnt is missing")
        if days is None or days <= 0:
            return Unknown("prd_days (days supplied) is missing or not positive")
        return cnt / days
    raise KeyError(name)


def format_value(v) -> str:
    if isinstance(v, Unknown):
        return "（未知）"
    if v is None:
        return "（空）"
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.6g}"
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ", timespec="minutes" if v.second == 0 else "seconds")
    if isinstance(v, (tuple, list)):
        return "、".join(format_value(x) for x in v)
    return str(v)


def format_money(v) -> str:
    return "（未知）" if v is None or isinstance(v, Unknown) else f"{v:.2f}"


def round_money(v: float) -> float:
    """Half-up to the fen. Written as plain float operations so the vector executor (batch.round_money_vec)
    can do exactly the same ones and agree to the last bit; the 1e-6 absorbs binary representation error
    (2.675 is stored as 2.67499999…)."""
    r = math.floor(abs(v) * 100 + 0.5 + 1e-6) / 100
    return -r if v < 0 else r
