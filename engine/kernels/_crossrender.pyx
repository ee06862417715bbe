# cython: language_level=3
"""Assembling a cross-line violation's finding: see crossrender_twin.py (same signatures, same results;
tests/test_cross_kernels.py). The message, evidence and involved lines are joined here instead of by
comprehensions in Python: one call per violation."""
import hashlib

from claimaudit.engine.kernels._dicts cimport dict_get as _get
from cpython.dict cimport PyDict_GetItemWithError, PyDict_CheckExact, PyDict_Copy, PyDict_SetItem
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.ref cimport PyObject

cdef object _sha1 = hashlib.sha1
cdef str _SEP = "\x1f"


cdef class Program:
    """What every violation of one rule shares: see crossrender_twin.Program."""
    cdef readonly dict template
    cdef readonly tuple evidence_fields
    cdef readonly object fmt, iso, violating, involved

    def __init__(self, dict template, tuple evidence_fields, fmt, iso, violating, involved):
        self.template, self.evidence_fields, self.fmt, self.iso = template, evidence_fields, fmt, iso
        self.violating, self.involved = violating, involved

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
            evidence.append((name, v if type(v) is str else self.fmt(env.field(name))))
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
