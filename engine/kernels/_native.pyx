# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels; see twin.py for the reference definition of each."""
import numpy as np
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t


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


# ---- run_family: the family VM (twin.run_family defines it; opcodes are twin's) --------------------

from libc.math cimport floor, fabs, NAN
from libc.stdint cimport int8_t, uint64_t, uintptr_t

cdef enum:
    OP_L_F64 = 1
    OP_L_I32 = 2
    OP_L_I64 = 3
    OP_L_U8 = 4
    OP_R_F64 = 5
    OP_P_U8 = 6
    OP_CONST = 7
    OP_NOT = 10
    OP_IS_NULL = 11
    OP_NOT_NULL = 12
    OP_NEG = 13
    OP_ABS = 14
    OP_TABLE = 15
    OP_MAP = 16
    OP_IN_SET = 17
    OP_AND = 20
    OP_OR = 21
    OP_EQ = 22
    OP_NE = 23
    OP_LT = 24
    OP_LE = 25
    OP_GT = 26
    OP_GE = 27
    OP_ADD = 30
    OP_SUB = 31
    OP_MUL = 32
    OP_DIV = 33
    OP_COALESCE = 34
    OP_MIN = 35
    OP_MAX = 36

OPCODES = {"L_F64": OP_L_F64, "L_I32": OP_L_I32, "L_I64": OP_L_I64, "L_U8": OP_L_U8, "R_F64": OP_R_F64,
           "P_U8": OP_P_U8, "CONST": OP_CONST, "NOT": OP_NOT, "IS_NULL": OP_IS_NULL, "NOT_NULL": OP_NOT_NULL,
           "NEG": OP_NEG, "ABS": OP_ABS, "TABLE": OP_TABLE, "MAP": OP_MAP, "IN_SET": OP_IN_SET, "AND": OP_AND,
           "OR": OP_OR, "EQ": OP_EQ, "NE": OP_NE, "LT": OP_LT, "LE": OP_LE, "GT": OP_GT, "GE": OP_GE,
           "ADD": OP_ADD, "SUB": OP_SUB, "MUL": OP_MUL, "DIV": OP_DIV, "COALESCE": OP_COALESCE, "MIN": OP_MIN,
           "MAX": OP_MAX}


cdef double round_money(double v) noexcept nogil:
    cdef double r = floor(fabs(v) * 100.0 + 0.5 + 1e-6) / 100.0
    return -r if v < 0 else r


cdef void run_block(const int32_t* prog, Py_ssize_t n_instr, const VMTables* t, VMBlock* r,
                    Py_ssize_t m) noexcept nogil:
    # Slot s of the stack is r.value/known/dim[s * VM_BLOCK : s * VM_BLOCK + m]. One loop per instruction
    # computes value, known and dim together; tests on the instruction's operands are loop-invariant (the
    # compiler unswitches them), and known flags and truth values combine with bitwise operators, so no
    # branch depends on the data.
    cdef Py_ssize_t n, i, j, sp = -1
    cdef int32_t op, a, b, c, dx
    cdef double* V
    cdef uint8_t* K
    cdef int32_t* D
    cdef double* V2
    cdef uint8_t* K2
    cdef int32_t* D2
    cdef const double* f64
    cdef const int32_t* i32
    cdef const int64_t* i64
    cdef const uint8_t* u8
    cdef const uint8_t* uk
    cdef const uint8_t* uk2
    cdef const int32_t* ud
    cdef const int64_t* li = r.line
    cdef const int64_t* ri = r.row
    cdef const int64_t* pi = r.pair
    cdef double x, y, cv
    cdef uint8_t kx, ky, xt, yt, hit, inside, same, keep_dim, dim_b
    cdef int64_t size, ix, l, w
    if n_instr == 0:
        for i in range(m):
            r.value[i] = 1.0
            r.known[i] = 1
            r.dim[i] = -1
        return
    for n in range(n_instr):
        op = prog[4 * n]
        a = prog[4 * n + 1]
        b = prog[4 * n + 2]
        c = prog[4 * n + 3]
        if op <= OP_CONST:  # ---- loads: a new slot ----
            sp += 1
            V = r.value + sp * VM_BLOCK
            K = r.known + sp * VM_BLOCK
            D = r.dim + sp * VM_BLOCK
            if op == OP_L_F64:
                f64 = t.line_f64[a]
                uk = t.line_u8[b] if b >= 0 else NULL
                ud = t.line_i32[c] if c >= 0 else NULL
                for i in range(m):
                    l = li[i]
                    V[i] = f64[l]
                    K[i] = <uint8_t>(uk[l] != 0) if b >= 0 else <uint8_t>1
                    D[i] = ud[l] if c >= 0 else -1
            elif op == OP_L_I32:
                i32 = t.line_i32[a]
                uk = t.line_u8[b] if b >= 0 else NULL
                for i in range(m):
                    l = li[i]
                    V[i] = <double>i32[l]
                    K[i] = <uint8_t>(uk[l] != 0) if b >= 0 else <uint8_t>1
                    D[i] = -1
            elif op == OP_L_I64:
                i64 = t.line_i64[a]
                uk = t.line_u8[b] if b >= 0 else NULL
                for i in range(m):
                    l = li[i]
                    V[i] = <double>i64[l]
                    K[i] = <uint8_t>(uk[l] != 0) if b >= 0 else <uint8_t>1
                    D[i] = -1
            elif op == OP_L_U8:
                u8 = t.line_u8[a]
                uk = t.line_u8[b] if b >= 0 else NULL
                for i in range(m):
                    l = li[i]
                    V[i] = <double>u8[l]
                    K[i] = <uint8_t>(uk[l] != 0) if b >= 0 else <uint8_t>1
                    D[i] = -1
            elif op == OP_R_F64:
                f64 = t.row_f64[a]
                uk = t.row_u8[b] if b >= 0 else NULL
                ud = t.row_i32[c] if c >= 0 else NULL
                for i in range(m):
                    w = ri[i]
                    V[i] = f64[w]
                    K[i] = <uint8_t>(uk[w] != 0) if b >= 0 else <uint8_t>1
                    D[i] = ud[w] if c >= 0 else -1
            elif op == OP_P_U8:
                u8 = t.pair_u8[a]
                uk = t.line_u8[b] if b >= 0 else NULL
                uk2 = t.row_u8[c] if c >= 0 else NULL
                for i in range(m):
                    V[i] = <double>u8[(r.base + i) if r.dense else pi[i]]
                    K[i] = (<uint8_t>(uk[li[i]] != 0) if b >= 0 else <uint8_t>1) & (<uint8_t>(uk2[ri[i]] != 0) if c >= 0 else <uint8_t>1)
                    D[i] = -1
            else:  # OP_CONST
                cv = t.consts[a]
                for i in range(m):
                    V[i] = cv
                    K[i] = <uint8_t>c
                    D[i] = b
        elif op < OP_AND:  # ---- unary: the top slot in place ----
            V = r.value + sp * VM_BLOCK
            K = r.known + sp * VM_BLOCK
            D = r.dim + sp * VM_BLOCK
            if op == OP_NOT:
                for i in range(m):
                    V[i] = <double>(V[i] == 0)
                    D[i] = -1
            elif op == OP_IS_NULL:
                for i in range(m):
                    V[i] = <double>(K[i] == 0)
                    K[i] = 1
                    D[i] = -1
            elif op == OP_NOT_NULL:
                for i in range(m):
                    V[i] = <double>(K[i] != 0)
                    K[i] = 1
                    D[i] = -1
            elif op == OP_NEG:
                for i in range(m):
                    V[i] = -V[i]
            elif op == OP_ABS:
                for i in range(m):
                    V[i] = fabs(V[i])
            elif op == OP_TABLE:
                u8 = t.tables[a]
                size = t.table_len[a]
                for i in range(m):
                    x = V[i]
                    inside = (x >= 0) & (x < size)
                    ix = <int64_t>(x if inside else 0.0)
                    V[i] = <double>u8[ix] if inside else 0.0
                    D[i] = -1
            elif op == OP_MAP:
                i32 = t.maps[a]
                size = t.map_len[a]
                for i in range(m):
                    x = V[i]
                    inside = (x >= 0) & (x < size)
                    ix = <int64_t>(x if inside else 0.0)
                    V[i] = <double>i32[ix] if inside else x
            else:  # OP_IN_SET
                for i in range(m):
                    x = V[i]
                    hit = 0
                    for j in range(a, a + b):
                        hit = hit | (x == t.consts[j])
                    V[i] = <double>hit
                    D[i] = -1
        else:  # ---- binary: slot sp-1 (x) op slot sp (y), into slot sp-1 ----
            V2 = r.value + sp * VM_BLOCK
            K2 = r.known + sp * VM_BLOCK
            D2 = r.dim + sp * VM_BLOCK
            sp -= 1
            V = r.value + sp * VM_BLOCK
            K = r.known + sp * VM_BLOCK
            D = r.dim + sp * VM_BLOCK
            same = c & 1
            keep_dim = (c & 2) != 0
            dim_b = (c & 4) != 0
            if op == OP_AND:
                for i in range(m):
                    kx = K[i]
                    ky = K2[i]
                    xt = V[i] != 0
                    yt = V2[i] != 0
                    K[i] = (kx & (xt ^ 1)) | (ky & (yt ^ 1)) | (kx & ky)
                    V[i] = <double>(kx & ky & xt & yt)
                    D[i] = -1
            elif op == OP_OR:
                for i in range(m):
                    kx = K[i]
                    ky = K2[i]
                    xt = kx & (V[i] != 0)
                    yt = ky & (V2[i] != 0)
                    K[i] = xt | yt | (kx & ky)
                    V[i] = <double>(xt | yt)
                    D[i] = -1
            elif op == OP_COALESCE:
                for i in range(m):
                    kx = K[i]
                    V[i] = V[i] if kx else V2[i]
                    D[i] = D[i] if kx else D2[i]
                    K[i] = kx | K2[i]
            elif op >= OP_EQ and op <= OP_GE:
                for i in range(m):
                    x = V[i]
                    y = V2[i]
                    K[i] = K[i] & K2[i] & (<uint8_t>(D[i] == D2[i]) if same else <uint8_t>1)
                    if op == OP_EQ:
                        V[i] = <double>(x == y)
                    elif op == OP_NE:
                        V[i] = <double>(x != y)
                    elif op == OP_LT:
                        V[i] = <double>(x < y)
                    elif op == OP_LE:
                        V[i] = <double>(x <= y)
                    elif op == OP_GT:
                        V[i] = <double>(x > y)
                    else:
                        V[i] = <double>(x >= y)
                    D[i] = -1
            elif op == OP_MIN or op == OP_MAX:
                for i in range(m):
                    x = V[i]
                    y = V2[i]
                    K[i] = K[i] & K2[i] & (<uint8_t>(D[i] == D2[i]) if same else <uint8_t>1)
                    hit = (x <= y) if op == OP_MIN else (x >= y)
                    V[i] = x if hit else y
                    D[i] = D[i] if hit else D2[i]
            else:  # arithmetic; a zero divisor makes the quotient unknown
                for i in range(m):
                    x = V[i]
                    y = V2[i]
                    kx = K[i] & K2[i] & (<uint8_t>(D[i] == D2[i]) if same else <uint8_t>1)
                    if op == OP_ADD:
                        V[i] = x + y
                    elif op == OP_SUB:
                        V[i] = x - y
                    elif op == OP_MUL:
                        V[i] = x * y
                    else:
                        hit = y != 0
                        kx = kx & hit
                        V[i] = (x / (y if hit else 1.0)) if hit else 0.0
                    K[i] = kx
                    D[i] = D[i] if keep_dim else (D2[i] if dim_b else -1)


cdef object _u8(object arr):
    """uint8 view of a bool or uint8 array (no copy)."""
    arr = np.asarray(arr)
    return arr.view(np.uint8) if arr.dtype == np.bool_ else arr


cdef object _pointers(list arrays, object kind):
    """The data pointers of ``arrays`` (C-contiguous, dtype ``kind``) as a uint64 array: the arrays stay
    alive in the caller's lists while the loop runs."""
    out = np.zeros(max(len(arrays), 1), np.uint64)
    cdef uint64_t[::1] o = out
    cdef const double[::1] f64
    cdef const int32_t[::1] i32
    cdef const int64_t[::1] i64
    cdef const uint8_t[::1] u8
    cdef Py_ssize_t j
    for j in range(len(arrays)):
        if kind == "f64":
            f64 = arrays[j]
            o[j] = <uint64_t><uintptr_t>&f64[0] if f64.shape[0] else 0
        elif kind == "i32":
            i32 = arrays[j]
            o[j] = <uint64_t><uintptr_t>&i32[0] if i32.shape[0] else 0
        elif kind == "i64":
            i64 = arrays[j]
            o[j] = <uint64_t><uintptr_t>&i64[0] if i64.shape[0] else 0
        else:
            u8 = _u8(arrays[j])
            o[j] = <uint64_t><uintptr_t>&u8[0] if u8.shape[0] else 0
    return out


def run_family(scope, condition, amount, consts, tables, maps, pair_line, pair_row, Py_ssize_t n_lines,
               Py_ssize_t n_rows, line_f64, line_i32, line_i64, line_u8, row_f64, row_i32, row_u8, pair_u8,
               service_day, service_known, eff_from, eff_to, has_eff, active):
    from claimaudit.engine.kernels import twin
    progs = [np.ascontiguousarray(x, np.int32).reshape(-1, 4) for x in (scope, condition, amount)]
    consts = np.ascontiguousarray(consts, np.float64)
    line_u8 = [_u8(x) for x in line_u8]
    row_u8 = [_u8(x) for x in row_u8]
    pair_u8 = [_u8(x) for x in pair_u8]
    tables = [_u8(x) for x in tables]
    lists = (list(line_f64), list(line_i32), list(line_i64), line_u8, list(row_f64), list(row_i32), row_u8,
             pair_u8)
    depth = max(twin.check_program(prog, consts, tables, maps, *lists) for prog in progs)
    twin._check_lengths(len(pair_line), n_lines, n_rows, *lists, service_day, service_known, eff_from, eff_to,
                        has_eff, active)
    # keep every pointer table alive for the loop
    p_lf64, p_li32, p_li64 = _pointers(lists[0], "f64"), _pointers(lists[1], "i32"), _pointers(lists[2], "i64")
    p_lu8, p_rf64, p_ri32 = _pointers(lists[3], "u8"), _pointers(lists[4], "f64"), _pointers(lists[5], "i32")
    p_ru8, p_pu8 = _pointers(lists[6], "u8"), _pointers(lists[7], "u8")
    maps = list(maps)
    p_tab, p_map = _pointers(tables, "u8"), _pointers(maps, "i32")
    tab_len = np.array([len(x) for x in tables] or [0], np.int64)
    map_len = np.array([len(x) for x in maps] or [0], np.int64)
    cdef const uint64_t[::1] v_lf64 = p_lf64, v_li32 = p_li32, v_li64 = p_li64, v_lu8 = p_lu8
    cdef const uint64_t[::1] v_rf64 = p_rf64, v_ri32 = p_ri32, v_ru8 = p_ru8, v_pu8 = p_pu8
    cdef const uint64_t[::1] v_tab = p_tab, v_map = p_map
    cdef const int64_t[::1] v_tab_len = tab_len, v_map_len = map_len
    cdef const double[::1] v_consts = consts if len(consts) else np.zeros(1)
    cdef VMTables t
    t.line_f64 = <const double**><void*>&v_lf64[0]
    t.line_i32 = <const int32_t**><void*>&v_li32[0]
    t.line_i64 = <const int64_t**><void*>&v_li64[0]
    t.line_u8 = <const uint8_t**><void*>&v_lu8[0]
    t.row_f64 = <const double**><void*>&v_rf64[0]
    t.row_i32 = <const int32_t**><void*>&v_ri32[0]
    t.row_u8 = <const uint8_t**><void*>&v_ru8[0]
    t.pair_u8 = <const uint8_t**><void*>&v_pu8[0]
    t.consts = &v_consts[0]
    t.tables = <const uint8_t**><void*>&v_tab[0]
    t.table_len = &v_tab_len[0]
    t.maps = <const int32_t**><void*>&v_map[0]
    t.map_len = &v_map_len[0]

    cdef const int32_t[:, ::1] s_prog = progs[0]
    cdef const int32_t[:, ::1] c_prog = progs[1]
    cdef const int32_t[:, ::1] a_prog = progs[2]
    cdef Py_ssize_t n_s = s_prog.shape[0], n_c = c_prog.shape[0], n_a = a_prog.shape[0]
    cdef const int32_t* sp_ = &s_prog[0, 0] if n_s else NULL
    cdef const int32_t* cp_ = &c_prog[0, 0] if n_c else NULL
    cdef const int32_t* ap_ = &a_prog[0, 0] if n_a else NULL

    cdef const int64_t[::1] pl = np.ascontiguousarray(pair_line, np.int64)
    cdef const int64_t[::1] pr = np.ascontiguousarray(pair_row, np.int64)
    cdef const int32_t[::1] s_day = np.ascontiguousarray(service_day, np.int32)
    cdef const uint8_t[::1] s_known = _u8(np.ascontiguousarray(service_known))
    cdef const int32_t[::1] e_from = np.ascontiguousarray(eff_from, np.int32)
    cdef const int32_t[::1] e_to = np.ascontiguousarray(eff_to, np.int32)
    cdef const uint8_t[::1] h_eff = _u8(np.ascontiguousarray(has_eff))
    cdef const uint8_t[::1] act = _u8(np.ascontiguousarray(active))
    cdef Py_ssize_t n = pl.shape[0]
    # every pair inside the columns, checked once in one pass (the evaluation loop does not check again)
    cdef Py_ssize_t bad = -1, q
    with nogil:
        for q in range(n):
            if pl[q] < 0 or pl[q] >= n_lines or pr[q] < 0 or pr[q] >= n_rows:
                bad = q
                break
    if bad >= 0:
        raise IndexError(f"pair {bad} = ({pl[bad]}, {pr[bad]}) is outside {n_lines} lines × {n_rows} rows")
    outcome = np.zeros(n, np.int8)
    amounts = np.full(n, np.nan)
    cdef int8_t[::1] out = outcome
    cdef double[::1] amt = amounts

    # the registers of one block
    cdef Py_ssize_t slots = max(depth, 1)
    sel = np.zeros((3, VM_BLOCK), np.int64)
    values = np.zeros(slots * VM_BLOCK, np.float64)
    knowns = np.zeros(slots * VM_BLOCK, np.uint8)
    dims = np.zeros(slots * VM_BLOCK, np.int32)
    cdef int64_t[:, ::1] v_sel = sel
    cdef double[::1] v_values = values
    cdef uint8_t[::1] v_knowns = knowns
    cdef int32_t[::1] v_dims = dims
    cdef VMBlock r
    r.pair = &v_sel[0, 0]
    r.line = &v_sel[1, 0]
    r.row = &v_sel[2, 0]
    r.value = &v_values[0]
    r.known = &v_knowns[0]
    r.dim = &v_dims[0]

    # raw pointers for the loop (memoryview fields would be reloaded from memory on every pair)
    cdef const int64_t* PL = &pl[0] if n else NULL
    cdef const int64_t* PR = &pr[0] if n else NULL
    cdef const int32_t* SDAY = &s_day[0] if s_day.shape[0] else NULL
    cdef const uint8_t* SKNOWN = &s_known[0] if s_known.shape[0] else NULL
    cdef const int32_t* EFROM = &e_from[0] if e_from.shape[0] else NULL
    cdef const int32_t* ETO = &e_to[0] if e_to.shape[0] else NULL
    cdef const uint8_t* HEFF = &h_eff[0] if h_eff.shape[0] else NULL
    cdef const uint8_t* ACT = &act[0] if act.shape[0] else NULL
    undated = np.zeros(n, np.uint8)
    cdef uint8_t[::1] und = undated
    cdef uint8_t* UND = &und[0] if n else NULL
    cdef int8_t* OUT = &out[0] if n else NULL
    cdef double* AMT = &amt[0] if n else NULL
    cdef int64_t* RP = r.pair
    cdef int64_t* RL = r.line
    cdef int64_t* RR = r.row
    cdef Py_ssize_t start, stop, p, i, m, kept
    cdef int64_t li, ri
    cdef int32_t day
    cdef uint8_t ok, k, dk, keep
    cdef bint any_eff = np.asarray(has_eff, bool).any()
    cdef bint any_inactive = not np.asarray(active, bool).all()
    cdef bint dense = not any_eff and not any_inactive
    with nogil:
        start = 0
        while start < n:
            stop = min(start + VM_BLOCK, n)
            if dense:  # no dates, every row active: the block's pairs are read where they are
                m = stop - start
                r.dense = True
                r.base = start
                r.line = <int64_t*>(PL + start)  # read only: the compactions below write to RL / RR
                r.row = <int64_t*>(PR + start)
            else:  # dates and active rows: select the pairs that still apply
                m = 0
                r.dense = False
                r.line = RL
                r.row = RR
                for p in range(start, stop):
                    li = PL[p]
                    ri = PR[p]
                    ok = 1
                    if any_inactive:
                        ok = ACT[ri] != 0
                    if any_eff and HEFF[ri]:
                        # no date of service: keep evaluating, the pair ends insufficient unless scope or
                        # condition rule it out (UND marks it); a known date outside the window: drop it
                        dk = SKNOWN[li] != 0
                        day = SDAY[li]
                        UND[p] = ok & (dk ^ 1)
                        ok = ok & ((dk ^ 1) | ((day >= EFROM[ri]) & (day <= ETO[ri])))
                    RP[m] = p
                    RL[m] = li
                    RR[m] = ri
                    m += ok
            # scope, then condition, on the pairs still selected: unknown -> insufficient, false -> none
            if n_s and m:
                run_block(sp_, n_s, &t, &r, m)
                kept = 0
                for i in range(m):
                    k = r.known[i]
                    keep = k & (r.value[i] != 0)
                    p = (start + i) if r.dense else RP[i]
                    OUT[p] = (k ^ 1) << 1
                    RP[kept] = p
                    RL[kept] = r.line[i]
                    RR[kept] = r.row[i]
                    kept += keep
                m = kept
                r.dense = False
                r.line = RL
                r.row = RR
            if m:
                run_block(cp_, n_c, &t, &r, m)
                kept = 0
                for i in range(m):
                    k = r.known[i]
                    keep = k & (r.value[i] != 0)
                    p = (start + i) if r.dense else RP[i]
                    if any_eff and UND[p] and (keep | (k ^ 1)):
                        OUT[p] = 2
                        keep = 0
                    else:
                        OUT[p] = keep | ((k ^ 1) << 1)
                    RP[kept] = p
                    RL[kept] = r.line[i]
                    RR[kept] = r.row[i]
                    kept += keep
                m = kept
                r.dense = False
                r.line = RL
                r.row = RR
            # the amount of each violation
            if n_a and m:
                run_block(ap_, n_a, &t, &r, m)
                for i in range(m):
                    if r.known[i]:
                        AMT[RP[i]] = round_money(r.value[i])
            start = stop
    return outcome, amounts


# ---- column and candidate kernels (twin.py defines each) --------------------------------------------

ctypedef fused table_t:
    double
    int32_t
    int64_t
    uint8_t

ctypedef fused index_t:
    int32_t
    int64_t

ctypedef fused offset_t:
    int32_t
    int64_t


def _take(const table_t[::1] table, const index_t[::1] idx, table_t[::1] out):
    cdef Py_ssize_t n = idx.shape[0], m = table.shape[0], i, bad = -1
    cdef int64_t j
    with nogil:
        for i in range(n):
            j = idx[i]
            if j < 0:
                j += m
            if j < 0 or j >= m:
                bad = i
                break
            out[i] = table[j]
    if bad >= 0:
        raise IndexError(f"index {idx[bad]} is out of bounds for a table of {m}")


def take(table, idx):
    table = np.ascontiguousarray(table)
    idx = np.ascontiguousarray(idx)
    if idx.dtype != np.int32 and idx.dtype != np.int64:
        idx = idx.astype(np.int64)
    if table.dtype == np.bool_:
        return take(table.view(np.uint8), idx).view(np.bool_)
    if table.dtype not in (np.float64, np.int32, np.int64, np.uint8):
        raise TypeError(f"take: table of {table.dtype}")
    out = np.empty(idx.shape[0], table.dtype)
    if idx.shape[0]:
        if table.shape[0] == 0:
            raise IndexError("index into an empty table")
        _take(table, idx, out)
    return out


cdef inline bint _valid(const uint8_t* bits, int64_t i) noexcept nogil:
    return bits == NULL or (bits[i >> 3] >> (i & 7)) & 1


cdef object _c_u8(object arr):
    """A C-contiguous uint8 view of a bool or uint8 array (any other dtype is converted)."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    return arr if arr.dtype == np.uint8 else arr.astype(np.uint8)


def dict_codes(indices, validity, int64_t bit_offset, table, out):
    _dict_codes(np.ascontiguousarray(indices, np.int32), _c_u8(validity), bit_offset,
                np.ascontiguousarray(table, np.int32), out)
    return out


def _dict_codes(const int32_t[::1] indices, const uint8_t[::1] validity, int64_t bit_offset,
                const int32_t[::1] table, int32_t[::1] out):
    cdef Py_ssize_t n = indices.shape[0], m = table.shape[0], i, bad = -1
    cdef int32_t j
    cdef const uint8_t* bits = &validity[0] if validity.shape[0] else NULL
    if out.shape[0] != n:
        raise ValueError("out must have one value per index")
    if bits != NULL and validity.shape[0] * 8 < bit_offset + n:
        raise ValueError("validity bitmap too short")
    with nogil:
        for i in range(n):
            if _valid(bits, bit_offset + i):
                j = indices[i]
                if j < 0 or j >= m:
                    bad = i
                    break
                out[i] = table[j]
            else:
                out[i] = -1
    if bad >= 0:
        raise IndexError(f"dictionary index {indices[bad]} outside a dictionary of {m}")


cdef inline bint _is_space(uint32_t c) noexcept nogil:
    # str.isspace / str.strip's whitespace (Py_UNICODE_ISSPACE)
    if c < 128:
        return c == 32 or (9 <= c <= 13) or (28 <= c <= 31)
    return (c == 0x85 or c == 0xA0 or c == 0x1680 or (0x2000 <= c <= 0x200A) or c == 0x2028 or c == 0x2029
            or c == 0x202F or c == 0x205F or c == 0x3000)


def _blank_text(const offset_t[::1] offsets, const uint8_t[::1] data, const uint8_t[::1] validity,
                int64_t bit_offset, uint8_t[::1] out):
    cdef Py_ssize_t n = out.shape[0], i
    cdef int64_t p, end
    cdef uint32_t c
    cdef uint8_t b
    cdef bint blank
    cdef const uint8_t* bits = &validity[0] if validity.shape[0] else NULL
    cdef const uint8_t* d = &data[0] if data.shape[0] else NULL
    if offsets.shape[0] != n + 1:
        raise ValueError("offsets must have one value more than out")
    if bits != NULL and validity.shape[0] * 8 < bit_offset + n:
        raise ValueError("validity bitmap too short")
    if n and (offsets[0] < 0 or offsets[n] > data.shape[0]):
        raise ValueError("offsets outside the data")
    with nogil:
        for i in range(n):
            if not _valid(bits, bit_offset + i):
                out[i] = 1
                continue
            p = offsets[i]
            end = offsets[i + 1]
            blank = True
            while p < end:
                b = d[p]
                if b < 0x80:
                    c = b
                    p += 1
                elif b < 0xE0 and p + 1 < end:
                    c = ((b & 0x1F) << 6) | (d[p + 1] & 0x3F)
                    p += 2
                elif b < 0xF0 and p + 2 < end:
                    c = ((b & 0x0F) << 12) | ((d[p + 1] & 0x3F) << 6) | (d[p + 2] & 0x3F)
                    p += 3
                else:
                    c = 0x10000  # four-byte sequences are never whitespace
                    p += 4
                if not _is_space(c):
                    blank = False
                    break
            out[i] = blank
    return out


def blank_text(offsets, data, validity, int64_t bit_offset):
    offsets = np.ascontiguousarray(offsets)
    if offsets.dtype != np.int32 and offsets.dtype != np.int64:
        raise TypeError("offsets must be int32 or int64")
    out = np.zeros(max(offsets.shape[0] - 1, 0), np.uint8)
    _blank_text(offsets, _c_u8(data), _c_u8(validity), bit_offset, out)
    return out.view(np.bool_)


def floor_days(micros):
    return _floor_days(np.ascontiguousarray(micros, np.int64))


def _floor_days(const int64_t[::1] micros):
    cdef Py_ssize_t n = micros.shape[0], i
    cdef int64_t v, q
    cdef int64_t per_day = 86400000000
    out = np.empty(n, np.int32)
    cdef int32_t[::1] o = out
    with nogil:
        for i in range(n):
            v = micros[i]
            q = v // per_day
            if q * per_day > v:  # C truncates towards zero; floor for negatives
                q -= 1
            o[i] = <int32_t>q
    return out


def ages(birth, birth_known, service, service_known):
    return _ages(np.ascontiguousarray(birth, np.int32), _c_u8(birth_known), np.ascontiguousarray(service, np.int32),
                 _c_u8(service_known))


def _ages(const int32_t[::1] birth, const uint8_t[::1] birth_known, const int32_t[::1] service,
          const uint8_t[::1] service_known):
    cdef Py_ssize_t n = birth.shape[0], i
    cdef int32_t lo = 0, hi = -1, b, s
    cdef int64_t y, mo, d, by, bmd
    if birth_known.shape[0] != n or service.shape[0] != n or service_known.shape[0] != n:
        raise ValueError("ages: columns of different lengths")
    out = np.zeros(n, np.float64)
    known = np.zeros(n, np.uint8)
    cdef double[::1] o = out
    cdef uint8_t[::1] k = known
    cdef bint first = True
    with nogil:  # the range of the dates of known pairs: a calendar table when it is small
        for i in range(n):
            if birth_known[i] and service_known[i] and birth[i] <= service[i]:
                k[i] = 1
                if first:
                    lo, hi, first = birth[i], service[i], False
                else:
                    if birth[i] < lo:
                        lo = birth[i]
                    if service[i] > hi:
                        hi = service[i]
    cdef int64_t span = <int64_t>hi - lo + 1
    cdef int32_t[::1] year_of
    cdef int32_t[::1] md_of
    if span > 0 and span <= (1 << 22) and span <= 4 * n + 1024:
        year_of = np.empty(span, np.int32)
        md_of = np.empty(span, np.int32)
        with nogil:
            for i in range(span):
                civil_from_days(lo + i, &y, &mo, &d)
                year_of[i] = <int32_t>y
                md_of[i] = <int32_t>(mo * 32 + d)
            for i in range(n):
                if k[i]:
                    b = birth[i] - lo
                    s = service[i] - lo
                    o[i] = <double>(year_of[s] - year_of[b] - (1 if md_of[s] < md_of[b] else 0))
    else:
        with nogil:
            for i in range(n):
                if k[i]:
                    o[i] = <double>full_years(birth[i], service[i])
    return out, known.view(np.bool_)


def lookup2(a, b, int64_t width, values, known, dims):
    return _lookup2(np.ascontiguousarray(a, np.int32), np.ascontiguousarray(b, np.int32), width,
                    np.ascontiguousarray(values, np.float64), _c_u8(known), np.ascontiguousarray(dims, np.int32))


def _lookup2(const int32_t[::1] a, const int32_t[::1] b, int64_t width, const double[::1] values,
             const uint8_t[::1] known, const int32_t[::1] dims):
    cdef Py_ssize_t n = a.shape[0], m = values.shape[0], i, bad = -1
    cdef int64_t j
    if b.shape[0] != n or known.shape[0] != m or dims.shape[0] != m or width < 1:
        raise ValueError("lookup2: inconsistent arguments")
    out = np.empty(n, np.float64)
    out_known = np.empty(n, np.uint8)
    out_dim = np.empty(n, np.int32)
    cdef double[::1] o = out
    cdef uint8_t[::1] ok = out_known
    cdef int32_t[::1] od = out_dim
    with nogil:
        for i in range(n):
            j = (<int64_t>a[i] + 1) * width + (<int64_t>b[i] + 1)
            if a[i] < -1 or b[i] < -1 or b[i] + 1 >= width or j >= m:
                bad = i
                break
            o[i] = values[j]
            ok[i] = known[j]
            od[i] = dims[j]
    if bad >= 0:
        raise IndexError(f"lookup2: codes ({a[bad]}, {b[bad]}) outside the table")
    return out, out_known.view(np.bool_), out_dim


def ratio(num, num_known, den, den_known):
    return _ratio(np.ascontiguousarray(num, np.float64), _c_u8(num_known), np.ascontiguousarray(den, np.float64),
                  _c_u8(den_known))


def _ratio(const double[::1] num, const uint8_t[::1] num_known, const double[::1] den,
           const uint8_t[::1] den_known):
    cdef Py_ssize_t n = num.shape[0], i
    if num_known.shape[0] != n or den.shape[0] != n or den_known.shape[0] != n:
        raise ValueError("ratio: columns of different lengths")
    out = np.zeros(n, np.float64)
    known = np.zeros(n, np.uint8)
    cdef double[::1] o = out
    cdef uint8_t[::1] k = known
    with nogil:
        for i in range(n):
            if num_known[i] and den_known[i] and den[i] > 0:
                k[i] = 1
                o[i] = num[i] / den[i]
    return out, known.view(np.bool_)


def expand_pairs(codes, good, starts, items):
    return _expand_pairs(np.ascontiguousarray(codes, np.int32), _c_u8(good), np.ascontiguousarray(starts, np.int64),
                         np.ascontiguousarray(items, np.int64))


def _expand_pairs(const int32_t[::1] codes, const uint8_t[::1] good, const int64_t[::1] starts,
                  const int64_t[::1] items):
    cdef Py_ssize_t n = codes.shape[0], n_codes = starts.shape[0] - 1, i, bad = -1
    cdef int64_t total = 0, j, p = 0, c, most = 0, r
    cdef uint8_t ok
    if good.shape[0] != n or n_codes < 0:
        raise ValueError("expand_pairs: inconsistent arguments")
    if n_codes and (starts[0] < 0 or starts[n_codes] > items.shape[0]):
        raise ValueError("expand_pairs: starts outside the items")
    with nogil:
        for i in range(n):
            if codes[i] >= n_codes:
                bad = i
                break
        for c in range(n_codes):
            if starts[c + 1] - starts[c] > most:
                most = starts[c + 1] - starts[c]
    if bad >= 0:
        raise IndexError(f"expand_pairs: code {codes[bad]} outside {n_codes} codes")
    cdef int64_t[::1] first
    cdef int64_t[::1] pl
    cdef int64_t[::1] pr
    if most <= 1:  # the usual case: at most one row per code, one branch-free pass into buffers of n
        first_rows = np.full(n_codes + 1, -1, np.int64)  # slot 0: no code
        first = first_rows
        for c in range(n_codes):
            if starts[c + 1] > starts[c]:
                first[c + 1] = items[starts[c]]
        pair_line = np.empty(n, np.int64)
        pair_row = np.empty(n, np.int64)
        pl = pair_line
        pr = pair_row
        with nogil:
            for i in range(n):
                c = codes[i]
                r = first[c + 1] if c >= 0 else -1
                ok = (good[i] != 0) & (r >= 0)
                pl[p] = i
                pr[p] = r
                p += ok
        return pair_line[:p], pair_row[:p]
    with nogil:
        for i in range(n):
            c = codes[i]
            if good[i] and c >= 0:
                total += starts[c + 1] - starts[c]
    pair_line = np.empty(total, np.int64)
    pair_row = np.empty(total, np.int64)
    pl = pair_line
    pr = pair_row
    with nogil:
        for i in range(n):
            c = codes[i]
            if good[i] and c >= 0:
                for j in range(starts[c], starts[c + 1]):
                    pl[p] = i
                    pr[p] = items[j]
                    p += 1
    return pair_line, pair_row
