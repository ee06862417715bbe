# cython: language_level=3
"""The inline screener's per-request index for cross-line rules (engine/inline_cross.py). Twin:
cross_twin.py (same signatures, same results; tests/test_cross_kernels.py)."""
from claimaudit.engine.kernels._dicts cimport dict_get as _get
from cpython.dict cimport PyDict_GetItemWithError, PyDict_CheckExact
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.long cimport PyLong_AsLong, PyLong_CheckExact
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.set cimport PyAnySet_CheckExact, PySet_Contains
from cpython.ref cimport PyObject
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

_TIME = "fee_ocur_time"
cdef str _LINE_ID = "feedetl_sn"


cdef class Pools:
    """The pools present in a request and their lines (in input order): see cross_twin.Pools. An open-addressing
    hash of pool ids, each with a chain of its lines: one allocation per request instead of a Python set that
    grows, and a pool's lines listed without scanning the request again."""
    cdef int* slot_pid  # pool id per slot, -1: empty
    cdef int* slot_head  # per slot, the entry of the pool's last line
    cdef int* entry_line
    cdef int* entry_next  # the entry of the pool's line before (-1: none)
    cdef Py_ssize_t mask, count, entries

    def __cinit__(self, Py_ssize_t capacity):
        cdef Py_ssize_t size = 8, k
        while size < 2 * capacity:
            size *= 2
        self.mask = size - 1
        self.slot_pid = <int*>PyMem_Malloc((2 * size + 2 * max(capacity, 1)) * sizeof(int))
        if self.slot_pid == NULL:
            raise MemoryError()
        self.slot_head = self.slot_pid + size
        self.entry_line = self.slot_head + size
        self.entry_next = self.entry_line + max(capacity, 1)
        for k in range(size):
            self.slot_pid[k] = -1

    def __dealloc__(self):
        PyMem_Free(self.slot_pid)

    cdef inline Py_ssize_t _slot(self, long pid) noexcept:
        """The slot holding ``pid``, or the empty slot where it would go."""
        cdef Py_ssize_t s = <Py_ssize_t>((<unsigned long>pid * 2654435761UL) & self.mask)
        while self.slot_pid[s] != -1 and self.slot_pid[s] != pid:
            s = (s + 1) & self.mask
        return s

    cdef inline void add(self, long pid, int line) noexcept:
        """Line ``line`` is in pool ``pid`` (lines come in input order; a line listed twice is kept once)."""
        cdef Py_ssize_t s = self._slot(pid), e
        if self.slot_pid[s] == -1:
            self.slot_pid[s] = pid
            self.slot_head[s] = -1
            self.count += 1
        elif self.entry_line[self.slot_head[s]] == line:
            return
        e = self.entries
        self.entries += 1
        self.entry_line[e] = line
        self.entry_next[e] = self.slot_head[s]
        self.slot_head[s] = e

    cdef inline bint has(self, object pid) except -1:
        cdef long v
        if not PyLong_CheckExact(pid):
            return False
        v = PyLong_AsLong(pid)
        return 0 <= v < 0x7fffffff and self.slot_pid[self._slot(v)] == v

    def __contains__(self, pid):
        return self.has(pid)

    def __len__(self):
        return self.count

    def __iter__(self):
        return iter(sorted([self.slot_pid[s] for s in range(self.mask + 1) if self.slot_pid[s] != -1]))

    def isdisjoint(self, pids) -> bool:
        for pid in pids:
            if self.has(pid):
                return False
        return True

    cpdef list members(self, pid):
        """The lines of pool ``pid``, in input order ([] when it is not present)."""
        cdef list out = []
        cdef int e
        cdef Py_ssize_t s
        if not self.has(pid):
            return out
        s = self._slot(PyLong_AsLong(pid))
        e = self.slot_head[s]
        while e != -1:
            out.append(self.entry_line[e])
            e = self.entry_next[e]
        out.reverse()
        return out


def index_request(list lines, tuple fields, tuple memos, miss, tuple no_facts):
    """(times, facts, present) of a request's lines: see cross_twin.index_request."""
    cdef Py_ssize_t n = PyList_GET_SIZE(lines), k, j, f, nf = len(fields), total = 0
    cdef list times = [None] * n
    cdef list per
    cdef list facts = []
    cdef dict memo
    cdef object line, code, got, field
    cdef PyObject* hit
    cdef bytes pids
    cdef const int* ids
    cdef Pools present
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
            if <object>PyList_GET_ITEM(times, k) is not None:
                total += PyBytes_GET_SIZE(<bytes>got[0]) // sizeof(int)
        facts.append(per)
    present = Pools(total)
    for k in range(n):  # line by line (not field by field): each pool's lines in input order
        if <object>PyList_GET_ITEM(times, k) is None:
            continue
        for f in range(nf):
            pids = <bytes>(<tuple>PyList_GET_ITEM(<list>PyList_GET_ITEM(facts, f), k))[0]
            ids = <const int*>PyBytes_AS_STRING(pids)
            for j in range(PyBytes_GET_SIZE(pids) // <Py_ssize_t>sizeof(int)):
                present.add(ids[j], <int>k)
    return times, facts, present


def passed_over(list facts, list times, Pools present, line, Py_ssize_t i, tuple no_facts):
    """Whether line ``i`` is decided by its code alone: see cross_twin.passed_over."""
    cdef tuple got = <tuple>facts[i]
    if got is no_facts or PyTuple_GET_SIZE(<tuple>got[1]):
        return False
    plain = got[2]
    return plain is None or _alone(times, present, line, <tuple>plain, i)


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


def current_lines(list lines, current):
    """The indexes of the current lines: see cross_twin.current_lines."""
    cdef Py_ssize_t n = PyList_GET_SIZE(lines), k
    cdef list out = []
    cdef object line
    cdef PyObject* got
    cdef bint plain = PyAnySet_CheckExact(current)
    if current is None:
        return list(range(n))
    for k in range(n):
        line = <object>PyList_GET_ITEM(lines, k)
        if not PyDict_CheckExact(line):
            if line["feedetl_sn"] in current:
                out.append(k)
            continue
        got = PyDict_GetItemWithError(line, _LINE_ID)
        if got == NULL:
            raise KeyError(_LINE_ID)
        if (PySet_Contains(current, <object>got) == 1) if plain else (<object>got in current):
            out.append(k)
    return out


def decide_current(req, list indexes, tuple no_facts, by_slot, decide_rows):
    """(line index, hits) of the current lines with hits: see cross_twin.decide_current."""
    cdef list lines = req.lines, times = req.times, facts = <list>(<list>req.facts)[0], out = [], hits
    cdef Pools present = req.present
    cdef tuple got, cands, plain_cands
    cdef object plain, tl = None
    cdef Py_ssize_t i, k
    cdef bint alone
    for k in range(PyList_GET_SIZE(indexes)):
        i = PyLong_AsLong(<object>PyList_GET_ITEM(indexes, k))
        got = <tuple>PyList_GET_ITEM(facts, i)
        if got is no_facts:
            hits = req.decisions(<object>PyList_GET_ITEM(lines, i), i)
        else:
            cands = <tuple>PyTuple_GET_ITEM(got, 1)
            plain = <object>PyTuple_GET_ITEM(got, 2)
            alone = plain is None or _alone(times, present, <object>PyList_GET_ITEM(lines, i), <tuple>plain, i)
            if alone and not PyTuple_GET_SIZE(cands):
                continue
            hits = []
            if not alone:
                plain_cands = <tuple>(<tuple>plain)[2]
                tl = _decide_all(req, plain_cands, i, hits, decide_rows, tl)
            tl = _decide_all(req, cands, i, hits, decide_rows, tl)
            if PyList_GET_SIZE(hits) > 1:
                hits.sort(key=by_slot)
        if hits:
            out.append((i, hits))
    return out


cdef object _decide_all(req, tuple cands, Py_ssize_t i, list hits, decide_rows, object tl):
    """CrossRequest._decide of each (rule, points) of ``cands`` on line ``i``; a rule with a kernel shape asks the
    kernel (``decide_rows``) directly, and only what it flags goes back to Python. Returns the timeline, made on
    first use."""
    cdef Py_ssize_t j
    cdef tuple entry
    for j in range(PyTuple_GET_SIZE(cands)):
        entry = <tuple>PyTuple_GET_ITEM(cands, j)
        c = <object>PyTuple_GET_ITEM(entry, 0)
        shape = c.shape
        if shape is None:
            req._decide(c, i, <object>PyTuple_GET_ITEM(entry, 1), hits)
            continue
        if tl is None:
            tl = req.timeline()
        found = decide_rows(tl, shape, <object>PyTuple_GET_ITEM(entry, 1), i)
        if found is not None:
            req.verdicts(c, i, found, hits)
    return tl


cdef bint _alone(list times, Pools present, object line, tuple plain, Py_ssize_t i) except -1:
    """No partner of line ``i``'s plain pairs is in the request, and their window is known: see cross_twin._alone."""
    cdef tuple partners = <tuple>plain[0], needs = <tuple>plain[1]
    cdef Py_ssize_t j
    if <object>PyList_GET_ITEM(times, i) is None:
        return False
    for j in range(PyTuple_GET_SIZE(partners)):
        if present.has(<object>PyTuple_GET_ITEM(partners, j)):
            return False
    for j in range(PyTuple_GET_SIZE(needs)):
        if _get(line, <object>PyTuple_GET_ITEM(needs, j)) is None:
            return False
    return True
