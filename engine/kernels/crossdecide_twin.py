"""Deciding the usual cross-line rules of a request in one call per (rule, line), in Python: the twin of
``_crossdecide.pyx``, selected with ``CLAIMAUDIT_KERNELS=python``. Same signatures, same results
(tests/test_cross_kernels.py).

engine/inline_cross.py hands over the rules whose shape is taken here (``shape``: see CompiledCrossRule's
``kernel_shape``): a pair or requires rule whose condition is whether a partner is (not) in scope, and a window
over the lines of one knowledge row (``same k``) or of the whole group (``lines``, ``where field == "text"``)
whose condition compares one window value with a number or a knowledge column. Only the plain case is decided:
a line with a time of service and its group's fields, times that are naive datetimes or dates, knowledge rows
without dates, a known rolling length, numbers where numbers are summed or compared. Anything else — and two
lines of a knowledge row sharing a place in the total order — is left to inline_cross (verdict None), which
decides it as before.

The total order is window.order_key's: (time of service, encounter, line id), the time read as microseconds
since the proleptic Gregorian day 1, encounter and line id compared only when times are equal.
"""
from __future__ import annotations

import datetime as dt

# shape fields (a tuple: the compiled kernel reads it by position)
KIND, FIELDS, BY_DAY, STRICT, WANT, OP, CONST, WHERE, SCOPE, SLOT = range(10)
PAIR, POINT_WINDOW, GROUP_WINDOW = range(3)
# window values the kernel computes (codes of ``WANT`` for a window)
AGGREGATES = ("count", "quantity", "amount", "supply_days", "days", "span_days", "overlap_days", "codes",
              "encounters")
OPS = ("==", "!=", "<", "<=", ">", ">=")
_SUMMED = {1: "cnt", 2: "det_item_fee_sumamt", 3: "prd_days"}
_DISTINCT = {7: "med_list_codg", 8: "mdtrt_id"}
_DAY_US = 86_400_000_000
_NUMBER = (float, int)


class Undecided(Exception):
    """The plain case does not hold: inline_cross decides this (rule, line, row)."""


class Timeline:
    """A request's lines in the total order, as the decision kernel needs them: each line's time key and day
    (worked out on first use), the lines of a pool in order (listed once per request)."""

    def __init__(self, lines: list, times: list, present):
        """``present``: the request's pools (kernels.cross Pools)."""
        self.lines, self.times, self.present = lines, times, present
        self._keys: dict = {}  # line -> time key (µs) or None when the time is not a naive datetime or date
        self._pools: dict = {}  # pool id -> its lines in the total order, or None when two share a place
        self._groups: dict = {}  # (rule slot, group) -> the group's lines in the total order

    def key(self, k: int):
        got = self._keys.get(k, -1)
        if got == -1:
            got = self._keys[k] = _time_key(self.times[k])
        return got

    def day(self, k: int) -> int:
        return self.key(k) // _DAY_US

    def tie_key(self, k: int) -> tuple:
        line = self.lines[k]
        return str(line.get("mdtrt_id") or ""), str(line.get("feedetl_sn") or "")

    def compare(self, a: int, b: int) -> int:
        """-1, 0, 1 as line ``a``'s place in the total order is before, the same as, after ``b``'s."""
        ka, kb = self.key(a), self.key(b)
        if ka != kb:
            return -1 if ka < kb else 1
        ta, tb = self.tie_key(a), self.tie_key(b)
        return 0 if ta == tb else (-1 if ta < tb else 1)

    def order(self, members: list) -> bool:
        """Sort lines (in input order) into the total order, ties kept in input order; True on a tie. Raises
        Undecided when a line's time is not a naive datetime or date."""
        for m in members:
            if self.key(m) is None:
                raise Undecided
        members.sort(key=lambda m: (self._keys[m], self.tie_key(m)))
        return any(self.compare(a, b) == 0 for a, b in zip(members, members[1:]))

    def pool(self, pid) -> list:
        """The lines of a pool (as the request's index lists them) in the total order; Undecided when two share a
        place."""
        if pid in self._pools:
            got = self._pools[pid]
        else:
            got = self.present.members(pid)
            got = self._pools[pid] = None if self.order(got) else got
        if got is None:
            raise Undecided
        return got

    def group(self, shape: tuple, i: int) -> list:
        """The lines of line ``i``'s group passing the shape's ``where`` in the total order (ties in input
        order, as LineSet's group lists), from one patient."""
        fields = shape[FIELDS]
        line = self.lines[i]
        gkey = (shape[SLOT], tuple(line.get(f) for f in fields), self.day(i) if shape[BY_DAY] else None)
        got = self._groups.get(gkey)
        if got is None:
            got = [k for k in range(len(self.times)) if self.times[k] is not None and self.same_group(shape, k, i)
                   and _passes(self.lines[k], shape[WHERE])]
            self.order(got)
            psn = line.get("psn_no")
            if any(self.lines[k].get("psn_no") != psn for k in got):
                got = None  # a group that mixes patients: the reference orders it by patient
            self._groups[gkey] = got
        if got is None:
            raise Undecided
        return got

    def same_group(self, shape: tuple, m: int, i: int) -> bool:
        lm, li = self.lines[m], self.lines[i]
        for f in shape[FIELDS]:
            if lm.get(f) is None or not lm.get(f) == li.get(f):
                return False
        return not shape[BY_DAY] or (self.key(m) is not None and self.day(m) == self.day(i))


def _time_key(t):
    """Microseconds since day 1 of a naive datetime or a date (midnight); None for any other value."""
    if type(t) is dt.datetime:
        if t.tzinfo is not None:
            return None
        return t.toordinal() * _DAY_US + ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond
    if type(t) is dt.date:
        return t.toordinal() * _DAY_US
    return None


def _passes(line: dict, test) -> bool:
    return test is None or line.get(test[0]) == test[1]


def decide(tl: Timeline, shape: tuple, points: tuple, i: int):
    """What a rule decides on line ``i`` for each of its knowledge rows (``points``: (Point, partner pools)):
    None when no row flags the line; else [(Point, partner pools, verdict)] for every row that does or that is
    left to inline_cross, in row order. Verdict: True (a pair's violation), the window's lines (a window's
    violation, in the total order), None (left to inline_cross)."""
    out = None
    for pt, partner_pools in points:
        try:
            verdict = _decide_point(tl, shape, pt.fast, partner_pools, i)
        except Undecided:
            verdict = None
        if verdict is not False:
            if out is None:
                out = []
            out.append((pt, partner_pools, verdict))
    return out


def partners(tl: Timeline, shape: tuple, fast, partner_pools: tuple, i: int):
    """Every partner of line ``i`` in scope for one knowledge row of a pair (``shape``), in the total order
    (the lines a violation cites); None outside the plain case, or when two partners share a place."""
    try:
        _check_line(tl, shape, fast, i)
        found = []
        _partner_found(tl, shape, partner_pools, fast[1], i, found)
        if len(partner_pools) > 1:  # a line may match both sides: once, in the total order
            found = sorted(set(found))
            if tl.order(found):
                raise Undecided
        return found
    except Undecided:
        return None


def _check_line(tl: Timeline, shape: tuple, fast, i: int) -> None:
    """Undecided unless the row takes the kernel and line ``i`` has a time key and its group's fields."""
    if fast is None or tl.key(i) is None:
        raise Undecided
    line = tl.lines[i]
    for f in shape[FIELDS]:
        if line.get(f) is None:
            raise Undecided  # the group is unknown


def _decide_point(tl: Timeline, shape: tuple, fast, partner_pools: tuple, i: int):
    """False (no violation), True / the window's lines (a violation); Undecided outside the plain case."""
    _check_line(tl, shape, fast, i)
    line = tl.lines[i]
    scope = shape[SCOPE]
    if scope is not None:
        v = line.get(scope[0])
        if v is None:
            raise Undecided
        if not v == scope[1]:
            return False
    pool, rolling, threshold = fast
    if shape[KIND] == PAIR:
        return _partner_found(tl, shape, partner_pools, rolling, i, None) is shape[WANT]
    members = tl.pool(pool) if shape[KIND] == POINT_WINDOW else tl.group(shape, i)
    whole, today = shape[STRICT], tl.day(i)
    window = []
    point = shape[KIND] == POINT_WINDOW  # a row's lines across groups ('where' not applied yet)
    for m in members:
        if point and not (tl.same_group(shape, m, i) and _passes(tl.lines[m], shape[WHERE])):
            continue
        if not whole and tl.compare(m, i) > 0:
            continue
        if rolling is not None and not today - tl.day(m) < rolling:
            continue
        window.append(m)
    value = _aggregate(tl, shape[WANT], window, i)
    limit = shape[CONST] if shape[CONST] is not None else threshold
    return window if _compare(shape[OP], value, limit) else False


def _partner_found(tl: Timeline, shape: tuple, partner_pools: tuple, rolling, i: int, found) -> bool:
    """Whether a partner is in scope; with a list ``found``, every partner is listed in it."""
    strict, today = shape[STRICT], tl.day(i)
    for pid in partner_pools:
        if pid not in tl.present:
            continue
        for m in tl.pool(pid):
            if m == i or not tl.same_group(shape, m, i) or (strict and not tl.compare(m, i) < 0) or \
                    (rolling is not None and today - tl.day(m) >= rolling):
                continue
            if found is None:
                return True
            found.append(m)
    return bool(found)


def _aggregate(tl: Timeline, code: int, window: list, i: int) -> float:
    """A window value as inline_cross's _AGGREGATES computes it; Undecided where it would be unknown."""
    lines = tl.lines
    if code == 0:
        return float(len(window))
    if code in _SUMMED:
        name, total = _SUMMED[code], 0.0
        for m in window:
            v = lines[m].get(name)
            if type(v) not in _NUMBER:
                raise Undecided
            total += v
        return total
    if code == 4:
        return float(len({tl.day(m) for m in window}))
    if code == 5:
        return float(tl.day(i) - min(tl.day(m) for m in window) + 1) if window else 0.0
    if code == 6:
        today, overlap = tl.day(i), 0.0
        for m in window:
            supply = lines[m].get("prd_days")
            if supply is not None and type(supply) not in _NUMBER:
                raise Undecided
            if supply is not None and tl.compare(m, i) < 0:
                overlap = max(overlap, float(tl.day(m) - today + supply))
        return overlap
    name = _DISTINCT[code]
    return float(len({v for v in (lines[m].get(name) for m in window) if v is not None}))


def _compare(op: int, x: float, y) -> bool:
    if op == 0:
        return x == y
    if op == 1:
        return x != y
    if op == 2:
        return x < y
    if op == 3:
        return x <= y
    if op == 4:
        return x > y
    return x >= y
