# cython: language_level=3
"""Kernels of the inline screener: the per-request work that is all dictionary reads, small objects and
string joins, where the interpreter's dispatch is most of the cost. Three parts:

- request mapping (connectors/request.py): a 3101 order -> a typed line;
- decisions (engine/inline_decide.py): a family's template over its candidate rows for a line;
- rendering (engine/inline_render.py): a line-level rule's finding on a line and knowledge row.

Twins: inline_twin.py — a plain loop for the mapping, generated Python for decisions (engine/codegen.py)
and rendering (engine/render_source.py). Tests check they agree (tests/test_inline_kernels.py). The
kernels are built with bounds checks and wraparound off: no negative indexes here.
"""
from cpython.dict cimport PyDict_Copy, PyDict_GetItemWithError, PyDict_Next, PyDict_SetItem
from cpython.float cimport PyFloat_CheckExact
from cpython.datetime cimport (PyDate_CheckExact, PyDateTime_CheckExact, PyDateTime_GET_DAY, PyDateTime_GET_MONTH,
                               PyDateTime_GET_YEAR, date_new, datetime_new, import_datetime)
from cpython.long cimport PyLong_AsLong, PyLong_CheckExact
from cpython.object cimport PyObject, PyObject_RichCompare, Py_EQ, Py_GE, Py_GT, Py_LE, Py_LT, Py_NE
from cpython.sequence cimport PySequence_Contains
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_CheckExact, PyUnicode_GET_LENGTH, PyUnicode_READ_CHAR
from libc.math cimport fabs, floor, isfinite, llround, signbit
from libc.string cimport memset, strlen
from cpython.mem cimport PyMem_Free

cdef extern from "Python.h":
    bint Py_UNICODE_ISSPACE(Py_UCS4 ch)
    Py_ssize_t PyUnicode_Tailmatch(object s, object substr, Py_ssize_t start, Py_ssize_t end, int direction) except -1
    const Py_ssize_t PY_SSIZE_T_MAX
    int PyObject_GenericSetDict(object o, object value, void* context) except -1
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* ptype)
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)

import_datetime()


# ---- request mapping ---------------------------------------------------------------------------------------
#
# Where the twin tries each field's picks in precedence order (mostly keys the order does not have), this
# walks the keys a source does have once and keeps, per field, the best-ranked value: the same answer with
# one dictionary probe per present key. ``map_request`` walks a whole request (patients, encounters, their
# diagnoses, orders) in one call; date and date-time text in the usual ISO shapes is read here, the rest by
# the general conversion.

# kinds of a mapped field, as in inline_twin (DATE, DATETIME: PARSED with the type known; LIST: OTHER, a list)
cdef enum:
    K_TEXT = 0
    K_NUMBER = 1
    K_PARSED = 2
    K_OTHER = 3
    K_DATE = 4
    K_DATETIME = 5
    K_LIST = 6
    MAX_FIELDS = 128
    MAX_PICKS = 1024
    MAX_SOURCES = 4
    NO_RANK = 1 << 30
    DATE_MEMO_LIMIT = 50000  # as connectors.request._DATE_MEMO_LIMIT
TEXT, NUMBER, PARSED, OTHER, DATE, DATETIME, LIST = K_TEXT, K_NUMBER, K_PARSED, K_OTHER, K_DATE, K_DATETIME, K_LIST


cdef class Prepared:
    """A spec ready for typed_line: per source, key -> a group of (field, rank) picks, where rank is the key's
    place in the field's picks; the groups as C arrays."""
    cdef readonly tuple spec
    cdef tuple index     # per source: key -> group number
    cdef tuple targets   # field names
    cdef int n, n_sources
    cdef int kinds[MAX_FIELDS]
    cdef int group_start[MAX_PICKS + 1]
    cdef int pick_field[MAX_PICKS]
    cdef int pick_rank[MAX_PICKS]

    def __init__(self, tuple spec, int n_sources):
        if len(spec) > MAX_FIELDS:
            raise ValueError(f"at most {MAX_FIELDS} fields")
        if n_sources > MAX_SOURCES:
            raise ValueError(f"at most {MAX_SOURCES} sources")
        self.spec, self.n, self.n_sources = spec, len(spec), n_sources
        self.targets = tuple(entry[0] for entry in spec)
        groups = [{} for _ in range(n_sources)]
        for f, entry in enumerate(spec):
            self.kinds[f] = entry[1]
            for rank, (source, key) in enumerate(entry[2]):
                groups[source].setdefault(key, []).append((f, rank))
        index, g, p = [], 0, 0
        for d in groups:
            numbers = {}
            for key, picks in d.items():
                if p + len(picks) > MAX_PICKS:
                    raise ValueError(f"at most {MAX_PICKS} picks")
                numbers[key] = g
                self.group_start[g] = p
                for f, rank in picks:
                    self.pick_field[p] = f
                    self.pick_rank[p] = rank
                    p += 1
                g += 1
            index.append(numbers)
        self.group_start[g] = p
        self.index = tuple(index)


def prepare(tuple spec, int n_sources):
    """``spec``: ((target, kind, picks, memo, convert), ...); picks: ((source index, key), ...) in precedence
    order over ``n_sources`` source dicts."""
    return Prepared(spec, n_sources)


cdef inline bint _space(Py_UCS4 ch):
    return Py_UNICODE_ISSPACE(ch)


cdef inline object _text(object v, object convert):
    cdef Py_ssize_t n
    if PyUnicode_CheckExact(v):
        n = PyUnicode_GET_LENGTH(v)
        if n and not _space(PyUnicode_READ_CHAR(v, 0)) and not _space(PyUnicode_READ_CHAR(v, n - 1)):
            return v  # what strip() gives back: the same text
        v = v.strip()
        return v if v else None
    return convert(v)


cdef inline int _digits(object s, Py_ssize_t at, Py_ssize_t n):
    """The decimal number of s[at:at+n] (ASCII digits only), or -1."""
    cdef int out = 0, ch
    cdef Py_ssize_t i
    for i in range(at, at + n):
        ch = _char(s, i)
        if ch < 48 or ch > 57:
            return -1
        out = out * 10 + (ch - 48)
    return out


cdef inline int _char(object s, Py_ssize_t i):
    return <int>PyUnicode_READ_CHAR(s, i)


cdef object _iso(object s, bint with_time):
    """Date text YYYY-MM-DD, and for a date-time also YYYY-MM-DD[ T]hh:mm[:ss], as claims._date / _datetime read
    it; None for any other text (or a value out of range): the general conversion then decides."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    cdef int y, m, d, hh = 0, mi = 0, ss = 0, sep
    if not (n == 10 or (with_time and (n == 16 or n == 19))):
        return None
    if _char(s, 4) != 45 or _char(s, 7) != 45:  # '-'
        return None
    y = _digits(s, 0, 4)
    m = _digits(s, 5, 2)
    d = _digits(s, 8, 2)
    if y < 1 or m < 1 or m > 12 or d < 1 or d > 31:
        return None
    if n > 10:
        sep = _char(s, 10)
        if (sep != 32 and sep != 84) or _char(s, 13) != 58:  # ' ' or 'T', ':'
            return None
        hh = _digits(s, 11, 2)
        mi = _digits(s, 14, 2)
        if n == 19:
            if _char(s, 16) != 58:
                return None
            ss = _digits(s, 17, 2)
        if hh < 0 or hh > 23 or mi < 0 or mi > 59 or ss < 0 or ss > 59:
            return None
    if d > _month_days(y, m):
        return None
    if with_time:
        return datetime_new(y, m, d, hh, mi, ss, 0, None)
    return date_new(y, m, d)


cdef inline int _month_days(int y, int m):
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m == 4 or m == 6 or m == 9 or m == 11 else 31


def iso(s, bint with_time):
    """The compiled reading of ISO date / date-time text (tests compare it with claims._date / _datetime)."""
    return _iso(s, with_time) if PyUnicode_CheckExact(s) else None


cdef object _parsed(int kind, object v, tuple entry):
    """A date or date-time: the memo, then the text read here (and remembered), then the general conversion."""
    cdef PyObject* hit
    cdef dict memo
    if not PyUnicode_CheckExact(v):
        return entry[4](v)
    memo = <dict>entry[3]
    hit = PyDict_GetItemWithError(memo, v)
    if hit != NULL:
        return <object>hit
    if kind != K_PARSED:
        got = _iso(v, kind == K_DATETIME)
        if got is not None:
            if len(memo) >= DATE_MEMO_LIMIT:
                memo.clear()
            memo[v] = got
            return got
    return entry[4](v)


cdef object _listed(object v, object convert):
    """claims._list of a list of clean texts (each a str, not blank, no surrounding space): their tuple."""
    cdef Py_ssize_t n
    if type(v) is list:
        for x in <list>v:
            if not PyUnicode_CheckExact(x):
                return convert(v)
            n = PyUnicode_GET_LENGTH(x)
            if not n or _space(PyUnicode_READ_CHAR(x, 0)) or _space(PyUnicode_READ_CHAR(x, n - 1)):
                return convert(v)
        return tuple(<list>v)
    return convert(v)


cdef inline object _typed(int kind, object v, tuple entry):
    if kind == K_TEXT:
        return _text(v, entry[4])
    if kind == K_NUMBER:
        if PyFloat_CheckExact(v):
            return v
        if PyLong_CheckExact(v):
            return float(v)
    elif kind == K_PARSED or kind == K_DATE or kind == K_DATETIME:
        return _parsed(kind, v, entry)
    elif kind == K_LIST:
        return _listed(v, entry[4])
    return entry[4](v)


cdef enum:
    KEY_SLOTS = 128  # a request's distinct order keys, remembered by identity (see KeyCache)


cdef struct KeyCache:
    # The orders of one request (a JSON document, a pickled one, literals) share their key objects: each key's
    # group is looked up once per request, then found by address. Addresses are only compared while the
    # request, which holds the keys, is alive: the cache lives for one map_request call.
    PyObject* keys[KEY_SLOTS]
    int groups[KEY_SLOTS]
    int used


cdef inline int _group(dict index, PyObject* key, KeyCache* cache) except -2:
    """The key's group in ``index`` (-1: none), by the cache when there is one."""
    cdef size_t h
    cdef PyObject* got
    if cache != NULL:
        h = (<size_t>key >> 4) % KEY_SLOTS
        while cache.keys[h] != NULL:
            if cache.keys[h] == key:
                return cache.groups[h]
            h = (h + 1) % KEY_SLOTS
    got = PyDict_GetItemWithError(index, <object>key)
    cdef int g = -1 if got == NULL else PyLong_AsLong(<object>got)
    if cache != NULL and cache.used < KEY_SLOTS // 2:
        cache.keys[h] = key
        cache.groups[h] = g
        cache.used += 1
    return g


cdef dict _typed_line(PyObject** sources, int n_sources, dict base, Prepared prepared, KeyCache* cache):
    """``typed_line`` over C pointers; ``cache`` (or NULL) remembers the first source's keys."""
    cdef int rank[MAX_FIELDS]
    cdef PyObject* value[MAX_FIELDS]
    cdef int f, n = prepared.n, r, g, p
    cdef Py_ssize_t pos
    cdef int s
    cdef PyObject* key
    cdef PyObject* v
    cdef dict index
    for f in range(n):
        rank[f] = NO_RANK
    for s in range(n_sources):
        index = <dict>PyTuple_GET_ITEM(prepared.index, s)
        pos = 0
        while PyDict_Next(<object>sources[s], &pos, &key, &v):
            if <object>v is None:
                continue
            g = _group(index, key, cache if s == 0 else NULL)
            if g < 0:
                continue
            for p in range(prepared.group_start[g], prepared.group_start[g + 1]):
                f = prepared.pick_field[p]
                r = prepared.pick_rank[p]
                if r < rank[f]:
                    rank[f] = r
                    value[f] = v
    cdef dict line = PyDict_Copy(base)
    cdef tuple spec = prepared.spec
    for f in range(n):
        if rank[f] != NO_RANK:
            PyDict_SetItem(line, <object>PyTuple_GET_ITEM(prepared.targets, f),
                           _typed(prepared.kinds[f], <object>value[f], <tuple>PyTuple_GET_ITEM(spec, f)))
    return line


def typed_line(tuple sources, dict base, Prepared prepared):
    """A copy of ``base`` with each spec field (target, kind, picks, memo, convert) set from its first pick
    that is not None, typed as ``coerce_fields`` types it (``convert`` is the general conversion: it raises on
    a value that cannot be read; ``memo`` holds parsed date texts)."""
    cdef PyObject* src[MAX_SOURCES]
    cdef int s
    if len(sources) != prepared.n_sources:
        raise ValueError(f"{prepared.n_sources} sources expected")
    for s in range(prepared.n_sources):
        if type(sources[s]) is not dict:
            raise TypeError("a source must be a dict")
        src[s] = PyTuple_GET_ITEM(sources, s)
    return _typed_line(src, prepared.n_sources, base, prepared, NULL)


cdef inline bint _is_current(dict order):
    cdef PyObject* got = PyDict_GetItemWithError(order, "curr_drord_flag")
    if got == NULL or <object>got is None:
        return True
    flag = <object>got
    if PyUnicode_CheckExact(flag) and PyUnicode_GET_LENGTH(flag) == 1:  # "1" or "0", as the interface sends it
        if PyUnicode_READ_CHAR(flag, 0) == 49:
            return True
        if PyUnicode_READ_CHAR(flag, 0) == 48:
            return False
    return str(flag).strip() in ("", "1")


cdef bint _order_lines(list orders, dict extra, dict base, Prepared prepared, list lines, set current,
                       KeyCache* cache) except -1:
    cdef PyObject* src[2]
    cdef dict line
    cdef PyObject* got
    if prepared.n_sources != 2:
        raise ValueError("an order spec has two sources: the order, its encounter's values")
    src[1] = <PyObject*>extra
    for order in orders:
        if type(order) is not dict:
            return False
        src[0] = <PyObject*>order
        line = _typed_line(src, 2, base, prepared, cache)
        got = PyDict_GetItemWithError(line, "feedetl_sn")
        if got == NULL or <object>got is None:
            return False
        line_id = <object>got
        got = PyDict_GetItemWithError(line, "med_list_codg")
        if got == NULL or <object>got is None:
            return False
        lines.append(line)
        if _is_current(<dict>order):
            current.add(line_id)
    return True


def order_lines(list orders, tuple extra, dict base, Prepared prepared, list lines, set current):
    """Each order (a dict) -> ``typed_line((order,) + extra, base, prepared)`` appended to ``lines``, its id to
    ``current`` when it is a current order (curr_drord_flag 1, blank or absent). False when an order is not
    a dict or its line has no id or national code: the general mapping then reports it."""
    if len(extra) != 1 or type(extra[0]) is not dict:
        raise ValueError("one extra source (a dict) expected")
    cdef KeyCache cache
    memset(&cache, 0, sizeof(KeyCache))
    return _order_lines(orders, <dict>extra[0], base, prepared, lines, current, &cache)


cdef object _encounter_diagnoses(dict enc):
    """{"codes", "main"} of an encounter's diagnoses as request_lines reads them (None when absent); None when
    they are irregular."""
    codes, main = None, None
    diags = enc.get("fsi_diagnose_dtos")
    if diags is not None:
        if type(diags) is not list:
            return None
        codes = []
        for d in <list>diags:
            if type(d) is not dict:
                return None
            code = (<dict>d).get("dise_codg")
            if code:
                code = str(code).strip()
                codes.append(code)
                if main is None and str((<dict>d).get("maindise_flag")) == "1":
                    main = code
    return {"codes": codes or None, "main": main}


cdef object _first_of(dict first, dict second, tuple picks):
    cdef PyObject* got
    for index, key in picks:
        got = PyDict_GetItemWithError(first if index == 0 else second, key)
        if got != NULL and <object>got is not None:
            return <object>got
    return None


cdef bint _all_dicts(object items):
    if type(items) is not list:
        return False
    for item in <list>items:
        if type(item) is not dict:
            return False
    return True


def map_request(dict doc, Prepared encounter_spec, Prepared order_spec, dict empty, tuple begntime_picks):
    """A 3101 request -> (typed lines, ids of the current orders), or None when it is irregular (the general
    mapping then reports it): every patient's encounters, each typed once from itself, its patient and its
    diagnoses (``encounter_spec``, 3 sources), then its orders (``order_spec``: the order, and the encounter's
    raw begntime as picked by ``begntime_picks``)."""
    cdef PyObject* src[3]
    cdef list lines = []
    cdef set current = set()
    cdef KeyCache cache
    memset(&cache, 0, sizeof(KeyCache))
    if encounter_spec.n_sources != 3:
        raise ValueError("an encounter spec has three sources: the encounter, its patient, its diagnoses")
    patients = doc.get("patient_dtos")
    if not _all_dicts(patients):
        return None
    for patient in <list>patients:
        encounters = (<dict>patient).get("fsi_encounter_dtos")
        if not _all_dicts(encounters):
            return None
        for enc in <list>encounters:
            extra = _encounter_diagnoses(<dict>enc)
            if extra is None:
                return None
            src[0], src[1], src[2] = <PyObject*>enc, <PyObject*>patient, <PyObject*>extra
            base = _typed_line(src, 3, empty, encounter_spec, NULL)
            orders = (<dict>enc).get("fsi_order_dtos")
            if type(orders) is not list:
                return None
            begntime = {"begntime": _first_of(<dict>enc, <dict>patient, begntime_picks)}
            if not _order_lines(<list>orders, begntime, base, order_spec, lines, current, &cache):
                return None
    return lines, current


# ---- decisions: a family's template as a tree of typed nodes ----------------------------------------------
#
# The twin generates Python source for a family (engine/codegen.py); here the same template becomes a tree
# of extension-type nodes evaluated by C calls. Semantics are the generated code's, node for node: unknown
# values propagate, and/or are Kleene with the second side evaluated only when the first does not decide,
# comparisons of one type compare directly and quantities by base value in one dimension, everything else
# goes to the reference's own functions. Decisions never read an unknown's reason, so unlike quantities
# give one shared Unknown.

cdef object Unknown = None, Quantity = None, UNITS_DIFFER = None, NO_DIAGNOSIS = None
cdef object _compare = None, _arith = None, derived_value = None, has_diag = None
cdef object call_generic = None, service_date = None, DERIVED_FIELDS = None, MEMO_INPUTS = None, MEMOS = None
cdef object DIAGNOSES_MEMO = None, reference_diagnoses = None, MEMO_LIMIT = None
cdef object units_differ = None, _object_new = object.__new__
cdef tuple DERIVED_NAMES = ()  # a derived value's place in Ctx.derived
cdef str INSUFFICIENT = "insufficient_data", VIOLATION = "violation"
_OPS = {"<": Py_LT, "<=": Py_LE, "==": Py_EQ, "!=": Py_NE, ">": Py_GT, ">=": Py_GE}


def _bind():
    """The engine's values and the reference's functions (imported on first use: engine modules import
    the kernels)."""
    global Unknown, Quantity, UNITS_DIFFER, NO_DIAGNOSIS, _compare, _arith, derived_value, has_diag
    global call_generic, service_date, DERIVED_FIELDS, MEMO_INPUTS, MEMOS, DERIVED_NAMES
    global DIAGNOSES_MEMO, reference_diagnoses, MEMO_LIMIT, units_differ
    from claimaudit.dsl.schema import DERIVED_FIELDS as fields
    from claimaudit.dsl.units import Quantity as quantity
    from claimaudit.engine import codegen, reference, values
    Unknown, Quantity, UNITS_DIFFER = values.Unknown, quantity, codegen.UNITS_DIFFER
    NO_DIAGNOSIS = reference.NO_DIAGNOSIS
    _compare, _arith, derived_value = reference._compare, reference._arith, codegen.derived_value
    has_diag, call_generic, service_date = codegen.has_diag, codegen.call_generic, values.service_date
    DERIVED_FIELDS, MEMO_INPUTS, MEMOS = fields, codegen._MEMO_INPUTS, codegen._memos
    DIAGNOSES_MEMO, reference_diagnoses, MEMO_LIMIT = codegen._diagnoses_memo, reference.diagnoses, codegen._MEMO_LIMIT
    DERIVED_NAMES = tuple(fields)
    units_differ = codegen.units_differ
    _bind_rendering()


cdef inline bint unknown(object v):
    return type(v) is Unknown


cdef class Ctx:
    """One line: the line, its caches (derived values by DERIVED_NAMES, diagnoses), the row being evaluated."""
    cdef dict line
    cdef dict lv
    cdef tuple row
    cdef list derived
    cdef object diag
    cdef object krow  # the knowledge row a rendered finding cites (dict or None)


cdef Ctx _context(dict line, dict lv):
    cdef Ctx c = Ctx.__new__(Ctx)
    c.line, c.lv, c.derived, c.diag, c.krow = line, lv, [None] * len(DERIVED_NAMES), None, None
    return c


cdef object _diagnoses(Ctx c):
    """codegen.diagnoses: the line's cache, then the memo by (main code, list), then the reference."""
    if c.diag is not None:
        return c.diag
    global LAST_MAIN, LAST_LIST, LAST_CODES
    codes = c.lv.get("@diagnoses")
    if codes is None:
        main, listed = c.line.get("dscg_maindiag_code"), c.line.get("diag_codes")
        # the lines of an encounter share their main code and list (the very objects): the last pair's codes
        # are kept with the pair (immutable values held here, so the same objects mean the same codes)
        if main is LAST_MAIN and listed is LAST_LIST and LAST_CODES is not None:
            c.lv["@diagnoses"] = c.diag = LAST_CODES
            return LAST_CODES
        key = (main, listed)
        try:
            codes = (<dict>DIAGNOSES_MEMO).get(key)
        except TypeError:  # a list of codes (a caller's own line): no memo
            codes = reference_diagnoses(c.line)
        else:
            if codes is None:
                if len(DIAGNOSES_MEMO) >= MEMO_LIMIT:
                    (<dict>DIAGNOSES_MEMO).clear()
                codes = DIAGNOSES_MEMO[key] = reference_diagnoses(c.line)
            if (main is None or PyUnicode_CheckExact(main)) and (listed is None or _text_tuple(listed)):
                LAST_MAIN, LAST_LIST, LAST_CODES = main, listed, codes
        c.lv["@diagnoses"] = codes
    c.diag = codes
    return codes


cdef object LAST_MAIN = None, LAST_LIST = None, LAST_CODES = None


cdef bint _text_tuple(object v):
    return type(v) is tuple and _all_text(<tuple>v)


cdef class Node:
    cdef object eval(self, Ctx c):
        raise NotImplementedError


cdef class Const(Node):
    cdef object value

    def __init__(self, value):
        self.value = value

    cdef object eval(self, Ctx c):
        return self.value


cdef class Field(Node):
    cdef object name, missing

    def __init__(self, name):
        self.name, self.missing = name, Unknown(f"{name} is missing")

    cdef object eval(self, Ctx c):
        cdef PyObject* got = PyDict_GetItemWithError(c.line, self.name)
        if got == NULL or <object>got is None:
            return self.missing
        return <object>got


cdef class Derived(Node):
    """A derived value, once per line: the line's cache, the line itself, the memo, then derived_value
    (daily_cnt of two floats is computed here: derive divides them; so are age_years and age_days of a dated
    line and a birth date before it, see _age)."""
    cdef object name, memo, first, second
    cdef Py_ssize_t slot
    cdef bint per_day, dose
    cdef int age

    def __init__(self, name):
        self.name, self.slot, self.per_day = name, DERIVED_NAMES.index(name), name == "daily_cnt"
        self.dose = name == "daily_dose"
        self.age = 1 if name == "age_years" else (2 if name == "age_days" else 0)
        inputs = MEMO_INPUTS.get(name)
        self.memo = MEMOS[name] if inputs is not None else None
        self.first = inputs[0] if inputs is not None else None
        self.second = inputs[1] if inputs is not None and len(inputs) == 2 else None

    cdef object eval(self, Ctx c):
        v = c.derived[self.slot]
        if v is not None:
            return v
        v = c.lv.get(self.name)
        if v is None:
            v = c.lv[self.name] = self._derive(c.line) if c.line.get(self.name) is None else \
                derived_value(self.name, c.line)  # (a line that carries the value itself: the reference reads it)
        c.derived[self.slot] = v
        return v

    cdef object _derive(self, dict line):
        """The value of a line that does not carry it: computed here for the common inputs, else remembered by
        its inputs (memo), else derived_value."""
        v = None
        if self.per_day:
            cnt, days = line.get("cnt"), line.get("prd_days")
            if PyFloat_CheckExact(cnt) and PyFloat_CheckExact(days) and <double>days > 0:
                return <double>cnt / <double>days
        elif self.age:
            v = _age(line, self.age)
            if v is not None:
                return v
        if self.memo is not None:
            key = line.get(self.first) if self.second is None else (line.get(self.first), line.get(self.second))
            try:
                v = (<dict>self.memo).get(key)
            except TypeError:
                pass
            if v is None and self.dose:
                v = _daily_dose(line)
                if v is not None:
                    _remember(<dict>self.memo, key, v)
        return derived_value(self.name, line) if v is None else v


cdef object _daily_dose(dict line):
    """values.derive of daily_dose from the single dose and the frequency remembered by their own texts
    (codegen._daily_dose): when both are remembered, and are a quantity and a float (or either is unknown);
    else None (the general path derives it)."""
    text, every = line.get("sin_dos_dscr"), line.get("used_frqu_dscr")
    if not (PyUnicode_CheckExact(text) and PyUnicode_CheckExact(every)):
        return None
    dose = (<dict>MEMOS["single_dose"]).get(text)
    freq = (<dict>MEMOS["daily_frequency"]).get(every)
    if dose is None or freq is None:
        return None
    if unknown(dose):
        return dose
    if unknown(freq):
        return freq
    if type(dose) is not Quantity or not PyFloat_CheckExact(freq):
        return None
    base = dose.base_value
    if not PyFloat_CheckExact(base):
        return None
    cdef double y = <double>base * <double>freq * 1e9 + 0.5  # units.quantize, as the same float operations
    if not isfinite(y):
        return None
    return _quantity(floor(y) / 1e9, dose.dimension)


cdef _remember(dict memo, key, value):
    """Into a derived-value memo (codegen.derived_value's rule: text keys only, bounded)."""
    if type(key) is tuple and all(k is None or PyUnicode_CheckExact(k) for k in <tuple>key):
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[key] = value


def daily_dose(dict line):
    """The compiled daily_dose from remembered parts, or None (tests compare it with values.derive)."""
    if Unknown is None:
        _bind()
    return _daily_dose(line)


cdef object _age(dict line, int which):
    """values.derive of age_years (which 1) or age_days (2) when the date of service (fee_ocur_time, a datetime
    or date) and the birth date (a date) are plain and the birth is not after the service; else None (the
    general path says why it is unknown)."""
    cdef int ty, tm, td, by, bm, bd
    t = line.get("fee_ocur_time")
    b = line.get("brdy")
    if not PyDate_CheckExact(b):
        return None
    if not (PyDateTime_CheckExact(t) or PyDate_CheckExact(t)):
        return None
    ty = PyDateTime_GET_YEAR(t)
    tm = PyDateTime_GET_MONTH(t)
    td = PyDateTime_GET_DAY(t)
    by = PyDateTime_GET_YEAR(b)
    bm = PyDateTime_GET_MONTH(b)
    bd = PyDateTime_GET_DAY(b)
    if by > ty or (by == ty and (bm > tm or (bm == tm and bd > td))):
        return None
    if which == 1:
        return ty - by - (1 if (tm < bm or (tm == bm and td < bd)) else 0)
    return _ordinal(ty, tm, td) - _ordinal(by, bm, bd)


cdef long _ordinal(int y, int m, int d):
    """date(y, m, d).toordinal()."""
    cdef long p = y - 1
    cdef long out = p * 365 + p // 4 - p // 100 + p // 400 + d
    cdef int k
    for k in range(1, m):
        out += _month_days(y, k)
    return out


def age(dict line, int which):
    """The compiled age_years (1) / age_days (2), or None where the general path decides (tests compare)."""
    if Unknown is None:
        _bind()
    return _age(line, which)


cdef class KnowledgeField(Node):
    """A column of the knowledge row a finding cites (rendering only; decisions read parameters)."""
    cdef object column, missing

    def __init__(self, column):
        self.column, self.missing = column, Unknown(f"knowledge column {column} is empty")

    cdef object eval(self, Ctx c):
        v = (<dict>c.krow).get(self.column) if c.krow is not None else None
        return self.missing if v is None else v


cdef class Param(Node):
    cdef Py_ssize_t slot

    def __init__(self, Py_ssize_t slot):
        self.slot = slot

    cdef object eval(self, Ctx c):
        return <object>PyTuple_GET_ITEM(c.row, self.slot)


cdef class Not(Node):
    cdef Node a

    def __init__(self, Node a):
        self.a = a

    cdef object eval(self, Ctx c):
        x = self.a.eval(c)
        return x if unknown(x) else (not x)


cdef class IsNull(Node):
    cdef Node a
    cdef bint want

    def __init__(self, Node a, bint want):
        self.a, self.want = a, want

    cdef object eval(self, Ctx c):
        x = self.a.eval(c)
        return (unknown(x) or x is None) == self.want


cdef class Neg(Node):
    cdef Node a

    def __init__(self, Node a):
        self.a = a

    cdef object eval(self, Ctx c):
        x = self.a.eval(c)
        if unknown(x):
            return x
        if isinstance(x, Quantity):
            return Quantity(-x.base_value, x.dimension)
        return -x


cdef class Logic(Node):
    """Kleene and (decides on False) / or (decides on True)."""
    cdef Node a, b
    cdef object decides, other

    def __init__(self, Node a, Node b, bint is_and):
        self.a, self.b = a, b
        # (not a tuple of literals: Cython would type it as a C tuple, whose conversion back may give ints)
        self.decides = False if is_and else True
        self.other = True if is_and else False

    cdef object eval(self, Ctx c):
        x = self.a.eval(c)
        if x is self.decides:
            return self.decides
        y = self.b.eval(c)
        if y is self.decides:
            return self.decides
        if x is self.other and y is self.other:
            return self.other
        return x if unknown(x) else y


cdef class Compare(Node):
    cdef Node a, b
    cdef int op
    cdef object name
    cdef bint reasons

    def __init__(self, Node a, Node b, name, bint reasons):
        self.a, self.b, self.name, self.op, self.reasons = a, b, name, _OPS[name], reasons

    cdef object eval(self, Ctx c):
        x = self.a.eval(c)
        if unknown(x):
            return x
        y = self.b.eval(c)
        if unknown(y):
            return y
        if type(x) is type(y) and type(x) is not Quantity:
            return PyObject_RichCompare(x, y, self.op)
        if _number(x) and _number(y):  # an int and a float: _compare compares them as they are
            return PyObject_RichCompare(x, y, self.op)
        if type(x) is Quantity and type(y) is Quantity:
            if x.dimension == y.dimension:
                return PyObject_RichCompare(x.base_value, y.base_value, self.op)
            return units_differ(x, y) if self.reasons else UNITS_DIFFER
        return _compare(self.name, x, y)


cdef class Arith(Node):
    cdef Node a, b
    cdef object name
    cdef int op  # 0 + 1 - 2 * 3 /

    def __init__(self, Node a, Node b, name):
        self.a, self.b, self.name, self.op = a, b, name, "+-*/".index(name)

    cdef object eval(self, Ctx c):
        cdef double p, q
        x = self.a.eval(c)
        if unknown(x):
            return x
        y = self.b.eval(c)
        if unknown(y):
            return y
        if PyFloat_CheckExact(x) and PyFloat_CheckExact(y):
            p, q = x, y
            if self.op == 0:
                return p + q
            if self.op == 1:
                return p - q
            if self.op == 2:
                return p * q
            if q != 0:
                return p / q
        elif type(x) is Quantity or type(y) is Quantity:
            return self._quantities(x, y)
        return _arith(self.name, x, y)

    cdef object _quantities(self, x, y):
        """The reference's unit arithmetic for one dimension or a quantity scaled by a number (the rest,
        and the unknowns it makes, by ``_arith`` itself)."""
        if type(x) is Quantity and type(y) is Quantity:
            if x.dimension == y.dimension:
                if self.op == 0:
                    return _quantity(x.base_value + y.base_value, x.dimension)
                if self.op == 1:
                    return _quantity(x.base_value - y.base_value, x.dimension)
                if self.op == 3 and y.base_value != 0:
                    return x.base_value / y.base_value
        elif self.op == 2 and type(x) is Quantity and _number(y):
            return _quantity(x.base_value * y, x.dimension)
        elif self.op == 2 and type(y) is Quantity and _number(x):
            return _quantity(y.base_value * x, y.dimension)
        elif self.op == 3 and type(x) is Quantity and _number(y) and y != 0:
            return _quantity(x.base_value / y, x.dimension)
        return _arith(self.name, x, y)


cdef inline bint _number(object v):
    return PyFloat_CheckExact(v) or PyLong_CheckExact(v)


cdef object _quantity(object base_value, object dimension):
    """Quantity(base_value, dimension) without the frozen-dataclass __init__ (codegen.new_quantity)."""
    q = _object_new(Quantity)
    d = q.__dict__
    d["base_value"] = base_value
    d["dimension"] = dimension
    return q


cdef class Member(Node):
    cdef Node a, b
    cdef bint negate

    def __init__(self, Node a, Node b, bint negate):
        self.a, self.b, self.negate = a, b, negate

    cdef object eval(self, Ctx c):
        x = self.a.eval(c)
        if unknown(x):
            return x
        y = self.b.eval(c)
        if unknown(y):
            return y
        return PySequence_Contains(y, x) != self.negate


cdef bint _starts(object text, tuple prefixes) except -1:
    cdef Py_ssize_t i
    for i in range(PyTuple_GET_SIZE(prefixes)):
        if PyUnicode_Tailmatch(text, <object>PyTuple_GET_ITEM(prefixes, i), 0, PY_SSIZE_T_MAX, -1):
            return True
    return False


cdef bint _all_text(tuple items):
    cdef Py_ssize_t i
    for i in range(PyTuple_GET_SIZE(items)):
        if not PyUnicode_CheckExact(<object>PyTuple_GET_ITEM(items, i)):
            return False
    return True


cdef class StartsWith(Node):
    cdef Node a, b

    def __init__(self, Node a, Node b):
        self.a, self.b = a, b

    cdef object eval(self, Ctx c):
        x = self.a.eval(c)
        if unknown(x):
            return x
        y = self.b.eval(c)
        if unknown(y):
            return y
        prefixes = y if isinstance(y, tuple) else (y,)
        if PyUnicode_CheckExact(x) and type(prefixes) is tuple and _all_text(prefixes):
            return _starts(x, prefixes)
        return str(x).startswith(prefixes)


cdef class Coalesce(Node):
    cdef Node a, b

    def __init__(self, Node a, Node b):
        self.a, self.b = a, b

    cdef object eval(self, Ctx c):
        v = self.a.eval(c)
        if unknown(v) or v is None:
            return self.b.eval(c)
        return v


cdef class HasDiag(Node):
    """has_diag(prefixes); ``upper``: the prefixes are a parameter upper-cased at load."""
    cdef Node a
    cdef bint upper

    def __init__(self, Node a, bint upper):
        self.a, self.upper = a, upper

    cdef object eval(self, Ctx c):
        p = self.a.eval(c)
        if unknown(p):
            return p
        codes = _diagnoses(c)
        if not self.upper or type(codes) is not tuple or type(p) is not tuple or not _all_text(p):
            return has_diag(codes, p)
        if not codes:
            return NO_DIAGNOSIS
        for code in <tuple>codes:
            if PyUnicode_CheckExact(code) and _starts(code, <tuple>p):
                return True
            if not PyUnicode_CheckExact(code):
                return has_diag(codes, p)
        return False


cdef class Call(Node):
    cdef tuple args
    cdef object func, types

    def __init__(self, func, tuple args, types):
        self.func, self.args, self.types = func, args, types

    cdef object eval(self, Ctx c):
        values = []
        for a in self.args:
            v = (<Node>a).eval(c)
            if unknown(v):
                return v
            values.append(v)
        return call_generic(self.func, values, self.types, c.line)


def _node(expr, dict slots, dict constants, frozenset upper, bint reasons):
    """IR -> node."""
    from claimaudit.dsl import ir

    def go(e):
        if isinstance(e, ir.Const):
            return Const(e.value)
        if isinstance(e, ir.Field):
            if e.name in DERIVED_FIELDS:
                return Derived(e.name)
            return Field(e.name)
        if isinstance(e, ir.Param):
            return Const(constants[e.name]) if e.name in constants else Param(slots[e.name])
        if isinstance(e, ir.KnowledgeField):
            return KnowledgeField(e.column)
        if isinstance(e, ir.Call):
            if e.func == "coalesce":
                return Coalesce(go(e.args[0]), go(e.args[1]))
            if e.func == "has_diag":
                arg = e.args[0]
                return HasDiag(go(arg), isinstance(arg, ir.Param) and arg.name in upper)
            return Call(e.func, tuple(go(a) for a in e.args), tuple(a.type for a in e.args))
        if not isinstance(e, ir.Op):
            raise TypeError(f"cannot compile {type(e).__name__} for the inline screener")
        op = e.op
        if op in ("and", "or"):
            return Logic(go(e.args[0]), go(e.args[1]), op == "and")
        if op == "not":
            return Not(go(e.args[0]))
        if op in ("is_null", "not_null"):
            return IsNull(go(e.args[0]), op == "is_null")
        if op == "neg":
            return Neg(go(e.args[0]))
        a, b = go(e.args[0]), go(e.args[1])
        if op in _OPS:
            return Compare(a, b, op, reasons)
        if op in ("in", "not in"):
            return Member(a, b, op == "not in")
        if op == "startswith":
            return StartsWith(a, b)
        return Arith(a, b, op)
    return go(expr)


cdef class Family:
    """A family's scope and condition over its candidate rows (rule index, point[, from, to], *params)."""
    cdef Node scope, condition
    cdef bint dated
    cdef readonly object label

    def __init__(self, scope, Node condition, bint dated, label):
        self.scope, self.condition, self.dated, self.label = scope, condition, dated, label

    def __call__(self, dict line, dict lv, rows, list hits):
        self.run(_context(line, lv), rows, hits)

    cdef run(self, Ctx c, rows, list hits):
        cdef tuple row
        cdef dict line = c.line
        sday = None
        day = None
        for row in rows:
            c.row = row
            if self.dated:
                day = None
                ef, et = row[2], row[3]
                if ef is not None or et is not None:
                    if sday is None:
                        sday = service_date(line)
                    day = sday
                    if not unknown(day) and ((ef is not None and day < ef) or (et is not None and day > et)):
                        continue
            if self.scope is not None:
                s = self.scope.eval(c)
                if unknown(s):
                    hits.append((row[0], row[1], INSUFFICIENT))
                    continue
                if not s:
                    continue
            cond = self.condition.eval(c)
            if unknown(cond):
                hits.append((row[0], row[1], INSUFFICIENT))
            elif self.dated and unknown(day):
                if cond:
                    hits.append((row[0], row[1], INSUFFICIENT))
            elif cond:
                hits.append((row[0], row[1], VIOLATION))


def compile_family(scope, condition, dict slots, dict constants, frozenset upper, bint dated, label):
    """A family's decision function ``f(line, lv, rows, hits)``: appends (rule index, point, outcome) for
    each row that is violated or cannot be judged. ``slots``: Param name -> index in a row; ``constants``:
    Param name -> the value every row shares; ``upper``: Params holding has_diag prefixes upper-cased;
    ``dated``: rows carry (effective from, to) at 2 and 3."""
    if Unknown is None:
        _bind()
    s = _node(scope, slots, constants, upper, False) if scope is not None else None
    return Family(s, _node(condition, slots, constants, upper, False), dated, label)


def decide_line(dict line, dict lv, dict exact, dict prefix, tuple lengths, list hits):
    """Run the families the line's code finds: ``exact`` by the whole code, ``prefix`` by its first n
    characters for each n in ``lengths`` (ascending); each maps to ((family, rows), ...)."""
    _decide_line(line, lv, exact, prefix, lengths, hits)


cdef _decide_line(dict line, dict lv, dict exact, dict prefix, tuple lengths, list hits):
    cdef PyObject* got
    cdef Py_ssize_t n, size
    cdef Ctx c = None
    code = line.get("med_list_codg")
    if code is None:
        return
    if exact:
        got = PyDict_GetItemWithError(exact, code)
        if got != NULL:
            c = _context(line, lv)
            _run(<tuple>got, c, hits)
    size = len(code)
    for n in lengths:
        if n > size:
            break
        got = PyDict_GetItemWithError(prefix, code[:n])
        if got != NULL:
            if c is None:
                c = _context(line, lv)
            _run(<tuple>got, c, hits)


cdef inline _run(tuple found, Ctx c, list hits):
    for pair in found:
        f = (<tuple>pair)[0]
        if type(f) is Family:
            (<Family>f).run(c, (<tuple>pair)[1], hits)
        else:
            f(c.line, c.lv, (<tuple>pair)[1], hits)


def decide_lines(list lines, object current, dict exact, dict prefix, tuple lengths):
    """{index: (lv, hits)} of the lines whose code trips a family (only lines whose feedetl_sn is in
    ``current``, unless it is None); ``lv`` holds the line's derived values for rendering."""
    cdef dict out = {}, lv
    cdef list hits
    cdef Py_ssize_t i
    for i in range(len(lines)):
        line = <dict>lines[i]
        if current is not None and line.get("feedetl_sn") not in current:
            continue
        lv, hits = {}, []
        _decide_line(line, lv, exact, prefix, lengths, hits)
        if hits:
            out[i] = (lv, hits)
    return out


# ---- rendering: a line-level rule's finding from its compiled parts -----------------------------------------
#
# Twin: inline_render.SourceProgram (generated Python). The rule's own expressions (not the family template)
# are evaluated, with unknown reasons, as the reference does; values are shown as format_value shows them.

cdef object sha1 = None, Finding = None, round_money = None, format_fast = None, format_value = None
cdef object ROLE_VIOLATING = None, QUANTITY_TEXT = None, SEVERITY_DEGREE = None, ROLE_VIOLATING_TEXT = None
cdef str NOT_COMPUTED = "not computed: insufficient data"


def _bind_rendering():
    global sha1, Finding, round_money, format_fast, format_value, ROLE_VIOLATING, QUANTITY_TEXT
    global SEVERITY_DEGREE, ROLE_VIOLATING_TEXT
    import hashlib
    from claimaudit.engine import findings, inline_render, values
    sha1, Finding, ROLE_VIOLATING = hashlib.sha1, findings.Finding, findings.ROLE_VIOLATING
    SEVERITY_DEGREE, ROLE_VIOLATING_TEXT = findings.SEVERITY_DEGREE, str(findings.ROLE_VIOLATING)
    round_money, format_fast, format_value = values.round_money, inline_render.format_fast, values.format_value
    QUANTITY_TEXT = inline_render._quantity_text


cdef object _money(object value):
    """values.round_money: half-up to the fen, as the same float operations (non-finite: as it fails)."""
    cdef double v = float(value), r
    if not isfinite(v):
        return round_money(v)
    r = floor(fabs(v) * 100 + 0.5 + 1e-6) / 100
    return -r if v < 0 else r


cdef object _new_finding(dict values):
    """findings.new_finding, with ``values`` as the finding's own __dict__ (no copy)."""
    f = _object_new(Finding)
    PyObject_GenericSetDict(f, values, NULL)
    return f


cdef str _dtoa(double v, char code, int precision):
    """format(v, f".{precision}{code}") for a float (the same conversion: PyOS_double_to_string)."""
    cdef char* text = PyOS_double_to_string(v, code, precision, 0, NULL)
    if text == NULL:
        raise MemoryError()
    try:
        return PyUnicode_DecodeASCII(text, strlen(text), NULL)
    finally:
        PyMem_Free(text)


def dtoa(double v, str code, int precision):
    """The compiled float text (tests compare it with format())."""
    return _dtoa(v, ord(code), precision)


def shown(v):
    """The compiled format_value of a rendered value (tests compare them)."""
    if Unknown is None:
        _bind()
    return _shown(v)


cdef object _shown(object v):
    """format_value(v): text, numbers, the unknown and empty markers, flags and lists here; a quantity's text
    as remembered by value (format_fast); the rest (dates and date-times) by format_fast."""
    cdef double d
    if PyUnicode_CheckExact(v):
        return v
    if PyFloat_CheckExact(v):
        d = v
        if isfinite(d) and floor(d) == d:
            if fabs(d) < 1e15:
                return _integer_text(<long long>d)  # str(int(v)) ("0" for -0.0)
            return _dtoa(d, b"f", 0)
        return _dtoa(d, b"g", 6)  # format(v, ".6g")
    if v is None:
        return "（空）"
    if type(v) is Unknown:
        return "（未知）"
    if v is True:
        return "是"
    if v is False:
        return "否"
    if PyLong_CheckExact(v):
        return str(v)
    if type(v) is Quantity and v.base_value:
        got = (<dict>QUANTITY_TEXT).get((v.base_value, v.dimension))
        if got is not None:
            return got
    elif type(v) is tuple or type(v) is list:
        return "、".join([_shown(x) for x in v])
    return format_fast(v)


cdef int _digits_before(char* buf, int at, unsigned long long u, bint negative) noexcept:
    """Writes u's decimal digits (and a minus sign) to end just before ``at``; returns where they start."""
    while True:
        at -= 1
        buf[at] = 48 + <char>(u % 10)
        u //= 10
        if u == 0:
            break
    if negative:
        at -= 1
        buf[at] = 45  # "-"
    return at


cdef str _integer_text(long long n):
    """The decimal digits of n (str of an int)."""
    cdef char buf[24]
    cdef int at = _digits_before(buf, 23, <unsigned long long>(-n) if n < 0 else <unsigned long long>n, n < 0)
    return PyUnicode_DecodeASCII(buf + at, 23 - at, NULL)


cdef str _fen_text(double v):
    """f"{v:.2f}" of an amount already rounded to the fen (round_money): whole cents printed as digits. Below
    1e13 half an ulp is far under half a fen, so the cents are exactly what .2f rounds to."""
    cdef char buf[32]
    cdef long long cents
    if not fabs(v) < 1e13:
        return _dtoa(v, b"f", 2)
    cents = llround(fabs(v) * 100)
    buf[28], buf[29], buf[30] = 46, 48 + <char>((cents // 10) % 10), 48 + <char>(cents % 10)  # ".", the fen
    cdef int at = _digits_before(buf, 28, cents // 100, signbit(v))
    return PyUnicode_DecodeASCII(buf + at, 31 - at, NULL)


def fen_text(double v):
    """The compiled amount text (tests compare it with f"{v:.2f}" of round_money results)."""
    return _fen_text(v)


cdef str _join(tuple parts, Ctx c):
    """Literal text and node values (shown) in order."""
    out = []
    for part in parts:
        out.append(part if PyUnicode_CheckExact(part) else _shown((<Node>part).eval(c)))
    return "".join(out)


cdef class RenderProgram:
    """One line-level rule: its finding on a line and knowledge row (``point``: inline_render.PointFacts)."""
    cdef tuple evidence       # ((field, node), ...)
    cdef tuple message        # literal text | node | 0 (amount) | 1 (knowledge text) | 2 (knowledge source)
    cdef Node amount
    cdef tuple amount_text    # the amount's expression by values: literal text | node
    cdef object amount_names
    cdef object scope         # Node or None
    cdef Node condition
    cdef dict rule_fields     # what a finding takes from its rule
    cdef dict result_template  # a 3101 result entry with the rule's own values (the rest filled per finding)
    cdef object insufficient_prefix

    def __init__(self, tuple evidence, tuple message, Node amount, tuple amount_text, amount_names, scope,
                 Node condition, dict rule_fields, insufficient_prefix):
        self.evidence, self.message, self.amount, self.amount_text = evidence, message, amount, amount_text
        self.amount_names, self.scope, self.condition = amount_names, scope, condition
        self.rule_fields, self.insufficient_prefix = rule_fields, insufficient_prefix
        f = rule_fields
        self.result_template = {
            "jr_id": None, "rule_id": f["rule_code"], "rule_name": f["rule_name"], "vola_cont": None,
            "sev_deg": f["sev_deg"], "severity": f["severity"], "result_type": f["result_type"], "vola_evid": None,
            "vola_bhvr_type": f["rule_class"], "vola_amt": None, "vola_amt_stas": None,
            "rule_version": f["rule_version"], "knowledge": None, "judge_result_detail_dtos": None}

    cdef Ctx _context(self, dict line, dict lv, point):
        cdef Ctx c = _context(line, lv)
        c.krow = point.row
        return c

    cdef tuple _amount_formula(self, Ctx c):
        """(amount, how it was computed), as the reference explains it."""
        value = self.amount.eval(c)
        names = self.amount_names
        if unknown(value):
            return None, f"{names}: cannot compute ({value.reason})"
        amount = _money(value)
        text = _join(self.amount_text, c)
        shown = _fen_text(amount)  # f"{amount:.2f}"
        return amount, (f"{names} = {text} = {shown}" if names != text else f"{names} = {shown}")

    def violation(self, dict line, dict lv, point):
        cdef Ctx c = self._context(line, lv, point)
        amount, formula = self._amount_formula(c)
        return self._finding(c, point, VIOLATION, self._message(c, amount, point), amount, formula, None)

    def result(self, dict line, dict lv, point):
        """The violation's 3101 ``result[]`` entry, as findings.to_3101_result shows its finding (no Finding
        made: only what the entry shows is worked out)."""
        cdef Ctx c = self._context(line, lv, point)
        cdef dict out
        amount, formula = self._amount_formula(c)
        message = self._message(c, amount, point)
        line_id = str(line.get("feedetl_sn"))
        parts = [point.evidence_head]  # 依据：…；field=value；…；knowledge values, in one join
        for pair in self.evidence:
            if len(parts) > 1:
                parts.append("；")
            parts.append((<tuple>pair)[2])
            parts.append(_shown((<Node>(<tuple>pair)[1]).eval(c)))
        tail = point.evidence_tail
        if tail:
            if len(parts) > 1:
                parts.append("；")
            parts.append(tail)
        evidence = "".join(parts)
        shown = point.knowledge_shown
        out = PyDict_Copy(self.result_template)  # the rule's own entries in place, in the entry's key order
        out["jr_id"] = sha1(f"{point.id_prefix}{line.get('mdtrt_id')}\x1f{line_id}".encode()).hexdigest()[:16]
        out["vola_cont"] = message
        out["vola_evid"] = evidence[:500] if PyUnicode_GET_LENGTH(evidence) > 500 else evidence
        out["vola_amt"] = amount
        out["vola_amt_stas"] = formula
        out["knowledge"] = None if shown is None else PyDict_Copy(shown)
        out["judge_result_detail_dtos"] = [{"rx_id": line_id, "vola_item_type": ROLE_VIOLATING_TEXT}]
        return out

    def reason(self, dict line, dict lv, point):
        """The reference's outcome on the row: False (not concerned), None (violation) or the Unknown."""
        cdef Ctx c = self._context(line, lv, point)
        start, end = point.start, point.end
        day = None
        if start is not None or end is not None:
            day = service_date(line)
            if not unknown(day) and ((start is not None and day < start) or (end is not None and day > end)):
                return False
        found = None
        if self.scope is not None:
            s = (<Node>self.scope).eval(c)
            if unknown(s):
                found = s
            elif not s:
                return False
        if found is None:
            cond = self.condition.eval(c)
            if unknown(cond):
                found = cond
            elif not cond:
                return False
        return day if unknown(day) else found

    def insufficient(self, dict line, dict lv, point, why):
        cdef Ctx c = self._context(line, lv, point)
        return self._finding(c, point, INSUFFICIENT, self.insufficient_prefix + why.reason, None, NOT_COMPUTED,
                             why.reason)

    cdef str _message(self, Ctx c, amount, point):
        out = []
        for part in self.message:
            if PyUnicode_CheckExact(part):
                out.append(part)
            elif not PyLong_CheckExact(part):
                out.append(_shown((<Node>part).eval(c)))
            elif part == 0:
                out.append("（未知）" if amount is None else _fen_text(amount))
            else:
                out.append(point.text if part == 1 else point.source)
        return "".join(out)

    cdef object _finding(self, Ctx c, point, outcome, message, amount, formula, reason):
        cdef dict line = c.line, lv = c.lv
        line_id = str(line.get("feedetl_sn"))
        mdtrt_id = line.get("mdtrt_id")
        day = lv.get("@service_day")
        if day is None:
            d = service_date(line)
            day = lv["@service_day"] = "" if unknown(d) else d.isoformat()
        shown = []
        for pair in self.evidence:
            shown.append(((<tuple>pair)[0], _shown((<Node>(<tuple>pair)[1]).eval(c))))
        fields = self.rule_fields
        return _new_finding({
            "finding_id": sha1(f"{point.id_prefix}{mdtrt_id}\x1f{line_id}".encode()).hexdigest()[:16],
            "outcome": outcome, "rule_code": fields["rule_code"], "rule_name": fields["rule_name"],
            "rule_class": fields["rule_class"], "rule_version": fields["rule_version"],
            "result_type": fields["result_type"], "severity": fields["severity"], "message": message,
            "line_id": line_id, "mdtrt_id": mdtrt_id, "psn_no": line.get("psn_no"),
            "fixmedins_code": line.get("fixmedins_code"), "bilg_dept_codg": line.get("bilg_dept_codg"),
            "bilg_dr_codg": line.get("bilg_dr_codg"), "med_list_codg": line.get("med_list_codg"),
            "service_date": day or None, "knowledge": point.knowledge,
            "evidence": tuple(shown) + point.knowledge_evidence, "amount": amount, "amount_formula": formula,
            "reason": reason, "lines": ((line_id, ROLE_VIOLATING),), "rule_location": fields["rule_location"],
            "profile": None, "shadow": False, "exemption": None})


def _values_parts(expr, node):
    """reference.expr_text(expr, env) as literal text and the leaves' nodes, in order."""
    from claimaudit.engine.reference import expr_text_parts
    return tuple(expr_text_parts(expr, node))


def _merged(parts):
    """Adjacent literal text as one."""
    out = []
    for p in parts:  # (no negative indexes here: the kernels are built with wraparound off)
        if isinstance(p, str) and out and isinstance(out[len(out) - 1], str):
            out[len(out) - 1] += p
        else:
            out.append(p)
    return out


def compile_renderer(rule, facts, location):
    """A line-level rule's render program: ``violation(line, lv, point)`` and ``insufficient(line, lv, point,
    unknown)`` give the finding, ``reason(line, lv, point)`` the reference's outcome on the knowledge row
    (False: not concerned, None: violation, else the Unknown)."""
    from claimaudit.dsl import ir
    if Unknown is None:
        _bind()

    def node(e):
        return _node(e, {}, {}, frozenset(), True)
    evidence = tuple((n, Derived(n) if n in DERIVED_FIELDS else Field(n), f"{n}=") for n in facts.evidence_fields)
    specials = {"amount": 0, "knowledge_text": 1, "knowledge_source": 2, "rule_code": rule.code,
                "rule_name": rule.name}
    message = []
    for part in rule.message.parts:
        if isinstance(part, str):
            message.append(part)
        elif isinstance(part, ir.Field) and part.name.startswith("@"):  # {involved}: a line rule has none
            message.append(specials.get(part.name[1:], ""))
        else:
            message.append(node(part))
    fields = {"rule_code": rule.code, "rule_name": rule.name, "rule_class": rule.rule_class,
              "rule_version": rule.version, "result_type": rule.result_type, "severity": rule.severity,
              "rule_location": location, "sev_deg": SEVERITY_DEGREE[rule.severity]}
    return RenderProgram(evidence, tuple(_merged(message)), node(rule.amount), _values_parts(rule.amount, node),
                         facts.amount_names, node(rule.scope) if rule.scope is not None else None,
                         node(rule.condition), fields, f"数据不足，无法判断【{rule.name}】：")


def money(value):
    """The compiled values.round_money (tests compare them)."""
    return _money(value)
