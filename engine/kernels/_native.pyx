# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels; see twin.py for the reference definition of each."""
import numpy as np
from libc.stdint cimport int32_t, int64_t, uint8_t


cdef void civil_from_days(int64_t z, int64_t* y, int64_t* m, int64_t* d) noexcept nogil:
    # Howard Hinnant's days -> civil date, exact for the proleptic Gregorian calendar
    z += 719468
    cdef int64_t era = (z if z >= 0 else z - 146096) // 146097
    cdef int64_t doe = z - era * 146097
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef int64_t mp = (5 * doy + 2) // 153
    d[0] = doy - (153 * mp + 2) // 5 + 1
    m[0] = mp + 3 if mp < 10 else mp - 9
    y[0] = yoe + era * 400 + (1 if m[0] <= 2 else 0)


cdef int32_t full_years(int32_t birth_days, int32_t service_days) noexcept nogil:
    cdef int64_t by, bm, bd, sy, sm, sd
    civil_from_days(birth_days, &by, &bm, &bd)
    civil_from_days(service_days, &sy, &sm, &sd)
    cdef int64_t years = sy - by
    if sm < bm or (sm == bm and sd < bd):
        years -= 1
    return <int32_t>years


cdef bint contains(const int32_t[:] items, int64_t lo, int64_t hi, int32_t value) noexcept nogil:
    cdef int64_t j
    for j in range(lo, hi):
        if items[j] == value:
            return True
    return False


def age_years(const int32_t[:] birth_days, const int32_t[:] service_days):
    cdef Py_ssize_t n = birth_days.shape[0], i
    out = np.empty(n, np.int32)
    cdef int32_t[:] o = out
    with nogil:
        for i in range(n):
            o[i] = full_years(birth_days[i], service_days[i])
    return out


def prefix_any(const int64_t[:] pair_line, const int64_t[:] pair_row, const int32_t[:] line_main,
               const int32_t[:] list_ids, const int64_t[:] list_offsets, const int32_t[:] list_items,
               const int64_t[:] match_offsets, const int32_t[:] match_items,
               const int64_t[:] row_offsets, const int32_t[:] row_items):
    cdef Py_ssize_t n = pair_line.shape[0], p
    cdef int64_t li, ri, lid, k, j, lo, hi
    cdef int32_t c
    cdef bint hit
    out = np.zeros(n, np.uint8)
    cdef uint8_t[:] o = out
    with nogil:
        for p in range(n):
            li = pair_line[p]
            ri = pair_row[p]
            lo = row_offsets[ri]
            hi = row_offsets[ri + 1]
            hit = False
            c = line_main[li]
            if c >= 0:
                for j in range(match_offsets[c], match_offsets[c + 1]):
                    if contains(row_items, lo, hi, match_items[j]):
                        hit = True
                        break
            lid = list_ids[li]
            if not hit and lid >= 0:
                for k in range(list_offsets[lid], list_offsets[lid + 1]):
                    c = list_items[k]
                    for j in range(match_offsets[c], match_offsets[c + 1]):
                        if contains(row_items, lo, hi, match_items[j]):
                            hit = True
                            break
                    if hit:
                        break
            o[p] = hit
    return out


def member(const int64_t[:] pair_line, const int64_t[:] pair_row, const int32_t[:] line_codes,
           const int64_t[:] row_offsets, const int32_t[:] row_items):
    cdef Py_ssize_t n = pair_line.shape[0], p
    cdef int32_t c
    cdef int64_t ri
    out = np.zeros(n, np.uint8)
    cdef uint8_t[:] o = out
    with nogil:
        for p in range(n):
            c = line_codes[pair_line[p]]
            ri = pair_row[p]
            o[p] = c >= 0 and contains(row_items, row_offsets[ri], row_offsets[ri + 1], c)
    return out
