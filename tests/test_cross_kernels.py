"""The per-request index kernels of the inline screener's cross-line rules (engine/kernels/_cross.pyx) give
exactly what their Python twin (cross_twin.py) gives, and the known answers: every line's time, every key
field's facts (remembered or looked up on a miss), the pools present, a pool's lines, whether a line is
decided by its code alone — on random requests, lines that are dict subclasses, lines without a time, a code
or a field; and a line found by identity wherever the search starts."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimaudit.engine.kernels import cross, cross_twin

_cross = pytest.importorskip("claimaudit.engine.kernels._cross")

NO_FACTS = ((), (), None)
CODES = ["A", "B", "C", "D", "E", None]
PLAIN_C = (frozenset({5, 1}), ("psn_no",), ("pair",))  # plain pairs: partner pools, fields of their groups
PLAIN_E = (frozenset({7}), ("psn_no", "mdtrt_id"), ("pair",))
# what a code means: the pools it belongs to, its candidates, its plain pairs
FACTS = {"A": ((0, 1), ("a",), None), "B": ((1,), (), None), "C": ((5,), (), PLAIN_C), "D": ((2, 0, 3), (), None),
         "E": ((), (), PLAIN_E)}


class Line(dict):
    """A line that is not exactly a dict (the kernel falls back to ``.get``)."""


def _miss_recorder(calls: list):
    def miss(field, code):
        calls.append((field, code))
        return FACTS[code] if field == "med_list_codg" else ((10 + ord(code[0]),), (), None)
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
    remembered = draw(st.sets(st.sampled_from(["A", "B", "C", "D", "E"])))
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
        pools = {pid: kernel.pool_members(facts, times, pid) for pid in (0, 1, 2, 3, 5, 7, 10 + ord("X"), 99)}
        quiet = [kernel.passed_over(facts[0], times, present, line, i, NO_FACTS) for i, line in enumerate(lines)]
        results.append((times, facts, present, pools, quiet, calls))
    compiled, twin = results
    assert compiled == twin
    times, facts, present, pools, quiet, calls = twin
    # known answers: times as sent, facts per field, pools of the timed lines only, misses for unknown codes
    assert times == [line.get("fee_ocur_time") for line in lines]
    for k, line in enumerate(lines):
        code = line.get("med_list_codg")
        assert facts[0][k] is NO_FACTS if code is None else facts[0][k] == FACTS[code]
    want: dict = {}
    for f in range(2):
        for k in range(len(lines)):
            if times[k] is not None:
                for pid in facts[f][k][0]:
                    want.setdefault(pid, []).append(k)
    assert present == set(want)
    assert {pid: m for pid, m in pools.items() if m} == want
    assert {c for f, c in calls if f == "med_list_codg"} <= set(FACTS) - remembered
    for i, line in enumerate(lines):
        got = facts[0][i]
        plain = got[2]
        expected = got is not NO_FACTS and not got[1] and (plain is None or (
            times[i] is not None and not (plain[0] & present) and all(line.get(n) is not None for n in plain[1])))
        assert quiet[i] == expected


def test_pool_ids_are_compared_by_identity():
    pid = int("1000")  # a pool id is the very object the facts hold; an equal int made elsewhere is not it
    facts = [[((pid,), (), None)]]
    for kernel in (_cross, cross_twin):
        assert kernel.pool_members(facts, [dt.date(2025, 1, 1)], pid) == [0]
        assert kernel.pool_members(facts, [None], pid) == []  # a line without a time is in no pool


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


def test_the_backend_follows_the_switch(monkeypatch):
    assert cross.backend("python") is cross_twin
    assert cross.backend("cython") is _cross
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "python")
    assert cross.backend() is cross_twin
    monkeypatch.setenv("CLAIMAUDIT_KERNELS", "cython")
    assert cross.backend() is _cross


# ---- the decision kernel (_crossdecide.pyx and crossdecide_twin.py) ---------------------------------------

_crossdecide = pytest.importorskip("claimaudit.engine.kernels._crossdecide")


def _verdicts(kernel, req, shape, points, i):
    """The kernel's verdicts and a pair's partners, on its own timeline of the request."""
    tl = kernel.Timeline(req.lines, req.times, req.facts, req.present)
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
