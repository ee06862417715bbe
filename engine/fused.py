"""Fused evaluation of a family: its scope, condition and amount compiled to small bytecode programs
that one loop (``kernels.run_family``) runs pair by pair, instead of one numpy pass per operator.

The programs run on a stack machine whose slots hold (value: float64, known: bool, dim: int32); the
instruction set is defined in ``kernels/twin.py``. Operands are read in place:

- line columns (one value per claim line): float64 values, int32 text codes / days / quantity dims,
  int64 microseconds, uint8 known masks and booleans, taken from the batch's cached line values
  (``FamilyEvaluator._field``: fields and derived values, computed once per batch, vectorised);
- row columns (one value per parameter row), as float64 with uint8 known and int32 dims;
- pair columns: what the existing kernels compute per (line, row) pair (``member``, ``prefix_any``
  for ``in``/``startswith``/``has_diag`` against a row's list), uint8;
- constants, and per-dictionary tables: ``x in {"1","2"}`` or ``x startswith "2"`` become a uint8
  table indexed by x's dictionary code; text equality between values of different dictionaries maps
  one side's codes into the other's numbering (strings it does not have become -2: never equal).

Semantics are the reference interpreter's (three-valued logic, dimension checks, division by zero
is unknown). What this compiler cannot express raises ``NotVectorizable``; the batch executor then
uses the numpy evaluator (``vector``), and failing that the reference.
"""
from __future__ import annotations

import numpy as np

from claimaudit.dsl import ir

from .columns import MICROS_PER_DAY, DayCol
from .kernels import twin as isa
from .vector import FamilyEvaluator, NotVectorizable, V, _prefix_matches

EXACT = 2 ** 53  # doubles hold every integer below this exactly (microseconds up to year ~2255)
_NO_CONST = object()


class TextSpace:
    """The numbering of a text value's codes: ``strings[code]``."""

    __slots__ = ("strings", "_index")

    def __init__(self, strings: list):
        self.strings = strings
        self._index = None

    @property
    def index(self) -> dict:
        if self._index is None:
            self._index = {}
            for i, s in enumerate(self.strings):
                self._index.setdefault(s, i)
        return self._index

    def extended(self, more) -> "TextSpace":
        """This numbering, plus the strings of ``more`` it lacks (itself when it lacks none)."""
        missing = [s for s in dict.fromkeys(more) if s not in self.index]
        return TextSpace(self.strings + missing) if missing else self


class Code:
    """A compiled sub-expression: instructions leaving one slot, and what is known statically."""

    __slots__ = ("kind", "ins", "space", "const", "src", "day_ins", "name")

    def __init__(self, kind, ins, space=None, const=_NO_CONST, src=None, day_ins=None, name=None):
        self.kind = kind  # num | bool | text | day | sec | qty | null | list | set
        self.ins = ins  # list of (op, a, b, c)
        self.space = space  # TextSpace of a text value (None for a text constant)
        self.const = const  # the Python value of a constant
        self.src = src  # the V of a field or parameter (line or row domain), for the pair kernels
        self.day_ins = day_ins  # a date-time leaf read at day precision
        self.name = name  # field or parameter name of a leaf

    @property
    def is_const(self) -> bool:
        return self.const is not _NO_CONST


class Operands:
    """The columns, constants and tables the programs of one family refer to, by index."""

    def __init__(self):
        self.line_f64, self.line_i32, self.line_i64, self.line_u8 = [], [], [], []
        self.row_f64, self.row_i32, self.row_u8 = [], [], []
        self.pair_u8, self.consts, self.tables, self.maps = [], [], [], []
        self._index: dict = {}
        self._keep: list = []  # sources of converted arrays, so that their ids stay unique

    def add(self, table: str, source, make=None) -> int:
        key = (table, id(source))
        if key not in self._index:
            lst = getattr(self, table)
            self._index[key] = len(lst)
            lst.append(make(source) if make is not None else source)
            self._keep.append(source)
        return self._index[key]

    def const(self, value: float) -> int:
        self.consts.append(float(value))
        return len(self.consts) - 1

    def kwargs(self) -> dict:
        return dict(consts=np.array(self.consts, np.float64), tables=self.tables, maps=self.maps,
                    line_f64=self.line_f64, line_i32=self.line_i32, line_i64=self.line_i64, line_u8=self.line_u8,
                    row_f64=self.row_f64, row_i32=self.row_i32, row_u8=self.row_u8, pair_u8=self.pair_u8)


def _u8(a) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.dtype == np.bool_:
        return a.view(np.uint8)
    return a if a.dtype == np.uint8 else (a != 0).astype(np.uint8)


def _i32(a) -> np.ndarray:
    return np.ascontiguousarray(a, np.int32)


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, np.float64)


class Compiler:
    """Compiles expressions of one family for one batch (its pairs, its line values)."""

    def __init__(self, ev: FamilyEvaluator, ops: Operands | None = None):
        self.ev = ev
        self.ops = ops if ops is not None else Operands()
        self._spaces: dict = {}

    # ---- operands ----------------------------------------------------------------------------------
    def _all_known(self, known, cache: dict) -> bool:
        """A mask with no unknown value is not read at all (one gather less per pair); checked once."""
        key = ("@fused all known", id(known))
        if key not in cache:
            cache[key] = (known, bool(np.all(known)))  # the mask is kept so that its id stays its own
        return cache[key][1]

    def _line_known(self, v: V) -> int:
        if v.known is None or self._all_known(v.known, self.ev.line_cache):
            return -1
        return self.ops.add("line_u8", v.known, _u8)

    def _row_known(self, v: V) -> int:
        if v.known is None or self._all_known(v.known, self.ev.params.cache):
            return -1
        return self.ops.add("row_u8", v.known, _u8)

    def _space(self, dictionary: list) -> TextSpace:
        key = id(dictionary)
        if key not in self._spaces:
            self._spaces[key] = (dictionary, TextSpace(dictionary))
        return self._spaces[key][1]

    def _const_ins(self, value: float, dim: int = -1, known: bool = True) -> list:
        return [(isa.CONST, self.ops.const(value), dim, int(known))]

    def _static(self, value: bool) -> Code:
        """A truth value known at compile time."""
        return Code("bool", self._const_ins(1.0 if value else 0.0), const=bool(value))

    def _null(self) -> Code:
        return Code("null", self._const_ins(0.0, known=False))

    # ---- expressions -----------------------------------------------------------------------------
    def compile(self, expr) -> Code:
        if isinstance(expr, ir.Const):
            return self._constant(expr)
        if isinstance(expr, ir.Field):
            return self._field(expr.name)
        if isinstance(expr, ir.Param):
            return self._param(expr.name)
        if isinstance(expr, ir.Call):
            return self._call(expr)
        if not isinstance(expr, ir.Op):
            raise NotVectorizable(f"expression {type(expr).__name__}")
        op = expr.op
        if op in ("and", "or"):
            a, b = self.compile(expr.args[0]), self.compile(expr.args[1])
            self._need(a, "bool"), self._need(b, "bool")
            return Code("bool", a.ins + b.ins + [(isa.AND if op == "and" else isa.OR, 0, 0, 0)])
        if op == "not":
            a = self.compile(expr.args[0])
            self._need(a, "bool")
            return Code("bool", a.ins + [(isa.NOT, 0, 0, 0)])
        if op in ("is_null", "not_null"):
            a = self.compile(expr.args[0])
            if a.is_const or not a.ins:
                raise NotVectorizable("null test of a constant should have been folded")
            return Code("bool", a.ins + [(isa.IS_NULL if op == "is_null" else isa.NOT_NULL, 0, 0, 0)])
        if op == "neg":
            a = self.compile(expr.args[0])
            if a.kind not in ("num", "qty"):
                raise NotVectorizable(f"negation of {a.kind}")
            return Code(a.kind, a.ins + [(isa.NEG, 0, 0, 0)])
        a, b = self.compile(expr.args[0]), self.compile(expr.args[1])
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return self._compare(op, a, b)
        if op in ("in", "not in"):
            c = self._member(a, b)
            return c if op == "in" else Code("bool", c.ins + [(isa.NOT, 0, 0, 0)])
        if op == "startswith":
            return self._startswith(a, b)
        if op in ("+", "-", "*", "/"):
            return self._arith(op, a, b)
        raise NotVectorizable(f"operator {op}")

    @staticmethod
    def _need(c: Code, kind: str) -> None:
        if c.kind != kind:
            raise NotVectorizable(f"a {c.kind} value where {kind} is needed")

    def _constant(self, expr: ir.Const) -> Code:
        v = self.ev._const(expr.value, expr.type)
        if v.kind == "null":
            return Code("null", self._const_ins(0.0, known=False), const=None)
        if v.kind == "text":
            return Code("text", [], const=v.val)
        if v.kind == "set":
            return Code("set", [], const=tuple(v.val))
        if v.kind == "bool":
            return Code("bool", self._const_ins(1.0 if v.val else 0.0), const=v.val)
        if v.kind == "qty":
            return Code("qty", self._const_ins(v.val, dim=v.dim), const=v.val)
        if v.kind == "sec":
            return Code("sec", self._const_ins(float(v.val)), const=v.val,
                        day_ins=self._const_ins(float(v.val // MICROS_PER_DAY)))
        if v.kind in ("num", "day"):
            return Code(v.kind, self._const_ins(float(v.val)), const=v.val)
        raise NotVectorizable(f"constant of kind {v.kind}")

    def _field(self, name: str) -> Code:
        v = self.ev._field(name)
        k = self._line_known(v)
        if v.kind in ("num", "qty"):
            dim = self.ops.add("line_i32", v.dim, _i32) if v.kind == "qty" and v.dim is not None else -1
            return Code(v.kind, [(isa.L_F64, self.ops.add("line_f64", v.val, _f64), k, dim)], src=v, name=name)
        if v.kind == "text":
            return Code("text", [(isa.L_I32, self.ops.add("line_i32", v.val, _i32), k, 0)],
                        space=self._space(v.dictionary), src=v, name=name)
        if v.kind == "day":
            return Code("day", [(isa.L_I32, self.ops.add("line_i32", v.val, _i32), k, 0)], src=v, name=name)
        if v.kind == "sec":
            days = self._line_days(name, v)
            return Code("sec", [(isa.L_I64, self.ops.add("line_i64", v.val, lambda a: np.ascontiguousarray(a, np.int64)),
                                 k, 0)],
                        src=v, name=name, day_ins=[(isa.L_I32, self.ops.add("line_i32", days, _i32), k, 0)])
        if v.kind == "bool":
            return Code("bool", [(isa.L_U8, self.ops.add("line_u8", v.val, _u8), k, 0)], src=v, name=name)
        if v.kind == "null":
            return self._null()
        if v.kind == "list":  # only its null test reads it here
            return Code("list", [(isa.L_U8, k, k, 0)] if k >= 0 else self._const_ins(0.0), src=v, name=name)
        raise NotVectorizable(f"field {name} of kind {v.kind}")

    def _line_days(self, name: str, v: V) -> np.ndarray:
        """A date-time field at day precision (the comparison with a date compares the date part)."""
        key = ("@fused days", name)
        cache = self.ev.line_cache
        if key not in cache:
            col = self.ev.lines.get(name)
            if isinstance(col, DayCol) and col.micros is v.val:
                cache[key] = col.days
            else:
                cache[key] = np.floor_divide(v.val, MICROS_PER_DAY).astype(np.int32)
        return cache[key]

    def _uniform(self, name: str):
        """The value of a parameter every row has (a constant lifted out of one rule, a table of one row),
        or _NO_CONST. Such a parameter compiles as the constant: a table over a line dictionary instead
        of a kernel pass over the pairs."""
        params = self.ev.params
        key = ("@fused uniform", name)
        if key not in params.cache:
            vals = params.values.get(name) or [None]
            first = vals[0]
            same = first is not None and all(v == first for v in vals)
            if same and (params.types[name] == "list" or params.types[name].startswith("set:")):
                first = tuple(first) if isinstance(first, (list, tuple)) else (first,)
            params.cache[key] = first if same else _NO_CONST
        return params.cache[key]

    def _param(self, name: str) -> Code:
        const = self._uniform(name)
        if const is not _NO_CONST:
            return self._constant(ir.Const(const, self.ev.params.types[name]))
        v = self.ev.params.value(name)
        k = self._row_known(v)
        if v.kind in ("num", "qty", "day", "bool", "text"):
            ins = [(isa.R_F64, self.ops.add("row_f64", v.val, _f64), k,
                    self.ops.add("row_i32", v.dim, _i32) if v.kind == "qty" else -1)]
            return Code(v.kind, ins, space=self._space(v.dictionary) if v.kind == "text" else None, src=v, name=name)
        if v.kind == "list":  # the value is read by the pair kernels; its null test reads the known mask
            zeros = self.ops.add("row_f64", v, lambda _: np.zeros(self.ev.params.n))
            return Code("list", [(isa.R_F64, zeros, k, -1)], src=v, name=name)
        raise NotVectorizable(f"parameter {name} of kind {v.kind}")

    # ---- text ------------------------------------------------------------------------------------
    def _text_in(self, c: Code, space: TextSpace) -> list:
        """Instructions leaving ``c``'s codes in ``space``'s numbering (strings it lacks: -2)."""
        if c.is_const:
            return self._const_ins(space.index.get(c.const, -2))
        if c.space is space:
            return c.ins
        index = space.index
        table = np.array([index.get(s, -2) for s in c.space.strings], np.int32)
        if np.array_equal(table, np.arange(len(table), dtype=np.int32)):
            return c.ins  # the same numbering
        return c.ins + [(isa.MAP, self.ops.add("maps", table), 0, 0)]

    @staticmethod
    def _larger(a: Code, b: Code) -> TextSpace:
        if a.is_const:
            return b.space
        if b.is_const:
            return a.space
        return a.space if len(a.space.strings) >= len(b.space.strings) else b.space

    def _table(self, c: Code, test) -> Code:
        """A per-code truth table for a text value: ``test(string)``; the null code reads 0."""
        if c.kind != "text" or c.is_const:
            raise NotVectorizable("a table over a constant")
        table = np.array([bool(test(s)) for s in c.space.strings], np.uint8)
        return Code("bool", c.ins + [(isa.TABLE, self.ops.add("tables", table), 0, 0)])

    # ---- operators -------------------------------------------------------------------------------
    def _compare(self, op: str, a: Code, b: Code) -> Code:
        opcode = {"==": isa.EQ, "!=": isa.NE, "<": isa.LT, "<=": isa.LE, ">": isa.GT, ">=": isa.GE}[op]
        kinds = {a.kind, b.kind}
        if "null" in kinds:
            raise NotVectorizable("comparison with a missing field")
        if kinds == {"text"}:
            if op not in ("==", "!="):
                raise NotVectorizable("ordering of text")
            if a.is_const and b.is_const:
                return self._static((a.const == b.const) == (op == "=="))
            space = self._larger(a, b)
            return Code("bool", self._text_in(a, space) + self._text_in(b, space) + [(opcode, 0, 0, 0)])
        if kinds <= {"num", "bool"}:
            return Code("bool", a.ins + b.ins + [(opcode, 0, 0, 0)])
        if kinds == {"qty"}:
            return Code("bool", a.ins + b.ins + [(opcode, 0, 0, isa.FLAG_SAME_DIM)])
        if kinds == {"day"}:
            return Code("bool", a.ins + b.ins + [(opcode, 0, 0, 0)])
        if kinds == {"sec"}:
            self._exact_micros(a), self._exact_micros(b)
            return Code("bool", a.ins + b.ins + [(opcode, 0, 0, 0)])
        if kinds == {"day", "sec"}:
            return Code("bool", self._day(a) + self._day(b) + [(opcode, 0, 0, 0)])
        raise NotVectorizable(f"comparison of {a.kind} with {b.kind}")

    def _day(self, c: Code) -> list:
        if c.kind == "day":
            return c.ins
        if c.kind == "sec" and c.day_ins is not None:
            return c.day_ins
        raise NotVectorizable(f"a {c.kind} value as a date")

    def _exact_micros(self, c: Code) -> None:
        """Date-times compared at microsecond precision must be exact as doubles."""
        if c.is_const:
            if abs(c.const) >= EXACT:
                raise NotVectorizable("date-time constant out of the exact range")
            return
        if c.src is None:
            raise NotVectorizable("a computed date-time")
        key = ("@fused exact", c.name)
        cache = self.ev.line_cache
        if key not in cache:
            vals = c.src.val[np.asarray(c.src.known, bool)] if c.src.known is not None else c.src.val
            cache[key] = not vals.size or max(abs(int(vals.min())), abs(int(vals.max()))) < EXACT
        if not cache[key]:
            raise NotVectorizable("date-times out of the exact range")

    def _member(self, a: Code, b: Code) -> Code:
        if b.kind == "set" and b.is_const:
            members = set(b.const)
            if a.is_const and a.kind in ("text", "num"):
                return self._static(a.const in members)
            if a.kind == "text":
                return self._table(a, lambda s: s in members)
            if a.kind == "num" and not a.is_const:
                if not all(isinstance(m, (int, float)) for m in members):
                    raise NotVectorizable("a number in a set of non-numbers")
                start = len(self.ops.consts)
                for m in members:
                    self.ops.const(float(m))
                return Code("bool", a.ins + [(isa.IN_SET, start, len(members), 0)])
            raise NotVectorizable(f"membership of {a.kind} in a set")
        if b.kind == "list" and b.src is not None and b.src.dom == "row" and self._line_text(a):
            ev = self.ev
            offsets, items = ev.params.list_in_dictionary(b.src, a.src.dictionary)
            out = ev.k.member(ev.pair_line, ev.pair_row, _i32(a.src.val), offsets, items)
            return self._pair(out, a.src, b.src)
        raise NotVectorizable(f"membership of {a.kind} in {b.kind}")

    @staticmethod
    def _line_text(c: Code) -> bool:
        return c.kind == "text" and c.src is not None and c.src.dom == "line" and c.src.dictionary is not None

    def _pair(self, out: np.ndarray, line_v: V | None, row_v: V | None, line_known=None) -> Code:
        """A pair-kernel result, known where its line value and its row value are."""
        if line_known is not None:
            lk = -1 if self._all_known(line_known, self.ev.line_cache) else self.ops.add("line_u8", line_known, _u8)
        else:
            lk = self._line_known(line_v) if line_v is not None else -1
        rk = self._row_known(row_v) if row_v is not None else -1
        return Code("bool", [(isa.P_U8, self.ops.add("pair_u8", out, _u8), lk, rk)])

    def _startswith(self, a: Code, b: Code) -> Code:
        if a.kind != "text":
            raise NotVectorizable(f"startswith on {a.kind}")
        if b.is_const and b.kind in ("text", "set"):
            prefixes = tuple(b.const) if b.kind == "set" else (b.const,)
            if a.is_const:
                return self._static(any(str(a.const).startswith(p) for p in prefixes))
            return self._table(a, lambda s: any(s.startswith(p) for p in prefixes))
        if b.kind in ("list", "text") and b.src is not None and b.src.dom == "row" and self._line_text(a):
            ev = self.ev
            offsets, items, pdict, _ = ev.params.prefix_csr(b.src, False)
            match_offsets, match_items = _prefix_matches(a.src.dictionary, pdict, False)
            out = ev.k.prefix_any(ev.pair_line, ev.pair_row, _i32(a.src.val), self._no_lists(),
                                  np.zeros(1, np.int64), np.zeros(0, np.int32), match_offsets, match_items,
                                  offsets, items)
            return self._pair(out, a.src, b.src)
        raise NotVectorizable(f"startswith {b.kind}")

    def _no_lists(self) -> np.ndarray:
        key = "@fused no lists"
        if key not in self.ev.line_cache:
            self.ev.line_cache[key] = np.full(self.ev.lines.n, -1, np.int32)
        return self.ev.line_cache[key]

    def _arith(self, op: str, a: Code, b: Code) -> Code:
        if a.kind not in ("num", "qty") or b.kind not in ("num", "qty"):
            raise NotVectorizable(f"arithmetic on {a.kind} and {b.kind}")
        opcode = {"+": isa.ADD, "-": isa.SUB, "*": isa.MUL, "/": isa.DIV}[op]
        if a.kind == "num" and b.kind == "num":
            kind, flags = "num", 0
        elif a.kind == "qty" and b.kind == "qty" and op in ("+", "-"):
            kind, flags = "qty", isa.FLAG_SAME_DIM | isa.FLAG_DIM_A
        elif a.kind == "qty" and b.kind == "qty" and op == "/":
            kind, flags = "num", isa.FLAG_SAME_DIM
        elif a.kind == "qty" and b.kind == "num" and op in ("*", "/"):
            kind, flags = "qty", isa.FLAG_DIM_A
        elif a.kind == "num" and b.kind == "qty" and op == "*":
            kind, flags = "qty", isa.FLAG_DIM_B
        else:
            raise NotVectorizable(f"{a.kind} {op} {b.kind}")
        return Code(kind, a.ins + b.ins + [(opcode, 0, 0, flags)])

    # ---- functions -------------------------------------------------------------------------------
    def _call(self, expr: ir.Call) -> Code:
        f = expr.func
        if f == "has_diag":
            return self._has_diag(self.compile(expr.args[0]))
        args = [self.compile(x) for x in expr.args]
        if f == "coalesce":
            return self._coalesce(*args)
        if f == "abs":
            if args[0].kind != "num" or args[0].is_const:
                raise NotVectorizable(f"abs of {args[0].kind}")
            return Code("num", args[0].ins + [(isa.ABS, 0, 0, 0)])
        if f == "days_between":
            a, b = args
            return Code("num", self._day(b) + self._day(a) + [(isa.SUB, 0, 0, 0)])  # b - a, in days
        if f in ("min", "max"):
            a, b = args
            if a.kind != b.kind or a.kind not in ("num", "qty", "day"):
                raise NotVectorizable(f"{f} of {a.kind} and {b.kind}")
            flags = isa.FLAG_SAME_DIM if a.kind == "qty" else 0
            return Code(a.kind, a.ins + b.ins + [(isa.MIN if f == "min" else isa.MAX, 0, 0, flags)])
        raise NotVectorizable(f"function {f}")

    def _coalesce(self, a: Code, b: Code) -> Code:
        if a.kind != b.kind or a.kind not in ("num", "qty", "day", "bool", "text"):
            raise NotVectorizable(f"coalesce of {a.kind} and {b.kind}")
        if a.kind != "text":
            return Code(a.kind, a.ins + b.ins + [(isa.COALESCE, 0, 0, 0)])
        if a.is_const:
            return a  # a text constant is never missing
        base = self._larger(a, b)
        other = a if base is not a.space else b
        space = base.extended([other.const] if other.is_const else other.space.strings)
        return Code("text", self._text_in(a, space) + self._text_in(b, space) + [(isa.COALESCE, 0, 0, 0)],
                    space=space)

    def _has_diag(self, arg: Code) -> Code:
        ev = self.ev
        if arg.is_const and arg.kind in ("text", "set"):
            prefixes = tuple(arg.const) if arg.kind == "set" else (arg.const,)
            key = ("@fused has_diag", prefixes)
            if key not in ev.line_cache:
                ev.line_cache[key] = ev._has_diag(V(arg.kind, "const", arg.const))
            v = ev.line_cache[key]
            return Code("bool", [(isa.L_U8, self.ops.add("line_u8", v.val, _u8), self._line_known(v), 0)])
        if arg.kind in ("list", "text") and arg.src is not None and arg.src.dom == "row":
            main_codes, dictionary, list_ids, list_col, has_code = ev.diag_codes()
            offsets, items, pdict, _ = ev.params.prefix_csr(arg.src, True)
            match_offsets, match_items = _prefix_matches(dictionary, pdict, True)
            lo, li = (list_col.offsets, list_col.items) if list_col is not None else \
                (np.zeros(1, np.int64), np.zeros(0, np.int32))
            out = ev.k.prefix_any(ev.pair_line, ev.pair_row, _i32(main_codes), _i32(list_ids), lo, li,
                                  match_offsets, match_items, offsets, items)
            return self._pair(out, None, arg.src, line_known=has_code)
        raise NotVectorizable("has_diag over a computed value")


def _depth(ins: list) -> int:
    depth = most = 0
    for op, *_ in ins:
        if op in isa.LOADS:
            depth += 1
        elif op in isa.BINARY:
            depth -= 1
        most = max(most, depth)
    return most


def compile_program(expr, compiler: Compiler, kinds=("bool",)) -> np.ndarray:
    """One template expression (``None``: the empty program, true) as an int32 program of shape (n, 4)
    over ``compiler``'s operands. Raises NotVectorizable when the value is not one of ``kinds``."""
    if expr is None:
        return np.zeros((0, 4), np.int32)
    code = compiler.compile(expr)
    if code.kind not in kinds or not code.ins:
        raise NotVectorizable(f"a {code.kind} value where {' or '.join(kinds)} is needed")
    if _depth(code.ins) > isa.STACK_SLOTS:
        raise NotVectorizable("expression too deep for the VM stack")
    return np.array(code.ins, np.int32).reshape(-1, 4)


def compile_family(fam, ev: FamilyEvaluator) -> dict:
    """The programs and operands of one family over ``ev``'s pairs: keyword arguments of
    ``kernels.run_family`` except the pairs, the effective dates and the active rows."""
    compiler = Compiler(ev)
    scope = compile_program(fam.scope, compiler)
    condition = compile_program(fam.condition, compiler)
    amount = compile_program(fam.amount, compiler, kinds=("num",))
    return dict(scope=scope, condition=condition, amount=amount, n_lines=ev.lines.n, n_rows=ev.params.n,
                **compiler.ops.kwargs())
