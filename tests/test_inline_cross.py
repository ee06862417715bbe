"""The inline screener's compiled cross-line rules (engine/inline_cross.py): every rule of the history pack and
of a pack shaped like the benchmark's (plus the constructs the history pack does not use) is compiled, not
left to the reference, and the compiled decisions render exactly the reference's findings (every field, not
only the agreement key) on every example and on random requests with history: ties in time, lines without
time or patient, encounters mixing patients, the same code on both sides of a pair, rolling windows at the
N-th day, missing quantities, lines sharing a place in the total order."""
from __future__ import annotations

import datetime as dt
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimaudit.dsl.ruleset import load_ruleset
from claimaudit.dsl.schema import CLAIM_FIELDS
from claimaudit.engine import inline_cross
from claimaudit.engine.findings import INSUFFICIENT, ROLE_INVOLVED, VIOLATION
from claimaudit.engine.inline import Screener
from claimaudit.engine.plan import build_plan
from claimaudit.engine.reference import ReferenceEngine
from claimaudit.engine.testing import example_lines

ROOT = Path(__file__).resolve().parents[1]

# A pack shaped like benches/out/ruleset_history (gen_history.py), with the constructs rulesets/demo_history
# does not use: month / quarter / year scopes, a rolling length read from the line, a requires that looks
# back a rolling period, a window on a field, a scope on the knowledge row, effective dates, and one lookup
# on an expression (not compiled: the reference decides it).
EXTRA_RULES = '''
ruleset "跨行规则编译测试包" {
  version   "t1"
  authority "tests"
}

table ddi from "knowledge/ddi.csv" {
  key     drug_a   text match prefix
  partner drug_b   text match prefix
  column  point_id text role id
  column  days     number
  column  text     text role text
}

table dup from "knowledge/dup.csv" {
  key     main_code text match exact
  partner sub_code  text match exact
  column  point_id  text role id
  column  main_name text
  column  text      text role text
}

table cycle from "knowledge/cycle.csv" {
  key    code        text match prefix
  column point_id    text role id
  column max_times   number
  column period_days number
  column text        text role text
}

# its own table: the reference remembers a table side's lines per knowledge row whatever the key expression,
# and lines that tie in the total order come out in another order from an expression key than from a field
table cycle_by_expression from "knowledge/cycle.csv" {
  key    code        text match prefix
  column point_id    text role id
  column max_times   number
  column period_days number
  column text        text role text
}

table course from "knowledge/course.csv" {
  key    code     text match prefix
  column point_id text role id
  column max_days number
  column atc      text
  column text     text role text
}

table need from "knowledge/need.csv" {
  key     code     text match prefix
  partner needs    list text match prefix
  column  point_id text role id
  column  text     text role text
}

rule T_DDI "同日相互作用（无序）" {
  result 可疑
  pair   p = ddi[med_list_codg] within day unordered
  message "【{hilist_name}】与{involved}：{p.text}"
}

rule T_DDI_BACK "三日内相互作用（有序）" {
  result 可疑
  pair   p = ddi[med_list_codg] within patient rolling 3 days
  message "【{hilist_name}】此前三日内有{involved}"
}

rule T_DDI_DAYS "按知识行天数滚动的相互作用" {
  result    可疑
  effective 2025-01-02
  pair      p = ddi[med_list_codg] within patient rolling p.days unordered
  message   "【{hilist_name}】{p.days}天内有{involved}"
}

rule T_DUP "同日重复收费" {
  result 明确
  pair   p = dup[med_list_codg] within day
  message "同日收取【{p.main_name}】时又收取【{hilist_name}】：{p.text}"
}

rule T_CYCLE "周期超频次" {
  result  可疑
  lookup  k = cycle[med_list_codg]
  window  w = same k within patient rolling k.period_days
  when    w.count > k.max_times
  message "{k.period_days}天内第{w.count}次（此前：{involved}）"
}

rule T_COURSE "限支付疗程" {
  result  明确
  lookup  k = course[med_list_codg]
  window  w = same k within patient
  when    w.span_days > k.max_days
  message "自首次使用至今{w.span_days}天"
}

rule T_MONTH "每月限量" {
  result  明确
  lookup  k = cycle[med_list_codg]
  window  w = same k within month
  when    w.quantity > k.max_times
  message "当月累计{w.quantity}，金额{w.amount}，供药{w.supply_days}天"
  amount  inscp_scp_amt * min(w.quantity - k.max_times, cnt) / cnt
}

rule T_QUARTER "每季就诊日数" {
  result  可疑
  window  w = same med_list_codg within quarter
  when    w.days > 2
  message "本季度第{w.days}个就诊日"
  basis   "测试" source "测试"
}

rule T_YEAR "全年供药" {
  result  可疑
  scope   list_type == "101"
  window  w = all lines within year where list_type == "101"
  when    w.supply_days > 40 and w.codes > 1
  message "全年供药{w.supply_days}天，{w.codes}种"
  basis   "测试" source "测试"
}

rule T_OVERLAP "同类药品重叠（机构，按供药天数滚动）" {
  result  可疑
  lookup  k = course[med_list_codg]
  window  w = same k.atc within institution rolling prd_days
  when    w.overlap_days > 0 or w.encounters > 1
  message "重叠{w.overlap_days}天，{w.encounters}次就诊：{involved}"
  amount  inscp_scp_amt * min(w.overlap_days, prd_days) / prd_days
}

rule T_NEEDS "七日内须有前置项目" {
  result   可疑
  requires q = need[med_list_codg] within patient rolling 7 days
  message  "七日内未见前置项目：{q.text}"
}

rule T_DOCTOR "同一医师当次" {
  result  可疑
  window  w = same bilg_dr_codg within encounter where cnt >= 2
  when    w.count > 2
  message "同一医师第{w.count}条"
  basis   "测试" source "测试"
}

rule T_KSCOPE "知识行限定范围" {
  result    可疑
  effective 2025-01-03 to 2025-03-31
  lookup    k = cycle[med_list_codg]
  scope     k.max_times >= 1 and med_type != "41"
  window    w = same k within year
  when      w.count > k.max_times + 1
  message   "全年第{w.count}次"
}

rule T_EXPR_KEY "以表达式查表（参考解释器判断）" {
  result  可疑
  lookup  k = cycle_by_expression[coalesce(medins_list_codg, med_list_codg)]
  window  w = same k within day
  when    w.count > k.max_times
  message "当日第{w.count}次"
}
'''

EXTRA_TABLES = {
    "ddi.csv": "point_id,drug_a,drug_b,days,text\n"
               "D1,XA01,XB01,2,甲乙相互作用\n"
               "D2,XA01,XA01,,同药重复\n"  # the same code on both sides of one row; no rolling length
               "D3,XB01,XC01,0,乙丙相互作用\n",  # XB01 is a partner of D1 and a key of D3; a length of 0
    "dup.csv": "point_id,main_code,main_name,sub_code,text\n"
               "U1,100000000000001,换药,200000000000002,同日不得另收\n"
               "U2,200000000000002,护理,100000000000001,反之亦然\n",
    "cycle.csv": "point_id,code,max_times,period_days,text\n"
                 "C1,300000,1,3,三天一次\n"
                 "C2,XA01,2,30,三十天两次\n",
    "course.csv": "point_id,code,max_days,atc,text\n"
                  "K1,XA01,3,A1,三天\n"
                  "K2,XB01,5,A1,五天\n"
                  "K3,XC01,2,,无类别\n",
    "need.csv": "point_id,code,needs,text\n"
                "N1,XC01,XA01;300000,丙须先用甲或检查\n",
}

CODES = ["XA01AAA0001", "XA01BBB0002", "XB01AAA0001", "XC01AAA0001", "100000000000001", "200000000000002",
         "300000123", "XZ99", None]
# codes of rulesets/demo_history's tables (both sides of its pairs), as tests/test_history.py draws them
HISTORY_CODES = ["XB01ACA056B002020101763", "003107000010000", "003107000030000", "001101000020000",
                 "250302001000000", "XC10AAA010A001010101234", "XC10AAR100A001010105678", "XJ01FAK067A001010101111",
                 "XC10AAS060A001010102222", "T000100001", "T000200001", "T001200001", "C00201050010000000000000001",
                 "330803014000000", "XJ01DHM085B001010101234", "XJ01DDA060B001010101111", "XB01AAW021A00101",
                 "XM01AEB006A00101", "001101000030000", "001101000010000", "C00301010010000000000000001",
                 "002201000010000", "T001300001", "XN07XXE080A00101", "330803013000000", "XA02BCA001A00101"]


@pytest.fixture(scope="module")
def extra_plan(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross_extra")
    (root / "knowledge").mkdir()
    (root / "rules.rules").write_text(EXTRA_RULES, encoding="utf-8")
    for name, text in EXTRA_TABLES.items():
        (root / "knowledge" / name).write_text(text, encoding="utf-8")
    rs = load_ruleset(root)
    assert rs.ok, rs.render_diagnostics()
    return build_plan(rs)


@pytest.fixture(scope="module")
def history_plan():
    rs = load_ruleset(ROOT / "rulesets" / "demo_history")
    assert rs.ok, rs.render_diagnostics()
    return build_plan(rs)


def compiled_findings(screener: Screener, lines: list, current=None) -> list:
    """The cross-line findings of the compiled path alone, on the current lines."""
    req = screener.cross.request(lines, None)
    out = []
    for line in lines:
        if current is None or line["feedetl_sn"] in current:
            out.extend(req.screen(line))
    return out


def reference_findings(screener: Screener, lines: list, current=None) -> list:
    ref = ReferenceEngine(screener.ruleset, rule_codes=[r.code for r in screener.cross.rules])
    return list(ref.run(lines, current=None if current is None else (lambda l: l["feedetl_sn"] in current)))


def in_order(findings) -> list:
    return sorted(findings, key=repr)  # every field: findings of twin lines may share a key


def assert_same_findings(screener, lines, current=None) -> list:
    want = in_order(reference_findings(screener, lines, current))
    got = in_order(compiled_findings(screener, lines, current))
    assert [f.key() for f in got] == [f.key() for f in want]
    assert got == want  # every field: evidence, amount formula, reason, knowledge point, profile marks
    return want


# ---- the compiled path, not the fallback --------------------------------------------------------------


def test_every_cross_line_rule_of_the_history_pack_is_compiled(history_plan):
    screener = Screener(history_plan, stages=None)
    cross = {r.code for r in history_plan.ruleset.rules if r.window is not None}
    assert screener.cross.fallbacks == []
    assert {c.rule.code for c in screener.cross.compiled} == cross and len(cross) == 18


def test_benchmark_style_rules_are_compiled_and_an_expression_key_falls_back(extra_plan):
    screener = Screener(extra_plan, stages=None)
    compiled = {c.rule.code for c in screener.cross.compiled}
    assert {"T_DDI", "T_DUP", "T_CYCLE", "T_COURSE"} <= compiled  # the benchmark's four shapes
    assert len(compiled) == len(extra_plan.ruleset.rules) - 1
    assert screener.cross.fallbacks == [("T_EXPR_KEY", "the lookup key is not a claim field")]


def _no_reference_decisions(monkeypatch):
    """Fail if a rule is handed to the reference to decide (the reference still renders insufficient data,
    and checks the compiled decision while doing so); tie-breaks are counted in ``reference_decisions``."""
    def refuse(*args, **kwargs):
        raise AssertionError("a rule was decided by the reference")
    monkeypatch.setattr(inline_cross.CrossRequest, "_by_reference", refuse)


def test_history_examples_are_decided_by_the_compiled_path(history_plan, monkeypatch):
    screener = Screener(history_plan, stages=None)
    cases = [example_lines(ex) for rule in history_plan.ruleset.rules for ex in rule.examples]
    wants = [in_order(reference_findings(screener, lines)) for lines in cases]
    _no_reference_decisions(monkeypatch)
    violations = 0
    for lines, want in zip(cases, wants):
        found = [f for f in compiled_findings(screener, lines) if f.outcome == VIOLATION]
        assert in_order(found) == [f for f in want if f.outcome == VIOLATION]
        violations += len(found)
    assert violations >= 15 and screener.cross.reference_decisions == 0


def test_benchmark_requests_are_decided_by_the_compiled_path(extra_plan, monkeypatch):
    """Requests as benches/bench_inline_history.py makes them (40 history lines, 10 current) on the benchmark's
    four rule shapes: every decision compiled, the reference's findings, and each rule finds something."""
    sys.path.insert(0, str(ROOT))
    from benches.bench_inline_history import knowledge_codes, request_lines
    screener = Screener(extra_plan, stages=None)
    wanted = {"T_DDI", "T_DUP", "T_CYCLE", "T_COURSE"}
    rng = random.Random(20261122)
    codes = knowledge_codes(extra_plan.ruleset)
    items = [request_lines(rng, codes, 40, 10, i) for i in range(40)]
    reference = ReferenceEngine(extra_plan.ruleset, rule_codes=wanted)
    wants = [in_order(reference.run(lines, current=lambda l, c=current: l["feedetl_sn"] in c))
             for lines, current in items]
    _no_reference_decisions(monkeypatch)
    fired = set()
    for (lines, current), want in zip(items, wants):
        req = screener.cross.request(lines, wanted)
        got = in_order(f for line in lines if line["feedetl_sn"] in current for f in req.screen(line))
        assert got == want
        fired.update(f.rule_code for f in got if f.outcome == VIOLATION)
    assert fired == wanted and screener.cross.reference_decisions == 0


@pytest.mark.parametrize("pack", ["history_plan", "extra_plan"])
def test_every_example_renders_the_reference_findings(pack, request):
    plan = request.getfixturevalue(pack)
    screener = Screener(plan, stages=None)
    outcomes = set()
    for rule in plan.ruleset.rules:
        for example in rule.examples:
            outcomes.update(f.outcome for f in assert_same_findings(screener, example_lines(example)))
    if pack == "history_plan":
        assert outcomes == {VIOLATION, INSUFFICIENT}


def test_nhsa_pack_examples_agree():
    rs = load_ruleset(ROOT / "rulesets" / "nhsa")
    assert rs.ok, rs.render_diagnostics()
    screener = Screener(build_plan(rs), stages=None)
    assert screener.cross.compiled and screener.cross.fallbacks == []
    found = 0
    for rule in rs.rules:
        for example in rule.examples:
            found += len(assert_same_findings(screener, example_lines(example)))
    assert found > 0


# ---- known answers ------------------------------------------------------------------------------------


def _line(sn, code, day, hour=9, psn="P1", enc="E1", **fields):
    base = {name: None for name in CLAIM_FIELDS}
    t = None if day is None else dt.datetime(2025, 1, 1, hour) + dt.timedelta(days=day)
    base.update(psn_no=psn, mdtrt_id=enc, feedetl_sn=sn, med_list_codg=code, fee_ocur_time=t, begntime=t,
                hilist_name=f"项目{sn}", med_type="11", fixmedins_code="H1", rxno="R1", list_type="101",
                cnt=1.0, pric=10.0, det_item_fee_sumamt=10.0, inscp_scp_amt=10.0, prd_days=7.0)
    base.update(fields)
    return base


def _outcomes(screener, lines, rule_code):
    return {(f.line_id, f.outcome) for f in compiled_findings(screener, lines) if f.rule_code == rule_code}


def test_rolling_window_ends_at_the_nth_day(extra_plan):
    screener = Screener(extra_plan, stages=None)
    # C2: XA01 at most twice in 30 days; the day 30 days after the first is outside its window
    inside = [_line("L1", "XA01AAA0001", 0), _line("L2", "XA01AAA0001", 10), _line("L3", "XA01AAA0001", 29)]
    outside = [_line("L1", "XA01AAA0001", 0), _line("L2", "XA01AAA0001", 10), _line("L3", "XA01AAA0001", 30)]
    assert _outcomes(screener, inside, "T_CYCLE") == {("L3", VIOLATION)}
    assert _outcomes(screener, outside, "T_CYCLE") == set()
    assert_same_findings(screener, inside)
    assert_same_findings(screener, outside)


def test_unordered_pair_flags_the_later_line_and_ties_break_by_ids(extra_plan):
    screener = Screener(extra_plan, stages=None)
    lines = [_line("L2", "XB01AAA0001", 0), _line("L1", "XA01AAA0001", 0)]  # same time: L1 comes first
    found = [f for f in compiled_findings(screener, lines) if f.rule_code == "T_DDI"]
    assert [(f.line_id, f.lines) for f in found] == [("L2", (("L2", 1), ("L1", ROLE_INVOLVED)))]
    assert_same_findings(screener, lines)


def test_same_code_on_both_sides_of_a_pair(extra_plan):
    screener = Screener(extra_plan, stages=None)
    lines = [_line("L1", "XA01AAA0001", 0, 8), _line("L2", "XA01BBB0002", 0, 10)]  # both match D2's two sides
    found = in_order(f for f in compiled_findings(screener, lines) if f.rule_code == "T_DDI")
    assert [(f.line_id, f.knowledge.point_id) for f in found] == [("L2", "D2")]
    assert_same_findings(screener, lines)


def test_history_lines_are_looked_at_never_flagged(extra_plan):
    screener = Screener(extra_plan, stages=None)
    lines = [_line("H1", "XA01AAA0001", 0), _line("H2", "XA01AAA0001", 1), _line("C1", "XA01AAA0001", 2)]
    found = [f for f in compiled_findings(screener, lines, {"C1"}) if f.rule_code == "T_CYCLE"]
    assert [(f.line_id, f.lines) for f in found] == [("C1", (("C1", 1), ("H1", ROLE_INVOLVED), ("H2", ROLE_INVOLVED)))]
    assert_same_findings(screener, lines, {"C1"})


def test_undatable_and_unidentified_lines_are_insufficient(extra_plan):
    screener = Screener(extra_plan, stages=None)
    lines = [_line("L1", "XA01AAA0001", None), _line("L2", "XA01AAA0001", 1, psn=None),
             _line("L3", "XA01AAA0001", 1), _line("L4", "XA01AAA0001", 2)]
    assert _outcomes(screener, lines, "T_CYCLE") == {("L1", INSUFFICIENT), ("L2", INSUFFICIENT)}
    assert_same_findings(screener, lines)


def test_pair_without_partners_is_insufficient_where_its_rolling_length_is_unknown(extra_plan):
    screener = Screener(extra_plan, stages=None)
    lines = [_line("L1", "XA01AAA0001", 3)]  # matches D1 (2 days) and D2 (no length); no partner anywhere
    found = compiled_findings(screener, lines)
    assert {(f.rule_code, f.knowledge.point_id, f.outcome) for f in found if f.rule_code == "T_DDI_DAYS"} == \
        {("T_DDI_DAYS", "D2", INSUFFICIENT)}
    assert_same_findings(screener, lines)


def test_lines_sharing_a_place_in_the_order_go_to_the_reference(extra_plan):
    screener = Screener(extra_plan, stages=None)
    twin = dict(_line("L1", "XA01AAA0001", 0), hilist_name="另一条")  # same time, encounter and line id
    other = _line("L1", "XA01BBB0002", 0)  # another code of the same knowledge rows (C2, K1, D1, D2)
    lines = [_line("L1", "XA01AAA0001", 0), twin, other, _line("L3", "XA01AAA0001", 1)]
    assert_same_findings(screener, lines)
    assert screener.cross.reference_decisions > 0
    same = _line("L5", "XA01AAA0001", 2)  # the very same line twice
    assert_same_findings(screener, [_line("L4", "XA01AAA0001", 1), same, same])


# ---- random requests with history -----------------------------------------------------------------------

DAYS = [0, 1, 2, 3, 4, 6, 7, 8, 29, 30, 31, 95, 200, None]


@st.composite
def requests(draw):
    """Lines of a request (history and current): codes of one pack's tables, few patients, encounters shared
    between them, times that tie, days around the rolling lengths (3, 7, 30), missing values, twin lines."""
    n = draw(st.integers(1, 24))
    codes = draw(st.sampled_from([CODES, HISTORY_CODES + [None]]))
    lines, current = [], set()
    for k in range(n):
        twin = None if k == 0 or draw(st.integers(0, 9)) else lines[draw(st.integers(0, k - 1))]
        day = draw(st.sampled_from(DAYS))
        cnt = draw(st.sampled_from([1.0, 2.0, 0.1, 0.7, None]))
        pric = draw(st.sampled_from([0.1, 20.0, 1200.0]))
        line = _line(f"L{k:02d}", draw(st.sampled_from(codes)), day, draw(st.sampled_from([9, 9, 15])),
                     psn=draw(st.sampled_from(["P1", "P1", "P1", "P1", "P2", None])),
                     enc=draw(st.sampled_from(["E1", "E1", "E2", "E3", None])),
                     med_type=draw(st.sampled_from(["11", "11", "21", "41"])),
                     fixmedins_code=draw(st.sampled_from(["H1", "H1", "H2", None])),
                     rxno=draw(st.sampled_from(["R1", "R2", None])),
                     bilg_dr_codg=draw(st.sampled_from(["D1", "D2", None])),
                     list_type=draw(st.sampled_from(["101", "102", "201"])),
                     cnt=cnt, pric=pric, prd_days=draw(st.sampled_from([None, 0.0, 3.0, 7.0, 30.0])),
                     det_item_fee_sumamt=None if cnt is None else cnt * pric,
                     inscp_scp_amt=None if cnt is None else cnt * pric)
        if twin is not None:  # a line sharing another's id, and maybe its time and encounter too
            line["feedetl_sn"] = twin["feedetl_sn"]
            if draw(st.booleans()):
                line.update(fee_ocur_time=twin["fee_ocur_time"], mdtrt_id=twin["mdtrt_id"])
        lines.append(line)
        if draw(st.booleans()):
            current.add(line["feedetl_sn"])
    return lines, current


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(request_lines=requests())
def test_random_requests_agree_with_the_reference(extra_plan, history_plan, request_lines):
    lines, current = request_lines
    for plan in (extra_plan, history_plan):
        screener = Screener(plan, stages=None)
        assert_same_findings(screener, lines, current)
        places = [(l["fee_ocur_time"], l["mdtrt_id"] or "", l["feedetl_sn"]) for l in lines if l["fee_ocur_time"]]
        if len(set(places)) == len(places):  # no tie-break question: the compiled path decided everything
            assert screener.cross.reference_decisions == 0


def test_random_requests_through_the_screener_agree(history_plan):
    """The whole inline screen (line-level and cross-line rules) against the reference, on the keys."""
    from test_history import history_lines
    screener = Screener(history_plan, stages=None)
    for seed in range(5):
        lines = history_lines(random.Random(seed), 50, n_patients=1)
        current = {l["feedetl_sn"] for l in lines[-10:]}
        want = sorted(f.key() for f in ReferenceEngine(history_plan.ruleset).run(
            lines, current=lambda l: l["feedetl_sn"] in current))
        assert sorted(f.key() for f in screener.screen_lines(lines, current)) == want


# ---- the fast paths: compiled rendering, lines decided by their code, the usual window in one step ----------


def test_violations_are_rendered_by_the_compiled_renderer_with_profile_marks(monkeypatch):
    """Every rule of the history pack has a compiled renderer; with the city's profile (shadowed rules,
    exemptions) its findings are the reference's in every field, and the reference renders no violation."""
    rs = load_ruleset(ROOT / "rulesets" / "demo_history", profile=ROOT / "rulesets" / "demo_history" / "profiles" /
                      "示例市.toml")
    assert rs.ok, rs.render_diagnostics()
    screener = Screener(build_plan(rs), stages=None)
    assert all(c.renderer is not None for c in screener.cross.compiled)
    cases = [example_lines(ex) for rule in rs.rules for ex in rule.examples]
    wants = [in_order(reference_findings(screener, lines)) for lines in cases]
    rendered = screener.reference._finding

    def insufficient_only(rule, env, point, unknown):
        assert unknown is not None, "a violation was rendered by the reference"
        return rendered(rule, env, point, unknown)
    monkeypatch.setattr(screener.reference, "_finding", insufficient_only)
    marked = 0
    for lines, want in zip(cases, wants):
        got = in_order(compiled_findings(screener, lines))
        assert got == want
        marked += sum(1 for f in got if f.outcome == VIOLATION and (f.shadow or f.exemption))
    assert marked > 0  # the profile's marks were applied to compiled violations


def test_a_compiled_finding_has_every_field_of_a_finding(extra_plan):
    from claimaudit.engine.findings import FINDING_FIELDS
    screener = Screener(extra_plan, stages=None)
    lines = [_line("L1", "XA01AAA0001", 0), _line("L2", "XA01AAA0001", 10), _line("L3", "XA01AAA0001", 29)]
    found = [f for f in compiled_findings(screener, lines) if f.outcome == VIOLATION]
    assert found and all(sorted(f.__dict__) == sorted(FINDING_FIELDS) for f in found)
    days = {line["feedetl_sn"]: line["fee_ocur_time"].date().isoformat() for line in lines}
    assert {f.service_date for f in found} >= {"2025-01-30"} and all(f.service_date == days[f.line_id] for f in found)
    assert_same_findings(screener, lines)
    dated = [dict(line, fee_ocur_time=line["fee_ocur_time"].date()) for line in lines]  # a date, not a datetime
    assert {f.service_date for f in assert_same_findings(screener, dated) if f.outcome == VIOLATION} >= {"2025-01-30"}


def test_a_line_whose_code_decides_nothing_is_passed_over_at_once(extra_plan, monkeypatch):
    """A line with no window candidate whose pairs have no partner in the request is decided by its code: no
    rule is asked; with a partner in the request (or its group unknown) the pair decides."""
    from claimaudit.engine.inline import compile_expr
    screener = Screener(extra_plan, stages=None)
    assert not screener.cross.quick  # a rule decided by the reference: every line goes the general way
    wanted = {"T_DDI", "T_DUP"}
    pairs = inline_cross.CrossLineRules(extra_plan.ruleset, screener.reference,
                                        [r for r in screener.cross.rules if r.code in wanted], compile_expr)
    assert pairs.quick
    asked = []
    decide = inline_cross.CrossRequest._decide
    monkeypatch.setattr(inline_cross.CrossRequest, "_decide",
                        lambda self, c, i, points, hits: (asked.append(c.rule.code), decide(self, c, i, points, hits)))
    alone = [_line("L1", "XB01AAA0001", 0)]  # D1's partner side; no XA01 line anywhere
    req = pairs.request(alone, None)
    facts = req.facts[0][0]
    assert facts[2] is not None and {c.rule.code for c, _ in facts[2][2]} == {"T_DDI"}  # a plain pair
    assert req.screen(alone[0]) == [] and asked == []
    with_partner = [_line("L0", "XA01AAA0001", 0, 8), _line("L1", "XB01AAA0001", 0)]
    assert [f.rule_code for f in pairs.request(with_partner, None).screen(with_partner[1])] == ["T_DDI"]
    assert asked == ["T_DDI"]
    asked.clear()
    unknown_group = [_line("L1", "XB01AAA0001", 0, psn=None)]  # no patient: the day's group is unknown
    found = pairs.request(unknown_group, None).screen(unknown_group[0])  # D1 and D3 (XB01 on both sides)
    assert {(f.knowledge.point_id, f.outcome) for f in found} == {("D1", INSUFFICIENT), ("D3", INSUFFICIENT)}
    assert asked == ["T_DDI"]
    no_patient = [_line("L0", "XA01AAA0001", 0, 8), _line("L1", "XB01AAA0001", 3, psn=None)]
    assert_same_findings(screener, no_patient)
    assert_same_findings(screener, alone)


def test_a_request_given_as_a_tuple_of_lines(extra_plan):
    screener = Screener(extra_plan, stages=None)
    lines = [_line("H1", "XA01AAA0001", 0), _line("H2", "XA01AAA0001", 1), _line("C1", "XA01AAA0001", 2)]
    req = screener.cross.request(tuple(lines), None)
    got = in_order(f for line in lines for f in req.screen(line))
    assert got == in_order(reference_findings(screener, lines)) and got


def test_group_needs_match_the_groups():
    """A line's group is unknown exactly when one of the fields its scope needs is missing."""
    assert set(inline_cross._GROUP_NEEDS) == set(inline_cross._GROUP_OF)
    fields = ("psn_no", "mdtrt_id", "rxno", "fixmedins_code", "fee_ocur_time")
    for scope, group_of in inline_cross._GROUP_OF.items():
        for mask in range(1 << len(fields)):
            line = {f: (None if mask >> k & 1 else (dt.datetime(2025, 3, 1, 9) if f == "fee_ocur_time" else "v"))
                    for k, f in enumerate(fields)}
            missing = any(line[f] is None for f in inline_cross._GROUP_NEEDS[scope])
            assert (group_of(line) is None) == missing, (scope, line)


def test_the_usual_window_in_one_step_decides_as_the_general_path(extra_plan):
    """``_decide_window`` (the usual ``same k`` window rule) gives the general decide()'s outcome and window on
    benchmark-style requests and on lines without time or patient."""
    sys.path.insert(0, str(ROOT))
    from benches.bench_inline_history import knowledge_codes, request_lines
    screener = Screener(extra_plan, stages=None)
    fused = {c.rule.code for c in screener.cross.compiled if c.decide.__func__ is
             inline_cross.CompiledCrossRule._decide_window}
    assert {"T_CYCLE", "T_COURSE"} <= fused
    rng = random.Random(7)
    codes = knowledge_codes(extra_plan.ruleset)
    items = [request_lines(rng, codes, 40, 10, i) for i in range(30)]
    items.append(([_line("L1", "XA01AAA0001", None), _line("L2", "XA01AAA0001", 1, psn=None),
                   _line("L3", "XA01AAA0001", 1), _line("L4", "XA01AAA0001", 2)], {"L1", "L2", "L3", "L4"}))
    compared = set()
    for lines, current in items:
        fast, general = screener.cross.request(lines, None), screener.cross.request(lines, None)
        for i, line in enumerate(lines):
            if line["feedetl_sn"] not in current:
                continue
            for f in range(len(screener.cross.key_fields)):
                for c, points in fast.facts[f][i][1]:
                    if c.rule.code not in fused:
                        continue
                    for pt, partners in points:
                        a = c.decide(fast, i, pt, partners)
                        b = inline_cross.CompiledCrossRule.decide(c, general, i, pt, partners)
                        assert a == b, (c.rule.code, line["feedetl_sn"])
                        compared.add((c.rule.code, None if a is None else a[0]))
    assert {("T_CYCLE", VIOLATION), ("T_COURSE", VIOLATION), ("T_CYCLE", None), ("T_CYCLE", INSUFFICIENT)} <= compared


# ---- the decision kernel (kernels/crossdecide) ---------------------------------------------------------


def _odd_times(lines: list, draw_index: int) -> list:
    """Some lines' times as a date (midnight in the order), chosen by ``draw_index``; with ``draw_index`` 0 every
    time is timezone-aware (the kernel leaves those to the general path)."""
    out = [dict(l) for l in lines]
    for k, line in enumerate(out):
        t = line["fee_ocur_time"]
        if t is not None and draw_index == 0:
            line["fee_ocur_time"] = t.replace(tzinfo=dt.timezone.utc)
        elif t is not None and not (k + draw_index) % 3:
            line["fee_ocur_time"] = t.date()
    return out


def _general(c, req, i, pt, partners):
    """What the general path (without the kernel) decides: (outcome, window), None, or "tied"."""
    try:
        if c.violation_if_partner is not None:
            return c._decide_by_partner(req, i, pt, partners)
        if c.decide.__func__ is inline_cross.CompiledCrossRule._decide_window:
            return c._decide_window(req, i, pt, partners)
        return inline_cross.CompiledCrossRule.decide(c, req, i, pt, partners)
    except inline_cross.Tied:
        return "tied"


def _kernel_agrees(screener, lines, current) -> set:
    """Every verdict of the kernel on the current lines equals the general path's decision; a pair's partners
    listed by the kernel equal window_of's. Returns (rule, verdict kind) pairs seen."""
    cross, seen = screener.cross, set()
    kernel = cross.decider
    for i, line in enumerate(lines):
        if line["feedetl_sn"] not in current:
            continue
        req = cross.request(lines, None)
        candidates = [cp for f in range(len(cross.key_fields)) for cp in req.facts[f][i][1]]
        candidates += [cp for f in range(len(cross.key_fields)) if req.facts[f][i][2]
                       for cp in req.facts[f][i][2][2]]
        candidates += [(c, c.points_all) for c in cross.compiled if c.key_field is None]
        for c, points in candidates:
            if c.shape is None:
                continue
            got = kernel.decide(req.timeline(), c.shape, points, i) or []
            verdicts = {id(pt): v for pt, _, v in got}
            for pt, partners in points:
                v = verdicts.get(id(pt), False)
                seen.add((c.rule.code, "none" if v is None else type(v).__name__))
                if v is None:
                    continue  # left to the general path
                want = _general(c, cross.request(lines, None), i, pt, partners)
                if v is False:
                    assert want is None, (c.rule.code, line["feedetl_sn"], want)
                elif v is True:
                    assert want == (VIOLATION, None), (c.rule.code, line["feedetl_sn"], want)
                else:
                    assert want[0] == VIOLATION and want[1][1] == v, (c.rule.code, line["feedetl_sn"], want, v)
                if c.kind != "window":
                    found = kernel.partners(req.timeline(), c.shape, pt.fast, partners, i)
                    general = cross.request(lines, None)
                    try:
                        full = c.window_of(general, i, pt, partners, True)
                    except inline_cross.Tied:
                        full = None
                    if found is not None:
                        assert full is not None and list(full[1] if c.kind == "pair" else ()) == \
                            (found if c.kind == "pair" else []), (c.rule.code, line["feedetl_sn"])
    return seen


def test_the_kernel_takes_the_usual_shapes(history_plan):
    screener = Screener(history_plan, stages=None)
    taken = {c.rule.code for c in screener.cross.compiled if c.shape is not None}
    assert {"DEMO_COURSE", "DEMO_CYCLE", "DEMO_FREQUENT_VISIT", "DEMO_FREQUENT_ADMISSION", "DEMO_DDI",
            "DEMO_REQUIRES", "DEMO_HERB_SINGLE", "DEMO_DRUG_KINDS"} <= taken
    assert "DEMO_DUP_CLASS" not in taken  # a window over a knowledge value: the general path


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(request_lines=requests(), odd=st.integers(0, 5))
def test_the_decision_kernel_decides_as_the_general_path(extra_plan, history_plan, request_lines, odd):
    lines, current = request_lines
    if odd < 2:
        lines = _odd_times(lines, odd)
    for plan in (extra_plan, history_plan):
        _kernel_agrees(Screener(plan, stages=None), lines, current)


def test_the_decision_kernel_on_benchmark_requests(extra_plan, history_plan):
    """Benchmark-style requests: every shape decided, violations and none alike, as the general path."""
    sys.path.insert(0, str(ROOT))
    from benches.bench_inline_history import knowledge_codes, request_lines
    seen = set()
    for plan in (extra_plan, history_plan):
        screener = Screener(plan, stages=None)
        rng = random.Random(11)
        codes = knowledge_codes(plan.ruleset)
        for k in range(40):
            lines, current = request_lines(rng, codes, 40, 10, k)
            seen |= _kernel_agrees(screener, lines, current)
            assert_same_findings(screener, lines, current)
    assert {("T_CYCLE", "list"), ("T_CYCLE", "bool"), ("DEMO_COURSE", "bool")} <= seen, sorted(seen)
