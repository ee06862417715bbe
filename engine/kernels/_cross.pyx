# cython: language_level=3
"""The inline screener's per-request index for cross-line rules (engine/inline_cross.py). Twin:
cross_twin.py (same signatures, same results; tests/test_cross_kernels.py)."""
from cpython.dict cimport PyDict_GetItemWithError, PyDict_CheckExact
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.set cimport PySet_Add
from cpython.ref cimport PyObject

_TIME = "fee_ocur_time"


cdef inline object _get(object line, object key):
    """``line.get(key)``; a plain dict without a method call."""
    cdef PyObject* v
    if PyDict_CheckExact(line):
        v = PyDict_GetItemWithError(line, key)
        return None if v == NULL else <object>v
    return line.get(key)


def index_request(list lines, tuple fields, tuple memos, miss, tuple no_facts):
    """(times, facts, present) of a request's lines: see cross_twin.index_request."""
    cdef Py_ssize_t n = PyList_GET_SIZE(lines), k, j, f, nf = len(fields)
    cdef list times = [None] * n
    cdef list per
    cdef list facts = []
    cdef set present = set()
    cdef dict memo
    cdef object line, code, got, field
    cdef PyObject* hit
    cdef tuple pids
    time_key = _TIME
    for k in range(n):
        times[k] = _get(<object>PyList_GET_ITEM(lines, k), time_key)
    for f in range(nf):
        field = fields[f]
        memo = memos[f]
        per = [None] * n
        for k in range(n):
            line = <object>PyList_GET_ITEM(lines, k)
            code = _get(line, field)
            if code is None:
                got = no_facts
            else:
                hit = PyDict_GetItemWithError(memo, code)
                got = miss(field, code) if hit == NULL else <object>hit
            per[k] = got
            if times[k] is not None:
                pids = <tuple>got[0]
                for j in range(PyTuple_GET_SIZE(pids)):
                    PySet_Add(present, <object>PyTuple_GET_ITEM(pids, j))
        facts.append(per)
    return times, facts, present


cdef inline bint _holds(tuple items, object x):
    """Whether ``x`` itself (not an equal object) is one of ``items``."""
    cdef Py_ssize_t j
    cdef PyObject* p = <PyObject*>x
    for j in range(PyTuple_GET_SIZE(items)):
        if PyTuple_GET_ITEM(items, j) == p:
            return True
    return False


def pool_members(list facts, list times, pid):
    """The lines of pool ``pid``: see cross_twin.pool_members."""
    cdef Py_ssize_t n = PyList_GET_SIZE(times), k, f, nf = PyList_GET_SIZE(facts)
    cdef list out = []
    cdef list per
    for k in range(n):
        if <object>PyList_GET_ITEM(times, k) is None:
            continue
        for f in range(nf):
            per = <list>PyList_GET_ITEM(facts, f)
            if _holds(<tuple>(<tuple>PyList_GET_ITEM(per, k))[0], pid):
                out.append(k)
                break
    return out


def passed_over(list facts, list times, set present, line, Py_ssize_t i, tuple no_facts):
    """Whether line ``i`` is decided by its code alone: see cross_twin.passed_over."""
    cdef tuple got = <tuple>facts[i]
    cdef object plain
    cdef tuple needs
    cdef Py_ssize_t j
    if got is no_facts or PyTuple_GET_SIZE(<tuple>got[1]):
        return False
    plain = got[2]
    if plain is None:
        return True
    if times[i] is None or not present.isdisjoint((<tuple>plain)[0]):
        return False
    needs = <tuple>(<tuple>plain)[1]
    for j in range(PyTuple_GET_SIZE(needs)):
        if _get(line, <object>PyTuple_GET_ITEM(needs, j)) is None:
            return False
    return True


def position(list lines, line, Py_ssize_t start):
    """The index of ``line`` (by identity) in ``lines``, looking from ``start`` on first; -1 if absent."""
    cdef Py_ssize_t n = PyList_GET_SIZE(lines), k
    cdef PyObject* p = <PyObject*>line
    if start < 0:
        start = 0
    for k in range(start, n):
        if PyList_GET_ITEM(lines, k) == p:
            return k
    for k in range(min(start, n)):
        if PyList_GET_ITEM(lines, k) == p:
            return k
    return -1
