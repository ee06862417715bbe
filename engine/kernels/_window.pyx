# cython: language_level=3
"""Range kernels of cross-line rules (engine/history.py). Members of every window are sorted by
(group, total order), so a line's window is one contiguous range [lo, hi) of them; these loops
work over those ranges. Twin: window_twin.py."""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, int32_t


def range_distinct(const int64_t[:] lo, const int64_t[:] hi, const int64_t[:] prev):
    """Distinct values in each range: members whose previous same-valued member lies before ``lo``
    (``prev`` = -1 for the first of its value, a large number for a member without a value)."""
    cdef Py_ssize_t q, j, n = lo.shape[0]
    out = np.zeros(n, np.float64)
    cdef double[:] o = out
    cdef int64_t a, c
    with nogil:
        for q in range(n):
            a = lo[q]
            c = 0
            for j in range(a, hi[q]):
                if prev[j] < a:
                    c += 1
            o[q] = c
    return out


def range_overlap(const int64_t[:] lo, const int64_t[:] hi, const int64_t[:] member_line,
                  const int64_t[:] query_line, const double[:] supply_end, const unsigned char[:] supply_known,
                  const double[:] query_day):
    """Days of supply still running at each line's day from the other members of its range:
    max(0, max(end_day(m) - day)) over members m other than the line itself."""
    cdef Py_ssize_t q, j, n = lo.shape[0]
    out = np.zeros(n, np.float64)
    cdef double[:] o = out
    cdef double best, v
    with nogil:
        for q in range(n):
            best = 0.0
            for j in range(lo[q], hi[q]):
                if member_line[j] != query_line[q] and supply_known[j]:
                    v = supply_end[j] - query_day[q]
                    if v > best:
                        best = v
            o[q] = best
    return out
