# Small dict helpers shared by the cross-line kernels (inline functions: compiled into each module).
from cpython.dict cimport PyDict_CheckExact, PyDict_GetItemWithError
from cpython.ref cimport PyObject


cdef inline object dict_get(object line, object key):
    """``line.get(key)``; a plain dict without a method call."""
    cdef PyObject* v
    if PyDict_CheckExact(line):
        v = PyDict_GetItemWithError(line, key)
        return None if v == NULL else <object>v
    return line.get(key)
