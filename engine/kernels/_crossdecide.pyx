# cython: language_level=3
"""Deciding the usual cross-line rules of a request in one call per (rule, line): see crossdecide_twin.py
(same signatures, same results; tests/test_cross_kernels.py). Time keys are C integers, worked out on first
use; lines are compared by them and, only when times are equal, by (encounter, line id)."""
from claimaudit.engine.kernels._dicts cimport dict_get as _get
from cpython.datetime cimport (import_datetime, PyDateTime_CheckExact, PyDate_CheckExact, datetime_tzinfo,
                               datetime_year, datetime_month, datetime_day, date_year, date_month, date_day,
                               datetime_hour, datetime_minute, datetime_second, datetime_microsecond)
from cpython.dict cimport PyDict_GetItemWithError, PyDict_CheckExact
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.ref cimport PyObject
from cpython.object cimport PyObject_RichCompareBool, Py_EQ, Py_LT
from cpython.float cimport PyFloat_CheckExact, PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_CheckExact
from libc.stdlib cimport qsort

from .crossdecide_twin import Undecided

import_datetime()

cdef enum:  # shape fields and kinds: crossdecide_twin's
    KIND, FIELDS, BY_DAY, STRICT, WANT, OP, CONST, WHERE, SCOPE, SLOT
cdef enum:
    PAIR, POINT_WINDOW, GROUP_WINDOW

cdef long long _DAY_US = 86400000000LL
cdef long long _UNSET = -1  # time key not worked out yet
cdef long long _NO_KEY = -2  # not a naive datetime or a date: the line is left to inline_cross
cdef int[13] _DAYS_BEFORE_MONTH = [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]


cdef inline long long _ordinal(int y, int m, int d):
    """date.toordinal(): day 1 is 0001-01-01 (proleptic Gregorian)."""
    cdef long long p = y - 1
    cdef int leap = (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0))
    return p * 365 + p // 4 - p // 100 + p // 400 + _DAYS_BEFORE_MONTH[m] + (1 if m > 2 and leap else 0) + d


cdef long long _time_key(object t):
    """Microseconds since day 1 of a naive datetime or a date (midnight); _NO_KEY for any other value."""
    cdef long long day
    if PyDateTime_CheckExact(t):
        if datetime_tzinfo(t) is not None:
            return _NO_KEY
        day = _ordinal(datetime_year(t), datetime_month(t), datetime_day(t))
        return day * _DAY_US + ((datetime_hour(t) * 60LL + datetime_minute(t)) * 60LL + datetime_second(t)) \
            * 1000000LL + datetime_microsecond(t)
    if PyDate_CheckExact(t):
        return _ordinal(date_year(t), date_month(t), date_day(t)) * _DAY_US
    return _NO_KEY


cdef struct _Entry:
    long long key
    Py_ssize_t line


cdef int _by_key(const void* a, const void* b) noexcept nogil:
    cdef _Entry* x = <_Entry*>a
    cdef _Entry* y = <_Entry*>b
    if x.key != y.key:
        return -1 if x.key < y.key else 1
    return -1 if x.line < y.line else (1 if x.line > y.line else 0)


cdef class Timeline:
    """A request's lines in the total order: see crossdecide_twin.Timeline."""
    cdef list lines, times
    cdef object present
    cdef Py_ssize_t n
    cdef long long* keys
    cdef dict _pools, _groups

    def __cinit__(self, list lines, list times, present):
        cdef Py_ssize_t k
        self.lines, self.times, self.present = lines, times, present
        self.n = PyList_GET_SIZE(times)
        self.keys = <long long*>PyMem_Malloc(max(self.n, 1) * sizeof(long long))
        if self.keys == NULL:
            raise MemoryError()
        for k in range(self.n):
            self.keys[k] = _UNSET
        self._pools, self._groups = {}, {}

    def __dealloc__(self):
        PyMem_Free(self.keys)

    cdef inline long long key(self, Py_ssize_t k) except? -3:
        cdef long long got = self.keys[k]
        if got == _UNSET:
            got = self.keys[k] = _time_key(<object>PyList_GET_ITEM(self.times, k))
        return got

    cdef inline long long day(self, Py_ssize_t k) except? -3:
        return self.key(k) // _DAY_US

    cdef tuple tie_key(self, Py_ssize_t k):
        line = <object>PyList_GET_ITEM(self.lines, k)
        return str(_get(line, "mdtrt_id") or ""), str(_get(line, "feedetl_sn") or "")

    cdef int compare(self, Py_ssize_t a, Py_ssize_t b) except -2:
        cdef long long ka = self.key(a), kb = self.key(b)
        if ka != kb:
            return -1 if ka < kb else 1
        ta, tb = self.tie_key(a), self.tie_key(b)
        if PyObject_RichCompareBool(ta, tb, Py_EQ):
            return 0
        return -1 if PyObject_RichCompareBool(ta, tb, Py_LT) else 1

    cdef bint order(self, list members) except -1:
        """Sort lines (in input order) into the total order, ties kept in input order; True on a tie."""
        cdef Py_ssize_t c = PyList_GET_SIZE(members), j, s, e, a
        cdef _Entry* es
        cdef bint tie = False
        if c == 0:
            return False
        es = <_Entry*>PyMem_Malloc(c * sizeof(_Entry))
        if es == NULL:
            raise MemoryError()
        try:
            for j in range(c):
                es[j].line = <Py_ssize_t>members[j]
                es[j].key = self.key(es[j].line)
                if es[j].key == _NO_KEY:
                    raise Undecided
            qsort(es, c, sizeof(_Entry), _by_key)
            s = 0
            while s < c:  # runs of equal times: by (encounter, line id), stable (insertion)
                e = s + 1
                while e < c and es[e].key == es[s].key:
                    e += 1
                if e - s > 1:
                    tie |= self._order_run(es, s, e)
                s = e
            for j in range(c):
                members[j] = es[j].line
        finally:
            PyMem_Free(es)
        return tie

    cdef bint _order_run(self, _Entry* es, Py_ssize_t s, Py_ssize_t e) except -1:
        cdef Py_ssize_t j, h
        cdef _Entry x
        cdef bint tie = False
        ties = [self.tie_key(es[j].line) for j in range(s, e)]
        for j in range(1, e - s):
            x = es[s + j]
            tk = ties[j]
            h = j
            while h > 0 and PyObject_RichCompareBool(tk, ties[h - 1], Py_LT):
                es[s + h] = es[s + h - 1]
                ties[h] = ties[h - 1]
                h -= 1
            es[s + h] = x
            ties[h] = tk
        for j in range(1, e - s):
            if PyObject_RichCompareBool(ties[j], ties[j - 1], Py_EQ):
                tie = True
        return tie

    cdef list pool(self, pid):
        """The lines of a pool in the total order; raises Undecided when two share a place."""
        cdef PyObject* hit = PyDict_GetItemWithError(self._pools, pid)
        cdef list got
        if hit != NULL:
            got = <list>hit if <object>hit is not None else None
        else:
            got = self.present.members(pid)  # as the request's index lists them, in input order
            self._pools[pid] = got
            if self.order(got):
                got = self._pools[pid] = None
        if got is None:
            raise Undecided
        return got

    cdef list group(self, tuple shape, Py_ssize_t i):
        """The lines of line ``i``'s group passing ``where``, in the total order, from one patient."""
        cdef tuple fields = <tuple>shape[FIELDS]
        cdef object where = shape[WHERE]
        cdef bint by_day = shape[BY_DAY]
        cdef Py_ssize_t k
        cdef list got
        line = <object>PyList_GET_ITEM(self.lines, i)
        gkey = (shape[SLOT], tuple([_get(line, f) for f in fields]), self.day(i) if by_day else None)
        hit = self._groups.get(gkey, False)
        if hit is False:
            got = []
            for k in range(self.n):
                if <object>PyList_GET_ITEM(self.times, k) is None or not self.same_group(fields, by_day, k, i):
                    continue
                if not _passes(self, k, where):
                    continue
                got.append(k)
            self.order(got)
            psn = _get(line, "psn_no")
            for k in got:
                if _get(<object>PyList_GET_ITEM(self.lines, k), "psn_no") != psn:
                    got = None  # a group that mixes patients: the reference orders it by patient
                    break
            self._groups[gkey] = hit = got
        if hit is None:
            raise Undecided
        return <list>hit

    cdef bint same_group(self, tuple fields, bint by_day, Py_ssize_t m, Py_ssize_t i) except -1:
        cdef Py_ssize_t j
        cdef object lm = <object>PyList_GET_ITEM(self.lines, m), li = <object>PyList_GET_ITEM(self.lines, i)
        cdef object v
        cdef long long km
        for j in range(PyTuple_GET_SIZE(fields)):
            f = <object>PyTuple_GET_ITEM(fields, j)
            v = _get(lm, f)
            if v is None or not PyObject_RichCompareBool(v, _get(li, f), Py_EQ):
                return False
        if not by_day:
            return True
        km = self.key(m)
        return km != _NO_KEY and km // _DAY_US == self.day(i)


def decide(Timeline tl, tuple shape, tuple points, Py_ssize_t i):
    """What a rule decides on line ``i`` for each knowledge row: see crossdecide_twin.decide."""
    cdef list out = None
    cdef Py_ssize_t j
    cdef tuple entry
    for j in range(PyTuple_GET_SIZE(points)):
        entry = <tuple>PyTuple_GET_ITEM(points, j)
        try:
            verdict = _decide_point(tl, shape, (<object>PyTuple_GET_ITEM(entry, 0)).fast,
                                    <tuple>PyTuple_GET_ITEM(entry, 1), i)
        except Undecided:
            verdict = None
        if verdict is not False:
            if out is None:
                out = []
            out.append((<object>PyTuple_GET_ITEM(entry, 0), <object>PyTuple_GET_ITEM(entry, 1), verdict))
    return out


cdef inline bint _passes(Timeline tl, Py_ssize_t m, object where) except -1:
    """Line ``m`` passes ``where`` (field, text): None passes every line."""
    if where is None:
        return True
    return _get(<object>PyList_GET_ITEM(tl.lines, m), (<tuple>where)[0]) == (<tuple>where)[1]


def partners(Timeline tl, tuple shape, object fast, tuple partner_pools, Py_ssize_t i):
    """Every partner of line ``i`` for one row of a pair: see crossdecide_twin.partners."""
    cdef list found = []
    cdef double roll = 0
    try:
        _check_line(tl, shape, fast, i)
        rolling = (<tuple>fast)[1]
        if rolling is not None:
            roll = rolling
        _partner_found(tl, shape, partner_pools, rolling is not None, roll, tl.day(i), i, found)
        if PyTuple_GET_SIZE(partner_pools) > 1:  # a line may match both sides: once, in the total order
            found = sorted(set(found))
            if tl.order(found):
                raise Undecided
        return found
    except Undecided:
        return None


cdef int _check_line(Timeline tl, tuple shape, object fast, Py_ssize_t i) except -1:
    """Undecided unless the row takes the kernel and line ``i`` has a time key and its group's fields."""
    cdef tuple fields = <tuple>shape[FIELDS]
    cdef Py_ssize_t j
    if fast is None or tl.key(i) == _NO_KEY:
        raise Undecided
    line = <object>PyList_GET_ITEM(tl.lines, i)
    for j in range(PyTuple_GET_SIZE(fields)):
        if _get(line, <object>PyTuple_GET_ITEM(fields, j)) is None:
            raise Undecided  # the group is unknown
    return 0


cdef object _decide_point(Timeline tl, tuple shape, object fast, tuple partner_pools, Py_ssize_t i):
    cdef tuple fields = <tuple>shape[FIELDS]
    cdef bint by_day = shape[BY_DAY], whole, point
    cdef Py_ssize_t j, c, m
    cdef long long today
    cdef double roll = 0, value
    cdef bint rolls
    cdef list members, window
    _check_line(tl, shape, fast, i)
    line = <object>PyList_GET_ITEM(tl.lines, i)
    scope = shape[SCOPE]
    if scope is not None:
        v = _get(line, (<tuple>scope)[0])
        if v is None:
            raise Undecided
        if not v == (<tuple>scope)[1]:
            return False
    rolling = (<tuple>fast)[1]
    rolls = rolling is not None
    if rolls:
        roll = rolling
    today = tl.day(i)
    if shape[KIND] == PAIR:
        return _partner_found(tl, shape, partner_pools, rolls, roll, today, i, None) is shape[WANT]
    whole = shape[STRICT]
    point = shape[KIND] == POINT_WINDOW
    where = shape[WHERE]
    window = []
    if shape[KIND] == POINT_WINDOW:
        members = tl.pool((<tuple>fast)[0])
    else:
        members = tl.group(shape, i)
    c = PyList_GET_SIZE(members)
    for j in range(c):
        m = <Py_ssize_t>(<object>PyList_GET_ITEM(members, j))
        if point and not (tl.same_group(fields, by_day, m, i) and _passes(tl, m, where)):
            continue  # a row's lines across groups ('where' not applied yet)
        if not whole and tl.compare(m, i) > 0:
            continue
        if rolls and not <double>(today - tl.day(m)) < roll:
            continue
        window.append(m)
    value = _aggregate(tl, shape[WANT], window, i, today)
    limit = shape[CONST] if shape[CONST] is not None else (<tuple>fast)[2]
    return window if _compare(shape[OP], value, limit) else False


cdef bint _partner_found(Timeline tl, tuple shape, tuple partner_pools, bint rolls, double roll, long long today,
                         Py_ssize_t i, list found) except -1:
    """Whether a partner is in scope; with a list ``found``, every partner is listed in it."""
    cdef tuple fields = <tuple>shape[FIELDS]
    cdef bint by_day = shape[BY_DAY], strict = shape[STRICT]
    cdef Py_ssize_t j, k, m
    cdef list pool
    for j in range(PyTuple_GET_SIZE(partner_pools)):
        pid = <object>PyTuple_GET_ITEM(partner_pools, j)
        if pid not in tl.present:
            continue
        pool = tl.pool(pid)
        for k in range(PyList_GET_SIZE(pool)):
            m = <Py_ssize_t>(<object>PyList_GET_ITEM(pool, k))
            if m == i or not tl.same_group(fields, by_day, m, i) or (strict and not tl.compare(m, i) < 0) or \
                    (rolls and <double>(today - tl.day(m)) >= roll):
                continue
            if found is None:
                return True
            found.append(m)
    return found is not None and PyList_GET_SIZE(found) > 0


cdef inline double _number(object v) except? -1.5:
    """A float or int field value as a double (as Python adds it to a float); Undecided for anything else."""
    if PyFloat_CheckExact(v):
        return PyFloat_AS_DOUBLE(v)
    if PyLong_CheckExact(v):
        return <double>v
    raise Undecided


cdef double _aggregate(Timeline tl, int code, list window, Py_ssize_t i, long long today) except? -1.5:
    """A window value as inline_cross's _AGGREGATES computes it; Undecided where it would be unknown."""
    cdef Py_ssize_t c = PyList_GET_SIZE(window), j, m
    cdef double total = 0.0, overlap = 0.0, x
    cdef long long first, d
    if code == 0:
        return <double>c
    if 1 <= code <= 3:
        name = ("cnt", "det_item_fee_sumamt", "prd_days")[code - 1]
        for j in range(c):
            m = <Py_ssize_t>(<object>PyList_GET_ITEM(window, j))
            total += _number(_get(<object>PyList_GET_ITEM(tl.lines, m), name))
        return total
    if code == 4:
        days = set()
        for j in range(c):
            days.add(tl.day(<Py_ssize_t>(<object>PyList_GET_ITEM(window, j))))
        return <double>len(days)
    if code == 5:
        if c == 0:
            return 0.0
        first = today
        for j in range(c):
            d = tl.day(<Py_ssize_t>(<object>PyList_GET_ITEM(window, j)))
            if d < first:
                first = d
        return <double>(today - first + 1)
    if code == 6:
        for j in range(c):
            m = <Py_ssize_t>(<object>PyList_GET_ITEM(window, j))
            supply = _get(<object>PyList_GET_ITEM(tl.lines, m), "prd_days")
            if supply is None:
                continue
            if PyLong_CheckExact(supply):
                x = <double>(tl.day(m) - today + supply)  # int arithmetic first, as Python does
            else:
                x = <double>(tl.day(m) - today) + _number(supply)
            if tl.compare(m, i) < 0 and x > overlap:
                overlap = x
        return overlap
    name = "med_list_codg" if code == 7 else "mdtrt_id"
    values = set()
    for j in range(c):
        v = _get(<object>PyList_GET_ITEM(tl.lines, <Py_ssize_t>(<object>PyList_GET_ITEM(window, j))), name)
        if v is not None:
            values.add(v)
    return <double>len(values)


cdef bint _compare(int op, double x, object y) except -1:
    """The window value against a float or int (Python compares them exactly)."""
    cdef double z
    if PyFloat_CheckExact(y):
        z = PyFloat_AS_DOUBLE(y)
        return x == z if op == 0 else x != z if op == 1 else x < z if op == 2 else x <= z if op == 3 \
            else x > z if op == 4 else x >= z
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
