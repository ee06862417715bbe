"""The fused family VM (engine/fused.py, kernels.run_family): the compiled loop and its Python twin agree
on random programs and inputs; batch findings through the VM equal the reference's; the VM's hits
equal the numpy evaluator's to the bit; every family of the demo pack runs through the VM."""
from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimaudit.connectors.claims import load_lines
from claimaudit.dsl import ir
from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.engine import fused, kernels
from claimaudit.engine.batch import BatchEngine, Hits
from claimaudit.engine.kernels import twin
from claimaudit.engine.kernels import twin as isa
from claimaudit.engine.plan import build_plan
from claimaudit.engine.reference import ReferenceEngine
from claimaudit.engine.vector import NotVectorizable
from test_agreement import SCHEMA, keys, make_line

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "rulesets" / "demo"
HAVE_CYTHON = "cython" in kernels.available()
needs_cython = pytest.mark.skipif(not HAVE_CYTHON, reason="compiled kernels not built in this environment")
BACKENDS = kernels.available()
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- the kernel: compiled == twin on random programs ----------------------------------------------------

_FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, 2.5, 0.005, 0.015, 1.005, 2.675, -2.675, 1 / 3, 1e300, -1e300,
                     5e-324, math.nan, math.inf, -math.inf]),
    st.integers(-4, 4).map(float),
    st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def vm_case(draw):
    """Random columns, constants, tables, pairs and three well-formed random programs over them."""
    n_lines, n_rows = draw(st.integers(1, 5)), draw(st.integers(1, 4))

    def cols(n, lo, hi, elem, dtype):
        return [np.array(draw(st.lists(elem, min_size=n, max_size=n)), dtype) for _ in range(draw(st.integers(lo, hi)))]

    small = st.integers(-3, 5)
    line_f64, line_i32 = cols(n_lines, 1, 3, _FLOATS, np.float64), cols(n_lines, 1, 3, small, np.int32)
    line_i64 = cols(n_lines, 0, 2, st.integers(-2 ** 45, 2 ** 45), np.int64)
    line_u8 = cols(n_lines, 1, 3, st.integers(0, 2), np.uint8) + cols(n_lines, 0, 1, st.booleans(), bool)
    row_f64, row_i32 = cols(n_rows, 1, 3, _FLOATS, np.float64), cols(n_rows, 0, 2, small, np.int32)
    row_u8 = cols(n_rows, 0, 2, st.booleans(), bool)
    n_pairs = draw(st.integers(0, 12))
    pair_line = np.array(draw(st.lists(st.integers(0, n_lines - 1), min_size=n_pairs, max_size=n_pairs)), np.int64)
    pair_row = np.array(draw(st.lists(st.integers(0, n_rows - 1), min_size=n_pairs, max_size=n_pairs)), np.int64)
    pair_u8 = cols(n_pairs, 0, 2, st.integers(0, 1), np.uint8)
    consts = np.array(draw(st.lists(_FLOATS, min_size=1, max_size=6)), np.float64)
    tables = [np.array(draw(st.lists(st.integers(0, 1), max_size=6)), np.uint8) for _ in range(draw(st.integers(0, 2)))]
    maps = [np.array(draw(st.lists(st.integers(-2, 5), max_size=6)), np.int32) for _ in range(draw(st.integers(0, 2)))]

    def index(seq, optional=True):
        return draw(st.integers(-1 if optional else 0, len(seq) - 1))

    def leaf():
        loads = [isa.L_F64, isa.L_I32, isa.L_U8, isa.R_F64, isa.CONST] + ([isa.L_I64] if line_i64 else []) + \
            ([isa.P_U8] if pair_u8 else [])
        op = draw(st.sampled_from(loads))
        if op == isa.L_F64:
            return [(op, index(line_f64, False), index(line_u8), index(line_i32))]
        if op == isa.L_I32:
            return [(op, index(line_i32, False), index(line_u8), 0)]
        if op == isa.L_I64:
            return [(op, index(line_i64, False), index(line_u8), 0)]
        if op == isa.L_U8:
            return [(op, index(line_u8, False), index(line_u8), 0)]
        if op == isa.R_F64:
            return [(op, index(row_f64, False), index(row_u8), index(row_i32))]
        if op == isa.P_U8:
            return [(op, index(pair_u8, False), index(line_u8), index(row_u8))]
        return [(op, index(consts, False), draw(st.integers(-1, 2)), draw(st.integers(0, 1)))]

    def expr(depth):
        if depth == 0 or draw(st.integers(0, 3)) == 0:
            return leaf()
        if draw(st.booleans()):
            unary = [isa.NOT, isa.IS_NULL, isa.NOT_NULL, isa.NEG, isa.ABS, isa.IN_SET] + \
                ([isa.TABLE] if tables else []) + ([isa.MAP] if maps else [])
            op = draw(st.sampled_from(unary))
            if op == isa.TABLE:
                ins = (op, index(tables, False), 0, 0)
            elif op == isa.MAP:
                ins = (op, index(maps, False), 0, 0)
            elif op == isa.IN_SET:
                start = draw(st.integers(0, len(consts)))
                ins = (op, start, draw(st.integers(0, len(consts) - start)), 0)
            else:
                ins = (op, 0, 0, 0)
            return expr(depth - 1) + [ins]
        op = draw(st.sampled_from(isa.BINARY))
        return expr(depth - 1) + expr(depth - 1) + [(op, 0, 0, draw(st.integers(0, 7)))]

    def program(may_be_empty):
        if may_be_empty and draw(st.integers(0, 3)) == 0:
            return np.zeros((0, 4), np.int32)
        return np.array(expr(draw(st.integers(0, 4))), np.int32).reshape(-1, 4)

    has_eff = np.array(draw(st.lists(st.booleans(), min_size=n_rows, max_size=n_rows)), bool)
    if has_eff.any() or draw(st.booleans()):
        service_day = np.array(draw(st.lists(st.integers(-3, 3), min_size=n_lines, max_size=n_lines)), np.int32)
        service_known = np.array(draw(st.lists(st.booleans(), min_size=n_lines, max_size=n_lines)), bool)
    else:
        service_day, service_known = np.zeros(0, np.int32), np.zeros(0, bool)
    eff_from = np.array(draw(st.lists(st.integers(-3, 3), min_size=n_rows, max_size=n_rows)), np.int32)
    eff_to = eff_from + np.array(draw(st.lists(st.integers(-1, 3), min_size=n_rows, max_size=n_rows)), np.int32)
    active = np.array(draw(st.lists(st.booleans(), min_size=n_rows, max_size=n_rows)), bool)
    return dict(scope=program(True), condition=program(False), amount=program(True), consts=consts, tables=tables,
                maps=maps, pair_line=pair_line, pair_row=pair_row, n_lines=n_lines, n_rows=n_rows,
                line_f64=line_f64, line_i32=line_i32, line_i64=line_i64, line_u8=line_u8, row_f64=row_f64,
                row_i32=row_i32, row_u8=row_u8, pair_u8=pair_u8, service_day=service_day,
                service_known=service_known, eff_from=eff_from, eff_to=eff_to, has_eff=has_eff, active=active)


def assert_same_results(got, want):
    (o1, a1), (o2, a2) = got, want
    assert o1.dtype == o2.dtype == np.int8 and a1.dtype == a2.dtype == np.float64
    np.testing.assert_array_equal(o1, o2)
    nan1, nan2 = np.isnan(a1), np.isnan(a2)
    np.testing.assert_array_equal(nan1, nan2)
    np.testing.assert_array_equal(a1[~nan1].view(np.int64), a2[~nan2].view(np.int64))  # to the bit, -0.0 too
    assert not (o1 != 1)[~nan1].any(), "an amount on a pair that is not a violation"


@needs_cython
@SETTINGS
@given(case=vm_case())
def test_run_family_cython_equals_twin(case):
    assert_same_results(kernels.backend("cython").run_family(**case), twin.run_family(**case))


@needs_cython
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=vm_case(), times=st.integers(60, 140))
def test_run_family_cython_equals_twin_across_blocks(case, times):
    """Pairs repeated over several VM blocks (256 pairs each), with partial last blocks."""
    if not len(case["pair_line"]):
        return
    case = dict(case, pair_line=np.tile(case["pair_line"], times), pair_row=np.tile(case["pair_row"], times),
                pair_u8=[np.tile(c, times) for c in case["pair_u8"]])
    assert_same_results(kernels.backend("cython").run_family(**case), twin.run_family(**case))


def _simple_case(**over):
    """One line, one row, condition: line_f64[0] > consts[0]; amount: line_f64[0] - consts[0]."""
    case = dict(scope=np.zeros((0, 4), np.int32),
                condition=np.array([(isa.L_F64, 0, 0, -1), (isa.CONST, 0, -1, 1), (isa.GT, 0, 0, 0)], np.int32),
                amount=np.array([(isa.L_F64, 0, 0, -1), (isa.CONST, 0, -1, 1), (isa.SUB, 0, 0, 0)], np.int32),
                consts=np.array([1.0]), tables=[], maps=[], pair_line=np.array([0, 1, 2], np.int64),
                pair_row=np.zeros(3, np.int64), n_lines=3, n_rows=1,
                line_f64=[np.array([3.675, 0.5, 9.0])], line_i32=[], line_i64=[],
                line_u8=[np.array([True, True, False])], row_f64=[], row_i32=[], row_u8=[], pair_u8=[],
                service_day=np.zeros(0, np.int32), service_known=np.zeros(0, bool),
                eff_from=np.array([0], np.int32), eff_to=np.array([0], np.int32), has_eff=np.array([False]),
                active=np.array([True]))
    case.update(over)
    return case


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_family_known_answers(backend):
    k = kernels.backend(backend)
    outcome, amount = k.run_family(**_simple_case())
    assert outcome.tolist() == [1, 0, 2]  # 3.675 > 1: violation; 0.5: none; unknown: insufficient
    assert amount[0] == 2.68 and np.isnan(amount[1:]).all()  # 2.675 half-up (binary 2.67499…) -> 2.68
    # effective dates: the row applies on days 10..20 only
    dated = _simple_case(has_eff=np.array([True]), eff_from=np.array([10], np.int32), eff_to=np.array([20], np.int32),
                         service_day=np.array([15, 21, 0], np.int32), service_known=np.array([True, True, False]))
    assert k.run_family(**dated)[0].tolist() == [1, 0, 2]
    assert k.run_family(**_simple_case(active=np.array([False])))[0].tolist() == [0, 0, 0]
    # scope unknown on line 0 -> insufficient before the condition; false on line 2 -> none, although the
    # condition is unknown there
    scoped = _simple_case(scope=np.array([(isa.L_U8, 0, 1, 0)], np.int32),
                          line_u8=[np.array([True, True, False]), np.array([False, True, True])])
    assert k.run_family(**scoped)[0].tolist() == [2, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad, message", [
    (dict(condition=np.array([(isa.GT, 0, 0, 0)], np.int32)), "needs two slots"),
    (dict(condition=np.array([(isa.L_F64, 0, 0, -1), (isa.L_F64, 0, 0, -1)], np.int32)), "leave one slot"),
    (dict(condition=np.array([(isa.L_F64, 5, 0, -1)], np.int32)), "line_f64 index 5"),
    (dict(condition=np.array([(isa.TABLE, 0, 0, 0)], np.int32)), "empty stack"),
    (dict(condition=np.array([(99, 0, 0, 0)], np.int32)), "unknown opcode"),
    (dict(condition=np.array([(isa.CONST, 0, -1, 1)] * 65 + [(isa.AND, 0, 0, 0)] * 64, np.int32)), "more stack"),
    (dict(line_f64=[np.zeros(2)]), "expected 3"),
    (dict(has_eff=np.array([True])), "no date of service"),
])
def test_run_family_refuses_malformed_input(backend, bad, message):
    with pytest.raises(ValueError, match=message):
        kernels.backend(backend).run_family(**_simple_case(**bad))


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_family_refuses_pairs_outside_the_columns(backend):
    with pytest.raises(IndexError):
        kernels.backend(backend).run_family(**_simple_case(pair_line=np.array([0, 3, 1], np.int64)))


def test_opcodes_are_the_same_in_both_backends():
    if HAVE_CYTHON:
        assert kernels.backend("cython").OPCODES == twin.OPCODES


# ---- batch through the VM: the same findings as the reference, the same hits as numpy ---------------------


class CountingKernels:
    """The selected kernels, counting run_family calls."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def run_family(self, *args, **kwargs):
        self.calls += 1
        return self.inner.run_family(*args, **kwargs)


def run_batch(plan, table, backend, fused_on=True, monkeypatch=None):
    engine = BatchEngine(plan, kernels=backend)
    engine.kernels = CountingKernels(engine.kernels)
    if not fused_on:
        def refuse(*_):
            raise NotVectorizable("fused path switched off for the test")
        monkeypatch.setattr(fused, "compile_family", refuse)
    try:
        hits, cols = engine.run_table(table)
    finally:
        if not fused_on:
            monkeypatch.undo()
    return engine, hits, cols


def assert_same_hits(a: Hits, b: Hits):
    for f in ("line", "rule", "point", "outcome"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    nan_a, nan_b = np.isnan(a.amount), np.isnan(b.amount)
    np.testing.assert_array_equal(nan_a, nan_b)
    np.testing.assert_array_equal(a.amount[~nan_a].view(np.int64), b.amount[~nan_b].view(np.int64))


@pytest.fixture(scope="module")
def demo_plan():
    rs = load_ruleset(PACK)
    assert rs.ok
    return build_plan(rs)


def random_table(n, seed):
    rng = random.Random(seed)
    lines = [make_line(rng.choice, i) for i in range(n)]
    return lines, pa.Table.from_pylist(lines, schema=SCHEMA)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_demo_family_runs_fused(demo_plan, backend, monkeypatch):
    """No family of the demo pack falls back: neither to numpy nor to the reference."""
    def no_reference(*_):
        raise AssertionError("a family fell back to the reference interpreter")
    monkeypatch.setattr(BatchEngine, "_fallback", no_reference)
    lines, table = random_table(400, 7)
    engine, hits, cols = run_batch(demo_plan, table, backend)
    assert engine.fused_fallbacks == []
    assert engine.kernels.calls == len(demo_plan.families)
    assert keys(engine.findings(hits, cols)) == keys(ReferenceEngine(demo_plan.ruleset).run(lines))
    # and on the shipped example claims
    lines, _ = load_lines(PACK / "examples" / "claims.parquet", demo_plan.ruleset.rules)
    engine, hits, cols = run_batch(demo_plan, pa.Table.from_pylist(lines, schema=SCHEMA), backend)
    assert engine.fused_fallbacks == [] and engine.kernels.calls == len(demo_plan.families)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fused_hits_equal_numpy_hits(demo_plan, seed, monkeypatch):
    _, table = random_table(2000, seed)
    _, fused_hits, _ = run_batch(demo_plan, table, BACKENDS[-1])
    engine, numpy_hits, _ = run_batch(demo_plan, table, BACKENDS[-1], fused_on=False, monkeypatch=monkeypatch)
    assert engine.kernels.calls == 0 and len(engine.fused_fallbacks) == len(demo_plan.families)
    assert len(fused_hits) > 100
    assert_same_hits(fused_hits, numpy_hits)


# ---- a pack that reaches every construct of the VM ---------------------------------------------------------

COVERAGE_RULES = '''
ruleset "fused coverage" {
  version "t1"
}

rule F_MINMAX "min max abs" {
  result 明确
  when   med_list_codg startswith "XJ01" and min(prd_days, 10) > 5 and max(cnt, 1) >= 2
  message "m"
  amount abs(pric - 20) * cnt + 0.5
}

rule F_COALESCE_DAYS "coalesce, days_between" {
  result 可疑
  when   med_list_codg startswith "XG0" and coalesce(gend, "9") == "2" and days_between(brdy, service_date) > 3650
  message "m"
}

table dose_cap from "dose_cap.csv" {
  key    code           text match prefix
  column max_daily_dose quantity mg
}

# Effective dates on a table-driven rule: the reference reports a missing date of service only on lines
# the table matches, as the batch executor does (for rules without a lookup it reports it on every line).
rule F_DOSE "quantities, effective dates, scope" {
  result 可疑
  effective 2025-01-01 to 2025-12-31
  lookup k = dose_cap[med_list_codg]
  scope  insutype in {"310", "390"}
  when   daily_dose > k.max_daily_dose or daily_frequency >= 3
  message "m"
  amount inscp_scp_amt * (daily_dose - k.max_daily_dose) / daily_dose
}

rule F_NULLS "null tests, negation" {
  result 可疑
  when   med_list_codg startswith "XB0" and (sin_dos_dscr == null or (used_frqu_dscr != null and -cnt < -3))
  message "m"
  amount -(pric * -cnt)
}

rule F_MED_TYPE_1 "startswith a parameter (two rules, one family)" {
  result 可疑
  when   med_list_codg startswith "XN05" and not (med_type startswith "1")
  message "m"
}

rule F_MED_TYPE_2 "startswith a parameter (two rules, one family)" {
  result 可疑
  when   med_list_codg startswith "XR07" and not (med_type startswith "2")
  message "m"
}

rule F_GEND_1 "in a set parameter (two rules, one family)" {
  result 明确
  when   med_list_codg startswith "XG04" and gend in {"1"}
  message "m"
}

rule F_GEND_2 "in a set parameter (two rules, one family)" {
  result 明确
  when   med_list_codg startswith "XG03" and gend in {"2", "0"}
  message "m"
}

rule F_DIAG_1 "has_diag with constants (two rules, one family)" {
  result 可疑
  when   med_list_codg startswith "XJ01MA" and has_diag({"I63", "E11"})
  message "m"
}

rule F_DIAG_2 "has_diag with constants (two rules, one family)" {
  result 可疑
  when   med_list_codg startswith "XB01AC" and has_diag({"I10"})
  message "m"
}

rule F_DIAG_ONE "has_diag with one constant set" {
  result 可疑
  when   med_list_codg startswith "XA10BA" and not has_diag({"E11", "O24"})
  message "m"
}

rule F_TIME "date-times against a date-time and a date" {
  result 可疑
  when   med_list_codg startswith "XN05AH" and (fee_ocur_time >= 2025-06-01T00:00 or fee_ocur_time < 2024-01-01)
  message "m"
}

rule F_TEXT "text equality across dictionaries" {
  result 可疑
  when   med_list_codg startswith "XZ99" and hosp_lv != "01" and coalesce(bilg_dept_codg, hosp_lv) != "A03"
  message "m"
}

rule F_NUMSET "a number in a set" {
  result 可疑
  when   med_list_codg startswith "0033" and prd_days in {7, 14} and not (cnt in {1, 2})
  message "m"
}

rule F_AGE "three-valued or across unknown ages" {
  result 可疑
  when   med_list_codg startswith "2501" and (age_years >= 18 or age_days <= 28)
  message "m"
}
'''


@pytest.fixture(scope="module")
def coverage_plan(tmp_path_factory):
    d = tmp_path_factory.mktemp("coverage")
    (d / "fused.rules").write_text(COVERAGE_RULES, encoding="utf-8")
    (d / "dose_cap.csv").write_text("code,max_daily_dose\nXA10,1500mg\nXJ01,2g\nXB05,10ml\n", encoding="utf-8")
    rs = load_ruleset(d)
    assert rs.ok, rs.render_diagnostics()
    return build_plan(rs)


def test_coverage_pack_has_the_shapes_it_means_to_test(coverage_plan):
    sizes = sorted(len(f) for f in coverage_plan.families)
    assert sizes.count(2) >= 3  # the two-rule families: their constants differ per row
    shown = coverage_plan.explain()
    for text in ("min(", "coalesce(", "days_between(", "has_diag(", "is_null", "not_null", "startswith $c0"):
        assert text in shown or text.replace("is_null", "== null").replace("not_null", "!= null") in shown, text


@pytest.mark.parametrize("seed", [11, 12])
def test_coverage_pack_agrees_with_the_reference(coverage_plan, seed, monkeypatch):
    def no_reference(*_):
        raise AssertionError("a family fell back to the reference interpreter")
    monkeypatch.setattr(BatchEngine, "_fallback", no_reference)
    lines, table = random_table(1500, seed)
    want = keys(ReferenceEngine(coverage_plan.ruleset).run(lines))
    assert len({k[0] for k in want}) >= 10  # many rules do fire
    for backend in BACKENDS:
        engine, hits, cols = run_batch(coverage_plan, table, backend)
        assert engine.fused_fallbacks == [], engine.fused_fallbacks
        assert engine.kernels.calls == len(coverage_plan.families)
        assert keys(engine.findings(hits, cols)) == want, backend


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_coverage_pack_agrees_on_hypothesis_lines(coverage_plan, data):
    n = data.draw(st.integers(1, 10))
    lines = [make_line(lambda options: data.draw(st.sampled_from(options)), i) for i in range(n)]
    table = pa.Table.from_pylist(lines, schema=SCHEMA)
    want = keys(ReferenceEngine(coverage_plan.ruleset).run(lines))
    for backend in BACKENDS:
        engine = BatchEngine(coverage_plan, kernels=backend)
        hits, cols = engine.run_table(table)
        assert keys(engine.findings(hits, cols)) == want


def test_coverage_pack_hits_equal_numpy_where_numpy_can(coverage_plan, monkeypatch):
    """Families the numpy evaluator also takes give the same hits to the bit."""
    _, table = random_table(1500, 5)
    _, fused_hits, _ = run_batch(coverage_plan, table, BACKENDS[-1])
    engine, numpy_hits, _ = run_batch(coverage_plan, table, BACKENDS[-1], fused_on=False, monkeypatch=monkeypatch)
    assert_same_hits(fused_hits, numpy_hits)


# ---- the compiler ------------------------------------------------------------------------------------------


class _Params:
    """Minimal stand-in for ParamColumns (one row, no parameters)."""

    n, types, values, cache = 1, {}, {}, {}


def _compiler(table: pa.Table):
    from claimaudit.engine.columns import LineColumns
    from claimaudit.engine.vector import FamilyEvaluator
    lines = LineColumns(table)
    ev = FamilyEvaluator(lines, _Params(), np.arange(lines.n), np.zeros(lines.n, np.int64),
                         kernels.backend("python"), {})
    return fused.Compiler(ev)


def _run(compiler, expr):
    prog = fused.compile_program(expr, compiler)
    ops = compiler.ops.kwargs()
    n = compiler.ev.lines.n
    case = _simple_case(condition=prog, amount=np.zeros((0, 4), np.int32), pair_line=np.arange(n, dtype=np.int64),
                        pair_row=np.zeros(n, np.int64), n_lines=n, **ops)
    return twin.run_family(**case)[0].tolist(), prog


def _field(name, type_="text"):
    return ir.Field(name, type_)


def test_text_equality_with_a_string_the_dictionary_lacks():
    table = pa.table({"gend": ["1", "2", None], "feedetl_sn": ["a", "b", "c"], "med_list_codg": ["X", "X", "X"]})
    c = _compiler(table)
    outcome, prog = _run(c, ir.Op("==", (_field("gend"), ir.Const("7", "text")), "bool"))
    assert outcome == [0, 0, 2]  # "7" is no code of the column: never equal; null: unknown
    assert prog[1].tolist() == [isa.CONST, prog[1][1], -1, 1] and c.ops.consts[prog[1][1]] == -2
    outcome, _ = _run(c, ir.Op("!=", (_field("gend"), ir.Const("7", "text")), "bool"))
    assert outcome == [1, 1, 2]


def test_constant_sets_and_prefixes_become_tables():
    table = pa.table({"med_type": ["11", "21", "14", None], "feedetl_sn": list("abcd"),
                      "med_list_codg": ["X"] * 4})
    c = _compiler(table)
    outcome, prog = _run(c, ir.Op("in", (_field("med_type"), ir.Const(("11", "14"), "set:text")), "bool"))
    assert [ins[0] for ins in prog.tolist()] == [isa.L_I32, isa.TABLE]
    assert outcome == [1, 0, 1, 2]
    outcome, prog = _run(c, ir.Op("startswith", (_field("med_type"), ir.Const("2", "text")), "bool"))
    assert [ins[0] for ins in prog.tolist()] == [isa.L_I32, isa.TABLE]
    assert outcome == [0, 1, 0, 2]


def test_what_the_vm_does_not_take_is_refused():
    table = pa.table({"med_type": ["11"], "feedetl_sn": ["a"], "med_list_codg": ["X"], "cnt": [1.0]})
    c = _compiler(table)
    for expr in (ir.Op("<", (_field("med_type"), ir.Const("2", "text")), "bool"),  # ordering of text
                 ir.Call("unknown_fn", (_field("cnt", "number"),), "number"),
                 ir.Op("*", (ir.Field("daily_dose", "quantity"), ir.Field("daily_dose", "quantity")), "quantity"),
                 ir.Op("==", (_field("cnt", "number"), _field("med_type")), "bool")):  # number with text
        with pytest.raises(NotVectorizable):
            fused.compile_program(expr, c)
    with pytest.raises(NotVectorizable):  # a condition must be a truth value
        fused.compile_program(_field("cnt", "number"), c)


def test_list_membership_follows_each_batch_dictionary():
    """A row list matched against line codes is built for the dictionary of the batch at hand. Batches
    free their dictionaries, and a new list of the same size often lands where the old one was (same
    id): a cache keyed by id alone then served the previous batch's codes (found at 7 lines a batch)."""
    from claimaudit.engine.vector import ParamColumns

    params = ParamColumns((("lvs", "list"),), {"lvs": [("02", "03"), ("05",), None]}, 3)
    v = params.value("lvs")
    for i in range(200):
        dictionary = [f"{(i + j) % 7:02d}" for j in range(6)]  # a new list each time, same size
        offsets, items = params.list_in_dictionary(v, dictionary)
        want = [sorted(dictionary.index(s) for s in lst if s in dictionary) for lst in (("02", "03"), ("05",), ())]
        got = [items[offsets[r]:offsets[r + 1]].tolist() for r in range(3)]
        assert got == want, (i, dictionary)
        del dictionary
