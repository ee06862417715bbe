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
