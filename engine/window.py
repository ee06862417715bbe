"""Cross-line rules, the reference way: what a line's window, pair partners or required companions are.

Semantics every executor follows (docs/language.md, "Cross-line rules"):

* **Total order.** Lines are ordered by (patient, time of service, encounter id, line id). Ties in time are
  broken by the ids, so which of two simultaneous lines is "the later" never depends on input order or
  batch boundaries. A line without a time of service has no place in that order: it is insufficient data
  for every cross-line rule it is a candidate of, and it is left out of other lines' windows.
* **Scope → group.** encounter = same ``mdtrt_id``; prescription = same ``mdtrt_id`` and ``rxno``; day /
  month / quarter / year / insurance_year = the patient's calendar period of the service date (the
  insurance year is the calendar year, as in most pooling regions); patient = the patient's history;
  institution = the patient's history at the same ``fixmedins_code``.
* **Window** (``window w = …``): lines of the group that are the same knowledge row / knowledge value /
  field value as this line (or all lines) and satisfy ``where``; up to and including this line in the
  total order (the running count flags the occurrence that goes over the limit, and every later one),
  or the whole group with ``all``. ``rolling N`` keeps the lines of the N calendar days ending on this
  line's day.
* **Pair / requires.** A partner is another line of the group matching the other side of the same table
  row. In history scopes (patient, institution, rolling) partners come before this line; so do they for
  ``unordered`` pairs in every scope, which makes the later of the two lines the violating one.
"""
from __future__ import annotations

import datetime as dt

from claimaudit.dsl import ir
from claimaudit.dsl.units import Quantity

from .values import Unknown, is_unknown, service_date

MAX_INVOLVED = 20  # window lines cited as involved (涉及项): the latest ones before this line
NO_TIME = Unknown("fee_ocur_time (time of service) is missing: the line has no place in the patient's history")


def line_time(line: dict):
    t = line.get("fee_ocur_time")
    if t is None:
        return None
    return t if isinstance(t, dt.datetime) else dt.datetime.combine(t, dt.time())


def order_key(line: dict) -> tuple:
    """Position in the total order (within a patient)."""
    return (line_time(line), str(line.get("mdtrt_id") or ""), str(line.get("feedetl_sn") or ""))


def group_of(scope: str, line: dict):
    """The group a line belongs to for ``scope``, or Unknown with the missing field."""
    if scope in ("encounter", "prescription"):
        m = line.get("mdtrt_id")
        if m is None:
            return Unknown("mdtrt_id (encounter) is missing")
        if scope == "encounter":
            return ("encounter", m)
        rx = line.get("rxno")
        return Unknown("rxno (prescription number) is missing") if rx is None else ("prescription", m, rx)
    psn = line.get("psn_no")
    if psn is None:
        return Unknown("psn_no (person) is missing")
    if scope == "patient":
        return ("patient", psn)
    if scope == "institution":
        inst = line.get("fixmedins_code")
        return Unknown("fixmedins_code (institution) is missing") if inst is None else ("institution", psn, inst)
    d = service_date(line)
    if is_unknown(d):
        return d
    return (scope, psn) + period_of(scope, d)


def period_of(scope: str, d: dt.date) -> tuple:
    if scope == "day":
        return (d.toordinal(),)
    if scope == "month":
        return (d.year, d.month)
    if scope == "quarter":
        return (d.year, (d.month - 1) // 3)
    return (d.year,)  # year, insurance_year


class LineSet:
    """Every line cross-line rules may look at, by patient, in total order; knowledge matches cached."""

    def __init__(self, lines: list):
        self.lines = lines
        by_patient: dict = {}
        for line in lines:
            if line_time(line) is not None:
                by_patient.setdefault(line.get("psn_no"), []).append(line)
        for group in by_patient.values():
            group.sort(key=order_key)
        self.by_patient = by_patient
        self._matches: dict = {}
        self._groups: dict = {}  # (scope, id(line)) -> group or Unknown
        self._orders: dict = {}  # id(line) -> order key
        self._where: dict = {}  # (id(where), id(line)) -> bool
        self._index: dict = {}  # scope -> group -> lines; ("rows", table, side, key) -> row -> lines

    def in_group(self, scope: str, group) -> list:
        """Lines of a group, in total order (built once per scope)."""
        index = self._index.get(scope)
        if index is None:
            index = self._index[scope] = {}
            for lines in self.by_patient.values():
                for m in lines:
                    index.setdefault(self.group(scope, m), []).append(m)
        return index.get(group, [])

    def matching(self, table, side: str, key_expr, point: int, evaluate) -> list:
        """Lines whose key matches row ``point`` on ``side``, in total order (built once per table side)."""
        k = ("rows", id(table), side, key_expr)  # rules may read one table through different keys
        index = self._index.get(k)
        if index is None:
            index = self._index[k] = {}
            if isinstance(key_expr, ir.Field):  # the usual key, a code field: look each distinct code up once
                by_code: dict = {}
                for lines in self.by_patient.values():
                    for m in lines:
                        by_code.setdefault(m.get(key_expr.name), []).append(m)
                for code, lines in by_code.items():
                    for r in (lookup_points(table, side, code) if code is not None else ()):
                        index.setdefault(r, []).extend(lines)
                for r, lines in index.items():
                    lines.sort(key=self.order)
            else:
                for lines in self.by_patient.values():
                    for m in lines:
                        for r in self.matches(table, side, key_expr, m, evaluate):
                            index.setdefault(r, []).append(m)
        return index.get(point, [])

    def matching_in(self, table, side: str, key_expr, point: int, scope: str, group, evaluate) -> list:
        """``matching`` lines that are in ``group`` of ``scope`` (indexed once per table side and scope: a
        window looks at its group, not at every line of the knowledge row)."""
        k = ("rows-in", id(table), side, key_expr, scope)
        index = self._index.get(k)
        if index is None:
            index = self._index[k] = {}
            rows = self._index.get(("rows", id(table), side, key_expr))
            if rows is None:
                self.matching(table, side, key_expr, point, evaluate)
                rows = self._index[("rows", id(table), side, key_expr)]
            for r, lines in rows.items():
                for m in lines:  # in total order, kept within each group
                    index.setdefault((r, self.group(scope, m)), []).append(m)
        return index.get((point, group), [])

    def group(self, scope: str, line: dict):
        k = (scope, id(line))
        g = self._groups.get(k)
        if g is None:
            g = self._groups[k] = group_of(scope, line)
        return g

    def order(self, line: dict) -> tuple:
        k = self._orders.get(id(line))
        if k is None:
            k = self._orders[id(line)] = order_key(line)
        return k

    def where(self, where, line: dict, evaluate) -> bool:
        if where is None:
            return True
        k = (id(where), id(line))
        v = self._where.get(k)
        if v is None:
            from .reference import Env
            v = self._where[k] = evaluate(where, Env(line, None)) is True
        return v

    def matches(self, table, side: str, key_expr, line: dict, evaluate) -> tuple:
        """Rows of ``table`` whose ``side`` column matches the line's key (cached per line)."""
        ck = (id(table), side, id(line))
        got = self._matches.get(ck)
        if got is None:
            if isinstance(key_expr, ir.Field) and key_expr.name in line:  # the usual key: a code field
                key = line[key_expr.name]
            else:
                from .reference import Env
                key = evaluate(key_expr, Env(line, None))
            got = () if key is None or is_unknown(key) else lookup_points(table, side, key)
            self._matches[ck] = got
        return got


_MEMO_LIMIT = 200_000


def lookup_points(table, side: str, key) -> tuple:
    """Rows a line's key matches on the ``side`` column of a table (key, partner, or either of them).
    Remembered per table: codes repeat from request to request (knowledge tables never change)."""
    memo = table.__dict__.setdefault("_points_memo", {})
    got = memo.get((side, key))
    if got is None:
        if side == "either":
            got = tuple(sorted(set(table.matches(key)) | set(table.partner_matches(key))))
        else:
            got = tuple(table.side_matches(side, key))
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[(side, key)] = got
    return got


def _rolling_days(rule: ir.Rule, env, evaluate):
    v = evaluate(rule.window.rolling_days, env)
    if is_unknown(v):
        return v
    days = v.base_value if isinstance(v, Quantity) else v
    return Unknown(f"rolling window of {days} days is not a positive number of days") if days <= 0 else days


def window_values(rule: ir.Rule, table, point: int | None, env, lineset: LineSet, evaluate):
    """(values by name, involved lines) for one line and knowledge row, or Unknown with the reason."""
    w: ir.Window = rule.window
    line = env.line
    if line_time(line) is None:
        return NO_TIME
    group = group_of(w.scope, line)
    if is_unknown(group):
        return group
    rolling = None
    if w.rolling_days is not None:
        rolling = _rolling_days(rule, env, evaluate)
        if is_unknown(rolling):
            return rolling
    me = lineset.order(line)
    day = service_date(line)
    scope = w.scope
    if w.kind == "window":
        same = _same_value(rule, table, point, env, lineset, evaluate)
        if is_unknown(same):
            return same
        if w.same == ("point",):  # only lines of the same knowledge row can count
            pool = lineset.matching_in(table, rule.lookup.side, rule.lookup.key, point, scope, group, evaluate)
        else:
            pool = lineset.in_group(scope, group)
        members = [m for m in pool
                   if _within(lineset, m, me, day, rolling, w.whole, False)
                   and _same(rule, table, same, m, lineset, evaluate) and lineset.where(w.where, m, evaluate)]
        return _aggregates(members, line, me, day)
    sides = _partner_sides(rule, table, point, line, lineset, evaluate)
    strict = w.looks_back or w.unordered
    pool = {id(m): m for s in sides for m in lineset.matching_in(table, s, rule.lookup.key, point, scope, group, evaluate)}
    partners = sorted((m for m in pool.values()
                       if m is not line and _within(lineset, m, me, day, rolling, not strict, strict)),
                      key=lineset.order)
    return {"partner": bool(partners)}, (tuple(partners) if w.kind == "pair" else ())


def _partner_sides(rule, table, point, line, lineset, evaluate) -> tuple:
    """Which column a partner line must match: the other side of the one this line matched."""
    side = rule.lookup.side
    if side == "key":
        return ("partner",)
    if side == "partner":
        return ("key",)
    on_key = point in lineset.matches(table, "key", rule.lookup.key, line, evaluate)
    on_partner = point in lineset.matches(table, "partner", rule.lookup.key, line, evaluate)
    return ("partner", "key") if on_key and on_partner else (("partner",) if on_key else ("key",))


def _within(lineset: LineSet, m: dict, me: tuple, day, rolling, whole: bool, strict: bool) -> bool:
    if not whole:
        k = lineset.order(m)
        if k > me or (strict and k == me):
            return False
    if rolling is not None and (day - service_date(m)).days >= rolling:
        return False
    return True


def _same_value(rule, table, point, env, lineset, evaluate):
    same = rule.window.same
    if same is None or same[0] == "point":
        return point
    if same[0] == "knowledge":
        v = table.rows[point].get(same[1])
        return Unknown(f"knowledge column {same[1]} is empty") if v is None else v
    v = env.line.get(same[1])
    return Unknown(f"{same[1]} is missing") if v is None else v


def _same(rule, table, value, m: dict, lineset: LineSet, evaluate) -> bool:
    same = rule.window.same
    if same is None:
        return True
    if same[0] == "field":
        return m.get(same[1]) == value
    rows = lineset.matches(table, rule.lookup.side, rule.lookup.key, m, evaluate)
    if same[0] == "point":
        return value in rows
    return any(table.rows[r].get(same[1]) == value for r in rows)


def _sum(members, name: str):
    total = 0.0
    for m in members:
        v = m.get(name)
        if v is None:
            return Unknown(f"{name} is missing on line {m.get('feedetl_sn')} of the window")
        total += v
    return total


def _aggregates(members: list, line: dict, me: tuple, day) -> tuple:
    days = [service_date(m) for m in members]
    overlap = 0.0
    for m, d in zip(members, days):
        supply = m.get("prd_days")
        if order_key(m) < me and supply is not None:
            overlap = max(overlap, float((d - day).days + supply))
    values = {
        "count": float(len(members)),
        "quantity": _sum(members, "cnt"),
        "amount": _sum(members, "det_item_fee_sumamt"),
        "days": float(len(set(days))),
        "span_days": float((day - min(days)).days + 1) if days else 0.0,
        "supply_days": _sum(members, "prd_days"),
        "overlap_days": overlap,
        "codes": float(len({m.get("med_list_codg") for m in members if m.get("med_list_codg") is not None})),
        "encounters": float(len({m.get("mdtrt_id") for m in members if m.get("mdtrt_id") is not None})),
    }
    others = [m for m in members if m is not line]
    return values, tuple(others[-MAX_INVOLVED:])
