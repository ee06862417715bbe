"""Vectorised three-valued evaluation of family templates over (line, parameter row) pairs.

Every value is a ``V``: an array (or a scalar for constants) plus a ``known`` mask, over one of
four domains — const, line, row, pair. Line-side sub-expressions (a derived daily dose, an age)
are computed once per line and cached; only when a line value meets a row value are both
gathered to the pairs. Semantics follow the reference interpreter exactly; a construct this
module does not vectorise raises ``NotVectorizable`` and the executor falls back to the reference
for that family.
"""
from __future__ import annotations

import datetime as dt

import numpy as np

from claimaudit.dsl import ir
from claimaudit.dsl.units import Quantity, parse_frequency, parse_quantity

from .columns import EPOCH, MICROS_PER_DAY, DayCol, LineColumns, ListCol, NumCol, TextCol, micros_since_epoch


class NotVectorizable(Exception):
    pass


DIMENSIONS: dict[str, int] = {}


def dim_id(dimension: str) -> int:
    return DIMENSIONS.setdefault(dimension, len(DIMENSIONS))


class V:
    """kind: num | bool | text | day | sec | qty | null | set | list. dom: const | line | row | pair."""

    __slots__ = ("kind", "dom", "val", "known", "dictionary", "dim", "csr")

    def __init__(self, kind, dom, val, known=None, dictionary=None, dim=None, csr=None):
        self.kind, self.dom, self.val, self.known = kind, dom, val, known
        self.dictionary, self.dim, self.csr = dictionary, dim, csr


def _ones(n):
    return np.ones(n, dtype=bool)


# ---- sharing a dictionary between two text values ---------------------------------------------------


def _remap(dictionary: list, joint: dict) -> np.ndarray:
    table = np.empty(len(dictionary) + 1, np.int32)
    for i, s in enumerate(dictionary):
        table[i] = joint.setdefault(s, len(joint))
    table[-1] = -1  # index -1 (null) maps to -1
    return table


def _text_codes(v: V, joint: dict):
    """Codes of a text value in ``joint``'s numbering (constants become one code)."""
    if v.dom == "const":
        return joint.setdefault(v.val, len(joint))
    return _remap(v.dictionary, joint)[v.val]


class FamilyEvaluator:
    """Evaluates one family's templates for a batch: ``lines`` (all lines), ``params`` (the family's
    row values), and the candidate pairs (``pair_line``, ``pair_row``)."""

    def __init__(self, lines: LineColumns, params: "ParamColumns", pair_line, pair_row, kernels, line_cache: dict):
        self.lines, self.params, self.k = lines, params, kernels
        self.pair_line = np.asarray(pair_line, np.int64)
        self.pair_row = np.asarray(pair_row, np.int64)
        self.n_pairs = len(self.pair_line)
        self.line_cache = line_cache  # shared across families of a batch

    def subset(self, idx: np.ndarray) -> "FamilyEvaluator":
        """The same evaluation over some of the pairs (e.g. the violations, for their amounts)."""
        return type(self)(self.lines, self.params, self.pair_line[idx], self.pair_row[idx], self.k, self.line_cache)

    # ---- domains ----
    def to_pair(self, v: V) -> V:
        if v.dom in ("pair", "const"):
            return v
        idx = self.pair_line if v.dom == "line" else self.pair_row
        if v.kind == "list":
            return V("list", "pair", idx, dictionary=v.dictionary, csr=v.csr)  # gather lazily via the index
        return V(v.kind, "pair", v.val[idx], v.known[idx] if v.known is not None else None, v.dictionary,
                 v.dim[idx] if v.dim is not None else None)

    def _align(self, a: V, b: V):
        if a.dom == b.dom or a.dom == "const" or b.dom == "const":
            return a, b
        return self.to_pair(a), self.to_pair(b)

    def known(self, v: V):
        if v.dom == "const":
            return True
        return v.known if v.known is not None else _ones(len(v.val))

    @staticmethod
    def _dom(a: V, b: V) -> str:
        return a.dom if a.dom != "const" else b.dom

    # ---- evaluation ----
    def eval(self, expr) -> V:
        if isinstance(expr, ir.Const):
            return self._const(expr.value, expr.type)
        if isinstance(expr, ir.Field):
            return self._field(expr.name)
        if isinstance(expr, ir.Param):
            return self.params.value(expr.name)
        if isinstance(expr, ir.Call):
            return self._call(expr)
        op = expr.op
        if op in ("and", "or"):
            return self._logic(op, self.eval(expr.args[0]), self.eval(expr.args[1]))
        if op == "not":
            v = self.eval(expr.args[0])
            return V("bool", v.dom, ~v.val if v.dom != "const" else (not v.val), v.known)
        if op in ("is_null", "not_null"):
            v = self.eval(expr.args[0])
            k = self.known(v)
            val = ~k if op == "is_null" else k
            if v.dom == "const":
                return V("bool", "const", bool(val))
            return V("bool", v.dom, val, _ones(len(val)))
        if op == "neg":
            v = self.eval(expr.args[0])
            return V(v.kind, v.dom, -v.val, v.known, dim=v.dim)
        a, b = self.eval(expr.args[0]), self.eval(expr.args[1])
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return self._compare(op, a, b)
        if op in ("in", "not in"):
            v = self._member(a, b)
            return v if op == "in" else V("bool", v.dom, ~v.val, v.known)
        if op == "startswith":
            return self._startswith(a, b)
        return self._arith(op, a, b)

    def _const(self, value, type_):
        if value is None:
            return V("null", "const", None)
        if isinstance(value, Quantity):
            return V("qty", "const", value.base_value, dim=dim_id(value.dimension))
        if isinstance(value, tuple):
            return V("set", "const", value)
        if isinstance(value, bool):
            return V("bool", "const", value)
        if isinstance(value, (int, float)):
            return V("num", "const", float(value))
        if isinstance(value, dt.datetime):
            return V("sec", "const", micros_since_epoch(value))
        if isinstance(value, dt.date):
            return V("day", "const", (value - EPOCH).days)
        return V("text", "const", value)

    # ---- fields and derived values (line domain, cached per batch) ----
    def _field(self, name: str) -> V:
        if name not in self.line_cache:
            self.line_cache[name] = self._line_value(name)
        return self.line_cache[name]

    def _line_value(self, name: str) -> V:
        n = self.lines.n
        col = self.lines.get(name)
        if col is not None:
            return _from_column(col)
        if name == "service_date":
            t = self._field("fee_ocur_time")
            if t.kind == "day":
                return V("day", "line", t.val, t.known)
            col = self.lines.get("fee_ocur_time")
            days = col.days if isinstance(col, DayCol) and col.micros is t.val else self.k.floor_days(t.val)
            return V("day", "line", days, t.known)
        if name in ("age_years", "age_days"):
            d, b = self._field("service_date"), self._field("brdy")
            if name == "age_days":
                known = d.known & b.known & (b.val <= d.val)
                return V("num", "line", (d.val - b.val).astype(np.float64), known)
            ages, known = self.k.ages(b.val, b.known, d.val, d.known)  # known: both dates, birth <= service
            return V("num", "line", ages, known)
        if name == "single_dose":
            return self._per_distinct_text("sin_dos_dscr", _dose)
        if name == "daily_frequency":
            return self._per_distinct_text("used_frqu_dscr", _frequency)
        if name == "daily_dose":
            by_codes = self._daily_dose_by_codes()
            if by_codes is not None:
                return by_codes
            dose, freq = self._field("single_dose"), self._field("daily_frequency")
            # the same operations as units.quantize, element-wise
            return V("qty", "line", np.floor(dose.val * freq.val * 1e9 + 0.5) / 1e9, dose.known & freq.known,
                     dim=dose.dim)
        if name == "daily_cnt":
            cnt, days = self._field("cnt"), self._field("prd_days")
            if cnt.kind == "num" and days.kind == "num":
                val, ok = self.k.ratio(cnt.val, cnt.known, days.val, days.known)  # known: both, and days > 0
                return V("num", "line", val, ok)
            ok = cnt.known & days.known & (days.val > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                return V("num", "line", np.where(ok, cnt.val / np.where(ok, days.val, 1.0), 0.0), ok)
        # a field the file does not have: missing on every line
        return V("null", "line", np.zeros(n, np.int32), np.zeros(n, bool))

    def _per_distinct_text(self, field: str, parse) -> V:
        src = self._field(field)
        n = self.lines.n
        if src.kind != "text":
            return V("qty" if parse is _dose else "num", "line", np.zeros(n), np.zeros(n, bool), dim=np.zeros(n, np.int32))
        vals, ok, dims = _parsed_tables(src.dictionary, parse)
        take = self.k.take
        if parse is _dose:
            return V("qty", "line", take(vals, src.val), take(ok, src.val), dim=take(dims, src.val))
        return V("num", "line", take(vals, src.val), take(ok, src.val))

    def _daily_dose_by_codes(self) -> V | None:
        """daily_dose from the (dose text, frequency text) code pair of each line: the value is computed
        once per pair of distinct texts (the same float operations as per line) and gathered in one pass."""
        if "single_dose" in self.line_cache or "daily_frequency" in self.line_cache:
            return None  # already per line: combine those
        dose_src, freq_src = self._field("sin_dos_dscr"), self._field("used_frqu_dscr")
        if dose_src.kind != "text" or freq_src.kind != "text":
            return None
        d_val, d_ok, d_dim = _parsed_tables(dose_src.dictionary, _dose)
        f_val, f_ok, _ = _parsed_tables(freq_src.dictionary, _frequency)
        # slot 0 of each axis is the null code (-1); the parse tables keep theirs last
        d_val, d_ok, d_dim = (np.roll(x, 1) for x in (d_val, d_ok, d_dim))
        f_val, f_ok = np.roll(f_val, 1), np.roll(f_ok, 1)
        width = len(f_val)
        if len(d_val) * width > max(4 * self.lines.n, 1 << 16):
            return None  # more text pairs than lines: per line is cheaper
        val = (np.floor(np.multiply.outer(d_val, f_val) * 1e9 + 0.5) / 1e9).ravel()  # as units.quantize
        known = np.logical_and.outer(d_ok, f_ok).ravel()
        dims = np.repeat(d_dim, width)
        out, ok, dim = self.k.lookup2(dose_src.val, freq_src.val, width, val, known, dims)
        return V("qty", "line", out, ok, dim=dim)

    # ---- operators ----
    def _logic(self, op, a: V, b: V) -> V:
        if a.dom == "const" and b.dom == "const":
            raise NotVectorizable("constant logic should have been folded")
        a, b = self._align(a, b)
        ka, kb = self.known(a), self.known(b)
        va = a.val if a.dom != "const" else a.val
        vb = b.val if b.dom != "const" else b.val
        if op == "and":
            a_false, b_false = ka & ~np.asarray(va, bool), kb & ~np.asarray(vb, bool)
            known = a_false | b_false | (ka & kb)
            val = ka & kb & np.asarray(va, bool) & np.asarray(vb, bool)
        else:
            a_true, b_true = ka & np.asarray(va, bool), kb & np.asarray(vb, bool)
            known = a_true | b_true | (ka & kb)
            val = a_true | b_true
        return V("bool", self._dom(a, b), val, known)

    def _compare(self, op, a: V, b: V) -> V:
        if a.kind == "null" or b.kind == "null":
            raise NotVectorizable("comparison with a missing field")
        a, b = self._align(a, b)
        dom = self._dom(a, b)
        if dom == "const":
            raise NotVectorizable("constant comparison should have been folded")
        known = self.known(a) & self.known(b)
        if a.kind == "text" or b.kind == "text":
            if op not in ("==", "!="):
                raise NotVectorizable("ordering of text")
            joint: dict = {}
            x, y = _text_codes(a, joint), _text_codes(b, joint)
            val = (x == y) if op == "==" else (x != y)
            return V("bool", dom, np.broadcast_to(val, known.shape).copy(), known)
        if a.kind == "qty" or b.kind == "qty":
            if a.kind != "qty" or b.kind != "qty":
                raise NotVectorizable("quantity against a plain number")
            same = (a.dim == b.dim) if not (a.dom == "const" and b.dom == "const") else True
            known = known & same
        if {a.kind, b.kind} == {"day", "sec"}:
            a = a if a.kind == "day" else _sec_to_day(a)
            b = b if b.kind == "day" else _sec_to_day(b)
        x, y = a.val, b.val
        val = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
               ">=": np.greater_equal}[op](x, y)
        return V("bool", dom, np.asarray(val, bool), known)

    def _member(self, a: V, b: V) -> V:
        if b.dom == "const" and b.kind == "set":
            members = set(b.val)
            if a.kind == "text":
                if a.dom == "const":
                    raise NotVectorizable("constant membership")
                table = np.array([s in members for s in a.dictionary] + [False])
                return V("bool", a.dom, table[a.val], self.known(a))
            if a.kind == "num":
                return V("bool", a.dom, np.isin(a.val, [float(m) for m in members]), self.known(a))
            raise NotVectorizable(f"membership of {a.kind} in a set")
        if b.kind == "list" and b.dom == "row" and a.kind == "text" and a.dom in ("line", "pair"):
            offsets, items = self.params.list_in_dictionary(b, a.dictionary)
            pl = self.pair_line if a.dom == "line" else np.arange(self.n_pairs, dtype=np.int64)
            line_codes = a.val
            out = self.k.member(pl, self.pair_row, np.ascontiguousarray(line_codes, np.int32), offsets, items)
            known = self.known(a)[pl] & self.params.list_known(b)[self.pair_row]
            return V("bool", "pair", out.astype(bool), known)
        raise NotVectorizable(f"membership of {a.kind}/{a.dom} in {b.kind}/{b.dom}")

    def _startswith(self, a: V, b: V) -> V:
        if a.kind != "text" or a.dom == "const":
            raise NotVectorizable("startswith on a constant")
        if b.dom == "const":
            prefixes = tuple(b.val) if b.kind == "set" else (b.val,)
            table = np.array([any(s.startswith(p) for p in prefixes) for s in a.dictionary] + [False])
            return V("bool", a.dom, table[a.val], self.known(a))
        if b.dom == "row" and b.kind in ("list", "text") and a.dom == "line":
            empty_ids = np.full(self.lines.n, -1, np.int32)
            out, known_rows = self._prefix_pairs(a.val, a.dictionary, empty_ids, None, b, upper=False)
            known = self.known(a)[self.pair_line] & known_rows
            return V("bool", "pair", out, known)
        raise NotVectorizable(f"startswith {b.kind}/{b.dom}")

    def _prefix_pairs(self, main_codes, dictionary, list_ids, list_col: ListCol | None, prefixes: V, upper: bool):
        """Kernel call: does a line code (main or list item) start with a prefix of the row."""
        offsets, items, pdict, pknown = self.params.prefix_csr(prefixes, upper)
        match_offsets, match_items = _prefix_matches(dictionary, pdict, upper)
        if list_col is not None:
            lo, li = list_col.offsets, list_col.items
        else:
            lo, li = np.zeros(1, np.int64), np.zeros(0, np.int32)
        out = self.k.prefix_any(self.pair_line, self.pair_row, np.ascontiguousarray(main_codes, np.int32),
                                np.ascontiguousarray(list_ids, np.int32), lo, li, match_offsets, match_items,
                                offsets, items)
        return out.astype(bool), pknown[self.pair_row]

    def _arith(self, op, a: V, b: V) -> V:
        if a.kind not in ("num", "qty") or b.kind not in ("num", "qty"):
            raise NotVectorizable(f"arithmetic on {a.kind} and {b.kind}")
        a, b = self._align(a, b)
        dom = self._dom(a, b)
        known = self.known(a) & self.known(b)
        x, y = a.val, b.val
        dim = None
        kind = "num"
        if a.kind == "qty" and b.kind == "qty":
            same = a.dim == b.dim
            known = known & same
            if op in ("+", "-"):
                kind, dim = "qty", a.dim
        elif a.kind == "qty" or b.kind == "qty":
            kind = "qty"
            dim = a.dim if a.kind == "qty" else b.dim
        with np.errstate(divide="ignore", invalid="ignore"):
            if op == "+":
                val = x + y
            elif op == "-":
                val = x - y
            elif op == "*":
                val = x * y
            else:
                nonzero = np.asarray(y != 0)
                known = known & nonzero
                val = np.where(nonzero, x / np.where(nonzero, y, 1.0), 0.0)
        if dom == "const":
            raise NotVectorizable("constant arithmetic should have been folded")
        if dim is not None and np.ndim(dim) == 0:
            dim = np.full(np.shape(val), dim, np.int32)
        return V(kind, dom, np.asarray(val, np.float64), np.broadcast_to(known, np.shape(val)).copy(), dim=dim)

    def _call(self, expr: ir.Call) -> V:
        f = expr.func
        if f == "has_diag":
            return self._has_diag(self.eval(expr.args[0]))
        args = [self.eval(a) for a in expr.args]
        if f == "coalesce":
            a, b = self._align(*args)
            if b.kind == "null" or a.kind == "null":
                raise NotVectorizable("coalesce with null")
            ka, kb = self.known(a), self.known(b)
            dom = self._dom(a, b)
            if a.kind == "text":
                joint: dict = {}
                x, y = _text_codes(a, joint), _text_codes(b, joint)
                inv = [None] * len(joint)
                for s, i in joint.items():
                    inv[i] = s
                val = np.where(ka, x, y).astype(np.int32)
                either = np.asarray(ka | kb)
                return V("text", dom, np.where(either, val, -1).astype(np.int32), either, inv)
            if a.kind == "num" and b.kind == "num":
                return V("num", dom, np.where(ka, a.val, b.val), ka | kb)
            raise NotVectorizable(f"coalesce of {a.kind}")
        if f == "abs" and args[0].kind == "num":
            return V("num", args[0].dom, np.abs(args[0].val), args[0].known)
        if f == "days_between":
            a, b = self._align(*[x if x.kind == "day" else _sec_to_day(x) for x in args])
            return V("num", self._dom(a, b), (b.val - a.val).astype(np.float64), self.known(a) & self.known(b))
        if f in ("min", "max") and all(x.kind == "num" for x in args):
            a, b = self._align(*args)
            dom = self._dom(a, b)
            if dom == "const":
                return V("num", "const", min(a.val, b.val) if f == "min" else max(a.val, b.val))
            pick = np.minimum if f == "min" else np.maximum
            return V("num", dom, pick(a.val, b.val), self.known(a) & self.known(b))
        raise NotVectorizable(f"function {f}")

    def diag_codes(self):
        """The encounter's diagnosis codes for ``has_diag``, once per batch: the main code and the list
        items trimmed and upper-cased into one dictionary. (main_codes, dictionary, list_ids, list_col,
        has_code)."""
        key = "@has_diag codes"  # not a field name
        if key not in self.line_cache:
            self.line_cache[key] = self._diag_codes()
        return self.line_cache[key]

    def _diag_codes(self):
        main = self._field("dscg_maindiag_code")
        diags = self.lines.get("diag_codes")
        main_dict = main.dictionary if main.kind == "text" else []
        joint: dict = {}
        take = self.k.take
        main_codes = take(_remap([s.strip().upper() for s in main_dict], joint), main.val) if main.kind == "text" \
            else np.full(self.lines.n, -1, np.int32)
        if isinstance(diags, ListCol):
            items = take(_remap([s.strip().upper() for s in diags.dictionary], joint), diags.items) if diags.items.size \
                else diags.items
            list_col = ListCol(diags.ids, diags.offsets, items.astype(np.int32), None)
            list_ids = diags.ids
            non_empty = np.append(np.diff(diags.offsets) > 0, False)  # id -1 (null) reads the last: False
            has_list = take(non_empty, diags.ids) if diags.offsets.size > 1 else np.zeros(self.lines.n, bool)
        else:
            list_col, list_ids, has_list = None, np.full(self.lines.n, -1, np.int32), np.zeros(self.lines.n, bool)
        dictionary = [None] * len(joint)
        for s, i in joint.items():
            dictionary[i] = s
        has_code = (main_codes >= 0) | has_list
        return main_codes, dictionary, list_ids, list_col, has_code

    def _has_diag(self, prefixes: V) -> V:
        main_codes, dictionary, list_ids, list_col, has_code = self.diag_codes()
        if prefixes.dom == "const":
            consts = tuple(prefixes.val) if prefixes.kind == "set" else (prefixes.val,)
            saved = (self.pair_line, self.pair_row, self.params)
            self.pair_line = np.arange(self.lines.n, dtype=np.int64)
            self.pair_row = np.zeros(self.lines.n, np.int64)
            self.params = _ConstPrefixes(consts)
            try:
                out, _ = self._prefix_pairs(main_codes, dictionary, list_ids, list_col,
                                            V("list", "row", None, csr=0), upper=True)
            finally:
                self.pair_line, self.pair_row, self.params = saved
            return V("bool", "line", out, has_code)
        if prefixes.dom != "row":
            raise NotVectorizable("has_diag over a computed value")
        out, known_rows = self._prefix_pairs(main_codes, dictionary, list_ids, list_col, prefixes, upper=True)
        return V("bool", "pair", out, has_code[self.pair_line] & known_rows)


def _sec_to_day(v: V) -> V:
    """A date-time (microseconds) at day precision: comparing with a date compares the date part."""
    if v.dom == "const":
        return V("day", "const", v.val // MICROS_PER_DAY)
    return V("day", v.dom, np.floor_divide(v.val, MICROS_PER_DAY).astype(np.int32), v.known)


def _from_column(col) -> V:
    if isinstance(col, TextCol):
        return V("text", "line", col.codes, col.codes >= 0, col.dictionary)
    if isinstance(col, NumCol):
        return V("num", "line", col.values, col.known)
    if isinstance(col, DayCol):
        if col.micros is not None:
            return V("sec", "line", col.micros, col.known)
        return V("day", "line", col.days, col.known)
    if isinstance(col, ListCol):
        return V("list", "line", col.ids, col.ids >= 0, col.dictionary, csr=col)
    raise TypeError(col)


def _dose(text):
    q = parse_quantity(text)
    return (q.base_value, True, dim_id(q.dimension)) if q is not None else (0.0, False, -1)


def _frequency(text):
    f = parse_frequency(text)
    return (f, True, -1) if f is not None else (0.0, False, -1)


_PARSED: dict = {}  # (parser, text) -> parsed: texts repeat from batch to batch
_PARSED_MAX = 1 << 18


def _parsed_tables(dictionary: list, parse):
    """(values float64, known bool, dims int32) per distinct text, plus a last slot for null (code -1)."""
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.clear()
    parsed = []
    for s in dictionary:
        key = (parse, s)
        p = _PARSED.get(key)
        if p is None:
            p = _PARSED[key] = parse(s)
        parsed.append(p)
    vals = np.array([p[0] for p in parsed] + [0.0], np.float64)
    ok = np.array([p[1] for p in parsed] + [False], bool)
    dims = np.array([p[2] for p in parsed] + [-1], np.int32)
    return vals, ok, dims


_MATCHES: dict = {}  # id(prefix dict) -> (prefix dict, {code: prefix ids}): codes repeat from batch to batch


def _prefix_matches(dictionary: list, prefix_dict: dict, upper: bool):
    """For each code in ``dictionary``: the sorted ids of the prefixes it starts with."""
    entry = _MATCHES.get(id(prefix_dict))
    if entry is None or entry[0] is not prefix_dict or len(entry[1]) > (1 << 20):
        if len(_MATCHES) > 64:
            _MATCHES.clear()
        entry = _MATCHES[id(prefix_dict)] = (prefix_dict, {})  # the dict kept so that its id stays its own
    memo = entry[1]
    lengths = None
    offsets, items = [0], []
    for code in dictionary:
        hits = memo.get(code)
        if hits is None:
            if lengths is None:
                lengths = sorted({len(p) for p in prefix_dict})
            s = (code or "")
            hits = memo[code] = sorted({prefix_dict[s[:n]] for n in lengths if n <= len(s) and s[:n] in prefix_dict})
        items.extend(hits)
        offsets.append(len(items))
    return np.array(offsets, np.int64), np.array(items, np.int32)


class ParamColumns:
    """A family's parameter rows as arrays, built once per family."""

    def __init__(self, params: tuple, values: dict, n_rows: int):
        self.types = dict(params)
        self.values = values
        self.n = n_rows
        self.cache: dict = {}

    def value(self, name: str) -> V:
        if name not in self.cache:
            self.cache[name] = self._build(name)
        return self.cache[name]

    def _build(self, name: str) -> V:
        t = self.types[name]
        vals = self.values[name]
        known = np.array([v is not None for v in vals], bool)
        if t == "number":
            return V("num", "row", np.array([float(v) if v is not None else 0.0 for v in vals], np.float64), known)
        if t == "text":
            dictionary: dict = {}
            codes = np.array([dictionary.setdefault(v, len(dictionary)) if v is not None else -1 for v in vals], np.int32)
            return V("text", "row", codes, known, list(dictionary), csr=name)
        if t.startswith("quantity"):
            return V("qty", "row", np.array([v.base_value if v is not None else 0.0 for v in vals], np.float64), known,
                     dim=np.array([dim_id(v.dimension) if v is not None else -1 for v in vals], np.int32))
        if t == "date":
            return V("day", "row", np.array([(v - EPOCH).days if v is not None else 0 for v in vals], np.int32), known)
        if t == "bool":
            return V("bool", "row", np.array([bool(v) for v in vals]), known)
        if t == "list" or t.startswith("set:"):
            return V("list", "row", None, known, csr=name)
        raise NotVectorizable(f"parameter of type {t}")

    def list_known(self, v: V):
        return v.known

    def _lists(self, name):
        return [tuple(v) if isinstance(v, (tuple, list)) else ((v,) if v is not None else ()) for v in self.values[name]]

    def list_in_dictionary(self, v: V, dictionary: list):
        # one entry per list parameter, for the dictionary it was built for (kept, and compared by identity:
        # an id alone could be reused by the next batch's dictionary once this one is freed)
        key = ("in", v.csr)
        entry = self.cache.get(key)
        if entry is None or entry[0] is not dictionary:
            index = {s: i for i, s in enumerate(dictionary)}
            offsets, items = [0], []
            for lst in self._lists(v.csr):
                items.extend(sorted(index[s] for s in lst if s in index))
                offsets.append(len(items))
            entry = self.cache[key] = (dictionary, np.array(offsets, np.int64), np.array(items, np.int32))
        return entry[1], entry[2]

    def prefix_csr(self, v: V, upper: bool):
        key = ("prefix", v.csr, upper)
        if key not in self.cache:
            pdict: dict = {}
            offsets, items = [0], []
            for lst in self._lists(v.csr):
                ids = {pdict.setdefault(p.upper() if upper else p, len(pdict)) for p in lst}
                items.extend(sorted(ids))
                offsets.append(len(items))
            self.cache[key] = (np.array(offsets, np.int64), np.array(items, np.int32), pdict, v.known)
        return self.cache[key]


class _ConstPrefixes:
    """Stands in for ParamColumns when has_diag takes constant prefixes: one row holding them."""

    def __init__(self, prefixes):
        self.prefixes = prefixes

    def prefix_csr(self, v, upper):
        pdict = {}
        ids = sorted({pdict.setdefault(p.upper() if upper else p, len(pdict)) for p in self.prefixes})
        return np.array([0, len(ids)], np.int64), np.array(ids, np.int32), pdict, np.ones(1, bool)
