# cython: language_level=3
"""Range kernels of cross-line rules (engine/history.py). Members of every window are sorted by
(group, total order), so a line's window is one contiguous range [lo, hi) of them; these loops
work over those ranges. Twin: window_twin.py."""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, int32_t, uint64_t, uintptr_t
from libc.string cimport memcmp


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


# ---- ordering and grouping (engine/history.py TotalOrder, _Runs) ---------------------------------------

cdef inline bint _before(Py_ssize_t a, Py_ssize_t b, const int64_t[:] time, const unsigned char[:] known,
                         const int64_t[:] encounter, const int64_t[:] sn_addr, const int64_t[:] sn_len) nogil:
    """Line a strictly before line b within one patient: (time, encounter id, line id), unknown first.
    Line ids are compared as bytes where they lie in Arrow's buffers (address, length)."""
    cdef int64_t la, lb, m
    cdef int c
    if known[a] != known[b]:
        return known[a] < known[b]
    if known[a] and time[a] != time[b]:
        return time[a] < time[b]
    if encounter[a] != encounter[b]:
        return encounter[a] < encounter[b]
    la, lb = sn_len[a], sn_len[b]
    m = la if la < lb else lb
    if m > 0:
        c = memcmp(<const void*><uintptr_t>sn_addr[a], <const void*><uintptr_t>sn_addr[b], <size_t>m)
        if c != 0:
            return c < 0
    return la < lb


def total_order(const int64_t[:] patient, int64_t n_patients, const int64_t[:] time,
                const unsigned char[:] time_known, const int64_t[:] encounter, const int64_t[:] sn_addr,
                const int64_t[:] sn_len):
    """The permutation putting lines in total order (patient, time, encounter id, line id); ties keep input
    order. Patients are ranks (-1 none, first); encounters ranks of their ids (-1 none); line ids as
    UTF-8 bytes (compared as Python compares str) at address ``sn_addr[i]``, ``sn_len[i]`` long (the
    caller keeps their buffers alive). A counting sort by patient, then a natural merge sort of each patient's lines (claims come encounter by
    encounter, each mostly in order already): no comparison crosses patients."""
    cdef Py_ssize_t n = patient.shape[0], i, k, seg, s, e
    start_arr = np.zeros(n_patients + 2, np.int64)
    cdef int64_t[:] start = start_arr
    for i in range(n):
        start[patient[i] + 2] += 1
    for i in range(1, n_patients + 2):
        start[i] += start[i - 1]
    perm_arr = np.empty(n, np.int64)
    tmp_arr = np.empty(n, np.int64)
    bounds_arr = np.empty(n + 1, np.int64)
    cdef int64_t[:] perm = perm_arr
    cdef int64_t[:] tmp = tmp_arr
    cdef int64_t[:] bounds = bounds_arr
    with nogil:
        for i in range(n):
            k = patient[i] + 1
            perm[start[k]] = i
            start[k] += 1
        # start[k] is now the end of bucket k (patient k - 1); bucket k is [start[k - 1], start[k])
        for seg in range(n_patients + 1):
            s = start[seg - 1] if seg > 0 else 0
            e = start[seg]
            if e - s > 1:
                _natural_sort(perm, tmp, bounds, s, e, time, time_known, encounter, sn_addr, sn_len)
    return perm_arr


cdef void _natural_sort(int64_t[:] perm, int64_t[:] tmp, int64_t[:] bounds, Py_ssize_t s, Py_ssize_t e,
                        const int64_t[:] time, const unsigned char[:] known, const int64_t[:] encounter,
                        const int64_t[:] sn_addr, const int64_t[:] sn_len) noexcept nogil:
    """Stable sort of perm[s:e]: find the ascending runs, then merge neighbouring runs until one is left.
    ``bounds[s:e + 1]`` holds the run starts (the next patient's segment starts at e: used after this one)."""
    cdef Py_ssize_t i, nr = 0, r, w, lo, mid, hi, a, b, k
    bounds[s] = s
    for i in range(s + 1, e):
        if _before(perm[i], perm[i - 1], time, known, encounter, sn_addr, sn_len):
            nr += 1
            bounds[s + nr] = i
    nr += 1
    bounds[s + nr] = e
    while nr > 1:
        r = 0
        w = 0
        while r < nr:
            lo = bounds[s + r]
            if r + 1 < nr:
                mid = bounds[s + r + 1]
                hi = bounds[s + r + 2]
                a, b, k = lo, mid, lo
                while a < mid and b < hi:
                    if _before(perm[b], perm[a], time, known, encounter, sn_addr, sn_len):
                        tmp[k] = perm[b]
                        b += 1
                    else:
                        tmp[k] = perm[a]
                        a += 1
                    k += 1
                while a < mid:
                    tmp[k] = perm[a]
                    a += 1
                    k += 1
                # what is left of the right run is already in place: k == b
                for i in range(lo, k):
                    perm[i] = tmp[i]
                r += 2
            else:
                r += 1
            bounds[s + w] = lo
            w += 1
        bounds[s + w] = e
        nr = w


def merge_sides(const int64_t[:] key_line, const int64_t[:] key_row, const int64_t[:] partner_line,
                const int64_t[:] partner_row):
    """(line, knowledge row) pairs matched on the key side (flag 1) and the partner side (flag 2), both
    given in line order, as one list in (line, row) order without repeats, flags or-ed."""
    cdef Py_ssize_t n1 = key_line.shape[0], n2 = partner_line.shape[0], a = 0, b = 0, p = 0, s, j, k
    cdef int64_t line, r
    cdef signed char f
    out_line = np.empty(n1 + n2, np.int64)
    out_row = np.empty(n1 + n2, np.int64)
    out_flag = np.empty(n1 + n2, np.int8)
    cdef int64_t[:] ol = out_line
    cdef int64_t[:] orow = out_row
    cdef signed char[:] of = out_flag
    with nogil:
        while a < n1 or b < n2:
            if b >= n2 or (a < n1 and key_line[a] <= partner_line[b]):
                line = key_line[a]
            else:
                line = partner_line[b]
            s = p
            while a < n1 and key_line[a] == line:
                r, f = key_row[a], 1
                a += 1
                p = _insert_row(ol, orow, of, s, p, line, r, f)
            while b < n2 and partner_line[b] == line:
                r, f = partner_row[b], 2
                b += 1
                p = _insert_row(ol, orow, of, s, p, line, r, f)
    return out_line[:p], out_row[:p], out_flag[:p]


cdef inline Py_ssize_t _insert_row(int64_t[:] ol, int64_t[:] orow, signed char[:] of, Py_ssize_t s, Py_ssize_t p,
                                   int64_t line, int64_t r, signed char f) nogil:
    """Insert (line, r) into the sorted run [s, p) of one line, or or its flag into an equal entry."""
    cdef Py_ssize_t j = p
    while j > s and orow[j - 1] > r:
        j -= 1
    if j > s and orow[j - 1] == r:
        of[j - 1] |= f
        return p
    cdef Py_ssize_t k = p
    while k > j:
        ol[k] = ol[k - 1]
        orow[k] = orow[k - 1]
        of[k] = of[k - 1]
        k -= 1
    ol[j] = line
    orow[j] = r
    of[j] = f
    return p + 1


def group_runs(const int64_t[:] group, int64_t n_groups, const int64_t[:] key):
    """Members (given in total order) sorted by (group, key, total order): a counting sort by group, then the
    total order's stable natural merge sort of each group, with the key as its only differing field.
    Returns the permutation and each group's start in it."""
    cdef Py_ssize_t n = group.shape[0], i, g
    start_arr = np.zeros(n_groups + 1, np.int64)
    cdef int64_t[:] start = start_arr
    perm_arr = np.empty(n, np.int64)
    tmp_arr = np.empty(n, np.int64)
    fill_arr = np.empty(n_groups + 1, np.int64)
    bounds_arr = np.empty(n + 1, np.int64)
    same_arr = np.zeros(n, np.int64)  # encounter and line id: all equal, so only the key orders
    known_arr = np.ones(n, np.uint8)
    cdef int64_t[:] perm = perm_arr
    cdef int64_t[:] tmp = tmp_arr
    cdef int64_t[:] fill = fill_arr
    cdef int64_t[:] bounds = bounds_arr
    cdef int64_t[:] same = same_arr
    cdef unsigned char[:] known = known_arr
    with nogil:
        for i in range(n):
            start[group[i] + 1] += 1
        for g in range(n_groups):
            start[g + 1] += start[g]
        for g in range(n_groups + 1):
            fill[g] = start[g]
        for i in range(n):
            g = group[i]
            perm[fill[g]] = i
            fill[g] += 1
        for g in range(n_groups):
            if start[g + 1] - start[g] > 1:
                _natural_sort(perm, tmp, bounds, start[g], start[g + 1], key, known, same, same, same)
    return perm_arr, start_arr


cdef inline Py_ssize_t _first_at_least(const int64_t[:] v, Py_ssize_t lo, Py_ssize_t hi, int64_t x) nogil:
    cdef Py_ssize_t mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if v[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def run_bounds(const int64_t[:] m_key, const int64_t[:] m_rank, const int64_t[:] m_day,
               const int64_t[:] group_start, const int64_t[:] q_group, const int64_t[:] q_key,
               const int64_t[:] q_rank, const int64_t[:] q_first_day, int mode):
    """Per query line, the range [lo, hi) of sorted members (by group, key, rank) in its window, and whether
    the line itself is among its run's members. mode 0: the whole run; 1: members up to and including the
    line (running); 2: members strictly before it. ``q_first_day`` raises lo to the first member on or after
    that day (rolling windows; the minimum int64 for none)."""
    cdef Py_ssize_t n = q_group.shape[0], q, lo, hi, rs, re, gs, ge, mid
    cdef int64_t g
    lo_arr = np.zeros(n, np.int64)
    hi_arr = np.zeros(n, np.int64)
    self_arr = np.zeros(n, np.uint8)
    cdef int64_t[:] olo = lo_arr
    cdef int64_t[:] ohi = hi_arr
    cdef unsigned char[:] oself = self_arr
    with nogil:
        for q in range(n):
            g = q_group[q]
            if g < 0:
                continue
            gs, ge = group_start[g], group_start[g + 1]
            rs = _first_at_least(m_key, gs, ge, q_key[q])
            re = _first_at_least(m_key, rs, ge, q_key[q] + 1)
            if rs == re:
                olo[q] = rs
                ohi[q] = rs
                continue
            mid = _first_at_least(m_rank, rs, re, q_rank[q])
            oself[q] = mid < re and m_rank[mid] == q_rank[q]
            lo, hi = rs, re
            if mode == 1:
                hi = mid + 1 if oself[q] else mid
            elif mode == 2:
                hi = mid
            if q_first_day[q] > m_day[rs]:
                mid = _first_at_least(m_day, rs, re, q_first_day[q])
                if mid > lo:
                    lo = mid
            olo[q] = lo
            ohi[q] = hi
    return lo_arr, hi_arr, self_arr


cdef inline Py_ssize_t _slot(int64_t[:] keys, Py_ssize_t mask, int64_t key) nogil:
    """Open-addressing slot of ``key`` (or the empty slot where it goes); keys -1 are empty."""
    cdef Py_ssize_t h = <Py_ssize_t>((<uint64_t>key * <uint64_t>0x9E3779B97F4A7C15) >> 17) & mask
    while keys[h] != -1 and keys[h] != key:
        h = (h + 1) & mask
    return h


def pair_sweep(const int64_t[:] e_line, const int64_t[:] e_row, const signed char[:] e_flag,
               const int64_t[:] group, const unsigned char[:] member_ok, const int64_t[:] day,
               const int64_t[:] first_day, int looks, int strict):
    """Whether each (line, knowledge row) entry has a partner in its group, in one pass over the entries in
    total order (groups contiguous in it: patient-and-period scopes). Entries carry the sides of the row
    they matched (bit 1 key, bit 2 partner); members are the entries of lines with ``member_ok``.
    ``looks``: 0 an entry looks for key-side members, 1 for partner-side members, 2 for members of the
    other side than the one it matched. ``strict``: only members earlier in the total order count (else
    the whole group, less the entry's own line). ``first_day`` (empty for none): members before that day
    do not count (rolling windows; strict only)."""
    cdef Py_ssize_t n = e_line.shape[0], i, j, a, b, most = 0, cap, mask, h, used_n
    cdef int64_t g, key, line, own
    cdef Py_ssize_t end
    cdef int side, want
    cdef bint rolling = first_day.shape[0] == n and n > 0
    out_arr = np.zeros(n, np.uint8)
    cdef unsigned char[:] out = out_arr
    # largest group, in entries: sizes the hash table (entries of unplaced lines, group -1, never break
    # a group's stretch: they are skipped)
    i = 0
    while i < n:
        j = _group_end(group, e_line, i, n)
        if j - i > most:
            most = j - i
        i = j
    cap = 16
    while cap < 4 * most + 16:
        cap *= 2
    mask = cap - 1
    keys_arr = np.full(cap, -1, np.int64)
    vals_arr = np.zeros(cap, np.int64)
    used_arr = np.zeros(cap, np.int64)
    cdef int64_t[:] keys = keys_arr
    cdef int64_t[:] vals = vals_arr
    cdef int64_t[:] used = used_arr
    with nogil:
        a = 0
        while a < n:
            b = _group_end(group, e_line, a, n)
            g = _group_at(group, e_line, a, b)
            if g >= 0:
                used_n = 0
                if strict:
                    i = a
                    while i < b:  # one line at a time: answer its entries, then add them as members
                        line = e_line[i]
                        if group[line] < 0:
                            i += 1
                            continue
                        j = i
                        while j < b and e_line[j] == line:
                            for side in range(1, 3):
                                want = _looks(looks, side, e_flag[j])
                                if want:
                                    h = _slot(keys, mask, e_row[j] * 2 + side - 1)
                                    if keys[h] != -1 and (not rolling or vals[h] >= first_day[j]):
                                        out[j] = 1
                            j += 1
                        end = j
                        if member_ok[line]:
                            for j in range(i, end):
                                for side in range(1, 3):
                                    if e_flag[j] & side:
                                        key = e_row[j] * 2 + side - 1
                                        h = _slot(keys, mask, key)
                                        if keys[h] == -1:
                                            keys[h] = key
                                            used[used_n] = h
                                            used_n += 1
                                        vals[h] = day[line]  # days never decrease in total order
                        while i < b and e_line[i] == line:
                            i += 1
                else:
                    for i in range(a, b):  # members counted per (row, side), then each entry less itself
                        if member_ok[e_line[i]] and group[e_line[i]] >= 0:
                            for side in range(1, 3):
                                if e_flag[i] & side:
                                    key = e_row[i] * 2 + side - 1
                                    h = _slot(keys, mask, key)
                                    if keys[h] == -1:
                                        keys[h] = key
                                        vals[h] = 0
                                        used[used_n] = h
                                        used_n += 1
                                    vals[h] += 1
                    for i in range(a, b):
                        if group[e_line[i]] < 0:
                            continue
                        for side in range(1, 3):
                            if _looks(looks, side, e_flag[i]):
                                h = _slot(keys, mask, e_row[i] * 2 + side - 1)
                                own = 1 if (e_flag[i] & side) != 0 and member_ok[e_line[i]] != 0 else 0
                                if keys[h] != -1 and vals[h] - own > 0:
                                    out[i] = 1
                for j in range(used_n):
                    keys[used[j]] = -1
            a = b
    return out_arr


cdef inline Py_ssize_t _group_end(const int64_t[:] group, const int64_t[:] e_line, Py_ssize_t a,
                                  Py_ssize_t n) nogil:
    """End of the stretch of entries from ``a`` whose placed lines share one group (-1 entries inside)."""
    cdef int64_t g = -1, h
    cdef Py_ssize_t b = a
    while b < n:
        h = group[e_line[b]]
        if h >= 0:
            if g >= 0 and h != g:
                break
            g = h
        b += 1
    return b


cdef inline int64_t _group_at(const int64_t[:] group, const int64_t[:] e_line, Py_ssize_t a, Py_ssize_t b) nogil:
    cdef Py_ssize_t i
    for i in range(a, b):
        if group[e_line[i]] >= 0:
            return group[e_line[i]]
    return -1


cdef inline bint _looks(int looks, int side, signed char flag) nogil:
    if looks == 0:
        return side == 1
    if looks == 1:
        return side == 2
    return (flag & (3 - side)) != 0


def contiguous_groups(const int64_t[:] patient, const int64_t[:] period, const unsigned char[:] known):
    """Dense group numbers of (patient, period) for lines in total order, where each group is one stretch;
    -1 for lines without a patient or not known (no time)."""
    cdef Py_ssize_t n = patient.shape[0], i
    cdef int64_t g = -1, last_p = -2, last_q = 0
    out_arr = np.empty(n, np.int64)
    cdef int64_t[:] out = out_arr
    with nogil:
        for i in range(n):
            if patient[i] < 0 or not known[i]:
                out[i] = -1
                continue
            if patient[i] != last_p or period[i] != last_q:
                g += 1
                last_p = patient[i]
                last_q = period[i]
            out[i] = g
    return out_arr


def expand_entries(const int32_t[:] codes, const unsigned char[:] good, const int64_t[:] starts,
                   const int64_t[:] rows, const signed char[:] flags):
    """(line, row, side flags) for each good line with a code, once per entry of its code's CSR
    (``starts``, ``rows``, ``flags``), in line order."""
    cdef Py_ssize_t n = codes.shape[0], n_codes = starts.shape[0] - 1, i, p = 0
    cdef int64_t total = 0, j, c
    if good.shape[0] != n:
        raise ValueError("expand_entries: one good flag per line")
    for i in range(n):
        c = codes[i]
        if c >= n_codes:
            raise IndexError(f"expand_entries: code {c} outside {n_codes} codes")
        if good[i] and c >= 0:
            total += starts[c + 1] - starts[c]
    out_line = np.empty(total, np.int64)
    out_row = np.empty(total, np.int64)
    out_flag = np.empty(total, np.int8)
    cdef int64_t[:] ol = out_line
    cdef int64_t[:] orow = out_row
    cdef signed char[:] of = out_flag
    with nogil:
        for i in range(n):
            c = codes[i]
            if good[i] and c >= 0:
                for j in range(starts[c], starts[c + 1]):
                    ol[p] = i
                    orow[p] = rows[j]
                    of[p] = flags[j]
                    p += 1
    return out_line, out_row, out_flag


def edges_may_be_blank(const int64_t[:] addr, const int64_t[:] length):
    """Whether some non-empty text (at ``addr``, ``length`` bytes) starts or ends with a byte <= space or a
    non-ASCII byte (which might begin or end a Unicode space)."""
    cdef Py_ssize_t n = addr.shape[0], i
    cdef const unsigned char* p
    cdef unsigned char f, l
    cdef bint found = False
    with nogil:
        for i in range(n):
            if length[i] > 0:
                p = <const unsigned char*><uintptr_t>addr[i]
                f = p[0]
                l = p[length[i] - 1]
                if f <= 32 or f >= 128 or l <= 32 or l >= 128:
                    found = True
                    break
    return found
