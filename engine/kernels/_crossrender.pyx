# cython: language_level=3
"""Assembling a cross-line violation's finding: see crossrender_twin.py (same signatures, same results;
tests/test_cross_kernels.py). The message, evidence and involved lines are joined here instead of by
comprehensions in Python, and ``violation`` does the rest of a violation (row, amount, formula, finding) in
one call: each Python frame it saves costs about as much as the C it becomes."""
import hashlib

from libc.math cimport floor, isfinite, fabs

from claimaudit.engine.kernels._dicts cimport dict_get as _get
from cpython.dict cimport PyDict_GetItemWithError, PyDict_CheckExact, PyDict_Copy, PyDict_SetItem
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.ref cimport PyObject

cdef object _sha1 = hashlib.sha1
cdef str _SEP = "\x1f"
cdef object _new = object.__new__, _set = object.__setattr__
cdef object _round_money = None


cdef object _money(double v):
    """values.round_money: the same float operations in C (a value whose cents are not finite goes to it, and
    fails there as it would)."""
    global _round_money
    cdef double r = fabs(v) * 100 + 0.5 + 1e-6
    if not isfinite(r):  # (a finite value can overflow here too)
        if _round_money is None:
            from claimaudit.engine.values import round_money
            _round_money = round_money
        return _round_money(v)
    r = floor(r) / 100
    return -r if v < 0 else r


cdef class Program:
    """What every violation of one rule shares: see crossrender_twin.Program."""
    cdef readonly dict template
    cdef readonly tuple evidence_fields
    cdef readonly object fmt, iso, violating, involved
    cdef dict points
    cdef object point, amount_field, amount, extra, finding_type, unknown_type, mark
    cdef tuple wkeys, window_evidence
    cdef bint reads_row
    cdef str amount_names

    def __init__(self, dict template, tuple evidence_fields, fmt, iso, violating, involved):
        self.template, self.evidence_fields, self.fmt, self.iso = template, evidence_fields, fmt, iso
        self.violating, self.involved = violating, involved

    def bind(self, dict points, point, tuple wkeys, tuple window_evidence, bint reads_row, amount_field, amount,
             str amount_names, extra, finding_type, unknown_type, mark):
        """See crossrender_twin.Program.bind."""
        self.points, self.point, self.wkeys, self.window_evidence = points, point, wkeys, window_evidence
        self.reads_row, self.amount_field, self.amount, self.amount_names = reads_row, amount_field, amount, amount_names
        self.extra, self.finding_type, self.unknown_type, self.mark = extra, finding_type, unknown_type, mark

    def violation(self, env, index, window, tuple involved):
        """See crossrender_twin.Program.violation."""
        cdef PyObject* hit = PyDict_GetItemWithError(self.points, index)
        got = <object>hit if hit != NULL else self.point(index)
        kp, prefix, kevidence, params, ktext, ksource, message, amount_text = got
        fmt = self.fmt
        cdef tuple tail
        if type(window) is self.unknown_type:
            if self.reads_row:
                env.row = {**params, **dict.fromkeys(self.wkeys, window)}
            tail = kevidence
        else:
            if self.reads_row:
                env.row = {**params, **window}
            tail = kevidence
            if self.window_evidence:
                tail = tail + tuple([(key, fmt(window[key])) for key in self.window_evidence])
        line = env.line
        names = self.amount_names
        value = _get(line, self.amount_field) if self.amount_field is not None else None
        if value is not None:  # the field's value is the amount, and all its text shows
            amount = _money(float(value))
            values = fmt(value)
            formula = f"{names} = {values} = {amount:.2f}" if names != values else f"{names} = {amount:.2f}"
        else:
            value = self.amount(env)
            if type(value) is self.unknown_type:
                amount, formula = None, f"{names}: cannot compute ({value.reason})"
            else:
                amount = _money(float(value))
                if type(amount_text) is str:
                    values = amount_text
                else:
                    values = "".join([p if type(p) is str else fmt((<tuple>p)[1](env)) for p in amount_text])
                formula = f"{names} = {values} = {amount:.2f}" if names != values else f"{names} = {amount:.2f}"
        extra = self.extra(amount, ktext, ksource) if self.extra is not None else None
        found = _new(self.finding_type)  # as findings.new_finding, without copying the values once more
        _set(found, "__dict__", self.values(line, env, message, involved, extra, prefix, kp, tail, amount, formula))
        return found if self.mark is None else self.mark(found)

    def values(self, line, env, tuple message, tuple involved, extra, str prefix, knowledge, tuple tail, amount,
               str formula):
        """A violation's fields on ``line``: see crossrender_twin.Program.values."""
        cdef Py_ssize_t j, n
        cdef list parts = []
        cdef list evidence = []
        cdef list roles
        cdef dict values
        cdef object p, v, name, m
        for j in range(PyTuple_GET_SIZE(message)):
            p = <object>PyTuple_GET_ITEM(message, j)
            if type(p) is str:
                parts.append(p)
                continue
            name = (<tuple>p)[0]
            if name is not None:
                v = _get(line, name)
                if type(v) is str:
                    parts.append(v)
                    continue
            parts.append((<tuple>p)[1](env, involved, extra))
        line_id = str(_get(line, "feedetl_sn"))
        mdtrt_id = _get(line, "mdtrt_id")
        t = _get(line, "fee_ocur_time")
        values = PyDict_Copy(self.template)
        values["finding_id"] = _sha1(f"{prefix}{mdtrt_id}{_SEP}{line_id}".encode()).hexdigest()[:16]
        values["message"] = "".join(parts)
        values["line_id"] = line_id
        values["mdtrt_id"] = mdtrt_id
        values["psn_no"] = _get(line, "psn_no")
        values["fixmedins_code"] = _get(line, "fixmedins_code")
        values["bilg_dept_codg"] = _get(line, "bilg_dept_codg")
        values["bilg_dr_codg"] = _get(line, "bilg_dr_codg")
        values["med_list_codg"] = _get(line, "med_list_codg")
        values["service_date"] = None if t is None else self.iso(t)
        values["knowledge"] = knowledge
        fields = self.evidence_fields
        for j in range(PyTuple_GET_SIZE(fields)):
            name = <object>PyTuple_GET_ITEM(fields, j)
            v = _get(line, name)
            evidence.append((name, v if type(v) is str else self.fmt(env.field(name) if v is None else v)))
        values["evidence"] = tuple(evidence) + tail
        values["amount"] = amount
        values["amount_formula"] = formula
        n = PyTuple_GET_SIZE(involved)
        roles = [(line_id, self.violating)]
        for j in range(n):
            m = <object>PyTuple_GET_ITEM(involved, j)
            roles.append((str(_get(m, "feedetl_sn")), self.involved))
        values["lines"] = tuple(roles)
        return values
