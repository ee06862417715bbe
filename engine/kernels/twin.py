"""Pure-Python twins of the Cython kernels: the same arguments, the same results, written for
clarity. They define what the kernels must compute."""
from __future__ import annotations

import numpy as np

_EPOCH = np.datetime64("1970-01-01", "D")


def age_years(birth_days, service_days):
    """Full years of age: whole years from birth to the service date (a birthday counts on its day)."""
    out = np.empty(len(birth_days), np.int32)
    for i in range(len(birth_days)):
        b = (_EPOCH + int(birth_days[i])).astype(object)
        d = (_EPOCH + int(service_days[i])).astype(object)
        out[i] = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    return out


def _contains_sorted(items, lo, hi, value) -> bool:
    for j in range(lo, hi):
        if items[j] == value:
            return True
    return False


def prefix_any(pair_line, pair_row, line_main, list_ids, list_offsets, list_items,
               match_offsets, match_items, row_offsets, row_items):
    """For each (line, row) pair: does any code of the line (its main code, then its list) start with
    any prefix of the row? ``match_*`` lists, per code, the prefix ids it starts with."""
    out = np.zeros(len(pair_line), np.uint8)
    for p in range(len(pair_line)):
        li, ri = pair_line[p], pair_row[p]
        codes = []
        if line_main[li] >= 0:
            codes.append(line_main[li])
        lid = list_ids[li]
        if lid >= 0:
            codes.extend(list_items[list_offsets[lid]:list_offsets[lid + 1]])
        hit = False
        for c in codes:
            for q in match_items[match_offsets[c]:match_offsets[c + 1]]:
                if _contains_sorted(row_items, row_offsets[ri], row_offsets[ri + 1], q):
                    hit = True
                    break
            if hit:
                break
        out[p] = hit
    return out


def member(pair_line, pair_row, line_codes, row_offsets, row_items):
    """For each (line, row) pair: is the line's code one of the row's codes?"""
    out = np.zeros(len(pair_line), np.uint8)
    for p in range(len(pair_line)):
        c = line_codes[pair_line[p]]
        ri = pair_row[p]
        out[p] = c >= 0 and _contains_sorted(row_items, row_offsets[ri], row_offsets[ri + 1], c)
    return out


# ---- run_family: the family VM ----------------------------------------------------------------------
#
# A program is an int32 array of shape (n, 4): one instruction per row, (opcode, a, b, c). It runs on a
# stack whose slots hold (value: float, known: bool, dim: int). Booleans are 0/1, text is a dictionary
# code (-1 null), dates are days since 1970, date-times microseconds, quantities a value in the base
# unit with a dimension id (dim; -1 for values that are not quantities). An empty program leaves
# "true, known". Opcodes (a, b, c as below; an index of -1 means "none"):

L_F64 = 1      # push line_f64[a][line], known line_u8[b][line] (b -1: known), dim line_i32[c][line] (c -1: -1)
L_I32 = 2      # push line_i32[a][line], known line_u8[b][line]
L_I64 = 3      # push line_i64[a][line], known line_u8[b][line]
L_U8 = 4       # push line_u8[a][line], known line_u8[b][line]
R_F64 = 5      # push row_f64[a][row], known row_u8[b][row], dim row_i32[c][row]
P_U8 = 6       # push pair_u8[a][pair], known line_u8[b][line] and row_u8[c][row] (each -1: known)
CONST = 7      # push consts[a] with dim b, known c (0 or 1)
NOT = 10       # not (Kleene: unknown stays unknown)
IS_NULL = 11   # value = not known; known
NOT_NULL = 12  # value = known; known
NEG = 13
ABS = 14
TABLE = 15     # value = tables[a][code] (0 when the code is outside the table); known unchanged
MAP = 16       # code = maps[a][code] for codes inside the map; others (-1, -2) unchanged
IN_SET = 17    # value = value equals one of consts[a : a + b]
AND = 20       # Kleene and / or of the two top slots
OR = 21
EQ, NE, LT, LE, GT, GE = 22, 23, 24, 25, 26, 27  # c & 1: unknown unless the dims are equal
ADD, SUB, MUL, DIV = 30, 31, 32, 33  # c & 1: dims must be equal; c & 2: result dim from a; c & 4: from b
COALESCE = 34  # the first if known, else the second
MIN, MAX = 35, 36  # c & 1: dims must be equal; picks first when first <= second (MIN) / >= second (MAX)

FLAG_SAME_DIM, FLAG_DIM_A, FLAG_DIM_B = 1, 2, 4

OPCODES = {"L_F64": L_F64, "L_I32": L_I32, "L_I64": L_I64, "L_U8": L_U8, "R_F64": R_F64, "P_U8": P_U8,
           "CONST": CONST, "NOT": NOT, "IS_NULL": IS_NULL, "NOT_NULL": NOT_NULL, "NEG": NEG, "ABS": ABS,
           "TABLE": TABLE, "MAP": MAP, "IN_SET": IN_SET, "AND": AND, "OR": OR, "EQ": EQ, "NE": NE, "LT": LT,
           "LE": LE, "GT": GT, "GE": GE, "ADD": ADD, "SUB": SUB, "MUL": MUL, "DIV": DIV, "COALESCE": COALESCE,
           "MIN": MIN, "MAX": MAX}
LOADS = (L_F64, L_I32, L_I64, L_U8, R_F64, P_U8, CONST)
UNARY = (NOT, IS_NULL, NOT_NULL, NEG, ABS, TABLE, MAP, IN_SET)
BINARY = (AND, OR, EQ, NE, LT, LE, GT, GE, ADD, SUB, MUL, DIV, COALESCE, MIN, MAX)
STACK_SLOTS = 64  # the compiled VM's stack; deeper programs are refused

OUTCOME_NONE, OUTCOME_VIOLATION, OUTCOME_INSUFFICIENT = 0, 1, 2


def _check_index(i, seq, what, optional=False):
    if optional and i == -1:
        return
    if not 0 <= i < len(seq):
        raise ValueError(f"{what} index {i} out of range (have {len(seq)})")


def check_program(prog, consts, tables, maps, line_f64, line_i32, line_i64, line_u8, row_f64, row_i32, row_u8,
                  pair_u8) -> int:
    """Raise ValueError unless every operand of ``prog`` exists and the stack never under- or overflows
    and ends with exactly one slot (or the program is empty). Returns the most slots the program uses.
    Both backends call this before running."""
    prog = np.asarray(prog)
    if prog.ndim != 2 or prog.shape[1] != 4 or prog.dtype != np.int32:
        raise ValueError("a program is an int32 array of shape (n, 4)")
    depth = most = 0
    for op, a, b, c in prog.tolist():
        if op in LOADS:
            if op == L_F64:
                _check_index(a, line_f64, "line_f64"), _check_index(b, line_u8, "line_u8", True)
                _check_index(c, line_i32, "line_i32", True)
            elif op == L_I32:
                _check_index(a, line_i32, "line_i32"), _check_index(b, line_u8, "line_u8", True)
            elif op == L_I64:
                _check_index(a, line_i64, "line_i64"), _check_index(b, line_u8, "line_u8", True)
            elif op == L_U8:
                _check_index(a, line_u8, "line_u8"), _check_index(b, line_u8, "line_u8", True)
            elif op == R_F64:
                _check_index(a, row_f64, "row_f64"), _check_index(b, row_u8, "row_u8", True)
                _check_index(c, row_i32, "row_i32", True)
            elif op == P_U8:
                _check_index(a, pair_u8, "pair_u8"), _check_index(b, line_u8, "line_u8", True)
                _check_index(c, row_u8, "row_u8", True)
            else:
                _check_index(a, consts, "const")
                if c not in (0, 1):
                    raise ValueError("CONST known flag must be 0 or 1")
            depth += 1
            most = max(most, depth)
            if depth > STACK_SLOTS:
                raise ValueError("program needs more stack than the VM has")
        elif op in UNARY:
            if depth < 1:
                raise ValueError(f"opcode {op} on an empty stack")
            if op == TABLE:
                _check_index(a, tables, "table")
            elif op == MAP:
                _check_index(a, maps, "map")
            elif op == IN_SET:
                if b < 0 or a < 0 or a + b > len(consts):
                    raise ValueError("IN_SET constants out of range")
        elif op in BINARY:
            if depth < 2:
                raise ValueError(f"opcode {op} needs two slots")
            depth -= 1
        else:
            raise ValueError(f"unknown opcode {op}")
    if len(prog) and depth != 1:
        raise ValueError(f"a program must leave one slot, leaves {depth}")
    return most


def _round_money(v: float) -> float:
    """batch.round_money_vec on one value: the same float operations in the same order."""
    r = float(np.floor(abs(v) * 100.0 + 0.5 + 1e-6)) / 100.0
    return -r if v < 0 else r


def _truth(v) -> bool:
    return v != 0  # NaN counts as true, as numpy's cast to bool does


def _run_program(prog, p, li, ri, consts, tables, maps, line_f64, line_i32, line_i64, line_u8, row_f64, row_i32,
                 row_u8, pair_u8):
    """Evaluate one program for pair p = (line li, row ri): the top slot (value, known, dim)."""
    stack = []

    def line_known(b):
        return True if b < 0 else bool(line_u8[b][li])

    for op, a, b, c in prog:
        if op == L_F64:
            stack.append((float(line_f64[a][li]), line_known(b), -1 if c < 0 else int(line_i32[c][li])))
        elif op == L_I32:
            stack.append((float(line_i32[a][li]), line_known(b), -1))
        elif op == L_I64:
            stack.append((float(line_i64[a][li]), line_known(b), -1))
        elif op == L_U8:
            stack.append((float(line_u8[a][li]), line_known(b), -1))
        elif op == R_F64:
            stack.append((float(row_f64[a][ri]), True if b < 0 else bool(row_u8[b][ri]),
                          -1 if c < 0 else int(row_i32[c][ri])))
        elif op == P_U8:
            known = line_known(b) and (True if c < 0 else bool(row_u8[c][ri]))
            stack.append((float(pair_u8[a][p]), known, -1))
        elif op == CONST:
            stack.append((float(consts[a]), bool(c), int(b)))
        elif op in UNARY:
            x, k, d = stack.pop()
            if op == NOT:
                stack.append((0.0 if _truth(x) else 1.0, k, -1))
            elif op == IS_NULL:
                stack.append((0.0 if k else 1.0, True, -1))
            elif op == NOT_NULL:
                stack.append((1.0 if k else 0.0, True, -1))
            elif op == NEG:
                stack.append((-x, k, d))
            elif op == ABS:
                stack.append((abs(x), k, d))
            elif op == TABLE:
                t = tables[a]
                stack.append((float(t[int(x)]) if 0 <= x < len(t) else 0.0, k, -1))
            elif op == MAP:
                m = maps[a]
                stack.append((float(m[int(x)]) if 0 <= x < len(m) else x, k, d))
            else:  # IN_SET
                stack.append((1.0 if any(x == float(consts[j]) for j in range(a, a + b)) else 0.0, k, -1))
        else:
            y, ky, dy = stack.pop()
            x, kx, dx = stack.pop()
            if op == AND:
                x_false, y_false = kx and not _truth(x), ky and not _truth(y)
                stack.append((1.0 if kx and ky and _truth(x) and _truth(y) else 0.0,
                              x_false or y_false or (kx and ky), -1))
            elif op == OR:
                x_true, y_true = kx and _truth(x), ky and _truth(y)
                stack.append((1.0 if x_true or y_true else 0.0, x_true or y_true or (kx and ky), -1))
            elif op == COALESCE:
                stack.append((x, True, dx) if kx else (y, ky, dy))
            else:
                known = kx and ky and (dx == dy if c & FLAG_SAME_DIM else True)
                if op in (EQ, NE, LT, LE, GT, GE):
                    v = {EQ: x == y, NE: x != y, LT: x < y, LE: x <= y, GT: x > y, GE: x >= y}[op]
                    stack.append((1.0 if v else 0.0, known, -1))
                elif op in (MIN, MAX):
                    first = (x <= y) if op == MIN else (x >= y)
                    stack.append((x, known, dx) if first else (y, known, dy))
                else:
                    if op == ADD:
                        v = x + y
                    elif op == SUB:
                        v = x - y
                    elif op == MUL:
                        v = x * y
                    elif y != 0:
                        v = x / y
                    else:
                        v, known = 0.0, False
                    stack.append((v, known, dx if c & FLAG_DIM_A else (dy if c & FLAG_DIM_B else -1)))
    return stack[-1] if stack else (1.0, True, -1)


def run_family(scope, condition, amount, consts, tables, maps, pair_line, pair_row, n_lines, n_rows,
               line_f64, line_i32, line_i64, line_u8, row_f64, row_i32, row_u8, pair_u8,
               service_day, service_known, eff_from, eff_to, has_eff, active):
    """One family over its (line, row) pairs, as BatchEngine._evaluate decides it: (outcome int8 per pair:
    0 none, 1 violation, 2 insufficient data; amount float64 per pair, NaN unless a violation with a
    known amount). Per pair: an inactive row gives none; a row with effective dates gives insufficient
    when the date of service is unknown and none outside the dates; then the scope (unknown:
    insufficient, false: none), then the condition (true: violation, unknown: insufficient), and for a
    violation the amount, rounded half-up to the fen. ``scope`` and ``amount`` may be empty programs."""
    n = len(pair_line)
    progs = [np.asarray(x) for x in (scope, condition, amount)]
    tabs = (consts, tables, maps, line_f64, line_i32, line_i64, line_u8, row_f64, row_i32, row_u8, pair_u8)
    for prog in progs:
        check_program(prog, *tabs)
    _check_lengths(n, n_lines, n_rows, line_f64, line_i32, line_i64, line_u8, row_f64, row_i32, row_u8, pair_u8,
                   service_day, service_known, eff_from, eff_to, has_eff, active)
    scope_p, cond_p, amount_p = (x.tolist() for x in progs)
    args = (consts, tables, maps, line_f64, line_i32, line_i64, line_u8, row_f64, row_i32, row_u8, pair_u8)
    outcome = np.zeros(n, np.int8)
    amounts = np.full(n, np.nan)
    for p in range(n):
        li, ri = int(pair_line[p]), int(pair_row[p])
        if not (0 <= li < n_lines and 0 <= ri < n_rows):
            raise IndexError(f"pair {p} = ({li}, {ri}) is outside {n_lines} lines × {n_rows} rows")
        if not active[ri]:
            continue
        undated = False  # a dated row and no date of service: insufficient, unless scope/condition rule it out
        if has_eff[ri]:
            if not service_known[li]:
                undated = True
            elif not (eff_from[ri] <= service_day[li] <= eff_to[ri]):
                continue
        if scope_p:
            v, k, _ = _run_program(scope_p, p, li, ri, *args)
            if not k:
                outcome[p] = OUTCOME_INSUFFICIENT
                continue
            if not _truth(v):
                continue
        v, k, _ = _run_program(cond_p, p, li, ri, *args)
        if not k:
            outcome[p] = OUTCOME_INSUFFICIENT
            continue
        if not _truth(v):
            continue
        if undated:
            outcome[p] = OUTCOME_INSUFFICIENT
            continue
        outcome[p] = OUTCOME_VIOLATION
        if amount_p:
            v, k, _ = _run_program(amount_p, p, li, ri, *args)
            if k:
                amounts[p] = _round_money(v)
    return outcome, amounts


def _check_lengths(n_pairs, n_lines, n_rows, line_f64, line_i32, line_i64, line_u8, row_f64, row_i32, row_u8,
                   pair_u8, service_day, service_known, eff_from, eff_to, has_eff, active) -> None:
    """Every column has the length of its domain (the date-of-service columns may be empty when no row
    has effective dates)."""
    for name, cols, n in (("line", (*line_f64, *line_i32, *line_i64, *line_u8), n_lines),
                          ("row", (*row_f64, *row_i32, *row_u8, eff_from, eff_to, has_eff, active), n_rows),
                          ("pair", tuple(pair_u8), n_pairs)):
        for col in cols:
            if len(col) != n:
                raise ValueError(f"a {name} column has {len(col)} values, expected {n}")
    if len(service_day) != len(service_known) or len(service_day) not in (0, n_lines):
        raise ValueError("service_day / service_known must have one value per line (or none)")
    if len(service_day) == 0 and n_pairs and np.asarray(has_eff, bool).any():
        raise ValueError("rows have effective dates but no date of service was given")


# ---- column and candidate kernels ------------------------------------------------------------------


def take(table, idx):
    """``table[idx]`` for each index (numpy's rule: -1 is the last entry, e.g. a table's null slot);
    an index outside the table raises IndexError."""
    table = np.asarray(table)
    out = np.empty(len(idx), table.dtype)
    m = len(table)
    for i in range(len(idx)):
        j = int(idx[i])
        if not -m <= j < m:
            raise IndexError(f"index {j} is out of bounds for a table of {m}")
        out[i] = table[j]
    return out


def _bit(validity, i) -> bool:
    return len(validity) == 0 or bool((int(validity[i >> 3]) >> (i & 7)) & 1)


def dict_codes(indices, validity, bit_offset, table, out):
    """Codes of a dictionary column: ``table[index]`` for each valid slot, -1 for a null one. ``validity``
    is Arrow's bitmap (bytes, least significant bit first; empty: no nulls), read from bit ``bit_offset``.
    Writes into ``out`` (one int32 per index) and returns it."""
    if len(out) != len(indices):
        raise ValueError("out must have one value per index")
    if len(validity) and len(validity) * 8 < bit_offset + len(indices):
        raise ValueError("validity bitmap too short")
    for i in range(len(indices)):
        if _bit(validity, bit_offset + i):
            j = int(indices[i])
            if not 0 <= j < len(table):
                raise IndexError(f"dictionary index {j} outside a dictionary of {len(table)}")
            out[i] = table[j]
        else:
            out[i] = -1
    return out


def blank_text(offsets, data, validity, bit_offset):
    """For each value of an Arrow string array (``offsets`` into the UTF-8 ``data``, ``validity`` as in
    dict_codes): null, or nothing but whitespace (as ``str.strip`` sees it)?"""
    n = max(len(offsets) - 1, 0)
    if len(validity) and len(validity) * 8 < bit_offset + n:
        raise ValueError("validity bitmap too short")
    if n and (offsets[0] < 0 or offsets[n] > len(data)):
        raise ValueError("offsets outside the data")
    raw = bytes(np.asarray(data, np.uint8))
    out = np.zeros(n, np.bool_)
    for i in range(n):
        if not _bit(validity, bit_offset + i):
            out[i] = True
        else:
            out[i] = not raw[int(offsets[i]):int(offsets[i + 1])].decode("utf-8").strip()
    return out


def floor_days(micros):
    """Whole days since 1970 of microseconds since 1970 (rounded down, also before 1970)."""
    out = np.empty(len(micros), np.int32)
    for i in range(len(micros)):
        out[i] = int(micros[i]) // 86_400_000_000
    return out


def ages(birth, birth_known, service, service_known):
    """Full years of age (age_years) where both dates are known and birth <= service; (ages float64,
    known bool), 0 where not known."""
    n = len(birth)
    if not len(birth_known) == len(service) == len(service_known) == n:
        raise ValueError("ages: columns of different lengths")
    out = np.zeros(n, np.float64)
    known = np.zeros(n, np.bool_)
    for i in range(n):
        if birth_known[i] and service_known[i] and birth[i] <= service[i]:
            known[i] = True
            out[i] = float(age_years(birth[i:i + 1], service[i:i + 1])[0])
    return out, known


def lookup2(a, b, width, values, known, dims):
    """Per line, the entry of a table over pairs of codes: index (a + 1) * width + (b + 1), so code -1
    (null) has a slot of its own; (values float64, known bool, dims int32)."""
    n, m = len(a), len(values)
    if len(b) != n or len(known) != m or len(dims) != m or width < 1:
        raise ValueError("lookup2: inconsistent arguments")
    out, out_known, out_dim = np.empty(n, np.float64), np.empty(n, np.bool_), np.empty(n, np.int32)
    for i in range(n):
        x, y = int(a[i]), int(b[i])
        j = (x + 1) * width + (y + 1)
        if x < -1 or y < -1 or y + 1 >= width or j >= m:
            raise IndexError(f"lookup2: codes ({x}, {y}) outside the table")
        out[i], out_known[i], out_dim[i] = values[j], bool(known[j]), dims[j]
    return out, out_known, out_dim


def ratio(num, num_known, den, den_known):
    """num / den where both are known and den > 0 (daily_cnt); (values float64, known bool), 0 elsewhere."""
    n = len(num)
    if not len(num_known) == len(den) == len(den_known) == n:
        raise ValueError("ratio: columns of different lengths")
    out = np.zeros(n, np.float64)
    known = np.zeros(n, np.bool_)
    for i in range(n):
        if num_known[i] and den_known[i] and den[i] > 0:
            known[i] = True
            out[i] = num[i] / den[i]
    return out, known


def expand_pairs(codes, good, starts, items):
    """Candidate (line, row) pairs: for each good line with a code c >= 0, one pair per row
    ``items[starts[c]:starts[c + 1]]``, in line order then item order; (pair_line, pair_row) int64."""
    n_codes = len(starts) - 1
    if len(good) != len(codes) or n_codes < 0:
        raise ValueError("expand_pairs: inconsistent arguments")
    lines, rows = [], []
    for i in range(len(codes)):
        c = int(codes[i])
        if c >= n_codes:
            raise IndexError(f"expand_pairs: code {c} outside {n_codes} codes")
        if good[i] and c >= 0:
            for j in range(int(starts[c]), int(starts[c + 1])):
                lines.append(i)
                rows.append(int(items[j]))
    return np.array(lines, np.int64), np.array(rows, np.int64)
