"""The per-request index kernels of the inline screener's cross-line rules (engine/kernels/_cross.pyx) give
exactly what their Python twin (cross_twin.py) gives, and the known answers: every line's time, every key
field's facts (remembered or looked up on a miss), the pools present and their lines, whether a line is
decided by its code alone — on random requests, lines that are dict subclasses, lines without a time, a code
or a field; and a line found by identity wherever the search starts."""
from __future__ import annotations

import datetime as dt
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimaudit.engine.inline_cross import pool_ids as P
from claimaudit.engine.kernels import cross, cross_twin

_cross = pytest.importorskip("claimaudit.engine.kernels._cross")

NO_FACTS = (P(()), (), None)  # pool ids are packed (P): the index reads them as C ints
CODES = ["A", "B", "C", "D", "E", "F", None]
PLAIN_C = ((5, 1), ("psn_no",), ("pair",))  # plain pairs: partner pools, fields of their groups
PLAIN_E = ((7,), ("psn_no", "mdtrt_id"), ("pair",))
# what a code means: the pools it belongs to, its candidates, its plain pairs
FACTS = {"A": (P((0, 1)), ("a",), None), "B": (P((1,)), (), None), "C": (P((5,)), (), PLAIN_C),
         "D": (P((2, 0, 3)), (), None), "E": (P(()), (), PLAIN_E), "F": (P((4, 4)), (), None)}  # F: a pool listed twice


class Line(dict):
    """A line that is not exactly a dict (the kernel falls back to ``.get``)."""


def _miss_recorder(calls: list):
    def miss(field, code):
        calls.append((field, code))
        return FACTS[code] if field == "med_list_codg" else (P((10 + ord(code[0]),)), (), None)
    return miss


@st.composite
def requests(draw):
    n = draw(st.integers(0, 30))
    lines = []
    for k in range(n):
        line = {"feedetl_sn": f"L{k}",
                "fee_ocur_time": draw(st.sampled_from([None, dt.datetime(2025, 1, 1, 9), dt.date(2025, 1, 2)])),
                "med_list_codg": draw(st.sampled_from(CODES)),
                "bilg_dr_codg": draw(st.sampled_from(["X1", "Y2", None])),
                "psn_no": draw(st.sampled_from(["P1", None])), "mdtrt_id": draw(st.sampled_from(["E1", None]))}
        if draw(st.booleans()):
            line.pop("bilg_dr_codg")  # a field not there at all
        lines.append(Line(line) if draw(st.integers(0, 4)) == 0 else line)
    remembered = draw(st.sets(st.sampled_from(["A", "B", "C", "D", "E", "F"])))
    return lines, remembered


@settings(max_examples=300, deadline=None)
@given(request=requests())
def test_the_index_equals_the_twin_and_the_known_answers(request):
    lines, remembered = request
    fields = ("med_list_codg", "bilg_dr_codg")
    results = []
    for kernel in (_cross, cross_twin):
        memos = ({c: FACTS[c] for c in remembered}, {})
        calls: list = []
        times, facts, present = kernel.index_request(lines, fields, memos, _miss_recorder(calls), NO_FACTS)
        pools = {pid: present.members(pid) for pid in (0, 1, 2, 3, 4, 5, 7, 10 + ord("X"), 99, -1, "0", 2 ** 40)}
        quiet = [kernel.passed_over(facts[0], times, present, line, i, NO_FACTS) for i, line in enumerate(lines)]
        contains = {pid: pid in present for pid in pools}
        disjoint = [present.isdisjoint(pids) for pids in ((), (99,), (0, 99), (1,), (4, "4"))]
        results.append((times, facts, list(present), len(present), pools, contains, disjoint, quiet, calls))
    compiled, twin = results
    assert compiled == twin
    times, facts, present, count, pools, contains, disjoint, quiet, calls = twin
    # known answers: times as sent, facts per field, pools of the timed lines only, misses for unknown codes
    assert times == [line.get("fee_ocur_time") for line in lines]
    for k, line in enumerate(lines):
        code = line.get("med_list_codg")
        assert facts[0][k] is NO_FACTS if code is None else facts[0][k] == FACTS[code]
    want: dict = {}
    for f in range(2):
        for k in range(len(lines)):
            if times[k] is not None:
                for pid in array("i", facts[f][k][0]):
                    if k not in want.setdefault(pid, []):
                        want[pid].append(k)
    assert present == sorted(want) and count == len(want)
    assert {pid: m for pid, m in pools.items() if m} == want
    assert contains == {pid: pid in want for pid in pools}
    assert disjoint == [not any(p in want for p in pids) for pids in ((), (99,), (0, 99), (1,), (4, "4"))]
    assert {c for f, c in calls if f == "med_list_codg"} <= set(FACTS) - remembered
    for i, line in enumerate(lines):
        got = facts[0][i]
        plain = got[2]
        expected = got is not NO_FACTS and not got[1] and (plain is None or (
            times[i] is not None and not (set(plain[0]) & set(present)) and all(line.get(n) is not None for n in plain[1])))
        assert quiet[i] == expected


def test_a_pool_lists_timed_lines_only_in_input_order():
    facts = [[(P((3,)), (), None), (P((3, 2)), (), None), (P((3,)), (), None)]]
    for kernel in (_cross, cross_twin):
        lines = [{"fee_ocur_time": dt.date(2025, 1, 1)}, {"fee_ocur_time": None}, {"fee_ocur_time": dt.date(2025, 1, 2)}]
        memo = {str(k): facts[0][k] for k in range(3)}
        for k, line in enumerate(lines):
            line["med_list_codg"] = str(k)
        _, _, present = kernel.index_request(lines, ("med_list_codg",), (memo,), None, NO_FACTS)
        assert present.members(3) == [0, 2]
        assert present.members(2) == [] and 2 not in present  # a line without a time is in no pool
        assert present.members(3) is not present.members(3)  # each caller may sort its own list


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 12), which=st.data())
def test_position_finds_a_line_by_identity(n, which):
    lines = [{"feedetl_sn": "same"} for _ in range(n)]  # equal dicts: only identity tells them apart
    k = which.draw(st.integers(0, n - 1))
    start = which.draw(st.integers(0, n + 2))
    for kernel in (_cross, cross_twin):
        assert kernel.position(lines, lines[k], start) == k
        assert kernel.position(lines, {"feedetl_sn": "same"}, start) == -1
    twice = [lines[0], lines[0]]  # the same line twice: the first one from where the search starts
    assert [_cross.position(twice, lines[0], s) for s in (0, 1, 2)] == [0, 1, 0]
    assert [cross_twin.position(twice, lines[0], s) for s in (0, 1, 2)] == [0, 1, 0]


@settings(max_examples=200, deadline=None)
@given(request=requests(), picks=st.sets(st.integers(0, 29)), kind=st.sampled_from(["set", "frozenset", "list", "none"]))
def test_the_current_lines_are_found_as_the_twin_finds_them(request, picks, kind):
    lines, _ = request
    ids = {f"L{k}" for k in picks}
    current = {"set": set, "frozenset": frozenset, "list": sorted, "none": lambda _: None}[kind](ids)
    want = [k for k in range(len(lines)) if current is None or f"L{k}" in ids]
    assert _cross.current_lines(lines, current) == cross_twin.current_lines(lines, current) == want
    if lines:
        lines[-1].pop("feedetl_sn")  # a line without an id: the same error from both
        for kernel in (_cross, cross_twin):
            with pytest.raises(KeyError):
                kernel.current_lines(lines, set(ids))


class _Rule(str):
    """A rule as decide_current sees it: its name, and its kernel shape (None: decided by ``_decide``)."""

    def __new__(cls, name, shape):
        rule = super().__new__(cls, name)
        rule.shape = shape
        return rule


R = {name: _Rule(name, shape) for name, shape in (("rA", None), ("rC", ("pair",)), ("rD1", ("window",)),
                                                   ("rD2", None), ("rD3", ("pair", "plain")), ("rE", ("requires",)))}
# what a code means to decide_current: pools, candidates ((rule, points), ...), plain pairs (partner pools,
# fields of their groups, ((rule, points), ...))
DECIDE_FACTS = {"A": (P((0, 1)), ((R["rA"], "pA"),), None), "B": (P((1,)), (), None),
                "C": (P((5,)), (), ((5, 1), ("psn_no",), ((R["rC"], "pC"),))),
                "D": (P((2, 0, 3)), ((R["rD1"], "pD1"), (R["rD2"], "pD2")), ((7,), ("mdtrt_id",), ((R["rD3"], "pD3"),))),
                "E": (P(()), (), ((7,), ("psn_no", "mdtrt_id"), ((R["rE"], "pE"),))), "F": (P((4, 4)), (), None)}
SLOTS = {"rA": 2, "rC": 0, "rD1": 3, "rD2": 1, "rD3": 4, "rE": 5}


class _Request:
    """What decide_current reads of a CrossRequest: its index, ``_decide`` (a rule without a kernel shape flags
    every second line it is asked about), the kernel's verdicts (``decide_rows``: a shaped rule flags every
    third line) turned into hits by ``verdicts``, the timeline (made once), and ``decisions`` (for a line
    without a code), each call recorded."""

    def __init__(self, kernel, lines):
        self.lines, self.calls, self._timeline = lines, [], None
        self.times, self.facts, self.present = kernel.index_request(
            lines, ("med_list_codg",), ({},), lambda field, code: DECIDE_FACTS[code], NO_FACTS)

    def _decide(self, c, i, points, hits):
        assert c.shape is None
        self.calls.append(("decide", c, i, points))
        if (i + SLOTS[c]) % 2 == 0:
            hits.append((SLOTS[c], c, i))

    def timeline(self):
        if self._timeline is None:
            self.calls.append(("timeline",))
            self._timeline = ("timeline of", id(self))
        return self._timeline

    def decide_rows(self, tl, shape, points, i):
        assert tl == ("timeline of", id(self))
        c = next(r for r in R.values() if r.shape == shape)
        self.calls.append(("decide", c, i, points))
        return [(points, (), True)] if (i + SLOTS[c]) % 3 == 0 else None

    def verdicts(self, c, i, got, hits):
        self.calls.append(("verdicts", c, i, got))
        hits.append((SLOTS[c], c, i))

    def decisions(self, line, i):
        self.calls.append(("decisions", i))
        return [(9, "whole line", i)] if i % 3 == 0 else []


@settings(max_examples=300, deadline=None)
@given(request=requests(), picks=st.sets(st.integers(0, 29)))
def test_decide_current_equals_the_twin(request, picks):
    lines, _ = request
    indexes = sorted(k for k in picks if k < len(lines))
    got = []
    for kernel in (_cross, cross_twin):
        req = _Request(kernel, lines)
        got.append((kernel.decide_current(req, indexes, NO_FACTS, lambda hit: hit[0], req.decide_rows), req.calls))
    assert got[0] == got[1]
    out, calls = got[0]
    assert calls.count(("timeline",)) <= 1  # made once per request, when a shaped rule first needs it
    for i, hits in out:  # each line's hits in rule order, only lines with hits
        assert hits and [h[0] for h in hits] == sorted(h[0] for h in hits)
    for k in indexes:  # a line is passed over only when it has no candidate and its plain pairs meet no partner
        asked = [c for c in calls if (c[0] == "decide" and c[2] == k) or (c[0] == "decisions" and c[1] == k)]
        code = lines[k].get("med_list_codg")
        if code is None:
            assert asked == [("decisions", k)]
        elif DECIDE_FACTS[code][1]:
            assert {c[1] for c in asked} >= {c for c, _ in DECIDE_FACTS[code][1]}
    for call in calls:  # the kernel's verdicts reach the request only for the lines it flags
        if call[0] == "verdicts":
            assert (call[2] + SLOTS[call[1]]) % 3 == 0


def test_the_backend_follows_the_switch(monkeypatch):
    assert cross.backend("python") is cross_twin
    assert cross.backend("cython") is _cross
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "python")
    assert cross.backend() is cross_twin
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "cython")
    assert cross.backend() is _cross
    from claimaudit.engine.kernels import crossrender, crossrender_twin
    assert crossrender.backend("python") is crossrender_twin
    assert crossrender.backend("cython").__name__.endswith("_crossrender")


# ---- the decision kernel (_crossdecide.pyx and crossdecide_twin.py) ---------------------------------------

_crossdecide = pytest.importorskip("claimaudit.engine.kernels._crossdecide")


def _verdicts(kernel, req, shape, points, i):
    """The kernel's verdicts and a pair's partners, on its own timeline of the request."""
    tl = kernel.Timeline(req.lines, req.times, req.present)
    got = kernel.decide(tl, shape, points, i)
    partners = [kernel.partners(tl, shape, pt.fast, pp, i) for pt, pp in points] if shape[0] == 0 else None
    return got, partners


def test_the_decision_kernel_equals_its_twin():
    """Both kernels give the same verdicts and partners on random requests of the history pack and the
    benchmark pack's rule shapes, dates and timezone-aware times included."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tests"))
    from hypothesis import HealthCheck
    from test_inline_cross import _odd_times, requests

    from claimaudit.dsl.ruleset import load_ruleset
    from claimaudit.engine.inline import Screener
    from claimaudit.engine.kernels import crossdecide_twin
    from claimaudit.engine.plan import build_plan

    rs = load_ruleset(root / "rulesets" / "demo_history")
    screener = Screener(build_plan(rs), stages=None)
    cross = screener.cross
    compared = [0]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(request=requests(), odd=st.integers(0, 4))
    def check(request, odd):
        lines, current = request
        if odd < 2:
            lines = _odd_times(lines, odd)
        req = cross.request(lines, None)
        for i in range(len(lines)):
            for f in range(len(cross.key_fields)):
                facts = req.facts[f][i]
                cands = list(facts[1]) + (list(facts[2][2]) if facts[2] else [])
                for c, points in cands:
                    if c.shape is not None:
                        assert _verdicts(_crossdecide, req, c.shape, points, i) == \
                            _verdicts(crossdecide_twin, req, c.shape, points, i)
                        compared[0] += 1
            for c in cross.compiled:
                if c.key_field is None and c.shape is not None:
                    assert _verdicts(_crossdecide, req, c.shape, c.points_all, i) == \
                        _verdicts(crossdecide_twin, req, c.shape, c.points_all, i)
                    compared[0] += 1

    check()
    assert compared[0] > 100


# ---- assembling a violation (_crossrender.pyx and crossrender_twin.py) ----------------------------------

_crossrender = pytest.importorskip("claimaudit.engine.kernels._crossrender")


class _Env:
    def __init__(self, line):
        self.line = line

    def field(self, name):
        v = self.line.get(name)
        return ("missing", name) if v is None else v


_VALUES = st.one_of(st.none(), st.text(max_size=4), st.integers(-5, 5), st.floats(allow_nan=False, width=32),
                    st.just(dt.datetime(2025, 3, 1, 9, 30)), st.just(dt.date(2025, 3, 2)))
_FIELDS = ("feedetl_sn", "mdtrt_id", "psn_no", "fee_ocur_time", "hilist_name", "cnt", "bilg_dr_codg")


@settings(max_examples=300, deadline=None)
@given(line=st.dictionaries(st.sampled_from(_FIELDS), _VALUES), others=st.lists(st.dictionaries(
    st.sampled_from(_FIELDS), _VALUES), max_size=3), subclass=st.booleans(),
    message=st.lists(st.one_of(st.text(max_size=3), st.tuples(st.sampled_from((None, "hilist_name", "cnt")),
                                                                 st.just(0))), max_size=5))
def test_a_violation_is_assembled_as_the_twin_does(line, others, subclass, message):
    """The same fields, in the same order: message parts (texts, claim fields shown as themselves, functions),
    identifiers, evidence (a field's text as itself, other values formatted), involved lines and finding id."""
    from claimaudit.engine.kernels import crossrender_twin

    line = Line(line) if subclass else line
    parts = tuple(p if type(p) is str else (p[0], lambda env, involved, extra: f"<{len(involved)}:{extra}>")
                  for p in message)
    got = []
    for kernel in (_crossrender, crossrender_twin):
        template = {"rule_code": "R", **dict.fromkeys(("finding_id", "message", "line_id", "evidence", "lines"))}
        program = kernel.Program(template, ("hilist_name", "cnt", "fee_ocur_time"), repr, lambda t: f"day {t!r}",
                                 "违规项", "涉及项")
        values = program.values(line, _Env(line), parts, tuple(others), "x", "R\x1f-\x1f", None,
                                (("k.text", "t"),), 1.5, "f")
        got.append(list(values.items()))
        assert template["finding_id"] is None  # the template is copied, never written to
    assert got[0] == got[1]


class _Unknown:
    def __init__(self, reason):
        self.reason = reason


class _Found:
    pass


_AMOUNTS = st.one_of(st.none(), st.floats(-1e9, 1e9), st.floats(allow_nan=False, allow_infinity=False),
                     st.sampled_from([0.005, 2.675, -2.675, 1e-7, -0.0, 12.5, 20.0, 1e16]))


@settings(max_examples=300, deadline=None)
@given(value=_AMOUNTS, by_field=st.booleans(), unknown_window=st.booleans(), reads_row=st.booleans(),
       extra=st.booleans(), marked=st.booleans(), point_known=st.booleans())
def test_a_whole_violation_is_made_as_the_twin_makes_it(value, by_field, unknown_window, reads_row, extra, marked,
                                                         point_known):
    """The kernel's violation (row and window for the closures, amount rounded half-up to the fen, its
    formula, the message's extra values, the finding and its profile mark) equals the twin's, and the amount is
    values.round_money of the amount."""
    from claimaudit.engine.kernels import crossrender_twin
    from claimaudit.engine.values import round_money

    line = {"feedetl_sn": "L1", "mdtrt_id": "E1", "hilist_name": "药", "inscp_scp_amt": value}
    window = _Unknown("no time") if unknown_window else {"w.count": 3.0}
    part = ("P", "R\x1fk:1\x1f", (("k.text", "t"),), {"k.max": 2.0}, "原文", "来源",
            ("第", (None, lambda env, involved, extra: str(extra)), "次"), ((None, lambda env: env.line["cnt"]),))
    made = []
    for kernel in (_crossrender, crossrender_twin):
        program = kernel.Program({"finding_id": None, "message": None, "amount": None, "amount_formula": None},
                                 ("inscp_scp_amt",), lambda v: f"<{v}>", str, 1, 2)
        points = {7: part} if point_known else {}
        asked = []
        program.bind(points, lambda index: asked.append(index) or part, ("w.count",), ("w.count",), reads_row,
                     "inscp_scp_amt" if by_field else None,
                     lambda env: _Unknown("amount is missing") if value is None else value, "inscp_scp_amt",
                     (lambda amount, text, source: {"amount": amount, "text": text}) if extra else None, _Found,
                     _Unknown, (lambda f: (f, "marked")) if marked else None)
        env = _Env(dict(line, cnt=2.0))
        env.row = "before"
        try:
            got = program.violation(env, 7, window, ({"feedetl_sn": "L0"},))
        except (ValueError, OverflowError) as e:  # a value round_money refuses: refused alike
            made.append((type(e), asked))
            continue
        found = got[0] if marked else got
        assert (type(got[1]) if marked else None, type(found)) == ((str if marked else None), _Found)
        row = env.row if reads_row else None
        made.append((found.__dict__, row if not reads_row else {k: (v.reason if isinstance(v, _Unknown) else v)
                                                                  for k, v in row.items()}, asked))
        if value is not None:
            assert found.__dict__["amount"] == round_money(value)
        if not reads_row:
            assert env.row == "before"  # left as it was: nothing reads it
    assert made[0] == made[1]
